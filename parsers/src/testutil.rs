//! Hand-rolled packet builders for tests: exact control over every byte, including broken ones.

pub const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
pub const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 2];
pub const V4_A: [u8; 4] = [10, 0, 0, 1];
pub const V4_B: [u8; 4] = [10, 0, 0, 2];
pub const V4_C: [u8; 4] = [192, 168, 1, 1];
pub const V4_D: [u8; 4] = [192, 168, 1, 2];
pub const V6_A: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
pub const V6_B: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

pub fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

pub fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    cat(&[&MAC_B, &MAC_A, &ethertype.to_be_bytes(), payload])
}

/// A VLAN tag (4 bytes: TCI then the inner ethertype) followed by `payload`.
pub fn vlan_tag(vid: u16, inner_type: u16, payload: &[u8]) -> Vec<u8> {
    cat(&[&vid.to_be_bytes(), &inner_type.to_be_bytes(), payload])
}

pub fn csum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in bytes.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from(c[0]) << 8
        };
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// IPv4 with full control: `frag` is the flags+offset field (offset in 8-byte units).
pub fn ipv4_full(
    proto: u8,
    src: [u8; 4],
    dst: [u8; 4],
    id: u16,
    frag: u16,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    assert!(options.len() % 4 == 0);
    let hlen = 20 + options.len();
    let total = (hlen + payload.len()) as u16;
    let mut h = vec![0x40 | (hlen / 4) as u8, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(options);
    let c = csum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

pub fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    ipv4_full(proto, src, dst, 0x1234, 0x4000, &[], payload)
}

pub fn ipv6(nh: u8, src: [u8; 16], dst: [u8; 16], payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    h.extend_from_slice(&[nh, 64]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(payload);
    h
}

/// A generic IPv6 extension header (hop-by-hop, routing, destination options) of `units`
/// 8-byte units, padded with a PadN option.
pub fn ipv6_ext(nh: u8, units: u8, payload: &[u8]) -> Vec<u8> {
    let len = (usize::from(units) + 1) * 8;
    let mut h = vec![nh, units, 1, (len - 4) as u8];
    h.resize(len, 0);
    h.extend_from_slice(payload);
    h
}

pub fn tcp(sport: u16, dport: u16, seq: u32, flags: u8, options: &[u8], payload: &[u8]) -> Vec<u8> {
    assert!(options.len() % 4 == 0);
    let hlen = 20 + options.len();
    let mut h = Vec::new();
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h.extend_from_slice(&seq.to_be_bytes());
    h.extend_from_slice(&0x0102_0304u32.to_be_bytes());
    h.extend_from_slice(&[((hlen / 4) as u8) << 4, flags]);
    h.extend_from_slice(&65535u16.to_be_bytes());
    h.extend_from_slice(&[0, 0, 0, 0]);
    h.extend_from_slice(options);
    h.extend_from_slice(payload);
    h
}

pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    h.extend_from_slice(&[0, 0]);
    h.extend_from_slice(payload);
    h
}

pub fn gre(flags0: u8, proto: u16, key: Option<u32>, seq: Option<u32>, payload: &[u8]) -> Vec<u8> {
    let mut f0 = flags0;
    if key.is_some() {
        f0 |= 0x20;
    }
    if seq.is_some() {
        f0 |= 0x10;
    }
    let mut h = vec![f0, 0];
    h.extend_from_slice(&proto.to_be_bytes());
    if f0 & 0x80 != 0 {
        h.extend_from_slice(&[0, 0, 0, 0]);
    }
    if let Some(k) = key {
        h.extend_from_slice(&k.to_be_bytes());
    }
    if let Some(s) = seq {
        h.extend_from_slice(&s.to_be_bytes());
    }
    h.extend_from_slice(payload);
    h
}

pub fn vxlan(vni: u32, inner_frame: &[u8]) -> Vec<u8> {
    let v = vni.to_be_bytes();
    cat(&[&[0x08, 0, 0, 0, v[1], v[2], v[3], 0], inner_frame])
}

pub fn geneve(vni: u32, proto: u16, opt_words: u8, inner: &[u8]) -> Vec<u8> {
    let v = vni.to_be_bytes();
    let mut h = vec![opt_words & 0x3f, 0];
    h.extend_from_slice(&proto.to_be_bytes());
    h.extend_from_slice(&[v[1], v[2], v[3], 0]);
    h.resize(8 + usize::from(opt_words) * 4, 0xaa);
    h.extend_from_slice(inner);
    h
}

/// The classic test flow: 10.0.0.1:40000 -> 10.0.0.2:80, SYN with common options.
pub fn syn_options() -> Vec<u8> {
    vec![
        2, 4, 0x05, 0xb4, // MSS 1460
        4, 2, // SACK permitted
        8, 10, 0, 0, 0, 1, 0, 0, 0, 2, // timestamps 1, 2
        1, // NOP
        3, 3, 7, // window scale 7
    ]
}

pub fn ipv4_tcp(payload: &[u8]) -> Vec<u8> {
    ipv4(6, V4_A, V4_B, &tcp(40000, 80, 1000, 0x18, &[], payload))
}

/// Splits an IPv4 datagram into fragments whose data lengths are `sizes` (multiples of 8
/// except the last); the remainder goes into the last fragment.
pub fn fragment_ipv4(dgram: &[u8], sizes: &[usize]) -> Vec<Vec<u8>> {
    let hlen = usize::from(dgram[0] & 0xf) * 4;
    let payload = &dgram[hlen..];
    let id = u16::from_be_bytes([dgram[4], dgram[5]]);
    let proto = dgram[9];
    let src = [dgram[12], dgram[13], dgram[14], dgram[15]];
    let dst = [dgram[16], dgram[17], dgram[18], dgram[19]];
    let mut out = Vec::new();
    let mut off = 0;
    let mut i = 0;
    while off < payload.len() {
        let n = sizes
            .get(i)
            .copied()
            .unwrap_or(payload.len() - off)
            .min(payload.len() - off);
        let mf = off + n < payload.len();
        let field = ((off / 8) as u16) | if mf { 0x2000 } else { 0 };
        out.push(ipv4_full(
            proto,
            src,
            dst,
            id,
            field,
            &dgram[20..hlen],
            &payload[off..off + n],
        ));
        off += n;
        i += 1;
    }
    out
}

/// Splits an IPv6 packet's payload (after its fixed header; `unfrag` extension bytes stay in
/// front) into fragments of `sizes`.
pub fn fragment_ipv6(pkt: &[u8], unfrag: usize, id: u32, sizes: &[usize]) -> Vec<Vec<u8>> {
    let ulen = 40 + unfrag;
    let fragmentable = &pkt[ulen..];
    // The header whose next-header field must point at the fragment header.
    let nh_idx = if unfrag == 0 { 6 } else { 40 };
    let orig_nh = pkt[nh_idx];
    let mut out = Vec::new();
    let mut off = 0;
    let mut i = 0;
    while off < fragmentable.len() {
        let n = sizes
            .get(i)
            .copied()
            .unwrap_or(fragmentable.len() - off)
            .min(fragmentable.len() - off);
        let mf = off + n < fragmentable.len();
        let mut p = pkt[..ulen].to_vec();
        p[nh_idx] = 44;
        let field = (off as u16) | u16::from(mf);
        p.extend_from_slice(&[orig_nh, 0]);
        p.extend_from_slice(&field.to_be_bytes());
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&fragmentable[off..off + n]);
        let plen = (p.len() - 40) as u16;
        p[4..6].copy_from_slice(&plen.to_be_bytes());
        out.push(p);
        off += n;
        i += 1;
    }
    out
}

