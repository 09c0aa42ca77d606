//! EVE JSON events: the structs workers hand over by value, and their serialization (done on the
//! output thread) with Suricata's field names and types.

use std::net::IpAddr;

use serde::Serialize;
use serde_json::{json, Map, Value};
use vigil_parsers::{TunnelContext, TunnelKind, MAX_VLANS};

use super::time::{eve_time, EveTime};
use crate::flow::key::CommunityTuple;
use crate::flow::key::{PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP, PROTO_TCP, PROTO_UDP};
use crate::flow::{community_id_v1, FlowRecord};
use crate::stats::RunStats;
use std::borrow::Cow;
use vigil_parsers::app::{AppProto, AppRecord};
use vigil_parsers::text::{eve_addr, AddrStr, InlineStr};

/// A decoder anomaly seen on one packet.
#[derive(Debug, Clone, Copy)]
pub struct AnomalyEvent {
    pub ts_ns: u64,
    /// 1-based packet number in the input, as Suricata's `pcap_cnt`.
    pub pcap_cnt: u64,
    pub event: &'static str,
    /// Addresses and ports when decoding got that far.
    pub l3: Option<(IpAddr, IpAddr, u8)>,
    pub ports: Option<(u16, u16)>,
    pub vlans: [u16; MAX_VLANS],
    pub vlan_count: u8,
    pub tunnel: TunnelContext,
    /// Index into the run's list of input files.
    pub file_index: u32,
}

/// A signature match: the rule (by index into its loaded set) and what it matched in.
#[derive(Clone)]
pub struct AlertEvent {
    pub rules: std::sync::Arc<vigil_signatures::RuleSet>,
    pub sig: u32,
    pub direction: vigil_parsers::app::Direction,
    pub app_proto: Option<AppProto>,
    /// The transaction the rule matched in, logged beside the alert (`http`, `dns`, …).
    pub record: Option<AppRecord>,
    /// The flow as it was when the alert fired, for the `flow` sub-object; `None` for packets
    /// outside flows.
    pub flow: Option<FlowRecord>,
    /// What the alert carries of its packet (`[eve] payload`, `packet`, …); `None` when those
    /// are off or no packet raised it (a flow's end).
    pub capture: Option<Box<AlertCapture>>,
    /// A payload rule matched the reassembled stream, not the packet alone: the alert's
    /// payload is then the stream's bytes (`stream: 1`).
    pub stream: bool,
    /// The flow's rule variables when the alert fired (`metadata`, `traffic`).
    pub vars: Option<Box<FlowVarsLog>>,
}

/// `[eve]` switches for what alerts carry of their packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertCaptureConfig {
    pub payload: bool,
    pub payload_printable: bool,
    pub payload_length: bool,
    pub packet: bool,
    pub payload_buffer_size: usize,
}

/// The bytes of an alerting packet an alert carries, copied by the worker when the packet
/// alerted (never for other packets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertCapture {
    pub config: AlertCaptureConfig,
    /// The packet's payload, cut to `payload_buffer_size`; empty unless `payload` or
    /// `payload_printable` is on.
    pub payload: Vec<u8>,
    /// The payload's length before the cut.
    pub payload_len: u32,
    /// The whole frame (`packet` on) and its pcap link type.
    pub packet: Option<(Vec<u8>, u32)>,
    /// `payload` holds reassembled stream bytes rather than the packet's.
    pub stream: bool,
}

impl AlertCapture {
    /// Copies what `config` asks for from a packet's `frame` bytes and its `payload`.
    pub fn copy(config: AlertCaptureConfig, frame: &[u8], link: u32, payload: &[u8]) -> Self {
        let payload_bytes = if config.payload || config.payload_printable {
            payload[..payload.len().min(config.payload_buffer_size)].to_vec()
        } else {
            Vec::new()
        };
        AlertCapture {
            config,
            payload: payload_bytes,
            payload_len: payload.len() as u32,
            packet: config.packet.then(|| (frame.to_vec(), link)),
            stream: false,
        }
    }
}

/// Suricata's `payload_printable`: printable ASCII, CR and LF kept, every other byte '.'.
pub fn printable(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if (0x20..0x7f).contains(&b) || b == b'\n' || b == b'\r' {
                b as char
            } else {
                '.'
            }
        })
        .collect()
}

/// Suricata's `packet_info.linktype_name` for a pcap link type (its own short table).
fn linktype_name(link: u32) -> &'static str {
    match link {
        0 => "NULL",
        1 => "EN10MB",
        9 => "PPP",
        14 => "RAW2",
        101 => "RAW",
        104 => "C_HDLC",
        113 => "LINUX_SLL",
        228 => "IPv4",
        229 => "IPv6",
        276 => "LINUX_SLL2",
        _ => "n/a",
    }
}

impl std::fmt::Debug for AlertEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sig = self.rules.sig(self.sig);
        f.debug_struct("AlertEvent")
            .field("gid", &sig.gid)
            .field("sid", &sig.sid)
            .field("direction", &self.direction)
            .finish_non_exhaustive()
    }
}

