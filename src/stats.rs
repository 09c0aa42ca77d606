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
    /// `alerts` per rule, the anomaly models' included once the run adds them.
    pub rule_alerts: RuleAlertCounts,
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
        self.rule_alerts.merge(&report.rule_alerts);
        self.anomaly_events += report.anomaly_events;
        self.anomalies_suppressed += report.anomalies_suppressed;
        self.output_waits += report.output_waits;
        self.output_wait_ns += report.output_wait_ns;
        self.events_dropped += report.events_dropped;
    }

    /// Adds the anomaly models' alerts: `detect.alert` and the per-rule counts take every
    /// alert written, the models' too.
    pub fn add_models(&mut self, models: Option<&crate::anomaly::AnomalyCounters>) {
        if let Some(m) = models {
            self.alerts += m.snapshot().alerts;
            self.rule_alerts.merge(&m.rule_alerts());
        }
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
    /// `fileinfo` events (files carried by HTTP bodies).
    pub files: u64,
}

impl AppEventCounts {
    pub fn add(&mut self, o: &AppEventCounts) {
        self.http += o.http;
        self.dns_udp += o.dns_udp;
        self.dns_tcp += o.dns_tcp;
        self.tls += o.tls;
        self.ssh += o.ssh;
        self.files += o.files;
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

/// Alerts one rule raised in a run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuleAlerts {
    pub gid: u32,
    #[serde(rename = "signature_id")]
    pub sid: u32,
    pub rev: u32,
    #[serde(rename = "signature")]
    pub msg: String,
    pub alerts: u64,
}

/// Per-rule alert counts keyed by (gid, sid, rev). Workers count by the loaded set's signature
/// index, which means nothing across sets; this key does, so counts of a set that a reload
/// replaced, of other workers and of the anomaly models add up here. Holds only rules that
/// alerted, so its size is bounded by the rulesets, not by traffic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleAlertCounts {
    /// Sorted by (gid, sid, rev).
    rules: Vec<RuleAlerts>,
}

impl RuleAlertCounts {
    pub fn add(&mut self, gid: u32, sid: u32, rev: u32, msg: &str, alerts: u64) {
        if alerts == 0 {
            return;
        }
        match self
            .rules
            .binary_search_by_key(&(gid, sid, rev), |r| (r.gid, r.sid, r.rev))
        {
            Ok(i) => self.rules[i].alerts += alerts,
            Err(i) => self.rules.insert(
                i,
                RuleAlerts {
                    gid,
                    sid,
                    rev,
                    msg: msg.to_owned(),
                    alerts,
                },
            ),
        }
    }

    pub fn merge(&mut self, other: &RuleAlertCounts) {
        for r in &other.rules {
            self.add(r.gid, r.sid, r.rev, &r.msg, r.alerts);
        }
    }

    /// Every rule that alerted, by (gid, sid, rev).
    pub fn rules(&self) -> &[RuleAlerts] {
        &self.rules
    }

    pub fn total(&self) -> u64 {
        self.rules.iter().map(|r| r.alerts).sum()
    }

    /// The `n` rules with the most alerts, most first (ties by gid, sid, rev).
    pub fn top(&self, n: usize) -> Vec<&RuleAlerts> {
        let mut all: Vec<&RuleAlerts> = self.rules.iter().collect();
        all.sort_by(|a, b| {
            b.alerts
                .cmp(&a.alerts)
                .then((a.gid, a.sid, a.rev).cmp(&(b.gid, b.sid, b.rev)))
        });
        all.truncate(n);
        all
    }

    /// Alerts per (gid, sid), revisions summed: a reload that bumps a rule's rev continues its
    /// series instead of starting another.
    pub fn by_gid_sid(&self) -> Vec<(u32, u32, u64)> {
        let mut out: Vec<(u32, u32, u64)> = Vec::new();
        for r in &self.rules {
            match out.last_mut() {
                Some((g, s, n)) if (*g, *s) == (r.gid, r.sid) => *n += r.alerts,
                _ => out.push((r.gid, r.sid, r.alerts)),
            }
        }
        out
    }
}

/// Writes the per-rule counts as one JSON document (`--rule-stats FILE`): EVE's `stats`
/// schema has no place for them. Written aside and renamed, so a reader never sees half a file.
pub fn write_rule_stats(path: &std::path::Path, stats: &RunStats) -> std::io::Result<()> {
    let rules = stats.rule_alerts.top(usize::MAX);
    let doc = serde_json::json!({
        "timestamp": crate::output::time::eve_timestamp_string(stats.last_ts_ns),
        "uptime": stats.uptime_secs,
        "alerts": stats.alerts,
        "rules": rules,
    });
    let mut text = serde_json::to_vec_pretty(&doc).map_err(std::io::Error::other)?;
    text.push(b'\n');
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, &text)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod rule_alert_tests {
    use super::*;

    #[test]
    fn counts_merge_by_rule_and_revisions_sum_per_sid() {
        let mut a = RuleAlertCounts::default();
        a.add(1, 20, 1, "old text", 3);
        a.add(1, 10, 2, "ten", 1);
        a.add(1, 99, 1, "never", 0);
        let mut b = RuleAlertCounts::default();
        b.add(1, 20, 2, "new text", 4);
        b.add(1, 10, 2, "ten", 5);
        b.add(9100, 1, 1, "TCP port scan", 2);
        a.merge(&b);
        let keys: Vec<_> = a
            .rules()
            .iter()
            .map(|r| (r.gid, r.sid, r.rev, r.alerts))
            .collect();
        assert_eq!(
            keys,
            [(1, 10, 2, 6), (1, 20, 1, 3), (1, 20, 2, 4), (9100, 1, 1, 2)]
        );
        assert_eq!(a.total(), 15);
        assert_eq!(a.by_gid_sid(), [(1, 10, 6), (1, 20, 7), (9100, 1, 2)]);
        let top: Vec<_> = a.top(2).iter().map(|r| (r.sid, r.alerts)).collect();
        assert_eq!(top, [(10, 6), (20, 4)]);
    }
}
