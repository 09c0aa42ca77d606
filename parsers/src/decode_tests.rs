use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::decode::{decode, decode_ip, LinkType, ETHER_8023_LENGTH_FRAME, MAX_TUNNEL_DEPTH};
use crate::packet::*;
use crate::testutil::*;

fn dec(link: LinkType, data: &[u8]) -> DecodedPacket {
    let mut p = DecodedPacket::default();
    decode(link, data, &mut p);
    check_bounds(&p, data.len());
    p
}

fn events(p: &DecodedPacket) -> Vec<&'static str> {
    p.anomalies().map(|a| a.event).collect()
}

fn has(p: &DecodedPacket, event: &str) -> bool {
    p.anomalies().any(|a| a.event == event)
}

/// Offsets must always stay inside the captured bytes.
fn check_bounds(p: &DecodedPacket, len: usize) {
    assert!(
        p.payload_offset as usize + p.payload_len as usize <= len,
        "{p:?}"
    );
    if let Some(f) = p.l3.fragment {
        assert!(f.data_offset as usize + f.data_len as usize <= len, "{p:?}");
    }
}

fn v4(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

fn v6(a: [u8; 16]) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(a))
}

fn tcp_info(p: &DecodedPacket) -> TcpInfo {
    match p.l4 {
        L4::Tcp(t) => t,
        other => panic!("not TCP: {other:?} {p:?}"),
    }
}

#[test]
fn ethernet_ipv4_tcp_syn_with_options() {
    let seg = tcp(
        40000,
        80,
        1000,
        TCP_SYN | TCP_ECE | TCP_CWR,
        &syn_options(),
        b"",
    );
    let mut frame = eth(0x0800, &ipv4(6, V4_A, V4_B, &seg));
    frame.extend_from_slice(&[0; 6]); // Ethernet padding must not become payload
    let p = dec(LinkType::Ethernet, &frame);
    assert_eq!(p.kind, PacketKind::Ip);
    assert_eq!(p.anomaly_count, 0, "{:?}", events(&p));
    assert_eq!((p.l3.version, p.l3.src, p.l3.dst), (4, v4(V4_A), v4(V4_B)));
    assert_eq!(
        (p.l3.proto, p.l3.ttl, p.l3.ip_id, p.l3.header_offset),
        (6, 64, 0x1234, 14)
    );
    assert_eq!(p.l3.datagram_len, 20 + 40);
    assert!(p.l3.fragment.is_none());
    let t = tcp_info(&p);
    assert_eq!(
        (t.src_port, t.dst_port, t.seq, t.ack),
        (40000, 80, 1000, 0x0102_0304)
    );
    assert_eq!(t.flags, TCP_SYN | TCP_ECE | TCP_CWR);
    assert_eq!((t.window, t.header_len), (65535, 40));
    assert_eq!(t.mss, Some(1460));
    assert_eq!(t.window_scale, Some(7));
    assert!(t.sack_permitted);
    assert_eq!(t.timestamp, Some((1, 2)));
    assert_eq!((p.payload_offset, p.payload_len), (14 + 20 + 40, 0));
    assert_eq!(p.ports(), Some((40000, 80)));
}

#[test]
fn tcp_payload_offsets_and_bad_options() {
    let frame = eth(0x0800, &ipv4_tcp(b"hello"));
    let p = dec(LinkType::Ethernet, &frame);
    let off = p.payload_offset as usize;
    assert_eq!(&frame[off..off + p.payload_len as usize], b"hello");

    // MSS with length 3, then an option running past the header.
    let bad = tcp(1, 2, 0, TCP_SYN, &[2, 3, 0, 1, 0x22, 9, 0, 0], b"");
    let p = dec(LinkType::Ipv4, &ipv4(6, V4_A, V4_B, &bad));
    assert!(has(&p, "decoder.tcp.opt_invalid_len"), "{:?}", events(&p));
    assert_eq!(tcp_info(&p).mss, None);
    // Unknown options (e.g. TFO cookie, kind 34) are skipped quietly.
    let tfo = tcp(1, 2, 0, TCP_SYN, &[34, 2, 2, 4, 0x05, 0xb4, 1, 1], b"");
    let p = dec(LinkType::Ipv4, &ipv4(6, V4_A, V4_B, &tfo));
    assert_eq!(p.anomaly_count, 0, "{:?}", events(&p));
    assert_eq!(tcp_info(&p).mss, Some(1460));
    // Duplicate MSS.
    let dup = tcp(1, 2, 0, TCP_SYN, &[2, 4, 0, 1, 2, 4, 0, 2], b"");
    let p = dec(LinkType::Ipv4, &ipv4(6, V4_A, V4_B, &dup));
    assert!(has(&p, "decoder.tcp.opt_duplicate"));
}

#[test]
fn tcp_header_errors() {
    let mut seg = tcp(1, 2, 0, TCP_ACK, &[], b"");
    seg[12] = 0x40; // data offset 4 words
    let p = dec(LinkType::Ipv4, &ipv4(6, V4_A, V4_B, &seg));
    assert_eq!(events(&p), ["decoder.tcp.hlen_too_small"]);
    let p = dec(LinkType::Ipv4, &ipv4(6, V4_A, V4_B, &seg[..10]));
    assert_eq!(events(&p), ["decoder.tcp.pkt_too_small"]);
    assert_eq!(p.kind, PacketKind::Ip);
    assert_eq!(p.l4, L4::None);
}

