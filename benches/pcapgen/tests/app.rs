//! Application-layer ground truth, variant flows and TCP impairments: the
//! truth is checked against what is parsed back from the generated frames.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::net::IpAddr;

use common::{compare, Datagram, Decoder};
use sha1::{Digest, Sha1};
use vigil_pcapgen::{
    generate, generate_frames, AppTruth, DnsMsg, FlowTruth, GenConfig, GenSummary, HttpTx, Impair,
    Scenario, ScenarioKind, Variants,
};

fn sha1_hex(b: &[u8]) -> String {
    Sha1::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

/// SHA-1 of default-config pcaps measured with the generator as of commit
/// 8f4ed27, before application truth, variants and impairments existed
/// (seed 42 at 1.5 MiB is `samples/sample.pcap`). Compare pcap bytes and
/// the truth minus its new keys.
#[test]
fn default_output_unchanged() {
    let cases = [
        (
            42u64,
            1_572_864u64,
            "8112908174f0b5c1244b69a1586fb271395ef13a",
        ),
        (1, 1 << 20, "07c14babeafc0cb40c45082b9620a03bc259bb32"),
        (11, 4 << 20, "fcec4c413158c8c2acc662d4c41c095de38f2d1d"),
    ];
    for (seed, size, want) in cases {
        let mut buf = Vec::new();
        let s = generate(&GenConfig::new(seed, size), &mut buf).unwrap();
        assert_eq!(sha1_hex(&buf), want, "seed {seed}");
        // New truth keys are absent unless set: default flows only gain app_layer.
        let j = serde_json::to_value(&s).unwrap();
        for f in j["flows"].as_array().unwrap() {
            assert!(f.get("variant").is_none() && f.get("impair").is_none());
        }
    }
}

struct Flow<'a> {
    truth: &'a FlowTruth,
    /// TCP: (seq, payload) per direction in capture order; SYN's seq + 1.
    segs: [Vec<(u32, Vec<u8>)>; 2],
    isn: [Option<u32>; 2],
    fin: [Option<u32>; 2],
    max_ack: [Option<u32>; 2],
    /// UDP payloads in capture order with their direction.
    udp: Vec<(usize, Vec<u8>)>,
}

fn decode(cfg: &GenConfig) -> (Vec<Datagram>, GenSummary) {
    let (frames, s) = generate_frames(cfg);
    let mut d = Decoder::default();
    for (ts, f) in &frames {
        d.frame(*ts, f)
            .unwrap_or_else(|e| panic!("frame at {ts}: {e}"));
    }
    let errs = compare(&s.flows, &d.out);
    assert!(
        errs.is_empty(),
        "{} mismatches: {:?}",
        errs.len(),
        &errs[..errs.len().min(3)]
    );
    (d.out, s)
}

fn flows<'a>(s: &'a GenSummary, dgs: &[Datagram]) -> Vec<Flow<'a>> {
    let mut idx: HashMap<(u8, IpAddr, u16, IpAddr, u16), usize> = HashMap::new();
    let mut out: Vec<Flow> = Vec::new();
    for t in s.flows.iter().filter(|t| t.proto == 6 || t.proto == 17) {
        idx.insert(
            (t.proto, t.client, t.client_port, t.server, t.server_port),
            out.len(),
        );
        out.push(Flow {
            truth: t,
            segs: [Vec::new(), Vec::new()],
            isn: [None; 2],
            fin: [None; 2],
            max_ack: [None; 2],
            udp: Vec::new(),
        });
    }
    for d in dgs.iter().filter(|d| d.proto == 6 || d.proto == 17) {
        let (i, dir) = if let Some(&i) = idx.get(&(d.proto, d.src, d.sport, d.dst, d.dport)) {
            (i, 0)
        } else if let Some(&i) = idx.get(&(d.proto, d.dst, d.dport, d.src, d.sport)) {
            (i, 1)
        } else {
            continue;
        };
        let f = &mut out[i];
        if d.proto == 17 {
            f.udp.push((dir, d.l4[8..].to_vec()));
            continue;
        }
        let l4 = &d.l4;
        let seq = u32::from_be_bytes([l4[4], l4[5], l4[6], l4[7]]);
        let ack = u32::from_be_bytes([l4[8], l4[9], l4[10], l4[11]]);
        let flags = l4[13];
        let payload = &l4[(l4[12] >> 4) as usize * 4..];
        if flags & 0x02 != 0 {
            f.isn[dir] = Some(seq.wrapping_add(1));
        }
        if flags & 0x01 != 0 {
            f.fin[dir] = Some(seq.wrapping_add(payload.len() as u32));
        }
        if flags & 0x10 != 0 {
            // Cumulative ACKs from the other side mark how far `1 - dir` really got.
            let o = 1 - dir;
            f.max_ack[o] = Some(f.max_ack[o].map_or(ack, |m: u32| {
                if ack.wrapping_sub(m) as i32 > 0 {
                    ack
                } else {
                    m
                }
            }));
        }
        if !payload.is_empty() {
            f.segs[dir].push((seq, payload.to_vec()));
        }
    }
    out
}

