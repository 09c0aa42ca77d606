//! Between capture and workers: decode, defragment, hash, and hand packets to workers in batches.
//!
//! Decoding and defragmentation happen here, before the hash, because only a reassembled
//! datagram has the ports a 5-tuple hash needs: fragments of one datagram, and the flow they
//! belong to, must meet in the same worker.
//!
//! Replay runs one dispatcher on the reader thread, sending batches over rings to N worker
//! threads ([`ChannelSink`]). A live worker runs its own dispatcher over the packets its socket
//! received and processes each batch in place ([`BatchSink`] implemented by the live worker).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::Thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use vigil_parsers::{
    decode, decode_ip, DecodedPacket, DefragConfig, DefragOutcome, DefragStats, Defragmenter,
    LinkType, PacketKind, TunnelKind, L4,
};

use super::batch::{Batch, FrameBytes, Slot, SlotKind};
use crate::flow::dispatch_hash;
use crate::stats::DecoderStats;

const NS_PER_SEC: u64 = 1_000_000_000;
/// Copy space a new batch starts with; it grows (and keeps its size when recycled) if needed.
const INITIAL_COPY_BYTES: usize = 16 * 1024;

/// Where full batches go.
pub trait BatchSink {
    /// Number of workers packets are spread over.
    fn workers(&self) -> usize;
    /// Takes a full batch for `worker` and gives back an empty one to fill next.
    fn deliver(&mut self, worker: usize, full: Batch) -> Result<Batch, WorkerGone>;
}

/// How a full ring and its reader meet: the reader parks until the worker has taken half of
/// the ring, then refills it in one go. Blocking in the channel's `send` instead has the worker
/// wake the reader after every batch it takes, a cross-core wake-up that took ~2 % of a worker's
/// time with ET Open on this VM class (~900 per 200 MB replayed); now one per half ring.
pub struct RingSpace {
    reader_waiting: AtomicBool,
    reader: Thread,
    wake_at: usize,
}

impl RingSpace {
    /// For a ring of `capacity` batches filled by the calling thread.
    pub fn new(capacity: usize) -> Arc<RingSpace> {
        Arc::new(RingSpace {
            reader_waiting: AtomicBool::new(false),
            reader: std::thread::current(),
            wake_at: capacity / 2,
        })
    }

    /// The worker took a batch and `left` remain in the ring.
    pub fn taken(&self, left: usize) {
        if left <= self.wake_at && self.reader_waiting.swap(false, Ordering::AcqRel) {
            self.reader.unpark();
        }
    }

    fn send(&self, tx: &Sender<Batch>, mut batch: Batch) -> Result<(), ()> {
        loop {
            match tx.try_send(batch) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Disconnected(_)) => return Err(()),
                Err(TrySendError::Full(back)) => batch = back,
            }
            self.reader_waiting.store(true, Ordering::SeqCst);
            // The worker may have drained the ring before it could see the flag; the timeout
            // also covers a worker that ended without taking more.
            if tx.len() > self.wake_at {
                std::thread::park_timeout(Duration::from_millis(2));
            }
        }
    }
}

/// Worker threads behind bounded rings; emptied batches come back on `recycled`.
pub struct ChannelSink {
    rings: Vec<(Sender<Batch>, Arc<RingSpace>)>,
    recycled: Receiver<Batch>,
    batch_packets: usize,
}

impl ChannelSink {
    /// `rings`: each worker's ring and the [`RingSpace`] its worker reports to.
    pub fn new(
        rings: Vec<(Sender<Batch>, Arc<RingSpace>)>,
        recycled: Receiver<Batch>,
        batch_packets: usize,
    ) -> ChannelSink {
        ChannelSink {
            rings,
            recycled,
            batch_packets,
        }
    }
}

impl BatchSink for ChannelSink {
    fn workers(&self) -> usize {
        self.rings.len()
    }

    fn deliver(&mut self, worker: usize, full: Batch) -> Result<Batch, WorkerGone> {
        let (tx, space) = &self.rings[worker];
        space.send(tx, full).map_err(|()| WorkerGone(worker))?;
        Ok(match self.recycled.try_recv() {
            Ok(mut b) => {
                b.clear();
                b
            }
            Err(_) => Batch::with_capacity(self.batch_packets, INITIAL_COPY_BYTES),
        })
    }
}

/// What a dispatcher counted, at the end of its input.
#[derive(Debug, Clone, Default)]
pub struct DispatchSummary {
    pub decoder: DecoderStats,
    pub defrag: DefragStats,
    pub first_ts_ns: u64,
    pub last_ts_ns: u64,
}

