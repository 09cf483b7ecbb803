//! Errors an embedding application can tell apart by their variant, not their text: a
//! checkpoint locked by another process, one written by a different pipeline, one in another
//! checkpoint format, and a stage's failure with what it failed with.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use weir::{CheckpointFailure, CheckpointStore, Error, PipelineSpec, Registry, StoreError};

fn pipeline(dir: &std::path::Path, group_by: &str) -> PipelineSpec {
    pipeline_in_mode(dir, group_by, "permissive")
}

/// The notebook's job, its CSV source in malformed-row `mode`.
fn pipeline_in_mode(dir: &std::path::Path, group_by: &str, mode: &str) -> PipelineSpec {
    let toml = format!(
        r#"
[checkpoint]
path = "{state}"

[trigger]
available_now = true

[sources.sales]
type = "csv"
path = "{input}"
schema = "File STRING, Shop STRING, Sale_Count INT"
header = true
sep = ";"
mode = "{mode}"

[operators.by_shop]
type = "aggregate"
input = "sales"
group_by = ["{group_by}"]
aggregates = ["sum(Sale_Count)"]

[sinks.sums]
type = "csv"
input = "by_shop"
path = "{output}"
output_mode = "complete"
"#,
        state = dir.join("state").display(),
        input = dir.join("in").display(),
        output = dir.join("out").display(),
    );
    PipelineSpec::from_toml(&toml, "errors.toml", "errors", &[], &Registry::default()).unwrap()
}

/// Starts `spec` and waits for the run's end, or returns why it could not start.
fn run(spec: &PipelineSpec) -> Result<(), Error> {
    actix::System::new().block_on(async {
        let handle = spec.start()?;
        handle.wait().await.map(|_| ())
    })
}

#[test]
fn a_program_can_tell_locked_from_different_from_incompatible() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    std::fs::write(dir.path().join("in/a.csv"), "File;Shop;Sale_Count\na;x;1\n").unwrap();
    run(&pipeline(dir.path(), "Shop")).unwrap();

    // Another process (here: another open store) holds the folder.
    let holder = CheckpointStore::open(&dir.path().join("state"), 3).unwrap();
    match run(&pipeline(dir.path(), "Shop")) {
        Err(Error::Checkpoint { kind, message }) => {
            assert_eq!(kind, CheckpointFailure::Locked, "{message}");
            assert!(
                message.contains("in use by another weir process"),
                "{message}"
            );
        }
        other => panic!("expected a locked checkpoint, got {other:?}"),
    }
    drop(holder);

    match run(&pipeline(dir.path(), "File")) {
        Err(Error::DifferentPipeline(message)) => {
            assert!(
                message.contains("operators.by_shop changed from"),
                "{message}"
            );
        }
        other => panic!("expected a different pipeline, got {other:?}"),
    }

    // The format check comes first: a store of another format is never read further.
    let error = CheckpointStore::open_read_only(&dir.path().join("state"))
        .map(|_| ())
        .err();
    assert!(error.is_none(), "{error:?}");
    let plan = pipeline(dir.path(), "Shop")
        .resume_plan(&CheckpointStore::open_read_only(&dir.path().join("state")).unwrap())
        .unwrap();
    assert!(plan.resumes() && plan.changes.is_empty(), "{plan:?}");
    assert!(matches!(
        StoreError::Incompatible {
            path: dir.path().into(),
            found: 2,
            supported: 1
        }
        .to_string()
        .as_str(),
        m if m.contains("a newer Weir")
    ));
}

#[test]
fn a_stage_error_names_the_stage_and_keeps_its_kind() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    std::fs::write(
        dir.path().join("in/a.csv"),
        "File;Shop;Sale_Count\na;x;12x\n",
    )
    .unwrap();
    let spec = pipeline_in_mode(dir.path(), "Shop", "failfast");
    match run(&spec) {
        Err(Error::Stage { stage, error }) => {
            assert_eq!(stage, "sources.sales");
            match *error {
                Error::Input(message) => {
                    assert!(message.contains("a.csv:2: field Sale_Count"), "{message}")
                }
                other => panic!("expected bad input inside, got {other:?}"),
            }
        }
        other => panic!("expected a stage error, got {other:?}"),
    }
}
