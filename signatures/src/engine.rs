//! A loaded rule set and per-worker detection over packets and transactions.
//!
//! Rules are split at load time into packet rules (payload or header only) and transaction
//! rules per application protocol. Each inspection buffer (a buffer with its transform chain)
//! gets one Hyperscan database of its rules' fast patterns; a packet or transaction then runs
//! full evaluation only for the rules whose fast pattern occurred, plus the few rules that have
//! no usable fast pattern.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use thiserror::Error;
use vigil_parsers::{DecodedPacket, L4};

use crate::address::Vars;
use crate::buffer::{Buffer, BufferProto, Side};
use crate::cache::{hash_key, DbCache};
use crate::classification::Classifications;
use crate::content::MAX_PREFILTER_LEN;
use crate::groups::{self, Class, GroupMap};
use crate::inspect::{inspect, inspect_stream, InspectScratch};
use crate::iponly::{IpOnlyIndex, PortIndex};
use crate::parse::{parse_rule, rule_lines};
use crate::prefilter::{PatternSet, PatternSetBuilder, PrefilterError, Scratch};
use crate::sig::{
    compile_at, Action, BufferList, CompileContext, FlagMode, FlowbitOp, FlowintOp, HeaderMatch,
    NumCmp, Origin, Signature, SkipReason,
};
use crate::threshold::{SigRef, ThresholdConfig, ThresholdLimits, ThresholdState};

#[derive(Debug, Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("building the prefilter: {0}")]
    Prefilter(#[from] PrefilterError),
    #[error("{0}")]
    Config(String),
}

/// What loading found, for `rules check` and the run summary.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub loaded: usize,
    pub skipped: Vec<SkippedRule>,
    /// Loaded rules that cannot match until a parser lands: (sid, what is missing).
    pub waiting: Vec<(u32, String)>,
    /// Rules that share a gid:sid with an earlier one (the later is dropped, as in Suricata).
    pub duplicates: usize,
    pub cache_hit: bool,
}

#[derive(Debug, Clone)]
pub struct SkippedRule {
    pub file: String,
    pub line: usize,
    /// Column of the option (or header field) at fault, when known.
    pub column: Option<usize>,
    pub sid: Option<u32>,
    pub reason: SkipReason,
}

impl SkippedRule {
    /// The reason without rule-specific details, for counting by reason.
    pub fn reason_class(&self) -> String {
        let m = self.reason.message();
        match &self.reason {
            SkipReason::Unsupported(_) => format!("unsupported: {m}"),
            SkipReason::Invalid(_) => {
                let head = m.split(':').next().unwrap_or(m);
                format!("invalid: {head}")
            }
        }
    }
}

pub struct RuleSetConfig {
    pub vars: Vars,
    pub classifications: Classifications,
    /// `threshold.config`: global thresholds, suppressions and rate filters.
    pub thresholds: ThresholdConfig,
    pub threshold_limits: ThresholdLimits,
    /// Where compiled prefilter databases are cached; `None` builds them every time.
    pub cache_dir: Option<PathBuf>,
    /// Called before and after the prefilter databases are compiled (a cache miss). Compiling
    /// is the memory peak of a cold start: Hyperscan's compiler allocates ~180 MB for ET Open's
    /// largest group from the C heap, which cannot reuse what the parser freed in the Rust one.
    /// The binary, which owns the allocators, hands freed memory back to the OS here.
    pub release_freed_memory: Option<fn()>,
}

impl Default for RuleSetConfig {
    fn default() -> Self {
        RuleSetConfig {
            vars: Vars::default(),
            classifications: Classifications::bundled().clone(),
            thresholds: ThresholdConfig::default(),
            threshold_limits: ThresholdLimits::default(),
            cache_dir: None,
            release_freed_memory: None,
        }
    }
}

/// One prefiltered inspection buffer: a buffer, its transforms and its side.
struct Instance {
    buffer: Buffer,
    /// Request or Response, never Both (see `build_groups`).
    side: Side,
    /// A list with this transform chain, whose transforms this instance applies.
    transforms_from: (u32, usize),
    has_transforms: bool,
    set: PatternSet,
}

#[derive(Default)]
struct TxGroup {
    instances: Vec<Instance>,
    /// Rules with no fast pattern, always evaluated for this protocol's transactions.
    always: Vec<u32>,
}

pub struct RuleSet {
    sigs: Vec<Signature>,
    packet: PacketGroups,
    /// Packet rules without a fast pattern, by transport class (indexed by [`Class`]) and port.
    packet_always: [PortIndex; 3],
    /// Rules on decoder events: only packets with events are checked against them.
    event_rules: Vec<u32>,
    /// Whether a bidirectional rule is among them (then swapped ports are looked up too).
    packet_always_bidirectional: bool,
    /// Address-only rules, checked once per flow direction.
    ip_only: IpOnlyIndex,
    ip_only_bidirectional: bool,
    tx: HashMap<BufferProto, TxGroup>,
    /// (protocol, side) of transaction rules with payload matches on the raw stream.
    stream_tx_sides: Vec<(BufferProto, Side)>,
    thresholds: Mutex<ThresholdState>,
    /// Flowbit and flowint names by id, for logging a flow's variables.
    flow_var_names: Vec<Box<str>>,
    max_var_slots: usize,
}

/// A rule that matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub sig: u32,
    /// The transaction side the rule inspected (`None` for packet rules).
    pub side: Option<Side>,
    /// A packet rule matched the reassembled stream rather than the packet alone.
    pub stream: bool,
}

/// The reassembled in-order bytes of a packet's direction that end with what the packet added
/// to the stream, for stream inspection of payload rules.
#[derive(Debug, Clone, Copy)]
pub struct StreamWindow<'a> {
    pub bytes: &'a [u8],
    /// Stream offset of `bytes[0]` (0 = the first byte after the SYN).
    pub base: u64,
    /// Where the bytes this packet added begin in `bytes`; earlier bytes were inspected with
    /// earlier packets and are kept so that matches can span segments.
    pub new_from: usize,
}

/// Flowint names are interned with this prefix, apart from flowbit names.
pub(crate) const FLOWINT_PREFIX: &str = "flowint:";

