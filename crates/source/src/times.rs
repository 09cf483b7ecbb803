//! Spark's `timestampFormat`, `dateFormat` and `timeZone` options of the CSV source.
//!
//! arrow-csv reads timestamps in its own spellings (ISO 8601 and `YYYY-MM-DD HH:MM:SS`) and
//! dates as `YYYY-MM-DD`. With a pattern, such a column is read as text and parsed here with
//! chrono; with a time zone, arrow-csv reads the column as local time in that zone. Either
//! way the source emits Weir's types: TIMESTAMP in UTC microseconds, DATE in days. A value
//! that does not parse makes its row malformed, like any other bad value.

use std::str::FromStr;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::timezone::Tz;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{Array, ArrayRef, Date32Array, RecordBatch, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone};
use weir_core::{java_to_chrono, ConfigError, UTC};

/// How one column's times are read, when not as arrow-csv reads them by default.
#[derive(Debug, Clone)]
pub(crate) enum ColumnTime {
    /// A TIMESTAMP read as text with a chrono pattern; local time in `zone` unless the
    /// pattern has an offset.
    Pattern {
        pattern: String,
        /// The pattern as the user wrote it, for messages.
        written: String,
        has_offset: bool,
        zone: Tz,
    },
    /// A DATE read as text with a chrono pattern.
    DatePattern { pattern: String, written: String },
    /// A TIMESTAMP arrow-csv reads as local time in a zone, then labels UTC.
    Zoned,
}

/// The options as written, validated into what the decoder reads and how it converts.
pub(crate) struct TimeOptions<'a> {
    pub(crate) timestamp_format: Option<&'a str>,
    pub(crate) date_format: Option<&'a str>,
    pub(crate) time_zone: Option<&'a str>,
}

/// What arrow-csv decodes (`read`) and how each column becomes the parsed schema's type.
#[derive(Debug, Clone)]
pub(crate) struct TimeParsing {
    pub(crate) read: SchemaRef,
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
        let utc = Tz::from_str("+00:00").ok();
        let mut read = Vec::new();
        let mut columns = Vec::new();
        for field in parsed.fields() {
            let how = match field.data_type() {
                DataType::Timestamp(..) => match (&timestamps, zone.or(utc)) {
                    (Some(pattern), Some(zone)) => Some(ColumnTime::Pattern {
                        has_offset: pattern.contains("%z") || pattern.contains("%:z"),
                        pattern: pattern.clone(),
                        written: self.timestamp_format.unwrap_or_default().to_string(),
                        zone,
                    }),
                    (None, _) if zone.is_some() => Some(ColumnTime::Zoned),
                    _ => None,
                },
                DataType::Date32 => dates.clone().map(|pattern| ColumnTime::DatePattern {
                    pattern,
                    written: self.date_format.unwrap_or_default().to_string(),
                }),
                _ => None,
            };
            let read_type = match (&how, self.time_zone) {
                (Some(ColumnTime::Zoned), Some(name)) => {
                    DataType::Timestamp(TimeUnit::Microsecond, Some(name.into()))
                }
                (Some(_), _) => DataType::Utf8,
                (None, _) => field.data_type().clone(),
            };
            read.push(Field::new(field.name(), read_type, field.is_nullable()));
            columns.push(how);
        }
        TimeParsing {
            read: Arc::new(Schema::new(read)),
            columns: Arc::new(columns),
        }
    }
}

impl TimeParsing {
    /// Whether any column is read other than as its type.
    fn any(&self) -> bool {
        self.columns.iter().any(Option::is_some)
    }

    /// Whether `text` parses with column `c`'s pattern; `None` when the column has none.
    pub(crate) fn parses(&self, c: usize, text: &[u8]) -> Option<bool> {
        let how = self.columns.get(c)?.as_ref()?;
        let text = std::str::from_utf8(text).ok();
        Some(match how {
            ColumnTime::Zoned => return None,
            ColumnTime::Pattern { .. } => text.and_then(|t| timestamp(how, t)).is_some(),
            ColumnTime::DatePattern { pattern, .. } => text
                .and_then(|t| NaiveDate::parse_from_str(t, pattern).ok())
                .is_some(),
        })
    }

