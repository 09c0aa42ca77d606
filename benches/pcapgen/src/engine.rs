//! Flow scheduling: starts flows at Poisson arrival times, lets each flow
//! script produce its frames, and merges all flows into one time-ordered
//! stream through a min-heap. Only frames of unfinished flows are held.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::{IpAddr, Ipv4Addr};

use crate::apps::{self, Ctx, DnsPlan, Frames, ImpairState, Pools, Qtype};
use crate::packet::{v4, v6, Conv, FragPolicy, Path, TunKind, Tunnel, PROTO_ICMP, PROTO_ICMPV6};
use crate::packet::{PROTO_TCP, PROTO_UDP};
use crate::rng::Rng;
use crate::scenario::{self, Plan};
use crate::variants::{self, DnsKind, HttpKind};
use crate::{FlowTruth, GenConfig, GenSummary};

/// Per-record overhead of classic pcap.
const REC_HDR: u64 = 16;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Encap {
    Vlan,
    QinQ,
    Mpls,
    Tun(TunKind),
    /// GRE carrying IPv6 (ethertype 0x86DD).
    Gre6,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum App {
    Http,
    Tls,
    Dns,
    DnsTcp,
    Ntp,
    Syslog,
    Udp,
    Icmp,
    Unreach,
    // Variant kinds ([`crate::Variants`], weight 0 by default).
    Ssh,
    OddPort,
    Binary,
    HttpVar,
    DnsVar,
    Tls12,
}

/// Which protocol an [`App::OddPort`] flow carries.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Odd {
    Http,
    Tls,
    Dns,
    Ssh,
}

pub(crate) struct Server {
    pub(crate) v4: IpAddr,
    v6: IpAddr,
    pub(crate) host: String,
}

const PREFIXES: &[&str] = &[
    "www",
    "api",
    "cdn",
    "static",
    "img",
    "login",
    "mail",
    "assets",
    "news",
    "shop",
    "m",
    "app",
    "update",
    "telemetry",
    "auth",
    "video",
];
const DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "contoso.com",
    "fabrikam.net",
    "acme-corp.io",
    "northwind.biz",
    "widgets.co.uk",
    "tailspin.dev",
    "wingtip.org",
    "adventure-works.com",
    "litware.net",
    "proseware.com",
    "globex.example",
    "initech.test",
    "umbrella-corp.info",
    "hooli.xyz",
];
/// Public-looking /16s for servers (CDNs, clouds).
const SERVER_NETS: &[[u8; 2]] = &[
    [93, 184],
    [142, 250],
    [151, 101],
    [104, 16],
    [13, 107],
    [52, 84],
    [185, 199],
    [23, 32],
    [17, 253],
    [31, 13],
    [172, 217],
    [20, 190],
];
const SERVER_NETS6: &[[u16; 3]] = &[
    [0x2606, 0x4700, 0x3030],
    [0x2a00, 0x1450, 0x4001],
    [0x2620, 0x1ec, 0xc11],
    [0x2a03, 0x2880, 0xf10c],
    [0x2600, 0x9000, 0x2165],
];
pub(crate) const RESOLVERS4: &[[u8; 4]] =
    &[[8, 8, 8, 8], [1, 1, 1, 1], [9, 9, 9, 9], [10, 0, 0, 53]];
const RESOLVERS6: &[[u16; 8]] = &[
    [0x2001, 0x4860, 0x4860, 0, 0, 0, 0, 0x8888],
    [0x2606, 0x4700, 0x4700, 0, 0, 0, 0, 0x1111],
];
/// Vendor OUIs for client NICs (Intel, Apple, Dell, VMware, Realtek, HP).
const OUIS: &[[u8; 3]] = &[
    [0x00, 0x1b, 0x21],
    [0x3c, 0x22, 0xfb],
    [0xf4, 0x8e, 0x38],
    [0x00, 0x50, 0x56],
    [0x52, 0x54, 0x00],
    [0x00, 0xe0, 0x4c],
    [0x9c, 0xb6, 0x54],
];