/// Per-flow rule state: flowbits and flowints.
#[derive(Debug, Default, Clone)]
pub struct FlowVars {
    bits: Vec<u32>,
    ints: Vec<(u32, i64)>,
    /// Directions (bit 0 to server, bit 1 to client) whose IP-only rules were checked.
    ip_only_done: u8,
    /// A `pass` rule matched: the rest of the flow is not inspected (still logged).
    passed: bool,
}

impl FlowVars {
    /// No flowbit set and no flowint assigned.
    pub fn is_empty(&self) -> bool {
        self.bits.is_empty() && self.ints.is_empty()
    }

    fn is_set(&self, bit: u32) -> bool {
        self.bits.contains(&bit)
    }
    fn set(&mut self, bit: u32) {
        if !self.is_set(bit) {
            self.bits.push(bit);
        }
    }
    fn unset(&mut self, bit: u32) {
        self.bits.retain(|&b| b != bit);
    }
    fn int(&self, name: u32) -> Option<i64> {
        self.ints.iter().find(|(n, _)| *n == name).map(|&(_, v)| v)
    }
    fn set_int(&mut self, name: u32, v: i64) {
        match self.ints.iter_mut().find(|(n, _)| *n == name) {
            Some(e) => e.1 = v,
            None => self.ints.push((name, v)),
        }
    }
}

/// What the flow knows when a packet or transaction is inspected.
#[derive(Debug, Clone, Copy)]
pub struct FlowView<'a> {
    pub established: bool,
    /// Direction of the packet (or the side's direction for transactions).
    pub to_server: bool,
    pub app_proto: Option<&'a str>,
    /// False once the payload is encrypted (after a TLS/SSH handshake): payload rules skip it.
    pub inspect_payload: bool,
    /// Events raised on this packet: protocol detection's (`app-layer-event:applayer_*`) and
    /// TCP reassembly's (`stream-event`).
    pub app_events: &'a [&'static str],
}

/// Addresses and ports oriented as the inspected direction travels.
#[derive(Debug, Clone, Copy)]
pub struct Endpoints {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub ip_proto: u8,
}

/// A transaction's buffers, provided by the application layer.
pub trait TxBuffers {
    /// Calls `f` with each instance of `buffer` on `side` (most buffers have one; DNS queries
    /// and certificates may have several) until `f` returns true; returns whether it did.
    /// `Buffer::Packet` is the raw stream of `side` covering the transaction.
    fn each(&mut self, buffer: Buffer, side: Side, f: &mut dyn FnMut(&[u8]) -> bool) -> bool;
    fn has_side(&self, side: Side) -> bool;
    /// Stream offset of the first byte `each(Buffer::Packet, side)` gives, so absolute
    /// `offset`/`depth` count from the stream's start.
    fn stream_base(&self, _side: Side) -> u64 {
        0
    }
    /// The TLS version `side`'s hello gave (`tls.version`); `None` for other protocols.
    fn tls_version(&self, _side: Side) -> Option<u16> {
        None
    }
    /// Whether the parser raised `event` (a name of its event list) on `side` of this
    /// transaction (`app-layer-event`).
    fn has_event(&self, _side: Side, _event: &str) -> bool {
        false
    }
}

/// What one worker's detection did, for stats and tuning.
#[derive(Debug, Clone, Copy, Default)]
pub struct DetectCounters {
    pub packet_scans: u64,
    pub packet_scan_bytes: u64,
    pub tx_scans: u64,
    pub tx_scan_bytes: u64,
    /// Scans of new stream bytes that are not the packet's payload (a hole filled).
    pub stream_scans: u64,
    /// Packet rules that matched the stream but not the packet alone.
    pub stream_matches: u64,
    /// Rules fully evaluated (prefilter hits and rules without a fast pattern).
    pub candidates: u64,
    pub matches: u64,
}

/// One worker's detection scratch: Hyperscan scratch, candidate lists, evaluation state.
pub struct Detector {
    pub counters: DetectCounters,
    scratch: Scratch,
    stamp: Vec<u32>,
    generation: u32,
    candidates: Vec<u32>,
    inspect: InspectScratch,
    xform_a: Vec<u8>,
    xform_b: Vec<u8>,
}

impl RuleSet {
    /// Loads rules files. Rules that cannot be loaded are skipped and reported; only an
    /// unreadable file or a broken configuration fails the load.
    pub fn load(
        files: &[PathBuf],
        config: RuleSetConfig,
    ) -> Result<(RuleSet, LoadReport), LoadError> {
        let mut texts = Vec::with_capacity(files.len());
        for f in files {
            let text = std::fs::read_to_string(f).map_err(|source| LoadError::Read {
                path: f.display().to_string(),
                source,
            })?;
            texts.push((f.display().to_string(), text));
        }
        Self::from_texts(texts, config)
    }

