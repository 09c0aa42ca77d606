//! Delivery throughput: how many events per second each output takes, with real receivers on
//! loopback, whether the sensor side ever waits for them, what the disk spool writes and reads
//! per second, and what zstd makes of EVE JSON.
//!
//!   cargo bench --bench delivery -- [--events N] [--rate R] [--pcap FILE] [--only LIST]
//!
//! The events are real: the EVE lines `vigil replay` writes for an event-heavy pcap made by the
//! project's generator (mostly DNS, so many small flows), cycled with fresh ids up to N
//! (default 500,000).
//!
//! - **file**: `vigil replay` of that pcap, 1 worker. The output thread renders every event
//!   and writes `eve.json`; its capacity is events / the time it was busy (not waiting for
//!   events), and the workers report how often they found its queue full.
//! - **nats**, **syslog**: the events are offered to a sink's `Upstream` (queue, disk spool,
//!   sender thread: the daemon's own path) in batches of 256, as the output thread offers
//!   them. A real nats-server (JetStream, file storage) or a real rsyslogd (imtcp over TLS,
//!   writing one file asynchronously) receives them. First unpaced (the most the sink
//!   delivers, with the spool absorbing the rest), then paced at R events/s (default 100,000)
//!   to show it keeps up without spooling. Reported: events/s from the first offer to the last
//!   event the sink handed over (NATS: acknowledged, so stored; syslog: written to TLS), the
//!   same to the last line rsyslogd wrote (end to end), the longest `offer` call, the
//!   receiver's count, which must equal N, and the CPU time per event of the receiver, the
//!   sink's thread and the offering thread (all share the machine's cores).
//! - **spool**: N events appended in batches of 256, then read back and advanced past; events/s,
//!   MB/s of JSON, and the on-disk size against the JSON's.
//! - **zstd**: the ratio on the whole `eve.json` at the level rotated files use.
//!
//! `--only file,nats,syslog,spool` limits the parts. Needs nats-server and rsyslogd
//! (`appliance/install-deps.sh`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::cell::Cell;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::nats::{stream_info, NatsServer};
use common::pki::{Ca, Pki};
use common::rsyslog::Rsyslog;
use vigil::output::sink::{EncodedEvent, EventType, TypeSet};
use vigil::output::spool::{FullPolicy, Spool};
use vigil::output::upstream::Upstream;

/// The daemon's allocator (`src/main.rs`), so the sinks are measured as they run there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const OFFER_BATCH: usize = 256;

struct Args {
    events: usize,
    rate: f64,
    pcap: Option<PathBuf>,
    only: Vec<String>,
    /// Extra NATS URL parameters, e.g. `&dupe_window=30s`.
    nats_params: String,
    /// Bytes an upstream holds in memory before it spools (`[spool] queue_bytes`).
    queue_bytes: u64,
}

fn parse_args() -> Args {
    let mut args = Args {
        events: 500_000,
        rate: 100_000.0,
        pcap: None,
        only: ["file", "spool", "nats", "syslog"]
            .map(String::from)
            .to_vec(),
        nats_params: String::new(),
        queue_bytes: 64 << 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--events" => args.events = it.next().and_then(|v| v.parse().ok()).expect("--events N"),
            "--rate" => args.rate = it.next().and_then(|v| v.parse().ok()).expect("--rate R"),
            "--pcap" => args.pcap = Some(PathBuf::from(it.next().expect("--pcap FILE"))),
            "--only" => {
                args.only = it
                    .next()
                    .expect("--only LIST")
                    .split(',')
                    .map(String::from)
                    .collect()
            }
            "--queue-bytes" => {
                args.queue_bytes = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--queue-bytes N")
            }
            "--nats-params" => args.nats_params = it.next().expect("--nats-params &K=V…"),
            // cargo bench passes --bench.
            "--bench" => {}
            other => panic!("unknown argument {other}; see the header of benches/delivery.rs"),
        }
    }
    args
}

