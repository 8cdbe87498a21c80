//! The device "info" message: the `INTERNAL` body a device sends right after login
//! (`key\0value\0key\0value…`).

use bytes::{BufMut, BytesMut};

use super::{Fields, fields};
use crate::command::INTERNAL;
use crate::frame::encode_with;

/// Keys that identify an `INTERNAL` body as an info message (any of them as the first field).
pub(crate) const INFO_KEYS: &[&[u8]] = &[
    b"mcu", b"ncp", b"ver", b"fw", b"fw-type", b"build", b"blynk", b"h-beat", b"buff-in", b"dev",
    b"cpu", b"con", b"conn", b"tmpl",
];

/// What a device says about itself after login.
///
/// Both key sets are understood, in any order: C++ ≥ 1.3 (`mcu`/`ncp`, `fw-type`, `build`,
/// `blynk`, `h-beat`, `buff-in`, `dev`, `cpu`, `con`, `tmpl`) and the older one also used by the
/// Linux build and the Python clients (`ver`, `fw`, `conn`, …). Unknown keys are ignored, a
/// dangling key without value is ignored, numbers that do not parse leave the field `None`,
/// non-UTF-8 text is replaced lossily. When a key repeats, the last value wins.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceInfo {
    /// Firmware version: `mcu`, `ncp` or `fw`.
    pub firmware: Option<String>,
    /// Blynk library version: `blynk` or (old key) `ver`.
    pub library: Option<String>,
    /// OTA package type: `fw-type`.
    pub fw_type: Option<String>,
    /// Build timestamp: `build`.
    pub build: Option<String>,
    /// Heartbeat in seconds: `h-beat`.
    pub heartbeat_secs: Option<u32>,
    /// Largest body the device accepts: `buff-in`.
    pub buff_in: Option<u32>,
    /// Board name: `dev`.
    pub board: Option<String>,
    /// CPU name: `cpu`.
    pub cpu: Option<String>,
    /// Connection type: `con` or `conn`.
    pub connection: Option<String>,
    /// Template id: `tmpl`.
    pub template_id: Option<String>,
}

/// Iterator over the `(key, value)` pairs of an info body; see [`info_pairs`].
#[derive(Debug, Clone)]
pub struct InfoPairs<'a> {
    fields: Fields<'a>,
}

/// Iterates the raw `(key, value)` pairs of an info body (one trailing NUL tolerated; a dangling
/// key without value is dropped). Use it to keep keys [`DeviceInfo`] does not model.
pub fn info_pairs(body: &[u8]) -> InfoPairs<'_> {
    InfoPairs {
        fields: fields(body),
    }
}

impl<'a> Iterator for InfoPairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let key = self.fields.next()?;
        let value = self.fields.next()?;
        Some((key, value))
    }
}

fn text(v: &[u8]) -> Option<String> {
    Some(String::from_utf8_lossy(v).into_owned())
}

fn number(v: &[u8]) -> Option<u32> {
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}

impl DeviceInfo {
    /// Parses an info body. Never fails: every well-framed body yields a (possibly empty) value.
    pub fn parse(body: &[u8]) -> DeviceInfo {
        let mut info = DeviceInfo::default();
        for (key, value) in info_pairs(body) {
            match key {
                b"mcu" | b"ncp" | b"fw" => info.firmware = text(value),
                b"blynk" | b"ver" => info.library = text(value),
                b"fw-type" => info.fw_type = text(value),
                b"build" => info.build = text(value),
                b"h-beat" => info.heartbeat_secs = number(value),
                b"buff-in" => info.buff_in = number(value),
                b"dev" => info.board = text(value),
                b"cpu" => info.cpu = text(value),
                b"con" | b"conn" => info.connection = text(value),
                b"tmpl" => info.template_id = text(value),
                _ => {}
            }
        }
        info
    }

    /// Whether `body` looks like an info message (its first field is a known info key).
    pub fn is_info(body: &[u8]) -> bool {
        fields(body).next().is_some_and(|k| INFO_KEYS.contains(&k))
    }

