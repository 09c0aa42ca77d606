mod common;

use common::{read_pcap, Decoder};
use vigil_pcapgen::{
    convert_frames, convert_linktype, generate_frames, write_pcap, write_pcapng,
    write_pcapng_two_interfaces, Endian, GenConfig, LinkType, PcapOptions, PcapngBlock,
    PcapngInterface, PcapngOptions, TsPrecision,
};

fn frames() -> Vec<(u64, Vec<u8>)> {
    let cfg = GenConfig {
        nanos: true,
        ..GenConfig::new(77, 300 << 10)
    };
    generate_frames(&cfg).0
}

#[test]
fn classic_pcap_all_variants() {
    let fr = frames();
    for endian in [Endian::Little, Endian::Big] {
        for precision in [TsPrecision::Micro, TsPrecision::Nano] {
            for snaplen in [65535u32, 96] {
                let opts = PcapOptions {
                    endian,
                    precision,
                    snaplen,
                    linktype: 1,
                };
                let buf = write_pcap(&fr, &opts, Vec::new()).unwrap();
                let (nanos, be, snap, lt, recs) = read_pcap(&buf);
                assert_eq!(nanos, precision == TsPrecision::Nano);
                assert_eq!(be, endian == Endian::Big);
                assert_eq!((snap, lt), (snaplen, 1));
                assert_eq!(recs.len(), fr.len());
                let mut truncated = 0;
                for ((ts, orig, data), (fts, f)) in recs.iter().zip(&fr) {
                    let want_ts = if nanos { *fts } else { fts - fts % 1000 };
                    assert_eq!(*ts, want_ts);
                    assert_eq!(*orig as usize, f.len());
                    assert_eq!(data.len(), f.len().min(snaplen as usize));
                    assert_eq!(&f[..data.len()], &data[..]);
                    truncated += (data.len() < f.len()) as usize;
                }
                assert_eq!(truncated > 0, snaplen == 96);
            }
        }
    }
}

/// Minimal pcapng walker: returns (block type, body) and checks lengths.
fn blocks(b: &[u8]) -> (bool, Vec<(u32, Vec<u8>)>) {
    assert_eq!(&b[0..4], &[0x0A, 0x0D, 0x0D, 0x0A]);
    let be = match &b[8..12] {
        [0x1A, 0x2B, 0x3C, 0x4D] => true,
        [0x4D, 0x3C, 0x2B, 0x1A] => false,
        m => panic!("byte-order magic {m:?}"),
    };
    let u32at = |o: usize| {
        let a: [u8; 4] = b[o..o + 4].try_into().unwrap();
        if be {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        }
    };
    let mut out = Vec::new();
    let mut p = 0;
    while p < b.len() {
        let typ = u32at(p);
        let len = u32at(p + 4) as usize;
        assert_eq!(len % 4, 0);
        assert_eq!(u32at(p + len - 4) as usize, len, "trailing length");
        out.push((typ, b[p + 8..p + len - 4].to_vec()));
        p += len;
    }
    assert_eq!(p, b.len());
    (be, out)
}

