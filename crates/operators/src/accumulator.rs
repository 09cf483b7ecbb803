//! An aggregate's accumulators: one [`Accumulator`] per aggregate in the stage, each holding
//! one value per group in a vector indexed by group id, so that folding a batch in is a loop
//! over its rows and emitting is a gather.
//!
//! The numbers follow Spark 4 with ANSI mode, its default (docs/numbers.md): `sum` of INT or
//! BIGINT fails on overflow instead of wrapping, `sum` of DECIMAL(p,s) is DECIMAL(min(38,p+10),s)
//! and fails when the sum does not fit it, `avg` of DECIMAL rounds half up, and `min`/`max`
//! order NaN above every other number. `try_sum` gives NULL where `sum` would fail.

use std::any::Any;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, Float64Type, Int32Type, Int64Type};
use arrow_array::{
    new_null_array, Array, ArrayRef, Decimal128Array, Float64Array, Int64Array, RecordBatch,
};
use arrow_row::{OwnedRow, RowConverter, SortField};
use arrow_schema::{ArrowError, DataType};

/// Why folding or emitting failed.
#[derive(Debug)]
pub(crate) enum AccumulateError {
    /// Arrow refused the data.
    Arrow(ArrowError),
    /// Group `group`'s value no longer fits its type; `detail` says which value and type.
    Overflow {
        /// The group whose value overflowed.
        group: u32,
        /// What overflowed, for the message: "adding 5 to 9223372036854775805 overflows BIGINT".
        detail: String,
    },
    /// Two accumulators of different kinds were to merge: a bug, never the data.
    Mismatch,
}

impl From<ArrowError> for AccumulateError {
    fn from(error: ArrowError) -> Self {
        AccumulateError::Arrow(error)
    }
}

/// What folding, merging and visiting values end in.
pub(crate) type Folded = Result<(), AccumulateError>;

/// One aggregate's accumulators over every group.
pub(crate) trait Accumulator: AsAny + Send {
    /// Makes room for `groups` groups; new groups start empty.
    fn grow(&mut self, groups: usize);
    /// Folds every row of `batch` into the group `gids` names for it.
    fn fold(&mut self, batch: &RecordBatch, gids: &[u32]) -> Folded;
    /// Folds group `h` of `other`, an accumulator of the same aggregate, into group `g`: how
    /// two session windows that a row bridges become one.
    fn merge(&mut self, g: usize, other: &dyn Accumulator, h: usize) -> Folded;
    /// Appends group `g`'s value to `out`, as a checkpoint stores it.
    fn encode(&self, g: usize, out: &mut Vec<u8>);
    /// Reads group `g`'s value from the front of `input`, as [`Accumulator::encode`] wrote it;
    /// `None` when `input` is cut short.
    fn decode(&mut self, g: usize, input: &mut &[u8]) -> Option<()>;
    /// The result of each of `groups`, as one column.
    fn output(&self, groups: &[u32]) -> Result<ArrayRef, AccumulateError>;
}

/// For [`Accumulator::merge`], to see the other side's concrete type.
pub(crate) trait AsAny {
    fn as_any(&self) -> &dyn Any;
}

impl<T: Any> AsAny for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// What a sum does when its value no longer fits: Spark's `sum` fails the query, `try_sum`
/// makes the group's sum NULL from then on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnOverflow {
    /// `sum`: the aggregate stops with an error naming the group.
    Fail,
    /// `try_sum`: the group's sum is NULL from then on.
    Null,
}

/// A sum's state per group, as one byte in the checkpoint (0 and 1 are what Weir wrote
/// before `try_sum` existed, so older checkpoints read the same).
const EMPTY: u8 = 0;
const SEEN: u8 = 1;
/// `try_sum` overflowed: NULL for good.
const OVERFLOWED: u8 = 2;

/// The other side of a merge, as `Self`.
fn same<T: 'static>(other: &dyn Accumulator) -> Result<&T, AccumulateError> {
    other
        .as_any()
        .downcast_ref::<T>()
        .ok_or(AccumulateError::Mismatch)
}

