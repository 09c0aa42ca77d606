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

struct Host {
    first_bucket: u64,
    bucket: u64,
    bytes: u64,
    mean: f64,
    var: f64,
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

    pub fn evicted(&self) -> u64 {
        self.hosts.evicted()
    }

    pub fn flow(&mut self, f: &FlowRecord, out: &mut Vec<ModelAlert>) {
        let bucket_ns = self.cfg.bucket_secs.max(1).saturating_mul(1_000_000_000);
        let bucket = f.last_ts_ns / bucket_ns;
        let cfg = &self.cfg;
        let host = self.hosts.get(&f.client_addr, f.last_ts_ns, || Host {
            first_bucket: bucket,
            bucket,
            bytes: 0,
            mean: 0.0,
            var: 0.0,
            destinations: Vec::new(),
        });
        // Buckets that closed since: the last one with its bytes, the rest empty.
        if bucket > host.bucket {
            let gap = bucket - host.bucket;
            ewma(host, host.bytes as f64, cfg.alpha);
            for _ in 1..gap.min(1000) {
                ewma(host, 0.0, cfg.alpha);
            }
            host.bucket = bucket;
            host.bytes = 0;
        }
        host.bytes += f.bytes_toserver;
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
        let history = bucket.saturating_sub(host.first_bucket);
        let limit = host.mean + cfg.sigma * host.var.sqrt();
        let (bytes, mean, std) = (host.bytes, host.mean, host.var.sqrt());
        let over_baseline = history >= u64::from(cfg.warmup_buckets)
            && bytes as f64 > limit
            && bytes >= cfg.min_bytes;
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
        } else if over_baseline && self.hosts.may_alert(&f.client_addr, f.last_ts_ns) {
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

/// Exponentially weighted mean and variance (West's update).
fn ewma(host: &mut Host, x: f64, alpha: f64) {
    let diff = x - host.mean;
    let incr = alpha * diff;
    host.mean += incr;
    host.var = (1.0 - alpha) * (host.var + diff * incr);
}
