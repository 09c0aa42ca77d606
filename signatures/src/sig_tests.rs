use std::collections::HashMap;

use super::*;
use crate::parse::parse_rule;

/// Compiles one rule with the default variables; the error names its column.
fn compile_with_column(text: &str) -> Result<Signature, (SkipReason, Option<usize>)> {
    let vars = Vars::default();
    let mut names = HashMap::new();
    let mut ctx = CompileContext {
        vars: &vars,
        classifications: Classifications::bundled(),
        names: &mut names,
    };
    let raw = parse_rule(text).map_err(|e| (SkipReason::Invalid(e.to_string()), None))?;
    compile_at(&raw, &mut ctx, Origin::default())
}

fn compile_text(text: &str) -> Result<Signature, SkipReason> {
    compile_with_column(text).map_err(|(reason, _)| reason)
}

#[test]
fn http_rule_with_sticky_buffers() {
    let s = compile_text(r#"alert http $HOME_NET any -> $EXTERNAL_NET any (msg:"ET POLICY HTTP Request to a *.tk domain"; flow:established,to_server; http.host; content:".tk"; fast_pattern; endswith; content:!".tcl.tk"; content:!"tcl.tk"; depth:6; endswith; classtype:bad-unknown; sid:2012810; rev:12; metadata:created_at 2011_05_15, former_category POLICY;)"#).unwrap();
    assert_eq!(s.sid, 2012810);
    assert_eq!(s.rev, 12);
    assert_eq!(s.category, "Potentially Bad Traffic");
    assert_eq!(s.priority, 2);
    assert_eq!(s.app_proto.as_deref(), Some("http"));
    assert_eq!(s.lists.len(), 1);
    assert_eq!(s.lists[0].buffer, Buffer::HttpHost);
    assert_eq!(s.lists[0].side, Side::Request);
    assert_eq!(s.lists[0].matches.len(), 3);
    assert_eq!(s.prefilter, Some((0, 0)));
    assert_eq!(
        s.metadata,
        vec!["created_at 2011_05_15", "former_category POLICY"]
    );
    assert!(s.is_tx());
}

#[test]
fn legacy_modifiers_move_contents() {
    let s = compile_text(r#"alert tcp any any -> any any (msg:"x"; content:"GET"; http_method; content:"/a"; http_uri; content:"b"; distance:0; http_uri; sid:1;)"#).unwrap();
    assert_eq!(s.lists.len(), 2);
    assert_eq!(s.lists[0].buffer, Buffer::HttpMethod);
    assert_eq!(s.lists[1].buffer, Buffer::HttpUri);
    assert_eq!(s.lists[1].matches.len(), 2);
    assert_eq!(s.app_proto.as_deref(), Some("http"));
}

#[test]
fn file_data_direction_follows_flow() {
    let s = compile_text(r#"alert http any any -> any any (msg:"x"; flow:to_client,established; http.header; content:"attachment"; file.data; content:"MZ"; within:2; sid:2;)"#).unwrap();
    assert!(s.lists.iter().all(|l| l.side == Side::Response));
    // Longest content wins when none is chosen.
    assert_eq!(s.prefilter, Some((0, 0)));
}

#[test]
fn skip_reasons() {
    let unsupported = compile_text(
        r#"alert tcp any any -> any any (msg:"x"; content:"a"; xbits:set,a,track ip_src; sid:3;)"#,
    )
    .unwrap_err();
    assert!(
        matches!(unsupported, SkipReason::Unsupported(ref m) if m.contains("xbits")),
        "{unsupported:?}"
    );
    let invalid =
        compile_text(r#"alert tcp any any -> any any (msg:"x"; nocase; sid:4;)"#).unwrap_err();
    assert!(matches!(invalid, SkipReason::Invalid(_)));
    let nosid = compile_text(r#"alert tcp any any -> any any (msg:"x";)"#).unwrap_err();
    assert_eq!(nosid, SkipReason::Invalid("rule has no sid".into()));
    let mixed = compile_text(
        r#"alert tcp any any -> any any (msg:"x"; content:"a"; depth:4; distance:1; sid:5;)"#,
    )
    .unwrap_err();
    assert!(matches!(mixed, SkipReason::Invalid(_)));
    let class = compile_text(r#"alert tcp any any -> any any (msg:"x"; classtype:nope; sid:6;)"#)
        .unwrap_err();
    assert!(matches!(class, SkipReason::Invalid(ref m) if m.contains("classtype")));
}

#[test]
fn unparsed_protocols_wait_for_their_parser() {
    let s =
        compile_text(r#"alert smtp any any -> any any (msg:"x"; content:"HELO"; sid:7;)"#).unwrap();
    assert_eq!(s.waiting_for.as_deref(), Some("smtp parser"));
}

#[test]
fn numbers_and_flags() {
    assert_eq!(NumCmp::parse("<5").unwrap(), NumCmp::Lt(5));
    assert_eq!(NumCmp::parse("2<>9").unwrap(), NumCmp::Range(2, 9));
    assert!(NumCmp::parse("9<>2").is_err());
    assert!(NumCmp::Range(2, 9).test(3) && !NumCmp::Range(2, 9).test(9));
    let s = compile_text(r#"alert tcp any any -> any any (msg:"x"; flags:S,12; dsize:0; sid:8;)"#)
        .unwrap();
    assert!(matches!(
        s.header[0],
        HeaderMatch::TcpFlags {
            bits: 0x02,
            mode: FlagMode::Exact,
            ignore: 0xc0
        }
    ));
}

#[test]
fn flowbits_groups() {
    let s = compile_text(r#"alert tcp any any -> any any (msg:"x"; flowbits:isset,a|b; flowbits:set,c; flowbits:noalert; sid:9;)"#).unwrap();
    assert!(s.noalert);
    assert!(
        matches!(&s.flowbit_checks[0], FlowbitOp::IsSet { bits, all: false } if bits.len() == 2)
    );
    assert_eq!(s.flowbit_actions.len(), 1);
    assert!(
        compile_text(r#"alert tcp any any -> any any (msg:"x"; flowbits:set,a|b; sid:10;)"#)
            .is_err()
    );
}

#[test]
fn packet_keywords() {
    let s = compile_text(
        r#"alert pkthdr any any -> any any (msg:"x"; decode-event:ipv4.trunc_pkt; sid:11;)"#,
    )
    .unwrap();
    assert!(matches!(&s.header[0], HeaderMatch::DecodeEvent(e) if e == "decoder.ipv4.trunc_pkt"));
    let s = compile_text(r#"alert ipv6 any any -> any any (msg:"x"; vlan.id:200,-1; vlan.layers:>1; prefilter; sid:12;)"#).unwrap();
    assert!(
        s.header.contains(&HeaderMatch::IpVersion(6))
            || matches!(s.header.last(), Some(HeaderMatch::IpVersion(6)))
    );
    assert!(s.header.iter().any(|h| matches!(
        h,
        HeaderMatch::VlanId {
            layer: Some(-1),
            ..
        }
    )));
    assert!(
        compile_text(r#"alert ip any any -> any any (msg:"x"; vlan.id:1,top; sid:13;)"#).is_err()
    );
}

#[test]
fn errors_name_the_option_column() {
    let text = r#"alert tcp any any -> any any (msg:"x"; content:"a"; xbits:set,a; sid:1;)"#;
    let (_, column) = compile_with_column(text).unwrap_err();
    assert_eq!(column, Some(text.find("xbits").unwrap() + 1));
    let (_, column) =
        compile_with_column(r#"alert tcp $NOPE any -> any any (msg:"x"; sid:2;)"#).unwrap_err();
    assert_eq!(column, Some(11));
}

#[test]
fn header_buffers() {
    let s = compile_text(r#"alert tcp any any -> any any (msg:"x"; tcp.hdr; content:"|02 04 05 b4|"; content:"GET"; pkt_data; content:"/x"; sid:20;)"#).unwrap();
    assert_eq!(s.lists.len(), 2);
    assert_eq!(s.lists[0].buffer, Buffer::TcpHdr);
    assert_eq!(s.lists[0].matches.len(), 2);
    assert_eq!(s.lists[1].buffer, Buffer::Packet);
    // Header lists are packet lists: no transaction, no stream, no prefilter from them.
    assert!(!s.is_tx());
    assert!(s.packet_only);
    assert_eq!(s.prefilter, Some((1, 0)));
    for (kw, buffer) in [
        ("ipv4.hdr", Buffer::Ipv4Hdr),
        ("ipv6.hdr", Buffer::Ipv6Hdr),
        ("udp.hdr", Buffer::UdpHdr),
        ("icmpv4.hdr", Buffer::Icmpv4Hdr),
        ("icmpv6.hdr", Buffer::Icmpv6Hdr),
    ] {
        let s = compile_text(&format!(
            r#"alert ip any any -> any any (msg:"x"; {kw}; content:"|00|"; fast_pattern; sid:21;)"#
        ))
        .unwrap();
        assert_eq!(s.lists[0].buffer, buffer);
        assert_eq!(s.prefilter, None);
        assert!(s.packet_only);
    }
    // The rule's protocol must carry the header, as Suricata's setup demands.
    assert_eq!(
        compile_text(r#"alert udp any any -> any any (msg:"x"; tcp.hdr; content:"a"; sid:22;)"#)
            .unwrap_err(),
        SkipReason::Invalid("tcp.hdr on a rule for another protocol".into())
    );
    assert!(compile_text(
        r#"alert icmp any any -> any any (msg:"x"; icmpv6.hdr; content:"a"; sid:23;)"#
    )
    .is_ok());
    // Header buffers inspect packets: not with stream-only rules or transaction buffers.
    assert_eq!(
        compile_text(
            r#"alert tcp-stream any any -> any any (msg:"x"; tcp.hdr; content:"a"; sid:24;)"#
        )
        .unwrap_err(),
        SkipReason::Invalid("tcp.hdr inspects packets, the rule only the stream".into())
    );
    assert_eq!(
        compile_text(r#"alert http any any -> any any (msg:"x"; http.uri; content:"a"; tcp.hdr; content:"b"; sid:25;)"#)
            .unwrap_err(),
        SkipReason::Unsupported("tcp.hdr in a rule on application-layer buffers".into())
    );
    assert!(
        compile_text(r#"alert tcp any any -> any any (msg:"x"; tcp.hdr; sid:26;)"#).is_err(),
        "a sticky buffer needs a match"
    );
}

#[test]
fn legacy_certificate_keywords_are_contents_on_the_server_certificate() {
    let s = compile_text(r#"alert tls any any -> any any (msg:"x"; tls.subject:"CN=SELKS"; tls.issuerdn:!"O=Evil"; tls.fingerprint:"cc:aa"; sid:1;)"#).unwrap();
    let got: Vec<(Buffer, Side, &[u8], bool)> = s
        .lists
        .iter()
        .map(|l| match l.matches.as_slice() {
            [Match::Content(c)] => (l.buffer, l.side, c.pattern.as_slice(), c.negated),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                Buffer::TlsCertSubject,
                Side::Response,
                &b"CN=SELKS"[..],
                false
            ),
            (Buffer::TlsCertIssuer, Side::Response, &b"O=Evil"[..], true),
            (
                Buffer::TlsCertFingerprint,
                Side::Response,
                &b"cc:aa"[..],
                false
            ),
        ]
    );
    assert_eq!(s.app_proto.as_deref(), Some("tls"));
    // A later content does not join the keyword's list.
    let s = compile_text(
        r#"alert tls any any -> any any (msg:"x"; tls.subject:"CN=a"; content:"b"; sid:2;)"#,
    )
    .unwrap();
    assert_eq!(s.lists.len(), 2);
    assert_eq!(s.lists[1].buffer, Buffer::Packet);
    assert!(matches!(
        compile_text(r#"alert tls any any -> any any (msg:"x"; tls.subject:CN=a; sid:3;)"#),
        Err(SkipReason::Invalid(_))
    ));
}

#[test]
fn buffers_of_both_sides_stay_both_without_a_direction() {
    let s =
        compile_text(r#"alert ssh any any -> any any (msg:"x"; ssh.proto; content:"2.0"; sid:1;)"#)
            .unwrap();
    assert_eq!(s.lists[0].side, Side::Both);
    assert_eq!(s.tx_side(), Side::Both);
    let s = compile_text(r#"alert ssh any any -> any any (msg:"x"; flow:to_client; ssh.proto; content:"2.0"; sid:2;)"#).unwrap();
    assert_eq!(s.lists[0].side, Side::Response);
    // Another buffer's side decides.
    let s = compile_text(r#"alert ssh any any -> any any (msg:"x"; ssh.proto; content:"2.0"; ssh.hassh.server; content:"ab"; sid:3;)"#).unwrap();
    assert!(s.lists.iter().all(|l| l.side == Side::Response));
}

#[test]
fn transactional_rules_keep_each_buffers_side() {
    let s = compile_text(r#"alert tls any any => any any (msg:"x"; ja3s.hash; content:"5d79"; ja3.string; content:"771,"; sid:1;)"#).unwrap();
    assert!(s.transactional && !s.bidirectional);
    let sides: Vec<Side> = s.lists.iter().map(|l| l.side).collect();
    assert_eq!(sides, [Side::Response, Side::Request]);
    assert_eq!(s.tx_side(), Side::Response);
    let s = compile_text(r#"alert http any any => any any (msg:"x"; http.header; content:"a"; http.stat_code; content:"200"; file.data: to_client; content:"b"; sid:2;)"#).unwrap();
    let sides: Vec<Side> = s.lists.iter().map(|l| l.side).collect();
    assert_eq!(sides, [Side::Request, Side::Response, Side::Response]);
    assert!(matches!(
        compile_text(
            r#"alert http any any => any any (msg:"x"; http.uri: to_client; content:"a"; sid:5;)"#
        ),
        Err(SkipReason::Invalid(_))
    ));
    for bad in [
        r#"alert tls any any => any any (msg:"x"; flow:to_server; ja3.string; content:"a"; sid:3;)"#,
        r#"alert tcp any any => any any (msg:"x"; content:"a"; sid:4;)"#,
    ] {
        assert!(
            matches!(compile_text(bad), Err(SkipReason::Invalid(_))),
            "{bad}"
        );
    }
}

/// `app-layer-event` names a parser's event (any case, Suricata's older or newer name) and
/// makes the rule a transaction rule of that protocol; protocol detection's `applayer_*` events
/// stay with packets. Events Vigil never raises are skipped with the reason, not loaded to
/// never match.
#[test]
fn app_layer_event_rules() {
    let s = compile_text(
        r#"alert dns any any -> any any (msg:"z"; app-layer-event:dns.z_flag_set; sid:1;)"#,
    )
    .unwrap();
    assert_eq!(
        s.app_events,
        vec![AppEventMatch {
            proto: Some(BufferProto::Dns),
            name: "Z_FLAG_SET"
        }]
    );
    assert_eq!(s.tx_proto(), Some(BufferProto::Dns));
    assert_eq!(
        s.tx_side(),
        Side::Both,
        "no direction: each side on its own"
    );
    let s = compile_text(r#"alert dns any any -> any any (msg:"n"; flow:to_server; app-layer-event:dns.not_request; sid:2;)"#).unwrap();
    assert_eq!(s.app_events[0].name, "NOT_A_REQUEST");
    assert_eq!(s.tx_side(), Side::Request);
    let s = compile_text(r#"alert http any any -> any any (msg:"c"; flow:established,to_server; app-layer-event:HTTP.Request_Field_Missing_Colon; sid:3;)"#).unwrap();
    assert_eq!(s.app_events[0].name, "REQUEST_FIELD_MISSING_COLON");
    assert_eq!(s.ip_proto, IpProto::Tcp);
    let s = compile_text(r#"alert ip any any -> any any (msg:"m"; flow:established; app-layer-event:applayer_mismatch_protocol_both_directions; sid:4;)"#).unwrap();
    assert_eq!(s.app_events[0].proto, None);
    assert!(!s.is_tx(), "detection events are packet events");

    let reason = |text: &str| compile_text(text).unwrap_err();
    for (text, wants) in [
        (
            r#"alert http any any -> any any (msg:"x"; app-layer-event:http.request_header_repetition; sid:5;)"#,
            "Vigil's http parser does not raise this event",
        ),
        (
            r#"alert smb any any -> any any (msg:"x"; app-layer-event:smb.malformed_data; sid:6;)"#,
            "Vigil has no smb parser",
        ),
        (
            r#"alert ip any any -> any any (msg:"x"; app-layer-event:applayer_unexpected_protocol; sid:7;)"#,
            "protocol detection does not raise this event",
        ),
        (
            r#"alert http any any -> any any (msg:"x"; http.uri; content:"a"; app-layer-event:applayer_mismatch_protocol_both_directions; sid:8;)"#,
            "a packet's event (applayer_*, stream) together with a protocol's buffers",
        ),
    ] {
        let r = reason(text);
        assert!(
            matches!(&r, SkipReason::Unsupported(m) if m.contains(wants)),
            "{text}: {r:?}"
        );
    }
    assert!(matches!(
        reason(
            r#"alert dns any any -> any any (msg:"x"; app-layer-event:dns.z_flag_set; http.uri; content:"a"; sid:9;)"#
        ),
        SkipReason::Invalid(_)
    ));
}

/// `stream-event` names an event TCP reassembly raises on a packet; others are skipped.
#[test]
fn stream_event_rules() {
    let s = compile_text(
        r#"alert tcp any any -> any any (msg:"gap"; stream-event:reassembly_seq_gap; sid:1;)"#,
    )
    .unwrap();
    assert_eq!(
        s.app_events,
        vec![AppEventMatch {
            proto: None,
            name: "stream.reassembly_seq_gap"
        }]
    );
    assert!(!s.is_tx());
    let r = compile_text(
        r#"alert tcp any any -> any any (msg:"x"; stream-event:3whs_ack_in_wrong_dir; sid:2;)"#,
    )
    .unwrap_err();
    assert!(
        matches!(&r, SkipReason::Unsupported(m) if m.contains("reassembly does not raise")),
        "{r:?}"
    );
}

/// Legacy names Suricata 8 still reads: `uricontent` is a content in `http.uri`, and
/// `http_header_names`, `http_content_type` … are the sticky buffers' old names.
#[test]
fn legacy_uricontent_and_sticky_buffer_names() {
    let s = compile_text(
        r#"alert tcp any any -> any any (msg:"u"; uricontent:"images.gif"; nocase; sid:1;)"#,
    )
    .unwrap();
    assert_eq!(s.lists.len(), 1);
    assert_eq!(s.lists[0].buffer, Buffer::HttpUri);
    assert!(
        matches!(&s.lists[0].matches[0], Match::Content(c) if c.pattern == b"images.gif" && c.nocase)
    );
    assert_eq!(s.app_proto.as_deref(), Some("http"));
    let s = compile_text(r#"alert http any any -> any any (msg:"n"; flow:established,to_server; content:"GET"; http_method; http_header_names; content:"User-Agent"; sid:2;)"#).unwrap();
    let buffers: Vec<Buffer> = s.lists.iter().map(|l| l.buffer).collect();
    assert_eq!(buffers, [Buffer::HttpMethod, Buffer::HttpHeaderNames]);
    for (legacy, buffer) in [
        ("http_content_type", Buffer::HttpContentType),
        ("http_start", Buffer::HttpStart),
        ("http_protocol", Buffer::HttpProtocol),
        ("http_referer", Buffer::HttpReferer),
        ("http_accept", Buffer::HttpAccept),
        ("http_connection", Buffer::HttpConnection),
    ] {
        assert_eq!(Buffer::from_keyword(legacy), Some(buffer), "{legacy}");
    }
}