/// `sum` and `try_sum` of INT or BIGINT (as BIGINT) and of DECIMAL(p,s) (as
/// DECIMAL(min(38,p+10),s)), exactly. Every addition is checked, as Spark's ANSI mode checks it
/// (`Math.addExact`); a DECIMAL sum is also checked against its precision when it is emitted,
/// as Spark checks it then (`CheckOverflowInSum`), since 128 bits hold more than 38 digits.
pub(crate) struct ExactSum<T> {
    column: usize,
    sums: Vec<T>,
    state: Vec<u8>,
    out: DataType,
    on_overflow: OnOverflow,
}

/// What [`ExactSum`] adds: BIGINT as `i64`, DECIMAL as `i128`.
pub(crate) trait Exact: Copy + Default + Send + 'static {
    /// Calls `f(group, value)` for every non-null value of `array`, stopping at an error.
    fn try_for_each(array: &ArrayRef, gids: &[u32], f: impl FnMut(usize, Self) -> Folded)
        -> Folded;
    fn checked_add(self, other: Self) -> Option<Self>;
    /// Whether the value fits `out`.
    fn fits(self, out: &DataType) -> bool;
    /// The value as `out` writes it, for messages.
    fn text(self, out: &DataType) -> String;
    fn write(self, out: &mut Vec<u8>);
    fn read(input: &mut &[u8]) -> Option<Self>;
    /// The output column of `values`, typed `out`.
    fn column(values: Vec<Option<Self>>, out: &DataType) -> ArrayRef;
}

impl Exact for i64 {
    fn try_for_each(
        array: &ArrayRef,
        gids: &[u32],
        f: impl FnMut(usize, Self) -> Folded,
    ) -> Folded {
        try_for_each_i64(array, gids, f)
    }
    fn checked_add(self, other: Self) -> Option<Self> {
        i64::checked_add(self, other)
    }
    fn fits(self, _: &DataType) -> bool {
        true
    }
    fn text(self, _: &DataType) -> String {
        self.to_string()
    }
    fn write(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn read(input: &mut &[u8]) -> Option<Self> {
        Some(i64::from_le_bytes(take(input, 8)?.try_into().ok()?))
    }
    fn column(values: Vec<Option<Self>>, _: &DataType) -> ArrayRef {
        Arc::new(Int64Array::from(values))
    }
}

impl Exact for i128 {
    fn try_for_each(
        array: &ArrayRef,
        gids: &[u32],
        mut f: impl FnMut(usize, Self) -> Folded,
    ) -> Folded {
        let decimals = array.as_primitive::<Decimal128Type>();
        try_for_each_valid(decimals, gids, |g, i| f(g, decimals.value(i)))
    }
    fn checked_add(self, other: Self) -> Option<Self> {
        i128::checked_add(self, other)
    }
    fn fits(self, out: &DataType) -> bool {
        fits(self, decimal_shape(out).0)
    }
    fn text(self, out: &DataType) -> String {
        decimal_text(self, decimal_shape(out).1)
    }
    fn write(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn read(input: &mut &[u8]) -> Option<Self> {
        Some(i128::from_le_bytes(take(input, 16)?.try_into().ok()?))
    }
    fn column(values: Vec<Option<Self>>, out: &DataType) -> ArrayRef {
        Arc::new(Decimal128Array::from(values).with_data_type(out.clone()))
    }
}

impl<T: Exact> ExactSum<T> {
    /// `out` is BIGINT for `i64`, the sum's DECIMAL type for `i128`.
    pub(crate) fn new(column: usize, out: DataType, on_overflow: OnOverflow) -> Self {
        ExactSum {
            column,
            sums: Vec::new(),
            state: Vec::new(),
            out,
            on_overflow,
        }
    }

    fn add(&mut self, g: usize, v: T) -> Folded {
        if self.state[g] == OVERFLOWED {
            return Ok(());
        }
        match self.sums[g].checked_add(v) {
            Some(sum) => {
                self.sums[g] = sum;
                self.state[g] = SEEN;
            }
            None if self.on_overflow == OnOverflow::Null => self.state[g] = OVERFLOWED,
            None => {
                return Err(AccumulateError::Overflow {
                    group: g as u32,
                    detail: format!(
                        "adding {} to {} overflows {}",
                        v.text(&self.out),
                        self.sums[g].text(&self.out),
                        weir_core::ddl_type_name(&self.out)
                    ),
                })
            }
        }
        Ok(())
    }
}

impl<T: Exact> Accumulator for ExactSum<T> {
    fn grow(&mut self, groups: usize) {
        self.sums.resize(groups, T::default());
        self.state.resize(groups, EMPTY);
    }

