//! Running SQL and history queries for a caller.

use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float64Type, SchemaRef, TimestampMicrosecondType};
use datafusion::common::ScalarValue;
use datafusion::datasource::empty::EmptyTable;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionContext};
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::{col, lit};
use futures::StreamExt;
use parking_lot::Mutex;
use pinhouse_storage::{FileMeta, Storage, TS_TIMEZONE, columns};

use crate::catalog_tables::{CatalogSource, CatalogTable};
use crate::history::{Accumulator, Buckets, DAY_US, History, HistoryRequest, Tier};
use crate::rollup::{RollupPass, Rollups};
use crate::series::{SeriesRange, SeriesReader};
use crate::{OrgScope, Result, TELEMETRY_TABLE, TelemetryTable};

/// A history request after the rollups answered what they could.
struct HistoryPlan {
    buckets: Buckets,
    tier: Tier,
    snapshot: Arc<pinhouse_storage::Snapshot>,
    acc: Accumulator,
    /// Files (of the range) without a rollup for the tier: read raw.
    raw_files: Vec<FileMeta>,
}

/// How often the background pass looks for new or removed data files.
const ROLLUP_INTERVAL: Duration = Duration::from_secs(1);

/// Rows and schema of a finished query.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// Output schema (also valid when there are no rows).
    pub schema: SchemaRef,
    /// Result batches in order.
    pub batches: Vec<RecordBatch>,
}

impl QueryResult {
    /// Total number of rows.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

#[derive(Debug)]
struct Inner {
    storage: Storage,
    target_partitions: usize,
    rollups: Rollups,
    /// Serializes rollup passes (background thread and explicit calls).
    rollup_pass: Mutex<()>,
    /// Direct reads of one series for history queries.
    series: SeriesReader,
}

/// Plans and runs SQL and history queries over the telemetry store.
#[derive(Debug, Clone)]
pub struct QueryEngine {
    inner: Arc<Inner>,
    /// Memory pool (and disk manager) shared by the queries of this engine.
    runtime: Arc<RuntimeEnv>,
    /// Tables from outside the store (devices, templates, …), if any.
    catalog: Option<Arc<dyn CatalogSource>>,
    /// Sessions also hold PostgreSQL's `pg_catalog` (see [`crate::postgres`]): this one
    /// schema, shared by every session so that table OIDs stay the same from one statement
    /// to the next (psql looks a table's OID up, then its columns by that OID).
    pg_catalog: Option<crate::postgres::PgCatalog>,
}

impl QueryEngine {
    /// An engine reading `storage`, with rollups kept in memory only and
    /// refreshed by [`QueryEngine::refresh_rollups`] (tests, tools).
    pub fn new(storage: Storage) -> Self {
        Self::build(storage, Rollups::new(None).expect("no directory to create"))
    }

    /// An engine whose rollups are persisted under `rollup_dir` (sidecar
    /// Parquet files, reloaded after a restart). Call
    /// [`QueryEngine::spawn_rollup_maintenance`] to keep them up to date.
    pub fn with_rollup_dir(storage: Storage, rollup_dir: PathBuf) -> Result<Self> {
        Ok(Self::build(storage, Rollups::new(Some(rollup_dir))?))
    }

    /// Starts a background thread that follows the storage catalog: new data
    /// files (flushes, compactions) are rolled up within about a second, rollups
    /// of removed files are dropped. It ends when the last clone of the engine
    /// is dropped.
    pub fn spawn_rollup_maintenance(&self) -> Result<()> {
        let weak = Arc::downgrade(&self.inner);
        std::thread::Builder::new()
            .name("pinhouse-rollups".into())
            .spawn(move || rollup_loop(weak))
            .map_err(|e| crate::QueryError::Execution(format!("rollup thread: {e}")))?;
        Ok(())
    }

    fn build(storage: Storage, rollups: Rollups) -> Self {
        let target_partitions = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Self {
            inner: Arc::new(Inner {
                storage,
                target_partitions,
                rollups,
                rollup_pass: Mutex::new(()),
                series: SeriesReader::default(),
            }),
            runtime: Arc::new(RuntimeEnv::default()),
            catalog: None,
            pg_catalog: None,
        }
    }

    /// Adds the tables of `source` to every query's session, scoped like `telemetry`.
    pub fn with_catalog(mut self, source: Arc<dyn CatalogSource>) -> Self {
        self.catalog = Some(source);
        self
    }

