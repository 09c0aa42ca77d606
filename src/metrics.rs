//! Prometheus exporter for the live daemon.
//!
//! The daemon gathers a [`MetricsSnapshot`] of its cumulative counters once a second and hands
//! it to [`Metrics::update`]; [`MetricsServer`] serves the latest one as the Prometheus text
//! format on `GET /metrics`, from its own thread. Snapshot values are turned into metric
//! families at update time (not per scrape), so a scrape costs one clone and one encode.
//!
//! Counters stay monotonic even when a source restarts from zero (an interface reopened, a
//! worker restarted): a decrease is taken as a reset and the previous value is carried as an
//! offset, which is what `rate()` would have assumed across a real counter reset anyway.

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{Encoder, Registry, TextEncoder, TEXT_FORMAT};

/// Everything the exporter shows, as cumulative counters and current levels. Plain data, built
/// by the daemon once a second.
#[derive(Debug, Clone, Default)]
pub struct MetricsSnapshot {
    /// One per (interface, worker) capture source.
    pub captures: Vec<CaptureSnapshot>,
    pub workers: Vec<WorkerSnapshot>,
    pub rules: RulesSnapshot,
    /// One per event sink.
    pub outputs: Vec<OutputSnapshot>,
    /// Active response, when it runs.
    pub response: Option<ResponseSnapshot>,
    /// Anomaly models, when they run.
    pub anomaly: Option<AnomalySnapshot>,
    /// Alerts per rule that has alerted, as (gid, sid, alerts): summed over workers, rule
    /// revisions and reloads, the anomaly models' (gid 9100) included.
    pub rule_alerts: Vec<(u32, u32, u64)>,
    pub uptime_seconds: f64,
}

/// Anomaly model counters since the daemon started.
#[derive(Debug, Clone, Default)]
pub struct AnomalySnapshot {
    pub observations: u64,
    pub batches_dropped: u64,
    pub alerts: u64,
    pub evicted: u64,
}

/// Active response counters since the daemon started.
#[derive(Debug, Clone, Default)]
pub struct ResponseSnapshot {
    pub requests: u64,
    pub requests_dropped: u64,
    pub resets: u64,
    pub icmp_unreachables: u64,
    pub blocks: u64,
    pub unblocks: u64,
    pub expired: u64,
    pub refused_allowlist: u64,
    pub refused_rate_limit: u64,
    pub dry_run: u64,
    pub failed: u64,
    pub blocks_active: u64,
    pub reset_latency_seconds: f64,
    pub block_latency_seconds: f64,
}

/// Counters of one capture source since the daemon started.
#[derive(Debug, Clone, Default)]
pub struct CaptureSnapshot {
    pub interface: String,
    pub worker: usize,
    /// `af-packet`, `af-xdp` or `pcap`.
    pub method: String,
    pub packets: u64,
    pub bytes: u64,
    /// Frames the kernel or NIC ring dropped before the sensor saw them.
    pub drops: u64,
}

/// Counters and levels of one worker thread.
#[derive(Debug, Clone, Default)]
pub struct WorkerSnapshot {
    pub worker: usize,
    pub packets: u64,
    pub bytes: u64,
    pub decode_errors: u64,
    pub flows_active: u64,
    pub flows_total: u64,
    pub flows_evicted: u64,
    pub flow_memcap_bytes: u64,
    pub flow_memory_bytes: u64,
    pub emergency: bool,
    pub stream_memory_bytes: u64,
    pub stream_memcap_bytes: u64,
    /// Alerts by severity 1, 2, 3 and 4-or-above.
    pub alerts_by_severity: [u64; 4],
    pub seconds_since_last_packet: f64,
    /// Packets dropped between the capture thread and this worker.
    pub ring_drops: u64,
    /// Times this worker waited on a full output queue.
    pub output_waits: u64,
    /// Events this worker dropped because the output queue was full (never alerts).
    pub events_dropped: u64,
}

