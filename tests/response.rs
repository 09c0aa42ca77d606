//! Active response end to end, in network namespaces the tests create: real TCP sessions
//! between client and server namespaces, Vigil capturing a `tc mirred` copy of their traffic,
//! resets injected onto the wire and blocks in a real nftables table. What counts is what the
//! hosts see: ECONNRESET, a connection that fails, one that still works. Needs root; skips
//! otherwise (the replay dry-run test runs anywhere).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::netns::{sh, skip_unless_root, Namespaces};
use serde_json::Value;

const SERVER_PORT: &str = "7000";

/// `vigil run` inside a namespace; killed on drop if the test did not stop it.
struct Daemon {
    child: Child,
    log: PathBuf,
    eve: PathBuf,
}

impl Daemon {
    fn start(ns: &str, dir: &Path, config: &Path, extra: &[&str]) -> Daemon {
        let log = dir.join(format!("vigil-{}.log", std::process::id()));
        let eve = dir.join("eve");
        let child = Command::new("ip")
            .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_vigil"), "run"])
            .arg("--config")
            .arg(config)
            .arg("--eve-dir")
            .arg(&eve)
            .args(["--workers", "1", "--no-rules-cache", "--metrics-listen", ""])
            .args(extra)
            .env("VIGIL_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start vigil run");
        let daemon = Daemon { child, log, eve };
        daemon.wait_for_log("capturing");
        daemon
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.log_text().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "vigil never logged {needle:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn events(&self) -> Vec<Value> {
        read_events(&self.eve)
    }

    /// Waits for a `response` event `pred` accepts (the output thread writes within ~1 s).
    fn wait_for_response(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(ev) = responses(&self.events()).into_iter().find(|e| pred(e)) {
                return ev;
            }
            assert!(
                Instant::now() < deadline,
                "no response event {what}; events: {:#?}\nlog:\n{}",
                responses(&self.events()),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM; the daemon must exit 0.
    fn stop(mut self) -> String {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "vigil did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "vigil run failed:\n{}", self.log_text());
        self.log_text()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_events(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("eve.json"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn responses(events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["event_type"] == "response")
        .cloned()
        .collect()
}

/// The server process; killed on drop, so a failing test leaves none behind.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A Python TCP server in `ns`: accepts connections and reads until each ends; with `report`
/// it prints how its first connection ended (`reset`, `closed`, `timeout`) after data came.
fn start_server(ns: &str, report: bool) -> Server {
    let script = r#"
import socket, sys, threading
report = sys.argv[2] == "1"
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", int(sys.argv[1])))
srv.listen(64)
print("listening", flush=True)
def serve(conn, first):
    conn.settimeout(20)
    outcome = "closed"
    try:
        got = conn.recv(4096)
        if first and report:
            print("got " + got.decode(errors="replace"), flush=True)
        while conn.recv(4096):
            pass
    except ConnectionResetError:
        outcome = "reset"
    except socket.timeout:
        outcome = "timeout"
    if first and report:
        print(outcome, flush=True)
    conn.close()
first = True
while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn, first), daemon=True).start()
    first = False
"#;
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "python3",
            "-u",
            "-c",
            script,
            SERVER_PORT,
        ])
        .arg(if report { "1" } else { "0" })
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 server");
    let mut line = String::new();
    let stdout = child.stdout.as_mut().expect("server stdout");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).expect("read");
    let server = Server(child);
    assert_eq!(line.trim(), "listening");
    server
}