    /// Loads rules from (origin, text) pairs. The texts are dropped once the rules are compiled,
    /// before the prefilter databases are built (the memory peak of a cold start).
    pub fn from_texts(
        texts: Vec<(String, String)>,
        config: RuleSetConfig,
    ) -> Result<(RuleSet, LoadReport), LoadError> {
        let key = cache_key(&texts, &config);
        let mut report = LoadReport::default();
        let mut names = HashMap::new();
        let mut sigs: Vec<Signature> = Vec::new();
        let mut seen: HashMap<(u32, u32), ()> = HashMap::new();
        {
            let mut ctx = CompileContext {
                vars: &config.vars,
                classifications: &config.classifications,
                names: &mut names,
            };
            for (origin, text) in &texts {
                for rl in rule_lines(text) {
                    let raw = match parse_rule(&rl.text) {
                        Ok(r) => r,
                        Err(e) => {
                            report.skipped.push(SkippedRule {
                                file: origin.clone(),
                                line: rl.line,
                                column: Some(e.column),
                                sid: sid_of(&rl.text),
                                reason: SkipReason::Invalid(format!("syntax error: {}", e.message)),
                            });
                            continue;
                        }
                    };
                    let o = Origin {
                        file: origin.clone(),
                        line: rl.line,
                    };
                    match compile_at(&raw, &mut ctx, o) {
                        Ok(mut sig) => {
                            sig.thresholds = config.thresholds.resolve(
                                sig.gid,
                                sig.sid,
                                sig.thresholds.threshold.as_ref(),
                            );
                            if seen.insert((sig.gid, sig.sid), ()).is_some() {
                                report.duplicates += 1;
                                report.skipped.push(SkippedRule {
                                    file: origin.clone(),
                                    line: rl.line,
                                    column: None,
                                    sid: Some(sig.sid),
                                    reason: SkipReason::Invalid(format!(
                                        "duplicate signature {}:{}",
                                        sig.gid, sig.sid
                                    )),
                                });
                                continue;
                            }
                            if let Some(w) = &sig.waiting_for {
                                report.waiting.push((sig.sid, w.clone()));
                            }
                            sigs.push(sig);
                        }
                        Err((reason, column)) => report.skipped.push(SkippedRule {
                            file: origin.clone(),
                            line: rl.line,
                            column,
                            sid: sid_of(&rl.text),
                            reason,
                        }),
                    }
                }
            }
        }
        // Flowbit setters first, so a rule checking a bit sees one set by the same packet;
        // pass rules before all others, as Suricata's default action order.
        sigs.sort_by_key(|s| {
            let action = match s.action {
                Action::Pass => 0,
                Action::Drop
                | Action::Reject
                | Action::RejectSrc
                | Action::RejectDst
                | Action::RejectBoth => 1,
                Action::Alert => 2,
            };
            let bits = match (s.flowbit_actions.is_empty(), s.flowbit_checks.is_empty()) {
                (false, true) => 0,
                (false, false) => 1,
                _ => 2,
            };
            (action, bits)
        });
        report.loaded = sigs.len();
        let max_var_slots = sigs.iter().map(|s| s.var_slots).max().unwrap_or(0);

        drop(texts);
        let cache = config.cache_dir.as_ref().map(|d| DbCache::new(d.clone()));
        let (packet, packet_always, tx, hit) =
            build_groups(&sigs, cache.as_ref(), &key, config.release_freed_memory)?;
        report.cache_hit = hit;
        let ip_only = IpOnlyIndex::build(
            sigs.iter()
                .enumerate()
                .filter(|(_, s)| is_ip_only(s))
                .map(|(i, s)| (i as u32, &s.src, &s.dst)),
        );
        let ip_only_bidirectional = sigs.iter().any(|s| is_ip_only(s) && s.bidirectional);
        // Rules on decoder events only run for packets that have events.
        let (event_rules, packet_always): (Vec<u32>, Vec<u32>) = packet_always
            .into_iter()
            .partition(|&i| has_decode_event(&sigs[i as usize]));
        let packet_always_bidirectional = packet_always
            .iter()
            .any(|&i| sigs[i as usize].bidirectional);
        let packet_always = Class::ALL.map(|class| {
            PortIndex::build(
                packet_always
                    .iter()
                    .filter(|&&i| groups::admits(&sigs[i as usize], class))
                    .map(|&i| {
                        let s = &sigs[i as usize];
                        (i, &s.src_ports, &s.dst_ports)
                    }),
            )
        });
        let mut stream_tx_sides = Vec::new();
        for sig in sigs.iter().filter(|s| s.waiting_for.is_none()) {
            let Some(proto) = sig.tx_proto() else {
                continue;
            };
            for l in sig.lists.iter().filter(|l| l.buffer == Buffer::Packet) {
                for &side in concrete_sides(l.side) {
                    if !stream_tx_sides.contains(&(proto, side)) {
                        stream_tx_sides.push((proto, side));
                    }
                }
            }
        }
        let set = RuleSet {
            sigs,
            stream_tx_sides,
            packet,
            packet_always,
            event_rules,
            packet_always_bidirectional,
            ip_only,
            ip_only_bidirectional,
            tx,
            thresholds: Mutex::new(ThresholdState::new(config.threshold_limits)),
            flow_var_names: {
                let mut by_id = vec![Box::<str>::default(); names.len()];
                for (name, id) in names {
                    by_id[id as usize] = name.into_boxed_str();
                }
                by_id
            },
            max_var_slots,
        };
        Ok((set, report))
    }

    pub fn len(&self) -> usize {
        self.sigs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sigs.is_empty()
    }

    /// Whether transaction rules of `proto` match payload content on the raw stream of `side`.
    pub fn tx_inspects_stream(&self, proto: BufferProto, side: Side) -> bool {
        self.stream_tx_sides.contains(&(proto, side))
    }

    pub fn sig(&self, idx: u32) -> &Signature {
        &self.sigs[idx as usize]
    }

    pub fn signatures(&self) -> &[Signature] {
        &self.sigs
    }

    /// Whether a loaded rule inspects a buffer `pred` accepts (parsers compute some
    /// fingerprints only when a rule needs them).
    pub fn uses_buffer(&self, pred: impl Fn(Buffer) -> bool) -> bool {
        self.sigs
            .iter()
            .filter(|s| s.waiting_for.is_none())
            .any(|s| s.lists.iter().any(|l| pred(l.buffer)))
    }

    /// Number of distinct flowbit/flowint names.
    pub fn flow_var_names(&self) -> usize {
        self.flow_var_names.len()
    }

