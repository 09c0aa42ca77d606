//! Upstream sinks: where rendered EVE events go besides (or instead of) the local file.
//!
//! A sink runs on a thread of its own, never on a worker. Events reach it already rendered
//! (one JSON object, no trailing newline) with a sensor-unique id, so a sink can deduplicate
//! redelivery (JetStream's `Nats-Msg-Id`) and the spool can store them as they are.

use std::time::Duration;

/// EVE event types a sink can be configured to take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    Alert,
    Flow,
    Anomaly,
    Http,
    Dns,
    Tls,
    Ssh,
    Stats,
    Response,
    /// Appended last: spool files store a type as its index here.
    FileInfo,
}

impl EventType {
    pub const ALL: [EventType; 10] = [
        EventType::Alert,
        EventType::Flow,
        EventType::Anomaly,
        EventType::Http,
        EventType::Dns,
        EventType::Tls,
        EventType::Ssh,
        EventType::Stats,
        EventType::Response,
        EventType::FileInfo,
    ];

    /// The EVE `event_type` value.
    pub fn name(self) -> &'static str {
        match self {
            EventType::Alert => "alert",
            EventType::Flow => "flow",
            EventType::Anomaly => "anomaly",
            EventType::Http => "http",
            EventType::Dns => "dns",
            EventType::Tls => "tls",
            EventType::Ssh => "ssh",
            EventType::Stats => "stats",
            EventType::Response => "response",
            EventType::FileInfo => "fileinfo",
        }
    }

    /// `alert, flow, …`: every name, for error messages.
    pub fn all_names() -> String {
        EventType::ALL.map(EventType::name).join(", ")
    }

    pub fn from_name(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// The event types an output takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeSet([bool; EventType::ALL.len()]);

impl TypeSet {
    /// These types; none listed means all.
    pub fn of(types: &[EventType]) -> TypeSet {
        let mut set = [types.is_empty(); EventType::ALL.len()];
        for t in types {
            set[*t as usize] = true;
        }
        TypeSet(set)
    }

    /// From EVE type names (`"alert"`, …); none means all.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<TypeSet, String> {
        let types = names
            .iter()
            .map(|n| {
                let n = n.as_ref();
                EventType::from_name(n)
                    .ok_or_else(|| format!("unknown event type {n:?} ({})", EventType::all_names()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TypeSet::of(&types))
    }

    pub fn contains(&self, t: EventType) -> bool {
        self.0[t as usize]
    }
}

/// One rendered event on its way upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedEvent {
    /// Unique per sensor and event, stable across redelivery (spool, restart): the sensor's
    /// boot id and a sequence number, e.g. `"3f1c…-000000000042"`.
    pub id: String,
    pub event_type: EventType,
    /// Event time, nanoseconds since the Unix epoch (for the syslog header).
    pub ts_ns: u64,
    /// The EVE JSON object, without a trailing newline.
    pub json: Vec<u8>,
}

/// Why a sink could not deliver. Every variant means "keep the events and retry later", except
/// that `Rejected` names events the receiver refused for good (logged and counted, not retried).
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Not connected, or the connection broke: retry after a backoff.
    #[error("{sink}: {reason}")]
    Unavailable { sink: String, reason: String },
    /// The receiver refused the connection for a reason a retry will not fix soon
    /// (certificate, authentication): retried with the longest backoff, and said loudly.
    #[error("{sink}: {reason}")]
    Refused { sink: String, reason: String },
    /// The receiver took the first `taken` events and refuses the next one for good (too
    /// large, say): it is logged, counted and skipped; the connection stays.
    #[error("{sink}: {reason}")]
    Rejected {
        sink: String,
        reason: String,
        taken: usize,
    },
}

impl SinkError {
    pub fn unavailable(sink: &str, reason: impl Into<String>) -> SinkError {
        SinkError::Unavailable {
            sink: sink.to_string(),
            reason: reason.into(),
        }
    }

    pub fn refused(sink: &str, reason: impl Into<String>) -> SinkError {
        SinkError::Refused {
            sink: sink.to_string(),
            reason: reason.into(),
        }
    }
}

/// A destination for events. Implementations hold their connection and reconnect when asked.
pub trait Sink: Send {
    /// Names the sink in logs and metrics (`syslog+tls://host:6514`, `nats://host:4222/vigil`).
    fn name(&self) -> &str;

    /// Opens (or reopens) the connection. Called with a backoff while it fails.
    fn connect(&mut self) -> Result<(), SinkError>;

    /// Delivers `events` in order and returns how many of the leading ones the receiver has
    /// taken (for JetStream: acknowledged; for syslog over TLS: written and flushed to the TLS
    /// stream). On `Err`, or `Ok(n)` with `n < events.len()`, the caller keeps the rest and
    /// retries them after `connect` succeeds again; delivery is at least once.
    fn send(&mut self, events: &[EncodedEvent]) -> Result<usize, SinkError>;

    /// Longest a single `send` may block before it gives up (the caller's drain deadline).
    fn send_timeout(&self) -> Duration {
        Duration::from_secs(10)
    }
}
