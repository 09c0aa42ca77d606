//! Upstream delivery end to end: `vigil replay --output nats://…` into a real nats-server
//! (JetStream) that the test stops and restarts mid-stream, and a Vigil killed with SIGKILL
//! while it spools: every event of every run's eve.json arrives exactly once. The same with
//! `--output syslog+tls://…` into a real rsyslogd stopped and started again mid-stream: every
//! event arrives at least once.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::nats::{read_stream, NatsServer};
use common::pki::{Ca, Pki};
use common::rsyslog::Rsyslog;

fn eve_events(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("eve.json"))
        .unwrap_or_default()
        .lines()
        // The file may be read while it is written: a torn last line is not an event yet.
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn config(dir: &Path, drain_secs: u32) -> PathBuf {
    let path = dir.join(format!("vigil-{drain_secs}.toml"));
    std::fs::write(
        &path,
        format!(
            "[spool]\ndir = \"{}\"\ndrain_timeout_secs = {drain_secs}\nqueue_bytes = 16384\n",
            dir.join("spool").display()
        ),
    )
    .unwrap();
    path
}

fn replay_cmd(pcap: &Path, out: &Path, url: &str, config: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.arg("replay")
        .arg(pcap)
        .arg("--eve-dir")
        .arg(out)
        .args(["--output", url, "-q", "--workers", "1"])
        .arg("--config")
        .arg(config)
        .env("VIGIL_LOG", "info")
        .stdout(Stdio::null());
    cmd
}