fn main() {
    let args = parse_args();
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = match &args.pcap {
        Some(p) => p.clone(),
        None => event_heavy_pcap(dir.path()),
    };
    println!(
        "# Delivery benchmark: {} events, pcap {}",
        args.events,
        pcap.display()
    );

    let eve_dir = dir.path().join("file");
    let file = replay_file_sink(&pcap, &eve_dir, 3);
    let eve = std::fs::read(eve_dir.join("eve.json")).expect("eve.json");
    let templates = templates(&eve);
    let events = cycle(&templates, args.events);
    let json_bytes: usize = events.iter().map(|e| e.json.len()).sum();
    let avg = json_bytes as f64 / events.len() as f64;
    println!(
        "events: {} templates from eve.json ({}), {avg:.0} B of JSON on average",
        templates.len(),
        type_mix(&templates)
    );

    let mut rows: Vec<String> = Vec::new();
    if args.only.iter().any(|o| o == "file") {
        rows.push(format!(
            "| file (`eve.json`, rendering included) | {:.0} | {} events in {:.3} s busy, workers waited {} times |",
            file.events as f64 / file.busy_secs,
            file.events,
            file.busy_secs,
            file.waits
        ));
    }
    if args.only.iter().any(|o| o == "spool") {
        let s = spool_rates(dir.path(), &events);
        rows.push(format!(
            "| spool write | {:.0} | {:.0} MB/s of JSON; on disk {:.1} MB for {:.1} MB of JSON (zstd ratio {:.1}) |",
            s.write_eps,
            s.write_eps * avg / 1e6,
            s.disk_bytes as f64 / 1e6,
            json_bytes as f64 / 1e6,
            json_bytes as f64 / s.disk_bytes as f64
        ));
        rows.push(format!(
            "| spool read + advance | {:.0} | {:.0} MB/s of JSON |",
            s.read_eps,
            s.read_eps * avg / 1e6
        ));
        let started = Instant::now();
        let compressed = zstd::encode_all(&eve[..], 3).expect("zstd");
        rows.push(format!(
            "| zstd level 3 on eve.json (rotation) | – | ratio {:.1} ({:.1} MB → {:.2} MB, {:.0} MB/s) |",
            eve.len() as f64 / compressed.len() as f64,
            eve.len() as f64 / 1e6,
            compressed.len() as f64 / 1e6,
            eve.len() as f64 / started.elapsed().as_secs_f64() / 1e6
        ));
    }
    if args.only.iter().any(|o| o == "nats") {
        for rate in [None, Some(args.rate)] {
            let sub = dir.path().join(format!("nats-{}", rate.is_some()));
            std::fs::create_dir_all(&sub).unwrap();
            let server = NatsServer::start(&sub, &[]);
            let url = format!("{}/vigil?sensor=bench{}", server.url(), args.nats_params);
            let run = deliver(
                &sub,
                &url,
                &events,
                rate,
                args.queue_bytes,
                None,
                server.pid(),
            );
            let stored = stream_info(&server.url(), "VIGIL").state.messages;
            assert_eq!(
                stored,
                events.len() as u64,
                "NATS stream holds every event once"
            );
            rows.push(run.row("NATS JetStream", stored));
        }
    }
    if args.only.iter().any(|o| o == "syslog") {
        for rate in [None, Some(args.rate)] {
            let sub = dir.path().join(format!("syslog-{}", rate.is_some()));
            std::fs::create_dir_all(&sub).unwrap();
            let pki = Pki::write(&sub, "b", &Ca::new("Vigil Bench CA"));
            let rs = Rsyslog::start_for_throughput(&sub, &pki);
            let url = rs.url(&format!("ca={}", pki.ca.display()));
            let want = events.len();
            let msgs = LineCounter::new(sub.join("msgs.log"));
            // rsyslogd's count is the one that matters: the sink's is what it wrote to TCP.
            let has_all = || msgs.count() >= want;
            let run = deliver(
                &sub,
                &url,
                &events,
                rate,
                args.queue_bytes,
                Some(&has_all),
                rs.pid(),
            );
            let written = msgs.count();
            assert_eq!(written, want, "rsyslogd wrote every event");
            rows.push(run.row("syslog over TLS → rsyslogd", written as u64));
        }
    }
    println!();
    println!("| output | events/s | notes |");
    println!("|---|---|---|");
    for r in rows {
        println!("{r}");
    }
}

/// A pcap of mostly DNS (many small flows: an event-heavy load), made by the generator.
fn event_heavy_pcap(dir: &Path) -> PathBuf {
    let path = dir.join("event-heavy.pcap");
    let mut cfg = vigil_pcapgen::GenConfig::new(21, 96 << 20);
    cfg.mix = vigil_pcapgen::Mix {
        http: 6,
        tls: 4,
        dns: 84,
        other_udp: 6,
        icmp: 0,
    };
    cfg.flows_per_sec = 20_000.0;
    common::generate(&path, &cfg);
    path
}

struct FileRun {
    events: u64,
    busy_secs: f64,
    waits: u64,
}

