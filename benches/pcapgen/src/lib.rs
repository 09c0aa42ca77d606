//! Deterministic mixed-traffic pcap generator for Vigil's tests and benchmarks.
//!
//! [`generate`] streams a classic pcap of interleaved HTTP, TLS, DNS, NTP,
//! syslog, generic UDP and ICMP flows, some over IPv6, some inside VLAN,
//! QinQ, MPLS, GRE, ERSPAN, VXLAN, Geneve, IP-in-IP and Teredo
//! encapsulations, some fragmented, and returns per-flow ground truth.
//! The output depends only on the [`GenConfig`]: same config, same bytes.
//!
//! [`writer`] re-encodes frames as pcap (either byte order, either
//! timestamp resolution, any snaplen), pcapng (EPB/SPB, several
//! interfaces) and other link types, so readers can be tested on all of them.

mod apps;
mod engine;
mod packet;
mod rng;
pub mod writer;

use std::io::{self, Write};
use std::net::IpAddr;

use serde::Serialize;

pub use writer::{
    convert_frames, convert_linktype, write_pcap, write_pcapng, write_pcapng_two_interfaces,
    Endian, LinkType, PcapOptions, PcapWriter, PcapngBlock, PcapngInterface, PcapngOptions,
    PcapngWriter, TsPrecision,
};

/// Relative weights of application flow kinds (by flow count).
#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    /// HTTP/1.1 over TCP 80 / 8080.
    pub http: u32,
    /// TLS 1.3 over TCP 443.
    pub tls: u32,
    /// DNS over UDP 53 (a few over TCP 53).
    pub dns: u32,
    /// NTP, syslog, random high-port UDP.
    pub other_udp: u32,
    /// ICMP / ICMPv6 echo, occasional destination-unreachable.
    pub icmp: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            http: 18,
            tls: 17,
            dns: 42,
            other_udp: 13,
            icmp: 10,
        }
    }
}

/// Which encapsulations may be used (each is used equally often among the
/// encapsulated flows).
#[derive(Debug, Clone, PartialEq)]
pub struct Encaps {
    pub vlan: bool,
    pub qinq: bool,
    pub mpls: bool,
    /// Plain GRE (IPv4 and IPv6 payloads) and GRE with key.
    pub gre: bool,
    pub erspan: bool,
    pub vxlan: bool,
    pub geneve: bool,
    /// IPv4-in-IPv4 (proto 4) and IPv6-in-IPv4 (proto 41).
    pub ipip: bool,
    pub teredo: bool,
}

impl Default for Encaps {
    fn default() -> Self {
        Encaps {
            vlan: true,
            qinq: true,
            mpls: true,
            gre: true,
            erspan: true,
            vxlan: true,
            geneve: true,
            ipip: true,
            teredo: true,
        }
    }
}

impl Encaps {
    /// No encapsulation at all: plain Ethernet only.
    pub fn none() -> Self {
        Encaps {
            vlan: false,
            qinq: false,
            mpls: false,
            gre: false,
            erspan: false,
            vxlan: false,
            geneve: false,
            ipip: false,
            teredo: false,
        }
    }
}

/// Generator configuration. Build with [`GenConfig::new`] and adjust fields.
#[derive(Debug, Clone, PartialEq)]
pub struct GenConfig {
    pub seed: u64,
    /// Approximate output file size; generation stops starting new flows
    /// once written + pending bytes reach it (active flows finish).
    pub target_bytes: u64,
    /// Timestamp of the first flow's start, seconds since the epoch.
    pub base_ts_secs: u64,
    /// Nanosecond pcap (magic 0xa1b23c4d) instead of microsecond.
    pub nanos: bool,
    /// Mean flow arrival rate (Poisson).
    pub flows_per_sec: f64,
    pub mix: Mix,
    /// Share of non-tunnelled flows carried over IPv6.
    pub ipv6_share: f64,
    /// Share of flows (by count) that are encapsulated.
    pub encap_share: f64,
    pub encaps: Encaps,
    /// Share of UDP flows (DNS, generic UDP) that send datagrams larger
    /// than the MTU, i.e. IPv4/IPv6 fragments.
    pub fragment_share: f64,
    /// Probability that a fragmented datagram is sent last-fragment-first.
    pub frag_reverse_prob: f64,
    /// Fault injection: probability that one fragment of a fragmented
    /// datagram is dropped. Such a datagram is not counted in the flow's
    /// `pkts_*`; the fragments that were sent are counted in `bytes_*`.
    pub frag_drop_prob: f64,
}

