//! End to end: damaged, unreadable and odd inputs through the real `vigil replay`. What comes
//! before the damage must be processed, the damage must be named precisely (file and byte
//! offset), the exit status must say so (1), and nothing may panic.

mod common;

use std::path::Path;

use common::{
    assert_no_crash, assert_schema_valid, flow_lines, generate, pcap_records, replay, Run,
};
use serde_json::Value;
use vigil_pcapgen::{generate_frames, write_pcap, Encaps, GenConfig, PcapOptions};

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("vigil-bad-input-")
        .tempdir()
        .expect("temp dir")
}

/// A run that hit a bad input: exit 1, no crash, the summary and one final stats event written,
/// every event schema-valid.
fn assert_input_error(run: &Run, what: &str) {
    assert_no_crash(&run.status, &run.stderr);
    assert_eq!(
        run.status.code(),
        Some(1),
        "{what}: exit status 1 for an input error; stderr:\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("vigil replay:"),
        "{what}: summary on stderr: {}",
        run.stderr
    );
    let last = run.events.last().expect("eve.json has events");
    assert_eq!(last["event_type"], "stats", "{what}: stats event last");
    let _ = run.stats();
    assert_schema_valid(&run.events);
}

/// The `vigil: error:` lines of stderr.
fn error_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("vigil: error:"))
        .collect()
}

/// The run printed exactly one error line, and it contains `expected`; returns that line.
fn single_error<'a>(run: &'a common::Run, expected: &str, case: &str) -> &'a str {
    let errors = error_lines(&run.stderr);
    assert_eq!(errors.len(), 1, "{case}: one error: {}", run.stderr);
    assert!(
        errors[0].contains(expected),
        "{case}: expected `{expected}` in: {}",
        run.stderr
    );
    errors[0]
}

/// Deterministic pseudo-random bytes (xorshift), never starting with a capture-file magic.
fn garbage(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    out[0] = 0x5a;
    out
}

/// A generated ~1 MB pcap and its bytes.
fn generated(dir: &Path, name: &str, seed: u64) -> (std::path::PathBuf, Vec<u8>) {
    let path = dir.join(name);
    generate(&path, &GenConfig::new(seed, 1 << 20));
    let bytes = std::fs::read(&path).unwrap();
    (path, bytes)
}

/// Replays the first `records` complete records of `bytes` (a valid pcap): the reference for
/// "what came before the damage".
fn replay_prefix(dir: &Path, bytes: &[u8], end: usize, name: &str) -> Run {
    let path = dir.join(format!("{name}-prefix.pcap"));
    std::fs::write(&path, &bytes[..end]).unwrap();
    let run = replay(&[&path], 2, &[], &dir.join(format!("eve-{name}-prefix")));
    assert!(run.status.success(), "{}", run.stderr);
    run
}

#[test]
fn truncated_pcap_names_offset_and_keeps_what_came_before() {
    let dir = tempdir();
    let (_, bytes) = generated(dir.path(), "full.pcap", 31);
    let records = pcap_records(&bytes);
    assert_eq!(
        records.last().map(|(o, l)| o + l),
        Some(bytes.len()),
        "generated pcap ends on a record boundary"
    );
    // The record holding the middle byte of the file; cut in its data, and (second case) in its
    // 16-byte record header.
    let mid = bytes.len() / 2;
    let index = records
        .iter()
        .position(|(o, l)| *o <= mid && mid < o + l)
        .unwrap();
    let (rec_off, rec_len) = records[index];
    assert!(rec_len > 16 + 2, "a record with data to cut");
    let reference = replay_prefix(dir.path(), &bytes, rec_off, "trunc");
    assert!(
        reference.of_type("flow").len() > 50,
        "enough flows to compare"
    );
    assert_eq!(reference.stats()["decoder"]["pkts"], index as u64);

    for (case, cut) in [
        ("in the packet data", rec_off + 16 + (rec_len - 16) / 2),
        ("in the record header", rec_off + 7),
    ] {
        let path = dir.path().join("cut.pcap");
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let run = replay(&[&path], 2, &[], &dir.path().join("eve-cut"));
        assert_input_error(&run, case);
        let expected = format!("{}: truncated at byte offset {rec_off}", path.display());
        single_error(&run, &expected, case);
        let stats = run.stats();
        assert_eq!(
            stats["decoder"]["pkts"], index as u64,
            "{case}: every complete record before the cut is decoded"
        );
        assert_eq!(
            stats["decoder"],
            reference.stats()["decoder"],
            "{case}: same decoder counters as the undamaged prefix"
        );
        assert_eq!(
            flow_lines(&run),
            flow_lines(&reference),
            "{case}: same flow events as the undamaged prefix"
        );
    }
}

