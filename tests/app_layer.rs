//! The application layer end to end: real captures from the shared corpus replayed through
//! `vigil replay`, checked field by field against what their suricata-verify cases expect of
//! Suricata 8, and every event validated against Suricata's EVE schema.

mod common;

use std::path::PathBuf;

fn case_pcap(case: &str) -> PathBuf {
    let dir = common::shared().join("corpus/suricata-verify").join(case);
    let pcap = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "pcap"))
        .expect("case pcap");
    pcap
}

fn run_case(case: &str, extra: &[&str]) -> common::Run {
    // Tests run in parallel and may replay the same case: one directory per call.
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let out = std::env::temp_dir().join(format!(
        "vigil-app-{}-{}-{}",
        case.replace('/', "_"),
        std::process::id(),
        RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let run = common::replay(&[&case_pcap(case)], 1, extra, &out);
    let _ = std::fs::remove_dir_all(&out);
    common::assert_no_crash(&run.status, &run.stderr);
    common::assert_schema_valid(&run.events);
    run
}

fn flows_by_app_proto(run: &common::Run) -> Vec<(String, String)> {
    run.of_type("flow")
        .iter()
        .map(|f| {
            (
                f["proto"].as_str().unwrap_or_default().to_string(),
                f["app_proto"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect()
}

#[test]
fn dns_over_udp_request_and_response() {
    let run = run_case("dns/dns-udp-eve-dig", &[]);
    let dns = run.of_type("dns");
    assert_eq!(dns.len(), 2, "{dns:#?}");
    let req = dns.iter().find(|e| e["dns"]["type"] == "request").unwrap();
    assert_eq!(req["src_ip"], "10.16.1.11");
    assert_eq!(req["src_port"], 41805);
    assert_eq!(req["dest_port"], 53);
    assert_eq!(req["pcap_cnt"], 1);
    assert_eq!(req["dns"]["id"], 36146);
    assert_eq!(req["dns"]["queries"][0]["rrname"], "www.suricata-ids.org");
    assert_eq!(req["dns"]["queries"][0]["rrtype"], "A");
    let resp = dns.iter().find(|e| e["dns"]["type"] == "response").unwrap();
    // A response is logged as its packet travelled: from the resolver.
    assert_eq!(resp["src_ip"], "10.16.1.1");
    assert_eq!(resp["src_port"], 53);
    assert_eq!(resp["dest_port"], 41805);
    assert_eq!(resp["dns"]["answers"][0]["rrtype"], "CNAME");
    assert_eq!(resp["dns"]["answers"][0]["rdata"], "suricata-ids.org");
    assert_eq!(resp["flow_id"], req["flow_id"]);
    assert_eq!(flows_by_app_proto(&run), [("UDP".into(), "dns".into())]);
}

#[test]
fn dns_nxdomain_is_visible() {
    let run = run_case("dns-udp-nxdomain-soa", &[]);
    let dns = run.of_type("dns");
    let resp = dns
        .iter()
        .find(|e| e["dns"]["type"] == "response")
        .expect("a response");
    assert_eq!(resp["dns"]["rcode"], "NXDOMAIN");
    assert_eq!(resp["dns"]["authorities"][0]["rrtype"], "SOA");
}

#[test]
fn dns_over_tcp_many_requests_on_one_connection() {
    let run = run_case("dns/dns-tcp-multirequest-buffer", &[]);
    let dns = run.of_type("dns");
    let requests = dns.iter().filter(|e| e["dns"]["type"] == "request").count();
    let responses = dns
        .iter()
        .filter(|e| e["dns"]["type"] == "response")
        .count();
    assert_eq!((requests, responses), (20, 20));
    assert!(dns.iter().all(|e| e["proto"] == "TCP"));
    assert!(flows_by_app_proto(&run).contains(&("TCP".into(), "dns".into())));
}

#[test]
fn ssh_banners_after_reassembly() {
    let run = run_case("ssh-newkeys", &[]);
    let ssh = run.of_type("ssh");
    assert_eq!(ssh.len(), 1, "{ssh:#?}");
    let s = &ssh[0]["ssh"];
    assert_eq!(s["client"]["proto_version"], "2.0");
    assert_eq!(s["server"]["proto_version"], "2.0");
    assert!(s["client"]["software_version"].is_string());
    assert!(s["server"]["software_version"].is_string());
    assert!(flows_by_app_proto(&run).contains(&("TCP".into(), "ssh".into())));
}

#[test]
fn tls_certificate_fields() {
    let run = run_case("tls/tls-cert-issuer", &[]);
    let tls = run.of_type("tls");
    assert!(!tls.is_empty());
    let with_cert: Vec<_> = tls
        .iter()
        .filter(|e| e["tls"]["subject"].is_string())
        .collect();
    assert!(!with_cert.is_empty(), "{tls:#?}");
    for e in &with_cert {
        let t = &e["tls"];
        assert!(t["issuerdn"].is_string());
        assert!(t["fingerprint"].as_str().unwrap().split(':').count() == 20);
        assert!(t["version"].as_str().unwrap().starts_with("TLS"));
    }
    let flows = flows_by_app_proto(&run);
    assert!(flows
        .iter()
        .all(|(proto, app)| proto != "TCP" || app == "tls"));
    // The capture also holds an mDNS query: DNS found on UDP 5353 by content.
    assert!(flows.contains(&("UDP".into(), "dns".into())), "{flows:?}");
}

/// Suricata's TLS/SSH counters: `app_layer.tx` stays 0 for them (one transaction per session
/// from the start), `app_layer.error.<proto>.parser` counts malformed bytes (none here).
#[test]
fn tls_and_ssh_counters_are_suricatas() {
    for case in [
        "tls/tls-cert-issuer",
        "tls/tls-fin-close-data-01",
        "ssh-newkeys",
    ] {
        let run = run_case(case, &[]);
        let stats = run.of_type("stats");
        let a = &stats.last().expect("stats event")["stats"]["app_layer"];
        assert_eq!(a["tx"]["tls"], 0, "{case}: {a}");
        assert_eq!(a["tx"]["ssh"], 0, "{case}: {a}");
        assert_eq!(a["error"]["tls"]["parser"], 0, "{case}: {a}");
        assert_eq!(a["error"]["ssh"]["parser"], 0, "{case}: {a}");
    }
    let run = run_case("tls/tls-cert-issuer", &[]);
    assert_eq!(
        run.of_type("stats").last().unwrap()["stats"]["app_layer"]["flow"]["tls"],
        5
    );
}

/// `[app_layer.tls] custom` logs exactly Suricata's named fields; `extended = false` only
/// subject, issuerdn and subjectaltname (and a resumed session).
#[test]
fn tls_event_fields_follow_the_config() {
    let dir = std::env::temp_dir().join(format!("vigil-tls-fields-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let custom = dir.join("custom.toml");
    std::fs::write(
        &custom,
        "[app_layer.tls]\ncustom = [\"sni\", \"Version\", \"ja4\"]\n",
    )
    .unwrap();
    let basic = dir.join("basic.toml");
    std::fs::write(&basic, "[app_layer.tls]\nextended = false\n").unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[app_layer.tls]\ncustom = [\"sni\", \"colour\"]\n").unwrap();

    let keys = |cfg: &std::path::Path| -> Vec<Vec<String>> {
        let run = run_case("tls/tls-cert-issuer", &["--config", cfg.to_str().unwrap()]);
        run.of_type("tls")
            .iter()
            .map(|e| {
                let mut k: Vec<String> = e["tls"].as_object().unwrap().keys().cloned().collect();
                k.sort();
                k
            })
            .collect()
    };
    // The capture has no SNI; session-resumption (on by default) adds session_resumed.
    let got = keys(&custom);
    assert_eq!(got.len(), 5);
    assert!(
        got.iter()
            .all(|k| k == &["ja4", "version"] || k == &["ja4", "session_resumed", "version"]),
        "{got:?}"
    );
    let got = keys(&basic);
    assert!(
        got.iter()
            .all(|k| k == &["issuerdn", "subject"] || k == &["session_resumed"]),
        "{got:?}"
    );
    let out = common::vigil(["config", "check", bad.to_str().unwrap()]);
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && text.contains("unknown tls field \"colour\""),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tls_ja4_is_logged_by_default() {
    let run = run_case("bug-5713-02-ja4", &[]);
    let tls = run.of_type("tls");
    assert!(!tls.is_empty());
    assert!(tls.iter().all(|e| e["tls"]["ja4"].is_string()), "{tls:#?}");
}

/// Generated traffic with every application variant (odd ports, binary on 80/443, SSH, TLS 1.2
/// certificates, DNS edge cases, HTTP variants) and reordered/duplicated segments: every flow's
/// `app_proto` and every protocol record equal the generator's ground truth.
#[test]
fn generated_traffic_matches_application_ground_truth() {
    use vigil_pcapgen::{AppTruth, GenConfig, Impair, Variants};
    let dir = std::env::temp_dir().join(format!("vigil-app-gen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("gen.pcap");
    let cfg = GenConfig {
        variants: Variants::standard(),
        impair: Impair::parse("reorder=0.05,dup=0.03").unwrap(),
        ..GenConfig::new(23, 6 << 20)
    };
    let truth = common::generate(&pcap, &cfg);
    let run = common::replay(&[&pcap], 2, &[], &dir.join("out"));
    let _ = std::fs::remove_dir_all(&dir);
    common::assert_no_crash(&run.status, &run.stderr);
    common::assert_schema_valid(&run.events);

    // flow_id → truth, through the flow events (oriented client → server like the truth).
    let by_key: std::collections::HashMap<String, &vigil_pcapgen::FlowTruth> = truth
        .flows
        .iter()
        .map(|t| (common::truth_key(t), t))
        .collect();
    let mut truth_of = std::collections::HashMap::new();
    for f in run.of_type("flow") {
        // UDP tunnel carriers are flows of their own that the truth does not list.
        if let Some(t) = by_key.get(&common::event_key(f, false)) {
            truth_of.insert(f["flow_id"].as_u64().unwrap(), (*t, f));
        }
    }
    let events_of = |flow_id: u64, kind: &str| -> Vec<&serde_json::Value> {
        run.events
            .iter()
            .filter(|e| e["event_type"] == kind && e["flow_id"].as_u64() == Some(flow_id))
            .collect()
    };
    let (mut checked_http, mut checked_dns, mut checked_tls, mut checked_ssh, mut checked_unknown) =
        (0, 0, 0, 0, 0);
    for (&flow_id, &(t, flow)) in &truth_of {
        let Some(app) = &t.app_layer else {
            continue;
        };
        let want_proto = match app {
            AppTruth::Unknown => "failed",
            other => other.proto(),
        };
        assert_eq!(flow["app_proto"], want_proto, "{flow}");
        let mismatch = events_of(flow_id, "anomaly")
            .iter()
            .any(|e| e["anomaly"]["event"] == "APPLAYER_PROTOCOL_PORT_MISMATCH");
        let registered = matches!(
            (t.proto, t.server_port),
            (6, 80 | 8080 | 443 | 22 | 53) | (17, 53 | 5353)
        );
        let on_its_port = matches!(
            (want_proto, t.server_port),
            ("http", 80 | 8080) | ("tls", 443) | ("ssh", 22) | ("dns", 53 | 5353)
        );
        assert_eq!(mismatch, registered && !on_its_port, "{flow}");
        match app {
            AppTruth::Http { transactions } => {
                let http = events_of(flow_id, "http");
                assert_eq!(http.len(), transactions.len(), "{flow}");
                for (ev, tx) in http.iter().zip(transactions) {
                    let h = &ev["http"];
                    assert_eq!(h["http_method"], tx.method.as_str(), "{ev}");
                    assert_eq!(h["url"], tx.uri.as_str(), "{ev}");
                    assert_eq!(h["http_user_agent"], tx.user_agent.as_str(), "{ev}");
                    assert_eq!(h["status"], tx.status, "{ev}");
                    assert_eq!(h["length"], tx.response_body_len, "{ev}");
                    let host = tx.host.split(':').next().unwrap();
                    assert_eq!(h["hostname"], host, "{ev}");
                    if let Some(ct) = &tx.content_type {
                        assert_eq!(
                            h["http_content_type"],
                            ct.split(';').next().unwrap().trim(),
                            "{ev}"
                        );
                    }
                }
                checked_http += 1;
            }
            AppTruth::Dns { messages } => {
                let dns = events_of(flow_id, "dns");
                assert_eq!(dns.len(), messages.len(), "{flow}");
                for (ev, msg) in dns.iter().zip(messages) {
                    let d = &ev["dns"];
                    let kind = if msg.response { "response" } else { "request" };
                    assert_eq!(d["type"], kind, "{ev}");
                    assert_eq!(d["id"], msg.id, "{ev}");
                    assert_eq!(d["queries"][0]["rrname"], msg.qname.as_str(), "{ev}");
                    assert_eq!(d["queries"][0]["rrtype"], msg.qtype.as_str(), "{ev}");
                    if msg.response {
                        assert_eq!(d["rcode"], msg.rcode.as_str(), "{ev}");
                        assert_eq!(d["tc"].as_bool().unwrap_or(false), msg.tc, "{ev}");
                        let types: Vec<&str> = d["answers"]
                            .as_array()
                            .map(|a| a.iter().map(|r| r["rrtype"].as_str().unwrap()).collect())
                            .unwrap_or_default();
                        assert_eq!(types, msg.answer_types, "{ev}");
                    }
                }
                checked_dns += 1;
            }
            AppTruth::Tls(tls) => {
                let ev = events_of(flow_id, "tls");
                assert_eq!(ev.len(), 1, "{flow}");
                let e = &ev[0]["tls"];
                assert_eq!(e["version"], tls.version.as_str(), "{e}");
                match &tls.sni {
                    Some(sni) => assert_eq!(e["sni"], sni.as_str(), "{e}"),
                    None => assert!(e.get("sni").is_none(), "{e}"),
                }
                if let Some(cert) = &tls.cert {
                    assert_eq!(e["subject"], cert.subject.as_str(), "{e}");
                    assert_eq!(e["issuerdn"], cert.issuer.as_str(), "{e}");
                    assert_eq!(e["serial"], cert.serial.as_str(), "{e}");
                    assert_eq!(e["fingerprint"], cert.fingerprint.as_str(), "{e}");
                    assert_eq!(e["notbefore"], cert.not_before.as_str(), "{e}");
                    assert_eq!(e["notafter"], cert.not_after.as_str(), "{e}");
                }
                checked_tls += 1;
            }
            AppTruth::Ssh(ssh) => {
                let ev = events_of(flow_id, "ssh");
                assert_eq!(ev.len(), 1, "{flow}");
                let e = &ev[0]["ssh"];
                let software = |banner: &str| {
                    banner
                        .splitn(3, '-')
                        .nth(2)
                        .unwrap()
                        .split(' ')
                        .next()
                        .unwrap()
                        .to_string()
                };
                assert_eq!(
                    e["client"]["software_version"],
                    software(&ssh.client_banner).as_str()
                );
                assert_eq!(
                    e["server"]["software_version"],
                    software(&ssh.server_banner).as_str()
                );
                checked_ssh += 1;
            }
            AppTruth::Unknown => checked_unknown += 1,
        }
    }
    eprintln!(
        "ground truth checked: http {checked_http}, dns {checked_dns}, tls {checked_tls}, ssh {checked_ssh}, unrecognised {checked_unknown}"
    );
    assert!(checked_http > 20 && checked_dns > 20 && checked_tls > 20);
    assert!(checked_ssh > 3 && checked_unknown > 0);
}

#[test]
fn tls_inside_an_http_connect_tunnel() {
    let run = run_case("http-connect/http-connect-tls", &[]);
    let http = run.of_type("http");
    assert_eq!(http.len(), 1, "{http:#?}");
    assert_eq!(http[0]["http"]["http_method"], "CONNECT");
    assert_eq!(http[0]["http"]["status"], 200);
    let flows = run.of_type("flow");
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0]["app_proto"], "tls");
    assert_eq!(flows[0]["app_proto_orig"], "http");
}

#[test]
fn fingerprints_and_header_dumps_follow_the_config() {
    let dir = std::env::temp_dir().join(format!("vigil-app-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("vigil.toml");
    std::fs::write(
        &cfg,
        "[app_layer.ssh]\nhassh = true\n[app_layer.http]\ndump_all_headers = \"both\"\n",
    )
    .unwrap();
    let cfg_arg = cfg.to_str().unwrap();

    let run = run_case("ssh-newkeys", &["--config", cfg_arg]);
    let ssh = run.of_type("ssh");
    let client = &ssh[0]["ssh"]["client"];
    assert_eq!(
        client["hassh"]["hash"].as_str().map(str::len),
        Some(32),
        "{client}"
    );
    assert!(ssh[0]["ssh"]["server"]["hassh"]["string"].is_string());
    // Off by default, as in Suricata 8.
    let plain = run_case("ssh-newkeys", &[]);
    assert!(plain.of_type("ssh")[0]["ssh"]["client"]
        .get("hassh")
        .is_none());

    let run = run_case("http-all-headers", &["--config", cfg_arg]);
    let _ = std::fs::remove_dir_all(&dir);
    let http = run.of_type("http");
    assert!(!http.is_empty());
    let headers = http[0]["http"]["request_headers"]
        .as_array()
        .expect("request_headers");
    assert!(headers.iter().any(|h| h["name"] == "Host"), "{headers:?}");
    assert!(http[0]["http"]["response_headers"].is_array());
}

#[test]
fn a_different_protocol_in_each_direction_is_reported() {
    // An HTTP request to an SSH server, which answers with its banner.
    let run = run_case("output-eve-anomaly-02", &[]);
    let events: Vec<&str> = run
        .of_type("anomaly")
        .iter()
        .filter(|e| e["anomaly"]["layer"] == "proto_detect")
        .map(|e| e["anomaly"]["event"].as_str().unwrap())
        .collect();
    assert!(
        events.contains(&"APPLAYER_MISMATCH_PROTOCOL_BOTH_DIRECTIONS"),
        "{events:?}"
    );
    // HTTP on the SSH port is reported too.
    assert!(
        events.contains(&"APPLAYER_PROTOCOL_PORT_MISMATCH"),
        "{events:?}"
    );
    assert_eq!(run.of_type("flow")[0]["app_proto"], "http");
}

/// An EICAR download whose body is deflate, gzip, deflate (http-evader-150): with the case's
/// layer limit of 3 the body is decoded, the rules on `file_data` alert, and the file is one
/// `fileinfo` event oriented from the server, with the transaction's `http` object.
#[test]
fn fileinfo_for_a_layered_download() {
    let case = "http-evader/http-evader-150";
    let dir = std::env::temp_dir().join(format!("vigil-app-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("vigil.toml");
    std::fs::write(&cfg, "[app_layer.http]\ndecompress_layer_limit = 3\n").unwrap();
    let rules = common::shared()
        .join("corpus/suricata-verify")
        .join(case)
        .join("test.rules");
    let run = run_case(
        case,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "-S",
            rules.to_str().unwrap(),
        ],
    );
    let sids: Vec<u64> = run
        .of_type("alert")
        .iter()
        .filter_map(|a| a["alert"]["signature_id"].as_u64())
        .collect();
    assert_eq!(sids.len(), 2, "{sids:?}");
    let files = run.of_type("fileinfo");
    assert_eq!(files.len(), 1, "{files:#?}");
    let f = files[0];
    assert_eq!(f["app_proto"], "http");
    assert_eq!(f["http"]["http_method"], "GET");
    assert_eq!(f["http"]["hostname"], "evader.example.com");
    assert_eq!(f["src_port"], 80, "a download travels from the server");
    assert_eq!(f["fileinfo"]["filename"], "eicar.txt");
    assert_eq!(f["fileinfo"]["state"], "CLOSED");
    assert_eq!(f["fileinfo"]["gaps"], false);
    assert_eq!(f["fileinfo"]["stored"], false);
    assert_eq!(f["fileinfo"]["size"], 68, "the decoded EICAR string");
    assert_eq!(f["fileinfo"]["tx_id"], f["tx_id"]);
    assert_eq!(f["flow_id"], run.of_type("http")[0]["flow_id"]);

    // The default limit (2) leaves the third layer encoded: no alert on the content, the
    // transaction gets TOO_MANY_ENCODING_LAYERS, and `fileinfo` can be turned off.
    std::fs::write(&cfg, "[eve]\ntypes = [\"alert\", \"http\", \"anomaly\"]\n").unwrap();
    let run = run_case(
        case,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "-S",
            rules.to_str().unwrap(),
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(run.of_type("alert").is_empty());
    assert!(run.of_type("fileinfo").is_empty());
    assert!(run
        .of_type("anomaly")
        .iter()
        .any(|a| a["anomaly"]["event"] == "TOO_MANY_ENCODING_LAYERS"));
}

/// Files of the gap cases: a body cut by a lost segment is TRUNCATED with `gaps: true`.
#[test]
fn fileinfo_of_a_body_with_a_gap() {
    let run = run_case("http-gap-whole-body", &[]);
    let files = run.of_type("fileinfo");
    assert_eq!(files.len(), 3, "{files:#?}");
    let gapped: Vec<_> = files
        .iter()
        .filter(|f| f["fileinfo"]["gaps"] == true)
        .collect();
    assert_eq!(gapped.len(), 1);
    assert_eq!(gapped[0]["fileinfo"]["state"], "TRUNCATED");
    assert!(files
        .iter()
        .filter(|f| f["fileinfo"]["gaps"] == false)
        .all(|f| f["fileinfo"]["state"] == "CLOSED"));
}
