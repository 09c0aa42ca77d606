//! Hand-written reader for classic pcap and pcapng capture files.
//!
//! Not libpcap, because we need: exact byte offsets of damage in errors,
//! packets borrowed from one large read buffer (no allocation and no syscall
//! per packet), pcapng with several interfaces of different link types and
//! timestamp resolutions, and > 5 Gbit/s from page cache on one core.
//!
//! Errors are final: after an error `next_packet` returns `Ok(None)`, since a
//! damaged length field leaves no reliable way to find the next record.

use std::fs::File;
use std::io::{self, ErrorKind, Read};
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use memmap2::{Advice, Mmap, MmapOptions};

use super::CaptureError;

/// Largest captured length accepted for one packet; larger means a damaged header.
pub const MAX_CAPLEN: u32 = 256 << 20;
/// Largest pcapng block: a maximal packet plus generous room for headers and options.
const MAX_BLOCK_LEN: u32 = MAX_CAPLEN + (64 << 10);
/// The read buffer never needs to exceed the largest record.
const MAX_BUFFER: usize = MAX_BLOCK_LEN as usize + 64;
/// Classic pcap caplen floor for the sanity limit: libpcap's largest default
/// snaplen, because many writers put 0 or a too-small snaplen in the header.
const PCAP_SNAPLEN_FLOOR: u32 = 262_144;
/// Default read buffer: big enough that read syscalls are noise, small enough to stay cache-friendly.
pub const DEFAULT_BUFFER_SIZE: usize = 1 << 20;
/// Window of a mapped file: mappings are few, and the windows batches still hold (resident
/// pages count in RSS) stay a few MiB.
const MAP_WINDOW: usize = 4 << 20;

const PCAP_HEADER_LEN: usize = 24;
const NG_SHB: u32 = 0x0A0D_0D0A;
const NG_IDB: u32 = 1;
const NG_PB: u32 = 2;
const NG_SPB: u32 = 3;
const NG_EPB: u32 = 6;
const NG_BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const NG_SHB_MIN_LEN: u32 = 28;

/// One packet, borrowed from the reader's buffer until the next `next_packet` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawPacket<'a> {
    /// Packet time in ns since the Unix epoch. pcapng Simple Packet Blocks carry
    /// no time stamp and get the previous packet's.
    pub ts_ns: u64,
    /// Captured bytes (caplen).
    pub data: &'a [u8],
    /// The read chunk `data` lies in, at `chunk_offset`: a consumer may keep a clone of it to
    /// refer to the packet later without copying it. The reader never writes into a chunk
    /// that is shared this way.
    pub chunk: &'a Arc<Chunk>,
    pub chunk_offset: usize,
    /// Length on the wire (never less than `data.len()`).
    pub orig_len: u32,
    /// pcap LINKTYPE_ number of this packet's interface.
    pub link_type: u32,
    /// pcapng interface id (0 for classic pcap).
    pub interface: u32,
    /// Byte offset of this record (record header / block start) in the file.
    pub file_offset: u64,
}

/// Which file format is being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcapFormat {
    /// Classic pcap; `link_type` has the FCS bits masked off.
    Pcap {
        big_endian: bool,
        nanos: bool,
        snaplen: u32,
        link_type: u32,
    },
    /// pcapng; link types and resolutions are per interface, see [`RawPacket`].
    PcapNg,
}

/// Streaming reader over a pcap or pcapng file.
pub struct PcapFileReader<R: Read = File> {
    src: Chunked<R>,
    name: String,
    format: PcapFormat,
    /// Byte order of the current file (pcap) or section (pcapng).
    big_endian: bool,
    /// Classic pcap: record header length (16, or 24 for the modified format).
    pcap_hdr_len: usize,
    /// Classic pcap: fractional-second field multiplier to get ns.
    pcap_frac_mul: u64,
    pcap_caplen_limit: u32,
    /// pcapng: interfaces of the current section, indexed by interface id.
    interfaces: Vec<Interface>,
    done: bool,
    /// Time of the previous packet: a Simple Packet Block has none of its own, and taking the
    /// previous one keeps packet time from jumping back to 1970 (which would expire every flow).
    last_ts_ns: u64,
}

#[derive(Debug, Clone, Copy)]
struct Interface {
    link_type: u32,
    snaplen: u32,
    unit: TsUnit,
    offset_s: i64,
}

/// How to turn a pcapng timestamp (in if_tsresol units) into ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TsUnit {
    Mul(u64),
    Div(u64),
    /// 2^-n seconds per tick.
    Bin(u32),
}

impl TsUnit {
    fn from_tsresol(v: u8) -> Option<Self> {
        let n = u32::from(v & 0x7f);
        if v & 0x80 != 0 {
            Some(TsUnit::Bin(n))
        } else if n <= 9 {
            Some(TsUnit::Mul(10u64.pow(9 - n)))
        } else if n <= 28 {
            Some(TsUnit::Div(10u64.pow(n - 9)))
        } else {
            // Ticks finer than 1e-28 s: nothing real writes this.
            None
        }
    }

    #[inline]
    fn to_ns(self, ticks: u64) -> u64 {
        match self {
            TsUnit::Mul(f) => ticks.saturating_mul(f),
            TsUnit::Div(d) => ticks / d,
            // u128 so neither the multiply nor a shift of up to 127 can overflow.
            TsUnit::Bin(s) => {
                u64::try_from((u128::from(ticks) * 1_000_000_000) >> s).unwrap_or(u64::MAX)
            }
        }
    }
}

impl Interface {
    #[inline]
    fn ts_ns(&self, hi: u32, lo: u32) -> u64 {
        let ns = self.unit.to_ns((u64::from(hi) << 32) | u64::from(lo));
        if self.offset_s == 0 {
            ns
        } else {
            let v = i128::from(ns) + i128::from(self.offset_s) * 1_000_000_000;
            v.clamp(0, i128::from(u64::MAX)) as u64
        }
    }
}

/// Position of a packet inside the buffer; turned into a borrowed [`RawPacket`]
/// only at the end of `next_packet`, which keeps the borrow checker simple.
struct Meta {
    /// `None` for a Simple Packet Block, which has no timestamp.
    ts_ns: Option<u64>,
    data_at: usize,
    caplen: usize,
    orig_len: u32,
    link_type: u32,
    interface: u32,
    file_offset: u64,
}

/// Bytes of a capture file that handed-out packets refer to.
#[derive(Debug)]
pub enum Chunk {
    /// Read with read(2) into memory of our own.
    Read(Vec<u8>),
    /// A window of the file, mapped read-only: the page cache's bytes without a copy.
    Mapped(Mmap),
}

impl Deref for Chunk {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        match self {
            Chunk::Read(bytes) => bytes,
            Chunk::Mapped(map) => map,
        }
    }
}

/// Chunks are equal when their bytes are, however they were read.
impl PartialEq for Chunk {
    fn eq(&self, other: &Chunk) -> bool {
        **self == **other
    }
}

impl Eq for Chunk {}

/// A regular file read through windows mapped in turn.
struct MappedFile {
    file: File,
    /// The length when opened: what is replayed, even if the file grows meanwhile.
    len: u64,
    window: usize,
}

