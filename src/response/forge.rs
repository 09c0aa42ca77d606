//! Forging the frames that tear down a connection Vigil saw on a SPAN/TAP mirror: TCP resets
//! for either end, ICMP port unreachable for UDP.
//!
//! Pure functions over byte slices: no I/O, no panics on any input. The frames reuse the
//! captured Ethernet header (VLAN tags included) so they land in the same broadcast domain and
//! VLAN as the connection they answer.

use std::net::IpAddr;

use etherparse::{
    icmpv4::DestUnreachableHeader, icmpv6::DestUnreachableCode, Icmpv4Header, Icmpv4Type,
    Icmpv6Header, Icmpv6Type, IpNumber, Ipv4Header, Ipv4HeaderSlice, Ipv6FlowLabel, Ipv6Header,
    Ipv6HeaderSlice, TcpHeader,
};

const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
/// Tags kept at most; deeper stacks are not plain Ethernet in practice and are refused.
const MAX_VLAN_TAGS: usize = 4;
const MAC_PAIR_LEN: usize = 12;
const L2_MAX_LEN: usize = MAC_PAIR_LEN + 4 * MAX_VLAN_TAGS + 2;

const TTL: u8 = 64;
/// RFC 4443 2.4(c): an ICMPv6 error must not make the packet exceed the minimum IPv6 MTU.
const IPV6_MIN_MTU: usize = 1280;
/// What an ICMPv4 error quotes beyond the original IP header (RFC 792).
const ICMPV4_QUOTE_PAYLOAD: usize = 8;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;

/// A captured frame's Ethernet header: `dst mac | src mac | [tpid tci]* | ethertype`, with up
/// to four 802.1Q/802.1ad tags. Only built by [`L2Header::from_frame`], so it always holds at
/// least the two MACs and an ethertype.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L2Header {
    bytes: [u8; L2_MAX_LEN],
    len: u8,
}

impl L2Header {
    /// The Ethernet header of `frame`, whose IP header starts at `l3_offset`. None unless the
    /// bytes before `l3_offset` are exactly two MACs, 0..=4 VLAN tags and an IPv4/IPv6
    /// ethertype (so MPLS, PPPoE, LLC, a deeper tag stack or a short frame are refused).
    pub fn from_frame(frame: &[u8], l3_offset: usize) -> Option<L2Header> {
        if l3_offset > L2_MAX_LEN || frame.len() < l3_offset {
            return None;
        }
        let mut at = MAC_PAIR_LEN;
        loop {
            let ethertype = u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]);
            match ethertype {
                ETH_P_8021Q | ETH_P_8021AD => {
                    at += 4;
                    if at > MAC_PAIR_LEN + 4 * MAX_VLAN_TAGS {
                        return None;
                    }
                }
                ETH_P_IPV4 | ETH_P_IPV6 => break,
                _ => return None,
            }
        }
        let len = at + 2;
        if len != l3_offset {
            return None;
        }
        let mut bytes = [0u8; L2_MAX_LEN];
        bytes[..len].copy_from_slice(frame.get(..len)?);
        Some(L2Header {
            bytes,
            len: len as u8,
        })
    }

    /// The header as captured.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Number of VLAN tags between the MACs and the ethertype.
    pub fn vlan_tags(&self) -> usize {
        (usize::from(self.len) - MAC_PAIR_LEN - 2) / 4
    }

    /// Appends the header to `out`, MACs swapped for a reply, ending in `ethertype` (the IP
    /// version written after it, whatever the captured frame carried).
    fn write(&self, swap_macs: bool, ethertype: u16, out: &mut Vec<u8>) {
        let b = self.as_bytes();
        if swap_macs {
            out.extend_from_slice(&b[6..12]);
            out.extend_from_slice(&b[0..6]);
        } else {
            out.extend_from_slice(&b[..12]);
        }
        out.extend_from_slice(&b[MAC_PAIR_LEN..b.len() - 2]);
        out.extend_from_slice(&ethertype.to_be_bytes());
    }
}

/// The TCP segment that triggered the response, as seen on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSeen {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    /// The TCP header's flags byte (FIN=0x01 SYN=0x02 RST=0x04 PSH=0x08 ACK=0x10).
    pub flags: u8,
    pub payload_len: u32,
}

