//! Arbitrary input: any byte soup, split into any chunks, never panics; every error is typed and
//! chunking never changes the outcome.

use bytes::BytesMut;
use pinhouse_protocol::body::{
    self, Body, Bridge, DeviceInfo, Email, Group, Hardware, HardwareSync, Internal, LogEvent,
    MultiProperty, Property, Redirect, ResolveEvent,
};
use pinhouse_protocol::client::Client;
use pinhouse_protocol::{Codec, Frame, HEADER_LEN, ProtocolError};
use proptest::collection::vec;
use proptest::prelude::*;

use super::strategies::{bytes_upto, chunks, frame};

/// What decoding a whole stream gave: the frames, then how it stopped.
#[derive(Debug, PartialEq)]
enum Outcome {
    NeedMore {
        frames: Vec<Frame>,
        left: usize,
    },
    Failed {
        frames: Vec<Frame>,
        error: ProtocolError,
    },
}

fn decode_chunked(codec: Codec, data: &[u8], cuts: &[usize]) -> Outcome {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in chunks(data, cuts) {
        buf.extend_from_slice(&chunk);
        loop {
            let before = buf.len();
            match codec.decode(&mut buf) {
                Ok(Some(f)) => {
                    assert_eq!(
                        before - buf.len(),
                        f.encoded_len(),
                        "consumed exactly one frame"
                    );
                    exercise_body(&f);
                    frames.push(f);
                }
                Ok(None) => {
                    assert_eq!(buf.len(), before, "need-more leaves the buffer untouched");
                    break;
                }
                Err(error) => {
                    assert_eq!(buf.len(), before, "errors leave the buffer untouched");
                    assert!(
                        buf.len() >= HEADER_LEN,
                        "errors come from a complete header"
                    );
                    assert!(
                        matches!(
                            error,
                            ProtocolError::BodyTooLarge { .. } | ProtocolError::ZeroMessageId
                        ),
                        "framing error {error:?}"
                    );
                    return Outcome::Failed { frames, error };
                }
            }
        }
    }
    Outcome::NeedMore {
        frames,
        left: buf.len(),
    }
}

fn is_body_error(e: &ProtocolError) -> bool {
    matches!(
        e,
        ProtocolError::MalformedBody { .. }
            | ProtocolError::InvalidPin
            | ProtocolError::InvalidNumber { .. }
    )
}

/// Runs every body parser over a body; only typed body errors are allowed.
fn exercise(command: u8, b: &[u8]) {
    let check = |r: Result<(), ProtocolError>| {
        if let Err(e) = r {
            assert!(is_body_error(&e), "unexpected error {e:?}");
        }
    };
    check(Body::parse(command, b).map(drop));
    check(Hardware::parse(b).map(|h| {
        if let Hardware::PinMode { pairs } = h {
            for p in Hardware::pin_modes(pairs) {
                p.expect("validated by parse");
            }
        }
    }));
    check(HardwareSync::parse(b).map(|s| {
        for p in s.pins() {
            p.expect("validated by parse");
        }
    }));
    check(Internal::parse(b).map(drop));
    check(Property::parse(b).map(drop));
    check(MultiProperty::parse(b).map(|m| m.pins().for_each(|p| assert!(p.is_ok()))));
    check(Group::parse(b).map(drop));
    check(LogEvent::parse(b).map(drop));
    check(ResolveEvent::parse(b).map(drop));
    check(Redirect::parse(b).map(drop));
    check(Bridge::parse(b).map(|x| {
        if let Some(h) = x.hardware() {
            h.expect("validated by parse");
        }
    }));
    check(Email::parse(b).map(drop));
    let _ = DeviceInfo::parse(b);
    let _ = body::info_pairs(b).count();
    let _ = body::fields(b).count();
}

fn exercise_body(f: &Frame) {
    if let Frame::Message { command, body, .. } = f {
        exercise(*command, body);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn byte_soup_never_panics_and_chunking_is_irrelevant(
        data in bytes_upto(512),
        cuts in vec(any::<usize>(), 0..16),
        max_body in prop_oneof![Just(0usize), 0..64usize, Just(pinhouse_protocol::DEFAULT_MAX_BODY)],
        allow_zero: bool,
    ) {
        let codec = Codec::new(max_body).with_zero_msg_id(allow_zero);
        let whole = decode_chunked(codec, &data, &[]);
        let chunked = decode_chunked(codec, &data, &cuts);
        prop_assert_eq!(whole, chunked);
    }

    #[test]
    fn valid_prefix_then_soup(
        frames in vec(frame(100), 0..8),
        soup in bytes_upto(64),
        cuts in vec(any::<usize>(), 0..8),
    ) {
        let mut wire = BytesMut::new();
        for f in &frames {
            f.encode(&mut wire);
        }
        wire.extend_from_slice(&soup);
        let outcome = decode_chunked(Codec::default(), &wire, &cuts);
        let got = match &outcome {
            Outcome::NeedMore { frames, .. } | Outcome::Failed { frames, .. } => frames,
        };
        prop_assert!(got.len() >= frames.len());
        prop_assert_eq!(&got[..frames.len()], &frames[..]);
    }

    #[test]
    fn body_parsers_never_panic(command: u8, b in bytes_upto(256)) {
        exercise(command, &b);
    }

    #[test]
    fn structured_soup_never_panics(
        parts in vec(prop_oneof![
            Just(b"vw".to_vec()), Just(b"vr".to_vec()), Just(b"pm".to_vec()), Just(b"dw".to_vec()),
            Just(b"meta".to_vec()), Just(b"get".to_vec()), Just(b"set".to_vec()), Just(b"i".to_vec()),
            Just(b"t".to_vec()), Just(b"b".to_vec()), Just(b"all".to_vec()), Just(b"255".to_vec()),
            Just(b"256".to_vec()), Just(b"1".to_vec()), Just(Vec::new()), Just(b"mcu".to_vec()),
            Just(b"ota".to_vec()), Just(b"utc".to_vec()), Just(b"rtc".to_vec()), Just(b"sync".to_vec()),
            bytes_upto(6),
        ], 0..8),
        command: u8,
    ) {
        // Near-valid bodies reach deeper into the parsers than random bytes.
        let body = parts.join(&0u8);
        exercise(command, &body);
    }

    #[test]
    fn client_never_panics(data in bytes_upto(256), cuts in vec(any::<usize>(), 0..8)) {
        let mut client = Client::new(&b"0123456789abcdef0123456789abcdef"[..]);
        let mut out = BytesMut::new();
        client.login(&mut out);
        let mut buf = BytesMut::new();
        'outer: for chunk in chunks(&data, &cuts) {
            buf.extend_from_slice(&chunk);
            loop {
                match client.decode(&mut buf, &mut out) {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => break 'outer,
                }
            }
        }
    }
}

#[test]
fn oversized_header_fails_before_body_arrives() {
    let codec = Codec::new(100);
    let mut buf = BytesMut::from(&[20u8, 0, 1, 0xFF, 0xFF][..]);
    assert_eq!(
        codec.decode(&mut buf),
        Err(ProtocolError::BodyTooLarge {
            len: 65_535,
            max: 100
        })
    );
}

#[test]
fn every_single_byte_and_short_prefix_is_need_more() {
    let codec = Codec::default();
    for b in 0..=255u8 {
        for len in 1..HEADER_LEN {
            let mut buf = BytesMut::from(&vec![b; len][..]);
            assert_eq!(codec.decode(&mut buf), Ok(None));
        }
    }
}
