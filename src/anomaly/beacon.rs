//! Periodic beaconing: a host opening connections to the same destination and port at a
//! regular period (an implant checking in), told from people and ordinary software by the
//! regularity of the gaps between connection starts, with jitter tolerated.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::table::{Limits, Table};
use super::{severity, sid, ModelAlert};
use crate::flow::FlowRecord;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BeaconConfig {
    pub enabled: bool,
    /// Connections needed before the gaps are judged.
    pub min_connections: usize,
    /// A gap counts as regular within ± this fraction of the median gap.
    pub max_jitter: f64,
    /// Share of the gaps that must be regular.
    pub regular_share: f64,
    /// Periods outside these bounds are not beaconing (bursts, daily jobs).
    pub min_period_secs: f64,
    pub max_period_secs: f64,
}

impl Default for BeaconConfig {
    fn default() -> Self {
        BeaconConfig {
            enabled: true,
            min_connections: 8,
            max_jitter: 0.25,
            regular_share: 0.8,
            min_period_secs: 5.0,
            max_period_secs: 6.0 * 3600.0,
        }
    }
}

/// Connection starts kept per pair (the newest).
const KEEP: usize = 64;

pub struct Beacon {
    cfg: BeaconConfig,
    /// (client, server, port, protocol) → connection start times, sorted.
    starts: Table<(IpAddr, IpAddr, u16, u8), Vec<u64>>,
}

impl Beacon {
    pub fn new(cfg: BeaconConfig, limits: Limits) -> Beacon {
        Beacon {
            cfg,
            starts: Table::new(limits),
        }
    }

    /// Thresholds from a reload; what was seen so far is kept.
    pub fn reconfigure(&mut self, cfg: BeaconConfig, limits: Limits) {
        self.cfg = cfg;
        self.starts.set_limits(limits);
    }

    pub fn evicted(&self) -> u64 {
        self.starts.evicted()
    }

    pub fn flow(&mut self, f: &FlowRecord, out: &mut Vec<ModelAlert>) {
        let Some((_, dport)) = f.ports else {
            return;
        };
        let key = (f.client_addr, f.server_addr, dport, f.proto);
        let starts = self.starts.get(&key, f.last_ts_ns, Vec::new);
        let at = starts.partition_point(|t| *t < f.first_ts_ns);
        if starts.get(at) == Some(&f.first_ts_ns) {
            return;
        }
        starts.insert(at, f.first_ts_ns);
        if starts.len() > KEEP {
            starts.remove(0);
        }
        if starts.len() < self.cfg.min_connections.max(3) {
            return;
        }
        let Some(found) = periodic(starts, &self.cfg) else {
            return;
        };
        let connections = starts.len();
        if !self.starts.may_alert(&key, f.last_ts_ns) {
            return;
        }
        let score = connections as f64 / self.cfg.min_connections.max(1) as f64
            * found.regular_share
            / self.cfg.regular_share;
        out.push(ModelAlert {
            ts_ns: f.last_ts_ns,
            sid: sid::BEACON,
            signature: "periodic beaconing",
            model: "beacon",
            severity: severity(score),
            score,
            src: f.client_addr,
            dst: Some(f.server_addr),
            ports: f.ports,
            proto: Some(f.proto),
            flow_id: Some(f.flow_id),
            evidence: vec![
                ("period", vec![format!("{:.1}s", found.period_secs)]),
                ("jitter", vec![format!("{:.1}%", found.jitter * 100.0)]),
                ("connections", vec![connections.to_string()]),
                ("regular_share", vec![format!("{:.2}", found.regular_share)]),
                ("threshold", vec![self.cfg.min_connections.to_string()]),
                ("observed", vec![format!("{:.0}s", found.span_secs)]),
            ],
        });
    }
}

struct Periodic {
    period_secs: f64,
    /// Mean absolute deviation of the regular gaps from the period, as a fraction of it.
    jitter: f64,
    regular_share: f64,
    span_secs: f64,
}

fn periodic(starts: &[u64], cfg: &BeaconConfig) -> Option<Periodic> {
    let gaps: Vec<f64> = starts
        .windows(2)
        .map(|w| (w[1] - w[0]) as f64 / 1e9)
        .collect();
    let mut sorted = gaps.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    if median < cfg.min_period_secs || median > cfg.max_period_secs {
        return None;
    }
    let tolerance = median * cfg.max_jitter;
    let regular: Vec<f64> = gaps
        .iter()
        .copied()
        .filter(|g| (g - median).abs() <= tolerance)
        .collect();
    let regular_share = regular.len() as f64 / gaps.len() as f64;
    if regular_share < cfg.regular_share {
        return None;
    }
    let jitter = regular.iter().map(|g| (g - median).abs()).sum::<f64>()
        / regular.len().max(1) as f64
        / median;
    Some(Periodic {
        period_secs: median,
        jitter,
        regular_share,
        span_secs: (starts[starts.len() - 1] - starts[0]) as f64 / 1e9,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(v: &[f64]) -> Vec<u64> {
        v.iter().map(|s| (s * 1e9) as u64).collect()
    }

    #[test]
    fn a_jittered_period_is_found_and_random_arrivals_are_not() {
        let cfg = BeaconConfig::default();
        let beacon = secs(&[0.0, 61.0, 118.0, 181.0, 239.0, 302.0, 358.0, 421.0, 480.0]);
        let found = periodic(&beacon, &cfg).unwrap();
        assert!(
            (found.period_secs - 60.0).abs() < 4.0,
            "{}",
            found.period_secs
        );
        assert!(found.jitter < 0.1);
        let random = secs(&[0.0, 3.0, 47.0, 52.0, 190.0, 200.0, 260.0, 400.0, 411.0]);
        assert!(periodic(&random, &cfg).is_none());
        let burst = secs(&[0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]);
        assert!(
            periodic(&burst, &cfg).is_none(),
            "faster than min_period_secs"
        );
    }
}
