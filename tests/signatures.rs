//! Signatures end to end: rules files through `vigil replay` and `vigil rules check`, alerts
//! checked against the traffic generator's ground truth and against ET Open as published.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use vigil_pcapgen::{AppTruth, GenConfig, Impair, Variants};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-sig-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const RULES: &str = r#"
# Transaction rules on the parsers' buffers.
alert http any any -> any any (msg:"curl UA"; flow:established,to_server; http.user_agent; content:"curl/"; startswith; classtype:policy-violation; sid:1001; rev:2; metadata:created_at 2026_11_26, tag one;)
alert dns any any -> any any (msg:"query to .org"; dns.query; content:".org"; nocase; endswith; sid:1002;)
alert tls any any -> any any (msg:"SNI in .net"; tls.sni; content:".net"; endswith; sid:1003;)
alert http any any -> any any (msg:"POST"; flow:to_server; http.method; content:"POST"; bsize:4; sid:1004;)
# A flowbit set by one rule and checked by another on the same transaction stream.
alert http any any -> any any (msg:"set"; flow:to_server; http.method; content:"GET"; flowbits:set,got.get; flowbits:noalert; sid:1005;)
alert http any any -> any any (msg:"GET then 200"; flow:to_client; flowbits:isset,got.get; http.stat_code; content:"200"; sid:1006;)
# Only clients in $HOME_NET (the config's address groups decide).
alert dns $HOME_NET any -> any any (msg:"home query .org"; dns.query; content:".org"; nocase; endswith; sid:1009;)
# Not loadable: the run goes on with the rest.
alert tcp any any -> any any (msg:"unsupported"; content:"x"; xbits:set,a,track ip_src; sid:1007;)
alert tcp any any -> any any (msg:"broken" content:"x"; sid:1008;)
"#;

struct Expected {
    curl: usize,
    org: usize,
    net: usize,
    post: usize,
}

fn expected_from_truth(truth: &vigil_pcapgen::GenSummary) -> Expected {
    let mut e = Expected {
        curl: 0,
        org: 0,
        net: 0,
        post: 0,
    };
    for f in &truth.flows {
        match &f.app_layer {
            Some(AppTruth::Http { transactions }) => {
                e.curl += transactions
                    .iter()
                    .filter(|t| t.user_agent.starts_with("curl/"))
                    .count();
                e.post += transactions.iter().filter(|t| t.method == "POST").count();
            }
            Some(AppTruth::Dns { messages }) => {
                e.org += messages
                    .iter()
                    .filter(|m| !m.response && m.qname.to_ascii_lowercase().ends_with(".org"))
                    .count();
            }
            Some(AppTruth::Tls(t)) => {
                e.net += t.sni.as_deref().is_some_and(|s| s.ends_with(".net")) as usize;
            }
            _ => {}
        }
    }
    e
}

fn alerts_by_sid(events: &[Value]) -> BTreeMap<u64, usize> {
    let mut m = BTreeMap::new();
    for e in events.iter().filter(|e| e["event_type"] == "alert") {
        *m.entry(e["alert"]["signature_id"].as_u64().unwrap())
            .or_default() += 1;
    }
    m
}

fn generate(dir: &Path) -> (PathBuf, vigil_pcapgen::GenSummary) {
    let pcap = dir.join("gen.pcap");
    let cfg = GenConfig {
        variants: Variants::standard(),
        impair: Impair::parse("reorder=0.05,dup=0.03").unwrap(),
        ..GenConfig::new(31, 6 << 20)
    };
    let truth = common::generate(&pcap, &cfg);
    (pcap, truth)
}

