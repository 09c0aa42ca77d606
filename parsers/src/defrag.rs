//! IPv4 and IPv6 defragmentation.
//!
//! Fragments are rare on healthy networks and a favourite evasion tool on unhealthy ones, so
//! this favours clarity and hard bounds over speed: fragment data is copied into per-datagram
//! piece lists, overlaps are resolved first-wins (BSD-like: bytes already held are never
//! replaced, so a later fragment cannot rewrite what detection may already have assumed), and
//! every byte held counts against a memcap. Time comes only from packet timestamps.

use std::collections::HashMap;
use std::mem::size_of;
use std::net::IpAddr;

use crate::packet::{DecodedPacket, TunnelContext, MAX_VLANS};

#[derive(Debug, Clone, Copy)]
pub struct DefragConfig {
    /// Bytes of fragment data held at most, over all datagrams being reassembled.
    pub memcap_bytes: usize,
    /// A datagram not complete this long after its first fragment is dropped.
    pub timeout_ns: u64,
    /// Most fragments accepted for one datagram (a guard against fragment floods).
    pub max_fragments: u16,
}

impl Default for DefragConfig {
    fn default() -> Self {
        DefragConfig {
            memcap_bytes: 32 << 20,
            timeout_ns: 60_000_000_000,
            max_fragments: 256,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DefragStats {
    pub ipv4_fragments: u64,
    pub ipv4_reassembled: u64,
    pub ipv6_fragments: u64,
    pub ipv6_reassembled: u64,
    pub overlaps: u64,
    pub timeouts: u64,
    pub memcap_drops: u64,
    pub max_frags_reached: u64,
    pub memuse_bytes: u64,
}

impl DefragStats {
    /// Sums another defragmenter's counters into these (several workers, one report).
    pub fn add(&mut self, o: &DefragStats) {
        self.ipv4_fragments += o.ipv4_fragments;
        self.ipv4_reassembled += o.ipv4_reassembled;
        self.ipv6_fragments += o.ipv6_fragments;
        self.ipv6_reassembled += o.ipv6_reassembled;
        self.overlaps += o.overlaps;
        self.timeouts += o.timeouts;
        self.memcap_drops += o.memcap_drops;
        self.max_frags_reached += o.max_frags_reached;
        self.memuse_bytes += o.memuse_bytes;
    }
}

pub enum DefragOutcome<'a> {
    /// Kept until the datagram is complete.
    Held,
    /// The complete datagram, starting at its rebuilt IP header, valid until the next call.
    Reassembled {
        datagram: &'a [u8],
        /// Fragment frames that made up the datagram (duplicates included).
        fragments: u32,
        /// Sum of the captured frame lengths of those fragments, for wire-byte accounting.
        frame_bytes: u64,
    },
    /// Not kept (memcap, too many fragments, invalid); counted in the stats.
    Dropped,
}

/// Largest IPv4 datagram; IPv6 payloads are bounded the same way (no jumbograms).
const MAX_IP_LEN: u64 = 65535;

/// Which fragments belong together: RFC 791/8200 identity plus the capture context, so equal
/// ids from different VLANs or tunnels never mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FragKey {
    version: u8,
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    proto: u8,
    vlans: [u16; MAX_VLANS],
    vlan_count: u8,
    tunnel: TunnelContext,
}

/// A run of datagram payload bytes starting at `offset`.
struct Piece {
    offset: u32,
    data: Vec<u8>,
}

impl Piece {
    fn end(&self) -> usize {
        self.offset as usize + self.data.len()
    }
}

struct Datagram {
    first_ts_ns: u64,
    /// Sorted by offset and never overlapping: overlaps are trimmed on insert.
    pieces: Vec<Piece>,
    /// IPv4 header or IPv6 unfragmentable part of the offset-0 fragment; empty until seen.
    header: Vec<u8>,
    /// Payload length, known once the last fragment (MF clear) has arrived.
    total: Option<u32>,
    fragments: u32,
    frame_bytes: u64,
    /// Bytes charged to the memcap for this datagram.
    mem: usize,
}

const DATAGRAM_OVERHEAD: usize = size_of::<Datagram>() + size_of::<FragKey>();
const PIECE_OVERHEAD: usize = size_of::<Piece>();

pub struct Defragmenter {
    config: DefragConfig,
    stats: DefragStats,
    table: HashMap<FragKey, Datagram>,
    memuse: usize,
    /// Packet time at which `process` next sweeps for timed-out datagrams.
    next_sweep_ns: u64,
    /// Output buffer, reused between datagrams.
    buf: Vec<u8>,
}

impl Defragmenter {
    pub fn new(config: DefragConfig) -> Self {
        Defragmenter {
            config,
            stats: DefragStats::default(),
            table: HashMap::new(),
            memuse: 0,
            next_sweep_ns: 0,
            buf: Vec::new(),
        }
    }

