//! Compact JSON for EVE lines: the bytes `serde_json::to_writer` writes, faster.
//!
//! Rendering is most of the output thread's time, and `serde_json` escapes strings one byte at a
//! time (a quarter of that thread on an event-heavy capture). This serializer checks eight bytes
//! at once for the three kinds that need escaping (`"`, `\`, controls) and copies the runs
//! between them. Everything else follows `serde_json`'s compact format exactly: the same
//! escapes (`\u00XX` in lowercase hex for controls without a short form), integers through
//! `itoa`, and floats handed to `serde_json` itself so that their digits and `null` for
//! non-finite values stay identical. Tests compare both byte for byte.

use serde::ser::{self, Error as _, Serialize};

pub type Error = serde_json::Error;

/// Appends `value` as compact JSON.
pub fn to_writer<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), Error> {
    value.serialize(&mut Serializer { out })
}

/// `value` as compact JSON bytes.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(128);
    to_writer(&mut out, value)?;
    Ok(out)
}

pub struct Serializer<'a> {
    out: &'a mut Vec<u8>,
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any of the eight bytes in `w` is `"`, `\` or below 0x20. Each test is exact for
/// "any byte" (borrows only carry past a byte that already matched).
#[inline]
fn needs_escape(w: u64) -> bool {
    let below_space = w.wrapping_sub(ONES * 0x20) & !w;
    let quote = w ^ (ONES * u64::from(b'"'));
    let backslash = w ^ (ONES * u64::from(b'\\'));
    let is_quote = quote.wrapping_sub(ONES) & !quote;
    let is_backslash = backslash.wrapping_sub(ONES) & !backslash;
    (below_space | is_quote | is_backslash) & HIGHS != 0
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Bytes that `serde_json` leaves as they are: not `"`, not `\`, not a control below 0x20.
const PLAIN: [bool; 256] = {
    let mut plain = [true; 256];
    let mut b = 0;
    while b < 0x20 {
        plain[b] = false;
        b += 1;
    }
    plain[b'"' as usize] = false;
    plain[b'\\' as usize] = false;
    plain
};

#[inline]
fn word(bytes: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(w)
}

/// Whether `bytes` go into a JSON string as they are. Most strings here are (keys, names,
/// addresses), so this is the path to keep short: whole words, then the last word again
/// (overlapping) or, for a string under eight bytes, a table.
#[inline]
fn is_plain(bytes: &[u8]) -> bool {
    if bytes.len() < 8 {
        return bytes.iter().all(|&b| PLAIN[usize::from(b)]);
    }
    let mut words = bytes.chunks_exact(8);
    if words.any(|w| needs_escape(word(w))) {
        return false;
    }
    !needs_escape(word(&bytes[bytes.len() - 8..]))
}

#[inline]
fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    if is_plain(bytes) {
        out.reserve(bytes.len() + 2);
        out.push(b'"');
        out.extend_from_slice(bytes);
        out.push(b'"');
    } else {
        write_escaped(out, bytes);
    }
}

#[inline(never)]
fn write_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() + 8);
    out.push(b'"');
    let mut run_start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if PLAIN[usize::from(b)] {
            continue;
        }
        out.extend_from_slice(&bytes[run_start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
        run_start = i + 1;
    }
    out.extend_from_slice(&bytes[run_start..]);
    out.push(b'"');
}

fn write_int(out: &mut Vec<u8>, v: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

fn write_float<F: Serialize>(out: &mut Vec<u8>, v: F) -> Result<(), Error> {
    v.serialize(&mut serde_json::Serializer::new(out))
}

/// `serialize_i8` … `serialize_u128`, each handing its value to `self.$write`.
macro_rules! integers {
    ($write:ident) => {
        integers!($write: serialize_i8 i8, serialize_i16 i16, serialize_i32 i32, serialize_i64 i64,
            serialize_i128 i128, serialize_u8 u8, serialize_u16 u16, serialize_u32 u32,
            serialize_u64 u64, serialize_u128 u128);
    };
    ($write:ident: $($method:ident $ty:ty),*) => {
        $(fn $method(self, v: $ty) -> Result<(), Error> {
            self.$write(v)
        })*
    };
}

/// Compounds whose elements have no keys: a comma-separated list.
macro_rules! sequence_like {
    ($($trait:ident::$method:ident),*) => {$(
        impl ser::$trait for Compound<'_, '_> {
            type Ok = ();
            type Error = Error;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
                self.element(value)
            }
            fn end(self) -> Result<(), Error> {
                self.finish()
            }
        }
    )*};
}

