use crate::decode::{decode, decode_ip, LinkType};
use crate::defrag::{DefragConfig, DefragOutcome, Defragmenter};
use crate::packet::*;
use crate::testutil::*;

const SEC: u64 = 1_000_000_000;

fn decoded(link: LinkType, frame: &[u8]) -> DecodedPacket {
    let mut p = DecodedPacket::default();
    decode(link, frame, &mut p);
    assert!(p.is_fragment(), "{p:?}");
    p
}

/// Feeds raw IPv4/IPv6 fragments; returns the reassembled datagram (and its counters) if any.
fn feed(
    d: &mut Defragmenter,
    ts: u64,
    link: LinkType,
    frames: &[Vec<u8>],
) -> Option<(Vec<u8>, u32, u64)> {
    let mut result = None;
    for f in frames {
        let mut p = decoded(link, f);
        if let DefragOutcome::Reassembled {
            datagram,
            fragments,
            frame_bytes,
        } = d.process(ts, &mut p, f)
        {
            assert!(result.is_none(), "reassembled twice");
            result = Some((datagram.to_vec(), fragments, frame_bytes));
        }
    }
    result
}

fn tcp_dgram(payload_len: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..payload_len).map(|i| i as u8).collect();
    ipv4_full(
        6,
        V4_A,
        V4_B,
        0x4242,
        0,
        &[],
        &tcp(40000, 80, 1, TCP_ACK | TCP_PSH, &[], &payload),
    )
}

#[test]
fn ipv4_in_order_and_out_of_order() {
    let dgram = tcp_dgram(100);
    let frags = fragment_ipv4(&dgram, &[32, 32, 32]);
    assert_eq!(frags.len(), 4);
    let frame_bytes: u64 = frags.iter().map(|f| f.len() as u64).sum();

    let mut d = Defragmenter::new(DefragConfig::default());
    let (out, n, bytes) = feed(&mut d, 0, LinkType::Ipv4, &frags).expect("complete");
    assert_eq!(out, dgram, "rebuilt header and payload match the original");
    assert_eq!((n, bytes), (4, frame_bytes));
    assert_eq!(csum(&out[..20]), 0, "header checksum valid");

    let mut rev = frags.clone();
    rev.reverse();
    rev.swap(0, 2);
    let (out, _, _) = feed(&mut d, SEC, LinkType::Ipv4, &rev).expect("complete");
    assert_eq!(out, dgram);

    let s = d.stats();
    assert_eq!(
        (s.ipv4_fragments, s.ipv4_reassembled, s.overlaps),
        (8, 2, 0)
    );
    assert_eq!((s.memuse_bytes, d.pending()), (0, 0));

    let mut p = DecodedPacket::default();
    decode_ip(&out, &mut p);
    assert_eq!(p.anomaly_count, 0);
    assert_eq!(
        (p.ports(), p.payload_len, p.l3.fragment),
        (Some((40000, 80)), 100, None)
    );
}

#[test]
fn ipv4_options_header_is_kept() {
    let opts = [1, 148, 4, 0, 0, 0, 0, 0];
    let dgram = ipv4_full(17, V4_A, V4_B, 9, 0, &opts, &udp(1, 2, &[5u8; 50]));
    let frags = fragment_ipv4(&dgram, &[24]);
    let mut d = Defragmenter::new(DefragConfig::default());
    let (out, _, _) = feed(&mut d, 0, LinkType::Ipv4, &frags).expect("complete");
    assert_eq!(out, dgram);
}

