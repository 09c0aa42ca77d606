//! `vigil verify` over the whole suricata-verify corpus against the committed expectations
//! (`appliance/verify-expectations.tsv`): a case may leave the expectations but never join
//! them unnoticed, so the pass count only goes up. Plus the check evaluator on hand-written
//! events.

mod common;

use std::path::PathBuf;

use serde_json::{json, Value};
use serde_yaml_ng::Value as Yaml;
use vigil::verify::{
    evaluate_check, event_matches, find_value, py_eq, run, CheckOutcome, Found, Outcome,
    VerifyOptions,
};

fn expectations() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("appliance/verify-expectations.tsv")
}

#[test]
fn corpus_matches_the_expectations() {
    let root = common::shared().join("corpus/suricata-verify");
    let opts = VerifyOptions {
        dirs: vec![root.clone()],
        expectations: Some(expectations()),
        quiet: true,
        ..Default::default()
    };
    let mut report = Vec::new();
    let summary = run(&opts, &mut report).expect("verify runs");
    let report = String::from_utf8_lossy(&report);
    eprint!("{report}");
    assert!(
        summary.results.len() > 200,
        "suricata-verify corpus at {}",
        root.display()
    );
    assert_eq!(
        report.lines().last(),
        Some(summary.line().as_str()),
        "the summary is the last line"
    );
    assert!(
        summary.ok(),
        "failed or skipped without an expectation: {:?}",
        summary.unexpected
    );
    // Flow/decoder-only cases that hold today: they must keep holding.
    for name in [
        "bug-6733-syn-packet-flow-output",
        "community-id-sameip",
        "eve-flow-vlan-02",
        "output-eve-anomaly-01",
        "vxlan-decoder-01",
        // Alerts: content/pcre/byte ops, app-layer buffers, pass rules, decoder events.
        "bug-5633-gre-01",
        "detect-bytejump-02",
        "detect-pcre/detect-pcre-02",
        "dns/dns-query/dns-detect-query-01",
        "http-post-file",
        "ipv6-evasion/ipv6-malformed-fragments-2",
        "tcp-empty-sack",
        "test-dsize-values",
    ] {
        let r = summary.results.iter().find(|r| r.name == name);
        assert_eq!(r.map(|r| &r.outcome), Some(&Outcome::Pass), "{name}: {r:?}");
    }
}

#[test]
fn broken_test_yaml_fails_its_case_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let case = dir.path().join("broken");
    std::fs::create_dir_all(&case).unwrap();
    std::fs::write(case.join("test.yaml"), "checks:\n  - filter: [unclosed\n").unwrap();
    let nopcap = dir.path().join("nopcap");
    std::fs::create_dir_all(&nopcap).unwrap();
    std::fs::write(
        nopcap.join("test.yaml"),
        "checks:\n  - filter:\n      count: 0\n      match: {event_type: alert}\n",
    )
    .unwrap();
    let opts = VerifyOptions {
        dirs: vec![dir.path().to_path_buf()],
        verbose: true,
        ..Default::default()
    };
    let mut out = Vec::new();
    let summary = run(&opts, &mut out).unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(!summary.ok());
    assert_eq!(summary.line(), "0 passed, 1 failed, 1 skipped");
    assert!(
        out.lines()
            .any(|l| l.starts_with("FAIL broken: ") && l.contains("test.yaml: invalid YAML")),
        "{out}"
    );
    assert!(out.contains("SKIP nopcap: no pcap file"), "{out}");
    assert_eq!(out.lines().last(), Some("0 passed, 1 failed, 1 skipped"));
}

fn yaml(text: &str) -> Yaml {
    serde_yaml_ng::from_str(text).unwrap()
}

fn entries(text: &str) -> Vec<(String, Value)> {
    vigil::verify::match_entries(Some(&yaml(text))).unwrap()
}

fn events() -> Vec<Value> {
    vec![
        json!({"event_type": "flow", "src_port": 80, "proto": "TCP", "vlan": [10, 20],
               "flow": {"pkts_toserver": 3, "alerted": false, "age": 1.0},
               "dns": {"answers": [{"rrname": "a.example"}, {"rrname": "b.example"}]},
               "http": {"url": "/index.html?x=1"}}),
        json!({"event_type": "anomaly", "anomaly": {"type": "decode", "event": "decoder.ipv4.trunc_pkt"},
               "src_ip": null}),
        json!({"event_type": "stats", "stats": {"decoder": {"pkts": 42}}}),
        json!({"event_type": "stats", "stats": {"decoder": {"pkts": 43}}}),
    ]
}