/// Best of `runs` replays by the output thread's busy time.
fn replay_file_sink(pcap: &Path, eve_dir: &Path, runs: usize) -> FileRun {
    let mut best: Option<FileRun> = None;
    for _ in 0..runs {
        let _ = std::fs::remove_dir_all(eve_dir);
        let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .arg("replay")
            .arg(pcap)
            // One worker: on a 2-core machine the output thread then has a core of its own,
            // so its busy time measures its work, not the scheduler.
            .args(["--workers", "1", "--eve-dir"])
            .arg(eve_dir)
            .output()
            .expect("run vigil");
        let text = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "vigil replay failed: {text}");
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with("events:"))
            .unwrap_or_else(|| panic!("no events line in: {text}"));
        // "events: N written to PATH (output thread busy S s, E events/s); workers waited W times (M ms)"
        let num_after = |key: &str| -> f64 {
            let rest =
                &line[line.find(key).unwrap_or_else(|| panic!("{key} in {line}")) + key.len()..];
            rest.trim_start()
                .split(|c: char| !(c.is_ascii_digit() || c == '.'))
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("number after {key} in {line}"))
        };
        let run = FileRun {
            events: num_after("events:") as u64,
            busy_secs: num_after("busy"),
            waits: num_after("waited for the output") as u64,
        };
        eprintln!("file: {line}");
        if best.as_ref().is_none_or(|b| run.busy_secs < b.busy_secs) {
            best = Some(run);
        }
    }
    best.expect("at least one run")
}

/// The events of an eve.json, without its stats events.
fn templates(eve: &[u8]) -> Vec<EncodedEvent> {
    eve.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|line| {
            let v: serde_json::Value = serde_json::from_slice(line).expect("EVE JSON");
            let t = EventType::from_name(v["event_type"].as_str()?)?;
            (t != EventType::Stats).then(|| EncodedEvent {
                id: String::new(),
                event_type: t,
                ts_ns: 0,
                json: line.to_vec(),
            })
        })
        .collect()
}

