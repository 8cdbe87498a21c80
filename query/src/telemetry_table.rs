//! The `telemetry` table provider: memtable snapshot ∪ Parquet files, scoped to
//! an [`OrgScope`].
//!
//! SQL sees `text` as `Dictionary(Int32, Utf8)` ([`sql_schema`]): a text pin holds a few
//! states (`on`/`off`, modes, firmware versions) and the storage engine writes the column
//! dictionary-encoded, so the scan reads the file's dictionary and one key per row instead of
//! copying a string per row, and filters and `GROUP BY text` work on the keys
//! (`dense_group_by.rs`). Results carry the strings as before (JSON, CSV and the PostgreSQL
//! wire show `text`).
//!
//! Filters on `ts` alone are applied by the scan itself (pushed down as exact): with plain
//! bounds (`ts >= …`, `ts < …`, `BETWEEN`), files the catalog places wholly outside them are
//! not opened and files wholly inside are read without `ts`; only files across a bound and
//! memtable rows are filtered row by row.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, DictionaryArray, Int32Array, RecordBatch, RecordBatchOptions,
    StringArray, UInt32Array,
};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::compute::kernels::boolean::and;
use datafusion::arrow::compute::{cast, filter_record_batch};
use datafusion::arrow::datatypes::{
    DataType, Field, Int32Type, Schema, SchemaRef, TimestampMicrosecondType,
};
use datafusion::catalog::Session;
use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::TreeNode;
use datafusion::common::{DFSchema, Result as DfResult, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::parquet::{
    CachedParquetFileReaderFactory, ParquetFileReaderFactory,
};
use datafusion::datasource::physical_plan::{FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, col, lit};
use datafusion::parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::union::UnionExec;
use parking_lot::RwLock;
use pinhouse_storage::{FileMeta, Snapshot, Storage, columns};

use crate::OrgScope;
use crate::local_files::LocalFileReaderFactory;
use crate::scaled_values::ScaledValueAdapterFactory;

/// Column holding the tenant id; every scan filters on it.
const ORG_COLUMN: &str = "org_id";

/// How SQL reads `text`: the keys of the column's dictionary.
fn text_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// `schema` with `text` as [`text_type`] (other columns as they are).
fn with_dictionary_text(schema: &Schema) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 if f.name() == columns::TEXT => {
                f.as_ref().clone().with_data_type(text_type())
            }
            _ => f.as_ref().clone(),
        })
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

/// Whether `filter` reads `ts` and nothing else, deterministically (no volatile function, no
/// subquery): such filters are pushed into the scan as exact.
fn on_ts_alone(filter: &Expr) -> bool {
    let columns = filter.column_refs();
    let only_ts = columns.len() == 1 && columns.iter().all(|c| c.name == columns::TS);
    let subquery = filter
        .exists(|e| {
            Ok(matches!(
                e,
                Expr::ScalarSubquery(_)
                    | Expr::Exists(_)
                    | Expr::InSubquery(_)
                    | Expr::OuterReferenceColumn(..)
            ))
        })
        .unwrap_or(true);
    only_ts && !subquery && !filter.is_volatile()
}

/// `[from, to)` in µs such that every `ts` in it passes all of `filters`, when each filter is a
/// plain comparison of `ts` with a timestamp literal; `None` otherwise (or without filters).
fn ts_bounds(filters: &[Expr]) -> Option<(i64, i64)> {
    use datafusion::logical_expr::{BinaryExpr, Operator};
    if filters.is_empty() {
        return None;
    }
    let (mut from, mut to) = (i64::MIN, i64::MAX);
    for filter in filters {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = filter else {
            return None;
        };
        let (op, literal) = match (left.as_ref(), right.as_ref()) {
            (Expr::Column(_), Expr::Literal(v, _)) => (*op, v),
            (Expr::Literal(v, _), Expr::Column(_)) => (op.swap()?, v),
            _ => return None,
        };
        let ScalarValue::TimestampMicrosecond(Some(at), _) = literal else {
            return None;
        };
        match op {
            Operator::GtEq => from = from.max(*at),
            Operator::Gt => from = from.max(at.checked_add(1)?),
            Operator::Lt => to = to.min(*at),
            Operator::LtEq => to = to.min(at.checked_add(1)?),
            _ => return None,
        }
    }
    Some((from, to))
}

