//! Runtime state reported by the device side: online/offline, info, events, properties, and
//! their REST views.

use serde_json::json;

use crate::control::now_ms;

use super::*;

const DAY_MS: i64 = 86_400_000;

fn info(firmware: &str, heartbeat: u32) -> pinhouse_protocol::body::DeviceInfo {
    pinhouse_protocol::body::DeviceInfo {
        firmware: Some(firmware.to_owned()),
        library: Some("1.4.0".to_owned()),
        build: Some("Jan 19 2024 12:25:30".to_owned()),
        heartbeat_secs: Some(heartbeat),
        buff_in: Some(1024),
        board: Some("ESP32".to_owned()),
        ..Default::default()
    }
}

#[tokio::test]
async fn online_info_offline_reach_status_and_timeline() {
    let server = TestServer::start().await;
    let token = server.login(EMAIL, PASSWORD).await;
    let template_id = server.template(&token).await;
    let (device_id, _) = server.device(&token, &template_id).await;
    let control = &server.control;

    let status = server
        .get(&format!("/api/v1/devices/{device_id}/status"), &token)
        .await;
    assert_eq!(status.status, 200, "{}", status.body);
    assert_eq!(status.body["online"], false);
    assert!(status.body["info"].is_null());

    control.device_online(device_id, now_ms()).await.unwrap();
    control
        .record_device_info(device_id, &info("1.2.3", 45), now_ms())
        .await
        .unwrap();
    let status = server
        .get(&format!("/api/v1/devices/{device_id}/status"), &token)
        .await;
    assert_eq!(status.body["online"], true, "{}", status.body);
    assert!(status.body["connected_at"].as_str().unwrap().ends_with('Z'));
    let reported = &status.body["info"];
    assert_eq!(reported["firmware"], "1.2.3");
    assert_eq!(reported["heartbeat_secs"], 45);
    assert_eq!(reported["buffer_in"], 1024);
    assert_eq!(reported["board"], "ESP32");
    assert_eq!(reported["build"], "Jan 19 2024 12:25:30");

    control.device_seen(device_id).await.unwrap();
    control.device_offline(device_id, now_ms()).await.unwrap();
    // A second offline report (e.g. a duplicate session closing) writes no second event.
    control.device_offline(device_id, now_ms()).await.unwrap();
    let status = control.device_status(device_id).await.unwrap();
    assert!(!status.online);
    assert!(status.disconnected_at.is_some());
    assert_eq!(status.info.unwrap().firmware.as_deref(), Some("1.2.3"));

    let timeline = server
        .get(&format!("/api/v1/devices/{device_id}/events"), &token)
        .await;
    assert_eq!(timeline.status, 200, "{}", timeline.body);
    let codes: Vec<&str> = timeline
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["offline", "online"]);
    assert_eq!(timeline.body[0]["source"], "system");

    // Online again, then the server restarts: everything is offline without a new event.
    control.device_online(device_id, now_ms()).await.unwrap();
    assert_eq!(control.mark_all_offline().await.unwrap(), 1);
    assert!(!control.device_status(device_id).await.unwrap().online);
    let all = control
        .device_events(device_id, &TimelineQuery::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 3);

    // Unknown devices are ignored by the runtime reports.
    control.device_online(9999, now_ms()).await.unwrap();
    control
        .record_device_info(9999, &info("x", 1), now_ms())
        .await
        .unwrap();
    assert_eq!(
        control.device_status(9999).await.unwrap(),
        DeviceStatus::default()
    );
}

