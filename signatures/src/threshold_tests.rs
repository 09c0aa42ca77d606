//! Unit tests of `threshold`: parsing, `threshold.config`, and hand-worked behaviour tables.
//!
//! Times in the tables are seconds (fractions allowed) after `T0`, an arbitrary non-zero epoch.

use super::*;
use Verdict::{Alert, Discard, Suppress};

const T0: u64 = 1_700_000_000;

fn ns(t: f64) -> u64 {
    T0 * NS_PER_SEC + (t * 1e9).round() as u64
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn thr(v: &str) -> ThresholdSpec {
    ThresholdSpec::parse_threshold(v).unwrap_or_else(|e| panic!("{v}: {e}"))
}

fn df(v: &str) -> ThresholdSpec {
    ThresholdSpec::parse_detection_filter(v).unwrap_or_else(|e| panic!("{v}: {e}"))
}

fn cfg(text: &str) -> ThresholdConfig {
    ThresholdConfig::parse(text, "threshold.config", None).unwrap_or_else(|e| panic!("{e}"))
}

const A: &str = "10.0.0.1";
const B: &str = "10.0.0.2";
const C: &str = "10.0.0.3";

/// Runs `(time, expected)` rows for one signature, packets A -> B on flow 1.
fn table(sig: &SigThresholds, rows: &[(f64, Verdict)]) {
    let mut st = ThresholdState::new(ThresholdLimits::default());
    for (i, &(t, want)) in rows.iter().enumerate() {
        let r = SigRef {
            gid: 1,
            sid: 1000,
            rev: 1,
            thresholds: sig,
        };
        let got = st.check(r, ip(A), ip(B), 1, ns(t));
        assert_eq!(got, want, "row {i}: t={t}");
    }
}

fn rule(spec: ThresholdSpec) -> SigThresholds {
    SigThresholds::from_rule(Some(spec))
}

// ---------------------------------------------------------------------------------------------
// Keyword parsing
// ---------------------------------------------------------------------------------------------

#[test]
fn parse_threshold_any_order_and_spacing() {
    let want = ThresholdSpec {
        kind: ThresholdKind::Limit,
        track: Track::BySrc,
        count: 1,
        seconds: 30,
    };
    assert_eq!(thr("type limit, track by_src, count 1, seconds 30"), want);
    assert_eq!(thr("seconds 30,count 1,track  by_src,type limit"), want);
    assert_eq!(
        thr("  type\tlimit ,track by_src , count 1,seconds 30  "),
        want
    );
    assert_eq!(
        thr("type both, track by_dst, count 10, seconds 60").kind,
        ThresholdKind::Both
    );
    let t = thr("type threshold, track by_flow, count 5, seconds 360");
    assert_eq!((t.kind, t.track), (ThresholdKind::Threshold, Track::ByFlow));
    assert_eq!(
        thr("count 10, track by_rule, seconds 60, type limit").track,
        Track::ByRule
    );
    assert_eq!(
        thr("count 10, track by_both, seconds 60, type limit").track,
        Track::ByBoth
    );
    // As Suricata's parser: zero values are not refused for threshold.
    assert_eq!(thr("type limit, track by_src, count 0, seconds 0").count, 0);
}

#[test]
fn parse_backoff() {
    let t = thr("type backoff, track by_flow, count 1, multiplier 10");
    assert_eq!(t.kind, ThresholdKind::Backoff { multiplier: 10 });
    assert_eq!((t.count, t.seconds), (1, 0));
    use KeywordErrorKind as K;
    for (v, kind) in [
        (
            "type backoff, track by_src, count 1, multiplier 10",
            K::Invalid("type backoff is only supported with track by_flow"),
        ),
        (
            "type backoff, track by_flow, count 1, seconds 10",
            K::Invalid("type backoff takes `multiplier`, not `seconds`"),
        ),
        (
            "type backoff, track by_flow, count 1",
            K::Missing("multiplier"),
        ),
        (
            "type backoff, track by_flow, count 1, multiplier 0",
            K::InvalidValue {
                option: "multiplier".into(),
                value: "0".into(),
            },
        ),
        (
            "type backoff, track by_flow, count 0, multiplier 2",
            K::Invalid("type backoff needs a count of at least 1"),
        ),
        (
            "type limit, track by_flow, count 1, multiplier 2",
            K::Invalid("`multiplier` is only valid with type backoff"),
        ),
    ] {
        let e = ThresholdSpec::parse_threshold(v).unwrap_err();
        assert_eq!(e.keyword, Keyword::Threshold);
        assert_eq!(e.kind, kind, "{v}");
    }
}

#[test]
fn parse_threshold_errors() {
    use KeywordErrorKind as K;
    let cases: &[(&str, K)] = &[
        (
            "type any, track by_dst, count 10, seconds 60",
            K::InvalidValue {
                option: "type".into(),
                value: "any".into(),
            },
        ),
        (
            "count 10, track by_dst, seconds 60, type both, count 10",
            K::Duplicate("count".into()),
        ),
        (
            "type limit, track by_either, count 1, seconds 1",
            K::InvalidValue {
                option: "track".into(),
                value: "by_either".into(),
            },
        ),
        (
            "type limit, track by_src, count x, seconds 1",
            K::InvalidValue {
                option: "count".into(),
                value: "x".into(),
            },
        ),
        (
            "type limit, track by_src, count -1, seconds 1",
            K::InvalidValue {
                option: "count".into(),
                value: "-1".into(),
            },
        ),
        (
            "type limit, track by_src, count 4294967296, seconds 1",
            K::InvalidValue {
                option: "count".into(),
                value: "4294967296".into(),
            },
        ),
        ("type limit, track by_src, count 1", K::Missing("seconds")),
        ("track by_src, count 1, seconds 1", K::Missing("type")),
        ("type limit, count 1, seconds 1", K::Missing("track")),
        ("type limit, track by_src, seconds 1", K::Missing("count")),
        (
            "type limit, track by_src, count 1, seconds 1, foo 2",
            K::UnknownOption("foo".into()),
        ),
        (
            "type limit, track by_src, count 1, seconds 1,",
            K::Malformed(String::new()),
        ),
        (
            "type limit track by_src, count 1, seconds 1",
            K::Malformed("type limit track by_src".into()),
        ),
        (
            "Type limit, track by_src, count 1, seconds 1",
            K::UnknownOption("Type".into()),
        ),
        (
            "type LIMIT, track by_src, count 1, seconds 1",
            K::InvalidValue {
                option: "type".into(),
                value: "LIMIT".into(),
            },
        ),
        ("", K::Malformed(String::new())),
    ];
    for (v, kind) in cases {
        let e = ThresholdSpec::parse_threshold(v).unwrap_err();
        assert_eq!(&e.kind, kind, "{v:?}");
    }
    let e =
        ThresholdSpec::parse_threshold("type any, track by_dst, count 10, seconds 60").unwrap_err();
    assert_eq!(e.to_string(), "threshold: invalid value `any` for `type`");
}

#[test]
fn parse_detection_filter() {
    let d = df("track by_src,count 15,seconds 2");
    assert_eq!(
        d,
        ThresholdSpec {
            kind: ThresholdKind::DetectionFilter,
            track: Track::BySrc,
            count: 15,
            seconds: 2
        }
    );
    assert_eq!(df("seconds 60, count 10, track by_dst").track, Track::ByDst);
    assert_eq!(
        df("track by_flow, count 1, seconds 60").track,
        Track::ByFlow
    );
    assert_eq!(
        df("track by_rule, count 1, seconds 60").track,
        Track::ByRule
    );
    use KeywordErrorKind as K;
    let cases: &[(&str, K)] = &[
        (
            "track both,count 10,seconds 60",
            K::InvalidValue {
                option: "track".into(),
                value: "both".into(),
            },
        ),
        (
            "count 10, track by_dst, seconds 60, count 10",
            K::Duplicate("count".into()),
        ),
        (
            "count 10, track by_dst, seconds 0",
            K::InvalidValue {
                option: "seconds".into(),
                value: "0".into(),
            },
        ),
        (
            "count 0, track by_dst, seconds 5",
            K::InvalidValue {
                option: "count".into(),
                value: "0".into(),
            },
        ),
        (
            "type limit, track by_dst, count 1, seconds 5",
            K::UnknownOption("type".into()),
        ),
        ("track by_dst, count 10", K::Missing("seconds")),
        (
            "track by_dst, count 10, seconds 60, unique_on dst_port",
            K::Unsupported("`unique_on` (distinct port counting)"),
        ),
    ];
    for (v, kind) in cases {
        let e = ThresholdSpec::parse_detection_filter(v).unwrap_err();
        assert_eq!(e.keyword, Keyword::DetectionFilter);
        assert_eq!(&e.kind, kind, "{v}");
    }
}

#[test]
fn ipnet_basics() {
    let n: IpNet = "10.1.2.3/8".parse().unwrap();
    assert_eq!(n.to_string(), "10.0.0.0/8");
    assert!(n.contains(ip("10.255.0.1")));
    assert!(!n.contains(ip("11.0.0.1")));
    assert!(!n.contains(ip("::ffff:10.0.0.1")));
    let n: IpNet = "192.168.0.0/255.255.0.0".parse().unwrap();
    assert_eq!(n.prefix(), 16);
    assert!("192.168.0.0/255.0.255.0".parse::<IpNet>().is_err());
    assert!("10.0.0.0/33".parse::<IpNet>().is_err());
    let n: IpNet = "2001:db8::/32".parse().unwrap();
    assert!(n.contains(ip("2001:db8:1::5")));
    assert!(!n.contains(ip("2001:db9::5")));
    assert!(!n.contains(ip("10.0.0.1")));
    let h: IpNet = "fe80::1".parse().unwrap();
    assert_eq!(h.prefix(), 128);
    let any: IpNet = "0.0.0.0/0".parse().unwrap();
    assert!(any.contains(ip("255.255.255.255")));
    assert!("1.2.3".parse::<IpNet>().is_err());
}

// ---------------------------------------------------------------------------------------------
// threshold.config
// ---------------------------------------------------------------------------------------------

#[test]
fn config_parses_every_form() {
    let text = "\
# Thresholding
event_filter gen_id 1, sig_id 10, type limit, track by_src, count 1, seconds 60
threshold gen_id 1, sig_id 100, type both, track by_dst, count 10, seconds 60

   # indented comment
threshold gen_id 1, sig_id 101, type threshold, track by_flow, count 3, seconds 5
rate_filter gen_id 1, sig_id 888, track by_src, count 10, seconds 60, new_action drop, timeout 300
rate_filter gen_id 1, sig_id 1000, track by_rule, count 100, seconds 60, new_action alert, timeout 30
rate_filter gen_id 1, sig_id 10000, track by_both, count 1000, seconds 60, new_action reject, timeout 21
rate_filter gen_id 1, sig_id 10001, track by_src, count 1, seconds 1, new_action sdrop, timeout 1
suppress gen_id 1, sig_id 2002087
suppress gen_id 1, sig_id 2003614, track by_src, ip 217.110.97.128/25
suppress gen_id 1, sig_id 2003614, track by_either, ip [192.168.0.0/16,10.0.0.0/8, 172.16.0.0/12]
suppress gen_id 0, sig_id 0, track by_dst, ip fe80::/10
thresholdgen_id 1,sig_id 5,type limit,track by_src,count 2,seconds 3
";
    let c = cfg(text);
    let e = c.entries();
    assert_eq!(e.len(), 12);
    assert_eq!(e[0].line, 2);
    assert_eq!((e[0].gid, e[0].sid), (1, 10));
    assert_eq!(
        e[0].directive,
        ConfigDirective::Threshold(ThresholdSpec {
            kind: ThresholdKind::Limit,
            track: Track::BySrc,
            count: 1,
            seconds: 60
        })
    );
    assert_eq!(e[2].line, 6);
    assert!(matches!(
        e[2].directive,
        ConfigDirective::Threshold(ThresholdSpec {
            track: Track::ByFlow,
            ..
        })
    ));
    assert_eq!(
        e[3].directive,
        ConfigDirective::RateFilter(ThresholdSpec {
            kind: ThresholdKind::Rate {
                new_action: RateAction::Drop,
                timeout: 300
            },
            track: Track::BySrc,
            count: 10,
            seconds: 60
        })
    );
    assert_eq!(e[7].directive, ConfigDirective::Suppress(None));
    let ConfigDirective::Suppress(Some(s)) = &e[9].directive else {
        panic!()
    };
    assert_eq!(s.track, SuppressTrack::ByEither);
    assert_eq!(s.addrs.nets().len(), 3);
    assert!(s.matches(ip("1.1.1.1"), ip("10.9.9.9")));
    assert!(!s.matches(ip("1.1.1.1"), ip("11.9.9.9")));
    assert_eq!((e[10].gid, e[10].sid), (0, 0));
    assert_eq!((e[11].sid, e[11].line), (5, 15));
}

#[test]
fn config_multiline_continuation() {
    // Suricata's SCThresholdConfGenerateValidDummyFD04/06 shapes.
    let text = "event_filter gen_id 1 \\\n, sig_id 10, type limit, track by_src, \\\ncount 1, seconds 60\n\
                rate_filter \\\ngen_id 1, sig_id 10, track by_src, count 1, seconds 60\\\n, new_action drop, timeout 10\n\
                threshold gen_id 1, \\\nsig_id 100, type both\\\n, track by_dst, count 10, \\\n seconds 60\n";
    let c = cfg(text);
    assert_eq!(c.entries().len(), 3);
    assert_eq!(c.entries()[0].line, 1);
    assert_eq!(c.entries()[1].line, 4);
    assert_eq!(c.entries()[2].line, 7);
    assert!(matches!(
        c.entries()[2].directive,
        ConfigDirective::Threshold(ThresholdSpec {
            kind: ThresholdKind::Both,
            count: 10,
            ..
        })
    ));
    let err = ThresholdConfig::parse("suppress gen_id 1, \\\n", "t", None).unwrap_err();
    assert_eq!(
        (err.line, err.kind),
        (1, ConfigErrorKind::UnterminatedContinuation)
    );
}

#[test]
fn config_errors_carry_file_and_line() {
    use ConfigErrorKind as K;
    let bad: &[(&str, K)] = &[
        ("event_filter gen_id 1, sig_id 1000, type invalid, track by_src, count 100, seconds 60", K::InvalidValue { field: "type", value: "invalid".into() }),
        ("threshold gen_id 1, sig_id 1, type limit, track by_either, count 1, seconds 1", K::InvalidValue { field: "track", value: "by_either".into() }),
        ("threshold gen_id 1, sig_id 1, type limit, track by_src, count 0, seconds 1", K::ZeroCount),
        ("rate_filter gen_id 1, sig_id 1, track by_src, count 0, seconds 1, new_action drop, timeout 1", K::ZeroCount),
        ("threshold gen_id 1, sig_id 1, track by_src, type limit, count 1, seconds 1", K::Expected { expected: "type", found: "track by_src, type limit, count 1, secon".into() }),
        ("threshold gen_id 1, sig_id 1, type limit, track by_src, count 1", K::Expected { expected: "seconds", found: "".into() }),
        ("threshold gen_id 1, sig_id 1, type limit, track by_src, count 1, seconds 1 # note", K::InvalidValue { field: "seconds", value: "1 # note".into() }),
        ("threshold gen_id 1, sig_id 1, type limit, track by_src, count 1, seconds 1, extra 2", K::Trailing(", extra 2".into())),
        ("rate_filter gen_id 1, sig_id 1, track by_src, count 1, seconds 1, new_action block, timeout 1", K::InvalidValue { field: "new_action", value: "block".into() }),
        ("suppress gen_id 0, sig_id 5", K::SidWithoutGid(5)),
        ("threshold gen_id 0, sig_id 5, type limit, track by_src, count 1, seconds 1", K::SidWithoutGid(5)),
        ("suppress gen_id 1, sig_id 5, track by_rule, ip 1.2.3.4", K::InvalidValue { field: "track", value: "by_rule".into() }),
        ("suppress gen_id 1, sig_id 5, track by_src", K::Expected { expected: "ip", found: "".into() }),
        ("suppress gen_id 1, sig_id 5, track by_src, ip 1.2.3.400", K::BadAddress("1.2.3.400".into())),
        ("suppress gen_id 1, sig_id 5, track by_src, ip [1.2.3.4", K::BadAddress("[1.2.3.4".into())),
        ("suppress gen_id 1, sig_id 5, track by_src, ip !1.2.3.4", K::UnsupportedAddress("negation `!1.2.3.4`".into())),
        ("suppress gen_id 1, sig_id 5, track by_src, ip 1.2.3.4-1.2.3.9", K::UnsupportedAddress("range `1.2.3.4-1.2.3.9`".into())),
        ("suppress gen_id 1, sig_id 5, track by_src, ip $HOME_NET", K::NoResolver("HOME_NET".into())),
        ("supress gen_id 1, sig_id 5", K::UnknownDirective("supress".into())),
        ("Suppress gen_id 1, sig_id 5", K::UnknownDirective("Suppress".into())),
        ("suppress gen_id x, sig_id 5", K::InvalidValue { field: "gen_id", value: "x".into() }),
        ("suppress sig_id 5", K::Expected { expected: "gen_id", found: "sig_id 5".into() }),
    ];
    for (line, kind) in bad {
        let text = format!("# first line\n\n{line}\nsuppress gen_id 1, sig_id 1\n");
        let err =
            ThresholdConfig::parse(&text, "/etc/suricata/threshold.config", None).unwrap_err();
        assert_eq!(&err.kind, kind, "{line}");
        assert_eq!(err.line, 3, "{line}");
        assert!(
            err.to_string()
                .starts_with("/etc/suricata/threshold.config:3: "),
            "{err}"
        );
        // Lenient: the bad line is skipped, the rest kept.
        let (c, errs) = ThresholdConfig::parse_lenient(&text, "t", None);
        assert_eq!(c.entries().len(), 1);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].line, 3);
    }
}

