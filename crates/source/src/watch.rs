//! Discovery that costs what is new: file-system notifications (inotify on Linux, through
//! the `notify` crate) say which files appeared, so a poll of an idle folder lists nothing,
//! and a new file in a folder of a million costs one `stat`, not a million directory entries.
//!
//! Notifications can be lost: the kernel's queue overflows, the folder is removed and made
//! again, a network file system sends none. So the folder is still listed in full when the
//! watcher says it dropped events, when this side's queue fills, and every
//! `full_listing_interval` whatever happens.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher};

use crate::config::Location;

/// Events held between two discoveries; more than this and the next discovery lists the
/// folder instead (a burst of new files is as cheap to list as to replay).
const QUEUED_EVENTS: usize = 64 * 1024;

/// What a discovery should look at.
pub(crate) enum Changes {
    /// Only these paths, named as a listing of the folder names them.
    Paths(Vec<PathBuf>),
    /// The whole folder: events may have been missed, or the full listing is due.
    Everything,
}

/// A watch on a source's folder.
pub(crate) struct Watch {
    /// Kept for its drop, which ends the watch.
    _watcher: notify::RecommendedWatcher,
    events: Receiver<Vec<PathBuf>>,
    /// Set when an event was dropped, here or by the kernel.
    lost: Arc<AtomicBool>,
    /// The folder (or a glob's fixed part) as watched, absolute, and as the pipeline names it.
    absolute: PathBuf,
    root: PathBuf,
    /// Folder sources name files `root.join(name)`; globs are listed again on any event, so
    /// that every path keeps the form the glob gives it.
    folder: bool,
    last_full: Instant,
    /// The watched folder itself was removed or moved: the watch ended with it.
    ended: bool,
}

impl Watch {
    /// Starts watching `location`: its folder alone, or the tree below a glob's fixed part.
    pub(crate) fn start(location: &Location) -> notify::Result<Watch> {
        let root = location.root();
        let absolute = std::path::absolute(&root).unwrap_or_else(|_| root.clone());
        let (sender, events) = sync_channel(QUEUED_EVENTS);
        let lost = Arc::new(AtomicBool::new(false));
        let flag = lost.clone();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let paths = match event {
                    // Reads (the source's own among them) say nothing of new files.
                    Ok(event) if event.kind.is_access() => return,
                    Ok(event) if !event.need_rescan() => event.paths,
                    _ => return flag.store(true, Ordering::Release),
                };
                if let Err(TrySendError::Full(_)) = sender.try_send(paths) {
                    flag.store(true, Ordering::Release);
                }
            })?;
        let mode = match location {
            Location::Folder(_) => RecursiveMode::NonRecursive,
            Location::Glob(_) => RecursiveMode::Recursive,
        };
        watcher.watch(&absolute, mode)?;
        Ok(Watch {
            _watcher: watcher,
            events,
            lost,
            absolute,
            root,
            folder: matches!(location, Location::Folder(_)),
            last_full: Instant::now(),
            ended: false,
        })
    }

    /// What changed since the last call.
    pub(crate) fn changes(&mut self, full_listing_interval: Duration) -> Changes {
        let mut named: Vec<PathBuf> = self.events.try_iter().flatten().collect();
        let lost = self.lost.swap(false, Ordering::AcqRel);
        self.ended |= named.contains(&self.absolute);
        let everything = if lost || self.ended || self.last_full.elapsed() >= full_listing_interval
        {
            true
        } else if !self.folder {
            // A glob: any event below its root lists it again.
            !named.is_empty()
        } else {
            named = named
                .iter()
                .filter(|p| p.parent() == Some(self.absolute.as_path()))
                .filter_map(|p| p.file_name().map(|name| self.root.join(name)))
                .collect();
            false
        };
        if everything {
            self.last_full = Instant::now();
            return Changes::Everything;
        }
        named.sort();
        named.dedup();
        Changes::Paths(named)
    }
}

/// How a source finds its files, over its run.
pub(crate) enum Discovery {
    /// Lists the folder every time (`watch = false`, or a watch that could not start).
    Listing,
    /// Not listed yet: the first listing reads what is there. A run that lists once
    /// (`once`, `available_now`) never starts a watch.
    First,
    /// Listed once: the watch starts now, before the second listing, so that nothing
    /// created between the two is missed.
    Second,
    /// Watching.
    Watching(Watch),
}

