//! The Kafka source and sink against a real Kafka-protocol broker (tansu, built by the set-up
//! step), started by each test on a free port; the Python `confluent-kafka` client produces
//! the input and reads the output back.
//!
//! Two tansu versions: 0.6.0 keeps its log in SQLite in the workspace, so a test can stop and
//! restart it; 0.4.9 keeps it in memory but is the last whose broker answers EndTxn, so the
//! tests of the exactly-once sink (transactions) run against it.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::common::*;
use crate::crash::{kill_until_done, Lcg};

/// A tansu broker of the test's own.
struct Broker {
    process: ServerProcess,
    dir: PathBuf,
    /// Transactions (tansu 0.4.9, in memory) rather than a log that outlives a restart.
    transactional: bool,
}

/// A tansu binary where `scripts/setup.sh` installs it (`folder` under ~/.cache/weir).
fn tansu(folder: &str) -> PathBuf {
    let home = std::env::var_os("HOME").expect("HOME is set");
    let path = PathBuf::from(home)
        .join(".cache/weir")
        .join(folder)
        .join("bin/tansu");
    assert!(
        path.is_file(),
        "{} is missing: `make setup` builds the tansu brokers the Kafka tests use",
        path.display()
    );
    path
}

impl Broker {
    /// A broker whose log outlives a restart, without transactions.
    fn start(ws: &Workspace) -> Self {
        Self::start_as(ws, false)
    }

    /// A broker with transactions, whose log is lost when it stops.
    fn transactional(ws: &Workspace) -> Self {
        Self::start_as(ws, true)
    }

    fn start_as(ws: &Workspace, transactional: bool) -> Self {
        let dir = ws.path("broker");
        std::fs::create_dir_all(&dir).unwrap();
        let mut broker = Broker {
            process: ServerProcess::new(free_port(), ws.path("broker.log")),
            dir,
            transactional,
        };
        broker.up();
        broker
    }

    fn up(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.process.port);
        let (binary, storage) = match self.transactional {
            true => (tansu("tansu-0.4"), "memory://tansu/"),
            false => (tansu("tansu"), "sqlite://tansu.db"),
        };
        let mut command = Command::new(binary);
        command
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", storage])
            .current_dir(&self.dir)
            .env("RUST_LOG", "warn");
        self.process
            .start(&mut command, "tansu (built by the set-up step)");
    }

    fn down(&mut self) {
        self.process.stop();
    }

    fn servers(&self) -> String {
        format!("127.0.0.1:{}", self.process.port)
    }

    /// Runs the independent client (`kafka_client.py`) with `args`; its standard output.
    fn client(&self, args: &[&str]) -> String {
        let servers = self.servers();
        let mut all = vec![servers.as_str()];
        all.extend_from_slice(args);
        python_client("kafka_client.py", &all)
    }

    fn create(&self, topic: &str, partitions: u32) {
        self.client(&["create", topic, &partitions.to_string()]);
    }

    /// Produces `messages` (topic, partition, value) in order.
    fn produce(&self, ws: &Workspace, messages: &[(String, u32, String)]) {
        let text: String = messages
            .iter()
            .map(|(topic, partition, value)| format!("{topic}\t{partition}\t{value}\n"))
            .collect();
        let file = ws.write("to-produce.txt", &text);
        let file = file.display().to_string();
        match self.transactional {
            // tansu 0.4.9 cannot fetch from an offset inside a record batch (a restart reads on
            // from any offset): one message per batch there.
            true => self.client(&["produce", &file, "single"]),
            false => self.client(&["produce", &file]),
        };
    }

    /// The rows a topic holds, as a consumer with `isolation` reads them.
    fn rows(&self, topic: &str, isolation: &str) -> Vec<Row> {
        let text = self.client(&["read", topic, isolation]);
        text.lines().map(parse_row).collect()
    }
}

/// One JSON object of the sink's, as a row.
fn parse_row(line: &str) -> Row {
    let value: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    (
        value["File"].as_str().unwrap_or_default().to_string(),
        value["Shop"].as_str().unwrap_or_default().to_string(),
        value["Sale_Count"].as_i64().unwrap_or_default() as i32,
    )
}

/// Messages to produce: (topic, partition, value).
type Messages = Vec<(String, u32, String)>;