#[test]
fn config_address_variables_go_through_the_resolver() {
    let resolver = |name: &str| match name {
        "HOME_NET" => Some(vec![
            "192.168.0.0/16".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ]),
        "DNS" => Some(vec!["8.8.8.8".parse().unwrap()]),
        _ => None,
    };
    let text = "suppress gen_id 1, sig_id 1, track by_src, ip $HOME_NET\n\
                suppress gen_id 1, sig_id 2, track by_dst, ip [$DNS, 2001:db8::/32, [1.1.1.1]]\n\
                suppress gen_id 1, sig_id 3, track by_src, ip any\n";
    let c = ThresholdConfig::parse(text, "t", Some(&resolver)).unwrap();
    let get = |i: usize| match &c.entries()[i].directive {
        ConfigDirective::Suppress(Some(s)) => s.clone(),
        _ => panic!(),
    };
    assert!(get(0).matches(ip("10.1.1.1"), ip("8.8.8.8")));
    assert!(!get(0).matches(ip("8.8.8.8"), ip("10.1.1.1")));
    assert!(get(1).matches(ip("1.1.1.1"), ip("8.8.8.8")));
    assert!(get(1).matches(ip("1.1.1.1"), ip("2001:db8::1")));
    assert!(get(1).matches(ip("9.9.9.9"), ip("1.1.1.1")));
    assert!(!get(1).matches(ip("8.8.8.8"), ip("9.9.9.9")));
    assert!(get(2).matches(ip("::1"), ip("::2")));
    assert!(get(2).matches(ip("1.2.3.4"), ip("::2")));

    let err = ThresholdConfig::parse(
        "\n\nsuppress gen_id 1, sig_id 1, track by_src, ip [$NOPE]",
        "t",
        Some(&resolver),
    )
    .unwrap_err();
    assert_eq!(
        (err.line, err.kind),
        (3, ConfigErrorKind::UnknownVariable("NOPE".into()))
    );
}

