//! Checkpoint state in one RocksDB instance at `checkpoint.path`.
//!
//! Keys, all in the default column family:
//!
//! | key | value |
//! |---|---|
//! | `m` epoch | the manifest of a complete checkpoint (JSON) |
//! | `d` epoch stage `\0` key | one change of a stage's state in that epoch: `1` value, or `0` for a delete |
//! | `b` stage `\0` key | a stage's state as of the base epoch |
//! | `xbase` | the base epoch |
//! | `xfingerprint` | what each source and operator was when the state was written (JSON) |
//!
//! Epochs are big-endian so that keys sort by epoch. A checkpoint writes only its deltas and
//! its manifest, in one synced batch: that batch is the moment the checkpoint becomes
//! complete. When more than `retain` manifests exist, the oldest are dropped and the deltas
//! up to the new oldest are folded into the base, one epoch's changes at a time.
//!
//! Damage is found, not guessed at: RocksDB checks every block and WAL record it reads, and
//! [`CheckpointStore::load`] checks that each epoch's changes number what its manifest says
//! was written. A damaged store is never read past the damage; the way out is
//! [`CheckpointStore::open_falling_back`], which repairs what RocksDB can and goes back to the
//! newest checkpoint that still reads whole.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rocksdb::{DBRecoveryMode, ErrorKind, Options, WriteBatch, WriteOptions, DB};
use serde::{Deserialize, Serialize};
use weir_core::{Epoch, StageSnapshot, StateEntries};

mod survey;

use survey::classify;

/// Why the checkpoint store cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the store's lock.
    #[error("checkpoint folder {path} is in use by another weir process; two writers would corrupt it (stop the other run first)")]
    Locked {
        /// The checkpoint folder.
        path: PathBuf,
    },
    /// RocksDB failed to open, read or write.
    #[error("checkpoint folder {path}: {message}")]
    Db {
        /// The checkpoint folder.
        path: PathBuf,
        /// RocksDB's message.
        message: String,
    },
    /// The store was written in another checkpoint format than this Weir reads: by a newer
    /// Weir, or an older one whose format this one no longer reads. Never read as if it were
    /// this format.
    #[error("{}", incompatible(path, *found, *supported))]
    Incompatible {
        /// The checkpoint folder.
        path: PathBuf,
        /// The format the store says it holds.
        found: u32,
        /// The format this Weir reads and writes.
        supported: u32,
    },
    /// The store's files or values do not read back as written: the folder was damaged
    /// (disk, a copy cut short, an edit) or written by something else.
    #[error("checkpoint folder {path} is damaged: {message}. `weir checkpoints {path}` shows what still reads; `weir run --fall-back` resumes from the newest checkpoint that reads whole")]
    Damaged {
        /// The checkpoint folder.
        path: PathBuf,
        /// What could not be read.
        message: String,
    },
}

/// What one stage's state looked like at a checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageSummary {
    /// Keys in the stage's whole state.
    pub state_keys: u64,
    /// Approximate bytes of the stage's whole state.
    pub state_bytes: u64,
    /// Keys this checkpoint wrote for the stage.
    pub changed_keys: u64,
    /// Position of a source, pending files of a sink.
    pub detail: String,
}

/// A complete checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The epoch whose barrier this checkpoint follows.
    pub epoch: u64,
    /// When it was written, in milliseconds since the Unix epoch.
    pub written_at_ms: u64,
    /// Bytes written for it (deltas and manifest).
    pub bytes_written: u64,
    /// How long the write took, in microseconds. Known only once the write has returned,
    /// so it is not stored: a manifest read back from the store has 0.
    #[serde(skip)]
    pub write_micros: u64,
    /// Every stage, by name (`sources.sales`).
    pub stages: BTreeMap<String, StageSummary>,
}

/// A kept checkpoint's epoch, and its manifest if it reads whole or else what is wrong.
pub type Surveyed = (u64, Result<Manifest, String>);

/// The RocksDB instance at `checkpoint.path`.
pub struct CheckpointStore {
    db: DB,
    path: PathBuf,
    retain: usize,
}

const BASE_EPOCH: &[u8] = b"xbase";
const FINGERPRINT: &[u8] = b"xfingerprint";
const FORMAT: &[u8] = b"xformat";

