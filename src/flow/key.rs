//! Flow identity: the normalized key a worker's table is indexed by, the symmetric hash the
//! dispatcher spreads flows with, and Community ID v1.

use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use base64::Engine;
use sha1::{Digest, Sha1};
use vigil_parsers::{DecodedPacket, TunnelContext, L4, MAX_VLANS};

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ICMPV6: u8 = 58;
pub const PROTO_SCTP: u8 = 132;

/// One endpoint as the key stores it. For ICMP, `port` carries the flow discriminator (echo id or
/// type/code), not a transport port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub addr: IpAddr,
    pub port: u16,
}

/// A flow's identity, independent of direction: `lo` is the numerically smaller endpoint.
/// VLAN ids and the tunnel context are part of it, so the same 5-tuple seen on two VLANs or in
/// two tunnels is two flows, as on two separate networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub lo: Endpoint,
    pub hi: Endpoint,
    pub proto: u8,
    pub vlans: [u16; MAX_VLANS],
    pub tunnel: TunnelContext,
}

/// Which side of the key a packet was sent from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySide {
    Lo,
    Hi,
}

impl FlowKey {
    /// Builds the key of an IP packet and tells which side sent it. Returns `None` for packets
    /// that are not flow-bound (not IP, or a fragment still waiting for reassembly).
    pub fn from_packet(pkt: &DecodedPacket) -> Option<(FlowKey, KeySide)> {
        if pkt.kind != vigil_parsers::PacketKind::Ip || pkt.l3.fragment.is_some() {
            return None;
        }
        let (sport, dport) = flow_ports(pkt);
        let src = Endpoint {
            addr: pkt.l3.src,
            port: sport,
        };
        let dst = Endpoint {
            addr: pkt.l3.dst,
            port: dport,
        };
        let (lo, hi, side) = if src <= dst {
            (src, dst, KeySide::Lo)
        } else {
            (dst, src, KeySide::Hi)
        };
        let mut vlans = [0u16; MAX_VLANS];
        vlans[..pkt.vlans().len()].copy_from_slice(pkt.vlans());
        let tunnel = normalized_tunnel(&pkt.tunnel);
        Some((
            FlowKey {
                lo,
                hi,
                proto: pkt.l3.proto,
                vlans,
                tunnel,
            },
            side,
        ))
    }

    /// A direction-independent hash of the whole key, for flow ids: both directions of a flow
    /// give the same value. Stable across runs (no random seed), so a replay is deterministic.
    /// (The dispatcher uses the cheaper [`dispatch_hash`].)
    pub fn symmetric_hash(&self) -> u64 {
        let mut h = StableHasher::default();
        self.hash(&mut h);
        h.finish()
    }
}

/// Which worker a packet's flow goes to, as a hash computed straight from the decoded packet:
/// the reader thread hashes every packet, and building the [`FlowKey`] and hashing all of it
/// field by field cost ~4 % of a 2-worker replay. Both directions give the same value (the two
/// endpoints are combined by addition), and so does every packet with the same `FlowKey`: only
/// parts of the normalized key go in. `None` when the packet has no flow (as `from_packet`).
pub fn dispatch_hash(pkt: &DecodedPacket) -> Option<u64> {
    if pkt.kind != vigil_parsers::PacketKind::Ip || pkt.l3.fragment.is_some() {
        return None;
    }
    let (sport, dport) = flow_ports(pkt);
    let endpoint = |addr: IpAddr, port: u16| spread(fold_addr(addr) ^ u64::from(port) << 48);
    let mut h = endpoint(pkt.l3.src, sport).wrapping_add(endpoint(pkt.l3.dst, dport));
    // By position, as the key's zero-padded array: a trailing tag 0 changes nothing.
    let vlans = pkt
        .vlans()
        .iter()
        .enumerate()
        .fold(0u64, |acc, (i, &v)| acc ^ u64::from(v) << (16 * i));
    h = spread(h ^ vlans ^ u64::from(pkt.l3.proto) << 56);
    let t = &pkt.tunnel;
    if t.kind != vigil_parsers::TunnelKind::None {
        let outer = spread(fold_addr(t.outer_src)).wrapping_add(spread(fold_addr(t.outer_dst)));
        h = spread(h ^ outer ^ u64::from(t.id) ^ (t.kind as u64) << 40);
    }
    Some(avalanche(h))
}