impl TcpSeen {
    /// Sequence number just past this segment: what its receiver expects next.
    fn end_seq(&self) -> u32 {
        let syn = u32::from(self.flags & TCP_SYN != 0);
        let fin = u32::from(self.flags & TCP_FIN != 0);
        self.seq
            .wrapping_add(self.payload_len)
            .wrapping_add(syn)
            .wrapping_add(fin)
    }
}

/// Which end of the triggering segment a reset goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toward {
    /// The segment's sender; the reset is spoofed from its receiver.
    Sender,
    /// The segment's receiver; the reset is spoofed from its sender.
    Receiver,
}

/// Clears `out` and writes one Ethernet frame carrying a TCP RST|ACK for the connection of
/// `seen`, to the end chosen by `toward`. `out` stays empty if `seen` mixes IPv4 and IPv6.
///
/// Sequence numbers: Linux (RFC 5961 3.2) only takes a reset whose seq equals its rcv_nxt;
/// anything else in the window draws a challenge ACK instead. The receiver's rcv_nxt is just
/// past the seen segment (`seq + len + SYN + FIN`); the sender's is the seen segment's ack.
pub fn tcp_reset(l2: &L2Header, seen: &TcpSeen, toward: Toward, out: &mut Vec<u8>) {
    out.clear();
    if write_tcp_reset(l2, seen, toward, out).is_none() {
        out.clear();
    }
}

fn write_tcp_reset(l2: &L2Header, seen: &TcpSeen, toward: Toward, out: &mut Vec<u8>) -> Option<()> {
    let (src, dst, src_port, dst_port, seq, ack, swap_macs) = match toward {
        Toward::Receiver => (
            seen.src,
            seen.dst,
            seen.src_port,
            seen.dst_port,
            seen.end_seq(),
            seen.ack,
            false,
        ),
        Toward::Sender => {
            // Without ACK the segment says nothing about the sender's rcv_nxt; RFC 793 answers
            // such a segment with seq 0 (the ACK on the reset is what makes it acceptable).
            let seq = if seen.flags & TCP_ACK != 0 {
                seen.ack
            } else {
                0
            };
            (
                seen.dst,
                seen.src,
                seen.dst_port,
                seen.src_port,
                seq,
                seen.end_seq(),
                true,
            )
        }
    };
    let mut tcp = TcpHeader::new(src_port, dst_port, seq, 0);
    tcp.acknowledgment_number = ack;
    tcp.rst = true;
    tcp.ack = true;
    match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let ip = ipv4_header(tcp.header_len(), IpNumber::TCP, src.octets(), dst.octets())?;
            tcp.checksum = tcp.calc_checksum_ipv4(&ip, &[]).ok()?;
            l2.write(swap_macs, ETH_P_IPV4, out);
            out.extend_from_slice(&ip.to_bytes());
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let ip = ipv6_header(tcp.header_len(), IpNumber::TCP, src.octets(), dst.octets())?;
            tcp.checksum = tcp.calc_checksum_ipv6(&ip, &[]).ok()?;
            l2.write(swap_macs, ETH_P_IPV6, out);
            out.extend_from_slice(&ip.to_bytes());
        }
        _ => return None,
    }
    out.extend_from_slice(&tcp.to_bytes());
    Some(())
}

/// Clears `out` and writes an ICMP port unreachable (ICMPv4 3/3, ICMPv6 1/4) to the sender of
/// `original_ip`, the offending datagram from its IP header on (possibly truncated), spoofed
/// from its destination. MACs are swapped, VLAN tags kept. The quote is the original IP header
/// and 8 bytes for IPv4, as much as keeps the packet within 1280 bytes for IPv6, never past
/// the original's own length (so Ethernet padding is not quoted).
///
/// Returns false, with `out` empty, when `original_ip` is not a parseable IPv4/IPv6 header.
pub fn icmp_unreachable(l2: &L2Header, original_ip: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    let written = match original_ip.first().map(|b| b >> 4) {
        Some(4) => write_icmpv4_unreachable(l2, original_ip, out),
        Some(6) => write_icmpv6_unreachable(l2, original_ip, out),
        _ => None,
    };
    if written.is_none() {
        out.clear();
    }
    written.is_some()
}

