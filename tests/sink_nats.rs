//! The NATS JetStream sink against a real `nats-server` (Debian's package, installed by
//! appliance/install-deps.sh): every event stored once on its subject, redelivery
//! de-duplicated, a receiver killed and restarted mid-stream without loss or duplicates,
//! authentication and TLS refusals. Each test runs its own server on a free loopback port with
//! a temporary store, killed when the test ends.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::stream::StorageType;
use async_nats::ConnectOptions;
use vigil::output::nats::{NatsAuth, NatsConfig, NatsSink};
use vigil::output::open_sink;
use vigil::output::sink::{EncodedEvent, EventType, Sink, SinkError, TypeSet};
use vigil::output::spool::{FullPolicy, Spool};
use vigil::output::upstream::Upstream;

mod common;

use common::free_port;
use common::nats::{read_stream, stream_info, NatsServer, Stored};
use common::pki::{Ca, Pki};

// ---------------------------------------------------------------------------------------------
// Events and what the stream holds.

const TYPES: [EventType; 6] = [
    EventType::Alert,
    EventType::Flow,
    EventType::Dns,
    EventType::Http,
    EventType::Tls,
    EventType::Stats,
];

/// Events `range` of a sensor boot, of several types; `pad` bytes of filler in each.
fn events(boot: &str, range: std::ops::Range<u64>, pad: usize) -> Vec<EncodedEvent> {
    range
        .map(|seq| {
            let event_type = TYPES[(seq % TYPES.len() as u64) as usize];
            let json = serde_json::json!({
                "timestamp": format!("2024-05-01T12:00:{:02}.{:06}+0000", seq / 1_000_000 % 60, seq % 1_000_000),
                "event_type": event_type.name(),
                "src_ip": format!("10.0.{}.{}", seq / 256 % 256, seq % 256),
                "dest_port": 443,
                "seq": seq,
                "pad": "x".repeat(pad),
            });
            EncodedEvent {
                id: format!("{boot}-{seq:012}"),
                event_type,
                ts_ns: 1_714_564_800_000_000_000 + seq,
                json: serde_json::to_vec(&json).expect("json"),
            }
        })
        .collect()
}

/// Asserts the stream holds each of `expected` exactly once, on its subject, byte for byte.
fn assert_stream_holds(stored: &[Stored], expected: &[EncodedEvent], prefix: &str, sensor: &str) {
    let mut ids = HashSet::new();
    for m in stored {
        let id = m
            .msg_id
            .as_deref()
            .expect("every message has a Nats-Msg-Id");
        assert!(ids.insert(id.to_string()), "event {id} stored twice");
    }
    assert_eq!(stored.len(), expected.len(), "messages in the stream");
    let by_id: std::collections::HashMap<&str, &Stored> = stored
        .iter()
        .map(|m| (m.msg_id.as_deref().unwrap_or_default(), m))
        .collect();
    for ev in expected {
        let m = by_id
            .get(ev.id.as_str())
            .unwrap_or_else(|| panic!("event {} missing from the stream", ev.id));
        assert_eq!(
            m.subject,
            format!("{prefix}.{sensor}.{}", ev.event_type.name()),
            "subject of {}",
            ev.id
        );
        assert!(m.payload == ev.json, "payload of {} differs", ev.id);
    }
}

fn sink(url: &str) -> NatsSink {
    NatsSink::new(NatsConfig::from_url(url).expect("valid URL")).expect("valid sink")
}

/// Sends everything in batches, each expected to be taken whole.
fn send_all(sink: &mut NatsSink, events: &[EncodedEvent], batch: usize) {
    for chunk in events.chunks(batch) {
        let n = sink.send(chunk).expect("send");
        assert_eq!(n, chunk.len(), "the whole batch acknowledged");
    }
}