/// The checkpoint format this Weir reads and writes: the store's keys, manifests and every
/// component's state encoding. Any change to one of them that an older Weir would misread
/// bumps it. Stores written before the format was recorded hold format 1. Format 2 added
/// the CSV source's file ages and count of files done (`max_file_age`).
pub const CHECKPOINT_FORMAT_VERSION: u32 = 2;

/// The oldest format this Weir still reads. Opening such a store for writing marks it with
/// [`CHECKPOINT_FORMAT_VERSION`], since what is written next is in that format.
const OLDEST_READABLE_FORMAT: u32 = 1;

fn incompatible(path: &Path, found: u32, supported: u32) -> String {
    let who = match found > supported {
        true => "a newer Weir wrote it; run that version again",
        false => {
            "an older Weir wrote it, in a format this one no longer reads; finish with that version"
        }
    };
    format!(
        "checkpoint folder {} holds checkpoint format {found}, and this Weir reads format {supported}: {who}, or use a new checkpoint.path to start over (the sinks' output then starts over too)",
        path.display()
    )
}

fn manifest_key(epoch: u64) -> Vec<u8> {
    Epoch(epoch).key(b'm')
}

fn stage_prefix(tag: u8, epoch: Option<u64>, stage: &str) -> Vec<u8> {
    let mut key = vec![tag];
    if let Some(epoch) = epoch {
        key.extend_from_slice(&epoch.to_be_bytes());
    }
    key.extend_from_slice(stage.as_bytes());
    key.push(0);
    key
}

impl CheckpointStore {
    /// Opens (or creates) the store for writing. Only one process may hold it.
    pub fn open(path: &Path, retain: usize) -> Result<Self, StoreError> {
        let db = DB::open(&Self::options(), path).map_err(|e| {
            let message = e.to_string();
            if message.contains("LOCK") || message.contains("lock") {
                StoreError::Locked {
                    path: path.to_path_buf(),
                }
            } else {
                classify(path, e)
            }
        })?;
        let store = CheckpointStore {
            db,
            path: path.to_path_buf(),
            retain: retain.max(1),
        };
        // A new store, or one from before the format was recorded (format 1) or of an older
        // format this Weir reads, says its format now.
        if store.check_format()? != Some(CHECKPOINT_FORMAT_VERSION) {
            store
                .db
                .put(FORMAT, CHECKPOINT_FORMAT_VERSION.to_string())
                .map_err(|e| store.db_error(e))?;
        }
        Ok(store)
    }