/// Where a time range, `lo` to `hi` inclusive, lies against [`ts_bounds`]' `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Within {
    /// No time of the range is in the bounds.
    Outside,
    /// Every time of the range is in the bounds.
    Inside,
    /// Some are, some are not.
    Across,
}

fn within((from, to): (i64, i64), lo: i64, hi: i64) -> Within {
    if hi < from || lo >= to {
        Within::Outside
    } else if lo >= from && hi < to {
        Within::Inside
    } else {
        Within::Across
    }
}

/// The `telemetry` table as SQL sees it: the storage schema with `text` as
/// `Dictionary(Int32, Utf8)`.
pub fn sql_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> =
        LazyLock::new(|| Arc::new(with_dictionary_text(&pinhouse_storage::schema())));
    Arc::clone(&SCHEMA)
}

/// Per data file (path and size), the schema its scan asks the Parquet reader for: the
/// file's own Arrow schema (whose `value` type differs between files, see
/// `scaled_values.rs`) with `text` read as a dictionary. Files are never rewritten in place,
/// so an entry stays right; the map is emptied when it reaches [`READ_SCHEMAS_MAX`] entries
/// (files of long-gone compactions), and refilled from the metadata cache.
static READ_SCHEMAS: LazyLock<RwLock<HashMap<(PathBuf, u64), SchemaRef>>> =
    LazyLock::new(Default::default);
const READ_SCHEMAS_MAX: usize = 100_000;

/// The schema to read `file` with (see [`READ_SCHEMAS`]).
async fn read_schema(
    reader: &CachedParquetFileReaderFactory,
    file: &FileMeta,
) -> DfResult<SchemaRef> {
    let key = (file.path.clone(), file.bytes);
    if let Some(schema) = READ_SCHEMAS.read().get(&key) {
        return Ok(Arc::clone(schema));
    }
    let mut input = reader.create_reader(
        0,
        partitioned_file(file),
        None,
        &ExecutionPlanMetricsSet::new(),
    )?;
    let options = ArrowReaderOptions::new();
    let metadata = input.get_metadata(Some(&options)).await?;
    let metadata = ArrowReaderMetadata::try_new(metadata, options)?;
    let schema = Arc::new(with_dictionary_text(metadata.schema()));
    let mut schemas = READ_SCHEMAS.write();
    if schemas.len() >= READ_SCHEMAS_MAX {
        schemas.clear();
    }
    schemas.insert(key, Arc::clone(&schema));
    Ok(schema)
}

fn partitioned_file(file: &FileMeta) -> PartitionedFile {
    PartitionedFile::new(file.path.to_string_lossy().into_owned(), file.bytes)
}

/// Where a [`TelemetryTable`] reads from.
#[derive(Debug, Clone)]
enum Source {
    /// A fresh snapshot of the store at every scan.
    Live(Storage),
    /// One fixed snapshot (every scan of the table sees the same cut); its
    /// memtable batches and `files` (the snapshot's own files, or a subset of
    /// them when `Some`).
    Fixed {
        snapshot: Arc<Snapshot>,
        files: Option<Arc<Vec<FileMeta>>>,
    },
}

/// `telemetry` as DataFusion sees it. Each scan reads one consistent storage
/// snapshot, so a query never sees a half-flushed batch twice or not at all.
#[derive(Debug, Clone)]
pub struct TelemetryTable {
    source: Source,
    scope: OrgScope,
    schema: SchemaRef,
}

impl TelemetryTable {
    /// A provider that only ever returns rows of `scope`.
    pub fn new(storage: Storage, scope: OrgScope) -> Self {
        Self {
            source: Source::Live(storage),
            scope,
            schema: sql_schema(),
        }
    }

    /// A provider over one fixed snapshot, so that several scans in one query
    /// (self-joins, subqueries) all see the same cut.
    pub fn from_snapshot(snapshot: Arc<Snapshot>, scope: OrgScope) -> Self {
        Self {
            source: Source::Fixed {
                snapshot,
                files: None,
            },
            scope,
            schema: sql_schema(),
        }
    }

