//! Deterministic mixed-traffic pcap generator for Vigil's tests and benchmarks.
//!
//! [`generate`] streams a classic pcap of interleaved HTTP, TLS, DNS, NTP,
//! syslog, generic UDP and ICMP flows, some over IPv6, some inside VLAN,
//! QinQ, MPLS, GRE, ERSPAN, VXLAN, Geneve, IP-in-IP and Teredo
//! encapsulations, some fragmented, and returns per-flow ground truth.
//! The output depends only on the [`GenConfig`]: same config, same bytes.
//!
//! Each [`FlowTruth`] carries application ground truth ([`AppTruth`]: HTTP
//! transactions, DNS messages, TLS SNI/version/certificate, SSH banners).
//! [`Variants`] adds SSH, odd-port, binary, HTTP/DNS edge-case and TLS 1.2
//! flows, and [`Impair`] reorders, duplicates, drops or rewrites TCP
//! segments; both are off by default, leaving the default bytes unchanged.
//!
//! [`Scenario`]s inject labelled behaviours (port scans, host sweeps, DNS
//! tunnels and DGA lookups, beacons, exfiltration, protocols on the wrong
//! port) by dedicated actor hosts into the same background, and
//! [`GenSummary::scenarios`] says which host did what, when.
//!
//! [`writer`] re-encodes frames as pcap (either byte order, either
//! timestamp resolution, any snaplen), pcapng (EPB/SPB, several
//! interfaces) and other link types, so readers can be tested on all of them.

mod apps;
mod cert;
mod engine;
mod packet;
mod rng;
mod scenario;
mod variants;
pub mod writer;

use std::io::{self, Write};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

pub use writer::{
    convert_frames, convert_linktype, write_pcap, write_pcapng, write_pcapng_two_interfaces,
    Endian, LinkType, PcapOptions, PcapWriter, PcapngBlock, PcapngInterface, PcapngOptions,
    PcapngWriter, TsPrecision,
};

/// Relative weights of application flow kinds (by flow count).
#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    /// HTTP/1.1 over TCP 80 / 8080.
    pub http: u32,
    /// TLS 1.3 over TCP 443.
    pub tls: u32,
    /// DNS over UDP 53 (a few over TCP 53).
    pub dns: u32,
    /// NTP, syslog, random high-port UDP.
    pub other_udp: u32,
    /// ICMP / ICMPv6 echo, occasional destination-unreachable.
    pub icmp: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            http: 18,
            tls: 17,
            dns: 42,
            other_udp: 13,
            icmp: 10,
        }
    }
}

/// Relative weights (same units as [`Mix`]) of the application-layer
/// variant flows. All 0 by default, so default output is unchanged;
/// [`Variants::standard`] is what `vigil-pcapgen --app-variants` uses.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Variants {
    /// SSH over TCP 22: banners, KEXINIT both ways, ECDH, NEWKEYS, then
    /// encrypted-looking packets.
    pub ssh: u32,
    /// A protocol on an unusual port: HTTP on 8081, TLS on 8443, DNS on
    /// UDP 5353, SSH on 2222 (equally often).
    pub odd_ports: u32,
    /// Random binary on TCP 80 or 443: protocol detection must fail.
    pub binary: u32,
    /// HTTP/1.1 variants: chunked, gzip, pipelined, 100-continue, HEAD,
    /// close-delimited responses.
    pub http: u32,
    /// DNS variants: NXDOMAIN, truncated (TC) UDP answer, two queries on one
    /// TCP connection, TXT, MX, CNAME chains.
    pub dns: u32,
    /// TLS 1.2 with a visible self-signed certificate.
    pub tls12: u32,
}

impl Variants {
    /// Every variant kind, together about a third of all flows next to the
    /// default [`Mix`].
    pub fn standard() -> Self {
        Variants {
            ssh: 6,
            odd_ports: 8,
            binary: 3,
            http: 14,
            dns: 10,
            tls12: 8,
        }
    }
}