#[tokio::test]
async fn device_events_follow_template_and_limits() {
    let server = TestServer::start().await;
    let token = server.login(EMAIL, PASSWORD).await;
    let reply = server
        .post(
            "/api/v1/templates",
            &token,
            json!({"name": "Boiler", "events": [
                {"code": "overheat", "name": "Overheat", "severity": "critical",
                 "notifications": {"email": true}, "notify_period_secs": 60},
                {"code": "door_open"}
            ]}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.body["events"][1]["code"], "overheat");
    assert_eq!(reply.body["events"][1]["notifications"]["email"], true);
    assert_eq!(reply.body["events"][0]["severity"], "info");
    let template_id = reply.body["id"].as_str().unwrap().to_owned();
    let (device_id, _) = server.device(&token, &template_id).await;
    let control = &server.control;

    let event = control
        .log_device_event(device_id, "overheat", Some("92 °C"))
        .await
        .unwrap();
    assert_eq!(event.name, "Overheat");
    assert_eq!(event.severity, "critical");
    assert_eq!(event.description.as_deref(), Some("92 °C"));
    assert!(event.resolved_at.is_none());

    let code_of = |r: Result<DeviceEvent>| match r {
        Err(e) => (e.status().as_u16(), e.code()),
        Ok(ev) => panic!("expected an error, got {ev:?}"),
    };
    assert_eq!(
        code_of(control.log_device_event(device_id, "overheat", None).await),
        (429, "event_too_frequent")
    );
    assert_eq!(
        code_of(control.log_device_event(device_id, "nope", None).await),
        (400, "unknown_event")
    );
    assert_eq!(
        code_of(control.log_device_event(device_id, " ", None).await),
        (400, "event_code_missing")
    );
    let long = "x".repeat(MAX_EVENT_DESCRIPTION + 1);
    assert_eq!(
        code_of(
            control
                .log_device_event(device_id, "door_open", Some(&long))
                .await
        ),
        (400, "description_too_long")
    );
    assert_eq!(
        code_of(control.log_device_event(9999, "door_open", None).await),
        (404, "not_found")
    );
    // A system code is never accepted from the device.
    assert_eq!(
        code_of(control.log_device_event(device_id, "online", None).await),
        (400, "unknown_event")
    );

    // Resolve by the device: the most recent open one.
    control
        .log_device_event(device_id, "door_open", None)
        .await
        .unwrap();
    assert_eq!(
        control
            .resolve_device_event(device_id, "door_open", false)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        control
            .resolve_device_event(device_id, "door_open", true)
            .await
            .unwrap(),
        0
    );
    let open = server
        .get(
            &format!("/api/v1/devices/{device_id}/events?open=true"),
            &token,
        )
        .await;
    assert_eq!(open.body.as_array().unwrap().len(), 1, "{}", open.body);
    assert_eq!(open.body[0]["code"], "overheat");

    // Resolve by a user over REST.
    let path = format!("/api/v1/devices/{device_id}/events/{}/resolve", event.id);
    let resolved = server.post(&path, &token, json!({})).await;
    assert_eq!(resolved.status, 200, "{}", resolved.body);
    assert!(resolved.body["resolved_at"].is_string());
    assert_eq!(resolved.body["resolved_by_user_id"], 1);
    assert_error(
        &server
            .post(
                &format!("/api/v1/devices/{device_id}/events/77777/resolve"),
                &token,
                json!({}),
            )
            .await,
        404,
        "not_found",
    );

    // The daily limit: fill today up with events of another code, then one more is refused.
    let now = super::super::time::now_ms();
    let day_start = now - now.rem_euclid(DAY_MS);
    let logged: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM device_events WHERE device_id = $1 AND source = 'device'",
    )
    .bind(i64::from(device_id))
    .fetch_one(control.pool())
    .await
    .unwrap();
    for _ in logged..MAX_EVENTS_PER_DAY {
        sqlx::query(
            "INSERT INTO device_events (device_id, source, code, name, severity, created_at)
             VALUES ($1, 'device', 'door_open', 'door_open', 'info', $2)",
        )
        .bind(i64::from(device_id))
        .bind(day_start)
        .execute(control.pool())
        .await
        .unwrap();
    }
    // Events of yesterday do not count.
    sqlx::query("UPDATE device_events SET created_at = $1 WHERE id = $2")
        .bind(day_start - 1)
        .bind(i64::from(event.id))
        .execute(control.pool())
        .await
        .unwrap();
    control
        .log_device_event(device_id, "overheat", None)
        .await
        .unwrap();
    assert_eq!(
        code_of(control.log_device_event(device_id, "door_open", None).await),
        (429, "event_limit")
    );
}

