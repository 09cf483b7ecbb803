//! The `weir` command: run, validate, show and graph streaming pipelines.

mod progress;
mod show;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::anyhow;
use clap::{Args, Parser, Subcommand};
use weir::{ConfigErrors, PipelineSpec, Registry};

use crate::progress::Reporter;

/// Weir: exactly-once streaming pipelines described in TOML.
#[derive(Parser)]
#[command(name = "weir", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log level for messages on standard error (error, warn, info, debug, trace). RUST_LOG
    /// overrides it.
    #[arg(long, global = true, default_value = "warn")]
    log_level: String,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline. Bounded triggers (once, available_now) exit 0 after their last epoch;
    /// SIGINT or SIGTERM finishes the current epoch, commits it and exits 0.
    Run(RunArgs),
    /// Check a pipeline file and print every error at once; nothing is started. With
    /// --checkpoint, also say whether a run of it could resume from that checkpoint, change
    /// by change.
    Validate(ValidateArgs),
    /// Print the committed output of a sink (a parquet or CSV folder or file) as a table.
    Show(ShowArgs),
    /// Print the actor graph of a pipeline: as text, as Graphviz DOT, or as SVG (drawn by
    /// Graphviz's `dot`, which must be installed).
    Graph(GraphArgs),
    /// List the complete checkpoints in a checkpoint folder (checkpoint.path): epoch, time,
    /// source positions, state per stage, pending sink files. Safe while a run uses it.
    Checkpoints(CheckpointsArgs),
}

#[derive(Args)]
struct CheckpointsArgs {
    /// The checkpoint folder (checkpoint.path of a pipeline).
    path: PathBuf,
}

#[derive(Args)]
struct PipelineArgs {
    /// The pipeline file.
    pipeline: PathBuf,
    /// Override a setting, for example --set sinks.archive.path=./out (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_override)]
    overrides: Vec<(String, String)>,
}

#[derive(Args)]
struct ValidateArgs {
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// A checkpoint folder (the checkpoint.path of the pipeline before its edits): says which
    /// edits keep its state and which would be refused, and exits 2 if any would. Read
    /// only, so safe while a run uses it.
    #[arg(long, value_name = "PATH")]
    checkpoint: Option<PathBuf>,
}

#[derive(Args)]
struct GraphArgs {
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// text (the default), dot, or svg.
    #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
    format: GraphFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum GraphFormat {
    /// Indented text: every source with the stages that read it beneath it.
    Text,
    /// Graphviz's DOT language: the graph the dashboard draws.
    Dot,
    /// SVG, drawn from the DOT by Graphviz's `dot`.
    Svg,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// Show no progress and no summary: only errors and the console sinks' tables.
    #[arg(long, short)]
    quiet: bool,
    /// Print every epoch's progress record as a line of JSON on standard output. Console
    /// sinks print to standard error instead.
    #[arg(long)]
    json: bool,
    /// Serve Prometheus metrics (/metrics), a JSON API (/api/...) and a live dashboard (/) at
    /// ADDR, such as 127.0.0.1:9180, or a port alone (9180) for loopback; port 0 takes a free
    /// port, and the address is printed. The same as --set http.bind=ADDR.
    #[arg(long, value_name = "ADDR")]
    http: Option<String>,
    /// Write every epoch's progress record as a line of JSON to FILE.
    #[arg(long, value_name = "FILE")]
    progress_log: Option<PathBuf>,
    /// If the last checkpoint is damaged, repair the store and resume from the newest
    /// checkpoint that reads whole (the same as --set checkpoint.fall_back=true).
    #[arg(long)]
    fall_back: bool,
}

#[derive(Args)]
struct ShowArgs {
    /// A folder written by a file sink, or one file in it.
    path: PathBuf,
    /// Rows to print at most.
    #[arg(long, short = 'n', default_value_t = 20)]
    num_rows: usize,
    /// Print values whole instead of cutting them to 20 characters.
    #[arg(long)]
    no_truncate: bool,
    /// Field separator of CSV files.
    #[arg(long, default_value = ",")]
    sep: char,
}

fn parse_override(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!(
            "\"{text}\" is not KEY=VALUE (for example sinks.archive.path=./out)"
        )),
    }
}

