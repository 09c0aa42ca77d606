//! `vigil replay`: pcap/pcapng files through the full pipeline, as the live daemon would see
//! them, with packet timestamps as the only clock.

use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;
use vigil_parsers::LinkType;

use crate::capture::{CaptureError, PcapFileReader};
use crate::config::Config;
use crate::detect::WorkerDetect;
use crate::output::eve::{EveEvent, EveFormat};
use crate::output::{EveFileWriter, OutputError, OutputReport};
use crate::pipeline::{
    Batch, ChannelSink, Dispatcher, FrameBytes, RingSpace, Worker, WorkerConfig,
    EVENT_MESSAGES_QUEUED,
};
use crate::stats::RunStats;

pub struct ReplayOptions {
    pub files: Vec<PathBuf>,
    pub config: Config,
    pub workers: usize,
    pub eve_dir: PathBuf,
    /// Loaded signatures; `None` runs without detection.
    pub rules: Option<std::sync::Arc<vigil_signatures::RuleSet>>,
    /// Upstream sink URLs besides the config's `[[output]]` (`--output`).
    pub outputs: Vec<String>,
    /// Run the `[response]` policy in dry-run: `response` events say what a live sensor would
    /// do. Replay never acts.
    pub respond_dry_run: bool,
    /// Called now and then with (bytes read, total bytes) for a progress display.
    pub progress: Option<Box<dyn FnMut(u64, u64) + Send>>,
}

pub struct ReplayReport {
    pub stats: RunStats,
    /// From start until the workers were done (the outputs may go on delivering after).
    pub elapsed: Duration,
    pub workers: usize,
    pub output: OutputReport,
    /// Inputs that could not be read to their end; what came before the damage was processed.
    pub input_errors: Vec<CaptureError>,
    pub eve_path: PathBuf,
    /// The anomaly models' counters, when they ran.
    pub anomaly: Option<std::sync::Arc<crate::anomaly::AnomalyCounters>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error("a worker thread failed: {0}")]
    Worker(String),
    #[error("output: {0}")]
    Upstream(String),
    #[error(transparent)]
    Response(#[from] crate::response::engine::ResponseError),
    #[error("active response: {0}")]
    ResponseSettings(String),
}