    fn fold(&mut self, batch: &RecordBatch, gids: &[u32]) -> Folded {
        let array = batch.column(self.column).clone();
        T::try_for_each(&array, gids, |g, v| self.add(g, v))
    }

    fn merge(&mut self, g: usize, other: &dyn Accumulator, h: usize) -> Folded {
        let other = same::<Self>(other)?;
        match other.state[h] {
            EMPTY => Ok(()),
            OVERFLOWED => {
                self.state[g] = OVERFLOWED;
                Ok(())
            }
            _ => self.add(g, other.sums[h]),
        }
    }

    fn encode(&self, g: usize, out: &mut Vec<u8>) {
        out.push(self.state[g]);
        self.sums[g].write(out);
    }

    fn decode(&mut self, g: usize, input: &mut &[u8]) -> Option<()> {
        self.state[g] = take(input, 1)?[0];
        self.sums[g] = T::read(input)?;
        Some(())
    }

    fn output(&self, groups: &[u32]) -> Result<ArrayRef, AccumulateError> {
        let mut values = Vec::with_capacity(groups.len());
        for &g in groups {
            let sum = self.sums[g as usize];
            values.push(match self.state[g as usize] {
                SEEN if sum.fits(&self.out) => Some(sum),
                SEEN if self.on_overflow == OnOverflow::Fail => {
                    return Err(AccumulateError::Overflow {
                        group: g,
                        detail: format!(
                            "the sum {} does not fit {}",
                            sum.text(&self.out),
                            weir_core::ddl_type_name(&self.out)
                        ),
                    })
                }
                _ => None,
            });
        }
        Ok(T::column(values, &self.out))
    }
}

/// `sum` of DOUBLE: IEEE arithmetic, as in Spark (NaN and infinities propagate, never fail).
pub(crate) struct FloatSum {
    column: usize,
    sums: Vec<f64>,
    seen: Vec<bool>,
}

impl FloatSum {
    pub(crate) fn new(column: usize) -> Self {
        FloatSum {
            column,
            sums: Vec::new(),
            seen: Vec::new(),
        }
    }
}

impl Accumulator for FloatSum {
    fn grow(&mut self, groups: usize) {
        self.sums.resize(groups, 0.0);
        self.seen.resize(groups, false);
    }

    fn fold(&mut self, batch: &RecordBatch, gids: &[u32]) -> Folded {
        let array = batch.column(self.column).as_primitive::<Float64Type>();
        for_each_valid(array, gids, |g, i| {
            self.sums[g] += array.value(i);
            self.seen[g] = true;
        });
        Ok(())
    }

    fn merge(&mut self, g: usize, other: &dyn Accumulator, h: usize) -> Folded {
        let other = same::<Self>(other)?;
        if other.seen[h] {
            self.sums[g] += other.sums[h];
            self.seen[g] = true;
        }
        Ok(())
    }

    fn encode(&self, g: usize, out: &mut Vec<u8>) {
        out.push(u8::from(self.seen[g]));
        out.extend_from_slice(&self.sums[g].to_le_bytes());
    }

    fn decode(&mut self, g: usize, input: &mut &[u8]) -> Option<()> {
        self.seen[g] = take(input, 1)?[0] == SEEN;
        self.sums[g] = f64::from_le_bytes(take(input, 8)?.try_into().ok()?);
        Some(())
    }

    fn output(&self, groups: &[u32]) -> Result<ArrayRef, AccumulateError> {
        Ok(Arc::new(Float64Array::from_iter(groups.iter().map(|&g| {
            self.seen[g as usize].then(|| self.sums[g as usize])
        }))))
    }
}

/// `count(*)` (no column) and `count(x)` (rows where `x` is not null).
pub(crate) struct Count {
    column: Option<usize>,
    counts: Vec<i64>,
}

impl Count {
    pub(crate) fn new(column: Option<usize>) -> Self {
        Count {
            column,
            counts: Vec::new(),
        }
    }
}

impl Accumulator for Count {
    fn grow(&mut self, groups: usize) {
        self.counts.resize(groups, 0);
    }

