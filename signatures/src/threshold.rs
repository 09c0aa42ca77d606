//! Thresholding: the rule keywords `threshold:` and `detection_filter:`, the sensor-wide
//! `threshold.config` (`threshold`/`event_filter`, `rate_filter`, `suppress`), and the runtime
//! state that decides, for each rule match, whether it alerts.
//!
//! Everything here follows Suricata 8 (`detect-threshold.c`, `detect-detection-filter.c`,
//! `util-threshold-config.c`, `detect-engine-threshold.c`, `detect-engine-alert.c`, and the user
//! guide's *Thresholding Keywords* and *Global-Thresholds* pages). Where this module decides
//! something Suricata leaves to chance or does not pin down, the item's documentation says so.
//!
//! # Pieces
//!
//! * [`ThresholdSpec`] — one parsed `threshold:` / `detection_filter:` value, or one
//!   `threshold.config` threshold or rate_filter.
//! * [`ThresholdConfig`] — a parsed `threshold.config`; [`ThresholdConfig::resolve`] combines it
//!   with a rule's own keyword into the [`SigThresholds`] the rule runs with.
//! * [`ThresholdState`] — the per-engine tracking table. One per detection engine, shared by the
//!   worker threads behind a `Mutex` held by the caller; all methods take `&mut self`. Time is
//!   always the packet's timestamp passed in (`ts_ns`), never a wall clock.
//!
//! # What a match becomes ([`Verdict`])
//!
//! Suricata's thresholding returns one of three results per match: *alert* (log it and apply the
//! rule's action), *silent match* (no alert, but the rule's action — drop, reject, pass,
//! flowbits … — still applies) and *no match* (neither; `tag` is skipped too). These are
//! [`Verdict::Alert`], [`Verdict::Suppress`] and [`Verdict::Discard`]; a `rate_filter` that is
//! active gives [`Verdict::NewAction`].
//!
//! Per signature, in this order (as `PacketAlertHandle`):
//! 1. each `suppress` with an address: if the packet's address is in the list the match is
//!    [`Verdict::Suppress`] and the threshold is **not** evaluated (its state does not move);
//! 2. the signature's single threshold (rule keyword, or `threshold.config` override): *no
//!    match* → [`Verdict::Discard`], *silent* → [`Verdict::Suppress`];
//! 3. a `suppress` without address (Suricata's `noalert` flag) turns what is left into
//!    [`Verdict::Suppress`] (or `NewAction { alert: false, .. }`): the threshold still counts.
//!
//! # Per-type semantics (`detect-engine-threshold.c`, `ThresholdSetup` / `ThresholdCheckUpdate`)
//!
//! A tracked entry remembers the time of the first match of its window (`tv1`) and a counter. A
//! match at time `ts` is *in the window* when `ts <= tv1 + seconds` (Suricata: `SCTIME_CMP_LTE`),
//! so the window is inclusive at its end and expires when `ts - tv1 > seconds`. An expired
//! window restarts at the current match with a count of 1. Windows are fixed from their first
//! match; they do not slide. (Suricata's packet clock has microseconds; we compare the
//! nanoseconds we are given. Suricata stores "no rate_filter action" as time 0, so an action
//! started at the epoch second 0 is lost there; here it is not.)
//!
//! | type | first match (new entry) | in window: count += 1, then | window expired (reset, count = 1) |
//! |---|---|---|---|
//! | `limit` | alert | alert if count ≤ C, else silent | alert |
//! | `threshold` | alert if C = 1, else no match | if count ≥ C: alert and count = 0, else no match | no match |
//! | `both` | alert if C = 1, else no match | = C: alert; > C: silent; < C: no match | alert if C = 1, else no match |
//! | `detection_filter` | no match | alert if count > C, else no match | no match |
//! | `backoff` (by_flow only, no window) | alert if C = 1 (next = C·M), else no match (next = C) | count = next: alert, next ·= M; else silent | — |
//! | `rate_filter` | alert | see below | alert |
//!
//! `threshold` with count 1 is answered without any state (Suricata's fast path), except with
//! `by_flow`, which Suricata does not fast-path: there a match after an expired window is a
//! *no match*, as the table says.
//!
//! `rate_filter`: every match alerts. With no new action active, a match in the window counts,
//! and when the count exceeds C the new action starts (at this match's second). While active
//! (`ts_secs - start_secs <= timeout`, whole seconds) every match gets the new action; the first
//! match after that clears it *without counting*, and the next one counts again against the
//! old window — so if the window is still open the action restarts at once. This is Suricata's
//! behaviour, kept as is. Once both the window and the timeout are over the entry is gone (see
//! *Memory*) and the next match starts a new one with a count of 1. `new_action log` and
//! `sdrop` are accepted and change nothing, as in Suricata ("not supported yet").
//!
//! # Tracking keys
//!
//! An entry is keyed by gid, sid, rev and the tracker: `by_src` (source address), `by_dst`
//! (destination address), `by_both` (the address pair, lower address first, so both directions
//! share it), `by_rule` (one per signature) or `by_flow` (the caller's flow id). The tracker kind
//! is part of the key, as in Suricata, so `by_src` and `by_dst` entries for the same address
//! never mix. Tenants are not modelled (one tenant).
//!
//! # Memory
//!
//! [`ThresholdLimits::max_entries`] bounds the number of entries (default 100 000). Entries whose
//! window has expired are removed a few at a time on each [`ThresholdState::check`], all at once
//! when the table is full or on [`ThresholdState::expire`], and an expired entry met by a match
//! is treated as absent even if housekeeping has not removed it yet. For every type but
//! `rate_filter` this changes nothing, since a new entry behaves exactly like an expired one
//! (Suricata expires them from its flow manager by the same `ts > tv1 + seconds` test).
//! Deliberate differences: a `rate_filter` entry is kept until its window *and* its new action's
//! timeout are over (Suricata's expiry looks at the window only, so it may drop the entry, and
//! with it the active action, early or late depending on when its housekeeping runs; we pick the
//! documented "remains active for timeout seconds"); and `by_flow` entries, which Suricata keeps
//! with the flow, are never expired by time: the caller ends them with
//! [`ThresholdState::flow_ended`].
//!
//! When the table is full after expiry, the default ([`OnFull::Evict`]) recycles an entry like
//! Suricata's hash does when its memcap is reached (`THashGetUsed` takes some unused entry): we
//! evict the windowed entry whose window ends soonest, or, when only `by_flow` entries remain,
//! the least recently used one; the evicted key simply starts over. With [`OnFull::Refuse`] no
//! new entry is made and the match is a *no match* ([`Verdict::Discard`]: no alert, no action),
//! which is what Suricata returns when it cannot get an entry (`ThresholdGetFromHash` returns 0).
//! Both outcomes are counted in [`ThresholdStats`].

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use thiserror::Error;