/// Connects from `ns` to `server`, sends `payload`, then waits for the server's answer:
/// `connect-failed`, or how the connection ended (`reset`, `closed`, `timeout`); with no wait,
/// `connected` once the payload is sent.
fn client(ns: &str, server: &str, payload: &str, wait_secs: u32) -> String {
    let script = r#"
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
except OSError:
    print("connect-failed")
    sys.exit(0)
s.sendall(sys.argv[3].encode())
if float(sys.argv[4]) == 0:
    print("connected")
    sys.exit(0)
s.settimeout(float(sys.argv[4]))
try:
    print("closed" if not s.recv(4096) else "data")
except ConnectionResetError:
    print("reset")
except socket.timeout:
    print("timeout")
"#;
    let out = Namespaces::exec(
        ns,
        &[
            "python3",
            "-c",
            script,
            server,
            SERVER_PORT,
            payload,
            &wait_secs.to_string(),
        ],
    );
    assert!(
        out.status.success(),
        "client: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Whether a fresh connection from `ns` to `server` gets through.
fn connects(ns: &str, server: &str) -> bool {
    client(ns, server, "hello", 0) != "connect-failed"
}

fn write_rules(dir: &Path, rules: &str) -> PathBuf {
    let path = dir.join("response.rules");
    std::fs::write(&path, rules).unwrap();
    path
}

/// SPAN-port layout: client and server namespaces on a bridge (`sw`), each bridge port's
/// ingress mirrored to `mon0`; Vigil's namespace holds `mon1` (capture) and `inj1`, whose peer
/// is a bridge port without MAC learning (so the spoofed sources of injected resets do not
/// move the hosts' entries), as an injection port on a switch.
struct SpanLab {
    _ns: Namespaces,
    client: String,
    server: String,
    sensor: String,
}

impl SpanLab {
    fn new() -> SpanLab {
        let mut ns = Namespaces::new();
        let client = ns.add("c");
        let server = ns.add("s");
        let switch = ns.add("w");
        let sensor = ns.add("n");
        ns.link(&client, "eth0", &switch, "pc");
        ns.link(&server, "eth0", &switch, "ps");
        ns.link(&sensor, "mon1", &switch, "mon0");
        ns.link(&sensor, "inj1", &switch, "pi");
        sh(&["ip", "-n", &switch, "link", "add", "br0", "type", "bridge"]);
        for port in ["pc", "ps", "pi"] {
            sh(&["ip", "-n", &switch, "link", "set", port, "master", "br0"]);
        }
        sh(&["ip", "-n", &switch, "link", "set", "br0", "up"]);
        sh(&[
            "ip", "netns", "exec", &switch, "bridge", "link", "set", "dev", "pi", "learning", "off",
        ]);
        for port in ["pc", "ps"] {
            mirror(&switch, port, "mon0");
        }
        sh(&[
            "ip",
            "-n",
            &client,
            "addr",
            "add",
            "10.88.0.1/24",
            "dev",
            "eth0",
        ]);
        sh(&[
            "ip",
            "-n",
            &server,
            "addr",
            "add",
            "10.88.0.2/24",
            "dev",
            "eth0",
        ]);
        SpanLab {
            _ns: ns,
            client,
            server,
            sensor,
        }
    }
}

/// Mirrors what enters `port` to `to` (`tc mirred`, as a switch's SPAN session).
fn mirror(ns: &str, port: &str, to: &str) {
    sh(&["tc", "-n", ns, "qdisc", "add", "dev", port, "clsact"]);
    sh(&[
        // u32 matching everything: the matchall classifier is not in every kernel.
        "tc", "-n", ns, "filter", "add", "dev", port, "ingress", "protocol", "all", "u32", "match",
        "u32", "0", "0", "action", "mirred", "egress", "mirror", "dev", to,
    ]);
}

#[test]
fn a_reject_rule_tears_the_session_down_at_both_ends() {
    if skip_unless_root("a_reject_rule_tears_the_session_down_at_both_ends") {
        return;
    }
    let lab = SpanLab::new();
    let dir = tempfile::tempdir().unwrap();
    let rules = write_rules(
        dir.path(),
        "rejectboth tcp any any -> any 7000 (msg:\"VIGIL test reject\"; flow:established,to_server; content:\"VIGIL-REJECT-ME\"; sid:9100001; rev:1;)\n",
    );
    let config = dir.path().join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "[capture]\ninterfaces = [\"mon1\"]\n[rules]\nfiles = [{:?}]\n[response]\nenabled = true\nfirewall = \"none\"\nstate_file = \"\"\ncontrol_socket = {:?}\n",
            rules.display().to_string(),
            dir.path().join("control.sock").display().to_string(),
        ),
    )
    .unwrap();
    let daemon = Daemon::start(
        &lab.sensor,
        dir.path(),
        &config,
        &["--inject-iface", "inj1"],
    );
    let mut server = start_server(&lab.server, true);

    assert_eq!(
        client(&lab.client, "10.88.0.2", "VIGIL-REJECT-ME", 10),
        "reset",
        "the client's connection was not reset"
    );
    let stdout = server.0.stdout.take().expect("server stdout");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let got = lines.next().expect("server line").expect("read");
    assert_eq!(got, "got VIGIL-REJECT-ME");
    let ended = lines.next().expect("server line").expect("read");
    assert_eq!(ended, "reset", "the server's socket was not reset");

    let ev = daemon.wait_for_response("reset done", |e| {
        e["response"]["action"] == "reset" && e["response"]["outcome"] == "done"
    });
    assert_eq!(ev["response"]["target"], "both");
    assert_eq!(ev["response"]["iface"], "inj1");
    assert_eq!(ev["alert"]["signature_id"], 9100001);
    assert_eq!(ev["alert"]["action"], "rejectboth");
    assert!(ev["response"]["latency_us"].as_u64().is_some());
    assert_eq!(ev["src_ip"], "10.88.0.1");

    // A session without the content is left alone.
    assert_eq!(client(&lab.client, "10.88.0.2", "hello", 1), "timeout");
    drop(server);
    let log = daemon.stop();
    assert!(log.contains("active response ready"), "{log}");
    let resets = responses(&read_events(&dir.path().join("eve")))
        .iter()
        .filter(|e| e["response"]["action"] == "reset")
        .count();
    assert_eq!(resets, 1, "only the rejected session is reset");
}

