use std::net::IpAddr;

use vigil_parsers::{DecodedPacket, TcpInfo, L4};

use super::*;

fn load(rules: &str) -> (RuleSet, LoadReport) {
    RuleSet::from_texts(
        vec![("test.rules".to_string(), rules.to_string())],
        RuleSetConfig::default(),
    )
    .unwrap()
}

struct Tx {
    host: Option<&'static [u8]>,
    ua: Option<&'static [u8]>,
    body: Option<&'static [u8]>,
}

impl TxBuffers for Tx {
    fn each(&mut self, buffer: Buffer, side: Side, f: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        let v = match (buffer, side) {
            (Buffer::HttpHost, Side::Request) => self.host,
            (Buffer::HttpUserAgent, Side::Request) => self.ua,
            (Buffer::FileData, Side::Response) => self.body,
            _ => None,
        };
        v.is_some_and(f)
    }
    fn has_side(&self, side: Side) -> bool {
        side == Side::Request || self.body.is_some()
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn request_ends() -> Endpoints {
    Endpoints {
        src: ip("10.0.0.5"),
        dst: ip("93.184.216.34"),
        sport: 40000,
        dport: 80,
        ip_proto: 6,
    }
}

const RULES: &str = r#"
alert http $HOME_NET any -> $EXTERNAL_NET any (msg:"curl"; flow:established,to_server; http.user_agent; content:"curl/"; nocase; startswith; classtype:attempted-recon; sid:1; rev:1;)
alert http $HOME_NET any -> $EXTERNAL_NET any (msg:"tk"; flow:established,to_server; http.host; content:".tk"; fast_pattern; endswith; content:!"tcl.tk"; depth:6; endswith; sid:2;)
alert http $EXTERNAL_NET any -> $HOME_NET any (msg:"MZ"; flow:established,to_client; file.data; content:"MZ"; within:2; sid:3;)
alert http $HOME_NET any -> $EXTERNAL_NET any (msg:"top limited"; flow:established,to_server; threshold:type limit, track by_src, count 1, seconds 30; http.host; content:".top"; fast_pattern; pcre:"/^(\x3a\d{1,5})?$/R"; sid:4;)
alert tcp any any -> any any (msg:"payload"; flow:established; content:"secret"; offset:2; depth:10; sid:5;)
alert tcp any any -> any 80 (msg:"syn"; flags:S; sid:6;)
alert smtp any any -> any any (msg:"smtp"; content:"HELO"; sid:7;)
alert tcp any any -> any any (msg:"bad"; content:"x"; xbits:set,a,track ip_src; sid:8;)
"#;

#[test]
fn loads_and_reports() {
    let (set, report) = load(RULES);
    assert_eq!(report.loaded, 7);
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].sid, Some(8));
    assert_eq!(report.skipped[0].line, 9);
    assert_eq!(report.waiting, vec![(7, "smtp parser".to_string())]);
    assert_eq!(set.len(), 7);
}

fn detect_tx(set: &RuleSet, det: &mut Detector, tx: &mut Tx, ts_s: u64) -> Vec<u32> {
    let mut hits = Vec::new();
    let mut vars = FlowVars::default();
    set.detect_tx(
        det,
        BufferProto::Http,
        tx,
        &request_ends(),
        true,
        &mut vars,
        ts_s * 1_000_000_000,
        1,
        &mut hits,
    );
    hits.iter().map(|h| set.sig(h.sig).sid).collect()
}

#[test]
fn transaction_rules_match_their_buffers() {
    let (set, _) = load(RULES);
    let mut det = set.new_detector().unwrap();
    let mut tx = Tx {
        host: Some(b"evil.tk"),
        ua: Some(b"Curl/7.1"),
        body: Some(b"MZ\x90\x00"),
    };
    let mut sids = detect_tx(&set, &mut det, &mut tx, 1);
    sids.sort();
    assert_eq!(sids, vec![1, 2, 3]);

    // Negated content with depth+endswith: the host "tcl.tk" is excluded.
    let mut tx = Tx {
        host: Some(b"tcl.tk"),
        ua: Some(b"Mozilla curl/"),
        body: Some(b"xMZ"),
    };
    assert!(detect_tx(&set, &mut det, &mut tx, 2).is_empty());
}

