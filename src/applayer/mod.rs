//! A worker's application layer: per flow, TCP reassembly, protocol detection and the protocol
//! parser; per worker, the reassembly memory budget and the parsers' settings.
//!
//! State lives beside the flow record in the flow table (`FlowTable<FlowApp>`), is created on a
//! flow's first TCP/UDP packet and leaves with the flow, which is when pending transactions are
//! handed back and the flow learns its `app_proto`.

mod detect;

use serde::Deserialize;
use vigil_parsers::app::{
    dns, http, ssh, tls, AppOutput, AppParser, AppProto, AppRecord, Direction,
};
use vigil_parsers::stream::{StreamConfig, StreamMemory, StreamSink, StreamStats, TcpReassembler};
use vigil_parsers::{DecodedPacket, L4};

pub use detect::expected_proto_for_port;
use detect::{Detection, DirDetect};

/// Application-layer settings shared by a worker's flows.
#[derive(Debug, Clone, Default)]
pub struct AppLayerConfig {
    pub stream: StreamConfig,
    pub http: http::HttpConfig,
    pub dns: dns::DnsConfig,
    pub tls: tls::TlsConfig,
    pub ssh: ssh::SshConfig,
    /// Per-protocol switches: a disabled protocol is neither detected nor parsed.
    pub enabled: EnabledProtocols,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct EnabledProtocols {
    pub http: bool,
    pub dns: bool,
    pub tls: bool,
    pub ssh: bool,
}

impl Default for EnabledProtocols {
    fn default() -> Self {
        EnabledProtocols {
            http: true,
            dns: true,
            tls: true,
            ssh: true,
        }
    }
}

impl EnabledProtocols {
    pub fn is_enabled(&self, proto: AppProto) -> bool {
        match proto {
            AppProto::Http => self.http,
            AppProto::Dns => self.dns,
            AppProto::Tls => self.tls,
            AppProto::Ssh => self.ssh,
            AppProto::Unknown | AppProto::Failed => false,
        }
    }
}

/// Application-layer counters of one worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppLayerStats {
    pub stream: StreamStats,
    pub flows_http: u64,
    pub flows_dns_udp: u64,
    pub flows_dns_tcp: u64,
    pub flows_tls: u64,
    pub flows_ssh: u64,
    pub flows_failed_tcp: u64,
    pub flows_failed_udp: u64,
    pub records: u64,
    pub parser_events: u64,
    /// Flows whose protocol is not the one their server port is registered for.
    pub port_mismatches: u64,
    pub stream_memuse: u64,
    pub stream_memcap: u64,
    /// Directions the TLS / SSH parser gave up on for malformed bytes.
    pub parser_errors_tls: u64,
    pub parser_errors_ssh: u64,
}

impl AppLayerStats {
    pub fn add(&mut self, o: &AppLayerStats) {
        self.stream.add(&o.stream);
        self.flows_http += o.flows_http;
        self.flows_dns_udp += o.flows_dns_udp;
        self.flows_dns_tcp += o.flows_dns_tcp;
        self.flows_tls += o.flows_tls;
        self.flows_ssh += o.flows_ssh;
        self.flows_failed_tcp += o.flows_failed_tcp;
        self.flows_failed_udp += o.flows_failed_udp;
        self.records += o.records;
        self.parser_events += o.parser_events;
        self.port_mismatches += o.port_mismatches;
        self.parser_errors_tls += o.parser_errors_tls;
        self.parser_errors_ssh += o.parser_errors_ssh;
        self.stream_memuse += o.stream_memuse;
        self.stream_memcap += o.stream_memcap;
    }
}

enum Parser {
    Http(http::HttpParser),
    Dns(dns::DnsParser),
    Tls(tls::TlsParser),
    Ssh(ssh::SshParser),
}

impl Parser {
    fn get(&mut self) -> &mut dyn AppParser {
        match self {
            Parser::Http(p) => p,
            Parser::Dns(p) => p,
            Parser::Tls(p) => p,
            Parser::Ssh(p) => p,
        }
    }
}

/// Transport of a flow, as far as the application layer cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Tcp,
    Udp,
}

/// One flow's application-layer state, boxed so that flows without it (ICMP, other protocols)
/// cost one pointer in the table.
#[derive(Default)]
pub struct FlowApp(Option<Box<FlowAppState>>);

