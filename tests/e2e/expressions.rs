//! Expressions against DuckDB: the same expressions through Weir's `select`, `filter`,
//! aggregate and `sql` operators and through DuckDB, on the same generated rows, must give the
//! same rows. DuckDB reads the raw rows from a parquet archive the same pipeline writes, so
//! that both engines start from identical values and only the expressions are compared.

use std::fmt::Write as _;
use std::process::Command;

use crate::common::*;

/// Rows with nulls in every column, negatives, mixed-case and repeated strings, whitespace
/// and timestamps over a year. Deterministic per seed.
fn generated_files(ws: &Workspace, files: usize, rows: usize, seed: u64) {
    let mut state = seed;
    let mut next = move |bound: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % bound
    };
    let shops = [
        "Shop_01", "shop_02", "SHOP_03", "Shop_10", "Shop_11", "Shop_01", "",
    ];
    let notes = ["\"  padded  \"", "\"   \"", "x", "Mixed Case", "", "a-b"];
    let mut id = 0;
    for f in 0..files {
        let mut text = String::from("id,Shop,qty,price,ts,note\n");
        for _ in 0..rows {
            id += 1;
            let shop = shops[next(shops.len() as u64) as usize];
            let qty = match next(10) {
                0 => String::new(),
                _ => (next(551) as i64 - 50).to_string(),
            };
            let price = match next(10) {
                0 => String::new(),
                _ => format!("{:.2}", (next(11_000) as f64 - 1000.0) / 100.0),
            };
            let ts = match next(20) {
                0 => String::new(),
                _ => {
                    let seconds = next(365 * 86_400);
                    let day = seconds / 86_400;
                    // Day of year to month and day, 2024 being a leap year.
                    let lengths = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
                    let (mut month, mut left) = (0, day);
                    while left >= lengths[month] {
                        left -= lengths[month];
                        month += 1;
                    }
                    let rest = seconds % 86_400;
                    format!(
                        "2024-{:02}-{:02} {:02}:{:02}:{:02}",
                        month + 1,
                        left + 1,
                        rest / 3600,
                        rest / 60 % 60,
                        rest % 60
                    )
                }
            };
            let note = notes[next(notes.len() as u64) as usize];
            writeln!(text, "{id},{shop},{qty},{price},{ts},{note}").unwrap();
        }
        ws.write(&format!("in/part_{f:02}.csv"), &text);
    }
}

/// Each expression as Weir takes it (Spark's spelling, columns in any case) and, where it is
/// spelled otherwise, as DuckDB takes it.
const EXPRESSIONS: &[(&str, Option<&str>)] = &[
    ("QTY * 2", None),
    ("qty + id", None),
    ("qty - 7", None),
    ("-qty", None),
    ("qty / 4", None),
    ("qty % 7", None),
    ("price * qty", None),
    // Spark rounds the decimal value half up (77.85 to 77.9), as Weir does; DuckDB rounds
    // the binary double (77.85 is 77.8499..., to 77.8). Prices have two decimals.
    (
        "round(price, 1)",
        Some("round(CAST(price AS DECIMAL(18, 2)), 1)"),
    ),
    ("abs(qty)", None),
    ("qty > 100", None),
    ("qty >= 100 AND price < 50", None),
    ("qty > 100 OR price IS NULL", None),
    ("NOT (qty > 100)", None),
    ("qty = 0", None),
    ("qty <> 0", None),
    ("price IS NULL", None),
    ("shop IS NOT NULL", None),
    (
        "CASE WHEN qty > 400 THEN 'big' WHEN qty > 0 THEN 'small' ELSE 'none' END",
        None,
    ),
    ("CASE Shop WHEN 'Shop_01' THEN 1 ELSE 0 END", None),
    ("CAST(qty AS DOUBLE)", None),
    // Spark truncates a DOUBLE cast to INT; DuckDB rounds.
    ("CAST(price AS INT)", Some("CAST(trunc(price) AS INT)")),
    ("CAST(qty AS STRING)", Some("CAST(qty AS VARCHAR)")),
    ("coalesce(qty, -1)", None),
    ("coalesce(Shop, 'none')", None),
    ("nullif(qty, 0)", None),
    ("upper(Shop)", None),
    ("lower(Shop)", None),
    ("length(Shop)", None),
    ("substring(Shop, 1, 4)", None),
    ("concat_ws('-', Shop, note)", None),
    ("trim(note)", None),
    ("length(trim(note)) = 0", None),
    ("replace(Shop, 'Shop', 'S')", None),
    ("Shop LIKE 'Shop%'", None),
    ("Shop LIKE '%0_'", None),
    ("Shop NOT LIKE 'shop%'", None),
    ("qty IN (1, 2, 3, 100)", None),
    ("Shop IN ('Shop_01', 'SHOP_03')", None),
    ("qty BETWEEN 10 AND 20", None),
    ("qty NOT BETWEEN 10 AND 400", None),
    ("year(ts)", None),
    ("month(ts)", None),
    ("dayofmonth(ts)", Some("day(ts)")),
    ("hour(ts)", None),
    ("date_format(ts, 'yyyy-MM')", Some("strftime(ts, '%Y-%m')")),
    ("CAST(ts AS DATE)", None),
    ("greatest(qty, 0)", None),
    ("sqrt(abs(price))", None),
    ("floor(price)", None),
    ("ceil(price)", None),
    ("starts_with(Shop, 'Shop')", None),
    ("Shop = 'Shop_01' AND qty IS NULL", None),
    ("(qty > 0) = (price > 0)", None),
    (
        "if(qty > 250, qty, NULL)",
        Some("CASE WHEN qty > 250 THEN qty END"),
    ),
];