pub struct Dispatcher<S: BatchSink> {
    sink: S,
    pending: Vec<Batch>,
    batch_packets: usize,
    batch_bytes: usize,
    defrag: Defragmenter,
    scratch: DecodedPacket,
    stats: DecoderStats,
    next_tick_ns: Option<u64>,
    pcap_cnt: u64,
    /// pcap link type of the frame being dispatched.
    link: u32,
    first_ts_ns: Option<u64>,
    last_ts_ns: u64,
    /// Addresses of the read chunk packets came from last, and of the one before it.
    chunk_now: usize,
    chunk_before: usize,
}

/// A worker went away (it panicked or its channel closed): the run cannot continue.
#[derive(Debug, thiserror::Error)]
#[error("worker {0} stopped accepting packets")]
pub struct WorkerGone(pub usize);

impl<S: BatchSink> Dispatcher<S> {
    pub fn new(sink: S, batch_packets: usize, defrag: DefragConfig) -> Dispatcher<S> {
        // Copied bytes only (reassembled datagrams); captured frames stay in shared chunks.
        let batch_bytes = 256 * 1024;
        let pending = (0..sink.workers())
            .map(|_| Batch::with_capacity(batch_packets, INITIAL_COPY_BYTES))
            .collect();
        Dispatcher {
            sink,
            pending,
            batch_packets,
            batch_bytes,
            defrag: Defragmenter::new(defrag),
            scratch: DecodedPacket::default(),
            link: 0,
            stats: DecoderStats::default(),
            next_tick_ns: None,
            pcap_cnt: 0,
            first_ts_ns: None,
            last_ts_ns: 0,
            chunk_now: 0,
            chunk_before: 0,
        }
    }

    /// Takes one captured frame; `source` says whether its bytes can be shared or must be copied.
    pub fn dispatch(
        &mut self,
        ts_ns: u64,
        frame: &[u8],
        source: FrameBytes<'_>,
        link: LinkType,
        file_index: u32,
    ) -> Result<(), WorkerGone> {
        self.pcap_cnt += 1;
        self.link = link.pcap_number();
        self.first_ts_ns.get_or_insert(ts_ns);
        self.last_ts_ns = self.last_ts_ns.max(ts_ns);
        self.tick(ts_ns)?;
        if let FrameBytes::Shared(chunk, _) = source {
            self.on_chunk(Arc::as_ptr(chunk) as usize)?;
        }

        let mut pkt = std::mem::take(&mut self.scratch);
        decode(link, frame, &mut pkt);
        self.stats.count(link, frame.len() as u64, &pkt);

        // The carrier counts whatever its tunnel holds (ARP too, or an undecodable payload).
        let carrier = if pkt.is_fragment() {
            Ok(())
        } else {
            self.push_carrier(ts_ns, file_index, frame.len() as u64, &pkt)
        };
        let result = if carrier.is_err() {
            carrier
        } else if pkt.is_fragment() {
            self.dispatch_fragment(ts_ns, frame, &mut pkt, file_index)
        } else if pkt.kind == PacketKind::Ip {
            self.push(
                SlotKind::Packet,
                ts_ns,
                file_index,
                (frame, source),
                frame.len() as u64,
                &pkt,
            )
        } else if pkt.anomaly_count > 0 {
            self.push(
                SlotKind::AnomalyOnly,
                ts_ns,
                file_index,
                (&[], FrameBytes::Borrowed),
                frame.len() as u64,
                &pkt,
            )
        } else {
            Ok(())
        };
        self.scratch = pkt;
        result
    }

    fn dispatch_fragment(
        &mut self,
        ts_ns: u64,
        frame: &[u8],
        pkt: &mut DecodedPacket,
        file_index: u32,
    ) -> Result<(), WorkerGone> {
        let before = pkt.anomaly_count as usize;
        let outcome = self.defrag.process(ts_ns, pkt, frame);
        // Overlaps and oversize datagrams are found by the defragmenter, after `count`.
        for a in pkt.anomalies().skip(before) {
            self.stats.count_event(a.event);
        }
        match outcome {
            DefragOutcome::Reassembled {
                datagram,
                frame_bytes,
                ..
            } => {
                let mut whole = *pkt;
                decode_ip(datagram, &mut whole);
                // The fragment's anomalies stay reported; the datagram's own are counted now.
                for a in pkt.anomalies() {
                    if !whole.anomalies().any(|b| b == a) {
                        whole.push_anomaly(a.layer, a.event);
                    }
                }
                for a in whole.anomalies() {
                    if !pkt.anomalies().any(|b| b == a) {
                        self.stats.count_event(a.event);
                    }
                }
                let (slots, bytes) = (&mut self.pending, datagram);
                let worker = worker_for(&whole, slots.len());
                push_slot(
                    &mut slots[worker],
                    SlotKind::Packet,
                    ts_ns,
                    self.pcap_cnt,
                    // The datagram's bytes start at its IP header.
                    (file_index, if whole.l3.version == 4 { 228 } else { 229 }),
                    (bytes, FrameBytes::Borrowed),
                    frame_bytes,
                    &whole,
                );
                self.flush_if_full(worker)?;
                self.push_carrier(ts_ns, file_index, frame_bytes, &whole)
            }
            DefragOutcome::Held | DefragOutcome::Dropped => {
                if pkt.anomaly_count > 0 {
                    self.push(
                        SlotKind::AnomalyOnly,
                        ts_ns,
                        file_index,
                        (&[], FrameBytes::Borrowed),
                        frame.len() as u64,
                        pkt,
                    )
                } else {
                    Ok(())
                }
            }
        }
    }

