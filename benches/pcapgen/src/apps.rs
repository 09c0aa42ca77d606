//! Application-level conversation scripts (HTTP, TLS, DNS, NTP, ...) and
//! the TCP machinery they share. Each script appends timestamped frames to
//! `out`; the engine merges flows into one time-ordered stream.

use crate::packet::{Conv, Dir};
use crate::rng::Rng;
use crate::{AppTruth, DnsMsg, GapTruth, HttpTx, Impair, ImpairTruth, OverlapTruth, TlsTruth};

pub(crate) type Frames = Vec<(u64, Vec<u8>)>;

pub(crate) const FIN: u8 = 0x01;
pub(crate) const SYN: u8 = 0x02;
pub(crate) const RST: u8 = 0x04;
pub(crate) const PSH: u8 = 0x08;
pub(crate) const ACK: u8 = 0x10;

pub(crate) const MS: u64 = 1_000_000;

pub(crate) fn dir_name(dir: Dir) -> &'static str {
    match dir {
        Dir::ToServer => "toserver",
        Dir::ToClient => "toclient",
    }
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Per-flow TCP impairment decisions. Its RNG is separate from the flow's
/// so that impairments change nothing but the impaired segments.
pub(crate) struct ImpairState {
    rng: Rng,
    cfg: Impair,
    /// Eligible data segments to skip before the overlapping retransmission.
    overlap_in: Option<u32>,
    pub(crate) truth: ImpairTruth,
}

impl ImpairState {
    pub(crate) fn new(cfg: &Impair, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let overlap_in = rng.chance(cfg.overlap).then(|| rng.below(3) as u32);
        ImpairState {
            rng,
            cfg: cfg.clone(),
            overlap_in,
            truth: ImpairTruth::default(),
        }
    }

    fn reorder(&mut self) -> bool {
        let r = self.rng.chance(self.cfg.reorder);
        self.truth.reordered += r as u32;
        r
    }

    fn take_overlap(&mut self) -> bool {
        match &mut self.overlap_in {
            Some(0) => {
                self.overlap_in = None;
                true
            }
            Some(n) => {
                *n -= 1;
                false
            }
            None => false,
        }
    }
}

/// Shared content so per-flow payloads are cheap slices rather than fresh
/// random bytes (generation speed is a requirement).
pub(crate) struct Pools {
    pub(crate) text: Vec<u8>,
    pub(crate) bin: Vec<u8>,
}

pub(crate) const WORDS: &[&str] = &[
    "network", "sensor", "traffic", "alert", "policy", "server", "client", "stream", "packet",
    "report", "account", "update", "service", "product", "customer", "order", "search", "result",
    "window", "system", "security", "session", "profile", "message", "download", "content", "the",
    "and", "for", "with", "from", "about", "this", "that", "more", "new", "your", "all",
];

impl Pools {
    pub(crate) fn new(rng: &mut Rng) -> Self {
        let mut bin = vec![0u8; 1 << 20];
        rng.fill(&mut bin);
        let mut text = Vec::with_capacity(600 << 10);
        text.extend_from_slice(
            b"<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Welcome</title>\n\
              <link rel=\"stylesheet\" href=\"/static/css/site.css\"></head>\n<body>\n",
        );
        while text.len() < 512 << 10 {
            let tag = *rng.pick(&["p", "div", "li", "span", "h2", "td"]);
            text.extend_from_slice(format!("<{tag} class=\"c{}\">", rng.below(40)).as_bytes());
            for i in 0..rng.range(5, 30) {
                if i > 0 {
                    text.push(b' ');
                }
                text.extend_from_slice(rng.pick(WORDS).as_bytes());
            }
            text.extend_from_slice(format!("</{tag}>\n").as_bytes());
            if rng.chance(0.05) {
                text.extend_from_slice(
                    format!(
                        "<a href=\"/article/{}\"><img src=\"/images/{}.webp\" alt=\"\"></a>\n",
                        rng.below(100_000),
                        rng.below(100_000)
                    )
                    .as_bytes(),
                );
            }
        }
        Pools { text, bin }
    }

    fn slice<'a>(pool: &'a [u8], rng: &mut Rng, len: usize) -> &'a [u8] {
        let len = len.min(pool.len());
        let off = rng.below((pool.len() - len + 1) as u64) as usize;
        &pool[off..off + len]
    }

    pub(crate) fn text(&self, rng: &mut Rng, len: usize) -> &[u8] {
        Self::slice(&self.text, rng, len)
    }

    pub(crate) fn bin(&self, rng: &mut Rng, len: usize) -> &[u8] {
        Self::slice(&self.bin, rng, len)
    }
}

/// Per-connection TCP state: sequence numbers and a crude timing model.
///
/// The sensor is assumed to sit near the client: a client packet's answer
/// is seen `far` ns later, a server packet's answer `near` ns later.
pub(crate) struct Tcp {
    seq: [u32; 2],
    win: [u16; 2],
    mss: usize,
    far: u64,
    near: u64,
    /// Serialisation time per byte at the flow's bottleneck rate.
    ns_per_byte: f64,
    cwnd: [usize; 2],
    /// Sequence number of each direction's first payload byte, for truth offsets.
    base: [u32; 2],
}

impl Tcp {
    pub(crate) fn new(rng: &mut Rng, conv: &Conv) -> Self {
        // MSS follows the path MTU so tunnelled frames stay within 1514 bytes.
        let ip_tcp = if conv.is_v6() { 60 } else { 40 };
        let mss = (conv.path.inner_mtu() - ip_tcp).min(1460);
        let mbps = rng.log_uniform(20.0, 1000.0);
        let seq = [rng.u32(), rng.u32()];
        Tcp {
            seq,
            base: [seq[0].wrapping_add(1), seq[1].wrapping_add(1)],
            win: [rng.range(500, 2000) as u16, rng.range(200, 1000) as u16],
            mss,
            far: (rng.log_uniform(2.0, 150.0) * MS as f64) as u64,
            near: rng.range(100_000, 1_500_000),
            ns_per_byte: 8000.0 / mbps,
            cwnd: [10, 10],
        }
    }

