//! The files a CSV source has met, so that each is read once, and `max_file_age`, so that
//! what it remembers does not grow with every file ever read.
//!
//! As in Spark's file source, a file's age is its modification time against the newest file
//! admitted so far. When that newest time moves, finished files more than `max_file_age`
//! older than it are forgotten, here and in the checkpoint, and a file that old is ignored
//! when it is listed, whether it was forgotten or never seen. Ignoring is what makes
//! forgetting safe: a forgotten file can never be taken for a new one.

use std::collections::{BTreeSet, HashMap};
use std::fs::Metadata;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// A modification time, in nanoseconds since 1970 (negative before).
pub(crate) type Modified = i64;

/// What a file never finished, or finished under a Weir that did not record ages, is
/// given: never forgotten.
pub(crate) const AGELESS: Modified = Modified::MAX;

/// The modification time of a listed file, as [`Modified`].
pub(crate) fn modified(meta: &Metadata) -> Modified {
    let time = meta.modified().unwrap_or(UNIX_EPOCH);
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_nanos()).unwrap_or(Modified::MAX),
        Err(before) => -i64::try_from(before.duration().as_nanos()).unwrap_or(Modified::MAX),
    }
}

/// Every file discovered and not yet forgotten, and the age limit.
#[derive(Debug, Default)]
pub(crate) struct SeenFiles {
    /// Every file discovered (backlog, being read, finished), with its modification time.
    files: HashMap<Arc<Path>, Modified>,
    /// The finished ones, oldest first: the ones that may be forgotten.
    finished: BTreeSet<(Modified, Arc<Path>)>,
    /// The newest modification time among admitted files.
    newest: Option<Modified>,
    /// Files modified before this are ignored when listed.
    ignore_before: Option<Modified>,
    /// Finished files without a time (see [`AGELESS`]), kept for good.
    ageless: usize,
    /// The bytes of every remembered path, for progress records.
    path_bytes: u64,
}

impl SeenFiles {
    /// Whether a listed file is new: neither remembered nor too old to be read.
    pub(crate) fn is_new(&self, path: &Path, modified: Modified) -> bool {
        !self.files.contains_key(path) && self.ignore_before.is_none_or(|t| modified >= t)
    }

    /// Whether a listed file was seen, without looking at its age.
    pub(crate) fn contains(&self, path: &Path) -> bool {
        self.files.contains_key(path)
    }

    /// A file discovered (or, restored, being read).
    pub(crate) fn insert(&mut self, path: &Path, modified: Modified) {
        self.insert_shared(Arc::from(path), modified);
    }

    /// Makes room for `more` files.
    pub(crate) fn reserve(&mut self, more: usize) {
        self.files.reserve(more);
    }

    /// Like [`Self::insert`], keeping `path`'s allocation, which the caller shares.
    pub(crate) fn insert_shared(&mut self, path: Arc<Path>, modified: Modified) {
        let bytes = path.as_os_str().len() as u64;
        if self.files.insert(path, modified).is_none() {
            self.path_bytes += bytes;
        }
    }

    /// A file admitted into an epoch: its time may move the newest.
    pub(crate) fn admitted(&mut self, modified: Modified) {
        if modified != AGELESS {
            self.newest = Some(self.newest.map_or(modified, |n| n.max(modified)));
        }
    }

    /// A file read to its end. Returns its modification time, which the checkpoint keeps
    /// beside its name.
    pub(crate) fn finished(&mut self, path: &Path) -> Modified {
        let (key, modified) = match self.files.get_key_value(path) {
            Some((key, modified)) => (key.clone(), *modified),
            None => {
                self.insert(path, AGELESS);
                (Arc::from(path), AGELESS)
            }
        };
        if modified == AGELESS {
            self.ageless += 1;
        } else {
            self.finished.insert((modified, key));
        }
        modified
    }

    /// A finished file restored from a checkpoint, with its time if the checkpoint has it.
    pub(crate) fn restore_finished(&mut self, path: &Path, modified: Option<Modified>) {
        let modified = modified.unwrap_or(AGELESS);
        self.insert(path, modified);
        self.finished(path);
    }

    /// Moves the age limit to `max_age` before the newest admitted file, and forgets the
    /// finished files older than that. Returns the forgotten paths (their checkpoint keys go).
    pub(crate) fn age_out(&mut self, max_age: Duration) -> Vec<Arc<Path>> {
        let Some(newest) = self.newest else {
            return Vec::new();
        };
        let age = i64::try_from(max_age.as_nanos()).unwrap_or(i64::MAX);
        let limit = newest.saturating_sub(age);
        if self.ignore_before.is_some_and(|t| t >= limit) {
            return Vec::new();
        }
        self.ignore_before = Some(limit);
        let keep = self.finished.split_off(&(limit, Arc::from(Path::new(""))));
        let forgotten = std::mem::replace(&mut self.finished, keep);
        forgotten
            .into_iter()
            .map(|(_, path)| {
                self.files.remove(&path);
                self.path_bytes -= path.as_os_str().len() as u64;
                path
            })
            .collect()
    }

    /// The newest admitted time and the age limit, for the checkpoint.
    pub(crate) fn ages(&self) -> (Option<Modified>, Option<Modified>) {
        (self.newest, self.ignore_before)
    }

    /// Restores what [`Self::ages`] gave.
    pub(crate) fn restore_ages(
        &mut self,
        newest: Option<Modified>,
        ignore_before: Option<Modified>,
    ) {
        self.newest = newest;
        self.ignore_before = ignore_before;
    }

    /// Finished files remembered (each one checkpoint key).
    pub(crate) fn remembered(&self) -> usize {
        self.finished.len() + self.ageless
    }

    /// The bytes of the remembered paths.
    pub(crate) fn path_bytes(&self) -> u64 {
        self.path_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000_000_000;

    #[test]
    fn finished_files_older_than_the_age_are_forgotten_and_then_ignored() {
        let mut seen = SeenFiles::default();
        for (name, day) in [("a", 1), ("b", 5), ("c", 9)] {
            let path = Path::new(name);
            assert!(seen.is_new(path, day * DAY));
            seen.insert(path, day * DAY);
            seen.admitted(day * DAY);
            seen.finished(path);
        }
        assert!(!seen.is_new(Path::new("a"), DAY));
        let forgotten = seen.age_out(Duration::from_secs(7 * 86_400));
        assert_eq!(forgotten, vec![Arc::from(Path::new("a"))]);
        assert_eq!(seen.remembered(), 2);
        assert_eq!(seen.path_bytes(), 2);
        // Forgotten, but too old to be read again; a newer file of that name is new.
        assert!(!seen.is_new(Path::new("a"), DAY));
        assert!(seen.is_new(Path::new("a"), 3 * DAY));
        assert!(!seen.is_new(Path::new("b"), 5 * DAY));
        // The limit only moves forward.
        assert!(seen.age_out(Duration::from_secs(30 * 86_400)).is_empty());
        assert_eq!(seen.ages(), (Some(9 * DAY), Some(2 * DAY)));
    }

    #[test]
    fn files_without_an_age_are_never_forgotten() {
        let mut seen = SeenFiles::default();
        seen.restore_finished(Path::new("old"), None);
        seen.restore_finished(Path::new("b"), Some(DAY));
        seen.admitted(100 * DAY);
        assert_eq!(seen.age_out(Duration::from_secs(86_400)).len(), 1);
        assert!(seen.contains(Path::new("old")));
        assert_eq!(seen.remembered(), 1);
        assert!(!seen.is_new(Path::new("old"), 200 * DAY));
    }
}