    /// The flowbits set in `vars` by name, in the order they were set, and the flowints.
    pub fn flow_vars_named<'a>(&'a self, vars: &FlowVars) -> (Vec<&'a str>, Vec<(&'a str, i64)>) {
        let name = |id: u32| self.flow_var_names.get(id as usize).map_or("", |n| &**n);
        // Flowints are interned with a prefix, apart from flowbits of the same name.
        let int_name = |id: u32| {
            let n = name(id);
            n.strip_prefix(FLOWINT_PREFIX).unwrap_or(n)
        };
        (
            vars.bits.iter().map(|&b| name(b)).collect(),
            vars.ints.iter().map(|&(n, v)| (int_name(n), v)).collect(),
        )
    }

    pub fn new_detector(&self) -> Result<Detector, PrefilterError> {
        let mut scratch = Scratch::new();
        for set in &self.packet.sets {
            scratch.grow_for(set)?;
        }
        for g in self.tx.values() {
            for inst in &g.instances {
                scratch.grow_for(&inst.set)?;
            }
        }
        Ok(Detector {
            counters: DetectCounters::default(),
            scratch,
            stamp: vec![0; self.sigs.len()],
            generation: 0,
            candidates: Vec::with_capacity(256),
            inspect: InspectScratch::default(),
            xform_a: Vec::new(),
            xform_b: Vec::new(),
        })
    }

    /// Inspects one packet with the packet rules. `frame` is the packet's bytes as `pkt` was
    /// decoded from (its offsets point into them; the header buffers are cut from them).
    /// `flow` is `None` for packets outside flows.
    #[allow(clippy::too_many_arguments)]
    pub fn detect_packet(
        &self,
        det: &mut Detector,
        pkt: &DecodedPacket,
        frame: &[u8],
        payload: &[u8],
        ends: &Endpoints,
        flow: Option<FlowView<'_>>,
        stream: Option<StreamWindow<'_>>,
        vars: Option<&mut FlowVars>,
        ts_ns: u64,
        flow_id: u64,
        hits: &mut Vec<Hit>,
    ) {
        det.begin();
        let inspect_payload = flow.is_none_or(|f| f.inspect_payload);
        let stream = stream.filter(|w| inspect_payload && w.new_from < w.bytes.len());
        let to_server = flow.is_none_or(|f| f.to_server);
        let server_port = if to_server { ends.dport } else { ends.sport };
        let groups = self
            .packet
            .map
            .groups(Class::of(ends.ip_proto), to_server, server_port);
        if let (Some((common, specific)), true) = (groups, inspect_payload) {
            // With new stream bytes, one scan covers them from 31 bytes before (a fast pattern
            // is at most 32 bytes: what crosses into them is all the stream adds), reporting
            // only occurrences that reach into them. When they are the packet's payload (nearly
            // always) that scan is also the packet's; otherwise the packet is scanned too.
            let region = stream.map(|w| {
                let from = w.new_from.saturating_sub(MAX_PREFILTER_LEN - 1);
                (&w.bytes[from..], w.new_from - from)
            });
            let packet_covered = region.is_some_and(|(r, skip)| &r[skip..] == payload);
            for g in std::iter::once(common).chain(specific) {
                let Some(set) = self.packet.sets.get(g as usize).filter(|s| !s.is_empty()) else {
                    continue;
                };
                let Detector {
                    scratch,
                    stamp,
                    generation,
                    candidates,
                    counters,
                    ..
                } = det;
                if let Some((bytes, skip)) = region {
                    counters.packet_scans += 1;
                    counters.packet_scan_bytes += bytes.len() as u64;
                    counters.stream_scans += u64::from(!packet_covered);
                    let _ = set.scan_ending_after(scratch, bytes, skip, |id| {
                        push_candidate(stamp, *generation, candidates, id)
                    });
                }
                if !packet_covered && !payload.is_empty() {
                    counters.packet_scans += 1;
                    counters.packet_scan_bytes += payload.len() as u64;
                    let _ = set.scan(scratch, payload, |id| {
                        push_candidate(stamp, *generation, candidates, id)
                    });
                }
            }
        }
        {
            let Detector {
                stamp,
                generation,
                candidates,
                ..
            } = det;
            let mut add = |id| push_candidate(stamp, *generation, candidates, id);
            let always = &self.packet_always[Class::of(ends.ip_proto) as usize];
            always.candidates(ends.sport, ends.dport, &mut add);
            if self.packet_always_bidirectional {
                always.candidates(ends.dport, ends.sport, &mut add);
            }
            if pkt.anomaly_count > 0 {
                self.event_rules.iter().for_each(|&id| add(id));
            }
        }
        let mut scratch_vars = FlowVars::default();
        let vars = match vars {
            Some(v) => v,
            None => &mut scratch_vars,
        };
        if vars.passed {
            det.candidates.clear();
            return;
        }
        let dir_bit = match flow {
            Some(f) if !f.to_server => 2,
            _ => 1,
        };
        if self.ip_only.len > 0 && vars.ip_only_done & dir_bit == 0 {
            if flow.is_some() {
                vars.ip_only_done |= dir_bit;
            }
            let Detector {
                stamp,
                generation,
                candidates,
                ..
            } = det;
            let mut add = |id| push_candidate(stamp, *generation, candidates, id);
            self.ip_only.candidates(ends.src, ends.dst, &mut add);
            if self.ip_only_bidirectional {
                self.ip_only.candidates(ends.dst, ends.src, &mut add);
            }
        }
        if det.candidates.is_empty() {
            return;
        }
        det.candidates.sort_unstable();
        det.counters.candidates += det.candidates.len() as u64;
        let candidates = std::mem::take(&mut det.candidates);
        for &id in &candidates {
            let sig = &self.sigs[id as usize];
            if !header_ok(sig, ends)
                || !flow_ok(sig, flow, pkt)
                || !packet_ok(sig, pkt, payload, ends)
            {
                continue;
            }
            // Encrypted payload is not inspected; the packet's headers still are.
            if !inspect_payload && sig.lists.iter().any(|l| l.buffer == Buffer::Packet) {
                continue;
            }
            if !flow_checks_ok(sig, vars) {
                continue;
            }
            if !sig
                .app_events
                .iter()
                .all(|e| flow.is_some_and(|f| f.app_events.contains(&e.name)))
            {
                continue;
            }
            // As Suricata: the packet unless the rule is stream-only; then, unless it is
            // packet-only or has packet-size conditions, the stream bytes ending with what the
            // packet added, where a match must take in some of those new bytes (matches wholly
            // in older bytes were inspected with an earlier packet).
            let on_packet = !sig.stream_only
                && sig.lists.iter().all(|list| {
                    let Detector {
                        inspect: scratch,
                        xform_a,
                        xform_b,
                        ..
                    } = &mut *det;
                    let data = if list.buffer == Buffer::Packet {
                        payload
                    } else {
                        match header_buffer(list, pkt, frame, xform_a, xform_b) {
                            Some(d) => d,
                            None => return false,
                        }
                    };
                    scratch.reset(sig.var_slots);
                    inspect(&list.matches, data, scratch)
                });
            let on_stream = !on_packet
                && !sig.lists.is_empty()
                && !sig.packet_only
                && !has_dsize(sig)
                && stream.is_some_and(|w| {
                    sig.lists.iter().all(|list| {
                        det.inspect.reset(sig.var_slots);
                        inspect_stream(
                            &list.matches,
                            w.bytes,
                            w.base,
                            Some(w.new_from),
                            &mut det.inspect,
                        )
                    })
                });
            if !(on_packet || on_stream) {
                continue;
            }
            if on_stream {
                det.counters.stream_matches += 1;
            }
            if self.matched(sig, id, vars, ends, ts_ns, flow_id, None, on_stream, hits) {
                break;
            }
        }
        det.candidates = candidates;
    }

    /// Inspects a transaction of `proto` with its rules.
    #[allow(clippy::too_many_arguments)]
    pub fn detect_tx(
        &self,
        det: &mut Detector,
        proto: BufferProto,
        bufs: &mut dyn TxBuffers,
        request_ends: &Endpoints,
        established: bool,
        vars: &mut FlowVars,
        ts_ns: u64,
        flow_id: u64,
        hits: &mut Vec<Hit>,
    ) {
        let Some(group) = self.tx.get(&proto) else {
            return;
        };
        if vars.passed {
            return;
        }
        det.begin();
        // Instances are per concrete side: a direction-less buffer's literals were added to
        // both sides' databases when the groups were built.
        for inst in &group.instances {
            if !bufs.has_side(inst.side) {
                continue;
            }
            let Detector {
                scratch,
                stamp,
                generation,
                candidates,
                xform_a,
                xform_b,
                counters,
                ..
            } = det;
            let transforms =
                &self.sigs[inst.transforms_from.0 as usize].lists[inst.transforms_from.1];
            bufs.each(inst.buffer, inst.side, &mut |data| {
                let data = if inst.has_transforms {
                    match apply_transforms(transforms, data, xform_a, xform_b) {
                        Some(d) => d,
                        None => return false,
                    }
                } else {
                    data
                };
                counters.tx_scans += 1;
                counters.tx_scan_bytes += data.len() as u64;
                let _ = inst.set.scan(scratch, data, |id| {
                    push_candidate(stamp, *generation, candidates, id)
                });
                false
            });
        }
        for &id in &group.always {
            push_candidate(&mut det.stamp, det.generation, &mut det.candidates, id);
        }
        if det.candidates.is_empty() {
            return;
        }
        det.candidates.sort_unstable();
        det.counters.candidates += det.candidates.len() as u64;
        let response_ends = Endpoints {
            src: request_ends.dst,
            dst: request_ends.src,
            sport: request_ends.dport,
            dport: request_ends.sport,
            ip_proto: request_ends.ip_proto,
        };
        let candidates = std::mem::take(&mut det.candidates);
        'sigs: for &id in &candidates {
            let sig = &self.sigs[id as usize];
            // A rule without a direction inspects each side on its own, as its own alert.
            for &side in concrete_sides(sig.tx_side()) {
                let list_side = |l: &BufferList| if l.side == Side::Both { side } else { l.side };
                // A `=>` rule's header names client and server, whichever side alerts.
                let ends = if side == Side::Response && !sig.transactional {
                    &response_ends
                } else {
                    request_ends
                };
                if !header_ok(sig, ends) || !sig.ip_proto.matches(ends.ip_proto) {
                    continue;
                }
                if sig.flow.established && !established || sig.flow.not_established && established {
                    continue;
                }
                if !sig.lists.iter().all(|l| bufs.has_side(list_side(l)))
                    || !flow_checks_ok(sig, vars)
                {
                    continue;
                }
                if sig
                    .tls_version
                    .is_some_and(|m| !m.matches(bufs.tls_version(side)))
                {
                    continue;
                }
                if !sig
                    .app_events
                    .iter()
                    .all(|e| bufs.has_side(side) && bufs.has_event(side, e.name))
                {
                    continue;
                }
                let mut ok = true;
                for list in &sig.lists {
                    let Detector {
                        inspect: scratch,
                        xform_a,
                        xform_b,
                        ..
                    } = det;
                    let lside = list_side(list);
                    // Payload matches of a transaction rule inspect the raw stream of its side.
                    let stream_base = (list.buffer == Buffer::Packet && list.transforms.is_empty())
                        .then(|| bufs.stream_base(lside));
                    let matched = bufs.each(list.buffer, lside, &mut |data| {
                        let data = if list.transforms.is_empty() {
                            data
                        } else {
                            match apply_transforms(list, data, xform_a, xform_b) {
                                Some(d) => d,
                                None => return false,
                            }
                        };
                        scratch.reset(sig.var_slots);
                        match stream_base {
                            Some(base) => inspect_stream(&list.matches, data, base, None, scratch),
                            None => inspect(&list.matches, data, scratch),
                        }
                    });
                    if !matched {
                        ok = false;
                        break;
                    }
                }
                if ok && self.matched(sig, id, vars, ends, ts_ns, flow_id, Some(side), false, hits)
                {
                    break 'sigs;
                }
            }
        }
        det.candidates = candidates;
    }

    /// Applies a matched rule's flow actions and thresholds; records the hit. Returns true
    /// when a `pass` rule matched, which ends inspection of this packet or transaction.
    #[allow(clippy::too_many_arguments)]
    fn matched(
        &self,
        sig: &Signature,
        id: u32,
        vars: &mut FlowVars,
        ends: &Endpoints,
        ts_ns: u64,
        flow_id: u64,
        side: Option<Side>,
        stream: bool,
        hits: &mut Vec<Hit>,
    ) -> bool {
        apply_flow_actions(sig, vars);
        if sig.action == Action::Pass {
            vars.passed = true;
            return true;
        }
        if sig.noalert {
            return false;
        }
        // The shared table is only locked for rules that have thresholds or suppressions.
        let alerts = sig.thresholds.is_empty() || {
            let mut t = self.thresholds.lock().unwrap_or_else(|e| e.into_inner());
            t.check(
                SigRef {
                    gid: sig.gid,
                    sid: sig.sid,
                    rev: sig.rev,
                    thresholds: &sig.thresholds,
                },
                ends.src,
                ends.dst,
                flow_id,
                ts_ns,
            )
            .alerts()
        };
        if alerts {
            hits.push(Hit {
                sig: id,
                side,
                stream,
            });
        }
        false
    }

    pub fn max_var_slots(&self) -> usize {
        self.max_var_slots
    }
}

