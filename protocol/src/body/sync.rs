//! `HARDWARE_SYNC` (16) bodies: empty (sync all) or `vr\0<pin>[\0<pin>…]`.

use bytes::{BufMut, BytesMut};

use super::{fields, malformed, parse_pin, put_decimal, split_field};
use crate::command::HARDWARE_SYNC;
use crate::error::Result;
use crate::frame::encode_with;

/// A parsed `HARDWARE_SYNC` body.
#[derive(Debug, Clone, PartialEq)]
pub enum HardwareSync<'a> {
    /// Empty body: replay every stored value (`Blynk.syncAll()`).
    All,
    /// `vr\0<pin>…`: replay the listed virtual pins. `pins` is the raw NUL-joined tail (validated;
    /// may be empty — `blynklib` sends a bare `vr` for `virtual_sync()` without pins).
    Virtual {
        /// Raw `pin\0pin…` tail.
        pins: &'a [u8],
    },
}

impl<'a> HardwareSync<'a> {
    /// Parses a `HARDWARE_SYNC` body. `dr`/`ar` syncs (legacy) are rejected as malformed.
    pub fn parse(body: &'a [u8]) -> Result<Self> {
        if body.is_empty() {
            return Ok(HardwareSync::All);
        }
        let (op, rest) = split_field(body);
        if op != b"vr" {
            return Err(malformed(
                HARDWARE_SYNC,
                "sync must be empty or start with vr",
            ));
        }
        let pins = rest.unwrap_or_default();
        for pin in fields(pins) {
            parse_pin(pin)?;
        }
        Ok(HardwareSync::Virtual { pins })
    }

    /// The requested pins (none for [`HardwareSync::All`]). Parsing already validated them, so
    /// for a parsed value every item is `Ok`.
    pub fn pins(&self) -> impl Iterator<Item = Result<u8>> + 'a {
        let pins: &'a [u8] = match self {
            HardwareSync::All => &[],
            HardwareSync::Virtual { pins } => pins,
        };
        fields(pins).map(parse_pin)
    }

    /// Appends the body bytes.
    pub fn encode_body(&self, dst: &mut BytesMut) {
        if let HardwareSync::Virtual { pins } = self {
            dst.put_slice(b"vr");
            if !pins.is_empty() {
                dst.put_u8(0);
                dst.put_slice(pins);
            }
        }
    }

    /// Appends a whole `HARDWARE_SYNC` frame with this body.
    pub fn encode_frame(&self, msg_id: u16, dst: &mut BytesMut) {
        encode_with(HARDWARE_SYNC, msg_id, dst, |d| self.encode_body(d));
    }

    /// Appends a `vr\0<pin>…` body for the given pins.
    pub fn encode_pins(pins: &[u8], dst: &mut BytesMut) {
        dst.put_slice(b"vr");
        for pin in pins {
            dst.put_u8(0);
            put_decimal(dst, u64::from(*pin));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProtocolError;

    #[test]
    fn parses() {
        assert_eq!(HardwareSync::parse(b"").unwrap(), HardwareSync::All);
        assert_eq!(HardwareSync::All.pins().count(), 0);
        let s = HardwareSync::parse(b"vr\x001\x0022\x00255").unwrap();
        assert_eq!(
            s.pins().collect::<Result<Vec<_>>>().unwrap(),
            vec![1, 22, 255]
        );
        let bare = HardwareSync::parse(b"vr").unwrap();
        assert_eq!(bare, HardwareSync::Virtual { pins: b"" });
        assert_eq!(bare.pins().count(), 0);
        assert_eq!(
            HardwareSync::parse(b"vr\x00300"),
            Err(ProtocolError::InvalidPin)
        );
        assert!(matches!(
            HardwareSync::parse(b"dr\x001"),
            Err(ProtocolError::MalformedBody { command: 16, .. })
        ));
    }

    #[test]
    fn encodes() {
        let mut b = BytesMut::new();
        HardwareSync::encode_pins(&[1, 2], &mut b);
        assert_eq!(&b[..], b"vr\x001\x002");
        assert_eq!(
            HardwareSync::parse(&b).unwrap(),
            HardwareSync::Virtual { pins: b"1\x002" }
        );
        let mut f = BytesMut::new();
        HardwareSync::All.encode_frame(3, &mut f);
        assert_eq!(&f[..], &[16, 0, 3, 0, 0]);
    }
}
