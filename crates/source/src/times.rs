//! Spark's `timestampFormat`, `dateFormat` and `timeZone` options of the CSV source.
//!
//! Without a pattern, times are read by Spark's default rules ([`crate::values`]); with one,
//! the column's values are parsed with chrono and nothing else is accepted, as in Spark. A
//! TIMESTAMP written without an offset is local time in the `time_zone` (UTC unless set).
//! The source emits Weir's types: TIMESTAMP in UTC microseconds, DATE in days.

use std::str::FromStr;
use std::sync::Arc;

use arrow_array::timezone::Tz;
use arrow_schema::{DataType, SchemaRef};
use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone};
use weir_core::{java_to_chrono, ConfigError};

use crate::values::{self, Bad, Zone};

/// How one time column's values are read.
#[derive(Debug, Clone)]
pub(crate) enum ColumnTime {
    /// A TIMESTAMP read by Spark's default rules; local time in `zone` unless it says its own.
    Default { zone: Zone },
    /// A TIMESTAMP read with a chrono pattern; local time in `zone` unless the pattern has an
    /// offset.
    Pattern {
        pattern: String,
        /// The pattern as the user wrote it, for messages.
        written: String,
        has_offset: bool,
        zone: Tz,
    },
    /// A DATE read with a chrono pattern.
    DatePattern { pattern: String, written: String },
}

/// The options as written, validated into how each column's times are read.
pub(crate) struct TimeOptions<'a> {
    pub(crate) timestamp_format: Option<&'a str>,
    pub(crate) date_format: Option<&'a str>,
    pub(crate) time_zone: Option<&'a str>,
}

/// How each column's times are read: `None` for a DATE read by Spark's default rules and for
/// columns that are not times.
#[derive(Debug, Clone)]
pub(crate) struct TimeParsing {
    columns: Arc<Vec<Option<ColumnTime>>>,
}

fn pattern(key: &str, java: &str, errors: &mut Vec<ConfigError>) -> Option<String> {
    let chrono = java_to_chrono(java);
    if java.trim().is_empty() || StrftimeItems::new(&chrono).any(|i| matches!(i, Item::Error)) {
        errors.push(ConfigError::new(
            key,
            format!("\"{java}\" is not a date-time pattern (expected Spark's letters, such as \"yyyy-MM-dd HH:mm:ss\" or \"dd/MM/yyyy\")"),
        ));
        return None;
    }
    Some(chrono)
}

impl TimeOptions<'_> {
    /// Validates the options against the parsed columns.
    pub(crate) fn validate(
        &self,
        parsed: &SchemaRef,
        errors: &mut Vec<ConfigError>,
    ) -> TimeParsing {
        let zone = match self.time_zone {
            None => None,
            Some(name) => match Tz::from_str(name) {
                Ok(zone) => Some(zone),
                Err(_) => {
                    errors.push(ConfigError::new(
                        "time_zone",
                        format!("unknown time zone \"{name}\" (expected \"UTC\", an offset such as \"+02:00\", or a region such as \"Europe/Paris\")"),
                    ));
                    None
                }
            },
        };
        let timestamps = self
            .timestamp_format
            .and_then(|p| pattern("timestamp_format", p, errors));
        let dates = self
            .date_format
            .and_then(|p| pattern("date_format", p, errors));
        let zone = zone.or_else(|| Tz::from_str("+00:00").ok());
        let mut columns = Vec::new();
        for field in parsed.fields() {
            let how = match (field.data_type(), &zone) {
                (DataType::Timestamp(..), Some(zone)) => Some(match &timestamps {
                    Some(pattern) => ColumnTime::Pattern {
                        has_offset: pattern.contains("%z") || pattern.contains("%:z"),
                        pattern: pattern.clone(),
                        written: self.timestamp_format.unwrap_or_default().to_string(),
                        zone: *zone,
                    },
                    None => ColumnTime::Default {
                        // A fixed offset is applied without looking up the zone's rules.
                        zone: match self.time_zone.map(|n| Zone::parse(n.as_bytes())) {
                            None => Zone::Offset(0),
                            Some(Some(Zone::Offset(seconds))) => Zone::Offset(seconds),
                            Some(_) => Zone::Named(*zone),
                        },
                    },
                }),
                (DataType::Date32, _) => dates.clone().map(|pattern| ColumnTime::DatePattern {
                    pattern,
                    written: self.date_format.unwrap_or_default().to_string(),
                }),
                _ => None,
            };
            columns.push(how);
        }
        TimeParsing {
            columns: Arc::new(columns),
        }
    }
}

