//! Packet construction: IP/L4 headers, checksums, fragmentation and the
//! link/tunnel "path" each flow's datagrams are wrapped in.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::rng::Rng;
use crate::{FlowTruth, TunnelTruth};

pub(crate) const PROTO_ICMP: u8 = 1;
pub(crate) const PROTO_TCP: u8 = 6;
pub(crate) const PROTO_UDP: u8 = 17;
pub(crate) const PROTO_ICMPV6: u8 = 58;

pub(crate) const ETH_IPV4: u16 = 0x0800;
pub(crate) const ETH_IPV6: u16 = 0x86DD;

/// Adds `data` to a running one's-complement sum. Every chunk but the last
/// must have even length so 16-bit words stay aligned across calls.
#[inline]
pub(crate) fn csum_add(mut acc: u64, data: &[u8]) -> u64 {
    // Summing big-endian u32 words and folding later equals summing u16
    // words (2^16 == 1 mod 0xFFFF), at half the additions.
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        acc += u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u64;
    }
    let rem = chunks.remainder();
    let mut i = 0;
    while i + 1 < rem.len() {
        acc += u16::from_be_bytes([rem[i], rem[i + 1]]) as u64;
        i += 2;
    }
    if i < rem.len() {
        acc += (rem[i] as u64) << 8;
    }
    acc
}

#[inline]
pub(crate) fn csum_fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xFFFF) + (acc >> 16);
    }
    !(acc as u16)
}

pub(crate) fn ipv4_header_csum(hdr: &mut [u8]) {
    hdr[10] = 0;
    hdr[11] = 0;
    let c = csum_fold(csum_add(0, &hdr[..20]));
    hdr[10..12].copy_from_slice(&c.to_be_bytes());
}

/// Pseudo-header sum for TCP/UDP/ICMPv6 checksums.
fn pseudo_sum(src: &IpAddr, dst: &IpAddr, proto: u8, len: usize) -> u64 {
    let mut acc = 0u64;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            acc = csum_add(acc, &s.octets());
            acc = csum_add(acc, &d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            acc = csum_add(acc, &s.octets());
            acc = csum_add(acc, &d.octets());
        }
        _ => unreachable!("mixed address families"),
    }
    acc + proto as u64 + len as u64
}

/// Writes the L4 checksum of a complete IP datagram in place.
fn fill_l4_csum(dg: &mut [u8], ip_hlen: usize, src: &IpAddr, dst: &IpAddr, proto: u8) {
    let l4len = dg.len() - ip_hlen;
    let off = ip_hlen
        + match proto {
            PROTO_TCP => 16,
            PROTO_UDP => 6,
            _ => 2,
        };
    dg[off] = 0;
    dg[off + 1] = 0;
    let acc = if proto == PROTO_ICMP {
        0
    } else {
        pseudo_sum(src, dst, proto, l4len)
    };
    let mut c = csum_fold(csum_add(acc, &dg[ip_hlen..]));
    if proto == PROTO_UDP && c == 0 {
        // 0 means "no checksum" for UDP; the all-ones form is transmitted.
        c = 0xFFFF;
    }
    dg[off..off + 2].copy_from_slice(&c.to_be_bytes());
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Dir {
    ToServer,
    ToClient,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum TunKind {
    Gre,
    GreKey,
    Erspan,
    Vxlan,
    Geneve,
    IpIp,
    SixIn4,
    Teredo,
}

impl TunKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            TunKind::Gre | TunKind::GreKey => "GRE",
            TunKind::Erspan => "ERSPAN",
            TunKind::Vxlan => "VXLAN",
            TunKind::Geneve => "GENEVE",
            TunKind::IpIp | TunKind::SixIn4 => "IPIP",
            TunKind::Teredo => "TEREDO",
        }
    }

    /// Bytes between the outer IPv4 header and the inner IP header.
    fn inner_overhead(self) -> usize {
        match self {
            TunKind::Gre => 4,
            TunKind::GreKey => 8,
            TunKind::Erspan => 8 + 8 + 14,
            TunKind::Vxlan | TunKind::Geneve => 8 + 8 + 14,
            TunKind::IpIp | TunKind::SixIn4 => 0,
            TunKind::Teredo => 8,
        }
    }
}

