//! Partial aggregation over a small integer key (`GROUP BY pin`) or a dictionary-encoded text
//! key (`GROUP BY text`) in plain arrays.
//!
//! DataFusion's partial aggregation hashes every row's group key to find its group. For a key
//! of 8 or 16 bits, such as `telemetry.pin`, the key itself can index the group's state, and a
//! `GROUP BY pin` over all data spent more time in that hash lookup than in reading Parquet.
//! For a `Dictionary(Int32, Utf8)` key, such as `telemetry.text`, each batch's dictionary
//! (a handful of states, shared by the batches of a Parquet column chunk) is mapped to groups
//! once, and each row's dictionary key then indexes that map: no string is hashed or copied
//! per row (DataFusion 55 groups dictionary keys by their strings, row by row).
//! [`DenseGroupBy`] replaces a partial `AggregateExec` grouping by one such column with only
//! `count`, `sum` and `avg` of `Float64` (or `count` of anything) by [`DenseAggregateExec`],
//! which emits the same partial state (same schema, same sums in the same row order) for
//! DataFusion's final aggregation to merge. Any other aggregation is left as it is.
//!
//! A `FilterExec` right below such an aggregation (`WHERE pin = 3 GROUP BY text`) is folded
//! into it when the key and the aggregates' arguments are plain columns: the predicate gives
//! the indices of the rows it keeps, and only the key and the arguments are gathered at them
//! (the filter copied every column it passed on), and `column = literal` on a small integer
//! column is compared inline (DataFusion's comparison kernel calls a function per row).
//! Arguments that are expressions keep the filter, since evaluating them on rows the filter
//! drops could fail (`1 / x` with `WHERE x <> 0`).
//!
//! Rows of one group come in runs in the store's files (sorted by device, then pin, then
//! time); the counts and sums of the current run's group are kept in registers while the run
//! lasts, each still added in row order, so the results are bit for bit DataFusion's.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray, UInt16Array,
    UInt32Array, UInt64Array,
};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int32Type, SchemaRef, UInt16Type};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result, ScalarValue, internal_err};
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::physical_plan::InputOrderMode;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::execution_plan::{
    Boundedness, EmissionType, ExecutionPlanProperties,
};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ColumnarValue, DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties,
};
use futures::StreamExt;

/// One aggregate of the partial aggregation, by the state it keeps.
#[derive(Debug, Clone)]
enum Agg {
    /// `count(arg)`: non-null values (every row for a non-null literal, as in `count(*)`).
    Count(Arc<dyn PhysicalExpr>),
    /// `sum(arg)` of `Float64`: the sum, null while no value was seen.
    Sum(Arc<dyn PhysicalExpr>),
    /// `avg(arg)` of `Float64`: count and sum of the non-null values.
    Avg(Arc<dyn PhysicalExpr>),
}

impl Agg {
    fn arg(&self) -> &Arc<dyn PhysicalExpr> {
        match self {
            Agg::Count(e) | Agg::Sum(e) | Agg::Avg(e) => e,
        }
    }
}

/// What the group key is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum KeyKind {
    /// `UInt8` or `UInt16`: the key indexes the groups.
    Small,
    /// `Dictionary(Int32, Utf8)`: the batch's dictionary is mapped to groups.
    Text,
}

impl KeyKind {
    fn of(data_type: &DataType) -> Option<Self> {
        match data_type {
            DataType::UInt8 | DataType::UInt16 => Some(KeyKind::Small),
            DataType::Dictionary(key, value)
                if **key == DataType::Int32 && **value == DataType::Utf8 =>
            {
                Some(KeyKind::Text)
            }
            _ => None,
        }
    }
}

/// A filter folded into the aggregation: which rows of an input batch it keeps.
#[derive(Debug, Clone)]
struct RowFilter {
    predicate: Arc<dyn PhysicalExpr>,
    /// `column = value` over a `UInt8` or `UInt16` column: compared inline.
    small_eq: Option<(usize, u16)>,
}

impl RowFilter {
    fn new(predicate: &Arc<dyn PhysicalExpr>, input_schema: &SchemaRef) -> Self {
        let small_eq = || {
            let binary = predicate.downcast_ref::<BinaryExpr>()?;
            if *binary.op() != Operator::Eq {
                return None;
            }
            let (left, right) = (binary.left(), binary.right());
            let (column, literal) = match (
                left.downcast_ref::<Column>(),
                right.downcast_ref::<Literal>(),
            ) {
                (Some(c), Some(l)) => (c, l),
                _ => (
                    right.downcast_ref::<Column>()?,
                    left.downcast_ref::<Literal>()?,
                ),
            };
            let value = match (
                input_schema.field(column.index()).data_type(),
                literal.value(),
            ) {
                (DataType::UInt8, ScalarValue::UInt8(Some(v))) => u16::from(*v),
                (DataType::UInt16, ScalarValue::UInt16(Some(v))) => *v,
                _ => return None,
            };
            Some((column.index(), value))
        };
        Self {
            predicate: Arc::clone(predicate),
            small_eq: small_eq(),
        }
    }

    /// The rows of `batch` the filter keeps, in order; `None` when it keeps every row.
    fn kept_rows(&self, batch: &RecordBatch) -> Result<Option<Vec<u32>>> {
        let rows = batch.num_rows();
        let Ok(_) = u32::try_from(rows) else {
            return internal_err!("DenseAggregateExec: a batch of {rows} rows");
        };
        Ok(match self.small_eq {
            Some((column, value)) => {
                let column = cast(batch.column(column), &DataType::UInt16)?;
                let column = column.as_primitive::<UInt16Type>();
                // A null comparison keeps no row, as in `FilterExec`.
                match (equal_rows(column.values(), value), column.nulls()) {
                    (None, None) => None,
                    (None, Some(nulls)) => Some(nulls.valid_indices().map(|i| i as u32).collect()),
                    (Some(mut kept), Some(nulls)) => {
                        kept.retain(|&i| nulls.is_valid(i as usize));
                        Some(kept)
                    }
                    (Some(kept), None) => Some(kept),
                }
            }
            None => match self.predicate.evaluate(batch)? {
                ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))) => None,
                ColumnarValue::Scalar(_) => Some(Vec::new()),
                ColumnarValue::Array(array) => {
                    let Some(mask) = array.as_boolean_opt() else {
                        return internal_err!("DenseAggregateExec: the filter is not boolean");
                    };
                    let mask = match mask.nulls() {
                        Some(nulls) => mask.values() & nulls.inner(),
                        None => mask.values().clone(),
                    };
                    (mask.count_set_bits() < rows)
                        .then(|| mask.set_indices().map(|i| i as u32).collect())
                }
            },
        })
    }
}

