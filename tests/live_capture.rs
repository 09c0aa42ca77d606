//! Live capture end to end: `vigil run` on one end of a veth pair inside network namespaces
//! the test creates, `tcpreplay` sending a pcap from the other end; the events must equal those
//! of `vigil replay` on the same pcap (timestamps aside). Needs root; skips otherwise.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

static NEXT_PAIR: AtomicU32 = AtomicU32::new(0);

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    eprintln!("skipping {test}: live capture needs root (network namespaces, raw sockets)");
    true
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e} (run appliance/install-deps.sh)"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two namespaces joined by a veth pair: `sender` in `tx`, `capture` in `rx`. Removed on drop.
struct VethPair {
    tx: String,
    rx: String,
}

impl VethPair {
    fn new() -> VethPair {
        let id = format!(
            "{}-{}",
            std::process::id(),
            NEXT_PAIR.fetch_add(1, Ordering::SeqCst)
        );
        let pair = VethPair {
            tx: format!("vgt-{id}"),
            rx: format!("vgr-{id}"),
        };
        for ns in [&pair.tx, &pair.rx] {
            sh(&["ip", "netns", "add", ns]);
            // No router solicitations or MLD reports of the namespaces' own: only the pcap's
            // frames cross the link.
            for key in ["all", "default"] {
                sh(&[
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    "sysctl",
                    "-q",
                    "-w",
                    &format!("net.ipv6.conf.{key}.disable_ipv6=1"),
                ]);
            }
        }
        sh(&[
            "ip", "-n", &pair.tx, "link", "add", "send0", "type", "veth", "peer", "name", "cap0",
            "netns", &pair.rx,
        ]);
        for (ns, dev) in [(&pair.tx, "send0"), (&pair.rx, "cap0")] {
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            // Offloads would merge or split frames between the two ends.
            let _ = Command::new("ip")
                .args([
                    "netns", "exec", ns, "ethtool", "-K", dev, "gro", "off", "tso", "off",
                ])
                .args(["gso", "off", "rxvlan", "off", "txvlan", "off"])
                .output();
        }
        pair
    }

    /// A second link between the same namespaces: `send1` ↔ `cap1`.
    fn add_second_link(&self) {
        sh(&[
            "ip", "-n", &self.tx, "link", "add", "send1", "type", "veth", "peer", "name", "cap1",
            "netns", &self.rx,
        ]);
        for (ns, dev) in [(&self.tx, "send1"), (&self.rx, "cap1")] {
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
            let _ = Command::new("ip")
                .args([
                    "netns", "exec", ns, "ethtool", "-K", dev, "gro", "off", "tso", "off",
                ])
                .args(["gso", "off", "rxvlan", "off", "txvlan", "off"])
                .output();
        }
    }

    fn set_queues(&self, queues: usize) {
        let n = queues.to_string();
        for (ns, dev) in [(&self.tx, "send0"), (&self.rx, "cap0")] {
            sh(&[
                "ip", "netns", "exec", ns, "ethtool", "-L", dev, "rx", &n, "tx", &n,
            ]);
        }
    }

    fn send(&self, pcap: &Path) {
        self.send_on(pcap, "send0");
    }

