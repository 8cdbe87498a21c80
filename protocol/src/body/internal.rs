//! `INTERNAL` (17) bodies: the info message and the `rtc`/`utc`/`meta`/`ota`/`dbg` sub-commands.

use bytes::{BufMut, BytesMut};

use super::info::INFO_KEYS;
use super::{DeviceInfo, malformed, put_decimal, split_field, strip_nul};
use crate::command::INTERNAL;
use crate::error::Result;
use crate::frame::encode_with;

/// A parsed `INTERNAL` body.
#[derive(Debug, Clone, PartialEq)]
pub enum Internal<'a> {
    /// The info message sent after login (first field is one of the info keys).
    Info(DeviceInfo),
    /// `rtc` or `rtc\0sync`: the device asks for the time. (A server's `rtc\0<seconds>` reply
    /// parses as [`Internal::Other`].)
    Rtc,
    /// `utc\0<query…>`: `time`, `iso`, `tz`, `tz_name`, `tz_rule`, `dst_next` — or, from a
    /// server, the reply fields. `query` is the raw tail after `utc\0`.
    Utc {
        /// Raw tail after `utc\0`.
        query: &'a [u8],
    },
    /// `meta\0get\0<name>`.
    MetaGet {
        /// Metadata field name.
        name: &'a [u8],
    },
    /// `meta\0set\0<name>\0<value>`; `value` is the raw tail.
    MetaSet {
        /// Metadata field name.
        name: &'a [u8],
        /// Raw value tail.
        value: &'a [u8],
    },
    /// `ota\0<url>` (server → device); fields after the URL, if any, are ignored.
    Ota {
        /// Firmware URL.
        url: &'a [u8],
    },
    /// `dbg\0<text>`: remote console command (server → device).
    Debug {
        /// Raw tail after `dbg\0`.
        text: &'a [u8],
    },
    /// Any other sub-command (`vfs`, `acon`, `adis`, `meta\0<name>\0<value>` replies, `rtc`
    /// replies, …): first field and raw tail.
    Other {
        /// First field.
        sub: &'a [u8],
        /// Raw tail after the first NUL (empty if none).
        rest: &'a [u8],
    },
}

impl<'a> Internal<'a> {
    /// Parses an `INTERNAL` body. Only an empty body, a `meta get`/`meta set` without its fields
    /// and an `ota` without URL are malformed; unknown sub-commands are [`Internal::Other`].
    pub fn parse(body: &'a [u8]) -> Result<Self> {
        if body.is_empty() {
            return Err(malformed(INTERNAL, "empty internal body"));
        }
        let (sub, rest) = split_field(body);
        let parsed = match sub {
            b"rtc" if matches!(rest, None | Some(b"sync" | b"sync\0")) => Internal::Rtc,
            b"utc" => Internal::Utc {
                query: rest.unwrap_or_default(),
            },
            b"meta" => {
                let (op, tail) = split_field(rest.unwrap_or_default());
                match (op, tail) {
                    (b"get", Some(name)) => {
                        let name = strip_nul(name);
                        if name.is_empty() || name.contains(&0) {
                            return Err(malformed(INTERNAL, "meta get takes one field name"));
                        }
                        Internal::MetaGet { name }
                    }
                    (b"set", Some(tail)) => match split_field(tail) {
                        (name, Some(value)) if !name.is_empty() => {
                            Internal::MetaSet { name, value }
                        }
                        _ => return Err(malformed(INTERNAL, "meta set needs a name and a value")),
                    },
                    (b"get" | b"set", None) => {
                        return Err(malformed(INTERNAL, "meta get/set without a field name"));
                    }
                    _ => Internal::Other {
                        sub,
                        rest: rest.unwrap_or_default(),
                    },
                }
            }
            b"ota" => {
                let url = split_field(rest.unwrap_or_default()).0;
                if url.is_empty() {
                    return Err(malformed(INTERNAL, "ota without a url"));
                }
                Internal::Ota { url }
            }
            b"dbg" => Internal::Debug {
                text: rest.unwrap_or_default(),
            },
            _ if INFO_KEYS.contains(&sub) => Internal::Info(DeviceInfo::parse(body)),
            _ => Internal::Other {
                sub,
                rest: rest.unwrap_or_default(),
            },
        };
        Ok(parsed)
    }

    /// Appends the body bytes. `Rtc` is written as `rtc\0sync`.
    pub fn encode_body(&self, dst: &mut BytesMut) {
        let (sub, parts): (&[u8], [&[u8]; 3]) = match self {
            Internal::Info(info) => return info.encode_body(dst),
            Internal::Rtc => (b"rtc", [b"sync", b"", b""]),
            Internal::Utc { query } => (b"utc", [query, b"", b""]),
            Internal::MetaGet { name } => (b"meta", [b"get", name, b""]),
            Internal::MetaSet { name, value } => {
                dst.put_slice(b"meta\0set\0");
                dst.put_slice(name);
                dst.put_u8(0);
                dst.put_slice(value);
                return;
            }
            Internal::Ota { url } => (b"ota", [url, b"", b""]),
            Internal::Debug { text } => (b"dbg", [text, b"", b""]),
            Internal::Other { sub, rest } => {
                dst.put_slice(sub);
                if !rest.is_empty() {
                    dst.put_u8(0);
                    dst.put_slice(rest);
                }
                return;
            }
        };
        dst.put_slice(sub);
        let n = match self {
            Internal::MetaGet { .. } => 2,
            _ => 1,
        };
        for p in &parts[..n] {
            dst.put_u8(0);
            dst.put_slice(p);
        }
    }