/// TCP impairments (probabilities, all 0 by default). They apply to the
/// data segments of every TCP flow; handshakes and FINs are left alone.
/// Decisions come from a per-flow RNG of their own, so turning them on
/// changes no other byte of a flow.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Impair {
    /// Per data segment: sent after the segment that follows it.
    pub reorder: f64,
    /// Per data segment: sent twice (identical retransmission).
    pub dup: f64,
    /// Per data segment: never written, yet ACKed afterwards (a gap).
    pub loss: f64,
    /// Per TCP flow: one data segment is retransmitted with the second half
    /// of its bytes different. The first copy carries the real data, which
    /// the flow's `app_layer` truth describes.
    pub overlap: f64,
}

impl Impair {
    pub(crate) fn any(&self) -> bool {
        self.reorder > 0.0 || self.dup > 0.0 || self.loss > 0.0 || self.overlap > 0.0
    }

    /// Parses `reorder=0.05,dup=0.02,loss=0.01,overlap=0.01` (any subset).
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut imp = Impair::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("expected KEY=PROB, got {part:?}"))?;
            let p: f64 = v
                .parse()
                .map_err(|_| format!("bad probability {v:?} for {k}"))?;
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{k}={p}: probability must be in 0..=1"));
            }
            match k {
                "reorder" => imp.reorder = p,
                "dup" => imp.dup = p,
                "loss" => imp.loss = p,
                "overlap" => imp.overlap = p,
                _ => {
                    return Err(format!(
                        "unknown impairment {k:?} (reorder, dup, loss, overlap)"
                    ))
                }
            }
        }
        Ok(imp)
    }
}

/// Which encapsulations may be used (each is used equally often among the
/// encapsulated flows).
#[derive(Debug, Clone, PartialEq)]
pub struct Encaps {
    pub vlan: bool,
    pub qinq: bool,
    pub mpls: bool,
    /// Plain GRE (IPv4 and IPv6 payloads) and GRE with key.
    pub gre: bool,
    pub erspan: bool,
    pub vxlan: bool,
    pub geneve: bool,
    /// IPv4-in-IPv4 (proto 4) and IPv6-in-IPv4 (proto 41).
    pub ipip: bool,
    pub teredo: bool,
}

impl Default for Encaps {
    fn default() -> Self {
        Encaps {
            vlan: true,
            qinq: true,
            mpls: true,
            gre: true,
            erspan: true,
            vxlan: true,
            geneve: true,
            ipip: true,
            teredo: true,
        }
    }
}

impl Encaps {
    /// No encapsulation at all: plain Ethernet only.
    pub fn none() -> Self {
        Encaps {
            vlan: false,
            qinq: false,
            mpls: false,
            gre: false,
            erspan: false,
            vxlan: false,
            geneve: false,
            ipip: false,
            teredo: false,
        }
    }
}

/// Generator configuration. Build with [`GenConfig::new`] and adjust fields.
#[derive(Debug, Clone, PartialEq)]
pub struct GenConfig {
    pub seed: u64,
    /// Approximate output file size; generation stops starting new flows
    /// once written + pending bytes reach it (active flows finish).
    pub target_bytes: u64,
    /// Timestamp of the first flow's start, seconds since the epoch.
    pub base_ts_secs: u64,
    /// Nanosecond pcap (magic 0xa1b23c4d) instead of microsecond.
    pub nanos: bool,
    /// Mean flow arrival rate (Poisson).
    pub flows_per_sec: f64,
    pub mix: Mix,
    /// Share of non-tunnelled flows carried over IPv6.
    pub ipv6_share: f64,
    /// Share of flows (by count) that are encapsulated.
    pub encap_share: f64,
    pub encaps: Encaps,
    /// Share of UDP flows (DNS, generic UDP) that send datagrams larger
    /// than the MTU, i.e. IPv4/IPv6 fragments.
    pub fragment_share: f64,
    /// Probability that a fragmented datagram is sent last-fragment-first.
    pub frag_reverse_prob: f64,
    /// Fault injection: probability that one fragment of a fragmented
    /// datagram is dropped. Such a datagram is not counted in the flow's
    /// `pkts_*`; the fragments that were sent are counted in `bytes_*`.
    pub frag_drop_prob: f64,
    /// Extra application-layer flow kinds (off by default).
    pub variants: Variants,
    /// TCP impairments (off by default).
    pub impair: Impair,
    /// Behaviours injected into the background (none by default). The
    /// background flows and their bytes are the same with or without them;
    /// scenario traffic comes on top of `target_bytes`.
    pub scenarios: Vec<Scenario>,
}

