//! `PROPERTY` (19) bodies: `<pin>\0<property>\0<value>[\0<value>…]`, and the multi-pin form
//! `<pin>\0<pin>…\0<property>\0<value>…`.

use bytes::{BufMut, BytesMut};

use super::{fields, malformed, parse_pin, put_decimal, split_field};
use crate::command::PROPERTY;
use crate::error::Result;
use crate::frame::encode_with;

/// A single-pin property update, e.g. `0\0color\0#D3435C` or `1\0labels\0A\0B\0C`.
#[derive(Debug, Clone, PartialEq)]
pub struct Property<'a> {
    /// Virtual pin.
    pub pin: u8,
    /// Property name (`label`, `color`, `isDisabled`, …); never empty, never all digits.
    pub name: &'a [u8],
    /// Raw value tail (NUL-joined when several); at least one (possibly empty) value.
    pub values: &'a [u8],
}

fn is_number(f: &[u8]) -> bool {
    !f.is_empty() && f.iter().all(u8::is_ascii_digit)
}

impl<'a> Property<'a> {
    /// Parses a single-pin property body. A body whose second field is a number is the multi-pin
    /// form and is rejected here: use [`MultiProperty::parse`] (or [`super::Body::parse`], which
    /// picks the right one).
    pub fn parse(body: &'a [u8]) -> Result<Self> {
        let (pin, rest) = split_field(body);
        let pin = parse_pin(pin)?;
        let rest = rest.ok_or(malformed(PROPERTY, "property without a name"))?;
        let (name, values) = split_field(rest);
        if name.is_empty() {
            return Err(malformed(PROPERTY, "empty property name"));
        }
        if is_number(name) {
            return Err(malformed(PROPERTY, "multi-pin property; use MultiProperty"));
        }
        let values = values.ok_or(malformed(PROPERTY, "property without a value"))?;
        Ok(Property { pin, name, values })
    }

    /// Appends the body bytes.
    pub fn encode_body(&self, dst: &mut BytesMut) {
        put_decimal(dst, u64::from(self.pin));
        dst.put_u8(0);
        dst.put_slice(self.name);
        dst.put_u8(0);
        dst.put_slice(self.values);
    }

    /// Appends a whole `PROPERTY` frame with this body.
    pub fn encode_frame(&self, msg_id: u16, dst: &mut BytesMut) {
        encode_with(PROPERTY, msg_id, dst, |d| self.encode_body(d));
    }
}

/// A property update addressed to several pins: `0\01\02\0isDisabled\0true`. (Shape inferred from
/// the C++ library's `setProperty` templates; the leading numeric fields are the pins.)
#[derive(Debug, Clone, PartialEq)]
pub struct MultiProperty<'a> {
    /// Raw NUL-joined pin list (validated, at least one pin).
    pub pins: &'a [u8],
    /// Property name (never empty, never all digits).
    pub name: &'a [u8],
    /// Raw value tail.
    pub values: &'a [u8],
}

impl<'a> MultiProperty<'a> {
    /// Parses a property body with one or more leading pins.
    pub fn parse(body: &'a [u8]) -> Result<Self> {
        let mut pins_end = 0;
        let mut rest = body;
        let mut npins = 0;
        loop {
            let (field, tail) = split_field(rest);
            if !is_number(field) {
                break;
            }
            parse_pin(field)?;
            npins += 1;
            let Some(tail) = tail else {
                return Err(malformed(PROPERTY, "property without a name"));
            };
            pins_end += field.len() + usize::from(npins > 1);
            rest = tail;
        }
        if npins == 0 {
            return Err(parse_pin(split_field(body).0)
                .err()
                .unwrap_or(malformed(PROPERTY, "property without a pin")));
        }
        let (name, values) = split_field(rest);
        if name.is_empty() {
            return Err(malformed(PROPERTY, "empty property name"));
        }
        let values = values.ok_or(malformed(PROPERTY, "property without a value"))?;
        Ok(MultiProperty {
            pins: &body[..pins_end],
            name,
            values,
        })
    }

    /// The pins addressed.
    pub fn pins(&self) -> impl Iterator<Item = Result<u8>> + 'a {
        fields(self.pins).map(parse_pin)
    }

    /// Appends the body bytes.
    pub fn encode_body(&self, dst: &mut BytesMut) {
        dst.put_slice(self.pins);
        dst.put_u8(0);
        dst.put_slice(self.name);
        dst.put_u8(0);
        dst.put_slice(self.values);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProtocolError;

    #[test]
    fn single() {
        let p = Property::parse(b"0\x00color\x00#D3435C").unwrap();
        assert_eq!(
            p,
            Property {
                pin: 0,
                name: b"color",
                values: b"#D3435C"
            }
        );
        let p = Property::parse(b"1\x00url\x001\x00https://image1.jpg").unwrap();
        assert_eq!(p.name, b"url");
        assert_eq!(p.values, b"1\x00https://image1.jpg");
        let mut b = BytesMut::new();
        p.encode_body(&mut b);
        assert_eq!(Property::parse(&b).unwrap(), p);
        for bad in [
            &b"0"[..],
            b"0\x00",
            b"0\x00label",
            b"0\x001\x00isDisabled\x00true",
        ] {
            assert!(
                matches!(
                    Property::parse(bad),
                    Err(ProtocolError::MalformedBody { .. })
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            Property::parse(b"x\x00label\x00a"),
            Err(ProtocolError::InvalidPin)
        );
    }

    #[test]
    fn multi() {
        let m = MultiProperty::parse(b"0\x001\x002\x00isDisabled\x00true").unwrap();
        assert_eq!(m.pins, b"0\x001\x002");
        assert_eq!(m.pins().collect::<Result<Vec<_>>>().unwrap(), vec![0, 1, 2]);
        assert_eq!(m.name, b"isDisabled");
        assert_eq!(m.values, b"true");
        let mut b = BytesMut::new();
        m.encode_body(&mut b);
        assert_eq!(MultiProperty::parse(&b).unwrap(), m);
        let one = MultiProperty::parse(b"7\x00label\x00x").unwrap();
        assert_eq!(one.pins, b"7");
        assert_eq!(
            MultiProperty::parse(b"1\x00300\x00label\x00x"),
            Err(ProtocolError::InvalidPin)
        );
        assert_eq!(
            MultiProperty::parse(b"label\x00x"),
            Err(ProtocolError::InvalidPin)
        );
        assert!(MultiProperty::parse(b"1\x002").is_err());
        assert!(MultiProperty::parse(b"1\x002\x00").is_err());
    }
}