    /// Refuses a store of another format; `None` when it records none.
    fn check_format(&self) -> Result<Option<u32>, StoreError> {
        let Some(bytes) = self.db.get(FORMAT).map_err(|e| self.db_error(e))? else {
            return Ok(None);
        };
        let found = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|t| t.parse::<u32>().ok())
            .ok_or_else(|| self.damaged(format!("checkpoint format {bytes:?} is not a number")))?;
        if !(OLDEST_READABLE_FORMAT..=CHECKPOINT_FORMAT_VERSION).contains(&found) {
            return Err(StoreError::Incompatible {
                path: self.path.clone(),
                found,
                supported: CHECKPOINT_FORMAT_VERSION,
            });
        }
        Ok(Some(found))
    }

    /// Like [`open`](Self::open), for a store that may be damaged: if RocksDB cannot open it,
    /// RocksDB's repair salvages what it can (records after a damaged one in the log, tables
    /// whose blocks still check), then the store is opened. Which checkpoint is whole is
    /// decided later, by [`recovery_point`](Self::recovery_point) with `fall_back`.
    pub fn open_falling_back(path: &Path, retain: usize) -> Result<Self, StoreError> {
        match Self::open(path, retain) {
            Err(StoreError::Damaged { message, .. }) => {
                tracing::warn!(path = %path.display(), %message, "checkpoint store damaged; repairing it");
                let mut options = Self::options();
                options.set_wal_recovery_mode(DBRecoveryMode::SkipAnyCorruptedRecord);
                DB::repair(&options, path).map_err(|e| classify(path, e))?;
                Self::open(path, retain)
            }
            other => other,
        }
    }

    fn options() -> Options {
        let mut options = Options::default();
        options.create_if_missing(true);
        // A torn last record is a crash during a write that never returned: that checkpoint
        // was never complete, and dropping it is right. Damage anywhere before it is not
        // dropped silently (RocksDB's default would stop reading there and open anyway).
        options.set_wal_recovery_mode(DBRecoveryMode::TolerateCorruptedTailRecords);
        // RocksDB's 64 MB memtables made a long run's memory grow with what it had
        // checkpointed (W7: 115 MB at 10 M rows, 171 MB at 40 M). Checkpoints are written
        // once and read at restart, so small memtables cost nothing that matters.
        options.set_write_buffer_size(4 << 20);
        options.set_max_write_buffer_number(2);
        // Every checkpoint's deltas are deleted again when they fold into the base, and a
        // file source forgets files past `max_file_age`: most keys written are deleted soon
        // after. Without this, the tombstones and the values they hide stayed on disk until
        // size-triggered compaction happened to reach them (W9: 7.9 MB of state at 100,000
        // files, 13.3 MB at 1,000,000 with the same 70,000 files remembered). A table file
        // where half of any 1,024 entries are deletes is compacted soon after it is written.
        options.add_compact_on_deletion_collector_factory(1024, 512, 0.5);
        options
    }

    /// Opens an existing store to read it, also while a run holds it.
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        if !path.join("CURRENT").exists() {
            return Err(StoreError::Db {
                path: path.to_path_buf(),
                message: "no checkpoint store here (no RocksDB CURRENT file)".into(),
            });
        }
        let db =
            DB::open_for_read_only(&Self::options(), path, false).map_err(|e| classify(path, e))?;
        let store = CheckpointStore {
            db,
            path: path.to_path_buf(),
            retain: usize::MAX,
        };
        store.check_format()?;
        Ok(store)
    }

    /// The folder the store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db_error(&self, e: rocksdb::Error) -> StoreError {
        classify(&self.path, e)
    }

    fn damaged(&self, message: String) -> StoreError {
        StoreError::Damaged {
            path: self.path.clone(),
            message,
        }
    }

    /// Every kept manifest, oldest first, as it decodes.
    fn scan_manifests(&self) -> Result<Vec<Surveyed>, StoreError> {
        let mut found = Vec::new();
        self.scan_with(b"m", |key, value| {
            let epoch = key.try_into().map(u64::from_be_bytes).unwrap_or_default();
            found.push((
                epoch,
                serde_json::from_slice(value).map_err(|e| e.to_string()),
            ));
        })?;
        Ok(found)
    }

    /// Every complete checkpoint still kept, oldest first.
    pub fn manifests(&self) -> Result<Vec<Manifest>, StoreError> {
        self.scan_manifests()?
            .into_iter()
            .map(|(epoch, manifest)| {
                manifest.map_err(|e| self.damaged(format!("manifest of epoch {epoch}: {e}")))
            })
            .collect()
    }

    /// The last complete checkpoint, if any.
    pub fn latest(&self) -> Result<Option<Manifest>, StoreError> {
        Ok(self.manifests()?.pop())
    }

    fn base_epoch(&self) -> Result<u64, StoreError> {
        match self.db.get(BASE_EPOCH).map_err(|e| self.db_error(e))? {
            None => Ok(0),
            Some(bytes) => bytes
                .as_slice()
                .try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| self.damaged("the base epoch is not 8 bytes".into())),
        }
    }

    /// Calls `f` with every key (without `prefix`) and value under `prefix`, in key order,
    /// straight from RocksDB's buffers: recovery reads millions of these.
    fn scan_with(&self, prefix: &[u8], mut f: impl FnMut(&[u8], &[u8])) -> Result<(), StoreError> {
        let mut iter = self.db.raw_iterator();
        iter.seek(prefix);
        while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
            if !key.starts_with(prefix) {
                break;
            }
            f(&key[prefix.len()..], value);
            iter.next();
        }
        iter.status().map_err(|e| self.db_error(e))
    }

    /// `stage`'s state as of the checkpoint of `epoch`: the base, then the deltas after it,
    /// in key order.
    pub fn load(&self, stage: &str, epoch: Epoch) -> Result<StateEntries, StoreError> {
        let base_epoch = self.base_epoch()?;
        if epoch.0 < base_epoch {
            return Err(self.damaged(format!(
                "checkpoint {epoch} is older than the base, epoch {base_epoch}"
            )));
        }
        let mut base: StateEntries = Vec::new();
        self.scan_with(&stage_prefix(b'b', None, stage), |k, v| {
            base.push((k.to_vec(), v.to_vec()))
        })?;
        // Each kept epoch's changes, in key order as RocksDB keeps them, applied in epoch
        // order by a linear merge: later epochs win, `None` deletes.
        for e in base_epoch + 1..=epoch.0 {
            let mut changes: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
            let mut untagged = false;
            self.scan_with(&stage_prefix(b'd', Some(e), stage), |k, v| {
                match v.split_first() {
                    Some((1, v)) => changes.push((k.to_vec(), Some(v.to_vec()))),
                    Some((0, _)) => changes.push((k.to_vec(), None)),
                    _ => untagged = true,
                }
            })?;
            if untagged {
                return Err(self.damaged(format!("a change of {stage} in epoch {e} has no tag")));
            }
            let written = self.changes_written(stage, e)?;
            if changes.len() as u64 != written {
                return Err(self.damaged(format!(
                    "checkpoint {e} wrote {written} change(s) of {stage} but {} read back",
                    changes.len()
                )));
            }
            if !changes.is_empty() {
                base = merge(base, changes);
            }
        }
        Ok(base)
    }

    /// How many changes of `stage` the manifest of epoch `e` says were written.
    fn changes_written(&self, stage: &str, e: u64) -> Result<u64, StoreError> {
        let bytes = self
            .db
            .get(manifest_key(e))
            .map_err(|err| self.db_error(err))?
            .ok_or_else(|| self.damaged(format!("the manifest of checkpoint {e} is missing")))?;
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|err| {
            self.damaged(format!(
                "the manifest of checkpoint {e} does not decode: {err}"
            ))
        })?;
        Ok(manifest
            .stages
            .get(stage)
            .map_or(0, |summary| summary.changed_keys))
    }

    /// Makes the checkpoint of `epoch` complete: every stage's delta and the manifest, in one
    /// synced write. Then drops checkpoints beyond `retain`.
    pub fn write_checkpoint(
        &self,
        epoch: Epoch,
        snapshots: &[(String, StageSnapshot)],
    ) -> Result<Manifest, StoreError> {
        let started = Instant::now();
        let mut batch = WriteBatch::default();
        let mut bytes = 0u64;
        let mut stages = BTreeMap::new();
        for (stage, snapshot) in snapshots {
            let prefix = stage_prefix(b'd', Some(epoch.0), stage);
            for (key, value) in &snapshot.delta.changes {
                let mut full = prefix.clone();
                full.extend_from_slice(key);
                let tagged = match value {
                    Some(v) => [&[1u8][..], v].concat(),
                    None => vec![0u8],
                };
                bytes += (full.len() + tagged.len()) as u64;
                batch.put(full, tagged);
            }
            stages.insert(
                stage.clone(),
                StageSummary {
                    state_keys: snapshot.state_keys,
                    state_bytes: snapshot.state_bytes,
                    // A key changed twice in one epoch is one entry; the last change wins.
                    changed_keys: snapshot
                        .delta
                        .changes
                        .iter()
                        .map(|(k, _)| k.as_slice())
                        .collect::<std::collections::BTreeSet<_>>()
                        .len() as u64,
                    detail: snapshot.detail.clone(),
                },
            );
        }
        let written_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut manifest = Manifest {
            epoch: epoch.0,
            written_at_ms,
            bytes_written: 0,
            write_micros: 0,
            stages,
        };
        // The manifest counts its own bytes: measure it, then encode it with the total.
        let encode = |m: &Manifest| serde_json::to_vec(m).map_err(|e| self.damaged(e.to_string()));
        manifest.bytes_written = bytes + encode(&manifest)?.len() as u64;
        let encoded = encode(&manifest)?;
        batch.put(manifest_key(epoch.0), encoded);
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        self.db
            .write_opt(batch, &sync)
            .map_err(|e| self.db_error(e))?;
        manifest.write_micros = started.elapsed().as_micros() as u64;
        self.retire()?;
        Ok(manifest)
    }

    /// Drops manifests beyond `retain` and folds the deltas up to the oldest kept one into
    /// the base.
    fn retire(&self) -> Result<(), StoreError> {
        let mut epochs: Vec<u64> = Vec::new();
        self.scan_with(b"m", |key, _| {
            if let Ok(epoch) = key.try_into().map(u64::from_be_bytes) {
                epochs.push(epoch);
            }
        })?;
        if epochs.len() <= self.retain {
            return Ok(());
        }
        let oldest_kept = epochs[epochs.len() - self.retain];
        let base_epoch = self.base_epoch()?;
        let mut batch = WriteBatch::default();
        for e in epochs.iter().filter(|e| **e < oldest_kept) {
            batch.delete(manifest_key(*e));
        }
        for e in base_epoch + 1..=oldest_kept {
            let mut prefix = vec![b'd'];
            prefix.extend_from_slice(&e.to_be_bytes());
            self.scan_with(&prefix, |rest, value| {
                let base_key = [&b"b"[..], rest].concat();
                match value.split_first() {
                    Some((1, v)) => batch.put(base_key, v),
                    _ => batch.delete(base_key),
                }
                batch.delete([&prefix[..], rest].concat());
            })?;
        }
        batch.put(BASE_EPOCH, oldest_kept.to_be_bytes());
        self.db.write(batch).map_err(|e| self.db_error(e))
    }

    /// What each source and operator was when the state was first written.
    pub fn fingerprint(&self) -> Result<Option<BTreeMap<String, String>>, StoreError> {
        match self.db.get(FINGERPRINT).map_err(|e| self.db_error(e))? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| self.damaged(format!("pipeline fingerprint: {e}"))),
        }
    }

    /// Records what each source and operator is.
    pub fn set_fingerprint(
        &self,
        fingerprint: &BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(fingerprint).map_err(|e| self.damaged(e.to_string()))?;
        self.db
            .put(FINGERPRINT, bytes)
            .map_err(|e| self.db_error(e))
    }
}