    fn fold(&mut self, batch: &RecordBatch, gids: &[u32]) -> Folded {
        match self.column {
            None => gids.iter().for_each(|&g| self.counts[g as usize] += 1),
            Some(column) => {
                let array = batch.column(column);
                for_each_valid(array.as_ref(), gids, |g, _| self.counts[g] += 1);
            }
        }
        Ok(())
    }

    fn merge(&mut self, g: usize, other: &dyn Accumulator, h: usize) -> Folded {
        self.counts[g] += same::<Self>(other)?.counts[h];
        Ok(())
    }

    fn encode(&self, g: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.counts[g].to_le_bytes());
    }

    fn decode(&mut self, g: usize, input: &mut &[u8]) -> Option<()> {
        self.counts[g] = i64::from_le_bytes(take(input, 8)?.try_into().ok()?);
        Some(())
    }

    fn output(&self, groups: &[u32]) -> Result<ArrayRef, AccumulateError> {
        Ok(Arc::new(Int64Array::from_iter_values(
            groups.iter().map(|&g| self.counts[g as usize]),
        )))
    }
}

/// `avg`: a sum and a count per group. `K` says how the sum adds and what the average is.
pub(crate) struct Average<K: AverageKind> {
    column: usize,
    sums: Vec<K::Sum>,
    counts: Vec<i64>,
    kind: K,
}

/// How an [`Average`] sums and divides.
pub(crate) trait AverageKind: Send + 'static {
    /// What the sum is held as.
    type Sum: Copy + Default + Send + 'static;
    /// Calls `f(group, value)` for every non-null value of `array`, stopping at an error.
    fn try_for_each(
        array: &ArrayRef,
        gids: &[u32],
        f: impl FnMut(usize, Self::Sum) -> Folded,
    ) -> Folded;
    /// `a + b`, or why not.
    fn add(&self, a: Self::Sum, b: Self::Sum) -> Result<Self::Sum, String>;
    /// The averages of `groups`, one column.
    fn output(
        &self,
        sums: &[Self::Sum],
        counts: &[i64],
        groups: &[u32],
    ) -> Result<ArrayRef, AccumulateError>;
    fn write(sum: Self::Sum, out: &mut Vec<u8>);
    fn read(input: &mut &[u8]) -> Option<Self::Sum>;
}

impl<K: AverageKind> Average<K> {
    pub(crate) fn new(column: usize, kind: K) -> Self {
        Average {
            column,
            sums: Vec::new(),
            counts: Vec::new(),
            kind,
        }
    }

    fn add(&mut self, g: usize, v: K::Sum, n: i64) -> Folded {
        self.sums[g] =
            self.kind
                .add(self.sums[g], v)
                .map_err(|detail| AccumulateError::Overflow {
                    group: g as u32,
                    detail,
                })?;
        self.counts[g] += n;
        Ok(())
    }
}

impl<K: AverageKind> Accumulator for Average<K> {
    fn grow(&mut self, groups: usize) {
        self.sums.resize(groups, K::Sum::default());
        self.counts.resize(groups, 0);
    }

    fn fold(&mut self, batch: &RecordBatch, gids: &[u32]) -> Folded {
        let array = batch.column(self.column).clone();
        K::try_for_each(&array, gids, |g, v| self.add(g, v, 1))
    }

    fn merge(&mut self, g: usize, other: &dyn Accumulator, h: usize) -> Folded {
        let other = same::<Self>(other)?;
        self.add(g, other.sums[h], other.counts[h])
    }

    fn encode(&self, g: usize, out: &mut Vec<u8>) {
        K::write(self.sums[g], out);
        out.extend_from_slice(&self.counts[g].to_le_bytes());
    }

    fn decode(&mut self, g: usize, input: &mut &[u8]) -> Option<()> {
        self.sums[g] = K::read(input)?;
        self.counts[g] = i64::from_le_bytes(take(input, 8)?.try_into().ok()?);
        Some(())
    }

