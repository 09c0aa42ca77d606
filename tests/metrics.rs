//! The `/metrics` exporter against the real tools: its text passes `promtool check metrics`,
//! and a real Prometheus server scrapes it and sees snapshot updates arrive.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use vigil::metrics::{
    CaptureSnapshot, Metrics, MetricsError, MetricsServer, MetricsSnapshot, OutputSnapshot,
    RulesSnapshot, WorkerSnapshot,
};

const LOOPBACK_ANY_PORT: &str = "127.0.0.1:0";

/// Fails with the fix when a tool from `appliance/install-deps.sh` is missing.
fn require_tool(name: &str) {
    match Command::new(name).arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!("`{name} --version` failed: {out:?}"),
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "`{name}` is not installed: run appliance/install-deps.sh (the Debian package \
             `prometheus` is in its list)"
        ),
        Err(e) => panic!("cannot run `{name}`: {e}"),
    }
}

/// Worker 1's interface name has the characters the text format must escape (Linux allows
/// quotes and backslashes in interface names).
const IFACES: [&str; 2] = ["eth0", r#"odd"if\name"#];

fn snapshot(packets: [u64; 2]) -> MetricsSnapshot {
    let capture = |worker: usize, packets: u64| CaptureSnapshot {
        interface: IFACES[worker].into(),
        worker,
        method: "af-packet".into(),
        packets,
        bytes: packets * 800,
        drops: 3 + worker as u64,
    };
    let worker = |worker: usize, packets: u64| WorkerSnapshot {
        worker,
        packets,
        bytes: packets * 800,
        decode_errors: 2,
        flows_active: 40 + worker as u64,
        flows_total: 900,
        flows_evicted: 5,
        flow_memcap_bytes: 64 << 20,
        flow_memory_bytes: 3 << 20,
        emergency: worker == 1,
        stream_memory_bytes: 1 << 20,
        stream_memcap_bytes: 32 << 20,
        alerts_by_severity: [7, 0, 11 + worker as u64, 2],
        seconds_since_last_packet: 0.25 + worker as f64,
        ring_drops: 9,
        output_waits: 0,
        events_dropped: 0,
    };
    MetricsSnapshot {
        captures: vec![capture(0, packets[0]), capture(1, packets[1])],
        workers: vec![worker(0, packets[0]), worker(1, packets[1])],
        rules: RulesSnapshot {
            loaded: 45_210,
            skipped: 17,
            last_reload_unix_seconds: 1_790_000_000.5,
            last_reload_success: true,
            reloads_total: 3,
            reload_failures_total: 1,
            restart_pending: true,
        },
        outputs: vec![OutputSnapshot {
            sink: "file".into(),
            events: 1234,
            bytes: 987_654,
            errors: 0,
            queue_depth: 12,
            ..Default::default()
        }],
        response: None,
        anomaly: None,
        rule_alerts: vec![(1, 2_019_401, 40), (1, 2_100_498, 3), (9100, 1, 2)],
        uptime_seconds: 3600.5,
    }
}

/// One HTTP/1.0 request; returns the status code and the body.
fn http(addr: SocketAddr, method: &str, target: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "{method} {target} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {response:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    (status, body.to_owned())
}

fn header_of(addr: SocketAddr, target: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {target} HTTP/1.0\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.split_once("\r\n\r\n").unwrap().0.to_owned()
}

fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn scrape_has_the_values_and_passes_promtool() {
    require_tool("promtool");
    let metrics = Metrics::new();
    metrics.update(snapshot([1000, 2500]));
    let server = MetricsServer::start(LOOPBACK_ANY_PORT.parse().unwrap(), metrics.clone()).unwrap();
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);

    let (status, body) = http(addr, "GET", "/metrics");
    assert_eq!(status, 200, "{body}");
    assert!(header_of(addr, "/metrics").contains("text/plain; version=0.0.4"));
    for (series, want) in [
        (
            r#"vigil_capture_packets_total{interface="eth0",worker="0",method="af-packet"}"#,
            1000.0,
        ),
        (
            r#"vigil_capture_packets_total{interface="odd\"if\\name",worker="1",method="af-packet"}"#,
            2500.0,
        ),
        (
            r#"vigil_capture_bytes_total{interface="odd\"if\\name",worker="1",method="af-packet"}"#,
            2_000_000.0,
        ),
        (
            r#"vigil_capture_drops_total{interface="odd\"if\\name",worker="1",method="af-packet"}"#,
            4.0,
        ),
        (r#"vigil_worker_packets_total{worker="1"}"#, 2500.0),
        (r#"vigil_decoder_errors_total{worker="0"}"#, 2.0),
        (r#"vigil_flows_active{worker="1"}"#, 41.0),
        (r#"vigil_flow_memcap_bytes{worker="0"}"#, 67_108_864.0),
        (r#"vigil_flow_emergency{worker="0"}"#, 0.0),
        (r#"vigil_flow_emergency{worker="1"}"#, 1.0),
        (r#"vigil_alerts_total{worker="0",severity="1"}"#, 7.0),
        (r#"vigil_alerts_total{worker="0",severity="2"}"#, 0.0),
        (r#"vigil_alerts_total{worker="1",severity="3"}"#, 12.0),
        (r#"vigil_alerts_total{worker="1",severity="4"}"#, 2.0),
        (r#"vigil_worker_idle_seconds{worker="1"}"#, 1.25),
        (r#"vigil_worker_ring_drops_total{worker="0"}"#, 9.0),
        (r#"vigil_rule_alerts_total{gid="1",sid="2019401"}"#, 40.0),
        (r#"vigil_rule_alerts_total{gid="9100",sid="1"}"#, 2.0),
        ("vigil_rules_loaded", 45_210.0),
        ("vigil_rules_skipped", 17.0),
        ("vigil_rules_last_reload_timestamp_seconds", 1_790_000_000.5),
        ("vigil_rules_last_reload_success", 1.0),
        ("vigil_rules_reloads_total", 3.0),
        ("vigil_rules_reload_failures_total", 1.0),
        ("vigil_config_restart_pending", 1.0),
        (r#"vigil_output_events_total{sink="file"}"#, 1234.0),
        (r#"vigil_output_queue_depth{sink="file"}"#, 12.0),
        ("vigil_uptime_seconds", 3600.5),
        (
            &format!(
                "vigil_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            ),
            1.0,
        ),
    ] {
        assert_eq!(sample(&body, series), want, "{series}");
    }
    assert!(body.contains("# TYPE vigil_capture_packets_total counter\n"));
    assert!(body.contains("# TYPE vigil_flows_active gauge\n"));
    assert!(body.contains("# HELP vigil_worker_idle_seconds "));
    assert!(
        body.contains("\nprocess_resident_memory_bytes "),
        "process metrics:\n{body}"
    );
    assert!(
        body.contains("\nprocess_cpu_seconds_total "),
        "process metrics:\n{body}"
    );

    let (ok, said) = common::promtool_check(&body);
    assert!(ok && said.trim().is_empty(), "promtool:\n{said}");
    // Control: the same check does flag a lint problem (a gauge named like a counter).
    let (ok, said) = common::promtool_check("# HELP x_total h\n# TYPE x_total gauge\nx_total 1\n");
    assert!(
        !ok && said.contains("_total"),
        "promtool missed the control: {said}"
    );
    server.stop();
}

#[test]
fn routes_bind_errors_and_stop() {
    let metrics = Metrics::new();
    let server = MetricsServer::start(LOOPBACK_ANY_PORT.parse().unwrap(), metrics).unwrap();
    let addr = server.local_addr();

    let (status, body) = http(addr, "GET", "/");
    assert_eq!((status, body.contains("/metrics")), (200, true), "{body}");
    assert_eq!(http(addr, "GET", "/nope").0, 404);
    assert_eq!(http(addr, "POST", "/metrics").0, 405);
    let (status, body) = http(addr, "HEAD", "/metrics");
    assert_eq!((status, body.as_str()), (200, ""));
    // Before the daemon's first update only the build info is shown, not made-up zeros.
    let (status, body) = http(addr, "GET", "/metrics?x=1");
    assert_eq!(status, 200);
    assert!(body.contains("vigil_build_info{"), "{body}");
    assert!(!body.contains("vigil_uptime_seconds"), "{body}");

    let err = MetricsServer::start(addr, Metrics::new()).unwrap_err();
    assert!(matches!(err, MetricsError::Bind { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&addr.to_string()), "{message}");
    assert!(message.to_lowercase().contains("in use"), "{message}");

    let started = Instant::now();
    server.stop();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "stop took {:?}",
        started.elapsed()
    );
    // tiny_http's accept thread lets go of the socket shortly after the stop.
    let deadline = Instant::now() + Duration::from_secs(5);
    let again = loop {
        match MetricsServer::start(addr, Metrics::new()) {
            Ok(server) => break server,
            Err(e) if Instant::now() > deadline => panic!("{addr} still taken after stop: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    assert_eq!(http(again.local_addr(), "GET", "/metrics").0, 200);
    drop(again);
}

/// A Prometheus server in a temporary directory, killed when dropped.
struct Prometheus {
    child: Child,
    api: SocketAddr,
    dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: SocketAddr) -> Prometheus {
        require_tool("prometheus");
        let dir = tempfile::tempdir().unwrap();
        let api = free_port();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: vigil\n    static_configs:\n      \
                 - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={api}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Prometheus { child, api, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `GET` on the HTTP API; `None` while the server is not answering yet.
    fn api(&mut self, target: &str) -> Option<Value> {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("prometheus exited ({status}):\n{}", self.log());
        }
        TcpStream::connect(self.api).ok()?;
        let (status, body) = http(self.api, "GET", target);
        (status == 200).then(|| serde_json::from_str(&body).unwrap())
    }

    /// The result vector of an instant query as (labels, value) pairs.
    fn query(&mut self, promql: &str) -> Vec<(Value, f64)> {
        let Some(reply) = self.api(&format!("/api/v1/query?query={}", url_encode(promql))) else {
            return Vec::new();
        };
        assert_eq!(reply["status"], "success", "{reply}");
        reply["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let value = r["value"][1].as_str().unwrap().parse().unwrap();
                (r["metric"].clone(), value)
            })
            .collect()
    }

    /// Polls `promql` until `done` accepts its result; fails after 30 s.
    fn wait_for(
        &mut self,
        promql: &str,
        done: impl Fn(&[(Value, f64)]) -> bool,
    ) -> Vec<(Value, f64)> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let result = self.query(promql);
            if done(&result) {
                return result;
            }
            if Instant::now() > deadline {
                panic!("{promql}: still {result:?} after 30 s\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn free_port() -> SocketAddr {
    TcpListener::bind(LOOPBACK_ANY_PORT)
        .unwrap()
        .local_addr()
        .unwrap()
}

fn packets_by_worker(result: &[(Value, f64)]) -> Vec<(String, f64)> {
    let mut out: Vec<_> = result
        .iter()
        .map(|(labels, v)| (labels["worker"].as_str().unwrap().to_owned(), *v))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn real_prometheus_scrapes_the_exporter() {
    require_tool("prometheus");
    let metrics = Metrics::new();
    metrics.update(snapshot([1000, 2500]));
    let server = MetricsServer::start(LOOPBACK_ANY_PORT.parse().unwrap(), metrics.clone()).unwrap();
    let mut prom = Prometheus::start(server.local_addr());

    let first = prom.wait_for("vigil_capture_packets_total", |r| r.len() == 2);
    assert_eq!(
        packets_by_worker(&first),
        [("0".to_owned(), 1000.0), ("1".to_owned(), 2500.0)]
    );
    for (labels, _) in &first {
        let worker: usize = labels["worker"].as_str().unwrap().parse().unwrap();
        assert_eq!(labels["interface"], IFACES[worker], "unescaped as given");
        assert_eq!(labels["method"], "af-packet");
        assert_eq!(labels["job"], "vigil");
    }
    let alerts = prom.query("vigil_alerts_total");
    assert_eq!(alerts.len(), 8, "{alerts:?}");
    let high = prom.query(r#"vigil_alerts_total{worker="1",severity="3"}"#);
    assert_eq!(high.iter().map(|r| r.1).collect::<Vec<_>>(), [12.0]);

    // The scrape itself was clean: target up, no error, no samples rejected.
    let targets = prom.api("/api/v1/targets").unwrap();
    let active = &targets["data"]["activeTargets"];
    assert_eq!(active.as_array().map(Vec::len), Some(1), "{targets}");
    assert_eq!(active[0]["health"], "up", "{targets}");
    assert_eq!(active[0]["lastError"], "", "{targets}");

    metrics.update(snapshot([1700, 2600]));
    let second = prom.wait_for("vigil_capture_packets_total", |r| {
        packets_by_worker(r).first().map(|w| w.1) == Some(1700.0)
    });
    assert_eq!(
        packets_by_worker(&second),
        [("0".to_owned(), 1700.0), ("1".to_owned(), 2600.0)]
    );
    // Prometheus saw a counter that only grew between the two snapshots.
    let resets = prom.query("resets(vigil_capture_packets_total[1m])");
    assert!(resets.iter().all(|r| r.1 == 0.0), "{resets:?}");

    drop(prom);
    server.stop();
}

#[test]
fn server_is_shared_with_the_updating_thread() {
    // The daemon updates from its own thread while scrapes run: no lock-order or Send issue.
    let metrics: Arc<Metrics> = Metrics::new();
    let server = MetricsServer::start(LOOPBACK_ANY_PORT.parse().unwrap(), metrics.clone()).unwrap();
    let updater = {
        let metrics = metrics.clone();
        std::thread::spawn(move || {
            for i in 0..200u64 {
                metrics.update(snapshot([i, 2 * i]));
            }
        })
    };
    for _ in 0..20 {
        assert_eq!(http(server.local_addr(), "GET", "/metrics").0, 200);
    }
    updater.join().unwrap();
    let (_, body) = http(server.local_addr(), "GET", "/metrics");
    assert_eq!(
        sample(&body, r#"vigil_worker_packets_total{worker="1"}"#),
        398.0
    );
}
