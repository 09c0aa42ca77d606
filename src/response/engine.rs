//! The responder: one thread that takes the workers' response requests and the operator's
//! commands, applies the allowlist, the rate limit and dry-run, injects resets, adds and
//! expires firewall blocks, and logs every action and refusal as an EVE `response` event.
//!
//! It runs off the workers: a worker only decides (a few comparisons per alert) and hands the
//! request over a bounded ring without waiting; a full ring is counted, never waited on.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use serde::{Deserialize, Serialize};

use super::allowlist::Allowlist;
use super::event::{AlertInfo, ResponseEvent};
use super::forge::{self, L2Header, TcpSeen, Toward};
use super::inject::Injector;
use super::nft::{Nft, NftConfig};
use super::policy::{Decision, Ends, Reason};
use super::webhook::{Webhook, WebhookConfig};
use crate::output::eve::EveEvent;

/// Requests the ring from the workers holds; beyond it requests are counted and dropped.
const REQUEST_RING: usize = 4096;
/// A flow reset once is not reset again for this long (every later packet of it may alert).
const RESET_REPEAT: Duration = Duration::from_secs(1);

/// Dry-run logs what would be done and changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    DryRun,
    Act,
}

#[derive(Debug, Clone)]
pub struct ResponderConfig {
    pub mode: Mode,
    /// Where resets leave; `None`: resets are refused (replay, or no interface known).
    pub inject_iface: Option<String>,
    /// Answer UDP flows a reject hits with ICMP port unreachable.
    pub icmp_unreachable: bool,
    pub max_actions_per_minute: u32,
    pub allowlist: Allowlist,
    /// `None`: no local firewall (blocks go only to the webhook, if any).
    pub firewall: Option<NftConfig>,
    pub webhook: Option<WebhookConfig>,
    /// Where blocks are remembered across restarts; `None` keeps them in memory only.
    pub state_file: Option<PathBuf>,
    /// Names this sensor in webhook bodies.
    pub sensor: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    #[error("active response: injection interface {iface}: {source}")]
    Inject {
        iface: String,
        source: super::inject::InjectError,
    },
    #[error("active response: firewall: {0}")]
    Firewall(#[from] super::nft::NftError),
    #[error("active response: webhook: {0}")]
    Webhook(#[from] super::webhook::WebhookError),
    #[error("active response: {0}")]
    Setup(String),
}

/// The triggering packet, as much of it as a reply needs.
#[derive(Debug, Clone)]
pub struct TriggerPacket {
    /// `None` when the capture has no plain Ethernet header to reply with (tunnels, MPLS,
    /// reassembled datagrams, other link types).
    pub l2: Option<L2Header>,
    pub tcp: Option<TcpSeen>,
    /// The packet's sender (which end of the alert it came from).
    pub sender: IpAddr,
    /// The packet from its IP header on, cut at 128 bytes: what an ICMP error quotes.
    pub ip_head: Vec<u8>,
}

/// An alert that calls for an action, from a worker.
#[derive(Debug, Clone)]
pub struct Request {
    /// When the worker decided: the start of the alert-to-action latency.
    pub alerted: Instant,
    pub flow_id: u64,
    pub alert: AlertInfo,
    pub decision: Decision,
    /// The alert's ends, as its EVE `src_ip`/`dest_ip` (and ports).
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ports: Option<(u16, u16)>,
    pub proto: u8,
    pub packet: Option<TriggerPacket>,
}

/// What the operator asks on the control socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Command {
    Block {
        addr: IpAddr,
        for_secs: u64,
        #[serde(default)]
        reason: String,
    },
    Unblock {
        addr: IpAddr,
    },
    Blocks,
}

/// One active block, as `vigil blocks` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockInfo {
    pub addr: IpAddr,
    /// Unix time (seconds) it expires.
    pub until: u64,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<BlockInfo>,
}

pub enum Msg {
    Alert(Box<Request>),
    Operator {
        command: Command,
        /// The peer's uid (SO_PEERCRED), for the log.
        uid: Option<u32>,
        reply: Sender<Reply>,
    },
    /// A reload's allowlist, rate limit and ICMP switch.
    Reconfigure(Box<super::LiveSettings>),
    Stop,
}

