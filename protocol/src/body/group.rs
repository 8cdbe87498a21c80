//! `GROUP` (21) bodies: `b`, `t\0<unix ms>`, `e`.

use bytes::{BufMut, BytesMut};

use super::{malformed, parse_u64, put_decimal, split_field, strip_nul};
use crate::command::GROUP;
use crate::error::Result;
use crate::frame::encode_with;

/// Begin or end a group of writes that share one timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// `b`: begin; the server assigns one timestamp to the following writes.
    Begin,
    /// `t\0<unix ms>`: begin with an explicit UTC timestamp in milliseconds.
    BeginAt {
        /// Unix time in milliseconds.
        unix_ms: u64,
    },
    /// `e`: end of the group.
    End,
}

impl Group {
    /// Parses a `GROUP` body (one trailing NUL tolerated).
    pub fn parse(body: &[u8]) -> Result<Self> {
        match split_field(body) {
            (b"b", None | Some(b"")) => Ok(Group::Begin),
            (b"e", None | Some(b"")) => Ok(Group::End),
            (b"t", Some(ts)) => Ok(Group::BeginAt {
                unix_ms: parse_u64(strip_nul(ts), GROUP)?,
            }),
            _ => Err(malformed(GROUP, "group body must be b, e or t\\0<ms>")),
        }
    }

    /// Appends the body bytes.
    pub fn encode_body(&self, dst: &mut BytesMut) {
        match self {
            Group::Begin => dst.put_u8(b'b'),
            Group::End => dst.put_u8(b'e'),
            Group::BeginAt { unix_ms } => {
                dst.put_slice(b"t\0");
                put_decimal(dst, *unix_ms);
            }
        }
    }

    /// Appends a whole `GROUP` frame with this body.
    pub fn encode_frame(&self, msg_id: u16, dst: &mut BytesMut) {
        encode_with(GROUP, msg_id, dst, |d| self.encode_body(d));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProtocolError;

    #[test]
    fn parses_and_encodes() {
        assert_eq!(Group::parse(b"b"), Ok(Group::Begin));
        assert_eq!(Group::parse(b"e\x00"), Ok(Group::End));
        assert_eq!(
            Group::parse(b"t\x001700000000123"),
            Ok(Group::BeginAt {
                unix_ms: 1_700_000_000_123
            })
        );
        assert_eq!(
            Group::parse(b"t\x00x"),
            Err(ProtocolError::InvalidNumber { command: 21 })
        );
        for bad in [&b""[..], b"t", b"x", b"b\x00x", b"bb"] {
            assert!(
                matches!(Group::parse(bad), Err(ProtocolError::MalformedBody { .. })),
                "{bad:?}"
            );
        }
        for g in [Group::Begin, Group::End, Group::BeginAt { unix_ms: 0 }] {
            let mut b = BytesMut::new();
            g.encode_body(&mut b);
            assert_eq!(Group::parse(&b), Ok(g));
        }
    }
}
