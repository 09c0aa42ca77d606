//! A live worker thread: owns one capture source per interface, decodes what they receive and
//! runs it through its own flow table and detection, all in one thread (shared nothing).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use vigil_signatures::RuleSet;

use crate::capture::{LiveError, LiveSource, SourceCounters};
use crate::detect::WorkerDetect;
use crate::pipeline::{
    Batch, BatchSink, DispatchSummary, Dispatcher, FrameBytes, Worker, WorkerGone, WorkerReport,
};

use super::sources::SourcePlan;
use super::Control;

/// How long one wait for packets lasts: also how soon a stop or a reload is noticed.
const POLL: Duration = Duration::from_millis(100);
/// The wait when other workers may hand this one packets.
const PEER_POLL: Duration = Duration::from_millis(5);
/// How often the worker publishes its counters.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);
/// At most this many batches per source are drained at shutdown (a bound, should the
/// interface keep receiving at line rate).
const DRAIN_BATCHES: usize = 4096;
/// How often a source that failed (interface gone or down) is opened again.
const REOPEN_EVERY: Duration = Duration::from_secs(1);

/// One source's counters as the metrics and stats see them.
#[derive(Debug, Clone, Default)]
pub struct SourceStatus {
    pub interface: String,
    pub method: &'static str,
    pub counters: SourceCounters,
    pub up: bool,
}

/// What a worker last published (once a second).
#[derive(Debug, Clone, Default)]
pub struct WorkerStatus {
    pub report: WorkerReport,
    pub dispatch: DispatchSummary,
    pub sources: Vec<SourceStatus>,
    /// Wall-clock seconds since this worker last received a packet (since start if none).
    pub idle_secs: f64,
    pub flow_memcap_bytes: u64,
    pub stream_memcap_bytes: u64,
    /// Packets dropped on the way to another worker (its ring stayed full).
    pub ring_drops: u64,
}

/// How long a worker keeps retrying a peer's full ring (handling its own inbox meanwhile)
/// before it drops the batch and counts it.
const PEER_WAIT: Duration = Duration::from_millis(200);
/// Spare batches a worker keeps from its inbox for its own sends.
const SPARE_BATCHES: usize = 16;

/// Rings between live workers, for sources whose packet spreading does not follow Vigil's own
/// flow hash (AF_XDP: the NIC's RSS, or on veth the sender's queue choice, may put the two
/// directions of a flow, or a fragment and its flow, on different queues).
pub struct Peers {
    /// A ring to each worker (`None` at this worker's own index).
    pub to: Vec<Option<Sender<Batch>>>,
    pub inbox: Receiver<Batch>,
    /// Workers that have sent their last batch (orderly shutdown).
    pub finished_sending: Arc<AtomicUsize>,
}

/// Where a live worker's batches go: handled in place when they belong to this worker (always,
/// without peers: nothing crosses threads), else handed to the owning worker's ring.
pub struct LiveSink {
    pub worker: Worker,
    index: usize,
    pub peers: Option<Peers>,
    spare: Vec<Batch>,
    /// Packets dropped because a peer's ring stayed full.
    pub ring_drops: u64,
}

impl LiveSink {
    pub fn new(worker: Worker, index: usize, peers: Option<Peers>) -> LiveSink {
        LiveSink {
            worker,
            index,
            peers,
            spare: Vec::new(),
            ring_drops: 0,
        }
    }

    /// Handles batches other workers sent here; returns whether there were any.
    fn drain_inbox(&mut self) -> bool {
        let Some(peers) = &self.peers else {
            return false;
        };
        let mut any = false;
        while let Ok(mut batch) = peers.inbox.try_recv() {
            any = true;
            self.worker.handle_batch(&batch);
            if self.spare.len() < SPARE_BATCHES {
                batch.clear();
                self.spare.push(batch);
            }
        }
        any
    }