use crate::classification::is_blank_or_comment;

const NS_PER_SEC: u64 = 1_000_000_000;

// ------------------------------------------------------------------------------------------------
// Addresses
// ------------------------------------------------------------------------------------------------

/// An IPv4 or IPv6 network: an address with its host bits cleared and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// Why a string is not an address or network.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid address or network `{0}`")]
pub struct IpNetParseError(pub String);

impl IpNet {
    /// The network of `addr` with `prefix` bits (host bits are cleared, as Suricata does for
    /// `10.1.2.3/8`). `None` when the prefix is longer than the address (32 or 128 bits).
    pub fn new(addr: IpAddr, prefix: u8) -> Option<IpNet> {
        let max = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        if prefix > max {
            return None;
        }
        let addr = match addr {
            IpAddr::V4(a) => {
                let mask = if prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - prefix)
                };
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = if prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - prefix)
                };
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        };
        Some(IpNet { addr, prefix })
    }

    /// A network holding just this address (/32 or /128).
    pub fn host(addr: IpAddr) -> IpNet {
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        IpNet { addr, prefix }
    }

    /// The network address (host bits zero).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in this network. An IPv4 network never contains an IPv6 address and the
    /// other way round (no v4-mapped matching, like Suricata's separate v4/v6 lists).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                u32::from(a) & mask == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                u128::from(a) & mask == u128::from(net)
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = IpNetParseError;

    /// `1.2.3.4`, `1.2.3.0/24`, `1.2.3.0/255.255.255.0`, `2001:db8::1`, `2001:db8::/32`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || IpNetParseError(s.to_string());
        let s = s.trim();
        match s.split_once('/') {
            None => s.parse::<IpAddr>().map(IpNet::host).map_err(|_| err()),
            Some((a, p)) => {
                let addr: IpAddr = a.parse().map_err(|_| err())?;
                let prefix = if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
                    p.parse::<u8>().map_err(|_| err())?
                } else if let (IpAddr::V4(_), Ok(mask)) = (addr, p.parse::<Ipv4Addr>()) {
                    // Dotted netmask: must be contiguous ones.
                    let m = u32::from(mask);
                    let ones = m.leading_ones();
                    if m.checked_shl(ones).unwrap_or(0) != 0 {
                        return Err(err());
                    }
                    ones as u8
                } else {
                    return Err(err());
                };
                IpNet::new(addr, prefix).ok_or_else(err)
            }
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A set of networks (a `suppress` line's `ip` value).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressSet {
    nets: Vec<IpNet>,
}

impl AddressSet {
    pub fn new(nets: Vec<IpNet>) -> AddressSet {
        AddressSet { nets }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(ip))
    }

    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }
}

/// Resolves an address variable for `suppress ... ip $NAME`: given the name **without** the
/// `$` (e.g. `HOME_NET`), returns its networks, or `None` when the variable is unknown. Negated
/// parts of a variable (`!10.1.0.0/16`) must already be resolved away by the caller: the result
/// is the set of positive networks.
pub type VarResolver<'a> = &'a dyn Fn(&str) -> Option<Vec<IpNet>>;

// ------------------------------------------------------------------------------------------------
// Specs
// ------------------------------------------------------------------------------------------------

/// Where matches are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Track {
    BySrc,
    ByDst,
    /// The address pair, either direction.
    ByBoth,
    /// One counter per signature.
    ByRule,
    /// One counter per flow (Suricata 7+ for `threshold`, 8 for `detection_filter` and
    /// `threshold.config`).
    ByFlow,
}

impl Track {
    fn parse(s: &str) -> Option<Track> {
        Some(match s {
            "by_src" => Track::BySrc,
            "by_dst" => Track::ByDst,
            "by_both" => Track::ByBoth,
            "by_rule" => Track::ByRule,
            "by_flow" => Track::ByFlow,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Track::BySrc => "by_src",
            Track::ByDst => "by_dst",
            Track::ByBoth => "by_both",
            Track::ByRule => "by_rule",
            Track::ByFlow => "by_flow",
        }
    }
}

impl fmt::Display for Track {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The action a `rate_filter` puts in place of the rule's while it is active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateAction {
    Alert,
    Drop,
    Pass,
    Reject,
    /// Accepted by Suricata's parser but "not supported yet": changes nothing.
    Log,
    /// Accepted by Suricata's parser but "not supported yet": changes nothing.
    Sdrop,
}

impl RateAction {
    fn parse(s: &str) -> Option<RateAction> {
        Some(match s {
            "alert" => RateAction::Alert,
            "drop" => RateAction::Drop,
            "pass" => RateAction::Pass,
            "reject" => RateAction::Reject,
            "log" => RateAction::Log,
            "sdrop" => RateAction::Sdrop,
            _ => return None,
        })
    }

    /// Whether Suricata applies this action (`RateFilterSetAction`); `log` and `sdrop` do not.
    fn effective(self) -> bool {
        !matches!(self, RateAction::Log | RateAction::Sdrop)
    }
}

/// What kind of threshold a [`ThresholdSpec`] is, with the values only that kind has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThresholdKind {
    Limit,
    Threshold,
    Both,
    /// `threshold: type backoff` (Suricata 8): alerts at match C, C·M, C·M², …; `by_flow` only,
    /// no `seconds`.
    Backoff {
        multiplier: u32,
    },
    /// The `detection_filter` keyword.
    DetectionFilter,
    /// A `threshold.config` `rate_filter`.
    Rate {
        new_action: RateAction,
        timeout: u32,
    },
}

/// One threshold as the engine runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ThresholdSpec {
    pub kind: ThresholdKind,
    pub track: Track,
    pub count: u32,
    /// Window length; 0 for `backoff`, which has none.
    pub seconds: u32,
}

/// Which keyword a [`KeywordError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    Threshold,
    DetectionFilter,
}

impl fmt::Display for Keyword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Keyword::Threshold => "threshold",
            Keyword::DetectionFilter => "detection_filter",
        })
    }
}

/// A `threshold:` or `detection_filter:` value that is not valid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{keyword}: {kind}")]
pub struct KeywordError {
    pub keyword: Keyword,
    pub kind: KeywordErrorKind,
}

