//! Packet-time formatting for EVE, once per event on the output thread.

use std::fmt::Write;

use vigil_parsers::calendar::civil_from_days;

/// `2024-05-13T10:00:00.123456+0000`: Suricata's EVE timestamp, always UTC, microseconds.
pub fn eve_timestamp(ts_ns: u64, out: &mut String) {
    let secs = ts_ns / 1_000_000_000;
    let micros = (ts_ns % 1_000_000_000) / 1_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}+0000",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    );
}

/// `20240513T100000Z`: a UTC time for file names (sorts by age).
pub fn rfc3339_compact(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

pub fn eve_timestamp_string(ts_ns: u64) -> String {
    let mut s = String::with_capacity(31);
    eve_timestamp(ts_ns, &mut s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(eve_timestamp_string(0), "1970-01-01T00:00:00.000000+0000");
        assert_eq!(
            eve_timestamp_string(1_715_594_400_123_456_789),
            "2024-05-13T10:00:00.123456+0000"
        );
        assert_eq!(
            eve_timestamp_string(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000+0000"
        );
        assert_eq!(
            eve_timestamp_string(4_102_444_799_999_999_999),
            "2099-12-31T23:59:59.999999+0000"
        );
    }
}