const FILTERS: &[&str] = &[
    "qty > 100",
    "Shop LIKE 'Shop_0%' AND price > 10",
    "price IS NULL OR qty < 0",
    "NOT (qty BETWEEN 0 AND 300)",
    "lower(Shop) IN ('shop_01', 'shop_02')",
    "year(ts) = 2024 AND month(ts) <= 6",
];

const AGGREGATE_KEYS: &[&str] = &["lower(Shop) AS shop"];
const AGGREGATES: &[&str] = &[
    "sum(price * qty) AS revenue",
    "count(*) AS n",
    "count(qty) AS nq",
    "avg(CAST(qty AS DOUBLE)) AS mean",
    "min(price) AS low",
    "max(upper(Shop)) AS top",
    "sum(qty) AS total",
    "min(ts) AS first_ts",
];

fn quoted_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|s| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("[{}]", quoted.join(", "))
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn parquet_sink(name: &str, input: &str, mode: &str) -> String {
    format!(
        "\n[sinks.{name}]\ntype = \"parquet\"\ninput = \"{input}\"\npath = \"{name}\"\noutput_mode = \"{mode}\"\n"
    )
}

fn pipeline() -> String {
    let mut p = String::from(
        r#"
[checkpoint]
path = "state"
interval = "100ms"

[trigger]
available_now = true

[sources.sales]
type = "csv"
path = "in"
schema = "id INT, Shop STRING, qty INT, price DOUBLE, ts TIMESTAMP, note STRING"
header = true
max_files_per_trigger = 1
"#,
    );
    p.push_str(&parquet_sink("raw", "sales", "append"));
    // Every expression in one select, keyed by id.
    let mut columns = vec!["id".to_string()];
    columns.extend(
        EXPRESSIONS
            .iter()
            .enumerate()
            .map(|(i, (e, _))| format!("{e} AS e{i}")),
    );
    let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
    write!(
        p,
        "\n[operators.exprs]\ntype = \"select\"\ninput = \"sales\"\ncolumns = {}\n",
        quoted_list(&columns)
    )
    .unwrap();
    p.push_str(&parquet_sink("exprs_out", "exprs", "append"));
    for (i, condition) in FILTERS.iter().enumerate() {
        write!(
            p,
            "\n[operators.f{i}]\ntype = \"filter\"\ninput = \"sales\"\ncondition = {}\n",
            toml_string(condition)
        )
        .unwrap();
        p.push_str(&parquet_sink(
            &format!("f{i}_out"),
            &format!("f{i}"),
            "append",
        ));
    }
    write!(
        p,
        "\n[operators.agg]\ntype = \"aggregate\"\ninput = \"sales\"\ngroup_by = {}\naggregates = {}\n",
        quoted_list(AGGREGATE_KEYS),
        quoted_list(AGGREGATES)
    )
    .unwrap();
    p.push_str(&parquet_sink("agg_out", "agg", "complete"));
    // filter -> select -> aggregate, and the same as one sql operator.
    p.push_str(
        r#"
[operators.keep]
type = "filter"
input = "sales"
condition = "qty > 0 AND Shop IS NOT NULL"

[operators.derive]
type = "select"
input = "keep"
columns = ["lower(Shop) AS shop", "price * qty AS revenue", "qty"]

[operators.by_shop]
type = "aggregate"
input = "derive"
group_by = ["shop"]
aggregates = ["sum(revenue) AS revenue", "count(*) AS n", "max(qty)"]

[operators.by_shop_sql]
type = "sql"
query = "SELECT lower(Shop) AS shop, sum(price * qty) AS revenue, count(*) AS n, max(qty) FROM sales WHERE qty > 0 AND Shop IS NOT NULL GROUP BY lower(Shop)"

[operators.rows_sql]
type = "sql"
query = "SELECT id, qty * 2 AS doubled, upper(s.Shop) AS shop FROM sales s WHERE price > 0"

[operators.rows_filter]
type = "filter"
input = "sales"
condition = "price > 0"

[operators.rows_select]
type = "select"
input = "rows_filter"
columns = ["id", "qty * 2 AS doubled", "upper(Shop) AS shop"]

[operators.having_sql]
type = "sql"
query = "SELECT Shop, sum(qty) / count(*) AS mean, count(*) FROM sales GROUP BY Shop HAVING count(*) > 300"
"#,
    );
    p.push_str(&parquet_sink("by_shop_out", "by_shop", "complete"));
    p.push_str(&parquet_sink("by_shop_sql_out", "by_shop_sql", "complete"));
    p.push_str(&parquet_sink("rows_sql_out", "rows_sql", "append"));
    p.push_str(&parquet_sink("rows_toml_out", "rows_select", "append"));
    p.push_str(&parquet_sink("having_out", "having_sql", "complete"));
    p
}

