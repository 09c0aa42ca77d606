mod common;

use std::collections::BTreeMap;

use common::{compare, read_pcap, Decoder};
use vigil_pcapgen::{generate, generate_frames, GenConfig};

fn pcap(cfg: &GenConfig) -> (Vec<u8>, vigil_pcapgen::GenSummary) {
    let mut buf = Vec::new();
    let s = generate(cfg, &mut buf).unwrap();
    (buf, s)
}

#[test]
fn deterministic_per_seed() {
    let cfg = GenConfig::new(42, 1 << 20);
    let (a, sa) = pcap(&cfg);
    let (b, sb) = pcap(&cfg);
    assert!(a == b, "same seed must give identical bytes");
    assert_eq!(sa, sb);
    let (c, _) = pcap(&GenConfig::new(43, 1 << 20));
    assert!(a != c, "different seeds must differ");
    assert_eq!(sa.bytes_written, a.len() as u64);
}

#[test]
fn size_roughly_as_asked() {
    for (seed, size) in [(1u64, 256u64 << 10), (2, 2 << 20), (3, 5 << 20)] {
        let (buf, s) = pcap(&GenConfig::new(seed, size));
        let ratio = buf.len() as f64 / size as f64;
        assert!(
            (1.0..1.25).contains(&ratio),
            "size {size}: got {}",
            buf.len()
        );
        assert!(s.flows.len() > 10);
    }
}

#[test]
fn pcap_records_match_summary_and_time_order() {
    let cfg = GenConfig {
        nanos: true,
        ..GenConfig::new(5, 1 << 20)
    };
    let (buf, s) = pcap(&cfg);
    let (nanos, be, snap, lt, recs) = read_pcap(&buf);
    assert!(nanos && !be);
    assert_eq!((snap, lt), (65535, 1));
    assert_eq!(recs.len() as u64, s.packets);
    let base = cfg.base_ts_secs * 1_000_000_000;
    assert!(recs[0].0 >= base && recs[0].0 < base + 1_000_000_000);
    assert!(recs.windows(2).all(|w| w[0].0 <= w[1].0), "time order");
    // Flows interleave: many are open at once.
    let mid = recs[recs.len() / 2].0;
    let open = s
        .flows
        .iter()
        .filter(|f| f.first_ts_ns <= mid && f.last_ts_ns >= mid)
        .count();
    assert!(open >= 10, "only {open} concurrent flows");
    // Micro-second files carry whole microseconds in the truth too.
    let (_, s2) = generate_frames(&GenConfig::new(5, 256 << 10));
    assert!(s2.flows.iter().all(|f| f.first_ts_ns % 1000 == 0));
}

#[test]
fn every_layer_decodes_with_valid_checksums_and_matches_truth() {
    for seed in [7u64, 8] {
        let (frames, s) = generate_frames(&GenConfig::new(seed, 2 << 20));
        let mut d = Decoder::default();
        for (ts, f) in &frames {
            d.frame(*ts, f)
                .unwrap_or_else(|e| panic!("seed {seed} frame at {ts}: {e}"));
        }
        assert_eq!(d.incomplete_fragments(), 0);
        let errs = compare(&s.flows, &d.out);
        assert!(
            errs.is_empty(),
            "{} mismatches, first: {:#?}",
            errs.len(),
            &errs[..errs.len().min(5)]
        );
        let total: u64 = frames.iter().map(|f| f.1.len() as u64).sum();
        let truth: u64 = s
            .flows
            .iter()
            .map(|f| f.bytes_toserver + f.bytes_toclient)
            .sum();
        assert_eq!(total, truth);
    }
}

#[test]
fn all_encapsulations_and_fragments_present_in_2mb() {
    let (_, s) = generate_frames(&GenConfig::new(11, 2 << 20));
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    let mut bump = |k: &str| *kinds.entry(k.to_string()).or_default() += 1;
    for f in &s.flows {
        match (&f.tunnel, f.vlans.len(), f.mpls.is_empty()) {
            (Some(t), _, _) => {
                let inner6 = f.client.is_ipv6();
                let k = match (t.kind, inner6, t.id != 0) {
                    ("GRE", true, _) => "GRE-v6",
                    ("GRE", false, true) => "GRE-key",
                    ("IPIP", true, _) => "6in4",
                    (k, _, _) => k,
                };
                bump(k);
            }
            (None, 1, _) => bump("VLAN"),
            (None, 2, _) => bump("QINQ"),
            (None, _, false) => bump("MPLS"),
            _ => {}
        }
        if f.fragmented > 0 {
            bump(if f.client.is_ipv6() { "FRAG6" } else { "FRAG4" });
            if f.tunnel.is_none() {
                bump("FRAG-plain");
            }
        }
        if f.proto == 6 && f.client.is_ipv6() && f.tunnel.is_none() {
            bump("TCP6");
        }
        bump(f.app);
    }
    for k in [
        "VLAN",
        "QINQ",
        "MPLS",
        "GRE",
        "GRE-key",
        "GRE-v6",
        "ERSPAN",
        "VXLAN",
        "GENEVE",
        "IPIP",
        "6in4",
        "TEREDO",
        "FRAG4",
        "FRAG6",
        "FRAG-plain",
        "TCP6",
        "http",
        "tls",
        "dns",
        "dns-tcp",
        "ntp",
        "syslog",
        "udp",
        "icmp-echo",
    ] {
        assert!(
            kinds.get(k).copied().unwrap_or(0) >= 1,
            "{k} missing: {kinds:?}"
        );
    }
    for k in ["VLAN", "GRE", "VXLAN", "GENEVE", "ERSPAN", "TEREDO"] {
        assert!(kinds[k] >= 2, "{k} only once: {kinds:?}");
    }
}