fn rd32(be: bool, b: &[u8], o: usize) -> u32 {
    let a: [u8; 4] = b[o..o + 4].try_into().unwrap();
    if be {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

fn rd16(be: bool, b: &[u8], o: usize) -> u16 {
    let a: [u8; 2] = b[o..o + 2].try_into().unwrap();
    if be {
        u16::from_be_bytes(a)
    } else {
        u16::from_le_bytes(a)
    }
}

/// Returns the if_tsresol option value of an IDB body.
fn tsresol(be: bool, idb: &[u8]) -> Option<u8> {
    let mut p = 8;
    while p + 4 <= idb.len() {
        let code = rd16(be, idb, p);
        let len = rd16(be, idb, p + 2) as usize;
        if code == 0 {
            return None;
        }
        if code == 9 {
            assert_eq!(len, 1);
            return Some(idb[p + 4]);
        }
        p += 4 + len.div_ceil(4) * 4;
    }
    None
}

#[test]
fn pcapng_two_interfaces_epb() {
    let fr = frames();
    let buf = write_pcapng_two_interfaces(&fr, Vec::new()).unwrap();
    let (be, bl) = blocks(&buf);
    assert!(!be);
    assert_eq!(bl[0].0, 0x0A0D0D0A);
    assert_eq!((rd16(be, &bl[0].1, 4), rd16(be, &bl[0].1, 6)), (1, 0));
    let idbs: Vec<_> = bl.iter().filter(|b| b.0 == 1).collect();
    assert_eq!(idbs.len(), 2);
    let res: Vec<u8> = idbs.iter().map(|b| tsresol(be, &b.1).unwrap()).collect();
    assert_eq!(res, vec![6, 9]);
    let epbs: Vec<_> = bl.iter().filter(|b| b.0 == 6).collect();
    assert_eq!(epbs.len(), fr.len());
    for (k, (b, (ts, f))) in epbs.iter().zip(&fr).enumerate() {
        let body = &b.1;
        let iface = rd32(be, body, 0);
        assert_eq!(iface as usize, k % 2);
        let t = (rd32(be, body, 4) as u64) << 32 | rd32(be, body, 8) as u64;
        let ns = if iface == 0 { t * 1000 } else { t };
        assert_eq!(ns, if iface == 0 { ts - ts % 1000 } else { *ts });
        let cap = rd32(be, body, 12) as usize;
        assert_eq!(rd32(be, body, 16) as usize, f.len());
        assert_eq!(&body[20..20 + cap], &f[..]);
    }
}

#[test]
fn pcapng_big_endian_spb_with_snaplen() {
    let fr = frames();
    let opts = PcapngOptions {
        endian: Endian::Big,
        interfaces: vec![PcapngInterface {
            snaplen: 200,
            tsresol: 9,
            name: Some("mon0".into()),
            ..Default::default()
        }],
        block: PcapngBlock::Spb,
    };
    let buf = write_pcapng(&fr, &opts, Vec::new()).unwrap();
    let (be, bl) = blocks(&buf);
    assert!(be);
    let spbs: Vec<_> = bl.iter().filter(|b| b.0 == 3).collect();
    assert_eq!(spbs.len(), fr.len());
    for (b, (_, f)) in spbs.iter().zip(&fr) {
        assert_eq!(rd32(be, &b.1, 0) as usize, f.len());
        let cap = f.len().min(200);
        assert!(b.1.len() >= 4 + cap && b.1.len() < 4 + cap + 4);
        assert_eq!(&b.1[4..4 + cap], &f[..cap]);
    }
    let idb = bl.iter().find(|b| b.0 == 1).unwrap();
    assert_eq!(rd16(be, &idb.1, 0), 1);
    assert_eq!(rd32(be, &idb.1, 4), 200);
}

#[test]
fn linktype_conversions() {
    let fr = frames();
    let ip_frames: Vec<&(u64, Vec<u8>)> = fr
        .iter()
        .filter(|(_, f)| f[12..14] == [8, 0] || f[12..14] == [0x86, 0xdd])
        .collect();
    let v4 = ip_frames.iter().filter(|f| f.1[12] == 8).count();
    assert!(ip_frames.len() < fr.len(), "some VLAN/MPLS frames expected");

    let raw = convert_frames(&fr, LinkType::RawIp);
    assert_eq!(raw.len(), ip_frames.len());
    for ((_, r), (_, f)) in raw.iter().zip(&ip_frames) {
        assert_eq!(&r[..], &f[14..]);
        assert!(r[0] >> 4 == 4 || r[0] >> 4 == 6);
    }
    let only4 = convert_frames(&fr, LinkType::Ipv4);
    assert_eq!(only4.len(), v4);
    assert!(only4.iter().all(|(_, r)| r[0] >> 4 == 4));
    let only6 = convert_frames(&fr, LinkType::Ipv6);
    assert_eq!(only6.len(), ip_frames.len() - v4);
    assert!(only6.iter().all(|(_, r)| r[0] >> 4 == 6));

    let sll = convert_frames(&fr, LinkType::LinuxSll);
    assert_eq!(sll.len(), fr.len());
    for ((_, s), (_, f)) in sll.iter().zip(&fr) {
        assert_eq!(&s[2..4], &[0, 1]);
        assert_eq!(&s[4..6], &[0, 6]);
        assert_eq!(&s[6..12], &f[6..12]);
        assert_eq!(&s[14..16], &f[12..14]);
        assert_eq!(&s[16..], &f[14..]);
    }
    let sll2 = convert_frames(&fr, LinkType::LinuxSll2);
    assert_eq!(sll2.len(), fr.len());
    for ((_, s), (_, f)) in sll2.iter().zip(&fr) {
        assert_eq!(&s[0..2], &f[12..14]);
        assert_eq!(&s[8..10], &[0, 1]);
        assert_eq!(s[11], 6);
        assert_eq!(&s[20..], &f[14..]);
    }
    for (af6, be) in [(24u32, false), (28, false), (30, true)] {
        let null = convert_frames(
            &fr,
            LinkType::Null {
                af_inet6: af6,
                big_endian: be,
            },
        );
        assert_eq!(null.len(), ip_frames.len());
        for ((_, n), (_, f)) in null.iter().zip(&ip_frames) {
            let af = rd32(be, n, 0);
            assert_eq!(af, if f[12] == 8 { 2 } else { af6 });
            assert_eq!(&n[4..], &f[14..]);
        }
    }
    let lo = convert_frames(&fr, LinkType::Loop { af_inet6: 24 });
    for ((_, n), (_, f)) in lo.iter().zip(&ip_frames) {
        let af = u32::from_be_bytes(n[0..4].try_into().unwrap());
        assert_eq!(af, if f[12] == 8 { 2 } else { 24 });
    }
    // The converted frames go into a pcap with the matching link type.
    let lt = LinkType::LinuxSll2;
    let opts = PcapOptions {
        linktype: lt.dlt(),
        ..Default::default()
    };
    let buf = write_pcap(&sll2, &opts, Vec::new()).unwrap();
    let (_, _, _, linktype, recs) = read_pcap(&buf);
    assert_eq!((linktype, recs.len()), (276, sll2.len()));
    assert_eq!(
        [0u32, 1, 101, 108, 113, 228, 229, 276],
        [
            LinkType::Null {
                af_inet6: 24,
                big_endian: false
            }
            .dlt(),
            LinkType::Ethernet.dlt(),
            LinkType::RawIp.dlt(),
            LinkType::Loop { af_inet6: 24 }.dlt(),
            LinkType::LinuxSll.dlt(),
            LinkType::Ipv4.dlt(),
            LinkType::Ipv6.dlt(),
            LinkType::LinuxSll2.dlt(),
        ]
    );
    assert!(convert_linktype(&[0u8; 10], LinkType::RawIp).is_none());
}

#[test]
fn checker_detects_corruption() {
    // Guards the test decoder itself: a flipped payload byte must fail.
    let fr = frames();
    let (ts, f) = fr
        .iter()
        .find(|(_, f)| f.len() > 200 && f[12..14] == [8, 0] && f[23] == 6)
        .unwrap();
    let mut bad = f.clone();
    let n = bad.len();
    bad[n - 1] ^= 0x5a;
    assert!(Decoder::default().frame(*ts, f).is_ok());
    assert!(Decoder::default().frame(*ts, &bad).is_err());
}