fn write_icmpv4_unreachable(l2: &L2Header, original: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let header = Ipv4HeaderSlice::from_slice(original).ok()?;
    // RFC 1122 3.2.2: no ICMP error about an ICMP error, a non-first fragment, or a datagram
    // to a broadcast or multicast address, or from one that names no single host.
    let (src, dst) = (header.source_addr(), header.destination_addr());
    let icmp_error = header.protocol() == IpNumber::ICMP
        && original
            .get(header.slice().len())
            .is_some_and(|t| matches!(t, 3 | 4 | 5 | 11 | 12));
    if icmp_error
        || header.fragments_offset().value() != 0
        || dst.is_broadcast()
        || dst.is_multicast()
        || src.is_broadcast()
        || src.is_multicast()
        || src.is_unspecified()
    {
        return None;
    }
    let header_len = header.slice().len();
    let stated = usize::from(header.total_len()).max(header_len);
    let quote = original.get(
        ..original
            .len()
            .min(stated)
            .min(header_len + ICMPV4_QUOTE_PAYLOAD),
    )?;
    let icmp = Icmpv4Header::with_checksum(
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port),
        quote,
    );
    let ip = ipv4_header(
        icmp.header_len() + quote.len(),
        IpNumber::ICMP,
        header.destination(),
        header.source(),
    )?;
    l2.write(true, ETH_P_IPV4, out);
    out.extend_from_slice(&ip.to_bytes());
    out.extend_from_slice(&icmp.to_bytes());
    out.extend_from_slice(quote);
    Some(())
}

fn write_icmpv6_unreachable(l2: &L2Header, original: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let header = Ipv6HeaderSlice::from_slice(original).ok()?;
    // RFC 4443 2.4(e): no error about an ICMPv6 error, or a packet to a multicast address, or
    // from one that names no single host.
    let icmp_error = header.next_header() == IpNumber::IPV6_ICMP
        && original.get(Ipv6Header::LEN).is_some_and(|t| *t < 128);
    let (src, dst) = (header.source_addr(), header.destination_addr());
    if icmp_error || dst.is_multicast() || src.is_multicast() || src.is_unspecified() {
        return None;
    }
    let icmp_type = Icmpv6Type::DestinationUnreachable(DestUnreachableCode::Port);
    // Payload length 0 is a jumbogram (or junk): then only the slice bounds the quote.
    let stated = match header.payload_length() {
        0 => original.len(),
        n => Ipv6Header::LEN + usize::from(n),
    };
    let room = IPV6_MIN_MTU - Ipv6Header::LEN - icmp_type.header_len();
    let quote = original.get(..original.len().min(stated).min(room))?;
    let (src, dst) = (header.destination(), header.source());
    let icmp = Icmpv6Header::with_checksum(icmp_type, src, dst, quote).ok()?;
    let ip = ipv6_header(
        icmp.header_len() + quote.len(),
        IpNumber::IPV6_ICMP,
        src,
        dst,
    )?;
    l2.write(true, ETH_P_IPV6, out);
    out.extend_from_slice(&ip.to_bytes());
    out.extend_from_slice(&icmp.to_bytes());
    out.extend_from_slice(quote);
    Some(())
}

/// No options, DF set, id 0, TTL 64, checksum filled in.
fn ipv4_header(
    payload_len: usize,
    protocol: IpNumber,
    src: [u8; 4],
    dst: [u8; 4],
) -> Option<Ipv4Header> {
    let mut ip = Ipv4Header::new(u16::try_from(payload_len).ok()?, TTL, protocol, src, dst).ok()?;
    ip.dont_fragment = true;
    ip.identification = 0;
    ip.header_checksum = ip.calc_header_checksum();
    Some(ip)
}