    /// This engine (a clone sharing the store, rollups and memory pool) with PostgreSQL's
    /// `pg_catalog` schema and catalog functions in every session: for the PostgreSQL wire
    /// protocol, whose clients (`psql`'s `\d`, Grafana) read them.
    pub fn with_pg_catalog(&self) -> Result<Self> {
        // The catalog describes a session whose tables have this engine's names and schemas
        // (it never reads rows: the tables here are empty).
        let template = self.session(true);
        let telemetry = crate::telemetry_table::sql_schema();
        template.register_table(TELEMETRY_TABLE, Arc::new(EmptyTable::new(telemetry)))?;
        if let Some(source) = &self.catalog {
            for (name, schema) in source.tables() {
                template.register_table(name, Arc::new(EmptyTable::new(schema)))?;
            }
        }
        let mut engine = self.clone();
        engine.pg_catalog = Some(crate::postgres::catalog_of(&template)?);
        Ok(engine)
    }

    /// Caps the memory all running queries of this engine may hold together
    /// (DataFusion memory pool). Queries never spill to disk: one that needs
    /// more fails with "Resources exhausted" instead of starving the server.
    pub fn with_memory_limit(mut self, bytes: usize) -> Result<Self> {
        self.runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(bytes, 1.0)
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
            )
            .build_arc()?;
        Ok(self)
    }

    /// The store this engine reads.
    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    /// One rollup pass now: rolls up data files of the current catalog that
    /// have no rollup yet and drops rollups of files that left it. Blocking
    /// (reads Parquet); call from a blocking context.
    pub fn refresh_rollups(&self) -> RollupPass {
        refresh(&self.inner)
    }

    /// A session without tables; `pg` gives it the planner of PostgreSQL's OID types.
    fn session(&self, pg: bool) -> SessionContext {
        let mut config = SessionConfig::new()
            .with_target_partitions(self.inner.target_partitions)
            // Lists table and column names of the session (telemetry and the catalog
            // tables): metadata only, no rows, the same for every tenant.
            .with_information_schema(true);
        // The store writes no bloom filters: looking for them in every file a filtered query
        // opens only costs time.
        config.options_mut().execution.parquet.bloom_filter_on_read = false;
        let mut state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(Arc::clone(&self.runtime))
            .with_default_features()
            // `GROUP BY pin` and other small integer keys: group state in arrays indexed by
            // the key instead of a hash table.
            .with_physical_optimizer_rules(
                crate::dense_group_by::DenseGroupBy::with_default_rules(),
            );
        if pg {
            state = state.with_type_planner(crate::postgres::type_planner());
        }
        let ctx = SessionContext::new_with_state(state.build());
        // `telemetry.ts` is in UTC: truncate it without going through a time zone database.
        ctx.register_udf(crate::utc_functions::UtcDateTrunc::udf());
        ctx
    }

    /// A fresh session in which `telemetry` shows only `scope`'s rows, all
    /// scans of one query reading the same storage snapshot.
    pub fn context(&self, scope: &OrgScope) -> Result<SessionContext> {
        let ctx = self.session(self.pg_catalog.is_some());
        let snapshot = Arc::new(self.inner.storage.snapshot());
        let table = TelemetryTable::from_snapshot(snapshot, scope.clone());
        ctx.register_table(TELEMETRY_TABLE, Arc::new(table))?;
        if let Some(source) = &self.catalog {
            for (name, schema) in source.tables() {
                let table = CatalogTable::new(name, schema, Arc::clone(source), scope.clone());
                ctx.register_table(name, Arc::new(table))?;
            }
        }
        if let Some(pg_catalog) = &self.pg_catalog {
            crate::postgres::install(&ctx, pg_catalog)?;
        }
        Ok(ctx)
    }

    /// Options that refuse everything but queries: no DDL (which could read
    /// arbitrary files through `CREATE EXTERNAL TABLE`), no DML or `COPY`, no
    /// `SET`.
    pub fn read_only() -> SQLOptions {
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
    }

    /// Run one read-only SQL statement for `scope` and collect the result.
    pub async fn sql(&self, scope: &OrgScope, sql: &str) -> Result<QueryResult> {
        let ctx = self.context(scope)?;
        let df = ctx.sql_with_options(sql, Self::read_only()).await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await?;
        Ok(QueryResult { schema, batches })
    }

