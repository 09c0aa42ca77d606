//! Packet sources.
//!
//! Offline capture files ([`PcapFileReader`]) are read by one reader thread and hashed to
//! workers. Live sources implement [`LiveSource`]: each worker owns one source per interface
//! (an AF_PACKET fanout socket, an AF_XDP socket bound to one NIC queue, or a libpcap handle)
//! and processes what it receives in its own thread.
//!
//! File errors name the file and, for damaged content, the byte offset of the damaged record so
//! an operator can inspect it with a hex dump.

pub mod af_packet;
pub mod af_xdp;
pub mod interfaces;
pub mod libpcap;
pub mod pcap_file;

pub use pcap_file::{Chunk, PcapFileReader, PcapFormat, RawPacket};

use std::time::Duration;

use vigil_parsers::LinkType;

/// One received frame, borrowed from the source's ring until the callback returns.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Receive time, nanoseconds since the Unix epoch (kernel timestamp where there is one).
    pub ts_ns: u64,
    /// Captured bytes (at most the snap length).
    pub data: &'a [u8],
    /// Length on the wire, which may exceed `data.len()` when the snap length cut the frame.
    pub wire_len: u32,
}

/// Cumulative counters of one live source since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceCounters {
    /// Frames handed to the worker.
    pub packets: u64,
    /// Their bytes on the wire.
    pub bytes: u64,
    /// Frames the kernel (or NIC ring) dropped because this socket's ring was full: packets the
    /// sensor never saw. Loss = drops / (packets + drops), the same formula for every source.
    pub drops: u64,
}

/// A live packet source owned by one worker thread.
pub trait LiveSource: Send {
    /// Link type of every frame from this source.
    fn link_type(&self) -> LinkType;

    /// Waits at most `timeout` for frames and hands each one to `on_frame`, in arrival order.
    /// Returns how many frames were handed over (0 when the wait timed out). A source returns
    /// a batch at a time (a TPACKET_V3 block, a batch of RX descriptors), not one frame.
    fn next_batch(
        &mut self,
        timeout: Duration,
        on_frame: &mut dyn FnMut(Frame<'_>),
    ) -> Result<usize, LiveError>;

    /// Counters since the source was opened (kernel drop counters are read, not reset).
    fn counters(&mut self) -> SourceCounters;

    /// Names the source in logs and metrics: interface and, where it has one, the queue.
    fn label(&self) -> &str;
}

/// Why a live source failed to open or stopped.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("interface {iface}: no such interface")]
    NoSuchInterface { iface: String },
    #[error("interface {iface}: {what}: {source}")]
    Io {
        iface: String,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("interface {iface}: {reason}")]
    Other { iface: String, reason: String },
    /// The interface went away or down; the daemon retries opening it.
    #[error("interface {iface} is down")]
    Down { iface: String },
}

/// Why a capture source failed. `path` is the name given when opening.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// `magic` is the first four bytes read big-endian, i.e. in file order as a hex dump shows them.
    #[error("{path}: not a pcap or pcapng file (magic {magic:#010x})")]
    NotPcap { path: String, magic: u32 },
    #[error("{path}: corrupt at byte offset {offset}: {reason}")]
    Corrupt {
        path: String,
        offset: u64,
        reason: String,
    },
    #[error("{path}: truncated at byte offset {offset}: {reason}")]
    Truncated {
        path: String,
        offset: u64,
        reason: String,
    },
    #[error("{path}: empty file")]
    Empty { path: String },
}
