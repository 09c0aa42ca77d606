use super::*;
use crate::app::{AppOutput, AppParser, AppRecord, Direction};
use crate::testutil::{pcap_payloads, Rng};
use serde_json::{json, Value};

/// Everything one run produced: EVE objects and events (name, direction, tx) in order.
#[derive(Debug, Default, PartialEq)]
struct Run {
    eve: Vec<Value>,
    msgs: Vec<DnsMessage>,
    events: Vec<(&'static str, Direction, Option<u64>)>,
}

fn drain(out: &mut AppOutput, run: &mut Run) {
    for r in out.records.drain(..) {
        let AppRecord::Dns(m) = r else {
            panic!("not dns")
        };
        run.eve.push(serde_json::to_value(&*m).unwrap());
        run.msgs.push(*m);
    }
    for e in out.events.drain(..) {
        run.events.push((e.event, e.direction, e.tx_id));
    }
}

/// Replays a corpus capture: one parser per flow (the side on port 53/1053 is the server),
/// each payload split into pieces of `split` bytes (0 = whole).
fn replay(case: &str, config: DnsConfig, split: usize) -> Run {
    let pkts = pcap_payloads(&format!("suricata-verify/{case}"));
    let mut flows: Vec<((std::net::SocketAddr, std::net::SocketAddr), DnsParser)> = Vec::new();
    let mut run = Run::default();
    let mut out = AppOutput::default();
    for pk in &pkts {
        let to_server = matches!(pk.dst.port(), 53 | 1053);
        let key = if to_server {
            (pk.src, pk.dst)
        } else {
            (pk.dst, pk.src)
        };
        let dir = if to_server {
            Direction::ToServer
        } else {
            Direction::ToClient
        };
        let idx = match flows.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                let p = if pk.proto == 6 {
                    DnsParser::new_tcp(config.clone())
                } else {
                    DnsParser::new_udp(config.clone())
                };
                flows.push((key, p));
                flows.len() - 1
            }
        };
        let parser = &mut flows[idx].1;
        if split == 0 || pk.proto != 6 {
            parser.parse(dir, &pk.payload, pk.ts_ns, &mut out);
        } else {
            for piece in pk.payload.chunks(split) {
                parser.parse(dir, piece, pk.ts_ns, &mut out);
            }
        }
        drain(&mut out, &mut run);
    }
    run
}

fn of_type<'a>(run: &'a Run, t: &str) -> Vec<&'a Value> {
    run.eve.iter().filter(|e| e["type"] == t).collect()
}

#[test]
fn bug_856_cname_chain_soa_authority() {
    let run = replay(
        "dns/bug-856/suricatafpdnsdecoder.pcap",
        DnsConfig::default(),
        0,
    );
    assert_eq!(run.eve.len(), 4);
    let req = of_type(&run, "request");
    assert_eq!(req[0]["id"], 59165);
    assert_eq!(req[0]["tx_id"], 0);
    assert_eq!(
        req[0]["queries"],
        json!([{"rrname": "static.programme-tv.net", "rrtype": "A"}])
    );
    assert_eq!(req[1]["id"], 25783);
    assert_eq!(req[1]["tx_id"], 1);
    assert_eq!(req[1]["queries"][0]["rrtype"], "AAAA");
    let resp = of_type(&run, "response");
    let r = resp[0];
    assert_eq!(r["version"], 3);
    assert_eq!(r["flags"], "8180");
    assert_eq!(
        (r["qr"].clone(), r["rd"].clone(), r["ra"].clone()),
        (json!(true), json!(true), json!(true))
    );
    assert!(r.get("aa").is_none() && r.get("tc").is_none() && r.get("z").is_none());
    assert_eq!(r["rcode"], "NOERROR");
    assert_eq!(
        r["answers"][0],
        json!({"rrname": "static.programme-tv.net", "rrtype": "CNAME", "ttl": 630,
               "rdata": "programme-tv.net.edgesuite.net"})
    );
    assert_eq!(r["answers"][1]["rdata"], "a1859.g.akamai.net");
    assert_eq!(r["answers"][1]["ttl"], 20432);
    assert_eq!(r["answers"][2]["rdata"], "90.84.55.48");
    assert_eq!(r["answers"][3]["rdata"], "90.84.55.64");
    assert_eq!(r["answers"][3]["ttl"], 14);
    assert_eq!(r["grouped"]["A"], json!(["90.84.55.48", "90.84.55.64"]));
    assert_eq!(
        r["grouped"]["CNAME"],
        json!(["programme-tv.net.edgesuite.net", "a1859.g.akamai.net"])
    );
    let r = resp[1];
    assert_eq!(r["id"], 25783);
    assert_eq!(
        r["authorities"][0],
        json!({"rrname": "g.akamai.net", "rrtype": "SOA", "ttl": 1000,
               "soa": {"mname": "n0g.akamai.net", "rname": "hostmaster.akamai.com",
                       "serial": 1372967523u32, "refresh": 1000, "retry": 1000, "expire": 1000,
                       "minimum": 1800}})
    );
    assert!(r["grouped"].get("A").is_none());
    // Suricata 8 numbering: every message is a transaction; responses pair by DNS id.
    assert_eq!(run.msgs[2].tx_id, 2);
    assert_eq!(run.msgs[2].request_tx_id, Some(0));
    assert_eq!(run.msgs[3].request_tx_id, Some(1));
    assert!(run.events.is_empty());
    assert_eq!(
        run.msgs[0].queries_rrnames().collect::<Vec<_>>(),
        vec![&b"static.programme-tv.net"[..]]
    );
}

