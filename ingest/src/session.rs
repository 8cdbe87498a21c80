//! One device connection: the Blynk session state machine.
//!
//! Transport-agnostic: [`run`] drives any `AsyncRead + AsyncWrite` stream, so
//! TLS, WebSocket and QUIC streams reuse it unchanged. One socket read may
//! carry many frames; every complete frame is handled, the values of the whole
//! read go to storage as one batch, and all replies go out in one write.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pinhouse_protocol::body::{
    Bridge, Group, Hardware, HardwareSync, Internal, LogEvent, Property, ResolveEvent,
};
use pinhouse_protocol::{
    Codec, Frame, HEADER_LEN, command, encode_fields, encode_response, status,
};
use pinhouse_storage::{LastValue, Point, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tracing::Instrument;

use crate::metrics::Refusal;
use crate::outbox::{Closed, Outbox, Wake};
use crate::quota::Quota;
use crate::{DeviceActivity, DeviceIdentity, Ingest, PinKind, PinRef, Transport};

/// Largest body accepted before login: a login carries a 32-byte token.
const PRE_LOGIN_MAX_BODY: usize = 256;
/// Read buffer growth step.
const READ_CHUNK: usize = 4096;

/// Read space of a session that is not streaming (logging in, pings, an occasional write):
/// idle sessions are most of a large fleet, and their memory is mostly this buffer.
const IDLE_READ_CHUNK: usize = 256;

/// Small reads in a row after which a session counts as idle again.
const IDLE_AFTER_SMALL_READS: u8 = 2;
/// An idle session with nothing buffered holds no read buffer: it reads into this many bytes
/// of its own state and takes a buffer only for what is left of a frame (or of a burst).
const PROBE: usize = 32;
/// Frames queued for a device by the cloud before further ones are dropped.
pub(crate) const OUTBOUND_QUEUE: usize = 64;
/// Bridges one session may bind (the legacy server's limit).
const MAX_BRIDGES: usize = 100;

/// Why a session ended (for logs and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The device closed the connection.
    PeerClosed,
    /// No valid login within the login timeout.
    LoginTimeout,
    /// No traffic from the device within its heartbeat timeout.
    HeartbeatTimeout,
    /// Too many failed logins on this connection.
    TooManyLoginAttempts,
    /// The first bytes are not a Blynk login.
    NotBlynk,
    /// The device sent something other than a login before logging in.
    NotAuthenticated,
    /// Malformed frame (too long, zero id, …).
    Protocol(String),
    /// Socket error.
    Io(String),
    /// Too many logins from the peer's address.
    LoginRateLimited,
    /// The device announced a template id other than its device's.
    TemplateMismatch,
    /// The token is unknown here; the device was sent elsewhere.
    Redirected,
    /// The server is shutting down.
    Shutdown,
    /// The device was deleted.
    DeviceDeleted,
    /// The directory or storage failed.
    Internal(String),
}

struct LoggedIn {
    identity: DeviceIdentity,
    /// The device's heartbeat (ms; its announced `h-beat`, or the server's default).
    heartbeat_ms: u32,
    /// Timestamp of an open `group` (µs), applied to the values inside it.
    group_ts: Option<i64>,
    /// Message quota of this session.
    quota: Quota,
    /// When the last QUOTA answer went out (at most one per second).
    last_quota_reply: Option<Instant>,
    /// The newest value this session wrote to each pin, kept until storage's
    /// last-value cache has it: a `sync` right after a write (even in the
    /// same read, before the batch reaches storage) answers the new value.
    written: Vec<(u16, LastValue)>,
    /// `bridge` pins bound to target devices: (bridge pin, device id).
    bridges: Vec<(u8, u32)>,
    /// The last timestamp given to a value without one (µs).
    last_ts: i64,
}

impl LoggedIn {
    /// A timestamp for a value the device sent without one: the wall clock, but strictly
    /// increasing per session. Frames of one read are handled within the same microsecond,
    /// and the clock may step back; two values of a pin at one timestamp would be ambiguous
    /// to readers, and storage would have to scan its memtables to tell a new value from a
    /// re-sent one (see storage `dedup`).
    fn next_ts(&mut self) -> i64 {
        self.last_ts = crate::now_us().max(self.last_ts + 1);
        self.last_ts
    }
}

struct Session {
    ingest: Ingest,
    /// The session's id, and its mailbox: frames from the cloud (with the device's
    /// announced buffer size), the hub's request to end, and the shared timer's nudges.
    id: u64,
    link: Arc<Outbox>,
    peer: SocketAddr,
    transport: Transport,
    login_attempts: u32,
    state: Option<LoggedIn>,
    out: BytesMut,
    points: Vec<Point>,
    /// Frames handled since the last socket read (for the metrics).
    frames: u32,
    /// Time of the last socket read: the quota clock (no clock read per frame), and where the
    /// heartbeat timeout starts.
    now: Instant,
}

