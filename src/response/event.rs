//! The EVE `response` event: every action taken, skipped, refused or failed, with why.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// The alert that asked for an action, as its EVE `alert` object names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertInfo {
    pub gid: u32,
    pub signature_id: u32,
    pub rev: u32,
    pub signature: String,
    pub category: String,
    pub severity: u8,
    /// The rule's action as written (`alert`, `reject`, `drop`, …).
    pub action: String,
}

#[derive(Debug, Clone)]
pub struct ResponseEvent {
    /// When it happened (wall clock, not packet time).
    pub ts_ns: u64,
    /// `reset`, `icmp-unreachable`, `block` or `unblock`.
    pub action: &'static str,
    /// `done`, `dry-run`, `already-blocked`, `expired`, `skipped`, `refused` or `failed`.
    pub outcome: &'static str,
    pub dry_run: bool,
    /// For resets: which ends of the alert (`src`, `dst`, `both`).
    pub target: Option<&'static str>,
    /// For blocks: the address.
    pub addr: Option<IpAddr>,
    pub for_secs: Option<u64>,
    /// Unix seconds the block ends.
    pub expires: Option<u64>,
    /// Why it was refused, skipped or failed.
    pub detail: Option<String>,
    /// What asked for it: rule action, policy name, operator.
    pub reasons: Vec<String>,
    pub iface: Option<String>,
    /// Alert to action done, in µs.
    pub latency_us: Option<u64>,
    pub operator_uid: Option<u32>,
    pub flow_id: Option<u64>,
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub ports: Option<(u16, u16)>,
    pub proto: Option<u8>,
    pub alert: Option<AlertInfo>,
}

impl ResponseEvent {
    pub fn new(action: &'static str, dry_run: bool) -> ResponseEvent {
        let ts_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos().min(u128::from(u64::MAX)) as u64);
        ResponseEvent {
            ts_ns,
            action,
            outcome: "done",
            dry_run,
            target: None,
            addr: None,
            for_secs: None,
            expires: None,
            detail: None,
            reasons: Vec::new(),
            iface: None,
            latency_us: None,
            operator_uid: None,
            flow_id: None,
            src: None,
            dst: None,
            ports: None,
            proto: None,
            alert: None,
        }
    }

    /// The EVE object (rare events: a `Value` is fine here).
    pub fn to_json(&self) -> Value {
        let mut ev = crate::output::eve::header_json(
            self.ts_ns,
            self.flow_id,
            "response",
            self.src,
            self.dst,
            self.ports,
            self.proto,
        );
        let mut r = Map::new();
        r.insert("action".into(), json!(self.action));
        r.insert("outcome".into(), json!(self.outcome));
        r.insert("dry_run".into(), json!(self.dry_run));
        let optional = [
            ("target", self.target.map(|t| json!(t))),
            ("address", self.addr.map(|a| json!(a))),
            ("for", self.for_secs.map(|s| json!(s))),
            (
                "expires",
                self.expires.map(|s| {
                    json!(crate::output::time::eve_timestamp_string(
                        s.saturating_mul(1_000_000_000)
                    ))
                }),
            ),
            ("detail", self.detail.as_ref().map(|d| json!(d))),
            (
                "reasons",
                (!self.reasons.is_empty()).then(|| json!(self.reasons)),
            ),
            ("iface", self.iface.as_ref().map(|i| json!(i))),
            ("latency_us", self.latency_us.map(|l| json!(l))),
            ("operator_uid", self.operator_uid.map(|u| json!(u))),
        ];
        for (key, value) in optional {
            if let Some(v) = value {
                r.insert(key.into(), v);
            }
        }
        ev.insert("response".into(), Value::Object(r));
        if let Some(alert) = &self.alert {
            ev.insert("alert".into(), json!(alert));
        }
        Value::Object(ev)
    }
}
