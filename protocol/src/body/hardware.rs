//! `HARDWARE` (20) bodies: `<op>\0<pin>[\0<value>…]`.

use bytes::{BufMut, BytesMut};

use super::{fields, malformed, parse_pin, put_decimal, split_field, strip_nul};
use crate::command::HARDWARE;
use crate::error::Result;
use crate::frame::encode_with;

/// A parsed `HARDWARE` body. The same body shape is used by `BRIDGE` (15) messages sent to a
/// device.
#[derive(Debug, Clone, PartialEq)]
pub enum Hardware<'a> {
    /// `vw\0<pin>\0<v1>[\0<v2>…]`: `values` is the raw tail after the pin, still NUL-joined when
    /// several values were written (split it with [`super::split_values`]). At least one value
    /// field is required (it may be the empty string: `vw\0<pin>\0`).
    VirtualWrite {
        /// Virtual pin.
        pin: u8,
        /// Raw value tail.
        values: &'a [u8],
    },
    /// `vr\0<pin>`: legacy read request (server → device).
    VirtualRead {
        /// Virtual pin.
        pin: u8,
    },
    /// `dw\0<pin>\0<level>`.
    DigitalWrite {
        /// Digital pin.
        pin: u8,
        /// Raw value tail (normally `0` or `1`).
        value: &'a [u8],
    },
    /// `dr\0<pin>`.
    DigitalRead {
        /// Digital pin.
        pin: u8,
    },
    /// `aw\0<pin>\0<value>`.
    AnalogWrite {
        /// Analog pin.
        pin: u8,
        /// Raw value tail.
        value: &'a [u8],
    },
    /// `ar\0<pin>`.
    AnalogRead {
        /// Analog pin.
        pin: u8,
    },
    /// `pm\0<pin>\0<mode>[\0<pin>\0<mode>…]`: `pairs` is the raw tail after `pm` (validated: an
    /// even number of fields, every pin valid). Iterate with [`Hardware::pin_modes`].
    PinMode {
        /// Raw `pin\0mode…` tail.
        pairs: &'a [u8],
    },
}

impl<'a> Hardware<'a> {
    /// Parses a `HARDWARE` (or `BRIDGE` forward) body.
    pub fn parse(body: &'a [u8]) -> Result<Self> {
        let (op, rest) = split_field(body);
        match op {
            b"vw" | b"dw" | b"aw" => {
                let rest = rest.ok_or(malformed(HARDWARE, "write without a pin"))?;
                let (pin, value) = split_field(rest);
                let pin = parse_pin(pin)?;
                let value = value.ok_or(malformed(HARDWARE, "write without a value"))?;
                Ok(match op {
                    b"vw" => Hardware::VirtualWrite { pin, values: value },
                    b"dw" => Hardware::DigitalWrite { pin, value },
                    _ => Hardware::AnalogWrite { pin, value },
                })
            }
            b"vr" | b"dr" | b"ar" => {
                let rest = rest.ok_or(malformed(HARDWARE, "read without a pin"))?;
                let pin_field = strip_nul(rest);
                if pin_field.contains(&0) {
                    return Err(malformed(HARDWARE, "read takes exactly one pin"));
                }
                let pin = parse_pin(pin_field)?;
                Ok(match op {
                    b"vr" => Hardware::VirtualRead { pin },
                    b"dr" => Hardware::DigitalRead { pin },
                    _ => Hardware::AnalogRead { pin },
                })
            }
            b"pm" => {
                let pairs = rest.unwrap_or_default();
                for pair in PinModes::new(pairs) {
                    pair?;
                }
                Ok(Hardware::PinMode { pairs })
            }
            _ => Err(malformed(HARDWARE, "unknown hardware operation")),
        }
    }

