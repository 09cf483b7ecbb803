//! The files a CSV source has met, so that each is read once, and `max_file_age`, so that
//! what it remembers does not grow with every file ever read.
//!
//! As in Spark's file source, a file's age is its modification time against the newest file
//! admitted so far. When that newest time moves, finished files more than `max_file_age`
//! older than it are forgotten, here and in the checkpoint, and a file that old is ignored
//! when it is listed, whether it was forgotten or never seen. Ignoring is what makes
//! forgetting safe: a forgotten file can never be taken for a new one.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::Metadata;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use crate::config::{glob_head, Location};

/// How the seen set and the backlog name a file: its path without the folder (or a glob's
/// fixed part) every path of the source starts with. At a million files, the folder in
/// front of every name is most of what the names weigh (48 of some 80 bytes an allocation
/// in W9); without it, a name fits the allocator's smallest blocks.
///
/// The names are text, not path components, so that a name and the prefix give back the
/// listed path byte for byte, which the checkpoint's keys and the clean-up need. A path that
/// does not start with the prefix is kept whole behind a NUL byte, which no path holds.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    prefix: Vec<u8>,
}

/// Marks a name that is a whole path (see [`Names`]).
const WHOLE: u8 = 0;

impl Names {
    /// The prefix of every path the source lists: a folder's paths are `dir.join(name)`,
    /// a glob's begin with its pattern up to the last `/` before the first wildcard.
    pub(crate) fn new(location: &Location) -> Names {
        let mut prefix = match location {
            Location::Folder(dir) => dir.as_os_str().as_bytes().to_vec(),
            Location::Glob(pattern) => glob_head(pattern).as_bytes().to_vec(),
        };
        if !prefix.is_empty() && prefix.last() != Some(&b'/') {
            prefix.push(b'/');
        }
        Names { prefix }
    }

    /// The name of `path`, borrowed from it unless the path lacks the prefix.
    pub(crate) fn name<'a>(&self, path: &'a Path) -> Cow<'a, OsStr> {
        let bytes = path.as_os_str().as_bytes();
        match bytes.strip_prefix(&self.prefix[..]) {
            Some(name) if name.first() != Some(&WHOLE) => Cow::Borrowed(OsStr::from_bytes(name)),
            _ => {
                let mut whole = Vec::with_capacity(bytes.len() + 1);
                whole.push(WHOLE);
                whole.extend_from_slice(bytes);
                Cow::Owned(OsString::from_vec(whole))
            }
        }
    }

    /// The path a name stands for, as it was listed.
    pub(crate) fn path(&self, name: &OsStr) -> PathBuf {
        let name = name.as_bytes();
        match name.strip_prefix(&[WHOLE]) {
            Some(whole) => PathBuf::from(OsStr::from_bytes(whole)),
            None => {
                let mut bytes = Vec::with_capacity(self.prefix.len() + name.len());
                bytes.extend_from_slice(&self.prefix);
                bytes.extend_from_slice(name);
                PathBuf::from(OsString::from_vec(bytes))
            }
        }
    }
}

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

/// Every file discovered and not yet forgotten, by name (see [`Names`]), and the age limit.
#[derive(Debug, Default)]
pub(crate) struct SeenFiles {
    /// Every file discovered (backlog, being read, finished), with its modification time.
    /// aHash, not SipHash: a listing looks up every name in the folder (100,000 in W10),
    /// and SipHash was a third of that listing's time in user space.
    files: HashMap<Arc<OsStr>, Modified, ahash::RandomState>,
    /// The finished ones, oldest first: the ones that may be forgotten.
    finished: BTreeSet<(Modified, Arc<OsStr>)>,
    /// The newest modification time among admitted files.
    newest: Option<Modified>,
    /// Files modified before this are ignored when listed.
    ignore_before: Option<Modified>,
    /// Finished files without a time (see [`AGELESS`]), kept for good.
    ageless: usize,
    /// The bytes of every remembered name, for progress records.
    path_bytes: u64,
}

impl SeenFiles {
    /// Whether a listed file is new: neither remembered nor too old to be read.
    pub(crate) fn is_new(&self, path: &OsStr, modified: Modified) -> bool {
        !self.files.contains_key(path) && self.ignore_before.is_none_or(|t| modified >= t)
    }

    /// Whether a listed file was seen, without looking at its age.
    pub(crate) fn contains(&self, path: &OsStr) -> bool {
        self.files.contains_key(path)
    }

