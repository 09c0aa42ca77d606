//! Transforms: keywords after a sticky buffer that rewrite the buffer before inspection, as
//! Suricata 8 implements them.
//!
//! | transform | output |
//! |-----------|--------|
//! | `to_lowercase` / `to_uppercase` | ASCII case changed, other bytes as they are |
//! | `strip_whitespace` | ASCII white space (`\t \n \x0c \r` and space) removed |
//! | `compress_whitespace` | each run of white space (`\t \n \x0b \x0c \r` space) kept as its *first* byte |
//! | `url_decode` | `%XX` (either case) decoded, `+` to space; a bad or cut `%` escape is kept as written |
//! | `dotprefix` | a `.` prepended |
//! | `to_md5` / `to_sha1` / `to_sha256` | the raw digest (16/20/32 bytes), not hex |
//! | `header_lowercase` | header names (up to the first `:` of each line) lower-cased |
//! | `strip_pseudo_headers` | lines starting with `:` (HTTP/2 pseudo headers) removed |
//! | `xor:"<hex key>"` | each byte XOR-ed with the key, repeated |
//! | `pcrexform:"<regex>"` | the regex's single capture group; no match fails the buffer |
//! | `from_base64[:bytes N, offset N, mode rfc4648\|rfc2045\|strict]` | the decoded data; nothing decoded fails the buffer |
//!
//! As in Suricata, every transform except `pcrexform` leaves an empty buffer empty (so the
//! hash of an empty buffer is the empty buffer, not the digest of nothing).
//!
//! [`Transform::apply`] writes into a caller-owned `Vec` that it clears first; once that `Vec`
//! has grown to the largest buffer seen, applying a transform allocates nothing. It returns
//! `false` when the transform fails (`pcrexform` without a match, `from_base64` decoding
//! nothing), which Suricata treats as a buffer that cannot match.
//!
//! Not supported: `domain` and `tld` (need the public suffix list), `luaxform` (Lua),
//! `gunzip` / `zlib_deflate`; they are [`KeywordError::Unsupported`].

use super::base64::{decode_into, Base64Mode};
use super::bytes::{name_and_value, nom_fields};
use super::pcre::compile_plain;
use super::KeywordError;
use md5::Md5;
use pcre2::bytes::{CaptureLocations, Regex};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::sync::Mutex;

/// One transform of a sticky buffer.
#[derive(Debug)]
pub enum Transform {
    ToLowercase,
    ToUppercase,
    StripWhitespace,
    CompressWhitespace,
    UrlDecode,
    DotPrefix,
    ToMd5,
    ToSha1,
    ToSha256,
    HeaderLowercase,
    StripPseudoHeaders,
    /// `xor:"<hex key>"`: the key bytes (1 to 255).
    Xor(Vec<u8>),
    PcreXform(Box<PcreXform>),
    FromBase64(FromBase64),
}

/// `pcrexform:"<regex>"`: the buffer becomes the regex's one capture group.
#[derive(Debug)]
pub struct PcreXform {
    regex: Regex,
    /// The regex as written.
    pub source: String,
    /// Reused capture locations; a thread that finds it busy uses a fresh one.
    locs: Mutex<CaptureLocations>,
}

/// `from_base64` options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FromBase64 {
    /// Bytes to decode (0: all). When it is not smaller than what is left after `offset`, the
    /// buffer is left as it was (Suricata's behaviour).
    pub nbytes: u32,
    /// Bytes to skip first. When it is not smaller than the buffer, the buffer is left as it was.
    pub offset: u32,
    pub mode: Base64Mode,
}

