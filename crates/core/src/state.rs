#[cfg(feature = "failpoints")]
use std::sync::OnceLock;

/// One stage's state as key/value pairs, as loaded from a checkpoint.
pub type StateEntries = Vec<(Vec<u8>, Vec<u8>)>;

/// What changed in a stage's state during one epoch: keys written (`Some`) or deleted
/// (`None`). A checkpoint stores deltas, so its cost follows what changed, not all state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateDelta {
    /// The changes, in the order they apply: a key changed twice ends as its last change.
    pub changes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl StateDelta {
    /// Records that `key` now holds `value`.
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.changes.push((key.into(), Some(value.into())));
    }

    /// Records that `key` is gone.
    pub fn delete(&mut self, key: impl Into<Vec<u8>>) {
        self.changes.push((key.into(), None));
    }

    /// The state this delta leaves behind when applied to an empty state, in key order:
    /// what a checkpoint holding only this delta restores (tests and tools restore with it).
    pub fn into_entries(self) -> StateEntries {
        let mut state = std::collections::BTreeMap::new();
        for (key, value) in self.changes {
            match value {
                Some(value) => state.insert(key, value),
                None => state.remove(&key),
            };
        }
        state.into_iter().collect()
    }

    /// Bytes of keys and values, for progress and checkpoint costs.
    pub fn bytes(&self) -> usize {
        self.changes
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
            .sum()
    }
}

/// A stage's contribution to a checkpoint: its delta and a summary for `weir checkpoints`.
#[derive(Debug, Clone, Default)]
pub struct StageSnapshot {
    /// What changed in the epoch.
    pub delta: StateDelta,
    /// Keys in the stage's whole state after the epoch.
    pub state_keys: u64,
    /// Approximate bytes of the stage's whole state after the epoch.
    pub state_bytes: u64,
    /// A line for people: a source's position, a sink's pending files.
    pub detail: String,
}

/// The points of the checkpoint protocol where `WEIR_FAIL_AT` can abort the process, for
/// crash tests.
pub const FAILURE_POINTS: [&str; 6] = [
    "source-mid-batch",
    "after-barrier-before-state",
    "after-state-before-ack",
    "after-acks-before-manifest",
    "after-manifest-before-commit",
    "mid-commit",
];

/// Aborts the process, as `kill -9` would, when `WEIR_FAIL_AT` names this point.
///
/// `WEIR_FAIL_AT=after-manifest-before-commit` aborts the first time the point is reached;
/// `WEIR_FAIL_AT=after-manifest-before-commit:3` the third time. Tests use it to crash at an
/// exact step of the protocol. Only builds with the `failpoints` feature have the points
/// (`cargo test` turns it on through the workspace's dev-dependencies); elsewhere, release
/// binaries included, this does nothing and `WEIR_FAIL_AT` is ignored.
#[cfg(feature = "failpoints")]
pub fn failure_point(name: &'static str) {
    static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static HITS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let target = TARGET.get_or_init(|| {
        let value = std::env::var("WEIR_FAIL_AT").ok()?;
        match value.split_once(':') {
            Some((point, n)) => Some((point.to_string(), n.parse().unwrap_or(1))),
            None => Some((value, 1)),
        }
    });
    if let Some((point, nth)) = target {
        if point == name && HITS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == *nth {
            eprintln!("weir: WEIR_FAIL_AT={point}: aborting here");
            std::process::abort();
        }
    }
}

/// Without the `failpoints` feature: nothing (see the feature's version).
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn failure_point(_name: &'static str) {}