/// How a command failed: the exit code depends on who must act.
enum Failure {
    /// Bad configuration or usage: exit 2.
    Config(ConfigErrors),
    /// Anything while running: exit 1.
    Runtime(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Runtime(e)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: logs in files and CI stay plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Validate(args) => validate(&args),
        Command::Graph(args) => graph(&args),
        Command::Checkpoints(args) => show::checkpoints(&args.path).map_err(Failure::Runtime),
        Command::Show(args) => show::show(&args.path, args.num_rows, !args.no_truncate, args.sep)
            .map_err(Failure::Runtime),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config(errors)) => {
            eprintln!("{errors}");
            eprintln!("{} error(s) in {}", errors.errors.len(), errors.file);
            ExitCode::from(2)
        }
        Err(Failure::Runtime(error)) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn load(args: &PipelineArgs) -> Result<PipelineSpec, Failure> {
    load_with(args, &Registry::default())
}

fn load_with(args: &PipelineArgs, registry: &Registry) -> Result<PipelineSpec, Failure> {
    PipelineSpec::from_file(&args.pipeline, &args.overrides, registry).map_err(Failure::Config)
}

fn run(args: RunArgs) -> Result<(), Failure> {
    let mut registry = Registry::default();
    if args.json {
        // Standard output is for JSON records only.
        registry.set_console_output(|| Box::new(std::io::stderr()));
    }
    let mut pipeline = args.pipeline;
    if let Some(bind) = &args.http {
        pipeline.overrides.push(("http.bind".into(), bind.clone()));
    }
    if args.fall_back {
        pipeline
            .overrides
            .push(("checkpoint.fall_back".into(), "true".into()));
    }
    let spec = load_with(&pipeline, &registry)?;
    let started = Instant::now();
    let mut reporter = Reporter::new(
        spec.trigger,
        args.quiet,
        args.json,
        args.progress_log.as_deref(),
    )
    .map_err(Failure::Runtime)?;
    let file = pipeline.pipeline.display().to_string();
    let system = actix_rt::System::new();
    let outcome = system.block_on(async move {
        // Listen before starting, so that a signal during start-up stops the run gracefully
        // instead of killing the process.
        let mut signals = Signals::new();
        let handle = spec.start()?;
        if let Some(address) = handle.http_address() {
            // Printed whatever --quiet says: with port 0 it is the only way to find it.
            eprintln!("weir: dashboard at http://{address}/ , metrics at http://{address}/metrics");
        }
        let stopper = handle.stopper();
        let (said, mut to_say) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
        actix_rt::spawn(async move {
            signals.next().await;
            let _ = said.send("weir: stopping after the current epoch (signal again to abort)");
            stopper.stop();
            signals.next().await;
            eprintln!("weir: aborted");
            std::process::exit(130);
        });
        let mut progress = handle.progress();
        let reporting = actix_rt::spawn(async move {
            loop {
                tokio::select! {
                    record = progress.recv() => match record {
                        Ok(record) => reporter.record(&record),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    },
                    Some(message) = to_say.recv() => reporter.say(message),
                }
            }
            reporter
        });
        let result = handle.wait().await;
        // The handle's end closes the progress channel once every record is out.
        let reporter = reporting.await.ok();
        Ok::<_, weir::Error>((result?, reporter))
    });
    let (last, reporter) = match outcome {
        Ok(done) => done,
        // A checkpoint of another pipeline: the configuration must change, not the world.
        Err(weir::Error::Config(message) | weir::Error::DifferentPipeline(message)) => {
            let errors = vec![weir::ConfigError::new("", message)];
            return Err(Failure::Config(ConfigErrors { file, errors }));
        }
        Err(error) => return Err(Failure::Runtime(anyhow!(error))),
    };
    if let Some(mut reporter) = reporter {
        reporter.finish(started.elapsed(), last);
    }
    Ok(())
}

fn validate(args: &ValidateArgs) -> Result<(), Failure> {
    let spec = load(&args.pipeline)?;
    println!(
        "{}: ok\n{}",
        args.pipeline.pipeline.display(),
        spec.graph_text()
    );
    let Some(path) = &args.checkpoint else {
        return Ok(());
    };
    let store =
        weir::CheckpointStore::open_read_only(path).map_err(|e| Failure::Runtime(anyhow!(e)))?;
    let plan = spec
        .resume_plan(&store)
        .map_err(|e| Failure::Runtime(anyhow!(e)))?;
    let Some(epoch) = plan.epoch else {
        println!(
            "checkpoint {}: no complete checkpoint yet; a run starts fresh",
            path.display()
        );
        return Ok(());
    };
    let verdict = match plan.resumes() {
        true => format!("a run resumes from epoch {epoch}"),
        false => format!("a run would be refused: it cannot resume from epoch {epoch}"),
    };
    println!("checkpoint {}: {verdict}", path.display());
    for change in &plan.changes {
        let label = if change.keeps_state {
            "keeps state"
        } else {
            "refused"
        };
        println!("  {label}: {}", change.what);
    }
    println!("  (sink settings, the trigger and checkpoint settings may change freely: a checkpoint does not depend on them)");
    if plan.resumes() {
        return Ok(());
    }
    let errors = plan
        .changes
        .iter()
        .filter(|c| !c.keeps_state)
        .map(|c| {
            weir::ConfigError::new(
                "checkpoint.path",
                format!("{}; to start over, use a new checkpoint.path", c.what),
            )
        })
        .collect();
    Err(Failure::Config(ConfigErrors {
        file: args.pipeline.pipeline.display().to_string(),
        errors,
    }))
}

fn graph(args: &GraphArgs) -> Result<(), Failure> {
    let spec = load(&args.pipeline)?;
    match args.format {
        GraphFormat::Text => print!("{}", spec.graph_text()),
        GraphFormat::Dot => print!("{}", spec.graph().to_dot()),
        GraphFormat::Svg => print!("{}", svg(&spec.graph().to_dot())?),
    }
    Ok(())
}

/// The DOT text drawn as SVG by Graphviz's `dot`.
fn svg(dot: &str) -> anyhow::Result<String> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => anyhow!(
                "--format svg needs Graphviz's dot, which is not installed (Debian: apt-get install graphviz); --format dot prints the graph for another renderer"
            ),
            _ => anyhow!("cannot run Graphviz's dot: {e}"),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(dot.as_bytes())?;
    }
    let output = child.wait_with_output()?;
    if !output.status.success() {
        anyhow::bail!(
            "Graphviz's dot failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8(output.stdout)?)
}

/// SIGINT and SIGTERM, from the moment this is created.
struct Signals(Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>);

impl Signals {
    fn new() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(int), Ok(term)) => Signals(Some((int, term))),
            // Without handlers the default action (exit) applies.
            _ => Signals(None),
        }
    }

    /// The next SIGINT or SIGTERM.
    async fn next(&mut self) {
        match &mut self.0 {
            Some((int, term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            None => std::future::pending::<()>().await,
        }
    }
}