    /// Plans one read-only statement without running it: its output schema and the types of
    /// its `$1`, `$2`, … parameters (`None` where the plan does not determine one). For the
    /// PostgreSQL extended query protocol's Describe.
    pub async fn describe(
        &self,
        scope: &OrgScope,
        sql: &str,
    ) -> Result<(SchemaRef, Vec<Option<DataType>>)> {
        let ctx = self.context(scope)?;
        let df = ctx.sql_with_options(sql, Self::read_only()).await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let mut types: Vec<(usize, Option<DataType>)> = df
            .logical_plan()
            .get_parameter_types()?
            .into_iter()
            .filter_map(|(name, ty)| {
                name.strip_prefix('$')
                    .and_then(|n| n.parse::<usize>().ok())
                    .map(|n| (n, ty))
            })
            .collect();
        types.sort_by_key(|(n, _)| *n);
        let count = types.last().map_or(0, |(n, _)| *n);
        let mut out = vec![None; count];
        for (n, ty) in types {
            if n >= 1 {
                out[n - 1] = ty;
            }
        }
        Ok((schema, out))
    }

    /// Runs one read-only statement with values for its `$1`, `$2`, … parameters and collects
    /// the result.
    pub async fn sql_with_params(
        &self,
        scope: &OrgScope,
        sql: &str,
        params: Vec<ScalarValue>,
    ) -> Result<QueryResult> {
        let ctx = self.context(scope)?;
        let mut df = ctx.sql_with_options(sql, Self::read_only()).await?;
        if !params.is_empty() {
            df = df.with_param_values(params)?;
        }
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await?;
        Ok(QueryResult { schema, batches })
    }

    /// Plan one read-only SQL statement for `scope` and start it: the output
    /// schema and a stream of result batches (dropping the stream cancels the
    /// query).
    pub async fn sql_stream(
        &self,
        scope: &OrgScope,
        sql: &str,
    ) -> Result<(SchemaRef, SendableRecordBatchStream)> {
        let ctx = self.context(scope)?;
        let df = ctx.sql_with_options(sql, Self::read_only()).await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let stream = df.execute_stream().await?;
        Ok((schema, stream))
    }

    /// Downsampled history of one pin, from rollup tiers where the bucket
    /// width allows it and raw rows elsewhere. Only numeric values count.
    ///
    /// It reads files, so it runs on a blocking thread: callers on any runtime (the API, the
    /// export, the query threads) never block the threads they await it on.
    pub async fn history(&self, req: &HistoryRequest) -> Result<History> {
        let (engine, req) = (self.clone(), *req);
        datafusion::common::runtime::SpawnedTask::spawn_blocking(move || engine.history_now(&req))
            .join()
            .await
            .map_err(|err| crate::QueryError::Execution(format!("history read failed: {err}")))?
    }

    /// [`QueryEngine::history`] on the caller's thread: rollups plus direct reads of the one
    /// series (`series.rs`).
    pub fn history_now(&self, req: &HistoryRequest) -> Result<History> {
        let plan = self.plan_history(req, true);
        let mut acc = plan.acc;
        let buckets = plan.buckets;
        let range = SeriesRange {
            org: req.org_id,
            device: req.device_id,
            pin: req.pin,
            from_us: buckets.from_us,
            to_us: buckets.to_us,
        };
        let mut push = |ts_us: i64, value: f64| acc.push(buckets.bucket_of(ts_us), ts_us, value);
        SeriesReader::scan_batches(&plan.snapshot.batches, &range, &mut push);
        for file in &plan.raw_files {
            self.inner.series.scan_file(file, &range, &mut push)?;
        }
        Ok(History {
            buckets,
            tier: plan.tier,
            points: acc.into_buckets(),
        })
    }

    /// [`QueryEngine::history`] from raw rows only (ignores rollups), through a DataFusion
    /// plan: the reference the rollup path and the direct reads must agree with.
    pub async fn history_raw(&self, req: &HistoryRequest) -> Result<History> {
        let plan = self.plan_history(req, false);
        let mut acc = plan.acc;
        let raw = TelemetryTable::from_snapshot_files(
            Arc::clone(&plan.snapshot),
            plan.raw_files,
            OrgScope::single(req.org_id),
        );
        self.aggregate_raw(raw, req, &plan.buckets, &mut acc)
            .await?;
        Ok(History {
            buckets: plan.buckets,
            tier: plan.tier,
            points: acc.into_buckets(),
        })
    }