impl GenConfig {
    pub fn new(seed: u64, target_bytes: u64) -> Self {
        GenConfig {
            seed,
            target_bytes,
            ..Default::default()
        }
    }
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            seed: 1,
            target_bytes: 1 << 20,
            base_ts_secs: 1_715_594_400,
            nanos: false,
            flows_per_sec: 100.0,
            mix: Mix::default(),
            ipv6_share: 0.15,
            encap_share: 0.12,
            encaps: Encaps::default(),
            fragment_share: 0.08,
            frag_reverse_prob: 0.2,
            frag_drop_prob: 0.0,
            variants: Variants::default(),
            impair: Impair::default(),
            scenarios: Vec::new(),
        }
    }
}

/// A behaviour that anomaly detectors should find. Serialized in snake_case
/// (`port_scan`, `host_sweep`, ...), as [`ScenarioKind::name`] spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScenarioKind {
    /// One source probes 60–300 TCP ports of one target (SYN, FIN, NULL or
    /// XMAS scan).
    PortScan,
    /// One source tries 40–200 addresses of a /24 or /16 on one TCP port,
    /// or sends them ICMP echo requests.
    HostSweep,
    /// 200–1000 high-entropy queries under one domain to one resolver, or
    /// (DGA) 50–200 random-looking domains, mostly NXDOMAIN.
    DnsTunnel,
    /// Periodic small TCP 443/80 connections to one external host.
    Beacon,
    /// A large upload to a destination the host never contacted before,
    /// after a few ordinary flows of the same host.
    Exfil,
    /// HTTP, TLS or SSH on an unusual port, or binary on 80/443.
    ProtocolMisuse,
}

impl ScenarioKind {
    pub const ALL: [ScenarioKind; 6] = [
        ScenarioKind::PortScan,
        ScenarioKind::HostSweep,
        ScenarioKind::DnsTunnel,
        ScenarioKind::Beacon,
        ScenarioKind::Exfil,
        ScenarioKind::ProtocolMisuse,
    ];

    /// The snake_case name used in JSON and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ScenarioKind::PortScan => "port_scan",
            ScenarioKind::HostSweep => "host_sweep",
            ScenarioKind::DnsTunnel => "dns_tunnel",
            ScenarioKind::Beacon => "beacon",
            ScenarioKind::Exfil => "exfil",
            ScenarioKind::ProtocolMisuse => "protocol_misuse",
        }
    }

    /// Inverse of [`ScenarioKind::name`].
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// `count` independent actors of one kind, each its own host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    pub kind: ScenarioKind,
    /// Actors of this kind (at most [`Scenario::MAX_COUNT`]; more are ignored).
    pub count: u32,
}

impl Scenario {
    /// Each kind's actors live in one 10.x.0.0/16 (a few addresses per /24 are skipped).
    pub const MAX_COUNT: u32 = 60_000;
}

/// Ground truth of one scenario actor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioTruth {
    pub kind: ScenarioKind,
    /// The host showing the behaviour (never a background host).
    pub actor: IpAddr,
    /// Scanned host, resolver, beacon/exfil destination or misused server;
    /// None for host sweeps (many targets, named in `detail`).
    pub target: Option<IpAddr>,
    /// The one destination port, when there is one (sweep port, 53, 443, ...).
    pub port: Option<u16>,
    /// First and last packet of the behaviour's flows. An exfil actor's
    /// ordinary baseline flows come before `start_ts_ns` and are not part of it.
    pub start_ts_ns: u64,
    pub end_ts_ns: u64,
    /// Human-readable parameters, e.g. "syn scan of 143 ports (2 open)",
    /// "period 60.0 s ±15 %, 9 connections", "uploaded 31457280 bytes ...".
    pub detail: String,
    /// Beacons: the nominal period between connections.
    pub period_secs: Option<f64>,
}

/// Outer tunnel of a flow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TunnelTruth {
    /// "GRE", "ERSPAN", "VXLAN", "GENEVE", "IPIP" (also IPv6-in-IPv4), "TEREDO".
    pub kind: &'static str,
    /// Outer source address of client-to-server packets.
    pub outer_client: IpAddr,
    pub outer_server: IpAddr,
    /// VXLAN/Geneve VNI, GRE key, ERSPAN session id; 0 otherwise.
    pub id: u32,
}

