//! `reference.config`: the reference systems a rule's `reference:` keyword may name, each with
//! the URL prefix its value is appended to.
//!
//! Line format, as Suricata reads it (`util-reference-config.c`):
//!
//! ```text
//! config reference: system url
//! ```
//!
//! * Blank lines and lines whose first non-blank character is `#` are skipped.
//! * `config` and `reference` are separated by whitespace; whitespace around `:` is free; system
//!   and URL are separated by whitespace (spaces or tabs; Suricata's file uses both).
//! * The system name starts with a letter and continues with letters, digits, `-` and `_`; it is
//!   stored lowercased and [`References::get`] is case-insensitive, like Suricata's lookup.
//! * The URL is the rest of the line (it may contain spaces).
//! * A system seen again later is ignored: the first definition wins.
//!
//! Differences from Suricata: a bad line is an error with file and line (Suricata logs it and
//! goes on, except under `-T`); trailing whitespace is trimmed from the URL (Suricata keeps it).

use std::collections::HashMap;
use std::sync::OnceLock;

use thiserror::Error;

use crate::classification::{is_blank_or_comment, strip_config_prefix, take_name};

/// Suricata's published `reference.config`, embedded at build time.
const BUNDLED: &str = include_str!("../data/reference.config");

/// One reference system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Lowercased system name (the part before the comma in `reference:system,id`).
    pub system: String,
    /// URL prefix; the rule's reference id is appended to it.
    pub url: String,
}

/// Every reference system of one file, in file order, looked up by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct References {
    entries: Vec<Reference>,
    by_system: HashMap<String, usize>,
}

/// What is wrong with a line.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReferenceErrorKind {
    #[error("expected `config reference: system url`")]
    Syntax,
    #[error("invalid system name `{0}`: a letter, then letters, digits, `-` or `_`")]
    BadSystem(String),
    #[error("missing URL after system `{0}`")]
    MissingUrl(String),
}

/// A line that could not be read, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{origin}:{line}: {kind}")]
pub struct ReferenceError {
    /// The file (or other origin) given to [`References::parse`].
    pub origin: String,
    /// 1-based line number.
    pub line: usize,
    pub kind: ReferenceErrorKind,
}

impl References {
    /// Reads a whole `reference.config`. `origin` is only used in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ReferenceError> {
        let mut out = References::default();
        for (idx, raw) in text.lines().enumerate() {
            if is_blank_or_comment(raw) {
                continue;
            }
            let r = parse_line(raw).map_err(|kind| ReferenceError {
                origin: origin.to_string(),
                line: idx + 1,
                kind,
            })?;
            if !out.by_system.contains_key(&r.system) {
                out.by_system.insert(r.system.clone(), out.entries.len());
                out.entries.push(r);
            }
        }
        Ok(out)
    }

    /// The systems of Suricata's default `reference.config` (shipped with the crate in
    /// `data/reference.config`).
    pub fn bundled() -> &'static References {
        static BUNDLED_SET: OnceLock<References> = OnceLock::new();
        BUNDLED_SET.get_or_init(|| {
            References::parse(BUNDLED, "<bundled reference.config>")
                .expect("the bundled reference.config parses (checked by its tests)")
        })
    }

    /// The system with this name, compared case-insensitively.
    pub fn get(&self, system: &str) -> Option<&Reference> {
        let idx = if system.bytes().any(|b| b.is_ascii_uppercase()) {
            self.by_system.get(&system.to_ascii_lowercase())
        } else {
            self.by_system.get(system)
        };
        idx.map(|&i| &self.entries[i])
    }

    /// Number of distinct systems.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The systems in file order (first definitions only).
    pub fn iter(&self) -> impl Iterator<Item = &Reference> {
        self.entries.iter()
    }
}

fn parse_line(raw: &str) -> Result<Reference, ReferenceErrorKind> {
    let line = raw.trim_end();
    let rest = strip_config_prefix(line, "reference", true)
        .ok_or(ReferenceErrorKind::Syntax)?
        .trim_start();
    let (system, rest) = take_name(rest).ok_or_else(|| {
        ReferenceErrorKind::BadSystem(rest.split_whitespace().next().unwrap_or("").to_string())
    })?;
    let url = rest.trim_start();
    if url.len() == rest.len() {
        // Not whitespace after the name: a bad character in it, or nothing at all.
        return Err(if rest.is_empty() {
            ReferenceErrorKind::MissingUrl(system.to_ascii_lowercase())
        } else {
            ReferenceErrorKind::BadSystem(format!(
                "{system}{}",
                rest.split_whitespace().next().unwrap_or("")
            ))
        });
    }
    if url.is_empty() {
        return Err(ReferenceErrorKind::MissingUrl(system.to_ascii_lowercase()));
    }
    Ok(Reference {
        system: system.to_ascii_lowercase(),
        url: url.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_has_every_config_line() {
        let lines = BUNDLED
            .lines()
            .filter(|l| l.trim_start().starts_with("config reference:"))
            .count();
        let set = References::bundled();
        assert_eq!(set.len(), lines);
        assert_eq!(set.len(), 19);
        assert_eq!(
            set.get("cve").unwrap().url,
            "https://cve.mitre.org/cgi-bin/cvename.cgi?name="
        );
        // Tab-separated in the file.
        assert_eq!(
            set.get("bid").unwrap().url,
            "https://www.securityfocus.com/bid/"
        );
        // Declared as `McAfee` and `arachNIDS`: stored lowercased, found in any case.
        assert_eq!(set.get("mcafee").unwrap().system, "mcafee");
        assert!(set.get("McAfee").is_some());
        assert!(set.get("ARACHNIDS").is_some());
        assert_eq!(set.get("url").unwrap().url, "https://");
        assert!(set.get("nope").is_none());
    }

    #[test]
    fn first_definition_wins_and_url_keeps_inner_spaces() {
        let text = "config reference: one http://one/\nconfig reference: ONE http://two/\n\
                    config reference:two   http://x/a b  \n";
        let set = References::parse(text, "t").unwrap();
        assert_eq!(set.len(), 2);
        assert_eq!(set.get("one").unwrap().url, "http://one/");
        assert_eq!(set.get("two").unwrap().url, "http://x/a b");
    }

    #[test]
    fn errors_name_file_and_line() {
        let text = "# c\nconfig reference: one http://www.one.com\n\nconfig reference: four\n";
        let err = References::parse(text, "ref.config").unwrap_err();
        assert_eq!(err.line, 4);
        assert_eq!(err.kind, ReferenceErrorKind::MissingUrl("four".into()));
        assert_eq!(
            err.to_string(),
            "ref.config:4: missing URL after system `four`"
        );

        // The invalid lines of Suricata's own unit test (SCRConfGenerateInValidDummyReferenceConfigFD02).
        for line in [
            "config_ reference: two http://www.two.com",
            "config reference_: three http://www.three.com",
            "config reference five http://www.five.com",
            "configreference: six http://six",
        ] {
            let err = References::parse(line, "f").unwrap_err();
            assert_eq!(err.kind, ReferenceErrorKind::Syntax, "{line}");
        }
        let err = References::parse("config reference: 9x http://x", "f").unwrap_err();
        assert_eq!(err.kind, ReferenceErrorKind::BadSystem("9x".into()));
        let err = References::parse("config reference: a.b http://x", "f").unwrap_err();
        assert_eq!(err.kind, ReferenceErrorKind::BadSystem("a.b".into()));
    }
}
