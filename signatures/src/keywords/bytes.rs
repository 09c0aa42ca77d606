//! `byte_test`, `byte_jump`, `byte_extract`, `byte_math` and `isdataat`, as Suricata 8 parses
//! and evaluates them.
//!
//! # Variables
//!
//! `byte_extract` and `byte_math` store a `u64` in a numbered slot; later keywords of the same
//! rule can name that variable where a number is expected (`byte_test` nbytes/value/offset,
//! `byte_jump` nbytes/offset, `byte_math` bytes/rvalue, `isdataat` offset). Parsers take a
//! resolver `&dyn Fn(&str) -> Option<u8>` that maps a name to its slot; evaluation reads and
//! writes `vars[slot]`. A slot past the end of `vars` never matches.
//!
//! As in Suricata, an operand is a variable name when its first character is a letter.
//! Variable values are narrowed the way Suricata narrows them: offsets and `nbytes` to 32-bit
//! signed (`byte_math` bytes to 8-bit), values kept at 64 bits.
//!
//! # Arithmetic
//!
//! Suricata computes with `uint64_t` and pointer arithmetic: multipliers and post offsets wrap
//! modulo 2^64 and a jump target is the wrapped value read as signed. This module does the same
//! wrapping on `u64` and then does the position arithmetic in `i128`, so the outcome is
//! Suricata's wherever Suricata's is defined, and "no match" where C would go out of bounds.
//!
//! # String numbers
//!
//! With `string`, the bytes are read with C `strtoull` semantics (leading white space, optional
//! sign, `0x`/`0` prefixes with an automatic base, stop at the first non-digit). `byte_test`
//! and `byte_jump` without a base use the automatic base (Suricata's `BASE_UNSET`);
//! `byte_extract` and `byte_math` default to decimal. Several bases on one `byte_test` or
//! `byte_jump` are OR-ed together exactly as Suricata does (`hex, dec` gives base 26).
//! `nbytes` 0 with `string` reads up to the first non-digit of the rest of the buffer (Suricata
//! reads a C string there).
//!
//! # Departures from Suricata
//!
//! - `dce` (byte order from the DCE/RPC header) is parsed and validated, then reported as
//!   [`KeywordError::Unsupported`]: Vigil has no DCE/RPC parser.
//! - `byte_extract` `slice` is reported as unsupported.
//! - `byte_extract` and `byte_math` accept white space after a number (`4 , 2`); Suricata 8's
//!   nom parser refuses it.

use super::{looks_like_var, parse_strict, strtoull, Cursor, KeywordError, StrToUll};

/// Maps a `byte_extract`/`byte_math` variable name to its slot.
pub type VarResolver<'a> = &'a dyn Fn(&str) -> Option<u8>;

/// A number written in the rule, or the slot of a variable read at match time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand<T> {
    Value(T),
    Var(u8),
}

/// Byte order of a binary (non-`string`) number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Endian {
    #[default]
    Big,
    Little,
}

/// `byte_test` comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteTestOp {
    /// `=`
    Eq,
    /// `<`
    Lt,
    /// `>`
    Gt,
    /// `<=`
    Le,
    /// `>=`
    Ge,
    /// `&`: true when any masked bit is set.
    And,
    /// `^`: true when the values differ in any bit (Suricata's "bitwise OR" is an XOR test).
    Xor,
}

/// `byte_math` operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MathOp {
    Add,
    Sub,
    Mul,
    Div,
    Shl,
    Shr,
}

/// Where `byte_jump` jumps from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JumpFrom {
    /// After the extracted bytes (the default).
    #[default]
    Extracted,
    /// `from_beginning`: from the start of the buffer.
    Beginning,
    /// `from_end`: from the end of the buffer.
    End,
}

/// A bitmask and the right shift Suricata applies after it (one bit per trailing zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bitmask {
    pub mask: u32,
}