/// First copy wins (the truth describes the first copy). Returns the
/// stream up to its end and the holes in it.
fn assemble(f: &Flow, dir: usize) -> (Vec<u8>, Vec<(u64, u64)>) {
    let Some(isn) = f.isn[dir] else {
        return (Vec::new(), Vec::new());
    };
    let mut bytes: Vec<Option<u8>> = Vec::new();
    for (seq, p) in &f.segs[dir] {
        let off = seq.wrapping_sub(isn) as usize;
        if bytes.len() < off + p.len() {
            bytes.resize(off + p.len(), None);
        }
        for (k, &b) in p.iter().enumerate() {
            bytes[off + k].get_or_insert(b);
        }
    }
    let end = match (f.fin[dir], f.max_ack[dir]) {
        (Some(fin), _) => fin.wrapping_sub(isn) as usize,
        (None, Some(a)) => (a.wrapping_sub(isn) as usize).min(1 << 24),
        _ => bytes.len(),
    }
    .max(bytes.len());
    bytes.resize(end, None);
    let mut holes = Vec::new();
    let mut start = None;
    for (i, b) in bytes.iter().enumerate() {
        match (b, start) {
            (None, None) => start = Some(i),
            (Some(_), Some(s)) => {
                holes.push((s as u64, (i - s) as u64));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        holes.push((s as u64, (bytes.len() - s) as u64));
    }
    (bytes.iter().map(|b| b.unwrap_or(0)).collect(), holes)
}

fn header<'a>(h: &'a [httparse::Header], name: &str) -> Option<&'a str> {
    h.iter()
        .find(|x| x.name.eq_ignore_ascii_case(name))
        .and_then(|x| std::str::from_utf8(x.value).ok())
}

