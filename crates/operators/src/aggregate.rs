use std::collections::HashMap;
use std::sync::Arc;

use crate::expr::{AggregateCall, AggregateFunction, Expression};
use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, Float64Type, Int32Type, Int64Type};
use arrow_array::{
    new_null_array, Array, ArrayRef, Decimal128Array, Float64Array, Int64Array, RecordBatch,
    RecordBatchOptions,
};
use arrow_row::{OwnedRow, RowConverter, Rows, SortField};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use serde::Deserialize;
use weir_core::{
    ddl_type_name, ConfigError, Epoch, Error, Operator, OutputMode, Result, StageSnapshot,
    StateEntries,
};

/// The `type = "aggregate"` operator as written in the pipeline file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateConfig {
    /// What to group by: columns or expressions with an optional alias, for example
    /// `["Shop"]` or `["lower(Shop) AS shop"]`. Empty means one group for the whole stream.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// Aggregates over columns or expressions, with an optional alias: `"sum(Sale_Count)"`,
    /// `"count(*)"`, `"sum(price * qty) AS revenue"`. Functions: sum, count, min, max, avg.
    pub aggregates: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Function {
    Sum,
    Count,
    Min,
    Max,
    Avg,
}

impl From<AggregateFunction> for Function {
    fn from(function: AggregateFunction) -> Self {
        match function {
            AggregateFunction::Sum => Function::Sum,
            AggregateFunction::Count => Function::Count,
            AggregateFunction::Min => Function::Min,
            AggregateFunction::Max => Function::Max,
            AggregateFunction::Avg => Function::Avg,
        }
    }
}

#[derive(Debug, Clone)]
struct AggregateSpec {
    function: Function,
    /// Column index in the batch the accumulators read; `None` for `count(*)`.
    column: Option<usize>,
    output: Field,
}

/// A group key or an aggregate's argument, and the type its accumulator reads it as.
#[derive(Debug, Clone)]
struct Input {
    expr: Expression,
    cast: Option<DataType>,
}

/// A validated [`AggregateConfig`], bound to its input schema.
#[derive(Debug, Clone)]
pub struct AggregateSettings {
    keys: Vec<usize>,
    specs: Vec<AggregateSpec>,
    output: SchemaRef,
    /// The keys and arguments, computed from each input batch before grouping. `None` when
    /// every one is a bare input column (the notebook's job): then keys and specs index the
    /// input batch itself and nothing is computed.
    projection: Option<(Vec<Input>, SchemaRef)>,
    describe: String,
}