/// Rule set state.
#[derive(Debug, Clone, Default)]
pub struct RulesSnapshot {
    pub loaded: u64,
    pub skipped: u64,
    pub last_reload_unix_seconds: f64,
    pub last_reload_success: bool,
    pub reloads_total: u64,
    pub reload_failures_total: u64,
    /// The last reload found settings that only a restart applies.
    pub restart_pending: bool,
}

/// Counters and queue depth of one event sink.
#[derive(Debug, Clone, Default)]
pub struct OutputSnapshot {
    /// Sink name, e.g. `file`.
    pub sink: String,
    pub events: u64,
    pub bytes: u64,
    pub errors: u64,
    pub queue_depth: u64,
    /// Upstream sinks only (0 for the file).
    pub acked: u64,
    pub spooled: u64,
    pub dropped: u64,
    /// Events the receiver refused for good (too large): skipped, not retried.
    pub rejected: u64,
    pub reconnects: u64,
    pub spool_bytes: u64,
    pub spool_events: u64,
    pub lag_seconds: f64,
    pub connected: bool,
}

/// Why the metrics server could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics listener {addr}: cannot bind: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("metrics listener {addr}: {reason}")]
    Server { addr: SocketAddr, reason: String },
    #[error("metrics listener {addr}: cannot start its thread: {source}")]
    Thread {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A sample value. Counters are integers so the reset bookkeeping is exact.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Value {
    Count(u64),
    Level(f64),
}

fn level(x: u64) -> Value {
    Value::Level(x as f64)
}

fn flag(b: bool) -> Value {
    Value::Level(if b { 1.0 } else { 0.0 })
}

/// Where a family's samples come from; also fixes its label names.
#[derive(Clone, Copy)]
enum Source {
    Capture(fn(&CaptureSnapshot) -> Value),
    Worker(fn(&WorkerSnapshot) -> Value),
    /// Worker by severity.
    Alerts,
    Rules(fn(&RulesSnapshot) -> Value),
    Output(fn(&OutputSnapshot) -> Value),
    Response(fn(&ResponseSnapshot) -> Value),
    Anomaly(fn(&AnomalySnapshot) -> Value),
    RuleAlerts,
    Uptime,
}

impl Source {
    fn label_names(self) -> &'static [&'static str] {
        match self {
            Source::Capture(_) => &["interface", "worker", "method"],
            Source::Worker(_) => &["worker"],
            Source::Alerts => &["worker", "severity"],
            Source::RuleAlerts => &["gid", "sid"],
            Source::Rules(_) | Source::Response(_) | Source::Anomaly(_) | Source::Uptime => &[],
            Source::Output(_) => &["sink"],
        }
    }
}

struct Family {
    name: &'static str,
    help: &'static str,
    counter: bool,
    source: Source,
}

const fn counter(name: &'static str, help: &'static str, source: Source) -> Family {
    Family {
        name,
        help,
        counter: true,
        source,
    }
}

const fn gauge(name: &'static str, help: &'static str, source: Source) -> Family {
    Family {
        name,
        help,
        counter: false,
        source,
    }
}

const SEVERITIES: [&str; 4] = ["1", "2", "3", "4"];