/// The rows whose value is `value`, in order; `None` when every row has it (files sorted pin
/// first give whole batches of the pin a filter asks for). The check for that is one
/// vectorized pass; otherwise every row's index is written and the count moves on past the
/// kept ones only, with no branch on the comparison.
fn equal_rows(values: &[u16], value: u16) -> Option<Vec<u32>> {
    if values.iter().fold(true, |all, &v| all & (v == value)) {
        return None;
    }
    let mut kept = vec![0u32; values.len()];
    let mut n = 0;
    for (i, &v) in values.iter().enumerate() {
        kept[n] = i as u32;
        n += usize::from(v == value);
    }
    kept.truncate(n);
    Some(kept)
}

/// The physical optimizer rule putting [`DenseAggregateExec`] in place of eligible partial
/// aggregations.
#[derive(Debug, Default)]
pub struct DenseGroupBy;

impl DenseGroupBy {
    /// DataFusion's physical optimizer rules with this one just before the final sanity check
    /// (which then checks the rewritten plan too).
    pub fn with_default_rules() -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
        let mut rules = PhysicalOptimizer::new().rules;
        let at = rules
            .iter()
            .position(|rule| rule.name() == "SanityCheckPlan")
            .unwrap_or(rules.len());
        rules.insert(at, Arc::new(DenseGroupBy));
        rules
    }
}

impl PhysicalOptimizerRule for DenseGroupBy {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|plan| {
            let Some(agg) = plan.downcast_ref::<AggregateExec>() else {
                return Ok(Transformed::no(plan));
            };
            Ok(match DenseAggregateExec::try_replace(agg)? {
                Some(dense) => Transformed::yes(Arc::new(dense) as Arc<dyn ExecutionPlan>),
                None => Transformed::no(plan),
            })
        })
        .data()
    }

    fn name(&self) -> &str {
        "dense_group_by"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// A partial aggregation grouping by one small integer or dictionary-encoded text column, its
/// groups' state in arrays indexed by group slot (slot 0 is the null key).
#[derive(Debug)]
pub struct DenseAggregateExec {
    input: Arc<dyn ExecutionPlan>,
    key: Arc<dyn PhysicalExpr>,
    kind: KeyKind,
    aggs: Vec<Agg>,
    /// The filter folded in from the input's `FilterExec`, over that filter's input.
    filter: Option<RowFilter>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl DenseAggregateExec {
    /// The dense form of `agg`, when it is a partial aggregation it can stand in for.
    fn try_replace(agg: &AggregateExec) -> Result<Option<Self>> {
        let input_schema = agg.input_schema();
        let group_by = agg.group_expr();
        if *agg.mode() != AggregateMode::Partial
            || !group_by.is_single()
            || group_by.expr().len() != 1
            || agg.limit_options().is_some()
            || agg.filter_expr().iter().any(Option::is_some)
            // An aggregation over input sorted on the key streams its groups in that order;
            // this one emits all groups at the end, in an order of its own.
            || *agg.input_order_mode() != InputOrderMode::Linear
        {
            return Ok(None);
        }
        let key = Arc::clone(&group_by.expr()[0].0);
        let Some(kind) = KeyKind::of(&key.data_type(&input_schema)?) else {
            return Ok(None);
        };
        let schema = agg.schema();
        // The partial state after the key, field by field, as the final aggregation reads it.
        let mut state = schema.fields().iter().skip(1).map(|f| f.data_type());
        let mut aggs = Vec::with_capacity(agg.aggr_expr().len());
        for expr in agg.aggr_expr() {
            let args = expr.expressions();
            if expr.is_distinct() || !expr.order_bys().is_empty() || args.len() != 1 {
                return Ok(None);
            }
            let arg = Arc::clone(&args[0]);
            let float = arg.data_type(&input_schema)? == DataType::Float64;
            let dense = match (expr.fun().name(), float) {
                ("count", _) if state.next() == Some(&DataType::Int64) => Agg::Count(arg),
                ("sum", true) if state.next() == Some(&DataType::Float64) => Agg::Sum(arg),
                ("avg", true)
                    if state.next() == Some(&DataType::UInt64)
                        && state.next() == Some(&DataType::Float64) =>
                {
                    Agg::Avg(arg)
                }
                _ => return Ok(None),
            };
            aggs.push(dense);
        }
        if state.next().is_some() {
            return Ok(None);
        }
        let mut dense = Self {
            properties: Self::properties_of(&schema, agg.input()),
            input: Arc::clone(agg.input()),
            key,
            kind,
            aggs,
            filter: None,
            schema,
        };
        dense.fold_filter();
        Ok(Some(dense))
    }

    /// Folds a `FilterExec` input into this aggregation, when the key and every argument are
    /// columns (or literals): they are then read from the filter's input, on all its rows.
    fn fold_filter(&mut self) {
        let Some(filter) = self.input.downcast_ref::<FilterExec>() else {
            return;
        };
        let plain = |e: &Arc<dyn PhysicalExpr>| {
            e.downcast_ref::<Column>().is_some() || e.downcast_ref::<Literal>().is_some()
        };
        if filter.fetch().is_some()
            || !plain(&self.key)
            || !self.aggs.iter().all(|a| plain(a.arg()))
        {
            return;
        }
        let below = filter.input();
        let below_schema = below.schema();
        // A column of the filter's output, as a column of its input.
        let remap = |e: &Arc<dyn PhysicalExpr>| -> Arc<dyn PhysicalExpr> {
            match (e.downcast_ref::<Column>(), filter.projection()) {
                (Some(c), Some(projection)) => {
                    let index = projection[c.index()];
                    Arc::new(Column::new(below_schema.field(index).name(), index))
                }
                _ => Arc::clone(e),
            }
        };
        self.key = remap(&self.key);
        for agg in &mut self.aggs {
            *agg = match agg {
                Agg::Count(e) => Agg::Count(remap(e)),
                Agg::Sum(e) => Agg::Sum(remap(e)),
                Agg::Avg(e) => Agg::Avg(remap(e)),
            };
        }
        self.filter = Some(RowFilter::new(filter.predicate(), &below_schema));
        self.properties = Self::properties_of(&self.schema, below);
        self.input = Arc::clone(below);
    }

    /// One output partition per input partition, all groups at the end.
    fn properties_of(schema: &SchemaRef, input: &Arc<dyn ExecutionPlan>) -> Arc<PlanProperties> {
        Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(schema)),
            Partitioning::UnknownPartitioning(input.output_partitioning().partition_count()),
            EmissionType::Final,
            Boundedness::Bounded,
        ))
    }
}