impl Detector {
    fn begin(&mut self) {
        self.candidates.clear();
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.stamp.iter_mut().for_each(|s| *s = 0);
            self.generation = 1;
        }
    }
}

fn push_candidate(stamp: &mut [u32], generation: u32, candidates: &mut Vec<u32>, id: u32) {
    if let Some(s) = stamp.get_mut(id as usize) {
        if *s != generation {
            *s = generation;
            candidates.push(id);
        }
    }
}

/// A header list's buffer in this packet, transformed if the list says so; `None` when the
/// packet has no such header (another protocol, a later fragment, a header the capture cut).
fn header_buffer<'d>(
    list: &BufferList,
    pkt: &DecodedPacket,
    frame: &'d [u8],
    a: &'d mut Vec<u8>,
    b: &'d mut Vec<u8>,
) -> Option<&'d [u8]> {
    let range = match list.buffer {
        Buffer::Ipv4Hdr if pkt.l3.version == 4 => pkt.ip_header_range(),
        Buffer::Ipv6Hdr if pkt.l3.version == 6 => pkt.ip_header_range(),
        buffer => match buffer.header_transport() {
            Some(proto) if pkt.l3.proto == proto => pkt.l4_header_range(),
            _ => None,
        },
    }?;
    let data = frame.get(range)?;
    if list.transforms.is_empty() {
        Some(data)
    } else {
        apply_transforms(list, data, a, b)
    }
}