fn checks(ws: &Workspace) -> serde_json::Value {
    let at = |name: &str| ws.path(name).display().to_string();
    let mut duck_columns = vec!["id".to_string()];
    let mut labels = serde_json::Map::new();
    for (i, (weir, duck)) in EXPRESSIONS.iter().enumerate() {
        duck_columns.push(format!("{} AS e{i}", duck.unwrap_or(weir)));
        labels.insert(format!("e{i}"), serde_json::Value::from(*weir));
    }
    let mut checks = vec![serde_json::json!({
        "name": "select",
        "weir": at("exprs_out"),
        "duckdb": format!("SELECT {} FROM input", duck_columns.join(", ")),
        "key": ["id"],
        "labels": labels,
    })];
    for (i, condition) in FILTERS.iter().enumerate() {
        checks.push(serde_json::json!({
            "name": format!("filter {condition}"),
            "weir": at(&format!("f{i}_out")),
            "duckdb": format!("SELECT * FROM input WHERE {condition}"),
        }));
    }
    checks.push(serde_json::json!({
        "name": "aggregate over expressions",
        "weir": at("agg_out"),
        "duckdb": format!(
            "SELECT {}, {} FROM input GROUP BY lower(Shop)",
            AGGREGATE_KEYS.join(", "),
            AGGREGATES.join(", ")
        ),
        "key": ["shop"],
    }));
    checks.push(serde_json::json!({
        "name": "filter -> select -> aggregate",
        "weir": at("by_shop_out"),
        "duckdb": "SELECT lower(Shop) AS shop, sum(price * qty), count(*), max(qty) FROM input WHERE qty > 0 AND Shop IS NOT NULL GROUP BY lower(Shop)",
        "key": ["shop"],
    }));
    checks.push(serde_json::json!({
        "name": "sql aggregate = its TOML form",
        "weir": at("by_shop_sql_out"),
        "other": at("by_shop_out"),
        "key": ["shop"],
    }));
    checks.push(serde_json::json!({
        "name": "sql rows = their TOML form",
        "weir": at("rows_sql_out"),
        "other": at("rows_toml_out"),
        "key": ["id"],
    }));
    checks.push(serde_json::json!({
        "name": "sql rows",
        "weir": at("rows_sql_out"),
        "duckdb": "SELECT id, qty * 2, upper(Shop) FROM input WHERE price > 0",
        "key": ["id"],
    }));
    checks.push(serde_json::json!({
        "name": "sql with HAVING and a compound item",
        "weir": at("having_out"),
        "duckdb": "SELECT Shop, sum(qty) / count(*), count(*) FROM input GROUP BY Shop HAVING count(*) > 300",
    }));
    serde_json::json!({ "archive": at("raw"), "checks": checks })
}

