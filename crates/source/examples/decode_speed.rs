//! Reads every CSV file of a folder with the CSV source and prints rows per second: the
//! decoder alone, for profiling (`perf record`) without the rest of the pipeline. `json`
//! in place of the separator reads JSON lines instead.
//!
//! cargo run --release -p weir-source --example decode_speed -- FOLDER "SCHEMA" [SEP|json]

use std::time::Instant;

use weir_core::{Quota, Source};
use weir_source::{CsvSourceConfig, Format};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(schema)) = (args.next(), args.next()) else {
        return Err("usage: decode_speed FOLDER SCHEMA [SEP]".into());
    };
    let sep = args.next().unwrap_or_else(|| ",".into());
    let config = match sep.as_str() {
        "json" => CsvSourceConfig {
            format: Format::Json,
            path,
            schema,
            ..CsvSourceConfig::default()
        },
        _ => CsvSourceConfig {
            path,
            schema,
            header: Some(true),
            sep: Some(sep),
            ..CsvSourceConfig::default()
        },
    };
    let settings = config.validate().map_err(|errors| format!("{errors:?}"))?;
    let mut source = settings.build();
    let start = Instant::now();
    source.discover()?;
    source.admit(Quota::All);
    let mut rows = 0;
    while let Some(batch) = source.next_batch()? {
        rows += batch.num_rows();
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{rows} rows in {seconds:.3} s: {:.1} M rows/s",
        rows as f64 / seconds / 1e6
    );
    Ok(())
}