fn ipv6_header(
    payload_len: usize,
    next_header: IpNumber,
    src: [u8; 16],
    dst: [u8; 16],
) -> Option<Ipv6Header> {
    Some(Ipv6Header {
        traffic_class: 0,
        flow_label: Ipv6FlowLabel::ZERO,
        payload_length: u16::try_from(payload_len).ok()?,
        next_header,
        hop_limit: TTL,
        source: src,
        destination: dst,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{LinkExtSlice, NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
    use std::net::{Ipv4Addr, Ipv6Addr};

    const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
    const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
    const C4: [u8; 4] = [10, 0, 0, 1];
    const S4: [u8; 4] = [10, 0, 0, 2];
    const C6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const S6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    /// Ethernet header bytes: MACs, the given (tpid, vid) tags, then `ethertype`.
    fn eth(tags: &[(u16, u16)], ethertype: u16) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&SERVER_MAC);
        b.extend_from_slice(&CLIENT_MAC);
        for &(tpid, vid) in tags {
            b.extend_from_slice(&tpid.to_be_bytes());
            b.extend_from_slice(&vid.to_be_bytes());
        }
        b.extend_from_slice(&ethertype.to_be_bytes());
        b
    }

    fn l2(tags: &[(u16, u16)], ethertype: u16) -> L2Header {
        let h = eth(tags, ethertype);
        let mut frame = h.clone();
        frame.extend_from_slice(&[0x45; 40]);
        L2Header::from_frame(&frame, h.len()).expect("valid L2 header")
    }

    fn seen4(seq: u32, ack: u32, flags: u8, payload_len: u32) -> TcpSeen {
        TcpSeen {
            src: IpAddr::V4(Ipv4Addr::from(C4)),
            dst: IpAddr::V4(Ipv4Addr::from(S4)),
            src_port: 40000,
            dst_port: 80,
            seq,
            ack,
            flags,
            payload_len,
        }
    }

    fn seen6(seq: u32, ack: u32, flags: u8, payload_len: u32) -> TcpSeen {
        TcpSeen {
            src: IpAddr::V6(Ipv6Addr::from(C6)),
            dst: IpAddr::V6(Ipv6Addr::from(S6)),
            ..seen4(seq, ack, flags, payload_len)
        }
    }

    /// What a forged reset says, after checking the frame parses and both checksums hold.
    #[derive(Debug, PartialEq)]
    struct Rst {
        dst_mac: [u8; 6],
        src_mac: [u8; 6],
        vids: Vec<u16>,
        src: IpAddr,
        dst: IpAddr,
        src_port: u16,
        dst_port: u16,
        seq: u32,
        ack: u32,
    }

    fn parse_rst(frame: &[u8]) -> Rst {
        let p = SlicedPacket::from_ethernet(frame).expect("frame parses");
        let eth = p
            .link
            .as_ref()
            .and_then(|l| l.to_header())
            .expect("ethernet");
        let eth = eth.ethernet2().expect("ethernet2");
        let vids = p
            .link_exts
            .iter()
            .map(|e| match e {
                LinkExtSlice::Vlan(v) => v.vlan_identifier().value(),
                other => panic!("unexpected link ext {other:?}"),
            })
            .collect();
        let Some(TransportSlice::Tcp(tcp)) = &p.transport else {
            panic!("not TCP: {:?}", p.transport)
        };
        assert!(tcp.rst() && tcp.ack(), "RST|ACK expected");
        assert!(!tcp.syn() && !tcp.fin() && !tcp.psh());
        assert_eq!(tcp.header_slice().len(), 20);
        assert!(tcp.payload().is_empty());
        let (src, dst) = match &p.net {
            Some(NetSlice::Ipv4(ip)) => {
                let h = ip.header();
                assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
                assert_eq!(
                    (h.ttl(), h.identification(), h.dont_fragment()),
                    (64, 0, true)
                );
                assert_eq!(h.ihl(), 5);
                assert_eq!(usize::from(h.total_len()), 40);
                assert_eq!(
                    tcp.checksum(),
                    tcp.calc_checksum_ipv4(h.source(), h.destination()).unwrap()
                );
                (
                    IpAddr::V4(h.source_addr()),
                    IpAddr::V4(h.destination_addr()),
                )
            }
            Some(NetSlice::Ipv6(ip)) => {
                let h = ip.header();
                assert_eq!(h.hop_limit(), 64);
                assert_eq!(h.payload_length(), 20);
                assert_eq!(
                    tcp.checksum(),
                    tcp.calc_checksum_ipv6(h.source(), h.destination()).unwrap()
                );
                (
                    IpAddr::V6(h.source_addr()),
                    IpAddr::V6(h.destination_addr()),
                )
            }
            other => panic!("not IP: {other:?}"),
        };
        Rst {
            dst_mac: eth.destination,
            src_mac: eth.source,
            vids,
            src,
            dst,
            src_port: tcp.source_port(),
            dst_port: tcp.destination_port(),
            seq: tcp.sequence_number(),
            ack: tcp.acknowledgment_number(),
        }
    }

    fn reset(l2: &L2Header, seen: &TcpSeen, toward: Toward) -> Rst {
        let mut out = vec![0xaa; 7]; // must be cleared first
        tcp_reset(l2, seen, toward, &mut out);
        let rst = parse_rst(&out);
        assert_eq!(out.len(), l2.as_bytes().len() + rst_ip_len(seen) + 20);
        rst
    }

    fn rst_ip_len(seen: &TcpSeen) -> usize {
        if seen.src.is_ipv4() {
            20
        } else {
            40
        }
    }

    #[test]
    fn reset_for_a_data_segment_ipv4() {
        let l2 = l2(&[], ETH_P_IPV4);
        let seen = seen4(1000, 5000, TCP_ACK | TCP_PSH, 100);
        let to_receiver = reset(&l2, &seen, Toward::Receiver);
        assert_eq!(
            to_receiver,
            Rst {
                dst_mac: SERVER_MAC,
                src_mac: CLIENT_MAC,
                vids: vec![],
                src: seen.src,
                dst: seen.dst,
                src_port: 40000,
                dst_port: 80,
                seq: 1100,
                ack: 5000,
            }
        );
        let to_sender = reset(&l2, &seen, Toward::Sender);
        assert_eq!(
            to_sender,
            Rst {
                dst_mac: CLIENT_MAC,
                src_mac: SERVER_MAC,
                vids: vec![],
                src: seen.dst,
                dst: seen.src,
                src_port: 80,
                dst_port: 40000,
                seq: 5000,
                ack: 1100,
            }
        );
    }

    #[test]
    fn reset_for_a_data_segment_ipv6() {
        let l2 = l2(&[], ETH_P_IPV6);
        let seen = seen6(u32::MAX - 9, 77, TCP_ACK, 20);
        let r = reset(&l2, &seen, Toward::Receiver);
        assert_eq!((r.src, r.dst, r.seq, r.ack), (seen.src, seen.dst, 10, 77));
        assert_eq!((r.src_port, r.dst_port), (40000, 80));
        let s = reset(&l2, &seen, Toward::Sender);
        assert_eq!((s.src, s.dst, s.seq, s.ack), (seen.dst, seen.src, 77, 10));
        assert_eq!((s.dst_mac, s.src_mac), (CLIENT_MAC, SERVER_MAC));
    }

    #[test]
    fn reset_for_a_syn_counts_the_syn_and_has_no_ack_to_echo() {
        let l2 = l2(&[], ETH_P_IPV4);
        let seen = seen4(u32::MAX, 0, TCP_SYN, 0);
        let r = reset(&l2, &seen, Toward::Receiver);
        assert_eq!((r.seq, r.ack), (0, 0)); // wraps
        let s = reset(&l2, &seen, Toward::Sender);
        assert_eq!((s.seq, s.ack), (0, 0));

        let seen = seen6(41, 0, TCP_SYN, 0);
        let s = reset(&l2, &seen, Toward::Sender);
        assert_eq!((s.seq, s.ack), (0, 42));
        // A SYN|ACK's ack is its sender's rcv_nxt.
        let seen = seen4(900, 43, TCP_SYN | TCP_ACK, 0);
        let s = reset(&l2, &seen, Toward::Sender);
        assert_eq!((s.seq, s.ack), (43, 901));
    }

    #[test]
    fn reset_for_a_fin_counts_the_fin() {
        let l2 = l2(&[], ETH_P_IPV4);
        let seen = seen4(500, 600, TCP_FIN | TCP_ACK, 10);
        let r = reset(&l2, &seen, Toward::Receiver);
        assert_eq!((r.seq, r.ack), (511, 600));
        let s = reset(&l2, &seen, Toward::Sender);
        assert_eq!((s.seq, s.ack), (600, 511));
        let seen = seen6(500, 600, TCP_FIN | TCP_ACK, 0);
        let s = reset(&l2, &seen, Toward::Sender);
        assert_eq!((s.seq, s.ack), (600, 501));
    }

    #[test]
    fn reset_keeps_vlan_tags_single_and_qinq() {
        let single = l2(&[(ETH_P_8021Q, 42)], ETH_P_IPV4);
        assert_eq!(single.vlan_tags(), 1);
        let seen = seen4(1, 2, TCP_ACK, 0);
        assert_eq!(reset(&single, &seen, Toward::Sender).vids, vec![42]);
        assert_eq!(reset(&single, &seen, Toward::Receiver).vids, vec![42]);

        let qinq = l2(&[(ETH_P_8021AD, 100), (ETH_P_8021Q, 7)], ETH_P_IPV6);
        assert_eq!(qinq.vlan_tags(), 2);
        let seen = seen6(1, 2, TCP_ACK, 0);
        let mut out = Vec::new();
        tcp_reset(&qinq, &seen, Toward::Sender, &mut out);
        assert_eq!(parse_rst(&out).vids, vec![100, 7]);
        // The tag bytes (TPIDs and TCIs) are exactly as captured.
        assert_eq!(&out[12..22], &qinq.as_bytes()[12..22]);
    }

    #[test]
    fn four_tags_are_kept_byte_for_byte() {
        let tags = [
            (ETH_P_8021AD, 1),
            (ETH_P_8021Q, 2),
            (ETH_P_8021Q, 3),
            (ETH_P_8021Q, 0xe004),
        ];
        let l2 = l2(&tags, ETH_P_IPV4);
        assert_eq!(l2.vlan_tags(), 4);
        let mut out = Vec::new();
        tcp_reset(&l2, &seen4(1, 2, TCP_ACK, 0), Toward::Receiver, &mut out);
        assert_eq!(&out[..30], l2.as_bytes());
        // etherparse stops at three tags; the IP header after the fourth is still right.
        let ip = Ipv4HeaderSlice::from_slice(&out[30..]).expect("IPv4 after four tags");
        assert_eq!(ip.destination(), S4);
    }

    #[test]
    fn ethertype_follows_the_addresses_not_the_capture() {
        // An IPv4-captured header used for an IPv6 reset still says 0x86dd.
        let l2 = l2(&[(ETH_P_8021Q, 5)], ETH_P_IPV4);
        let mut out = Vec::new();
        tcp_reset(&l2, &seen6(1, 2, TCP_ACK, 0), Toward::Receiver, &mut out);
        assert_eq!(&out[16..18], &ETH_P_IPV6.to_be_bytes());
        parse_rst(&out);
    }

    #[test]
    fn mixed_families_write_nothing() {
        let l2 = l2(&[], ETH_P_IPV4);
        let mut seen = seen4(1, 2, TCP_ACK, 0);
        seen.dst = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let mut out = vec![1, 2, 3];
        tcp_reset(&l2, &seen, Toward::Sender, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn from_frame_rejects_junk() {
        let mut ok = eth(&[(ETH_P_8021Q, 1)], ETH_P_IPV4);
        ok.extend_from_slice(&[0x45; 20]);
        assert!(L2Header::from_frame(&ok, 18).is_some());
        // Wrong offset, either side.
        assert!(L2Header::from_frame(&ok, 14).is_none());
        assert!(L2Header::from_frame(&ok, 22).is_none());
        // Short input: offset past the end, or cut inside the header.
        assert!(L2Header::from_frame(&ok[..17], 18).is_none());
        assert!(L2Header::from_frame(&ok[..13], 14).is_none());
        assert!(L2Header::from_frame(&[], 0).is_none());
        assert!(L2Header::from_frame(&[], 14).is_none());
        assert!(L2Header::from_frame(&ok, usize::MAX).is_none());
        // MPLS, ARP, PPPoE.
        for ethertype in [0x8847, 0x0806, 0x8864] {
            let f = eth(&[], ethertype);
            assert!(L2Header::from_frame(&f, 14).is_none(), "{ethertype:#x}");
        }
        // MPLS under a VLAN tag.
        let f = eth(&[(ETH_P_8021Q, 1)], 0x8847);
        assert!(L2Header::from_frame(&f, 18).is_none());
        // Five tags is too long.
        let f = eth(&[(ETH_P_8021Q, 1); 5], ETH_P_IPV4);
        assert!(L2Header::from_frame(&f, 34).is_none());
        // Exactly at the end of the frame is fine (the caller may have cut the IP part).
        let f = eth(&[], ETH_P_IPV6);
        assert!(L2Header::from_frame(&f, 14).is_some());
    }

    fn udp4_datagram(payload: &[u8], tags: &[(u16, u16)]) -> (Vec<u8>, usize) {
        let mut frame = eth(tags, ETH_P_IPV4);
        let l3 = frame.len();
        let b = PacketBuilder::ipv4(C4, S4, 20).udp(5353, 53);
        b.write(&mut frame, payload).unwrap();
        (frame, l3)
    }

    fn udp6_datagram(payload: &[u8]) -> Vec<u8> {
        let mut ip = Vec::new();
        PacketBuilder::ipv6(C6, S6, 20)
            .udp(5353, 53)
            .write(&mut ip, payload)
            .unwrap();
        ip
    }

    #[test]
    fn no_icmp_error_where_the_rfcs_forbid_one() {
        let (frame, l3) = udp4_datagram(b"x", &[]);
        let l2 = L2Header::from_frame(&frame, l3).unwrap();
        let mut out = Vec::new();
        let mut edited = |edit: &dyn Fn(&mut Vec<u8>)| {
            let mut original = frame[l3..].to_vec();
            edit(&mut original);
            icmp_unreachable(&l2, &original, &mut out)
        };
        assert!(edited(&|_| {}));
        // To a multicast or the broadcast address.
        assert!(!edited(&|o| o[16..20].copy_from_slice(&[239, 1, 2, 3])));
        assert!(!edited(&|o| o[16..20].copy_from_slice(&[255; 4])));
        // From an address that names no single host.
        assert!(!edited(&|o| o[12..16].copy_from_slice(&[0; 4])));
        // A non-first fragment (offset 8 × 8 bytes).
        assert!(!edited(&|o| o[6..8].copy_from_slice(&[0, 8])));
        // An ICMP error (type 3) itself, but not an echo request (type 8).
        assert!(!edited(&|o| {
            o[9] = 1;
            o[20] = 3;
        }));
        assert!(edited(&|o| {
            o[9] = 1;
            o[20] = 8;
        }));
    }

    #[test]
    fn icmpv4_port_unreachable() {
        let (mut frame, l3) = udp4_datagram(b"a question for the resolver", &[(ETH_P_8021Q, 9)]);
        let l2 = L2Header::from_frame(&frame, l3).unwrap();
        frame.extend_from_slice(&[0; 6]); // Ethernet padding after the datagram
        let original = &frame[l3..];
        let mut out = vec![9; 3];
        assert!(icmp_unreachable(&l2, original, &mut out));
        let p = SlicedPacket::from_ethernet(&out).unwrap();
        let eth = p.link.as_ref().unwrap().to_header().unwrap();
        let eth = eth.ethernet2().unwrap();
        assert_eq!((eth.destination, eth.source), (CLIENT_MAC, SERVER_MAC));
        assert!(
            matches!(&p.link_exts[..], [LinkExtSlice::Vlan(v)] if v.vlan_identifier().value() == 9)
        );
        let Some(NetSlice::Ipv4(ip)) = &p.net else {
            panic!("not IPv4")
        };
        let h = ip.header();
        assert_eq!((h.source(), h.destination()), (S4, C4));
        assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
        assert_eq!((h.ttl(), h.protocol()), (64, IpNumber::ICMP));
        let Some(TransportSlice::Icmpv4(icmp)) = &p.transport else {
            panic!("not ICMP")
        };
        assert_eq!((icmp.type_u8(), icmp.code_u8()), (3, 3));
        assert_eq!(
            icmp.checksum(),
            icmp.icmp_type().calc_checksum(icmp.payload())
        );
        // Quote: the 20-byte IP header and the 8-byte UDP header.
        assert_eq!(icmp.payload(), &original[..28]);
        assert_eq!(usize::from(h.total_len()), 20 + 8 + 28);
    }

    #[test]
    fn icmpv4_quote_stops_at_a_truncated_original_and_keeps_ip_options() {
        let (frame, l3) = udp4_datagram(b"xyz", &[]);
        let l2 = L2Header::from_frame(&frame, l3).unwrap();
        let mut out = Vec::new();
        // Truncated by the caller to the IP header plus 3 bytes.
        assert!(icmp_unreachable(&l2, &frame[l3..l3 + 23], &mut out));
        let p = SlicedPacket::from_ethernet(&out).unwrap();
        let Some(TransportSlice::Icmpv4(icmp)) = &p.transport else {
            panic!("not ICMP")
        };
        assert_eq!(icmp.payload(), &frame[l3..l3 + 23]);
        assert_eq!(
            icmp.checksum(),
            icmp.icmp_type().calc_checksum(icmp.payload())
        );

        // A 24-byte header (one option word) is quoted whole, plus 8.
        let mut ip = Ipv4Header::new(8 + 4, 20, IpNumber::UDP, C4, S4).unwrap();
        ip.options = [1, 1, 1, 0].into();
        ip.total_len = 24 + 12;
        let mut original = ip.to_bytes().to_vec();
        original.extend_from_slice(&[0x11; 12]);
        let mut out = Vec::new();
        assert!(icmp_unreachable(&l2, &original, &mut out));
        let p = SlicedPacket::from_ethernet(&out).unwrap();
        let Some(TransportSlice::Icmpv4(icmp)) = &p.transport else {
            panic!("not ICMP")
        };
        assert_eq!(icmp.payload(), &original[..32]);
    }

    #[test]
    fn icmpv6_port_unreachable() {
        let l2 = l2(&[(ETH_P_8021AD, 3), (ETH_P_8021Q, 4)], ETH_P_IPV6);
        for len in [0, 10, 1500] {
            let original = udp6_datagram(&vec![0x5a; len]);
            let mut out = Vec::new();
            assert!(icmp_unreachable(&l2, &original, &mut out));
            let p = SlicedPacket::from_ethernet(&out).unwrap();
            let vids: Vec<u16> = p
                .link_exts
                .iter()
                .filter_map(|e| match e {
                    LinkExtSlice::Vlan(v) => Some(v.vlan_identifier().value()),
                    _ => None,
                })
                .collect();
            assert_eq!(vids, vec![3, 4]);
            let Some(NetSlice::Ipv6(ip)) = &p.net else {
                panic!("not IPv6")
            };
            let h = ip.header();
            assert_eq!((h.source(), h.destination(), h.hop_limit()), (S6, C6, 64));
            let Some(TransportSlice::Icmpv6(icmp)) = &p.transport else {
                panic!("not ICMPv6")
            };
            assert_eq!((icmp.type_u8(), icmp.code_u8()), (1, 4));
            assert!(icmp.is_checksum_valid(h.source(), h.destination()));
            let quoted = original.len().min(1280 - 48);
            assert_eq!(icmp.payload(), &original[..quoted]);
            assert_eq!(out.len() - l2.as_bytes().len(), (40 + 8 + quoted).min(1280));
        }
    }

    #[test]
    fn icmp_refuses_what_is_not_ip() {
        let l2 = l2(&[], ETH_P_IPV4);
        let mut out = vec![1];
        for bad in [
            &[][..],
            &[0x45; 19][..], // short IPv4 header
            &[0x44; 40][..], // IHL 4
            &[0x4f; 40][..], // IHL 15 but only 40 bytes
            &[0x60; 39][..], // short IPv6 header
            &[0x00; 60][..], // version 0
            &[0x5f; 60][..], // version 5
        ] {
            assert!(!icmp_unreachable(&l2, bad, &mut out), "{bad:?}");
            assert!(out.is_empty());
        }
    }

    /// xorshift64: deterministic, no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut out = Vec::new();
        let mut accepted = 0;
        let fallback = l2(&[], ETH_P_IPV4);
        for i in 0..20_000 {
            let len = (rng.next() % 96) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            // Bias towards the interesting prefixes so the deep paths run too.
            match i % 4 {
                1 if len >= 14 => bytes[12..14].copy_from_slice(&ETH_P_8021Q.to_be_bytes()),
                2 if len >= 1 => bytes[0] = (bytes[0] & 0x0f) | 0x40,
                3 if len >= 1 => bytes[0] = (bytes[0] & 0x0f) | 0x60,
                _ => {}
            }
            let offset = (rng.next() % 40) as usize;
            let l2 = L2Header::from_frame(&bytes, offset).unwrap_or(fallback);
            let rest = bytes.get(offset..).unwrap_or(&[]);
            if icmp_unreachable(&l2, rest, &mut out) {
                accepted += 1;
                SlicedPacket::from_ethernet(&out).expect("what we forge parses");
            }
            if icmp_unreachable(&l2, &bytes, &mut out) {
                accepted += 1;
            }
            let seen = TcpSeen {
                seq: rng.next() as u32,
                ack: rng.next() as u32,
                flags: rng.next() as u8,
                payload_len: rng.next() as u32,
                ..seen4(0, 0, 0, 0)
            };
            tcp_reset(&l2, &seen, Toward::Sender, &mut out);
            assert!(!out.is_empty());
        }
        assert!(accepted > 1000, "only {accepted} random originals parsed");
    }
}
