//! Sinks that are slow, or stuck: a slow sink holds the source back (the number of batches
//! read but not yet written stays small and bounded, whatever the input size), and a sink
//! that never answers a barrier ends the run after `checkpoint.timeout`, named.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use arrow_array::RecordBatch;
use weir::{PipelineSpec, Registry, Result, Sink, SinkSpec};

/// Sleeps on every batch, like a sink writing to a slow disk or service; with `stuck`, it
/// never finishes an epoch.
struct SlowSink {
    delay: Duration,
    stuck: bool,
}

impl Sink for SlowSink {
    fn write(&mut self, _batch: &RecordBatch) -> Result<()> {
        std::thread::sleep(self.delay);
        Ok(())
    }

    fn pre_commit(&mut self, _epoch: weir::Epoch) -> Result<()> {
        if self.stuck {
            std::thread::sleep(Duration::from_secs(3600));
        }
        Ok(())
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SlowConfig {
    delay_ms: u64,
    #[serde(default)]
    stuck: bool,
}

impl SinkSpec for SlowConfig {
    fn describe(&self) -> String {
        format!("sleeps {} ms per batch", self.delay_ms)
    }
    fn build(&self) -> Result<Box<dyn Sink>> {
        Ok(Box::new(SlowSink {
            delay: Duration::from_millis(self.delay_ms),
            stuck: self.stuck,
        }))
    }
}

/// The built-in types and `type = "slow"`.
fn registry() -> Registry {
    let mut registry = Registry::default();
    registry.register_sink("slow", |table, _, _| {
        table.validate(|c: SlowConfig| Ok(Box::new(c) as Box<dyn SinkSpec>))
    });
    registry
}

#[test]
fn a_slow_sink_holds_the_source_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("File;Shop;Sale_Count\n");
    for i in 0..20_000 {
        text.push_str(&format!("f;Shop_{};{}\n", i % 50, i % 1000));
    }
    std::fs::write(dir.path().join("big.csv"), text).unwrap();
    let toml = format!(
        r#"
[trigger]
once = true

[sources.sales]
type = "csv"
path = "{}"
schema = "File STRING, Shop STRING, Sale_Count INT"
header = true
sep = ";"
batch_size = 100

[sinks.slow]
type = "slow"
input = "sales"
delay_ms = 5
"#,
        dir.path().display()
    );
    let spec = PipelineSpec::from_toml(&toml, "backpressure.toml", "bp", &[], &registry()).unwrap();

    let (max_lead, source_rows, sink_rows) = actix::System::new().block_on(async move {
        let handle = spec.start().unwrap();
        let metric = |name: &str| {
            handle
                .metrics()
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, m)| m.clone())
                .unwrap()
        };
        let (source, sink) = (metric("sources.sales"), metric("sinks.slow"));
        let sampler = {
            let (source, sink) = (source.clone(), sink.clone());
            actix_rt::spawn(async move {
                let mut max_lead = 0;
                loop {
                    let read = source.batches_in.load(Ordering::SeqCst);
                    let written = sink.batches_in.load(Ordering::SeqCst);
                    max_lead = max_lead.max(read.saturating_sub(written));
                    if written >= 200 {
                        return max_lead;
                    }
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
            })
        };
        handle.wait().await.unwrap();
        let max_lead = sampler.await.unwrap();
        (
            max_lead,
            source.rows_in.load(Ordering::SeqCst),
            sink.rows_in.load(Ordering::SeqCst),
        )
    });

    assert_eq!((source_rows, sink_rows), (20_000, 20_000));
    // 200 batches take the sink at least a second; an unbounded source would read them all
    // in a few milliseconds. With one batch at the sink and one parsed ahead, the lead is 2;
    // 3 allows for the sampler reading the counters between two increments.
    assert!(
        max_lead <= 3,
        "the source ran {max_lead} batches ahead of a slow sink"
    );
}