/// What is wrong with a keyword value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeywordErrorKind {
    #[error("expected `option value`, found `{0}`")]
    Malformed(String),
    #[error("unknown option `{0}`")]
    UnknownOption(String),
    #[error("option `{0}` given more than once")]
    Duplicate(String),
    #[error("missing option `{0}`")]
    Missing(&'static str),
    #[error("invalid value `{value}` for `{option}`")]
    InvalidValue { option: String, value: String },
    #[error("{0}")]
    Invalid(&'static str),
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
}

/// `key value` pairs of a keyword value, split on commas; each key at most once.
fn keyword_pairs<'a>(
    value: &'a str,
    keyword: Keyword,
    known: &[&str],
) -> Result<Vec<(&'a str, &'a str)>, KeywordError> {
    let err = |kind| KeywordError { keyword, kind };
    let mut out: Vec<(&str, &str)> = Vec::with_capacity(4);
    for part in value.split(',') {
        let part = part.trim();
        let mut words = part.split_whitespace();
        let (Some(key), Some(val), None) = (words.next(), words.next(), words.next()) else {
            return Err(err(KeywordErrorKind::Malformed(part.to_string())));
        };
        if !known.contains(&key) {
            return Err(err(KeywordErrorKind::UnknownOption(key.to_string())));
        }
        if out.iter().any(|(k, _)| *k == key) {
            return Err(err(KeywordErrorKind::Duplicate(key.to_string())));
        }
        out.push((key, val));
    }
    Ok(out)
}

fn lookup<'a>(pairs: &[(&str, &'a str)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// A decimal `u32` as Suricata's `StringParseUint32` takes it (digits only, no sign, no
/// overflow).
fn parse_u32(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl ThresholdSpec {
    /// Parses the value of a rule's `threshold:` keyword, e.g.
    /// `type limit, track by_src, count 1, seconds 60`.
    ///
    /// As Suricata 8: four comma-separated `option value` pairs in any order; `type`
    /// (`limit|threshold|both|backoff`), `track` (`by_src|by_dst|by_both|by_rule|by_flow`) and
    /// `count` always, then `seconds` — or `multiplier` for `backoff`, which also requires
    /// `track by_flow`. Options and values are lowercase (Suricata's regex is case-sensitive).
    /// Numbers are decimal `u32`; like Suricata's parser, `count 0` and `seconds 0` are not
    /// refused for `threshold:` (Suricata's tracker then behaves as the table in the module
    /// docs says for C = 0). `multiplier 0` and a `backoff` `count 0` are refused (Suricata
    /// would divide by zero / never alert).
    ///
    /// Stricter than Suricata: anything after the four pairs (Suricata's regex is not anchored
    /// at the end and ignores it) and empty parts (`, ,`) are errors.
    pub fn parse_threshold(value: &str) -> Result<ThresholdSpec, KeywordError> {
        let kw = Keyword::Threshold;
        let err = |kind| KeywordError { keyword: kw, kind };
        let pairs = keyword_pairs(
            value,
            kw,
            &["type", "track", "count", "seconds", "multiplier"],
        )?;
        let invalid = |option: &str, value: &str| {
            err(KeywordErrorKind::InvalidValue {
                option: option.to_string(),
                value: value.to_string(),
            })
        };
        let ty = lookup(&pairs, "type").ok_or(err(KeywordErrorKind::Missing("type")))?;
        let track = lookup(&pairs, "track").ok_or(err(KeywordErrorKind::Missing("track")))?;
        let count = lookup(&pairs, "count").ok_or(err(KeywordErrorKind::Missing("count")))?;
        let track = Track::parse(track).ok_or_else(|| invalid("track", track))?;
        let count = parse_u32(count).ok_or_else(|| invalid("count", count))?;
        let seconds = lookup(&pairs, "seconds");
        let multiplier = lookup(&pairs, "multiplier");
        let kind = match ty {
            "limit" => ThresholdKind::Limit,
            "threshold" => ThresholdKind::Threshold,
            "both" => ThresholdKind::Both,
            "backoff" => {
                if seconds.is_some() {
                    return Err(err(KeywordErrorKind::Invalid(
                        "type backoff takes `multiplier`, not `seconds`",
                    )));
                }
                let m = multiplier.ok_or(err(KeywordErrorKind::Missing("multiplier")))?;
                let m = parse_u32(m)
                    .filter(|&m| m > 0)
                    .ok_or_else(|| invalid("multiplier", m))?;
                if track != Track::ByFlow {
                    return Err(err(KeywordErrorKind::Invalid(
                        "type backoff is only supported with track by_flow",
                    )));
                }
                if count == 0 {
                    return Err(err(KeywordErrorKind::Invalid(
                        "type backoff needs a count of at least 1",
                    )));
                }
                return Ok(ThresholdSpec {
                    kind: ThresholdKind::Backoff { multiplier: m },
                    track,
                    count,
                    seconds: 0,
                });
            }
            other => return Err(invalid("type", other)),
        };
        if multiplier.is_some() {
            return Err(err(KeywordErrorKind::Invalid(
                "`multiplier` is only valid with type backoff",
            )));
        }
        let seconds = seconds.ok_or(err(KeywordErrorKind::Missing("seconds")))?;
        let seconds = parse_u32(seconds).ok_or_else(|| invalid("seconds", seconds))?;
        Ok(ThresholdSpec {
            kind,
            track,
            count,
            seconds,
        })
    }

    /// Parses the value of a rule's `detection_filter:` keyword, e.g.
    /// `track by_src, count 15, seconds 2`.
    ///
    /// As Suricata 8: `track` (`by_src|by_dst|by_both|by_rule|by_flow`), `count` and `seconds`
    /// exactly once each, in any order, nothing else; count and seconds must be non-zero.
    /// `unique_on` (distinct-port counting, newer than 8.0) is reported as unsupported rather
    /// than silently ignored, since ignoring it would change when the rule alerts.
    pub fn parse_detection_filter(value: &str) -> Result<ThresholdSpec, KeywordError> {
        let kw = Keyword::DetectionFilter;
        let err = |kind| KeywordError { keyword: kw, kind };
        let pairs = keyword_pairs(value, kw, &["track", "count", "seconds", "unique_on"])?;
        if lookup(&pairs, "unique_on").is_some() {
            return Err(err(KeywordErrorKind::Unsupported(
                "`unique_on` (distinct port counting)",
            )));
        }
        let invalid = |option: &str, value: &str| {
            err(KeywordErrorKind::InvalidValue {
                option: option.to_string(),
                value: value.to_string(),
            })
        };
        let track = lookup(&pairs, "track").ok_or(err(KeywordErrorKind::Missing("track")))?;
        let count = lookup(&pairs, "count").ok_or(err(KeywordErrorKind::Missing("count")))?;
        let seconds = lookup(&pairs, "seconds").ok_or(err(KeywordErrorKind::Missing("seconds")))?;
        let track = Track::parse(track).ok_or_else(|| invalid("track", track))?;
        let count = parse_u32(count)
            .filter(|&c| c > 0)
            .ok_or_else(|| invalid("count", count))?;
        let seconds = parse_u32(seconds)
            .filter(|&s| s > 0)
            .ok_or_else(|| invalid("seconds", seconds))?;
        Ok(ThresholdSpec {
            kind: ThresholdKind::DetectionFilter,
            track,
            count,
            seconds,
        })
    }
}

// ------------------------------------------------------------------------------------------------
// threshold.config
// ------------------------------------------------------------------------------------------------

/// Which address a `suppress` checks against its list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SuppressTrack {
    BySrc,
    ByDst,
    /// Source or destination.
    ByEither,
}