struct Engine<'a> {
    cfg: &'a GenConfig,
    rng: Rng,
    pools: Pools,
    servers: Vec<Server>,
    gateway_mac: [u8; 6],
    deck: Vec<Encap>,
    encap_acc: f64,
    frag_acc: f64,
    frag_count: u64,
    encap_count: usize,
    flow_idx: u64,
    body_cap: usize,
    app_weights: Vec<(App, u32)>,
}

/// Runs the generator, handing frames to `sink` in timestamp order.
pub(crate) fn run(
    cfg: &GenConfig,
    mut sink: impl FnMut(u64, &[u8]) -> io::Result<()>,
) -> io::Result<GenSummary> {
    let mut eng = Engine::new(cfg);
    let mut heap: BinaryHeap<Reverse<(u64, u64, Vec<u8>)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut written = 24u64; // pcap global header
    let mut pending = 0u64;
    let mut packets = 0u64;
    let mut flows: Vec<FlowTruth> = Vec::new();
    let base = cfg.base_ts_secs * 1_000_000_000;
    let mut next_start = base;
    let mean_gap = 1e9 / cfg.flows_per_sec.max(1e-3);
    let mut frames: Frames = Vec::new();
    let mut plan = if cfg.scenarios.iter().any(|s| s.count > 0) {
        // Actors are placed within the background's time span, which only a
        // background-only run can tell (it ends on a byte budget, not a time).
        let bg_cfg = GenConfig {
            scenarios: Vec::new(),
            ..cfg.clone()
        };
        // A fn pointer, so the nested call instantiates `run` only once more.
        let discard: fn(u64, &[u8]) -> io::Result<()> = |_, _| Ok(());
        let bg = run(&bg_cfg, discard)?;
        Some(Plan::new(cfg, &eng.servers, &bg.flows))
    } else {
        None
    };
    // Scenario bytes, kept out of the budget so the background is the same
    // with or without scenarios.
    let mut extra = 0u64;
    loop {
        let creating = written + pending - extra < cfg.target_bytes;
        let heap_ts = heap.peek().map(|Reverse((ts, _, _))| *ts);
        let scen_start = plan.as_ref().and_then(Plan::next_start);
        let due =
            heap_ts.is_none_or(|ts| next_start <= ts) && scen_start.is_none_or(|s| next_start <= s);
        if creating && due {
            frames.clear();
            eng.flow(next_start, &mut frames, &mut flows);
            for (ts, f) in frames.drain(..) {
                debug_assert!(ts >= next_start - next_start % 1000);
                pending += REC_HDR + f.len() as u64;
                heap.push(Reverse((ts, seq, f)));
                seq += 1;
            }
            next_start += eng.rng.exp(mean_gap) as u64;
            continue;
        }
        if let (Some(p), Some(start)) = (plan.as_mut(), scen_start) {
            if heap_ts.is_none_or(|ts| start <= ts) {
                frames.clear();
                let env = scenario::Env {
                    pools: &eng.pools,
                    gateway_mac: eng.gateway_mac,
                    nanos: cfg.nanos,
                    body_cap: eng.body_cap,
                };
                p.emit_next(&env, &mut frames, &mut flows);
                for (ts, f) in frames.drain(..) {
                    let n = REC_HDR + f.len() as u64;
                    pending += n;
                    extra += n;
                    heap.push(Reverse((ts, seq, f)));
                    seq += 1;
                }
                continue;
            }
        }
        let Some(Reverse((ts, _, f))) = heap.pop() else {
            break;
        };
        sink(ts, &f)?;
        let n = REC_HDR + f.len() as u64;
        pending -= n;
        written += n;
        packets += 1;
    }
    Ok(GenSummary {
        packets,
        bytes_written: written,
        flows,
        scenarios: plan.map(Plan::finish).unwrap_or_default(),
    })
}

