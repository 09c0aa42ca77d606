//! Application-layer parsers. Each protocol has its own module with the same shape: a probe that
//! recognises the protocol from the first bytes of a direction, and a parser state that is fed
//! in-order bytes per direction (a TCP stream after reassembly, or one UDP datagram) and hands
//! back finished records (EVE `http`/`dns`/`tls`/`ssh` objects plus the buffers signatures
//! inspect) and protocol events (EVE `anomaly` with `type: applayer`).
//!
//! Parsers never panic on input, never read a clock (the caller passes packet time) and bound
//! every buffer they keep.

pub mod dns;
pub mod http;
pub mod ssh;
pub mod tls;

/// Direction of data within a flow, relative to the flow's initiator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    ToServer,
    ToClient,
}

impl Direction {
    pub fn opposite(self) -> Direction {
        match self {
            Direction::ToServer => Direction::ToClient,
            Direction::ToClient => Direction::ToServer,
        }
    }
}

/// The application protocol of a flow, named as Suricata names it in `app_proto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AppProto {
    /// Not (yet) known.
    #[default]
    Unknown,
    Http,
    Dns,
    Tls,
    Ssh,
    /// Detection gave up: no parser recognised the traffic.
    Failed,
}

impl AppProto {
    pub fn as_str(self) -> &'static str {
        match self {
            AppProto::Unknown => "unknown",
            AppProto::Http => "http",
            AppProto::Dns => "dns",
            AppProto::Tls => "tls",
            AppProto::Ssh => "ssh",
            AppProto::Failed => "failed",
        }
    }

    /// Parses a rule's or config's protocol name (`http1` is an alias of `http`).
    pub fn from_name(name: &str) -> Option<AppProto> {
        Some(match name {
            "http" | "http1" => AppProto::Http,
            "dns" => AppProto::Dns,
            "tls" => AppProto::Tls,
            "ssh" => AppProto::Ssh,
            "failed" => AppProto::Failed,
            "unknown" => AppProto::Unknown,
            _ => return None,
        })
    }

    /// Whether a real parser handles this protocol.
    pub fn is_parsed(self) -> bool {
        matches!(
            self,
            AppProto::Http | AppProto::Dns | AppProto::Tls | AppProto::Ssh
        )
    }
}

/// What a probe says about the first bytes of one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// These bytes are this protocol.
    Match,
    /// These bytes are not this protocol.
    NoMatch,
    /// Too few bytes to tell; call again with more.
    NeedMore,
}

/// The protocol events `proto`'s parser raises (Suricata's names, e.g. `Z_FLAG_SET`).
pub fn parser_events(proto: AppProto) -> &'static [&'static str] {
    match proto {
        AppProto::Http => http::EVENTS,
        AppProto::Dns => dns::EVENTS,
        AppProto::Tls => tls::EVENTS,
        AppProto::Ssh => ssh::EVENTS,
        AppProto::Unknown | AppProto::Failed => &[],
    }
}

/// The event of `proto`'s parser a rule names (any case, Suricata's older or newer name), as
/// the parser raises it.
pub fn parser_event_named(proto: AppProto, name: &str) -> Option<&'static str> {
    let aliases: &[(&str, &str)] = match proto {
        AppProto::Dns => dns::EVENT_ALIASES,
        _ => &[],
    };
    let name = aliases
        .iter()
        .find(|(alias, _)| alias.eq_ignore_ascii_case(name))
        .map_or(name, |(_, event)| event);
    parser_events(proto)
        .iter()
        .copied()
        .find(|e| e.eq_ignore_ascii_case(name))
}

/// Protocol detection found each direction speaking a different protocol.
pub const APPLAYER_MISMATCH_PROTOCOL_BOTH_DIRECTIONS: &str =
    "APPLAYER_MISMATCH_PROTOCOL_BOTH_DIRECTIONS";
/// The protocol found is not the one the server port is registered for.
pub const APPLAYER_PROTOCOL_PORT_MISMATCH: &str = "APPLAYER_PROTOCOL_PORT_MISMATCH";
/// The events of protocol detection itself (EVE anomaly layer `proto_detect`), the ones a rule
/// can name with `app-layer-event:applayer_<name in lower case>`.
pub const DETECT_EVENTS: &[&str] = &[
    APPLAYER_MISMATCH_PROTOCOL_BOTH_DIRECTIONS,
    APPLAYER_PROTOCOL_PORT_MISMATCH,
];

/// A protocol event (Suricata's app-layer event names, e.g. `REQUEST_HEADER_INVALID`), reported
/// as an EVE `anomaly` with `type: applayer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppEvent {
    pub proto: AppProto,
    pub event: &'static str,
    pub direction: Direction,
    /// The transaction it belongs to, when there is one.
    pub tx_id: Option<u64>,
}

/// A finished record: one EVE protocol event, and the buffers signatures inspect.
#[derive(Debug, Clone, PartialEq)]
pub enum AppRecord {
    /// Shared: the `http` event, alerts on it and its `fileinfo` events all show it.
    Http(std::sync::Arc<http::HttpTransaction>),
    Dns(Box<dns::DnsMessage>),
    Tls(Box<tls::TlsHandshake>),
    Ssh(Box<ssh::SshHandshake>),
}