#[test]
fn duplicates_and_overlaps_are_flagged() {
    let dgram = tcp_dgram(64);
    let frags = fragment_ipv4(&dgram, &[40, 24]);
    let mut d = Defragmenter::new(DefragConfig::default());

    // Exact duplicate of the first fragment.
    let dup = vec![
        frags[0].clone(),
        frags[0].clone(),
        frags[1].clone(),
        frags[2].clone(),
    ];
    let (out, n, _) = feed(&mut d, 0, LinkType::Ipv4, &dup).expect("complete");
    assert_eq!((out, n), (dgram.clone(), 4));
    // Suricata flags a duplicate as an overlap too.
    assert_eq!(d.stats().overlaps, 1);

    // A second copy of fragment 2 with different bytes arrives before the last one.
    let mut evil = frags[1].clone();
    let last = evil.len() - 1;
    evil[last] ^= 0xff;
    let mut p0 = decoded(LinkType::Ipv4, &frags[0]);
    assert!(matches!(
        d.process(SEC, &mut p0, &frags[0]),
        DefragOutcome::Held
    ));
    let mut p1 = decoded(LinkType::Ipv4, &frags[1]);
    assert!(matches!(
        d.process(SEC, &mut p1, &frags[1]),
        DefragOutcome::Held
    ));
    let mut pe = decoded(LinkType::Ipv4, &evil);
    assert!(matches!(
        d.process(SEC, &mut pe, &evil),
        DefragOutcome::Held
    ));
    assert!(pe
        .anomalies()
        .any(|a| a.event == "decoder.ipv4.frag_overlap" && a.layer == "ipv4"));
    let mut p2 = decoded(LinkType::Ipv4, &frags[2]);
    let DefragOutcome::Reassembled { datagram, .. } = d.process(SEC, &mut p2, &frags[2]) else {
        panic!("not reassembled");
    };
    assert_eq!(datagram, &dgram[..], "first copy wins");
    assert_eq!(d.stats().overlaps, 2);
}

#[test]
fn partial_overlap_fills_only_gaps() {
    // Fragments [0,24) and [16,48) overlap by 8 identical bytes; then [40,end) overlaps too.
    let dgram = tcp_dgram(60);
    let payload = &dgram[20..];
    let mk = |off: usize, end: usize, mf: bool| {
        let field = (off / 8) as u16 | if mf { 0x2000 } else { 0 };
        ipv4_full(6, V4_A, V4_B, 0x4242, field, &[], &payload[off..end])
    };
    let frames = vec![
        mk(16, 48, true),
        mk(0, 24, true),
        mk(40, payload.len(), false),
    ];
    let mut d = Defragmenter::new(DefragConfig::default());
    let (out, _, _) = feed(&mut d, 0, LinkType::Ipv4, &frames).expect("complete");
    assert_eq!(out, dgram);
    // Both later fragments overlap what was held, identical bytes or not.
    assert_eq!(d.stats().overlaps, 2);
}

#[test]
fn timeouts_expire_datagrams() {
    let frags = fragment_ipv4(&tcp_dgram(64), &[32]);
    let cfg = DefragConfig {
        timeout_ns: 10 * SEC,
        ..DefragConfig::default()
    };
    let mut d = Defragmenter::new(cfg);
    let mut p = decoded(LinkType::Ipv4, &frags[0]);
    assert!(matches!(
        d.process(0, &mut p, &frags[0]),
        DefragOutcome::Held
    ));
    assert!(d.stats().memuse_bytes > 0);
    d.expire(5 * SEC);
    assert_eq!(d.pending(), 1);
    d.expire(11 * SEC);
    assert_eq!(
        (d.pending(), d.stats().timeouts, d.stats().memuse_bytes),
        (0, 1, 0)
    );

    // Lazily, in `process`: the stale first half never completes the datagram.
    let mut p = decoded(LinkType::Ipv4, &frags[0]);
    assert!(matches!(
        d.process(20 * SEC, &mut p, &frags[0]),
        DefragOutcome::Held
    ));
    let mut p = decoded(LinkType::Ipv4, &frags[1]);
    assert!(matches!(
        d.process(40 * SEC, &mut p, &frags[1]),
        DefragOutcome::Held
    ));
    assert_eq!(d.stats().timeouts, 2);
}

#[test]
fn memcap_and_fragment_limits() {
    let cfg = DefragConfig {
        memcap_bytes: 2000,
        ..DefragConfig::default()
    };
    let mut d = Defragmenter::new(cfg);
    let mut dropped = 0;
    for id in 0..50u16 {
        let dgram = ipv4_full(17, V4_A, V4_B, id, 0, &[], &udp(1, 2, &[0u8; 200]));
        let f = &fragment_ipv4(&dgram, &[104])[0];
        let mut p = decoded(LinkType::Ipv4, f);
        if matches!(d.process(0, &mut p, f), DefragOutcome::Dropped) {
            dropped += 1;
        }
        assert!(d.stats().memuse_bytes <= 2000);
    }
    assert!(dropped > 0);
    assert_eq!(d.stats().memcap_drops, dropped);

    let cfg = DefragConfig {
        max_fragments: 4,
        ..DefragConfig::default()
    };
    let mut d = Defragmenter::new(cfg);
    let frags = fragment_ipv4(&tcp_dgram(200), &[8; 30]);
    let mut outcomes = Vec::new();
    for f in &frags[..6] {
        let mut p = decoded(LinkType::Ipv4, f);
        outcomes.push(matches!(d.process(0, &mut p, f), DefragOutcome::Dropped));
    }
    assert_eq!(outcomes, [false, false, false, false, true, false]);
    assert_eq!(d.stats().max_frags_reached, 1);
}