    fn push(
        &mut self,
        kind: SlotKind,
        ts_ns: u64,
        file_index: u32,
        bytes: (&[u8], FrameBytes<'_>),
        wire_bytes: u64,
        pkt: &DecodedPacket,
    ) -> Result<(), WorkerGone> {
        let worker = worker_for(pkt, self.pending.len());
        push_slot(
            &mut self.pending[worker],
            kind,
            ts_ns,
            self.pcap_cnt,
            (file_index, self.link),
            bytes,
            wire_bytes,
            pkt,
        );
        self.flush_if_full(worker)
    }

    /// A packet that came in a UDP tunnel (VXLAN, Geneve, Teredo) also counts toward the flow of
    /// the tunnel itself, as Suricata logs it: that flow is hashed on its own 5-tuple, so it
    /// stays in one worker whichever inner flows it carries.
    fn push_carrier(
        &mut self,
        ts_ns: u64,
        file_index: u32,
        wire_bytes: u64,
        pkt: &DecodedPacket,
    ) -> Result<(), WorkerGone> {
        match carrier_packet(pkt) {
            Some(outer) => self.push(
                SlotKind::Packet,
                ts_ns,
                file_index,
                (&[], FrameBytes::Borrowed),
                wire_bytes,
                &outer,
            ),
            None => Ok(()),
        }
    }

    /// The reader moved on to another read chunk. A pending batch that still holds one older
    /// than the previous chunk goes out now: a worker that receives few packets would otherwise
    /// keep a whole chunk (and a whole small capture file, one after another) alive per packet.
    fn on_chunk(&mut self, chunk: usize) -> Result<(), WorkerGone> {
        if chunk == self.chunk_now {
            return Ok(());
        }
        self.chunk_before = std::mem::replace(&mut self.chunk_now, chunk);
        let keep = [self.chunk_before, self.chunk_now];
        for worker in 0..self.pending.len() {
            let stale = self.pending[worker]
                .chunks
                .iter()
                .any(|c| !keep.contains(&(Arc::as_ptr(c) as usize)));
            if stale {
                self.flush(worker)?;
            }
        }
        Ok(())
    }

    /// On each new second of packet time, every worker gets a tick in order with its packets.
    /// A jump over many seconds is one tick: expiry compares times, it does not count ticks.
    fn tick(&mut self, ts_ns: u64) -> Result<(), WorkerGone> {
        let second = ts_ns - ts_ns % NS_PER_SEC;
        match self.next_tick_ns {
            None => self.next_tick_ns = Some(second + NS_PER_SEC),
            Some(next) if ts_ns >= next => {
                self.next_tick_ns = Some(second + NS_PER_SEC);
                self.defrag.expire(second);
                let tick = DecodedPacket::default();
                for worker in 0..self.pending.len() {
                    push_slot(
                        &mut self.pending[worker],
                        SlotKind::Tick,
                        second,
                        self.pcap_cnt,
                        (0, 0),
                        (&[], FrameBytes::Borrowed),
                        0,
                        &tick,
                    );
                    self.flush_if_full(worker)?;
                }
            }
            Some(_) => {}
        }
        Ok(())
    }

    fn flush_if_full(&mut self, worker: usize) -> Result<(), WorkerGone> {
        let batch = &self.pending[worker];
        if batch.slots.len() >= self.batch_packets || batch.data.len() >= self.batch_bytes {
            self.flush(worker)?;
        }
        Ok(())
    }

    fn flush(&mut self, worker: usize) -> Result<(), WorkerGone> {
        if self.pending[worker].slots.is_empty() {
            return Ok(());
        }
        let full = std::mem::take(&mut self.pending[worker]);
        self.pending[worker] = self.sink.deliver(worker, full)?;
        Ok(())
    }

    /// Hands every partly filled batch over now (a live source's read ended; do not wait).
    pub fn flush_all(&mut self) -> Result<(), WorkerGone> {
        for worker in 0..self.pending.len() {
            self.flush(worker)?;
        }
        Ok(())
    }

    /// Time passes without packets (a quiet live interface): idle flows and fragments still
    /// expire. `now_ns` must come from the same clock as the packets' timestamps.
    pub fn advance_clock(&mut self, now_ns: u64) -> Result<(), WorkerGone> {
        if now_ns > self.last_ts_ns {
            self.tick(now_ns)?;
        }
        self.flush_all()
    }

    /// Counters so far (the live daemon's periodic stats).
    pub fn summary(&self) -> DispatchSummary {
        DispatchSummary {
            decoder: self.stats.clone(),
            defrag: self.defrag.stats(),
            first_ts_ns: self.first_ts_ns.unwrap_or(0),
            last_ts_ns: self.last_ts_ns,
        }
    }

    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    /// Hands over what is pending; returns the counters and the sink (dropping a
    /// [`ChannelSink`] closes the workers' rings).
    pub fn finish(mut self) -> Result<(DispatchSummary, S), WorkerGone> {
        self.flush_all()?;
        let summary = self.summary();
        Ok((summary, self.sink))
    }

    pub fn packets(&self) -> u64 {
        self.pcap_cnt
    }
}

/// The outermost UDP packet of a packet that came in a UDP tunnel (VXLAN, Geneve, Teredo, and
/// whatever is nested in them), as a flow-bound packet of its own (no bytes: the inner packet
/// carries them). GRE and IP-in-IP carriers have no ports and, as in Suricata, no flow of their
/// own.
fn carrier_packet(pkt: &DecodedPacket) -> Option<DecodedPacket> {
    let t = &pkt.tunnel;
    // `outer_*` describe the outermost tunnel layer, whatever is nested inside it.
    if t.kind == TunnelKind::None || t.outer_proto != 17 {
        return None;
    }
    let mut outer = DecodedPacket {
        kind: PacketKind::Ip,
        vlans: pkt.vlans,
        vlan_count: pkt.vlan_count,
        mpls_labels: pkt.mpls_labels,
        ..DecodedPacket::default()
    };
    outer.l3.version = if t.outer_src.is_ipv4() { 4 } else { 6 };
    outer.l3.src = t.outer_src;
    outer.l3.dst = t.outer_dst;
    outer.l3.proto = 17;
    outer.l4 = L4::Udp {
        src_port: t.outer_src_port,
        dst_port: t.outer_dst_port,
    };
    Some(outer)
}

/// Which worker owns this packet's flow. Non-IP packets (only anomalies to report) go to worker 0.
fn worker_for(pkt: &DecodedPacket, workers: usize) -> usize {
    if workers == 1 {
        return 0;
    }
    match dispatch_hash(pkt) {
        Some(hash) => (hash % workers as u64) as usize,
        None => 0,
    }
}

#[allow(clippy::too_many_arguments)]
fn push_slot(
    batch: &mut Batch,
    kind: SlotKind,
    ts_ns: u64,
    pcap_cnt: u64,
    (file_index, link): (u32, u32),
    (bytes, source): (&[u8], FrameBytes<'_>),
    wire_bytes: u64,
    pkt: &DecodedPacket,
) {
    let slot = Slot {
        kind,
        ts_ns,
        pcap_cnt,
        file_index,
        link,
        chunk: Slot::OWNED,
        data_start: 0,
        data_len: 0,
        wire_bytes,
        decoded: *pkt,
    };
    batch.push(slot, bytes, source);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_ring_parks_the_reader_until_half_is_taken_and_loses_no_batch() {
        let (tx, rx) = crossbeam_channel::bounded::<Batch>(4);
        let space = RingSpace::new(4);
        let worker_space = Arc::clone(&space);
        let worker = std::thread::spawn(move || {
            let mut taken = 0;
            for _batch in &rx {
                worker_space.taken(rx.len());
                taken += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            taken
        });
        for _ in 0..40 {
            space.send(&tx, Batch::with_capacity(1, 16)).unwrap();
        }
        drop(tx);
        assert_eq!(worker.join().unwrap(), 40);
    }

    #[test]
    fn a_reader_facing_a_full_ring_whose_worker_is_gone_is_told_so() {
        let (tx, rx) = crossbeam_channel::bounded::<Batch>(1);
        let space = RingSpace::new(1);
        space.send(&tx, Batch::with_capacity(1, 16)).unwrap();
        let gone = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            drop(rx);
        });
        assert!(space.send(&tx, Batch::with_capacity(1, 16)).is_err());
        gone.join().unwrap();
    }
}
