//! Active response end to end, in network namespaces the tests create: real TCP sessions
//! between client and server namespaces, Vigil capturing a `tc mirred` copy of their traffic,
//! resets injected onto the wire and blocks in a real nftables table. What counts is what the
//! hosts see: ECONNRESET, a connection that fails, one that still works. Needs root; skips
//! otherwise (the replay dry-run test runs anywhere).

mod common;

use std::time::Duration;

use common::lab::{
    client, connects, read_events, responses, start_server, vigil_ctl, write_rules, Daemon,
    GatewayLab, Server, SpanLab,
};
use common::netns::skip_unless_root;
use serde_json::Value;

#[test]
fn a_reject_rule_tears_the_session_down_at_both_ends() {
    if skip_unless_root("a_reject_rule_tears_the_session_down_at_both_ends") {
        return;
    }
    let lab = SpanLab::new();
    let dir = tempfile::tempdir().unwrap();
    let config = SpanLab::config(
        dir.path(),
        "rejectboth tcp any any -> any 7000 (msg:\"VIGIL test reject\"; flow:established,to_server; content:\"VIGIL-REJECT-ME\"; sid:9100001; rev:1;)\n",
        "",
        "",
    );
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

#[test]
fn a_drop_rule_blocks_the_client_until_the_block_expires_and_spares_the_allowlist() {
    if skip_unless_root("a_drop_rule_blocks_the_client_until_the_block_expires") {
        return;
    }
    let lab = GatewayLab::new();
    let dir = tempfile::tempdir().unwrap();
    let config = lab.config(dir.path(), "6s");
    let daemon = Daemon::start(
        &lab.gw,
        dir.path(),
        &config,
        &["--metrics-listen", "127.0.0.1:9751"],
    );
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

    // The same, as Prometheus sees it (scraped from inside the gateway's namespace).
    std::thread::sleep(Duration::from_millis(1200));
    let scrape = common::netns::Namespaces::exec(
        &lab.gw,
        &[
            "python3",
            "-c",
            "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:9751/metrics').read().decode())",
        ],
    );
    let metrics = String::from_utf8_lossy(&scrape.stdout);
    for line in [
        "vigil_response_blocks_total 1",
        "vigil_response_expired_total 1",
        "vigil_response_blocks_active 0",
    ] {
        assert!(metrics.contains(line), "{line} not in:\n{metrics}");
    }
    assert!(metrics.contains("vigil_response_refused_allowlist_total"));
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

#[test]
fn a_udp_reject_answers_with_icmp_port_unreachable() {
    if skip_unless_root("a_udp_reject_answers_with_icmp_port_unreachable") {
        return;
    }
    let lab = SpanLab::new();
    let dir = tempfile::tempdir().unwrap();
    let config = SpanLab::config(
        dir.path(),
        "reject udp any any -> any 7001 (msg:\"VIGIL test udp reject\"; content:\"VIGIL-UDP\"; sid:9100004; rev:1;)\n",
        "",
        "icmp_unreachable = true\n",
    );
    let daemon = Daemon::start(
        &lab.sensor,
        dir.path(),
        &config,
        &["--inject-iface", "inj1"],
    );
    // A listening server: only Vigil's ICMP can refuse the datagram.
    let _server = Server(
        std::process::Command::new("ip")
            .args(["netns", "exec", &lab.server, "python3", "-c"])
            .arg("import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0',7001))\nwhile True: s.recvfrom(2048)")
            .spawn()
            .expect("udp server"),
    );
    std::thread::sleep(Duration::from_millis(300));
    let script = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("10.88.0.2", 7001))
s.settimeout(3)
s.send(sys.argv[1].encode())
try:
    s.recv(2048)
    print("answer")
except ConnectionRefusedError:
    print("refused")
except socket.timeout:
    print("timeout")
"#;
    let udp = |payload: &str| {
        let out = common::netns::Namespaces::exec(&lab.client, &["python3", "-c", script, payload]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(udp("harmless"), "timeout");
    assert_eq!(
        udp("VIGIL-UDP"),
        "refused",
        "no ICMP port unreachable arrived"
    );
    let ev = daemon.wait_for_response("icmp unreachable", |e| {
        e["response"]["action"] == "icmp-unreachable" && e["response"]["outcome"] == "done"
    });
    assert_eq!(ev["proto"], "UDP");
    assert_eq!(ev["alert"]["signature_id"], 9100004);
    daemon.stop();
}
