//! The control plane as ingest's device directory: token lookups, and a queue
//! that records what devices do (online state, info, properties, events)
//! without ever making a device session wait for the database.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use pinhouse_ingest::{DeviceActivity, DeviceDirectory, DeviceIdentity, DirectoryError};
use tokio::sync::{mpsc, oneshot};

use crate::control::{ControlPlane, now_ms};

/// Activities queued for the database before further ones are dropped (and
/// counted). A burst of reconnecting devices fits many times over.
const QUEUE: usize = 65_536;

enum Job {
    /// What happened, and when (Unix ms, taken when it was reported).
    Record(DeviceActivity, i64),
    /// Answered once everything queued before it is recorded.
    Flush(oneshot::Sender<()>),
}

/// Resolves device auth tokens through the control-plane database and records
/// device activity in it, in order, on one background task.
#[derive(Debug, Clone)]
pub struct ControlDirectory {
    control: ControlPlane,
    queue: mpsc::Sender<Job>,
    dropped: Arc<AtomicU64>,
}

impl ControlDirectory {
    /// The directory, and the task that writes reported activity (it ends
    /// when every copy of the directory is dropped).
    pub fn start(control: ControlPlane) -> (Self, tokio::task::JoinHandle<()>) {
        let (queue, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(record_all(control.clone(), rx));
        let directory = Self {
            control,
            queue,
            dropped: Arc::default(),
        };
        (directory, task)
    }

    /// Activities dropped because the queue was full (database too slow).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Wait (at most `limit`) until everything reported so far is recorded.
    pub async fn flush(&self, limit: Duration) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.queue.send(Job::Flush(tx)).await.is_err() {
            return false;
        }
        matches!(tokio::time::timeout(limit, rx).await, Ok(Ok(())))
    }
}

#[async_trait]
impl DeviceDirectory for ControlDirectory {
    async fn lookup(&self, token: &str) -> Result<Option<DeviceIdentity>, DirectoryError> {
        let device = self
            .control
            .device_by_token(token)
            .await
            .map_err(|err| DirectoryError(err.to_string()))?;
        Ok(device.map(|d| DeviceIdentity {
            org_id: d.org_id,
            device_id: d.id,
            template_id: Some(d.template_id),
        }))
    }

    async fn metadata(&self, device_id: u32, name: &str) -> Result<Option<String>, DirectoryError> {
        // A `meta set` the device sent before this `meta get` is still queued: let it land.
        self.flush(Duration::from_secs(2)).await;
        match self.control.device_meta_value(device_id, name).await {
            Ok(value) => Ok(value),
            Err(err) if err.status().is_client_error() => Ok(None),
            Err(err) => Err(DirectoryError(err.to_string())),
        }
    }

    fn report(&self, activity: DeviceActivity) {
        if let Err(err) = self.queue.try_send(Job::Record(activity, now_ms())) {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                let activity = match err.into_inner() {
                    Job::Record(a, _) => format!("{a:?}"),
                    Job::Flush(_) => String::new(),
                };
                tracing::warn!(
                    dropped,
                    activity,
                    "device activity queue full; activity not recorded"
                );
            }
        }
    }
}

async fn record_all(control: ControlPlane, mut rx: mpsc::Receiver<Job>) {
    while let Some(job) = rx.recv().await {
        match job {
            Job::Record(activity, at_ms) => record(&control, activity, at_ms).await,
            Job::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

async fn record(control: &ControlPlane, activity: DeviceActivity, at_ms: i64) {
    let (device_id, what, result) = match activity {
        DeviceActivity::Online { device_id } => (
            device_id,
            "online",
            control.device_online(device_id, at_ms).await,
        ),
        DeviceActivity::Offline { device_id } => (
            device_id,
            "offline",
            control.device_offline(device_id, at_ms).await,
        ),
        DeviceActivity::Info { device_id, info } => (
            device_id,
            "info",
            control.record_device_info(device_id, &info, at_ms).await,
        ),
        DeviceActivity::Property {
            device_id,
            pin,
            name,
            values,
        } => {
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            let result = control
                .set_device_property(device_id, u16::from(pin), &name, &values)
                .await;
            (device_id, "property", result)
        }
        DeviceActivity::LogEvent {
            device_id,
            code,
            description,
        } => {
            let result = control
                .log_device_event(device_id, &code, description.as_deref())
                .await
                .map(drop);
            (device_id, "log event", result)
        }
        DeviceActivity::ResolveEvent {
            device_id,
            code,
            all,
        } => {
            let result = control
                .resolve_device_event(device_id, &code, all)
                .await
                .map(drop);
            (device_id, "resolve event", result)
        }
        DeviceActivity::MetaSet {
            device_id,
            name,
            value,
        } => {
            let result = control
                .set_device_metadata(device_id, &name, &value, crate::control::MetaWriter::Device)
                .await
                .map(drop);
            (device_id, "metadata", result)
        }
    };
    if let Err(err) = result {
        if err.status().is_client_error() {
            // The device sent something its template does not allow (unknown
            // event code, daily limit, bad property name): its problem, logged.
            tracing::info!(device_id, %err, "device {what} refused");
        } else {
            tracing::error!(device_id, %err, "recording device {what} failed");
        }
    }
}
