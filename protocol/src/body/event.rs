//! `EVENT_LOG` (64) and `EVENT_CLEAR` (65) bodies.

use bytes::{BufMut, BytesMut};

use super::{malformed, split_field, strip_nul};
use crate::command::{EVENT_CLEAR, EVENT_LOG};
use crate::error::Result;
use crate::frame::encode_with;

/// `code` or `code\0description` (`Blynk.logEvent`).
#[derive(Debug, Clone, PartialEq)]
pub struct LogEvent<'a> {
    /// Event code (never empty, no NUL).
    pub code: &'a [u8],
    /// Raw description tail, if present (may be empty).
    pub description: Option<&'a [u8]>,
}

impl<'a> LogEvent<'a> {
    /// Parses an `EVENT_LOG` body.
    pub fn parse(body: &'a [u8]) -> Result<Self> {
        let (code, description) = split_field(body);
        if code.is_empty() {
            return Err(malformed(EVENT_LOG, "empty event code"));
        }
        Ok(LogEvent { code, description })
    }

    /// Appends the body bytes.
    pub fn encode_body(&self, dst: &mut BytesMut) {
        dst.put_slice(self.code);
        if let Some(d) = self.description {
            dst.put_u8(0);
            dst.put_slice(d);
        }
    }

    /// Appends a whole `EVENT_LOG` frame with this body.
    pub fn encode_frame(&self, msg_id: u16, dst: &mut BytesMut) {
        encode_with(EVENT_LOG, msg_id, dst, |d| self.encode_body(d));
    }
}

/// `code` (resolve the most recent) or `code\0all` (`Blynk.resolveEvent` / `resolveAllEvents`).
#[derive(Debug, Clone, PartialEq)]
pub struct ResolveEvent<'a> {
    /// Event code (never empty, no NUL).
    pub code: &'a [u8],
    /// `true` for `code\0all`.
    pub all: bool,
}

impl<'a> ResolveEvent<'a> {
    /// Parses an `EVENT_CLEAR` body (one trailing NUL tolerated).
    pub fn parse(body: &'a [u8]) -> Result<Self> {
        let (code, rest) = split_field(strip_nul(body));
        if code.is_empty() {
            return Err(malformed(EVENT_CLEAR, "empty event code"));
        }
        let all = match rest {
            None => false,
            Some(b"all") => true,
            Some(_) => return Err(malformed(EVENT_CLEAR, "second field must be `all`")),
        };
        Ok(ResolveEvent { code, all })
    }

    /// Appends the body bytes.
    pub fn encode_body(&self, dst: &mut BytesMut) {
        dst.put_slice(self.code);
        if self.all {
            dst.put_slice(b"\0all");
        }
    }

    /// Appends a whole `EVENT_CLEAR` frame with this body.
    pub fn encode_frame(&self, msg_id: u16, dst: &mut BytesMut) {
        encode_with(EVENT_CLEAR, msg_id, dst, |d| self.encode_body(d));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProtocolError;

    #[test]
    fn log_event() {
        assert_eq!(
            LogEvent::parse(b"overheat").unwrap(),
            LogEvent {
                code: b"overheat",
                description: None
            }
        );
        let e = LogEvent::parse(b"overheat\x00Temp is 90\xc2\xb0C").unwrap();
        assert_eq!(e.description, Some(&b"Temp is 90\xc2\xb0C"[..]));
        let mut b = BytesMut::new();
        e.encode_body(&mut b);
        assert_eq!(LogEvent::parse(&b).unwrap(), e);
        assert!(matches!(
            LogEvent::parse(b""),
            Err(ProtocolError::MalformedBody { command: 64, .. })
        ));
        assert!(LogEvent::parse(b"\x00x").is_err());
    }

    #[test]
    fn resolve_event() {
        assert_eq!(
            ResolveEvent::parse(b"x").unwrap(),
            ResolveEvent {
                code: b"x",
                all: false
            }
        );
        assert_eq!(
            ResolveEvent::parse(b"x\x00all").unwrap(),
            ResolveEvent {
                code: b"x",
                all: true
            }
        );
        assert_eq!(
            ResolveEvent::parse(b"x\x00all\x00").unwrap(),
            ResolveEvent {
                code: b"x",
                all: true
            }
        );
        assert!(ResolveEvent::parse(b"x\x00some").is_err());
        assert!(ResolveEvent::parse(b"").is_err());
        let mut b = BytesMut::new();
        ResolveEvent {
            code: b"x",
            all: true,
        }
        .encode_body(&mut b);
        assert_eq!(&b[..], b"x\x00all");
    }
}