    /// Like [`TelemetryTable::from_snapshot`], but reading only `files` (a
    /// subset of the snapshot's files; the snapshot keeps them on disk) besides
    /// the snapshot's memtable batches.
    pub fn from_snapshot_files(
        snapshot: Arc<Snapshot>,
        files: Vec<FileMeta>,
        scope: OrgScope,
    ) -> Self {
        Self {
            source: Source::Fixed {
                snapshot,
                files: Some(Arc::new(files)),
            },
            scope,
            schema: sql_schema(),
        }
    }

    /// `org_id IN (scope)` as a logical expression.
    fn scope_expr(&self) -> Expr {
        let orgs = self
            .scope
            .org_ids()
            .iter()
            .map(|id| lit(ScalarValue::UInt32(Some(*id))))
            .collect();
        col(ORG_COLUMN).in_list(orgs, false)
    }

    fn physical(&self, state: &dyn Session, expr: Expr) -> DfResult<Arc<dyn PhysicalExpr>> {
        let df_schema = DFSchema::try_from(Arc::clone(&self.schema))?;
        state.create_physical_expr(expr, &df_schema)
    }

    /// A scan of `files` decoding the columns `columns` only. The query's own filters, plus
    /// the scope predicate for files `shared` with other organizations, drive file, row-group
    /// and page pruning; correctness comes from the row filter of [`TableProvider::scan`]
    /// (shared files). Files of the scope alone get no scope predicate: it would prune
    /// nothing and cost a statistics check per row group and page.
    async fn parquet_scan(
        &self,
        state: &dyn Session,
        files: &[&FileMeta],
        filters: &[Expr],
        columns: Vec<usize>,
        shared: bool,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let mut pruning: Vec<Expr> = shared.then(|| self.scope_expr()).into_iter().collect();
        pruning.extend(filters.iter().cloned());
        // Footers and page indexes through the session's metadata cache: a statement over a
        // year of day files would otherwise parse 365 footers and page indexes every time.
        // Files are never rewritten in place (a new file gets a new id), so a cached entry is
        // valid for as long as its path exists.
        let runtime = state.runtime_env();
        // Byte ranges are read in place (`local_files.rs`).
        let reader = LocalFileReaderFactory::new(CachedParquetFileReaderFactory::new(
            runtime.object_store(ObjectStoreUrl::local_filesystem())?,
            runtime.cache_manager.get_file_metadata_cache(),
        ));
        let mut partitioned = Vec::with_capacity(files.len());
        for file in files {
            let schema = read_schema(reader.cached(), file).await?;
            partitioned.push(partitioned_file(file).with_arrow_schema(schema));
        }
        let mut source = ParquetSource::new(Arc::clone(&self.schema))
            .with_enable_page_index(true)
            .with_parquet_file_reader_factory(Arc::new(reader));
        if let Some(pred) = conjunction(pruning)
            && let Ok(pred) = self.physical(state, pred)
        {
            source = source.with_predicate(pred);
        }
        let mut builder =
            FileScanConfigBuilder::new(ObjectStoreUrl::local_filesystem(), Arc::new(source))
                .with_expr_adapter(Some(Arc::new(ScaledValueAdapterFactory)))
                .with_projection_indices(Some(columns))?;
        for file in partitioned {
            builder = builder.with_file(file);
        }
        Ok(DataSourceExec::from_data_source(builder.build()))
    }

