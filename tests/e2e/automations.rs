//! Automations end to end: a datastream condition on one device writes to another device over
//! the Blynk protocol within a second, edge-triggered; a device going offline runs a notify
//! action; invalid automations are refused.

use std::time::{Duration, Instant};

use pinhouse_protocol::{Frame, command, status};
use serde_json::{Value, json};

use crate::device::RawDevice;
use crate::server::{Server, eventually};

/// The next `hardware` frame written to the device (other frames are skipped), or `None` if
/// none arrives `within`.
async fn next_write(dev: &mut RawDevice, within: Duration) -> Option<String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let frame = tokio::time::timeout_at(deadline, dev.recv())
            .await
            .ok()?
            .ok()??;
        if let Frame::Message {
            command: command::HARDWARE,
            body,
            ..
        } = frame
        {
            return Some(String::from_utf8_lossy(&body).replace('\0', " "));
        }
    }
}

async fn get(server: &Server, bearer: &str, path: &str) -> Value {
    let (status, body) = server.get_json(bearer, path).await.unwrap();
    assert!((200..300).contains(&status), "GET {path}: {status} {body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn condition_on_one_device_writes_to_another_over_the_blynk_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await.unwrap();
    let admin = server.admin_token().await.unwrap();
    let (sensor, sensor_token) = server.create_device(&admin, "Sensor").await.unwrap();
    let (pump, pump_token) = server.create_device(&admin, "Pump").await.unwrap();
    let (sensor_id, pump_id) = (sensor["id"].as_u64().unwrap(), pump["id"].as_u64().unwrap());

    let mut sensor_dev = RawDevice::connect(server.hardware).await.unwrap();
    assert_eq!(sensor_dev.login(&sensor_token).await.unwrap(), status::OK);
    let mut pump_dev = RawDevice::connect(server.hardware).await.unwrap();
    assert_eq!(pump_dev.login(&pump_token).await.unwrap(), status::OK);

    let (code, automation) = server
        .post_json(
            &admin,
            "/api/v1/automations",
            &json!({
                "name": "Start the pump when it is hot",
                "trigger": {"type": "datastream", "device_id": sensor_id, "pin": "V1", "op": ">", "value": 30},
                "actions": [{"type": "write", "device_id": pump_id, "pin": "V2", "value": "on"}],
            }),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{automation}");
    let automation_id = automation["id"].as_u64().unwrap();

    // Below the threshold: nothing.
    sensor_dev
        .send(command::HARDWARE, &[b"vw", b"1", b"25"])
        .await
        .unwrap();
    assert_eq!(
        next_write(&mut pump_dev, Duration::from_millis(700)).await,
        None
    );

    // Crossing it: the pump hears `vw 2 on` within a second.
    let sent = Instant::now();
    sensor_dev
        .send(command::HARDWARE, &[b"vw", b"1", b"31.5"])
        .await
        .unwrap();
    let heard = next_write(&mut pump_dev, Duration::from_secs(1)).await;
    let elapsed = sent.elapsed();
    assert_eq!(heard.as_deref(), Some("vw 2 on"), "within 1 s");
    println!("automation fired and reached the other device in {elapsed:?}");

    // Still above: no second firing (edge-triggered); below, then above again: fires again.
    sensor_dev
        .send(command::HARDWARE, &[b"vw", b"1", b"33"])
        .await
        .unwrap();
    assert_eq!(
        next_write(&mut pump_dev, Duration::from_millis(700)).await,
        None
    );
    sensor_dev
        .send(command::HARDWARE, &[b"vw", b"1", b"20"])
        .await
        .unwrap();
    sensor_dev
        .send(command::HARDWARE, &[b"vw", b"1", b"40"])
        .await
        .unwrap();
    assert_eq!(
        next_write(&mut pump_dev, Duration::from_secs(2))
            .await
            .as_deref(),
        Some("vw 2 on")
    );
    let record = eventually(Duration::from_secs(5), || async {
        let a = get(
            &server,
            &admin,
            &format!("/api/v1/automations/{automation_id}"),
        )
        .await;
        (a["fire_count"] == 2).then_some(a)
    })
    .await
    .expect("two firings recorded");
    assert!(record["last_fired_at"].is_string(), "{record}");
    assert!(record["last_error"].is_null(), "{record}");
    // The written value is stored like any other.
    let (code, body) = server.blynk_get(&pump_token, "V2").await.unwrap();
    assert_eq!((code, body.as_str()), (200, "on"));

    // The sensor going offline runs a notify action (queued for delivery; no SMTP server here,
    // so it fails with a clear error).
    let (code, offline) = server
        .post_json(
            &admin,
            "/api/v1/automations",
            &json!({
                "name": "Sensor lost",
                "trigger": {"type": "device_status", "device_id": sensor_id, "status": "offline"},
                "actions": [{"type": "notify", "to": ["ops@example.com"], "subject": "Sensor went offline", "message": "Check the greenhouse."}],
            }),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{offline}");
    drop(sensor_dev);
    let delivery = eventually(Duration::from_secs(10), || async {
        let list = get(&server, &admin, "/api/v1/notifications").await;
        list.as_array()?
            .iter()
            .find(|n| n["subject"] == "Sensor went offline" && n["status"] == "failed")
            .cloned()
    })
    .await
    .expect("the offline automation queued an e-mail");
    assert_eq!(delivery["recipient"], "ops@example.com");
    assert!(
        delivery["last_error"]
            .as_str()
            .unwrap()
            .contains("--smtp-url"),
        "{delivery}"
    );

    // Refused: a device of another organization, a bad time zone, a digital pin.
    let (_, other) = server
        .other_org_admin(&admin, "automations-other@example.com")
        .await
        .unwrap();
    let (other_device, _) = server.create_device(&other, "Theirs").await.unwrap();
    for (trigger, why) in [
        (
            json!({"type": "datastream", "device_id": other_device["id"], "pin": "V1", "op": ">", "value": 1}),
            "device",
        ),
        (
            json!({"type": "schedule", "at": "07:30", "time_zone": "Mars/Olympus"}),
            "time_zone",
        ),
        (
            json!({"type": "datastream", "device_id": sensor_id, "pin": "D3", "op": ">", "value": 1}),
            "virtual pin",
        ),
    ] {
        let (code, body) = server
            .post_json(
                &admin,
                "/api/v1/automations",
                &json!({"name": "bad", "trigger": trigger, "actions": [{"type": "write", "device_id": pump_id, "pin": "V2", "value": "x"}]}),
            )
            .await
            .unwrap();
        assert_eq!(code, 400, "{body}");
        assert!(body.to_string().contains(why), "{why}: {body}");
    }
    // The other organization's admin neither sees nor changes ours.
    let resp = server
        .client
        .get(server.url(&format!("/api/v1/automations/{automation_id}")))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}