#[derive(Clone)]
pub(crate) struct Tunnel {
    pub(crate) kind: TunKind,
    pub(crate) outer_c: Ipv4Addr,
    pub(crate) outer_s: Ipv4Addr,
    pub(crate) id: u32,
    /// UDP source port of the client-side tunnel endpoint (VXLAN/Geneve/Teredo).
    pub(crate) udp_port: u16,
    pub(crate) inner_c_mac: [u8; 6],
    pub(crate) inner_s_mac: [u8; 6],
    pub(crate) gre_seq: [u32; 2],
    pub(crate) outer_ip_id: [u16; 2],
    pub(crate) outer_ttl: [u8; 2],
}

/// Link-layer and tunnel context shared by both directions of a flow.
#[derive(Clone)]
pub(crate) struct Path {
    pub(crate) c_mac: [u8; 6],
    pub(crate) s_mac: [u8; 6],
    /// (TPID, VID), outermost first.
    pub(crate) vlans: Vec<(u16, u16)>,
    pub(crate) mpls: Vec<u32>,
    pub(crate) tunnel: Option<Tunnel>,
}

impl Path {
    pub(crate) fn plain(c_mac: [u8; 6], s_mac: [u8; 6]) -> Self {
        Path {
            c_mac,
            s_mac,
            vlans: Vec::new(),
            mpls: Vec::new(),
            tunnel: None,
        }
    }

    pub(crate) fn prefix_len(&self) -> usize {
        let mut n = 14 + 4 * self.vlans.len() + 4 * self.mpls.len();
        if let Some(t) = &self.tunnel {
            n += 20 + t.kind.inner_overhead();
        }
        n
    }

    /// Largest inner IP datagram that keeps the outer frame at 1514 bytes,
    /// as a tunnel or VLAN trunk with a 1500-byte MTU would enforce.
    pub(crate) fn inner_mtu(&self) -> usize {
        1514 - self.prefix_len()
    }