#[test]
fn threshold_limits_per_source() {
    let (set, _) = load(RULES);
    let mut det = set.new_detector().unwrap();
    let mut alerts = 0;
    for (t, host) in [
        (10, &b"a.top"[..]),
        (11, b"b.top:8080"),
        (50, b"c.top"),
        (51, b"d.topx"),
    ] {
        let mut tx = Tx {
            host: Some(host),
            ua: None,
            body: None,
        };
        alerts += detect_tx(&set, &mut det, &mut tx, t).len();
    }
    // The first and the one after the 30 s window alert; "d.topx" fails the pcre.
    assert_eq!(alerts, 2);
}

fn tcp_packet(flags: u8, dport: u16) -> DecodedPacket {
    let mut p = DecodedPacket::default();
    p.l3.version = 4;
    p.l3.src = ip("10.0.0.5");
    p.l3.dst = ip("10.0.0.6");
    p.l3.proto = 6;
    p.l4 = L4::Tcp(TcpInfo {
        src_port: 40000,
        dst_port: dport,
        flags,
        ..TcpInfo::default()
    });
    p
}

fn detect_pkt(
    set: &RuleSet,
    det: &mut Detector,
    pkt: &DecodedPacket,
    payload: &[u8],
    established: bool,
) -> Vec<u32> {
    let (sport, dport) = pkt.ports().unwrap();
    let ends = Endpoints {
        src: pkt.l3.src,
        dst: pkt.l3.dst,
        sport,
        dport,
        ip_proto: 6,
    };
    let view = FlowView {
        established,
        to_server: true,
        app_proto: None,
        inspect_payload: true,
        app_events: &[],
    };
    let mut hits = Vec::new();
    let mut vars = FlowVars::default();
    set.detect_packet(
        det,
        pkt,
        &[],
        payload,
        &ends,
        Some(view),
        None,
        Some(&mut vars),
        0,
        1,
        &mut hits,
    );
    hits.iter().map(|h| set.sig(h.sig).sid).collect()
}

#[test]
fn packet_rules() {
    let (set, _) = load(RULES);
    let mut det = set.new_detector().unwrap();
    let pkt = tcp_packet(0x18, 5555);
    assert_eq!(
        detect_pkt(&set, &mut det, &pkt, b"xxsecretyy", true),
        vec![5]
    );
    // Outside offset/depth, or not established: no match.
    assert!(detect_pkt(&set, &mut det, &pkt, b"xxxxxxxxsecret", true).is_empty());
    assert!(detect_pkt(&set, &mut det, &pkt, b"xxsecretyy", false).is_empty());
    // A header-only rule is evaluated without a payload.
    let syn = tcp_packet(0x02, 80);
    assert_eq!(detect_pkt(&set, &mut det, &syn, b"", false), vec![6]);
}

#[test]
fn flowbits_across_packets() {
    let rules = r#"
alert tcp any any -> any any (msg:"set"; content:"login"; flowbits:set,seen; flowbits:noalert; sid:10;)
alert tcp any any -> any any (msg:"check"; content:"secret"; flowbits:isset,seen; sid:11;)
"#;
    let (set, _) = load(rules);
    let mut det = set.new_detector().unwrap();
    let pkt = tcp_packet(0x18, 23);
    let ends = Endpoints {
        src: pkt.l3.src,
        dst: pkt.l3.dst,
        sport: 40000,
        dport: 23,
        ip_proto: 6,
    };
    let view = FlowView {
        established: true,
        to_server: true,
        app_proto: None,
        inspect_payload: true,
        app_events: &[],
    };
    let mut vars = FlowVars::default();
    let mut hits = Vec::new();
    set.detect_packet(
        &mut det,
        &pkt,
        &[],
        b"secret",
        &ends,
        Some(view),
        None,
        Some(&mut vars),
        0,
        1,
        &mut hits,
    );
    assert!(hits.is_empty());
    set.detect_packet(
        &mut det,
        &pkt,
        &[],
        b"login",
        &ends,
        Some(view),
        None,
        Some(&mut vars),
        0,
        1,
        &mut hits,
    );
    assert!(hits.is_empty(), "noalert");
    set.detect_packet(
        &mut det,
        &pkt,
        &[],
        b"secret",
        &ends,
        Some(view),
        None,
        Some(&mut vars),
        0,
        1,
        &mut hits,
    );
    assert_eq!(hits.len(), 1);
    assert_eq!(set.sig(hits[0].sig).sid, 11);
}