impl AggregateConfig {
    /// Checks the config against the input schema and reports every problem, with keys
    /// relative to the operator.
    pub fn validate(&self, input: &SchemaRef) -> Result<AggregateSettings, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut inputs: Vec<Input> = Vec::new();
        let mut keys = Vec::new();
        let mut fields = Vec::new();
        for (i, text) in self.group_by.iter().enumerate() {
            match Expression::plan(text, input) {
                Ok(expr) => {
                    keys.push(inputs.len());
                    fields.push(expr.field().as_ref().clone());
                    inputs.push(Input { expr, cast: None });
                }
                Err(e) => errors.push(ConfigError::new(format!("group_by[{i}]"), e.message)),
            }
        }
        if self.aggregates.is_empty() {
            errors.push(ConfigError::new(
                "aggregates",
                "needs at least one aggregate (sum(x), count(*), count(x), min(x), max(x), avg(x))",
            ));
        }
        let mut specs = Vec::new();
        for (i, text) in self.aggregates.iter().enumerate() {
            let spec = AggregateCall::plan(text, input)
                .map_err(|e| e.message)
                .and_then(|call| spec_for(call, &mut inputs));
            match spec {
                Ok(spec) => {
                    fields.push(spec.output.clone());
                    specs.push(spec);
                }
                Err(message) => errors.push(ConfigError::new(format!("aggregates[{i}]"), message)),
            }
        }
        let mut names = std::collections::HashSet::new();
        for field in &fields {
            if !names.insert(field.name().to_lowercase()) {
                errors.push(ConfigError::new(
                    "aggregates",
                    format!(
                        "two output columns are named \"{}\" (rename one with `as`)",
                        field.name()
                    ),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let bare: Option<Vec<usize>> = inputs
            .iter()
            .map(|i| i.expr.column().filter(|_| i.cast.is_none()))
            .collect();
        let projection = match bare {
            Some(columns) => {
                keys = keys.iter().map(|&k| columns[k]).collect();
                for spec in &mut specs {
                    spec.column = spec.column.map(|c| columns[c]);
                }
                None
            }
            None => {
                let schema = Schema::new(
                    inputs
                        .iter()
                        .enumerate()
                        .map(|(i, input)| {
                            let data_type = input
                                .cast
                                .clone()
                                .unwrap_or_else(|| input.expr.field().data_type().clone());
                            Field::new(format!("#{i}"), data_type, true)
                        })
                        .collect::<Vec<_>>(),
                );
                Some((inputs, Arc::new(schema)))
            }
        };
        Ok(AggregateSettings {
            keys,
            specs,
            output: Arc::new(Schema::new(fields)),
            projection,
            describe: format!(
                "group_by [{}]: {}",
                self.group_by.join(", "),
                self.aggregates.join(", ")
            ),
        })
    }
}

/// The accumulator for `call`; its argument becomes one of `inputs`. The result types are
/// Spark's: sums widen so that they do not overflow early.
fn spec_for(call: AggregateCall, inputs: &mut Vec<Input>) -> Result<AggregateSpec, String> {
    let function = Function::from(call.function);
    let Some(argument) = call.argument else {
        return Ok(AggregateSpec {
            function,
            column: None,
            output: Field::new(call.name, DataType::Int64, false),
        });
    };
    let written = argument.name().to_string();
    let data_type = argument.field().data_type().clone();
    // The accumulators read INT, BIGINT, DOUBLE and DECIMAL; narrower numbers widen first.
    let cast = match &data_type {
        DataType::Int8 | DataType::Int16 | DataType::UInt8 | DataType::UInt16 => {
            Some(DataType::Int32)
        }
        DataType::UInt32 | DataType::UInt64 => Some(DataType::Int64),
        DataType::Float16 | DataType::Float32 => Some(DataType::Float64),
        _ => None,
    };
    let data_type = cast.clone().unwrap_or(data_type);
    let numeric = matches!(
        data_type,
        DataType::Int32 | DataType::Int64 | DataType::Float64 | DataType::Decimal128(..)
    );
    let function_name = match function {
        Function::Sum => "sum",
        Function::Avg => "avg",
        _ => "",
    };
    let out_type = match function {
        Function::Count => DataType::Int64,
        Function::Min | Function::Max => data_type.clone(),
        Function::Sum | Function::Avg if !numeric => {
            return Err(format!(
                "{function_name}({written}) needs a numeric column, but \"{written}\" is {}",
                ddl_type_name(&data_type)
            ))
        }
        Function::Sum => match data_type {
            DataType::Float64 => DataType::Float64,
            DataType::Decimal128(p, s) => DataType::Decimal128((p + 10).min(38), s),
            _ => DataType::Int64,
        },
        Function::Avg => match data_type {
            DataType::Decimal128(p, s) => DataType::Decimal128((p + 4).min(38), (s + 4).min(38)),
            _ => DataType::Float64,
        },
    };
    if matches!(function, Function::Min | Function::Max)
        && RowConverter::new(vec![SortField::new(out_type.clone())]).is_err()
    {
        return Err(format!(
            "min/max of \"{written}\" ({}) is not supported",
            ddl_type_name(&data_type)
        ));
    }
    let column = inputs.len();
    inputs.push(Input {
        expr: argument,
        cast,
    });
    Ok(AggregateSpec {
        function,
        column: Some(column),
        output: Field::new(call.name, out_type, function != Function::Count),
    })
}

impl AggregateSettings {
    /// `group_by [keys]: aggregates`, as `weir graph` shows it and the checkpoint's
    /// fingerprint records it.
    pub fn describe(&self) -> String {
        self.describe.clone()
    }

    /// The schema of what the aggregate emits: the group keys, then one column per aggregate.
    pub fn output_schema(&self) -> SchemaRef {
        self.output.clone()
    }

    /// The running aggregate, with empty state.
    pub fn build(&self) -> Result<Aggregate> {
        // The output schema starts with the group keys, in order.
        let key_fields = self.output.fields()[..self.keys.len()].iter();
        let converter = RowConverter::new(
            key_fields
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )
        .map_err(|e| Error::Internal(format!("group keys cannot be row-encoded: {e}")))?;
        let keys = converter.empty_rows(0, 0);
        let states = self
            .specs
            .iter()
            .map(State::new)
            .collect::<Result<Vec<_>>>()?;
        Ok(Aggregate {
            settings: self.clone(),
            converter,
            keys,
            groups: HashMap::default(),
            by_string: HashMap::default(),
            null_group: None,
            states,
            changed: Vec::new(),
            is_changed: Vec::new(),
            group_ids: Vec::new(),
        })
    }
}

/// A running group-by aggregate. Group keys are row-encoded (arrow-row) so that any mix of key
/// types hashes as bytes; accumulators are columnar, one vector per aggregate indexed by group.
pub struct Aggregate {
    settings: AggregateSettings,
    converter: RowConverter,
    /// Every group's key, in the order the groups first appeared.
    keys: Rows,
    /// Row-encoded key to group id. aHash, not SipHash: keys come from the data, but a
    /// per-process random seed is enough against collisions crafted in advance.
    groups: HashMap<Box<[u8]>, u32, ahash::RandomState>,
    /// With one string key column (the notebook's `group_by Shop`): the raw value to its
    /// group id, so that a batch whose groups are all known needs no row encoding. A cache
    /// in front of `groups`, filled as values are met; nulls have `null_group`.
    by_string: HashMap<Box<[u8]>, u32, ahash::RandomState>,
    null_group: Option<u32>,
    states: Vec<State>,
    /// Groups that changed in the current epoch, for `update` mode.
    changed: Vec<u32>,
    is_changed: Vec<bool>,
    /// Scratch: the group of each row of the batch being folded in.
    group_ids: Vec<u32>,
}

/// One aggregate's accumulators, indexed by group id.
enum State {
    SumInt {
        column: usize,
        sums: Vec<i64>,
        seen: Vec<bool>,
    },
    SumFloat {
        column: usize,
        sums: Vec<f64>,
        seen: Vec<bool>,
    },
    SumDecimal {
        column: usize,
        sums: Vec<i128>,
        seen: Vec<bool>,
        out: DataType,
    },
    Count {
        column: Option<usize>,
        counts: Vec<i64>,
    },
    AvgFloat {
        column: usize,
        sums: Vec<f64>,
        counts: Vec<i64>,
    },
    AvgDecimal {
        column: usize,
        sums: Vec<i128>,
        counts: Vec<i64>,
        out: DataType,
    },
    Extreme {
        column: usize,
        min: bool,
        converter: RowConverter,
        best: Vec<Option<OwnedRow>>,
        out: DataType,
    },
}

impl State {
    fn new(spec: &AggregateSpec) -> Result<State> {
        let out = spec.output.data_type().clone();
        let column = spec.column;
        let col = || column.ok_or_else(|| Error::Internal("aggregate without a column".into()));
        Ok(match spec.function {
            Function::Count => State::Count {
                column,
                counts: Vec::new(),
            },
            Function::Sum => match out {
                DataType::Float64 => State::SumFloat {
                    column: col()?,
                    sums: Vec::new(),
                    seen: Vec::new(),
                },
                DataType::Decimal128(..) => State::SumDecimal {
                    column: col()?,
                    sums: Vec::new(),
                    seen: Vec::new(),
                    out,
                },
                _ => State::SumInt {
                    column: col()?,
                    sums: Vec::new(),
                    seen: Vec::new(),
                },
            },
            Function::Avg => match out {
                DataType::Decimal128(..) => State::AvgDecimal {
                    column: col()?,
                    sums: Vec::new(),
                    counts: Vec::new(),
                    out,
                },
                _ => State::AvgFloat {
                    column: col()?,
                    sums: Vec::new(),
                    counts: Vec::new(),
                },
            },
            Function::Min | Function::Max => State::Extreme {
                column: col()?,
                min: spec.function == Function::Min,
                converter: RowConverter::new(vec![SortField::new(out.clone())]).map_err(|e| {
                    Error::Internal(format!("min/max column cannot be row-encoded: {e}"))
                })?,
                best: Vec::new(),
                out,
            },
        })
    }

    fn grow(&mut self, groups: usize) {
        match self {
            State::SumInt { sums, seen, .. } => {
                sums.resize(groups, 0);
                seen.resize(groups, false);
            }
            State::SumFloat { sums, seen, .. } => {
                sums.resize(groups, 0.0);
                seen.resize(groups, false);
            }
            State::SumDecimal { sums, seen, .. } => {
                sums.resize(groups, 0);
                seen.resize(groups, false);
            }
            State::Count { counts, .. } => counts.resize(groups, 0),
            State::AvgFloat { sums, counts, .. } => {
                sums.resize(groups, 0.0);
                counts.resize(groups, 0);
            }
            State::AvgDecimal { sums, counts, .. } => {
                sums.resize(groups, 0);
                counts.resize(groups, 0);
            }
            State::Extreme { best, .. } => best.resize(groups, None),
        }
    }

    fn fold(&mut self, batch: &RecordBatch, gids: &[u32]) -> Result<(), ArrowError> {
        match self {
            State::SumInt { column, sums, seen } => {
                // Spark's default (non-ANSI) sum wraps on overflow rather than failing the query.
                let array = batch.column(*column);
                for_each_i64(array, gids, |g, v| {
                    sums[g] = sums[g].wrapping_add(v);
                    seen[g] = true;
                })?;
            }
            State::SumFloat { column, sums, seen } => {
                let array = batch.column(*column).as_primitive::<Float64Type>();
                for_each_valid(array, gids, |g, i| {
                    sums[g] += array.value(i);
                    seen[g] = true;
                });
            }
            State::SumDecimal {
                column, sums, seen, ..
            } => {
                let array = batch.column(*column).as_primitive::<Decimal128Type>();
                for_each_valid(array, gids, |g, i| {
                    sums[g] = sums[g].wrapping_add(array.value(i));
                    seen[g] = true;
                });
            }
            State::Count {
                column: None,
                counts,
            } => {
                for &g in gids {
                    counts[g as usize] += 1;
                }
            }
            State::Count {
                column: Some(column),
                counts,
            } => {
                let array = batch.column(*column);
                for_each_valid(array.as_ref(), gids, |g, _| counts[g] += 1);
            }
            State::AvgFloat {
                column,
                sums,
                counts,
            } => {
                let array = batch.column(*column);
                if let Some(floats) = array.as_primitive_opt::<Float64Type>() {
                    for_each_valid(floats, gids, |g, i| {
                        sums[g] += floats.value(i);
                        counts[g] += 1;
                    });
                } else {
                    for_each_i64(array, gids, |g, v| {
                        sums[g] += v as f64;
                        counts[g] += 1;
                    })?;
                }
            }
            State::AvgDecimal {
                column,
                sums,
                counts,
                ..
            } => {
                let array = batch.column(*column).as_primitive::<Decimal128Type>();
                for_each_valid(array, gids, |g, i| {
                    sums[g] = sums[g].wrapping_add(array.value(i));
                    counts[g] += 1;
                });
            }
            State::Extreme {
                column,
                min,
                converter,
                best,
                ..
            } => {
                let array = batch.column(*column);
                let rows = converter.convert_columns(std::slice::from_ref(array))?;
                for (i, &g) in gids.iter().enumerate() {
                    if array.is_null(i) {
                        continue;
                    }
                    let row = rows.row(i);
                    let better = match &best[g as usize] {
                        None => true,
                        Some(current) if *min => row < current.row(),
                        Some(current) => row > current.row(),
                    };
                    if better {
                        best[g as usize] = Some(row.owned());
                    }
                }
            }
        }
        Ok(())
    }

    /// Folds group `h` of `other` (the same aggregate's accumulators) into group `g`: how
    /// two session windows that a row bridges become one.
    // Windows need expressions; without them nothing merges.
    #[cfg_attr(not(feature = "expressions"), allow(dead_code))]
    fn merge(&mut self, g: usize, other: &State, h: usize) {
        match (self, other) {
            (
                State::SumInt { sums, seen, .. },
                State::SumInt {
                    sums: o, seen: os, ..
                },
            ) if os[h] => {
                sums[g] = sums[g].wrapping_add(o[h]);
                seen[g] = true;
            }
            (
                State::SumFloat { sums, seen, .. },
                State::SumFloat {
                    sums: o, seen: os, ..
                },
            ) if os[h] => {
                sums[g] += o[h];
                seen[g] = true;
            }
            (
                State::SumDecimal { sums, seen, .. },
                State::SumDecimal {
                    sums: o, seen: os, ..
                },
            ) if os[h] => {
                sums[g] = sums[g].wrapping_add(o[h]);
                seen[g] = true;
            }
            (State::Count { counts, .. }, State::Count { counts: o, .. }) => counts[g] += o[h],
            (
                State::AvgFloat { sums, counts, .. },
                State::AvgFloat {
                    sums: os,
                    counts: oc,
                    ..
                },
            ) => {
                sums[g] += os[h];
                counts[g] += oc[h];
            }
            (
                State::AvgDecimal { sums, counts, .. },
                State::AvgDecimal {
                    sums: os,
                    counts: oc,
                    ..
                },
            ) => {
                sums[g] = sums[g].wrapping_add(os[h]);
                counts[g] += oc[h];
            }
            (State::Extreme { min, best, .. }, State::Extreme { best: o, .. }) => {
                if let Some(theirs) = &o[h] {
                    let better = match &best[g] {
                        None => true,
                        Some(current) if *min => theirs.row() < current.row(),
                        Some(current) => theirs.row() > current.row(),
                    };
                    if better {
                        best[g] = Some(theirs.clone());
                    }
                }
            }
            // A sum the other group never saw; or (both sides come from the same settings)
            // nothing else.
            _ => {}
        }
    }

    /// Appends group `g`'s accumulators to `out`, for a checkpoint.
    fn encode(&self, g: usize, out: &mut Vec<u8>) {
        match self {
            State::SumInt { sums, seen, .. } => {
                out.push(u8::from(seen[g]));
                out.extend_from_slice(&sums[g].to_le_bytes());
            }
            State::SumFloat { sums, seen, .. } => {
                out.push(u8::from(seen[g]));
                out.extend_from_slice(&sums[g].to_le_bytes());
            }
            State::SumDecimal { sums, seen, .. } => {
                out.push(u8::from(seen[g]));
                out.extend_from_slice(&sums[g].to_le_bytes());
            }
            State::Count { counts, .. } => out.extend_from_slice(&counts[g].to_le_bytes()),
            State::AvgFloat { sums, counts, .. } => {
                out.extend_from_slice(&sums[g].to_le_bytes());
                out.extend_from_slice(&counts[g].to_le_bytes());
            }
            State::AvgDecimal { sums, counts, .. } => {
                out.extend_from_slice(&sums[g].to_le_bytes());
                out.extend_from_slice(&counts[g].to_le_bytes());
            }
            State::Extreme { best, .. } => match &best[g] {
                None => out.push(0),
                Some(row) => {
                    let bytes = row.row();
                    let bytes = bytes.as_ref();
                    out.push(1);
                    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                    out.extend_from_slice(bytes);
                }
            },
        }
    }

    /// Reads group `g`'s accumulators from the front of `input`, as [`State::encode`] wrote them.
    fn decode(&mut self, g: usize, input: &mut &[u8]) -> Option<()> {
        match self {
            State::SumInt { sums, seen, .. } => {
                seen[g] = take(input, 1)?[0] == 1;
                sums[g] = i64::from_le_bytes(take(input, 8)?.try_into().ok()?);
            }
            State::SumFloat { sums, seen, .. } => {
                seen[g] = take(input, 1)?[0] == 1;
                sums[g] = f64::from_le_bytes(take(input, 8)?.try_into().ok()?);
            }
            State::SumDecimal { sums, seen, .. } => {
                seen[g] = take(input, 1)?[0] == 1;
                sums[g] = i128::from_le_bytes(take(input, 16)?.try_into().ok()?);
            }
            State::Count { counts, .. } => {
                counts[g] = i64::from_le_bytes(take(input, 8)?.try_into().ok()?)
            }
            State::AvgFloat { sums, counts, .. } => {
                sums[g] = f64::from_le_bytes(take(input, 8)?.try_into().ok()?);
                counts[g] = i64::from_le_bytes(take(input, 8)?.try_into().ok()?);
            }
            State::AvgDecimal { sums, counts, .. } => {
                sums[g] = i128::from_le_bytes(take(input, 16)?.try_into().ok()?);
                counts[g] = i64::from_le_bytes(take(input, 8)?.try_into().ok()?);
            }
            State::Extreme {
                best, converter, ..
            } => {
                best[g] = match take(input, 1)?[0] {
                    0 => None,
                    _ => {
                        let len = u32::from_le_bytes(take(input, 4)?.try_into().ok()?) as usize;
                        Some(converter.parser().parse(take(input, len)?).owned())
                    }
                };
            }
        }
        Some(())
    }

    fn output(&self, groups: &[u32]) -> Result<ArrayRef, ArrowError> {
        let pick = |seen: &[bool], g: u32| seen[g as usize];
        Ok(match self {
            State::SumInt { sums, seen, .. } => Arc::new(Int64Array::from_iter(
                groups
                    .iter()
                    .map(|&g| pick(seen, g).then(|| sums[g as usize])),
            )),
            State::SumFloat { sums, seen, .. } => Arc::new(Float64Array::from_iter(
                groups
                    .iter()
                    .map(|&g| pick(seen, g).then(|| sums[g as usize])),
            )),
            State::SumDecimal {
                sums, seen, out, ..
            } => Arc::new(
                Decimal128Array::from_iter(
                    groups
                        .iter()
                        .map(|&g| pick(seen, g).then(|| sums[g as usize])),
                )
                .with_data_type(out.clone()),
            ),
            State::Count { counts, .. } => Arc::new(Int64Array::from_iter_values(
                groups.iter().map(|&g| counts[g as usize]),
            )),
            State::AvgFloat { sums, counts, .. } => {
                Arc::new(Float64Array::from_iter(groups.iter().map(|&g| {
                    let (sum, n) = (sums[g as usize], counts[g as usize]);
                    (n > 0).then(|| sum / n as f64)
                })))
            }
            State::AvgDecimal {
                sums, counts, out, ..
            } => {
                // The sum has the input's scale; the average has four more digits, as in Spark.
                Arc::new(
                    Decimal128Array::from_iter(groups.iter().map(|&g| {
                        let (sum, n) = (sums[g as usize], counts[g as usize] as i128);
                        (n > 0).then(|| sum.saturating_mul(10_000) / n)
                    }))
                    .with_data_type(out.clone()),
                )
            }
            State::Extreme {
                converter,
                best,
                out,
                ..
            } => {
                if groups.is_empty() {
                    return Ok(new_null_array(out, 0));
                }
                let null_row = converter.convert_columns(&[new_null_array(out, 1)])?;
                let rows = groups.iter().map(|&g| match &best[g as usize] {
                    Some(row) => row.row(),
                    None => null_row.row(0),
                });
                let mut arrays = converter.convert_rows(rows)?;
                arrays
                    .pop()
                    .ok_or_else(|| ArrowError::ComputeError("min/max produced no column".into()))?
            }
        })
    }
}

/// Splits `n` bytes off the front of `input`.
fn take<'a>(input: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if input.len() < n {
        return None;
    }
    let (head, tail) = input.split_at(n);
    *input = tail;
    Some(head)
}

/// Calls `f(group, value)` for every non-null value of an INT or BIGINT column.
fn for_each_i64(
    array: &ArrayRef,
    gids: &[u32],
    mut f: impl FnMut(usize, i64),
) -> Result<(), ArrowError> {
    if let Some(ints) = array.as_primitive_opt::<Int32Type>() {
        for_each_valid(ints, gids, |g, i| f(g, ints.value(i) as i64));
    } else if let Some(longs) = array.as_primitive_opt::<Int64Type>() {
        for_each_valid(longs, gids, |g, i| f(g, longs.value(i)));
    } else {
        return Err(ArrowError::InvalidArgumentError(format!(
            "expected an integer column, found {}",
            array.data_type()
        )));
    }
    Ok(())
}

/// Calls `f(group, row)` for every row whose value is not null.
fn for_each_valid(array: &dyn Array, gids: &[u32], mut f: impl FnMut(usize, usize)) {
    match array.logical_nulls() {
        None => gids.iter().enumerate().for_each(|(i, &g)| f(g as usize, i)),
        Some(nulls) => gids
            .iter()
            .enumerate()
            .filter(|(i, _)| nulls.is_valid(*i))
            .for_each(|(i, &g)| f(g as usize, i)),
    }
}

impl Aggregate {
    /// How many groups the state holds.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Every group's key as the checkpoint stores it, so that a windowed aggregate can
    /// delete a window's state when it is evicted.
    #[cfg_attr(not(feature = "expressions"), allow(dead_code))]
    pub(crate) fn state_keys(&self) -> Vec<Vec<u8>> {
        match self.settings.keys.is_empty() {
            true => self.groups.keys().map(|k| k.to_vec()).collect(),
            false => (0..self.groups.len())
                .map(|g| self.keys.row(g).data().to_vec())
                .collect(),
        }
    }