/// What an application-layer event reports.
#[derive(Debug, Clone)]
pub enum AppEventKind {
    /// An EVE `alert`.
    Alert(Box<AlertEvent>),
    /// A protocol record: EVE `http`, `dns`, `tls`, `ssh`.
    Record(AppRecord),
    /// An EVE `fileinfo`: a file an HTTP transaction carried, with the transaction's `http`
    /// object (shared with its `http` event).
    File {
        tx: std::sync::Arc<vigil_parsers::app::http::HttpTransaction>,
        file: vigil_parsers::app::http::HttpFile,
    },
    /// An EVE `anomaly` of type `applayer` (parser or detection finding) or `stream`.
    Anomaly {
        kind: &'static str,
        event: &'static str,
        app_proto: Option<AppProto>,
        layer: Option<&'static str>,
    },
}

/// An event of a flow's application layer, with the flow context it is logged with.
#[derive(Debug, Clone)]
pub struct AppEvent {
    pub ts_ns: u64,
    /// The packet that completed it; `None` when the flow's end did.
    pub pcap_cnt: Option<u64>,
    pub file_index: Option<u32>,
    pub flow_id: u64,
    /// Source and destination as the event is oriented (the flow's, or the packet's for DNS
    /// responses and anomalies).
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ports: Option<(u16, u16)>,
    pub proto: u8,
    pub vlans: [u16; MAX_VLANS],
    pub tunnel: TunnelContext,
    pub community: CommunityTuple,
    pub tx_id: Option<u64>,
    /// ICMP type and code of the packet the event is about (Suricata logs them in the header of
    /// every packet event); `None` for other protocols and events without a packet.
    pub icmp: Option<(u8, u8)>,
    pub kind: AppEventKind,
}

impl AppEvent {
    /// An event of `rec`'s flow, oriented as `dir` travels; `packet` is the (pcap_cnt,
    /// file index) of the packet that completed it.
    pub fn of_flow(
        rec: &FlowRecord,
        dir: vigil_parsers::app::Direction,
        ts_ns: u64,
        packet: Option<(u64, u32)>,
        tx_id: Option<u64>,
        kind: AppEventKind,
    ) -> AppEvent {
        let (src, dst, ports) = rec.oriented(dir);
        AppEvent {
            ts_ns,
            pcap_cnt: packet.map(|p| p.0),
            file_index: packet.map(|p| p.1),
            flow_id: rec.flow_id,
            src,
            dst,
            ports,
            proto: rec.proto,
            vlans: rec.key.vlans,
            tunnel: rec.tunnel,
            community: rec.community,
            tx_id,
            icmp: None,
            kind,
        }
    }
}

/// What workers and the pipeline hand to the output thread.
#[derive(Debug, Clone)]
pub enum EveEvent {
    /// A flow record, with its rule variables when rules set any.
    Flow(FlowRecord, Option<Box<FlowVarsLog>>),
    Anomaly(AnomalyEvent),
    App(Box<AppEvent>),
    Stats(Box<RunStats>),
    /// An active-response action or refusal.
    Response(Box<crate::response::event::ResponseEvent>),
    /// An anomaly model's alert.
    ModelAlert(Box<crate::anomaly::ModelAlert>),
}

impl EveEvent {
    /// The EVE `event_type` this renders as (what upstream sinks filter on).
    pub fn event_type(&self) -> super::sink::EventType {
        use super::sink::EventType;
        match self {
            EveEvent::Flow(..) => EventType::Flow,
            EveEvent::Anomaly(_) => EventType::Anomaly,
            EveEvent::Stats(_) => EventType::Stats,
            EveEvent::Response(_) => EventType::Response,
            EveEvent::ModelAlert(_) => EventType::Alert,
            EveEvent::App(a) => match &a.kind {
                AppEventKind::Alert(_) => EventType::Alert,
                AppEventKind::Anomaly { .. } => EventType::Anomaly,
                AppEventKind::File { .. } => EventType::FileInfo,
                AppEventKind::Record(r) => match r {
                    AppRecord::Http(_) => EventType::Http,
                    AppRecord::Dns(_) => EventType::Dns,
                    AppRecord::Tls(_) => EventType::Tls,
                    AppRecord::Ssh(_) => EventType::Ssh,
                },
            },
        }
    }

    /// The event's time (its `timestamp`), nanoseconds since the Unix epoch.
    pub fn ts_ns(&self) -> u64 {
        match self {
            EveEvent::Flow(f, _) => f.last_ts_ns,
            EveEvent::Anomaly(a) => a.ts_ns,
            EveEvent::App(a) => a.ts_ns,
            EveEvent::Stats(s) => s.last_ts_ns,
            EveEvent::Response(r) => r.ts_ns,
            EveEvent::ModelAlert(a) => a.ts_ns,
        }
    }
}

