//! The telemetry lifecycle worker: carries out in the store what the control plane decided.
//!
//! - **Deleted devices.** Deleting a device queues the deletion of its telemetry in the
//!   control-plane database (`telemetry_deletions`, in the same transaction). This worker
//!   closes the device's live sessions, deletes its rows from every Parquet file and its last
//!   values (`Storage::delete_devices`: one rewrite of each affected file for all the devices
//!   queued), then clears the queue. A crash or stop in between leaves the queue as it was,
//!   and the next start finishes the work.
//! - **Retention.** Each organization keeps its telemetry for its own `retention_days`, or the
//!   server's `--retention-days`, or forever; whole day partitions older than that are dropped
//!   (`Storage::apply_retention`). Applied at start, every hour, and moments after a setting
//!   changes.
//!
//! Both rewrite files on the store's compactor thread: ingest goes on meanwhile. A failure is
//! logged and retried a minute later.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pinhouse_ingest::Ingest;
use pinhouse_storage::{RetentionRules, Storage};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::control::{ControlError, ControlPlane};

/// Why a round of the worker failed (it is retried).
#[derive(Debug, thiserror::Error)]
enum LifecycleError {
    #[error("control plane: {0}")]
    Control(#[from] ControlError),
    #[error("storage: {0}")]
    Storage(#[from] pinhouse_storage::StorageError),
    #[error("task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// How often retention is applied when no setting changes.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
/// Wait before retrying work that failed.
const RETRY_AFTER: Duration = Duration::from_secs(60);
/// Between closing a deleted device's sessions and deleting its rows: batches those sessions
/// had already read reach the store first, so that the deletion covers them.
const IN_FLIGHT_GRACE: Duration = Duration::from_millis(200);

const DAY: Duration = Duration::from_secs(86_400);

/// The worker.
pub struct TelemetryLifecycle {
    control: ControlPlane,
    ingest: Ingest,
    storage: Storage,
    /// Retention of organizations without a setting of their own (`None`: forever).
    default_retention: Option<Duration>,
}

impl TelemetryLifecycle {
    pub fn new(
        control: ControlPlane,
        ingest: Ingest,
        storage: Storage,
        default_retention: Option<Duration>,
    ) -> Self {
        Self {
            control,
            ingest,
            storage,
            default_retention,
        }
    }

    /// Runs until `shutdown` turns true. A rewrite in progress at shutdown is left to the
    /// store, whose close abandons it (the queue keeps the work for the next start).
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(
            default_retention_days = self.default_retention.map(|d| d.as_secs() / DAY.as_secs()),
            "telemetry lifecycle worker started"
        );
        let mut next_retention = Instant::now();
        let mut deletions_due = true;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let mut retry = None;
            if deletions_due {
                match tokio::select! {
                    done = self.delete_queued_devices() => done,
                    _ = shutdown.changed() => return,
                } {
                    Ok(()) => deletions_due = false,
                    Err(err) => {
                        tracing::error!(%err, "deleting the telemetry of deleted devices failed; will retry");
                        retry = Some(Instant::now() + RETRY_AFTER);
                    }
                }
            }
            if Instant::now() >= next_retention {
                match tokio::select! {
                    done = self.apply_retention() => done,
                    _ = shutdown.changed() => return,
                } {
                    Ok(()) => next_retention = Instant::now() + RETENTION_EVERY,
                    Err(err) => {
                        tracing::error!(%err, "applying telemetry retention failed; will retry");
                        next_retention = Instant::now() + RETRY_AFTER;
                    }
                }
            }
            let wake = retry.map_or(next_retention, |r| r.min(next_retention));
            tokio::select! {
                () = self.control.telemetry_deletion_queued() => deletions_due = true,
                () = self.control.retention_changed() => next_retention = Instant::now(),
                () = tokio::time::sleep_until(wake) => deletions_due |= retry.is_some(),
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Deletes the telemetry of every device in the queue, then empties it of them.
    async fn delete_queued_devices(&self) -> Result<(), LifecycleError> {
        let devices = self.control.pending_telemetry_deletions().await?;
        if devices.is_empty() {
            return Ok(());
        }
        let sessions: usize = devices
            .iter()
            .map(|&(_, device_id)| self.ingest.disconnect(device_id))
            .sum();
        if sessions > 0 {
            tokio::time::sleep(IN_FLIGHT_GRACE).await;
        }
        let storage = self.storage.clone();
        let queued = devices.clone();
        let report = tokio::task::spawn_blocking(move || storage.delete_devices(&queued)).await??;
        self.control.telemetry_deleted(&devices).await?;
        tracing::info!(
            devices = devices.len(),
            sessions_closed = sessions,
            files_rewritten = report.files_removed,
            rows_removed = report.rows_before.saturating_sub(report.rows_after),
            "telemetry of deleted devices removed"
        );
        Ok(())
    }

    /// Drops, per organization, the day partitions older than its retention.
    async fn apply_retention(&self) -> Result<(), LifecycleError> {
        let per_org: HashMap<u32, Duration> = self
            .control
            .retention_settings()
            .await?
            .into_iter()
            .map(|(org_id, days)| (org_id, DAY * days))
            .collect();
        if per_org.is_empty() && self.default_retention.is_none() {
            return Ok(()); // everything is kept forever
        }
        let organizations = per_org.len();
        let rules = RetentionRules {
            default: self.default_retention,
            per_org,
        };
        let now_us = i64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_micros(),
        )
        .unwrap_or(i64::MAX);
        let storage = self.storage.clone();
        let report =
            tokio::task::spawn_blocking(move || storage.apply_retention(&rules, now_us)).await??;
        if report.files_removed > 0 {
            tracing::info!(
                organizations_with_own_retention = organizations,
                files_removed = report.files_removed,
                files_written = report.files_written,
                rows_removed = report.rows_before.saturating_sub(report.rows_after),
                "telemetry retention applied"
            );
        }
        Ok(())
    }
}
