//! The NATS JetStream source and sink against a real `nats-server -js`, started by each test
//! on a free port; nats-py publishes the input and reads the output back, independently.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::common::*;
use crate::crash::{kill_until_done, Lcg};

/// A `nats-server -js` of the test's own, its store in the workspace.
struct NatsServer {
    process: ServerProcess,
    store: PathBuf,
}

impl NatsServer {
    fn start(ws: &Workspace) -> Self {
        let mut server = NatsServer {
            process: ServerProcess::new(free_port(), ws.path("nats-server.log")),
            store: ws.path("nats-store"),
        };
        server.up();
        server
    }

    fn up(&mut self) {
        let mut command = Command::new("nats-server");
        command
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.process.port.to_string(),
                "-sd",
            ])
            .arg(&self.store);
        self.process
            .start(&mut command, "nats-server (installed by the set-up step)");
    }

    fn down(&mut self) {
        self.process.stop();
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.process.port)
    }

    /// Runs the independent client (`nats_client.py`) with `args`; its standard output.
    fn client(&self, args: &[&str]) -> String {
        let url = self.url();
        let mut all = vec![url.as_str()];
        all.extend_from_slice(args);
        python_client("nats_client.py", &all)
    }

    /// Publishes `messages` (subject, payload) in order.
    fn publish(&self, ws: &Workspace, messages: &[(String, String)]) {
        let text: String = messages
            .iter()
            .map(|(subject, payload)| format!("{subject}\t{payload}\n"))
            .collect();
        let file = ws.write("to-publish.txt", &text);
        self.client(&["publish", &file.display().to_string()]);
    }

    /// The rows a stream holds, each message read as a notebook row.
    fn rows(&self, stream: &str) -> Vec<Row> {
        let text = self.client(&["read", stream]);
        text.lines().map(parse_row).collect()
    }
}

/// One JSON object of the sink's, as a row.
fn parse_row(line: &str) -> Row {
    let field = |name: &str| {
        let key = format!("\"{name}\":");
        let at = line
            .find(&key)
            .unwrap_or_else(|| panic!("{name} in {line}"))
            + key.len();
        let rest = &line[at..];
        let end = rest.find([',', '}']).unwrap();
        rest[..end].trim_matches('"').to_string()
    };
    (
        field("File"),
        field("Shop"),
        field("Sale_Count").parse().unwrap(),
    )
}

/// Messages to publish: (subject, payload).
type Messages = Vec<(String, String)>;

/// `count` notebook rows as messages over the subjects `sales.a`, `sales.b` and `sales.c`,
/// in the JSON shapes the file tests use; `File` says which batch of messages a row is from.
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
        let subject = ["sales.a", "sales.b", "sales.c"][rng.below(3) as usize];
        let payload = json_line(&row, rng.below(6)).trim().to_string();
        out.push((subject.to_string(), payload));
        rows.push(row);
    }
    (out, rows)
}

/// The notebook job over the stream `SALES`: per-shop sums to `sums/` (CSV, complete), the raw
/// rows to `out/` (parquet) and to the subject `out.rows` (the `nats` sink).
fn pipeline(url: &str, trigger: &str, source_extra: &str) -> String {
    format!(
        r#"
[checkpoint]
path = "state"
interval = "50ms"

[trigger]
{trigger}

[sources.sales]
type = "nats"
servers = "{url}"
stream = "SALES"
schema = "File STRING, Shop STRING, Sale_Count INT"
{source_extra}{SUMS_AND_ARCHIVE}
[sinks.rows]
type = "nats"
input = "sales"
servers = "{url}"
subject = "out.rows"
"#
    )
}

fn streams(server: &NatsServer) {
    server.client(&["create", "SALES", "sales.>"]);
    server.client(&["create", "OUT", "out.rows"]);
}