fn fold_addr(addr: IpAddr) -> u64 {
    match addr {
        IpAddr::V4(a) => u64::from(u32::from(a)),
        IpAddr::V6(a) => {
            let v = u128::from(a);
            (v as u64) ^ ((v >> 64) as u64).rotate_left(32) ^ 1 << 63
        }
    }
}

/// The multiply-rotate step of both hashes here.
fn spread(x: u64) -> u64 {
    x.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29)
}

/// splitmix64's finalizer, so that `hash % workers` spreads well.
fn avalanche(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The tunnel as part of a direction-free key: outer endpoints ordered, outer ports dropped
/// (VXLAN and Geneve senders pick their UDP source port per flow and per direction, so the two
/// directions of one inner flow rarely share outer ports).
fn normalized_tunnel(t: &TunnelContext) -> TunnelContext {
    let (a, b) = if t.outer_src <= t.outer_dst {
        (t.outer_src, t.outer_dst)
    } else {
        (t.outer_dst, t.outer_src)
    };
    TunnelContext {
        outer_src: a,
        outer_dst: b,
        outer_src_port: 0,
        outer_dst_port: 0,
        ..*t
    }
}

/// Ports that tell flows apart. ICMP has none; echo-style messages pair request and reply by
/// their identifier, everything else by type and code (as Zeek and Suricata do).
fn flow_ports(pkt: &DecodedPacket) -> (u16, u16) {
    match pkt.l4 {
        L4::Tcp(t) => (t.src_port, t.dst_port),
        L4::Udp { src_port, dst_port } | L4::Sctp { src_port, dst_port } => (src_port, dst_port),
        L4::Icmpv4 {
            icmp_type,
            code,
            id,
            ..
        } => match icmp_v4_counterpart(icmp_type) {
            Some(_) => (id, id),
            None => (u16::from(icmp_type) << 8 | u16::from(code), 0),
        },
        L4::Icmpv6 {
            icmp_type,
            code,
            id,
            ..
        } => match icmp_v6_counterpart(icmp_type) {
            Some(_) => (id, id),
            None => (u16::from(icmp_type) << 8 | u16::from(code), 0),
        },
        L4::None => (0, 0),
    }
}

/// A word-at-a-time multiply-rotate hash: fixed, identical on every run and machine, and cheaper
/// than byte-wise FNV-1a over the whole key (tunnel context included).
struct StableHasher(u64);

impl StableHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.0 = spread(self.0 ^ word);
    }
}

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for StableHasher {
    fn finish(&self) -> u64 {
        avalanche(self.0)
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.mix(u64::from_le_bytes(word.try_into().expect("8-byte chunk")));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            // The length keeps a short tail of zeros apart from no tail.
            self.mix(u64::from_le_bytes(last) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, v: u8) {
        self.mix(u64::from(v));
    }

    #[inline]
    fn write_u16(&mut self, v: u16) {
        self.mix(u64::from(v));
    }

    #[inline]
    fn write_u32(&mut self, v: u32) {
        self.mix(u64::from(v));
    }

    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.mix(v);
    }

    #[inline]
    fn write_usize(&mut self, v: usize) {
        self.mix(v as u64);
    }
}

/// ICMPv4 request/reply pairs (Zeek's table, used by the Community ID spec). `Some(other)` for
/// two-way types, `None` for one-way ones.
pub fn icmp_v4_counterpart(icmp_type: u8) -> Option<u8> {
    match icmp_type {
        8 => Some(0),
        0 => Some(8),
        13 => Some(14),
        14 => Some(13),
        15 => Some(16),
        16 => Some(15),
        10 => Some(9),
        9 => Some(10),
        17 => Some(18),
        18 => Some(17),
        _ => None,
    }
}

/// ICMPv6 request/reply pairs, as `icmp_v4_counterpart`.
pub fn icmp_v6_counterpart(icmp_type: u8) -> Option<u8> {
    match icmp_type {
        128 => Some(129),
        129 => Some(128),
        133 => Some(134),
        134 => Some(133),
        135 => Some(136),
        136 => Some(135),
        130 => Some(131),
        131 => Some(130),
        144 => Some(145),
        145 => Some(144),
        139 => Some(140),
        140 => Some(139),
        _ => None,
    }
}

