//! DNS tunnelling and DGA lookups. Tunnelling: one client asking for many distinct,
//! high-entropy names under one registered domain within a window (data encoded in the labels),
//! TXT/NULL answers carrying it back. DGA: one client getting NXDOMAIN for many distinct
//! random-looking registered domains (malware trying generated rendezvous names).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::table::{Limits, Table};
use super::{severity, sid, DnsSeen, ModelAlert};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    pub enabled: bool,
    pub window_secs: u64,
    /// Distinct names under one registered domain, from one client, within the window.
    pub subdomains: usize,
    /// Mean Shannon entropy (bits per character) of those names' subdomain part …
    pub min_entropy: f64,
    /// … or this many TXT/NULL queries among them (the record types that carry data back).
    pub txt_null_queries: u32,
    /// Distinct registered domains answered NXDOMAIN to one client within the window.
    pub nxdomains: usize,
    /// Mean entropy of those domains' second-level labels.
    pub dga_min_entropy: f64,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            enabled: true,
            window_secs: 300,
            subdomains: 50,
            min_entropy: 3.5,
            txt_null_queries: 100,
            nxdomains: 20,
            dga_min_entropy: 2.5,
        }
    }
}

/// Distinct names remembered per key (as hashes); past it they are only counted as new when
/// unseen among these.
const KEEP: usize = 4096;
const SAMPLES: usize = 3;

/// DNS record types named in the evidence.
fn qtype_name(t: u16) -> &'static str {
    match t {
        1 => "A",
        5 => "CNAME",
        10 => "NULL",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        _ => "other",
    }
}

struct Names {
    window_start_ns: u64,
    hashes: Vec<u64>,
    distinct: usize,
    entropy_sum: f64,
    length_sum: usize,
    qtypes: Vec<(&'static str, u32)>,
    samples: Vec<String>,
}

impl Names {
    fn new(ts_ns: u64) -> Names {
        Names {
            window_start_ns: ts_ns,
            hashes: Vec::new(),
            distinct: 0,
            entropy_sum: 0.0,
            length_sum: 0,
            qtypes: Vec::new(),
            samples: Vec::new(),
        }
    }

    /// Counts `name` (its scored part `part`); returns whether it was new.
    fn add(&mut self, name: &str, part: &str, qtype: u16, ts_ns: u64, window_ns: u64) -> bool {
        if ts_ns > self.window_start_ns.saturating_add(window_ns) {
            *self = Names::new(ts_ns);
        }
        let t = qtype_name(qtype);
        match self.qtypes.iter_mut().find(|(n, _)| *n == t) {
            Some((_, c)) => *c += 1,
            None => self.qtypes.push((t, 1)),
        }
        let mut h = DefaultHasher::new();
        name.hash(&mut h);
        let h = h.finish();
        if self.hashes.contains(&h) {
            return false;
        }
        if self.hashes.len() < KEEP {
            self.hashes.push(h);
        }
        self.distinct += 1;
        self.entropy_sum += entropy(part);
        self.length_sum += part.len();
        if self.samples.len() < SAMPLES {
            self.samples.push(name.to_string());
        }
        true
    }

    fn mean_entropy(&self) -> f64 {
        self.entropy_sum / self.distinct.max(1) as f64
    }

    fn txt_null(&self) -> u32 {
        self.qtypes
            .iter()
            .filter(|(t, _)| matches!(*t, "TXT" | "NULL"))
            .map(|(_, n)| n)
            .sum()
    }
}

pub struct Dns {
    cfg: DnsConfig,
    /// (client, registered domain) → names asked.
    tunnels: Table<(IpAddr, String), Names>,
    /// client → registered domains answered NXDOMAIN.
    nx: Table<IpAddr, Names>,
}

impl Dns {
    pub fn new(cfg: DnsConfig, limits: Limits) -> Dns {
        Dns {
            cfg,
            tunnels: Table::new(limits),
            nx: Table::new(limits),
        }
    }

    /// Thresholds from a reload; what was seen so far is kept.
    pub fn reconfigure(&mut self, cfg: DnsConfig, limits: Limits) {
        self.cfg = cfg;
        self.tunnels.set_limits(limits);
        self.nx.set_limits(limits);
    }

    pub fn evicted(&self) -> u64 {
        self.tunnels.evicted() + self.nx.evicted()
    }

