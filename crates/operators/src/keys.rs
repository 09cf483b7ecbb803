//! State key pieces shared by the event-time operators.

use weir_core::{Error, Result};

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
