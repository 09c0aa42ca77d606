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

/// Per-rule counters (`--rule-stats`, the summary's top rules) equal the alert events per rule
/// in eve.json, the anomaly models' included; with `[eve] payload…`/`packet` on, every alert
/// carries its packet: schema-valid, `packet` is the captured frame, `payload` decodes to that
/// frame's payload (cut to `payload_buffer_size`), and `payload_printable` matches it.
#[test]
fn rule_counts_equal_alert_events_and_alerts_carry_their_packet() {
    use base64::Engine;
    let dir = temp_dir("rulestats");
    let pcap = dir.join("gen.pcap");
    let cfg = GenConfig {
        variants: Variants::standard(),
        scenarios: vec![vigil_pcapgen::Scenario {
            kind: vigil_pcapgen::ScenarioKind::PortScan,
            count: 1,
        }],
        ..GenConfig::new(32, 3 << 20)
    };
    common::generate(&pcap, &cfg);
    let rules = dir.join("test.rules");
    std::fs::write(&rules, RULES).unwrap();
    let config = dir.join("vigil.toml");
    let buffer = 64;
    // The config's rule_stats_file here; the live SIGHUP test uses --rule-stats.
    let stats_file = dir.join("rule-stats.json");
    std::fs::write(
        &config,
        format!(
            "[eve]\npayload = true\npayload_printable = true\npayload_length = true\n\
             packet = true\npayload_buffer_size = {buffer}\nrule_stats_file = \"{}\"\n",
            stats_file.display()
        ),
    )
    .unwrap();
    let run = common::replay(
        &[&pcap],
        2,
        &[
            "-S",
            rules.to_str().unwrap(),
            "--no-rules-cache",
            "-c",
            config.to_str().unwrap(),
        ],
        &dir.join("out"),
    );
    common::assert_no_crash(&run.status, &run.stderr);
    assert!(run.status.success(), "{}", run.stderr);
    common::assert_schema_valid(&run.events);

    // Alert events per (gid, sid, rev) against the file's counts.
    let alerts = run.of_type("alert");
    let mut from_eve: BTreeMap<(u64, u64, u64), u64> = BTreeMap::new();
    for a in &alerts {
        let key = (
            a["alert"]["gid"].as_u64().unwrap(),
            a["alert"]["signature_id"].as_u64().unwrap(),
            a["alert"]["rev"].as_u64().unwrap(),
        );
        *from_eve.entry(key).or_default() += 1;
    }
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&stats_file).unwrap()).unwrap();
    let mut from_file = BTreeMap::new();
    for r in doc["rules"].as_array().unwrap() {
        let key = (
            r["gid"].as_u64().unwrap(),
            r["signature_id"].as_u64().unwrap(),
            r["rev"].as_u64().unwrap(),
        );
        assert!(r["signature"].is_string(), "{r}");
        from_file.insert(key, r["alerts"].as_u64().unwrap());
    }
    assert_eq!(from_file, from_eve);
    assert!(
        from_eve.keys().any(|k| k.0 == 1),
        "rules alerted: {from_eve:?}"
    );
    assert!(
        from_eve.keys().any(|k| k.0 == 9100),
        "the port scan model alerted: {from_eve:?}"
    );
    assert_eq!(doc["alerts"].as_u64(), Some(alerts.len() as u64));
    assert_eq!(
        run.stats()["detect"]["alert"].as_u64(),
        Some(alerts.len() as u64)
    );
    // The summary lists the busiest rule first, with its count and message.
    let (&(gid, sid, rev), &most) = from_eve
        .iter()
        .max_by_key(|(k, n)| (**n, std::cmp::Reverse(**k)))
        .unwrap();
    let line = format!("{most:>8}  {gid}:{sid}:{rev}  ");
    let listed = run
        .stderr
        .lines()
        .skip_while(|l| !l.contains("top rules by alerts"))
        .nth(1)
        .unwrap_or_else(|| panic!("no top rules in\n{}", run.stderr));
    assert!(
        listed.starts_with(&format!("    {line}")),
        "{listed:?} vs {line:?}"
    );

    // Payloads and packets of rule alerts raised by a packet.
    let bytes = std::fs::read(&pcap).unwrap();
    let records = common::pcap_records(&bytes);
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut checked = 0;
    for a in alerts.iter().filter(|a| a["alert"]["gid"] == 1) {
        let Some(cnt) = a["pcap_cnt"].as_u64() else {
            // Raised at a flow's end: no packet to carry.
            assert!(a.get("payload").is_none(), "{a}");
            continue;
        };
        let frame = b64.decode(a["packet"].as_str().unwrap()).unwrap();
        let linktype = a["packet_info"]["linktype"].as_u64().unwrap() as u32;
        if linktype == 1 {
            let (at, len) = records[cnt as usize - 1];
            assert_eq!(frame, bytes[at + 16..at + len], "packet {cnt} is the frame");
            assert_eq!(a["packet_info"]["linktype_name"], "EN10MB");
        }
        let mut pkt = vigil_parsers::DecodedPacket::default();
        vigil_parsers::decode(
            vigil_parsers::LinkType::from_pcap(linktype),
            &frame,
            &mut pkt,
        );
        let start = pkt.payload_offset as usize;
        let payload = &frame[start..start + pkt.payload_len as usize];
        let logged = b64.decode(a["payload"].as_str().unwrap()).unwrap();
        assert_eq!(logged, payload[..payload.len().min(buffer)], "{a}");
        assert_eq!(a["payload_length"].as_u64(), Some(payload.len() as u64));
        let printable: String = logged
            .iter()
            .map(|&b| match b {
                b' '..=b'~' | b'\r' | b'\n' => b as char,
                _ => '.',
            })
            .collect();
        assert_eq!(a["payload_printable"].as_str(), Some(printable.as_str()));
        assert_eq!(a["stream"], 0);
        checked += 1;
    }
    assert!(checked > 0, "some alerts came from packets");
    let _ = std::fs::remove_dir_all(&dir);
}