/// A `suppress` with an address list: the rule does not alert when the tracked address is in
/// the list (its action still applies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    pub track: SuppressTrack,
    pub addrs: AddressSet,
}

impl Suppression {
    /// Whether this suppression applies to a packet (`ThresholdHandlePacketSuppress`).
    pub fn matches(&self, src: IpAddr, dst: IpAddr) -> bool {
        match self.track {
            SuppressTrack::BySrc => self.addrs.contains(src),
            SuppressTrack::ByDst => self.addrs.contains(dst),
            SuppressTrack::ByEither => self.addrs.contains(src) || self.addrs.contains(dst),
        }
    }
}

/// What one `threshold.config` line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigDirective {
    /// `threshold` or `event_filter` (kind limit, threshold or both).
    Threshold(ThresholdSpec),
    /// `rate_filter` (kind [`ThresholdKind::Rate`]).
    RateFilter(ThresholdSpec),
    /// `suppress`: `None` for the whole rule (Suricata's `noalert`), else by address.
    Suppress(Option<Suppression>),
}

/// One `threshold.config` line. `gid`/`sid` 0 mean "all": `gen_id 0, sig_id 0` is every
/// signature, `gen_id G, sig_id 0` every signature of generator G.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// 1-based line the entry starts on.
    pub line: usize,
    pub gid: u32,
    pub sid: u32,
    pub directive: ConfigDirective,
}

impl ConfigEntry {
    fn applies_to(&self, gid: u32, sid: u32) -> bool {
        match (self.gid, self.sid) {
            (0, 0) => true,
            (g, 0) => g == gid,
            (g, s) => g == gid && s == sid,
        }
    }
}

/// What is wrong with a `threshold.config` line.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigErrorKind {
    #[error("unknown directive `{0}`: expected threshold, event_filter, rate_filter or suppress")]
    UnknownDirective(String),
    #[error("expected `{expected}`, found `{found}`")]
    Expected {
        expected: &'static str,
        found: String,
    },
    #[error("invalid value `{value}` for `{field}`")]
    InvalidValue { field: &'static str, value: String },
    #[error("count must be greater than 0")]
    ZeroCount,
    #[error("sig_id {0} with gen_id 0: a specific sig_id needs its gen_id")]
    SidWithoutGid(u32),
    #[error("unexpected text after the last field: `{0}`")]
    Trailing(String),
    #[error("invalid address `{0}`")]
    BadAddress(String),
    #[error("unsupported in an ip list: {0}")]
    UnsupportedAddress(String),
    #[error("address variable `${0}` used but no variable resolver was given")]
    NoResolver(String),
    #[error("unknown address variable `${0}`")]
    UnknownVariable(String),
    #[error("line continued with `\\` at the end of the file")]
    UnterminatedContinuation,
}

/// A `threshold.config` line that could not be read, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{origin}:{line}: {kind}")]
pub struct ThresholdConfigError {
    pub origin: String,
    /// 1-based line the entry starts on.
    pub line: usize,
    pub kind: ConfigErrorKind,
}

/// A parsed `threshold.config`, entries in file order.
///
/// Syntax, as Suricata's `util-threshold-config.c`:
///
/// ```text
/// threshold gen_id G, sig_id S, type limit|threshold|both, track T, count C, seconds N
/// event_filter …                        (same as threshold)
/// rate_filter gen_id G, sig_id S, track T, count C, seconds N, new_action A, timeout N
/// suppress gen_id G, sig_id S
/// suppress gen_id G, sig_id S, track by_src|by_dst|by_either, ip ADDRESSES
/// ```
///
/// Fields come in exactly this order; `T` is `by_src|by_dst|by_both|by_rule|by_flow`; `A` is
/// `alert|drop|pass|reject` (`log`, `sdrop` accepted, no effect). Count must be > 0. Lines
/// ending in `\` continue on the next line. Blank lines and lines starting with `#` are
/// skipped; a `#` after an entry is an error (Suricata's regexes reject it too). `gen_id 0`
/// with a non-zero `sig_id` is an error (Suricata: error for suppress, ignored with an error
/// message for thresholds).
///
/// `ADDRESSES` is an address, a CIDR (`/24` or `/255.255.255.0`), `any`, `$VAR` or a
/// bracketed, comma-separated list of those (nesting allowed). Variables go through the
/// [`VarResolver`] passed to [`ThresholdConfig::parse`]; without one, or for an unknown
/// variable, the line is an error. Negation (`!`) and ranges (`a-b`) are not accepted — neither
/// is allowed by Suricata's suppress regex.
///
/// Unlike Suricata, which logs a bad line and goes on, [`ThresholdConfig::parse`] stops at the
/// first bad line; [`ThresholdConfig::parse_lenient`] keeps Suricata's skip-and-continue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThresholdConfig {
    entries: Vec<ConfigEntry>,
}

impl ThresholdConfig {
    /// Reads a whole `threshold.config`; the first bad line is an error naming `origin` and the
    /// line.
    pub fn parse(
        text: &str,
        origin: &str,
        vars: Option<VarResolver<'_>>,
    ) -> Result<ThresholdConfig, ThresholdConfigError> {
        let mut entries = Vec::new();
        for logical in logical_lines(text) {
            let (line, joined) = logical.map_err(|(line, kind)| ThresholdConfigError {
                origin: origin.to_string(),
                line,
                kind,
            })?;
            let entry =
                parse_config_line(&joined, line, vars).map_err(|kind| ThresholdConfigError {
                    origin: origin.to_string(),
                    line,
                    kind,
                })?;
            entries.push(entry);
        }
        Ok(ThresholdConfig { entries })
    }

    /// Reads a whole `threshold.config`, skipping bad lines as Suricata does; returns the good
    /// entries and an error for each bad line.
    pub fn parse_lenient(
        text: &str,
        origin: &str,
        vars: Option<VarResolver<'_>>,
    ) -> (ThresholdConfig, Vec<ThresholdConfigError>) {
        let mut entries = Vec::new();
        let mut errors = Vec::new();
        for logical in logical_lines(text) {
            let parsed = logical.and_then(|(line, joined)| {
                parse_config_line(&joined, line, vars).map_err(|kind| (line, kind))
            });
            match parsed {
                Ok(e) => entries.push(e),
                Err((line, kind)) => errors.push(ThresholdConfigError {
                    origin: origin.to_string(),
                    line,
                    kind,
                }),
            }
        }
        (ThresholdConfig { entries }, errors)
    }