impl Discovery {
    /// What the next discovery of `location` should look at.
    pub(crate) fn changes(
        &mut self,
        location: &Location,
        full_listing_interval: Duration,
    ) -> Changes {
        match self {
            Discovery::Listing => Changes::Everything,
            Discovery::First => {
                *self = Discovery::Second;
                Changes::Everything
            }
            // A folder that does not exist yet cannot be watched: try again next time.
            Discovery::Second if !location.root().exists() => Changes::Everything,
            Discovery::Second => {
                *self = match Watch::start(location) {
                    Ok(watch) => Discovery::Watching(watch),
                    Err(e) => {
                        tracing::warn!(
                            folder = %location.root().display(),
                            "cannot watch for new files ({e}); listing the folder at every poll instead"
                        );
                        Discovery::Listing
                    }
                };
                Changes::Everything
            }
            Discovery::Watching(watch) => {
                let changes = watch.changes(full_listing_interval);
                if watch.ended {
                    // Watched again once the folder is back; listed in full until then.
                    *self = Discovery::Second;
                }
                changes
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::Path;

    /// Calls `changes` until it has named `wanted`, for up to 10 s (notifications arrive on
    /// the watcher's thread, a moment after the call that caused them), and returns every
    /// path named meanwhile.
    fn paths_until(watch: &mut Watch, wanted: &Path) -> Vec<PathBuf> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut named = Vec::new();
        while !named.iter().any(|p| p == wanted) {
            assert!(
                Instant::now() < deadline,
                "{} was never named: {named:?}",
                wanted.display()
            );
            match watch.changes(Duration::from_secs(3600)) {
                Changes::Paths(paths) => named.extend(paths),
                Changes::Everything => panic!("a full listing, not the new files"),
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        named
    }

    #[test]
    fn a_watched_folder_names_its_new_files_as_a_listing_would() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("in");
        fs::create_dir_all(folder.join("nested")).unwrap();
        let location = Location::Folder(folder.clone());
        let mut watch = Watch::start(&location).unwrap();
        assert!(
            matches!(watch.changes(Duration::from_secs(3600)), Changes::Paths(p) if p.is_empty())
        );
        // Written under a hidden name and renamed into place, as producers do.
        fs::write(folder.join(".a.csv.part"), "x\n").unwrap();
        fs::rename(folder.join(".a.csv.part"), folder.join("a.csv")).unwrap();
        let mut named = paths_until(&mut watch, &folder.join("a.csv"));
        named.retain(|p| !p.ends_with(".a.csv.part"));
        named.dedup();
        assert_eq!(named, [folder.join("a.csv")]);
        // A file in a folder inside is not the source's.
        fs::write(folder.join("nested/b.csv"), "x\n").unwrap();
        fs::write(folder.join("c.csv"), "x\n").unwrap();
        let mut named = paths_until(&mut watch, &folder.join("c.csv"));
        named.dedup();
        assert_eq!(named, [folder.join("c.csv")]);
        // The full listing comes when due.
        assert!(matches!(watch.changes(Duration::ZERO), Changes::Everything));
    }

    #[test]
    fn a_glob_is_listed_again_on_any_event_below_its_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("in");
        fs::create_dir_all(root.join("day1")).unwrap();
        let location = Location::Glob(format!("{}/*/*.csv", root.display()));
        let mut watch = Watch::start(&location).unwrap();
        assert!(
            matches!(watch.changes(Duration::from_secs(3600)), Changes::Paths(p) if p.is_empty())
        );
        fs::write(root.join("day1/a.csv"), "x\n").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !matches!(
            watch.changes(Duration::from_secs(3600)),
            Changes::Everything
        ) {
            assert!(Instant::now() < deadline, "no event for day1/a.csv");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn discovery_lists_first_then_watches_and_watches_again_after_the_folder_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("in");
        let location = Location::Folder(folder.clone());
        let hour = Duration::from_secs(3600);
        let mut discovery = Discovery::First;
        assert!(matches!(
            discovery.changes(&location, hour),
            Changes::Everything
        ));
        // Not there yet: listed (finding nothing) until it is.
        assert!(matches!(
            discovery.changes(&location, hour),
            Changes::Everything
        ));
        assert!(matches!(discovery, Discovery::Second));
        fs::create_dir_all(&folder).unwrap();
        assert!(matches!(
            discovery.changes(&location, hour),
            Changes::Everything
        ));
        assert!(matches!(discovery, Discovery::Watching(_)));
        fs::remove_dir(&folder).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !matches!(discovery, Discovery::Second) {
            assert!(
                Instant::now() < deadline,
                "the folder's removal went unnoticed"
            );
            discovery.changes(&location, hour);
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut listing = Discovery::Listing;
        assert!(matches!(
            listing.changes(&location, hour),
            Changes::Everything
        ));
    }
}