/// Ground truth for one conversation (5-tuple in one VLAN/tunnel context).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowTruth {
    /// 6, 17, 1 or 58.
    pub proto: u8,
    pub client: IpAddr,
    pub server: IpAddr,
    /// 0 for ICMP.
    pub client_port: u16,
    pub server_port: u16,
    /// VLAN ids, outer first (QinQ: [S-tag, C-tag]).
    pub vlans: Vec<u16>,
    /// MPLS labels, top of stack first.
    pub mpls: Vec<u32>,
    pub tunnel: Option<TunnelTruth>,
    /// "http", "tls", "dns", "dns-tcp", "ntp", "syslog", "udp",
    /// "icmp-echo", "udp-closed" (probe) or "icmp-unreach" (its error,
    /// which travels server-to-client only).
    pub app: &'static str,
    /// IP datagrams; a fragmented datagram counts once.
    pub pkts_toserver: u64,
    pub pkts_toclient: u64,
    /// Sum of Ethernet frame lengths (outermost), every fragment included.
    pub bytes_toserver: u64,
    pub bytes_toclient: u64,
    /// Datagrams of this flow that were sent as fragments.
    pub fragmented: u32,
    pub first_ts_ns: u64,
    pub last_ts_ns: u64,
    /// Which variant script made the flow ("chunked", "gzip", "pipelined",
    /// "expect-100", "head", "close", "nxdomain", "tc", "tcp-2q", "cname",
    /// "txt", "mx", "tls12", "odd-port", ...), or for a scenario actor's
    /// behaviour flows the [`ScenarioKind`] name ("port_scan", ...);
    /// absent for default flows (and an exfil actor's baseline flows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<&'static str>,
    /// What an application-layer parser should find, independent of the
    /// port. Absent for NTP, syslog, generic UDP and ICMP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_layer: Option<AppTruth>,
    /// TCP impairments applied to this flow (only with [`Impair`] on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impair: Option<ImpairTruth>,
}

/// Application-layer ground truth of one flow, comparable one by one with
/// EVE `http`, `dns`, `tls` and `ssh` events. Serialized with a `"proto"` tag.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "proto", rename_all = "lowercase")]
pub enum AppTruth {
    /// Request/response transactions in order.
    Http {
        transactions: Vec<HttpTx>,
    },
    /// Every DNS message on the wire (queries and responses) in wire order.
    Dns {
        messages: Vec<DnsMsg>,
    },
    Tls(TlsTruth),
    Ssh(SshTruth),
    /// Random binary (on TCP 80/443): detection should fail (Suricata:
    /// `app_proto` "failed").
    Unknown,
}

impl AppTruth {
    /// "http", "dns", "tls", "ssh" or "unknown".
    pub fn proto(&self) -> &'static str {
        match self {
            AppTruth::Http { .. } => "http",
            AppTruth::Dns { .. } => "dns",
            AppTruth::Tls(_) => "tls",
            AppTruth::Ssh(_) => "ssh",
            AppTruth::Unknown => "unknown",
        }
    }
}

/// One HTTP/1.1 transaction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpTx {
    pub method: String,
    /// Host header value as sent (with ":port" on non-default ports).
    pub host: String,
    pub uri: String,
    pub user_agent: String,
    /// Request body bytes (Content-Length).
    pub request_body_len: u64,
    /// Final status (an interim 100 Continue is not a transaction).
    pub status: u16,
    pub content_type: Option<String>,
    /// Response body as on the wire after dechunking, before any
    /// Content-Encoding is undone (what Suricata logs as `length`). 0 for HEAD.
    pub response_body_len: u64,
    /// Response body after undoing Content-Encoding.
    pub response_entity_len: u64,
    pub chunked: bool,
    /// "gzip" when the body is gzip-encoded.
    pub content_encoding: Option<String>,
    /// The body ends with the server's FIN (no length, not chunked).
    pub close_delimited: bool,
    /// The client sent `Expect: 100-continue` and got `100 Continue`.
    pub expect_continue: bool,
}