/// Counters the daemon reads for metrics and its stop line.
#[derive(Debug, Default)]
pub struct ResponseCounters {
    pub requests: AtomicU64,
    /// Requests a worker found the ring full for.
    pub requests_dropped: AtomicU64,
    pub resets: AtomicU64,
    pub icmp_unreachables: AtomicU64,
    pub blocks: AtomicU64,
    pub unblocks: AtomicU64,
    pub expired: AtomicU64,
    pub refused_allowlist: AtomicU64,
    pub refused_rate_limit: AtomicU64,
    pub dry_run: AtomicU64,
    pub failed: AtomicU64,
    pub blocks_active: AtomicU64,
    /// Alert-to-action latency of resets and blocks done, summed, in µs, and counted, for
    /// the averages in metrics (the events carry each one).
    pub reset_latency_us: AtomicU64,
    pub block_latency_us: AtomicU64,
}

impl ResponseCounters {
    pub fn snapshot(&self) -> crate::metrics::ResponseSnapshot {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        crate::metrics::ResponseSnapshot {
            requests: n(&self.requests),
            requests_dropped: n(&self.requests_dropped),
            resets: n(&self.resets),
            icmp_unreachables: n(&self.icmp_unreachables),
            blocks: n(&self.blocks),
            unblocks: n(&self.unblocks),
            expired: n(&self.expired),
            refused_allowlist: n(&self.refused_allowlist),
            refused_rate_limit: n(&self.refused_rate_limit),
            dry_run: n(&self.dry_run),
            failed: n(&self.failed),
            blocks_active: n(&self.blocks_active),
            reset_latency_seconds: n(&self.reset_latency_us) as f64 / 1e6,
            block_latency_seconds: n(&self.block_latency_us) as f64 / 1e6,
        }
    }
}

/// The worker side of the ring.
#[derive(Clone)]
pub struct RequestSender {
    tx: Sender<Msg>,
    counters: Arc<ResponseCounters>,
}

