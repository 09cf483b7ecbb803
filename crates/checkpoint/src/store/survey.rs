//! Damage and the survey: what `weir checkpoints` shows, which checkpoint a run resumes
//! from, falling back past damage or lost output, and RocksDB's errors classified.

use super::*;

impl CheckpointStore {
    /// Every kept checkpoint, oldest first, each with what is wrong with it if it does not
    /// read whole. A checkpoint reads whole when its manifest decodes, the base reads, and
    /// the changes it and the kept checkpoints before it wrote read back, as many as their
    /// manifests say. Each key is read once, and no state is built: this runs beside a
    /// pipeline (`weir checkpoints`) whatever the size of its state.
    pub fn survey(&self) -> Result<Vec<Surveyed>, StoreError> {
        let mut found: Vec<Surveyed> = self
            .scan_manifests()?
            .into_iter()
            .map(|(epoch, m)| {
                (
                    epoch,
                    m.map_err(|e| format!("its manifest does not decode: {e}")),
                )
            })
            .collect();
        // What breaks the chain breaks every checkpoint after it. The base comes first; RocksDB
        // checks every block it reads.
        let (base, mut broken) = match self.base_epoch() {
            Ok(base) => (base, self.scan_with(b"b", |_, _| {}).err().map(reason)),
            Err(e) => (0, Some(reason(e))),
        };
        for (epoch, manifest) in &mut found {
            if broken.is_none() {
                broken = match manifest {
                    Err(e) => Some(format!(
                        "the manifest of checkpoint {epoch} does not decode: {e}"
                    )),
                    Ok(m) if *epoch > base => self.check_changes(m).err(),
                    Ok(_) => None,
                };
            }
            if let (Ok(_), Some(why)) = (&manifest, &broken) {
                *manifest = Err(why.clone());
            }
        }
        Ok(found)
    }

    /// Whether every change `manifest`'s checkpoint wrote reads back, tagged, as many for
    /// each stage as the manifest says.
    fn check_changes(&self, manifest: &Manifest) -> Result<(), String> {
        let e = manifest.epoch;
        let mut prefix = vec![b'd'];
        prefix.extend_from_slice(&e.to_be_bytes());
        let mut read: BTreeMap<String, u64> = BTreeMap::new();
        let mut untagged = None;
        self.scan_with(&prefix, |key, value| {
            let stage = key.split(|b| *b == 0).next().unwrap_or_default();
            let stage = String::from_utf8_lossy(stage).into_owned();
            if !matches!(value.first(), Some(0 | 1)) {
                untagged.get_or_insert_with(|| stage.clone());
            }
            *read.entry(stage).or_default() += 1;
        })
        .map_err(reason)?;
        if let Some(stage) = untagged {
            return Err(format!("a change of {stage} in epoch {e} has no tag"));
        }
        let stages: std::collections::BTreeSet<&String> =
            manifest.stages.keys().chain(read.keys()).collect();
        for stage in stages {
            let written = manifest.stages.get(stage).map_or(0, |s| s.changed_keys);
            let back = read.get(stage).copied().unwrap_or(0);
            if written != back {
                return Err(format!(
                    "checkpoint {e} wrote {written} change(s) of {stage} but {back} read back"
                ));
            }
        }
        Ok(())
    }

    /// The newest checkpoint of a [`survey`](Self::survey) that reads whole.
    pub fn newest_whole(survey: &[Surveyed]) -> Option<&Manifest> {
        survey.iter().rev().find_map(|(_, m)| m.as_ref().ok())
    }

