//! pinhouse-api: the `pinhouse` server.
//!
//! Role: the HTTP surface (Blynk device HTTP API, REST control plane, SQL
//! endpoint, the web console at `/`), the control-plane database (organizations, users, templates,
//! devices — sqlx, SQLite embedded by default), configuration, and the wiring
//! of every tier (`protocol`, `storage`, `ingest`, `query`) into one process.
//!
//! This is the top of the dependency graph: nothing in the workspace depends on
//! it except the end-to-end tests.

pub mod automations;
pub mod blynk_http;
pub mod cli;
pub mod config;
pub mod console;
pub mod control;
pub mod device_ws;
pub mod directory;
pub mod history;
pub mod live;
pub mod metrics;
pub mod notifier;
pub mod openapi;
pub mod ota;
pub mod pg;
pub mod query_runtime;
pub mod server;
pub mod sql;
pub mod sql_catalog;
pub mod state;
pub mod telemetry_lifecycle;

pub use config::ServerConfig;
pub use server::{ServeError, router, serve};
pub use state::AppState;
