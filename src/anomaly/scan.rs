//! Port scans (many ports of one host) and host sweeps (one port of many hosts), counted over
//! probes: flows that never got going — TCP whose initiator never acknowledged anything (SYN,
//! FIN, NULL and XMAS probes alike), UDP and ICMP echo that got no answer.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::table::{Limits, Table};
use super::{severity, sid, ModelAlert};
use crate::flow::key::{PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP};
use crate::flow::FlowRecord;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScanConfig {
    pub enabled: bool,
    /// Distinct ports of one host probed within the window: a port scan.
    pub ports: usize,
    /// Distinct hosts probed on one port within the window: a host sweep.
    pub hosts: usize,
    pub window_secs: u64,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            enabled: true,
            ports: 20,
            hosts: 20,
            window_secs: 60,
        }
    }
}

const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_PSH: u8 = 0x08;
const TCP_ACK: u8 = 0x10;
const TCP_URG: u8 = 0x20;
/// Kept per key beyond the threshold, for the evidence; more are only counted.
const KEEP: usize = 512;
const SAMPLES: usize = 10;

/// Probe kinds, by the initiator's flags: SYN, FIN, NULL, XMAS, UDP, ICMP echo.
const KINDS: [&str; 6] = ["syn", "fin", "null", "xmas", "udp", "icmp-echo"];

fn probe_kind(f: &FlowRecord) -> Option<usize> {
    match f.proto {
        PROTO_TCP if f.tcp_flags_ts & TCP_ACK == 0 => {
            let flags = f.tcp_flags_ts;
            Some(if flags & TCP_SYN != 0 {
                0
            } else if flags & (TCP_FIN | TCP_PSH | TCP_URG) == TCP_FIN | TCP_PSH | TCP_URG {
                3
            } else if flags & TCP_FIN != 0 {
                1
            } else {
                2
            })
        }
        PROTO_UDP if f.pkts_toclient == 0 => Some(4),
        PROTO_ICMP | PROTO_ICMPV6 => {
            let echo = f
                .icmp
                .is_some_and(|i| matches!(i.icmp_type, 8 | 128) && i.response.is_none());
            echo.then_some(5)
        }
        _ => None,
    }
}

struct Probes<T> {
    window_start_ns: u64,
    seen: Vec<T>,
    /// Distinct ones, also past `KEEP`.
    distinct: usize,
    kinds: [u32; 6],
}

impl<T: PartialEq + Copy> Probes<T> {
    fn new(ts_ns: u64) -> Self {
        Probes {
            window_start_ns: ts_ns,
            seen: Vec::new(),
            distinct: 0,
            kinds: [0; 6],
        }
    }

    /// Counts `item` at `ts_ns`; a probe after the window starts a new one.
    fn add(&mut self, item: T, kind: usize, ts_ns: u64, window_ns: u64) {
        if ts_ns > self.window_start_ns.saturating_add(window_ns) {
            *self = Probes::new(ts_ns);
        }
        self.kinds[kind] += 1;
        if !self.seen.contains(&item) {
            self.distinct += 1;
            if self.seen.len() < KEEP {
                self.seen.push(item);
            }
        }
    }
}

pub struct Scan {
    cfg: ScanConfig,
    /// (scanner, target, protocol) → ports probed.
    ports: Table<(IpAddr, IpAddr, u8), Probes<u16>>,
    /// (scanner, port, protocol) → hosts probed.
    hosts: Table<(IpAddr, u16, u8), Probes<IpAddr>>,
}

impl Scan {
    pub fn new(cfg: ScanConfig, limits: Limits) -> Scan {
        Scan {
            cfg,
            ports: Table::new(limits),
            hosts: Table::new(limits),
        }
    }

    /// Thresholds from a reload; what was seen so far is kept.
    pub fn reconfigure(&mut self, cfg: ScanConfig, limits: Limits) {
        self.cfg = cfg;
        self.ports.set_limits(limits);
        self.hosts.set_limits(limits);
    }

    pub fn evicted(&self) -> u64 {
        self.ports.evicted() + self.hosts.evicted()
    }