#[rustfmt::skip]
const FAMILIES: &[Family] = &[
    counter("vigil_capture_packets_total", "Frames received by a capture source.",
        Source::Capture(|c| Value::Count(c.packets))),
    counter("vigil_capture_bytes_total", "Wire bytes of the frames received by a capture source.",
        Source::Capture(|c| Value::Count(c.bytes))),
    counter("vigil_capture_drops_total", "Frames the kernel or NIC dropped before a capture source saw them.",
        Source::Capture(|c| Value::Count(c.drops))),
    counter("vigil_worker_packets_total", "Packets processed by a worker.",
        Source::Worker(|w| Value::Count(w.packets))),
    counter("vigil_worker_bytes_total", "Wire bytes of the packets processed by a worker.",
        Source::Worker(|w| Value::Count(w.bytes))),
    counter("vigil_decoder_errors_total", "Packets with at least one decoder anomaly.",
        Source::Worker(|w| Value::Count(w.decode_errors))),
    gauge("vigil_flows_active", "Flows currently in a worker's flow table.",
        Source::Worker(|w| level(w.flows_active))),
    counter("vigil_flows_total", "Flows created by a worker.",
        Source::Worker(|w| Value::Count(w.flows_total))),
    counter("vigil_flows_evicted_total", "Flows evicted early to stay under the flow memcap.",
        Source::Worker(|w| Value::Count(w.flows_evicted))),
    gauge("vigil_flow_memory_bytes", "Memory held by a worker's flow table.",
        Source::Worker(|w| level(w.flow_memory_bytes))),
    gauge("vigil_flow_memcap_bytes", "Memory limit of a worker's flow table.",
        Source::Worker(|w| level(w.flow_memcap_bytes))),
    gauge("vigil_flow_emergency", "1 while a worker's flow table is in emergency mode, else 0.",
        Source::Worker(|w| flag(w.emergency))),
    gauge("vigil_stream_memory_bytes", "Memory held by a worker's TCP reassembly.",
        Source::Worker(|w| level(w.stream_memory_bytes))),
    gauge("vigil_stream_memcap_bytes", "Memory limit of a worker's TCP reassembly.",
        Source::Worker(|w| level(w.stream_memcap_bytes))),
    counter("vigil_alerts_total", "Alerts raised, by rule severity (4 counts 4 and above).",
        Source::Alerts),
    gauge("vigil_worker_idle_seconds", "Seconds since a worker last received a packet.",
        Source::Worker(|w| Value::Level(w.seconds_since_last_packet))),
    counter("vigil_worker_ring_drops_total", "Packets dropped on the way from capture to a worker.",
        Source::Worker(|w| Value::Count(w.ring_drops))),
    counter("vigil_worker_output_waits_total", "Times a worker waited because the output thread's queue was full.",
        Source::Worker(|w| Value::Count(w.output_waits))),
    counter("vigil_worker_events_dropped_total", "Events (never alerts) a worker dropped because the output thread's queue was full.",
        Source::Worker(|w| Value::Count(w.events_dropped))),
    gauge("vigil_rules_loaded", "Rules in the running rule set.",
        Source::Rules(|r| level(r.loaded))),
    gauge("vigil_rules_skipped", "Rules of the rule files that could not be loaded.",
        Source::Rules(|r| level(r.skipped))),
    gauge("vigil_rules_last_reload_timestamp_seconds", "Unix time of the last rule load or reload attempt.",
        Source::Rules(|r| Value::Level(r.last_reload_unix_seconds))),
    gauge("vigil_rules_last_reload_success", "1 if the last rule load or reload succeeded, else 0.",
        Source::Rules(|r| flag(r.last_reload_success))),
    counter("vigil_rules_reloads_total", "Rule reload attempts.",
        Source::Rules(|r| Value::Count(r.reloads_total))),
    counter("vigil_rules_reload_failures_total", "Rule reloads that failed and kept the previous rule set.",
        Source::Rules(|r| Value::Count(r.reload_failures_total))),
    gauge("vigil_config_restart_pending", "1 if the last reload found settings that only a restart applies, else 0.",
        Source::Rules(|r| flag(r.restart_pending))),
    counter("vigil_output_events_total", "Events written by a sink.",
        Source::Output(|o| Value::Count(o.events))),
    counter("vigil_output_bytes_total", "Bytes written by a sink.",
        Source::Output(|o| Value::Count(o.bytes))),
    counter("vigil_output_errors_total", "Write errors of a sink.",
        Source::Output(|o| Value::Count(o.errors))),
    gauge("vigil_output_queue_depth", "Events waiting to be written by a sink.",
        Source::Output(|o| level(o.queue_depth))),
    counter("vigil_output_acked_total", "Events an upstream receiver acknowledged.",
        Source::Output(|o| Value::Count(o.acked))),
    counter("vigil_output_spooled_total", "Events written to a sink's disk spool.",
        Source::Output(|o| Value::Count(o.spooled))),
    counter("vigil_output_dropped_total", "Events a full spool dropped (by its policy).",
        Source::Output(|o| Value::Count(o.dropped))),
    counter("vigil_output_rejected_total", "Events an upstream receiver refused for good (e.g. over its size limit); skipped.",
        Source::Output(|o| Value::Count(o.rejected))),
    counter("vigil_output_reconnects_total", "Reconnections of an upstream sink.",
        Source::Output(|o| Value::Count(o.reconnects))),
    gauge("vigil_output_spool_bytes", "Bytes in a sink's disk spool.",
        Source::Output(|o| level(o.spool_bytes))),
    gauge("vigil_output_spool_events", "Events waiting in a sink's disk spool.",
        Source::Output(|o| level(o.spool_events))),
    gauge("vigil_output_delivery_lag_seconds", "Age of the newest event a receiver acknowledged, when it did.",
        Source::Output(|o| Value::Level(o.lag_seconds))),
    gauge("vigil_output_connected", "1 while an upstream sink is connected.",
        Source::Output(|o| flag(o.connected))),
    counter("vigil_response_requests_total", "Alerts that asked active response for an action.",
        Source::Response(|r| Value::Count(r.requests))),
    counter("vigil_response_requests_dropped_total", "Response requests lost because the responder's queue was full.",
        Source::Response(|r| Value::Count(r.requests_dropped))),
    counter("vigil_response_resets_total", "TCP connections reset.",
        Source::Response(|r| Value::Count(r.resets))),
    counter("vigil_response_icmp_unreachables_total", "ICMP port unreachables sent for UDP flows.",
        Source::Response(|r| Value::Count(r.icmp_unreachables))),
    counter("vigil_response_blocks_total", "Addresses blocked (firewall set, webhook).",
        Source::Response(|r| Value::Count(r.blocks))),
    counter("vigil_response_unblocks_total", "Blocks lifted by the operator.",
        Source::Response(|r| Value::Count(r.unblocks))),
    counter("vigil_response_expired_total", "Blocks that expired.",
        Source::Response(|r| Value::Count(r.expired))),
    counter("vigil_response_refused_allowlist_total", "Actions refused because an address is allowlisted.",
        Source::Response(|r| Value::Count(r.refused_allowlist))),
    counter("vigil_response_refused_rate_limit_total", "Actions refused by the rate limit.",
        Source::Response(|r| Value::Count(r.refused_rate_limit))),
    counter("vigil_response_dry_run_total", "Actions only logged (dry-run).",
        Source::Response(|r| Value::Count(r.dry_run))),
    counter("vigil_response_failed_total", "Actions that failed (injection, firewall, no Ethernet header).",
        Source::Response(|r| Value::Count(r.failed))),
    gauge("vigil_response_blocks_active", "Addresses blocked now.",
        Source::Response(|r| level(r.blocks_active))),
    gauge("vigil_response_reset_latency_seconds_sum", "Alert-to-reset latency summed over all resets (divide by vigil_response_resets_total).",
        Source::Response(|r| Value::Level(r.reset_latency_seconds))),
    gauge("vigil_response_block_latency_seconds_sum", "Alert-to-block latency summed over alert-triggered blocks.",
        Source::Response(|r| Value::Level(r.block_latency_seconds))),
    counter("vigil_anomaly_observations_total", "Ended flows and DNS messages handed to the anomaly models.",
        Source::Anomaly(|a| Value::Count(a.observations))),
    counter("vigil_anomaly_batches_dropped_total", "Observation batches lost because the anomaly thread's queue was full.",
        Source::Anomaly(|a| Value::Count(a.batches_dropped))),
    counter("vigil_anomaly_alerts_total", "Alerts raised by the anomaly models.",
        Source::Anomaly(|a| Value::Count(a.alerts))),
    counter("vigil_anomaly_evicted_total", "Model entries forgotten to stay under anomaly.max_entries.",
        Source::Anomaly(|a| Value::Count(a.evicted))),
    counter("vigil_rule_alerts_total", "Alerts per rule (gid, sid) that has alerted, all workers and reloads summed.",
        Source::RuleAlerts),
    gauge("vigil_uptime_seconds", "Seconds since the daemon started.", Source::Uptime),
];

