//! Dashboard reads over HTTP: `/api/v1/devices/{id}/values` and `/history`,
//! authenticated and scoped to the caller's organization.

use serde_json::{Value, json};

use crate::server::Server;

async fn get(server: &Server, bearer: &str, path: &str) -> (u16, Value) {
    let resp = server
        .client
        .get(server.url(path))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_and_history_of_own_devices_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await.unwrap();
    let admin = server.admin_token().await.unwrap();
    let (device, token) = server.create_device(&admin, "Balcony").await.unwrap();
    let id = device["id"].as_u64().unwrap();

    for (pin, value) in [("V1", "20"), ("V1", "22.5"), ("V1", "19"), ("V2", "sunny")] {
        let (status, body) = server
            .get_text(&format!("/external/api/update?token={token}&{pin}={value}"))
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
    }

    let (status, values) = get(&server, &admin, &format!("/api/v1/devices/{id}/values")).await;
    assert_eq!(status, 200, "{values}");
    assert_eq!(values["device_id"], json!(id));
    assert_eq!(values["values"]["V1"]["value"], json!(19.0));
    assert_eq!(values["values"]["V2"]["value"], json!("sunny"));
    assert!(values["values"]["V1"]["ts"].as_i64().unwrap() > 1_700_000_000_000);

    // One bucket over the last day: all three numbers of V1 (the text of V2 never counts).
    let one = format!("/api/v1/devices/{id}/history?pin=V1&points=1");
    let (status, h) = get(&server, &admin, &format!("{one}&agg=count")).await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(h["pin"], "V1");
    assert_eq!(h["agg"], "count");
    let points = h["points"].as_array().unwrap();
    let total: u64 = points.iter().map(|p| p["value"].as_u64().unwrap()).sum();
    assert_eq!(total, 3, "{h}");
    let (_, h) = get(&server, &admin, &format!("{one}&agg=minmax")).await;
    let mins: Vec<f64> = h["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["min"].as_f64().unwrap())
        .collect();
    let maxs: Vec<f64> = h["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["max"].as_f64().unwrap())
        .collect();
    assert_eq!(mins.iter().cloned().fold(f64::MAX, f64::min), 19.0);
    assert_eq!(maxs.iter().cloned().fold(f64::MIN, f64::max), 22.5);
    let (_, h) = get(&server, &admin, &format!("{one}&agg=sum")).await;
    let sum: f64 = h["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_f64().unwrap())
        .sum();
    assert_eq!(sum, 61.5);
    let (_, h) = get(
        &server,
        &admin,
        &format!("/api/v1/devices/{id}/history?pin=V2"),
    )
    .await;
    assert_eq!(h["points"], json!([]));

    // Bad parameters are 400 in the JSON error shape.
    for query in [
        "",
        "?pin=Q1",
        "?pin=V1&agg=median",
        "?pin=V1&points=0",
        "?pin=V1&from=5&to=5",
        "?pin=V1&from=x",
    ] {
        let (status, body) = get(
            &server,
            &admin,
            &format!("/api/v1/devices/{id}/history{query}"),
        )
        .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], "bad_request", "{query}: {body}");
    }

    // A user of another organization sees neither the values nor the history.
    let (_, other) = server
        .other_org_admin(&admin, "b@example.com")
        .await
        .unwrap();
    let other = other.as_str();
    for path in [
        format!("/api/v1/devices/{id}/values"),
        format!("/api/v1/devices/{id}/history?pin=V1"),
        "/api/v1/devices/999999/values".to_owned(),
    ] {
        let (status, body) = get(&server, other, &path).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (status, _) = get(
        &server,
        "not-a-token",
        &format!("/api/v1/devices/{id}/values"),
    )
    .await;
    assert_eq!(status, 401);
}
