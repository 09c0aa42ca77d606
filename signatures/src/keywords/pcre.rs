//! `pcre:[!]"/<regex>/<flags>"`, compiled with PCRE2 (JIT when the library has it) the way
//! Suricata 8 compiles it.
//!
//! # Flags
//!
//! | flag | meaning |
//! |------|---------|
//! | `i` `s` `m` `x` | caseless, dotall, multiline, extended |
//! | `A` | anchored: the match must start where the search starts |
//! | `E` | dollar-endonly: `$` matches only at the very end (ignored with `m`) |
//! | `G` | ungreedy |
//! | `R` | relative: search from the end of the previous match |
//! | `O` | override the match limits with the configured `pcre.match-limit*`; Vigil has no such setting, and Suricata's defaults are the same limits, so it changes nothing |
//! | `B` | Snort's rawbytes; accepted, no effect (refused after a buffer flag) |
//!
//! Buffer flags, each selecting the buffer the regex runs on (at most one per pcre). The
//! table is Suricata's (`DetectPcreParse`), with the sticky-buffer name the loader maps it to:
//!
//! | flag | buffer | Suricata list |
//! |------|--------|---------------|
//! | `U` | `http.uri` | normalized request URI |
//! | `I` | `http.uri.raw` | raw request URI |
//! | `P` | `http.request_body` | `http_client_body` |
//! | `Q` | `file.data` | response body (`file_data`) |
//! | `H` | `http.header` | normalized headers |
//! | `D` | `http.header.raw` | raw headers |
//! | `M` | `http.method` | request method |
//! | `C` | `http.cookie` | cookie header |
//! | `S` | `http.stat_code` | response status code |
//! | `Y` | `http.stat_msg` | response status message |
//! | `V` | `http.user_agent` | User-Agent header |
//! | `W` | `http.host` | normalized (lowercase) Host; the regex may not contain upper-case letters unless `i` is given |
//! | `Z` | `http.host.raw` | raw Host header |
//!
//! There is no `K` (raw cookie) flag in Suricata; any other letter is a rule error.
//!
//! # How the options reach PCRE2
//!
//! The `pcre2` crate exposes caseless/dotall/multiline/extended and JIT but not the other
//! compile options, nor a match context. The remaining options are written into the pattern,
//! which PCRE2 defines to be equivalent:
//!
//! - match limits: `(*LIMIT_MATCH=3500)(*LIMIT_DEPTH=1500)`, Suricata's
//!   `SC_MATCH_LIMIT_DEFAULT` and `SC_MATCH_LIMIT_RECURSION_DEFAULT`; a search that hits them
//!   is a matching error, which Suricata (and [`Pcre::is_match`]) count as no match even for a
//!   negated pcre;
//! - `G`: `(?U)`; Suricata's `PCRE2_NO_AUTO_CAPTURE`: `(?n)` (dropped again when the pattern
//!   refers to a numbered group, as Suricata retries without it);
//! - `A`: the pattern is wrapped as `\A(?:...)`;
//! - `E`: `$` outside character classes and escapes is rewritten to `\z` (not with `m`).
//!
//! The start-of-pattern items of the rule's own pattern (`(*UTF)`, `(*CRLF)`, ...) are kept in
//! front of these. An `A` pattern whose inline `(?x)` leaves a `#` comment open at its end
//! cannot be wrapped faithfully; ET Open has no `A` or `E` pcre.
//!
//! # Matching without allocating
//!
//! `pcre2::bytes::Regex` keeps its PCRE2 match data in an internal pool: the first thread that
//! searches owns one match-data block for the regex's life, other threads take one from a
//! sharded stack and put it back. After a regex has been used once on a thread, [`Pcre::find`]
//! and friends do not allocate. The JIT stack is PCRE2's default (32 KiB), as in Suricata.
//!
//! # Captures
//!
//! Suricata can store capture groups in packet/flow/alert variables, either by naming groups
//! `(?P<pkt_name>...)` / `(?P<flow_name>...)` or with a `, flow:name, pkt:name` list after
//! the regex. Vigil has no such variables yet: those rules are [`KeywordError::Unsupported`].

use super::{Cursor, KeywordError};
use pcre2::bytes::{Regex, RegexBuilder};

const KW: &str = "pcre";