#[test]
fn every_message_reaches_parquet_and_the_nats_sink_once_as_nats_py_reads_them() {
    let ws = Workspace::new();
    let server = NatsServer::start(&ws);
    streams(&server);
    let (first, mut input) = messages("first", 3000, 1);
    server.publish(&ws, &first);
    ws.write(
        "pipeline.toml",
        &pipeline(
            &server.url(),
            "available_now = true",
            "max_messages_per_trigger = 700\n",
        ),
    );
    ws.run_ok(&["run", "pipeline.toml", "--quiet"]);
    assert_exactly_once(&ws, &input);
    assert_eq!(
        sorted(server.rows("OUT")),
        sorted(input.clone()),
        "the nats sink"
    );

    // A second run reads only what was published since.
    let (second, more) = messages("second", 500, 2);
    server.publish(&ws, &second);
    ws.run_ok(&["run", "pipeline.toml", "--quiet"]);
    input.extend(more);
    assert_exactly_once(&ws, &input);
    assert_eq!(sorted(server.rows("OUT")), sorted(input), "the nats sink");
}

#[test]
fn a_subject_filter_reads_its_subject_and_ends_the_range_across_the_others() {
    let ws = Workspace::new();
    let server = NatsServer::start(&ws);
    streams(&server);
    let (published, rows) = messages("only", 1200, 3);
    server.publish(&ws, &published);
    let wanted: Vec<Row> = (published.iter().zip(&rows))
        .filter(|((subject, _), _)| subject == "sales.b")
        .map(|(_, row)| row.clone())
        .collect();
    ws.write(
        "pipeline.toml",
        &pipeline(
            &server.url(),
            "available_now = true",
            "subject = \"sales.b\"\nmax_messages_per_trigger = 100\n",
        ),
    );
    ws.run_ok(&["run", "pipeline.toml", "--quiet"]);
    assert_exactly_once(&ws, &wanted);
}

/// Good messages, a value of the wrong JSON kind (sequence 3) and a broken object (4).
fn publish_malformed(server: &NatsServer, ws: &Workspace) {
    let good = |shop: &str, n: i32| {
        (
            "sales.a".to_string(),
            format!("{{\"File\":\"m\",\"Shop\":\"{shop}\",\"Sale_Count\":{n}}}"),
        )
    };
    let messages = vec![
        good("s1", 1),
        good("s2", 2),
        (
            "sales.a".into(),
            "{\"File\":\"m\",\"Shop\":\"s2\",\"Sale_Count\":\"12\"}".into(),
        ),
        ("sales.b".into(), "{\"File\":\"m\",\"Shop\":\"s3\"".into()),
        good("s1", 10),
    ];
    server.publish(ws, &messages);
}

#[test]
fn failfast_names_the_stream_and_the_sequence() {
    let ws = Workspace::new();
    let server = NatsServer::start(&ws);
    streams(&server);
    publish_malformed(&server, &ws);
    ws.write(
        "pipeline.toml",
        &pipeline(
            &server.url(),
            "available_now = true",
            "mode = \"failfast\"\n",
        ),
    );
    let out = ws.weir(&["run", "pipeline.toml", "--quiet"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "nats stream SALES, sequence 3: field Sale_Count: \"12\" is a JSON string, not an INT"
        ),
        "{stderr}"
    );
}

#[test]
fn permissive_keeps_the_good_values_and_writes_each_bad_message_with_its_sequence() {
    let ws = Workspace::new();
    let server = NatsServer::start(&ws);
    streams(&server);
    publish_malformed(&server, &ws);
    ws.write(
        "pipeline.toml",
        &pipeline(
            &server.url(),
            "available_now = true",
            "bad_records_path = \"bad\"\n",
        ),
    );
    ws.run_ok(&["run", "pipeline.toml", "--quiet"]);
    // The wrong-kind value is null (the row kept, its Shop s2 counted with nothing); the
    // broken object has no columns at all, so it is the null group's.
    let sums = std::fs::read_to_string(ws.path("sums/result.csv")).unwrap();
    let mut sums: Vec<&str> = sums.lines().skip(1).collect();
    sums.sort();
    assert_eq!(sums, [",", "s1,11", "s2,2"], "{sums:?}");
    let bad = duckdb_lines(
        "SELECT path, line, reason FROM read_csv('$dir/bad/*.csv', header = true) ORDER BY line",
        &ws.path("."),
    );
    assert_eq!(
        bad,
        [
            "nats stream SALES;3;field Sale_Count: \"12\" is a JSON string, not an INT",
            "nats stream SALES;4;malformed JSON: the line ends where ',' or '}' after a value was expected",
        ],
        "{bad:?}"
    );
}

