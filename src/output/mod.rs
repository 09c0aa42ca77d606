//! Event output: EVE JSON rendering and the thread that writes it, off the workers.

pub mod eve;
pub mod json;
pub mod nats;
pub mod rotate;
pub mod sink;
pub mod spool;
pub mod syslog;
pub mod time;
pub mod upstream;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use eve::{write_event, EveEvent, EveFormat};

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("cannot create event directory {path}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot serialize an event: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// Counts of what the output wrote.
#[derive(Debug, Clone, Default)]
pub struct OutputReport {
    pub events: u64,
    pub bytes: u64,
    /// Time the output thread spent rendering, writing and handing events to the upstream
    /// sinks (not waiting for events): its capacity is `events / busy`.
    pub busy: Duration,
    /// Time spent at the end letting the upstream sinks deliver what was left.
    pub drain: Duration,
    /// Each upstream sink at the end of the run.
    pub upstream: Vec<upstream::UpstreamStatus>,
}

/// What the output thread wrote so far, readable from other threads (metrics).
#[derive(Debug, Default)]
pub struct OutputCounters {
    pub events: AtomicU64,
    pub bytes: AtomicU64,
    pub errors: AtomicU64,
    /// Set on SIGHUP: close and reopen `eve.json` by path.
    pub reopen: std::sync::atomic::AtomicBool,
    /// The upstream sinks' counters, refreshed at every flush.
    pub upstream: std::sync::Mutex<Vec<upstream::UpstreamStatus>>,
}

/// A tailing SIEM agent sees events at most this long after they were written.
const FLUSH_INTERVAL: Duration = Duration::from_millis(500);

/// Writes `eve.json` (one JSON object per line) in a directory, and hands the same rendered
/// events to the upstream sinks.
pub struct EveFileWriter {
    path: PathBuf,
    out: rotate::RotatingFile,
    line: Vec<u8>,
    format: EveFormat,
    report: OutputReport,
    counters: Option<Arc<OutputCounters>>,
    upstreams: Vec<upstream::Upstream>,
    /// Events of the current batch for the upstreams, rendered once.
    encoded: Vec<sink::EncodedEvent>,
    /// Event ids: this process's boot id and a sequence number.
    boot_id: String,
    next_id: u64,
    /// How long the upstreams may go on delivering at the end before the rest stays spooled.
    drain_timeout: Duration,
    /// The event types written to the file (the upstreams filter their own).
    file_types: sink::TypeSet,
    /// Where written batches go to be freed by the workers that filled them.
    spent: Option<Sender<Vec<EveEvent>>>,
}

impl EveFileWriter {
    pub fn create(dir: &Path, format: EveFormat) -> Result<EveFileWriter, OutputError> {
        EveFileWriter::create_rotating(dir, format, rotate::RotateConfig::default())
    }

    /// `eve.json` in `dir`, rotated (and rotated files compressed and capped) per `rotation`.
    pub fn create_rotating(
        dir: &Path,
        format: EveFormat,
        rotation: rotate::RotateConfig,
    ) -> Result<EveFileWriter, OutputError> {
        std::fs::create_dir_all(dir).map_err(|source| OutputError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join("eve.json");
        let out =
            rotate::RotatingFile::open(&path, rotation).map_err(|source| OutputError::Write {
                path: path.clone(),
                source,
            })?;
        Ok(EveFileWriter {
            path,
            out,
            line: Vec::with_capacity(4096),
            format,
            report: OutputReport::default(),
            counters: None,
            upstreams: Vec::new(),
            encoded: Vec::new(),
            boot_id: boot_id(),
            next_id: 0,
            drain_timeout: Duration::from_secs(10),
            file_types: sink::TypeSet::of(&[]),
            spent: None,
        })
    }

    /// Also delivers every event to these sinks (each filters the types it takes).
    pub fn with_upstreams(
        mut self,
        upstreams: Vec<upstream::Upstream>,
        drain_timeout: Duration,
    ) -> EveFileWriter {
        self.upstreams = upstreams;
        self.drain_timeout = drain_timeout;
        self
    }

    /// Writes only these event types to the file.
    pub fn with_file_types(mut self, types: sink::TypeSet) -> EveFileWriter {
        self.file_types = types;
        self
    }

    /// Sends each written batch to `spent` (see `Worker::set_spent`); one that does not fit is
    /// freed here.
    pub fn with_spent_return(mut self, spent: Sender<Vec<EveEvent>>) -> EveFileWriter {
        self.spent = Some(spent);
        self
    }

    /// Publishes what is written into `counters`, once per event batch.
    pub fn with_counters(mut self, counters: Arc<OutputCounters>) -> EveFileWriter {
        self.counters = Some(counters);
        self
    }

    pub fn write(&mut self, ev: &EveEvent) -> Result<(), OutputError> {
        let to_file = self.file_types.contains(ev.event_type());
        if !to_file && self.upstreams.is_empty() {
            return Ok(());
        }
        self.line.clear();
        write_event(ev, &self.format, &mut self.line)?;
        if !self.upstreams.is_empty() {
            self.encoded.push(sink::EncodedEvent {
                id: format!("{}-{:012}", self.boot_id, self.next_id),
                event_type: ev.event_type(),
                ts_ns: ev.ts_ns(),
                json: self.line[..self.line.len().saturating_sub(1)].to_vec(),
            });
            self.next_id += 1;
        }
        if !to_file {
            return Ok(());
        }
        self.out
            .write_all(&self.line)
            .map_err(|source| OutputError::Write {
                path: self.path.clone(),
                source,
            })?;
        self.report.events += 1;
        self.report.bytes += self.line.len() as u64;
        Ok(())
    }

    pub fn finish(mut self) -> Result<OutputReport, OutputError> {
        self.offer_upstream();
        self.out.flush().map_err(|source| OutputError::Write {
            path: self.path.clone(),
            source,
        })?;
        let path = self.path.clone();
        self.out
            .finish()
            .map_err(|source| OutputError::Write { path, source })?;
        let drain_started = Instant::now();
        for up in self.upstreams.drain(..) {
            let status = up.finish(self.drain_timeout);
            let left = status.spool.events;
            if left > 0 {
                tracing::warn!(
                    sink = %status.name,
                    spooled = left,
                    "not all events delivered before the deadline; they stay spooled for the next run"
                );
            }
            self.report.upstream.push(status);
        }
        self.report.drain = drain_started.elapsed();
        Ok(self.report)
    }

    fn offer_upstream(&mut self) {
        if self.encoded.is_empty() {
            return;
        }
        for up in &self.upstreams {
            up.offer(&self.encoded);
        }
        self.encoded.clear();
    }

    /// Writes every event batch received until all senders are gone. The file is flushed
    /// whenever events stop coming for a moment, so a live sensor's events show up promptly.
    pub fn run(mut self, rx: Receiver<Vec<EveEvent>>) -> Result<OutputReport, OutputError> {
        let mut last_flush = Instant::now();
        loop {
            if let Some(c) = &self.counters {
                if c.reopen.swap(false, Ordering::AcqRel) {
                    // SIGHUP: logrotate may have moved the file away.
                    let path = self.path.clone();
                    self.out
                        .reopen()
                        .map_err(|source| OutputError::Write { path, source })?;
                    tracing::info!(file = %self.path.display(), "eve file reopened");
                }
            }
            match rx.recv_timeout(FLUSH_INTERVAL) {
                Ok(batch) => {
                    let busy_since = Instant::now();
                    let (events, bytes) = (self.report.events, self.report.bytes);
                    for ev in &batch {
                        self.write(ev)?;
                    }
                    self.offer_upstream();
                    self.report.busy += busy_since.elapsed();
                    if let Some(c) = &self.counters {
                        c.events
                            .fetch_add(self.report.events - events, Ordering::Relaxed);
                        c.bytes
                            .fetch_add(self.report.bytes - bytes, Ordering::Relaxed);
                    }
                    if let Some(spent) = &self.spent {
                        let _ = spent.try_send(batch);
                    }
                    if last_flush.elapsed() < FLUSH_INTERVAL {
                        continue;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.flush()?;
            last_flush = Instant::now();
            if let Some(c) = &self.counters {
                if !self.upstreams.is_empty() {
                    let statuses = self.upstream_statuses();
                    if let Ok(mut shared) = c.upstream.lock() {
                        *shared = statuses;
                    }
                }
            }
        }
        self.finish()
    }

    /// The upstream sinks' current counters (metrics).
    pub fn upstream_statuses(&self) -> Vec<upstream::UpstreamStatus> {
        self.upstreams
            .iter()
            .map(upstream::Upstream::status)
            .collect()
    }

    fn flush(&mut self) -> Result<(), OutputError> {
        self.out.flush().map_err(|source| OutputError::Write {
            path: self.path.clone(),
            source,
        })
    }
}

/// A random id for this process, so event ids stay unique across restarts of the sensor.
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .map(|u| u.trim().replace('-', ""))
        .unwrap_or_else(|_| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            format!("{now:x}{:x}", std::process::id())
        })
}

/// Takes Vigil's own `types=alert,flow,…` parameter out of an output URL (or `file:DIR`):
/// the URL the sink sees, and the types (all when not given).
pub fn split_types(url: &str) -> Result<(String, sink::TypeSet), String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), sink::TypeSet::of(&[])));
    };
    let mut types = None;
    let mut rest = Vec::new();
    for param in query.split('&') {
        match param.strip_prefix("types=") {
            Some(list) => {
                if types.is_some() {
                    return Err(format!("{url}: types= given twice"));
                }
                let names: Vec<&str> = list.split(',').filter(|n| !n.is_empty()).collect();
                if names.is_empty() {
                    return Err(format!("{url}: types= lists no event type"));
                }
                types = Some(sink::TypeSet::from_names(&names).map_err(|e| format!("{url}: {e}"))?);
            }
            None => rest.push(param),
        }
    }
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((url, types.unwrap_or_else(|| sink::TypeSet::of(&[]))))
}