impl Transform {
    /// Parses a transform keyword and its value (`None` when the keyword has no `:value`).
    pub fn parse(name: &str, value: Option<&str>) -> Result<Transform, KeywordError> {
        let noopt = |t: Transform, kw: &'static str| match value {
            None => Ok(t),
            Some(v) => Err(KeywordError::invalid(
                kw,
                format!("takes no value, got {v:?}"),
            )),
        };
        match name {
            "to_lowercase" => noopt(Transform::ToLowercase, "to_lowercase"),
            "to_uppercase" => noopt(Transform::ToUppercase, "to_uppercase"),
            "strip_whitespace" => noopt(Transform::StripWhitespace, "strip_whitespace"),
            "compress_whitespace" => noopt(Transform::CompressWhitespace, "compress_whitespace"),
            "url_decode" => noopt(Transform::UrlDecode, "url_decode"),
            "dotprefix" => noopt(Transform::DotPrefix, "dotprefix"),
            "to_md5" => noopt(Transform::ToMd5, "to_md5"),
            "to_sha1" => noopt(Transform::ToSha1, "to_sha1"),
            "to_sha256" => noopt(Transform::ToSha256, "to_sha256"),
            "header_lowercase" => noopt(Transform::HeaderLowercase, "header_lowercase"),
            "strip_pseudo_headers" => noopt(Transform::StripPseudoHeaders, "strip_pseudo_headers"),
            "xor" => parse_xor(value).map(Transform::Xor),
            "pcrexform" => PcreXform::parse(value).map(|p| Transform::PcreXform(Box::new(p))),
            "from_base64" => FromBase64::parse(value).map(Transform::FromBase64),
            "domain" | "tld" => Err(KeywordError::unsupported(
                if name == "domain" { "domain" } else { "tld" },
                "the public suffix list transform",
            )),
            "luaxform" => Err(KeywordError::unsupported("luaxform", "Lua transforms")),
            "gunzip" | "zlib_deflate" => Err(KeywordError::unsupported(
                if name == "gunzip" {
                    "gunzip"
                } else {
                    "zlib_deflate"
                },
                "decompression transforms",
            )),
            _ => Err(KeywordError::invalid(
                "transform",
                format!("unknown transform {name:?}"),
            )),
        }
    }

    /// Writes the transformed `input` into `out` (cleared first). Returns `false` when the
    /// transform failed and the buffer cannot match.
    pub fn apply(&self, input: &[u8], out: &mut Vec<u8>) -> bool {
        out.clear();
        if input.is_empty() && !matches!(self, Transform::PcreXform(_)) {
            return true;
        }
        match self {
            Transform::ToLowercase => out.extend(input.iter().map(u8::to_ascii_lowercase)),
            Transform::ToUppercase => out.extend(input.iter().map(u8::to_ascii_uppercase)),
            Transform::StripWhitespace => {
                out.extend(input.iter().copied().filter(|b| !b.is_ascii_whitespace()))
            }
            Transform::CompressWhitespace => {
                let mut space = false;
                for &c in input {
                    let ws = matches!(c, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ');
                    if !ws || !space {
                        out.push(c);
                    }
                    space = ws;
                }
            }
            Transform::UrlDecode => url_decode(input, out),
            Transform::DotPrefix => {
                out.push(b'.');
                out.extend_from_slice(input);
            }
            Transform::ToMd5 => out.extend_from_slice(&Md5::digest(input)),
            Transform::ToSha1 => out.extend_from_slice(&Sha1::digest(input)),
            Transform::ToSha256 => out.extend_from_slice(&Sha256::digest(input)),
            Transform::HeaderLowercase => {
                let mut in_value = false;
                for &c in input {
                    if in_value {
                        out.push(c);
                        in_value = c != b'\n';
                    } else if c == b':' {
                        out.push(c);
                        in_value = true;
                    } else {
                        out.push(c.to_ascii_lowercase());
                    }
                }
            }
            Transform::StripPseudoHeaders => {
                for line in input.split_inclusive(|&c| c == b'\n') {
                    if line.first() != Some(&b':') {
                        out.extend_from_slice(line);
                    }
                }
            }
            Transform::Xor(key) => {
                out.extend(input.iter().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
            }
            Transform::PcreXform(p) => return p.apply(input, out),
            Transform::FromBase64(b) => return b.apply(input, out),
        }
        true
    }

    /// Suricata's transform validation of a `content` that follows the transform: `false` when
    /// the content can never match the transformed buffer (e.g. upper case after
    /// `to_lowercase`), which Suricata reports as a rule error.
    pub fn content_can_match(&self, content: &[u8]) -> bool {
        match self {
            Transform::ToLowercase => !content.iter().any(u8::is_ascii_uppercase),
            Transform::ToUppercase => !content.iter().any(u8::is_ascii_lowercase),
            Transform::StripWhitespace => !content.iter().any(u8::is_ascii_whitespace),
            Transform::CompressWhitespace => {
                let ws = |c: &u8| matches!(c, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ');
                !content.windows(2).any(|w| ws(&w[0]) && ws(&w[1]))
            }
            _ => true,
        }
    }
}

fn url_decode(input: &[u8], out: &mut Vec<u8>) {
    let hex = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'A'..=b'F' => Some(c - b'A' + 10),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    };
    // state: 0 outside an escape, 1 after '%', 2 after '%' and one hex digit (in `first`).
    let mut state = 0u8;
    let mut first = 0u8;
    for &c in input {
        match state {
            0 => {
                if c == b'%' {
                    state = 1;
                } else {
                    out.push(if c == b'+' { b' ' } else { c });
                }
            }
            _ => match hex(c) {
                Some(_) if state == 1 => {
                    first = c;
                    state = 2;
                }
                Some(v) => {
                    out.push((hex(first).unwrap_or(0) << 4) | v);
                    state = 0;
                }
                None => {
                    out.push(b'%');
                    if state == 2 {
                        out.push(first);
                    }
                    out.push(c);
                    state = 0;
                }
            },
        }
    }
    if state > 0 {
        out.push(b'%');
        if state == 2 {
            out.push(first);
        }
    }
}

fn strip_quotes(v: &str) -> &str {
    let v = v.trim();
    if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
        &v[1..v.len() - 1]
    } else {
        v
    }
}