#[test]
fn link_types() {
    let ip = ipv4_tcp(b"x");
    let ip6 = ipv6(17, V6_A, V6_B, &udp(53, 5353, b"q"));
    assert_eq!(tcp_info(&dec(LinkType::Raw, &ip)).dst_port, 80);
    assert_eq!(dec(LinkType::Raw, &ip6).ports(), Some((53, 5353)));
    assert_eq!(dec(LinkType::Ipv4, &ip).l3.version, 4);
    assert_eq!(dec(LinkType::Ipv6, &ip6).l3.version, 6);
    assert_eq!(
        events(&dec(LinkType::Raw, &[0x50; 30])),
        ["decoder.ipraw.invalid_ip_version"]
    );
    assert_eq!(
        events(&dec(LinkType::Raw, &[])),
        ["decoder.ipraw.invalid_ip_version"]
    );

    let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00];
    sll.extend_from_slice(&ip);
    let p = dec(LinkType::LinuxSll, &sll);
    assert_eq!((p.l3.header_offset, p.ports()), (16, Some((40000, 80))));
    assert_eq!(
        events(&dec(LinkType::LinuxSll, &sll[..15])),
        ["decoder.sll.pkt_too_small"]
    );

    let mut sll2 = vec![
        0x86, 0xdd, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0,
    ];
    sll2.extend_from_slice(&ip6);
    let p = dec(LinkType::LinuxSll2, &sll2);
    assert_eq!((p.l3.version, p.l3.header_offset), (6, 20));
    assert_eq!(
        events(&dec(LinkType::LinuxSll2, &sll2[..19])),
        ["decoder.sll.pkt_too_small"]
    );

    // Null: little-endian (captured on x86) and big-endian hosts; IPv6 AF values vary by OS.
    for hdr in [[2, 0, 0, 0], [0, 0, 0, 2]] {
        let p = dec(LinkType::Null, &cat(&[&hdr, &ip]));
        assert_eq!((p.l3.version, p.l3.header_offset), (4, 4));
    }
    for af in [24u32, 28, 30] {
        let p = dec(LinkType::Null, &cat(&[&af.to_le_bytes(), &ip6]));
        assert_eq!(p.l3.version, 6);
        let p = dec(LinkType::Loop, &cat(&[&af.to_be_bytes(), &ip6]));
        assert_eq!(p.l3.version, 6);
    }
    assert_eq!(
        dec(LinkType::Loop, &cat(&[&[0, 0, 0, 2], &ip])).l3.version,
        4
    );
    let p = dec(LinkType::Null, &cat(&[&[7, 0, 0, 0], &ip]));
    assert_eq!(events(&p), ["decoder.ltnull.unsupported_type"]);
    assert_eq!(
        events(&dec(LinkType::Null, &[2, 0])),
        ["decoder.ltnull.pkt_too_small"]
    );

    let p = dec(LinkType::from_pcap(147), &ip);
    assert_eq!(p.kind, PacketKind::Unknown);
    assert_eq!(
        p.anomalies().next().map(|a| (a.layer, a.event)),
        Some(("link", "decoder.unknown_linktype"))
    );
}

#[test]
fn ethernet_non_ip() {
    let p = dec(LinkType::Ethernet, &eth(0x0806, &[0; 28]));
    assert_eq!(p.kind, PacketKind::Arp);
    let p = dec(LinkType::Ethernet, &eth(0x88cc, &[0; 30]));
    assert_eq!(p.kind, PacketKind::OtherEthertype(0x88cc));
    // 802.3 frame with LLC (STP): the type field is a length.
    let p = dec(LinkType::Ethernet, &eth(0x0026, &[0x42, 0x42, 0x03, 0, 0]));
    assert_eq!(p.kind, PacketKind::OtherEthertype(ETHER_8023_LENGTH_FRAME));
    assert_eq!(p.anomaly_count, 0);
    let p = dec(LinkType::Ethernet, &[0; 13]);
    assert_eq!(events(&p), ["decoder.ethernet.pkt_too_small"]);
    assert_eq!(p.kind, PacketKind::Unknown);
}

#[test]
fn vlan_stacks() {
    let ip = ipv4_tcp(b"");
    let p = dec(
        LinkType::Ethernet,
        &eth(0x8100, &vlan_tag(0x2064, 0x0800, &ip)),
    );
    assert_eq!((p.vlans(), p.l3.header_offset), (&[100u16][..], 18));
    assert_eq!(p.ports(), Some((40000, 80)));

    let qinq = eth(0x88a8, &vlan_tag(10, 0x8100, &vlan_tag(20, 0x0800, &ip)));
    let p = dec(LinkType::Ethernet, &qinq);
    assert_eq!(p.vlans(), &[10, 20]);
    assert_eq!(p.kind, PacketKind::Ip);

    let three = eth(
        0x9100,
        &vlan_tag(1, 0x88a8, &vlan_tag(2, 0x8100, &vlan_tag(3, 0x0800, &ip))),
    );
    let p = dec(LinkType::Ethernet, &three);
    assert_eq!(p.vlans(), &[1, 2, 3]);
    assert_eq!(p.anomaly_count, 0);

    let four = eth(
        0x8100,
        &vlan_tag(
            1,
            0x8100,
            &vlan_tag(2, 0x8100, &vlan_tag(3, 0x8100, &vlan_tag(4, 0x0800, &ip))),
        ),
    );
    let p = dec(LinkType::Ethernet, &four);
    assert_eq!(events(&p), ["decoder.vlan.too_many_layers"]);
    assert_eq!(p.kind, PacketKind::Unknown);

    let p = dec(LinkType::Ethernet, &eth(0x8100, &[0, 1, 8]));
    assert_eq!(events(&p), ["decoder.vlan.header_too_small"]);
}

fn mpls_label(label: u32, bos: bool) -> [u8; 4] {
    ((label << 12) | if bos { 0x100 } else { 0 } | 64).to_be_bytes()
}

#[test]
fn mpls_stacks() {
    let ip = ipv4_tcp(b"");
    let frame = eth(
        0x8847,
        &cat(&[&mpls_label(100, false), &mpls_label(200, true), &ip]),
    );
    let p = dec(LinkType::Ethernet, &frame);
    assert_eq!((p.mpls_labels, p.l3.header_offset), (2, 22));
    assert_eq!(p.ports(), Some((40000, 80)));

    let ip6 = ipv6(6, V6_A, V6_B, &tcp(1, 2, 3, TCP_SYN, &[], b""));
    let p = dec(
        LinkType::Ethernet,
        &eth(0x8848, &cat(&[&mpls_label(2, true), &ip6])),
    );
    assert_eq!((p.mpls_labels, p.l3.version), (1, 6));

    // Ethernet pseudowire: control word of zeros, then a frame.
    let pw = cat(&[&mpls_label(300, true), &[0, 0, 0, 0], &eth(0x0800, &ip)]);
    let p = dec(LinkType::Ethernet, &eth(0x8847, &pw));
    assert_eq!((p.mpls_labels, p.l3.header_offset), (1, 14 + 4 + 4 + 14));

    let p = dec(LinkType::Ethernet, &eth(0x8847, &mpls_label(5, false)));
    assert_eq!(events(&p), ["decoder.mpls.header_too_small"]);
    let p = dec(
        LinkType::Ethernet,
        &eth(0x8847, &cat(&[&mpls_label(5, true), &[0x90; 30]])),
    );
    assert_eq!(events(&p), ["decoder.mpls.unknown_payload_type"]);
}