/// Checks an upstream sink URL without opening anything (config validation).
pub fn check_url(url: &str) -> Result<(), String> {
    let (url, _) = split_types(url)?;
    match url.split_once("://").map(|(scheme, _)| scheme) {
        Some("syslog+tls") | Some("nats") => Ok(()),
        _ => Err(format!(
            "unsupported output {url:?}: use syslog+tls://HOST:PORT?ca=FILE or nats://HOST:PORT/PREFIX"
        )),
    }
}

/// Opens the sink a URL names (not yet connected: its sender thread connects).
pub fn open_sink(url: &str) -> Result<Box<dyn sink::Sink>, String> {
    match url.split_once("://").map(|(scheme, _)| scheme) {
        Some("syslog+tls") => {
            let cfg = syslog::SyslogTlsConfig::from_url(url)?;
            Ok(Box::new(syslog::SyslogTlsSink::new(cfg)?))
        }
        Some("nats") => {
            let cfg = nats::NatsConfig::from_url(url)?;
            Ok(Box::new(nats::NatsSink::new(cfg)?))
        }
        _ => check_url(url).map(|()| unreachable!("check_url accepts only known schemes")),
    }
}

/// Starts a sender (with its spool) for each configured sink and each `extra` URL.
pub fn start_upstreams(
    config: &crate::config::Config,
    extra: &[String],
) -> Result<Vec<upstream::Upstream>, String> {
    let mut wanted: Vec<(String, sink::TypeSet)> = Vec::new();
    for o in &config.outputs {
        let (url, from_url) = split_types(&o.url)?;
        let types = if o.types.is_empty() {
            from_url
        } else {
            sink::TypeSet::from_names(&o.types)?
        };
        wanted.push((url, types));
    }
    for u in extra {
        wanted.push(split_types(u)?);
    }
    let policy = match config.spool.policy {
        crate::config::SpoolPolicy::DropOldest => spool::FullPolicy::DropOldest,
        crate::config::SpoolPolicy::DropNewest => spool::FullPolicy::DropNewest,
    };
    let mut started = Vec::with_capacity(wanted.len());
    for (url, types) in wanted {
        let sink = open_sink(&url)?;
        let dir = config.spool.dir.join(spool_dir_name(&url));
        let spool =
            spool::Spool::open(&dir, config.spool.max_bytes, policy).map_err(|e| e.to_string())?;
        if !spool.is_empty() {
            tracing::info!(
                sink = sink.name(),
                events = spool.stats().events,
                "delivering events spooled by an earlier run first"
            );
        }
        let up = upstream::Upstream::start(sink, spool, types, config.spool.queue_bytes)
            .map_err(|e| format!("{url}: cannot start its sender: {e}"))?;
        started.push(up);
    }
    Ok(started)
}

/// A directory name for a sink's spool: scheme, host, port and path, without the query (which
/// may name credential files).
fn spool_dir_name(url: &str) -> String {
    let base = url.split('?').next().unwrap_or(url);
    base.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
