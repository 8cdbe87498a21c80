//! One device connection: the Blynk session state machine.
//!
//! Transport-agnostic: [`run`] drives any `AsyncRead + AsyncWrite` stream, so
//! TLS, WebSocket and QUIC streams reuse it unchanged. One socket read may
//! carry many frames; every complete frame is handled, the values of the whole
//! read go to storage as one batch, and all replies go out in one write.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pinhouse_protocol::body::{DeviceInfo, Group, Hardware, HardwareSync, Internal};
use pinhouse_protocol::{
    Codec, Frame, HEADER_LEN, command, encode_fields, encode_response, status,
};
use pinhouse_storage::{Point, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::{DeviceIdentity, Ingest, PinKind, PinRef};

/// Largest body accepted before login: a login carries a 32-byte token.
const PRE_LOGIN_MAX_BODY: usize = 256;
/// Read buffer growth step.
const READ_CHUNK: usize = 4096;
/// Frames queued for a device by the cloud before further ones are dropped.
const OUTBOUND_QUEUE: usize = 64;

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
    /// The server is shutting down.
    Shutdown,
    /// The directory or storage failed.
    Internal(String),
}

struct LoggedIn {
    identity: DeviceIdentity,
    session_id: u64,
    outbound: mpsc::Receiver<Bytes>,
    max_frame: Arc<AtomicUsize>,
    heartbeat: Duration,
    /// Timestamp of an open `group` (µs), applied to the values inside it.
    group_ts: Option<i64>,
    info: Option<DeviceInfo>,
}

struct Session {
    ingest: Ingest,
    login_attempts: u32,
    state: Option<LoggedIn>,
    out: BytesMut,
    points: Vec<Point>,
}

/// Serve one connection until it closes; never panics on network input.
pub async fn run<S>(
    ingest: Ingest,
    stream: S,
    peer: SocketAddr,
    shutdown: watch::Receiver<bool>,
) -> CloseReason
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let span = tracing::info_span!("device", %peer, device_id = tracing::field::Empty);
    let _enter = span.enter();
    let mut session = Session {
        ingest,
        login_attempts: 0,
        state: None,
        out: BytesMut::with_capacity(256),
        points: Vec::new(),
    };
    let reason = session.serve(stream, shutdown, &span).await;
    if let Some(state) = &session.state {
        session
            .ingest
            .unregister(state.identity.device_id, state.session_id);
    }
    match &reason {
        CloseReason::PeerClosed | CloseReason::Shutdown => {
            tracing::debug!(?reason, "session closed")
        }
        _ => tracing::info!(?reason, "session closed"),
    }
    reason
}

enum Flow {
    Continue,
    Close(CloseReason),
}

impl Session {
    async fn serve<S>(
        &mut self,
        stream: S,
        mut shutdown: watch::Receiver<bool>,
        span: &tracing::Span,
    ) -> CloseReason
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let (mut rd, mut wr) = tokio::io::split(stream);
        let config = self.ingest.config().clone();
        let mut inbuf = BytesMut::with_capacity(READ_CHUNK);
        let login_deadline = Instant::now() + config.login_timeout;
        let mut last_rx = Instant::now();
        loop {
            // Handle every complete frame already buffered.
            let flow = self.drain(&mut inbuf, span).await;
            if !self.points.is_empty() {
                let points = std::mem::take(&mut self.points);
                if let Err(err) = self.ingest.submit(points).await {
                    return CloseReason::Internal(err.to_string());
                }
            }
            if !self.out.is_empty() {
                if let Err(err) = wr.write_all(&self.out).await {
                    return CloseReason::Io(err.to_string());
                }
                self.out.clear();
            }
            if let Flow::Close(reason) = flow {
                let _ = wr.shutdown().await;
                return reason;
            }

            let deadline = match &self.state {
                None => login_deadline,
                Some(state) => last_rx + config.idle_timeout(state.heartbeat),
            };
            if inbuf.capacity() - inbuf.len() < READ_CHUNK / 4 {
                inbuf.reserve(READ_CHUNK);
            }
            let outbound = async {
                match self.state.as_mut() {
                    Some(state) => state.outbound.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                read = rd.read_buf(&mut inbuf) => match read {
                    Ok(0) => return CloseReason::PeerClosed,
                    Ok(_) => last_rx = Instant::now(),
                    Err(err) => return CloseReason::Io(err.to_string()),
                },
                Some(frame) = outbound => self.out.extend_from_slice(&frame),
                _ = tokio::time::sleep_until(deadline) => {
                    return if self.state.is_none() { CloseReason::LoginTimeout } else { CloseReason::HeartbeatTimeout };
                }
                _ = shutdown.changed() => return CloseReason::Shutdown,
            }
        }
    }