    /// Takes a fragment (`pkt.l3.fragment` is set) at packet time `ts_ns`. Overlap and
    /// oversize anomalies are pushed on `pkt`.
    pub fn process(
        &mut self,
        ts_ns: u64,
        pkt: &mut DecodedPacket,
        data: &[u8],
    ) -> DefragOutcome<'_> {
        let Some(frag) = pkt.l3.fragment else {
            return DefragOutcome::Dropped;
        };
        let v6 = pkt.l3.version == 6;
        if v6 {
            self.stats.ipv6_fragments += 1;
        } else {
            self.stats.ipv4_fragments += 1;
        }
        let (layer, too_large, overlap) = if v6 {
            (
                "ipv6",
                "decoder.ipv6.frag_pkt_too_large",
                "decoder.ipv6.frag_overlap",
            )
        } else {
            (
                "ipv4",
                "decoder.ipv4.frag_pkt_too_large",
                "decoder.ipv4.frag_overlap",
            )
        };

        // Everything the decoder pointed at must be inside `data`.
        let start = frag.data_offset as usize;
        let hstart = pkt.l3.header_offset as usize;
        let hlen = if v6 {
            frag.unfragmentable_len as usize
        } else {
            start.saturating_sub(hstart)
        };
        let (Some(fdata), Some(header)) = (
            data.get(start..start + frag.data_len as usize),
            data.get(hstart..hstart + hlen),
        ) else {
            return DefragOutcome::Dropped;
        };
        if hlen < if v6 { 40 } else { 20 } {
            return DefragOutcome::Dropped;
        }
        // A non-final IPv6 fragment must carry a multiple of 8 bytes (RFC 8200); Suricata
        // drops it with an event.
        if v6 && frag.more_fragments && fdata.len() % 8 != 0 {
            pkt.push_anomaly(layer, "decoder.ipv6.frag_invalid_length");
            return DefragOutcome::Dropped;
        }

        if ts_ns >= self.next_sweep_ns {
            self.expire(ts_ns);
            self.next_sweep_ns =
                ts_ns.saturating_add(self.config.timeout_ns.clamp(1, 1_000_000_000));
        }

        let key = FragKey {
            version: pkt.l3.version,
            src: pkt.l3.src,
            dst: pkt.l3.dst,
            id: frag.id,
            proto: frag.payload_proto,
            vlans: pkt.vlans,
            vlan_count: pkt.vlan_count,
            tunnel: pkt.tunnel,
        };

        let frag_end = u64::from(frag.offset) + fdata.len() as u64;
        // IPv6: the payload length field (unfragmentable extensions + data) must fit 16 bits.
        let size = if v6 {
            hlen as u64 - 40 + frag_end
        } else {
            hlen as u64 + frag_end
        };
        if size > MAX_IP_LEN {
            pkt.push_anomaly(layer, too_large);
            self.remove(&key);
            return DefragOutcome::Dropped;
        }

        if let Some(dg) = self.table.get(&key) {
            if ts_ns.saturating_sub(dg.first_ts_ns) >= self.config.timeout_ns {
                self.remove(&key);
                self.stats.timeouts += 1;
            }
        }

