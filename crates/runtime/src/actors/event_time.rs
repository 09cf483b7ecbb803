//! The watermark a stage computes (`watermark = { column, delay }`): the largest event time
//! its output has carried, minus the delay, advanced at every barrier as in Spark.

use arrow_array::RecordBatch;
use weir_checkpoint::EventTimeStats;
use weir_core::{event_times, time_range, Error, Result, StageSnapshot, EVENT_TIME_KEY};

use crate::spec::WatermarkSpec;

pub(crate) struct EventTimeTracker {
    /// The event-time column in the stage's output batches.
    index: usize,
    delay_us: i64,
    /// The largest event time seen, in microseconds; kept in the checkpoint.
    max_us: Option<i64>,
    /// The last watermark sent downstream, in milliseconds.
    sent_ms: Option<i64>,
    /// The event times of the epoch so far, for its progress record.
    epoch: Option<EventTimeStats>,
}

impl EventTimeTracker {
    /// A tracker for `spec`, resuming from the value a checkpoint kept under
    /// [`EVENT_TIME_KEY`], if any.
    pub(crate) fn new(spec: &WatermarkSpec, restored: Option<&[u8]>) -> Result<Self> {
        let max_us = match restored {
            None => None,
            Some(bytes) => Some(i64::from_le_bytes(bytes.try_into().map_err(|_| {
                Error::Internal(format!(
                    "the checkpoint's event time for watermark column \"{}\" is {} bytes, expected 8",
                    spec.column,
                    bytes.len()
                ))
            })?)),
        };
        let mut tracker = EventTimeTracker {
            index: spec.index,
            delay_us: spec.delay_us,
            max_us,
            sent_ms: None,
            epoch: None,
        };
        // A restored stage tells downstream at once where event time had got.
        tracker.sent_ms = tracker.current();
        Ok(tracker)
    }

    fn current(&self) -> Option<i64> {
        self.max_us
            .map(|max| max.saturating_sub(self.delay_us).div_euclid(1000))
    }

    /// The watermark sent last, in milliseconds.
    pub(crate) fn watermark(&self) -> Option<i64> {
        self.sent_ms
    }

    /// Notes the event times of a batch the stage hands on.
    pub(crate) fn observe(&mut self, batch: &RecordBatch) {
        let Some(times) = batch.columns().get(self.index).and_then(event_times) else {
            return;
        };
        let Some((min_us, max_us, sum_us, count)) = time_range(&times) else {
            return;
        };
        let seen = EventTimeStats {
            min_us,
            max_us,
            sum_us,
            count,
        };
        self.epoch = Some(self.epoch.map_or(seen, |e| e.merge(seen)));
        self.max_us = Some(self.max_us.map_or(max_us, |m| m.max(max_us)));
    }

    /// At a barrier: the new watermark to send before it, if it advanced. A watermark never
    /// goes back.
    pub(crate) fn advance(&mut self) -> Option<i64> {
        let now = self.current()?;
        if self.sent_ms.is_some_and(|sent| sent >= now) {
            return None;
        }
        self.sent_ms = Some(now);
        Some(now)
    }

    /// Adds the tracker's position to the stage's checkpoint.
    pub(crate) fn snapshot(&self, snapshot: &mut StageSnapshot) {
        if let Some(max) = self.max_us {
            snapshot.delta.put(EVENT_TIME_KEY, max.to_le_bytes());
        }
    }

    /// The epoch's event times, for its progress record.
    pub(crate) fn take_stats(&mut self) -> Option<EventTimeStats> {
        self.epoch.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow_array::TimestampMicrosecondArray;

    fn batch(times: &[i64]) -> RecordBatch {
        let times = TimestampMicrosecondArray::from(times.to_vec());
        RecordBatch::try_from_iter(vec![("ts", Arc::new(times) as _)]).unwrap()
    }

    fn spec() -> WatermarkSpec {
        WatermarkSpec {
            column: "ts".into(),
            index: 0,
            delay_us: 10_000_000,
        }
    }

    #[test]
    fn the_watermark_is_the_largest_time_minus_the_delay_and_never_goes_back() {
        let mut t = EventTimeTracker::new(&spec(), None).unwrap();
        assert_eq!(t.advance(), None, "no rows, no watermark");
        t.observe(&batch(&[30_000_000, 50_000_000]));
        assert_eq!(t.advance(), Some(40_000));
        t.observe(&batch(&[20_000_000]));
        assert_eq!(t.advance(), None, "an older row does not move it back");
        let mut snapshot = StageSnapshot::default();
        t.snapshot(&mut snapshot);
        let state = snapshot.delta.into_entries();
        let restored = EventTimeTracker::new(&spec(), Some(&state[0].1)).unwrap();
        assert_eq!(restored.watermark(), Some(40_000));
    }
}