fn connect_with_retries(sink: &mut NatsSink, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    let mut attempts = 0;
    loop {
        attempts += 1;
        match sink.connect() {
            Ok(()) => return attempts,
            Err(SinkError::Refused { reason, .. } | SinkError::Rejected { reason, .. }) => {
                panic!("refused: {reason}")
            }
            Err(SinkError::Unavailable { reason, .. }) => {
                assert!(
                    Instant::now() < deadline,
                    "no connection within {within:?}: {reason}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn refusal(result: Result<(), SinkError>) -> String {
    match result {
        Err(SinkError::Refused { reason, .. }) => reason,
        Err(e) => panic!("expected Refused, got {e:?}"),
        Ok(()) => panic!("expected Refused, got a connection"),
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Every event on its subject.

#[test]
fn two_thousand_events_stored_once_each_on_their_subjects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = NatsServer::start(dir.path(), &[]);
    let mut sink = sink(&format!("{}/vigil?sensor=ids01", server.url()));
    assert_eq!(
        sink.name(),
        format!("nats://127.0.0.1:{}/vigil", server.port)
    );
    sink.connect().expect("connect (creates the stream)");
    let evs = events("boot1", 0..2000, 200);
    send_all(&mut sink, &evs, 256);

    let (info, stored) = read_stream(&server.url(), ConnectOptions::new(), "VIGIL");
    assert_eq!(info.config.subjects, vec!["vigil.>".to_string()]);
    assert_eq!(info.config.storage, StorageType::File);
    assert_eq!(info.config.duplicate_window, Duration::from_secs(120));
    assert_eq!(info.state.messages, 2000);
    assert_stream_holds(&stored, &evs, "vigil", "ids01");
    for t in TYPES {
        let subject = format!("vigil.ids01.{}", t.name());
        assert!(
            stored.iter().filter(|m| m.subject == subject).count() >= 333,
            "events on {subject}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Redelivery adds nothing.

#[test]
fn redelivered_events_are_deduplicated_by_msg_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = NatsServer::start(dir.path(), &[]);
    let url = format!(
        "{}/sensors.eu?sensor=ids02&stream=EVENTS&dupe_window=5m",
        server.url()
    );
    let mut sink1 = sink(&url);
    sink1.connect().expect("connect");
    let evs = events("boot2", 0..1000, 100);
    send_all(&mut sink1, &evs[..600], 256);
    // The same events again, and an overlapping range, as a spool replays them.
    send_all(&mut sink1, &evs[..600], 256);
    send_all(&mut sink1, &evs[300..800], 100);
    // A new sink (the sensor restarted) uses the existing stream and re-sends its spool.
    drop(sink1);
    let mut sink2 = sink(&url);
    sink2.connect().expect("connect to the existing stream");
    send_all(&mut sink2, &evs[700..], 256);

    let (info, stored) = read_stream(&server.url(), ConnectOptions::new(), "EVENTS");
    assert_eq!(info.config.subjects, vec!["sensors.eu.>".to_string()]);
    assert_eq!(info.config.duplicate_window, Duration::from_secs(300));
    assert_eq!(
        info.state.messages, 1000,
        "1,000 distinct events, 2,200 sent"
    );
    assert_stream_holds(&stored, &evs, "sensors.eu", "ids02");
}

#[test]
fn an_existing_stream_is_used_as_is_only_if_it_takes_the_subjects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = NatsServer::start(dir.path(), &[]);
    // The operator's stream, with limits and a subject filter of their own.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = async_nats::connect(server.url()).await.expect("connect");
        let js = async_nats::jetstream::new(client);
        for (name, subjects) in [
            ("OPS", vec!["elsewhere.>".to_string()]),
            ("NARROW", vec!["narrow.*.alert".to_string()]),
            ("WIDE", vec!["ids.>".to_string()]),
        ] {
            js.create_stream(async_nats::jetstream::stream::Config {
                name: name.to_string(),
                subjects,
                max_messages: 1_000_000,
                ..Default::default()
            })
            .await
            .expect("create stream");
        }
    });
    let reason = refusal(sink(&format!("{}/vigil?stream=OPS", server.url())).connect());
    assert!(
        reason.contains("elsewhere.>") && reason.contains("vigil.>"),
        "{reason}"
    );
    // A stream taking only alerts does not take the other event types.
    let reason =
        refusal(sink(&format!("{}/narrow?stream=NARROW&sensor=s1", server.url())).connect());
    assert!(reason.contains("narrow.s1.flow"), "{reason}");
    // Creating VIGIL on ids.> would overlap WIDE: said so, not retried blindly.
    let reason = refusal(sink(&format!("{}/ids?sensor=s1", server.url())).connect());
    assert!(reason.contains("another stream"), "{reason}");

    let mut s = sink(&format!("{}/ids?stream=WIDE&sensor=s1", server.url()));
    s.connect().expect("a stream taking ids.> is fine");
    let evs = events("boot3", 0..50, 10);
    send_all(&mut s, &evs, 50);
    let (info, stored) = read_stream(&server.url(), ConnectOptions::new(), "WIDE");
    assert_eq!(
        info.config.max_messages, 1_000_000,
        "operator's limits kept"
    );
    assert_stream_holds(&stored, &evs, "ids", "s1");
}

// ---------------------------------------------------------------------------------------------
// 3. The receiver killed mid-stream and restarted.

#[test]
fn receiver_killed_and_restarted_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = NatsServer::start(dir.path(), &[]);
    let url = format!("{}/vigil?sensor=ids03&timeout=3s", server.url());
    let mut s = sink(&url);
    assert_eq!(s.send_timeout(), Duration::from_secs(3));
    s.connect().expect("connect");
    let total = 4000;
    let evs = events("boot4", 0..total as u64, 300);

    // Kill the server (SIGKILL: no goodbye) once 1,000 events are acknowledged, while the
    // sink goes on sending.
    let acked = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let pid = server.pid();
    let killer = {
        let acked = Arc::clone(&acked);
        let killed = Arc::clone(&killed);
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while acked.load(Ordering::SeqCst) < 1000 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_micros(200));
            }
            // Into the next batch: some of it stored, some acknowledged, some neither.
            std::thread::sleep(Duration::from_millis(3));
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            )
            .expect("kill nats-server");
            killed.store(true, Ordering::SeqCst);
        })
    };

    let mut next = 0usize;
    let mut failures = 0;
    let mut short_sends = 0;
    let mut restarted = false;
    let started = Instant::now();
    while next < total {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "stuck at {next}"
        );
        let batch = &evs[next..(next + 500).min(total)];
        let t0 = Instant::now();
        let result = s.send(batch);
        let took = t0.elapsed();
        assert!(
            took < s.send_timeout() + Duration::from_secs(2),
            "send blocked {took:?}"
        );
        let failed = match result {
            Ok(n) => {
                next += n;
                acked.store(next, Ordering::SeqCst);
                if n < batch.len() {
                    short_sends += 1;
                }
                n < batch.len()
            }
            Err(SinkError::Unavailable { .. }) => true,
            Err(e) => panic!("unexpected {e}"),
        };
        if !failed {
            continue;
        }
        failures += 1;
        // The server is killed only once 1,000 events are acknowledged, and is up again
        // (connected) after the restart: any other failure is the sink's.
        assert!(!restarted, "a send failed after the restart, at {next}");
        assert!(next >= 1000, "a send failed before the kill, at {next}");
        if !restarted {
            // The server stays down for a moment: connect fails, and says it is unavailable.
            while !killed.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
            server.reap();
            match s.connect() {
                Err(SinkError::Unavailable { .. }) => {}
                other => panic!("connect with the server down: {other:?}"),
            }
            match s.send(&evs[next..next + 1]) {
                Err(SinkError::Unavailable { .. }) => {}
                other => panic!("send while not connected: {other:?}"),
            }
            server.restart();
            restarted = true;
        }
        let attempts = connect_with_retries(&mut s, Duration::from_secs(30));
        let info = stream_info(&server.url(), "VIGIL");
        eprintln!(
            "receiver restart: reconnected after {attempts} attempt(s); {} acknowledged, the \
             stream holds {} (stored, not acknowledged: {})",
            next,
            info.state.messages,
            info.state.messages.saturating_sub(next as u64)
        );
        assert!(
            info.state.messages >= next as u64,
            "acknowledged events lost"
        );
        // ... and the loop re-sends from `next`, the first event not acknowledged.
    }
    killer.join().expect("killer thread");
    assert!(restarted, "the server was killed during the run");
    assert!(failures >= 1, "the kill was noticed by a send");
    eprintln!("receiver restart: {failures} failed sends ({short_sends} partial)");

    let (info, stored) = read_stream(&server.url(), ConnectOptions::new(), "VIGIL");
    assert_eq!(info.state.messages, total as u64);
    assert_stream_holds(&stored, &evs, "vigil", "ids03");
}

