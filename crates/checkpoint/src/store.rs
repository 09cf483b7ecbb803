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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rocksdb::{Options, WriteBatch, WriteOptions, DB};
use serde::{Deserialize, Serialize};
use weir_core::{Epoch, StageSnapshot, StateEntries};

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
    /// A value in the store does not decode: the folder was damaged or written by something
    /// else.
    #[error("checkpoint folder {path} is damaged: {message}")]
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

/// The RocksDB instance at `checkpoint.path`.
pub struct CheckpointStore {
    db: DB,
    path: PathBuf,
    retain: usize,
}

const BASE_EPOCH: &[u8] = b"xbase";
const FINGERPRINT: &[u8] = b"xfingerprint";

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
        let mut options = Options::default();
        options.create_if_missing(true);
        let db = DB::open(&options, path).map_err(|e| {
            let message = e.to_string();
            if message.contains("LOCK") || message.contains("lock") {
                StoreError::Locked {
                    path: path.to_path_buf(),
                }
            } else {
                StoreError::Db {
                    path: path.to_path_buf(),
                    message,
                }
            }
        })?;
        Ok(CheckpointStore {
            db,
            path: path.to_path_buf(),
            retain: retain.max(1),
        })
    }

    /// Opens an existing store to read it, also while a run holds it.
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        if !path.join("CURRENT").exists() {
            return Err(StoreError::Db {
                path: path.to_path_buf(),
                message: "no checkpoint store here (no RocksDB CURRENT file)".into(),
            });
        }
        let db = DB::open_for_read_only(&Options::default(), path, false).map_err(|e| {
            StoreError::Db {
                path: path.to_path_buf(),
                message: e.to_string(),
            }
        })?;
        Ok(CheckpointStore {
            db,
            path: path.to_path_buf(),
            retain: usize::MAX,
        })
    }

    /// The folder the store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db_error(&self, e: rocksdb::Error) -> StoreError {
        StoreError::Db {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    fn damaged(&self, message: String) -> StoreError {
        StoreError::Damaged {
            path: self.path.clone(),
            message,
        }
    }

    /// Every complete checkpoint still kept, oldest first.
    pub fn manifests(&self) -> Result<Vec<Manifest>, StoreError> {
        let mut manifests = Vec::new();
        let mut damaged = None;
        self.scan_with(b"m", |key, value| match serde_json::from_slice(value) {
            Ok(manifest) => manifests.push(manifest),
            Err(e) => {
                let epoch = key.try_into().map(u64::from_be_bytes).unwrap_or_default();
                damaged.get_or_insert(format!("manifest of epoch {epoch}: {e}"));
            }
        })?;
        match damaged {
            Some(message) => Err(self.damaged(message)),
            None => Ok(manifests),
        }
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
            if !changes.is_empty() {
                base = merge(base, changes);
            }
        }
        Ok(base)
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
                    changed_keys: snapshot.delta.changes.len() as u64,
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
}
