//! The decoded view of one packet: fixed size, `Copy`, no heap, so that a batch of them can be
//! reused packet after packet without allocation. Offsets are into the packet's bytes as captured.

use std::net::{IpAddr, Ipv4Addr};
use std::ops::Range;

/// Most VLAN tags kept per packet (802.1Q, QinQ, QinQinQ); deeper stacks are counted as an anomaly.
pub const MAX_VLANS: usize = 3;
/// Most anomalies recorded per packet; further ones are counted in `anomalies_overflow`.
pub const MAX_ANOMALIES: usize = 4;

/// What the outermost L2/L3 layer of a packet turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PacketKind {
    /// Not decoded far enough to say (an error stopped decoding before L3).
    #[default]
    Unknown,
    Arp,
    /// An IPv4 or IPv6 packet; see `DecodedPacket::l3` and `l4`.
    Ip,
    /// An ethertype Vigil does not decode (LLDP, STP, …); counted, not an anomaly.
    OtherEthertype(u16),
}

/// The tunnel a packet arrived in. The inner packet is tracked as its own flow; the outer
/// endpoints are kept so events can name the tunnel and flows in different tunnels stay apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TunnelKind {
    #[default]
    None,
    Gre,
    ErspanII,
    Vxlan,
    Geneve,
    /// IPv4 or IPv6 carried directly in IPv4 or IPv6 (protocols 4 and 41).
    IpInIp,
    Teredo,
}

impl TunnelKind {
    /// The name EVE uses in `tunnel.proto`-style fields and the decoder stats.
    pub fn as_str(self) -> &'static str {
        match self {
            TunnelKind::None => "none",
            TunnelKind::Gre => "GRE",
            TunnelKind::ErspanII => "ERSPAN",
            TunnelKind::Vxlan => "VXLAN",
            TunnelKind::Geneve => "GENEVE",
            TunnelKind::IpInIp => "IPIP",
            TunnelKind::Teredo => "TEREDO",
        }
    }
}

/// The outermost tunnel's context. With nested tunnels, `depth` counts the layers and the
/// endpoints are the outermost ones; `id` is the VNI/GRE key/ERSPAN session of the innermost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TunnelContext {
    pub kind: TunnelKind,
    pub depth: u8,
    pub outer_src: IpAddr,
    pub outer_dst: IpAddr,
    /// Outer transport protocol (47 GRE, 17 UDP, 4/41 IP-in-IP).
    pub outer_proto: u8,
    pub outer_src_port: u16,
    pub outer_dst_port: u16,
    /// VXLAN/Geneve VNI, GRE key, ERSPAN session id; 0 when the tunnel has none.
    pub id: u32,
}

impl Default for TunnelContext {
    fn default() -> Self {
        TunnelContext {
            kind: TunnelKind::None,
            depth: 0,
            outer_src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            outer_dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            outer_proto: 0,
            outer_src_port: 0,
            outer_dst_port: 0,
            id: 0,
        }
    }
}

/// A fragment's place in its datagram, for the defragmenter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FragmentInfo {
    /// IPv4 identification (16 bits) or IPv6 fragment header identification (32 bits).
    pub id: u32,
    /// Offset of this fragment's data in the original datagram, in bytes.
    pub offset: u32,
    pub more_fragments: bool,
    /// The protocol of the fragmented payload (IPv4 protocol, IPv6 fragment header next header).
    pub payload_proto: u8,
    /// Where this fragment's data begins and how long it is, within the packet bytes.
    pub data_offset: u32,
    pub data_len: u32,
    /// IPv6 only: bytes from the IPv6 header start up to (excluding) the fragment header;
    /// the unfragmentable part that leads the reassembled datagram.
    pub unfragmentable_len: u32,
}

/// The innermost IP layer (after tunnels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L3 {
    pub version: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Transport protocol after IPv6 extension headers.
    pub proto: u8,
    pub ttl: u8,
    pub tos: u8,
    /// IPv4 identification, or the IPv6 fragment id when there is a fragment header, else 0.
    pub ip_id: u32,
    /// Offset of the IP header within the packet bytes.
    pub header_offset: u32,
    /// Length of the IP header: IPv4 with its options, IPv6 with the extension headers that
    /// were walked. The transport header (if any) starts right after it.
    pub header_len: u32,
    /// Length of the IP datagram as the header says (IPv4 total length, IPv6 40 + payload length).
    pub datagram_len: u32,
    /// Set when this packet is a fragment (offset > 0 or more-fragments).
    pub fragment: Option<FragmentInfo>,
    /// IPv4 options present (bitmask of `IPOPT_*` below) or IPv6 extension headers seen.
    pub ip_options: u16,
}

impl Default for L3 {
    fn default() -> Self {
        L3 {
            version: 0,
            src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            proto: 0,
            ttl: 0,
            tos: 0,
            ip_id: 0,
            header_offset: 0,
            header_len: 0,
            datagram_len: 0,
            fragment: None,
            ip_options: 0,
        }
    }
}