/// Serve one connection until it closes; never panics on network input.
///
/// A plain function returning the session's future (not an `async fn`): an `async fn` keeps
/// its arguments in its own state for the whole session, beside the copies the inner future
/// holds, and every idle session would pay for both.
///
/// The caller has counted the session among the server's `max_connections` (see
/// [`Ingest::serve_connection`]); dropping the session gives its place back.
/// [`Ingest::stop`] ends the session.
pub(crate) fn run<S>(
    ingest: Ingest,
    mut stream: S,
    peer: SocketAddr,
    transport: Transport,
) -> impl Future<Output = CloseReason> + Send + 'static
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    ingest.metrics().connection_opened(transport);
    let (id, link) = ingest.open_link();
    let mut session = Session {
        ingest,
        id,
        link,
        peer,
        transport,
        login_attempts: 0,
        state: None,
        // Grows with the first reply; idle sessions only ever answer pings.
        out: BytesMut::new(),
        points: Vec::new(),
        frames: 0,
        now: Instant::now(),
    };
    // The session state and the stream moved into one `async` block (see above for why not
    // an `async fn`).
    async move {
        let reason = session.serve(&mut stream).await;
        session.closed(&reason);
        reason
    }
}

impl Drop for Session {
    /// Out of the hub's maps, and out of the open-connections gauge counted in [`run`],
    /// however the session ends (its future may be dropped unfinished).
    fn drop(&mut self) {
        if let Some(state) = &self.state {
            self.ingest.unregister(state.identity.device_id, self.id);
        }
        self.ingest.session_ended(self.id);
        self.ingest.metrics().connection_closed(self.transport);
    }
}

impl Session {
    /// How the session ended: counted (timeouts and refusals) and logged. The hub's maps and
    /// the open-connections gauge are settled when the session is dropped.
    fn closed(&self, reason: &CloseReason) {
        let metrics = self.ingest.metrics();
        match reason {
            CloseReason::LoginTimeout => metrics.refused(Refusal::login_timeout),
            CloseReason::HeartbeatTimeout => metrics.refused(Refusal::heartbeat_timeout),
            CloseReason::NotBlynk => metrics.refused(Refusal::not_blynk),
            _ => {}
        }
        match reason {
            CloseReason::PeerClosed | CloseReason::Shutdown => {
                tracing::debug!(peer = %self.peer, device_id = ?self.device_id(), ?reason, "session closed")
            }
            _ => {
                tracing::info!(peer = %self.peer, device_id = ?self.device_id(), ?reason, "session closed")
            }
        }
    }
}

enum Flow {
    Continue,
    Close(CloseReason),
}

/// What the next frame of the read buffer came to.
enum Next<'a> {
    /// No complete frame: the session reads more.
    More,
    /// A frame handled; the session goes on.
    Handled,
    /// The session ends.
    Close(CloseReason),
    /// A message that waits (for the directory), boxed with its body.
    Wait(Pin<Box<dyn Future<Output = Flow> + Send + 'a>>),
}

impl From<Flow> for Next<'_> {
    fn from(flow: Flow) -> Self {
        match flow {
            Flow::Continue => Next::Handled,
            Flow::Close(reason) => Next::Close(reason),
        }
    }
}

impl Session {
    /// The device, once logged in (for log events).
    fn device_id(&self) -> Option<u32> {
        self.state.as_ref().map(|s| s.identity.device_id)
    }

