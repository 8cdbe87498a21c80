//! Protection limits: each refusal gets its documented answer (docs/protocol.md
//! §7) and is counted on /metrics.

use std::time::Duration;

use bytes::BytesMut;
use pinhouse_protocol::{Frame, command, encode_fields, status};

use crate::device::RawDevice;
use crate::server::Server;

fn refusals(metrics: &str, reason: &str) -> u64 {
    let prefix = format!("pinhouse_ingest_refusals_total{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_answer_as_documented_and_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        &[
            "--max-connections",
            "4",
            "--message-rate",
            "10",
            "--message-burst",
            "20",
            "--login-rate-per-ip",
            "1",
            "--login-burst-per-ip",
            "10",
            "--login-timeout-secs",
            "2",
            "--redirect-unknown-to",
            "node2.example:8442",
        ],
    )
    .await
    .unwrap();
    let admin = server.admin_token().await.unwrap();
    let (_device, token) = server.create_device(&admin, "Limits").await.unwrap();

    // Slowloris: connected, silent → closed after the login timeout.
    let mut silent = RawDevice::connect(server.hardware).await.unwrap();
    silent.expect_closed(Duration::from_secs(6)).await.unwrap();

    // max_connections = 4: the fifth is closed at once.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(RawDevice::connect(server.hardware).await.unwrap());
    }
    // Let the server take all four before the fifth arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fifth = RawDevice::connect(server.hardware).await.unwrap();
    fifth.expect_closed(Duration::from_secs(1)).await.unwrap();
    drop(held);

    // A device flooding writes: 100 frames in one write, quota 10/s burst 20.
    let mut dev = crate::server::eventually(Duration::from_secs(5), || async {
        let mut dev = RawDevice::connect(server.hardware).await.ok()?;
        (dev.login(&token).await.ok()? == status::OK).then_some(dev)
    })
    .await
    .expect("a device logs in once the held connections are gone");
    let mut flood = BytesMut::new();
    for i in 0..100u16 {
        let value = i.to_string();
        encode_fields(
            command::HARDWARE,
            100 + i,
            &[b"vw", b"7", value.as_bytes()],
            &mut flood,
        );
    }
    dev.send_raw(&flood).await.unwrap();
    // Exactly one QUOTA answer (at most one per second), to a dropped message.
    match dev.recv().await.unwrap() {
        Some(Frame::Response { msg_id, status }) => {
            assert_eq!(status, status::QUOTA_LIMIT);
            assert!((100 + 20..200).contains(&msg_id), "{msg_id}");
        }
        other => panic!("expected QUOTA_LIMIT, got {other:?}"),
    }
    // The connection stays open; once the bucket refills, messages go through.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let id = dev.send(command::PING, &[]).await.unwrap();
    dev.expect_response(id, status::OK).await;
    // Unknown command: ILLEGAL_COMMAND, session stays up.
    let id = dev.send(99, &[b"x"]).await.unwrap();
    dev.expect_response(id, status::ILLEGAL_COMMAND).await;
    let id = dev.send(command::PING, &[]).await.unwrap();
    dev.expect_response(id, status::OK).await;

    // Login flood from one address with unknown tokens: each is redirected
    // to the node that may own it (REDIRECT, same message id), until the
    // per-IP bucket is empty: then QUOTA_LIMIT and the connection closes.
    let mut limited = false;
    for _ in 0..12 {
        let mut flooder = RawDevice::connect(server.hardware).await.unwrap();
        let id = flooder
            .send(command::HW_LOGIN, &[b"ffffffffffffffffffffffffffffffff"])
            .await
            .unwrap();
        match flooder.recv().await.unwrap() {
            Some(Frame::Message {
                command: command::REDIRECT,
                msg_id,
                body,
            }) => {
                assert_eq!(msg_id, id);
                assert_eq!(&body[..], b"node2.example\x008442");
                flooder.expect_closed(Duration::from_secs(2)).await.unwrap();
            }
            Some(Frame::Response {
                msg_id,
                status: status::QUOTA_LIMIT,
            }) => {
                assert_eq!(msg_id, id);
                flooder.expect_closed(Duration::from_secs(2)).await.unwrap();
                limited = true;
                break;
            }
            other => panic!("unexpected login reply {other:?}"),
        }
    }
    assert!(limited, "the login flood was never limited");

    let (code, metrics) = server.get_text("/metrics").await.unwrap();
    assert_eq!(code, 200);
    assert!(refusals(&metrics, "quota") >= 80, "{metrics}");
    for reason in [
        "login_timeout",
        "max_connections",
        "login_rate",
        "unknown_command",
    ] {
        assert!(
            refusals(&metrics, reason) >= 1,
            "{reason} not counted:\n{metrics}"
        );
    }
    assert!(
        metrics.contains("pinhouse_storage_wal_records_total"),
        "{metrics}"
    );
}