fn parse_xor(value: Option<&str>) -> Result<Vec<u8>, KeywordError> {
    const KW: &str = "xor";
    let Some(v) = value else {
        return Err(KeywordError::invalid(KW, "needs a hex key"));
    };
    let v = strip_quotes(v);
    if v.is_empty() {
        return Err(KeywordError::invalid(KW, "needs a hex key"));
    }
    if v.len() % 2 != 0 {
        return Err(KeywordError::invalid(
            KW,
            "the key's length must be an even number",
        ));
    }
    if v.len() / 2 > usize::from(u8::MAX) {
        return Err(KeywordError::invalid(KW, "key longer than 255 bytes"));
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    v.as_bytes()
        .chunks(2)
        .map(|p| Some((digit(p[0])? << 4) | digit(p[1])?))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| KeywordError::invalid(KW, format!("{v:?} is not a hex key")))
}

impl PcreXform {
    fn parse(value: Option<&str>) -> Result<PcreXform, KeywordError> {
        const KW: &str = "pcrexform";
        let Some(v) = value else {
            return Err(KeywordError::invalid(KW, "needs a regex"));
        };
        let source = strip_quotes(v);
        let regex = compile_plain(source)
            .map_err(|e| KeywordError::invalid(KW, format!("compile of {source:?}: {e}")))?;
        if regex.captures_len() != 2 {
            return Err(KeywordError::invalid(
                KW,
                format!(
                    "needs exactly one substring capture, found {}",
                    regex.captures_len().saturating_sub(1)
                ),
            ));
        }
        let locs = Mutex::new(regex.capture_locations());
        Ok(PcreXform {
            regex,
            source: source.to_string(),
            locs,
        })
    }

    fn apply(&self, input: &[u8], out: &mut Vec<u8>) -> bool {
        let run = |locs: &mut CaptureLocations, out: &mut Vec<u8>| -> bool {
            match self.regex.captures_read(locs, input) {
                Ok(Some(_)) => match locs.get(1) {
                    Some((s, e)) => {
                        out.extend_from_slice(&input[s..e]);
                        true
                    }
                    None => false,
                },
                _ => false,
            }
        };
        match self.locs.try_lock() {
            Ok(mut locs) => run(&mut locs, out),
            Err(_) => run(&mut self.regex.capture_locations(), out),
        }
    }
}