    /// The entries in file order.
    pub fn entries(&self) -> &[ConfigEntry] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The thresholds a signature runs with: its own `threshold:`/`detection_filter:` (`rule`)
    /// combined with every entry that names it, applied in file order the way Suricata installs
    /// them (`SetupThresholdRule`, `SetupSuppressRule`):
    ///
    /// * `suppress` without address → `noalert`; with address → appended to the suppressions
    ///   (suppressions always add up, whatever thresholds the rule has);
    /// * a specific `threshold`/`event_filter` (sid ≠ 0) replaces whatever threshold the
    ///   signature has at that point (rule keyword, earlier entry or rate_filter);
    /// * a specific `rate_filter` is installed only if the signature has no threshold and no
    ///   detection_filter/rate_filter yet (Suricata: "the signature event var is given
    ///   precedence"); otherwise it is ignored;
    /// * a wildcard `threshold`/`rate_filter` (sid 0) is installed only on signatures that have
    ///   none yet; it never overrides a rule's own keyword.
    ///
    /// A signature therefore ends with at most one threshold.
    pub fn resolve(&self, gid: u32, sid: u32, rule: Option<&ThresholdSpec>) -> SigThresholds {
        let mut out = SigThresholds {
            noalert: false,
            suppressions: Vec::new(),
            threshold: rule.copied(),
        };
        for e in self.entries.iter().filter(|e| e.applies_to(gid, sid)) {
            match &e.directive {
                ConfigDirective::Suppress(None) => out.noalert = true,
                ConfigDirective::Suppress(Some(s)) => out.suppressions.push(s.clone()),
                ConfigDirective::Threshold(spec) if e.sid != 0 => out.threshold = Some(*spec),
                ConfigDirective::Threshold(spec) | ConfigDirective::RateFilter(spec) => {
                    if out.threshold.is_none() {
                        out.threshold = Some(*spec);
                    }
                }
            }
        }
        out
    }
}

/// Joins `\`-continued lines and drops blank and comment lines. Yields the 1-based number of
/// the first physical line and the joined text.
#[allow(clippy::type_complexity)]
fn logical_lines(
    text: &str,
) -> impl Iterator<Item = Result<(usize, String), (usize, ConfigErrorKind)>> + '_ {
    let mut lines = text.lines().enumerate();
    std::iter::from_fn(move || {
        let mut joined = String::new();
        let mut start = 0;
        loop {
            let Some((idx, raw)) = lines.next() else {
                return if joined.is_empty() {
                    None
                } else {
                    Some(Err((start, ConfigErrorKind::UnterminatedContinuation)))
                };
            };
            if joined.is_empty() {
                if is_blank_or_comment(raw) {
                    continue;
                }
                start = idx + 1;
            }
            // Suricata: a `\` followed only by whitespace continues the line; the next line's
            // text replaces the backslash.
            let trimmed = raw.trim_end();
            if let Some(head) = trimmed.strip_suffix('\\') {
                joined.push_str(head);
                continue;
            }
            joined.push_str(raw);
            return Some(Ok((start, joined)));
        }
    })
}

/// Cursor over one logical `threshold.config` line.
struct Fields<'a> {
    rest: &'a str,
}

impl<'a> Fields<'a> {
    fn found(&self) -> String {
        let f = self.rest.trim();
        let end = f.char_indices().nth(40).map_or(f.len(), |(i, _)| i);
        f[..end].to_string()
    }

    /// `word` after optional whitespace.
    fn keyword(&mut self, word: &'static str) -> Result<(), ConfigErrorKind> {
        let r = self.rest.trim_start();
        match r.strip_prefix(word) {
            Some(after) => {
                self.rest = after;
                Ok(())
            }
            None => Err(ConfigErrorKind::Expected {
                expected: word,
                found: self.found(),
            }),
        }
    }

    /// A token up to the next comma (or the end), trimmed.
    fn token(&mut self) -> &'a str {
        let r = self.rest;
        let end = r.find(',').unwrap_or(r.len());
        self.rest = &r[end..];
        r[..end].trim()
    }

    /// `, name value` — Suricata allows no space between name and value (`\s*`).
    fn field(&mut self, name: &'static str) -> Result<&'a str, ConfigErrorKind> {
        self.keyword(",").map_err(|_| ConfigErrorKind::Expected {
            expected: name,
            found: self.found(),
        })?;
        self.keyword(name)?;
        Ok(self.token())
    }

    fn number(&mut self, name: &'static str) -> Result<u32, ConfigErrorKind> {
        let v = self.field(name)?;
        parse_u32(v).ok_or_else(|| ConfigErrorKind::InvalidValue {
            field: name,
            value: v.to_string(),
        })
    }

    fn end(&self) -> Result<(), ConfigErrorKind> {
        let r = self.rest.trim();
        if r.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrorKind::Trailing(r.to_string()))
        }
    }
}

