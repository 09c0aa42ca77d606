//! `eve.json` on disk: buffered appends, rotation by size and by time, rotated files compressed
//! with zstd, a cap on the disk the rotated files use, and reopening by path (SIGHUP after
//! logrotate moved the file away).

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Rotation settings; zero turns a limit off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RotateConfig {
    /// Rotate once the file reaches this size.
    pub max_file_bytes: u64,
    /// Rotate this often.
    pub interval: Duration,
    /// Compress rotated files with zstd (`eve.json.<time>.zst`).
    pub compress: bool,
    /// Delete the oldest rotated files while together they use more than this.
    pub max_disk_bytes: u64,
}

pub struct RotatingFile {
    path: PathBuf,
    out: BufWriter<File>,
    cfg: RotateConfig,
    size: u64,
    opened: Instant,
    /// Compressions running in the background (joined before the next and at the end).
    compressing: Vec<std::thread::JoinHandle<()>>,
}

impl RotatingFile {
    pub fn open(path: &Path, cfg: RotateConfig) -> io::Result<RotatingFile> {
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(1 << 20, file),
            cfg,
            size,
            opened: Instant::now(),
            compressing: Vec::new(),
        })
    }

    pub fn write_all(&mut self, line: &[u8]) -> io::Result<()> {
        self.out.write_all(line)?;
        self.size += line.len() as u64;
        if self.cfg.max_file_bytes > 0 && self.size >= self.cfg.max_file_bytes {
            self.rotate()?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()?;
        if !self.cfg.interval.is_zero()
            && self.opened.elapsed() >= self.cfg.interval
            && self.size > 0
        {
            self.rotate()?;
        }
        Ok(())
    }

    /// Closes the file and opens the path again (it may have been moved away).
    pub fn reopen(&mut self) -> io::Result<()> {
        self.out.flush()?;
        let file = open_append(&self.path)?;
        self.size = file.metadata()?.len();
        self.out = BufWriter::with_capacity(1 << 20, file);
        self.opened = Instant::now();
        Ok(())
    }

    /// Moves the current file aside (named after the time), starts a new one, and compresses
    /// the old one in the background.
    pub fn rotate(&mut self) -> io::Result<()> {
        self.out.flush()?;
        let rotated = self.rotated_name();
        fs::rename(&self.path, &rotated)?;
        self.reopen()?;
        self.size = 0;
        self.compressing.retain(|h| !h.is_finished());
        let cfg = self.cfg;
        let dir = self
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let stem = file_name(&self.path);
        let job = std::thread::Builder::new()
            .name("vigil-rotate".into())
            .spawn(move || {
                if cfg.compress {
                    if let Err(e) = compress(&rotated) {
                        tracing::error!(file = %rotated.display(), error = %e, "cannot compress a rotated eve file");
                    }
                }
                if cfg.max_disk_bytes > 0 {
                    enforce_cap(&dir, &stem, cfg.max_disk_bytes);
                }
            })?;
        self.compressing.push(job);
        Ok(())
    }

    /// Flushes and waits for background compression.
    pub fn finish(&mut self) -> io::Result<()> {
        self.out.flush()?;
        for job in self.compressing.drain(..) {
            let _ = job.join();
        }
        Ok(())
    }

    fn rotated_name(&self) -> PathBuf {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let stamp = super::time::rfc3339_compact(now.as_secs());
        // A counter for several rotations in one second; fixed width, so names sort by age.
        let name = |n: u32| {
            self.path
                .with_file_name(format!("{}.{stamp}-{n:04}", file_name(&self.path)))
        };
        let mut n = 0;
        while name(n).exists() || with_zst(&name(n)).exists() {
            n += 1;
        }
        name(n)
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    File::options().create(true).append(true).open(path)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "eve.json".into())
}

fn with_zst(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".zst");
    PathBuf::from(name)
}