/// `base` with `changes` applied; both in key order, and so is the result.
fn merge(base: StateEntries, changes: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> StateEntries {
    let mut merged = Vec::with_capacity(base.len() + changes.len());
    let mut changes = changes.into_iter().peekable();
    for (key, value) in base {
        while let Some((changed, change)) = changes.next_if(|(k, _)| *k < key) {
            if let Some(v) = change {
                merged.push((changed, v));
            }
        }
        match changes.next_if(|(k, _)| *k == key) {
            Some((_, Some(v))) => merged.push((key, v)),
            Some((_, None)) => {}
            None => merged.push((key, value)),
        }
    }
    merged.extend(changes.filter_map(|(k, v)| v.map(|v| (k, v))));
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_core::StateDelta;

    fn snapshot(changes: &[(&str, Option<&str>)]) -> Vec<(String, StageSnapshot)> {
        let mut delta = StateDelta::default();
        for (k, v) in changes {
            match v {
                Some(v) => delta.put(k.as_bytes(), v.as_bytes()),
                None => delta.delete(k.as_bytes()),
            }
        }
        vec![(
            "operators.agg".into(),
            StageSnapshot {
                delta,
                ..StageSnapshot::default()
            },
        )]
    }

    #[test]
    fn a_store_says_its_format_and_another_format_is_refused_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path(), 3).unwrap();
        assert_eq!(
            store.check_format().unwrap(),
            Some(CHECKPOINT_FORMAT_VERSION)
        );
        // As a newer Weir would leave it.
        store.db.put(FORMAT, "7").unwrap();
        drop(store);
        for opened in [
            CheckpointStore::open(dir.path(), 3).err(),
            CheckpointStore::open_read_only(dir.path()).err(),
        ] {
            let error = opened.expect("format 7 refused");
            assert!(
                matches!(
                    error,
                    StoreError::Incompatible {
                        found: 7,
                        supported: CHECKPOINT_FORMAT_VERSION,
                        ..
                    }
                ),
                "{error:?}"
            );
            let message = error.to_string();
            assert!(
                message.contains("checkpoint format 7")
                    && message.contains(&format!("reads format {CHECKPOINT_FORMAT_VERSION}"))
                    && message.contains("a newer Weir"),
                "{message}"
            );
        }
    }

    #[test]
    fn a_store_from_before_formats_were_recorded_is_format_1() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path(), 3).unwrap();
        store.db.delete(FORMAT).unwrap();
        drop(store);
        assert_eq!(
            CheckpointStore::open_read_only(dir.path())
                .unwrap()
                .check_format()
                .unwrap(),
            None
        );
        let store = CheckpointStore::open(dir.path(), 3).unwrap();
        assert_eq!(
            store.check_format().unwrap(),
            Some(CHECKPOINT_FORMAT_VERSION)
        );
    }

    #[test]
    fn a_store_of_an_older_readable_format_is_read_and_marked_with_this_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path(), 3).unwrap();
        store
            .db
            .put(FORMAT, OLDEST_READABLE_FORMAT.to_string())
            .unwrap();
        drop(store);
        let read_only = CheckpointStore::open_read_only(dir.path()).unwrap();
        assert_eq!(
            read_only.check_format().unwrap(),
            Some(OLDEST_READABLE_FORMAT)
        );
        drop(read_only);
        let store = CheckpointStore::open(dir.path(), 3).unwrap();
        assert_eq!(
            store.check_format().unwrap(),
            Some(CHECKPOINT_FORMAT_VERSION)
        );
    }

    fn state(store: &CheckpointStore, epoch: u64) -> Vec<(String, String)> {
        store
            .load("operators.agg", Epoch(epoch))
            .unwrap()
            .into_iter()
            .map(|(k, v)| (String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap()))
            .collect()
    }

    #[test]
    fn every_kept_checkpoint_restores_its_own_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path(), 2).unwrap();
        store
            .write_checkpoint(Epoch(1), &snapshot(&[("a", Some("1")), ("b", Some("1"))]))
            .unwrap();
        store
            .write_checkpoint(Epoch(2), &snapshot(&[("a", Some("2"))]))
            .unwrap();
        store
            .write_checkpoint(Epoch(3), &snapshot(&[("b", None), ("c", Some("3"))]))
            .unwrap();
        // retain = 2: checkpoint 1 is gone and folded into the base.
        let kept: Vec<u64> = store.manifests().unwrap().iter().map(|m| m.epoch).collect();
        assert_eq!(kept, [2, 3]);
        assert_eq!(
            state(&store, 2),
            [("a".into(), "2".into()), ("b".into(), "1".into())]
        );
        assert_eq!(
            state(&store, 3),
            [("a".into(), "2".into()), ("c".into(), "3".into())]
        );
        assert!(
            store.load("operators.agg", Epoch(1)).is_err(),
            "older than the base"
        );
    }

    #[test]
    fn loading_merges_the_base_with_later_changes_in_key_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path(), 1).unwrap();
        store
            .write_checkpoint(Epoch(1), &snapshot(&[("b", Some("1")), ("d", Some("1"))]))
            .unwrap();
        // retain = 1: epoch 1 is the base now; epoch 2's changes stay deltas until epoch 3.
        store
            .write_checkpoint(
                Epoch(2),
                &snapshot(&[
                    ("a", Some("2")),
                    ("b", None),
                    ("c", Some("2")),
                    ("e", Some("2")),
                ]),
            )
            .unwrap();
        store
            .write_checkpoint(Epoch(3), &snapshot(&[("d", Some("3")), ("c", None)]))
            .unwrap();
        assert_eq!(
            state(&store, 3),
            [
                ("a".into(), "2".into()),
                ("d".into(), "3".into()),
                ("e".into(), "2".into())
            ]
        );
    }

    #[test]
    fn a_checkpoint_writes_only_what_changed() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path(), 3).unwrap();
        let big: Vec<(String, Option<&str>)> = (0..1000)
            .map(|i| (format!("key{i:04}"), Some("v")))
            .collect();
        let big: Vec<(&str, Option<&str>)> = big.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let first = store.write_checkpoint(Epoch(1), &snapshot(&big)).unwrap();
        let second = store
            .write_checkpoint(Epoch(2), &snapshot(&[("key0001", Some("w"))]))
            .unwrap();
        assert!(
            second.bytes_written * 50 < first.bytes_written,
            "{} vs {}",
            second.bytes_written,
            first.bytes_written
        );
        assert_eq!(state(&store, 2).len(), 1000);
    }

    #[test]
    fn a_second_writer_is_refused_while_readers_may_look() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path(), 3).unwrap();
        store
            .write_checkpoint(Epoch(1), &snapshot(&[("a", Some("1"))]))
            .unwrap();
        let err = CheckpointStore::open(dir.path(), 3).err().unwrap();
        assert!(matches!(err, StoreError::Locked { .. }), "{err}");
        let reader = CheckpointStore::open_read_only(dir.path()).unwrap();
        let latest = reader.latest().unwrap().unwrap();
        assert_eq!(latest.epoch, 1);
        assert!(
            latest.bytes_written > 0,
            "the stored manifest counts its bytes"
        );
    }

    /// Three checkpoints, retain 3: 1 is the base's epoch, 2 and 3 are deltas.
    fn three_checkpoints(dir: &Path) -> CheckpointStore {
        let store = CheckpointStore::open(dir, 3).unwrap();
        store
            .write_checkpoint(Epoch(1), &snapshot(&[("a", Some("1"))]))
            .unwrap();
        store
            .write_checkpoint(Epoch(2), &snapshot(&[("a", Some("2")), ("b", Some("2"))]))
            .unwrap();
        store
            .write_checkpoint(Epoch(3), &snapshot(&[("a", Some("3")), ("c", Some("3"))]))
            .unwrap();
        store
    }

    fn damage(result: Result<impl std::fmt::Debug, StoreError>) -> String {
        match result {
            Err(StoreError::Damaged { message, .. }) => message,
            other => panic!("expected damage, got {other:?}"),
        }
    }

    #[test]
    fn a_lost_change_is_damage_and_falling_back_goes_to_the_checkpoint_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = three_checkpoints(dir.path());
        // As if a disk lost one of epoch 3's writes.
        let mut lost = stage_prefix(b'd', Some(3), "operators.agg");
        lost.extend_from_slice(b"c");
        store.db.delete(lost).unwrap();

        let message = damage(store.load("operators.agg", Epoch(3)));
        assert_eq!(
            message,
            "checkpoint 3 wrote 2 change(s) of operators.agg but 1 read back"
        );
        let survey = store.survey().unwrap();
        let whole: Vec<(u64, bool)> = survey.iter().map(|(e, m)| (*e, m.is_ok())).collect();
        assert_eq!(whole, [(1, true), (2, true), (3, false)]);

        let point = store.recovery_point(true).unwrap().unwrap();
        assert_eq!(point.epoch, 2);
        let kept: Vec<u64> = store.manifests().unwrap().iter().map(|m| m.epoch).collect();
        assert_eq!(kept, [1, 2], "what came after the fallback point is gone");
        // The next checkpoint is 3 again, and nothing of the damaged one leaks into it.
        store
            .write_checkpoint(Epoch(3), &snapshot(&[("d", Some("3"))]))
            .unwrap();
        assert_eq!(
            state(&store, 3),
            [
                ("a".into(), "2".into()),
                ("b".into(), "2".into()),
                ("d".into(), "3".into())
            ]
        );
    }

    #[test]
    fn a_manifest_that_does_not_decode_is_reported_with_its_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let store = three_checkpoints(dir.path());
        store.db.put(manifest_key(2), b"{not json").unwrap();

        assert!(damage(store.manifests()).starts_with("manifest of epoch 2:"));
        let survey = store.survey().unwrap();
        assert!(matches!(&survey[1].1, Err(m) if m.starts_with("its manifest does not decode")));
        // 3 depends on 2's changes being counted, so it is not whole either.
        assert!(matches!(&survey[2].1, Err(m) if m.contains("manifest of checkpoint 2")));
        let err = store.recovery_point(false).unwrap_err().to_string();
        assert!(err.contains("weir run --fall-back"), "{err}");
        assert_eq!(store.recovery_point(true).unwrap().unwrap().epoch, 1);
    }

    #[test]
    fn with_nothing_whole_there_is_nothing_to_fall_back_to() {
        let dir = tempfile::tempdir().unwrap();
        let store = three_checkpoints(dir.path());
        store.db.put(BASE_EPOCH, b"short").unwrap();
        let message = damage(store.recovery_point(true));
        assert!(message.contains("nothing to fall back to"), "{message}");
    }
}
