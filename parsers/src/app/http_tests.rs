use super::*;
use crate::app::AppEvent;
use crate::testutil::{pcap_payloads, Rng};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;

const TS: Direction = Direction::ToServer;
const TC: Direction = Direction::ToClient;

/// Feeds every TCP flow of a corpus capture to its own parser (sequence numbers give gaps and
/// drop retransmissions) and collects records and events in order.
fn run_pcap(rel: &str, cfg: HttpConfig) -> (Vec<HttpTransaction>, Vec<AppEvent>) {
    struct Flow {
        parser: HttpParser,
        client: SocketAddr,
        next: [Option<u32>; 2],
    }
    let mut flows: HashMap<(SocketAddr, SocketAddr), Flow> = HashMap::new();
    let mut order = Vec::new();
    let mut out = AppOutput::default();
    let mut txs = Vec::new();
    let mut events = Vec::new();
    for p in pcap_payloads(rel) {
        if p.proto != 6 {
            continue;
        }
        let key = if p.src < p.dst {
            (p.src, p.dst)
        } else {
            (p.dst, p.src)
        };
        let flow = flows.entry(key).or_insert_with(|| {
            order.push(key);
            let client = if p.tcp_flags & crate::TCP_SYN != 0 && p.tcp_flags & crate::TCP_ACK == 0
                || !p.payload.starts_with(b"HTTP/")
            {
                p.src
            } else {
                p.dst
            };
            Flow {
                parser: HttpParser::new(cfg.clone()),
                client,
                next: [None, None],
            }
        });
        let (dir, i) = if p.src == flow.client {
            (TS, 0)
        } else {
            (TC, 1)
        };
        if p.tcp_flags & crate::TCP_SYN != 0 {
            flow.next[i] = Some(p.seq.wrapping_add(1));
            continue;
        }
        let mut payload = p.payload.as_slice();
        let seq = p.seq;
        let next = *flow.next[i].get_or_insert(seq);
        let diff = seq.wrapping_sub(next) as i32;
        if diff > 0 {
            flow.parser.gap(dir, diff as u64, &mut out);
        } else if diff < 0 {
            let skip = diff.unsigned_abs() as usize;
            payload = payload.get(skip..).unwrap_or_default();
        }
        if !payload.is_empty() {
            flow.parser.parse(dir, payload, p.ts_ns, &mut out);
            let end = seq.wrapping_add(p.payload.len() as u32);
            if end.wrapping_sub(next) as i32 > 0 {
                flow.next[i] = Some(end);
            }
        }
        if p.tcp_flags & (crate::TCP_FIN | crate::TCP_RST) != 0 {
            flow.parser.end_of_stream(dir, p.ts_ns, &mut out);
        }
        drain(&mut out, &mut txs, &mut events);
    }
    for key in order {
        if let Some(f) = flows.get_mut(&key) {
            f.parser.finish(0, &mut out);
            drain(&mut out, &mut txs, &mut events);
        }
    }
    (txs, events)
}

fn drain(out: &mut AppOutput, txs: &mut Vec<HttpTransaction>, events: &mut Vec<AppEvent>) {
    for r in out.records.drain(..) {
        match r {
            AppRecord::Http(tx) => txs.push(std::sync::Arc::unwrap_or_clone(tx)),
            other => panic!("unexpected record {other:?}"),
        }
    }
    events.append(&mut out.events);
}

fn eve(tx: &HttpTransaction) -> Value {
    serde_json::to_value(tx).unwrap()
}

fn names(events: &[AppEvent]) -> Vec<&'static str> {
    events.iter().map(|e| e.event).collect()
}

/// Runs one connection given as (direction, bytes) pieces, then end of both streams and finish.
fn run(cfg: HttpConfig, pieces: &[(Direction, &[u8])]) -> (Vec<HttpTransaction>, Vec<AppEvent>) {
    let mut p = HttpParser::new(cfg);
    let mut out = AppOutput::default();
    let (mut txs, mut evs) = (Vec::new(), Vec::new());
    for (d, data) in pieces {
        p.parse(*d, data, 0, &mut out);
        drain(&mut out, &mut txs, &mut evs);
    }
    p.finish(0, &mut out);
    drain(&mut out, &mut txs, &mut evs);
    (txs, evs)
}

