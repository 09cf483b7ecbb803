use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// The zone of DDL `TIMESTAMP` columns: UTC, written as an offset.
pub const UTC: &str = "+00:00";

/// The column types a DDL schema may name, as listed in error messages.
pub const SUPPORTED_TYPES: &str =
    "STRING, INT, BIGINT, DOUBLE, BOOLEAN, DATE, TIMESTAMP, DECIMAL(p,s)";

/// A DDL schema that could not be parsed; `position` is the 1-based character where the
/// problem starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at character {position}: {message}")]
pub struct DdlError {
    /// 1-based character offset in the DDL string.
    pub position: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

/// Parses a Spark DDL schema such as `"File STRING, Shop STRING, Sale_Count INT"` into an Arrow
/// schema. Every column is nullable unless it says `NOT NULL`, as in Spark.
///
/// Names may be quoted with backticks. Types are case-insensitive; `INTEGER` and `LONG` are
/// accepted for `INT` and `BIGINT`.
pub fn parse_ddl(ddl: &str) -> Result<SchemaRef, DdlError> {
    // Positions are found as byte offsets and told as characters, which is what an editor
    // shows for a schema with names like `Größe`.
    parse_columns(ddl).map_err(|e| DdlError {
        position: ddl
            .get(..e.position - 1)
            .map_or(e.position, |before| before.chars().count() + 1),
        message: e.message,
    })
}

/// [`parse_ddl`], with 1-based byte positions in errors.
fn parse_columns(ddl: &str) -> Result<SchemaRef, DdlError> {
    let mut fields: Vec<Field> = Vec::new();
    let mut offset = 0;
    for part in split_columns(ddl) {
        let column_start = offset + leading_ws(part);
        offset += part.len() + 1;
        let text = part.trim();
        if text.is_empty() {
            return Err(DdlError {
                position: column_start + 1,
                message: "empty column definition (expected `name TYPE`)".into(),
            });
        }
        let (name, after_name) = column_name(text).map_err(|message| DdlError {
            position: column_start + 1,
            message,
        })?;
        let type_start = column_start + (text.len() - after_name.len()) + leading_ws(after_name);
        let type_text = after_name.trim();
        if type_text.is_empty() {
            return Err(DdlError {
                position: type_start + 1,
                message: format!("column `{name}` has no type (expected one of {SUPPORTED_TYPES})"),
            });
        }
        let (type_text, nullable) = strip_not_null(type_text);
        let data_type = data_type(type_text).map_err(|message| DdlError {
            position: type_start + 1,
            message,
        })?;
        if fields.iter().any(|f| f.name() == &name) {
            return Err(DdlError {
                position: column_start + 1,
                message: format!("column `{name}` is defined twice"),
            });
        }
        fields.push(Field::new(name, data_type, nullable));
    }
    Ok(Arc::new(Schema::new(fields)))
}

/// Splits on commas that are outside parentheses and backticks (`DECIMAL(10,2)` has one).
fn split_columns(ddl: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0);
    for (i, c) in ddl.char_indices() {
        match c {
            '`' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                parts.push(&ddl[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&ddl[start..]);
    parts
}

fn leading_ws(s: &str) -> usize {
    s.len() - s.trim_start().len()
}

fn column_name(text: &str) -> Result<(String, &str), String> {
    if let Some(rest) = text.strip_prefix('`') {
        let end = rest
            .find('`')
            .ok_or_else(|| "unclosed backtick in column name".to_string())?;
        return Ok((rest[..end].to_string(), &rest[end + 1..]));
    }
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    let name = &text[..end];
    if !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return Err(format!(
            "column name `{name}` has characters other than letters, digits and `_` (quote it with backticks)"
        ));
    }
    Ok((name.to_string(), &text[end..]))
}

fn strip_not_null(type_text: &str) -> (&str, bool) {
    let upper = type_text.to_ascii_uppercase();
    match upper.strip_suffix("NOT NULL") {
        Some(head) if head.ends_with(char::is_whitespace) => {
            (type_text[..head.len()].trim(), false)
        }
        _ => (type_text, true),
    }
}

fn data_type(text: &str) -> Result<DataType, String> {
    let upper = text.to_ascii_uppercase();
    let simple = match upper.as_str() {
        "STRING" => Some(DataType::Utf8),
        "INT" | "INTEGER" => Some(DataType::Int32),
        "BIGINT" | "LONG" => Some(DataType::Int64),
        "DOUBLE" => Some(DataType::Float64),
        "BOOLEAN" => Some(DataType::Boolean),
        "DATE" => Some(DataType::Date32),
        // Spark's TIMESTAMP is an instant with microsecond precision. The zone is written as
        // an offset: arrow parses named zones ("UTC") only with its chrono-tz feature, and
        // without it refused every TIMESTAMP value (found by fuzzing the CSV source).
        "TIMESTAMP" => Some(DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()))),
        "DECIMAL" => Some(DataType::Decimal128(10, 0)),
        _ => None,
    };
    if let Some(t) = simple {
        return Ok(t);
    }
    if let Some(args) = upper
        .strip_prefix("DECIMAL")
        .map(str::trim_start)
        .and_then(|s| s.strip_prefix('('))
        .and_then(|s| s.strip_suffix(')'))
    {
        let mut numbers = args.split(',').map(|n| n.trim().parse::<u8>());
        let precision = match numbers.next() {
            Some(Ok(p)) if (1..=38).contains(&p) => p,
            _ => return Err(format!("`{text}`: DECIMAL precision must be 1 to 38")),
        };
        let scale = match numbers.next() {
            None => 0,
            Some(Ok(s)) if s <= precision => s,
            _ => {
                return Err(format!(
                    "`{text}`: DECIMAL scale must be 0 to the precision"
                ))
            }
        };
        if numbers.next().is_some() {
            return Err(format!("`{text}`: expected DECIMAL(precision, scale)"));
        }
        return Ok(DataType::Decimal128(precision, scale as i8));
    }
    Err(format!(
        "unknown type \"{text}\" (expected one of {SUPPORTED_TYPES})"
    ))
}

