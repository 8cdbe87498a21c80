//! The Blynk device HTTP API routes that reach the control plane: `logEvent` and
//! `update/property`, with Blynk's status codes and messages, and their REST views.

use serde_json::{Value, json};

use crate::server::{Server, now_ms};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamped_import_get_all_and_history_export() {
    use std::io::Read;

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await.unwrap();
    let admin = server.admin_token().await.unwrap();
    let (device, token) = server.create_device(&admin, "Importer").await.unwrap();
    let device_id = device["id"].as_u64().unwrap();
    let hour = 3_600_000;
    let now = now_ms();
    let (t1, t2, t3) = (now - 3 * hour, now - 2 * hour, now - hour);
    let import = |body: String, content_type: &'static str| {
        let server = &server;
        let token = token.clone();
        async move {
            let resp = server
                .client
                .post(server.url(&format!("/external/api/batch/update?token={token}&pin=V1")))
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };

    // A device re-sending its offline buffer: the same points twice are stored once.
    let points = format!(r#"[[{t1}, 20.5], [{t2}, 21.5], [{t3}, "22"]]"#);
    for _ in 0..2 {
        assert_eq!(
            import(points.clone(), "application/json").await,
            (200, "OK".to_owned())
        );
    }
    let (code, body) = import(points.clone(), "text/plain").await;
    assert_eq!(code, 400);
    assert_eq!(
        message(&serde_json::from_str(&body).unwrap()),
        Some("Unknown content type.")
    );
    let too_many: Vec<(i64, f64)> = (0..10_001).map(|i| (now - i, 1.0)).collect();
    let (code, body) = import(
        serde_json::to_string(&too_many).unwrap(),
        "application/json",
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(
        message(&serde_json::from_str(&body).unwrap()),
        Some("Too much data in batch. Maximum batch size is 10000 points.")
    );

    // getAll: every pin's last value keyed by lower-case pin.
    let (code, _) = server
        .get_text(&format!("/external/api/update?token={token}&V2=open"))
        .await
        .unwrap();
    assert_eq!(code, 200);
    let (code, all) = get_json(
        &server,
        None,
        &format!("/external/api/getAll?token={token}"),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(all, json!({"v1": 22.0, "v2": "open"}));

    // data/get: hourly counts, raw rows, local-time formats, Blynk's errors.
    let export = |query: &str| format!("/external/api/data/get?token={token}&pin=V1&{query}");
    let (code, hourly) = get_json(
        &server,
        None,
        &export("period=DAY&granularityType=HOURLY&sourceType=COUNT"),
    )
    .await;
    assert_eq!(code, 200, "{hourly}");
    let total: u64 = hourly["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["value"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 3, "three points, each once: {hourly}");
    let (code, raw) = get_json(&server, None, &export("period=DAY")).await;
    assert_eq!(code, 200, "{raw}");
    assert_eq!(raw["rows"], 3);
    assert_eq!(raw["data"][0], json!({"ts": t1, "value": 20.5}));
    assert_eq!(raw["data"][2]["value"], 22.0);
    let (code, local) = get_json(
        &server,
        None,
        &export("period=DAY&format=ISO_SIMPLE&tzName=Europe/Amsterdam"),
    )
    .await;
    assert_eq!(code, 200, "{local}");
    let text = local["data"][0]["ts"].as_str().unwrap();
    assert_eq!(text.len(), "2018-06-07 22:01:20".len(), "{text}");
    let (code, body) = get_json(&server, None, "/external/api/data/get?pin=V1").await;
    assert_eq!((code, message(&body)), (400, Some("No token provided.")));
    for bad in [
        "period=YEAR",
        "period=THREE_MONTHS&granularityType=RAW_DATA",
        "sourceType=MEDIAN",
    ] {
        let (code, body) = get_json(&server, None, &export(bad)).await;
        assert_eq!(
            (code, message(&body)),
            (400, Some("Request with incorrect parameters")),
            "{bad}"
        );
    }

    // Legacy: history import by PUT, and the gzip CSV export behind a 301.
    let resp = server
        .client
        .put(server.url(&format!("/{token}/extra/pin/V1")))
        .header("content-type", "application/json")
        .body(format!(
            r#"[{{"value": "19", "timestamp": {}}}]"#,
            now - 4 * hour
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = no_redirects
        .get(server.url(&format!("/{token}/data/V1")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 301);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.ends_with(".csv.gz"), "{location}");
    let gz = server
        .client
        .get(server.url(&location))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let mut csv = String::new();
    flate2::read::GzDecoder::new(gz.as_ref())
        .read_to_string(&mut csv)
        .unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 4, "one row per minute with data: {csv}");
    let first: Vec<&str> = rows[0].split(',').collect();
    assert_eq!(first[0], "19");
    assert_eq!(first[2], device_id.to_string());
}