struct FlowAppState {
    stream: Option<TcpReassembler>,
    proto_state: ProtoState,
    /// Flowbits and flowints the flow's rules set.
    rule_vars: vigil_signatures::FlowVars,
    /// Per direction (to server, to client), the stream offset where the transaction being
    /// built began: the raw stream from there on is what its rules' payload matches inspect.
    tx_raw_from: [u64; 2],
    /// Parser events waiting for the record of their transaction (`app-layer-event` rules).
    pending_events: Vec<vigil_parsers::app::AppEvent>,
}

/// What detection needs of a flow's application-layer state.
pub struct DetectState<'a> {
    pub vars: &'a mut vigil_signatures::FlowVars,
    pub proto: AppProto,
    /// The TCP reassembler, for stream inspection.
    pub stream: Option<&'a TcpReassembler>,
    /// See `FlowAppState::tx_raw_from`; detection moves it on once a record was inspected.
    pub tx_raw_from: &'a mut [u64; 2],
    /// See `FlowAppState::pending_events`.
    pub pending_events: &'a mut Vec<vigil_parsers::app::AppEvent>,
}

/// In-order bytes kept behind the newest for payload rules' stream inspection, so a match
/// may span segments: a bit under Suricata's default raw chunk (2,560 bytes), and what
/// nearly every signature's relative match list covers. Counted against the stream memcap.
pub const STREAM_LOOKBACK: u64 = 2048;

impl FlowApp {
    /// The flow's rule variables and its application protocol so far; `None` for flows
    /// without application-layer state (not TCP or UDP).
    pub fn detect_state(&mut self) -> Option<DetectState<'_>> {
        let s = self.0.as_mut()?;
        let proto = s.proto_state.detection.final_proto();
        Some(DetectState {
            vars: &mut s.rule_vars,
            proto,
            stream: s.stream.as_ref(),
            tx_raw_from: &mut s.tx_raw_from,
            pending_events: &mut s.pending_events,
        })
    }

    /// Stream offset handed on in `dir` so far; `None` for flows without reassembly.
    pub fn stream_offset(&self, dir: Direction) -> Option<u64> {
        self.0.as_ref()?.stream.as_ref().map(|s| s.offset(dir))
    }

    /// Whether payload rules still inspect this flow's packets: not once a TLS or SSH
    /// handshake is over, as Suricata's default `encryption-handling: track-only`.
    pub fn payload_inspected(&self) -> bool {
        let Some(s) = self.0.as_ref() else {
            return true;
        };
        let encrypted = matches!(
            s.proto_state.detection.final_proto(),
            AppProto::Tls | AppProto::Ssh
        );
        !(encrypted && s.proto_state.done)
    }

    /// Takes the flow's rule variables, for the records its end still produces.
    pub fn take_rule_vars(&mut self) -> vigil_signatures::FlowVars {
        self.0
            .as_mut()
            .map(|s| std::mem::take(&mut s.rule_vars))
            .unwrap_or_default()
    }

    /// Takes the parser events still waiting for a record, for the records its end produces.
    pub fn take_pending_events(&mut self) -> Vec<vigil_parsers::app::AppEvent> {
        self.0
            .as_mut()
            .map(|s| std::mem::take(&mut s.pending_events))
            .unwrap_or_default()
    }
}

struct ProtoState {
    transport: Transport,
    server_port: u16,
    detection: Detection,
    parser: Option<Parser>,
    /// The parser wants nothing more (e.g. TLS after the handshake).
    done: bool,
    /// The protocol the flow began with, when it changed (HTTP CONNECT to TLS).
    proto_orig: Option<AppProto>,
}