const BUILD_INFO: &str = "vigil_build_info";
const BUILD_INFO_HELP: &str = "Always 1; the version label names the running build.";

/// The samples of one family in a snapshot, in snapshot order.
fn samples(source: Source, snap: &MetricsSnapshot, out: &mut Vec<(Vec<String>, Value)>) {
    match source {
        Source::Capture(f) => out.extend(snap.captures.iter().map(|c| {
            let labels = vec![c.interface.clone(), c.worker.to_string(), c.method.clone()];
            (labels, f(c))
        })),
        Source::Worker(f) => out.extend(
            snap.workers
                .iter()
                .map(|w| (vec![w.worker.to_string()], f(w))),
        ),
        Source::Alerts => {
            for w in &snap.workers {
                for (sev, n) in SEVERITIES.iter().zip(w.alerts_by_severity) {
                    out.push((
                        vec![w.worker.to_string(), (*sev).to_owned()],
                        Value::Count(n),
                    ));
                }
            }
        }
        Source::Rules(f) => out.push((Vec::new(), f(&snap.rules))),
        Source::Output(f) => out.extend(snap.outputs.iter().map(|o| (vec![o.sink.clone()], f(o)))),
        Source::Response(f) => out.extend(snap.response.iter().map(|r| (Vec::new(), f(r)))),
        Source::Anomaly(f) => out.extend(snap.anomaly.iter().map(|a| (Vec::new(), f(a)))),
        Source::RuleAlerts => out.extend(
            snap.rule_alerts
                .iter()
                .map(|&(gid, sid, n)| (vec![gid.to_string(), sid.to_string()], Value::Count(n))),
        ),
        Source::Uptime => out.push((Vec::new(), Value::Level(snap.uptime_seconds))),
    }
}