    /// The two-letter operation (`vw`, `vr`, `dw`, `dr`, `aw`, `ar`, `pm`).
    pub fn op(&self) -> &'static [u8] {
        match self {
            Hardware::VirtualWrite { .. } => b"vw",
            Hardware::VirtualRead { .. } => b"vr",
            Hardware::DigitalWrite { .. } => b"dw",
            Hardware::DigitalRead { .. } => b"dr",
            Hardware::AnalogWrite { .. } => b"aw",
            Hardware::AnalogRead { .. } => b"ar",
            Hardware::PinMode { .. } => b"pm",
        }
    }

    /// The pin addressed, `None` for `pm`.
    pub fn pin(&self) -> Option<u8> {
        match self {
            Hardware::VirtualWrite { pin, .. }
            | Hardware::VirtualRead { pin }
            | Hardware::DigitalWrite { pin, .. }
            | Hardware::DigitalRead { pin }
            | Hardware::AnalogWrite { pin, .. }
            | Hardware::AnalogRead { pin } => Some(*pin),
            Hardware::PinMode { .. } => None,
        }
    }

    /// Iterates the `(pin, mode)` pairs of a `pm` tail.
    pub fn pin_modes(pairs: &'a [u8]) -> PinModes<'a> {
        PinModes::new(pairs)
    }

    /// Appends the body bytes.
    pub fn encode_body(&self, dst: &mut BytesMut) {
        dst.put_slice(self.op());
        match self {
            Hardware::VirtualWrite { pin, values: tail }
            | Hardware::DigitalWrite { pin, value: tail }
            | Hardware::AnalogWrite { pin, value: tail } => {
                dst.put_u8(0);
                put_decimal(dst, u64::from(*pin));
                dst.put_u8(0);
                dst.put_slice(tail);
            }
            Hardware::VirtualRead { pin }
            | Hardware::DigitalRead { pin }
            | Hardware::AnalogRead { pin } => {
                dst.put_u8(0);
                put_decimal(dst, u64::from(*pin));
            }
            Hardware::PinMode { pairs } => {
                if !pairs.is_empty() {
                    dst.put_u8(0);
                    dst.put_slice(pairs);
                }
            }
        }
    }

    /// Appends a whole `HARDWARE` frame with this body.
    pub fn encode_frame(&self, msg_id: u16, dst: &mut BytesMut) {
        encode_with(HARDWARE, msg_id, dst, |d| self.encode_body(d));
    }

    /// Appends a `vw\0<pin>\0<v1>\0<v2>…` body built from separate values.
    pub fn encode_virtual_write(pin: u8, values: &[&[u8]], dst: &mut BytesMut) {
        dst.put_slice(b"vw\0");
        put_decimal(dst, u64::from(pin));
        for v in values {
            dst.put_u8(0);
            dst.put_slice(v);
        }
    }
}

/// Iterator over the `(pin, mode)` pairs of a `pm` body; see [`Hardware::pin_modes`].
#[derive(Debug, Clone)]
pub struct PinModes<'a> {
    fields: super::Fields<'a>,
    failed: bool,
}

impl<'a> PinModes<'a> {
    fn new(pairs: &'a [u8]) -> Self {
        PinModes {
            fields: fields(pairs),
            failed: false,
        }
    }
}