#[test]
fn an_idle_connection_dropped_as_stale_does_not_lose_events() {
    // Nothing drives the sink's connection between sends: a server that pings every 300 ms
    // and gives up after one unanswered ping drops it while the sink idles.
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("nats.conf");
    std::fs::write(&conf, "ping_interval: \"300ms\"\nping_max: 1\n").expect("write");
    let server = NatsServer::start(dir.path(), &["-c", &conf.display().to_string()]);
    let mut s = sink(&format!("{}/vigil?sensor=ids08&timeout=3s", server.url()));
    s.connect().expect("connect");
    let evs = events("boot8", 0..200, 50);
    send_all(&mut s, &evs[..100], 100);
    std::thread::sleep(Duration::from_secs(2));
    let t0 = Instant::now();
    let mut next = 100;
    match s.send(&evs[100..]) {
        Ok(n) => next += n,
        Err(SinkError::Unavailable { reason, .. }) => eprintln!("after idling: {reason}"),
        Err(e) => panic!("unexpected {e}"),
    }
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "send after idling blocked"
    );
    eprintln!(
        "after idling: {} of 100 taken without a reconnect by the caller",
        next - 100
    );
    if next < evs.len() {
        connect_with_retries(&mut s, Duration::from_secs(10));
        send_all(&mut s, &evs[next..], 100);
    }
    let (_, stored) = read_stream(&server.url(), ConnectOptions::new(), "VIGIL");
    assert_stream_holds(&stored, &evs, "vigil", "ids08");
}

