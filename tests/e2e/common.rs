//! Helpers: a temporary workspace, notebook-shaped data, and independent readers of output.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// One input row: File, Shop, Sale_Count.
pub(crate) type Row = (String, String, i32);

/// A fresh folder to run `weir` in; every path in a pipeline is relative to it.
pub(crate) struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    pub(crate) fn new() -> Self {
        Workspace {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub(crate) fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub(crate) fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.path(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        path
    }

    pub(crate) fn weir(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }

    /// Runs `weir run pipeline.toml --quiet` set to abort, as `kill -9` would, the second
    /// time it reaches failure `point` (so that a checkpoint exists by then).
    pub(crate) fn run_failing_at(&self, point: &str) -> Output {
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["run", "pipeline.toml", "--quiet"])
            .current_dir(self.dir.path())
            .env("WEIR_FAIL_AT", format!("{point}:2"))
            .output()
            .unwrap()
    }

    /// Runs `weir` and asserts that it succeeded, showing its errors if not.
    pub(crate) fn run_ok(&self, args: &[&str]) -> Output {
        let out = self.weir(args);
        assert!(
            out.status.success(),
            "weir {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Starts `weir` in the background, its output going to `stdout.txt` and `stderr.txt`.
    pub(crate) fn spawn(&self, args: &[&str]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(args)
            .current_dir(self.dir.path())
            .stdout(Stdio::from(
                fs::File::create(self.path("stdout.txt")).unwrap(),
            ))
            .stderr(Stdio::from(
                fs::File::create(self.path("stderr.txt")).unwrap(),
            ))
            .spawn()
            .unwrap()
    }

    pub(crate) fn stdout(&self) -> String {
        fs::read_to_string(self.path("stdout.txt")).unwrap_or_default()
    }

    pub(crate) fn stderr(&self) -> String {
        fs::read_to_string(self.path("stderr.txt")).unwrap_or_default()
    }

    /// Writes `files` JSON lines files of notebook-shaped rows into `folder`; see
    /// [`json_files`].
    pub(crate) fn json_files(
        &self,
        folder: &str,
        first: usize,
        files: usize,
        rows: usize,
        shops: u64,
        seed: u64,
    ) -> Vec<Row> {
        json_files(&self.path(folder), first, files, rows, shops, seed)
    }

    /// Writes `files` CSV files of notebook-shaped rows into `folder`; see [`csv_files`].
    pub(crate) fn csv_files(
        &self,
        folder: &str,
        first: usize,
        files: usize,
        rows: usize,
        shops: u64,
        seed: u64,
    ) -> Vec<Row> {
        csv_files(&self.path(folder), first, files, rows, shops, seed)
    }
}

/// Writes `files` CSV files of notebook-shaped rows into `dir`, each under a hidden
/// name first and then renamed into place, as a producer should. Deterministic per seed.
pub(crate) fn csv_files(
    dir: &Path,
    first: usize,
    files: usize,
    rows: usize,
    shops: u64,
    seed: u64,
) -> Vec<Row> {
    notebook_files(dir, (first, files, rows), shops, seed, "csv")
}

/// Like [`csv_files`], as JSON lines (`sales_0000.json`): the keys in an order that changes
/// from row to row, keys the schema does not name, escapes where plain text would do, and
/// blank lines.
pub(crate) fn json_files(
    dir: &Path,
    first: usize,
    files: usize,
    rows: usize,
    shops: u64,
    seed: u64,
) -> Vec<Row> {
    notebook_files(dir, (first, files, rows), shops, seed, "json")
}

/// `files` files of `rows` rows each, numbered from `first`, in `format` (`csv` or `json`).
fn notebook_files(
    dir: &Path,
    (first, files, rows): (usize, usize, usize),
    shops: u64,
    seed: u64,
    format: &str,
) -> Vec<Row> {
    fs::create_dir_all(dir).unwrap();
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move |bound: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % bound
    };
    let mut all = Vec::new();
    for f in first..first + files {
        let name = format!("sales_{f:04}.{format}");
        let mut text = match format {
            "csv" => String::from("File;Shop;Sale_Count\n"),
            _ => String::new(),
        };
        for _ in 0..rows {
            let row = (
                name.clone(),
                format!("Shop_{:03}", next(shops)),
                next(1001) as i32,
            );
            match format {
                "csv" => text.push_str(&format!("{};{};{}\n", row.0, row.1, row.2)),
                _ => text.push_str(&json_line(&row, next(6))),
            }
            all.push(row);
        }
        let hidden = dir.join(format!(".{name}"));
        fs::write(&hidden, text).unwrap();
        fs::rename(&hidden, dir.join(&name)).unwrap();
    }
    all
}

/// `row` as one JSON line, in one of six shapes.
pub(crate) fn json_line((file, shop, count): &Row, shape: u64) -> String {
    match shape {
        0 => format!("{{\"File\":\"{file}\",\"Shop\":\"{shop}\",\"Sale_Count\":{count}}}\n"),
        1 => format!("{{\"Sale_Count\": {count}, \"Shop\": \"{shop}\", \"File\": \"{file}\"}}\n"),
        2 => format!(
            "{{\"note\": {{\"a\": [1, \"}}\"]}}, \"Shop\":\"{}\",\"File\":\"{file}\",\"Sale_Count\":{count}}}\n",
            shop.replacen('S', "\\u0053", 1)
        ),
        3 => format!("\n  {{ \"File\" : \"{file}\" , \"Sale_Count\" : {count} , \"Shop\" : \"{shop}\" }}  \r\n"),
        4 => format!(
            "{{\"Shop\":\"{}\",\"Sale_Count\":{count},\"File\":\"{file}\",\"extra\":null}}\n",
            shop.replace('_', "\\u005f")
        ),
        _ => format!("{{\"File\":\"{file}\",\"Shop\":\"x\",\"Sale_Count\":{count},\"Shop\":\"{shop}\"}}\n"),
    }
}

pub(crate) fn sums(rows: &[Row]) -> BTreeMap<String, i64> {
    let mut sums = BTreeMap::new();
    for (_, shop, count) in rows {
        *sums.entry(shop.clone()).or_insert(0) += *count as i64;
    }
    sums
}

pub(crate) fn sorted(mut rows: Vec<Row>) -> Vec<Row> {
    rows.sort();
    rows
}

/// Names of the files a reader of `dir` sees (no `_` or `.` prefix), sorted.
pub(crate) fn visible_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('_') && !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The rows of every committed parquet file in `dir`, read with the parquet crate.
pub(crate) fn parquet_rows(dir: &Path) -> Vec<Row> {
    let rows = visible_files(dir)
        .iter()
        .flat_map(|name| parquet_file_rows(&dir.join(name)))
        .collect();
    sorted(rows)
}

/// The rows of one parquet file, in file order.
pub(crate) fn parquet_file_rows(path: &Path) -> Vec<Row> {
    let mut rows = Vec::new();
    {
        let file = fs::File::open(path).unwrap();
        for batch in ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap()
        {
            let batch = batch.unwrap();
            let files = batch.column(0).as_string::<i32>();
            let shops = batch.column(1).as_string::<i32>();
            let counts = batch.column(2).as_primitive::<Int32Type>();
            for i in 0..batch.num_rows() {
                rows.push((
                    files.value(i).to_string(),
                    shops.value(i).to_string(),
                    counts.value(i),
                ));
            }
        }
    }
    rows
}

/// The rows and column types of the parquet folder `dir` as pyarrow's dataset reader sees
/// them: an independent reader, installed by `make setup`.
pub(crate) fn pyarrow_rows(dir: &Path) -> (Vec<Row>, Vec<String>) {
    let script = r#"
import sys, pyarrow.dataset as ds
table = ds.dataset(sys.argv[1], format="parquet").to_table()
print(";".join(str(f.type) for f in table.schema))
for f, s, c in zip(*(table.column(i).to_pylist() for i in range(3))):
    print(f"{f};{s};{c}")
"#;
    let out = python(script, dir);
    let (types, rows) = out.split_once('\n').unwrap_or((&out, ""));
    let types = types.split(';').map(String::from).collect();
    (parse_rows(rows), types)
}

/// `File;Shop;Sale_Count` lines as rows, sorted.
fn parse_rows(text: &str) -> Vec<Row> {
    let rows = text
        .lines()
        .map(|l| {
            let parts: Vec<&str> = l.split(';').collect();
            (
                parts[0].to_string(),
                parts[1].to_string(),
                parts[2].parse().unwrap(),
            )
        })
        .collect();
    sorted(rows)
}

/// The rows of the Hive-partitioned parquet folder `dir` (`Shop=…/part-….parquet`), read
/// back by `reader`, `"duckdb"` (`hive_partitioning = true`) or `"pyarrow"`
/// (`partitioning = "hive"`): the Shop column comes from the folder names.
pub(crate) fn hive_rows(dir: &Path, reader: &str) -> Vec<Row> {
    let script = match reader {
        "duckdb" => {
            r#"
import sys, duckdb
query = f"SELECT File, Shop, Sale_Count FROM read_parquet('{sys.argv[1]}/**/*.parquet', hive_partitioning = true)"
for f, s, c in duckdb.sql(query).fetchall():
    print(f"{f};{s};{c}")
"#
        }
        _ => {
            r#"
import sys, pyarrow.dataset as ds
table = ds.dataset(sys.argv[1], format="parquet", partitioning="hive").to_table()
for f, s, c in zip(*(table.column(n).to_pylist() for n in ["File", "Shop", "Sale_Count"])):
    print(f"{f};{s};{c}")
"#
        }
    };
    parse_rows(&python(script, dir))
}

/// Runs a Python `script` with `dir` as its argument; its standard output.
fn python(script: &str, dir: &Path) -> String {
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(dir)
        .output()
        .expect("python3 is installed by `make setup`");
    assert!(
        out.status.success(),
        "python could not read {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `query` in DuckDB with `dir` as `$dir` (text substituted); one line per row, the
/// values joined by `;`.
pub(crate) fn duckdb_lines(query: &str, dir: &Path) -> Vec<String> {
    // Rust's quoting of the query is also a Python string literal.
    let script = format!(
        "import sys, duckdb\nfor row in duckdb.sql({query:?}.replace('$dir', sys.argv[1])).fetchall():\n    print(';'.join(str(v) for v in row))\n"
    );
    python(&script, dir).lines().map(String::from).collect()
}

/// Per-shop sums of the parquet folder `dir` as DuckDB computes them from a glob: a second
/// independent reader, installed by `make setup`.
pub(crate) fn duckdb_sums(dir: &Path) -> BTreeMap<String, i64> {
    let script = r#"
import sys, duckdb
query = f"SELECT Shop, sum(Sale_Count) FROM read_parquet('{sys.argv[1]}/*.parquet') GROUP BY Shop"
for shop, total in duckdb.sql(query).fetchall():
    print(f"{shop};{total}")
"#;
    let out = python(script, dir);
    out.lines()
        .map(|l| {
            let (shop, total) = l.split_once(';').unwrap();
            (shop.to_string(), total.parse().unwrap())
        })
        .collect()
}

/// The tables the console sink printed, by epoch: each a map from the first column to the
/// second.
pub(crate) fn console_tables(stdout: &str) -> BTreeMap<u64, BTreeMap<String, i64>> {
    let mut tables = BTreeMap::new();
    let mut current: Option<u64> = None;
    let mut rows_seen = 0;
    for line in stdout.lines() {
        if let Some(epoch) = line.strip_prefix("Epoch: ") {
            current = Some(epoch.trim().parse().unwrap());
            rows_seen = 0;
            tables.insert(current.unwrap(), BTreeMap::new());
        } else if line.starts_with('|') {
            rows_seen += 1;
            if rows_seen == 1 {
                continue; // the header
            }
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            if let (Some(epoch), Ok(value)) = (current, cells[1].parse::<i64>()) {
                tables
                    .get_mut(&epoch)
                    .unwrap()
                    .insert(cells[0].to_string(), value);
            }
        }
    }
    tables
}

/// Polls `condition` until it holds or `timeout` passes.
pub(crate) fn wait_for(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    condition()
}

/// Sends `signal` (INT or TERM) to `child` and waits for it to exit.
pub(crate) fn signal_and_wait(child: &mut Child, signal: &str) -> std::process::ExitStatus {
    // A signal that comes before weir has set its handler ends it the default way: wait,
    // as a user would see a started process, until the kernel says it catches the signal.
    let number = match signal {
        "INT" => 2,
        "TERM" => 15,
        // Not caught by anyone.
        "KILL" => 0,
        other => panic!("no number for SIG{other}"),
    };
    let catches = || {
        let status = fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
            .is_some_and(|mask| mask & (1 << (number - 1)) != 0)
    };
    assert!(
        number == 0 || wait_for(Duration::from_secs(20), catches),
        "weir never set a handler for SIG{signal}"
    );
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("weir did not exit within 20 s of SIG{signal}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The notebook's pipeline over `in/`: per-shop sums to the console (complete mode) and to
/// `sums/` as CSV, raw rows to `out/` as parquet, with the given trigger table body.
pub(crate) fn notebook_pipeline(trigger: &str, max_files: usize) -> String {
    format!(
        r#"
name = "shop_sales"

[checkpoint]
interval = "100ms"

[trigger]
{trigger}

{source}{sums_and_archive}
[sinks.display]
type = "console"
input = "by_shop"
output_mode = "complete"
num_rows = 1000
"#,
        source = csv_source("sales", "in", max_files),
        sums_and_archive = SUMS_AND_ARCHIVE,
    )
}

/// A `[sources.NAME]` table reading notebook-shaped files from `path`.
pub(crate) fn csv_source(name: &str, path: &str, max_files: usize) -> String {
    format!(
        r#"
[sources.{name}]
type = "csv"
path = "{path}"
schema = "File STRING, Shop STRING, Sale_Count INT"
header = true
sep = ";"
max_files_per_trigger = {max_files}
"#
    )
}

/// A `[sources.NAME]` table reading notebook-shaped JSON lines files from `path`.
pub(crate) fn json_source(name: &str, path: &str, max_files: usize) -> String {
    format!(
        r#"
[sources.{name}]
type = "json"
path = "{path}"
schema = "File STRING, Shop STRING, Sale_Count INT"
max_files_per_trigger = {max_files}
"#
    )
}

/// The per-shop sums in `sums/result.csv`.
pub(crate) fn sums_file(ws: &Workspace) -> BTreeMap<String, i64> {
    let text = fs::read_to_string(ws.path("sums/result.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("Shop,sum(Sale_Count)"));
    lines
        .map(|l| {
            let (shop, sum) = l.split_once(',').unwrap();
            (shop.to_string(), sum.parse().unwrap())
        })
        .collect()
}

/// The notebook job with checkpoints in `state/`, a parquet archive of raw rows and a CSV
/// file of per-shop sums in complete mode. No console: it prints again after a restart.
pub(crate) fn exactly_once_pipeline(trigger: &str, max_files: usize) -> String {
    format!(
        r#"
[checkpoint]
path = "state"
interval = "50ms"

[trigger]
{trigger}
{source}{sums_and_archive}"#,
        source = csv_source("sales", "in", max_files),
        sums_and_archive = SUMS_AND_ARCHIVE,
    )
}

/// The notebook's two queries: per-shop sums to `sums/` (CSV, complete mode) and the raw
/// rows to `out/` (parquet, append).
pub(crate) const SUMS_AND_ARCHIVE: &str = r#"
[operators.by_shop]
type = "aggregate"
input = "sales"
group_by = ["Shop"]
aggregates = ["sum(Sale_Count)"]

[sinks.sums]
type = "csv"
input = "by_shop"
path = "sums"
output_mode = "complete"

[sinks.archive]
type = "parquet"
input = "sales"
path = "out"
output_mode = "append"
"#;

/// What a reader sees must be exactly the input: no row lost, none twice, no temp file.
pub(crate) fn assert_exactly_once(ws: &Workspace, input: &[Row]) {
    assert_eq!(
        parquet_rows(&ws.path("out")),
        sorted(input.to_vec()),
        "archive rows"
    );
    assert_eq!(sums_file(ws), sums(input), "per-shop sums");
    for dir in ["out", "sums"] {
        for name in visible_files(&ws.path(dir)) {
            assert!(
                name.ends_with(".parquet") || name.ends_with(".csv"),
                "{dir}/{name} is visible"
            );
        }
    }
}

/// `weir` as a user the file modes apply to: tests run as root in CI, and root ignores
/// them. The error is the reason when no such user can be had.
pub(crate) fn weir_unprivileged(ws: &Workspace, args: &[&str]) -> Result<Output, String> {
    if !is_root() {
        return Ok(ws.weir(args));
    }
    let have_setpriv = Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_setpriv {
        return Err("running as root and setpriv (util-linux) is missing".into());
    }
    Ok(Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .current_dir(ws.path(""))
        .output()
        .unwrap())
}

pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

pub(crate) fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Every folder under `dir` open to everyone, so that the unprivileged user can work there.
pub(crate) fn open_up(dir: &Path) {
    set_mode(dir, 0o777);
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            open_up(&entry.path());
        } else {
            set_mode(&entry.path(), 0o666);
        }
    }
}

/// A free loopback port: bound, then released for a server to take.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}

/// A broker process of a test's own (nats-server, tansu) on `port`, its standard error
/// appended to `log`, killed when stopped or dropped.
pub(crate) struct ServerProcess {
    child: Option<Child>,
    pub(crate) port: u16,
    log: PathBuf,
}

impl ServerProcess {
    pub(crate) fn new(port: u16, log: PathBuf) -> Self {
        ServerProcess {
            child: None,
            port,
            log,
        }
    }

    /// Spawns `command` and waits until it listens on the port; `what` names it in a
    /// failure, with where it comes from.
    pub(crate) fn start(&mut self, command: &mut Command, what: &str) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        self.child = Some(child);
        let port = self.port;
        assert!(
            wait_for(Duration::from_secs(20), || std::net::TcpStream::connect((
                "127.0.0.1",
                port
            ))
            .is_ok()),
            "{what} did not listen on {port}: {}",
            fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs an independent client script of `tests/e2e/` with `args`; its standard output.
pub(crate) fn python_client(script: &str, args: &[&str]) -> String {
    let path = format!("{}/tests/e2e/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(&path)
        .args(args)
        .output()
        .expect("python3 and the clients' packages are installed by the set-up step");
    assert!(
        out.status.success(),
        "{script} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
