//! The walking skeleton: a real Blynk client's values travel to SQL and
//! survive a SIGKILL.

use std::time::Duration;

use serde_json::Value;

use crate::server::{Server, eventually, run_blynklib};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blynklib_values_reach_sql_and_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let server = Server::start(&data_dir).await.unwrap();
    let admin = server.admin_token().await.unwrap();
    let (device, token) = server.create_device(&admin, "Balcony").await.unwrap();
    assert_eq!(token.len(), 32, "Blynk clients send 32-character tokens");

    // The real Python client logs in, writes V1 and V2, and syncs V1 back.
    let (ok, output) = run_blynklib(server.hardware, &token, "write").unwrap();
    assert!(
        ok,
        "blynklib session failed:\n{output}\nserver log:\n{}",
        server.log_text()
    );

    // Read back through the Blynk HTTP API…
    let v1 = eventually(Duration::from_secs(10), || async {
        let (status, body) = server.blynk_get(&token, "V1").await.ok()?;
        (status == 200).then_some(body)
    })
    .await
    .expect("V1 readable over HTTP");
    assert_eq!(v1, "23.5");
    assert_eq!(
        server.blynk_get(&token, "V2").await.unwrap(),
        (200, "hello".into())
    );

    // …and through SQL.
    let sql = "SELECT device_id, pin, value, text FROM telemetry ORDER BY pin";
    let rows = server.sql(&admin, sql).await.unwrap();
    let expected = serde_json::json!([
        {"device_id": device["id"], "pin": 1, "value": 23.5},
        {"device_id": device["id"], "pin": 2, "text": "hello"},
    ]);
    assert_eq!(rows, expected, "server log:\n{}", server.log_text());

    // HTTP writes are durable on 200 too.
    let resp = server
        .client
        .get(server.url(&format!("/external/api/update?token={token}&V1=19.25")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // SIGKILL, restart on the same data dir: every value is still there, once.
    let (http, hardware) = (server.http, server.hardware);
    server.kill();
    let server = Server::start_on(&data_dir, http, hardware).await.unwrap();
    let admin = server.admin_token().await.unwrap();
    assert_eq!(
        server.blynk_get(&token, "V1").await.unwrap(),
        (200, "19.25".into())
    );
    assert_eq!(
        server.blynk_get(&token, "V2").await.unwrap(),
        (200, "hello".into())
    );
    let rows = server
        .sql(
            &admin,
            "SELECT pin, value, text FROM telemetry ORDER BY pin, ts",
        )
        .await
        .unwrap();
    let expected = serde_json::json!([
        {"pin": 1, "value": 23.5},
        {"pin": 1, "value": 19.25},
        {"pin": 2, "text": "hello"},
    ]);
    assert_eq!(rows, expected, "server log:\n{}", server.log_text());

    // The device list survives too.
    let resp = server
        .client
        .get(server.url("/api/v1/devices"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let devices: Value = resp.json().await.unwrap();
    assert_eq!(devices.as_array().map(Vec::len), Some(1), "{devices}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blynklib_with_a_wrong_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await.unwrap();
    let (ok, output) = run_blynklib(
        server.hardware,
        "0123456789abcdef0123456789abcdef",
        "badtoken",
    )
    .unwrap();
    assert!(ok, "expected refusal:\n{output}");
    assert!(output.contains("Invalid Auth Token"), "{output}");
}