/// Suricata's `SC_MATCH_LIMIT_DEFAULT`.
pub const MATCH_LIMIT: u32 = 3500;
/// Suricata's `SC_MATCH_LIMIT_RECURSION_DEFAULT` (PCRE2's depth limit).
pub const MATCH_LIMIT_DEPTH: u32 = 1500;

/// The buffer a pcre buffer flag selects; see the module table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PcreBufferFlag {
    /// `U`
    HttpUri,
    /// `I`
    HttpUriRaw,
    /// `P`
    HttpRequestBody,
    /// `Q`
    FileData,
    /// `H`
    HttpHeader,
    /// `D`
    HttpHeaderRaw,
    /// `M`
    HttpMethod,
    /// `C`
    HttpCookie,
    /// `S`
    HttpStatCode,
    /// `Y`
    HttpStatMsg,
    /// `V`
    HttpUserAgent,
    /// `W`
    HttpHost,
    /// `Z`
    HttpHostRaw,
}

impl PcreBufferFlag {
    /// The flag letter.
    pub fn flag(self) -> char {
        match self {
            PcreBufferFlag::HttpUri => 'U',
            PcreBufferFlag::HttpUriRaw => 'I',
            PcreBufferFlag::HttpRequestBody => 'P',
            PcreBufferFlag::FileData => 'Q',
            PcreBufferFlag::HttpHeader => 'H',
            PcreBufferFlag::HttpHeaderRaw => 'D',
            PcreBufferFlag::HttpMethod => 'M',
            PcreBufferFlag::HttpCookie => 'C',
            PcreBufferFlag::HttpStatCode => 'S',
            PcreBufferFlag::HttpStatMsg => 'Y',
            PcreBufferFlag::HttpUserAgent => 'V',
            PcreBufferFlag::HttpHost => 'W',
            PcreBufferFlag::HttpHostRaw => 'Z',
        }
    }

    /// The Suricata 8 sticky-buffer keyword for this buffer.
    pub fn buffer_name(self) -> &'static str {
        match self {
            PcreBufferFlag::HttpUri => "http.uri",
            PcreBufferFlag::HttpUriRaw => "http.uri.raw",
            PcreBufferFlag::HttpRequestBody => "http.request_body",
            PcreBufferFlag::FileData => "file.data",
            PcreBufferFlag::HttpHeader => "http.header",
            PcreBufferFlag::HttpHeaderRaw => "http.header.raw",
            PcreBufferFlag::HttpMethod => "http.method",
            PcreBufferFlag::HttpCookie => "http.cookie",
            PcreBufferFlag::HttpStatCode => "http.stat_code",
            PcreBufferFlag::HttpStatMsg => "http.stat_msg",
            PcreBufferFlag::HttpUserAgent => "http.user_agent",
            PcreBufferFlag::HttpHost => "http.host",
            PcreBufferFlag::HttpHostRaw => "http.host.raw",
        }
    }

    fn from_flag(c: char) -> Option<Self> {
        Some(match c {
            'U' => PcreBufferFlag::HttpUri,
            'I' => PcreBufferFlag::HttpUriRaw,
            'P' => PcreBufferFlag::HttpRequestBody,
            'Q' => PcreBufferFlag::FileData,
            'H' => PcreBufferFlag::HttpHeader,
            'D' => PcreBufferFlag::HttpHeaderRaw,
            'M' => PcreBufferFlag::HttpMethod,
            'C' => PcreBufferFlag::HttpCookie,
            'S' => PcreBufferFlag::HttpStatCode,
            'Y' => PcreBufferFlag::HttpStatMsg,
            'V' => PcreBufferFlag::HttpUserAgent,
            'W' => PcreBufferFlag::HttpHost,
            'Z' => PcreBufferFlag::HttpHostRaw,
            _ => return None,
        })
    }
}

/// The outcome of one search, before negation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcreOutcome {
    /// Match at `start..end` (positions in the whole buffer).
    Match {
        start: usize,
        end: usize,
    },
    NoMatch,
    /// PCRE2 gave up (match or depth limit, JIT stack): never a match, even negated.
    Error,
}

