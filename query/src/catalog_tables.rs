//! Tables that come from outside the telemetry store (the control plane's devices, templates,
//! datastreams, events, metadata), so that SQL can join values with names, tags and metadata.
//!
//! This crate knows nothing about the control plane: a [`CatalogSource`] (implemented by the api
//! crate) names the tables, gives their schemas, and loads a table's rows for an [`OrgScope`]
//! when a query scans it. The rows are only ever those of the scope's organizations — the
//! source filters them, the same way the telemetry provider filters its batches — and tables a
//! query does not name are not loaded at all.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::Session;
use datafusion::datasource::{MemTable, TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::OrgScope;

/// Where the extra tables come from.
#[async_trait]
pub trait CatalogSource: Send + Sync + Debug + 'static {
    /// The tables: name and schema (fixed for the life of the source).
    fn tables(&self) -> Vec<(&'static str, SchemaRef)>;

    /// The rows of `table` that `scope` may see, in the table's schema.
    async fn load(&self, table: &str, scope: &OrgScope) -> Result<RecordBatch, String>;
}

/// One table of a [`CatalogSource`], bound to a query's scope.
#[derive(Debug)]
pub(crate) struct CatalogTable {
    name: &'static str,
    schema: SchemaRef,
    source: Arc<dyn CatalogSource>,
    scope: OrgScope,
}

impl CatalogTable {
    pub(crate) fn new(
        name: &'static str,
        schema: SchemaRef,
        source: Arc<dyn CatalogSource>,
        scope: OrgScope,
    ) -> Self {
        Self {
            name,
            schema,
            source,
            scope,
        }
    }
}

#[async_trait]
impl TableProvider for CatalogTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let batch = self
            .source
            .load(self.name, &self.scope)
            .await
            .map_err(|e| DataFusionError::Execution(format!("table {}: {e}", self.name)))?;
        if batch.schema() != self.schema {
            return Err(DataFusionError::Internal(format!(
                "table {}: the source answered another schema",
                self.name
            )));
        }
        let table = MemTable::try_new(Arc::clone(&self.schema), vec![vec![batch]])?;
        table.scan(state, projection, filters, limit).await
    }
}
