//! A sink's disk spool: events its receiver has not taken yet, in order, bounded, crash-safe.
//!
//! A spool is a directory of segment files named by a 20-digit sequence number; events are
//! delivered in sequence order. A segment is a series of frames:
//!
//! ```text
//! magic "VGSP" (4) | compressed length u32 LE | CRC-32 of the compressed bytes u32 LE
//! | event count u32 LE | zstd(events)
//! ```
//!
//! and an event inside a frame is `id len u16 | id | type u8 | ts_ns u64 | json len u32 | json`
//! (little endian). A frame is written whole and flushed before the next; a process killed
//! mid-write leaves a torn last frame, which reading detects (short, bad magic or CRC) and
//! skips, counting it, without losing any frame before it. How far each segment was delivered
//! is remembered in a small `cursor` file (segment and byte offset per line), so a restart
//! re-sends at most the frame that was in flight: delivery is at least once.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::sink::{EncodedEvent, EventType};

const MAGIC: &[u8; 4] = b"VGSP";
const FRAME_HEADER: usize = 16;
/// A new segment is started past this size, so delivered data is freed in steps.
const SEGMENT_BYTES: u64 = 8 << 20;
/// zstd level: EVE JSON compresses well already at the fastest levels.
const ZSTD_LEVEL: i32 = 1;
/// Sequence numbers of appended segments start here, leaving room below for segments put in
/// front (events a sink held in memory when its receiver went away).
const FIRST_SEQ: u64 = 1 << 40;

/// What to do when the spool is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullPolicy {
    /// Delete the oldest segment (its events are lost, counted) to make room.
    DropOldest,
    /// Refuse the new events (lost, counted).
    DropNewest,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolStats {
    /// Events appended since open.
    pub spooled: u64,
    /// Events read back for delivery and acknowledged (`advance`).
    pub delivered: u64,
    /// Events dropped by the full policy.
    pub dropped: u64,
    /// Torn or corrupt frames skipped (crash during a write, damaged disk).
    pub torn_frames: u64,
    /// Bytes on disk now.
    pub bytes: u64,
    /// Events on disk now (not yet delivered).
    pub events: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

#[derive(Debug, Clone, Copy, Default)]
struct Segment {
    bytes: u64,
    /// Events not yet delivered.
    events: u64,
    /// Offset of the first frame not yet delivered.
    start: u64,
}

/// Events read from the spool, to be acknowledged with [`Spool::advance`] once delivered.
#[derive(Debug)]
pub struct Chunk {
    pub events: Vec<EncodedEvent>,
    /// The segment and the offset reading continues at once these are delivered.
    seq: u64,
    next_offset: u64,
}

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    policy: FullPolicy,
    segments: BTreeMap<u64, Segment>,
    /// Open segment being appended to.
    writer: Option<(u64, File)>,
    stats: SpoolStats,
    scratch: Vec<u8>,
}