    /// Fixes the path's round-trip halves and bottleneck rate, for bulk
    /// transfers that must finish within a given time.
    pub(crate) fn pace(&mut self, far: u64, near: u64, mbps: f64) {
        self.far = far;
        self.near = near;
        self.ns_per_byte = 8000.0 / mbps;
    }

    pub(crate) fn far(&self) -> u64 {
        self.far
    }

    pub(crate) fn near(&self) -> u64 {
        self.near
    }

    pub(crate) fn delay(&self, dir: Dir) -> u64 {
        match dir {
            Dir::ToServer => self.far,
            Dir::ToClient => self.near,
        }
    }

    fn gap(&self, len: usize) -> u64 {
        ((len + 66) as f64 * self.ns_per_byte) as u64 + 1_000
    }

    fn ack_for(&self, dir: Dir) -> u32 {
        self.seq[1 - dir as usize]
    }

    /// SYN, SYN/ACK, ACK. Returns the time of the final ACK.
    pub(crate) fn handshake(&mut self, c: &mut Conv, out: &mut Frames, t: u64) -> u64 {
        let mss = (self.mss as u16).to_be_bytes();
        // MSS, NOP, window scale 7, SACK permitted, NOP, NOP.
        let opts = [2, 4, mss[0], mss[1], 1, 3, 3, 7, 4, 2, 1, 1];
        c.tcp(
            out,
            t,
            Dir::ToServer,
            SYN,
            self.seq[0],
            0,
            64240,
            &opts,
            &[],
        );
        self.seq[0] = self.seq[0].wrapping_add(1);
        let t1 = t + self.far;
        c.tcp(
            out,
            t1,
            Dir::ToClient,
            SYN | ACK,
            self.seq[1],
            self.seq[0],
            65535,
            &opts,
            &[],
        );
        self.seq[1] = self.seq[1].wrapping_add(1);
        let t2 = t1 + self.near;
        self.ack(c, out, t2, Dir::ToServer);
        t2
    }

    pub(crate) fn ack(&mut self, c: &mut Conv, out: &mut Frames, t: u64, dir: Dir) {
        let d = dir as usize;
        c.tcp(
            out,
            t,
            dir,
            ACK,
            self.seq[d],
            self.ack_for(dir),
            self.win[d],
            &[],
            &[],
        );
    }

    /// Sends `data` from `dir`'s side in slow-start windows; the receiver
    /// ACKs every second segment. Returns (last data segment time, last ACK time).
    pub(crate) fn send(
        &mut self,
        c: &mut Conv,
        out: &mut Frames,
        t: u64,
        dir: Dir,
        data: &[u8],
    ) -> (u64, u64) {
        let d = dir as usize;
        let rev = if d == 0 { Dir::ToClient } else { Dir::ToServer };
        let segs: Vec<&[u8]> = data.chunks(self.mss).collect();
        let mut i = 0;
        let mut t_win = t;
        let (mut last_seg, mut last_ack) = (t, t);
        while i < segs.len() {
            let w = self.cwnd[d].min(segs.len() - i);
            let mut ts = t_win;
            let mut first_ack = None;
            let mut held: Option<(u8, u32, &[u8])> = None;
            for k in 0..w {
                let seg = segs[i + k];
                let last = i + k + 1 == segs.len();
                let flags = if last || k + 1 == w { ACK | PSH } else { ACK };
                let seq = self.seq[d];
                self.seq[d] = seq.wrapping_add(seg.len() as u32);
                let mut ack_now = k % 2 == 1 || k + 1 == w;
                if k + 1 < w && held.is_none() && c.imp.as_mut().is_some_and(|m| m.reorder()) {
                    // Sent right after its successor; the ACK of the
                    // successor then covers both, so no ACK runs ahead of data.
                    held = Some((flags, seq, seg));
                    ts += self.gap(seg.len());
                    continue;
                }
                self.data(c, out, ts, dir, flags, seq, seg);
                last_seg = ts;
                if let Some((f, s, p)) = held.take() {
                    self.data(c, out, ts + 1_000, dir, f, s, p);
                    last_seg = ts + 1_000;
                    ack_now = true;
                }
                if ack_now {
                    let at = ts + self.delay(dir);
                    self.ack(c, out, at, rev);
                    first_ack.get_or_insert(at);
                    last_ack = at;
                }
                ts += self.gap(seg.len());
            }
            i += w;
            self.cwnd[d] = (self.cwnd[d] * 2).min(96);
            t_win = ts.max(first_ack.unwrap_or(ts) + self.delay(rev));
        }
        (last_seg, last_ack)
    }

    /// One data segment, with impairments applied when they are on.
    #[allow(clippy::too_many_arguments)]
    fn data(
        &mut self,
        c: &mut Conv,
        out: &mut Frames,
        ts: u64,
        dir: Dir,
        flags: u8,
        seq: u32,
        seg: &[u8],
    ) {
        let d = dir as usize;
        let (ack, win) = (self.ack_for(dir), self.win[d]);
        let Some(m) = c.imp.as_mut() else {
            c.tcp(out, ts, dir, flags, seq, ack, win, &[], seg);
            return;
        };
        m.truth.data_segments += 1;
        let off = u64::from(seq.wrapping_sub(self.base[d]));
        if m.rng.chance(m.cfg.loss) {
            m.truth.lost.push(GapTruth {
                dir: dir_name(dir),
                offset: off,
                len: seg.len() as u32,
            });
            return;
        }
        let second = (seg.len() >= 2 && m.take_overlap()).then(|| {
            let half = seg.len() / 2;
            let mut v = seg.to_vec();
            for b in &mut v[half..] {
                *b ^= m.rng.u8() | 1; // never 0: every byte differs
            }
            m.truth.overlaps.push(OverlapTruth {
                dir: dir_name(dir),
                offset: off + half as u64,
                first_hex: hex(&seg[half..]),
                second_hex: hex(&v[half..]),
            });
            v
        });
        let dup = m.rng.chance(m.cfg.dup);
        m.truth.duplicated += dup as u32;
        c.tcp(out, ts, dir, flags, seq, ack, win, &[], seg);
        if let Some(v) = second {
            c.tcp(out, ts + 500, dir, flags, seq, ack, win, &[], &v);
        }
        if dup {
            c.tcp(out, ts + 700, dir, flags, seq, ack, win, &[], seg);
        }
    }

