//! What `weir run` shows while it runs: a live view on a terminal, plain lines anywhere else,
//! and JSON records for programs.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use weir::{EpochProgress, Trigger};

/// How progress reaches the person at the terminal.
enum View {
    /// `--quiet`: nothing but errors.
    Quiet,
    /// Not a terminal (CI, a pipe, a file): one plain line per epoch, no escape codes.
    Lines,
    /// A terminal: a bar over the files to read (bounded triggers) or a status line
    /// (continuous), redrawn in place.
    Live(ProgressBar),
}

/// Turns each epoch's record into what the user asked for.
pub(crate) struct Reporter {
    view: View,
    /// `--json`: every record as a line on standard output.
    json: bool,
    /// `--progress-log FILE`: every record as a line in the file.
    log: Option<(File, String)>,
    files_done: u64,
    rows: u64,
    epochs: u64,
    checkpoint_bytes: u64,
}

impl Reporter {
    /// A reporter for a run under `trigger`. The live view is used only when standard error
    /// is a terminal and neither `quiet` nor `json` asks otherwise.
    pub(crate) fn new(
        trigger: Trigger,
        quiet: bool,
        json: bool,
        log: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let log = match log {
            Some(path) => {
                let file = File::create(path)
                    .with_context(|| format!("cannot create --progress-log {}", path.display()))?;
                Some((file, path.display().to_string()))
            }
            None => None,
        };
        let view = if quiet || json {
            View::Quiet
        } else if std::io::stderr().is_terminal() {
            View::Live(live_view(trigger))
        } else {
            View::Lines
        };
        Ok(Reporter {
            view,
            json,
            log,
            files_done: 0,
            rows: 0,
            epochs: 0,
            checkpoint_bytes: 0,
        })
    }

    /// Prints a message without tearing the live view.
    pub(crate) fn say(&self, message: &str) {
        match &self.view {
            View::Live(bar) => bar.suspend(|| eprintln!("{message}")),
            _ => eprintln!("{message}"),
        }
    }

    /// Takes the record of an epoch that has just committed.
    pub(crate) fn record(&mut self, p: &EpochProgress) {
        self.epochs += 1;
        self.rows += p.input_rows;
        self.files_done += p.admitted_files.unwrap_or(0) as u64;
        self.checkpoint_bytes += p.checkpoint_bytes.unwrap_or(0);
        let line = p.to_json();
        if self.json {
            let mut out = std::io::stdout().lock();
            // A closed pipe (`| head`) must not stop the pipeline; the run goes on.
            let _ = writeln!(out, "{line}").and_then(|()| out.flush());
        }
        if let Some((file, path)) = &mut self.log {
            if let Err(e) = writeln!(file, "{line}").and_then(|()| file.flush()) {
                eprintln!(
                    "weir: cannot write --progress-log {path}: {e}; no more records go there"
                );
                self.log = None;
            }
        }
        let pending: u64 = p.stages.iter().filter_map(|s| s.files_pending).sum();
        match &self.view {
            View::Quiet => {}
            View::Lines => eprintln!("weir: {}", status(p, pending, self.rows)),
            View::Live(bar) => {
                if p.admitted_files.is_some() {
                    bar.set_length(self.files_done + pending);
                    bar.set_position(self.files_done);
                }
                bar.set_message(short_status(p, pending, self.rows));
            }
        }
    }

    /// Ends the live view and prints the summary of the run.
    pub(crate) fn finish(&mut self, took: Duration, last_epoch: impl std::fmt::Display) {
        if let View::Live(bar) = &self.view {
            bar.finish_and_clear();
        }
        if matches!(self.view, View::Quiet) && !self.json {
            return;
        }
        let seconds = took.as_secs_f64();
        eprintln!(
            "weir: done: {} rows in {seconds:.2} s ({:.0} rows/s), {} epoch(s) committed, last epoch {last_epoch}{}",
            self.rows,
            self.rows as f64 / seconds.max(1e-9),
            self.epochs,
            if self.checkpoint_bytes > 0 {
                format!(", {} of checkpoints written", bytes(self.checkpoint_bytes))
            } else {
                String::new()
            }
        );
    }
}