/// Alerts on generated traffic equal what the generator put in it, with one and two workers,
/// and carry Suricata's alert fields.
#[test]
fn alerts_match_generated_ground_truth() {
    let dir = temp_dir("truth");
    let (pcap, truth) = generate(&dir);
    let rules = dir.join("test.rules");
    std::fs::write(&rules, RULES).unwrap();
    let want = expected_from_truth(&truth);
    assert!(
        want.curl > 0 && want.org > 0 && want.net > 0 && want.post > 0,
        "the generated traffic exercises every rule"
    );
    let rules_arg = rules.to_str().unwrap();
    let mut per_workers = Vec::new();
    for workers in [1, 2] {
        let run = common::replay(
            &[&pcap],
            workers,
            &["-S", rules_arg, "--no-rules-cache"],
            &dir.join(format!("out{workers}")),
        );
        common::assert_no_crash(&run.status, &run.stderr);
        assert!(run.status.success(), "{}", run.stderr);
        assert!(
            run.stderr.contains("7 rules loaded, 2 skipped"),
            "{}",
            run.stderr
        );
        common::assert_schema_valid(&run.events);
        let by_sid = alerts_by_sid(&run.events);
        assert_eq!(
            by_sid.get(&1001).copied().unwrap_or(0),
            want.curl,
            "{by_sid:?}"
        );
        assert_eq!(
            by_sid.get(&1002).copied().unwrap_or(0),
            want.org,
            "{by_sid:?}"
        );
        assert_eq!(
            by_sid.get(&1003).copied().unwrap_or(0),
            want.net,
            "{by_sid:?}"
        );
        assert_eq!(
            by_sid.get(&1004).copied().unwrap_or(0),
            want.post,
            "{by_sid:?}"
        );
        assert!(!by_sid.contains_key(&1005), "noalert rule alerted");
        assert!(by_sid.get(&1006).copied().unwrap_or(0) > 0, "{by_sid:?}");

        let curl = run
            .events
            .iter()
            .find(|e| e["event_type"] == "alert" && e["alert"]["signature_id"] == 1001)
            .expect("a curl alert");
        let a = &curl["alert"];
        assert_eq!(a["action"], "allowed");
        assert_eq!(a["gid"], 1);
        assert_eq!(a["rev"], 2);
        assert_eq!(a["signature"], "curl UA");
        assert_eq!(a["category"], "Potential Corporate Privacy Violation");
        assert_eq!(a["severity"], 1);
        assert_eq!(a["metadata"]["created_at"][0], "2026_11_26");
        assert_eq!(a["metadata"]["tag"][0], "one");
        assert_eq!(curl["app_proto"], "http");
        assert_eq!(curl["direction"], "to_server");
        assert!(curl["http"]["http_user_agent"]
            .as_str()
            .unwrap()
            .starts_with("curl/"));
        assert!(curl["community_id"].is_string() && curl["flow"]["start"].is_string());
        // The flow that alerted says so.
        let flow = run
            .of_type("flow")
            .into_iter()
            .find(|f| f["flow_id"] == curl["flow_id"])
            .expect("the alert's flow");
        assert_eq!(flow["flow"]["alerted"], true);
        assert_eq!(
            run.stats()["detect"]["alert"],
            by_sid.values().sum::<usize>()
        );
        per_workers.push(by_sid);
    }
    assert_eq!(
        per_workers[0], per_workers[1],
        "1 and 2 workers alert alike"
    );
    assert!(per_workers[0].get(&1009).copied().unwrap_or(0) > 0);

    // The config's [rules] section: another $HOME_NET, and a threshold.config suppression.
    let thresholds = dir.join("threshold.config");
    std::fs::write(&thresholds, "suppress gen_id 1, sig_id 1001\n").unwrap();
    let config = dir.join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "[rules]\nfiles = [{:?}]\nthreshold_file = {:?}\n[rules.address_groups]\nHOME_NET = \"[203.0.113.0/24]\"\nEXTERNAL_NET = \"!$HOME_NET\"\n",
            rules.display().to_string(),
            thresholds.display().to_string()
        ),
    )
    .unwrap();
    let run = common::replay(
        &[&pcap],
        1,
        &["--config", config.to_str().unwrap(), "--no-rules-cache"],
        &dir.join("out-config"),
    );
    assert!(run.status.success(), "{}", run.stderr);
    let by_sid = alerts_by_sid(&run.events);
    assert_eq!(by_sid.get(&1001), None, "suppressed: {by_sid:?}");
    assert_eq!(
        by_sid.get(&1009),
        None,
        "no client in 203.0.113.0/24: {by_sid:?}"
    );
    assert_eq!(by_sid.get(&1002), per_workers[0].get(&1002));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `rules check` on ET Open as published: at least 98 % load, skips are listed with file,
/// line, sid and reason, and `--strict` turns skips into a failure.
#[test]
fn rules_check_on_et_open() {
    let et = common::shared().join("corpus/rules/emerging-all.rules");
    let out = common::vigil(["rules", "check", et.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let first = stdout.lines().next().unwrap();
    let (loaded, total) = {
        let mut w = first.split_whitespace();
        let loaded: usize = w.next().unwrap().parse().unwrap();
        assert_eq!(w.next(), Some("of"));
        let total: usize = w.next().unwrap().parse().unwrap();
        (loaded, total)
    };
    assert_eq!(total, 24_827, "{first}");
    assert!(loaded * 100 >= total * 98, "{first}");
    let skipped_line = stdout
        .lines()
        .find(|l| l.contains("emerging-all.rules:") && l.contains(": sid "))
        .expect("skipped rules are listed");
    assert!(skipped_line
        .split(':')
        .nth(1)
        .unwrap()
        .parse::<usize>()
        .is_ok());
    assert!(stdout.contains("waiting for smtp parser"), "{stdout}");

    let strict = common::vigil(["rules", "check", "--strict", "-q", et.to_str().unwrap()]);
    assert_eq!(strict.status.code(), Some(1));
}

/// A rules file with errors: each bad rule is named with its line and column and skipped, and
/// the rest still alert.
#[test]
fn bad_rules_are_skipped_with_their_position() {
    let dir = temp_dir("bad");
    let rules = dir.join("bad.rules");
    std::fs::write(
        &rules,
        "alert tcp any any -> any any (msg:\"ok\"; content:\"GET\"; sid:1;)\n\
         alert tcp any any => any any (msg:\"bad dir\"; sid:2;)\n\
         alert tcp any any -> any any (msg:\"no semicolon\"; sid:3)\n\
         alert tcp $NOPE any -> any any (msg:\"bad var\"; sid:4;)\n\
         alert tcp any any -> any any (msg:\"bad hex\"; content:\"|4|\"; sid:5;)\n",
    )
    .unwrap();
    let out = common::vigil(["rules", "check", rules.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.starts_with("1 of 5 rules loaded"), "{stdout}");
    let path = rules.display().to_string();
    for (line, sid, what) in [
        (2, 2, "column 19"),
        (3, 3, "';'"),
        (4, 4, "unknown variable $NOPE"),
        (5, 5, "hex"),
    ] {
        let prefix = format!("{path}:{line}: sid {sid}: ");
        let l = stdout
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("{prefix} in {stdout}"));
        assert!(l.contains(what), "{l}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
