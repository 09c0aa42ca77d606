//! `vigil run`: the live sensor.
//!
//! Each worker thread owns one capture socket per interface (the kernel's fanout or the NIC's
//! queues spread flows over them) and runs decode, flows, app layer and detection on what it
//! receives. The main thread only supervises: signals (SIGTERM/SIGINT stop, SIGHUP reloads),
//! the once-a-second counter snapshot for metrics, periodic EVE stats, and systemd's watchdog.

pub mod live_worker;
pub mod privileges;
pub mod sources;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::bounded;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use vigil_signatures::RuleSet;

use crate::config::{CaptureMethod, Config};
use crate::detect::WorkerDetect;
use crate::output::eve::{EveEvent, EveFormat};
use crate::output::{EveFileWriter, OutputCounters, OutputError, OutputReport};
use crate::pipeline::{Dispatcher, Worker, WorkerConfig, EVENT_MESSAGES_QUEUED};
use crate::published::Published;
use crate::stats::{CaptureCounts, RunStats};
use live_worker::{LiveSink, LiveWorker, Peers, WorkerStatus};

/// Shared between the supervisor and the workers; workers read it once per poll, never per
/// packet.
pub struct Control {
    pub stop: AtomicBool,
    /// The ruleset the workers take when a reload publishes a new one.
    pub rules: Arc<Published<Option<Arc<RuleSet>>>>,
}

pub struct DaemonOptions {
    pub config: Config,
    /// Re-read on SIGHUP; `None` keeps the settings given at start.
    pub config_path: Option<PathBuf>,
    /// What the command line set; applied over the file again on every reload.
    pub overrides: CliOverrides,
    /// Rules files from the command line; they win over the config's on every reload too.
    pub rules_files: Vec<PathBuf>,
    pub workers: usize,
    pub use_rules_cache: bool,
    /// Upstream sink URLs besides the config's `[[output]]` (`--output`).
    pub outputs: Vec<String>,
    /// Active response from the command line (`--respond`); `None` leaves it to
    /// `response.enabled` and `response.dry_run`.
    pub respond: Option<crate::response::Mode>,
    /// `--inject-iface`: where resets leave, over `response.inject_iface`.
    pub inject_iface: Option<String>,
    /// `--rule-stats`: alerts per rule, rewritten with every stats event and at exit.
    pub rule_stats: Option<PathBuf>,
}

/// Settings given on the command line: they win over the config file at start and on every
/// reload, so a reload never mistakes them for changes.
#[derive(Debug, Clone, Default)]
pub struct CliOverrides {
    pub interfaces: Vec<String>,
    pub method: Option<CaptureMethod>,
    pub eve_types: Option<Vec<String>>,
    pub eve_dir: Option<PathBuf>,
    pub metrics_listen: Option<String>,
    pub bpf_filter: Option<String>,
    pub user: Option<String>,
}

impl CliOverrides {
    pub fn apply(&self, config: &mut Config) {
        if !self.interfaces.is_empty() {
            config.capture.interfaces = self.interfaces.clone();
        }
        if let Some(method) = self.method {
            config.capture.method = method;
        }
        if let Some(types) = &self.eve_types {
            config.eve.types = types.clone();
        }
        if let Some(dir) = &self.eve_dir {
            config.eve.dir = dir.clone();
        }
        if let Some(listen) = &self.metrics_listen {
            config.metrics.listen = listen.clone();
        }
        if let Some(filter) = &self.bpf_filter {
            config.capture.bpf_filter = filter.clone();
        }
        if let Some(user) = &self.user {
            config.daemon.user = user.clone();
        }
    }
}

/// Rules as loaded, for logs and metrics.
#[derive(Debug, Clone, Default)]
pub struct RulesStatus {
    pub loaded: u64,
    pub skipped: u64,
    pub last_reload_unix_secs: f64,
    pub last_reload_ok: bool,
    pub reloads: u64,
    pub reload_failures: u64,
    /// The last reload found settings that only a restart applies.
    pub restart_pending: bool,
}

