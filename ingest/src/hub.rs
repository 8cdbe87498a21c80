//! The ingest hub: routes values into storage and commands out to devices,
//! and knows which devices are connected.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use pinhouse_protocol::{command, encode_fields};
use pinhouse_storage::{Point, Storage};
use smallvec::SmallVec;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Semaphore, oneshot};
use tokio::time::Instant;

use crate::metrics::{IngestMetrics, Refusal};
use crate::outbox::{Closed, Outbox};
use crate::quota::LoginLimiter;
use crate::session::CloseReason;
use crate::{
    DeviceActivity, DeviceDirectory, DeviceIdentity, IngestConfig, IngestError, PinRef, Result,
    Transport,
};

/// Message id used for `hardware` writes that originate in the cloud (HTTP
/// API, REST, automations); the legacy server used the same id.
pub const CLOUD_WRITE_MSG_ID: u16 = 111;

/// Handle of one live device session, as the hub sees it.
#[derive(Debug)]
pub(crate) struct SessionHandle {
    pub(crate) id: u64,
    /// Encoded frames to write to the device, and the largest frame it accepts.
    pub(crate) outbox: Arc<Outbox>,
}

/// The sessions of one device: almost always one, kept without an allocation of its own.
type DeviceSessions = SmallVec<[SessionHandle; 1]>;

struct Inner {
    storage: Storage,
    directory: Arc<dyn DeviceDirectory>,
    config: IngestConfig,
    /// Logged-in sessions by device.
    sessions: Mutex<HashMap<u32, DeviceSessions>>,
    /// Every open session's mailbox, logged in or not, by session id: what the shared timer
    /// sweeps and [`Ingest::stop`] closes.
    links: Mutex<HashMap<u64, Arc<Outbox>>>,
    /// Origin of the deadlines sessions publish (ms).
    epoch: Instant,
    /// Whether the shared timer task runs (started with the first session).
    sweeper: AtomicBool,
    inflight: Arc<Semaphore>,
    /// Device sessions open (see [`Ingest::serve_connection`]).
    connections: AtomicUsize,
    next_session: AtomicU64,
    metrics: IngestMetrics,
    logins: LoginLimiter,
    stop: tokio::sync::watch::Sender<bool>,
    live: crate::live::LiveHub,
}

impl Inner {
    /// `at` in ms since `epoch`, rounded up (see [`Ingest::deadline_ms`]).
    fn clock_ms(&self, at: Instant) -> u64 {
        let micros = at.saturating_duration_since(self.epoch).as_micros();
        u64::try_from(micros.div_ceil(1000)).unwrap_or(u64::MAX)
    }
}

/// Cheap-to-clone handle on the ingest tier.
#[derive(Clone)]
pub struct Ingest {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("online_devices", &self.inner.sessions.lock().len())
            .finish()
    }
}

impl Ingest {
    /// A hub writing to `storage` and resolving tokens through `directory`.
    pub fn new(
        storage: Storage,
        directory: Arc<dyn DeviceDirectory>,
        config: IngestConfig,
    ) -> Self {
        let inflight = Arc::new(Semaphore::new(config.max_inflight_batches.max(1)));
        Self {
            inner: Arc::new(Inner {
                storage,
                directory,
                sessions: Mutex::new(HashMap::new()),
                links: Mutex::new(HashMap::new()),
                epoch: Instant::now(),
                sweeper: AtomicBool::new(false),
                inflight,
                connections: AtomicUsize::new(0),
                next_session: AtomicU64::new(1),
                metrics: IngestMetrics::default(),
                logins: LoginLimiter::new(config.login_rate_per_ip, config.login_burst_per_ip),
                stop: tokio::sync::watch::Sender::new(false),
                live: crate::live::LiveHub::default(),
                config,
            }),
        }
    }

    /// The storage engine values go to.
    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    /// Limits and timeouts in force.
    pub fn config(&self) -> &IngestConfig {
        &self.inner.config
    }