fn parse_config_line(
    text: &str,
    line: usize,
    vars: Option<VarResolver<'_>>,
) -> Result<ConfigEntry, ConfigErrorKind> {
    let s = text.trim();
    let word_end = s
        .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
        .unwrap_or(s.len());
    let word = &s[..word_end];
    #[derive(PartialEq)]
    enum D {
        Threshold,
        Rate,
        Suppress,
    }
    let d = match word {
        "threshold" | "event_filter" => D::Threshold,
        "rate_filter" => D::Rate,
        "suppress" => D::Suppress,
        // `thresholdgen_id …`: Suricata's `\s*` lets the directive touch `gen_id`.
        w if w.ends_with("gen_id") => match &w[..w.len() - "gen_id".len()] {
            "threshold" | "event_filter" => D::Threshold,
            "rate_filter" => D::Rate,
            "suppress" => D::Suppress,
            _ => return Err(ConfigErrorKind::UnknownDirective(word.to_string())),
        },
        _ => {
            let shown = s.split_whitespace().next().unwrap_or("");
            return Err(ConfigErrorKind::UnknownDirective(shown.to_string()));
        }
    };
    let after_word = if word.ends_with("gen_id") && word != "gen_id" {
        &s[word_end - "gen_id".len()..]
    } else {
        &s[word_end..]
    };
    let mut f = Fields { rest: after_word };
    f.keyword("gen_id")?;
    let gid_s = f.token();
    let gid = parse_u32(gid_s).ok_or_else(|| ConfigErrorKind::InvalidValue {
        field: "gen_id",
        value: gid_s.to_string(),
    })?;
    let sid = f.number("sig_id")?;
    if gid == 0 && sid != 0 {
        return Err(ConfigErrorKind::SidWithoutGid(sid));
    }
    let directive = match d {
        D::Threshold => {
            let ty = f.field("type")?;
            let kind = match ty {
                "limit" => ThresholdKind::Limit,
                "threshold" => ThresholdKind::Threshold,
                "both" => ThresholdKind::Both,
                _ => {
                    return Err(ConfigErrorKind::InvalidValue {
                        field: "type",
                        value: ty.to_string(),
                    })
                }
            };
            let track = config_track(f.field("track")?)?;
            let count = f.number("count")?;
            let seconds = f.number("seconds")?;
            f.end()?;
            if count == 0 {
                return Err(ConfigErrorKind::ZeroCount);
            }
            ConfigDirective::Threshold(ThresholdSpec {
                kind,
                track,
                count,
                seconds,
            })
        }
        D::Rate => {
            let track = config_track(f.field("track")?)?;
            let count = f.number("count")?;
            let seconds = f.number("seconds")?;
            let a = f.field("new_action")?;
            let new_action = RateAction::parse(a).ok_or_else(|| ConfigErrorKind::InvalidValue {
                field: "new_action",
                value: a.to_string(),
            })?;
            let timeout = f.number("timeout")?;
            f.end()?;
            if count == 0 {
                return Err(ConfigErrorKind::ZeroCount);
            }
            ConfigDirective::RateFilter(ThresholdSpec {
                kind: ThresholdKind::Rate {
                    new_action,
                    timeout,
                },
                track,
                count,
                seconds,
            })
        }
        D::Suppress => {
            if f.rest.trim().is_empty() {
                ConfigDirective::Suppress(None)
            } else {
                let t = f.field("track")?;
                let track = match t {
                    "by_src" => SuppressTrack::BySrc,
                    "by_dst" => SuppressTrack::ByDst,
                    "by_either" => SuppressTrack::ByEither,
                    _ => {
                        return Err(ConfigErrorKind::InvalidValue {
                            field: "track",
                            value: t.to_string(),
                        })
                    }
                };
                f.keyword(",").map_err(|_| ConfigErrorKind::Expected {
                    expected: "ip",
                    found: f.found(),
                })?;
                f.keyword("ip")?;
                let spec = f.rest.trim();
                if spec.is_empty() {
                    return Err(ConfigErrorKind::BadAddress(String::new()));
                }
                let mut nets = Vec::new();
                parse_addresses(spec, vars, &mut nets, 0)?;
                ConfigDirective::Suppress(Some(Suppression {
                    track,
                    addrs: AddressSet::new(nets),
                }))
            }
        }
    };
    Ok(ConfigEntry {
        line,
        gid,
        sid,
        directive,
    })
}

fn config_track(t: &str) -> Result<Track, ConfigErrorKind> {
    Track::parse(t).ok_or_else(|| ConfigErrorKind::InvalidValue {
        field: "track",
        value: t.to_string(),
    })
}

/// Splits `a, [b, c], d` at top-level commas.
fn split_top_level(s: &str) -> Option<Vec<&str>> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.checked_sub(1)?,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return None;
    }
    out.push(&s[start..]);
    Some(out)
}

fn parse_addresses(
    spec: &str,
    vars: Option<VarResolver<'_>>,
    out: &mut Vec<IpNet>,
    depth: usize,
) -> Result<(), ConfigErrorKind> {
    let s = spec.trim();
    if depth > 16 {
        return Err(ConfigErrorKind::BadAddress(s.to_string()));
    }
    if let Some(inner) = s.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or_else(|| ConfigErrorKind::BadAddress(s.to_string()))?;
        let parts =
            split_top_level(inner).ok_or_else(|| ConfigErrorKind::BadAddress(s.to_string()))?;
        for p in parts {
            if p.trim().is_empty() {
                return Err(ConfigErrorKind::BadAddress(s.to_string()));
            }
            parse_addresses(p, vars, out, depth + 1)?;
        }
        return Ok(());
    }
    if let Some(name) = s.strip_prefix('$') {
        let resolver = vars.ok_or_else(|| ConfigErrorKind::NoResolver(name.to_string()))?;
        let nets =
            resolver(name).ok_or_else(|| ConfigErrorKind::UnknownVariable(name.to_string()))?;
        out.extend(nets);
        return Ok(());
    }
    if s == "any" {
        out.push(IpNet::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0).expect("/0 is valid"));
        out.push(IpNet::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0).expect("/0 is valid"));
        return Ok(());
    }
    if s.starts_with('!') {
        return Err(ConfigErrorKind::UnsupportedAddress(format!(
            "negation `{s}`"
        )));
    }
    if s.contains('-') {
        return Err(ConfigErrorKind::UnsupportedAddress(format!("range `{s}`")));
    }
    let net: IpNet = s
        .parse()
        .map_err(|_| ConfigErrorKind::BadAddress(s.to_string()))?;
    out.push(net);
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Per-signature view
// ------------------------------------------------------------------------------------------------

/// Everything thresholding knows about one signature: build it once at rule load with
/// [`SigThresholds::from_rule`] or [`ThresholdConfig::resolve`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SigThresholds {
    /// A `suppress` without address named this signature: it never alerts, but its threshold
    /// still counts and its action still applies.
    pub noalert: bool,
    /// `suppress` lines with addresses, checked before the threshold.
    pub suppressions: Vec<Suppression>,
    /// The rule's own `threshold:`/`detection_filter:`, or the `threshold.config` entry that
    /// replaced or supplied it.
    pub threshold: Option<ThresholdSpec>,
}

impl SigThresholds {
    /// A signature with only its own keyword (no `threshold.config`).
    pub fn from_rule(rule: Option<ThresholdSpec>) -> SigThresholds {
        SigThresholds {
            noalert: false,
            suppressions: Vec::new(),
            threshold: rule,
        }
    }

    /// Nothing to do for this signature: every match alerts.
    pub fn is_empty(&self) -> bool {
        !self.noalert && self.suppressions.is_empty() && self.threshold.is_none()
    }
}

/// The signature a match belongs to.
#[derive(Debug, Clone, Copy)]
pub struct SigRef<'a> {
    pub gid: u32,
    pub sid: u32,
    /// Part of the tracking key, as in Suricata 8: a new revision starts fresh.
    pub rev: u32,
    pub thresholds: &'a SigThresholds,
}

/// What to do with one rule match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Log the alert and apply the rule's action.
    Alert,
    /// A `rate_filter` is active: apply `action` instead of the rule's action. `alert` is false
    /// only for a `noalert` (suppressed) signature. (As in Suricata, what `pass` does to the
    /// alert itself is up to the engine's usual pass handling.)
    NewAction { action: RateAction, alert: bool },
    /// No alert, but the rule's action still applies (Suricata's silent match / suppression).
    Suppress,
    /// No alert and no action: the threshold is not reached, the match does not count as one.
    Discard,
}

