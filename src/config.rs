//! The TOML configuration. Every key has a default (written out in `appliance/vigil.toml`);
//! unknown keys and bad values are refused with the file, line and column.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vigil_parsers::DefragConfig;

use crate::applayer::{AppLayerConfig, EnabledProtocols};
use crate::flow::{FlowTableConfig, FlowTimeouts};
use vigil_parsers::app::http::DumpHeaders;
use vigil_parsers::stream::{OverlapPolicy, StreamConfig};

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub pipeline: PipelineSection,
    pub flow: FlowSection,
    pub defrag: DefragSection,
    pub stream: StreamSection,
    pub app_layer: AppLayerSection,
    pub eve: EveSection,
    pub anomaly_events: AnomalyEventsSection,
    pub rules: RulesSection,
    pub capture: CaptureSection,
    pub daemon: DaemonSection,
    pub metrics: MetricsSection,
    /// Upstream sinks (`[[output]]` tables), besides the local `eve.json`.
    #[serde(rename = "output", skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<OutputSection>,
    pub spool: SpoolSection,
    pub response: ResponseSection,
    /// Behavioural anomaly models (`src/anomaly/`).
    pub anomaly: crate::anomaly::AnomalySection,
}

/// Most Content-Encoding layers `[app_layer.http] decompress_layer_limit` may allow (each is
/// a decompressor with its own window, up to 64 KiB of state per body).
pub const MAX_DECOMPRESS_LAYERS: usize = 16;

/// Sizes `[eve] payload_buffer_size` may take.
pub const PAYLOAD_BUFFER_SIZES: std::ops::RangeInclusive<usize> = 1..=1 << 20;

/// Active response: TCP resets, firewall blocks, a webhook; off unless enabled.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseSection {
    pub enabled: bool,
    /// Log what would be done (EVE `response` events) and change nothing.
    pub dry_run: bool,
    /// Interface resets leave through; empty = the capture interface (SPAN ports are often
    /// receive-only: then name an interface that reaches the monitored hosts).
    pub inject_iface: String,
    /// Answer UDP flows a reject hits with ICMP port unreachable.
    pub icmp_unreachable: bool,
    /// Actions (resets, blocks) allowed per minute; more are refused and logged.
    pub max_actions_per_minute: u32,
    /// Networks never acted on (addresses or CIDR).
    pub allowlist: Vec<crate::response::policy::Network>,
    /// Also protect the sensor's own addresses, its default gateways and the outputs' hosts.
    pub allowlist_own: bool,
    /// `drop` rules reset both ends and block the source this long; 0 = reset only.
    pub drop_block_for: crate::response::policy::HumanDuration,
    /// `nft`: blocks go into the nftables table `nft_table` Vigil owns; `none`: no local
    /// firewall (the webhook only).
    pub firewall: Firewall,
    pub nft_table: String,
    /// Blocks remembered across restarts (so none is repeated or lost).
    pub state_file: PathBuf,
    /// Unix socket for `vigil block`/`unblock`/`blocks` (mode 0660, the daemon's group).
    pub control_socket: PathBuf,
    pub webhook: WebhookSection,
    /// `[[response.policy]]`: the first matching one adds its actions to the rule's own.
    #[serde(rename = "policy", skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<crate::response::policy::PolicyRule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Firewall {
    Nft,
    None,
}

/// HTTPS POST of every block and unblock to a remote firewall or EDR.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSection {
    /// `https://HOST[:PORT]/PATH`; empty = no webhook.
    pub url: String,
    /// CA file to verify the receiver with; empty = the system's trust store.
    pub ca: PathBuf,
    /// Client certificate and key for mutual TLS; empty = none.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Sent as `Authorization: Bearer …`; empty = none.
    pub bearer_token: String,
    pub timeout_secs: u32,
}

impl Default for WebhookSection {
    fn default() -> Self {
        WebhookSection {
            url: String::new(),
            ca: PathBuf::new(),
            cert: PathBuf::new(),
            key: PathBuf::new(),
            bearer_token: String::new(),
            timeout_secs: 5,
        }
    }
}