/// Like `run`, but every piece is cut according to `cut` (piece length -> sub-piece lengths).
fn run_split(
    pieces: &[(Direction, &[u8])],
    mut cut: impl FnMut(usize) -> usize,
) -> (Vec<HttpTransaction>, Vec<AppEvent>) {
    let mut p = HttpParser::new(HttpConfig::default());
    let mut out = AppOutput::default();
    let (mut txs, mut evs) = (Vec::new(), Vec::new());
    for (d, data) in pieces {
        let mut rest: &[u8] = data;
        while !rest.is_empty() {
            let n = cut(rest.len()).clamp(1, rest.len());
            let (a, b) = rest.split_at(n);
            p.parse(*d, a, 0, &mut out);
            rest = b;
        }
        drain(&mut out, &mut txs, &mut evs);
    }
    p.finish(0, &mut out);
    drain(&mut out, &mut txs, &mut evs);
    (txs, evs)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn raw_deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Probe.

#[test]
fn probe_requests_and_responses() {
    assert_eq!(probe(TS, b"GET / HTTP/1.1\r\n"), Probe::Match);
    assert_eq!(probe(TS, b"PROPFIND /x HTTP/1.1"), Probe::Match);
    assert_eq!(probe(TS, b"M-SEARCH * HTTP/1.1"), Probe::Match);
    assert_eq!(probe(TS, b"get / HTTP/1.0"), Probe::Match);
    assert_eq!(probe(TS, b"GE"), Probe::NeedMore);
    assert_eq!(probe(TS, b"GET"), Probe::NeedMore);
    assert_eq!(probe(TS, b""), Probe::NeedMore);
    assert_eq!(probe(TS, b"GETX / HTTP/1.1"), Probe::NoMatch);
    assert_eq!(probe(TS, b"\x16\x03\x01\x02\x00"), Probe::NoMatch);
    assert_eq!(probe(TC, b"HTTP/1.1 200 OK"), Probe::Match);
    assert_eq!(probe(TC, b"HTT"), Probe::NeedMore);
    assert_eq!(probe(TC, b"SSH-2.0"), Probe::NoMatch);
}

// ---------------------------------------------------------------------------------------------
// Real captures (suricata-verify expectations).

#[test]
fn sv_http_all_headers_dump() {
    let cfg = HttpConfig {
        dump_all_headers: DumpHeaders::Both,
        ..Default::default()
    };
    let (txs, _) = run_pcap("suricata-verify/http-all-headers/input.pcap", cfg);
    assert_eq!(txs.len(), 1);
    let v = eve(&txs[0]);
    assert_eq!(v["request_headers"][0]["name"], "Host");
    assert_eq!(v["request_headers"][0]["value"], "www.ethereal.com");
    assert_eq!(v["request_headers"].as_array().unwrap().len(), 9);
    assert_eq!(v["response_headers"][5]["name"], "Content-Length");
    assert_eq!(v["response_headers"][5]["value"], "18070");
    assert_eq!(v["response_headers"].as_array().unwrap().len(), 9);
    assert_eq!(v["hostname"], "www.ethereal.com");
    assert_eq!(v["status"], 200);
    assert_eq!(v["length"], 18070);
    assert_eq!(txs[0].response_body_len(), 18070);
    // Default config: no header dumps.
    let (txs, _) = run_pcap(
        "suricata-verify/http-all-headers/input.pcap",
        HttpConfig::default(),
    );
    assert!(eve(&txs[0]).get("request_headers").is_none());
}

#[test]
fn sv_http_async() {
    let (txs, _) = run_pcap(
        "suricata-verify/http-async/input.pcap",
        HttpConfig::default(),
    );
    let urls: Vec<_> = txs.iter().map(|t| eve(t)["url"].clone()).collect();
    assert_eq!(urls, vec![json!("/1"), json!("/2")]);
    assert!(txs.iter().all(|t| t.status() == Some(200)));
}

#[test]
fn sv_http_connect_simple() {
    let (txs, _) = run_pcap(
        "suricata-verify/http-connect/http-connect-simple/input.pcap",
        HttpConfig::default(),
    );
    // The tunnelled GET is for the wiring to re-detect; this parser reports the CONNECT.
    assert_eq!(txs.len(), 1);
    let v = eve(&txs[0]);
    assert_eq!(txs[0].tx_id, 0);
    assert_eq!(v["http_method"], "CONNECT");
    assert_eq!(v["protocol"], "HTTP/1.1");
    assert_eq!(v["status"], 200);
    assert_eq!(v["url"], "abc:443");
    assert_eq!(v["hostname"], "abc");
    assert_eq!(v["http_port"], 443);
}

#[test]
fn sv_http_multiple100() {
    let (txs, evs) = run_pcap(
        "suricata-verify/http-multiple100/input.pcap",
        HttpConfig::default(),
    );
    assert_eq!(txs.len(), 1, "{evs:?}");
    let v = eve(&txs[0]);
    assert_eq!(v["status"], 200);
    assert_eq!(v["http_method"], "POST");
    assert_eq!(txs[0].request_body_len(), 34498);
    assert_eq!(txs[0].request_body().unwrap().len(), 34498);
}

#[test]
fn sv_http_options_method() {
    let (txs, _) = run_pcap(
        "suricata-verify/http-options-method/input.pcap",
        HttpConfig::default(),
    );
    assert_eq!(txs.len(), 1);
    let v = eve(&txs[0]);
    assert_eq!(v["http_method"], "OPTIONS");
    assert_eq!(v["hostname"], "example.com");
}

#[test]
fn sv_http_uri_spaces() {
    let (txs, _) = run_pcap(
        "suricata-verify/http-uri-spaces/input.pcap",
        HttpConfig::default(),
    );
    assert_eq!(txs.len(), 1);
    assert_eq!(txs[0].uri_raw().unwrap(), b"/uri afterspace");
    assert_eq!(txs[0].uri().unwrap(), b"/uri afterspace");
    assert_eq!(txs[0].protocol().unwrap(), b"HTTP/1.1");
    assert_eq!(txs[0].status(), Some(400));
    assert_eq!(eve(&txs[0])["http_port"], 8000);
}

#[test]
fn sv_http_missing_protocol() {
    let (txs, evs) = run_pcap(
        "suricata-verify/http-missing-protocol/input.pcap",
        HttpConfig::default(),
    );
    assert_eq!(txs.len(), 1);
    assert_eq!(txs[0].method().unwrap(), b"GET");
    let names_buf = txs[0].request_header_names_buffer().unwrap();
    assert!(memchr::memmem::find(&names_buf, b"\r\nUser-Agent\r\n").is_some());
    assert!(eve(&txs[0]).get("protocol").is_none());
    assert!(names(&evs).contains(&"REQUEST_LINE_MISSING_PROTOCOL"));
}

#[test]
fn sv_http_post_data_decompression() {
    let (txs, _) = run_pcap(
        "suricata-verify/http-post-data-decompression/input.pcap",
        HttpConfig::default(),
    );
    assert!(!txs.is_empty());
    let body = txs[0].request_body().unwrap();
    assert!(contains_ci(body, b"name"), "{}", eve_bytes_to_string(body));
    assert!(!txs
        .iter()
        .any(|t| contains_ci(t.response_body().unwrap_or_default(), b"name")));
}

#[test]
fn sv_http_gzip_uncompressed_passthrough() {
    let (txs, evs) = run_pcap(
        "suricata-verify/http-encoding-gzip-uncompressed/input.pcap",
        HttpConfig::default(),
    );
    let body = txs
        .iter()
        .find_map(|t| t.request_body().filter(|b| !b.is_empty()))
        .unwrap();
    assert!(memchr::memmem::find(body, b"\"sdk_version\":").is_some());
    assert!(memchr::memmem::find(body, b"\"device_id\":\"").is_some());
    assert!(names(&evs).contains(&"GZIP_DECOMPRESSION_FAILED"));
}

#[test]
fn sv_http_gaps() {
    for case in ["http-gap-double", "http-gap-whole-body"] {
        let (txs, _) = run_pcap(
            &format!("suricata-verify/{case}/input.pcap"),
            HttpConfig::default(),
        );
        let urls: Vec<_> = txs.iter().map(|t| eve(t)["url"].clone()).collect();
        assert_eq!(urls, vec![json!("/1"), json!("/2"), json!("/3")], "{case}");
        assert!(txs.iter().all(|t| t.status() == Some(200)), "{case}");
    }
}

#[test]
fn sv_http_protocol_nodup() {
    let (txs, _) = run_pcap(
        "suricata-verify/http-protocol-nodup/input.pcap",
        HttpConfig::default(),
    );
    let n = txs
        .iter()
        .filter(|t| eve(t)["protocol"] == "HTTP/1.1")
        .count();
    assert_eq!(n, 40);
}

#[test]
fn sv_http_post_file_body() {
    let (txs, _) = run_pcap(
        "suricata-verify/http-post-file/input.pcap",
        HttpConfig::default(),
    );
    let eicar = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
    assert!(txs
        .iter()
        .any(|t| { memchr::memmem::find(t.request_body().unwrap_or_default(), eicar).is_some() }));
}

#[test]
fn sv_http_evader_samples_parse() {
    // Evasion captures: each must yield the GET for evader.example.com without panicking.
    let dir = crate::testutil::corpus_path("suricata-verify/http-evader");
    let mut seen = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        let (txs, _) = run_pcap(
            &format!("suricata-verify/http-evader/{name}/input.pcap"),
            HttpConfig::default(),
        );
        if txs
            .iter()
            .any(|t| t.host() == Some(&b"evader.example.com"[..]) && t.method() == Some(b"GET"))
        {
            seen += 1;
        }
    }
    assert!(seen >= 70, "{seen}");
}