#[test]
fn fragment_faults_leave_gaps_on_request() {
    let cfg = GenConfig {
        frag_drop_prob: 1.0,
        ..GenConfig::new(3, 1 << 20)
    };
    let (frames, s) = generate_frames(&cfg);
    let mut d = Decoder::default();
    for (ts, f) in &frames {
        d.frame(*ts, f).unwrap();
    }
    let fragmented: u32 = s.flows.iter().map(|f| f.fragmented).sum();
    assert!(fragmented > 0);
    assert!(d.incomplete_fragments() > 0);
}

#[test]
fn features_can_be_switched_off() {
    let cfg = GenConfig {
        encaps: vigil_pcapgen::Encaps::none(),
        ipv6_share: 0.0,
        fragment_share: 0.0,
        mix: vigil_pcapgen::Mix {
            http: 1,
            tls: 0,
            dns: 0,
            other_udp: 0,
            icmp: 0,
        },
        ..GenConfig::new(9, 512 << 10)
    };
    let (_, s) = generate_frames(&cfg);
    assert!(s.flows.iter().all(|f| f.app == "http"
        && f.tunnel.is_none()
        && f.vlans.is_empty()
        && f.mpls.is_empty()
        && f.client.is_ipv4()
        && f.fragmented == 0));
}

#[test]
fn etherparse_agrees_on_outer_checksums() {
    use etherparse::{NetHeaders, PacketHeaders, TransportHeader};
    let (frames, _) = generate_frames(&GenConfig::new(21, 1 << 20));
    let mut checked = 0;
    for (_, f) in &frames {
        let Ok(h) = PacketHeaders::from_ethernet_slice(f) else {
            continue;
        };
        let payload = h.payload.slice();
        match (&h.net, &h.transport) {
            (Some(NetHeaders::Ipv4(ip, _)), Some(t)) if !ip.is_fragmenting_payload() => {
                assert_eq!(ip.header_checksum, ip.calc_header_checksum());
                match t {
                    TransportHeader::Tcp(tcp) => {
                        assert_eq!(tcp.checksum, tcp.calc_checksum_ipv4(ip, payload).unwrap());
                        checked += 1;
                    }
                    TransportHeader::Udp(udp) => {
                        assert_eq!(udp.checksum, udp.calc_checksum_ipv4(ip, payload).unwrap());
                        checked += 1;
                    }
                    _ => {}
                }
            }
            (Some(NetHeaders::Ipv6(ip, ext)), Some(t)) if ext.is_empty() => match t {
                TransportHeader::Tcp(tcp) => {
                    assert_eq!(tcp.checksum, tcp.calc_checksum_ipv6(ip, payload).unwrap());
                    checked += 1;
                }
                TransportHeader::Udp(udp) => {
                    assert_eq!(udp.checksum, udp.calc_checksum_ipv6(ip, payload).unwrap());
                    checked += 1;
                }
                _ => {}
            },
            _ => {}
        }
    }
    assert!(checked > 500, "only {checked} checked");
}

#[test]
fn tls_client_hello_has_sni_alpn_versions_keyshare() {
    let (frames, s) = generate_frames(&GenConfig::new(4, 512 << 10));
    assert!(s.flows.iter().any(|f| f.app == "tls"));
    // Find a plain Ethernet/IPv4 ClientHello and walk its extensions.
    let mut found = false;
    for (_, f) in &frames {
        if f.len() < 54 || f[12..14] != [8, 0] || f[23] != 6 {
            continue;
        }
        let ihl = (f[14] & 15) as usize * 4;
        let tcp = &f[14 + ihl..];
        let doff = (tcp[12] >> 4) as usize * 4;
        let p = &tcp[doff..];
        if p.len() < 6 || p[0] != 22 || p[5] != 1 {
            continue;
        }
        let mut i = 5 + 4 + 2 + 32;
        i += 1 + p[i] as usize;
        i += 2 + u16::from_be_bytes([p[i], p[i + 1]]) as usize;
        i += 1 + p[i] as usize;
        let end = i + 2 + u16::from_be_bytes([p[i], p[i + 1]]) as usize;
        i += 2;
        let mut exts = Vec::new();
        while i < end {
            let t = u16::from_be_bytes([p[i], p[i + 1]]);
            let l = u16::from_be_bytes([p[i + 2], p[i + 3]]) as usize;
            if t == 0 {
                let name = std::str::from_utf8(&p[i + 9..i + 4 + l]).unwrap();
                assert!(name.contains('.'), "{name}");
            }
            exts.push(t);
            i += 4 + l;
        }
        assert_eq!(i, end);
        for t in [0u16, 10, 13, 16, 43, 51] {
            assert!(exts.contains(&t), "extension {t} missing");
        }
        found = true;
        break;
    }
    assert!(found);
}