pub fn replay(mut opts: ReplayOptions) -> Result<ReplayReport, ReplayError> {
    let started = Instant::now();
    let workers = opts.workers.max(1);
    let cfg = &opts.config;
    let format = EveFormat {
        community_id_seed: cfg.flow.community_id_seed,
        files: opts.files.iter().map(|p| p.display().to_string()).collect(),
    };
    let upstreams =
        crate::output::start_upstreams(cfg, &opts.outputs).map_err(ReplayError::Upstream)?;
    let drain = Duration::from_secs(u64::from(cfg.spool.drain_timeout_secs));
    let writer = EveFileWriter::create_rotating(&opts.eve_dir, format, cfg.rotation())?
        .with_file_types(cfg.eve_types())
        .with_upstreams(upstreams, drain);
    let eve_path = opts.eve_dir.join("eve.json");

    let (events_tx, events_rx) = bounded::<Vec<EveEvent>>(workers * EVENT_MESSAGES_QUEUED);
    // Written batches go back to the workers to be freed; a few per worker is all they take
    // between two sends.
    let (spent_tx, spent_rx) = bounded::<Vec<EveEvent>>(workers * 4);
    let writer = writer.with_spent_return(spent_tx);
    let output = thread::Builder::new()
        .name("vigil-output".into())
        .spawn(move || writer.run(events_rx))
        .map_err(|e| ReplayError::Worker(e.to_string()))?;

    let (responder, policy) = if opts.respond_dry_run {
        let (mut settings, policy) =
            crate::response::settings(cfg, crate::response::Mode::DryRun, None, &[], &opts.outputs)
                .map_err(ReplayError::ResponseSettings)?;
        // Packet time runs faster than the wall clock the rate limit counts in, and nothing
        // here outlives the run.
        settings.max_actions_per_minute = u32::MAX;
        settings.state_file = None;
        settings.firewall = None;
        settings.webhook = None;
        let responder = crate::response::Responder::start(settings, events_tx.clone())?;
        (Some(responder), Some(policy))
    } else {
        (None, None)
    };

    let anomaly = if cfg.anomaly.enabled {
        let sink = crate::anomaly::EveAlerts {
            events: events_tx.clone(),
            response: policy
                .as_ref()
                .map(|p| p.reader())
                .zip(responder.as_ref().map(|r| r.requests())),
        };
        Some(
            crate::anomaly::AnomalyEngine::start(&cfg.anomaly, Box::new(sink))
                .map_err(|e| ReplayError::Worker(format!("anomaly thread: {e}")))?,
        )
    } else {
        None
    };

    let ring = cfg.pipeline.ring_batches;
    let (recycle_tx, recycle_rx) = bounded::<Batch>(workers * (ring + 2));
    let worker_cfg = WorkerConfig {
        flow: cfg.flow_table(workers),
        anomaly_events_per_second: cfg.anomaly_events.max_per_second,
        app_layer: cfg.app_layer(),
        stream_memcap_bytes: cfg.stream.memcap_bytes / workers,
        shed_events_when_output_full: false,
        alert_capture: cfg.alert_capture(),
    };
    let mut rings = Vec::with_capacity(workers);
    let mut handles = Vec::with_capacity(workers);
    for k in 0..workers {
        let (tx, rx) = bounded::<Batch>(ring);
        let space = RingSpace::new(ring);
        rings.push((tx, Arc::clone(&space)));
        let detect = match &opts.rules {
            Some(rules) => Some(
                WorkerDetect::new(std::sync::Arc::clone(rules))
                    .map_err(|e| ReplayError::Worker(format!("detection scratch: {e}")))?,
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
        let recycle = recycle_tx.clone();
        let handle = thread::Builder::new()
            .name(format!("vigil-worker-{k}"))
            .spawn(move || worker.run(rx, space, recycle))
            .map_err(|e| ReplayError::Worker(e.to_string()))?;
        handles.push(handle);
    }
    drop(recycle_tx);

    let mut dispatcher = Dispatcher::new(
        ChannelSink::new(rings, recycle_rx, cfg.pipeline.batch_packets),
        cfg.pipeline.batch_packets,
        cfg.defrag(),
    );
    let total_bytes: u64 = opts
        .files
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let mut input_errors = Vec::new();
    let mut done_bytes = 0u64;
    let mut dispatch_failed = None;
    'files: for (index, path) in opts.files.iter().enumerate() {
        let mut reader = match PcapFileReader::open(path) {
            Ok(r) => r,
            Err(e) => {
                input_errors.push(e);
                continue;
            }
        };
        loop {
            match reader.next_packet() {
                Ok(Some(raw)) => {
                    let link = LinkType::from_pcap(raw.link_type);
                    let source = FrameBytes::Shared(raw.chunk, raw.chunk_offset);
                    if let Err(e) =
                        dispatcher.dispatch(raw.ts_ns, raw.data, source, link, index as u32)
                    {
                        dispatch_failed = Some(e.to_string());
                        break 'files;
                    }
                    if dispatcher.packets() % 16_384 == 0 {
                        if let Some(progress) = opts.progress.as_mut() {
                            progress(done_bytes + reader.bytes_consumed(), total_bytes);
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    input_errors.push(e);
                    break;
                }
            }
        }
        done_bytes += reader.bytes_consumed();
    }
    if let Some(progress) = opts.progress.as_mut() {
        progress(total_bytes, total_bytes);
    }

    // Dropping the sink closes the rings, so the workers end their flows and return.
    let finished = dispatcher.finish().map(|(summary, _sink)| summary);
    let mut stats = RunStats::default();
    let mut worker_failure = dispatch_failed;
    for handle in handles {
        match handle.join() {
            Ok(report) => stats.add_worker(&report),
            Err(_) => worker_failure = Some("a worker panicked".into()),
        }
    }
    match finished {
        Ok(summary) => {
            stats.decoder = summary.decoder;
            stats.defrag = summary.defrag;
            stats.first_ts_ns = summary.first_ts_ns;
            stats.last_ts_ns = summary.last_ts_ns;
        }
        Err(e) => worker_failure = Some(e.to_string()),
    }
    // The models' last alerts may still ask the responder for an action.
    let anomaly_counters = anomaly.map(|a| {
        let counters = std::sync::Arc::clone(&a.counters);
        a.stop();
        counters
    });
    if let Some(responder) = responder {
        responder.stop();
    }
    // `detect.alert` counts every alert written, the models' too.
    stats.add_models(anomaly_counters.as_deref());
    let processing = started.elapsed();
    stats.uptime_secs = processing.as_secs();
    let _ = events_tx.send(vec![EveEvent::Stats(Box::new(stats.clone()))]);
    drop(events_tx);
    let output = output
        .join()
        .map_err(|_| ReplayError::Worker("the output thread panicked".into()))??;
    if let Some(failure) = worker_failure {
        return Err(ReplayError::Worker(failure));
    }
    Ok(ReplayReport {
        stats,
        elapsed: processing,
        workers,
        output,
        input_errors,
        eve_path,
        anomaly: anomaly_counters,
    })
}
