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
    let mut per_workers = Vec::new();
    for workers in [1, 2] {
        let out = dir.join(format!("out{workers}"));
        let run = replay_with_rules(&pcap, workers, &rules, None, &out);
        assert!(
            run.stderr.contains("7 rules loaded, 2 skipped"),
            "{}",
            run.stderr
        );
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
         alert tcp any any >> any any (msg:\"bad dir\"; sid:2;)\n\
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
    let run = replay_with_rules(&pcap, 2, &rules, Some(&config), &dir.join("out"));

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

/// Hand-built TCP conversations: Ethernet/IPv4/TCP frames with correct checksums.
mod tcp_conv {
    use std::net::Ipv4Addr;

    const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    pub const SYN: u8 = 0x02;
    pub const ACK: u8 = 0x10;
    pub const PSH_ACK: u8 = 0x18;
    pub const FIN_ACK: u8 = 0x11;

    fn sum16(data: &[u8], mut acc: u32) -> u32 {
        for c in data.chunks(2) {
            acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
        acc
    }

    fn fold(mut acc: u32) -> u16 {
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        !(acc as u16)
    }

    /// One conversation between 10.0.0.1:40000 and 10.0.0.2:`port`, tracking both sides'
    /// sequence numbers.
    pub struct Conv {
        port: u16,
        seq: [u32; 2],
        ts_ns: u64,
        pub frames: Vec<(u64, Vec<u8>)>,
    }

    impl Conv {
        /// A conversation after its three-way handshake.
        pub fn open(port: u16) -> Conv {
            let mut c = Conv {
                port,
                seq: [1000, 5000],
                ts_ns: 1_700_000_000_000_000_000,
                frames: Vec::new(),
            };
            c.send(true, SYN, b"");
            c.seq[0] += 1;
            c.send(false, SYN | ACK, b"");
            c.seq[1] += 1;
            c.send(true, ACK, b"");
            c
        }

        /// A segment from the client (`to_server`) or the server, acknowledging all the other
        /// side sent.
        pub fn send(&mut self, to_server: bool, flags: u8, payload: &[u8]) {
            let (me, peer) = if to_server { (0, 1) } else { (1, 0) };
            let (src, dst, sport, dport) = if to_server {
                (CLIENT, SERVER, 40000, self.port)
            } else {
                (SERVER, CLIENT, self.port, 40000)
            };
            let mut tcp = Vec::with_capacity(20 + payload.len());
            tcp.extend_from_slice(&sport.to_be_bytes());
            tcp.extend_from_slice(&dport.to_be_bytes());
            tcp.extend_from_slice(&self.seq[me].to_be_bytes());
            let ack = if flags & ACK != 0 { self.seq[peer] } else { 0 };
            tcp.extend_from_slice(&ack.to_be_bytes());
            tcp.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
            tcp.extend_from_slice(payload);
            let mut pseudo = Vec::new();
            pseudo.extend_from_slice(&src.octets());
            pseudo.extend_from_slice(&dst.octets());
            pseudo.extend_from_slice(&[0, 6]);
            pseudo.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
            let ck = fold(sum16(&tcp, sum16(&pseudo, 0)));
            tcp[16..18].copy_from_slice(&ck.to_be_bytes());
            let mut ip = vec![0x45, 0];
            ip.extend_from_slice(&((20 + tcp.len()) as u16).to_be_bytes());
            ip.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0]);
            ip.extend_from_slice(&src.octets());
            ip.extend_from_slice(&dst.octets());
            let ck = fold(sum16(&ip, 0));
            ip[10..12].copy_from_slice(&ck.to_be_bytes());
            let mut frame = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
            if !to_server {
                frame[..12].copy_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]);
            }
            frame.extend_from_slice(&ip);
            frame.extend_from_slice(&tcp);
            self.frames.push((self.ts_ns, frame));
            self.ts_ns += 1_000_000;
            self.seq[me] = self.seq[me].wrapping_add(payload.len() as u32);
        }

        /// Data from one side, then the other side's acknowledgement.
        pub fn data(&mut self, to_server: bool, payload: &[u8]) {
            self.send(to_server, PSH_ACK, payload);
            self.send(!to_server, ACK, b"");
        }

        /// FIN from both sides, each acknowledged.
        pub fn close(&mut self) {
            self.send(true, FIN_ACK, b"");
            self.seq[0] += 1;
            self.send(false, FIN_ACK, b"");
            self.seq[1] += 1;
            self.send(true, ACK, b"");
        }
    }
}

