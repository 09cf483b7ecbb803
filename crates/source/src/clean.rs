//! `clean_source`: deleting or archiving the files the CSV source finished, once the epoch
//! that finished them has committed.
//!
//! The source notes, at each barrier, the files finished since the one before
//! ([`Cleanup::finished_at`]); the runtime calls the [`Cleaner`] after every sink has
//! committed an epoch, and it cleans what epochs up to that one finished. A crash between a
//! commit and the cleaning leaves the files in place; they are finished in the checkpoint,
//! so they are not read again, and the next run cleans them after its first commit.

use std::collections::VecDeque;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use weir_core::{Epoch, Error, InputCleaner, Result};

use crate::config::CleanSource;

/// Files waiting for their epoch to commit, shared by the source and its cleaner.
#[derive(Debug)]
pub(crate) struct Cleanup {
    how: CleanSource,
    /// The folder the files are listed under: an archived file keeps its path below it.
    root: PathBuf,
    waiting: VecDeque<(Epoch, Vec<PathBuf>)>,
}

impl Cleanup {
    pub(crate) fn new(how: CleanSource, root: PathBuf) -> Arc<Mutex<Cleanup>> {
        Arc::new(Mutex::new(Cleanup {
            how,
            root,
            waiting: VecDeque::new(),
        }))
    }

    fn clean(&self, path: &Path) -> io::Result<()> {
        match &self.how {
            CleanSource::Off => Ok(()),
            CleanSource::Delete => fs::remove_file(path),
            CleanSource::Archive(dir) => {
                let below = path
                    .strip_prefix(&self.root)
                    .ok()
                    .filter(|p| !p.as_os_str().is_empty())
                    .or_else(|| path.file_name().map(Path::new))
                    .unwrap_or(path);
                archive(path, &dir.join(below))
            }
        }
    }
}

/// `files` were finished before the barrier of `epoch`: they are cleaned once it commits.
pub(crate) fn finished_at(
    cleanup: &Mutex<Cleanup>,
    epoch: Epoch,
    files: Vec<PathBuf>,
) -> Result<()> {
    let mut cleanup = cleanup.lock().map_err(|_| {
        Error::Internal("the clean_source list is unusable: a thread panicked holding it".into())
    })?;
    if !files.is_empty() {
        cleanup.waiting.push_back((epoch, files));
    }
    Ok(())
}

/// Moves `from` to `to`, or beside it as `to.1`, `to.2`, … when a file is already there (an
/// archived file is never replaced). Across file systems, copies, syncs, then removes.
fn archive(from: &Path, to: &Path) -> io::Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut target = to.to_path_buf();
    let mut n = 0;
    while target.exists() {
        n += 1;
        let mut name = to.as_os_str().to_owned();
        name.push(format!(".{n}"));
        target = PathBuf::from(name);
    }
    match fs::rename(from, &target) {
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
            fs::copy(from, &target)?;
            fs::File::open(&target)?.sync_all()?;
            fs::remove_file(from)
        }
        other => other,
    }
}

/// The runtime's handle on a [`Cleanup`]: cleans after each commit.
pub(crate) struct Cleaner(pub(crate) Arc<Mutex<Cleanup>>);

impl InputCleaner for Cleaner {
    fn committed(&mut self, epoch: Epoch) {
        let Ok(mut cleanup) = self.0.lock() else {
            tracing::warn!("clean_source: the source's list of finished files is unusable");
            return;
        };
        while cleanup.waiting.front().is_some_and(|(e, _)| *e <= epoch) {
            let Some((_, files)) = cleanup.waiting.pop_front() else {
                break;
            };
            for path in files {
                match cleanup.clean(&path) {
                    Ok(()) => {}
                    // Cleaned already: by a run that crashed after cleaning, before its
                    // next checkpoint, or by hand.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!("clean_source: cannot clean {}: {e}", path.display())
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_cleaned_once_their_epoch_commits_and_archives_never_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("in");
        fs::create_dir_all(root.join("day1")).unwrap();
        for name in ["a.csv", "b.csv", "day1/c.csv"] {
            fs::write(root.join(name), name).unwrap();
        }
        let archive_dir = dir.path().join("done");
        fs::create_dir_all(archive_dir.join("day1")).unwrap();
        fs::write(archive_dir.join("day1/c.csv"), "older").unwrap();
        let cleanup = Cleanup::new(CleanSource::Archive(archive_dir.clone()), root.clone());
        let mut cleaner = Cleaner(cleanup.clone());
        finished_at(&cleanup, Epoch(1), vec![root.join("a.csv")]).unwrap();
        let both = vec![root.join("b.csv"), root.join("day1/c.csv")];
        finished_at(&cleanup, Epoch(2), both).unwrap();
        cleaner.committed(Epoch(1));
        assert!(!root.join("a.csv").exists() && root.join("b.csv").exists());
        assert_eq!(
            fs::read_to_string(archive_dir.join("a.csv")).unwrap(),
            "a.csv"
        );
        cleaner.committed(Epoch(2));
        assert!(!root.join("b.csv").exists() && !root.join("day1/c.csv").exists());
        assert_eq!(
            fs::read_to_string(archive_dir.join("day1/c.csv")).unwrap(),
            "older"
        );
        let moved = fs::read_to_string(archive_dir.join("day1/c.csv.1")).unwrap();
        assert_eq!(moved, "day1/c.csv");
        // A file already gone is not an error.
        finished_at(&cleanup, Epoch(3), vec![root.join("a.csv")]).unwrap();
        cleaner.committed(Epoch(3));
    }
}