impl Spool {
    /// Opens (creating if needed) the spool in `dir`, keeping what an earlier process left.
    pub fn open(dir: &Path, max_bytes: u64, policy: FullPolicy) -> Result<Spool, SpoolError> {
        let io = |source| SpoolError::Io {
            path: dir.to_path_buf(),
            source,
        };
        fs::create_dir_all(dir).map_err(io)?;
        let mut segments = BTreeMap::new();
        for entry in fs::read_dir(dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name();
            let Some(seq) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".seg"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            let bytes = entry.metadata().map_err(io)?.len();
            segments.insert(
                seq,
                Segment {
                    bytes,
                    ..Segment::default()
                },
            );
        }
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            policy,
            segments,
            writer: None,
            stats: SpoolStats::default(),
            scratch: Vec::new(),
        };
        for (seq, start) in spool.read_cursor() {
            if let Some(s) = spool.segments.get_mut(&seq) {
                s.start = start;
            }
        }
        // Count what is left to deliver once, at open.
        let seqs: Vec<u64> = spool.segments.keys().copied().collect();
        for seq in seqs {
            let from = spool.segments.get(&seq).map_or(0, |s| s.start);
            let events = spool.count_events(seq, from)?;
            if let Some(s) = spool.segments.get_mut(&seq) {
                s.events = events;
            }
        }
        spool.refresh_totals();
        Ok(spool)
    }

    pub fn stats(&self) -> SpoolStats {
        self.stats
    }

    pub fn is_empty(&self) -> bool {
        self.stats.events == 0
    }

    /// Appends events after everything already spooled. Applies the full policy.
    pub fn append(&mut self, events: &[EncodedEvent]) -> Result<(), SpoolError> {
        if events.is_empty() {
            return Ok(());
        }
        let frame = self.encode(events);
        if !self.make_room(frame.len() as u64) {
            self.stats.dropped += events.len() as u64;
            return Ok(());
        }
        let seq = match &self.writer {
            Some((seq, _))
                if self
                    .segments
                    .get(seq)
                    .is_some_and(|s| s.bytes < SEGMENT_BYTES) =>
            {
                *seq
            }
            _ => {
                let next = self
                    .segments
                    .keys()
                    .next_back()
                    .map_or(FIRST_SEQ, |last| (last + 1).max(FIRST_SEQ));
                let file = self.create_segment(next)?;
                self.writer = Some((next, file));
                next
            }
        };
        self.write_frame(seq, &frame, events.len() as u64)?;
        self.stats.spooled += events.len() as u64;
        Ok(())
    }

    /// Puts events in front of everything spooled (a sink's in-memory backlog when its
    /// receiver went away: those are older than what the spool holds).
    pub fn prepend(&mut self, events: &[EncodedEvent]) -> Result<(), SpoolError> {
        if events.is_empty() {
            return Ok(());
        }
        let frame = self.encode(events);
        let first = self.segments.keys().next().copied().unwrap_or(FIRST_SEQ);
        let seq = first.saturating_sub(1);
        let mut file = self.create_segment(seq)?;
        file.write_all(&frame).map_err(|source| SpoolError::Io {
            path: self.segment_path(seq),
            source,
        })?;
        file.sync_data().map_err(|source| SpoolError::Io {
            path: self.segment_path(seq),
            source,
        })?;
        self.segments.insert(
            seq,
            Segment {
                bytes: frame.len() as u64,
                events: events.len() as u64,
                start: 0,
            },
        );
        self.stats.spooled += events.len() as u64;
        self.refresh_totals();
        Ok(())
    }

    /// Reads the next frame (up to its event count) without consuming it; `None` when empty.
    pub fn peek(&mut self) -> Result<Option<Chunk>, SpoolError> {
        loop {
            let Some((&seq, seg)) = self.segments.iter().next() else {
                return Ok(None);
            };
            let start = seg.start;
            match self.read_frame(seq, start)? {
                FrameRead::Frame {
                    events,
                    next_offset,
                } => {
                    return Ok(Some(Chunk {
                        events,
                        seq,
                        next_offset,
                    }))
                }
                FrameRead::End => {
                    if self.is_writing(seq) {
                        return Ok(None);
                    }
                    self.remove_segment(seq)?;
                }
                FrameRead::Torn => {
                    self.stats.torn_frames += 1;
                    tracing::warn!(
                        segment = %self.segment_path(seq).display(),
                        offset = start,
                        "torn spool frame skipped"
                    );
                    if self.is_writing(seq) {
                        // New frames would land after the damage: start a fresh segment.
                        self.writer = None;
                    }
                    self.remove_segment(seq)?;
                }
            }
        }
    }

    /// The frame after `chunk` in the same segment, without consuming anything: lets a sender
    /// take several frames at once. `None` at the segment's end (or damage, which `peek` deals
    /// with when it gets there).
    pub fn peek_next(&mut self, chunk: &Chunk) -> Result<Option<Chunk>, SpoolError> {
        match self.read_frame(chunk.seq, chunk.next_offset)? {
            FrameRead::Frame {
                events,
                next_offset,
            } => Ok(Some(Chunk {
                events,
                seq: chunk.seq,
                next_offset,
            })),
            FrameRead::End | FrameRead::Torn => Ok(None),
        }
    }

    /// Marks a chunk from [`Spool::peek`] delivered.
    pub fn advance(&mut self, chunk: &Chunk) -> Result<(), SpoolError> {
        let n = chunk.events.len() as u64;
        self.stats.delivered += n;
        let Some(seg) = self.segments.get_mut(&chunk.seq) else {
            return Ok(());
        };
        seg.events = seg.events.saturating_sub(n);
        seg.start = chunk.next_offset;
        let done = seg.start >= seg.bytes;
        if done {
            // Delivered to its end: the next append starts a new segment.
            if self.is_writing(chunk.seq) {
                self.writer = None;
            }
            self.remove_segment(chunk.seq)?;
        } else {
            self.write_cursor()?;
        }
        self.refresh_totals();
        Ok(())
    }

    fn is_writing(&self, seq: u64) -> bool {
        self.writer.as_ref().is_some_and(|(w, _)| *w == seq)
    }

    fn encode(&mut self, events: &[EncodedEvent]) -> Vec<u8> {
        self.scratch.clear();
        for ev in events {
            let id = ev.id.as_bytes();
            let id = &id[..id.len().min(u16::MAX as usize)];
            self.scratch
                .extend_from_slice(&(id.len() as u16).to_le_bytes());
            self.scratch.extend_from_slice(id);
            self.scratch.push(
                EventType::ALL
                    .iter()
                    .position(|t| *t == ev.event_type)
                    .unwrap_or(0) as u8,
            );
            self.scratch.extend_from_slice(&ev.ts_ns.to_le_bytes());
            self.scratch
                .extend_from_slice(&(ev.json.len() as u32).to_le_bytes());
            self.scratch.extend_from_slice(&ev.json);
        }
        let compressed = zstd::bulk::compress(&self.scratch, ZSTD_LEVEL).unwrap_or_default();
        let mut frame = Vec::with_capacity(FRAME_HEADER + compressed.len());
        frame.extend_from_slice(MAGIC);
        frame.extend_from_slice(&(compressed.len() as u32).to_le_bytes());
        frame.extend_from_slice(&crc32fast::hash(&compressed).to_le_bytes());
        frame.extend_from_slice(&(events.len() as u32).to_le_bytes());
        frame.extend_from_slice(&compressed);
        frame
    }

    /// Frees room for `bytes` per the policy; false when the new events must be dropped.
    fn make_room(&mut self, bytes: u64) -> bool {
        while self.stats.bytes + bytes > self.max_bytes {
            match self.policy {
                FullPolicy::DropNewest => return false,
                FullPolicy::DropOldest => {
                    let Some((&oldest, seg)) = self.segments.iter().next() else {
                        return bytes <= self.max_bytes;
                    };
                    let lost = seg.events;
                    if self.is_writing(oldest) {
                        self.writer = None;
                    }
                    if self.remove_segment(oldest).is_err() {
                        return false;
                    }
                    self.stats.dropped += lost;
                }
            }
        }
        true
    }

    fn segment_path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.seg"))
    }

    fn create_segment(&mut self, seq: u64) -> Result<File, SpoolError> {
        let path = self.segment_path(seq);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| SpoolError::Io { path, source })?;
        self.segments.entry(seq).or_default();
        Ok(file)
    }

    fn write_frame(&mut self, seq: u64, frame: &[u8], events: u64) -> Result<(), SpoolError> {
        let path = self.segment_path(seq);
        let Some((_, file)) = self.writer.as_mut() else {
            return Ok(());
        };
        // One write per frame: a crash leaves at most this frame torn.
        file.write_all(frame)
            .and_then(|()| file.flush())
            .map_err(|source| SpoolError::Io { path, source })?;
        if let Some(s) = self.segments.get_mut(&seq) {
            s.bytes += frame.len() as u64;
            s.events += events;
        }
        self.refresh_totals();
        Ok(())
    }

    fn remove_segment(&mut self, seq: u64) -> Result<(), SpoolError> {
        let path = self.segment_path(seq);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(SpoolError::Io { path, source }),
        }
        self.segments.remove(&seq);
        self.write_cursor()?;
        self.refresh_totals();
        Ok(())
    }

    fn refresh_totals(&mut self) {
        self.stats.bytes = self.segments.values().map(|s| s.bytes).sum();
        self.stats.events = self.segments.values().map(|s| s.events).sum();
    }

    fn cursor_path(&self) -> PathBuf {
        self.dir.join("cursor")
    }

    /// (segment, delivered offset) pairs; a line that does not parse is ignored (its segment
    /// is then re-sent from the start: at least once).
    fn read_cursor(&self) -> Vec<(u64, u64)> {
        fs::read_to_string(self.cursor_path())
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let mut parts = line.split_whitespace().map(str::parse::<u64>);
                match (parts.next(), parts.next()) {
                    (Some(Ok(seq)), Some(Ok(offset))) => Some((seq, offset)),
                    _ => None,
                }
            })
            .collect()
    }

    /// Written to a temporary file and renamed, so a crash leaves the old or the new cursor.
    fn write_cursor(&self) -> Result<(), SpoolError> {
        let path = self.cursor_path();
        let tmp = self.dir.join("cursor.tmp");
        let text: String = self
            .segments
            .iter()
            .filter(|(_, s)| s.start > 0)
            .map(|(seq, s)| format!("{seq} {}\n", s.start))
            .collect();
        fs::write(&tmp, text)
            .and_then(|()| fs::rename(&tmp, &path))
            .map_err(|source| SpoolError::Io { path, source })
    }

    fn count_events(&mut self, seq: u64, mut offset: u64) -> Result<u64, SpoolError> {
        let mut events = 0;
        let path = self.segment_path(seq);
        let Ok(mut file) = File::open(&path) else {
            return Ok(0);
        };
        let mut header = [0u8; FRAME_HEADER];
        loop {
            if file.seek(SeekFrom::Start(offset)).is_err() || file.read_exact(&mut header).is_err()
            {
                break;
            }
            if &header[..4] != MAGIC {
                break;
            }
            let len = u32::from_le_bytes(header[4..8].try_into().unwrap_or_default()) as u64;
            events += u64::from(u32::from_le_bytes(
                header[12..16].try_into().unwrap_or_default(),
            ));
            offset += FRAME_HEADER as u64 + len;
        }
        Ok(events)
    }

    fn read_frame(&mut self, seq: u64, offset: u64) -> Result<FrameRead, SpoolError> {
        let path = self.segment_path(seq);
        let io = |source| SpoolError::Io {
            path: path.clone(),
            source,
        };
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(FrameRead::End),
            Err(e) => return Err(io(e)),
        };
        let size = file.metadata().map_err(io)?.len();
        if offset >= size {
            return Ok(FrameRead::End);
        }
        if size - offset < FRAME_HEADER as u64 {
            return Ok(FrameRead::Torn);
        }
        file.seek(SeekFrom::Start(offset)).map_err(io)?;
        let mut header = [0u8; FRAME_HEADER];
        file.read_exact(&mut header).map_err(io)?;
        let len = u32::from_le_bytes(header[4..8].try_into().unwrap_or_default()) as u64;
        let crc = u32::from_le_bytes(header[8..12].try_into().unwrap_or_default());
        let count = u32::from_le_bytes(header[12..16].try_into().unwrap_or_default());
        if &header[..4] != MAGIC || size - offset - (FRAME_HEADER as u64) < len {
            return Ok(FrameRead::Torn);
        }
        let mut compressed = vec![0u8; len as usize];
        file.read_exact(&mut compressed).map_err(io)?;
        if crc32fast::hash(&compressed) != crc {
            return Ok(FrameRead::Torn);
        }
        let Ok(raw) = zstd::stream::decode_all(&compressed[..]) else {
            return Ok(FrameRead::Torn);
        };
        let Some(events) = decode_events(&raw, count as usize) else {
            return Ok(FrameRead::Torn);
        };
        Ok(FrameRead::Frame {
            events,
            next_offset: offset + FRAME_HEADER as u64 + len,
        })
    }
}

