//! `base64_decode` and `base64_data`, and the base64 decoder Suricata 8 uses for them and for
//! the `from_base64` transform.
//!
//! # Modes
//!
//! - [`Base64Mode::Rfc4648`] (the `base64_decode` keyword and the `from_base64` default):
//!   decoding stops at the first byte outside the alphabet; a last group of 2 or 3 characters
//!   is decoded as if padded, a lone last character is an error.
//! - [`Base64Mode::Rfc2045`]: bytes outside the alphabet are skipped; a last incomplete group is
//!   dropped.
//! - [`Base64Mode::Strict`]: standard base64 with canonical padding; anything else decodes to
//!   nothing.
//!
//! In both lenient modes `=` is taken as part of the alphabet: a group with `=` in its first
//! two places is an error, `xx=y` decodes one byte. An error ends decoding and keeps what was
//! decoded before it (Suricata 8's `SCBase64Decode`).

use super::{Cursor, KeywordError};

/// Base64 decoding mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base64Mode {
    Rfc4648,
    Rfc2045,
    Strict,
}

fn b64(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Decodes one group of four (alphabet bytes or `=`); `None` on a misplaced `=`.
fn decode_group(g: [u8; 4], out: &mut Vec<u8>) -> Option<()> {
    let a = b64(g[0])?;
    let b = b64(g[1])?;
    if g[2] == b'=' {
        out.push((a << 2) | (b >> 4));
        return Some(());
    }
    let c = b64(g[2])?;
    if g[3] == b'=' {
        out.push((a << 2) | (b >> 4));
        out.push((b << 4) | (c >> 2));
        return Some(());
    }
    let d = b64(g[3])?;
    out.push((a << 2) | (b >> 4));
    out.push((b << 4) | (c >> 2));
    out.push((c << 6) | d);
    Some(())
}

/// Appends the decoding of `input` to `out`; returns the number of bytes appended.
pub fn decode_into(mode: Base64Mode, input: &[u8], out: &mut Vec<u8>) -> usize {
    let before = out.len();
    let in_alphabet = |c: u8| b64(c).is_some() || c == b'=';
    match mode {
        Base64Mode::Rfc4648 => {
            let mut g = [0u8; 4];
            let mut n = 0;
            for &c in input {
                if !in_alphabet(c) {
                    break;
                }
                g[n] = c;
                n += 1;
                if n == 4 {
                    if decode_group(g, out).is_none() {
                        return out.len() - before;
                    }
                    n = 0;
                }
            }
            if n > 0 {
                for slot in g.iter_mut().skip(n) {
                    *slot = b'=';
                }
                let _ = decode_group(g, out);
            }
        }
        Base64Mode::Rfc2045 => {
            let mut g = [0u8; 4];
            let mut n = 0;
            for &c in input.iter().filter(|&&c| in_alphabet(c)) {
                g[n] = c;
                n += 1;
                if n == 4 {
                    if decode_group(g, out).is_none() {
                        return out.len() - before;
                    }
                    n = 0;
                }
            }
        }
        Base64Mode::Strict => {
            use base64::Engine as _;
            if base64::engine::general_purpose::STANDARD
                .decode_vec(input, out)
                .is_err()
            {
                out.truncate(before);
            }
        }
    }
    out.len() - before
}

/// Suricata's `BASE64_DECODE_MAX`: the `bytes` default.
pub const BASE64_DECODE_MAX: u32 = 65535;

/// `base64_decode[:bytes <n>][, offset <n>][, relative]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Base64Decode {
    /// Bytes of encoded input to decode at most (0 in the rule means [`BASE64_DECODE_MAX`]).
    pub bytes: u32,
    pub offset: u32,
    pub relative: bool,
}

impl Base64Decode {
    /// Parses the value (`None` for a bare `base64_decode;`). As Suricata's option regex
    /// `\s*(bytes\s+(\d+),?)?\s*(offset\s+(\d+),?)?\s*(\w+)?`: `bytes` before `offset`, an
    /// optional last word that must be `relative`, and at least one of them.
    pub fn parse(value: Option<&str>) -> Result<Base64Decode, KeywordError> {
        const KW: &str = "base64_decode";
        let mut d = Base64Decode {
            bytes: BASE64_DECODE_MAX,
            offset: 0,
            relative: false,
        };
        let Some(s) = value else {
            return Ok(d);
        };
        let bad = |r: String| KeywordError::invalid(KW, r);
        let ws = |c: char| c.is_ascii_whitespace();
        // `word\s+(\d+),?` at the head of `s`: the digits and the rest.
        fn numbered<'a>(s: &'a str, word: &str) -> Option<(&'a str, &'a str)> {
            let r = s.strip_prefix(word)?;
            let r2 = r.trim_start_matches(|c: char| c.is_ascii_whitespace());
            if r2.len() == r.len() {
                return None;
            }
            let end = r2.find(|c: char| !c.is_ascii_digit()).unwrap_or(r2.len());
            if end == 0 {
                return None;
            }
            let rest = &r2[end..];
            Some((&r2[..end], rest.strip_prefix(',').unwrap_or(rest)))
        }
        let mut rest = s.trim_start_matches(ws);
        let mut highest = 0;
        if let Some((digits, r)) = numbered(rest, "bytes") {
            let n: u32 = digits
                .parse()
                .map_err(|_| bad(format!("bytes out of range: {digits}")))?;
            d.bytes = if n == 0 { BASE64_DECODE_MAX } else { n };
            rest = r;
            highest = 2;
        }
        rest = rest.trim_start_matches(ws);
        if let Some((digits, r)) = numbered(rest, "offset") {
            let n: u32 = digits
                .parse()
                .map_err(|_| bad(format!("offset out of range: {digits}")))?;
            if n > u32::from(u16::MAX) {
                return Err(bad(format!("offset over 65535: {n}")));
            }
            d.offset = n;
            rest = r;
            highest = 4;
        }
        rest = rest.trim_start_matches(ws);
        let word_end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if word_end > 0 {
            if &rest[..word_end] != "relative" {
                return Err(bad(format!("invalid argument {:?}", &rest[..word_end])));
            }
            d.relative = true;
            highest = 5;
        }
        if highest < 2 {
            return Err(bad(format!("malformed value {s:?}")));
        }
        Ok(d)
    }

    /// Decodes (RFC 4648 mode) into `out` (cleared first) what `base64_data` then inspects;
    /// `true` when something was decoded.
    pub fn decode(&self, cur: &Cursor, out: &mut Vec<u8>) -> bool {
        out.clear();
        let mut data = cur.buf;
        if self.relative {
            match data.get(cur.pos..) {
                Some(d) => data = d,
                None => return false,
            }
        }
        if self.offset > 0 {
            if self.offset as usize >= data.len() {
                return false;
            }
            data = &data[self.offset as usize..];
        }
        let n = data.len().min(self.bytes as usize);
        if n == 0 {
            return false;
        }
        decode_into(Base64Mode::Rfc4648, &data[..n], out) > 0
    }
}

