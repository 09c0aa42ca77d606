//! Pure protocol decoding for Vigil.
//!
//! Nothing here does I/O, reads a clock or logs on the packet path: callers hand in bytes and
//! packet timestamps, and get back fixed-size views. No function panics on packet bytes.

pub mod app;
pub mod calendar;
pub mod decode;
pub mod defrag;
pub mod packet;
pub mod stream;
pub mod text;

pub use decode::{decode, decode_ip, LinkType, ETHER_8023_LENGTH_FRAME, MAX_TUNNEL_DEPTH};
pub use defrag::{DefragConfig, DefragOutcome, DefragStats, Defragmenter};
pub use packet::*;

#[cfg(test)]
mod decode_tests;
#[cfg(test)]
mod defrag_tests;
#[cfg(test)]
mod testutil;