// ---------------------------------------------------------------------------------------------
// Global vs rule thresholds
// ---------------------------------------------------------------------------------------------

fn limit(count: u32, seconds: u32) -> ThresholdSpec {
    ThresholdSpec {
        kind: ThresholdKind::Limit,
        track: Track::BySrc,
        count,
        seconds,
    }
}

#[test]
fn config_threshold_overrides_rule_keyword() {
    let rule_spec = thr("type threshold, track by_src, count 10, seconds 60");
    let c =
        cfg("threshold gen_id 1, sig_id 2002087, type limit, track by_src, count 1, seconds 15\n");
    let s = c.resolve(1, 2002087, Some(&rule_spec));
    assert_eq!(s.threshold, Some(limit(1, 15)));
    // Other sids and gids keep their own.
    assert_eq!(
        c.resolve(1, 2002088, Some(&rule_spec)).threshold,
        Some(rule_spec)
    );
    assert_eq!(
        c.resolve(3, 2002087, Some(&rule_spec)).threshold,
        Some(rule_spec)
    );
    // A rule's detection_filter is replaced too.
    let d = df("track by_dst, count 4, seconds 20");
    assert_eq!(
        c.resolve(1, 2002087, Some(&d)).threshold,
        Some(limit(1, 15))
    );
    // Several entries for one sid: the last one wins.
    let c = cfg(
        "threshold gen_id 1, sig_id 7, type limit, track by_src, count 1, seconds 15\n\
                 event_filter gen_id 1, sig_id 7, type limit, track by_src, count 3, seconds 5\n",
    );
    assert_eq!(c.resolve(1, 7, None).threshold, Some(limit(3, 5)));
}

