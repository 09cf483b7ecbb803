//! The running CSV source: discovery, admission, decoding files on a pool of threads, and
//! its position in checkpoints. Its configuration is in `config.rs`.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use weir_core::{Epoch, Error, InputCleaner, Quota, Result, Source, StageSnapshot, StateEntries};

use crate::clean::{finished_at, Cleaner, Cleanup};
use crate::config::*;
use crate::decode::{bad_records_batch, BadRecord, Decoded, FileDecoder};
use crate::last::LastListing;
use crate::pool::DecoderPool;
use crate::seen::{modified, Modified, Names, SeenFiles, AGELESS};
use crate::watch::{Changes, Discovery};

impl CsvSourceSettings {
    /// The running source. Nothing is read until it is asked to discover and admit files.
    pub fn build(&self) -> CsvSource {
        let cleanup = (self.clean_source != CleanSource::Off)
            .then(|| Cleanup::new(self.clean_source.clone(), self.location.root()));
        CsvSource {
            settings: self.clone(),
            cleanup,
            discovery: match self.watch {
                true => Discovery::First,
                false => Discovery::Listing,
            },
            stamp: None,
            being_written: Vec::new(),
            last: LastListing::default(),
            names: Names::new(&self.location),
            seen: SeenFiles::default(),
            backlog: VecDeque::new(),
            admitted_bytes: 0,
            admitted: VecDeque::new(),
            current: None,
            next: VecDeque::new(),
            resume: None,
            finished: Vec::new(),
            done: 0,
            malformed: 0,
            malformed_total: 0,
            bad: Vec::new(),
            pool: DecoderPool::new(self.decode_threads),
        }
    }
}

/// Reads the CSV files of a folder, each once, in the order they appeared.
pub struct CsvSource {
    settings: CsvSourceSettings,
    /// Under `watch = false`, the folder's modification time at the last listing.
    stamp: Option<FolderStamp>,
    /// Under `watch = false`, the hidden names the last listing met and had not met before,
    /// at most [`BEING_WRITTEN_MAX`]: files being written, which their writers will rename
    /// into place (see [`CsvSource::renamed_into_place`]).
    being_written: Vec<Arc<OsStr>>,
    /// Under `watch = false`, the order of the last listing, so that the next one need not
    /// look up every name it knew (see [`LastListing`]).
    last: LastListing,
    /// Listing, or watching for new files.
    discovery: Discovery,
    /// How `seen` and `backlog` name files: without the folder in front.
    names: Names,
    /// Every file discovered and not yet aged out, so that a file is read once even if it
    /// stays in the folder.
    seen: SeenFiles,
    /// Discovered, waiting to be admitted into an epoch.
    backlog: VecDeque<Listed>,
    /// Bytes of the files admitted into the epoch being read, for `max_bytes_per_trigger`.
    admitted_bytes: u64,
    /// Admitted into the current epoch, not yet opened.
    admitted: VecDeque<PathBuf>,
    current: Option<OpenFile>,
    /// The files to read after the current one, already being decoded: the rest of the
    /// epoch's admitted files, then the first of the backlog. One fewer than the pool's
    /// threads, so that every file decoding on a thread has one.
    next: VecDeque<(PathBuf, Result<OpenFile>)>,
    /// A file a checkpoint left part-read, and the rows of it already read.
    resume: Option<(PathBuf, u64)>,
    /// Files read to the end since the last snapshot.
    finished: Vec<PathBuf>,
    /// With `clean_source`: the finished files waiting for their epoch to commit.
    cleanup: Option<Arc<Mutex<Cleanup>>>,
    /// Files read to the end, ever.
    done: u64,
    /// Malformed rows met since progress last asked.
    malformed: u64,
    /// Malformed rows met, ever (kept in the checkpoint, shown by `weir checkpoints`).
    malformed_total: u64,
    /// Malformed rows not yet handed to the bad-records sink, with their file.
    bad: Vec<(Arc<str>, BadRecord)>,
    /// The threads that decode files larger than [`DECODED_IN_PLACE`]. Last, so that it is
    /// dropped after the files above: their decoders stop at their next send, and the pool
    /// waits for its threads.
    pool: DecoderPool,
}

/// Rows decoded ahead, per file. `decode_threads` files decode at once (the one being read
/// and those after it), each at most this far ahead: far enough that the next file's decoder
/// keeps another core busy while the current one is read, bounded so that memory does not
/// follow the size of the input (a few MB per file for notebook-shaped rows).
const ROWS_DECODED_AHEAD: usize = 256 * 1024;

/// ... and at most this many batches ahead (found by the fuzzer, which reads tiny files
/// with batch sizes of 1 to 4 and ran at 20 files a second).
const MAX_BATCHES_AHEAD: usize = 256;

/// A discovered file, as listed. Its name (see [`Names`]) is the one allocation the seen
/// set holds too: at a million files waiting, a second copy of every name is some 30 MB.
struct Listed {
    name: Arc<OsStr>,
    modified: Modified,
    bytes: u64,
}

/// How often an idle source looks at its watch's events: new files wait at most this long
/// to be seen, where a listing waits for the runtime's poll (100 ms).
const WATCHED_POLL: Duration = Duration::from_millis(10);

/// A folder's modification time, read just before it was listed. Creating, removing or
/// renaming a file in a folder changes it, so a listing source that finds it unchanged need
/// not list again; the folder is still listed every `full_listing_interval`.
struct FolderStamp {
    modified: SystemTime,
    /// Read at least [`TIMESTAMP_GRANULARITY`] after the folder last changed. File systems
    /// stamp changes with a coarse clock: a change made just after the read could carry
    /// the same time, so an earlier read says nothing about what came after it.
    settled: bool,
    listed: Instant,
}

/// The hidden names a listing source keeps an eye on between listings. Each costs a look
/// (`stat`) of its likely final names when the folder changes.
const BEING_WRITTEN_MAX: usize = 64;

/// Endings a writer gives a file while writing it, besides a leading `.` or `_`: `.a.csv.tmp`
/// is taken to become `a.csv`.
const WRITING_SUFFIXES: [&str; 4] = [".tmp", ".temp", ".part", ".inprogress"];

/// More than the coarsest clock Linux file systems stamp changes with (a jiffy, 1 to 10 ms).
const TIMESTAMP_GRANULARITY: Duration = Duration::from_millis(50);

/// Files up to this size are decoded on the source's own thread when opened, in one go;
/// larger ones on a thread of the pool, ahead of the reader. For small files, starting a
/// thread and a channel costs more than the decoding.
const DECODED_IN_PLACE: u64 = 64 * 1024;

/// A file's decoded batches: from its decoder thread, or all decoded already.
enum Batches {
    Thread(Receiver<Result<Option<Decoded>>>),
    Ready(VecDeque<Result<Option<Decoded>>>),
}

impl Batches {
    /// The next result, or `None` if the decoder stopped before saying the file ended.
    fn recv(&mut self) -> Option<Result<Option<Decoded>>> {
        match self {
            Batches::Thread(receiver) => receiver.recv().ok(),
            Batches::Ready(ready) => ready.pop_front(),
        }
    }
}

struct OpenFile {
    path: PathBuf,
    /// What the file's decoder produced, in order, then `Ok(None)` at the end.
    batches: Batches,
    /// Records read from this file so far, kept or not (including those a previous run
    /// had read, when resuming).
    rows: u64,
    /// Malformed rows met in this file.
    malformed: u64,
}

/// State keys: `f` + path for a finished file; `c` for the file being read, whose value is the
/// records read (8 bytes, big-endian) and the path; `m` for the malformed rows met, ever.
/// Finished files are written once, in the epoch they finish, so a checkpoint's size does
/// not grow with the number of files.
const FINISHED: u8 = b'f';
const CURRENT: &[u8] = b"c";
const MALFORMED: &[u8] = b"m";
const DONE: &[u8] = b"n";
const AGES: &[u8] = b"a";

fn finished_key(path: &Path) -> Vec<u8> {
    let mut key = vec![FINISHED];
    key.extend_from_slice(path.as_os_str().as_bytes());
    key
}

impl CsvSource {
    /// A path to look at: not hidden, and not discovered before.
    fn unseen(&self, path: &Path) -> bool {
        !is_hidden(path) && !self.seen.contains(&self.names.name(path))
    }

