//! Packet-time formatting for EVE, once per event on the output thread.

use vigil_parsers::calendar::civil_from_days;
use vigil_parsers::text::InlineStr;

/// An EVE timestamp, on the stack.
pub type EveTime = InlineStr<32>;

/// `2024-05-13T10:00:00.123456+0000`: Suricata's EVE timestamp, always UTC, microseconds.
pub fn eve_time(ts_ns: u64) -> EveTime {
    utc_micros(ts_ns, "+0000")
}

/// `2024-05-13T10:00:00.123456Z`: RFC 3339 in UTC with microseconds (RFC 5424 TIMESTAMP).
pub fn rfc3339_micros(ts_ns: u64) -> EveTime {
    utc_micros(ts_ns, "Z")
}

/// Date and time of `ts_ns` in UTC to the microsecond, followed by `zone`.
fn utc_micros(ts_ns: u64, zone: &str) -> EveTime {
    let micros = (ts_ns % 1_000_000_000) / 1_000;
    let mut s = EveTime::new();
    s.push_str(&utc_second(ts_ns / 1_000_000_000));
    s.push_str(".");
    s.push_dec(micros, 6);
    s.push_str(zone);
    s
}

/// `2024-05-13T10:00:00`, the date and time of `secs` in UTC.
type SecondStr = InlineStr<19>;

thread_local! {
    /// The last second formatted on this thread: an event's timestamps, and the events of a
    /// batch, mostly fall in the same second, and the calendar arithmetic was most of the cost.
    static LAST_SECOND: std::cell::Cell<Option<(u64, SecondStr)>> =
        const { std::cell::Cell::new(None) };
}

fn utc_second(secs: u64) -> SecondStr {
    if let Some((cached, text)) = LAST_SECOND.get() {
        if cached == secs {
            return text;
        }
    }
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let mut s = SecondStr::new();
    s.push_dec(y.max(0) as u64, 4);
    s.push_str("-");
    s.push_dec(u64::from(m), 2);
    s.push_str("-");
    s.push_dec(u64::from(d), 2);
    s.push_str("T");
    s.push_dec(rem / 3600, 2);
    s.push_str(":");
    s.push_dec((rem / 60) % 60, 2);
    s.push_str(":");
    s.push_dec(rem % 60, 2);
    LAST_SECOND.set(Some((secs, s)));
    s
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
    eve_time(ts_ns).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_for_syslog() {
        assert_eq!(rfc3339_micros(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339_micros(1_715_594_400_123_456_789),
            "2024-05-13T10:00:00.123456Z"
        );
        assert_eq!(
            rfc3339_micros(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000Z"
        );
        assert_eq!(rfc3339_micros(u64::MAX), "2554-07-21T23:34:33.709551Z");
    }

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

    #[test]
    fn the_cached_second_never_leaks_into_another() {
        let base = 1_715_594_400_000_000_000u64;
        for (ts, want) in [
            (base + 1_000, "2024-05-13T10:00:00.000001+0000"),
            (base + 999_999_999, "2024-05-13T10:00:00.999999+0000"),
            (base + 1_000_000_000, "2024-05-13T10:00:01.000000+0000"),
            (base + 500, "2024-05-13T10:00:00.000000+0000"),
            (base - 1, "2024-05-13T09:59:59.999999+0000"),
            (base + 86_400_000_000_000, "2024-05-14T10:00:00.000000+0000"),
        ] {
            assert_eq!(eve_timestamp_string(ts), want);
        }
    }
}