/// The DDL name of a type [`parse_ddl`] produces (`INT` for `Int32`), for messages that
/// speak the user's vocabulary. Types DDL cannot name are shown as Arrow names them.
pub fn ddl_type_name(data_type: &DataType) -> String {
    match data_type {
        DataType::Utf8 => "STRING".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Date32 => "DATE".into(),
        DataType::Timestamp(..) => "TIMESTAMP".into(),
        DataType::Decimal128(p, s) => format!("DECIMAL({p},{s})"),
        DataType::Struct(fields) => {
            let inner: Vec<String> = fields
                .iter()
                .map(|f| format!("{}: {}", f.name(), ddl_type_name(f.data_type())))
                .collect();
            format!("STRUCT<{}>", inner.join(", "))
        }
        other => other.to_string(),
    }
}

/// The index of the column `name` as Spark resolves a name: the exact spelling first, else
/// the one column whose name differs only in case (none when several do).
pub fn find_column(schema: &Schema, name: &str) -> Option<usize> {
    schema.index_of(name).ok().or_else(|| {
        let mut matches = (0..schema.fields().len())
            .filter(|&i| schema.field(i).name().eq_ignore_ascii_case(name));
        match (matches.next(), matches.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        }
    })
}

/// The columns of a bad-records file: where each rejected row was, why, and the row as read.
pub fn bad_records_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("path", DataType::Utf8, false),
        Field::new("line", DataType::UInt64, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("record", DataType::Utf8, false),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parsed_type_has_its_ddl_name_back() {
        let ddl =
            "a STRING, b INT, c BIGINT, d DOUBLE, e BOOLEAN, f DATE, g TIMESTAMP, h DECIMAL(12,2)";
        let schema = parse_ddl(ddl).unwrap();
        let names: Vec<_> = schema
            .fields()
            .iter()
            .map(|f| format!("{} {}", f.name(), ddl_type_name(f.data_type())))
            .collect();
        assert_eq!(names.join(", "), ddl);
    }

    #[test]
    fn parses_the_notebook_schema() {
        let schema = parse_ddl("File STRING, Shop STRING, Sale_Count INT").unwrap();
        let types: Vec<_> = schema
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type().clone()))
            .collect();
        assert_eq!(
            types,
            vec![
                ("File", DataType::Utf8),
                ("Shop", DataType::Utf8),
                ("Sale_Count", DataType::Int32)
            ]
        );
        assert!(schema.fields().iter().all(|f| f.is_nullable()));
    }

    #[test]
    fn parses_every_type_and_options() {
        let schema = parse_ddl(
            "a string, b BIGINT NOT NULL, c double, d boolean, e DATE, f TIMESTAMP, g DECIMAL(12, 2), `h i` INTEGER",
        )
        .unwrap();
        assert_eq!(schema.field(1).data_type(), &DataType::Int64);
        assert!(!schema.field(1).is_nullable());
        assert_eq!(schema.field(6).data_type(), &DataType::Decimal128(12, 2));
        assert_eq!(schema.field(7).name(), "h i");
    }

    #[test]
    fn says_where_a_type_is_wrong() {
        let err = parse_ddl("File STRING, Sale_Count INTEGR").unwrap_err();
        assert_eq!(err.position, 25);
        assert!(err.message.contains("unknown type \"INTEGR\""), "{err}");
        assert!(err.message.contains("STRING, INT, BIGINT"), "{err}");
    }

    #[test]
    fn refuses_missing_types_duplicates_and_bad_decimals() {
        assert!(parse_ddl("a").unwrap_err().message.contains("has no type"));
        assert!(parse_ddl("a INT, a INT")
            .unwrap_err()
            .message
            .contains("defined twice"));
        assert!(parse_ddl("a DECIMAL(40,2)")
            .unwrap_err()
            .message
            .contains("precision"));
        assert!(parse_ddl("a INT,")
            .unwrap_err()
            .message
            .contains("empty column"));
    }
}
