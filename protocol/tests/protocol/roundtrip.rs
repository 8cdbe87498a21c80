//! Encode → decode identity for every frame and body type.

use bytes::BytesMut;
use pinhouse_protocol::body::{
    self, Body, Bridge, DeviceInfo, Email, Group, Hardware, HardwareSync, Internal, LogEvent,
    MultiProperty, Property, Redirect, ResolveEvent,
};
use pinhouse_protocol::{Codec, Frame, command, encode_fields};
use proptest::collection::vec;
use proptest::prelude::*;

use super::strategies::{bytes_upto, chunks, frame, hardware, name, no_nul, text};

fn body_of(f: impl FnOnce(&mut BytesMut)) -> BytesMut {
    let mut b = BytesMut::new();
    f(&mut b);
    b
}

/// Encodes a body inside a frame, decodes the frame, and returns the decoded body.
fn through_codec(command: u8, body: &[u8]) -> bytes::Bytes {
    let mut buf = BytesMut::new();
    pinhouse_protocol::encode_message(command, 9, body, &mut buf);
    match Codec::default().decode(&mut buf).unwrap().unwrap() {
        Frame::Message {
            command: c,
            msg_id: 9,
            body,
        } if c == command => body,
        other => panic!("unexpected {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn frames_roundtrip(f in frame(600)) {
        let mut buf = BytesMut::new();
        f.encode(&mut buf);
        prop_assert_eq!(buf.len(), f.encoded_len());
        let decoded = Codec::default().decode(&mut buf).unwrap();
        prop_assert_eq!(decoded, Some(f));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn pipelined_frames_roundtrip_in_any_chunking(
        frames in vec(frame(200), 0..20),
        cuts in vec(any::<usize>(), 0..12),
    ) {
        let mut wire = BytesMut::new();
        for f in &frames {
            f.encode(&mut wire);
        }
        let codec = Codec::default();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for chunk in chunks(&wire, &cuts) {
            buf.extend_from_slice(&chunk);
            while let Some(f) = codec.decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        prop_assert_eq!(got, frames);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn fields_roundtrip(
        head in vec(no_nul(0, 12), 0..6),
        last in no_nul(1, 12),
        command in 1..=u8::MAX,
    ) {
        // A trailing empty field is indistinguishable from the tolerated trailing NUL, so the
        // last field is non-empty here.
        let mut all: Vec<&[u8]> = head.iter().map(Vec::as_slice).collect();
        all.push(&last);
        let mut buf = BytesMut::new();
        encode_fields(command, 1, &all, &mut buf);
        let Frame::Message { body, .. } = Codec::default().decode(&mut buf).unwrap().unwrap() else {
            panic!("not a message")
        };
        prop_assert_eq!(body::fields(&body).collect::<Vec<_>>(), all);
    }

    #[test]
    fn hardware_roundtrip(h in hardware()) {
        let view = h.view();
        let b = body_of(|d| view.encode_body(d));
        prop_assert_eq!(Hardware::parse(&b), Ok(view.clone()));
        let wire = through_codec(command::HARDWARE, &b);
        prop_assert_eq!(Body::parse(command::HARDWARE, &wire), Ok(Body::Hardware(view.clone())));
        let mut frame = BytesMut::new();
        view.encode_frame(4, &mut frame);
        let decoded = Codec::default().decode(&mut frame).unwrap().unwrap();
        prop_assert_eq!(decoded, Frame::message(command::HARDWARE, 4, b.freeze()));
    }

    #[test]
    fn virtual_write_values_roundtrip(pin: u8, values in vec(no_nul(0, 10), 1..6)) {
        let vals: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        let b = body_of(|d| Hardware::encode_virtual_write(pin, &vals, d));
        let Ok(Hardware::VirtualWrite { pin: p, values: tail }) = Hardware::parse(&b) else {
            panic!("not vw")
        };
        prop_assert_eq!(p, pin);
        prop_assert_eq!(body::split_values(tail).collect::<Vec<_>>(), vals);
    }

    #[test]
    fn sync_roundtrip(pins in vec(any::<u8>(), 0..10)) {
        let b = body_of(|d| HardwareSync::encode_pins(&pins, d));
        let parsed = HardwareSync::parse(&b).unwrap();
        prop_assert_eq!(parsed.pins().collect::<Result<Vec<_>, _>>().unwrap(), pins);
        let again = body_of(|d| parsed.encode_body(d));
        prop_assert_eq!(&again[..], &b[..]);
        let all = body_of(|d| HardwareSync::All.encode_body(d));
        prop_assert_eq!(HardwareSync::parse(&all), Ok(HardwareSync::All));
    }

    #[test]
    fn device_info_roundtrip(
        firmware in proptest::option::of(text()),
        library in proptest::option::of(text()),
        fw_type in proptest::option::of(text()),
        build in proptest::option::of(text()),
        heartbeat_secs: Option<u32>,
        buff_in: Option<u32>,
        board in proptest::option::of(text()),
        cpu in proptest::option::of(text()),
        connection in proptest::option::of(text()),
        template_id in proptest::option::of(text()),
    ) {
        let info = DeviceInfo {
            firmware, library, fw_type, build, heartbeat_secs, buff_in, board, cpu, connection,
            template_id,
        };
        let b = body_of(|d| info.encode_body(d));
        prop_assert_eq!(DeviceInfo::parse(&b), info.clone());
        if !b.is_empty() {
            prop_assert_eq!(Internal::parse(&b), Ok(Internal::Info(info)));
        }
    }

    #[test]
    fn internal_roundtrip(
        kind in 0..7u8,
        a in no_nul(1, 16),
        tail in bytes_upto(32),
    ) {
        let reserved = |s: &[u8]| {
            matches!(s, b"rtc" | b"utc" | b"meta" | b"ota" | b"dbg") || DeviceInfo::is_info(s)
        };
        let value = match kind {
            0 => Internal::Rtc,
            1 => Internal::Utc { query: &tail },
            2 => Internal::MetaGet { name: &a },
            3 => Internal::MetaSet { name: &a, value: &tail },
            4 => Internal::Ota { url: &a },
            5 => Internal::Debug { text: &tail },
            _ if reserved(&a) => return Ok(()),
            _ => Internal::Other { sub: &a, rest: &tail },
        };
        let b = body_of(|d| value.encode_body(d));
        prop_assert_eq!(Internal::parse(&b), Ok(value.clone()));
        let wire = through_codec(command::INTERNAL, &b);
        prop_assert_eq!(Body::parse(command::INTERNAL, &wire), Ok(Body::Internal(value)));
    }

    #[test]
    fn property_roundtrip(pin: u8, n in name(), values in bytes_upto(32), more in vec(any::<u8>(), 1..4)) {
        let p = Property { pin, name: &n, values: &values };
        let b = body_of(|d| p.encode_body(d));
        prop_assert_eq!(Property::parse(&b), Ok(p.clone()));
        prop_assert_eq!(Body::parse(command::PROPERTY, &b), Ok(Body::Property(p)));

        let mut pins = Vec::new();
        for (i, x) in std::iter::once(pin).chain(more).enumerate() {
            if i > 0 { pins.push(0); }
            pins.extend_from_slice(x.to_string().as_bytes());
        }
        let m = MultiProperty { pins: &pins, name: &n, values: &values };
        let b = body_of(|d| m.encode_body(d));
        prop_assert_eq!(MultiProperty::parse(&b), Ok(m.clone()));
        prop_assert_eq!(Body::parse(command::PROPERTY, &b), Ok(Body::MultiProperty(m)));
    }

    #[test]
    fn group_roundtrip(kind in 0..3u8, unix_ms: u64) {
        let g = match kind { 0 => Group::Begin, 1 => Group::End, _ => Group::BeginAt { unix_ms } };
        let b = body_of(|d| g.encode_body(d));
        prop_assert_eq!(Group::parse(&b), Ok(g));
        prop_assert_eq!(Body::parse(command::GROUP, &b), Ok(Body::Group(g)));
    }

    #[test]
    fn events_roundtrip(code in no_nul(1, 20), description in proptest::option::of(bytes_upto(40)), all: bool) {
        let e = LogEvent { code: &code, description: description.as_deref() };
        let b = body_of(|d| e.encode_body(d));
        prop_assert_eq!(Body::parse(command::EVENT_LOG, &b), Ok(Body::LogEvent(e)));
        let r = ResolveEvent { code: &code, all };
        let b = body_of(|d| r.encode_body(d));
        prop_assert_eq!(Body::parse(command::EVENT_CLEAR, &b), Ok(Body::ResolveEvent(r)));
    }

    #[test]
    fn redirect_roundtrip(host in no_nul(1, 63), port: Option<u16>) {
        let r = Redirect { host: &host, port };
        let b = body_of(|d| r.encode_body(d));
        prop_assert_eq!(Body::parse(command::REDIRECT, &b), Ok(Body::Redirect(r)));
    }

    #[test]
    fn bridge_roundtrip(bridge_pin: u8, token in no_nul(1, 40), h in hardware()) {
        let init = Bridge::Init { bridge_pin, token: &token };
        let b = body_of(|d| init.encode_body(d));
        prop_assert_eq!(Bridge::parse(&b), Ok(init));
        let hw = body_of(|d| h.view().encode_body(d));
        let fwd = Bridge::Forward { bridge_pin, hardware_body: &hw };
        let b = body_of(|d| fwd.encode_body(d));
        prop_assert_eq!(Bridge::parse(&b), Ok(fwd.clone()));
        prop_assert_eq!(fwd.hardware(), Some(Ok(h.view())));
    }

    #[test]
    fn email_roundtrip(to in proptest::option::of(no_nul(0, 20)), subject in no_nul(0, 20), text in bytes_upto(40)) {
        // Without a recipient the body must not contain NUL (it would read as the 3-field form).
        let text: Vec<u8> = if to.is_none() { text.into_iter().filter(|&b| b != 0).collect() } else { text };
        let e = Email { to: to.as_deref(), subject: &subject, body: &text };
        let b = body_of(|d| e.encode_body(d));
        prop_assert_eq!(Body::parse(command::EMAIL, &b), Ok(Body::Email(e)));
    }
}