#[test]
fn corrupt_record_length_names_offset_and_keeps_what_came_before() {
    let dir = tempdir();
    let (_, mut bytes) = generated(dir.path(), "full.pcap", 32);
    let records = pcap_records(&bytes);
    let index = records.len() / 2;
    let (rec_off, _) = records[index];
    let reference = replay_prefix(dir.path(), &bytes, rec_off, "corrupt");
    bytes[rec_off + 8..rec_off + 12].copy_from_slice(&0xFFFF_FF00u32.to_le_bytes());
    let path = dir.path().join("corrupt.pcap");
    std::fs::write(&path, &bytes).unwrap();

    let run = replay(&[&path], 2, &[], &dir.path().join("eve"));
    assert_input_error(&run, "corrupt caplen");
    let expected = format!("{}: corrupt at byte offset {rec_off}", path.display());
    let error = single_error(&run, &expected, "corrupt caplen");
    assert!(
        error.contains("4294967040"),
        "the bad length is shown: {error}"
    );
    let stats = run.stats();
    assert_eq!(stats["decoder"]["pkts"], index as u64);
    assert!(run.of_type("flow").len() > 50);
    assert_eq!(flow_lines(&run), flow_lines(&reference));
}

/// Runs one unreadable input; returns the run after the common checks.
fn unreadable(dir: &Path, input: &Path, what: &str, expected: &str) -> Run {
    let run = replay(&[input], 2, &[], &dir.join("eve"));
    assert_input_error(&run, what);
    single_error(&run, &format!("{}: {expected}", input.display()), what);
    assert_eq!(run.stats()["decoder"]["pkts"], 0, "{what}");
    assert!(run.of_type("flow").is_empty(), "{what}");
    run
}

#[test]
fn garbage_file_is_not_a_pcap() {
    let dir = tempdir();
    let path = dir.path().join("garbage.bin");
    std::fs::write(&path, garbage(256 << 10, 7)).unwrap();
    unreadable(dir.path(), &path, "garbage", "not a pcap or pcapng file");
}

#[test]
fn empty_file_is_reported() {
    let dir = tempdir();
    let path = dir.path().join("empty.pcap");
    std::fs::write(&path, b"").unwrap();
    unreadable(dir.path(), &path, "empty", "empty file");
}

#[test]
fn missing_file_is_reported_with_the_os_error() {
    let dir = tempdir();
    let path = dir.path().join("does-not-exist.pcap");
    unreadable(
        dir.path(),
        &path,
        "missing",
        "No such file or directory (os error 2)",
    );
}

#[test]
fn directory_given_as_file_is_reported() {
    let dir = tempdir();
    let path = dir.path().join("a-directory.pcap");
    std::fs::create_dir(&path).unwrap();
    unreadable(
        dir.path(),
        &path,
        "directory",
        "Is a directory (os error 21)",
    );
}

/// Files too short for their own headers: named as truncated at offset 0, no panic.
#[test]
fn files_shorter_than_their_header_are_truncated_at_zero() {
    let dir = tempdir();
    let mut pcap_header = Vec::new();
    write_pcap(&[], &PcapOptions::default(), &mut pcap_header).unwrap();
    assert_eq!(pcap_header.len(), 24);
    let pcapng_magic = 0x0A0D_0D0Au32.to_le_bytes();
    for (name, bytes) in [
        ("two-bytes.pcap", &pcap_header[..2]),
        ("half-header.pcap", &pcap_header[..13]),
        ("shb-start.pcapng", &pcapng_magic[..]),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        unreadable(dir.path(), &path, name, "truncated at byte offset 0");
    }
    // A header and no records is a valid, empty capture.
    let path = dir.path().join("header-only.pcap");
    std::fs::write(&path, &pcap_header).unwrap();
    let run = replay(&[&path], 2, &[], &dir.path().join("eve"));
    assert_no_crash(&run.status, &run.stderr);
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(run.stats()["decoder"]["pkts"], 0);
    assert_schema_valid(&run.events);
}

