use super::*;
use crate::testutil::{pcap_payloads, Rng};
use serde_json::{json, Value};
use std::collections::HashMap;

fn all_on() -> TlsConfig {
    let d = TlsConfig::default();
    TlsConfig {
        ja3: true,
        fields: d
            .fields
            .with(TlsFields::CLIENT_HANDSHAKE)
            .with(TlsFields::SERVER_HANDSHAKE)
            .with(TlsFields::CLIENT_CERTIFICATE)
            .with(TlsFields::CHAIN),
        ..d
    }
}

struct Run {
    records: Vec<TlsHandshake>,
    events: Vec<&'static str>,
}

impl Run {
    fn eve(&self) -> Vec<Value> {
        self.records
            .iter()
            .map(|r| serde_json::to_value(r).unwrap())
            .collect()
    }
}

/// Feeds every TCP flow of a corpus capture to its own parser (client = SYN sender, else the
/// first sender), in file order.
fn run_pcap(rel: &str, cfg: TlsConfig) -> Run {
    let mut flows: HashMap<
        (std::net::SocketAddr, std::net::SocketAddr),
        (std::net::SocketAddr, TlsParser),
    > = HashMap::new();
    let mut order = Vec::new();
    let mut next_seq = HashMap::new();
    let mut out = AppOutput::default();
    let mut run = Run {
        records: Vec::new(),
        events: Vec::new(),
    };
    let drain = |out: &mut AppOutput, run: &mut Run| {
        for r in out.records.drain(..) {
            let AppRecord::Tls(hs) = r else { panic!() };
            run.records.push(*hs);
        }
        run.events.extend(out.events.drain(..).map(|e| e.event));
    };
    for p in pcap_payloads(rel) {
        if p.proto != 6 {
            continue;
        }
        let key = if p.src < p.dst {
            (p.src, p.dst)
        } else {
            (p.dst, p.src)
        };
        // The SYN sender is the client (a SYN-ACK seen first names the server); else the
        // first sender.
        let client = if p.tcp_flags & 0x12 == 0x12 {
            p.dst
        } else {
            p.src
        };
        let entry = flows.entry(key).or_insert_with(|| {
            order.push(key);
            (client, TlsParser::new(cfg))
        });
        if p.payload.is_empty() {
            continue;
        }
        // Drop retransmissions: sequence number before what this direction already delivered.
        let next = next_seq.entry((p.src, p.dst)).or_insert(p.seq);
        if (p.seq.wrapping_sub(*next) as i32) < 0 {
            continue;
        }
        *next = p.seq.wrapping_add(p.payload.len() as u32);
        let dir = if p.src == entry.0 {
            Direction::ToServer
        } else {
            Direction::ToClient
        };
        entry.1.parse(dir, &p.payload, p.ts_ns, &mut out);
        drain(&mut out, &mut run);
    }
    for k in order {
        let (_, mut parser) = flows.remove(&k).unwrap();
        parser.finish(0, &mut out);
        drain(&mut out, &mut run);
    }
    run
}

const SV: &str = "suricata-verify";

fn sv(case: &str, file: &str) -> String {
    format!("{SV}/{case}/{file}")
}

#[test]
fn corpus_eve_custom_fields_client_auth() {
    // The case's suricata.yaml: `custom: [subject, issuer, …, client_chain]`.
    let custom = "subject, issuer, serial, fingerprint, sni, version, not_before, not_after, certificate, chain, subjectaltname, client, client_certificate, client_chain";
    let cfg = TlsConfig {
        fields: TlsFields::from_settings(false, Some(custom.split(", ")), true).unwrap(),
        ..TlsConfig::default()
    };
    let run = run_pcap(
        &sv("tls/tls-eve-custom-fields", "tls-client-auth.pcap"),
        cfg,
    );
    assert_eq!(run.records.len(), 1, "{:?}", run.eve());
    let e = &run.eve()[0];
    assert_eq!(
        e["subject"],
        "C=HU, ST=Budapest, L=Budapest, O=TLSClientAuthSampleServer, CN=SampleServer"
    );
    assert_eq!(
        e["issuerdn"],
        "C=HU, ST=Budapest, L=Budapest, O=TLSClientAuthSampleCA, CN=SampleRoot"
    );
    assert_eq!(e["subjectaltname"][0], "localhost");
    assert_eq!(e["serial"], "00:C7:D4:28:8B:80:E0:1E:25");
    assert_eq!(
        e["fingerprint"],
        "06:39:f9:5d:fe:81:53:c4:9d:f0:ac:80:3e:2d:42:07:e8:96:de:09"
    );
    assert_eq!(e["sni"], "localhost");
    assert_eq!(e["version"], "TLS 1.2");
    assert_eq!(e["notbefore"], "2018-04-14T20:55:27");
    assert_eq!(e["notafter"], "2018-05-14T20:55:27");
    assert_eq!(e["client"]["serial"], "00:C7:D4:28:8B:80:E0:1E:27");
    assert_eq!(e["client"]["notbefore"], "2018-04-14T20:55:27");
    assert_eq!(e["client"]["notafter"], "2018-05-14T20:55:27");
    for k in ["certificate", "chain"] {
        assert!(e.get(k).is_some(), "{k}");
        assert!(e["client"].get(k).is_some(), "client.{k}");
    }
    assert!(e["client"].get("subject").is_some());
    assert!(e["client"].get("fingerprint").is_some());
    let hs = &run.records[0];
    assert_eq!(hs.sni(), Some(&b"localhost"[..]));
    assert_eq!(hs.cert_serial(), Some("00:C7:D4:28:8B:80:E0:1E:25"));
    assert!(!hs.certificates().is_empty());
    assert!(run.events.is_empty(), "{:?}", run.events);
}

