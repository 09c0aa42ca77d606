//! Behavioural anomaly models: port scans and host sweeps, DNS tunnelling and DGA lookups,
//! periodic beaconing, outbound volume and large uploads to rare destinations, and protocol
//! misuse. Each explains itself: an EVE `alert` (gid [`GID`], category "Anomaly") whose
//! `alert.metadata` holds the evidence (counts, window, threshold, score, samples).
//!
//! A host's flows are spread over the workers by the flow hash, so per-host state cannot live
//! in one worker. Workers hand compact observations (each ended flow, each DNS message) to the
//! anomaly thread in one message per batch, without waiting (a full ring is counted); the
//! thread keeps every model's per-host state, bounded by `max_entries` per model, and runs on
//! packet time, so replay and live capture judge alike.

pub mod beacon;
pub mod dns;
pub mod misuse;
pub mod scan;
pub mod table;
pub mod volume;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::flow::FlowRecord;
use crate::output::eve::EveEvent;

/// The generator id of every model alert.
pub const GID: u32 = 9100;
/// Observation batches the ring to the anomaly thread holds.
const RING_BATCHES: usize = 1024;

/// Stable signature ids of the models' alerts.
pub mod sid {
    pub const PORT_SCAN: u32 = 1;
    pub const HOST_SWEEP: u32 = 2;
    pub const DNS_TUNNEL: u32 = 3;
    pub const DGA: u32 = 4;
    pub const BEACON: u32 = 5;
    pub const VOLUME: u32 = 6;
    pub const RARE_UPLOAD: u32 = 7;
    pub const UNUSUAL_PORT: u32 = 8;
    pub const NOT_WEB_ON_WEB_PORT: u32 = 9;
}

/// `[anomaly]`: every threshold, documented in `appliance/vigil.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnomalySection {
    pub enabled: bool,
    /// Most hosts (or host pairs) each model tracks; the longest-quiet are forgotten first.
    pub max_entries: usize,
    /// The same model does not alert again about the same host (pair) for this long.
    pub cooldown_secs: u64,
    pub scan: scan::ScanConfig,
    pub dns: dns::DnsConfig,
    pub beacon: beacon::BeaconConfig,
    pub volume: volume::VolumeConfig,
    pub misuse: misuse::MisuseConfig,
}

impl Default for AnomalySection {
    fn default() -> Self {
        AnomalySection {
            enabled: true,
            max_entries: 100_000,
            cooldown_secs: 600,
            scan: scan::ScanConfig::default(),
            dns: dns::DnsConfig::default(),
            beacon: beacon::BeaconConfig::default(),
            volume: volume::VolumeConfig::default(),
            misuse: misuse::MisuseConfig::default(),
        }
    }
}

/// What a worker tells the models about one batch of packets.
#[derive(Debug, Clone, Default)]
pub struct Observations {
    /// Flows as they ended (their app-layer protocol known).
    pub flows: Vec<FlowRecord>,
    /// DNS messages.
    pub dns: Vec<DnsSeen>,
}

impl Observations {
    fn len(&self) -> usize {
        self.flows.len() + self.dns.len()
    }
}

#[derive(Debug, Clone)]
pub struct DnsSeen {
    pub ts_ns: u64,
    pub client: IpAddr,
    pub server: IpAddr,
    pub flow_id: u64,
    pub is_response: bool,
    pub rcode: u8,
    /// The first query's name and type.
    pub qname: String,
    pub qtype: u16,
}