    /// FIN/ACK exchange started by `closer`.
    pub(crate) fn close(&mut self, c: &mut Conv, out: &mut Frames, t: u64, closer: Dir) -> u64 {
        let d = closer as usize;
        let other = if d == 0 { Dir::ToClient } else { Dir::ToServer };
        c.tcp(
            out,
            t,
            closer,
            FIN | ACK,
            self.seq[d],
            self.ack_for(closer),
            self.win[d],
            &[],
            &[],
        );
        self.seq[d] = self.seq[d].wrapping_add(1);
        let t1 = t + self.delay(closer);
        let o = other as usize;
        c.tcp(
            out,
            t1,
            other,
            FIN | ACK,
            self.seq[o],
            self.ack_for(other),
            self.win[o],
            &[],
            &[],
        );
        self.seq[o] = self.seq[o].wrapping_add(1);
        let t2 = t1 + self.delay(other);
        self.ack(c, out, t2, closer);
        t2
    }

    pub(crate) fn reset(&mut self, c: &mut Conv, out: &mut Frames, t: u64, from: Dir) {
        let d = from as usize;
        c.tcp(
            out,
            t,
            from,
            RST | ACK,
            self.seq[d],
            self.ack_for(from),
            0,
            &[],
            &[],
        );
    }
}

/// Ends a TCP session: mostly graceful FIN from either side, sometimes RST.
pub(crate) fn teardown(tcp: &mut Tcp, c: &mut Conv, out: &mut Frames, rng: &mut Rng, t: u64) {
    let r = rng.f64();
    if r < 0.04 {
        tcp.reset(c, out, t, Dir::ToServer);
    } else if r < 0.07 {
        tcp.reset(c, out, t, Dir::ToClient);
    } else if r < 0.55 {
        tcp.close(c, out, t, Dir::ToServer);
    } else {
        tcp.close(c, out, t, Dir::ToClient);
    }
}

pub(crate) const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "curl/8.5.0",
    "python-requests/2.31.0",
    "Microsoft-CryptoAPI/10.0",
    "okhttp/4.12.0",
];

pub(crate) struct Resource {
    pub(crate) path: String,
    pub(crate) ctype: &'static str,
    pub(crate) text: bool,
}

pub(crate) fn pick_resource(rng: &mut Rng) -> Resource {
    let n = rng.below(100_000);
    match rng.below(8) {
        0 => Resource {
            path: "/".into(),
            ctype: "text/html; charset=utf-8",
            text: true,
        },
        1 => Resource {
            path: format!("/article/{n}"),
            ctype: "text/html; charset=utf-8",
            text: true,
        },
        2 => Resource {
            path: format!("/api/v1/items?id={n}&fields=name,price"),
            ctype: "application/json",
            text: true,
        },
        3 => Resource {
            path: format!("/static/js/app.{n:x}.js"),
            ctype: "application/javascript",
            text: true,
        },
        4 => Resource {
            path: format!("/images/{n}.webp"),
            ctype: "image/webp",
            text: false,
        },
        5 => Resource {
            path: format!("/downloads/update-{n}.bin"),
            ctype: "application/octet-stream",
            text: false,
        },
        6 => Resource {
            path: format!(
                "/search?q={}+{}",
                WORDS[n as usize % 20],
                WORDS[n as usize % 37]
            ),
            ctype: "text/html; charset=utf-8",
            text: true,
        },
        _ => Resource {
            path: "/favicon.ico".into(),
            ctype: "image/x-icon",
            text: false,
        },
    }
}

/// Body sizes: mostly small, a tail up to ~200 KB.
pub(crate) fn body_len(rng: &mut Rng, cap: usize) -> usize {
    let r = rng.f64();
    let n = if r < 0.70 {
        rng.log_uniform(150.0, 6_000.0)
    } else if r < 0.95 {
        rng.log_uniform(6_000.0, 50_000.0)
    } else {
        rng.log_uniform(50_000.0, 200_000.0)
    } as usize;
    n.min(cap)
}

pub(crate) fn http_date(ts_ns: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = ts_ns / 1_000_000_000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + (month <= 2) as i64;
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub(crate) struct Ctx<'a> {
    pub(crate) pools: &'a Pools,
    pub(crate) host: &'a str,
    /// Upper bound for one body/transfer so small files stay mixed.
    pub(crate) body_cap: usize,
}

