//! Feeds arbitrary bytes to the frame decoder (whole and in chunks), every body parser and the
//! device client. Invariants: no panic; chunking never changes the result; errors are typed.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pinhouse_protocol::body::{
    Body, Bridge, DeviceInfo, Email, Group, Hardware, HardwareSync, Internal, LogEvent,
    MultiProperty, Property, Redirect, ResolveEvent, fields, info_pairs,
};
use pinhouse_protocol::client::Client;
use pinhouse_protocol::{Codec, Frame, ProtocolError};

fn parse_everything(command: u8, body: &[u8]) {
    let _ = Body::parse(command, body);
    if let Ok(Hardware::PinMode { pairs }) = Hardware::parse(body) {
        assert!(Hardware::pin_modes(pairs).all(|p| p.is_ok()));
    }
    if let Ok(s) = HardwareSync::parse(body) {
        assert!(s.pins().all(|p| p.is_ok()));
    }
    let _ = Internal::parse(body);
    let _ = Property::parse(body);
    if let Ok(m) = MultiProperty::parse(body) {
        assert!(m.pins().all(|p| p.is_ok()));
    }
    let _ = Group::parse(body);
    let _ = LogEvent::parse(body);
    let _ = ResolveEvent::parse(body);
    let _ = Redirect::parse(body);
    if let Ok(b) = Bridge::parse(body) {
        assert!(b.hardware().is_none_or(|h| h.is_ok()));
    }
    let _ = Email::parse(body);
    let _ = DeviceInfo::parse(body);
    let _ = info_pairs(body).count();
    let _ = fields(body).count();
}

fn decode(codec: Codec, data: &[u8], chunk: usize) -> (Vec<Frame>, Option<ProtocolError>) {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => {
                    assert!(matches!(
                        e,
                        ProtocolError::BodyTooLarge { .. } | ProtocolError::ZeroMessageId
                    ));
                    return (frames, Some(e));
                }
            }
        }
    }
    (frames, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&config, data)) = data.split_first() else { return };
    let max_body = match config & 0x3 {
        0 => pinhouse_protocol::DEFAULT_MAX_BODY,
        1 => 0,
        2 => 64,
        _ => usize::from(config),
    };
    let codec = Codec::new(max_body).with_zero_msg_id(config & 0x80 != 0);
    let chunk = usize::from(config >> 2 & 0x1f) + 1;

    let whole = decode(codec, data, data.len());
    let chunked = decode(codec, data, chunk);
    assert_eq!(whole, chunked);
    for frame in &whole.0 {
        if let Frame::Message { command, body, .. } = frame {
            parse_everything(*command, body);
        }
    }
    // The raw input as a body of every command too.
    parse_everything(config, data);

    let mut client = Client::new(&b"0123456789abcdef0123456789abcdef"[..]).with_codec(codec);
    let mut out = BytesMut::new();
    client.login(&mut out);
    let mut input = BytesMut::from(data);
    while let Ok(Some(_)) = client.decode(&mut input, &mut out) {}
});
