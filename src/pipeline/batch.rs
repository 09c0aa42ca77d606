//! What travels from the reader to a worker.

use std::sync::Arc;

use vigil_parsers::DecodedPacket;

use crate::capture::Chunk;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotKind {
    /// A flow-bound packet (its bytes are in the batch's data).
    Packet,
    /// A packet that belongs to no flow but carries anomalies to report (bytes not kept).
    AnomalyOnly,
    /// Packet time reached `ts_ns` (a whole second): expire idle flows. Every worker receives
    /// every tick, in order with its packets, so expiry is the same for any number of workers.
    Tick,
}

#[derive(Debug, Clone, Copy)]
pub struct Slot {
    pub kind: SlotKind,
    pub ts_ns: u64,
    /// 1-based position of the (last) frame in the whole input.
    pub pcap_cnt: u64,
    pub file_index: u32,
    /// pcap link type of the bytes (228/229 for a reassembled datagram's raw IP).
    pub link: u32,
    /// Where the packet's bytes are: `batch.chunks[chunk]` (a capture read chunk, shared without
    /// copying) or, for `OWNED`, `batch.data` (a reassembled datagram, from its IP header on).
    pub chunk: u16,
    pub data_start: u32,
    pub data_len: u32,
    /// Bytes on the wire this packet stands for (all fragments of a reassembled datagram).
    pub wire_bytes: u64,
    pub decoded: DecodedPacket,
}

impl Slot {
    /// `chunk` value of a slot whose bytes are in the batch's own `data`.
    pub const OWNED: u16 = u16::MAX;
}

/// A batch of slots and the bytes they refer to. Reused: `clear` keeps the capacity.
#[derive(Debug, Default)]
pub struct Batch {
    /// Bytes copied into the batch (reassembled datagrams, sources without shared chunks).
    pub data: Vec<u8>,
    /// Capture read chunks the slots point into; held until the batch is cleared.
    pub chunks: Vec<Arc<Chunk>>,
    pub slots: Vec<Slot>,
}

impl Batch {
    pub fn with_capacity(slots: usize, bytes: usize) -> Batch {
        Batch {
            data: Vec::with_capacity(bytes),
            chunks: Vec::with_capacity(8),
            slots: Vec::with_capacity(slots),
        }
    }

    pub fn clear(&mut self) {
        self.data.clear();
        self.chunks.clear();
        self.slots.clear();
    }

    pub fn packet_bytes(&self, slot: &Slot) -> &[u8] {
        let start = slot.data_start as usize;
        let end = start + slot.data_len as usize;
        match self.chunks.get(usize::from(slot.chunk)) {
            Some(chunk) => &chunk[start..end],
            None => &self.data[start..end],
        }
    }
}

/// Where a frame's bytes come from when it is handed to the dispatcher.
#[derive(Debug, Clone, Copy)]
pub enum FrameBytes<'a> {
    /// Inside a shared read chunk at this offset: the batch keeps the chunk, no copy.
    Shared(&'a Arc<Chunk>, usize),
    /// Only borrowed: copied into the batch.
    Borrowed,
}

impl Batch {
    /// Appends a slot for `bytes`, sharing the chunk they lie in when there is one.
    pub fn push(&mut self, mut slot: Slot, bytes: &[u8], source: FrameBytes<'_>) {
        slot.data_len = bytes.len() as u32;
        match source {
            FrameBytes::Shared(chunk, offset)
                if !bytes.is_empty() && self.chunks.len() < usize::from(Slot::OWNED) =>
            {
                if !self.chunks.last().is_some_and(|c| Arc::ptr_eq(c, chunk)) {
                    self.chunks.push(Arc::clone(chunk));
                }
                slot.chunk = (self.chunks.len() - 1) as u16;
                slot.data_start = offset as u32;
            }
            _ => {
                slot.chunk = Slot::OWNED;
                slot.data_start = self.data.len() as u32;
                self.data.extend_from_slice(bytes);
            }
        }
        self.slots.push(slot);
    }
}