/// Replays `pcap` with a rules file (no prefilter cache) and `config`, if given; the run must
/// succeed and every event it writes validate against the EVE schema.
fn replay_with_rules(
    pcap: &Path,
    workers: usize,
    rules: &Path,
    config: Option<&Path>,
    out: &Path,
) -> common::Run {
    let mut args = vec!["-S", rules.to_str().unwrap(), "--no-rules-cache"];
    if let Some(config) = config {
        args.extend(["-c", config.to_str().unwrap()]);
    }
    let run = common::replay(&[pcap], workers, &args, out);
    common::assert_no_crash(&run.status, &run.stderr);
    assert!(run.status.success(), "{}", run.stderr);
    common::assert_schema_valid(&run.events);
    run
}

fn replay_frames(name: &str, frames: &[(u64, Vec<u8>)], rules: &str) -> common::Run {
    let dir = temp_dir(name);
    let pcap = dir.join("conv.pcap");
    vigil_pcapgen::write_pcap(
        frames,
        &vigil_pcapgen::PcapOptions::default(),
        std::fs::File::create(&pcap).unwrap(),
    )
    .unwrap();
    let rules_file = dir.join("test.rules");
    std::fs::write(&rules_file, rules).unwrap();
    let config = dir.join("vigil.toml");
    std::fs::write(&config, "[eve]\npayload_printable = true\n").unwrap();
    replay_with_rules(&pcap, 1, &rules_file, Some(&config), &dir.join("out"))
}

/// Payload rules on TCP see the reassembled stream: a content split over two segments
/// matches (once, on the segment completing it), `tcp-pkt` rules see single packets and
/// `tcp-stream` rules only the stream; bytes matched on a packet are not matched again
/// when later segments are inspected with them.
#[test]
fn payload_rules_match_content_across_segments() {
    let rules = r#"
alert tcp any any -> any any (msg:"split"; flow:established,to_server; content:"EVIL"; sid:1;)
alert tcp-pkt any any -> any any (msg:"split, packets only"; content:"EVIL"; sid:2;)
alert tcp-stream any any -> any any (msg:"split, stream only"; content:"EVIL"; sid:3;)
alert tcp any any -> any any (msg:"in one packet"; content:"head"; sid:4;)
alert tcp-stream any any -> any any (msg:"in one packet, stream only"; content:"head"; sid:5;)
alert tcp any any -> any any (msg:"relative across"; content:"head"; depth:4; content:"tail"; fast_pattern; distance:0; sid:6;)
alert tcp any any -> any any (msg:"depth counts from the stream start"; content:"EV"; depth:4; content:"IL"; distance:0; sid:7;)
alert tcp any any -> any any (msg:"dsize is about packets"; dsize:>2; content:"EVIL"; sid:8;)
"#;
    let mut c = tcp_conv::Conv::open(7777);
    c.data(true, b"head-of-EV");
    c.data(true, b"IL-and-the-tail");
    c.data(false, b"reply");
    c.data(true, b"more bytes, nothing to see");
    c.close();
    let run = replay_frames("split", &c.frames, rules);
    let by_sid = alerts_by_sid(&run.events);
    let expect: BTreeMap<u64, usize> = [(1, 1), (3, 1), (4, 1), (5, 1), (6, 1)]
        .into_iter()
        .collect();
    assert_eq!(by_sid, expect, "{}", run.stderr);
    for a in run.of_type("alert") {
        let sid = a["alert"]["signature_id"].as_u64().unwrap();
        // The first segment's packet, or the second's for what needs both.
        let pcap_cnt = a["pcap_cnt"].as_u64().unwrap();
        let (want_cnt, stream, printable) = match sid {
            4 => (4, 0, "head-of-EV"),
            5 => (4, 1, "head-of-EV"),
            _ => (6, 1, "head-of-EVIL-and-the-tail"),
        };
        assert_eq!(pcap_cnt, want_cnt, "{a}");
        assert_eq!(a["stream"].as_u64(), Some(stream), "{a}");
        assert_eq!(a["payload_printable"].as_str(), Some(printable), "{a}");
    }
}

