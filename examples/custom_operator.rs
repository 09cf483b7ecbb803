//! A custom operator type, registered by the application and used from TOML by its `type`.
//!
//! ```sh
//! cargo run --example custom_operator
//! ```
//!
//! `type = "at_least"` keeps the rows whose integer `column` is at least `min`. Its table is
//! validated like a built-in one: unknown keys, a column the input does not have, or a column
//! that is not an integer are errors that name the key. It is stateless, so it needs no
//! snapshot; a stateful operator would also implement `snapshot` and `restore`.

use std::io::Write;
use std::sync::{Arc, Mutex};

use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{BooleanArray, RecordBatch};
use arrow_schema::{DataType, SchemaRef};
use serde::Deserialize;
use weir::{ComponentConfig, ConfigError, Operator, OperatorSpec, PipelineSpec, Registry};

/// The `[operators.NAME]` table of an `at_least` operator.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AtLeastConfig {
    /// An INT column of the input.
    column: String,
    /// Rows with a smaller value (or none) are dropped.
    min: i32,
}

/// A validated `at_least` operator: the column's index is known.
struct AtLeastSpec {
    schema: SchemaRef,
    index: usize,
    config: AtLeastConfig,
}

fn validate(
    table: &ComponentConfig,
    input: &SchemaRef,
) -> Result<Box<dyn OperatorSpec>, Vec<ConfigError>> {
    table.validate(|config: AtLeastConfig| {
        let Ok(index) = input.index_of(&config.column) else {
            let columns: Vec<&str> = input.fields().iter().map(|f| f.name().as_str()).collect();
            return Err(vec![ConfigError::new(
                "column",
                format!(
                    "no column \"{}\" in the input (expected one of {})",
                    config.column,
                    columns.join(", ")
                ),
            )]);
        };
        if input.field(index).data_type() != &DataType::Int32 {
            return Err(vec![ConfigError::new(
                "column",
                format!("\"{}\" is not an INT column", config.column),
            )]);
        }
        Ok(Box::new(AtLeastSpec {
            schema: input.clone(),
            index,
            config,
        }) as Box<dyn OperatorSpec>)
    })
}

impl OperatorSpec for AtLeastSpec {
    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn is_aggregate(&self) -> bool {
        false
    }
    fn describe(&self) -> String {
        format!("{} >= {}", self.config.column, self.config.min)
    }
    fn build(&self) -> weir::Result<Box<dyn Operator>> {
        Ok(Box::new(AtLeast {
            schema: self.schema.clone(),
            index: self.index,
            min: self.config.min,
        }))
    }
}

/// The running operator.
struct AtLeast {
    schema: SchemaRef,
    index: usize,
    min: i32,
}

impl Operator for AtLeast {
    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, batch: RecordBatch) -> weir::Result<Option<RecordBatch>> {
        let values = batch.column(self.index).as_primitive::<Int32Type>();
        let keep: BooleanArray = values
            .iter()
            .map(|v| Some(v.is_some_and(|v| v >= self.min)))
            .collect();
        let kept = arrow_select::filter::filter_record_batch(&batch, &keep)
            .map_err(|e| weir::Error::arrow("at_least", e))?;
        Ok((kept.num_rows() > 0).then_some(kept))
    }
}

const PIPELINE: &str = r#"
[trigger]
once = true

[sources.sales]
type = "csv"
path = "{INPUT}"
schema = "File STRING, Shop STRING, Sale_Count INT"
header = true
sep = ";"

[operators.big]
type = "at_least"
input = "sales"
column = "Sale_Count"
min = 50

[operators.by_shop]
type = "aggregate"
input = "big"
group_by = ["Shop"]
aggregates = ["count(*) as big_sales"]

[sinks.display]
type = "console"
input = "by_shop"
output_mode = "complete"
"#;

/// Where the console sink prints, so that the example can check what it printed.
#[derive(Clone, Default)]
struct Screen(Arc<Mutex<Vec<u8>>>);

impl Write for Screen {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        std::io::stdout().write_all(bytes)?;
        if let Ok(mut text) = self.0.lock() {
            text.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut registry = Registry::default();
    registry.register_operator("at_least", validate);
    let screen = Screen::default();
    let console = screen.clone();
    registry.set_console_output(move || Box::new(console.clone()));

    let work = tempfile::tempdir()?;
    let input = work.path().join("in");
    std::fs::create_dir_all(&input)?;
    std::fs::write(
        input.join("part-0.csv"),
        "File;Shop;Sale_Count\np;a;10\np;a;60\np;b;50\np;b;99\np;c;49\n",
    )?;
    let toml = PIPELINE.replace("{INPUT}", &input.display().to_string());

    // A typo in the custom table is reported like any other, with its key.
    let typo = toml.replace("column = ", "colum = ");
    match PipelineSpec::from_toml(&typo, "typo.toml", "typo", &[], &registry) {
        Ok(_) => return Err("a typo in the custom operator's table was accepted".into()),
        Err(errors) => println!("a typo is refused:\n{errors}\n"),
    }

    let spec = PipelineSpec::from_toml(&toml, "pipeline.toml", "custom", &[], &registry)?;
    print!("{}", spec.graph_text());
    let system = actix::System::new();
    let last = system.block_on(async move { spec.start()?.wait().await })?;
    let printed = String::from_utf8_lossy(&screen.0.lock().map_err(|_| "poisoned")?).into_owned();
    let rows: Vec<String> = printed
        .lines()
        .filter(|l| l.starts_with('|') && !l.contains("Shop"))
        .map(|l| l.split('|').map(str::trim).collect::<Vec<_>>().join(" "))
        .collect();
    // a: 60; b: 50 and 99; c: none (49 < 50).
    if rows != [" a 1 ", " b 2 "] {
        return Err(format!("unexpected table rows {rows:?}").into());
    }
    println!("done at epoch {last}: a has 1 big sale, b has 2, c has none");
    Ok(())
}

#[test]
fn a_custom_operator_runs_from_toml() {
    main().unwrap();
}

#[test]
fn a_custom_operator_checks_its_column() {
    let mut registry = Registry::default();
    registry.register_operator("at_least", validate);
    let toml = PIPELINE
        .replace("{INPUT}", "in")
        .replace("\"Sale_Count\"\nmin", "\"Shop\"\nmin");
    let errors = PipelineSpec::from_toml(&toml, "p.toml", "p", &[], &registry)
        .err()
        .unwrap();
    assert!(
        errors
            .to_string()
            .contains("operators.big.column: \"Shop\" is not an INT column"),
        "{errors}"
    );
}