/// How events are rendered: settings that do not change during a run.
#[derive(Debug, Clone)]
pub struct EveFormat {
    pub community_id_seed: u16,
    /// Input file names, for `capture_file`.
    pub files: Vec<String>,
}

pub fn proto_name(proto: u8) -> Cow<'static, str> {
    Cow::Borrowed(match proto {
        PROTO_TCP => "TCP",
        PROTO_UDP => "UDP",
        PROTO_ICMP => "ICMP",
        PROTO_ICMPV6 => "IPv6-ICMP",
        PROTO_SCTP => "SCTP",
        4 => "IPv4",
        41 => "IPv6",
        47 => "GRE",
        50 => "ESP",
        51 => "AH",
        other => return Cow::Owned(other.to_string()),
    })
}

/// An address as Suricata writes it: IPv4 dotted, IPv6 as eight zero-padded groups
/// (`2001:0db8:0000:…`), so SIEM content that matches Suricata's strings matches Vigil's.
pub fn eve_ip(addr: &IpAddr) -> AddrStr {
    match addr {
        IpAddr::V4(a) => eve_addr(&a.octets()),
        IpAddr::V6(a) => eve_addr(&a.octets()),
    }
}

#[derive(Serialize)]
struct TunnelJson {
    src_ip: AddrStr,
    dest_ip: AddrStr,
    #[serde(skip_serializing_if = "Option::is_none")]
    src_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dest_port: Option<u16>,
    proto: Cow<'static, str>,
    depth: u8,
}

fn tunnel_json(t: &TunnelContext) -> Option<TunnelJson> {
    if t.kind == TunnelKind::None {
        return None;
    }
    let udp = t.outer_proto == PROTO_UDP;
    Some(TunnelJson {
        src_ip: eve_ip(&t.outer_src),
        dest_ip: eve_ip(&t.outer_dst),
        src_port: udp.then_some(t.outer_src_port),
        dest_port: udp.then_some(t.outer_dst_port),
        proto: proto_name(t.outer_proto),
        depth: t.depth,
    })
}

fn vlans(v: &[u16; MAX_VLANS], count: usize) -> Option<Vec<u16>> {
    (count > 0).then(|| v[..count.min(MAX_VLANS)].to_vec())
}

fn vlan_count(v: &[u16; MAX_VLANS]) -> usize {
    // The key stores unused tags as 0; VLAN id 0 (priority tag) ends the list too, which loses
    // only a priority-only tag's presence in the event, not the flow's identity.
    v.iter().take_while(|&&id| id != 0).count()
}

fn tcp_flags_hex(f: u8) -> InlineStr<2> {
    let mut s = InlineStr::new();
    s.push_hex_byte(f);
    s
}

#[derive(Serialize)]
struct FlowSection {
    pkts_toserver: u64,
    pkts_toclient: u64,
    bytes_toserver: u64,
    bytes_toclient: u64,
    start: EveTime,
    end: EveTime,
    age: u64,
    state: &'static str,
    reason: &'static str,
    alerted: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    emergency: bool,
}

#[derive(Serialize)]
struct TcpSection {
    tcp_flags: InlineStr<2>,
    tcp_flags_ts: InlineStr<2>,
    tcp_flags_tc: InlineStr<2>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    syn: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    fin: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    rst: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    psh: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    ack: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    urg: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    ecn: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    cwr: bool,
    state: &'static str,
}

#[derive(Serialize)]
struct FlowJson<'a> {
    timestamp: EveTime,
    flow_id: u64,
    event_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    vlan: Option<Vec<u16>>,
    src_ip: AddrStr,
    #[serde(skip_serializing_if = "Option::is_none")]
    src_port: Option<u16>,
    dest_ip: AddrStr,
    #[serde(skip_serializing_if = "Option::is_none")]
    dest_port: Option<u16>,
    ip_v: u8,
    proto: Cow<'static, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    icmp_type: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    icmp_code: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_icmp_type: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_icmp_code: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tunnel: Option<TunnelJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_proto: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_proto_orig: Option<&'static str>,
    flow: FlowSection,
    #[serde(skip_serializing_if = "Option::is_none")]
    tcp: Option<TcpSection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<MetadataJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    traffic: Option<TrafficJson<'a>>,
    community_id: String,
}

/// A flow's rule variables by name, as its end left them (in the order they were set).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowVarsLog {
    pub flowbits: Vec<String>,
    pub flowints: Vec<(String, i64)>,
}

/// Flowbits named `traffic/id/NAME` and `traffic/label/NAME` tag the flow's traffic (Suricata
/// logs them as `traffic.id` and `traffic.label`); the others are logged as they are.
const TRAFFIC_ID_PREFIX: &str = "traffic/id/";
const TRAFFIC_LABEL_PREFIX: &str = "traffic/label/";

/// `metadata`: flowbits other than traffic tags, and flowints.
#[derive(Serialize)]
struct MetadataJson<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    flowbits: Vec<&'a str>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "ints_as_object"
    )]
    flowints: Vec<(&'a str, i64)>,
}

