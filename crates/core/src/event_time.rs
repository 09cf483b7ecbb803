//! Event time: the watermarked column of a stream, and reading event times from a batch.

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{Array, ArrayRef, PrimitiveArray};
use arrow_schema::{DataType, TimeUnit};

/// The state key under which a stage that computes a watermark keeps how far event time has
/// got. Stage state keys are otherwise arrow-row encodings or tagged keys, which never start
/// with `0xFF 0xFF`.
pub const EVENT_TIME_KEY: &[u8] = b"\xff\xffweir.event_time";

/// A stream's watermarked event-time column (Spark's `withWatermark(column, delay)`): the
/// watermark is the largest event time seen, minus `delay_us`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTimeColumn {
    /// The column's name in the stream.
    pub column: String,
    /// How late a row may be, in microseconds.
    pub delay_us: i64,
}

/// Whether a column of this type holds event times Weir can read.
pub fn is_event_time_type(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Timestamp(..) | DataType::Date32)
}

/// A TIMESTAMP (any unit, any zone) or DATE column as microseconds since the Unix epoch, UTC.
/// `None` for a column of any other type.
pub fn event_times(array: &ArrayRef) -> Option<PrimitiveArray<TimestampMicrosecondType>> {
    if !is_event_time_type(array.data_type()) {
        return None;
    }
    let micros = DataType::Timestamp(TimeUnit::Microsecond, None);
    let cast = arrow_cast::cast(array, &micros).ok()?;
    Some(cast.as_primitive::<TimestampMicrosecondType>().clone())
}

/// The smallest and largest value of `times`, their sum and how many there are (nulls aside).
pub fn time_range(
    times: &PrimitiveArray<TimestampMicrosecondType>,
) -> Option<(i64, i64, i128, u64)> {
    let mut range: Option<(i64, i64, i128, u64)> = None;
    for t in times.iter().flatten() {
        range = Some(match range {
            None => (t, t, t as i128, 1),
            Some((lo, hi, sum, n)) => (lo.min(t), hi.max(t), sum + t as i128, n + 1),
        });
    }
    range
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Date32Array, TimestampMillisecondArray};
    use std::sync::Arc;

    #[test]
    fn reads_timestamps_of_any_unit_and_dates_as_microseconds() {
        let millis: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![Some(1_500), None]));
        let times = event_times(&millis).unwrap();
        assert_eq!(times.value(0), 1_500_000);
        assert!(times.is_null(1));
        let dates: ArrayRef = Arc::new(Date32Array::from(vec![1]));
        assert_eq!(event_times(&dates).unwrap().value(0), 86_400_000_000);
        assert_eq!(
            time_range(&times),
            Some((1_500_000, 1_500_000, 1_500_000, 1))
        );
    }
}
