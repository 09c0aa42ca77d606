//! Anomaly models: precision and recall per behaviour on generated scenarios, alerts per GB of
//! benign background, and what the models cost in replay throughput.
//!
//!   cargo bench --bench anomaly -- [--size-mb N] [--seeds N] [--benign-gb N] [--pcap FILE]
//!
//! - **scenarios**: `--seeds` captures (default 3, seeds 9001…, which the tests do not use) of
//!   `--size-mb` MiB (default 200) of background with every behaviour injected (3 actors
//!   each); an actor is found when a model of its behaviour alerts about it, an alert is true
//!   when it names an actor of the behaviour it claims.
//! - **benign**: `--benign-gb` GiB (default 10) of background without scenarios, generated 1
//!   GiB at a time (seeds 9101…): every model alert is a false positive.
//! - **cost**: `vigil replay` of `--pcap` (default the reference's 200 MB mixed capture in
//!   /tmp/ref when present, else a generated 200 MiB one), 1 worker, best of 3, models on and off.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::anomaly_eval::{model_alerts, score, table, Score};
use vigil_pcapgen::{GenConfig, Scenario, ScenarioKind};

struct Args {
    size_mb: u64,
    seeds: u64,
    benign_gb: u64,
    pcap: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut args = Args {
        size_mb: 200,
        seeds: 3,
        benign_gb: 10,
        pcap: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--size-mb" => args.size_mb = value().parse().expect("--size-mb N"),
            "--seeds" => args.seeds = value().parse().expect("--seeds N"),
            "--benign-gb" => args.benign_gb = value().parse().expect("--benign-gb N"),
            "--pcap" => args.pcap = Some(PathBuf::from(value())),
            "--bench" => {}
            other => panic!("unknown argument {other:?}"),
        }
    }
    args
}

fn replay(pcap: &Path, out: &Path, config: &str) -> (Vec<serde_json::Value>, f64) {
    std::fs::create_dir_all(out).expect("out dir");
    let cfg = out.join("vigil.toml");
    std::fs::write(&cfg, config).expect("config");
    let started = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["replay", "-q", "--workers", "1", "--config"])
        .arg(&cfg)
        .arg("-l")
        .arg(out)
        .arg(pcap)
        .status()
        .expect("vigil replay");
    let secs = started.elapsed().as_secs_f64();
    assert!(status.success(), "vigil replay of {}", pcap.display());
    let events = std::fs::read_to_string(out.join("eve.json"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (events, secs)
}

fn main() {
    let args = parse_args();
    let dir = tempfile::tempdir().expect("tempdir");
    println!("# Anomaly models");

    let mut totals: BTreeMap<&'static str, Score> = BTreeMap::new();
    for seed in 9001..9001 + args.seeds {
        let pcap = dir.path().join(format!("scenarios-{seed}.pcap"));
        let cfg = GenConfig {
            seed,
            target_bytes: args.size_mb << 20,
            scenarios: ScenarioKind::ALL
                .into_iter()
                .map(|kind| Scenario { kind, count: 3 })
                .collect(),
            ..GenConfig::default()
        };
        let summary = common::generate(&pcap, &cfg);
        let (events, _) = replay(&pcap, &dir.path().join(format!("out-{seed}")), "");
        for (kind, s) in score(&summary.scenarios, &events) {
            let t = totals.entry(kind).or_default();
            t.actors += s.actors;
            t.found += s.found;
            t.alerts += s.alerts;
            t.true_alerts += s.true_alerts;
        }
        let _ = std::fs::remove_file(&pcap);
    }
    println!(
        "\n## Scenarios: {} captures of {} MiB, 3 actors per behaviour each\n\n{}",
        args.seeds,
        args.size_mb,
        table(&totals)
    );

    let mut benign_alerts = Vec::new();
    let mut benign_bytes = 0u64;
    for seed in 9101..9101 + args.benign_gb {
        let pcap = dir.path().join("benign.pcap");
        let cfg = GenConfig {
            seed,
            target_bytes: 1 << 30,
            ..GenConfig::default()
        };
        let summary = common::generate(&pcap, &cfg);
        benign_bytes += summary.bytes_written;
        let (events, _) = replay(&pcap, &dir.path().join("benign"), "");
        for a in model_alerts(&events) {
            benign_alerts.push(format!(
                "{} {} {}",
                a["alert"]["signature"], a["src_ip"], a["alert"]["metadata"]
            ));
        }
        let _ = std::fs::remove_file(&pcap);
    }
    let gb = benign_bytes as f64 / 1e9;
    println!(
        "\n## Benign background: {:.1} GB, {} model alerts ({:.2} per 10 GB)",
        gb,
        benign_alerts.len(),
        benign_alerts.len() as f64 / gb * 10.0
    );
    for a in benign_alerts.iter().take(10) {
        println!("- {a}");
    }

    let pcap = args.pcap.clone().unwrap_or_else(|| {
        let reference = PathBuf::from("/tmp/ref/mixed-200mb.pcap");
        if reference.exists() {
            reference
        } else {
            let generated = dir.path().join("mixed-200mb.pcap");
            common::generate(&generated, &GenConfig::new(7, 200 << 20));
            generated
        }
    });
    let mut best = [f64::MAX; 2];
    for _ in 0..3 {
        for (i, config) in [
            "[anomaly]\nenabled = false\n",
            "[anomaly]\nenabled = true\n",
        ]
        .iter()
        .enumerate()
        {
            let (_, secs) = replay(&pcap, &dir.path().join("cost"), config);
            best[i] = best[i].min(secs);
        }
    }
    println!(
        "\n## Cost on {} (1 worker, best of 3)\n\n| models | seconds |\n|---|---|\n| off | {:.3} |\n| on | {:.3} |\n\ncost: {:+.1} %",
        pcap.display(),
        best[0],
        best[1],
        (best[1] / best[0] - 1.0) * 100.0
    );
}
