//! A small independent decoder used to check the generator's output: it
//! walks every layer (VLAN, MPLS, tunnels), verifies every checksum,
//! reassembles fragments and tallies packets/bytes per conversation so the
//! ground truth can be compared against what is actually on the wire.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use vigil_pcapgen::FlowTruth;

/// Layer context a packet was found in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ctx {
    pub vlans: Vec<u16>,
    pub mpls: Vec<u32>,
    /// (kind, outer src, outer dst, id)
    pub tunnel: Option<(&'static str, IpAddr, IpAddr, u32)>,
}

/// One decoded IP datagram (reassembled if it was fragmented).
#[derive(Clone, Debug)]
pub struct Datagram {
    pub ctx: Ctx,
    pub proto: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    /// Frame lengths of all frames that carried it.
    pub frame_lens: Vec<usize>,
    pub ts: Vec<u64>,
    pub fragmented: bool,
    /// The L4 header and payload (TCP/UDP/ICMP), for application checks.
    pub l4: Vec<u8>,
}

fn csum(data: &[u8], init: u32) -> u16 {
    let mut acc = init;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        acc += w as u32;
    }
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

fn pseudo(src: &IpAddr, dst: &IpAddr, proto: u8, len: usize) -> u32 {
    let mut b = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            b.extend_from_slice(&s.octets());
            b.extend_from_slice(&d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            b.extend_from_slice(&s.octets());
            b.extend_from_slice(&d.octets());
        }
        _ => panic!("mixed families"),
    }
    let mut acc = 0u32;
    for c in b.chunks(2) {
        acc += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    acc + proto as u32 + len as u32
}

/// Verifies the L4 checksum of a complete L4 segment.
fn check_l4(proto: u8, src: &IpAddr, dst: &IpAddr, l4: &[u8]) -> Result<(), String> {
    let init = if proto == 1 {
        0
    } else {
        pseudo(src, dst, proto, l4.len())
    };
    if proto == 17 && l4[6..8] == [0, 0] {
        if src.is_ipv6() {
            return Err("UDP/IPv6 without checksum".into());
        }
        return Ok(());
    }
    let c = csum(l4, init);
    if c != 0 {
        return Err(format!("bad L4 checksum proto {proto} {src}->{dst}"));
    }
    Ok(())
}

fn ports(proto: u8, l4: &[u8]) -> (u16, u16) {
    match proto {
        6 | 17 => (
            u16::from_be_bytes([l4[0], l4[1]]),
            u16::from_be_bytes([l4[2], l4[3]]),
        ),
        _ => (0, 0),
    }
}

type FragKey = (IpAddr, IpAddr, u32, u8, Ctx);

#[derive(Default)]
struct FragBuf {
    pieces: Vec<(usize, Vec<u8>)>,
    total: Option<usize>,
    lens: Vec<usize>,
    ts: Vec<u64>,
}

#[derive(Default)]
pub struct Decoder {
    frags: HashMap<FragKey, FragBuf>,
    pub out: Vec<Datagram>,
    pub frames: usize,
}

impl Decoder {
    pub fn frame(&mut self, ts: u64, f: &[u8]) -> Result<(), String> {
        self.frames += 1;
        self.eth(ts, f, f.len(), Ctx::default())
    }

    fn eth(&mut self, ts: u64, f: &[u8], flen: usize, mut ctx: Ctx) -> Result<(), String> {
        if f.len() < 14 {
            return Err("short ethernet".into());
        }
        let mut et = u16::from_be_bytes([f[12], f[13]]);
        let mut p = 14;
        while et == 0x8100 || et == 0x88a8 {
            ctx.vlans
                .push(u16::from_be_bytes([f[p], f[p + 1]]) & 0x0fff);
            et = u16::from_be_bytes([f[p + 2], f[p + 3]]);
            p += 4;
        }
        if et == 0x8847 {
            loop {
                let v = u32::from_be_bytes([f[p], f[p + 1], f[p + 2], f[p + 3]]);
                ctx.mpls.push(v >> 12);
                p += 4;
                if v & 0x100 != 0 {
                    break;
                }
            }
            et = 0x0800;
        }
        match et {
            0x0800 | 0x86DD => self.ip(ts, &f[p..], flen, ctx),
            _ => Err(format!("unexpected ethertype {et:#06x}")),
        }
    }