    /// Fills the link/tunnel prefix of `f`, whose tail holds the inner IP datagram.
    fn fill_prefix(&mut self, dir: Dir, f: &mut [u8], inner_v6: bool) {
        let (src_mac, dst_mac) = match dir {
            Dir::ToServer => (self.c_mac, self.s_mac),
            Dir::ToClient => (self.s_mac, self.c_mac),
        };
        f[0..6].copy_from_slice(&dst_mac);
        f[6..12].copy_from_slice(&src_mac);
        let mut p = 12;
        for &(tpid, vid) in &self.vlans {
            f[p..p + 2].copy_from_slice(&tpid.to_be_bytes());
            f[p + 2..p + 4].copy_from_slice(&(vid & 0x0FFF).to_be_bytes());
            p += 4;
        }
        let inner_type = if inner_v6 { ETH_IPV6 } else { ETH_IPV4 };
        let Some(t) = &mut self.tunnel else {
            if self.mpls.is_empty() {
                f[p..p + 2].copy_from_slice(&inner_type.to_be_bytes());
            } else {
                f[p..p + 2].copy_from_slice(&0x8847u16.to_be_bytes());
                p += 2;
                let n = self.mpls.len();
                for (i, &label) in self.mpls.iter().enumerate() {
                    let bos = (i + 1 == n) as u32;
                    let v = (label << 12) | (bos << 8) | 64;
                    f[p..p + 4].copy_from_slice(&v.to_be_bytes());
                    p += 4;
                }
            }
            return;
        };
        let d = dir as usize;
        let (osrc, odst) = match dir {
            Dir::ToServer => (t.outer_c, t.outer_s),
            Dir::ToClient => (t.outer_s, t.outer_c),
        };
        f[p..p + 2].copy_from_slice(&ETH_IPV4.to_be_bytes());
        p += 2;
        let ip_off = p;
        let outer_proto = match t.kind {
            TunKind::Gre | TunKind::GreKey | TunKind::Erspan => 47,
            TunKind::Vxlan | TunKind::Geneve | TunKind::Teredo => PROTO_UDP,
            TunKind::IpIp => 4,
            TunKind::SixIn4 => 41,
        };
        let total = f.len() - ip_off;
        t.outer_ip_id[d] = t.outer_ip_id[d].wrapping_add(1);
        write_ipv4_header(
            &mut f[ip_off..ip_off + 20],
            total,
            t.outer_ip_id[d],
            0x4000,
            t.outer_ttl[d],
            outer_proto,
            osrc,
            odst,
        );
        p += 20;
        let l4_off = p;
        let inner_mac = |f: &mut [u8], p: usize, t: &Tunnel| {
            let (s, dm) = match dir {
                Dir::ToServer => (t.inner_c_mac, t.inner_s_mac),
                Dir::ToClient => (t.inner_s_mac, t.inner_c_mac),
            };
            f[p..p + 6].copy_from_slice(&dm);
            f[p + 6..p + 12].copy_from_slice(&s);
            f[p + 12..p + 14].copy_from_slice(&inner_type.to_be_bytes());
        };
        match t.kind {
            TunKind::Gre => {
                f[p..p + 2].copy_from_slice(&[0, 0]);
                f[p + 2..p + 4].copy_from_slice(&inner_type.to_be_bytes());
            }
            TunKind::GreKey => {
                f[p..p + 2].copy_from_slice(&0x2000u16.to_be_bytes());
                f[p + 2..p + 4].copy_from_slice(&inner_type.to_be_bytes());
                f[p + 4..p + 8].copy_from_slice(&t.id.to_be_bytes());
            }
            TunKind::Erspan => {
                // GRE with the sequence-number bit, then ERSPAN type II.
                t.gre_seq[d] = t.gre_seq[d].wrapping_add(1);
                f[p..p + 2].copy_from_slice(&0x1000u16.to_be_bytes());
                f[p + 2..p + 4].copy_from_slice(&0x88BEu16.to_be_bytes());
                f[p + 4..p + 8].copy_from_slice(&t.gre_seq[d].to_be_bytes());
                let w0: u16 = 1 << 12; // version 1 = type II, VLAN 0
                let w1: u16 = (t.id as u16) & 0x03FF; // COS 0, En 0, T 0, session
                f[p + 8..p + 10].copy_from_slice(&w0.to_be_bytes());
                f[p + 10..p + 12].copy_from_slice(&w1.to_be_bytes());
                let index: u32 = 1 + d as u32; // port index of the mirrored interface
                f[p + 12..p + 16].copy_from_slice(&index.to_be_bytes());
                inner_mac(f, p + 16, t);
            }
            TunKind::Vxlan => {
                write_udp_ports(f, p, t, dir, 4789);
                f[p + 8..p + 12].copy_from_slice(&[0x08, 0, 0, 0]);
                f[p + 12..p + 16].copy_from_slice(&(t.id << 8).to_be_bytes());
                inner_mac(f, p + 16, t);
            }
            TunKind::Geneve => {
                write_udp_ports(f, p, t, dir, 6081);
                f[p + 8..p + 10].copy_from_slice(&[0, 0]); // ver 0, no options
                f[p + 10..p + 12].copy_from_slice(&0x6558u16.to_be_bytes());
                f[p + 12..p + 16].copy_from_slice(&(t.id << 8).to_be_bytes());
                inner_mac(f, p + 16, t);
            }
            TunKind::Teredo => write_udp_ports(f, p, t, dir, 3544),
            TunKind::IpIp | TunKind::SixIn4 => {}
        }
        if outer_proto == PROTO_UDP {
            let ulen = f.len() - l4_off;
            f[l4_off + 4..l4_off + 6].copy_from_slice(&(ulen as u16).to_be_bytes());
            let (s, dd) = (IpAddr::V4(osrc), IpAddr::V4(odst));
            let mut c = csum_fold(csum_add(pseudo_sum(&s, &dd, PROTO_UDP, ulen), &f[l4_off..]));
            if c == 0 {
                c = 0xFFFF;
            }
            f[l4_off + 6..l4_off + 8].copy_from_slice(&c.to_be_bytes());
        }
    }
}