    /// Approximate bytes of the whole state, as [`Operator::snapshot`] reports it.
    #[cfg_attr(not(feature = "expressions"), allow(dead_code))]
    pub(crate) fn state_bytes(&self) -> u64 {
        let mut value = Vec::new();
        if !self.groups.is_empty() {
            for state in &self.states {
                state.encode(0, &mut value);
            }
        }
        // Every group's value has the same size but for min/max, so this is close enough.
        self.keys.size() as u64 + value.len().max(8) as u64 * self.groups.len() as u64
    }

    /// Folds every group of `other`, an aggregate built from the same settings, into this
    /// one's group of the same key.
    #[cfg_attr(not(feature = "expressions"), allow(dead_code))]
    pub(crate) fn merge(&mut self, other: &Aggregate) {
        // Rows carry their converter's identity; re-read the other's keys with this one's.
        let parser = self.converter.parser();
        for h in 0..other.groups.len() {
            let g = match other.settings.keys.is_empty() {
                true => {
                    if self.groups.is_empty() {
                        self.groups.insert(Box::default(), 0);
                        self.new_group(0);
                    }
                    0
                }
                false => self.group_of(parser.parse(other.keys.row(h).data())),
            };
            for (mine, theirs) in self.states.iter_mut().zip(&other.states) {
                mine.merge(g as usize, theirs, h);
            }
            if !self.is_changed[g as usize] {
                self.is_changed[g as usize] = true;
                self.changed.push(g);
            }
        }
    }

