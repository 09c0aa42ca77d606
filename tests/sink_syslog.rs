//! The syslog-over-TLS sink against a real rsyslogd (imtcp with the GnuTLS stream driver),
//! which each test starts on a free loopback port with its own configuration, certificates
//! (made here with rcgen) and work directory: see `common/rsyslog.rs`.
//!
//! Needs `rsyslogd` and its gtls driver: `appliance/install-deps.sh` installs both.

mod common;

use std::collections::HashMap;
use std::io::Read;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pki::{Ca, Pki};
use common::rsyslog::Rsyslog;
use vigil::output::sink::{EncodedEvent, EventType, Sink, SinkError};
use vigil::output::syslog::{SyslogTlsConfig, SyslogTlsSink};

// ---------------------------------------------------------------------------------------------
// Events and the sink

const BASE_TS_NS: u64 = 1_715_594_400_123_456_789;

fn event_id(i: usize) -> String {
    format!("5d2c9a10-000000{i:06}")
}

/// Event `i`: the types in turn, about 60 B to 4 KiB of JSON, some of it non-ASCII or escaped.
fn event(i: usize, size: usize) -> EncodedEvent {
    let event_type = EventType::ALL[i % EventType::ALL.len()];
    let id = event_id(i);
    let filler: String = match i % 5 {
        0 => "a".repeat(size),
        1 => "bücher-日本-".repeat(size / 16 + 1),
        2 => "quote\" back\\slash tab\t nl\n ".repeat(size / 26 + 1),
        _ => (0..size).map(|k| (b'a' + (k % 26) as u8) as char).collect(),
    };
    let json = serde_json::json!({
        "timestamp": "2024-05-13T10:00:00.123456+0000",
        "event_type": event_type.name(),
        "vigil_id": id,
        "payload": filler,
    });
    EncodedEvent {
        id,
        event_type,
        ts_ns: BASE_TS_NS + i as u64 * 1_234_567_891,
        json: serde_json::to_vec(&json).unwrap(),
    }
}

fn events(range: std::ops::Range<usize>) -> Vec<EncodedEvent> {
    range.map(|i| event(i, 40 + (i * 997) % 4000)).collect()
}

fn sink(url: &str) -> SyslogTlsSink {
    SyslogTlsSink::new(SyslogTlsConfig::from_url(url).unwrap()).unwrap()
}

/// Sends everything in batches of `batch`, as the sink's caller does; panics on an error.
fn send_all(sink: &mut SyslogTlsSink, events: &[EncodedEvent], batch: usize) {
    for chunk in events.chunks(batch) {
        let mut at = 0;
        while at < chunk.len() {
            let n = sink.send(&chunk[at..]).unwrap();
            assert!(n > 0, "send took nothing");
            at += n;
        }
    }
}

fn id_of(msg: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(msg)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(msg)));
    v["vigil_id"].as_str().unwrap().to_string()
}

fn rfc3339(ts_ns: u64) -> String {
    vigil::output::time::rfc3339_micros(ts_ns).to_string()
}

// ---------------------------------------------------------------------------------------------
// Tests

