//! Labs for active response, in network namespaces: a SPAN-port layout and a gateway layout,
//! a `vigil run` inside one, Python TCP servers and clients, and what the hosts saw.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::netns::{sh, Namespaces};

pub const SERVER_PORT: &str = "7000";

/// `vigil run` inside a namespace; killed on drop if the test did not stop it.
pub struct Daemon {
    child: Child,
    log: PathBuf,
    eve: PathBuf,
}

impl Daemon {
    pub fn start(ns: &str, dir: &Path, config: &Path, extra: &[&str]) -> Daemon {
        let log = dir.join(format!("vigil-{}.log", std::process::id()));
        let eve = dir.join("eve");
        let child = Command::new("ip")
            .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_vigil"), "run"])
            .arg("--config")
            .arg(config)
            .arg("--eve-dir")
            .arg(&eve)
            .args(["--workers", "1", "--no-rules-cache"])
            .args(if extra.contains(&"--metrics-listen") {
                &[][..]
            } else {
                &["--metrics-listen", ""][..]
            })
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

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn wait_for_log(&self, needle: &str) {
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

    pub fn events(&self) -> Vec<Value> {
        read_events(&self.eve)
    }

    /// Waits for a `response` event `pred` accepts (the output thread writes within ~1 s).
    pub fn wait_for_response(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
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
    pub fn stop(mut self) -> String {
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

pub fn read_events(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("eve.json"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

pub fn responses(events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["event_type"] == "response")
        .cloned()
        .collect()
}

/// The server process; killed on drop, so a failing test leaves none behind.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A Python TCP server in `ns`: accepts connections and reads until each ends; with `report`
/// it prints how its first connection ended (`reset`, `closed`, `timeout`) after data came.
pub fn start_server(ns: &str, report: bool) -> Server {
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
pub fn client(ns: &str, server: &str, payload: &str, wait_secs: u32) -> String {
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
pub fn connects(ns: &str, server: &str) -> bool {
    client(ns, server, "hello", 0) != "connect-failed"
}

pub fn write_rules(dir: &Path, rules: &str) -> PathBuf {
    let path = dir.join("response.rules");
    std::fs::write(&path, rules).unwrap();
    path
}

/// SPAN-port layout: client and server namespaces on a bridge (`sw`), each bridge port's
/// ingress mirrored to `mon0`; Vigil's namespace holds `mon1` (capture) and `inj1`, whose peer
/// is a bridge port without MAC learning (so the spoofed sources of injected resets do not
/// move the hosts' entries), as an injection port on a switch.
pub struct SpanLab {
    _ns: Namespaces,
    pub client: String,
    pub server: String,
    pub sensor: String,
}

impl SpanLab {
    /// Writes `rules` and a config for Vigil in this lab: capture on `mon1`, response on
    /// without a firewall or state file; `capture` and `response` add lines to their sections.
    pub fn config(dir: &Path, rules: &str, capture: &str, response: &str) -> PathBuf {
        let rules = write_rules(dir, rules);
        let config = dir.join("vigil.toml");
        std::fs::write(
            &config,
            format!(
                "[capture]\ninterfaces = [\"mon1\"]\n{capture}[rules]\nfiles = [{:?}]\n[response]\nenabled = true\nfirewall = \"none\"\nstate_file = \"\"\n{response}control_socket = {:?}\n",
                rules.display().to_string(),
                dir.join("control.sock").display().to_string(),
            ),
        )
        .expect("config");
        config
    }

    pub fn new() -> SpanLab {
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
pub fn mirror(ns: &str, port: &str, to: &str) {
    sh(&["tc", "-n", ns, "qdisc", "add", "dev", port, "clsact"]);
    sh(&[
        // u32 matching everything: the matchall classifier is not in every kernel.
        "tc", "-n", ns, "filter", "add", "dev", port, "ingress", "protocol", "all", "u32", "match",
        "u32", "0", "0", "action", "mirred", "egress", "mirror", "dev", to,
    ]);
}

/// Gateway layout: three client namespaces and a server namespace routed through `gw`,
/// where Vigil runs (its nftables table sits on the path) and captures a mirror of what
/// enters the gateway's ports.
pub struct GatewayLab {
    pub ns: Namespaces,
    pub clients: Vec<String>,
    pub server: String,
    pub gw: String,
}

impl GatewayLab {
    pub fn new() -> GatewayLab {
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

    pub fn config(&self, dir: &Path, block_for: &str) -> PathBuf {
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

    pub fn socket(&self, dir: &Path) -> PathBuf {
        dir.join("control.sock")
    }

    /// Addresses in the nftables set `block4` of Vigil's table in the gateway.
    pub fn blocked(&self) -> Vec<String> {
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

    pub fn table_exists(&self) -> bool {
        let out = Namespaces::exec(&self.gw, &["nft", "list", "tables"]);
        String::from_utf8_lossy(&out.stdout).contains("vigiltest")
    }
}

pub fn vigil_ctl(args: &[&str], socket: &Path) -> (bool, String) {
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