/// Runs a list's transform chain over `data`, alternating between two scratch buffers.
/// `None` when a transform failed: the buffer cannot match.
fn apply_transforms<'d>(
    list: &BufferList,
    data: &'d [u8],
    a: &'d mut Vec<u8>,
    b: &'d mut Vec<u8>,
) -> Option<&'d [u8]> {
    let (first, rest) = list.transforms.split_first()?;
    if !first.apply(data, a) {
        return None;
    }
    for t in rest {
        if !t.apply(a, b) {
            return None;
        }
        std::mem::swap(a, b);
    }
    Some(&a[..])
}

fn sid_of(text: &str) -> Option<u32> {
    let i = text.find("sid:")?;
    let rest = text[i + 4..].trim_start();
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn header_ok(sig: &Signature, e: &Endpoints) -> bool {
    let fwd = sig.src.contains(e.src)
        && sig.dst.contains(e.dst)
        && sig.src_ports.contains(e.sport)
        && sig.dst_ports.contains(e.dport);
    fwd || sig.bidirectional
        && sig.src.contains(e.dst)
        && sig.dst.contains(e.src)
        && sig.src_ports.contains(e.dport)
        && sig.dst_ports.contains(e.sport)
}

fn flow_ok(sig: &Signature, flow: Option<FlowView<'_>>, pkt: &DecodedPacket) -> bool {
    let f = &sig.flow;
    if f.only_frag && !pkt.is_fragment() || f.no_frag && pkt.is_fragment() {
        return false;
    }
    if !sig.ip_proto.matches(pkt.l3.proto) {
        return false;
    }
    let Some(flow) = flow else {
        return !(f.established || f.to_server.is_some()) && sig.app_proto.is_none();
    };
    if f.established && !flow.established || f.not_established && flow.established {
        return false;
    }
    if let Some(ts) = f.to_server {
        if ts != flow.to_server {
            return false;
        }
    }
    match &sig.app_proto {
        Some(want) => flow.app_proto == Some(want.as_str()),
        None => true,
    }
}

fn packet_ok(sig: &Signature, pkt: &DecodedPacket, payload: &[u8], e: &Endpoints) -> bool {
    sig.header.iter().all(|h| match h {
        // As Suricata: a dsize that cannot hold for an empty payload needs one (`dsize:!10`
        // does not match a bare ACK), and `dsize:0` needs none.
        HeaderMatch::Dsize(c) => {
            let empty_ok = matches!(c, NumCmp::Lt(_) | NumCmp::Le(_) | NumCmp::Eq(0));
            (!payload.is_empty() || empty_ok) && c.test(payload.len() as u64)
        }
        HeaderMatch::Ttl(c) => c.test(pkt.l3.ttl as u64),
        HeaderMatch::Tos(c) => c.test(pkt.l3.tos as u64),
        HeaderMatch::IpId(c) => c.test(pkt.l3.ip_id as u64),
        HeaderMatch::IpProto(c) => c.test(pkt.l3.proto as u64),
        HeaderMatch::SameIp(_) => e.src == e.dst,
        HeaderMatch::IpOpts(bit) => pkt.l3.ip_options & bit != 0,
        HeaderMatch::DecodeEvent(name) => pkt.anomalies().any(|a| a.event == name),
        HeaderMatch::IpVersion(v) => pkt.l3.version == *v,
        HeaderMatch::VlanLayers(c) => c.test(pkt.vlan_count as u64),
        HeaderMatch::VlanId { id, layer } => {
            let vlans = pkt.vlans();
            match layer {
                None => vlans.iter().any(|&v| id.test(v as u64)),
                Some(l) => {
                    let idx = if *l < 0 {
                        vlans.len().checked_sub(l.unsigned_abs() as usize)
                    } else {
                        Some(*l as usize)
                    };
                    idx.and_then(|i| vlans.get(i))
                        .is_some_and(|&v| id.test(v as u64))
                }
            }
        }
        HeaderMatch::FragOffset(c) => c.test(pkt.l3.fragment.map_or(0, |f| f.offset as u64)),
        HeaderMatch::FragBits { bits, mode } => {
            // The decoder keeps MF; DF and the reserved bit are not kept yet.
            let have = pkt.l3.fragment.map_or(0, |f| f.more_fragments as u8);
            flags_match(have, *bits, *mode, 0)
        }
        HeaderMatch::IcmpType(c) => match pkt.l4 {
            L4::Icmpv4 { icmp_type, .. } | L4::Icmpv6 { icmp_type, .. } => c.test(icmp_type as u64),
            _ => false,
        },
        HeaderMatch::IcmpCode(c) => match pkt.l4 {
            L4::Icmpv4 { code, .. } | L4::Icmpv6 { code, .. } => c.test(code as u64),
            _ => false,
        },
        HeaderMatch::IcmpId(v) => match pkt.l4 {
            L4::Icmpv4 { id, .. } | L4::Icmpv6 { id, .. } => id == *v,
            _ => false,
        },
        HeaderMatch::IcmpSeq(v) => match pkt.l4 {
            L4::Icmpv4 { seq, .. } | L4::Icmpv6 { seq, .. } => seq == *v,
            _ => false,
        },
        HeaderMatch::TcpSeq(v) => matches!(pkt.l4, L4::Tcp(t) if t.seq == *v),
        HeaderMatch::TcpAck(v) => matches!(pkt.l4, L4::Tcp(t) if t.ack == *v),
        HeaderMatch::TcpWindow(c) => matches!(pkt.l4, L4::Tcp(t) if c.test(t.window as u64)),
        HeaderMatch::TcpMss(c) => {
            matches!(pkt.l4, L4::Tcp(t) if t.mss.is_some_and(|m| c.test(m as u64)))
        }
        HeaderMatch::TcpFlags { bits, mode, ignore } => {
            matches!(pkt.l4, L4::Tcp(t) if flags_match(t.flags, *bits, *mode, *ignore))
        }
    })
}

fn flags_match(have: u8, want: u8, mode: FlagMode, ignore: u8) -> bool {
    let have = have & !ignore;
    match mode {
        FlagMode::Exact => have == want,
        FlagMode::Plus => have & want == want,
        FlagMode::Any => have & want != 0,
        FlagMode::Not => have & want == 0,
    }
}

fn flow_checks_ok(sig: &Signature, vars: &FlowVars) -> bool {
    let bits_ok = sig.flowbit_checks.iter().all(|op| match op {
        FlowbitOp::IsSet { bits, all } => {
            if *all {
                bits.iter().all(|&b| vars.is_set(b))
            } else {
                bits.iter().any(|&b| vars.is_set(b))
            }
        }
        FlowbitOp::IsNotSet { bits, all } => {
            if *all {
                bits.iter().all(|&b| !vars.is_set(b))
            } else {
                bits.iter().any(|&b| !vars.is_set(b))
            }
        }
        _ => true,
    });
    bits_ok
        && sig.flowint_checks.iter().all(|op| match *op {
            FlowintOp::IsSet(n, want) => vars.int(n).is_some() == want,
            FlowintOp::Cmp(n, ord, eq, v) => match vars.int(n) {
                Some(x) => (x.cmp(&v.get(&[])) == ord) == eq,
                None => false,
            },
            _ => true,
        })
}

fn apply_flow_actions(sig: &Signature, vars: &mut FlowVars) {
    for op in &sig.flowbit_actions {
        match op {
            FlowbitOp::Set(bits) => bits.iter().for_each(|&b| vars.set(b)),
            FlowbitOp::Unset(bits) => bits.iter().for_each(|&b| vars.unset(b)),
            FlowbitOp::Toggle(bits) => {
                for &b in bits {
                    if vars.is_set(b) {
                        vars.unset(b)
                    } else {
                        vars.set(b)
                    }
                }
            }
            _ => {}
        }
    }
    for op in &sig.flowint_actions {
        match *op {
            FlowintOp::Set(n, v) => vars.set_int(n, v.get(&[])),
            FlowintOp::Add(n, v) => {
                let cur = vars.int(n).unwrap_or(0);
                vars.set_int(n, cur.saturating_add(v.get(&[])));
            }
            FlowintOp::Sub(n, v) => {
                let cur = vars.int(n).unwrap_or(0);
                vars.set_int(n, cur.saturating_sub(v.get(&[])));
            }
            _ => {}
        }
    }
}

/// Packet rule groups and their databases.
struct PacketGroups {
    map: GroupMap,
    sets: Vec<PatternSet>,
}

type Groups = (PacketGroups, Vec<u32>, HashMap<BufferProto, TxGroup>, bool);

/// Builds (or loads from the cache) the packet and per-protocol prefilter databases.
fn build_groups(
    sigs: &[Signature],
    cache: Option<&DbCache>,
    key: &[u8; 32],
    release_freed_memory: Option<fn()>,
) -> Result<Groups, LoadError> {
    let mut packet_prefiltered = Vec::new();
    let mut packet_always = Vec::new();
    // (proto, buffer, side, transform key) -> builder + representative list
    type InstKey = (BufferProto, Buffer, Side, String);
    let mut inst_builders: HashMap<InstKey, (PatternSetBuilder, (u32, usize))> = HashMap::new();
    let mut tx: HashMap<BufferProto, TxGroup> = HashMap::new();
    for (i, sig) in sigs.iter().enumerate() {
        let id = i as u32;
        if sig.waiting_for.is_some() {
            continue;
        }
        if is_ip_only(sig) {
            continue;
        }
        match sig.tx_proto() {
            None => match sig.prefilter_content() {
                Some(_) => packet_prefiltered.push(id),
                None => packet_always.push(id),
            },
            Some(proto) => {
                let group = tx.entry(proto).or_default();
                match sig.prefilter {
                    Some((li, _)) => {
                        let (list, c) = sig.prefilter_content().expect("prefilter is a content");
                        // A buffer of either side goes into both sides' databases rather than
                        // one of its own: its bytes are then scanned once, not once more for
                        // a handful of literals (its candidates are checked on both sides
                        // whichever side's scan found them).
                        for &side in concrete_sides(list.side) {
                            let k = (
                                proto,
                                same_bytes_as(list.buffer, side),
                                side,
                                list.transform_key.clone(),
                            );
                            let e = inst_builders
                                .entry(k)
                                .or_insert_with(|| (PatternSetBuilder::new(), (id, li)));
                            e.0.add(c.prefilter_bytes(), c.nocase, id);
                        }
                    }
                    None => group.always.push(id),
                }
            }
        }
    }
    // A stable order of instances keeps the cache layout deterministic.
    let mut keys: Vec<InstKey> = inst_builders.keys().cloned().collect();
    keys.sort_by(|a, b| {
        (a.0.name(), a.1, side_rank(a.2), &a.3).cmp(&(b.0.name(), b.1, side_rank(b.2), &b.3))
    });

    let map = GroupMap::build(sigs, &packet_prefiltered);
    let n_packet = map.groups.len();
    // The databases are stored in this order: a rule text that compiles to other instances
    // (another side or buffer) or other packet groups (another grouping) must not find the
    // previous build's databases.
    let layout = format!("{n_packet} {keys:?}");
    let members: Vec<u8> = map
        .groups
        .iter()
        .flat_map(|g| g.iter().chain(std::iter::once(&u32::MAX)))
        .flat_map(|id| id.to_le_bytes())
        .collect();
    // Every literal as given to the prefilter: a change in how fast patterns are chosen or cut
    // must not load databases built from other literals for the same rule texts.
    let mut literals = Vec::new();
    for (_, c) in sigs.iter().filter_map(Signature::prefilter_content) {
        let bytes = c.prefilter_bytes();
        literals.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        literals.push(u8::from(c.nocase));
        literals.extend_from_slice(bytes);
    }
    let key = hash_key(&[key.as_slice(), layout.as_bytes(), &members, &literals]);
    let cached = cache
        .and_then(|c| c.get(&key))
        .and_then(|bytes| decode_sets(&bytes, keys.len() + n_packet));
    let hit = cached.is_some();
    let mut sets = match cached {
        Some(s) => s,
        None => {
            let release = || {
                if let Some(f) = release_freed_memory {
                    f()
                }
            };
            release();
            let mut built = Vec::with_capacity(keys.len() + n_packet);
            for group in &map.groups {
                let mut b = PatternSetBuilder::new();
                for &id in group {
                    let (_, c) = sigs[id as usize]
                        .prefilter_content()
                        .expect("prefiltered rule");
                    b.add(c.prefilter_bytes(), c.nocase, id);
                }
                built.push(b.build()?);
            }
            for k in &keys {
                let builder = &mut inst_builders.get_mut(k).expect("key from the map").0;
                built.push(std::mem::take(builder).build()?);
            }
            // Before encoding: the encoded copy would otherwise add to the compiler's leftovers.
            release();
            if let Some(c) = cache {
                if let Ok(bytes) = encode_sets(&built) {
                    // A cache that cannot be written only costs the next start-up time.
                    let _ = c.put(&key, &bytes);
                }
            }
            built
        }
    }
    .into_iter();
    let packet = PacketGroups {
        sets: sets.by_ref().take(n_packet).collect(),
        map,
    };
    for (k, set) in keys.into_iter().zip(sets) {
        let transforms_from = inst_builders[&k].1;
        tx.entry(k.0).or_default().instances.push(Instance {
            buffer: k.1,
            side: k.2,
            transforms_from,
            has_transforms: !k.3.is_empty(),
            set,
        });
    }
    Ok((packet, packet_always, tx, hit))
}

/// `dsize` is about one packet: such rules never inspect the stream (Suricata's
/// `SIG_FLAG_REQUIRE_PACKET`).
fn has_dsize(sig: &Signature) -> bool {
    sig.header
        .iter()
        .any(|h| matches!(h, HeaderMatch::Dsize(_)))
}

fn has_decode_event(sig: &Signature) -> bool {
    sig.header
        .iter()
        .any(|h| matches!(h, HeaderMatch::DecodeEvent(_)))
}

/// A rule that only looks at addresses and ports (Suricata's IP-only rules).
fn is_ip_only(sig: &Signature) -> bool {
    sig.lists.is_empty()
        && sig.header.is_empty()
        && sig.flow == crate::sig::FlowOpts::default()
        && sig.flowbit_checks.is_empty()
        && sig.flowint_checks.is_empty()
        && sig.app_events.is_empty()
        && sig.app_proto.is_none()
        && !sig.packet_only
        && !sig.stream_only
        && sig.waiting_for.is_none()
}

/// Buffers that hold the same bytes share one prefilter database, so the bytes are scanned
/// once: HTTP bodies are both `http.*_body` and `file.data`.
fn same_bytes_as(buffer: Buffer, side: Side) -> Buffer {
    match (buffer, side) {
        (Buffer::HttpResponseBody, Side::Response) | (Buffer::HttpRequestBody, Side::Request) => {
            Buffer::FileData
        }
        _ => buffer,
    }
}

/// The transaction sides `side` stands for, request first.
fn concrete_sides(side: Side) -> &'static [Side] {
    match side {
        Side::Request => &[Side::Request],
        Side::Response => &[Side::Response],
        Side::Both => &[Side::Request, Side::Response],
    }
}