    /// Every group's key and accumulators, as a checkpoint stores them.
    #[cfg_attr(not(feature = "expressions"), allow(dead_code))]
    pub(crate) fn export(&self) -> StateEntries {
        let mut value = Vec::new();
        let keys = self.state_keys();
        (0..self.groups.len())
            .zip(keys)
            .map(|(g, key)| {
                value.clear();
                for state in &self.states {
                    state.encode(g, &mut value);
                }
                (key, value.clone())
            })
            .collect()
    }

    /// The whole result table now, whatever changed in the epoch.
    pub fn result(&self) -> Result<RecordBatch> {
        let all: Vec<u32> = (0..self.groups.len() as u32).collect();
        self.output(&all)
            .map_err(|e| Error::arrow("aggregate output", e))
    }

    fn assign_groups(&mut self, batch: &RecordBatch) -> Result<(), ArrowError> {
        let key_columns: Vec<ArrayRef> = self
            .settings
            .keys
            .iter()
            .map(|&i| batch.column(i).clone())
            .collect();
        self.group_ids.clear();
        if key_columns.is_empty() {
            // No group_by: one global group.
            if self.groups.is_empty() {
                self.groups.insert(Box::default(), 0);
                self.new_group(0);
            }
            self.group_ids.resize(batch.num_rows(), 0);
            return Ok(());
        }
        if let [only] = key_columns.as_slice() {
            if let Some(strings) = only.as_string_opt::<i32>() {
                return self.assign_string_groups(strings, &key_columns);
            }
        }
        let rows = self.converter.convert_columns(&key_columns)?;
        for row in rows.iter() {
            let id = self.group_of(row);
            self.group_ids.push(id);
        }
        Ok(())
    }

