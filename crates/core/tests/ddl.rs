//! Properties of the DDL schema parser: any schema written out in DDL (any spelling the
//! parser accepts, any spacing) parses back to itself; any text at all gives a schema or an
//! error whose position is inside the text and points at the culprit.

#![allow(clippy::unwrap_used)]

use arrow_schema::{DataType, TimeUnit};
use proptest::prelude::*;
use weir_core::{ddl_type_name, parse_ddl};

/// A column: its name as written (with the space after it), the name it stands for, its
/// type as written, the type it stands for, and whether it may be null.
#[derive(Debug, Clone)]
struct Column {
    written_name: String,
    name: String,
    written_type: String,
    data_type: DataType,
    nullable: bool,
}

fn data_type() -> impl Strategy<Value = (String, DataType)> {
    let timestamp = DataType::Timestamp(TimeUnit::Microsecond, Some(weir_core::UTC.into()));
    let simple = prop::sample::select(vec![
        ("STRING", DataType::Utf8),
        ("string", DataType::Utf8),
        ("INT", DataType::Int32),
        ("Integer", DataType::Int32),
        ("BIGINT", DataType::Int64),
        ("long", DataType::Int64),
        ("DOUBLE", DataType::Float64),
        ("boolean", DataType::Boolean),
        ("DATE", DataType::Date32),
        ("TimeStamp", timestamp),
        ("DECIMAL", DataType::Decimal128(10, 0)),
    ])
    .prop_map(|(text, t)| (text.to_string(), t));
    let decimal = (1u8..=38)
        .prop_flat_map(|p| (Just(p), 0..=p, " ?", " ?"))
        .prop_map(|(p, s, a, b)| {
            (
                format!("decimal({a}{p},{b}{s})"),
                DataType::Decimal128(p, s as i8),
            )
        });
    prop_oneof![3 => simple, 1 => decimal]
}

fn column() -> impl Strategy<Value = Column> {
    let plain = "[a-zA-Zäöüß_][a-zA-Z0-9äöüß_]{0,8}".prop_map(|n| (n.clone(), n));
    // Backticks allow anything but a backtick: spaces, commas, parentheses.
    let quoted = "[^`]{1,8}".prop_map(|n| (format!("`{n}`"), n));
    (
        prop_oneof![plain, quoted],
        data_type(),
        any::<bool>(),
        " {1,3}",
    )
        .prop_map(
            |((written_name, name), (written_type, data_type), nullable, gap)| {
                let not_null = if nullable { "" } else { " NOT NULL" };
                Column {
                    written_name: format!("{written_name}{gap}"),
                    name,
                    written_type: format!("{written_type}{not_null}"),
                    data_type,
                    nullable,
                }
            },
        )
}

/// Columns with distinct names (the parser refuses a name twice, which is tested apart).
fn columns() -> impl Strategy<Value = Vec<Column>> {
    prop::collection::vec(column(), 1..8).prop_map(|mut columns| {
        let mut seen = std::collections::HashSet::new();
        columns.retain(|c| seen.insert(c.name.clone()));
        columns
    })
}

fn render(columns: &[Column], separator: &str) -> String {
    let parts: Vec<String> = columns
        .iter()
        .map(|c| format!("{}{}", c.written_name, c.written_type))
        .collect();
    parts.join(separator)
}

proptest! {
    #[test]
    fn any_schema_written_as_ddl_parses_back(columns in columns(), separator in " ?, ?") {
        let ddl = render(&columns, &separator);
        let schema = parse_ddl(&ddl).map_err(|e| TestCaseError::fail(format!("{ddl}: {e}")))?;
        prop_assert_eq!(schema.fields().len(), columns.len());
        for (field, column) in schema.fields().iter().zip(&columns) {
            prop_assert_eq!(field.name(), &column.name);
            prop_assert_eq!(field.data_type(), &column.data_type);
            prop_assert_eq!(field.is_nullable(), column.nullable);
        }
        // And the names the parser gives types back are DDL it reads again.
        let again: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| format!("`{}` {}", f.name(), ddl_type_name(f.data_type())))
            .collect();
        let reparsed = parse_ddl(&again.join(", ")).unwrap();
        for (a, b) in reparsed.fields().iter().zip(schema.fields()) {
            prop_assert_eq!(a.data_type(), b.data_type());
        }
    }

    #[test]
    fn a_wrong_type_is_pointed_at_by_character(
        columns in columns(),
        bad in prop::sample::select(vec!["INTEGR", "VARCHAR(3)", "DECIMAL(0,0)", "DECIMAL(5,9)", "ärger"]),
        at in any::<prop::sample::Index>(),
    ) {
        let mut columns = columns;
        let k = at.index(columns.len());
        columns[k].written_type = bad.to_string();
        let ddl = render(&columns, ", ");
        let err = parse_ddl(&ddl).unwrap_err();
        let pointed: String = ddl.chars().skip(err.position - 1).collect();
        prop_assert!(pointed.starts_with(bad), "{} at {}: {:?}", ddl, err.position, pointed);
    }

    #[test]
    fn any_text_gives_a_schema_or_an_error_inside_it(text in any::<String>()) {
        if let Err(err) = parse_ddl(&text) {
            prop_assert!(err.position >= 1);
            prop_assert!(err.position <= text.chars().count() + 1, "{} for {:?}", err.position, text);
            prop_assert!(!err.message.is_empty());
        }
    }
}