/// A `pcre` keyword. The pattern is checked when the rule loads and JIT-compiled the first time
/// it runs: most rules' regexes never run (their fast pattern never matches), and compiling all
/// of ET Open's ~4,000 up front costs start-up time and tens of megabytes of JIT code.
#[derive(Debug, Clone)]
pub struct Pcre {
    regex: std::sync::OnceLock<Regex>,
    /// The full pattern handed to PCRE2 (limits and inline options included) and its options.
    pattern: String,
    options: PcreOptions,
    /// The regex as written in the rule (between the slashes).
    pub source: String,
    /// The flag letters as written in the rule.
    pub flags: String,
    /// `pcre:!"..."`.
    pub negated: bool,
    /// `R`.
    pub relative: bool,
    /// `i`.
    pub caseless: bool,
    /// `B` (no effect).
    pub rawbytes: bool,
    /// The buffer a buffer flag selected, if any.
    pub buffer: Option<PcreBufferFlag>,
}

impl Pcre {
    /// Parses `[!]"/regex/flags"` (quotes optional; a leading `!` negates).
    pub fn parse(value: &str) -> Result<Pcre, KeywordError> {
        let bad = |r: String| KeywordError::invalid(KW, r);
        let mut v = value.trim();
        let mut negated = false;
        if let Some(rest) = v.strip_prefix('!') {
            negated = true;
            v = rest.trim_start();
        }
        if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
            v = &v[1..v.len() - 1];
        }

        // Variable capture: a `flow:`/`pkt:`/`alert:` list after the regex (Suricata cuts it
        // off when separated by ',' or ' '), or named groups `(?P<pkt_..>`/`(?P<flow_..>`.
        let regexstr = v;
        if let Some(cut) = ["flow:", "pkt:", "alert:"]
            .iter()
            .filter_map(|p| v.find(p))
            .min()
        {
            // Suricata treats the list as capture names only when ',' or ' ' precedes it.
            if cut > 1 && matches!(v.as_bytes()[cut - 1], b',' | b' ') {
                return Err(KeywordError::unsupported(
                    KW,
                    format!("capturing into variables ({:?})", &v[cut..]),
                ));
            }
        }
        if let Some(name) = named_capture_var(regexstr) {
            return Err(KeywordError::unsupported(
                KW,
                format!("capturing into variables (named group {name:?})"),
            ));
        }

        let (source, flags) =
            split_regex(regexstr).ok_or_else(|| bad(format!("pcre parse error: {value:?}")))?;

        let mut p = PcreOptions::default();
        let mut buffer: Option<PcreBufferFlag> = None;
        let mut rawbytes = false;
        let mut relative = false;
        let mut check_host = false;
        for c in flags.chars() {
            match c {
                'A' => p.anchored = true,
                'E' => p.dollar_endonly = true,
                'G' => p.ungreedy = true,
                'i' => p.caseless = true,
                'm' => p.multiline = true,
                's' => p.dotall = true,
                'x' => p.extended = true,
                'O' => {}
                'B' => {
                    if buffer.is_some() {
                        return Err(bad(
                            "regex modifier 'B' inconsistent with chosen buffer".into()
                        ));
                    }
                    rawbytes = true;
                }
                'R' => relative = true,
                _ => {
                    let Some(b) = PcreBufferFlag::from_flag(c) else {
                        return Err(bad(format!("unknown regex modifier {c:?}")));
                    };
                    // Suricata checks 'B' for these letters only.
                    if rawbytes && "UVWZHIMC".contains(c) {
                        return Err(bad(format!("regex modifier {c:?} inconsistent with 'B'")));
                    }
                    if buffer.is_some() {
                        return Err(bad(
                            "only one pcre option to specify a buffer type is allowed".into(),
                        ));
                    }
                    check_host |= c == 'W';
                    buffer = Some(b);
                }
            }
        }
        if check_host && !p.caseless && has_upper_case(source) {
            return Err(bad(
                "pcre host (W) has an upper-case character, but the host buffer is lower case"
                    .into(),
            ));
        }