fn compare_with_duckdb(ws: &Workspace) -> String {
    let spec = ws.write("checks.json", &checks(ws).to_string());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/differential.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(&spec)
        .output()
        .expect("python3 with duckdb is installed by `make setup`");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "Weir and DuckDB disagree:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn expressions_filters_aggregates_and_sql_agree_with_duckdb() {
    let ws = Workspace::new();
    generated_files(&ws, 4, 600, 7);
    ws.write("pipeline.toml", &pipeline());
    ws.run_ok(&["run", "pipeline.toml", "--quiet"]);
    let report = compare_with_duckdb(&ws);
    let checks = 1 + FILTERS.len() + 6;
    assert!(
        report
            .trim_end()
            .ends_with(&format!("{checks} checks agree")),
        "{report}"
    );
    assert!(EXPRESSIONS.len() >= 40);
}

#[test]
fn killed_at_random_moments_filter_select_aggregate_is_exactly_once() {
    let ws = Workspace::new();
    let files = 24;
    generated_files(&ws, files, 200, 11);
    ws.write(
        "pipeline.toml",
        &pipeline().replace("interval = \"100ms\"", "interval = \"30ms\""),
    );
    let mut rng = 17u64;
    let mut next = move |bound: u64| {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (rng >> 33) % bound
    };
    let (mut kills, mut mid_run, mut runs) = (0, 0, 0);
    loop {
        runs += 1;
        assert!(runs < 400, "no progress after {runs} runs");
        let committed = visible_files(&ws.path("raw")).len();
        let mut child = ws.spawn(&["run", "pipeline.toml", "--quiet"]);
        if kills >= 12 {
            let status = child.wait().unwrap();
            assert!(status.success(), "the last run failed: {}", ws.stderr());
            break;
        }
        if runs % 2 == 0 {
            // Any moment, start-up included.
            std::thread::sleep(std::time::Duration::from_millis(5 + next(80)));
        } else {
            // Just after the next commit, wherever the protocol then is, so that every
            // other run makes progress however loaded the machine is.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while visible_files(&ws.path("raw")).len() <= committed
                && child.try_wait().unwrap().is_none()
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            std::thread::sleep(std::time::Duration::from_millis(next(20)));
        }
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "run {runs} failed: {}", ws.stderr());
            break;
        }
        signal_and_wait(&mut child, "KILL");
        kills += 1;
        let committed = visible_files(&ws.path("raw")).len();
        if committed > 0 && committed < files {
            mid_run += 1;
        }
    }
    assert!(
        mid_run >= 3,
        "only {mid_run} of {kills} kills landed between the first and the last commit"
    );
    // Every output, raw and aggregated, equals DuckDB's answer over the raw rows, and the
    // raw rows are the input exactly once.
    compare_with_duckdb(&ws);
    let script = "import sys, duckdb\n\
        print(duckdb.sql(f\"SELECT count(*), count(DISTINCT id) FROM read_parquet('{sys.argv[1]}/*.parquet')\").fetchall()[0])";
    let raw = Command::new("python3")
        .args(["-c", script])
        .arg(ws.path("raw"))
        .output()
        .unwrap();
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&raw.stdout).trim(),
        "(4800, 4800)",
        "every input row once in the archive"
    );
}