#[test]
fn a_stage_that_never_answers_a_barrier_ends_the_run_by_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.csv"), "File;Shop;Sale_Count\na;S;1\n").unwrap();
    let toml = format!(
        r#"
[checkpoint]
timeout = "300ms"

[trigger]
once = true

[sources.sales]
type = "csv"
path = "{}"
schema = "File STRING, Shop STRING, Sale_Count INT"
header = true
sep = ";"

[sinks.stuck]
type = "slow"
input = "sales"
delay_ms = 0
stuck = true
"#,
        dir.path().display()
    );
    let spec = PipelineSpec::from_toml(&toml, "stuck.toml", "stuck", &[], &registry()).unwrap();
    let started = std::time::Instant::now();
    let result = actix::System::new().block_on(async move { spec.start().unwrap().wait().await });
    let err = result.unwrap_err().to_string();
    assert_eq!(
        err,
        "checkpoint 1 timed out after 300ms (checkpoint.timeout): no answer from sinks.stuck"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// `GET /metrics` over plain HTTP/1.1: the body.
fn scrape(address: std::net::SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

/// The value of the series `name{labels}` in Prometheus text, where `labels` is the exact
/// label text between the braces.
fn series(text: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn a_slow_sink_is_named_the_bottleneck_with_its_upstream_backpressured() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("File;Shop;Sale_Count\n");
    for i in 0..40_000 {
        text.push_str(&format!("f;Shop_{};{}\n", i % 50, i % 1000));
    }
    std::fs::create_dir(dir.path().join("in")).unwrap();
    std::fs::write(dir.path().join("in/big.csv"), text).unwrap();
    // A fast sink beside the slow one: only the slow one is the bottleneck.
    let toml = format!(
        r#"
[checkpoint]
interval = "400ms"

[http]
bind = "127.0.0.1:0"

[sources.sales]
type = "csv"
path = "{input}"
schema = "File STRING, Shop STRING, Sale_Count INT"
header = true
sep = ";"
batch_size = 100

[operators.keep]
type = "filter"
input = "sales"
condition = "Sale_Count >= 0"

[sinks.slow]
type = "slow"
input = "keep"
delay_ms = 10

[sinks.archive]
type = "parquet"
input = "sales"
path = "{output}"
"#,
        input = dir.path().join("in").display(),
        output = dir.path().join("out").display(),
    );
    let spec = PipelineSpec::from_toml(&toml, "bottleneck.toml", "bp", &[], &registry()).unwrap();

    let (text, live, records) = actix::System::new().block_on(async move {
        let handle = spec.start().unwrap();
        let mut progress = handle.progress();
        let observed = handle.pipeline_metrics();
        // Long enough for a full 5 s ratio window to be mostly slow-sink time: 400 batches
        // of 10 ms each keep the sink busy for 4 s at least.
        tokio::time::sleep(Duration::from_millis(3500)).await;
        // The embedded server serves what the registry holds.
        let address = handle.http_address().expect("http.bind is set");
        let text = tokio::task::spawn_blocking(move || scrape(address))
            .await
            .unwrap();
        assert!(text.contains("weir_stage_rows_in_total"), "{text}");
        let live = observed.bottleneck();
        handle.stop();
        handle.wait().await.unwrap();
        let mut records = Vec::new();
        while let Ok(record) = progress.try_recv() {
            records.push(record);
        }
        (text, live, records)
    });

    let labels =
        |stage: &str, kind: &str| format!(r#"pipeline="bp",stage="{stage}",kind="{kind}""#);
    assert_eq!(
        series(
            &text,
            "weir_stage_bottleneck",
            &labels("sinks.slow", "sink")
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        series(
            &text,
            "weir_stage_bottleneck",
            &labels("sinks.archive", "sink")
        ),
        Some(0.0)
    );
    let busy = series(
        &text,
        "weir_stage_busy_ratio",
        &labels("sinks.slow", "sink"),
    )
    .unwrap();
    let pressured = series(
        &text,
        "weir_stage_backpressured_ratio",
        &labels("operators.keep", "operator"),
    )
    .unwrap();
    assert!(
        busy >= 0.5 && pressured >= 0.5,
        "busy {busy}, upstream backpressured {pressured}"
    );
    let live = live.expect("a bottleneck while the slow sink works");
    assert_eq!(
        (live.stage.as_str(), live.upstream.as_deref()),
        ("sinks.slow", Some("operators.keep"))
    );

    // The progress records say the same of the epochs in which the sink was slow.
    let named: Vec<_> = records
        .iter()
        .filter_map(|r| r.bottleneck.as_ref())
        .collect();
    assert!(
        !named.is_empty(),
        "no record named a bottleneck: {records:?}"
    );
    for b in &named {
        assert_eq!(b.stage, "sinks.slow", "{records:?}");
        assert_eq!(b.upstream.as_deref(), Some("operators.keep"));
        assert!(b.upstream_backpressured >= 0.5);
    }
    let keep = records
        .iter()
        .filter_map(|r| r.stages.iter().find(|s| s.name == "operators.keep"))
        .max_by_key(|s| s.rows_in)
        .unwrap();
    assert!(
        keep.backpressured_ms > keep.busy_ms,
        "the filter waited {} ms and worked {} ms",
        keep.backpressured_ms,
        keep.busy_ms
    );
}
