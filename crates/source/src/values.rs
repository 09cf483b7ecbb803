//! Reading one CSV value as its column's type, by the rules Spark 4 follows with its default
//! options (`UnivocityParser`'s converters, which call Java's parsers and Spark's own date
//! and time parsers). The cases checked against Spark are in `tests/spark/record_csv.py`;
//! docs/csv.md has the table.

use std::borrow::Cow;

use arrow_array::timezone::Tz;
use chrono::{DateTime, Duration, NaiveDate, Offset, TimeZone};

/// Why a value is not of its column's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bad {
    /// It is not written as the type is.
    Malformed,
    /// It is, but the type cannot hold it.
    OutOfRange,
}

/// Java's `Integer.parseInt` / `Long.parseLong`: an optional sign and decimal digits, nothing
/// else (no spaces, no point, no exponent); `max` is the type's largest value.
fn integer(text: &[u8], max: u64) -> Result<i64, Bad> {
    let (negative, digits) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() {
        return Err(Bad::Malformed);
    }
    let mut value: u64 = 0;
    let mut overflow = false;
    for &d in digits {
        let digit = d.wrapping_sub(b'0');
        if digit > 9 {
            return Err(Bad::Malformed);
        }
        // Every digit is looked at, so that `99999999999x` is malformed, not out of range.
        match value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(digit)))
        {
            Some(v) => value = v,
            None => overflow = true,
        }
    }
    let limit = max + u64::from(negative);
    if overflow || value > limit {
        return Err(Bad::OutOfRange);
    }
    // −2⁶³ is its own negation in two's complement, so the wrapping negation is exact.
    Ok(match negative {
        true => (value as i64).wrapping_neg(),
        false => value as i64,
    })
}

/// An INT as Spark reads it.
pub(crate) fn int32(text: &[u8]) -> Result<i32, Bad> {
    integer(text, i32::MAX as u64).map(|v| v as i32)
}

/// A BIGINT as Spark reads it.
pub(crate) fn int64(text: &[u8]) -> Result<i64, Bad> {
    integer(text, i64::MAX as u64)
}

/// A BOOLEAN as Spark reads it: `true` or `false` in any case, nothing around them.
pub(crate) fn boolean(text: &[u8]) -> Result<bool, Bad> {
    if text.eq_ignore_ascii_case(b"true") {
        Ok(true)
    } else if text.eq_ignore_ascii_case(b"false") {
        Ok(false)
    } else {
        Err(Bad::Malformed)
    }
}

/// A DOUBLE as Spark reads it: its own `NaN`, `Inf` and `-Inf` (the `nanValue`,
/// `positiveInf` and `negativeInf` options' defaults), then Java's `Double.parseDouble`,
/// which trims spaces and control characters, and reads `NaN`, `Infinity`, a type suffix
/// (`1.5d`, `2f`) and hexadecimal (`0x1p3`), but not `nan`, `inf` or `1_0`.
pub(crate) fn double(text: &[u8]) -> Result<f64, Bad> {
    match text {
        b"NaN" => return Ok(f64::NAN),
        b"Inf" => return Ok(f64::INFINITY),
        b"-Inf" => return Ok(f64::NEG_INFINITY),
        _ => {}
    }
    let text = trim_java(text);
    let (negative, body) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let magnitude = match body {
        b"NaN" => f64::NAN,
        b"Infinity" => f64::INFINITY,
        _ if body.len() > 1 && body[0] == b'0' && matches!(body[1], b'x' | b'X') => {
            hexadecimal(&body[2..])?
        }
        _ => decimal_float(body)?,
    };
    Ok(if negative { -magnitude } else { magnitude })
}

/// Java's `String.trim`: every character up to the space, at both ends.
fn trim_java(mut text: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = text {
        if *first > b' ' {
            break;
        }
        text = rest;
    }
    while let [rest @ .., last] = text {
        if *last > b' ' {
            break;
        }
        text = rest;
    }
    text
}