    /// A file discovered (or, restored, being read).
    pub(crate) fn insert(&mut self, path: &OsStr, modified: Modified) {
        self.insert_shared(Arc::from(path), modified);
    }

    /// Makes room for `more` files.
    pub(crate) fn reserve(&mut self, more: usize) {
        self.files.reserve(more);
    }

    /// Like [`Self::insert`], keeping `path`'s allocation, which the caller shares.
    pub(crate) fn insert_shared(&mut self, path: Arc<OsStr>, modified: Modified) {
        let bytes = path.len() as u64;
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
    pub(crate) fn finished(&mut self, path: &OsStr) -> Modified {
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
    pub(crate) fn restore_finished(&mut self, path: &OsStr, modified: Option<Modified>) {
        let modified = modified.unwrap_or(AGELESS);
        self.insert(path, modified);
        self.finished(path);
    }

    /// Moves the age limit to `max_age` before the newest admitted file, and forgets the
    /// finished files older than that. Returns the forgotten paths (their checkpoint keys go).
    pub(crate) fn age_out(&mut self, max_age: Duration) -> Vec<Arc<OsStr>> {
        let Some(newest) = self.newest else {
            return Vec::new();
        };
        let age = i64::try_from(max_age.as_nanos()).unwrap_or(i64::MAX);
        let limit = newest.saturating_sub(age);
        if self.ignore_before.is_some_and(|t| t >= limit) {
            return Vec::new();
        }
        self.ignore_before = Some(limit);
        let keep = self.finished.split_off(&(limit, Arc::from(OsStr::new(""))));
        let forgotten = std::mem::replace(&mut self.finished, keep);
        forgotten
            .into_iter()
            .map(|(_, path)| {
                self.files.remove(&path);
                self.path_bytes -= path.len() as u64;
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

    /// The bytes of the remembered names.
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
            let path = OsStr::new(name);
            assert!(seen.is_new(path, day * DAY));
            seen.insert(path, day * DAY);
            seen.admitted(day * DAY);
            seen.finished(path);
        }
        assert!(!seen.is_new(OsStr::new("a"), DAY));
        let forgotten = seen.age_out(Duration::from_secs(7 * 86_400));
        assert_eq!(forgotten, vec![Arc::from(OsStr::new("a"))]);
        assert_eq!(seen.remembered(), 2);
        assert_eq!(seen.path_bytes(), 2);
        // Forgotten, but too old to be read again; a newer file of that name is new.
        assert!(!seen.is_new(OsStr::new("a"), DAY));
        assert!(seen.is_new(OsStr::new("a"), 3 * DAY));
        assert!(!seen.is_new(OsStr::new("b"), 5 * DAY));
        // The limit only moves forward.
        assert!(seen.age_out(Duration::from_secs(30 * 86_400)).is_empty());
        assert_eq!(seen.ages(), (Some(9 * DAY), Some(2 * DAY)));
    }

    #[test]
    fn a_name_and_the_prefix_give_back_the_listed_path_byte_for_byte() {
        let folder = Names::new(&Location::Folder("data/in".into()));
        let glob = Names::new(&Location::Glob("data/*/day?/*.csv".into()));
        let bare = Names::new(&Location::Glob("*.csv".into()));
        for (names, path, name) in [
            (&folder, "data/in/a.csv", "a.csv"),
            (&glob, "data/x/day1/b.csv", "x/day1/b.csv"),
            (&bare, "c.csv", "c.csv"),
            // Not under the prefix (and so kept whole), however the pattern was written.
            (&folder, "./data/in/a.csv", "\0./data/in/a.csv"),
            (&glob, "/abs/data/x/b.csv", "\0/abs/data/x/b.csv"),
        ] {
            let got = names.name(Path::new(path));
            assert_eq!(got, OsStr::new(name), "{path}");
            assert_eq!(names.path(&got), Path::new(path));
        }
        let slash = Names::new(&Location::Folder("data/in/".into()));
        assert_eq!(slash.name(Path::new("data/in/a.csv")), OsStr::new("a.csv"));
    }

    #[test]
    fn files_without_an_age_are_never_forgotten() {
        let mut seen = SeenFiles::default();
        seen.restore_finished(OsStr::new("old"), None);
        seen.restore_finished(OsStr::new("b"), Some(DAY));
        seen.admitted(100 * DAY);
        assert_eq!(seen.age_out(Duration::from_secs(86_400)).len(), 1);
        assert!(seen.contains(OsStr::new("old")));
        assert_eq!(seen.remembered(), 1);
        assert!(!seen.is_new(OsStr::new("old"), 200 * DAY));
    }
}