    /// The names in `dir` that are not hidden and not seen before: the folder's directory
    /// entries read into one buffer, each name checked where it lies (against the last
    /// listing's order first, under `watch = false`). `read_dir` would allocate a path per
    /// entry, which at 100,000 files was half the cost of a listing on top of the kernel's
    /// (W10, where each file dropped costs one listing).
    fn list_folder(&mut self, dir: &Path) -> Result<Vec<Arc<OsStr>>> {
        use rustix::fs::{openat, Mode, OFlags, RawDir, CWD};
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let folder = match openat(CWD, dir, flags, Mode::empty()) {
            Ok(folder) => folder,
            // A folder that does not exist yet has no files yet; bounded runs were refused
            // in check_bounded_input.
            Err(rustix::io::Errno::NOENT) => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("cannot list", dir, e.into())),
        };
        // Room for a few hundred entries a system call; any one name (at most 255 bytes)
        // fits, so the buffer never has to grow.
        let mut buffer = Vec::with_capacity(64 << 10);
        let mut entries = RawDir::new(&folder, buffer.spare_capacity_mut());
        let mut files = Vec::new();
        // Only a listing source lists often enough for the last listing's order to pay.
        let listing = matches!(self.discovery, Discovery::Listing);
        let mut being_written = Vec::new();
        if listing {
            self.last.start();
        }
        while let Some(entry) = entries.next() {
            let entry = entry.map_err(|e| Error::io("cannot list", dir, e.into()))?;
            // A folder's paths are `dir.join(name)` and Names takes the folder off again:
            // the name the seen set keeps is the entry's own.
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if !is_hidden_name(name) {
                let bytes = name.as_bytes();
                if (listing && self.last.known(bytes)) || self.seen.contains(name) {
                    if listing {
                        self.last.seen(bytes);
                    }
                } else {
                    files.push(Arc::from(name));
                }
            } else if listing
                && being_written.len() < BEING_WRITTEN_MAX
                && matches!(name.as_bytes(), [b'.' | b'_', _, ..])
            {
                // Kept whether new or not: a file whose writer renames it between this
                // listing and the next is found by name, without waiting for the next.
                being_written.push(Arc::from(name));
            }
        }
        self.being_written = being_written;
        if listing {
            self.last.finish();
        }
        Ok(files)
    }

    /// Under `watch = false`, whether the folder is as it was when last listed, so that this
    /// look need not list it: its modification time is the same, that time was settled
    /// when read, and the last listing is younger than `full_listing_interval`. Otherwise
    /// takes the folder's stamp for the listing that follows.
    fn folder_unchanged(&mut self) -> bool {
        let (Discovery::Listing, Location::Folder(dir)) =
            (&self.discovery, &self.settings.location)
        else {
            return false;
        };
        let before = SystemTime::now();
        let Ok(modified) = fs::metadata(dir).and_then(|m| m.modified()) else {
            self.stamp = None;
            return false;
        };
        let interval = self.settings.full_listing_interval;
        let unchanged = self.stamp.as_ref().is_some_and(|stamp| {
            stamp.settled && stamp.modified == modified && stamp.listed.elapsed() < interval
        });
        if !unchanged {
            let settled = before
                .duration_since(modified)
                .is_ok_and(|quiet| quiet > TIMESTAMP_GRANULARITY);
            self.stamp = Some(FolderStamp {
                modified,
                settled,
                listed: Instant::now(),
            });
        }
        unchanged
    }

    /// The names of the files in the source's folder or glob that are not hidden and not
    /// seen before. Each becomes the one shared allocation the backlog and the seen set keep
    /// as soon as it is listed: at a million files, holding the listing's own paths until
    /// the end would be some 80 MB more. A name seen before costs a lookup, nothing kept.
    fn list(&mut self) -> Result<Vec<Arc<OsStr>>> {
        let new = |path: &Path| self.unseen(path);
        let name = |path: &Path| Arc::from(&*self.names.name(path));
        match &self.settings.location {
            Location::Folder(dir) => {
                let dir = dir.clone();
                self.list_folder(&dir)
            }
            Location::Glob(pattern) => {
                let paths = glob::glob(pattern)
                    .map_err(|e| Error::Internal(format!("glob {pattern} was validated: {e}")))?;
                let paths = paths.filter_map(|p| p.ok()).filter(|p| new(p));
                Ok(paths.map(|p| name(&p)).collect())
            }
        }
    }

    /// Under `watch = false`, when the folder changed: the files that hidden names of the last
    /// listing have become, found by name (`.a.csv` or `_a.csv`, with or without an ending
    /// of [`WRITING_SUFFIXES`], becomes `a.csv`), so that a file renamed into place is
    /// picked up without waiting for a listing of the whole folder. `None` when none is
    /// found; then the folder is listed. When some are, the next look lists it anyway: the
    /// change may have brought other files too.
    ///
    /// At 100,000 files a listing takes 40 to 50 ms here. A poll that lands while a writer
    /// is writing its hidden file lists the folder without the file; without this, the
    /// rename would wait for a second listing.
    fn renamed_into_place(&mut self) -> Option<Vec<Arc<OsStr>>> {
        let (Discovery::Listing, Location::Folder(dir)) =
            (&self.discovery, &self.settings.location)
        else {
            return None;
        };
        let mut found: Vec<Arc<OsStr>> = Vec::new();
        self.being_written.retain(|hidden| {
            let hidden = hidden.as_bytes();
            let bare = &hidden[1..];
            let stems = WRITING_SUFFIXES
                .iter()
                .filter_map(|s| bare.strip_suffix(s.as_bytes()));
            let renamed = std::iter::once(bare).chain(stems).find(|name| {
                let name = OsStr::from_bytes(name);
                !name.is_empty()
                    && !is_hidden_name(name)
                    && !self.seen.contains(name)
                    && !found.iter().any(|f| **f == *name)
                    && fs::metadata(dir.join(name)).is_ok_and(|m| m.is_file())
            });
            if let Some(name) = renamed {
                found.push(Arc::from(OsStr::from_bytes(name)));
            }
            renamed.is_none()
        });
        if found.is_empty() {
            return None;
        }
        self.stamp = None;
        Some(found)
    }

    /// Opens `path` and starts decoding it on a thread of the pool. Decoding runs ahead of
    /// the reader by at most [`ROWS_DECODED_AHEAD`] rows. A file that cannot be opened stops
    /// the run in failfast mode; otherwise it is refused as one bad record and skipped, as is
    /// a file deleted since it was listed, in every mode.
    fn open(&mut self, path: &Path) -> Result<OpenFile> {
        // The moment a file is picked up: W10 measures discovery latency from this line.
        tracing::debug!(file = %path.display(), "reading");
        let skip = match self.resume.take() {
            Some((resumed, rows)) if resumed == path => rows,
            other => {
                self.resume = other;
                0
            }
        };
        let s = &self.settings;
        // The channel allocates all its slots up front: with a small batch_size, 256K rows
        // ahead would be 256K slots (tens of MB, and milliseconds, for every file).
        let slots = (ROWS_DECODED_AHEAD / s.batch_size.max(1)).clamp(2, MAX_BATCHES_AHEAD);
        let (send, batches) = sync_channel(slots);
        let mut open = OpenFile {
            path: path.to_path_buf(),
            batches: Batches::Thread(batches),
            rows: 0,
            malformed: 0,
        };
        let mut decoder = match FileDecoder::open(path, s.clone(), skip) {
            Ok(decoder) => decoder,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                tracing::warn!(file = %path.display(), "deleted before it could be read; skipped");
                let _ = send.send(Ok(None));
                return Ok(open);
            }
            Err(e) if s.mode == MalformedMode::FailFast => {
                return Err(Error::io("cannot open", path, e));
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot be opened; skipped");
                let _ = send.send(Ok(Some(Decoded::refused(format!("cannot open: {e}")))));
                let _ = send.send(Ok(None));
                return Ok(open);
            }
        };
        if decoder.size() <= DECODED_IN_PLACE {
            // A thread costs more than the file: decode it here, now.
            let mut ready = VecDeque::new();
            loop {
                let next = decoder.next();
                let last = !matches!(next, Ok(Some(_)));
                ready.push_back(next);
                if last {
                    break;
                }
            }
            open.batches = Batches::Ready(ready);
            return Ok(open);
        }
        self.pool
            .run(Box::new(move || loop {
                let next = decoder.next();
                let last = !matches!(next, Ok(Some(_)));
                // The source stopped or moved on: nobody wants the rest. The end is said
                // explicitly (`Ok(None)`): a channel that just closes means the job died.
                if send.send(next).is_err() || last {
                    return;
                }
            }))
            .map_err(|e| Error::io("cannot start a decoder thread for", path, e))?;
        Ok(open)
    }

    /// The rows of the batch [`Self::next_decoded`] would give next, when that batch is
    /// decoded already (a small file's, decoded in place); `None` when it would have to wait
    /// for a decoder thread, or the input admitted ends, or an error comes first.
    fn peek_rows(&self) -> Option<usize> {
        // The files decoding ahead that are the epoch's next ones, in order.
        let after = (self.next.iter().zip(&self.admitted))
            .take_while(|((path, _), admitted)| path == *admitted)
            .map_while(|((_, open), _)| open.as_ref().ok());
        for open in self.current.iter().chain(after) {
            let Batches::Ready(ready) = &open.batches else {
                return None;
            };
            for item in ready {
                match item {
                    Ok(Some(decoded)) => match decoded.batch.as_ref().map_or(0, |b| b.num_rows()) {
                        0 => continue,
                        n => return Some(n),
                    },
                    // This file ends here: the next one follows.
                    Ok(None) => break,
                    Err(_) => return None,
                }
            }
        }
        None
    }

    /// The next batch of the files admitted, as decoded, or `None` when they are all read.
    fn next_decoded(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            if let Some(open) = &mut self.current {
                match open.batches.recv() {
                    Some(Ok(Some(decoded))) => {
                        open.rows += decoded.records;
                        if !decoded.bad.is_empty() {
                            let count = decoded.bad.len() as u64;
                            open.malformed += count;
                            self.malformed += count;
                            self.malformed_total += count;
                            if self.settings.bad_records_path.is_some() {
                                let file: Arc<str> = open.path.display().to_string().into();
                                self.bad
                                    .extend(decoded.bad.into_iter().map(|b| (file.clone(), b)));
                            }
                        }
                        match decoded.batch {
                            Some(batch) if batch.num_rows() > 0 => return Ok(Some(batch)),
                            _ => continue,
                        }
                    }
                    Some(Err(e)) => return Err(e),
                    Some(Ok(None)) => {
                        if let Some(mut open) = self.current.take() {
                            if open.malformed > 0 {
                                tracing::warn!(
                                    file = %open.path.display(),
                                    rows = open.malformed,
                                    mode = self.settings.mode.name(),
                                    "malformed rows"
                                );
                            }
                            self.finished.push(std::mem::take(&mut open.path));
                            self.done += 1;
                        }
                    }
                    None => {
                        // Never treat this as the end of the file: rows would be lost.
                        return Err(Error::Internal(format!(
                            "the decoder of {} stopped before the end of the file",
                            open.path.display()
                        )));
                    }
                }
            }
            match self.open_next()? {
                Some(open) => self.current = Some(open),
                None => return Ok(None),
            }
        }
    }

    /// Opens the next admitted file: the one decoding ahead if it is that one. Then starts
    /// decoding the files after it, so that `decode_threads` files decode at once. Files
    /// decoded ahead but not read next (the backlog changed) are dropped, and their jobs end.
    fn open_next(&mut self) -> Result<Option<OpenFile>> {
        let Some(path) = self.admitted.pop_front() else {
            return Ok(None);
        };
        let open = match self.next.pop_front() {
            Some((ahead, open)) if ahead == path => open?,
            _ => {
                self.next.clear();
                self.open(&path)?
            }
        };
        // The next files to read: admitted into this epoch, then the first of the backlog,
        // which the next epoch admits first (a guess that is checked when each is opened).
        while self.next.len() + 1 < self.pool.size() {
            let i = self.next.len();
            let after = match self.admitted.get(i) {
                Some(path) => path.clone(),
                None => match self.backlog.get(i - self.admitted.len()) {
                    Some(listed) => self.names.path(&listed.name),
                    None => break,
                },
            };
            let ahead = self.open(&after);
            self.next.push_back((after, ahead));
        }
        Ok(Some(open))
    }
}