/// Compounds of named fields: a comma-separated list of `"key":value`.
macro_rules! struct_like {
    ($($trait:ident),*) => {$(
        impl ser::$trait for Compound<'_, '_> {
            type Ok = ();
            type Error = Error;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), Error> {
                self.field(key, value)
            }
            fn end(self) -> Result<(), Error> {
                self.finish()
            }
        }
    )*};
}

impl Serializer<'_> {
    fn int(&mut self, v: impl itoa::Integer) -> Result<(), Error> {
        write_int(self.out, v);
        Ok(())
    }
}

impl<'a, 'b> ser::Serializer for &'a mut Serializer<'b> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'a, 'b>;
    type SerializeTuple = Compound<'a, 'b>;
    type SerializeTupleStruct = Compound<'a, 'b>;
    type SerializeTupleVariant = Compound<'a, 'b>;
    type SerializeMap = Compound<'a, 'b>;
    type SerializeStruct = Compound<'a, 'b>;
    type SerializeStructVariant = Compound<'a, 'b>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    integers!(int);
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        write_float(self.out, v)
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        write_float(self.out, v)
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        write_str(self.out, v.encode_utf8(&mut [0u8; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        write_str(self.out, v);
        Ok(())
    }
    /// An array of numbers, as `serde_json` writes bytes.
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        self.out.push(b'[');
        for (i, b) in v.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            write_int(self.out, *b);
        }
        self.out.push(b']');
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.out.push(b'{');
        write_str(self.out, variant);
        self.out.push(b':');
        value.serialize(&mut *self)?;
        self.out.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'a, 'b>, Error> {
        self.out.push(b'[');
        Ok(Compound::new(self, b"]"))
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'a, 'b>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Compound<'a, 'b>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a, 'b>, Error> {
        self.out.push(b'{');
        write_str(self.out, variant);
        self.out.extend_from_slice(b":[");
        Ok(Compound::new(self, b"]}"))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'a, 'b>, Error> {
        self.out.push(b'{');
        Ok(Compound::new(self, b"}"))
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Compound<'a, 'b>, Error> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a, 'b>, Error> {
        self.out.push(b'{');
        write_str(self.out, variant);
        self.out.extend_from_slice(b":{");
        Ok(Compound::new(self, b"}}"))
    }
}

/// An array or object being written: a comma before every element but the first.
pub struct Compound<'a, 'b> {
    ser: &'a mut Serializer<'b>,
    first: bool,
    close: &'static [u8],
}

impl<'a, 'b> Compound<'a, 'b> {
    fn new(ser: &'a mut Serializer<'b>, close: &'static [u8]) -> Self {
        Compound {
            ser,
            first: true,
            close,
        }
    }

    fn separate(&mut self) {
        if !std::mem::take(&mut self.first) {
            self.ser.out.push(b',');
        }
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.separate();
        value.serialize(&mut *self.ser)
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), Error> {
        self.separate();
        write_str(self.ser.out, key);
        self.ser.out.push(b':');
        value.serialize(&mut *self.ser)
    }

    fn finish(self) -> Result<(), Error> {
        self.ser.out.extend_from_slice(self.close);
        Ok(())
    }
}

// Arrays: tuples and tuple variants write as `serde_json` writes sequences.
sequence_like!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.separate();
        key.serialize(MapKey { out: self.ser.out })?;
        self.ser.out.push(b':');
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(&mut *self.ser)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

struct_like!(SerializeStruct, SerializeStructVariant);

/// Object keys: strings, and (as `serde_json` allows) integers, booleans and chars written as
/// strings. Anything else is an error, as there.
struct MapKey<'a> {
    out: &'a mut Vec<u8>,
}

fn key_must_be_a_string() -> Error {
    Error::custom("key must be a string")
}

impl MapKey<'_> {
    fn quoted_int(self, v: impl itoa::Integer) -> Result<(), Error> {
        self.out.push(b'"');
        write_int(self.out, v);
        self.out.push(b'"');
        Ok(())
    }
}