    /// A receiver that turns true once [`Ingest::stop`] is called.
    pub fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.stop.subscribe()
    }

    /// End every device session, whatever its transport; connections served from now on end
    /// at once.
    pub fn stop(&self) {
        self.inner.stop.send_replace(true);
        for link in self.inner.links.lock().values() {
            link.close(Closed::Shutdown);
        }
    }

    /// Every batch of values from now on, as it arrives (devices and HTTP
    /// writes). A receiver that falls behind gets `Lagged` and loses the
    /// oldest batches; ingest never waits for it.
    pub fn subscribe_live(&self) -> tokio::sync::broadcast::Receiver<crate::LiveBatch> {
        self.inner.live.subscribe()
    }

    /// Counters of the ingest tier (exposed on `/metrics`).
    pub fn metrics(&self) -> &IngestMetrics {
        &self.inner.metrics
    }

    /// Whether `ip` may try another login now (per-IP rate limit).
    pub(crate) fn login_allowed(&self, ip: std::net::IpAddr) -> bool {
        self.inner.logins.allow(ip)
    }

    /// Serve one device connection on any transport until it closes, within the
    /// `max_connections` limit: `None` when the limit is reached (the connection is closed at
    /// once, logged and counted). [`Ingest::stop`] ends the session.
    ///
    /// A plain function that takes the connection slot now and returns the session's future,
    /// to be spawned or awaited as it is: an `async fn` (or a wrapping `async` block) would
    /// keep its arguments in every idle session's task beside the copies the session holds.
    pub fn serve_connection<S>(
        &self,
        stream: S,
        peer: SocketAddr,
        transport: Transport,
    ) -> Option<impl Future<Output = CloseReason> + Send + 'static>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let limit = self.config().max_connections.max(1);
        let taken =
            self.inner
                .connections
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                    (open < limit).then_some(open + 1)
                });
        if taken.is_err() {
            tracing::warn!(%peer, %transport, limit, "connection refused: too many connections");
            self.metrics().refused(Refusal::max_connections);
            return None;
        }
        // The session gives its place back when it is dropped (`Ingest::session_ended`): a
        // counter, not a semaphore permit, which would take 16 bytes of every session.
        Some(crate::session::run(self.clone(), stream, peer, transport))
    }

    /// [`Ingest::serve_connection`] on a task of the session's own: its future spawned as it
    /// is, so the task is sized for the session alone (not for a handshake, a sniff or a
    /// wrapping `async` block holding the stream a second time).
    pub(crate) fn spawn_connection<S>(&self, stream: S, peer: SocketAddr, transport: Transport)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        if let Some(session) = self.serve_connection(stream, peer, transport) {
            tokio::spawn(session);
        }
    }

    /// A session opened by [`Ingest::serve_connection`] ended: its place and its mailbox
    /// are given back.
    pub(crate) fn session_ended(&self, id: u64) {
        self.inner.connections.fetch_sub(1, Ordering::AcqRel);
        self.inner.links.lock().remove(&id);
    }

    /// A new session's id and mailbox, registered for the shared timer and for
    /// [`Ingest::stop`] (already closed when the server is stopping).
    pub(crate) fn open_link(&self) -> (u64, Arc<Outbox>) {
        let id = self.inner.next_session.fetch_add(1, Ordering::Relaxed);
        let link = Arc::new(Outbox::new(
            crate::session::OUTBOUND_QUEUE,
            self.config().default_device_buffer + pinhouse_protocol::HEADER_LEN,
        ));
        self.inner.links.lock().insert(id, Arc::clone(&link));
        // After the insert: a `stop` from now on finds the link, one before it left the flag.
        if *self.inner.stop.borrow() {
            link.close(Closed::Shutdown);
        }
        (id, link)
    }

    /// `at` in ms of the clock sessions publish their deadlines in (rounded up: a deadline
    /// the timer finds passed has passed).
    pub(crate) fn deadline_ms(&self, at: Instant) -> u64 {
        self.inner.clock_ms(at)
    }

    /// The shared timer: a task that wakes, a few times a second, the sessions whose login
    /// or heartbeat deadline has passed. One timer per session (a `tokio::time::Sleep`, 112
    /// bytes in every idle session's future) would cost more memory than a sweep of the
    /// sessions costs CPU. It holds the hub weakly and ends with it; started by the first
    /// session (from within its runtime), and again should its runtime have dropped it.
    pub(crate) fn start_sweeper(&self) {
        if self.inner.sweeper.swap(true, Ordering::AcqRel) {
            return;
        }
        let every = (self.config().login_timeout / 4)
            .clamp(Duration::from_millis(10), Duration::from_millis(250));
        let hub = Arc::downgrade(&self.inner);
        /// Marks the timer stopped when its task ends or is dropped with its runtime.
        struct Running(std::sync::Weak<Inner>);
        impl Drop for Running {
            fn drop(&mut self) {
                if let Some(inner) = self.0.upgrade() {
                    inner.sweeper.store(false, Ordering::Release);
                }
            }
        }
        let running = Running(hub.clone());
        tokio::spawn(async move {
            let _running = running;
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = hub.upgrade() else {
                    return;
                };
                let now = inner.clock_ms(Instant::now());
                for link in inner.links.lock().values() {
                    if link.expired(now) {
                        link.nudge();
                    }
                }
            }
        });
    }

    /// A slot among the storage writes in flight. Backpressure: when they are all taken, the
    /// writer (a device session, which then stops reading its socket, or an HTTP request)
    /// waits until storage catches up; counted as a write wait.
    async fn write_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit> {
        if let Ok(permit) = Arc::clone(&self.inner.inflight).try_acquire_owned() {
            return Ok(permit);
        }
        self.metrics().write_waited();
        Arc::clone(&self.inner.inflight)
            .acquire_owned()
            .await
            .map_err(|_| IngestError::ShuttingDown)
    }

    /// Resolve an auth token.
    pub async fn lookup(&self, token: &str) -> Result<Option<DeviceIdentity>> {
        Ok(self.inner.directory.lookup(token).await?)
    }

    /// Write `points` and return once they are durable under the storage
    /// fsync policy (the HTTP API answers 200 only after this).
    pub async fn write(&self, points: Vec<Point>) -> Result<()> {
        if points.is_empty() {
            return Ok(());
        }
        self.inner.live.publish(&points);
        let permit = self.write_slot().await?;
        let (tx, rx) = oneshot::channel();
        self.inner.storage.write_with(
            points,
            Box::new(move |res| {
                drop(permit);
                let _ = tx.send(res);
            }),
        );
        rx.await.map_err(|_| IngestError::ShuttingDown)??;
        Ok(())
    }

    /// Hand `points` to storage without waiting for durability; waits only when
    /// too many batches are in flight (backpressure on the device socket).
    pub(crate) async fn submit(&self, points: Vec<Point>) -> Result<()> {
        self.inner.live.publish(&points);
        let slot = self.write_slot().await?;
        self.hand_over(points, slot);
        Ok(())
    }

    /// [`Ingest::submit`] when a write slot is free at once (the common case); the points
    /// back otherwise. A session calls this first and awaits `submit` (boxed) only when
    /// storage is behind: the waiting future is not kept in every idle session's state.
    pub(crate) fn try_submit(&self, points: Vec<Point>) -> std::result::Result<(), Vec<Point>> {
        match Arc::clone(&self.inner.inflight).try_acquire_owned() {
            Ok(slot) => {
                self.inner.live.publish(&points);
                self.hand_over(points, slot);
                Ok(())
            }
            Err(_) => Err(points),
        }
    }

    fn hand_over(&self, points: Vec<Point>, slot: tokio::sync::OwnedSemaphorePermit) {
        let count = points.len();
        self.inner.storage.write_with(
            points,
            Box::new(move |res| {
                drop(slot);
                if let Err(err) = res {
                    tracing::error!(%err, points = count, "storage write failed");
                }
            }),
        );
    }

    /// Whether at least one session of the device is connected.
    pub fn is_online(&self, device_id: u32) -> bool {
        self.inner
            .sessions
            .lock()
            .get(&device_id)
            .is_some_and(|s| !s.is_empty())
    }

    /// Number of devices with at least one live session.
    pub fn online_devices(&self) -> usize {
        self.inner.sessions.lock().len()
    }

    /// Send a `hardware` write (`vw`/`dw`/`aw`) to every live session of the
    /// device. Returns how many sessions took it; sessions whose announced
    /// buffer is too small, or whose outbound queue is full, are skipped.
    pub fn push_write(&self, device_id: u32, pin: PinRef, values: &[&str]) -> usize {
        let pin_text = pin.number.to_string();
        let mut fields: Vec<&[u8]> = Vec::with_capacity(values.len() + 2);
        fields.push(pin.write_op().as_bytes());
        fields.push(pin_text.as_bytes());
        fields.extend(values.iter().map(|v| v.as_bytes()));
        let mut buf = BytesMut::new();
        encode_fields(command::HARDWARE, CLOUD_WRITE_MSG_ID, &fields, &mut buf);
        self.push_frame(device_id, buf.freeze())
    }

    /// Send an encoded frame to every live session of the device.
    pub fn push_frame(&self, device_id: u32, frame: Bytes) -> usize {
        let sessions = self.inner.sessions.lock();
        let Some(list) = sessions.get(&device_id) else {
            return 0;
        };
        let mut sent = 0;
        for handle in list {
            if frame.len() > handle.outbox.max_frame() {
                self.metrics().refused(Refusal::outbound_dropped);
                tracing::warn!(
                    device_id,
                    len = frame.len(),
                    "message larger than the device buffer, not sent"
                );
                continue;
            }
            match handle.outbox.push(frame.clone()) {
                true => sent += 1,
                false => {
                    self.metrics().refused(Refusal::outbound_dropped);
                    tracing::warn!(
                        device_id,
                        session = handle.id,
                        "device outbound queue full, message dropped"
                    )
                }
            }
        }
        self.metrics().sent(sent as u64);
        sent
    }

    /// Closes every live session of the device (it was deleted: its token no longer logs in,
    /// and its sessions must not go on writing). Returns how many sessions were told to close;
    /// they end at once, whatever they were waiting for.
    pub fn disconnect(&self, device_id: u32) -> usize {
        let sessions = self.inner.sessions.lock();
        let list = sessions
            .get(&device_id)
            .map(SmallVec::as_slice)
            .unwrap_or_default();
        for handle in list {
            handle.outbox.close(Closed::DeviceDeleted);
        }
        if !list.is_empty() {
            tracing::info!(
                device_id,
                sessions = list.len(),
                "sessions of a deleted device closed"
            );
        }
        list.len()
    }

    /// Record a logged-in session; several sessions per device are allowed
    /// (the legacy server's behaviour: messages go to all of them).
    pub(crate) fn register(&self, device_id: u32, id: u64, outbox: Arc<Outbox>) {
        let mut sessions = self.inner.sessions.lock();
        let list = sessions.entry(device_id).or_default();
        list.push(SessionHandle { id, outbox });
        // Every login is reported (the newest connection time counts: a
        // rebooted device often logs in again before its old connection is
        // found dead), under the lock, so that online/offline of one device
        // reach the directory in the order they happened.
        self.report(DeviceActivity::Online { device_id });
    }

    /// Tell the directory what a device did (non-blocking).
    /// A device's metadata value (see [`DeviceDirectory::metadata`]).
    pub(crate) async fn metadata(&self, device_id: u32, name: &str) -> Result<Option<String>> {
        Ok(self.inner.directory.metadata(device_id, name).await?)
    }

    pub(crate) fn report(&self, activity: DeviceActivity) {
        self.inner.directory.report(activity);
    }

    /// Forget a session when its connection ends.
    pub(crate) fn unregister(&self, device_id: u32, session_id: u64) {
        let mut sessions = self.inner.sessions.lock();
        if let Some(list) = sessions.get_mut(&device_id) {
            list.retain(|h| h.id != session_id);
            if list.is_empty() {
                sessions.remove(&device_id);
                self.report(DeviceActivity::Offline { device_id });
            }
        }
    }
}