/// Writers drop a file under a hidden name and rename it into place when it is complete.
fn is_hidden(path: &Path) -> bool {
    path.file_name().is_none_or(is_hidden_name)
}

/// Whether a file's name is hidden (see [`is_hidden`]); a name that is not UTF-8 is too.
fn is_hidden_name(name: &OsStr) -> bool {
    name.to_str()
        .is_none_or(|n| n.starts_with('.') || n.starts_with('_'))
}

impl Source for CsvSource {
    fn schema(&self) -> SchemaRef {
        self.settings.schema.clone()
    }

    fn check_bounded_input(&self) -> Result<()> {
        match &self.settings.location {
            Location::Folder(dir) if !dir.exists() => Err(Error::Input(format!(
                "{}: the folder does not exist (a bounded trigger reads what is there at \
                 start: create the folder, or use the continuous trigger to wait for it)",
                dir.display()
            ))),
            _ => Ok(()),
        }
    }

    fn discover(&mut self) -> Result<()> {
        let s = &self.settings;
        let listed = match self.discovery.changes(&s.location, s.full_listing_interval) {
            Changes::Everything if self.folder_unchanged() => return Ok(()),
            Changes::Everything => match self.renamed_into_place() {
                Some(renamed) => renamed,
                None => self.list()?,
            },
            Changes::Paths(paths) => (paths.into_iter())
                .filter(|p| self.unseen(p))
                .map(|p| Arc::from(&*self.names.name(&p)))
                .collect(),
        };
        // Sized once: doubling would hold the old buffer beside the new at a million files.
        let mut fresh: Vec<Listed> = Vec::with_capacity(listed.len());
        for name in listed {
            let path = self.names.path(&name);
            let meta = match fs::metadata(&path) {
                Ok(meta) => meta,
                // Gone between listing and looking: it was never there for us.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("cannot inspect", &path, e)),
            };
            let modified = modified(&meta);
            if !meta.is_file() || !self.seen.is_new(&name, modified) {
                continue;
            }
            fresh.push(Listed {
                name,
                modified,
                bytes: meta.len(),
            });
        }
        // Paths are unique, so an unstable sort orders alike, in place, where a stable one
        // takes a buffer of half the listing.
        fresh.sort_unstable_by(|a, b| (a.modified, &a.name).cmp(&(b.modified, &b.name)));
        if self.settings.latest_first {
            fresh.reverse();
        }
        // One allocation of the table, not a doubling per power of two with the old table
        // beside the new at each.
        self.seen.reserve(fresh.len());
        for listed in &fresh {
            self.seen
                .insert_shared(listed.name.clone(), listed.modified);
        }
        // An empty backlog takes the listing's buffer as it is, not a copy of it.
        match self.backlog.is_empty() {
            true => self.backlog = VecDeque::from(fresh),
            false => self.backlog.extend(fresh),
        }
        Ok(())
    }

    fn admit(&mut self, quota: Quota) -> usize {
        let files = quota
            .allows(self.settings.max_files_per_trigger)
            .min(self.backlog.len());
        let (bytes_limit, first_of_epoch) = match quota {
            Quota::All => (None, true),
            Quota::PerTrigger { already } => (self.settings.max_bytes_per_trigger, already == 0),
        };
        if first_of_epoch {
            self.admitted_bytes = 0;
        }
        let mut n = 0;
        while let Some(listed) = self.backlog.get(n).filter(|_| n < files) {
            // An epoch takes at least one file, however large, as Spark's does.
            let over = bytes_limit.is_some_and(|limit| self.admitted_bytes + listed.bytes > limit);
            if over && !(first_of_epoch && n == 0) {
                break;
            }
            self.admitted_bytes += listed.bytes;
            n += 1;
        }
        for listed in self.backlog.drain(..n) {
            self.seen.admitted(listed.modified);
            self.admitted.push_back(self.names.path(&listed.name));
        }
        n
    }

    fn backlog(&self) -> usize {
        self.backlog.len()
    }

    fn snapshot_at(&mut self, epoch: Epoch) -> Result<StageSnapshot> {
        if let Some(cleanup) = &self.cleanup {
            finished_at(cleanup, epoch, self.finished.clone())?;
        }
        self.snapshot()
    }