/// Gateway layout: three client namespaces and a server namespace routed through `gw`,
/// where Vigil runs (its nftables table sits on the path) and captures a mirror of what
/// enters the gateway's ports.
struct GatewayLab {
    ns: Namespaces,
    clients: Vec<String>,
    server: String,
    gw: String,
}

impl GatewayLab {
    fn new() -> GatewayLab {
        let mut ns = Namespaces::new();
        let gw = ns.add("g");
        let server = ns.add("s");
        sh(&[
            "ip",
            "netns",
            "exec",
            &gw,
            "sysctl",
            "-q",
            "-w",
            "net.ipv4.ip_forward=1",
        ]);
        let mut clients = Vec::new();
        for n in 1..=3 {
            let c = ns.add(&format!("c{n}"));
            let port = format!("gc{n}");
            ns.link(&c, "eth0", &gw, &port);
            sh(&[
                "ip",
                "-n",
                &c,
                "addr",
                "add",
                &format!("10.89.{n}.2/24"),
                "dev",
                "eth0",
            ]);
            sh(&[
                "ip",
                "-n",
                &c,
                "route",
                "add",
                "default",
                "via",
                &format!("10.89.{n}.1"),
            ]);
            sh(&[
                "ip",
                "-n",
                &gw,
                "addr",
                "add",
                &format!("10.89.{n}.1/24"),
                "dev",
                &port,
            ]);
            clients.push(c);
        }
        ns.link(&server, "eth0", &gw, "gs");
        sh(&[
            "ip",
            "-n",
            &server,
            "addr",
            "add",
            "10.89.9.2/24",
            "dev",
            "eth0",
        ]);
        sh(&[
            "ip",
            "-n",
            &server,
            "route",
            "add",
            "default",
            "via",
            "10.89.9.1",
        ]);
        sh(&["ip", "-n", &gw, "addr", "add", "10.89.9.1/24", "dev", "gs"]);
        ns.link(&gw, "mon0", &gw, "mon1");
        for port in ["gc1", "gc2", "gc3", "gs"] {
            mirror(&gw, port, "mon0");
        }
        GatewayLab {
            ns,
            clients,
            server,
            gw,
        }
    }