/// A model's finding, rendered as an EVE `alert`.
#[derive(Debug, Clone)]
pub struct ModelAlert {
    pub ts_ns: u64,
    pub sid: u32,
    /// Names the behaviour: "TCP port scan", "DNS tunnelling", …
    pub signature: &'static str,
    /// The model's config name (`scan`, `dns`, …).
    pub model: &'static str,
    /// 1 (highest) to 3, from the score.
    pub severity: u8,
    /// How far past its threshold the behaviour is (1.0 = at the threshold).
    pub score: f64,
    pub src: IpAddr,
    pub dst: Option<IpAddr>,
    pub ports: Option<(u16, u16)>,
    pub proto: Option<u8>,
    pub flow_id: Option<u64>,
    /// Evidence, each value a list of strings as in Suricata's `alert.metadata`.
    pub evidence: Vec<(&'static str, Vec<String>)>,
}

/// Severity from how far past its threshold a behaviour is.
pub fn severity(score: f64) -> u8 {
    if score >= 4.0 {
        1
    } else if score >= 2.0 {
        2
    } else {
        3
    }
}

impl ModelAlert {
    pub fn to_json(&self) -> Value {
        let mut ev = crate::output::eve::header_json(
            self.ts_ns,
            self.flow_id,
            "alert",
            Some(self.src),
            self.dst,
            self.ports,
            self.proto,
        );
        let mut metadata = Map::new();
        metadata.insert("model".into(), json!([self.model]));
        metadata.insert("score".into(), json!([format!("{:.2}", self.score)]));
        for (key, values) in &self.evidence {
            metadata.insert((*key).into(), json!(values));
        }
        ev.insert(
            "alert".into(),
            json!({
                "action": "allowed",
                "gid": GID,
                "signature_id": self.sid,
                "rev": 1,
                "signature": self.signature,
                "category": "Anomaly",
                "severity": self.severity,
                "metadata": metadata,
            }),
        );
        Value::Object(ev)
    }
}

/// Counters of the anomaly thread.
#[derive(Debug, Default)]
pub struct AnomalyCounters {
    pub observations: AtomicU64,
    /// Observation batches a worker found the ring full for.
    pub batches_dropped: AtomicU64,
    pub alerts: AtomicU64,
    /// Entries forgotten to stay under `max_entries`.
    pub evicted: AtomicU64,
    /// `alerts` per model sid (gid 9100); touched once per alert, by the anomaly thread.
    pub by_rule: std::sync::Mutex<crate::stats::RuleAlertCounts>,
}

impl AnomalyCounters {
    pub fn snapshot(&self) -> crate::metrics::AnomalySnapshot {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        crate::metrics::AnomalySnapshot {
            observations: n(&self.observations),
            batches_dropped: n(&self.batches_dropped),
            alerts: n(&self.alerts),
            evicted: n(&self.evicted),
        }
    }