impl FromBase64 {
    /// Parses `[bytes <n>][, offset <n>][, mode rfc4648|rfc2045|strict]` (any order).
    pub fn parse(value: Option<&str>) -> Result<FromBase64, KeywordError> {
        const KW: &str = "from_base64";
        let bad = |r: String| KeywordError::invalid(KW, r);
        let mut b = FromBase64 {
            nbytes: 0,
            offset: 0,
            mode: Base64Mode::Rfc4648,
        };
        let Some(value) = value else {
            return Ok(b);
        };
        if value.is_empty() {
            return Ok(b);
        }
        let f = nom_fields(value);
        if f.is_empty() || f.len() > 3 {
            return Err(bad(format!("expected 1 to 3 options in {value:?}")));
        }
        let (mut mode_set, mut off_set, mut bytes_set) = (false, false, false);
        for field in f {
            let (name, val) = name_and_value(field);
            let number = || -> Result<u64, KeywordError> {
                let end = val
                    .find(['\n', '\r', '\t', ',', ';', ':', ' '])
                    .unwrap_or(val.len());
                val[..end]
                    .parse::<u64>()
                    .map_err(|_| bad(format!("{name} must be a number, not {val:?}")))
            };
            match name {
                "mode" => {
                    if mode_set {
                        return Err(bad("mode already set".into()));
                    }
                    mode_set = true;
                    b.mode = match val {
                        "rfc4648" => Base64Mode::Rfc4648,
                        "rfc2045" => Base64Mode::Rfc2045,
                        "strict" => Base64Mode::Strict,
                        _ => return Err(bad(format!("invalid mode value {val:?}"))),
                    };
                }
                "offset" => {
                    if off_set {
                        return Err(bad("offset already set".into()));
                    }
                    off_set = true;
                    let n = number()?;
                    if n > u64::from(u16::MAX) {
                        return Err(bad(format!("offset must be 0 to 65535: {n}")));
                    }
                    b.offset = n as u32;
                }
                "bytes" => {
                    if bytes_set {
                        return Err(bad("bytes already set".into()));
                    }
                    bytes_set = true;
                    // Suricata compares the value truncated to 32 bits.
                    let n = number()? as u32;
                    if n > u32::from(u16::MAX) {
                        return Err(bad(format!("bytes must be 0 to 65535: {n}")));
                    }
                    b.nbytes = n;
                }
                _ => return Err(bad(format!("unknown base64 keyword {name:?}"))),
            }
        }
        Ok(b)
    }

    fn apply(&self, input: &[u8], out: &mut Vec<u8>) -> bool {
        let mut data = input;
        if self.offset > 0 {
            if self.offset as usize >= data.len() {
                out.extend_from_slice(input);
                return true;
            }
            data = &data[self.offset as usize..];
        }
        if self.nbytes > 0 {
            if self.nbytes as usize >= data.len() {
                out.extend_from_slice(input);
                return true;
            }
            data = &data[..self.nbytes as usize];
        }
        decode_into(self.mode, data, out) > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, value: Option<&str>, input: &[u8]) -> (bool, Vec<u8>) {
        let tr = Transform::parse(name, value).unwrap();
        let mut out = Vec::new();
        let ok = tr.apply(input, &mut out);
        (ok, out)
    }

    #[test]
    fn simple_transforms() {
        assert_eq!(t("to_lowercase", None, b" A b C D ").1, b" a b c d ");
        assert_eq!(t("to_uppercase", None, b" A b C D ").1, b" A B C D ");
        assert_eq!(t("strip_whitespace", None, b"I  \t J").1, b"IJ");
        assert_eq!(t("compress_whitespace", None, b"I  \t J").1, b"I J");
        assert_eq!(t("compress_whitespace", None, b"a\t \nb").1, b"a\tb");
        assert_eq!(t("dotprefix", None, b"example.com").1, b".example.com");
        assert_eq!(t("dotprefix", None, b"").1, b"");
        assert_eq!(
            t(
                "url_decode",
                None,
                b"Suricata%20is+%27%61wesome%21%27%25%30%30%ZZ%4"
            )
            .1,
            b"Suricata is 'awesome!'%00%ZZ%4"
        );
        assert_eq!(
            t(
                "header_lowercase",
                None,
                b"Header1: Value1\nheader2:Value2\n"
            )
            .1,
            b"header1: Value1\nheader2:Value2\n"
        );
        assert_eq!(
            t(
                "strip_pseudo_headers",
                None,
                b"Header1: Value1\n:method:get\nheader2:Value2\n"
            )
            .1,
            b"Header1: Value1\nheader2:Value2\n"
        );
        assert_eq!(t("strip_pseudo_headers", None, b":method:get").1, b"");
    }