fn side_rank(s: Side) -> u8 {
    match s {
        Side::Request => 0,
        Side::Response => 1,
        Side::Both => 2,
    }
}

fn encode_sets(sets: &[PatternSet]) -> Result<Vec<u8>, PrefilterError> {
    let mut out = Vec::new();
    out.extend_from_slice(&(sets.len() as u64).to_le_bytes());
    for s in sets {
        let b = s.serialize()?;
        out.extend_from_slice(&(b.len() as u64).to_le_bytes());
        out.extend_from_slice(&b);
    }
    Ok(out)
}

fn decode_sets(bytes: &[u8], expected: usize) -> Option<Vec<PatternSet>> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let s = bytes.get(at..at.checked_add(n)?)?;
        at += n;
        Some(s)
    };
    let count = u64::from_le_bytes(take(8)?.try_into().ok()?) as usize;
    if count != expected {
        return None;
    }
    let mut sets = Vec::with_capacity(count);
    for _ in 0..count {
        let len = u64::from_le_bytes(take(8)?.try_into().ok()?) as usize;
        sets.push(PatternSet::deserialize(take(len)?).ok()?);
    }
    Some(sets)
}

fn cache_key(texts: &[(String, String)], config: &RuleSetConfig) -> [u8; 32] {
    let mut vars: Vec<String> = config
        .vars
        .addresses
        .iter()
        .chain(config.vars.ports.iter())
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    vars.sort();
    let vars = vars.join("\n");
    let mut parts: Vec<&[u8]> = vec![env!("CARGO_PKG_VERSION").as_bytes(), vars.as_bytes()];
    for (_, t) in texts {
        parts.push(t.as_bytes());
    }
    hash_key(&parts)
}

/// The default cache directory: `$XDG_CACHE_HOME/vigil` or `~/.cache/vigil`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(Path::new(&d).join("vigil"));
    }
    std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache").join("vigil"))
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
