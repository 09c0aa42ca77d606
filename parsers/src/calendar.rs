//! Date arithmetic for the timestamps EVE writes (packet time, certificate validity).
//! Hand-written (Hinnant's civil-from-days): it is the only calendar work Vigil needs.

/// Year, month (1–12) and day (1–31) of the proleptic Gregorian date `days` after 1970-01-01
/// (negative before it); valid over the whole `i64` day range X.509 dates can produce.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}
