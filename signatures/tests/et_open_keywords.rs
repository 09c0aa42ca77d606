//! Parses every `byte_test`, `byte_jump`, `byte_extract`, `byte_math`, `isdataat`, `pcre`,
//! `base64_decode`/`base64_data` and transform in ET Open (`../shared/corpus/rules/
//! emerging-all.rules`, commented-out rules included) and requires at least 99.5% of each
//! keyword's occurrences to parse. Failures and unsupported values are printed.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use vigil_signatures::keywords::base64::{Base64Data, Base64Decode};
use vigil_signatures::keywords::bytes::{ByteExtract, ByteJump, ByteMath, ByteTest, IsDataAt};
use vigil_signatures::keywords::pcre::Pcre;
use vigil_signatures::keywords::transform::Transform;
use vigil_signatures::keywords::KeywordError;

fn rules_path() -> PathBuf {
    let rel = "shared/corpus/rules/emerging-all.rules";
    let candidates = [
        std::env::var_os("VIGIL_ET_RULES").map(PathBuf::from),
        Some(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../..")
                .join(rel),
        ),
        Some(PathBuf::from("/work").join(rel)),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("ET Open rules not found (set VIGIL_ET_RULES or provide ../{rel})")
        })
}

/// The options of one rule line: `(name, value)` in order, split at `;` not escaped by `\`.
fn options(line: &str) -> Vec<(String, Option<String>)> {
    let Some(open) = line.find('(') else {
        return Vec::new();
    };
    let Some(close) = line.rfind(')') else {
        return Vec::new();
    };
    if close <= open {
        return Vec::new();
    }
    let body = &line[open + 1..close];
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ';' => {
                push_option(&mut out, &cur);
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    push_option(&mut out, &cur);
    out
}

fn push_option(out: &mut Vec<(String, Option<String>)>, raw: &str) {
    let raw = raw.trim();
    if raw.is_empty() {
        return;
    }
    match raw.split_once(':') {
        Some((k, v)) => out.push((k.trim().to_string(), Some(v.trim().to_string()))),
        None => out.push((raw.to_string(), None)),
    }
}

const TRANSFORMS: &[&str] = &[
    "to_lowercase",
    "to_uppercase",
    "strip_whitespace",
    "compress_whitespace",
    "url_decode",
    "dotprefix",
    "to_md5",
    "to_sha1",
    "to_sha256",
    "header_lowercase",
    "strip_pseudo_headers",
    "xor",
    "pcrexform",
    "from_base64",
    "domain",
    "tld",
    "luaxform",
    "gunzip",
    "zlib_deflate",
];

#[derive(Default)]
struct Tally {
    total: usize,
    ok: usize,
    unsupported: BTreeMap<String, usize>,
    invalid: Vec<String>,
}

#[test]
fn et_open_keywords_parse() {
    let text = std::fs::read_to_string(rules_path()).expect("read ET Open rules");
    let mut tallies: BTreeMap<&'static str, Tally> = BTreeMap::new();
    let mut rules = 0usize;
    for line in text.lines() {
        let l = line.trim_start_matches(['#', ' ']);
        if ![
            "alert ",
            "drop ",
            "pass ",
            "reject ",
            "rejectsrc ",
            "rejectdst ",
            "rejectboth ",
        ]
        .iter()
        .any(|a| l.starts_with(a))
        {
            continue;
        }
        rules += 1;
        let mut slots: HashMap<String, u8> = HashMap::new();
        for (name, value) in options(l) {
            let v = value.as_deref();
            let resolve_snapshot = slots.clone();
            let resolver = move |n: &str| resolve_snapshot.get(n).copied();
            let (kw, result): (&'static str, Result<(), KeywordError>) = match name.as_str() {
                "byte_test" => (
                    "byte_test",
                    ByteTest::parse(v.unwrap_or(""), &resolver).map(drop),
                ),
                "byte_jump" => (
                    "byte_jump",
                    ByteJump::parse(v.unwrap_or(""), &resolver).map(drop),
                ),
                "isdataat" => (
                    "isdataat",
                    IsDataAt::parse(v.unwrap_or(""), &resolver).map(drop),
                ),
                "byte_extract" => (
                    "byte_extract",
                    ByteExtract::parse(v.unwrap_or("")).map(|(_, var)| {
                        let n = slots.len() as u8;
                        slots.entry(var).or_insert(n);
                    }),
                ),
                "byte_math" => (
                    "byte_math",
                    ByteMath::parse(v.unwrap_or(""), &resolver).map(|(_, var)| {
                        let n = slots.len() as u8;
                        slots.entry(var).or_insert(n);
                    }),
                ),
                "pcre" => ("pcre", Pcre::parse(v.unwrap_or("")).map(drop)),
                "base64_decode" => ("base64_decode", Base64Decode::parse(v).map(drop)),
                "base64_data" => ("base64_data", Base64Data::parse(v).map(drop)),
                t if TRANSFORMS.contains(&t) => {
                    let kw = TRANSFORMS
                        .iter()
                        .find(|x| **x == t)
                        .copied()
                        .unwrap_or("transform");
                    (kw, Transform::parse(t, v).map(drop))
                }
                _ => continue,
            };
            let tally = tallies.entry(kw).or_default();
            tally.total += 1;
            match result {
                Ok(()) => tally.ok += 1,
                Err(e @ KeywordError::Unsupported { .. }) => {
                    *tally.unsupported.entry(e.to_string()).or_default() += 1;
                }
                Err(e) => tally
                    .invalid
                    .push(format!("{name}:{} -> {e}", v.unwrap_or(""))),
            }
        }
    }
    println!("ET Open: {rules} rules (active and commented out)");
    println!(
        "{:<20} {:>8} {:>8} {:>12} {:>8} {:>8}",
        "keyword", "total", "ok", "unsupported", "invalid", "parsed%"
    );
    let mut failed = Vec::new();
    for (kw, t) in &tallies {
        let unsupported: usize = t.unsupported.values().sum();
        let parsed = (t.ok + unsupported) as f64 * 100.0 / t.total as f64;
        println!(
            "{:<20} {:>8} {:>8} {:>12} {:>8} {:>7.2}%",
            kw,
            t.total,
            t.ok,
            unsupported,
            t.invalid.len(),
            parsed
        );
        for (reason, n) in &t.unsupported {
            println!("    unsupported x{n}: {reason}");
        }
        for inv in &t.invalid {
            println!("    invalid: {inv}");
        }
        if parsed < 99.5 {
            failed.push(*kw);
        }
    }
    for kw in ["byte_test", "byte_jump", "byte_extract", "isdataat", "pcre"] {
        assert!(
            tallies.get(kw).is_some_and(|t| t.total > 0),
            "no {kw} found in ET Open"
        );
    }
    assert!(failed.is_empty(), "below 99.5% parsed: {failed:?}");
}