    pub fn message(&mut self, d: &DnsSeen, out: &mut Vec<ModelAlert>) {
        let name = d.qname.trim_end_matches('.').to_ascii_lowercase();
        let Some((sub, registered)) = split_registered(&name) else {
            return;
        };
        let window_ns = self.cfg.window_secs.saturating_mul(1_000_000_000);
        if !d.is_response {
            if sub.is_empty() {
                return;
            }
            let key = (d.client, registered.to_string());
            let names = self.tunnels.get(&key, d.ts_ns, || Names::new(d.ts_ns));
            let new = names.add(&name, &sub.replace('.', ""), d.qtype, d.ts_ns, window_ns);
            let threshold = self.cfg.subdomains.max(1);
            let encoded = names.mean_entropy() >= self.cfg.min_entropy
                || names.txt_null() >= self.cfg.txt_null_queries.max(1);
            if !new || names.distinct < threshold || !encoded {
                return;
            }
            let evidence = evidence(
                names,
                "subdomains",
                threshold,
                self.cfg.window_secs,
                d.ts_ns,
            );
            let score = names.distinct as f64 / threshold as f64
                * (names.mean_entropy() / self.cfg.min_entropy);
            if self.tunnels.may_alert(&key, d.ts_ns) {
                let mut evidence = evidence;
                evidence.insert(0, ("domain", vec![registered.to_string()]));
                out.push(alert(d, sid::DNS_TUNNEL, "DNS tunnelling", score, evidence));
            }
        } else if d.rcode == 3 {
            let sld = registered.split('.').next().unwrap_or(registered);
            let names = self.nx.get(&d.client, d.ts_ns, || Names::new(d.ts_ns));
            let new = names.add(registered, sld, d.qtype, d.ts_ns, window_ns);
            let threshold = self.cfg.nxdomains.max(1);
            if !new || names.distinct < threshold || names.mean_entropy() < self.cfg.dga_min_entropy
            {
                return;
            }
            let evidence = evidence(names, "nxdomains", threshold, self.cfg.window_secs, d.ts_ns);
            let score = names.distinct as f64 / threshold as f64;
            if self.nx.may_alert(&d.client, d.ts_ns) {
                out.push(alert(d, sid::DGA, "DGA domain lookups", score, evidence));
            }
        }
    }
}

fn alert(
    d: &DnsSeen,
    sid: u32,
    signature: &'static str,
    score: f64,
    evidence: Vec<(&'static str, Vec<String>)>,
) -> ModelAlert {
    ModelAlert {
        ts_ns: d.ts_ns,
        sid,
        signature,
        model: "dns",
        severity: severity(score),
        score,
        src: d.client,
        dst: Some(d.server),
        ports: None,
        proto: None,
        flow_id: Some(d.flow_id),
        evidence,
    }
}

fn evidence(
    names: &Names,
    what: &'static str,
    threshold: usize,
    window_secs: u64,
    ts_ns: u64,
) -> Vec<(&'static str, Vec<String>)> {
    vec![
        (what, vec![names.distinct.to_string()]),
        ("threshold", vec![threshold.to_string()]),
        ("window", vec![format!("{window_secs}s")]),
        (
            "within",
            vec![format!(
                "{:.1}s",
                ts_ns.saturating_sub(names.window_start_ns) as f64 / 1e9
            )],
        ),
        ("mean_entropy", vec![format!("{:.2}", names.mean_entropy())]),
        (
            "mean_length",
            vec![format!(
                "{:.1}",
                names.length_sum as f64 / names.distinct.max(1) as f64
            )],
        ),
        (
            "qtypes",
            names
                .qtypes
                .iter()
                .map(|(t, n)| format!("{t}:{n}"))
                .collect(),
        ),
        ("sample", names.samples.clone()),
    ]
}

/// Second-level labels under which registries sell names (`example.co.uk`).
const SECOND_LEVEL: [&str; 8] = ["co", "com", "net", "org", "gov", "edu", "ac", "ne"];

/// Splits a name into (subdomain part, registered domain): `a.b.example.com` → (`a.b`,
/// `example.com`); two-letter country TLDs with a generic second level keep three labels.
/// A public-suffix list would be exact; this covers the common registries without one.
fn split_registered(name: &str) -> Option<(&str, &str)> {
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 || labels.iter().any(|l| l.is_empty()) {
        return None;
    }
    let tld = labels[labels.len() - 1];
    let keep = if labels.len() >= 3
        && tld.len() == 2
        && SECOND_LEVEL.contains(&labels[labels.len() - 2])
    {
        3
    } else {
        2
    };
    if labels.len() < keep {
        return None;
    }
    let registered_len: usize = labels[labels.len() - keep..]
        .iter()
        .map(|l| l.len())
        .sum::<usize>()
        + keep
        - 1;
    let registered = &name[name.len() - registered_len..];
    let sub = name[..name.len() - registered_len].trim_end_matches('.');
    Some((sub, registered))
}

/// Shannon entropy in bits per character.
fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[usize::from(b)] += 1;
    }
    let n = s.len() as f64;
    if n == 0.0 {
        return 0.0;
    }
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = f64::from(*c) / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_domains_and_entropy() {
        assert_eq!(
            split_registered("a.b.example.com"),
            Some(("a.b", "example.com"))
        );
        assert_eq!(
            split_registered("www.example.co.uk"),
            Some(("www", "example.co.uk"))
        );
        assert_eq!(split_registered("example.com"), Some(("", "example.com")));
        assert_eq!(split_registered("localhost"), None);
        assert_eq!(split_registered("a..com"), None);
        assert!(entropy("aaaa") < 0.01);
        assert!(entropy("mzxw6ytboi4dsnrtgq3tmnzy") > 3.5);
        assert!(entropy("www") < 1.0);
    }
}