/// Parses HTTP/1.1 transactions back out of the two byte streams.
fn parse_http(cs: &[u8], ss: &[u8]) -> Result<Vec<HttpTx>, String> {
    let mut txs = Vec::new();
    let mut pos = 0;
    while pos < cs.len() {
        let mut h = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut h);
        let n = match req.parse(&cs[pos..]) {
            Ok(httparse::Status::Complete(n)) => n,
            other => return Err(format!("request at {pos}: {other:?}")),
        };
        let clen: usize = header(req.headers, "content-length")
            .map_or(Ok(0), str::parse)
            .map_err(|e| format!("content-length: {e}"))?;
        txs.push(HttpTx {
            method: req.method.unwrap_or_default().into(),
            host: header(req.headers, "host").unwrap_or_default().into(),
            uri: req.path.unwrap_or_default().into(),
            user_agent: header(req.headers, "user-agent").unwrap_or_default().into(),
            request_body_len: clen as u64,
            status: 0,
            content_type: None,
            response_body_len: 0,
            response_entity_len: 0,
            chunked: false,
            content_encoding: None,
            close_delimited: false,
            expect_continue: header(req.headers, "expect") == Some("100-continue"),
        });
        pos += n + clen;
    }
    let mut pos = 0;
    for tx in &mut txs {
        let (n, code, ctype, clen, chunked, enc) = loop {
            let mut h = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut h);
            let n = match resp.parse(&ss[pos..]) {
                Ok(httparse::Status::Complete(n)) => n,
                other => return Err(format!("response at {pos}: {other:?}")),
            };
            let code = resp.code.unwrap_or(0);
            if code == 100 {
                pos += n;
                continue;
            }
            break (
                n,
                code,
                header(resp.headers, "content-type").map(String::from),
                header(resp.headers, "content-length").and_then(|v| v.parse::<usize>().ok()),
                header(resp.headers, "transfer-encoding") == Some("chunked"),
                header(resp.headers, "content-encoding").map(String::from),
            );
        };
        pos += n;
        tx.status = code;
        tx.content_type = ctype;
        tx.content_encoding = enc.clone();
        let body: Vec<u8> = if tx.method == "HEAD" {
            Vec::new()
        } else if chunked {
            tx.chunked = true;
            let mut body = Vec::new();
            loop {
                let eol = ss[pos..]
                    .windows(2)
                    .position(|w| w == b"\r\n")
                    .ok_or("chunk size line")?;
                let line = std::str::from_utf8(&ss[pos..pos + eol]).map_err(|e| e.to_string())?;
                let size = usize::from_str_radix(line.split(';').next().unwrap_or(""), 16)
                    .map_err(|e| format!("chunk size {line:?}: {e}"))?;
                pos += eol + 2;
                if size == 0 {
                    pos += 2;
                    break;
                }
                body.extend_from_slice(&ss[pos..pos + size]);
                pos += size + 2;
            }
            body
        } else if let Some(l) = clen {
            pos += l;
            ss[pos - l..pos].to_vec()
        } else {
            tx.close_delimited = true;
            let b = ss[pos..].to_vec();
            pos = ss.len();
            b
        };
        tx.response_body_len = body.len() as u64;
        tx.response_entity_len = if enc.as_deref() == Some("gzip") {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut out)
                .map_err(|e| format!("gunzip: {e}"))?;
            out.len() as u64
        } else {
            body.len() as u64
        };
    }
    if pos != ss.len() {
        return Err(format!("{} trailing response bytes", ss.len() - pos));
    }
    Ok(txs)
}

fn read_name(m: &[u8]) -> String {
    let mut at = 12;
    let mut labels = Vec::new();
    while at < m.len() && m[at] != 0 {
        let l = m[at] as usize;
        labels.push(String::from_utf8_lossy(&m[at + 1..at + 1 + l]).into_owned());
        at += 1 + l;
    }
    labels.join(".")
}

fn check_dns_msg(m: &[u8], t: &DnsMsg) -> Result<(), String> {
    let rcode = match m[3] & 15 {
        0 => "NOERROR",
        3 => "NXDOMAIN",
        _ => "other",
    };
    let got = (
        u16::from_be_bytes([m[0], m[1]]),
        m[2] & 0x80 != 0,
        m[2] & 0x02 != 0,
        rcode,
        read_name(m),
        u16::from_be_bytes([m[6], m[7]]) as usize,
    );
    let want = (
        t.id,
        t.response,
        t.tc,
        t.rcode.as_str(),
        t.qname.clone(),
        t.answer_types.len(),
    );
    if got != want {
        return Err(format!("dns message {got:?} != truth {want:?}"));
    }
    Ok(())
}

/// Walks TLS records and returns (handshake messages, record types).
fn tls_handshakes(s: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 5 <= s.len() {
        let len = u16::from_be_bytes([s[at + 3], s[at + 4]]) as usize;
        let body = &s[at + 5..(at + 5 + len).min(s.len())];
        // Only clear-text handshake records parse; encrypted Finished is garbage.
        if s[at] == 22 && body.len() >= 4 && matches!(body[0], 1 | 2 | 11 | 12 | 14 | 16) {
            let mut p = 0;
            while p + 4 <= body.len() {
                let l = u32::from_be_bytes([0, body[p + 1], body[p + 2], body[p + 3]]) as usize;
                if p + 4 + l > body.len() {
                    break;
                }
                out.push((body[p], body[p + 4..p + 4 + l].to_vec()));
                p += 4 + l;
            }
        }
        at += 5 + len;
    }
    out
}