fn ints_as_object<S: serde::Serializer>(ints: &[(&str, i64)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(ints.iter().map(|(k, v)| (*k, *v)))
}

#[derive(Serialize)]
struct TrafficJson<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    id: Vec<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    label: Vec<&'a str>,
}

/// The `metadata` and `traffic` objects for `vars`, each only when it has something.
fn vars_json(vars: Option<&FlowVarsLog>) -> (Option<MetadataJson<'_>>, Option<TrafficJson<'_>>) {
    let Some(vars) = vars else {
        return (None, None);
    };
    let mut flowbits = Vec::new();
    let mut traffic = TrafficJson {
        id: Vec::new(),
        label: Vec::new(),
    };
    for bit in &vars.flowbits {
        if let Some(id) = bit.strip_prefix(TRAFFIC_ID_PREFIX) {
            traffic.id.push(id);
        } else if let Some(label) = bit.strip_prefix(TRAFFIC_LABEL_PREFIX) {
            traffic.label.push(label);
        } else {
            flowbits.push(bit.as_str());
        }
    }
    let flowints: Vec<(&str, i64)> = vars
        .flowints
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    let metadata = (!flowbits.is_empty() || !flowints.is_empty())
        .then_some(MetadataJson { flowbits, flowints });
    let traffic = (!traffic.id.is_empty() || !traffic.label.is_empty()).then_some(traffic);
    (metadata, traffic)
}

fn flow_json<'a>(f: &FlowRecord, vars: Option<&'a FlowVarsLog>, fmt: &EveFormat) -> FlowJson<'a> {
    let (src_port, dest_port) = match f.ports {
        Some((s, d)) => (Some(s), Some(d)),
        None => (None, None),
    };
    let tcp = (f.proto == PROTO_TCP).then(|| {
        let all = f.tcp_flags_ts | f.tcp_flags_tc;
        TcpSection {
            tcp_flags: tcp_flags_hex(all),
            tcp_flags_ts: tcp_flags_hex(f.tcp_flags_ts),
            tcp_flags_tc: tcp_flags_hex(f.tcp_flags_tc),
            syn: all & vigil_parsers::TCP_SYN != 0,
            fin: all & vigil_parsers::TCP_FIN != 0,
            rst: all & vigil_parsers::TCP_RST != 0,
            psh: all & vigil_parsers::TCP_PSH != 0,
            ack: all & vigil_parsers::TCP_ACK != 0,
            urg: all & vigil_parsers::TCP_URG != 0,
            ecn: all & vigil_parsers::TCP_ECE != 0,
            cwr: all & vigil_parsers::TCP_CWR != 0,
            state: f.tcp_state.as_str(),
        }
    });
    let age = f.last_ts_ns / 1_000_000_000 - f.first_ts_ns / 1_000_000_000;
    let (metadata, traffic) = vars_json(vars);
    FlowJson {
        timestamp: eve_time(f.first_ts_ns),
        flow_id: f.flow_id,
        event_type: "flow",
        vlan: vlans(&f.key.vlans, vlan_count(&f.key.vlans)),
        src_ip: eve_ip(&f.client_addr),
        src_port,
        dest_ip: eve_ip(&f.server_addr),
        dest_port,
        ip_v: if f.client_addr.is_ipv4() { 4 } else { 6 },
        proto: proto_name(f.proto),
        icmp_type: f.icmp.map(|i| i.icmp_type),
        icmp_code: f.icmp.map(|i| i.code),
        response_icmp_type: f.icmp.and_then(|i| i.response.map(|r| r.0)),
        response_icmp_code: f.icmp.and_then(|i| i.response.map(|r| r.1)),
        tunnel: tunnel_json(&f.tunnel),
        // Absent while nothing was inspected (no payload), as Suricata leaves it.
        app_proto: (f.app_proto != AppProto::Unknown).then(|| f.app_proto.as_str()),
        app_proto_orig: f.app_proto_orig.map(AppProto::as_str),
        flow: FlowSection {
            pkts_toserver: f.pkts_toserver,
            pkts_toclient: f.pkts_toclient,
            bytes_toserver: f.bytes_toserver,
            bytes_toclient: f.bytes_toclient,
            start: eve_time(f.first_ts_ns),
            end: eve_time(f.last_ts_ns),
            age,
            state: f.state().as_str(),
            reason: f.end.as_str(),
            alerted: f.alerted,
            emergency: f.emergency,
        },
        tcp,
        metadata,
        traffic,
        community_id: community_id_v1(&f.community, fmt.community_id_seed),
    }
}

#[derive(Serialize)]
struct AnomalySection {
    #[serde(rename = "type")]
    kind: &'static str,
    event: &'static str,
}