    fn send_on(&self, pcap: &Path, dev: &str) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.tx])
            .args(["tcpreplay", "-q", "--mbps=200", "-i", dev])
            .arg(pcap)
            .output()
            .expect("tcpreplay (run appliance/install-deps.sh)");
        assert!(
            out.status.success(),
            "tcpreplay: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        for ns in [&self.tx, &self.rx] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// A `vigil run` inside the capture namespace; killed on drop if the test did not stop it.
struct Sensor {
    child: Child,
    log: PathBuf,
    eve_dir: PathBuf,
}

impl Sensor {
    fn start(pair: &VethPair, dir: &Path, method: &str, workers: usize, extra: &[&str]) -> Sensor {
        Sensor::start_on(pair, dir, &["cap0"], method, workers, extra)
    }

    fn start_on(
        pair: &VethPair,
        dir: &Path,
        interfaces: &[&str],
        method: &str,
        workers: usize,
        extra: &[&str],
    ) -> Sensor {
        let eve_dir = dir.join("eve");
        let log = dir.join("vigil.log");
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &pair.rx,
            env!("CARGO_BIN_EXE_vigil"),
            "run",
        ]);
        for iface in interfaces {
            cmd.args(["-i", iface]);
        }
        let child = cmd
            .args(["--capture", method, "--workers"])
            .arg(workers.to_string())
            .arg("--eve-dir")
            .arg(&eve_dir)
            .args(["--metrics-listen", "127.0.0.1:0", "--no-rules-cache"])
            .args(extra)
            .env("VIGIL_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start vigil run");
        let sensor = Sensor {
            child,
            log,
            eve_dir,
        };
        sensor.wait_for_log("capturing", 1);
        sensor
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `needle` appears `times` times in the log.
    fn wait_for_log(&self, needle: &str, times: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.log_text().matches(needle).count() < times {
            assert!(
                Instant::now() < deadline,
                "vigil never logged {needle:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// SIGTERM, then the events it wrote.
    fn stop(mut self) -> Vec<Value> {
        // The frames tcpreplay sent are in the kernel's ring by now; give the worker a moment.
        std::thread::sleep(Duration::from_millis(500));
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "vigil did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "vigil run failed: {}", self.log_text());
        read_events(&self.eve_dir)
    }
}

impl Drop for Sensor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_events(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("eve.json"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

/// An event without what depends on when it was seen: times, and the flow ids and packet
/// numbers derived from them.
fn timeless(ev: &Value) -> String {
    let mut ev = ev.clone();
    if let Some(obj) = ev.as_object_mut() {
        for key in ["timestamp", "flow_id", "pcap_cnt", "capture_file"] {
            obj.remove(key);
        }
        if let Some(flow) = obj.get_mut("flow").and_then(Value::as_object_mut) {
            for key in ["start", "end", "age"] {
                flow.remove(key);
            }
        }
    }
    ev.to_string()
}

fn compare(live: &[Value], replayed: &[Value], what: &str) {
    let key = |events: &[Value]| {
        let mut v: Vec<String> = events
            .iter()
            .filter(|e| e["event_type"] != "stats")
            .map(timeless)
            .collect();
        v.sort();
        v
    };
    let (live_keys, replay_keys) = (key(live), key(replayed));
    let missing: Vec<_> = replay_keys
        .iter()
        .filter(|k| !live_keys.contains(k))
        .take(5)
        .collect();
    let extra: Vec<_> = live_keys
        .iter()
        .filter(|k| !replay_keys.contains(k))
        .take(5)
        .collect();
    assert!(
        live_keys == replay_keys,
        "{what}: live capture wrote {} events, replay {}; missing from live: {missing:#?}\nonly in live: {extra:#?}",
        live_keys.len(),
        replay_keys.len()
    );
}

fn final_stats(events: &[Value]) -> &Value {
    &events
        .iter()
        .rev()
        .find(|e| e["event_type"] == "stats")
        .expect("a final stats event")["stats"]
}

/// Generated traffic without IP fragments: with several workers the kernel reassembles
/// fragments before its fanout hash, so their frames differ from the file's by design.
fn test_pcap(dir: &Path) -> PathBuf {
    let path = dir.join("live.pcap");
    let cfg = vigil_pcapgen::GenConfig {
        fragment_share: 0.0,
        ..vigil_pcapgen::GenConfig::new(7, 1 << 20)
    };
    common::generate(&path, &cfg);
    path
}

fn rules_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("samples/sample.rules")
}

fn live_equals_replay(method: &str, workers: usize) {
    let dir = tempfile::tempdir().unwrap();
    let pcap = test_pcap(dir.path());
    let rules = rules_path();
    let rules = rules.to_str().unwrap();
    let replayed = common::replay(
        &[&pcap],
        1,
        &["-S", rules, "-q"],
        &dir.path().join("replay"),
    );
    assert!(replayed.status.success(), "{}", replayed.stderr);
    assert!(
        !replayed.of_type("alert").is_empty(),
        "the rules match the traffic"
    );

    let pair = VethPair::new();
    if method == "af-xdp" {
        // One AF_XDP socket and worker per RX queue.
        pair.set_queues(workers);
    }
    let sensor = Sensor::start(&pair, dir.path(), method, workers, &["-S", rules]);
    pair.send(&pcap);
    let live = sensor.stop();
    let stats = final_stats(&live);
    assert_eq!(stats["capture"]["kernel_drops"], 0, "{stats}");
    assert_eq!(
        stats["decoder"]["pkts"],
        replayed.stats()["decoder"]["pkts"],
        "every frame captured"
    );
    if method == "af-xdp" && workers > 1 {
        // veth spreads even one flow's frames over its queues (by the CPU that sent each, not
        // by a flow hash), so chunks of one flow race each other between two sockets and their
        // order is not the file's: when a flow's SYN is handed over after its FIN was seen, the
        // port-reuse rule starts a second record (real NICs hash a flow to one queue). What is
        // checked: every frame of every flow counted once, split records summed per flow.
        assert_eq!(flow_counts(&live), flow_counts(&replayed.events));
        return;
    }
    compare(
        &live,
        &replayed.events,
        &format!("{method}, {workers} worker(s)"),
    );
}

/// Every flow with the packets and bytes each end sent, however its ends were oriented; records
/// of the same flow (5-tuple, VLANs, tunnel) are summed.
fn flow_counts(events: &[Value]) -> Vec<String> {
    let mut flows: std::collections::BTreeMap<String, Vec<(String, u64, u64)>> =
        std::collections::BTreeMap::new();
    for e in events.iter().filter(|e| e["event_type"] == "flow") {
        let f = &e["flow"];
        let count = |v: &Value| v.as_u64().unwrap_or(0);
        let mut ends = [
            (
                format!("{} {}", e["src_ip"], e["src_port"]),
                count(&f["pkts_toserver"]),
                count(&f["bytes_toserver"]),
            ),
            (
                format!("{} {}", e["dest_ip"], e["dest_port"]),
                count(&f["pkts_toclient"]),
                count(&f["bytes_toclient"]),
            ),
        ];
        ends.sort();
        let mut outer = [
            e["tunnel"]["src_ip"].to_string(),
            e["tunnel"]["dest_ip"].to_string(),
        ];
        outer.sort();
        let identity = format!(
            "{} {} {} vlan={} tunnel={outer:?}",
            e["proto"], ends[0].0, ends[1].0, e["vlan"]
        );
        let sums = flows
            .entry(identity)
            .or_insert_with(|| ends.iter().map(|(a, _, _)| (a.clone(), 0, 0)).collect());
        for (sum, end) in sums.iter_mut().zip(&ends) {
            sum.1 += end.1;
            sum.2 += end.2;
        }
    }
    flows
        .into_iter()
        .map(|(identity, ends)| {
            let sent: Vec<String> = ends
                .iter()
                .map(|(a, p, b)| format!("{a} sent {p} pkts {b} bytes"))
                .collect();
            format!("{identity} {sent:?}")
        })
        .collect()
}

#[test]
fn af_packet_one_worker_equals_replay() {
    if skip_unless_root("af_packet_one_worker_equals_replay") {
        return;
    }
    live_equals_replay("af-packet", 1);
}

#[test]
fn af_packet_two_workers_equal_replay() {
    if skip_unless_root("af_packet_two_workers_equal_replay") {
        return;
    }
    live_equals_replay("af-packet", 2);
}

#[test]
fn libpcap_one_worker_equals_replay() {
    if skip_unless_root("libpcap_one_worker_equals_replay") {
        return;
    }
    live_equals_replay("pcap", 1);
}

#[test]
fn libpcap_two_workers_equal_replay() {
    if skip_unless_root("libpcap_two_workers_equal_replay") {
        return;
    }
    live_equals_replay("pcap", 2);
}

#[test]
fn af_xdp_one_worker_equals_replay() {
    if skip_unless_root("af_xdp_one_worker_equals_replay") {
        return;
    }
    live_equals_replay("af-xdp", 1);
}

#[test]
fn af_xdp_two_queues_keep_flows_whole() {
    if skip_unless_root("af_xdp_two_queues_keep_flows_whole") {
        return;
    }
    live_equals_replay("af-xdp", 2);
}

/// With one worker nothing reassembles fragments before the sensor: the bundled sample, with
/// its IPv4 and IPv6 fragments and every tunnel kind, gives exactly replay's events.
#[test]
fn af_packet_sample_with_fragments_equals_replay() {
    if skip_unless_root("af_packet_sample_with_fragments_equals_replay") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pcap = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("samples/sample.pcap");
    let replayed = common::replay(&[&pcap], 1, &["-q"], &dir.path().join("replay"));
    let pair = VethPair::new();
    let sensor = Sensor::start(&pair, dir.path(), "af-packet", 1, &[]);
    pair.send(&pcap);
    let live = sensor.stop();
    compare(&live, &replayed.events, "sample.pcap, af-packet, 1 worker");
}

/// SIGHUP during traffic: the new rules take effect, no packet is lost, the capture never
/// stops; a broken ruleset is refused and the old one keeps working.
#[test]
fn sighup_reloads_rules_without_loss() {
    if skip_unless_root("sighup_reloads_rules_without_loss") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pcap = test_pcap(dir.path());
    let rules = dir.path().join("live.rules");
    let before = "alert dns any any -> any any (msg:\"dns before reload\"; dns.query; content:\".\"; sid:1000001; rev:1;)\n";
    let after = "alert dns any any -> any any (msg:\"dns after reload\"; dns.query; content:\".\"; sid:1000002; rev:1;)\n";
    std::fs::write(&rules, before).unwrap();
    let rules_arg = rules.to_str().unwrap();

    let rule_stats = dir.path().join("rule-stats.json");
    let pair = VethPair::new();
    let sensor = Sensor::start(
        &pair,
        dir.path(),
        "af-packet",
        2,
        &[
            "-S",
            rules_arg,
            "--rule-stats",
            rule_stats.to_str().unwrap(),
        ],
    );
    pair.send(&pcap);

    // A ruleset that cannot be loaded (here: its file is gone) is refused; the old one stays.
    std::fs::remove_file(&rules).unwrap();
    sensor.signal(libc::SIGHUP);
    sensor.wait_for_log("reload refused", 1);

    std::fs::write(&rules, after).unwrap();
    sensor.signal(libc::SIGHUP);
    sensor.wait_for_log("reload done", 1);
    // Workers take the new rules at their next poll.
    std::thread::sleep(Duration::from_millis(500));
    pair.send(&pcap);
    // Workers publish their counters once a second, the daemon updates /metrics as often.
    std::thread::sleep(Duration::from_millis(2500));
    let body = scrape(&pair, &sensor);
    let live = sensor.stop();

    let replayed = common::replay(&[&pcap], 1, &["-q"], &dir.path().join("replay"));
    let pkts = replayed.stats()["decoder"]["pkts"].as_u64().unwrap();
    let stats = final_stats(&live);
    assert_eq!(
        stats["decoder"]["pkts"].as_u64(),
        Some(2 * pkts),
        "no packet lost"
    );
    assert_eq!(stats["capture"]["kernel_drops"], 0);
    let sids = |sid: u64| {
        live.iter()
            .filter(|e| e["event_type"] == "alert" && e["alert"]["signature_id"] == sid)
            .count()
    };
    let dns_queries = replayed
        .of_type("dns")
        .iter()
        .filter(|e| e["dns"]["type"] == "request" || e["dns"]["queries"].is_array())
        .count();
    assert!(sids(1_000_001) > 0, "old rules alerted before the reload");
    assert!(sids(1_000_002) > 0, "new rules alert after the reload");
    assert!(
        sids(1_000_001) + sids(1_000_002) <= 2 * dns_queries.max(1) * 2,
        "no alert counted twice"
    );
    // Per-rule counters keep the old set's alerts under its own rule across the swap: the
    // file written at exit equals eve.json per rule, and /metrics already had the old rule's
    // final count (it cannot alert after the reload) and no more of the new one's than the end.
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&rule_stats).unwrap()).unwrap();
    let counted = |sid: u64| {
        doc["rules"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["gid"] == 1 && r["signature_id"] == sid)
            .map(|r| r["alerts"].as_u64().unwrap() as usize)
            .sum::<usize>()
    };
    assert_eq!(counted(1_000_001), sids(1_000_001), "{doc}");
    assert_eq!(counted(1_000_002), sids(1_000_002), "{doc}");
    let metric = |sid: u64| {
        let series = format!("vigil_rule_alerts_total{{gid=\"1\",sid=\"{sid}\"}} ");
        body.lines()
            .find_map(|l| l.strip_prefix(&series))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{body}")) as usize
    };
    assert_eq!(metric(1_000_001), sids(1_000_001));
    let newer = metric(1_000_002);
    assert!(newer > 0 && newer <= sids(1_000_002), "{newer}");
    promtool_check(&body);
}

/// `/metrics` of a running sensor, fetched from inside its network namespace.
fn scrape(pair: &VethPair, sensor: &Sensor) -> String {
    let addr = sensor
        .log_text()
        .lines()
        .find(|l| l.contains("serving /metrics"))
        .and_then(|l| l.split("addr=").nth(1))
        .map(|a| a.trim().to_string())
        .expect("the metrics address in the log");
    let fetch = Command::new("ip")
        .args(["netns", "exec", &pair.rx, "python3", "-c"])
        .arg("import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1]).read().decode())")
        .arg(format!("http://{addr}/metrics"))
        .output()
        .unwrap();
    assert!(
        fetch.status.success(),
        "{}",
        String::from_utf8_lossy(&fetch.stderr)
    );
    String::from_utf8(fetch.stdout).unwrap()
}

/// `promtool check metrics` finds nothing to say about `body`.
fn promtool_check(body: &str) {
    let (ok, said) = common::promtool_check(body);
    assert!(ok && said.is_empty(), "promtool: {said}");
}

/// SIGHUP applies a new response policy and new anomaly thresholds while capture runs, and
/// names the settings that wait for a restart.
#[test]
fn sighup_applies_response_policy_and_anomaly_thresholds() {
    if skip_unless_root("sighup_applies_response_policy_and_anomaly_thresholds") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("scan.pcap");
    let summary = common::generate(
        &pcap,
        &vigil_pcapgen::GenConfig {
            fragment_share: 0.0,
            scenarios: vec![vigil_pcapgen::Scenario {
                kind: vigil_pcapgen::ScenarioKind::PortScan,
                count: 1,
            }],
            ..vigil_pcapgen::GenConfig::new(1105, 4 << 20)
        },
    );
    let scanner = summary.scenarios[0].actor.to_string();
    let config = dir.path().join("vigil.toml");
    let response = format!(
        "[response]\nenabled = true\ndry_run = true\nfirewall = \"none\"\n\
         control_socket = \"{}\"\nstate_file = \"{}\"\n",
        dir.path().join("control.sock").display(),
        dir.path().join("blocks.json").display()
    );
    // Before: the scan model looks for more ports than the scanner probes, and no policy.
    std::fs::write(
        &config,
        format!("{response}[anomaly.scan]\nports = 100000\n"),
    )
    .unwrap();
    let config_arg = config.to_str().unwrap();

    let pair = VethPair::new();
    let sensor = Sensor::start(&pair, dir.path(), "af-packet", 1, &["--config", config_arg]);
    pair.send(&pcap);
    std::thread::sleep(Duration::from_millis(500));

    // After: default thresholds, a policy blocking anomalous hosts, and a flow setting that
    // only a restart applies.
    std::fs::write(
        &config,
        format!(
            "[flow]\nmemcap_bytes = 67108864\n{response}\
             [[response.policy]]\nname = \"contain scanners\"\ngid = 9100\nblock = \"src\"\nfor = \"30m\"\n"
        ),
    )
    .unwrap();
    sensor.signal(libc::SIGHUP);
    sensor.wait_for_log("reload done", 1);
    assert!(
        sensor.log_text().contains("sections=flow"),
        "the flow change is named as waiting for a restart:\n{}",
        sensor.log_text()
    );
    std::thread::sleep(Duration::from_millis(500));
    let seen_before = read_events(&sensor.eve_dir);
    pair.send(&pcap);
    let live = sensor.stop();

    let scan_alerts = |events: &[Value]| {
        events
            .iter()
            .filter(|e| {
                e["event_type"] == "alert"
                    && e["alert"]["gid"] == 9100
                    && e["alert"]["signature_id"] == 1
            })
            .count()
    };
    assert_eq!(
        scan_alerts(&seen_before),
        0,
        "no scan alert before the reload"
    );
    assert!(
        scan_alerts(&live) > 0,
        "the reloaded threshold finds the scan"
    );
    let block = live
        .iter()
        .find(|e| e["event_type"] == "response" && e["response"]["action"] == "block")
        .expect("the reloaded policy blocks the scanner");
    assert_eq!(block["response"]["address"], scanner.as_str());
    assert_eq!(block["response"]["outcome"], "dry-run");
    assert!(block["response"]["reasons"]
        .to_string()
        .contains("contain scanners"));
}

/// Counters of `vigil_capture_packets_total` are not needed here: the final stats event says
/// how many frames the sensor processed.
fn captured_packets(events: &[Value]) -> u64 {
    final_stats(events)["decoder"]["pkts"].as_u64().unwrap_or(0)
}

/// After opening its sockets the daemon runs as `nobody` with only CAP_NET_RAW and
/// CAP_NET_ADMIN, and still captures.
#[test]
fn drops_privileges_after_opening_sockets() {
    if skip_unless_root("drops_privileges_after_opening_sockets") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pcap = test_pcap(dir.path());
    let pair = VethPair::new();
    let sensor = Sensor::start(&pair, dir.path(), "af-packet", 2, &["--user", "nobody"]);
    sensor.wait_for_log("dropped privileges", 1);
    let status = std::fs::read_to_string(format!("/proc/{}/status", sensor.child.id())).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert_eq!(field("Uid:"), ["65534"; 4], "{status}");
    // CAP_NET_ADMIN (12) and CAP_NET_RAW (13), nothing else, in every set that grants.
    assert_eq!(field("CapEff:"), ["0000000000003000"], "{status}");
    assert_eq!(field("CapPrm:"), ["0000000000003000"], "{status}");
    pair.send(&pcap);
    let live = sensor.stop();
    let replayed = common::replay(&[&pcap], 1, &["-q"], &dir.path().join("replay"));
    assert_eq!(captured_packets(&live), captured_packets(&replayed.events));
}

/// An interface that goes down and comes back up is captured again without a restart.
#[test]
fn resumes_after_interface_down_and_up() {
    if skip_unless_root("resumes_after_interface_down_and_up") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pcap = test_pcap(dir.path());
    let pair = VethPair::new();
    let sensor = Sensor::start(&pair, dir.path(), "af-packet", 1, &[]);
    sh(&["ip", "-n", &pair.rx, "link", "set", "cap0", "down"]);
    std::thread::sleep(Duration::from_millis(1500));
    sh(&["ip", "-n", &pair.rx, "link", "set", "cap0", "up"]);
    // Carrier comes back on both ends of the pair.
    std::thread::sleep(Duration::from_millis(1500));
    pair.send(&pcap);
    let live = sensor.stop();
    let replayed = common::replay(&[&pcap], 1, &["-q"], &dir.path().join("replay"));
    assert_eq!(captured_packets(&live), captured_packets(&replayed.events));
    compare(
        &live,
        &replayed.events,
        "after the interface went down and up",
    );
}

/// The daemon speaks systemd's notify protocol: READY when capturing, WATCHDOG at half the
/// watchdog interval, RELOADING/READY around a SIGHUP, STOPPING on SIGTERM.
#[test]
fn notifies_systemd() {
    if skip_unless_root("notifies_systemd") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let pair = VethPair::new();
    let eve_dir = dir.path().join("eve");
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &pair.rx,
            env!("CARGO_BIN_EXE_vigil"),
            "run",
        ])
        .args(["-i", "cap0", "--workers", "1", "--metrics-listen", ""])
        .arg("--eve-dir")
        .arg(&eve_dir)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "1000000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 512];
    let mut next = || {
        let n = socket.recv(&mut buf).expect("a notification within 30 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let first = next();
    assert!(first.contains("READY=1"), "{first}");
    let watchdog = next();
    assert!(watchdog.contains("WATCHDOG=1"), "{watchdog}");
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    let mut seen = Vec::new();
    while !seen.iter().any(|m: &String| m.contains("READY=1")) {
        seen.push(next());
    }
    assert!(
        seen.iter()
            .any(|m| m.contains("RELOADING=1") && m.contains("MONOTONIC_USEC=")),
        "{seen:?}"
    );
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut last = String::new();
    while !last.contains("STOPPING=1") {
        last = next();
    }
    assert!(child.wait().unwrap().success());
}

/// `/metrics` of the running daemon counts what it captured, per interface and worker, and
/// passes `promtool check metrics`.
#[test]
fn metrics_count_the_capture() {
    if skip_unless_root("metrics_count_the_capture") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pcap = test_pcap(dir.path());
    let pair = VethPair::new();
    let sensor = Sensor::start(&pair, dir.path(), "af-packet", 2, &[]);
    pair.send(&pcap);
    // Workers publish their counters once a second.
    std::thread::sleep(Duration::from_millis(2500));
    let body = scrape(&pair, &sensor);
    let live = sensor.stop();
    promtool_check(&body);
    let sum = |name: &str| -> u64 {
        body.lines()
            .filter(|l| l.starts_with(name) && l.contains("interface=\"cap0\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map(|v| v as u64)
            .sum()
    };
    let captured = sum("vigil_capture_packets_total{");
    assert_eq!(captured, captured_packets(&live), "{body}");
    assert_eq!(sum("vigil_capture_drops_total{"), 0);
    assert_eq!(
        body.lines()
            .filter(|l| l.starts_with("vigil_capture_packets_total{"))
            .count(),
        2,
        "one series per worker socket"
    );
}

/// Two interfaces at once, two workers each: everything from both is captured, as replays of
/// the two files give it (their flows are distinct).
#[test]
fn captures_several_interfaces() {
    if skip_unless_root("captures_several_interfaces") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let first = test_pcap(dir.path());
    let second = dir.path().join("second.pcap");
    let cfg = vigil_pcapgen::GenConfig {
        fragment_share: 0.0,
        ..vigil_pcapgen::GenConfig::new(8, 1 << 19)
    };
    common::generate(&second, &cfg);
    let mut replayed = common::replay(&[&first], 1, &["-q"], &dir.path().join("replay1")).events;
    replayed.extend(common::replay(&[&second], 1, &["-q"], &dir.path().join("replay2")).events);

    let pair = VethPair::new();
    pair.add_second_link();
    let sensor = Sensor::start_on(&pair, dir.path(), &["cap0", "cap1"], "af-packet", 2, &[]);
    pair.send_on(&first, "send0");
    pair.send_on(&second, "send1");
    let live = sensor.stop();
    compare(&live, &replayed, "two interfaces, af-packet, 2 workers");
}

/// A capture interface that does not exist stops the start with a message naming it.
#[test]
fn missing_interface_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let eve = dir.path().join("eve");
    let out = common::vigil([
        "run",
        "-i",
        "nosuch-vigil0",
        "--metrics-listen",
        "",
        "--eve-dir",
        eve.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("interface nosuch-vigil0: no such interface"),
        "{stderr}"
    );
}

/// `[capture] cpu_affinity` pins each worker thread to its core.
#[test]
fn pins_workers_to_configured_cores() {
    if skip_unless_root("pins_workers_to_configured_cores") {
        return;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vigil.toml");
    let last = cores - 1;
    std::fs::write(&config, format!("[capture]\ncpu_affinity = [{last}]\n")).unwrap();
    let pair = VethPair::new();
    let sensor = Sensor::start(
        &pair,
        dir.path(),
        "af-packet",
        1,
        &["--config", config.to_str().unwrap()],
    );
    let tasks = format!("/proc/{}/task", sensor.child.id());
    let worker_cpus: Vec<String> = std::fs::read_dir(&tasks)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim() == "vigil-worker-0")
        })
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .filter_map(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .map(|v| v.trim().to_string())
        })
        .collect();
    assert_eq!(worker_cpus, [last.to_string()]);
    sensor.stop();
}