/// IPv4 option bits for `L3::ip_options` (Suricata's `ipopts` names).
pub const IPOPT_RR: u16 = 1 << 0;
pub const IPOPT_LSRR: u16 = 1 << 1;
pub const IPOPT_SSRR: u16 = 1 << 2;
pub const IPOPT_TS: u16 = 1 << 3;
pub const IPOPT_SEC: u16 = 1 << 4;
pub const IPOPT_SID: u16 = 1 << 5;
pub const IPOPT_RTRALT: u16 = 1 << 6;
pub const IPOPT_EOL: u16 = 1 << 7;
pub const IPOPT_NOP: u16 = 1 << 8;
pub const IPOPT_OTHER: u16 = 1 << 9;
/// IPv6 extension header bits for `L3::ip_options`.
pub const IPV6_EXT_HOPOPTS: u16 = 1 << 10;
pub const IPV6_EXT_ROUTING: u16 = 1 << 11;
pub const IPV6_EXT_FRAGMENT: u16 = 1 << 12;
pub const IPV6_EXT_DSTOPTS: u16 = 1 << 13;
pub const IPV6_EXT_AUTH: u16 = 1 << 14;

/// TCP flag bits as they sit in the header's flags byte (plus ECE/CWR).
pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;
pub const TCP_URG: u8 = 0x20;
pub const TCP_ECE: u8 = 0x40;
pub const TCP_CWR: u8 = 0x80;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpInfo {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    /// Options parsed once here so later stages need not walk them again.
    pub mss: Option<u16>,
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    pub timestamp: Option<(u32, u32)>,
    pub header_len: u8,
}

/// The innermost transport layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum L4 {
    #[default]
    None,
    Tcp(TcpInfo),
    Udp {
        src_port: u16,
        dst_port: u16,
    },
    Icmpv4 {
        icmp_type: u8,
        code: u8,
        /// Echo/timestamp/info id and sequence; 0 for other types.
        id: u16,
        seq: u16,
    },
    Icmpv6 {
        icmp_type: u8,
        code: u8,
        id: u16,
        seq: u16,
    },
    Sctp {
        src_port: u16,
        dst_port: u16,
    },
}

/// A decoder anomaly, named as Suricata names its decoder events so existing SIEM content keys
/// on the same strings (`decoder.ipv4.trunc_pkt`, …). The name is `&'static` to stay `Copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anomaly {
    pub event: &'static str,
    /// The layer that was being decoded (`ethernet`, `vlan`, `ipv4`, `ipv6`, `tcp`, `udp`, …).
    pub layer: &'static str,
}

/// Decode result for one packet. Reused across packets: `decode` resets it first.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecodedPacket {
    pub kind: PacketKind,
    pub vlans: [u16; MAX_VLANS],
    pub vlan_count: u8,
    pub mpls_labels: u8,
    pub tunnel: TunnelContext,
    /// Valid when `kind == PacketKind::Ip`.
    pub l3: L3,
    pub l4: L4,
    /// Transport payload within the packet bytes (TCP/UDP/SCTP data, ICMP body).
    pub payload_offset: u32,
    pub payload_len: u32,
    pub anomalies: [Option<Anomaly>; MAX_ANOMALIES],
    pub anomaly_count: u8,
    pub anomalies_overflow: u8,
}

impl DecodedPacket {
    pub fn reset(&mut self) {
        *self = DecodedPacket::default();
    }

    /// Records an anomaly; past `MAX_ANOMALIES` only the overflow count grows.
    pub fn push_anomaly(&mut self, layer: &'static str, event: &'static str) {
        let idx = self.anomaly_count as usize;
        if idx < MAX_ANOMALIES {
            self.anomalies[idx] = Some(Anomaly { event, layer });
            self.anomaly_count += 1;
        } else {
            self.anomalies_overflow = self.anomalies_overflow.saturating_add(1);
        }
    }

    pub fn anomalies(&self) -> impl Iterator<Item = &Anomaly> {
        self.anomalies.iter().flatten()
    }

    pub fn vlans(&self) -> &[u16] {
        &self.vlans[..self.vlan_count as usize]
    }

    /// Source and destination ports of TCP, UDP and SCTP; `None` for other protocols.
    pub fn ports(&self) -> Option<(u16, u16)> {
        match self.l4 {
            L4::Tcp(t) => Some((t.src_port, t.dst_port)),
            L4::Udp { src_port, dst_port } | L4::Sctp { src_port, dst_port } => {
                Some((src_port, dst_port))
            }
            _ => None,
        }
    }

    pub fn is_fragment(&self) -> bool {
        self.kind == PacketKind::Ip && self.l3.fragment.is_some()
    }

    /// Where the IP header (IPv4 with options, IPv6 with its extension headers) lies in the
    /// packet bytes; `None` for non-IP packets.
    pub fn ip_header_range(&self) -> Option<Range<usize>> {
        if self.kind != PacketKind::Ip {
            return None;
        }
        let start = self.l3.header_offset as usize;
        Some(start..start + self.l3.header_len as usize)
    }

    /// Where the transport header lies in the packet bytes: TCP with options, UDP's 8 bytes,
    /// ICMPv6's 8, ICMPv4's 8 plus the fields Suricata counts as header (timestamps, router
    /// advertisement entries). `None` when no transport header was decoded (a later fragment,
    /// a TCP header cut short by the capture).
    pub fn l4_header_range(&self) -> Option<Range<usize>> {
        if self.kind != PacketKind::Ip {
            return None;
        }
        let start = self.l3.header_offset as usize + self.l3.header_len as usize;
        let len = match self.l4 {
            L4::Tcp(t) if t.header_len > 0 => usize::from(t.header_len),
            L4::Udp { .. } | L4::Icmpv6 { .. } => 8,
            // The decoder puts the ICMPv4 payload right after the header.
            L4::Icmpv4 { .. } => (self.payload_offset as usize).checked_sub(start)?,
            _ => return None,
        };
        Some(start..start + len)
    }
}
