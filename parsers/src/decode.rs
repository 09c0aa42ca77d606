//! L2–L4 decoding with tunnels.
//!
//! One pass, outside in: each header is length-checked once (by etherparse's `*Slice::from_slice`
//! or a hand-written check where etherparse has no parser) and its fields are then read straight
//! from the bytes. Offsets written to [`DecodedPacket`] are into the `data` given to [`decode`] or
//! [`decode_ip`]. Problems become anomalies named as Suricata names its decoder events; nothing
//! here panics, allocates, or loops without a fixed bound.
//!
//! Tunnels are decapsulated: `l3`/`l4`/payload always describe the innermost packet, and
//! `tunnel` keeps the outermost endpoints plus the innermost tunnel's kind and id. When a tunnel
//! is entered, the outer L3/L4 view is discarded, so a packet whose inner headers are broken ends
//! up with `kind == Unknown` (plus anomalies) rather than a half-outer, half-inner mix.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::err::{ipv4, ipv6, tcp};
use etherparse::{
    Ethernet2HeaderSlice, Icmpv6Slice, Ipv4HeaderSlice, Ipv6HeaderSlice, SingleVlanHeaderSlice,
    TcpHeaderSlice, UdpHeaderSlice,
};

use crate::packet::*;

/// Link layers Vigil decodes, from pcap/pcapng link-type numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    Ethernet,
    /// Raw IP: version taken from the first nibble (DLT_RAW 101, and 12/14 on some BSDs).
    Raw,
    Ipv4,
    Ipv6,
    LinuxSll,
    LinuxSll2,
    /// BSD loopback: 4-byte address family in host byte order of the capturing machine.
    Null,
    /// OpenBSD loopback: 4-byte address family in network byte order.
    Loop,
    Unsupported(u32),
}

impl LinkType {
    pub fn from_pcap(linktype: u32) -> LinkType {
        match linktype {
            1 => LinkType::Ethernet,
            101 | 12 | 14 => LinkType::Raw,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            0 => LinkType::Null,
            108 => LinkType::Loop,
            other => LinkType::Unsupported(other),
        }
    }

    /// The pcap link type number (raw IP as 101, whichever alias the capture used).
    pub fn pcap_number(self) -> u32 {
        match self {
            LinkType::Ethernet => 1,
            LinkType::Raw => 101,
            LinkType::Ipv4 => 228,
            LinkType::Ipv6 => 229,
            LinkType::LinuxSll => 113,
            LinkType::LinuxSll2 => 276,
            LinkType::Null => 0,
            LinkType::Loop => 108,
            LinkType::Unsupported(n) => n,
        }
    }
}

/// Most nested tunnels decapsulated; one more is reported as `decoder.too_many_layers` and the
/// packet is left as the last tunnel's carrier.
pub const MAX_TUNNEL_DEPTH: u8 = 4;

/// `PacketKind::OtherEthertype` value for IEEE 802.3 frames, whose type field is a length
/// (≤ 1500: LLC/SNAP, STP, …). Reported as one value so per-ethertype counters stay small.
pub const ETHER_8023_LENGTH_FRAME: u16 = 0;

/// Bound on Ethernet headers per packet (MPLS pseudowires and tunnels can nest Ethernet).
const MAX_ETHERNET_LAYERS: u8 = 8;
/// Bound on the IPv6 extension header walk; real stacks use a handful.
const MAX_IPV6_EXT_HEADERS: usize = 16;
/// Bound on MPLS label stack depth.
const MAX_MPLS_LABELS: u8 = 16;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV6: u16 = 0x86DD;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88A8;
const ETHERTYPE_VLAN_9100: u16 = 0x9100;
const ETHERTYPE_MPLS_UC: u16 = 0x8847;
const ETHERTYPE_MPLS_MC: u16 = 0x8848;
const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
const ETHERTYPE_TEB: u16 = 0x6558;
const ETHERTYPE_ERSPAN_II: u16 = 0x88BE;
const ETHERTYPE_ERSPAN_III: u16 = 0x22EB;
const ETHERTYPE_PPP: u16 = 0x880B;

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_IPIP: u8 = 4;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_IPV6: u8 = 41;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_GRE: u8 = 47;
const IPPROTO_AH: u8 = 51;
const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_DSTOPTS: u8 = 60;
const IPPROTO_NONE: u8 = 59;
const IPPROTO_SCTP: u8 = 132;

const PORT_VXLAN: u16 = 4789;
const PORT_GENEVE: u16 = 6081;
const PORT_TEREDO: u16 = 3544;

/// Decodes one captured frame into `out` (reset first). Never panics; problems become anomalies.
pub fn decode(link: LinkType, data: &[u8], out: &mut DecodedPacket) {
    out.reset();
    let data = clamp_len(data);
    let end = data.len();
    let mut d = Decoder {
        data,
        out,
        eth_layers: 0,
    };
    match link {
        LinkType::Ethernet => d.ethernet(0, end),
        LinkType::Raw => d.raw_ip(0, end),
        LinkType::Ipv4 => d.ipv4(0, end),
        LinkType::Ipv6 => d.ipv6(0, end),
        LinkType::LinuxSll => {
            if end < 16 {
                d.anomaly("sll", "decoder.sll.pkt_too_small");
            } else {
                d.ethertype(be16(data, 14), 16, end);
            }
        }
        LinkType::LinuxSll2 => {
            if end < 20 {
                d.anomaly("sll", "decoder.sll.pkt_too_small");
            } else {
                d.ethertype(be16(data, 0), 20, end);
            }
        }
        LinkType::Null => d.null(end, false),
        LinkType::Loop => d.null(end, true),
        LinkType::Unsupported(_) => d.anomaly("link", "decoder.unknown_linktype"),
    }
}

/// Decodes an IP datagram that starts at `data[0]` (a reassembled datagram), keeping the VLAN,
/// MPLS and tunnel context already in `out` and replacing its L3/L4/payload. Anomalies already
/// recorded (e.g. a defrag overlap on the completing fragment) are kept as well.
pub fn decode_ip(data: &[u8], out: &mut DecodedPacket) {
    out.kind = PacketKind::Unknown;
    out.l3 = L3::default();
    out.l4 = L4::None;
    out.payload_offset = 0;
    out.payload_len = 0;
    let data = clamp_len(data);
    let end = data.len();
    let mut d = Decoder {
        data,
        out,
        eth_layers: 0,
    };
    match data.first().map(|b| b >> 4) {
        Some(6) => d.ipv6(0, end),
        Some(4) => d.ipv4(0, end),
        Some(_) => d.anomaly("ipv4", "decoder.ipv4.wrong_ip_version"),
        None => d.anomaly("ipv4", "decoder.ipv4.pkt_too_small"),
    }
}