#[tokio::test]
async fn template_events_are_validated() {
    let server = TestServer::start().await;
    let token = server.login(EMAIL, PASSWORD).await;
    for events in [
        json!([{"code": "a"}, {"code": "a"}]),
        json!([{"code": "offline"}]),
        json!([{"code": "bad-code"}]),
        json!([{"code": "a", "severity": "fatal"}]),
        json!([{"code": "a", "notify_every_nth": 0}]),
    ] {
        let reply = server
            .post(
                "/api/v1/templates",
                &token,
                json!({"name": "T", "events": events}),
            )
            .await;
        assert_error(&reply, 400, "validation_failed");
    }
    let reply = server
        .post(
            "/api/v1/templates",
            &token,
            json!({"name": "T", "events": [{"code": "a", "notifications": {"fax": true}}]}),
        )
        .await;
    assert_error(&reply, 400, "bad_request");
}

#[tokio::test]
async fn properties_are_kept_per_pin_and_scoped() {
    let server = TestServer::start().await;
    let token = server.login(EMAIL, PASSWORD).await;
    let template_id = server.template(&token).await;
    let (device_id, _) = server.device(&token, &template_id).await;
    let control = &server.control;

    control
        .set_device_property(device_id, 1, "color", &["#D3435C"])
        .await
        .unwrap();
    control
        .set_device_property(device_id, 1, "labels", &["a", "b", "c"])
        .await
        .unwrap();
    control
        .set_device_property(device_id, 1, "color", &["#00FF00"])
        .await
        .unwrap();
    for (pin, name, values, code) in [
        (1, "1color", vec!["x"], "bad_property"),
        (256, "color", vec!["x"], "bad_pin"),
        (1, "color", vec![], "no_value"),
    ] {
        let err = control
            .set_device_property(device_id, pin, name, &values)
            .await
            .unwrap_err();
        assert_eq!(err.code(), code);
    }
    let big = "x".repeat(MAX_PROPERTY_VALUE_BYTES + 1);
    let err = control
        .set_device_property(device_id, 1, "label", &[&big])
        .await
        .unwrap_err();
    assert_eq!(err.code(), "property_too_large");

    let reply = server
        .get(&format!("/api/v1/devices/{device_id}/properties"), &token)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body.as_array().unwrap().len(), 2);
    assert_eq!(reply.body[0]["property"], "color");
    assert_eq!(reply.body[0]["values"], json!(["#00FF00"]));
    assert_eq!(reply.body[1]["values"], json!(["a", "b", "c"]));

    // Another organization sees none of it.
    let other = server.other_org_admin().await;
    for path in ["properties", "events", "status"] {
        let reply = server
            .get(&format!("/api/v1/devices/{device_id}/{path}"), &other)
            .await;
        assert_error(&reply, 404, "not_found");
    }
}

#[tokio::test]
async fn dynamic_tokens_expire_unless_the_device_logs_in() {
    let server = TestServer::start().await;
    let token = server.login(EMAIL, PASSWORD).await;
    let template_id = server.template(&token).await;
    let control = &server.control;
    let mut issued = Vec::new();
    for _ in 0..2 {
        let reply = server
            .post(
                "/api/v1/provisioning",
                &token,
                json!({"template_id": template_id}),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        issued.push((
            reply.body["device_id"].as_u64().unwrap() as u32,
            reply.body["token"].as_str().unwrap().to_owned(),
        ));
    }
    // The first device logs in (activated); neither has expired yet.
    control.device_online(issued[0].0, now_ms()).await.unwrap();
    for (_, device_token) in &issued {
        assert!(
            control
                .device_by_token(device_token)
                .await
                .unwrap()
                .is_some()
        );
    }
    // A day later: the unused token is refused, the activated one still works.
    sqlx::query(
        "UPDATE devices SET provision_expires_at = $1 WHERE provision_expires_at IS NOT NULL",
    )
    .bind(now_ms() - 1)
    .execute(control.pool())
    .await
    .unwrap();
    assert!(
        control
            .device_by_token(&issued[0].1)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        control
            .device_by_token(&issued[1].1)
            .await
            .unwrap()
            .is_none()
    );
    let events = server
        .get(&format!("/api/v1/devices/{}/events", issued[0].0), &token)
        .await;
    assert!(
        events
            .body
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["code"] == "provisioned"),
        "{}",
        events.body
    );
}