// ---------------------------------------------------------------------------------------------
// Hand-made edge cases.

const REQ1: &[u8] = b"GET /a HTTP/1.1\r\nHost: Example.COM:8080\r\nUser-Agent: t/1\r\nCookie: c=1\r\nReferer: http://r/\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n";
const RESP1: &[u8] = b"HTTP/1.1 302 Found\r\nContent-Type: text/html; charset=utf-8\r\nLocation: /b\r\nSet-Cookie: s=1\r\nContent-Length: 5\r\n\r\nhello";

#[test]
fn eve_fields_and_buffers() {
    let (txs, evs) = run(HttpConfig::default(), &[(TS, REQ1), (TC, RESP1)]);
    assert!(evs.is_empty(), "{evs:?}");
    assert_eq!(txs.len(), 1);
    let t = &txs[0];
    assert_eq!(
        eve(t),
        json!({
            "hostname": "example.com",
            "http_port": 8080,
            "url": "/a",
            "http_user_agent": "t/1",
            "xff": "1.2.3.4",
            "http_content_type": "text/html",
            "http_refer": "http://r/",
            "http_method": "GET",
            "protocol": "HTTP/1.1",
            "status": 302,
            "redirect": "/b",
            "length": 5
        })
    );
    assert_eq!(t.host_raw().unwrap(), b"Example.COM:8080");
    assert_eq!(
        t.request_header_buffer().unwrap(),
        b"Host: Example.COM:8080\r\nUser-Agent: t/1\r\nReferer: http://r/\r\nX-Forwarded-For: 1.2.3.4\r\n"
    );
    assert_eq!(
        t.request_header_names_buffer().unwrap(),
        b"\r\nHost\r\nUser-Agent\r\nCookie\r\nReferer\r\nX-Forwarded-For\r\n\r\n"
    );
    assert!(memchr::memmem::find(&t.response_header_buffer().unwrap(), b"Set-Cookie").is_none());
    assert_eq!(t.cookie().unwrap(), b"c=1");
    assert_eq!(t.set_cookie().unwrap(), b"s=1");
    assert_eq!(t.request_line().unwrap(), b"GET /a HTTP/1.1");
    assert_eq!(t.response_line().unwrap(), b"HTTP/1.1 302 Found");
    assert_eq!(t.stat_code().unwrap(), b"302");
    assert_eq!(t.stat_msg().unwrap(), b"Found");
    assert_eq!(t.request_start().unwrap(), REQ1);
    assert_eq!(t.response_body().unwrap(), b"hello");
    assert_eq!(t.response_content_len().unwrap(), b"5");
    assert_eq!(t.header(b"user-AGENT").unwrap(), b"t/1");
}

#[test]
fn non_utf8_and_status_string() {
    let (txs, evs) = run(
        HttpConfig::default(),
        &[
            (TS, b"GET /\xff\xfe HTTP/1.0\r\nUser-Agent: a\xc3b\r\n\r\n"),
            (TC, b"HTTP/1.0 2XX Weird\r\nContent-Length: 0\r\n\r\n"),
        ],
    );
    let v = eve(&txs[0]);
    assert_eq!(v["url"], "/\\xff\\xfe");
    assert_eq!(v["http_user_agent"], "a\\xc3b");
    assert_eq!(v["status_string"], "2XX");
    assert!(v.get("status").is_none());
    assert!(v.get("hostname").is_none());
    assert!(names(&evs).contains(&"RESPONSE_INVALID_STATUS"));
}