#[test]
fn pppoe_session() {
    let ip = ipv4_tcp(b"");
    let mut hdr = vec![0x11, 0, 0x12, 0x34];
    hdr.extend_from_slice(&((ip.len() + 2) as u16).to_be_bytes());
    hdr.extend_from_slice(&[0x00, 0x21]);
    let p = dec(LinkType::Ethernet, &eth(0x8864, &cat(&[&hdr, &ip])));
    assert_eq!((p.l3.header_offset, p.ports()), (22, Some((40000, 80))));
    let p = dec(LinkType::Ethernet, &eth(0x8864, &hdr[..5]));
    assert_eq!(events(&p), ["decoder.pppoe.pkt_too_small"]);
}

#[test]
fn ipv4_options_bitmask() {
    // NOP, router alert (4), record route (7 bytes), EOL + padding.
    let opts = [1, 148, 4, 0, 0, 7, 7, 4, 0, 0, 0, 0, 0, 0, 0, 0];
    let p = dec(
        LinkType::Ipv4,
        &ipv4_full(17, V4_A, V4_B, 1, 0, &opts, &udp(1, 2, b"")),
    );
    assert_eq!(
        p.l3.ip_options,
        IPOPT_NOP | IPOPT_RTRALT | IPOPT_RR | IPOPT_EOL
    );
    assert_eq!(p.anomaly_count, 0, "{:?}", events(&p));
    assert_eq!(p.ports(), Some((1, 2)));

    // Option length running past the header; unknown option type.
    let p = dec(
        LinkType::Ipv4,
        &ipv4_full(17, V4_A, V4_B, 1, 0, &[1, 7, 9, 0], &udp(1, 2, b"")),
    );
    assert!(has(&p, "decoder.ipv4.opt_invalid_len"));
    assert_eq!(p.ports(), Some((1, 2)));
    let p = dec(
        LinkType::Ipv4,
        &ipv4_full(17, V4_A, V4_B, 1, 0, &[99, 4, 0, 0], &udp(1, 2, b"")),
    );
    assert!(has(&p, "decoder.ipv4.opt_invalid"));
    assert_eq!(p.l3.ip_options, IPOPT_OTHER);
}

#[test]
fn ipv4_header_errors() {
    let ip = ipv4_tcp(b"0123456789");
    assert_eq!(
        events(&dec(LinkType::Ipv4, &ip[..19])),
        ["decoder.ipv4.pkt_too_small"]
    );
    let mut bad = ip.clone();
    bad[0] = 0x44;
    assert_eq!(
        events(&dec(LinkType::Ipv4, &bad)),
        ["decoder.ipv4.hlen_too_small"]
    );
    let mut bad = ip.clone();
    bad[0] = 0x55;
    assert_eq!(
        events(&dec(LinkType::Ipv4, &bad)),
        ["decoder.ipv4.wrong_ip_version"]
    );
    let mut bad = ip.clone();
    bad[2..4].copy_from_slice(&19u16.to_be_bytes());
    assert_eq!(
        events(&dec(LinkType::Ipv4, &bad)),
        ["decoder.ipv4.iplen_smaller_than_hlen"]
    );

    // Snapped capture: length field larger than the data; ports still decoded.
    let p = dec(LinkType::Ipv4, &ip[..ip.len() - 4]);
    assert_eq!(events(&p), ["decoder.ipv4.trunc_pkt"]);
    assert_eq!(p.ports(), Some((40000, 80)));
    assert_eq!(p.payload_len, 6);
    assert_eq!(p.l3.datagram_len as usize, ip.len());
}

#[test]
fn ipv6_extension_headers() {
    let seg = tcp(1000, 443, 7, TCP_SYN, &[], b"abc");
    // AH: next header, length in 4-byte units minus 2 (here 16 bytes → 2), then SPI etc.
    let mut ah = vec![6, 2, 0, 0];
    ah.extend_from_slice(&[0; 12]);
    ah.extend_from_slice(&seg);
    // hop-by-hop(8) -> routing(16) -> destination options(8) -> AH(16) -> TCP.
    let dst = ipv6_ext(51, 0, &ah);
    let rt = ipv6_ext(60, 1, &dst);
    let hbh = ipv6_ext(43, 0, &rt);
    let pkt = ipv6(0, V6_A, V6_B, &hbh);
    let p = dec(LinkType::Ipv6, &pkt);
    // The helper's option headers hold nothing but a PadN, which Suricata flags.
    assert_eq!(
        events(&p),
        [
            "decoder.ipv6.hopopts_only_padding",
            "decoder.ipv6.dstopts_only_padding"
        ]
    );
    assert_eq!(p.l3.proto, 6);
    assert_eq!(
        p.l3.ip_options,
        IPV6_EXT_HOPOPTS | IPV6_EXT_ROUTING | IPV6_EXT_DSTOPTS | IPV6_EXT_AUTH
    );
    assert_eq!((p.l3.src, p.l3.dst), (v6(V6_A), v6(V6_B)));
    assert_eq!(p.ports(), Some((1000, 443)));
    let off = p.payload_offset as usize;
    assert_eq!(&pkt[off..off + p.payload_len as usize], b"abc");

    // Extension header cut short by the payload length.
    let mut short = ipv6(0, V6_A, V6_B, &ipv6_ext(6, 1, &[]));
    short[5] = 10;
    short.truncate(50);
    let p = dec(LinkType::Ipv6, &short);
    assert_eq!(events(&p), ["decoder.ipv6.trunc_exthdr"]);
    assert_eq!(p.l4, L4::None);

    // Payload length beyond the capture.
    let full = ipv6(17, V6_A, V6_B, &udp(1, 2, b"0123456789"));
    let p = dec(LinkType::Ipv6, &full[..full.len() - 3]);
    // The snaplen cut is reported once, at the IP layer; UDP decodes what is there.
    assert_eq!(events(&p), ["decoder.ipv6.trunc_pkt"]);
    assert_eq!(p.ports(), Some((1, 2)));

    let mut bad = full.clone();
    bad[0] = 0x40;
    assert_eq!(
        events(&dec(LinkType::Ipv6, &bad)),
        ["decoder.ipv6.wrong_ip_version"]
    );
    assert_eq!(
        events(&dec(LinkType::Ipv6, &full[..39])),
        ["decoder.ipv6.pkt_too_small"]
    );

    // A long chain of destination options is cut off at the walk bound.
    let mut chain = udp(1, 2, b"");
    let mut nh = 17;
    for _ in 0..40 {
        // A router alert option and two Pad1: more than padding, so no event of its own.
        let mut h = vec![nh, 0, 5, 2, 0, 0, 0, 0];
        h.extend_from_slice(&chain);
        chain = h;
        nh = 60;
    }
    let p = dec(LinkType::Ipv6, &ipv6(60, V6_A, V6_B, &chain));
    assert_eq!(events(&p), ["decoder.too_many_layers"]);
}

