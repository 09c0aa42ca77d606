//! The packet pipeline: batches, the replay dispatcher, workers and their shutdown.
//!
//! A reader thread decodes and defragments, then spreads packets over the workers by a
//! symmetric flow hash so both directions of a flow meet in one worker. Rings between threads
//! carry batches, never single packets; emptied batches travel back to the reader for reuse, so
//! steady state allocates nothing.

pub mod batch;
pub mod dispatcher;
pub mod worker;

pub use batch::{Batch, FrameBytes, Slot, SlotKind};
pub use dispatcher::{BatchSink, ChannelSink, DispatchSummary, Dispatcher, RingSpace, WorkerGone};
pub use worker::{Worker, WorkerConfig, WorkerReport, EVENT_MESSAGES_QUEUED};