#[test]
fn wildcard_threshold_never_overrides() {
    let c = cfg(
        "threshold gen_id 0, sig_id 0, type limit, track by_src, count 1, seconds 10\n\
                 threshold gen_id 1, sig_id 0, type limit, track by_src, count 2, seconds 10\n\
                 threshold gen_id 1, sig_id 9, type limit, track by_src, count 9, seconds 9\n",
    );
    let own = thr("type both, track by_dst, count 5, seconds 360");
    assert_eq!(c.resolve(1, 5, Some(&own)).threshold, Some(own));
    // No own threshold: the first wildcard installs itself, the second sees one and skips.
    assert_eq!(c.resolve(1, 5, None).threshold, Some(limit(1, 10)));
    assert_eq!(c.resolve(3, 5, None).threshold, Some(limit(1, 10)));
    // A specific entry after the wildcards replaces the wildcard's.
    assert_eq!(c.resolve(1, 9, None).threshold, Some(limit(9, 9)));
    // A gid-wildcard only reaches its gid.
    let c = cfg("threshold gen_id 1, sig_id 0, type limit, track by_src, count 2, seconds 10\n");
    assert_eq!(c.resolve(1, 5, None).threshold, Some(limit(2, 10)));
    assert_eq!(c.resolve(2, 5, None).threshold, None);
}

#[test]
fn rate_filter_precedence() {
    let c = cfg("rate_filter gen_id 1, sig_id 888, track by_src, count 10, seconds 60, new_action drop, timeout 300\n\
                 rate_filter gen_id 1, sig_id 888, track by_rule, count 1, seconds 1, new_action pass, timeout 1\n");
    // The rule's own threshold or detection_filter wins over a rate_filter.
    let own = thr("type limit, track by_src, count 1, seconds 60");
    assert_eq!(c.resolve(1, 888, Some(&own)).threshold, Some(own));
    let own_df = df("track by_src, count 2, seconds 60");
    assert_eq!(c.resolve(1, 888, Some(&own_df)).threshold, Some(own_df));
    // Without one, the first rate_filter installs; the second is ignored.
    let s = c.resolve(1, 888, None).threshold.unwrap();
    assert_eq!(
        s.kind,
        ThresholdKind::Rate {
            new_action: RateAction::Drop,
            timeout: 300
        }
    );
    // A later specific threshold replaces an installed rate_filter.
    let c = cfg("rate_filter gen_id 1, sig_id 888, track by_src, count 10, seconds 60, new_action drop, timeout 300\n\
                 threshold gen_id 1, sig_id 888, type limit, track by_src, count 1, seconds 15\n");
    assert_eq!(c.resolve(1, 888, None).threshold, Some(limit(1, 15)));
}