/// The tuple the Community ID is computed from, in the packet's (or flow initiator's) direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommunityTuple {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    /// `None` for protocols without ports (the hash then covers addresses and protocol only).
    pub ports: Option<(u16, u16)>,
}

impl CommunityTuple {
    /// The tuple of one packet as the spec defines it, ICMP types/codes mapped to ports.
    pub fn from_packet(pkt: &DecodedPacket) -> CommunityTuple {
        let ports = match pkt.l4 {
            L4::Tcp(t) => Some((t.src_port, t.dst_port)),
            L4::Udp { src_port, dst_port } | L4::Sctp { src_port, dst_port } => {
                Some((src_port, dst_port))
            }
            L4::Icmpv4 {
                icmp_type, code, ..
            } => Some(icmp_ports(icmp_type, code, false)),
            L4::Icmpv6 {
                icmp_type, code, ..
            } => Some(icmp_ports(icmp_type, code, true)),
            L4::None => None,
        };
        CommunityTuple {
            src: pkt.l3.src,
            dst: pkt.l3.dst,
            proto: pkt.l3.proto,
            ports,
        }
    }
}

/// The spec's ICMP mapping: two-way types use (type, counterpart type) and compare as one flow;
/// one-way types use (type, code). Returns (sport, dport) for the hash.
pub fn icmp_ports(icmp_type: u8, code: u8, v6: bool) -> (u16, u16) {
    let counterpart = if v6 {
        icmp_v6_counterpart(icmp_type)
    } else {
        icmp_v4_counterpart(icmp_type)
    };
    match counterpart {
        Some(other) => (u16::from(icmp_type), u16::from(other)),
        None => (u16::from(icmp_type), u16::from(code)),
    }
}

/// Community ID v1 (<https://github.com/corelight/community-id-spec>): "1:" + base64(SHA-1 of
/// seed, ordered endpoints, protocol, padding, ports), all in network byte order.
pub fn community_id_v1(tuple: &CommunityTuple, seed: u16) -> String {
    let (sport, dport) = tuple.ports.unwrap_or((0, 0));
    let src = (tuple.src, sport);
    let dst = (tuple.dst, dport);
    // One-way ICMP keeps its order (the "ports" are type and code, not comparable endpoints);
    // everything else is ordered so both directions hash alike.
    let icmp_one_way = match tuple.proto {
        PROTO_ICMP => tuple
            .ports
            .is_some_and(|(t, _)| icmp_v4_counterpart(t as u8).is_none()),
        PROTO_ICMPV6 => tuple
            .ports
            .is_some_and(|(t, _)| icmp_v6_counterpart(t as u8).is_none()),
        _ => false,
    };
    let ordered = if icmp_one_way || addr_bytes_cmp(&src, &dst) {
        (src, dst)
    } else {
        (dst, src)
    };
    let mut h = Sha1::new();
    h.update(seed.to_be_bytes());
    push_addr(&mut h, ordered.0 .0);
    push_addr(&mut h, ordered.1 .0);
    h.update([tuple.proto, 0]);
    if tuple.ports.is_some() {
        h.update(ordered.0 .1.to_be_bytes());
        h.update(ordered.1 .1.to_be_bytes());
    }
    let digest = h.finalize();
    let mut out = String::with_capacity(30);
    out.push_str("1:");
    base64::engine::general_purpose::STANDARD.encode_string(digest, &mut out);
    out
}

/// True when `a` orders before or equal to `b` by address bytes, then port (the spec's rule).
fn addr_bytes_cmp(a: &(IpAddr, u16), b: &(IpAddr, u16)) -> bool {
    let order = match (a.0, b.0) {
        (IpAddr::V4(x), IpAddr::V4(y)) => x.octets().cmp(&y.octets()),
        (IpAddr::V6(x), IpAddr::V6(y)) => x.octets().cmp(&y.octets()),
        (IpAddr::V4(_), IpAddr::V6(_)) => std::cmp::Ordering::Less,
        (IpAddr::V6(_), IpAddr::V4(_)) => std::cmp::Ordering::Greater,
    };
    order.then(a.1.cmp(&b.1)).is_le()
}