    fn output(&self, groups: &[u32]) -> Result<ArrayRef, AccumulateError> {
        self.kind.output(&self.sums, &self.counts, groups)
    }
}

/// `avg` of INT, BIGINT or DOUBLE, as DOUBLE: Spark sums these as DOUBLE too.
pub(crate) struct FloatAverage;

impl AverageKind for FloatAverage {
    type Sum = f64;

    fn try_for_each(
        array: &ArrayRef,
        gids: &[u32],
        mut f: impl FnMut(usize, f64) -> Folded,
    ) -> Folded {
        match array.as_primitive_opt::<Float64Type>() {
            Some(floats) => try_for_each_valid(floats, gids, |g, i| f(g, floats.value(i))),
            None => try_for_each_i64(array, gids, |g, v| f(g, v as f64)),
        }
    }

    fn add(&self, a: f64, b: f64) -> Result<f64, String> {
        Ok(a + b)
    }

    fn output(
        &self,
        sums: &[f64],
        counts: &[i64],
        groups: &[u32],
    ) -> Result<ArrayRef, AccumulateError> {
        Ok(Arc::new(Float64Array::from_iter(groups.iter().map(|&g| {
            let (sum, n) = (sums[g as usize], counts[g as usize]);
            (n > 0).then(|| sum / n as f64)
        }))))
    }

    fn write(sum: f64, out: &mut Vec<u8>) {
        out.extend_from_slice(&sum.to_le_bytes());
    }

    fn read(input: &mut &[u8]) -> Option<f64> {
        Some(f64::from_le_bytes(take(input, 8)?.try_into().ok()?))
    }
}

/// `avg` of DECIMAL(p,s), as DECIMAL(min(38,p+4),min(38,s+4)): the exact sum divided by the
/// count, rounded half up (away from zero at .5) to the result's scale, as Spark rounds it.
pub(crate) struct DecimalAverage {
    /// The input's scale, which the sums have.
    scale: i8,
    /// The sum's type, DECIMAL(min(38,p+10),s), which Spark checks the sum against.
    sum_type: DataType,
    out: DataType,
}

impl DecimalAverage {
    pub(crate) fn new(input: &DataType, out: DataType) -> Self {
        let (p, scale) = decimal_shape(input);
        DecimalAverage {
            scale,
            sum_type: DataType::Decimal128((p + 10).min(38), scale),
            out,
        }
    }

    /// The average of `sum` over `n` rows at the output's scale, or why it cannot be had.
    fn average(&self, sum: i128, n: i64) -> Result<i128, String> {
        let n = i128::from(n);
        let (sum_precision, _) = decimal_shape(&self.sum_type);
        let (precision, out_scale) = decimal_shape(&self.out);
        if !fits(sum, sum_precision) {
            return Err(format!(
                "the sum {} for avg does not fit {}",
                decimal_text(sum, self.scale),
                weir_core::ddl_type_name(&self.sum_type)
            ));
        }
        // sum / n scaled by 10^k, in two steps so that nothing overflows 128 bits on the way:
        // the whole quotient, then the remainder (less than n) scaled and divided again.
        let k = (out_scale - self.scale).max(0) as u32;
        let factor = 10i128.pow(k);
        let (whole, rest) = (sum / n, sum % n);
        let scaled_rest = rest * factor;
        let (fraction, left) = (scaled_rest / n, scaled_rest % n);
        let mut average = whole
            .checked_mul(factor)
            .and_then(|w| w.checked_add(fraction));
        // Half up: a remainder of at least half the divisor rounds away from zero.
        if left.abs() * 2 >= n {
            average = average.and_then(|a| a.checked_add(left.signum()));
        }
        match average {
            Some(a) if fits(a, precision) => Ok(a),
            _ => Err(format!(
                "the average does not fit {}",
                weir_core::ddl_type_name(&self.out)
            )),
        }
    }
}

impl AverageKind for DecimalAverage {
    type Sum = i128;

    fn try_for_each(
        array: &ArrayRef,
        gids: &[u32],
        f: impl FnMut(usize, i128) -> Folded,
    ) -> Folded {
        <i128 as Exact>::try_for_each(array, gids, f)
    }

