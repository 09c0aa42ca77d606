//! `classification.config`: the classtypes a rule's `classtype:` keyword may name, each with a
//! description and a priority.
//!
//! Line format, as Suricata reads it (`util-classification-config.c`):
//!
//! ```text
//! config classification: shortname,short description,priority
//! ```
//!
//! * Blank lines and lines whose first non-blank character is `#` are skipped; a `#` later in a
//!   line is not a comment.
//! * Whitespace around `:` and both commas is free; `config` and `classification` may even touch.
//! * The short name starts with a letter and continues with letters, digits, `-` and `_`. It is
//!   stored lowercased, and [`Classifications::get`] lowercases its argument, so lookups are
//!   case-insensitive like Suricata's.
//! * The description runs up to the *last* comma on the line (it may itself contain commas); the
//!   priority is the decimal number after that comma.
//! * A short name seen again later is ignored: the first definition wins.
//!
//! Differences from Suricata, all on input Suricata would mishandle or half-accept: a line that
//! does not parse is an error naming the file and line (Suricata logs it and goes on); the
//! priority must fit in a `u8` (Suricata keeps a `u32`; every published priority is 1–4); the
//! description loses trailing whitespace before the priority comma (Suricata keeps it).

use std::collections::HashMap;
use std::sync::OnceLock;

use thiserror::Error;

/// Suricata's published `classification.config`, embedded at build time.
const BUNDLED: &str = include_str!("../data/classification.config");

/// One classtype.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    /// Lowercased short name (what `classtype:` names).
    pub name: String,
    pub description: String,
    /// 1 is the most severe. Suricata uses it as the alert's default priority.
    pub priority: u8,
}

/// Every classtype of one file, in file order, looked up by short name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Classifications {
    entries: Vec<Classification>,
    by_name: HashMap<String, usize>,
}

/// What is wrong with a line.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClassificationErrorKind {
    #[error("expected `config classification: name,description,priority`")]
    Syntax,
    #[error("invalid short name `{0}`: a letter, then letters, digits, `-` or `_`")]
    BadName(String),
    #[error("missing description")]
    MissingDescription,
    #[error("invalid priority `{0}`: a number from 0 to 255")]
    BadPriority(String),
}

/// A line that could not be read, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{origin}:{line}: {kind}")]
pub struct ClassificationError {
    /// The file (or other origin) given to [`Classifications::parse`].
    pub origin: String,
    /// 1-based line number.
    pub line: usize,
    pub kind: ClassificationErrorKind,
}

impl Classifications {
    /// Reads a whole `classification.config`. `origin` (usually the file's path) is only used in
    /// error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ClassificationError> {
        let mut out = Classifications::default();
        for (idx, raw) in text.lines().enumerate() {
            if is_blank_or_comment(raw) {
                continue;
            }
            let c = parse_line(raw).map_err(|kind| ClassificationError {
                origin: origin.to_string(),
                line: idx + 1,
                kind,
            })?;
            if !out.by_name.contains_key(&c.name) {
                out.by_name.insert(c.name.clone(), out.entries.len());
                out.entries.push(c);
            }
        }
        Ok(out)
    }

    /// The classtypes of Suricata's default `classification.config` (shipped with the crate in
    /// `data/classification.config`).
    pub fn bundled() -> &'static Classifications {
        static BUNDLED_SET: OnceLock<Classifications> = OnceLock::new();
        BUNDLED_SET.get_or_init(|| {
            Classifications::parse(BUNDLED, "<bundled classification.config>")
                .expect("the bundled classification.config parses (checked by its tests)")
        })
    }

    /// The classtype with this short name, compared case-insensitively.
    pub fn get(&self, shortname: &str) -> Option<&Classification> {
        let idx = if shortname.bytes().any(|b| b.is_ascii_uppercase()) {
            self.by_name.get(&shortname.to_ascii_lowercase())
        } else {
            self.by_name.get(shortname)
        };
        idx.map(|&i| &self.entries[i])
    }

    /// Number of distinct classtypes.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The classtypes in file order (first definitions only).
    pub fn iter(&self) -> impl Iterator<Item = &Classification> {
        self.entries.iter()
    }
}

/// Suricata's rule for skipping a line: only whitespace, or `#` as the first non-blank character.
pub(crate) fn is_blank_or_comment(line: &str) -> bool {
    match line.trim_start().chars().next() {
        None => true,
        Some(c) => c == '#',
    }
}

/// A short name (`[a-zA-Z][a-zA-Z0-9-_]*`) at the start of `s`: returns it and the rest.
pub(crate) fn take_name(s: &str) -> Option<(&str, &str)> {
    let bytes = s.as_bytes();
    if !bytes.first().is_some_and(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let end = bytes
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .unwrap_or(bytes.len());
    Some((&s[..end], &s[end..]))
}

/// `config`, whitespace (mandatory when `space_required`, else optional), `word`, optional
/// whitespace and `:`, after optional leading whitespace. Returns what follows the colon.
pub(crate) fn strip_config_prefix<'a>(
    line: &'a str,
    word: &str,
    space_required: bool,
) -> Option<&'a str> {
    let rest = line.trim_start().strip_prefix("config")?;
    let after_ws = rest.trim_start();
    if space_required && after_ws.len() == rest.len() {
        return None;
    }
    let rest = after_ws.strip_prefix(word)?;
    rest.trim_start().strip_prefix(':')
}