#[test]
fn an_event_over_max_payload_is_refused_for_good_and_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("nats.conf");
    std::fs::write(&conf, "max_payload: 4096\n").expect("write");
    let server = NatsServer::start(dir.path(), &["-c", &conf.display().to_string()]);
    let mut s = sink(&format!("{}/vigil?sensor=ids10", server.url()));
    s.connect().expect("connect");
    let mut evs = events("boot10", 0..20, 100);
    evs[12] = events("boot10", 12..13, 5000).remove(0);
    match s.send(&evs) {
        Err(SinkError::Rejected { reason, taken, .. }) => {
            assert_eq!(taken, 12);
            assert!(reason.contains("max_payload"), "{reason}");
            assert!(reason.contains(&evs[12].id), "{reason}");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    // The connection stays: the events after the refused one go on it.
    assert_eq!(s.send(&evs[13..]).expect("the rest"), 7);
    assert_eq!(stream_info(&server.url(), "VIGIL").state.messages, 19);

    // The sender skips it, counts it and delivers the rest.
    let up = Upstream::start(
        open_sink(&format!("{}/vigil?sensor=ids11", server.url())).expect("sink"),
        Spool::open(&dir.path().join("spool"), 1 << 20, FullPolicy::DropOldest).expect("spool"),
        TypeSet::of(&[]),
        1 << 20,
    )
    .expect("upstream");
    let evs = {
        let mut evs = events("boot11", 0..20, 100);
        evs[5] = events("boot11", 5..6, 5000).remove(0);
        evs
    };
    up.offer(&evs);
    let deadline = Instant::now() + Duration::from_secs(20);
    while up.status().acked + up.status().rejected < 20 {
        assert!(Instant::now() < deadline, "{:?}", up.status());
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = up.finish(Duration::from_secs(5));
    assert_eq!((status.acked, status.rejected), (19, 1), "{status:?}");
    assert_eq!(status.spool.events, 0);
    assert_eq!(stream_info(&server.url(), "VIGIL").state.messages, 38);
}

#[test]
fn unreachable_server_is_unavailable_and_send_without_connection_fails() {
    let port = free_port();
    let mut s = sink(&format!("nats://127.0.0.1:{port}/vigil?connect_timeout=2s"));
    let t0 = Instant::now();
    match s.connect() {
        Err(SinkError::Unavailable { reason, .. }) => eprintln!("unreachable: {reason}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(t0.elapsed() < Duration::from_secs(5));
    match s.send(&events("b", 0..1, 0)) {
        Err(SinkError::Unavailable { .. }) => {}
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert_eq!(s.send(&[]).expect("nothing to send"), 0);
}

#[test]
fn a_server_without_jetstream_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = NatsServer::start_with(dir.path(), false, &[]);
    let reason = refusal(sink(&format!("{}/vigil", server.url())).connect());
    assert!(reason.contains("JetStream is not enabled"), "{reason}");
}

// ---------------------------------------------------------------------------------------------
// 4. Authentication and TLS.

#[test]
fn user_and_password_are_required_by_the_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = NatsServer::start(dir.path(), &["--user", "vigil", "--pass", "s3cret/+&"]);
    let base = format!("{}/vigil?sensor=ids04", server.url());

    let reason = refusal(sink(&base).connect());
    assert!(reason.contains("authentication failed"), "{reason}");
    let reason = refusal(sink(&format!("{base}&user=vigil&password=wrong")).connect());
    assert!(reason.contains("authentication failed"), "{reason}");
    let reason = refusal(sink(&format!("{base}&token=s3cret")).connect());
    assert!(reason.contains("authentication failed"), "{reason}");

    // The password percent-encoded in the URL, as special characters must be.
    let url = format!("{base}&user=vigil&password=s3cret%2F%2B%26");
    let cfg = NatsConfig::from_url(&url).expect("url");
    assert!(
        !format!("{cfg:?}").contains("s3cret"),
        "Debug shows no password"
    );
    let mut s = NatsSink::new(cfg).expect("sink");
    s.connect().expect("accepted with the password");
    let evs = events("boot5", 0..100, 10);
    send_all(&mut s, &evs, 64);
    let (_, stored) = read_stream(
        &server.url(),
        ConnectOptions::with_user_and_password("vigil".into(), "s3cret/+&".into()),
        "VIGIL",
    );
    assert_stream_holds(&stored, &evs, "vigil", "ids04");
}

#[test]
fn nkey_seed_file_authenticates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let user = nkeys::KeyPair::new_user();
    let seed_file = dir.path().join("vigil.nk");
    std::fs::write(&seed_file, format!("{}\n", user.seed().expect("seed"))).expect("write");
    let conf = dir.path().join("nats.conf");
    std::fs::write(
        &conf,
        format!(
            "authorization {{ users = [ {{ nkey: \"{}\" }} ] }}\n",
            user.public_key()
        ),
    )
    .expect("write");
    let server = NatsServer::start(dir.path(), &["-c", &conf.display().to_string()]);
    let base = format!("{}/vigil?sensor=ids09", server.url());

    let reason = refusal(sink(&base).connect());
    assert!(reason.contains("authentication failed"), "{reason}");
    // Somebody else's key.
    let other = dir.path().join("other.nk");
    let other_seed = nkeys::KeyPair::new_user().seed().expect("seed");
    std::fs::write(&other, other_seed).expect("write");
    let reason = refusal(sink(&format!("{base}&nkey={}", other.display())).connect());
    assert!(reason.contains("authentication failed"), "{reason}");

    let mut s = sink(&format!("{base}&nkey={}", seed_file.display()));
    s.connect().expect("accepted with the NKey");
    send_all(&mut s, &events("boot9", 0..10, 10), 10);
}

/// The test CA's files, and a CA that signed nothing the servers use.
fn pki(dir: &Path) -> (Pki, String) {
    let pki = Pki::write(dir, "n", &Ca::new("Vigil test CA"));
    let other = Pki::write(dir, "other", &Ca::new("Somebody else's CA"));
    (pki, other.ca.display().to_string())
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn tls_verified_against_the_ca_and_refused_otherwise() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (pki, other_ca) = pki(dir.path());
    let server = NatsServer::start(
        dir.path(),
        &[
            "--tls",
            "--tlscert",
            &path(&pki.server_cert),
            "--tlskey",
            &path(&pki.server_key),
        ],
    );
    let base = format!("{}/vigil?sensor=ids05", server.url());

    let mut s = sink(&format!("{base}&ca={}", path(&pki.ca)));
    assert!(s.config().tls.required, "ca= implies TLS");
    assert_eq!(s.name(), format!("tls://127.0.0.1:{}/vigil", server.port));
    s.connect().expect("TLS verified against our CA");
    let evs = events("boot6", 0..100, 10);
    send_all(&mut s, &evs, 100);

    let reason = refusal(sink(&format!("{base}&ca={}", other_ca)).connect());
    assert!(reason.starts_with("TLS"), "{reason}");
    assert!(reason.contains("UnknownIssuer"), "{reason}");
    // The system roots do not know our test CA either; the server asks for TLS.
    let reason = refusal(sink(&base).connect());
    assert!(reason.starts_with("TLS"), "{reason}");

    let tls = rustls_server_read_options(&pki);
    let (_, stored) = read_stream(&format!("tls://127.0.0.1:{}", server.port), tls, "VIGIL");
    assert_stream_holds(&stored, &evs, "vigil", "ids05");
}

fn rustls_server_read_options(pki: &Pki) -> ConnectOptions {
    ConnectOptions::new()
        .add_root_certificates(pki.ca.clone())
        .require_tls(true)
}

#[test]
fn tls_required_by_the_sink_is_refused_by_a_plaintext_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = NatsServer::start(dir.path(), &[]);
    let t0 = Instant::now();
    let result = sink(&format!(
        "{}/vigil?tls=true&connect_timeout=3s",
        server.url()
    ))
    .connect();
    assert!(t0.elapsed() < Duration::from_secs(5));
    match result {
        Err(SinkError::Refused { reason, .. }) => eprintln!("plaintext server: {reason}"),
        other => panic!("expected Refused, got {other:?}"),
    }
}

#[test]
fn client_certificate_required_by_the_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (pki, _) = pki(dir.path());
    let server = NatsServer::start(
        dir.path(),
        &[
            "--tlsverify",
            "--tlscert",
            &path(&pki.server_cert),
            "--tlskey",
            &path(&pki.server_key),
            "--tlscacert",
            &path(&pki.ca),
        ],
    );
    let base = format!("{}/vigil?sensor=ids05&ca={}", server.url(), path(&pki.ca));
    let reason = refusal(sink(&base).connect());
    assert!(reason.starts_with("TLS"), "{reason}");

    let mut s = sink(&format!(
        "{base}&cert={}&key={}",
        path(&pki.client_cert),
        path(&pki.client_key)
    ));
    s.connect().expect("accepted with the client certificate");
    send_all(&mut s, &events("boot7", 0..10, 10), 10);
}

