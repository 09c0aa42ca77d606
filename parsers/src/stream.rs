//! TCP stream reassembly, one reassembler per flow with a half-stream per direction.
//!
//! In-order segments (nearly all traffic) are handed to the consumer straight from the packet,
//! without a copy. Only out-of-order data is buffered, as owned segments sorted by stream
//! offset; overlaps between buffered and new data are resolved by a target-OS policy, and
//! overlapping bytes that differ raise `stream.reassembly_overlap_different_data`. Data the
//! receiver acknowledged but the sensor never saw becomes a gap. Every buffered byte is charged
//! to a per-worker memcap; a direction stops at its depth.
//!
//! Stream offsets are 64-bit (offset 0 = the byte after the SYN), so sequence wrap-around never
//! confuses ordering within a stream.

use serde::Deserialize;

use crate::app::Direction;
use crate::packet::{TcpInfo, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};

/// Which copy of overlapping data wins, as the protected hosts' stacks would decide. Names and
/// rules follow the target-based reassembly of Suricata and Snort:
/// - `first` / `windows`: the data seen first is kept;
/// - `last`: the data seen last replaces it;
/// - `bsd`: new data wins where it starts before the old segment;
/// - `linux`: as `bsd`, and also where both start together and the new one is longer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OverlapPolicy {
    First,
    Last,
    #[default]
    Bsd,
    Linux,
    Windows,
}