/// Something the application layer has to report for a flow, with the direction it arose in.
#[derive(Debug)]
pub enum AppItem {
    Record(Direction, AppRecord),
    /// A parser's protocol event (EVE anomaly, type applayer, layer proto_parser).
    ParserEvent(vigil_parsers::app::AppEvent),
    /// A detection finding (EVE anomaly, type applayer, layer proto_detect).
    DetectEvent(AppProto, &'static str),
    /// A reassembly event (EVE anomaly, type stream).
    StreamEvent(Direction, &'static str),
}

/// Most parser events a flow keeps waiting for their transaction's record; more are only
/// logged (a transaction rarely raises more than a few).
const MAX_PENDING_EVENTS: usize = 16;

/// Sorts this packet's events for detection: protocol detection's and reassembly's into
/// `packet_events` (they belong to the packet), parsers' into `pending` (they wait for their
/// transaction's record).
pub fn collect_rule_events(
    items: &[AppItem],
    packet_events: &mut Vec<&'static str>,
    pending: &mut Vec<vigil_parsers::app::AppEvent>,
) {
    packet_events.clear();
    for item in items {
        match item {
            AppItem::DetectEvent(_, name) | AppItem::StreamEvent(_, name) => {
                packet_events.push(name)
            }
            AppItem::ParserEvent(e) if pending.len() < MAX_PENDING_EVENTS => pending.push(*e),
            _ => {}
        }
    }
}

/// Moves the events of `record`'s transaction from `pending` into `out`. HTTP events name
/// their transaction; TLS and SSH have one per flow; DNS events go with the messages parsed
/// with them (see [`drop_packet_only_events`]).
pub fn take_record_events(
    pending: &mut Vec<vigil_parsers::app::AppEvent>,
    record: &AppRecord,
    out: &mut Vec<vigil_parsers::app::AppEvent>,
) {
    out.clear();
    let proto = record.proto();
    let tx = record.tx_id();
    pending.retain(|e| {
        let mine = e.proto == proto && (tx.is_none() || e.tx_id.is_none() || e.tx_id == tx);
        if mine {
            out.push(*e);
        }
        !mine
    });
}

/// After a packet's records: DNS events without a message of theirs in the packet do not
/// wait for a later, unrelated message.
pub fn drop_packet_only_events(pending: &mut Vec<vigil_parsers::app::AppEvent>) {
    pending.retain(|e| e.proto != AppProto::Dns);
}

/// One packet of a flow as the application layer takes it.
pub struct AppPacket<'a> {
    pub pkt: &'a DecodedPacket,
    /// Relative to the flow's client.
    pub dir: Direction,
    pub server_port: u16,
    /// The packet's transport payload.
    pub payload: &'a [u8],
    pub ts_ns: u64,
}

/// A worker's application layer.
pub struct AppLayer {
    config: AppLayerConfig,
    /// The configured settings that rules may switch on (`config` holds the effective ones).
    configured_ja3: bool,
    configured_hassh: bool,
    memory: StreamMemory,
    out: AppOutput,
    stats: AppLayerStats,
}

impl AppLayer {
    /// `stream_memcap` is this worker's share of the reassembly memcap.
    pub fn new(config: AppLayerConfig, stream_memcap: usize) -> AppLayer {
        AppLayer {
            configured_ja3: config.tls.ja3,
            configured_hassh: config.ssh.hassh,
            config,
            memory: StreamMemory::new(stream_memcap),
            out: AppOutput::default(),
            stats: AppLayerStats::default(),
        }
    }

    /// As Suricata's `ja3-fingerprints: auto` and HASSH: JA3/JA3S are logged, and HASSH
    /// computed and logged, when the configuration asks or a loaded rule inspects them.
    /// Flows that already have a parser keep its settings.
    pub fn follow_rules(&mut self, rules: Option<&vigil_signatures::RuleSet>) {
        use vigil_signatures::buffer::Buffer;
        let uses = |pred: fn(Buffer) -> bool| rules.is_some_and(|r| r.uses_buffer(pred));
        self.config.tls.ja3 = self.configured_ja3
            || uses(|b| {
                matches!(
                    b,
                    Buffer::Ja3Hash | Buffer::Ja3String | Buffer::Ja3sHash | Buffer::Ja3sString
                )
            });
        self.config.ssh.hassh = self.configured_hassh
            || uses(|b| {
                matches!(
                    b,
                    Buffer::SshHassh
                        | Buffer::SshHasshString
                        | Buffer::SshHasshServer
                        | Buffer::SshHasshServerString
                )
            });
    }

    pub fn stats(&self) -> AppLayerStats {
        let mut s = self.stats;
        s.stream = self.memory.stats;
        s.stream_memuse = self.memory.used as u64;
        s.stream_memcap = self.memory.cap as u64;
        s
    }

    /// Takes one packet of a flow. `dir` is relative to the flow's client; `payload` the
    /// packet's transport payload. What is to be reported is appended to `items`.
    pub fn on_packet(&mut self, app: &mut FlowApp, p: AppPacket<'_>, items: &mut Vec<AppItem>) {
        let AppPacket {
            pkt,
            dir,
            server_port,
            payload,
            ts_ns,
        } = p;
        let transport = match pkt.l4 {
            L4::Tcp(_) => Transport::Tcp,
            L4::Udp { .. } => Transport::Udp,
            _ => return,
        };
        let state = app.0.get_or_insert_with(|| {
            Box::new(FlowAppState {
                stream: (transport == Transport::Tcp).then(TcpReassembler::new),
                proto_state: ProtoState {
                    transport,
                    server_port,
                    detection: Detection::default(),
                    parser: None,
                    done: false,
                    proto_orig: None,
                },
                rule_vars: vigil_signatures::FlowVars::default(),
                pending_events: Vec::new(),
                tx_raw_from: [0; 2],
            })
        });
        let mut feed = Feed {
            state: &mut state.proto_state,
            config: &self.config,
            out: &mut self.out,
            stats: &mut self.stats,
            items,
            ts_ns,
        };
        match (pkt.l4, state.stream.as_mut()) {
            (L4::Tcp(tcp), Some(stream)) => {
                stream.on_segment(
                    &self.config.stream,
                    &mut self.memory,
                    dir,
                    &tcp,
                    payload,
                    &mut feed,
                );
            }
            (L4::Udp { .. }, _) if !payload.is_empty() => feed.data(dir, payload),
            _ => {}
        }
        feed.collect();
    }

