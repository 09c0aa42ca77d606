//! A worker's flow table: lookup by normalized key, per-protocol/state timeouts driven by packet
//! time, a memcap with an emergency mode, and the records of ended flows.
//!
//! Storage is a slab of records plus a hash index, both sized for the memcap up front so the hot
//! path never grows them (capacity is reserved, not touched: resident memory follows live flows).

use std::net::IpAddr;

use serde::Deserialize;
use vigil_parsers::app::AppProto;
use vigil_parsers::{DecodedPacket, TunnelContext, L4, TCP_ACK, TCP_SYN};

use super::key::{
    CommunityTuple, FlowKey, KeySide, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP,
};
use super::tcp::TcpState;

const NS_PER_SEC: u64 = 1_000_000_000;

/// Why a flow's record was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlowEnd {
    /// Still live (never seen in an event).
    #[default]
    Live,
    Timeout,
    /// Evicted to make room under the memcap, or ended by TCP port reuse.
    Forced,
    /// End of input (or daemon shutdown).
    Shutdown,
}

impl FlowEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            FlowEnd::Live => "live",
            FlowEnd::Timeout => "timeout",
            FlowEnd::Forced => "forced",
            FlowEnd::Shutdown => "shutdown",
        }
    }
}

/// ICMP type/code of the first packet and of the first one in the other direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpTypes {
    pub icmp_type: u8,
    pub code: u8,
    pub response: Option<(u8, u8)>,
}

/// Everything known about one flow; the flow event is written from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowRecord {
    pub key: FlowKey,
    pub client_addr: IpAddr,
    pub server_addr: IpAddr,
    /// Transport ports for TCP/UDP/SCTP; `None` for ICMP and port-less protocols.
    pub ports: Option<(u16, u16)>,
    pub proto: u8,
    pub flow_id: u64,
    pub first_ts_ns: u64,
    pub last_ts_ns: u64,
    pub pkts_toserver: u64,
    pub pkts_toclient: u64,
    pub bytes_toserver: u64,
    pub bytes_toclient: u64,
    pub tcp_flags_ts: u8,
    pub tcp_flags_tc: u8,
    pub tcp_state: TcpState,
    pub icmp: Option<IcmpTypes>,
    /// The initiator's first packet's tuple, for the Community ID (computed off the workers).
    pub community: CommunityTuple,
    /// The tunnel as the initiator's packets travel in it (the key holds it direction-free).
    pub tunnel: TunnelContext,
    pub end: FlowEnd,
    /// Ended while the table was in emergency mode.
    pub emergency: bool,
    pub alerted: bool,
    /// Set by the worker's application layer when the flow ends.
    pub app_proto: AppProto,
    /// The protocol the flow began with when it changed (HTTP CONNECT to TLS).
    pub app_proto_orig: Option<AppProto>,
    client_side: KeySide,
    /// Timer wheel bookkeeping: the second whose bucket holds this flow's live entry, and the
    /// slot generation that entry must carry (older entries are stale).
    wheel_sec: u64,
    generation: u32,
}

impl FlowRecord {
    /// Source, destination and ports as traffic in `dir` travels (client to server, or back).
    pub fn oriented(
        &self,
        dir: vigil_parsers::app::Direction,
    ) -> (IpAddr, IpAddr, Option<(u16, u16)>) {
        match dir {
            vigil_parsers::app::Direction::ToServer => {
                (self.client_addr, self.server_addr, self.ports)
            }
            vigil_parsers::app::Direction::ToClient => (
                self.server_addr,
                self.client_addr,
                self.ports.map(|(c, s)| (s, c)),
            ),
        }
    }

    /// Whether a packet whose source is `side` of the key travels from client to server.
    pub fn is_from_client(&self, side: KeySide) -> bool {
        side == self.client_side
    }

    /// Suricata's `flow.state`: `new`, `established` or `closed`.
    pub fn state(&self) -> FlowState {
        if self.proto == PROTO_TCP {
            if self.tcp_state.is_closed() {
                FlowState::Closed
            } else if self.tcp_state.is_established() {
                FlowState::Established
            } else {
                FlowState::New
            }
        } else if self.pkts_toclient > 0 && self.pkts_toserver > 0 {
            FlowState::Established
        } else {
            FlowState::New
        }
    }
}

