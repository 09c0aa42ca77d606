//! Glue from a worker's packets, flows and application-layer records to the signature engine,
//! and from its hits to EVE `alert` events.

mod buffers;

use std::path::PathBuf;
use std::sync::Arc;

use vigil_parsers::app::{AppProto, AppRecord, Direction};
use vigil_parsers::DecodedPacket;
use vigil_signatures::buffer::{BufferProto, Side};
pub use vigil_signatures::engine::StreamWindow;
use vigil_signatures::engine::{Endpoints, FlowView, LoadError};
use vigil_signatures::prefilter::PrefilterError;
use vigil_signatures::{Detector, FlowVars, Hit, LoadReport, RuleSet, RuleSetConfig};

use crate::config::RulesSection;
use crate::flow::FlowRecord;
use crate::output::eve::{AlertEvent, AppEvent, AppEventKind, EveEvent, FlowVarsLog};
pub use buffers::RecordBuffers;
use vigil_signatures::classification::Classifications;
use vigil_signatures::threshold::ThresholdConfig;

/// Loads rules files with the `[rules]` settings: variables, classification.config and
/// threshold.config. `cache_dir` `None` builds the prefilter databases without caching them.
pub fn load_rules(
    files: &[PathBuf],
    settings: &RulesSection,
    cache_dir: Option<PathBuf>,
) -> Result<(Arc<RuleSet>, LoadReport), LoadError> {
    let read = |path: &PathBuf| {
        std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            path: path.display().to_string(),
            source,
        })
    };
    let mut config = RuleSetConfig {
        cache_dir,
        release_freed_memory: Some(crate::memory::release_freed),
        ..RuleSetConfig::default()
    };
    config.vars.addresses = settings.address_groups.clone().into_iter().collect();
    config.vars.ports = settings.port_groups.clone().into_iter().collect();
    if !settings.classification_file.as_os_str().is_empty() {
        let path = &settings.classification_file;
        config.classifications = Classifications::parse(&read(path)?, &path.display().to_string())
            .map_err(|e| LoadError::Config(e.to_string()))?;
    }
    if !settings.threshold_file.as_os_str().is_empty() {
        let path = &settings.threshold_file;
        config.thresholds = ThresholdConfig::parse(&read(path)?, &path.display().to_string(), None)
            .map_err(|e| LoadError::Config(e.to_string()))?;
    }
    let (set, report) = RuleSet::load(files, config)?;
    Ok((Arc::new(set), report))
}

/// The cache directory the `[rules]` settings name, else the user's cache directory.
pub fn cache_dir(settings: &RulesSection) -> Option<PathBuf> {
    if settings.cache_dir.as_os_str().is_empty() {
        vigil_signatures::engine::default_cache_dir()
    } else {
        Some(settings.cache_dir.clone())
    }
}

/// Where a packet sits in the input, for the alert's `pcap_cnt` and `capture_file`.
#[derive(Debug, Clone, Copy)]
pub struct PacketPlace {
    pub pcap_cnt: u64,
    pub file_index: u32,
}

/// One worker's detection state.
impl Drop for WorkerDetect {
    fn drop(&mut self) {
        tracing::debug!(counters = ?self.det.counters, "detection");
    }
}

pub struct WorkerDetect {
    rules: Arc<RuleSet>,
    det: Detector,
    hits: Vec<Hit>,
    pub alerts: u64,
    /// Alerts by severity (the rule's priority) 1, 2, 3 and 4-or-more.
    pub alerts_by_severity: [u64; 4],
    /// Alerts per signature index of `rules`, sized when the set is taken up so counting
    /// never allocates.
    per_sig: Vec<u64>,
}

/// The transaction side a direction's bytes belong to.
fn side_of(dir: Direction) -> Side {
    match dir {
        Direction::ToServer => Side::Request,
        Direction::ToClient => Side::Response,
    }
}