impl GenConfig {
    pub fn new(seed: u64, target_bytes: u64) -> Self {
        GenConfig {
            seed,
            target_bytes,
            ..Default::default()
        }
    }
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            seed: 1,
            target_bytes: 1 << 20,
            base_ts_secs: 1_715_594_400,
            nanos: false,
            flows_per_sec: 100.0,
            mix: Mix::default(),
            ipv6_share: 0.15,
            encap_share: 0.12,
            encaps: Encaps::default(),
            fragment_share: 0.08,
            frag_reverse_prob: 0.2,
            frag_drop_prob: 0.0,
        }
    }
}

/// Outer tunnel of a flow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TunnelTruth {
    /// "GRE", "ERSPAN", "VXLAN", "GENEVE", "IPIP" (also IPv6-in-IPv4), "TEREDO".
    pub kind: &'static str,
    /// Outer source address of client-to-server packets.
    pub outer_client: IpAddr,
    pub outer_server: IpAddr,
    /// VXLAN/Geneve VNI, GRE key, ERSPAN session id; 0 otherwise.
    pub id: u32,
}

/// Ground truth for one conversation (5-tuple in one VLAN/tunnel context).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowTruth {
    /// 6, 17, 1 or 58.
    pub proto: u8,
    pub client: IpAddr,
    pub server: IpAddr,
    /// 0 for ICMP.
    pub client_port: u16,
    pub server_port: u16,
    /// VLAN ids, outer first (QinQ: [S-tag, C-tag]).
    pub vlans: Vec<u16>,
    /// MPLS labels, top of stack first.
    pub mpls: Vec<u32>,
    pub tunnel: Option<TunnelTruth>,
    /// "http", "tls", "dns", "dns-tcp", "ntp", "syslog", "udp",
    /// "icmp-echo", "udp-closed" (probe) or "icmp-unreach" (its error,
    /// which travels server-to-client only).
    pub app: &'static str,
    /// IP datagrams; a fragmented datagram counts once.
    pub pkts_toserver: u64,
    pub pkts_toclient: u64,
    /// Sum of Ethernet frame lengths (outermost), every fragment included.
    pub bytes_toserver: u64,
    pub bytes_toclient: u64,
    /// Datagrams of this flow that were sent as fragments.
    pub fragmented: u32,
    pub first_ts_ns: u64,
    pub last_ts_ns: u64,
}

/// What a generation run produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GenSummary {
    /// Frames written.
    pub packets: u64,
    /// Classic pcap bytes (global header + records).
    pub bytes_written: u64,
    /// One entry per generated flow, in flow start order.
    pub flows: Vec<FlowTruth>,
}

/// Streams a classic little-endian pcap (Ethernet) to `out`.
///
/// Memory holds only the frames of flows still in progress.
pub fn generate(cfg: &GenConfig, out: impl Write) -> io::Result<GenSummary> {
    let opts = PcapOptions {
        precision: if cfg.nanos {
            TsPrecision::Nano
        } else {
            TsPrecision::Micro
        },
        ..PcapOptions::default()
    };
    let mut w = PcapWriter::new(io::BufWriter::with_capacity(1 << 20, out), opts)?;
    let summary = engine::run(cfg, |ts, frame| w.write_packet(ts, frame))?;
    w.into_inner()?.flush()?;
    Ok(summary)
}

/// Streams frames `(timestamp ns, Ethernet frame)` in time order to `sink`
/// without writing any file format, e.g. to re-encode them on the fly.
/// The summary's `bytes_written` is what the classic pcap would take.
pub fn generate_each(
    cfg: &GenConfig,
    sink: impl FnMut(u64, &[u8]) -> io::Result<()>,
) -> io::Result<GenSummary> {
    engine::run(cfg, sink)
}

/// Generates into memory: frames as `(timestamp ns, Ethernet frame)` in
/// time order, plus the truth. Meant for small sizes in tests.
pub fn generate_frames(cfg: &GenConfig) -> (Vec<(u64, Vec<u8>)>, GenSummary) {
    let mut frames = Vec::new();
    let summary = engine::run(cfg, |ts, f| {
        frames.push((ts, f.to_vec()));
        Ok(())
    })
    .expect("in-memory sink cannot fail");
    (frames, summary)
}
