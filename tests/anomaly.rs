//! Anomaly models against generated behaviour with ground truth: every injected actor found,
//! every model alert naming a real actor, nothing on benign background, evidence in the alert.
//! Seeds here differ from the benchmark's (`benches/anomaly.rs`).

mod common;

use std::path::Path;

use common::anomaly_eval::{model_alerts, score, table};
use serde_json::Value;
use vigil_pcapgen::{GenConfig, Scenario, ScenarioKind};

fn replay(pcap: &Path, dir: &Path, config: Option<&str>) -> Vec<Value> {
    std::fs::create_dir_all(dir).unwrap();
    let mut args: Vec<std::ffi::OsString> = vec!["replay".into(), pcap.into(), "-l".into()];
    args.push(dir.into());
    if let Some(text) = config {
        let path = dir.join("vigil.toml");
        std::fs::write(&path, text).unwrap();
        args.push("--config".into());
        args.push(path.into());
    }
    let out = common::vigil(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(dir.join("eve.json"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn scenarios(count: u32) -> Vec<Scenario> {
    ScenarioKind::ALL
        .into_iter()
        .map(|kind| Scenario { kind, count })
        .collect()
}

/// Small captures squeeze the behaviours: uploads are smaller and beacons faster (the
/// generator fits 8 or more connections into the capture), so those thresholds scale down.
const SMALL_CAPTURE: &str =
    "[anomaly.volume]\nupload_bytes = 1048576\n[anomaly.beacon]\nmin_period_secs = 0.5\n";

#[test]
fn every_injected_behaviour_is_found_and_every_alert_is_true() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("scenarios.pcap");
    let cfg = GenConfig {
        seed: 1101,
        target_bytes: 24 << 20,
        scenarios: scenarios(3),
        ..GenConfig::default()
    };
    let summary = common::generate(&pcap, &cfg);
    assert_eq!(summary.scenarios.len(), 18);
    let events = replay(&pcap, dir.path(), Some(SMALL_CAPTURE));
    let scores = score(&summary.scenarios, &events);
    let shown = table(&scores);
    for (kind, s) in &scores {
        assert_eq!(s.found, s.actors, "{kind}: not every actor found\n{shown}");
        assert_eq!(
            s.true_alerts, s.alerts,
            "{kind}: alerts about hosts that are no actor of it\n{shown}"
        );
    }
}

#[test]
fn alerts_explain_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("scan.pcap");
    let cfg = GenConfig {
        seed: 1102,
        target_bytes: 6 << 20,
        scenarios: vec![
            Scenario {
                kind: ScenarioKind::PortScan,
                count: 1,
            },
            Scenario {
                kind: ScenarioKind::Beacon,
                count: 1,
            },
        ],
        ..GenConfig::default()
    };
    let summary = common::generate(&pcap, &cfg);
    let events = replay(&pcap, dir.path(), Some(SMALL_CAPTURE));
    common::assert_schema_valid(&events);
    let alerts = model_alerts(&events);
    let scan = alerts
        .iter()
        .find(|a| a["alert"]["signature_id"] == 1)
        .expect("no port scan alert");
    assert_eq!(scan["alert"]["category"], "Anomaly");
    assert_eq!(scan["alert"]["signature"], "TCP port scan");
    let md = &scan["alert"]["metadata"];
    for key in [
        "model",
        "score",
        "ports",
        "threshold",
        "window",
        "probes",
        "sample",
    ] {
        assert!(md[key].is_array(), "metadata.{key} missing: {md}");
    }
    let truth = summary
        .scenarios
        .iter()
        .find(|t| t.kind == ScenarioKind::PortScan)
        .unwrap();
    assert_eq!(scan["dest_ip"], truth.target.unwrap().to_string());
    let beacon = alerts
        .iter()
        .find(|a| a["alert"]["signature_id"] == 5)
        .expect("no beaconing alert");
    let period: f64 = beacon["alert"]["metadata"]["period"][0]
        .as_str()
        .unwrap()
        .trim_end_matches('s')
        .parse()
        .unwrap();
    let truth = summary
        .scenarios
        .iter()
        .find(|t| t.kind == ScenarioKind::Beacon)
        .unwrap();
    let expected = truth.period_secs.unwrap();
    assert!(
        (period - expected).abs() <= expected * 0.2,
        "period {period} s, truth {expected} s"
    );
}

#[test]
fn benign_background_raises_no_anomaly_alert() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("benign.pcap");
    let cfg = GenConfig {
        seed: 1103,
        target_bytes: 32 << 20,
        ..GenConfig::default()
    };
    common::generate(&pcap, &cfg);
    let events = replay(&pcap, dir.path(), None);
    let alerts = model_alerts(&events);
    assert!(alerts.is_empty(), "{alerts:#?}");
}

#[test]
fn models_turn_off_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("scan.pcap");
    let cfg = GenConfig {
        seed: 1104,
        target_bytes: 4 << 20,
        scenarios: vec![
            Scenario {
                kind: ScenarioKind::PortScan,
                count: 1,
            },
            Scenario {
                kind: ScenarioKind::ProtocolMisuse,
                count: 1,
            },
        ],
        ..GenConfig::default()
    };
    common::generate(&pcap, &cfg);
    let events = replay(
        &pcap,
        &dir.path().join("scan-off"),
        Some("[anomaly.scan]\nenabled = false\n"),
    );
    let sids: Vec<u64> = model_alerts(&events)
        .iter()
        .filter_map(|a| a["alert"]["signature_id"].as_u64())
        .collect();
    assert!(!sids.contains(&1) && !sids.contains(&2), "{sids:?}");
    assert!(sids.iter().any(|s| *s == 8 || *s == 9), "{sids:?}");
    let events = replay(
        &pcap,
        &dir.path().join("all-off"),
        Some("[anomaly]\nenabled = false\n"),
    );
    assert!(model_alerts(&events).is_empty());
}

#[test]
fn anomaly_alerts_drive_response_policies() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("scan.pcap");
    let cfg = GenConfig {
        seed: 1105,
        target_bytes: 4 << 20,
        scenarios: vec![Scenario {
            kind: ScenarioKind::PortScan,
            count: 1,
        }],
        ..GenConfig::default()
    };
    let summary = common::generate(&pcap, &cfg);
    let scanner = summary.scenarios[0].actor.to_string();
    let config = dir.path().join("vigil.toml");
    std::fs::write(
        &config,
        "[[response.policy]]\nname = \"contain scanners\"\ngid = 9100\ncategory = \"Anomaly\"\nblock = \"src\"\nfor = \"30m\"\n",
    )
    .unwrap();
    let out = common::vigil([
        "replay".as_ref(),
        pcap.as_os_str(),
        "--config".as_ref(),
        config.as_os_str(),
        "--respond=dry-run".as_ref(),
        "-l".as_ref(),
        dir.path().as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<Value> = std::fs::read_to_string(dir.path().join("eve.json"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let block = events
        .iter()
        .find(|e| e["event_type"] == "response" && e["response"]["action"] == "block")
        .expect("no block for the scanner");
    assert_eq!(block["response"]["address"], scanner);
    assert_eq!(block["response"]["outcome"], "dry-run");
    assert_eq!(block["response"]["for"], 1800);
    assert_eq!(block["alert"]["gid"], 9100);
    assert_eq!(block["alert"]["signature"], "TCP port scan");
    assert!(block["response"]["reasons"]
        .to_string()
        .contains("contain scanners"));
}