        let pattern = check(source, &p).map_err(|e| bad(format!("compile of {source:?}: {e}")))?;
        Ok(Pcre {
            regex: std::sync::OnceLock::new(),
            pattern,
            options: p,
            source: source.to_string(),
            flags: flags.to_string(),
            negated,
            relative,
            caseless: p.caseless,
            rawbytes,
            buffer,
        })
    }

    /// The leftmost match (ignoring negation): from `cur.pos` with `R`, else from the start.
    pub fn find(&self, cur: &Cursor) -> Option<(usize, usize)> {
        match self.search(cur, 0) {
            PcreOutcome::Match { start, end } => Some((start, end)),
            _ => None,
        }
    }

    /// One search. The subject is the buffer from `cur.pos` with `R` (so `^` and `\A` match
    /// there, as in Suricata), else the whole buffer; `skip` bytes of the subject are skipped
    /// (Suricata's `pcre_match_start_offset` when it looks for a further occurrence: the
    /// skipped bytes stay visible to look-behind).
    pub fn search(&self, cur: &Cursor, skip: usize) -> PcreOutcome {
        let base = if self.relative { cur.pos } else { 0 };
        let Some(subject) = cur.buf.get(base..) else {
            return PcreOutcome::NoMatch;
        };
        if skip > subject.len() {
            return PcreOutcome::NoMatch;
        }
        match self.regex().find_at(subject, skip) {
            Ok(Some(m)) => PcreOutcome::Match {
                start: base + m.start(),
                end: base + m.end(),
            },
            Ok(None) => PcreOutcome::NoMatch,
            Err(_) => PcreOutcome::Error,
        }
    }

    /// Suricata's verdict: a match (or, negated, no match) is true; a matching error is false
    /// either way.
    pub fn is_match(&self, cur: &Cursor) -> bool {
        match self.search(cur, 0) {
            PcreOutcome::Match { .. } => !self.negated,
            PcreOutcome::NoMatch => self.negated,
            PcreOutcome::Error => false,
        }
    }
}

impl Pcre {
    fn regex(&self) -> &Regex {
        self.regex.get_or_init(|| {
            // The pattern compiled without JIT at load; if JIT cannot be had now (memory), the
            // interpreter runs it.
            builder(&self.options, true)
                .build(&self.pattern)
                .or_else(|_| builder(&self.options, false).build(&self.pattern))
                .expect("pattern compiled when the rule loaded")
        })
    }
}

/// Compile options that Suricata sets from the flags.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PcreOptions {
    pub caseless: bool,
    pub dotall: bool,
    pub multiline: bool,
    pub extended: bool,
    pub anchored: bool,
    pub dollar_endonly: bool,
    pub ungreedy: bool,
}

/// Checks that the pattern compiles as Suricata compiles it (match limits, no automatic capture
/// groups, retried with them when the pattern refers to a numbered group) — without JIT, which
/// is cheap — and returns the full pattern text.
fn check(source: &str, p: &PcreOptions) -> Result<String, pcre2::Error> {
    let pattern = pattern_text(source, p, true);
    match builder(p, false).build(&pattern) {
        Ok(_) => Ok(pattern),
        Err(_) => {
            let pattern = pattern_text(source, p, false);
            builder(p, false).build(&pattern).map(|_| pattern)
        }
    }
}

/// Compiles with the match limits only (no `(?n)`), for `pcrexform`, which needs its group.
pub(crate) fn compile_plain(source: &str) -> Result<Regex, pcre2::Error> {
    let p = PcreOptions::default();
    builder(&p, true).build(&pattern_text(source, &p, false))
}

fn builder(p: &PcreOptions, jit: bool) -> RegexBuilder {
    let mut b = RegexBuilder::new();
    b.caseless(p.caseless)
        .dotall(p.dotall)
        .multi_line(p.multiline)
        .extended(p.extended)
        .jit_if_available(jit);
    b
}

fn pattern_text(source: &str, p: &PcreOptions, no_auto_capture: bool) -> String {
    let (verbs, body) = split_leading_verbs(source);
    let mut pat = String::with_capacity(source.len() + 64);
    pat.push_str(&format!(
        "(*LIMIT_MATCH={MATCH_LIMIT})(*LIMIT_DEPTH={MATCH_LIMIT_DEPTH})"
    ));
    pat.push_str(verbs);
    if no_auto_capture {
        pat.push_str("(?n)");
    }
    if p.ungreedy {
        pat.push_str("(?U)");
    }
    let body = if p.dollar_endonly && !p.multiline {
        dollar_to_end_only(body, p.extended)
    } else {
        body.to_string()
    };
    if p.anchored {
        pat.push_str("\\A(?:");
        pat.push_str(&body);
        pat.push_str(if p.extended { "\n)" } else { ")" });
    } else {
        pat.push_str(&body);
    }
    pat
}