/// `count` notebook rows as JSON messages over the three partitions of `sales`, in the
/// shapes the file tests use; `File` says which batch a row is from.
fn messages(batch: &str, count: usize, seed: u64) -> (Messages, Vec<Row>) {
    let mut rng = Lcg(seed);
    let mut out = Vec::new();
    let mut rows = Vec::new();
    for _ in 0..count {
        let row: Row = (
            batch.to_string(),
            format!("Shop_{:03}", rng.below(30)),
            rng.below(1001) as i32,
        );
        let value = json_line(&row, rng.below(6)).trim().to_string();
        out.push(("sales".to_string(), rng.below(3) as u32, value));
        rows.push(row);
    }
    (out, rows)
}

/// The notebook job over the topic `sales`: per-shop sums to `sums/` (CSV, complete), the raw
/// rows to `out/` (parquet), to `rows_alo` at least once and, on a transactional broker, to
/// `rows` exactly once.
fn pipeline(broker: &Broker, trigger: &str, source_extra: &str) -> String {
    pipeline_on(
        &broker.servers(),
        broker.transactional,
        trigger,
        source_extra,
    )
}

fn pipeline_on(servers: &str, exactly_once: bool, trigger: &str, source_extra: &str) -> String {
    let exactly_once = match exactly_once {
        true => format!(
            r#"
[sinks.rows]
type = "kafka"
input = "sales"
bootstrap_servers = "{servers}"
topic = "rows"
exactly_once = true
"#
        ),
        false => String::new(),
    };
    format!(
        r#"
[checkpoint]
path = "state"
interval = "50ms"

[trigger]
{trigger}

[sources.sales]
type = "kafka"
bootstrap_servers = "{servers}"
subscribe = "sales"
starting_offsets = "earliest"
schema = "File STRING, Shop STRING, Sale_Count INT"
{source_extra}{SUMS_AND_ARCHIVE}{exactly_once}
[sinks.rows_alo]
type = "kafka"
input = "sales"
bootstrap_servers = "{servers}"
topic = "rows_alo"
"#
    )
}

fn topics(broker: &Broker) {
    broker.create("sales", 3);
    broker.create("rows", 2);
    broker.create("rows_alo", 2);
}

#[test]
fn every_message_reaches_parquet_and_the_kafka_sinks_once_as_confluent_kafka_reads_them() {
    let ws = Workspace::new();
    let broker = Broker::transactional(&ws);
    topics(&broker);
    let (first, mut input) = messages("first", 3000, 1);
    broker.produce(&ws, &first);
    ws.write(
        "pipeline.toml",
        &pipeline(
            &broker,
            "available_now = true",
            "max_offsets_per_trigger = 700\n",
        ),
    );
    ws.run_ok(&["run", "pipeline.toml", "--quiet"]);
    assert_exactly_once(&ws, &input);
    assert_eq!(
        sorted(broker.rows("rows", "read_committed")),
        sorted(input.clone()),
        "the exactly-once sink"
    );
    assert_eq!(
        sorted(broker.rows("rows_alo", "read_uncommitted")),
        sorted(input.clone()),
        "the at-least-once sink"
    );

    // A second run reads only what was produced since.
    let (second, more) = messages("second", 500, 2);
    broker.produce(&ws, &second);
    ws.run_ok(&["run", "pipeline.toml", "--quiet"]);
    input.extend(more);
    assert_exactly_once(&ws, &input);
    assert_eq!(
        sorted(broker.rows("rows", "read_committed")),
        sorted(input),
        "the exactly-once sink"
    );
}

#[test]
fn the_kafka_columns_come_with_each_row() {
    let ws = Workspace::new();
    let broker = Broker::start(&ws);
    broker.create("sales", 3);
    let (produced, _) = messages("meta", 90, 5);
    broker.produce(&ws, &produced);
    ws.write(
        "pipeline.toml",
        &format!(
            r#"
[trigger]
available_now = true

[sources.sales]
type = "kafka"
bootstrap_servers = "{}"
subscribe = "sales"
starting_offsets = "earliest"
schema = "File STRING, Shop STRING, Sale_Count INT"
metadata_columns = ["topic", "partition", "offset", "timestamp"]

[sinks.archive]
type = "parquet"
input = "sales"
path = "out"
"#,
            broker.servers()
        ),
    );
    ws.run_ok(&["run", "pipeline.toml", "--quiet"]);
    // Each partition's offsets from 0, no gap, no repeat; every timestamp set.
    let lines = duckdb_lines(
        "SELECT topic, partition, count(*), min(\"offset\"), max(\"offset\"), count(DISTINCT \"offset\"), count(timestamp) FROM read_parquet('$dir/out/*.parquet') GROUP BY ALL ORDER BY partition",
        &ws.path("."),
    );
    let mut expected = Vec::new();
    for p in 0..3u32 {
        let n = produced.iter().filter(|(_, q, _)| *q == p).count();
        expected.push(format!("sales;{p};{n};0;{};{n};{n}", n - 1));
    }
    assert_eq!(lines, expected);
}

