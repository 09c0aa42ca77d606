//! Payload keywords that carry their own option syntax and evaluate against one inspection
//! buffer: `byte_test`, `byte_jump`, `byte_extract`, `byte_math`, `isdataat` ([`bytes`]),
//! `pcre` ([`pcre`]), the transforms ([`transform`]) and `base64_decode`/`base64_data`
//! ([`base64`]).
//!
//! Each module follows Suricata 8's parser and matcher for its keyword: the same accepted
//! syntax, the same limits, the same arithmetic (including where Suricata wraps or clamps), and
//! the same answer at buffer edges. Where this code departs from Suricata the module doc says so.
//!
//! Parsing takes the option value as the rule loader hands it over (the text after
//! `keyword:`, trimmed). Errors come in two kinds: [`KeywordError::Invalid`] is a rule error
//! (Suricata would refuse the rule too); [`KeywordError::Unsupported`] is a rule Suricata loads
//! but Vigil cannot evaluate yet (DCE/RPC byte order, pcre variable capture, ...), so the loader
//! skips the rule and reports the reason.
//!
//! Evaluation never panics and never allocates: positions are computed in a wide signed type,
//! so any offset, multiplier or extracted value that lands outside the buffer is simply "no
//! match".

pub mod base64;
pub mod bytes;
pub mod pcre;
pub mod transform;

/// Where a payload keyword looks: the inspection buffer and the end of the previous match
/// (Suricata's `buffer_offset`), which `relative` options start from.
#[derive(Debug, Clone, Copy)]
pub struct Cursor<'a> {
    pub buf: &'a [u8],
    /// End of the previous match, for `relative`. Values past `buf.len()` never match.
    pub pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8], pos: usize) -> Self {
        Cursor { buf, pos }
    }
}

/// Why a keyword value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeywordError {
    /// The value is malformed: Suricata refuses the rule too.
    #[error("{keyword}: {reason}")]
    Invalid {
        keyword: &'static str,
        reason: String,
    },
    /// Suricata accepts the value but Vigil cannot evaluate it (yet); the rule is skipped.
    #[error("{keyword}: {reason} is not supported")]
    Unsupported {
        keyword: &'static str,
        reason: String,
    },
}

impl KeywordError {
    pub(crate) fn invalid(keyword: &'static str, reason: impl Into<String>) -> Self {
        KeywordError::Invalid {
            keyword,
            reason: reason.into(),
        }
    }

    pub(crate) fn unsupported(keyword: &'static str, reason: impl Into<String>) -> Self {
        KeywordError::Unsupported {
            keyword,
            reason: reason.into(),
        }
    }

    /// True for [`KeywordError::Unsupported`].
    pub fn is_unsupported(&self) -> bool {
        matches!(self, KeywordError::Unsupported { .. })
    }
}

/// C `isspace` in the "C" locale.
pub(crate) fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// What C `strtoull` reports for the text it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StrToUll {
    /// The value and how many bytes were consumed (leading white space and sign included).
    Ok(u64, usize),
    /// No digits at all (`endptr == nptr`).
    NoDigits,
    /// Digits were there but the value does not fit 64 bits (`ERANGE`).
    Overflow,
}