    /// Decode and handle all complete frames in `inbuf`.
    async fn drain(&mut self, inbuf: &mut BytesMut, span: &tracing::Span) -> Flow {
        loop {
            if self.state.is_none() && !inbuf.is_empty() && !is_pre_login_command(inbuf[0]) {
                tracing::warn!(first_byte = inbuf[0], "first bytes are not a Blynk login");
                return Flow::Close(CloseReason::NotBlynk);
            }
            let codec = match self.state {
                None => Codec::new(PRE_LOGIN_MAX_BODY),
                Some(_) => Codec::new(self.ingest.config().max_body),
            };
            let frame = match codec.decode(inbuf) {
                Ok(Some(frame)) => frame,
                Ok(None) => return Flow::Continue,
                Err(err) => {
                    tracing::warn!(%err, "malformed frame");
                    return Flow::Close(CloseReason::Protocol(err.to_string()));
                }
            };
            let flow = if self.state.is_none() {
                self.handle_pre_login(frame, span).await
            } else {
                self.handle(frame)
            };
            if let Flow::Close(reason) = flow {
                return Flow::Close(reason);
            }
        }
    }

    async fn handle_pre_login(&mut self, frame: Frame, span: &tracing::Span) -> Flow {
        let (cmd, msg_id, body) = match frame {
            Frame::Response { .. } => return Flow::Continue,
            Frame::Message {
                command,
                msg_id,
                body,
            } => (command, msg_id, body),
        };
        match cmd {
            command::LOGIN | command::HW_LOGIN => {}
            // A device may ping while waiting for the login reply; nothing to say yet.
            command::PING => return Flow::Continue,
            _ => {
                encode_response(msg_id, status::NOT_AUTHENTICATED, &mut self.out);
                return Flow::Close(CloseReason::NotAuthenticated);
            }
        }
        let token = String::from_utf8_lossy(&body);
        let token = token.trim();
        let identity = if token.is_empty() || token.len() > 64 || token.contains('\0') {
            None
        } else {
            match self.ingest.lookup(token).await {
                Ok(found) => found,
                Err(err) => {
                    tracing::error!(%err, "device directory failed during login");
                    encode_response(msg_id, status::SERVER_ERROR, &mut self.out);
                    return Flow::Close(CloseReason::Internal(err.to_string()));
                }
            }
        };
        let Some(identity) = identity else {
            self.login_attempts += 1;
            tracing::info!(attempt = self.login_attempts, "login with an invalid token");
            encode_response(msg_id, status::INVALID_TOKEN, &mut self.out);
            if self.login_attempts >= self.ingest.config().max_login_attempts {
                return Flow::Close(CloseReason::TooManyLoginAttempts);
            }
            return Flow::Continue;
        };
        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
        let max_frame = Arc::new(AtomicUsize::new(
            self.ingest.config().default_device_buffer + HEADER_LEN,
        ));
        let session_id = self
            .ingest
            .register(identity.device_id, tx, Arc::clone(&max_frame));
        span.record("device_id", identity.device_id);
        tracing::info!(org_id = identity.org_id, "device logged in");
        encode_response(msg_id, status::OK, &mut self.out);
        self.state = Some(LoggedIn {
            identity,
            session_id,
            outbound: rx,
            max_frame,
            heartbeat: self.ingest.config().default_heartbeat,
            group_ts: None,
            info: None,
        });
        Flow::Continue
    }