    /// The session loop. The stream is borrowed from the session's future, which owns it:
    /// moved in here it would take room twice in it. Reads happen in the `select!` below and
    /// writes after it, never at the same time, so the stream needs no `split` (whose shared
    /// state was one more allocation per session).
    ///
    /// While idle the session waits on two things only: its socket and its mailbox (frames
    /// from the cloud, the end of the session, the shared timer's nudge). Every idle session
    /// pays for the size of this future; timers and shutdown receivers of their own were the
    /// bulk of it.
    async fn serve<S>(&mut self, stream: &mut S) -> CloseReason
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        self.ingest.start_sweeper();
        let login_timeout = self.ingest.config().login_timeout;
        // Read space for the next read: a whole chunk to start with and while the device
        // streams (a read filled the space it had); the idle size after small reads in a row
        // (the login, pings, a value now and then). Idle with nothing buffered, the session
        // holds no buffer at all and reads into `probe`; a read that fills it is followed by
        // a buffered read, in case the device is streaming again.
        let mut streaming = true;
        let mut inbuf = BytesMut::with_capacity(READ_CHUNK);
        let mut probe = [0u8; PROBE];
        let mut probe_filled = false;
        let mut small_reads = 0u8;
        let login_deadline = Instant::now() + login_timeout;
        loop {
            // The deadline as of the last read, for the shared timer (also while answering:
            // a device that does not read its answers times out too).
            self.link
                .set_deadline(self.ingest.deadline_ms(self.deadline(login_deadline)));
            let idle = !streaming;
            // Handle every complete frame already buffered, hand the values over, answer.
            if let Some(reason) = self.answer(stream, &mut inbuf, idle, login_deadline).await {
                return reason;
            }
            // A device over its message quota is not read until a message would pass again:
            // its flood waits in the socket, and TCP slows the sender down, instead of costing
            // a parse per dropped frame (and the other sessions their share of the CPU).
            if let Some(state) = &self.state
                && state.quota.exhausted()
                && let Some(resume) = state.quota.refill_at(Instant::now())
            {
                tokio::time::sleep_until(resume).await;
                // The idle clock restarts: the device was not silent, only unread.
                self.now = self.now.max(resume);
                continue;
            }
            let probing = idle && inbuf.is_empty() && !probe_filled;
            if probing {
                if inbuf.capacity() > 0 {
                    inbuf = BytesMut::new();
                }
            } else {
                // At least a chunk free for every read: many frames per read (and per
                // allocation) while streaming. Reclaims the buffer in place once every frame
                // of it is handled.
                let chunk = if streaming {
                    READ_CHUNK
                } else {
                    IDLE_READ_CHUNK
                };
                if inbuf.capacity() - inbuf.len() < chunk {
                    inbuf.reserve(chunk);
                }
            }
            let read = async {
                if probing {
                    let n = stream.read(&mut probe).await?;
                    inbuf.extend_from_slice(&probe[..n]);
                    Ok(n)
                } else {
                    stream.read_buf(&mut inbuf).await
                }
            };
            tokio::select! {
                read = read => match read {
                    Ok(0) => return CloseReason::PeerClosed,
                    Ok(n) => {
                        self.now = Instant::now();
                        self.ingest.metrics().received(n as u64, 0, 0);
                        if probing {
                            probe_filled = n == PROBE;
                        } else if inbuf.len() == inbuf.capacity() {
                            // The read filled the space it had: the device streams.
                            probe_filled = false;
                            streaming = true;
                            small_reads = 0;
                        } else if n < IDLE_READ_CHUNK {
                            probe_filled = false;
                            small_reads = small_reads.saturating_add(1);
                            if small_reads >= IDLE_AFTER_SMALL_READS {
                                streaming = false;
                            }
                        } else {
                            probe_filled = false;
                            small_reads = 0;
                        }
                    }
                    Err(err) => return CloseReason::Io(err.to_string()),
                },
                wake = self.link.pop() => {
                    if let Some(reason) = self.on_wake(wake, login_deadline) {
                        return reason;
                    }
                }
            }
        }
    }

    /// Handle every complete frame of `inbuf`, hand the values to storage and write the
    /// answers; the reason when the session ends. Its own future, so that what it keeps ends
    /// with it instead of taking room in the session's wait for the next read.
    async fn answer<S>(
        &mut self,
        stream: &mut S,
        inbuf: &mut BytesMut,
        idle: bool,
        login_deadline: Instant,
    ) -> Option<CloseReason>
    where
        S: AsyncWrite + Unpin,
    {
        let flow = self.drain(inbuf).await;
        let values = self.points.len() as u64;
        if self.frames > 0 {
            self.ingest
                .metrics()
                .received(0, u64::from(self.frames), values);
            self.frames = 0;
        }
        if !self.points.is_empty() {
            // A streaming device's next read likely carries as many values: one allocation
            // per read instead of a vector grown frame by frame.
            let next = if idle {
                Vec::new()
            } else {
                Vec::with_capacity(self.points.len())
            };
            let points = std::mem::replace(&mut self.points, next);
            if let Err(points) = self.ingest.try_submit(points)
                && let Err(err) = Box::pin(self.ingest.submit(points)).await
            {
                return Some(CloseReason::Internal(err.to_string()));
            }
        }
        if !self.out.is_empty() {
            // Boxed: its wait on the mailbox would otherwise take room in every idle
            // session's future, for the little time a write takes.
            if let Some(reason) = Box::pin(self.send(stream, login_deadline)).await {
                return Some(reason);
            }
            if idle {
                self.out = BytesMut::new();
            }
        }
        if let Flow::Close(reason) = flow {
            let _ = stream.shutdown().await;
            return Some(reason);
        }
        None
    }

    /// Write everything in `out` to the device, watching the mailbox meanwhile: a device that
    /// stops reading is dropped at its deadline (the heartbeat timeout after its last read,
    /// or the login timeout), and a stop or the device's deletion ends the session, instead
    /// of the session waiting on the socket for as long as the peer likes. Frames the cloud
    /// sends meanwhile are written after.
    async fn send<S>(&mut self, stream: &mut S, login_deadline: Instant) -> Option<CloseReason>
    where
        S: AsyncWrite + Unpin,
    {
        while !self.out.is_empty() {
            let sending = std::mem::take(&mut self.out);
            {
                let written = async {
                    stream.write_all(&sending).await?;
                    // TLS and WebSocket buffer writes; plain TCP flush is free.
                    stream.flush().await
                };
                tokio::pin!(written);
                loop {
                    tokio::select! {
                        biased;
                        done = &mut written => match done {
                            Ok(()) => break,
                            Err(err) => return Some(CloseReason::Io(err.to_string())),
                        },
                        wake = self.link.pop() => {
                            if let Some(reason) = self.on_wake(wake, login_deadline) {
                                return Some(reason);
                            }
                        }
                    }
                }
            }
            if self.out.is_empty() {
                // The written buffer's capacity serves the next answers.
                self.out = sending;
                self.out.clear();
            }
        }
        None
    }

    /// What the mailbox said, whether the session waits to read or to write: a cloud frame
    /// is queued for the device; the end of the session, or a passed deadline (the timer's
    /// nudge is checked against the session's own clock), is the reason it closes.
    fn on_wake(&mut self, wake: Wake, login_deadline: Instant) -> Option<CloseReason> {
        match wake {
            Wake::Frame(frame) => {
                self.out.extend_from_slice(&frame);
                None
            }
            Wake::Closed(Closed::DeviceDeleted) => Some(CloseReason::DeviceDeleted),
            Wake::Closed(Closed::Shutdown) => Some(CloseReason::Shutdown),
            Wake::Deadline if Instant::now() < self.deadline(login_deadline) => None,
            Wake::Deadline if self.state.is_none() => Some(CloseReason::LoginTimeout),
            Wake::Deadline => Some(CloseReason::HeartbeatTimeout),
        }
    }

    /// A debug span naming the session's device.
    fn span(&self) -> tracing::Span {
        tracing::debug_span!("device", peer = %self.peer, transport = %self.transport, device_id = ?self.device_id())
    }

    /// When the session times out: the login deadline until the device logs in, then its
    /// heartbeat timeout after the last read.
    fn deadline(&self, login_deadline: Instant) -> Instant {
        match &self.state {
            None => login_deadline,
            Some(state) => {
                let heartbeat = Duration::from_millis(u64::from(state.heartbeat_ms));
                self.now + self.ingest.config().idle_timeout(heartbeat)
            }
        }
    }

    /// Decode and handle all complete frames in `inbuf`.
    async fn drain(&mut self, inbuf: &mut BytesMut) -> Flow {
        loop {
            let waiting = match self.next_message(inbuf) {
                Next::More => return Flow::Continue,
                Next::Handled => continue,
                Next::Close(reason) => return Flow::Close(reason),
                Next::Wait(waiting) => waiting,
            };
            if let Flow::Close(reason) = waiting.await {
                return Flow::Close(reason);
            }
        }
    }

    /// Decode and handle the next complete frame of `inbuf`. Not `async`: only the future of
    /// a message that waits is kept across an await, boxed, with the message's body (see
    /// [`Session::handle`]).
    fn next_message(&mut self, inbuf: &mut BytesMut) -> Next<'_> {
        // The device's context for debug events, made per message rather than kept: at the
        // default `info` level a disabled span costs a level check, where a span kept in the
        // session took 40 bytes of every idle session (an enabled one ~500 bytes in the
        // subscriber). Futures of waiting messages carry it along.
        let span = self.span();
        let _entered = span.enter();
        if self.state.is_none() && !inbuf.is_empty() && !is_pre_login_command(inbuf[0]) {
            tracing::warn!(peer = %self.peer, first_byte = inbuf[0], "first bytes are not a Blynk login");
            return Next::Close(CloseReason::NotBlynk);
        }
        let codec = match self.state {
            None => Codec::new(PRE_LOGIN_MAX_BODY),
            Some(_) => Codec::new(self.ingest.config().max_body),
        };
        let frame = match codec.decode(inbuf) {
            Ok(Some(frame)) => frame,
            Ok(None) => return Next::More,
            Err(err) => {
                tracing::warn!(peer = %self.peer, device_id = ?self.device_id(), %err, "malformed frame");
                self.ingest.metrics().refused(Refusal::malformed_frame);
                return Next::Close(CloseReason::Protocol(err.to_string()));
            }
        };
        self.frames += 1;
        match frame {
            // Devices answer our pings and cloud writes; nothing to do.
            Frame::Response { .. } => Next::Handled,
            // Boxed: the login (with its directory lookup) runs once per session, and an
            // inline future would make every idle session's task as large as it is.
            Frame::Message {
                command,
                msg_id,
                body,
            } if self.state.is_none() => Next::Wait(Box::pin(
                async move { self.handle_pre_login(command, msg_id, &body).await }
                    .in_current_span(),
            )),
            Frame::Message {
                command,
                msg_id,
                body,
            } => self.handle(command, msg_id, body),
        }
    }

    async fn handle_pre_login(&mut self, cmd: u8, msg_id: u16, body: &[u8]) -> Flow {
        match cmd {
            command::LOGIN | command::HW_LOGIN => {}
            // A device may ping while waiting for the login reply; nothing to say yet.
            command::PING => return Flow::Continue,
            _ => {
                self.ingest.metrics().refused(Refusal::not_authenticated);
                encode_response(msg_id, status::NOT_AUTHENTICATED, &mut self.out);
                return Flow::Close(CloseReason::NotAuthenticated);
            }
        }
        if !self.ingest.login_allowed(self.peer.ip()) {
            tracing::warn!(peer = %self.peer, "login refused: too many logins from this address");
            self.ingest.metrics().refused(Refusal::login_rate);
            encode_response(msg_id, status::QUOTA_LIMIT, &mut self.out);
            return Flow::Close(CloseReason::LoginRateLimited);
        }
        let token = String::from_utf8_lossy(body);
        let token = token.trim();
        let identity = if token.is_empty() || token.len() > 64 || token.contains('\0') {
            None
        } else {
            match self.ingest.lookup(token).await {
                Ok(found) => found,
                Err(err) => {
                    tracing::error!(peer = %self.peer, %err, "device directory failed during login");
                    encode_response(msg_id, status::SERVER_ERROR, &mut self.out);
                    return Flow::Close(CloseReason::Internal(err.to_string()));
                }
            }
        };
        if identity.is_none()
            && let Some((host, port)) = &self.ingest.config().redirect_unknown
        {
            tracing::info!(peer = %self.peer, %host, port, "unknown token: device redirected");
            pinhouse_protocol::body::Redirect {
                host: host.as_bytes(),
                port: Some(*port),
            }
            .encode_frame(msg_id, &mut self.out);
            return Flow::Close(CloseReason::Redirected);
        }
        let Some(identity) = identity else {
            self.login_attempts += 1;
            tracing::info!(peer = %self.peer, attempt = self.login_attempts, "login with an invalid token");
            self.ingest.metrics().refused(Refusal::invalid_token);
            encode_response(msg_id, status::INVALID_TOKEN, &mut self.out);
            if self.login_attempts >= self.ingest.config().max_login_attempts {
                self.ingest.metrics().refused(Refusal::login_attempts);
                return Flow::Close(CloseReason::TooManyLoginAttempts);
            }
            return Flow::Continue;
        };
        self.ingest
            .register(identity.device_id, self.id, Arc::clone(&self.link));
        tracing::info!(peer = %self.peer, device_id = identity.device_id, org_id = identity.org_id, "device logged in");
        self.ingest.metrics().login();
        encode_response(msg_id, status::OK, &mut self.out);
        let config = self.ingest.config();
        self.state = Some(LoggedIn {
            identity,
            heartbeat_ms: u32::try_from(config.default_heartbeat.as_millis()).unwrap_or(u32::MAX),
            group_ts: None,
            quota: Quota::new(config.message_rate, config.message_burst, self.now),
            last_quota_reply: None,
            written: Vec::new(),
            bridges: Vec::new(),
            last_ts: 0,
        });
        Flow::Continue
    }

    /// Handle one message of a logged-in device. Not an `async fn`: the rare messages that
    /// wait (for the directory) come back as a boxed future, so that the state of the
    /// common ones (a parsed `internal` message is 200 bytes) is not kept across an await in
    /// every idle session's future.
    fn handle(&mut self, cmd: u8, msg_id: u16, body: Bytes) -> Next<'_> {
        if !self.within_quota(msg_id) {
            return Next::Handled;
        }
        match cmd {
            command::PING => encode_response(msg_id, status::OK, &mut self.out),
            command::LOGIN | command::HW_LOGIN => {
                encode_response(msg_id, status::ALREADY_REGISTERED, &mut self.out)
            }
            command::HARDWARE => self.on_hardware(msg_id, &body),
            command::HARDWARE_SYNC => self.on_sync(msg_id, &body),
            command::INTERNAL => {
                let waits = matches!(
                    Internal::parse(&body),
                    Ok(Internal::MetaGet { .. } | Internal::Utc { query: b"tz_name" })
                );
                if !waits {
                    return self.on_internal(msg_id, &body).into();
                }
                let waiting = async move {
                    match Internal::parse(&body) {
                        Ok(Internal::MetaGet { name }) => self.on_meta_get(msg_id, name).await,
                        _ => self.on_tz_name(msg_id).await,
                    }
                    Flow::Continue
                };
                return Next::Wait(Box::pin(waiting.in_current_span()));
            }
            command::GROUP => self.on_group(msg_id, &body),
            command::BRIDGE => {
                let waiting = async move {
                    self.on_bridge(msg_id, &body).await;
                    Flow::Continue
                };
                return Next::Wait(Box::pin(waiting.in_current_span()));
            }
            command::PROPERTY => self.on_property(msg_id, &body),
            command::EVENT_LOG => self.on_log_event(msg_id, &body),
            command::EVENT_CLEAR => self.on_resolve_event(msg_id, &body),
            other => {
                // Not implemented on this server (legacy notify/email/tweet/sms,
                // which the library maps to `logEvent` since 1.0) or unknown:
                // say so, the library ignores the answer.
                if !command::sent_by_device(other) {
                    self.ingest.metrics().refused(Refusal::unknown_command);
                }
                tracing::debug!(command = other, "unsupported command");
                encode_response(msg_id, status::ILLEGAL_COMMAND, &mut self.out);
            }
        }
        Next::Handled
    }

    /// Take one message from the quota. Over the quota the message is dropped
    /// and answered with `QUOTA_LIMIT` (at most once per second, so a flood
    /// does not turn into a flood of answers); the connection stays open.
    fn within_quota(&mut self, msg_id: u16) -> bool {
        let now = self.now;
        let Some(state) = self.state.as_mut() else {
            return true;
        };
        if state.quota.take(now) {
            return true;
        }
        self.ingest.metrics().refused(Refusal::quota);
        let due = state
            .last_quota_reply
            .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1));
        if due {
            state.last_quota_reply = Some(now);
            tracing::warn!(
                peer = %self.peer,
                device_id = ?self.device_id(),
                rate = self.ingest.config().message_rate,
                "device over its message quota; messages dropped"
            );
            encode_response(msg_id, status::QUOTA_LIMIT, &mut self.out);
        }
        false
    }

    fn on_hardware(&mut self, msg_id: u16, body: &[u8]) {
        let (pin, values) = match Hardware::parse(body) {
            Ok(Hardware::VirtualWrite { pin, values }) => (PinRef::virtual_pin(pin), values),
            Ok(Hardware::DigitalWrite { pin, value }) => (
                PinRef {
                    kind: PinKind::Digital,
                    number: pin,
                },
                value,
            ),
            Ok(Hardware::AnalogWrite { pin, value }) => (
                PinRef {
                    kind: PinKind::Analog,
                    number: pin,
                },
                value,
            ),
            // Reads and pin modes are server→device operations; a device sending
            // them gets no answer (legacy behaviour).
            Ok(_) => return,
            Err(err) => {
                tracing::debug!(%err, "malformed hardware body");
                encode_response(msg_id, status::ILLEGAL_COMMAND, &mut self.out);
                return;
            }
        };
        let Some(state) = self.state.as_mut() else {
            return;
        };
        let ts_us = match state.group_ts {
            Some(ts) => ts,
            None => state.next_ts(),
        };
        let text = String::from_utf8_lossy(values);
        let identity = &state.identity;
        let point = Point::from_text(
            identity.org_id,
            identity.device_id,
            pin.column(),
            ts_us,
            &text,
        );
        remember(&mut state.written, point.pin, ts_us, &point.value);
        self.points.push(point);
    }

    fn on_sync(&mut self, msg_id: u16, body: &[u8]) {
        let Some(state) = &self.state else { return };
        let (org_id, device_id) = (state.identity.org_id, state.identity.device_id);
        let max_frame = self.link.max_frame();
        let storage = self.ingest.storage().clone();
        match HardwareSync::parse(body) {
            Ok(HardwareSync::All) => {
                let mut values = storage.last_values(org_id, device_id);
                for (column, mine) in &state.written {
                    match values.binary_search_by_key(column, |(c, _)| *c) {
                        Ok(i) if values[i].1.ts_us > mine.ts_us => {}
                        Ok(i) => values[i].1 = mine.clone(),
                        Err(i) => values.insert(i, (*column, mine.clone())),
                    }
                }
                for (column, last) in values {
                    if let Some(pin) = PinRef::from_column(column) {
                        self.encode_value(msg_id, pin, &last.value, max_frame);
                    }
                }
            }
            Ok(sync @ HardwareSync::Virtual { .. }) => {
                for pin in sync.pins() {
                    let Ok(pin) = pin else {
                        encode_response(msg_id, status::ILLEGAL_COMMAND, &mut self.out);
                        return;
                    };
                    let pin = PinRef::virtual_pin(pin);
                    let stored = storage.last_value(org_id, device_id, pin.column());
                    let Some(state) = &self.state else { return };
                    let mine = state
                        .written
                        .iter()
                        .find(|(c, _)| *c == pin.column())
                        .map(|(_, v)| v);
                    let newest = match (stored, mine) {
                        (Some(s), Some(m)) if s.ts_us > m.ts_us => Some(s.value),
                        (_, Some(m)) => Some(m.value.clone()),
                        (s, None) => s.map(|s| s.value),
                    };
                    if let Some(value) = newest {
                        self.encode_value(msg_id, pin, &value, max_frame);
                    }
                }
            }
            Err(err) => {
                tracing::debug!(%err, "malformed sync body");
                encode_response(msg_id, status::ILLEGAL_COMMAND, &mut self.out);
            }
        }
    }

    /// One `hardware` write of a stored value, with the request's message id.
    fn encode_value(&mut self, msg_id: u16, pin: PinRef, value: &Value, max_frame: usize) {
        let text = match value {
            Value::Number(n) => format_number(*n),
            Value::Text(t) => t.clone(),
        };
        let pin_text = pin.number.to_string();
        let mut fields: Vec<&[u8]> = vec![pin.write_op().as_bytes(), pin_text.as_bytes()];
        // Multi-value pins are stored NUL-joined; they go back as separate fields.
        fields.extend(text.as_bytes().split(|b| *b == 0));
        let body_len: usize = fields.iter().map(|f| f.len()).sum::<usize>() + fields.len() - 1;
        if body_len + HEADER_LEN > max_frame {
            tracing::debug!(%pin, body_len, "stored value larger than the device buffer, not synced");
            return;
        }
        encode_fields(command::HARDWARE, msg_id, &fields, &mut self.out);
    }

    /// `property`: `OK` for a well-formed body; the control plane stores it
    /// (and refuses bad names or sizes there, in its log: the library ignores
    /// the answer anyway). The multi-pin form is stored per pin.
    fn on_property(&mut self, msg_id: u16, body: &[u8]) {
        let Some(state) = &self.state else { return };
        let device_id = state.identity.device_id;
        let parsed = match Property::parse(body) {
            Ok(p) => Ok((vec![p.pin], p.name, p.values)),
            Err(_) => pinhouse_protocol::body::MultiProperty::parse(body).map(|p| {
                let pins = text_fields(p.pins)
                    .filter_map(|f| f.parse::<u8>().ok())
                    .collect::<Vec<_>>();
                (pins, p.name, p.values)
            }),
        };
        let (pins, name, values) = match parsed {
            Ok(parsed) => parsed,
            Err(err) => {
                tracing::debug!(%err, "malformed property body");
                encode_response(msg_id, status::ILLEGAL_COMMAND_BODY, &mut self.out);
                return;
            }
        };
        let name = String::from_utf8_lossy(name).into_owned();
        let values: Vec<String> = text_fields(values).collect();
        for pin in pins {
            self.ingest.report(DeviceActivity::Property {
                device_id,
                pin,
                name: name.clone(),
                values: values.clone(),
            });
        }
        encode_response(msg_id, status::OK, &mut self.out);
    }

    /// `logEvent`: `OK` for a well-formed body; the control plane checks the
    /// code against the template and the daily limits.
    fn on_log_event(&mut self, msg_id: u16, body: &[u8]) {
        let Some(state) = &self.state else { return };
        match LogEvent::parse(body) {
            Ok(event) => {
                self.ingest.report(DeviceActivity::LogEvent {
                    device_id: state.identity.device_id,
                    code: String::from_utf8_lossy(event.code).into_owned(),
                    description: event
                        .description
                        .map(|d| String::from_utf8_lossy(d).into_owned()),
                });
                encode_response(msg_id, status::OK, &mut self.out);
            }
            Err(err) => {
                tracing::debug!(%err, "malformed log event body");
                encode_response(msg_id, status::ILLEGAL_COMMAND_BODY, &mut self.out);
            }
        }
    }

    /// `resolveEvent` / `resolveAllEvents`.
    fn on_resolve_event(&mut self, msg_id: u16, body: &[u8]) {
        let Some(state) = &self.state else { return };
        match ResolveEvent::parse(body) {
            Ok(event) => {
                self.ingest.report(DeviceActivity::ResolveEvent {
                    device_id: state.identity.device_id,
                    code: String::from_utf8_lossy(event.code).into_owned(),
                    all: event.all,
                });
                encode_response(msg_id, status::OK, &mut self.out);
            }
            Err(err) => {
                tracing::debug!(%err, "malformed resolve event body");
                encode_response(msg_id, status::ILLEGAL_COMMAND_BODY, &mut self.out);
            }
        }
    }

    /// `internal meta get <name>` → `internal meta <name> <value>` with the same message id, or
    /// `RESPONSE NO_DATA` when the device has no such field or no value.
    async fn on_meta_get(&mut self, msg_id: u16, name: &[u8]) {
        let Some(state) = self.state.as_ref() else {
            return;
        };
        let device_id = state.identity.device_id;
        let text = String::from_utf8_lossy(name).trim().to_owned();
        match self.ingest.metadata(device_id, &text).await {
            Ok(Some(value)) => encode_fields(
                command::INTERNAL,
                msg_id,
                &[b"meta", text.as_bytes(), value.as_bytes()],
                &mut self.out,
            ),
            Ok(None) => encode_response(msg_id, status::NO_DATA, &mut self.out),
            Err(err) => {
                tracing::error!(peer = %self.peer, device_id = ?self.device_id(), %err, "device directory failed during meta get");
                encode_response(msg_id, status::SERVER_ERROR, &mut self.out);
            }
        }
    }

    /// `internal utc tz_name` → the device's `Time Zone` metadata, `UTC` when it has none.
    async fn on_tz_name(&mut self, msg_id: u16) {
        let Some(state) = self.state.as_ref() else {
            return;
        };
        let device_id = state.identity.device_id;
        let zone = match self.ingest.metadata(device_id, "Time Zone").await {
            Ok(Some(zone)) if !zone.is_empty() => zone,
            Ok(_) => "UTC".to_owned(),
            Err(err) => {
                tracing::warn!(peer = %self.peer, device_id = ?self.device_id(), %err, "device directory failed during utc tz_name");
                "UTC".to_owned()
            }
        };
        encode_fields(
            command::INTERNAL,
            msg_id,
            &[b"utc", b"tz_name", zone.as_bytes()],
            &mut self.out,
        );
    }

    fn on_internal(&mut self, msg_id: u16, body: &[u8]) -> Flow {
        let Some(state) = self.state.as_mut() else {
            return Flow::Continue;
        };
        match Internal::parse(body) {
            Ok(Internal::Info(info)) => {
                if let (Some(announced), Some(expected)) = (
                    info.template_id.as_deref(),
                    state.identity.template_id.as_deref(),
                ) && announced != expected
                {
                    tracing::warn!(
                        peer = %self.peer,
                        device_id = state.identity.device_id,
                        announced,
                        expected,
                        "device firmware is built for another template; connection refused"
                    );
                    self.ingest.metrics().refused(Refusal::template_mismatch);
                    encode_response(msg_id, status::NOT_ALLOWED, &mut self.out);
                    return Flow::Close(CloseReason::TemplateMismatch);
                }
                if let Some(secs) = info.heartbeat_secs.filter(|s| *s > 0) {
                    state.heartbeat_ms = secs.clamp(1, 3600) * 1000;
                }
                if let Some(buff_in) = info.buff_in.filter(|b| *b as usize > HEADER_LEN) {
                    self.link.set_max_frame(buff_in as usize);
                }
                tracing::info!(
                    peer = %self.peer,
                    device_id = state.identity.device_id,
                    firmware = ?info.firmware, library = ?info.library, board = ?info.board,
                    template = ?info.template_id, heartbeat = ?info.heartbeat_secs, buff_in = ?info.buff_in,
                    "device info"
                );
                // Kept by the directory, not here: most of a fleet's sessions are idle, and
                // their memory is what bounds how many one server holds.
                self.ingest.report(DeviceActivity::Info {
                    device_id: state.identity.device_id,
                    info: Box::new(info),
                });
                encode_response(msg_id, status::OK, &mut self.out);
            }
            Ok(Internal::Rtc) => {
                let secs = (crate::now_us() / 1_000_000).to_string();
                encode_fields(
                    command::INTERNAL,
                    msg_id,
                    &[b"rtc", secs.as_bytes()],
                    &mut self.out,
                );
            }
            Ok(Internal::Utc { query }) => match query {
                b"time" => {
                    let ms = (crate::now_us() / 1000).to_string();
                    encode_fields(
                        command::INTERNAL,
                        msg_id,
                        &[b"utc", b"time", ms.as_bytes()],
                        &mut self.out,
                    );
                }
                // The offset of the device's `Time Zone` needs a time-zone
                // database, which ingest does not carry: offsets are answered as
                // UTC (`tz_name` gives the zone, answered in `on_tz_name`).
                b"tz" => encode_fields(
                    command::INTERNAL,
                    msg_id,
                    &[b"utc", b"tz", b"0", b"0"],
                    &mut self.out,
                ),
                _ => encode_response(msg_id, status::NO_DATA, &mut self.out),
            },
            Ok(Internal::MetaSet { name, value }) => {
                let (name, value) = (
                    String::from_utf8_lossy(name),
                    String::from_utf8_lossy(value),
                );
                // A multi-field value arrives NUL-separated; metadata values are one text.
                let value = value.replace('\0', " ");
                self.ingest.report(DeviceActivity::MetaSet {
                    device_id: state.identity.device_id,
                    name: name.trim().to_owned(),
                    value,
                });
                encode_response(msg_id, status::OK, &mut self.out);
            }
            Ok(other) => {
                tracing::debug!(?other, "unsupported internal command");
                encode_response(msg_id, status::ILLEGAL_COMMAND, &mut self.out);
            }
            Err(err) => {
                tracing::debug!(%err, "malformed internal body");
                encode_response(msg_id, status::ILLEGAL_COMMAND_BODY, &mut self.out);
            }
        }
        Flow::Continue
    }

    /// `bridge`: bind a pin to another device of the same organization by its
    /// token (`RESPONSE 200`, or `NOT_ALLOWED` for an unknown or foreign token
    /// or too many bridges), then forward `hardware` bodies to every live
    /// session of it as `BRIDGE` frames (`DEVICE_NOT_IN_NETWORK` when it is
    /// offline, `NOT_ALLOWED` for a pin never bound). Forwarded values are not
    /// stored: the target device decides what to do with them.
    async fn on_bridge(&mut self, msg_id: u16, body: &[u8]) {
        let bridge = match Bridge::parse(body) {
            Ok(bridge) => bridge,
            Err(err) => {
                tracing::debug!(%err, "malformed bridge body");
                encode_response(msg_id, status::ILLEGAL_COMMAND_BODY, &mut self.out);
                return;
            }
        };
        match bridge {
            Bridge::Init { bridge_pin, token } => {
                let token = String::from_utf8_lossy(token);
                let target = match self.ingest.lookup(token.trim()).await {
                    Ok(found) => found,
                    Err(err) => {
                        tracing::error!(peer = %self.peer, device_id = ?self.device_id(), %err, "device directory failed during bridge init");
                        encode_response(msg_id, status::SERVER_ERROR, &mut self.out);
                        return;
                    }
                };
                let Some(state) = self.state.as_mut() else {
                    return;
                };
                let status = match target {
                    Some(target) if target.org_id == state.identity.org_id => {
                        let bound = state.bridges.iter().position(|(pin, _)| *pin == bridge_pin);
                        match bound {
                            Some(i) => {
                                state.bridges[i].1 = target.device_id;
                                status::OK
                            }
                            None if state.bridges.len() < MAX_BRIDGES => {
                                state.bridges.push((bridge_pin, target.device_id));
                                status::OK
                            }
                            None => status::NOT_ALLOWED,
                        }
                    }
                    _ => status::NOT_ALLOWED,
                };
                encode_response(msg_id, status, &mut self.out);
            }
            Bridge::Forward {
                bridge_pin,
                hardware_body,
            } => {
                let Some(state) = &self.state else { return };
                let Some(&(_, target)) = state.bridges.iter().find(|(pin, _)| *pin == bridge_pin)
                else {
                    encode_response(msg_id, status::NOT_ALLOWED, &mut self.out);
                    return;
                };
                let mut frame = BytesMut::with_capacity(HEADER_LEN + hardware_body.len());
                pinhouse_protocol::encode_message(
                    command::BRIDGE,
                    msg_id,
                    hardware_body,
                    &mut frame,
                );
                if self.ingest.push_frame(target, frame.freeze()) == 0 {
                    encode_response(msg_id, status::DEVICE_NOT_IN_NETWORK, &mut self.out);
                }
            }
        }
    }

    fn on_group(&mut self, msg_id: u16, body: &[u8]) {
        let Some(state) = self.state.as_mut() else {
            return;
        };
        match Group::parse(body) {
            Ok(Group::Begin) => state.group_ts = Some(state.next_ts()),
            Ok(Group::BeginAt { unix_ms }) => {
                state.group_ts = Some(
                    i64::try_from(unix_ms)
                        .unwrap_or(i64::MAX / 1000)
                        .saturating_mul(1000),
                );
            }
            Ok(Group::End) => state.group_ts = None,
            Err(err) => {
                tracing::debug!(%err, "malformed group body");
                encode_response(msg_id, status::ILLEGAL_COMMAND_BODY, &mut self.out);
            }
        }
    }
}