impl<'a> Engine<'a> {
    fn new(cfg: &'a GenConfig) -> Self {
        let mut rng = Rng::new(cfg.seed);
        let pools = Pools::new(&mut rng);
        let servers = (0..400)
            .map(|_| {
                let net = rng.pick(SERVER_NETS);
                let n6 = rng.pick(SERVER_NETS6);
                Server {
                    v4: v4(net[0], net[1], rng.u8(), rng.range(1, 254) as u8),
                    v6: v6([n6[0], n6[1], n6[2], 0, 0, 0, rng.u16(), rng.u16() | 1]),
                    host: format!("{}.{}", rng.pick(PREFIXES), rng.pick(DOMAINS)),
                }
            })
            .collect();
        let e = &cfg.encaps;
        let mut deck = Vec::new();
        let mut add = |on: bool, kinds: &[Encap]| {
            if on {
                deck.extend_from_slice(kinds);
            }
        };
        add(e.vlan, &[Encap::Vlan]);
        add(e.qinq, &[Encap::QinQ]);
        add(e.mpls, &[Encap::Mpls]);
        add(
            e.gre,
            &[
                Encap::Tun(TunKind::Gre),
                Encap::Tun(TunKind::GreKey),
                Encap::Gre6,
            ],
        );
        add(e.erspan, &[Encap::Tun(TunKind::Erspan)]);
        add(e.vxlan, &[Encap::Tun(TunKind::Vxlan)]);
        add(e.geneve, &[Encap::Tun(TunKind::Geneve)]);
        add(
            e.ipip,
            &[Encap::Tun(TunKind::IpIp), Encap::Tun(TunKind::SixIn4)],
        );
        add(e.teredo, &[Encap::Tun(TunKind::Teredo)]);
        let m = &cfg.mix;
        let app_weights = vec![
            (App::Http, m.http * 20),
            (App::Tls, m.tls * 20),
            (App::Dns, m.dns * 19),
            (App::DnsTcp, m.dns),
            (App::Ntp, m.other_udp * 6),
            (App::Syslog, m.other_udp * 5),
            (App::Udp, m.other_udp * 7),
            (App::Unreach, m.other_udp * 2),
            (App::Icmp, m.icmp * 20),
            // Zero weights (the default) never win a draw, so appending
            // them leaves the default RNG stream and output unchanged.
            (App::Ssh, cfg.variants.ssh * 20),
            (App::OddPort, cfg.variants.odd_ports * 20),
            (App::Binary, cfg.variants.binary * 20),
            (App::HttpVar, cfg.variants.http * 20),
            (App::DnsVar, cfg.variants.dns * 20),
            (App::Tls12, cfg.variants.tls12 * 20),
        ];
        Engine {
            cfg,
            rng,
            pools,
            servers,
            gateway_mac: [0x00, 0x00, 0x0c, 0x9f, 0xf0, 0x01],
            deck,
            // Start half-full so a small file gets its first encapsulated
            // and fragmented flows early.
            encap_acc: 0.5,
            frag_acc: 0.5,
            frag_count: 0,
            encap_count: 0,
            flow_idx: 0,
            // A single flow must not dominate a small file.
            body_cap: ((cfg.target_bytes / 40) as usize).clamp(2_000, 200_000),
            app_weights,
        }
    }

    fn pick_app(&mut self) -> App {
        let total: u32 = self.app_weights.iter().map(|a| a.1).sum();
        if total == 0 {
            return App::Dns;
        }
        let mut r = self.rng.below(total as u64) as u32;
        for &(app, w) in &self.app_weights {
            if r < w {
                return app;
            }
            r -= w;
        }
        unreachable!()
    }