#[test]
fn dig_response_flags_81a0() {
    let run = replay("dns/dns-udp-eve-dig/input.pcap", DnsConfig::default(), 0);
    assert_eq!(run.eve.len(), 2);
    let r = of_type(&run, "response")[0];
    assert_eq!(r["flags"], "81a0");
    assert_eq!(r["id"], 36146);
    assert_eq!(r["answers"][0]["rdata"], "suricata-ids.org");
    assert_eq!(r["answers"][0]["ttl"], 3544);
    assert_eq!(r["answers"][2]["rdata"], "192.0.78.25");
    assert_eq!(r["grouped"]["CNAME"], json!(["suricata-ids.org"]));
    assert_eq!(
        of_type(&run, "request")[0]["queries"][0]["rrname"],
        "www.suricata-ids.org"
    );
}

#[test]
fn nxdomain_with_soa() {
    let run = replay(
        "dns-udp-nxdomain-soa/dns-udp-nxdomain-soa.pcap",
        DnsConfig::default(),
        0,
    );
    let nx: Vec<_> = run
        .eve
        .iter()
        .filter(|e| e["rcode"] == "NXDOMAIN")
        .collect();
    assert_eq!(nx.len(), 1);
    assert!(run.msgs[1].is_nxdomain());
    assert_eq!(
        nx[0]["authorities"][0]["soa"]["mname"],
        "ns-110.awsdns-13.com"
    );
    assert_eq!(nx[0]["authorities"][0]["soa"]["minimum"], 86400);
    assert!(nx[0].get("answers").is_none());
    // The request's EDNS OPT record (with a cookie) is logged; the response has none.
    assert_eq!(run.eve[0]["additionals"][0]["opt"][0]["code"], 10);
}

#[test]
fn sshfp_and_tc() {
    let run = replay("dns/dns-sshfp/dns-sshfp.pcap", DnsConfig::default(), 0);
    let r = of_type(&run, "response")[0];
    assert_eq!(r["answers"][0]["rrname"], "anoncvs.netbsd.org");
    assert_eq!(r["answers"][0]["rrtype"], "SSHFP");
    assert_eq!(r["answers"][0]["sshfp"]["algo"], 1);
    assert_eq!(
        r["answers"][0]["sshfp"]["fingerprint"],
        "19:8c:34:a9:2f:c0:b2:ab:1d:a5:2b:68:8c:2f:19:1d:2d:96:0c:09"
    );
    assert_eq!(r["tc"], true);
    assert!(run.msgs[1].is_truncated());
}