/// Drops a Java float-type suffix (`f`, `F`, `d`, `D`); `parseDouble` reads the digits as a
/// double whichever it is.
fn without_suffix(text: &[u8]) -> &[u8] {
    match text.last() {
        Some(b'f' | b'F' | b'd' | b'D') => &text[..text.len() - 1],
        _ => text,
    }
}

/// `digits [. digits] [e [sign] digits]`, at least one digit before the exponent.
fn decimal_float(text: &[u8]) -> Result<f64, Bad> {
    let text = without_suffix(text);
    let mut i = 0;
    let mut digits = 0;
    while i < text.len() && text[i].is_ascii_digit() {
        (i, digits) = (i + 1, digits + 1);
    }
    if text.get(i) == Some(&b'.') {
        i += 1;
        while i < text.len() && text[i].is_ascii_digit() {
            (i, digits) = (i + 1, digits + 1);
        }
    }
    if digits == 0 {
        return Err(Bad::Malformed);
    }
    if matches!(text.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(text.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let from = i;
        while i < text.len() && text[i].is_ascii_digit() {
            i += 1;
        }
        if i == from {
            return Err(Bad::Malformed);
        }
    }
    if i != text.len() {
        return Err(Bad::Malformed);
    }
    // The grammar is checked: Rust's parser reads it, correctly rounded as Java's is.
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse::<f64>().ok())
        .ok_or(Bad::Malformed)
}

/// Java's hexadecimal floating point after `0x`: `hex [. hex] p [sign] digits`.
fn hexadecimal(text: &[u8]) -> Result<f64, Bad> {
    let text = without_suffix(text);
    let p = text
        .iter()
        .position(|b| matches!(b, b'p' | b'P'))
        .ok_or(Bad::Malformed)?;
    let (significand, exponent) = (&text[..p], &text[p + 1..]);
    let exponent: i32 = std::str::from_utf8(exponent)
        .ok()
        .and_then(|e| e.parse().ok())
        .ok_or(Bad::Malformed)?;
    let (whole, fraction) = match significand.iter().position(|&b| b == b'.') {
        Some(dot) => (&significand[..dot], &significand[dot + 1..]),
        None => (significand, &[][..]),
    };
    if whole.len() + fraction.len() == 0 {
        return Err(Bad::Malformed);
    }
    let mut value = 0f64;
    for &h in whole.iter().chain(fraction) {
        let digit = (h as char).to_digit(16).ok_or(Bad::Malformed)?;
        value = value * 16.0 + f64::from(digit);
    }
    let shift = exponent.saturating_sub(4 * fraction.len() as i32);
    Ok(value * 2f64.powi(shift))
}