/// Flowbits and flowints show on the alerts and the flow event as Suricata logs them: tags
/// named `traffic/id/` and `traffic/label/` under `traffic`, the rest under `metadata`, as the
/// flow holds them when the alert fires (the alerting packet's rules included).
#[test]
fn flow_variables_are_logged_on_alerts_and_the_flow() {
    let rules = r#"
alert tcp any any -> any any (msg:"tag"; flow:established,to_server; content:"hello"; flowbits:set,traffic/id/greeter; flowbits:set,traffic/label/chatty; flowbits:set,said.hello; flowbits:noalert; sid:1;)
alert tcp any any -> any any (msg:"count"; flow:established,to_server; content:"again"; flowbits:isset,said.hello; flowint:greetings,=,2; sid:2;)
"#;
    let mut c = tcp_conv::Conv::open(7000);
    c.data(true, b"hello there");
    c.data(false, b"hi");
    c.data(true, b"again");
    c.close();
    let run = replay_frames("flowvars", &c.frames, rules);
    let alerts = run.of_type("alert");
    assert_eq!(alerts.len(), 1, "{}", run.stderr);
    let alert = &alerts[0];
    assert_eq!(alert["alert"]["signature_id"], 2);
    assert_eq!(
        alert["traffic"],
        serde_json::json!({"id": ["greeter"], "label": ["chatty"]}),
        "{alert}"
    );
    assert_eq!(
        alert["metadata"],
        serde_json::json!({"flowbits": ["said.hello"], "flowints": {"greetings": 2}}),
        "{alert}"
    );
    let flows = run.of_type("flow");
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0]["traffic"], alert["traffic"], "{}", flows[0]);
    assert_eq!(flows[0]["metadata"], alert["metadata"], "{}", flows[0]);
}

