//! End to end: generated mixed traffic (with tunnels, VLANs and fragments) through the real
//! `vigil replay`, checked against the generator's ground truth, the EVE schema, and itself with
//! different worker counts.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use common::{assert_schema_valid, event_key, flow_identity, generate, replay, truth_key};
use serde_json::Value;
use vigil_pcapgen::GenConfig;

fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn flows_match_generator_ground_truth() {
    let dir = workdir("truth");
    let pcap = dir.join("mixed.pcap");
    let truth = generate(&pcap, &GenConfig::new(11, 4 << 20));
    let run = replay(&[&pcap], 2, &[], &dir.join("eve"));
    assert!(run.status.success(), "{}", run.stderr);
    assert_schema_valid(&run.events);

    // The carriers of UDP tunnels (VXLAN, Geneve, Teredo) are flows of their own, as in
    // Suricata; the generator's truth lists only the conversations inside them.
    let (carriers, flows): (Vec<&Value>, Vec<&Value>) =
        run.of_type("flow").into_iter().partition(|ev| {
            ev["tunnel"].is_null()
                && ev["proto"] == "UDP"
                && [4789, 6081, 3544]
                    .iter()
                    .any(|p| ev["dest_port"] == *p || ev["src_port"] == *p)
        });
    let udp_tunnelled = truth
        .flows
        .iter()
        .filter(|t| {
            t.tunnel
                .as_ref()
                .is_some_and(|tt| ["VXLAN", "GENEVE", "TEREDO"].contains(&tt.kind))
        })
        .count();
    assert!(
        udp_tunnelled > 0 && !carriers.is_empty(),
        "UDP tunnel carrier flows"
    );
    assert!(
        carriers.len() <= udp_tunnelled * 2,
        "{} carriers for {udp_tunnelled} tunnelled flows",
        carriers.len()
    );
    let mut by_key: HashMap<String, &Value> = HashMap::new();
    for ev in &flows {
        assert!(
            by_key.insert(event_key(ev, false), ev).is_none(),
            "duplicate flow {ev}"
        );
    }
    assert_eq!(
        flows.len(),
        truth.flows.len(),
        "one flow record per generated flow"
    );
    for t in &truth.flows {
        let key = truth_key(t);
        // One-way flows (an ICMP error) are named after their sender, the truth's server.
        let (ev, reversed) = match by_key.get(&key) {
            Some(ev) => (*ev, false),
            None => {
                let rev = by_key
                    .values()
                    .find(|ev| event_key(ev, true) == key)
                    .unwrap_or_else(|| panic!("no flow event for {key}"));
                assert_eq!(
                    t.pkts_toserver, 0,
                    "only one-way flows may come out reversed: {key}"
                );
                (*rev, true)
            }
        };
        let f = &ev["flow"];
        let (ts, tc) = if reversed {
            ("toclient", "toserver")
        } else {
            ("toserver", "toclient")
        };
        assert_eq!(f[format!("pkts_{ts}")], t.pkts_toserver, "{key}: {ev}");
        assert_eq!(f[format!("pkts_{tc}")], t.pkts_toclient, "{key}: {ev}");
        assert_eq!(f[format!("bytes_{ts}")], t.bytes_toserver, "{key}: {ev}");
        assert_eq!(f[format!("bytes_{tc}")], t.bytes_toclient, "{key}: {ev}");
        assert!(ev["community_id"].as_str().unwrap().starts_with("1:"));
    }

    // Every encapsulation kind and both fragment families really occurred and were decoded.
    let stats = run.stats();
    let decoder = &stats["decoder"];
    assert_eq!(decoder["pkts"], truth.packets);
    for counter in [
        "vlan",
        "vlan_qinq",
        "mpls",
        "gre",
        "erspan",
        "vxlan",
        "geneve",
        "teredo",
    ] {
        assert!(
            decoder[counter].as_u64().unwrap() > 0,
            "no {counter} packets decoded"
        );
    }
    assert!(
        decoder["ipv4_in_ipv4"].as_u64().unwrap() + decoder["ipv6_in_ipv4"].as_u64().unwrap() > 0
    );
    let fragmented: u64 = truth.flows.iter().map(|t| u64::from(t.fragmented)).sum();
    let defrag = &stats["defrag"];
    let reassembled = defrag["ipv4"]["reassembled"].as_u64().unwrap()
        + defrag["ipv6"]["reassembled"].as_u64().unwrap();
    assert_eq!(
        reassembled, fragmented,
        "every fragmented datagram reassembled"
    );
    assert!(defrag["ipv4"]["reassembled"].as_u64().unwrap() > 0);
    assert!(defrag["ipv6"]["reassembled"].as_u64().unwrap() > 0);
    assert_eq!(
        stats["flow"]["total"].as_u64().unwrap(),
        (truth.flows.len() + carriers.len()) as u64
    );
    assert!(
        run.stderr.contains("vigil replay:"),
        "summary on stderr: {}",
        run.stderr
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Flow records, anomaly events and counters are the same for 1, 2 and 3 workers.
#[test]
fn results_do_not_depend_on_worker_count() {
    let dir = workdir("workers");
    let pcap = dir.join("mixed.pcap");
    generate(&pcap, &GenConfig::new(5, 3 << 20));
    let canonical = |workers: usize| {
        let run = replay(&[&pcap], workers, &[], &dir.join(format!("eve{workers}")));
        assert!(run.status.success(), "{}", run.stderr);
        let mut lines: Vec<String> = run
            .events
            .iter()
            .map(|ev| {
                let mut ev = ev.clone();
                if ev["event_type"] == "stats" {
                    ev["stats"]["uptime"] = Value::Null;
                    // Memory use depends on how the memcap is split, not on what was seen.
                    ev["stats"]["flow"]["memuse"] = Value::Null;
                }
                ev.to_string()
            })
            .collect();
        lines.sort();
        lines
    };
    let one = canonical(1);
    assert!(
        one.iter()
            .filter(|l| l.contains("\"event_type\":\"flow\""))
            .count()
            > 100
    );
    for workers in [2, 3] {
        let many = canonical(workers);
        assert_eq!(one.len(), many.len(), "event count with {workers} workers");
        for (a, b) in one.iter().zip(&many) {
            assert_eq!(a, b, "{workers} workers");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Both directions of every flow meet in one worker: no flow is split in two records.
#[test]
fn no_flow_is_split_across_workers() {
    let dir = workdir("split");
    let pcap = dir.join("mixed.pcap");
    generate(&pcap, &GenConfig::new(23, 2 << 20));
    let run = replay(&[&pcap], 4, &[], &dir.join("eve"));
    assert!(run.status.success(), "{}", run.stderr);
    let mut seen = HashMap::new();
    for ev in run.of_type("flow") {
        *seen.entry(flow_identity(ev)).or_insert(0) += 1;
    }
    assert!(
        seen.values().all(|&n| n == 1),
        "split flows: {:?}",
        seen.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