/// Two good files around a bad one: both good files fully processed, the bad one named, exit 1.
#[test]
fn bad_file_between_good_ones_does_not_stop_the_run() {
    let dir = tempdir();
    let first = dir.path().join("first.pcap");
    let t1 = generate(&first, &GenConfig::new(41, 1 << 20));
    let second = dir.path().join("second.pcap");
    let mut cfg = GenConfig::new(42, 1 << 20);
    // Later than the first file, as consecutive captures of one link are.
    cfg.base_ts_secs += 3600;
    let t2 = generate(&second, &cfg);
    let reference = replay(&[&first, &second], 2, &[], &dir.path().join("eve-ref"));
    assert!(reference.status.success(), "{}", reference.stderr);
    // At least one record per generated flow (UDP tunnels may add records of their own).
    let reference_flows = reference.of_type("flow").len();
    assert!(reference_flows >= t1.flows.len() + t2.flows.len());

    // Unreadable from the start: the run equals the one without it.
    let garbage_path = dir.path().join("garbage.pcap");
    std::fs::write(&garbage_path, garbage(64 << 10, 99)).unwrap();
    let run = replay(
        &[&first, &garbage_path, &second],
        2,
        &[],
        &dir.path().join("eve-garbage"),
    );
    assert_input_error(&run, "garbage in the middle");
    single_error(
        &run,
        &format!("{}: not a pcap or pcapng file", garbage_path.display()),
        "garbage in the middle",
    );
    assert_eq!(run.stats()["decoder"]["pkts"], t1.packets + t2.packets);
    assert_eq!(flow_lines(&run), flow_lines(&reference));

    // Damaged in its middle: its first part is processed too, and the file after it in full.
    let (_, bytes) = generated(dir.path(), "third.pcap", 43);
    let records = pcap_records(&bytes);
    let index = records.len() / 3;
    let (rec_off, rec_len) = records[index];
    let cut_path = dir.path().join("cut.pcap");
    std::fs::write(&cut_path, &bytes[..rec_off + rec_len - 1]).unwrap();
    let run = replay(
        &[&first, &cut_path, &second],
        2,
        &[],
        &dir.path().join("eve-cut"),
    );
    assert_input_error(&run, "truncated file in the middle");
    single_error(
        &run,
        &format!("{}: truncated at byte offset {rec_off}", cut_path.display()),
        "truncated file in the middle",
    );
    assert_eq!(
        run.stats()["decoder"]["pkts"],
        t1.packets + index as u64 + t2.packets
    );
    // Every flow of both good files is there (compared without flow ids and end reasons: the
    // middle file's traffic shares the table).
    let identities = |run: &Run| {
        let mut v: Vec<String> = run
            .of_type("flow")
            .iter()
            .map(|e| common::flow_identity(e))
            .collect();
        v.sort();
        v
    };
    let got = identities(&run);
    for id in identities(&reference) {
        assert!(got.binary_search(&id).is_ok(), "flow {id} missing");
    }
    assert!(got.len() > reference_flows, "the cut file's flows as well");
}

/// A link type Vigil cannot decode: replay completes, nothing is tracked, every packet counted.
#[test]
fn unsupported_link_type_counts_every_packet() {
    let dir = tempdir();
    let mut cfg = GenConfig::new(51, 512 << 10);
    cfg.encaps = Encaps::none();
    let (frames, truth) = generate_frames(&cfg);
    let path = dir.path().join("dlt147.pcap");
    let opts = PcapOptions {
        linktype: 147,
        ..PcapOptions::default()
    };
    write_pcap(&frames, &opts, std::fs::File::create(&path).unwrap()).unwrap();
    let n = truth.packets;
    assert_eq!(frames.len() as u64, n);

    let run = replay(&[&path], 2, &[], &dir.path().join("eve"));
    assert_no_crash(&run.status, &run.stderr);
    assert!(run.status.success(), "exit 0: {}", run.stderr);
    assert_schema_valid(&run.events);
    assert!(
        run.of_type("flow").is_empty(),
        "no flows from link type 147"
    );
    let decoder = &run.stats()["decoder"];
    assert_eq!(decoder["pkts"], n);
    assert_eq!(decoder["invalid"], n, "every packet invalid: {decoder}");
    assert_eq!(decoder["ethernet"], 0);

    // Every packet is an anomaly: written, or counted as over the rate limit.
    let anomalies = run.of_type("anomaly");
    assert!(!anomalies.is_empty());
    assert!(anomalies
        .iter()
        .all(|a| a["anomaly"]["event"] == "decoder.unknown_linktype"));
    let summary = summary_numbers(&run.stderr);
    assert_eq!(summary.packets, n, "{}", run.stderr);
    assert_eq!(summary.decode_errors, n, "{}", run.stderr);
    assert_eq!(summary.anomaly_events, anomalies.len() as u64);
    assert_eq!(
        summary.anomaly_events + summary.suppressed,
        n,
        "every packet's anomaly written or counted: {}",
        run.stderr
    );
}