#[test]
fn ipv4_fragments() {
    let dgram = ipv4_full(17, V4_A, V4_B, 77, 0, &[], &udp(5000, 53, &[7u8; 40]));
    let frags = fragment_ipv4(&dgram, &[24]);
    let p = dec(LinkType::Ipv4, &frags[0]);
    let f = p.l3.fragment.expect("fragment");
    assert_eq!(
        (f.id, f.offset, f.more_fragments, f.payload_proto),
        (77, 0, true, 17)
    );
    assert_eq!(
        (f.data_offset, f.data_len, f.unfragmentable_len),
        (20, 24, 0)
    );
    assert!(p.is_fragment());
    assert_eq!(p.ports(), Some((5000, 53)), "first fragment yields ports");
    assert_eq!(p.anomaly_count, 0, "{:?}", events(&p));

    let p = dec(LinkType::Ipv4, &frags[1]);
    let f = p.l3.fragment.expect("fragment");
    assert_eq!((f.offset, f.more_fragments, f.data_len), (24, false, 24));
    assert_eq!(p.l4, L4::None);
    assert_eq!(p.l3.proto, 17);
}

#[test]
fn ipv6_fragments() {
    let pkt = ipv6(60, V6_A, V6_B, &ipv6_ext(17, 0, &udp(5000, 53, &[9u8; 40])));
    let frags = fragment_ipv6(&pkt, 8, 0xdead_beef, &[24]);
    let p = dec(LinkType::Ipv6, &frags[0]);
    let f = p.l3.fragment.expect("fragment");
    assert_eq!(
        (f.id, f.offset, f.more_fragments, f.payload_proto),
        (0xdead_beef, 0, true, 17)
    );
    assert_eq!(
        (f.unfragmentable_len, f.data_offset, f.data_len),
        (48, 56, 24)
    );
    assert_eq!(p.ports(), Some((5000, 53)));
    assert_eq!(p.l3.ip_id, 0xdead_beef);
    assert_eq!(p.l3.ip_options, IPV6_EXT_DSTOPTS | IPV6_EXT_FRAGMENT);

    let p = dec(LinkType::Ipv6, &frags[1]);
    let f = p.l3.fragment.expect("fragment");
    assert_eq!((f.offset, f.more_fragments, f.data_len), (24, false, 24));
    assert_eq!((p.l4, p.l3.proto), (L4::None, 17));

    // Atomic fragment: decoded as a whole packet.
    let atomic = fragment_ipv6(&ipv6(17, V6_A, V6_B, &udp(1, 2, b"x")), 0, 5, &[]);
    let p = dec(LinkType::Ipv6, &atomic[0]);
    assert!(p.l3.fragment.is_none());
    assert_eq!(p.ports(), Some((1, 2)));
    assert_eq!(events(&p), ["decoder.ipv6.exthdr_useless_fh"]);
}

#[test]
fn udp_icmp_sctp() {
    let p = dec(
        LinkType::Ipv4,
        &ipv4(17, V4_A, V4_B, &udp(1234, 53, b"query")),
    );
    assert_eq!(
        (p.l4, p.payload_len),
        (
            L4::Udp {
                src_port: 1234,
                dst_port: 53
            },
            5
        )
    );
    let p = dec(LinkType::Ipv4, &ipv4(17, V4_A, V4_B, &[0, 53, 0]));
    assert_eq!(events(&p), ["decoder.udp.pkt_too_small"]);

    let echo = [8, 0, 0, 0, 0x12, 0x34, 0, 7, b'p', b'i', b'n', b'g'];
    let p = dec(LinkType::Ipv4, &ipv4(1, V4_A, V4_B, &echo));
    assert_eq!(
        p.l4,
        L4::Icmpv4 {
            icmp_type: 8,
            code: 0,
            id: 0x1234,
            seq: 7
        }
    );
    assert_eq!(p.payload_len, 4);
    let unreach = [3, 3, 0, 0, 0, 0, 0, 0];
    let p = dec(LinkType::Ipv4, &ipv4(1, V4_A, V4_B, &unreach));
    assert_eq!(
        p.l4,
        L4::Icmpv4 {
            icmp_type: 3,
            code: 3,
            id: 0,
            seq: 0
        }
    );
    let p = dec(LinkType::Ipv4, &ipv4(1, V4_A, V4_B, &echo[..7]));
    assert_eq!(events(&p), ["decoder.icmpv4.pkt_too_small"]);

    let echo6 = [129, 0, 0, 0, 0, 9, 0, 1];
    let p = dec(LinkType::Ipv6, &ipv6(58, V6_A, V6_B, &echo6));
    assert_eq!(
        p.l4,
        L4::Icmpv6 {
            icmp_type: 129,
            code: 0,
            id: 9,
            seq: 1
        }
    );
    let p = dec(LinkType::Ipv6, &ipv6(58, V6_A, V6_B, &echo6[..4]));
    assert_eq!(events(&p), ["decoder.icmpv6.pkt_too_small"]);

    let sctp = [0x0b, 0xb8, 0x0e, 0x74, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 4];
    let p = dec(LinkType::Ipv4, &ipv4(132, V4_A, V4_B, &sctp));
    assert_eq!(
        p.l4,
        L4::Sctp {
            src_port: 3000,
            dst_port: 3700
        }
    );
    assert_eq!(p.payload_len, 4);
    let p = dec(LinkType::Ipv4, &ipv4(132, V4_A, V4_B, &sctp[..11]));
    assert_eq!(events(&p), ["decoder.sctp.pkt_too_small"]);
}

fn outer_gre(gre_bytes: &[u8]) -> Vec<u8> {
    eth(0x0800, &ipv4(47, V4_C, V4_D, gre_bytes))
}

fn assert_inner_tcp(p: &DecodedPacket) {
    assert_eq!(p.kind, PacketKind::Ip, "{p:?}");
    assert_eq!((p.l3.src, p.l3.dst), (v4(V4_A), v4(V4_B)));
    assert_eq!(p.ports(), Some((40000, 80)));
}

