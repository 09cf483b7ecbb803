use std::time::Duration;

use crate::ConfigError;

/// Parses a duration such as `"500ms"`, `"10s"`, `"2m"`, `"1h"`, `"1m30s"` or `"1h 30min"`
/// (humantime's syntax: an integer and a unit, repeated).
///
/// A bare `"10"` is an error rather than a guess, and zero is refused because every duration
/// in a pipeline is an interval that must advance.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    const EXPECTED: &str =
        "expected a positive duration such as \"500ms\", \"10s\", \"2m\" or \"1h\"";
    let total = humantime::parse_duration(text.trim())
        .map_err(|e| format!("\"{text}\" is not a duration: {e} ({EXPECTED})"))?;
    if total.is_zero() {
        return Err(format!("\"{text}\" is zero ({EXPECTED})"));
    }
    Ok(total)
}

/// The duration a config key holds, or `default` when it is not set; a value that is not a
/// duration is reported under `key` in `errors` (and `default` stands in, so that
/// validation goes on to find every other problem).
pub fn duration_key(
    key: &str,
    value: Option<&str>,
    default: Duration,
    errors: &mut Vec<ConfigError>,
) -> Duration {
    match value.map(parse_duration) {
        None => default,
        Some(Ok(duration)) => duration,
        Some(Err(e)) => {
            errors.push(ConfigError::new(key, e));
            default
        }
    }
}

/// Microseconds in one of Spark's interval units, by every spelling Spark accepts.
fn interval_unit(unit: &str) -> Option<i64> {
    Some(match unit.to_ascii_lowercase().as_str() {
        "us" | "microsecond" | "microseconds" => 1,
        "ms" | "millisecond" | "milliseconds" => 1_000,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000_000,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000_000,
        "h" | "hour" | "hours" => 3_600_000_000,
        "d" | "day" | "days" => 86_400_000_000,
        "week" | "weeks" => 7 * 86_400_000_000,
        _ => return None,
    })
}

/// Parses an event-time interval as Spark writes them (`"10 minutes"`, `"1 hour 30
/// minutes"`, `"interval 5 seconds"`) or as Weir's durations do (`"10m"`, `"1h30m"`), into
/// microseconds. Zero is allowed (a watermark without delay); months and years are not,
/// because their length varies and a window must have one.
pub fn parse_interval(text: &str) -> Result<i64, String> {
    const EXPECTED: &str = "expected an interval such as \"10 minutes\", \"1 hour 30 minutes\", \"30 seconds\" or \"10m\"";
    let bad = || format!("\"{text}\" is not an interval ({EXPECTED})");
    let trimmed = text.trim();
    let body = match trimmed.get(..9) {
        Some(head) if head.eq_ignore_ascii_case("interval ") => &trimmed[9..],
        _ => trimmed,
    };
    // Split "10minutes", "10 minutes" and "1h30m" alike into number and unit tokens.
    let mut tokens: Vec<(bool, String)> = Vec::new();
    for c in body.chars() {
        let digit = c.is_ascii_digit();
        if c.is_whitespace() {
            tokens.push((false, String::new()));
            continue;
        }
        match tokens.last_mut() {
            Some((was_digit, token)) if *was_digit == digit && !token.is_empty() => token.push(c),
            _ => tokens.push((digit, c.to_string())),
        }
    }
    tokens.retain(|(_, t)| !t.is_empty());
    if tokens.is_empty() || !tokens.len().is_multiple_of(2) {
        return Err(bad());
    }
    let mut total: i64 = 0;
    for pair in tokens.chunks(2) {
        let [(true, number), (false, unit)] = pair else {
            return Err(bad());
        };
        let value: i64 = number.parse().map_err(|_| bad())?;
        let Some(scale) = interval_unit(unit) else {
            return Err(format!(
                "\"{text}\" is not an interval: unknown unit \"{unit}\" ({EXPECTED}; months and years have no fixed length)"
            ));
        };
        total = value
            .checked_mul(scale)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("\"{text}\" is too long an interval"))?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_compounds() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h 30min"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("10sec"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn refuses_vague_or_zero_durations() {
        for bad in ["10", "", "s", "-1s", "10 parsecs", "ten seconds"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("is not a duration"), "{bad}: {err}");
        }
        assert!(parse_duration("0s").unwrap_err().contains("is zero"));
    }

    #[test]
    fn parses_spark_intervals() {
        assert_eq!(parse_interval("10 minutes"), Ok(600_000_000));
        assert_eq!(
            parse_interval("interval 1 hour 30 minutes"),
            Ok(5_400_000_000)
        );
        assert_eq!(parse_interval("1h30m"), Ok(5_400_000_000));
        assert_eq!(parse_interval("500 milliseconds"), Ok(500_000));
        assert_eq!(parse_interval("0 seconds"), Ok(0));
        assert_eq!(parse_interval("2 Days"), Ok(172_800_000_000));
        for bad in ["", "10", "minutes", "ten minutes", "-1 minute", "1.5 hours"] {
            assert!(
                parse_interval(bad)
                    .unwrap_err()
                    .contains("is not an interval"),
                "{bad}"
            );
        }
        assert!(parse_interval("1 month")
            .unwrap_err()
            .contains("unknown unit"));
    }
}