    /// Memtable batches restricted to the scope and to `time_filter` (whose plain bounds,
    /// if it has them, are `ts_bounds`) before they enter the plan, with the `columns` of
    /// the table only (in that order), in the table's types (`text` as a dictionary).
    fn scoped_batches(
        &self,
        batches: &[RecordBatch],
        columns: &[usize],
        time_filter: Option<&Arc<dyn PhysicalExpr>>,
        ts_bounds: Option<(i64, i64)>,
    ) -> DfResult<Vec<RecordBatch>> {
        let projected = Arc::new(self.schema.project(columns)?);
        let mut out = Vec::with_capacity(batches.len());
        for batch in batches {
            // With plain time bounds, a batch's own time range (one pass for its minimum
            // and maximum, cheaper than the filter) skips it when it lies outside them and
            // spares it the filter when it lies inside. Memtable batches are chunks in
            // arrival order, so a query of the last minutes skips most of them.
            let mut time_filter = time_filter;
            if let Some((from, to)) = ts_bounds {
                let ts = batch.column(batch.schema().index_of(columns::TS)?);
                let ts = ts
                    .as_primitive_opt::<TimestampMicrosecondType>()
                    .ok_or_else(|| {
                        datafusion::error::DataFusionError::Internal(
                            "ts column is not a timestamp".into(),
                        )
                    })?;
                if ts.null_count() == 0 && !ts.is_empty() {
                    // One pass for both (Arrow's `min` and `max` kernels took two, and most
                    // of this query's time).
                    let (lo, hi) = ts
                        .values()
                        .iter()
                        .fold((i64::MAX, i64::MIN), |(lo, hi), &t| (lo.min(t), hi.max(t)));
                    match within((from, to), lo, hi) {
                        Within::Outside => continue,
                        Within::Inside => time_filter = None,
                        Within::Across => {}
                    }
                }
            }
            let idx = batch.schema().index_of(ORG_COLUMN)?;
            let orgs = batch
                .column(idx)
                .as_any()
                .downcast_ref::<UInt32Array>()
                .ok_or_else(|| {
                    datafusion::error::DataFusionError::Internal(
                        "org_id column is not UInt32".into(),
                    )
                })?;
            let mut mask = scope_mask(&self.scope, orgs);
            if let Some(filter) = time_filter {
                // Evaluated on the memtable's batch: the filter reads `ts` only, at the same
                // position in both schemas.
                let passed = filter.evaluate(batch)?.into_array(batch.num_rows())?;
                let Some(passed) = passed.as_boolean_opt() else {
                    return Err(datafusion::error::DataFusionError::Internal(
                        "time filter is not boolean".into(),
                    ));
                };
                // A null answer leaves the row out, as `filter_record_batch` does.
                mask = and(&mask, passed)?;
            }
            let kept = filter_record_batch(&batch.project(columns)?, &mask)?;
            if kept.num_rows() == 0 {
                continue;
            }
            let columns = kept
                .columns()
                .iter()
                .zip(projected.fields())
                .map(|(column, field)| {
                    if column.data_type() == field.data_type() {
                        Ok(Arc::clone(column))
                    } else if let (Some(text), DataType::Dictionary(_, _)) =
                        (column.as_string_opt::<i32>(), field.data_type())
                    {
                        Ok(Arc::new(text_dictionary(text)?) as ArrayRef)
                    } else {
                        cast(column, field.data_type())
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            // No columns at all for `count(*)`: the row count says how many rows.
            let rows = RecordBatchOptions::new().with_row_count(Some(kept.num_rows()));
            out.push(RecordBatch::try_new_with_options(
                Arc::clone(&projected),
                columns,
                &rows,
            )?);
        }
        Ok(out)
    }
}

#[async_trait]
impl TableProvider for TelemetryTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Filters on `ts` alone are applied by the scan itself (exactly, see `scan`), and
        // skipped for files whose whole time range passes them. Others are used for pruning
        // only; DataFusion re-applies them.
        Ok(filters
            .iter()
            .map(|f| {
                if on_ts_alone(f) {
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Inexact
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let (snapshot, subset) = match &self.source {
            Source::Live(storage) => (Arc::new(storage.snapshot()), None),
            Source::Fixed { snapshot, files } => (Arc::clone(snapshot), files.clone()),
        };
        let all_files = subset.as_deref().unwrap_or(&snapshot.files);
        // Only the columns the query reads are decoded (a `GROUP BY pin` over all data used to
        // decode all six columns, then drop four).
        let needed: Vec<usize> = match projection {
            Some(indices) => indices.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let org = self.schema.index_of(ORG_COLUMN)?;
        let ts = self.schema.index_of(columns::TS)?;
        // The filters on `ts` alone, which this scan must apply (they were pushed down as
        // exact): to memtable rows, and to the rows of files whose time range does not lie
        // inside the bounds the filters give (all files, when the bounds are not plain).
        let ts_filters: Vec<Expr> = filters.iter().filter(|f| on_ts_alone(f)).cloned().collect();
        let ts_bounds = ts_bounds(&ts_filters);
        let ts_pred = conjunction(ts_filters);
        let file_within = |file: &FileMeta| {
            ts_bounds.map(|bounds| within(bounds, file.min_ts_us, file.max_ts_us))
        };
        let inside =
            |file: &FileMeta| ts_pred.is_none() || file_within(file) == Some(Within::Inside);
        // Files wholly outside plain time bounds hold no row the query wants: not read at all.
        let outside = |file: &FileMeta| file_within(file) == Some(Within::Outside);
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();

        // Memtable rows are filtered to the scope (and the time filters) as they are taken.
        let ts_mask = match &ts_pred {
            Some(pred) => Some(self.physical(state, pred.clone())?),
            None => None,
        };
        let batches =
            self.scoped_batches(&snapshot.batches, &needed, ts_mask.as_ref(), ts_bounds)?;
        if !batches.is_empty() {
            let schema = batches[0].schema();
            inputs.push(MemorySourceConfig::try_new_exec(&[batches], schema, None)?);
        }

        // Files holding only organizations of the scope need no scope filter; files shared
        // with other organizations are filtered on `org_id` (read for that, then dropped).
        // Files partly outside the time filters are filtered on `ts` the same way.
        let mut groups: [Vec<&FileMeta>; 4] = Default::default();
        for file in all_files
            .iter()
            .filter(|f| f.org_ids.iter().any(|o| self.scope.contains(*o)) && !outside(f))
        {
            let shared = !file.org_ids.iter().all(|o| self.scope.contains(*o));
            groups[usize::from(shared) * 2 + usize::from(!inside(file))].push(file);
        }
        for (i, files) in groups.iter().enumerate() {
            if files.is_empty() {
                continue;
            }
            let (shared, partial) = (i >= 2, i % 2 == 1);
            let mut read = needed.clone();
            let mut predicates = Vec::new();
            if shared {
                // Tenant scoping: enforced here whatever the SQL says.
                predicates.push(self.scope_expr());
                if !read.contains(&org) {
                    read.push(org);
                }
            }
            if partial && let Some(pred) = &ts_pred {
                predicates.push(pred.clone());
                if !read.contains(&ts) {
                    read.push(ts);
                }
            }
            let scan = self
                .parquet_scan(state, files, filters, read.clone(), shared)
                .await?;
            let Some(predicate) = conjunction(predicates) else {
                inputs.push(scan);
                continue;
            };
            let projected = Arc::new(self.schema.project(&read)?);
            let predicate = state
                .create_physical_expr(predicate, &DFSchema::try_from(Arc::clone(&projected))?)?;
            let filtered: Arc<dyn ExecutionPlan> = Arc::new(FilterExec::try_new(predicate, scan)?);
            let exprs: Vec<(Arc<dyn PhysicalExpr>, String)> = (0..needed.len())
                .map(|i| {
                    let name = projected.field(i).name().clone();
                    let column: Arc<dyn PhysicalExpr> = Arc::new(
                        datafusion::physical_expr::expressions::Column::new(&name, i),
                    );
                    (column, name)
                })
                .collect();
            inputs.push(Arc::new(ProjectionExec::try_new(exprs, filtered)?));
        }

        Ok(match inputs.len() {
            0 => Arc::new(EmptyExec::new(Arc::new(self.schema.project(&needed)?))),
            1 => inputs.remove(0),
            _ => UnionExec::try_new(inputs)?,
        })
    }
}

/// Which rows of a memtable batch's `org_id` column the scope may see (a null: none).
/// Built a machine word at a time from the values, with a comparison instead of a
/// search for the usual scope of one organization: a per-row `Option` iterator made
/// building this mask half of a query's time over a million memtable rows
/// (BENCHMARKS.md, "SQL over the memtable").
fn scope_mask(scope: &OrgScope, orgs: &UInt32Array) -> BooleanArray {
    let values = orgs.values();
    let in_scope = match scope.org_ids() {
        [one] => BooleanBuffer::collect_bool(values.len(), |i| values[i] == *one),
        _ => BooleanBuffer::collect_bool(values.len(), |i| scope.contains(values[i])),
    };
    let in_scope = match orgs.nulls() {
        Some(valid) => &in_scope & valid.inner(),
        None => in_scope,
    };
    BooleanArray::new(in_scope, None)
}

/// A memtable's `text` column as the `Dictionary(Int32, Utf8)` SQL reads. A pin has few
/// states, so while there are at most `LINEAR` distinct values each value is found by
/// comparing it with them, and only beyond that by hashing; null rows (every number) cost
/// nothing, their validity is reused. Arrow's generic cast hashed every value and appended
/// nulls one by one: a third of a `GROUP BY text` over a million memtable rows
/// (BENCHMARKS.md, "SQL over the memtable").
fn text_dictionary(text: &StringArray) -> DfResult<DictionaryArray<Int32Type>> {
    const LINEAR: usize = 16;
    let mut keys = vec![0i32; text.len()];
    let mut values: Vec<&str> = Vec::new();
    let mut index: HashMap<&str, i32, foldhash::fast::RandomState> = HashMap::default();
    for (i, key) in keys.iter_mut().enumerate() {
        if text.is_null(i) {
            continue;
        }
        let value = text.value(i);
        let found = if values.len() <= LINEAR {
            values.iter().position(|v| *v == value).map(|k| k as i32)
        } else {
            index.get(value).copied()
        };
        *key = match found {
            Some(k) => k,
            None => {
                let k = i32::try_from(values.len()).map_err(|_| {
                    datafusion::error::DataFusionError::Internal(
                        "more distinct texts than dictionary keys".into(),
                    )
                })?;
                values.push(value);
                index.insert(value, k);
                k
            }
        };
    }
    let keys = Int32Array::new(keys.into(), text.nulls().cloned());
    Ok(DictionaryArray::try_new(
        keys,
        Arc::new(StringArray::from(values)),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_mask_keeps_the_scope_s_rows_and_no_null() {
        let orgs = UInt32Array::from(vec![Some(1), Some(2), None, Some(3), Some(1), Some(4)]);
        let mask = |scope: OrgScope| -> Vec<bool> {
            let m = scope_mask(&scope, &orgs);
            assert_eq!(m.null_count(), 0);
            m.iter().map(|b| b.unwrap()).collect()
        };
        let one = mask(OrgScope::single(1));
        assert_eq!(one, [true, false, false, false, true, false]);
        let many = mask(OrgScope::many(vec![3, 1]));
        assert_eq!(many, [true, false, false, true, true, false]);
        let none = mask(OrgScope::single(9));
        assert_eq!(none, [false; 6]);
        // The null slot holds a 0 underneath: still not in a scope of organization 0.
        let zero = mask(OrgScope::many(vec![0, 2]));
        assert_eq!(zero, [false, true, false, false, false, false]);
    }

    #[test]
    fn text_dictionary_matches_arrow_s_cast() {
        let text = StringArray::from(vec![
            None,
            Some("on"),
            Some("on"),
            None,
            Some("off"),
            Some(""),
            Some("on"),
            Some("off"),
            None,
        ]);
        let ours = text_dictionary(&text).unwrap();
        let theirs = cast(
            &text,
            &DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
        )
        .unwrap();
        // Same logical values, row for row (and so the same nulls).
        let back = |a: &dyn Array| cast(a, &DataType::Utf8).unwrap();
        assert_eq!(back(&ours).as_ref(), back(theirs.as_ref()).as_ref());
        assert_eq!(ours.values().len(), 3);
        assert_eq!(ours.null_count(), 3);
        // More distinct values than are searched linearly: found by hashing from then on.
        let many: Vec<Option<String>> = (0..200)
            .map(|i| (i % 7 != 0).then(|| format!("s{}", (i * 13) % 40)))
            .collect();
        let many = StringArray::from(many);
        let ours = text_dictionary(&many).unwrap();
        assert_eq!(back(&ours).as_ref(), &many as &dyn Array);
        let distinct: std::collections::HashSet<_> = many.iter().flatten().collect();
        assert_eq!(ours.values().len(), distinct.len());
        let empty = text_dictionary(&StringArray::from(vec![None::<&str>; 4])).unwrap();
        assert_eq!(empty.null_count(), 4);
        assert_eq!(empty.values().len(), 0);
    }
}