enum FrameRead {
    Frame {
        events: Vec<EncodedEvent>,
        next_offset: u64,
    },
    End,
    Torn,
}

fn decode_events(mut raw: &[u8], count: usize) -> Option<Vec<EncodedEvent>> {
    let mut events = Vec::with_capacity(count);
    for _ in 0..count {
        let (len, rest) = raw.split_first_chunk::<2>()?;
        let (id, rest) = rest.split_at_checked(u16::from_le_bytes(*len) as usize)?;
        let (kind, rest) = rest.split_first()?;
        let (ts, rest) = rest.split_first_chunk::<8>()?;
        let (jlen, rest) = rest.split_first_chunk::<4>()?;
        let (json, rest) = rest.split_at_checked(u32::from_le_bytes(*jlen) as usize)?;
        events.push(EncodedEvent {
            id: String::from_utf8(id.to_vec()).ok()?,
            event_type: *EventType::ALL.get(usize::from(*kind))?,
            ts_ns: u64::from_le_bytes(*ts),
            json: json.to_vec(),
        });
        raw = rest;
    }
    raw.is_empty().then_some(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u64) -> EncodedEvent {
        EncodedEvent {
            id: format!("boot-{n:012}"),
            event_type: EventType::ALL[(n % 8) as usize],
            ts_ns: 1_700_000_000_000_000_000 + n,
            json: format!(
                "{{\"event_type\":\"flow\",\"n\":{n},\"pad\":\"{}\"}}",
                "x".repeat((n % 300) as usize)
            )
            .into_bytes(),
        }
    }

    fn drain(spool: &mut Spool) -> Vec<EncodedEvent> {
        let mut out = Vec::new();
        while let Some(chunk) = spool.peek().unwrap() {
            out.extend(chunk.events.iter().cloned());
            spool.advance(&chunk).unwrap();
        }
        out
    }

    #[test]
    fn delivers_in_order_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let events: Vec<_> = (0..5000).map(event).collect();
        {
            let mut spool = Spool::open(dir.path(), 1 << 30, FullPolicy::DropOldest).unwrap();
            for batch in events.chunks(100) {
                spool.append(batch).unwrap();
            }
            // Deliver the first 1,000, then "crash".
            let mut taken = 0;
            while taken < 1000 {
                let chunk = spool.peek().unwrap().unwrap();
                taken += chunk.events.len();
                spool.advance(&chunk).unwrap();
            }
        }
        let mut spool = Spool::open(dir.path(), 1 << 30, FullPolicy::DropOldest).unwrap();
        assert_eq!(spool.stats().events, 4000);
        let rest = drain(&mut spool);
        assert_eq!(rest, events[1000..]);
        assert!(spool.is_empty());
        // Fully delivered segments are gone.
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
            .collect();
        assert!(left.len() <= 1, "{left:?}");
    }

    #[test]
    fn torn_tail_is_skipped_and_nothing_before_it_lost() {
        let dir = tempfile::tempdir().unwrap();
        let events: Vec<_> = (0..300).map(event).collect();
        {
            let mut spool = Spool::open(dir.path(), 1 << 30, FullPolicy::DropOldest).unwrap();
            for batch in events.chunks(100) {
                spool.append(batch).unwrap();
            }
        }
        // Cut the last frame in half, as a crash mid-write would.
        let seg = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .find(|e| e.file_name().to_string_lossy().ends_with(".seg"))
            .unwrap()
            .path();
        let len = fs::metadata(&seg).unwrap().len();
        let file = OpenOptions::new().write(true).open(&seg).unwrap();
        file.set_len(len - 40).unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 30, FullPolicy::DropOldest).unwrap();
        let got = drain(&mut spool);
        assert_eq!(got, events[..200]);
        assert_eq!(spool.stats().torn_frames, 1);
        // The spool works on after the damage.
        spool.append(&events[200..]).unwrap();
        assert_eq!(drain(&mut spool), events[200..]);
    }

    #[test]
    fn full_policies_count_what_they_drop() {
        let dir = tempfile::tempdir().unwrap();
        let events: Vec<_> = (0..20_000).map(event).collect();
        let mut newest =
            Spool::open(&dir.path().join("n"), 64 << 10, FullPolicy::DropNewest).unwrap();
        for batch in events.chunks(500) {
            newest.append(batch).unwrap();
        }
        let kept = drain(&mut newest);
        assert_eq!(kept.len() as u64 + newest.stats().dropped, 20_000);
        assert_eq!(kept[..], events[..kept.len()], "the oldest are kept");
        assert!(newest.stats().dropped > 0);

        // Drop-oldest needs several segments to drop whole ones; use a bigger budget.
        let mut oldest = Spool::open(
            &dir.path().join("o"),
            3 * SEGMENT_BYTES,
            FullPolicy::DropOldest,
        )
        .unwrap();
        // Incompressible payloads, so the budget is hit after a known amount of input.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut noise = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        };
        let big: Vec<_> = (0..60_000u64)
            .map(|n| EncodedEvent {
                json: (0..600).map(|_| noise()).collect(),
                ..event(n)
            })
            .collect();
        for batch in big.chunks(1000) {
            oldest.append(batch).unwrap();
        }
        let kept = drain(&mut oldest);
        assert!(oldest.stats().dropped > 0);
        assert_eq!(kept.len() as u64 + oldest.stats().dropped, 60_000);
        assert_eq!(
            kept[..],
            big[big.len() - kept.len()..],
            "the newest are kept"
        );
    }

    #[test]
    fn prepended_events_come_first() {
        let dir = tempfile::tempdir().unwrap();
        let events: Vec<_> = (0..400).map(event).collect();
        let mut spool = Spool::open(dir.path(), 1 << 30, FullPolicy::DropOldest).unwrap();
        spool.append(&events[200..300]).unwrap();
        spool.append(&events[300..]).unwrap();
        spool.prepend(&events[100..200]).unwrap();
        spool.prepend(&events[..100]).unwrap();
        // Deliver part of it, put the undelivered in-flight events back in front, reopen.
        let first = spool.peek().unwrap().unwrap();
        spool.advance(&first).unwrap();
        let second = spool.peek().unwrap().unwrap();
        spool.advance(&second).unwrap();
        let third = spool.peek().unwrap().unwrap();
        spool.advance(&third).unwrap();
        assert_eq!(third.events, events[200..300]);
        spool.prepend(&third.events).unwrap();
        drop(spool);
        let mut spool = Spool::open(dir.path(), 1 << 30, FullPolicy::DropOldest).unwrap();
        assert_eq!(drain(&mut spool), events[200..]);
    }
}
