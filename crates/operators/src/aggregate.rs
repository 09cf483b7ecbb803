use std::collections::HashMap;
use std::sync::Arc;

use crate::accumulator::{
    one_nan, AccumulateError, Accumulator, Average, Count, DecimalAverage, ExactSum, Extreme,
    FloatAverage, FloatExtreme, FloatSum, OnOverflow,
};
use crate::expr::{AggregateCall, AggregateFunction, Expression};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type};
use arrow_array::{Array, ArrayRef, RecordBatch, RecordBatchOptions};
use arrow_row::{RowConverter, Rows, SortField};
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
    TrySum,
    Count,
    Min,
    Max,
    Avg,
}

impl From<AggregateFunction> for Function {
    fn from(function: AggregateFunction) -> Self {
        match function {
            AggregateFunction::Sum => Function::Sum,
            AggregateFunction::TrySum => Function::TrySum,
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
    /// The type the accumulator reads (after widening); `None` for `count(*)`.
    input: Option<DataType>,
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
            input: None,
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
        Function::TrySum => "try_sum",
        Function::Avg => "avg",
        _ => "",
    };
    let out_type = match function {
        Function::Count => DataType::Int64,
        Function::Min | Function::Max => data_type.clone(),
        Function::Sum | Function::TrySum | Function::Avg if !numeric => {
            return Err(format!(
                "{function_name}({written}) needs a numeric column, but \"{written}\" is {}",
                ddl_type_name(&data_type)
            ))
        }
        Function::Sum | Function::TrySum => match data_type {
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
        input: Some(data_type),
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
            .map(accumulator_for)
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
    /// One per aggregate, in the output's order.
    states: Vec<Box<dyn Accumulator>>,
    /// Groups that changed in the current epoch, for `update` mode.
    changed: Vec<u32>,
    is_changed: Vec<bool>,
    /// Scratch: the group of each row of the batch being folded in.
    group_ids: Vec<u32>,
}

/// A key column as grouping compares it: as Spark normalizes floating-point keys, -0.0 is 0.0
/// and every NaN is one NaN, so that each is one group.
fn grouping_value(column: &ArrayRef) -> ArrayRef {
    let zero_or_nan = |v: f64| if v == 0.0 { 0.0 } else { one_nan(v) };
    if let Some(doubles) = column.as_primitive_opt::<Float64Type>() {
        return Arc::new(doubles.unary::<_, Float64Type>(zero_or_nan));
    }
    if let Some(floats) = column.as_primitive_opt::<Float32Type>() {
        return Arc::new(floats.unary::<_, Float32Type>(|v| zero_or_nan(f64::from(v)) as f32));
    }
    column.clone()
}

/// The accumulator of one aggregate.
fn accumulator_for(spec: &AggregateSpec) -> Result<Box<dyn Accumulator>> {
    let out = spec.output.data_type().clone();
    let column = || {
        spec.column
            .ok_or_else(|| Error::Internal("aggregate without a column".into()))
    };
    let on_overflow = match spec.function {
        Function::TrySum => OnOverflow::Null,
        _ => OnOverflow::Fail,
    };
    Ok(match (spec.function, &out) {
        (Function::Count, _) => Box::new(Count::new(spec.column)),
        (Function::Sum | Function::TrySum, DataType::Float64) => Box::new(FloatSum::new(column()?)),
        (Function::Sum | Function::TrySum, DataType::Decimal128(..)) => {
            Box::new(ExactSum::<i128>::new(column()?, out, on_overflow))
        }
        (Function::Sum | Function::TrySum, _) => {
            Box::new(ExactSum::<i64>::new(column()?, out, on_overflow))
        }
        (Function::Avg, DataType::Decimal128(..)) => {
            let input = spec.input.clone().unwrap_or_else(|| out.clone());
            Box::new(Average::new(column()?, DecimalAverage::new(&input, out)))
        }
        (Function::Avg, _) => Box::new(Average::new(column()?, FloatAverage)),
        (Function::Min | Function::Max, DataType::Float64) => {
            Box::new(FloatExtreme::new(column()?, spec.function == Function::Min))
        }
        (Function::Min | Function::Max, _) => Box::new(
            Extreme::new(column()?, spec.function == Function::Min, out).map_err(|e| {
                Error::Internal(format!("min/max column cannot be row-encoded: {e}"))
            })?,
        ),
    })
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
    pub(crate) fn merge(&mut self, other: &Aggregate) -> Result<()> {
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
            for (i, (mine, theirs)) in self.states.iter_mut().zip(&other.states).enumerate() {
                if let Err(e) = mine.merge(g as usize, theirs.as_ref(), h) {
                    return Err(self.accumulate_error(i, e));
                }
            }
            if !self.is_changed[g as usize] {
                self.is_changed[g as usize] = true;
                self.changed.push(g);
            }
        }
        Ok(())
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
    }

    fn assign_groups(&mut self, batch: &RecordBatch) -> Result<(), ArrowError> {
        let key_columns: Vec<ArrayRef> = self
            .settings
            .keys
            .iter()
            .map(|&i| grouping_value(batch.column(i)))
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

    fn output(&self, groups: &[u32]) -> Result<RecordBatch> {
        let context = |e| Error::arrow("aggregate output", e);
        let mut columns = if self.settings.keys.is_empty() {
            Vec::new()
        } else {
            self.converter
                .convert_rows(groups.iter().map(|&g| self.keys.row(g as usize)))
                .map_err(context)?
        };
        for (i, state) in self.states.iter().enumerate() {
            columns.push(
                state
                    .output(groups)
                    .map_err(|e| self.accumulate_error(i, e))?,
            );
        }
        RecordBatch::try_new(self.settings.output.clone(), columns).map_err(context)
    }

    /// The error of aggregate `i`, with an overflow's group named by its key.
    fn accumulate_error(&self, i: usize, error: AccumulateError) -> Error {
        let name = self
            .settings
            .output
            .field(self.settings.keys.len() + i)
            .name();
        match error {
            AccumulateError::Arrow(e) => Error::arrow(format!("aggregate {name}"), e),
            AccumulateError::Mismatch => {
                Error::Internal(format!("aggregate {name}: accumulators of two kinds met"))
            }
            AccumulateError::Overflow { group, detail } => {
                let tip = match name.strip_prefix("sum(") {
                    Some(rest) => format!("; try_sum({rest} gives NULL instead"),
                    None => String::new(),
                };
                Error::Input(format!(
                    "aggregate {name}: {detail}, in the group {} (Spark 4 in ANSI mode fails here too{tip}, or cast the argument to DOUBLE or a wider DECIMAL)",
                    self.describe_group(group)
                ))
            }
        }
    }

    /// `Shop = "Shop_001"`, for messages; "of the whole stream" without group keys.
    fn describe_group(&self, group: u32) -> String {
        if self.settings.keys.is_empty() {
            return "of the whole stream".into();
        }
        let Ok(columns) = self
            .converter
            .convert_rows(std::iter::once(self.keys.row(group as usize)))
        else {
            return format!("#{group}");
        };
        let fields = self.settings.output.fields();
        columns
            .iter()
            .zip(fields.iter())
            .map(|(column, field)| {
                let value = match arrow_cast::display::array_value_to_string(column, 0) {
                    _ if column.is_null(0) => "NULL".to_string(),
                    Ok(text) if column.data_type() == &DataType::Utf8 => format!("{text:?}"),
                    Ok(text) => text,
                    Err(_) => "?".into(),
                };
                format!("{} = {value}", field.name())
            })
            .collect::<Vec<_>>()
            .join(", ")
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
        let batch = match &self.settings.projection {
            None => batch,
            Some((inputs, schema)) => project(inputs, schema, &batch)?,
        };
        self.assign_groups(&batch)
            .map_err(|e| Error::arrow("aggregate", e))?;
        for i in 0..self.states.len() {
            if let Err(e) = self.states[i].fold(&batch, &self.group_ids) {
                return Err(self.accumulate_error(i, e));
            }
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
        self.output(&groups).map(Some)
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
    use arrow_array::types::{Int32Type, Int64Type};
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