#[test]
fn dotted_paths_and_array_indexes() {
    let ev = &events()[0];
    assert_eq!(
        find_value("dns.answers[1].rrname", ev).unwrap(),
        Found::Ref(&json!("b.example"))
    );
    assert_eq!(find_value("vlan[0]", ev).unwrap(), Found::Ref(&json!(10)));
    assert_eq!(find_value("vlan[5]", ev).unwrap(), Found::Missing);
    assert_eq!(find_value("flow.nothing", ev).unwrap(), Found::Missing);
    assert_eq!(
        find_value("dns.answers.__len", ev).unwrap(),
        Found::Owned(json!(2))
    );
    assert_eq!(
        find_value("src_port.__len", ev).unwrap(),
        Found::Owned(json!(-1))
    );
    // Python raises on a name looked up in a number: a check error, not a silent miss.
    assert!(find_value("src_port.x", ev).is_err());
    // JSON null is Python's None: the same as absent.
    assert_eq!(find_value("src_ip", &events()[1]).unwrap(), Found::Missing);
}

#[test]
fn python_equality() {
    assert!(py_eq(&json!(1), &json!(1.0)));
    assert!(!py_eq(&json!(1), &json!("1")));
    assert!(!py_eq(&json!(true), &json!(1)));
    assert!(!py_eq(&json!(false), &json!(0)));
    assert!(py_eq(&json!([1, "a"]), &json!([1.0, "a"])));
    assert!(!py_eq(&json!([1]), &json!([1, 2])));
    assert!(py_eq(&json!({"a": 1}), &json!({"a": 1})));
    assert!(py_eq(&Value::Null, &Value::Null));
    let ev = &events()[0];
    assert!(event_matches(ev, &entries("flow.age: 1")).unwrap());
    assert!(!event_matches(ev, &entries("src_port: '80'")).unwrap());
    assert!(!event_matches(ev, &entries("flow.alerted: 0")).unwrap());
    assert!(event_matches(ev, &entries("flow.alerted: false")).unwrap());
    // A missing key matches null.
    assert!(event_matches(ev, &entries("tunnel: null")).unwrap());
}

#[test]
fn suffix_operators() {
    let ev = &events()[0];
    let holds = |m: &str| event_matches(ev, &entries(m)).unwrap();
    assert!(holds("http.url.__find: index"));
    assert!(!holds("http.url.__find: nope"));
    assert!(holds("http.url.__startswith: /index"));
    assert!(holds("http.url.__endswith: x=1"));
    assert!(holds("vlan.__contains: 20"));
    assert!(!holds("vlan.__contains: 30"));
    assert!(holds("flow.__contains: alerted"));
    assert!(holds("dns.answers.__len: 2"));
    assert!(holds("flow.pkts_toserver.__gt: 2"));
    assert!(!holds("flow.pkts_toserver.__gt: 3"));
    assert!(holds("flow.pkts_toserver.__gte: 3"));
    assert!(holds("flow.pkts_toserver.__lt: 3.5"));
    assert!(holds("flow.pkts_toserver.__lte: 3"));
    // Python would raise: a number has no substring, a missing field no order.
    assert!(event_matches(ev, &entries("src_port.__find: '8'")).is_err());
    assert!(event_matches(ev, &entries("flow.missing.__gt: 1")).is_err());
    // Entries apply in order: a first entry that does not hold ends it before the error.
    assert!(!event_matches(ev, &entries("event_type: dns\nsrc_port.__find: '8'")).unwrap());
}

#[test]
fn has_key_and_not_has_key() {
    let ev = &events()[0];
    let holds = |m: &str| event_matches(ev, &entries(m)).unwrap();
    assert!(holds("has-key: flow.pkts_toserver"));
    assert!(!holds("has-key: flow.nothing"));
    assert!(holds("not-has-key: alert"));
    assert!(!holds("not-has-key: dns.answers[0].rrname"));
    assert!(holds("not-has-key: src_ip") && holds("has-key: src_port"));
    assert!(!event_matches(&events()[1], &entries("has-key: src_ip")).unwrap());
    // A list: every path present, or every path absent.
    assert!(holds("has-key: [flow.pkts_toserver, src_port]"));
    assert!(!holds("has-key: [flow.pkts_toserver, flow.nothing]"));
    assert!(holds("not-has-key: [alert, flow.nothing]"));
    assert!(!holds("not-has-key: [alert, src_port]"));
}

