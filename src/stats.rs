//! Run counters: what the decoder, flow tables and defragmenter saw. Summed from the threads
//! that own them at the end of a run (and, in the daemon, on a timer).

use vigil_parsers::{DecodedPacket, DefragStats, LinkType, PacketKind, TunnelKind, L4};

use crate::flow::FlowStats;

/// Decoder counters, named after Suricata's `stats.decoder.*`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecoderStats {
    pub pkts: u64,
    pub bytes: u64,
    pub invalid: u64,
    pub ethernet: u64,
    pub raw: u64,
    pub null: u64,
    pub sll: u64,
    pub sll2: u64,
    pub ipv4: u64,
    pub ipv6: u64,
    pub tcp: u64,
    pub udp: u64,
    pub sctp: u64,
    pub icmpv4: u64,
    pub icmpv6: u64,
    pub arp: u64,
    pub vlan: u64,
    pub vlan_qinq: u64,
    pub vlan_qinqinq: u64,
    pub mpls: u64,
    pub gre: u64,
    pub erspan: u64,
    pub vxlan: u64,
    pub geneve: u64,
    pub teredo: u64,
    pub ipv4_in_ipv4: u64,
    pub ipv6_in_ipv4: u64,
    pub ipv4_in_ipv6: u64,
    pub ipv6_in_ipv6: u64,
    pub unknown_ethertype: u64,
    pub unsupported_linktype: u64,
    pub max_pkt_size: u64,
    /// Packets with at least one anomaly.
    pub decode_errors: u64,
    /// Count per anomaly name; a short list, searched linearly (a handful of names per run).
    pub events: Vec<(&'static str, u64)>,
}

impl DecoderStats {
    /// Counts one decoded frame of `wire_len` bytes.
    pub fn count(&mut self, link: LinkType, wire_len: u64, pkt: &DecodedPacket) {
        self.pkts += 1;
        self.bytes += wire_len;
        self.max_pkt_size = self.max_pkt_size.max(wire_len);
        match link {
            LinkType::Ethernet => self.ethernet += 1,
            LinkType::Raw | LinkType::Ipv4 | LinkType::Ipv6 => self.raw += 1,
            LinkType::Null | LinkType::Loop => self.null += 1,
            LinkType::LinuxSll => self.sll += 1,
            LinkType::LinuxSll2 => self.sll2 += 1,
            LinkType::Unsupported(_) => self.unsupported_linktype += 1,
        }
        match pkt.vlan_count {
            0 => {}
            1 => self.vlan += 1,
            2 => self.vlan_qinq += 1,
            _ => self.vlan_qinqinq += 1,
        }
        if pkt.mpls_labels > 0 {
            self.mpls += 1;
        }
        match pkt.kind {
            PacketKind::Arp => self.arp += 1,
            PacketKind::OtherEthertype(_) => self.unknown_ethertype += 1,
            PacketKind::Unknown => self.invalid += 1,
            PacketKind::Ip => self.count_ip(pkt),
        }
        if pkt.anomaly_count > 0 {
            self.decode_errors += 1;
            for a in pkt.anomalies() {
                self.count_event(a.event);
            }
        }
    }

    fn count_ip(&mut self, pkt: &DecodedPacket) {
        let inner_v4 = pkt.l3.version == 4;
        if inner_v4 {
            self.ipv4 += 1;
        } else {
            self.ipv6 += 1;
        }
        match pkt.tunnel.kind {
            TunnelKind::None => {}
            TunnelKind::Gre => self.gre += 1,
            TunnelKind::ErspanII => {
                self.gre += 1;
                self.erspan += 1;
            }
            TunnelKind::Vxlan => self.vxlan += 1,
            TunnelKind::Geneve => self.geneve += 1,
            TunnelKind::Teredo => self.teredo += 1,
            TunnelKind::IpInIp => match (pkt.tunnel.outer_src.is_ipv4(), inner_v4) {
                (true, true) => self.ipv4_in_ipv4 += 1,
                (true, false) => self.ipv6_in_ipv4 += 1,
                (false, true) => self.ipv4_in_ipv6 += 1,
                (false, false) => self.ipv6_in_ipv6 += 1,
            },
        }
        match pkt.l4 {
            L4::Tcp(_) => self.tcp += 1,
            L4::Udp { .. } => self.udp += 1,
            L4::Sctp { .. } => self.sctp += 1,
            L4::Icmpv4 { .. } => self.icmpv4 += 1,
            L4::Icmpv6 { .. } => self.icmpv6 += 1,
            L4::None => {}
        }
    }