/// 1,000 events of various sizes (one of 200 KiB) arrive in order, byte for byte, with the
/// RFC 5424 header fields expected; a wrong server name is refused.
#[test]
fn events_arrive_intact_in_order_with_rfc5424_headers() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::write(dir.path(), "a", &Ca::new("Vigil Test CA"));
    let rs = Rsyslog::start(dir.path(), &pki, "anon");

    // The server certificate is for 127.0.0.1 and localhost, not for another name.
    let mut wrong = sink(&rs.url(&format!("ca={}&sni=wrong.example", pki.ca.display())));
    match wrong.connect() {
        Err(SinkError::Refused { reason, .. }) => {
            assert!(reason.contains("not valid for the name"), "{reason}")
        }
        other => panic!("wrong server name: expected Refused, got {other:?}"),
    }

    let mut evs = events(0..1000);
    evs[500] = event(500, 200 * 1024);
    assert!(evs[500].json.len() > 200 * 1024);

    let mut s = sink(&rs.url(&format!(
        "ca={}&hostname=sensor-07.example&timeout=10",
        pki.ca.display()
    )));
    assert_eq!(s.name(), format!("syslog+tls://127.0.0.1:{}", rs.port));
    s.connect().unwrap();
    // rsyslogd's anon mode allows anonymous key exchange, which TLS 1.3 lacks: it negotiates
    // TLS 1.2 (its x509 modes negotiate TLS 1.3, see the mutual TLS tests).
    eprintln!("anon rsyslogd: {:?}", s.tls_version());
    assert!(s.tls_version().is_some());
    send_all(&mut s, &evs, 256);

    let msgs = rs.wait_for(Duration::from_secs(30), |m| m.len() >= evs.len());
    assert_eq!(
        msgs.len(),
        evs.len(),
        "rsyslogd wrote {} of {} messages; stderr: {}",
        msgs.len(),
        evs.len(),
        rs.stderr()
    );
    for (i, (got, ev)) in msgs.iter().zip(&evs).enumerate() {
        assert!(
            got == &ev.json,
            "message {i} differs: {} bytes, expected {} bytes",
            got.len(),
            ev.json.len()
        );
    }

    let hdrs = rs.lines("hdrs.log");
    assert_eq!(hdrs.len(), evs.len());
    let pid = std::process::id().to_string();
    for (line, ev) in hdrs.iter().zip(&evs) {
        let parts: Vec<&[u8]> = line.splitn(10, |&b| b == b'|').collect();
        assert_eq!(parts.len(), 10, "{}", String::from_utf8_lossy(line));
        let f: Vec<&str> = parts[..9]
            .iter()
            .map(|p| std::str::from_utf8(p).unwrap())
            .collect();
        let (pri, severity) = if ev.event_type == EventType::Alert {
            ("172", "4") // local5.warning
        } else {
            ("173", "5") // local5.notice
        };
        let ts = rfc3339(ev.ts_ns);
        let msgid = ev.event_type.name();
        let expect = [
            pri,
            "21",
            severity,
            &ts,
            "sensor-07.example",
            "vigil",
            &pid,
            msgid,
            "-",
        ];
        assert_eq!(f, expect, "header fields of {}", ev.id);
        // The raw message starts exactly as RFC 5424 says, the JSON right after `- `.
        let header = format!("<{pri}>1 {ts} sensor-07.example vigil {pid} {msgid} - ");
        let mut raw = header.into_bytes();
        raw.extend_from_slice(&ev.json);
        let seen = parts[9];
        assert!(
            seen.len() >= 100 && raw.starts_with(seen),
            "raw message of {}: {:?}",
            ev.id,
            String::from_utf8_lossy(seen)
        );
    }
}