/// Extensions of a Client/ServerHello body.
fn hello_exts(h: &[u8], client: bool) -> Vec<(u16, Vec<u8>)> {
    let mut p = 2 + 32;
    p += 1 + h[p] as usize;
    if client {
        p += 2 + u16::from_be_bytes([h[p], h[p + 1]]) as usize;
        p += 1 + h[p] as usize;
    } else {
        p += 3;
    }
    let end = p + 2 + u16::from_be_bytes([h[p], h[p + 1]]) as usize;
    p += 2;
    let mut out = Vec::new();
    while p + 4 <= end {
        let t = u16::from_be_bytes([h[p], h[p + 1]]);
        let l = u16::from_be_bytes([h[p + 2], h[p + 3]]) as usize;
        out.push((t, h[p + 4..p + 4 + l].to_vec()));
        p += 4 + l;
    }
    out
}

fn check_ssh_stream(s: &[u8], banner: &str) -> Result<(), String> {
    let line = format!("{banner}\r\n");
    if !s.starts_with(line.as_bytes()) {
        return Err(format!("stream does not start with {banner:?}"));
    }
    let p = &s[line.len()..];
    let plen = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as usize;
    let pad = p[4] as usize;
    if (plen + 4) % 8 != 0 || pad < 4 || p[5] != 20 {
        return Err(format!(
            "bad KEXINIT packet: len {plen} pad {pad} type {}",
            p[5]
        ));
    }
    let mut at = 6 + 16;
    for i in 0..10 {
        let l = u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]]) as usize;
        let list = std::str::from_utf8(&p[at + 4..at + 4 + l]).map_err(|e| e.to_string())?;
        if i < 8 && (list.is_empty() || list.split(',').any(|n| n.is_empty() || !n.is_ascii())) {
            return Err(format!("name-list {i}: {list:?}"));
        }
        at += 4 + l;
    }
    if at + 5 + pad != 4 + plen {
        return Err("KEXINIT length".into());
    }
    Ok(())
}

#[derive(Default, Debug)]
struct Checked {
    by_proto: BTreeMap<&'static str, usize>,
    errors: Vec<String>,
}