/// Numbers of the stderr summary.
struct Summary {
    packets: u64,
    decode_errors: u64,
    anomaly_events: u64,
    suppressed: u64,
}

fn summary_numbers(stderr: &str) -> Summary {
    let number_after = |text: &str, marker: &str| -> u64 {
        let at = text
            .find(marker)
            .unwrap_or_else(|| panic!("`{marker}` in the summary: {stderr}"));
        text[at + marker.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap_or_else(|_| panic!("a number after `{marker}`: {stderr}"))
    };
    let anomaly_line = &stderr[stderr.find("anomaly events ").expect("anomaly summary")..];
    Summary {
        packets: number_after(stderr, "vigil replay: "),
        decode_errors: number_after(stderr, "decode errors "),
        anomaly_events: number_after(anomaly_line, "anomaly events "),
        suppressed: number_after(anomaly_line, "(+"),
    }
}

/// Anomaly events per second of packet time (the `timestamp` up to the fraction).
fn anomalies_per_second(run: &Run) -> std::collections::BTreeMap<String, u64> {
    let mut per_second = std::collections::BTreeMap::new();
    for a in run.of_type("anomaly") {
        let ts = a["timestamp"].as_str().unwrap();
        let second = ts.split('.').next().unwrap().to_string();
        *per_second.entry(second).or_insert(0) += 1;
    }
    per_second
}

/// Frames cut to a 96-byte snaplen: flows are still tracked; truncation anomalies are reported
/// but rate-limited per worker and second of packet time.
#[test]
fn snaplen_truncated_packets_are_tracked_and_anomalies_rate_limited() {
    let dir = tempdir();
    let mut cfg = GenConfig::new(61, 2 << 20);
    // Many packets per second, so that the rate limit matters.
    cfg.flows_per_sec = 2000.0;
    // Tunnelled frames would lose their inner transport headers at 96 bytes (a different flow
    // key, not a lost flow); see the report on tunnels in the test notes.
    cfg.encaps = Encaps::none();
    let (frames, _) = generate_frames(&cfg);
    let full = dir.path().join("full.pcap");
    write_pcap(
        &frames,
        &PcapOptions::default(),
        std::fs::File::create(&full).unwrap(),
    )
    .unwrap();
    let cut = dir.path().join("snap96.pcap");
    let opts = PcapOptions {
        snaplen: 96,
        ..PcapOptions::default()
    };
    write_pcap(&frames, &opts, std::fs::File::create(&cut).unwrap()).unwrap();

    let full_run = replay(&[&full], 1, &[], &dir.path().join("eve-full"));
    assert!(full_run.status.success(), "{}", full_run.stderr);
    let run = replay(&[&cut], 1, &[], &dir.path().join("eve-cut"));
    assert_no_crash(&run.status, &run.stderr);
    assert!(run.status.success(), "{}", run.stderr);
    assert_schema_valid(&run.events);

    let full_flows = full_run.of_type("flow").len();
    assert!(full_flows > 100);
    assert_eq!(
        run.of_type("flow").len(),
        full_flows,
        "every flow still tracked with 96-byte snaplen"
    );
    let identities = |run: &Run| {
        let mut v: Vec<String> = run
            .of_type("flow")
            .iter()
            .map(|e| common::flow_identity(e))
            .collect();
        v.sort();
        v
    };
    assert_eq!(identities(&run), identities(&full_run), "the same flows");
    assert_eq!(run.stats()["decoder"]["pkts"], frames.len() as u64);

    let anomalies = run.of_type("anomaly");
    let trunc: Vec<&&Value> = anomalies
        .iter()
        .filter(|a| {
            let ev = a["anomaly"]["event"].as_str().unwrap();
            ev.contains("trunc") || ev.contains("too_small")
        })
        .collect();
    assert!(!trunc.is_empty(), "truncation anomalies reported");
    let limit = 100; // anomaly_events.max_per_second's default
    let per_second = anomalies_per_second(&run);
    let busiest = per_second.values().copied().max().unwrap();
    assert!(
        busiest <= limit,
        "at most {limit} anomaly events per second with 1 worker: {per_second:?}"
    );
    let summary = summary_numbers(&run.stderr);
    assert!(
        summary.suppressed > 0,
        "the limit was reached in this capture: {}",
        run.stderr
    );
    assert_eq!(summary.anomaly_events, anomalies.len() as u64);

    // A lower configured limit is honoured.
    let config = dir.path().join("limit.toml");
    std::fs::write(&config, "[anomaly_events]\nmax_per_second = 7\n").unwrap();
    let limited = replay(
        &[&cut],
        1,
        &["--config", config.to_str().unwrap()],
        &dir.path().join("eve-limited"),
    );
    assert!(limited.status.success(), "{}", limited.stderr);
    let per_second = anomalies_per_second(&limited);
    assert!(
        per_second.values().all(|&n| n <= 7),
        "at most 7 per second: {per_second:?}"
    );
    assert!(per_second.values().any(|&n| n == 7));
    let s = summary_numbers(&limited.stderr);
    assert_eq!(
        s.anomaly_events + s.suppressed,
        summary.anomaly_events + summary.suppressed,
        "the same anomalies, only fewer written"
    );
}

/// Files given out of time order (as `vigil replay *.pcap` does when names do not sort by time):
/// packet time goes back at the second file and forward again at the third. Every flow is still
/// reported exactly once, whatever the worker count, as when the files are given in time order.
#[test]
fn files_out_of_time_order_report_each_flow_once() {
    let dir = tempdir();
    let mut paths = Vec::new();
    let mut truth_flows = 0;
    let mut truth_packets = 0;
    // Hours apart: later, earlier, latest.
    for (k, hours) in [(0u64, 2u64), (1, 0), (2, 4)] {
        let mut cfg = GenConfig::new(70 + k, 512 << 10);
        cfg.base_ts_secs += hours * 3600;
        let path = dir.path().join(format!("part{k}.pcap"));
        let t = generate(&path, &cfg);
        truth_flows += t.flows.len();
        truth_packets += t.packets;
        paths.push(path);
    }
    let check = |order: [usize; 3], workers: usize| {
        let refs: Vec<&Path> = order.iter().map(|&k| paths[k].as_path()).collect();
        let name = format!("eve-{order:?}-{workers}");
        let run = replay(&refs, workers, &[], &dir.path().join(name));
        assert!(run.status.success(), "{}", run.stderr);
        assert_schema_valid(&run.events);
        let what = format!("files in order {order:?}, {workers} worker(s)");
        let stats = run.stats();
        assert_eq!(stats["decoder"]["pkts"], truth_packets, "{what}");
        let flows = run.of_type("flow");
        let mut ids: Vec<u64> = flows
            .iter()
            .map(|f| f["flow_id"].as_u64().unwrap())
            .collect();
        ids.sort_unstable();
        let before = ids.len();
        ids.dedup();
        assert_eq!(
            before,
            ids.len(),
            "{what}: {} duplicate flow events",
            before - ids.len()
        );
        assert_eq!(
            flows.len() as u64,
            stats["flow"]["total"].as_u64().unwrap(),
            "{what}: one event per flow the table counted"
        );
        assert!(flows.len() >= truth_flows, "{what}");
        assert_eq!(
            stats["flow"]["emerg_mode_entered"], 0,
            "{what}: a few hundred flows never fill the table"
        );
        flow_lines(&run)
    };
    let in_time_order = check([1, 0, 2], 1);
    for workers in [1, 2] {
        assert!(
            check([0, 1, 2], workers) == in_time_order,
            "{workers} worker(s): the same flow events as in time order"
        );
    }
}