    /// Bucket layout, tier, and one snapshot: the buckets the rollups answer already folded
    /// into `acc`, and the files that must be read raw.
    fn plan_history(&self, req: &HistoryRequest, use_rollups: bool) -> HistoryPlan {
        let mut buckets = Buckets::plan(req.from_us, req.to_us, req.points);
        let mut tier = if use_rollups {
            Tier::for_step(buckets.step_us)
        } else {
            Tier::Raw
        };
        let snapshot = Arc::new(self.inner.storage.snapshot());
        // Hour buckets over days of sparse series (files without an hour tier, see
        // `rollup.rs`) would read every file of the range raw; day buckets answer from the
        // day tier instead — fewer points than asked for, on data that has few anyway.
        if tier == Tier::Hour && req.to_us - req.from_us >= 2 * DAY_US {
            let sparse = snapshot.files.iter().any(|file| {
                file.org_ids.contains(&req.org_id)
                    && (file.min_device_id..=file.max_device_id).contains(&req.device_id)
                    && file.max_ts_us >= buckets.from_us
                    && file.min_ts_us < buckets.to_us
                    && self
                        .inner
                        .rollups
                        .get(file)
                        .is_some_and(|r| !r.has(Tier::Hour))
            });
            if sparse {
                buckets = Buckets::with_step(req.from_us, req.to_us, DAY_US);
                tier = Tier::Day;
            }
        }
        let mut acc = Accumulator::default();
        let mut raw_files: Vec<FileMeta> = Vec::new();
        for file in &snapshot.files {
            if !file.org_ids.contains(&req.org_id)
                || req.device_id < file.min_device_id
                || req.device_id > file.max_device_id
                || file.max_ts_us < buckets.from_us
                || file.min_ts_us >= buckets.to_us
            {
                continue;
            }
            let rollup = match tier {
                Tier::Raw => None,
                _ => self.inner.rollups.get(file).filter(|r| r.has(tier)),
            };
            match rollup {
                Some(rollup) => {
                    for (bucket, stats) in rollup.range(
                        tier,
                        req.org_id,
                        req.device_id,
                        req.pin,
                        buckets.from_us,
                        buckets.to_us,
                    ) {
                        acc.merge(buckets.bucket_of(bucket), stats);
                    }
                }
                None => raw_files.push(file.clone()),
            }
        }
        HistoryPlan {
            buckets,
            tier,
            snapshot,
            acc,
            raw_files,
        }
    }

    /// Folds the raw numeric rows of one series in `buckets` from `table`.
    async fn aggregate_raw(
        &self,
        table: TelemetryTable,
        req: &HistoryRequest,
        buckets: &Buckets,
        acc: &mut Accumulator,
    ) -> Result<()> {
        let ts = |us: i64| {
            lit(ScalarValue::TimestampMicrosecond(
                Some(us),
                Some(TS_TIMEZONE.into()),
            ))
        };
        let df = self
            .session(false)
            .read_table(Arc::new(table))?
            .filter(
                col(columns::ORG_ID)
                    .eq(lit(req.org_id))
                    .and(col(columns::DEVICE_ID).eq(lit(req.device_id)))
                    .and(col(columns::PIN).eq(lit(req.pin)))
                    .and(col(columns::TS).gt_eq(ts(buckets.from_us)))
                    .and(col(columns::TS).lt(ts(buckets.to_us)))
                    .and(col(columns::VALUE).is_not_null()),
            )?
            .select_columns(&[columns::TS, columns::VALUE])?;
        let mut stream = df.execute_stream().await?;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let t = batch.column(0).as_primitive::<TimestampMicrosecondType>();
            let v = batch.column(1).as_primitive::<Float64Type>();
            for i in 0..batch.num_rows() {
                let ts_us = t.value(i);
                acc.push(buckets.bucket_of(ts_us), ts_us, v.value(i));
            }
        }
        Ok(())
    }
}

fn refresh(inner: &Inner) -> RollupPass {
    let _guard = inner.rollup_pass.lock();
    // The snapshot keeps its files on disk while they are rolled up.
    let snapshot = inner.storage.snapshot();
    let pass = inner.rollups.refresh(&snapshot.files);
    let footers = inner.series.refresh(&snapshot.files);
    if footers > 0 {
        tracing::debug!(footers, "data file footers cached for history reads");
    }
    if pass != RollupPass::default() {
        tracing::info!(
            computed = pass.computed,
            loaded = pass.loaded,
            dropped = pass.dropped,
            failed = pass.failed,
            "rollups refreshed"
        );
    }
    pass
}

/// Follows the catalog until the engine is dropped.
fn rollup_loop(engine: Weak<Inner>) {
    loop {
        match engine.upgrade() {
            Some(inner) => {
                refresh(&inner);
            }
            None => return,
        }
        std::thread::sleep(ROLLUP_INTERVAL);
    }
}
