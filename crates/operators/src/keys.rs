//! State key pieces shared by the event-time operators.

use weir_core::{Error, Result, StateDelta};

/// The state key under which an event-time operator keeps the watermark it has reached.
pub(crate) const WATERMARK_TAG: &[u8] = b"m";

/// An i64 as 8 bytes that sort as the numbers do, for keys ordered by time.
#[cfg_attr(not(feature = "expressions"), allow(dead_code))]
pub(crate) fn ordered_bytes(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

/// The i64 that [`ordered_bytes`] wrote.
#[cfg_attr(not(feature = "expressions"), allow(dead_code))]
pub(crate) fn from_ordered_bytes(bytes: &[u8]) -> Option<i64> {
    let raw: [u8; 8] = bytes.try_into().ok()?;
    Some((u64::from_be_bytes(raw) ^ (1 << 63)) as i64)
}

/// An i64 a checkpoint kept in little-endian bytes.
pub(crate) fn restored_i64(bytes: &[u8], what: &str) -> Result<i64> {
    bytes
        .try_into()
        .map(i64::from_le_bytes)
        .map_err(|_| Error::Internal(format!("the checkpoint's {what} is not 8 bytes")))
}

/// The watermark an event-time operator has reached, in microseconds, kept in its checkpoint
/// under [`WATERMARK_TAG`] whenever it moved.
#[derive(Debug, Default)]
pub(crate) struct ReachedWatermark {
    us: Option<i64>,
    moved: bool,
}

impl ReachedWatermark {
    /// Moves to `ms` (milliseconds, as the stream carries it) if that is later.
    pub(crate) fn advance(&mut self, ms: i64) {
        let now = ms.saturating_mul(1000);
        if self.us.is_none_or(|w| w < now) {
            self.us = Some(now);
            self.moved = true;
        }
    }

    /// The watermark in microseconds, once there is one.
    pub(crate) fn get(&self) -> Option<i64> {
        self.us
    }

    /// Adds the watermark to the epoch's delta, when it moved in the epoch.
    pub(crate) fn snapshot(&self, delta: &mut StateDelta) {
        if let (true, Some(w)) = (self.moved, self.us) {
            delta.put(WATERMARK_TAG, w.to_le_bytes());
        }
    }

    /// The epoch has ended.
    pub(crate) fn end_epoch(&mut self) {
        self.moved = false;
    }

    /// Takes the watermark from a checkpoint entry; `false` when the entry is another one.
    pub(crate) fn restore(&mut self, key: &[u8], value: &[u8]) -> Result<bool> {
        if key != WATERMARK_TAG {
            return Ok(false);
        }
        self.us = Some(restored_i64(value, "watermark")?);
        Ok(true)
    }
}
