//! The same traffic in every capture format and link type Vigil reads gives the same flows.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::replay;
use serde_json::Value;
use vigil_pcapgen::{
    convert_frames, generate_frames, write_pcap, write_pcapng, write_pcapng_two_interfaces, Endian,
    GenConfig, LinkType, PcapOptions, PcapngBlock, PcapngInterface, PcapngOptions, TsPrecision,
};

/// Flow identity (without VLANs, which link types other than Ethernet cannot carry) → packets.
fn flows(run: &common::Run, with_vlan: bool) -> BTreeMap<String, (u64, u64)> {
    let mut out = BTreeMap::new();
    for ev in run.of_type("flow") {
        let key = format!(
            "{} {}:{} > {}:{} vlan={} tunnel={}",
            ev["proto"],
            ev["src_ip"],
            ev["src_port"],
            ev["dest_ip"],
            ev["dest_port"],
            if with_vlan {
                ev["vlan"].clone()
            } else {
                Value::Null
            },
            ev["tunnel"]
        );
        let f = &ev["flow"];
        let pkts = (
            f["pkts_toserver"].as_u64().unwrap(),
            f["pkts_toclient"].as_u64().unwrap(),
        );
        assert!(out.insert(key.clone(), pkts).is_none(), "duplicate {key}");
    }
    out
}

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("vigil-formats-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run_file(path: &Path, name: &str) -> common::Run {
    let run = replay(&[path], 2, &[], &path.with_file_name(format!("eve-{name}")));
    assert!(run.status.success(), "{name}: {}", run.stderr);
    common::assert_schema_valid(&run.events);
    run
}

#[test]
fn every_container_and_link_type_gives_the_same_flows() {
    let d = dir();
    let (frames, _truth) = generate_frames(&GenConfig::new(31, 1 << 20));
    let write = |name: &str, f: &dyn Fn(std::fs::File) -> std::io::Result<std::fs::File>| {
        let path = d.join(format!("{name}.pcap"));
        f(std::fs::File::create(&path).unwrap()).unwrap();
        path
    };

    let base_path = write("base", &|out| {
        write_pcap(&frames, &PcapOptions::default(), out)
    });
    let base_run = run_file(&base_path, "base");
    let base = flows(&base_run, true);
    assert!(base.len() > 50);

    // Same frames, other containers: identical flows, VLANs included.
    let be_ns = PcapOptions {
        endian: Endian::Big,
        precision: TsPrecision::Nano,
        ..Default::default()
    };
    let containers: Vec<(&str, PathBuf)> = vec![
        (
            "pcap-be-ns",
            write("pcap-be-ns", &|out| write_pcap(&frames, &be_ns, out)),
        ),
        (
            "pcapng-2if",
            write("pcapng-2if", &|out| {
                write_pcapng_two_interfaces(&frames, out)
            }),
        ),
        (
            "pcapng-be",
            write("pcapng-be", &|out| {
                let opts = PcapngOptions {
                    endian: Endian::Big,
                    interfaces: vec![PcapngInterface {
                        tsresol: 9,
                        ..Default::default()
                    }],
                    block: PcapngBlock::Epb,
                };
                write_pcapng(&frames, &opts, out)
            }),
        ),
    ];
    for (name, path) in &containers {
        let run = run_file(path, name);
        assert_eq!(flows(&run, true), base, "{name}");
        assert_eq!(
            run.stats()["decoder"]["pkts"],
            base_run.stats()["decoder"]["pkts"],
            "{name}"
        );
    }

    // Simple Packet Blocks carry no time; flows are still all found.
    let spb = write("pcapng-spb", &|out| {
        let opts = PcapngOptions {
            block: PcapngBlock::Spb,
            ..Default::default()
        };
        write_pcapng(&frames, &opts, out)
    });
    assert_eq!(flows(&run_file(&spb, "spb"), true), base, "pcapng SPB");

    // Other link types: what the link type can carry decodes to the same flows.
    let base_novlan = flows(&base_run, false);
    let link_types = [
        ("raw", LinkType::RawIp),
        ("ipv4", LinkType::Ipv4),
        ("ipv6", LinkType::Ipv6),
        ("sll", LinkType::LinuxSll),
        ("sll2", LinkType::LinuxSll2),
        (
            "null-le",
            LinkType::Null {
                af_inet6: 30,
                big_endian: false,
            },
        ),
        (
            "null-be",
            LinkType::Null {
                af_inet6: 24,
                big_endian: true,
            },
        ),
        ("loop", LinkType::Loop { af_inet6: 24 }),
    ];
    for (name, lt) in link_types {
        let converted = convert_frames(&frames, lt);
        assert!(!converted.is_empty(), "{name}: nothing converted");
        let opts = PcapOptions {
            linktype: lt.dlt(),
            ..Default::default()
        };
        let path = write(name, &|out| write_pcap(&converted, &opts, out));
        let run = run_file(&path, name);
        let got = flows(&run, false);
        assert!(
            got.len() * 5 >= base_novlan.len() / 4,
            "{name}: only {} flows",
            got.len()
        );
        for (key, pkts) in &got {
            assert_eq!(base_novlan.get(key), Some(pkts), "{name}: {key}");
        }
        assert_eq!(
            run.stats()["decoder"]["invalid"],
            0,
            "{name}: undecodable packets"
        );
    }
    std::fs::remove_dir_all(&d).unwrap();
}