    /// The checkpoint to resume from. Without `fall_back` it is the last one, and damage to
    /// it is an error. With `fall_back` it is the newest one that reads whole; the
    /// checkpoints after it are deleted, so that the next checkpoint written follows it.
    pub fn recovery_point(&self, fall_back: bool) -> Result<Option<Manifest>, StoreError> {
        if !fall_back {
            return self.latest();
        }
        let survey = self.survey()?;
        let Some(&(last, _)) = survey.last() else {
            return Ok(None);
        };
        let Some(manifest) = Self::newest_whole(&survey).cloned() else {
            return Err(self.damaged(format!(
                "none of its {} checkpoint(s) reads whole, so there is nothing to fall back to; to start over, remove the folder and the sinks' output",
                survey.len()
            )));
        };
        if manifest.epoch < last {
            self.fall_back_to(&manifest, last, "the newer ones do not read whole")?;
        }
        Ok(Some(manifest))
    }

    /// Makes `manifest` the last checkpoint, deleting those after it, up to `from`.
    fn fall_back_to(&self, manifest: &Manifest, from: u64, why: &str) -> Result<(), StoreError> {
        tracing::warn!(
            from,
            to = manifest.epoch,
            path = %self.path.display(),
            "falling back to an earlier checkpoint: {why}"
        );
        self.discard_after(manifest.epoch)
    }

    /// The newest checkpoint before `epoch` that reads whole, with every checkpoint after it
    /// deleted so that the next one written follows it; `None` if there is none. For a run
    /// that finds the output of `epoch`'s checkpoint lost and must read that epoch again.
    pub fn fall_back_before(&self, epoch: u64) -> Result<Option<Manifest>, StoreError> {
        let survey = self.survey()?;
        let Some(manifest) = survey
            .iter()
            .rev()
            .filter(|(e, _)| *e < epoch)
            .find_map(|(_, m)| m.as_ref().ok())
            .cloned()
        else {
            return Ok(None);
        };
        self.fall_back_to(&manifest, epoch, "a sink lost the output of the newer one")?;
        Ok(Some(manifest))
    }

    /// Deletes every manifest and change written after `epoch`, in one synced write.
    fn discard_after(&self, epoch: u64) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        for tag in [b'm', b'd'] {
            batch.delete_range(Epoch(epoch + 1).key(tag), vec![tag + 1]);
        }
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        self.db
            .write_opt(batch, &sync)
            .map_err(|e| self.db_error(e))
    }
}

/// What is wrong, for a line of [`CheckpointStore::survey`]: the damage without the folder
/// and the way out, which the caller says once.
fn reason(e: StoreError) -> String {
    match e {
        StoreError::Damaged { message, .. } => message,
        other => other.to_string(),
    }
}

/// RocksDB's error as ours: corruption (a block or log record whose checksum fails, a file
/// missing or cut short) is damage, the rest is RocksDB failing.
pub(super) fn classify(path: &Path, e: rocksdb::Error) -> StoreError {
    let message = e.to_string();
    let damaged = e.kind() == ErrorKind::Corruption
        || message.contains("checksum")
        || (message.contains("No such file")
            && [".sst", ".log", "MANIFEST", "CURRENT"]
                .iter()
                .any(|file| message.contains(file)));
    if damaged {
        let message = match damaged_file(path) {
            Some(line) if !message.contains(&line) => format!("{message} (RocksDB's LOG: {line})"),
            _ => message,
        };
        StoreError::Damaged {
            path: path.to_path_buf(),
            message,
        }
    } else {
        StoreError::Db {
            path: path.to_path_buf(),
            message,
        }
    }
}

/// RocksDB's errors for a damaged log or table often omit the file ("Corruption: checksum
/// mismatch"); its LOG says which one. The last such line, without its source location.
fn damaged_file(path: &Path) -> Option<String> {
    let log = std::fs::read_to_string(path.join("LOG")).ok()?;
    log.lines()
        .rev()
        .filter(|line| line.contains("Corruption") || line.contains("dropping"))
        .filter(|line| {
            [".log", ".sst", "MANIFEST-", "CURRENT"]
                .iter()
                .any(|file| line.contains(file))
        })
        .find_map(|line| {
            line.rsplit_once("] ")
                .map(|(_, rest)| rest.trim().to_string())
        })
}