/// Checks each flow's `app_layer` against the payload parsed back.
/// Flows with lost segments are skipped (their records may have gaps).
fn check_apps(fl: &[Flow]) -> Checked {
    let mut c = Checked::default();
    for f in fl {
        let t = f.truth;
        if t.impair
            .as_ref()
            .is_some_and(|i| !i.lost.is_empty() || !i.overlaps.is_empty())
        {
            continue;
        }
        let Some(app) = &t.app_layer else { continue };
        let who = format!("{} {}:{} {:?}", t.app, t.server, t.server_port, t.variant);
        let (cs, ch) = assemble(f, 0);
        let (ss, sh) = assemble(f, 1);
        if t.proto == 6 && (!ch.is_empty() || !sh.is_empty()) {
            c.errors
                .push(format!("{who}: holes without loss {ch:?} {sh:?}"));
            continue;
        }
        let r: Result<(), String> = match app {
            AppTruth::Http { transactions } => parse_http(&cs, &ss).and_then(|got| {
                if &got == transactions {
                    Ok(())
                } else {
                    Err(format!("parsed {got:#?}\ntruth {transactions:#?}"))
                }
            }),
            AppTruth::Dns { messages } if t.proto == 17 => {
                if f.udp.len() != messages.len() {
                    Err(format!(
                        "{} datagrams, {} truth messages",
                        f.udp.len(),
                        messages.len()
                    ))
                } else {
                    f.udp
                        .iter()
                        .zip(messages)
                        .try_for_each(|((_, m), t)| check_dns_msg(m, t))
                }
            }
            AppTruth::Dns { messages } => {
                let split = |s: &[u8]| {
                    let mut v = Vec::new();
                    let mut at = 0;
                    while at + 2 <= s.len() {
                        let l = u16::from_be_bytes([s[at], s[at + 1]]) as usize;
                        v.push(s[at + 2..at + 2 + l].to_vec());
                        at += 2 + l;
                    }
                    v
                };
                let q: Vec<&DnsMsg> = messages.iter().filter(|m| !m.response).collect();
                let a: Vec<&DnsMsg> = messages.iter().filter(|m| m.response).collect();
                let (qs, rs) = (split(&cs), split(&ss));
                if qs.len() != q.len() || rs.len() != a.len() {
                    Err("DNS/TCP message count".into())
                } else {
                    qs.iter()
                        .zip(q)
                        .chain(rs.iter().zip(a))
                        .try_for_each(|(m, t)| check_dns_msg(m, t))
                }
            }
            AppTruth::Tls(tls) => (|| {
                let ch = tls_handshakes(&cs);
                let sh = tls_handshakes(&ss);
                let hello = ch.iter().find(|h| h.0 == 1).ok_or("no ClientHello")?;
                let sni = hello_exts(&hello.1, true)
                    .into_iter()
                    .find(|e| e.0 == 0)
                    .map(|e| String::from_utf8_lossy(&e.1[5..]).into_owned());
                if sni != tls.sni {
                    return Err(format!("SNI {sni:?} != {:?}", tls.sni));
                }
                let shello = sh.iter().find(|h| h.0 == 2).ok_or("no ServerHello")?;
                let v13 = hello_exts(&shello.1, false)
                    .iter()
                    .any(|e| e.0 == 0x2b && e.1 == [3, 4]);
                let version = if v13 { "TLS 1.3" } else { "TLS 1.2" };
                if version != tls.version {
                    return Err(format!("version {version} != {}", tls.version));
                }
                let cert = sh.iter().find(|h| h.0 == 11);
                match (cert, &tls.cert) {
                    (None, None) => Ok(()),
                    (Some(m), Some(ct)) => {
                        let der = &m.1[6..];
                        let fp: Vec<String> = Sha1::digest(der)
                            .iter()
                            .map(|x| format!("{x:02x}"))
                            .collect();
                        if fp.join(":") != ct.fingerprint {
                            return Err("certificate fingerprint".into());
                        }
                        // Serial and subject are in the DER as written.
                        let serial: Vec<u8> = ct
                            .serial
                            .split(':')
                            .map(|h| u8::from_str_radix(h, 16).unwrap())
                            .collect();
                        if !der.windows(serial.len()).any(|w| w == serial)
                            || !der.windows(13).any(|w| w == b"Vigil Test CA")
                        {
                            return Err("serial/subject not in certificate".into());
                        }
                        Ok(())
                    }
                    (a, b) => Err(format!(
                        "cert visible {} vs truth {}",
                        a.is_some(),
                        b.is_some()
                    )),
                }
            })(),
            AppTruth::Ssh(ssh) => check_ssh_stream(&cs, &ssh.client_banner)
                .and_then(|_| check_ssh_stream(&ss, &ssh.server_banner)),
            AppTruth::Unknown => {
                if cs.first().is_some_and(|b| *b >= 0x80) && ss.first().is_some_and(|b| *b >= 0x80)
                {
                    Ok(())
                } else {
                    Err("binary flow starts with a low byte".into())
                }
            }
        };
        match r {
            Ok(()) => *c.by_proto.entry(app.proto()).or_default() += 1,
            Err(e) => c.errors.push(format!("{who}: {e}")),
        }
    }
    c
}

fn variants_cfg(seed: u64, size: u64) -> GenConfig {
    GenConfig {
        variants: Variants::standard(),
        ..GenConfig::new(seed, size)
    }
}

#[test]
fn default_flows_app_truth_matches_payloads() {
    let (dgs, s) = decode(&GenConfig::new(7, 2 << 20));
    let fl = flows(&s, &dgs);
    let c = check_apps(&fl);
    assert!(
        c.errors.is_empty(),
        "{:#?}",
        &c.errors[..c.errors.len().min(3)]
    );
    for p in ["http", "tls", "dns"] {
        assert!(
            c.by_proto.get(p).copied().unwrap_or(0) > 5,
            "{:?}",
            c.by_proto
        );
    }
    // Only application flows carry app truth; SSH and binary need variants.
    assert!(s
        .flows
        .iter()
        .all(|f| f.variant.is_none() && f.impair.is_none()));
    assert!(!s
        .flows
        .iter()
        .any(|f| matches!(f.app_layer, Some(AppTruth::Ssh(_)))));
}