/// A server certificate from a CA the sink does not trust is refused, with the reason.
#[test]
fn untrusted_server_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let trusted = Pki::write(dir.path(), "trusted", &Ca::new("Vigil Test CA"));
    let rogue = Pki::write(dir.path(), "rogue", &Ca::new("Some Other CA"));
    let rs = Rsyslog::start(dir.path(), &rogue, "anon");

    let mut s = sink(&rs.url(&format!("ca={}", trusted.ca.display())));
    let started = Instant::now();
    match s.connect() {
        Err(SinkError::Refused { sink, reason }) => {
            eprintln!("refused as expected: {sink}: {reason}");
            assert!(reason.contains("UnknownIssuer"), "{reason}");
            assert!(
                reason.contains(&trusted.ca.display().to_string()),
                "reason names the CA file: {reason}"
            );
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!s.is_connected());
    match s.send(&events(0..1)) {
        Err(SinkError::Unavailable { .. }) => {}
        other => panic!("send without a connection: {other:?}"),
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(rs.msgs().is_empty());

    // The same server with the right CA file is fine.
    let mut ok = sink(&rs.url(&format!("ca={}", rogue.ca.display())));
    ok.connect().unwrap();
}

/// rsyslogd requiring client certificates (x509/certvalid) turns away a sink without one,
/// and takes events from a sink with one. TLS 1.3, as negotiated by default.
#[test]
fn mutual_tls_needs_the_client_certificate() {
    mutual_tls(None, "TLS 1.3");
}

/// The same over TLS 1.2 (the server offers nothing newer), where client authentication
/// takes place at another point of the handshake.
#[test]
fn mutual_tls_over_tls12() {
    mutual_tls(Some("NORMAL:-VERS-ALL:+VERS-TLS1.2"), "TLS 1.2");
}

fn mutual_tls(priority: Option<&str>, version: &str) {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::write(dir.path(), "m", &Ca::new("Vigil Test CA"));
    let rs = Rsyslog::start_with(dir.path(), &pki, "x509/certvalid", priority);
    let evs = events(0..20);

    let mut anon = sink(&rs.url(&format!("ca={}", pki.ca.display())));
    match anon.connect() {
        Err(SinkError::Refused { reason, .. }) => {
            eprintln!("{version}, without a client certificate, connect: {reason}");
            assert!(reason.contains("client certificate"), "{reason}");
        }
        Err(e) => panic!("expected Refused, got {e}"),
        Ok(()) => {
            // Not noticed during connect: the first send must fail then.
            let r = anon.send(&evs);
            eprintln!("{version}, without a client certificate, connect succeeded, send: {r:?}");
            assert!(r.is_err(), "send without a client certificate: {r:?}");
        }
    }
    // A client certificate from another CA is turned away too.
    let rogue = Pki::write(dir.path(), "rogue", &Ca::new("Some Other CA"));
    let mut wrong = sink(&rs.url(&format!(
        "ca={}&cert={}&key={}",
        pki.ca.display(),
        rogue.client_cert.display(),
        rogue.client_key.display()
    )));
    match wrong.connect() {
        Err(SinkError::Refused { reason, .. }) => {
            eprintln!("{version}, client certificate of another CA, connect: {reason}");
            assert!(reason.contains("rogue-client.pem"), "{reason}");
        }
        Err(e) => panic!("expected Refused, got {e}"),
        Ok(()) => {
            let r = wrong.send(&evs);
            eprintln!("{version}, untrusted client certificate, connect succeeded, send: {r:?}");
            assert!(
                r.is_err(),
                "send with an untrusted client certificate: {r:?}"
            );
        }
    }

    let mut mtls = sink(&rs.url(&format!(
        "ca={}&cert={}&key={}",
        pki.ca.display(),
        pki.client_cert.display(),
        pki.client_key.display()
    )));
    mtls.connect().unwrap();
    assert_eq!(mtls.tls_version(), Some(version));
    send_all(&mut mtls, &evs, 256);
    let msgs = rs.wait_for(Duration::from_secs(15), |m| m.len() >= evs.len());
    let want: Vec<&[u8]> = evs.iter().map(|e| e.json.as_slice()).collect();
    let got: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
    assert!(
        got == want,
        "{} messages; stderr: {}",
        got.len(),
        rs.stderr()
    );
}

/// A receiver that stops reading (SIGSTOP) makes `send` fail once the socket buffers are full,
/// each call within the send timeout.
#[test]
fn stalled_receiver_fails_within_the_send_timeout() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;

    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::write(dir.path(), "s", &Ca::new("Vigil Test CA"));
    let rs = Rsyslog::start(dir.path(), &pki, "anon");
    let mut s = sink(&rs.url(&format!("ca={}&timeout=1", pki.ca.display())));
    s.connect().unwrap();
    let pid = Pid::from_raw(rs.pid());
    kill(pid, Signal::SIGSTOP).unwrap();

    let batch: Vec<EncodedEvent> = (0..256).map(|i| event(i, 4000)).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut batches = 0;
    let outcome = loop {
        assert!(Instant::now() < deadline, "send never failed");
        let started = Instant::now();
        let r = s.send(&batch);
        let took = started.elapsed();
        assert!(took < Duration::from_secs(2), "send blocked {took:?}");
        match r {
            Ok(n) if n == batch.len() => batches += 1,
            other => break (other, took),
        }
    };
    let _ = kill(pid, Signal::SIGCONT);
    eprintln!(
        "stalled receiver: {batches} batches ({} MB) taken, then {:?} after {:?}",
        batches * batch.iter().map(|e| e.json.len()).sum::<usize>() / 1_000_000,
        outcome.0,
        outcome.1
    );
    assert!(matches!(outcome.0, Err(SinkError::Unavailable { .. })));
    assert!(!s.is_connected());
}

