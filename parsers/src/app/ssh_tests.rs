use super::*;
use crate::app::AppEvent;
use crate::testutil::{pcap_payloads, Rng};

const C: Direction = Direction::ToServer;
const S: Direction = Direction::ToClient;
const HASSH_ON: SshConfig = SshConfig { hassh: true };

/// Everything a parser produced for one session.
#[derive(Debug, Default)]
struct Run {
    records: Vec<SshHandshake>,
    events: Vec<AppEvent>,
    /// Records emitted before `finish()`.
    before_finish: usize,
    done: bool,
}

fn drain(out: &mut AppOutput, run: &mut Run) {
    for r in out.records.drain(..) {
        match r {
            AppRecord::Ssh(h) => run.records.push(*h),
            other => panic!("unexpected record {other:?}"),
        }
    }
    run.events.append(&mut out.events);
}

/// Feeds `(dir, bytes)` pieces in order, then finishes.
fn run_pieces(cfg: SshConfig, pieces: &[(Direction, &[u8])]) -> Run {
    let mut p = SshParser::new(cfg);
    let mut out = AppOutput::default();
    let mut run = Run::default();
    for (dir, data) in pieces {
        p.parse(*dir, data, 0, &mut out);
        drain(&mut out, &mut run);
    }
    run.before_finish = run.records.len();
    run.done = p.is_done();
    p.finish(0, &mut out);
    drain(&mut out, &mut run);
    run
}

/// Same, each piece cut into chunks of at most `max` bytes (1 = byte by byte; 0 = random sizes).
fn run_split(cfg: SshConfig, pieces: &[(Direction, Vec<u8>)], max: usize, seed: u64) -> Run {
    let mut rng = Rng(seed | 1);
    let mut cut: Vec<(Direction, &[u8])> = Vec::new();
    for (dir, data) in pieces {
        let mut rest = data.as_slice();
        while !rest.is_empty() {
            let n = if max == 0 {
                1 + rng.below(rest.len().min(40))
            } else {
                max.min(rest.len())
            };
            let (a, b) = rest.split_at(n);
            cut.push((*dir, a));
            rest = b;
        }
    }
    run_pieces(cfg, &cut)
}

fn one(run: &Run) -> &SshHandshake {
    assert_eq!(run.records.len(), 1, "exactly one record: {run:?}");
    &run.records[0]
}

fn event_names(run: &Run) -> Vec<(&'static str, Direction)> {
    run.events.iter().map(|e| (e.event, e.direction)).collect()
}

/// Payloads of one TCP connection of a corpus capture, by direction (client = `client_port`).
fn capture(rel: &str, client_port: u16, server_port: u16) -> Vec<(Direction, Vec<u8>)> {
    pcap_payloads(rel)
        .into_iter()
        .filter(|p| p.proto == 6 && !p.payload.is_empty())
        .filter_map(|p| {
            if p.src.port() == client_port && p.dst.port() == server_port {
                Some((C, p.payload))
            } else if p.src.port() == server_port && p.dst.port() == client_port {
                Some((S, p.payload))
            } else {
                None
            }
        })
        .collect()
}

fn as_refs(pieces: &[(Direction, Vec<u8>)]) -> Vec<(Direction, &[u8])> {
    pieces.iter().map(|(d, v)| (*d, v.as_slice())).collect()
}

