//! Legacy notification bodies: `EMAIL` (13) is `to\0subject\0body` or `subject\0body`;
//! `NOTIFY` (14), `TWEET` (12) and `SMS` (18) are plain text (see [`super::Body`]).

use bytes::{BufMut, BytesMut};

use super::{malformed, split_field};
use crate::command::EMAIL;
use crate::error::Result;

/// A legacy e-mail request.
#[derive(Debug, Clone, PartialEq)]
pub struct Email<'a> {
    /// Recipient, when the three-field form is used.
    pub to: Option<&'a [u8]>,
    /// Subject.
    pub subject: &'a [u8],
    /// Raw body tail.
    pub body: &'a [u8],
}

impl<'a> Email<'a> {
    /// Parses an `EMAIL` body: three or more fields are `to`, `subject`, `body…`; two are
    /// `subject`, `body`.
    pub fn parse(body: &'a [u8]) -> Result<Self> {
        let (first, rest) = split_field(body);
        let rest = rest.ok_or(malformed(EMAIL, "email needs a subject and a body"))?;
        Ok(match split_field(rest) {
            (second, Some(tail)) => Email {
                to: Some(first),
                subject: second,
                body: tail,
            },
            (second, None) => Email {
                to: None,
                subject: first,
                body: second,
            },
        })
    }

    /// Appends the body bytes.
    pub fn encode_body(&self, dst: &mut BytesMut) {
        if let Some(to) = self.to {
            dst.put_slice(to);
            dst.put_u8(0);
        }
        dst.put_slice(self.subject);
        dst.put_u8(0);
        dst.put_slice(self.body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms() {
        let e = Email::parse(b"a@b\x00Hi\x00Body").unwrap();
        assert_eq!(
            e,
            Email {
                to: Some(b"a@b"),
                subject: b"Hi",
                body: b"Body"
            }
        );
        let e2 = Email::parse(b"Hi\x00Body").unwrap();
        assert_eq!(
            e2,
            Email {
                to: None,
                subject: b"Hi",
                body: b"Body"
            }
        );
        assert!(Email::parse(b"Hi").is_err());
        for e in [e, e2] {
            let mut b = BytesMut::new();
            e.encode_body(&mut b);
            assert_eq!(Email::parse(&b).unwrap(), e);
        }
    }
}
