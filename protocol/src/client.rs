//! A sans-IO Blynk device client: the device side of a session, for the bench tool and tests.
//!
//! It builds the frames a device sends (login, info, `vw`, ping, sync, events, properties) with
//! the message-id rules of the C++ library, and turns the server's frames into [`Event`]s. It does
//! no I/O and reads no clock: the caller owns the socket, the buffers and the heartbeat timer.
//!
//! Message ids: [`Client::login`] always uses id 1 and restarts the counter (a new TCP session);
//! every later message takes the next id, wrapping from 65 535 to 1 (0 is never used).
//!
//! ```
//! use bytes::BytesMut;
//! use pinhouse_protocol::{client::{Client, Event}, encode_response, status};
//!
//! let mut client = Client::new(&b"0123456789abcdef0123456789abcdef"[..]);
//! let mut out = BytesMut::new();
//! assert_eq!(client.login(&mut out), 1);
//! // … write `out` to the socket, read the server's reply into `input` …
//! let mut input = BytesMut::new();
//! encode_response(1, status::OK, &mut input);
//! let event = client.decode(&mut input, &mut out).unwrap().unwrap();
//! assert_eq!(event, Event::LoggedIn { status: status::OK });
//! assert_eq!(client.virtual_write(1, &[b"23.5"], &mut out), 2);
//! ```

use bytes::{Bytes, BytesMut};

use crate::body::{
    DeviceInfo, Group, Hardware, HardwareSync, Internal, LogEvent, Property, Redirect,
};
use crate::codec::Codec;
use crate::command;
use crate::error::{ProtocolError, Result};
use crate::frame::{Frame, encode_message, encode_response, encode_with};
use crate::status;

/// Where the session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No login sent yet in this session.
    Idle,
    /// Login sent, no reply yet.
    LoggingIn,
    /// Login answered with 200 (or 4).
    LoggedIn,
    /// Login answered with another status (9 = invalid token).
    Rejected(u16),
}

/// What a frame from the server meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The login was accepted (status 200, or 4 "already registered").
    LoggedIn {
        /// The status received.
        status: u16,
    },
    /// The login was refused.
    LoginRejected {
        /// The status received ([`status::INVALID_TOKEN`] for an unknown token).
        status: u16,
    },
    /// A `RESPONSE` to some other message.
    Response {
        /// Id of the message answered.
        msg_id: u16,
        /// Status code.
        status: u16,
    },
    /// The server pinged; a `RESPONSE 200` with the same id was already appended to `dst`.
    Ping {
        /// Id of the ping.
        msg_id: u16,
    },
    /// A `vw` from the server (`HARDWARE` or `BRIDGE`), e.g. a dashboard write or a sync reply.
    VirtualWrite {
        /// Message id (a sync reply carries the id of the sync request).
        msg_id: u16,
        /// Virtual pin.
        pin: u8,
        /// Raw value tail, NUL-joined when several (zero-copy from the frame body).
        values: Bytes,
    },
    /// Any other `HARDWARE`/`BRIDGE` body (`dw`, `aw`, `vr`, `dr`, `ar`, `pm`, or unparsable).
    Hardware {
        /// Message id.
        msg_id: u16,
        /// [`command::HARDWARE`] or [`command::BRIDGE`].
        command: u8,
        /// Raw body.
        body: Bytes,
    },
    /// An `INTERNAL` message (`rtc`/`utc`/`meta` replies, `ota`, `dbg`…); parse the body with
    /// [`Internal::parse`].
    Internal {
        /// Message id.
        msg_id: u16,
        /// Raw body.
        body: Bytes,
    },
    /// The server asks the device to reconnect elsewhere.
    Redirect {
        /// Host (raw bytes).
        host: Bytes,
        /// Port, if given.
        port: Option<u16>,
    },
    /// Text the device should print as `Server: <text>`.
    DebugPrint {
        /// Raw text.
        text: Bytes,
    },
}

/// The device side of one Blynk session.
#[derive(Debug, Clone)]
pub struct Client {
    token: Bytes,
    login_command: u8,
    codec: Codec,
    next_id: u16,
    state: State,
}

impl Client {
    /// A client that logs in with `token` using `HW_LOGIN` (29), decoding with the default codec.
    pub fn new(token: impl Into<Bytes>) -> Self {
        Client {
            token: token.into(),
            login_command: command::HW_LOGIN,
            codec: Codec::default(),
            next_id: 1,
            state: State::Idle,
        }
    }

