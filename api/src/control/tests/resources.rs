//! Templates and devices: validation, creation, reads, organization isolation.

use serde_json::json;

use super::*;

#[tokio::test]
async fn templates_create_list_get() {
    let server = TestServer::start().await;
    let token = server.login(EMAIL, PASSWORD).await;
    let id = server.template(&token).await;
    assert!(id.starts_with("TMPL") && id.len() == 12, "{id}");

    let reply = server.get(&format!("/api/v1/templates/{id}"), &token).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["name"], "Weather");
    let ds = &reply.body["datastreams"];
    assert_eq!(ds[0]["type"], "double");
    assert_eq!(ds[0]["min"], -40.0);
    assert_eq!(ds[0]["units"], "°C");
    assert_eq!(ds[1]["pin"], 1);

    let reply = server.get("/api/v1/templates", &token).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.as_array().unwrap().len(), 1);
    assert_eq!(reply.body[0]["datastreams"].as_array().unwrap().len(), 2);

    let datastreams = server.control.datastreams(&id).await.unwrap();
    assert_eq!(datastreams.len(), 2);
    assert_eq!(datastreams[0].kind, "double");
    assert_eq!(datastreams[0].decimals, Some(1));

    assert_error(
        &server.get("/api/v1/templates/TMPLnope1234", &token).await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn template_validation_errors() {
    let server = TestServer::start().await;
    let token = server.login(EMAIL, PASSWORD).await;
    let cases = [
        json!({"name": "", "datastreams": []}),
        json!({"name": "T", "datastreams": [{"pin": 256, "name": "x", "type": "integer"}]}),
        json!({"name": "T", "datastreams": [
            {"pin": 3, "name": "a", "type": "integer"},
            {"pin": 3, "name": "b", "type": "integer"}]}),
        json!({"name": "T", "datastreams": [{"pin": 1, "name": "x", "type": "float"}]}),
        json!({"name": "T", "datastreams": [{"pin": 1, "name": "x", "type": "integer", "min": 5, "max": 1}]}),
    ];
    for body in cases {
        let reply = server.post("/api/v1/templates", &token, body.clone()).await;
        assert_error(&reply, 400, "validation_failed");
    }
    // Missing field, wrong field type: 400 bad_request, from the JSON extractor.
    let reply = server
        .post("/api/v1/templates", &token, json!({"datastreams": []}))
        .await;
    assert_error(&reply, 400, "bad_request");
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("name")
    );
    let reply = server
        .post(
            "/api/v1/templates",
            &token,
            json!({"name": "T", "datastreams": [{"pin": "V1"}]}),
        )
        .await;
    assert_error(&reply, 400, "bad_request");
    assert!(server.control.templates(1).await.unwrap().is_empty());
}