/// Offsets are `u32` in the output; capture buffers never approach 4 GiB, but stay exact anyway.
fn clamp_len(data: &[u8]) -> &[u8] {
    let max = u32::MAX as usize;
    if data.len() > max {
        &data[..max]
    } else {
        data
    }
}

#[inline]
fn be16(d: &[u8], i: usize) -> u16 {
    match d.get(i..i + 2) {
        Some(&[a, b]) => u16::from_be_bytes([a, b]),
        _ => 0,
    }
}

#[inline]
fn be24(d: &[u8], i: usize) -> u32 {
    match d.get(i..i + 3) {
        Some(&[a, b, c]) => u32::from_be_bytes([0, a, b, c]),
        _ => 0,
    }
}

#[inline]
fn be32(d: &[u8], i: usize) -> u32 {
    match d.get(i..i + 4) {
        Some(&[a, b, c, e]) => u32::from_be_bytes([a, b, c, e]),
        _ => 0,
    }
}

#[inline]
fn byte(d: &[u8], i: usize) -> u8 {
    d.get(i).copied().unwrap_or(0)
}

fn is_vlan_ethertype(et: u16) -> bool {
    matches!(et, ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_VLAN_9100)
}

/// Walking state for one packet. Every method takes `[off, end)` within `data`, with the
/// invariant `off <= end <= data.len()` upheld by callers (all slicing goes through `sub`).
struct Decoder<'a, 'o> {
    data: &'a [u8],
    out: &'o mut DecodedPacket,
    eth_layers: u8,
}

