//! The `telemetry` table provider: memtable snapshot ∪ Parquet files, scoped to
//! an [`OrgScope`].
//!
//! SQL sees `text` as `Dictionary(Int32, Utf8)` ([`sql_schema`]): a text pin holds a few
//! states (`on`/`off`, modes, firmware versions) and the storage engine writes the column
//! dictionary-encoded, so the scan reads the file's dictionary and one key per row instead of
//! copying a string per row, and filters and `GROUP BY text` work on the keys
//! (`dense_group_by.rs`). Results carry the strings as before (JSON, CSV and the PostgreSQL
//! wire show `text`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use datafusion::arrow::array::{Array, BooleanArray, RecordBatch, RecordBatchOptions, UInt32Array};
use datafusion::arrow::compute::{cast, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::catalog::TableProvider;
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
        let reader = CachedParquetFileReaderFactory::new(
            runtime.object_store(ObjectStoreUrl::local_filesystem())?,
            runtime.cache_manager.get_file_metadata_cache(),
        );
        let mut partitioned = Vec::with_capacity(files.len());
        for file in files {
            let schema = read_schema(&reader, file).await?;
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

    /// Memtable batches restricted to the scope before they enter the plan, with the
    /// `columns` of the table only (in that order), in the table's types (`text` cast to
    /// the dictionary type, which only the text rows of the batch cost).
    fn scoped_batches(
        &self,
        batches: &[RecordBatch],
        columns: &[usize],
    ) -> DfResult<Vec<RecordBatch>> {
        let projected = Arc::new(self.schema.project(columns)?);
        let mut out = Vec::with_capacity(batches.len());
        for batch in batches {
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
            let mask: BooleanArray = orgs
                .iter()
                .map(|org| Some(org.is_some_and(|o| self.scope.contains(o))))
                .collect();
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
        // Filters are used for pruning only; DataFusion re-applies them.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
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
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();

        // Memtable rows are filtered to the scope as they are taken.
        let batches = self.scoped_batches(&snapshot.batches, &needed)?;
        if !batches.is_empty() {
            let schema = batches[0].schema();
            inputs.push(MemorySourceConfig::try_new_exec(&[batches], schema, None)?);
        }

        // Files holding only organizations of the scope need no row filter; files shared
        // with other organizations are filtered on `org_id` (read for that, then dropped).
        let (whole, shared): (Vec<&FileMeta>, Vec<&FileMeta>) = all_files
            .iter()
            .filter(|f| f.org_ids.iter().any(|o| self.scope.contains(*o)))
            .partition(|f| f.org_ids.iter().all(|o| self.scope.contains(*o)));
        if !whole.is_empty() {
            inputs.push(
                self.parquet_scan(state, &whole, filters, needed.clone(), false)
                    .await?,
            );
        }
        if !shared.is_empty() {
            let mut with_org = needed.clone();
            if !with_org.contains(&org) {
                with_org.push(org);
            }
            let scan = self
                .parquet_scan(state, &shared, filters, with_org.clone(), true)
                .await?;
            let projected = Arc::new(self.schema.project(&with_org)?);
            let scope_pred = state.create_physical_expr(
                self.scope_expr(),
                &DFSchema::try_from(Arc::clone(&projected))?,
            )?;
            // Tenant scoping: enforced here whatever the SQL says.
            let filtered: Arc<dyn ExecutionPlan> = Arc::new(FilterExec::try_new(scope_pred, scan)?);
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
