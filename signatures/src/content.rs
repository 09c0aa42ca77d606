//! `content` patterns: parsing `"text|hex|"` values and finding them in a buffer window.

use memchr::memmem;

/// A number in a content modifier: a constant, or a `byte_extract`/`byte_math` variable slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Val {
    Const(i64),
    Var(usize),
}

impl Val {
    pub fn get(self, vars: &[u64]) -> i64 {
        match self {
            Val::Const(c) => c,
            Val::Var(slot) => vars.get(slot).map_or(0, |&v| v as i64),
        }
    }
}

/// Longest literal handed to the prefilter.
pub const MAX_PREFILTER_LEN: usize = 32;

/// How common a byte is in the text most traffic carries: 2 for lower-case letters and space
/// (and upper case when matched without case), 1 for digits, upper case, common punctuation
/// and line ends, 0 for the rest.
fn commonness(b: u8, nocase: bool) -> u8 {
    match b {
        b'a'..=b'z' | b' ' => 2,
        b'A'..=b'Z' if nocase => 2,
        b'A'..=b'Z' | b'0'..=b'9' | b'\t' | b'\r' | b'\n' => 1,
        b'.' | b',' | b'/' | b'<' | b'>' | b'=' | b'"' | b'\'' | b':' | b';' | b'-' | b'_' => 1,
        b'(' | b')' => 1,
        _ => 0,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FastPattern {
    #[default]
    Auto,
    /// `fast_pattern;`
    Chosen,
    /// `fast_pattern:only;` (kept for compatibility: Suricata 8 treats it as `fast_pattern`).
    Only,
    /// `fast_pattern:offset,length;` — only that slice goes to the prefilter.
    Chop(usize, usize),
}

#[derive(Debug, Clone)]
pub struct Content {
    pub pattern: Vec<u8>,
    pub nocase: bool,
    pub negated: bool,
    pub offset: Option<Val>,
    pub depth: Option<Val>,
    pub distance: Option<Val>,
    pub within: Option<Val>,
    pub startswith: bool,
    pub endswith: bool,
    pub fast_pattern: FastPattern,
    finder: memmem::Finder<'static>,
}

impl Content {
    pub fn new(pattern: Vec<u8>, negated: bool) -> Content {
        let finder = memmem::Finder::new(&pattern).into_owned();
        Content {
            pattern,
            nocase: false,
            negated,
            offset: None,
            depth: None,
            distance: None,
            within: None,
            startswith: false,
            endswith: false,
            fast_pattern: FastPattern::Auto,
            finder,
        }
    }

    pub fn is_relative(&self) -> bool {
        self.distance.is_some() || self.within.is_some()
    }

    /// The bytes the prefilter looks for: the fast pattern (or its chop), cut to
    /// `MAX_PREFILTER_LEN` bytes. Any part of a content is as necessary as the whole, and long
    /// literals make Hyperscan compile slowly for no gain in selectivity.
    ///
    /// Of a longer pattern, the part whose last two bytes are least common in text: Hyperscan
    /// checks every position where a literal's last bytes occur, so a literal ending in
    /// lower-case letters keeps it confirming all through text bodies. On ET Open's response
    /// `file.data` literals (594 of 2,052 are longer than this) a standalone Hyperscan scan of
    /// the reference's HTTP bodies ran 15-30 % faster (0.41-0.52 -> 0.48-0.63 GB/s over several
    /// runs); ties keep the earliest part.
    pub fn prefilter_bytes(&self) -> &[u8] {
        let p = self.fast_pattern_bytes();
        if p.len() <= MAX_PREFILTER_LEN {
            return p;
        }
        let ending =
            |end: usize| commonness(p[end - 1], self.nocase) + commonness(p[end - 2], self.nocase);
        let end = (MAX_PREFILTER_LEN..=p.len())
            .min_by_key(|&end| ending(end))
            .unwrap_or(MAX_PREFILTER_LEN);
        &p[end - MAX_PREFILTER_LEN..end]
    }

    fn fast_pattern_bytes(&self) -> &[u8] {
        match self.fast_pattern {
            FastPattern::Chop(off, len) => self
                .pattern
                .get(off..off.saturating_add(len))
                .unwrap_or(&self.pattern),
            _ => &self.pattern,
        }
    }

    /// The window `[start, end)` this content may match in, given the end of the previous
    /// match (`prev_end`, for relative contents). Suricata counts `depth` from `offset` and
    /// `within` from `distance`.
    pub fn window(&self, buf_len: usize, prev_end: usize, vars: &[u64]) -> Option<(usize, usize)> {
        self.window_at(buf_len, prev_end, vars, 0)
    }

    /// As [`window`](Self::window) for a buffer that is a piece of a stream starting at stream
    /// offset `base`: `offset` and `depth` then count from the stream's start, as in Suricata's
    /// stream inspection, so `depth:4` only matches the stream's first bytes, whatever piece of
    /// it is inspected.
    pub fn window_at(
        &self,
        buf_len: usize,
        prev_end: usize,
        vars: &[u64],
        base: u64,
    ) -> Option<(usize, usize)> {
        let len = buf_len as i64;
        let base = i64::try_from(base).unwrap_or(i64::MAX);
        let (start, end) = if self.is_relative() {
            let distance = self.distance.map_or(0, |d| d.get(vars));
            let start = prev_end as i64 + distance;
            let end = match self.within {
                Some(w) => (start + w.get(vars)).min(len),
                None => len,
            };
            (start.max(0), end)
        } else {
            let offset = self.offset.map_or(0, |o| o.get(vars));
            let end = match self.depth {
                Some(d) => offset
                    .saturating_add(d.get(vars))
                    .saturating_sub(base)
                    .min(len),
                None => len,
            };
            (offset.saturating_sub(base).max(0), end)
        };
        if start > len || end < start {
            return None;
        }
        Some((start as usize, end as usize))
    }

    /// Where the pattern starts in `buf[start..end]` (an absolute position), searching from
    /// `start`; `endswith` only accepts an occurrence ending the buffer.
    pub fn find(&self, buf: &[u8], start: usize, end: usize) -> Option<usize> {
        let plen = self.pattern.len();
        if self.endswith {
            let at = buf.len().checked_sub(plen)?;
            if at < start || buf.len() > end {
                return None;
            }
            return self.eq_at(buf, at).then_some(at);
        }
        let hay = buf.get(start..end)?;
        if hay.len() < plen {
            return None;
        }
        if self.nocase {
            find_nocase(hay, &self.pattern).map(|p| p + start)
        } else {
            self.finder.find(hay).map(|p| p + start)
        }
    }

    fn eq_at(&self, buf: &[u8], at: usize) -> bool {
        let Some(s) = buf.get(at..at + self.pattern.len()) else {
            return false;
        };
        if self.nocase {
            s.eq_ignore_ascii_case(&self.pattern)
        } else {
            s == self.pattern.as_slice()
        }
    }
}

fn find_nocase(hay: &[u8], pat: &[u8]) -> Option<usize> {
    let Some(&first) = pat.first() else {
        return Some(0);
    };
    let (lo, up) = (first.to_ascii_lowercase(), first.to_ascii_uppercase());
    let last_start = hay.len().checked_sub(pat.len())?;
    let mut from = 0;
    while from <= last_start {
        let i = from + memchr::memchr2(lo, up, &hay[from..=last_start])?;
        if hay[i..i + pat.len()].eq_ignore_ascii_case(pat) {
            return Some(i);
        }
        from = i + 1;
    }
    None
}

/// Parses a content value: optional `!`, a double-quoted string with `|hex|` runs and the
/// escapes `\" \; \\ \:`.
pub fn parse_content(value: &str) -> Result<(Vec<u8>, bool), String> {
    let mut v = value.trim();
    let negated = if let Some(rest) = v.strip_prefix('!') {
        v = rest.trim_start();
        true
    } else {
        false
    };
    let inner = v
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .ok_or_else(|| format!("expected a double-quoted string, found {v:?}"))?;
    let bytes = parse_pattern(inner)?;
    if bytes.is_empty() {
        return Err("content is empty".to_string());
    }
    Ok((bytes, negated))
}

/// Decodes pattern text (without quotes): literal bytes, `|41 42|` hex runs, escapes.
pub fn parse_pattern(inner: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(inner.len());
    let b = inner.as_bytes();
    let mut i = 0;
    let mut in_hex = false;
    let mut nibble: Option<u8> = None;
    while i < b.len() {
        let c = b[i];
        if in_hex {
            match c {
                b'|' => {
                    if nibble.is_some() {
                        return Err("odd number of hex digits in |..|".to_string());
                    }
                    in_hex = false;
                }
                b' ' | b'\t' => {}
                _ => {
                    let d = (c as char)
                        .to_digit(16)
                        .ok_or_else(|| format!("invalid hex digit {:?} in |..|", c as char))?
                        as u8;
                    match nibble.take() {
                        Some(h) => out.push(h << 4 | d),
                        None => nibble = Some(d),
                    }
                }
            }
        } else {
            match c {
                b'|' => in_hex = true,
                b'\\' => {
                    let n = *b.get(i + 1).ok_or("trailing '\\' in content")?;
                    match n {
                        b'"' | b';' | b'\\' | b':' => out.push(n),
                        _ => return Err(format!("invalid escape '\\{}'", n as char)),
                    }
                    i += 1;
                }
                b'"' => return Err("unescaped '\"' inside content".to_string()),
                b';' => return Err("unescaped ';' inside content".to_string()),
                _ => out.push(c),
            }
        }
        i += 1;
    }
    if in_hex {
        return Err("unterminated |..| hex run".to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_values() {
        assert_eq!(
            parse_content(r#""NSIS|5f|Inetc|20 28|x""#).unwrap(),
            (b"NSIS_Inetc (x".to_vec(), false)
        );
        assert_eq!(
            parse_content(r#"!"a\;b\"c""#).unwrap(),
            (b"a;b\"c".to_vec(), true)
        );
        assert!(parse_content(r#""|4|""#).is_err());
        assert!(parse_content(r#""|zz|""#).is_err());
        assert!(parse_content("abc").is_err());
        assert!(parse_content(r#""""#).is_err());
    }

    #[test]
    fn a_long_pattern_gives_the_prefilter_its_part_with_the_least_common_ending() {
        let short = Content::new(b"this program cannot be run".to_vec(), false);
        assert_eq!(short.prefilter_bytes(), b"this program cannot be run");
        // All letters: the first 32 bytes, as before.
        let text = Content::new(b"this program cannot be run in dos mode".to_vec(), false);
        assert_eq!(text.prefilter_bytes(), b"this program cannot be run in do");
        // A part ending in "|00|=" beats one ending in letters.
        let mixed = Content::new(
            b"function update the status of all\x00= and some more words".to_vec(),
            false,
        );
        let p = mixed.prefilter_bytes();
        assert_eq!(p.len(), MAX_PREFILTER_LEN);
        assert!(p.ends_with(b"\x00="), "{:?}", String::from_utf8_lossy(p));
        // Without case, upper-case letters are as common as lower-case ones.
        let mut caps = Content::new(
            b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxHTTP5 request".to_vec(),
            false,
        );
        assert!(caps.prefilter_bytes().ends_with(b"xHT"));
        caps.nocase = true;
        assert!(
            caps.prefilter_bytes().ends_with(b"TP5"),
            "the digit still counts"
        );
        let chop = Content {
            fast_pattern: FastPattern::Chop(2, 3),
            ..Content::new(b"abcdef".to_vec(), false)
        };
        assert_eq!(chop.prefilter_bytes(), b"cde");
    }

    #[test]
    fn windows_and_find() {
        let mut c = Content::new(b"abc".to_vec(), false);
        assert_eq!(c.find(b"xxabcxx", 0, 7), Some(2));
        c.nocase = true;
        assert_eq!(c.find(b"xxABcxx", 0, 7), Some(2));
        c.offset = Some(Val::Const(1));
        c.depth = Some(Val::Const(3));
        // depth counts from offset: window [1,4) cannot hold "abc" at 2.
        let (s, e) = c.window(7, 0, &[]).unwrap();
        assert_eq!((s, e), (1, 4));
        assert_eq!(c.find(b"xxabcxx", s, e), None);
        let mut r = Content::new(b"cd".to_vec(), false);
        r.distance = Some(Val::Const(1));
        r.within = Some(Val::Const(3));
        assert_eq!(r.window(10, 2, &[]), Some((3, 6)));
        let mut end = Content::new(b".su".to_vec(), false);
        end.endswith = true;
        assert_eq!(end.find(b"a.su.b.su", 0, 9), Some(6));
        assert_eq!(end.find(b"a.su.b", 0, 6), None);
    }
}