    /// Appends the body in the C++ ≥ 1.3 key order (`mcu`, `fw-type`, `build`, `blynk`, `h-beat`,
    /// `buff-in`, `dev`, `cpu`, `con`, `tmpl`), skipping `None` fields. Values must not contain NUL.
    /// If the last value is empty a terminating NUL is added, so that it is not mistaken for the
    /// tolerated trailing NUL.
    pub fn encode_body(&self, dst: &mut BytesMut) {
        let mut first = true;
        let mut last_empty = false;
        let mut put = |dst: &mut BytesMut, key: &[u8], value: &[u8]| {
            if !first {
                dst.put_u8(0);
            }
            first = false;
            dst.put_slice(key);
            dst.put_u8(0);
            dst.put_slice(value);
            last_empty = value.is_empty();
        };
        let texts: [(&[u8], &Option<String>); 4] = [
            (b"mcu", &self.firmware),
            (b"fw-type", &self.fw_type),
            (b"build", &self.build),
            (b"blynk", &self.library),
        ];
        for (k, v) in texts {
            if let Some(v) = v {
                put(dst, k, v.as_bytes());
            }
        }
        for (k, v) in [
            (&b"h-beat"[..], self.heartbeat_secs),
            (b"buff-in", self.buff_in),
        ] {
            if let Some(v) = v {
                put(dst, k, v.to_string().as_bytes());
            }
        }
        let texts: [(&[u8], &Option<String>); 4] = [
            (b"dev", &self.board),
            (b"cpu", &self.cpu),
            (b"con", &self.connection),
            (b"tmpl", &self.template_id),
        ];
        for (k, v) in texts {
            if let Some(v) = v {
                put(dst, k, v.as_bytes());
            }
        }
        if last_empty {
            dst.put_u8(0);
        }
    }

    /// Appends a whole `INTERNAL` frame carrying this info.
    pub fn encode_frame(&self, msg_id: u16, dst: &mut BytesMut) {
        encode_with(INTERNAL, msg_id, dst, |d| self.encode_body(d));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_key_set() {
        let body = b"mcu\x001.2.3\x00fw-type\x00TMPL1234\x00build\x00Jan 19 2024 12:25:30\x00blynk\x001.4.0\x00h-beat\x0040\x00buff-in\x001024\x00dev\x00ESP32\x00con\x00WiFi\x00tmpl\x00TMPL1234";
        assert!(DeviceInfo::is_info(body));
        let i = DeviceInfo::parse(body);
        assert_eq!(i.firmware.as_deref(), Some("1.2.3"));
        assert_eq!(i.library.as_deref(), Some("1.4.0"));
        assert_eq!(i.fw_type.as_deref(), Some("TMPL1234"));
        assert_eq!(i.build.as_deref(), Some("Jan 19 2024 12:25:30"));
        assert_eq!(i.heartbeat_secs, Some(40));
        assert_eq!(i.buff_in, Some(1024));
        assert_eq!(i.board.as_deref(), Some("ESP32"));
        assert_eq!(i.connection.as_deref(), Some("WiFi"));
        assert_eq!(i.template_id.as_deref(), Some("TMPL1234"));
        assert_eq!(i.cpu, None);
    }

    #[test]
    fn old_key_set_with_trailing_nul_and_unknown_keys() {
        let body = b"ver\x000.6.1\x00h-beat\x0010\x00buff-in\x004096\x00dev\x00Linux\x00fw\x001.0\x00conn\x00Socket\x00zzz\x00q\x00tmpl\x00T\x00";
        let i = DeviceInfo::parse(body);
        assert_eq!(i.library.as_deref(), Some("0.6.1"));
        assert_eq!(i.firmware.as_deref(), Some("1.0"));
        assert_eq!(i.connection.as_deref(), Some("Socket"));
        assert_eq!(i.heartbeat_secs, Some(10));
        assert_eq!(i.buff_in, Some(4096));
        assert_eq!(i.template_id.as_deref(), Some("T"));
        assert_eq!(info_pairs(body).count(), 8);
    }

    #[test]
    fn tolerant_of_junk() {
        let i = DeviceInfo::parse(b"h-beat\x00abc\x00buff-in\x0099999999999\x00dev");
        assert_eq!(i, DeviceInfo::default());
        assert!(!DeviceInfo::is_info(b"rtc\x00sync"));
        assert!(!DeviceInfo::is_info(b""));
        assert_eq!(
            DeviceInfo::parse(b"dev\x00\xff").board.as_deref(),
            Some("\u{fffd}")
        );
    }

    #[test]
    fn encode_roundtrip() {
        let i = DeviceInfo {
            firmware: Some("0.1.0".into()),
            library: Some("pinhouse".into()),
            heartbeat_secs: Some(45),
            buff_in: Some(1024),
            board: Some("bench".into()),
            template_id: Some("TMPLx".into()),
            ..DeviceInfo::default()
        };
        let mut b = BytesMut::new();
        i.encode_body(&mut b);
        assert!(b.starts_with(b"mcu\x000.1.0\x00blynk\x00pinhouse\x00h-beat\x0045"));
        assert_eq!(DeviceInfo::parse(&b), i);
        let mut empty = BytesMut::new();
        DeviceInfo::default().encode_body(&mut empty);
        assert!(empty.is_empty());
    }
}