/// Replays into `out` with the receiver down and kills the sensor with SIGKILL once every event
/// is written (and so offered to the sink), checking they wait in the spool under `dir`.
fn killed_while_spooling(pcap: &Path, out: &Path, url: &str, config: &Path, dir: &Path) {
    let mut child = replay_cmd(pcap, out, url, config)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The final stats event is written last: every event has been offered to the sink by then.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !eve_events(out).iter().any(|e| e["event_type"] == "stats") {
        assert!(
            Instant::now() < deadline,
            "replay never finished its events"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(spooled_segments(dir) > 0, "events spooled on disk");
}

fn spooled_segments(dir: &Path) -> usize {
    walk(&dir.join("spool"))
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .count()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.filter_map(Result::ok) {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn nats_gets_every_event_once_through_outages_and_a_killed_sensor() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("traffic.pcap");
    common::generate(&pcap, &vigil_pcapgen::GenConfig::new(11, 2 << 20));
    let mut server = NatsServer::start(dir.path(), &[]);
    let url = format!("{}/vigil?stream=VIGIL&sensor=test", server.url());
    let quick = config(dir.path(), 30);

    // 1. Receiver up: everything arrives.
    let out1 = dir.path().join("run1");
    let status = replay_cmd(&pcap, &out1, &url, &quick).status().unwrap();
    assert!(status.success());
    let mut expected = eve_events(&out1).len();
    assert!(expected > 500, "{expected} events");

    // 2. Receiver stopped while the sensor goes on, then started again: the sender spools,
    //    reconnects and delivers everything in order before the replay exits.
    server.kill();
    let out2 = dir.path().join("run2");
    let mut child = replay_cmd(&pcap, &out2, &url, &quick)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while eve_events(&out2).len() < 100 {
        assert!(Instant::now() < deadline, "replay wrote no events");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    server.restart();
    let status = child.wait().unwrap();
    assert!(status.success());
    expected += eve_events(&out2).len();
    assert_eq!(spooled_segments(dir.path()), 0, "all delivered before exit");

    // 3. Receiver down and the sensor killed with SIGKILL while it spools: the next process
    //    delivers the spool first.
    server.kill();
    let out3 = dir.path().join("run3");
    let patient = config(dir.path(), 120);
    killed_while_spooling(&pcap, &out3, &url, &patient, dir.path());
    expected += eve_events(&out3).len();
    server.restart();
    let out4 = dir.path().join("run4");
    let status = replay_cmd(&pcap, &out4, &url, &quick).status().unwrap();
    assert!(status.success());
    expected += eve_events(&out4).len();
    assert_eq!(spooled_segments(dir.path()), 0, "the spool was delivered");

    let (info, stored) = read_stream(&server.url(), async_nats::ConnectOptions::new(), "VIGIL");
    let mut ids: Vec<String> = stored.iter().filter_map(|m| m.msg_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), stored.len(), "no event stored twice");
    assert_eq!(
        info.state.messages as usize, expected,
        "every event of the four runs' eve.json files, none missing, none duplicated"
    );
}

#[test]
fn syslog_gets_every_event_through_a_receiver_restart() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("traffic.pcap");
    common::generate(&pcap, &vigil_pcapgen::GenConfig::new(12, 32 << 20));
    let pki = Pki::write(dir.path(), "s", &Ca::new("Vigil Test CA"));
    let mut rs = Rsyslog::start(dir.path(), &pki, "anon");
    let url = rs.url(&format!("ca={}&timeout=3", pki.ca.display()));
    let patient = config(dir.path(), 120);

    let out = dir.path().join("run");
    let mut child = replay_cmd(&pcap, &out, &url, &patient)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Once events arrive, Vigil is frozen while rsyslogd stops, so the stop falls mid-stream
    // (frames in flight, most events still to come), then both go on.
    let deadline = Instant::now() + Duration::from_secs(60);
    while rs.msgs().is_empty() {
        assert!(Instant::now() < deadline, "no event reached rsyslogd");
        std::thread::sleep(Duration::from_millis(2));
    }
    let vigil = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(vigil, nix::sys::signal::Signal::SIGSTOP).unwrap();
    rs.stop();
    let before_stop = rs.msgs().len();
    nix::sys::signal::kill(vigil, nix::sys::signal::Signal::SIGCONT).unwrap();
    std::thread::sleep(Duration::from_millis(700));
    rs.launch();
    let status = child.wait().unwrap();
    assert!(status.success());
    assert_eq!(spooled_segments(dir.path()), 0, "all delivered before exit");

    let eve = std::fs::read(out.join("eve.json")).unwrap();
    let want: Vec<&[u8]> = eve
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert!(want.len() > 500, "{} events", want.len());
    assert!(
        before_stop < want.len() / 2,
        "rsyslogd stopped mid-stream: {before_stop} of {} received before",
        want.len()
    );
    // Every event, not just as many messages: the resent frames are duplicates, and rsyslogd
    // writes its file a second late, so a count can be reached before the last events land.
    let msgs = rs.wait_for(Duration::from_secs(60), |m| {
        let got: std::collections::HashSet<&[u8]> = m.iter().map(Vec::as_slice).collect();
        want.iter().all(|w| got.contains(w))
    });
    let mut counts: std::collections::HashMap<&[u8], usize> = std::collections::HashMap::new();
    for m in &msgs {
        *counts.entry(m.as_slice()).or_default() += 1;
    }
    let missing = want.iter().filter(|l| !counts.contains_key(*l)).count();
    let duplicates: usize = counts.values().map(|c| c - 1).sum();
    eprintln!(
        "syslog: {} events in eve.json, {before_stop} received before the stop, {} messages in \
         all, {missing} missing, {duplicates} duplicates (frames written again after the \
         reconnect)",
        want.len(),
        msgs.len()
    );
    assert_eq!(missing, 0, "every event of eve.json reached rsyslogd");
    assert!(
        counts.keys().all(|m| want.contains(m)),
        "nothing but eve.json's events"
    );

    // Receiver down and Vigil killed with SIGKILL while it spools: the next process delivers
    // the spool first.
    rs.stop();
    let out2 = dir.path().join("run2");
    killed_while_spooling(&pcap, &out2, &url, &patient, dir.path());
    rs.launch();
    let out3 = dir.path().join("run3");
    let status = replay_cmd(&pcap, &out3, &url, &patient).status().unwrap();
    assert!(status.success());
    assert_eq!(spooled_segments(dir.path()), 0, "the spool was delivered");
    // The runs write the same events (same pcap), so count: every line as often as the three
    // eve.json files have it, at least.
    let mut want: std::collections::HashMap<Vec<u8>, usize> = std::collections::HashMap::new();
    for d in [&out, &out2, &out3] {
        for line in std::fs::read(d.join("eve.json"))
            .unwrap()
            .split(|&b| b == b'\n')
        {
            if !line.is_empty() {
                *want.entry(line.to_vec()).or_default() += 1;
            }
        }
    }
    let short = |msgs: &[Vec<u8>]| -> usize {
        let mut got: std::collections::HashMap<&[u8], usize> = std::collections::HashMap::new();
        for m in msgs {
            *got.entry(m.as_slice()).or_default() += 1;
        }
        want.iter()
            .map(|(l, n)| n.saturating_sub(got.get(l.as_slice()).copied().unwrap_or(0)))
            .sum()
    };
    let all = rs.wait_for(Duration::from_secs(60), |m| short(m) == 0);
    let missing = short(&all);
    assert_eq!(
        missing, 0,
        "the killed run's spooled events and the next run's all arrived"
    );
}