        // Exact cost of what would be stored, so memuse never exceeds the memcap.
        let (is_new, needs_header, gaps) = match self.table.get(&key) {
            Some(dg) => (
                false,
                dg.header.is_empty(),
                gap_cost(&dg.pieces, frag.offset, fdata.len()),
            ),
            None => (true, true, gap_cost(&[], frag.offset, fdata.len())),
        };
        let cost =
            gaps + if frag.offset == 0 && needs_header {
                hlen
            } else {
                0
            } + if is_new { DATAGRAM_OVERHEAD } else { 0 };
        if self.memuse + cost > self.config.memcap_bytes {
            self.stats.memcap_drops += 1;
            return DefragOutcome::Dropped;
        }

        let dg = self.table.entry(key).or_insert_with(|| Datagram {
            first_ts_ns: ts_ns,
            pieces: Vec::new(),
            header: Vec::new(),
            total: None,
            fragments: 0,
            frame_bytes: 0,
            mem: DATAGRAM_OVERHEAD,
        });
        if is_new {
            self.memuse += DATAGRAM_OVERHEAD;
        }
        if dg.fragments >= u32::from(self.config.max_fragments) {
            self.stats.max_frags_reached += 1;
            self.remove(&key);
            return DefragOutcome::Dropped;
        }
        dg.fragments += 1;
        dg.frame_bytes += data.len() as u64;

        let mut added = 0;
        if frag.offset == 0 && dg.header.is_empty() {
            dg.header.extend_from_slice(header);
            added += header.len();
        }
        if !frag.more_fragments && dg.total.is_none() {
            dg.total = Some(frag_end as u32);
        }
        let (piece_bytes, overlapped) = insert_piece(&mut dg.pieces, frag.offset, fdata);
        added += piece_bytes;
        debug_assert_eq!(added + if is_new { DATAGRAM_OVERHEAD } else { 0 }, cost);
        dg.mem += added;
        self.memuse += added;
        // As Suricata: any overlap with data already held is an event, even an exact
        // duplicate (a fragmentation attack need not change a byte to be one).
        if overlapped {
            pkt.push_anomaly(layer, overlap);
            self.stats.overlaps += 1;
        }

        let Some(total) = dg
            .total
            .filter(|&t| !dg.header.is_empty() && covers(&dg.pieces, t))
        else {
            self.stats.memuse_bytes = self.memuse as u64;
            return DefragOutcome::Held;
        };
        let Some(dg) = self.table.remove(&key) else {
            return DefragOutcome::Dropped;
        };
        self.memuse -= dg.mem;
        self.stats.memuse_bytes = self.memuse as u64;

        // The first fragment's header may be longer than the one used in the size check above.
        let hlen = dg.header.len() as u64;
        let size = if v6 {
            hlen - 40 + u64::from(total)
        } else {
            hlen + u64::from(total)
        };
        if size > MAX_IP_LEN {
            pkt.push_anomaly(layer, too_large);
            return DefragOutcome::Dropped;
        }
        self.buf.clear();
        self.buf.extend_from_slice(&dg.header);
        let total = total as usize;
        for p in &dg.pieces {
            if p.offset as usize >= total {
                break;
            }
            let take = p.end().min(total) - p.offset as usize;
            self.buf.extend_from_slice(&p.data[..take]);
        }
        if v6 {
            fix_ipv6_header(&mut self.buf, dg.header.len(), key.proto, size as u16);
            self.stats.ipv6_reassembled += 1;
        } else {
            fix_ipv4_header(&mut self.buf, dg.header.len(), size as u16);
            self.stats.ipv4_reassembled += 1;
        }
        DefragOutcome::Reassembled {
            datagram: &self.buf,
            fragments: dg.fragments,
            frame_bytes: dg.frame_bytes,
        }
    }

    /// Drops datagrams whose first fragment is older than the timeout at packet time `now_ns`.
    pub fn expire(&mut self, now_ns: u64) {
        let timeout = self.config.timeout_ns;
        let mut freed = 0;
        let mut expired = 0;
        self.table.retain(|_, dg| {
            let keep = now_ns.saturating_sub(dg.first_ts_ns) < timeout;
            if !keep {
                freed += dg.mem;
                expired += 1;
            }
            keep
        });
        self.memuse -= freed;
        self.stats.timeouts += expired;
        self.stats.memuse_bytes = self.memuse as u64;
    }