#[tokio::test]
async fn devices_create_list_get() {
    let server = TestServer::start().await;
    let token = server.login(EMAIL, PASSWORD).await;
    let template_id = server.template(&token).await;
    let reply = server
        .post(
            "/api/v1/devices",
            &token,
            json!({"name": "Balcony", "template_id": template_id}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let device = reply.body;
    let id = device["id"].as_u64().unwrap();
    assert!(u32::try_from(id).is_ok());
    let location = format!("location: /api/v1/devices/{id}");
    assert!(
        reply.headers.lines().any(|l| l == location),
        "{}",
        reply.headers
    );
    let device_token = device["token"].as_str().unwrap();
    assert_eq!(device_token.len(), 32);
    assert!(
        device_token
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    assert_eq!(device["template_id"], template_id.as_str());
    assert_eq!(device["org_id"], 1);
    assert_eq!(device["name"], "Balcony");
    assert!(device["created_at"].as_str().unwrap().ends_with('Z'));

    let reply = server.get(&format!("/api/v1/devices/{id}"), &token).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, device);
    let reply = server.get("/api/v1/devices", &token).await;
    assert_eq!(reply.body.as_array().unwrap().len(), 1);

    let record = server
        .control
        .device_by_token(device_token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u64::from(record.id), id);
    assert!(
        server
            .control
            .device_by_token(&"0".repeat(32))
            .await
            .unwrap()
            .is_none()
    );
    assert!(server.control.device_by_token("").await.unwrap().is_none());
    assert!(
        server
            .control
            .device(record.org_id, record.id)
            .await
            .unwrap()
            .is_some()
    );

    for path in [
        "/api/v1/devices/999",
        "/api/v1/devices/abc",
        "/api/v1/devices/-1",
    ] {
        assert_error(&server.get(path, &token).await, 404, "not_found");
    }
}

#[tokio::test]
async fn device_with_unknown_template() {
    let server = TestServer::start().await;
    let token = server.login(EMAIL, PASSWORD).await;
    for template_id in ["TMPLunknown1", ""] {
        let reply = server
            .post(
                "/api/v1/devices",
                &token,
                json!({"name": "D", "template_id": template_id}),
            )
            .await;
        assert_error(&reply, 400, "validation_failed");
        assert!(
            reply.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("template")
        );
    }
    let template_id = server.template(&token).await;
    let reply = server
        .post(
            "/api/v1/devices",
            &token,
            json!({"name": " ", "template_id": template_id}),
        )
        .await;
    assert_error(&reply, 400, "validation_failed");
}

#[tokio::test]
async fn organizations_are_isolated() {
    let server = TestServer::start().await;
    let token_a = server.login(EMAIL, PASSWORD).await;
    let template_a = server.template(&token_a).await;
    let reply = server
        .post(
            "/api/v1/devices",
            &token_a,
            json!({"name": "A", "template_id": template_a}),
        )
        .await;
    let device_a = reply.body["id"].as_u64().unwrap();
    let device_a_token = reply.body["token"].as_str().unwrap().to_owned();

    let org_b = server
        .control
        .create_organization("Other", None)
        .await
        .unwrap();
    server
        .control
        .create_user(
            org_b.id,
            &new_user("b@example.com", "password-b", Role::Staff),
        )
        .await
        .unwrap();
    let token_b = server.login("b@example.com", "password-b").await;

    assert_eq!(
        server.get("/api/v1/devices", &token_b).await.body,
        json!([])
    );
    assert_eq!(
        server.get("/api/v1/templates", &token_b).await.body,
        json!([])
    );
    assert_error(
        &server
            .get(&format!("/api/v1/devices/{device_a}"), &token_b)
            .await,
        404,
        "not_found",
    );
    assert_error(
        &server
            .get(&format!("/api/v1/templates/{template_a}"), &token_b)
            .await,
        404,
        "not_found",
    );
    // Org B cannot attach a device to org A's template.
    let reply = server
        .post(
            "/api/v1/devices",
            &token_b,
            json!({"name": "B", "template_id": template_a}),
        )
        .await;
    assert_error(&reply, 400, "validation_failed");
    // Its own template and device work and stay invisible to org A.
    let template_b = server.template(&token_b).await;
    let reply = server
        .post(
            "/api/v1/devices",
            &token_b,
            json!({"name": "B", "template_id": template_b}),
        )
        .await;
    assert_eq!(reply.status, 201);
    assert_eq!(reply.body["org_id"], org_b.id);
    assert_eq!(
        server
            .get("/api/v1/devices", &token_a)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(
        server
            .control
            .device(org_b.id, u32::try_from(device_a).unwrap())
            .await
            .unwrap()
            .is_none()
    );
    // The device side still finds A's device by token, with its organization.
    let record = server
        .control
        .device_by_token(&device_a_token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.org_id, 1);
}

#[tokio::test]
async fn template_dashboard_and_datastream_options() {
    let server = TestServer::start().await;
    let token = server.login(EMAIL, PASSWORD).await;
    let reply = server
        .post(
            "/api/v1/templates",
            &token,
            json!({"name": "Lamp", "datastreams": [
                {"pin": 0, "name": "Power", "type": "integer", "min": 0, "max": 1,
                 "default_value": "0", "sync_on_reconnect": true},
                {"pin": 1, "name": "Mode", "type": "string"}
            ], "dashboard": {"widgets": [{"type": "switch", "pin": 0, "x": 0, "y": 0}]}}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let id = reply.body["id"].as_str().unwrap().to_owned();
    let ds = &reply.body["datastreams"];
    assert_eq!(ds[0]["default_value"], "0");
    assert_eq!(ds[0]["sync_on_reconnect"], true);
    assert_eq!(ds[1]["sync_on_reconnect"], false);
    assert!(ds[1]["default_value"].is_null());
    assert_eq!(reply.body["dashboard"]["widgets"][0]["type"], "switch");
    let streams = server.control.datastreams(&id).await.unwrap();
    assert!(streams[0].sync_on_reconnect);

    let path = format!("/api/v1/templates/{id}/dashboard");
    let layout = json!({"widgets": [{"type": "gauge", "pin": 0}], "theme": "dark"});
    let reply = server
        .call("PUT", &path, Some(&token), Some(&layout.to_string()))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["dashboard"], layout);
    let reply = server.get(&format!("/api/v1/templates/{id}"), &token).await;
    assert_eq!(reply.body["dashboard"], layout);
    for bad in [json!({"widgets": {}}), json!([1, 2])] {
        let reply = server
            .call("PUT", &path, Some(&token), Some(&bad.to_string()))
            .await;
        assert_error(&reply, 400, "validation_failed");
    }
    let huge = json!({"widgets": ["x".repeat(300 * 1024)]});
    let reply = server
        .call("PUT", &path, Some(&token), Some(&huge.to_string()))
        .await;
    assert_error(&reply, 400, "validation_failed");

    for bad in [
        json!({"pin": 0, "name": "P", "type": "integer", "default_value": "1.5"}),
        json!({"pin": 0, "name": "P", "type": "double", "default_value": "warm"}),
    ] {
        let reply = server
            .post(
                "/api/v1/templates",
                &token,
                json!({"name": "T", "datastreams": [bad]}),
            )
            .await;
        assert_error(&reply, 400, "validation_failed");
    }
}

#[tokio::test]
async fn deleting_a_device_queues_the_deletion_of_its_telemetry() {
    let server = TestServer::start().await;
    let token = server.login(EMAIL, PASSWORD).await;
    let template_id = server.template(&token).await;
    let (first, _) = server.device(&token, &template_id).await;
    let (second, _) = server.device(&token, &template_id).await;
    let control = &server.control;
    assert!(
        control
            .pending_telemetry_deletions()
            .await
            .unwrap()
            .is_empty()
    );
    for id in [first, second] {
        let reply = server
            .call(
                "DELETE",
                &format!("/api/v1/devices/{id}"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(reply.status, 204, "{}", reply.body);
    }
    // Deleting it again is a 404 and queues nothing more.
    let reply = server
        .call(
            "DELETE",
            &format!("/api/v1/devices/{first}"),
            Some(&token),
            None,
        )
        .await;
    assert_error(&reply, 404, "not_found");
    assert_eq!(
        control.pending_telemetry_deletions().await.unwrap(),
        vec![(1, first), (1, second)]
    );
    control.telemetry_deleted(&[(1, first)]).await.unwrap();
    assert_eq!(
        control.pending_telemetry_deletions().await.unwrap(),
        vec![(1, second)]
    );
}

#[tokio::test]
async fn organization_retention_settings() {
    let server = TestServer::start().await;
    let token = server.login(EMAIL, PASSWORD).await;
    let control = &server.control;
    assert!(control.retention_settings().await.unwrap().is_empty());
    let patch = |body: Value| {
        let token = token.clone();
        let server = &server;
        async move {
            server
                .call(
                    "PATCH",
                    "/api/v1/organizations/1",
                    Some(&token),
                    Some(&body.to_string()),
                )
                .await
        }
    };
    let reply = patch(json!({"retention_days": 90})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["retention_days"], 90);
    assert_eq!(control.retention_settings().await.unwrap(), vec![(1, 90)]);
    for bad in [
        json!({"retention_days": 0}),
        json!({"retention_days": 40_000}),
        json!({"retention_days": "ninety"}),
        json!({}),
    ] {
        assert_eq!(patch(bad.clone()).await.status, 400, "{bad}");
    }
    let reply = patch(json!({"name": "Renamed"})).await;
    assert_eq!(
        reply.body["retention_days"], 90,
        "a rename keeps the retention"
    );
    let reply = patch(json!({"retention_days": null})).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["retention_days"], Value::Null);
    assert_eq!(reply.body["name"], "Renamed");
    assert!(control.retention_settings().await.unwrap().is_empty());
}