    fn ip(&mut self, ts: u64, p: &[u8], flen: usize, ctx: Ctx) -> Result<(), String> {
        match p[0] >> 4 {
            4 => self.ipv4(ts, p, flen, ctx),
            6 => self.ipv6(ts, p, flen, ctx),
            v => Err(format!("ip version {v}")),
        }
    }

    fn ipv4(&mut self, ts: u64, p: &[u8], flen: usize, ctx: Ctx) -> Result<(), String> {
        let hl = ((p[0] & 0x0f) as usize) * 4;
        if csum(&p[..hl], 0) != 0 {
            return Err("bad IPv4 header checksum".into());
        }
        let total = u16::from_be_bytes([p[2], p[3]]) as usize;
        if total != p.len() {
            return Err(format!("IPv4 total length {total} != {}", p.len()));
        }
        let id = u16::from_be_bytes([p[4], p[5]]) as u32;
        let ff = u16::from_be_bytes([p[6], p[7]]);
        let proto = p[9];
        let src = IpAddr::V4(Ipv4Addr::new(p[12], p[13], p[14], p[15]));
        let dst = IpAddr::V4(Ipv4Addr::new(p[16], p[17], p[18], p[19]));
        let off = ((ff & 0x1fff) as usize) * 8;
        let more = ff & 0x2000 != 0;
        if off != 0 || more {
            return self.fragment(ts, (src, dst, id, proto, ctx), off, more, &p[hl..], flen);
        }
        self.l4(
            ts,
            proto,
            src,
            dst,
            &p[hl..],
            flen,
            ctx,
            false,
            vec![flen],
            vec![ts],
        )
    }