/// Good values, a value of the wrong JSON kind (partition 1, offset 1) and a broken object
/// (partition 2, offset 0).
fn produce_malformed(broker: &Broker, ws: &Workspace) {
    let good = |p: u32, shop: &str, n: i32| {
        (
            "sales".to_string(),
            p,
            format!("{{\"File\":\"m\",\"Shop\":\"{shop}\",\"Sale_Count\":{n}}}"),
        )
    };
    let messages = vec![
        good(0, "s1", 1),
        good(1, "s2", 2),
        (
            "sales".into(),
            1,
            "{\"File\":\"m\",\"Shop\":\"s2\",\"Sale_Count\":\"12\"}".into(),
        ),
        ("sales".into(), 2, "{\"File\":\"m\",\"Shop\":\"s3\"".into()),
        good(0, "s1", 10),
    ];
    broker.produce(ws, &messages);
}

#[test]
fn failfast_names_the_topic_the_partition_and_the_offset() {
    let ws = Workspace::new();
    let broker = Broker::start(&ws);
    topics(&broker);
    produce_malformed(&broker, &ws);
    ws.write(
        "pipeline.toml",
        &pipeline(&broker, "available_now = true", "mode = \"failfast\"\n"),
    );
    let out = ws.weir(&["run", "pipeline.toml", "--quiet"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("kafka topic sales partition 1, offset 1: field Sale_Count: \"12\" is a JSON string, not an INT")
            || stderr.contains("kafka topic sales partition 2, offset 0: malformed JSON"),
        "{stderr}"
    );
}

#[test]
fn permissive_and_dropmalformed_keep_the_good_values_and_name_each_bad_message() {
    let ws = Workspace::new();
    let broker = Broker::start(&ws);
    topics(&broker);
    produce_malformed(&broker, &ws);
    ws.write(
        "pipeline.toml",
        &pipeline(
            &broker,
            "available_now = true",
            "bad_records_path = \"bad\"\n",
        ),
    );
    ws.run_ok(&["run", "pipeline.toml", "--quiet"]);
    // The wrong-kind value is null (the row kept, its Shop s2 counted with nothing); the
    // broken object has no columns at all, so it is the null group's.
    let read_sums = |ws: &Workspace| {
        let sums = std::fs::read_to_string(ws.path("sums/result.csv")).unwrap();
        let mut sums: Vec<String> = sums.lines().skip(1).map(str::to_string).collect();
        sums.sort();
        sums
    };
    assert_eq!(read_sums(&ws), [",", "s1,11", "s2,2"]);
    let bad = duckdb_lines(
        "SELECT path, line, reason FROM read_csv('$dir/bad/*.csv', header = true) ORDER BY path",
        &ws.path("."),
    );
    assert_eq!(
        bad,
        [
            "kafka topic sales partition 1;1;field Sale_Count: \"12\" is a JSON string, not an INT",
            "kafka topic sales partition 2;0;malformed JSON: the line ends where ',' or '}' after a value was expected",
        ],
        "{bad:?}"
    );

    // dropmalformed: the two bad messages are left out, and the Kafka columns still line up
    // with the rows kept.
    let ws = Workspace::new();
    ws.write(
        "pipeline.toml",
        &pipeline(
            &broker,
            "available_now = true",
            "mode = \"dropmalformed\"\nmetadata_columns = [\"partition\", \"offset\"]\n",
        ),
    );
    ws.run_ok(&["run", "pipeline.toml", "--quiet"]);
    assert_eq!(read_sums(&ws), ["s1,11", "s2,2"]);
    let kept = duckdb_lines(
        "SELECT partition, \"offset\", Shop, Sale_Count FROM read_parquet('$dir/out/*.parquet') ORDER BY ALL",
        &ws.path("."),
    );
    assert_eq!(kept, ["0;0;s1;1", "0;1;s1;10", "1;0;s2;2"]);
}

#[test]
fn killed_at_random_moments_with_messages_arriving_every_output_has_every_row_once() {
    let ws = Workspace::new();
    let broker = Broker::transactional(&ws);
    topics(&broker);
    // 40 batches of 100 messages: half there at the start, two more after each kill.
    let batches: Vec<(Messages, Vec<Row>)> = (0..40)
        .map(|b| messages(&format!("b{b:02}"), 100, 100 + b))
        .collect();
    let mut produced = 0;
    let mut input = Vec::new();
    for (messages, rows) in &batches[..20] {
        broker.produce(&ws, messages);
        input.extend(rows.clone());
        produced += 1;
    }
    ws.write(
        "pipeline.toml",
        &pipeline(
            &broker,
            "available_now = true",
            "max_offsets_per_trigger = 150\n",
        ),
    );
    let committed = |ws: &Workspace| visible_files(&ws.path("out")).len();
    let mut arriving = input.clone();
    kill_until_done(&ws, (committed, 40), 10, 52, |ws| {
        for (messages, rows) in batches.iter().skip(produced).take(2) {
            broker.produce(ws, messages);
            arriving.extend(rows.clone());
        }
        produced = (produced + 2).min(40);
    });
    assert_eq!(produced, 40, "every batch produced before the last run");
    assert_exactly_once(&ws, &arriving);
    // Neither Kafka sink lost a row. The exactly-once sink is read with read_committed, but
    // tansu 0.4.9 shows the messages of aborted transactions to read_committed readers too
    // (see docs/kafka.md), so a kill inside a transaction shows its rows twice here, where
    // Kafka would hide the aborted copy: no loss is what this broker can show; the commit
    // record's part is the next test's.
    let distinct = |mut rows: Vec<Row>| {
        rows.sort();
        rows.dedup();
        rows
    };
    let wanted = distinct(arriving);
    assert_eq!(
        distinct(broker.rows("rows", "read_committed")),
        wanted,
        "the exactly-once sink"
    );
    assert_eq!(
        distinct(broker.rows("rows_alo", "read_uncommitted")),
        wanted,
        "the at-least-once sink"
    );
}

#[test]
fn an_epoch_whose_transaction_committed_before_a_crash_is_not_produced_again() {
    let ws = Workspace::new();
    let broker = Broker::transactional(&ws);
    broker.create("sales", 3);
    broker.create("rows", 2);
    let (first, input) = messages("once", 1200, 31);
    broker.produce(&ws, &first);
    // The sinks commit one after another, by name: `a_rows` (the transaction) commits, then
    // the run aborts before the parquet sink's commit, so the checkpoint still names the
    // epoch as undelivered for `a_rows` too.
    ws.write(
        "pipeline.toml",
        &format!(
            r#"
[checkpoint]
path = "state"
interval = "50ms"

[trigger]
available_now = true

[sources.sales]
type = "kafka"
bootstrap_servers = "{servers}"
subscribe = "sales"
starting_offsets = "earliest"
schema = "File STRING, Shop STRING, Sale_Count INT"
max_offsets_per_trigger = 200

[sinks.a_rows]
type = "kafka"
input = "sales"
bootstrap_servers = "{servers}"
topic = "rows"
exactly_once = true

[sinks.b_archive]
type = "parquet"
input = "sales"
path = "out"
"#,
            servers = broker.servers()
        ),
    );
    let out = ws.run_failing_at("mid-commit");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("WEIR_FAIL_AT=mid-commit"), "{stderr}");
    let out = ws.run_ok(&["run", "pipeline.toml", "--quiet", "--log-level", "info"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("was committed to rows before the restart; not producing it again"),
        "{stderr}"
    );
    assert_eq!(parquet_rows(&ws.path("out")), sorted(input.clone()));
    assert_eq!(
        sorted(broker.rows("rows", "read_committed")),
        sorted(input),
        "the exactly-once sink"
    );
}

#[test]
fn the_broker_going_away_and_coming_back_mid_run_loses_and_repeats_nothing() {
    let ws = Workspace::new();
    let mut broker = Broker::start(&ws);
    topics(&broker);
    let (first, mut input) = messages("before", 2000, 7);
    broker.produce(&ws, &first);
    ws.write(
        "pipeline.toml",
        &pipeline(&broker, "", "max_offsets_per_trigger = 200\n"),
    );
    let mut child = ws.spawn(&["run", "pipeline.toml"]);
    let total = input.len();
    assert!(
        wait_for(Duration::from_secs(60), || parquet_rows(&ws.path("out"))
            .len()
            == total),
        "the first messages were not all committed: {}",
        ws.stderr()
    );
    broker.down();
    std::thread::sleep(Duration::from_secs(3));
    broker.up();
    let (second, more) = messages("after", 1000, 8);
    broker.produce(&ws, &second);
    input.extend(more);
    let total = input.len();
    assert!(
        wait_for(Duration::from_secs(90), || parquet_rows(&ws.path("out"))
            .len()
            >= total),
        "the messages produced after the restart were not all committed: {}",
        ws.stderr()
    );
    // Give the sinks' last commit a moment, then stop.
    std::thread::sleep(Duration::from_millis(500));
    let status = signal_and_wait(&mut child, "TERM");
    assert!(status.success(), "{}", ws.stderr());
    assert_exactly_once(&ws, &input);
    // The at-least-once sink lost nothing (this broker has no transactions, so the
    // exactly-once sink's restart is the kill test's, on the transactional one).
    let mut alo = broker.rows("rows_alo", "read_uncommitted");
    alo.sort();
    alo.dedup();
    let mut wanted = input;
    wanted.sort();
    wanted.dedup();
    assert_eq!(alo, wanted, "the at-least-once sink");
    let stderr = ws.stderr();
    assert!(
        stderr.contains(&broker.servers()),
        "a log line names the broker: {stderr}"
    );
}

#[test]
fn a_broker_that_is_not_there_and_a_topic_that_does_not_exist_are_clear_errors() {
    let ws = Workspace::new();
    let servers = format!("127.0.0.1:{}", free_port());
    ws.write(
        "pipeline.toml",
        &pipeline_on(
            &servers,
            false,
            "available_now = true",
            "connect_timeout = \"1s\"\n",
        ),
    );
    let started = std::time::Instant::now();
    let out = ws.weir(&["run", "pipeline.toml", "--quiet"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&servers), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30), "{stderr}");

    let broker = Broker::start(&ws);
    broker.create("rows", 1);
    broker.create("rows_alo", 1);
    ws.write(
        "pipeline.toml",
        &pipeline(&broker, "available_now = true", ""),
    );
    let out = ws.weir(&["run", "pipeline.toml", "--quiet"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("topic \"sales\""), "{stderr}");
    assert!(stderr.contains("create it first"), "{stderr}");
}

#[test]
fn a_topic_made_while_running_that_matches_the_pattern_is_read_from_its_start() {
    let ws = Workspace::new();
    let broker = Broker::start(&ws);
    broker.create("orders-a", 2);
    let retopic = |messages: Messages, topic: &str, partitions: u32| -> Messages {
        messages
            .into_iter()
            .map(|(_, p, value)| (topic.to_string(), p % partitions, value))
            .collect()
    };
    let (first, mut input) = messages("a", 500, 21);
    broker.produce(&ws, &retopic(first, "orders-a", 2));
    let source = pipeline_on(&broker.servers(), false, "", "")
        .replace("subscribe = \"sales\"", "subscribe_pattern = \"orders-.*\"");
    // Only the parquet archive and the sums: no Kafka sink.
    let source = &source[..source.find("[sinks.rows_alo]").unwrap()];
    ws.write("pipeline.toml", source);
    let mut child = ws.spawn(&["run", "pipeline.toml", "--log-level", "info"]);
    assert!(
        wait_for(Duration::from_secs(60), || parquet_rows(&ws.path("out"))
            .len()
            == 500),
        "orders-a was not read: {}",
        ws.stderr()
    );
    broker.create("orders-b", 2);
    broker.create("other", 1);
    let (second, more) = messages("b", 300, 22);
    broker.produce(&ws, &retopic(second.clone(), "orders-b", 2));
    broker.produce(&ws, &retopic(second, "other", 1));
    input.extend(more);
    assert!(
        wait_for(Duration::from_secs(60), || parquet_rows(&ws.path("out"))
            .len()
            >= 800),
        "orders-b was not read: {}",
        ws.stderr()
    );
    std::thread::sleep(Duration::from_millis(300));
    let status = signal_and_wait(&mut child, "TERM");
    assert!(status.success(), "{}", ws.stderr());
    assert_exactly_once(&ws, &input);
    assert!(
        ws.stderr()
            .contains("reading new partition 1 of topic orders-b from offset 0"),
        "{}",
        ws.stderr()
    );
}