/// `base64_data`: the sticky buffer holding what the last `base64_decode` produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Base64Data;

impl Base64Data {
    /// `base64_data` takes no value.
    pub fn parse(value: Option<&str>) -> Result<Base64Data, KeywordError> {
        match value {
            None => Ok(Base64Data),
            Some(v) => Err(KeywordError::invalid(
                "base64_data",
                format!("takes no value, got {v:?}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(mode: Base64Mode, s: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        decode_into(mode, s, &mut out);
        out
    }

    #[test]
    fn rfc4648_vectors() {
        use Base64Mode::Rfc4648 as M;
        assert_eq!(dec(M, b""), b"");
        assert_eq!(dec(M, b"Zg=="), b"f");
        assert_eq!(dec(M, b"Zm8="), b"fo");
        assert_eq!(dec(M, b"Zm9v"), b"foo");
        assert_eq!(dec(M, b"Zm9vYg=="), b"foob");
        assert_eq!(dec(M, b"Zm9vYmE="), b"fooba");
        assert_eq!(dec(M, b"Zm9vYmFy"), b"foobar");
        assert_eq!(dec(M, b"Zm 9v Ym Fy"), b"f");
        assert_eq!(dec(M, b"Zm$9vYm.Fy"), b"f");
        assert_eq!(dec(M, b"Zm9vYg"), b"foob", "unpadded tail decoded");
        assert_eq!(dec(M, b"Zm9vY"), b"foo", "lone last character is an error");
        assert_eq!(dec(M, b"Zm9v=AAA"), b"foo", "misplaced = ends decoding");
        assert_eq!(dec(M, b"dGVzdAo=&not"), b"test\n");
    }

    #[test]
    fn rfc2045_and_strict() {
        assert_eq!(dec(Base64Mode::Rfc2045, b"Zm 9v Ym Fy"), b"foobar");
        assert_eq!(dec(Base64Mode::Rfc2045, b"Zm$9vYm.Fy"), b"foobar");
        assert_eq!(
            dec(Base64Mode::Rfc2045, b"Zm9vYg"),
            b"foo",
            "incomplete group dropped"
        );
        assert_eq!(dec(Base64Mode::Strict, b"Zm9vYg=="), b"foob");
        assert_eq!(dec(Base64Mode::Strict, b"Zm9vYg"), b"");
        assert_eq!(dec(Base64Mode::Strict, b"Zm 9v"), b"");
    }

    #[test]
    fn parse_base64_decode() {
        let d = Base64Decode::parse(Some("bytes 8, offset 1, relative")).unwrap();
        assert_eq!((d.bytes, d.offset, d.relative), (8, 1, true));
        let d = Base64Decode::parse(None).unwrap();
        assert_eq!((d.bytes, d.offset, d.relative), (65535, 0, false));
        let d = Base64Decode::parse(Some("relative")).unwrap();
        assert!(d.relative);
        let d = Base64Decode::parse(Some("bytes 0")).unwrap();
        assert_eq!(d.bytes, 65535);
        assert!(Base64Decode::parse(Some("offset 5, bytes 8")).is_err());
        assert!(Base64Decode::parse(Some("bytes 8, foo")).is_err());
        assert!(Base64Decode::parse(Some("")).is_err());
        assert!(Base64Decode::parse(Some("offset 70000")).is_err());
        assert!(Base64Data::parse(None).is_ok());
        assert!(Base64Data::parse(Some("x")).is_err());
    }

    #[test]
    fn decode_keyword() {
        // The documentation example: http.uri "GET /en/somestring&dGVzdAo=&not_base64",
        // content "somestring" ends at 18; bytes 8, offset 1, relative.
        let buf = b"GET /en/somestring&dGVzdAo=&not_base64";
        let d = Base64Decode::parse(Some("bytes 8, offset 1, relative")).unwrap();
        let mut out = Vec::new();
        assert!(d.decode(&Cursor { buf, pos: 18 }, &mut out));
        assert_eq!(out, b"test\n");
        // offset at or past the end: no match
        let d = Base64Decode::parse(Some("offset 20, relative")).unwrap();
        assert!(!d.decode(&Cursor { buf, pos: 18 }, &mut out));
        assert!(!d.decode(&Cursor { buf, pos: 99 }, &mut out));
    }
}
