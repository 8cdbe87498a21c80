//! Running SQL for a caller.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionContext};
use pinhouse_storage::Storage;

use crate::{OrgScope, Result, TELEMETRY_TABLE, TelemetryTable};

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

/// Plans and runs SQL over the telemetry store.
#[derive(Debug, Clone)]
pub struct QueryEngine {
    storage: Storage,
    target_partitions: usize,
}

impl QueryEngine {
    /// An engine reading `storage`.
    pub fn new(storage: Storage) -> Self {
        let target_partitions = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Self {
            storage,
            target_partitions,
        }
    }

    /// A fresh session in which `telemetry` shows only `scope`'s rows.
    pub fn context(&self, scope: &OrgScope) -> Result<SessionContext> {
        let config = SessionConfig::new()
            .with_target_partitions(self.target_partitions)
            .with_information_schema(false);
        let ctx = SessionContext::new_with_config(config);
        let table = TelemetryTable::new(self.storage.clone(), scope.clone());
        ctx.register_table(TELEMETRY_TABLE, Arc::new(table))?;
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
}
