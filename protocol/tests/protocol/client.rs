//! The device client driving a whole session against a minimal in-memory server built from the
//! same codec.

use bytes::{Bytes, BytesMut};
use pinhouse_protocol::body::{Body, DeviceInfo, Hardware, HardwareSync, Internal};
use pinhouse_protocol::client::{Client, Event, State};
use pinhouse_protocol::{Codec, Frame, command, encode_message, encode_response, status};

const TOKEN: &[u8] = b"xw7ITVneg1DifRRQuPGcA7fJvV8-FAVl";

/// A toy server: answers login/info/ping with 200, sync with stored values; records writes.
#[derive(Default)]
struct ToyServer {
    inbox: BytesMut,
    writes: Vec<(u8, Bytes)>,
    info: Option<DeviceInfo>,
}

impl ToyServer {
    fn receive(&mut self, bytes: &[u8], reply: &mut BytesMut) {
        self.inbox.extend_from_slice(bytes);
        let codec = Codec::default();
        while let Some(frame) = codec.decode(&mut self.inbox).unwrap() {
            let Frame::Message {
                command,
                msg_id,
                body,
            } = frame
            else {
                continue;
            };
            match Body::parse(command, &body).unwrap() {
                Body::Login { token, .. } => {
                    let st = if token == TOKEN {
                        status::OK
                    } else {
                        status::INVALID_TOKEN
                    };
                    encode_response(msg_id, st, reply);
                }
                Body::Ping => encode_response(msg_id, status::OK, reply),
                Body::Internal(Internal::Info(info)) => {
                    self.info = Some(info);
                    encode_response(msg_id, status::OK, reply);
                }
                Body::Hardware(Hardware::VirtualWrite { pin, values }) => {
                    self.writes.push((pin, body.slice_ref(values)));
                }
                Body::HardwareSync(sync) => {
                    let wanted: Vec<u8> = match sync {
                        HardwareSync::All => self.writes.iter().map(|(p, _)| *p).collect(),
                        HardwareSync::Virtual { .. } => sync.pins().map(Result::unwrap).collect(),
                    };
                    for pin in wanted {
                        if let Some((_, v)) = self.writes.iter().rev().find(|(p, _)| *p == pin) {
                            Hardware::VirtualWrite { pin, values: v }.encode_frame(msg_id, reply);
                        }
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

#[test]
fn full_session() {
    let mut server = ToyServer::default();
    let mut client = Client::new(TOKEN);
    let mut to_server = BytesMut::new();
    let mut to_client = BytesMut::new();
    let mut spare = BytesMut::new();

    assert_eq!(client.login(&mut to_server), 1);
    server.receive(&to_server.split(), &mut to_client);
    assert_eq!(
        client.decode(&mut to_client, &mut spare).unwrap(),
        Some(Event::LoggedIn { status: 200 })
    );
    assert_eq!(client.state(), State::LoggedIn);

    let info = DeviceInfo {
        firmware: Some("1.0.0".into()),
        library: Some("pinhouse-protocol".into()),
        heartbeat_secs: Some(45),
        buff_in: Some(1024),
        board: Some("bench".into()),
        template_id: Some("TMPL0000".into()),
        ..DeviceInfo::default()
    };
    let info_id = client.info(&info, &mut to_server);
    assert_eq!(info_id, 2);
    let w1 = client.virtual_write(1, &[b"23.5"], &mut to_server);
    let w2 = client.virtual_write(2, &[b"hello", b"world"], &mut to_server);
    let ping = client.ping(&mut to_server);
    let sync = client.sync_virtual(&[2, 1], &mut to_server);
    assert_eq!((w1, w2, ping, sync), (3, 4, 5, 6));
    server.receive(&to_server.split(), &mut to_client);
    assert_eq!(server.info.as_ref(), Some(&info));

    let mut events = Vec::new();
    while let Some(e) = client.decode(&mut to_client, &mut spare).unwrap() {
        events.push(e);
    }
    assert_eq!(
        events,
        vec![
            Event::Response {
                msg_id: 2,
                status: 200
            },
            Event::Response {
                msg_id: 5,
                status: 200
            },
            Event::VirtualWrite {
                msg_id: 6,
                pin: 2,
                values: Bytes::from_static(b"hello\0world")
            },
            Event::VirtualWrite {
                msg_id: 6,
                pin: 1,
                values: Bytes::from_static(b"23.5")
            },
        ]
    );
    assert!(spare.is_empty(), "nothing to answer");
}

#[test]
fn bad_token_and_server_ping() {
    let mut server = ToyServer::default();
    let mut client = Client::new(&b"wrong-token-wrong-token-wrong-to"[..]);
    let mut wire = BytesMut::new();
    let mut back = BytesMut::new();
    client.login(&mut wire);
    server.receive(&wire, &mut back);
    let mut out = BytesMut::new();
    assert_eq!(
        client.decode(&mut back, &mut out).unwrap(),
        Some(Event::LoginRejected {
            status: status::INVALID_TOKEN
        })
    );

    let mut ping = BytesMut::new();
    encode_message(command::PING, 300, &[], &mut ping);
    assert_eq!(
        client.decode(&mut ping, &mut out).unwrap(),
        Some(Event::Ping { msg_id: 300 })
    );
    assert_eq!(
        Codec::default().decode(&mut out).unwrap(),
        Some(Frame::Response {
            msg_id: 300,
            status: 200
        })
    );
}

#[test]
fn ids_wrap_over_a_long_session() {
    let mut client = Client::new(TOKEN);
    let mut out = BytesMut::new();
    assert_eq!(client.login(&mut out), 1);
    let mut last = 1u16;
    for _ in 0..70_000u32 {
        let id = client.next_msg_id();
        assert_ne!(id, 0);
        assert_eq!(id, if last == u16::MAX { 1 } else { last + 1 });
        last = id;
    }
    // A new login restarts at 1.
    assert_eq!(client.login(&mut out), 1);
    assert_eq!(client.ping(&mut out), 2);
}

mod prop {
    use super::*;
    use pinhouse_protocol::body::Group;
    use proptest::collection::vec;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn every_client_frame_decodes_with_consecutive_ids(
            ops in vec((0..8u8, any::<u8>(), vec(any::<u8>(), 0..12)), 1..40),
        ) {
            let mut client = Client::new(TOKEN);
            let mut wire = BytesMut::new();
            let mut ids = vec![client.login(&mut wire)];
            for (op, pin, data) in &ops {
                let id = match op {
                    0 => client.virtual_write(*pin, &[data], &mut wire),
                    1 => client.ping(&mut wire),
                    2 => client.sync_all(&mut wire),
                    3 => client.sync_virtual(data, &mut wire),
                    4 => client.group(Group::BeginAt { unix_ms: u64::from(*pin) }, &mut wire),
                    5 => client.info(&DeviceInfo { heartbeat_secs: Some(u32::from(*pin)), ..Default::default() }, &mut wire),
                    6 => client.hardware(&Hardware::AnalogWrite { pin: *pin, value: data }, &mut wire),
                    _ => client.internal(&Internal::Debug { text: data }, &mut wire),
                };
                ids.push(id);
            }
            let expected: Vec<u16> = (1..=ids.len() as u16).collect();
            prop_assert_eq!(&ids, &expected);
            let codec = Codec::default();
            let mut got = Vec::new();
            while let Some(Frame::Message { command, msg_id, body }) = codec.decode(&mut wire).unwrap() {
                prop_assert!(Body::parse(command, &body).is_ok(), "command {} body {:?}", command, body);
                got.push(msg_id);
            }
            prop_assert!(wire.is_empty());
            prop_assert_eq!(got, expected);
        }
    }
}