/// `FILE` → `FILE.zst`, written to a temporary name first so a crash leaves no half file under
/// the final name; the plain file goes once the compressed one is complete.
fn compress(path: &Path) -> io::Result<()> {
    let target = with_zst(path);
    let tmp = target.with_extension("zst.tmp");
    {
        let mut input = File::open(path)?;
        let output = File::create(&tmp)?;
        let mut encoder = zstd::stream::Encoder::new(output, 3)?;
        io::copy(&mut input, &mut encoder)?;
        encoder.finish()?.sync_all()?;
    }
    fs::rename(&tmp, &target)?;
    fs::remove_file(path)
}

/// Deletes the oldest rotated files (`STEM.*`, not the live one) while they use more than `cap`.
fn enforce_cap(dir: &Path, stem: &str, cap: u64) {
    let prefix = format!("{stem}.");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut rotated: Vec<(String, u64)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let len = e.metadata().ok()?.len();
            (name.starts_with(&prefix) && !name.ends_with(".tmp")).then_some((name, len))
        })
        .collect();
    // Names carry the rotation time, so name order is age order.
    rotated.sort();
    let mut total: u64 = rotated.iter().map(|(_, len)| len).sum();
    for (name, len) in rotated {
        if total <= cap {
            break;
        }
        if fs::remove_file(dir.join(&name)).is_ok() {
            tracing::info!(file = %name, "deleted to keep rotated eve files under the disk cap");
            total -= len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| format!("{{\"event_type\":\"flow\",\"n\":{i}}}\n").into_bytes())
            .collect()
    }

    fn read_all(dir: &Path) -> Vec<u8> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("eve.json."))
            .collect();
        names.sort();
        let mut out = Vec::new();
        for name in names {
            let bytes = fs::read(dir.join(&name)).unwrap();
            if name.ends_with(".zst") {
                out.extend(zstd::stream::decode_all(&bytes[..]).unwrap());
            } else {
                out.extend(bytes);
            }
        }
        out.extend(fs::read(dir.join("eve.json")).unwrap());
        out
    }

    #[test]
    fn rotates_by_size_compresses_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eve.json");
        let cfg = RotateConfig {
            max_file_bytes: 20_000,
            compress: true,
            ..RotateConfig::default()
        };
        let mut file = RotatingFile::open(&path, cfg).unwrap();
        let all = lines(5000);
        for l in &all {
            file.write_all(l).unwrap();
        }
        file.finish().unwrap();
        let zst = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".zst"))
            .count();
        assert!(zst >= 4, "{zst} compressed files");
        assert!(read_all(dir.path()) == all.concat(), "every line, in order");
    }

    #[test]
    fn disk_cap_deletes_the_oldest_rotated_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eve.json");
        let cfg = RotateConfig {
            max_file_bytes: 10_000,
            compress: false,
            max_disk_bytes: 30_000,
            ..RotateConfig::default()
        };
        let mut file = RotatingFile::open(&path, cfg).unwrap();
        for l in lines(10_000) {
            file.write_all(&l).unwrap();
        }
        file.finish().unwrap();
        let rotated: u64 = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("eve.json."))
            .map(|e| e.metadata().unwrap().len())
            .sum();
        assert!(rotated <= 30_000, "{rotated} bytes of rotated files");
        // The newest lines are the ones kept.
        let kept = String::from_utf8(read_all(dir.path())).unwrap();
        assert!(kept.ends_with("\"n\":9999}\n"));
        assert!(!kept.starts_with("{\"event_type\":\"flow\",\"n\":0}"));
    }

    #[test]
    fn reopen_follows_a_moved_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eve.json");
        let mut file = RotatingFile::open(&path, RotateConfig::default()).unwrap();
        file.write_all(b"one\n").unwrap();
        file.flush().unwrap();
        fs::rename(&path, dir.path().join("eve.json.1")).unwrap();
        file.write_all(b"two\n").unwrap();
        file.reopen().unwrap();
        file.write_all(b"three\n").unwrap();
        file.finish().unwrap();
        assert_eq!(
            fs::read(dir.path().join("eve.json.1")).unwrap(),
            b"one\ntwo\n"
        );
        assert_eq!(fs::read(&path).unwrap(), b"three\n");
    }
}