impl Verdict {
    /// Whether an alert is logged.
    pub fn alerts(self) -> bool {
        match self {
            Verdict::Alert => true,
            Verdict::NewAction { alert, .. } => alert,
            Verdict::Suppress | Verdict::Discard => false,
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Runtime state
// ------------------------------------------------------------------------------------------------

/// What to do when the table is full and no entry has expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFull {
    /// Recycle an entry (Suricata's behaviour at its memcap): the one whose window ends soonest,
    /// else the least recently used `by_flow` entry.
    #[default]
    Evict,
    /// Track nothing new; the match is a [`Verdict::Discard`] (Suricata's result when it cannot
    /// get an entry).
    Refuse,
}

/// Bounds of a [`ThresholdState`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThresholdLimits {
    /// Most entries tracked at once (each is a few dozen bytes plus map overhead).
    pub max_entries: usize,
    pub on_full: OnFull,
}

impl Default for ThresholdLimits {
    fn default() -> Self {
        ThresholdLimits {
            max_entries: 100_000,
            on_full: OnFull::Evict,
        }
    }
}

/// Counters of a [`ThresholdState`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ThresholdStats {
    /// Entries tracked now.
    pub entries: usize,
    /// Entries removed because their window (or rate_filter timeout) was over.
    pub expired: u64,
    /// Live entries recycled because the table was full ([`OnFull::Evict`]).
    pub evicted: u64,
    /// New entries not made because the table was full ([`OnFull::Refuse`], or a limit of 0).
    pub refused: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Scope {
    Rule,
    Src(IpAddr),
    Dst(IpAddr),
    /// Lower address first.
    Both(IpAddr, IpAddr),
    Flow(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    gid: u32,
    sid: u32,
    rev: u32,
    scope: Scope,
}

/// Place in the eviction order: windowed entries by the last instant they matter, then flow
/// entries by last use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    /// Removable once `ts > .0`.
    Windowed(u64),
    /// Last matched at `.0`; never expires by time.
    Flow(u64),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// First match of the current window, ns.
    tv1: u64,
    count: u32,
    /// rate_filter: second the new action started.
    timeout_start: Option<u64>,
    /// backoff: the count that alerts next.
    next_value: u32,
    slot: Slot,
}

/// Suricata's three outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Res {
    /// 0: no match.
    Discard,
    /// 1: alert.
    Alert,
    /// 2: silent match.
    Silent,
}

/// Entries removed per [`ThresholdState::check`] when the table is not full.
const HOUSEKEEPING_BATCH: usize = 2;

/// The thresholding table of one detection engine. See the module docs.
#[derive(Debug, Default)]
pub struct ThresholdState {
    limits: ThresholdLimits,
    entries: HashMap<Key, Entry>,
    order: BTreeSet<(Slot, Key)>,
    flows: HashMap<u64, Vec<Key>>,
    expired: u64,
    evicted: u64,
    refused: u64,
}

impl ThresholdState {
    pub fn new(limits: ThresholdLimits) -> ThresholdState {
        ThresholdState {
            limits,
            ..ThresholdState::default()
        }
    }

    pub fn limits(&self) -> ThresholdLimits {
        self.limits
    }

    /// Decides what a match of `sig` on a packet from `src` to `dst` (flow `flow_id`, packet time
    /// `ts_ns` in nanoseconds) becomes, and updates the tracking state. Call it once per match
    /// that would otherwise alert, in the order the engine handles alerts.
    pub fn check(
        &mut self,
        sig: SigRef<'_>,
        src: IpAddr,
        dst: IpAddr,
        flow_id: u64,
        ts_ns: u64,
    ) -> Verdict {
        let t = sig.thresholds;
        if t.suppressions.iter().any(|s| s.matches(src, dst)) {
            return Verdict::Suppress;
        }
        let (res, action) = match &t.threshold {
            None => (Res::Alert, None),
            Some(spec) => self.apply(sig, spec, src, dst, flow_id, ts_ns),
        };
        match (res, action) {
            (Res::Discard, _) => Verdict::Discard,
            (Res::Silent, _) => Verdict::Suppress,
            (Res::Alert, Some(action)) => Verdict::NewAction {
                action,
                alert: !t.noalert,
            },
            (Res::Alert, None) if t.noalert => Verdict::Suppress,
            (Res::Alert, None) => Verdict::Alert,
        }
    }

    /// Forgets the `by_flow` entries of a flow (call when the flow ends).
    pub fn flow_ended(&mut self, flow_id: u64) {
        if let Some(keys) = self.flows.remove(&flow_id) {
            for key in keys {
                if let Some(e) = self.entries.remove(&key) {
                    self.order.remove(&(e.slot, key));
                }
            }
        }
    }

    /// Removes every entry whose window is over at `ts_ns`; returns how many. Optional: `check`
    /// already does this a little at a time and fully when the table is full.
    pub fn expire(&mut self, ts_ns: u64) -> usize {
        self.expire_upto(ts_ns, usize::MAX)
    }

    /// Entries tracked now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn stats(&self) -> ThresholdStats {
        ThresholdStats {
            entries: self.entries.len(),
            expired: self.expired,
            evicted: self.evicted,
            refused: self.refused,
        }
    }

    fn expire_upto(&mut self, ts_ns: u64, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            match self.order.first() {
                Some(&(Slot::Windowed(dead), key)) if ts_ns > dead => {
                    self.remove(Slot::Windowed(dead), key);
                    n += 1;
                }
                _ => break,
            }
        }
        self.expired += n as u64;
        n
    }

    fn remove(&mut self, slot: Slot, key: Key) {
        self.order.remove(&(slot, key));
        self.entries.remove(&key);
        if let Scope::Flow(id) = key.scope {
            if let Some(keys) = self.flows.get_mut(&id) {
                keys.retain(|k| *k != key);
                if keys.is_empty() {
                    self.flows.remove(&id);
                }
            }
        }
    }

    /// Room for one more entry: expire, then evict or refuse.
    fn make_room(&mut self, ts_ns: u64) -> bool {
        self.expire_upto(ts_ns, usize::MAX);
        if self.entries.len() < self.limits.max_entries {
            return true;
        }
        if self.limits.on_full == OnFull::Refuse {
            return false;
        }
        match self.order.first().copied() {
            Some((slot, key)) => {
                self.remove(slot, key);
                self.evicted += 1;
                self.entries.len() < self.limits.max_entries
            }
            None => false,
        }
    }

    fn apply(
        &mut self,
        sig: SigRef<'_>,
        spec: &ThresholdSpec,
        src: IpAddr,
        dst: IpAddr,
        flow_id: u64,
        ts_ns: u64,
    ) -> (Res, Option<RateAction>) {
        // Suricata's fast path: `type threshold, count 1` alerts on every match, stateless —
        // except by_flow, which takes the flow path.
        if spec.kind == ThresholdKind::Threshold && spec.count == 1 && spec.track != Track::ByFlow {
            return (Res::Alert, None);
        }
        let scope = match spec.track {
            Track::BySrc => Scope::Src(src),
            Track::ByDst => Scope::Dst(dst),
            Track::ByBoth => {
                if src <= dst {
                    Scope::Both(src, dst)
                } else {
                    Scope::Both(dst, src)
                }
            }
            Track::ByRule => Scope::Rule,
            Track::ByFlow => Scope::Flow(flow_id),
        };
        let key = Key {
            gid: sig.gid,
            sid: sig.sid,
            rev: sig.rev,
            scope,
        };
        self.expire_upto(ts_ns, HOUSEKEEPING_BATCH);

        // An entry past its end is treated as gone whether or not housekeeping has reached it
        // yet, so the outcome never depends on other traffic.
        if let Some(&Entry {
            slot: Slot::Windowed(dead),
            ..
        }) = self.entries.get(&key)
        {
            if ts_ns > dead {
                self.remove(Slot::Windowed(dead), key);
                self.expired += 1;
            }
        }
        if let Some(entry) = self.entries.get_mut(&key) {
            let out = update(entry, spec, ts_ns);
            let old = entry.slot;
            let new = slot_of(entry, spec, scope, ts_ns);
            if new != old {
                entry.slot = new;
                self.order.remove(&(old, key));
                self.order.insert((new, key));
            }
            return out;
        }

        if self.entries.len() >= self.limits.max_entries && !self.make_room(ts_ns) {
            self.refused += 1;
            return (Res::Discard, None);
        }
        let (mut entry, res) = setup(spec, ts_ns);
        entry.slot = slot_of(&entry, spec, scope, ts_ns);
        self.order.insert((entry.slot, key));
        self.entries.insert(key, entry);
        if let Scope::Flow(id) = scope {
            self.flows.entry(id).or_default().push(key);
        }
        (res, None)
    }
}

