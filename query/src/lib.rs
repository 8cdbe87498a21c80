//! pinhouse-query: Apache DataFusion over the telemetry store.
//!
//! Role: expose the `telemetry` table (memtable snapshot ∪ Parquet files of
//! `pinhouse-storage`) to SQL, always scoped to the caller's organizations, next to
//! tables a [`CatalogSource`] supplies (the control plane's devices, templates, …);
//! answer dashboard history queries (downsampled buckets of one pin) from
//! rollup tiers kept per data file (`rollup.rs`) plus raw rows.
//! Tenant scoping is enforced inside the table provider's scan, never by
//! rewriting SQL text, and statements that could escape the scope (DDL such as
//! `CREATE EXTERNAL TABLE`, DML, `COPY`, `SET`) are refused.
//!
//! For PostgreSQL clients, an engine made with [`QueryEngine::with_pg_catalog`] also answers
//! the `pg_catalog` queries of `psql` and Grafana, and [`postgres::statements`] rewrites
//! PostgreSQL-only syntax for DataFusion (`postgres.rs`).
//!
//! Depends on `pinhouse-storage`, `datafusion` and `datafusion-pg-catalog` only. It must not
//! depend on tokio directly, on `pinhouse-ingest`, or on `pinhouse-api`.

mod catalog_tables;
mod dense_group_by;
mod engine;
mod error;
pub mod history;
mod local_files;
pub mod postgres;
mod rollup;
mod scaled_values;
mod scope;
mod series;
mod telemetry_table;
mod utc_functions;

pub use catalog_tables::CatalogSource;
pub use engine::{QueryEngine, QueryResult};
pub use error::{QueryError, Result};
pub use history::{Agg, BucketStats, History, HistoryRequest, Tier};
pub use rollup::RollupPass;
pub use scope::OrgScope;
pub use telemetry_table::TelemetryTable;

/// Name of the telemetry table in SQL.
pub const TELEMETRY_TABLE: &str = "telemetry";
