//! End to end on third-party captures: the odd and malformed captures of tcpdump's and Zeek's test
//! suites (no crash, no hang, bounded memory, schema-valid output, worker-count independence) and
//! the Community ID specification's pcaps (every flow's `community_id` as the spec computes it).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{assert_no_crash, assert_schema_valid, replay, schema_violations, shared, Run};
use serde_json::Value;
use sha1::{Digest, Sha1};

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("vigil-odd-pcaps-")
        .tempdir()
        .expect("temp dir")
}

fn odd_dir() -> PathBuf {
    shared().join("corpus/odd-pcaps")
}

/// Every capture of the corpus whose name starts with `prefix`, sorted by name.
fn odd_pcaps(prefix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(odd_dir())
        .expect("odd-pcaps corpus")
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.starts_with(prefix)
                && [".pcap", ".pcapng", ".cap"]
                    .iter()
                    .any(|ext| name.ends_with(ext))
        })
        .collect();
    files.sort();
    files
}

/// A run over damaged input: no crash, exit 0 or 1, a final stats event, and every input error
/// names one of the files.
fn assert_survived(run: &Run, files: &[PathBuf], what: &str) {
    assert_no_crash(&run.status, &run.stderr);
    assert!(
        matches!(run.status.code(), Some(0 | 1)),
        "{what}: exit status {:?}; stderr:\n{}",
        run.status.code(),
        run.stderr
    );
    assert_eq!(
        run.events.last().map(|e| e["event_type"].clone()),
        Some(Value::from("stats")),
        "{what}: a final stats event"
    );
    for line in run
        .stderr
        .lines()
        .filter(|l| l.starts_with("vigil: error:"))
    {
        assert!(
            files
                .iter()
                .any(|f| line.contains(&format!("{}: ", f.display()))),
            "{what}: an error that names no input file: {line}"
        );
    }
}

