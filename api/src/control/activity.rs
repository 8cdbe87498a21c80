//! Signals of the control plane to in-process listeners (the automation engine, the telemetry
//! lifecycle worker): device status changes and device events as they are recorded,
//! "automations changed" and "telemetry work" (a device deleted, a retention changed).
//!
//! A broadcast channel: a slow listener misses signals (it is told how many), the control plane
//! never waits for it.

use tokio::sync::{Notify, broadcast};

/// Signals kept for a slow listener before it lags.
const ACTIVITY_CAPACITY: usize = 4096;

/// Something that happened to a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activity {
    /// The device came online (it was offline).
    Online { org_id: u32, device_id: u32 },
    /// The device's last connection closed.
    Offline { org_id: u32, device_id: u32 },
    /// The device logged event `code`.
    Event {
        org_id: u32,
        device_id: u32,
        code: String,
        event_id: u32,
    },
}

/// The channels.
#[derive(Debug)]
pub(crate) struct Signals {
    pub(crate) activity: broadcast::Sender<Activity>,
    pub(crate) automations_changed: Notify,
    /// A device was deleted: its telemetry is queued for deletion.
    pub(crate) telemetry_deletion_queued: Notify,
    /// An organization's retention changed.
    pub(crate) retention_changed: Notify,
}

impl Default for Signals {
    fn default() -> Self {
        Self {
            activity: broadcast::channel(ACTIVITY_CAPACITY).0,
            automations_changed: Notify::new(),
            telemetry_deletion_queued: Notify::new(),
            retention_changed: Notify::new(),
        }
    }
}

impl super::ControlPlane {
    /// Device activity from now on.
    pub fn subscribe_activity(&self) -> broadcast::Receiver<Activity> {
        self.signals.activity.subscribe()
    }

    /// Waits until automations are created, changed or deleted.
    pub async fn automations_changed(&self) {
        self.signals.automations_changed.notified().await;
    }

    /// Waits until a device is deleted (its telemetry queued for deletion); a deletion made
    /// while nobody waits is kept for the next call.
    pub async fn telemetry_deletion_queued(&self) {
        self.signals.telemetry_deletion_queued.notified().await;
    }

    /// Waits until an organization's retention changes (kept for the next call likewise).
    pub async fn retention_changed(&self) {
        self.signals.retention_changed.notified().await;
    }

    /// Sends `activity` to the listeners, if any (no listener: nothing to do).
    pub(crate) fn signal(&self, activity: Activity) {
        let _ = self.signals.activity.send(activity);
    }

    /// Whether anyone listens (to skip the work of building a signal).
    pub(crate) fn has_listeners(&self) -> bool {
        self.signals.activity.receiver_count() > 0
    }
}
