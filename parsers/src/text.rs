//! Short strings EVE writes several times per event (timestamps, addresses, hex flags), built
//! on the stack so rendering an event allocates nothing for them.

use std::fmt;

/// An ASCII string of at most `N` bytes, kept inline. Pushing past `N` drops the excess (the
/// callers size `N` for their longest value, so that never happens).
///
/// Built on `arrayvec::ArrayString`, which keeps the UTF-8 invariant itself: reading it back is
/// free, where re-validating the bytes on every read cost 5 % of event rendering.
#[derive(Clone, Copy, Default)]
pub struct InlineStr<const N: usize> {
    s: arrayvec::ArrayString<N>,
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl<const N: usize> InlineStr<N> {
    pub fn new() -> Self {
        Self::default()
    }

    #[inline]
    fn push_byte(&mut self, b: u8) {
        let c = if b.is_ascii() { char::from(b) } else { '?' };
        if self.s.try_push(c).is_err() {
            debug_assert!(false, "InlineStr<{N}> overflow");
        }
    }

    /// Appends ASCII bytes; anything else is replaced by `?` so the content stays valid UTF-8.
    pub fn push_ascii(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.push_byte(b);
        }
    }

    pub fn push_str(&mut self, s: &str) {
        if s.is_ascii() {
            if self.s.try_push_str(s).is_err() {
                debug_assert!(false, "InlineStr<{N}> overflow");
            }
        } else {
            self.push_ascii(s.as_bytes());
        }
    }

    /// `v` in decimal, zero-padded to at least `width` digits (at most 20, a `u64`'s longest).
    pub fn push_dec(&mut self, mut v: u64, width: usize) {
        let mut digits = [b'0'; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        let start = i.min(digits.len().saturating_sub(width));
        for &d in &digits[start..] {
            self.push_byte(d);
        }
    }

    /// Two lowercase hex digits.
    pub fn push_hex_byte(&mut self, b: u8) {
        self.push_byte(HEX[usize::from(b >> 4)]);
        self.push_byte(HEX[usize::from(b & 0xf)]);
    }

    /// Lowercase hex without leading zeros (`0` for zero), as `{:x}` writes it.
    pub fn push_hex(&mut self, v: u64) {
        let digits = (v.checked_ilog2().unwrap_or(0) / 4 + 1) as usize;
        for k in (0..digits).rev() {
            self.push_byte(HEX[((v >> (4 * k)) & 0xf) as usize]);
        }
    }

    pub fn as_str(&self) -> &str {
        self.s.as_str()
    }
}

impl<const N: usize> std::ops::Deref for InlineStr<N> {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> fmt::Display for InlineStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> fmt::Debug for InlineStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> PartialEq<&str> for InlineStr<N> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl<const N: usize> serde::Serialize for InlineStr<N> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The longest address [`eve_addr`] writes: eight groups of four hex digits.
pub type AddrStr = InlineStr<39>;

/// An address as Suricata writes it: IPv4 dotted, IPv6 as eight zero-padded groups
/// (`2001:0db8:0000:…`), so SIEM content that matches Suricata's strings matches Vigil's. Other
/// lengths give "".
pub fn eve_addr(addr: &[u8]) -> AddrStr {
    let mut s = AddrStr::new();
    match addr.len() {
        4 => {
            for (i, &b) in addr.iter().enumerate() {
                if i > 0 {
                    s.push_ascii(b".");
                }
                s.push_dec(u64::from(b), 1);
            }
        }
        16 => {
            for (i, pair) in addr.chunks(2).enumerate() {
                if i > 0 {
                    s.push_ascii(b":");
                }
                s.push_hex_byte(pair[0]);
                s.push_hex_byte(pair[1]);
            }
        }
        _ => {}
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_addresses() {
        let mut s = InlineStr::<32>::new();
        s.push_dec(7, 4);
        s.push_str("-");
        s.push_dec(1_234_567, 2);
        s.push_str("-");
        s.push_hex(0x8180);
        s.push_hex(0);
        s.push_hex_byte(0x0a);
        assert_eq!(s, "0007-1234567-818000a");
        assert_eq!(eve_addr(&[10, 0, 0, 255]), "10.0.0.255");
        let v6: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
        assert_eq!(
            eve_addr(&v6.octets()),
            "2001:0db8:0000:0000:0000:0000:0000:0001"
        );
        assert_eq!(eve_addr(&[1, 2, 3]), "");
        assert_eq!(format!("{}", eve_addr(&[1, 2, 3, 4])), "1.2.3.4");
    }

    #[test]
    fn decimal_and_hex_edges() {
        for (v, width, want) in [
            (0, 1, "0"),
            (0, 3, "000"),
            (9, 1, "9"),
            (10, 1, "10"),
            (99, 4, "0099"),
            (100, 2, "100"),
            (u64::MAX, 1, "18446744073709551615"),
        ] {
            let mut s = InlineStr::<24>::new();
            s.push_dec(v, width);
            assert_eq!(s, want, "{v} width {width}");
        }
        for v in [0u64, 1, 0xf, 0x10, 0xabc, u64::MAX] {
            let mut s = InlineStr::<16>::new();
            s.push_hex(v);
            assert_eq!(s.as_str(), format!("{v:x}"));
        }
    }

    #[test]
    fn overflow_and_non_ascii_never_panic_in_release() {
        let mut s = InlineStr::<4>::new();
        s.push_ascii("é".as_bytes());
        assert_eq!(s, "??");
    }
}