/// C `strtoull(text, &end, base)` on `text` as if it were NUL-terminated at its end or at its
/// first NUL byte: leading white space, an optional sign (a minus negates modulo 2^64), for
/// base 0 the `0x`/`0` prefix detection, for base 16 an optional `0x`, then digits of `base`.
/// `base` must be 0 or 2..=36; anything else reports [`StrToUll::NoDigits`] (C: `EINVAL`).
pub(crate) fn strtoull(text: &[u8], base: u32) -> StrToUll {
    if base == 1 || base > 36 {
        return StrToUll::NoDigits;
    }
    let text = match text.iter().position(|&b| b == 0) {
        Some(nul) => &text[..nul],
        None => text,
    };
    let mut i = 0;
    while i < text.len() && is_c_space(text[i]) {
        i += 1;
    }
    let mut negative = false;
    if i < text.len() && (text[i] == b'+' || text[i] == b'-') {
        negative = text[i] == b'-';
        i += 1;
    }
    let digit = |b: u8| -> Option<u32> {
        let d = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'a'..=b'z' => u32::from(b - b'a') + 10,
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return None,
        };
        Some(d)
    };
    let has_hex_prefix = |i: usize| {
        text.get(i) == Some(&b'0')
            && matches!(text.get(i + 1), Some(b'x') | Some(b'X'))
            && text
                .get(i + 2)
                .and_then(|&b| digit(b))
                .is_some_and(|d| d < 16)
    };
    let mut base = base;
    if base == 0 {
        if has_hex_prefix(i) {
            base = 16;
            i += 2;
        } else if text.get(i) == Some(&b'0') {
            base = 8;
        } else {
            base = 10;
        }
    } else if base == 16 && has_hex_prefix(i) {
        i += 2;
    }
    let start = i;
    let mut value: u64 = 0;
    let mut overflow = false;
    while i < text.len() {
        match digit(text[i]) {
            Some(d) if d < base => {
                match value
                    .checked_mul(u64::from(base))
                    .and_then(|v| v.checked_add(u64::from(d)))
                {
                    Some(v) => value = v,
                    None => overflow = true,
                }
                i += 1;
            }
            _ => break,
        }
    }
    if i == start {
        return StrToUll::NoDigits;
    }
    if overflow {
        return StrToUll::Overflow;
    }
    StrToUll::Ok(
        if negative {
            value.wrapping_neg()
        } else {
            value
        },
        i,
    )
}

/// C `strtoll` with the same conventions as [`strtoull`]; overflow past `i64` is reported.
pub(crate) fn strtoll(text: &[u8], base: u32) -> StrToUll {
    let negative = text
        .iter()
        .find(|&&b| !is_c_space(b))
        .is_some_and(|&b| b == b'-');
    match strtoull(text, base) {
        StrToUll::Ok(v, n) => {
            // `strtoull` already negated; check the magnitude against the signed range.
            let magnitude = if negative { v.wrapping_neg() } else { v };
            let limit = if negative {
                i64::MAX as u64 + 1
            } else {
                i64::MAX as u64
            };
            if magnitude > limit {
                StrToUll::Overflow
            } else {
                StrToUll::Ok(v, n)
            }
        }
        other => other,
    }
}

/// Suricata's strict integer parsers (`StringParseUint32`, `StringParseInt32`, ...): the whole
/// text must be one number in `base` with nothing after it. Returns the value as `i128` so the
/// caller can range-check signed and unsigned targets alike.
pub(crate) fn parse_strict(text: &str, base: u32, signed: bool) -> Option<i128> {
    let bytes = text.as_bytes();
    let r = if signed {
        strtoll(bytes, base)
    } else {
        strtoull(bytes, base)
    };
    match r {
        StrToUll::Ok(v, n) if n == bytes.len() => {
            if signed {
                Some(i128::from(v as i64))
            } else {
                Some(i128::from(v))
            }
        }
        _ => None,
    }
}

/// Suricata's lenient extractor (`ByteExtractStringUint64` with `strict == false`): a number
/// in `base` at the start of the text, anything may follow it.
pub(crate) fn parse_lenient_u64(text: &str, base: u32) -> Option<u64> {
    match strtoull(text.as_bytes(), base) {
        StrToUll::Ok(v, _) => Some(v),
        _ => None,
    }
}