/// Keep the newest value this session wrote to `pin` (no allocation once the
/// pin is known and the value is a number).
fn remember(written: &mut Vec<(u16, LastValue)>, pin: u16, ts_us: i64, value: &Value) {
    match written.iter_mut().find(|(c, _)| *c == pin) {
        Some((_, last)) if last.ts_us > ts_us => {}
        Some((_, last)) => {
            last.ts_us = ts_us;
            match (&mut last.value, value) {
                (Value::Number(n), Value::Number(v)) => *n = *v,
                (slot, v) => *slot = v.clone(),
            }
        }
        None => written.push((
            pin,
            LastValue {
                ts_us,
                value: value.clone(),
            },
        )),
    }
}

/// First byte of a frame a Blynk device may send: anything else before login
/// means the peer does not speak the protocol (an HTTP request, a port scan),
/// and the connection is closed without waiting for a "body".
fn is_pre_login_command(byte: u8) -> bool {
    command::sent_by_device(byte)
}

/// Shortest text that reads back as the same number (`23.5`, `7`).
pub fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// The NUL-separated fields of `raw` as text.
fn text_fields(raw: &[u8]) -> impl Iterator<Item = String> + '_ {
    raw.split(|b| *b == 0)
        .map(|f| String::from_utf8_lossy(f).into_owned())
}

#[cfg(test)]
mod tests {
    use super::format_number;

    #[test]
    fn numbers_format_compactly() {
        assert_eq!(format_number(23.5), "23.5");
        assert_eq!(format_number(7.0), "7");
        assert_eq!(format_number(-0.25), "-0.25");
        assert_eq!(format_number(1e20), "100000000000000000000");
    }
}