/// A DECIMAL(precision, scale) as Spark reads it: commas dropped (its default locale's
/// grouping), then Java's `BigDecimal` (`[sign] digits [. digits] [e [sign] digits]`, no
/// spaces), rounded half up to the scale; more digits than the precision is out of range.
/// Returns the unscaled value.
pub(crate) fn decimal(text: &[u8], precision: u8, scale: i8) -> Result<i128, Bad> {
    let text: Vec<u8> = text.iter().copied().filter(|&b| b != b',').collect();
    let (negative, body) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, &text[..]),
    };
    let (mantissa, exponent) = match body.iter().position(|b| matches!(b, b'e' | b'E')) {
        Some(e) => (&body[..e], Some(&body[e + 1..])),
        None => (body, None),
    };
    let exponent: i64 = match exponent {
        None => 0,
        Some(e) => {
            let digits = e.strip_prefix(b"+").or(e.strip_prefix(b"-")).unwrap_or(e);
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return Err(Bad::Malformed);
            }
            // BigDecimal refuses an exponent beyond an int.
            let e: i64 = std::str::from_utf8(e)
                .ok()
                .and_then(|e| e.parse().ok())
                .filter(|e: &i64| i32::try_from(*e).is_ok())
                .ok_or(Bad::Malformed)?;
            e
        }
    };
    let (whole, fraction) = match mantissa.iter().position(|&b| b == b'.') {
        Some(dot) => (&mantissa[..dot], &mantissa[dot + 1..]),
        None => (mantissa, &[][..]),
    };
    let all_digits = whole.iter().chain(fraction).all(u8::is_ascii_digit);
    if whole.len() + fraction.len() == 0 || !all_digits {
        return Err(Bad::Malformed);
    }
    // The value is digits × 10^(exponent − fraction digits); at the scale, the unscaled
    // value is digits × 10^shift.
    let digits: Vec<u8> = whole.iter().chain(fraction).map(|d| d - b'0').collect();
    let first = digits.iter().position(|&d| d != 0).unwrap_or(digits.len());
    let digits = &digits[first..];
    let shift = exponent - fraction.len() as i64 + i64::from(scale);
    let (kept, round_up) = match shift {
        _ if digits.is_empty() => (&digits[..0], false),
        s if s >= 0 => {
            if digits.len() as i64 + s > 38 {
                return Err(Bad::OutOfRange);
            }
            (digits, false)
        }
        s => {
            let dropped = (-s).min(digits.len() as i64 + 1) as usize;
            let keep = digits.len().saturating_sub(dropped);
            let half = match dropped <= digits.len() {
                true => digits[keep] >= 5,
                false => false,
            };
            (&digits[..keep], half)
        }
    };
    if kept.len() > 38 {
        return Err(Bad::OutOfRange);
    }
    let mut unscaled: i128 = 0;
    for &d in kept {
        unscaled = unscaled * 10 + i128::from(d);
    }
    if shift > 0 && !kept.is_empty() {
        unscaled *= 10i128.pow(shift as u32);
    }
    unscaled += i128::from(round_up);
    if unscaled >= 10i128.pow(u32::from(precision)) {
        return Err(Bad::OutOfRange);
    }
    Ok(if negative { -unscaled } else { unscaled })
}

/// UTF8String's `trimAll`: spaces and control characters at both ends.
fn trim_all(mut text: &[u8]) -> &[u8] {
    let space = |b: u8| b <= b' ' || b == 0x7f;
    while let [first, rest @ ..] = text {
        if !space(*first) {
            break;
        }
        text = rest;
    }
    while let [rest @ .., last] = text {
        if !space(*last) {
            break;
        }
        text = rest;
    }
    text
}

/// Spark's `cleanLegacyTimestampStr`: "GMT" removed wherever it is.
fn without_gmt(text: &[u8]) -> Cow<'_, [u8]> {
    if !text.contains(&b'G') {
        return Cow::Borrowed(text);
    }
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i..].starts_with(b"GMT") {
            i += 3;
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    Cow::Owned(out)
}

/// Days since 1970-01-01 of a DATE as Spark reads it without a `dateFormat`
/// (`DateTimeUtils.stringToDate`): `[sign]yyyy[y…]`, `yyyy-[m]m`, `yyyy-[m]m-[d]d`, and the
/// last followed by a space or `T` and anything; a year of four to seven digits.
pub(crate) fn date(text: &[u8]) -> Result<i32, Bad> {
    let cleaned = without_gmt(text);
    let bytes = trim_all(&cleaned);
    let valid = |segment: usize, digits: usize| match segment {
        0 => (4..=7).contains(&digits),
        _ => (1..=2).contains(&digits),
    };
    let mut segments = [1i64, 1, 1];
    let (mut i, mut j, mut value, mut digits) = (0, 0, 0i64, 0);
    let mut sign = 1;
    if let Some(b'-' | b'+') = bytes.first() {
        sign = if bytes[0] == b'-' { -1 } else { 1 };
        j = 1;
    }
    while j < bytes.len() && i < 3 && !matches!(bytes[j], b' ' | b'T') {
        let b = bytes[j];
        if i < 2 && b == b'-' {
            if !valid(i, digits) {
                return Err(Bad::Malformed);
            }
            segments[i] = value;
            (value, digits, i) = (0, 0, i + 1);
        } else if b.is_ascii_digit() {
            value = value * 10 + i64::from(b - b'0');
            digits += 1;
        } else {
            return Err(Bad::Malformed);
        }
        j += 1;
    }
    if !valid(i, digits) || (i < 2 && j < bytes.len()) {
        return Err(Bad::Malformed);
    }
    segments[i] = value;
    let days = civil_days(sign * segments[0], segments[1], segments[2]).ok_or(Bad::Malformed)?;
    i32::try_from(days).map_err(|_| Bad::OutOfRange)
}

