//! Shared state of the HTTP handlers.

use axum::extract::FromRef;
use pinhouse_ingest::Ingest;
use pinhouse_query::QueryEngine;

use crate::control::ControlPlane;
use crate::ota::Ota;
use crate::query_runtime::QueryRuntime;

/// Everything a handler may need; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Organizations, users, templates, devices.
    pub control: ControlPlane,
    /// Network edge: writes to storage and to connected devices.
    pub ingest: Ingest,
    /// SQL over telemetry.
    pub query: QueryEngine,
    /// Firmware updates.
    pub ota: Ota,
    /// The threads SQL queries run on, and their time limit.
    pub query_runtime: QueryRuntime,
}

impl FromRef<AppState> for Ota {
    fn from_ref(state: &AppState) -> Self {
        state.ota.clone()
    }
}

impl FromRef<AppState> for ControlPlane {
    fn from_ref(state: &AppState) -> Self {
        state.control.clone()
    }
}