#[test]
fn suppress_adds_up() {
    let c = cfg("suppress gen_id 1, sig_id 2002087, track by_src, ip 209.132.180.67\n\
                 suppress gen_id 0, sig_id 0, track by_dst, ip 10.0.0.0/8\n\
                 suppress gen_id 1, sig_id 0, track by_either, ip 192.0.2.1\n\
                 suppress gen_id 1, sig_id 5\n\
                 threshold gen_id 1, sig_id 2002087, type limit, track by_src, count 1, seconds 15\n");
    let own = thr("type threshold, track by_src, count 10, seconds 60");
    let s = c.resolve(1, 2002087, Some(&own));
    assert_eq!(s.suppressions.len(), 3);
    assert!(!s.noalert);
    assert_eq!(s.threshold, Some(limit(1, 15)));
    let s = c.resolve(2, 1, None);
    assert_eq!(s.suppressions.len(), 1);
    let s = c.resolve(1, 5, Some(&own));
    assert!(s.noalert);
    assert_eq!(s.threshold, Some(own));
    assert!(cfg("").resolve(1, 1, None).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Behaviour tables
// ---------------------------------------------------------------------------------------------

#[test]
fn limit_table() {
    // type limit, count 2, seconds 10: at most 2 alerts per window of 10 s from the first match.
    table(
        &rule(thr("type limit, track by_src, count 2, seconds 10")),
        &[
            (0.0, Alert),     // new entry, count 1
            (1.0, Alert),     // count 2 <= 2
            (2.0, Suppress),  // count 3: silent match (rule action still applies)
            (10.0, Suppress), // ts == tv1 + 10 is still inside the window
            (10.001, Alert),  // window over: restart at 10.001, count 1
            (11.0, Alert),    // count 2
            (12.0, Suppress), // count 3
        ],
    );
    // The window edge to the nanosecond: in while ts <= tv1 + seconds.
    table(
        &rule(thr("type limit, track by_src, count 1, seconds 10")),
        &[
            (0.0, Alert),
            (5.0, Suppress),
            (10.0, Suppress),
            (10.000_000_001, Alert),    // new window from here
            (20.000_000_001, Suppress), // == tv1 + 10
            (20.000_000_002, Alert),
        ],
    );
}

#[test]
fn threshold_table() {
    // type threshold, count 3, seconds 10: an alert every 3rd match inside the window; the
    // window does not restart at an alert.
    table(
        &rule(thr("type threshold, track by_src, count 3, seconds 10")),
        &[
            (0.0, Discard),  // count 1
            (1.0, Discard),  // 2
            (2.0, Alert),    // 3 >= 3: alert, count 0
            (3.0, Discard),  // 1
            (4.0, Discard),  // 2
            (5.0, Alert),    // 3: alert, count 0
            (6.0, Discard),  // 1
            (11.0, Discard), // 11 > 0 + 10: new window at 11, count 1
            (12.0, Discard), // 2
            (13.0, Alert),   // 3
        ],
    );
    // count 1: every match alerts, and no state is kept.
    let sig = rule(thr("type threshold, track by_src, count 1, seconds 10"));
    let mut st = ThresholdState::default();
    for t in 0..5 {
        let r = SigRef {
            gid: 1,
            sid: 1,
            rev: 1,
            thresholds: &sig,
        };
        assert_eq!(st.check(r, ip(A), ip(B), 1, ns(f64::from(t))), Alert);
    }
    assert_eq!(st.len(), 0);
}

#[test]
fn threshold_count_one_by_flow_is_not_fast_pathed() {
    // Suricata's flow path: after an expired window the reset match does not alert.
    table(
        &rule(thr("type threshold, track by_flow, count 1, seconds 10")),
        &[
            (0.0, Alert),    // new entry, count == 1
            (1.0, Alert),    // 2 >= 1: alert, count 0
            (2.0, Alert),    // 1 >= 1
            (12.0, Discard), // window over: reset to count 1, no alert
            (13.0, Alert),
        ],
    );
}

#[test]
fn both_table() {
    // type both, count 2, seconds 10: one alert per window, at the 2nd match.
    table(
        &rule(thr("type both, track by_src, count 2, seconds 10")),
        &[
            (0.0, Discard),  // count 1
            (1.0, Alert),    // 2 == 2
            (2.0, Suppress), // 3 > 2: silent
            (9.0, Suppress),
            (10.5, Discard), // window over: count 1
            (11.0, Alert),   // 2
            (20.0, Suppress),
        ],
    );
    // count 1: alert at the first match of each window.
    table(
        &rule(thr("type both, track by_src, count 1, seconds 10")),
        &[
            (0.0, Alert),
            (5.0, Suppress),
            (10.0, Suppress),
            (10.5, Alert), // reset with count 1 == C
            (11.0, Suppress),
        ],
    );
}

#[test]
fn detection_filter_table() {
    // detection_filter count 3, seconds 10: every match after the 3rd in the window alerts.
    table(
        &rule(df("track by_src, count 3, seconds 10")),
        &[
            (0.0, Discard),  // 1
            (1.0, Discard),  // 2
            (2.0, Discard),  // 3: not > 3
            (3.0, Alert),    // 4
            (4.0, Alert),    // 5
            (10.0, Alert),   // 6, inclusive end
            (10.5, Discard), // window over: count 1
            (11.0, Discard), // 2
            (12.0, Discard), // 3
            (13.0, Alert),   // 4
        ],
    );
    // Suricata's DetectDetectionFilterTestSig1: count 4 → alerts from the 5th match.
    let sig = rule(df("track by_dst, count 4, seconds 60"));
    let rows: Vec<(f64, Verdict)> = (0..8)
        .map(|i| (0.0, if i < 4 { Discard } else { Alert }))
        .collect();
    table(&sig, &rows);
}

#[test]
fn backoff_table() {
    let sig = rule(thr("type backoff, track by_flow, count 1, multiplier 10"));
    let mut st = ThresholdState::default();
    let mut alerts = Vec::new();
    for i in 1..=1000u32 {
        let r = SigRef {
            gid: 1,
            sid: 1,
            rev: 1,
            thresholds: &sig,
        };
        match st.check(r, ip(A), ip(B), 7, ns(f64::from(i) * 1000.0)) {
            Alert => alerts.push(i),
            Suppress => {}
            other => panic!("match {i}: {other:?}"),
        }
    }
    assert_eq!(alerts, [1, 10, 100, 1000]);

    // count 5, multiplier 5: the first match is a no-match (no action), later non-alerting
    // matches are silent.
    let sig = rule(thr("type backoff, track by_flow, count 5, multiplier 5"));
    let mut st = ThresholdState::default();
    let mut got = Vec::new();
    for i in 1..=130u32 {
        let r = SigRef {
            gid: 1,
            sid: 1,
            rev: 1,
            thresholds: &sig,
        };
        got.push((i, st.check(r, ip(A), ip(B), 7, ns(0.0))));
    }
    assert_eq!(got[0], (1, Discard));
    assert_eq!(got[1], (2, Suppress));
    let alerts: Vec<u32> = got
        .iter()
        .filter(|(_, v)| *v == Alert)
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(alerts, [5, 25, 125]);
}

#[test]
fn rate_filter_table() {
    let c = cfg("rate_filter gen_id 1, sig_id 1000, track by_src, count 2, seconds 10, new_action drop, timeout 5\n");
    let sig = c.resolve(1, 1000, None);
    let drop = Verdict::NewAction {
        action: RateAction::Drop,
        alert: true,
    };
    table(
        &sig,
        &[
            (0.0, Alert),  // new entry, count 1
            (1.0, Alert),  // 2, not > 2
            (2.0, drop),   // 3 > 2: new action from second T0+2
            (4.0, drop),   // 4 - 2 = 2 <= 5
            (7.0, drop),   // 7 - 2 = 5 <= 5 (whole seconds)
            (7.9, drop),   // still second 7
            (8.0, Alert),  // 8 - 2 = 6 > 5: action over; this match does not count
            (9.0, drop),   // counts again against the window opened at 0 (9 <= 10): 4 > 2
            (14.9, drop),  // second 14: 14 - 9 = 5 <= 5
            (15.0, Alert), // action and window both over: the entry is gone, new one, count 1
            (16.0, Alert), // 2
            (17.0, drop),  // 3 > 2
            (18.0, drop),  // active since 17
        ],
    );
    // `log`/`sdrop` are accepted and change nothing.
    let c = cfg("rate_filter gen_id 1, sig_id 1000, track by_rule, count 1, seconds 10, new_action sdrop, timeout 5\n");
    table(
        &c.resolve(1, 1000, None),
        &[(0.0, Alert), (1.0, Alert), (2.0, Alert)],
    );
}

#[test]
fn rate_filter_entry_survives_until_its_timeout_ends() {
    // seconds 2, timeout 30: the window ends long before the action; housekeeping must not
    // drop the entry (and so the action) early.
    let c = cfg("rate_filter gen_id 1, sig_id 1, track by_rule, count 1, seconds 2, new_action reject, timeout 30\n");
    let sig = c.resolve(1, 1, None);
    let mut st = ThresholdState::default();
    let r = SigRef {
        gid: 1,
        sid: 1,
        rev: 1,
        thresholds: &sig,
    };
    let reject = Verdict::NewAction {
        action: RateAction::Reject,
        alert: true,
    };
    assert_eq!(st.check(r, ip(A), ip(B), 1, ns(0.0)), Alert);
    assert_eq!(st.check(r, ip(A), ip(B), 1, ns(1.0)), reject);
    assert_eq!(st.expire(ns(20.0)), 0);
    assert_eq!(st.check(r, ip(C), ip(B), 1, ns(31.5)), reject);
    assert_eq!(st.expire(ns(32.0)), 1, "second 32: 32 - 1 > 30, entry gone");
}

#[test]
fn suppress_behaviour() {
    let c = cfg(
        "suppress gen_id 1, sig_id 1000, track by_src, ip 10.0.0.0/8\n\
                 suppress gen_id 1, sig_id 2000, track by_either, ip 192.0.2.0/24\n\
                 suppress gen_id 1, sig_id 3000\n",
    );
    let mut st = ThresholdState::default();
    let s1 = c.resolve(
        1,
        1000,
        Some(&thr("type limit, track by_src, count 1, seconds 60")),
    );
    let r1 = SigRef {
        gid: 1,
        sid: 1000,
        rev: 1,
        thresholds: &s1,
    };
    // Suppressed source: no alert, and the threshold is not evaluated (no entry made).
    assert_eq!(
        st.check(r1, ip("10.1.1.1"), ip("192.168.1.1"), 1, ns(0.0)),
        Suppress
    );
    assert_eq!(
        st.check(r1, ip("10.1.1.1"), ip("192.168.1.1"), 1, ns(1.0)),
        Suppress
    );
    assert_eq!(st.len(), 0);
    // by_src: a 10/8 destination is not suppressed.
    assert_eq!(
        st.check(r1, ip("192.168.1.1"), ip("10.1.1.1"), 1, ns(2.0)),
        Alert
    );
    assert_eq!(
        st.check(r1, ip("192.168.1.1"), ip("10.1.1.1"), 1, ns(3.0)),
        Suppress
    );
    assert_eq!(st.len(), 1);

    let s2 = c.resolve(1, 2000, None);
    let r2 = SigRef {
        gid: 1,
        sid: 2000,
        rev: 1,
        thresholds: &s2,
    };
    assert_eq!(
        st.check(r2, ip("192.0.2.5"), ip("8.8.8.8"), 1, ns(0.0)),
        Suppress
    );
    assert_eq!(
        st.check(r2, ip("8.8.8.8"), ip("192.0.2.5"), 1, ns(0.0)),
        Suppress
    );
    assert_eq!(
        st.check(r2, ip("8.8.8.8"), ip("8.8.4.4"), 1, ns(0.0)),
        Alert
    );

    // Whole-rule suppress (noalert) with a threshold: the threshold still counts; what would
    // alert is suppressed, what would be discarded stays discarded.
    let s3 = c.resolve(
        1,
        3000,
        Some(&thr("type threshold, track by_src, count 2, seconds 60")),
    );
    table(
        &s3,
        &[
            (0.0, Discard),
            (1.0, Suppress),
            (2.0, Discard),
            (3.0, Suppress),
        ],
    );
    let s3 = c.resolve(1, 3000, None);
    table(&s3, &[(0.0, Suppress), (1.0, Suppress)]);
    // noalert with an active rate_filter: the new action, no alert.
    let c = cfg("suppress gen_id 1, sig_id 4000\n\
                 rate_filter gen_id 1, sig_id 4000, track by_rule, count 1, seconds 60, new_action drop, timeout 60\n");
    table(
        &c.resolve(1, 4000, None),
        &[
            (0.0, Suppress),
            (
                1.0,
                Verdict::NewAction {
                    action: RateAction::Drop,
                    alert: false,
                },
            ),
        ],
    );
}

#[test]
fn trackers_are_separate() {
    let mut st = ThresholdState::default();
    let mk = |track: &str| {
        rule(thr(&format!(
            "type limit, track {track}, count 1, seconds 60"
        )))
    };
    let (by_src, by_dst, by_rule, by_both, by_flow) = (
        mk("by_src"),
        mk("by_dst"),
        mk("by_rule"),
        mk("by_both"),
        mk("by_flow"),
    );
    let mut go = |sig: &SigThresholds, sid: u32, s: &str, d: &str, flow: u64| {
        let r = SigRef {
            gid: 1,
            sid,
            rev: 1,
            thresholds: sig,
        };
        st.check(r, ip(s), ip(d), flow, ns(1.0))
    };
    // by_src: one entry per source.
    assert_eq!(go(&by_src, 1, A, B, 1), Alert);
    assert_eq!(go(&by_src, 1, A, C, 2), Suppress);
    assert_eq!(go(&by_src, 1, B, A, 3), Alert);
    assert_eq!(go(&by_src, 1, C, A, 4), Alert);
    // by_dst: one entry per destination; not shared with by_src entries of the same address.
    assert_eq!(go(&by_dst, 2, A, B, 1), Alert);
    assert_eq!(go(&by_dst, 2, C, B, 2), Suppress);
    assert_eq!(go(&by_dst, 2, B, A, 3), Alert);
    // by_rule: one entry for the signature.
    assert_eq!(go(&by_rule, 3, A, B, 1), Alert);
    assert_eq!(go(&by_rule, 3, C, "2001:db8::1", 9), Suppress);
    // by_both: the pair, both directions.
    assert_eq!(go(&by_both, 4, A, B, 1), Alert);
    assert_eq!(go(&by_both, 4, B, A, 1), Suppress);
    assert_eq!(go(&by_both, 4, A, C, 1), Alert);
    assert_eq!(go(&by_both, 4, "2001:db8::2", "2001:db8::1", 1), Alert);
    assert_eq!(go(&by_both, 4, "2001:db8::1", "2001:db8::2", 1), Suppress);
    // by_flow: the flow id, whatever the addresses.
    assert_eq!(go(&by_flow, 5, A, B, 100), Alert);
    assert_eq!(go(&by_flow, 5, B, A, 100), Suppress);
    assert_eq!(go(&by_flow, 5, A, B, 101), Alert);
    // Same tracker and address, other sid / gid / rev: separate.
    assert_eq!(go(&by_src, 6, A, B, 1), Alert);
    let r = SigRef {
        gid: 2,
        sid: 1,
        rev: 1,
        thresholds: &by_src,
    };
    assert_eq!(st.check(r, ip(A), ip(B), 1, ns(1.0)), Alert);
    let r = SigRef {
        gid: 1,
        sid: 1,
        rev: 2,
        thresholds: &by_src,
    };
    assert_eq!(st.check(r, ip(A), ip(B), 1, ns(1.0)), Alert);
    // IPv6 source tracked on its own.
    let r = SigRef {
        gid: 1,
        sid: 1,
        rev: 1,
        thresholds: &by_src,
    };
    assert_eq!(st.check(r, ip("2001:db8::1"), ip(B), 1, ns(1.0)), Alert);
    assert_eq!(st.check(r, ip("2001:db8::1"), ip(C), 1, ns(2.0)), Suppress);

    // Ending a flow forgets its by_flow entries only.
    let before = st.len();
    st.flow_ended(100);
    assert_eq!(st.len(), before - 1);
    let r = SigRef {
        gid: 1,
        sid: 5,
        rev: 1,
        thresholds: &by_flow,
    };
    assert_eq!(st.check(r, ip(A), ip(B), 100, ns(2.0)), Alert);
    assert_eq!(st.check(r, ip(A), ip(B), 101, ns(2.0)), Suppress);
}

// ---------------------------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------------------------

fn limits(max_entries: usize, on_full: OnFull) -> ThresholdLimits {
    ThresholdLimits {
        max_entries,
        on_full,
    }
}

fn hit(st: &mut ThresholdState, sig: &SigThresholds, src: &str, flow: u64, t: f64) -> Verdict {
    let r = SigRef {
        gid: 1,
        sid: 1,
        rev: 1,
        thresholds: sig,
    };
    st.check(r, ip(src), ip(B), flow, ns(t))
}

#[test]
fn memcap_evicts_the_entry_ending_soonest() {
    let sig = rule(thr("type limit, track by_src, count 1, seconds 10"));
    let mut st = ThresholdState::new(limits(3, OnFull::Evict));
    assert_eq!(hit(&mut st, &sig, "1.0.0.1", 1, 0.0), Alert); // window ends at 10
    assert_eq!(hit(&mut st, &sig, "1.0.0.2", 1, 1.0), Alert); // 11
    assert_eq!(hit(&mut st, &sig, "1.0.0.3", 1, 2.0), Alert); // 12
    assert_eq!(hit(&mut st, &sig, "1.0.0.2", 1, 3.0), Suppress);
    // Full, nothing expired: the entry ending soonest (1.0.0.1) is recycled.
    assert_eq!(hit(&mut st, &sig, "1.0.0.4", 1, 4.0), Alert);
    // 1.0.0.1 starts over (it would have been suppressed), evicting 1.0.0.2.
    assert_eq!(hit(&mut st, &sig, "1.0.0.1", 1, 5.0), Alert);
    assert_eq!(hit(&mut st, &sig, "1.0.0.3", 1, 6.0), Suppress);
    assert_eq!(hit(&mut st, &sig, "1.0.0.4", 1, 6.0), Suppress);
    let s = st.stats();
    assert_eq!((s.entries, s.evicted, s.refused, s.expired), (3, 2, 0, 0));
    // Much later: the check's own housekeeping removes two expired entries, so the new key
    // needs no eviction; `expire` removes the last one.
    assert_eq!(hit(&mut st, &sig, "1.0.0.9", 1, 100.0), Alert);
    let s = st.stats();
    assert_eq!((s.entries, s.evicted, s.expired), (2, 2, 2));
    assert_eq!(st.expire(ns(100.0)), 1);
    assert_eq!(st.stats().expired, 3);
}

#[test]
fn memcap_refuse_discards_new_keys() {
    let sig = rule(thr("type limit, track by_src, count 1, seconds 10"));
    let mut st = ThresholdState::new(limits(2, OnFull::Refuse));
    assert_eq!(hit(&mut st, &sig, "1.0.0.1", 1, 0.0), Alert); // ends 10
    assert_eq!(hit(&mut st, &sig, "1.0.0.2", 1, 1.0), Alert); // ends 11
    assert_eq!(hit(&mut st, &sig, "1.0.0.3", 1, 2.0), Discard); // refused: no alert, no action
    assert_eq!(hit(&mut st, &sig, "1.0.0.1", 1, 3.0), Suppress); // tracked keys go on
    assert_eq!(st.stats().refused, 1);
    // 10.5: 1.0.0.1 has expired, which makes room.
    assert_eq!(hit(&mut st, &sig, "1.0.0.3", 1, 10.5), Alert); // ends 20.5
    assert_eq!(hit(&mut st, &sig, "1.0.0.4", 1, 10.6), Discard); // 1.0.0.2 not yet expired
    assert_eq!(hit(&mut st, &sig, "1.0.0.4", 1, 11.5), Alert);
    let s = st.stats();
    assert_eq!((s.entries, s.refused, s.evicted, s.expired), (2, 2, 0, 2));

    // A limit of 0 tracks nothing; the stateless fast path still alerts.
    let mut st = ThresholdState::new(limits(0, OnFull::Evict));
    assert_eq!(hit(&mut st, &sig, A, 1, 0.0), Discard);
    assert_eq!(st.stats().refused, 1);
    let fast = rule(thr("type threshold, track by_src, count 1, seconds 10"));
    assert_eq!(hit(&mut st, &fast, A, 1, 0.0), Alert);
}

#[test]
fn flow_entries_do_not_expire_by_time_and_are_evicted_last() {
    let flow_sig = rule(thr("type backoff, track by_flow, count 1, multiplier 2"));
    let win_sig = rule(thr("type limit, track by_src, count 1, seconds 10"));
    let mut st = ThresholdState::new(limits(3, OnFull::Evict));
    let big = 1_000_000.0;
    assert_eq!(hit(&mut st, &flow_sig, A, 1, 0.0), Alert); // flow 1, match 1
    assert_eq!(hit(&mut st, &flow_sig, A, 2, 1.0), Alert); // flow 2, match 1
    assert_eq!(hit(&mut st, &win_sig, A, 9, 2.0), Alert);
    assert_eq!(st.expire(ns(big)), 1); // only the windowed entry
    assert_eq!(st.len(), 2);
    // Match 2 of flow 1 alerts (backoff 1, 2, 4 …): its state survived.
    assert_eq!(hit(&mut st, &flow_sig, A, 1, big + 1.0), Alert);
    assert_eq!(hit(&mut st, &win_sig, C, 9, big + 2.0), Alert);
    // Full: windowed entries go before any flow entry.
    assert_eq!(hit(&mut st, &flow_sig, A, 3, big + 3.0), Alert); // flow 3, evicts C's entry
    assert_eq!(st.stats().evicted, 1);
    assert_eq!(hit(&mut st, &flow_sig, A, 2, big + 4.0), Alert); // flow 2 match 2: survived
                                                                 // Only flow entries now; least recently used is flow 1 (big + 1).
    assert_eq!(hit(&mut st, &flow_sig, A, 4, big + 5.0), Alert);
    assert_eq!(st.stats().evicted, 2);
    // Flow 1 starts over: match "1" alerts (it would have been match 3: silent).
    assert_eq!(hit(&mut st, &flow_sig, A, 1, big + 6.0), Alert);
    assert_eq!(hit(&mut st, &flow_sig, A, 1, big + 7.0), Alert);
    assert_eq!(hit(&mut st, &flow_sig, A, 1, big + 8.0), Suppress);
    assert_eq!(st.stats().evicted, 3);
    assert_eq!(st.stats().expired, 1);
}

#[test]
fn housekeeping_is_amortized() {
    let sig = rule(thr("type limit, track by_src, count 1, seconds 1"));
    let mut st = ThresholdState::default();
    for i in 0..100u32 {
        let r = SigRef {
            gid: 1,
            sid: 1,
            rev: 1,
            thresholds: &sig,
        };
        let src = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
        st.check(r, src, ip(B), 1, ns(0.0));
    }
    assert_eq!(st.len(), 100);
    // Each later check removes a couple of expired entries, never all at once.
    let r = SigRef {
        gid: 1,
        sid: 1,
        rev: 1,
        thresholds: &sig,
    };
    st.check(r, ip("192.0.2.1"), ip(B), 1, ns(5.0));
    assert_eq!(st.len(), 100 - HOUSEKEEPING_BATCH + 1);
    for _ in 0..60 {
        st.check(r, ip("192.0.2.1"), ip(B), 1, ns(5.0));
    }
    assert_eq!(st.len(), 1);
    assert_eq!(st.stats().expired, 100);
}