pub struct DaemonReport {
    pub stats: RunStats,
    pub output: OutputReport,
    pub workers: Vec<WorkerStatus>,
    /// Active response counters, when it ran.
    pub response: Option<Arc<crate::response::ResponseCounters>>,
    /// Anomaly model counters, when they ran.
    pub anomaly: Option<Arc<crate::anomaly::AnomalyCounters>>,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Capture(#[from] crate::capture::LiveError),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error(transparent)]
    Privileges(#[from] privileges::PrivilegeError),
    #[error("cannot load rules: {0}")]
    Rules(String),
    #[error(transparent)]
    Response(#[from] crate::response::engine::ResponseError),
    #[error("a worker thread failed: {0}")]
    Worker(String),
}

/// Runs until SIGTERM or SIGINT; every flow is ended and written before it returns.
pub fn run(opts: DaemonOptions) -> Result<DaemonReport, DaemonError> {
    let started = Instant::now();
    let mut config = opts.config.clone();

    // Signals first, so a SIGTERM during start-up is not lost.
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(|e| DaemonError::Setup(format!("cannot handle signals: {e}")))?;

    let mut rules_status = RulesStatus::default();
    let rules = load_rules(&config, &opts, &mut rules_status)?;
    rules_status.last_reload_ok = true;
    rules_status.last_reload_unix_secs = unix_now();

    let plans = sources::plan(&config.capture, opts.workers.max(1)).map_err(DaemonError::Setup)?;
    let workers = plans.len();
    let mut opened = Vec::with_capacity(workers);
    for worker_plans in &plans {
        let mut mine = Vec::new();
        for plan in worker_plans {
            let source = plan.open()?;
            mine.push((plan.clone(), source));
        }
        opened.push(mine);
    }
    tracing::info!(
        interfaces = ?config.capture.interfaces,
        method = plans[0][0].method_name(),
        workers,
        "capture sockets open"
    );
    // Opened before switching user: the log directory may be root's.
    let output_counters = Arc::new(OutputCounters::default());
    let format = EveFormat {
        community_id_seed: config.flow.community_id_seed,
        files: Vec::new(),
    };
    let upstreams =
        crate::output::start_upstreams(&config, &opts.outputs).map_err(DaemonError::Setup)?;
    let drain = Duration::from_secs(u64::from(config.spool.drain_timeout_secs));
    let writer = EveFileWriter::create_rotating(&config.eve.dir, format, config.rotation())?
        .with_file_types(config.eve_types())
        .with_counters(Arc::clone(&output_counters))
        .with_upstreams(upstreams, drain);
    // Active response opens its socket, firewall table and control socket while still root.
    let respond = opts.respond.or_else(|| {
        config
            .response
            .enabled
            .then_some(if config.response.dry_run {
                crate::response::Mode::DryRun
            } else {
                crate::response::Mode::Act
            })
    });
    let response = match respond {
        Some(mode) => {
            let (settings, policy) = crate::response::settings(
                &config,
                mode,
                opts.inject_iface.as_deref(),
                &config.capture.interfaces,
                &opts.outputs,
            )
            .map_err(DaemonError::Setup)?;
            let firewall = settings.firewall.is_some() && mode == crate::response::Mode::Act;
            let prepared = crate::response::Responder::prepare(settings)?;
            let control = crate::response::control::ControlServer::bind(
                &config.response.control_socket,
                control_group(&config.daemon),
            )
            .map_err(DaemonError::Setup)?;
            tracing::info!(?mode, socket = %config.response.control_socket.display(), "active response ready");
            Some((prepared, control, policy, firewall))
        }
        None => None,
    };
    let ambient = match &response {
        Some((_, _, _, true)) => vec![caps::Capability::CAP_NET_ADMIN],
        _ => Vec::new(),
    };
    // Capabilities are per thread: drop before any other thread exists.
    privileges::drop_to(
        &config.daemon.user,
        &config.daemon.group,
        &capabilities_kept(config.capture.method),
        &ambient,
    )?;

    let control = Arc::new(Control {
        stop: AtomicBool::new(false),
        rules: Published::new(rules.clone()),
    });
    let (events_tx, events_rx) = bounded::<Vec<EveEvent>>(workers * EVENT_MESSAGES_QUEUED);
    // Written batches go back to the workers to be freed (`Worker::set_spent`). Few: an idle
    // worker takes none, and what waits for it is memory held.
    let (spent_tx, spent_rx) = bounded::<Vec<EveEvent>>(workers * 4);
    let writer = writer.with_spent_return(spent_tx);
    let output = thread::Builder::new()
        .name("vigil-output".into())
        .spawn(move || writer.run(events_rx))
        .map_err(|e| DaemonError::Worker(e.to_string()))?;
    let (responder, control_server, policy) = match response {
        Some((prepared, control, policy, _)) => {
            let responder = prepared.start(events_tx.clone())?;
            let server = control
                .start(responder.commands())
                .map_err(DaemonError::Setup)?;
            (Some(responder), Some(server), Some(policy))
        }
        None => (None, None, None),
    };
    let anomaly = if config.anomaly.enabled {
        let sink = crate::anomaly::EveAlerts {
            events: events_tx.clone(),
            response: policy
                .as_ref()
                .map(|p| p.reader())
                .zip(responder.as_ref().map(|r| r.requests())),
        };
        Some(
            crate::anomaly::AnomalyEngine::start(&config.anomaly, Box::new(sink))
                .map_err(|e| DaemonError::Worker(format!("anomaly thread: {e}")))?,
        )
    } else {
        None
    };

    let worker_cfg = WorkerConfig {
        flow: config.flow_table(workers),
        anomaly_events_per_second: config.anomaly_events.max_per_second,
        app_layer: config.app_layer(),
        stream_memcap_bytes: config.stream.memcap_bytes / workers,
        shed_events_when_output_full: true,
        alert_capture: config.alert_capture(),
    };
    let mut peers = exchange_rings(&config, workers).into_iter();
    let mut statuses = Vec::with_capacity(workers);
    let mut handles = Vec::with_capacity(workers);
    for (index, sources) in opened.into_iter().enumerate() {
        let detect = match &rules {
            Some(r) => Some(
                WorkerDetect::new(Arc::clone(r))
                    .map_err(|e| DaemonError::Rules(format!("detection scratch: {e}")))?,
            ),
            None => None,
        };
        let mut worker = Worker::new(worker_cfg.clone(), detect, events_tx.clone());
        worker.set_spent(Some(spent_rx.clone()));
        if let (Some(responder), Some(policy)) = (&responder, &policy) {
            worker.set_response(Some(crate::response::tap::ResponseTap::new(
                policy.reader(),
                responder.requests(),
            )));
        }
        worker.set_anomaly(anomaly.as_ref().map(|a| a.tap()));
        let dispatcher = Dispatcher::new(
            LiveSink::new(worker, index, peers.next().flatten()),
            config.pipeline.batch_packets,
            config.defrag(),
        );
        let status = Arc::new(Mutex::new(WorkerStatus::default()));
        statuses.push(Arc::clone(&status));
        let live = LiveWorker {
            index,
            dispatcher,
            sources,
            control: Arc::clone(&control),
            status,
            flow_memcap_bytes: worker_cfg.flow.memcap_bytes as u64,
            stream_memcap_bytes: worker_cfg.stream_memcap_bytes as u64,
            cpu: (!config.capture.cpu_affinity.is_empty())
                .then(|| config.capture.cpu_affinity[index % config.capture.cpu_affinity.len()]),
        };
        let handle = thread::Builder::new()
            .name(format!("vigil-worker-{index}"))
            .spawn(move || live.run())
            .map_err(|e| DaemonError::Worker(e.to_string()))?;
        handles.push(handle);
    }

    let metrics = crate::metrics::Metrics::new();
    let metrics_server = match config.metrics.listen.as_str() {
        "" => None,
        listen => {
            let addr = listen
                .parse()
                .map_err(|_| DaemonError::Setup(format!("bad metrics address {listen:?}")))?;
            let server = crate::metrics::MetricsServer::start(addr, Arc::clone(&metrics))
                .map_err(|e| DaemonError::Setup(e.to_string()))?;
            Some(server)
        }
    };

    notify(&[sd_notify::NotifyState::Ready]);
    tracing::info!("capturing");
    let watchdog = sd_notify::watchdog_enabled().map(|d| d / 2);
    let stats_every = Duration::from_secs(u64::from(config.daemon.stats_interval_secs));
    let mut next_stats = Instant::now() + stats_every;
    let mut next_watchdog = Instant::now();
    let mut next_metrics = Instant::now();
    'supervise: loop {
        for signal in signals.pending() {
            match signal {
                SIGHUP => {
                    notify(&[
                        sd_notify::NotifyState::Reloading,
                        monotonic_now().unwrap_or(sd_notify::NotifyState::Status("reloading")),
                    ]);
                    output_counters.reopen.store(true, Ordering::Release);
                    let live = LiveParts {
                        responder: responder.as_ref(),
                        policy: policy.as_ref(),
                        anomaly: anomaly.as_ref(),
                    };
                    reload(&opts, &mut config, &control, &live, &mut rules_status);
                    notify(&[sd_notify::NotifyState::Ready]);
                }
                _ => {
                    tracing::info!(signal, "stopping");
                    break 'supervise;
                }
            }
        }
        if watchdog.is_some_and(|_| Instant::now() >= next_watchdog) {
            notify(&[sd_notify::NotifyState::Watchdog]);
            next_watchdog = Instant::now() + watchdog.unwrap_or(Duration::from_secs(1));
        }
        if Instant::now() >= next_metrics {
            next_metrics = Instant::now() + Duration::from_secs(1);
            let mut snapshot = metrics_snapshot(
                &statuses,
                &rules_status,
                &output_counters,
                events_tx.len() as u64,
                started,
            );
            snapshot.response = responder.as_ref().map(|r| r.counters.snapshot());
            snapshot.anomaly = anomaly.as_ref().map(|a| a.counters.snapshot());
            let mut rule_alerts = crate::stats::RuleAlertCounts::default();
            for status in &statuses {
                if let Ok(s) = status.lock() {
                    rule_alerts.merge(&s.report.rule_alerts);
                }
            }
            if let Some(a) = &anomaly {
                rule_alerts.merge(&a.counters.rule_alerts());
            }
            snapshot.rule_alerts = rule_alerts.by_gid_sid();
            metrics.update(snapshot);
        }
        if Instant::now() >= next_stats {
            next_stats = Instant::now() + stats_every;
            let mut snapshot = gather(&statuses, started);
            snapshot.add_models(anomaly.as_ref().map(|a| &*a.counters));
            write_rule_stats(opts.rule_stats.as_deref(), &snapshot);
            let _ = events_tx.try_send(vec![EveEvent::Stats(Box::new(snapshot))]);
        }
        if handles.iter().any(|h| h.is_finished()) {
            tracing::error!("a worker stopped unexpectedly; shutting down");
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    notify(&[sd_notify::NotifyState::Stopping]);
    drop(metrics_server);

    control.stop.store(true, Ordering::Release);
    let mut finals = Vec::with_capacity(handles.len());
    let mut failure = None;
    for handle in handles {
        match handle.join() {
            Ok(status) => finals.push(status),
            Err(_) => failure = Some("a worker panicked".to_string()),
        }
    }
    // The workers are gone: what they asked for is handled, then the responder stops (its
    // blocks stay in the firewall and the state file).
    drop(control_server);
    let anomaly_counters = anomaly.map(|a| {
        let counters = Arc::clone(&a.counters);
        a.stop();
        counters
    });
    let response_counters = responder.map(|r| {
        let counters = Arc::clone(&r.counters);
        r.stop();
        counters
    });
    let mut stats = sum(&finals);
    // `detect.alert` counts every alert written, the models' too.
    stats.add_models(anomaly_counters.as_deref());
    stats.uptime_secs = started.elapsed().as_secs();
    write_rule_stats(opts.rule_stats.as_deref(), &stats);
    let _ = events_tx.send(vec![EveEvent::Stats(Box::new(stats.clone()))]);
    drop(events_tx);
    let output = output
        .join()
        .map_err(|_| DaemonError::Worker("the output thread panicked".into()))??;
    if let Some(failure) = failure {
        return Err(DaemonError::Worker(failure));
    }
    Ok(DaemonReport {
        stats,
        output,
        workers: finals,
        response: response_counters,
        anomaly: anomaly_counters,
    })
}

/// Rewrites the `--rule-stats` file; a failure is logged, the sensor goes on.
fn write_rule_stats(path: Option<&std::path::Path>, stats: &RunStats) {
    if let Some(path) = path {
        if let Err(e) = crate::stats::write_rule_stats(path, stats) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the rule stats");
        }
    }
}

/// The control socket's group: the daemon's group, else its user's primary group.
fn control_group(daemon: &crate::config::DaemonSection) -> Option<nix::unistd::Gid> {
    if !daemon.group.is_empty() {
        return nix::unistd::Group::from_name(&daemon.group)
            .ok()
            .flatten()
            .map(|g| g.gid);
    }
    if !daemon.user.is_empty() {
        return nix::unistd::User::from_name(&daemon.user)
            .ok()
            .flatten()
            .map(|u| u.gid);
    }
    None
}

/// AF_XDP with several queues: rings between every pair of workers, so each packet reaches the
/// worker that owns its flow by Vigil's own hash, whatever queue the NIC put it on.
fn exchange_rings(config: &Config, workers: usize) -> Vec<Option<Peers>> {
    if config.capture.method != CaptureMethod::AfXdp || workers < 2 {
        return (0..workers).map(|_| None).collect();
    }
    let finished = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (senders, inboxes): (Vec<_>, Vec<_>) = (0..workers)
        .map(|_| bounded(config.pipeline.ring_batches))
        .unzip();
    inboxes
        .into_iter()
        .enumerate()
        .map(|(me, inbox)| {
            Some(Peers {
                to: senders
                    .iter()
                    .enumerate()
                    .map(|(k, s)| (k != me).then(|| s.clone()))
                    .collect(),
                inbox,
                finished_sending: Arc::clone(&finished),
            })
        })
        .collect()
}

/// Rules per the command line (or else the config); `None` when there are none.
fn load_rules(
    config: &Config,
    opts: &DaemonOptions,
    status: &mut RulesStatus,
) -> Result<Option<Arc<RuleSet>>, DaemonError> {
    let files = if opts.rules_files.is_empty() {
        config.rules.files.clone()
    } else {
        opts.rules_files.clone()
    };
    if files.is_empty() {
        status.loaded = 0;
        status.skipped = 0;
        return Ok(None);
    }
    let cache = if opts.use_rules_cache {
        crate::detect::cache_dir(&config.rules)
    } else {
        None
    };
    let started = Instant::now();
    let (rules, report) = crate::detect::load_rules(&files, &config.rules, cache)
        .map_err(|e| DaemonError::Rules(e.to_string()))?;
    for skipped in report.skipped.iter().take(20) {
        tracing::warn!(
            file = %skipped.file,
            line = skipped.line,
            reason = skipped.reason.message(),
            "rule skipped"
        );
    }
    tracing::info!(
        loaded = report.loaded,
        skipped = report.skipped.len(),
        secs = started.elapsed().as_secs_f64(),
        "rules loaded"
    );
    status.loaded = report.loaded as u64;
    status.skipped = report.skipped.len() as u64;
    Ok(Some(rules))
}

/// What a reload changes besides the rules, while capture runs.
struct LiveParts<'a> {
    responder: Option<&'a crate::response::Responder>,
    policy: Option<&'a Arc<crate::response::policy::SharedPolicy>>,
    anomaly: Option<&'a crate::anomaly::AnomalyEngine>,
}

/// SIGHUP: re-read the config and the rules. The old ruleset serves until the new one is
/// built; a config or ruleset that does not load is refused whole and everything stays as it
/// was. Rules and rule variables, the response policy, allowlist and limits, and the anomaly
/// thresholds apply at once; other sections are named in the log and wait for a restart.
fn reload(
    opts: &DaemonOptions,
    config: &mut Config,
    control: &Control,
    live: &LiveParts,
    status: &mut RulesStatus,
) {
    status.reloads += 1;
    status.last_reload_unix_secs = unix_now();
    let candidate = match &opts.config_path {
        Some(path) => match Config::load(path) {
            Ok(mut c) => {
                opts.overrides.apply(&mut c);
                c
            }
            Err(e) => {
                status.reload_failures += 1;
                status.last_reload_ok = false;
                tracing::error!(error = %e, "reload refused: bad configuration; keeping the old");
                return;
            }
        },
        None => config.clone(),
    };
    let mut trial = status.clone();
    let rules = match load_rules(&candidate, opts, &mut trial) {
        Ok(rules) => rules,
        Err(e) => {
            status.reload_failures += 1;
            status.last_reload_ok = false;
            tracing::error!(error = %e, "reload refused; the old rules keep running");
            return;
        }
    };
    control.rules.replace(rules);
    *status = trial;
    status.last_reload_ok = true;
    config.rules = candidate.rules.clone();

    let cli_respond = opts.respond.is_some();
    config.response = live_response(&config.response, &candidate.response, cli_respond);
    if let (Some(responder), Some(policy)) = (live.responder, live.policy) {
        responder.reconfigure(crate::response::live_settings(&candidate, &opts.outputs));
        policy.replace(crate::response::policy(&candidate));
    }
    config.anomaly = crate::anomaly::AnomalySection {
        enabled: config.anomaly.enabled,
        ..candidate.anomaly.clone()
    };
    if let Some(anomaly) = live.anomaly {
        anomaly.reconfigure(&config.anomaly);
    }

    let pending = restart_only_changes(config, &candidate, cli_respond);
    status.restart_pending = !pending.is_empty();
    if status.restart_pending {
        tracing::warn!(
            sections = %pending.join(", "),
            "reload: these settings changed and apply after a restart"
        );
    }
    tracing::info!(
        loaded = status.loaded,
        "reload done: workers take the new rules; response policy and anomaly thresholds applied"
    );
}

/// `running` with the settings of `new` that the responder and the workers take while they
/// run: policies, allowlist, rate limit, ICMP switch and block length. `enabled` and
/// `dry_run` are the command line's when it gave `--respond`.
fn live_response(
    running: &crate::config::ResponseSection,
    new: &crate::config::ResponseSection,
    cli_respond: bool,
) -> crate::config::ResponseSection {
    crate::config::ResponseSection {
        enabled: if cli_respond {
            new.enabled
        } else {
            running.enabled
        },
        dry_run: if cli_respond {
            new.dry_run
        } else {
            running.dry_run
        },
        icmp_unreachable: new.icmp_unreachable,
        max_actions_per_minute: new.max_actions_per_minute,
        allowlist: new.allowlist.clone(),
        allowlist_own: new.allowlist_own,
        drop_block_for: new.drop_block_for,
        policies: new.policies.clone(),
        ..running.clone()
    }
}

/// Sections of `new` that differ from the running config and only a restart applies.
fn restart_only_changes(running: &Config, new: &Config, cli_respond: bool) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut check = |name: &'static str, differs: bool| {
        if differs {
            changed.push(name);
        }
    };
    check("pipeline", running.pipeline != new.pipeline);
    check("flow", running.flow != new.flow);
    check("defrag", running.defrag != new.defrag);
    check("stream", running.stream != new.stream);
    check("app_layer", running.app_layer != new.app_layer);
    check("eve", running.eve != new.eve);
    check(
        "anomaly_events",
        running.anomaly_events != new.anomaly_events,
    );
    check("capture", running.capture != new.capture);
    check("daemon", running.daemon != new.daemon);
    check("metrics", running.metrics != new.metrics);
    check("output", running.outputs != new.outputs);
    check("spool", running.spool != new.spool);
    check(
        "response",
        live_response(&running.response, &new.response, cli_respond) != new.response,
    );
    check(
        "anomaly.enabled",
        running.anomaly.enabled != new.anomaly.enabled,
    );
    changed
}