impl RequestSender {
    /// Hands a request over without waiting: a full ring counts a drop.
    pub fn send(&self, request: Request) {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        if self.tx.try_send(Msg::Alert(Box::new(request))).is_err() {
            self.counters
                .requests_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The running responder.
pub struct Responder {
    tx: Sender<Msg>,
    thread: Option<JoinHandle<()>>,
    pub counters: Arc<ResponseCounters>,
}

/// The responder with what needs privileges already open (injection socket, firewall table,
/// restored blocks), before the daemon drops root; no thread runs yet.
pub struct Prepared {
    config: ResponderConfig,
    injector: Option<Injector>,
    nft: Option<Nft>,
    blocks: HashMap<IpAddr, Block>,
}

impl Prepared {
    /// Starts the responder thread (and the webhook's) once privileges are dropped.
    pub fn start(self, events: Sender<Vec<EveEvent>>) -> Result<Responder, ResponseError> {
        let counters = Arc::new(ResponseCounters::default());
        let webhook = match (&self.config.webhook, self.config.mode) {
            (Some(cfg), Mode::Act) => Some(Webhook::spawn(cfg.clone())?),
            _ => None,
        };
        let (tx, rx) = bounded(REQUEST_RING);
        counters
            .blocks_active
            .store(self.blocks.len() as u64, Ordering::Relaxed);
        let rate = RateLimit::new(self.config.max_actions_per_minute);
        let mut engine = Engine {
            config: self.config,
            events,
            counters: Arc::clone(&counters),
            injector: self.injector,
            nft: self.nft,
            webhook,
            blocks: self.blocks,
            recent_resets: HashMap::new(),
            rate,
            frame: Vec::with_capacity(128),
        };
        let thread = std::thread::Builder::new()
            .name("vigil-response".into())
            .spawn(move || engine.run(rx))
            .map_err(|e| ResponseError::Setup(format!("cannot start thread: {e}")))?;
        Ok(Responder {
            tx,
            thread: Some(thread),
            counters,
        })
    }
}

impl Responder {
    /// Opens the injection socket and the firewall table, and restores the blocks of the last
    /// run (the state file's, and the firewall set's, which outlives the process; a reboot
    /// empties the set, so state-file blocks missing there are put back).
    pub fn prepare(config: ResponderConfig) -> Result<Prepared, ResponseError> {
        let acting = config.mode == Mode::Act;
        let injector = match (&config.inject_iface, acting) {
            (Some(iface), true) => {
                Some(
                    Injector::open(iface).map_err(|source| ResponseError::Inject {
                        iface: iface.clone(),
                        source,
                    })?,
                )
            }
            _ => None,
        };
        let nft = match (&config.firewall, acting) {
            (Some(cfg), true) => {
                let nft = Nft::new(cfg.clone());
                nft.ensure()?;
                Some(nft)
            }
            _ => None,
        };
        let blocks = restore(&config, nft.as_ref())?;
        Ok(Prepared {
            config,
            injector,
            nft,
            blocks,
        })
    }

    /// Prepares and starts in one step (no privilege change in between).
    pub fn start(
        config: ResponderConfig,
        events: Sender<Vec<EveEvent>>,
    ) -> Result<Responder, ResponseError> {
        Responder::prepare(config)?.start(events)
    }

    pub fn requests(&self) -> RequestSender {
        RequestSender {
            tx: self.tx.clone(),
            counters: Arc::clone(&self.counters),
        }
    }

    /// A reload's allowlist and limits; alerts queued before it are judged by the old ones.
    pub fn reconfigure(&self, live: super::LiveSettings) {
        let _ = self.tx.send(Msg::Reconfigure(Box::new(live)));
    }

    /// For the control socket.
    pub fn commands(&self) -> Sender<Msg> {
        self.tx.clone()
    }

    /// Handles what is queued, then stops. Blocks stay in the firewall (they expire by
    /// themselves) and in the state file.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[derive(Debug, Clone)]
struct Block {
    until: SystemTime,
    reason: String,
}

#[derive(Serialize, Deserialize, Default)]
struct StateFile {
    blocks: Vec<BlockInfo>,
}

/// Allows `per_minute` actions a minute, refilled continuously.
struct RateLimit {
    per_minute: f64,
    tokens: f64,
    at: Instant,
}

impl RateLimit {
    fn new(per_minute: u32) -> RateLimit {
        RateLimit {
            per_minute: f64::from(per_minute),
            tokens: f64::from(per_minute),
            at: Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * self.per_minute / 60.0;
        self.tokens = (self.tokens + refill).min(self.per_minute);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

struct Engine {
    config: ResponderConfig,
    events: Sender<Vec<EveEvent>>,
    counters: Arc<ResponseCounters>,
    injector: Option<Injector>,
    nft: Option<Nft>,
    webhook: Option<Webhook>,
    blocks: HashMap<IpAddr, Block>,
    recent_resets: HashMap<u64, Instant>,
    rate: RateLimit,
    frame: Vec<u8>,
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos().min(u128::from(u64::MAX)) as u64)
}

fn rfc3339(ns: u64) -> String {
    crate::output::time::rfc3339_micros(ns).to_string()
}

fn restore(
    config: &ResponderConfig,
    nft: Option<&Nft>,
) -> Result<HashMap<IpAddr, Block>, ResponseError> {
    let now = SystemTime::now();
    let mut blocks = HashMap::new();
    if let Some(path) = &config.state_file {
        match std::fs::read(path) {
            Ok(bytes) => match serde_json::from_slice::<StateFile>(&bytes) {
                Ok(state) => {
                    for b in state.blocks {
                        let until = UNIX_EPOCH + Duration::from_secs(b.until);
                        if until > now {
                            blocks.insert(
                                b.addr,
                                Block {
                                    until,
                                    reason: b.reason,
                                },
                            );
                        }
                    }
                }
                Err(e) => tracing::warn!(
                    path = %path.display(),
                    error = %e,
                    "response state file unreadable; starting without its blocks"
                ),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read response state file")
            }
        }
    }
    if let Some(nft) = nft {
        let present = nft.list()?;
        let missing: Vec<(IpAddr, Duration)> = blocks
            .iter()
            .filter(|(addr, _)| !present.iter().any(|p| p.addr == **addr))
            .filter_map(|(addr, b)| b.until.duration_since(now).ok().map(|left| (*addr, left)))
            .collect();
        for p in present {
            blocks.entry(p.addr).or_insert_with(|| Block {
                until: now + p.expires_in,
                reason: "found in the firewall set at start".into(),
            });
        }
        if !missing.is_empty() {
            nft.block(&missing)?;
        }
    }
    if !blocks.is_empty() {
        tracing::info!(blocks = blocks.len(), "blocks restored");
    }
    Ok(blocks)
}

impl Engine {
    fn run(&mut self, rx: Receiver<Msg>) {
        loop {
            let wait = self
                .next_expiry()
                .map_or(Duration::from_secs(1), |t| {
                    t.duration_since(SystemTime::now()).unwrap_or_default()
                })
                .min(Duration::from_secs(1));
            match rx.recv_timeout(wait) {
                Ok(Msg::Alert(request)) => self.on_alert(*request),
                Ok(Msg::Operator {
                    command,
                    uid,
                    reply,
                }) => {
                    let _ = reply.send(self.on_command(command, uid));
                }
                Ok(Msg::Reconfigure(live)) => self.reconfigure(*live),
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
            self.expire();
        }
        // What arrived before the stop is still handled.
        while let Ok(Msg::Alert(request)) = rx.try_recv() {
            self.on_alert(*request);
        }
        if let Some(webhook) = self.webhook.take() {
            webhook.shutdown(Instant::now() + Duration::from_secs(5));
        }
    }

    fn reconfigure(&mut self, live: super::LiveSettings) {
        if live.max_actions_per_minute != self.config.max_actions_per_minute {
            self.rate = RateLimit::new(live.max_actions_per_minute);
        }
        self.config.max_actions_per_minute = live.max_actions_per_minute;
        self.config.allowlist = live.allowlist;
        self.config.icmp_unreachable = live.icmp_unreachable;
        tracing::info!(
            max_actions_per_minute = self.config.max_actions_per_minute,
            icmp_unreachable = self.config.icmp_unreachable,
            "active response: new allowlist and limits"
        );
    }

    fn next_expiry(&self) -> Option<SystemTime> {
        self.blocks.values().map(|b| b.until).min()
    }

    fn emit(&self, event: ResponseEvent) {
        let _ = self.events.send(vec![EveEvent::Response(Box::new(event))]);
    }

    fn event(&self, request: Option<&Request>, action: &'static str) -> ResponseEvent {
        let mut ev = ResponseEvent::new(action, self.config.mode == Mode::DryRun);
        if let Some(r) = request {
            ev.flow_id = Some(r.flow_id);
            ev.src = Some(r.src);
            ev.dst = Some(r.dst);
            ev.ports = r.ports;
            ev.proto = Some(r.proto);
            ev.alert = Some(r.alert.clone());
            ev.reasons = r.decision.reasons.iter().map(Reason::to_string).collect();
        }
        ev
    }

    fn on_alert(&mut self, request: Request) {
        if request.decision.reset != Ends::None {
            self.reset(&request);
        }
        let block = request.decision.block;
        let ends = [(block.src(), request.src), (block.dst(), request.dst)];
        for (wanted, addr) in ends {
            if wanted {
                let reason = request
                    .decision
                    .reasons
                    .iter()
                    .map(Reason::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                let reason = format!(
                    "{reason}: {} [{}:{}]",
                    request.alert.signature, request.alert.gid, request.alert.signature_id
                );
                self.block(
                    addr,
                    request.decision.block_for,
                    reason,
                    Some(&request),
                    None,
                );
            }
        }
    }

    fn refuse_allowlisted(&self, ev: &mut ResponseEvent, addrs: &[IpAddr]) -> bool {
        for addr in addrs {
            if let Some(why) = self.config.allowlist.check(*addr) {
                ev.outcome = "refused";
                ev.detail = Some(format!("{addr} is allowlisted ({why})"));
                self.counters
                    .refused_allowlist
                    .fetch_add(1, Ordering::Relaxed);
                return true;
            }
        }
        false
    }

    fn refuse_rate(&mut self, ev: &mut ResponseEvent) -> bool {
        if self.rate.take() {
            return false;
        }
        ev.outcome = "refused";
        ev.detail = Some(format!(
            "rate limit: {} actions a minute",
            self.config.max_actions_per_minute
        ));
        self.counters
            .refused_rate_limit
            .fetch_add(1, Ordering::Relaxed);
        true
    }

    fn reset(&mut self, request: &Request) {
        let now = Instant::now();
        if request.flow_id != 0 {
            if let Some(at) = self.recent_resets.get(&request.flow_id) {
                if now.duration_since(*at) < RESET_REPEAT {
                    return;
                }
            }
            self.recent_resets
                .retain(|_, at| now.duration_since(*at) < RESET_REPEAT);
            self.recent_resets.insert(request.flow_id, now);
        }
        let ends = request.decision.reset;
        let tcp = request.proto == crate::flow::key::PROTO_TCP;
        let mut ev = self.event(
            Some(request),
            if tcp { "reset" } else { "icmp-unreachable" },
        );
        ev.target = Some(ends.name());
        let targets: Vec<IpAddr> = [(ends.src(), request.src), (ends.dst(), request.dst)]
            .into_iter()
            .filter_map(|(w, a)| w.then_some(a))
            .collect();
        // Tearing down a connection acts on both of its ends: neither may be protected.
        if self.refuse_allowlisted(&mut ev, &[request.src, request.dst]) {
            return self.emit(ev);
        }
        let icmp = request.proto == crate::flow::key::PROTO_UDP && self.config.icmp_unreachable;
        if !tcp && !icmp {
            ev.outcome = "skipped";
            ev.detail = Some(match request.proto {
                crate::flow::key::PROTO_UDP => {
                    "UDP: ICMP unreachable is off (response.icmp_unreachable)".into()
                }
                p => format!("IP protocol {p} cannot be reset"),
            });
            return self.emit(ev);
        }
        if self.refuse_rate(&mut ev) {
            return self.emit(ev);
        }
        let Some(packet) = &request.packet else {
            return self.fail(ev, "no triggering packet to reply to (the flow had ended)");
        };
        let Some(l2) = &packet.l2 else {
            return self.fail(
                ev,
                "no plain Ethernet header to reply with (tunnel, MPLS, fragments or another link type)",
            );
        };
        let mut frames = Vec::new();
        if tcp {
            let Some(seen) = &packet.tcp else {
                return self.fail(ev, "no TCP header in the triggering packet");
            };
            for target in &targets {
                let toward = if *target == packet.sender {
                    Toward::Sender
                } else {
                    Toward::Receiver
                };
                forge::tcp_reset(l2, seen, toward, &mut self.frame);
                frames.push(self.frame.clone());
            }
        } else if targets.contains(&packet.sender) {
            if forge::icmp_unreachable(l2, &packet.ip_head, &mut self.frame) {
                frames.push(self.frame.clone());
            }
        } else {
            ev.outcome = "skipped";
            ev.detail = Some("ICMP unreachable goes only to the sender of the packet".into());
            return self.emit(ev);
        }
        if self.config.mode == Mode::DryRun {
            self.counters.dry_run.fetch_add(1, Ordering::Relaxed);
            ev.outcome = "dry-run";
            return self.emit(ev);
        }
        let Some(injector) = &self.injector else {
            return self.fail(ev, "no injection interface (response.inject_iface)");
        };
        ev.iface = Some(injector.iface().to_string());
        for frame in &frames {
            if let Err(e) = injector.send(frame) {
                return self.fail(ev, &e.to_string());
            }
        }
        let latency = request.alerted.elapsed();
        ev.latency_us = Some(latency.as_micros() as u64);
        ev.outcome = "done";
        if tcp {
            self.counters.resets.fetch_add(1, Ordering::Relaxed);
            self.counters
                .reset_latency_us
                .fetch_add(latency.as_micros() as u64, Ordering::Relaxed);
        } else {
            self.counters
                .icmp_unreachables
                .fetch_add(1, Ordering::Relaxed);
        }
        self.emit(ev);
    }

    fn fail(&self, mut ev: ResponseEvent, why: &str) {
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
        ev.outcome = "failed";
        ev.detail = Some(why.to_string());
        tracing::warn!(action = ev.action, reason = why, "response failed");
        self.emit(ev);
    }

    /// Blocks `addr` for `duration`; returns the reply the operator gets.
    fn block(
        &mut self,
        addr: IpAddr,
        duration: Duration,
        reason: String,
        request: Option<&Request>,
        uid: Option<u32>,
    ) -> Reply {
        let mut ev = self.event(request, "block");
        ev.addr = Some(addr);
        ev.for_secs = Some(duration.as_secs());
        ev.operator_uid = uid;
        if request.is_none() {
            ev.reasons = vec![Reason::Operator.to_string()];
            if !reason.is_empty() {
                ev.reasons.push(reason.clone());
            }
        }
        let until = SystemTime::now() + duration;
        let reply = |ev: &ResponseEvent| Reply {
            ok: matches!(ev.outcome, "done" | "dry-run" | "already-blocked"),
            message: match &ev.detail {
                Some(d) => format!("{addr}: {} ({d})", ev.outcome),
                None => format!("{addr}: {}", ev.outcome),
            },
            blocks: Vec::new(),
        };
        if self.refuse_allowlisted(&mut ev, &[addr]) {
            let r = reply(&ev);
            self.emit(ev);
            return r;
        }
        // Already blocked at least that long: nothing to add, nothing to tell the webhook again.
        if let Some(existing) = self.blocks.get(&addr) {
            if existing.until + Duration::from_secs(1) >= until {
                ev.outcome = "already-blocked";
                ev.expires = Some(unix_secs(existing.until));
                let r = reply(&ev);
                self.emit(ev);
                return r;
            }
        }
        if self.refuse_rate(&mut ev) {
            let r = reply(&ev);
            self.emit(ev);
            return r;
        }
        ev.expires = Some(unix_secs(until));
        if self.config.mode == Mode::DryRun {
            self.counters.dry_run.fetch_add(1, Ordering::Relaxed);
            ev.outcome = "dry-run";
            let r = reply(&ev);
            self.emit(ev);
            return r;
        }
        if self.nft.is_none() && self.webhook.is_none() {
            self.fail(
                ev.clone(),
                "no firewall and no webhook configured (response.firewall, response.webhook)",
            );
            ev.outcome = "failed";
            return reply(&ev);
        }
        if let Some(nft) = &self.nft {
            if let Err(e) = nft.block(&[(addr, duration)]) {
                let why = e.to_string();
                self.fail(ev.clone(), &why);
                ev.outcome = "failed";
                ev.detail = Some(why);
                return reply(&ev);
            }
        }
        if let Some(webhook) = &self.webhook {
            webhook.post(self.webhook_body("block", addr, Some(until), &reason, request));
        }
        if let Some(r) = request {
            let latency = r.alerted.elapsed();
            ev.latency_us = Some(latency.as_micros() as u64);
            self.counters
                .block_latency_us
                .fetch_add(latency.as_micros() as u64, Ordering::Relaxed);
        }
        self.blocks.insert(addr, Block { until, reason });
        self.save();
        self.counters.blocks.fetch_add(1, Ordering::Relaxed);
        ev.outcome = "done";
        let r = reply(&ev);
        self.emit(ev);
        r
    }

    fn unblock(&mut self, addr: IpAddr, uid: Option<u32>) -> Reply {
        let mut ev = self.event(None, "unblock");
        ev.addr = Some(addr);
        ev.operator_uid = uid;
        ev.reasons = vec![Reason::Operator.to_string()];
        if self.config.mode == Mode::DryRun {
            ev.outcome = "dry-run";
        } else {
            if let Some(nft) = &self.nft {
                if let Err(e) = nft.unblock(&[addr]) {
                    let why = e.to_string();
                    self.fail(ev, &why);
                    return Reply {
                        ok: false,
                        message: format!("{addr}: failed ({why})"),
                        blocks: Vec::new(),
                    };
                }
            }
            if let Some(webhook) = &self.webhook {
                webhook.post(self.webhook_body("unblock", addr, None, "operator", None));
            }
            ev.outcome = "done";
        }
        let was = self.blocks.remove(&addr).is_some();
        if was {
            self.save();
            self.counters.unblocks.fetch_add(1, Ordering::Relaxed);
        }
        let message = if was {
            format!("{addr}: unblocked")
        } else {
            format!("{addr}: was not blocked")
        };
        self.emit(ev);
        Reply {
            ok: true,
            message,
            blocks: Vec::new(),
        }
    }

    /// Blocks past their time: the firewall set drops them by itself; here they leave the
    /// list, the state file and, for the webhook, are announced.
    fn expire(&mut self) {
        let now = SystemTime::now();
        let gone: Vec<IpAddr> = self
            .blocks
            .iter()
            .filter(|(_, b)| b.until <= now)
            .map(|(a, _)| *a)
            .collect();
        if gone.is_empty() {
            return;
        }
        for addr in &gone {
            self.blocks.remove(addr);
            let mut ev = self.event(None, "unblock");
            ev.addr = Some(*addr);
            ev.outcome = "expired";
            if let Some(webhook) = &self.webhook {
                webhook.post(self.webhook_body("unblock", *addr, None, "expired", None));
            }
            self.counters.expired.fetch_add(1, Ordering::Relaxed);
            self.emit(ev);
        }
        self.save();
    }

    fn on_command(&mut self, command: Command, uid: Option<u32>) -> Reply {
        match command {
            Command::Block {
                addr,
                for_secs,
                reason,
            } => {
                if for_secs == 0 {
                    return Reply {
                        ok: false,
                        message: "a block needs a duration of at least 1 s".into(),
                        blocks: Vec::new(),
                    };
                }
                self.block(addr, Duration::from_secs(for_secs), reason, None, uid)
            }
            Command::Unblock { addr } => self.unblock(addr, uid),
            Command::Blocks => {
                let mut blocks: Vec<BlockInfo> = self
                    .blocks
                    .iter()
                    .map(|(addr, b)| BlockInfo {
                        addr: *addr,
                        until: unix_secs(b.until),
                        reason: b.reason.clone(),
                    })
                    .collect();
                blocks.sort_by_key(|b| (b.until, b.addr));
                Reply {
                    ok: true,
                    message: format!("{} active blocks", blocks.len()),
                    blocks,
                }
            }
        }
    }

    fn webhook_body(
        &self,
        action: &str,
        addr: IpAddr,
        until: Option<SystemTime>,
        reason: &str,
        request: Option<&Request>,
    ) -> Vec<u8> {
        let body = serde_json::json!({
            "action": action,
            "address": addr,
            "until": until.map(|t| rfc3339(unix_nanos(t))),
            "reason": reason,
            "sensor": self.config.sensor,
            "alert": request.map(|r| serde_json::json!({
                "flow_id": r.flow_id,
                "src_ip": r.src,
                "dest_ip": r.dst,
                "src_port": r.ports.map(|p| p.0),
                "dest_port": r.ports.map(|p| p.1),
                "proto": crate::output::eve::proto_name(r.proto),
                "alert": r.alert,
            })),
        });
        serde_json::to_vec(&body).unwrap_or_default()
    }

    fn save(&mut self) {
        self.counters
            .blocks_active
            .store(self.blocks.len() as u64, Ordering::Relaxed);
        let Some(path) = &self.config.state_file else {
            return;
        };
        let state = StateFile {
            blocks: self
                .blocks
                .iter()
                .map(|(addr, b)| BlockInfo {
                    addr: *addr,
                    until: unix_secs(b.until),
                    reason: b.reason.clone(),
                })
                .collect(),
        };
        // Written aside and renamed: a crash leaves the old file or the new one, never half.
        let tmp = path.with_extension("tmp");
        let result = serde_json::to_vec_pretty(&state)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), error = %e, "cannot save response state");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::Mutex;

    use super::*;
    use crate::response::allowlist::Allowlist;
    use crate::response::policy::Network;

    fn config(mode: Mode, per_minute: u32) -> ResponderConfig {
        ResponderConfig {
            mode,
            inject_iface: None,
            icmp_unreachable: false,
            max_actions_per_minute: per_minute,
            allowlist: Allowlist::new(&["192.0.2.0/24".parse::<Network>().unwrap()]),
            firewall: None,
            webhook: None,
            state_file: None,
            sensor: "test".into(),
        }
    }

    fn request(src: &str, reset: Ends, block: Ends) -> Request {
        Request {
            alerted: Instant::now(),
            flow_id: 7,
            alert: AlertInfo {
                gid: 1,
                signature_id: 42,
                rev: 1,
                signature: "test".into(),
                category: String::new(),
                severity: 1,
                action: "alert".into(),
            },
            decision: Decision {
                reset,
                block,
                block_for: Duration::from_secs(3600),
                reasons: vec![Reason::Policy("t".into())],
            },
            src: src.parse().unwrap(),
            dst: "198.51.100.9".parse().unwrap(),
            ports: Some((40000, 80)),
            proto: crate::flow::key::PROTO_TCP,
            packet: None,
        }
    }

    /// Runs `requests` through a responder and returns its `response` events as JSON.
    fn run(config: ResponderConfig, requests: Vec<Request>) -> Vec<serde_json::Value> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let responder = Responder::start(config, tx).unwrap();
        let sender = responder.requests();
        for r in requests {
            sender.send(r);
        }
        responder.stop();
        drained(&rx)
    }

    /// The `response` events a stopped responder sent, as JSON.
    fn drained(rx: &Receiver<Vec<EveEvent>>) -> Vec<serde_json::Value> {
        rx.try_iter()
            .flatten()
            .map(|ev| match ev {
                EveEvent::Response(r) => r.to_json(),
                _ => panic!("not a response event"),
            })
            .collect()
    }

    fn outcomes(events: &[serde_json::Value]) -> Vec<String> {
        events
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e["response"]["action"].as_str().unwrap(),
                    e["response"]["outcome"].as_str().unwrap()
                )
            })
            .collect()
    }

    /// A reload's allowlist and rate limit apply to the requests that follow it.
    #[test]
    fn a_reconfigure_changes_allowlist_and_rate_limit_for_later_requests() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let responder = Responder::start(config(Mode::DryRun, 1), tx).unwrap();
        let sender = responder.requests();
        sender.send(request("10.0.0.1", Ends::None, Ends::Src));
        sender.send(request("10.0.0.2", Ends::None, Ends::Src));
        responder.reconfigure(crate::response::LiveSettings {
            allowlist: Allowlist::new(&["10.0.0.0/24".parse::<Network>().unwrap()]),
            max_actions_per_minute: 100,
            icmp_unreachable: false,
        });
        sender.send(request("10.0.0.3", Ends::None, Ends::Src));
        sender.send(request("10.0.1.4", Ends::None, Ends::Src));
        sender.send(request("10.0.1.5", Ends::None, Ends::Src));
        responder.stop();
        let events = drained(&rx);
        assert_eq!(
            outcomes(&events),
            [
                "block dry-run",
                "block refused",
                "block refused",
                "block dry-run",
                "block dry-run"
            ]
        );
        assert_eq!(
            events[1]["response"]["detail"],
            "rate limit: 1 actions a minute"
        );
        assert!(events[2]["response"]["detail"]
            .as_str()
            .unwrap()
            .contains("10.0.0.3 is allowlisted"));
    }

    #[test]
    fn the_rate_limit_refuses_what_exceeds_it_and_says_so() {
        let requests = (1..=4)
            .map(|i| request(&format!("10.0.0.{i}"), Ends::None, Ends::Src))
            .collect();
        let events = run(config(Mode::DryRun, 2), requests);
        assert_eq!(
            outcomes(&events),
            [
                "block dry-run",
                "block dry-run",
                "block refused",
                "block refused"
            ]
        );
        assert_eq!(
            events[2]["response"]["detail"],
            "rate limit: 2 actions a minute"
        );
    }

    #[test]
    fn a_protected_end_stops_a_reset_and_a_block() {
        let events = run(
            config(Mode::DryRun, 100),
            vec![request("192.0.2.5", Ends::Both, Ends::Src)],
        );
        assert_eq!(outcomes(&events), ["reset refused", "block refused"]);
        for e in &events {
            assert!(
                e["response"]["detail"]
                    .as_str()
                    .unwrap()
                    .contains("192.0.2.5 is allowlisted (response.allowlist)"),
                "{e}"
            );
        }
    }

    #[test]
    fn a_reset_without_the_packet_fails_with_the_reason() {
        let events = run(
            config(Mode::Act, 100),
            vec![request("10.0.0.1", Ends::Src, Ends::None)],
        );
        assert_eq!(outcomes(&events), ["reset failed"]);
        assert!(events[0]["response"]["detail"]
            .as_str()
            .unwrap()
            .contains("no triggering packet"));
    }

    /// A plain HTTP receiver on loopback answering 200 and keeping the bodies.
    fn receiver() -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/blocks", listener.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&bodies);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(&stream);
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                kept.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&body).into_owned());
                let _ = (&stream).write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        });
        (url, bodies)
    }

    #[test]
    fn blocks_survive_a_restart_without_a_second_webhook_post() {
        let dir = tempfile::tempdir().unwrap();
        let (url, bodies) = receiver();
        let mut cfg = config(Mode::Act, 100);
        cfg.state_file = Some(dir.path().join("blocks.json"));
        cfg.webhook = Some(crate::response::webhook::WebhookConfig {
            url,
            ..Default::default()
        });
        let events = run(
            cfg.clone(),
            vec![request("10.0.0.1", Ends::None, Ends::Src)],
        );
        assert_eq!(outcomes(&events), ["block done"]);
        let posted = bodies.lock().unwrap().clone();
        assert_eq!(posted.len(), 1, "{posted:?}");
        let body: serde_json::Value = serde_json::from_str(&posted[0]).unwrap();
        assert_eq!(body["action"], "block");
        assert_eq!(body["address"], "10.0.0.1");
        assert_eq!(body["alert"]["alert"]["signature_id"], 42);

        // The next process: the block is known, the same alert adds nothing and posts nothing.
        let (tx, rx) = crossbeam_channel::unbounded();
        let responder = Responder::start(cfg, tx).unwrap();
        let (reply_tx, reply_rx) = bounded(1);
        responder
            .commands()
            .send(Msg::Operator {
                command: Command::Blocks,
                uid: None,
                reply: reply_tx,
            })
            .unwrap();
        let reply = reply_rx.recv().unwrap();
        assert_eq!(reply.blocks.len(), 1);
        assert_eq!(reply.blocks[0].addr.to_string(), "10.0.0.1");
        assert!(
            reply.blocks[0].reason.contains("policy t"),
            "{:?}",
            reply.blocks
        );
        responder
            .requests()
            .send(request("10.0.0.1", Ends::None, Ends::Src));
        responder.stop();
        assert_eq!(outcomes(&drained(&rx)), ["block already-blocked"]);
        assert_eq!(bodies.lock().unwrap().len(), 1);
    }
}
