//! Configuration errors: all at once, each naming the file, the key and what was expected.

use crate::common::*;

fn validate(ws: &Workspace, text: &str, extra: &[&str]) -> (Option<i32>, String, String) {
    ws.write("pipeline.toml", text);
    let mut args = vec!["validate", "pipeline.toml"];
    args.extend_from_slice(extra);
    let out = ws.weir(&args);
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

const GOOD: &str = r#"
[sources.sales]
type = "csv"
path = "in"
schema = "File STRING, Shop STRING, Sale_Count INT"

[sinks.archive]
type = "parquet"
input = "sales"
path = "out"
"#;

#[test]
fn every_error_is_reported_at_once_with_its_key() {
    let ws = Workspace::new();
    let text = r#"
colour = "blue"

[checkpoint]
interval = "ten seconds"

[trigger]
processing_time = "0s"

[sources.sales]
type = "csv"
path = "in"
schema = "File STRING, Shop STRING, Sale_Count INTEGR"
sepp = ";"

[sources.events]
type = "kinesis"

[sinks.archive]
type = "parquet"
input = "salez"
path = "out"
"#;
    let (code, _, err) = validate(&ws, text, &[]);
    assert_eq!(code, Some(2));
    for expected in [
        "pipeline.toml: colour: unknown key (expected one of \"name\", \"checkpoint\", \"trigger\", \"http\", \"sources\", \"operators\", \"sinks\")",
        "pipeline.toml: checkpoint.interval: \"ten seconds\" is not a duration: expected number at 0 (expected a positive duration such as \"500ms\", \"10s\", \"2m\" or \"1h\")",
        "pipeline.toml: trigger.processing_time: \"0s\" is zero",
        "pipeline.toml: sources.sales.sepp: unknown key \"sepp\", expected one of \"path\", \"schema\", \"header\", \"sep\"",
        "pipeline.toml: sources.sales.schema: \"File STRING, Shop STRING, Sale_Count INTEGR\" at character 38: unknown type \"INTEGR\" (expected one of STRING, INT, BIGINT, DOUBLE, BOOLEAN, DATE, TIMESTAMP, DECIMAL(p,s))",
        "pipeline.toml: sources.events.type: unknown type \"kinesis\" (expected one of \"csv\", \"json\", \"kafka\", \"nats\")",
        "pipeline.toml: sinks.archive.input: \"salez\" names no source or operator (known: \"events\", \"sales\")",
    ] {
        assert!(err.contains(expected), "missing:\n{expected}\nin:\n{err}");
    }
}

#[test]
fn malformed_toml_names_the_line_and_column() {
    let ws = Workspace::new();
    let (code, _, err) = validate(&ws, "name = \"x\"\n[sources.sales]\ntype = \"csv\n", &[]);
    assert_eq!(code, Some(2));
    assert!(
        err.starts_with("pipeline.toml: line 3, column 12: malformed TOML"),
        "{err}"
    );
}

#[test]
fn schema_columns_are_checked_against_the_aggregate() {
    let ws = Workspace::new();
    let text = format!(
        "{GOOD}\n[operators.by_shop]\ntype = \"aggregate\"\ninput = \"sales\"\ngroup_by = [\"Shopp\"]\naggregates = [\"sum(Shop)\"]\n\n[sinks.display]\ntype = \"console\"\ninput = \"by_shop\"\noutput_mode = \"complete\"\n"
    );
    let (code, _, err) = validate(&ws, &text, &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("operators.by_shop.group_by[0]: unknown column \"Shopp\" in \"Shopp\" (the input has File, Shop, Sale_Count; did you mean \"Shop\"?)"), "{err}");
    assert!(err.contains("operators.by_shop.aggregates[0]: sum(Shop) needs a numeric column, but \"Shop\" is STRING"), "{err}");
}

#[test]
fn sinks_may_not_share_a_folder_or_write_into_a_source() {
    let ws = Workspace::new();
    let text = format!("{GOOD}\n[sinks.copy]\ntype = \"csv\"\ninput = \"sales\"\npath = \"./out/\"\n\n[sinks.loop]\ntype = \"csv\"\ninput = \"sales\"\npath = \"in/again\"\n");
    let (code, _, err) = validate(&ws, &text, &[]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("sinks.copy.path: sink \"archive\" writes to the same folder"),
        "{err}"
    );
    assert!(
        err.contains("sinks.loop.path: is inside the folder source \"sales\" reads"),
        "{err}"
    );
}

#[test]
fn set_and_environment_override_the_file() {
    let ws = Workspace::new();
    let (code, out, err) = validate(
        &ws,
        GOOD,
        &[
            "--set",
            "sinks.archive.path=elsewhere",
            "--set",
            "trigger.once=true",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("trigger: once") && out.contains("elsewhere (append)"),
        "{out}"
    );

    let (code, _, err) = validate(&ws, GOOD, &["--set", "sinks.archive.compression=zip"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("sinks.archive.compression: unknown compression \"zip\""),
        "{err}"
    );

    ws.write("pipeline.toml", GOOD);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["validate", "pipeline.toml"])
        .current_dir(ws.path(""))
        .env("WEIR_SOURCES__SALES__MAX_FILES_PER_TRIGGER", "none")
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("sources.sales.max_files_per_trigger: invalid type: string \"none\", expected an integer"), "{err}");
}

#[test]
fn graph_shows_every_stage_and_edge() {
    let ws = Workspace::new();
    ws.write(
        "pipeline.toml",
        &notebook_pipeline("available_now = true", 2),
    );
    let out = ws.weir(&["graph", "pipeline.toml"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text,
        "pipeline shop_sales (trigger: available_now)\n\
         5 stage actors, each on its own arbiter, and a coordinator\n\
         source sales [csv] in\n\
         \x20   -> operator by_shop [aggregate] group_by [Shop]: sum(Sale_Count)\n\
         \x20       -> sink display [console] standard output, 1000 rows per epoch (complete)\n\
         \x20       -> sink sums [csv] sums (complete)\n\
         \x20   -> sink archive [parquet] out (append)\n"
    );
}

#[test]
fn usage_errors_exit_2_and_help_exists_for_every_command() {
    let ws = Workspace::new();
    assert_eq!(ws.weir(&["run"]).status.code(), Some(2));
    assert_eq!(ws.weir(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(ws.weir(&["run", "missing.toml"]).status.code(), Some(2));
    for command in ["run", "validate", "show", "graph"] {
        let out = ws.weir(&[command, "--help"]);
        assert!(out.status.success());
        assert!(String::from_utf8(out.stdout)
            .unwrap()
            .contains("Usage: weir"));
    }
}

#[test]
fn cycles_negative_intervals_and_output_in_the_checkpoint_are_refused() {
    let ws = Workspace::new();
    let text = r#"
[checkpoint]
path = "out/state"
interval = "-5s"

[sources.sales]
type = "csv"
path = "in"
schema = "File STRING, Shop STRING, Sale_Count INT"

[operators.a]
type = "aggregate"
input = "b"
aggregates = ["count(*)"]

[operators.b]
type = "aggregate"
input = "a"
aggregates = ["count(*)"]

[sinks.archive]
type = "parquet"
input = "sales"
path = "out"
"#;
    let (code, _, err) = validate(&ws, text, &[]);
    assert_eq!(code, Some(2));
    for expected in [
        "pipeline.toml: checkpoint.interval: \"-5s\" is not a duration: expected number at 0 (expected a positive duration",
        "pipeline.toml: operators.a.input: the operators form a cycle: a -> b -> a",
        "pipeline.toml: sinks.archive.path: overlaps checkpoint.path; output and checkpoint state must live apart",
    ] {
        assert!(err.contains(expected), "missing:\n{expected}\nin:\n{err}");
    }
}

/// Validates `GOOD` with `extra` lines in its source: each of `refused` must exit 2 with its
/// message, each of `accepted` must pass.
fn source_options(refused: &[(&str, &str)], accepted: &[&str]) {
    let ws = Workspace::new();
    let with = |extra: &str| GOOD.replace("[sinks.archive]", &format!("{extra}\n[sinks.archive]"));
    for (extra, expected) in refused {
        let (code, _, err) = validate(&ws, &with(extra), &[]);
        assert_eq!(code, Some(2), "{extra}: {err}");
        assert!(err.contains(expected), "{extra}: {err}");
    }
    for extra in accepted {
        let (code, _, err) = validate(&ws, &with(extra), &[]);
        assert_eq!(code, Some(0), "{extra}: {err}");
    }
}

#[test]
fn clean_source_needs_an_archive_folder_outside_the_source() {
    source_options(
        &[
            (
                "clean_source = \"archive\"",
                "sources.sales.source_archive_dir: is required with clean_source = \"archive\"",
            ),
            (
                "clean_source = \"archive\"\nsource_archive_dir = \"in/done\"",
                "sources.sales.source_archive_dir: \"in/done\" is inside the source's folder \"in\"",
            ),
            (
                "clean_source = \"delete\"\nsource_archive_dir = \"done\"",
                "sources.sales.source_archive_dir: only applies with clean_source = \"archive\"",
            ),
            (
                "clean_source = \"move\"",
                "sources.sales.clean_source: unknown value \"move\" (expected \"off\", \"delete\" or \"archive\")",
            ),
        ],
        &[
            "clean_source = \"DELETE\"",
            "clean_source = \"archive\"\nsource_archive_dir = \"done\"",
            "clean_source = \"off\"",
        ],
    );
}

#[test]
fn byte_limits_and_file_ages_are_checked_with_their_key() {
    source_options(
        &[
            (
                "max_bytes_per_trigger = \"lots\"",
                "sources.sales.max_bytes_per_trigger: invalid value: string \"lots\"",
            ),
            (
                "max_bytes_per_trigger = 0",
                "sources.sales.max_bytes_per_trigger: must be at least 1 byte",
            ),
            (
                "max_file_age = \"7\"",
                "sources.sales.max_file_age: \"7\" is not a duration",
            ),
            (
                "max_file_age = \"0s\"",
                "sources.sales.max_file_age: \"0s\" is zero",
            ),
        ],
        &[
            "max_bytes_per_trigger = \"64MiB\"\nmax_file_age = \"30d\"",
            "max_bytes_per_trigger = 1048576\nmax_file_age = \"12h\"",
        ],
    );
}
