//! Event output: EVE JSON rendering and the thread that writes it, off the workers.

pub mod eve;
pub mod time;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crossbeam_channel::Receiver;

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

/// Writes `eve.json` (one JSON object per line) in a directory.
pub struct EveFileWriter {
    path: PathBuf,
    out: BufWriter<File>,
    line: Vec<u8>,
    format: EveFormat,
    report: OutputReport,
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
        })
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

    /// Writes every event batch received until all senders are gone.
    pub fn run(mut self, rx: Receiver<Vec<EveEvent>>) -> Result<OutputReport, OutputError> {
        for batch in rx {
            for ev in &batch {
                self.write(ev)?;
            }
        }
        self.finish()
    }
}