/// Reset bookkeeping of one counter series.
#[derive(Debug, Default, Clone, Copy)]
struct Monotonic {
    last_raw: u64,
    offset: u64,
}

impl Monotonic {
    fn advance(&mut self, raw: u64) -> u64 {
        if raw < self.last_raw {
            self.offset = self.offset.saturating_add(self.last_raw);
        }
        self.last_raw = raw;
        self.offset.saturating_add(raw)
    }
}

#[derive(Default)]
struct State {
    /// Families of the latest snapshot, ready to encode; `None` until the first update, so a
    /// scrape before it shows no made-up zeros.
    families: Option<Vec<MetricFamily>>,
    counters: HashMap<(usize, Vec<String>), Monotonic>,
    warned_duplicate: bool,
}

fn label_pairs(names: &[&str], values: Vec<String>) -> Vec<LabelPair> {
    names
        .iter()
        .zip(values)
        .map(|(name, value)| {
            let mut pair = LabelPair::default();
            pair.set_name((*name).to_owned());
            pair.set_value(value);
            pair
        })
        .collect()
}

fn gauge_metric(labels: Vec<LabelPair>, value: f64) -> Metric {
    let mut g = Gauge::default();
    // The text encoder would print Rust's `inf`; NaN is the format's own "no value".
    g.set_value(if value.is_finite() { value } else { f64::NAN });
    let mut m = Metric::from_label(labels);
    m.set_gauge(g);
    m
}

fn family(name: &str, help: &str, counter: bool, metrics: Vec<Metric>) -> MetricFamily {
    let mut mf = MetricFamily::default();
    mf.set_name(name.to_owned());
    mf.set_help(help.to_owned());
    mf.set_field_type(if counter {
        MetricType::COUNTER
    } else {
        MetricType::GAUGE
    });
    mf.set_metric(metrics);
    mf
}