#[derive(Serialize)]
struct AnomalyJson<'a> {
    timestamp: EveTime,
    event_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    vlan: Option<Vec<u16>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    src_ip: Option<AddrStr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    src_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dest_ip: Option<AddrStr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dest_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    proto: Option<Cow<'static, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tunnel: Option<TunnelJson>,
    pkt_src: &'static str,
    pcap_cnt: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    capture_file: Option<&'a str>,
    anomaly: AnomalySection,
}

fn anomaly_json<'a>(a: &AnomalyEvent, fmt: &'a EveFormat) -> AnomalyJson<'a> {
    AnomalyJson {
        timestamp: eve_time(a.ts_ns),
        event_type: "anomaly",
        vlan: vlans(&a.vlans, a.vlan_count as usize),
        src_ip: a.l3.map(|(s, _, _)| eve_ip(&s)),
        src_port: a.ports.map(|p| p.0),
        dest_ip: a.l3.map(|(_, d, _)| eve_ip(&d)),
        dest_port: a.ports.map(|p| p.1),
        proto: a.l3.map(|(_, _, p)| proto_name(p)),
        tunnel: tunnel_json(&a.tunnel),
        pkt_src: "wire/pcap",
        pcap_cnt: a.pcap_cnt,
        capture_file: fmt.files.get(a.file_index as usize).map(String::as_str),
        anomaly: AnomalySection {
            kind: "decode",
            event: a.event,
        },
    }
}

/// Appends one event as a JSON line to `out`.
pub fn write_event(ev: &EveEvent, fmt: &EveFormat, out: &mut Vec<u8>) -> serde_json::Result<()> {
    match ev {
        EveEvent::Flow(f, vars) => {
            super::json::to_writer(out, &flow_json(f, vars.as_deref(), fmt))?
        }
        EveEvent::Anomaly(a) => super::json::to_writer(out, &anomaly_json(a, fmt))?,
        EveEvent::App(a) => super::json::to_writer(out, &AppJson { a, fmt })?,
        EveEvent::Stats(s) => super::json::to_writer(out, &stats_json(s))?,
        EveEvent::Response(r) => super::json::to_writer(out, &r.to_json())?,
        EveEvent::ModelAlert(a) => super::json::to_writer(out, &a.to_json())?,
    }
    out.push(b'\n');
    Ok(())
}

/// The `stats` event in Suricata's layout (only counters Suricata's schema knows).
fn stats_json(s: &RunStats) -> Value {
    let d = &s.decoder;
    let mut events: Map<String, Value> = Map::new();
    for (name, count) in &d.events {
        // `decoder.ipv4.trunc_pkt` → event.ipv4.trunc_pkt
        let mut parts = name.splitn(3, '.');
        if let (Some("decoder"), Some(layer), Some(ev)) = (parts.next(), parts.next(), parts.next())
        {
            let entry = events.entry(layer.to_string()).or_insert_with(|| json!({}));
            if let Some(obj) = entry.as_object_mut() {
                obj.insert(ev.to_string(), json!(count));
            }
        }
    }
    let f = &s.flow;
    let df = &s.defrag;
    let a = &s.app_layer;
    let st = &a.stream;
    let mut value = json!({
        "timestamp": eve_time(s.last_ts_ns),
        "event_type": "stats",
        "stats": {
            "uptime": s.uptime_secs,
            "decoder": {
                "pkts": d.pkts, "bytes": d.bytes, "invalid": d.invalid,
                "ethernet": d.ethernet, "raw": d.raw, "null": d.null, "sll": d.sll, "sll2": d.sll2,
                "ipv4": d.ipv4, "ipv6": d.ipv6, "tcp": d.tcp, "udp": d.udp, "sctp": d.sctp,
                "icmpv4": d.icmpv4, "icmpv6": d.icmpv6, "arp": d.arp,
                "vlan": d.vlan, "vlan_qinq": d.vlan_qinq, "vlan_qinqinq": d.vlan_qinqinq,
                "mpls": d.mpls, "gre": d.gre, "erspan": d.erspan, "vxlan": d.vxlan,
                "geneve": d.geneve, "teredo": d.teredo,
                "ipv4_in_ipv4": d.ipv4_in_ipv4, "ipv6_in_ipv4": d.ipv6_in_ipv4,
                "ipv4_in_ipv6": d.ipv4_in_ipv6, "ipv6_in_ipv6": d.ipv6_in_ipv6,
                "unknown_ethertype": d.unknown_ethertype,
                "avg_pkt_size": d.bytes.checked_div(d.pkts).unwrap_or(0),
                "max_pkt_size": d.max_pkt_size,
                "event": events,
            },
            "detect": { "alert": s.alerts },
            "flow": {
                "total": f.total, "tcp": f.tcp, "udp": f.udp, "icmpv4": f.icmpv4,
                "icmpv6": f.icmpv6, "active": f.active, "memuse": f.memuse_bytes,
                "memcap": f.evicted,
                "emerg_mode_entered": f.emerg_mode_entered, "emerg_mode_over": f.emerg_mode_over,
                "end": { "state": {
                    "new": f.end_state_new, "established": f.end_state_established,
                    "closed": f.end_state_closed,
                } },
                "mgr": { "flows_timeout": f.ended_timeout, "flows_evicted": f.ended_forced },
            },
            "tcp": {
                "reassembly_gap": st.gaps,
                "overlap": st.overlaps,
                "overlap_diff_data": st.overlaps_different,
                "segment_memcap_drop": st.memcap_drops,
                "stream_depth_reached": st.depth_reached,
                "midstream_pickups": st.midstream_pickups,
                "reassembly_memuse": a.stream_memuse,
            },
            "app_layer": {
                "flow": {
                    "http": a.flows_http, "tls": a.flows_tls, "ssh": a.flows_ssh,
                    "dns_udp": a.flows_dns_udp, "dns_tcp": a.flows_dns_tcp,
                    "failed_tcp": a.flows_failed_tcp, "failed_udp": a.flows_failed_udp,
                },
                // Suricata counts transactions a parser adds to its state; a TLS or SSH
                // session is one transaction from the start, so theirs stay 0.
                "tx": {
                    "http": s.app_events.http, "tls": 0, "ssh": 0,
                    "dns_udp": s.app_events.dns_udp, "dns_tcp": s.app_events.dns_tcp,
                },
                "error": {
                    "tls": { "parser": a.parser_errors_tls },
                    "ssh": { "parser": a.parser_errors_ssh },
                },
            },
            "defrag": {
                "ipv4": { "fragments": df.ipv4_fragments, "reassembled": df.ipv4_reassembled },
                "ipv6": { "fragments": df.ipv6_fragments, "reassembled": df.ipv6_reassembled },
                "max_frags_reached": df.max_frags_reached,
                "memuse": df.memuse_bytes,
                "mgr": { "tracker_timeout": df.timeouts },
            },
        }
    });
    if let (Some(c), Some(stats)) = (s.capture, value["stats"].as_object_mut()) {
        stats.insert(
            "capture".into(),
            json!({ "kernel_packets": c.kernel_packets, "kernel_drops": c.kernel_drops }),
        );
    }
    value
}