    fn handle(&mut self, frame: Frame) -> Flow {
        let (cmd, msg_id, body) = match frame {
            // Devices answer our pings and cloud writes; nothing to do.
            Frame::Response { .. } => return Flow::Continue,
            Frame::Message {
                command,
                msg_id,
                body,
            } => (command, msg_id, body),
        };
        match cmd {
            command::PING => encode_response(msg_id, status::OK, &mut self.out),
            command::LOGIN | command::HW_LOGIN => {
                encode_response(msg_id, status::ALREADY_REGISTERED, &mut self.out)
            }
            command::HARDWARE => self.on_hardware(msg_id, &body),
            command::HARDWARE_SYNC => self.on_sync(msg_id, &body),
            command::INTERNAL => self.on_internal(msg_id, &body),
            command::GROUP => self.on_group(msg_id, &body),
            other => {
                // Not implemented yet on this server (property, events, bridge,
                // legacy notify/email/tweet/sms): say so, the library ignores it.
                tracing::debug!(command = other, "unsupported command");
                encode_response(msg_id, status::ILLEGAL_COMMAND, &mut self.out);
            }
        }
        Flow::Continue
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
        let Some(state) = &self.state else { return };
        let ts_us = state.group_ts.unwrap_or_else(crate::now_us);
        let text = String::from_utf8_lossy(values);
        let identity = &state.identity;
        self.points.push(Point::from_text(
            identity.org_id,
            identity.device_id,
            pin.column(),
            ts_us,
            &text,
        ));
    }

    fn on_sync(&mut self, msg_id: u16, body: &[u8]) {
        let Some(state) = &self.state else { return };
        let (org_id, device_id) = (state.identity.org_id, state.identity.device_id);
        let max_frame = state.max_frame.load(Ordering::Relaxed);
        let storage = self.ingest.storage().clone();
        match HardwareSync::parse(body) {
            Ok(HardwareSync::All) => {
                for (column, last) in storage.last_values(org_id, device_id) {
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
                    if let Some(last) = storage.last_value(org_id, device_id, pin.column()) {
                        self.encode_value(msg_id, pin, &last.value, max_frame);
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

    fn on_internal(&mut self, msg_id: u16, body: &[u8]) {
        let Some(state) = self.state.as_mut() else {
            return;
        };
        match Internal::parse(body) {
            Ok(Internal::Info(info)) => {
                if let Some(secs) = info.heartbeat_secs.filter(|s| *s > 0) {
                    state.heartbeat = Duration::from_secs(u64::from(secs.clamp(1, 3600)));
                }
                if let Some(buff_in) = info.buff_in.filter(|b| *b as usize > HEADER_LEN) {
                    state.max_frame.store(buff_in as usize, Ordering::Relaxed);
                }
                tracing::info!(
                    firmware = ?info.firmware, library = ?info.library, board = ?info.board,
                    template = ?info.template_id, heartbeat = ?info.heartbeat_secs, buff_in = ?info.buff_in,
                    "device info"
                );
                state.info = Some(info);
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
                // Device time zones come with the control-plane metadata; until
                // then every device lives in UTC.
                b"tz" => encode_fields(
                    command::INTERNAL,
                    msg_id,
                    &[b"utc", b"tz", b"0", b"0"],
                    &mut self.out,
                ),
                b"tz_name" => encode_fields(
                    command::INTERNAL,
                    msg_id,
                    &[b"utc", b"tz_name", b"UTC"],
                    &mut self.out,
                ),
                _ => encode_response(msg_id, status::NO_DATA, &mut self.out),
            },
            Ok(other) => {
                tracing::debug!(?other, "unsupported internal command");
                encode_response(msg_id, status::ILLEGAL_COMMAND, &mut self.out);
            }
            Err(err) => {
                tracing::debug!(%err, "malformed internal body");
                encode_response(msg_id, status::ILLEGAL_COMMAND_BODY, &mut self.out);
            }
        }
    }

    fn on_group(&mut self, msg_id: u16, body: &[u8]) {
        let Some(state) = self.state.as_mut() else {
            return;
        };
        match Group::parse(body) {
            Ok(Group::Begin) => state.group_ts = Some(crate::now_us()),
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