/// Scenario flows (beacons, uploads, DNS tunnels, protocols on odd ports,
/// exfil baselines) carry application truth that their payloads bear out.
#[test]
fn scenario_flows_app_truth_matches_payloads() {
    let cfg = GenConfig {
        scenarios: ScenarioKind::ALL
            .iter()
            .map(|&kind| Scenario { kind, count: 4 })
            .collect(),
        ..GenConfig::new(12, 2 << 20)
    };
    let (dgs, s) = decode(&cfg);
    let actors: Vec<IpAddr> = s.scenarios.iter().map(|t| t.actor).collect();
    let scen = GenSummary {
        flows: s
            .flows
            .iter()
            .filter(|f| actors.contains(&f.client))
            .cloned()
            .collect(),
        ..s.clone()
    };
    let fl = flows(&scen, &dgs);
    let c = check_apps(&fl);
    assert!(
        c.errors.is_empty(),
        "{:#?}",
        &c.errors[..c.errors.len().min(3)]
    );
    for p in ["http", "tls", "dns", "ssh", "unknown"] {
        assert!(
            c.by_proto.get(p).copied().unwrap_or(0) > 0,
            "{p}: {:?}",
            c.by_proto
        );
    }
}

#[test]
fn variants_present_and_truth_matches_payloads() {
    let (dgs, s) = decode(&variants_cfg(3, 6 << 20));
    let fl = flows(&s, &dgs);
    let c = check_apps(&fl);
    assert!(
        c.errors.is_empty(),
        "{:#?}",
        &c.errors[..c.errors.len().min(3)]
    );
    for p in ["http", "tls", "dns", "ssh", "unknown"] {
        assert!(
            c.by_proto.get(p).copied().unwrap_or(0) > 0,
            "{p}: {:?}",
            c.by_proto
        );
    }
    let has = |f: &dyn Fn(&FlowTruth) -> bool| s.flows.iter().any(f);
    for v in [
        "chunked",
        "gzip",
        "pipelined",
        "expect-100",
        "head",
        "close",
        "nxdomain",
        "tc",
        "tcp-2q",
        "cname",
        "txt",
        "mx",
        "tls12",
        "odd-port",
    ] {
        assert!(has(&|f| f.variant == Some(v)), "no {v} flow");
    }
    for (port, proto) in [
        (8081, "http"),
        (8443, "tls"),
        (5353, "dns"),
        (2222, "ssh"),
        (22, "ssh"),
    ] {
        assert!(
            has(&|f| f.server_port == port
                && f.app_layer.as_ref().map(AppTruth::proto) == Some(proto)),
            "no {proto} on {port}"
        );
    }
    for port in [80, 443] {
        assert!(has(&|f| f.server_port == port
            && f.app == "binary"
            && f.app_layer == Some(AppTruth::Unknown)));
    }
    let txs = || {
        s.flows.iter().flat_map(|f| match &f.app_layer {
            Some(AppTruth::Http { transactions }) => transactions.clone(),
            _ => Vec::new(),
        })
    };
    assert!(txs().any(|t| t.chunked && t.content_encoding.is_some()));
    assert!(txs().any(|t| t.method == "HEAD" && t.response_body_len == 0));
    assert!(txs().any(|t| t.close_delimited));
    assert!(txs().any(|t| t.expect_continue && t.status == 201));
    assert!(txs().any(|t| t.response_entity_len > t.response_body_len));
    let msgs = || {
        s.flows.iter().flat_map(|f| match &f.app_layer {
            Some(AppTruth::Dns { messages }) => messages.clone(),
            _ => Vec::new(),
        })
    };
    assert!(msgs().any(|m| m.tc && m.response));
    assert!(msgs().any(|m| m.rcode == "NXDOMAIN"));
    assert!(msgs().any(
        |m| m.answer_types.first().map(String::as_str) == Some("CNAME")
            && m.answer_types.get(1).map(String::as_str) == Some("A")
    ));
    assert!(msgs().any(|m| m.answer_types.iter().any(|t| t == "MX")));
    let tls = s.flows.iter().filter_map(|f| match &f.app_layer {
        Some(AppTruth::Tls(t)) => Some(t),
        _ => None,
    });
    assert!(tls
        .clone()
        .any(|t| t.cert_visible() && t.version == "TLS 1.2"));
    assert!(tls
        .clone()
        .any(|t| !t.cert_visible() && t.version == "TLS 1.3"));
    assert!(tls.clone().any(|t| t.sni.is_none()));
}