#[test]
fn gre_tunnels() {
    let inner = ipv4_tcp(b"data");
    // Checksum + key + sequence.
    let frame = outer_gre(&gre(0x80, 0x0800, Some(42), Some(1), &inner));
    let p = dec(LinkType::Ethernet, &frame);
    assert_eq!(p.anomaly_count, 0, "{:?}", events(&p));
    assert_inner_tcp(&p);
    let t = p.tunnel;
    assert_eq!(
        (t.kind, t.depth, t.id, t.outer_proto),
        (TunnelKind::Gre, 1, 42, 47)
    );
    assert_eq!((t.outer_src, t.outer_dst), (v4(V4_C), v4(V4_D)));
    assert_eq!(p.l3.header_offset as usize, 14 + 20 + 16);
    let off = p.payload_offset as usize;
    assert_eq!(&frame[off..off + p.payload_len as usize], b"data");

    // IPv6 inside, and transparent Ethernet bridging.
    let inner6 = ipv6(6, V6_A, V6_B, &tcp(1, 2, 3, TCP_SYN, &[], b""));
    let p = dec(
        LinkType::Ethernet,
        &outer_gre(&gre(0, 0x86dd, None, None, &inner6)),
    );
    assert_eq!(
        (p.l3.version, p.tunnel.kind, p.tunnel.id),
        (6, TunnelKind::Gre, 0)
    );
    let teb = gre(
        0,
        0x6558,
        Some(7),
        None,
        &eth(0x8100, &vlan_tag(55, 0x0800, &inner)),
    );
    let p = dec(LinkType::Ethernet, &outer_gre(&teb));
    assert_inner_tcp(&p);
    assert_eq!((p.tunnel.id, p.vlans()), (7, &[55u16][..]));

    // Unknown GRE payload: stays the outer GRE packet.
    let p = dec(
        LinkType::Ethernet,
        &outer_gre(&gre(0, 0x1234, None, None, b"zzzz")),
    );
    assert_eq!(
        (p.kind, p.l3.proto, p.tunnel.depth),
        (PacketKind::Ip, 47, 0)
    );

    let p = dec(LinkType::Ethernet, &outer_gre(&[0, 0x02, 0x08, 0x00]));
    assert_eq!(events(&p), ["decoder.gre.wrong_version"]);
    let p = dec(LinkType::Ethernet, &outer_gre(&[0x01, 0, 0x08, 0x00]));
    assert_eq!(events(&p), ["decoder.gre.version0_recur"]);
    let p = dec(LinkType::Ethernet, &outer_gre(&[0x20, 0, 0x08, 0x00, 0, 0]));
    assert_eq!(events(&p), ["decoder.gre.pkt_too_small"]);
    let p = dec(LinkType::Ethernet, &outer_gre(&[0x20, 0]));
    assert_eq!(events(&p), ["decoder.gre.pkt_too_small"]);
}

#[test]
fn gre_pptp() {
    let inner = ipv4_tcp(b"");
    // Version 1, K set, S set, proto PPP, payload length, call id 0x77, seq.
    let mut h = vec![0x30, 0x01, 0x88, 0x0b];
    h.extend_from_slice(&((inner.len() + 4) as u16).to_be_bytes());
    h.extend_from_slice(&0x77u16.to_be_bytes());
    h.extend_from_slice(&1u32.to_be_bytes());
    h.extend_from_slice(&[0xff, 0x03, 0x00, 0x21]);
    h.extend_from_slice(&inner);
    let p = dec(LinkType::Ethernet, &outer_gre(&h));
    assert_inner_tcp(&p);
    assert_eq!((p.tunnel.kind, p.tunnel.id), (TunnelKind::Gre, 0x77));
    h[0] = 0x10; // no key
    let p = dec(LinkType::Ethernet, &outer_gre(&h));
    assert_eq!(events(&p), ["decoder.gre.version1_no_key"]);
}

#[test]
fn erspan_tunnels() {
    let inner = eth(0x0800, &ipv4_tcp(b""));
    // Type II: version 1, VLAN 0, session 0x155.
    let hdr2 = [0x10, 0x00, 0x01, 0x55, 0, 0, 0, 0];
    let p = dec(
        LinkType::Ethernet,
        &outer_gre(&gre(0, 0x88be, None, Some(9), &cat(&[&hdr2, &inner]))),
    );
    assert_eq!(p.anomaly_count, 0, "{:?}", events(&p));
    assert_inner_tcp(&p);
    assert_eq!(
        (p.tunnel.kind, p.tunnel.id, p.tunnel.outer_proto),
        (TunnelKind::ErspanII, 0x155, 47)
    );

    // Original VLAN recorded from the ERSPAN header.
    let hdr2v = [0x10, 0x64, 0x00, 0x01, 0, 0, 0, 0];
    let p = dec(
        LinkType::Ethernet,
        &outer_gre(&gre(0, 0x88be, None, Some(9), &cat(&[&hdr2v, &inner]))),
    );
    assert_eq!((p.vlans(), p.tunnel.id), (&[100u16][..], 1));

    // Type I: no sequence number, no ERSPAN header.
    let p = dec(
        LinkType::Ethernet,
        &outer_gre(&gre(0, 0x88be, None, None, &inner)),
    );
    assert_inner_tcp(&p);
    assert_eq!(p.tunnel.kind, TunnelKind::ErspanII);

    // Type III with the optional platform subheader.
    let mut hdr3 = vec![0x20, 0x00, 0x00, 0x21, 0, 0, 0, 0, 0, 0, 0, 0x01];
    hdr3.extend_from_slice(&[0; 8]);
    let p = dec(
        LinkType::Ethernet,
        &outer_gre(&gre(0, 0x22eb, None, Some(1), &cat(&[&hdr3, &inner]))),
    );
    assert_inner_tcp(&p);
    assert_eq!(p.tunnel.id, 0x21);

    let p = dec(
        LinkType::Ethernet,
        &outer_gre(&gre(0, 0x88be, None, Some(9), &hdr2[..5])),
    );
    assert_eq!(events(&p), ["decoder.erspan.header_too_small"]);
    let bad = [0x30, 0x00, 0x01, 0x55, 0, 0, 0, 0];
    let p = dec(
        LinkType::Ethernet,
        &outer_gre(&gre(0, 0x88be, None, Some(9), &cat(&[&bad, &inner]))),
    );
    assert_eq!(events(&p), ["decoder.erspan.unsupported_version"]);
}

fn vxlan_frame(vni: u32, inner_frame: &[u8]) -> Vec<u8> {
    eth(
        0x0800,
        &ipv4(17, V4_C, V4_D, &udp(51000, 4789, &vxlan(vni, inner_frame))),
    )
}

