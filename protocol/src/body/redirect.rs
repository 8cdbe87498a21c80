//! `REDIRECT` (41) bodies: `<host>[\0<port>]`.

use bytes::{BufMut, BytesMut};

use super::{malformed, parse_u64, put_decimal, split_field, strip_nul};
use crate::command::REDIRECT;
use crate::error::{ProtocolError, Result};
use crate::frame::encode_with;

/// Tells a device to reconnect to another server.
#[derive(Debug, Clone, PartialEq)]
pub struct Redirect<'a> {
    /// Host name or address (never empty, no NUL). Devices copy at most 63 characters.
    pub host: &'a [u8],
    /// Port; when absent the device uses its default port.
    pub port: Option<u16>,
}

impl<'a> Redirect<'a> {
    /// Parses a `REDIRECT` body. An empty port field counts as absent.
    pub fn parse(body: &'a [u8]) -> Result<Self> {
        let (host, rest) = split_field(strip_nul(body));
        if host.is_empty() {
            return Err(malformed(REDIRECT, "empty redirect host"));
        }
        let port = match rest {
            None | Some(b"") => None,
            Some(p) => {
                let n = parse_u64(p, REDIRECT)?;
                Some(
                    u16::try_from(n)
                        .map_err(|_| ProtocolError::InvalidNumber { command: REDIRECT })?,
                )
            }
        };
        Ok(Redirect { host, port })
    }

    /// Appends the body bytes.
    pub fn encode_body(&self, dst: &mut BytesMut) {
        dst.put_slice(self.host);
        if let Some(port) = self.port {
            dst.put_u8(0);
            put_decimal(dst, u64::from(port));
        }
    }

    /// Appends a whole `REDIRECT` frame with this body.
    pub fn encode_frame(&self, msg_id: u16, dst: &mut BytesMut) {
        encode_with(REDIRECT, msg_id, dst, |d| self.encode_body(d));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_encodes() {
        assert_eq!(
            Redirect::parse(b"fra1.example\x00443").unwrap(),
            Redirect {
                host: b"fra1.example",
                port: Some(443)
            }
        );
        assert_eq!(
            Redirect::parse(b"h").unwrap(),
            Redirect {
                host: b"h",
                port: None
            }
        );
        assert_eq!(
            Redirect::parse(b"h\x00").unwrap(),
            Redirect {
                host: b"h",
                port: None
            }
        );
        assert_eq!(
            Redirect::parse(b"h\x0070000"),
            Err(ProtocolError::InvalidNumber { command: 41 })
        );
        assert!(Redirect::parse(b"").is_err());
        let r = Redirect {
            host: b"10.0.0.1",
            port: Some(8080),
        };
        let mut b = BytesMut::new();
        r.encode_body(&mut b);
        assert_eq!(Redirect::parse(&b).unwrap(), r);
    }
}
