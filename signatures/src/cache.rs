//! On-disk cache for compiled prefilter databases ([`crate::prefilter::PatternSet::serialize`]).
//!
//! Compiling tens of thousands of fast patterns takes seconds; a restart with an unchanged rule
//! set and configuration loads them from here instead. Entries are named by a 32-byte key from
//! [`hash_key`]. The caller hashes everything the databases depend on (rule text, the
//! configuration that shapes rule groups and fast patterns); [`hash_key`] itself adds this crate's
//! version, the serialized format version and the linked Hyperscan version, so an upgrade of any
//! of them never loads an old entry.
//!
//! Each entry file is a header (magic, format, key, payload length, CRC32 of the payload)
//! followed by the payload. [`DbCache::put`] writes a temporary file in the same directory, syncs
//! it and renames it over the entry, so a crash leaves either the old entry, the new one or none,
//! never a torn one; [`DbCache::get`] treats anything that does not check out (truncated, wrong
//! key, bad checksum, unreadable) as a miss. The CPU the database was compiled for is not in the
//! key: Hyperscan refuses a database built for other CPU features when it is loaded, and the
//! caller then rebuilds and overwrites the entry.
//!
//! The cache directory must be writable only by Vigil: Hyperscan bytecode that passes these
//! checks is executed as is.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

const MAGIC: &[u8; 8] = b"VGLDBC\0\0";
const FORMAT: u32 = 1;
const KEY_LEN: usize = 32;
/// magic, format, key, payload length, payload CRC32.
const HEADER_LEN: usize = MAGIC.len() + 4 + KEY_LEN + 8 + 4;

/// Distinguishes temporary files of concurrent `put`s within one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A cache key: SHA-256 over this crate's version, the prefilter's serialized format version,
/// the linked Hyperscan version and then each of `parts`, every item length-prefixed so that
/// `["ab", "c"]` and `["a", "bc"]` differ.
pub fn hash_key(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    let mut item = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    item(b"vigil-signatures db cache");
    item(env!("CARGO_PKG_VERSION").as_bytes());
    item(&crate::prefilter::SERIALIZED_FORMAT.to_le_bytes());
    item(crate::prefilter::hyperscan_version().as_bytes());
    item(&(parts.len() as u64).to_le_bytes());
    for part in parts {
        item(part);
    }
    hasher.finalize().into()
}

/// A directory of cache entries, one file per key.
#[derive(Debug, Clone)]
pub struct DbCache {
    dir: PathBuf,
}

