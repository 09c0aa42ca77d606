//! Shared helpers of the end-to-end tests: run the real `vigil` binary on real pcaps and read
//! back what it wrote.
#![allow(dead_code)]

pub mod anomaly_eval;
pub mod lab;
pub mod nats;
pub mod netns;
pub mod pki;
pub mod rsyslog;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn shared() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

pub struct Run {
    pub status: std::process::ExitStatus,
    pub stderr: String,
    pub events: Vec<Value>,
}

impl Run {
    pub fn of_type(&self, event_type: &str) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|e| e["event_type"] == event_type)
            .collect()
    }

    pub fn stats(&self) -> &Value {
        let stats = self.of_type("stats");
        assert_eq!(stats.len(), 1, "one final stats event");
        &stats[0]["stats"]
    }
}

/// Runs `vigil replay` with a time limit (a hang is a failure) and parses its eve.json.
pub fn replay(files: &[&Path], workers: usize, extra: &[&str], out_dir: &Path) -> Run {
    let _ = std::fs::remove_dir_all(out_dir);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.arg("replay")
        .args(files)
        .arg("--workers")
        .arg(workers.to_string());
    cmd.arg("--eve-dir").arg(out_dir).args(extra);
    let output = run_with_deadline(cmd, Duration::from_secs(300));
    let eve = std::fs::read_to_string(out_dir.join("eve.json")).unwrap_or_default();
    let events = eve
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l}: {e}")))
        .collect();
    Run {
        status: output.status,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        events,
    }
}

pub fn run_with_deadline(mut cmd: Command, limit: Duration) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn vigil");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Validates every event against Suricata 8's EVE JSON schema.
pub fn assert_schema_valid(events: &[Value]) {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(shared().join("corpus/suricata-etc/schema.json"))
            .expect("EVE schema"),
    )
    .expect("schema JSON");
    let validator = jsonschema::validator_for(&schema).expect("compile EVE schema");
    for ev in events {
        let errors: Vec<String> = validator.iter_errors(ev).map(|e| e.to_string()).collect();
        assert!(
            errors.is_empty(),
            "event violates the EVE schema: {errors:?}\n{ev}"
        );
    }
}

/// Writes a generated pcap and returns its ground truth.
pub fn generate(path: &Path, cfg: &vigil_pcapgen::GenConfig) -> vigil_pcapgen::GenSummary {
    let file = std::fs::File::create(path).expect("create pcap");
    vigil_pcapgen::generate(cfg, file).expect("generate pcap")
}

/// A flow event's identity without direction, to compare runs and match ground truth.
pub fn flow_identity(ev: &Value) -> String {
    let mut ends = [
        format!("{} {}", ev["src_ip"], ev["src_port"]),
        format!("{} {}", ev["dest_ip"], ev["dest_port"]),
    ];
    ends.sort();
    format!(
        "{} {} {} vlan={} tunnel={}",
        ev["proto"], ends[0], ends[1], ev["vlan"], ev["tunnel"]
    )
}

// ---- Matching generated ground truth to flow events.

pub fn proto_name(p: u8) -> &'static str {
    match p {
        6 => "TCP",
        17 => "UDP",
        1 => "ICMP",
        58 => "IPv6-ICMP",
        _ => "other",
    }
}

/// The identity of a truth flow, oriented client → server.
pub fn truth_key(t: &vigil_pcapgen::FlowTruth) -> String {
    let ports = if t.proto == 6 || t.proto == 17 {
        format!("{} {}", t.client_port, t.server_port)
    } else {
        "- -".into()
    };
    let vlans = if t.vlans.is_empty() {
        "-".into()
    } else {
        format!("{:?}", t.vlans)
    };
    let tunnel = t.tunnel.as_ref().map_or("-".into(), |tt| {
        format!("{}>{}", tt.outer_client, tt.outer_server)
    });
    format!(
        "{} {}>{} {ports} vlan={vlans} tunnel={tunnel}",
        proto_name(t.proto),
        t.client,
        t.server
    )
}