    /// Next encapsulation, or None. Kinds are dealt from a shuffled deck so
    /// every enabled kind appears at the same rate even in small files.
    fn pick_encap(&mut self, app: App) -> Option<Encap> {
        if self.deck.is_empty() || app == App::Unreach {
            return None;
        }
        self.encap_acc += warmup(self.flow_idx, self.cfg.encap_share);
        if self.encap_acc < 1.0 {
            return None;
        }
        self.encap_acc -= 1.0;
        // Deal from the deck in order, reshuffling before each full pass.
        let pos = self.encap_count % self.deck.len();
        self.encap_count += 1;
        if pos == 0 {
            let mut d = std::mem::take(&mut self.deck);
            self.rng.shuffle(&mut d);
            self.deck = d;
        }
        Some(self.deck[pos])
    }
}

/// Flows at the start of a file that use a boosted share of rare features.
const WARMUP_FLOWS: u64 = 150;

/// Encapsulations and fragments are rare by design, but even a 1 MB file
/// should hold each kind a few times: the first flows triple their share.
fn warmup(flow_idx: u64, share: f64) -> f64 {
    if flow_idx < WARMUP_FLOWS {
        (share * 3.0).min(0.4).max(share)
    } else {
        share
    }
}

pub(crate) fn mac_for(addr: &IpAddr) -> [u8; 6] {
    let b: Vec<u8> = match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let n = b.len();
    let h = b
        .iter()
        .fold(0u32, |h, &x| h.wrapping_mul(31).wrapping_add(x as u32));
    let oui = OUIS[h as usize % OUIS.len()];
    [oui[0], oui[1], oui[2], b[n - 3], b[n - 2], b[n - 1]]
}

fn local_mac(rng: &mut Rng) -> [u8; 6] {
    let mut m = [0u8; 6];
    rng.fill(&mut m);
    m[0] = 0x02; // locally administered, unicast (VMs behind overlays)
    m
}

