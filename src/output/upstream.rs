//! Delivery to one upstream sink: a bounded in-memory queue, a disk spool behind it, and a
//! thread that sends, reconnects with a backoff and drains the spool in order.
//!
//! The output thread offers each rendered batch with [`Upstream::offer`], which never blocks:
//! while the sink keeps up, batches go through the queue; once the queue is full or the sink
//! is down, everything goes to the spool until the sender has emptied it (so the order is
//! queue first, then spool, oldest first). When the receiver goes away the sender also moves
//! the events it held in memory to the front of the spool, so a killed process loses nothing
//! that was accepted; the next process delivers the spool first.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError, Sender, TrySendError};

use super::sink::{EncodedEvent, Sink, SinkError, TypeSet};
use super::spool::{Chunk, Spool, SpoolStats};

/// Most events per `Sink::send` call: queued batches and spool frames are joined up to this,
/// so a sink that pipelines (JetStream acknowledgements) keeps its pipe full.
const SEND_BATCH: usize = 4096;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Counters of one sink, readable by the metrics.
#[derive(Debug, Default)]
pub struct SinkCounters {
    /// Events handed to `send`, retries included.
    pub sent: AtomicU64,
    /// Events the receiver took.
    pub acked: AtomicU64,
    pub bytes: AtomicU64,
    pub reconnects: AtomicU64,
    pub errors: AtomicU64,
    /// Events the receiver refused for good (skipped, not retried).
    pub rejected: AtomicU64,
    /// Nanoseconds between the newest acknowledged event's time and its acknowledgement.
    pub lag_ns: AtomicU64,
}

/// A point-in-time view for stats and metrics.
#[derive(Debug, Clone, Default)]
pub struct UpstreamStatus {
    pub name: String,
    pub sent: u64,
    pub acked: u64,
    pub bytes: u64,
    pub reconnects: u64,
    pub errors: u64,
    pub rejected: u64,
    pub lag_secs: f64,
    pub queued_batches: u64,
    pub spool: SpoolStats,
    pub connected: bool,
}

struct SpoolState {
    spool: Spool,
    /// New events go to the spool (not the queue) until the sender has emptied it.
    active: bool,
}

struct Shared {
    spool: Mutex<SpoolState>,
    counters: SinkCounters,
    connected: AtomicBool,
    /// Bytes of the batches in the queue, bounded by `queue_bytes`.
    queued_bytes: AtomicU64,
    queue_bytes: u64,
    stop: AtomicBool,
    /// Set with `stop`: how long the sender may go on delivering before it leaves the rest in
    /// the spool.
    drain_until: Mutex<Option<Instant>>,
}

