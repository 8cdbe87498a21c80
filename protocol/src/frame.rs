//! Frames: the 5-byte header and what follows it, and the encoders that write them.
//!
//! ```text
//! offset 0  u8      command
//! offset 1  u16 BE  message id (0 is invalid)
//! offset 3  u16 BE  body length, or the status code when command == RESPONSE (then no body)
//! offset 5  body    `length` bytes (absent for RESPONSE)
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use crate::command;
use crate::error::{ProtocolError, Result};

/// Size of the frame header in bytes.
pub const HEADER_LEN: usize = 5;

/// Largest body the 16-bit length field can express.
pub const MAX_ENCODABLE_BODY: usize = u16::MAX as usize;

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// `RESPONSE` (command 0): header only, the length field carries the status.
    Response {
        /// Id of the message being answered.
        msg_id: u16,
        /// Status code, see [`crate::status`].
        status: u16,
    },
    /// Any other command, with its body (possibly empty).
    Message {
        /// Command code, see [`crate::command`]. Never [`command::RESPONSE`] when decoded.
        command: u8,
        /// Message id.
        msg_id: u16,
        /// The body, zero-copy from the read buffer.
        body: Bytes,
    },
}

impl Frame {
    /// Appends the wire form of this frame to `dst`.
    ///
    /// A `Message` is written exactly as given, so a `Message` whose command is
    /// [`command::RESPONSE`] produces bytes that decode as a `Response` (callers should not build
    /// one). A body longer than 65 535 bytes is truncated to fit the 16-bit length field; use
    /// [`try_encode_message`] to get an error instead.
    pub fn encode(&self, dst: &mut BytesMut) {
        match self {
            Frame::Response { msg_id, status } => encode_response(*msg_id, *status, dst),
            Frame::Message {
                command,
                msg_id,
                body,
            } => encode_message(*command, *msg_id, body, dst),
        }
    }

    /// The frame's message id.
    pub fn msg_id(&self) -> u16 {
        match self {
            Frame::Response { msg_id, .. } | Frame::Message { msg_id, .. } => *msg_id,
        }
    }

    /// The frame's command code ([`command::RESPONSE`] for a response).
    pub fn command(&self) -> u8 {
        match self {
            Frame::Response { .. } => command::RESPONSE,
            Frame::Message { command, .. } => *command,
        }
    }

    /// The body (empty for a response).
    pub fn body(&self) -> &[u8] {
        match self {
            Frame::Response { .. } => &[],
            Frame::Message { body, .. } => body,
        }
    }

    /// Number of bytes [`Frame::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        match self {
            Frame::Response { .. } => HEADER_LEN,
            Frame::Message { body, .. } => HEADER_LEN + body.len().min(MAX_ENCODABLE_BODY),
        }
    }

    /// Shorthand for a `Message` frame.
    pub fn message(command: u8, msg_id: u16, body: impl Into<Bytes>) -> Self {
        Frame::Message {
            command,
            msg_id,
            body: body.into(),
        }
    }
}

/// A parsed 5-byte header, before the body is known to be complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Command code.
    pub command: u8,
    /// Message id.
    pub msg_id: u16,
    /// Body length, or the status when `command == RESPONSE`.
    pub len_or_status: u16,
}

impl Header {
    /// Reads a header from the first 5 bytes of `buf`; `None` if fewer than 5 bytes are present.
    pub fn parse(buf: &[u8]) -> Option<Header> {
        match buf {
            [command, i0, i1, l0, l1, ..] => Some(Header {
                command: *command,
                msg_id: u16::from_be_bytes([*i0, *i1]),
                len_or_status: u16::from_be_bytes([*l0, *l1]),
            }),
            _ => None,
        }
    }

    /// Length of the body that follows this header (0 for a response).
    pub fn body_len(&self) -> usize {
        if self.command == command::RESPONSE {
            0
        } else {
            usize::from(self.len_or_status)
        }
    }

    /// Writes the header to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.reserve(HEADER_LEN);
        dst.put_u8(self.command);
        dst.put_u16(self.msg_id);
        dst.put_u16(self.len_or_status);
    }
}

/// Appends a `RESPONSE` frame (5 bytes, no body).
pub fn encode_response(msg_id: u16, status: u16, dst: &mut BytesMut) {
    Header {
        command: command::RESPONSE,
        msg_id,
        len_or_status: status,
    }
    .encode(dst);
}

/// Appends a message frame with `body`. Bodies longer than 65 535 bytes are truncated (see
/// [`try_encode_message`] for the checked variant).
pub fn encode_message(command: u8, msg_id: u16, body: &[u8], dst: &mut BytesMut) {
    let body = &body[..body.len().min(MAX_ENCODABLE_BODY)];
    dst.reserve(HEADER_LEN + body.len());
    dst.put_u8(command);
    dst.put_u16(msg_id);
    dst.put_u16(body.len() as u16);
    dst.put_slice(body);
}

/// Like [`encode_message`], but refuses a body that does not fit the length field instead of
/// truncating it. Nothing is written on error.
pub fn try_encode_message(command: u8, msg_id: u16, body: &[u8], dst: &mut BytesMut) -> Result<()> {
    if body.len() > MAX_ENCODABLE_BODY {
        return Err(ProtocolError::BodyTooLongToEncode { len: body.len() });
    }
    encode_message(command, msg_id, body, dst);
    Ok(())
}