impl Default for ResponseSection {
    fn default() -> Self {
        ResponseSection {
            enabled: false,
            dry_run: false,
            inject_iface: String::new(),
            icmp_unreachable: false,
            max_actions_per_minute: 120,
            allowlist: Vec::new(),
            allowlist_own: true,
            drop_block_for: crate::response::policy::HumanDuration(std::time::Duration::from_secs(
                600,
            )),
            firewall: Firewall::Nft,
            nft_table: "vigil".into(),
            state_file: PathBuf::from("/var/lib/vigil/response-blocks.json"),
            control_socket: PathBuf::from("/run/vigil/control.sock"),
            webhook: WebhookSection::default(),
            policies: Vec::new(),
        }
    }
}

/// One upstream sink.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSection {
    /// `syslog+tls://HOST:PORT?ca=FILE&cert=FILE&key=FILE` or
    /// `nats://HOST:PORT/SUBJECT_PREFIX?stream=NAME&creds=FILE`.
    pub url: String,
    /// EVE event types this sink takes; empty = all (alert, flow, anomaly, http, dns, tls,
    /// ssh, stats, response, fileinfo).
    #[serde(default)]
    pub types: Vec<String>,
}

/// Where events wait while a sink's receiver is down or slower than the sensor.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolSection {
    /// One subdirectory per sink.
    pub dir: PathBuf,
    /// Most bytes (zstd-compressed) spooled per sink.
    pub max_bytes: u64,
    /// `drop-oldest` or `drop-newest` when a spool is full; every dropped event is counted.
    pub policy: SpoolPolicy,
    /// Bytes of events held in memory per sink (absorbing bursts the receiver takes a moment
    /// to catch up with) before new ones go to the spool.
    pub queue_bytes: u64,
    /// At the end of a replay (or on stop), how long sinks may go on delivering; what is left
    /// stays spooled for the next run.
    pub drain_timeout_secs: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SpoolPolicy {
    DropOldest,
    DropNewest,
}

impl Default for SpoolSection {
    fn default() -> Self {
        SpoolSection {
            dir: PathBuf::from("/var/lib/vigil/spool"),
            max_bytes: 1 << 30,
            policy: SpoolPolicy::DropOldest,
            queue_bytes: 64 << 20,
            drain_timeout_secs: 10,
        }
    }
}

/// Live capture (`vigil run`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureSection {
    /// Interfaces to capture on (SPAN or TAP ports).
    pub interfaces: Vec<String>,
    /// `af-packet` (TPACKET_V3 ring, fanout over workers), `af-xdp` (one socket per NIC
    /// queue; one worker per queue) or `pcap` (libpcap, the portable fallback).
    pub method: CaptureMethod,
    /// libpcap filter expression applied in the kernel; empty = all packets.
    pub bpf_filter: String,
    /// Bytes kept of each frame.
    pub snaplen: u32,
    pub promiscuous: bool,
    /// AF_PACKET ring (and libpcap buffer) size per worker socket, in bytes.
    pub ring_bytes: usize,
    /// AF_PACKET: the longest a partly filled ring block waits before the kernel hands it
    /// over (ms). On a quiet link this is the capture latency (and active response's);
    /// lower means more wake-ups. A busy link fills blocks sooner.
    pub block_timeout_ms: u32,
    /// CPU cores the workers are pinned to: worker k runs on `cpu_affinity[k % len]`;
    /// empty = not pinned.
    pub cpu_affinity: Vec<usize>,
    /// AF_XDP attach mode: `auto` (native driver mode, else generic), `native` or `skb`.
    pub xdp_mode: XdpModeSetting,
    /// AF_XDP copy mode: `auto` (zero-copy where the driver supports it), `copy` or
    /// `zero-copy`.
    pub xdp_copy: XdpCopySetting,
    /// AF_XDP UMEM frames per socket (2 KiB each; locked memory).
    pub xdp_frames: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaptureMethod {
    AfPacket,
    AfXdp,
    Pcap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum XdpModeSetting {
    Auto,
    Native,
    Skb,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum XdpCopySetting {
    Auto,
    Copy,
    ZeroCopy,
}

impl Default for CaptureSection {
    fn default() -> Self {
        CaptureSection {
            interfaces: Vec::new(),
            method: CaptureMethod::AfPacket,
            bpf_filter: String::new(),
            snaplen: 65_535,
            promiscuous: true,
            ring_bytes: 64 << 20,
            block_timeout_ms: 10,
            cpu_affinity: Vec::new(),
            xdp_mode: XdpModeSetting::Auto,
            xdp_copy: XdpCopySetting::Auto,
            xdp_frames: 4096,
        }
    }
}

/// The daemon's process settings.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonSection {
    /// User and group to switch to once the capture sockets are open; empty = stay.
    pub user: String,
    pub group: String,
    /// Seconds between EVE `stats` events.
    pub stats_interval_secs: u32,
}

impl Default for DaemonSection {
    fn default() -> Self {
        DaemonSection {
            user: String::new(),
            group: String::new(),
            stats_interval_secs: 30,
        }
    }
}

/// Prometheus exporter.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// `ADDRESS:PORT` serving `/metrics`; empty = no exporter.
    pub listen: String,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            listen: "127.0.0.1:9750".into(),
        }
    }
}

