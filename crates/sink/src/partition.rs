//! Hive-style partitions for file sinks (`partition_by = ["Shop"]`): each row goes to the
//! folder `Shop=Shop_001/` of its values, and the partition columns leave the file, as Spark
//! writes them and as DuckDB (`hive_partitioning`), pyarrow (`partitioning="hive"`) and Spark
//! read them back.

use std::collections::HashMap;
use std::fmt::Write as _;

use arrow_array::{RecordBatch, UInt32Array};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::{Schema, SchemaRef};
use weir_core::{Error, Result};

/// What a partition value of null (or an empty string) is named, as Hive and Spark name it.
pub(crate) const DEFAULT_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// The partition columns of a sink's input, and the schema of the files without them.
#[derive(Debug, Clone)]
pub(crate) struct Partitioning {
    /// Names and indices of the partition columns in the input, in `partition_by` order.
    columns: Vec<(String, usize)>,
    /// Indices of the columns the files keep.
    kept: Vec<usize>,
    file_schema: SchemaRef,
}

impl Partitioning {
    /// Partitioning of `input` by `names`, or a message naming what is wrong.
    pub(crate) fn new(input: &Schema, names: &[String]) -> std::result::Result<Self, String> {
        let mut columns = Vec::new();
        for name in names {
            let index = weir_core::find_column(input, name).ok_or_else(|| {
                let known: Vec<&str> = input.fields().iter().map(|f| f.name().as_str()).collect();
                format!(
                    "no column \"{name}\" to partition by (the input has {})",
                    known.join(", ")
                )
            })?;
            let field = input.field(index);
            if field.data_type().is_nested() {
                return Err(format!(
                    "column \"{name}\" is {}, which cannot name a folder; partition by a flat column",
                    weir_core::ddl_type_name(field.data_type())
                ));
            }
            if columns.iter().any(|(_, i)| *i == index) {
                return Err(format!("column \"{name}\" is named twice"));
            }
            columns.push((field.name().clone(), index));
        }
        if columns.len() == input.fields().len() {
            return Err("every column would be a folder, leaving the files empty: keep at least one column out of partition_by".into());
        }
        let kept: Vec<usize> = (0..input.fields().len())
            .filter(|i| !columns.iter().any(|(_, c)| c == i))
            .collect();
        let file_schema = input.project(&kept).map_err(|e| e.to_string())?;
        Ok(Partitioning {
            columns,
            kept,
            file_schema: file_schema.into(),
        })
    }

    /// The schema the files are written with.
    pub(crate) fn file_schema(&self) -> SchemaRef {
        self.file_schema.clone()
    }

    /// `batch`'s rows by partition folder (`Shop=Shop_001/Day=2024-01-05`), without the
    /// partition columns, in the order each folder first appears.
    pub(crate) fn split(&self, batch: &RecordBatch) -> Result<Vec<(String, RecordBatch)>> {
        let arrow = |e| Error::arrow("partition_by", e);
        let options = FormatOptions::default().with_null("");
        let formatters = self
            .columns
            .iter()
            .map(|(_, i)| ArrayFormatter::try_new(batch.column(*i).as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(arrow)?;
        let mut order: Vec<String> = Vec::new();
        let mut rows: HashMap<String, Vec<u32>> = HashMap::new();
        let mut folder = String::new();
        // One buffer for every value formatted: a row's folder costs no allocation.
        let mut value = String::new();
        for row in 0..batch.num_rows() {
            folder.clear();
            for ((name, _), format) in self.columns.iter().zip(&formatters) {
                if !folder.is_empty() {
                    folder.push('/');
                }
                escape_into(&mut folder, name);
                folder.push('=');
                value.clear();
                write!(value, "{}", format.value(row)).map_err(|e| {
                    Error::Internal(format!("partition_by: cannot format a value: {e}"))
                })?;
                match value.is_empty() {
                    true => folder.push_str(DEFAULT_PARTITION),
                    false => escape_into(&mut folder, &value),
                }
            }
            match rows.get_mut(folder.as_str()) {
                Some(indices) => indices.push(row as u32),
                None => {
                    order.push(folder.clone());
                    rows.insert(folder.clone(), vec![row as u32]);
                }
            }
        }
        let kept = batch.project(&self.kept).map_err(arrow)?;
        order
            .into_iter()
            .map(|folder| {
                let indices = UInt32Array::from(rows.remove(&folder).unwrap_or_default());
                let part = match indices.len() == batch.num_rows() {
                    true => kept.clone(),
                    false => {
                        arrow_select::take::take_record_batch(&kept, &indices).map_err(arrow)?
                    }
                };
                Ok((folder, part))
            })
            .collect()
    }
}

/// Appends `text` with the characters a path cannot hold, or that Hive gives a meaning, as
/// `%XX` (Hive's and Spark's `escapePathName`): `/`, `=`, `%`, `:`, quotes, wildcards,
/// control characters and a few more.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        let escaped = matches!(
            c,
            '\u{01}'
                ..='\u{1F}'
                    | '"'
                    | '#'
                    | '%'
                    | '\''
                    | '*'
                    | '/'
                    | ':'
                    | '='
                    | '?'
                    | '\\'
                    | '\u{7F}'
                    | '{'
                    | '['
                    | ']'
                    | '^'
        );
        match escaped {
            true => out.push_str(&format!("%{:02X}", c as u32)),
            false => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int32Array, StringArray};
    use arrow_schema::{DataType, Field};
    use std::sync::Arc;

    #[test]
    fn rows_go_to_their_folder_without_the_partition_columns() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("Shop", DataType::Utf8, true),
            Field::new("Day", DataType::Int32, true),
            Field::new("Sale_Count", DataType::Int32, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![
                    Some("a/b"),
                    None,
                    Some("a/b"),
                    Some("x=1"),
                ])),
                Arc::new(Int32Array::from(vec![1, 2, 1, 2])),
                Arc::new(Int32Array::from(vec![10, 20, 30, 40])),
            ],
        )
        .unwrap();
        let partitioning = Partitioning::new(&schema, &["Shop".into(), "Day".into()]).unwrap();
        assert_eq!(partitioning.file_schema().fields().len(), 1);
        let parts = partitioning.split(&batch).unwrap();
        let folders: Vec<&str> = parts.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            folders,
            [
                "Shop=a%2Fb/Day=1",
                "Shop=__HIVE_DEFAULT_PARTITION__/Day=2",
                "Shop=x%3D1/Day=2"
            ]
        );
        let counts = |b: &RecordBatch| -> Vec<i32> {
            let column = b.column(0).as_any().downcast_ref::<Int32Array>().unwrap();
            column.values().to_vec()
        };
        assert_eq!(counts(&parts[0].1), [10, 30]);
        assert_eq!(counts(&parts[2].1), [40]);
        assert!(Partitioning::new(&schema, &["Nope".into()]).is_err());
        let all = ["Shop".into(), "Day".into(), "Sale_Count".into()];
        assert!(Partitioning::new(&schema, &all).is_err());
    }
}