/// The start-of-pattern items (`(*UTF)`, `(*LIMIT_MATCH=1)`, `(*CRLF)`, ...) at the head of a
/// pattern, and the rest.
fn split_leading_verbs(source: &str) -> (&str, &str) {
    let mut i = 0;
    let b = source.as_bytes();
    while b[i..].starts_with(b"(*") {
        let Some(close) = source[i..].find(')') else {
            break;
        };
        let item = &source[i + 2..i + close];
        let name = item.split('=').next().unwrap_or("");
        let known = matches!(
            name,
            "UTF"
                | "UTF8"
                | "UCP"
                | "NO_AUTO_POSSESS"
                | "NO_DOTSTAR_ANCHOR"
                | "NO_JIT"
                | "NO_START_OPT"
                | "NOTEMPTY"
                | "NOTEMPTY_ATSTART"
                | "LIMIT_HEAP"
                | "LIMIT_MATCH"
                | "LIMIT_DEPTH"
                | "LIMIT_RECURSION"
                | "CR"
                | "LF"
                | "CRLF"
                | "ANYCRLF"
                | "ANY"
                | "NUL"
                | "BSR_ANYCRLF"
                | "BSR_UNICODE"
        );
        if !known {
            break;
        }
        i += close + 1;
    }
    source.split_at(i)
}