impl<'a> Decoder<'a, '_> {
    #[inline]
    fn anomaly(&mut self, layer: &'static str, event: &'static str) {
        self.out.push_anomaly(layer, event);
    }

    #[inline]
    fn sub(&self, off: usize, end: usize) -> &'a [u8] {
        let data: &'a [u8] = self.data;
        data.get(off..end).unwrap_or(&[])
    }

    #[inline]
    fn set_payload(&mut self, off: usize, end: usize) {
        self.out.payload_offset = off as u32;
        self.out.payload_len = end.saturating_sub(off) as u32;
    }

    fn null(&mut self, end: usize, network_order: bool) {
        if end < 4 {
            self.anomaly("null", "decoder.ltnull.pkt_too_small");
            return;
        }
        let raw = [
            byte(self.data, 0),
            byte(self.data, 1),
            byte(self.data, 2),
            byte(self.data, 3),
        ];
        let be = u32::from_be_bytes(raw);
        // DLT_NULL is in the capturing host's order, which the file does not record: accept
        // whichever reading gives a known family.
        let af = if network_order {
            be
        } else {
            let le = u32::from_le_bytes(raw);
            if matches!(le, 2 | 24 | 28 | 30) {
                le
            } else {
                be
            }
        };
        match af {
            2 => self.ipv4(4, end),
            24 | 28 | 30 => self.ipv6(4, end),
            _ => self.anomaly("null", "decoder.ltnull.unsupported_type"),
        }
    }

    fn raw_ip(&mut self, off: usize, end: usize) {
        match self.data.get(off).map(|b| b >> 4) {
            Some(4) => self.ipv4(off, end),
            Some(6) => self.ipv6(off, end),
            _ => self.anomaly("link", "decoder.ipraw.invalid_ip_version"),
        }
    }

    fn ethernet(&mut self, off: usize, end: usize) {
        let Ok(eth) = Ethernet2HeaderSlice::from_slice(self.sub(off, end)) else {
            self.anomaly("ethernet", "decoder.ethernet.pkt_too_small");
            return;
        };
        self.eth_layers += 1;
        if self.eth_layers > MAX_ETHERNET_LAYERS {
            self.anomaly("ethernet", "decoder.too_many_layers");
            return;
        }
        let et = eth.ether_type().0;
        if et < 0x0600 {
            self.out.kind = PacketKind::OtherEthertype(ETHER_8023_LENGTH_FRAME);
            return;
        }
        self.ethertype(et, off + 14, end);
    }

    fn ethertype(&mut self, et: u16, off: usize, end: usize) {
        match et {
            ETHERTYPE_IPV4 => self.ipv4(off, end),
            ETHERTYPE_IPV6 => self.ipv6(off, end),
            ETHERTYPE_ARP => self.out.kind = PacketKind::Arp,
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_VLAN_9100 => self.vlan(off, end),
            ETHERTYPE_MPLS_UC | ETHERTYPE_MPLS_MC => self.mpls(off, end),
            ETHERTYPE_PPPOE_SESSION => self.pppoe_session(off, end),
            other => self.out.kind = PacketKind::OtherEthertype(other),
        }
    }

    /// Tag stack as a loop (not recursion through `ethertype`) so depth is checked in one place.
    fn vlan(&mut self, mut off: usize, end: usize) {
        loop {
            let Ok(tag) = SingleVlanHeaderSlice::from_slice(self.sub(off, end)) else {
                self.anomaly("vlan", "decoder.vlan.header_too_small");
                return;
            };
            let idx = self.out.vlan_count as usize;
            if idx >= MAX_VLANS {
                self.anomaly("vlan", "decoder.vlan.too_many_layers");
                return;
            }
            self.out.vlans[idx] = tag.vlan_identifier().value();
            self.out.vlan_count += 1;
            let et = tag.ether_type().0;
            off += 4;
            if !is_vlan_ethertype(et) {
                return self.ethertype(et, off, end);
            }
        }
    }

    fn mpls(&mut self, mut off: usize, end: usize) {
        let mut labels = 0u8;
        let word = loop {
            if end - off < 4 {
                self.anomaly("mpls", "decoder.mpls.header_too_small");
                return;
            }
            let word = be32(self.data, off);
            off += 4;
            labels += 1;
            self.out.mpls_labels = self.out.mpls_labels.saturating_add(1);
            if word & 0x100 != 0 {
                break word;
            }
            if labels >= MAX_MPLS_LABELS {
                self.anomaly("mpls", "decoder.too_many_layers");
                return;
            }
        };
        if off >= end {
            self.anomaly("mpls", "decoder.mpls.pkt_too_small");
            return;
        }
        // Explicit-null labels name the payload; otherwise guess from the first nibble, as
        // every MPLS-aware sniffer does.
        match word >> 12 {
            0 => return self.ipv4(off, end),
            2 => return self.ipv6(off, end),
            _ => {}
        }
        match byte(self.data, off) >> 4 {
            4 => self.ipv4(off, end),
            6 => self.ipv6(off, end),
            0 => {
                // Ethernet pseudowire: a 4-byte control word, then the frame.
                if end - off < 4 + 14 {
                    self.anomaly("mpls", "decoder.mpls.pkt_too_small");
                } else {
                    self.ethernet(off + 4, end);
                }
            }
            _ => self.anomaly("mpls", "decoder.mpls.unknown_payload_type"),
        }
    }

    fn pppoe_session(&mut self, off: usize, end: usize) {
        let s = self.sub(off, end);
        if s.len() < 8 {
            self.anomaly("pppoe", "decoder.pppoe.pkt_too_small");
            return;
        }
        if s[0] != 0x11 || s[1] != 0 {
            self.anomaly("pppoe", "decoder.pppoe.wrong_code");
            return;
        }
        // The length field covers the PPP protocol and payload; it trims Ethernet padding.
        let plen = be16(s, 4) as usize;
        let pend = if (2..=s.len() - 6).contains(&plen) {
            off + 6 + plen
        } else {
            end
        };
        match be16(s, 6) {
            0x0021 => self.ipv4(off + 8, pend),
            0x0057 => self.ipv6(off + 8, pend),
            _ => self.out.kind = PacketKind::OtherEthertype(ETHERTYPE_PPPOE_SESSION),
        }
    }

    fn ipv4(&mut self, off: usize, end: usize) {
        let s = self.sub(off, end);
        if s.len() < 20 {
            self.anomaly("ipv4", "decoder.ipv4.pkt_too_small");
            return;
        }
        let hdr = match Ipv4HeaderSlice::from_slice(s) {
            Ok(h) => h,
            Err(ipv4::HeaderSliceError::Content(ipv4::HeaderError::UnexpectedVersion {
                ..
            })) => {
                self.anomaly("ipv4", "decoder.ipv4.wrong_ip_version");
                return;
            }
            Err(ipv4::HeaderSliceError::Content(_)) => {
                self.anomaly("ipv4", "decoder.ipv4.hlen_too_small");
                return;
            }
            Err(ipv4::HeaderSliceError::Len(_)) => {
                // At least 20 bytes but fewer than the IHL says: the options are cut off.
                let hlen = usize::from(s[0] & 0xf) * 4;
                if usize::from(be16(s, 2)) < hlen {
                    self.anomaly("ipv4", "decoder.ipv4.iplen_smaller_than_hlen");
                } else {
                    self.anomaly("ipv4", "decoder.ipv4.trunc_pkt");
                }
                return;
            }
        };
        let hlen = hdr.slice().len();
        let total = usize::from(hdr.total_len());
        if total < hlen {
            self.anomaly("ipv4", "decoder.ipv4.iplen_smaller_than_hlen");
            return;
        }
        // Honour total length: drops Ethernet padding; a short capture is decoded as far as
        // it goes.
        let ip_end = if total > s.len() {
            self.anomaly("ipv4", "decoder.ipv4.trunc_pkt");
            end
        } else {
            off + total
        };
        let proto = hdr.protocol().0;
        let id = hdr.identification();
        let frag_field = be16(s, 6);
        let more_fragments = frag_field & 0x2000 != 0;
        let frag_offset = u32::from(frag_field & 0x1fff) * 8;
        let ip_options = if hlen > 20 {
            self.ipv4_options(hdr.options())
        } else {
            0
        };
        let l4_off = off + hlen;
        let fragment = (more_fragments || frag_offset > 0).then(|| FragmentInfo {
            id: u32::from(id),
            offset: frag_offset,
            more_fragments,
            payload_proto: proto,
            data_offset: l4_off as u32,
            data_len: (ip_end - l4_off) as u32,
            unfragmentable_len: 0,
        });
        self.out.kind = PacketKind::Ip;
        self.out.l3 = L3 {
            version: 4,
            src: IpAddr::V4(Ipv4Addr::from(hdr.source())),
            dst: IpAddr::V4(Ipv4Addr::from(hdr.destination())),
            proto,
            ttl: hdr.ttl(),
            tos: s[1],
            ip_id: u32::from(id),
            header_offset: off as u32,
            header_len: hlen as u32,
            datagram_len: total as u32,
            fragment,
            ip_options,
        };
        if frag_offset > 0 {
            // No transport header here; the payload is this fragment's share of the datagram.
            self.set_payload(l4_off, ip_end);
            return;
        }
        if proto == IPPROTO_ICMPV6 {
            self.anomaly("ipv4", "decoder.ipv4.icmpv6");
        }
        // A first fragment yields ports, but tunnels wait for the reassembled datagram.
        self.transport(proto, l4_off, ip_end, fragment.is_none());
    }

    fn ipv4_options(&mut self, opts: &[u8]) -> u16 {
        let mut bits = 0u16;
        let mut i = 0;
        while i < opts.len() {
            let kind = opts[i];
            match kind {
                0 => {
                    bits |= IPOPT_EOL;
                    break;
                }
                1 => {
                    bits |= IPOPT_NOP;
                    i += 1;
                    continue;
                }
                _ => {}
            }
            let len = usize::from(byte(opts, i + 1));
            if i + 1 >= opts.len() || len < 2 || i + len > opts.len() {
                self.anomaly("ipv4", "decoder.ipv4.opt_invalid_len");
                break;
            }
            let (bit, len_ok) = match kind {
                7 => (IPOPT_RR, len >= 3 && (len - 3) % 4 == 0),
                131 => (IPOPT_LSRR, len >= 3 && (len - 3) % 4 == 0),
                137 => (IPOPT_SSRR, len >= 3 && (len - 3) % 4 == 0),
                68 => (IPOPT_TS, len >= 4),
                130 => (IPOPT_SEC, len == 11),
                136 => (IPOPT_SID, len == 4),
                148 => (IPOPT_RTRALT, len == 4),
                // Quick-Start and CIPSO are known but have no bit of their own.
                25 | 134 => (IPOPT_OTHER, true),
                _ => {
                    self.anomaly("ipv4", "decoder.ipv4.opt_invalid");
                    (IPOPT_OTHER, true)
                }
            };
            if !len_ok {
                self.anomaly("ipv4", "decoder.ipv4.opt_invalid_len");
            }
            if bits & bit != 0 && bit != IPOPT_OTHER {
                self.anomaly("ipv4", "decoder.ipv4.opt_duplicate");
            }
            bits |= bit;
            i += len;
        }
        bits
    }

    fn ipv6(&mut self, off: usize, end: usize) {
        let s = self.sub(off, end);
        if s.len() < 40 {
            self.anomaly("ipv6", "decoder.ipv6.pkt_too_small");
            return;
        }
        let hdr = match Ipv6HeaderSlice::from_slice(s) {
            Ok(h) => h,
            Err(ipv6::HeaderSliceError::Content(_)) => {
                self.anomaly("ipv6", "decoder.ipv6.wrong_ip_version");
                return;
            }
            Err(ipv6::HeaderSliceError::Len(_)) => {
                self.anomaly("ipv6", "decoder.ipv6.pkt_too_small");
                return;
            }
        };
        let plen = usize::from(hdr.payload_length());
        let first_nh = hdr.next_header().0;
        let ip_end = if plen == 0 && first_nh == IPPROTO_HOPOPTS {
            // Jumbogram (length in a hop-by-hop option): trust the capture.
            end
        } else if 40 + plen > s.len() {
            self.anomaly("ipv6", "decoder.ipv6.trunc_pkt");
            end
        } else {
            off + 40 + plen
        };
        self.out.kind = PacketKind::Ip;
        self.out.l3 = L3 {
            version: 6,
            src: IpAddr::V6(Ipv6Addr::from(hdr.source())),
            dst: IpAddr::V6(Ipv6Addr::from(hdr.destination())),
            proto: first_nh,
            ttl: hdr.hop_limit(),
            tos: hdr.traffic_class(),
            ip_id: 0,
            header_offset: off as u32,
            header_len: 40,
            datagram_len: (40 + plen) as u32,
            fragment: None,
            ip_options: 0,
        };

        let mut nh = first_nh;
        let mut pos = off + 40;
        let mut bits = 0u16;
        let mut fragment: Option<FragmentInfo> = None;
        // `Some(true)`: decode the transport at `pos`; `Some(false)`: stop without L4.
        let mut outcome = None;
        for _ in 0..MAX_IPV6_EXT_HEADERS {
            match nh {
                IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_AH => {
                    if ip_end - pos < 2 {
                        self.anomaly("ipv6", "decoder.ipv6.trunc_exthdr");
                        outcome = Some(false);
                        break;
                    }
                    let l = usize::from(byte(self.data, pos + 1));
                    let (len, bit, dup_event) = match nh {
                        IPPROTO_HOPOPTS => {
                            ((l + 1) * 8, IPV6_EXT_HOPOPTS, "decoder.ipv6.exthdr_dupl_hh")
                        }
                        IPPROTO_ROUTING => {
                            ((l + 1) * 8, IPV6_EXT_ROUTING, "decoder.ipv6.exthdr_dupl_rh")
                        }
                        IPPROTO_AH => ((l + 2) * 4, IPV6_EXT_AUTH, "decoder.ipv6.exthdr_dupl_ah"),
                        // Two destination-options headers are legal (before and after routing).
                        _ => ((l + 1) * 8, IPV6_EXT_DSTOPTS, ""),
                    };
                    if ip_end - pos < len {
                        self.anomaly("ipv6", "decoder.ipv6.trunc_exthdr");
                        outcome = Some(false);
                        break;
                    }
                    if bits & bit != 0 && !dup_event.is_empty() {
                        self.anomaly("ipv6", dup_event);
                    } else if matches!(nh, IPPROTO_HOPOPTS | IPPROTO_DSTOPTS) {
                        self.ipv6_options(self.sub(pos + 2, pos + len), nh == IPPROTO_HOPOPTS);
                    }
                    bits |= bit;
                    nh = byte(self.data, pos);
                    pos += len;
                }
                IPPROTO_FRAGMENT => {
                    if ip_end - pos < 8 {
                        self.anomaly("ipv6", "decoder.ipv6.trunc_exthdr");
                        outcome = Some(false);
                        break;
                    }
                    if bits & IPV6_EXT_FRAGMENT != 0 {
                        self.anomaly("ipv6", "decoder.ipv6.exthdr_dupl_fh");
                    }
                    bits |= IPV6_EXT_FRAGMENT;
                    let payload_proto = byte(self.data, pos);
                    let fo = be16(self.data, pos + 2);
                    let id = be32(self.data, pos + 4);
                    if byte(self.data, pos + 1) != 0 || fo & 0x6 != 0 {
                        self.anomaly("ipv6", "decoder.ipv6.fh_non_zero_reserved_field");
                    }
                    let offset = u32::from(fo & 0xfff8);
                    let more_fragments = fo & 1 != 0;
                    self.out.l3.ip_id = id;
                    nh = payload_proto;
                    if offset == 0 && !more_fragments {
                        // Atomic fragment (RFC 6946): the whole datagram is here.
                        self.anomaly("ipv6", "decoder.ipv6.exthdr_useless_fh");
                        pos += 8;
                        continue;
                    }
                    fragment = Some(FragmentInfo {
                        id,
                        offset,
                        more_fragments,
                        payload_proto,
                        data_offset: (pos + 8) as u32,
                        data_len: (ip_end - (pos + 8)) as u32,
                        unfragmentable_len: (pos - off) as u32,
                    });
                    pos += 8;
                    if offset > 0 {
                        outcome = Some(false);
                        break;
                    }
                }
                // No next header: nothing more to decode, whatever follows.
                IPPROTO_NONE => {
                    outcome = Some(false);
                    break;
                }
                // After an extension header Suricata wants two bytes of whatever header comes
                // next, the transport's included, else the packet is `trunc_exthdr`.
                _ if pos > off + 40 && ip_end - pos < 2 => {
                    self.anomaly("ipv6", "decoder.ipv6.trunc_exthdr");
                    outcome = Some(false);
                    break;
                }
                _ => {
                    outcome = Some(true);
                    break;
                }
            }
        }
        self.out.l3.proto = nh;
        self.out.l3.header_len = (pos - off) as u32;
        self.out.l3.ip_options = bits;
        self.out.l3.fragment = fragment;
        match outcome {
            Some(true) => {
                if nh == IPPROTO_ICMP {
                    self.anomaly("ipv6", "decoder.ipv6.icmpv4");
                }
                self.transport(nh, pos, ip_end, fragment.is_none());
            }
            Some(false) => self.set_payload(pos, ip_end),
            None => self.anomaly("ipv6", "decoder.too_many_layers"),
        }
    }

    /// Walks the options of a hop-by-hop or destination options header for Suricata's events:
    /// an option it does not know, a length that overruns the header, a zero-length PadN, a
    /// header of nothing but padding (room for a covert channel).
    fn ipv6_options(&mut self, opts: &[u8], hop_by_hop: bool) {
        let (unknown, only_padding) = if hop_by_hop {
            (
                "decoder.ipv6.hopopts_unknown_opt",
                "decoder.ipv6.hopopts_only_padding",
            )
        } else {
            (
                "decoder.ipv6.dstopts_unknown_opt",
                "decoder.ipv6.dstopts_only_padding",
            )
        };
        let (mut padding, mut other) = (0u32, 0u32);
        let mut i = 0;
        while let Some(&kind) = opts.get(i) {
            if kind == 0 {
                // Pad1: a single byte.
                padding += 1;
                i += 1;
                continue;
            }
            let Some(&len) = opts.get(i + 1) else {
                self.anomaly("ipv6", "decoder.ipv6.exthdr_invalid_optlen");
                break;
            };
            let len = usize::from(len);
            // Suricata's bound (one byte short of the option's real end).
            if i + 1 + len > opts.len() {
                self.anomaly("ipv6", "decoder.ipv6.exthdr_invalid_optlen");
                break;
            }
            // (minimum data length, counts as more than padding); None: unknown.
            let known = match kind {
                1 => Some((0, false)),
                // Router alert, jumbo payload, home address.
                5 => Some((2, true)),
                0xc2 => Some((4, false)),
                0xc9 => Some((16, true)),
                _ => None,
            };
            match known {
                Some((min, _)) if len < min => {
                    self.anomaly("ipv6", "decoder.ipv6.exthdr_invalid_optlen");
                    break;
                }
                Some((_, counts)) => {
                    if kind == 1 {
                        padding += 1;
                        if len == 0 {
                            self.anomaly("ipv6", "decoder.ipv6.zero_len_padn");
                        }
                    }
                    other += u32::from(counts);
                }
                None => {
                    self.anomaly("ipv6", unknown);
                    other += 1;
                }
            }
            i += len + 2;
        }
        if padding > 0 && other == 0 {
            self.anomaly("ipv6", only_padding);
        }
    }

    /// Decodes the transport header at `[off, end)`; `tunnels` is false for first fragments,
    /// whose tunnel payload is incomplete until reassembly.
    fn transport(&mut self, proto: u8, off: usize, end: usize, tunnels: bool) {
        match proto {
            IPPROTO_TCP => self.tcp(off, end),
            IPPROTO_UDP => self.udp(off, end, tunnels),
            IPPROTO_ICMP => self.icmpv4(off, end),
            IPPROTO_ICMPV6 => self.icmpv6(off, end),
            IPPROTO_SCTP => self.sctp(off, end),
            IPPROTO_GRE if tunnels => self.gre(off, end),
            IPPROTO_IPIP if tunnels => {
                if self.enter_tunnel("ipv4", TunnelKind::IpInIp, 0, proto, 0, 0) {
                    self.ipv4(off, end);
                } else {
                    self.set_payload(off, end);
                }
            }
            IPPROTO_IPV6 if tunnels => {
                if self.enter_tunnel("ipv6", TunnelKind::IpInIp, 0, proto, 0, 0) {
                    self.ipv6(off, end);
                } else {
                    self.set_payload(off, end);
                }
            }
            _ => self.set_payload(off, end),
        }
    }

    /// Records a tunnel layer and clears the outer L3/L4 view so the inner packet replaces it.
    /// Returns false (with an anomaly) past `MAX_TUNNEL_DEPTH`; the outer view then stays.
    fn enter_tunnel(
        &mut self,
        layer: &'static str,
        kind: TunnelKind,
        id: u32,
        outer_proto: u8,
        src_port: u16,
        dst_port: u16,
    ) -> bool {
        let t = &mut self.out.tunnel;
        if t.depth >= MAX_TUNNEL_DEPTH {
            self.out.push_anomaly(layer, "decoder.too_many_layers");
            return false;
        }
        if t.depth == 0 {
            t.outer_src = self.out.l3.src;
            t.outer_dst = self.out.l3.dst;
            t.outer_proto = outer_proto;
            t.outer_src_port = src_port;
            t.outer_dst_port = dst_port;
        }
        t.kind = kind;
        t.id = id;
        t.depth += 1;
        self.out.kind = PacketKind::Unknown;
        self.out.l3 = L3::default();
        self.out.l4 = L4::None;
        self.out.payload_offset = 0;
        self.out.payload_len = 0;
        true
    }

    fn tcp(&mut self, off: usize, end: usize) {
        let hdr = match TcpHeaderSlice::from_slice(self.sub(off, end)) {
            Ok(h) => h,
            Err(tcp::HeaderSliceError::Content(_)) => {
                self.anomaly("tcp", "decoder.tcp.hlen_too_small");
                return;
            }
            Err(tcp::HeaderSliceError::Len(_)) => {
                if self.capture_truncated() {
                    self.partial_tcp(self.sub(off, end));
                } else {
                    self.anomaly("tcp", "decoder.tcp.pkt_too_small");
                }
                return;
            }
        };
        let raw = hdr.slice();
        let hlen = raw.len();
        let mut info = TcpInfo {
            src_port: hdr.source_port(),
            dst_port: hdr.destination_port(),
            seq: hdr.sequence_number(),
            ack: hdr.acknowledgment_number(),
            // Byte 13 holds CWR..FIN in exactly the TCP_* bit positions.
            flags: byte(raw, 13),
            window: hdr.window_size(),
            header_len: hlen as u8,
            ..TcpInfo::default()
        };
        if hlen > 20 {
            self.tcp_options(hdr.options(), &mut info);
        }
        self.out.l4 = L4::Tcp(info);
        self.set_payload(off + hlen, end);
    }

    /// Hand-written walk: etherparse's iterator stops at the first unknown kind (TFO, MPTCP…),
    /// and one pass here extracts everything later stages need.
    fn tcp_options(&mut self, opts: &[u8], info: &mut TcpInfo) {
        let mut seen = 0u16;
        let mut i = 0;
        while i < opts.len() {
            let kind = opts[i];
            match kind {
                0 => break,
                1 => {
                    i += 1;
                    continue;
                }
                _ => {}
            }
            let len = usize::from(byte(opts, i + 1));
            if i + 1 >= opts.len() || len < 2 || i + len > opts.len() {
                self.anomaly("tcp", "decoder.tcp.opt_invalid_len");
                return;
            }
            let o = &opts[i..i + len];
            let valid = match kind {
                2 => len == 4,
                3 => len == 3,
                4 => len == 2,
                // An empty SACK (length 2) is valid, as Suricata accepts it since its
                // tcp-empty-sack fix.
                5 => (len - 2) % 8 == 0,
                8 => len == 10,
                _ => true,
            };
            if !valid {
                self.anomaly("tcp", "decoder.tcp.opt_invalid_len");
            } else if kind < 16 {
                let bit = 1u16 << kind;
                if seen & bit != 0 && kind != 5 {
                    self.anomaly("tcp", "decoder.tcp.opt_duplicate");
                }
                seen |= bit;
                match kind {
                    2 => info.mss = Some(be16(o, 2)),
                    3 => info.window_scale = Some(o[2]),
                    4 => info.sack_permitted = true,
                    8 => info.timestamp = Some((be32(o, 2), be32(o, 6))),
                    _ => {}
                }
            }
            i += len;
        }
    }

    /// The capture holds less than the IP header says (a snaplen cut): already reported once
    /// as `trunc_pkt`, and inner layers decode what is there without further complaint.
    fn capture_truncated(&self) -> bool {
        self.out
            .anomalies()
            .any(|a| matches!(a.event, "decoder.ipv4.trunc_pkt" | "decoder.ipv6.trunc_pkt"))
    }

    /// What a snaplen cut left of a TCP header: the ports keep the packet in its flow, and the
    /// sequence number and flags count when they made it into the capture.
    fn partial_tcp(&mut self, h: &[u8]) {
        if h.len() < 4 {
            self.anomaly("tcp", "decoder.tcp.pkt_too_small");
            return;
        }
        let word = |at: usize| {
            h.get(at..at + 4)
                .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        self.out.l4 = L4::Tcp(TcpInfo {
            src_port: be16(h, 0),
            dst_port: be16(h, 2),
            seq: word(4),
            ack: word(8),
            flags: h.get(13).copied().unwrap_or(0),
            window: if h.len() >= 16 { be16(h, 14) } else { 0 },
            ..TcpInfo::default()
        });
    }

    fn udp(&mut self, off: usize, end: usize, tunnels: bool) {
        let Ok(hdr) = UdpHeaderSlice::from_slice(self.sub(off, end)) else {
            self.anomaly("udp", "decoder.udp.pkt_too_small");
            return;
        };
        let src_port = hdr.source_port();
        let dst_port = hdr.destination_port();
        let ulen = usize::from(hdr.length());
        let avail = end - off;
        self.out.l4 = L4::Udp { src_port, dst_port };
        // First fragments carry only part of the datagram UDP's length describes.
        let mut pend = end;
        if tunnels {
            if ulen < 8 {
                self.anomaly("udp", "decoder.udp.hlen_too_small");
            } else if ulen > avail {
                // A snaplen cut is already reported as the IP layer's trunc_pkt.
                if !self.capture_truncated() {
                    self.anomaly("udp", "decoder.udp.hlen_invalid");
                }
            } else {
                pend = off + ulen;
            }
        }
        let poff = off + 8;
        self.set_payload(poff, pend);
        if !tunnels {
            return;
        }
        if dst_port == PORT_VXLAN {
            self.vxlan(poff, pend, src_port, dst_port);
        } else if dst_port == PORT_GENEVE {
            self.geneve(poff, pend, src_port, dst_port);
        } else if dst_port == PORT_TEREDO || src_port == PORT_TEREDO {
            self.teredo(poff, pend, src_port, dst_port);
        }
    }

    fn vxlan(&mut self, off: usize, end: usize, sport: u16, dport: u16) {
        let s = self.sub(off, end);
        // I flag set and a whole inner Ethernet header, else it is ordinary UDP on 4789.
        if s.len() < 8 + 14 || s[0] & 0x08 == 0 || s[7] != 0 {
            return;
        }
        let vni = be24(s, 4);
        if self.enter_tunnel("vxlan", TunnelKind::Vxlan, vni, IPPROTO_UDP, sport, dport) {
            self.ethernet(off + 8, end);
        }
    }

    fn geneve(&mut self, off: usize, end: usize, sport: u16, dport: u16) {
        let s = self.sub(off, end);
        if s.len() < 8 || s[0] >> 6 != 0 {
            return;
        }
        let hl = 8 + usize::from(s[0] & 0x3f) * 4;
        let proto = be16(s, 2);
        let inner = s.get(hl..).unwrap_or(&[]);
        let inner_ok = match proto {
            ETHERTYPE_TEB => inner.len() >= 14,
            ETHERTYPE_IPV4 => inner.len() >= 20 && inner[0] >> 4 == 4,
            ETHERTYPE_IPV6 => inner.len() >= 40 && inner[0] >> 4 == 6,
            _ => false,
        };
        if !inner_ok {
            return;
        }
        let vni = be24(s, 4);
        if self.enter_tunnel("geneve", TunnelKind::Geneve, vni, IPPROTO_UDP, sport, dport) {
            match proto {
                ETHERTYPE_TEB => self.ethernet(off + hl, end),
                ETHERTYPE_IPV4 => self.ipv4(off + hl, end),
                _ => self.ipv6(off + hl, end),
            }
        }
    }

    fn teredo(&mut self, off: usize, end: usize, sport: u16, dport: u16) {
        let s = self.sub(off, end);
        let mut i = 0usize;
        // Authentication indicator: id and auth value lengths, 8-byte nonce, confirmation byte.
        if s.len() >= 4 && s[0] == 0 && s[1] == 1 {
            i = 4 + usize::from(s[2]) + usize::from(s[3]) + 9;
        }
        // Origin indication: 8 bytes.
        if s.len() >= i + 2 && s[i] == 0 && s[i + 1] == 0 {
            i += 8;
        }
        // Port 3544 carries plenty that is not Teredo: require an IPv6 header whose payload
        // length exactly fills the datagram.
        if s.len() < i + 40 || s[i] >> 4 != 6 || i + 40 + usize::from(be16(s, i + 4)) != s.len() {
            return;
        }
        if self.enter_tunnel("teredo", TunnelKind::Teredo, 0, IPPROTO_UDP, sport, dport) {
            self.ipv6(off + i, end);
        }
    }

    fn gre(&mut self, off: usize, end: usize) {
        let s = self.sub(off, end);
        if s.len() < 4 {
            self.anomaly("gre", "decoder.gre.pkt_too_small");
            self.set_payload(off, end);
            return;
        }
        let (f0, f1) = (s[0], s[1]);
        let proto = be16(s, 2);
        match f1 & 0x07 {
            0 => self.gre_v0(off, end, f0, f1, proto),
            1 => self.gre_v1(off, end, f0, f1, proto),
            _ => {
                self.anomaly("gre", "decoder.gre.wrong_version");
                self.set_payload(off, end);
            }
        }
    }

    fn gre_v0(&mut self, off: usize, end: usize, f0: u8, f1: u8, proto: u16) {
        const C: u8 = 0x80;
        const R: u8 = 0x40;
        const K: u8 = 0x20;
        const S: u8 = 0x10;
        if f0 & 0x07 != 0 {
            self.anomaly("gre", "decoder.gre.version0_recur");
            return self.set_payload(off, end);
        }
        if f1 & 0xf8 != 0 {
            self.anomaly("gre", "decoder.gre.version0_flags");
            return self.set_payload(off, end);
        }
        if f0 & R != 0 {
            // RFC 1701 source routing is long obsolete; keep the packet as plain GRE.
            return self.set_payload(off, end);
        }
        let csum = if f0 & C != 0 { 4 } else { 0 };
        let hl = 4 + csum + if f0 & K != 0 { 4 } else { 0 } + if f0 & S != 0 { 4 } else { 0 };
        if end - off < hl {
            self.anomaly("gre", "decoder.gre.pkt_too_small");
            return self.set_payload(off, end);
        }
        let key = if f0 & K != 0 {
            be32(self.data, off + 4 + csum)
        } else {
            0
        };
        let inner = off + hl;
        match proto {
            ETHERTYPE_IPV4 => {
                if self.enter_tunnel("gre", TunnelKind::Gre, key, IPPROTO_GRE, 0, 0) {
                    self.ipv4(inner, end);
                }
            }
            ETHERTYPE_IPV6 => {
                if self.enter_tunnel("gre", TunnelKind::Gre, key, IPPROTO_GRE, 0, 0) {
                    self.ipv6(inner, end);
                }
            }
            ETHERTYPE_TEB => {
                if self.enter_tunnel("gre", TunnelKind::Gre, key, IPPROTO_GRE, 0, 0) {
                    self.ethernet(inner, end);
                }
            }
            ETHERTYPE_ERSPAN_II if f0 & S == 0 => {
                // ERSPAN type I: no ERSPAN header, the mirrored frame follows GRE directly.
                if self.enter_tunnel("erspan", TunnelKind::ErspanII, 0, IPPROTO_GRE, 0, 0) {
                    self.ethernet(inner, end);
                }
            }
            ETHERTYPE_ERSPAN_II => self.erspan(inner, end, 1, 8),
            ETHERTYPE_ERSPAN_III => self.erspan(inner, end, 2, 12),
            _ => self.set_payload(inner, end),
        }
    }

    /// PPTP's enhanced GRE (RFC 2637): key holds payload length and call id, payload is PPP.
    fn gre_v1(&mut self, off: usize, end: usize, f0: u8, f1: u8, proto: u16) {
        let s = self.sub(off, end);
        let event = if f0 & 0x80 != 0 {
            Some("decoder.gre.version1_chksum")
        } else if f0 & 0x40 != 0 {
            Some("decoder.gre.version1_route")
        } else if f0 & 0x08 != 0 {
            Some("decoder.gre.version1_ssr")
        } else if f0 & 0x07 != 0 {
            Some("decoder.gre.version1_recur")
        } else if f1 & 0x78 != 0 {
            Some("decoder.gre.version1_flags")
        } else if f0 & 0x20 == 0 {
            Some("decoder.gre.version1_no_key")
        } else if proto != ETHERTYPE_PPP {
            Some("decoder.gre.version1_wrong_protocol")
        } else {
            None
        };
        if let Some(event) = event {
            self.anomaly("gre", event);
            return self.set_payload(off, end);
        }
        let hl = 8 + if f0 & 0x10 != 0 { 4 } else { 0 } + if f1 & 0x80 != 0 { 4 } else { 0 };
        if s.len() < hl {
            self.anomaly("gre", "decoder.gre.pkt_too_small");
            return self.set_payload(off, end);
        }
        let call_id = u32::from(be16(s, 6));
        // PPP: optional address/control 0xff03, then a 1-byte (compressed) or 2-byte protocol.
        let mut p = hl;
        if byte(s, p) == 0xff && byte(s, p + 1) == 0x03 {
            p += 2;
        }
        let (ppp_proto, plen) = if byte(s, p) & 1 == 1 {
            (u16::from(byte(s, p)), 1)
        } else {
            (be16(s, p), 2)
        };
        let inner = off + p + plen;
        if inner > end {
            return self.set_payload(off + hl, end);
        }
        match ppp_proto {
            0x0021 => {
                if self.enter_tunnel("gre", TunnelKind::Gre, call_id, IPPROTO_GRE, 0, 0) {
                    self.ipv4(inner, end);
                }
            }
            0x0057 => {
                if self.enter_tunnel("gre", TunnelKind::Gre, call_id, IPPROTO_GRE, 0, 0) {
                    self.ipv6(inner, end);
                }
            }
            _ => self.set_payload(off + hl, end),
        }
    }

    /// ERSPAN type II (version 1, 8-byte header) and III (version 2, 12 bytes plus an optional
    /// 8-byte platform subheader). Both are reported as `TunnelKind::ErspanII`.
    fn erspan(&mut self, off: usize, end: usize, version: u8, hl: usize) {
        let s = self.sub(off, end);
        if s.len() < hl {
            self.anomaly("erspan", "decoder.erspan.header_too_small");
            return self.set_payload(off, end);
        }
        if s[0] >> 4 != version {
            self.anomaly("erspan", "decoder.erspan.unsupported_version");
            return self.set_payload(off, end);
        }
        let hl = if version == 2 && s[11] & 0x01 != 0 {
            hl + 8
        } else {
            hl
        };
        if s.len() < hl {
            self.anomaly("erspan", "decoder.erspan.header_too_small");
            return self.set_payload(off, end);
        }
        let session = u32::from(be16(s, 2) & 0x3ff);
        // The original frame's VLAN when the mirror stripped its tag, as Suricata records it.
        let vlan = be16(s, 0) & 0x0fff;
        if !self.enter_tunnel("erspan", TunnelKind::ErspanII, session, IPPROTO_GRE, 0, 0) {
            return;
        }
        if vlan != 0 {
            let idx = self.out.vlan_count as usize;
            if idx >= MAX_VLANS {
                self.anomaly("erspan", "decoder.erspan.too_many_vlan_layers");
                return;
            }
            self.out.vlans[idx] = vlan;
            self.out.vlan_count += 1;
        }
        self.ethernet(off + hl, end);
    }

    /// By hand rather than etherparse's `Icmpv4Slice`, which refuses a timestamp message shorter
    /// than 20 bytes; Suricata decodes it (8-byte header) and raises `ipv4_trunc_pkt`.
    fn icmpv4(&mut self, off: usize, end: usize) {
        if end - off < 8 {
            self.anomaly("icmpv4", "decoder.icmpv4.pkt_too_small");
            return;
        }
        let icmp_type = byte(self.data, off);
        let code = byte(self.data, off + 1);
        // Echo, timestamp, information and address-mask messages carry id and sequence.
        let (id, seq) = if matches!(icmp_type, 0 | 8 | 13..=18) {
            (be16(self.data, off + 4), be16(self.data, off + 6))
        } else {
            (0, 0)
        };
        // Suricata stops at a truncated IP packet; its ICMP fields are still decoded here (flows
        // of snaplen-limited captures stay visible), but not judged, to report the same events.
        let truncated = self.capture_truncated();
        if !truncated {
            match icmpv4_code_limit(icmp_type) {
                None => self.anomaly("icmpv4", "decoder.icmpv4.unknown_type"),
                Some(max) if code > max => self.anomaly("icmpv4", "decoder.icmpv4.unknown_code"),
                Some(_) => {}
            }
        }
        // As Suricata, the fixed fields of some types belong to the header (`icmpv4.hdr`) rather
        // than the payload: a timestamp message's three timestamps, a router advertisement's
        // address entries. When they are cut short the header stays 8 bytes.
        let extra = match icmp_type {
            13 | 14 => 12,
            9 => usize::from(byte(self.data, off + 4)) * usize::from(byte(self.data, off + 5)) * 4,
            _ => 0,
        };
        let hlen = if end - off < 8 + extra {
            if !truncated {
                self.anomaly("icmpv4", "decoder.icmpv4.ipv4_trunc_pkt");
            }
            8
        } else {
            8 + extra
        };
        self.out.l4 = L4::Icmpv4 {
            icmp_type,
            code,
            id,
            seq,
        };
        self.set_payload(off + hlen, end);
    }

    fn icmpv6(&mut self, off: usize, end: usize) {
        let Ok(icmp) = Icmpv6Slice::from_slice(self.sub(off, end)) else {
            self.anomaly("icmpv6", "decoder.icmpv6.pkt_too_small");
            return;
        };
        let icmp_type = icmp.type_u8();
        let rest = icmp.bytes5to8();
        let (id, seq) = if matches!(icmp_type, 128 | 129) {
            (
                u16::from_be_bytes([rest[0], rest[1]]),
                u16::from_be_bytes([rest[2], rest[3]]),
            )
        } else {
            (0, 0)
        };
        self.out.l4 = L4::Icmpv6 {
            icmp_type,
            code: icmp.code_u8(),
            id,
            seq,
        };
        self.set_payload(off + 8, end);
    }

    fn sctp(&mut self, off: usize, end: usize) {
        if end - off < 12 {
            self.anomaly("sctp", "decoder.sctp.pkt_too_small");
            return;
        }
        self.out.l4 = L4::Sctp {
            src_port: be16(self.data, off),
            dst_port: be16(self.data, off + 2),
        };
        self.set_payload(off + 12, end);
    }
}

/// Highest valid code of the ICMPv4 types Suricata knows (its `decoder.icmpv4.unknown_type`
/// and `unknown_code` events flag the rest); `None` for an unknown type.
fn icmpv4_code_limit(icmp_type: u8) -> Option<u8> {
    match icmp_type {
        // echo reply, source quench, echo, timestamp(+reply), info(+reply), address mask(+reply)
        0 | 4 | 8 | 13..=18 => Some(0),
        // router advertisement: Suricata does not judge its code
        9 => Some(u8::MAX),
        // destination unreachable: net … precedence cutoff
        3 => Some(15),
        // redirect: net, host, tos+net, tos+host
        5 => Some(3),
        // time exceeded: in transit, reassembly
        11 => Some(1),
        // parameter problem: pointer, missing option, bad length
        12 => Some(2),
        _ => None,
    }
}
