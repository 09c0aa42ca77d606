//! What travels from the reader to a worker.

use vigil_parsers::DecodedPacket;

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
    /// The packet's bytes: `batch.data[data_start..data_start + data_len]`. For a reassembled
    /// datagram, the datagram from its IP header on.
    pub data_start: u32,
    pub data_len: u32,
    /// Bytes on the wire this packet stands for (all fragments of a reassembled datagram).
    pub wire_bytes: u64,
    pub decoded: DecodedPacket,
}

/// A batch of slots and the bytes they refer to. Reused: `clear` keeps the capacity.
#[derive(Debug, Default)]
pub struct Batch {
    pub data: Vec<u8>,
    pub slots: Vec<Slot>,
}

impl Batch {
    pub fn with_capacity(slots: usize, bytes: usize) -> Batch {
        Batch {
            data: Vec::with_capacity(bytes),
            slots: Vec::with_capacity(slots),
        }
    }

    pub fn clear(&mut self) {
        self.data.clear();
        self.slots.clear();
    }

    pub fn packet_bytes(&self, slot: &Slot) -> &[u8] {
        let start = slot.data_start as usize;
        &self.data[start..start + slot.data_len as usize]
    }
}