#[derive(Serialize)]
struct AppAnomalySection {
    #[serde(skip_serializing_if = "Option::is_none")]
    app_proto: Option<&'static str>,
    #[serde(rename = "type")]
    kind: &'static str,
    event: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    layer: Option<&'static str>,
}

/// An application-layer event: the common header, then `http`/`dns`/`tls`/`ssh` or `anomaly`.
/// Serialized field by field straight into the output buffer (no intermediate JSON tree: this
/// runs once per transaction).
struct AppJson<'a> {
    a: &'a AppEvent,
    fmt: &'a EveFormat,
}

impl Serialize for AppJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let a = self.a;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("timestamp", &eve_time(a.ts_ns))?;
        // Alerts on packets outside flows have no flow id (flow ids are never 0).
        if a.flow_id != 0 {
            m.serialize_entry("flow_id", &a.flow_id)?;
        }
        if let Some(cnt) = a.pcap_cnt {
            m.serialize_entry("pcap_cnt", &cnt)?;
        }
        let event_type = match &a.kind {
            AppEventKind::Record(r) => r.proto().as_str(),
            AppEventKind::Anomaly { .. } => "anomaly",
            AppEventKind::Alert(_) => "alert",
            AppEventKind::File { .. } => "fileinfo",
        };
        m.serialize_entry("event_type", event_type)?;
        if let Some(v) = vlans(&a.vlans, vlan_count(&a.vlans)) {
            m.serialize_entry("vlan", &v)?;
        }
        m.serialize_entry("src_ip", &eve_ip(&a.src))?;
        if let Some((sp, _)) = a.ports {
            m.serialize_entry("src_port", &sp)?;
        }
        m.serialize_entry("dest_ip", &eve_ip(&a.dst))?;
        if let Some((_, dp)) = a.ports {
            m.serialize_entry("dest_port", &dp)?;
        }
        m.serialize_entry("ip_v", &(if a.src.is_ipv4() { 4 } else { 6 }))?;
        m.serialize_entry("proto", &proto_name(a.proto))?;
        if let Some((icmp_type, icmp_code)) = a.icmp {
            m.serialize_entry("icmp_type", &icmp_type)?;
            m.serialize_entry("icmp_code", &icmp_code)?;
        }
        if let Some(t) = tunnel_json(&a.tunnel) {
            m.serialize_entry("tunnel", &t)?;
        }
        m.serialize_entry("pkt_src", "wire/pcap")?;
        if let Some(file) = a.file_index.and_then(|i| self.fmt.files.get(i as usize)) {
            m.serialize_entry("capture_file", file)?;
        }
        if let Some(tx) = a.tx_id {
            m.serialize_entry("tx_id", &tx)?;
        }
        m.serialize_entry(
            "community_id",
            &community_id_v1(&a.community, self.fmt.community_id_seed),
        )?;
        match &a.kind {
            AppEventKind::Alert(alert) => serialize_alert(&mut m, alert)?,
            AppEventKind::Record(AppRecord::Http(tx)) => m.serialize_entry("http", &**tx)?,
            AppEventKind::Record(AppRecord::Dns(msg)) => m.serialize_entry("dns", &**msg)?,
            AppEventKind::Record(AppRecord::Tls(hs)) => m.serialize_entry("tls", &**hs)?,
            AppEventKind::Record(AppRecord::Ssh(hs)) => m.serialize_entry("ssh", &**hs)?,
            AppEventKind::File { tx, file } => {
                m.serialize_entry("http", &vigil_parsers::app::http::HttpMetadata(tx))?;
                m.serialize_entry("app_proto", AppProto::Http.as_str())?;
                m.serialize_entry(
                    "fileinfo",
                    &FileInfoJson {
                        file,
                        tx_id: tx.tx_id,
                    },
                )?;
            }
            AppEventKind::Anomaly {
                kind,
                event,
                app_proto,
                layer,
            } => m.serialize_entry(
                "anomaly",
                &AppAnomalySection {
                    app_proto: app_proto.map(AppProto::as_str),
                    kind,
                    event,
                    layer: *layer,
                },
            )?,
        }
        m.end()
    }
}