    fn idle_poll(&self, default: Duration) -> Duration {
        match (&self.discovery, &self.settings.location) {
            // A look is a read of the event queue: cheap enough to take often.
            (Discovery::Watching(_), _) => default.min(WATCHED_POLL),
            // ... or, listing a folder, mostly a look at its modification time.
            (Discovery::Listing, Location::Folder(_)) => default.min(WATCHED_POLL),
            _ => default,
        }
    }

    fn input_cleaner(&mut self) -> Option<Box<dyn InputCleaner>> {
        let cleanup = self.cleanup.as_ref()?;
        Some(Box::new(Cleaner(cleanup.clone())))
    }

    fn snapshot(&mut self) -> Result<StageSnapshot> {
        let mut snapshot = StageSnapshot::default();
        for path in self.finished.drain(..) {
            let modified = self.seen.finished(&self.names.name(&path));
            snapshot
                .delta
                .put(finished_key(&path), modified.to_be_bytes().to_vec());
        }
        if let Some(max_age) = self.settings.max_file_age {
            let forgotten = self.seen.age_out(max_age);
            for name in &forgotten {
                snapshot.delta.delete(finished_key(&self.names.path(name)));
            }
            self.last.forget(&forgotten);
        }
        if let (Some(newest), Some(ignore_before)) = self.seen.ages() {
            let mut value = newest.to_be_bytes().to_vec();
            value.extend_from_slice(&ignore_before.to_be_bytes());
            snapshot.delta.put(AGES, value);
        }
        snapshot.delta.put(DONE, self.done.to_be_bytes().to_vec());
        // A file opened but not yet read from counts as not started. A file a checkpoint
        // left part-read and not yet reopened keeps its position.
        let current = match (&self.current, &self.resume) {
            (Some(open), _) if open.rows > 0 => Some((&open.path, open.rows)),
            (_, Some((path, rows))) => Some((path, *rows)),
            _ => None,
        };
        snapshot.detail = format!(
            "{} file(s) done, {} malformed row(s)",
            self.done, self.malformed_total
        );
        if self.malformed_total > 0 {
            snapshot
                .delta
                .put(MALFORMED, self.malformed_total.to_be_bytes().to_vec());
        }
        match current {
            Some((path, rows)) => {
                let mut value = rows.to_be_bytes().to_vec();
                value.extend_from_slice(path.as_os_str().as_bytes());
                snapshot.delta.put(CURRENT, value);
                snapshot.detail += &format!("; reading {} at row {rows}", path.display());
            }
            None => snapshot.delta.delete(CURRENT),
        }
        snapshot.state_keys = self.seen.remembered() as u64 + u64::from(current.is_some());
        snapshot.state_bytes = self.seen.path_bytes() + 8 * self.seen.remembered() as u64;
        Ok(snapshot)
    }

    fn restore(&mut self, state: StateEntries) -> Result<()> {
        let mut restored_finished = Vec::new();
        let mut done = None;
        for (key, value) in state {
            if key.first() == Some(&FINISHED) {
                let path = PathBuf::from(OsStr::from_bytes(&key[1..]));
                // Checkpoints before `max_file_age` hold no time: such files are kept.
                let modified = <[u8; 8]>::try_from(&value[..]).ok().map(i64::from_be_bytes);
                self.seen
                    .restore_finished(&self.names.name(&path), modified);
                // Finished in a committed checkpoint, whose sinks finish its commit as they
                // restore: cleaned at this run's first commit, if a crash left it in place.
                if self.cleanup.is_some() && path.exists() {
                    restored_finished.push(path);
                }
                self.done += 1;
            } else if key == DONE && value.len() == 8 {
                done = <[u8; 8]>::try_from(&value[..]).ok().map(u64::from_be_bytes);
            } else if key == AGES && value.len() == 16 {
                let (newest, ignore_before) = value.split_at(8);
                let read = |b: &[u8]| <[u8; 8]>::try_from(b).ok().map(i64::from_be_bytes);
                self.seen.restore_ages(read(newest), read(ignore_before));
            } else if key == MALFORMED && value.len() == 8 {
                self.malformed_total = u64::from_be_bytes(value[..].try_into().unwrap_or_default());
            } else if key == CURRENT && value.len() >= 8 {
                let (rows, path) = value.split_at(8);
                let rows = u64::from_be_bytes(rows.try_into().unwrap_or_default());
                let path = PathBuf::from(OsStr::from_bytes(path));
                // It is read first, from where the checkpoint left it.
                let modified = fs::metadata(&path).map_or(AGELESS, |m| modified(&m));
                self.seen.insert(&self.names.name(&path), modified);
                self.admitted.push_front(path.clone());
                self.resume = Some((path, rows));
            } else {
                return Err(Error::Internal(format!(
                    "unknown csv source state key {key:?}"
                )));
            }
        }
        // Files forgotten by age are no longer keys; the count of every file done is.
        self.done = done.unwrap_or(self.done);
        if let Some(cleanup) = &self.cleanup {
            finished_at(cleanup, Epoch(0), restored_finished)?;
        }
        Ok(())
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        // Small files' batches are joined up to `batch_size` rows: a million 10-row files
        // should cost the stages after the source a few hundred batches, not a million.
        // Only what is already admitted is joined, so nothing waits for more input.
        let mut held = Vec::new();
        let mut rows = 0;
        while rows < self.settings.batch_size {
            // Another batch joins only if it is decoded already and fits, so that no batch
            // exceeds batch_size and no rows wait, unsent, behind the source's position.
            let fits = self
                .peek_rows()
                .is_some_and(|n| rows + n <= self.settings.batch_size);
            if !held.is_empty() && !fits {
                break;
            }
            let Some(batch) = self.next_decoded()? else {
                break;
            };
            rows += batch.num_rows();
            held.push(batch);
        }
        match held.len() {
            0 => Ok(None),
            1 => Ok(held.pop()),
            _ => arrow_select::concat::concat_batches(&self.settings.schema, &held)
                .map(Some)
                .map_err(|e| Error::arrow("joining small files' rows", e)),
        }
    }

    fn take_malformed_rows(&mut self) -> u64 {
        std::mem::take(&mut self.malformed)
    }

    fn take_bad_records(&mut self) -> Result<Option<RecordBatch>> {
        if self.bad.is_empty() {
            return Ok(None);
        }
        let bad = std::mem::take(&mut self.bad);
        bad_records_batch(bad.iter().map(|(p, b)| (&**p, b))).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int32Type;
    use std::fs::File;

    fn config(dir: &Path) -> CsvSourceConfig {
        CsvSourceConfig {
            path: dir.display().to_string(),
            schema: "File STRING, Shop STRING, Sale_Count INT".into(),
            header: Some(true),
            sep: Some(";".into()),
            ..CsvSourceConfig::default()
        }
    }

    fn read_all(source: &mut CsvSource) -> Vec<i32> {
        let mut counts: Vec<i32> = Vec::new();
        while let Some(batch) = source.next_batch().unwrap() {
            counts.extend(batch.column(2).as_primitive::<Int32Type>().values().iter());
        }
        counts
    }

    /// A new source restored from `snapshot` (as the only checkpoint), then discovering.
    fn restored(config: CsvSourceConfig, snapshot: StageSnapshot) -> CsvSource {
        let state = snapshot.delta.into_entries();
        let mut source = config.validate().unwrap().build();
        source.restore(state).unwrap();
        source.discover().unwrap();
        source
    }

    /// A source with every file of its folder discovered and admitted.
    fn admitted_all(config: CsvSourceConfig) -> CsvSource {
        let mut source = config.validate().unwrap().build();
        source.discover().unwrap();
        source.admit(Quota::All);
        source
    }

    #[test]
    fn reads_each_new_file_once_and_skips_hidden_ones() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("a.csv"),
            "File;Shop;Sale_Count\na;S1;1\na;S2;2\n",
        )
        .unwrap();
        fs::write(
            dir.path().join(".b.csv.tmp"),
            "File;Shop;Sale_Count\nb;S1;100\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("_c.csv"),
            "File;Shop;Sale_Count\nc;S1;100\n",
        )
        .unwrap();
        let mut source = config(dir.path()).validate().unwrap().build();
        source.discover().unwrap();
        assert_eq!(source.admit(Quota::PerTrigger { already: 0 }), 1);
        assert_eq!(read_all(&mut source), vec![1, 2]);