#[test]
fn mx_and_types_filter() {
    let cfg = DnsConfig {
        types: RrTypeFilter::only(&[rrtype_from_name("mx").unwrap()]),
        ..DnsConfig::default()
    };
    let run = replay(
        "dns/dns-udp-eve-log-mx-only/dns-udp-google.com-a-aaaa-mx.pcap",
        cfg,
        0,
    );
    assert_eq!(run.msgs.len(), 6);
    let logged: Vec<_> = run
        .msgs
        .iter()
        .zip(&run.eve)
        .filter(|(m, _)| m.log)
        .map(|(_, e)| e)
        .collect();
    assert_eq!(logged.len(), 2);
    assert_eq!(logged[0]["type"], "request");
    assert_eq!(logged[0]["queries"][0]["rrtype"], "MX");
    assert_eq!(logged[1]["answers"][0]["rrtype"], "MX");
    assert_eq!(logged[1]["answers"][0]["rdata"], "aspmx.l.google.com");
    assert_eq!(logged[1]["answers"].as_array().unwrap().len(), 5);
    // AAAA formatting: full zero-padded groups, as Suricata prints them.
    let aaaa = run
        .eve
        .iter()
        .find(|e| e["answers"][0]["rrtype"] == "AAAA")
        .unwrap();
    assert_eq!(
        aaaa["answers"][0]["rdata"],
        "2607:f8b0:400f:0801:0000:0000:0000:200e"
    );
}

#[test]
fn answer_only_config() {
    let cfg = DnsConfig {
        log_requests: false,
        ..DnsConfig::default()
    };
    let run = replay(
        "dns/dns-udp-eve-log-answer-only/dns-udp-google.com-a-aaaa-mx.pcap",
        cfg,
        0,
    );
    let logged: Vec<_> = run.msgs.iter().filter(|m| m.log).collect();
    assert_eq!(logged.len(), 3);
    assert!(logged.iter().all(|m| m.is_response));
}

#[test]
fn srv_answers() {
    let run = replay(
        "dns/dns-udp-eve-log-srv/input.pcap",
        DnsConfig::default(),
        0,
    );
    let r = of_type(&run, "response")[0];
    assert_eq!(r["queries"][0]["rrname"], "_sip._udp.sip.voice.google.com");
    assert_eq!(r["queries"][0]["rrtype"], "SRV");
    assert_eq!(
        r["answers"][0]["srv"],
        json!({"priority": 20, "weight": 1, "port": 5060, "name": "sip-anycast-2.voice.google.com"})
    );
    assert_eq!(r["answers"][1]["srv"]["priority"], 10);
    assert_eq!(
        r["answers"][1]["srv"]["name"],
        "sip-anycast-1.voice.google.com"
    );
}

#[test]
fn tcp_multirequest_buffer_and_split_invariance() {
    let case = "dns/dns-tcp-multirequest-buffer/dns-tcp-multirequest-buffer.pcap";
    let whole = replay(case, DnsConfig::default(), 0);
    assert_eq!(of_type(&whole, "request").len(), 20);
    assert_eq!(of_type(&whole, "response").len(), 20);
    for (i, q) in of_type(&whole, "request").iter().enumerate() {
        assert_eq!(q["queries"][0]["rrname"], format!("{i}.google.com"));
        assert_eq!(q["tx_id"], i);
    }
    assert!(of_type(&whole, "response")
        .iter()
        .all(|r| r["rcode"] == "NXDOMAIN"));
    assert_eq!(whole.msgs[20].request_tx_id, Some(0));
    for split in [1, 2, 3, 7, 100] {
        assert_eq!(
            replay(case, DnsConfig::default(), split),
            whole,
            "split {split}"
        );
    }
}

#[test]
fn tcp_www_google_com() {
    let run = replay(
        "dns/dns-tcp-www-google-com/dns.pcap",
        DnsConfig::default(),
        0,
    );
    assert_eq!(of_type(&run, "request").len(), 1);
    let r = of_type(&run, "response")[0];
    assert_eq!(r["answers"].as_array().unwrap().len(), 12);
    assert_eq!(
        replay(
            "dns/dns-tcp-www-google-com/dns.pcap",
            DnsConfig::default(),
            1
        ),
        run
    );
}

#[test]
fn truncated_rname() {
    let run = replay("dns/dns-truncated-rname/poc2.pcap", DnsConfig::default(), 0);
    assert_eq!(run.eve.len(), 1);
    let q = &run.eve[0]["queries"][0];
    assert_eq!(q["rrname"].as_str().unwrap().len(), 1025);
    assert_eq!(q["rrname_truncated"], true);
    assert!(run
        .events
        .contains(&("NAME_TOO_LONG", Direction::ToServer, Some(0))));
    assert_eq!(
        replay("dns/dns-truncated-rname/poc2.pcap", DnsConfig::default(), 1),
        run
    );
}

