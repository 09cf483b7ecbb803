use std::collections::BTreeMap;
use std::io::Write;

use arrow_array::RecordBatch;
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use serde::Deserialize;
use weir_core::{Epoch, Error, Result, Sink};

/// The `type = "console"` sink as written in the pipeline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSinkConfig {
    /// Rows shown per epoch at most. Default 20, as in Spark.
    #[serde(default = "default_num_rows")]
    pub num_rows: usize,
    /// Cut values longer than 20 characters to 17 and `...`. Default `true`, as in Spark.
    #[serde(default = "default_truncate")]
    pub truncate: bool,
}

fn default_num_rows() -> usize {
    20
}
fn default_truncate() -> bool {
    true
}

impl Default for ConsoleSinkConfig {
    fn default() -> Self {
        ConsoleSinkConfig {
            num_rows: default_num_rows(),
            truncate: default_truncate(),
        }
    }
}

impl ConsoleSinkConfig {
    /// A console sink that prints to `out` (standard output, in `weir run`).
    pub fn build(&self, out: Box<dyn Write + Send>) -> ConsoleSink {
        ConsoleSink {
            config: self.clone(),
            out,
            current: Vec::new(),
            pending: BTreeMap::new(),
        }
    }
}

/// Prints each committed epoch's rows as a table headed with the epoch number.
pub struct ConsoleSink {
    config: ConsoleSinkConfig,
    out: Box<dyn Write + Send>,
    current: Vec<RecordBatch>,
    /// Epochs whose barrier has passed, printed once they commit.
    pending: BTreeMap<Epoch, Vec<RecordBatch>>,
}

impl Sink for ConsoleSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() > 0 {
            self.current.push(batch.clone());
        }
        Ok(())
    }

    fn pre_commit(&mut self, epoch: Epoch) -> Result<()> {
        let batches = std::mem::take(&mut self.current);
        if !batches.is_empty() {
            self.pending.insert(epoch, batches);
        }
        Ok(())
    }

    fn commit(&mut self, epoch: Epoch) -> Result<()> {
        let later = self.pending.split_off(&epoch.next());
        let ready = std::mem::replace(&mut self.pending, later);
        for (epoch, batches) in ready {
            let table = format_table(&batches, self.config.num_rows, self.config.truncate)
                .map_err(|e| Error::arrow("console sink", e))?;
            let rule = "-------------------------------------------";
            let text = format!("{rule}\nEpoch: {epoch}\n{rule}\n{table}\n");
            self.out
                .write_all(text.as_bytes())
                .and_then(|()| self.out.flush())
                .map_err(|e| Error::io("cannot print to", "standard output", e))?;
        }
        Ok(())
    }
}

/// Renders batches as a Spark-style table: `+---+` rules, a header row, at most `num_rows`
/// rows (then "only showing top N rows"), values cut to 20 characters when `truncate` is set.
pub fn format_table(
    batches: &[RecordBatch],
    num_rows: usize,
    truncate: bool,
) -> Result<String, arrow_schema::ArrowError> {
    let Some(first) = batches.first() else {
        return Ok("(no rows)\n".into());
    };
    let schema = first.schema();
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    let mut cells: Vec<Vec<String>> =
        vec![schema.fields().iter().map(|f| f.name().clone()).collect()];
    let options = FormatOptions::default().with_null("null");
    'outer: for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            if cells.len() > num_rows {
                break 'outer;
            }
            cells.push(
                formatters
                    .iter()
                    .map(|f| cut(f.value(row).to_string(), truncate))
                    .collect(),
            );
        }
    }
    let widths: Vec<usize> = (0..schema.fields().len())
        .map(|c| {
            cells
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let rule: String = widths.iter().fold("+".to_string(), |mut s, w| {
        s.push_str(&"-".repeat(*w));
        s.push('+');
        s
    });
    let mut out = String::new();
    for (i, row) in cells.iter().enumerate() {
        if i <= 1 {
            out.push_str(&rule);
            out.push('\n');
        }
        out.push('|');
        for (value, width) in row.iter().zip(&widths) {
            // Spark pads on the left when it truncates, on the right when it does not.
            let pad = " ".repeat(width - value.chars().count());
            if truncate {
                out.push_str(&pad);
                out.push_str(value);
            } else {
                out.push_str(value);
                out.push_str(&pad);
            }
            out.push('|');
        }
        out.push('\n');
    }
    out.push_str(&rule);
    out.push('\n');
    if total > num_rows {
        out.push_str(&format!("only showing top {num_rows} rows\n"));
    }
    Ok(out)
}

fn cut(value: String, truncate: bool) -> String {
    if truncate && value.chars().count() > 20 {
        let head: String = value.chars().take(17).collect();
        format!("{head}...")
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn batch(shops: &[&str], sums: &[i64]) -> RecordBatch {
        RecordBatch::try_from_iter(vec![
            ("Shop", Arc::new(StringArray::from(shops.to_vec())) as _),
            (
                "sum(Sale_Count)",
                Arc::new(Int64Array::from(sums.to_vec())) as _,
            ),
        ])
        .unwrap()
    }

    #[test]
    fn prints_a_table_per_committed_epoch() {
        let out = Shared::default();
        let mut sink = ConsoleSinkConfig {
            num_rows: 2,
            truncate: true,
        }
        .build(Box::new(out.clone()));
        sink.write(&batch(
            &["a_very_long_shop_name_indeed", "b", "c"],
            &[1, 2, 3],
        ))
        .unwrap();
        sink.pre_commit(Epoch(1)).unwrap();
        assert!(
            out.0.lock().unwrap().is_empty(),
            "nothing is shown before the commit"
        );
        sink.commit(Epoch(1)).unwrap();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "-------------------------------------------\nEpoch: 1\n-------------------------------------------\n\
             +--------------------+---------------+\n\
             |                Shop|sum(Sale_Count)|\n\
             +--------------------+---------------+\n\
             |a_very_long_shop_...|              1|\n\
             |                   b|              2|\n\
             +--------------------+---------------+\n\
             only showing top 2 rows\n\n"
        );
    }
}