    /// Column `c`'s pattern as the user wrote it, when it has one.
    pub(crate) fn pattern(&self, c: usize) -> Option<&str> {
        match self.columns.get(c)?.as_ref()? {
            ColumnTime::Pattern { written, .. } | ColumnTime::DatePattern { written, .. } => {
                Some(written)
            }
            ColumnTime::Zoned => None,
        }
    }

    /// The batch arrow-csv decoded, in the parsed schema's types; `None` when a value does
    /// not parse (the batch is then judged row by row).
    pub(crate) fn finish(&self, batch: RecordBatch, parsed: &SchemaRef) -> Option<RecordBatch> {
        if !self.any() {
            return Some(batch);
        }
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
        for (c, array) in batch.columns().iter().enumerate() {
            let converted: ArrayRef = match self.columns.get(c).and_then(Option::as_ref) {
                None => array.clone(),
                Some(ColumnTime::Zoned) => Arc::new(
                    array
                        .as_primitive_opt::<TimestampMicrosecondType>()?
                        .clone()
                        .with_timezone(UTC),
                ),
                Some(how @ ColumnTime::Pattern { .. }) => {
                    let strings = array.as_string_opt::<i32>()?;
                    let mut values = Vec::with_capacity(strings.len());
                    for text in strings.iter() {
                        values.push(match text {
                            None => None,
                            Some(t) => Some(timestamp(how, t)?),
                        });
                    }
                    Arc::new(TimestampMicrosecondArray::from(values).with_timezone(UTC))
                }
                Some(ColumnTime::DatePattern { pattern, .. }) => {
                    let strings = array.as_string_opt::<i32>()?;
                    let mut values = Vec::with_capacity(strings.len());
                    for text in strings.iter() {
                        values.push(match text {
                            None => None,
                            Some(t) => Some(days(NaiveDate::parse_from_str(t, pattern).ok()?)),
                        });
                    }
                    Arc::new(Date32Array::from(values))
                }
            };
            columns.push(converted);
        }
        RecordBatch::try_new(parsed.clone(), columns).ok()
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

fn days(date: NaiveDate) -> i32 {
    date.signed_duration_since(NaiveDate::default()).num_days() as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::StringArray;
    use weir_core::parse_ddl;

    fn parsing(
        ts: Option<&str>,
        date: Option<&str>,
        zone: Option<&str>,
    ) -> (TimeParsing, SchemaRef) {
        let parsed = parse_ddl("ts TIMESTAMP, day DATE, n INT").unwrap();
        let mut errors = Vec::new();
        let options = TimeOptions {
            timestamp_format: ts,
            date_format: date,
            time_zone: zone,
        };
        let parsing = options.validate(&parsed, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        (parsing, parsed)
    }

    #[test]
    fn patterns_and_zones_give_utc_microseconds_and_days() {
        let (parsing, parsed) =
            parsing(Some("dd/MM/yyyy HH:mm"), Some("dd.MM.yyyy"), Some("+02:00"));
        let batch = RecordBatch::try_new(
            parsing.read.clone(),
            vec![
                Arc::new(StringArray::from(vec![Some("05/01/2024 10:30"), None])),
                Arc::new(StringArray::from(vec![Some("02.01.1970"), None])),
                Arc::new(arrow_array::Int32Array::from(vec![1, 2])),
            ],
        )
        .unwrap();
        let out = parsing.finish(batch, &parsed).unwrap();
        let ts = out.column(0).as_primitive::<TimestampMicrosecondType>();
        // 10:30 at +02:00 is 08:30 UTC.
        assert_eq!(ts.value(0), 1_704_443_400_000_000);
        assert_eq!(
            out.column(1)
                .as_primitive::<arrow_array::types::Date32Type>()
                .value(0),
            1
        );
        assert_eq!(parsing.parses(0, b"2024-01-05"), Some(false));
        assert_eq!(parsing.parses(2, b"7"), None);
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