/// An ET Open-style rule mixing payload content with HTTP buffers: its payload part matches
/// the request's raw stream (here across the segment boundary between head and body), its
/// buffers the transaction; the next transaction on the connection starts a new raw window.
#[test]
fn mixed_payload_and_http_rule_matches_the_request_stream() {
    let rules = r#"
alert http any any -> any any (msg:"ET-style command POST"; flow:established,to_server; content:"|0d 0a 0d 0a|command="; fast_pattern; http.method; content:"POST"; nocase; http.request_body; content:"command="; depth:8; classtype:trojan-activity; sid:10; rev:1;)
alert http any any -> any any (msg:"payload absent"; flow:established,to_server; content:"|0d 0a 0d 0a|nothing="; http.method; content:"POST"; sid:11;)
alert http any any -> any any (msg:"payload at the stream start only"; flow:established,to_server; content:"POST /"; depth:6; http.uri; content:".php"; sid:12;)
"#;
    let mut c = tcp_conv::Conv::open(80);
    let body = b"command=whoami&x=1";
    let head = format!(
        "POST /panel/gate.php HTTP/1.1\r\nHost: c2.example\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    // Head and body in separate segments: "\r\n\r\ncommand=" spans them.
    c.data(true, head.as_bytes());
    c.data(true, body);
    c.data(false, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let body2 = b"status=idle&x=2";
    let head2 = format!(
        "POST /panel/gate.php HTTP/1.1\r\nHost: c2.example\r\nContent-Length: {}\r\n\r\n",
        body2.len()
    );
    c.data(true, head2.as_bytes());
    c.data(true, body2);
    c.data(false, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    c.close();
    let run = replay_frames("mixed", &c.frames, rules);
    assert_eq!(run.of_type("http").len(), 2, "{}", run.stderr);
    let by_sid = alerts_by_sid(&run.events);
    let expect: BTreeMap<u64, usize> = [(10, 1), (12, 1)].into_iter().collect();
    assert_eq!(by_sid, expect, "{}", run.stderr);
    for a in run.of_type("alert") {
        assert_eq!(a["http"]["url"], "/panel/gate.php", "{a}");
        assert_eq!(a["tx_id"], 0, "{a}");
    }
}

/// A transaction rule without a direction whose buffers exist on both sides (`ssh.proto`,
/// `ssh.software`) inspects each side on its own, as Suricata: the client's banner alerts to
/// the server, the server's to the client, and a content both banners hold alerts once each way.
#[test]
fn ssh_buffers_without_direction_inspect_each_side() {
    let pcap = common::shared().join("corpus/suricata-verify/bug-4903/bug-4903-03/input.pcap");
    let dir = temp_dir("ssh-both-sides");
    let rules_file = dir.join("test.rules");
    std::fs::write(
        &rules_file,
        r#"
alert ssh any any -> any any (msg:"proto 2.0"; ssh.proto; content:"2.0"; sid:1;)
alert ssh any any -> any any (msg:"proto 1.99"; ssh.proto; content:"1.99"; sid:2;)
alert ssh any any -> any any (msg:"client software"; ssh.software; content:"Cisco_client"; sid:3;)
alert ssh any any -> any any (msg:"server software"; ssh.software; content:"Cisco_server"; sid:4;)
alert ssh any any -> any any (msg:"either software"; ssh.software; content:"Cisco_"; sid:5;)
alert ssh any any -> any any (msg:"server software to the server"; flow:to_server; ssh.software; content:"Cisco_server"; sid:6;)
"#,
    )
    .unwrap();
    let run = replay_with_rules(&pcap, 1, &rules_file, None, &dir.join("out"));
    let mut seen: Vec<(u64, u64)> = run
        .of_type("alert")
        .iter()
        .map(|a| {
            (
                a["alert"]["signature_id"].as_u64().unwrap(),
                a["src_port"].as_u64().unwrap(),
            )
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        [
            (1, 10002),
            (2, 22),
            (3, 10002),
            (4, 22),
            (5, 22),
            (5, 10002)
        ]
    );
    for a in run.of_type("alert") {
        assert_eq!(a["app_proto"], "ssh");
        assert_eq!(a["ssh"]["server"]["software_version"], "Cisco_server-1.24");
        assert_eq!(a["ssh"]["client"]["software_version"], "Cisco_client-1.25");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// As Suricata, a flow stops payload inspection from the packet after the one that ended the
/// handshake: the client's NEWKEYS packet (pcap_cnt 14) is still inspected, nothing after it.
/// Rules that inspect JA3 or HASSH turn those fingerprints on in `tls`/`ssh` events.
#[test]
fn handshake_end_packet_is_inspected_and_rules_turn_fingerprints_on() {
    let sv = common::shared().join("corpus/suricata-verify");
    let dir = temp_dir("ssh-newkeys");
    let rules_file = dir.join("test.rules");
    std::fs::write(
        &rules_file,
        r#"
alert ssh any any -> any 22 (msg:"newkeys"; content:"|15 00 00 00 00 00 00 00 00 00 00|"; sid:1;)
alert ssh any any -> any any (msg:"encrypted bytes"; content:"|93 8e ef e6|"; sid:2;)
alert ssh any any -> any any (msg:"hassh"; ssh.hassh; content:"0"; sid:3;)
"#,
    )
    .unwrap();
    let run = replay_with_rules(
        &sv.join("ssh-newkeys/input.pcap"),
        1,
        &rules_file,
        None,
        &dir.join("out"),
    );
    let alerts = run.of_type("alert");
    let got: Vec<(u64, u64)> = alerts
        .iter()
        .map(|a| {
            (
                a["alert"]["signature_id"].as_u64().unwrap(),
                a["pcap_cnt"].as_u64().unwrap_or(0),
            )
        })
        .filter(|&(sid, _)| sid != 3)
        .collect();
    assert_eq!(got, [(1, 14)]);
    let ssh = run.of_type("ssh");
    assert_eq!(ssh.len(), 1);
    assert_eq!(
        ssh[0]["ssh"]["client"]["hassh"]["hash"]
            .as_str()
            .map(str::len),
        Some(32),
        "{:?}",
        ssh[0]
    );

    // JA3 is logged only when a rule inspects it (Suricata's `ja3-fingerprints: auto`).
    let pcap = sv.join("tls-duplicate-hello/input.pcap");
    std::fs::write(
        &rules_file,
        "alert tls any any -> any any (msg:\"ja3\"; ja3.string; content:\"771,\"; sid:4;)\n",
    )
    .unwrap();
    let run = replay_with_rules(&pcap, 1, &rules_file, None, &dir.join("out2"));
    let tls = run.of_type("tls");
    assert_eq!(tls.len(), 1);
    assert!(tls[0]["tls"]["ja3"]["string"]
        .as_str()
        .is_some_and(|s| s.starts_with("771,4866-4867-4865-4868-")));
    std::fs::write(
        &rules_file,
        "alert tls any any -> any any (msg:\"sni\"; tls.sni; content:\"localhost\"; sid:5;)\n",
    )
    .unwrap();
    let run = replay_with_rules(&pcap, 1, &rules_file, None, &dir.join("out3"));
    let tls = run.of_type("tls");
    assert!(tls[0]["tls"].get("ja3").is_none(), "{:?}", tls[0]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A `=>` rule holds when each buffer matches on its own side of one TLS handshake (JA3S from
/// the server, JA3 from the client) and alerts once, to the client; `tls.subject:"…"` (the
/// legacy keyword) is a substring of the server certificate's subject, `!` negates it.
#[test]
fn transactional_and_legacy_certificate_rules() {
    let pcap = common::shared().join("corpus/suricata-verify/detect-bidir-ja3/input.pcap");
    let dir = temp_dir("tls-bidir");
    let rules_file = dir.join("test.rules");
    std::fs::write(
        &rules_file,
        r#"
alert tls any any => any any (msg:"both"; ja3s.hash; content:"5d79edf64e03689ff559a54e9d9487bc"; ja3.string; content:"771,49196-49200"; sid:1;)
alert tls any any => any any (msg:"server differs"; ja3s.hash; content:"6d79edf64e03689ff559a54e9d9487bc"; ja3.string; content:"771,49196-49200"; sid:2;)
alert tls any any => any any (msg:"client differs"; ja3s.hash; content:"5d79edf64e03689ff559a54e9d9487bc"; ja3.string; content:"9999999999"; sid:3;)
"#,
    )
    .unwrap();
    let run = replay_with_rules(&pcap, 1, &rules_file, None, &dir.join("out"));
    let alerts = run.of_type("alert");
    assert_eq!(alerts_by_sid(&run.events), BTreeMap::from([(1, 1)]));
    assert_eq!(alerts[0]["direction"], "to_client");
    assert_eq!(alerts[0]["dest_port"], alerts[0]["flow"]["src_port"]);

    let pcap = common::shared().join("corpus/suricata-verify/tls/tls-subject/tls.pcap");
    std::fs::write(
        &rules_file,
        r#"
alert tls any any -> any any (msg:"subject"; tls.subject:"C=FR, ST=IDF, L=Paris, O=Stamus, CN=SELKS"; sid:11;)
alert tls any any -> any any (msg:"part of the subject"; tls.subject:"O=Stamus"; sid:12;)
alert tls any any -> any any (msg:"not that subject"; tls.subject:!"CN=other"; sid:13;)
alert tls any any -> any any (msg:"negated match"; tls.subject:!"CN=SELKS"; sid:14;)
alert tls any any -> any any (msg:"case matters"; tls.subject:"cn=selks"; sid:15;)
"#,
    )
    .unwrap();
    let run = replay_with_rules(&pcap, 1, &rules_file, None, &dir.join("out2"));
    assert_eq!(
        alerts_by_sid(&run.events),
        BTreeMap::from([(11, 4), (12, 4), (13, 4)])
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `tls.version` compares the inspected side's hello: the server's choice to the client, the
/// client's first supported_versions entry to the server. TLS 1.3 drafts count as 1.3 unless
/// the rule names the exact wire value, as in Suricata.
#[test]
fn tls_version_matches_each_sides_hello() {
    let pcap = common::shared().join("corpus/suricata-verify/tls/tls13-draft18/tls13_draft18.pcap");
    let dir = temp_dir("tls-version");
    let rules_file = dir.join("test.rules");
    std::fs::write(
        &rules_file,
        r#"
alert tls any any -> any any (msg:"server 1.3"; flow:to_client; tls.version:1.3; sid:1;)
alert tls any any -> any any (msg:"server draft 18 exactly"; flow:to_client; tls.version:0x7f12; sid:2;)
alert tls any any -> any any (msg:"server 1.2"; flow:to_client; tls.version:1.2; sid:3;)
alert tls any any -> any any (msg:"client 1.3"; flow:to_server; tls.version:1.3; sid:4;)
alert tls any any -> any any (msg:"client 1.3 with its JA3"; flow:to_server; tls.version:1.3; ja3.hash; content:"23d254f72096d25c350e4a4a792f4948"; sid:5;)
alert tls any any -> any any (msg:"bad value"; tls.version:2.0; sid:6;)
"#,
    )
    .unwrap();
    let run = replay_with_rules(&pcap, 1, &rules_file, None, &dir.join("out"));
    let by_sid = alerts_by_sid(&run.events);
    assert_eq!(
        by_sid,
        BTreeMap::from([(1, 1), (2, 1), (4, 1), (5, 1)]),
        "{:?}",
        run.of_type("tls")
    );
    let check = common::vigil(["rules", "check", rules_file.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&check.stdout).into_owned()
        + &String::from_utf8_lossy(&check.stderr);
    assert!(text.contains("5 of 6 rules loaded"), "{text}");
    assert!(
        text.contains("tls.version: expected 1.0, 1.1, 1.2, 1.3 or 0xNNNN"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Header sticky buffers on real packets: an ICMPv4 router advertisement (its address entry is
/// header, not payload), IPv6 with three extension headers before UDP, and a generated TCP
/// conversation; content, offset/depth, byte_test and bsize work on them like on any buffer.
#[test]
fn header_buffers_match_packet_headers() {
    let dir = temp_dir("header-buffers");
    let sv = common::shared().join("corpus/suricata-verify");
    let mut c = tcp_conv::Conv::open(7777);
    c.data(true, b"hello");
    c.close();
    let conv = dir.join("conv.pcap");
    vigil_pcapgen::write_pcap(
        &c.frames,
        &vigil_pcapgen::PcapOptions::default(),
        std::fs::File::create(&conv).unwrap(),
    )
    .unwrap();
    let rules = dir.join("test.rules");
    std::fs::write(
        &rules,
        r#"
alert icmp any any -> any any (msg:"advertised address"; icmpv4.hdr; content:"|0a 0e 50 54 42|"; bsize:16; sid:1;)
alert ip any any -> any any (msg:"ipv4 carrying icmp"; ipv4.hdr; content:"|01|"; offset:9; depth:1; bsize:20; sid:2;)
alert icmp any any -> any any (msg:"header is not payload"; content:"|0a 0e 50 54 42|"; sid:3;)
alert ip any any -> any any (msg:"routing header last"; ipv6.hdr; content:"|11 00 00 00 00 00 00 00|"; offset:40; endswith; bsize:64; sid:4;)
alert udp any any -> any any (msg:"dns to http"; udp.hdr; content:"|00 35 00 50 00 08|"; startswith; bsize:8; sid:5;)
alert ip any any -> any any (msg:"no tcp header in udp"; tcp.hdr; content:"|00 35 00 50|"; sid:6;)
alert tcp any any -> any 7777 (msg:"syn"; tcp.hdr; content:"|1e 61|"; offset:2; depth:2; byte_test:1,=,0x02,13; bsize:20; sid:7;)
alert tcp any any -> any any (msg:"header and payload"; flow:established,to_server; tcp.hdr; content:"|ff ff|"; offset:14; depth:2; pkt_data; content:"hello"; sid:8;)
"#,
    )
    .unwrap();
    let run = common::replay(
        &[
            sv.join("icmp-hdr-01/input.pcap").as_path(),
            sv.join("ipv6-hdr-keyword-02/input.pcap").as_path(),
            conv.as_path(),
        ],
        1,
        &["-S", rules.to_str().unwrap(), "--no-rules-cache"],
        &dir.join("out"),
    );
    common::assert_no_crash(&run.status, &run.stderr);
    assert!(run.status.success(), "{}", run.stderr);
    common::assert_schema_valid(&run.events);
    assert_eq!(
        alerts_by_sid(&run.events),
        BTreeMap::from([(1, 1), (2, 1), (4, 1), (5, 1), (7, 1), (8, 1)]),
        "{}",
        run.stderr
    );
    // Alerts on ICMP packets carry the packet's type and code, as Suricata's do.
    let ra = run
        .of_type("alert")
        .into_iter()
        .find(|a| a["alert"]["signature_id"] == 1)
        .unwrap();
    assert_eq!(
        (ra["icmp_type"].as_u64(), ra["icmp_code"].as_u64()),
        (Some(9), Some(0))
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `app-layer-event` rules alert on the transaction whose parsing raised the event, though the
/// event came a packet before the transaction's record (request headers, then the response),
/// on the side that raised it, and not on later transactions of the connection.
#[test]
fn app_layer_event_rules_alert_on_the_transaction_that_raised_the_event() {
    let rules = r#"
alert http any any -> any any (msg:"missing colon"; flow:established,to_server; app-layer-event:http.request_field_missing_colon; sid:1;)
alert http any any -> any any (msg:"missing colon, wrong side"; flow:to_client; app-layer-event:http.request_field_missing_colon; sid:2;)
alert http any any -> any any (msg:"no host"; app-layer-event:http.missing_host_header; sid:3;)
"#;
    let mut c = tcp_conv::Conv::open(80);
    c.data(true, b"GET /a HTTP/1.1\r\nHost: x\r\nBrokenHeader\r\n\r\n");
    c.data(false, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    c.data(true, b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    c.data(false, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    c.close();
    let run = replay_frames("app-layer-event", &c.frames, rules);
    let anomalies: Vec<_> = run
        .of_type("anomaly")
        .into_iter()
        .filter_map(|a| a["anomaly"]["event"].as_str().map(str::to_string))
        .collect();
    assert_eq!(anomalies, ["REQUEST_FIELD_MISSING_COLON"], "{}", run.stderr);
    let alerts = run.of_type("alert");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["alert"]["signature_id"], 1);
    assert_eq!(alerts[0]["http"]["url"], "/a", "{}", alerts[0]);
}

/// `stream-event` rules alert on the packet whose reassembly raised the event: here the one
/// acknowledging bytes that never arrived.
#[test]
fn stream_event_rules_alert_on_the_packet_that_raised_the_event() {
    let rules = r#"
alert tcp any any -> any any (msg:"gap"; stream-event:reassembly_seq_gap; sid:1;)
alert tcp any any -> any any (msg:"overlap"; stream-event:reassembly_overlap_different_data; sid:2;)
"#;
    let mut c = tcp_conv::Conv::open(7100);
    c.data(true, b"first piece");
    let kept = c.frames.len();
    c.data(true, b"LOST");
    c.frames.truncate(kept);
    c.data(true, b"after the hole");
    c.close();
    let run = replay_frames("stream-event", &c.frames, rules);
    let gaps: Vec<_> = run
        .of_type("anomaly")
        .into_iter()
        .filter(|a| a["anomaly"]["event"] == "stream.reassembly_seq_gap")
        .collect();
    assert!(!gaps.is_empty(), "{}", run.stderr);
    let alerts = run.of_type("alert");
    assert_eq!(
        alerts_by_sid(&run.events),
        [(1, gaps.len())].into_iter().collect()
    );
    assert_eq!(alerts[0]["pcap_cnt"], gaps[0]["pcap_cnt"], "{}", alerts[0]);
}
