//! Provisioning and claiming end to end: a dynamic token issued for a template works for a real
//! device login and completes provisioning; an HTTP-only device finishes with
//! `/external/api/provision`; static-token devices are made in a batch and a user claims one
//! with its code, becoming its owner.

use std::time::Duration;

use pinhouse_protocol::status;
use serde_json::{Value, json};

use crate::device::RawDevice;
use crate::server::{Server, eventually};

async fn get(server: &Server, bearer: &str, path: &str) -> (u16, Value) {
    let resp = server
        .client
        .get(server.url(path))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

async fn has_event(server: &Server, bearer: &str, device_id: u64, code: &str) -> bool {
    let (_, events) = get(
        server,
        bearer,
        &format!("/api/v1/devices/{device_id}/events"),
    )
    .await;
    events
        .as_array()
        .is_some_and(|list| list.iter().any(|e| e["code"] == code))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_gives_a_working_token_and_claiming_moves_a_device_to_its_user() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await.unwrap();
    let admin = server.admin_token().await.unwrap();
    let (seed, _) = server.create_device(&admin, "Seed").await.unwrap();
    let template_id = seed["template_id"].as_str().unwrap().to_owned();

    // Dynamic token: issued for the template, used by a device over the Blynk protocol.
    let (code, issued) = server
        .post_json(
            &admin,
            "/api/v1/provisioning",
            &json!({"template_id": template_id, "name": "Kitchen sensor"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{issued}");
    assert!(issued["expires_at"].is_string());
    let device_id = issued["device_id"].as_u64().unwrap();
    let token = issued["token"].as_str().unwrap().to_owned();
    let mut dev = RawDevice::connect(server.hardware).await.unwrap();
    assert_eq!(dev.login(&token).await.unwrap(), status::OK);
    assert!(
        eventually(Duration::from_secs(10), || async {
            has_event(&server, &admin, device_id, "provisioned")
                .await
                .then_some(())
        })
        .await
        .is_some(),
        "the first login completes provisioning"
    );
    let (code, body) = server
        .post_json(
            &admin,
            "/api/v1/provisioning",
            &json!({"template_id": "TMPLnope0000"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 400, "{body}");

    // An HTTP-only device finishes provisioning and reports its firmware.
    let (_, http_only) = server
        .post_json(
            &admin,
            "/api/v1/provisioning",
            &json!({"template_id": template_id}),
        )
        .await
        .unwrap();
    let http_token = http_only["token"].as_str().unwrap();
    let (code, _) = server
        .get_text(&format!(
            "/external/api/provision?token={http_token}&templateId=TMPLother000"
        ))
        .await
        .unwrap();
    assert_eq!(code, 400);
    let (code, body) = server
        .get_text(&format!(
            "/external/api/provision?token={http_token}&templateId={template_id}&ver=1.2.0&build=Nov%2026%202026&type=MCU"
        ))
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let (_, device_status) = get(
        &server,
        &admin,
        &format!("/api/v1/devices/{}/status", http_only["device_id"]),
    )
    .await;
    assert_eq!(
        device_status["info"]["firmware"], "1.2.0",
        "{device_status}"
    );

    // Static tokens: a batch with claim codes, unowned until claimed.
    let (code, batch) = server
        .post_json(
            &admin,
            "/api/v1/devices/static",
            &json!({"template_id": template_id, "count": 3, "name_prefix": "Boiler"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{batch}");
    let batch = batch.as_array().unwrap().clone();
    assert_eq!(batch.len(), 3);
    assert_eq!(batch[2]["name"], "Boiler 3");
    let claimed_id = batch[0]["device_id"].as_u64().unwrap();
    let (_, unclaimed) = get(&server, &admin, &format!("/api/v1/devices/{claimed_id}")).await;
    assert!(unclaimed["owner_user_id"].is_null(), "{unclaimed}");
    // A static token works before the claim too (the device is already flashed).
    let mut flashed = RawDevice::connect(server.hardware).await.unwrap();
    assert_eq!(
        flashed
            .login(batch[0]["token"].as_str().unwrap())
            .await
            .unwrap(),
        status::OK
    );

    // A user of the organization claims one and becomes its owner.
    let (code, user) = server
        .post_json(
            &admin,
            "/api/v1/users",
            &json!({"email": "owner@example.com", "password": "owner password", "role": "user"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{user}");
    let owner = server
        .login("owner@example.com", "owner password")
        .await
        .unwrap();
    let (code, body) = server
        .post_json(
            &owner,
            "/api/v1/devices/static",
            &json!({"template_id": template_id, "count": 1}),
        )
        .await
        .unwrap();
    assert_eq!(code, 403, "users do not make static devices: {body}");
    let code_text = batch[0]["claim_code"].as_str().unwrap().to_lowercase();
    let (code, claimed) = server
        .post_json(
            &owner,
            "/api/v1/devices/claim",
            &json!({"claim_code": code_text, "name": "My boiler"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 200, "{claimed}");
    assert_eq!(claimed["owner_user_id"], user["id"]);
    assert_eq!(claimed["name"], "My boiler");
    assert!(has_event(&server, &admin, claimed_id, "claimed").await);
    // The code works once; unknown codes are 404 as well.
    for code_text in [code_text.as_str(), "ZZZZZZZZZZZZ"] {
        let (code, _) = server
            .post_json(
                &owner,
                "/api/v1/devices/claim",
                &json!({"claim_code": code_text}),
            )
            .await
            .unwrap();
        assert_eq!(code, 404);
    }
    // The owner now manages the claimed device, and not the unclaimed ones.
    let tags = |id: u64| {
        let server = &server;
        let owner = owner.clone();
        async move {
            server
                .client
                .put(server.url(&format!("/api/v1/devices/{id}/tags")))
                .bearer_auth(&owner)
                .json(&json!(["home"]))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(tags(claimed_id).await, 200);
    assert_eq!(tags(batch[1]["device_id"].as_u64().unwrap()).await, 403);
}