#[test]
fn oversized_datagram_is_dropped() {
    let mut d = Defragmenter::new(DefragConfig::default());
    // Offset 65528 (8191 units) with 16 bytes of data: beyond 65535.
    let f = ipv4_full(17, V4_A, V4_B, 1, 0x1fff, &[], &[0u8; 16]);
    let mut p = decoded(LinkType::Ipv4, &f);
    assert!(matches!(d.process(0, &mut p, &f), DefragOutcome::Dropped));
    assert!(p
        .anomalies()
        .any(|a| a.event == "decoder.ipv4.frag_pkt_too_large"));
    assert_eq!(d.pending(), 0);

    let pkt = ipv6(17, V6_A, V6_B, &[0u8; 64]);
    let mut f6 = fragment_ipv6(&pkt, 0, 3, &[])[0].clone();
    f6[42..44].copy_from_slice(&0xfff8u16.to_be_bytes());
    let mut p = decoded(LinkType::Ipv6, &f6);
    assert!(matches!(d.process(0, &mut p, &f6), DefragOutcome::Dropped));
    assert!(p
        .anomalies()
        .any(|a| a.event == "decoder.ipv6.frag_pkt_too_large"));
}

#[test]
fn ipv6_reassembly_splices_out_the_fragment_header() {
    // Destination options stay in the unfragmentable part; UDP is fragmented.
    let pkt = ipv6(
        60,
        V6_A,
        V6_B,
        &ipv6_ext(17, 0, &udp(5000, 53, &[3u8; 100])),
    );
    let frags = fragment_ipv6(&pkt, 8, 0x0102_0304, &[48, 24]);
    assert_eq!(frags.len(), 3);
    let mut d = Defragmenter::new(DefragConfig::default());
    let mut shuffled = frags.clone();
    shuffled.rotate_left(1);
    let (out, n, _) = feed(&mut d, 0, LinkType::Ipv6, &shuffled).expect("complete");
    assert_eq!(out, pkt);
    assert_eq!(n, 3);
    assert_eq!(d.stats().ipv6_reassembled, 1);

    // Without extension headers: the IPv6 header's own next-header is fixed.
    let pkt = ipv6(6, V6_A, V6_B, &tcp(1, 2, 3, TCP_ACK, &[], &[1u8; 80]));
    let frags = fragment_ipv6(&pkt, 0, 7, &[40]);
    let (out, _, _) = feed(&mut d, 0, LinkType::Ipv6, &frags).expect("complete");
    assert_eq!(out, pkt);
    let mut p = DecodedPacket::default();
    decode_ip(&out, &mut p);
    assert_eq!((p.ports(), p.payload_len), (Some((1, 2)), 80));

    // Differing overlap in IPv6.
    let mut evil = frags[0].clone();
    let last = evil.len() - 1;
    evil[last] ^= 1;
    let mut p = decoded(LinkType::Ipv6, &frags[0]);
    d.process(0, &mut p, &frags[0]);
    let mut p = decoded(LinkType::Ipv6, &evil);
    d.process(0, &mut p, &evil);
    assert!(p
        .anomalies()
        .any(|a| a.event == "decoder.ipv6.frag_overlap"));
}

