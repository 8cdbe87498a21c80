//! `pinhouse-protocol`: a sans-IO codec of the Blynk hardware protocol, the byte format spoken by
//! devices running the unchanged Blynk libraries, plus a small sans-IO device client built on it.
//!
//! Role in the workspace: the bottom layer. The network edge (`pinhouse-ingest`), the bench tool
//! and the end-to-end tests read bytes from their own sockets into a `bytes::BytesMut`, hand them to
//! [`Codec::decode`], and interpret bodies with the borrowed parsers in [`body`].
//!
//! What this crate must not depend on: no tokio or any async runtime, no sockets or other I/O, no
//! clock, no other pinhouse crate. Its only dependencies are `bytes` and `thiserror`. It contains no
//! `unsafe` and never panics on any input bytes: every failure is a [`ProtocolError`].
//!
//! Layout:
//! * [`frame`]: the 5-byte header, [`Frame`], and the encoders ([`encode_response`],
//!   [`encode_message`], [`encode_fields`]);
//! * [`codec`]: [`Codec`], the incremental decoder ("need more bytes" is `Ok(None)`, malformed is
//!   `Err`);
//! * [`command`], [`status`]: the numeric codes;
//! * [`body`]: parsers/encoders for `hardware`, `internal`, `sync`, `property`, `group`, events,
//!   `redirect`, `bridge`;
//! * [`client`]: a device-side session (login, info, writes, pings, sync) for tools and tests;
//! * [`firmware`]: the info tag embedded in firmware binaries (for OTA).
//!
//! The byte format as implemented here is described in `docs/protocol.md`.
//!
//! ```
//! use bytes::BytesMut;
//! use pinhouse_protocol::{Codec, Frame, body::Hardware, command, encode_fields};
//!
//! let mut buf = BytesMut::new();
//! encode_fields(command::HARDWARE, 3, &[b"vw", b"1", b"23.5"], &mut buf);
//! let frame = Codec::default().decode(&mut buf).unwrap().unwrap();
//! let Frame::Message { command: command::HARDWARE, body, .. } = frame else { unreachable!() };
//! assert_eq!(Hardware::parse(&body).unwrap(), Hardware::VirtualWrite { pin: 1, values: b"23.5" });
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod body;
pub mod client;
pub mod codec;
pub mod command;
pub mod error;
pub mod firmware;
pub mod frame;
pub mod status;

pub use codec::{Codec, DEFAULT_MAX_BODY};
pub use error::{ProtocolError, Result};
pub use frame::{
    Frame, HEADER_LEN, Header, MAX_ENCODABLE_BODY, encode_fields, encode_message, encode_response,
    encode_with, try_encode_message,
};