    fn ipv6(&mut self, ts: u64, p: &[u8], flen: usize, ctx: Ctx) -> Result<(), String> {
        let plen = u16::from_be_bytes([p[4], p[5]]) as usize;
        if plen + 40 != p.len() {
            return Err("IPv6 payload length mismatch".into());
        }
        let nh = p[6];
        let src = IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&p[8..24]).unwrap()));
        let dst = IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&p[24..40]).unwrap()));
        if nh == 44 {
            let fh = &p[40..48];
            let om = u16::from_be_bytes([fh[2], fh[3]]);
            let id = u32::from_be_bytes([fh[4], fh[5], fh[6], fh[7]]);
            let key = (src, dst, id, fh[0], ctx);
            return self.fragment(ts, key, (om & !7) as usize, om & 1 != 0, &p[48..], flen);
        }
        self.l4(
            ts,
            nh,
            src,
            dst,
            &p[40..],
            flen,
            ctx,
            false,
            vec![flen],
            vec![ts],
        )
    }

    fn fragment(
        &mut self,
        ts: u64,
        key: FragKey,
        off: usize,
        more: bool,
        data: &[u8],
        flen: usize,
    ) -> Result<(), String> {
        if more && data.len() % 8 != 0 {
            return Err("non-final fragment not a multiple of 8".into());
        }
        let b = self.frags.entry(key.clone()).or_default();
        b.pieces.push((off, data.to_vec()));
        b.lens.push(flen);
        b.ts.push(ts);
        if !more {
            b.total = Some(off + data.len());
        }
        let Some(total) = b.total else { return Ok(()) };
        let have: usize = b.pieces.iter().map(|p| p.1.len()).sum();
        if have < total {
            return Ok(());
        }
        let mut b = self.frags.remove(&key).unwrap();
        b.pieces.sort_by_key(|p| p.0);
        let mut whole = Vec::with_capacity(total);
        for (o, d) in &b.pieces {
            if *o != whole.len() {
                return Err("overlapping or missing fragment".into());
            }
            whole.extend_from_slice(d);
        }
        let (src, dst, _, proto, ctx) = key;
        self.l4(ts, proto, src, dst, &whole, 0, ctx, true, b.lens, b.ts)
    }

    #[allow(clippy::too_many_arguments)]
    fn l4(
        &mut self,
        ts: u64,
        proto: u8,
        src: IpAddr,
        dst: IpAddr,
        l4: &[u8],
        flen: usize,
        ctx: Ctx,
        fragmented: bool,
        frame_lens: Vec<usize>,
        tss: Vec<u64>,
    ) -> Result<(), String> {
        let top = ctx.tunnel.is_none();
        // Tunnels are only looked for in the outer layer.
        if top && !fragmented {
            let tun = |kind, id| {
                let mut c = ctx.clone();
                c.tunnel = Some((kind, src, dst, id));
                c
            };
            match proto {
                4 | 41 => return self.ip(ts, l4, flen, tun("IPIP", 0)),
                47 => {
                    let flags = u16::from_be_bytes([l4[0], l4[1]]);
                    let et = u16::from_be_bytes([l4[2], l4[3]]);
                    let mut p = 4;
                    if flags & 0x8000 != 0 {
                        p += 4;
                    }
                    let mut key = 0;
                    if flags & 0x2000 != 0 {
                        key = u32::from_be_bytes([l4[p], l4[p + 1], l4[p + 2], l4[p + 3]]);
                        p += 4;
                    }
                    if flags & 0x1000 != 0 {
                        p += 4;
                    }
                    return match et {
                        0x0800 | 0x86DD => self.ip(ts, &l4[p..], flen, tun("GRE", key)),
                        0x88BE => {
                            let e = &l4[p..];
                            if e[0] >> 4 != 1 {
                                return Err("ERSPAN version != II".into());
                            }
                            let sess = (u16::from_be_bytes([e[2], e[3]]) & 0x3ff) as u32;
                            self.eth(ts, &e[8..], flen, tun("ERSPAN", sess))
                        }
                        _ => Err(format!("GRE proto {et:#x}")),
                    };
                }
                17 => {
                    check_l4(17, &src, &dst, l4)?;
                    let (_, dp) = ports(17, l4);
                    let (sp, _) = ports(17, l4);
                    let ulen = u16::from_be_bytes([l4[4], l4[5]]) as usize;
                    if ulen != l4.len() {
                        return Err("UDP length mismatch".into());
                    }
                    let body = &l4[8..];
                    let vni = |b: &[u8]| u32::from_be_bytes([0, b[4], b[5], b[6]]);
                    if dp == 4789 {
                        if body[0] != 0x08 {
                            return Err("VXLAN I flag".into());
                        }
                        return self.eth(ts, &body[8..], flen, tun("VXLAN", vni(body)));
                    }
                    if dp == 6081 {
                        let optlen = (body[0] & 0x3f) as usize * 4;
                        if body[2..4] != [0x65, 0x58] {
                            return Err("Geneve proto".into());
                        }
                        return self.eth(ts, &body[8 + optlen..], flen, tun("GENEVE", vni(body)));
                    }
                    if dp == 3544 || sp == 3544 {
                        return self.ip(ts, body, flen, tun("TEREDO", 0));
                    }
                }
                _ => {}
            }
        }
        check_l4(proto, &src, &dst, l4)?;
        if proto == 17 {
            let ulen = u16::from_be_bytes([l4[4], l4[5]]) as usize;
            if ulen != l4.len() {
                return Err("UDP length mismatch".into());
            }
        }
        let (sport, dport) = ports(proto, l4);
        self.out.push(Datagram {
            ctx,
            proto,
            src,
            dst,
            sport,
            dport,
            frame_lens,
            ts: tss,
            fragmented,
            l4: l4.to_vec(),
        });
        Ok(())
    }

    pub fn incomplete_fragments(&self) -> usize {
        self.frags.len()
    }
}

#[derive(Default, Debug, Clone, PartialEq)]
pub struct Tally {
    pub pkts: [u64; 2],
    pub bytes: [u64; 2],
    pub first: u64,
    pub last: u64,
    pub fragmented: u32,
}

type ConvKey = (u8, IpAddr, u16, IpAddr, u16, Ctx);

fn flow_key(t: &FlowTruth, dir: usize) -> ConvKey {
    let ctx = Ctx {
        vlans: t.vlans.clone(),
        mpls: t.mpls.clone(),
        tunnel: t.tunnel.as_ref().map(|x| {
            let (a, b) = if dir == 0 {
                (x.outer_client, x.outer_server)
            } else {
                (x.outer_server, x.outer_client)
            };
            (x.kind, a, b, x.id)
        }),
    };
    if dir == 0 {
        (
            t.proto,
            t.client,
            t.client_port,
            t.server,
            t.server_port,
            ctx,
        )
    } else {
        (
            t.proto,
            t.server,
            t.server_port,
            t.client,
            t.client_port,
            ctx,
        )
    }
}

