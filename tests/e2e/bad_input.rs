//! Bad input gets a clear answer and the server goes on.

use std::time::Duration;

use pinhouse_protocol::{Frame, command, status};
use serde_json::{Value, json};

use crate::device::RawDevice;
use crate::server::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_device_input_is_refused_and_the_server_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await.unwrap();
    let admin = server.admin_token().await.unwrap();
    let (_device, token) = server.create_device(&admin, "Probe").await.unwrap();

    // Wrong token: INVALID_TOKEN (9) to the login's message id.
    let mut dev = RawDevice::connect(server.hardware).await.unwrap();
    assert_eq!(
        dev.login("ffffffffffffffffffffffffffffffff").await.unwrap(),
        status::INVALID_TOKEN
    );

    // Garbage first packet (an HTTP request on the device port): closed.
    let mut dev = RawDevice::connect(server.hardware).await.unwrap();
    dev.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    dev.expect_closed(Duration::from_secs(5)).await.unwrap();

    // A frame longer than the limit after login: the connection is closed.
    let mut dev = RawDevice::connect(server.hardware).await.unwrap();
    assert_eq!(dev.login(&token).await.unwrap(), status::OK);
    dev.send_raw(&[command::HARDWARE, 0, 9, 0xFF, 0xFF])
        .await
        .unwrap();
    dev.expect_closed(Duration::from_secs(5)).await.unwrap();

    // Zero message id: closed.
    let mut dev = RawDevice::connect(server.hardware).await.unwrap();
    assert_eq!(dev.login(&token).await.unwrap(), status::OK);
    dev.send_raw(&[command::PING, 0, 0, 0, 0]).await.unwrap();
    dev.expect_closed(Duration::from_secs(5)).await.unwrap();

    // Something other than a login first: NOT_AUTHENTICATED, closed.
    let mut dev = RawDevice::connect(server.hardware).await.unwrap();
    dev.send(command::HARDWARE, &[b"vw", b"1", b"5"])
        .await
        .unwrap();
    dev.expect_response(1, status::NOT_AUTHENTICATED).await;
    dev.expect_closed(Duration::from_secs(5)).await.unwrap();

    // A malformed hardware body gets ILLEGAL_COMMAND; the session stays up.
    let mut dev = RawDevice::connect(server.hardware).await.unwrap();
    assert_eq!(dev.login(&token).await.unwrap(), status::OK);
    let id = dev
        .send(command::HARDWARE, &[b"vw", b"not-a-pin", b"1"])
        .await
        .unwrap();
    dev.expect_response(id, status::ILLEGAL_COMMAND).await;
    let id = dev.send(command::PING, &[]).await.unwrap();
    dev.expect_response(id, status::OK).await;

    // After all that, a good device still works end to end.
    let id = dev
        .send(command::HARDWARE, &[b"vw", b"1", b"42"])
        .await
        .unwrap();
    let sync_id = dev
        .send(command::HARDWARE_SYNC, &[b"vr", b"1"])
        .await
        .unwrap();
    assert!(sync_id > id);
    let v1 = crate::server::eventually(Duration::from_secs(5), || async {
        let (code, body) = server.blynk_get(&token, "V1").await.ok()?;
        (code == 200).then_some(body)
    })
    .await;
    assert_eq!(v1.as_deref(), Some("42"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_protocol_basics() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await.unwrap();
    let admin = server.admin_token().await.unwrap();
    let (device, token) = server.create_device(&admin, "Protocol").await.unwrap();

    let mut dev = RawDevice::connect(server.hardware).await.unwrap();
    assert_eq!(dev.login(&token).await.unwrap(), status::OK);
    // Info message with a 2 s heartbeat → answered with OK.
    let id = dev
        .send(
            command::INTERNAL,
            &[
                b"ver", b"1.0", b"h-beat", b"2", b"buff-in", b"1024", b"dev", b"test",
            ],
        )
        .await
        .unwrap();
    dev.expect_response(id, status::OK).await;

    // Online while connected.
    let (_, online) = server
        .get_text(&format!("/external/api/isHardwareConnected?token={token}"))
        .await
        .unwrap();
    assert_eq!(online, "true");

    // Values written, then synced back with the request's message id.
    dev.send(command::HARDWARE, &[b"vw", b"1", b"21.5"])
        .await
        .unwrap();
    dev.send(command::HARDWARE, &[b"vw", b"2", b"on"])
        .await
        .unwrap();
    crate::server::eventually(Duration::from_secs(5), || async {
        let (code, _) = server.blynk_get(&token, "V2").await.ok()?;
        (code == 200).then_some(())
    })
    .await
    .expect("V2 stored");
    let sync_id = dev.send(command::HARDWARE_SYNC, &[]).await.unwrap();
    let mut synced = Vec::new();
    for _ in 0..2 {
        match dev.recv().await.unwrap() {
            Some(Frame::Message {
                command: command::HARDWARE,
                msg_id,
                body,
            }) => {
                assert_eq!(msg_id, sync_id);
                synced.push(String::from_utf8(body.to_vec()).unwrap().replace('\0', " "));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(synced, vec!["vw 1 21.5", "vw 2 on"]);

    // A write from the HTTP API reaches the connected device as `hardware vw`.
    let resp = server
        .client
        .get(server.url(&format!("/external/api/update?token={token}&V1=30")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    match dev.recv().await.unwrap() {
        Some(Frame::Message {
            command: command::HARDWARE,
            body,
            ..
        }) => assert_eq!(&body[..], b"vw\x001\x0030"),
        other => panic!("unexpected {other:?}"),
    }

    // Silent past the heartbeat timeout (2 s × 2.3 → 5 s): the server closes.
    dev.expect_closed(Duration::from_secs(12)).await.unwrap();
    let offline = crate::server::eventually(Duration::from_secs(3), || async {
        let (_, text) = server
            .get_text(&format!("/external/api/isHardwareConnected?token={token}"))
            .await
            .ok()?;
        (text == "false").then_some(())
    })
    .await;
    assert!(offline.is_some());
    let _ = device;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_http_input_gets_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await.unwrap();
    let admin = server.admin_token().await.unwrap();
    let (_device, token) = server.create_device(&admin, "Http").await.unwrap();

    // No or bad credentials: 401 JSON.
    let resp = server
        .client
        .get(server.url("/api/v1/devices"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"]["message"].is_string(), "{body}");
    let resp = server
        .client
        .post(server.url("/api/v1/auth/login"))
        .json(&json!({"email": crate::server::ADMIN_EMAIL, "password": "wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // Malformed JSON: 400 JSON error.
    let resp = server
        .client
        .post(server.url("/api/v1/templates"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"]["message"].is_string(), "{body}");

    // Unknown template id.
    let (status, body) = server
        .post_json(
            &admin,
            "/api/v1/devices",
            &json!({"name": "x", "template_id": "TMPLnope0000"}),
        )
        .await
        .unwrap();
    assert!(status == 400 || status == 404, "{status} {body}");
    assert!(body["error"]["message"].is_string(), "{body}");

    // Blynk HTTP API errors, with Blynk's messages.
    let get = |path: String| {
        let client = server.client.clone();
        let url = server.url(&path);
        async move {
            let resp = client.get(url).send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, body) = get("/external/api/get?token=nope&V1".into()).await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (400, Some("Invalid token."))
    );
    let (status, body) = get(format!("/external/api/update?token={token}&X9=1")).await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (400, Some("Wrong pin format."))
    );
    let (status, body) = get(format!("/external/api/update?token={token}&V1=warm")).await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (400, Some("Value doesn't match the Datastream data type."))
    );
    let (status, body) = get(format!("/external/api/update?token={token}&V9=1")).await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (400, Some("No datastream setup for that pin."))
    );

    // SQL: syntax errors are 400, statements that could escape the tenant are refused.
    let resp = server
        .client
        .post(server.url("/api/v1/sql"))
        .bearer_auth(&admin)
        .body("SELEC nonsense")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = server
        .client
        .post(server.url("/api/v1/sql"))
        .bearer_auth(&admin)
        .body("CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '/'")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    // CSV output.
    server
        .client
        .get(server.url(&format!("/external/api/update?token={token}&V1=5")))
        .send()
        .await
        .unwrap();
    let csv = server
        .client
        .post(server.url("/api/v1/sql?format=csv"))
        .bearer_auth(&admin)
        .body("SELECT pin, value FROM telemetry")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(csv, "pin,value\n1,5.0\n");
}