fn detect_stream(
    set: &RuleSet,
    det: &mut Detector,
    payload: &[u8],
    window: StreamWindow<'_>,
) -> Vec<(u32, bool)> {
    let pkt = tcp_packet(0x18, 7777);
    let ends = Endpoints {
        src: pkt.l3.src,
        dst: pkt.l3.dst,
        sport: 40000,
        dport: 7777,
        ip_proto: 6,
    };
    let view = FlowView {
        established: true,
        to_server: true,
        app_proto: None,
        inspect_payload: true,
        app_events: &[],
    };
    let mut hits = Vec::new();
    let mut vars = FlowVars::default();
    set.detect_packet(
        det,
        &pkt,
        &[],
        payload,
        &ends,
        Some(view),
        Some(window),
        Some(&mut vars),
        0,
        1,
        &mut hits,
    );
    hits.iter()
        .map(|h| (set.sig(h.sig).sid, h.stream))
        .collect()
}

#[test]
fn stream_inspection_of_packet_rules() {
    let rules = r#"
alert tcp any any -> any any (content:"EVIL"; sid:1;)
alert tcp-pkt any any -> any any (content:"EVIL"; sid:2;)
alert tcp-stream any any -> any any (content:"EVIL"; sid:3;)
alert tcp any any -> any any (content:"GET"; depth:3; content:"EVIL"; distance:0; sid:4;)
alert tcp any any -> any any (content:"old"; sid:5;)
"#;
    let (set, report) = load(rules);
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    let mut det = set.new_detector().unwrap();
    // "EVIL" split over the boundary between bytes seen before and this packet's.
    let stream = b"GET old EV";
    let mut bytes = stream.to_vec();
    bytes.extend_from_slice(b"IL!");
    let w = StreamWindow {
        bytes: &bytes,
        base: 0,
        new_from: stream.len(),
    };
    let mut hits = detect_stream(&set, &mut det, b"IL!", w);
    hits.sort();
    // Stream matches, never the earlier bytes' own "old" again, not the packet-only rule.
    assert_eq!(hits, vec![(1, true), (3, true), (4, true)]);
    // The same bytes as a later piece of the stream: `depth` counts from the stream's start.
    let w = StreamWindow { base: 100, ..w };
    let mut hits = detect_stream(&set, &mut det, b"IL!", w);
    hits.sort();
    assert_eq!(hits, vec![(1, true), (3, true)]);
    // Wholly in the packet: the packet match stands (once), the stream-only rule sees it in
    // the stream.
    let w = StreamWindow {
        bytes: b"xxEVIL",
        base: 0,
        new_from: 2,
    };
    let mut hits = detect_stream(&set, &mut det, b"EVIL", w);
    hits.sort();
    assert_eq!(hits, vec![(1, false), (2, false), (3, true)]);
}

static RELEASES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn count_release() {
    RELEASES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

#[test]
fn freed_memory_is_released_around_a_compile_only() {
    let dir = tempfile::tempdir().unwrap();
    let rules = "alert tcp any any -> any 80 (msg:\"a\"; content:\"GET /x\"; sid:1;)\n\
                 alert http any any -> any any (msg:\"b\"; http.host; content:\"evil\"; sid:2;)\n";
    let load_cached = || {
        let config = RuleSetConfig {
            cache_dir: Some(dir.path().to_path_buf()),
            release_freed_memory: Some(count_release),
            ..RuleSetConfig::default()
        };
        RuleSet::from_texts(vec![("t.rules".into(), rules.into())], config).unwrap()
    };
    // A cache miss compiles: once before the compiler's peak, once before the cache is encoded.
    let (_, report) = load_cached();
    assert!(!report.cache_hit);
    assert_eq!(RELEASES.load(std::sync::atomic::Ordering::SeqCst), 2);
    // A hit compiles nothing, so there is nothing to hand back.
    let (_, report) = load_cached();
    assert!(report.cache_hit);
    assert_eq!(RELEASES.load(std::sync::atomic::Ordering::SeqCst), 2);
}

/// An IPv4 packet (no link layer) with `options` and a transport `l4` of protocol `proto`.
fn ipv4_bytes(proto: u8, options: &[u8], l4: &[u8]) -> Vec<u8> {
    let hlen = 20 + options.len();
    let total = (hlen + l4.len()) as u16;
    let mut p = vec![0x40 | (hlen / 4) as u8, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0, 10, 0, 0, 5, 10, 0, 0, 6]);
    p.extend_from_slice(options);
    p.extend_from_slice(l4);
    p
}