impl AppRecord {
    pub fn proto(&self) -> AppProto {
        match self {
            AppRecord::Http(_) => AppProto::Http,
            AppRecord::Dns(_) => AppProto::Dns,
            AppRecord::Tls(_) => AppProto::Tls,
            AppRecord::Ssh(_) => AppProto::Ssh,
        }
    }

    /// Whether the configuration wants this record in EVE (detection sees every record).
    pub fn is_logged(&self) -> bool {
        match self {
            AppRecord::Dns(msg) => msg.log,
            AppRecord::Http(_) | AppRecord::Tls(_) | AppRecord::Ssh(_) => true,
        }
    }

    /// The transaction id EVE shows at the top level of the event (`tx_id`).
    pub fn tx_id(&self) -> Option<u64> {
        match self {
            AppRecord::Http(tx) => Some(tx.tx_id),
            AppRecord::Dns(_) | AppRecord::Tls(_) | AppRecord::Ssh(_) => None,
        }
    }

    /// The EVE event type and the object that goes under that key (`"http": {...}`).
    pub fn eve_object(&self) -> serde_json::Result<(&'static str, serde_json::Value)> {
        Ok(match self {
            AppRecord::Http(tx) => ("http", serde_json::to_value(&**tx)?),
            AppRecord::Dns(msg) => ("dns", serde_json::to_value(msg)?),
            AppRecord::Tls(hs) => ("tls", serde_json::to_value(hs)?),
            AppRecord::Ssh(hs) => ("ssh", serde_json::to_value(hs)?),
        })
    }
}

/// Where parsers put their results. The caller drains it after each call; its vectors are
/// reused, so a parser call that finishes nothing allocates nothing.
#[derive(Debug, Default)]
pub struct AppOutput {
    pub records: Vec<AppRecord>,
    pub events: Vec<AppEvent>,
    /// Times the parser gave up on a direction because its bytes were malformed (Suricata's
    /// `app_layer.error.<proto>.parser`); gaps do not count.
    pub parser_errors: u32,
}

impl AppOutput {
    pub fn parser_error(&mut self) {
        self.parser_errors = self.parser_errors.saturating_add(1);
    }

    pub fn event(
        &mut self,
        proto: AppProto,
        event: &'static str,
        direction: Direction,
        tx_id: Option<u64>,
    ) {
        self.events.push(AppEvent {
            proto,
            event,
            direction,
            tx_id,
        });
    }

    pub fn clear(&mut self) {
        self.records.clear();
        self.events.clear();
        self.parser_errors = 0;
    }
}

/// The interface every protocol parser offers for one flow.
pub trait AppParser {
    /// In-order bytes of one direction: the next piece of a reassembled TCP stream, or one whole
    /// UDP datagram. `ts_ns` is the time of the packet that delivered them.
    fn parse(&mut self, dir: Direction, data: &[u8], ts_ns: u64, out: &mut AppOutput);

    /// `len` bytes of this direction were lost (a gap in the TCP stream). The parser resyncs if
    /// it can (e.g. skip a body) or stops parsing this direction.
    fn gap(&mut self, dir: Direction, len: u64, out: &mut AppOutput);

    /// This direction ended (TCP FIN/RST): a body delimited by the connection close is complete.
    fn end_of_stream(&mut self, dir: Direction, ts_ns: u64, out: &mut AppOutput);

    /// The flow ends: hand back whatever is pending (e.g. a request that never got a response).
    fn finish(&mut self, ts_ns: u64, out: &mut AppOutput);

    /// Nothing more is worth feeding in either direction (e.g. TLS after the handshake).
    fn is_done(&self) -> bool {
        false
    }
}

/// Serializes a byte string for EVE the way Suricata does: UTF-8 as is, other bytes escaped as
/// `\xHH` so the JSON stays valid and nothing is silently dropped.
pub fn eve_bytes_to_string(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => {
            let mut out = String::with_capacity(bytes.len() + 8);
            for chunk in bytes.utf8_chunks() {
                out.push_str(chunk.valid());
                for b in chunk.invalid() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
            out
        }
    }
}

/// `serialize_with` helper for byte-string fields.
pub fn serialize_bytes_as_string<S: serde::Serializer>(
    bytes: &[u8],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(&eve_bytes_to_string(bytes))
}

#[cfg(test)]
mod event_list_tests {
    use super::*;

    /// A rule naming an event the parser never raises would silently never match: each listed
    /// name must be used in its parser's source besides the list itself.
    #[test]
    fn every_listed_event_is_raised_by_its_parser() {
        for (proto, source) in [
            (AppProto::Http, include_str!("http.rs")),
            (AppProto::Dns, include_str!("dns.rs")),
            (AppProto::Tls, include_str!("tls.rs")),
            (AppProto::Ssh, include_str!("ssh.rs")),
        ] {
            let names = parser_events(proto);
            assert!(!names.is_empty(), "{proto:?}");
            for name in names {
                let quoted = format!("\"{name}\"");
                assert!(
                    source.matches(&quoted).count() >= 2,
                    "{proto:?} lists {name} but never raises it"
                );
            }
        }
    }
}