#[test]
fn killed_at_random_moments_with_messages_arriving_parquet_and_the_nats_sink_have_every_row_once() {
    let ws = Workspace::new();
    let server = NatsServer::start(&ws);
    streams(&server);
    // 60 batches of 100 messages: half there at the start, two more after each kill.
    let batches: Vec<(Messages, Vec<Row>)> = (0..60)
        .map(|b| messages(&format!("b{b:02}"), 100, 100 + b))
        .collect();
    let mut published = 0;
    let mut input = Vec::new();
    for (messages, rows) in &batches[..30] {
        server.publish(&ws, messages);
        input.extend(rows.clone());
        published += 1;
    }
    ws.write(
        "pipeline.toml",
        &pipeline(
            &server.url(),
            "available_now = true",
            "max_messages_per_trigger = 100\n",
        ),
    );
    let committed = |ws: &Workspace| visible_files(&ws.path("out")).len();
    let mut arriving = input.clone();
    kill_until_done(&ws, (committed, 60), 16, 51, |ws| {
        for (messages, rows) in batches.iter().skip(published).take(2) {
            server.publish(ws, messages);
            arriving.extend(rows.clone());
        }
        published = (published + 2).min(60);
    });
    assert_eq!(published, 60, "every batch published before the last run");
    // The last run read what was there at its start: everything.
    assert_exactly_once(&ws, &arriving);
    assert_eq!(
        sorted(server.rows("OUT")),
        sorted(arriving),
        "the nats sink"
    );
}

#[test]
fn the_server_going_away_and_coming_back_mid_run_loses_and_repeats_nothing() {
    let ws = Workspace::new();
    let mut server = NatsServer::start(&ws);
    streams(&server);
    let (first, mut input) = messages("before", 2000, 7);
    server.publish(&ws, &first);
    ws.write(
        "pipeline.toml",
        &pipeline(&server.url(), "", "max_messages_per_trigger = 200\n"),
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
    server.down();
    std::thread::sleep(Duration::from_secs(2));
    server.up();
    let (second, more) = messages("after", 1000, 8);
    server.publish(&ws, &second);
    input.extend(more);
    let total = input.len();
    assert!(
        wait_for(Duration::from_secs(90), || parquet_rows(&ws.path("out"))
            .len()
            >= total),
        "the messages published after the restart were not all committed: {}",
        ws.stderr()
    );
    let status = signal_and_wait(&mut child, "TERM");
    assert!(status.success(), "{}", ws.stderr());
    assert_exactly_once(&ws, &input);
    assert_eq!(sorted(server.rows("OUT")), sorted(input), "the nats sink");
    let stderr = ws.stderr();
    assert!(stderr.contains("disconnected; reconnecting"), "{stderr}");
}

#[test]
fn a_server_that_is_not_there_and_a_stream_that_does_not_exist_are_clear_errors() {
    let ws = Workspace::new();
    let url = format!("nats://127.0.0.1:{}", free_port());
    ws.write(
        "pipeline.toml",
        &pipeline(&url, "available_now = true", "connect_timeout = \"1s\"\n"),
    );
    let started = std::time::Instant::now();
    let out = ws.weir(&["run", "pipeline.toml", "--quiet"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("cannot connect to NATS at {url}")),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(20), "{stderr}");

    let server = NatsServer::start(&ws);
    server.client(&["create", "OUT", "out.rows"]);
    ws.write(
        "pipeline.toml",
        &pipeline(&server.url(), "available_now = true", ""),
    );
    let out = ws.weir(&["run", "pipeline.toml", "--quiet"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("nats stream SALES"), "{stderr}");
    assert!(stderr.contains("create it first"), "{stderr}");
}
