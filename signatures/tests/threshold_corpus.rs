//! Every `threshold:` and `detection_filter:` value of the shared rule corpus parses, and the
//! bundled Suricata configuration files load.

use std::collections::BTreeMap;
use std::path::PathBuf;

use vigil_signatures::classification::Classifications;
use vigil_signatures::reference::References;
use vigil_signatures::threshold::{ThresholdKind, ThresholdSpec, Track};

/// The shared corpus: `../shared/corpus` beside the project checkout, or the workplace copy.
fn corpus(rel: &str) -> PathBuf {
    let beside = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
    let base = if beside.is_dir() {
        beside
    } else {
        PathBuf::from("/work/shared/corpus")
    };
    let p = base.join(rel);
    assert!(p.exists(), "corpus file missing: {}", p.display());
    p
}

/// The options of a rule line (commented-out rules included: `# alert ...`), split at every `;`
/// not escaped with `\\` (Suricata's option splitting: quotes do not protect a `;`), as
/// `(name, value)`.
fn options(line: &str) -> Vec<(String, String)> {
    let Some(open) = line.find('(') else {
        return Vec::new();
    };
    let body = &line[open + 1..];
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in body.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => {
                cur.push(c);
                escaped = true;
            }
            ';' => {
                if let Some((name, value)) = cur.split_once(':') {
                    out.push((name.trim().to_string(), value.trim().to_string()));
                } else {
                    out.push((cur.trim().to_string(), String::new()));
                }
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    out
}

/// Rule lines with `\`-continued lines joined (as Suricata reads rule files), with the 1-based
/// number of their first line.
fn rule_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let (start, mut joined) = cur.take().unwrap_or((i + 1, String::new()));
        match line.trim_end().strip_suffix('\\') {
            Some(head) => {
                joined.push_str(head);
                cur = Some((start, joined));
            }
            None => {
                joined.push_str(line);
                out.push((start, joined));
            }
        }
    }
    out.extend(cur);
    out
}

struct Stats {
    threshold: usize,
    detection_filter: usize,
    by_kind: BTreeMap<String, usize>,
    by_track: BTreeMap<String, usize>,
}