/// The `isalpha(first) && first != '-'` test Suricata uses to tell a variable name from a
/// number in byte keyword operands.
pub(crate) fn looks_like_var(text: &str) -> bool {
    text.as_bytes()
        .first()
        .is_some_and(|b| b.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random option values and buffers: no parser or evaluator may panic.
    #[test]
    fn no_panics_on_arbitrary_input() {
        use bytes::{ByteExtract, ByteJump, ByteMath, ByteTest, IsDataAt};
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        const PIECES: &[&str] = &[
            "0",
            "1",
            "4",
            "8",
            "9",
            "23",
            "-1",
            "65535",
            "-65536",
            "0x",
            "0xff",
            ",",
            ", ",
            " ",
            "!",
            "=",
            "<",
            ">=",
            "&",
            "^",
            "relative",
            "little",
            "big",
            "string",
            "hex",
            "dec",
            "oct",
            "dce",
            "bitmask",
            "align",
            "from_end",
            "from_beginning",
            "post_offset",
            "multiplier",
            "bytes",
            "offset",
            "oper",
            "rvalue",
            "result",
            "endian",
            "slice",
            "+",
            "<<",
            "v0",
            "é",
            "\\",
            "/",
            "\"",
            "(",
            ")",
            "[",
            "]",
            "$",
            "(*UTF)",
            "#",
            "\n",
            "rawbytes",
            "mode",
            "rfc2045",
            "18446744073709551616",
            "4294967296",
        ];
        let vars = |n: &str| if n == "v0" { Some(0) } else { None };
        let mut store = [0u64; 1];
        for _ in 0..20_000 {
            let mut v = String::new();
            for _ in 0..(next() % 12) {
                v.push_str(PIECES[(next() % PIECES.len() as u64) as usize]);
            }
            let buf: Vec<u8> = (0..(next() % 12)).map(|_| (next() % 256) as u8).collect();
            let pos = (next() % 16) as usize;
            store[0] = match next() % 4 {
                0 => u64::MAX,
                1 => next(),
                _ => next() % 16,
            };
            let cur = Cursor::new(&buf, pos);
            if let Ok(t) = ByteTest::parse(&v, &vars) {
                t.eval(&cur, &store);
            }
            if let Ok(j) = ByteJump::parse(&v, &vars) {
                j.eval(&cur, &store);
            }
            if let Ok(i) = IsDataAt::parse(&v, &vars) {
                i.eval(&cur, &store);
            }
            if let Ok((e, _)) = ByteExtract::parse(&v) {
                e.eval(&cur, &mut store);
            }
            if let Ok((m, _)) = ByteMath::parse(&v, &vars) {
                m.eval(&cur, &mut store);
            }
            if let Ok(p) = pcre::Pcre::parse(&v) {
                p.is_match(&cur);
                p.search(&cur, pos);
            }
            let mut out = Vec::new();
            if let Ok(d) = base64::Base64Decode::parse(Some(&v)) {
                d.decode(&cur, &mut out);
            }
            for name in ["xor", "pcrexform", "from_base64"] {
                if let Ok(t) = transform::Transform::parse(name, Some(&v)) {
                    t.apply(&buf, &mut out);
                }
            }
        }
    }

    #[test]
    fn strtoull_follows_c() {
        assert_eq!(strtoull(b"123", 10), StrToUll::Ok(123, 3));
        assert_eq!(strtoull(b"  42abc", 10), StrToUll::Ok(42, 4));
        assert_eq!(strtoull(b"0x1F", 0), StrToUll::Ok(31, 4));
        assert_eq!(strtoull(b"0x1F", 16), StrToUll::Ok(31, 4));
        assert_eq!(strtoull(b"1F", 16), StrToUll::Ok(31, 2));
        assert_eq!(strtoull(b"017", 0), StrToUll::Ok(15, 3));
        assert_eq!(strtoull(b"0x", 0), StrToUll::Ok(0, 1));
        assert_eq!(strtoull(b"0xg", 16), StrToUll::Ok(0, 1));
        assert_eq!(strtoull(b"-1", 10), StrToUll::Ok(u64::MAX, 2));
        assert_eq!(strtoull(b"", 10), StrToUll::NoDigits);
        assert_eq!(strtoull(b"  x", 10), StrToUll::NoDigits);
        assert_eq!(strtoull(b"12\x0034", 10), StrToUll::Ok(12, 2));
        assert_eq!(
            strtoull(b"18446744073709551615", 10),
            StrToUll::Ok(u64::MAX, 20)
        );
        assert_eq!(strtoull(b"18446744073709551616", 10), StrToUll::Overflow);
        assert_eq!(strtoull(b"9", 8), StrToUll::NoDigits);
        assert_eq!(
            strtoll(b"-9223372036854775808", 10),
            StrToUll::Ok(i64::MIN as u64, 20)
        );
        assert_eq!(strtoll(b"9223372036854775808", 10), StrToUll::Overflow);
        assert_eq!(parse_strict("-16", 10, true), Some(-16));
        assert_eq!(parse_strict("16 ", 10, true), None);
        assert_eq!(parse_strict("0x10", 0, false), Some(16));
        assert_eq!(parse_strict("0x10", 10, false), None);
    }
}