impl DbCache {
    /// A cache in `dir`; the directory is created on the first [`put`](Self::put).
    pub fn new(dir: PathBuf) -> Self {
        DbCache { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry_path(&self, key: &[u8; KEY_LEN]) -> PathBuf {
        self.dir.join(format!("{}.vdb", hex(key)))
    }

    /// The payload stored under `key`, or `None` if there is none or it does not check out.
    pub fn get(&self, key: &[u8; KEY_LEN]) -> Option<Vec<u8>> {
        let mut bytes = fs::read(self.entry_path(key)).ok()?;
        let header = bytes.get(..HEADER_LEN)?;
        let (magic, rest) = header.split_at(MAGIC.len());
        let (format, rest) = rest.split_at(4);
        let (stored_key, rest) = rest.split_at(KEY_LEN);
        let (len, crc) = rest.split_at(8);
        if magic != MAGIC
            || u32::from_le_bytes(format.try_into().ok()?) != FORMAT
            || stored_key != key
            || u64::from_le_bytes(len.try_into().ok()?) != (bytes.len() - HEADER_LEN) as u64
            || u32::from_le_bytes(crc.try_into().ok()?) != crc32fast::hash(&bytes[HEADER_LEN..])
        {
            return None;
        }
        bytes.drain(..HEADER_LEN);
        Some(bytes)
    }

    /// Stores `bytes` under `key`, replacing any previous entry atomically.
    pub fn put(&self, key: &[u8; KEY_LEN], bytes: &[u8]) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let name = hex(key);
        let temp = self.dir.join(format!(
            ".{name}.{}.{}.tmp",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| {
            let mut file = File::create(&temp)?;
            let mut header = Vec::with_capacity(HEADER_LEN);
            header.extend_from_slice(MAGIC);
            header.extend_from_slice(&FORMAT.to_le_bytes());
            header.extend_from_slice(key);
            header.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            header.extend_from_slice(&crc32fast::hash(bytes).to_le_bytes());
            file.write_all(&header)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            fs::rename(&temp, self.entry_path(key))
        })();
        if let Err(err) = written {
            let _ = fs::remove_file(&temp);
            return Err(err);
        }
        // Make the rename itself durable. Best effort: the entry is already complete and in
        // place, and some filesystems refuse to sync a directory.
        if let Ok(dir) = File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_then_get() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DbCache::new(dir.path().join("nested/cache"));
        let key = hash_key(&[b"rules", b"config"]);
        assert_eq!(cache.get(&key), None);
        cache.put(&key, b"payload\x00bytes").unwrap();
        assert_eq!(cache.get(&key).as_deref(), Some(&b"payload\x00bytes"[..]));
        cache.put(&key, b"").unwrap();
        assert_eq!(cache.get(&key).as_deref(), Some(&b""[..]));
        cache.put(&key, b"replaced").unwrap();
        assert_eq!(cache.get(&key).as_deref(), Some(&b"replaced"[..]));
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(cache.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        // Another key is a miss.
        assert_eq!(cache.get(&hash_key(&[b"rules", b"other"])), None);
    }

    #[test]
    fn corrupt_entries_are_misses() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DbCache::new(dir.path().to_path_buf());
        let key = hash_key(&[b"k"]);
        let payload: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
        cache.put(&key, &payload).unwrap();
        let path = cache.entry_path(&key);
        let good = fs::read(&path).unwrap();

        // Truncated payload.
        fs::write(&path, &good[..good.len() - 1]).unwrap();
        assert_eq!(cache.get(&key), None);
        // Truncated inside the header.
        fs::write(&path, &good[..HEADER_LEN - 3]).unwrap();
        assert_eq!(cache.get(&key), None);
        // Flipped payload byte: checksum mismatch.
        let mut flipped = good.clone();
        flipped[HEADER_LEN + 100] ^= 1;
        fs::write(&path, &flipped).unwrap();
        assert_eq!(cache.get(&key), None);
        // Extra bytes appended.
        let mut longer = good.clone();
        longer.push(0);
        fs::write(&path, &longer).unwrap();
        assert_eq!(cache.get(&key), None);
        // An entry copied under another key's name.
        let other = hash_key(&[b"other"]);
        fs::write(cache.entry_path(&other), &good).unwrap();
        assert_eq!(cache.get(&other), None);
        // Intact again: a hit.
        fs::write(&path, &good).unwrap();
        assert_eq!(cache.get(&key), Some(payload));
    }

    #[test]
    fn keys_separate_parts() {
        assert_ne!(hash_key(&[b"ab", b"c"]), hash_key(&[b"a", b"bc"]));
        assert_ne!(hash_key(&[b"abc"]), hash_key(&[b"abc", b""]));
        assert_eq!(hash_key(&[b"x", b"y"]), hash_key(&[b"x", b"y"]));
    }

    #[test]
    fn caches_a_pattern_set() {
        use crate::prefilter::{PatternSet, PatternSetBuilder};
        let dir = tempfile::tempdir().unwrap();
        let cache = DbCache::new(dir.path().to_path_buf());
        let key = hash_key(&[b"alert tcp any any -> any any (content:\"evil\"; sid:1;)"]);
        let mut b = PatternSetBuilder::new();
        b.add(b"evil", true, 1);
        cache
            .put(&key, &b.build().unwrap().serialize().unwrap())
            .unwrap();
        let set = PatternSet::deserialize(&cache.get(&key).unwrap()).unwrap();
        let mut scratch = set.new_scratch().unwrap();
        let mut hits = Vec::new();
        set.scan(&mut scratch, b"so EVIL", |id| hits.push(id))
            .unwrap();
        assert_eq!(hits, vec![1]);
    }
}