#[test]
fn corrupt_additionals_still_logged() {
    let run = replay(
        "dns/dns-corrupt-additionals/input.pcap",
        DnsConfig::default(),
        0,
    );
    let r = of_type(&run, "response");
    assert_eq!(r.len(), 1);
    assert_eq!(
        r[0]["answers"][0]["rrname"],
        "_sip._udp.sip.voice.google.com"
    );
    assert!(r[0].get("additionals").is_none());
    assert_eq!(
        run.events,
        vec![("INVALID_ADDITIONALS", Direction::ToClient, Some(1))]
    );
    assert!(run.msgs[1].invalid_additionals);
}

#[test]
fn answer_with_empty_rdata() {
    let run = replay(
        "dns/dns-answer-emptydata/input.pcap",
        DnsConfig::default(),
        0,
    );
    assert_eq!(run.eve.len(), 2);
    assert!(run.events.is_empty());
    assert_eq!(run.eve[1]["rcode"], "REFUSED");
    assert_eq!(run.eve[1]["opcode"], 5);
    assert_eq!(
        run.eve[1]["authorities"][0],
        json!({"rrname": "otter.ad.nwra.com", "rrtype": "ANY", "ttl": 0})
    );
}

#[test]
fn z_bit() {
    let run = replay("dns/dns-z-bit/input.pcap", DnsConfig::default(), 0);
    assert_eq!(run.eve[0]["z"], true);
    assert_eq!(run.eve[0]["flags"], "140");
    assert_eq!(
        run.events,
        vec![("Z_FLAG_SET", Direction::ToServer, Some(0))]
    );
    assert_eq!(run.eve[1]["answers"][0]["rdata"], "142.251.32.68");
}

#[test]
fn junk_request_first_is_ignored() {
    let run = replay(
        "dns-udp-junkrequest-first/input.pcap",
        DnsConfig::default(),
        0,
    );
    let req = of_type(&run, "request");
    assert_eq!(req.len(), 1);
    assert_eq!(req[0]["queries"][0]["rrname"], "catenacyber.Fr");
    let pkts = pcap_payloads("suricata-verify/dns-udp-junkrequest-first/input.pcap");
    assert_eq!(
        probe_udp(Direction::ToServer, &pkts[0].payload),
        Probe::NoMatch
    );
    assert_eq!(
        probe_udp(Direction::ToServer, &pkts[2].payload),
        Probe::Match
    );
}

#[test]
fn dns_eve_four_pairs() {
    let run = replay("dns/dns-eve/input.pcap", DnsConfig::default(), 0);
    assert_eq!(of_type(&run, "request").len(), 4);
    assert_eq!(of_type(&run, "response").len(), 4);
    assert!(run.events.is_empty());
}

#[test]
fn tcp_gap_resyncs_at_next_frame() {
    let pkts = pcap_payloads("suricata-verify/dns-tcp-ts-gap/input.pcap");
    let mut p = DnsParser::new_tcp(DnsConfig::default());
    let mut out = AppOutput::default();
    let mut run = Run::default();
    // Next expected sequence number per direction: a jump is a lost segment (a gap).
    let mut next: [Option<u32>; 2] = [None, None];
    let mut gaps = 0;
    for pk in &pkts {
        let to_server = pk.dst.port() == 53;
        let dir = if to_server {
            Direction::ToServer
        } else {
            Direction::ToClient
        };
        let s = usize::from(!to_server);
        let syn = pk.tcp_flags & crate::TCP_SYN != 0;
        if let Some(n) = next[s].filter(|_| !syn) {
            if pk.seq != n && !pk.payload.is_empty() {
                p.gap(dir, u64::from(pk.seq.wrapping_sub(n)), &mut out);
                gaps += 1;
            }
        }
        let len = pk.payload.len() as u32 + u32::from(syn);
        next[s] = Some(pk.seq.wrapping_add(len));
        p.parse(dir, &pk.payload, 0, &mut out);
        if pk.tcp_flags & crate::TCP_FIN != 0 {
            p.end_of_stream(dir, 0, &mut out);
        }
        drain(&mut out, &mut run);
    }
    assert_eq!(gaps, 1);
    assert_eq!(of_type(&run, "request").len(), 2);
    let resp = of_type(&run, "response");
    assert_eq!(resp.len(), 3);
    assert!(resp
        .iter()
        .all(|r| r["answers"].as_array().unwrap().len() == 12));

    // A gap inside a frame: the rest of that frame is skipped, the next frame parses.
    let req = tcp_frame(&query(7, b"\x03www\x07example\x03com\x00", 1));
    let mut p = DnsParser::new_tcp(DnsConfig::default());
    let mut run = Run::default();
    p.parse(Direction::ToServer, &req[..5], 0, &mut out);
    p.gap(Direction::ToServer, 10, &mut out);
    p.parse(Direction::ToServer, &req[15..], 0, &mut out); // not a frame start: dropped
    p.parse(Direction::ToServer, &req, 0, &mut out);
    drain(&mut out, &mut run);
    assert_eq!(run.msgs.len(), 1);
    assert!(!p.is_done());
}