/// One DNS message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DnsMsg {
    pub response: bool,
    pub id: u16,
    pub qname: String,
    /// "A", "AAAA", "MX", "TXT", "CNAME", ...
    pub qtype: String,
    /// "NOERROR", "NXDOMAIN", ... (queries: "NOERROR").
    pub rcode: String,
    /// TC (truncated) bit.
    pub tc: bool,
    /// Types of the answer-section records in order.
    pub answer_types: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TlsTruth {
    pub sni: Option<String>,
    /// Negotiated version as Suricata prints it: "TLS 1.2", "TLS 1.3".
    pub version: String,
    /// Server certificate, when it travels in clear (TLS 1.2).
    pub cert: Option<CertTruth>,
}

impl TlsTruth {
    pub fn cert_visible(&self) -> bool {
        self.cert.is_some()
    }
}

/// Formats follow Suricata's EVE `tls` fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CertTruth {
    /// "C=US, O=..., CN=..."
    pub subject: String,
    pub issuer: String,
    /// Upper-case hex bytes joined by ':'.
    pub serial: String,
    /// SHA-1 of the DER certificate, lower-case hex bytes joined by ':'.
    pub fingerprint: String,
    pub not_before: String,
    pub not_after: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SshTruth {
    /// Identification lines without CR LF, e.g. "SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13".
    pub client_banner: String,
    pub server_banner: String,
}

/// TCP impairments applied to one flow. Offsets count payload bytes of one
/// direction from 0 (the byte after the SYN).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ImpairTruth {
    /// Data segments the flow's byte streams were cut into (both
    /// directions, before impairments).
    pub data_segments: u32,
    /// Segments sent after their successor.
    pub reordered: u32,
    /// Identical retransmissions sent.
    pub duplicated: u32,
    /// Segments never written (yet ACKed): the receiver of `dir` sees gaps.
    pub lost: Vec<GapTruth>,
    /// Retransmissions whose bytes differ from the first copy.
    pub overlaps: Vec<OverlapTruth>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GapTruth {
    /// "toserver" or "toclient".
    pub dir: &'static str,
    pub offset: u64,
    pub len: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OverlapTruth {
    pub dir: &'static str,
    /// Start of the bytes that differ between the two copies.
    pub offset: u64,
    /// The bytes the first copy had (the real data), then the
    /// retransmission's; hex-encoded, same length.
    pub first_hex: String,
    pub second_hex: String,
}

/// What a generation run produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GenSummary {
    /// Frames written.
    pub packets: u64,
    /// Classic pcap bytes (global header + records).
    pub bytes_written: u64,
    /// One entry per generated flow, in flow start order.
    pub flows: Vec<FlowTruth>,
    /// One entry per scenario actor, in [`GenConfig::scenarios`] order.
    /// Left out of the JSON when empty, so truth files without scenarios
    /// keep their old shape.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scenarios: Vec<ScenarioTruth>,
}

/// Streams a classic little-endian pcap (Ethernet) to `out`.
///
/// Memory holds only the frames of flows still in progress.
pub fn generate(cfg: &GenConfig, out: impl Write) -> io::Result<GenSummary> {
    let opts = PcapOptions {
        precision: if cfg.nanos {
            TsPrecision::Nano
        } else {
            TsPrecision::Micro
        },
        ..PcapOptions::default()
    };
    let mut w = PcapWriter::new(io::BufWriter::with_capacity(1 << 20, out), opts)?;
    let summary = engine::run(cfg, |ts, frame| w.write_packet(ts, frame))?;
    w.into_inner()?.flush()?;
    Ok(summary)
}

/// Streams frames `(timestamp ns, Ethernet frame)` in time order to `sink`
/// without writing any file format, e.g. to re-encode them on the fly.
/// The summary's `bytes_written` is what the classic pcap would take.
pub fn generate_each(
    cfg: &GenConfig,
    sink: impl FnMut(u64, &[u8]) -> io::Result<()>,
) -> io::Result<GenSummary> {
    engine::run(cfg, sink)
}

/// Generates into memory: frames as `(timestamp ns, Ethernet frame)` in
/// time order, plus the truth. Meant for small sizes in tests.
pub fn generate_frames(cfg: &GenConfig) -> (Vec<(u64, Vec<u8>)>, GenSummary) {
    let mut frames = Vec::new();
    let summary = engine::run(cfg, |ts, f| {
        frames.push((ts, f.to_vec()));
        Ok(())
    })
    .expect("in-memory sink cannot fail");
    (frames, summary)
}