    fn config(&self, dir: &Path, block_for: &str) -> PathBuf {
        let rules = write_rules(
            dir,
            "drop tcp any any -> any 7000 (msg:\"VIGIL test drop\"; flow:established,to_server; content:\"VIGIL-BLOCK-ME\"; classtype:trojan-activity; sid:9100002; rev:1;)\n",
        );
        let config = dir.join("vigil.toml");
        std::fs::write(
            &config,
            format!(
                "[capture]\ninterfaces = [\"mon1\"]\n[rules]\nfiles = [{:?}]\n[response]\nenabled = true\ninject_iface = \"gc1\"\nallowlist = [\"10.89.3.0/24\"]\ndrop_block_for = {block_for:?}\nnft_table = \"vigiltest\"\nstate_file = {:?}\ncontrol_socket = {:?}\n",
                rules.display().to_string(),
                dir.join("blocks.json").display().to_string(),
                self.socket(dir).display().to_string(),
            ),
        )
        .unwrap();
        config
    }

    fn socket(&self, dir: &Path) -> PathBuf {
        dir.join("control.sock")
    }

    /// Addresses in the nftables set `block4` of Vigil's table in the gateway.
    fn blocked(&self) -> Vec<String> {
        let out = Namespaces::exec(
            &self.gw,
            &["nft", "-j", "list", "set", "inet", "vigiltest", "block4"],
        );
        if !out.status.success() {
            return Vec::new();
        }
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let mut addrs = Vec::new();
        for item in v["nftables"].as_array().into_iter().flatten() {
            for elem in item["set"]["elem"].as_array().into_iter().flatten() {
                if let Some(a) = elem["elem"]["val"].as_str().or(elem.as_str()) {
                    addrs.push(a.to_string());
                }
            }
        }
        addrs
    }

    fn table_exists(&self) -> bool {
        let out = Namespaces::exec(&self.gw, &["nft", "list", "tables"]);
        String::from_utf8_lossy(&out.stdout).contains("vigiltest")
    }
}