/// Matches decoded datagrams to truth flows (by 5-tuple, direction and
/// context, outer addresses swapped for the reverse direction) and
/// compares counters. Returns a list of mismatch descriptions.
pub fn compare(truth: &[FlowTruth], dgs: &[Datagram]) -> Vec<String> {
    let mut index: HashMap<ConvKey, (usize, usize)> = HashMap::new();
    let mut dup = vec![false; truth.len()];
    for (i, t) in truth.iter().enumerate() {
        for dir in 0..2 {
            if let Some(&(j, _)) = index.get(&flow_key(t, dir)) {
                dup[i] = true;
                dup[j] = true;
            }
            index.insert(flow_key(t, dir), (i, dir));
        }
    }
    let dups = dup.iter().filter(|&&d| d).count();
    let mut errors = Vec::new();
    if dups * 20 > truth.len() {
        errors.push(format!("{dups} of {} flows share a key", truth.len()));
    }
    let mut tallies = vec![
        Tally {
            first: u64::MAX,
            ..Default::default()
        };
        truth.len()
    ];
    for d in dgs {
        let key = (d.proto, d.src, d.sport, d.dst, d.dport, d.ctx.clone());
        let Some(&(i, dir)) = index.get(&key) else {
            errors.push(format!("datagram without truth flow: {key:?}"));
            continue;
        };
        let t = &mut tallies[i];
        t.pkts[dir] += 1;
        t.bytes[dir] += d.frame_lens.iter().sum::<usize>() as u64;
        for &ts in &d.ts {
            t.first = t.first.min(ts);
            t.last = t.last.max(ts);
        }
        t.fragmented += d.fragmented as u32;
    }
    for (i, t) in truth.iter().enumerate() {
        if dup[i] {
            continue;
        }
        let g = &tallies[i];
        let want = Tally {
            pkts: [t.pkts_toserver, t.pkts_toclient],
            bytes: [t.bytes_toserver, t.bytes_toclient],
            first: t.first_ts_ns,
            last: t.last_ts_ns,
            fragmented: t.fragmented,
        };
        if *g != want {
            errors.push(format!("flow {i} ({}) truth {want:?} wire {g:?}", t.app));
        }
    }
    errors
}

/// Parses a classic pcap; returns (nanosecond?, big-endian?, snaplen,
/// linktype, records as (ts_ns, orig_len, data)).
#[allow(clippy::type_complexity)]
pub fn read_pcap(b: &[u8]) -> (bool, bool, u32, u32, Vec<(u64, u32, Vec<u8>)>) {
    let magic_le = u32::from_le_bytes(b[0..4].try_into().unwrap());
    let (nanos, be) = match magic_le {
        0xa1b2c3d4 => (false, false),
        0xa1b23c4d => (true, false),
        0xd4c3b2a1 => (false, true),
        0x4d3cb2a1 => (true, true),
        m => panic!("bad magic {m:#x}"),
    };
    let u32at = |o: usize| {
        let a: [u8; 4] = b[o..o + 4].try_into().unwrap();
        if be {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        }
    };
    let u16at = |o: usize| {
        let a: [u8; 2] = b[o..o + 2].try_into().unwrap();
        if be {
            u16::from_be_bytes(a)
        } else {
            u16::from_le_bytes(a)
        }
    };
    assert_eq!((u16at(4), u16at(6)), (2, 4));
    let snap = u32at(16);
    let lt = u32at(20);
    let mut p = 24;
    let mut recs = Vec::new();
    while p < b.len() {
        let sec = u32at(p) as u64;
        let frac = u32at(p + 4) as u64;
        let cap = u32at(p + 8) as usize;
        let orig = u32at(p + 12);
        assert!(cap as u32 <= orig && cap as u32 <= snap);
        let ts = sec * 1_000_000_000 + if nanos { frac } else { frac * 1000 };
        recs.push((ts, orig, b[p + 16..p + 16 + cap].to_vec()));
        p += 16 + cap;
    }
    assert_eq!(p, b.len());
    (nanos, be, snap, lt, recs)
}