pub(crate) fn http(ctx: &Ctx, c: &mut Conv, out: &mut Frames, rng: &mut Rng, t0: u64) {
    let mut tcp = Tcp::new(rng, c);
    let mut t = tcp.handshake(c, out, t0);
    let nreq = *rng.pick(&[1, 1, 1, 2, 2, 3, 4, 5]);
    let ua = *rng.pick(USER_AGENTS);
    let host = if c.sport == 80 {
        ctx.host.to_string()
    } else {
        format!("{}:{}", ctx.host, c.sport)
    };
    let server_sw = *rng.pick(&[
        "nginx/1.24.0",
        "Apache/2.4.58 (Ubuntu)",
        "cloudflare",
        "Microsoft-IIS/10.0",
    ]);
    let mut buf = Vec::with_capacity(4096);
    let mut txs = Vec::new();
    for i in 0..nreq {
        if i > 0 {
            t += (rng.log_uniform(5.0, 1500.0) * MS as f64) as u64;
        }
        let res = pick_resource(rng);
        buf.clear();
        let post = rng.chance(0.2);
        let (method, uri, req_body) = if post {
            let json = rng.chance(0.5);
            let body = if json {
                format!(
                    "{{\"user\":\"u{}\",\"action\":\"{}\",\"items\":[{},{}],\"note\":\"{}\"}}",
                    rng.below(10_000),
                    rng.pick(WORDS),
                    rng.below(1000),
                    rng.below(1000),
                    {
                        let n = rng.usize(20, 1500);
                        String::from_utf8_lossy(ctx.pools.text(rng, n))
                    }
                    .replace(['"', '\n', '<', '>'], " ")
                )
            } else {
                format!(
                    "username=user{}&password=p{}&remember=on&csrf={:016x}",
                    rng.below(10_000),
                    rng.below(1_000_000),
                    rng.u64()
                )
            };
            let ctype = if json {
                "application/json"
            } else {
                "application/x-www-form-urlencoded"
            };
            let path = if json { "/api/v1/events" } else { "/login" };
            buf.extend_from_slice(
                format!(
                    "POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {ua}\r\nAccept: */*\r\n\
                     Accept-Encoding: gzip, deflate\r\nContent-Type: {ctype}\r\n\
                     Content-Length: {}\r\nConnection: keep-alive\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            );
            buf.extend_from_slice(body.as_bytes());
            ("POST", path.to_string(), body.len())
        } else {
            buf.extend_from_slice(
                format!(
                    "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {ua}\r\n\
                     Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
                     Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate\r\n\
                     Connection: keep-alive\r\n\r\n",
                    res.path
                )
                .as_bytes(),
            );
            ("GET", res.path.clone(), 0)
        };
        let (req_end, _) = tcp.send(c, out, t, Dir::ToServer, &buf);
        let t_resp = req_end + tcp.far + rng.range(MS / 2, 40 * MS);

        let (status, mut blen) = match rng.below(20) {
            0 => ("404 Not Found", rng.usize(150, 600)),
            1 => ("301 Moved Permanently", rng.usize(150, 300)),
            2 => ("304 Not Modified", 0),
            _ => ("200 OK", body_len(rng, ctx.body_cap)),
        };
        if post {
            blen = blen.min(2000);
        }
        let ok = status.starts_with("200");
        let last = i + 1 == nreq;
        let ctype = if post {
            "application/json"
        } else if ok {
            res.ctype
        } else {
            "text/html; charset=utf-8"
        };
        buf.clear();
        buf.extend_from_slice(
            format!(
                "HTTP/1.1 {status}\r\nDate: {}\r\nServer: {server_sw}\r\nContent-Type: {}\r\n\
                 Content-Length: {blen}\r\nCache-Control: max-age=3600\r\nConnection: {}\r\n\r\n",
                http_date(t_resp),
                ctype,
                if last && rng.chance(0.5) {
                    "close"
                } else {
                    "keep-alive"
                },
            )
            .as_bytes(),
        );
        let body = if res.text || post || !ok {
            ctx.pools.text(rng, blen)
        } else {
            ctx.pools.bin(rng, blen)
        };
        buf.extend_from_slice(body);
        txs.push(HttpTx {
            method: method.into(),
            host: host.clone(),
            uri,
            user_agent: ua.into(),
            request_body_len: req_body as u64,
            status: status[..3].parse().unwrap_or(0),
            content_type: Some(ctype.into()),
            response_body_len: body.len() as u64,
            response_entity_len: body.len() as u64,
            chunked: false,
            content_encoding: None,
            close_delimited: false,
            expect_continue: false,
        });
        let (_, acked) = tcp.send(c, out, t_resp, Dir::ToClient, &buf);
        t = acked;
    }
    c.truth.app_layer = Some(AppTruth::Http { transactions: txs });
    let t_close = t + rng.range(MS, 200 * MS);
    teardown(&mut tcp, c, out, rng, t_close);
}

pub(crate) fn tls_record(out: &mut Vec<u8>, typ: u8, version: u16, body: &[u8]) {
    out.push(typ);
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(body);
}

pub(crate) fn ext(out: &mut Vec<u8>, typ: u16, body: &[u8]) {
    out.extend_from_slice(&typ.to_be_bytes());
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(body);
}

pub(crate) fn u24(v: usize) -> [u8; 3] {
    [(v >> 16) as u8, (v >> 8) as u8, v as u8]
}

/// A TLS 1.3 ClientHello record as modern browsers send it.
pub(crate) fn client_hello(rng: &mut Rng, sni: &str, alpn: &[&str]) -> Vec<u8> {
    client_hello_opt(rng, Some(sni), alpn)
}

/// [`client_hello`] where the SNI extension may be left out.
pub(crate) fn client_hello_opt(rng: &mut Rng, sni: Option<&str>, alpn: &[&str]) -> Vec<u8> {
    let mut hs = Vec::with_capacity(600);
    hs.extend_from_slice(&[0x03, 0x03]);
    let mut random = [0u8; 32];
    rng.fill(&mut random);
    hs.extend_from_slice(&random);
    hs.push(32);
    let mut sid = [0u8; 32];
    rng.fill(&mut sid);
    hs.extend_from_slice(&sid);
    let suites: [u16; 9] = [
        0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8,
    ];
    hs.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        hs.extend_from_slice(&s.to_be_bytes());
    }
    hs.extend_from_slice(&[1, 0]); // null compression only
    let mut exts = Vec::with_capacity(400);
    if let Some(sni) = sni {
        let name = sni.as_bytes();
        let mut sn = Vec::new();
        sn.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
        sn.push(0); // host_name
        sn.extend_from_slice(&(name.len() as u16).to_be_bytes());
        sn.extend_from_slice(name);
        ext(&mut exts, 0x0000, &sn);
    }
    ext(&mut exts, 0x0017, &[]); // extended_master_secret
    ext(&mut exts, 0xff01, &[0]); // renegotiation_info
    ext(
        &mut exts,
        0x000a,
        &[0, 8, 0, 0x1d, 0, 0x17, 0, 0x18, 0, 0x19],
    ); // supported_groups
    ext(&mut exts, 0x000b, &[1, 0]); // ec_point_formats
    let mut al = Vec::new();
    let total: usize = alpn.iter().map(|p| p.len() + 1).sum();
    al.extend_from_slice(&(total as u16).to_be_bytes());
    for p in alpn {
        al.push(p.len() as u8);
        al.extend_from_slice(p.as_bytes());
    }
    ext(&mut exts, 0x0010, &al); // ALPN
    ext(&mut exts, 0x0005, &[1, 0, 0, 0, 0]); // status_request
    let sigs: [u16; 8] = [
        0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
    ];
    let mut sa = Vec::new();
    sa.extend_from_slice(&((sigs.len() * 2) as u16).to_be_bytes());
    for s in sigs {
        sa.extend_from_slice(&s.to_be_bytes());
    }
    ext(&mut exts, 0x000d, &sa); // signature_algorithms
    let mut ks = vec![0, 36, 0, 0x1d, 0, 32];
    let mut key = [0u8; 32];
    rng.fill(&mut key);
    ks.extend_from_slice(&key);
    ext(&mut exts, 0x0033, &ks); // key_share: x25519
    ext(&mut exts, 0x002d, &[1, 1]); // psk_key_exchange_modes: psk_dhe_ke
    ext(&mut exts, 0x002b, &[4, 0x03, 0x04, 0x03, 0x03]); // supported_versions
                                                          // Browsers pad the ClientHello to 512 bytes (RFC 7685).
    let cur = 4 + hs.len() + 2 + exts.len();
    if cur < 508 {
        let pad = 508 - cur;
        ext(&mut exts, 0x0015, &vec![0u8; pad]);
    }
    hs.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    hs.extend_from_slice(&exts);
    let mut msg = vec![1];
    msg.extend_from_slice(&u24(hs.len()));
    msg.extend_from_slice(&hs);
    let mut rec = Vec::with_capacity(msg.len() + 5);
    tls_record(&mut rec, 22, 0x0301, &msg);
    rec
}

pub(crate) fn server_hello(rng: &mut Rng, session_id: &[u8]) -> Vec<u8> {
    let mut hs = vec![0x03, 0x03];
    let mut random = [0u8; 32];
    rng.fill(&mut random);
    hs.extend_from_slice(&random);
    hs.push(session_id.len() as u8);
    hs.extend_from_slice(session_id);
    hs.extend_from_slice(&0x1301u16.to_be_bytes());
    hs.push(0);
    let mut exts = Vec::new();
    let mut ks = vec![0, 0x1d, 0, 32];
    let mut key = [0u8; 32];
    rng.fill(&mut key);
    ks.extend_from_slice(&key);
    ext(&mut exts, 0x0033, &ks);
    ext(&mut exts, 0x002b, &[0x03, 0x04]);
    hs.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    hs.extend_from_slice(&exts);
    let mut msg = vec![2];
    msg.extend_from_slice(&u24(hs.len()));
    msg.extend_from_slice(&hs);
    let mut rec = Vec::new();
    tls_record(&mut rec, 22, 0x0303, &msg);
    rec
}

/// Application data (type 23) records carrying `len` bytes of ciphertext.
pub(crate) fn app_data(out: &mut Vec<u8>, pools: &Pools, rng: &mut Rng, mut len: usize) {
    while len > 0 {
        let n = len.min(16_384);
        // 16 bytes AEAD tag + 1 byte inner content type.
        tls_record(out, 23, 0x0303, pools.bin(rng, n + 17));
        len -= n;
    }
}

pub(crate) fn tls(ctx: &Ctx, c: &mut Conv, out: &mut Frames, rng: &mut Rng, t0: u64) {
    let mut tcp = Tcp::new(rng, c);
    let t = tcp.handshake(c, out, t0);
    let alpn: &[&str] = if rng.chance(0.7) {
        &["h2", "http/1.1"]
    } else {
        &["http/1.1"]
    };
    let ch = client_hello(rng, ctx.host, alpn);
    c.truth.app_layer = Some(AppTruth::Tls(TlsTruth {
        sni: Some(ctx.host.to_string()),
        version: "TLS 1.3".into(),
        cert: None,
    }));
    let sid = ch[5 + 4 + 2 + 32 + 1..5 + 4 + 2 + 32 + 1 + 32].to_vec();
    let (t_ch, _) = tcp.send(c, out, t, Dir::ToServer, &ch);
    let mut flight = server_hello(rng, &sid);
    tls_record(&mut flight, 20, 0x0303, &[1]);
    // EncryptedExtensions, Certificate, CertificateVerify, Finished.
    let n = rng.usize(2_000, 5_500);
    app_data(&mut flight, ctx.pools, rng, n);
    let (sf, _) = tcp.send(
        c,
        out,
        t_ch + tcp.far + rng.range(MS, 10 * MS),
        Dir::ToClient,
        &flight,
    );
    let mut cf = Vec::new();
    tls_record(&mut cf, 20, 0x0303, &[1]);
    app_data(&mut cf, ctx.pools, rng, 36);
    let mut t = sf + tcp.near;
    let rounds = *rng.pick(&[1, 1, 1, 1, 2, 2, 3, 5]);
    let mut buf = Vec::with_capacity(4096);
    for i in 0..rounds {
        buf.clear();
        if i == 0 {
            buf.extend_from_slice(&cf);
        } else {
            t += (rng.log_uniform(5.0, 2000.0) * MS as f64) as u64;
        }
        let n = rng.usize(80, 1800);
        app_data(&mut buf, ctx.pools, rng, n);
        let (req_end, _) = tcp.send(c, out, t, Dir::ToServer, &buf);
        buf.clear();
        let n = body_len(rng, ctx.body_cap).max(60);
        app_data(&mut buf, ctx.pools, rng, n);
        let (_, acked) = tcp.send(
            c,
            out,
            req_end + tcp.far + rng.range(MS / 2, 30 * MS),
            Dir::ToClient,
            &buf,
        );
        t = acked;
    }
    // close_notify alerts travel encrypted, i.e. as application data.
    t += rng.range(MS, 500 * MS);
    buf.clear();
    app_data(&mut buf, ctx.pools, rng, 2);
    // Tear down only once the alert is ACKed so sequence numbers stay monotonic.
    let (_, acked) = tcp.send(c, out, t, Dir::ToServer, &buf);
    let t2 = acked + rng.range(0, MS);
    teardown(&mut tcp, c, out, rng, t2);
}

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Qtype {
    A = 1,
    Mx = 15,
    Txt = 16,
    Aaaa = 28,
}

pub(crate) fn dns_name(out: &mut Vec<u8>, name: &str) {
    for label in name.split('.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
}

pub(crate) fn dns_query(id: u16, name: &str, qtype: Qtype, edns: bool) -> Vec<u8> {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, edns as u8]);
    dns_name(&mut q, name);
    q.extend_from_slice(&(qtype as u16).to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    if edns {
        // OPT RR: root name, type 41, UDP payload 4096.
        q.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
    }
    q
}

/// Answer for `query`; `big` pads with TXT records past the MTU (EDNS0).
pub(crate) fn dns_response(
    rng: &mut Rng,
    query: &[u8],
    qtype: Qtype,
    nxdomain: bool,
    big: bool,
) -> Vec<u8> {
    let edns = query[11] == 1;
    let qend = query.len() - if edns { 11 } else { 0 };
    let mut r = Vec::with_capacity(if big { 4096 } else { 512 });
    r.extend_from_slice(&query[..qend]);
    r[2] = 0x81;
    r[3] = if nxdomain { 0x83 } else { 0x80 };
    let mut answers = 0u16;
    let mut authority = 0u16;
    let ttl = (rng.range(30, 86_400) as u32).to_be_bytes();
    if nxdomain {
        // SOA of the parent zone in the authority section.
        r.extend_from_slice(&[0xc0, 0x0c, 0, 6, 0, 1]);
        r.extend_from_slice(&900u32.to_be_bytes());
        let mut soa = Vec::new();
        dns_name(&mut soa, "ns1.example.net");
        dns_name(&mut soa, "hostmaster.example.net");
        for v in [
            rng.range(2024010100, 2024123199) as u32,
            7200,
            3600,
            1_209_600,
            300,
        ] {
            soa.extend_from_slice(&v.to_be_bytes());
        }
        r.extend_from_slice(&(soa.len() as u16).to_be_bytes());
        r.extend_from_slice(&soa);
        authority = 1;
    } else {
        let n = if big { 1 } else { rng.range(1, 4) as u16 };
        for _ in 0..n {
            r.extend_from_slice(&[0xc0, 0x0c]);
            r.extend_from_slice(&(qtype as u16).to_be_bytes());
            r.extend_from_slice(&[0, 1]);
            r.extend_from_slice(&ttl);
            match qtype {
                Qtype::A => {
                    r.extend_from_slice(&[0, 4]);
                    r.extend_from_slice(&[rng.u8() | 1, rng.u8(), rng.u8(), rng.u8() | 1]);
                }
                Qtype::Aaaa => {
                    r.extend_from_slice(&[0, 16, 0x26, 0x06, 0x47, 0x00]);
                    let mut a = [0u8; 12];
                    rng.fill(&mut a);
                    r.extend_from_slice(&a);
                }
                Qtype::Mx => {
                    let mut mx = (rng.range(1, 5) as u16 * 10).to_be_bytes().to_vec();
                    let host = format!("mx{}.mail", rng.below(10));
                    for l in host.split('.') {
                        mx.push(l.len() as u8);
                        mx.extend_from_slice(l.as_bytes());
                    }
                    mx.extend_from_slice(&[0xc0, 0x0c]);
                    r.extend_from_slice(&(mx.len() as u16).to_be_bytes());
                    r.extend_from_slice(&mx);
                }
                Qtype::Txt => {
                    let s = format!(
                        "v=spf1 include:_spf.example.net ip4:{}.{}.0.0/16 ~all",
                        rng.range(1, 223),
                        rng.u8()
                    );
                    r.extend_from_slice(&((s.len() + 1) as u16).to_be_bytes());
                    r.push(s.len() as u8);
                    r.extend_from_slice(s.as_bytes());
                }
            }
            answers += 1;
        }
        if big {
            // Large TXT set (DKIM keys, verification tokens) beyond 1500 bytes.
            let target = rng.usize(2_200, 4_000);
            while r.len() < target {
                r.extend_from_slice(&[0xc0, 0x0c, 0, 16, 0, 1]);
                r.extend_from_slice(&ttl);
                let mut s = b"v=DKIM1; k=rsa; p=".to_vec();
                for _ in 0..(200 - s.len()) {
                    s.push(
                        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
                            [rng.below(64) as usize],
                    );
                }
                r.extend_from_slice(&((s.len() + 1) as u16).to_be_bytes());
                r.push(s.len() as u8);
                r.extend_from_slice(&s);
                answers += 1;
            }
        }
    }
    r[6..8].copy_from_slice(&answers.to_be_bytes());
    r[8..10].copy_from_slice(&authority.to_be_bytes());
    if edns {
        r[10..12].copy_from_slice(&[0, 1]);
        r.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
    }
    r
}

pub(crate) struct DnsPlan<'a> {
    pub(crate) name: &'a str,
    pub(crate) qtype: Qtype,
    pub(crate) nxdomain: bool,
    pub(crate) big: bool,
}