pub fn event_key(ev: &Value, reversed: bool) -> String {
    let port = |v: &Value| v.as_u64().map_or("-".into(), |p| p.to_string());
    // EVE writes IPv6 zero-padded (as Suricata does); the truth uses Rust's short form.
    let ip = |v: &Value| -> String {
        let s = v.as_str().unwrap();
        s.parse::<std::net::IpAddr>()
            .map_or_else(|_| s.to_string(), |a| a.to_string())
    };
    let (src, dst, sp, dp) = if reversed {
        ("dest_ip", "src_ip", "dest_port", "src_port")
    } else {
        ("src_ip", "dest_ip", "src_port", "dest_port")
    };
    let vlans = match ev["vlan"].as_array() {
        Some(v) => format!(
            "{:?}",
            v.iter()
                .map(|x| x.as_u64().unwrap() as u16)
                .collect::<Vec<_>>()
        ),
        None => "-".into(),
    };
    let tunnel = match ev["tunnel"].as_object() {
        Some(t) if reversed => format!("{}>{}", ip(&t["dest_ip"]), ip(&t["src_ip"])),
        Some(t) => format!("{}>{}", ip(&t["src_ip"]), ip(&t["dest_ip"])),
        None => "-".into(),
    };
    format!(
        "{} {}>{} {} {} vlan={vlans} tunnel={tunnel}",
        ev["proto"].as_str().unwrap(),
        ip(&ev[src]),
        ip(&ev[dst]),
        port(&ev[sp]),
        port(&ev[dp]),
    )
}

// ---- Helpers of the bad-input, odd-pcap and CLI tests (tests/bad_input.rs, odd_pcaps.rs, cli.rs).

/// Runs the real `vigil` binary with `args` (a hang past `limit` is a failure).
pub fn vigil_with_deadline<I, S>(args: I, limit: Duration) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.args(args);
    run_with_deadline(cmd, limit)
}

/// Runs the real `vigil` binary with `args` and a 60 s deadline.
pub fn vigil<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    vigil_with_deadline(args, Duration::from_secs(60))
}

/// Nothing crashed: no panic message, no Rust panic exit status (101), no signal.
pub fn assert_no_crash(status: &std::process::ExitStatus, stderr: &str) {
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "vigil panicked: {stderr}"
    );
    assert!(
        status.code().is_some(),
        "vigil was killed by a signal ({status}): {stderr}"
    );
    assert_ne!(status.code(), Some(101), "vigil panicked: {stderr}");
}

/// Record boundaries of a classic little-endian pcap with 16-byte record headers:
/// (offset of the record header, header + captured bytes) for every complete record.
pub fn pcap_records(bytes: &[u8]) -> Vec<(usize, usize)> {
    assert_eq!(
        &bytes[..4],
        &0xa1b2_c3d4u32.to_le_bytes(),
        "little-endian microsecond pcap expected"
    );
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let caplen = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        if at + 16 + caplen > bytes.len() {
            break;
        }
        out.push((at, 16 + caplen));
        at += 16 + caplen;
    }
    out
}

/// A run's flow events as sorted JSON lines: comparable between runs of the same packets.
pub fn flow_lines(run: &Run) -> Vec<String> {
    let mut lines: Vec<String> = run.of_type("flow").iter().map(|e| e.to_string()).collect();
    lines.sort();
    lines
}

/// Every EVE schema violation of `events`: (the validator's messages, the event).
pub fn schema_violations(events: &[Value]) -> Vec<(Vec<String>, Value)> {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(shared().join("corpus/suricata-etc/schema.json"))
            .expect("EVE schema"),
    )
    .expect("schema JSON");
    let validator = jsonschema::validator_for(&schema).expect("compile EVE schema");
    events
        .iter()
        .filter_map(|ev| {
            let errors: Vec<String> = validator.iter_errors(ev).map(|e| e.to_string()).collect();
            (!errors.is_empty()).then(|| (errors, ev.clone()))
        })
        .collect()
}

/// A free loopback port below the ephemeral range (32768 and up on Linux), so that no
/// outgoing connection of another test takes it between this check and rsyslogd's bind.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id()
        .wrapping_mul(2_654_435_761)
        .wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed) * 7_919);
    for k in 0..1000u32 {
        let port = 20_000 + (seed.wrapping_add(k * 104_729) % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between 20000 and 32000");
}

/// `promtool check metrics` on `text` via stdin: (exit success, what it printed).
pub fn promtool_check(text: &str) -> (bool, String) {
    use std::io::Write;
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (run appliance/install-deps.sh)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}