#[test]
fn filter_counts_and_check_kinds() {
    let evs = events();
    let check = |t: &str| evaluate_check(&yaml(t), &evs);
    assert_eq!(
        check("filter: {count: 2, match: {event_type: stats}}"),
        CheckOutcome::Pass
    );
    match check("filter: {count: 1, match: {event_type: stats}}") {
        CheckOutcome::Fail(why) => assert!(why.ends_with("(want 1, got 2)"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        check("filter: {count: 0, match: {event_type: alert}}"),
        CheckOutcome::Pass
    );
    // stats: the last stats event.
    assert_eq!(check("stats: {decoder.pkts: 43}"), CheckOutcome::Pass);
    assert!(matches!(
        check("stats: {decoder.pkts: 42}"),
        CheckOutcome::Fail(_)
    ));
    // Skipped: other files, shell, file-compare, unmet version or feature gates.
    for skipped in [
        "filter: {filename: fast.log, count: 1, match: {x: 1}}",
        "shell: {args: 'true'}",
        "file-compare: {filename: a, expected: b}",
        "filter: {requires: {min-version: 9}, count: 5, match: {event_type: flow}}",
        "filter: {requires: {lt-version: 8}, count: 5, match: {event_type: flow}}",
        "filter: {lt-version: 8, count: 5, match: {event_type: flow}}",
        "filter: {requires: {features: [HAVE_LUA]}, count: 5, match: {event_type: flow}}",
    ] {
        assert!(
            matches!(check(skipped), CheckOutcome::Skip(_)),
            "{skipped}: {:?}",
            check(skipped)
        );
    }
    // Gates that hold are evaluated.
    assert_eq!(
        check("filter: {requires: {min-version: 7.0.12, features: [HAVE_JA4]}, count: 1, match: {event_type: flow}}"),
        CheckOutcome::Pass
    );
    // A filter without count is a broken check.
    assert!(matches!(
        check("filter: {match: {event_type: flow}}"),
        CheckOutcome::Fail(_)
    ));
}

/// TLS/SSH settings: honoured where Vigil has the switch or already behaves so, refused with
/// the reason otherwise.
#[test]
fn tls_settings() {
    use vigil::verify::CaseSetup;
    let mut s = CaseSetup::new();
    for (k, v) in [
        ("app-layer.protocols.tls.enabled", "yes"),
        ("app-layer.protocols.ssh.enabled", "no"),
        ("app-layer.protocols.tls.detection-ports.dp", "443"),
        ("app-layer.protocols.tls.ja3-fingerprints", "yes"),
        ("app-layer.protocols.tls.ja4-fingerprints", "auto"),
        ("app-layer.protocols.tls.encryption-handling", "track-only"),
        ("outputs.0.eve-log.types.tls.extended", "no"),
        ("outputs.0.eve-log.types.tls.custom", "client_handshake,SNI"),
        ("outputs.0.eve-log.types.tls.ja4", "on"),
    ] {
        s.apply(k, v);
    }
    assert!(s.unsupported.is_empty(), "{:?}", s.unsupported);
    assert!(
        s.unsupported_by_type.is_empty(),
        "{:?}",
        s.unsupported_by_type
    );
    let tls = &s.config.app_layer.tls;
    assert!(tls.ja3 && !tls.extended);
    assert_eq!(
        tls.custom.as_deref(),
        Some(&["client_handshake".to_string(), "SNI".to_string()][..])
    );
    assert!(s.config.app_layer.protocols.tls && !s.config.app_layer.protocols.ssh);

    let mut s = CaseSetup::new();
    s.apply("app-layer.protocols.tls.encrypt-handling", "bypass");
    s.apply("app-layer.protocols.tls.ja3-fingerprints", "no");
    s.apply("app-layer.protocols.tls.detection-ports.dp", "8443");
    s.apply("outputs.eve-log.types.tls.custom", "sni,colour");
    assert_eq!(s.unsupported.len(), 3, "{:?}", s.unsupported);
    assert!(
        s.unsupported[0].contains("neither bypasses"),
        "{:?}",
        s.unsupported
    );
    assert_eq!(
        s.unsupported_by_type["tls"],
        ["outputs.eve-log.types.tls.custom=sni,colour (unknown tls field \"colour\")"]
    );
}