    fn add(&self, a: i128, b: i128) -> Result<i128, String> {
        a.checked_add(b).ok_or_else(|| {
            format!(
                "the sum for avg does not fit {}",
                weir_core::ddl_type_name(&self.sum_type)
            )
        })
    }

    fn output(
        &self,
        sums: &[i128],
        counts: &[i64],
        groups: &[u32],
    ) -> Result<ArrayRef, AccumulateError> {
        let mut values = Vec::with_capacity(groups.len());
        for &g in groups {
            let (sum, n) = (sums[g as usize], counts[g as usize]);
            values.push(match n {
                0 => None,
                _ => Some(
                    self.average(sum, n)
                        .map_err(|detail| AccumulateError::Overflow { group: g, detail })?,
                ),
            });
        }
        Ok(<i128 as Exact>::column(values, &self.out))
    }

    fn write(sum: i128, out: &mut Vec<u8>) {
        sum.write(out);
    }

    fn read(input: &mut &[u8]) -> Option<i128> {
        <i128 as Exact>::read(input)
    }
}

/// `min` and `max` of any other type arrow-row can order (strings, dates, integers, decimals),
/// kept row-encoded.
pub(crate) struct Extreme {
    column: usize,
    min: bool,
    converter: RowConverter,
    best: Vec<Option<OwnedRow>>,
    out: DataType,
}

impl Extreme {
    pub(crate) fn new(column: usize, min: bool, out: DataType) -> Result<Self, ArrowError> {
        Ok(Extreme {
            column,
            min,
            converter: RowConverter::new(vec![SortField::new(out.clone())])?,
            best: Vec::new(),
            out,
        })
    }

    /// Whether `candidate` should replace `current`: strictly better only, so that among equal
    /// values the first one met stays.
    fn better(&self, candidate: arrow_row::Row<'_>, current: &Option<OwnedRow>) -> bool {
        match current {
            None => true,
            Some(current) if self.min => candidate < current.row(),
            Some(current) => candidate > current.row(),
        }
    }
}

impl Accumulator for Extreme {
    fn grow(&mut self, groups: usize) {
        self.best.resize(groups, None);
    }

    fn fold(&mut self, batch: &RecordBatch, gids: &[u32]) -> Folded {
        let array = batch.column(self.column);
        let rows = self
            .converter
            .convert_columns(std::slice::from_ref(array))?;
        for (i, &g) in gids.iter().enumerate() {
            if array.is_null(i) {
                continue;
            }
            let row = rows.row(i);
            if self.better(row, &self.best[g as usize]) {
                self.best[g as usize] = Some(row.owned());
            }
        }
        Ok(())
    }

    fn merge(&mut self, g: usize, other: &dyn Accumulator, h: usize) -> Folded {
        let other = same::<Self>(other)?;
        if let Some(theirs) = &other.best[h] {
            if self.better(theirs.row(), &self.best[g]) {
                self.best[g] = Some(theirs.clone());
            }
        }
        Ok(())
    }

    fn encode(&self, g: usize, out: &mut Vec<u8>) {
        write_row(self.best[g].as_ref().map(|row| row.row().data()), out);
    }

    fn decode(&mut self, g: usize, input: &mut &[u8]) -> Option<()> {
        let parser = self.converter.parser();
        self.best[g] = read_row(input)?.map(|row| parser.parse(row).owned());
        Some(())
    }

    fn output(&self, groups: &[u32]) -> Result<ArrayRef, AccumulateError> {
        if groups.is_empty() {
            return Ok(new_null_array(&self.out, 0));
        }
        let null_row = self
            .converter
            .convert_columns(&[new_null_array(&self.out, 1)])?;
        let rows = groups.iter().map(|&g| match &self.best[g as usize] {
            Some(row) => row.row(),
            None => null_row.row(0),
        });
        let mut arrays = self.converter.convert_rows(rows)?;
        arrays
            .pop()
            .ok_or_else(|| ArrowError::ComputeError("min/max produced no column".into()).into())
    }
}

/// `min` and `max` of DOUBLE, in Spark's order: NaN above every number (all NaNs equal), and
/// -0.0 equal to 0.0, so that among equal values the first one met stays, as in Spark.
/// Checkpointed in arrow-row's encoding, the same bytes [`Extreme`] wrote for DOUBLE before.
pub(crate) struct FloatExtreme {
    column: usize,
    min: bool,
    best: Vec<Option<f64>>,
}