/// What `/metrics` shows, from the workers' last published counters.
fn metrics_snapshot(
    statuses: &[Arc<Mutex<WorkerStatus>>],
    rules: &RulesStatus,
    output: &OutputCounters,
    queue_depth: u64,
    started: Instant,
) -> crate::metrics::MetricsSnapshot {
    use crate::metrics::{
        CaptureSnapshot, MetricsSnapshot, OutputSnapshot, RulesSnapshot, WorkerSnapshot,
    };
    let mut snap = MetricsSnapshot {
        uptime_seconds: started.elapsed().as_secs_f64(),
        rules: RulesSnapshot {
            loaded: rules.loaded,
            skipped: rules.skipped,
            last_reload_unix_seconds: rules.last_reload_unix_secs,
            last_reload_success: rules.last_reload_ok,
            reloads_total: rules.reloads,
            reload_failures_total: rules.reload_failures,
            restart_pending: rules.restart_pending,
        },
        outputs: vec![OutputSnapshot {
            sink: "file".into(),
            events: output.events.load(Ordering::Relaxed),
            bytes: output.bytes.load(Ordering::Relaxed),
            errors: output.errors.load(Ordering::Relaxed),
            queue_depth,
            ..OutputSnapshot::default()
        }],
        ..MetricsSnapshot::default()
    };
    if let Ok(upstream) = output.upstream.lock() {
        snap.outputs.extend(upstream.iter().map(|u| OutputSnapshot {
            sink: u.name.clone(),
            events: u.sent,
            bytes: u.bytes,
            errors: u.errors,
            queue_depth: u.queued_batches,
            acked: u.acked,
            spooled: u.spool.spooled,
            dropped: u.spool.dropped,
            rejected: u.rejected,
            reconnects: u.reconnects,
            spool_bytes: u.spool.bytes,
            spool_events: u.spool.events,
            lag_seconds: u.lag_secs,
            connected: u.connected,
        }));
    }
    for (worker, status) in statuses.iter().enumerate() {
        let Ok(s) = status.lock().map(|s| s.clone()) else {
            continue;
        };
        let f = &s.report.flow;
        snap.workers.push(WorkerSnapshot {
            worker,
            packets: s.dispatch.decoder.pkts,
            bytes: s.dispatch.decoder.bytes,
            decode_errors: s.dispatch.decoder.decode_errors,
            flows_active: f.active,
            flows_total: f.total,
            flows_evicted: f.evicted,
            flow_memcap_bytes: s.flow_memcap_bytes,
            flow_memory_bytes: f.memuse_bytes,
            emergency: f.emerg_mode_entered > f.emerg_mode_over,
            stream_memory_bytes: s.report.app_layer.stream_memuse,
            stream_memcap_bytes: s.stream_memcap_bytes,
            alerts_by_severity: s.report.alerts_by_severity,
            seconds_since_last_packet: s.idle_secs,
            ring_drops: s.ring_drops,
            output_waits: s.report.output_waits,
            events_dropped: s.report.events_dropped,
        });
        for src in &s.sources {
            snap.captures.push(CaptureSnapshot {
                interface: src.interface.clone(),
                worker,
                method: src.method.into(),
                packets: src.counters.packets,
                bytes: src.counters.bytes,
                drops: src.counters.drops,
            });
        }
    }
    snap
}