/// Schema violations grouped by message, with one example event each.
fn violation_report(events: &[Value]) -> String {
    let mut groups: BTreeMap<String, (usize, Value)> = BTreeMap::new();
    for (errors, ev) in schema_violations(events) {
        for e in errors {
            groups.entry(e).or_insert((0, ev.clone())).0 += 1;
        }
    }
    groups
        .iter()
        .map(|(e, (n, ev))| format!("{n} x {e}\n   e.g. {ev}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Replays `files` in a few invocations (each a contiguous slice) with 2 and then 1 worker.
fn replay_in_batches(prefix: &str, batches: usize, min_flows: usize) {
    let files = odd_pcaps(prefix);
    assert!(
        files.len() > 300,
        "{prefix}: corpus present ({})",
        files.len()
    );
    let dir = tempdir();
    let per_batch = files.len().div_ceil(batches);
    let mut total_flows = 0;
    let mut failed_files = 0;
    for (k, batch) in files.chunks(per_batch).enumerate() {
        let refs: Vec<&Path> = batch.iter().map(PathBuf::as_path).collect();
        let what = format!("{prefix} batch {k} ({} files)", batch.len());
        let started = Instant::now();
        let two = replay(&refs, 2, &["-q"], &dir.path().join(format!("eve{k}-2")));
        let took = started.elapsed();
        assert_survived(&two, batch, &what);
        assert!(
            took < Duration::from_secs(20),
            "{what}: took {took:?} with 2 workers"
        );
        let report = violation_report(&two.events);
        assert!(
            report.is_empty(),
            "{what}: events violating the EVE schema:\n{report}"
        );
        let one = replay(&refs, 1, &["-q"], &dir.path().join(format!("eve{k}-1")));
        assert_survived(&one, batch, &what);
        assert_eq!(
            one.of_type("flow").len(),
            two.of_type("flow").len(),
            "{what}: flow events with 1 and 2 workers"
        );
        assert_eq!(
            one.stats()["decoder"],
            two.stats()["decoder"],
            "{what}: decoder counters with 1 and 2 workers"
        );
        assert_eq!(one.stderr, two.stderr, "{what}: the same input errors");
        total_flows += two.of_type("flow").len();
        failed_files += two
            .stderr
            .lines()
            .filter(|l| l.starts_with("vigil: error:"))
            .count();
    }
    // The corpus is mostly readable traffic, not only errors.
    assert!(total_flows > min_flows, "{prefix}: {total_flows} flows");
    assert!(
        failed_files < files.len() / 4,
        "{prefix}: {failed_files} of {} files unreadable",
        files.len()
    );
}

#[test]
fn odd_pcaps_tcpdump_survive() {
    replay_in_batches("tcpdump-", 2, 300);
}

#[test]
fn odd_pcaps_zeek_survive() {
    replay_in_batches("zeek-", 2, 1000);
}

/// The largest captures of the corpus in one run: peak RSS stays bounded.
#[test]
fn odd_pcaps_largest_files_bounded_memory() {
    let mut files: Vec<(u64, PathBuf)> = odd_pcaps("")
        .into_iter()
        .map(|p| (std::fs::metadata(&p).unwrap().len(), p))
        .collect();
    files.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let largest: Vec<PathBuf> = files.into_iter().take(20).map(|(_, p)| p).collect();
    let kb = peak_rss_kb(&largest);
    assert!(
        kb < 300 * 1024,
        "peak RSS {} MiB on the 20 largest odd pcaps",
        kb / 1024
    );
}

/// Memory does not grow with the number of files in one run (read chunks of finished files
/// must not stay pinned by batches of workers that see few packets).
#[test]
fn odd_pcaps_all_in_one_run_bounded_memory() {
    let kb = peak_rss_kb(&odd_pcaps(""));
    assert!(
        kb < 64 * 1024,
        "peak RSS {} MiB replaying every odd pcap in one run",
        kb / 1024
    );
}

/// Replays `files` in one run under `/usr/bin/time` and returns the peak RSS in KiB.
fn peak_rss_kb(files: &[PathBuf]) -> u64 {
    let dir = tempdir();
    let mut cmd = std::process::Command::new("/usr/bin/time");
    cmd.args(["-f", "maxrss_kb=%M", env!("CARGO_BIN_EXE_vigil"), "replay"])
        .args(files)
        .args(["--workers", "2", "--eve-dir"])
        .arg(dir.path().join("eve"));
    let out = common::run_with_deadline(cmd, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_no_crash(&out.status, &stderr);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{stderr}");
    let kb: u64 = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("maxrss_kb="))
        .next_back()
        .unwrap_or_else(|| panic!("no maxrss from /usr/bin/time: {stderr}"))
        .trim()
        .parse()
        .unwrap();
    assert!(kb > 1000, "a plausible RSS: {kb} KiB");
    let eve = std::fs::read_to_string(dir.path().join("eve/eve.json")).unwrap();
    assert!(eve.lines().count() > 100);
    kb
}

// ---- Community ID

/// Zeek's ICMP "counter-type" pairs (the spec's `map_icmp_to_ports`): requests and replies map to
/// each other; other types are one-way, with the code as the second "port".
fn icmp_ports(proto: u8, icmp_type: u8, code: u8) -> (u16, u16, bool) {
    let v4: &[(u8, u8)] = &[(8, 0), (13, 14), (15, 16), (10, 9), (17, 18)];
    let v6: &[(u8, u8)] = &[
        (128, 129),
        (130, 131),
        (133, 134),
        (135, 136),
        (139, 140),
        (144, 145),
    ];
    let pairs = if proto == 1 { v4 } else { v6 };
    for &(a, b) in pairs {
        if icmp_type == a {
            return (a.into(), b.into(), false);
        }
        if icmp_type == b {
            return (b.into(), a.into(), false);
        }
    }
    (icmp_type.into(), code.into(), true)
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// Community ID v1 by the specification's pseudo code, seed 0.
fn spec_community_id(
    proto: u8,
    src: IpAddr,
    dst: IpAddr,
    ports: Option<(u16, u16)>,
    one_way: bool,
) -> String {
    let (mut s, mut d) = (ip_bytes(src), ip_bytes(dst));
    let (mut sp, mut dp) = ports.unwrap_or((0, 0));
    // Smaller (address, port) first; one-way ICMP keeps its direction.
    if !one_way && (s > d || (s == d && sp > dp)) {
        std::mem::swap(&mut s, &mut d);
        std::mem::swap(&mut sp, &mut dp);
    }
    let mut h = Sha1::new();
    h.update(0u16.to_be_bytes());
    h.update(&s);
    h.update(&d);
    h.update([proto, 0]);
    if ports.is_some() {
        h.update(sp.to_be_bytes());
        h.update(dp.to_be_bytes());
    }
    format!(
        "1:{}",
        base64::engine::general_purpose::STANDARD.encode(h.finalize())
    )
}

/// (proto, source, destination, ports): a Community ID input as the baseline lists it.
type Tuple = (u8, IpAddr, IpAddr, Option<(u16, u16)>);

fn proto_number(name: &str) -> u8 {
    match name {
        "TCP" => 6,
        "UDP" => 17,
        "ICMP" => 1,
        "IPv6-ICMP" => 58,
        "SCTP" => 132,
        other => other
            .parse()
            .unwrap_or_else(|_| panic!("unexpected proto {other}")),
    }
}

#[test]
fn community_ids_follow_the_spec_and_baseline() {
    let corpus = shared().join("corpus/community-id");
    let mut pcaps: Vec<PathBuf> = std::fs::read_dir(corpus.join("pcaps"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        .collect();
    pcaps.sort();
    assert!(pcaps.len() >= 8);

    // Baseline: (proto, saddr, daddr, sport, dport) → id; ports absent for port-less protocols.
    let text = std::fs::read_to_string(corpus.join("baseline/baseline_deflt.json")).unwrap();
    let rows: Vec<Value> = serde_json::from_str(&text).unwrap();
    let mut baseline: HashMap<Tuple, String> = HashMap::new();
    for r in &rows {
        let port = |k: &str| r.get(k).and_then(Value::as_u64).map(|p| p as u16);
        let ports = port("sport").zip(port("dport"));
        baseline.insert(
            (
                r["proto"].as_u64().unwrap() as u8,
                r["saddr"].as_str().unwrap().parse().unwrap(),
                r["daddr"].as_str().unwrap().parse().unwrap(),
                ports,
            ),
            r["communityid"].as_str().unwrap().to_string(),
        );
    }

    let dir = tempdir();
    let refs: Vec<&Path> = pcaps.iter().map(PathBuf::as_path).collect();
    let run = replay(&refs, 2, &[], &dir.path().join("eve"));
    assert!(run.status.success(), "{}", run.stderr);
    assert_schema_valid(&run.events);
    let flows = run.of_type("flow");
    assert!(flows.len() >= 12, "{} flows", flows.len());
    let mut in_baseline = 0;
    let mut protos = std::collections::BTreeSet::new();
    for ev in &flows {
        let proto = proto_number(ev["proto"].as_str().unwrap());
        protos.insert(proto);
        let src: IpAddr = ev["src_ip"].as_str().unwrap().parse().unwrap();
        let dst: IpAddr = ev["dest_ip"].as_str().unwrap().parse().unwrap();
        let (ports, one_way) = match proto {
            1 | 58 => {
                let t = ev["icmp_type"].as_u64().expect("icmp_type") as u8;
                let c = ev["icmp_code"].as_u64().expect("icmp_code") as u8;
                let (a, b, one_way) = icmp_ports(proto, t, c);
                (Some((a, b)), one_way)
            }
            6 | 17 | 132 => (
                Some((
                    ev["src_port"].as_u64().unwrap() as u16,
                    ev["dest_port"].as_u64().unwrap() as u16,
                )),
                false,
            ),
            _ => (None, false),
        };
        let expected = spec_community_id(proto, src, dst, ports, one_way);
        assert_eq!(
            ev["community_id"].as_str().unwrap(),
            expected,
            "community_id by the spec: {ev}"
        );
        if let Some(id) = baseline.get(&(proto, src, dst, ports)) {
            in_baseline += 1;
            assert_eq!(id, &expected, "the baseline agrees: {ev}");
        }
    }
    // The spec's own pcaps are the baseline's source: most flows are listed there.
    assert!(
        in_baseline * 10 >= flows.len() * 9,
        "{in_baseline} of {} flows found in the baseline",
        flows.len()
    );
    for p in [1, 6, 17, 58, 132] {
        assert!(protos.contains(&p), "a flow of protocol {p}: {protos:?}");
    }
}
