//! Wiring of all tiers into one process: `pinhouse serve`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use pinhouse_ingest::{Ingest, IngestConfig};
use pinhouse_query::QueryEngine;
use pinhouse_storage::{Storage, StorageConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::ServerConfig;
use crate::control::ControlPlane;
use crate::directory::ControlDirectory;
use crate::state::AppState;
use crate::{blynk_http, sql};

/// Largest HTTP request accepted (headers excluded), like Blynk's 2 MB limit.
const MAX_HTTP_BODY: usize = 2 * 1024 * 1024;

/// Failure to start or run the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Data directory, sockets.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The telemetry store failed to open.
    #[error("storage: {0}")]
    Storage(#[from] pinhouse_storage::StorageError),
    /// The control-plane database failed.
    #[error("control plane: {0}")]
    Control(#[from] crate::control::ControlError),
    /// A background task failed.
    #[error("task failed: {0}")]
    Task(String),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServeError {
    let context = context.into();
    move |source| ServeError::Io { context, source }
}

/// The HTTP router with every route of the server.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .merge(crate::control::routes::<AppState>())
        .merge(blynk_http::routes())
        .merge(sql::routes())
        .fallback(crate::control::not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_HTTP_BODY))
        .with_state(state)
}

/// Run until SIGINT/SIGTERM, then shut down cleanly (WAL flushed).
pub async fn serve(config: ServerConfig) -> Result<(), ServeError> {
    std::fs::create_dir_all(&config.data_dir).map_err(io(format!(
        "cannot create data dir {}",
        config.data_dir.display()
    )))?;
    tracing::info!(data_dir = %config.data_dir.display(), "starting pinhouse");

    let control = ControlPlane::open(&config.database_url).await?;
    if let Some(password) = control
        .bootstrap(
            config.admin_email.as_deref(),
            config.admin_password.as_deref(),
        )
        .await?
    {
        tracing::warn!(
            email = config.admin_email.as_deref().unwrap_or(crate::control::DEFAULT_ADMIN_EMAIL),
            %password,
            "created the first admin with a generated password; it is shown only once"
        );
    }

    let mut storage_config = StorageConfig::new(config.data_dir.join("telemetry"));
    storage_config.fsync = config.fsync;
    let storage = tokio::task::spawn_blocking(move || Storage::open(storage_config))
        .await
        .map_err(|e| ServeError::Task(e.to_string()))??;

    let directory = Arc::new(ControlDirectory(control.clone()));
    let ingest = Ingest::new(storage.clone(), directory, IngestConfig::default());
    let query = QueryEngine::new(storage.clone());
    let state = AppState {
        control,
        ingest: ingest.clone(),
        query,
    };

    let http = TcpListener::bind(config.http)
        .await
        .map_err(io(format!("cannot listen on {} (--http)", config.http)))?;
    let hardware = TcpListener::bind(config.hardware)
        .await
        .map_err(io(format!(
            "cannot listen on {} (--hardware)",
            config.hardware
        )))?;
    let http_addr: SocketAddr = http.local_addr().map_err(io("http address"))?;
    tracing::info!(addr = %http_addr, "HTTP API ready");

    let (stop_tx, stop_rx) = watch::channel(false);
    let hardware_task = {
        let ingest = ingest.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move { ingest.serve_tcp(hardware, stop).await })
    };
    let mut http_stop = stop_rx.clone();
    let http_task = tokio::spawn(async move {
        axum::serve(http, router(state))
            .with_graceful_shutdown(async move {
                let _ = http_stop.wait_for(|stop| *stop).await;
            })
            .await
    });

    shutdown_signal().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    match hardware_task.await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::error!(%err, "hardware listener failed"),
        Err(err) => tracing::error!(%err, "hardware listener panicked"),
    }
    if let Ok(Err(err)) = http_task.await {
        tracing::error!(%err, "HTTP server failed");
    }
    tokio::task::spawn_blocking(move || storage.close())
        .await
        .map_err(|e| ServeError::Task(e.to_string()))??;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