/// rsyslogd killed mid-stream and started again: the sink notices, reconnects, and the caller
/// re-sends from the first event not taken; every event arrives at least once.
#[test]
fn receiver_restart_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::write(dir.path(), "r", &Ca::new("Vigil Test CA"));
    let mut rs = Rsyslog::start(dir.path(), &pki, "anon");
    let evs = events(0..1000);
    let timeout = Duration::from_secs(3);

    let mut s = sink(&rs.url(&format!(
        "ca={}&facility=local0&timeout=3",
        pki.ca.display()
    )));
    assert_eq!(s.send_timeout(), timeout);
    s.connect().unwrap();
    send_all(&mut s, &evs[..500], 100);
    // rsyslogd holds received messages in memory until its action writes them: let it write
    // them before the kill, so what is tested is the sink, not rsyslogd's queue.
    let before = rs.wait_for(Duration::from_secs(20), |m| m.len() >= 500);
    assert_eq!(before.len(), 500, "stderr: {}", rs.stderr());

    rs.kill();
    let started = Instant::now();
    let first = s.send(&evs[500..600]);
    let took = started.elapsed();
    eprintln!("send after the kill: {first:?} in {took:?}");
    let mut next = match first {
        Err(SinkError::Unavailable { .. }) => 500,
        Ok(n) if n < 100 => 500 + n,
        other => panic!("send to a killed receiver: {other:?}"),
    };
    assert!(took <= timeout + Duration::from_secs(1), "took {took:?}");
    // Nobody listens: connection refused, a retryable error.
    match s.connect() {
        Err(SinkError::Unavailable { reason, .. }) => eprintln!("while down: {reason}"),
        other => panic!("connect while rsyslogd is down: {other:?}"),
    }

    rs.launch();
    let mut attempts = 0;
    loop {
        attempts += 1;
        match s.connect() {
            Ok(()) => break,
            Err(e) if attempts < 50 => {
                eprintln!("reconnect attempt {attempts}: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("no reconnect after {attempts} attempts: {e}"),
        }
    }
    // The caller's loop: on Err, reconnect and re-send from the first event not taken.
    let deadline = Instant::now() + Duration::from_secs(60);
    while next < evs.len() {
        assert!(Instant::now() < deadline, "stuck at event {next}");
        let end = (next + 100).min(evs.len());
        match s.send(&evs[next..end]) {
            Ok(n) => next += n,
            Err(e) => {
                eprintln!("send failed again ({e}), reconnecting");
                std::thread::sleep(Duration::from_millis(200));
                let _ = s.connect();
            }
        }
    }

    let want: Vec<String> = evs.iter().map(|e| e.id.clone()).collect();
    let msgs = rs.wait_for(Duration::from_secs(30), |m| {
        let seen: std::collections::HashSet<String> = m.iter().map(|l| id_of(l)).collect();
        want.iter().all(|id| seen.contains(id))
    });
    let mut counts: HashMap<String, usize> = HashMap::new();
    for m in &msgs {
        *counts.entry(id_of(m)).or_default() += 1;
    }
    let missing: Vec<&String> = want.iter().filter(|id| !counts.contains_key(*id)).collect();
    let duplicates: usize = counts.values().map(|c| c - 1).sum();
    eprintln!(
        "receiver restart: {} messages for {} events, {} duplicates, {} missing, \
         {attempts} connect attempts",
        msgs.len(),
        want.len(),
        duplicates,
        missing.len()
    );
    assert!(missing.is_empty(), "missing events: {missing:?}");
    assert!(counts.keys().all(|id| want.contains(id)));

    // The facility from the URL: local0 (16), warning for alerts, notice for the rest.
    let hdrs = rs.lines("hdrs.log");
    let pris: std::collections::BTreeSet<String> = hdrs
        .iter()
        .map(|l| {
            String::from_utf8_lossy(l)
                .split('|')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(pris, ["132".to_string(), "133".to_string()].into());
}

/// Throughput of `send` on loopback: 100,000 events of about 1 KiB in batches of 256.
/// `cargo test --release --test sink_syslog -- --ignored --nocapture throughput`
#[test]
#[ignore]
fn throughput() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::write(dir.path(), "t", &Ca::new("Vigil Test CA"));
    let rs = Rsyslog::start(dir.path(), &pki, "anon");
    const N: usize = 100_000;
    let evs: Vec<EncodedEvent> = (0..N)
        .map(|i| {
            let mut e = event(i, 900);
            e.event_type = EventType::Flow;
            e
        })
        .collect();
    let bytes: usize = evs.iter().map(|e| e.json.len()).sum();
    let mut s = sink(&rs.url(&format!("ca={}&timeout=30", pki.ca.display())));
    s.connect().unwrap();
    let started = Instant::now();
    send_all(&mut s, &evs, 256);
    let sent = started.elapsed();
    let msgs = rs.wait_for(Duration::from_secs(120), |m| m.len() >= N);
    let written = started.elapsed();
    assert_eq!(msgs.len(), N);
    eprintln!(
        "{N} events, {:.0} B average JSON: send {:.2} s = {:.0} events/s ({:.1} MB/s); \
         all written by rsyslogd after {:.2} s = {:.0} events/s",
        bytes as f64 / N as f64,
        sent.as_secs_f64(),
        N as f64 / sent.as_secs_f64(),
        bytes as f64 / sent.as_secs_f64() / 1e6,
        written.as_secs_f64(),
        N as f64 / written.as_secs_f64()
    );
}

/// Throughput of `send` alone: the same events to an in-process rustls server that reads and
/// discards (what the sink costs, without rsyslogd's parsing and file writing).
/// `cargo test --release --test sink_syslog -- --ignored --nocapture throughput`
#[test]
#[ignore]
fn throughput_to_a_discarding_server() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::write(dir.path(), "d", &Ca::new("Vigil Test CA"));
    let chain = CertificateDer::pem_file_iter(&pki.server_cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&pki.server_key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        let conn = rustls::ServerConnection::new(Arc::new(config)).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, sock);
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0usize;
        while let Ok(n) = tls.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n;
        }
        total
    });

    const N: usize = 100_000;
    let evs: Vec<EncodedEvent> = (0..N)
        .map(|i| {
            let mut e = event(i, 900);
            e.event_type = EventType::Flow;
            e
        })
        .collect();
    let mut s = sink(&format!(
        "syslog+tls://127.0.0.1:{port}?ca={}&timeout=30",
        pki.ca.display()
    ));
    s.connect().unwrap();
    let version = s.tls_version();
    let started = Instant::now();
    send_all(&mut s, &evs, 256);
    let sent = started.elapsed();
    drop(s);
    let total = server.join().unwrap();
    eprintln!(
        "{N} events to a discarding rustls server ({version:?}): send {:.2} s = {:.0} events/s \
         ({:.1} MB/s of frames)",
        sent.as_secs_f64(),
        N as f64 / sent.as_secs_f64(),
        total as f64 / sent.as_secs_f64() / 1e6
    );
}
