//! Decoding bytes recorded from the real Python client `blynklib` 0.2.6
//! (see `tests/fixtures/README.md` for how they were recorded).

use bytes::BytesMut;
use pinhouse_protocol::body::{
    Body, DeviceInfo, Hardware, HardwareSync, Internal, Property, info_pairs,
};
use pinhouse_protocol::{Codec, Frame, command};

const SESSION: &[u8] = include_bytes!("../fixtures/blynklib-0.2.6-session.bin");
const PING_REPLY: &[u8] = include_bytes!("../fixtures/blynklib-0.2.6-ping-reply.bin");
const TOKEN: &[u8] = b"0123456789abcdefghijklmnopqrstuv";

fn decode_all(bytes: &[u8]) -> (Vec<Frame>, BytesMut) {
    let codec = Codec::default();
    let mut buf = BytesMut::from(bytes);
    let mut frames = Vec::new();
    while let Some(frame) = codec.decode(&mut buf).expect("fixture decodes") {
        frames.push(frame);
    }
    (frames, buf)
}

fn message(frame: &Frame) -> (u8, u16, &[u8]) {
    match frame {
        Frame::Message {
            command,
            msg_id,
            body,
        } => (*command, *msg_id, body),
        Frame::Response { .. } => panic!("unexpected response {frame:?}"),
    }
}

#[test]
fn session_decodes_to_the_exact_frames() {
    let (frames, rest) = decode_all(SESSION);
    assert!(rest.is_empty(), "trailing bytes {rest:?}");
    assert_eq!(frames.len(), 8);

    // Login: the legacy LOGIN code (2), id 1, the 32-byte token as the whole body.
    assert_eq!(frames[0], Frame::message(command::LOGIN, 1, TOKEN));
    assert_eq!(
        Body::parse(command::LOGIN, TOKEN).unwrap(),
        Body::Login {
            command: command::LOGIN,
            token: TOKEN
        }
    );

    // Info: id 2, old key set in blynklib's own order.
    let (cmd, id, body) = message(&frames[1]);
    assert_eq!((cmd, id), (command::INTERNAL, 2));
    assert_eq!(
        body,
        b"ver\x000.2.6\x00buff-in\x001024\x00h-beat\x0010\x00dev\x00python"
    );
    let pairs: Vec<_> = info_pairs(body).collect();
    assert_eq!(
        pairs,
        vec![
            (&b"ver"[..], &b"0.2.6"[..]),
            (b"buff-in", b"1024"),
            (b"h-beat", b"10"),
            (b"dev", b"python"),
        ]
    );
    let Internal::Info(info) = Internal::parse(body).unwrap() else {
        panic!("info not recognised")
    };
    assert_eq!(
        info,
        DeviceInfo {
            library: Some("0.2.6".into()),
            heartbeat_secs: Some(10),
            buff_in: Some(1024),
            board: Some("python".into()),
            ..DeviceInfo::default()
        }
    );

    // Virtual writes, ids 3..=5.
    let expected_writes: [(u16, u8, &[u8]); 3] = [
        (3, 1, b"23.5"),
        (4, 2, b"hello"),
        (5, 3, b"multi\x007\x001.25"),
    ];
    for (frame, (want_id, want_pin, want_values)) in frames[2..5].iter().zip(expected_writes) {
        let (cmd, id, body) = message(frame);
        assert_eq!((cmd, id), (command::HARDWARE, want_id));
        assert_eq!(
            Hardware::parse(body).unwrap(),
            Hardware::VirtualWrite {
                pin: want_pin,
                values: want_values
            }
        );
    }
    let (_, _, multi) = message(&frames[4]);
    let Hardware::VirtualWrite { values, .. } = Hardware::parse(multi).unwrap() else {
        panic!()
    };
    let split: Vec<_> = pinhouse_protocol::body::split_values(values).collect();
    assert_eq!(split, vec![&b"multi"[..], b"7", b"1.25"]);

    // Ping, id 6, empty body.
    assert_eq!(
        frames[5],
        Frame::message(command::PING, 6, bytes::Bytes::new())
    );

    // Sync of V1 and V2, id 7.
    let (cmd, id, body) = message(&frames[6]);
    assert_eq!((cmd, id), (command::HARDWARE_SYNC, 7));
    let sync = HardwareSync::parse(body).unwrap();
    assert_eq!(
        sync.pins().collect::<Result<Vec<_>, _>>().unwrap(),
        vec![1, 2]
    );

    // set_property, id 8.
    let (cmd, id, body) = message(&frames[7]);
    assert_eq!((cmd, id), (command::PROPERTY, 8));
    assert_eq!(
        Property::parse(body).unwrap(),
        Property {
            pin: 1,
            name: b"color",
            values: b"#D3435C"
        }
    );
}

#[test]
fn session_decodes_the_same_byte_by_byte() {
    let codec = Codec::default();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for &b in SESSION {
        buf.extend_from_slice(&[b]);
        while let Some(f) = codec.decode(&mut buf).unwrap() {
            frames.push(f);
        }
    }
    assert_eq!(frames, decode_all(SESSION).0);
    for f in &frames {
        let (cmd, _, body) = message(f);
        Body::parse(cmd, body).expect("every recorded body parses");
    }
}

#[test]
fn ping_reply_quirk_is_a_response_with_status_3_and_a_text_tail() {
    let (frames, rest) = decode_all(PING_REPLY);
    assert_eq!(frames.len(), 3);
    assert_eq!(frames[0], Frame::message(command::LOGIN, 1, TOKEN));
    // blynklib answers PING id 7 with `00 00 07 00 03 "200"`: a strict decoder sees status 3 ...
    assert_eq!(
        frames[2],
        Frame::Response {
            msg_id: 7,
            status: 3
        }
    );
    // ... and three stray ASCII bytes that look like the start of another header.
    assert_eq!(&rest[..], b"200");
    assert_eq!(
        &PING_REPLY[PING_REPLY.len() - 8..],
        b"\x00\x00\x07\x00\x03200"
    );
}