/// Suricata's `fileinfo` object, fields in its order. Nothing is stored or hashed, so
/// `stored` is always false.
struct FileInfoJson<'a> {
    file: &'a vigil_parsers::app::http::HttpFile,
    tx_id: u64,
}

impl Serialize for FileInfoJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let f = self.file;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry(
            "filename",
            &vigil_parsers::app::eve_bytes_to_string(&f.filename),
        )?;
        m.serialize_entry("gaps", &f.gaps)?;
        m.serialize_entry("state", f.state.as_str())?;
        m.serialize_entry("stored", &false)?;
        m.serialize_entry("size", &f.size)?;
        m.serialize_entry("tx_id", &self.tx_id)?;
        m.end()
    }
}

/// `alert{…}`, the matched transaction's object, `app_proto`, `direction` and `flow{…}`.
fn serialize_alert<M: serde::ser::SerializeMap>(
    m: &mut M,
    alert: &AlertEvent,
) -> Result<(), M::Error> {
    let sig = alert.rules.sig(alert.sig);
    m.serialize_entry(
        "direction",
        match alert.direction {
            vigil_parsers::app::Direction::ToServer => "to_server",
            vigil_parsers::app::Direction::ToClient => "to_client",
        },
    )?;
    m.serialize_entry("alert", &AlertJson(sig))?;
    let (metadata, traffic) = vars_json(alert.vars.as_deref());
    if let Some(metadata) = metadata {
        m.serialize_entry("metadata", &metadata)?;
    }
    if let Some(traffic) = traffic {
        m.serialize_entry("traffic", &traffic)?;
    }
    match &alert.record {
        Some(AppRecord::Http(tx)) => m.serialize_entry("http", &**tx)?,
        Some(AppRecord::Dns(msg)) => m.serialize_entry("dns", &**msg)?,
        Some(AppRecord::Tls(hs)) => m.serialize_entry("tls", &**hs)?,
        Some(AppRecord::Ssh(hs)) => m.serialize_entry("ssh", &**hs)?,
        None => {}
    }
    if let Some(p) = alert.app_proto {
        m.serialize_entry("app_proto", p.as_str())?;
    }
    if let Some(f) = &alert.flow {
        serialize_alert_flow(m, f)?;
    }
    if let Some(c) = &alert.capture {
        serialize_capture(m, c)?;
    }
    Ok(())
}

/// `payload`, `payload_printable`, `payload_length`, `stream`, `packet` and `packet_info`, in
/// Suricata's order.
fn serialize_capture<M: serde::ser::SerializeMap>(
    m: &mut M,
    c: &AlertCapture,
) -> Result<(), M::Error> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    if c.config.payload {
        m.serialize_entry("payload", &b64.encode(&c.payload))?;
    }
    if c.config.payload_printable {
        m.serialize_entry("payload_printable", &printable(&c.payload))?;
    }
    if c.config.payload_length {
        m.serialize_entry("payload_length", &c.payload_len)?;
    }
    if c.config.payload || c.config.payload_printable {
        m.serialize_entry("stream", &u8::from(c.stream))?;
    }
    if let Some((frame, link)) = &c.packet {
        m.serialize_entry("packet", &b64.encode(frame))?;
        m.serialize_entry(
            "packet_info",
            &json!({"linktype": link, "linktype_name": linktype_name(*link)}),
        )?;
    }
    Ok(())
}