#[test]
fn fragments_inside_gre_stay_in_their_tunnel() {
    let inner = tcp_dgram(120);
    let frames: Vec<Vec<u8>> = fragment_ipv4(&inner, &[64])
        .into_iter()
        .map(|f| {
            eth(
                0x8100,
                &vlan_tag(
                    7,
                    0x0800,
                    &ipv4(47, V4_C, V4_D, &gre(0, 0x0800, Some(5), None, &f)),
                ),
            )
        })
        .collect();
    let mut d = Defragmenter::new(DefragConfig::default());
    // The same fragment id outside the tunnel must not mix in.
    let plain = fragment_ipv4(&tcp_dgram(120), &[64]);
    let mut p = decoded(LinkType::Ipv4, &plain[1]);
    assert!(matches!(
        d.process(0, &mut p, &plain[1]),
        DefragOutcome::Held
    ));

    let mut result = None;
    for f in &frames {
        let mut p = decoded(LinkType::Ethernet, f);
        assert_eq!(
            (p.tunnel.kind, p.tunnel.id, p.vlans()),
            (TunnelKind::Gre, 5, &[7u16][..])
        );
        if let DefragOutcome::Reassembled { datagram, .. } = d.process(0, &mut p, f) {
            let dg = datagram.to_vec();
            decode_ip(&dg, &mut p);
            result = Some((p, dg));
        }
    }
    let (p, dg) = result.expect("reassembled");
    assert_eq!(dg, inner);
    assert_eq!(
        (p.tunnel.kind, p.tunnel.depth, p.tunnel.id),
        (TunnelKind::Gre, 1, 5)
    );
    assert_eq!(p.tunnel.outer_src, std::net::IpAddr::from(V4_C));
    assert_eq!(p.vlans(), &[7]);
    assert_eq!((p.ports(), p.payload_len), (Some((40000, 80)), 120));
    assert_eq!(d.pending(), 1, "the plain fragment is still waiting");
}

#[test]
fn fragmented_vxlan_continues_into_the_tunnel() {
    let inner = eth(0x0800, &ipv4_tcp(&[0xab; 200]));
    let outer = ipv4_full(
        17,
        V4_C,
        V4_D,
        0x77,
        0,
        &[],
        &udp(1, 4789, &vxlan(0x55, &inner)),
    );
    let frames: Vec<Vec<u8>> = fragment_ipv4(&outer, &[128])
        .into_iter()
        .map(|f| eth(0x0800, &f))
        .collect();
    let mut d = Defragmenter::new(DefragConfig::default());
    let mut result = None;
    for f in &frames {
        let mut p = decoded(LinkType::Ethernet, f);
        assert_eq!(p.tunnel.depth, 0, "no decapsulation of a fragment");
        if let DefragOutcome::Reassembled { datagram, .. } = d.process(0, &mut p, f) {
            decode_ip(datagram, &mut p);
            result = Some(p);
        }
    }
    let p = result.expect("reassembled");
    assert_eq!(
        (p.tunnel.kind, p.tunnel.id, p.tunnel.outer_dst_port),
        (TunnelKind::Vxlan, 0x55, 4789)
    );
    assert_eq!((p.ports(), p.payload_len), (Some((40000, 80)), 200));
}

#[test]
fn random_fragment_streams_never_panic() {
    let mut rng = Rng(12345);
    let cfg = DefragConfig {
        memcap_bytes: 64 << 10,
        max_fragments: 16,
        timeout_ns: SEC,
    };
    let mut d = Defragmenter::new(cfg);
    let mut p = DecodedPacket::default();
    for i in 0..20_000u64 {
        let len = 8 * (1 + rng.below(20));
        let off = 8 * rng.below(16) as u16;
        let mf = if rng.below(3) == 0 { 0 } else { 0x2000 };
        let mut data = vec![0u8; len];
        for b in data.iter_mut() {
            *b = (rng.next() % 3) as u8;
        }
        let f = ipv4_full(17, V4_A, V4_B, rng.below(4) as u16, off | mf, &[], &data);
        decode(LinkType::Ipv4, &f, &mut p);
        if !p.is_fragment() {
            continue;
        }
        if let DefragOutcome::Reassembled { datagram, .. } = d.process(i * 1000, &mut p, &f) {
            let dg = datagram.to_vec();
            assert_eq!(csum(&dg[..20]), 0);
            assert_eq!(usize::from(u16::from_be_bytes([dg[2], dg[3]])), dg.len());
            decode_ip(&dg, &mut p);
        }
        assert!(d.stats().memuse_bytes <= 64 << 10);
    }
    d.expire(u64::MAX);
    assert_eq!((d.pending(), d.stats().memuse_bytes), (0, 0));
}