fn vigil_ctl(args: &[&str], socket: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .arg("--socket")
        .arg(socket)
        .output()
        .expect("vigil");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn a_drop_rule_blocks_the_client_until_the_block_expires_and_spares_the_allowlist() {
    if skip_unless_root("a_drop_rule_blocks_the_client_until_the_block_expires") {
        return;
    }
    let lab = GatewayLab::new();
    let dir = tempfile::tempdir().unwrap();
    let config = lab.config(dir.path(), "6s");
    let daemon = Daemon::start(&lab.gw, dir.path(), &config, &[]);
    assert!(
        lab.table_exists(),
        "vigil did not create its nftables table"
    );
    let server = start_server(&lab.server, false);
    let (c1, c2, c3) = (&lab.clients[0], &lab.clients[1], &lab.clients[2]);
    for c in [c1, c2, c3] {
        assert!(
            connects(c, "10.89.9.2"),
            "{c} cannot reach the server before any block"
        );
    }

    client(c1, "10.89.9.2", "VIGIL-BLOCK-ME", 1);
    let ev = daemon.wait_for_response("block of client 1", |e| {
        e["response"]["action"] == "block" && e["response"]["outcome"] == "done"
    });
    assert_eq!(ev["response"]["address"], "10.89.1.2");
    assert_eq!(ev["response"]["for"], 6);
    assert_eq!(ev["alert"]["action"], "drop");
    assert_eq!(lab.blocked(), vec!["10.89.1.2".to_string()]);
    assert!(
        !connects(c1, "10.89.9.2"),
        "the blocked client still connects"
    );
    assert!(
        connects(c2, "10.89.9.2"),
        "another client no longer connects"
    );

    // The allowlisted client sends the same content: never blocked.
    client(c3, "10.89.9.2", "VIGIL-BLOCK-ME", 1);
    let refused = daemon.wait_for_response("refusal for the allowlisted client", |e| {
        e["response"]["action"] == "block" && e["response"]["outcome"] == "refused"
    });
    assert_eq!(refused["response"]["address"], "10.89.3.2");
    assert!(refused["response"]["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("allowlisted"));
    assert!(connects(c3, "10.89.9.2"));
    assert!(!lab.blocked().contains(&"10.89.3.2".to_string()));

    // Expiry lifts the block by itself.
    daemon.wait_for_response("expiry", |e| {
        e["response"]["action"] == "unblock" && e["response"]["outcome"] == "expired"
    });
    assert!(lab.blocked().is_empty(), "{:?}", lab.blocked());
    assert!(connects(c1, "10.89.9.2"), "the block did not expire");
    drop(server);
    let log = daemon.stop();
    assert!(log.contains("blocks active"), "{log}");
}

#[test]
fn operator_blocks_survive_a_restart_once_and_the_allowlist_refuses_them() {
    if skip_unless_root("operator_blocks_survive_a_restart_once") {
        return;
    }
    let lab = GatewayLab::new();
    let dir = tempfile::tempdir().unwrap();
    let config = lab.config(dir.path(), "10m");
    let socket = lab.socket(dir.path());
    let server = start_server(&lab.server, false);
    let c2 = &lab.clients[1];

    let daemon = Daemon::start(&lab.gw, dir.path(), &config, &[]);
    let (ok, out) = vigil_ctl(
        &["block", "10.89.2.2", "--for", "1h", "--reason", "test"],
        &socket,
    );
    assert!(ok, "{out}");
    assert!(
        !connects(c2, "10.89.9.2"),
        "blocked by the operator, still connects"
    );
    let (ok, out) = vigil_ctl(&["block", "10.89.3.2"], &socket);
    assert!(!ok, "an allowlisted address was blocked: {out}");
    assert!(out.contains("allowlisted"), "{out}");
    let (ok, out) = vigil_ctl(&["block", "10.89.9.1"], &socket);
    assert!(
        !ok && out.contains("own address"),
        "own address blocked: {out}"
    );
    daemon.stop();

    // A new daemon finds the block (state file and set) and does not add it twice.
    let daemon = Daemon::start(&lab.gw, dir.path(), &config, &[]);
    let (ok, out) = vigil_ctl(&["blocks", "--json"], &socket);
    assert!(ok, "{out}");
    let listed: Vec<Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(listed.len(), 1, "{out}");
    assert_eq!(listed[0]["addr"], "10.89.2.2");
    assert!(
        listed[0]["reason"].as_str().unwrap().contains("test"),
        "{out}"
    );
    let (ok, out) = vigil_ctl(&["block", "10.89.2.2", "--for", "30m"], &socket);
    assert!(ok && out.contains("already-blocked"), "{out}");
    assert_eq!(lab.blocked(), vec!["10.89.2.2".to_string()]);
    assert!(!connects(c2, "10.89.9.2"));

    let (ok, out) = vigil_ctl(&["unblock", "10.89.2.2"], &socket);
    assert!(ok, "{out}");
    assert!(lab.blocked().is_empty());
    assert!(connects(c2, "10.89.9.2"), "unblocked, still cannot connect");
    let ev = daemon.wait_for_response("operator unblock", |e| {
        e["response"]["action"] == "unblock" && e["response"]["outcome"] == "done"
    });
    assert_eq!(ev["response"]["operator_uid"], 0);
    drop(server);
    daemon.stop();
    drop(lab.ns);
}

#[test]
fn dry_run_logs_what_it_would_do_and_changes_nothing() {
    if skip_unless_root("dry_run_logs_what_it_would_do_and_changes_nothing") {
        return;
    }
    let lab = GatewayLab::new();
    let dir = tempfile::tempdir().unwrap();
    let config = lab.config(dir.path(), "10m");
    let daemon = Daemon::start(&lab.gw, dir.path(), &config, &["--respond=dry-run"]);
    let server = start_server(&lab.server, false);
    let c1 = &lab.clients[0];
    assert_eq!(client(c1, "10.89.9.2", "VIGIL-BLOCK-ME", 1), "timeout");
    let ev = daemon.wait_for_response("dry-run block", |e| {
        e["response"]["action"] == "block" && e["response"]["outcome"] == "dry-run"
    });
    assert_eq!(ev["response"]["dry_run"], true);
    daemon.wait_for_response("dry-run reset", |e| {
        e["response"]["action"] == "reset" && e["response"]["outcome"] == "dry-run"
    });
    assert!(!lab.table_exists(), "dry-run created the firewall table");
    assert!(connects(c1, "10.89.9.2"));
    assert!(!dir.path().join("blocks.json").exists());
    drop(server);
    daemon.stop();
}

/// Replay runs the policy in dry-run: no root, no namespaces; the decisions are in the events.
#[test]
fn replay_dry_run_shows_the_policy_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("mixed.pcap");
    common::generate(
        &pcap,
        &vigil_pcapgen::GenConfig {
            seed: 7,
            target_bytes: 400_000,
            // Tunnelled flows have no plain Ethernet header to reset with (tested apart).
            encap_share: 0.0,
            ..Default::default()
        },
    );
    let rules = write_rules(
        dir.path(),
        "reject tcp any any -> any any (msg:\"VIGIL test GET\"; flow:established,to_server; content:\"GET\"; http_method; sid:9100003; rev:1;)\n",
    );
    let config = dir.path().join("vigil.toml");
    std::fs::write(
        &config,
        "[response]\n[[response.policy]]\nname = \"block web clients\"\nsids = [9100003]\nblock = \"src\"\nfor = \"2h\"\n",
    )
    .unwrap();
    let out = common::vigil([
        "replay".as_ref(),
        pcap.as_os_str(),
        "--config".as_ref(),
        config.as_os_str(),
        "--rules".as_ref(),
        rules.as_os_str(),
        "--respond=dry-run".as_ref(),
        "-l".as_ref(),
        dir.path().as_os_str(),
        "--no-rules-cache".as_ref(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = read_events(dir.path());
    let alerts = events.iter().filter(|e| e["event_type"] == "alert").count();
    assert!(alerts > 0, "the rule did not alert");
    let resp = responses(&events);
    let resets: Vec<&Value> = resp
        .iter()
        .filter(|e| e["response"]["action"] == "reset")
        .collect();
    let blocks: Vec<&Value> = resp
        .iter()
        .filter(|e| e["response"]["action"] == "block")
        .collect();
    assert!(!resets.is_empty() && !blocks.is_empty(), "{resp:#?}");
    for r in &resets {
        assert_eq!(r["response"]["outcome"], "dry-run", "{r}");
        assert_eq!(r["response"]["target"], "src");
        assert_eq!(r["alert"]["signature_id"], 9100003);
    }
    for b in &blocks {
        assert_eq!(b["response"]["outcome"], "dry-run", "{b}");
        assert_eq!(b["response"]["for"], 7200);
        assert_eq!(b["response"]["address"], b["src_ip"]);
        let reasons = b["response"]["reasons"].to_string();
        assert!(reasons.contains("block web clients"), "{reasons}");
        assert!(reasons.contains("rule action reject"), "{reasons}");
    }
    // Replay cannot act: on the command line `on` is refused.
    let refused = common::vigil([
        "replay".as_ref(),
        pcap.as_os_str(),
        "--respond=on".as_ref(),
        "-l".as_ref(),
        dir.path().as_os_str(),
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("dry-run"));
}