impl DisplayAs for DenseAggregateExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                write!(f, "DenseAggregateExec: key={}", self.key)?;
            }
            DisplayFormatType::TreeRender => write!(f, "key={}", self.key)?,
        }
        match &self.filter {
            Some(filter) => write!(f, ", filter={}", filter.predicate),
            None => Ok(()),
        }
    }
}

impl ExecutionPlan for DenseAggregateExec {
    fn name(&self) -> &str {
        "DenseAggregateExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        let filter = self.filter.as_ref().map(|f| &f.predicate);
        for expr in std::iter::once(&self.key)
            .chain(self.aggs.iter().map(Agg::arg))
            .chain(filter)
        {
            if f(expr)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return internal_err!("DenseAggregateExec takes one input");
        }
        let input = children.remove(0);
        Ok(Arc::new(Self {
            properties: Self::properties_of(&self.schema, &input),
            input,
            key: Arc::clone(&self.key),
            kind: self.kind,
            aggs: self.aggs.clone(),
            filter: self.filter.clone(),
            schema: Arc::clone(&self.schema),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        // The groups' state counts against the query's memory pool, as DataFusion's own
        // aggregation does: a `GROUP BY text` over millions of distinct strings fails with
        // "Resources exhausted" at the memory limit instead of growing past it.
        let reservation = MemoryConsumer::new(format!("DenseAggregateExec[{partition}]"))
            .register(context.memory_pool());
        let mut input = self.input.execute(partition, context)?;
        let mut groups = Groups::new(
            self.key.clone(),
            self.kind,
            self.aggs.clone(),
            self.filter.clone(),
        );
        let schema = Arc::clone(&self.schema);
        let out = futures::stream::once(async move {
            while let Some(batch) = input.next().await {
                groups.add(&batch?)?;
                reservation.try_resize(groups.size())?;
            }
            groups.emit(&schema)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            out,
        )))
    }
}

/// The slot of the null key.
const NULL_KEY: usize = 0;
/// The slot of the first key: small integer `k` is in slot `k + FIRST_KEY`, text `texts[i]`
/// in slot `i + FIRST_KEY`.
const FIRST_KEY: usize = 1;

/// The state of one partition's groups, in arrays indexed by slot.
struct Groups {
    key: Arc<dyn PhysicalExpr>,
    kind: KeyKind,
    aggs: Vec<Agg>,
    filter: Option<RowFilter>,
    /// Rows per slot (a slot with rows is a group, whether or not its values are null).
    rows: Vec<u64>,
    /// Per aggregate: counts (of `count`, or of `avg`'s values).
    counts: Vec<Vec<u64>>,
    /// Per aggregate: sums (`sum`, `avg`; unused for `count`).
    sums: Vec<Vec<f64>>,
    /// Per aggregate: a `count` of a non-null literal (`count(*)`), whose counts are `rows`.
    counts_rows: Vec<bool>,
    slots: Vec<usize>,
    /// Text keys: the groups' strings, and their slots by string.
    texts: Vec<String>,
    text_slots: HashMap<String, usize>,
    /// Text keys: the bytes of `texts` (held twice, with `text_slots`).
    text_bytes: usize,
    /// Text keys: the last dictionary seen and the slot of each of its entries.
    dictionary: Option<(ArrayRef, Vec<usize>)>,
}

impl Groups {
    fn new(
        key: Arc<dyn PhysicalExpr>,
        kind: KeyKind,
        aggs: Vec<Agg>,
        filter: Option<RowFilter>,
    ) -> Self {
        let n = aggs.len();
        Self {
            key,
            kind,
            aggs,
            filter,
            rows: Vec::new(),
            counts: vec![Vec::new(); n],
            sums: vec![Vec::new(); n],
            counts_rows: vec![false; n],
            slots: Vec::new(),
            texts: Vec::new(),
            text_slots: HashMap::new(),
            text_bytes: 0,
            dictionary: None,
        }
    }

    /// Bytes held by the groups' state (an estimate of the heap it uses).
    fn size(&self) -> usize {
        let per_slot = std::mem::size_of::<u64>()
            + self.aggs.len() * (std::mem::size_of::<u64>() + std::mem::size_of::<f64>());
        let texts = 2 * self.text_bytes;
        let text_entries = self.texts.len()
            * (2 * std::mem::size_of::<String>() + std::mem::size_of::<usize>() + 8);
        let dictionary = self
            .dictionary
            .as_ref()
            .map_or(0, |(_, map)| map.len() * std::mem::size_of::<usize>());
        self.rows.len() * per_slot
            + self.slots.capacity() * std::mem::size_of::<usize>()
            + texts
            + text_entries
            + dictionary
    }

    /// Sizes the state for `len` slots.
    fn grow(&mut self, len: usize) {
        if len > self.rows.len() {
            self.rows.resize(len, 0);
            for (c, s) in self.counts.iter_mut().zip(&mut self.sums) {
                c.resize(len, 0);
                s.resize(len, 0.0);
            }
        }
    }

    /// Fills `slots` with the group slot of each row of `keys`, sizing the state for them.
    fn slots_of(&mut self, keys: &ArrayRef) -> Result<()> {
        self.slots.clear();
        match self.kind {
            KeyKind::Small => {
                let keys = cast(keys, &DataType::UInt16)?;
                let keys = keys.as_primitive::<UInt16Type>();
                // The largest key over the `u16` values (null rows' values included: at worst
                // the state is sized for a key that is not there), as a plain fold:
                // `Iterator::max` over the slots compared through a function pointer that was
                // not inlined, one call per row (a fifth of `GROUP BY pin` over 100 M rows).
                let top = keys.values().iter().fold(0u16, |top, &k| top.max(k));
                self.grow(usize::from(top) + FIRST_KEY + 1);
                self.slots
                    .extend(keys.values().iter().map(|&k| usize::from(k) + FIRST_KEY));
                if let Some(nulls) = keys.nulls() {
                    set_nulls(&mut self.slots, nulls.inner(), NULL_KEY);
                }
            }
            KeyKind::Text => {
                let Some(keys) = keys.as_dictionary_opt::<Int32Type>() else {
                    return internal_err!("DenseAggregateExec: the text key is not a dictionary");
                };
                let values = keys.values();
                // The batches of one Parquet column chunk share its dictionary (one `Arc`).
                let fresh =
                    !matches!(&self.dictionary, Some((seen, _)) if Arc::ptr_eq(seen, values));
                if fresh {
                    let Some(strings) = values.as_string_opt::<i32>() else {
                        return internal_err!("DenseAggregateExec: the text key is not Utf8");
                    };
                    let map = strings
                        .iter()
                        .map(|text| match text {
                            None => NULL_KEY,
                            Some(text) => match self.text_slots.get(text) {
                                Some(slot) => *slot,
                                None => {
                                    let slot = self.texts.len() + FIRST_KEY;
                                    self.texts.push(text.to_owned());
                                    self.text_bytes += text.len();
                                    self.text_slots.insert(text.to_owned(), slot);
                                    slot
                                }
                            },
                        })
                        .collect();
                    self.dictionary = Some((Arc::clone(values), map));
                }
                self.grow(self.texts.len() + FIRST_KEY);
                let map = match &self.dictionary {
                    Some((_, map)) => map.as_slice(),
                    None => &[],
                };
                // Each row's slot by its key, `usize::MAX` for a key out of the dictionary's
                // range; then the null keys (whose key values do not count).
                self.slots.extend(keys.keys().values().iter().map(|&k| {
                    usize::try_from(k)
                        .ok()
                        .and_then(|k| map.get(k).copied())
                        .unwrap_or(usize::MAX)
                }));
                if let Some(nulls) = keys.keys().nulls() {
                    set_nulls(&mut self.slots, nulls.inner(), NULL_KEY);
                }
                // Slots are far below 2^63: or-ing them all finds `usize::MAX` in one
                // vectorized pass, the row is looked for only then.
                let top = self.slots.iter().fold(0, |top, &s| top | s) >> (usize::BITS - 1);
                if let Some(row) = (top != 0)
                    .then(|| self.slots.iter().position(|&s| s == usize::MAX))
                    .flatten()
                {
                    let key = keys.keys().value(row);
                    return internal_err!("dictionary key {key} of row {row} out of range");
                }
            }
        }
        Ok(())
    }

    fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        let rows = batch.num_rows();
        let kept = match &self.filter {
            Some(filter) => filter.kept_rows(batch)?,
            None => None,
        };
        if rows == 0 || kept.as_ref().is_some_and(Vec::is_empty) {
            return Ok(());
        }
        // The key and arguments of the kept rows only (when the filter drops some).
        let kept = kept.map(UInt32Array::from);
        let pick = |array: ArrayRef| -> Result<ArrayRef> {
            Ok(match &kept {
                Some(kept) => take(&array, kept, None)?,
                None => array,
            })
        };
        let keys = pick(self.key.evaluate(batch)?.into_array(rows)?)?;
        let rows = keys.len();
        self.slots_of(&keys)?;
        // The rows of each slot are counted in the pass of the first sum or average (one
        // pass over the slots fewer), or else on their own.
        let mut rows_counted = false;
        for (i, agg) in self.aggs.iter().enumerate() {
            let counts = &mut self.counts[i];
            let all = match agg {
                Agg::Sum(_) | Agg::Avg(_) if !rows_counted => {
                    rows_counted = true;
                    Some(self.rows.as_mut_slice())
                }
                _ => None,
            };
            match agg.arg().evaluate(batch)? {
                ColumnarValue::Scalar(value) => {
                    // A literal: `count(*)` (non-null) counts every row, which `rows` already
                    // does (taken at the end); `sum(1.0)` and the like are rare enough to take
                    // as arrays.
                    if let Agg::Count(_) = agg {
                        if !value.is_null() {
                            self.counts_rows[i] = true;
                        }
                        continue;
                    }
                    let array = value.to_array_of_size(rows)?;
                    accumulate(agg, &array, &self.slots, counts, &mut self.sums[i], all);
                }
                ColumnarValue::Array(array) => {
                    let array = pick(array)?;
                    accumulate(agg, &array, &self.slots, counts, &mut self.sums[i], all);
                }
            }
        }
        if !rows_counted {
            count_rows(&self.slots, &mut self.rows);
        }
        Ok(())
    }

    fn emit(&self, schema: &SchemaRef) -> Result<RecordBatch> {
        let slots: Vec<usize> = (NULL_KEY..self.rows.len())
            .filter(|s| self.rows[*s] > 0)
            .collect();
        let key: ArrayRef = match self.kind {
            KeyKind::Small => Arc::new(
                slots
                    .iter()
                    .map(|&s| (s != NULL_KEY).then(|| (s - FIRST_KEY) as u16))
                    .collect::<UInt16Array>(),
            ),
            KeyKind::Text => Arc::new(
                slots
                    .iter()
                    .map(|&s| (s != NULL_KEY).then(|| self.texts[s - FIRST_KEY].as_str()))
                    .collect::<StringArray>(),
            ),
        };
        let mut columns: Vec<ArrayRef> = vec![cast(&key, schema.field(0).data_type())?];
        for (i, agg) in self.aggs.iter().enumerate() {
            let counts = if self.counts_rows[i] {
                &self.rows
            } else {
                &self.counts[i]
            };
            let sums = &self.sums[i];
            match agg {
                Agg::Count(_) => columns.push(Arc::new(Int64Array::from_iter_values(
                    slots.iter().map(|&s| counts[s] as i64),
                ))),
                Agg::Sum(_) => columns.push(Arc::new(
                    slots
                        .iter()
                        .map(|&s| (counts[s] > 0).then_some(sums[s]))
                        .collect::<Float64Array>(),
                )),
                Agg::Avg(_) => {
                    // Count and sum are both null for a group without values, as DataFusion
                    // emits them (a 0 count would make the final average 0/0 = NaN, not NULL).
                    columns.push(Arc::new(
                        slots
                            .iter()
                            .map(|&s| (counts[s] > 0).then_some(counts[s]))
                            .collect::<UInt64Array>(),
                    ));
                    columns.push(Arc::new(
                        slots
                            .iter()
                            .map(|&s| (counts[s] > 0).then_some(sums[s]))
                            .collect::<Float64Array>(),
                    ));
                }
            }
        }
        Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
    }
}

/// Sets the items of the rows `valid` marks null to `to`, a 64-bit word of the bitmap at a
/// time: a word of nulls fills its 64 items, a word of valid rows is skipped, the nulls of a
/// mixed word are found by their bits. Text keys are mostly null (only a text pin's rows have
/// text); testing every row's bit took more time than the rest of the grouping.
fn set_nulls<T: Copy>(items: &mut [T], valid: &BooleanBuffer, to: T) {
    let chunks = valid.bit_chunks();
    let apply = |items: &mut [T], word: u64| {
        let mut nulls = !word & (u64::MAX >> (64 - items.len()));
        if nulls == u64::MAX {
            items.fill(to);
        }
        while nulls != 0 && nulls != u64::MAX {
            items[nulls.trailing_zeros() as usize] = to;
            nulls &= nulls - 1;
        }
    };
    let mut blocks = items.chunks_exact_mut(64);
    for (block, word) in (&mut blocks).zip(chunks.iter()) {
        apply(block, word);
    }
    let rest = blocks.into_remainder();
    if !rest.is_empty() {
        apply(rest, chunks.remainder_bits());
    }
}

/// Adds `values` (one per row, `slots` giving each row's group) to the groups' counts and, for
/// `sum` and `avg`, sums: non-null values only, in row order (as DataFusion adds them). For
/// `sum` and `avg`, `all` (when given) counts every row.
fn accumulate(
    agg: &Agg,
    values: &ArrayRef,
    slots: &[usize],
    counts: &mut [u64],
    sums: &mut [f64],
    all: Option<&mut [u64]>,
) {
    if let Agg::Count(_) = agg {
        count_runs(
            slots,
            values.logical_nulls().as_ref().map(|n| n.inner()),
            counts,
        );
        return;
    }
    // Sum and avg take Float64 only (checked when the plan was rewritten).
    let values = values.as_primitive::<Float64Type>();
    let valid = values.nulls().map(|n| n.inner());
    match all {
        Some(all) => sum_runs::<true>(slots, values.values(), valid, counts, sums, all),
        None => sum_runs::<false>(slots, values.values(), valid, counts, sums, &mut []),
    }
}

/// Slots up to which [`count_rows`] keeps four tables of counts (128 KiB at most).
const INTERLEAVED_SLOTS: usize = 4096;

/// Adds one to `counts` at each row's slot. Rows go to four tables of counts in turn, summed
/// at the end: neither a change of slot (a mispredicted branch in [`count_runs`] when groups
/// alternate, as text states do) nor a repeated slot (each add waiting for the previous one's
/// store) holds the loop up. Many slots: [`count_runs`].
fn count_rows(slots: &[usize], counts: &mut [u64]) {
    let n = counts.len();
    if n > INTERLEAVED_SLOTS || slots.len() < 4 * n {
        return count_runs(slots, None, counts);
    }
    let mut tables = vec![0u64; 4 * n];
    let (t0, rest) = tables.split_at_mut(n);
    let (t1, rest) = rest.split_at_mut(n);
    let (t2, t3) = rest.split_at_mut(n);
    let mut quads = slots.chunks_exact(4);
    for q in &mut quads {
        t0[q[0]] += 1;
        t1[q[1]] += 1;
        t2[q[2]] += 1;
        t3[q[3]] += 1;
    }
    for &s in quads.remainder() {
        t0[s] += 1;
    }
    for (i, c) in counts.iter_mut().enumerate() {
        *c += t0[i] + t1[i] + t2[i] + t3[i];
    }
}

/// Adds one to `counts` at each row's slot (the rows `valid` marks, or all). The count of
/// the current run's slot is held in a register while the run lasts.
fn count_runs(slots: &[usize], valid: Option<&BooleanBuffer>, counts: &mut [u64]) {
    let Some(&first) = slots.first() else {
        return;
    };
    let (mut slot, mut count) = (first, counts[first]);
    for (i, &s) in slots.iter().enumerate() {
        if s != slot {
            counts[slot] = count;
            (slot, count) = (s, counts[s]);
        }
        count += u64::from(valid.is_none_or(|v| v.value(i)));
    }
    counts[slot] = count;
}

/// Adds each valid row's value to its slot's sum and one to its count, in row order, and
/// with `ALL` one to `all` for every row. The current run's sum and counts are held in
/// registers while the run lasts; a null row adds `-0.0`, which leaves every sum as it is
/// (`+0.0` would turn `-0.0` into `+0.0`).
fn sum_runs<const ALL: bool>(
    slots: &[usize],
    values: &[f64],
    valid: Option<&BooleanBuffer>,
    counts: &mut [u64],
    sums: &mut [f64],
    all: &mut [u64],
) {
    let Some(&first) = slots.first() else {
        return;
    };
    let rows = |all: &[u64], s: usize| if ALL { all[s] } else { 0 };
    let (mut slot, mut count, mut sum) = (first, counts[first], sums[first]);
    let mut every = rows(all, first);
    for (i, (&s, &v)) in slots.iter().zip(values).enumerate() {
        if s != slot {
            (counts[slot], sums[slot]) = (count, sum);
            if ALL {
                all[slot] = every;
            }
            (slot, count, sum, every) = (s, counts[s], sums[s], rows(all, s));
        }
        let ok = valid.is_none_or(|valid| valid.value(i));
        count += u64::from(ok);
        sum += if ok { v } else { -0.0 };
        every += 1;
    }
    (counts[slot], sums[slot]) = (count, sum);
    if ALL {
        all[slot] = every;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{DictionaryArray, Int32Array, StringArray, UInt8Array};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::execution::session_state::SessionStateBuilder;
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::{SessionConfig, SessionContext};

    /// Three partitions of rows with null keys, null values, NaN, -0.0 and large magnitudes.
    fn table() -> MemTable {
        let schema = Arc::new(Schema::new(vec![
            Field::new("pin", DataType::UInt16, true),
            Field::new("small", DataType::UInt8, false),
            Field::new("value", DataType::Float64, true),
            Field::new("text", DataType::Utf8, true),
            Field::new(
                "state",
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                true,
            ),
        ]));
        // Text states as dictionaries: one shared by the first two batches of a partition
        // (as the batches of one Parquet column chunk share theirs), others of their own,
        // listing the states in other orders, with a null entry and entries no row uses.
        let shared: ArrayRef = Arc::new(StringArray::from(vec![
            Some("idle"),
            Some("on"),
            None,
            Some("off"),
        ]));
        let mut partitions = Vec::new();
        for p in 0..3u64 {
            let mut batches = Vec::new();
            for b in 0..4u64 {
                let n = 1_000u64;
                let pin: UInt16Array = (0..n)
                    .map(|i| {
                        let x = (i * 7 + b * 13 + p * 31) % 23;
                        (x != 5).then_some(if x == 22 { 65_535 } else { x as u16 % 6 })
                    })
                    .collect();
                let small: UInt8Array = (0..n).map(|i| ((i + p) % 3) as u8).collect();
                // Pin 4 has no value at all (as text pins have none).
                let value: Float64Array = (0..n)
                    .zip(pin.iter())
                    .map(|(i, pin)| match (i + b) % 17 {
                        _ if pin == Some(4) => None,
                        0 => None,
                        1 => Some(-0.0),
                        2 if p == 1 && b == 2 && pin == Some(2) => Some(f64::NAN),
                        3 => Some(1e300),
                        _ => Some((i as f64) * 0.37 - 100.0 + p as f64 * 1e-9),
                    })
                    .collect();
                let text: StringArray = (0..n)
                    .map(|i| (i % 5 != 0).then(|| format!("s{}", i % 4)))
                    .collect();
                let dictionary: ArrayRef = match b {
                    0 | 1 => Arc::clone(&shared),
                    2 => Arc::new(StringArray::from(vec!["off", "error", "on", "unused"])),
                    _ => Arc::new(StringArray::from(vec![Some("on"), None, Some("idle")])),
                };
                let states = dictionary.len() as u64;
                let keys: Int32Array = (0..n)
                    .map(|i| (i % 11 != 3).then(|| ((i * 5 + p) % states) as i32))
                    .collect();
                let state = DictionaryArray::<Int32Type>::try_new(keys, dictionary).unwrap();
                batches.push(
                    RecordBatch::try_new(
                        Arc::clone(&schema),
                        vec![
                            Arc::new(pin),
                            Arc::new(small),
                            Arc::new(value),
                            Arc::new(text),
                            Arc::new(state),
                        ],
                    )
                    .unwrap(),
                );
            }
            partitions.push(batches);
        }
        MemTable::try_new(schema, partitions).unwrap()
    }

    /// One partition sorted on `k`, declared so.
    fn sorted_table() -> MemTable {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::UInt16, false),
            Field::new("v", DataType::Float64, true),
        ]));
        let k: UInt16Array = (0..3_000u16).map(|i| i / 7).collect();
        let v: Float64Array = (0..3_000).map(|i| Some(f64::from(i) * 0.5)).collect();
        let batch =
            RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(k), Arc::new(v)]).unwrap();
        MemTable::try_new(schema, vec![vec![batch]])
            .unwrap()
            .with_sort_order(vec![vec![datafusion::prelude::col("k").sort(true, false)]])
    }

    fn context(dense: bool) -> SessionContext {
        let mut state = SessionStateBuilder::new()
            .with_config(SessionConfig::new().with_target_partitions(3))
            .with_default_features();
        if dense {
            state = state.with_physical_optimizer_rules(DenseGroupBy::with_default_rules());
        }
        let ctx = SessionContext::new_with_state(state.build());
        ctx.register_table("t", Arc::new(table())).unwrap();
        ctx.register_table("sorted", Arc::new(sorted_table()))
            .unwrap();
        ctx
    }

    async fn run(ctx: &SessionContext, sql: &str) -> (String, String) {
        let df = ctx.sql(sql).await.unwrap();
        let plan = df.clone().create_physical_plan().await.unwrap();
        let plan = displayable(plan.as_ref()).indent(false).to_string();
        let batches = df.collect().await.unwrap();
        (pretty_format_batches(&batches).unwrap().to_string(), plan)
    }

    #[test]
    fn dense_partial_aggregation_gives_datafusions_results() {
        let rt = tokio_runtime();
        rt.block_on(async {
            let dense = context(true);
            let hashed = context(false);
            let eligible = [
                "SELECT pin, count(*) AS n, avg(value) AS a FROM t GROUP BY pin ORDER BY pin",
                "SELECT pin, count(value), sum(value), avg(value), count(text) FROM t GROUP BY pin ORDER BY pin",
                "SELECT small, sum(value) FROM t WHERE value > 0 GROUP BY small ORDER BY small",
                "SELECT pin, count(*) FROM t WHERE text = 's1' GROUP BY pin HAVING count(*) > 3 ORDER BY 2 DESC, 1",
                "SELECT CAST(small AS SMALLINT UNSIGNED), avg(value * 2) FROM t GROUP BY 1 ORDER BY 1",
                // Planned as a count per pin over the distinct (pin, value) pairs.
                "SELECT pin, count(DISTINCT value) FROM t GROUP BY pin ORDER BY pin",
                "SELECT state, count(*), avg(value), count(text) FROM t GROUP BY state ORDER BY state",
                "SELECT state, count(*) AS n FROM t WHERE pin = 2 GROUP BY state ORDER BY n DESC, state",
                "SELECT state, sum(value) FROM t WHERE state <> 'on' GROUP BY state ORDER BY 1",
                // Filters folded in: compared inline (`UInt8`, `UInt16`, literal first, a
                // value no row has, nullable keys) or evaluated (anything else).
                "SELECT state, count(*), avg(value), count(value) FROM t WHERE small = 1 GROUP BY state ORDER BY state",
                "SELECT small, count(*), sum(value) FROM t WHERE 2 = pin GROUP BY small ORDER BY small",
                "SELECT small, count(*) FROM t WHERE pin = 9 GROUP BY small",
                "SELECT state, count(*), sum(value) FROM t WHERE pin = 0 GROUP BY state ORDER BY state",
                "SELECT small, count(*), avg(value) FROM t WHERE pin = 65535 GROUP BY small ORDER BY small",
                "SELECT pin, avg(value), count(text) FROM t WHERE value > 1e300 OR value IS NULL OR small = 0 GROUP BY pin ORDER BY pin",
                "SELECT state, count(*) FROM t WHERE pin = 1 AND value < 3 GROUP BY state ORDER BY state",
            ];
            for sql in eligible {
                let (ours, plan) = run(&dense, sql).await;
                let (theirs, hashed_plan) = run(&hashed, sql).await;
                assert!(plan.contains("DenseAggregateExec"), "{sql}\n{plan}");
                assert!(!hashed_plan.contains("DenseAggregateExec"));
                assert_eq!(ours, theirs, "{sql}");
                // Every filter right below these aggregations is folded in.
                assert!(!plan.contains("FilterExec: value") && !plan.contains("FilterExec: pin")
                    && !plan.contains("FilterExec: small") && !plan.contains("FilterExec: text")
                    && !plan.contains("FilterExec: state") && !plan.contains("FilterExec: 2"),
                    "{sql}\n{plan}");
                assert_eq!(plan.contains("filter="), sql.contains("WHERE"), "{sql}\n{plan}");
            }
            // An argument that is an expression keeps the filter: evaluating it on the rows
            // the filter drops could fail.
            let sql = "SELECT small, avg(value * 2) FROM t WHERE value > 0 GROUP BY small ORDER BY small";
            let (ours, plan) = run(&dense, sql).await;
            assert!(plan.contains("DenseAggregateExec") && plan.contains("FilterExec"), "{plan}");
            assert!(!plan.contains("filter="), "{plan}");
            assert_eq!(ours, run(&hashed, sql).await.0);
            // Left to DataFusion: other aggregates, other keys, several keys, no key, and an
            // aggregation streaming over input sorted on its key.
            let (_, plan) = run(
                &dense,
                "SELECT k, count(*), avg(v) FROM sorted GROUP BY k ORDER BY k DESC",
            )
            .await;
            assert!(plan.contains("ordering_mode=Sorted"), "{plan}");
            assert!(!plan.contains("DenseAggregateExec"), "{plan}");
            for sql in [
                "SELECT pin, min(value) FROM t GROUP BY pin ORDER BY pin",
                "SELECT text, count(*) FROM t GROUP BY text ORDER BY text",
                "SELECT pin, small, count(*) FROM t GROUP BY pin, small ORDER BY pin, small",
                "SELECT count(*) FROM t",
            ] {
                let (ours, plan) = run(&dense, sql).await;
                assert!(!plan.contains("DenseAggregateExec"), "{sql}\n{plan}");
                let (theirs, _) = run(&hashed, sql).await;
                assert_eq!(ours, theirs, "{sql}");
            }
        });
    }

    /// `column = literal` over a small integer column is recognised either way round; other
    /// predicates are evaluated.
    #[test]
    fn small_equalities_are_compared_inline() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("pin", DataType::UInt16, true),
            Field::new("small", DataType::UInt8, false),
            Field::new("value", DataType::Float64, true),
        ]));
        let col = |name: &str, i: usize| Arc::new(Column::new(name, i)) as Arc<dyn PhysicalExpr>;
        let lit = |v: ScalarValue| Arc::new(Literal::new(v)) as Arc<dyn PhysicalExpr>;
        let binary = |l, op, r| Arc::new(BinaryExpr::new(l, op, r)) as Arc<dyn PhysicalExpr>;
        let cases = [
            (
                binary(
                    col("pin", 0),
                    Operator::Eq,
                    lit(ScalarValue::UInt16(Some(3))),
                ),
                Some((0, 3)),
            ),
            (
                binary(
                    lit(ScalarValue::UInt8(Some(7))),
                    Operator::Eq,
                    col("small", 1),
                ),
                Some((1, 7)),
            ),
            (
                binary(
                    col("pin", 0),
                    Operator::NotEq,
                    lit(ScalarValue::UInt16(Some(3))),
                ),
                None,
            ),
            (
                binary(col("pin", 0), Operator::Eq, lit(ScalarValue::UInt16(None))),
                None,
            ),
            (
                binary(
                    col("value", 2),
                    Operator::Eq,
                    lit(ScalarValue::Float64(Some(1.0))),
                ),
                None,
            ),
        ];
        for (predicate, small_eq) in cases {
            assert_eq!(
                RowFilter::new(&predicate, &schema).small_eq,
                small_eq,
                "{predicate}"
            );
        }
        // Kept rows, inline and through DataFusion: `None` is every row; a null pin keeps no row.
        let pin_is_3 = binary(
            col("pin", 0),
            Operator::Eq,
            lit(ScalarValue::UInt16(Some(3))),
        );
        let value_is_1 = binary(
            col("value", 2),
            Operator::Eq,
            lit(ScalarValue::Float64(Some(1.0))),
        );
        let kept = |predicate: &Arc<dyn PhysicalExpr>, pins: Vec<Option<u16>>| {
            let n = pins.len();
            let values: Vec<Option<f64>> =
                pins.iter().map(|p| p.map(|p| f64::from(p) - 2.0)).collect();
            // A null pin's slot holds 3 (what a null slot holds is unspecified).
            let nulls =
                datafusion::arrow::buffer::NullBuffer::from_iter(pins.iter().map(Option::is_some));
            let pins = UInt16Array::new(pins.iter().map(|p| p.unwrap_or(3)).collect(), Some(nulls));
            let batch = RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(pins),
                    Arc::new(UInt8Array::from(vec![0u8; n])),
                    Arc::new(Float64Array::from(values)),
                ],
            )
            .unwrap();
            RowFilter::new(predicate, &schema)
                .kept_rows(&batch)
                .unwrap()
        };
        for predicate in [&pin_is_3, &value_is_1] {
            assert_eq!(kept(predicate, vec![Some(3), Some(3)]), None, "{predicate}");
            assert_eq!(
                kept(predicate, vec![Some(3), None, Some(3)]),
                Some(vec![0, 2])
            );
            assert_eq!(kept(predicate, vec![Some(1), Some(3), None]), Some(vec![1]));
            assert_eq!(kept(predicate, vec![Some(1), None]), Some(vec![]));
        }
    }

    proptest::proptest! {
        /// The rows equal to a value are found as comparing row by row finds them, whether all,
        /// none or some rows are.
        #[test]
        fn equal_rows_are_the_rows_equal(
            runs in proptest::collection::vec((0u16..3, 1usize..150), 0..12),
            value in 0u16..3,
        ) {
            let values: Vec<u16> = runs.iter().flat_map(|&(v, n)| std::iter::repeat_n(v, n)).collect();
            let want: Vec<u32> = (0..values.len() as u32).filter(|&i| values[i as usize] == value).collect();
            let got = equal_rows(&values, value).unwrap_or_else(|| (0..values.len() as u32).collect());
            proptest::prop_assert_eq!(got, want);
        }

        /// Counts and sums kept over runs are, bit for bit, those of adding row by row (nulls
        /// skipped), whatever the runs, signed zeros and NaNs in null rows.
        #[test]
        fn runs_add_as_rows_do(
            rows in proptest::collection::vec(
                (0usize..4, 1usize..5, proptest::sample::select(vec![-0.0, 0.0, 1.5, -2.25, 1e300, f64::NAN]), proptest::bool::ANY),
                0..40),
        ) {
            let mut slots = Vec::new();
            let mut values = Vec::new();
            let mut valid = Vec::new();
            for &(slot, run, value, ok) in &rows {
                for _ in 0..run {
                    slots.push(slot);
                    values.push(value);
                    valid.push(ok);
                }
            }
            let valid = BooleanBuffer::from(valid);
            let (mut counts, mut sums) = (vec![1u64; 4], vec![-0.0f64; 4]);
            let (mut all, mut want_all) = (vec![0u64; 4], vec![0u64; 4]);
            let (mut want_counts, mut want_sums) = (counts.clone(), sums.clone());
            let mut every = vec![3u64; 4];
            let mut want_every = every.clone();
            sum_runs::<true>(&slots, &values, Some(&valid), &mut counts, &mut sums, &mut every);
            count_runs(&slots, None, &mut all);
            let mut interleaved = vec![2u64; 4];
            count_rows(&slots, &mut interleaved);
            for (i, &s) in slots.iter().enumerate() {
                want_all[s] += 1;
                want_every[s] += 1;
                if valid.value(i) {
                    want_counts[s] += 1;
                    want_sums[s] += values[i];
                }
            }
            proptest::prop_assert_eq!(counts, want_counts);
            let counted: Vec<u64> = interleaved.iter().map(|c| c - 2).collect();
            proptest::prop_assert_eq!(&counted, &want_all);
            proptest::prop_assert_eq!(all, want_all);
            proptest::prop_assert_eq!(every, want_every);
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            proptest::prop_assert_eq!(bits(&sums), bits(&want_sums));
        }
    }

    proptest::proptest! {
        /// `set_nulls` marks exactly the null rows, whatever the bitmap's offset, length and
        /// runs of nulls (whole words of nulls, of valid rows, mixed ones, a partial last word).
        #[test]
        fn set_nulls_marks_the_null_rows(
            runs in proptest::collection::vec((proptest::bool::ANY, 1usize..150), 0..12),
            offset in 0usize..70,
        ) {
            let bits: Vec<bool> = runs.iter().flat_map(|&(v, n)| std::iter::repeat_n(v, n)).collect();
            let offset = offset.min(bits.len());
            let valid = BooleanBuffer::from(bits.clone()).slice(offset, bits.len() - offset);
            let mut items: Vec<u8> = (0..valid.len()).map(|i| (i % 200) as u8).collect();
            let want: Vec<u8> = items
                .iter()
                .zip(&bits[offset..])
                .map(|(&item, &v)| if v { item } else { 255 })
                .collect();
            set_nulls(&mut items, &valid, 255);
            proptest::prop_assert_eq!(items, want);
        }
    }

    /// Text groups count against the memory pool: many distinct strings under a small limit
    /// fail in the dense aggregation with DataFusion's "Resources exhausted".
    #[test]
    fn text_groups_are_held_to_the_memory_limit() {
        use datafusion::execution::runtime_env::RuntimeEnvBuilder;
        let schema = Arc::new(Schema::new(vec![Field::new(
            "state",
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            true,
        )]));
        let batches: Vec<RecordBatch> = (0..20)
            .map(|b| {
                let values: StringArray = (0..1_000)
                    .map(|i| Some(format!("a fairly long state name number {b}-{i}")))
                    .collect();
                let keys = Int32Array::from_iter_values(0..1_000);
                let state = DictionaryArray::<Int32Type>::try_new(keys, Arc::new(values)).unwrap();
                RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(state)]).unwrap()
            })
            .collect();
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(256 * 1024, 1.0)
            .build_arc()
            .unwrap();
        let state = SessionStateBuilder::new()
            .with_config(SessionConfig::new().with_target_partitions(2))
            .with_runtime_env(runtime)
            .with_default_features()
            .with_physical_optimizer_rules(DenseGroupBy::with_default_rules())
            .build();
        let ctx = SessionContext::new_with_state(state);
        let table = MemTable::try_new(schema, vec![batches]).unwrap();
        ctx.register_table("s", Arc::new(table)).unwrap();
        let sql = "SELECT state, count(*) FROM s GROUP BY state";
        let (plan, error) = tokio_runtime().block_on(async {
            let df = ctx.sql(sql).await.unwrap();
            let plan = df.clone().create_physical_plan().await.unwrap();
            let plan = displayable(plan.as_ref()).indent(false).to_string();
            (plan, df.collect().await.unwrap_err().to_string())
        });
        assert!(plan.contains("DenseAggregateExec"), "{plan}");
        assert!(
            error.contains("Resources exhausted") && error.contains("DenseAggregateExec"),
            "{error}"
        );
    }

    fn tokio_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }
}