impl OverlapPolicy {
    /// Whether a new segment `[new_start, new_end)` replaces an old one's bytes where they
    /// overlap.
    fn new_wins(self, old_start: u64, old_end: u64, new_start: u64, new_end: u64) -> bool {
        match self {
            OverlapPolicy::First | OverlapPolicy::Windows => false,
            OverlapPolicy::Last => true,
            OverlapPolicy::Bsd => new_start < old_start,
            OverlapPolicy::Linux => {
                new_start < old_start || (new_start == old_start && new_end > old_end)
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamConfig {
    /// Bytes reassembled per direction; 0 means unlimited.
    pub depth: u64,
    pub policy: OverlapPolicy,
    /// Reassemble streams whose handshake was not seen (sensor started mid-connection).
    pub midstream: bool,
    /// Out-of-order bytes one direction may buffer before its oldest hole is declared a gap.
    pub max_buffered_per_direction: usize,
    /// Bytes handed on but not yet acknowledged kept per direction, to compare retransmissions
    /// of them (an evasion rewrites data the sensor already inspected); 0 turns this off.
    pub max_retained_per_direction: usize,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            depth: 1 << 20,
            policy: OverlapPolicy::Bsd,
            midstream: false,
            max_buffered_per_direction: 1 << 20,
            max_retained_per_direction: 64 << 10,
        }
    }
}

/// A worker's reassembly memory budget and counters, shared by all its flows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamMemory {
    pub cap: usize,
    pub used: usize,
    pub stats: StreamStats,
}

impl StreamMemory {
    pub fn new(cap: usize) -> StreamMemory {
        StreamMemory {
            cap,
            ..StreamMemory::default()
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Bytes handed to consumers in order.
    pub reassembled_bytes: u64,
    pub out_of_order_segments: u64,
    /// Segments wholly or partly covering data already handed on (retransmissions).
    pub retransmissions: u64,
    pub overlaps: u64,
    pub overlaps_different: u64,
    pub gaps: u64,
    pub gap_bytes: u64,
    pub depth_reached: u64,
    /// Segments not buffered because the memcap was reached.
    pub memcap_drops: u64,
    pub midstream_pickups: u64,
    /// Segments far outside any plausible window, ignored.
    pub invalid_segments: u64,
    pub peak_used: u64,
}

impl StreamStats {
    pub fn add(&mut self, o: &StreamStats) {
        self.reassembled_bytes += o.reassembled_bytes;
        self.out_of_order_segments += o.out_of_order_segments;
        self.retransmissions += o.retransmissions;
        self.overlaps += o.overlaps;
        self.overlaps_different += o.overlaps_different;
        self.gaps += o.gaps;
        self.gap_bytes += o.gap_bytes;
        self.depth_reached += o.depth_reached;
        self.memcap_drops += o.memcap_drops;
        self.midstream_pickups += o.midstream_pickups;
        self.invalid_segments += o.invalid_segments;
        self.peak_used += o.peak_used;
    }
}

/// Reassembly found a hole in the stream: bytes that never arrived.
pub const REASSEMBLY_SEQ_GAP: &str = "stream.reassembly_seq_gap";
/// A retransmission carried other bytes than were handed on for the same stream offsets.
pub const REASSEMBLY_OVERLAP_DIFFERENT_DATA: &str = "stream.reassembly_overlap_different_data";
/// The stream events the reassembler raises, the ones a rule can name with
/// `stream-event:<name without "stream.">`.
pub const EVENTS: &[&str] = &[REASSEMBLY_SEQ_GAP, REASSEMBLY_OVERLAP_DIFFERENT_DATA];

/// What the reassembler hands on, in stream order per direction.
pub trait StreamSink {
    /// The next in-order bytes of `dir`.
    fn data(&mut self, dir: Direction, data: &[u8]);
    /// `len` bytes of `dir` were lost.
    fn gap(&mut self, dir: Direction, len: u64);
    /// `dir` ended (FIN reached in order, RST, or end of the flow).
    fn end(&mut self, dir: Direction);
    /// A stream event (Suricata's `stream.*` names).
    fn event(&mut self, dir: Direction, event: &'static str);
}

/// The largest jump ahead of the next expected byte still taken as part of the stream: the
/// largest window TCP can advertise (65535 << 14).
const MAX_WINDOW: u64 = 1 << 30;

#[derive(Debug)]
struct Segment {
    offset: u64,
    data: Vec<u8>,
}

impl Segment {
    fn end(&self) -> u64 {
        self.offset + self.data.len() as u64
    }
}

#[derive(Debug, Default)]
struct HalfStream {
    /// Sequence number of stream offset 0; `None` until the SYN or the first data is seen.
    base_seq: Option<u32>,
    /// Offset of the next byte to hand on.
    next: u64,
    /// Out-of-order data, sorted by offset, non-overlapping.
    segments: Vec<Segment>,
    buffered: usize,
    /// Offset the FIN occupies, once seen.
    fin: Option<u64>,
    ended: bool,
    depth_reached: bool,
    /// Whether this direction began with a SYN (the handshake was seen).
    syn_seen: bool,
    /// Handed-on bytes not yet acknowledged: `retained[retained_start..]` holds the stream from
    /// offset `retained_offset` up to `next`.
    retained: Vec<u8>,
    retained_start: usize,
    retained_offset: u64,
    /// Highest offset the peer acknowledged (at most `next`).
    acked: u64,
    /// Stream inspection still needs the retained bytes from this offset on, acknowledged or
    /// not; `None` while nothing inspects the raw stream (then acknowledged bytes go at once).
    raw_keep_from: Option<u64>,
}

impl HalfStream {
    /// The stream offset of `seq`, taken as the nearest one to `next` (serial arithmetic).
    fn offset_of(&self, base: u32, seq: u32) -> i64 {
        let rel = seq.wrapping_sub(base);
        let delta = rel.wrapping_sub(self.next as u32) as i32;
        self.next as i64 + i64::from(delta)
    }

    fn release(&mut self, mem: &mut StreamMemory) {
        mem.used -= self.buffered;
        self.buffered = 0;
        self.segments = Vec::new();
        self.drop_retained(mem);
    }

    fn retained_len(&self) -> usize {
        self.retained.len() - self.retained_start
    }

    fn drop_retained(&mut self, mem: &mut StreamMemory) {
        self.clear_retained(mem);
        self.retained = Vec::new();
    }

    /// Forgets the retained bytes but keeps the buffer: a busy flow that overflows its
    /// retention fills it again at once, and growing a fresh buffer back to that size took
    /// half a dozen reallocations, each copying what it held (~7 % of a worker's instructions
    /// with ET Open, whose transaction windows keep long responses retained).
    fn clear_retained(&mut self, mem: &mut StreamMemory) {
        mem.used -= self.retained_len();
        self.retained.clear();
        self.retained_start = 0;
        self.retained_offset = self.next;
    }

    /// Keeps bytes just handed on (they start at `next - data.len()`).
    fn retain(&mut self, config: &StreamConfig, mem: &mut StreamMemory, data: &[u8]) {
        if config.max_retained_per_direction == 0 {
            return;
        }
        let len = self.retained_len();
        if len + data.len() > config.max_retained_per_direction || mem.used + data.len() > mem.cap {
            // No acknowledgements seen (one-sided capture) or no memory: start over from here.
            self.clear_retained(mem);
            if data.len() > config.max_retained_per_direction || mem.used + data.len() > mem.cap {
                return;
            }
            self.retained_offset = self.next - data.len() as u64;
        } else if len == 0 {
            self.retained_offset = self.next - data.len() as u64;
            self.retained.clear();
            self.retained_start = 0;
        }
        self.retained.extend_from_slice(data);
        mem.used += data.len();
        mem.stats.peak_used = mem.stats.peak_used.max(mem.used as u64);
    }

    /// The peer acknowledged up to `acked`: those bytes will not be retransmitted.
    fn release_acked(&mut self, mem: &mut StreamMemory, acked: u64) {
        self.acked = self.acked.max(acked);
        self.release_below(mem, self.release_point());
    }

    /// Retained bytes before this offset are needed neither for retransmissions nor for
    /// stream inspection.
    fn release_point(&self) -> u64 {
        self.acked.min(self.raw_keep_from.unwrap_or(u64::MAX))
    }

    fn release_below(&mut self, mem: &mut StreamMemory, upto: u64) {
        let len = self.retained_len();
        if len == 0 || upto <= self.retained_offset {
            return;
        }
        let drop = (upto - self.retained_offset).min(len as u64) as usize;
        self.retained_start += drop;
        self.retained_offset += drop as u64;
        mem.used -= drop;
        if self.retained_start == self.retained.len() {
            self.retained.clear();
            self.retained_start = 0;
        } else if self.retained_start > 4096 && self.retained_start * 2 > self.retained.len() {
            self.retained.copy_within(self.retained_start.., 0);
            self.retained
                .truncate(self.retained.len() - self.retained_start);
            self.retained_start = 0;
        }
    }

    /// Whether retransmitted `data` at `offset` differs from what was handed on there.
    fn differs_from_retained(&self, offset: u64, data: &[u8]) -> bool {
        if self.retained_len() == 0 {
            return false;
        }
        // Bytes kept only for stream inspection were acknowledged: a copy of them is not
        // compared (as before they were kept).
        let start = offset.max(self.retained_offset).max(self.acked);
        let end = (offset + data.len() as u64).min(self.next);
        if start >= end {
            return false;
        }
        let kept = &self.retained[self.retained_start..];
        let old =
            &kept[(start - self.retained_offset) as usize..(end - self.retained_offset) as usize];
        let new = &data[(start - offset) as usize..(end - offset) as usize];
        old != new
    }
}

/// Reassembly state of one TCP flow.
#[derive(Debug, Default)]
pub struct TcpReassembler {
    halves: [HalfStream; 2],
}

fn idx(dir: Direction) -> usize {
    match dir {
        Direction::ToServer => 0,
        Direction::ToClient => 1,
    }
}

impl TcpReassembler {
    pub fn new() -> TcpReassembler {
        TcpReassembler::default()
    }

    /// Bytes buffered out of order in both directions.
    pub fn buffered(&self) -> usize {
        self.halves[0].buffered + self.halves[1].buffered
    }

    /// Bytes handed on in `dir` so far (including bytes skipped over gaps).
    pub fn offset(&self, dir: Direction) -> u64 {
        self.halves[idx(dir)].next
    }

    /// The latest in-order bytes of `dir` still held, ending at [`offset`](Self::offset), with
    /// the stream offset of the first: the raw stream that stream inspection sees. They are the
    /// bytes kept to check retransmissions, so this is no second copy; how far back they reach
    /// is bounded by `max_retained_per_direction` and the memcap, and starts over after a gap.
    pub fn raw(&self, dir: Direction) -> (u64, &[u8]) {
        let h = &self.halves[idx(dir)];
        (h.retained_offset, &h.retained[h.retained_start..])
    }

    /// Stream inspection needs `dir`'s bytes from offset `from` on: they stay after their
    /// acknowledgement (within the retention bounds), and earlier ones go.
    pub fn keep_raw_from(&mut self, mem: &mut StreamMemory, dir: Direction, from: u64) {
        let h = &mut self.halves[idx(dir)];
        h.raw_keep_from = Some(from);
        h.release_below(mem, h.release_point());
    }

    /// Takes one segment of `dir`. `payload` is the segment's data as captured.
    pub fn on_segment(
        &mut self,
        config: &StreamConfig,
        mem: &mut StreamMemory,
        dir: Direction,
        tcp: &TcpInfo,
        payload: &[u8],
        sink: &mut impl StreamSink,
    ) {
        let syn = tcp.flags & TCP_SYN != 0;
        if tcp.flags & TCP_ACK != 0 {
            self.on_ack(config, mem, dir.opposite(), tcp.ack, sink);
        }
        let half = &mut self.halves[idx(dir)];
        if half.ended {
            return;
        }
        if syn {
            // A SYN (or SYN/ACK) fixes the base; a resend with a new ISN before any data moves it.
            if half.base_seq.is_none() || (half.next == 0 && half.segments.is_empty()) {
                half.base_seq = Some(tcp.seq.wrapping_add(1));
                half.syn_seen = true;
            }
        } else if half.base_seq.is_none() {
            if payload.is_empty() && tcp.flags & TCP_FIN == 0 {
                return;
            }
            let other_saw_syn = self.halves[idx(dir.opposite())].syn_seen;
            let half = &mut self.halves[idx(dir)];
            if !(config.midstream || other_saw_syn) {
                return;
            }
            if !other_saw_syn {
                mem.stats.midstream_pickups += 1;
            }
            half.base_seq = Some(tcp.seq);
        }
        let half = &mut self.halves[idx(dir)];
        let Some(base) = half.base_seq else {
            return;
        };
        // Data on a SYN (TCP Fast Open) sits at offset 0, after the SYN's own sequence number.
        let data_seq = if syn {
            tcp.seq.wrapping_add(1)
        } else {
            tcp.seq
        };
        let offset = half.offset_of(base, data_seq);
        if offset < 0 || offset as u64 > half.next + MAX_WINDOW {
            if !payload.is_empty() {
                mem.stats.invalid_segments += 1;
            }
            return;
        }
        let offset = offset as u64;
        if tcp.flags & TCP_FIN != 0 && half.fin.is_none() {
            half.fin = Some(offset + payload.len() as u64);
        }
        if !payload.is_empty() {
            self.insert(config, mem, dir, offset, payload, sink);
        }
        self.finish_if_fin_reached(dir, sink);
        if tcp.flags & TCP_RST != 0 {
            // A reset ends both directions: what is buffered is handed on across its holes.
            self.flush(mem, Direction::ToServer, sink);
            self.flush(mem, Direction::ToClient, sink);
        }
    }

    /// The peer acknowledged `dir` up to `ack`: bytes before it that never arrived are lost.
    fn on_ack(
        &mut self,
        config: &StreamConfig,
        mem: &mut StreamMemory,
        dir: Direction,
        ack: u32,
        sink: &mut impl StreamSink,
    ) {
        let half = &mut self.halves[idx(dir)];
        let Some(base) = half.base_seq else {
            return;
        };
        if half.ended || half.depth_reached {
            return;
        }
        let acked = half.offset_of(base, ack);
        if acked > 0 {
            half.release_acked(mem, (acked as u64).min(half.next));
        }
        // The FIN takes one sequence number of its own.
        let fin_slack = u64::from(half.fin == Some(half.next));
        if acked <= (half.next + fin_slack) as i64 || acked as u64 > half.next + MAX_WINDOW {
            return;
        }
        let acked = acked as u64;
        let hole_end = half.segments.first().map_or(acked, |s| s.offset.min(acked));
        if hole_end > half.next {
            self.skip_gap(config, mem, dir, hole_end, sink);
            self.drain(config, mem, dir, sink);
            self.finish_if_fin_reached(dir, sink);
        }
    }

    /// Declares `[next, to)` of `dir` lost.
    fn skip_gap(
        &mut self,
        config: &StreamConfig,
        mem: &mut StreamMemory,
        dir: Direction,
        to: u64,
        sink: &mut impl StreamSink,
    ) {
        let half = &mut self.halves[idx(dir)];
        let len = to - half.next;
        half.next = to;
        // Retained bytes must run up to `next`; across a hole they no longer do.
        half.drop_retained(mem);
        mem.stats.gaps += 1;
        mem.stats.gap_bytes += len;
        sink.event(dir, REASSEMBLY_SEQ_GAP);
        sink.gap(dir, len);
        self.check_depth(config, mem, dir);
    }

    fn insert(
        &mut self,
        config: &StreamConfig,
        mem: &mut StreamMemory,
        dir: Direction,
        offset: u64,
        payload: &[u8],
        sink: &mut impl StreamSink,
    ) {
        let half = &mut self.halves[idx(dir)];
        if half.depth_reached {
            return;
        }
        let mut start = offset;
        let end = offset + payload.len() as u64;
        if start < half.next {
            // Bytes already handed on cannot change (they were inspected); a copy that differs
            // from them is reported, and only the new tail counts.
            mem.stats.retransmissions += 1;
            if half.differs_from_retained(offset, payload) {
                mem.stats.overlaps_different += 1;
                sink.event(dir, REASSEMBLY_OVERLAP_DIFFERENT_DATA);
            }
            if end <= half.next {
                return;
            }
            start = half.next;
        }
        let mut data = &payload[(start - offset) as usize..];
        if config.depth != 0 {
            // Nothing past the depth is ever handed on, so nothing past it is buffered either.
            let room = config.depth.saturating_sub(start);
            if room == 0 {
                return;
            }
            data = &data[..data.len().min(room as usize)];
        }
        if start == half.next && half.segments.is_empty() {
            // The common case: in order, nothing buffered. Hand it on from the packet.
            self.deliver(config, mem, dir, data, sink);
            return;
        }
        mem.stats.out_of_order_segments += u64::from(start > half.next);
        self.buffer(config, mem, dir, start, data, sink);
        self.drain(config, mem, dir, sink);
    }

    /// Hands `data` (starting at `next`) on, cut at the depth.
    fn deliver(
        &mut self,
        config: &StreamConfig,
        mem: &mut StreamMemory,
        dir: Direction,
        data: &[u8],
        sink: &mut impl StreamSink,
    ) {
        let half = &mut self.halves[idx(dir)];
        let room = if config.depth == 0 {
            data.len()
        } else {
            config
                .depth
                .saturating_sub(half.next)
                .min(data.len() as u64) as usize
        };
        if room > 0 {
            half.next += room as u64;
            mem.stats.reassembled_bytes += room as u64;
            half.retain(config, mem, &data[..room]);
            sink.data(dir, &data[..room]);
        }
        self.check_depth(config, mem, dir);
    }

    fn check_depth(&mut self, config: &StreamConfig, mem: &mut StreamMemory, dir: Direction) {
        let half = &mut self.halves[idx(dir)];
        if config.depth != 0 && half.next >= config.depth && !half.depth_reached {
            half.depth_reached = true;
            mem.stats.depth_reached += 1;
            half.release(mem);
        }
    }

    /// Stores out-of-order data, resolving overlaps with buffered segments by the policy.
    fn buffer(
        &mut self,
        config: &StreamConfig,
        mem: &mut StreamMemory,
        dir: Direction,
        start: u64,
        data: &[u8],
        sink: &mut impl StreamSink,
    ) {
        let half = &mut self.halves[idx(dir)];
        let end = start + data.len() as u64;
        let mut different = false;
        // Pieces of the new data not covered by any buffered segment.
        let mut pieces: Vec<(u64, u64)> = Vec::new();
        let mut cursor = start;
        let first = half.segments.partition_point(|s| s.end() <= start);
        for seg in half.segments[first..].iter_mut() {
            if seg.offset >= end {
                break;
            }
            let (seg_start, seg_end) = (seg.offset, seg.end());
            if seg_start > cursor {
                pieces.push((cursor, seg_start));
            }
            let ov_start = seg_start.max(start);
            let ov_end = seg_end.min(end);
            mem.stats.overlaps += 1;
            let old = &mut seg.data[(ov_start - seg_start) as usize..(ov_end - seg_start) as usize];
            let new = &data[(ov_start - start) as usize..(ov_end - start) as usize];
            if old != new {
                different = true;
                if config.policy.new_wins(seg_start, seg_end, start, end) {
                    old.copy_from_slice(new);
                }
            }
            cursor = cursor.max(seg_end);
        }
        if cursor < end {
            pieces.push((cursor, end));
        }
        if different {
            mem.stats.overlaps_different += 1;
            sink.event(dir, REASSEMBLY_OVERLAP_DIFFERENT_DATA);
        }
        for (piece_start, piece_end) in pieces {
            let len = (piece_end - piece_start) as usize;
            if len == 0 {
                continue;
            }
            if mem.used + len > mem.cap || half.buffered + len > config.max_buffered_per_direction {
                mem.stats.memcap_drops += 1;
                continue;
            }
            let bytes = data[(piece_start - start) as usize..(piece_end - start) as usize].to_vec();
            let at = half.segments.partition_point(|s| s.offset < piece_start);
            half.segments.insert(
                at,
                Segment {
                    offset: piece_start,
                    data: bytes,
                },
            );
            half.buffered += len;
            mem.used += len;
            mem.stats.peak_used = mem.stats.peak_used.max(mem.used as u64);
        }
    }

    /// Hands on buffered segments that have become contiguous with `next`.
    fn drain(
        &mut self,
        config: &StreamConfig,
        mem: &mut StreamMemory,
        dir: Direction,
        sink: &mut impl StreamSink,
    ) {
        loop {
            let half = &mut self.halves[idx(dir)];
            if half.depth_reached {
                return;
            }
            let Some(seg) = half.segments.first() else {
                return;
            };
            if seg.offset > half.next {
                return;
            }
            let seg = half.segments.remove(0);
            half.buffered -= seg.data.len();
            mem.used -= seg.data.len();
            if seg.end() > half.next {
                let skip = (half.next - seg.offset) as usize;
                self.deliver(config, mem, dir, &seg.data[skip..], sink);
            }
        }
    }

    fn finish_if_fin_reached(&mut self, dir: Direction, sink: &mut impl StreamSink) {
        let half = &mut self.halves[idx(dir)];
        if !half.ended && half.fin.is_some_and(|fin| half.next >= fin) && half.segments.is_empty() {
            half.ended = true;
            sink.end(dir);
        }
    }

    /// Hands on everything buffered in `dir`, skipping holes as gaps, and ends it.
    fn flush(&mut self, mem: &mut StreamMemory, dir: Direction, sink: &mut impl StreamSink) {
        let config = StreamConfig {
            depth: 0,
            ..StreamConfig::default()
        };
        let half = &mut self.halves[idx(dir)];
        if half.ended {
            return;
        }
        let depth_reached = half.depth_reached;
        half.drop_retained(mem);
        let segments = std::mem::take(&mut half.segments);
        mem.used -= half.buffered;
        half.buffered = 0;
        if !depth_reached {
            for seg in segments {
                let half = &mut self.halves[idx(dir)];
                if seg.end() <= half.next {
                    continue;
                }
                if seg.offset > half.next {
                    self.skip_gap(&config, mem, dir, seg.offset, sink);
                }
                let half = &mut self.halves[idx(dir)];
                let skip = (half.next - seg.offset) as usize;
                half.next = seg.end();
                mem.stats.reassembled_bytes += (seg.data.len() - skip) as u64;
                sink.data(dir, &seg.data[skip..]);
            }
        }
        let half = &mut self.halves[idx(dir)];
        half.ended = true;
        if half.base_seq.is_some() {
            sink.end(dir);
        }
    }

    /// The flow ends: hands on what is buffered (across holes) and ends both directions.
    pub fn finish(&mut self, mem: &mut StreamMemory, sink: &mut impl StreamSink) {
        self.flush(mem, Direction::ToServer, sink);
        self.flush(mem, Direction::ToClient, sink);
    }

    /// Returns buffered memory to the budget (when a flow is dropped without finishing).
    pub fn release(&mut self, mem: &mut StreamMemory) {
        for half in &mut self.halves {
            half.release(mem);
        }
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
