//! Exfiltration by volume: a host sending far more than its own learned baseline (an EWMA of
//! its outbound bytes per bucket, with a warm-up before it judges), and a large upload to a
//! destination the host had not talked to before.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::table::{Limits, Table};
use super::{severity, sid, ModelAlert};
use crate::flow::FlowRecord;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct VolumeConfig {
    pub enabled: bool,
    /// Outbound bytes are summed per host in buckets of this length.
    pub bucket_secs: u64,
    /// Buckets of history before the baseline is trusted.
    pub warmup_buckets: u32,
    /// EWMA weight of the newest bucket.
    pub alpha: f64,
    /// A bucket alerts past mean + sigma × deviation of the baseline …
    pub sigma: f64,
    /// … and past this many bytes (quiet hosts have tiny baselines).
    pub min_bytes: u64,
    /// A host sending at least this much to a destination it first talked to at most
    /// `rare_window_secs` before …
    pub upload_bytes: u64,
    pub rare_window_secs: u64,
    /// … and this many times what it received: a large upload to a rare destination.
    pub upload_ratio: f64,
}

impl Default for VolumeConfig {
    fn default() -> Self {
        VolumeConfig {
            enabled: true,
            bucket_secs: 60,
            warmup_buckets: 10,
            alpha: 0.1,
            sigma: 6.0,
            min_bytes: 50 << 20,
            upload_bytes: 10 << 20,
            rare_window_secs: 3600,
            upload_ratio: 10.0,
        }
    }
}

/// Destinations remembered per host for "rare" (the most recent).
const DESTINATIONS: usize = 256;

/// What a host exchanged with one destination since it first talked to it.
struct Destination {
    addr: IpAddr,
    first_ns: u64,
    up: u64,
    down: u64,
}

/// A host's bytes sent per bucket: the current bucket's sum and an EWMA of the closed ones.
#[derive(Debug, Clone)]
struct Baseline {
    first_bucket: u64,
    bucket: u64,
    bytes: u64,
    mean: f64,
    var: f64,
}

/// A bucket past its host's baseline.
struct Excess {
    bytes: u64,
    mean: f64,
    std: f64,
    limit: f64,
    history: u64,
}

impl Baseline {
    fn new(bucket: u64) -> Baseline {
        Baseline {
            first_bucket: bucket,
            bucket,
            bytes: 0,
            mean: 0.0,
            var: 0.0,
        }
    }

    /// Adds `bytes` sent in `bucket`; buckets closed since enter the average (the last with
    /// its bytes, the ones between empty).
    fn add(&mut self, bucket: u64, bytes: u64, alpha: f64) {
        if bucket > self.bucket {
            let gap = bucket - self.bucket;
            self.ewma(self.bytes as f64, alpha);
            for _ in 1..gap.min(1000) {
                self.ewma(0.0, alpha);
            }
            self.bucket = bucket;
            self.bytes = 0;
        }
        self.bytes += bytes;
    }

    /// The current bucket, if it is past mean + sigma × deviation and `min_bytes`, once the
    /// warm-up is over.
    fn excess(&self, cfg: &VolumeConfig) -> Option<Excess> {
        let history = self.bucket.saturating_sub(self.first_bucket);
        let std = self.var.sqrt();
        let limit = self.mean + cfg.sigma * std;
        let over = history >= u64::from(cfg.warmup_buckets)
            && self.bytes as f64 > limit
            && self.bytes >= cfg.min_bytes;
        over.then_some(Excess {
            bytes: self.bytes,
            mean: self.mean,
            std,
            limit,
            history,
        })
    }

    /// Exponentially weighted mean and variance (West's update).
    fn ewma(&mut self, x: f64, alpha: f64) {
        let diff = x - self.mean;
        let incr = alpha * diff;
        self.mean += incr;
        self.var = (1.0 - alpha) * (self.var + diff * incr);
    }
}

struct Host {
    baseline: Baseline,
    /// The destinations it talked to most recently, with what it exchanged with each.
    destinations: Vec<Destination>,
}

pub struct Volume {
    cfg: VolumeConfig,
    hosts: Table<IpAddr, Host>,
}

impl Volume {
    pub fn new(cfg: VolumeConfig, limits: Limits) -> Volume {
        Volume {
            cfg,
            hosts: Table::new(limits),
        }
    }

    /// Thresholds from a reload keep the learned baselines; a new `bucket_secs` changes what
    /// a baseline measures, so then learning starts over.
    pub fn reconfigure(&mut self, cfg: VolumeConfig, limits: Limits) {
        if cfg.bucket_secs != self.cfg.bucket_secs {
            tracing::warn!(
                from = self.cfg.bucket_secs,
                to = cfg.bucket_secs,
                "anomaly.volume.bucket_secs changed: the volume baselines start over"
            );
            *self = Volume::new(cfg, limits);
            return;
        }
        self.cfg = cfg;
        self.hosts.set_limits(limits);
    }

    pub fn evicted(&self) -> u64 {
        self.hosts.evicted()
    }