fn live_view(trigger: Trigger) -> ProgressBar {
    let bounded = matches!(trigger, Trigger::Once | Trigger::AvailableNow);
    let bar = if bounded {
        ProgressBar::new(0)
    } else {
        ProgressBar::new_spinner()
    };
    bar.set_draw_target(ProgressDrawTarget::stderr());
    let template = if bounded {
        "{spinner} [{elapsed_precise}] [{bar:30}] {pos}/{len} files  {msg}"
    } else {
        "{spinner} [{elapsed_precise}] {msg}"
    };
    // The templates are fixed strings; a bad one is a programming error caught by tests.
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(if bounded {
        "listing input".to_string()
    } else {
        "waiting for the first epoch".to_string()
    });
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// One line about an epoch: the plain log line, and the live view's message.
fn status(p: &EpochProgress, pending: u64, rows_so_far: u64) -> String {
    let last = if p.last { " (final)" } else { "" };
    let files = p
        .admitted_files
        .map(|n| format!(", {n} file(s)"))
        .unwrap_or_default();
    let checkpoint = p
        .checkpoint_bytes
        .map(|b| {
            format!(
                ", checkpoint {} in {:.1} ms",
                bytes(b),
                p.durations_ms.checkpoint
            )
        })
        .unwrap_or_default();
    format!(
        "epoch {} committed{last} in {:.0} ms{files}, {} rows ({:.0} rows/s){checkpoint}; {pending} file(s) pending, {rows_so_far} rows so far{}",
        p.epoch,
        p.durations_ms.total,
        p.input_rows,
        p.processed_rows_per_second,
        bottleneck(p, "; "),
    )
}

/// `; bottleneck sinks.slow (busy 97%, sources.sales backpressured 95%)`, when one is named.
fn bottleneck(p: &EpochProgress, before: &str) -> String {
    let Some(b) = &p.bottleneck else {
        return String::new();
    };
    let upstream = b
        .upstream
        .as_ref()
        .map(|u| {
            format!(
                ", {u} backpressured {:.0}%",
                b.upstream_backpressured * 100.0
            )
        })
        .unwrap_or_default();
    format!(
        "{before}bottleneck {} (busy {:.0}%{upstream})",
        b.stage,
        b.busy * 100.0
    )
}

/// The live view's message: short enough for one terminal line beside the bar.
fn short_status(p: &EpochProgress, pending: u64, rows_so_far: u64) -> String {
    let pending = if p.admitted_files.is_none() {
        format!(" · {pending} file(s) pending")
    } else {
        String::new()
    };
    format!(
        "epoch {} · {rows_so_far} rows · {:.0} rows/s{pending}{}",
        p.epoch,
        p.processed_rows_per_second,
        bottleneck(p, " · ")
    )
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bottleneck_is_named_with_its_upstream() {
        let record: EpochProgress = EpochProgress {
            epoch: 3,
            last: false,
            trigger: "continuous",
            timestamp: "2026-12-01T00:00:00.000Z".into(),
            admitted_files: None,
            input_rows: 10,
            input_rows_per_second: 1.0,
            processed_rows_per_second: 1.0,
            durations_ms: Default::default(),
            checkpoint_bytes: None,
            event_time: None,
            bottleneck: Some(weir::Bottleneck {
                stage: "sinks.slow".into(),
                busy: 0.97,
                upstream: Some("operators.keep".into()),
                upstream_backpressured: 0.951,
            }),
            stages: Vec::new(),
        };
        assert!(status(&record, 0, 10)
            .ends_with("; bottleneck sinks.slow (busy 97%, operators.keep backpressured 95%)"));
        assert!(short_status(&record, 0, 10)
            .ends_with(" · bottleneck sinks.slow (busy 97%, operators.keep backpressured 95%)"));
        let none = EpochProgress {
            bottleneck: None,
            ..record
        };
        assert!(!status(&none, 0, 10).contains("bottleneck"));
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(2048), "2.0 KiB");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
    }
}