/// Deterministic xorshift64* for the fuzz-style loops.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One transport payload taken from a real capture, for parser unit tests.
#[derive(Debug, Clone)]
#[allow(dead_code)] // not every test reads every field
pub struct PcapPayload {
    pub ts_ns: u64,
    pub src: std::net::SocketAddr,
    pub dst: std::net::SocketAddr,
    /// 6 TCP or 17 UDP.
    pub proto: u8,
    pub tcp_flags: u8,
    pub seq: u32,
    pub payload: Vec<u8>,
}

/// The path of a file in the shared corpus (`../shared/corpus/...` from the project root).
pub fn corpus_path(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/corpus")
        .join(rel)
}

/// Every TCP/UDP packet with a payload (and every TCP packet with SYN/FIN/RST) of a classic pcap
/// file from the shared corpus, in file order. No reassembly: the corpus captures used in unit
/// tests are clean, so concatenating one direction's payloads gives its stream.
pub fn pcap_payloads(rel: &str) -> Vec<PcapPayload> {
    let path = corpus_path(rel);
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(data.len() >= 24, "{}: too short for a pcap", path.display());
    let magic = u32::from_le_bytes(data[0..4].try_into().unwrap());
    let (le, nanos) = match magic {
        0xa1b2c3d4 => (true, false),
        0xa1b23c4d => (true, true),
        0xd4c3b2a1 => (false, false),
        0x4d3cb2a1 => (false, true),
        other => panic!("{}: not a classic pcap (magic {other:#x})", path.display()),
    };
    let rd = |b: &[u8]| {
        let a: [u8; 4] = b.try_into().unwrap();
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let link = crate::LinkType::from_pcap(rd(&data[20..24]));
    let mut out = Vec::new();
    let mut pos = 24;
    let mut pkt = crate::DecodedPacket::default();
    while pos + 16 <= data.len() {
        let secs = u64::from(rd(&data[pos..pos + 4]));
        let frac = u64::from(rd(&data[pos + 4..pos + 8]));
        let caplen = rd(&data[pos + 8..pos + 12]) as usize;
        pos += 16;
        if pos + caplen > data.len() {
            break;
        }
        let frame = &data[pos..pos + caplen];
        pos += caplen;
        crate::decode(link, frame, &mut pkt);
        let ts_ns = secs * 1_000_000_000 + if nanos { frac } else { frac * 1000 };
        let (proto, sport, dport, flags, seq) = match pkt.l4 {
            crate::L4::Tcp(t) => (6, t.src_port, t.dst_port, t.flags, t.seq),
            crate::L4::Udp { src_port, dst_port } => (17, src_port, dst_port, 0, 0),
            _ => continue,
        };
        let start = pkt.payload_offset as usize;
        let end = (start + pkt.payload_len as usize).min(frame.len());
        let payload = frame.get(start..end).unwrap_or_default().to_vec();
        if payload.is_empty() && flags & (crate::TCP_SYN | crate::TCP_FIN | crate::TCP_RST) == 0 {
            continue;
        }
        out.push(PcapPayload {
            ts_ns,
            src: std::net::SocketAddr::new(pkt.l3.src, sport),
            dst: std::net::SocketAddr::new(pkt.l3.dst, dport),
            proto,
            tcp_flags: flags,
            seq,
            payload,
        });
    }
    out
}
