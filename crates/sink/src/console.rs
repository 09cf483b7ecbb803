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
            current: Table::new(self.num_rows, self.truncate),
            config: self.clone(),
            out,
            pending: BTreeMap::new(),
        }
    }
}

/// Prints each committed epoch's rows as a table headed with the epoch number. It keeps
/// only what it prints: the first `num_rows` rows of an epoch, as text, and a count of the
/// rest, whatever the epoch's size.
pub struct ConsoleSink {
    config: ConsoleSinkConfig,
    out: Box<dyn Write + Send>,
    current: Table,
    /// Epochs whose barrier has passed, rendered, printed once they commit.
    pending: BTreeMap<Epoch, String>,
}

impl Sink for ConsoleSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.current
            .push(batch)
            .map_err(|e| Error::arrow("console sink", e))
    }

    fn pre_commit(&mut self, epoch: Epoch) -> Result<()> {
        let fresh = Table::new(self.config.num_rows, self.config.truncate);
        let table = std::mem::replace(&mut self.current, fresh);
        if table.total > 0 {
            self.pending.insert(epoch, table.render());
        }
        Ok(())
    }

    fn commit(&mut self, epoch: Epoch) -> Result<()> {
        let later = self.pending.split_off(&epoch.next());
        let ready = std::mem::replace(&mut self.pending, later);
        for (epoch, table) in ready {
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

/// A Spark-style table being filled batch by batch: the header and the first `num_rows`
/// rows as text, and the number of rows seen. Holds no batch, so its size does not follow
/// the input's.
#[derive(Debug, Clone)]
pub struct Table {
    num_rows: usize,
    truncate: bool,
    /// The header, then up to `num_rows` rows; empty before the first batch.
    cells: Vec<Vec<String>>,
    /// Rows seen, shown or not.
    total: usize,
}

impl Table {
    /// An empty table that shows at most `num_rows` rows, values cut to 20 characters
    /// when `truncate` is set.
    pub fn new(num_rows: usize, truncate: bool) -> Self {
        Table {
            num_rows,
            truncate,
            cells: Vec::new(),
            total: 0,
        }
    }

    /// Rows seen so far.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Whether every row the table shows is in: more rows only add to the count.
    pub fn is_full(&self) -> bool {
        self.cells.len() > self.num_rows
    }

    /// Counts `rows` more rows without showing them (known from file metadata, say).
    pub fn count(&mut self, rows: usize) {
        self.total += rows;
    }

    /// Adds a batch: its rows are counted, and formatted while the table has room.
    pub fn push(&mut self, batch: &RecordBatch) -> Result<(), arrow_schema::ArrowError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let schema = batch.schema();
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        match self.cells.first() {
            None => self.cells.push(names),
            Some(header) if *header != names => {
                return Err(arrow_schema::ArrowError::SchemaError(format!(
                    "columns {names:?} differ from the table's {header:?}"
                )))
            }
            Some(_) => {}
        }
        self.total += batch.num_rows();
        let room = (self.num_rows + 1).saturating_sub(self.cells.len());
        if room == 0 {
            return Ok(());
        }
        let options = FormatOptions::default().with_null("null");
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows().min(room) {
            self.cells.push(
                formatters
                    .iter()
                    .map(|f| cut(f.value(row).to_string(), self.truncate))
                    .collect(),
            );
        }
        Ok(())
    }

    /// The table as text: `+---+` rules, the header, the rows, then "only showing top N
    /// rows" when there were more; `(no rows)` when there were none.
    pub fn render(&self) -> String {
        let Some(header) = self.cells.first() else {
            return "(no rows)\n".into();
        };
        let widths: Vec<usize> = (0..header.len())
            .map(|c| {
                self.cells
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
        for (i, row) in self.cells.iter().enumerate() {
            if i <= 1 {
                out.push_str(&rule);
                out.push('\n');
            }
            out.push('|');
            for (value, width) in row.iter().zip(&widths) {
                // Spark pads on the left when it truncates, on the right when it does not.
                let pad = " ".repeat(width - value.chars().count());
                if self.truncate {
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
        if self.total > self.num_rows {
            out.push_str(&format!("only showing top {} rows\n", self.num_rows));
        }
        out
    }
}

/// Renders batches as a Spark-style table: `+---+` rules, a header row, at most `num_rows`
/// rows (then "only showing top N rows"), values cut to 20 characters when `truncate` is set.
pub fn format_table(
    batches: &[RecordBatch],
    num_rows: usize,
    truncate: bool,
) -> Result<String, arrow_schema::ArrowError> {
    let mut table = Table::new(num_rows, truncate);
    for batch in batches {
        table.push(batch)?;
    }
    Ok(table.render())
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
    fn a_table_keeps_only_the_rows_it_shows_and_counts_the_rest() {
        let mut table = Table::new(3, true);
        for _ in 0..1000 {
            table.push(&batch(&["a", "b"], &[1, 2])).unwrap();
        }
        assert_eq!(table.total(), 2000);
        // The header and three rows, whatever came after.
        assert_eq!(table.cells.len(), 4);
        let text = table.render();
        assert!(text.ends_with("only showing top 3 rows\n"), "{text}");
        assert_eq!(text.lines().filter(|l| l.starts_with('|')).count(), 4);
        assert_eq!(Table::new(3, true).render(), "(no rows)\n");
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