fn parse_all(text: &str) -> Stats {
    let mut st = Stats {
        threshold: 0,
        detection_filter: 0,
        by_kind: BTreeMap::new(),
        by_track: BTreeMap::new(),
    };
    let mut failures = Vec::new();
    for (i, line) in rule_lines(text) {
        for (name, value) in options(&line) {
            let parsed = match name.as_str() {
                "threshold" => {
                    st.threshold += 1;
                    ThresholdSpec::parse_threshold(&value)
                }
                "detection_filter" => {
                    st.detection_filter += 1;
                    ThresholdSpec::parse_detection_filter(&value)
                }
                _ => continue,
            };
            match parsed {
                Ok(spec) => {
                    let kind = match spec.kind {
                        ThresholdKind::Limit => "limit",
                        ThresholdKind::Threshold => "threshold",
                        ThresholdKind::Both => "both",
                        ThresholdKind::Backoff { .. } => "backoff",
                        ThresholdKind::DetectionFilter => "detection_filter",
                        ThresholdKind::Rate { .. } => "rate",
                    };
                    *st.by_kind.entry(kind.to_string()).or_default() += 1;
                    *st.by_track.entry(spec.track.to_string()).or_default() += 1;
                }
                Err(e) => failures.push(format!("line {i}: {value:?}: {e}")),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    st
}

#[test]
fn every_threshold_in_emerging_all_parses() {
    let text = std::fs::read_to_string(corpus("rules/emerging-all.rules")).unwrap();
    let st = parse_all(&text);
    // Every occurrence of the keyword text is a keyword (none hide in messages or contents).
    assert_eq!(st.threshold, text.matches("threshold:").count());
    assert_eq!(
        st.detection_filter,
        text.matches("detection_filter:").count()
    );
    assert_eq!((st.threshold, st.detection_filter), (2351, 4));
    let get = |m: &BTreeMap<String, usize>, k: &str| m.get(k).copied().unwrap_or(0);
    assert_eq!(get(&st.by_kind, "limit"), 1886);
    assert_eq!(get(&st.by_kind, "both"), 362);
    assert_eq!(get(&st.by_kind, "threshold"), 103);
    assert_eq!(get(&st.by_kind, "detection_filter"), 4);
    assert_eq!(
        get(&st.by_track, "by_src") + get(&st.by_track, "by_dst"),
        2355
    );
    eprintln!(
        "emerging-all.rules: {} threshold, {} detection_filter; kinds {:?}; tracks {:?}",
        st.threshold, st.detection_filter, st.by_kind, st.by_track
    );
}

#[test]
fn every_threshold_in_suricata_event_rules_parses() {
    let dir = corpus("rules/suricata-events");
    let mut total = 0;
    let mut backoff = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rules"))
        .collect();
    entries.sort();
    for p in entries {
        let text = std::fs::read_to_string(&p).unwrap();
        let st = parse_all(&text);
        total += st.threshold + st.detection_filter;
        backoff += st.by_kind.get("backoff").copied().unwrap_or(0);
    }
    // Suricata 8's own rules use `type backoff, track by_flow` (51) and two `limit`s.
    assert_eq!((total, backoff), (53, 51));
}

#[test]
fn suricata_backoff_rule_spec() {
    let s = ThresholdSpec::parse_threshold("type backoff, track by_flow, count 1, multiplier 10")
        .unwrap();
    assert_eq!(s.track, Track::ByFlow);
    assert_eq!(s.kind, ThresholdKind::Backoff { multiplier: 10 });
}

#[test]
fn bundled_configs_match_the_published_files() {
    // The bundled copies carry the published files unchanged (after a comment header).
    for (name, bundled) in [
        (
            "classification.config",
            include_str!("../data/classification.config"),
        ),
        ("reference.config", include_str!("../data/reference.config")),
    ] {
        let published = std::fs::read_to_string(corpus(&format!("suricata-etc/{name}"))).unwrap();
        assert!(
            bundled.ends_with(&published),
            "{name} differs from the published file"
        );
    }
    let published = std::fs::read_to_string(corpus("suricata-etc/classification.config")).unwrap();
    let lines = published
        .lines()
        .filter(|l| l.starts_with("config classification:"))
        .count();
    assert_eq!(Classifications::bundled().len(), lines);
    let from_file = Classifications::parse(&published, "classification.config").unwrap();
    assert_eq!(&from_file, Classifications::bundled());

    let published = std::fs::read_to_string(corpus("suricata-etc/reference.config")).unwrap();
    let lines = published
        .lines()
        .filter(|l| l.starts_with("config reference:"))
        .count();
    assert_eq!(References::bundled().len(), lines);

    // ET's classification.config (shipped with the rules) loads too.
    let et = std::fs::read_to_string(corpus("rules/classification.config")).unwrap();
    let et_set = Classifications::parse(&et, "rules/classification.config").unwrap();
    let et_lines = et
        .lines()
        .filter(|l| l.trim_start().starts_with("config classification:"))
        .count();
    assert_eq!(et_set.len(), et_lines);
}

#[test]
fn every_classtype_of_emerging_all_is_known() {
    let text = std::fs::read_to_string(corpus("rules/emerging-all.rules")).unwrap();
    let et = std::fs::read_to_string(corpus("rules/classification.config")).unwrap();
    let et_set = Classifications::parse(&et, "rules/classification.config").unwrap();
    let mut unknown = BTreeMap::new();
    let mut n = 0;
    for (_, line) in rule_lines(&text) {
        for (name, value) in options(&line) {
            if name == "classtype" {
                n += 1;
                if et_set.get(&value).is_none() {
                    *unknown.entry(value).or_insert(0) += 1;
                }
            }
        }
    }
    assert_eq!(n, text.matches("classtype:").count());
    assert!(unknown.is_empty(), "unknown classtypes: {unknown:?}");
}