    /// Keeps `dir`'s raw stream from offset `from` on for stream inspection (see
    /// `TcpReassembler::keep_raw_from`).
    pub fn keep_raw_from(&mut self, app: &mut FlowApp, dir: Direction, from: u64) {
        if let Some(stream) = app.0.as_mut().and_then(|s| s.stream.as_mut()) {
            stream.keep_raw_from(&mut self.memory, dir, from);
        }
    }

    /// The flow ended: flushes its streams and parser and reports its application protocol.
    /// Returns the flow's `app_proto` and, when it changed during the flow, the original one.
    pub fn on_flow_end(
        &mut self,
        app: FlowApp,
        ts_ns: u64,
        items: &mut Vec<AppItem>,
    ) -> (AppProto, Option<AppProto>) {
        let Some(mut state) = app.0 else {
            return (AppProto::Unknown, None);
        };
        let mut feed = Feed {
            state: &mut state.proto_state,
            config: &self.config,
            out: &mut self.out,
            stats: &mut self.stats,
            items,
            ts_ns,
        };
        if let Some(stream) = state.stream.as_mut() {
            stream.finish(&mut self.memory, &mut feed);
            stream.release(&mut self.memory);
        }
        if let Some(parser) = feed.state.parser.as_mut() {
            parser.get().finish(ts_ns, feed.out);
        }
        feed.collect();
        let proto = feed.state.detection.final_proto();
        let orig = feed.state.proto_orig;
        if proto == AppProto::Failed {
            match state.proto_state.transport {
                Transport::Tcp => self.stats.flows_failed_tcp += 1,
                Transport::Udp => self.stats.flows_failed_udp += 1,
            }
        }
        (proto, orig)
    }
}

/// Feeds one flow's in-order data to detection and its parser.
struct Feed<'a> {
    state: &'a mut ProtoState,
    config: &'a AppLayerConfig,
    out: &'a mut AppOutput,
    stats: &'a mut AppLayerStats,
    items: &'a mut Vec<AppItem>,
    ts_ns: u64,
}