#[test]
fn deterministic_with_variants_and_impairments() {
    let cfg = GenConfig {
        impair: Impair::parse("reorder=0.05,dup=0.02,loss=0.01,overlap=0.05").unwrap(),
        ..variants_cfg(11, 2 << 20)
    };
    let (a, sa) = generate_frames(&cfg);
    let (b, sb) = generate_frames(&cfg);
    assert!(a == b && sa == sb);
    let (c, _) = generate_frames(&GenConfig { seed: 12, ..cfg });
    assert!(a != c);
    // The truth JSON round-trips through serde_json and names the protocol.
    let j = serde_json::to_value(&sa).unwrap();
    assert!(j["flows"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["app_layer"]["proto"] == "ssh"));
    assert!(j["flows"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["impair"].is_object()));
}

#[test]
fn reorder_and_dup_keep_app_records() {
    let base = variants_cfg(5, 3 << 20);
    let imp = GenConfig {
        impair: Impair {
            reorder: 0.2,
            dup: 0.1,
            ..Impair::default()
        },
        ..base.clone()
    };
    let (dgs0, s0) = decode(&base);
    let (dgs1, s1) = decode(&imp);
    // Same flows, same application truth, same reassembled streams. Extra
    // copies fill the size budget sooner, so the impaired run holds a prefix.
    assert!(s1.flows.len() <= s0.flows.len() && s1.flows.len() > 100);
    for (a, b) in s0.flows.iter().zip(&s1.flows) {
        assert_eq!(a.app_layer, b.app_layer);
    }
    let (f0, f1) = (flows(&s0, &dgs0), flows(&s1, &dgs1));
    for (a, b) in f0.iter().zip(&f1) {
        for d in 0..2 {
            assert!(assemble(a, d) == assemble(b, d), "{:?}", b.truth.impair);
        }
    }
    let c = check_apps(&f1);
    assert!(
        c.errors.is_empty(),
        "{:#?}",
        &c.errors[..c.errors.len().min(3)]
    );
    let reordered: u32 = s1
        .flows
        .iter()
        .filter_map(|f| f.impair.as_ref())
        .map(|i| i.reordered)
        .sum();
    assert!(reordered > 20);
    // On the wire: segments really arrive below the highest sequence seen.
    let late: usize = f1
        .iter()
        .map(|f| {
            (0..2)
                .map(|d| {
                    let mut hi: Option<u32> = None;
                    let mut n = 0;
                    for (seq, p) in &f.segs[d] {
                        let end = seq.wrapping_add(p.len() as u32);
                        match hi {
                            Some(h) if end.wrapping_sub(h) as i32 <= 0 => n += 1,
                            _ => hi = Some(end),
                        }
                    }
                    n
                })
                .sum::<usize>()
        })
        .sum();
    let dups: u32 = s1
        .flows
        .iter()
        .filter_map(|f| f.impair.as_ref())
        .map(|i| i.duplicated)
        .sum();
    assert_eq!(late as u32, reordered + dups);
}