    /// Sums another decoder's counters into these (several live workers, one report).
    pub fn add(&mut self, o: &DecoderStats) {
        let DecoderStats {
            pkts,
            bytes,
            invalid,
            ethernet,
            raw,
            null,
            sll,
            sll2,
            ipv4,
            ipv6,
            tcp,
            udp,
            sctp,
            icmpv4,
            icmpv6,
            arp,
            vlan,
            vlan_qinq,
            vlan_qinqinq,
            mpls,
            gre,
            erspan,
            vxlan,
            geneve,
            teredo,
            ipv4_in_ipv4,
            ipv6_in_ipv4,
            ipv4_in_ipv6,
            ipv6_in_ipv6,
            unknown_ethertype,
            unsupported_linktype,
            max_pkt_size,
            decode_errors,
            events,
        } = o;
        for (sum, n) in [
            (&mut self.pkts, pkts),
            (&mut self.bytes, bytes),
            (&mut self.invalid, invalid),
            (&mut self.ethernet, ethernet),
            (&mut self.raw, raw),
            (&mut self.null, null),
            (&mut self.sll, sll),
            (&mut self.sll2, sll2),
            (&mut self.ipv4, ipv4),
            (&mut self.ipv6, ipv6),
            (&mut self.tcp, tcp),
            (&mut self.udp, udp),
            (&mut self.sctp, sctp),
            (&mut self.icmpv4, icmpv4),
            (&mut self.icmpv6, icmpv6),
            (&mut self.arp, arp),
            (&mut self.vlan, vlan),
            (&mut self.vlan_qinq, vlan_qinq),
            (&mut self.vlan_qinqinq, vlan_qinqinq),
            (&mut self.mpls, mpls),
            (&mut self.gre, gre),
            (&mut self.erspan, erspan),
            (&mut self.vxlan, vxlan),
            (&mut self.geneve, geneve),
            (&mut self.teredo, teredo),
            (&mut self.ipv4_in_ipv4, ipv4_in_ipv4),
            (&mut self.ipv6_in_ipv4, ipv6_in_ipv4),
            (&mut self.ipv4_in_ipv6, ipv4_in_ipv6),
            (&mut self.ipv6_in_ipv6, ipv6_in_ipv6),
            (&mut self.unknown_ethertype, unknown_ethertype),
            (&mut self.unsupported_linktype, unsupported_linktype),
            (&mut self.decode_errors, decode_errors),
        ] {
            *sum += *n;
        }
        self.max_pkt_size = self.max_pkt_size.max(*max_pkt_size);
        for (name, n) in events {
            match self.events.iter_mut().find(|(e, _)| e == name) {
                Some((_, c)) => *c += n,
                None => self.events.push((name, *n)),
            }
        }
    }

    pub fn count_event(&mut self, name: &'static str) {
        match self.events.iter_mut().find(|(n, _)| *n == name) {
            Some((_, c)) => *c += 1,
            None => self.events.push((name, 1)),
        }
    }
}

/// Everything a run counted; the final `stats` event and the summary are made from it.
#[derive(Debug, Clone, Default)]
pub struct RunStats {
    pub decoder: DecoderStats,
    pub flow: FlowStats,
    pub defrag: DefragStats,
    pub app_layer: crate::applayer::AppLayerStats,
    /// Application-layer events written, by EVE event type (http, dns, tls, ssh).
    pub app_events: AppEventCounts,
    /// Anomaly events not written because of the per-second rate limit.
    pub anomalies_suppressed: u64,
    /// Events dropped because the output queue was full (live capture only, never alerts).
    pub events_dropped: u64,
    /// Times a worker found the output queue full and waited, and for how long in all.
    pub output_waits: u64,
    pub output_wait_ns: u64,
    pub flow_events: u64,
    pub anomaly_events: u64,
    pub alerts: u64,
    pub uptime_secs: u64,
    /// Live capture only: frames the sockets received and frames the kernel dropped.
    pub capture: Option<CaptureCounts>,
    pub first_ts_ns: u64,
    pub last_ts_ns: u64,
}

/// Live capture counters summed over the sources (Suricata's `stats.capture.kernel_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureCounts {
    pub kernel_packets: u64,
    pub kernel_drops: u64,
}

impl RunStats {
    /// Adds a worker's report (all but the dispatcher's decoder and defrag counters).
    pub fn add_worker(&mut self, report: &crate::pipeline::WorkerReport) {
        self.flow.add(&report.flow);
        self.app_layer.add(&report.app_layer);
        self.app_events.add(&report.app_events);
        self.flow_events += report.flow_events;
        self.alerts += report.alerts;
        self.anomaly_events += report.anomaly_events;
        self.anomalies_suppressed += report.anomalies_suppressed;
        self.output_waits += report.output_waits;
        self.output_wait_ns += report.output_wait_ns;
        self.events_dropped += report.events_dropped;
    }
}

/// Application-layer events written per type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppEventCounts {
    pub http: u64,
    pub dns_udp: u64,
    pub dns_tcp: u64,
    pub tls: u64,
    pub ssh: u64,
}

impl AppEventCounts {
    pub fn add(&mut self, o: &AppEventCounts) {
        self.http += o.http;
        self.dns_udp += o.dns_udp;
        self.dns_tcp += o.dns_tcp;
        self.tls += o.tls;
        self.ssh += o.ssh;
    }

    pub fn dns(&self) -> u64 {
        self.dns_udp + self.dns_tcp
    }

    pub fn count(&mut self, proto: vigil_parsers::app::AppProto, over_tcp: bool) {
        use vigil_parsers::app::AppProto;
        match proto {
            AppProto::Http => self.http += 1,
            AppProto::Dns if over_tcp => self.dns_tcp += 1,
            AppProto::Dns => self.dns_udp += 1,
            AppProto::Tls => self.tls += 1,
            AppProto::Ssh => self.ssh += 1,
            AppProto::Unknown | AppProto::Failed => {}
        }
    }
}