// ---------------------------------------------------------------------------------------------
// Configuration from the URL.

#[test]
fn url_defaults_and_parameters() {
    let cfg = NatsConfig::from_url("nats://nats.example:4333").expect("url");
    assert_eq!((cfg.host.as_str(), cfg.port), ("nats.example", 4333));
    assert_eq!(cfg.prefix, "vigil");
    assert_eq!(cfg.stream, "VIGIL");
    assert_eq!(cfg.subject_template, "{prefix}.{sensor}.{event_type}");
    assert_eq!(cfg.dupe_window, Duration::from_secs(120));
    assert_eq!(cfg.send_timeout, Duration::from_secs(10));
    assert!(!cfg.sensor.is_empty() && !cfg.sensor.contains('.'));
    assert_eq!(cfg.auth, NatsAuth::None);
    assert!(!cfg.tls.required);
    assert_eq!(NatsConfig::from_url("nats://h").expect("url").port, 4222);

    let cfg = NatsConfig::from_url(
        "tls://10.1.2.3/org.ids?stream=IDS&sensor=edge-7&subject=ids.{event_type}.{sensor}\
         &dupe_window=10m&timeout=500ms&token=abc",
    )
    .expect("url");
    assert_eq!(cfg.prefix, "org.ids");
    assert_eq!(cfg.stream, "IDS");
    assert_eq!(cfg.sensor, "edge-7");
    assert!(cfg.tls.required);
    assert_eq!(cfg.dupe_window, Duration::from_secs(600));
    assert_eq!(cfg.send_timeout, Duration::from_millis(500));
    assert_eq!(cfg.auth, NatsAuth::Token("abc".into()));
    assert_eq!(
        cfg.subject_for(EventType::Alert).expect("subject"),
        "ids.alert.edge-7"
    );
    assert_eq!(cfg.display_name(), "tls://10.1.2.3:4222/org.ids");
}

