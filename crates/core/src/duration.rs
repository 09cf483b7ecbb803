use std::time::Duration;

/// Parses a duration such as `"500ms"`, `"10s"`, `"2m"`, `"1h"` or `"1m30s"`.
///
/// Deliberately strict: `"10 sec"` or a bare `"10"` is an error rather than a guess, and zero is
/// refused because every duration in a pipeline is an interval that must advance.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    const EXPECTED: &str =
        "expected a positive duration such as \"500ms\", \"10s\", \"2m\" or \"1h\"";
    let bad = || format!("\"{text}\" is not a duration ({EXPECTED})");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let value: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(value),
            "s" => Duration::from_secs(value),
            "m" => Duration::from_secs(value.saturating_mul(60)),
            "h" => Duration::from_secs(value.saturating_mul(3600)),
            _ => return Err(bad()),
        };
        total = total.saturating_add(unit);
        rest = &rest[unit_len..];
    }
    if total.is_zero() {
        return Err(format!("\"{text}\" is zero ({EXPECTED})"));
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
    }

    #[test]
    fn refuses_vague_or_zero_durations() {
        for bad in ["10 sec", "10", "", "s", "-1s", "1.5s", "10sec"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("is not a duration"), "{bad}: {err}");
        }
        assert!(parse_duration("0s").unwrap_err().contains("is zero"));
    }
}