    #[test]
    fn hashes_are_raw_digests() {
        assert_eq!(
            t("to_md5", None, b" A B C D ").1,
            b"\xe0\x59\xf8\x30\x43\x69\x58\xb6\x45\x82\x8c\xc2\x33\xc2\x47\x13"
        );
        assert_eq!(
            t("to_sha1", None, b" A B C D ").1,
            b"\xc8\xdc\x44\x97\xf7\xe0\x55\xf8\x6b\x88\x90\x52\x08\x2c\x0c\x7b\xdc\xc9\xc8\x89"
        );
        assert_eq!(t("to_sha256", None, b" A B C D ").1.len(), 32);
        assert_eq!(
            t("to_sha256", None, b"").1,
            b"",
            "an empty buffer stays empty"
        );
    }

    #[test]
    fn xor() {
        assert_eq!(
            t("xor", Some("\"0a0DC8ff\""), b"example.com").1,
            b"ou\xa9\x92za\xad\xd1ib\xa5"
        );
        assert!(Transform::parse("xor", Some("abc")).is_err());
        assert!(Transform::parse("xor", Some("zz")).is_err());
        assert!(Transform::parse("xor", None).is_err());
        assert!(Transform::parse("xor", Some("\"\"")).is_err());
    }

    #[test]
    fn pcrexform() {
        let (ok, out) = t(
            "pcrexform",
            Some("\"[a-zA-Z]+\\s+(.*)\""),
            b"GET /index.html",
        );
        assert!(ok);
        assert_eq!(out, b"/index.html");
        let (ok, _) = t("pcrexform", Some("\"^POST (.*)\""), b"GET /index.html");
        assert!(!ok, "no match fails the buffer");
        assert!(Transform::parse("pcrexform", Some("\"(a)(b)\"")).is_err());
        assert!(Transform::parse("pcrexform", Some("\"ab\"")).is_err());
        assert!(Transform::parse("pcrexform", Some("\"(?:a)(b)\"")).is_ok());
    }

    #[test]
    fn from_base64() {
        assert_eq!(t("from_base64", None, b"Zm9vYmFy").1, b"foobar");
        assert_eq!(t("from_base64", Some("mode rfc4648"), b"Zm 9v").1, b"f");
        assert_eq!(
            t("from_base64", Some("mode rfc2045"), b"Zm 9v Ym Fy").1,
            b"foobar"
        );
        assert_eq!(
            t("from_base64", Some("offset 4, bytes 4"), b"xxxxZm9vYmFy").1,
            b"foo"
        );
        // bytes not smaller than what is left: the buffer is left as it was
        assert_eq!(
            t("from_base64", Some("bytes 8"), b"Zm9vYmFy").1,
            b"Zm9vYmFy"
        );
        assert!(!t("from_base64", None, b"!!!!").0);
        assert!(Transform::parse("from_base64", Some("bytes 4, offset 70000")).is_err());
        assert!(Transform::parse("from_base64", Some("mode strict, mode rfc2045")).is_err());
        assert!(Transform::parse("from_base64", Some("bytes var")).is_err());
    }

    #[test]
    fn unknown_and_unsupported() {
        assert!(Transform::parse("domain", None)
            .unwrap_err()
            .is_unsupported());
        assert!(!Transform::parse("nope", None).unwrap_err().is_unsupported());
        assert!(Transform::parse("dotprefix", Some("x")).is_err());
    }

    #[test]
    fn validation() {
        assert!(!Transform::ToLowercase.content_can_match(b"ABC"));
        assert!(Transform::ToLowercase.content_can_match(b"abc"));
        assert!(!Transform::CompressWhitespace.content_can_match(b"a  b"));
        assert!(!Transform::StripWhitespace.content_can_match(b"a b"));
    }
}
