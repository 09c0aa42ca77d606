//! Active response latency, in network namespaces (needs root; says so and exits otherwise):
//!
//!   cargo bench --bench response -- [--sessions N]
//!
//! - **reset**: the SPAN-port lab (client and server on a bridge, Vigil on a `tc mirred` copy,
//!   resets injected through a bridge port). N sessions each send content a `rejectboth` rule
//!   matches. Reported: alert-to-reset (the worker's decision to the second RST handed to the
//!   kernel, from the `response` events), and what the client sees: its send to ECONNRESET
//!   (mirror, capture, reassembly, detection and injection included), with the AF_PACKET
//!   block timeout at its default (10 ms, which a quiet link waits out) and at 1 ms.
//! - **block**: the gateway lab (Vigil on the router, its nftables table in the path). N
//!   sessions from N different client addresses each send content an `alert` rule matches; a
//!   policy blocks the source. Reported: alert-to-block (decision to the `nft` transaction
//!   committed), from the `response` events.
//!
//! The usual alternative, a script tailing `eve.json` into the firewall, takes 300–500 ms.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::Duration;

use common::lab::{read_events, responses, start_server, write_rules, Daemon, GatewayLab, SpanLab};
use common::netns::{is_root, sh, Namespaces};

fn main() {
    let mut sessions = 200usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--sessions" => {
                sessions = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--sessions N")
            }
            "--bench" => {}
            other => panic!("unknown argument {other:?} (--sessions N)"),
        }
    }
    if !is_root() {
        println!("response bench: needs root (network namespaces, nftables); skipped");
        return;
    }
    println!("# Active response latency: {sessions} sessions each");
    println!("| action | what | p50 | p99 | max | n |");
    println!("|---|---|---|---|---|---|");
    for block_timeout_ms in [10, 1] {
        resets(sessions, block_timeout_ms);
    }
    blocks(sessions.min(250));
}

fn percentiles(label: &str, what: &str, mut us: Vec<u64>) {
    assert!(!us.is_empty(), "{label}: no samples");
    us.sort_unstable();
    let at = |q: f64| us[((us.len() - 1) as f64 * q).round() as usize];
    let ms = |v: u64| format!("{:.2} ms", v as f64 / 1000.0);
    println!(
        "| {label} | {what} | {} | {} | {} | {} |",
        ms(at(0.5)),
        ms(at(0.99)),
        ms(*us.last().unwrap_or(&0)),
        us.len()
    );
}

fn latencies(events: &[serde_json::Value], action: &str) -> Vec<u64> {
    responses(events)
        .iter()
        .filter(|e| e["response"]["action"] == action && e["response"]["outcome"] == "done")
        .filter_map(|e| e["response"]["latency_us"].as_u64())
        .collect()
}

fn wait_for(dir: &Path, action: &str, n: usize) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let events = read_events(&dir.join("eve"));
        if latencies(&events, action).len() >= n || std::time::Instant::now() > deadline {
            return events;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn resets(sessions: usize, block_timeout_ms: u32) {
    let lab = SpanLab::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = SpanLab::config(
        dir.path(),
        "rejectboth tcp any any -> any 7000 (msg:\"VIGIL bench reject\"; flow:established,to_server; content:\"VIGIL-REJECT-ME\"; sid:9200001; rev:1;)\n",
        &format!("block_timeout_ms = {block_timeout_ms}\n"),
        "max_actions_per_minute = 1000000\n",
    );
    let daemon = Daemon::start(
        &lab.sensor,
        dir.path(),
        &config,
        &["--inject-iface", "inj1"],
    );
    let _server = start_server(&lab.server, false);
    let script = r#"
import socket, sys, time
n = int(sys.argv[1])
for i in range(n):
    s = socket.create_connection(("10.88.0.2", 7000), timeout=2)
    s.settimeout(5)
    t0 = time.perf_counter()
    s.sendall(b"VIGIL-REJECT-ME")
    try:
        s.recv(4096)
        print("noreset")
    except ConnectionResetError:
        print(int((time.perf_counter() - t0) * 1e6))
    except socket.timeout:
        print("timeout")
    s.close()
"#;
    let out = Namespaces::exec(
        &lab.client,
        &["python3", "-c", script, &sessions.to_string()],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let wire: Vec<u64> = text.lines().filter_map(|l| l.parse().ok()).collect();
    let missed = text.lines().filter(|l| l.parse::<u64>().is_err()).count();
    let events = wait_for(dir.path(), "reset", sessions);
    daemon.stop();
    percentiles("reset", "alert → RSTs sent", latencies(&events, "reset"));
    percentiles(
        "reset",
        &format!("client: send → ECONNRESET, capture block_timeout_ms = {block_timeout_ms}"),
        wire,
    );
    if missed > 0 {
        println!("| reset | sessions not reset | {missed} | | | |");
    }
}

fn blocks(sessions: usize) {
    let lab = GatewayLab::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = write_rules(
        dir.path(),
        "alert tcp any any -> any 7000 (msg:\"VIGIL bench block\"; flow:established,to_server; content:\"VIGIL-BLOCK-ME\"; sid:9200002; rev:1;)\n",
    );
    let config = dir.path().join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "[capture]\ninterfaces = [\"mon1\"]\n[rules]\nfiles = [{:?}]\n[response]\nenabled = true\ninject_iface = \"gc1\"\nmax_actions_per_minute = 1000000\nnft_table = \"vigiltest\"\nstate_file = \"\"\ncontrol_socket = {:?}\n[[response.policy]]\nsids = [9200002]\nblock = \"src\"\nfor = \"1h\"\n",
            rules.display().to_string(),
            dir.path().join("control.sock").display().to_string(),
        ),
    )
    .expect("config");
    // One client address per session, so each is a new block.
    let batch = dir.path().join("addrs.batch");
    let addrs: Vec<String> = (0..sessions)
        .map(|i| format!("10.89.1.{}", 2 + i))
        .collect();
    let lines: String = addrs
        .iter()
        .skip(1)
        .map(|a| format!("addr add {a}/24 dev eth0\n"))
        .collect();
    std::fs::write(&batch, lines).expect("batch");
    sh(&[
        "ip",
        "-n",
        &lab.clients[0],
        "-batch",
        &batch.display().to_string(),
    ]);
    let daemon = Daemon::start(&lab.gw, dir.path(), &config, &[]);
    let _server = start_server(&lab.server, false);
    let script = r#"
import socket, sys, time
for addr in sys.argv[1].split(","):
    s = socket.socket()
    s.bind((addr, 0))
    s.settimeout(2)
    s.connect(("10.89.9.2", 7000))
    s.sendall(b"VIGIL-BLOCK-ME")
    s.close()
    time.sleep(0.05)
"#;
    let out = Namespaces::exec(
        &lab.clients[0],
        &["python3", "-c", script, &addrs.join(",")],
    );
    assert!(
        out.status.success(),
        "block client: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = wait_for(dir.path(), "block", sessions);
    let blocked = lab.blocked().len();
    daemon.stop();
    percentiles(
        "block",
        "alert → nft set holds it",
        latencies(&events, "block"),
    );
    println!("| block | addresses in the set | {blocked} | | | |");
}
