//! Bad surroundings: a damaged checkpoint, folders that cannot be written, a full disk. The
//! run stops with a clear error and exit 1, what was committed stays as it was, and a later
//! run resumes with every row once.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::common::*;

const PIPELINE_TRIGGER: &str = "available_now = true";

/// A workspace with the exactly-once pipeline (one file an epoch) and `files` input files.
fn workspace(files: usize) -> (Workspace, Vec<Row>) {
    let ws = Workspace::new();
    ws.write("pipeline.toml", &exactly_once_pipeline(PIPELINE_TRIGGER, 1));
    let rows = ws.csv_files("in", 0, files, 500, 20, 7);
    (ws, rows)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// What is committed is a part of the input, no row more often than the input has it,
/// and the checkpoint reads whole: a failure left both as they were.
fn assert_intact(ws: &Workspace, input: &[Row]) {
    let mut left: BTreeMap<Row, usize> = BTreeMap::new();
    for row in input {
        *left.entry(row.clone()).or_default() += 1;
    }
    for row in parquet_rows(&ws.path("out")) {
        let count = left.get_mut(&row).filter(|n| **n > 0);
        *count.unwrap_or_else(|| panic!("{row:?} committed more often than it was read")) -= 1;
    }
    let out = ws.weir(&["checkpoints", "state"]);
    assert!(out.status.success(), "checkpoint: {}", stderr(&out));
}

#[test]
fn a_damaged_checkpoint_is_named_and_falling_back_resumes_exactly_once() {
    let (ws, mut input) = workspace(6);
    ws.run_ok(&["run", "pipeline.toml", "--quiet"]);

    // Garble the middle of RocksDB's write-ahead log, where the checkpoints are (a run
    // this small never flushes a table).
    let log = fs::read_dir(ws.path("state"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "log"))
        .expect("a write-ahead log");
    let mut bytes = fs::read(&log).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle..middle + 64].fill(b'x');
    fs::write(&log, bytes).unwrap();
    let log_name = log.file_name().unwrap().to_string_lossy().into_owned();

    let out = ws.weir(&["checkpoints", "state"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("state is damaged"),
        "{}",
        stderr(&out)
    );

    let out = ws.weir(&["run", "pipeline.toml", "--quiet"]);
    let message = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{message}");
    assert!(message.contains("state is damaged"), "{message}");
    assert!(message.contains(&log_name), "names the file: {message}");
    assert!(message.contains("weir run --fall-back"), "{message}");
    // Nothing was touched by the refused run.
    assert_exactly_once(&ws, &input);

    let out = ws.run_ok(&["run", "pipeline.toml", "--quiet", "--fall-back"]);
    assert!(
        stderr(&out).contains("removing output of an epoch after the checkpoint"),
        "the epochs after the fallback point are read again: {}",
        stderr(&out)
    );
    assert_exactly_once(&ws, &input);
    ws.run_ok(&["checkpoints", "state"]);

    // And the store carries on as usual.
    input.extend(ws.csv_files("in", 6, 2, 500, 20, 8));
    ws.run_ok(&["run", "pipeline.toml", "--quiet"]);
    assert_exactly_once(&ws, &input);
}

/// Runs the pipeline over two files, adds two, takes write permission away from `folder`,
/// and checks that the run stops with a clear error, leaves everything intact, and that the
/// run after permission is given back commits every row once.
fn unwritable(folder: &str, expected: &str) {
    let (ws, mut input) = workspace(2);
    open_up(&ws.path(""));
    let run = |ws: &Workspace| weir_unprivileged(ws, &["run", "pipeline.toml", "--quiet"]);
    let out = run(&ws).unwrap_or_else(|reason| panic!("{reason}"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_exactly_once(&ws, &input);

    input.extend(ws.csv_files("in", 2, 2, 500, 20, 8));
    open_up(&ws.path(""));
    set_mode(&ws.path(folder), 0o555);
    let out = run(&ws).unwrap();
    let message = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{message}");
    assert!(message.contains(expected), "{message}");
    assert!(message.contains("Permission denied"), "{message}");
    assert_intact(&ws, &input);

    set_mode(&ws.path(folder), 0o777);
    let out = run(&ws).unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_exactly_once(&ws, &input);
}

#[test]
fn an_output_folder_that_cannot_be_written_stops_the_run_until_it_can() {
    unwritable("out", "out");
}

#[test]
fn a_checkpoint_folder_that_cannot_be_written_stops_the_run_until_it_can() {
    unwritable("state", "checkpoint folder state");
}

/// A small tmpfs mounted over a folder, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size_kib: u64) -> Result<Tmpfs, String> {
        if !is_root() {
            return Err("mounting a tmpfs needs root".into());
        }
        fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_kib}k"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            dir: dir.to_path_buf(),
        })
    }

    /// Fills the file system but for `free` bytes.
    fn fill_leaving(&self, free: u64) {
        let filler = self.dir.join("_filler");
        let _ = fs::remove_file(&filler);
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.dir)
            .output()
            .unwrap();
        let avail: u64 = String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .unwrap();
        fs::write(&filler, vec![0u8; avail.saturating_sub(free) as usize]).unwrap();
    }

    fn empty_filler(&self) {
        fs::remove_file(self.dir.join("_filler")).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// With `folder` on a small tmpfs, a continuous run commits two files; then the file system
/// fills up and more files arrive. The run must stop with a clear error and leave
/// everything intact, and once there is room again the next run commits every row once.
fn disk_full(folder: &str) {
    let ws = Workspace::new();
    // Ignored unless run as root (see the tests' #[ignore]); as root, a tmpfs that cannot
    // be mounted is a failure, never a silent pass.
    let tmpfs = Tmpfs::mount(&ws.path(folder), 2048).unwrap_or_else(|reason| panic!("{reason}"));
    ws.write("pipeline.toml", &exactly_once_pipeline("", 1));
    let mut input = ws.csv_files("in", 0, 2, 500, 20, 7);
    let mut child = ws.spawn(&["run", "pipeline.toml", "--quiet"]);
    let committed = wait_for(Duration::from_secs(30), || {
        parquet_rows(&ws.path("out")).len() == input.len()
    });
    if !committed {
        let _ = child.kill();
        panic!("the first files were not committed: {}", ws.stderr());
    }

    tmpfs.fill_leaving(0);
    input.extend(ws.csv_files("in", 2, 6, 2000, 20, 8));
    let stopped = wait_for(Duration::from_secs(30), || {
        child.try_wait().unwrap().is_some()
    });
    if !stopped {
        let _ = child.kill();
        panic!("the run went on with a full disk under {folder}");
    }
    let message = ws.stderr();
    assert_eq!(child.wait().unwrap().code(), Some(1), "{message}");
    assert!(message.contains("No space left on device"), "{message}");
    assert!(message.contains(&format!("{folder}/")), "{message}");
    assert_intact(&ws, &input);

    tmpfs.empty_filler();
    ws.write("pipeline.toml", &exactly_once_pipeline(PIPELINE_TRIGGER, 1));
    ws.run_ok(&["run", "pipeline.toml", "--quiet"]);
    assert_exactly_once(&ws, &input);
}

#[test]
#[ignore = "needs root, to mount a tmpfs: make test includes it when run as root"]
fn a_full_disk_under_the_output_stops_the_run_and_the_next_run_resumes() {
    disk_full("out");
}

#[test]
#[ignore = "needs root, to mount a tmpfs: make test includes it when run as root"]
fn a_full_disk_under_the_checkpoint_stops_the_run_and_the_next_run_resumes() {
    disk_full("state");
}