/// The run's counters summed over the workers' last snapshots.
fn gather(statuses: &[Arc<Mutex<WorkerStatus>>], started: Instant) -> RunStats {
    let snapshots: Vec<WorkerStatus> = statuses
        .iter()
        .filter_map(|s| s.lock().ok().map(|s| s.clone()))
        .collect();
    let mut stats = sum(&snapshots);
    stats.uptime_secs = started.elapsed().as_secs();
    stats
}

fn sum(statuses: &[WorkerStatus]) -> RunStats {
    let mut stats = RunStats::default();
    let mut capture = CaptureCounts::default();
    for s in statuses {
        stats.add_worker(&s.report);
        stats.decoder.add(&s.dispatch.decoder);
        stats.defrag.add(&s.dispatch.defrag);
        if stats.first_ts_ns == 0
            || (s.dispatch.first_ts_ns != 0 && s.dispatch.first_ts_ns < stats.first_ts_ns)
        {
            stats.first_ts_ns = s.dispatch.first_ts_ns;
        }
        stats.last_ts_ns = stats.last_ts_ns.max(s.dispatch.last_ts_ns);
        for src in &s.sources {
            capture.kernel_packets += src.counters.packets + src.counters.drops;
            capture.kernel_drops += src.counters.drops;
        }
    }
    if stats.last_ts_ns == 0 {
        stats.last_ts_ns = unix_now_ns();
    }
    stats.capture = Some(capture);
    stats
}