impl Bitmask {
    fn apply(self, val: u64) -> u64 {
        let v = val & u64::from(self.mask);
        let shift = if self.mask == 0 {
            0
        } else {
            self.mask.trailing_zeros()
        };
        if v != 0 && shift != 0 {
            v >> shift
        } else {
            v
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Shared evaluation helpers

fn var(vars: &[u64], slot: u8) -> Option<u64> {
    vars.get(usize::from(slot)).copied()
}

/// Where the bytes to read start. `relative_needs_data` is Suricata's "no relative base" check
/// (`len <= 0` after adding the offset), which `byte_jump` skips when it reads zero bytes.
fn locate(
    cur: &Cursor,
    relative: bool,
    offset: i64,
    nbytes: i64,
    relative_needs_data: bool,
) -> Option<usize> {
    let buflen = cur.buf.len() as i128;
    let mut start = i128::from(offset);
    if relative {
        start += cur.pos as i128;
    }
    let len = buflen - start;
    if relative && relative_needs_data && len <= 0 {
        return None;
    }
    if start < 0 || i128::from(nbytes) > len {
        return None;
    }
    usize::try_from(start).ok()
}

/// Reads the number at `start`; returns it and how many bytes were consumed.
fn extract(
    buf: &[u8],
    start: usize,
    nbytes: usize,
    string_base: Option<u32>,
    endian: Endian,
) -> Option<(u64, usize)> {
    match string_base {
        Some(base) => {
            if nbytes > 23 {
                return None;
            }
            let end = if nbytes == 0 {
                buf.len()
            } else {
                start.checked_add(nbytes)?
            };
            match strtoull(buf.get(start..end)?, base) {
                StrToUll::Ok(v, n) if n > 0 => Some((v, n)),
                _ => None,
            }
        }
        None => {
            if nbytes > 8 {
                return None;
            }
            let bytes = buf.get(start..start.checked_add(nbytes)?)?;
            let mut v: u64 = 0;
            match endian {
                Endian::Big => {
                    for &b in bytes {
                        v = (v << 8) | u64::from(b);
                    }
                }
                Endian::Little => {
                    for &b in bytes.iter().rev() {
                        v = (v << 8) | u64::from(b);
                    }
                }
            }
            Some((v, nbytes))
        }
    }
}

/// Resolves a variable name or fails with a rule error.
fn resolve(
    kw: &'static str,
    what: &str,
    name: &str,
    vars: VarResolver,
) -> Result<u8, KeywordError> {
    vars(name).ok_or_else(|| {
        KeywordError::invalid(
            kw,
            format!("unknown byte_extract/byte_math variable {name:?} for {what}"),
        )
    })
}

fn has_ws(s: &str) -> bool {
    s.bytes().any(super::is_c_space)
}

/// Splits `a, b, c` the way Suricata's PCRE option regexes see it: trimmed fields.
fn fields(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(|s| s.trim_matches(|c: char| c.is_ascii_whitespace()))
        .collect()
}

/// Splits the way the nom parsers of Suricata 8 (`byte_extract`, `byte_math`, `from_base64`)
/// do: `separated_list1(",", preceded(multispace0, is_not(",")))`. The list stops at the first
/// empty (or blank) element; what follows it is ignored, as there. Elements are trimmed.
pub(crate) fn nom_fields(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for part in value.split(',') {
        let t = part.trim_start_matches(|c: char| c.is_ascii_whitespace());
        if t.is_empty() {
            break;
        }
        out.push(t.trim_end_matches(|c: char| c.is_ascii_whitespace()));
    }
    out
}

/// `name rest` of one nom option: the first white-space-free token and the trimmed rest.
pub(crate) fn name_and_value(field: &str) -> (&str, &str) {
    match field.find([' ', '\t', '\r', '\n']) {
        Some(i) => (&field[..i], field[i..].trim()),
        None => (field, ""),
    }
}

/// `bitmask <v>` of `byte_test`/`byte_jump`: Suricata's `ByteExtractStringUint32(base 0)` on
/// what follows the word, lenient about trailing characters.
fn parse_bitmask_c(kw: &'static str, rest: &str) -> Result<Bitmask, KeywordError> {
    match strtoull(rest.as_bytes(), 0) {
        StrToUll::Ok(v, _) if v <= u64::from(u32::MAX) => Ok(Bitmask { mask: v as u32 }),
        _ => Err(KeywordError::invalid(
            kw,
            format!("malformed bitmask value {rest:?}"),
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// byte_test

/// `byte_test:<nbytes>, [!]<op>, <value>, <offset> [, relative] [, big|little]
/// [, string, hex|dec|oct] [, dce] [, bitmask <mask>]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByteTest {
    pub nbytes: Operand<u8>,
    pub negated: bool,
    pub op: ByteTestOp,
    pub value: Operand<u64>,
    pub offset: Operand<i32>,
    pub relative: bool,
    pub endian: Endian,
    /// `Some(base)` with `string`; base 0 means automatic (C `strtoull` base 0).
    pub string_base: Option<u32>,
    pub bitmask: Option<Bitmask>,
}

const BYTE_TEST_KW: [&str; 9] = [
    "relative", "big", "little", "string", "oct", "dec", "hex", "dce", "bitmask",
];

impl ByteTest {
    pub fn parse(value: &str, vars: VarResolver) -> Result<ByteTest, KeywordError> {
        const KW: &str = "byte_test";
        let bad = |r: String| KeywordError::invalid(KW, r);
        let f = fields(value);
        if f.len() < 4 || f.len() > 10 {
            return Err(bad(format!(
                "expected 4 to 10 comma-separated fields in {value:?}"
            )));
        }
        for (i, field) in f.iter().enumerate() {
            if i != 1 && (field.is_empty() || (i < 4 && has_ws(field))) {
                return Err(bad(format!("malformed field {field:?} in {value:?}")));
            }
        }

        // nbytes
        let nbytes_tok = f[0];
        let nbytes = if looks_like_var(nbytes_tok) {
            Operand::Var(resolve(KW, "nbytes", nbytes_tok, vars)?)
        } else {
            match parse_strict(nbytes_tok, 10, false) {
                Some(n) if n <= i128::from(u32::MAX) => Operand::Value(n as u32),
                _ => return Err(bad(format!("malformed number of bytes {nbytes_tok:?}"))),
            }
            .map_value_u32()
        };

        // operator, with an optional leading '!'
        let (negated, op_text) = match f[1].strip_prefix('!') {
            Some(rest) => (
                true,
                rest.trim_start_matches(|c: char| c.is_ascii_whitespace()),
            ),
            None => (false, f[1]),
        };
        if has_ws(op_text) {
            return Err(bad(format!("invalid operator {:?}", f[1])));
        }
        let op = match op_text {
            "=" => ByteTestOp::Eq,
            "" if negated => ByteTestOp::Eq,
            "<" => ByteTestOp::Lt,
            ">" => ByteTestOp::Gt,
            "&" => ByteTestOp::And,
            "^" => ByteTestOp::Xor,
            ">=" => ByteTestOp::Ge,
            "<=" => ByteTestOp::Le,
            _ => return Err(bad(format!("invalid operator {:?}", f[1]))),
        };

        // value: a variable, or a number in any base, trailing characters ignored
        let value_tok = f[2];
        let test_value = if looks_like_var(value_tok) {
            Operand::Var(resolve(KW, "value", value_tok, vars)?)
        } else {
            match super::parse_lenient_u64(value_tok, 0) {
                Some(v) => Operand::Value(v),
                None => return Err(bad(format!("malformed value {value_tok:?}"))),
            }
        };

        // offset: a variable or a strict signed 32-bit number in any base
        let offset_tok = f[3];
        let offset = if looks_like_var(offset_tok) {
            Operand::Var(resolve(KW, "offset", offset_tok, vars)?)
        } else {
            match parse_strict(offset_tok, 0, true) {
                Some(o) if i32::try_from(o).is_ok() => Operand::Value(o as i32),
                _ => return Err(bad(format!("malformed offset {offset_tok:?}"))),
            }
        };

        let mut relative = false;
        let mut string = false;
        let mut base: u32 = 0;
        let mut endian = Endian::Big;
        let mut big = false;
        let mut little = false;
        let mut dce = false;
        let mut bitmask = None;
        for &opt in &f[4..] {
            // The option regex: `(?:KW)\s+[^\s,]+` or a run of characters of the KW words.
            let valid_shape = match opt.find(|c: char| c.is_ascii_whitespace()) {
                Some(i) => BYTE_TEST_KW.contains(&&opt[..i]) && !has_ws(opt[i..].trim_start()),
                None => opt.bytes().all(|b| b"relativbgsnodcxhmk|".contains(&b)),
            };
            if !valid_shape {
                return Err(bad(format!("unknown option {opt:?}")));
            }
            let lower = opt.to_ascii_lowercase();
            if opt == "relative" {
                relative = true;
            } else if lower == "string" {
                string = true;
            } else if lower == "dec" {
                base |= 10;
            } else if lower == "hex" {
                base |= 16;
            } else if lower == "oct" {
                base |= 8;
            } else if lower == "big" {
                big = true;
                endian = Endian::Big;
            } else if lower == "little" {
                little = true;
                endian = Endian::Little;
            } else if lower == "dce" {
                dce = true;
            } else if lower.starts_with("bitmask") {
                bitmask = Some(parse_bitmask_c(KW, &opt[7..])?);
            } else {
                return Err(bad(format!("unknown option {opt:?}")));
            }
        }

        if let Operand::Value(n) = nbytes {
            if string && n > 23 {
                return Err(bad(format!(
                    "cannot test more than 23 bytes with string: {value:?}"
                )));
            }
            if !string && n > 8 {
                return Err(bad(format!(
                    "cannot test more than 8 bytes without string: {value:?}"
                )));
            }
        }
        if !string && base != 0 {
            return Err(bad(format!("cannot use a base without string: {value:?}")));
        }
        if dce {
            if string || big || little || base != 0 {
                return Err(bad(
                    "dce cannot be combined with string, a base or an endianness".into(),
                ));
            }
            return Err(KeywordError::unsupported(
                KW,
                "dce (byte order from the DCE/RPC header) needs a DCE/RPC parser",
            ));
        }

        Ok(ByteTest {
            nbytes,
            negated,
            op,
            value: test_value,
            offset,
            relative,
            endian,
            string_base: string.then_some(base),
            bitmask,
        })
    }

    /// True when the test holds (after negation).
    pub fn eval(&self, cur: &Cursor, vars: &[u64]) -> bool {
        self.eval_inner(cur, vars).unwrap_or(false)
    }

    fn eval_inner(&self, cur: &Cursor, vars: &[u64]) -> Option<bool> {
        if cur.buf.is_empty() {
            return None;
        }
        let nbytes: i64 = match self.nbytes {
            Operand::Value(n) => i64::from(n),
            Operand::Var(slot) => {
                let n = var(vars, slot)? as i32;
                let limit = if self.string_base.is_some() { 23 } else { 8 };
                if !(0..=limit).contains(&n) {
                    return None;
                }
                i64::from(n)
            }
        };
        let offset = match self.offset {
            Operand::Value(o) => o,
            Operand::Var(slot) => var(vars, slot)? as i32,
        };
        let value = match self.value {
            Operand::Value(v) => v,
            Operand::Var(slot) => var(vars, slot)?,
        };
        let start = locate(cur, self.relative, i64::from(offset), nbytes, true)?;
        let (mut val, _) = extract(
            cur.buf,
            start,
            nbytes as usize,
            self.string_base,
            self.endian,
        )?;
        if let Some(mask) = self.bitmask {
            val = mask.apply(val);
        }
        let m = match self.op {
            ByteTestOp::Eq => val == value,
            ByteTestOp::Lt => val < value,
            ByteTestOp::Gt => val > value,
            ByteTestOp::Le => val <= value,
            ByteTestOp::Ge => val >= value,
            ByteTestOp::And => val & value != 0,
            ByteTestOp::Xor => val ^ value != 0,
        };
        Some(m != self.negated)
    }
}

trait MapU32 {
    fn map_value_u32(self) -> Operand<u8>;
}

impl MapU32 for Operand<u32> {
    /// Values above 255 are clamped to 255 here; the limit checks (8 / 23) reject them anyway.
    fn map_value_u32(self) -> Operand<u8> {
        match self {
            Operand::Value(v) => Operand::Value(v.min(255) as u8),
            Operand::Var(s) => Operand::Var(s),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// byte_jump

/// `byte_jump:<nbytes>, <offset> [, relative] [, multiplier <m>] [, big|little]
/// [, string, hex|dec|oct] [, align] [, from_beginning|from_end] [, post_offset <n>] [, dce]
/// [, bitmask <mask>]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByteJump {
    pub nbytes: Operand<u8>,
    pub offset: Operand<i32>,
    pub relative: bool,
    pub multiplier: u16,
    pub endian: Endian,
    /// `Some(base)` with `string`; base 0 means automatic.
    pub string_base: Option<u32>,
    pub align: bool,
    pub from: JumpFrom,
    pub post_offset: i32,
    pub bitmask: Option<Bitmask>,
}

impl ByteJump {
    pub fn parse(value: &str, vars: VarResolver) -> Result<ByteJump, KeywordError> {
        const KW: &str = "byte_jump";
        let bad = |r: String| KeywordError::invalid(KW, r);
        let f = fields(value);
        if f.len() < 2 || f.len() > 11 {
            return Err(bad(format!(
                "expected 2 to 11 comma-separated fields in {value:?}"
            )));
        }
        for field in &f[..2] {
            if field.is_empty() || has_ws(field) {
                return Err(bad(format!("malformed field {field:?} in {value:?}")));
            }
        }

        let nbytes = if looks_like_var(f[0]) {
            Operand::Var(resolve(KW, "nbytes", f[0], vars)?)
        } else {
            match parse_strict(f[0], 10, false) {
                Some(n) if n <= i128::from(u32::MAX) => Operand::Value(n as u32).map_value_u32(),
                _ => return Err(bad(format!("malformed number of bytes {:?}", f[0]))),
            }
        };
        let nbytes_literal = match parse_strict(f[0], 10, false) {
            Some(n) if !looks_like_var(f[0]) => Some(n),
            _ => None,
        };
        let offset = if looks_like_var(f[1]) {
            Operand::Var(resolve(KW, "offset", f[1], vars)?)
        } else {
            match parse_strict(f[1], 10, true) {
                Some(o) if (-65535..=65535).contains(&o) => Operand::Value(o as i32),
                _ => return Err(bad(format!("malformed offset {:?}", f[1]))),
            }
        };

        let mut j = ByteJump {
            nbytes,
            offset,
            relative: false,
            multiplier: 1,
            endian: Endian::Big,
            string_base: None,
            align: false,
            from: JumpFrom::Extracted,
            post_offset: 0,
            bitmask: None,
        };
        let mut string = false;
        let mut base: u32 = 0;
        let (mut big, mut little, mut begin, mut end, mut dce) =
            (false, false, false, false, false);
        for &opt in &f[2..] {
            if opt.is_empty() {
                return Err(bad(format!("empty option in {value:?}")));
            }
            if let Some(i) = opt.find(|c: char| c.is_ascii_whitespace()) {
                // `(?:multiplier|post_offset|bitmask)\s+[^\s,]+`; the value is read after the
                // word and exactly one space, as Suricata's `strncasecmp("multiplier ", ..)`.
                let (word, rest) = (&opt[..i], &opt[i..]);
                if has_ws(rest.trim_start()) || !rest.starts_with(' ') {
                    return Err(bad(format!("unknown option {opt:?}")));
                }
                let v = &rest[1..];
                match word {
                    "multiplier" => match parse_strict(v, 10, false) {
                        Some(m) if (1..=65535).contains(&m) => j.multiplier = m as u16,
                        _ => return Err(bad(format!("malformed multiplier {opt:?}"))),
                    },
                    "post_offset" => match parse_strict(v, 10, true) {
                        Some(p) if (-65535..=65535).contains(&p) => j.post_offset = p as i32,
                        _ => return Err(bad(format!("malformed post_offset {opt:?}"))),
                    },
                    "bitmask" => j.bitmask = Some(parse_bitmask_c(KW, v)?),
                    _ => return Err(bad(format!("unknown option {opt:?}"))),
                }
                continue;
            }
            let lower = opt.to_ascii_lowercase();
            match lower.as_str() {
                _ if opt == "relative" => j.relative = true,
                "string" => string = true,
                "dec" => base |= 10,
                "hex" => base |= 16,
                "oct" => base |= 8,
                "big" => {
                    big = true;
                    j.endian = Endian::Big;
                }
                "little" => {
                    little = true;
                    j.endian = Endian::Little;
                }
                "from_beginning" => begin = true,
                "from_end" => end = true,
                "align" => j.align = true,
                "dce" => dce = true,
                _ => return Err(bad(format!("unknown option {opt:?}"))),
            }
        }
        if begin && end {
            return Err(bad(
                "from_end and from_beginning cannot be used together".into()
            ));
        }
        j.from = if begin {
            JumpFrom::Beginning
        } else if end {
            JumpFrom::End
        } else {
            JumpFrom::Extracted
        };
        if let Some(n) = nbytes_literal {
            if string && n > 23 {
                return Err(bad("cannot test more than 23 bytes with string".into()));
            }
            if !string && n > 8 {
                return Err(bad("cannot test more than 8 bytes without string".into()));
            }
        }
        if !string && base != 0 {
            return Err(bad(format!("cannot use a base without string: {value:?}")));
        }
        if dce {
            if string || big || little || begin || end || base != 0 {
                return Err(bad(
                    "dce cannot be combined with string, a base, an endianness, from_beginning or from_end"
                        .into(),
                ));
            }
            return Err(KeywordError::unsupported(
                KW,
                "dce (byte order from the DCE/RPC header) needs a DCE/RPC parser",
            ));
        }
        j.string_base = string.then_some(base);
        Ok(j)
    }

    /// The new cursor position after the jump, or `None` for no match.
    pub fn eval(&self, cur: &Cursor, vars: &[u64]) -> Option<usize> {
        if cur.buf.is_empty() {
            return None;
        }
        let nbytes: i64 = match self.nbytes {
            Operand::Value(n) => i64::from(n),
            Operand::Var(slot) => {
                let n = var(vars, slot)? as i32;
                let limit = if self.string_base.is_some() { 23 } else { 8 };
                if !(0..=limit).contains(&n) {
                    return None;
                }
                i64::from(n)
            }
        };
        let offset = match self.offset {
            Operand::Value(o) => o,
            Operand::Var(slot) => var(vars, slot)? as i32,
        };
        let start = locate(cur, self.relative, i64::from(offset), nbytes, nbytes != 0)?;
        let (mut val, extbytes) = extract(
            cur.buf,
            start,
            nbytes as usize,
            self.string_base,
            self.endian,
        )?;
        if let Some(mask) = self.bitmask {
            val = mask.apply(val);
        }
        val = val.wrapping_mul(u64::from(self.multiplier));
        if self.align && val % 4 != 0 {
            val = val.wrapping_add(4 - val % 4);
        }
        val = val.wrapping_add(i64::from(self.post_offset) as u64);
        let jump = i128::from(val as i64);
        let buflen = cur.buf.len() as i128;
        let target = match self.from {
            JumpFrom::Beginning => jump,
            JumpFrom::End => buflen + jump,
            JumpFrom::Extracted => start as i128 + jump + extbytes as i128,
        };
        if target < 0 {
            Some(0)
        } else if target > buflen {
            None
        } else {
            Some(target as usize)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// byte_extract

/// `byte_extract:<nbytes>, <offset>, <name> [, relative] [, multiplier <m>] [, big|little|dce]
/// [, string [, hex|dec|oct]] [, align 2|4]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByteExtract {
    pub nbytes: u8,
    pub offset: i16,
    pub relative: bool,
    pub multiplier: u16,
    pub endian: Endian,
    /// `Some(base)` with `string` (decimal unless given).
    pub string_base: Option<u32>,
    /// `align 2` or `align 4`.
    pub align: Option<u8>,
    /// The variable slot the value is stored in; the caller assigns it after parsing.
    pub slot: u8,
}

impl ByteExtract {
    /// Parses the value; returns the keyword and the name of the variable it defines. `slot`
    /// is 0 until the caller sets it.
    pub fn parse(value: &str) -> Result<(ByteExtract, String), KeywordError> {
        const KW: &str = "byte_extract";
        let bad = |r: String| KeywordError::invalid(KW, r);
        let f = nom_fields(value);
        if f.len() < 3 || f.len() > 10 {
            return Err(bad(format!(
                "expected 3 to 10 comma-separated fields in {value:?}"
            )));
        }
        let nbytes: u8 = f[0]
            .parse()
            .map_err(|_| bad(format!("invalid nbytes value {:?}", f[0])))?;
        let offset: i16 = f[1]
            .parse()
            .map_err(|_| bad(format!("invalid offset value {:?}", f[1])))?;
        // Suricata's parse_token: up to white space or one of `,;:`.
        let name_end = f[2]
            .find(['\n', '\r', '\t', ',', ';', ':', ' '])
            .unwrap_or(f[2].len());
        let name = &f[2][..name_end];
        if name.is_empty() {
            return Err(bad(format!("missing variable name in {value:?}")));
        }

        let mut e = ByteExtract {
            nbytes,
            offset,
            relative: false,
            multiplier: 1,
            endian: Endian::Big,
            string_base: None,
            align: None,
            slot: 0,
        };
        let (mut string, mut base, mut endian_set, mut dce, mut slice, mut mult_set) =
            (false, None::<u32>, false, false, false, false);
        for &field in &f[3..] {
            let (opt, val) = name_and_value(field);
            match opt {
                "align" => {
                    if e.align.is_some() {
                        return Err(bad("align already set".into()));
                    }
                    match val.parse::<u8>() {
                        Ok(a @ (2 | 4)) => e.align = Some(a),
                        _ => {
                            return Err(bad(format!("invalid align value {val:?}: must be 2 or 4")))
                        }
                    }
                }
                "slice" => {
                    if slice {
                        return Err(bad("slice already set".into()));
                    }
                    slice = true;
                }
                "dce" | "big" | "little" => {
                    if endian_set {
                        return Err(bad("endianness already set".into()));
                    }
                    endian_set = true;
                    match opt {
                        "big" => e.endian = Endian::Big,
                        "little" => e.endian = Endian::Little,
                        _ => dce = true,
                    }
                }
                "string" => {
                    if string {
                        return Err(bad("string already set".into()));
                    }
                    if base.is_some() {
                        return Err(bad(
                            "base specified before string; use \"string, base\"".into()
                        ));
                    }
                    string = true;
                }
                "oct" | "dec" | "hex" => {
                    if !string {
                        return Err(bad("string must be set first".into()));
                    }
                    if base.is_some() {
                        return Err(bad("base already set".into()));
                    }
                    base = Some(match opt {
                        "oct" => 8,
                        "dec" => 10,
                        _ => 16,
                    });
                }
                "relative" => {
                    if e.relative {
                        return Err(bad("relative already set".into()));
                    }
                    e.relative = true;
                }
                "multiplier" => {
                    if mult_set {
                        return Err(bad("multiplier already set".into()));
                    }
                    mult_set = true;
                    match val.parse::<u32>() {
                        Ok(m) if (1..=65535).contains(&m) => e.multiplier = m as u16,
                        _ => return Err(bad(format!("invalid multiplier value {val:?}"))),
                    }
                }
                _ => return Err(bad(format!("unknown byte_extract option {opt:?}"))),
            }
        }
        if string && endian_set {
            return Err(bad("can't specify string and an endian value".into()));
        }
        if string && slice {
            return Err(bad("string and slice are mutually exclusive".into()));
        }
        if string {
            let base = base.unwrap_or(10);
            let max = match base {
                8 => 23,
                10 => 20,
                _ => 14,
            };
            if nbytes > max {
                return Err(bad(format!(
                    "can't process more than {max} bytes in string extraction"
                )));
            }
            e.string_base = Some(base);
        } else if nbytes > 8 {
            return Err(bad(
                "can't process more than 8 bytes in non-string extraction".into(),
            ));
        }
        if dce {
            return Err(KeywordError::unsupported(
                KW,
                "dce (byte order from the DCE/RPC header) needs a DCE/RPC parser",
            ));
        }
        if slice {
            return Err(KeywordError::unsupported(KW, "the slice option"));
        }
        Ok((e, name.to_string()))
    }

    /// Extracts the value into `vars[self.slot]`; returns the position after the extracted
    /// bytes (the new cursor), or `None` for no match.
    pub fn eval(&self, cur: &Cursor, vars: &mut [u64]) -> Option<usize> {
        if cur.buf.is_empty() || usize::from(self.slot) >= vars.len() {
            return None;
        }
        let nbytes = i64::from(self.nbytes);
        let start = locate(cur, self.relative, i64::from(self.offset), nbytes, true)?;
        let (mut val, extbytes) = extract(
            cur.buf,
            start,
            self.nbytes as usize,
            self.string_base,
            self.endian,
        )?;
        val = val.wrapping_mul(u64::from(self.multiplier));
        if let Some(a) = self.align {
            let a = u64::from(a);
            if val % a != 0 {
                val = val.wrapping_add(a - val % a);
            }
        }
        vars[usize::from(self.slot)] = val;
        Some(start + extbytes)
    }
}

// ---------------------------------------------------------------------------------------------
// byte_math

/// `byte_math:bytes <n|var>, offset <o>, oper <op>, rvalue <v|var>, result <name>
/// [, relative] [, endian big|little|dce] [, string hex|dec|oct] [, dce] [, bitmask <hex>]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByteMath {
    pub nbytes: Operand<u8>,
    pub offset: i32,
    pub oper: MathOp,
    pub rvalue: Operand<u32>,
    pub relative: bool,
    pub endian: Endian,
    /// `Some(base)` with `string`.
    pub string_base: Option<u32>,
    pub bitmask: Option<Bitmask>,
    /// The variable slot the result is stored in; the caller assigns it after parsing.
    pub slot: u8,
}

impl ByteMath {
    /// Parses the value; returns the keyword and the name of its `result` variable. `slot` is 0
    /// until the caller sets it.
    pub fn parse(value: &str, vars: VarResolver) -> Result<(ByteMath, String), KeywordError> {
        const KW: &str = "byte_math";
        let bad = |r: String| KeywordError::invalid(KW, r);
        let f = nom_fields(value);
        if f.len() < 5 || f.len() > 10 {
            return Err(bad(format!(
                "expected 5 to 10 comma-separated fields in {value:?}"
            )));
        }
        let mut nbytes = None;
        let mut offset = None;
        let mut oper = None;
        let mut rvalue = None;
        let mut result: Option<String> = None;
        let (mut relative, mut endian_set, mut dce, mut string_base, mut bitmask) =
            (false, false, false, None, None);
        let mut endian = Endian::Big;
        // parse_var: a token up to white space or `,;:`, numeric when it parses as u64.
        let token = |v: &str| -> String {
            let end = v
                .find(['\n', '\r', '\t', ',', ';', ':', ' '])
                .unwrap_or(v.len());
            v[..end].to_string()
        };
        for &field in &f {
            let (name, val) = name_and_value(field);
            match name {
                "oper" => {
                    if oper.is_some() {
                        return Err(bad("operator already set".into()));
                    }
                    oper = Some(match val {
                        "+" => MathOp::Add,
                        "-" => MathOp::Sub,
                        "*" => MathOp::Mul,
                        "/" => MathOp::Div,
                        "<<" => MathOp::Shl,
                        ">>" => MathOp::Shr,
                        _ => return Err(bad(format!("unknown oper value {val:?}"))),
                    });
                }
                "result" => {
                    if result.is_some() {
                        return Err(bad("result already set".into()));
                    }
                    if val.is_empty() {
                        return Err(bad("result needs a variable name".into()));
                    }
                    result = Some(val.to_string());
                }
                "rvalue" => {
                    if rvalue.is_some() {
                        return Err(bad("rvalue already set".into()));
                    }
                    let t = token(val);
                    if t.is_empty() {
                        return Err(bad("rvalue needs a value".into()));
                    }
                    rvalue = Some(match t.parse::<u64>() {
                        Ok(v) if v <= u64::from(u32::MAX) => Operand::Value(v as u32),
                        Ok(v) => return Err(bad(format!("invalid rvalue {v}: must fit 32 bits"))),
                        Err(_) => Operand::Var(resolve(KW, "rvalue", &t, vars)?),
                    });
                }
                "endian" | "dce" => {
                    if endian_set {
                        return Err(bad("endianness already set".into()));
                    }
                    endian_set = true;
                    match (name, val) {
                        ("dce", _) | (_, "dce") => dce = true,
                        (_, "big") => endian = Endian::Big,
                        (_, "little") => endian = Endian::Little,
                        _ => return Err(bad(format!("invalid endian value {val:?}"))),
                    }
                }
                "string" => {
                    if string_base.is_some() {
                        return Err(bad("string already set".into()));
                    }
                    string_base = Some(match val {
                        "hex" => 16,
                        "oct" => 8,
                        "dec" => 10,
                        _ => return Err(bad(format!("invalid string value {val:?}"))),
                    });
                }
                "relative" => {
                    if relative {
                        return Err(bad("relative already set".into()));
                    }
                    relative = true;
                }
                "bitmask" => {
                    if bitmask.is_some() {
                        return Err(bad("bitmask already set".into()));
                    }
                    let hex = val
                        .strip_prefix("0x")
                        .or_else(|| val.strip_prefix("0X"))
                        .unwrap_or(val);
                    let mask = u32::from_str_radix(hex, 16)
                        .map_err(|_| bad(format!("invalid bitmask value {val:?}")))?;
                    bitmask = Some(Bitmask { mask });
                }
                "offset" => {
                    if offset.is_some() {
                        return Err(bad("offset already set".into()));
                    }
                    match val.parse::<i32>() {
                        Ok(o) if (-65535..=65535).contains(&o) => offset = Some(o),
                        _ => return Err(bad(format!("invalid offset value {val:?}"))),
                    }
                }
                "bytes" => {
                    if nbytes.is_some() {
                        return Err(bad("nbytes already set".into()));
                    }
                    let t = token(val);
                    if t.is_empty() {
                        return Err(bad("bytes needs a value".into()));
                    }
                    nbytes = Some(match t.parse::<u64>() {
                        Ok(n) if (1..=10).contains(&n) => Operand::Value(n as u8),
                        Ok(n) => return Err(bad(format!("invalid nbytes {n}: must be 1 to 10"))),
                        Err(_) => Operand::Var(resolve(KW, "bytes", &t, vars)?),
                    });
                }
                _ => return Err(bad(format!("unknown byte_math keyword {name:?}"))),
            }
        }
        let (Some(nbytes), Some(offset), Some(oper), Some(rvalue), Some(result)) =
            (nbytes, offset, oper, rvalue, result)
        else {
            return Err(bad(format!(
                "required parameters missing (bytes, offset, oper, rvalue, result): {value:?}"
            )));
        };
        if matches!(oper, MathOp::Shl | MathOp::Shr) {
            if let Operand::Value(n) = nbytes {
                if n > 4 {
                    return Err(bad(format!("nbytes must be 1 to 4 with << or >>, not {n}")));
                }
            }
        }
        if dce {
            return Err(KeywordError::unsupported(
                KW,
                "dce (byte order from the DCE/RPC header) needs a DCE/RPC parser",
            ));
        }
        Ok((
            ByteMath {
                nbytes,
                offset,
                oper,
                rvalue,
                relative,
                endian,
                string_base,
                bitmask,
                slot: 0,
            },
            result,
        ))
    }

    /// Computes the result into `vars[self.slot]`; returns the position after the extracted
    /// bytes (Suricata moves the cursor there), or `None` for no match (including division by
    /// zero).
    pub fn eval(&self, cur: &Cursor, vars: &mut [u64]) -> Option<usize> {
        if cur.buf.is_empty() || usize::from(self.slot) >= vars.len() {
            return None;
        }
        let nbytes = match self.nbytes {
            Operand::Value(n) => n,
            Operand::Var(slot) => var(vars, slot)? as u8,
        };
        let rvalue = match self.rvalue {
            Operand::Value(v) => u64::from(v),
            Operand::Var(slot) => var(vars, slot)?,
        };
        let start = locate(
            cur,
            self.relative,
            i64::from(self.offset),
            i64::from(nbytes),
            true,
        )?;
        let (mut val, extbytes) = extract(
            cur.buf,
            start,
            usize::from(nbytes),
            self.string_base,
            self.endian,
        )?;
        val = match self.oper {
            MathOp::Add => val.wrapping_add(rvalue),
            MathOp::Sub => val.wrapping_sub(rvalue),
            MathOp::Mul => val.wrapping_mul(rvalue),
            MathOp::Div => {
                if rvalue == 0 {
                    return None;
                }
                val / rvalue
            }
            MathOp::Shl => {
                if rvalue < 64 {
                    val << rvalue
                } else {
                    0
                }
            }
            MathOp::Shr => {
                if rvalue < 64 {
                    val >> rvalue
                } else {
                    0
                }
            }
        };
        if let Some(mask) = self.bitmask {
            val = mask.apply(val);
        }
        vars[usize::from(self.slot)] = val;
        Some(start + extbytes)
    }
}

// ---------------------------------------------------------------------------------------------
// isdataat

/// `isdataat:[!]<offset|var> [, relative [, rawbytes]]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsDataAt {
    pub offset: Operand<u16>,
    pub relative: bool,
    pub negated: bool,
    /// Accepted for Snort compatibility; no effect.
    pub rawbytes: bool,
}

impl IsDataAt {
    pub fn parse(value: &str, vars: VarResolver) -> Result<IsDataAt, KeywordError> {
        const KW: &str = "isdataat";
        let bad = || KeywordError::invalid(KW, format!("malformed value {value:?}"));
        let ws = |c: char| c.is_ascii_whitespace();
        // Suricata sets the negation only when '!' is the very first character.
        let negated = value.starts_with('!');
        let rest = value.trim_start_matches(ws);
        let rest = rest.strip_prefix('!').unwrap_or(rest);
        let tok_end = rest
            .find(|c: char| c == ',' || c.is_ascii_whitespace())
            .unwrap_or(rest.len());
        let tok = &rest[..tok_end];
        if tok.is_empty() {
            return Err(bad());
        }
        let mut rest = rest[tok_end..].trim_start_matches(ws);
        let mut relative = false;
        let mut rawbytes = false;
        if let Some(r) = rest.strip_prefix(',') {
            // "rawbytes" without "relative" leaves the regex's relative group unset, which
            // Suricata's PCRE2 substring copy rejects.
            let r = r.trim_start_matches(ws);
            rest = r
                .strip_prefix("relative")
                .ok_or_else(bad)?
                .trim_start_matches(ws);
            relative = true;
            if let Some(r) = rest.strip_prefix(',') {
                rest = r
                    .trim_start_matches(ws)
                    .strip_prefix("rawbytes")
                    .ok_or_else(bad)?
                    .trim_start_matches(ws);
                rawbytes = true;
            }
        }
        if !rest.is_empty() {
            return Err(bad());
        }
        let offset = if looks_like_var(tok) {
            Operand::Var(resolve(KW, "offset", tok, vars)?)
        } else {
            match parse_strict(tok, 10, false) {
                Some(v) if v <= i128::from(u16::MAX) => Operand::Value(v as u16),
                _ => {
                    return Err(KeywordError::invalid(
                        KW,
                        format!("isdataat out of range: {tok:?}"),
                    ))
                }
            }
        };
        Ok(IsDataAt {
            offset,
            relative,
            negated,
            rawbytes,
        })
    }

    /// True when the check holds (after negation). An absolute check needs `offset <
    /// buf.len()`; a relative one `pos + offset <= buf.len()` (Suricata's documented one-byte
    /// difference). A variable of 100,000,000 or more only matches when negated.
    pub fn eval(&self, cur: &Cursor, vars: &[u64]) -> bool {
        let dataat: u64 = match self.offset {
            Operand::Value(v) => u64::from(v),
            Operand::Var(slot) => match var(vars, slot) {
                Some(v) if v >= 100_000_000 => return self.negated,
                Some(v) => v,
                None => return false,
            },
        };
        let len = cur.buf.len() as u128;
        let present = if self.relative {
            cur.pos as u128 + u128::from(dataat) <= len
        } else {
            u128::from(dataat) < len
        };
        present != self.negated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<u8> {
        None
    }
    fn slots(n: &str) -> Option<u8> {
        match n {
            "v0" | "len" => Some(0),
            "v1" => Some(1),
            _ => None,
        }
    }
    fn bt(s: &str) -> ByteTest {
        ByteTest::parse(s, &slots).unwrap_or_else(|e| panic!("{s}: {e}"))
    }
    fn bj(s: &str) -> ByteJump {
        ByteJump::parse(s, &slots).unwrap_or_else(|e| panic!("{s}: {e}"))
    }
    fn be(s: &str) -> ByteExtract {
        ByteExtract::parse(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .0
    }
    fn bm(s: &str) -> ByteMath {
        ByteMath::parse(s, &slots)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .0
    }
    fn ida(s: &str) -> IsDataAt {
        IsDataAt::parse(s, &slots).unwrap_or_else(|e| panic!("{s}: {e}"))
    }
    fn c(buf: &[u8], pos: usize) -> Cursor<'_> {
        Cursor { buf, pos }
    }

    #[test]
    fn byte_test_parse_table() {
        // Values as they appear in ET Open and in Suricata's own unit tests.
        let t = bt("1,&,128,6,relative");
        assert_eq!(
            (t.nbytes, t.op, t.value, t.offset, t.relative, t.negated),
            (
                Operand::Value(1),
                ByteTestOp::And,
                Operand::Value(128),
                Operand::Value(6),
                true,
                false
            )
        );
        let t = bt("1,!&,128,0");
        assert!(t.negated && t.op == ByteTestOp::And);
        let t = bt("4,>,32,-16,relative,little");
        assert_eq!((t.offset, t.endian), (Operand::Value(-16), Endian::Little));
        let t = bt("5,>,256,0,string,dec,relative");
        assert_eq!(t.string_base, Some(10));
        assert_eq!(bt("0,=,0,0,string,dec").nbytes, Operand::Value(0));
        let t = bt("2,!=,0x06,0");
        assert_eq!(
            (t.op, t.negated, t.value),
            (ByteTestOp::Eq, true, Operand::Value(6))
        );
        let t = bt("4,!,5,0");
        assert_eq!((t.op, t.negated), (ByteTestOp::Eq, true));
        let t = bt("\t4 , ! &, 5\t, 0 , little ");
        assert_eq!(
            (t.op, t.negated, t.endian),
            (ByteTestOp::And, true, Endian::Little)
        );
        let t = bt("4,!^,5,0,little,string,relative,hex");
        assert_eq!(
            (t.op, t.string_base, t.relative),
            (ByteTestOp::Xor, Some(16), true)
        );
        assert_eq!(bt("4,<=,1,0").op, ByteTestOp::Le);
        assert_eq!(bt("4,>=,1,0").op, ByteTestOp::Ge);
        assert_eq!(
            bt("4,&,2147483648,21,relative,little").value,
            Operand::Value(2147483648)
        );
        assert_eq!(
            bt("23,=,0xffffffffffffffff,0,string,oct").value,
            Operand::Value(u64::MAX)
        );
        assert_eq!(
            bt("4, =, 1, 0, bitmask 0x3F").bitmask,
            Some(Bitmask { mask: 0x3f })
        );
        let t = bt("v0,=,v1,len");
        assert_eq!(
            (t.nbytes, t.value, t.offset),
            (Operand::Var(0), Operand::Var(1), Operand::Var(0))
        );
        assert_eq!(
            bt("4,=,1,0,string").string_base,
            Some(0),
            "string without base is automatic"
        );

        for bad in [
            "4, =, 1, 0, hex",
            "9, =, 1, 0",
            "24,=,0,0,string,oct",
            "4,==,1,0",
            "4,,1,0",
            "4,=,1",
            "4,=,x,0",
            "4,=,1,0,String",
            "4,=,1,0,relative 5",
            "4,=,1,0,bitmask fc",
            "4,=,1,0,relative,relative,relative,relative,relative,relative,relative",
            "4,=,1,0,string,dce",
            "4,=,1,0x",
        ] {
            let e = ByteTest::parse(bad, &none).unwrap_err();
            assert!(!e.is_unsupported(), "{bad}: {e}");
        }
        assert!(ByteTest::parse("4,=,1,0,dce", &none)
            .unwrap_err()
            .is_unsupported());
    }

    #[test]
    fn byte_test_eval() {
        let buf = [0x00, 0x01, 0x00, 0x02, 0x80];
        assert!(bt("2,=,1,0").eval(&c(&buf, 0), &[]));
        assert!(bt("2,=,256,0,little").eval(&c(&buf, 0), &[]));
        assert!(bt("2,=,2,0,relative").eval(&c(&buf, 2), &[]));
        assert!(bt("1,=,1,-1,relative").eval(&c(&buf, 2), &[]));
        assert!(!bt("4,=,0,3").eval(&c(&buf, 0), &[]), "past the end");
        assert!(
            !bt("4,!=,0,3").eval(&c(&buf, 0), &[]),
            "past the end, even negated"
        );
        assert!(!bt("1,=,0,-1").eval(&c(&buf, 0), &[]), "before the start");
        assert!(bt("1,&,128,4").eval(&c(&buf, 0), &[]));
        assert!(!bt("1,!&,128,4").eval(&c(&buf, 0), &[]));
        // 0x80 & 0xE0 = 0x80, shifted right by the mask's 5 trailing zeros = 4
        assert!(bt("1,=,4,4,bitmask 0xE0").eval(&c(&buf, 0), &[]));
        assert!(!bt("1,^,1,1").eval(&c(&buf, 0), &[]));
        assert!(bt("1,^,0,1").eval(&c(&buf, 0), &[]));
        assert!(bt("1,<,3,3").eval(&c(&buf, 0), &[]));
        assert!(bt("1,<=,2,3").eval(&c(&buf, 0), &[]));
        assert!(!bt("1,>,2,3").eval(&c(&buf, 0), &[]));
        assert!(
            !bt("1,=,0,0,relative").eval(&c(&buf, 5), &[]),
            "nothing after the cursor"
        );
        assert!(!bt("1,=,0,0").eval(&c(&[], 0), &[]));
        // variables: value 2 in slot 1, offset 3 in slot 0
        assert!(bt("1,=,v1,len").eval(&c(&buf, 0), &[3, 2]));
        assert!(!bt("1,=,v1,len").eval(&c(&buf, 0), &[3]), "missing slot");
        // nbytes from a variable, and a variable nbytes over 8 never matches
        assert!(bt("v0,=,1,0").eval(&c(&buf, 0), &[2]));
        assert!(!bt("v0,=,1,0").eval(&c(&buf, 0), &[9]));

        let s = b"  1234xyz";
        assert!(bt("4,=,1234,2,string,dec").eval(&c(s, 0), &[]));
        assert!(
            bt("6,=,1234,0,string,dec").eval(&c(s, 0), &[]),
            "leading spaces skipped"
        );
        assert!(bt("3,=,123,2,string").eval(&c(s, 0), &[]));
        assert!(bt("4,=,0x1f,0,string,hex").eval(&c(b"0x1f", 0), &[]));
        assert!(
            bt("3,=,8,0,string").eval(&c(b"010", 0), &[]),
            "automatic base: octal"
        );
        assert!(
            !bt("2,!=,5,0,string,dec").eval(&c(b"abcd", 0), &[]),
            "no digits: no match"
        );
        assert!(
            bt("0,=,12,0,string,dec").eval(&c(b"12ab", 0), &[]),
            "0 bytes: to the first non-digit"
        );
    }

    #[test]
    fn byte_jump_parse_table() {
        let j = bj(" 4,0 , relative , little, string, dec, align, from_beginning , multiplier 2 , post_offset -16 ");
        assert_eq!(
            (
                j.nbytes,
                j.offset,
                j.relative,
                j.endian,
                j.string_base,
                j.align,
                j.from,
                j.multiplier,
                j.post_offset
            ),
            (
                Operand::Value(4),
                Operand::Value(0),
                true,
                Endian::Little,
                Some(10),
                true,
                JumpFrom::Beginning,
                2,
                -16
            )
        );
        assert_eq!(bj("1,-1,relative").offset, Operand::Value(-1));
        assert_eq!(
            bj("2,-10,relative,from_beginning").from,
            JumpFrom::Beginning
        );
        assert_eq!(bj("0,0, from_end, post_offset -8").from, JumpFrom::End);
        assert_eq!(bj("4, 32").offset, Operand::Value(32));
        assert_eq!(bj("1,0,relative, post_offset -128").post_offset, -128);
        assert_eq!(bj("1,0,bitmask 0x0f").bitmask, Some(Bitmask { mask: 15 }));
        assert_eq!(bj("v0,len").nbytes, Operand::Var(0));
        for bad in [
            "9, 0",
            "24, 0, string, dec",
            "4, 0xffffffffffffffff",
            "4, 0x10",
            "4,70000",
            "4,0,relative,little,dec",
            "4,0,from_end,from_beginning",
            "4,0,multiplier 0",
            "4,0,multiplier 65536",
            "4,0,post_offset 70000",
            "4,0,multiplier\t2",
            "4,0,foo",
            "4,0,RELATIVE",
            "4",
            "x,0",
            "4,0,string,dce",
        ] {
            let e = ByteJump::parse(bad, &none).unwrap_err();
            assert!(!e.is_unsupported(), "{bad}: {e}");
        }
        assert!(ByteJump::parse("4,0,dce", &none)
            .unwrap_err()
            .is_unsupported());
        assert!(
            ByteJump::parse("4,0, align, multiplier 2, post_offset -16,dce", &none)
                .unwrap_err()
                .is_unsupported()
        );
    }

    #[test]
    fn byte_jump_eval() {
        let buf = [0x00, 0x03, b'a', b'b', b'c', b'd', b'e', b'f'];
        // 0x0003 read at 0, then 3 bytes on from the end of the 2 read bytes
        assert_eq!(bj("2,0").eval(&c(&buf, 0), &[]), Some(5));
        assert_eq!(bj("2,0,relative").eval(&c(&buf, 0), &[]), Some(5));
        assert_eq!(bj("1,1,from_beginning").eval(&c(&buf, 0), &[]), Some(3));
        // 3 - 5 = -2 from the end of 8 bytes
        assert_eq!(
            bj("1,1,from_end,post_offset -5").eval(&c(&buf, 0), &[]),
            Some(6)
        );
        assert_eq!(
            bj("0,0,from_end,post_offset -8").eval(&c(&buf, 0), &[]),
            Some(0)
        );
        // 3 * 2 = 6 after the byte at 1: 1 + 1 + 6 = 8, the end itself is allowed
        assert_eq!(bj("1,1,multiplier 2").eval(&c(&buf, 0), &[]), Some(8));
        assert_eq!(bj("1,1,multiplier 3").eval(&c(&buf, 0), &[]), None);
        // 3 aligned to 4: 1 + 1 + 4
        assert_eq!(bj("1,1,align").eval(&c(&buf, 0), &[]), Some(6));
        // before the start is clamped to the start
        assert_eq!(bj("1,1,post_offset -100").eval(&c(&buf, 0), &[]), Some(0));
        assert_eq!(bj("1,1,relative").eval(&c(&buf, 8), &[]), None);
        assert_eq!(bj("1,0,relative").eval(&c(&buf, 1), &[]), Some(5));
        // 3 & 2 = 2, shifted by one trailing zero = 1: 1 + 1 + 1
        assert_eq!(bj("1,1,bitmask 0x02").eval(&c(&buf, 0), &[]), Some(3));
        assert_eq!(
            bj("2,0,string,dec").eval(&c(b"12abcdefghijklmnop", 0), &[]),
            Some(14)
        );
        assert_eq!(bj("2,0,string,dec").eval(&c(b"xx", 0), &[]), None);
        assert_eq!(bj("2,0").eval(&c(&[], 0), &[]), None);
        // 0xffff_ffff_ffff_ffff is -1 in Suricata's pointer arithmetic: 0 + 8 - 1
        let big = [0xff; 8];
        assert_eq!(bj("8,0").eval(&c(&big, 0), &[]), Some(7));
        // offset and nbytes from variables
        assert_eq!(bj("v0,v1").eval(&c(&buf, 0), &[1, 1]), Some(5));
    }

    #[test]
    fn byte_extract_parse_table() {
        let (e, name) = ByteExtract::parse("4, 2, one").unwrap();
        assert_eq!((e.nbytes, e.offset, name.as_str()), (4, 2, "one"));
        let e = be("4, 2, one, align 4, relative, little, multiplier 2");
        assert_eq!(
            (e.align, e.relative, e.endian, e.multiplier),
            (Some(4), true, Endian::Little, 2)
        );
        assert_eq!(be("4, 2, one, string").string_base, Some(10));
        assert_eq!(be("4, 2, one, string, hex").string_base, Some(16));
        assert_eq!(be("23, 0, v, string, oct").string_base, Some(8));
        assert_eq!(be("2,0,size").nbytes, 2);
        for bad in [
            "4",
            "4, 2",
            "4, 605536, one",
            "4, 40000, one",
            "4, 2, one, align 3",
            "4, 2, one, align 4, align 4",
            "4, 2, one, relative, relative",
            "4, 2, one, hex",
            "4, 2, one, little, little",
            "4, 2, one, multiplier",
            "4, 2, one, multiplier 0",
            "4, 2, one, multiplier 65536",
            "4, 2, one, multiplier -1",
            "4, 2, one, multiplier 2, multiplier 2",
            "4, 2, one, align 4, relative, little, multiplier 2, string hex",
            "9, 0, v",
            "21, 0, v, string",
            "15, 0, v, string, hex",
            "4, 2, one, foo",
        ] {
            let e = ByteExtract::parse(bad).unwrap_err();
            assert!(!e.is_unsupported(), "{bad}: {e}");
        }
        assert!(ByteExtract::parse("4, 2, one, dce")
            .unwrap_err()
            .is_unsupported());
        assert!(ByteExtract::parse("4, 2, one, slice")
            .unwrap_err()
            .is_unsupported());
    }

    #[test]
    fn byte_extract_eval() {
        let buf = [0x00, 0x10, 0x01, 0x02, b'4', b'2', b'x'];
        let mut vars = [0u64; 2];
        assert_eq!(be("2,0,len").eval(&c(&buf, 0), &mut vars), Some(2));
        assert_eq!(vars[0], 16);
        assert_eq!(
            be("1,1,v,multiplier 3").eval(&c(&buf, 0), &mut vars),
            Some(2)
        );
        assert_eq!(vars[0], 48);
        be("1,2,v,align 4").eval(&c(&buf, 0), &mut vars);
        assert_eq!(vars[0], 4);
        be("1,2,v,align 2").eval(&c(&buf, 0), &mut vars);
        assert_eq!(vars[0], 2);
        be("2,2,v,little").eval(&c(&buf, 0), &mut vars);
        assert_eq!(vars[0], 0x0201);
        assert_eq!(be("2,4,v,string").eval(&c(&buf, 0), &mut vars), Some(6));
        assert_eq!(vars[0], 42);
        be("2,4,v,string,hex").eval(&c(&buf, 0), &mut vars);
        assert_eq!(vars[0], 0x42);
        assert_eq!(be("1,1,v,relative").eval(&c(&buf, 2), &mut vars), Some(4));
        assert_eq!(vars[0], 2);
        assert_eq!(be("4,5,v").eval(&c(&buf, 0), &mut vars), None);
        assert_eq!(be("1,0,v,relative").eval(&c(&buf, 7), &mut vars), None);
        let mut e = be("1,0,v");
        e.slot = 1;
        assert_eq!(e.eval(&c(&buf, 0), &mut vars), Some(1));
        assert_eq!(vars[1], 0);
        e.slot = 2;
        assert_eq!(e.eval(&c(&buf, 0), &mut vars), None, "slot out of range");
    }

    #[test]
    fn byte_math_parse_table() {
        let (m, result) = ByteMath::parse(
            "bytes 4, offset 0, oper +, rvalue 248, result var, relative",
            &none,
        )
        .unwrap();
        assert_eq!(
            (
                m.nbytes,
                m.offset,
                m.oper,
                m.rvalue,
                m.relative,
                result.as_str()
            ),
            (
                Operand::Value(4),
                0,
                MathOp::Add,
                Operand::Value(248),
                true,
                "var"
            )
        );
        let m = bm("bytes 1, offset 1, oper +, rvalue v0, result var");
        assert_eq!(m.rvalue, Operand::Var(0));
        let m = bm("result r, bytes v1, offset -3, oper >>, rvalue 2, endian little, string hex, bitmask 0xff00");
        assert_eq!(
            (m.nbytes, m.offset, m.endian, m.string_base, m.bitmask),
            (
                Operand::Var(1),
                -3,
                Endian::Little,
                Some(16),
                Some(Bitmask { mask: 0xff00 })
            )
        );
        for bad in [
            "bytes 4, offset 0, oper +, rvalue 248",
            "bytes 11, offset 0, oper +, rvalue 1, result r",
            "bytes 0, offset 0, oper +, rvalue 1, result r",
            "bytes 5, offset 0, oper <<, rvalue 1, result r",
            "bytes 4, offset 70000, oper +, rvalue 1, result r",
            "bytes 4, offset 0, oper %, rvalue 1, result r",
            "bytes 4, offset 0, oper +, rvalue 4294967296, result r",
            "bytes 4, offset 0, oper +, rvalue nope, result r",
            "bytes 4, offset 0, oper +, rvalue 1, result r, string",
            "bytes 4, offset 0, oper +, rvalue 1, result r, endian big, dce",
            "bytes 4, offset 0, oper +, rvalue 1, result r, relative, relative",
            "bytes 4, offset 0, oper +, rvalue 1, result r, bitmask zz",
            "bytes 4, offset 0, oper +, rvalue 1, result r, foo",
        ] {
            let e = ByteMath::parse(bad, &none).unwrap_err();
            assert!(!e.is_unsupported(), "{bad}: {e}");
        }
        assert!(
            ByteMath::parse("bytes 4, offset 0, oper +, rvalue 1, result r, dce", &none)
                .unwrap_err()
                .is_unsupported()
        );
        assert!(ByteMath::parse(
            "bytes 4, offset 0, oper +, rvalue 1, result r, endian dce",
            &none
        )
        .unwrap_err()
        .is_unsupported());
    }

    #[test]
    fn byte_math_eval() {
        let buf = [0x00, 0x04, 0x10, b'1', b'2'];
        let mut vars = [0u64; 2];
        let run = |s: &str, pos: usize, vars: &mut [u64]| {
            let mut m = bm(s);
            m.slot = 1;
            m.eval(&c(&buf, pos), vars)
        };
        assert_eq!(
            run(
                "bytes 2, offset 0, oper +, rvalue 248, result r",
                0,
                &mut vars
            ),
            Some(2)
        );
        assert_eq!(vars[1], 252);
        run(
            "bytes 1, offset 1, oper <<, rvalue 2, result r",
            0,
            &mut vars,
        );
        assert_eq!(vars[1], 16);
        run(
            "bytes 1, offset 2, oper >>, rvalue 4, result r",
            0,
            &mut vars,
        );
        assert_eq!(vars[1], 1);
        assert_eq!(
            run(
                "bytes 1, offset 1, oper /, rvalue 0, result r",
                0,
                &mut vars
            ),
            None
        );
        run(
            "bytes 1, offset 1, oper /, rvalue 3, result r",
            0,
            &mut vars,
        );
        assert_eq!(vars[1], 1);
        run(
            "bytes 1, offset 1, oper -, rvalue 5, result r",
            0,
            &mut vars,
        );
        assert_eq!(vars[1], u64::MAX, "wraps like uint64_t");
        assert_eq!(
            run(
                "bytes 2, offset 3, oper *, rvalue 2, result r, string dec",
                0,
                &mut vars
            ),
            Some(5)
        );
        assert_eq!(vars[1], 24);
        vars[0] = 3;
        run(
            "bytes 1, offset 1, oper *, rvalue v0, result r",
            0,
            &mut vars,
        );
        assert_eq!(vars[1], 12);
        assert_eq!(
            run(
                "bytes 1, offset 0, oper +, rvalue 0, result r, relative",
                1,
                &mut vars
            ),
            Some(2)
        );
        assert_eq!(vars[1], 4);
        // 0x10 & 0x30 = 0x10, shifted by 4 trailing zeros = 1
        run(
            "bytes 1, offset 2, oper +, rvalue 0, result r, bitmask 0x30",
            0,
            &mut vars,
        );
        assert_eq!(vars[1], 1);
        run(
            "bytes 1, offset 1, oper <<, rvalue 64, result r",
            0,
            &mut vars,
        );
        assert_eq!(vars[1], 0);
        run(
            "bytes 2, offset 0, oper +, rvalue 0, result r, endian little",
            0,
            &mut vars,
        );
        assert_eq!(vars[1], 0x0400);
        assert_eq!(
            run(
                "bytes 2, offset 4, oper +, rvalue 0, result r",
                0,
                &mut vars
            ),
            None
        );
        // nbytes from a variable (slot 0 = 3 -> "3" bytes is past the end at offset 3)
        assert_eq!(
            run(
                "bytes v0, offset 2, oper +, rvalue 0, result r",
                0,
                &mut vars
            ),
            Some(5)
        );
        assert_eq!(vars[1], 0x10_3132);
    }

    #[test]
    fn isdataat_parse_table() {
        let i = ida("30 ");
        assert_eq!(
            (i.offset, i.relative, i.negated),
            (Operand::Value(30), false, false)
        );
        let i = ida("30 , relative");
        assert!(i.relative && !i.rawbytes);
        let i = ida("30,relative, rawbytes ");
        assert!(i.relative && i.rawbytes);
        let i = ida("!1,relative");
        assert!(i.negated && i.relative);
        assert_eq!(ida("len,relative").offset, Operand::Var(0));
        for bad in [
            "30,rawbytes",
            "70000",
            "-5",
            "30,relative,foo",
            "foo",
            "",
            "! 5",
            "5 6",
        ] {
            assert!(IsDataAt::parse(bad, &slots).is_err(), "{bad}");
        }
    }

    #[test]
    fn isdataat_eval() {
        // The tables of Suricata's documentation.
        let buf = b"abcdefgh";
        let at = |s: &str, pos: usize| ida(s).eval(&c(buf, pos), &[]);
        assert!(at("7", 0));
        assert!(!at("8", 0));
        assert!(at("7,relative", 0));
        assert!(at("8,relative", 0));
        assert!(!at("9,relative", 0));
        assert!(at("4,relative", 3));
        assert!(at("5,relative", 3));
        assert!(!at("6,relative", 3));
        assert!(at("!8", 0));
        assert!(at("!1,relative", 8));
        assert!(!at("!0,relative", 8));
        let v = ida("len");
        assert!(!v.eval(&c(buf, 0), &[100_000_000]));
        assert!(ida("!len").eval(&c(buf, 0), &[100_000_000]));
        assert!(v.eval(&c(buf, 0), &[3]));
        assert!(!v.eval(&c(buf, 0), &[]));
        assert!(!at("1,relative", usize::MAX), "no overflow");
    }
}