#[test]
fn impairments_at_chosen_rates_with_truthful_gaps_and_overlaps() {
    let cfg = GenConfig {
        impair: Impair::parse("reorder=0.1,dup=0.05,loss=0.02,overlap=0.3").unwrap(),
        ..variants_cfg(9, 4 << 20)
    };
    let (dgs, s) = decode(&cfg);
    let imp: Vec<_> = s.flows.iter().filter_map(|f| f.impair.as_ref()).collect();
    let tcp = s.flows.iter().filter(|f| f.proto == 6).count();
    assert_eq!(imp.len(), tcp, "every TCP flow has impairment truth");
    let segs: u32 = imp.iter().map(|i| i.data_segments).sum();
    let rate = |n: usize| n as f64 / segs as f64;
    let reordered = rate(imp.iter().map(|i| i.reordered as usize).sum());
    let dup = rate(imp.iter().map(|i| i.duplicated as usize).sum());
    let lost = rate(imp.iter().map(|i| i.lost.len()).sum());
    let ov = imp.iter().filter(|i| !i.overlaps.is_empty()).count() as f64 / tcp as f64;
    // Reordering needs a successor in the same flight, so it runs below its nominal rate.
    assert!((0.03..0.12).contains(&reordered), "reorder {reordered}");
    assert!((0.035..0.065).contains(&dup), "dup {dup}");
    assert!((0.01..0.03).contains(&lost), "loss {lost}");
    assert!((0.2..0.4).contains(&ov), "overlap flows {ov}");
    for f in flows(&s, &dgs).iter().filter(|f| f.truth.proto == 6) {
        let i = f.truth.impair.as_ref().unwrap();
        for (d, name) in [(0, "toserver"), (1, "toclient")] {
            let (stream, holes) = assemble(f, d);
            // Holes are exactly the lost segments (adjacent ones merge).
            let mut want: Vec<(u64, u64)> = Vec::new();
            let mut lost: Vec<_> = i.lost.iter().filter(|g| g.dir == name).collect();
            lost.sort_by_key(|g| g.offset);
            for g in lost {
                match want.last_mut() {
                    Some(w) if w.0 + w.1 == g.offset => w.1 += u64::from(g.len),
                    _ => want.push((g.offset, u64::from(g.len))),
                }
            }
            assert_eq!(holes, want, "{}", f.truth.app);
            for o in i.overlaps.iter().filter(|o| o.dir == name) {
                let at = o.offset as usize;
                let n = o.first_hex.len() / 2;
                let hex: String = stream[at..at + n]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                assert_eq!(hex, o.first_hex, "first copy wins in the truth");
                let isn = f.isn[d].unwrap();
                let second = f.segs[d].iter().any(|(seq, p)| {
                    let off = seq.wrapping_sub(isn) as usize;
                    off <= at && off + p.len() >= at + n && {
                        let h: String = p[at - off..at - off + n]
                            .iter()
                            .map(|b| format!("{b:02x}"))
                            .collect();
                        h == o.second_hex
                    }
                });
                assert!(second, "retransmission with the other bytes on the wire");
            }
        }
    }
    // Flows without loss or overlap still match their application truth.
    let c = check_apps(&flows(&s, &dgs));
    assert!(
        c.errors.is_empty(),
        "{:#?}",
        &c.errors[..c.errors.len().min(3)]
    );
}

#[test]
fn certificate_constants_match_der() {
    let (dgs, s) = decode(&GenConfig {
        variants: Variants {
            tls12: 1,
            ..Variants::default()
        },
        mix: vigil_pcapgen::Mix {
            http: 0,
            tls: 0,
            dns: 0,
            other_udp: 0,
            icmp: 0,
        },
        ..GenConfig::new(2, 256 << 10)
    });
    let c = check_apps(&flows(&s, &dgs));
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    assert_eq!(c.by_proto.get("tls"), Some(&s.flows.len()));
    let t = match &s.flows[0].app_layer {
        Some(AppTruth::Tls(t)) => t.clone(),
        other => panic!("{other:?}"),
    };
    let cert = t.cert.unwrap();
    assert_eq!(
        cert.subject,
        "C=US, O=Vigil Test CA, CN=secure.vigil-test.example"
    );
    assert_eq!(cert.issuer, cert.subject);
    assert_eq!(cert.serial, "5A:17:C0:FF:EE:01");
}