    /// The group of a row-encoded key, made if it is new.
    fn group_of(&mut self, row: arrow_row::Row<'_>) -> u32 {
        if let Some(&id) = self.groups.get(row.as_ref()) {
            return id;
        }
        let id = self.groups.len() as u32;
        self.groups.insert(row.as_ref().into(), id);
        self.keys.push(row);
        self.new_group(id);
        id
    }

    /// [`Aggregate::assign_groups`] for one string key column: look the value up as it is,
    /// and row-encode the batch only if some value is new to the cache.
    fn assign_string_groups(
        &mut self,
        strings: &arrow_array::StringArray,
        key_columns: &[ArrayRef],
    ) -> Result<(), ArrowError> {
        let mut rows: Option<Rows> = None;
        for i in 0..strings.len() {
            let cached = match strings.is_null(i) {
                true => self.null_group,
                false => self.by_string.get(strings.value(i).as_bytes()).copied(),
            };
            let id = match cached {
                Some(id) => id,
                None => {
                    if rows.is_none() {
                        rows = Some(self.converter.convert_columns(key_columns)?);
                    }
                    let Some(rows) = rows.as_ref() else {
                        return Err(ArrowError::ComputeError("row encoding vanished".into()));
                    };
                    // Known to `groups` (restored from a checkpoint) or new.
                    let id = self.group_of(rows.row(i));
                    match strings.is_null(i) {
                        true => self.null_group = Some(id),
                        false => {
                            self.by_string
                                .insert(strings.value(i).as_bytes().into(), id);
                        }
                    }
                    id
                }
            };
            self.group_ids.push(id);
        }
        Ok(())
    }