/// Suricata's `BackoffCalcNextValue`: `cur * m`, or `u32::MAX` when that would overflow.
fn backoff_next(cur: u32, m: u32) -> u32 {
    cur.saturating_mul(m)
}

/// A new entry for the first match (`ThresholdSetup`).
fn setup(spec: &ThresholdSpec, ts_ns: u64) -> (Entry, Res) {
    let mut e = Entry {
        tv1: ts_ns,
        count: 1,
        timeout_start: None,
        next_value: 0,
        slot: Slot::Flow(0),
    };
    let res = match spec.kind {
        ThresholdKind::Limit | ThresholdKind::Rate { .. } => Res::Alert,
        ThresholdKind::Threshold | ThresholdKind::Both => {
            if spec.count == 1 {
                Res::Alert
            } else {
                Res::Discard
            }
        }
        ThresholdKind::Backoff { multiplier } => {
            e.next_value = spec.count;
            if spec.count == 1 {
                e.next_value = backoff_next(e.next_value, multiplier);
                Res::Alert
            } else {
                Res::Discard
            }
        }
        ThresholdKind::DetectionFilter => Res::Discard,
    };
    (e, res)
}

/// A further match on an existing entry (`ThresholdCheckUpdate`).
fn update(e: &mut Entry, spec: &ThresholdSpec, ts_ns: u64) -> (Res, Option<RateAction>) {
    let window_end = e
        .tv1
        .saturating_add(u64::from(spec.seconds).saturating_mul(NS_PER_SEC));
    let in_window = ts_ns <= window_end;
    let reset = |e: &mut Entry| {
        e.tv1 = ts_ns;
        e.count = 1;
    };
    let res = match spec.kind {
        ThresholdKind::Limit => {
            if in_window {
                e.count = e.count.saturating_add(1);
                if e.count <= spec.count {
                    Res::Alert
                } else {
                    Res::Silent
                }
            } else {
                reset(e);
                Res::Alert
            }
        }
        ThresholdKind::Threshold => {
            if in_window {
                e.count = e.count.saturating_add(1);
                if e.count >= spec.count {
                    e.count = 0;
                    Res::Alert
                } else {
                    Res::Discard
                }
            } else {
                reset(e);
                Res::Discard
            }
        }
        ThresholdKind::Both => {
            if in_window {
                e.count = e.count.saturating_add(1);
                match e.count.cmp(&spec.count) {
                    std::cmp::Ordering::Equal => Res::Alert,
                    std::cmp::Ordering::Greater => Res::Silent,
                    std::cmp::Ordering::Less => Res::Discard,
                }
            } else {
                reset(e);
                if spec.count == 1 {
                    Res::Alert
                } else {
                    Res::Discard
                }
            }
        }
        ThresholdKind::DetectionFilter => {
            if in_window {
                e.count = e.count.saturating_add(1);
                if e.count > spec.count {
                    Res::Alert
                } else {
                    Res::Discard
                }
            } else {
                reset(e);
                Res::Discard
            }
        }
        ThresholdKind::Backoff { multiplier } => {
            if e.count < u32::MAX {
                e.count += 1;
                if e.next_value == e.count {
                    e.next_value = backoff_next(e.next_value, multiplier);
                    Res::Alert
                } else {
                    Res::Silent
                }
            } else {
                Res::Silent
            }
        }
        ThresholdKind::Rate {
            new_action,
            timeout,
        } => {
            let ts_secs = ts_ns / NS_PER_SEC;
            let act = new_action.effective().then_some(new_action);
            let mut action = None;
            match e.timeout_start {
                Some(start) => {
                    if ts_secs.saturating_sub(start) > u64::from(timeout) {
                        // Timeout over: clear it; this match does not count.
                        e.timeout_start = None;
                    } else {
                        action = act;
                    }
                }
                None => {
                    if in_window {
                        e.count = e.count.saturating_add(1);
                        if e.count > spec.count {
                            e.timeout_start = Some(ts_secs);
                            action = act;
                        }
                    } else {
                        reset(e);
                    }
                }
            }
            return (Res::Alert, action);
        }
    };
    (res, None)
}

/// Where an entry sits in the eviction order after this match.
fn slot_of(e: &Entry, spec: &ThresholdSpec, scope: Scope, ts_ns: u64) -> Slot {
    if let Scope::Flow(_) = scope {
        return Slot::Flow(ts_ns);
    }
    let mut dead = e
        .tv1
        .saturating_add(u64::from(spec.seconds).saturating_mul(NS_PER_SEC));
    if let (ThresholdKind::Rate { timeout, .. }, Some(start)) = (spec.kind, e.timeout_start) {
        // Active while ts_secs <= start + timeout, i.e. up to the last ns of that second.
        let end = start
            .saturating_add(u64::from(timeout))
            .saturating_add(1)
            .saturating_mul(NS_PER_SEC)
            .saturating_sub(1);
        dead = dead.max(end);
    }
    Slot::Windowed(dead)
}

#[cfg(test)]
#[path = "threshold_tests.rs"]
mod tests;