    /// Uses another login command (e.g. [`command::LOGIN`] 2, like the Python `blynklib`).
    pub fn with_login_command(mut self, login_command: u8) -> Self {
        self.login_command = login_command;
        self
    }

    /// Uses another decoder (e.g. a smaller maximum body, like a device's `buff-in`).
    pub fn with_codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// `true` once the login was accepted.
    pub fn is_logged_in(&self) -> bool {
        self.state == State::LoggedIn
    }

    /// The id the next message will carry (without consuming it).
    pub fn peek_msg_id(&self) -> u16 {
        self.next_id
    }

    /// Takes the next message id: 1, 2, … 65 535, 1, … (never 0).
    pub fn next_msg_id(&mut self) -> u16 {
        let id = self.next_id;
        self.next_id = if id == u16::MAX { 1 } else { id + 1 };
        id
    }

    /// Starts a new session: appends the login frame (id 1) and restarts the id counter.
    pub fn login(&mut self, dst: &mut BytesMut) -> u16 {
        self.next_id = 1;
        let id = self.next_msg_id();
        encode_message(self.login_command, id, &self.token, dst);
        self.state = State::LoggingIn;
        id
    }

    /// Appends the info message (`INTERNAL key\0value…`) a device sends after login.
    pub fn info(&mut self, info: &DeviceInfo, dst: &mut BytesMut) -> u16 {
        let id = self.next_msg_id();
        info.encode_frame(id, dst);
        id
    }

    /// Appends `HARDWARE vw\0<pin>\0<v1>\0<v2>…`.
    pub fn virtual_write(&mut self, pin: u8, values: &[&[u8]], dst: &mut BytesMut) -> u16 {
        let id = self.next_msg_id();
        encode_with(command::HARDWARE, id, dst, |d| {
            Hardware::encode_virtual_write(pin, values, d);
        });
        id
    }

    /// Appends any `HARDWARE` body (`dw`, `aw`, …) with a fresh id.
    pub fn hardware(&mut self, hw: &Hardware<'_>, dst: &mut BytesMut) -> u16 {
        let id = self.next_msg_id();
        hw.encode_frame(id, dst);
        id
    }

    /// Appends a `PING`.
    pub fn ping(&mut self, dst: &mut BytesMut) -> u16 {
        let id = self.next_msg_id();
        encode_message(command::PING, id, &[], dst);
        id
    }

    /// Appends `HARDWARE_SYNC` with an empty body (sync all). Replies arrive as
    /// [`Event::VirtualWrite`]s carrying the returned id.
    pub fn sync_all(&mut self, dst: &mut BytesMut) -> u16 {
        let id = self.next_msg_id();
        HardwareSync::All.encode_frame(id, dst);
        id
    }

    /// Appends `HARDWARE_SYNC vr\0<pin>…`.
    pub fn sync_virtual(&mut self, pins: &[u8], dst: &mut BytesMut) -> u16 {
        let id = self.next_msg_id();
        encode_with(command::HARDWARE_SYNC, id, dst, |d| {
            HardwareSync::encode_pins(pins, d);
        });
        id
    }

    /// Appends an `INTERNAL` message.
    pub fn internal(&mut self, internal: &Internal<'_>, dst: &mut BytesMut) -> u16 {
        let id = self.next_msg_id();
        internal.encode_frame(id, dst);
        id
    }

    /// Appends a `PROPERTY` message.
    pub fn property(&mut self, property: &Property<'_>, dst: &mut BytesMut) -> u16 {
        let id = self.next_msg_id();
        property.encode_frame(id, dst);
        id
    }

    /// Appends a `GROUP` message.
    pub fn group(&mut self, group: Group, dst: &mut BytesMut) -> u16 {
        let id = self.next_msg_id();
        group.encode_frame(id, dst);
        id
    }

    /// Appends an `EVENT_LOG` message.
    pub fn log_event(
        &mut self,
        code: &[u8],
        description: Option<&[u8]>,
        dst: &mut BytesMut,
    ) -> u16 {
        let id = self.next_msg_id();
        LogEvent { code, description }.encode_frame(id, dst);
        id
    }

    /// Appends any message with a fresh id.
    pub fn send(&mut self, command: u8, body: &[u8], dst: &mut BytesMut) -> u16 {
        let id = self.next_msg_id();
        encode_message(command, id, body, dst);
        id
    }