    /// Orderly shutdown with peers: keep handling the inbox until every worker has sent its
    /// last batch, so none is lost and none waits on a ring nobody empties.
    fn finish_exchange(&mut self) {
        let Some(peers) = &self.peers else {
            return;
        };
        let finished = Arc::clone(&peers.finished_sending);
        let total = peers.to.len();
        finished.fetch_add(1, Ordering::AcqRel);
        while finished.load(Ordering::Acquire) < total {
            if !self.drain_inbox() {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        self.drain_inbox();
    }
}

impl BatchSink for LiveSink {
    fn workers(&self) -> usize {
        self.peers.as_ref().map_or(1, |p| p.to.len())
    }

    fn deliver(&mut self, worker: usize, mut full: Batch) -> Result<Batch, WorkerGone> {
        let ring = self
            .peers
            .as_ref()
            .and_then(|p| p.to.get(worker))
            .and_then(Option::as_ref)
            .filter(|_| worker != self.index)
            .cloned();
        let Some(ring) = ring else {
            self.worker.handle_batch(&full);
            full.clear();
            return Ok(full);
        };
        let started = Instant::now();
        loop {
            match ring.try_send(full) {
                Ok(()) => {
                    return Ok(self
                        .spare
                        .pop()
                        .unwrap_or_else(|| Batch::with_capacity(256, 16 * 1024)))
                }
                Err(TrySendError::Full(back)) => {
                    full = back;
                    if started.elapsed() >= PEER_WAIT {
                        break;
                    }
                    // The peer may be waiting on this worker's ring in turn: empty it.
                    if !self.drain_inbox() {
                        std::thread::yield_now();
                    }
                }
                Err(TrySendError::Disconnected(back)) => {
                    full = back;
                    break;
                }
            }
        }
        self.ring_drops += full
            .slots
            .iter()
            .filter(|s| s.kind != crate::pipeline::SlotKind::Tick)
            .count() as u64;
        full.clear();
        Ok(full)
    }
}

struct Slot {
    plan: SourcePlan,
    source: Option<Box<dyn LiveSource>>,
    /// Counters of earlier incarnations of this source (before the interface went away).
    earlier: SourceCounters,
    retry_at: Instant,
}

pub struct LiveWorker {
    pub index: usize,
    pub dispatcher: Dispatcher<LiveSink>,
    pub sources: Vec<(SourcePlan, Box<dyn LiveSource>)>,
    pub control: Arc<Control>,
    pub status: Arc<Mutex<WorkerStatus>>,
    pub flow_memcap_bytes: u64,
    pub stream_memcap_bytes: u64,
    pub cpu: Option<usize>,
}

impl LiveWorker {
    /// Captures until the daemon stops, then ends every flow and returns the final counters.
    pub fn run(self) -> WorkerStatus {
        let LiveWorker {
            index,
            mut dispatcher,
            sources,
            control,
            status,
            flow_memcap_bytes,
            stream_memcap_bytes,
            cpu,
        } = self;
        if let Some(cpu) = cpu {
            pin_to(cpu, index);
        }
        let mut slots: Vec<Slot> = sources
            .into_iter()
            .map(|(plan, source)| Slot {
                plan,
                source: Some(source),
                earlier: SourceCounters::default(),
                retry_at: Instant::now(),
            })
            .collect();
        let started = Instant::now();
        let mut last_packet: Option<Instant> = None;
        let mut rules = control.rules.reader();
        let mut next_publish = Instant::now();
        // With several interfaces, each wait is shorter so none is starved; with peers, the
        // inbox must not wait behind a quiet socket.
        let poll = if dispatcher.sink_mut().peers.is_some() {
            PEER_POLL
        } else {
            POLL
        };
        let wait = poll / slots.len().max(1) as u32;

        loop {
            if control.stop.load(Ordering::Acquire) {
                break;
            }
            if let Some(new) = rules.changed() {
                swap_rules(index, new.as_ref().clone(), &mut dispatcher);
            }
            let mut received = 0;
            for slot in &mut slots {
                received += poll_slot(index, slot, wait, &mut dispatcher);
            }
            dispatcher.sink_mut().drain_inbox();
            if received > 0 {
                last_packet = Some(Instant::now());
                let _ = dispatcher.flush_all();
            } else {
                let _ = dispatcher.advance_clock(wall_clock_ns());
            }
            if Instant::now() >= next_publish {
                next_publish = Instant::now() + PUBLISH_EVERY;
                let snapshot = WorkerStatus {
                    report: dispatcher.sink_mut().worker.report(),
                    ring_drops: dispatcher.sink_mut().ring_drops,
                    dispatch: dispatcher.summary(),
                    sources: source_statuses(&mut slots),
                    idle_secs: last_packet.unwrap_or(started).elapsed().as_secs_f64(),
                    flow_memcap_bytes,
                    stream_memcap_bytes,
                };
                if let Ok(mut s) = status.lock() {
                    *s = snapshot;
                }
            }
        }

        // What the kernel already queued was seen by the sensor: process it before stopping.
        for slot in &mut slots {
            for _ in 0..DRAIN_BATCHES {
                if slot.source.is_none()
                    || poll_slot(index, slot, Duration::ZERO, &mut dispatcher) == 0
                {
                    break;
                }
            }
        }
        let _ = dispatcher.flush_all();
        dispatcher.sink_mut().finish_exchange();
        let sources = source_statuses(&mut slots);
        drop(slots);
        let idle_secs = last_packet.unwrap_or(started).elapsed().as_secs_f64();
        let (dispatch, sink) = match dispatcher.finish() {
            Ok(done) => done,
            Err(_) => unreachable!("an inline sink never refuses a batch"),
        };
        let ring_drops = sink.ring_drops;
        let report = sink.worker.finish();
        let last = WorkerStatus {
            report,
            dispatch,
            sources,
            idle_secs,
            flow_memcap_bytes,
            stream_memcap_bytes,
            ring_drops,
        };
        if let Ok(mut s) = status.lock() {
            *s = last.clone();
        }
        last
    }
}

/// Reads one batch from a slot's source, reopening it first if it failed earlier.
fn poll_slot(
    worker: usize,
    slot: &mut Slot,
    wait: Duration,
    dispatcher: &mut Dispatcher<LiveSink>,
) -> usize {
    if slot.source.is_none() {
        if Instant::now() < slot.retry_at {
            std::thread::sleep(wait);
            return 0;
        }
        slot.retry_at = Instant::now() + REOPEN_EVERY;
        match slot.plan.open() {
            Ok(source) => {
                tracing::info!(worker, source = source.label(), "capture resumed");
                slot.source = Some(source);
            }
            Err(e) => {
                tracing::debug!(worker, error = %e, "capture source still unavailable");
                std::thread::sleep(wait);
                return 0;
            }
        }
    }
    let Some(source) = slot.source.as_mut() else {
        return 0;
    };
    let link = source.link_type();
    let mut on_frame = |frame: crate::capture::Frame<'_>| {
        // An inline sink never refuses a batch, so dispatch cannot fail here.
        let _ = dispatcher.dispatch(frame.ts_ns, frame.data, FrameBytes::Borrowed, link, 0);
    };
    match source.next_batch(wait, &mut on_frame) {
        Ok(n) => n,
        Err(e) => {
            match &e {
                LiveError::Down { .. } => {
                    tracing::warn!(worker, error = %e, "capture interrupted; retrying every second")
                }
                _ => tracing::error!(worker, error = %e, "capture failed; reopening"),
            }
            let counters = source.counters();
            add_counters(&mut slot.earlier, &counters);
            slot.source = None;
            slot.retry_at = Instant::now() + REOPEN_EVERY;
            0
        }
    }
}

fn add_counters(sum: &mut SourceCounters, c: &SourceCounters) {
    sum.packets += c.packets;
    sum.bytes += c.bytes;
    sum.drops += c.drops;
}

fn source_statuses(slots: &mut [Slot]) -> Vec<SourceStatus> {
    slots
        .iter_mut()
        .map(|slot| {
            let mut counters = slot.earlier;
            let up = slot.source.is_some();
            if let Some(source) = slot.source.as_mut() {
                add_counters(&mut counters, &source.counters());
            }
            SourceStatus {
                interface: slot.plan.iface().to_string(),
                method: slot.plan.method_name(),
                counters,
                up,
            }
        })
        .collect()
}

/// Takes the ruleset the daemon published. Pending packets are handled with the old rules
/// first, so each packet sees exactly one ruleset.
fn swap_rules(worker: usize, rules: Option<Arc<RuleSet>>, dispatcher: &mut Dispatcher<LiveSink>) {
    let detect = match rules {
        Some(rules) => match WorkerDetect::new(rules) {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::error!(worker, error = %e, "cannot use the new rules; keeping the old");
                return;
            }
        },
        None => None,
    };
    let _ = dispatcher.flush_all();
    dispatcher.sink_mut().worker.set_detect(detect);
}

fn wall_clock_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn pin_to(cpu: usize, worker: usize) {
    let mut set = nix::sched::CpuSet::new();
    let pinned = set
        .set(cpu)
        .and_then(|()| nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set));
    match pinned {
        Ok(()) => tracing::info!(worker, cpu, "worker pinned"),
        Err(e) => tracing::warn!(worker, cpu, error = %e, "cannot pin worker to its core"),
    }
}