#[test]
fn vxlan_tunnel() {
    let inner = eth(0x0800, &ipv4_tcp(b"in"));
    let p = dec(LinkType::Ethernet, &vxlan_frame(0xabcdef, &inner));
    assert_eq!(p.anomaly_count, 0, "{:?}", events(&p));
    assert_inner_tcp(&p);
    let t = p.tunnel;
    assert_eq!(
        (t.kind, t.id, t.depth, t.outer_proto),
        (TunnelKind::Vxlan, 0xabcdef, 1, 17)
    );
    assert_eq!((t.outer_src_port, t.outer_dst_port), (51000, 4789));
    assert_eq!((t.outer_src, t.outer_dst), (v4(V4_C), v4(V4_D)));
    assert_eq!(p.payload_len, 2);

    // No I flag: ordinary UDP to port 4789, no anomaly.
    let mut not = vxlan(1, &inner);
    not[0] = 0;
    let p = dec(
        LinkType::Ethernet,
        &eth(0x0800, &ipv4(17, V4_C, V4_D, &udp(1, 4789, &not))),
    );
    assert_eq!(
        (p.tunnel.depth, p.ports(), p.anomaly_count),
        (0, Some((1, 4789)), 0)
    );
    // Too short to hold an inner Ethernet header: plain UDP too.
    let p = dec(
        LinkType::Ethernet,
        &eth(0x0800, &ipv4(17, V4_C, V4_D, &udp(1, 4789, &not[..12]))),
    );
    assert_eq!(p.tunnel.depth, 0);

    // Inner ARP: the innermost packet is ARP, still in the tunnel.
    let p = dec(LinkType::Ethernet, &vxlan_frame(5, &eth(0x0806, &[0; 28])));
    assert_eq!(
        (p.kind, p.tunnel.kind),
        (PacketKind::Arp, TunnelKind::Vxlan)
    );
}

#[test]
fn geneve_tunnel() {
    let inner = ipv4_tcp(b"");
    let g = geneve(0x1234, 0x6558, 2, &eth(0x0800, &inner));
    let p = dec(
        LinkType::Ethernet,
        &eth(0x0800, &ipv4(17, V4_C, V4_D, &udp(9, 6081, &g))),
    );
    assert_inner_tcp(&p);
    assert_eq!((p.tunnel.kind, p.tunnel.id), (TunnelKind::Geneve, 0x1234));
    let g = geneve(7, 0x0800, 0, &inner);
    let p = dec(
        LinkType::Ethernet,
        &eth(0x0800, &ipv4(17, V4_C, V4_D, &udp(9, 6081, &g))),
    );
    assert_inner_tcp(&p);
    assert_eq!(p.tunnel.id, 7);
    // Unknown protocol type: ordinary UDP.
    let g = geneve(7, 0x9999, 0, &inner);
    let p = dec(
        LinkType::Ethernet,
        &eth(0x0800, &ipv4(17, V4_C, V4_D, &udp(9, 6081, &g))),
    );
    assert_eq!((p.tunnel.depth, p.ports()), (0, Some((9, 6081))));
}

#[test]
fn ip_in_ip() {
    let inner = ipv4_tcp(b"");
    let p = dec(LinkType::Ipv4, &ipv4(4, V4_C, V4_D, &inner));
    assert_inner_tcp(&p);
    assert_eq!(
        (p.tunnel.kind, p.tunnel.outer_proto, p.l3.header_offset),
        (TunnelKind::IpInIp, 4, 20)
    );
    let inner6 = ipv6(17, V6_A, V6_B, &udp(1, 2, b""));
    let p = dec(LinkType::Ipv4, &ipv4(41, V4_C, V4_D, &inner6));
    assert_eq!(
        (p.l3.version, p.tunnel.outer_proto, p.tunnel.outer_src),
        (6, 41, v4(V4_C))
    );
    let p = dec(LinkType::Ipv6, &ipv6(4, V6_B, V6_A, &inner));
    assert_inner_tcp(&p);
    assert_eq!((p.tunnel.outer_src, p.tunnel.outer_proto), (v6(V6_B), 4));
    // Broken inner header: anomaly, no half-outer view.
    let p = dec(LinkType::Ipv4, &ipv4(4, V4_C, V4_D, &inner[..10]));
    assert_eq!(
        (p.kind, events(&p)),
        (PacketKind::Unknown, vec!["decoder.ipv4.pkt_too_small"])
    );
}

#[test]
fn teredo_tunnel() {
    let inner = ipv6(17, V6_A, V6_B, &udp(1, 2, b"t"));
    let origin = [0, 0, 0x12, 0x34, 1, 2, 3, 4];
    for payload in [inner.clone(), cat(&[&origin, &inner])] {
        let p = dec(
            LinkType::Ipv4,
            &ipv4(17, V4_C, V4_D, &udp(3544, 50000, &payload)),
        );
        assert_eq!(
            (p.tunnel.kind, p.l3.version, p.ports()),
            (TunnelKind::Teredo, 6, Some((1, 2)))
        );
    }
    // Authentication header with 1-byte id and 2-byte auth value.
    let auth = [0, 1, 1, 2, 0xaa, 0xbb, 0xcc, 1, 2, 3, 4, 5, 6, 7, 8, 0];
    let p = dec(
        LinkType::Ipv4,
        &ipv4(17, V4_C, V4_D, &udp(50000, 3544, &cat(&[&auth, &inner]))),
    );
    assert_eq!(p.tunnel.kind, TunnelKind::Teredo);
    // Not IPv6 inside: ordinary UDP on 3544.
    let p = dec(
        LinkType::Ipv4,
        &ipv4(17, V4_C, V4_D, &udp(3544, 50000, &[0x45; 60])),
    );
    assert_eq!((p.tunnel.depth, p.ports()), (0, Some((3544, 50000))));
}