/// The alert's `flow{…}`: the flow's counters so far, oriented client to server.
fn serialize_alert_flow<M: serde::ser::SerializeMap>(
    m: &mut M,
    f: &FlowRecord,
) -> Result<(), M::Error> {
    let mut flow = Map::new();
    flow.insert("pkts_toserver".into(), json!(f.pkts_toserver));
    flow.insert("pkts_toclient".into(), json!(f.pkts_toclient));
    flow.insert("bytes_toserver".into(), json!(f.bytes_toserver));
    flow.insert("bytes_toclient".into(), json!(f.bytes_toclient));
    flow.insert("start".into(), json!(eve_time(f.first_ts_ns)));
    flow.insert("src_ip".into(), json!(eve_ip(&f.client_addr)));
    flow.insert("dest_ip".into(), json!(eve_ip(&f.server_addr)));
    if let Some((sp, dp)) = f.ports {
        flow.insert("src_port".into(), json!(sp));
        flow.insert("dest_port".into(), json!(dp));
    }
    m.serialize_entry("flow", &flow)
}

/// Suricata's `alert` object. `metadata` groups `key value` pairs into arrays per key.
struct AlertJson<'a>(&'a vigil_signatures::sig::Signature);

impl Serialize for AlertJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let sig = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("action", sig.action.eve_name())?;
        m.serialize_entry("gid", &sig.gid)?;
        m.serialize_entry("signature_id", &sig.sid)?;
        m.serialize_entry("rev", &sig.rev)?;
        m.serialize_entry("signature", &sig.msg)?;
        m.serialize_entry("category", &sig.category)?;
        m.serialize_entry("severity", &sig.priority)?;
        if !sig.metadata.is_empty() {
            let mut meta: Map<String, Value> = Map::new();
            for entry in &sig.metadata {
                let (k, v) = match entry.split_once(char::is_whitespace) {
                    Some((k, v)) => (k, v.trim()),
                    None => (entry.as_str(), ""),
                };
                if let Value::Array(a) = meta
                    .entry(k.to_string())
                    .or_insert_with(|| Value::Array(Vec::new()))
                {
                    a.push(Value::String(v.to_string()));
                }
            }
            m.serialize_entry("metadata", &meta)?;
        }
        m.end()
    }
}

/// The leading fields of a rarely written event built as a `serde_json` map (model alerts,
/// response actions): time, flow, type and the endpoints it names.
pub fn header_json(
    ts_ns: u64,
    flow_id: Option<u64>,
    event_type: &str,
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    ports: Option<(u16, u16)>,
    proto: Option<u8>,
) -> Map<String, Value> {
    let mut ev = Map::new();
    ev.insert(
        "timestamp".into(),
        json!(super::time::eve_timestamp_string(ts_ns)),
    );
    if let Some(id) = flow_id.filter(|id| *id != 0) {
        ev.insert("flow_id".into(), json!(id));
    }
    ev.insert("event_type".into(), json!(event_type));
    if let Some(src) = src {
        ev.insert("src_ip".into(), json!(src));
    }
    if let Some((sp, _)) = ports {
        ev.insert("src_port".into(), json!(sp));
    }
    if let Some(dst) = dst {
        ev.insert("dest_ip".into(), json!(dst));
    }
    if let Some((_, dp)) = ports {
        ev.insert("dest_port".into(), json!(dp));
    }
    if let Some(p) = proto {
        ev.insert("proto".into(), json!(proto_name(p)));
    }
    ev
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_written_as_suricata_writes_them() {
        assert_eq!(eve_ip(&"10.0.0.1".parse().unwrap()), "10.0.0.1");
        assert_eq!(
            eve_ip(&"2001:4860:4860::8888".parse().unwrap()),
            "2001:4860:4860:0000:0000:0000:0000:8888"
        );
        assert_eq!(
            eve_ip(&"::ffff:10.0.0.1".parse().unwrap()),
            "0000:0000:0000:0000:0000:ffff:0a00:0001"
        );
    }

    #[test]
    fn traffic_tags_go_to_traffic_and_other_flowbits_and_flowints_to_metadata() {
        let vars = FlowVarsLog {
            flowbits: vec![
                "traffic/id/mozilla".into(),
                "ET.http.binary".into(),
                "traffic/label/browser".into(),
                "traffic/id/firefox".into(),
            ],
            flowints: vec![("requests".into(), 3)],
        };
        let (metadata, traffic) = vars_json(Some(&vars));
        let json = serde_json::json!({"metadata": metadata, "traffic": traffic});
        assert_eq!(
            json,
            serde_json::json!({
                "metadata": {"flowbits": ["ET.http.binary"], "flowints": {"requests": 3}},
                "traffic": {"id": ["mozilla", "firefox"], "label": ["browser"]},
            })
        );
        let only_tags = FlowVarsLog {
            flowbits: vec!["traffic/label/x".into()],
            flowints: vec![],
        };
        let (metadata, traffic) = vars_json(Some(&only_tags));
        assert!(metadata.is_none(), "no empty metadata object");
        assert_eq!(
            serde_json::to_value(traffic).unwrap(),
            serde_json::json!({"label": ["x"]})
        );
        let (metadata, traffic) = vars_json(None);
        assert!(metadata.is_none() && traffic.is_none());
    }
}