pub(crate) fn dns_udp(c: &mut Conv, out: &mut Frames, rng: &mut Rng, t0: u64, plan: &DnsPlan) {
    let rtt = rng.range(MS / 2, 60 * MS);
    let mut t = t0;
    // Stub resolvers often ask A and AAAA back to back from one socket.
    let both = !plan.big && !plan.nxdomain && plan.qtype == Qtype::A && rng.chance(0.3);
    let types: &[Qtype] = if both {
        &[Qtype::A, Qtype::Aaaa]
    } else {
        std::slice::from_ref(&plan.qtype)
    };
    let mut seen = Vec::new();
    for &qt in types {
        let q = dns_query(rng.u16(), plan.name, qt, plan.big || rng.chance(0.4));
        if dns_udp_msg(c, out, t, Dir::ToServer, &q) {
            seen.push((t, q.clone()));
        }
        let r = dns_response(rng, &q, qt, plan.nxdomain, plan.big);
        if dns_udp_msg(c, out, t + rtt, Dir::ToClient, &r) {
            seen.push((t + rtt, r));
        }
        t += rng.range(50_000, 2 * MS);
    }
    // The truth lists messages in wire order: the second query may leave
    // before the first answer arrives. Ties keep emission order, as the
    // engine's merge does.
    let trunc = if c.nanos { 1 } else { 1000 };
    seen.sort_by_key(|(ts, _)| ts - ts % trunc);
    for (_, m) in seen {
        push_dns(c, &m);
    }
}