impl Feed<'_> {
    /// Moves what the parser produced into the report list.
    fn collect(&mut self) {
        let errors = u64::from(std::mem::take(&mut self.out.parser_errors));
        match self.state.parser {
            Some(Parser::Tls(_)) => self.stats.parser_errors_tls += errors,
            Some(Parser::Ssh(_)) => self.stats.parser_errors_ssh += errors,
            _ => {}
        }
        self.stats.records += self.out.records.len() as u64;
        self.stats.parser_events += self.out.events.len() as u64;
        // Records are attributed to the direction they completed in; the worker decides per
        // protocol whether the event names the flow's or the packet's direction.
        for record in self.out.records.drain(..) {
            let dir = match &record {
                AppRecord::Dns(msg) if msg.is_response => Direction::ToClient,
                _ => Direction::ToServer,
            };
            self.items.push(AppItem::Record(dir, record));
        }
        for event in self.out.events.drain(..) {
            self.items.push(AppItem::ParserEvent(event));
        }
    }

    fn start_parser(&mut self, proto: AppProto) {
        let c = self.config;
        let parser = match (proto, self.state.transport) {
            (AppProto::Http, _) => Parser::Http(http::HttpParser::new(c.http.clone())),
            (AppProto::Dns, Transport::Udp) => {
                self.stats.flows_dns_udp += 1;
                Parser::Dns(dns::DnsParser::new_udp(c.dns.clone()))
            }
            (AppProto::Dns, Transport::Tcp) => {
                self.stats.flows_dns_tcp += 1;
                Parser::Dns(dns::DnsParser::new_tcp(c.dns.clone()))
            }
            (AppProto::Tls, _) => Parser::Tls(tls::TlsParser::new(c.tls)),
            (AppProto::Ssh, _) => Parser::Ssh(ssh::SshParser::new(c.ssh)),
            (AppProto::Unknown | AppProto::Failed, _) => return,
        };
        match proto {
            AppProto::Http => self.stats.flows_http += 1,
            AppProto::Tls => self.stats.flows_tls += 1,
            AppProto::Ssh => self.stats.flows_ssh += 1,
            _ => {}
        }
        self.state.parser = Some(parser);
    }

    fn parse(&mut self, dir: Direction, data: &[u8]) {
        if self.state.done {
            return;
        }
        if let Some(parser) = self.state.parser.as_mut() {
            let p = parser.get();
            p.parse(dir, data, self.ts_ns, self.out);
            self.state.done = p.is_done();
            if let Parser::Http(http) = parser {
                if http.is_tunnel() && self.state.proto_orig.is_none() {
                    // CONNECT (or an upgrade) succeeded: what follows is another protocol,
                    // detected afresh, and the flow remembers it began as HTTP.
                    let held = match self.state.parser.take() {
                        Some(Parser::Http(mut http)) => {
                            http.finish(self.ts_ns, self.out);
                            http.take_tunnel_data()
                        }
                        _ => Vec::new(),
                    };
                    self.state.proto_orig = Some(AppProto::Http);
                    self.state.detection = Detection::default();
                    self.state.done = false;
                    // Stray line ends after the CONNECT request are HTTP's, not the tunnel's.
                    let start = held
                        .iter()
                        .position(|b| !matches!(b, b'\r' | b'\n'))
                        .unwrap_or(held.len());
                    if start < held.len() {
                        self.data(Direction::ToServer, &held[start..]);
                    }
                }
            }
        }
    }

    fn report_port_mismatch(&mut self, proto: AppProto) {
        let expected = expected_proto_for_port(
            self.state.transport == Transport::Tcp,
            self.state.server_port,
        );
        if let Some(expected) = expected {
            if expected != proto && self.config.enabled.is_enabled(expected) {
                self.stats.port_mismatches += 1;
                self.items.push(AppItem::DetectEvent(
                    proto,
                    vigil_parsers::app::APPLAYER_PROTOCOL_PORT_MISMATCH,
                ));
            }
        }
    }
}

impl StreamSink for Feed<'_> {
    fn data(&mut self, dir: Direction, data: &[u8]) {
        if self.state.parser.is_some() {
            let tcp = self.state.transport == Transport::Tcp;
            let enabled = &self.config.enabled;
            let mismatch = self
                .state
                .detection
                .other_direction_mismatch(enabled, tcp, dir, data);
            if mismatch.is_some() {
                // Each direction speaks a different protocol: the flow keeps the first one.
                let proto = self.state.detection.final_proto();
                self.items.push(AppItem::DetectEvent(
                    proto,
                    vigil_parsers::app::APPLAYER_MISMATCH_PROTOCOL_BOTH_DIRECTIONS,
                ));
            }
            self.parse(dir, data);
            return;
        }
        if self.state.detection.is_settled() {
            return;
        }
        let tcp = self.state.transport == Transport::Tcp;
        match self.state.detection.probe(
            &self.config.enabled,
            tcp,
            self.state.server_port,
            dir,
            data,
        ) {
            DirDetect::Found(proto) => {
                self.start_parser(proto);
                self.report_port_mismatch(proto);
                // Whatever was held while probing goes to the parser, requests first.
                let fed_from_held = self.state.detection.fed_from_held(dir);
                for (held_dir, bytes) in self.state.detection.take_held() {
                    if !bytes.is_empty() {
                        self.parse(held_dir, &bytes);
                    }
                }
                if !fed_from_held {
                    self.parse(dir, data);
                }
            }
            DirDetect::Failed => {
                if self.state.detection.final_proto() == AppProto::Failed {
                    self.report_port_mismatch(AppProto::Failed);
                }
            }
            DirDetect::Pending => {}
        }
    }

    fn gap(&mut self, dir: Direction, len: u64) {
        if let Some(parser) = self.state.parser.as_mut() {
            parser.get().gap(dir, len, self.out);
        } else {
            // A gap before detection: what was held no longer leads to the stream's start.
            self.state.detection.gap(dir);
        }
    }

    fn end(&mut self, dir: Direction) {
        if let Some(parser) = self.state.parser.as_mut() {
            parser.get().end_of_stream(dir, self.ts_ns, self.out);
        }
    }

    fn event(&mut self, dir: Direction, event: &'static str) {
        self.items.push(AppItem::StreamEvent(dir, event));
    }
}