impl State {
    fn rebuild(&mut self, snap: &MetricsSnapshot) {
        let mut families = Vec::with_capacity(FAMILIES.len());
        let mut raw = Vec::new();
        let mut seen = HashSet::new();
        for (index, fam) in FAMILIES.iter().enumerate() {
            raw.clear();
            seen.clear();
            samples(fam.source, snap, &mut raw);
            let mut metrics = Vec::with_capacity(raw.len());
            for (labels, value) in raw.drain(..) {
                // A repeated label set would make Prometheus reject the sample: keep the first.
                if !seen.insert(labels.clone()) {
                    if !self.warned_duplicate {
                        self.warned_duplicate = true;
                        tracing::warn!(
                            metric = fam.name,
                            ?labels,
                            "metrics: duplicate series in snapshot; keeping the first"
                        );
                    }
                    continue;
                }
                let pairs = label_pairs(fam.source.label_names(), labels.clone());
                let metric = match value {
                    Value::Count(n) => {
                        let n = self.counters.entry((index, labels)).or_default().advance(n);
                        let mut c = Counter::default();
                        c.set_value(n as f64);
                        let mut m = Metric::from_label(pairs);
                        m.set_counter(c);
                        m
                    }
                    Value::Level(x) => gauge_metric(pairs, x),
                };
                metrics.push(metric);
            }
            families.push(family(fam.name, fam.help, fam.counter, metrics));
        }
        self.families = Some(families);
    }
}

/// The collector registered with the registry: it hands out the families built by the last
/// update, plus the build info.
struct SnapshotCollector {
    descs: Vec<Desc>,
    state: Arc<Mutex<State>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // State is rebuilt whole under the lock, so a panic elsewhere cannot leave it half-written.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Collector for SnapshotCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let build = gauge_metric(
            label_pairs(&["version"], vec![env!("CARGO_PKG_VERSION").to_owned()]),
            1.0,
        );
        let mut out = vec![family(BUILD_INFO, BUILD_INFO_HELP, false, vec![build])];
        if let Some(families) = &lock(&self.state).families {
            out.extend(families.iter().cloned());
        }
        out
    }
}

/// The exporter's registry and latest snapshot. Shared between the daemon (which calls
/// [`update`](Metrics::update)) and the server thread.
pub struct Metrics {
    registry: Registry,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A registry with the Vigil families and, on Linux, the standard `process_*` metrics.
    pub fn new() -> Arc<Metrics> {
        let state = Arc::new(Mutex::new(State::default()));
        let mut descs: Vec<Desc> = FAMILIES
            .iter()
            .map(|f| {
                let labels = f.source.label_names().iter().map(|l| (*l).to_owned());
                Desc::new(
                    f.name.to_owned(),
                    f.help.to_owned(),
                    labels.collect(),
                    HashMap::new(),
                )
                .expect("metric names and labels are valid")
            })
            .collect();
        descs.push(
            Desc::new(
                BUILD_INFO.to_owned(),
                BUILD_INFO_HELP.to_owned(),
                vec!["version".to_owned()],
                HashMap::new(),
            )
            .expect("metric names and labels are valid"),
        );
        let registry = Registry::new();
        registry
            .register(Box::new(SnapshotCollector {
                descs,
                state: state.clone(),
            }))
            .expect("a fresh registry takes the Vigil families");
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("process metric names do not clash with vigil_*");
        Arc::new(Metrics { registry, state })
    }

    /// Replaces what scrapes show with `snap` (counters kept monotonic across source resets).
    pub fn update(&self, snap: MetricsSnapshot) {
        lock(&self.state).rebuild(&snap);
    }

    /// The registry, for registering further collectors.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    fn encode(&self) -> prometheus::Result<String> {
        let mut buf = Vec::with_capacity(16 * 1024);
        TextEncoder::new().encode(&self.registry.gather(), &mut buf)?;
        String::from_utf8(buf).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }

    /// The Prometheus text exposition of the latest snapshot, as served on `/metrics`.
    pub fn render(&self) -> String {
        self.encode().unwrap_or_else(|e| {
            tracing::error!(error = %e, "metrics: encoding failed");
            String::new()
        })
    }
}

/// How long the server thread waits for a request before looking at the stop flag.
const POLL: Duration = Duration::from_millis(100);
/// Pause before listening again after the listener failed.
const RELISTEN: Duration = Duration::from_secs(1);