/// The notebook's source over `in/`, with the given operators and an archive of `input`.
fn with_operators(operators: &str, input: &str) -> String {
    format!(
        r#"
[checkpoint]
path = "state"

[trigger]
available_now = true
{source}
{operators}

[sinks.archive]
type = "parquet"
input = "{input}"
path = "out"
"#,
        source = csv_source("sales", "in", 1),
    )
}

#[test]
fn validate_reports_every_expression_mistake_at_once() {
    let ws = Workspace::new();
    let operators = r#"
[operators.keep]
type = "filter"
input = "sales"
condition = "Sale_Cnt > 0"

[operators.shape]
type = "select"
input = "sales"
columns = ["Shop", "Sale_Count *", "upper(Shop) AS shop_upper"]

[operators.typed]
type = "aggregate"
input = "sales"
group_by = ["Shop"]
aggregates = ["sum(Shop || 'x')"]

[operators.joined]
type = "sql"
query = "SELECT * FROM sales JOIN other ON sales.Shop = other.Shop"

[operators.not_bool]
type = "filter"
input = "sales"
condition = "Sale_Count + 1"

[operators.mixed]
type = "select"
input = "sales"
columns = ["Shop * 2"]
"#;
    let mut text = with_operators(operators, "sales");
    for name in ["keep", "shape", "typed", "joined", "not_bool", "mixed"] {
        text.push_str(&format!(
            "\n[sinks.{name}_out]\ntype = \"csv\"\ninput = \"{name}\"\npath = \"{name}_out\"\n{}",
            if name == "typed" {
                "output_mode = \"complete\"\n"
            } else {
                ""
            }
        ));
    }
    ws.write("pipeline.toml", &text);
    let out = ws.weir(&["validate", "pipeline.toml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for expected in [
        "pipeline.toml: operators.keep.condition: unknown column \"Sale_Cnt\" in \"Sale_Cnt > 0\" (the input has File, Shop, Sale_Count; did you mean \"Sale_Count\"?)",
        "pipeline.toml: operators.shape.columns[1]: cannot parse \"Sale_Count *\" at character 13: Expected: an expression, found the end of the expression",
        "pipeline.toml: operators.typed.aggregates[0]: sum((Shop || x)) needs a numeric column, but \"(Shop || x)\" is STRING",
        "pipeline.toml: operators.joined.query: JOIN is not supported on a stream: Weir has no streaming join yet",
        "pipeline.toml: operators.not_bool.condition: the condition \"Sale_Count + 1\" is INT, not BOOLEAN",
        "pipeline.toml: operators.mixed.columns[0]: \"Shop * 2\": ",
    ] {
        assert!(err.contains(expected), "missing:\n{expected}\nin:\n{err}");
    }
    assert!(err.contains("6 error(s) in pipeline.toml"), "{err}");
    // A type error names both types.
    let mixed = err.lines().find(|l| l.contains("operators.mixed")).unwrap();
    assert!(mixed.contains("STRING") && mixed.contains("INT"), "{mixed}");
}

#[test]
fn a_failing_expression_stops_the_run_and_keeps_what_was_committed() {
    let ws = Workspace::new();
    ws.write("in/a.csv", "File;Shop;Sale_Count\na;x;1\na;y;2\n");
    ws.write("in/b.csv", "File;Shop;Sale_Count\nb;x;5\nb;y;7\n");
    let operators = r#"
[operators.ratio]
type = "select"
input = "sales"
columns = ["*", "100 / (Sale_Count - 5) AS ratio"]
"#;
    ws.write("pipeline.toml", &with_operators(operators, "ratio"));
    let out = ws.weir(&["run", "pipeline.toml", "--quiet"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("operators.ratio: cannot evaluate \"100 / (Sale_Count - 5) AS ratio\": division by zero: 100 / 0"),
        "{err}"
    );
    // The first file's epoch committed; the failing one did not.
    assert_eq!(visible_files(&ws.path("out")).len(), 1);
    // Without the bad row, the run resumes after the committed epoch and finishes.
    ws.write("in/b.csv", "File;Shop;Sale_Count\nb;x;6\nb;y;7\n");
    ws.run_ok(&["run", "pipeline.toml", "--quiet"]);
    assert_eq!(visible_files(&ws.path("out")).len(), 2);
    let out = ws.run_ok(&["show", "out"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("100.0") && table.contains("-25.0"),
        "{table}"
    );
}

#[test]
fn a_changed_expression_does_not_resume_an_old_checkpoint() {
    let ws = Workspace::new();
    ws.write("in/a.csv", "File;Shop;Sale_Count\na;x;1\n");
    let filter = |condition: &str| {
        format!(
            "[operators.keep]\ntype = \"filter\"\ninput = \"sales\"\ncondition = \"{condition}\"\n"
        )
    };
    ws.write(
        "pipeline.toml",
        &with_operators(&filter("Sale_Count > 0"), "keep"),
    );
    ws.run_ok(&["run", "pipeline.toml", "--quiet"]);
    ws.write(
        "pipeline.toml",
        &with_operators(&filter("Sale_Count > 1"), "keep"),
    );
    let out = ws.weir(&["run", "pipeline.toml", "--quiet"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("Sale_Count > 1"), "{err}");
}

#[test]
fn graph_shows_the_stages_a_query_was_planned_into() {
    let ws = Workspace::new();
    let operators = r#"
[operators.by_shop]
type = "sql"
query = "SELECT lower(Shop) AS shop, sum(Sale_Count) AS total FROM sales WHERE Sale_Count > 0 GROUP BY lower(Shop) HAVING sum(Sale_Count) > 10"
"#;
    let text = with_operators(operators, "sales")
        + "\n[sinks.totals]\ntype = \"csv\"\ninput = \"by_shop\"\npath = \"totals\"\noutput_mode = \"complete\"\n";
    ws.write("pipeline.toml", &text);
    let out = ws.run_ok(&["graph", "pipeline.toml"]);
    let graph = String::from_utf8_lossy(&out.stdout);
    assert!(
        graph.contains("filter Sale_Count > 0 -> aggregate group_by [lower(Shop) AS \"shop\"]: sum(Sale_Count) AS \"total\" -> filter \"total\" > 10"),
        "{graph}"
    );
}

#[test]
fn the_orders_example_runs_and_its_sql_report_matches_its_lines() {
    let ws = Workspace::new();
    let root = env!("CARGO_MANIFEST_DIR");
    let generated = Command::new("python3")
        .arg(format!("{root}/examples/orders/generate.py"))
        .arg(ws.path("in"))
        .args(["--files", "3", "--rows", "500"])
        .output()
        .unwrap();
    assert!(generated.status.success(), "{generated:?}");
    let at = |p: &str| ws.path(p).display().to_string();
    let sets = [
        format!("checkpoint.path={}", at("state")),
        format!("sources.orders.path={}", at("in")),
        format!("sinks.lines_out.path={}", at("lines")),
        format!("sinks.report.path={}", at("report")),
    ];
    let mut args = vec![
        "run".to_string(),
        format!("{root}/examples/orders/pipeline.toml"),
    ];
    args.push("--quiet".into());
    for set in &sets {
        args.push("--set".into());
        args.push(set.clone());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ws.run_ok(&args);
    // The sql report, computed from the raw orders, equals the same sums over the lines the
    // filter and select derived: two routes through Weir's expressions, checked by DuckDB.
    let script = "import sys, duckdb\n\
        lines = duckdb.sql(f\"SELECT lower(shop), product, round(sum(revenue), 6), count(*) FROM read_parquet('{sys.argv[1]}/*.parquet') GROUP BY ALL ORDER BY ALL\").fetchall()\n\
        report = duckdb.sql(f\"SELECT shop, product, round(revenue, 6), orders FROM read_csv('{sys.argv[2]}/result.csv') ORDER BY ALL\").fetchall()\n\
        assert lines == report, (lines[:3], report[:3])\n\
        print(len(report))";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(ws.path("lines"))
        .arg(ws.path("report"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let groups: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert_eq!(groups, 16, "4 shops after lower() times 4 products");
}