// ---- hand-built messages ----------------------------------------------------------------

fn header(id: u16, flags: u16, qd: u16, an: u16, ns: u16, ar: u16) -> Vec<u8> {
    [id, flags, qd, an, ns, ar]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect()
}

fn query(id: u16, qname: &[u8], qtype: u16) -> Vec<u8> {
    let mut m = header(id, 0x0100, 1, 0, 0, 0);
    m.extend_from_slice(qname);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m
}

fn rr(name: &[u8], rrtype: u16, ttl: u32, rdata: &[u8]) -> Vec<u8> {
    let mut v = name.to_vec();
    v.extend_from_slice(&rrtype.to_be_bytes());
    v.extend_from_slice(&1u16.to_be_bytes());
    v.extend_from_slice(&ttl.to_be_bytes());
    v.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    v.extend_from_slice(rdata);
    v
}

fn tcp_frame(msg: &[u8]) -> Vec<u8> {
    let mut v = (msg.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(msg);
    v
}

fn udp(dir: Direction, msgs: &[&[u8]]) -> Run {
    let mut p = DnsParser::new_udp(DnsConfig::default());
    let mut out = AppOutput::default();
    let mut run = Run::default();
    for m in msgs {
        p.parse(dir, m, 0, &mut out);
        drain(&mut out, &mut run);
    }
    run
}

const QNAME: &[u8] = b"\x07example\x03com\x00";

#[test]
fn compression_self_loop_first_is_malformed() {
    // Answer name is a pointer to itself at offset 12+17 = 29.
    let mut m = header(1, 0x8180, 1, 1, 0, 0);
    m.extend_from_slice(QNAME);
    m.extend_from_slice(&[0, 1, 0, 1]);
    assert_eq!(m.len(), 29);
    m.extend_from_slice(&rr(&[0xc0, 29], 1, 60, &[1, 2, 3, 4]));
    let run = udp(Direction::ToClient, &[&m]);
    assert!(run.msgs.is_empty());
    assert_eq!(
        run.events,
        vec![("MALFORMED_DATA", Direction::ToClient, None)]
    );
}

#[test]
fn compression_loop_after_jump_is_cut() {
    // Answer name -> pointer to 31, which is a pointer to itself: INFINITE_LOOP, name kept.
    let mut m = header(1, 0x8180, 1, 2, 0, 0);
    m.extend_from_slice(QNAME);
    m.extend_from_slice(&[0, 1, 0, 1]);
    // first rr at 29: name "\x01a" + pointer to 29 -> loops a.a.a... until the label limit.
    m.extend_from_slice(&rr(&[1, b'a', 0xc0, 29], 1, 60, &[9, 9, 9, 9]));
    // second rr: pointer to 12 (the qname).
    m.extend_from_slice(&rr(&[0xc0, 12], 5, 60, &[0xc0, 12]));
    let run = udp(Direction::ToClient, &[&m]);
    assert_eq!(run.msgs.len(), 1);
    let a = &run.msgs[0].answers[0];
    assert!(a.name.truncated);
    assert!(a.name.value.starts_with(b"a.a.a"));
    assert!(a.name.value.len() <= 1025);
    assert_eq!(run.eve[0]["answers"][1]["rdata"], "example.com");
    assert_eq!(run.eve[0]["answers"][1]["rrname"], "example.com");
    let names: Vec<_> = run.events.iter().map(|e| e.0).collect();
    assert_eq!(names, vec!["NAME_TOO_LONG", "TOO_MANY_LABELS"]);
}

#[test]
fn pointer_past_end_is_malformed() {
    let mut m = header(1, 0x0100, 1, 0, 0, 0);
    m.extend_from_slice(&[0xc0, 0xff, 0, 1, 0, 1]);
    let run = udp(Direction::ToServer, &[&m]);
    assert!(run.msgs.is_empty());
    assert_eq!(run.events[0].0, "MALFORMED_DATA");
    assert_eq!(probe_udp(Direction::ToServer, &m), Probe::NoMatch);
}

#[test]
fn zero_length_short_and_huge_counts() {
    let run = udp(
        Direction::ToServer,
        &[b"", b"\x01", &header(1, 0x100, 1, 0, 0, 0)[..11]],
    );
    assert!(run.msgs.is_empty() && run.events.is_empty());
    // Counts that cannot fit: not DNS, ignored without an event (as Suricata).
    let mut m = header(1, 0x100, 0xffff, 0xffff, 0xffff, 0xffff);
    m.extend_from_slice(QNAME);
    let run = udp(Direction::ToServer, &[&m]);
    assert!(run.msgs.is_empty() && run.events.is_empty());
    // Plausible counts but sections missing: malformed.
    let mut m = header(1, 0x100, 1, 8, 0, 0);
    m.extend_from_slice(QNAME);
    m.extend_from_slice(&[0, 1, 0, 1]);
    let run = udp(Direction::ToServer, &[&m]);
    assert_eq!(run.events[0].0, "MALFORMED_DATA");
}

#[test]
fn txt_null_unknown_and_escaping() {
    let mut m = header(9, 0x8580, 1, 4, 0, 1);
    m.extend_from_slice(QNAME);
    m.extend_from_slice(&[0, 16, 0, 1]);
    m.extend_from_slice(&rr(&[0xc0, 12], 16, 5, b"\x03abc\x02\xff\x01"));
    m.extend_from_slice(&rr(&[0xc0, 12], 10, 5, b"nul"));
    m.extend_from_slice(&rr(&[0xc0, 12], 257, 5, b"\x00\x05issue"));
    m.extend_from_slice(&rr(&[2, b'x', 0xe9, 0xc0, 12], 65, 5, &[0, 1, 0]));
    m.extend_from_slice(&rr(&[0], 41, 0, &[])); // empty OPT: not logged
    let run = udp(Direction::ToClient, &[&m]);
    let e = &run.eve[0];
    assert_eq!(e["aa"], true);
    assert_eq!(e["answers"][0]["rdata"], "abc");
    assert_eq!(e["answers"][1]["rdata"], "\\xff\u{1}");
    assert_eq!(e["answers"][2]["rdata"], "nul");
    assert_eq!(
        e["answers"][3],
        json!({"rrname": "example.com", "rrtype": "257", "ttl": 5})
    );
    assert_eq!(e["answers"][4]["rrname"], "x\\xe9.example.com");
    assert_eq!(e["answers"][4]["rrtype"], "HTTPS");
    assert_eq!(e["grouped"]["TXT"], json!(["abc", "\\xff\u{1}"]));
    assert_eq!(e["grouped"]["NULL"], json!(["nul"]));
    assert!(e.get("additionals").is_none());
    assert_eq!(run.msgs[0].additionals.len(), 1);

    let mut p = DnsParser::new_udp(DnsConfig {
        rdata_hex_for_other_types: true,
        ..DnsConfig::default()
    });
    let mut out = AppOutput::default();
    p.parse(Direction::ToClient, &m, 0, &mut out);
    let AppRecord::Dns(msg) = &out.records[0] else {
        panic!()
    };
    let e = serde_json::to_value(&**msg).unwrap();
    assert_eq!(e["answers"][3]["rdata"], "00056973737565");
}

#[test]
fn direction_and_opcode_events() {
    let mut resp_on_server_side = query(5, QNAME, 1);
    resp_on_server_side[2] |= 0x80;
    let run = udp(
        Direction::ToServer,
        &[&query(4, QNAME, 1), &resp_on_server_side],
    );
    assert_eq!(run.msgs.len(), 1);
    assert_eq!(
        run.events,
        vec![("NOT_A_REQUEST", Direction::ToServer, Some(0))]
    );

    let mut q = query(6, QNAME, 1);
    q[2] = 0x78; // opcode 15
    let run = udp(Direction::ToServer, &[&q]);
    assert_eq!(run.eve[0]["opcode"], 15);
    assert_eq!(
        run.events,
        vec![("INVALID_OPCODE", Direction::ToServer, Some(0))]
    );
}

#[test]
fn tcp_invalid_frame_stops_the_flow() {
    let mut p = DnsParser::new_tcp(DnsConfig::default());
    let mut out = AppOutput::default();
    let mut run = Run::default();
    let mut stream = tcp_frame(&query(1, QNAME, 1));
    stream.extend_from_slice(&[0, 0]); // empty frame: skipped
    stream.extend_from_slice(&tcp_frame(b"garbage garbage garbage"));
    stream.extend_from_slice(&tcp_frame(&query(2, QNAME, 1)));
    p.parse(Direction::ToServer, &stream, 0, &mut out);
    drain(&mut out, &mut run);
    assert_eq!(run.msgs.len(), 1);
    assert!(p.is_done());
}

#[test]
fn tcp_max_frame_buffered() {
    // A 65535-byte message declared and fed one byte at a time stays bounded.
    let mut p = DnsParser::new_tcp(DnsConfig::default());
    let mut out = AppOutput::default();
    let mut q = query(1, QNAME, 1);
    q.resize(0xffff, 0);
    let f = tcp_frame(&q);
    for b in f.chunks(1) {
        p.parse(Direction::ToServer, b, 0, &mut out);
        assert!(p.sides[0].buf.len() <= TCP_MAX_FRAME);
    }
    // Trailing bytes after the question are ignored, as Suricata does.
    assert_eq!(out.records.len(), 1);
}

#[test]
fn probes() {
    let q = query(1, QNAME, 1);
    assert_eq!(probe_udp(Direction::ToServer, &q), Probe::Match);
    assert_eq!(probe_tcp(Direction::ToServer, &tcp_frame(&q)), Probe::Match);
    assert_eq!(
        probe_tcp(Direction::ToServer, &tcp_frame(&q)[..1]),
        Probe::NeedMore
    );
    assert_eq!(
        probe_tcp(Direction::ToServer, &tcp_frame(&q)[..8]),
        Probe::NeedMore
    );
    assert_eq!(
        probe_tcp(Direction::ToServer, &tcp_frame(&q)[..16]),
        Probe::NeedMore
    );
    assert_eq!(
        probe_tcp(Direction::ToServer, b"GET / HTTP/1.1\r\n"),
        Probe::NoMatch
    );
    assert_eq!(
        probe_udp(Direction::ToServer, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        Probe::NoMatch
    );
    let mut rng = Rng(0x1234_5678);
    let mut matched = 0;
    for _ in 0..10_000 {
        let n = 12 + rng.below(200);
        let d: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        if probe_udp(Direction::ToServer, &d) == Probe::Match {
            matched += 1;
        }
    }
    assert!(matched < 20, "{matched} random datagrams matched");
}

#[test]
fn random_input_never_panics_and_splits_agree() {
    let mut rng = Rng(42);
    let seed = {
        let mut m = header(3, 0x8180, 1, 2, 1, 1);
        m.extend_from_slice(QNAME);
        m.extend_from_slice(&[0, 1, 0, 1]);
        m.extend_from_slice(&rr(&[0xc0, 12], 5, 1, &[3, b'w', b'w', b'w', 0xc0, 12]));
        m.extend_from_slice(&rr(&[0xc0, 12], 15, 1, &[0, 10, 0xc0, 12]));
        m.extend_from_slice(&rr(
            &[0xc0, 12],
            6,
            1,
            &[
                0xc0, 12, 0xc0, 12, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5,
            ],
        ));
        m.extend_from_slice(&rr(&[0], 41, 0, &[0, 8, 0, 2, 1, 2]));
        m
    };
    for _ in 0..3000 {
        let mut m = seed.clone();
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(m.len());
            m[i] = rng.next() as u8;
        }
        m.truncate(rng.below(m.len() + 1).max(rng.below(m.len() + 1)));
        for dir in [Direction::ToServer, Direction::ToClient] {
            let run = udp(dir, &[&m]);
            for e in &run.eve {
                assert_eq!(e["version"], 3);
            }
            let _ = probe_udp(dir, &m);
            let _ = probe_tcp(dir, &m);
        }
        let stream = [tcp_frame(&m), tcp_frame(&seed)].concat();
        let feed = |split: usize| {
            let mut p = DnsParser::new_tcp(DnsConfig::default());
            let mut out = AppOutput::default();
            let mut run = Run::default();
            for c in stream.chunks(split) {
                p.parse(Direction::ToClient, c, 0, &mut out);
            }
            drain(&mut out, &mut run);
            run
        };
        assert_eq!(feed(1), feed(stream.len()));
    }
}
