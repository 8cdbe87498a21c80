//! `BRIDGE` (15) bodies sent by a device: `<bridgePin>\0i\0<token>` (init) or
//! `<bridgePin>\0<op>\0<pin>\0<value…>` (forward). A server forwards the hardware part to the
//! target device as a `BRIDGE` frame whose body is a plain [`Hardware`] body.

use bytes::{BufMut, BytesMut};

use super::{Hardware, malformed, parse_pin, put_decimal, split_field, strip_nul};
use crate::command::BRIDGE;
use crate::error::Result;
use crate::frame::encode_with;

/// A parsed device-to-server `BRIDGE` body.
#[derive(Debug, Clone, PartialEq)]
pub enum Bridge<'a> {
    /// Bind `bridge_pin` to the device owning `token`.
    Init {
        /// Virtual pin of the bridge widget.
        bridge_pin: u8,
        /// Target device's auth token (never empty, no NUL).
        token: &'a [u8],
    },
    /// Forward a hardware command to the bound device.
    Forward {
        /// Virtual pin of the bridge widget.
        bridge_pin: u8,
        /// A valid [`Hardware`] body (`vw\0<pin>\0<value>`…), raw.
        hardware_body: &'a [u8],
    },
}

impl<'a> Bridge<'a> {
    /// Parses a device-to-server `BRIDGE` body; the forwarded part must be a valid hardware body.
    pub fn parse(body: &'a [u8]) -> Result<Self> {
        let (pin, rest) = split_field(body);
        let bridge_pin = parse_pin(pin)?;
        let rest = rest.ok_or(malformed(BRIDGE, "bridge without a command"))?;
        match split_field(rest) {
            (b"i", token) => {
                let token = strip_nul(token.unwrap_or_default());
                if token.is_empty() || token.contains(&0) {
                    return Err(malformed(BRIDGE, "bridge init needs one token"));
                }
                Ok(Bridge::Init { bridge_pin, token })
            }
            _ => {
                Hardware::parse(rest)?;
                Ok(Bridge::Forward {
                    bridge_pin,
                    hardware_body: rest,
                })
            }
        }
    }

    /// The forwarded hardware command (`None` for `Init`).
    pub fn hardware(&self) -> Option<Result<Hardware<'a>>> {
        match self {
            Bridge::Init { .. } => None,
            Bridge::Forward { hardware_body, .. } => Some(Hardware::parse(hardware_body)),
        }
    }

    /// Appends the body bytes.
    pub fn encode_body(&self, dst: &mut BytesMut) {
        match self {
            Bridge::Init { bridge_pin, token } => {
                put_decimal(dst, u64::from(*bridge_pin));
                dst.put_slice(b"\0i\0");
                dst.put_slice(token);
            }
            Bridge::Forward {
                bridge_pin,
                hardware_body,
            } => {
                put_decimal(dst, u64::from(*bridge_pin));
                dst.put_u8(0);
                dst.put_slice(hardware_body);
            }
        }
    }

    /// Appends a whole `BRIDGE` frame with this body.
    pub fn encode_frame(&self, msg_id: u16, dst: &mut BytesMut) {
        encode_with(BRIDGE, msg_id, dst, |d| self.encode_body(d));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProtocolError;

    #[test]
    fn parses_and_encodes() {
        let token = b"4ae3851817194e2596cf1b7103603ef8";
        let mut body = b"64\x00i\x00".to_vec();
        body.extend_from_slice(token);
        let b = Bridge::parse(&body).unwrap();
        assert_eq!(
            b,
            Bridge::Init {
                bridge_pin: 64,
                token
            }
        );
        assert!(b.hardware().is_none());
        let f = Bridge::parse(b"64\x00vw\x005\x00on").unwrap();
        assert_eq!(
            f,
            Bridge::Forward {
                bridge_pin: 64,
                hardware_body: b"vw\x005\x00on"
            }
        );
        assert_eq!(
            f.hardware().unwrap().unwrap(),
            Hardware::VirtualWrite {
                pin: 5,
                values: b"on"
            }
        );
        for v in [b, f] {
            let mut out = BytesMut::new();
            v.encode_body(&mut out);
            assert_eq!(Bridge::parse(&out).unwrap(), v);
        }
        assert!(Bridge::parse(b"64").is_err());
        assert!(Bridge::parse(b"64\x00i").is_err());
        assert!(Bridge::parse(b"64\x00zz\x001").is_err());
        assert_eq!(
            Bridge::parse(b"x\x00i\x00t"),
            Err(ProtocolError::InvalidPin)
        );
    }
}