    pub fn flow(&mut self, f: &FlowRecord, out: &mut Vec<ModelAlert>) {
        let Some(kind) = probe_kind(f) else {
            return;
        };
        let window_ns = self.cfg.window_secs.saturating_mul(1_000_000_000);
        let ts = f.first_ts_ns;
        let dport = f.ports.map_or(0, |p| p.1);
        let (src, dst, proto) = (f.client_addr, f.server_addr, f.proto);
        if proto == PROTO_TCP || proto == PROTO_UDP {
            let key = (src, dst, proto);
            let probes = self.ports.get(&key, ts, || Probes::new(ts));
            probes.add(dport, kind, ts, window_ns);
            if probes.distinct >= self.cfg.ports.max(1) {
                let (distinct, start, kinds) =
                    (probes.distinct, probes.window_start_ns, probes.kinds);
                let mut sample: Vec<u16> = probes.seen.clone();
                sample.sort_unstable();
                if self.ports.may_alert(&key, f.last_ts_ns) {
                    let score = score(distinct, self.cfg.ports, ts, start, window_ns);
                    out.push(ModelAlert {
                        ts_ns: f.last_ts_ns,
                        sid: sid::PORT_SCAN,
                        signature: if proto == PROTO_TCP {
                            "TCP port scan"
                        } else {
                            "UDP port scan"
                        },
                        model: "scan",
                        severity: severity(score),
                        score,
                        src,
                        dst: Some(dst),
                        ports: None,
                        proto: Some(proto),
                        flow_id: Some(f.flow_id),
                        evidence: evidence(
                            distinct,
                            "ports",
                            self.cfg.ports,
                            self.cfg.window_secs,
                            ts.saturating_sub(start),
                            kinds,
                            sample.iter().take(SAMPLES).map(u16::to_string).collect(),
                        ),
                    });
                }
            }
        }
        let key = (src, dport, proto);
        let probes = self.hosts.get(&key, ts, || Probes::new(ts));
        probes.add(dst, kind, ts, window_ns);
        if probes.distinct >= self.cfg.hosts.max(1) {
            let (distinct, start, kinds) = (probes.distinct, probes.window_start_ns, probes.kinds);
            let sample: Vec<String> = probes
                .seen
                .iter()
                .take(SAMPLES)
                .map(IpAddr::to_string)
                .collect();
            if self.hosts.may_alert(&key, f.last_ts_ns) {
                let score = score(distinct, self.cfg.hosts, ts, start, window_ns);
                let mut evidence = evidence(
                    distinct,
                    "hosts",
                    self.cfg.hosts,
                    self.cfg.window_secs,
                    ts.saturating_sub(start),
                    kinds,
                    sample,
                );
                evidence.push(("port", vec![dport.to_string()]));
                out.push(ModelAlert {
                    ts_ns: f.last_ts_ns,
                    sid: sid::HOST_SWEEP,
                    signature: "host sweep",
                    model: "scan",
                    severity: severity(score),
                    score,
                    src,
                    dst: None,
                    ports: None,
                    proto: Some(proto),
                    flow_id: Some(f.flow_id),
                    evidence,
                });
            }
        }
    }
}

/// Past the threshold by count, and by speed: the threshold reached in a tenth of the window
/// scores ten.
fn score(distinct: usize, threshold: usize, ts: u64, start: u64, window_ns: u64) -> f64 {
    let count = distinct as f64 / threshold.max(1) as f64;
    let took = ts.saturating_sub(start).max(1_000_000_000) as f64;
    let speed = (window_ns as f64 / took).max(1.0);
    (count * speed).min(100.0)
}

#[allow(clippy::too_many_arguments)]
fn evidence(
    distinct: usize,
    what: &'static str,
    threshold: usize,
    window_secs: u64,
    took_ns: u64,
    kinds: [u32; 6],
    sample: Vec<String>,
) -> Vec<(&'static str, Vec<String>)> {
    vec![
        (what, vec![distinct.to_string()]),
        ("threshold", vec![threshold.to_string()]),
        ("window", vec![format!("{window_secs}s")]),
        ("within", vec![format!("{:.1}s", took_ns as f64 / 1e9)]),
        (
            "probes",
            KINDS
                .iter()
                .zip(kinds)
                .filter(|(_, n)| *n > 0)
                .map(|(k, n)| format!("{k}:{n}"))
                .collect(),
        ),
        ("sample", sample),
    ]
}