impl FloatExtreme {
    pub(crate) fn new(column: usize, min: bool) -> Self {
        FloatExtreme {
            column,
            min,
            best: Vec::new(),
        }
    }

    fn offer(&mut self, g: usize, candidate: f64) {
        let better = match self.best[g] {
            None => true,
            Some(current) => {
                let order = spark_order(candidate, current);
                match self.min {
                    true => order.is_lt(),
                    false => order.is_gt(),
                }
            }
        };
        if better {
            self.best[g] = Some(candidate);
        }
    }
}

/// Spark's order of doubles: NaN is the greatest, and -0.0 equals 0.0.
fn spark_order(a: f64, b: f64) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// The arrow-row encoding of a valid DOUBLE: a 1 (valid), then the bits made sortable as
/// unsigned bytes (negative numbers flipped, the sign bit inverted), big-endian.
fn double_row(v: f64) -> [u8; 9] {
    let bits = v.to_bits() as i64;
    let sortable = bits ^ (((bits >> 63) as u64) >> 1) as i64;
    let mut bytes = sortable.to_be_bytes();
    bytes[0] ^= 0x80;
    let mut row = [1u8; 9];
    row[1..].copy_from_slice(&bytes);
    row
}

/// The DOUBLE of [`double_row`]'s bytes; `None` if they are not such a row.
fn double_of_row(row: &[u8]) -> Option<f64> {
    let (&[1], bytes) = row.split_at_checked(1)? else {
        return None;
    };
    let mut bytes: [u8; 8] = bytes.try_into().ok()?;
    bytes[0] ^= 0x80;
    let sortable = i64::from_be_bytes(bytes);
    let bits = sortable ^ (((sortable >> 63) as u64) >> 1) as i64;
    Some(f64::from_bits(bits as u64))
}

impl Accumulator for FloatExtreme {
    fn grow(&mut self, groups: usize) {
        self.best.resize(groups, None);
    }

    fn fold(&mut self, batch: &RecordBatch, gids: &[u32]) -> Folded {
        let column = batch.column(self.column).clone();
        let array = column.as_primitive::<Float64Type>();
        for_each_valid(array, gids, |g, i| self.offer(g, array.value(i)));
        Ok(())
    }

    fn merge(&mut self, g: usize, other: &dyn Accumulator, h: usize) -> Folded {
        if let Some(theirs) = same::<Self>(other)?.best[h] {
            self.offer(g, theirs);
        }
        Ok(())
    }

    fn encode(&self, g: usize, out: &mut Vec<u8>) {
        write_row(self.best[g].map(double_row).as_ref().map(|r| &r[..]), out);
    }

    fn decode(&mut self, g: usize, input: &mut &[u8]) -> Option<()> {
        self.best[g] = match read_row(input)? {
            None => None,
            Some(row) => Some(double_of_row(row)?),
        };
        Some(())
    }

    fn output(&self, groups: &[u32]) -> Result<ArrayRef, AccumulateError> {
        Ok(Arc::new(Float64Array::from_iter(
            groups.iter().map(|&g| self.best[g as usize]),
        )))
    }
}

/// Appends a min/max value as the checkpoint holds it: 0 for none, else 1, the row's length
/// (u32, little-endian) and its arrow-row bytes.
fn write_row(row: Option<&[u8]>, out: &mut Vec<u8>) {
    match row {
        None => out.push(0),
        Some(bytes) => {
            out.push(1);
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(bytes);
        }
    }
}

/// Reads what [`write_row`] wrote; `None` when `input` is cut short.
fn read_row<'a>(input: &mut &'a [u8]) -> Option<Option<&'a [u8]>> {
    match take(input, 1)?[0] {
        0 => Some(None),
        _ => {
            let len = u32::from_le_bytes(take(input, 4)?.try_into().ok()?) as usize;
            Some(Some(take(input, len)?))
        }
    }
}

/// Every NaN as the one positive quiet NaN, other values as they are.
pub(crate) fn one_nan(v: f64) -> f64 {
    if v.is_nan() {
        f64::NAN
    } else {
        v
    }
}

