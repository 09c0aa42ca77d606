//! Event output: EVE JSON rendering and the thread that writes it, off the workers.

pub mod eve;
pub mod sink;
pub mod time;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutputReport {
    pub events: u64,
    pub bytes: u64,
}

/// What the output thread wrote so far, readable from other threads (metrics).
#[derive(Debug, Default)]
pub struct OutputCounters {
    pub events: AtomicU64,
    pub bytes: AtomicU64,
    pub errors: AtomicU64,
}

/// A tailing SIEM agent sees events at most this long after they were written.
const FLUSH_INTERVAL: Duration = Duration::from_millis(500);

/// Writes `eve.json` (one JSON object per line) in a directory.
pub struct EveFileWriter {
    path: PathBuf,
    out: BufWriter<File>,
    line: Vec<u8>,
    format: EveFormat,
    report: OutputReport,
    counters: Option<Arc<OutputCounters>>,
}

impl EveFileWriter {
    pub fn create(dir: &Path, format: EveFormat) -> Result<EveFileWriter, OutputError> {
        std::fs::create_dir_all(dir).map_err(|source| OutputError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join("eve.json");
        let file = File::options()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| OutputError::Write {
                path: path.clone(),
                source,
            })?;
        Ok(EveFileWriter {
            path,
            out: BufWriter::with_capacity(1 << 20, file),
            line: Vec::with_capacity(4096),
            format,
            report: OutputReport::default(),
            counters: None,
        })
    }

    /// Publishes what is written into `counters`, once per event batch.
    pub fn with_counters(mut self, counters: Arc<OutputCounters>) -> EveFileWriter {
        self.counters = Some(counters);
        self
    }

    pub fn write(&mut self, ev: &EveEvent) -> Result<(), OutputError> {
        self.line.clear();
        write_event(ev, &self.format, &mut self.line)?;
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
        self.out.flush().map_err(|source| OutputError::Write {
            path: self.path.clone(),
            source,
        })?;
        Ok(self.report)
    }

    /// Writes every event batch received until all senders are gone. The file is flushed
    /// whenever events stop coming for a moment, so a live sensor's events show up promptly.
    pub fn run(mut self, rx: Receiver<Vec<EveEvent>>) -> Result<OutputReport, OutputError> {
        let mut last_flush = Instant::now();
        loop {
            match rx.recv_timeout(FLUSH_INTERVAL) {
                Ok(batch) => {
                    let before = self.report;
                    for ev in &batch {
                        self.write(ev)?;
                    }
                    if let Some(c) = &self.counters {
                        c.events
                            .fetch_add(self.report.events - before.events, Ordering::Relaxed);
                        c.bytes
                            .fetch_add(self.report.bytes - before.bytes, Ordering::Relaxed);
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
        }
        self.finish()
    }

    fn flush(&mut self) -> Result<(), OutputError> {
        self.out.flush().map_err(|source| OutputError::Write {
            path: self.path.clone(),
            source,
        })
    }
}
