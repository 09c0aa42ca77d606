//! Scenario actors: behaviours that anomaly models should find (port
//! scans, host sweeps, DNS tunnels and DGA lookups, beacons, exfiltration,
//! protocols on the wrong port), injected into the background.
//!
//! Everything is planned up front from an RNG of its own, so the
//! background's RNG stream and bytes stay exactly as they are. A plan is a
//! list of units, one flow each, that the engine builds only when its clock
//! reaches them, so memory holds no more than with background flows.

use std::net::IpAddr;

use crate::apps::{
    self, app_data, client_hello, dns_name, dns_udp_log, http_date, server_hello, tls_record, Ctx,
    DnsPlan, Frames, Pools, Qtype, Tcp, ACK, FIN, MS, PSH, RST, SYN, USER_AGENTS, WORDS,
};
use crate::engine::{mac_for, Server, RESOLVERS4};
use crate::packet::{v4, Conv, Dir, FragPolicy, Path, PROTO_ICMP, PROTO_TCP, PROTO_UDP};
use crate::rng::Rng;
use crate::variants;
use crate::{
    AppTruth, FlowTruth, GenConfig, HttpTx, Scenario, ScenarioKind, ScenarioTruth, TlsTruth,
};

const URG: u8 = 0x20;
const SEC: u64 = 1_000_000_000;

/// What the engine lends to build a unit's frames.
pub(crate) struct Env<'a> {
    pub(crate) pools: &'a Pools,
    pub(crate) gateway_mac: [u8; 6],
    pub(crate) nanos: bool,
    pub(crate) body_cap: usize,
}

/// Ports nmap's default scan starts with; scanners probe these first.
const TOP_PORTS: &[u16] = &[
    21, 22, 23, 25, 53, 80, 110, 111, 135, 139, 143, 179, 389, 443, 445, 465, 514, 515, 548, 554,
    587, 631, 636, 873, 993, 995, 1025, 1433, 1521, 1723, 2000, 2049, 3306, 3389, 5060, 5432, 5900,
    5985, 6379, 8000, 8008, 8080, 8443, 8888, 9090, 9200, 10000, 27017, 49152, 49153,
];
/// Ports a scanned host plausibly has open.
const OPEN_PORTS: &[u16] = &[22, 80, 443, 445, 3389, 8080, 139, 135, 3306, 5432];
const SWEEP_PORTS: &[u16] = &[22, 445, 3389, 80, 23, 5900, 3306];
const TUNNEL_DOMAINS: &[&str] = &[
    "exfil-example.com",
    "t.example-cdn-sync.net",
    "d.example-metrics.org",
    "ns1.example-tun.io",
];
const DGA_TLDS: &[&str] = &["com", "net", "org", "info", "biz", "ru", "top", "xyz"];
const BASE32: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
const HEX: &[u8] = b"0123456789abcdef";
const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

#[derive(Clone, Copy, PartialEq, Debug)]
enum Probe {
    Syn,
    Fin,
    Null,
    Xmas,
}