/// Days since 1970-01-01 of a day of the proleptic Gregorian calendar, as Java's
/// `LocalDate.of` checks it (chrono's dates stop at year 262143; Spark's go to 5 million).
fn civil_days(year: i64, month: i64, day: i64) -> Option<i64> {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let length = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    if !(1..=length).contains(&day) {
        return None;
    }
    // Howard Hinnant's days_from_civil: years start in March, so that leap days come last.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    Some(era * 146_097 + day_of_era - 719_468)
}

/// Days since 1970-01-01.
pub(crate) fn days(date: NaiveDate) -> i32 {
    date.signed_duration_since(NaiveDate::default()).num_days() as i32
}

/// Microseconds since the Unix epoch of a TIMESTAMP as Spark reads it without a
/// `timestampFormat` (`DateTimeUtils.stringToTimestamp`): a date as [`date`] reads it, then
/// optionally ` ` or `T`, `[h]h[:[m]m[:[s]s[.fraction]]]` (microseconds, more digits
/// dropped), and a zone (`Z`, `+02:00`, `-0130`, ` UTC`, ` UTC+1`, ` Europe/Paris`, ` EST`);
/// without one, local time in `zone`.
///
/// A time without a date (`10:00:00`) is refused: Spark gives it today's date, which a
/// replayed epoch would read differently on another day.
pub(crate) fn timestamp(text: &[u8], zone: &Zone) -> Result<i64, Bad> {
    let cleaned = without_gmt(text);
    let bytes = trim_all(&cleaned);
    let valid = |segment: usize, digits: usize| match segment {
        0 => (4..=6).contains(&digits),
        6 => true,
        7 => digits <= 2,
        _ => (1..=2).contains(&digits),
    };
    let mut segments = [1i64, 1, 1, 0, 0, 0, 0, 0, 0];
    let (mut i, mut j, mut value, mut digits) = (0usize, 0, 0i64, 0);
    let mut fraction_digits = 0;
    let mut zone_text: Option<&[u8]> = None;
    let mut sign = None;
    if let Some(b'-' | b'+') = bytes.first() {
        sign = Some(if bytes[0] == b'-' { -1 } else { 1 });
        j = 1;
    }
    let bad = Err(Bad::Malformed);
    while j < bytes.len() {
        let b = bytes[j];
        if b.is_ascii_digit() {
            if i == 6 {
                fraction_digits += 1;
            }
            // Digits past the microsecond are dropped.
            if i != 6 || digits < 6 {
                value = value * 10 + i64::from(b - b'0');
            }
            digits += 1;
            j += 1;
            continue;
        }
        let mut next = |segments: &mut [i64; 9], i: &mut usize| {
            if !valid(*i, digits) {
                return false;
            }
            segments[*i] = value;
            (value, digits) = (0, 0);
            *i += 1;
            true
        };
        if j == 0 && b == b'T' || i == 0 && b == b':' && sign.is_none() {
            // A time of day alone.
            return bad;
        } else if i < 2 {
            if b != b'-' || !next(&mut segments, &mut i) {
                return bad;
            }
        } else if i == 2 {
            if !matches!(b, b' ' | b'T') || !next(&mut segments, &mut i) {
                return bad;
            }
        } else if i == 3 || i == 4 {
            if b != b':' || !next(&mut segments, &mut i) {
                return bad;
            }
        } else if i == 5 || i == 6 {
            if b == b'.' && i == 5 {
                if !next(&mut segments, &mut i) {
                    return bad;
                }
            } else {
                if !next(&mut segments, &mut i) {
                    return bad;
                }
                zone_text = Some(&bytes[j..]);
                j = bytes.len() - 1;
            }
            if i == 6 && b != b'.' {
                i += 1;
            }
        } else if i < segments.len() && matches!(b, b':' | b' ') {
            if !next(&mut segments, &mut i) {
                return bad;
            }
        } else {
            return bad;
        }
        j += 1;
    }
    if !valid(i, digits) {
        return bad;
    }
    segments[i] = value;
    while fraction_digits < 6 {
        segments[6] *= 10;
        fraction_digits += 1;
    }
    let year = sign.unwrap_or(1) * segments[0];
    let days = civil_days(year, segments[1], segments[2]).ok_or(Bad::Malformed)?;
    let [hour, minute, second] = [segments[3], segments[4], segments[5]];
    if hour > 23 || minute > 59 || second > 59 {
        return bad;
    }
    let local = (days * 86_400 + hour * 3600 + minute * 60 + second)
        .checked_mul(1_000_000)
        .and_then(|m| m.checked_add(segments[6]))
        .ok_or(Bad::OutOfRange)?;
    let zone = match zone_text {
        None => Cow::Borrowed(zone),
        Some(text) => Cow::Owned(Zone::parse(trim_all(text)).ok_or(Bad::Malformed)?),
    };
    let offset = match zone.as_ref() {
        Zone::Offset(seconds) => Some(*seconds),
        Zone::Named(zone) => zone_offset(zone, local),
    };
    offset
        .and_then(|seconds| local.checked_sub(i64::from(seconds) * 1_000_000))
        .ok_or(Bad::OutOfRange)
}