fn parse_line(raw: &str) -> Result<Classification, ClassificationErrorKind> {
    let line = raw.trim_end();
    let rest = strip_config_prefix(line, "classification", false)
        .ok_or(ClassificationErrorKind::Syntax)?
        .trim_start();
    let (name, rest) = take_name(rest).ok_or_else(|| {
        ClassificationErrorKind::BadName(rest.split(',').next().unwrap_or("").trim().to_string())
    })?;
    let rest = rest.trim_start();
    let Some(rest) = rest.strip_prefix(',') else {
        // Something other than a comma right after the name: either a bad name character or
        // no description at all.
        return Err(if rest.is_empty() {
            ClassificationErrorKind::Syntax
        } else {
            ClassificationErrorKind::BadName(format!(
                "{name}{}",
                rest.split(',').next().unwrap_or("").trim_end()
            ))
        });
    };
    let rest = rest.trim_start();
    let (description, priority) = rest
        .rsplit_once(',')
        .ok_or(ClassificationErrorKind::Syntax)?;
    if description.is_empty() {
        return Err(ClassificationErrorKind::MissingDescription);
    }
    let priority = priority.trim();
    if priority.is_empty() || !priority.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ClassificationErrorKind::BadPriority(priority.to_string()));
    }
    let priority: u8 = priority
        .parse()
        .map_err(|_| ClassificationErrorKind::BadPriority(priority.to_string()))?;
    Ok(Classification {
        name: name.to_ascii_lowercase(),
        description: description.trim_end().to_string(),
        priority,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_has_every_config_line() {
        let lines = BUNDLED
            .lines()
            .filter(|l| l.trim_start().starts_with("config classification:"))
            .count();
        let set = Classifications::bundled();
        // No duplicates in Suricata's file, so one classtype per `config` line.
        assert_eq!(set.len(), lines);
        assert_eq!(set.len(), 43);
        let c = set.get("trojan-activity").unwrap();
        assert_eq!(c.description, "A Network Trojan was detected");
        assert_eq!(c.priority, 1);
        // "Potentially Bad Traffic, 2": the space after the comma belongs to the separator.
        let c = set.get("bad-unknown").unwrap();
        assert_eq!(c.description, "Potentially Bad Traffic");
        assert_eq!(c.priority, 2);
        assert_eq!(set.get("tcp-connection").unwrap().priority, 4);
        assert_eq!(set.get("command-and-control").unwrap().priority, 1);
        assert_eq!(set.iter().next().unwrap().name, "not-suspicious");
        assert!(set.get("no-such-class").is_none());
    }

    #[test]
    fn lookup_is_case_insensitive_and_names_are_lowercased() {
        let set =
            Classifications::parse("config classification: Web-App,Web stuff,2\n", "t").unwrap();
        assert_eq!(set.get("web-app").unwrap().name, "web-app");
        assert_eq!(set.get("WEB-APP").unwrap().priority, 2);
    }

    #[test]
    fn description_may_contain_commas_and_spacing_is_free() {
        let text = "  config   classification :  x_1 ,  one, two ,three  ,  7  \r\n";
        let set = Classifications::parse(text, "t").unwrap();
        let c = set.get("x_1").unwrap();
        assert_eq!(c.description, "one, two ,three");
        assert_eq!(c.priority, 7);
        // `config` and `classification` may touch, as Suricata's `\s*` allows.
        let set = Classifications::parse("configclassification:a,b,1", "t").unwrap();
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn first_definition_wins() {
        let text = "config classification: a,First,1\nconfig classification: A,Second,2\n";
        let set = Classifications::parse(text, "t").unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set.get("a").unwrap().description, "First");
    }

    #[test]
    fn errors_name_file_and_line() {
        let text = "# header\n\nconfig classification: ok,Fine,1\n   # indented comment\nconfig classification: bad,No priority\n";
        let err = Classifications::parse(text, "/etc/x/classification.config").unwrap_err();
        assert_eq!(err.line, 5);
        assert_eq!(err.origin, "/etc/x/classification.config");
        assert!(err
            .to_string()
            .starts_with("/etc/x/classification.config:5: "));

        let cases: &[(&str, ClassificationErrorKind)] = &[
            (
                "config classification: 1abc,d,1",
                ClassificationErrorKind::BadName("1abc".into()),
            ),
            (
                "config classification: a.b,d,1",
                ClassificationErrorKind::BadName("a.b".into()),
            ),
            (
                "config classification: a,d,x",
                ClassificationErrorKind::BadPriority("x".into()),
            ),
            (
                "config classification: a,d,256",
                ClassificationErrorKind::BadPriority("256".into()),
            ),
            (
                "config classification: a,,1",
                ClassificationErrorKind::MissingDescription,
            ),
            (
                "config classification a,d,1",
                ClassificationErrorKind::Syntax,
            ),
            ("config reference: a,d,1", ClassificationErrorKind::Syntax),
            ("config classification: a", ClassificationErrorKind::Syntax),
            (
                "config classification: a,d,1 # trailing",
                ClassificationErrorKind::BadPriority("1 # trailing".into()),
            ),
        ];
        for (line, kind) in cases {
            let err = Classifications::parse(line, "f").unwrap_err();
            assert_eq!(&err.kind, kind, "{line}");
            assert_eq!(err.line, 1);
        }
    }
}