/// What the daemon keeps after switching user: enough to reopen its capture sockets.
fn capabilities_kept(method: CaptureMethod) -> Vec<caps::Capability> {
    use caps::Capability::*;
    match method {
        CaptureMethod::AfXdp => vec![
            CAP_NET_RAW,
            CAP_NET_ADMIN,
            CAP_BPF,
            CAP_SYS_ADMIN,
            CAP_IPC_LOCK,
        ],
        CaptureMethod::AfPacket | CaptureMethod::Pcap => vec![CAP_NET_RAW, CAP_NET_ADMIN],
    }
}

fn notify(states: &[sd_notify::NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_some() {
        if let Err(e) = sd_notify::notify(states) {
            tracing::warn!(error = %e, "cannot notify systemd");
        }
    }
}

fn monotonic_now() -> Option<sd_notify::NotifyState<'static>> {
    sd_notify::NotifyState::monotonic_usec_now().ok()
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn unix_now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Config {
        let path = std::env::temp_dir().join(format!(
            "vigil-reload-{}-{}.toml",
            std::process::id(),
            text.len()
        ));
        std::fs::write(&path, text).unwrap();
        let config = Config::load(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        config
    }

    #[test]
    fn live_settings_are_not_restart_changes_and_the_others_are_named() {
        let running = parse("[response]\nenabled = true\n");
        let live = parse(
            "[response]\nenabled = true\nmax_actions_per_minute = 5\nallowlist = [\"10.0.0.0/8\"]\n\
             [[response.policy]]\nname = \"p\"\nsids = [1]\nblock = \"src\"\n\
             [anomaly.scan]\nports = 7\n[rules]\n",
        );
        assert!(restart_only_changes(&running, &live, false).is_empty());
        let applied = live_response(&running.response, &live.response, false);
        assert_eq!(applied, live.response);

        let restart = parse(
            "[response]\nenabled = true\nnft_table = \"other\"\n[flow]\nmemcap_bytes = 1048576\n\
             [anomaly]\nenabled = false\n",
        );
        assert_eq!(
            restart_only_changes(&running, &restart, false),
            ["flow", "response", "anomaly.enabled"]
        );
        // `--respond` decides enabled and dry_run, whatever the file says.
        let off = parse("[response]\nenabled = false\n");
        assert!(restart_only_changes(&running, &off, true).is_empty());
        assert_eq!(restart_only_changes(&running, &off, false), ["response"]);
    }

    #[test]
    fn command_line_settings_survive_a_reload() {
        let overrides = CliOverrides {
            interfaces: vec!["cap0".into()],
            eve_dir: Some("/tmp/eve".into()),
            metrics_listen: Some("127.0.0.1:0".into()),
            ..CliOverrides::default()
        };
        let mut running = Config::default();
        overrides.apply(&mut running);
        let mut reread = Config::default();
        overrides.apply(&mut reread);
        assert!(restart_only_changes(&running, &reread, false).is_empty());
    }
}