/// A large read buffer: records are parsed in place, so each byte is copied
/// once (kernel to buffer) plus at most once more when a partial record is
/// moved to the front before a refill. A mapped file is not copied at all.
struct Chunked<R> {
    /// `None` for a mapped file.
    reader: Option<R>,
    /// Set for a mapped file: windows replace reads and `reader` is not used.
    mapped: Option<MappedFile>,
    /// Always fully initialised; `len()` is the usable capacity. While no one else holds it,
    /// it is refilled in place; once shared (see `RawPacket::chunk`) it is frozen and new bytes
    /// go into a fresh chunk.
    buf: Arc<Chunk>,
    /// Retired chunks, reused once nobody holds them any more.
    spare: Vec<Arc<Chunk>>,
    start: usize,
    end: usize,
    /// File offset of `buf[0]`.
    base: u64,
    eof: bool,
}

impl<R: Read> Chunked<R> {
    /// File offset of the first unconsumed byte.
    #[inline]
    fn offset(&self) -> u64 {
        self.base + self.start as u64
    }

    #[inline]
    fn avail(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    #[inline]
    fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.end - self.start);
        self.start += n;
    }

    /// Makes at least `need` bytes available unless the file ends first;
    /// returns how many are available.
    #[inline]
    fn fill(&mut self, need: usize) -> io::Result<usize> {
        let have = self.end - self.start;
        if have >= need {
            return Ok(have);
        }
        self.fill_slow(need)
    }

    #[cold]
    fn fill_slow(&mut self, need: usize) -> io::Result<usize> {
        if self.mapped.is_some() {
            return self.map_next_window(need);
        }
        while self.end - self.start < need && !self.eof {
            if Arc::get_mut(&mut self.buf).is_none() {
                self.move_to_fresh_chunk(need);
            }
            let Some(Chunk::Read(buf)) = Arc::get_mut(&mut self.buf) else {
                return Err(io::Error::other(
                    "read chunk still shared after replacing it",
                ));
            };
            if buf.len() - self.start < need {
                if self.start > 0 {
                    // Only the tail of one partial record is moved.
                    buf.copy_within(self.start..self.end, 0);
                    self.base += self.start as u64;
                    self.end -= self.start;
                    self.start = 0;
                }
                if self.end == buf.len() {
                    // Grow only once the buffer is full of real data, so a bogus
                    // huge length in a short file never allocates that much.
                    let new_len = (buf.len() * 2).min(MAX_BUFFER).max(need);
                    buf.resize(new_len, 0);
                }
            }
            let Some(reader) = self.reader.as_mut() else {
                return Err(io::Error::other("capture source has no reader"));
            };
            match reader.read(&mut buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.end - self.start)
    }

    /// Maps the window that starts at the first unconsumed byte and holds at least `need`
    /// bytes, or the rest of the file when less is left.
    fn map_next_window(&mut self, need: usize) -> io::Result<usize> {
        let Some(mapped) = &self.mapped else {
            return Ok(self.end - self.start);
        };
        let at = self.offset();
        let left = mapped.len.saturating_sub(at);
        if self.eof || (self.end - self.start) as u64 >= left {
            self.eof = true;
            return Ok(self.end - self.start);
        }
        let len = usize::try_from(left)
            .unwrap_or(usize::MAX)
            .min(mapped.window.max(need));
        // SAFETY: a read-only mapping of a file opened for reading, inside the length it had
        // when opened. Its bytes are only read through `Chunk`. Were the file truncated while
        // it is replayed, reading the lost pages would raise SIGBUS; capture files are written
        // once and replayed afterwards (a growing file is fine: only the opened length is read).
        let map = unsafe { MmapOptions::new().offset(at).len(len).map(&mapped.file)? };
        // Only a hint for read-ahead; failing changes nothing.
        let _ = map.advise(Advice::Sequential);
        self.buf = Arc::new(Chunk::Mapped(map));
        self.base = at;
        self.start = 0;
        self.end = len;
        self.eof = len as u64 == left;
        Ok(len)
    }

    /// The current chunk is shared: carry its unconsumed tail over into a chunk nobody holds.
    fn move_to_fresh_chunk(&mut self, need: usize) {
        let tail = self.end - self.start;
        let want = self.buf.len().max(need).max(tail);
        let reusable = self.spare.iter().position(|c| Arc::strong_count(c) == 1);
        let mut bytes = match reusable.map(|i| Arc::try_unwrap(self.spare.swap_remove(i))) {
            Some(Ok(Chunk::Read(bytes))) => bytes,
            Some(Ok(Chunk::Mapped(_))) => Vec::new(),
            Some(Err(still_shared)) => {
                self.spare.push(still_shared);
                Vec::new()
            }
            None => Vec::new(),
        };
        if bytes.len() < want {
            bytes.resize(want, 0);
        }
        bytes[..tail].copy_from_slice(&self.buf[self.start..self.end]);
        let fresh = Arc::new(Chunk::Read(bytes));
        let old = std::mem::replace(&mut self.buf, fresh);
        if self.spare.len() < MAX_SPARE_CHUNKS {
            self.spare.push(old);
        }
        self.base += self.start as u64;
        self.start = 0;
        self.end = tail;
    }
}

/// Retired chunks kept for reuse; more in flight than this are freed when done with.
const MAX_SPARE_CHUNKS: usize = 16;