/// The offset from UTC, in seconds, of `zone` at the local time `local` (microseconds), as
/// Java's `ZonedDateTime.of` resolves it: in a transition's gap or overlap, the offset from
/// before the transition.
fn zone_offset(zone: &Tz, local: i64) -> Option<i32> {
    let local = DateTime::from_timestamp_micros(local)?.naive_utc();
    let offset = match zone.from_local_datetime(&local).earliest() {
        Some(t) => t.offset().fix(),
        None => zone
            .offset_from_utc_datetime(&(local - Duration::days(1)))
            .fix(),
    };
    Some(offset.local_minus_utc())
}

/// A time zone, as a timestamp or the `time_zone` option names it.
#[derive(Debug, Clone)]
pub(crate) enum Zone {
    /// A fixed offset, in seconds east of UTC (UTC is 0).
    Offset(i32),
    /// A region, whose offset changes.
    Named(Tz),
}

impl Zone {
    /// Java's `ZoneId.of(id, SHORT_IDS)` after Spark's `getZoneId` has padded one-digit
    /// hours and minutes: `Z`, an offset (`+2`, `+02`, `+0200`, `+02:00`), `UTC`/`GMT`/`UT`
    /// with or without an offset, a short name (`EST`), or a region (`Europe/Paris`).
    pub(crate) fn parse(text: &[u8]) -> Option<Zone> {
        let text = std::str::from_utf8(text).ok()?;
        if text == "Z" {
            return Some(Zone::Offset(0));
        }
        if text.starts_with(['+', '-']) {
            return offset(text).map(Zone::Offset);
        }
        for prefix in ["UTC", "GMT", "UT"] {
            if let Some(rest) = text.strip_prefix(prefix) {
                return match rest {
                    "" => Some(Zone::Offset(0)),
                    _ if rest.starts_with(['+', '-']) => offset(rest).map(Zone::Offset),
                    _ => None,
                };
            }
        }
        let name = SHORT_IDS
            .iter()
            .find(|(short, _)| *short == text)
            .map_or(text, |(_, long)| long);
        if name.starts_with(['+', '-']) {
            return offset(name).map(Zone::Offset);
        }
        name.parse::<Tz>().ok().map(Zone::Named)
    }
}