fn ssh_string(s: &[u8]) -> Vec<u8> {
    let mut v = (s.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(s);
    v
}

/// A binary packet: length, padding length, payload, `pad` padding bytes.
fn packet(payload: &[u8], pad: u8) -> Vec<u8> {
    let len = (1 + payload.len() + pad as usize) as u32;
    let mut v = len.to_be_bytes().to_vec();
    v.push(pad);
    v.extend_from_slice(payload);
    v.extend(std::iter::repeat_n(0u8, pad as usize));
    v
}

const KEX: &[u8] = b"curve25519-sha256,diffie-hellman-group14-sha256";

/// A KEXINIT payload with the algorithm lists used by the hand-built tests.
fn kexinit_payload() -> Vec<u8> {
    let mut v = vec![20u8];
    v.extend_from_slice(&[0xaa; 16]); // cookie
    for list in [
        KEX,
        b"ssh-ed25519".as_slice(),
        b"aes128-ctr",
        b"aes256-ctr",
        b"hmac-sha2-256",
        b"hmac-sha1",
        b"none",
        b"zlib@openssh.com,none",
        b"",
        b"",
    ] {
        v.extend(ssh_string(list));
    }
    v.push(0); // first_kex_packet_follows
    v.extend_from_slice(&[0; 4]); // reserved
    v
}

// Computed independently with
// python3 -c 'import hashlib;print(hashlib.md5(b"curve25519-sha256,diffie-hellman-group14-sha256;aes128-ctr;hmac-sha2-256;none").hexdigest())'
const HAND_HASSH: &str = "fccfa11c7d95c9b773dd0ba461c6a7ef";
const HAND_HASSH_STRING: &str =
    "curve25519-sha256,diffie-hellman-group14-sha256;aes128-ctr;hmac-sha2-256;none";
// python3 -c 'import hashlib;print(hashlib.md5(b"curve25519-sha256,diffie-hellman-group14-sha256;aes256-ctr;hmac-sha1;zlib@openssh.com,none").hexdigest())'
const HAND_HASSH_SERVER: &str = "f69de0947b6b00a6a9c5375aca5931b1";
const HAND_HASSH_SERVER_STRING: &str =
    "curve25519-sha256,diffie-hellman-group14-sha256;aes256-ctr;hmac-sha1;zlib@openssh.com,none";

/// A full cleartext handshake as both sides send it, then encrypted bytes.
fn hand_session() -> Vec<(Direction, Vec<u8>)> {
    let newkeys = packet(&[21], 10);
    let kexinit = packet(&kexinit_payload(), 7);
    let kexdh = packet(&[30, 1, 2, 3, 4], 6);
    let cat = |parts: &[&[u8]]| parts.concat();
    vec![
        (
            S,
            cat(&[b"Welcome\r\nSSH-2.0-OpenSSH_9.6 Ubuntu-3\r\n", &kexinit]),
        ),
        (
            C,
            cat(&[b"SSH-2.0-PuTTY_Release_0.80\r\n", &kexinit, &kexdh]),
        ),
        (S, cat(&[&kexdh, &newkeys, &[0xde; 64]])),
        (C, cat(&[&newkeys, &[0xad; 80]])),
    ]
}

#[test]
fn probe_banners() {
    assert_eq!(probe(C, b"SSH-2.0-x\r\n"), Probe::Match);
    assert_eq!(probe(C, b"SS"), Probe::NeedMore);
    assert_eq!(probe(C, b""), Probe::NeedMore);
    assert_eq!(probe(C, b"ssh-"), Probe::Match);
    assert_eq!(probe(C, b"GET / HTTP/1.1\r\n"), Probe::NoMatch);
    // Clients may not send lines before the banner.
    assert_eq!(probe(C, b"hello\r\nSSH-2.0-x\r\n"), Probe::NoMatch);
    // Servers may.
    assert_eq!(probe(S, b"hello\r\nSSH-2.0-x\r\n"), Probe::Match);
    assert_eq!(probe(S, b"hello\r\nSS"), Probe::NeedMore);
    assert_eq!(probe(S, b"hello"), Probe::NeedMore);
    assert_eq!(probe(S, b"\x16\x03\x01\x00"), Probe::NoMatch);
    assert_eq!(probe(S, b"hi\0there\n"), Probe::NoMatch);
    let many = b"x\n".repeat(PROBE_MAX_PRE_BANNER);
    assert_eq!(probe(S, &many), Probe::NoMatch);
}

#[test]
fn real_newkeys_capture_with_hassh() {
    let pieces = capture("suricata-verify/ssh-newkeys/input.pcap", 60063, 22);
    let run = run_pieces(HASSH_ON, &as_refs(&pieces));
    assert!(run.events.is_empty(), "{:?}", run.events);
    assert!(run.done, "both NEWKEYS seen");
    assert_eq!(run.before_finish, 1, "emitted on NEWKEYS both ways");
    let h = one(&run);
    assert_eq!(h.client_proto(), Some(b"2.0".as_slice()));
    assert_eq!(h.client_software(), Some(b"libssh-0.7.2".as_slice()));
    assert_eq!(h.server_proto(), Some(b"2.0".as_slice()));
    assert_eq!(h.server_software(), Some(b"OpenSSH_7.4".as_slice()));
    // Expected values from Wireshark (tshark -e ssh.kex.hassh -e ssh.kex.hasshserver).
    assert_eq!(h.hassh(), Some("c8c5fbf80b7b0a1b0e4de5e683f3c5ad"));
    assert_eq!(h.hassh_server(), Some("6832f1ce43d4397c2c0a3e2f8c94334e"));
    assert_eq!(
        h.hassh_string(),
        Some(
            b"curve25519-sha256@libssh.org,ecdh-sha2-nistp256,diffie-hellman-group14-sha1,\
diffie-hellman-group1-sha1;aes256-ctr,aes192-ctr,aes128-ctr,aes256-cbc,aes192-cbc,aes128-cbc,\
blowfish-cbc,3des-cbc;hmac-sha2-256,hmac-sha2-512,hmac-sha1;none"
                .as_slice()
        )
    );
    assert!(h
        .hassh_server_string()
        .unwrap()
        .ends_with(b";none,zlib@openssh.com"));
    let json = serde_json::to_value(h).unwrap();
    assert_eq!(
        json["client"]["hassh"]["hash"],
        "c8c5fbf80b7b0a1b0e4de5e683f3c5ad"
    );
    assert_eq!(json["server"]["software_version"], "OpenSSH_7.4");

    // Same record however the stream is cut.
    for (max, seed) in [(1, 1), (0, 7), (0, 99), (3, 1)] {
        let r = run_split(HASSH_ON, &pieces, max, seed);
        assert_eq!(one(&r), h, "split {max}/{seed}");
        assert!(r.events.is_empty());
    }
}

#[test]
fn real_newkeys_capture_default_config() {
    let pieces = capture("suricata-verify/ssh-newkeys/input.pcap", 60063, 22);
    let run = run_pieces(SshConfig::default(), &as_refs(&pieces));
    assert_eq!(run.before_finish, 1);
    assert!(run.done);
    let json = serde_json::to_value(one(&run)).unwrap();
    // Suricata 8 default: hassh off, so no hassh objects.
    assert_eq!(
        json,
        serde_json::json!({
            "client": {"proto_version": "2.0", "software_version": "libssh-0.7.2"},
            "server": {"proto_version": "2.0", "software_version": "OpenSSH_7.4"},
        })
    );
}

#[test]
fn default_config_emits_when_both_banners_are_in() {
    let mut p = SshParser::new(SshConfig::default());
    let mut out = AppOutput::default();
    p.parse(S, b"SSH-2.0-srv\r\n", 0, &mut out);
    assert!(out.records.is_empty());
    p.parse(C, b"SSH-2.0-cli\r\n", 0, &mut out);
    assert_eq!(out.records.len(), 1);
    assert!(!p.is_done());
    out.clear();
    p.finish(0, &mut out);
    assert!(out.records.is_empty(), "one record per session");
}

#[test]
fn real_bug_4903_cisco_banners() {
    // Server banner only (then RST): the record comes from finish().
    let pieces = capture("suricata-verify/bug-4903/bug-4903-01/input.pcap", 10000, 22);
    let run = run_pieces(SshConfig::default(), &as_refs(&pieces));
    assert_eq!(run.before_finish, 0);
    assert!(run.events.is_empty());
    assert_eq!(
        serde_json::to_value(one(&run)).unwrap(),
        serde_json::json!({"server": {"proto_version": "1.99", "software_version": "Cisco_server-1.24"}})
    );

    let pieces = capture("suricata-verify/bug-4903/bug-4903-02/input.pcap", 10001, 22);
    let run = run_pieces(SshConfig::default(), &as_refs(&pieces));
    let h = one(&run);
    assert_eq!(h.server_proto(), Some(b"1.99".as_slice()));
    assert_eq!(h.client, None);

    // Both banners, each padded with NULs before the LF (test.yaml expects these values).
    let pieces = capture("suricata-verify/bug-4903/bug-4903-03/input.pcap", 10002, 22);
    let run = run_pieces(SshConfig::default(), &as_refs(&pieces));
    assert_eq!(run.before_finish, 1);
    assert_eq!(
        serde_json::to_value(one(&run)).unwrap(),
        serde_json::json!({
            "client": {"proto_version": "2.0", "software_version": "Cisco_client-1.25"},
            "server": {"proto_version": "1.99", "software_version": "Cisco_server-1.24"},
        })
    );
}

#[test]
fn real_tcpdump_capture_hassh() {
    let pieces = capture("odd-pcaps/tcpdump-ssh.pcap", 62146, 22);
    let run = run_pieces(HASSH_ON, &as_refs(&pieces));
    let h = one(&run);
    assert!(run.events.is_empty());
    assert_eq!(h.client_software(), Some(b"OpenSSH_7.8".as_slice()));
    // The comment after the space is not part of the software version.
    assert_eq!(h.server_software(), Some(b"OpenSSH_7.4p1".as_slice()));
    // Wireshark's values.
    assert_eq!(h.hassh(), Some("ec7378c1a92f5a8dde7e8b7a1ddf33d1"));
    assert_eq!(h.hassh_server(), Some("c099ec12a2b4c3b347f8f17d966469ed"));
}

#[test]
fn real_zeek_capture_ssh_1_99_server() {
    let pieces = capture("odd-pcaps/zeek-ssh.pcap", 57189, 22);
    let run = run_pieces(HASSH_ON, &as_refs(&pieces));
    let h = one(&run);
    assert!(run.done);
    assert_eq!(h.server_proto(), Some(b"1.99".as_slice()));
    assert_eq!(h.server_software(), Some(b"OpenSSH_6.6.1p1".as_slice()));
    assert_eq!(h.client_software(), Some(b"OpenSSH_6.2".as_slice()));
    // Wireshark's values.
    assert_eq!(h.hassh(), Some("1f120ecfc2c57fbdeaf66b93a3bf26ee"));
    assert_eq!(h.hassh_server(), Some("ba6d3d2aecbd0d91b01dfa7828110d70"));
}

#[test]
fn hand_built_handshake_and_split_invariance() {
    let pieces = hand_session();
    let run = run_pieces(HASSH_ON, &as_refs(&pieces));
    assert!(run.events.is_empty(), "{:?}", run.events);
    assert!(run.done);
    assert_eq!(run.before_finish, 1);
    let h = one(&run).clone();
    assert_eq!(h.server_software(), Some(b"OpenSSH_9.6".as_slice()));
    assert_eq!(h.client_software(), Some(b"PuTTY_Release_0.80".as_slice()));
    assert_eq!(h.hassh(), Some(HAND_HASSH));
    assert_eq!(h.hassh_string(), Some(HAND_HASSH_STRING.as_bytes()));
    assert_eq!(h.hassh_server(), Some(HAND_HASSH_SERVER));
    assert_eq!(
        h.hassh_server_string(),
        Some(HAND_HASSH_SERVER_STRING.as_bytes())
    );
    assert_eq!(
        serde_json::to_value(&h).unwrap(),
        serde_json::json!({
            "client": {"proto_version": "2.0", "software_version": "PuTTY_Release_0.80",
                       "hassh": {"hash": HAND_HASSH, "string": HAND_HASSH_STRING}},
            "server": {"proto_version": "2.0", "software_version": "OpenSSH_9.6",
                       "hassh": {"hash": HAND_HASSH_SERVER, "string": HAND_HASSH_SERVER_STRING}},
        })
    );
    for max in [1, 2, 5, 6, 7, 13] {
        let r = run_split(HASSH_ON, &pieces, max, 0);
        assert_eq!(one(&r), &h, "chunks of {max}");
        assert!(r.events.is_empty());
        assert_eq!(r.before_finish, 1);
    }
    for seed in 1..50 {
        let r = run_split(HASSH_ON, &pieces, 0, seed);
        assert_eq!(one(&r), &h, "seed {seed}");
    }
}

#[test]
fn server_pre_banner_lines() {
    let run = run_pieces(
        SshConfig::default(),
        &[
            (
                S,
                b"Hello there\r\nthis host is monitored\n\r\nSSH-2.0-srv_1 c\r\n",
            ),
            (C, b"SSH-2.0-cli\n"),
        ],
    );
    assert!(run.events.is_empty());
    let h = one(&run);
    assert_eq!(h.server_software(), Some(b"srv_1".as_slice()));
    // A long pre-banner line is skipped too.
    let mut long = vec![b'x'; 1000];
    long.extend_from_slice(b"\r\nSSH-2.0-srv\r\n");
    let run = run_pieces(SshConfig::default(), &[(S, &long)]);
    assert!(run.events.is_empty());
    assert_eq!(one(&run).server_software(), Some(b"srv".as_slice()));
    // Bounded.
    let mut many = b"x\n".repeat(MAX_PRE_BANNER_LINES as usize + 1);
    many.extend_from_slice(b"SSH-2.0-srv\r\n");
    let run = run_pieces(SshConfig::default(), &[(S, &many)]);
    assert_eq!(event_names(&run), [("INVALID_BANNER", S)]);
    assert!(run.records.is_empty());
}

#[test]
fn client_must_start_with_banner() {
    let run = run_pieces(
        SshConfig::default(),
        &[(C, b"hello\r\nSSH-2.0-cli\r\n"), (S, b"SSH-2.0-srv\r\n")],
    );
    assert_eq!(event_names(&run), [("INVALID_BANNER", C)]);
    let h = one(&run);
    assert_eq!(h.client, None);
    assert_eq!(h.server_software(), Some(b"srv".as_slice()));
}

#[test]
fn invalid_banners() {
    for bad in [
        b"SSH-2.0\r\n".as_slice(),
        b"SSH--x\r\n",
        b"ssh-2.0-lower\r\n",
        b"\r\n",
        b"SSH-\n",
    ] {
        let run = run_pieces(SshConfig::default(), &[(C, bad)]);
        assert_eq!(event_names(&run), [("INVALID_BANNER", C)], "{bad:?}");
        assert!(run.records.is_empty());
    }
    // An empty software version is valid and omitted from EVE.
    let run = run_pieces(SshConfig::default(), &[(C, b"SSH-2.0-\r\n")]);
    assert!(run.events.is_empty());
    assert_eq!(
        serde_json::to_value(one(&run)).unwrap(),
        serde_json::json!({"client": {"proto_version": "2.0"}})
    );
}

#[test]
fn long_banner_is_cut_and_flagged() {
    let mut banner = b"SSH-2.0-".to_vec();
    banner.extend(std::iter::repeat_n(b'A', 400));
    banner.extend_from_slice(b"\r\n");
    let kexinit = packet(&kexinit_payload(), 4);
    let pieces = vec![(C, [banner.as_slice(), &kexinit].concat())];
    let run = run_pieces(HASSH_ON, &as_refs(&pieces));
    assert_eq!(event_names(&run), [("LONG_BANNER", C)]);
    let h = one(&run).clone();
    assert_eq!(h.client_software().unwrap().len(), MAX_BANNER_LEN - 8);
    // Records after the long line are still parsed.
    assert_eq!(h.hassh(), Some(HAND_HASSH));
    for (max, seed) in [(1, 0), (0, 3), (255, 0), (256, 0)] {
        let r = run_split(HASSH_ON, &pieces, max, seed);
        assert_eq!(one(&r), &h);
        assert_eq!(event_names(&r), [("LONG_BANNER", C)]);
    }
    // Exactly at the limit counts as long (Suricata: len >= 256); one less does not.
    let mut at = b"SSH-2.0-".to_vec();
    at.resize(MAX_BANNER_LEN, b'B');
    at.extend_from_slice(b"\n");
    let run = run_pieces(SshConfig::default(), &[(C, &at)]);
    assert_eq!(event_names(&run), [("LONG_BANNER", C)]);
    let mut under = b"SSH-2.0-".to_vec();
    under.resize(MAX_BANNER_LEN - 1, b'B');
    under.extend_from_slice(b"\n");
    let run = run_pieces(SshConfig::default(), &[(C, &under)]);
    assert!(run.events.is_empty());
}

#[test]
fn line_endings() {
    // LF only, CR LF split across calls, and a lone CR (Suricata ends the line there).
    let kexinit = packet(&kexinit_payload(), 4);
    for banner in [b"SSH-2.0-x\n".as_slice(), b"SSH-2.0-x\r\n", b"SSH-2.0-x\r"] {
        let data = [banner, &kexinit].concat();
        for max in [1, 100, 1000] {
            let run = run_split(HASSH_ON, &[(C, data.clone())], max, 0);
            assert!(run.events.is_empty(), "{banner:?}");
            let h = one(&run);
            assert_eq!(h.client_software(), Some(b"x".as_slice()));
            assert_eq!(h.hassh(), Some(HAND_HASSH));
        }
    }
}

#[test]
fn invalid_record_length() {
    for len in [0u32, 1] {
        let mut data = b"SSH-2.0-x\r\n".to_vec();
        data.extend_from_slice(&len.to_be_bytes());
        data.extend_from_slice(&[0, 20, 0, 0, 0]);
        let run = run_pieces(HASSH_ON, &[(C, &data)]);
        assert_eq!(event_names(&run), [("INVALID_RECORD", C)]);
        assert_eq!(one(&run).client_software(), Some(b"x".as_slice()));
    }
}

#[test]
fn long_kexinit_is_skipped_and_flagged() {
    let mut data = b"SSH-2.0-x\r\n".to_vec();
    let big = MAX_KEXINIT_LEN + 2; // body = pkt_len - 2 = MAX_KEXINIT_LEN
    data.extend_from_slice(&big.to_be_bytes());
    data.extend_from_slice(&[4, 20]);
    data.extend(std::iter::repeat_n(0u8, MAX_KEXINIT_LEN as usize));
    // The next packet is parsed normally.
    data.extend(packet(&[21], 4));
    let run = run_pieces(HASSH_ON, &[(C, &data)]);
    assert_eq!(event_names(&run), [("LONG_KEX_RECORD", C)]);
    assert_eq!(one(&run).hassh(), None);
    // Without hassh nothing is buffered and nothing is flagged (as in Suricata).
    let run = run_pieces(SshConfig::default(), &[(C, &data)]);
    assert!(run.events.is_empty());
}

#[test]
fn truncated_and_malformed_kexinit() {
    let full = packet(&kexinit_payload(), 4);
    // Packet cut short: no hassh, record still at finish.
    let data = [b"SSH-2.0-x\r\n".as_slice(), full.get(..60).unwrap()].concat();
    let run = run_pieces(HASSH_ON, &[(C, &data)]);
    assert!(run.events.is_empty());
    assert_eq!(run.before_finish, 0);
    assert_eq!(one(&run).hassh(), None);
    // Complete packet whose name-list length overruns it: no hassh, keeps going.
    let mut payload = vec![20u8];
    payload.extend_from_slice(&[0; 16]);
    payload.extend_from_slice(&0xffff_fff0u32.to_be_bytes());
    let data = [
        b"SSH-2.0-x\r\n".as_slice(),
        &packet(&payload, 4),
        &packet(&[21], 4),
    ]
    .concat();
    let run = run_pieces(HASSH_ON, &[(C, &data)]);
    assert!(run.events.is_empty());
    assert_eq!(one(&run).hassh(), None);
}

#[test]
fn gap_stops_direction() {
    let mut p = SshParser::new(HASSH_ON);
    let mut out = AppOutput::default();
    p.parse(C, b"SSH-2.0-cli\r\n", 0, &mut out);
    p.parse(S, b"SSH-2.0-srv\r\n", 0, &mut out);
    p.gap(C, 100, &mut out);
    assert!(!p.is_done());
    assert!(out.records.is_empty());
    // Bytes after the gap are ignored.
    p.parse(C, b"\0\0\0\0\0\0garbage", 0, &mut out);
    assert!(out.events.is_empty());
    p.parse(S, &packet(&[21], 4), 0, &mut out);
    assert!(p.is_done());
    assert_eq!(out.records.len(), 1);
    out.clear();
    p.finish(0, &mut out);
    assert!(out.records.is_empty());
}

#[test]
fn end_of_stream_mid_banner() {
    let mut p = SshParser::new(SshConfig::default());
    let mut out = AppOutput::default();
    p.parse(C, b"SSH-2.0-cl", 0, &mut out);
    p.end_of_stream(C, 0, &mut out);
    p.end_of_stream(S, 0, &mut out);
    assert!(p.is_done());
    p.finish(0, &mut out);
    assert!(out.records.is_empty(), "nothing complete was parsed");
    assert!(out.events.is_empty());
}

#[test]
fn garbage_never_panics_and_is_split_invariant() {
    let mut rng = Rng(0x5eed);
    for round in 0..300 {
        let mut pieces = Vec::new();
        for _ in 0..1 + rng.below(4) {
            let dir = if rng.below(2) == 0 { C } else { S };
            let len = rng.below(300);
            let mut v: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            // Often start like SSH so the packet layer gets exercised.
            if rng.below(2) == 0 {
                v.splice(0..0, b"SSH-2.0-r\r\n".iter().copied());
            }
            if rng.below(3) == 0 {
                v.extend(packet(&kexinit_payload(), rng.below(8) as u8));
            }
            pieces.push((dir, v));
        }
        let cfg = SshConfig {
            hassh: round % 2 == 0,
        };
        let whole = run_pieces(cfg, &as_refs(&pieces));
        for r in &whole.records {
            serde_json::to_string(r).unwrap();
        }
        let bytes = run_split(cfg, &pieces, 1, 0);
        let random = run_split(cfg, &pieces, 0, round);
        assert!(whole.records.len() <= 1);
        assert_eq!(whole.records, bytes.records, "round {round}");
        assert_eq!(whole.records, random.records, "round {round}");
        assert_eq!(event_names(&whole), event_names(&bytes), "round {round}");
        assert_eq!(event_names(&whole), event_names(&random), "round {round}");
    }
}

#[test]
fn non_utf8_banner_is_escaped() {
    let run = run_pieces(SshConfig::default(), &[(C, b"SSH-2.0-caf\xe9\r\n")]);
    let json = serde_json::to_value(one(&run)).unwrap();
    assert_eq!(json["client"]["software_version"], "caf\\xe9");
}