/// `custom` replaces the field set with exactly its fields (Suricata's names, any case);
/// `extended: no` leaves subject, issuerdn and subjectaltname; client_chain brings `client`.
#[test]
fn custom_fields_replace_the_field_set() {
    let pcap = sv("tls/tls-eve-custom-fields", "tls-client-auth.pcap");
    let keys = |fields: TlsFields| -> Vec<String> {
        let cfg = TlsConfig {
            fields,
            ..TlsConfig::default()
        };
        let run = run_pcap(&pcap, cfg);
        let e = run.eve().remove(0);
        let mut keys: Vec<String> = e.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    let only_hs = TlsFields::from_settings(true, Some(["Client_Handshake"]), false).unwrap();
    assert_eq!(keys(only_hs), ["client_handshake"]);
    let basic = TlsFields::from_settings(false, None::<[&str; 0]>, true).unwrap();
    assert_eq!(keys(basic), ["issuerdn", "subject", "subjectaltname"]);
    let chain = TlsFields::from_settings(false, Some(["client_chain", "ja4"]), false).unwrap();
    assert!(chain.has(TlsFields::CLIENT));
    assert_eq!(keys(chain), ["client", "ja4"]);
    assert_eq!(
        TlsFields::from_settings(true, Some(["sni", "nope"]), true),
        Err("unknown tls field \"nope\"".to_string())
    );
}

#[test]
fn corpus_pre_1970() {
    let run = run_pcap(&sv("tls/tls-pre-1970", "input.pcap"), TlsConfig::default());
    assert_eq!(run.records.len(), 1);
    let e = &run.eve()[0];
    assert_eq!(
        e["fingerprint"],
        "71:cd:fe:08:7f:3d:2a:18:32:69:38:fa:bd:64:7b:c6:cf:cc:44:8e"
    );
    assert_eq!(
        e["issuerdn"],
        "C=KR, ST=Kyunggido, L=Suwon, O=Samsung Electronics, OU=SW2 SISC, CN=ROOT CA SISC FKP2_PLUS"
    );
    assert_eq!(e["notafter"], "2038-12-31T00:10:03");
    assert_eq!(e["notbefore"], "1969-12-31T00:00:00");
    assert_eq!(e["serial"], "32");
    assert_eq!(e["sni"], "fkp.samsungcloudsolution.com");
    assert_eq!(e["subject"], "OU=vd, CN=fkp.samsungcloudsolution.com");
    assert_eq!(e["version"], "TLSv1");
    // JA3 is off by default as in Suricata 8; JA4 on.
    assert!(e.get("ja3").is_none());
    assert!(e.get("ja4").is_some());
}

#[test]
fn corpus_cert_issuer_and_resumption() {
    let run = run_pcap(&sv("tls/tls-cert-issuer", "tls.pcap"), TlsConfig::default());
    let eve = run.eve();
    let with_cert = eve
        .iter()
        .filter(|e| {
            e["serial"] == "00:97:E6:47:09:8E:EA:C9:B4"
                && e["issuerdn"] == "C=FR, ST=IDF, L=Paris, O=Stamus, CN=SELKS"
                && e["subject"] == "C=FR, ST=IDF, L=Paris, O=Stamus, CN=SELKS"
        })
        .count();
    assert_eq!(with_cert, 4, "{eve:#?}");
    let resumed = eve.iter().filter(|e| e["session_resumed"] == true).count();
    assert_eq!(resumed, 1, "{eve:#?}");
    assert_eq!(eve.len(), 5);
}

#[test]
fn corpus_ja4_tls() {
    let run = run_pcap(&sv("ja4-tls", "input.pcap"), TlsConfig::default());
    assert_eq!(run.records.len(), 1);
    assert_eq!(
        run.records[0].ja4(),
        Some("t12i1810s1_27d4652c4487_06a4338d0495")
    );
    assert_eq!(run.eve()[0]["ja4"], "t12i1810s1_27d4652c4487_06a4338d0495");
}

#[test]
fn corpus_client_hello_only_tlsv1_ja4() {
    let run = run_pcap(
        &sv("bug-5713-02-ja4", "TLSv1-Extracted-MaliciousC2.pcap"),
        TlsConfig::default(),
    );
    assert_eq!(run.records.len(), 1);
    let e = &run.eve()[0];
    assert_eq!(e["version"], "TLSv1");
    assert_eq!(e["ja4"], "t10i070600_c50f5591e341_ce66f3b797c1");
}

#[test]
fn corpus_handshake_objects() {
    let run = run_pcap(&sv("ja4-cl-handshake", "input.pcap"), all_on());
    assert_eq!(run.records.len(), 1);
    let c = &run.eve()[0]["client_handshake"];
    assert_eq!(c["version"], "TLS 1.2");
    assert_eq!(
        c["ciphers"],
        json!([
            49196, 49200, 159, 52393, 52392, 52394, 49195, 49199, 158, 49188, 49192, 107, 49187,
            49191, 103, 49162, 49172, 57, 49161, 49171, 51, 157, 156, 61, 60, 53, 47, 255
        ])
    );
    assert_eq!(c["exts"], json!([0, 11, 10, 35, 22, 23, 13]));
    assert_eq!(
        c["sig_algs"],
        json!([
            1027, 1283, 1539, 2055, 2056, 2057, 2058, 2059, 2052, 2053, 2054, 1025, 1281, 1537,
            771, 515, 769, 513, 770, 514, 1026, 1282, 1538
        ])
    );
    let run = run_pcap(&sv("ja4-sv-handshake", "input.pcap"), all_on());
    assert_eq!(run.records.len(), 1);
    let s = &run.eve()[0]["server_handshake"];
    assert_eq!(s["version"], "TLS 1.2");
    assert_eq!(s["cipher"], 49200);
    assert_eq!(s["exts"], json!([65281, 11, 35, 23]));
}

#[test]
fn corpus_tls13_drafts_ja3() {
    let cfg = all_on();
    let run = run_pcap(&sv("tls/tls13-draft18", "tls13_draft18.pcap"), cfg);
    let eve = run.eve();
    assert_eq!(eve.len(), 1);
    assert_eq!(eve[0]["version"], "TLS 1.3 draft-18");
    assert_eq!(eve[0]["ja3"]["hash"], "23d254f72096d25c350e4a4a792f4948");
    assert_eq!(
        eve[0]["ja3"]["string"],
        "771,4865-4866-4867-49195-49199-158-49196-49200-159-52393-52392-52244-52243-49161-49187-49171-49191-51-103-49162-49188-49172-49192-57-107-156-157-47-60-53-61-10,65281-23-35-13-11-40-45-43-10,29-23-24,0"
    );

    let run = run_pcap(&sv("tls/tls13-draft19", "tls13_draft19.pcap"), cfg);
    let eve = run.eve();
    assert_eq!(
        eve.iter()
            .filter(|e| e["sni"] == "localhost" && e["version"] == "TLS 1.3 draft-19")
            .count(),
        3,
        "{eve:#?}"
    );
    for h in [
        "0e870cb29dd59424064948532781a7f6",
        "30e5035b2d6787e7b319f75c36c438fe",
        "e6ae7b5efb58894bd43d6fa73420d267",
    ] {
        assert_eq!(
            eve.iter().filter(|e| e["ja3"]["hash"] == h).count(),
            1,
            "{h}"
        );
    }

    let run = run_pcap(&sv("tls/tls13-draft22", "tls13_draft22.pcap"), cfg);
    let eve = run.eve();
    assert_eq!(eve.len(), 1);
    assert_eq!(eve[0]["version"], "TLS 1.3 draft-22");
    assert_eq!(eve[0]["ja3"]["hash"], "786468211b4d23f9b725987b0de9d090");
    assert_eq!(eve[0]["ja3"]["string"], "771,4865-4867,0-43-13-10-40,23,");
}

#[test]
fn corpus_duplicate_hello_one_record() {
    let run = run_pcap(&sv("tls-duplicate-hello", "input.pcap"), all_on());
    assert_eq!(run.records.len(), 1);
    assert_eq!(
        run.records[0].ja3_string(),
        Some("771,4866-4867-4865-4868-49196-52393-49325-49162-49195-49324-49161-49200-52392-49172-49199-49171-157-49309-53-156-49308-47-159-52394-49311-57-158-49310-51,5-10-11-13-22-23-35-51-43-65281-0-45,23,0")
    );
    assert_eq!(run.records[0].version_str(), "TLS 1.3");
}

#[test]
fn corpus_bidir_ja3s() {
    let run = run_pcap(&sv("detect-bidir-ja3", "input.pcap"), TlsConfig::default());
    assert_eq!(run.records.len(), 1);
    let hs = &run.records[0];
    assert_eq!(hs.ja3s_hash(), Some("5d79edf64e03689ff559a54e9d9487bc"));
    assert!(hs.ja3_string().unwrap().starts_with("771,49196-49200"));
    // Computed for signatures even though not logged by default.
    assert!(run.eve()[0].get("ja3s").is_none());
}

#[test]
fn corpus_fragmented_client_hello_and_fin_close() {
    let run = run_pcap(
        &sv("tls/tls-client-hello-frag-01", "dump_mtu300.pcap"),
        TlsConfig::default(),
    );
    assert_eq!(run.records.len(), 1);
    assert_eq!(run.eve()[0]["sni"], "www.google.com");
    let run = run_pcap(
        &sv("tls/tls-fin-close-data-01", "debug-s13.pcap"),
        TlsConfig::default(),
    );
    assert_eq!(run.records.len(), 1);
    assert_eq!(run.eve()[0]["sni"], "rr4---sn-5hne6nzy.googlevideo.com");
}

// ---------------------------------------------------------------- hand-built handshakes

fn ext(t: u16, data: &[u8]) -> Vec<u8> {
    let mut v = t.to_be_bytes().to_vec();
    v.extend_from_slice(&(data.len() as u16).to_be_bytes());
    v.extend_from_slice(data);
    v
}

fn u16s(vals: &[u16]) -> Vec<u8> {
    vals.iter().flat_map(|v| v.to_be_bytes()).collect()
}

fn with_len16(d: &[u8]) -> Vec<u8> {
    let mut v = (d.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(d);
    v
}

fn hs_msg(ty: u8, body: &[u8]) -> Vec<u8> {
    let l = (body.len() as u32).to_be_bytes();
    let mut v = vec![ty, l[1], l[2], l[3]];
    v.extend_from_slice(body);
    v
}

fn record(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![ty, 3, 3];
    v.extend_from_slice(&(body.len() as u16).to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// The ClientHello body gen_pcap.py builds (with a GREASE cipher and extension added).
fn client_hello_body(sni: &str) -> Vec<u8> {
    let ciphers = [
        0x0a0a, 0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8, 0xC013,
        0xC014, 0x009C, 0x009D, 0x002F, 0x0035,
    ];
    let name = sni.as_bytes();
    let mut sni_list = vec![0];
    sni_list.extend_from_slice(&with_len16(name));
    let mut exts = ext(0x1a1a, b"");
    exts.extend(ext(0x0000, &with_len16(&sni_list)));
    exts.extend(ext(0x0017, b""));
    exts.extend(ext(0xFF01, b"\x00"));
    exts.extend(ext(0x000A, &with_len16(&u16s(&[0x001D, 0x0017, 0x0018]))));
    exts.extend(ext(0x000B, b"\x01\x00"));
    exts.extend(ext(0x0023, b""));
    exts.extend(ext(0x0010, &with_len16(b"\x02h2\x08http/1.1")));
    exts.extend(ext(0x0005, b"\x01\x00\x00\x00\x00"));
    exts.extend(ext(
        0x000D,
        &with_len16(&u16s(&[
            0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
        ])),
    ));
    let mut ks = u16s(&[0x001D, 32]);
    ks.extend_from_slice(&[7; 32]);
    exts.extend(ext(0x0033, &with_len16(&ks)));
    exts.extend(ext(0x002D, b"\x01\x01"));
    exts.extend(ext(0x002B, b"\x04\x03\x04\x03\x03"));
    let mut body = vec![3, 3];
    body.extend_from_slice(&[1; 32]);
    body.push(32);
    body.extend_from_slice(&[2; 32]);
    body.extend(with_len16(&u16s(&ciphers)));
    body.extend_from_slice(b"\x01\x00");
    body.extend(with_len16(&exts));
    body
}

fn server_hello_body(tls13: bool) -> Vec<u8> {
    let mut exts = Vec::new();
    if tls13 {
        exts.extend(ext(0x002B, b"\x03\x04"));
        let mut ks = u16s(&[0x001D, 32]);
        ks.extend_from_slice(&[9; 32]);
        exts.extend(ext(0x0033, &ks));
    } else {
        exts.extend(ext(0xff01, b"\x00"));
        exts.extend(ext(0x0010, &with_len16(b"\x02h2")));
    }
    let mut body = vec![3, 3];
    body.extend_from_slice(&[5; 32]);
    body.push(32);
    body.extend_from_slice(&[2; 32]);
    body.extend_from_slice(if tls13 { b"\x13\x01" } else { b"\xc0\x2f" });
    body.push(0);
    body.extend(with_len16(&exts));
    body
}

fn app_data(n: usize) -> Vec<u8> {
    record(23, &vec![0xab; n])
}

/// A gen_pcap.py style TLS 1.3 session: (client stream, server stream).
fn tls13_session() -> (Vec<u8>, Vec<u8>) {
    let ch = record(22, &hs_msg(1, &client_hello_body("example.com")));
    let mut s = record(22, &hs_msg(2, &server_hello_body(true)));
    s.extend(record(20, b"\x01"));
    s.extend(app_data(3000));
    s.extend(app_data(16384 + 17));
    let mut c = ch;
    c.extend(record(20, b"\x01"));
    c.extend(app_data(100));
    (c, s)
}

fn run_split(
    c: &[u8],
    s: &[u8],
    split: &mut dyn FnMut(usize) -> usize,
) -> (Vec<Value>, Vec<&'static str>, bool) {
    let mut p = TlsParser::new(all_on());
    let mut out = AppOutput::default();
    // Client first, then server, then the rest of the client, like the real exchange.
    let ch_len = (5 + usize::from(u16::from_be_bytes([c[3], c[4]]))).min(c.len());
    for (dir, data) in [
        (Direction::ToServer, &c[..ch_len]),
        (Direction::ToClient, s),
        (Direction::ToServer, &c[ch_len..]),
    ] {
        let mut off = 0;
        while off < data.len() {
            let n = split(data.len() - off).clamp(1, data.len() - off);
            p.parse(dir, &data[off..off + n], 0, &mut out);
            off += n;
        }
    }
    let done = p.is_done();
    p.finish(0, &mut out);
    let recs = out
        .records
        .iter()
        .map(|r| r.eve_object().unwrap().1)
        .collect();
    (recs, out.events.iter().map(|e| e.event).collect(), done)
}

#[test]
fn built_tls13_session() {
    let (c, s) = tls13_session();
    let (recs, events, done) = run_split(&c, &s, &mut |n| n);
    assert!(events.is_empty(), "{events:?}");
    assert!(done);
    assert_eq!(recs.len(), 1);
    let e = &recs[0];
    assert_eq!(e["sni"], "example.com");
    assert_eq!(e["version"], "TLS 1.3");
    assert_eq!(e["client_alpns"], json!(["h2", "http/1.1"]));
    assert!(e.get("server_alpns").is_none());
    assert!(e.get("subject").is_none());
    assert!(e.get("session_resumed").is_none());
    // 15 ciphers and 12 extensions once GREASE is dropped; ALPN h2.
    let ja4 = e["ja4"].as_str().unwrap();
    // Same cipher list as Chrome: the cipher hash matches the spec example's.
    assert!(ja4.starts_with("t13d1512h2_8daaf6152771_"), "{ja4}");
    assert_eq!(ja4.len(), 36);
    assert_eq!(
        e["ja3"]["string"],
        "771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53,0-23-65281-10-11-35-16-5-13-51-45-43,29-23-24,0"
    );
    assert_eq!(
        e["ja3"]["hash"],
        hex(&Md5::digest(
            e["ja3"]["string"].as_str().unwrap().as_bytes()
        ))
    );
    assert_eq!(e["ja3s"]["string"], "771,4865,43-51");
    assert_eq!(e["server_handshake"]["version"], "TLS 1.3");
    assert_eq!(e["server_handshake"]["cipher"], 4865);
}

#[test]
fn ja4_known_values() {
    // The JA4 recipe checked by hand against the spec's sorted-list rules.
    let ch = ClientHello {
        version: 0x0303,
        supported_versions: vec![0x2a2a, 0x0304, 0x0303],
        ciphers: vec![0x1111, 0x0a20, 0xbada, 0x0a0a],
        extensions: vec![0x0000, 0x0010, 0xface, 0x0121, 0x1234],
        alpns: vec![b"h3-16".to_vec()],
        sig_algs: vec![0x6666],
        ..Default::default()
    };
    // Suricata's ja4.rs test vector for the same inputs (quic flag aside).
    assert_eq!(ja4(&ch), "t13d0305h6_f500716053f9_2debc8880bae");
    let empty = ClientHello::default();
    assert_eq!(ja4(&empty), "t00i000000_000000000000_000000000000");
    assert_eq!(ja4_alpn(Some(&[0xab, 0xcd])), "ad");
    assert_eq!(ja4_alpn(Some(b"a")), "aa");
    assert_eq!(ja4_alpn(Some(b"")), "00");
}

#[test]
fn split_invariance() {
    let (c, s) = tls13_session();
    let whole = run_split(&c, &s, &mut |n| n);
    assert_eq!(run_split(&c, &s, &mut |_| 1), whole);
    let mut rng = Rng(0x1234_5678);
    for _ in 0..50 {
        assert_eq!(run_split(&c, &s, &mut |_| 1 + rng.below(40)), whole);
    }
}

#[test]
fn client_hello_fragmented_across_records() {
    let msg = hs_msg(1, &client_hello_body("frag.example"));
    let mut c = Vec::new();
    for chunk in msg.chunks(50) {
        c.extend(record(22, chunk));
    }
    let mut p = TlsParser::new(TlsConfig::default());
    let mut out = AppOutput::default();
    for seg in c.chunks(7) {
        p.parse(Direction::ToServer, seg, 0, &mut out);
    }
    let mut s = record(22, &hs_msg(2, &server_hello_body(true)));
    s.extend(app_data(10));
    p.parse(Direction::ToClient, &s, 0, &mut out);
    assert!(out.events.is_empty(), "{:?}", out.events);
    assert_eq!(out.records.len(), 1);
    let AppRecord::Tls(hs) = &out.records[0] else {
        panic!()
    };
    assert_eq!(hs.sni(), Some(&b"frag.example"[..]));
}

#[test]
fn tls12_resumed_and_multiple_messages_per_record() {
    let mut c = record(22, &hs_msg(1, &client_hello_body("r.example")));
    let mut srv = hs_msg(2, &server_hello_body(false));
    srv.extend(hs_msg(14, b""));
    let mut s = record(22, &srv);
    s.extend(record(20, b"\x01"));
    s.extend(record(22, &[0x55; 40])); // encrypted Finished: must not be parsed
    c.extend(record(20, b"\x01"));
    c.extend(record(22, &[0x66; 40]));
    c.extend(app_data(50));
    let mut p = TlsParser::new(all_on());
    let mut out = AppOutput::default();
    p.parse(
        Direction::ToServer,
        &c[..5 + usize::from(c[4]) + 256 * usize::from(c[3])],
        0,
        &mut out,
    );
    p.parse(Direction::ToClient, &s, 0, &mut out);
    assert_eq!(out.records.len(), 1, "emitted at the server's CCS");
    p.parse(
        Direction::ToServer,
        &c[5 + usize::from(c[4]) + 256 * usize::from(c[3])..],
        0,
        &mut out,
    );
    assert!(p.is_done());
    assert!(out.events.is_empty(), "{:?}", out.events);
    let e = out.records[0].eve_object().unwrap().1;
    assert_eq!(e["session_resumed"], true);
    assert_eq!(e["version"], "TLS 1.2");
    assert_eq!(e["server_alpns"], json!(["h2"]));
    assert_eq!(e["ja3s"]["string"], "771,49199,65281-16");
    p.finish(0, &mut out);
    assert_eq!(out.records.len(), 1);
}

#[test]
fn probe_cases() {
    let (c, s) = tls13_session();
    assert_eq!(probe(Direction::ToServer, &c), Probe::Match);
    assert_eq!(probe(Direction::ToClient, &s), Probe::Match);
    // A handshake record header is enough, as for Suricata (|16 03 0x|).
    assert_eq!(probe(Direction::ToServer, &c[..3]), Probe::Match);
    assert_eq!(probe(Direction::ToServer, &c[..2]), Probe::NeedMore);
    assert_eq!(probe(Direction::ToServer, b""), Probe::NeedMore);
    assert_eq!(
        probe(Direction::ToServer, b"GET / HTTP/1.1\r\n"),
        Probe::NoMatch
    );
    assert_eq!(probe(Direction::ToServer, b"SSH-2.0-x\r\n"), Probe::NoMatch);
    assert_eq!(
        probe(Direction::ToServer, &[0x16, 0x05, 0x01, 0, 10, 1]),
        Probe::NoMatch
    );
    assert_eq!(probe(Direction::ToServer, &app_data(10)), Probe::NoMatch);
    // SSLv2-compatible ClientHello.
    assert_eq!(
        probe(
            Direction::ToServer,
            &[0x80, 0x2e, 0x01, 0x03, 0x01, 0, 0x15]
        ),
        Probe::Match
    );
    let mut rng = Rng(99);
    for _ in 0..1000 {
        let v: Vec<u8> = (0..rng.below(32)).map(|_| rng.next() as u8).collect();
        let _ = probe(Direction::ToServer, &v);
    }
}

#[test]
fn sslv2_client_hello() {
    let mut body = vec![1, 3, 1];
    body.extend_from_slice(&u16s(&[6, 0, 16]));
    body.extend_from_slice(&[0, 0, 0x2f, 0x07, 0x00, 0xc0]);
    body.extend_from_slice(&[3; 16]);
    let mut c = vec![0x80 | (body.len() >> 8) as u8, body.len() as u8];
    c.extend(body);
    let mut p = TlsParser::new(TlsConfig::default());
    let mut out = AppOutput::default();
    for b in c.chunks(1) {
        p.parse(Direction::ToServer, b, 0, &mut out);
    }
    p.finish(0, &mut out);
    assert!(out.events.is_empty(), "{:?}", out.events);
    let AppRecord::Tls(hs) = &out.records[0] else {
        panic!()
    };
    assert_eq!(hs.version_str(), "TLSv1");
    assert_eq!(hs.client_hello.as_ref().unwrap().ciphers, vec![0x2f]);
}

#[test]
fn garbage_and_truncation() {
    let mut out = AppOutput::default();
    let mut p = TlsParser::new(TlsConfig::default());
    p.parse(Direction::ToServer, &[0x42, 3, 3, 0, 1, 0], 0, &mut out);
    assert_eq!(out.events[0].event, "INVALID_RECORD_TYPE");
    // Malformed bytes are a parser error (Suricata's `app_layer.error.tls.parser`).
    assert_eq!(out.parser_errors, 1);
    out.clear();
    let mut p = TlsParser::new(TlsConfig::default());
    p.parse(Direction::ToServer, &[22, 7, 3, 0, 1, 0], 0, &mut out);
    assert_eq!(out.events[0].event, "INVALID_RECORD_VERSION");
    out.clear();
    let mut p = TlsParser::new(TlsConfig::default());
    p.parse(Direction::ToServer, &[22, 3, 1, 0xff, 0xff], 0, &mut out);
    assert_eq!(out.events[0].event, "INVALID_SSL_RECORD");
    out.clear();
    // A ClientHello whose inner lengths lie.
    let mut p = TlsParser::new(TlsConfig::default());
    p.parse(
        Direction::ToServer,
        &record(22, &hs_msg(1, &[3, 3, 0, 0])),
        0,
        &mut out,
    );
    assert_eq!(out.events[0].event, "INVALID_HANDSHAKE_MESSAGE");
    out.clear();
    // Bad certificate DER.
    let mut p = TlsParser::new(TlsConfig::default());
    let cert = [0, 0, 7, 0, 0, 4, 1, 2, 3, 4];
    p.parse(
        Direction::ToClient,
        &record(22, &hs_msg(11, &cert)),
        0,
        &mut out,
    );
    assert_eq!(out.events[0].event, "INVALID_CERTIFICATE");
    out.clear();
    let mut p = TlsParser::new(TlsConfig::default());
    p.parse(
        Direction::ToClient,
        &record(22, &hs_msg(11, &[0, 0, 9, 0, 0, 1])),
        0,
        &mut out,
    );
    assert_eq!(out.events[0].event, "CERTIFICATE_INVALID_LENGTH");
    out.clear();
    // Truncated ClientHello: the handshake started, the record comes out at finish.
    let (c, _) = tls13_session();
    let mut p = TlsParser::new(TlsConfig::default());
    p.parse(Direction::ToServer, &c[..60], 0, &mut out);
    assert!(out.records.is_empty());
    p.finish(0, &mut out);
    assert_eq!(out.records.len(), 1);
    // Random bytes, fed in random pieces, both directions: no panic, bounded.
    let mut rng = Rng(7);
    for _ in 0..300 {
        let mut p = TlsParser::new(all_on());
        let mut out = AppOutput::default();
        for _ in 0..8 {
            let mut v: Vec<u8> = (0..rng.below(300)).map(|_| rng.next() as u8).collect();
            if rng.below(2) == 0 && v.len() > 5 {
                v[0] = 22;
                v[1] = 3;
                v[2] = 3;
            }
            let dir = if rng.below(2) == 0 {
                Direction::ToServer
            } else {
                Direction::ToClient
            };
            p.parse(dir, &v, 0, &mut out);
            if rng.below(10) == 0 {
                p.gap(dir, rng.below(100) as u64, &mut out);
            }
        }
        p.finish(0, &mut out);
        for r in &out.records {
            r.eve_object().unwrap();
        }
    }
    // Mutated real handshakes.
    let (c, s) = tls13_session();
    for _ in 0..300 {
        let mut c = c.clone();
        let mut s = s.clone();
        for _ in 0..4 {
            let i = rng.below(c.len().min(300));
            c[i] = rng.next() as u8;
            let i = rng.below(s.len().min(200));
            s[i] = rng.next() as u8;
        }
        let _ = run_split(&c, &s, &mut |n| n.min(37));
    }
}

#[test]
fn gap_in_app_data_is_skipped_gap_in_handshake_stops() {
    let (c, s) = tls13_session();
    let mut p = TlsParser::new(TlsConfig::default());
    let mut out = AppOutput::default();
    p.parse(Direction::ToServer, &c, 0, &mut out);
    let sh_end = 5 + usize::from(u16::from_be_bytes([s[3], s[4]])) + 6;
    // Server hello, CCS and the first 10 bytes of the first app data record.
    p.parse(Direction::ToClient, &s[..sh_end + 15], 0, &mut out);
    p.gap(Direction::ToClient, 100, &mut out);
    assert!(out.events.is_empty());
    assert_eq!(out.records.len(), 1);

    let mut p = TlsParser::new(TlsConfig::default());
    let mut out = AppOutput::default();
    p.parse(Direction::ToServer, &c[..40], 0, &mut out);
    p.gap(Direction::ToServer, 20, &mut out);
    assert_eq!(out.events[0].event, "INVALID_SSL_RECORD");
    // A gap is not a parser error.
    assert_eq!(out.parser_errors, 0);
    p.parse(Direction::ToServer, &c[60..], 0, &mut out);
    assert_eq!(out.events.len(), 1);
}

#[test]
fn timestamps() {
    assert_eq!(format_timestamp(0), "1970-01-01T00:00:00");
    assert_eq!(format_timestamp(1456747200), "2016-02-29T12:00:00");
    assert_eq!(format_timestamp(-86400), "1969-12-31T00:00:00");
    assert_eq!(version_string(0x7f12), "TLS 1.3 draft-18");
    assert_eq!(version_string(0xfb17), "TLS 1.3 draft-23-fb");
    assert_eq!(version_string(0x1234), "4660");
}

#[test]
fn server_hello_layout_follows_draft_not_version() {
    // tls-parser knows the layouts of SSLv3-TLS 1.2 and draft 18 only; SSLv3 with extensions
    // and other drafts must parse all the same (drafts before 22: no session id/compression).
    let c = record(22, &hs_msg(1, &client_hello_body("v.example")));
    let mut sslv3 = server_hello_body(false);
    sslv3[..2].copy_from_slice(&[3, 0]);
    let (recs, events, _) = run_split(&c, &record(22, &hs_msg(2, &sslv3)), &mut |n| n);
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(recs[0]["version"], "SSLv3");
    assert_eq!(recs[0]["server_alpns"], json!(["h2"]));
    assert_eq!(recs[0]["ja3s"]["string"], "768,49199,65281-16");

    let mut draft20 = vec![0x7f, 0x14];
    draft20.extend_from_slice(&[5; 32]);
    draft20.extend_from_slice(b"\x13\x01");
    draft20.extend(with_len16(&ext(0x0033, &[0, 0x1d, 0, 1, 9])));
    let (recs, events, _) = run_split(&c, &record(22, &hs_msg(2, &draft20)), &mut |n| n);
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(recs[0]["version"], "TLS 1.3 draft-20");
    assert_eq!(recs[0]["ja3s"]["string"], "32532,4865,51");
}

#[test]
fn hellos_outside_the_rfc_limits_are_malformed() {
    // tls-parser holds hellos to the RFC's limits where the hand parser before it did not:
    // a session id over 32 bytes, an odd cipher-suite list length (Suricata also rejects the
    // latter). The hello is then not logged.
    let good = client_hello_body("x.example");
    let mut long_sid = good[..34].to_vec();
    long_sid.push(33);
    long_sid.extend_from_slice(&[2; 33]);
    long_sid.extend_from_slice(&good[34 + 1 + 32..]);
    let mut odd = good[..34 + 1 + 32].to_vec();
    odd.extend_from_slice(&[0, 3, 0x13, 0x01, 0x13]);
    odd.extend_from_slice(b"\x01\x00");
    for body in [long_sid, odd] {
        let (recs, events, _) = run_split(&record(22, &hs_msg(1, &body)), b"", &mut |n| n);
        assert_eq!(events, ["INVALID_HANDSHAKE_MESSAGE"]);
        assert_eq!(recs.len(), 1);
        assert!(recs[0].get("sni").is_none() && recs[0].get("ja3").is_none());
    }
}