/// HTTP server for `GET /metrics` on its own thread. Serves until [`stop`](Self::stop)ped or
/// dropped; either joins the thread.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn listen(addr: SocketAddr) -> Result<tiny_http::Server, MetricsError> {
    // Bound here rather than by tiny_http so a failure keeps its io::Error (address in use,
    // permission denied) for the message.
    let listener = TcpListener::bind(addr).map_err(|source| MetricsError::Bind { addr, source })?;
    tiny_http::Server::from_listener(listener, None).map_err(|e| MetricsError::Server {
        addr,
        reason: e.to_string(),
    })
}

impl MetricsServer {
    /// Binds `listen_addr` (port 0 picks a free port; see [`local_addr`](Self::local_addr)) and
    /// starts serving `metrics`.
    pub fn start(listen_addr: SocketAddr, metrics: Arc<Metrics>) -> Result<Self, MetricsError> {
        let server = listen(listen_addr)?;
        let addr = match server.server_addr() {
            tiny_http::ListenAddr::IP(a) => a,
            #[cfg(unix)]
            tiny_http::ListenAddr::Unix(_) => listen_addr,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("vigil-metrics".into())
            .spawn(move || serve(server, addr, &metrics, &thread_stop))
            .map_err(|source| MetricsError::Thread { addr, source })?;
        tracing::info!(%addr, "metrics: serving /metrics");
        Ok(MetricsServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The address actually listened on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and joins the server thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("metrics: server thread panicked");
            }
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn serve(mut server: tiny_http::Server, addr: SocketAddr, metrics: &Metrics, stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        match server.recv_timeout(POLL) {
            Ok(Some(request)) => respond(request, metrics),
            Ok(None) => {}
            Err(e) => {
                // tiny_http's accept thread has ended (e.g. out of file descriptors) and will
                // accept nothing more: listen anew on the same address.
                tracing::warn!(%addr, error = %e, "metrics: listener failed; listening again");
                drop(server);
                match relisten(addr, stop) {
                    Some(s) => server = s,
                    None => return,
                }
            }
        }
    }
}

/// Retries listening on `addr` every [`RELISTEN`] until it works or `stop` is set.
fn relisten(addr: SocketAddr, stop: &AtomicBool) -> Option<tiny_http::Server> {
    loop {
        let until = Instant::now() + RELISTEN;
        while Instant::now() < until {
            if stop.load(Ordering::Acquire) {
                return None;
            }
            std::thread::sleep(POLL);
        }
        match listen(addr) {
            Ok(server) => return Some(server),
            Err(e) => tracing::warn!(error = %e, "metrics: still cannot listen"),
        }
    }
}

fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name, value).expect("static header is valid")
}