#[test]
fn nested_tunnels_and_depth_limit() {
    // TCP in GRE in VXLAN: outer endpoints from the VXLAN carrier, id/kind from GRE.
    let gre_pkt = ipv4(
        47,
        [172, 16, 0, 1],
        [172, 16, 0, 2],
        &gre(0, 0x0800, Some(99), None, &ipv4_tcp(b"")),
    );
    let p = dec(LinkType::Ethernet, &vxlan_frame(5, &eth(0x0800, &gre_pkt)));
    assert_inner_tcp(&p);
    let t = p.tunnel;
    assert_eq!((t.kind, t.id, t.depth), (TunnelKind::Gre, 99, 2));
    assert_eq!(
        (t.outer_src, t.outer_proto, t.outer_dst_port),
        (v4(V4_C), 17, 4789)
    );

    // IP-in-IP nested deeper than the limit.
    let mut pkt = ipv4_tcp(b"");
    for _ in 0..=MAX_TUNNEL_DEPTH {
        pkt = ipv4(4, V4_C, V4_D, &pkt);
    }
    let p = dec(LinkType::Ipv4, &pkt);
    assert_eq!(p.tunnel.depth, MAX_TUNNEL_DEPTH);
    assert_eq!(events(&p), ["decoder.too_many_layers"]);
    assert_eq!(p.l3.proto, 4);
}

#[test]
fn decode_ip_keeps_context() {
    let mut p = dec(
        LinkType::Ethernet,
        &vxlan_frame(77, &eth(0x8100, &vlan_tag(3, 0x0800, &ipv4_tcp(b"")))),
    );
    assert_eq!(p.vlans(), &[3]);
    let tunnel = p.tunnel;
    let inner6 = ipv6(6, V6_A, V6_B, &tcp(5, 6, 0, TCP_SYN, &[], b"zz"));
    decode_ip(&inner6, &mut p);
    assert_eq!((p.vlans(), p.tunnel), (&[3u16][..], tunnel));
    assert_eq!(
        (p.l3.version, p.l3.header_offset, p.ports()),
        (6, 0, Some((5, 6)))
    );
    assert_eq!((p.payload_offset, p.payload_len), (60, 2));
    decode_ip(&[], &mut p);
    assert_eq!((p.kind, p.l4), (PacketKind::Unknown, L4::None));
}

/// A TCP segment in VLAN-tagged Ethernet in VXLAN in GRE-with-key in IPv4 in Ethernet.
fn deep_tunnel_frame() -> Vec<u8> {
    let inner = eth(
        0x8100,
        &vlan_tag(
            9,
            0x0800,
            &ipv4(
                6,
                V4_A,
                V4_B,
                &tcp(40000, 80, 1, TCP_SYN, &syn_options(), b"payload"),
            ),
        ),
    );
    let vx = ipv4(
        17,
        [172, 16, 0, 1],
        [172, 16, 0, 2],
        &udp(1, 4789, &vxlan(3, &inner)),
    );
    outer_gre(&gre(0, 0x0800, Some(1), None, &vx))
}