/// A DECIMAL type's precision and scale; (38, 0) for anything else, which never reaches here.
fn decimal_shape(data_type: &DataType) -> (u8, i8) {
    match data_type {
        DataType::Decimal128(p, s) => (*p, *s),
        _ => (38, 0),
    }
}

/// Whether `value` has at most `precision` digits.
fn fits(value: i128, precision: u8) -> bool {
    match 10i128.checked_pow(u32::from(precision)) {
        Some(limit) => value.unsigned_abs() < limit.unsigned_abs(),
        None => true,
    }
}

/// `value` with `scale` digits after the point, for messages.
fn decimal_text(value: i128, scale: i8) -> String {
    let digits = value.unsigned_abs().to_string();
    let sign = if value < 0 { "-" } else { "" };
    let scale = scale.max(0) as usize;
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let digits = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = digits.split_at(digits.len() - scale);
    format!("{sign}{int}.{frac}")
}

/// Splits `n` bytes off the front of `input`.
pub(crate) fn take<'a>(input: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if input.len() < n {
        return None;
    }
    let (head, tail) = input.split_at(n);
    *input = tail;
    Some(head)
}

/// Calls `f(group, value)` for every non-null value of an INT or BIGINT column, stopping at
/// the first error.
fn try_for_each_i64(
    array: &ArrayRef,
    gids: &[u32],
    mut f: impl FnMut(usize, i64) -> Folded,
) -> Folded {
    if let Some(ints) = array.as_primitive_opt::<Int32Type>() {
        try_for_each_valid(ints, gids, |g, i| f(g, i64::from(ints.value(i))))
    } else if let Some(longs) = array.as_primitive_opt::<Int64Type>() {
        try_for_each_valid(longs, gids, |g, i| f(g, longs.value(i)))
    } else {
        Err(ArrowError::InvalidArgumentError(format!(
            "expected an integer column, found {}",
            array.data_type()
        ))
        .into())
    }
}

/// Calls `f(group, row)` for every row whose value is not null.
fn for_each_valid(array: &dyn Array, gids: &[u32], mut f: impl FnMut(usize, usize)) {
    // Infallible: the error type is never built.
    let _ = try_for_each_valid(array, gids, |g, i| {
        f(g, i);
        Ok(())
    });
}

/// [`for_each_valid`] for an `f` that can fail; stops at the first error.
fn try_for_each_valid(
    array: &dyn Array,
    gids: &[u32],
    mut f: impl FnMut(usize, usize) -> Folded,
) -> Folded {
    match array.logical_nulls() {
        None => gids
            .iter()
            .enumerate()
            .try_for_each(|(i, &g)| f(g as usize, i)),
        Some(nulls) => gids
            .iter()
            .enumerate()
            .filter(|(i, _)| nulls.is_valid(*i))
            .try_for_each(|(i, &g)| f(g as usize, i)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn double_rows_are_arrow_rows() {
        let values = [
            0.0,
            -0.0,
            1.5,
            -1.5,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            -f64::NAN,
            f64::MIN_POSITIVE,
            f64::MAX,
        ];
        let converter = RowConverter::new(vec![SortField::new(DataType::Float64)]).unwrap();
        let array: ArrayRef = Arc::new(Float64Array::from(values.to_vec()));
        let rows = converter.convert_columns(&[array]).unwrap();
        for (i, v) in values.iter().enumerate() {
            assert_eq!(rows.row(i).as_ref(), double_row(*v), "{v}");
            let back = double_of_row(&double_row(*v)).unwrap();
            assert_eq!(back.to_bits(), v.to_bits(), "{v}");
        }
    }

    #[test]
    fn decimal_text_places_the_point() {
        assert_eq!(decimal_text(12345, 2), "123.45");
        assert_eq!(decimal_text(-5, 3), "-0.005");
        assert_eq!(decimal_text(7, 0), "7");
    }

    #[test]
    fn fits_counts_digits() {
        assert!(fits(99_999, 5));
        assert!(!fits(100_000, 5));
        assert!(!fits(-100_000, 5));
        assert!(fits(i128::MAX, 39));
    }
}