fn ipv6_bytes(nh: u8, rest: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(rest.len() as u16).to_be_bytes());
    p.extend_from_slice(&[nh, 64]);
    p.extend_from_slice(&[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    p.extend_from_slice(&[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    p.extend_from_slice(rest);
    p
}

/// Decodes an IP packet and runs the packet rules on it (outside a flow); sids that matched.
fn detect_ip(set: &RuleSet, det: &mut Detector, bytes: &[u8]) -> Vec<u32> {
    let mut pkt = DecodedPacket::default();
    vigil_parsers::decode(vigil_parsers::LinkType::Raw, bytes, &mut pkt);
    let (sport, dport) = pkt.ports().unwrap_or((0, 0));
    let ends = Endpoints {
        src: pkt.l3.src,
        dst: pkt.l3.dst,
        sport,
        dport,
        ip_proto: pkt.l3.proto,
    };
    let start = pkt.payload_offset as usize;
    let payload = &bytes[start..start + pkt.payload_len as usize];
    let mut hits = Vec::new();
    set.detect_packet(
        det, &pkt, bytes, payload, &ends, None, None, None, 0, 0, &mut hits,
    );
    let mut sids: Vec<u32> = hits.iter().map(|h| set.sig(h.sig).sid).collect();
    sids.sort_unstable();
    sids
}

#[test]
fn header_buffers_inspect_the_packet_headers() {
    let rules = r#"
alert tcp any any -> any any (msg:"mss 1460"; tcp.hdr; content:"|02 04 05 b4|"; sid:30;)
alert ip any any -> any any (msg:"router alert option"; ipv4.hdr; content:"|94 04 00 00|"; offset:20; bsize:24; sid:31;)
alert udp any any -> any any (msg:"to port 53"; udp.hdr; content:"|00 35|"; offset:2; depth:2; bsize:8; sid:32;)
alert icmp any any -> any any (msg:"advertises 10.0.0.1"; icmpv4.hdr; content:"|0a 00 00 01|"; offset:8; bsize:16; sid:33;)
alert ip any any -> any any (msg:"hop-by-hop to udp"; ipv6.hdr; content:"|11 00|"; offset:40; depth:2; bsize:48; sid:34;)
alert icmp any any -> any any (msg:"echo request"; icmpv6.hdr; content:"|80 00|"; depth:2; bsize:8; sid:35;)
alert tcp any any -> any any (msg:"mss and GET"; tcp.hdr; content:"|02 04 05 b4|"; pkt_data; content:"GET"; depth:3; sid:36;)
alert tcp any any -> any any (msg:"payload is not header"; tcp.hdr; content:"GET"; sid:37;)
alert tcp any any -> any any (msg:"transformed header"; tcp.hdr; to_lowercase; content:"ab"; depth:2; sid:38;)
"#;
    let (set, report) = load(rules);
    assert_eq!(report.loaded, 9, "{:?}", report.skipped);
    let mut det = set.new_detector().unwrap();

    // IPv4 with a router-alert option; TCP SYN from port 0x4142 ("AB") with an MSS option
    // and a payload.
    let mut tcp = vec![
        0x41, 0x42, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x60, 0x02, 0xff, 0xff,
    ];
    tcp.extend_from_slice(&[0, 0, 0, 0, 2, 4, 5, 0xb4]);
    tcp.extend_from_slice(b"GET / HTTP/1.0\r\n");
    let pkt = ipv4_bytes(6, &[0x94, 4, 0, 0], &tcp);
    assert_eq!(detect_ip(&set, &mut det, &pkt), vec![30, 31, 36, 38]);
    // Without the option the IPv4 header is 20 bytes; without the payload only the header rule.
    let pkt = ipv4_bytes(6, &[], &tcp[..24]);
    assert_eq!(detect_ip(&set, &mut det, &pkt), vec![30, 38]);

    let pkt = ipv4_bytes(17, &[], &[0x04, 0xd2, 0, 53, 0, 9, 0, 0, b'q']);
    assert_eq!(detect_ip(&set, &mut det, &pkt), vec![32]);

    // Router advertisement with one entry of two words: a 16-byte header.
    let ra = [9, 0, 0, 0, 1, 2, 0, 30, 10, 0, 0, 1, 0, 0, 0, 0];
    assert_eq!(
        detect_ip(&set, &mut det, &ipv4_bytes(1, &[], &ra)),
        vec![33]
    );
    // Cut before its entry, the header is 8 bytes and holds no address.
    assert!(detect_ip(&set, &mut det, &ipv4_bytes(1, &[], &ra[..12])).is_empty());

    // IPv6 with a hop-by-hop header (8 bytes, next header UDP) before UDP to port 54.
    let mut hbh = vec![17, 0, 1, 4, 0, 0, 0, 0];
    hbh.extend_from_slice(&[0x04, 0xd2, 0, 54, 0, 9, 0, 0, b'q']);
    assert_eq!(detect_ip(&set, &mut det, &ipv6_bytes(0, &hbh)), vec![34]);
    let echo = [128, 0, 0, 0, 0, 1, 0, 1, 0x80, 0];
    assert_eq!(detect_ip(&set, &mut det, &ipv6_bytes(58, &echo)), vec![35]);
}

#[test]
fn busy_ports_get_the_merged_groups_before_ports_with_more_rules() {
    // 81 is named by more rules than 8080, but 8080 carries HTTP on a typical network, so it
    // gets a merged group first; the third merged group goes to the port most rules name.
    let (rs, _) = load(
        r#"
alert tcp any any -> any any (msg:"any port"; flow:to_server; content:"common"; sid:1;)
alert tcp any any -> any 81 (msg:"81 a"; flow:to_server; content:"eighty-one a"; sid:2;)
alert tcp any any -> any 81 (msg:"81 b"; flow:to_server; content:"eighty-one b"; sid:3;)
alert tcp any any -> any [81,8080] (msg:"both"; flow:to_server; content:"both ports"; sid:4;)
alert tcp any any -> any 80 (msg:"80"; flow:to_server; content:"eighty"; sid:5;)
alert tcp any any -> any 82 (msg:"82"; flow:to_server; content:"eighty-two"; sid:6;)
"#,
    );
    let map = &rs.packet.map;
    let (merged_8080, second) = map.groups(Class::Tcp, true, 8080).unwrap();
    assert_eq!(second, None, "8080's packets take one scan");
    let sids = |g: u32| -> Vec<u32> {
        map.groups[g as usize]
            .iter()
            .map(|&id| rs.sigs[id as usize].sid)
            .collect()
    };
    assert_eq!(sids(merged_8080), [1, 4]);
    assert_eq!(map.groups(Class::Tcp, true, 80).unwrap().1, None);
    let (merged_81, second) = map.groups(Class::Tcp, true, 81).unwrap();
    assert_eq!((sids(merged_81), second), (vec![1, 2, 3, 4], None));
    let (common, own_82) = map.groups(Class::Tcp, true, 82).unwrap();
    assert_eq!(sids(common), [1]);
    assert_eq!(sids(own_82.unwrap()), [6]);
}

#[test]
fn rules_on_an_ip_protocol_are_candidates_only_for_packets_of_its_transport() {
    let rules = r#"
alert ip any any -> any any (msg:"esp"; ip_proto:50; sid:40;)
alert ip any any -> any any (msg:"not tcp"; ip_proto:!6; sid:41;)
alert ip any any -> any any (msg:"udp by number"; ip_proto:17; content:"q"; sid:42;)
"#;
    let (set, report) = load(rules);
    assert_eq!(report.loaded, 3, "{:?}", report.skipped);
    let mut det = set.new_detector().unwrap();
    let tcp = [
        0x41, 0x42, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
    ];
    assert!(detect_ip(&set, &mut det, &ipv4_bytes(6, &[], &tcp)).is_empty());
    assert_eq!(det.counters.candidates, 0, "no rule is a candidate for TCP");
    let udp = [0x04, 0xd2, 0, 53, 0, 9, 0, 0, b'q'];
    assert_eq!(
        detect_ip(&set, &mut det, &ipv4_bytes(17, &[], &udp)),
        vec![41, 42]
    );
    let esp = [0, 0, 1, 0, 0, 0, 0, 1];
    assert_eq!(
        detect_ip(&set, &mut det, &ipv4_bytes(50, &[], &esp)),
        vec![40, 41]
    );
}