pub struct Upstream {
    name: String,
    types: TypeSet,
    queue: Sender<Vec<EncodedEvent>>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Upstream {
    /// Starts the sender thread for `sink`, with `spool` (possibly holding events from an
    /// earlier process, which go first) and the event types it takes.
    pub fn start(
        sink: Box<dyn Sink>,
        spool: Spool,
        types: TypeSet,
        queue_bytes: u64,
    ) -> std::io::Result<Upstream> {
        let name = sink.name().to_string();
        let active = !spool.is_empty();
        let shared = Arc::new(Shared {
            spool: Mutex::new(SpoolState { spool, active }),
            counters: SinkCounters::default(),
            connected: AtomicBool::new(false),
            queued_bytes: AtomicU64::new(0),
            queue_bytes,
            stop: AtomicBool::new(false),
            drain_until: Mutex::new(None),
        });
        let (queue, rx) = unbounded();
        let delivery = Delivery {
            sink,
            rx,
            shared: Arc::clone(&shared),
        };
        let thread = std::thread::Builder::new()
            .name("vigil-sink".into())
            .spawn(move || delivery.run())?;
        Ok(Upstream {
            name,
            types,
            queue,
            shared,
            thread: Some(thread),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Takes the events of the types this sink wants. Never blocks on the receiver.
    pub fn offer(&self, events: &[EncodedEvent]) {
        let mine: Vec<EncodedEvent> = events
            .iter()
            .filter(|e| self.types.contains(e.event_type))
            .cloned()
            .collect();
        if mine.is_empty() {
            return;
        }
        let Ok(mut state) = self.shared.spool.lock() else {
            return;
        };
        // Under the lock, so the sender cannot switch modes between the check and the send.
        let bytes = batch_bytes(&mine);
        let queued = self.shared.queued_bytes.load(Ordering::Acquire);
        if state.active || queued + bytes > self.shared.queue_bytes.max(1) {
            state.active = true;
            append(&mut state.spool, &mine, &self.name);
        } else {
            self.shared.queued_bytes.fetch_add(bytes, Ordering::AcqRel);
            if let Err(TrySendError::Full(back) | TrySendError::Disconnected(back)) =
                self.queue.try_send(mine)
            {
                self.shared.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
                state.active = true;
                append(&mut state.spool, &back, &self.name);
            }
        }
    }

    pub fn status(&self) -> UpstreamStatus {
        let c = &self.shared.counters;
        let spool = self
            .shared
            .spool
            .lock()
            .map(|s| s.spool.stats())
            .unwrap_or_default();
        UpstreamStatus {
            name: self.name.clone(),
            sent: c.sent.load(Ordering::Relaxed),
            acked: c.acked.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            reconnects: c.reconnects.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            lag_secs: c.lag_ns.load(Ordering::Relaxed) as f64 / 1e9,
            queued_batches: self.queue.len() as u64,
            spool,
            connected: self.shared.connected.load(Ordering::Relaxed),
        }
    }

    /// Delivers what is left for at most `deadline`, then stops; what is still undelivered is
    /// in the spool for the next process.
    pub fn finish(mut self, deadline: Duration) -> UpstreamStatus {
        if let Ok(mut until) = self.shared.drain_until.lock() {
            *until = Some(Instant::now() + deadline);
        }
        self.shared.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.status()
    }
}

/// What a batch weighs in the in-memory queue.
fn batch_bytes(events: &[EncodedEvent]) -> u64 {
    events
        .iter()
        .map(|e| (e.json.len() + e.id.len() + std::mem::size_of::<EncodedEvent>()) as u64)
        .sum()
}

fn append(spool: &mut Spool, events: &[EncodedEvent], name: &str) {
    if let Err(e) = spool.append(events) {
        tracing::error!(sink = name, error = %e, "cannot spool events");
    }
}

/// The sender thread's state.
struct Delivery {
    sink: Box<dyn Sink>,
    rx: Receiver<Vec<EncodedEvent>>,
    shared: Arc<Shared>,
}

/// Where the events being sent came from.
enum Origin {
    Queue,
    /// Successive frames of one segment, advanced past in order once all are delivered.
    Spool(Vec<Chunk>),
}

impl Delivery {
    fn run(mut self) {
        let name = self.sink.name().to_string();
        let mut pending: Vec<EncodedEvent> = Vec::new();
        let mut origin = Origin::Queue;
        let mut connected = false;
        let mut ever_connected = false;
        let mut backoff = BACKOFF_MIN;
        let mut last_complaint: Option<Instant> = None;
        loop {
            let stopping = self.shared.stop.load(Ordering::Acquire);
            if stopping {
                let out_of_time = self
                    .shared
                    .drain_until
                    .lock()
                    .ok()
                    .and_then(|d| *d)
                    .is_some_and(|d| Instant::now() >= d);
                if out_of_time || (pending.is_empty() && self.rx.is_empty() && self.spool_empty()) {
                    self.keep_for_later(&mut pending, &origin, &name);
                    break;
                }
            }
            if !connected {
                match self.sink.connect() {
                    Ok(()) => {
                        connected = true;
                        self.shared.connected.store(true, Ordering::Relaxed);
                        if ever_connected {
                            self.shared
                                .counters
                                .reconnects
                                .fetch_add(1, Ordering::Relaxed);
                        }
                        ever_connected = true;
                        backoff = BACKOFF_MIN;
                        tracing::info!(sink = %name, "connected");
                    }
                    Err(e) => {
                        self.shared.counters.errors.fetch_add(1, Ordering::Relaxed);
                        if last_complaint.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)) {
                            let refused = matches!(e, SinkError::Refused { .. });
                            tracing::warn!(sink = %name, error = %e, refused, "receiver unavailable; spooling");
                            last_complaint = Some(Instant::now());
                        }
                        self.keep_for_later(&mut pending, &origin, &name);
                        origin = Origin::Queue;
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        continue;
                    }
                }
            }
            if pending.is_empty() {
                match self.next_events() {
                    Some((events, from)) => {
                        pending = events;
                        origin = from;
                    }
                    None => continue,
                }
            }
            let n = pending.len().min(SEND_BATCH);
            let c = &self.shared.counters;
            c.sent.fetch_add(n as u64, Ordering::Relaxed);
            match self.sink.send(&pending[..n]) {
                Ok(taken) => {
                    let taken = taken.min(n);
                    self.taken(&mut pending, taken);
                    if taken < n {
                        connected = false;
                        self.shared.connected.store(false, Ordering::Relaxed);
                    }
                }
                Err(SinkError::Rejected { reason, taken, .. }) if taken < n => {
                    self.taken(&mut pending, taken);
                    let refused = pending.remove(0);
                    c.rejected.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        sink = %name,
                        event = %refused.id,
                        event_type = refused.event_type.name(),
                        %reason,
                        "event refused by the receiver for good; skipped"
                    );
                }
                Err(e) => {
                    c.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(sink = %name, error = %e, "delivery failed; reconnecting");
                    connected = false;
                    self.shared.connected.store(false, Ordering::Relaxed);
                }
            }
            if pending.is_empty() {
                if let Origin::Spool(chunks) = std::mem::replace(&mut origin, Origin::Queue) {
                    self.advance(&chunks, &name);
                }
            }
        }
        self.shared.connected.store(false, Ordering::Relaxed);
    }

    /// The receiver took the first `taken` pending events.
    fn taken(&self, pending: &mut Vec<EncodedEvent>, taken: usize) {
        let c = &self.shared.counters;
        c.acked.fetch_add(taken as u64, Ordering::Relaxed);
        c.bytes.fetch_add(
            pending[..taken].iter().map(|e| e.json.len() as u64).sum(),
            Ordering::Relaxed,
        );
        if let Some(last) = pending[..taken].last() {
            c.lag_ns
                .store(unix_now_ns().saturating_sub(last.ts_ns), Ordering::Relaxed);
        }
        pending.drain(..taken);
    }

    /// The queue first (older), then the spool; waits briefly when both are empty.
    fn next_events(&mut self) -> Option<(Vec<EncodedEvent>, Origin)> {
        if let Ok(events) = self.take_queued() {
            return Some((self.more_from_queue(events), Origin::Queue));
        }
        {
            let Ok(mut state) = self.shared.spool.lock() else {
                return None;
            };
            match state.spool.peek() {
                Ok(Some(chunk)) => {
                    let mut events = chunk.events.clone();
                    let mut chunks = vec![chunk];
                    while events.len() < SEND_BATCH {
                        let Some(last) = chunks.last() else { break };
                        match state.spool.peek_next(last) {
                            Ok(Some(next)) => {
                                events.extend_from_slice(&next.events);
                                chunks.push(next);
                            }
                            Ok(None) => break,
                            Err(e) => {
                                tracing::error!(error = %e, "cannot read the spool");
                                break;
                            }
                        }
                    }
                    return Some((events, Origin::Spool(chunks)));
                }
                Ok(None) => {
                    // Caught up: new events may use the queue again. The queue is empty and
                    // nothing can be offered while we hold the lock, so the order holds.
                    if self.rx.is_empty() {
                        state.active = false;
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot read the spool"),
            }
        }
        match self.rx.recv_timeout(Duration::from_millis(100)) {
            Ok(events) => {
                self.dequeued(&events);
                Some((self.more_from_queue(events), Origin::Queue))
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }

    fn take_queued(&self) -> Result<Vec<EncodedEvent>, crossbeam_channel::TryRecvError> {
        let events = self.rx.try_recv()?;
        self.dequeued(&events);
        Ok(events)
    }

    fn dequeued(&self, events: &[EncodedEvent]) {
        self.shared
            .queued_bytes
            .fetch_sub(batch_bytes(events), Ordering::AcqRel);
    }

    /// Joins the batches already queued behind `events`, up to a send's worth.
    fn more_from_queue(&self, mut events: Vec<EncodedEvent>) -> Vec<EncodedEvent> {
        while events.len() < SEND_BATCH {
            match self.take_queued() {
                Ok(mut more) => events.append(&mut more),
                Err(_) => break,
            }
        }
        events
    }

    fn advance(&self, chunks: &[Chunk], name: &str) {
        if let Ok(mut state) = self.shared.spool.lock() {
            for chunk in chunks {
                if let Err(e) = state.spool.advance(chunk) {
                    tracing::error!(sink = name, error = %e, "cannot update the spool");
                    return;
                }
            }
        }
    }

    fn spool_empty(&self) -> bool {
        self.shared
            .spool
            .lock()
            .map(|s| s.spool.is_empty())
            .unwrap_or(true)
    }

    /// The receiver is away (or time is up): events held in memory go to the front of the
    /// spool, oldest first, and new ones to its end, so a restart delivers them all in order.
    /// Events read from the spool are still there (not yet advanced past).
    fn keep_for_later(&mut self, pending: &mut Vec<EncodedEvent>, origin: &Origin, name: &str) {
        let Ok(mut state) = self.shared.spool.lock() else {
            return;
        };
        state.active = true;
        let mut held = Vec::new();
        if matches!(origin, Origin::Queue) {
            held.append(pending);
        } else {
            pending.clear();
        }
        while let Ok(mut events) = self.take_queued() {
            held.append(&mut events);
        }
        if !held.is_empty() {
            if let Err(e) = state.spool.prepend(&held) {
                tracing::error!(sink = name, error = %e, lost = held.len(), "cannot spool events");
            }
        }
    }
}

fn unix_now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