#[test]
fn every_truncation_of_a_tunnelled_packet() {
    let frame = deep_tunnel_frame();
    let full = dec(LinkType::Ethernet, &frame);
    assert_eq!(full.anomaly_count, 0, "{:?}", events(&full));
    assert_inner_tcp(&full);
    assert_eq!(full.tunnel.depth, 2);
    for len in 0..frame.len() {
        let p = dec(LinkType::Ethernet, &frame[..len]);
        assert!(
            p.anomaly_count > 0,
            "prefix {len} decoded without anomaly: {p:?}"
        );
        if let L4::Tcp(t) = p.l4 {
            // Whatever TCP view survives must be the real one, not shifted garbage. A header
            // cut by the capture (header_len 0) keeps its ports; a cut sequence number reads 0.
            assert_eq!((t.src_port, t.dst_port), (40000, 80), "prefix {len}");
            assert!(
                t.seq == 1 || (t.header_len == 0 && t.seq == 0),
                "prefix {len}: {t:?}"
            );
        }
        if p.kind == PacketKind::Ip {
            assert!(
                p.l3.src == v4(V4_A) || p.l3.src == v4(V4_C) || p.l3.src == v4([172, 16, 0, 1])
            );
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let links = [
        LinkType::Ethernet,
        LinkType::Raw,
        LinkType::Ipv4,
        LinkType::Ipv6,
        LinkType::LinuxSll,
        LinkType::LinuxSll2,
        LinkType::Null,
        LinkType::Loop,
    ];
    let seeds = [
        deep_tunnel_frame(),
        vxlan_frame(
            1,
            &eth(
                0x86dd,
                &ipv6(0, V6_A, V6_B, &ipv6_ext(44, 0, &[17, 0, 0, 0, 0, 0, 0, 0])),
            ),
        ),
    ];
    let mut buf = vec![0u8; 256];
    let mut p = DecodedPacket::default();
    for i in 0..300_000 {
        let len;
        if i % 2 == 0 {
            // Pure noise, biased so the version nibble and ethertypes are often plausible.
            len = rng.below(buf.len());
            for b in buf[..len].iter_mut() {
                *b = rng.next() as u8;
            }
            if len > 14 && rng.below(2) == 0 {
                buf[12..14].copy_from_slice(&[0x08, 0x00]);
                buf[14] = 0x45;
            }
        } else {
            // Mutations of valid tunnelled packets reach the deep layers.
            let seed = &seeds[rng.below(seeds.len())];
            len = seed.len();
            buf[..len].copy_from_slice(seed);
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(len);
                buf[at] = rng.next() as u8;
            }
        }
        let link = if i % 2 == 0 {
            links[rng.below(links.len())]
        } else {
            LinkType::Ethernet
        };
        decode(link, &buf[..len], &mut p);
        check_bounds(&p, len);
        decode_ip(&buf[..len], &mut p);
        check_bounds(&p, len);
    }
}

/// Run with `cargo test -p vigil-parsers --release -- --ignored --nocapture bench`.
#[test]
#[ignore]
fn bench_decode_ns_per_packet() {
    let frames = [
        (
            "eth/ipv4/tcp 64B payload",
            eth(0x0800, &ipv4_tcp(&[0u8; 64])),
        ),
        (
            "eth/ipv4/tcp syn options",
            eth(
                0x0800,
                &ipv4(6, V4_A, V4_B, &tcp(1, 2, 3, TCP_SYN, &syn_options(), b"")),
            ),
        ),
        (
            "eth/vlan/ipv6/udp",
            eth(
                0x8100,
                &vlan_tag(5, 0x86dd, &ipv6(17, V6_A, V6_B, &udp(1, 53, &[0; 40]))),
            ),
        ),
        ("vxlan/gre deep tunnel", deep_tunnel_frame()),
    ];
    let mut p = DecodedPacket::default();
    for (name, frame) in &frames {
        let n = 5_000_000u32;
        let start = std::time::Instant::now();
        for _ in 0..n {
            decode(LinkType::Ethernet, std::hint::black_box(frame), &mut p);
            std::hint::black_box(&p);
        }
        let ns = start.elapsed().as_nanos() as f64 / f64::from(n);
        println!("{name}: {ns:.1} ns/packet");
    }
}

#[test]
fn header_ranges() {
    // IPv4 with 4 bytes of options (NOP NOP NOP EOL) and TCP with 4 bytes of options (MSS).
    let seg = tcp(1000, 80, 1, TCP_SYN, &[2, 4, 5, 0xb4], b"abc");
    let frame = eth(
        0x0800,
        &ipv4_full(6, V4_A, V4_B, 1, 0x4000, &[1, 1, 1, 0], &seg),
    );
    let p = dec(LinkType::Ethernet, &frame);
    assert_eq!(p.ip_header_range(), Some(14..38));
    assert_eq!(p.l4_header_range(), Some(38..62));
    assert_eq!(p.payload_offset, 62);

    // IPv6 with a hop-by-hop header (16 bytes) before UDP: the IP header takes in the
    // extension header, UDP's is 8 bytes.
    let pkt = ipv6(0, V6_A, V6_B, &ipv6_ext(17, 1, &udp(5, 6, b"x")));
    let p = dec(LinkType::Ipv6, &pkt);
    assert_eq!(p.ip_header_range(), Some(0..56));
    assert_eq!(p.l4_header_range(), Some(56..64));

    // ICMPv6: 8 bytes.
    let p = dec(
        LinkType::Ipv6,
        &ipv6(58, V6_A, V6_B, &[128, 0, 0, 0, 0, 1, 0, 1, 9]),
    );
    assert_eq!(p.l4_header_range(), Some(40..48));

    // A later IPv4 fragment has no transport header.
    let p = dec(
        LinkType::Ipv4,
        &ipv4_full(6, V4_A, V4_B, 1, 0x0010, &[], &seg),
    );
    assert_eq!(p.ip_header_range(), Some(0..20));
    assert_eq!(p.l4_header_range(), None);
    assert_eq!(DecodedPacket::default().ip_header_range(), None);
}

#[test]
fn icmpv4_header_length_follows_type() {
    // Echo: 8 bytes of header, the rest is payload.
    let echo = [8, 0, 0, 0, 0, 1, 0, 1, b'h', b'i'];
    let p = dec(LinkType::Ipv4, &ipv4(1, V4_A, V4_B, &echo));
    assert_eq!(p.l4_header_range(), Some(20..28));
    assert_eq!(p.payload_len, 2);
    // Timestamp request: the three timestamps belong to the header (20 bytes).
    let mut ts = vec![13, 0, 0, 0, 0, 1, 0, 1];
    ts.extend_from_slice(&[7; 12]);
    let p = dec(LinkType::Ipv4, &ipv4(1, V4_A, V4_B, &ts));
    assert_eq!(p.l4_header_range(), Some(20..40));
    assert_eq!(p.payload_len, 0);
    assert!(events(&p).is_empty());
    // Cut short: the header stays 8 bytes and the decoder says so.
    let p = dec(LinkType::Ipv4, &ipv4(1, V4_A, V4_B, &ts[..16]));
    assert_eq!(p.l4_header_range(), Some(20..28));
    assert_eq!(events(&p), ["decoder.icmpv4.ipv4_trunc_pkt"]);
    // Router advertisement with 2 entries of 2 words: 8 + 16 bytes.
    let mut ra = vec![9, 0, 0, 0, 2, 2, 0, 30];
    ra.extend_from_slice(&[10, 0, 0, 1, 0, 0, 0, 1, 10, 0, 0, 2, 0, 0, 0, 1, 0xee]);
    let p = dec(LinkType::Ipv4, &ipv4(1, V4_A, V4_B, &ra));
    assert_eq!(p.l4_header_range(), Some(20..44));
    assert_eq!(p.payload_len, 1);
    assert!(events(&p).is_empty());
}

#[test]
fn ipv6_option_events() {
    let ev = |opts: &[u8]| {
        // A destination options header of one 8-byte unit: next header UDP, then `opts`.
        let mut h = vec![17, 0];
        h.extend_from_slice(opts);
        h.extend_from_slice(&udp(1, 2, b""));
        events(&dec(LinkType::Ipv6, &ipv6(60, V6_A, V6_B, &h)))
    };
    // Router alert (known, more than padding) and Pad1s.
    assert!(ev(&[5, 2, 0, 0, 0, 0]).is_empty());
    // An option Suricata does not know.
    assert_eq!(
        ev(&[0x3e, 2, 0, 0, 0, 0]),
        ["decoder.ipv6.dstopts_unknown_opt"]
    );
    // Only padding, the PadN of zero length flagged as well.
    assert_eq!(
        ev(&[1, 0, 1, 2, 0, 0]),
        [
            "decoder.ipv6.zero_len_padn",
            "decoder.ipv6.dstopts_only_padding"
        ]
    );
    // An option running past the header.
    assert_eq!(
        ev(&[5, 2, 0, 0, 0x3e, 9]),
        ["decoder.ipv6.exthdr_invalid_optlen"]
    );
    // Hop-by-hop options name their own header.
    let mut h = vec![17, 0, 0x3e, 4, 0, 0, 0, 0];
    h.extend_from_slice(&udp(1, 2, b""));
    assert_eq!(
        events(&dec(LinkType::Ipv6, &ipv6(0, V6_A, V6_B, &h))),
        ["decoder.ipv6.hopopts_unknown_opt"]
    );
}

#[test]
fn ipv6_header_after_extension_needs_two_bytes() {
    // An atomic fragment header announcing TCP, then a single byte: Suricata's trunc_exthdr,
    // and no TCP decode (so no tcp.pkt_too_small).
    let p = dec(
        LinkType::Ipv6,
        &ipv6(44, V6_A, V6_B, &[6, 0, 0, 0, 0xfa, 0xce, 0xf0, 0xe4, 0]),
    );
    assert_eq!(
        events(&p),
        [
            "decoder.ipv6.exthdr_useless_fh",
            "decoder.ipv6.trunc_exthdr"
        ]
    );
    assert_eq!(p.l4, L4::None);
    assert_eq!((p.l3.proto, p.l3.header_len), (6, 48));
    // Without an extension header before it, a short TCP header is TCP's to report.
    let p = dec(LinkType::Ipv6, &ipv6(6, V6_A, V6_B, &[0]));
    assert_eq!(events(&p), ["decoder.tcp.pkt_too_small"]);
}