    pub fn stats(&self) -> DefragStats {
        self.stats
    }

    /// Datagrams currently being reassembled.
    pub fn pending(&self) -> usize {
        self.table.len()
    }

    fn remove(&mut self, key: &FragKey) {
        if let Some(dg) = self.table.remove(key) {
            self.memuse -= dg.mem;
            self.stats.memuse_bytes = self.memuse as u64;
        }
    }
}

/// Adds the parts of `[off, off + data.len())` not yet held (first wins). Returns the bytes
/// added and whether any of the range was already held.
fn insert_piece(pieces: &mut Vec<Piece>, off: u32, data: &[u8]) -> (usize, bool) {
    let s = off as usize;
    let e = s + data.len();
    let mut cur = s;
    let mut added = 0;
    let mut overlapped = false;
    let mut i = pieces.partition_point(|p| p.end() <= s);
    while cur < e {
        match pieces.get(i) {
            Some(p) if (p.offset as usize) <= cur => {
                let ov_end = p.end().min(e);
                overlapped = true;
                cur = ov_end;
                i += 1;
            }
            next => {
                let gap_end = next.map_or(e, |p| (p.offset as usize).min(e));
                let bytes = data[cur - s..gap_end - s].to_vec();
                added += bytes.len() + PIECE_OVERHEAD;
                pieces.insert(
                    i,
                    Piece {
                        offset: cur as u32,
                        data: bytes,
                    },
                );
                cur = gap_end;
                i += 1;
            }
        }
    }
    (added, overlapped)
}

/// Bytes `insert_piece` would add for `[off, off + len)`: the uncovered gaps plus a piece
/// overhead for each.
fn gap_cost(pieces: &[Piece], off: u32, len: usize) -> usize {
    let s = off as usize;
    let e = s + len;
    let mut cur = s;
    let mut cost = 0;
    let mut i = pieces.partition_point(|p| p.end() <= s);
    while cur < e {
        match pieces.get(i) {
            Some(p) if (p.offset as usize) <= cur => {
                cur = p.end().min(e);
                i += 1;
            }
            next => {
                let gap_end = next.map_or(e, |p| (p.offset as usize).min(e));
                cost += gap_end - cur + PIECE_OVERHEAD;
                cur = gap_end;
            }
        }
    }
    cost
}

/// Whether the pieces cover `[0, total)` without a hole.
fn covers(pieces: &[Piece], total: u32) -> bool {
    let total = total as usize;
    let mut cur = 0;
    for p in pieces {
        if cur >= total || p.offset as usize > cur {
            break;
        }
        cur = p.end();
    }
    cur >= total
}

fn fix_ipv4_header(buf: &mut [u8], hlen: usize, total_len: u16) {
    buf[2..4].copy_from_slice(&total_len.to_be_bytes());
    // Keep DF and the reserved bit; clear MF and the offset.
    buf[6] &= 0xc0;
    buf[7] = 0;
    buf[10] = 0;
    buf[11] = 0;
    let csum = ones_complement_sum(&buf[..hlen]);
    buf[10..12].copy_from_slice(&(!csum).to_be_bytes());
}

fn ones_complement_sum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in bytes.chunks(2) {
        let word = match *pair {
            [a, b] => u16::from_be_bytes([a, b]),
            [a] => u16::from_be_bytes([a, 0]),
            _ => 0,
        };
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Splices out the fragment header: the last unfragmentable header's next-header field takes
/// the fragment header's, and the payload length covers the reassembled payload.
fn fix_ipv6_header(buf: &mut [u8], ulen: usize, next_header: u8, payload_len: u16) {
    buf[4..6].copy_from_slice(&payload_len.to_be_bytes());
    let mut nh_idx = 6;
    let mut pos = 40;
    // The decoder walked these headers already; each step advances by at least 8 bytes.
    while pos + 2 <= ulen {
        let len = match buf[nh_idx] {
            51 => (usize::from(buf[pos + 1]) + 2) * 4,
            _ => (usize::from(buf[pos + 1]) + 1) * 8,
        };
        nh_idx = pos;
        pos += len;
    }
    buf[nh_idx] = next_header;
}
