//! Device metadata end to end: template fields with types and defaults; values set through the
//! REST API, by the device over the Blynk protocol (`internal meta set|get`, `utc tz_name`) and
//! through the device HTTP API (`device/meta`, `device/meta/update`), with Blynk's error texts.

use pinhouse_protocol::{Frame, command, status};
use serde_json::{Value, json};

use crate::device::RawDevice;
use crate::server::Server;

async fn put_json(server: &Server, bearer: &str, path: &str, body: &Value) -> (u16, Value) {
    server.put_json(bearer, path, body).await.unwrap()
}

fn value_of<'a>(list: &'a Value, name: &str) -> &'a Value {
    &list
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no field {name} in {list}"))["value"]
}

/// Sends `internal` with `fields` and returns the reply: an `internal` body with NULs shown as
/// spaces, or `RESPONSE <status>`.
async fn internal(dev: &mut RawDevice, fields: &[&[u8]]) -> String {
    let id = dev.send(command::INTERNAL, fields).await.unwrap();
    loop {
        match dev.recv().await.unwrap() {
            Some(Frame::Message {
                command: command::INTERNAL,
                msg_id,
                body,
            }) if msg_id == id => return String::from_utf8_lossy(&body).replace('\0', " "),
            Some(Frame::Response { msg_id, status }) if msg_id == id => {
                return format!("RESPONSE {status}");
            }
            Some(_) => {}
            None => panic!("connection closed"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_through_rest_protocol_and_device_http_api() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await.unwrap();
    let admin = server.admin_token().await.unwrap();
    let (code, template) = server
        .post_json(
            &admin,
            "/api/v1/templates",
            &json!({"name": "Boiler", "metadata": [
                {"name": "Serial", "type": "text"},
                {"name": "Floor", "type": "number", "default_value": "1"}
            ]}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{template}");
    assert_eq!(template["metadata"][1]["id"], 2);
    // A template may not redeclare a system field or give a default of the wrong type.
    for bad in [
        json!([{"name": "Time Zone", "type": "text"}]),
        json!([{"name": "Floor", "type": "number", "default_value": "high"}]),
    ] {
        let (code, body) = server
            .post_json(
                &admin,
                "/api/v1/templates",
                &json!({"name": "Bad", "metadata": bad}),
            )
            .await
            .unwrap();
        assert_eq!(code, 400, "{body}");
    }
    let (code, device) = server
        .post_json(
            &admin,
            "/api/v1/devices",
            &json!({"name": "Boiler 1", "template_id": template["id"]}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{device}");
    let id = device["id"].as_u64().unwrap();
    let token = device["token"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/devices/{id}/metadata");

    // REST: system fields, the template's fields with defaults; typed writes.
    let resp = server
        .client
        .get(server.url(&path))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let list: Value = resp.json().await.unwrap();
    assert_eq!(value_of(&list, "Device Name"), "Boiler 1");
    assert_eq!(value_of(&list, "Floor"), "1");
    assert!(value_of(&list, "Serial").is_null());
    let (code, list) = put_json(
        &server,
        &admin,
        &path,
        &json!({"Floor": "3", "Time Zone": "Europe/Amsterdam"}),
    )
    .await;
    assert_eq!(code, 200, "{list}");
    assert_eq!(value_of(&list, "Floor"), "3");
    for bad in [
        json!({"Floor": "high"}),
        json!({"Device Name": "x"}),
        json!({"Nope": "x"}),
    ] {
        let (code, body) = put_json(&server, &admin, &path, &bad).await;
        assert_eq!(code, 400, "{bad}: {body}");
    }

    // The device: meta get / set, the auth token, its time zone.
    let mut dev = RawDevice::connect(server.hardware).await.unwrap();
    assert_eq!(dev.login(&token).await.unwrap(), status::OK);
    assert_eq!(
        internal(&mut dev, &[b"meta", b"get", b"Floor"]).await,
        "meta Floor 3"
    );
    assert_eq!(
        internal(&mut dev, &[b"meta", b"get", b"Auth Token"]).await,
        format!("meta Auth Token {token}")
    );
    assert_eq!(
        internal(
            &mut dev,
            &[b"meta", b"set", b"Hotspot Name", b"Blynk Boiler-AB12"]
        )
        .await,
        format!("RESPONSE {}", status::OK)
    );
    assert_eq!(
        internal(&mut dev, &[b"meta", b"get", b"Hotspot Name"]).await,
        "meta Hotspot Name Blynk Boiler-AB12"
    );
    assert_eq!(
        internal(&mut dev, &[b"meta", b"get", b"Nope"]).await,
        format!("RESPONSE {}", status::NO_DATA)
    );
    assert_eq!(
        internal(&mut dev, &[b"utc", b"tz_name"]).await,
        "utc tz_name Europe/Amsterdam"
    );

    // The device HTTP API: by field id or name, Blynk's error texts.
    let get = |query: String| {
        let server = &server;
        async move { server.get_text(&query).await.unwrap() }
    };
    assert_eq!(
        get(format!(
            "/external/api/device/meta?token={token}&metaFieldId=2"
        ))
        .await,
        (200, "3".to_owned())
    );
    assert_eq!(
        get(format!(
            "/external/api/device/meta?token={token}&metaFieldName=Hotspot%20Name"
        ))
        .await,
        (200, "Blynk Boiler-AB12".to_owned())
    );
    assert_eq!(
        get(format!(
            "/external/api/device/meta/update?token={token}&metaFieldId=1&value=SN-0042"
        ))
        .await
        .0,
        200
    );
    assert_eq!(
        get(format!(
            "/external/api/device/meta?token={token}&metaFieldName=Serial"
        ))
        .await,
        (200, "SN-0042".to_owned())
    );
    for (query, message) in [
        ("metaFieldId=9", "MetaField doesn't exist."),
        ("metaFieldId=x", "Wrong metaField format."),
        ("metaFieldId=2&value=high", "Wrong value"),
    ] {
        let path = if query.contains("value=") {
            format!("/external/api/device/meta/update?token={token}&{query}")
        } else {
            format!("/external/api/device/meta?token={token}&{query}")
        };
        let (code, body) = get(path).await;
        assert_eq!(code, 400, "{query}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"]["message"], message, "{query}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_follow_their_templates_changes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await.unwrap();
    let admin = server.admin_token().await.unwrap();
    let (device, token) = server.create_device(&admin, "Follower").await.unwrap();
    let template_id = device["template_id"].as_str().unwrap().to_owned();
    let id = device["id"].as_u64().unwrap();

    // V5 is not a datastream of the template yet.
    let (code, body) = server
        .get_text(&format!("/external/api/update?token={token}&V5=7"))
        .await
        .unwrap();
    assert_eq!(code, 400, "{body}");

    // The template gains V5 (an integer clamped to 0–10) and a metadata field.
    let (code, template) = put_json(
        &server,
        &admin,
        &format!("/api/v1/templates/{template_id}"),
        &json!({"name": "Weather station v2", "datastreams": [
            {"pin": 1, "name": "Temperature", "type": "double"},
            {"pin": 5, "name": "Level", "type": "integer", "min": 0, "max": 10}
        ], "metadata": [{"name": "Site", "type": "text", "default_value": "North"}]}),
    )
    .await;
    assert_eq!(code, 200, "{template}");
    assert_eq!(template["name"], "Weather station v2");
    assert_eq!(template["datastreams"].as_array().unwrap().len(), 2);

    let (code, body) = server
        .get_text(&format!("/external/api/update?token={token}&V5=70"))
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        server.blynk_get(&token, "V5").await.unwrap(),
        (200, "10".to_owned()),
        "clamped to the new max"
    );
    let resp = server
        .client
        .get(server.url(&format!("/api/v1/devices/{id}/metadata")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let list: Value = resp.json().await.unwrap();
    assert_eq!(value_of(&list, "Site"), "North");

    // V2 (a string datastream) was dropped: writing it is refused now.
    let (code, _) = server
        .get_text(&format!("/external/api/update?token={token}&V2=x"))
        .await
        .unwrap();
    assert_eq!(code, 400);
}