        fs::write(dir.path().join("d.csv"), "File;Shop;Sale_Count\nd;S3;7\n").unwrap();
        source.discover().unwrap();
        assert_eq!(
            source.admit(Quota::PerTrigger { already: 0 }),
            1,
            "a.csv must not be admitted twice"
        );
        assert_eq!(read_all(&mut source), vec![7]);
    }

    #[test]
    fn a_folder_is_listed_as_its_files_paths_with_or_without_a_trailing_slash() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.csv"), "File;Shop;Sale_Count\na;S1;1\n").unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        // Not UTF-8: hidden, as is every name that is not text.
        fs::write(dir.path().join(OsStr::from_bytes(b"b\xff.csv")), "x").unwrap();
        for folder in [
            dir.path().display().to_string(),
            format!("{}/", dir.path().display()),
        ] {
            let source = CsvSourceConfig {
                path: folder,
                ..config(dir.path())
            };
            let mut source = source.validate().unwrap().build();
            let Location::Folder(listed_dir) = source.settings.location.clone() else {
                panic!("a folder source");
            };
            let mut names = source.list().unwrap();
            names.sort();
            assert_eq!(
                names,
                [Arc::from(OsStr::new("a.csv")), Arc::from(OsStr::new("sub"))]
            );
            let path = source.names.path(&names[0]);
            assert_eq!(path, listed_dir.join("a.csv"));
            assert_eq!(source.names.name(&path), OsStr::new("a.csv"));
            // The subfolder is listed but is not a file: only a.csv is discovered.
            source.discover().unwrap();
            assert_eq!(source.admit(Quota::All), 1);
            assert_eq!(read_all(&mut source), vec![1]);
        }
    }

    #[test]
    fn admits_at_most_max_files_per_trigger() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..5 {
            fs::write(
                dir.path().join(format!("{i}.csv")),
                format!("File;Shop;Sale_Count\nf;S;{i}\n"),
            )
            .unwrap();
        }
        let mut source = CsvSourceConfig {
            max_files_per_trigger: Some(2),
            ..config(dir.path())
        }
        .validate()
        .unwrap()
        .build();
        source.discover().unwrap();
        assert_eq!(
            (
                source.admit(Quota::PerTrigger { already: 0 }),
                source.backlog()
            ),
            (2, 3)
        );
        assert_eq!(read_all(&mut source).len(), 2);
        assert_eq!(source.admit(Quota::All), 3);
    }

    #[test]
    fn a_missing_folder_has_no_files_yet() {
        let dir = tempfile::tempdir().unwrap();
        let mut source = config(&dir.path().join("later"))
            .validate()
            .unwrap()
            .build();
        source.discover().unwrap();
        assert_eq!(source.backlog(), 0);
    }

    /// Every row the source emits, as text: `File|Shop|Sale_Count[|corrupt]`, `-` for null.
    fn rows_of(source: &mut CsvSource) -> Vec<String> {
        let mut rows = Vec::new();
        while let Some(batch) = source.next_batch().unwrap() {
            for r in 0..batch.num_rows() {
                let cells: Vec<String> = batch
                    .columns()
                    .iter()
                    .map(|c| match c.is_null(r) {
                        true => "-".into(),
                        false => arrow_cast::display::array_value_to_string(c, r).unwrap(),
                    })
                    .collect();
                rows.push(cells.join("|"));
            }
        }
        rows
    }

    fn with_mode(dir: &Path, mode: &str) -> CsvSourceConfig {
        CsvSourceConfig {
            mode: Some(mode.into()),
            bad_records_path: Some("bad".into()),
            ..config(dir)
        }
    }

    /// The bad records a source holds, as `line: reason [raw]`.
    fn bad_of(source: &mut CsvSource) -> Vec<String> {
        let Some(batch) = source.take_bad_records().unwrap() else {
            return Vec::new();
        };
        let lines = batch
            .column(1)
            .as_primitive::<arrow_array::types::UInt64Type>();
        (0..batch.num_rows())
            .map(|r| {
                format!(
                    "{}: {} [{}]",
                    lines.value(r),
                    batch.column(2).as_string::<i32>().value(r),
                    batch.column(3).as_string::<i32>().value(r)
                )
            })
            .collect()
    }

    const MIXED: &str = "File;Shop;Sale_Count\nf;a;1\nf;b;12x\nf;c\nf;d;4;extra\n\"multi\nline\";e;99999999999\nf;g;7\n";

    #[test]
    fn failfast_stops_at_the_first_bad_row_with_its_path_and_line() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("bad.csv"), MIXED).unwrap();
        let mut source = admitted_all(with_mode(dir.path(), "FAILFAST"));
        let err = source.next_batch().unwrap_err().to_string();
        let expected = format!(
            "{}:3: field Sale_Count: \"12x\" is not an INT",
            dir.path().join("bad.csv").display()
        );
        assert_eq!(err, expected);
    }

    #[test]
    fn permissive_keeps_bad_rows_with_nulls_and_the_raw_line() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("bad.csv"), MIXED).unwrap();
        let mut source = admitted_all(CsvSourceConfig {
            corrupt_record_column: Some("_corrupt_record".into()),
            ..with_mode(dir.path(), "permissive")
        });
        assert_eq!(
            rows_of(&mut source),
            [
                "f|a|1|-",
                "f|b|-|f;b;12x",
                "f|c|-|f;c",
                "f|d|4|f;d;4;extra",
                "multi\nline|e|-|\"multi\nline\";e;99999999999",
                "f|g|7|-",
            ]
        );
        assert_eq!(source.take_malformed_rows(), 4);
        assert_eq!(
            bad_of(&mut source),
            [
                "3: field Sale_Count: \"12x\" is not an INT [f;b;12x]",
                "4: expected 3 fields, found 2 [f;c]",
                "5: expected 3 fields, found 4 [f;d;4;extra]",
                "6: field Sale_Count: 99999999999 is out of range for INT [\"multi\nline\";e;99999999999]",
            ],
            "lines are the file's lines: the quoted newline counts"
        );
    }

    #[test]
    fn dropmalformed_drops_and_counts_and_later_batches_keep_their_lines() {
        let dir = tempfile::tempdir().unwrap();
        // Bad rows in the second and fourth batches of two rows: line numbers after a
        // clean batch must still be the file's.
        let text: &[u8] = b"File;Shop;Sale_Count\nf;a;1\nf;a;2\nf;a;3\nf;a;x\nf;a;5\nf;a;6\nf;a;7\n\xff;a;8\nf;a;9\n";
        fs::write(dir.path().join("bad.csv"), text).unwrap();
        let mut source = admitted_all(CsvSourceConfig {
            batch_size: 2,
            ..with_mode(dir.path(), "dropmalformed")
        });
        assert_eq!(read_all(&mut source), [1, 2, 3, 5, 6, 7, 9]);
        assert_eq!(
            bad_of(&mut source),
            [
                "5: field Sale_Count: \"x\" is not an INT [f;a;x]",
                "9: field File: the bytes are not valid UTF-8 [\u{fffd};a;8]",
            ]
        );
        let snapshot = source.snapshot().unwrap();
        assert!(
            snapshot.detail.contains("2 malformed row(s)"),
            "{}",
            snapshot.detail
        );
    }

    #[test]
    fn a_resumed_file_neither_reemits_nor_recounts_rows_before_its_position() {
        let dir = tempfile::tempdir().unwrap();
        // Batches of two records: [1, x] [3, 4] [y, 6]. The second does not fit beside
        // the first's one row, so the first batch is that row alone.
        let text = "File;Shop;Sale_Count\nf;a;1\nf;a;x\nf;a;3\nf;a;4\nf;a;y\nf;a;6\n";
        fs::write(dir.path().join("bad.csv"), text).unwrap();
        let small = || CsvSourceConfig {
            batch_size: 2,
            ..with_mode(dir.path(), "dropmalformed")
        };
        let mut first = admitted_all(small());
        // The first batch holds records 1 and 2 (x is dropped).
        assert_eq!(first.next_batch().unwrap().unwrap().num_rows(), 1);
        assert_eq!(bad_of(&mut first).len(), 1);
        let mut second = restored(small(), first.snapshot().unwrap());
        assert_eq!(read_all(&mut second), [3, 4, 6]);
        assert_eq!(
            bad_of(&mut second),
            ["6: field Sale_Count: \"y\" is not an INT [f;a;y]"]
        );
        let detail = second.snapshot().unwrap().detail;
        assert!(detail.contains("2 malformed row(s)"), "{detail}");
    }

    #[test]
    fn a_file_deleted_after_listing_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.csv"), "File;Shop;Sale_Count\nf;a;1\n").unwrap();
        fs::write(dir.path().join("b.csv"), "File;Shop;Sale_Count\nf;b;2\n").unwrap();
        let mut source = config(dir.path()).validate().unwrap().build();
        source.discover().unwrap();
        source.admit(Quota::All);
        fs::remove_file(dir.path().join("a.csv")).unwrap();
        assert_eq!(read_all(&mut source), [2]);
    }

    #[test]
    fn modes_and_the_corrupt_column_are_checked() {
        let bad = CsvSourceConfig {
            path: "x".into(),
            schema: "a INT, _c INT".into(),
            mode: Some("lenient".into()),
            corrupt_record_column: Some("_c".into()),
            ..CsvSourceConfig::default()
        };
        let errors: Vec<_> = bad
            .validate()
            .unwrap_err()
            .into_iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            errors,
            [
                "mode: unknown mode \"lenient\" (expected \"permissive\", \"dropmalformed\" or \"failfast\")",
                "corrupt_record_column: column `_c` is in the schema, so it must be a nullable STRING",
            ]
        );
        let failfast = CsvSourceConfig {
            path: "x".into(),
            schema: "a INT".into(),
            mode: Some("failfast".into()),
            corrupt_record_column: Some("_c".into()),
            ..CsvSourceConfig::default()
        };
        let errors = failfast.validate().unwrap_err();
        assert!(
            errors[0]
                .message
                .contains("only applies with mode = \"permissive\""),
            "{errors:?}"
        );
    }

    #[test]
    fn validation_reports_every_bad_option() {
        let bad = CsvSourceConfig {
            path: "x".into(),
            schema: "a INTEGR".into(),
            sep: Some(";;".into()),
            max_files_per_trigger: Some(0),
            ..CsvSourceConfig::default()
        };
        let keys: Vec<_> = bad
            .validate()
            .unwrap_err()
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(keys, vec!["schema", "sep", "max_files_per_trigger"]);
    }

    #[test]
    fn a_glob_reads_only_matching_files() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.csv"), "File;Shop;Sale_Count\na;S;1\n").unwrap();
        fs::write(dir.path().join("b.txt"), "File;Shop;Sale_Count\nb;S;2\n").unwrap();
        let pattern = format!("{}/*.csv", dir.path().display());
        let mut source = admitted_all(CsvSourceConfig {
            path: pattern,
            ..config(dir.path())
        });
        assert_eq!(read_all(&mut source), vec![1]);
    }

    #[test]
    fn quotes_and_escapes_follow_the_options() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("q.csv"),
            "File;Shop;Sale_Count\n'a;b';'it\\'s';5\n",
        )
        .unwrap();
        let mut source = admitted_all(CsvSourceConfig {
            quote: Some("'".into()),
            ..config(dir.path())
        });
        let batch = source.next_batch().unwrap().unwrap();
        assert_eq!(
            batch.column(0).as_string::<i32>().value(0),
            "a;b",
            "the separator inside quotes is data"
        );
        assert_eq!(
            batch.column(1).as_string::<i32>().value(0),
            "it's",
            "the escaped quote is data"
        );
    }

    #[test]
    fn every_ddl_type_reads_its_values_and_empty_is_null() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("t.csv"),
            "2024-01-02T03:04:05Z;2024-01-02;12.34;true;1.5