impl WorkerDetect {
    pub fn new(rules: Arc<RuleSet>) -> Result<WorkerDetect, PrefilterError> {
        let det = rules.new_detector()?;
        let per_sig = vec![0; rules.len()];
        Ok(WorkerDetect {
            rules,
            det,
            hits: Vec::new(),
            alerts: 0,
            alerts_by_severity: [0; 4],
            per_sig,
        })
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Adds this worker's alerts per rule, under each rule's (gid, sid, rev).
    pub fn rule_alerts(&self, into: &mut crate::stats::RuleAlertCounts) {
        for (sig, &n) in self.rules.signatures().iter().zip(&self.per_sig) {
            into.add(sig.gid, sig.sid, sig.rev, &sig.msg, n);
        }
    }

    fn count(&mut self, sig: u32) {
        let severity = usize::from(self.rules.sig(sig).priority.clamp(1, 4));
        self.alerts += 1;
        self.alerts_by_severity[severity - 1] += 1;
        if let Some(n) = self.per_sig.get_mut(sig as usize) {
            *n += 1;
        }
    }

    /// Inspects one packet of a flow with the packet rules. Returns whether it alerted.
    #[allow(clippy::too_many_arguments)]
    pub fn packet(
        &mut self,
        pkt: &DecodedPacket,
        frame: &[u8],
        payload: &[u8],
        inspect_payload: bool,
        rec: &FlowRecord,
        dir: Direction,
        proto: AppProto,
        stream: Option<StreamWindow<'_>>,
        app_events: &[&'static str],
        vars: &mut FlowVars,
        ts_ns: u64,
        place: PacketPlace,
        out: &mut Vec<EveEvent>,
    ) -> bool {
        let ends = packet_ends(pkt);
        let view = FlowView {
            established: rec.state() == crate::flow::table::FlowState::Established,
            to_server: dir == Direction::ToServer,
            app_proto: BufferProto::of_app(proto).map(BufferProto::name),
            inspect_payload,
            app_events,
        };
        self.hits.clear();
        self.rules.detect_packet(
            &mut self.det,
            pkt,
            frame,
            payload,
            &ends,
            Some(view),
            stream,
            Some(vars),
            ts_ns,
            rec.flow_id,
            &mut self.hits,
        );
        let first = out.len();
        let alerted = self.emit(rec, Some(dir), proto, None, vars, ts_ns, Some(place), out);
        if let Some(icmp) = packet_icmp(pkt) {
            for e in &mut out[first..] {
                if let EveEvent::App(a) = e {
                    a.icmp = Some(icmp);
                }
            }
        }
        alerted
    }

    /// Inspects a packet that belongs to no flow (non-IP, or only decoder events to show) with
    /// the packet rules. Returns whether it alerted.
    pub fn packet_without_flow(
        &mut self,
        pkt: &DecodedPacket,
        frame: &[u8],
        payload: &[u8],
        ts_ns: u64,
        place: PacketPlace,
        out: &mut Vec<EveEvent>,
    ) -> bool {
        let ports = pkt.ports();
        let ends = packet_ends(pkt);
        self.hits.clear();
        self.rules.detect_packet(
            &mut self.det,
            pkt,
            frame,
            payload,
            &ends,
            None,
            None,
            None,
            ts_ns,
            0,
            &mut self.hits,
        );
        for i in 0..self.hits.len() {
            let hit = self.hits[i];
            self.count(hit.sig);
            out.push(EveEvent::App(Box::new(AppEvent {
                ts_ns,
                pcap_cnt: Some(place.pcap_cnt),
                file_index: Some(place.file_index),
                flow_id: 0,
                src: pkt.l3.src,
                dst: pkt.l3.dst,
                ports,
                proto: pkt.l3.proto,
                vlans: pkt.vlans,
                tunnel: pkt.tunnel,
                community: crate::flow::CommunityTuple::from_packet(pkt),
                tx_id: None,
                icmp: packet_icmp(pkt),
                kind: AppEventKind::Alert(Box::new(AlertEvent {
                    rules: Arc::clone(&self.rules),
                    sig: hit.sig,
                    direction: Direction::ToServer,
                    app_proto: None,
                    record: None,
                    flow: None,
                    capture: None,
                    stream: false,
                    vars: None,
                })),
            })));
        }
        !self.hits.is_empty()
    }

    /// A flow's rule variables by name, for its alerts and its flow event; `None` when rules
    /// set none.
    pub fn flow_vars_log(&self, vars: &FlowVars) -> Option<Box<FlowVarsLog>> {
        if vars.is_empty() {
            return None;
        }
        let (bits, ints) = self.rules.flow_vars_named(vars);
        Some(Box::new(FlowVarsLog {
            flowbits: bits.into_iter().map(str::to_owned).collect(),
            flowints: ints.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        }))
    }

    /// Whether transaction rules of `proto` inspect the raw stream of `dir`'s side, so its
    /// bytes must be kept from the transaction's start.
    pub fn tx_inspects_stream(&self, proto: AppProto, dir: Direction) -> bool {
        BufferProto::of_app(proto).is_some_and(|p| self.rules.tx_inspects_stream(p, side_of(dir)))
    }

    /// Inspects one finished application-layer record with the transaction rules. `raw` is
    /// each direction's (to server, to client) raw stream since the transaction began, with the
    /// stream offset of its first byte.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &mut self,
        record: &AppRecord,
        raw: [Option<(u64, &[u8])>; 2],
        events: &[vigil_parsers::app::AppEvent],
        rec: &FlowRecord,
        vars: &mut FlowVars,
        ts_ns: u64,
        place: Option<PacketPlace>,
        out: &mut Vec<EveEvent>,
    ) -> bool {
        let Some(proto) = BufferProto::of_app(record.proto()) else {
            return false;
        };
        let (sport, dport) = rec.ports.unwrap_or((0, 0));
        let ends = Endpoints {
            src: rec.client_addr,
            dst: rec.server_addr,
            sport,
            dport,
            ip_proto: rec.proto,
        };
        let established = match rec.proto {
            // A record of a TCP flow exists only after its handshake's data.
            crate::flow::key::PROTO_TCP => true,
            _ => rec.state() == crate::flow::table::FlowState::Established,
        };
        self.hits.clear();
        let mut bufs = RecordBuffers {
            record,
            raw,
            events,
        };
        self.rules.detect_tx(
            &mut self.det,
            proto,
            &mut bufs,
            &ends,
            established,
            vars,
            ts_ns,
            rec.flow_id,
            &mut self.hits,
        );
        self.emit(
            rec,
            None,
            record.proto(),
            Some(record),
            vars,
            ts_ns,
            place,
            out,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        rec: &FlowRecord,
        packet_dir: Option<Direction>,
        proto: AppProto,
        record: Option<&AppRecord>,
        vars: &FlowVars,
        ts_ns: u64,
        place: Option<PacketPlace>,
        out: &mut Vec<EveEvent>,
    ) -> bool {
        if self.hits.is_empty() {
            return false;
        }
        // As Suricata logs alerts: after every rule of the packet or record ran.
        let vars_log = self.flow_vars_log(vars);
        for i in 0..self.hits.len() {
            let hit = self.hits[i];
            let dir = match hit.side {
                Some(Side::Response) => Direction::ToClient,
                Some(_) => Direction::ToServer,
                None => packet_dir.unwrap_or(Direction::ToServer),
            };
            self.count(hit.sig);
            let kind = AppEventKind::Alert(Box::new(AlertEvent {
                rules: Arc::clone(&self.rules),
                sig: hit.sig,
                direction: dir,
                app_proto: (proto != AppProto::Unknown).then_some(proto),
                record: record.filter(|_| hit.side.is_some()).cloned(),
                flow: Some(*rec),
                capture: None,
                stream: hit.stream,
                vars: vars_log.clone(),
            }));
            let packet = place.map(|p| (p.pcap_cnt, p.file_index));
            let tx_id = record.and_then(AppRecord::tx_id);
            out.push(EveEvent::App(Box::new(AppEvent::of_flow(
                rec, dir, ts_ns, packet, tx_id, kind,
            ))));
        }
        true
    }
}

/// The ICMP type and code of an ICMP packet, for its events' header.
fn packet_icmp(pkt: &DecodedPacket) -> Option<(u8, u8)> {
    match pkt.l4 {
        vigil_parsers::L4::Icmpv4 {
            icmp_type, code, ..
        }
        | vigil_parsers::L4::Icmpv6 {
            icmp_type, code, ..
        } => Some((icmp_type, code)),
        _ => None,
    }
}

/// A packet's own addresses and ports, as rule headers see them.
fn packet_ends(pkt: &DecodedPacket) -> Endpoints {
    let (sport, dport) = pkt.ports().unwrap_or((0, 0));
    Endpoints {
        src: pkt.l3.src,
        dst: pkt.l3.dst,
        sport,
        dport,
        ip_proto: pkt.l3.proto,
    }
}