/// Appends a message whose body is `fields` joined by single NUL bytes (no trailing NUL).
/// Truncated like [`encode_message`] if the joined body exceeds 65 535 bytes.
pub fn encode_fields(command: u8, msg_id: u16, fields: &[&[u8]], dst: &mut BytesMut) {
    let joined = fields.iter().map(|f| f.len()).sum::<usize>() + fields.len().saturating_sub(1);
    let len = joined.min(MAX_ENCODABLE_BODY);
    dst.reserve(HEADER_LEN + len);
    dst.put_u8(command);
    dst.put_u16(msg_id);
    dst.put_u16(len as u16);
    let mut left = len;
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            if left == 0 {
                break;
            }
            dst.put_u8(0);
            left -= 1;
        }
        let take = field.len().min(left);
        dst.put_slice(&field[..take]);
        left -= take;
    }
}

/// Appends a message whose body is written by `write_body` straight into `dst`, then patches the
/// length field. Lets body encoders (see [`crate::body`]) avoid a temporary buffer. If the body
/// comes out longer than 65 535 bytes it is truncated.
pub fn encode_with(
    command: u8,
    msg_id: u16,
    dst: &mut BytesMut,
    write_body: impl FnOnce(&mut BytesMut),
) {
    let start = dst.len();
    Header {
        command,
        msg_id,
        len_or_status: 0,
    }
    .encode(dst);
    write_body(dst);
    let body_len = dst.len() - start - HEADER_LEN;
    if body_len > MAX_ENCODABLE_BODY {
        dst.truncate(start + HEADER_LEN + MAX_ENCODABLE_BODY);
    }
    let len = (dst.len() - start - HEADER_LEN) as u16;
    dst[start + 3..start + 5].copy_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_bytes_match_reference() {
        let mut b = BytesMut::new();
        encode_response(1, 200, &mut b);
        assert_eq!(&b[..], &[0x00, 0x00, 0x01, 0x00, 0xC8]);
    }

    #[test]
    fn vw_bytes_match_reference() {
        let mut b = BytesMut::new();
        encode_fields(command::HARDWARE, 3, &[b"vw", b"1", b"100"], &mut b);
        assert_eq!(
            &b[..],
            &[
                0x14, 0x00, 0x03, 0x00, 0x08, 0x76, 0x77, 0x00, 0x31, 0x00, 0x31, 0x30, 0x30
            ]
        );
    }

    #[test]
    fn encode_fields_edge_cases() {
        let mut b = BytesMut::new();
        encode_fields(command::PING, 5, &[], &mut b);
        assert_eq!(&b[..], &[6, 0, 5, 0, 0]);
        b.clear();
        encode_fields(command::HARDWARE, 5, &[b"", b""], &mut b);
        assert_eq!(&b[..], &[20, 0, 5, 0, 1, 0]);
    }

    #[test]
    fn oversized_bodies_are_truncated_or_refused() {
        let big = vec![b'x'; MAX_ENCODABLE_BODY + 10];
        let mut b = BytesMut::new();
        encode_message(command::HARDWARE, 1, &big, &mut b);
        assert_eq!(b.len(), HEADER_LEN + MAX_ENCODABLE_BODY);
        assert_eq!(&b[3..5], &[0xFF, 0xFF]);
        let mut c = BytesMut::new();
        assert_eq!(
            try_encode_message(command::HARDWARE, 1, &big, &mut c),
            Err(ProtocolError::BodyTooLongToEncode { len: big.len() })
        );
        assert!(c.is_empty());
        let mut d = BytesMut::new();
        encode_fields(command::HARDWARE, 1, &[&big, b"tail"], &mut d);
        assert_eq!(d.len(), HEADER_LEN + MAX_ENCODABLE_BODY);
        let mut e = BytesMut::new();
        encode_with(command::HARDWARE, 1, &mut e, |dst| {
            dst.extend_from_slice(&big)
        });
        assert_eq!(e.len(), HEADER_LEN + MAX_ENCODABLE_BODY);
        assert_eq!(&e[3..5], &[0xFF, 0xFF]);
    }

    #[test]
    fn encode_with_patches_length() {
        let mut b = BytesMut::from(&b"prefix"[..]);
        encode_with(command::INTERNAL, 9, &mut b, |dst| {
            dst.extend_from_slice(b"rtc\0sync")
        });
        assert_eq!(&b[6..], b"\x11\x00\x09\x00\x08rtc\0sync");
    }

    #[test]
    fn header_parse() {
        assert_eq!(Header::parse(&[0, 0, 1, 0]), None);
        let h = Header::parse(&[0x1D, 0, 1, 0, 32, 9]).unwrap();
        assert_eq!(h.command, command::HW_LOGIN);
        assert_eq!(h.msg_id, 1);
        assert_eq!(h.body_len(), 32);
        let r = Header::parse(&[0, 0, 1, 0, 200]).unwrap();
        assert_eq!(r.body_len(), 0);
    }

    #[test]
    fn frame_accessors() {
        let f = Frame::message(command::PING, 7, Bytes::new());
        assert_eq!(f.msg_id(), 7);
        assert_eq!(f.command(), command::PING);
        assert_eq!(f.encoded_len(), 5);
        assert!(f.body().is_empty());
        assert_eq!(
            Frame::message(command::HARDWARE, 1, &b"vw"[..]).body(),
            b"vw"
        );
        let r = Frame::Response {
            msg_id: 2,
            status: 9,
        };
        assert_eq!(r.command(), command::RESPONSE);
        let mut b = BytesMut::new();
        r.encode(&mut b);
        assert_eq!(b.len(), r.encoded_len());
    }
}