;;;;
",
        )
        .unwrap();
        let mut source = admitted_all(CsvSourceConfig {
            schema: "ts TIMESTAMP, d DATE, m DECIMAL(6,2), b BOOLEAN, x DOUBLE".into(),
            header: Some(false),
            mode: Some("failfast".into()),
            ..config(dir.path())
        });
        let batch = source.next_batch().unwrap().unwrap();
        assert_eq!(batch.num_rows(), 2);
        let shown = arrow_cast::pretty::pretty_format_batches(&[batch])
            .unwrap()
            .to_string();
        assert!(
            shown.contains("2024-01-02T03:04:05Z | 2024-01-02 | 12.34 | true | 1.5"),
            "{shown}"
        );
        assert!(source.next_batch().unwrap().is_none());
    }

    fn json(dir: &Path, schema: &str, mode: &str) -> CsvSourceConfig {
        CsvSourceConfig {
            format: Format::Json,
            path: dir.display().to_string(),
            schema: schema.into(),
            mode: Some(mode.into()),
            bad_records_path: Some("bad".into()),
            ..CsvSourceConfig::default()
        }
    }

    #[test]
    fn a_json_source_reads_each_type_from_the_json_kinds_spark_takes_for_it() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("t.json"),
            concat!(
                r#"{"ts": "2024-01-02T03:04:05Z", "d": "2024-01-02", "m": 12.34, "b": true, "x": 1.5, "i": 7, "s": "" }"#,
                "\n",
                r#"{"ts": 1700000000, "m": "1.5", "x": "NaN", "i": -9007199254740993, "s": {"k": [1]}}"#,
                "\n",
                r#"{"x": 2, "s": 12.50, "b": null}"#,
                "\n",
                r#"{"i": "5", "b": "true", "x": "1.5", "d": 3, "s": "ok"}"#,
                "\n",
            ),
        )
        .unwrap();
        let mut source = admitted_all(json(
            dir.path(),
            "ts TIMESTAMP, d DATE, m DECIMAL(6,2), b BOOLEAN, x DOUBLE, i BIGINT, s STRING",
            "permissive",
        ));
        let batch = source.next_batch().unwrap().unwrap();
        let shown = arrow_cast::pretty::pretty_format_batches(&[batch])
            .unwrap()
            .to_string();
        let lines: Vec<&str> = shown.lines().skip(3).take(4).collect();
        assert_eq!(
            lines,
            [
                "| 2024-01-02T03:04:05Z | 2024-01-02 | 12.34 | true | 1.5 | 7                 |            |",
                "| 2023-11-14T22:13:20Z |            | 1.50  |      | NaN | -9007199254740993 | {\"k\": [1]} |",
                "|                      |            |       |      | 2.0 |                   | 12.50      |",
                "|                      |            |       |      |     |                   | ok         |",
            ],
            "{shown}"
        );
        assert_eq!(
            bad_of(&mut source),
            [
                "4: field d: 3 is a JSON number, not a DATE [{\"i\": \"5\", \"b\": \"true\", \"x\": \"1.5\", \"d\": 3, \"s\": \"ok\"}]",
            ],
            "one bad record per line, for the first column found wrong"
        );
    }

    #[test]
    fn a_resumed_json_file_skips_the_lines_before_its_position_blank_ones_uncounted() {
        let dir = tempfile::tempdir().unwrap();
        let text = "{\"Sale_Count\": 1}\n\n{\"Sale_Count\": \"x\"}\n{\"Sale_Count\": 3}\n  \n{\"Sale_Count\": 4}\n{\"Sale_Count\": 5\n{\"Sale_Count\": 6}";
        fs::write(dir.path().join("a.json"), text).unwrap();
        let small = || CsvSourceConfig {
            batch_size: 2,
            ..json(
                dir.path(),
                "File STRING, Shop STRING, Sale_Count INT",
                "dropmalformed",
            )
        };
        let mut first = admitted_all(small());
        assert_eq!(first.next_batch().unwrap().unwrap().num_rows(), 1);
        assert_eq!(bad_of(&mut first).len(), 1);
        let mut second = restored(small(), first.snapshot().unwrap());
        assert_eq!(read_all(&mut second), [3, 4, 6]);
        assert_eq!(
            bad_of(&mut second),
            ["7: malformed JSON: the line ends where ',' or '}' after a value was expected [{\"Sale_Count\": 5]"]
        );
    }

    #[test]
    fn csv_options_are_refused_on_a_json_source() {
        let dir = tempfile::tempdir().unwrap();
        let errors = CsvSourceConfig {
            header: Some(true),
            quote: Some("'".into()),
            ..json(dir.path(), "a INT", "permissive")
        }
        .validate()
        .unwrap_err();
        let keys: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            keys,
            [
                "quote: applies to csv sources only (this source is type = \"json\")",
                "header: applies to csv sources only (this source is type = \"json\")",
            ]
        );
    }

    /// Writes `name` into `dir` with one row of count `n`, modified `days_ago`.
    fn file_aged(dir: &Path, name: &str, n: i32, days_ago: u64) {
        let path = dir.join(name);
        fs::write(&path, format!("File;Shop;Sale_Count\n{name};S;{n}\n")).unwrap();
        let when = SystemTime::now() - std::time::Duration::from_secs(days_ago * 86_400);
        let file = fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(when).unwrap();
    }

    #[test]
    fn a_listing_source_reads_a_forgotten_file_made_anew_though_its_last_listing_knew_it() {
        let dir = tempfile::tempdir().unwrap();
        file_aged(dir.path(), "old.csv", 1, 10);
        file_aged(dir.path(), "a.csv", 2, 0);
        let mut source = CsvSourceConfig {
            watch: false,
            max_file_age: Some("1d".into()),
            ..config(dir.path())
        }
        .validate()
        .unwrap()
        .build();
        source.discover().unwrap();
        source.admit(Quota::All);
        assert_eq!(read_all(&mut source), vec![1, 2]);
        // A listing while both are seen: its order knows them.
        file_aged(dir.path(), "b.csv", 3, 0);
        source.discover().unwrap();
        // The snapshot forgets old.csv (ten days older than the newest file admitted).
        source.snapshot().unwrap();
        // Made anew, recent: a new file by Spark's rules, though the last listing knew its
        // name as seen.
        fs::remove_file(dir.path().join("old.csv")).unwrap();
        file_aged(dir.path(), "old.csv", 4, 0);
        source.discover().unwrap();
        source.admit(Quota::All);
        let mut counts = read_all(&mut source);
        counts.sort();
        assert_eq!(counts, vec![3, 4]);
        // And a listing after that knows every name: nothing is read twice.
        file_aged(dir.path(), "c.csv", 5, 0);
        source.discover().unwrap();
        assert_eq!(source.admit(Quota::All), 1);
        assert_eq!(read_all(&mut source), vec![5]);
    }

    #[test]
    fn max_bytes_per_trigger_admits_files_up_to_the_bytes_and_at_least_one() {
        let dir = tempfile::tempdir().unwrap();
        for (i, days_ago) in [(1, 4), (2, 3), (3, 2), (4, 1)] {
            file_aged(dir.path(), &format!("f{i}.csv"), i, days_ago);
        }
        let one = fs::metadata(dir.path().join("f1.csv")).unwrap().len();
        let epochs = |limit: u64| {
            let mut source = CsvSourceConfig {
                max_bytes_per_trigger: Some(bytesize::ByteSize(limit)),
                ..config(dir.path())
            }
            .validate()
            .unwrap()
            .build();
            source.discover().unwrap();
            let mut epochs = Vec::new();
            loop {
                let admitted = source.admit(Quota::PerTrigger { already: 0 });
                if admitted == 0 {
                    break epochs;
                }
                // Within the epoch (the continuous trigger), the limit still holds.
                let more = source.admit(Quota::PerTrigger { already: admitted });
                epochs.push((admitted + more, read_all(&mut source)));
            }
        };
        assert_eq!(
            epochs(2 * one + 1),
            [(2, vec![1, 2]), (2, vec![3, 4])],
            "two files an epoch"
        );
        assert_eq!(
            epochs(one / 2),
            [(1, vec![1]), (1, vec![2]), (1, vec![3]), (1, vec![4])],
            "a file larger than the limit still makes an epoch"
        );
        // `once` takes everything.
        let mut source = CsvSourceConfig {
            max_bytes_per_trigger: Some(bytesize::ByteSize(1)),
            ..config(dir.path())
        }
        .validate()
        .unwrap()
        .build();
        source.discover().unwrap();
        assert_eq!(source.admit(Quota::All), 4);
    }

    #[test]
    fn files_older_than_max_file_age_are_forgotten_once_finished_and_then_ignored() {
        let dir = tempfile::tempdir().unwrap();
        file_aged(dir.path(), "a.csv", 1, 10);
        file_aged(dir.path(), "b.csv", 2, 5);
        file_aged(dir.path(), "c.csv", 3, 0);
        // The first listing reads every file, however old, as Spark's first batch does.
        let mut source = admitted_all(config(dir.path()));
        assert_eq!(read_all(&mut source), [1, 2, 3]);
        let snapshot = source.snapshot().unwrap();
        assert_eq!(
            snapshot.state_keys, 2,
            "a.csv (10 days older than c.csv) is forgotten"
        );
        assert!(
            snapshot.detail.starts_with("3 file(s) done"),
            "{}",
            snapshot.detail
        );
        let state = snapshot.delta.clone().into_entries();
        let names: Vec<&[u8]> = state.iter().map(|(k, _)| &k[..]).collect();
        assert!(names.iter().any(|k| k.ends_with(b"b.csv")), "{names:?}");
        assert!(!names.iter().any(|k| k.ends_with(b"a.csv")), "{names:?}");

        // Restored, a.csv is not read again, nor a new file as old; a new file is.
        file_aged(dir.path(), "old.csv", 4, 8);
        file_aged(dir.path(), "d.csv", 5, 0);
        let mut restored = restored(config(dir.path()), snapshot);
        assert_eq!(restored.admit(Quota::All), 1);
        assert_eq!(read_all(&mut restored), [5]);
        assert!(restored
            .snapshot()
            .unwrap()
            .detail
            .starts_with("4 file(s) done"));

        // A longer age keeps them all.
        let mut kept = admitted_all(CsvSourceConfig {
            max_file_age: Some("30d".into()),
            ..config(dir.path())
        });
        read_all(&mut kept);
        assert_eq!(kept.snapshot().unwrap().state_keys, 5);
    }

    #[test]
    fn latest_first_with_a_limit_never_ages_files_out() {
        let dir = tempfile::tempdir().unwrap();
        file_aged(dir.path(), "a.csv", 1, 10);
        file_aged(dir.path(), "b.csv", 2, 0);
        let newest_first = CsvSourceConfig {
            latest_first: true,
            max_files_per_trigger: Some(1),
            ..config(dir.path())
        };
        let mut source = newest_first.validate().unwrap().build();
        source.discover().unwrap();
        assert_eq!(source.admit(Quota::PerTrigger { already: 0 }), 1);
        assert_eq!(read_all(&mut source), [2]);
        // A restart lists the folder again: the older file, left for later, is still read.
        let mut restored = restored(newest_first, source.snapshot().unwrap());
        assert_eq!(restored.admit(Quota::PerTrigger { already: 0 }), 1);
        assert_eq!(read_all(&mut restored), [1]);
    }

    #[test]
    fn large_files_read_whole_and_in_order_whatever_the_number_of_decode_threads() {
        let dir = tempfile::tempdir().unwrap();
        // Over 64 KiB each, so that every file decodes on a thread of the pool.
        let rows_per_file = 8000;
        let mut want = Vec::new();
        for f in 0..7 {
            let mut text = String::from("File;Shop;Sale_Count\n");
            for r in 0..rows_per_file {
                let n = f * rows_per_file + r;
                text.push_str(&format!("f{f}.csv;Shop_{:03};{n}\n", r % 50));
                want.push(n);
            }
            assert!(text.len() as u64 > DECODED_IN_PLACE);
            fs::write(dir.path().join(format!("f{f}.csv")), text).unwrap();
        }
        for threads in [1, 2, 3, 8] {
            let mut source = admitted_all(CsvSourceConfig {
                decode_threads: Some(threads),
                batch_size: 1000,
                ..config(dir.path())
            });
            assert_eq!(read_all(&mut source), want, "decode_threads = {threads}");
            assert!(source.pool.threads.len() <= threads);
        }
        let refused = CsvSourceConfig {
            decode_threads: Some(0),
            ..config(dir.path())
        };
        let errors = refused.validate().err().unwrap();
        assert!(errors
            .iter()
            .any(|e| e.to_string() == "decode_threads: must be at least 1"));
    }

    #[test]
    fn a_listing_source_lists_again_only_when_the_folder_changed_or_the_full_listing_is_due() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, n: i32| {
            let text = format!("File;Shop;Sale_Count\n{name};S;{n}\n");
            fs::write(dir.path().join(name), text).unwrap();
        };
        write("a.csv", 1);
        // Older than the clock's granularity when first looked at: the stamp is settled.
        std::thread::sleep(TIMESTAMP_GRANULARITY * 2);
        let mut source = CsvSourceConfig {
            watch: false,
            full_listing_interval: Some("300ms".into()),
            ..config(dir.path())
        }
        .validate()
        .unwrap()
        .build();
        source.discover().unwrap();
        assert_eq!(source.backlog(), 1);
        assert_eq!(source.idle_poll(Duration::from_millis(100)), WATCHED_POLL);
        // A new file changes the folder's time: listed at once.
        write("b.csv", 2);
        source.discover().unwrap();
        assert_eq!(source.backlog(), 2);
        std::thread::sleep(TIMESTAMP_GRANULARITY * 2);
        // Settles the stamp. Then a file the folder's time does not show (set back by hand)
        // waits for the full listing: unchanged looks do not list.
        source.discover().unwrap();
        let stamp = fs::metadata(dir.path()).unwrap().modified().unwrap();
        write("c.csv", 3);
        File::open(dir.path()).unwrap().set_modified(stamp).unwrap();
        source.discover().unwrap();
        assert_eq!(source.backlog(), 2, "listed although unchanged");
        std::thread::sleep(Duration::from_millis(350));
        source.discover().unwrap();
        assert_eq!(source.backlog(), 3, "the full listing is the safety net");
        source.admit(Quota::All);
        assert_eq!(read_all(&mut source), vec![1, 2, 3]);
    }

    #[test]
    fn a_listing_source_finds_a_hidden_file_renamed_into_place_without_listing_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, n: i32| {
            let text = format!("File;Shop;Sale_Count\n{name};S;{n}\n");
            fs::write(dir.path().join(name), text).unwrap();
        };
        write(".a.csv.tmp", 1);
        write("_b.csv", 2);
        write(".c.csv", 3);
        let mut source = CsvSourceConfig {
            watch: false,
            ..config(dir.path())
        }
        .validate()
        .unwrap()
        .build();
        source.discover().unwrap();
        assert_eq!(source.backlog(), 0, "hidden files are not read");
        // Both renames and a new file change the folder: the renamed files are found by
        // name, and the new one only by the listing of the next look.
        fs::rename(dir.path().join(".a.csv.tmp"), dir.path().join("a.csv")).unwrap();
        fs::rename(dir.path().join("_b.csv"), dir.path().join("b.csv")).unwrap();
        write("d.csv", 4);
        source.discover().unwrap();
        assert_eq!(source.backlog(), 2, "found by name, before any listing");
        source.discover().unwrap();
        assert_eq!(source.backlog(), 3, "the next look lists the folder");
        // `.c.csv` is still hidden: looked for as `c.csv`, which is not there.
        source.discover().unwrap();
        source.admit(Quota::All);
        let mut counts = read_all(&mut source);
        counts.sort();
        assert_eq!(counts, vec![1, 2, 4]);
    }

    #[test]
    fn small_files_are_joined_into_batches_of_at_most_batch_size_rows() {
        let dir = tempfile::tempdir().unwrap();
        for f in 0..10 {
            let rows: String = (0..3).map(|i| format!("f{f};S;{}\n", f * 10 + i)).collect();
            fs::write(
                dir.path().join(format!("f{f}.csv")),
                format!("File;Shop;Sale_Count\n{rows}"),
            )
            .unwrap();
            let when = SystemTime::now() - std::time::Duration::from_secs(100 - f);
            let file = fs::File::options()
                .write(true)
                .open(dir.path().join(format!("f{f}.csv")));
            file.unwrap().set_modified(when).unwrap();
        }
        let mut source = admitted_all(CsvSourceConfig {
            batch_size: 7,
            ..config(dir.path())
        });
        let mut sizes = Vec::new();
        let mut counts: Vec<i32> = Vec::new();
        while let Some(batch) = source.next_batch().unwrap() {
            sizes.push(batch.num_rows());
            counts.extend(batch.column(2).as_primitive::<Int32Type>().values().iter());
        }
        // Three-row files, two to a batch of at most 7 rows.
        assert_eq!(sizes, [6, 6, 6, 6, 6]);
        let expected: Vec<i32> = (0..10)
            .flat_map(|f| (0..3).map(move |i| f * 10 + i))
            .collect();
        assert_eq!(counts, expected);
        let snapshot = source.snapshot().unwrap();
        assert!(
            snapshot.detail.starts_with("10 file(s) done"),
            "{}",
            snapshot.detail
        );
    }

    #[test]
    fn a_source_looks_often_where_a_look_is_cheap_and_a_listed_glob_at_the_runtimes_pace() {
        let dir = tempfile::tempdir().unwrap();
        let poll = Duration::from_millis(100);
        let glob = format!("{}/*.csv", dir.path().display());
        // (watch, path, before the second look, after it)
        let cases = [
            (true, dir.path().display().to_string(), poll, WATCHED_POLL),
            (
                false,
                dir.path().display().to_string(),
                WATCHED_POLL,
                WATCHED_POLL,
            ),
            (false, glob, poll, poll),
        ];
        for (watch, path, before, after) in cases {
            let mut source = CsvSourceConfig {
                watch,
                path: path.clone(),
                ..config(dir.path())
            }
            .validate()
            .unwrap()
            .build();
            assert_eq!(source.idle_poll(poll), before, "{path}, watch = {watch}");
            source.discover().unwrap();
            source.discover().unwrap();
            assert_eq!(source.idle_poll(poll), after, "{path}, watch = {watch}");
        }
    }

    #[test]
    fn latest_first_reads_the_newest_file_first() {
        let dir = tempfile::tempdir().unwrap();
        let old = SystemTime::now() - std::time::Duration::from_secs(60);
        fs::write(dir.path().join("old.csv"), "File;Shop;Sale_Count\no;S;1\n").unwrap();
        fs::File::options()
            .write(true)
            .open(dir.path().join("old.csv"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        fs::write(dir.path().join("new.csv"), "File;Shop;Sale_Count\nn;S;2\n").unwrap();
        for (latest_first, expected) in [(false, vec![1, 2]), (true, vec![2, 1])] {
            let mut source = admitted_all(CsvSourceConfig {
                latest_first,
                ..config(dir.path())
            });
            assert_eq!(read_all(&mut source), expected);
        }
    }

    #[test]
    fn a_restored_source_resumes_mid_file_and_skips_finished_files() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("a.csv"),
            "File;Shop;Sale_Count\na;S;1\na;S;2\n",
        )
        .unwrap();
        let rows: String = (10..20).map(|i| format!("b;S;{i}\n")).collect();
        fs::write(
            dir.path().join("b.csv"),
            format!("File;Shop;Sale_Count\n{rows}"),
        )
        .unwrap();
        let old = SystemTime::now() - std::time::Duration::from_secs(60);
        fs::File::options()
            .write(true)
            .open(dir.path().join("a.csv"))
            .unwrap()
            .set_modified(old)
            .unwrap();

        let small = || CsvSourceConfig {
            batch_size: 4,
            ..config(dir.path())
        };
        let mut first = admitted_all(small());
        let mut seen = Vec::new();
        // a.csv (2 rows), then the first batch of b.csv (4 rows), then a barrier.
        for _ in 0..2 {
            let batch = first.next_batch().unwrap().unwrap();
            seen.extend(
                batch
                    .column(2)
                    .as_primitive::<Int32Type>()
                    .values()
                    .iter()
                    .copied(),
            );
        }
        let snapshot = first.snapshot().unwrap();
        assert!(
            snapshot.detail.contains("b.csv at row 4"),
            "{}",
            snapshot.detail
        );

        let mut second = restored(small(), snapshot);
        assert_eq!(
            second.admit(Quota::All),
            0,
            "a.csv is done and b.csv is being resumed"
        );
        seen.extend(read_all(&mut second));
        assert_eq!(seen, [1, 2, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
    }

    #[test]
    fn glob_root_is_the_folder_before_the_wildcard() {
        assert_eq!(
            Location::Glob("data/in/*.csv".into()).root(),
            PathBuf::from("data/in/")
        );
    }
}