    /// The models' alerts per sid so far.
    pub fn rule_alerts(&self) -> crate::stats::RuleAlertCounts {
        self.by_rule.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// The worker side: observations gathered over a few batches, sent in one message.
pub struct AnomalyTap {
    pending: Observations,
    tx: Sender<Observations>,
    counters: Arc<AnomalyCounters>,
}

impl AnomalyTap {
    pub fn flows_ended(&mut self, flows: &[FlowRecord]) {
        self.pending.flows.extend_from_slice(flows);
    }

    pub fn dns(&mut self, seen: DnsSeen) {
        self.pending.dns.push(seen);
    }

    /// Observations waiting to be handed over.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Hands the observations gathered so far over without waiting.
    pub fn flush(&mut self) {
        if self.pending.len() == 0 {
            return;
        }
        let batch = std::mem::take(&mut self.pending);
        self.counters
            .observations
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        if self.tx.try_send(batch).is_err() {
            self.counters
                .batches_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Where model alerts go: the EVE output, and active response's policy.
pub trait AlertSink: Send {
    fn alert(&mut self, alert: ModelAlert);
}

/// Writes alerts as EVE events and offers them to active response.
pub struct EveAlerts {
    pub events: Sender<Vec<EveEvent>>,
    pub response: Option<(
        crate::response::policy::PolicyView,
        crate::response::engine::RequestSender,
    )>,
}

impl AlertSink for EveAlerts {
    fn alert(&mut self, alert: ModelAlert) {
        if let Some((policy, requests)) = &mut self.response {
            crate::response::tap::on_model_alert(policy, requests, &alert);
        }
        let _ = self
            .events
            .send(vec![EveEvent::ModelAlert(Box::new(alert))]);
    }
}

/// Every model, fed in arrival order.
pub struct Models {
    scan: Option<scan::Scan>,
    dns: Option<dns::Dns>,
    beacon: Option<beacon::Beacon>,
    volume: Option<volume::Volume>,
    misuse: Option<misuse::Misuse>,
    found: Vec<ModelAlert>,
    /// Evictions of model state a reload dropped, so the total never goes back.
    retired_evictions: u64,
}

impl Models {
    pub fn new(cfg: &AnomalySection) -> Models {
        let mut models = Models {
            scan: None,
            dns: None,
            beacon: None,
            volume: None,
            misuse: None,
            found: Vec::new(),
            retired_evictions: 0,
        };
        models.reconfigure(cfg);
        models
    }

    /// Settings from a reload: a running model keeps what it learned and takes the new
    /// thresholds, one newly enabled starts empty, one disabled is dropped.
    pub fn reconfigure(&mut self, cfg: &AnomalySection) {
        let limits = table::Limits {
            max_entries: cfg.max_entries.max(1),
            cooldown_ns: cfg.cooldown_secs.saturating_mul(1_000_000_000),
        };
        let evicted_before = self.evicted();
        apply(
            &mut self.scan,
            &cfg.scan,
            cfg.scan.enabled,
            limits,
            scan::Scan::new,
            scan::Scan::reconfigure,
        );
        apply(
            &mut self.dns,
            &cfg.dns,
            cfg.dns.enabled,
            limits,
            dns::Dns::new,
            dns::Dns::reconfigure,
        );
        apply(
            &mut self.beacon,
            &cfg.beacon,
            cfg.beacon.enabled,
            limits,
            beacon::Beacon::new,
            beacon::Beacon::reconfigure,
        );
        apply(
            &mut self.volume,
            &cfg.volume,
            cfg.volume.enabled,
            limits,
            volume::Volume::new,
            volume::Volume::reconfigure,
        );
        apply(
            &mut self.misuse,
            &cfg.misuse,
            cfg.misuse.enabled,
            limits,
            misuse::Misuse::new,
            misuse::Misuse::reconfigure,
        );
        self.retired_evictions += evicted_before.saturating_sub(self.evicted());
    }

    pub fn observe(&mut self, obs: &Observations) {
        for f in &obs.flows {
            if let Some(m) = &mut self.scan {
                m.flow(f, &mut self.found);
            }
            if let Some(m) = &mut self.beacon {
                m.flow(f, &mut self.found);
            }
            if let Some(m) = &mut self.volume {
                m.flow(f, &mut self.found);
            }
            if let Some(m) = &mut self.misuse {
                m.flow(f, &mut self.found);
            }
        }
        if let Some(m) = &mut self.dns {
            for d in &obs.dns {
                m.message(d, &mut self.found);
            }
        }
    }

    /// Alerts found since the last call.
    pub fn take_alerts(&mut self) -> std::vec::Drain<'_, ModelAlert> {
        self.found.drain(..)
    }

    /// Entries forgotten to stay under the cap, over all models.
    pub fn evicted(&self) -> u64 {
        self.retired_evictions
            + self.scan.as_ref().map_or(0, |m| m.evicted())
            + self.dns.as_ref().map_or(0, |m| m.evicted())
            + self.beacon.as_ref().map_or(0, |m| m.evicted())
            + self.volume.as_ref().map_or(0, |m| m.evicted())
            + self.misuse.as_ref().map_or(0, |m| m.evicted())
    }
}

fn apply<M, C: Clone>(
    slot: &mut Option<M>,
    cfg: &C,
    enabled: bool,
    limits: table::Limits,
    new: fn(C, table::Limits) -> M,
    reconfigure: fn(&mut M, C, table::Limits),
) {
    match (slot.as_mut(), enabled) {
        (_, false) => *slot = None,
        (Some(model), true) => reconfigure(model, cfg.clone(), limits),
        (None, true) => *slot = Some(new(cfg.clone(), limits)),
    }
}

/// The anomaly thread.
pub struct AnomalyEngine {
    /// Settings from reloads, taken before the next batch.
    settings: Sender<AnomalySection>,
    tx: Sender<Observations>,
    thread: Option<JoinHandle<()>>,
    pub counters: Arc<AnomalyCounters>,
}

impl AnomalyEngine {
    pub fn start(cfg: &AnomalySection, mut sink: Box<dyn AlertSink>) -> std::io::Result<Self> {
        let (tx, rx) = bounded::<Observations>(RING_BATCHES);
        let (settings, settings_rx) = unbounded::<AnomalySection>();
        let counters = Arc::new(AnomalyCounters::default());
        let mut models = Models::new(cfg);
        let thread_counters = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("vigil-anomaly".into())
            .spawn(move || {
                run(
                    &mut models,
                    &rx,
                    &settings_rx,
                    sink.as_mut(),
                    &thread_counters,
                )
            })?;
        Ok(AnomalyEngine {
            settings,
            tx,
            thread: Some(thread),
            counters,
        })
    }

    pub fn tap(&self) -> AnomalyTap {
        AnomalyTap {
            pending: Observations::default(),
            tx: self.tx.clone(),
            counters: Arc::clone(&self.counters),
        }
    }

    /// New thresholds (SIGHUP); they apply from the next batch of observations on.
    pub fn reconfigure(&self, cfg: &AnomalySection) {
        let _ = self.settings.send(cfg.clone());
    }

    /// Handles what the workers sent (they must be done), then stops.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        // The thread ends when every sender is gone: the workers' taps and this one.
        let (dead, _) = bounded(0);
        drop(std::mem::replace(&mut self.tx, dead));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for AnomalyEngine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn run(
    models: &mut Models,
    rx: &Receiver<Observations>,
    settings: &Receiver<AnomalySection>,
    sink: &mut dyn AlertSink,
    counters: &AnomalyCounters,
) {
    for batch in rx {
        if let Some(cfg) = settings.try_iter().last() {
            models.reconfigure(&cfg);
        }
        models.observe(&batch);
        for alert in models.take_alerts() {
            counters.alerts.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut by_rule) = counters.by_rule.lock() {
                by_rule.add(GID, alert.sid, 1, alert.signature, 1);
            }
            sink.alert(alert);
        }
        counters.evicted.store(models.evicted(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nxdomain(i: u32) -> Observations {
        Observations {
            flows: Vec::new(),
            dns: vec![DnsSeen {
                ts_ns: u64::from(i) * 1_000_000_000,
                client: "10.1.1.1".parse().unwrap(),
                server: "10.1.1.53".parse().unwrap(),
                flow_id: u64::from(i),
                is_response: true,
                rcode: 3,
                qname: format!("qzkxv{i}jwmpt.com"),
                qtype: 1,
            }],
        }
    }

    fn with_nxdomains(enabled: bool, nxdomains: usize) -> AnomalySection {
        let mut cfg = AnomalySection::default();
        cfg.dns.enabled = enabled;
        cfg.dns.nxdomains = nxdomains;
        cfg
    }

    /// New thresholds apply to what a model already saw; a model turned off and on again
    /// starts empty.
    #[test]
    fn a_reconfigure_keeps_what_models_learned_and_takes_new_thresholds() {
        let mut models = Models::new(&with_nxdomains(true, 1000));
        for i in 0..10 {
            models.observe(&nxdomain(i));
        }
        assert_eq!(models.take_alerts().count(), 0);

        models.reconfigure(&with_nxdomains(true, 11));
        models.observe(&nxdomain(10));
        let alerts: Vec<ModelAlert> = models.take_alerts().collect();
        assert_eq!(alerts.len(), 1, "the 11th domain crosses the new threshold");
        assert_eq!(alerts[0].sid, sid::DGA);

        models.reconfigure(&with_nxdomains(false, 11));
        models.observe(&nxdomain(11));
        assert_eq!(models.take_alerts().count(), 0, "turned off");
        models.reconfigure(&with_nxdomains(true, 3));
        for i in 100..102 {
            models.observe(&nxdomain(i));
        }
        assert_eq!(
            models.take_alerts().count(),
            0,
            "turned on again, it starts empty"
        );
        models.observe(&nxdomain(102));
        assert_eq!(models.take_alerts().count(), 1);
    }
}