    fn new_group(&mut self, id: u32) {
        let groups = id as usize + 1;
        self.is_changed.resize(groups, false);
        for state in &mut self.states {
            state.grow(groups);
        }
    }

    fn output(&self, groups: &[u32]) -> Result<RecordBatch, ArrowError> {
        let mut columns = if self.settings.keys.is_empty() {
            Vec::new()
        } else {
            self.converter
                .convert_rows(groups.iter().map(|&g| self.keys.row(g as usize)))?
        };
        for state in &self.states {
            columns.push(state.output(groups)?);
        }
        RecordBatch::try_new(self.settings.output.clone(), columns)
    }
}

/// The keys and arguments of every row of `batch`, as the accumulators read them.
fn project(inputs: &[Input], schema: &SchemaRef, batch: &RecordBatch) -> Result<RecordBatch> {
    let columns = inputs
        .iter()
        .map(|input| {
            let array = input
                .expr
                .evaluate(batch)
                .map_err(|e| Error::Input(e.to_string()))?;
            match &input.cast {
                None => Ok(array),
                Some(to) => arrow_cast::cast(&array, to).map_err(|e| Error::arrow("aggregate", e)),
            }
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(schema.clone(), columns, &options)
        .map_err(|e| Error::arrow("aggregate", e))
}

impl Operator for Aggregate {
    fn output_schema(&self) -> SchemaRef {
        self.settings.output.clone()
    }

    fn process(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        let context = |e| Error::arrow("aggregate", e);
        let batch = match &self.settings.projection {
            None => batch,
            Some((inputs, schema)) => project(inputs, schema, &batch)?,
        };
        self.assign_groups(&batch).map_err(context)?;
        for state in &mut self.states {
            state.fold(&batch, &self.group_ids).map_err(context)?;
        }
        for &g in &self.group_ids {
            if !self.is_changed[g as usize] {
                self.is_changed[g as usize] = true;
                self.changed.push(g);
            }
        }
        Ok(None)
    }

    fn emit(&mut self, mode: OutputMode) -> Result<Option<RecordBatch>> {
        // Nothing new in this epoch: nothing to say, in any mode.
        if self.changed.is_empty() {
            return Ok(None);
        }
        let groups: Vec<u32> = match mode {
            OutputMode::Update => self.changed.clone(),
            OutputMode::Complete | OutputMode::Append => (0..self.groups.len() as u32).collect(),
        };
        self.output(&groups)
            .map(Some)
            .map_err(|e| Error::arrow("aggregate output", e))
    }

    /// The groups that changed in the epoch: key = the group key in arrow-row form, value =
    /// every aggregate's accumulators. Unchanged groups cost nothing.
    fn snapshot(&mut self, _epoch: Epoch) -> Result<StageSnapshot> {
        let mut snapshot = StageSnapshot::default();
        let mut value = Vec::new();
        for &g in &self.changed {
            value.clear();
            for state in &self.states {
                state.encode(g as usize, &mut value);
            }
            let key: &[u8] = match self.settings.keys.is_empty() {
                true => &[],
                false => self.keys.row(g as usize).data(),
            };
            snapshot.delta.put(key, value.as_slice());
        }
        snapshot.state_keys = self.groups.len() as u64;
        // Every group's value has the same size but for min/max, so this is close enough.
        let value_bytes = value.len().max(8) as u64;
        snapshot.state_bytes = self.keys.size() as u64 + value_bytes * self.groups.len() as u64;
        snapshot.detail = format!(
            "{} group(s), {} changed",
            self.groups.len(),
            self.changed.len()
        );
        Ok(snapshot)
    }

    fn restore(&mut self, state: StateEntries) -> Result<()> {
        let parser = self.converter.parser();
        self.groups.reserve(state.len());
        // Every accumulator grows once for all restored groups, not once per group.
        if let Some(last) = (self.groups.len() + state.len()).checked_sub(1) {
            self.new_group(last as u32);
        }
        for (key, value) in state {
            let id = self.groups.len() as u32;
            if !self.settings.keys.is_empty() {
                self.keys.push(parser.parse(&key));
            }
            self.groups.insert(key.into_boxed_slice(), id);
            let mut input = value.as_slice();
            for state in &mut self.states {
                state.decode(id as usize, &mut input).ok_or_else(|| {
                    Error::Internal(format!("aggregate state of group {id} is cut short"))
                })?;
            }
        }
        Ok(())
    }

    fn end_epoch(&mut self, _epoch: Epoch) -> Result<()> {
        for &g in &self.changed {
            self.is_changed[g as usize] = false;
        }
        self.changed.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int32Array, StringArray};
    use weir_core::parse_ddl;

    fn batch(schema: &SchemaRef, shops: &[Option<&str>], counts: &[Option<i32>]) -> RecordBatch {
        let files = StringArray::from(vec!["f"; shops.len()]);
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(files),
                Arc::new(StringArray::from(shops.to_vec())),
                Arc::new(Int32Array::from(counts.to_vec())),
            ],
        )
        .unwrap()
    }

    fn aggregate(aggregates: &[&str]) -> (SchemaRef, Aggregate) {
        let schema = parse_ddl("File STRING, Shop STRING, Sale_Count INT").unwrap();
        let config = AggregateConfig {
            group_by: vec!["Shop".into()],
            aggregates: aggregates.iter().map(|s| s.to_string()).collect(),
        };
        let agg = config.validate(&schema).unwrap().build().unwrap();
        (schema, agg)
    }

    /// Renders each row as `key|v1|v2`, with `null` for nulls.
    fn rows(batch: &RecordBatch) -> Vec<String> {
        (0..batch.num_rows())
            .map(|r| {
                batch
                    .columns()
                    .iter()
                    .map(|c| {
                        if c.is_null(r) {
                            return "null".to_string();
                        }
                        if let Some(s) = c.as_string_opt::<i32>() {
                            return s.value(r).to_string();
                        }
                        if let Some(v) = c.as_primitive_opt::<Int64Type>() {
                            return v.value(r).to_string();
                        }
                        if let Some(v) = c.as_primitive_opt::<Int32Type>() {
                            return v.value(r).to_string();
                        }
                        if let Some(v) = c.as_primitive_opt::<Float64Type>() {
                            return v.value(r).to_string();
                        }
                        format!("{:?}", c.data_type())
                    })
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect()
    }

    #[test]
    fn names_columns_as_spark_does() {
        let (_, agg) = aggregate(&[
            "sum(Sale_Count)",
            "count(*)",
            "COUNT(Sale_Count)",
            "avg(Sale_Count) as mean",
        ]);
        let names: Vec<_> = agg
            .output_schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(
            names,
            [
                "Shop",
                "sum(Sale_Count)",
                "count(1)",
                "count(Sale_Count)",
                "mean"
            ]
        );
        assert_eq!(agg.output_schema().field(1).data_type(), &DataType::Int64);
    }

    #[test]
    fn computes_every_function_with_sql_null_rules() {
        let (schema, mut agg) = aggregate(&[
            "sum(Sale_Count)",
            "count(*)",
            "count(Sale_Count)",
            "min(Sale_Count)",
            "max(Sale_Count)",
            "avg(Sale_Count)",
        ]);
        agg.process(batch(
            &schema,
            &[Some("a"), Some("b"), Some("a"), None],
            &[Some(1), None, Some(4), Some(7)],
        ))
        .unwrap();
        let out = agg.emit(OutputMode::Complete).unwrap().unwrap();
        assert_eq!(
            rows(&out),
            [
                "a|5|2|2|1|4|2.5",
                "b|null|1|0|null|null|null",
                "null|7|1|1|7|7|7"
            ]
        );
    }

    #[test]
    fn string_keys_keep_null_and_empty_apart_across_batches_and_restores() {
        let (schema, mut agg) = aggregate(&["sum(Sale_Count)"]);
        agg.process(batch(
            &schema,
            &[Some(""), None, Some("a")],
            &[Some(1), Some(2), Some(3)],
        ))
        .unwrap();
        let state = agg.snapshot(Epoch(1)).unwrap().delta.into_entries();
        // A restored aggregate knows the groups by their row encoding only: its first batch
        // must still find them, not make new ones.
        let (_, mut restored) = aggregate(&["sum(Sale_Count)"]);
        restored.restore(state).unwrap();
        for agg in [&mut agg, &mut restored] {
            agg.process(batch(
                &schema,
                &[None, Some(""), Some("a"), None],
                &[Some(10), Some(20), Some(30), Some(40)],
            ))
            .unwrap();
            let mut table = rows(&agg.emit(OutputMode::Complete).unwrap().unwrap());
            table.sort();
            assert_eq!(table, ["a|33", "null|52", "|21"]);
        }
    }

    #[test]
    fn update_emits_only_changed_groups_and_complete_emits_all() {
        let (schema, mut agg) = aggregate(&["sum(Sale_Count)"]);
        agg.process(batch(&schema, &[Some("a"), Some("b")], &[Some(1), Some(2)]))
            .unwrap();
        agg.end_epoch(Epoch(1)).unwrap();
        agg.process(batch(&schema, &[Some("b")], &[Some(10)]))
            .unwrap();
        assert_eq!(
            rows(&agg.emit(OutputMode::Update).unwrap().unwrap()),
            ["b|12"]
        );
        assert_eq!(
            rows(&agg.emit(OutputMode::Complete).unwrap().unwrap()),
            ["a|1", "b|12"]
        );
        agg.end_epoch(Epoch(2)).unwrap();
        assert!(
            agg.emit(OutputMode::Complete).unwrap().is_none(),
            "an epoch with no input emits nothing"
        );
    }

    #[test]
    fn min_and_max_work_on_strings() {
        let schema = parse_ddl("File STRING, Shop STRING, Sale_Count INT").unwrap();
        let config = AggregateConfig {
            group_by: vec![],
            aggregates: vec!["min(Shop)".into(), "max(Shop)".into()],
        };
        let mut agg = config.validate(&schema).unwrap().build().unwrap();
        agg.process(batch(
            &schema,
            &[Some("m"), Some("c"), None, Some("x")],
            &[None, None, None, None],
        ))
        .unwrap();
        assert_eq!(
            rows(&agg.emit(OutputMode::Complete).unwrap().unwrap()),
            ["c|x"]
        );
    }

    #[test]
    #[cfg(feature = "expressions")]
    fn validation_lists_columns_and_refuses_sums_of_strings() {
        let schema = parse_ddl("File STRING, Shop STRING, Sale_Count INT").unwrap();
        let config = AggregateConfig {
            group_by: vec!["Shopp".into()],
            aggregates: vec![
                "sum(Shop)".into(),
                "median(Sale_Count)".into(),
                "sum(Nope)".into(),
            ],
        };
        let errors = config.validate(&schema).unwrap_err();
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(errors.len(), 4, "{text:?}");
        assert_eq!(
            text[0],
            "group_by[0]: unknown column \"Shopp\" in \"Shopp\" (the input has File, Shop, Sale_Count; did you mean \"Shop\"?)"
        );
        assert!(
            text[1].contains("sum(Shop) needs a numeric column, but \"Shop\" is STRING"),
            "{text:?}"
        );
        assert!(
            text[2].contains("unknown aggregate function \"median\""),
            "{text:?}"
        );
        assert!(text[3].contains("unknown column \"Nope\""), "{text:?}");
    }

    #[test]
    #[cfg(feature = "expressions")]
    fn groups_and_sums_expressions() {
        let schema = parse_ddl("File STRING, Shop STRING, Sale_Count INT").unwrap();
        let config = AggregateConfig {
            group_by: vec!["lower(shop) AS shop".into()],
            aggregates: vec![
                "sum(Sale_Count * 2)".into(),
                "count(*) AS n".into(),
                "avg(CAST(sale_count AS DOUBLE))".into(),
            ],
        };
        let settings = config.validate(&schema).unwrap();
        let names: Vec<_> = settings
            .output_schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(
            names,
            [
                "shop",
                "sum((Sale_Count * 2))",
                "n",
                "avg(CAST(Sale_Count AS DOUBLE))"
            ]
        );
        let mut agg = settings.build().unwrap();
        agg.process(batch(
            &schema,
            &[Some("A"), Some("a"), Some("B"), None],
            &[Some(1), Some(4), None, Some(7)],
        ))
        .unwrap();
        let mut table = rows(&agg.emit(OutputMode::Complete).unwrap().unwrap());
        table.sort();
        assert_eq!(table, ["a|10|2|2.5", "b|null|1|null", "null|14|1|7"]);
    }
}