fn push_addr(h: &mut Sha1, addr: IpAddr) {
    match addr {
        IpAddr::V4(a) => h.update(a.octets()),
        IpAddr::V6(a) => h.update(a.octets()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple(src: &str, dst: &str, proto: u8, ports: Option<(u16, u16)>) -> CommunityTuple {
        CommunityTuple {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            proto,
            ports,
        }
    }

    /// The spec's own table (baseline/README.md, "Default settings" and "seed=1").
    #[test]
    fn spec_table_values() {
        let cases = [
            (
                tuple("1.2.3.4", "5.6.7.8", 6, Some((1122, 3344))),
                0,
                "1:wCb3OG7yAFWelaUydu0D+125CLM=",
            ),
            (
                tuple("5.6.7.8", "1.2.3.4", 6, Some((3344, 1122))),
                0,
                "1:wCb3OG7yAFWelaUydu0D+125CLM=",
            ),
            (
                tuple("1.2.3.4", "5.6.7.8", 17, Some((1122, 3344))),
                0,
                "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg=",
            ),
            (
                tuple("1.2.3.4", "5.6.7.8", 132, Some((1122, 3344))),
                0,
                "1:EKt4MsxuyaE6mL+hmrEkQ9csDD8=",
            ),
            (
                tuple("1.2.3.4", "5.6.7.8", 1, Some(icmp_ports(8, 0, false))),
                0,
                "1:crodRHL2FEsHjbv3UkRrfbs4bZ0=",
            ),
            (
                tuple("5.6.7.8", "1.2.3.4", 1, Some(icmp_ports(0, 0, false))),
                0,
                "1:crodRHL2FEsHjbv3UkRrfbs4bZ0=",
            ),
            (
                tuple("1.2.3.4", "5.6.7.8", 1, Some(icmp_ports(11, 0, false))),
                0,
                "1:f/YiSyWqczrTgfUCZlBUnvHRcPk=",
            ),
            (
                tuple(
                    "fe80:0001:0203:0405:0607:0809:0A0B:0C0D",
                    "fe80:1011:1213:1415:1617:1819:1A1B:1C1D",
                    58,
                    Some(icmp_ports(128, 0, true)),
                ),
                0,
                "1:0bf7hyMJUwt3fMED7z8LIfRpBeo=",
            ),
            (
                tuple(
                    "fe80:1011:1213:1415:1617:1819:1A1B:1C1D",
                    "fe80:0001:0203:0405:0607:0809:0A0B:0C0D",
                    58,
                    Some(icmp_ports(129, 0, true)),
                ),
                0,
                "1:0bf7hyMJUwt3fMED7z8LIfRpBeo=",
            ),
            (
                tuple(
                    "fe80:0001:0203:0405:0607:0809:0A0B:0C0D",
                    "fe80:1011:1213:1415:1617:1819:1A1B:1C1D",
                    58,
                    Some(icmp_ports(146, 0, true)),
                ),
                0,
                "1:fYC8+pz24E+EhANP1EZhpX0Dw10=",
            ),
            (
                tuple("1.2.3.4", "5.6.7.8", 46, None),
                0,
                "1:ikv3kmf89luf73WPz1jOs49S768=",
            ),
            (
                tuple("5.6.7.8", "1.2.3.4", 46, None),
                0,
                "1:ikv3kmf89luf73WPz1jOs49S768=",
            ),
            (
                tuple("1.2.3.4", "5.6.7.8", 6, Some((1122, 3344))),
                1,
                "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk=",
            ),
            (
                tuple("1.2.3.4", "5.6.7.8", 46, None),
                1,
                "1:/buhqeOmaRCopOZFy9HnoJd5XW8=",
            ),
        ];
        for (t, seed, want) in cases {
            assert_eq!(community_id_v1(&t, seed), want, "{t:?} seed {seed}");
        }
    }

    fn tcp_packet(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> DecodedPacket {
        let mut p = DecodedPacket {
            kind: vigil_parsers::PacketKind::Ip,
            ..DecodedPacket::default()
        };
        p.l3.version = 4;
        p.l3.src = IpAddr::from(src);
        p.l3.dst = IpAddr::from(dst);
        p.l3.proto = 6;
        p.l4 = L4::Tcp(vigil_parsers::TcpInfo {
            src_port: sport,
            dst_port: dport,
            ..Default::default()
        });
        p
    }

    fn reversed(p: &DecodedPacket) -> DecodedPacket {
        let mut r = *p;
        r.l3.src = p.l3.dst;
        r.l3.dst = p.l3.src;
        if let L4::Tcp(t) = p.l4 {
            r.l4 = L4::Tcp(vigil_parsers::TcpInfo {
                src_port: t.dst_port,
                dst_port: t.src_port,
                ..t
            });
        }
        r.tunnel.outer_src = p.tunnel.outer_dst;
        r.tunnel.outer_dst = p.tunnel.outer_src;
        r
    }

    /// Packets with one key go to one worker: both directions, a trailing VLAN tag 0 (the
    /// key pads its VLAN list with zeros), tunnel outer ports that differ per direction.
    #[test]
    fn dispatch_hash_is_the_same_for_every_packet_of_a_flow() {
        let mut p = tcp_packet([10, 0, 0, 5], 40000, [93, 184, 216, 34], 443);
        p.vlans = [7, 0, 0];
        p.vlan_count = 1;
        p.tunnel = TunnelContext {
            kind: vigil_parsers::TunnelKind::Vxlan,
            outer_src: IpAddr::from([192, 0, 2, 1]),
            outer_dst: IpAddr::from([192, 0, 2, 2]),
            outer_proto: 17,
            outer_src_port: 51000,
            outer_dst_port: 4789,
            id: 42,
            ..TunnelContext::default()
        };
        let mut back = reversed(&p);
        back.vlan_count = 2;
        back.tunnel.outer_src_port = 60001;
        assert_eq!(
            FlowKey::from_packet(&p).unwrap().0,
            FlowKey::from_packet(&back).unwrap().0
        );
        assert_eq!(dispatch_hash(&p), dispatch_hash(&back));
        let mut other_vlan = p;
        other_vlan.vlans = [8, 0, 0];
        assert_ne!(dispatch_hash(&p), dispatch_hash(&other_vlan));
        let mut fragment = p;
        fragment.l3.fragment = Some(Default::default());
        assert_eq!(dispatch_hash(&fragment), None);
    }

    /// `hash(client address, client port)` of a flow to 10.0.0.1:443, taken `% workers`, must
    /// spread flows evenly even when they differ only in a client port or the last address
    /// byte, as most flows on a link do.
    fn assert_spreads_similar_flows(hash: impl Fn([u8; 4], u16) -> u64) {
        for workers in [2u64, 3, 4, 8] {
            let mut by_port = vec![0u32; workers as usize];
            let mut by_host = vec![0u32; workers as usize];
            for i in 0..8192u16 {
                by_port[(hash([192, 168, 1, 7], 32768 + i) % workers) as usize] += 1;
                let host = [172, 16, (i >> 8) as u8, i as u8];
                by_host[(hash(host, 51000) % workers) as usize] += 1;
            }
            let even = 8192 / workers as u32;
            for counts in [&by_port, &by_host] {
                for &n in counts.iter() {
                    assert!(
                        n.abs_diff(even) < even / 10,
                        "{workers} workers: {counts:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn dispatch_hash_spreads_similar_flows() {
        assert_spreads_similar_flows(|client, port| {
            dispatch_hash(&tcp_packet(client, port, [10, 0, 0, 1], 443)).unwrap()
        });
    }

    /// Flow ids (and any sharding on them) spread as well.
    #[test]
    fn symmetric_hash_spreads_similar_flows() {
        assert_spreads_similar_flows(|client, port| {
            let a = Endpoint {
                addr: IpAddr::from(client),
                port,
            };
            let b = Endpoint {
                addr: IpAddr::from([10, 0, 0, 1]),
                port: 443,
            };
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            FlowKey {
                lo,
                hi,
                proto: 6,
                vlans: [0; MAX_VLANS],
                tunnel: TunnelContext::default(),
            }
            .symmetric_hash()
        });
    }

    /// Equal addresses: the lower port goes first (suricata-verify `community-id-sameip`, whose
    /// upstream configuration uses seed 1).
    #[test]
    fn same_ip_orders_by_port() {
        let t = tuple("192.168.0.254", "192.168.0.254", 6, Some((56162, 3306)));
        assert_eq!(community_id_v1(&t, 1), "1:IJQHtzXv/tXud3FtXIufkDsfEd4=");
        let back = tuple("192.168.0.254", "192.168.0.254", 6, Some((3306, 56162)));
        assert_eq!(community_id_v1(&back, 1), "1:IJQHtzXv/tXud3FtXIufkDsfEd4=");
    }
}