#[test]
fn url_errors_are_clear() {
    let err = |url: &str| NatsConfig::from_url(url).expect_err(url);
    assert!(err("nats://h/v?strem=X").contains("unknown parameter strem="));
    assert!(err("nats://h/v?subject={prefix}.{host}").contains("unknown placeholder {host}"));
    assert!(err("nats://h/v?subject={prefix}.{sensor").contains("without a closing"));
    assert!(err("nats://h/v?subject={prefix}..x").contains("empty token"));
    assert!(err("nats://h/v?subject={prefix}.*").contains("wildcard"));
    let e = err("nats://h/v?creds=/nonexistent/vigil.creds");
    assert!(
        e.contains("creds=/nonexistent/vigil.creds") && e.contains("cannot read"),
        "{e}"
    );
    assert!(err("nats://h/v?ca=/nonexistent/ca.pem").contains("/nonexistent/ca.pem"));
    assert!(err("nats://h/v?user=u").contains("password="));
    assert!(err("nats://h/v?user=u&password=p&token=t").contains("one way to authenticate"));
    assert!(err("nats://u:p@h/v").contains("parameters"));
    assert!(err("http://h/v").contains("scheme"));
    assert!(err("nats://h/a/b").contains("dots"));
    assert!(err("nats://h/v?stream=A.B").contains("stream name"));
    assert!(err("nats://h/v?sensor=a.b").contains("one subject token"));
    assert!(err("nats://h/v?dupe_window=2x").contains("duration"));
    assert!(err("nats://h/v?stream=A&stream=B").contains("twice"));
    assert!(err("nats://h/v?tls=maybe").contains("true or false"));

    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "not a certificate\n").expect("write");
    let e = err(&format!("nats://h/v?ca={}&tls=false", ca.display()));
    assert!(e.contains("tls=false"), "{e}");
    // Readable but not PEM: the sink names the file.
    let cfg = NatsConfig::from_url(&format!("nats://h/v?ca={}", ca.display())).expect("url");
    let e = NatsSink::new(cfg)
        .err()
        .expect("no certificate in the file");
    assert!(e.contains(&ca.display().to_string()), "{e}");
    let creds = dir.path().join("bad.creds");
    std::fs::write(&creds, "garbage\n").expect("write");
    let cfg = NatsConfig::from_url(&format!("nats://h/v?creds={}", creds.display())).expect("url");
    let e = NatsSink::new(cfg).err().expect("bad creds file");
    assert!(e.contains(&creds.display().to_string()), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Throughput: `cargo test --release --test sink_nats -- --ignored --nocapture`.

#[test]
#[ignore = "measurement: 100k events of 1 KiB, a few seconds"]
fn throughput_100k_events_of_1kib_in_batches_of_256() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = NatsServer::start(dir.path(), &[]);
    let mut s = sink(&format!("{}/vigil?sensor=bench", server.url()));
    s.connect().expect("connect");
    let evs = events("bench", 0..100_000, 880);
    let avg = evs.iter().map(|e| e.json.len()).sum::<usize>() / evs.len();
    send_all(&mut s, &evs[..2560], 256); // warm-up: stream created, files open
    let t0 = Instant::now();
    send_all(&mut s, &evs[2560..], 256);
    let secs = t0.elapsed().as_secs_f64();
    let n = (evs.len() - 2560) as f64;
    eprintln!(
        "NATS JetStream sink: {n} events of {avg} B in batches of 256, acknowledged: \
         {secs:.2} s, {:.0} events/s, {:.1} MB/s",
        n / secs,
        n * avg as f64 / secs / 1e6
    );
    let info = stream_info(&server.url(), "VIGIL");
    assert_eq!(info.state.messages, 100_000);
}