fn write_udp_ports(f: &mut [u8], p: usize, t: &Tunnel, dir: Dir, port: u16) {
    let (sp, dp) = match (t.kind, dir) {
        // Teredo: the client's NAT-mapped port talks to the relay on 3544.
        (TunKind::Teredo, Dir::ToServer) => (t.udp_port, port),
        (TunKind::Teredo, Dir::ToClient) => (port, t.udp_port),
        // VXLAN/Geneve: source port is a flow hash, destination well-known.
        _ => (t.udp_port, port),
    };
    f[p..p + 2].copy_from_slice(&sp.to_be_bytes());
    f[p + 2..p + 4].copy_from_slice(&dp.to_be_bytes());
    f[p + 6..p + 8].copy_from_slice(&[0, 0]);
}

#[allow(clippy::too_many_arguments)]
fn write_ipv4_header(
    h: &mut [u8],
    total: usize,
    id: u16,
    flags_frag: u16,
    ttl: u8,
    proto: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
) {
    h[0] = 0x45;
    h[1] = 0;
    h[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    h[4..6].copy_from_slice(&id.to_be_bytes());
    h[6..8].copy_from_slice(&flags_frag.to_be_bytes());
    h[8] = ttl;
    h[9] = proto;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    ipv4_header_csum(h);
}

/// Fault injection for fragmented datagrams.
#[derive(Clone, Copy, Default)]
pub(crate) struct FragPolicy {
    pub(crate) reverse_prob: f64,
    pub(crate) drop_prob: f64,
}

/// One 5-tuple conversation: builds frames for both directions and keeps
/// its ground truth up to date.
pub(crate) struct Conv {
    pub(crate) client: IpAddr,
    pub(crate) server: IpAddr,
    pub(crate) cport: u16,
    pub(crate) sport: u16,
    pub(crate) path: Path,
    pub(crate) ttl: [u8; 2],
    pub(crate) ip_id: [u16; 2],
    pub(crate) flow_label: u32,
    pub(crate) nanos: bool,
    pub(crate) frag: FragPolicy,
    pub(crate) truth: FlowTruth,
    /// TCP impairment state; None unless impairments are on.
    pub(crate) imp: Option<crate::apps::ImpairState>,
    scratch: Vec<u8>,
}

impl Conv {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        rng: &mut Rng,
        proto: u8,
        client: IpAddr,
        server: IpAddr,
        cport: u16,
        sport: u16,
        path: Path,
        ttl: [u8; 2],
        nanos: bool,
        frag: FragPolicy,
        app: &'static str,
    ) -> Self {
        let truth = FlowTruth {
            proto,
            client,
            server,
            client_port: cport,
            server_port: sport,
            vlans: path.vlans.iter().map(|v| v.1).collect(),
            mpls: path.mpls.clone(),
            tunnel: path.tunnel.as_ref().map(|t| TunnelTruth {
                kind: t.kind.name(),
                outer_client: IpAddr::V4(t.outer_c),
                outer_server: IpAddr::V4(t.outer_s),
                id: t.id,
            }),
            app,
            pkts_toserver: 0,
            pkts_toclient: 0,
            bytes_toserver: 0,
            bytes_toclient: 0,
            fragmented: 0,
            first_ts_ns: u64::MAX,
            last_ts_ns: 0,
            variant: None,
            app_layer: None,
            impair: None,
        };
        Conv {
            client,
            server,
            cport,
            sport,
            path,
            ttl,
            ip_id: [rng.u16(), rng.u16()],
            flow_label: rng.u32() & 0xF_FFFF,
            nanos,
            frag,
            truth,
            imp: None,
            scratch: Vec::with_capacity(2048),
        }
    }

    pub(crate) fn is_v6(&self) -> bool {
        self.client.is_ipv6()
    }

    fn addrs(&self, dir: Dir) -> (IpAddr, IpAddr) {
        match dir {
            Dir::ToServer => (self.client, self.server),
            Dir::ToClient => (self.server, self.client),
        }
    }

    fn ports(&self, dir: Dir) -> (u16, u16) {
        match dir {
            Dir::ToServer => (self.cport, self.sport),
            Dir::ToClient => (self.sport, self.cport),
        }
    }

    /// Starts an IP datagram in `self.scratch`; returns the IP header length.
    fn begin_ip(&mut self, dir: Dir, proto: u8, l4len: usize, df: bool) -> usize {
        let d = dir as usize;
        let (src, dst) = self.addrs(dir);
        let buf = &mut self.scratch;
        buf.clear();
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(t)) => {
                self.ip_id[d] = self.ip_id[d].wrapping_add(1);
                buf.resize(20, 0);
                let flags = if df { 0x4000 } else { 0 };
                write_ipv4_header(
                    buf,
                    20 + l4len,
                    self.ip_id[d],
                    flags,
                    self.ttl[d],
                    proto,
                    s,
                    t,
                );
                20
            }
            (IpAddr::V6(s), IpAddr::V6(t)) => {
                buf.resize(40, 0);
                buf[0..4].copy_from_slice(&((6u32 << 28) | self.flow_label).to_be_bytes());
                buf[4..6].copy_from_slice(&(l4len as u16).to_be_bytes());
                buf[6] = proto;
                buf[7] = self.ttl[d];
                buf[8..24].copy_from_slice(&s.octets());
                buf[24..40].copy_from_slice(&t.octets());
                40
            }
            _ => unreachable!(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn tcp(
        &mut self,
        out: &mut Vec<(u64, Vec<u8>)>,
        ts: u64,
        dir: Dir,
        flags: u8,
        seq: u32,
        ack: u32,
        win: u16,
        opts: &[u8],
        payload: &[u8],
    ) {
        let (sp, dp) = self.ports(dir);
        let hlen = 20 + opts.len();
        let hl = self.begin_ip(dir, PROTO_TCP, hlen + payload.len(), true);
        let b = &mut self.scratch;
        b.extend_from_slice(&sp.to_be_bytes());
        b.extend_from_slice(&dp.to_be_bytes());
        b.extend_from_slice(&seq.to_be_bytes());
        b.extend_from_slice(&ack.to_be_bytes());
        b.push(((hlen / 4) as u8) << 4);
        b.push(flags);
        b.extend_from_slice(&win.to_be_bytes());
        b.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
        b.extend_from_slice(opts);
        b.extend_from_slice(payload);
        self.finish(out, ts, dir, hl, PROTO_TCP);
    }

    pub(crate) fn udp(&mut self, out: &mut Vec<(u64, Vec<u8>)>, ts: u64, dir: Dir, payload: &[u8]) {
        let (sp, dp) = self.ports(dir);
        let ulen = 8 + payload.len();
        let hl = self.begin_ip(dir, PROTO_UDP, ulen, false);
        let b = &mut self.scratch;
        b.extend_from_slice(&sp.to_be_bytes());
        b.extend_from_slice(&dp.to_be_bytes());
        b.extend_from_slice(&(ulen as u16).to_be_bytes());
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(payload);
        self.finish(out, ts, dir, hl, PROTO_UDP);
    }

    /// ICMP/ICMPv6 message: type, code, the 4 "rest of header" bytes and
    /// the body (checksum is computed).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn icmp(
        &mut self,
        out: &mut Vec<(u64, Vec<u8>)>,
        ts: u64,
        dir: Dir,
        typ: u8,
        code: u8,
        rest: [u8; 4],
        payload: &[u8],
    ) {
        let proto = if self.is_v6() {
            PROTO_ICMPV6
        } else {
            PROTO_ICMP
        };
        let hl = self.begin_ip(dir, proto, 8 + payload.len(), false);
        let b = &mut self.scratch;
        b.extend_from_slice(&[typ, code, 0, 0]);
        b.extend_from_slice(&rest);
        b.extend_from_slice(payload);
        self.finish(out, ts, dir, hl, proto);
    }

    fn finish(&mut self, out: &mut Vec<(u64, Vec<u8>)>, ts: u64, dir: Dir, hl: usize, proto: u8) {
        let (src, dst) = self.addrs(dir);
        let mut dg = std::mem::take(&mut self.scratch);
        fill_l4_csum(&mut dg, hl, &src, &dst, proto);
        let ts = if self.nanos { ts } else { ts - ts % 1000 };
        let mtu = self.path.inner_mtu();
        if dg.len() <= mtu {
            self.emit(out, ts, dir, &dg);
            self.count_pkt(dir);
        } else {
            self.fragment(out, ts, dir, &dg, hl, mtu);
        }
        self.scratch = dg;
    }

    fn count_pkt(&mut self, dir: Dir) {
        match dir {
            Dir::ToServer => self.truth.pkts_toserver += 1,
            Dir::ToClient => self.truth.pkts_toclient += 1,
        }
    }

    fn fragment(
        &mut self,
        out: &mut Vec<(u64, Vec<u8>)>,
        ts: u64,
        dir: Dir,
        dg: &[u8],
        hl: usize,
        mtu: usize,
    ) {
        let payload = &dg[hl..];
        let v6 = self.is_v6();
        let per = if v6 { (mtu - 48) & !7 } else { (mtu - hl) & !7 };
        let mut frags: Vec<Vec<u8>> = Vec::new();
        // One id per datagram; IPv6 takes a fresh 32-bit one.
        let id6 = u32::from(self.ip_id[dir as usize]) << 16 | self.flow_label & 0xFFFF;
        let mut off = 0;
        while off < payload.len() {
            let end = (off + per).min(payload.len());
            let more = end < payload.len();
            let mut f = Vec::with_capacity(hl + 8 + end - off);
            if v6 {
                f.extend_from_slice(&dg[..40]);
                f[6] = 44;
                f[4..6].copy_from_slice(&((8 + end - off) as u16).to_be_bytes());
                f.push(dg[6]);
                f.push(0);
                let om = ((off as u16) & !7) | more as u16;
                f.extend_from_slice(&om.to_be_bytes());
                f.extend_from_slice(&id6.to_be_bytes());
            } else {
                f.extend_from_slice(&dg[..hl]);
                f[2..4].copy_from_slice(&((hl + end - off) as u16).to_be_bytes());
                let ff = ((off / 8) as u16) | if more { 0x2000 } else { 0 };
                f[6..8].copy_from_slice(&ff.to_be_bytes());
                ipv4_header_csum(&mut f[..20]);
            }
            f.extend_from_slice(&payload[off..end]);
            frags.push(f);
            off = end;
        }
        let mut rng = Rng::new(ts ^ (self.flow_label as u64) << 32 ^ dg.len() as u64);
        if rng.chance(self.frag.reverse_prob) {
            // Last fragment first, as seen after multipath reordering.
            let last = frags.pop().expect("at least two fragments");
            frags.insert(0, last);
        }
        let mut complete = true;
        if rng.chance(self.frag.drop_prob) {
            let i = rng.below(frags.len() as u64) as usize;
            frags.remove(i);
            complete = false;
        }
        for (i, f) in frags.iter().enumerate() {
            // Fragments leave back to back at ~1 Gbit/s.
            self.emit(out, ts + i as u64 * 12_000, dir, f);
        }
        if complete {
            self.count_pkt(dir);
        }
        self.truth.fragmented += 1;
    }

    fn emit(&mut self, out: &mut Vec<(u64, Vec<u8>)>, ts: u64, dir: Dir, dg: &[u8]) {
        let plen = self.path.prefix_len();
        let mut f = vec![0u8; plen + dg.len()];
        f[plen..].copy_from_slice(dg);
        let v6 = dg[0] >> 4 == 6;
        self.path.fill_prefix(dir, &mut f, v6);
        let t = &mut self.truth;
        match dir {
            Dir::ToServer => t.bytes_toserver += f.len() as u64,
            Dir::ToClient => t.bytes_toclient += f.len() as u64,
        }
        t.first_ts_ns = t.first_ts_ns.min(ts);
        t.last_ts_ns = t.last_ts_ns.max(ts);
        out.push((ts, f));
    }

    pub(crate) fn into_truth(mut self) -> FlowTruth {
        if self.truth.first_ts_ns == u64::MAX {
            self.truth.first_ts_ns = 0;
        }
        if let Some(imp) = self.imp.take() {
            self.truth.impair = Some(imp.truth);
        }
        self.truth
    }
}

pub(crate) fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

pub(crate) fn v6(segs: [u16; 8]) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(
        segs[0], segs[1], segs[2], segs[3], segs[4], segs[5], segs[6], segs[7],
    ))
}