/// Java's short zone names (`ZoneId.SHORT_IDS`), which Spark accepts.
const SHORT_IDS: &[(&str, &str)] = &[
    ("ACT", "Australia/Darwin"),
    ("AET", "Australia/Sydney"),
    ("AGT", "America/Argentina/Buenos_Aires"),
    ("ART", "Africa/Cairo"),
    ("AST", "America/Anchorage"),
    ("BET", "America/Sao_Paulo"),
    ("BST", "Asia/Dhaka"),
    ("CAT", "Africa/Harare"),
    ("CNT", "America/St_Johns"),
    ("CST", "America/Chicago"),
    ("CTT", "Asia/Shanghai"),
    ("EAT", "Africa/Addis_Ababa"),
    ("ECT", "Europe/Paris"),
    ("EST", "-05:00"),
    ("HST", "-10:00"),
    ("IET", "America/Indiana/Indianapolis"),
    ("IST", "Asia/Kolkata"),
    ("JST", "Asia/Tokyo"),
    ("MIT", "Pacific/Apia"),
    ("MST", "-07:00"),
    ("NET", "Asia/Yerevan"),
    ("NST", "Pacific/Auckland"),
    ("PLT", "Asia/Karachi"),
    ("PNT", "America/Phoenix"),
    ("PRT", "America/Puerto_Rico"),
    ("PST", "America/Los_Angeles"),
    ("SST", "Pacific/Guadalcanal"),
    ("VST", "Asia/Ho_Chi_Minh"),
];

