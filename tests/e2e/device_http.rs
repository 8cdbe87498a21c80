//! The Blynk device HTTP API routes that reach the control plane: `logEvent` and
//! `update/property`, with Blynk's status codes and messages, and their REST views.

use serde_json::{Value, json};

use crate::server::Server;

/// A template declaring event `overheat` and a device of it: (device JSON, auth token).
async fn device_with_events(server: &Server, admin: &str) -> (Value, String) {
    let (status, template) = server
        .post_json(
            admin,
            "/api/v1/templates",
            &json!({"name": "Boiler", "datastreams": [{"pin": 1, "name": "T", "type": "double"}],
                    "events": [{"code": "overheat", "name": "Overheat", "severity": "critical"}]}),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{template}");
    let (status, device) = server
        .post_json(
            admin,
            "/api/v1/devices",
            &json!({"name": "Boiler 1", "template_id": template["id"]}),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{device}");
    let token = device["token"].as_str().unwrap().to_owned();
    (device, token)
}

async fn get_json(server: &Server, bearer: Option<&str>, path: &str) -> (u16, Value) {
    let mut request = server.client.get(server.url(path));
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    let resp = request.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn message(body: &Value) -> Option<&str> {
    body["error"]["message"].as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_event_and_properties_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await.unwrap();
    let admin = server.admin_token().await.unwrap();
    let (device, token) = device_with_events(&server, &admin).await;
    let id = device["id"].as_u64().unwrap();

    let (status, body) = server
        .get_text(&format!(
            "/external/api/logEvent?token={token}&code=overheat&description=92%20C"
        ))
        .await
        .unwrap();
    assert_eq!((status, body.as_str()), (200, ""));
    let (status, body) = get_json(
        &server,
        None,
        &format!("/external/api/logEvent?token={token}&code=overheat"),
    )
    .await;
    assert_eq!(status, 400);
    assert!(message(&body).unwrap().contains("1 second"), "{body}");
    let (status, body) = get_json(
        &server,
        None,
        &format!("/external/api/logEvent?token={token}&code=nope"),
    )
    .await;
    assert_eq!(
        (status, message(&body)),
        (
            400,
            Some("Can't find Event with this code in Product template")
        )
    );
    let (status, body) = get_json(
        &server,
        None,
        &format!("/external/api/logEvent?token={token}"),
    )
    .await;
    assert_eq!(
        (status, message(&body)),
        (400, Some("Event code is not provided."))
    );
    let (status, body) = get_json(&server, None, "/external/api/logEvent?token=x&code=a").await;
    assert_eq!((status, message(&body)), (400, Some("Invalid token.")));

    let (status, timeline) = get_json(
        &server,
        Some(&admin),
        &format!("/api/v1/devices/{id}/events"),
    )
    .await;
    assert_eq!(status, 200, "{timeline}");
    assert_eq!(timeline[0]["code"], "overheat");
    assert_eq!(timeline[0]["description"], "92 C");
    assert_eq!(timeline[0]["severity"], "critical");

    let (status, body) = server
        .get_text(&format!(
            "/external/api/update/property?token={token}&pin=V1&color=%23D3435C&labels=a&labels=b"
        ))
        .await
        .unwrap();
    assert_eq!((status, body.as_str()), (200, ""));
    let (status, body) = get_json(
        &server,
        None,
        &format!("/external/api/update/property?token={token}&pin=X1&color=red"),
    )
    .await;
    assert_eq!((status, message(&body)), (400, Some("Wrong pin format.")));
    let (status, body) = get_json(
        &server,
        None,
        &format!("/external/api/update/property?token={token}&pin=V1"),
    )
    .await;
    assert_eq!(
        (status, message(&body)),
        (400, Some("No properties for update provided."))
    );
    let (status, props) = get_json(
        &server,
        Some(&admin),
        &format!("/api/v1/devices/{id}/properties"),
    )
    .await;
    assert_eq!(status, 200, "{props}");
    assert_eq!(props[0]["property"], "color");
    assert_eq!(props[0]["values"], json!(["#D3435C"]));
    assert_eq!(props[1]["values"], json!(["a", "b"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_token_in_path_routes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await.unwrap();
    let admin = server.admin_token().await.unwrap();
    let (device, token) = server.create_device(&admin, "Legacy").await.unwrap();
    let id = device["id"].as_u64().unwrap();

    let text = |path: String| {
        let client = server.client.clone();
        let url = server.url(&path);
        async move {
            let resp = client.get(url).send().await.unwrap();
            let status = resp.status().as_u16();
            let kind = resp
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            (status, kind, resp.text().await.unwrap())
        }
    };
    let (status, _, body) = text(format!("/{token}/isHardwareConnected")).await;
    assert_eq!((status, body.as_str()), (200, "false"));
    let (status, kind, body) = text("/nope/isHardwareConnected".into()).await;
    assert_eq!((status, body.as_str()), (400, "Invalid token."));
    assert!(kind.starts_with("text/plain"), "{kind}");

    let (status, _, body) = text(format!("/{token}/update/V1?value=21.5")).await;
    assert_eq!((status, body.as_str()), (200, ""));
    let (status, _, body) = text(format!("/{token}/get/V1")).await;
    assert_eq!((status, body.as_str()), (200, r#"["21.5"]"#));
    let (status, _, body) = text(format!("/{token}/get/v2")).await;
    assert_eq!(
        (status, body.as_str()),
        (400, "Requested pin doesn't exist in the app.")
    );
    let (status, _, body) = text(format!("/{token}/get/Q1")).await;
    assert_eq!((status, body.as_str()), (400, "Wrong pin format."));
    // Out of the datastream's range (-40..85): clamped.
    let (status, _, _) = text(format!("/{token}/update/V1?value=120")).await;
    assert_eq!(status, 200);
    let (_, _, body) = text(format!("/{token}/get/V1")).await;
    assert_eq!(body, r#"["85"]"#);
    let (status, _, body) = text(format!("/{token}/update/V1?value=warm")).await;
    assert_eq!(
        (status, body.as_str()),
        (400, "Value doesn't match the Datastream data type.")
    );
    let (status, _, body) = text(format!("/{token}/update/V1")).await;
    assert_eq!(
        (status, body.as_str()),
        (400, "No pin for update provided.")
    );

    // PUT with a JSON array, also under the older /pin/ alias.
    let resp = server
        .client
        .put(server.url(&format!("/{token}/update/V2")))
        .json(&json!(["open"]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (status, _, body) = text(format!("/{token}/get/V2")).await;
    assert_eq!((status, body.as_str()), (200, r#"["open"]"#));
    let resp = server
        .client
        .put(server.url(&format!("/{token}/pin/V2")))
        .body("[\"closed\"]")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
    assert_eq!(
        resp.text().await.unwrap(),
        "Unexpected content type. Expecting application/json."
    );

    // Widget properties through the legacy update route.
    let (status, _, body) = text(format!("/{token}/update/V1?color=%23D3435C")).await;
    assert_eq!((status, body.as_str()), (200, ""));
    let (status, props) = get_json(
        &server,
        Some(&admin),
        &format!("/api/v1/devices/{id}/properties"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(props[0]["values"], json!(["#D3435C"]));
}

/// What a device does over the Blynk protocol (login, info, property, logEvent, resolveEvent,
/// disconnect) shows in the REST views of its status, properties and timeline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_activity_reaches_status_properties_and_timeline() {
    use crate::device::RawDevice;
    use pinhouse_protocol::{command, status};
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await.unwrap();
    let admin = server.admin_token().await.unwrap();
    let (device, token) = device_with_events(&server, &admin).await;
    let id = device["id"].as_u64().unwrap();
    let get = |path: String| {
        let (server, admin) = (&server, admin.clone());
        async move { get_json(server, Some(&admin), &path).await.1 }
    };

    let mut dev = RawDevice::connect(server.hardware).await.unwrap();
    assert_eq!(dev.login(&token).await.unwrap(), status::OK);
    let fields: [&[u8]; 10] = [
        b"ver", b"1.3.2", b"fw", b"2.0.1", b"h-beat", b"45", b"buff-in", b"1024", b"dev", b"ESP32",
    ];
    let info = dev.send(command::INTERNAL, &fields).await.unwrap();
    dev.expect_response(info, status::OK).await;
    let prop = dev
        .send(command::PROPERTY, &[b"1", b"color", b"#D3435C"])
        .await
        .unwrap();
    dev.expect_response(prop, status::OK).await;
    let event = dev
        .send(command::EVENT_LOG, &[b"overheat", b"92 C"])
        .await
        .unwrap();
    dev.expect_response(event, status::OK).await;
    // Well-formed but not in the template: answered OK (the library ignores the
    // answer), refused by the control plane, never on the timeline.
    let unknown = dev.send(command::EVENT_LOG, &[b"nope"]).await.unwrap();
    dev.expect_response(unknown, status::OK).await;

    let online = crate::server::eventually(Duration::from_secs(10), || async {
        let status = get(format!("/api/v1/devices/{id}/status")).await;
        (status["online"] == true && status["info"]["firmware"] == "2.0.1").then_some(status)
    })
    .await
    .expect("status shows the device online with its info");
    assert_eq!(online["info"]["heartbeat_secs"], 45, "{online}");
    assert_eq!(online["info"]["buffer_in"], 1024, "{online}");
    assert_eq!(online["info"]["board"], "ESP32", "{online}");

    let props = crate::server::eventually(Duration::from_secs(10), || async {
        let props = get(format!("/api/v1/devices/{id}/properties")).await;
        (props.as_array().is_some_and(|p| !p.is_empty())).then_some(props)
    })
    .await
    .expect("property stored");
    assert_eq!(props[0]["pin"], 1, "{props}");
    assert_eq!(props[0]["property"], "color", "{props}");
    assert_eq!(props[0]["values"], json!(["#D3435C"]), "{props}");

    let resolve = dev
        .send(command::EVENT_CLEAR, &[b"overheat"])
        .await
        .unwrap();
    dev.expect_response(resolve, status::OK).await;
    drop(dev);

    let timeline = crate::server::eventually(Duration::from_secs(10), || async {
        let events = get(format!("/api/v1/devices/{id}/events")).await;
        let codes: Vec<&str> = events
            .as_array()?
            .iter()
            .filter_map(|e| e["code"].as_str())
            .collect();
        codes.contains(&"offline").then_some(events.clone())
    })
    .await
    .expect("offline on the timeline after the disconnect");
    let events = timeline.as_array().unwrap();
    let by_code = |code: &str| events.iter().find(|e| e["code"] == code);
    assert!(by_code("online").is_some(), "{timeline}");
    assert!(by_code("nope").is_none(), "{timeline}");
    let overheat = by_code("overheat").expect("device event on the timeline");
    assert_eq!(overheat["source"], "device", "{timeline}");
    assert_eq!(overheat["description"], "92 C", "{timeline}");
    assert!(overheat["resolved_at"].is_string(), "{timeline}");
    let status = get(format!("/api/v1/devices/{id}/status")).await;
    assert_eq!(status["online"], false, "{status}");
    assert!(status["disconnected_at"].is_string(), "{status}");
}