    /// Appends a whole `INTERNAL` frame with this body.
    pub fn encode_frame(&self, msg_id: u16, dst: &mut BytesMut) {
        encode_with(INTERNAL, msg_id, dst, |d| self.encode_body(d));
    }

    /// Appends the server's reply body to `rtc\0sync`: `rtc\0<seconds>`.
    pub fn encode_rtc_reply(seconds: u64, dst: &mut BytesMut) {
        dst.put_slice(b"rtc\0");
        put_decimal(dst, seconds);
    }

    /// Appends the server's reply body to `utc\0time`: `utc\0time\0<unix ms>`.
    pub fn encode_utc_time_reply(unix_ms: u64, dst: &mut BytesMut) {
        dst.put_slice(b"utc\0time\0");
        put_decimal(dst, unix_ms);
    }

    /// Appends the server's reply body to `meta\0get\0<name>`: `meta\0<name>\0<value>`.
    pub fn encode_meta_reply(name: &[u8], value: &[u8], dst: &mut BytesMut) {
        dst.put_slice(b"meta\0");
        dst.put_slice(name);
        dst.put_u8(0);
        dst.put_slice(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProtocolError;

    fn rt(i: Internal<'_>) {
        let mut b = BytesMut::new();
        i.encode_body(&mut b);
        assert_eq!(Internal::parse(&b).unwrap(), i, "{b:?}");
    }

    #[test]
    fn parses_sub_commands() {
        assert_eq!(Internal::parse(b"rtc\x00sync").unwrap(), Internal::Rtc);
        assert_eq!(Internal::parse(b"rtc").unwrap(), Internal::Rtc);
        assert_eq!(
            Internal::parse(b"rtc\x001700000000").unwrap(),
            Internal::Other {
                sub: b"rtc",
                rest: b"1700000000"
            }
        );
        assert_eq!(
            Internal::parse(b"utc\x00time").unwrap(),
            Internal::Utc { query: b"time" }
        );
        assert_eq!(
            Internal::parse(b"meta\x00get\x00Device Name").unwrap(),
            Internal::MetaGet {
                name: b"Device Name"
            }
        );
        assert_eq!(
            Internal::parse(b"meta\x00set\x00Hotspot Name\x00Blynk X-1234").unwrap(),
            Internal::MetaSet {
                name: b"Hotspot Name",
                value: b"Blynk X-1234"
            }
        );
        assert_eq!(
            Internal::parse(b"meta\x00Device Name\x00Kitchen").unwrap(),
            Internal::Other {
                sub: b"meta",
                rest: b"Device Name\x00Kitchen"
            }
        );
        assert_eq!(
            Internal::parse(b"ota\x00https://h/fw.bin").unwrap(),
            Internal::Ota {
                url: b"https://h/fw.bin"
            }
        );
        assert_eq!(
            Internal::parse(b"dbg\x00reboot").unwrap(),
            Internal::Debug { text: b"reboot" }
        );
        assert_eq!(
            Internal::parse(b"acon").unwrap(),
            Internal::Other {
                sub: b"acon",
                rest: b""
            }
        );
        let Internal::Info(i) = Internal::parse(b"ver\x000.2.6\x00dev\x00python").unwrap() else {
            panic!("not info")
        };
        assert_eq!(i.board.as_deref(), Some("python"));
    }

    #[test]
    fn rejects_malformed() {
        for b in [
            &b""[..],
            b"meta\x00get",
            b"meta\x00get\x00",
            b"meta\x00set\x00x",
            b"ota",
            b"ota\x00",
        ] {
            assert!(
                matches!(
                    Internal::parse(b),
                    Err(ProtocolError::MalformedBody { command: 17, .. })
                ),
                "{b:?}"
            );
        }
    }

    #[test]
    fn roundtrips_and_replies() {
        rt(Internal::Rtc);
        rt(Internal::Utc { query: b"tz_name" });
        rt(Internal::MetaGet {
            name: b"Device Name",
        });
        rt(Internal::MetaSet {
            name: b"n",
            value: b"",
        });
        rt(Internal::Ota { url: b"http://x" });
        rt(Internal::Debug { text: b"" });
        rt(Internal::Other {
            sub: b"vfs",
            rest: b"a\x00b",
        });
        rt(Internal::Info(DeviceInfo {
            board: Some("x".into()),
            ..Default::default()
        }));
        let mut b = BytesMut::new();
        Internal::encode_rtc_reply(1_700_000_000, &mut b);
        assert_eq!(&b[..], b"rtc\x001700000000");
        b.clear();
        Internal::encode_utc_time_reply(1, &mut b);
        assert_eq!(&b[..], b"utc\x00time\x001");
        b.clear();
        Internal::encode_meta_reply(b"Device Name", b"K", &mut b);
        assert_eq!(&b[..], b"meta\x00Device Name\x00K");
    }
}