impl Probe {
    fn name(self) -> &'static str {
        match self {
            Probe::Syn => "syn",
            Probe::Fin => "fin",
            Probe::Null => "null",
            Probe::Xmas => "xmas",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Answer {
    Silent,
    Reset,
    Open,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Misuse {
    Http,
    Ssh,
    Tls,
    Binary,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Base {
    Dns,
    Http,
    Tls,
}

enum Work {
    Probe {
        probe: Probe,
        open: bool,
        rtt: u64,
    },
    Sweep {
        answer: Answer,
        rtt: u64,
    },
    Echo {
        id: u16,
        seq: u16,
        reply: bool,
        rtt: u64,
    },
    Tunnel {
        qname: String,
        qtype: u16,
        rtt: u64,
    },
    Dga {
        qname: String,
        nx: bool,
        rtt: u64,
    },
    Beacon {
        host: String,
        uri: String,
        req: usize,
        resp: usize,
    },
    Exfil {
        host: String,
        bytes: usize,
        far: u64,
        near: u64,
        mbps: f64,
    },
    Baseline {
        base: Base,
        host: String,
    },
    Misuse {
        misuse: Misuse,
        host: String,
    },
}

/// One flow of an actor.
struct Unit {
    start: u64,
    actor: usize,
    /// Part of the labelled behaviour (false: an exfil actor's ordinary flows).
    behaviour: bool,
    proto: u8,
    client: IpAddr,
    cport: u16,
    server: IpAddr,
    sport: u16,
    app: &'static str,
    seed: u64,
    work: Work,
}

/// Sequential ephemeral ports from a random start, so one actor's flows
/// never share a 5-tuple (28232 ports before they wrap).
struct Ports(u16);

impl Ports {
    fn new(r: &mut Rng) -> Self {
        Ports(r.range(32_768, 60_999) as u16)
    }

    fn take(&mut self) -> u16 {
        let p = self.0;
        self.0 = if p >= 60_999 { 32_768 } else { p + 1 };
        p
    }
}

/// The background's time span: from the first to the last flow start.
struct Window {
    base: u64,
    span: u64,
}

impl Window {
    /// Start and duration of a behaviour that nominally lasts `lo..hi`
    /// seconds. Short captures compress it to at most 60 % of the span; it
    /// starts in the first 70 % and ends within the span.
    fn place(&self, r: &mut Rng, lo: f64, hi: f64) -> (u64, u64) {
        let want = ((lo + r.f64() * (hi - lo)) * SEC as f64) as u64;
        let dur = want.min(self.span * 6 / 10).max(1);
        let latest = (self.span * 7 / 10).min(self.span - dur);
        (self.base + r.below(latest + 1), dur)
    }

    fn end(&self) -> u64 {
        self.base + self.span
    }
}

/// Unit `j` of `n` spread evenly over `dur` from `start`, with jitter
/// within its slot so the order stays as planned.
fn slot(r: &mut Rng, start: u64, dur: u64, j: usize, n: usize) -> u64 {
    let step = dur / n.max(1) as u64;
    start + j as u64 * step + r.below(step / 2 + 1)
}

fn random_str(r: &mut Rng, alphabet: &[u8], len: usize) -> String {
    (0..len)
        .map(|_| alphabet[r.below(alphabet.len() as u64) as usize] as char)
        .collect()
}

fn actor_addr(kind: ScenarioKind, i: usize) -> IpAddr {
    let k = ScenarioKind::ALL
        .iter()
        .position(|&x| x == kind)
        .unwrap_or(0) as u8;
    // 10.64.0.0/13 and up: background clients use 10.0.0.0/13, fixed
    // services 10.0.0.x and ERSPAN routers 10.250.x.x.
    v4(10, 64 + k, (i / 250) as u8, (i % 250 + 2) as u8)
}

fn resolver(r: &mut Rng) -> IpAddr {
    let a = r.pick(RESOLVERS4);
    v4(a[0], a[1], a[2], a[3])
}

pub(crate) struct Plan {
    /// Latest first: the next unit is popped off the end.
    units: Vec<Unit>,
    truths: Vec<ScenarioTruth>,
}

impl Plan {
    /// Plans every actor of `cfg.scenarios` within the time span of the
    /// background flows `bg` (the same background this run generates).
    pub(crate) fn new(cfg: &GenConfig, servers: &[Server], bg: &[FlowTruth]) -> Self {
        let base = cfg.base_ts_secs * SEC;
        let last = bg.iter().map(|f| f.first_ts_ns).max().unwrap_or(base);
        let w = Window {
            base,
            span: last.saturating_sub(base).max(SEC),
        };
        // Hosts the background really talks to, so scan targets are real peers.
        let mut hosts: Vec<IpAddr> = bg
            .iter()
            .filter(|f| f.tunnel.is_none())
            .flat_map(|f| [f.client, f.server])
            .filter(IpAddr::is_ipv4)
            .collect();
        hosts.sort();
        hosts.dedup();
        if hosts.is_empty() {
            hosts.extend(servers.iter().map(|s| s.v4));
        }
        let mut rng = Rng::new(cfg.seed ^ 0x5CE7_A210_5EED_0001);
        let mut plan = Plan {
            units: Vec::new(),
            truths: Vec::new(),
        };
        for sc in &cfg.scenarios {
            // Sub-kinds (scan type, sweep protocol, tunnel or DGA, misuse)
            // rotate from a random offset, so even a few actors show several.
            let off = rng.below(12) as usize;
            for i in 0..sc.count.min(Scenario::MAX_COUNT) as usize {
                let mut r = Rng::new(rng.u64());
                let r = &mut r;
                let actor = actor_addr(sc.kind, i);
                let k = off + i;
                match sc.kind {
                    ScenarioKind::PortScan => plan.port_scan(r, &w, actor, &hosts, k),
                    ScenarioKind::HostSweep => plan.host_sweep(r, &w, actor, k),
                    ScenarioKind::DnsTunnel => plan.dns(r, &w, actor, k),
                    ScenarioKind::Beacon => plan.beacon(r, &w, actor, i),
                    ScenarioKind::Exfil => plan.exfil(r, &w, actor, i, cfg, servers),
                    ScenarioKind::ProtocolMisuse => plan.misuse(r, &w, actor, k, servers),
                }
            }
        }
        // Stable sort of the reversed list: equal starts pop in planning order.
        plan.units.reverse();
        plan.units.sort_by_key(|u| std::cmp::Reverse(u.start));
        plan
    }

    #[allow(clippy::too_many_arguments)]
    fn truth(
        &mut self,
        kind: ScenarioKind,
        actor: IpAddr,
        target: Option<IpAddr>,
        port: Option<u16>,
        detail: String,
        period_secs: Option<f64>,
    ) {
        self.truths.push(ScenarioTruth {
            kind,
            actor,
            target,
            port,
            // Set from the flows as they are built.
            start_ts_ns: u64::MAX,
            end_ts_ns: 0,
            detail,
            period_secs,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn unit(
        &mut self,
        r: &mut Rng,
        start: u64,
        behaviour: bool,
        proto: u8,
        (client, cport): (IpAddr, u16),
        (server, sport): (IpAddr, u16),
        app: &'static str,
        work: Work,
    ) {
        self.units.push(Unit {
            start,
            actor: self.truths.len(),
            behaviour,
            proto,
            client,
            cport,
            server,
            sport,
            app,
            seed: r.u64(),
            work,
        });
    }

    fn port_scan(&mut self, r: &mut Rng, w: &Window, actor: IpAddr, hosts: &[IpAddr], k: usize) {
        let probe = [
            Probe::Syn,
            Probe::Fin,
            Probe::Syn,
            Probe::Null,
            Probe::Syn,
            Probe::Xmas,
        ][k % 6];
        let target = *r.pick(hosts);
        let n = r.usize(60, 300);
        let (start, dur) = w.place(r, 5.0, 60.0);
        let mut open = OPEN_PORTS.to_vec();
        r.shuffle(&mut open);
        open.truncate(r.usize(1, 3));
        let mut ports = open.clone();
        let mut top = TOP_PORTS.to_vec();
        r.shuffle(&mut top);
        for p in top {
            if ports.len() >= n * 2 / 3 {
                break;
            }
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
        while ports.len() < n {
            let p = r.range(1, 65_535) as u16;
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
        r.shuffle(&mut ports);
        // Scanners send every probe from one source port.
        let sport = r.range(33_000, 65_000) as u16;
        let rtt = r.range(MS / 5, 20 * MS);
        for (j, &port) in ports.iter().enumerate() {
            let t = slot(r, start, dur, j, n);
            let work = Work::Probe {
                probe,
                open: open.contains(&port),
                rtt,
            };
            self.unit(
                r,
                t,
                true,
                PROTO_TCP,
                (actor, sport),
                (target, port),
                "tcp-probe",
                work,
            );
        }
        open.sort_unstable();
        let detail = format!(
            "{} scan of {n} ports ({} open: {open:?})",
            probe.name(),
            open.len()
        );
        self.truth(
            ScenarioKind::PortScan,
            actor,
            Some(target),
            None,
            detail,
            None,
        );
    }

    fn host_sweep(&mut self, r: &mut Rng, w: &Window, actor: IpAddr, k: usize) {
        let icmp = k % 3 == 2;
        let port = *r.pick(SWEEP_PORTS);
        let n = r.usize(40, 200);
        let (start, dur) = w.place(r, 10.0, 60.0);
        // Sweeps run through the internal client range, where live hosts are.
        let b = r.below(8) as u8;
        let (net, targets): (String, Vec<IpAddr>) = if r.chance(0.3) {
            let mut hs: Vec<u16> = Vec::with_capacity(n);
            while hs.len() < n {
                let h = r.range(1, 0xFFFE) as u16;
                if !matches!(h & 0xFF, 0 | 255) && !hs.contains(&h) {
                    hs.push(h);
                }
            }
            let t = hs
                .iter()
                .map(|&h| v4(10, b, (h >> 8) as u8, h as u8))
                .collect();
            (format!("10.{b}.0.0/16"), t)
        } else {
            let c = r.u8();
            let mut hs: Vec<u8> = (1..=254).collect();
            r.shuffle(&mut hs);
            hs.truncate(n);
            // Simple scripts go in address order; nmap and masscan shuffle.
            if r.chance(0.5) {
                hs.sort_unstable();
            }
            let t = hs.iter().map(|&h| v4(10, b, c, h)).collect();
            (format!("10.{b}.{c}.0/24"), t)
        };
        let n_open = r.usize(1, 4);
        let n_rst = (n as f64 * (0.05 + 0.15 * r.f64())) as usize;
        let mut answers = vec![Answer::Silent; n];
        let mut idx: Vec<usize> = (0..n).collect();
        r.shuffle(&mut idx);
        for (j, &i) in idx.iter().take(n_open + n_rst).enumerate() {
            answers[i] = if j < n_open {
                Answer::Open
            } else {
                Answer::Reset
            };
        }
        let rtt = r.range(MS / 5, 5 * MS);
        let id = r.u16();
        let mut ports = Ports::new(r);
        for (j, (&dst, &answer)) in targets.iter().zip(&answers).enumerate() {
            let t = slot(r, start, dur, j, n);
            if icmp {
                let work = Work::Echo {
                    id,
                    seq: j as u16 + 1,
                    reply: answer != Answer::Silent,
                    rtt,
                };
                self.unit(
                    r,
                    t,
                    true,
                    PROTO_ICMP,
                    (actor, 0),
                    (dst, 0),
                    "icmp-echo",
                    work,
                );
            } else {
                let cport = ports.take();
                let work = Work::Sweep { answer, rtt };
                self.unit(
                    r,
                    t,
                    true,
                    PROTO_TCP,
                    (actor, cport),
                    (dst, port),
                    "tcp-probe",
                    work,
                );
            }
        }
        let (detail, port) = if icmp {
            let d = format!(
                "icmp echo sweep of {n} hosts in {net} ({} replies)",
                n_open + n_rst
            );
            (d, None)
        } else {
            let d = format!(
                "tcp/{port} sweep of {n} hosts in {net} ({n_open} open, {n_rst} reset, {} silent)",
                n - n_open - n_rst
            );
            (d, Some(port))
        };
        self.truth(ScenarioKind::HostSweep, actor, None, port, detail, None);
    }

    fn dns(&mut self, r: &mut Rng, w: &Window, actor: IpAddr, k: usize) {
        let dga = k % 3 == 2;
        let res = resolver(r);
        let rtt = r.range(MS, 40 * MS);
        // A stub resolver takes a fresh source port for every query.
        let mut ports = Ports::new(r);
        let detail = if dga {
            let n = r.usize(50, 200);
            let (start, dur) = w.place(r, 20.0, 120.0);
            let nx_share = 0.8 + 0.15 * r.f64();
            let mut names: Vec<String> = Vec::with_capacity(n);
            let mut nx_count = 0;
            for j in 0..n {
                let qname = loop {
                    let len = r.usize(8, 16);
                    let name =
                        format!("{}.{}", random_str(r, &BASE32[..26], len), r.pick(DGA_TLDS));
                    if !names.contains(&name) {
                        break name;
                    }
                };
                names.push(qname.clone());
                let nx = r.chance(nx_share);
                nx_count += nx as usize;
                let t = slot(r, start, dur, j, n);
                let cport = ports.take();
                let work = Work::Dga { qname, nx, rtt };
                self.unit(
                    r,
                    t,
                    true,
                    PROTO_UDP,
                    (actor, cport),
                    (res, 53),
                    "dns",
                    work,
                );
            }
            format!("dga: {n} random domains, {nx_count} NXDOMAIN")
        } else {
            let n = r.usize(200, 1000);
            let (start, dur) = w.place(r, 60.0, 300.0);
            let domain = *r.pick(TUNNEL_DOMAINS);
            let session = random_str(r, HEX, 4);
            let alphabet = if r.chance(0.5) { BASE32 } else { HEX };
            // TXT, NULL, CNAME, A
            let mut counts = [0usize; 4];
            for j in 0..n {
                let len = r.usize(30, 60);
                let qname = format!("{}.{session}.{domain}", random_str(r, alphabet, len));
                let x = r.below(100);
                let (qtype, ci) = if x < 70 {
                    (16, 0)
                } else if x < 80 {
                    (10, 1)
                } else if x < 90 {
                    (5, 2)
                } else {
                    (1, 3)
                };
                counts[ci] += 1;
                let t = slot(r, start, dur, j, n);
                let cport = ports.take();
                let work = Work::Tunnel { qname, qtype, rtt };
                self.unit(
                    r,
                    t,
                    true,
                    PROTO_UDP,
                    (actor, cport),
                    (res, 53),
                    "dns",
                    work,
                );
            }
            format!(
                "dns tunnel: {n} queries under {domain} (TXT {}, NULL {}, CNAME {}, A {})",
                counts[0], counts[1], counts[2], counts[3]
            )
        };
        self.truth(
            ScenarioKind::DnsTunnel,
            actor,
            Some(res),
            Some(53),
            detail,
            None,
        );
    }

    fn beacon(&mut self, r: &mut Rng, w: &Window, actor: IpAddr, i: usize) {
        // A C2 address per actor, outside every background range.
        let c2 = v4(45, 137, (i % 256) as u8, r.range(1, 254) as u8);
        let tls = r.chance(0.7);
        let port = if tls { 443 } else { 80 };
        let host = format!(
            "{}.{}-{}.com",
            r.pick(&["cdn", "api", "update", "status", "sync", "telemetry"]),
            r.pick(WORDS),
            random_str(r, HEX, 4)
        );
        let uri = format!(
            "/{}/{:08x}",
            r.pick(&["api/v2/poll", "submit.php", "pixel.gif", "updates/check"]),
            r.u32()
        );
        let jitter = 0.10 + 0.10 * r.f64();
        let start = w.base + r.below(w.span * 3 / 10 + 1);
        let avail = (w.end() - start) as f64;
        let mut period = (10.0 + 290.0 * r.f64()) * SEC as f64;
        // n - 1 periods at their longest must fit in what is left.
        let fit = (avail / (period * (1.0 + jitter))) as usize + 1;
        let n = if fit >= 8 {
            fit.min(2_000)
        } else {
            // A short capture gets a short period rather than too few beacons.
            let n = r.usize(8, 12);
            period = avail * 0.95 / ((n - 1) as f64 * (1.0 + jitter));
            n
        };
        let (req, resp) = (r.usize(120, 600), r.usize(40, 400));
        let mut ports = Ports::new(r);
        let mut t = start as f64;
        for _ in 0..n {
            // Implants send nearly the same bytes every time.
            let work = Work::Beacon {
                host: host.clone(),
                uri: uri.clone(),
                req: req + r.usize(0, req / 20),
                resp: resp + r.usize(0, resp / 20),
            };
            let cport = ports.take();
            let app = if tls { "tls" } else { "http" };
            self.unit(
                r,
                t as u64,
                true,
                PROTO_TCP,
                (actor, cport),
                (c2, port),
                app,
                work,
            );
            t += period * (1.0 + jitter * (2.0 * r.f64() - 1.0));
        }
        let secs = period / SEC as f64;
        let detail = format!(
            "period {secs:.1} s ±{:.0} %, {n} connections to {c2}:{port} ({})",
            jitter * 100.0,
            if tls { "tls" } else { "http" }
        );
        self.truth(
            ScenarioKind::Beacon,
            actor,
            Some(c2),
            Some(port),
            detail,
            Some(secs),
        );
    }

    fn exfil(
        &mut self,
        r: &mut Rng,
        w: &Window,
        actor: IpAddr,
        i: usize,
        cfg: &GenConfig,
        servers: &[Server],
    ) {
        let dst = v4(91, 215, (i % 256) as u8, r.range(1, 254) as u8);
        let tls = r.chance(0.75);
        let port = if tls { 443 } else { 80 };
        let host = format!(
            "{}.{}-storage.net",
            r.pick(&["upload", "files", "backup", "share", "drop"]),
            r.pick(WORDS)
        );
        // 10–30 % of the capture's size budget, within 64 KiB..200 MiB.
        let share = 0.10 + 0.20 * r.f64();
        let bytes = ((cfg.target_bytes as f64 * share) as u64).clamp(64 << 10, 200 << 20) as usize;
        // At most 32 MiB per connection: a connection's frames are held at once.
        let conns = r.usize(1, 3).max(bytes.div_ceil(32 << 20));
        let start = w.base + w.span * 3 / 10 + r.below(w.span * 3 / 10 + 1);
        // A few ordinary flows first, so the host has a baseline.
        let res = resolver(r);
        let mut ports = Ports::new(r);
        let mut times: Vec<u64> = (0..r.usize(3, 6))
            .map(|_| w.base + r.below((start - w.base) * 8 / 10 + 1))
            .collect();
        times.sort_unstable();
        for t in times {
            let srv = r.pick(servers);
            let host = srv.host.clone();
            let cport = ports.take();
            let (base, server, sport, app) = match r.below(3) {
                0 => (Base::Dns, res, 53, "dns"),
                1 => (Base::Http, srv.v4, 80, "http"),
                _ => (Base::Tls, srv.v4, 443, "tls"),
            };
            let proto = if base == Base::Dns {
                PROTO_UDP
            } else {
                PROTO_TCP
            };
            let work = Work::Baseline { base, host };
            self.unit(
                r,
                t,
                false,
                proto,
                (actor, cport),
                (server, sport),
                app,
                work,
            );
        }
        let avail = w.end() - start;
        let slot_ns = avail * 8 / 10 / conns as u64;
        let per = bytes / conns;
        for j in 0..conns {
            let b = if j + 1 == conns {
                bytes - per * (conns - 1)
            } else {
                per
            };
            // Window-limited TCP (96 segments per round trip): size the
            // round trip and rate so the upload takes ~70 % of its slot.
            let rounds = (b / (96 * 1_400) + 6) as u64;
            let budget = (slot_ns * 7 / 10 / rounds).max(1);
            let near = r.range(100_000, 500_000).min(budget / 4);
            let far = (budget * 7 / 10)
                .saturating_sub(near)
                .clamp(200_000, 40 * MS);
            let min_mbps = 96.0 * 1_526.0 * 8_000.0 / (budget as f64 * 0.8);
            let mbps = (50.0 + 450.0 * r.f64()).max(min_mbps).min(100_000.0);
            let work = Work::Exfil {
                host: host.clone(),
                bytes: b,
                far,
                near,
                mbps,
            };
            let cport = ports.take();
            let t = start + j as u64 * slot_ns + r.below(slot_ns / 10 + 1);
            let app = if tls { "tls" } else { "http" };
            self.unit(
                r,
                t,
                true,
                PROTO_TCP,
                (actor, cport),
                (dst, port),
                app,
                work,
            );
        }
        let detail = format!(
            "uploaded {bytes} bytes to {dst}:{port} over {} in {conns} connection(s)",
            if tls { "tls" } else { "http" }
        );
        self.truth(
            ScenarioKind::Exfil,
            actor,
            Some(dst),
            Some(port),
            detail,
            None,
        );
    }

    fn misuse(&mut self, r: &mut Rng, w: &Window, actor: IpAddr, k: usize, servers: &[Server]) {
        let misuse = [Misuse::Http, Misuse::Ssh, Misuse::Tls, Misuse::Binary][k % 4];
        let srv = r.pick(servers);
        let (port, app) = match misuse {
            Misuse::Http => (*r.pick(&[8123u16, 31337, 4444, 1337, 9999]), "http"),
            Misuse::Ssh => (443, "ssh"),
            Misuse::Tls => (*r.pick(&[6667u16, 21, 110, 8888]), "tls"),
            Misuse::Binary => (*r.pick(&[80u16, 443]), "binary"),
        };
        let n = r.usize(1, 4);
        let (start, dur) = w.place(r, 10.0, 120.0);
        let mut ports = Ports::new(r);
        for j in 0..n {
            let t = slot(r, start, dur, j, n);
            let work = Work::Misuse {
                misuse,
                host: srv.host.clone(),
            };
            let cport = ports.take();
            self.unit(
                r,
                t,
                true,
                PROTO_TCP,
                (actor, cport),
                (srv.v4, port),
                app,
                work,
            );
        }
        let what = match misuse {
            Misuse::Http => "http",
            Misuse::Ssh => "ssh",
            Misuse::Tls => "tls",
            Misuse::Binary => "non-http/tls binary",
        };
        let detail = format!("{what} on tcp/{port}, {n} connection(s)");
        self.truth(
            ScenarioKind::ProtocolMisuse,
            actor,
            Some(srv.v4),
            Some(port),
            detail,
            None,
        );
    }

    /// Start time of the next unit to build.
    pub(crate) fn next_start(&self) -> Option<u64> {
        self.units.last().map(|u| u.start)
    }

    /// Builds the next unit's frames into `out` and its truth into `flows`.
    pub(crate) fn emit_next(&mut self, env: &Env, out: &mut Frames, flows: &mut Vec<FlowTruth>) {
        let Some(u) = self.units.pop() else {
            return;
        };
        let mut rng = Rng::new(u.seed);
        let r = &mut rng;
        let client_ttl = if mac_for(&u.client)[5] & 1 == 0 {
            64
        } else {
            128
        };
        let server_ttl = *r.pick(&[64u8, 128, 255]) - r.range(5, 20) as u8;
        let path = Path::plain(mac_for(&u.client), env.gateway_mac);
        let mut c = Conv::new(
            r,
            u.proto,
            u.client,
            u.server,
            u.cport,
            u.sport,
            path,
            [client_ttl, server_ttl],
            env.nanos,
            FragPolicy::default(),
            u.app,
        );
        let Some(truth) = self.truths.get_mut(u.actor) else {
            return;
        };
        c.truth.variant = u.behaviour.then(|| truth.kind.name());
        let t0 = u.start;
        match &u.work {
            Work::Probe { probe, open, rtt } => port_probe(&mut c, out, r, t0, *probe, *open, *rtt),
            Work::Sweep { answer, rtt } => sweep_probe(&mut c, out, r, t0, *answer, *rtt),
            Work::Echo {
                id,
                seq,
                reply,
                rtt,
            } => {
                let mut rest = [0u8; 4];
                rest[..2].copy_from_slice(&id.to_be_bytes());
                rest[2..].copy_from_slice(&seq.to_be_bytes());
                let payload = b"abcdefghijklmnopqrstuvwabcdefghi";
                c.icmp(out, t0, Dir::ToServer, 8, 0, rest, payload);
                if *reply {
                    c.icmp(out, t0 + rtt, Dir::ToClient, 0, 0, rest, payload);
                }
            }
            Work::Tunnel { qname, qtype, rtt } => {
                let q = query(r.u16(), qname, *qtype, r.chance(0.5));
                dns_udp_log(&mut c, out, t0, Dir::ToServer, &q);
                let a = tunnel_answer(r, &q, qname, *qtype);
                dns_udp_log(&mut c, out, t0 + rtt + r.below(MS), Dir::ToClient, &a);
            }
            Work::Dga { qname, nx, rtt } => {
                let q = apps::dns_query(r.u16(), qname, Qtype::A, false);
                dns_udp_log(&mut c, out, t0, Dir::ToServer, &q);
                let a = apps::dns_response(r, &q, Qtype::A, *nx, false);
                dns_udp_log(&mut c, out, t0 + rtt + r.below(MS), Dir::ToClient, &a);
            }
            Work::Beacon {
                host,
                uri,
                req,
                resp,
            } => {
                let mut tcp = Tcp::new(r, &c);
                if u.sport == 443 {
                    tls_exchange(env, &mut c, out, r, &mut tcp, t0, host, *req, *resp);
                } else {
                    beacon_http(env, &mut c, out, r, &mut tcp, t0, host, uri, *req, *resp);
                }
            }
            Work::Exfil {
                host,
                bytes,
                far,
                near,
                mbps,
            } => {
                let mut tcp = Tcp::new(r, &c);
                tcp.pace(*far, *near, *mbps);
                if u.sport == 443 {
                    let down = r.usize(100, 600);
                    tls_exchange(env, &mut c, out, r, &mut tcp, t0, host, *bytes, down);
                } else {
                    upload_http(env, &mut c, out, r, &mut tcp, t0, host, *bytes);
                }
            }
            Work::Baseline { base, host } => match base {
                Base::Dns => {
                    let plan = DnsPlan {
                        name: host,
                        qtype: Qtype::A,
                        nxdomain: false,
                        big: false,
                    };
                    apps::dns_udp(&mut c, out, r, t0, &plan);
                }
                Base::Http => apps::http(&ctx(env, host), &mut c, out, r, t0),
                Base::Tls => apps::tls(&ctx(env, host), &mut c, out, r, t0),
            },
            Work::Misuse { misuse, host } => {
                // The variant flows' builders, only on the wrong port.
                let ctx = ctx(env, host);
                match misuse {
                    Misuse::Http => apps::http(&ctx, &mut c, out, r, t0),
                    Misuse::Ssh => variants::ssh(&ctx, &mut c, out, r, t0),
                    Misuse::Tls => apps::tls(&ctx, &mut c, out, r, t0),
                    Misuse::Binary => variants::binary(&ctx, &mut c, out, r, t0),
                }
            }
        }
        let ft = c.into_truth();
        if u.behaviour {
            truth.start_ts_ns = truth.start_ts_ns.min(ft.first_ts_ns);
            truth.end_ts_ns = truth.end_ts_ns.max(ft.last_ts_ns);
        }
        flows.push(ft);
    }

    pub(crate) fn finish(self) -> Vec<ScenarioTruth> {
        self.truths
            .into_iter()
            .map(|mut t| {
                if t.start_ts_ns > t.end_ts_ns {
                    t.start_ts_ns = t.end_ts_ns;
                }
                t
            })
            .collect()
    }
}

fn ctx<'a>(env: &Env<'a>, host: &'a str) -> Ctx<'a> {
    Ctx {
        pools: env.pools,
        host,
        body_cap: env.body_cap,
    }
}

/// One port-scan probe and the target's answer.
fn port_probe(
    c: &mut Conv,
    out: &mut Frames,
    r: &mut Rng,
    t0: u64,
    probe: Probe,
    open: bool,
    rtt: u64,
) {
    let isn = r.u32();
    let mss = [2, 4, 0x05, 0xb4];
    let t1 = t0 + rtt;
    if probe == Probe::Syn {
        c.tcp(out, t0, Dir::ToServer, SYN, isn, 0, 1024, &mss, &[]);
        if open {
            let sisn = r.u32();
            let ack = isn.wrapping_add(1);
            c.tcp(
                out,
                t1,
                Dir::ToClient,
                SYN | ACK,
                sisn,
                ack,
                65535,
                &mss,
                &[],
            );
            // Half-open scan: the scanner resets instead of completing.
            let t2 = t1 + r.range(20_000, 200_000);
            c.tcp(out, t2, Dir::ToServer, RST, ack, 0, 0, &[], &[]);
        } else {
            let ack = isn.wrapping_add(1);
            c.tcp(out, t1, Dir::ToClient, RST | ACK, 0, ack, 0, &[], &[]);
        }
        return;
    }
    let flags = match probe {
        Probe::Fin => FIN,
        Probe::Null => 0,
        _ => FIN | PSH | URG,
    };
    c.tcp(out, t0, Dir::ToServer, flags, isn, 0, 1024, &[], &[]);
    // RFC 793: a closed port answers a segment without ACK with RST,
    // acknowledging the FIN if any; an open port drops it silently.
    if !open {
        let ack = isn.wrapping_add(u32::from(flags & FIN));
        c.tcp(out, t1, Dir::ToClient, RST | ACK, 0, ack, 0, &[], &[]);
    }
}

/// One connection attempt of a host sweep.
fn sweep_probe(c: &mut Conv, out: &mut Frames, r: &mut Rng, t0: u64, answer: Answer, rtt: u64) {
    if answer == Answer::Open {
        let mut tcp = Tcp::new(r, c);
        let t = tcp.handshake(c, out, t0);
        tcp.close(c, out, t + r.range(MS / 10, 2 * MS), Dir::ToServer);
        return;
    }
    let isn = r.u32();
    let opts = [2, 4, 0x05, 0xb4, 1, 3, 3, 8, 4, 2, 1, 1];
    c.tcp(out, t0, Dir::ToServer, SYN, isn, 0, 64240, &opts, &[]);
    if answer == Answer::Reset {
        let ack = isn.wrapping_add(1);
        c.tcp(out, t0 + rtt, Dir::ToClient, RST | ACK, 0, ack, 0, &[], &[]);
    }
}

/// A DNS query for any record type (EDNS0 optional).
fn query(id: u16, name: &str, qtype: u16, edns: bool) -> Vec<u8> {
    let mut q = Vec::with_capacity(96);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, edns as u8]);
    dns_name(&mut q, name);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    if edns {
        q.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
    }
    q
}

/// The tunnel server's answer: encoded data in a TXT, NULL, CNAME or A
/// record with a short TTL (tunnels defeat caching).
fn tunnel_answer(r: &mut Rng, q: &[u8], qname: &str, qtype: u16) -> Vec<u8> {
    let edns = q[11] == 1;
    let qend = q.len() - if edns { 11 } else { 0 };
    let mut a = q[..qend].to_vec();
    a[2] = 0x81;
    a[3] = 0x80;
    a.extend_from_slice(&[0xc0, 0x0c]);
    a.extend_from_slice(&qtype.to_be_bytes());
    a.extend_from_slice(&[0, 1]);
    a.extend_from_slice(&(r.range(0, 60) as u32).to_be_bytes());
    let mut rd = Vec::new();
    match qtype {
        16 => {
            let n = r.usize(60, 220);
            rd.push(n as u8);
            rd.extend_from_slice(random_str(r, BASE64, n).as_bytes());
        }
        10 => {
            let n = r.usize(40, 200);
            rd.resize(n, 0);
            r.fill(&mut rd);
        }
        5 => {
            let zone = qname.splitn(3, '.').nth(2).unwrap_or(qname);
            let n = r.usize(30, 50);
            dns_name(&mut rd, &format!("{}.{zone}", random_str(r, BASE32, n)));
        }
        _ => {
            rd.resize(4, 0);
            r.fill(&mut rd);
        }
    }
    a.extend_from_slice(&(rd.len() as u16).to_be_bytes());
    a.extend_from_slice(&rd);
    a[6..8].copy_from_slice(&1u16.to_be_bytes());
    if edns {
        a.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
    }
    a
}

/// TLS 1.3 session: handshake, `up` bytes of application data from the
/// client, `down` back, close_notify, FIN.
#[allow(clippy::too_many_arguments)]
fn tls_exchange(
    env: &Env,
    c: &mut Conv,
    out: &mut Frames,
    r: &mut Rng,
    tcp: &mut Tcp,
    t0: u64,
    host: &str,
    up: usize,
    down: usize,
) {
    let t = tcp.handshake(c, out, t0);
    let ch = client_hello(r, host, &["http/1.1"]);
    c.truth.app_layer = Some(AppTruth::Tls(TlsTruth {
        sni: Some(host.to_string()),
        version: "TLS 1.3".into(),
        cert: None,
    }));
    // legacy_session_id, echoed by the server: after record and handshake
    // headers, version, random and its length byte.
    let sid = ch[44..76].to_vec();
    let (t_ch, _) = tcp.send(c, out, t, Dir::ToServer, &ch);
    let mut flight = server_hello(r, &sid);
    tls_record(&mut flight, 20, 0x0303, &[1]);
    let n = r.usize(2_000, 4_000);
    app_data(&mut flight, env.pools, r, n);
    let t_sh = t_ch + tcp.far() + r.range(MS, 5 * MS);
    let (sf, _) = tcp.send(c, out, t_sh, Dir::ToClient, &flight);
    let mut buf = Vec::with_capacity(up + up / 16_384 * 22 + 128);
    tls_record(&mut buf, 20, 0x0303, &[1]);
    app_data(&mut buf, env.pools, r, 36);
    app_data(&mut buf, env.pools, r, up.max(1));
    let (req_end, _) = tcp.send(c, out, sf + tcp.near(), Dir::ToServer, &buf);
    buf.clear();
    app_data(&mut buf, env.pools, r, down.max(1));
    let t_resp = req_end + tcp.far() + r.range(MS / 2, 10 * MS);
    let (_, acked) = tcp.send(c, out, t_resp, Dir::ToClient, &buf);
    buf.clear();
    app_data(&mut buf, env.pools, r, 2);
    let (_, acked) = tcp.send(
        c,
        out,
        acked + r.range(MS / 10, 5 * MS),
        Dir::ToServer,
        &buf,
    );
    tcp.close(c, out, acked + r.below(MS), Dir::ToServer);
}

/// A check-in over plain HTTP: GET with an encoded cookie, small octet-stream answer.
#[allow(clippy::too_many_arguments)]
fn beacon_http(
    env: &Env,
    c: &mut Conv,
    out: &mut Frames,
    r: &mut Rng,
    tcp: &mut Tcp,
    t0: u64,
    host: &str,
    uri: &str,
    req: usize,
    resp: usize,
) {
    let t = tcp.handshake(c, out, t0);
    let ua = USER_AGENTS[0];
    let cookie = random_str(r, BASE64, req);
    let get = format!(
        "GET {uri} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {ua}\r\nAccept: */*\r\n\
         Cookie: session={cookie}\r\nConnection: close\r\n\r\n"
    );
    let (req_end, _) = tcp.send(c, out, t, Dir::ToServer, get.as_bytes());
    let t_resp = req_end + tcp.far() + r.range(MS / 2, 20 * MS);
    let body = env.pools.bin(r, resp);
    let mut wire = format!(
        "HTTP/1.1 200 OK\r\nDate: {}\r\nServer: nginx\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        http_date(t_resp),
        body.len()
    )
    .into_bytes();
    wire.extend_from_slice(body);
    c.truth.app_layer = Some(AppTruth::Http {
        transactions: vec![HttpTx {
            method: "GET".into(),
            host: host.into(),
            uri: uri.into(),
            user_agent: ua.into(),
            request_body_len: 0,
            status: 200,
            content_type: Some("application/octet-stream".into()),
            response_body_len: body.len() as u64,
            response_entity_len: body.len() as u64,
            chunked: false,
            content_encoding: None,
            close_delimited: false,
            expect_continue: false,
        }],
    });
    let (_, acked) = tcp.send(c, out, t_resp, Dir::ToClient, &wire);
    // "Connection: close": the server closes.
    tcp.close(c, out, acked + r.range(MS / 10, 2 * MS), Dir::ToClient);
}

/// A large HTTP POST of random bytes, answered by a small JSON receipt.
#[allow(clippy::too_many_arguments)]
fn upload_http(
    env: &Env,
    c: &mut Conv,
    out: &mut Frames,
    r: &mut Rng,
    tcp: &mut Tcp,
    t0: u64,
    host: &str,
    bytes: usize,
) {
    let t = tcp.handshake(c, out, t0);
    let uri = format!("/upload/{:016x}", r.u64());
    let ua = "curl/8.5.0";
    let mut req = format!(
        "POST {uri} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {ua}\r\nAccept: */*\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {bytes}\r\n\r\n"
    )
    .into_bytes();
    req.reserve(bytes);
    let body_start = req.len();
    while req.len() - body_start < bytes {
        let n = (bytes - (req.len() - body_start)).min(256 << 10);
        req.extend_from_slice(env.pools.bin(r, n));
    }
    let (req_end, _) = tcp.send(c, out, t, Dir::ToServer, &req);
    let t_resp = req_end + tcp.far() + r.range(MS, 30 * MS);
    let body = format!(
        "{{\"stored\":true,\"bytes\":{bytes},\"id\":\"{:016x}\"}}\n",
        r.u64()
    );
    let mut wire = format!(
        "HTTP/1.1 201 Created\r\nDate: {}\r\nServer: nginx\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: keep-alive\r\n\r\n",
        http_date(t_resp),
        body.len()
    )
    .into_bytes();
    wire.extend_from_slice(body.as_bytes());
    c.truth.app_layer = Some(AppTruth::Http {
        transactions: vec![HttpTx {
            method: "POST".into(),
            host: host.into(),
            uri,
            user_agent: ua.into(),
            request_body_len: bytes as u64,
            status: 201,
            content_type: Some("application/json".into()),
            response_body_len: body.len() as u64,
            response_entity_len: body.len() as u64,
            chunked: false,
            content_encoding: None,
            close_delimited: false,
            expect_continue: false,
        }],
    });
    let (_, acked) = tcp.send(c, out, t_resp, Dir::ToClient, &wire);
    tcp.close(c, out, acked + r.range(MS / 10, 2 * MS), Dir::ToServer);
}