#[inline]
fn rd_u32(b: &[u8], at: usize, be: bool) -> u32 {
    let a: [u8; 4] = b[at..at + 4].try_into().expect("4-byte slice");
    if be {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

#[inline]
fn rd_u16(b: &[u8], at: usize, be: bool) -> u16 {
    let a: [u8; 2] = b[at..at + 2].try_into().expect("2-byte slice");
    if be {
        u16::from_be_bytes(a)
    } else {
        u16::from_le_bytes(a)
    }
}

impl PcapFileReader<File> {
    /// Opens a capture file and validates its header.
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|source| CaptureError::Io {
            path: name.clone(),
            source,
        })?;
        let meta = file.metadata().ok();
        if let Some(meta) = meta.as_ref().filter(|m| m.is_file() && m.len() > 0) {
            let mapped = MappedFile {
                file,
                len: meta.len(),
                window: MAP_WINDOW,
            };
            return Self::with_source(None, Some(mapped), &name, 0);
        }
        // Pipes, devices and the like are read. A small one gets a chunk its size: read chunks
        // stay alive while batches refer to them, and a run over many small captures should
        // not hold a full chunk for each.
        let len = meta.map(|m| m.len()).unwrap_or(u64::MAX);
        let buffer = usize::try_from(len.saturating_add(64)).unwrap_or(DEFAULT_BUFFER_SIZE);
        Self::with_buffer_size(file, &name, buffer.clamp(4096, DEFAULT_BUFFER_SIZE))
    }

    /// As [`Self::open`], mapping windows of `window` bytes (tests use small ones to cross
    /// window ends often).
    #[cfg(test)]
    fn open_mapped(path: &Path, window: usize) -> Result<Self, CaptureError> {
        let name = path.display().to_string();
        let io_err = |source| CaptureError::Io {
            path: name.clone(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        let mapped = MappedFile { file, len, window };
        Self::with_source(None, Some(mapped), &name, 0)
    }
}

impl<R: Read> PcapFileReader<R> {
    /// Reads and validates the file header; `name` is used in error messages.
    pub fn from_reader(reader: R, name: &str) -> Result<Self, CaptureError> {
        Self::with_buffer_size(reader, name, DEFAULT_BUFFER_SIZE)
    }

    /// As [`Self::from_reader`] with an explicit initial buffer size (it still
    /// grows for packets larger than the buffer).
    pub fn with_buffer_size(
        reader: R,
        name: &str,
        buffer_size: usize,
    ) -> Result<Self, CaptureError> {
        Self::with_source(Some(reader), None, name, buffer_size)
    }

    /// Reads from `reader`, or from `mapped` (then `reader` is `None`).
    fn with_source(
        reader: Option<R>,
        mapped: Option<MappedFile>,
        name: &str,
        buffer_size: usize,
    ) -> Result<Self, CaptureError> {
        let buf = if mapped.is_some() {
            Chunk::Read(Vec::new())
        } else {
            Chunk::Read(vec![0; buffer_size.clamp(1, MAX_BUFFER)])
        };
        let mut me = PcapFileReader {
            src: Chunked {
                reader,
                mapped,
                buf: Arc::new(buf),
                spare: Vec::new(),
                start: 0,
                end: 0,
                base: 0,
                eof: false,
            },
            name: name.to_owned(),
            format: PcapFormat::PcapNg,
            big_endian: false,
            pcap_hdr_len: 16,
            pcap_frac_mul: 1000,
            pcap_caplen_limit: 0,
            interfaces: Vec::new(),
            done: false,
            last_ts_ns: 0,
        };
        let have = me.fill(4)?;
        if have == 0 {
            return Err(CaptureError::Empty { path: me.name });
        }
        if have < 4 {
            return Err(me.truncated(0, format!("file is only {have} bytes long")));
        }
        let m: [u8; 4] = me.src.avail()[..4].try_into().expect("4 bytes");
        // (big endian, nanosecond fractions, modified record header)
        let classic = match u32::from_le_bytes(m) {
            0xa1b2_c3d4 => Some((false, false, false)),
            0xd4c3_b2a1 => Some((true, false, false)),
            0xa1b2_3c4d => Some((false, true, false)),
            0x4d3c_b2a1 => Some((true, true, false)),
            0xa1b2_cd34 => Some((false, false, true)),
            0x34cd_b2a1 => Some((true, false, true)),
            NG_SHB => None,
            _ => {
                return Err(CaptureError::NotPcap {
                    path: me.name,
                    magic: u32::from_be_bytes(m),
                })
            }
        };
        match classic {
            Some((be, nanos, modified)) => me.read_pcap_header(be, nanos, modified)?,
            None => me.read_shb()?,
        }
        Ok(me)
    }

    /// The next packet, `Ok(None)` at a clean end of file (or after an error).
    #[inline]
    pub fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, CaptureError> {
        if self.done {
            return Ok(None);
        }
        let r = match self.format {
            PcapFormat::Pcap { .. } => self.next_pcap(),
            PcapFormat::PcapNg => self.next_ng(),
        };
        match r {
            Ok(Some(m)) => {
                let ts_ns = m.ts_ns.unwrap_or(self.last_ts_ns);
                self.last_ts_ns = ts_ns;
                Ok(Some(RawPacket {
                    ts_ns,
                    data: &self.src.buf[m.data_at..m.data_at + m.caplen],
                    chunk: &self.src.buf,
                    chunk_offset: m.data_at,
                    orig_len: m.orig_len,
                    link_type: m.link_type,
                    interface: m.interface,
                    file_offset: m.file_offset,
                }))
            }
            Ok(None) => {
                self.done = true;
                Ok(None)
            }
            Err(e) => {
                self.done = true;
                Err(e)
            }
        }
    }

    /// File bytes consumed so far (for progress reporting).
    pub fn bytes_consumed(&self) -> u64 {
        self.src.offset()
    }

    pub fn format(&self) -> PcapFormat {
        self.format
    }

    /// The name given at open time, as used in error messages.
    pub fn path(&self) -> &str {
        &self.name
    }

    #[inline]
    fn fill(&mut self, need: usize) -> Result<usize, CaptureError> {
        self.src.fill(need).map_err(|source| CaptureError::Io {
            path: self.name.clone(),
            source,
        })
    }

    fn truncated(&self, offset: u64, reason: String) -> CaptureError {
        CaptureError::Truncated {
            path: self.name.clone(),
            offset,
            reason,
        }
    }

    fn corrupt(&self, offset: u64, reason: String) -> CaptureError {
        CaptureError::Corrupt {
            path: self.name.clone(),
            offset,
            reason,
        }
    }

    fn read_pcap_header(
        &mut self,
        be: bool,
        nanos: bool,
        modified: bool,
    ) -> Result<(), CaptureError> {
        let have = self.fill(PCAP_HEADER_LEN)?;
        if have < PCAP_HEADER_LEN {
            return Err(self.truncated(
                0,
                format!("pcap file header: {have} of {PCAP_HEADER_LEN} bytes present"),
            ));
        }
        let h = self.src.avail();
        // Version, thiszone and sigfigs are not checked: writers fill them
        // inconsistently and libpcap ignores them as well.
        let snaplen = rd_u32(h, 16, be);
        // Upper bits carry FCS information, not the link type.
        let link_type = rd_u32(h, 20, be) & 0xffff;
        self.src.consume(PCAP_HEADER_LEN);
        self.big_endian = be;
        self.pcap_hdr_len = if modified { 24 } else { 16 };
        self.pcap_frac_mul = if nanos { 1 } else { 1000 };
        // Some writers exceed their own snaplen; the margin tolerates them while
        // still catching garbage lengths from a damaged record header.
        self.pcap_caplen_limit = snaplen
            .max(PCAP_SNAPLEN_FLOOR)
            .saturating_mul(2)
            .min(MAX_CAPLEN);
        self.format = PcapFormat::Pcap {
            big_endian: be,
            nanos,
            snaplen,
            link_type,
        };
        Ok(())
    }

    #[inline]
    fn next_pcap(&mut self) -> Result<Option<Meta>, CaptureError> {
        let PcapFormat::Pcap { link_type, .. } = self.format else {
            unreachable!("next_pcap on pcapng")
        };
        let be = self.big_endian;
        let hdr_len = self.pcap_hdr_len;
        let rec_off = self.src.offset();
        let have = self.fill(hdr_len)?;
        if have < hdr_len {
            if have == 0 {
                return Ok(None);
            }
            return Err(self.truncated(
                rec_off,
                format!("record header: {have} of {hdr_len} bytes present"),
            ));
        }
        let h = self.src.avail();
        let sec = rd_u32(h, 0, be);
        let frac = rd_u32(h, 4, be);
        let caplen = rd_u32(h, 8, be);
        let orig_len = rd_u32(h, 12, be);
        if caplen > self.pcap_caplen_limit {
            return Err(self.corrupt(
                rec_off,
                format!(
                    "record captured length {caplen} exceeds limit {}",
                    self.pcap_caplen_limit
                ),
            ));
        }
        let total = hdr_len + caplen as usize;
        let have = self.fill(total)?;
        if have < total {
            return Err(self.truncated(
                rec_off,
                format!("record needs {total} bytes, only {have} present"),
            ));
        }
        let data_at = self.src.start + hdr_len;
        self.src.consume(total);
        Ok(Some(Meta {
            ts_ns: Some(u64::from(sec) * 1_000_000_000 + u64::from(frac) * self.pcap_frac_mul),
            data_at,
            caplen: caplen as usize,
            orig_len: orig_len.max(caplen),
            link_type,
            interface: 0,
            file_offset: rec_off,
        }))
    }

    /// Checks a pcapng block total length, then buffers the whole block and
    /// checks the trailing copy of the length. Returns the length.
    fn load_block(&mut self, total: u32, min: u32, what: &str) -> Result<usize, CaptureError> {
        let off = self.src.offset();
        if total < min || total % 4 != 0 || total > MAX_BLOCK_LEN {
            return Err(self.corrupt(
                off,
                format!("{what} block total length {total} invalid (must be a multiple of 4, >= {min}, <= {MAX_BLOCK_LEN})"),
            ));
        }
        let total = total as usize;
        let have = self.fill(total)?;
        if have < total {
            return Err(self.truncated(
                off,
                format!("{what} block needs {total} bytes, only {have} present"),
            ));
        }
        let trailer = rd_u32(self.src.avail(), total - 4, self.big_endian);
        if trailer as usize != total {
            return Err(self.corrupt(
                off,
                format!(
                    "{what} block trailing length {trailer} differs from leading length {total}"
                ),
            ));
        }
        Ok(total)
    }

    /// Reads a Section Header Block at the current position: it sets the byte
    /// order for the rest of the section and forgets earlier interfaces.
    fn read_shb(&mut self) -> Result<(), CaptureError> {
        let off = self.src.offset();
        let have = self.fill(12)?;
        if have < 12 {
            return Err(self.truncated(
                off,
                format!("section header block: {have} of at least {NG_SHB_MIN_LEN} bytes present"),
            ));
        }
        let b = self.src.avail();
        let bom: [u8; 4] = b[8..12].try_into().expect("4 bytes");
        let be = if u32::from_be_bytes(bom) == NG_BYTE_ORDER_MAGIC {
            true
        } else if u32::from_le_bytes(bom) == NG_BYTE_ORDER_MAGIC {
            false
        } else {
            return Err(self.corrupt(
                off,
                format!(
                    "section header byte-order magic {:#010x} is neither order of {NG_BYTE_ORDER_MAGIC:#010x}",
                    u32::from_be_bytes(bom)
                ),
            ));
        };
        self.big_endian = be;
        let total = rd_u32(b, 4, be);
        let total = self.load_block(total, NG_SHB_MIN_LEN, "section header")?;
        let major = rd_u16(self.src.avail(), 12, be);
        let minor = rd_u16(self.src.avail(), 14, be);
        if major != 1 {
            return Err(self.corrupt(off, format!("unsupported pcapng version {major}.{minor}")));
        }
        self.interfaces.clear();
        self.src.consume(total);
        Ok(())
    }

    fn parse_idb(&mut self, total: usize) -> Result<Interface, CaptureError> {
        let off = self.src.offset();
        let be = self.big_endian;
        let b = &self.src.avail()[..total];
        let mut iface = Interface {
            link_type: u32::from(rd_u16(b, 8, be)),
            snaplen: rd_u32(b, 12, be),
            unit: TsUnit::Mul(1000),
            offset_s: 0,
        };
        let opts = &b[16..total - 4];
        let mut at = 0;
        // Fewer than 4 bytes left can only be padding; opt_endofopt is optional.
        while opts.len() - at >= 4 {
            let code = rd_u16(opts, at, be);
            let len = usize::from(rd_u16(opts, at + 2, be));
            if code == 0 {
                break;
            }
            let val_at = at + 4;
            if len > opts.len() - val_at {
                return Err(self.corrupt(
                    off,
                    format!(
                        "interface description option {code} at block byte {} overruns the block",
                        16 + at
                    ),
                ));
            }
            let val = &opts[val_at..val_at + len];
            match (code, len) {
                (9, 1) => match TsUnit::from_tsresol(val[0]) {
                    Some(u) => iface.unit = u,
                    None => {
                        return Err(
                            self.corrupt(off, format!("unsupported if_tsresol {:#04x}", val[0]))
                        )
                    }
                },
                (14, 8) => {
                    let a: [u8; 8] = val.try_into().expect("8 bytes");
                    iface.offset_s = if be {
                        i64::from_be_bytes(a)
                    } else {
                        i64::from_le_bytes(a)
                    };
                }
                (9 | 14, _) => {
                    return Err(self.corrupt(
                        off,
                        format!("interface description option {code} has bad length {len}"),
                    ))
                }
                _ => {}
            }
            // Values are padded to 32 bits; the padding may be missing before the block end.
            at = (val_at + len.next_multiple_of(4)).min(opts.len());
        }
        Ok(iface)
    }

    fn next_ng(&mut self) -> Result<Option<Meta>, CaptureError> {
        loop {
            let off = self.src.offset();
            let have = self.fill(8)?;
            if have < 8 {
                if have == 0 {
                    return Ok(None);
                }
                return Err(self.truncated(off, format!("block header: {have} of 8 bytes present")));
            }
            let be = self.big_endian;
            let b = self.src.avail();
            let btype = rd_u32(b, 0, be);
            let total = rd_u32(b, 4, be);
            match btype {
                // Palindromic type, so recognisable before the new byte order is known.
                NG_SHB => self.read_shb()?,
                NG_IDB => {
                    let total = self.load_block(total, 20, "interface description")?;
                    let iface = self.parse_idb(total)?;
                    self.interfaces.push(iface);
                    self.src.consume(total);
                }
                NG_EPB | NG_PB => {
                    let what = if btype == NG_EPB {
                        "enhanced packet"
                    } else {
                        "packet"
                    };
                    let total = self.load_block(total, 32, what)?;
                    let b = self.src.avail();
                    let id = if btype == NG_EPB {
                        rd_u32(b, 8, be)
                    } else {
                        u32::from(rd_u16(b, 8, be))
                    };
                    let ts_hi = rd_u32(b, 12, be);
                    let ts_lo = rd_u32(b, 16, be);
                    let caplen = rd_u32(b, 20, be);
                    let orig_len = rd_u32(b, 24, be);
                    let room = total - 32;
                    if caplen as usize > room || caplen > MAX_CAPLEN {
                        return Err(self.corrupt(
                            off,
                            format!("{what} block captured length {caplen} exceeds the {room} bytes of room in the block"),
                        ));
                    }
                    let Some(iface) = self.interfaces.get(id as usize) else {
                        return Err(self.corrupt(
                            off,
                            format!(
                                "{what} block refers to interface {id}, but the section has {} interface(s)",
                                self.interfaces.len()
                            ),
                        ));
                    };
                    let meta = Meta {
                        ts_ns: Some(iface.ts_ns(ts_hi, ts_lo)),
                        data_at: self.src.start + 28,
                        caplen: caplen as usize,
                        orig_len: orig_len.max(caplen),
                        link_type: iface.link_type,
                        interface: id,
                        file_offset: off,
                    };
                    self.src.consume(total);
                    return Ok(Some(meta));
                }
                NG_SPB => {
                    let total = self.load_block(total, 16, "simple packet")?;
                    let orig_len = rd_u32(self.src.avail(), 8, be);
                    let Some(iface) = self.interfaces.first() else {
                        return Err(self.corrupt(
                            off,
                            "simple packet block before any interface description block".to_owned(),
                        ));
                    };
                    let mut caplen = orig_len.min(MAX_CAPLEN) as usize;
                    if iface.snaplen != 0 {
                        caplen = caplen.min(iface.snaplen as usize);
                    }
                    caplen = caplen.min(total - 16);
                    let meta = Meta {
                        ts_ns: None,
                        data_at: self.src.start + 12,
                        caplen,
                        orig_len: orig_len.max(caplen as u32),
                        link_type: iface.link_type,
                        interface: 0,
                        file_offset: off,
                    };
                    self.src.consume(total);
                    return Ok(Some(meta));
                }
                _ => {
                    // Name resolution, statistics, decryption secrets, custom...: not needed.
                    let total = self.load_block(total, 12, "other")?;
                    self.src.consume(total);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// Expected view of one packet.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Pkt {
        ts_ns: u64,
        data: Vec<u8>,
        orig_len: u32,
        link_type: u32,
        interface: u32,
        file_offset: u64,
    }

    impl From<RawPacket<'_>> for Pkt {
        fn from(p: RawPacket<'_>) -> Self {
            Pkt {
                ts_ns: p.ts_ns,
                data: p.data.to_vec(),
                orig_len: p.orig_len,
                link_type: p.link_type,
                interface: p.interface,
                file_offset: p.file_offset,
            }
        }
    }

    /// Reads everything; returns the packets and the final result.
    fn read_all_with<R: Read>(r: &mut PcapFileReader<R>) -> (Vec<Pkt>, Result<(), CaptureError>) {
        let mut out = Vec::new();
        loop {
            match r.next_packet() {
                Ok(Some(p)) => out.push(p.into()),
                Ok(None) => return (out, Ok(())),
                Err(e) => return (out, Err(e)),
            }
        }
    }

    fn read_all(bytes: &[u8]) -> Result<(Vec<Pkt>, Result<(), CaptureError>), CaptureError> {
        let mut r = PcapFileReader::from_reader(Cursor::new(bytes), "mem")?;
        Ok(read_all_with(&mut r))
    }

    /// Hands out data a few bytes per `read`, like a pipe, to exercise refills.
    struct Dribble<'a>(&'a [u8], usize);
    impl Read for Dribble<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(out.len()).min(self.0.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// Reads with every combination of tiny buffers and short reads; all must agree.
    fn read_all_every_way(
        bytes: &[u8],
    ) -> Result<(Vec<Pkt>, Result<(), CaptureError>), CaptureError> {
        let reference = read_all(bytes);
        for buf in [1, 7, 64, 100] {
            for chunk in [1, 3, 1000] {
                let got = PcapFileReader::with_buffer_size(Dribble(bytes, chunk), "mem", buf)
                    .map(|mut r| read_all_with(&mut r));
                assert_eq!(
                    format!("{got:?}"),
                    format!("{reference:?}"),
                    "buf {buf} chunk {chunk}"
                );
            }
        }
        // A file on disk is mapped: windows so small that records cross their ends all the
        // time must read the same, damage included.
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        io::Write::write_all(&mut file, bytes).expect("write temp file");
        let path = file.path();
        let as_mem = |got: &Result<(Vec<Pkt>, Result<(), CaptureError>), CaptureError>| {
            format!("{got:?}").replace(&path.display().to_string(), "mem")
        };
        let mapped = PcapFileReader::open(path).map(|mut r| read_all_with(&mut r));
        assert_eq!(as_mem(&mapped), format!("{reference:?}"), "mapped");
        for window in [1, 7, 64, 4096] {
            let got = PcapFileReader::open_mapped(path, window).map(|mut r| read_all_with(&mut r));
            assert_eq!(
                as_mem(&got),
                format!("{reference:?}"),
                "mapped, window {window}"
            );
        }
        reference
    }

    // ---- classic pcap builder ----

    struct Classic {
        be: bool,
        out: Vec<u8>,
        /// (record start, record end)
        records: Vec<(usize, usize)>,
    }

    impl Classic {
        fn new(magic: u32, be: bool, snaplen: u32, network: u32) -> Self {
            let mut c = Classic {
                be,
                out: Vec::new(),
                records: Vec::new(),
            };
            c.u32(magic);
            c.u16(2);
            c.u16(4);
            c.u32(0);
            c.u32(0);
            c.u32(snaplen);
            c.u32(network);
            c
        }
        fn u32(&mut self, v: u32) {
            let b = if self.be {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            self.out.extend_from_slice(&b);
        }
        fn u16(&mut self, v: u16) {
            let b = if self.be {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            self.out.extend_from_slice(&b);
        }
        fn record(&mut self, sec: u32, frac: u32, data: &[u8], orig: u32) -> u64 {
            let start = self.out.len();
            self.u32(sec);
            self.u32(frac);
            self.u32(data.len() as u32);
            self.u32(orig);
            self.out.extend_from_slice(data);
            self.records.push((start, self.out.len()));
            start as u64
        }
    }

    fn payload(n: usize, seed: u8) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn classic_le_be_us_ns() {
        for be in [false, true] {
            for nanos in [false, true] {
                let magic = if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
                // FCS bits set above the link type must be masked off.
                let mut c = Classic::new(magic, be, 65535, 0x1400_0001);
                let o1 = c.record(1_700_000_000, 123_456, &payload(60, 1), 60);
                let o2 = c.record(4_000_000_000, 999_999, &payload(0, 2), 0);
                let r = PcapFileReader::from_reader(Cursor::new(&c.out), "x.pcap").unwrap();
                assert_eq!(
                    r.format(),
                    PcapFormat::Pcap {
                        big_endian: be,
                        nanos,
                        snaplen: 65535,
                        link_type: 1
                    }
                );
                assert_eq!(r.bytes_consumed(), 24);
                assert_eq!(r.path(), "x.pcap");
                let (pkts, end) = read_all_every_way(&c.out).unwrap();
                end.unwrap();
                let mul = if nanos { 1 } else { 1000 };
                assert_eq!(
                    pkts,
                    vec![
                        Pkt {
                            ts_ns: 1_700_000_000_000_000_000 + 123_456 * mul,
                            data: payload(60, 1),
                            orig_len: 60,
                            link_type: 1,
                            interface: 0,
                            file_offset: o1
                        },
                        Pkt {
                            ts_ns: 4_000_000_000_000_000_000 + 999_999 * mul,
                            data: vec![],
                            orig_len: 0,
                            link_type: 1,
                            interface: 0,
                            file_offset: o2
                        },
                    ]
                );
            }
        }
    }

    #[test]
    fn classic_snaplen_truncated_and_caplen_over_orig() {
        let mut c = Classic::new(0xa1b2_c3d4, false, 96, 1);
        c.record(1, 2, &payload(96, 3), 1514);
        c.record(1, 3, &payload(80, 4), 50); // caplen > orig_len: orig_len becomes caplen
        let (pkts, end) = read_all_every_way(&c.out).unwrap();
        end.unwrap();
        assert_eq!((pkts[0].data.len(), pkts[0].orig_len), (96, 1514));
        assert_eq!((pkts[1].data.len(), pkts[1].orig_len), (80, 80));
    }

    #[test]
    fn classic_modified_format() {
        let mut c = Classic::new(0xa1b2_cd34, false, 65535, 1);
        let start = c.out.len();
        c.u32(5);
        c.u32(6);
        c.u32(4);
        c.u32(4);
        c.out.extend_from_slice(&[9; 8]); // ifindex, protocol, pkt_type, pad
        c.out.extend_from_slice(b"abcd");
        let (pkts, end) = read_all(&c.out).unwrap();
        end.unwrap();
        assert_eq!(pkts.len(), 1);
        assert_eq!(pkts[0].data, b"abcd");
        assert_eq!(pkts[0].ts_ns, 5_000_006_000);
        assert_eq!(pkts[0].file_offset, start as u64);
    }

    #[test]
    fn classic_absurd_caplen_is_corrupt() {
        let mut c = Classic::new(0xa1b2_c3d4, true, 65535, 1);
        c.record(1, 0, &payload(10, 0), 10);
        let bad = c.out.len() as u64;
        c.u32(1);
        c.u32(0);
        c.u32(0x7fff_0000);
        c.u32(60);
        c.out.extend_from_slice(&[0; 100]);
        let (pkts, end) = read_all(&c.out).unwrap();
        assert_eq!(pkts.len(), 1);
        match end {
            Err(CaptureError::Corrupt { offset, .. }) => assert_eq!(offset, bad),
            other => panic!("{other:?}"),
        }
        // Above the snaplen but within the margin is accepted.
        let mut c = Classic::new(0xa1b2_c3d4, false, 64, 1);
        c.record(1, 0, &payload(300_000, 0), 300_000);
        let (pkts, end) = read_all(&c.out).unwrap();
        end.unwrap();
        assert_eq!(pkts[0].data.len(), 300_000);
    }

    /// Cutting a file at `cut` must yield every complete record before the cut,
    /// then a clean end exactly when the cut is on a record boundary, otherwise
    /// `Truncated` at the offset of the record the cut falls in.
    fn check_every_cut(bytes: &[u8], header_end: usize, records: &[(usize, usize)], full: &[Pkt]) {
        for cut in 0..=bytes.len() {
            let res = PcapFileReader::with_buffer_size(Cursor::new(&bytes[..cut]), "cut", 16)
                .map(|mut r| read_all_with(&mut r));
            if cut == 0 {
                assert!(
                    matches!(res, Err(CaptureError::Empty { .. })),
                    "cut 0: {res:?}"
                );
                continue;
            }
            if cut < header_end {
                assert!(
                    matches!(res, Err(CaptureError::Truncated { offset: 0, .. })),
                    "cut {cut}: {res:?}"
                );
                continue;
            }
            let (pkts, end) = res.unwrap_or_else(|e| panic!("cut {cut}: {e}"));
            let expect: Vec<Pkt> = full
                .iter()
                .filter(|p| {
                    let rec = records
                        .iter()
                        .find(|r| r.0 as u64 == p.file_offset)
                        .unwrap();
                    rec.1 <= cut
                })
                .cloned()
                .collect();
            assert_eq!(pkts, expect, "cut {cut}");
            match records.iter().find(|r| r.0 < cut && cut < r.1) {
                None => assert!(end.is_ok(), "cut {cut}: {end:?}"),
                Some(r) => match end {
                    Err(CaptureError::Truncated { offset, .. }) => {
                        assert_eq!(offset, r.0 as u64, "cut {cut}")
                    }
                    other => panic!("cut {cut}: {other:?}"),
                },
            }
        }
    }

    #[test]
    fn classic_truncation_at_every_offset() {
        let mut c = Classic::new(0xa1b2_3c4d, true, 65535, 1);
        c.record(1, 1, &payload(17, 1), 17);
        c.record(2, 2, &[], 0);
        c.record(3, 3, &payload(40, 2), 1500);
        let (full, end) = read_all(&c.out).unwrap();
        end.unwrap();
        assert_eq!(full.len(), 3);
        check_every_cut(&c.out, 24, &c.records, &full);
    }

    // ---- pcapng builder ----

    struct Ng {
        be: bool,
        out: Vec<u8>,
        /// (block start, block end) of every block after the first.
        blocks: Vec<(usize, usize)>,
    }

    fn opt(be: bool, code: u16, val: &[u8]) -> Vec<u8> {
        let mut o = Vec::new();
        let e = |v: u16| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        o.extend_from_slice(&e(code));
        o.extend_from_slice(&e(val.len() as u16));
        o.extend_from_slice(val);
        while o.len() % 4 != 0 {
            o.push(0);
        }
        o
    }

    impl Ng {
        fn new(be: bool) -> Self {
            let mut n = Ng {
                be,
                out: Vec::new(),
                blocks: Vec::new(),
            };
            n.shb(be);
            n.blocks.clear();
            n
        }
        fn w32(&self, v: u32) -> [u8; 4] {
            if self.be {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        }
        fn w16(&self, v: u16) -> [u8; 2] {
            if self.be {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        }
        fn block(&mut self, btype: u32, body: &[u8]) -> u64 {
            let start = self.out.len();
            let mut padded = body.to_vec();
            while padded.len() % 4 != 0 {
                padded.push(0);
            }
            let total = 12 + padded.len() as u32;
            let (t, l) = (self.w32(btype), self.w32(total));
            self.out.extend_from_slice(&t);
            self.out.extend_from_slice(&l);
            self.out.extend_from_slice(&padded);
            self.out.extend_from_slice(&l);
            self.blocks.push((start, self.out.len()));
            start as u64
        }
        fn shb(&mut self, be: bool) -> u64 {
            self.be = be;
            let mut body = Vec::new();
            body.extend_from_slice(&self.w32(NG_BYTE_ORDER_MAGIC));
            body.extend_from_slice(&self.w16(1));
            body.extend_from_slice(&self.w16(0));
            body.extend_from_slice(&[0xff; 8]); // section length unknown
            body.extend_from_slice(&opt(be, 4, b"vigil test")); // shb_userappl
            body.extend_from_slice(&opt(be, 0, b""));
            self.block(NG_SHB, &body)
        }
        fn idb(&mut self, link: u16, snaplen: u32, opts: &[(u16, &[u8])]) -> u64 {
            let mut body = Vec::new();
            body.extend_from_slice(&self.w16(link));
            body.extend_from_slice(&self.w16(0));
            body.extend_from_slice(&self.w32(snaplen));
            for (code, val) in opts {
                body.extend_from_slice(&opt(self.be, *code, val));
            }
            if !opts.is_empty() {
                body.extend_from_slice(&opt(self.be, 0, b""));
            }
            self.block(NG_IDB, &body)
        }
        fn epb(&mut self, iface: u32, ts: u64, data: &[u8], orig: u32) -> u64 {
            let mut body = Vec::new();
            body.extend_from_slice(&self.w32(iface));
            body.extend_from_slice(&self.w32((ts >> 32) as u32));
            body.extend_from_slice(&self.w32(ts as u32));
            body.extend_from_slice(&self.w32(data.len() as u32));
            body.extend_from_slice(&self.w32(orig));
            body.extend_from_slice(data);
            while body.len() % 4 != 0 {
                body.push(0);
            }
            body.extend_from_slice(&opt(self.be, 1, b"a comment"));
            body.extend_from_slice(&opt(self.be, 0, b""));
            self.block(NG_EPB, &body)
        }
        fn pb(&mut self, iface: u16, ts: u64, data: &[u8], orig: u32) -> u64 {
            let mut body = Vec::new();
            body.extend_from_slice(&self.w16(iface));
            body.extend_from_slice(&self.w16(0));
            body.extend_from_slice(&self.w32((ts >> 32) as u32));
            body.extend_from_slice(&self.w32(ts as u32));
            body.extend_from_slice(&self.w32(data.len() as u32));
            body.extend_from_slice(&self.w32(orig));
            body.extend_from_slice(data);
            self.block(NG_PB, &body)
        }
        fn spb(&mut self, orig: u32, data: &[u8]) -> u64 {
            let mut body = self.w32(orig).to_vec();
            body.extend_from_slice(data);
            self.block(NG_SPB, &body)
        }
    }

    const SEC: u64 = 1_000_000_000;

    /// Two interfaces with different link types and resolutions, and every
    /// packet block type mixed with blocks that must be skipped.
    fn two_interface_file(be: bool) -> (Ng, Vec<Pkt>) {
        let mut n = Ng::new(be);
        n.idb(1, 0, &[(2, b"eth0"), (9, &[9])]); // ns resolution
                                                 // 2^-10 s resolution, +100 s offset (option values are in section byte order).
        let offset = if be {
            100i64.to_be_bytes()
        } else {
            100i64.to_le_bytes()
        };
        n.idb(101, 64, &[(9, &[0x80 | 10]), (14, &offset)]);
        let mut want = Vec::new();
        let ts0 = 1_700_000_000 * SEC + 123_456_789;
        let o = n.epb(0, ts0, &payload(61, 1), 61);
        want.push(Pkt {
            ts_ns: ts0,
            data: payload(61, 1),
            orig_len: 61,
            link_type: 1,
            interface: 0,
            file_offset: o,
        });
        n.block(4, &[1, 2, 3, 4, 5, 6, 7, 8]); // NRB: skipped
        let ticks = (1_600_000_000u64 << 10) + 512; // x.5 s
        let o = n.epb(1, ticks, &payload(20, 2), 400);
        want.push(Pkt {
            ts_ns: 1_600_000_100 * SEC + SEC / 2,
            data: payload(20, 2),
            orig_len: 400,
            link_type: 101,
            interface: 1,
            file_offset: o,
        });
        n.block(5, &[0; 20]); // ISB: skipped
        n.block(0x4000_0BAD, b"custom!"); // custom block: skipped
                                          // SPB: interface 0 has snaplen 0, so captured = min(orig, room).
        let o = n.spb(70, &payload(70, 3));
        // SPBs carry no time: they take the previous packet's.
        want.push(Pkt {
            ts_ns: 1_600_000_100 * SEC + SEC / 2,
            data: payload(70, 3),
            orig_len: 70,
            link_type: 1,
            interface: 0,
            file_offset: o,
        });
        let o = n.spb(3, &payload(8, 4)); // room 8 (padding), orig 3
        want.push(Pkt {
            ts_ns: 1_600_000_100 * SEC + SEC / 2,
            data: payload(3, 4),
            orig_len: 3,
            link_type: 1,
            interface: 0,
            file_offset: o,
        });
        let o = n.pb(1, 1024, &payload(5, 5), 5);
        want.push(Pkt {
            ts_ns: 101 * SEC,
            data: payload(5, 5),
            orig_len: 5,
            link_type: 101,
            interface: 1,
            file_offset: o,
        });
        (n, want)
    }

    #[test]
    fn pcapng_two_interfaces_and_block_types() {
        for be in [false, true] {
            let (n, want) = two_interface_file(be);
            let r = PcapFileReader::from_reader(Cursor::new(&n.out), "x.pcapng").unwrap();
            assert_eq!(r.format(), PcapFormat::PcapNg);
            let (pkts, end) = read_all_every_way(&n.out).unwrap();
            end.unwrap();
            assert_eq!(pkts, want, "be {be}");
        }
    }

    #[test]
    fn pcapng_spb_honours_snaplen() {
        let mut n = Ng::new(false);
        n.idb(1, 10, &[]);
        n.spb(100, &payload(100, 0));
        let (pkts, end) = read_all(&n.out).unwrap();
        end.unwrap();
        assert_eq!((pkts[0].data.len(), pkts[0].orig_len), (10, 100));
    }

    #[test]
    fn pcapng_multi_section_byte_order_change() {
        let mut n = Ng::new(false);
        n.idb(1, 0, &[]);
        n.idb(105, 0, &[]);
        n.epb(1, 5_000_000, &payload(9, 1), 9); // default µs resolution
        n.shb(true);
        n.idb(113, 0, &[(9, &[3])]); // ms
        let o = n.epb(0, 7_250, &payload(9, 2), 9);
        let bad = n.epb(1, 1, &payload(9, 3), 9); // interface 1 was in the previous section
        let (pkts, end) = read_all_every_way(&n.out).unwrap();
        assert_eq!(pkts.len(), 2);
        assert_eq!(
            (pkts[0].ts_ns, pkts[0].link_type, pkts[0].interface),
            (5 * SEC, 105, 1)
        );
        assert_eq!(
            (
                pkts[1].ts_ns,
                pkts[1].link_type,
                pkts[1].interface,
                pkts[1].file_offset
            ),
            (7_250_000_000, 113, 0, o)
        );
        match end {
            Err(CaptureError::Corrupt { offset, reason, .. }) => {
                assert_eq!(offset, bad);
                assert!(reason.contains("interface 1"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pcapng_truncation_at_every_offset() {
        let (n, full) = two_interface_file(true);
        let header_end = n.out.len() - n.blocks.iter().map(|b| b.1 - b.0).sum::<usize>();
        check_every_cut(&n.out, header_end, &n.blocks, &full);
        let mut c = Ng::new(false);
        c.idb(1, 0, &[]);
        c.epb(0, 1, b"x", 1);
        c.shb(true);
        c.idb(1, 0, &[]);
        c.epb(0, 2, b"yz", 2);
        let (full, end) = read_all(&c.out).unwrap();
        end.unwrap();
        let shb_len = Ng::new(false).out.len();
        check_every_cut(&c.out, shb_len, &c.blocks, &full);
    }

    fn expect_corrupt(bytes: &[u8], at: u64, npkts: usize) -> String {
        let (pkts, end) = read_all(bytes).unwrap();
        assert_eq!(pkts.len(), npkts);
        match end {
            Err(e @ CaptureError::Corrupt { offset, .. }) => {
                assert_eq!(offset, at, "{e}");
                e.to_string()
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pcapng_corrupt_block_lengths() {
        let mut base = Ng::new(false);
        base.idb(1, 0, &[]);
        base.epb(0, 1, b"abcd", 4);
        let at = base.epb(0, 2, b"efgh", 4);
        base.epb(0, 3, b"ijkl", 4);
        let a = at as usize;
        let set =
            |b: &mut Vec<u8>, pos: usize, v: u32| b[pos..pos + 4].copy_from_slice(&v.to_le_bytes());
        let len = u32::from_le_bytes(base.out[a + 4..a + 8].try_into().unwrap());

        for bad_len in [len + 1, len + 2, 8, 0, 0xffff_fff0] {
            let mut b = base.out.clone();
            set(&mut b, a + 4, bad_len);
            let msg = expect_corrupt(&b, at, 1);
            assert!(msg.contains("corrupt at byte offset"), "{msg}");
        }
        // Leading length valid but disagreeing with the trailing copy.
        let mut b = base.out.clone();
        set(&mut b, a + 4, len + 4);
        expect_corrupt(&b, at, 1);
        // Captured length larger than the block.
        let mut b = base.out.clone();
        set(&mut b, a + 20, 1000);
        expect_corrupt(&b, at, 1);
        // EPB before any IDB.
        let mut n = Ng::new(false);
        let at = n.epb(0, 1, b"x", 1);
        expect_corrupt(&n.out, at, 0);
        // Bad byte-order magic in a later section.
        let mut n = Ng::new(false);
        let at = n.shb(false);
        n.out[at as usize + 8] ^= 0xff;
        expect_corrupt(&n.out, at, 0);
        // First SHB with bad length.
        let mut n = Ng::new(false);
        n.out[4] = 13;
        assert!(matches!(
            read_all(&n.out),
            Err(CaptureError::Corrupt { offset: 0, .. })
        ));
    }

    #[test]
    fn not_pcap_and_empty() {
        let e = read_all(b"GET / HTTP/1.1\r\n\r\n").unwrap_err();
        assert!(
            matches!(
                e,
                CaptureError::NotPcap {
                    magic: 0x4745_5420,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "mem: not a pcap or pcapng file (magic 0x47455420)"
        );
        assert!(matches!(read_all(b""), Err(CaptureError::Empty { .. })));
        assert!(matches!(
            read_all(&[0xd4, 0xc3]),
            Err(CaptureError::Truncated { offset: 0, .. })
        ));
        // Header only: valid, no packets.
        let c = Classic::new(0xa1b2_c3d4, false, 65535, 1);
        let (pkts, end) = read_all(&c.out).unwrap();
        assert!(pkts.is_empty() && end.is_ok());
    }

    #[test]
    fn io_error_and_open() {
        struct Fail;
        impl Read for Fail {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let e = PcapFileReader::from_reader(Fail, "f").err().unwrap();
        assert_eq!(e.to_string(), "f: disk on fire");
        let e = PcapFileReader::open(Path::new("/nonexistent/x.pcap"))
            .err()
            .unwrap();
        assert!(matches!(e, CaptureError::Io { .. }));
        assert!(e.to_string().starts_with("/nonexistent/x.pcap: "));
    }

    #[test]
    fn ts_units() {
        assert_eq!(TsUnit::from_tsresol(6), Some(TsUnit::Mul(1000)));
        assert_eq!(TsUnit::from_tsresol(12).unwrap().to_ns(5_000), 5);
        assert_eq!(
            TsUnit::from_tsresol(0x80 | 20).unwrap().to_ns(3 << 19),
            SEC * 3 / 2
        );
        assert_eq!(TsUnit::from_tsresol(0).unwrap().to_ns(u64::MAX), u64::MAX);
        assert_eq!(TsUnit::from_tsresol(0xff).unwrap().to_ns(u64::MAX), 0);
        assert_eq!(TsUnit::from_tsresol(29), None);
        let neg = Interface {
            link_type: 1,
            snaplen: 0,
            unit: TsUnit::Mul(1),
            offset_s: -10,
        };
        assert_eq!(neg.ts_ns(0, 5), 0);
        let t = 11 * SEC;
        assert_eq!(neg.ts_ns((t >> 32) as u32, t as u32), SEC);
    }

    /// Every file of the robustness corpus (some deliberately damaged) must end
    /// in a packet stream, a clean end or an error: no panic, no endless loop.
    #[test]
    fn odd_pcaps_corpus() {
        let dir = Path::new("/work/shared/corpus/odd-pcaps");
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut opened = 0;
        for entry in entries {
            let path = entry.unwrap().path();
            let size = std::fs::metadata(&path).unwrap().len();
            let Ok(mut r) = PcapFileReader::open(&path) else {
                continue;
            };
            opened += 1;
            let mut n = 0u64;
            while let Ok(Some(p)) = r.next_packet() {
                n += 1;
                assert!(p.file_offset < size);
                // Each record takes at least 12 bytes, so this bounds the loop.
                assert!(n <= size / 12, "{}", path.display());
            }
            assert!(r.bytes_consumed() <= size);
        }
        assert!(opened > 0 || !dir.exists());
    }

    /// Throughput: `cargo test --release -p vigil --lib capture -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn bench_throughput() {
        use std::io::Write;
        use std::time::Instant;
        const PACKETS: u32 = 220_000;
        let len_of = |i: u32| 800 + (i % 200) as usize;
        let dir = std::env::temp_dir();
        let classic = dir.join("vigil-capture-bench.pcap");
        if std::fs::metadata(&classic).map(|m| m.len()).unwrap_or(0) < 190_000_000 {
            let mut w = io::BufWriter::new(File::create(&classic).unwrap());
            let mut c = Classic::new(0xa1b2_c3d4, false, 65535, 1);
            w.write_all(&c.out).unwrap();
            for i in 0..PACKETS {
                c.out.clear();
                let d = payload(len_of(i), i as u8);
                c.record(1_700_000_000 + i / 1000, i % 1_000_000, &d, d.len() as u32);
                w.write_all(&c.out).unwrap();
            }
            w.flush().unwrap();
        }
        let ng = dir.join("vigil-capture-bench.pcapng");
        if std::fs::metadata(&ng).map(|m| m.len()).unwrap_or(0) < 190_000_000 {
            let mut w = io::BufWriter::new(File::create(&ng).unwrap());
            let mut n = Ng::new(false);
            n.idb(1, 0, &[(9, &[9])]);
            n.idb(101, 0, &[]);
            w.write_all(&n.out).unwrap();
            for i in 0..PACKETS {
                n.out.clear();
                let d = payload(len_of(i), i as u8);
                n.epb(i % 2, u64::from(i) * 1000, &d, d.len() as u32);
                w.write_all(&n.out).unwrap();
            }
            w.flush().unwrap();
        }
        for path in [classic, ng] {
            let size = std::fs::metadata(&path).unwrap().len();
            for _ in 0..3 {
                let t = Instant::now();
                let mut r = PcapFileReader::open(&path).unwrap();
                let (mut sum, mut n) = (0usize, 0u64);
                while let Some(p) = r.next_packet().unwrap() {
                    sum += p.data.len();
                    n += 1;
                }
                let secs = t.elapsed().as_secs_f64();
                assert_eq!(n, u64::from(PACKETS));
                println!(
                    "{}: {n} packets, {sum} data bytes, {size} file bytes in {secs:.3}s: \
                     {:.0} MB/s, {:.1} Gbit/s, {:.2} Mpps",
                    path.display(),
                    size as f64 / secs / 1e6,
                    size as f64 * 8.0 / secs / 1e9,
                    n as f64 / secs / 1e6
                );
            }
        }
    }
}