/// `ZoneOffset.of`: `±h`, `±hh`, `±hh:mm`, `±hhmm`, `±hh:mm:ss`, `±hhmmss`, up to 18 hours;
/// one-digit hours and minutes padded first, as Spark's `getZoneId` does.
fn offset(text: &str) -> Option<i32> {
    let sign = if text.starts_with('-') { -1 } else { 1 };
    let body = &text[1..];
    let parts: Vec<&str> = body.split(':').collect();
    let numbers: Option<Vec<i32>> = match parts.as_slice() {
        [whole] if whole.len() <= 2 => Some(vec![whole.parse().ok()?, 0, 0]),
        [whole] if whole.len() == 4 || whole.len() == 6 => {
            let chunk = |k: usize| whole.get(k..k + 2).map_or(Some(0), |c| c.parse().ok());
            Some(vec![chunk(0)?, chunk(2)?, chunk(4)?])
        }
        [h, m] if !h.is_empty() && h.len() <= 2 && !m.is_empty() && m.len() <= 2 => {
            Some(vec![h.parse().ok()?, m.parse().ok()?, 0])
        }
        [h, m, s] if !h.is_empty() && h.len() <= 2 && m.len() == 2 && s.len() == 2 => {
            Some(vec![h.parse().ok()?, m.parse().ok()?, s.parse().ok()?])
        }
        _ => None,
    };
    let all_digits = body.bytes().all(|b| b.is_ascii_digit() || b == b':');
    let [h, m, s] = numbers?.try_into().ok()?;
    if !all_digits || h > 18 || m > 59 || s > 59 || (h == 18 && (m > 0 || s > 0)) {
        return None;
    }
    Some(sign * (h * 3600 + m * 60 + s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_follow_java() {
        assert_eq!(int32(b"+1"), Ok(1));
        assert_eq!(int32(b"007"), Ok(7));
        assert_eq!(int32(b" 1"), Err(Bad::Malformed));
        assert_eq!(int32(b"2147483648"), Err(Bad::OutOfRange));
        assert_eq!(int32(b"-2147483648"), Ok(i32::MIN));
        assert_eq!(int32(b"-2147483649"), Err(Bad::OutOfRange));
        assert_eq!(int32(b"0000000000001"), Ok(1));
        assert_eq!(int32(b"99999999999x"), Err(Bad::Malformed));
        assert_eq!(int64(b"-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(int64(b"9223372036854775808"), Err(Bad::OutOfRange));
        assert_eq!(int32(b"-"), Err(Bad::Malformed));
        assert_eq!(
            int64(b"99999999999999999999999999999999999999999"),
            Err(Bad::OutOfRange)
        );
        for (text, want) in [
            (&b" 1.5 "[..], 1.5),
            (b"1.", 1.0),
            (b".5", 0.5),
            (b"1.5d", 1.5),
            (b"2f", 2.0),
            (b"0x1p3", 8.0),
            (b"0x1.8p1", 3.0),
            (b"-Infinity", f64::NEG_INFINITY),
            (b"1e400", f64::INFINITY),
        ] {
            assert_eq!(double(text), Ok(want), "{}", String::from_utf8_lossy(text));
        }
        for text in [&b"nan"[..], b"inf", b"+Inf", b"1_0", b"e5", b"1e", b"."] {
            assert_eq!(double(text), Err(Bad::Malformed));
        }
    }

    #[test]
    fn decimals_round_half_up_and_check_their_precision() {
        let d = |t: &str| decimal(t.as_bytes(), 5, 2);
        assert_eq!(d("1.005"), Ok(101));
        assert_eq!(d("-1.005"), Ok(-101));
        assert_eq!(d("1.004"), Ok(100));
        assert_eq!(d("1e2"), Ok(10000));
        assert_eq!(d("1.5E-1"), Ok(15));
        assert_eq!(d("999.995"), Err(Bad::OutOfRange));
        assert_eq!(d("\"1,000\""), Err(Bad::Malformed));
        assert_eq!(d("1,2,3"), Ok(12300));
        assert_eq!(d("0.005"), Ok(1));
        assert_eq!(d("0.0049"), Ok(0));
        assert_eq!(d("1e-9"), Ok(0));
        assert_eq!(d("0e999999"), Ok(0));
        assert_eq!(d(" 1"), Err(Bad::Malformed));
        assert_eq!(d("1e99999999999"), Err(Bad::Malformed));
    }

    #[test]
    fn dates_and_timestamps_follow_spark() {
        let day = |y, m, d| days(NaiveDate::from_ymd_opt(y, m, d).unwrap());
        assert_eq!(date(b"2024"), Ok(day(2024, 1, 1)));
        assert_eq!(date(b"2024-1-5"), Ok(day(2024, 1, 5)));
        assert_eq!(date(b"2024-01-05T10:00"), Ok(day(2024, 1, 5)));
        assert_eq!(date(b"20240105"), Err(Bad::Malformed));
        assert_eq!(date(b"2024-02-30"), Err(Bad::Malformed));
        assert_eq!(date(b"2024-02-29"), Ok(day(2024, 2, 29)));
        assert_eq!(date(b"1900-02-29"), Err(Bad::Malformed));
        assert_eq!(date(b"-0044-03-15"), Ok(day(-44, 3, 15)));
        // Spark's answer for a seven-digit year, past chrono's dates.
        assert_eq!(date(b"3452024-01-05"), Ok(1_260_106_352));
        let utc = Zone::Offset(0);
        let at = |text: &str| timestamp(text.as_bytes(), &utc);
        let ten = NaiveDate::from_ymd_opt(2024, 1, 5)
            .unwrap()
            .and_hms_opt(10, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_micros();
        let hour = 3_600_000_000;
        assert_eq!(at("2024-01-05 10:00"), Ok(ten));
        assert_eq!(at("2024-01-05 12:00:00+02:00"), Ok(ten));
        assert_eq!(at("2024-01-05 10:00:00 UTC"), Ok(ten));
        assert_eq!(at("2024-01-05 05:00:00 EST"), Ok(ten));
        assert_eq!(at("2024-01-05 11:00:00 Europe/Paris"), Ok(ten));
        assert_eq!(at("2024-01-05 11:00:00 +1"), Ok(ten));
        assert_eq!(at("2024-01-05T10:00:00.1234567Z"), Ok(ten + 123_456));
        assert_eq!(at("10:00:00"), Err(Bad::Malformed));
        assert_eq!(at("2024-01-05 10:00+02:00"), Err(Bad::Malformed));
        assert_eq!(at("2024-01-05 24:00:00"), Err(Bad::Malformed));
        let paris = Zone::parse(b"Europe/Paris").unwrap();
        // In the spring gap, the offset from before it (+1); in the autumn overlap, too (+2).
        let gap = timestamp(b"2024-03-31 02:30:00", &paris).unwrap();
        let overlap = timestamp(b"2024-10-27 02:30:00", &paris).unwrap();
        let utc_of = |text: &str| timestamp(text.as_bytes(), &utc).unwrap();
        assert_eq!(gap, utc_of("2024-03-31 01:30:00"));
        assert_eq!(overlap, utc_of("2024-10-27 00:30:00"));
        assert_eq!(utc_of("2024-01-05 11:00") - hour, ten);
    }
}