    pub fn flow(&mut self, f: &FlowRecord, out: &mut Vec<ModelAlert>) {
        let bucket_ns = self.cfg.bucket_secs.max(1).saturating_mul(1_000_000_000);
        let bucket = f.last_ts_ns / bucket_ns;
        let cfg = &self.cfg;
        let host = self.hosts.get(&f.client_addr, f.last_ts_ns, || Host {
            baseline: Baseline::new(bucket),
            destinations: Vec::new(),
        });
        host.baseline.add(bucket, f.bytes_toserver, cfg.alpha);
        let at = match host
            .destinations
            .iter()
            .position(|d| d.addr == f.server_addr)
        {
            Some(at) => at,
            None => {
                if host.destinations.len() >= DESTINATIONS {
                    host.destinations.remove(0);
                }
                host.destinations.push(Destination {
                    addr: f.server_addr,
                    first_ns: f.first_ts_ns,
                    up: 0,
                    down: 0,
                });
                host.destinations.len() - 1
            }
        };
        let dest = &mut host.destinations[at];
        dest.first_ns = dest.first_ns.min(f.first_ts_ns);
        dest.up += f.bytes_toserver;
        dest.down += f.bytes_toclient;
        let (up, down, first_ns) = (dest.up, dest.down, dest.first_ns);
        let rare = f.last_ts_ns.saturating_sub(first_ns)
            <= cfg.rare_window_secs.saturating_mul(1_000_000_000);
        let excess = host.baseline.excess(cfg);
        let upload =
            rare && up >= cfg.upload_bytes && up as f64 >= cfg.upload_ratio * down.max(1) as f64;
        if upload && self.hosts.may_alert(&f.client_addr, f.last_ts_ns) {
            let score = up as f64 / cfg.upload_bytes.max(1) as f64;
            out.push(ModelAlert {
                ts_ns: f.last_ts_ns,
                sid: sid::RARE_UPLOAD,
                signature: "large upload to a rare destination",
                model: "volume",
                severity: severity(score),
                score,
                src: f.client_addr,
                dst: Some(f.server_addr),
                ports: f.ports,
                proto: Some(f.proto),
                flow_id: Some(f.flow_id),
                evidence: vec![
                    ("bytes_toserver", vec![up.to_string()]),
                    ("bytes_toclient", vec![down.to_string()]),
                    ("threshold", vec![cfg.upload_bytes.to_string()]),
                    (
                        "destination_first_seen",
                        vec![format!(
                            "{:.1}s before",
                            f.last_ts_ns.saturating_sub(first_ns) as f64 / 1e9
                        )],
                    ),
                    ("rare_window", vec![format!("{}s", cfg.rare_window_secs)]),
                ],
            });
        } else if let Some(Excess {
            bytes,
            mean,
            std,
            limit,
            history,
        }) = excess.filter(|_| self.hosts.may_alert(&f.client_addr, f.last_ts_ns))
        {
            let score = bytes as f64 / limit.max(1.0);
            out.push(ModelAlert {
                ts_ns: f.last_ts_ns,
                sid: sid::VOLUME,
                signature: "outbound volume far above the host's baseline",
                model: "volume",
                severity: severity(score),
                score,
                src: f.client_addr,
                dst: None,
                ports: None,
                proto: None,
                flow_id: Some(f.flow_id),
                evidence: vec![
                    ("bytes", vec![bytes.to_string()]),
                    ("window", vec![format!("{}s", cfg.bucket_secs)]),
                    ("baseline_mean", vec![format!("{mean:.0}")]),
                    ("baseline_deviation", vec![format!("{std:.0}")]),
                    ("threshold", vec![format!("{limit:.0}")]),
                    ("history_buckets", vec![history.to_string()]),
                ],
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    #[test]
    fn a_burst_far_above_a_learned_baseline_is_excess_and_the_warm_up_holds_it() {
        let cfg = VolumeConfig::default();
        let mut b = Baseline::new(0);
        // Twenty minutes of 1–3 MB a minute.
        for minute in 0..20 {
            b.add(minute, (1 + minute % 3) * MB, cfg.alpha);
            assert!(b.excess(&cfg).is_none(), "minute {minute}");
        }
        b.add(20, 40 * MB, cfg.alpha);
        assert!(b.excess(&cfg).is_none(), "under min_bytes");
        b.add(20, 60 * MB, cfg.alpha);
        let e = b.excess(&cfg).expect("100 MB in a minute against ~2 MB");
        assert_eq!(e.bytes, 100 * MB);
        assert!(
            e.mean > 1.0 * MB as f64 && e.mean < 3.0 * MB as f64,
            "{}",
            e.mean
        );
        assert_eq!(e.history, 20);

        // The same burst before the warm-up is over says nothing.
        let mut young = Baseline::new(0);
        young.add(3, 200 * MB, cfg.alpha);
        assert!(young.excess(&cfg).is_none());
    }

    #[test]
    fn quiet_buckets_lower_the_baseline() {
        let cfg = VolumeConfig::default();
        let mut b = Baseline::new(0);
        for minute in 0..10 {
            b.add(minute, 50 * MB, cfg.alpha);
        }
        let busy = b.mean;
        b.add(40, 0, cfg.alpha);
        assert!(b.mean < busy / 10.0, "{} after 30 quiet minutes", b.mean);
    }
}