fn respond(request: tiny_http::Request, metrics: &Metrics) {
    use tiny_http::{Method, Response};

    let path = request.url().split('?').next().unwrap_or_default();
    let readable = matches!(request.method(), Method::Get | Method::Head);
    let text = |body: String, status: u16| {
        Response::from_string(body)
            .with_status_code(status)
            .with_header(header("Content-Type", "text/plain; charset=utf-8"))
    };
    let response = match (path, readable) {
        ("/metrics", true) => match metrics.encode() {
            Ok(body) => {
                Response::from_string(body).with_header(header("Content-Type", TEXT_FORMAT))
            }
            Err(e) => {
                tracing::error!(error = %e, "metrics: encoding failed");
                text(format!("encoding failed: {e}\n"), 500)
            }
        },
        ("/", true) => text("Vigil sensor: metrics are at /metrics\n".into(), 200),
        ("/metrics" | "/", false) => {
            text("method not allowed\n".into(), 405).with_header(header("Allow", "GET, HEAD"))
        }
        _ => text("not found\n".into(), 404),
    };
    if let Err(e) = request.respond(response) {
        // The client went away; nothing to do for it.
        tracing::debug!(error = %e, "metrics: response not delivered");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(id: usize, packets: u64) -> WorkerSnapshot {
        WorkerSnapshot {
            worker: id,
            packets,
            alerts_by_severity: [1, 2, 3, 4],
            ..Default::default()
        }
    }

    fn full_snapshot() -> MetricsSnapshot {
        MetricsSnapshot {
            captures: vec![CaptureSnapshot {
                interface: "eth0".into(),
                worker: 0,
                method: "af-packet".into(),
                packets: 10,
                bytes: 1000,
                drops: 1,
            }],
            workers: vec![worker(0, 10)],
            rules: RulesSnapshot::default(),
            outputs: vec![OutputSnapshot {
                sink: "file".into(),
                ..Default::default()
            }],
            response: Some(ResponseSnapshot::default()),
            anomaly: Some(AnomalySnapshot::default()),
            rule_alerts: vec![(1, 2_000_001, 5), (9100, 1, 2)],
            uptime_seconds: 3.5,
        }
    }

    #[test]
    fn family_kinds_follow_naming_conventions() {
        let snap = full_snapshot();
        let mut names = HashSet::new();
        for fam in FAMILIES {
            assert!(names.insert(fam.name), "{} twice", fam.name);
            assert!(fam.name.starts_with("vigil_"), "{}", fam.name);
            assert_eq!(fam.counter, fam.name.ends_with("_total"), "{}", fam.name);
            let mut out = Vec::new();
            samples(fam.source, &snap, &mut out);
            assert!(!out.is_empty(), "{} has no sample", fam.name);
            for (labels, value) in out {
                assert_eq!(labels.len(), fam.source.label_names().len(), "{}", fam.name);
                assert_eq!(
                    matches!(value, Value::Count(_)),
                    fam.counter,
                    "{}",
                    fam.name
                );
            }
        }
    }

    fn value_of(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map(|v| v.parse().unwrap())
    }

    #[test]
    fn counters_never_go_backwards() {
        let metrics = Metrics::new();
        let series = r#"vigil_worker_packets_total{worker="0"}"#;
        let mut seen = Vec::new();
        for raw in [100, 150, 40, 60, 60, 0, 5] {
            metrics.update(MetricsSnapshot {
                workers: vec![worker(0, raw)],
                ..Default::default()
            });
            seen.push(value_of(&metrics.render(), series).unwrap());
        }
        // 40 after 150 is a reset: 150 carried; 0 after 60 another: 210 carried.
        assert_eq!(seen, [100.0, 150.0, 190.0, 210.0, 210.0, 210.0, 215.0]);
    }

    #[test]
    fn gauges_follow_the_snapshot_down() {
        let metrics = Metrics::new();
        let series = r#"vigil_flows_active{worker="0"}"#;
        for (active, want) in [(50, 50.0), (7, 7.0)] {
            let mut w = worker(0, 1);
            w.flows_active = active;
            metrics.update(MetricsSnapshot {
                workers: vec![w],
                ..Default::default()
            });
            assert_eq!(value_of(&metrics.render(), series), Some(want));
        }
    }

    #[test]
    fn odd_interface_names_are_escaped() {
        let metrics = Metrics::new();
        let mut snap = full_snapshot();
        snap.captures[0].interface = "we\"ird\\if\nname ü".into();
        metrics.update(snap);
        let text = metrics.render();
        let want = r#"vigil_capture_packets_total{interface="we\"ird\\if\nname ü",worker="0",method="af-packet"} 10"#;
        assert!(text.lines().any(|l| l == want), "{text}");
    }

    #[test]
    fn nothing_but_build_info_before_the_first_update() {
        let text = Metrics::new().render();
        assert!(text.contains(&format!(
            "vigil_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )));
        assert!(!text.contains("vigil_uptime_seconds"), "{text}");
    }

    #[test]
    fn duplicate_series_keep_the_first_and_non_finite_becomes_nan() {
        let metrics = Metrics::new();
        let mut first = worker(3, 7);
        first.seconds_since_last_packet = f64::INFINITY;
        metrics.update(MetricsSnapshot {
            workers: vec![first, worker(3, 99)],
            ..Default::default()
        });
        let text = metrics.render();
        let lines: Vec<_> = text
            .lines()
            .filter(|l| l.starts_with("vigil_worker_packets_total{"))
            .collect();
        assert_eq!(lines, [r#"vigil_worker_packets_total{worker="3"} 7"#]);
        assert!(
            text.contains("vigil_worker_idle_seconds{worker=\"3\"} NaN"),
            "{text}"
        );
    }
}