impl<'a> Iterator for PinModes<'a> {
    type Item = Result<(u8, &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let pin = self.fields.next()?;
        let item = match (parse_pin(pin), self.fields.next()) {
            (Ok(pin), Some(mode)) if !mode.is_empty() => Ok((pin, mode)),
            (Err(e), _) => Err(e),
            (Ok(_), _) => Err(malformed(HARDWARE, "pin mode without a mode")),
        };
        self.failed = item.is_err();
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProtocolError;

    fn roundtrip(h: &Hardware<'_>) {
        let mut b = BytesMut::new();
        h.encode_body(&mut b);
        assert_eq!(&Hardware::parse(&b).unwrap(), h);
    }

    #[test]
    fn parses_every_op() {
        assert_eq!(
            Hardware::parse(b"vw\x001\x0023.5").unwrap(),
            Hardware::VirtualWrite {
                pin: 1,
                values: b"23.5"
            }
        );
        assert_eq!(
            Hardware::parse(b"vw\x003\x00hello\x00123\x0012.3400000").unwrap(),
            Hardware::VirtualWrite {
                pin: 3,
                values: b"hello\x00123\x0012.3400000"
            }
        );
        assert_eq!(
            Hardware::parse(b"vw\x001\x00").unwrap(),
            Hardware::VirtualWrite {
                pin: 1,
                values: b""
            }
        );
        assert_eq!(
            Hardware::parse(b"vr\x007").unwrap(),
            Hardware::VirtualRead { pin: 7 }
        );
        assert_eq!(
            Hardware::parse(b"vr\x007\x00").unwrap(),
            Hardware::VirtualRead { pin: 7 }
        );
        assert_eq!(
            Hardware::parse(b"dw\x0013\x001").unwrap(),
            Hardware::DigitalWrite {
                pin: 13,
                value: b"1"
            }
        );
        assert_eq!(
            Hardware::parse(b"dr\x0013").unwrap(),
            Hardware::DigitalRead { pin: 13 }
        );
        assert_eq!(
            Hardware::parse(b"aw\x005\x00512").unwrap(),
            Hardware::AnalogWrite {
                pin: 5,
                value: b"512"
            }
        );
        assert_eq!(
            Hardware::parse(b"ar\x000").unwrap(),
            Hardware::AnalogRead { pin: 0 }
        );
        let pm = Hardware::parse(b"pm\x001\x00out\x002\x00in").unwrap();
        let Hardware::PinMode { pairs } = pm else {
            panic!()
        };
        let modes: Vec<_> = Hardware::pin_modes(pairs).collect::<Result<_>>().unwrap();
        assert_eq!(modes, vec![(1, &b"out"[..]), (2, &b"in"[..])]);
        assert_eq!(
            Hardware::parse(b"pm").unwrap(),
            Hardware::PinMode { pairs: b"" }
        );
    }

    #[test]
    fn rejects_malformed() {
        let bad: &[&[u8]] = &[
            b"",
            b"vw",
            b"vw\x001",
            b"vr",
            b"vr\x001\x002",
            b"xx\x001",
            b"pm\x001",
            b"pm\x001\x00",
        ];
        for b in bad {
            assert!(
                matches!(
                    Hardware::parse(b),
                    Err(ProtocolError::MalformedBody { command: 20, .. })
                ),
                "{b:?}"
            );
        }
        assert_eq!(
            Hardware::parse(b"vw\x00256\x001"),
            Err(ProtocolError::InvalidPin)
        );
        assert_eq!(
            Hardware::parse(b"vw\x00V1\x001"),
            Err(ProtocolError::InvalidPin)
        );
        assert_eq!(Hardware::parse(b"dr\x00"), Err(ProtocolError::InvalidPin));
        assert_eq!(
            Hardware::parse(b"pm\x00x\x00in"),
            Err(ProtocolError::InvalidPin)
        );
    }

    #[test]
    fn encodes_and_roundtrips() {
        let mut b = BytesMut::new();
        Hardware::VirtualWrite {
            pin: 1,
            values: b"100",
        }
        .encode_frame(3, &mut b);
        assert_eq!(&b[..], b"\x14\x00\x03\x00\x08vw\x001\x00100");
        for h in [
            Hardware::VirtualWrite {
                pin: 255,
                values: b"a\0b",
            },
            Hardware::VirtualRead { pin: 0 },
            Hardware::DigitalWrite {
                pin: 2,
                value: b"1",
            },
            Hardware::DigitalRead { pin: 2 },
            Hardware::AnalogWrite {
                pin: 3,
                value: b"7",
            },
            Hardware::AnalogRead { pin: 3 },
            Hardware::PinMode { pairs: b"1\0out" },
            Hardware::PinMode { pairs: b"" },
        ] {
            roundtrip(&h);
        }
        let mut c = BytesMut::new();
        Hardware::encode_virtual_write(4, &[b"hello", b"123"], &mut c);
        assert_eq!(&c[..], b"vw\x004\x00hello\x00123");
        assert_eq!(Hardware::VirtualRead { pin: 9 }.pin(), Some(9));
        assert_eq!(Hardware::PinMode { pairs: b"" }.pin(), None);
    }
}
