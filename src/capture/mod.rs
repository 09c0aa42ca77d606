//! Packet sources.
//!
//! Currently only offline capture files ([`PcapFileReader`]); every error names
//! the file and, for damaged content, the byte offset of the damaged record so
//! an operator can inspect it with a hex dump.

pub mod pcap_file;

pub use pcap_file::{PcapFileReader, PcapFormat, RawPacket};

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