/// Sends one DNS message over UDP; a fault-injected fragment drop loses it.
/// Returns whether it went out (the caller records it in wire order).
pub(crate) fn dns_udp_msg(c: &mut Conv, out: &mut Frames, t: u64, dir: Dir, msg: &[u8]) -> bool {
    let before = c.truth.pkts_toserver + c.truth.pkts_toclient;
    c.udp(out, t, dir, msg);
    c.truth.pkts_toserver + c.truth.pkts_toclient > before
}

/// [`dns_udp_msg`] for one-message-at-a-time exchanges: records it at once.
pub(crate) fn dns_udp_log(c: &mut Conv, out: &mut Frames, t: u64, dir: Dir, msg: &[u8]) {
    if dns_udp_msg(c, out, t, dir, msg) {
        push_dns(c, msg);
    }
}

/// Appends the truth of a DNS message (parsed back from the bytes made).
pub(crate) fn push_dns(c: &mut Conv, msg: &[u8]) {
    let Some(m) = dns_msg_truth(msg) else {
        return;
    };
    match &mut c.truth.app_layer {
        Some(AppTruth::Dns { messages }) => messages.push(m),
        _ => c.truth.app_layer = Some(AppTruth::Dns { messages: vec![m] }),
    }
}

pub(crate) fn rrtype_name(t: u16) -> String {
    match t {
        1 => "A".into(),
        2 => "NS".into(),
        5 => "CNAME".into(),
        6 => "SOA".into(),
        10 => "NULL".into(),
        12 => "PTR".into(),
        15 => "MX".into(),
        16 => "TXT".into(),
        28 => "AAAA".into(),
        41 => "OPT".into(),
        _ => t.to_string(),
    }
}