impl TimeParsing {
    /// Column `c`'s value `text` as a TIMESTAMP, in UTC microseconds.
    pub(crate) fn timestamp(&self, c: usize, text: &[u8]) -> Result<i64, Bad> {
        match self.columns.get(c).and_then(Option::as_ref) {
            Some(ColumnTime::Default { zone }) => values::timestamp(text, zone),
            Some(how @ ColumnTime::Pattern { .. }) => std::str::from_utf8(text)
                .ok()
                .and_then(|t| timestamp(how, t))
                .ok_or(Bad::Malformed),
            // Validation gives every TIMESTAMP column a way to be read.
            _ => Err(Bad::Malformed),
        }
    }

    /// Column `c`'s value `text` as a DATE, in days since 1970-01-01.
    pub(crate) fn date(&self, c: usize, text: &[u8]) -> Result<i32, Bad> {
        match self.columns.get(c).and_then(Option::as_ref) {
            Some(ColumnTime::DatePattern { pattern, .. }) => std::str::from_utf8(text)
                .ok()
                .and_then(|t| NaiveDate::parse_from_str(t, pattern).ok())
                .map(values::days)
                .ok_or(Bad::Malformed),
            _ => values::date(text),
        }
    }

    /// Column `c`'s pattern as the user wrote it, when it has one.
    pub(crate) fn pattern(&self, c: usize) -> Option<&str> {
        match self.columns.get(c)?.as_ref()? {
            ColumnTime::Pattern { written, .. } | ColumnTime::DatePattern { written, .. } => {
                Some(written)
            }
            ColumnTime::Default { .. } => None,
        }
    }
}

/// Microseconds since the Unix epoch of `text` read with a timestamp pattern.
fn timestamp(how: &ColumnTime, text: &str) -> Option<i64> {
    let ColumnTime::Pattern {
        pattern,
        has_offset,
        zone,
        ..
    } = how
    else {
        return None;
    };
    if *has_offset {
        return DateTime::parse_from_str(text, pattern)
            .ok()
            .map(|t| t.timestamp_micros());
    }
    // A pattern without a time of day reads midnight, as Spark does.
    let naive = NaiveDateTime::parse_from_str(text, pattern)
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(text, pattern)
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })?;
    zone.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_core::parse_ddl;

    fn parsing(ts: Option<&str>, date: Option<&str>, zone: Option<&str>) -> TimeParsing {
        let parsed = parse_ddl("ts TIMESTAMP, day DATE, n INT").unwrap();
        let mut errors = Vec::new();
        let options = TimeOptions {
            timestamp_format: ts,
            date_format: date,
            time_zone: zone,
        };
        let parsing = options.validate(&parsed, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        parsing
    }

    #[test]
    fn patterns_and_zones_give_utc_microseconds_and_days() {
        let with = parsing(Some("dd/MM/yyyy HH:mm"), Some("dd.MM.yyyy"), Some("+02:00"));
        // 10:30 at +02:00 is 08:30 UTC.
        assert_eq!(
            with.timestamp(0, b"05/01/2024 10:30"),
            Ok(1_704_443_400_000_000)
        );
        assert_eq!(with.date(1, b"02.01.1970"), Ok(1));
        // A pattern accepts nothing else, as in Spark.
        assert_eq!(with.timestamp(0, b"2024-01-05 10:30"), Err(Bad::Malformed));
        assert_eq!(with.pattern(1), Some("dd.MM.yyyy"));
        let zoned = parsing(None, None, Some("+02:00"));
        assert_eq!(
            zoned.timestamp(0, b"2024-01-05 10:30"),
            Ok(1_704_443_400_000_000)
        );
        assert_eq!(zoned.date(1, b"1970-01-02"), Ok(1));
        assert_eq!(zoned.pattern(0), None);
    }

    #[test]
    fn bad_options_are_named() {
        let parsed = parse_ddl("ts TIMESTAMP").unwrap();
        let mut errors = Vec::new();
        TimeOptions {
            timestamp_format: Some("  "),
            date_format: None,
            time_zone: Some("Mars/Olympus"),
        }
        .validate(&parsed, &mut errors);
        let keys: Vec<_> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["time_zone", "timestamp_format"]);
    }
}