/// Rewrites `$` outside classes, escapes, `\Q..\E` and comments to `\z`.
fn dollar_to_end_only(body: &str, extended: bool) -> String {
    let b = body.as_bytes();
    let mut out = String::with_capacity(body.len() + 8);
    let mut i = 0;
    let mut start = 0;
    let flush = |out: &mut String, from: usize, to: usize| out.push_str(&body[from..to]);
    while i < b.len() {
        match b[i] {
            b'\\' => {
                if b.get(i + 1) == Some(&b'Q') {
                    i = match body[i + 2..].find("\\E") {
                        Some(e) => i + 2 + e + 2,
                        None => b.len(),
                    };
                } else {
                    i += 2;
                }
            }
            b'[' => {
                // A class: `]` right after `[` or `[^` is literal; `[:name:]` nests.
                let mut j = i + 1;
                if b.get(j) == Some(&b'^') {
                    j += 1;
                }
                if b.get(j) == Some(&b']') {
                    j += 1;
                }
                while j < b.len() && b[j] != b']' {
                    if b[j] == b'\\' {
                        j += 2;
                        continue;
                    }
                    if b[j] == b'[' && b.get(j + 1) == Some(&b':') {
                        if let Some(e) = body[j + 2..].find(":]") {
                            j += 2 + e + 2;
                            continue;
                        }
                    }
                    j += 1;
                }
                i = j + 1;
            }
            b'(' if body[i..].starts_with("(?#") => {
                i = match body[i..].find(')') {
                    Some(e) => i + e + 1,
                    None => b.len(),
                };
            }
            b'#' if extended => {
                i = match body[i..].find('\n') {
                    Some(e) => i + e + 1,
                    None => b.len(),
                };
            }
            b'$' => {
                flush(&mut out, start, i);
                out.push_str("\\z");
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    flush(&mut out, start, b.len().min(body.len()));
    out
}

/// Suricata's PARSE_REGEX `(?<!\\)/(.*(?<!(?<!\\)\\))/([^"]*)`: the regex runs from the first
/// unescaped `/` to the last `/` that is not escaped by a single backslash; the flags follow up
/// to a `"`.
fn split_regex(s: &str) -> Option<(&str, &str)> {
    let b = s.as_bytes();
    for open in 0..b.len() {
        if b[open] != b'/' || (open > 0 && b[open - 1] == b'\\') {
            continue;
        }
        // `.` does not cross a newline.
        let limit = b[open + 1..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(b.len(), |p| open + 1 + p);
        let mut close = None;
        for j in (open + 1..limit).rev() {
            if b[j] != b'/' {
                continue;
            }
            // `(?<!(?<!\\)\\)`: not preceded by a backslash that is itself unescaped.
            let escaped = b[j - 1] == b'\\' && !(j >= 2 && b[j - 2] == b'\\');
            if !escaped {
                close = Some(j);
                break;
            }
        }
        if let Some(close) = close {
            let flags_end = b[close + 1..]
                .iter()
                .position(|&c| c == b'"')
                .map_or(b.len(), |p| close + 1 + p);
            return Some((&s[open + 1..close], &s[close + 1..flags_end]));
        }
    }
    None
}

/// The first `(?P<pkt_x>` or `(?P<flow_x>` group name (Suricata's PARSE_CAPTURE_REGEX).
fn named_capture_var(s: &str) -> Option<&str> {
    let mut rest = s;
    while let Some(i) = rest.find("(?P<") {
        let after = &rest[i + 4..];
        let end = after.find('>').unwrap_or(after.len());
        let name = &after[..end];
        if let Some((ty, var)) = name.split_once('_') {
            if matches!(ty, "pkt" | "flow") && !var.is_empty() {
                return Some(name);
            }
        }
        rest = after;
    }
    None
}

/// Suricata's `DetectPcreHasUpperCase`: an upper-case letter outside `\` escapes (and the two
/// digits of a `\x` escape).
fn has_upper_case(re: &str) -> bool {
    let mut is_meta = false;
    let mut hex_left = 0;
    for &c in re.as_bytes() {
        if hex_left > 0 {
            hex_left -= 1;
        } else if is_meta {
            // As in Suricata, `\x` keeps the escape state open after its two digits.
            if c == b'x' {
                hex_left = 2;
            } else {
                is_meta = false;
            }
        } else if c == b'\\' {
            is_meta = true;
        } else if c.is_ascii_uppercase() {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cur(buf: &[u8], pos: usize) -> Cursor<'_> {
        Cursor { buf, pos }
    }

    #[test]
    fn parses_flags_and_buffers() {
        let p = Pcre::parse(r#""/^GET \/foo/Ui""#).unwrap();
        assert_eq!(p.source, r"^GET \/foo");
        assert_eq!(p.flags, "Ui");
        assert_eq!(p.buffer, Some(PcreBufferFlag::HttpUri));
        assert!(p.caseless && !p.relative && !p.negated);
        assert_eq!(PcreBufferFlag::HttpUri.buffer_name(), "http.uri");

        let p = Pcre::parse(r#"!"/abc/R""#).unwrap();
        assert!(p.negated && p.relative);
        let p = Pcre::parse(r"/a\/b\\/smi").unwrap();
        assert_eq!(p.source, r"a\/b\\");
        assert_eq!(p.flags, "smi");

        assert!(Pcre::parse("/abc/K").is_err());
        assert!(Pcre::parse("/abc/UH").is_err());
        assert!(Pcre::parse("/abc/BU").is_err());
        assert!(Pcre::parse("abc").is_err());
        assert!(Pcre::parse("/(abc/").is_err());
        assert!(Pcre::parse("/Host/W").is_err());
        assert!(Pcre::parse("/Host/Wi").is_ok());
        assert!(Pcre::parse(r"/\x41host/W").is_ok());
        assert!(Pcre::parse("/a(b)\\1/").is_ok(), "backreference compiles");
    }

    #[test]
    fn capture_is_unsupported() {
        let e = Pcre::parse(r#""/(?P<pkt_ua>[a-z]+)/""#).unwrap_err();
        assert!(e.is_unsupported(), "{e}");
        let e = Pcre::parse(r#""/([a-z]+)\/(.+)/GUR, flow:ua/repo,flow:ua/pkg""#).unwrap_err();
        assert!(e.is_unsupported(), "{e}");
        // A named group of another kind is fine.
        assert!(Pcre::parse(r"/(?P<foo_bar>x)/").is_ok());
    }

    #[test]
    fn finds_and_relative() {
        let p = Pcre::parse("/b+c/").unwrap();
        assert_eq!(p.find(&cur(b"abbbcd", 0)), Some((1, 5)));
        let p = Pcre::parse("/^c/R").unwrap();
        assert_eq!(
            p.find(&cur(b"abcd", 2)),
            Some((2, 3)),
            "^ anchors at the cursor"
        );
        assert_eq!(p.find(&cur(b"abcd", 1)), None);
        assert_eq!(p.find(&cur(b"abcd", 9)), None);
        let p = Pcre::parse("/AB/i").unwrap();
        assert!(p.is_match(&cur(b"xxab", 0)));
        let n = Pcre::parse("!/AB/").unwrap();
        assert!(n.is_match(&cur(b"xxab", 0)));
        assert!(!n.is_match(&cur(b"xxAB", 0)));
    }

    #[test]
    fn flags_map_to_pcre_options() {
        // s: dot matches newline
        assert!(Pcre::parse("/a.b/s").unwrap().is_match(&cur(b"a\nb", 0)));
        assert!(!Pcre::parse("/a.b/").unwrap().is_match(&cur(b"a\nb", 0)));
        // m: ^ after newline
        assert!(Pcre::parse("/^b/m").unwrap().is_match(&cur(b"a\nb", 0)));
        assert!(!Pcre::parse("/^b/").unwrap().is_match(&cur(b"a\nb", 0)));
        // x: white space ignored, comments
        assert!(Pcre::parse("/a b # c/x").unwrap().is_match(&cur(b"ab", 0)));
        // G: ungreedy
        assert_eq!(
            Pcre::parse("/a.+/G").unwrap().find(&cur(b"abcd", 0)),
            Some((0, 2))
        );
        assert_eq!(
            Pcre::parse("/a.+/").unwrap().find(&cur(b"abcd", 0)),
            Some((0, 4))
        );
        // A: anchored at the start of the subject
        let a = Pcre::parse("/b|c/A").unwrap();
        assert!(!a.is_match(&cur(b"abc", 0)));
        assert!(a.is_match(&cur(b"cab", 0)));
        assert!(Pcre::parse("/b # x/Ax").unwrap().is_match(&cur(b"b", 0)));
        // E: $ only at the very end
        assert!(Pcre::parse("/a$/").unwrap().is_match(&cur(b"a\n", 0)));
        assert!(!Pcre::parse("/a$/E").unwrap().is_match(&cur(b"a\n", 0)));
        assert!(Pcre::parse("/a$/E").unwrap().is_match(&cur(b"a", 0)));
        assert!(Pcre::parse("/a[$]/E").unwrap().is_match(&cur(b"a$", 0)));
        assert!(Pcre::parse(r"/a\$/E").unwrap().is_match(&cur(b"a$", 0)));
        // start-of-pattern items stay first
        assert!(Pcre::parse("/(*CRLF)a$/mA")
            .unwrap()
            .is_match(&cur(b"a\r\n", 0)));
    }

    #[test]
    fn match_limit_is_an_error_not_a_match() {
        // Catastrophic backtracking: exceeds 3500 match() calls.
        let p = Pcre::parse("/(a+)+$/").unwrap();
        let subject = [b'a'; 40].iter().chain(b"!").copied().collect::<Vec<u8>>();
        assert_eq!(p.search(&cur(&subject, 0), 0), PcreOutcome::Error);
        let n = Pcre::parse("!/(a+)+$/").unwrap();
        assert!(!n.is_match(&cur(&subject, 0)));
    }

    #[test]
    fn search_skip_keeps_lookbehind() {
        let p = Pcre::parse("/(?<=a)b/").unwrap();
        assert_eq!(
            p.search(&cur(b"abab", 0), 1),
            PcreOutcome::Match { start: 1, end: 2 }
        );
        assert_eq!(
            p.search(&cur(b"abab", 0), 2),
            PcreOutcome::Match { start: 3, end: 4 }
        );
        assert_eq!(p.search(&cur(b"abab", 0), 5), PcreOutcome::NoMatch);
    }

    #[test]
    fn split_regex_follows_suricata() {
        assert_eq!(split_regex("/abc/i"), Some(("abc", "i")));
        assert_eq!(split_regex("/a/b/c/i"), Some(("a/b/c", "i")));
        assert_eq!(split_regex(r"/a\/"), None);
        assert_eq!(split_regex(r"/a\\/s"), Some((r"a\\", "s")));
        assert_eq!(split_regex(r#"/x/i" junk"#), Some(("x", "i")));
        assert_eq!(split_regex("//"), Some(("", "")));
    }
}