/// A flow's state as timeouts and EVE see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowState {
    /// No answer yet, or the TCP handshake is not complete.
    New,
    Established,
    /// TCP FIN/RST seen.
    Closed,
}

impl FlowState {
    pub fn as_str(self) -> &'static str {
        match self {
            FlowState::New => "new",
            FlowState::Established => "established",
            FlowState::Closed => "closed",
        }
    }
}

/// Timeouts of one protocol, in seconds of packet time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    pub new: u32,
    pub established: u32,
    pub closed: u32,
    pub emergency_new: u32,
    pub emergency_established: u32,
    pub emergency_closed: u32,
}

/// Per-protocol timeouts; Suricata's defaults, so flow records end where analysts expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct FlowTimeouts {
    pub tcp: Timeouts,
    pub udp: Timeouts,
    pub icmp: Timeouts,
    pub default: Timeouts,
}

impl Default for FlowTimeouts {
    fn default() -> Self {
        let t =
            |new, established, closed, emergency_new, emergency_established, emergency_closed| {
                Timeouts {
                    new,
                    established,
                    closed,
                    emergency_new,
                    emergency_established,
                    emergency_closed,
                }
            };
        FlowTimeouts {
            tcp: t(60, 600, 60, 10, 100, 20),
            udp: t(30, 300, 0, 10, 100, 0),
            icmp: t(30, 300, 0, 10, 100, 0),
            default: t(30, 300, 0, 10, 100, 0),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct FlowTableConfig {
    pub memcap_bytes: usize,
    pub timeouts: FlowTimeouts,
    /// Leave emergency mode when the table is below this share of its capacity.
    pub emergency_recovery: f64,
}

/// Counters of one table; summed over workers for stats and the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowStats {
    pub total: u64,
    pub tcp: u64,
    pub udp: u64,
    pub icmpv4: u64,
    pub icmpv6: u64,
    pub other: u64,
    pub ended_timeout: u64,
    pub ended_forced: u64,
    pub ended_shutdown: u64,
    pub evicted: u64,
    pub tcp_reuse: u64,
    pub emerg_mode_entered: u64,
    pub emerg_mode_over: u64,
    pub end_state_new: u64,
    pub end_state_established: u64,
    pub end_state_closed: u64,
    pub active: u64,
    pub memuse_bytes: u64,
    pub max_flows: u64,
}

impl FlowStats {
    pub fn add(&mut self, o: &FlowStats) {
        self.total += o.total;
        self.tcp += o.tcp;
        self.udp += o.udp;
        self.icmpv4 += o.icmpv4;
        self.icmpv6 += o.icmpv6;
        self.other += o.other;
        self.ended_timeout += o.ended_timeout;
        self.ended_forced += o.ended_forced;
        self.ended_shutdown += o.ended_shutdown;
        self.evicted += o.evicted;
        self.tcp_reuse += o.tcp_reuse;
        self.emerg_mode_entered += o.emerg_mode_entered;
        self.emerg_mode_over += o.emerg_mode_over;
        self.end_state_new += o.end_state_new;
        self.end_state_established += o.end_state_established;
        self.end_state_closed += o.end_state_closed;
        self.active += o.active;
        self.memuse_bytes += o.memuse_bytes;
        self.max_flows += o.max_flows;
    }
}

/// `A` is per-flow state the table keeps beside each record for its owner (the worker's
/// application-layer state); it moves out with the record when the flow ends.
pub struct FlowTable<A = ()> {
    index: hashbrown::HashMap<FlowKey, u32>,
    slots: Vec<FlowRecord>,
    apps: Vec<A>,
    /// The state of ended flows, in the order their records were pushed to `ended`.
    ended_apps: Vec<A>,
    free: Vec<u32>,
    live: usize,
    max_flows: usize,
    emergency: bool,
    config: FlowTableConfig,
    stats: FlowStats,
    /// Idle-timeout timer wheel, one bucket per second of packet time. A flow has one live
    /// entry, at or before its expiry; when it is due but was seen since, it moves on. So a tick
    /// touches only the flows due in that second, not the whole table.
    wheel: Vec<Vec<(u32, u32)>>,
    /// The last second whose bucket was processed.
    wheel_sec: Option<u64>,
    next_generation: u32,
    due: Vec<u32>,
}

const WHEEL_SECONDS: u64 = 1024;

/// Memory one flow costs: its record, its index entry and the index's control byte.
/// The wheel entry (8 bytes) is counted too.
pub const BYTES_PER_FLOW: usize =
    std::mem::size_of::<FlowRecord>() + std::mem::size_of::<(FlowKey, u32)>() + 1 + 4 + 8;

impl<A: Default> FlowTable<A> {
    pub fn new(config: FlowTableConfig) -> FlowTable<A> {
        let max_flows = (config.memcap_bytes / BYTES_PER_FLOW).max(16);
        FlowTable {
            index: hashbrown::HashMap::with_capacity(max_flows),
            slots: Vec::with_capacity(max_flows),
            apps: Vec::new(),
            ended_apps: Vec::new(),
            free: Vec::with_capacity(max_flows),
            live: 0,
            max_flows,
            emergency: false,
            config,
            stats: FlowStats {
                max_flows: max_flows as u64,
                ..FlowStats::default()
            },
            wheel: (0..WHEEL_SECONDS).map(|_| Vec::new()).collect(),
            wheel_sec: None,
            next_generation: 0,
            due: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    pub fn stats(&self) -> FlowStats {
        let mut s = self.stats;
        s.active = self.live as u64;
        s.memuse_bytes = (self.live * BYTES_PER_FLOW) as u64;
        s
    }

    /// Accounts one packet (`wire_bytes` as captured on the wire, all fragments of a reassembled
    /// datagram included) to its flow, creating it if needed. Flows ended on the way (timed out
    /// on lookup, evicted, reused) are appended to `ended`.
    pub fn update(
        &mut self,
        ts_ns: u64,
        key: &FlowKey,
        side: KeySide,
        pkt: &DecodedPacket,
        wire_bytes: u64,
        ended: &mut Vec<FlowRecord>,
    ) -> &mut FlowRecord {
        let idx = self.update_flow(ts_ns, key, side, pkt, wire_bytes, ended);
        &mut self.slots[idx as usize]
    }

    /// As `update`, returning the flow's slot for `entry`.
    pub fn update_flow(
        &mut self,
        ts_ns: u64,
        key: &FlowKey,
        side: KeySide,
        pkt: &DecodedPacket,
        wire_bytes: u64,
        ended: &mut Vec<FlowRecord>,
    ) -> u32 {
        let tcp_flags = match pkt.l4 {
            L4::Tcp(t) => Some(t.flags),
            _ => None,
        };
        let mut slot = self.index.get(key).copied();
        if let Some(idx) = slot {
            let rec = &self.slots[idx as usize];
            let expired = ts_ns > rec.last_ts_ns.saturating_add(self.timeout_ns(rec));
            // A fresh SYN on a finished connection is a new connection reusing the ports.
            let reused = tcp_flags
                .is_some_and(|f| f & (TCP_SYN | TCP_ACK) == TCP_SYN && rec.tcp_state.is_closed());
            if expired || reused {
                let reason = if expired {
                    FlowEnd::Timeout
                } else {
                    FlowEnd::Forced
                };
                if reused && !expired {
                    self.stats.tcp_reuse += 1;
                }
                self.remove(idx, reason, ended);
                slot = None;
            }
        }
        let idx = match slot {
            Some(idx) => idx,
            None => self.insert(ts_ns, key, side, pkt, ended),
        };
        let rec = &mut self.slots[idx as usize];
        let from_client = side == rec.client_side;
        rec.last_ts_ns = rec.last_ts_ns.max(ts_ns);
        if from_client {
            rec.pkts_toserver += 1;
            rec.bytes_toserver += wire_bytes;
        } else {
            rec.pkts_toclient += 1;
            rec.bytes_toclient += wire_bytes;
        }
        match pkt.l4 {
            L4::Tcp(t) => {
                if from_client {
                    rec.tcp_flags_ts |= t.flags;
                } else {
                    rec.tcp_flags_tc |= t.flags;
                }
                let both = rec.pkts_toserver > 0 && rec.pkts_toclient > 0;
                rec.tcp_state = rec.tcp_state.on_segment(t.flags, from_client, both);
            }
            L4::Icmpv4 {
                icmp_type, code, ..
            }
            | L4::Icmpv6 {
                icmp_type, code, ..
            } => {
                if let Some(icmp) = rec.icmp.as_mut() {
                    if !from_client && icmp.response.is_none() {
                        icmp.response = Some((icmp_type, code));
                    }
                }
            }
            _ => {}
        }
        // A state change can shorten the timeout (closed < established): move the entry up. The
        // entry is never before the next unprocessed second (see `schedule`), so neither is the due
        // second compared with it: else every packet of a flow whose packet time lies behind the
        // wheel (input files out of time order) adds one more live entry and the flow ends as often.
        let due_sec = self
            .due_sec(&self.slots[idx as usize])
            .max(self.wheel_sec.unwrap_or(0) + 1);
        if due_sec < self.slots[idx as usize].wheel_sec {
            self.schedule(idx);
        }
        idx
    }

    /// A live flow's record and state, by the slot `update_flow` returned.
    pub fn entry(&mut self, idx: u32) -> (&mut FlowRecord, &mut A) {
        (&mut self.slots[idx as usize], &mut self.apps[idx as usize])
    }

    /// The state of flows ended since the last call, in the order of their records in `ended`.
    pub fn take_ended_apps(&mut self) -> std::vec::Drain<'_, A> {
        self.ended_apps.drain(..)
    }

    /// The wheel second at which a flow's current expiry has passed.
    fn due_sec(&self, rec: &FlowRecord) -> u64 {
        rec.last_ts_ns.saturating_add(self.timeout_ns(rec)) / NS_PER_SEC + 1
    }

    /// Gives a flow a (new) live wheel entry at its due second, clamped into the wheel's window.
    fn schedule(&mut self, idx: u32) {
        let processed = self.wheel_sec.unwrap_or(0);
        let rec = &self.slots[idx as usize];
        let sec = self
            .due_sec(rec)
            .clamp(processed + 1, processed + WHEEL_SECONDS - 1);
        let generation = rec.generation;
        self.slots[idx as usize].wheel_sec = sec;
        self.wheel[(sec % WHEEL_SECONDS) as usize].push((idx, generation));
    }

    fn insert(
        &mut self,
        ts_ns: u64,
        key: &FlowKey,
        side: KeySide,
        pkt: &DecodedPacket,
        ended: &mut Vec<FlowRecord>,
    ) -> u32 {
        if self.live >= self.max_flows {
            self.make_room(ts_ns, ended);
        }
        // A SYN/ACK seen first means we missed the SYN: its sender is the server.
        let client_side = match pkt.l4 {
            L4::Tcp(t) if t.flags & (TCP_SYN | TCP_ACK) == (TCP_SYN | TCP_ACK) => other(side),
            _ => side,
        };
        let sent_by_client = client_side == side;
        let (client_addr, server_addr) = if sent_by_client {
            (pkt.l3.src, pkt.l3.dst)
        } else {
            (pkt.l3.dst, pkt.l3.src)
        };
        let ports = pkt
            .ports()
            .map(|(s, d)| if sent_by_client { (s, d) } else { (d, s) });
        let icmp = match pkt.l4 {
            L4::Icmpv4 {
                icmp_type, code, ..
            }
            | L4::Icmpv6 {
                icmp_type, code, ..
            } => Some(IcmpTypes {
                icmp_type,
                code,
                response: None,
            }),
            _ => None,
        };
        let mut community = CommunityTuple::from_packet(pkt);
        if !sent_by_client {
            community = CommunityTuple {
                src: community.dst,
                dst: community.src,
                proto: community.proto,
                ports: community.ports.map(|(s, d)| (d, s)),
            };
        }
        let mut tunnel = pkt.tunnel;
        if !sent_by_client {
            std::mem::swap(&mut tunnel.outer_src, &mut tunnel.outer_dst);
            std::mem::swap(&mut tunnel.outer_src_port, &mut tunnel.outer_dst_port);
        }
        let proto = key.proto;
        let rec = FlowRecord {
            key: *key,
            client_addr,
            server_addr,
            ports,
            proto,
            flow_id: flow_id(key, ts_ns),
            first_ts_ns: ts_ns,
            last_ts_ns: ts_ns,
            pkts_toserver: 0,
            pkts_toclient: 0,
            bytes_toserver: 0,
            bytes_toclient: 0,
            tcp_flags_ts: 0,
            tcp_flags_tc: 0,
            tcp_state: TcpState::None,
            icmp,
            community,
            tunnel,
            end: FlowEnd::Live,
            emergency: false,
            alerted: false,
            app_proto: AppProto::Unknown,
            app_proto_orig: None,
            client_side,
            wheel_sec: 0,
            generation: self.next_generation,
        };
        self.next_generation = self.next_generation.wrapping_add(1);
        let idx = match self.free.pop() {
            Some(idx) => {
                self.slots[idx as usize] = rec;
                self.apps[idx as usize] = A::default();
                idx
            }
            None => {
                self.slots.push(rec);
                self.apps.push(A::default());
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(*key, idx);
        self.wheel_sec.get_or_insert(ts_ns / NS_PER_SEC);
        self.schedule(idx);
        self.live += 1;
        self.stats.total += 1;
        match proto {
            PROTO_TCP => self.stats.tcp += 1,
            PROTO_UDP => self.stats.udp += 1,
            PROTO_ICMP => self.stats.icmpv4 += 1,
            PROTO_ICMPV6 => self.stats.icmpv6 += 1,
            _ => self.stats.other += 1,
        }
        idx
    }

    /// The table is full: enter emergency mode (shortened timeouts), expire what that allows,
    /// and if still full evict the least recently seen flow.
    fn make_room(&mut self, now_ns: u64, ended: &mut Vec<FlowRecord>) {
        if !self.emergency {
            self.emergency = true;
            self.stats.emerg_mode_entered += 1;
            self.expire_scan(now_ns, ended);
        }
        if self.live >= self.max_flows {
            // Evict the least recently seen 1 % at once, so a flood of new flows costs one scan
            // per hundredth of the table rather than one per packet.
            let batch = (self.max_flows / 100).max(1);
            let mut by_age: Vec<(u64, u32)> = self
                .index
                .values()
                .map(|&idx| (self.slots[idx as usize].last_ts_ns, idx))
                .collect();
            if by_age.len() > batch {
                by_age.select_nth_unstable(batch - 1);
                by_age.truncate(batch);
            }
            by_age.sort_unstable();
            for (_, idx) in by_age {
                self.stats.evicted += 1;
                self.remove(idx, FlowEnd::Forced, ended);
            }
        }
    }

    /// Ends every flow idle past its timeout at packet time `now_ns`. Called by the worker once
    /// per second of packet time; the dispatcher sends the same ticks to every worker, so which
    /// flows end by timeout does not depend on how many workers there are.
    pub fn expire(&mut self, now_ns: u64, ended: &mut Vec<FlowRecord>) {
        if self.emergency {
            // Emergency timeouts are shorter than what the wheel was scheduled with.
            self.expire_scan(now_ns, ended);
        } else {
            self.expire_wheel(now_ns, ended);
        }
        if self.emergency
            && (self.live as f64) < self.max_flows as f64 * self.config.emergency_recovery
        {
            self.emergency = false;
            self.stats.emerg_mode_over += 1;
        }
    }

    fn expire_wheel(&mut self, now_ns: u64, ended: &mut Vec<FlowRecord>) {
        let now_sec = now_ns / NS_PER_SEC;
        let Some(processed) = self.wheel_sec else {
            return;
        };
        if now_sec <= processed {
            return;
        }
        let mut due = std::mem::take(&mut self.due);
        due.clear();
        let steps = (now_sec - processed).min(WHEEL_SECONDS);
        for step in 1..=steps {
            let bucket = ((processed + step) % WHEEL_SECONDS) as usize;
            let mut entries = std::mem::take(&mut self.wheel[bucket]);
            for &(idx, generation) in &entries {
                let rec = &self.slots[idx as usize];
                let live = rec.end == FlowEnd::Live && rec.generation == generation;
                if !live || rec.wheel_sec % WHEEL_SECONDS != bucket as u64 {
                    continue; // stale: the flow ended, or its entry moved
                }
                if rec.wheel_sec > now_sec {
                    self.wheel[bucket].push((idx, generation));
                } else if now_ns > rec.last_ts_ns.saturating_add(self.timeout_ns(rec)) {
                    due.push(idx);
                } else {
                    self.wheel_sec = Some(now_sec);
                    self.schedule(idx);
                    self.wheel_sec = Some(processed);
                }
            }
            entries.clear();
            if self.wheel[bucket].is_empty() {
                self.wheel[bucket] = entries;
            }
        }
        self.wheel_sec = Some(now_sec);
        self.end_due(&mut due, ended);
        self.due = due;
    }

    /// Checks every flow against its timeout (emergency mode, where all timeouts shrank).
    fn expire_scan(&mut self, now_ns: u64, ended: &mut Vec<FlowRecord>) {
        let mut due = std::mem::take(&mut self.due);
        due.clear();
        for &idx in self.index.values() {
            let rec = &self.slots[idx as usize];
            if now_ns > rec.last_ts_ns.saturating_add(self.timeout_ns(rec)) {
                due.push(idx);
            }
        }
        self.end_due(&mut due, ended);
        self.due = due;
    }

    /// Ends the given flows in a stable order (last seen, then flow id), the same whichever
    /// worker held them.
    fn end_due(&mut self, due: &mut [u32], ended: &mut Vec<FlowRecord>) {
        due.sort_unstable_by_key(|&idx| {
            let rec = &self.slots[idx as usize];
            (rec.last_ts_ns, rec.flow_id)
        });
        for &idx in due.iter() {
            self.remove(idx, FlowEnd::Timeout, ended);
        }
    }

    /// Ends all flows (end of input or shutdown).
    pub fn flush_all(&mut self, ended: &mut Vec<FlowRecord>) {
        let mut all: Vec<u32> = self.index.values().copied().collect();
        all.sort_unstable_by_key(|&idx| (self.slots[idx as usize].first_ts_ns, idx));
        for idx in all {
            self.remove(idx, FlowEnd::Shutdown, ended);
        }
    }

    fn remove(&mut self, idx: u32, reason: FlowEnd, ended: &mut Vec<FlowRecord>) {
        // A flow ends once: a second wheel entry for it, or any other path, finds it gone.
        if self.slots[idx as usize].end != FlowEnd::Live {
            return;
        }
        self.slots[idx as usize].end = reason;
        let mut rec = self.slots[idx as usize];
        self.index.remove(&rec.key);
        self.free.push(idx);
        self.live -= 1;
        rec.end = reason;
        rec.emergency = self.emergency;
        self.ended_apps
            .push(std::mem::take(&mut self.apps[idx as usize]));
        match reason {
            FlowEnd::Timeout => self.stats.ended_timeout += 1,
            FlowEnd::Forced => self.stats.ended_forced += 1,
            FlowEnd::Shutdown | FlowEnd::Live => self.stats.ended_shutdown += 1,
        }
        match rec.state() {
            FlowState::Closed => self.stats.end_state_closed += 1,
            FlowState::Established => self.stats.end_state_established += 1,
            FlowState::New => self.stats.end_state_new += 1,
        }
        ended.push(rec);
    }

    fn timeout_ns(&self, rec: &FlowRecord) -> u64 {
        let t = match rec.proto {
            PROTO_TCP => &self.config.timeouts.tcp,
            PROTO_UDP => &self.config.timeouts.udp,
            PROTO_ICMP | PROTO_ICMPV6 => &self.config.timeouts.icmp,
            _ => &self.config.timeouts.default,
        };
        let secs = match (rec.state(), self.emergency) {
            (FlowState::Closed, false) => t.closed,
            (FlowState::Closed, true) => t.emergency_closed,
            (FlowState::Established, false) => t.established,
            (FlowState::Established, true) => t.emergency_established,
            (FlowState::New, false) => t.new,
            (FlowState::New, true) => t.emergency_new,
        };
        u64::from(secs) * NS_PER_SEC
    }
}

fn other(side: KeySide) -> KeySide {
    match side {
        KeySide::Lo => KeySide::Hi,
        KeySide::Hi => KeySide::Lo,
    }
}

/// A flow id that is the same whichever worker (or how many) tracked the flow: derived from the
/// key and the first packet's time. 51 bits, so JSON consumers that read numbers as doubles keep
/// it exact.
fn flow_id(key: &FlowKey, first_ts_ns: u64) -> u64 {
    let h = key.symmetric_hash() ^ first_ts_ns.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let h = (h ^ (h >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    (h ^ (h >> 32)) & ((1 << 51) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_parsers::{PacketKind, TcpInfo, L3, TCP_FIN, TCP_RST};

    const SEC: u64 = NS_PER_SEC;

    fn udp(src: &str, sport: u16, dst: &str, dport: u16) -> DecodedPacket {
        DecodedPacket {
            kind: PacketKind::Ip,
            l3: L3 {
                version: 4,
                src: src.parse().unwrap(),
                dst: dst.parse().unwrap(),
                proto: 17,
                ..L3::default()
            },
            l4: L4::Udp {
                src_port: sport,
                dst_port: dport,
            },
            ..DecodedPacket::default()
        }
    }

    fn tcp(src: &str, sport: u16, dst: &str, dport: u16, flags: u8) -> DecodedPacket {
        let mut p = udp(src, sport, dst, dport);
        p.l3.proto = 6;
        p.l4 = L4::Tcp(TcpInfo {
            src_port: sport,
            dst_port: dport,
            flags,
            ..TcpInfo::default()
        });
        p
    }

    fn table(memcap_bytes: usize) -> FlowTable {
        FlowTable::new(FlowTableConfig {
            memcap_bytes,
            timeouts: FlowTimeouts::default(),
            emergency_recovery: 0.7,
        })
    }

    fn feed(t: &mut FlowTable, ts: u64, p: &DecodedPacket, ended: &mut Vec<FlowRecord>) {
        let (key, side) = FlowKey::from_packet(p).unwrap();
        t.update(ts, &key, side, p, 100, ended);
    }

    /// Runs the per-second ticks the dispatcher would send, from `from` to `to` seconds.
    fn tick(t: &mut FlowTable, from: u64, to: u64, ended: &mut Vec<FlowRecord>) {
        for s in from..=to {
            t.expire(s * SEC, ended);
        }
    }

    #[test]
    fn both_directions_are_one_flow_and_timeouts_follow_state() {
        let mut t = table(1 << 20);
        let mut ended = Vec::new();
        feed(
            &mut t,
            1000 * SEC,
            &udp("10.0.0.1", 5000, "10.0.0.2", 53),
            &mut ended,
        );
        feed(
            &mut t,
            1000 * SEC + 1,
            &udp("10.0.0.2", 53, "10.0.0.1", 5000),
            &mut ended,
        );
        feed(
            &mut t,
            1000 * SEC,
            &udp("10.0.0.3", 5000, "10.0.0.2", 53),
            &mut ended,
        );
        assert_eq!(t.len(), 2);
        // The one-way flow (new: 30 s) ends first; the answered one (established: 300 s) stays.
        tick(&mut t, 1001, 1030, &mut ended);
        assert!(ended.is_empty(), "nothing before the timeout has passed");
        tick(&mut t, 1031, 1031, &mut ended);
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].client_addr.to_string(), "10.0.0.3");
        assert_eq!(ended[0].end, FlowEnd::Timeout);
        tick(&mut t, 1032, 1300, &mut ended);
        assert_eq!(ended.len(), 1);
        tick(&mut t, 1301, 1301, &mut ended);
        assert_eq!(ended.len(), 2);
        let f = ended[1];
        assert_eq!(
            (f.pkts_toserver, f.pkts_toclient, f.bytes_toserver),
            (1, 1, 100)
        );
        assert_eq!(f.state(), FlowState::Established);
        assert!(t.is_empty());
    }

    #[test]
    fn a_packet_keeps_a_flow_alive_and_closing_shortens_its_timeout() {
        let mut t = table(1 << 20);
        let mut ended = Vec::new();
        let c = ("192.0.2.1", 40000);
        let s = ("198.51.100.7", 443);
        feed(
            &mut t,
            10 * SEC,
            &tcp(c.0, c.1, s.0, s.1, TCP_SYN),
            &mut ended,
        );
        feed(
            &mut t,
            10 * SEC,
            &tcp(s.0, s.1, c.0, c.1, TCP_SYN | TCP_ACK),
            &mut ended,
        );
        feed(
            &mut t,
            10 * SEC,
            &tcp(c.0, c.1, s.0, s.1, TCP_ACK),
            &mut ended,
        );
        tick(&mut t, 11, 500, &mut ended);
        feed(
            &mut t,
            500 * SEC,
            &tcp(c.0, c.1, s.0, s.1, TCP_ACK),
            &mut ended,
        );
        tick(&mut t, 501, 900, &mut ended);
        assert!(
            ended.is_empty(),
            "established flows live 600 s past their last packet"
        );
        // RST: closed, 60 s.
        feed(
            &mut t,
            900 * SEC,
            &tcp(s.0, s.1, c.0, c.1, TCP_RST),
            &mut ended,
        );
        tick(&mut t, 901, 960, &mut ended);
        assert!(ended.is_empty());
        tick(&mut t, 961, 961, &mut ended);
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].state(), FlowState::Closed);
        assert_eq!(ended[0].tcp_state, TcpState::Closed);
    }

    #[test]
    fn syn_after_close_starts_a_new_flow() {
        let mut t = table(1 << 20);
        let mut ended = Vec::new();
        for (ts, flags, from_client) in [
            (1, TCP_SYN, true),
            (1, TCP_SYN | TCP_ACK, false),
            (1, TCP_ACK, true),
            (2, TCP_FIN | TCP_ACK, true),
            (2, TCP_FIN | TCP_ACK, false),
            (2, TCP_ACK, true),
            (3, TCP_SYN, true),
        ] {
            let p = if from_client {
                tcp("10.1.1.1", 1234, "10.2.2.2", 80, flags)
            } else {
                tcp("10.2.2.2", 80, "10.1.1.1", 1234, flags)
            };
            feed(&mut t, ts * SEC, &p, &mut ended);
        }
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].end, FlowEnd::Forced);
        assert_eq!(ended[0].pkts_toserver + ended[0].pkts_toclient, 6);
        assert_eq!(t.len(), 1);
        assert_eq!(t.stats().tcp_reuse, 1);
    }

    #[test]
    fn memcap_enters_emergency_and_evicts_the_oldest() {
        let mut t = table(BYTES_PER_FLOW * 200);
        let max = t.stats().max_flows as usize;
        let mut ended = Vec::new();
        for i in 0..(max + 10) {
            let src = format!("10.9.{}.{}", i / 250, i % 250);
            feed(
                &mut t,
                (100 + i as u64) * 1_000_000,
                &udp(&src, 1, "10.0.0.1", 2),
                &mut ended,
            );
        }
        assert!(t.len() <= max);
        let s = t.stats();
        assert_eq!(s.emerg_mode_entered, 1);
        assert!(s.evicted >= 10);
        assert!(ended
            .iter()
            .all(|f| f.end == FlowEnd::Forced && f.emergency));
        // The evicted are the oldest.
        let newest_evicted = ended.iter().map(|f| f.last_ts_ns).max().unwrap();
        assert!(newest_evicted < (100 + 20) * 1_000_000);
        // Emergency timeouts (10 s for new UDP) apply until the table drains below 70 %.
        tick(&mut t, 1, 12, &mut ended);
        assert!(t.is_empty());
        assert_eq!(t.stats().emerg_mode_over, 1);
    }

    /// Packets older than the wheel's clock (inputs out of time order) neither pile up wheel
    /// entries nor end a flow twice.
    #[test]
    fn packets_behind_the_clock_end_their_flow_once() {
        let mut t = table(1 << 20);
        let mut ended = Vec::new();
        let c = ("192.0.2.1", 40000);
        let s = ("198.51.100.7", 80);
        tick(&mut t, 0, 0, &mut ended);
        feed(
            &mut t,
            1000 * SEC,
            &udp("10.0.0.9", 1, "10.0.0.8", 2),
            &mut ended,
        );
        tick(&mut t, 1001, 1005, &mut ended);
        for i in 0..20u64 {
            let from_client = i % 2 == 0;
            let flags = if i == 19 { TCP_FIN | TCP_ACK } else { TCP_ACK };
            let p = if from_client {
                tcp(c.0, c.1, s.0, s.1, flags)
            } else {
                tcp(s.0, s.1, c.0, c.1, flags)
            };
            feed(&mut t, (10 + i) * SEC, &p, &mut ended);
        }
        tick(&mut t, 1006, 2000, &mut ended);
        let tcp_records = ended.iter().filter(|f| f.proto == 6).count();
        assert_eq!(tcp_records, 1, "{ended:?}");
        assert!(t.is_empty());
    }

    #[test]
    fn a_jump_in_packet_time_expires_everything_due() {
        let mut t = table(1 << 20);
        let mut ended = Vec::new();
        for i in 0..50u16 {
            feed(
                &mut t,
                5 * SEC,
                &udp("10.0.0.1", 1000 + i, "10.0.0.2", 53),
                &mut ended,
            );
        }
        // One tick far past the wheel's span.
        t.expire(100_000 * SEC, &mut ended);
        assert_eq!(ended.len(), 50);
        assert!(t.is_empty());
    }
}