fn type_mix(events: &[EncodedEvent]) -> String {
    let mut counts = std::collections::BTreeMap::new();
    for e in events {
        *counts.entry(e.event_type.name()).or_insert(0usize) += 1;
    }
    counts
        .iter()
        .map(|(t, n)| format!("{t} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `n` events cycling through the templates, each with its own id and a current timestamp.
fn cycle(templates: &[EncodedEvent], n: usize) -> Vec<EncodedEvent> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    (0..n)
        .map(|i| {
            let t = &templates[i % templates.len()];
            EncodedEvent {
                id: format!("bench0000000000000000000000000000-{i:012}"),
                event_type: t.event_type,
                ts_ns: now,
                json: t.json.clone(),
            }
        })
        .collect()
}

struct SpoolRates {
    write_eps: f64,
    read_eps: f64,
    disk_bytes: u64,
}

fn spool_rates(dir: &Path, events: &[EncodedEvent]) -> SpoolRates {
    let spool_dir = dir.join("spool-bench");
    let mut spool = Spool::open(&spool_dir, 64 << 30, FullPolicy::DropOldest).expect("spool");
    let started = Instant::now();
    for batch in events.chunks(OFFER_BATCH) {
        spool.append(batch).expect("append");
    }
    let write = started.elapsed().as_secs_f64();
    let disk_bytes = spool.stats().bytes;
    let started = Instant::now();
    let mut read = 0usize;
    while let Some(chunk) = spool.peek().expect("peek") {
        read += chunk.events.len();
        spool.advance(&chunk).expect("advance");
    }
    let read_secs = started.elapsed().as_secs_f64();
    assert_eq!(read, events.len(), "the spool gives back every event");
    let _ = std::fs::remove_dir_all(&spool_dir);
    SpoolRates {
        write_eps: events.len() as f64 / write,
        read_eps: events.len() as f64 / read_secs,
        disk_bytes,
    }
}

struct DeliveryRun {
    rate: Option<f64>,
    n: usize,
    /// First offer to the last event the sink had acknowledged (JetStream) or written to TLS.
    sink_secs: f64,
    /// First offer to the last event the receiver shows.
    secs: f64,
    offer_max: Duration,
    offered_secs: f64,
    spooled: u64,
    /// CPU seconds over the run: the receiver process, the sink's thread, the offering thread.
    receiver_cpu: f64,
    sink_cpu: f64,
    producer_cpu: f64,
}

impl DeliveryRun {
    /// The events/s column is the sink's rate; the receiver's own view follows in the notes.
    fn row(&self, sink: &str, received: u64) -> String {
        let pace = match self.rate {
            None => "unpaced".to_string(),
            Some(r) => format!("paced at {r:.0}/s"),
        };
        let per_event_us = |cpu: f64| cpu * 1e6 / self.n as f64;
        format!(
            "| {sink}, {pace} | {:.0} | taken by the sink {:.2} s after the last offer; {received} \
             received, the last {:.2} s after the last offer ({:.0}/s end to end); offers took \
             {:.2} s (longest {:.2} ms); {} went through the spool; CPU per event: receiver \
             {:.1} µs, sink thread {:.1} µs, offering thread {:.1} µs |",
            self.n as f64 / self.sink_secs,
            self.sink_secs - self.offered_secs,
            self.secs - self.offered_secs,
            self.n as f64 / self.secs,
            self.offered_secs,
            self.offer_max.as_secs_f64() * 1e3,
            self.spooled,
            per_event_us(self.receiver_cpu),
            per_event_us(self.sink_cpu),
            per_event_us(self.producer_cpu),
        )
    }
}

/// User + system CPU seconds of a process or thread, from its `/proc/.../stat` (0 when gone).
fn cpu_secs(stat_path: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(stat_path) else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses and may hold spaces: utime and
    // stime are the 12th and 13th.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 =
        fields[11].parse::<f64>().unwrap_or(0.0) + fields[12].parse::<f64>().unwrap_or(0.0);
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz
}

/// `/proc` stat path of this process's thread named `name`.
fn thread_stat(name: &str) -> Option<String> {
    std::fs::read_dir("/proc/self/task")
        .ok()?
        .flatten()
        .find_map(|t| {
            let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
            (comm.trim_end() == name).then(|| t.path().join("stat").display().to_string())
        })
}

/// Offers `events` to an upstream for `url` (in batches of 256, paced at `rate` events/s when
/// given) and waits until the sink has acknowledged all and, when given, `receiver_has_all`
/// holds (the receiver's own view). `receiver_pid`'s CPU time is measured over the run.
fn deliver(
    dir: &Path,
    url: &str,
    events: &[EncodedEvent],
    rate: Option<f64>,
    queue_bytes: u64,
    receiver_has_all: Option<&dyn Fn() -> bool>,
    receiver_pid: i32,
) -> DeliveryRun {
    let sink = vigil::output::open_sink(url).expect("sink");
    let spool = Spool::open(&dir.join("spool"), 64 << 30, FullPolicy::DropOldest).expect("spool");
    let up = Upstream::start(sink, spool, TypeSet::of(&[]), queue_bytes).expect("upstream");
    // Connected before the clock starts.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !up.status().connected {
        assert!(Instant::now() < deadline, "{url}: not connected after 30 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    // CPU seconds of the receiver process, the sink's thread and this (offering) thread.
    let stats = [
        Some(format!("/proc/{receiver_pid}/stat")),
        thread_stat("vigil-sink"),
        Some("/proc/thread-self/stat".to_string()),
    ];
    let cpu_now = || stats.each_ref().map(|p| p.as_deref().map_or(0.0, cpu_secs));
    let cpu_before = cpu_now();
    let started = Instant::now();
    let mut offer_max = Duration::ZERO;
    for (k, batch) in events.chunks(OFFER_BATCH).enumerate() {
        if let Some(r) = rate {
            let due = started + Duration::from_secs_f64((k * OFFER_BATCH) as f64 / r);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let t = Instant::now();
        up.offer(batch);
        offer_max = offer_max.max(t.elapsed());
    }
    let offered_secs = started.elapsed().as_secs_f64();
    let limit = Instant::now() + Duration::from_secs(600);
    let acked_at = loop {
        if up.status().acked >= events.len() as u64 {
            break Instant::now();
        }
        assert!(
            Instant::now() < limit,
            "{url}: not all acknowledged in 10 min"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    let arrived_at = match receiver_has_all {
        None => acked_at,
        Some(has_all) => loop {
            if has_all() {
                break Instant::now();
            }
            assert!(
                Instant::now() < limit,
                "{url}: the receiver lacks events after 10 min"
            );
            std::thread::sleep(Duration::from_millis(20));
        },
    };
    let cpu_after = cpu_now();
    let [receiver_cpu, sink_cpu, producer_cpu] = [0, 1, 2].map(|i| cpu_after[i] - cpu_before[i]);
    let status = up.finish(Duration::from_secs(5));
    DeliveryRun {
        rate,
        n: events.len(),
        sink_secs: (acked_at - started).as_secs_f64(),
        secs: (arrived_at - started).as_secs_f64(),
        offer_max,
        offered_secs,
        spooled: status.spool.spooled,
        receiver_cpu,
        sink_cpu,
        producer_cpu,
    }
}

/// Counts the lines of a growing file, reading only what was added since the last call.
struct LineCounter {
    path: PathBuf,
    offset: Cell<u64>,
    lines: Cell<usize>,
}

impl LineCounter {
    fn new(path: PathBuf) -> LineCounter {
        LineCounter {
            path,
            offset: Cell::new(0),
            lines: Cell::new(0),
        }
    }

    fn count(&self) -> usize {
        if let Ok(mut f) = std::fs::File::open(&self.path) {
            let mut added = Vec::new();
            if f.seek(SeekFrom::Start(self.offset.get())).is_ok()
                && f.read_to_end(&mut added).is_ok()
            {
                self.offset.set(self.offset.get() + added.len() as u64);
                self.lines
                    .set(self.lines.get() + added.iter().filter(|&&c| c == b'\n').count());
            }
        }
        self.lines.get()
    }
}
