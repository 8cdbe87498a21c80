//! The frame decoder: turns a growing read buffer into [`Frame`]s.
//!
//! Sans-IO: the caller reads from its socket into a `BytesMut` and calls [`Codec::decode`] until it
//! returns `Ok(None)` ("need more bytes"). Errors mean the stream can no longer be trusted and the
//! connection should be dropped.

use bytes::{Buf, BytesMut};

use crate::command;
use crate::error::{ProtocolError, Result};
use crate::frame::{Frame, HEADER_LEN, Header};

/// Default maximum body size: 2^15 − 1 bytes, the documented Blynk ceiling (the Node client also
/// advertises `buff-in 32767`).
pub const DEFAULT_MAX_BODY: usize = 32_767;

/// Frame decoder with a configurable maximum body size.
#[derive(Debug, Clone, Copy)]
pub struct Codec {
    max_body: usize,
    allow_zero_msg_id: bool,
}

impl Default for Codec {
    fn default() -> Self {
        Codec::new(DEFAULT_MAX_BODY)
    }
}

impl Codec {
    /// A decoder that refuses bodies longer than `max_body` bytes. Values above 65 535 have the same
    /// effect as 65 535 (the length field is 16 bits).
    pub fn new(max_body: usize) -> Self {
        Codec {
            max_body,
            allow_zero_msg_id: false,
        }
    }

    /// The configured maximum body size.
    pub fn max_body(&self) -> usize {
        self.max_body
    }

    /// Whether message id 0 is accepted (default: no, it is rejected with
    /// [`ProtocolError::ZeroMessageId`]).
    ///
    /// The Python `blynklib` 0.2.x client sends id 0 for every message after its 65 535th in one
    /// session instead of wrapping to 1; a server that prefers to keep such sessions alive can turn
    /// this on.
    pub fn with_zero_msg_id(mut self, allow: bool) -> Self {
        self.allow_zero_msg_id = allow;
        self
    }

    /// Whether message id 0 is accepted.
    pub fn allows_zero_msg_id(&self) -> bool {
        self.allow_zero_msg_id
    }

    /// Validates the header at the start of `buf` and returns the total length (header + body) of
    /// the frame it announces. `Ok(None)` if fewer than 5 bytes are present. Useful to reserve
    /// read-buffer space before the body arrives.
    pub fn frame_len(&self, buf: &[u8]) -> Result<Option<usize>> {
        let Some(header) = Header::parse(buf) else {
            return Ok(None);
        };
        self.check(&header)?;
        Ok(Some(HEADER_LEN + header.body_len()))
    }

    fn check(&self, header: &Header) -> Result<()> {
        if header.msg_id == 0 && !self.allow_zero_msg_id {
            return Err(ProtocolError::ZeroMessageId);
        }
        let len = header.body_len();
        if len > self.max_body {
            return Err(ProtocolError::BodyTooLarge {
                len,
                max: self.max_body,
            });
        }
        Ok(())
    }

    /// Decodes one frame from the front of `src`.
    ///
    /// * `Ok(None)`: the frame is incomplete; `src` is left untouched.
    /// * `Ok(Some(frame))`: exactly one frame was consumed from `src`; its body is split off the
    ///   buffer without copying (`split_to(..).freeze()`).
    /// * `Err(_)`: the header is invalid (id 0, body over the maximum). The error is reported as soon
    ///   as the 5 header bytes are present, before any of the body arrives. `src` is left untouched;
    ///   the caller should drop the connection.
    pub fn decode(&self, src: &mut BytesMut) -> Result<Option<Frame>> {
        let Some(header) = Header::parse(src) else {
            return Ok(None);
        };
        self.check(&header)?;
        if header.command == command::RESPONSE {
            src.advance(HEADER_LEN);
            return Ok(Some(Frame::Response {
                msg_id: header.msg_id,
                status: header.len_or_status,
            }));
        }
        let body_len = header.body_len();
        if src.len() < HEADER_LEN + body_len {
            return Ok(None);
        }
        src.advance(HEADER_LEN);
        let body = src.split_to(body_len).freeze();
        Ok(Some(Frame::Message {
            command: header.command,
            msg_id: header.msg_id,
            body,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{encode_fields, encode_response};

    #[test]
    fn needs_header_then_body() {
        let codec = Codec::default();
        let mut full = BytesMut::new();
        encode_fields(command::HARDWARE, 3, &[b"vw", b"1", b"100"], &mut full);
        for cut in 0..full.len() {
            let mut part = BytesMut::from(&full[..cut]);
            assert_eq!(codec.decode(&mut part), Ok(None), "cut {cut}");
            assert_eq!(part.len(), cut, "untouched");
        }
        let frame = codec.decode(&mut full).unwrap().unwrap();
        assert_eq!(
            frame,
            Frame::message(command::HARDWARE, 3, &b"vw\x001\x00100"[..])
        );
        assert!(full.is_empty());
    }

    #[test]
    fn response_has_no_body() {
        let mut b = BytesMut::new();
        encode_response(1, 200, &mut b);
        b.extend_from_slice(&[6, 0, 2, 0, 0]);
        let codec = Codec::default();
        assert_eq!(
            codec.decode(&mut b),
            Ok(Some(Frame::Response {
                msg_id: 1,
                status: 200
            }))
        );
        assert_eq!(
            codec.decode(&mut b),
            Ok(Some(Frame::message(command::PING, 2, bytes::Bytes::new())))
        );
        assert_eq!(codec.decode(&mut b), Ok(None));
    }

    #[test]
    fn too_large_detected_from_header_alone() {
        let codec = Codec::new(10);
        let mut b = BytesMut::from(&[20u8, 0, 1, 0, 11][..]);
        assert_eq!(
            codec.decode(&mut b),
            Err(ProtocolError::BodyTooLarge { len: 11, max: 10 })
        );
        assert_eq!(
            codec.frame_len(&b),
            Err(ProtocolError::BodyTooLarge { len: 11, max: 10 })
        );
        let mut ok = BytesMut::from(&[20u8, 0, 1, 0, 10][..]);
        assert_eq!(codec.decode(&mut ok), Ok(None));
        assert_eq!(codec.frame_len(&ok), Ok(Some(15)));
        // A response's status is not a length: 200 > 10 is fine.
        let mut r = BytesMut::from(&[0u8, 0, 1, 0, 200][..]);
        assert!(codec.decode(&mut r).unwrap().is_some());
    }

    #[test]
    fn zero_id_rejected_unless_allowed() {
        let mut b = BytesMut::from(&[6u8, 0, 0, 0, 0][..]);
        assert_eq!(
            Codec::default().decode(&mut b),
            Err(ProtocolError::ZeroMessageId)
        );
        assert_eq!(b.len(), 5);
        let lax = Codec::default().with_zero_msg_id(true);
        assert!(lax.allows_zero_msg_id());
        assert_eq!(
            lax.decode(&mut b),
            Ok(Some(Frame::message(command::PING, 0, bytes::Bytes::new())))
        );
    }

    #[test]
    fn max_body_zero_allows_empty_bodies() {
        let codec = Codec::new(0);
        assert_eq!(codec.max_body(), 0);
        let mut b = BytesMut::from(&[6u8, 0, 1, 0, 0][..]);
        assert!(codec.decode(&mut b).unwrap().is_some());
    }
}