impl ser::Serializer for MapKey<'_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = ser::Impossible<(), Error>;
    type SerializeTuple = ser::Impossible<(), Error>;
    type SerializeTupleStruct = ser::Impossible<(), Error>;
    type SerializeTupleVariant = ser::Impossible<(), Error>;
    type SerializeMap = ser::Impossible<(), Error>;
    type SerializeStruct = ser::Impossible<(), Error>;
    type SerializeStructVariant = ser::Impossible<(), Error>;

    fn serialize_str(self, v: &str) -> Result<(), Error> {
        write_str(self.out, v);
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        write_str(self.out, v.encode_utf8(&mut [0u8; 4]));
        Ok(())
    }
    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out
            .extend_from_slice(if v { b"\"true\"" } else { b"\"false\"" });
        Ok(())
    }
    integers!(quoted_int);
    fn serialize_f32(self, _v: f32) -> Result<(), Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_f64(self, _v: f64) -> Result<(), Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<(), Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_none(self) -> Result<(), Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result<(), Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_unit(self) -> Result<(), Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(key_must_be_a_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn same_as_serde_json<T: Serialize + ?Sized>(value: &T) {
        let ours = to_vec(value).expect("ours");
        let theirs = serde_json::to_vec(value).expect("serde_json");
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs)
        );
    }

    #[test]
    fn every_byte_value_in_every_position_escapes_as_serde_json_does() {
        // Each ASCII byte at each offset of a 17-byte string, so it lands in a checked word,
        // at a word's edge and in the tail.
        for b in 0u8..0x80 {
            for at in 0..17 {
                let mut s = vec![b'a'; 17];
                s[at] = b;
                let s = String::from_utf8(s).expect("ascii");
                same_as_serde_json(&s);
            }
        }
        same_as_serde_json("");
        same_as_serde_json("\u{7f}\u{80}é漢字🦀 \"quoted\" back\\slash \t\r\n\u{1}\u{1f}");
    }

    #[test]
    fn pseudo_random_strings_match() {
        // xorshift over mixed printable, control and multi-byte characters.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let alphabet: Vec<char> = "aZ09 \"\\/\n\t\u{0}\u{1b}\u{7f}é€🦀<>&'".chars().collect();
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 40) as usize;
            let s: String = (0..len)
                .map(|i| alphabet[((x >> (i % 48)) as usize + i) % alphabet.len()])
                .collect();
            same_as_serde_json(&s);
        }
    }

    #[derive(serde::Serialize)]
    enum Kind {
        Unit,
        Newtype(u8),
        Tuple(u8, &'static str),
        Struct { a: i64, b: Option<f64> },
    }

    #[derive(serde::Serialize)]
    struct Everything {
        t: bool,
        f: bool,
        i8: i8,
        i64: i64,
        u64: u64,
        i128: i128,
        u128: u128,
        f32: f32,
        f64: f64,
        nan: f64,
        inf: f64,
        c: char,
        s: String,
        none: Option<u8>,
        some: Option<&'static str>,
        unit: (),
        tuple: (u8, &'static str, bool),
        list: Vec<Kind>,
        #[serde(with = "serde_bytes_like")]
        bytes: Vec<u8>,
        int_keys: BTreeMap<u32, &'static str>,
        bool_keys: BTreeMap<bool, u8>,
        nested: serde_json::Value,
        empty_list: Vec<u8>,
        empty_map: BTreeMap<String, u8>,
    }

    mod serde_bytes_like {
        pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(v)
        }
    }

    #[test]
    fn every_kind_of_value_matches() {
        let value = Everything {
            t: true,
            f: false,
            i8: -128,
            i64: i64::MIN,
            u64: u64::MAX,
            i128: i128::MIN,
            u128: u128::MAX,
            f32: 0.1,
            f64: 1e300,
            nan: f64::NAN,
            inf: f64::INFINITY,
            c: '"',
            s: "line\nbreak".into(),
            none: None,
            some: Some("x"),
            unit: (),
            tuple: (7, "seven", true),
            list: vec![
                Kind::Unit,
                Kind::Newtype(1),
                Kind::Tuple(2, "two"),
                Kind::Struct {
                    a: -3,
                    b: Some(2.5),
                },
                Kind::Struct { a: 0, b: None },
            ],
            bytes: vec![0, 1, 255],
            int_keys: [(1, "one"), (20, "twenty")].into_iter().collect(),
            bool_keys: [(false, 0), (true, 1)].into_iter().collect(),
            nested: json!({"a": [1, -2, 3.25, "x\u{1}", null, {"b": {}}], "c": []}),
            empty_list: vec![],
            empty_map: BTreeMap::new(),
        };
        same_as_serde_json(&value);
    }

    #[test]
    fn keys_that_are_not_strings_fail_as_in_serde_json() {
        let map: BTreeMap<Vec<u8>, u8> = [(vec![1], 1)].into_iter().collect();
        assert!(to_vec(&map).is_err());
        assert!(serde_json::to_vec(&map).is_err());
    }
}