#[test]
fn uri_normalization() {
    let cases: &[(&[u8], &[u8])] = &[
        (b"/a/./b/../c", b"/a/c"),
        (b"/a//b///c", b"/a/b/c"),
        (b"/%61%62c/%2e%2e/d", b"/d"),
        (b"/a\\b", b"/a/b"),
        (b"/x%2fy?q=%41#f", b"/x/y?q=%41#f"),
        (b"/%zz%4", b"/%zz%4"),
        (b"/%u0041b", b"/Ab"),
        (b"http://Host.example:81/p/../q?x", b"/q?x"),
        (b"/../../etc/passwd", b"/etc/passwd"),
    ];
    for (raw, want) in cases {
        assert_eq!(
            parse_uri(raw, false).normalized,
            *want,
            "{}",
            eve_bytes_to_string(raw)
        );
    }
    let req = b"GET http://Host.Example:81/p HTTP/1.1\r\nHost: other\r\n\r\n";
    let (txs, evs) = run(HttpConfig::default(), &[(TS, req)]);
    assert_eq!(txs[0].host().unwrap(), b"host.example");
    assert_eq!(txs[0].http_port(), Some(81));
    assert!(names(&evs).contains(&"HOST_HEADER_AMBIGUOUS"));
}

#[test]
fn pipelining_and_keepalive() {
    let reqs = b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\nHEAD /3 HTTP/1.1\r\nHost: h\r\n\r\n";
    let resps = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nAHTTP/1.1 404 NF\r\nContent-Length: 2\r\n\r\nBBHTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
    let (txs, evs) = run(HttpConfig::default(), &[(TS, reqs), (TC, resps)]);
    assert!(evs.is_empty(), "{evs:?}");
    let got: Vec<_> = txs
        .iter()
        .map(|t| {
            (
                t.tx_id,
                t.uri_raw().unwrap().to_vec(),
                t.status(),
                t.response_body().unwrap().to_vec(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (0, b"/1".to_vec(), Some(200), b"A".to_vec()),
            (1, b"/2".to_vec(), Some(404), b"BB".to_vec()),
            (2, b"/3".to_vec(), Some(200), b"".to_vec()),
        ]
    );
    assert!(txs.iter().all(|t| t.response.as_ref().unwrap().complete));
}

#[test]
fn emitted_when_response_completes() {
    let mut p = HttpParser::new(HttpConfig::default());
    let mut out = AppOutput::default();
    p.parse(TS, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", 0, &mut out);
    assert!(out.records.is_empty());
    p.parse(
        TC,
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab",
        0,
        &mut out,
    );
    assert!(out.records.is_empty());
    p.parse(TC, b"cd", 0, &mut out);
    assert_eq!(out.records.len(), 1);
}

#[test]
fn chunked_with_extensions_and_trailers() {
    let resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;name=val\r\nhello\r\n1\r\n \r\n6\r\nworld!\r\n0\r\nX-Trailer: yes\r\n\r\n";
    let (txs, evs) = run(
        HttpConfig::default(),
        &[(TS, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"), (TC, resp)],
    );
    assert_eq!(txs[0].response_body().unwrap(), b"hello world!");
    assert_eq!(eve(&txs[0])["length"], 12);
    assert_eq!(txs[0].response_header(b"x-trailer").unwrap(), b"yes");
    assert_eq!(names(&evs), vec!["RESPONSE_CHUNK_EXTENSION"]);

    // Chunked request body followed by a pipelined request.
    let req = b"POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n";
    let (txs, _) = run(HttpConfig::default(), &[(TS, req)]);
    assert_eq!(txs.len(), 2);
    assert_eq!(txs[0].request_body().unwrap(), b"abc");
    assert_eq!(txs[1].uri_raw().unwrap(), b"/n");
}

#[test]
fn invalid_chunk_len() {
    let resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nrest";
    let (txs, evs) = run(
        HttpConfig::default(),
        &[(TS, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"), (TC, resp)],
    );
    assert!(names(&evs).contains(&"INVALID_RESPONSE_CHUNK_LEN"));
    // libhtp re-reads the line that is no chunk size as the start of an identity body.
    assert_eq!(txs[0].response_body().unwrap(), b"zz\r\nrest");
    let req = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n";
    let (_, evs) = run(HttpConfig::default(), &[(TS, req)]);
    assert!(names(&evs).contains(&"INVALID_REQUEST_CHUNK_LEN"));
}

#[test]
fn gzip_deflate_bodies() {
    let text = b"The quick brown fox jumps over the lazy dog. ".repeat(20);
    for (enc, body) in [
        ("gzip", gzip(&text)),
        ("deflate", zlib(&text)),
        ("deflate", raw_deflate(&text)),
    ] {
        let mut resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Encoding: {enc}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        resp.extend_from_slice(&body);
        let pieces: &[(Direction, &[u8])] =
            &[(TS, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"), (TC, &resp)];
        let (txs, evs) = run(HttpConfig::default(), pieces);
        assert!(evs.is_empty(), "{enc}: {evs:?}");
        assert_eq!(txs[0].response_body().unwrap(), text.as_slice(), "{enc}");
        // `length` counts the bytes on the wire, not the decompressed ones.
        assert_eq!(eve(&txs[0])["length"], body.len());
        let (split, _) = run_split(pieces, |_| 1);
        assert_eq!(split, txs, "{enc}");
    }
}

#[test]
fn gzip_bomb_capped() {
    let zeros = vec![0u8; 20 * 1024 * 1024];
    let bomb = gzip(&zeros);
    let mut resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        bomb.len()
    )
    .into_bytes();
    resp.extend_from_slice(&bomb);
    let cfg = HttpConfig {
        response_body_limit: 4 * 1024 * 1024,
        decompress_limit: 64 * 1024,
        ..Default::default()
    };
    let (txs, evs) = run(
        cfg,
        &[(TS, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"), (TC, &resp)],
    );
    assert_eq!(txs[0].response_body().unwrap().len(), 64 * 1024);
    assert_eq!(names(&evs), vec!["COMPRESSION_BOMB"]);
    // Default limits: the body store (100 KiB) caps the work.
    let (txs, _) = run(
        HttpConfig::default(),
        &[(TS, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"), (TC, &resp)],
    );
    assert_eq!(txs[0].response_body().unwrap().len(), 100 * 1024);
    assert_eq!(txs[0].response_body_len(), bomb.len() as u64);
}

#[test]
fn body_limit_counts_but_does_not_store() {
    let mut resp = b"HTTP/1.1 200 OK\r\nContent-Length: 300000\r\n\r\n".to_vec();
    resp.extend(std::iter::repeat_n(b'x', 300_000));
    let (txs, _) = run(
        HttpConfig::default(),
        &[(TS, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"), (TC, &resp)],
    );
    assert_eq!(txs[0].response_body().unwrap().len(), 100 * 1024);
    assert_eq!(eve(&txs[0])["length"], 300_000);
}

#[test]
fn continue_100() {
    let (txs, evs) = run(
        HttpConfig::default(),
        &[
            (
                TS,
                b"POST /u HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
            ),
            (TC, b"HTTP/1.1 100 Continue\r\n\r\n"),
            (TS, b"abc"),
            (
                TC,
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
            ),
        ],
    );
    assert_eq!(txs.len(), 1);
    assert_eq!(txs[0].status(), Some(201));
    assert_eq!(txs[0].request_body().unwrap(), b"abc");
    assert_eq!(names(&evs), vec!["100_CONTINUE_ALREADY_SEEN"]);
}

#[test]
fn connect_tunnel_and_refused() {
    let mut p = HttpParser::new(HttpConfig::default());
    let mut out = AppOutput::default();
    p.parse(
        TS,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        0,
        &mut out,
    );
    p.parse(
        TC,
        b"HTTP/1.1 200 Connection established\r\n\r\n",
        0,
        &mut out,
    );
    assert_eq!(out.records.len(), 1);
    assert!(p.is_done() && p.is_tunnel());
    p.parse(TS, b"\x16\x03\x01\x00\x05hello", 0, &mut out);
    p.parse(TC, b"\x16\x03\x03garbage", 0, &mut out);
    p.finish(0, &mut out);
    assert_eq!(out.records.len(), 1);
    assert!(out.events.is_empty());

    // Refused CONNECT: client data sent meanwhile is parsed as HTTP.
    let (txs, _) = run(
        HttpConfig::default(),
        &[
            (TS, b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n"),
            (TC, b"HTTP/1.1 407 Auth\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ],
    );
    assert_eq!(txs.len(), 2);
    assert_eq!(txs[0].status(), Some(407));
    assert_eq!(txs[1].uri_raw().unwrap(), b"/after");
    assert_eq!(txs[1].status(), Some(200));
}

#[test]
fn head_204_304_have_no_body() {
    let (txs, _) = run(
        HttpConfig::default(),
        &[
            (TS, b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\nGET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n"),
            (TC, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nHTTP/1.1 204 No\r\n\r\nHTTP/1.1 304 NM\r\n\r\n"),
        ],
    );
    let st: Vec<_> = txs.iter().map(|t| t.status()).collect();
    assert_eq!(st, vec![Some(200), Some(204), Some(304)]);
    assert!(txs.iter().all(|t| t.response.as_ref().unwrap().complete));
}

#[test]
fn until_close_body() {
    let mut p = HttpParser::new(HttpConfig::default());
    let mut out = AppOutput::default();
    p.parse(TS, b"GET / HTTP/1.0\r\n\r\n", 0, &mut out);
    p.parse(TC, b"HTTP/1.0 200 OK\r\n\r\nsome ", 0, &mut out);
    p.parse(TC, b"data", 0, &mut out);
    assert!(out.records.is_empty());
    p.end_of_stream(TC, 0, &mut out);
    assert_eq!(out.records.len(), 1);
    let AppRecord::Http(t) = &out.records[0] else {
        panic!()
    };
    assert_eq!(t.response_body().unwrap(), b"some data");
    assert_eq!(t.response_body_len(), 9);
}

#[test]
fn gaps_in_body_and_head() {
    let mut p = HttpParser::new(HttpConfig::default());
    let mut out = AppOutput::default();
    p.parse(
        TS,
        b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n",
        0,
        &mut out,
    );
    p.parse(
        TC,
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        0,
        &mut out,
    );
    p.gap(TC, 4, &mut out);
    p.parse(TC, b"hij", 0, &mut out);
    assert_eq!(out.records.len(), 1);
    p.parse(TC, b"HTTP/1.1 200 OK\r\nCont", 0, &mut out);
    p.gap(TC, 10, &mut out);
    p.parse(TC, b"whatever\r\n\r\n", 0, &mut out);
    assert_eq!(names(&out.events), vec!["UNKNOWN_ERROR"]);
    p.finish(0, &mut out);
    let txs: Vec<_> = out
        .records
        .iter()
        .map(|r| match r {
            AppRecord::Http(t) => t.clone(),
            _ => panic!(),
        })
        .collect();
    assert_eq!(txs.len(), 2);
    assert_eq!(txs[0].response_body().unwrap(), b"abchij");
    assert_eq!(txs[0].response_body_len(), 10);
    // The second transaction is kept, without a response.
    assert_eq!(txs[1].uri_raw().unwrap(), b"/2");
    assert!(txs[1].response.is_none());
}

#[test]
fn garbage_and_unmatched_response() {
    let (txs, evs) = run(
        HttpConfig::default(),
        &[(TC, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")],
    );
    assert_eq!(txs.len(), 1);
    assert!(txs[0].request.is_none());
    assert_eq!(eve(&txs[0]), json!({"status": 200, "length": 0}));
    assert_eq!(names(&evs), vec!["UNABLE_TO_MATCH_RESPONSE_TO_REQUEST"]);

    let (txs, evs) = run(
        HttpConfig::default(),
        &[
            (TS, b"\x00\x01\x02garbage no newline"),
            (TC, b"\xff\xfe\xfd\xfcjunk"),
        ],
    );
    assert!(txs.len() <= 1);
    assert!(!evs.is_empty());
}

#[test]
fn header_and_line_limits() {
    let cfg = HttpConfig {
        max_line_len: 100,
        max_head_size: 1000,
        max_headers: 3,
        ..Default::default()
    };
    let long_line = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(200));
    let (txs, evs) = run(cfg.clone(), &[(TS, long_line.as_bytes())]);
    assert!(txs.is_empty());
    assert_eq!(names(&evs), vec!["REQUEST_FIELD_TOO_LONG"]);

    let mut big = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..50 {
        big.extend_from_slice(format!("X-{i}: {}\r\n", "v".repeat(40)).as_bytes());
    }
    big.extend_from_slice(b"\r\n");
    let (_, evs) = run(cfg.clone(), &[(TS, &big)]);
    assert_eq!(names(&evs), vec!["REQUEST_FIELD_TOO_LONG"]);

    let many = b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nA: 5\r\n\r\n";
    let (txs, evs) = run(cfg, &[(TS, many)]);
    assert_eq!(names(&evs), vec!["REQUEST_TOO_MANY_HEADERS"]);
    assert_eq!(txs[0].request.as_ref().unwrap().headers.len(), 3);
    assert_eq!(txs[0].header(b"a").unwrap(), b"1, 5");
}

#[test]
fn lenient_heads() {
    // Bare LF line ends, folding, missing colon, leading blank lines.
    let req = b"\r\n\r\nGET /x HTTP/1.1\nHost: h\nX-Fold: a\n  b\nNoColon\n\n";
    let (txs, evs) = run(HttpConfig::default(), &[(TS, req)]);
    assert_eq!(txs.len(), 1);
    assert_eq!(txs[0].header(b"x-fold").unwrap(), b"a b");
    assert_eq!(names(&evs), vec!["REQUEST_FIELD_MISSING_COLON"]);
    let (_, evs) = run(HttpConfig::default(), &[(TS, b"GET / HTTP/1.1\r\n\r\n")]);
    assert_eq!(names(&evs), vec!["MISSING_HOST_HEADER"]);
}

#[test]
fn split_invariance() {
    let gz = gzip(&b"compressible text ".repeat(100));
    let mut gz_resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n{:x};e=1\r\n",
        gz.len()
    )
    .into_bytes();
    gz_resp.extend_from_slice(&gz);
    gz_resp.extend_from_slice(b"\r\n0\r\nT: 1\r\n\r\n");
    let pieces: Vec<(Direction, &[u8])> = vec![
        (TS, REQ1),
        (TS, b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbodyGET /g HTTP/1.0\r\n\r\n"),
        (TC, RESP1),
        (TC, b"HTTP/1.1 100 Continue\r\n\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        (TC, &gz_resp),
        (TS, b"GET /bad HTTP/1.1\r\nHost: h\r\nContent-Encoding: gzip\r\nContent-Length: 20\r\n\r\nnot gzip, plain text"),
        (TC, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\nxx\r\nclose-delimited"),
    ];
    let whole = run_split(&pieces, |n| n);
    assert_eq!(whole.0.len(), 4, "{:?}", whole.1);
    assert_eq!(
        whole.0[2].response_body().unwrap(),
        b"compressible text ".repeat(100)
    );
    let ones = run_split(&pieces, |_| 1);
    assert_eq!(ones.0, whole.0);
    assert_eq!(ones.1, whole.1);
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for _ in 0..200 {
        let r = run_split(&pieces, |n| 1 + rng.below(n.min(40)));
        assert_eq!(r.0, whole.0);
        assert_eq!(r.1, whole.1);
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(42);
    let seeds: &[&[u8]] = &[
        REQ1,
        RESP1,
        b"Transfer-Encoding: chunked\r\n",
        b"Content-Encoding: gzip\r\n",
        b"\r\n",
        b"CONNECT a:1 HTTP/1.1\r\n",
    ];
    for _ in 0..2000 {
        let mut p = HttpParser::new(HttpConfig {
            max_line_len: 64,
            max_head_size: 256,
            ..Default::default()
        });
        let mut out = AppOutput::default();
        for _ in 0..8 {
            let mut buf = Vec::new();
            for _ in 0..rng.below(4) {
                buf.extend_from_slice(seeds[rng.below(seeds.len())]);
            }
            for _ in 0..rng.below(16) {
                buf.push(rng.next() as u8);
            }
            let dir = if rng.below(2) == 0 { TS } else { TC };
            match rng.below(10) {
                0 => p.gap(dir, rng.below(100) as u64, &mut out),
                1 => p.end_of_stream(dir, 0, &mut out),
                _ => p.parse(dir, &buf, 0, &mut out),
            }
        }
        p.finish(0, &mut out);
        for r in &out.records {
            r.eve_object().unwrap();
        }
    }
}

/// Throughput check (run with `--release --ignored`): ~200 MB of keep-alive responses with
/// bodies up to 1 MB, fed in 1460-byte segments.
#[test]
#[ignore]
fn perf_keepalive() {
    let mut req = Vec::new();
    let mut resp = Vec::new();
    let mut rng = Rng(7);
    let body = vec![b'x'; 1 << 20];
    while resp.len() < 200 << 20 {
        req.extend_from_slice(b"GET /file HTTP/1.1\r\nHost: bench\r\nUser-Agent: b\r\n\r\n");
        let n = 1 + rng.below(1 << 20);
        resp.extend_from_slice(
            format!("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {n}\r\n\r\n").as_bytes(),
        );
        resp.extend_from_slice(&body[..n]);
    }
    let start = std::time::Instant::now();
    let mut p = HttpParser::new(HttpConfig::default());
    let mut out = AppOutput::default();
    let mut count = 0;
    for c in req.chunks(1460) {
        p.parse(TS, c, 0, &mut out);
    }
    for c in resp.chunks(1460) {
        p.parse(TC, c, 0, &mut out);
        count += out.records.len();
        out.records.clear();
    }
    let el = start.elapsed();
    eprintln!("{} MB, {count} txs in {el:?}", resp.len() >> 20);
    assert!(count > 300);
}

// ---------------------------------------------------------------------------------------------
// Content-Encoding layers and files.

fn get_resp(head: &str, body: &[u8], cfg: HttpConfig) -> (Vec<HttpTransaction>, Vec<AppEvent>) {
    let mut resp = format!(
        "HTTP/1.1 200 OK\r\n{head}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    resp.extend_from_slice(body);
    run(
        cfg,
        &[
            (TS, b"GET /dir/f.bin?x=1 HTTP/1.1\r\nHost: h\r\n\r\n"),
            (TC, &resp),
        ],
    )
}

#[test]
fn stacked_encodings_are_undone_last_applied_first() {
    let text = b"layered body text ".repeat(30);
    let cfg = HttpConfig {
        decompress_layer_limit: 3,
        ..Default::default()
    };
    // Applied gzip, then deflate: listed in that order, undone in reverse; repeated headers
    // are merged with ", " first.
    let body = zlib(&gzip(&text));
    for head in [
        "Content-Encoding: gzip,deflate\r\n",
        "Content-Encoding: gzip\r\nContent-Encoding: deflate\r\n",
    ] {
        let (txs, _) = get_resp(head, &body, cfg.clone());
        assert_eq!(txs[0].response_body().unwrap(), text.as_slice(), "{head:?}");
    }
    // Three layers (deflate, gzip, deflate) within a limit of 3, in any split.
    let three = raw_deflate(&gzip(&zlib(&text)));
    let (txs, evs) = get_resp("Content-Encoding: deflate,gzip,deflate\r\n", &three, cfg);
    assert_eq!(txs[0].response_body().unwrap(), text.as_slice());
    assert!(evs.is_empty(), "{evs:?}");
}

#[test]
fn encoding_layers_past_the_limit_stay_encoded() {
    let text = b"layered body text ".repeat(30);
    let body = zlib(&gzip(&text));
    // "gzip, deflate" is three pieces to libhtp (the empty one between ',' and ' ' counts).
    let (txs, evs) = get_resp(
        "Content-Encoding: gzip, deflate\r\n",
        &body,
        HttpConfig::default(),
    );
    assert!(names(&evs).contains(&"TOO_MANY_ENCODING_LAYERS"), "{evs:?}");
    assert_ne!(txs[0].response_body().unwrap(), text.as_slice());
    let cfg = HttpConfig {
        decompress_layer_limit: 0,
        ..Default::default()
    };
    let (txs, evs) = get_resp("Content-Encoding: gzip, deflate\r\n", &body, cfg);
    assert!(!names(&evs).contains(&"TOO_MANY_ENCODING_LAYERS"));
    assert_eq!(txs[0].response_body().unwrap(), text.as_slice());
}

#[test]
fn evasive_content_encoding_values() {
    let text = b"evasive encodings ".repeat(10);
    let gz = gzip(&text);
    // NULs inside the value are ignored by libhtp's comparison; a piece containing "gzip" is
    // gzip (with ABNORMAL_CE_HEADER).
    let (txs, evs) = get_resp("Content-Encoding: gz\0ip\r\n", &gz, HttpConfig::default());
    assert_eq!(txs[0].response_body().unwrap(), text.as_slice());
    assert!(evs.is_empty(), "{evs:?}");
    let (txs, evs) = get_resp("Content-Encoding: \x0bgzip\r\n", &gz, HttpConfig::default());
    assert_eq!(txs[0].response_body().unwrap(), text.as_slice());
    assert_eq!(names(&evs), vec!["ABNORMAL_CE_HEADER"]);
    // A reserved gzip flag: restarted as raw deflate after the header.
    let mut odd = gz.clone();
    odd[3] = 0x40;
    let (txs, _) = get_resp("Content-Encoding: gzip\r\n", &odd, HttpConfig::default());
    assert_eq!(txs[0].response_body().unwrap(), text.as_slice());
}

#[test]
fn response_heads_end_lines_at_a_lone_cr() {
    let resp = b"HTTP/1.1 200 ok\rContent-Disposition: attachment; filename=\"a.txt\"\rTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n";
    let pieces: &[(Direction, &[u8])] = &[(TS, b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n"), (TC, resp)];
    let (txs, _) = run(HttpConfig::default(), pieces);
    assert_eq!(txs[0].response_body().unwrap(), b"abcd");
    assert_eq!(txs[0].status(), Some(200));
    assert_eq!(txs[0].files()[0].filename, b"a.txt");
    assert_eq!(run_split(pieces, |_| 1).0, txs);
}

#[test]
fn content_disposition_filenames() {
    let f = content_disposition_filename;
    assert_eq!(
        f(b"attachment; filename=\"eicar.txt\""),
        Some(&b"eicar.txt"[..])
    );
    assert_eq!(
        f(b"attachment; FILENAME=report.pdf"),
        Some(&b"report.pdf"[..])
    );
    assert_eq!(
        f(b"inline; name=\"x\"; filename=\"a;b.txt\""),
        Some(&b"a;b.txt"[..])
    );
    assert_eq!(f(b"attachment"), None);
    assert_eq!(f(b"attachment; filename=\"\""), None);
}

#[test]
fn files_of_transactions() {
    // Download named by Content-Disposition, else by the URI path without its query.
    let (txs, _) = get_resp(
        "Content-Disposition: attachment; filename=\"r.pdf\"\r\n",
        b"12345",
        HttpConfig::default(),
    );
    let files: Vec<HttpFile> = txs[0].files();
    assert_eq!(
        files,
        vec![HttpFile {
            direction: TC,
            filename: b"r.pdf".to_vec(),
            size: 5,
            gaps: false,
            state: FileState::Closed,
        }]
    );
    let (txs, _) = get_resp("", b"12345", HttpConfig::default());
    assert_eq!(txs[0].files()[0].filename, b"/dir/f.bin");
    // No body, no file.
    let (txs, _) = get_resp("", b"", HttpConfig::default());
    assert_eq!(txs[0].files().len(), 0);
    // Past the body limit: the file holds the limit and is truncated.
    let cfg = HttpConfig {
        response_body_limit: 4,
        ..Default::default()
    };
    let (txs, _) = get_resp("", b"123456789", cfg);
    let f = txs[0].files().remove(0);
    assert_eq!((f.size, f.state), (4, FileState::Truncated));
    // Uploads: a PUT or a plain POST body is a file named after the path; multipart is not.
    let put = b"PUT /up/a.bin HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc";
    let created = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
    let (txs, _) = run(HttpConfig::default(), &[(TS, put), (TC, created)]);
    let files: Vec<HttpFile> = txs[0].files();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].direction, TS);
    assert_eq!(files[0].filename, b"/up/a.bin");
    assert_eq!(files[0].size, 3);
    let multi = b"POST /f HTTP/1.1\r\nHost: h\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 3\r\n\r\nabc";
    let (txs, _) = run(HttpConfig::default(), &[(TS, multi)]);
    assert_eq!(txs[0].files().len(), 0, "no boundary in the body, no part");
    // Multipart: the parts naming a filename, each up to the CRLF before the next boundary.
    let form = b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue\r\n--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"up.txt\"\r\nContent-Type: text/plain\r\n\r\nfile body\r\n--XyZ\r\nContent-Disposition: form-data; name=\"g\"; filename=\"cut.bin\"\r\n\r\nno end";
    let head = format!("POST /form HTTP/1.1\r\nHost: h\r\nContent-Type: multipart/form-data; boundary=\"XyZ\"\r\nContent-Length: {}\r\n\r\n", form.len());
    let req = [head.as_bytes(), form].concat();
    let (txs, _) = run(HttpConfig::default(), &[(TS, &req)]);
    let files = txs[0].files();
    let got: Vec<_> = files
        .iter()
        .map(|f| (f.filename.as_slice(), f.size, f.state))
        .collect();
    assert_eq!(
        got,
        vec![
            (&b"up.txt"[..], 9, FileState::Closed),
            (&b"cut.bin"[..], 6, FileState::Truncated)
        ]
    );
    assert!(files.iter().all(|f| f.direction == TS));
    // A body cut by a gap: truncated, with the lost bytes counted.
    let mut p = HttpParser::new(HttpConfig::default());
    let mut out = AppOutput::default();
    p.parse(TS, b"GET /g HTTP/1.1\r\nHost: h\r\n\r\n", 0, &mut out);
    p.parse(
        TC,
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        0,
        &mut out,
    );
    p.gap(TC, 4, &mut out);
    p.parse(TC, b"xyz", 0, &mut out);
    p.finish(0, &mut out);
    let (mut txs, mut evs) = (Vec::new(), Vec::new());
    drain(&mut out, &mut txs, &mut evs);
    let f = txs[0].files().remove(0);
    assert_eq!((f.size, f.gaps, f.state), (10, true, FileState::Truncated));
}

/// http-evader captures (suricata-verify) whose evasions Vigil undoes as libhtp does: the
/// EICAR body is decoded whole and is one file named by Content-Disposition.
#[test]
fn sv_http_evader_bodies() {
    for case in [
        "015", // chunk sizes padded with spaces
        "045", // chunked announced on HTTP/1.0 with Content-Length: body sent unchunked
        "150", // deflate,gzip,deflate (three layers)
        "156", // two Content-Encoding headers
        "195", // gzip header CRC flag with a wrong CRC
        "291", // NUL inside the Transfer-Encoding name
        "327", // Content-Encoding value folded onto a NUL-led line
        "339", // vertical tab before the colon
        "390", // NUL before the status line
        "402", // lone CRs end the response head's lines
        "411", // LF CR CR LF before the end of the head
        "447", // a 100 response with a body
    ] {
        let cfg = HttpConfig {
            decompress_layer_limit: 3,
            ..Default::default()
        };
        let rel = format!("suricata-verify/http-evader/http-evader-{case}/input.pcap");
        let (txs, _) = run_pcap(&rel, cfg);
        assert_eq!(txs.len(), 1, "{case}");
        let body = txs[0].response_body().unwrap_or_default();
        let text = String::from_utf8_lossy(body);
        assert!(
            body.windows(11).any(|w| w == b"X5O!P%@AP[4"),
            "{case}: {text:?}"
        );
        assert!(
            contains_ci(body, b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE"),
            "{case}"
        );
        let files: Vec<HttpFile> = txs[0].files();
        assert_eq!(files.len(), 1, "{case}");
        assert_eq!(files[0].filename, b"eicar.txt", "{case}");
        assert_eq!(files[0].state, FileState::Closed, "{case}");
    }
}