fn rcode_name(r: u8) -> String {
    match r {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        _ => r.to_string(),
    }
}

/// Reads a (possibly compressed) name at `at`; returns it and the offset
/// after it in the original position.
fn read_name(m: &[u8], mut at: usize) -> Option<(String, usize)> {
    let mut labels: Vec<String> = Vec::new();
    let mut end = None;
    for _ in 0..64 {
        let len = *m.get(at)? as usize;
        if len == 0 {
            end.get_or_insert(at + 1);
            return Some((labels.join("."), end?));
        }
        if len & 0xC0 == 0xC0 {
            end.get_or_insert(at + 2);
            at = ((len & 0x3F) << 8) | *m.get(at + 1)? as usize;
            continue;
        }
        labels.push(String::from_utf8_lossy(m.get(at + 1..at + 1 + len)?).into_owned());
        at += 1 + len;
    }
    None
}

/// Truth of one DNS message the generator made (header, first question,
/// answer types).
pub(crate) fn dns_msg_truth(m: &[u8]) -> Option<DnsMsg> {
    if m.len() < 12 {
        return None;
    }
    let qd = u16::from_be_bytes([m[4], m[5]]);
    let an = u16::from_be_bytes([m[6], m[7]]);
    let (qname, qtype, mut at) = if qd > 0 {
        let (n, at) = read_name(m, 12)?;
        let t = u16::from_be_bytes([*m.get(at)?, *m.get(at + 1)?]);
        (n, t, at + 4)
    } else {
        (String::new(), 0, 12)
    };
    let mut answer_types = Vec::new();
    for _ in 0..an {
        let (_, a) = read_name(m, at)?;
        let t = u16::from_be_bytes([*m.get(a)?, *m.get(a + 1)?]);
        let rdlen = u16::from_be_bytes([*m.get(a + 8)?, *m.get(a + 9)?]) as usize;
        answer_types.push(rrtype_name(t));
        at = a + 10 + rdlen;
    }
    Some(DnsMsg {
        response: m[2] & 0x80 != 0,
        id: u16::from_be_bytes([m[0], m[1]]),
        qname,
        qtype: rrtype_name(qtype),
        rcode: rcode_name(m[3] & 0x0F),
        tc: m[2] & 0x02 != 0,
        answer_types,
    })
}

pub(crate) fn dns_tcp(c: &mut Conv, out: &mut Frames, rng: &mut Rng, t0: u64, plan: &DnsPlan) {
    let mut tcp = Tcp::new(rng, c);
    let t = tcp.handshake(c, out, t0);
    let q = dns_query(rng.u16(), plan.name, plan.qtype, false);
    push_dns(c, &q);
    let mut msg = (q.len() as u16).to_be_bytes().to_vec();
    msg.extend_from_slice(&q);
    let (qt, _) = tcp.send(c, out, t, Dir::ToServer, &msg);
    let r = dns_response(rng, &q, plan.qtype, plan.nxdomain, plan.big);
    push_dns(c, &r);
    let mut msg = (r.len() as u16).to_be_bytes().to_vec();
    msg.extend_from_slice(&r);
    let (_, acked) = tcp.send(
        c,
        out,
        qt + tcp.far + rng.range(0, 5 * MS),
        Dir::ToClient,
        &msg,
    );
    tcp.close(c, out, acked + rng.range(0, MS), Dir::ToServer);
}