    /// Decodes one frame from `src` and handles it (see [`Client::handle`]). `Ok(None)` = need more
    /// bytes.
    pub fn decode(&mut self, src: &mut BytesMut, dst: &mut BytesMut) -> Result<Option<Event>> {
        match self.codec.decode(src)? {
            Some(frame) => self.handle(frame, dst).map(Some),
            None => Ok(None),
        }
    }

    /// Interprets one frame from the server. Pings are answered into `dst`. Commands a Blynk device
    /// does not accept give [`ProtocolError::UnexpectedCommand`], and so does `HW_LOGIN` (the
    /// direct-connect mode where an app logs in to the device is not implemented); a malformed
    /// `REDIRECT` gives its body error.
    pub fn handle(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<Event> {
        let (command, msg_id, body) = match frame {
            Frame::Response { msg_id, status } => return Ok(self.on_response(msg_id, status)),
            Frame::Message {
                command,
                msg_id,
                body,
            } => (command, msg_id, body),
        };
        match command {
            command::PING => {
                encode_response(msg_id, status::OK, dst);
                Ok(Event::Ping { msg_id })
            }
            command::HARDWARE | command::BRIDGE => Ok(match Hardware::parse(&body) {
                Ok(Hardware::VirtualWrite { pin, values }) => Event::VirtualWrite {
                    msg_id,
                    pin,
                    values: body.slice_ref(values),
                },
                _ => Event::Hardware {
                    msg_id,
                    command,
                    body,
                },
            }),
            command::INTERNAL => Ok(Event::Internal { msg_id, body }),
            command::REDIRECT => {
                let r = Redirect::parse(&body)?;
                Ok(Event::Redirect {
                    host: body.slice_ref(r.host),
                    port: r.port,
                })
            }
            command::DEBUG_PRINT => Ok(Event::DebugPrint { text: body }),
            _ => Err(ProtocolError::UnexpectedCommand { command }),
        }
    }

    fn on_response(&mut self, msg_id: u16, status: u16) -> Event {
        if self.state == State::LoggingIn && msg_id == 1 {
            if status::is_login_ok(status) {
                self.state = State::LoggedIn;
                Event::LoggedIn { status }
            } else {
                self.state = State::Rejected(status);
                Event::LoginRejected { status }
            }
        } else {
            Event::Response { msg_id, status }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn frames(mut buf: BytesMut) -> Vec<Frame> {
        let codec = Codec::default();
        let mut out = Vec::new();
        while let Some(f) = codec.decode(&mut buf).unwrap() {
            out.push(f);
        }
        assert!(buf.is_empty());
        out
    }

    #[test]
    fn login_uses_id_one_and_restarts_counter() {
        let mut c = Client::new(TOKEN);
        let mut out = BytesMut::new();
        assert_eq!(c.ping(&mut out), 1);
        assert_eq!(c.ping(&mut out), 2);
        out.clear();
        assert_eq!(c.login(&mut out), 1);
        assert_eq!(c.state(), State::LoggingIn);
        assert_eq!(&out[..5], &[29, 0, 1, 0, 32]);
        assert_eq!(&out[5..], TOKEN);
        assert_eq!(c.peek_msg_id(), 2);
        let mut legacy = Client::new(TOKEN).with_login_command(command::LOGIN);
        out.clear();
        legacy.login(&mut out);
        assert_eq!(out[0], 2);
    }

    #[test]
    fn ids_wrap_skipping_zero() {
        let mut c = Client::new(TOKEN);
        let mut out = BytesMut::new();
        c.login(&mut out);
        c.next_id = 65_534;
        assert_eq!(c.next_msg_id(), 65_534);
        assert_eq!(c.next_msg_id(), 65_535);
        assert_eq!(c.next_msg_id(), 1);
        assert_eq!(c.next_msg_id(), 2);
    }

    #[test]
    fn builds_session_frames() {
        let mut c = Client::new(TOKEN);
        let mut out = BytesMut::new();
        c.login(&mut out);
        let info = DeviceInfo {
            heartbeat_secs: Some(10),
            board: Some("rust".into()),
            ..Default::default()
        };
        assert_eq!(c.info(&info, &mut out), 2);
        assert_eq!(c.virtual_write(1, &[b"23.5"], &mut out), 3);
        assert_eq!(c.virtual_write(2, &[b"a", b"b"], &mut out), 4);
        assert_eq!(c.ping(&mut out), 5);
        assert_eq!(c.sync_all(&mut out), 6);
        assert_eq!(c.sync_virtual(&[1, 2], &mut out), 7);
        assert_eq!(c.log_event(b"hot", None, &mut out), 8);
        assert_eq!(c.group(Group::Begin, &mut out), 9);
        let p = Property {
            pin: 1,
            name: b"color",
            values: b"#fff",
        };
        assert_eq!(c.property(&p, &mut out), 10);
        assert_eq!(c.internal(&Internal::Rtc, &mut out), 11);
        assert_eq!(
            c.hardware(
                &Hardware::DigitalWrite {
                    pin: 1,
                    value: b"1"
                },
                &mut out
            ),
            12
        );
        assert_eq!(c.send(command::NOTIFY, b"hi", &mut out), 13);
        let f = frames(out);
        assert_eq!(f.len(), 13);
        assert_eq!(
            f[1],
            Frame::message(command::INTERNAL, 2, &b"h-beat\x0010\x00dev\x00rust"[..])
        );
        assert_eq!(
            f[2],
            Frame::message(command::HARDWARE, 3, &b"vw\x001\x0023.5"[..])
        );
        assert_eq!(
            f[3],
            Frame::message(command::HARDWARE, 4, &b"vw\x002\x00a\x00b"[..])
        );
        assert_eq!(f[4], Frame::message(command::PING, 5, Bytes::new()));
        assert_eq!(
            f[5],
            Frame::message(command::HARDWARE_SYNC, 6, Bytes::new())
        );
        assert_eq!(
            f[6],
            Frame::message(command::HARDWARE_SYNC, 7, &b"vr\x001\x002"[..])
        );
    }

    #[test]
    fn handles_server_frames() {
        let mut c = Client::new(TOKEN);
        let mut out = BytesMut::new();
        c.login(&mut out);
        out.clear();
        let mut input = BytesMut::new();
        encode_response(1, status::OK, &mut input);
        encode_response(2, status::OK, &mut input);
        encode_message(command::PING, 77, &[], &mut input);
        encode_message(command::HARDWARE, 6, b"vw\x004\x0012\x0013", &mut input);
        encode_message(command::BRIDGE, 8, b"dw\x004\x001", &mut input);
        encode_message(command::INTERNAL, 9, b"rtc\x00123", &mut input);
        encode_message(command::DEBUG_PRINT, 10, b"hello", &mut input);
        encode_message(command::REDIRECT, 11, b"other\x00443", &mut input);
        let mut events = Vec::new();
        while let Some(e) = c.decode(&mut input, &mut out).unwrap() {
            events.push(e);
        }
        assert_eq!(events[0], Event::LoggedIn { status: 200 });
        assert!(c.is_logged_in());
        assert_eq!(
            events[1],
            Event::Response {
                msg_id: 2,
                status: 200
            }
        );
        assert_eq!(events[2], Event::Ping { msg_id: 77 });
        assert_eq!(&out[..], &[0, 0, 77, 0, 200]);
        assert_eq!(
            events[3],
            Event::VirtualWrite {
                msg_id: 6,
                pin: 4,
                values: Bytes::from_static(b"12\x0013")
            }
        );
        assert!(matches!(
            events[4],
            Event::Hardware {
                command: 15,
                msg_id: 8,
                ..
            }
        ));
        assert!(matches!(events[5], Event::Internal { msg_id: 9, .. }));
        assert_eq!(
            events[6],
            Event::DebugPrint {
                text: Bytes::from_static(b"hello")
            }
        );
        assert_eq!(
            events[7],
            Event::Redirect {
                host: Bytes::from_static(b"other"),
                port: Some(443)
            }
        );
        let mut bad = BytesMut::new();
        encode_message(command::EVENT_LOG, 3, b"x", &mut bad);
        assert_eq!(
            c.decode(&mut bad, &mut out),
            Err(ProtocolError::UnexpectedCommand { command: 64 })
        );
    }

    #[test]
    fn rejected_login() {
        let mut c = Client::new(TOKEN);
        let mut out = BytesMut::new();
        c.login(&mut out);
        let e = c.handle(
            Frame::Response {
                msg_id: 1,
                status: status::INVALID_TOKEN,
            },
            &mut out,
        );
        assert_eq!(e, Ok(Event::LoginRejected { status: 9 }));
        assert_eq!(c.state(), State::Rejected(9));
        let mut again = Client::new(TOKEN);
        again.login(&mut out);
        let e = again.handle(
            Frame::Response {
                msg_id: 1,
                status: status::ALREADY_REGISTERED,
            },
            &mut out,
        );
        assert_eq!(e, Ok(Event::LoggedIn { status: 4 }));
    }
}
