//! Parsers and encoders for frame bodies.
//!
//! Bodies are text fields separated by single NUL bytes. Parsers borrow from the frame body (no
//! copy, no allocation except [`DeviceInfo`], which is parsed once per session) and validate
//! eagerly, so a parsed value is well-formed. Encoders append the body bytes to a `BytesMut`;
//! `encode_frame` methods write a whole frame.
//!
//! Conventions shared by every parser:
//! * pins are decimal numbers 0–255 without a `V` prefix (1–3 digits, leading zeros allowed);
//!   anything else is [`ProtocolError::InvalidPin`];
//! * where a body ends with a free-form tail (values, descriptions, URLs), the tail is returned
//!   raw, NULs included, exactly as received;
//! * [`fields`] tolerates one trailing NUL (Linux builds of the C++ library send one after the info
//!   pairs), which means a trailing *empty* field cannot be told apart from that terminator.

mod bridge;
mod dispatch;
mod event;
mod group;
mod hardware;
mod info;
mod internal;
mod notify;
mod property;
mod redirect;
mod sync;

pub use bridge::Bridge;
pub use dispatch::Body;
pub use event::{LogEvent, ResolveEvent};
pub use group::Group;
pub use hardware::{Hardware, PinModes};
pub use info::{DeviceInfo, InfoPairs, info_pairs};
pub use internal::Internal;
pub use notify::Email;
pub use property::{MultiProperty, Property};
pub use redirect::Redirect;
pub use sync::HardwareSync;

use bytes::{BufMut, BytesMut};

use crate::error::{ProtocolError, Result};

/// Iterator over the NUL-separated fields of a body; see [`fields`].
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    rest: Option<&'a [u8]>,
}

/// Splits `body` into its NUL-separated fields.
///
/// An empty body has no fields. One trailing NUL is treated as a terminator, not as the start of an
/// empty last field: `a\0b\0` gives `a`, `b`; `\0` gives one empty field; `a\0\0` gives `a`, ``.
pub fn fields(body: &[u8]) -> Fields<'_> {
    let rest = match body {
        [] => None,
        [head @ .., 0] => Some(head),
        _ => Some(body),
    };
    Fields { rest }
}

impl<'a> Fields<'a> {
    /// What has not been yielded yet (without the tolerated trailing NUL), or `None` when done.
    pub fn remainder(&self) -> Option<&'a [u8]> {
        self.rest
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest.take()?;
        match rest.iter().position(|&b| b == 0) {
            Some(i) => {
                self.rest = Some(&rest[i + 1..]);
                Some(&rest[..i])
            }
            None => Some(rest),
        }
    }
}

impl std::iter::FusedIterator for Fields<'_> {}

/// Splits a raw multi-value tail (e.g. [`Hardware::VirtualWrite`]'s `values`) on every NUL, with no
/// trailing-NUL tolerance: `""` is one empty value, `a\0` is `a` and an empty value.
pub fn split_values(values: &[u8]) -> impl Iterator<Item = &[u8]> {
    values.split(|&b| b == 0)
}

/// Parses a pin field: 1–3 ASCII digits, value 0–255.
pub fn parse_pin(field: &[u8]) -> Result<u8> {
    if field.is_empty() || field.len() > 3 || !field.iter().all(u8::is_ascii_digit) {
        return Err(ProtocolError::InvalidPin);
    }
    let n = field
        .iter()
        .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    u8::try_from(n).map_err(|_| ProtocolError::InvalidPin)
}

/// Parses an unsigned decimal number (ASCII digits only, no sign, no spaces, at most 20 digits).
pub(crate) fn parse_u64(field: &[u8], command: u8) -> Result<u64> {
    if field.is_empty() || field.len() > 20 || !field.iter().all(u8::is_ascii_digit) {
        return Err(ProtocolError::InvalidNumber { command });
    }
    field.iter().try_fold(0u64, |acc, d| {
        acc.checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or(ProtocolError::InvalidNumber { command })
    })
}

/// Splits off the first field: `(field, Some(rest after the NUL))`, or `(body, None)` without NUL.
pub(crate) fn split_field(body: &[u8]) -> (&[u8], Option<&[u8]>) {
    match body.iter().position(|&b| b == 0) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    }
}

/// Strips one trailing NUL, if any.
pub(crate) fn strip_nul(body: &[u8]) -> &[u8] {
    match body {
        [head @ .., 0] => head,
        _ => body,
    }
}

/// Appends `n` in decimal.
pub fn put_decimal(dst: &mut BytesMut, n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    dst.put_slice(&buf[i..]);
}

pub(crate) fn malformed(command: u8, reason: &'static str) -> ProtocolError {
    ProtocolError::MalformedBody { command, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(body: &[u8]) -> Vec<&[u8]> {
        fields(body).collect()
    }

    #[test]
    fn field_splitting() {
        assert!(collect(b"").is_empty());
        assert_eq!(collect(b"\0"), vec![&b""[..]]);
        assert_eq!(collect(b"a"), vec![&b"a"[..]]);
        assert_eq!(collect(b"a\0b"), vec![&b"a"[..], b"b"]);
        assert_eq!(collect(b"a\0b\0"), vec![&b"a"[..], b"b"]);
        assert_eq!(collect(b"a\0\0"), vec![&b"a"[..], b""]);
        assert_eq!(collect(b"\0\0a"), vec![&b""[..], b"", b"a"]);
        let mut f = fields(b"x\0y");
        f.next();
        assert_eq!(f.remainder(), Some(&b"y"[..]));
    }

    #[test]
    fn values_split_plainly() {
        assert_eq!(split_values(b"").collect::<Vec<_>>(), vec![&b""[..]]);
        assert_eq!(
            split_values(b"1\0").collect::<Vec<_>>(),
            vec![&b"1"[..], b""]
        );
    }

    #[test]
    fn pins() {
        assert_eq!(parse_pin(b"0"), Ok(0));
        assert_eq!(parse_pin(b"255"), Ok(255));
        assert_eq!(parse_pin(b"007"), Ok(7));
        for bad in [
            &b""[..],
            b"256",
            b"999",
            b"0001",
            b"-1",
            b"+1",
            b" 1",
            b"V1",
            b"1.0",
            b"A0",
        ] {
            assert_eq!(parse_pin(bad), Err(ProtocolError::InvalidPin), "{bad:?}");
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64(b"0", 21), Ok(0));
        assert_eq!(parse_u64(b"18446744073709551615", 21), Ok(u64::MAX));
        assert!(parse_u64(b"18446744073709551616", 21).is_err());
        assert!(parse_u64(b"", 21).is_err());
        assert!(parse_u64(b"12a", 21).is_err());
        let mut b = BytesMut::new();
        put_decimal(&mut b, 0);
        b.put_u8(b' ');
        put_decimal(&mut b, u64::MAX);
        assert_eq!(&b[..], b"0 18446744073709551615");
    }
}