pub(crate) fn ntp(c: &mut Conv, out: &mut Frames, rng: &mut Rng, t0: u64) {
    let rtt = rng.range(MS, 80 * MS);
    let mut t = t0;
    for _ in 0..rng.range(1, 4) {
        let mut req = [0u8; 48];
        req[0] = 0x23; // LI 0, version 4, mode 3 (client)
        rng.fill(&mut req[40..48]);
        c.udp(out, t, Dir::ToServer, &req);
        let mut resp = [0u8; 48];
        resp[0] = 0x24; // mode 4 (server)
        resp[1] = rng.range(1, 4) as u8;
        resp[2] = 6;
        resp[3] = 0xE9;
        rng.fill(&mut resp[4..12]);
        resp[12..16].copy_from_slice(b"GPS\0");
        let ntp_secs = ((t / 1_000_000_000) + 2_208_988_800) as u32;
        for off in [16, 32, 40] {
            resp[off..off + 4].copy_from_slice(&ntp_secs.to_be_bytes());
            rng.fill(&mut resp[off + 4..off + 8]);
        }
        resp[24..32].copy_from_slice(&req[40..48]);
        c.udp(out, t + rtt, Dir::ToClient, &resp);
        t += rng.range(500 * MS, 4_000 * MS);
    }
}

pub(crate) fn syslog(c: &mut Conv, out: &mut Frames, rng: &mut Rng, t0: u64, host: &str) {
    let mut t = t0;
    let apps = ["sshd", "kernel", "CRON", "systemd", "nginx", "sudo"];
    for _ in 0..rng.range(1, 8) {
        let app = *rng.pick(&apps);
        let msg = match app {
            "sshd" => format!(
                "Accepted publickey for admin from 10.{}.{}.{} port {} ssh2",
                rng.u8(),
                rng.u8(),
                rng.u8(),
                rng.range(1024, 65535)
            ),
            "sudo" => "admin : TTY=pts/0 ; PWD=/home/admin ; USER=root ; COMMAND=/usr/bin/systemctl restart nginx".into(),
            _ => String::from_utf8_lossy(&strip(rng, 40, 300)).into_owned(),
        };
        let line = format!(
            "<{}>{} {} {}[{}]: {}",
            rng.range(128, 191),
            &http_date(t)[5..25],
            host.split('.').next().unwrap_or("host"),
            app,
            rng.range(100, 40_000),
            msg
        );
        c.udp(out, t, Dir::ToServer, line.as_bytes());
        t += rng.range(MS, 1_500 * MS);
    }
}

/// Plain text of words, for log lines.
pub(crate) fn strip(rng: &mut Rng, lo: usize, hi: usize) -> Vec<u8> {
    let n = rng.usize(lo, hi);
    let mut s = Vec::with_capacity(n + 10);
    while s.len() < n {
        if !s.is_empty() {
            s.push(b' ');
        }
        s.extend_from_slice(rng.pick(WORDS).as_bytes());
    }
    s
}

/// Generic high-port UDP (games, VoIP-ish); `big` sends some 4000-byte
/// datagrams that must be fragmented.
pub(crate) fn udp_stream(
    pools: &Pools,
    c: &mut Conv,
    out: &mut Frames,
    rng: &mut Rng,
    t0: u64,
    big: bool,
) {
    let n = rng.range(2, 24);
    let interval = rng.range(10 * MS, 60 * MS);
    let size = rng.usize(40, 1_200);
    let rtt = rng.range(MS, 70 * MS);
    let mut t = t0;
    for i in 0..n {
        let len = if big && i % 3 == 0 {
            4_000
        } else {
            size + rng.usize(0, 32)
        };
        c.udp(out, t, Dir::ToServer, pools.bin(rng, len));
        if rng.chance(0.8) {
            let len = if big && i % 4 == 1 { 4_000 } else { size };
            c.udp(out, t + rtt, Dir::ToClient, pools.bin(rng, len));
        }
        t += interval + rng.range(0, MS);
    }
}

pub(crate) fn icmp_echo(c: &mut Conv, out: &mut Frames, rng: &mut Rng, t0: u64) {
    let id = rng.u16();
    let windows = rng.chance(0.4);
    let rtt = rng.range(MS / 2, 120 * MS);
    let mut t = t0;
    let lost = rng.chance(0.1);
    let (req_type, rep_type) = if c.is_v6() { (128, 129) } else { (8, 0) };
    for seq in 1..=rng.range(1, 5) as u16 {
        let mut rest = [0u8; 4];
        rest[..2].copy_from_slice(&id.to_be_bytes());
        rest[2..].copy_from_slice(&seq.to_be_bytes());
        let payload: Vec<u8> = if windows {
            b"abcdefghijklmnopqrstuvwabcdefghi".to_vec()
        } else {
            // Linux ping: 8-byte timestamp then 0x10, 0x11, ...
            let mut p = (t / 1000).to_le_bytes().to_vec();
            p.extend((0x10u8..0x38).take(48));
            p
        };
        c.icmp(out, t, Dir::ToServer, req_type, 0, rest, &payload);
        // The last echo of a lossy flow goes unanswered.
        if !(lost && seq > 1) {
            c.icmp(out, t + rtt, Dir::ToClient, rep_type, 0, rest, &payload);
        }
        t += 1_000 * MS + rng.range(0, MS);
    }
}

/// A UDP probe to a closed port (flow `probe`) answered by ICMP port
/// unreachable (separate flow `err`, travelling to the client).
pub(crate) fn unreachable(
    probe: &mut Conv,
    err: &mut Conv,
    out: &mut Frames,
    rng: &mut Rng,
    t0: u64,
) {
    let payload = strip(rng, 10, 80);
    probe.udp(out, t0, Dir::ToServer, &payload);
    let plen = probe.path.prefix_len();
    let orig = out.last().expect("probe frame").1[plen..].to_vec();
    let t = t0 + rng.range(MS, 50 * MS);
    if err.is_v6() {
        // Destination unreachable, code 4 (port unreachable): whole packet.
        err.icmp(out, t, Dir::ToClient, 1, 4, [0; 4], &orig);
    } else {
        // Original IP header + first 8 bytes of its payload.
        let cut = orig.len().min(28);
        err.icmp(out, t, Dir::ToClient, 3, 3, [0; 4], &orig[..cut]);
    }
}