impl Engine<'_> {
    fn client_addr(&mut self, v6: bool) -> IpAddr {
        let r = &mut self.rng;
        if v6 {
            crate::packet::v6([
                0x2001,
                0xdb8,
                0x100 + r.below(16) as u16,
                r.below(256) as u16,
                0,
                0,
                r.u16(),
                r.u16() | 1,
            ])
        } else {
            v4(10, r.below(8) as u8, r.u8(), r.range(2, 254) as u8)
        }
    }

    fn ephemeral_port(&self, idx: u64) -> u16 {
        // A permutation of 28000 ports: flows closer than 28000 apart never
        // share a client port, so 5-tuples stay unique.
        32768 + ((idx.wrapping_mul(2_654_435_761)) % 28_000) as u16
    }

    fn build_path(&mut self, encap: Option<Encap>, client_mac: [u8; 6]) -> Path {
        let mut path = Path::plain(client_mac, self.gateway_mac);
        let r = &mut self.rng;
        let kind = match encap {
            None => return path,
            Some(Encap::Vlan) => {
                path.vlans.push((0x8100, r.range(2, 4000) as u16));
                return path;
            }
            Some(Encap::QinQ) => {
                path.vlans.push((0x88a8, r.range(100, 4000) as u16));
                path.vlans.push((0x8100, r.range(2, 4000) as u16));
                return path;
            }
            Some(Encap::Mpls) => {
                for _ in 0..r.range(1, 2) {
                    path.mpls.push(r.range(16, 1_048_575) as u32);
                }
                return path;
            }
            Some(Encap::Gre6) => TunKind::Gre,
            Some(Encap::Tun(k)) => k,
        };
        let rnd4 = |r: &mut Rng, a: u8, b: u8, c: u8| Ipv4Addr::new(a, b, c, r.range(1, 254) as u8);
        let (outer_c, outer_s, id) = match kind {
            TunKind::Gre | TunKind::IpIp | TunKind::SixIn4 => {
                (rnd4(r, 198, 51, 100), rnd4(r, 203, 0, 113), 0)
            }
            TunKind::GreKey => (rnd4(r, 198, 51, 100), rnd4(r, 203, 0, 113), r.u32()),
            TunKind::Erspan => (
                rnd4(r, 10, 250, 0),
                rnd4(r, 10, 250, 1),
                r.range(1, 1023) as u32,
            ),
            TunKind::Vxlan | TunKind::Geneve => {
                let c = r.u8();
                (
                    rnd4(r, 172, 16, c),
                    rnd4(r, 172, 17, c),
                    r.range(1, 0xFF_FFFF) as u32,
                )
            }
            TunKind::Teredo => {
                let c = Ipv4Addr::new(81, r.u8(), r.u8(), r.range(1, 254) as u8);
                (c, Ipv4Addr::new(192, 88, 99, r.range(1, 254) as u8), 0)
            }
        };
        // The outer frame runs between tunnel routers (Arista OUI).
        let mut router = [0x00, 0x1c, 0x73, 0, 0, 0];
        r.fill(&mut router[3..]);
        path.c_mac = router;
        path.tunnel = Some(Tunnel {
            kind,
            outer_c,
            outer_s,
            id,
            udp_port: r.range(49152, 65535) as u16,
            inner_c_mac: local_mac(r),
            inner_s_mac: local_mac(r),
            gre_seq: [r.u32(), r.u32()],
            outer_ip_id: [r.u16(), r.u16()],
            outer_ttl: [64, 64 - r.range(1, 8) as u8],
        });
        path
    }

    /// Creates one flow (two for an ICMP-answered probe) starting at `t0`.
    pub(crate) fn flow(&mut self, t0: u64, out: &mut Frames, flows: &mut Vec<FlowTruth>) {
        let idx = self.flow_idx;
        self.flow_idx += 1;
        let app = self.pick_app();
        let encap = self.pick_encap(app);
        let big = matches!(app, App::Dns | App::Udp) && {
            self.frag_acc += warmup(self.flow_idx, self.cfg.fragment_share);
            self.frag_acc >= 1.0
        };
        if big {
            self.frag_acc -= 1.0;
        }
        let is_v6 = match encap {
            Some(Encap::Gre6)
            | Some(Encap::Tun(TunKind::SixIn4))
            | Some(Encap::Tun(TunKind::Teredo)) => true,
            Some(Encap::Mpls) | Some(Encap::Tun(TunKind::IpIp)) => false,
            // Every third oversize flow is IPv6 so both fragment kinds show up.
            _ if big => self.frag_count % 3 == 2,
            _ => self.rng.chance(self.cfg.ipv6_share),
        };
        if big {
            self.frag_count += 1;
        }
        let mut client = self.client_addr(is_v6);
        let path = self.build_path(encap, mac_for(&client));
        if let Some(t) = &path.tunnel {
            if t.kind == TunKind::Teredo {
                // 2001:0::/32 + server IPv4, flags, obfuscated port and client IPv4.
                let s = t.outer_s.octets();
                let c = t.outer_c.octets();
                client = crate::packet::v6([
                    0x2001,
                    0,
                    u16::from_be_bytes([s[0], s[1]]),
                    u16::from_be_bytes([s[2], s[3]]),
                    0x8000,
                    !t.udp_port,
                    !u16::from_be_bytes([c[0], c[1]]),
                    !u16::from_be_bytes([c[2], c[3]]),
                ]);
            }
        }
        let si = self.rng.below(self.servers.len() as u64) as usize;
        let srv = &self.servers[si];
        let mut server = if is_v6 { srv.v6 } else { srv.v4 };
        let host = srv.host.clone();
        let r = &mut self.rng;
        // Sub-kinds are drawn only for variant apps, never for default ones.
        let odd =
            (app == App::OddPort).then(|| *r.pick(&[Odd::Http, Odd::Tls, Odd::Dns, Odd::Ssh]));
        let http_kind = (app == App::HttpVar).then(|| *r.pick(&HttpKind::ALL));
        let dns_kind = (app == App::DnsVar).then(|| *r.pick(&DnsKind::ALL));
        let (proto, sport, mut cport, name): (u8, u16, u16, &'static str) = match app {
            App::Http => (PROTO_TCP, if r.chance(0.15) { 8080 } else { 80 }, 0, "http"),
            App::Tls => (PROTO_TCP, 443, 0, "tls"),
            App::Dns => (PROTO_UDP, 53, 0, "dns"),
            App::DnsTcp => (PROTO_TCP, 53, 0, "dns-tcp"),
            App::Ntp => (PROTO_UDP, 123, 0, "ntp"),
            App::Syslog => (PROTO_UDP, 514, 0, "syslog"),
            // Above the tunnel ports (3544, 4789, 6081) so decoders never mistake them.
            App::Udp => (PROTO_UDP, r.range(10_000, 32_000) as u16, 0, "udp"),
            App::Unreach => (PROTO_UDP, r.range(33434, 33534) as u16, 0, "udp-closed"),
            App::Icmp => (
                if is_v6 { PROTO_ICMPV6 } else { PROTO_ICMP },
                0,
                0,
                "icmp-echo",
            ),
            App::Ssh => (PROTO_TCP, 22, 0, "ssh"),
            App::OddPort => match odd {
                Some(Odd::Http) => (PROTO_TCP, 8081, 0, "http"),
                Some(Odd::Tls) => (PROTO_TCP, 8443, 0, "tls"),
                Some(Odd::Dns) => (PROTO_UDP, 5353, 0, "dns"),
                _ => (PROTO_TCP, 2222, 0, "ssh"),
            },
            App::Binary => (PROTO_TCP, if r.chance(0.5) { 80 } else { 443 }, 0, "binary"),
            App::HttpVar => (PROTO_TCP, 80, 0, "http"),
            App::DnsVar if dns_kind == Some(DnsKind::TcpTwo) => (PROTO_TCP, 53, 0, "dns-tcp"),
            App::DnsVar => (PROTO_UDP, 53, 0, "dns"),
            App::Tls12 => (PROTO_TCP, 443, 0, "tls"),
        };
        if proto != PROTO_ICMP && proto != PROTO_ICMPV6 {
            cport = self.ephemeral_port(idx);
        }
        let r = &mut self.rng;
        match app {
            App::Dns | App::DnsTcp | App::DnsVar => {
                server = if is_v6 {
                    crate::packet::v6(*r.pick(RESOLVERS6))
                } else {
                    let a = r.pick(RESOLVERS4);
                    v4(a[0], a[1], a[2], a[3])
                };
            }
            App::Syslog => {
                server = if is_v6 {
                    crate::packet::v6([0xfd00, 0, 0, 0x10, 0, 0, 0, 0x514])
                } else {
                    v4(10, 0, 0, 10)
                };
            }
            App::Ntp if r.chance(0.5) => cport = 123,
            _ => {}
        }
        let client_ttl = if mac_for(&client)[5] & 1 == 0 {
            64
        } else {
            128
        };
        let server_ttl = *r.pick(&[64u8, 128, 255]) - r.range(5, 20) as u8;
        let frag = FragPolicy {
            reverse_prob: self.cfg.frag_reverse_prob,
            drop_prob: self.cfg.frag_drop_prob,
        };
        let nanos = self.cfg.nanos;
        let mut flow_rng = Rng::new(self.rng.u64());
        let fr = &mut flow_rng;
        let mut conv = Conv::new(
            fr,
            proto,
            client,
            server,
            cport,
            sport,
            path.clone(),
            [client_ttl, server_ttl],
            nanos,
            frag,
            name,
        );
        if proto == PROTO_TCP && self.cfg.impair.any() {
            // Seeded from the config, not drawn from `self.rng`, so impairments
            // alter only the impaired segments.
            let seed = self.cfg.seed ^ idx.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x1_ABAD_5EED;
            conv.imp = Some(ImpairState::new(&self.cfg.impair, seed));
        }
        conv.truth.variant = match app {
            App::OddPort => Some("odd-port"),
            App::HttpVar => http_kind.map(HttpKind::name),
            App::DnsVar => dns_kind.map(DnsKind::name),
            App::Tls12 => Some("tls12"),
            _ => None,
        };
        let ctx = Ctx {
            pools: &self.pools,
            host: &host,
            body_cap: self.body_cap,
        };
        match app {
            App::Ssh => variants::ssh(&ctx, &mut conv, out, fr, t0),
            App::OddPort => match odd {
                Some(Odd::Http) => apps::http(&ctx, &mut conv, out, fr, t0),
                Some(Odd::Tls) => apps::tls(&ctx, &mut conv, out, fr, t0),
                Some(Odd::Dns) => variants::dns_plain(&mut conv, out, fr, t0, &host),
                _ => variants::ssh(&ctx, &mut conv, out, fr, t0),
            },
            App::Binary => variants::binary(&ctx, &mut conv, out, fr, t0),
            App::HttpVar => variants::http(
                &ctx,
                &mut conv,
                out,
                fr,
                t0,
                http_kind.unwrap_or(HttpKind::Chunked),
            ),
            App::DnsVar => variants::dns(
                &mut conv,
                out,
                fr,
                t0,
                &host,
                dns_kind.unwrap_or(DnsKind::NxDomain),
            ),
            App::Tls12 => variants::tls12(&ctx, &mut conv, out, fr, t0),
            App::Http => apps::http(&ctx, &mut conv, out, fr, t0),
            App::Tls => apps::tls(&ctx, &mut conv, out, fr, t0),
            App::Dns | App::DnsTcp => {
                let domain = host.split_once('.').map_or(host.as_str(), |x| x.1);
                let nx = fr.chance(0.06) && !big;
                let qtype = if big {
                    Qtype::Txt
                } else {
                    *fr.pick(&[
                        Qtype::A,
                        Qtype::A,
                        Qtype::A,
                        Qtype::Aaaa,
                        Qtype::Aaaa,
                        Qtype::Mx,
                        Qtype::Txt,
                    ])
                };
                let qname = if nx {
                    let mut l = String::new();
                    for _ in 0..fr.range(6, 14) {
                        l.push(
                            b"abcdefghijklmnopqrstuvwxyz0123456789"[fr.below(36) as usize] as char,
                        );
                    }
                    format!("{l}.{domain}")
                } else if matches!(qtype, Qtype::Mx) {
                    domain.to_string()
                } else if big {
                    format!("selector{}._domainkey.{domain}", fr.below(4))
                } else if matches!(qtype, Qtype::Txt) {
                    domain.to_string()
                } else {
                    host.clone()
                };
                let plan = DnsPlan {
                    name: &qname,
                    qtype,
                    nxdomain: nx,
                    big,
                };
                if app == App::Dns {
                    apps::dns_udp(&mut conv, out, fr, t0, &plan);
                } else {
                    apps::dns_tcp(&mut conv, out, fr, t0, &plan);
                }
            }
            App::Ntp => apps::ntp(&mut conv, out, fr, t0),
            App::Syslog => apps::syslog(&mut conv, out, fr, t0, &host),
            App::Udp => apps::udp_stream(&self.pools, &mut conv, out, fr, t0, big),
            App::Icmp => apps::icmp_echo(&mut conv, out, fr, t0),
            App::Unreach => {
                let mut err = Conv::new(
                    fr,
                    if is_v6 { PROTO_ICMPV6 } else { PROTO_ICMP },
                    client,
                    server,
                    0,
                    0,
                    path.clone(),
                    [client_ttl, server_ttl],
                    nanos,
                    frag,
                    "icmp-unreach",
                );
                apps::unreachable(&mut conv, &mut err, out, fr, t0);
                flows.push(conv.into_truth());
                flows.push(err.into_truth());
                return;
            }
        }
        flows.push(conv.into_truth());
    }
}