/// Signatures: which rules files, their variables and support files.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesSection {
    /// Rules files loaded when the command line names none.
    pub files: Vec<PathBuf>,
    /// Where compiled prefilter databases are cached; empty = `~/.cache/vigil`.
    pub cache_dir: PathBuf,
    /// `classification.config`; empty = the bundled copy of Suricata's.
    pub classification_file: PathBuf,
    /// `threshold.config` (thresholds, suppressions, rate filters); empty = none.
    pub threshold_file: PathBuf,
    /// Address variables (`$HOME_NET` …), as in suricata.yaml's `vars.address-groups`.
    pub address_groups: std::collections::BTreeMap<String, String>,
    /// Port variables (`$HTTP_PORTS` …), as in `vars.port-groups`.
    pub port_groups: std::collections::BTreeMap<String, String>,
}

impl Default for RulesSection {
    fn default() -> Self {
        let vars = vigil_signatures::address::Vars::default();
        RulesSection {
            files: Vec::new(),
            cache_dir: PathBuf::new(),
            classification_file: PathBuf::new(),
            threshold_file: PathBuf::new(),
            address_groups: vars.addresses.into_iter().collect(),
            port_groups: vars.ports.into_iter().collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineSection {
    /// Worker threads; 0 means one per CPU core.
    pub workers: usize,
    /// Packets per batch handed from the reader to a worker.
    pub batch_packets: usize,
    /// Batches each worker's ring holds.
    pub ring_batches: usize,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowSection {
    /// Memory for flow state over all workers; each worker gets an equal share.
    pub memcap_bytes: usize,
    /// Emergency mode ends when a table is below this percentage of its capacity.
    pub emergency_recovery_percent: u8,
    /// Community ID v1 seed.
    pub community_id_seed: u16,
    pub timeouts: FlowTimeouts,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DefragSection {
    pub memcap_bytes: usize,
    pub timeout_secs: u32,
    pub max_fragments: u16,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamSection {
    /// Memory for out-of-order TCP data over all workers; each worker gets an equal share.
    pub memcap_bytes: usize,
    /// Bytes reassembled per direction of a connection; 0 = unlimited.
    pub depth_bytes: u64,
    /// How overlapping retransmitted data is resolved: first, last, bsd, linux or windows.
    pub overlap_policy: OverlapPolicy,
    /// Reassemble connections whose handshake was not seen.
    pub midstream: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AppLayerSection {
    /// Protocols detected and parsed; a disabled one is left undetected.
    pub protocols: EnabledProtocols,
    pub http: HttpSection,
    pub tls: TlsSection,
    pub ssh: SshSection,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    /// Request body bytes kept per transaction (dechunked, decompressed) for inspection.
    pub request_body_limit_bytes: usize,
    pub response_body_limit_bytes: usize,
    /// Which sides' headers `http` events list in full: none, request, response or both.
    pub dump_all_headers: HeaderDump,
    /// Content-Encoding layers decoded in a response body (libhtp's
    /// `response-body-decompress-layer-limit`); 0 = no limit up to 16.
    pub decompress_layer_limit: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HeaderDump {
    #[default]
    None,
    Request,
    Response,
    Both,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSection {
    /// Log `ja3`/`ja3s` in `tls` events (always computed for rules; also logged when a loaded
    /// rule inspects them, Suricata's `ja3-fingerprints: auto`).
    pub ja3: bool,
    /// Log `ja4` in `tls` events.
    pub ja4: bool,
    /// The fields of `tls` events: Suricata's `extended` set (else subject, issuerdn and
    /// subjectaltname), or exactly the `custom` list (Suricata's field names) when it is given.
    pub extended: bool,
    pub custom: Option<Vec<String>>,
    /// Log `session_resumed` for resumed sessions.
    pub session_resumption: bool,
}

impl TlsSection {
    pub fn fields(&self) -> Result<vigil_parsers::app::tls::TlsFields, String> {
        vigil_parsers::app::tls::TlsFields::from_settings(
            self.extended,
            self.custom.as_ref().map(|c| c.iter().map(String::as_str)),
            self.session_resumption,
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SshSection {
    /// Compute and log HASSH / HASSH-server in `ssh` events (also done when a loaded rule
    /// inspects them).
    pub hassh: bool,
}

impl Default for HttpSection {
    fn default() -> Self {
        let d = vigil_parsers::app::http::HttpConfig::default();
        HttpSection {
            request_body_limit_bytes: d.request_body_limit,
            response_body_limit_bytes: d.response_body_limit,
            dump_all_headers: HeaderDump::None,
            decompress_layer_limit: d.decompress_layer_limit,
        }
    }
}

impl Default for TlsSection {
    fn default() -> Self {
        let d = vigil_parsers::app::tls::TlsConfig::default();
        TlsSection {
            ja3: d.ja3,
            ja4: d.ja4,
            extended: d.fields.has(vigil_parsers::app::tls::TlsFields::EXTENDED),
            custom: None,
            session_resumption: d
                .fields
                .has(vigil_parsers::app::tls::TlsFields::SESSION_RESUMED),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EveSection {
    /// Directory of `eve.json`.
    pub dir: PathBuf,
    /// Rotate `eve.json` once it reaches this size (bytes); 0 = never by size.
    pub rotate_bytes: u64,
    /// Rotate `eve.json` this often (seconds); 0 = never by time.
    pub rotate_secs: u64,
    /// Compress rotated files with zstd (`eve.json.<time>.zst`).
    pub compress_rotated: bool,
    /// Delete the oldest rotated files while they use more than this (bytes); 0 = no cap.
    pub max_disk_bytes: u64,
    /// Event types written to `eve.json` (alert, flow, anomaly, http, dns, tls, ssh, stats,
    /// response, fileinfo); empty = all.
    pub types: Vec<String>,
    /// Alerts carry `payload`: the base64 of the alerting packet's payload (Suricata's
    /// eve-log alert `payload`).
    pub payload: bool,
    /// Alerts carry `payload_printable`: that payload with bytes other than printable ASCII,
    /// CR and LF as '.' (`payload-printable`).
    pub payload_printable: bool,
    /// Alerts carry `payload_length`: the packet's payload length, also when `payload` was cut
    /// to `payload_buffer_size` (`payload-length`).
    pub payload_length: bool,
    /// Most payload bytes an alert carries (`payload-buffer-size`).
    pub payload_buffer_size: usize,
    /// Alerts carry `packet` (base64 of the whole frame) and `packet_info.linktype`.
    pub packet: bool,
    /// Per-rule alert counts as JSON, rewritten with every stats event (`--rule-stats`);
    /// empty: none.
    pub rule_stats_file: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnomalyEventsSection {
    /// Decoder anomaly events written per worker and second of packet time; more are counted
    /// in the stats but not written, so a flood of malformed packets cannot flood the SIEM.
    pub max_per_second: u32,
}

impl Default for PipelineSection {
    fn default() -> Self {
        PipelineSection {
            workers: 0,
            batch_packets: 256,
            ring_batches: 32,
        }
    }
}

impl Default for FlowSection {
    fn default() -> Self {
        FlowSection {
            memcap_bytes: 128 << 20,
            emergency_recovery_percent: 70,
            community_id_seed: 0,
            timeouts: FlowTimeouts::default(),
        }
    }
}

impl Default for DefragSection {
    fn default() -> Self {
        let d = DefragConfig::default();
        DefragSection {
            memcap_bytes: d.memcap_bytes,
            timeout_secs: (d.timeout_ns / 1_000_000_000) as u32,
            max_fragments: d.max_fragments,
        }
    }
}

impl Default for StreamSection {
    fn default() -> Self {
        let d = StreamConfig::default();
        StreamSection {
            memcap_bytes: 64 << 20,
            depth_bytes: d.depth,
            overlap_policy: d.policy,
            midstream: d.midstream,
        }
    }
}

impl Default for EveSection {
    fn default() -> Self {
        EveSection {
            dir: PathBuf::from("/var/log/vigil"),
            rotate_bytes: 0,
            rotate_secs: 0,
            compress_rotated: true,
            max_disk_bytes: 0,
            types: Vec::new(),
            payload: false,
            payload_printable: false,
            payload_length: false,
            payload_buffer_size: 4096,
            packet: false,
            rule_stats_file: PathBuf::new(),
        }
    }
}

impl Default for AnomalyEventsSection {
    fn default() -> Self {
        AnomalyEventsSection {
            max_per_second: 100,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The OS error is the source: the error chain prints it after this.
    #[error("cannot read {path}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parses and validates; `origin` names the source in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            ConfigError::Invalid {
                path: origin.to_string(),
                line,
                column,
                message: e.message().trim().to_string(),
            }
        })?;
        config.validate(text, origin)?;
        Ok(config)
    }

    /// Range checks serde cannot express, reported at the offending key.
    fn validate(&self, text: &str, origin: &str) -> Result<(), ConfigError> {
        let fail = |section: &str, key: &str, message: String| {
            let (line, column) = find_key(text, section, key);
            Err(ConfigError::Invalid {
                path: origin.to_string(),
                line,
                column,
                message,
            })
        };
        if self.pipeline.batch_packets == 0 || self.pipeline.batch_packets > 65_536 {
            return fail(
                "pipeline",
                "batch_packets",
                "batch_packets must be 1..=65536".into(),
            );
        }
        if self.pipeline.ring_batches == 0 {
            return fail(
                "pipeline",
                "ring_batches",
                "ring_batches must be at least 1".into(),
            );
        }
        if self.pipeline.workers > 1024 {
            return fail(
                "pipeline",
                "workers",
                "workers must be 0 (one per core) ..= 1024".into(),
            );
        }
        if self.flow.memcap_bytes < 1 << 20 {
            return fail(
                "flow",
                "memcap_bytes",
                "memcap_bytes must be at least 1 MiB".into(),
            );
        }
        if self.flow.emergency_recovery_percent == 0 || self.flow.emergency_recovery_percent > 100 {
            return fail(
                "flow",
                "emergency_recovery_percent",
                "emergency_recovery_percent must be 1..=100".into(),
            );
        }
        if !self.metrics.listen.is_empty()
            && self.metrics.listen.parse::<std::net::SocketAddr>().is_err()
        {
            return fail(
                "metrics",
                "listen",
                format!(
                    "listen must be ADDRESS:PORT (e.g. 127.0.0.1:9750), not {:?}",
                    self.metrics.listen
                ),
            );
        }
        if self.app_layer.http.decompress_layer_limit > MAX_DECOMPRESS_LAYERS {
            return fail(
                "app_layer.http",
                "decompress_layer_limit",
                format!("decompress_layer_limit must be 0..={MAX_DECOMPRESS_LAYERS}"),
            );
        }
        if let Err(e) = self.app_layer.tls.fields() {
            return fail("app_layer.tls", "custom", format!("custom: {e}"));
        }
        if self.capture.snaplen < 64 {
            return fail("capture", "snaplen", "snaplen must be at least 64".into());
        }
        if self.capture.ring_bytes < 2 << 20 {
            return fail(
                "capture",
                "ring_bytes",
                "ring_bytes must be at least 2 MiB".into(),
            );
        }
        if !(1..=1000).contains(&self.capture.block_timeout_ms) {
            return fail(
                "capture",
                "block_timeout_ms",
                "block_timeout_ms must be 1..=1000".into(),
            );
        }
        if self.capture.xdp_frames < 64 || !self.capture.xdp_frames.is_power_of_two() {
            return fail(
                "capture",
                "xdp_frames",
                "xdp_frames must be a power of two, at least 64".into(),
            );
        }
        let unknown_type = |types: &[String], what: &str| {
            types
                .iter()
                .find(|t| crate::output::sink::EventType::from_name(t).is_none())
                .map(|t| {
                    let (line, column) = find_value(text, t);
                    ConfigError::Invalid {
                        path: origin.to_string(),
                        line,
                        column,
                        message: format!(
                            "{what}: unknown event type {t:?} ({})",
                            crate::output::sink::EventType::all_names()
                        ),
                    }
                })
        };
        if let Some(e) = unknown_type(&self.eve.types, "eve types") {
            return Err(e);
        }
        if !PAYLOAD_BUFFER_SIZES.contains(&self.eve.payload_buffer_size) {
            return fail(
                "eve",
                "payload_buffer_size",
                "payload_buffer_size must be 1..=1048576".into(),
            );
        }
        for (i, output) in self.outputs.iter().enumerate() {
            if let Some(e) = unknown_type(&output.types, &format!("output {}", i + 1)) {
                return Err(e);
            }
            if let Err(e) = crate::output::check_url(&output.url) {
                let (line, column) = find_value(text, &output.url);
                return Err(ConfigError::Invalid {
                    path: origin.to_string(),
                    line,
                    column,
                    message: format!("output {}: {e}", i + 1),
                });
            }
        }
        if self.daemon.stats_interval_secs == 0 {
            return fail(
                "daemon",
                "stats_interval_secs",
                "stats_interval_secs must be at least 1".into(),
            );
        }
        let r = &self.response;
        if r.max_actions_per_minute == 0 {
            return fail(
                "response",
                "max_actions_per_minute",
                "max_actions_per_minute must be at least 1".into(),
            );
        }
        let table_ok = !r.nft_table.is_empty()
            && r.nft_table.len() <= 32
            && r.nft_table
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !table_ok {
            return fail(
                "response",
                "nft_table",
                "nft_table must be 1-32 letters, digits, '_' or '-'".into(),
            );
        }
        if !r.webhook.url.is_empty() && !r.webhook.url.starts_with("https://") {
            let loopback_http = r.webhook.url.starts_with("http://127.")
                || r.webhook.url.starts_with("http://localhost")
                || r.webhook.url.starts_with("http://[::1]");
            if !loopback_http {
                return fail(
                    "response.webhook",
                    "url",
                    "url must be https:// (plain http only to a loopback address)".into(),
                );
            }
        }
        for (i, p) in r.policies.iter().enumerate() {
            if p.reset == crate::response::policy::Ends::None
                && p.block == crate::response::policy::Ends::None
            {
                let (line, column) = nth_table(text, "[[response.policy]]", i);
                return Err(ConfigError::Invalid {
                    path: origin.to_string(),
                    line,
                    column,
                    message: "response.policy: give `reset` or `block` (src, dst or both)".into(),
                });
            }
            if p.block != crate::response::policy::Ends::None && p.block_for.0.is_zero() {
                let (line, column) = nth_table(text, "[[response.policy]]", i);
                return Err(ConfigError::Invalid {
                    path: origin.to_string(),
                    line,
                    column,
                    message: "response.policy: `for` must be at least 1s".into(),
                });
            }
        }
        if self.defrag.max_fragments == 0 {
            return fail(
                "defrag",
                "max_fragments",
                "max_fragments must be at least 1".into(),
            );
        }
        Ok(())
    }

    /// Worker count with 0 resolved to the number of cores.
    pub fn workers(&self) -> usize {
        match self.pipeline.workers {
            0 => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            n => n,
        }
    }

    pub fn flow_table(&self, workers: usize) -> FlowTableConfig {
        FlowTableConfig {
            memcap_bytes: self.flow.memcap_bytes / workers.max(1),
            timeouts: self.flow.timeouts,
            emergency_recovery: f64::from(self.flow.emergency_recovery_percent) / 100.0,
        }
    }

    pub fn app_layer(&self) -> AppLayerConfig {
        AppLayerConfig {
            stream: StreamConfig {
                depth: self.stream.depth_bytes,
                policy: self.stream.overlap_policy,
                midstream: self.stream.midstream,
                ..StreamConfig::default()
            },
            enabled: self.app_layer.protocols,
            http: vigil_parsers::app::http::HttpConfig {
                request_body_limit: self.app_layer.http.request_body_limit_bytes,
                response_body_limit: self.app_layer.http.response_body_limit_bytes,
                dump_all_headers: match self.app_layer.http.dump_all_headers {
                    HeaderDump::None => DumpHeaders::None,
                    HeaderDump::Request => DumpHeaders::Request,
                    HeaderDump::Response => DumpHeaders::Response,
                    HeaderDump::Both => DumpHeaders::Both,
                },
                // 0 (no limit) is held to the cap too: a body's layers are state per flow.
                decompress_layer_limit: match self.app_layer.http.decompress_layer_limit {
                    0 => MAX_DECOMPRESS_LAYERS,
                    n => n,
                },
                ..Default::default()
            },
            tls: vigil_parsers::app::tls::TlsConfig {
                ja3: self.app_layer.tls.ja3,
                ja4: self.app_layer.tls.ja4,
                // Checked at load.
                fields: self
                    .app_layer
                    .tls
                    .fields()
                    .unwrap_or_else(|_| vigil_parsers::app::tls::TlsConfig::default().fields),
            },
            ssh: vigil_parsers::app::ssh::SshConfig {
                hassh: self.app_layer.ssh.hassh,
            },
            ..AppLayerConfig::default()
        }
    }

    /// The event types `eve.json` takes (validated at load: unknown names never get here).
    pub fn eve_types(&self) -> crate::output::sink::TypeSet {
        crate::output::sink::TypeSet::from_names(&self.eve.types)
            .unwrap_or_else(|_| crate::output::sink::TypeSet::of(&[]))
    }

    /// What alerts carry of the packet that raised them; `None` when nothing (the default).
    pub fn alert_capture(&self) -> Option<crate::output::eve::AlertCaptureConfig> {
        let e = &self.eve;
        let c = crate::output::eve::AlertCaptureConfig {
            payload: e.payload,
            payload_printable: e.payload_printable,
            payload_length: e.payload_length,
            packet: e.packet,
            payload_buffer_size: e.payload_buffer_size,
        };
        (c.payload || c.payload_printable || c.payload_length || c.packet).then_some(c)
    }

    pub fn rotation(&self) -> crate::output::rotate::RotateConfig {
        crate::output::rotate::RotateConfig {
            max_file_bytes: self.eve.rotate_bytes,
            interval: std::time::Duration::from_secs(self.eve.rotate_secs),
            compress: self.eve.compress_rotated,
            max_disk_bytes: self.eve.max_disk_bytes,
        }
    }

    pub fn defrag(&self) -> DefragConfig {
        DefragConfig {
            memcap_bytes: self.defrag.memcap_bytes,
            timeout_ns: u64::from(self.defrag.timeout_secs) * 1_000_000_000,
            max_fragments: self.defrag.max_fragments,
        }
    }

    /// The defaults as TOML (what `appliance/vigil.toml` holds, minus its comments).
    pub fn defaults_toml() -> String {
        toml::to_string(&Config::default()).unwrap_or_default()
    }
}

/// Where the `n`th (0-based) `header` table starts.
fn nth_table(text: &str, header: &str, n: usize) -> (usize, usize) {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.trim() == header)
        .nth(n)
        .map_or((1, 1), |(i, _)| (i + 1, 1))
}

/// Where a quoted value first appears (for errors about list items serde gives no span for).
fn find_value(text: &str, value: &str) -> (usize, usize) {
    text.find(&format!("\"{value}\""))
        .map_or((1, 1), |offset| line_col(text, offset))
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

/// Where `key` is set inside `[section]` (for range errors, which serde gives no span for).
fn find_key(text: &str, section: &str, key: &str) -> (usize, usize) {
    let mut in_section = false;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            in_section = trimmed
                .trim_start_matches('[')
                .trim_end()
                .trim_end_matches(']')
                == section;
            continue;
        }
        if in_section && trimmed.split(['=', ' ']).next() == Some(key) {
            return (i + 1, line.len() - trimmed.len() + 1);
        }
    }
    (1, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_roundtrip_and_bundled_file_matches() {
        let bundled = include_str!("../appliance/vigil.toml");
        let parsed = Config::parse(bundled, "appliance/vigil.toml").expect("bundled config");
        let mut expected = Config::default();
        expected.eve.dir = parsed.eve.dir.clone();
        assert_eq!(
            parsed, expected,
            "appliance/vigil.toml must spell out the defaults"
        );
        assert_eq!(
            Config::parse(&Config::defaults_toml(), "x").unwrap(),
            Config::default()
        );
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let text = "[pipeline]\nworkers = 2\nbatch_pakets = 10\n";
        let err = Config::parse(text, "v.toml").unwrap_err().to_string();
        assert!(err.starts_with("v.toml:3:1: "), "{err}");
        assert!(err.contains("batch_pakets"), "{err}");
    }

    #[test]
    fn wrong_type_and_range_are_located() {
        let err = Config::parse("[flow]\nmemcap_bytes = \"lots\"\n", "v.toml").unwrap_err();
        assert!(err.to_string().starts_with("v.toml:2:16: "), "{err}");
        let err = Config::parse("[pipeline]\n\n  batch_packets = 0\n", "v.toml").unwrap_err();
        assert_eq!(
            err.to_string(),
            "v.toml:3:3: batch_packets must be 1..=65536"
        );
        let err = Config::parse("[flow.timeouts.tcp]\nnew = 1\n", "v.toml").unwrap_err();
        assert!(err.to_string().contains("missing field"), "{err}");
    }

    #[test]
    fn response_settings_are_checked_where_they_stand() {
        let err = Config::parse(
            "[response]\nenabled = true\ndrop_block_for = \"1w\"\n",
            "v.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("v.toml:3:18: "), "{err}");
        assert!(err.contains("unknown unit"), "{err}");
        let err = Config::parse("[response]\nallowlist = [\"10.0.0.0/40\"]\n", "v.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("v.toml:2:"), "{err}");
        assert!(err.contains("not an address or network"), "{err}");
        let text = "[response]\n\n[[response.policy]]\nsids = [1]\n\n[[response.policy]]\nsids = [2]\nreset = \"sideways\"\n";
        let err = Config::parse(text, "v.toml").unwrap_err().to_string();
        assert!(err.starts_with("v.toml:8:"), "{err}");
        let text =
            "[[response.policy]]\nsids = [1]\nblock = \"src\"\n\n[[response.policy]]\nsids = [2]\n";
        let err = Config::parse(text, "v.toml").unwrap_err().to_string();
        assert_eq!(
            err,
            "v.toml:5:1: response.policy: give `reset` or `block` (src, dst or both)"
        );
        let err = Config::parse("[response]\nnft_table = \"a b\"\n", "v.toml").unwrap_err();
        assert!(
            err.to_string().starts_with("v.toml:2:1: nft_table"),
            "{err}"
        );
        let ok = Config::parse(
            "[response]\nenabled = true\nallowlist = [\"192.0.2.0/24\", \"2001:db8::1\"]\n[[response.policy]]\nclasstype = \"trojan-activity\"\nmax_severity = 1\nblock = \"src\"\nfor = \"1h\"\n",
            "v.toml",
        )
        .unwrap();
        assert_eq!(ok.response.policies[0].block_for.0.as_secs(), 3600);
        assert_eq!(ok.response.allowlist.len(), 2);
    }
}
