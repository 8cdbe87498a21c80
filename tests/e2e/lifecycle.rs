//! The telemetry lifecycle through the server: deleting a device deletes its telemetry (and
//! closes its sessions); an organization's retention drops its old day partitions.

use std::time::Duration;

use pinhouse_protocol::{command, status};
use serde_json::{Value, json};

use crate::device::RawDevice;
use crate::server::{Server, eventually, now_ms};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Imports `(ms, value)` points to V1 of the device with `token`.
async fn import(server: &Server, token: &str, points: &[(i64, f64)]) {
    let body: Vec<Value> = points.iter().map(|(t, v)| json!([t, v])).collect();
    let resp = server
        .client
        .post(server.url(&format!("/external/api/batch/update?token={token}&pin=V1")))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

/// Rows of `device_id` that SQL sees.
async fn rows_of(server: &Server, bearer: &str, device_id: u64) -> u64 {
    let rows = server
        .sql(
            bearer,
            &format!("SELECT count(*) AS n FROM telemetry WHERE device_id = {device_id}"),
        )
        .await
        .unwrap();
    rows[0]["n"].as_u64().unwrap()
}

/// Polls until `device_id` has `want` rows (20 s at most); returns the last count seen.
async fn wait_rows(server: &Server, bearer: &str, device_id: u64, want: u64) -> u64 {
    let seen = std::cell::Cell::new(u64::MAX);
    let found = eventually(Duration::from_secs(20), || {
        let seen = &seen;
        async move {
            seen.set(rows_of(server, bearer, device_id).await);
            (seen.get() == want).then_some(())
        }
    })
    .await;
    match found {
        Some(()) => want,
        None => seen.get(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_device_closes_its_sessions_and_deletes_its_telemetry() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await.unwrap();
    let admin = server.admin_token().await.unwrap();
    let (gone, gone_token) = server.create_device(&admin, "Scrapped").await.unwrap();
    let (kept, kept_token) = server.create_device(&admin, "Kept").await.unwrap();
    let (gone_id, kept_id) = (gone["id"].as_u64().unwrap(), kept["id"].as_u64().unwrap());
    let now = now_ms();
    let history = [
        (now - 2 * DAY_MS, 1.5),
        (now - DAY_MS, 2.5),
        (now - HOUR_MS, 3.5),
    ];
    import(&server, &gone_token, &history).await;
    import(&server, &kept_token, &history).await;
    // A live session of the device, writing too.
    let mut dev = RawDevice::connect(server.hardware).await.unwrap();
    assert_eq!(dev.login(&gone_token).await.unwrap(), status::OK);
    dev.send(command::HARDWARE, &[b"vw", b"1", b"42"])
        .await
        .unwrap();
    assert_eq!(wait_rows(&server, &admin, gone_id, 4).await, 4);
    assert_eq!(rows_of(&server, &admin, kept_id).await, 3);

    let status = server
        .delete(&admin, &format!("/api/v1/devices/{gone_id}"))
        .await
        .unwrap();
    assert_eq!(status, 204);
    dev.expect_closed(Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        wait_rows(&server, &admin, gone_id, 0).await,
        0,
        "the deleted device's rows are gone"
    );
    assert_eq!(
        rows_of(&server, &admin, kept_id).await,
        3,
        "others keep theirs"
    );
    // Its token logs in no more; the other device's last value is still served.
    let mut again = RawDevice::connect(server.hardware).await.unwrap();
    assert_ne!(again.login(&gone_token).await.unwrap(), status::OK);
    let (code, body) = server.blynk_get(&kept_token, "V1").await.unwrap();
    assert_eq!((code, body.as_str()), (200, "3.5"));
    let log = server.log_text();
    assert!(
        log.contains("sessions of a deleted device closed"),
        "the closing is logged"
    );
    assert!(
        log.contains("telemetry of deleted devices removed"),
        "the deletion is logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organization_retention_drops_old_day_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("data"), &["--retention-days", "30"])
        .await
        .unwrap();
    let admin = server.admin_token().await.unwrap();
    let (device, token) = server.create_device(&admin, "Logger").await.unwrap();
    let device_id = device["id"].as_u64().unwrap();
    let (code, orgs) = server
        .get_json(&admin, "/api/v1/organizations")
        .await
        .unwrap();
    assert_eq!(code, 200);
    let org = orgs[0]["id"].as_u64().unwrap();
    assert_eq!(orgs[0]["retention_days"], Value::Null, "the server default");
    let org_path = format!("/api/v1/organizations/{org}");
    let now = now_ms();
    import(
        &server,
        &token,
        &[
            (now - 40 * DAY_MS, 1.0),
            (now - 10 * DAY_MS, 2.0),
            (now - HOUR_MS, 3.0),
        ],
    )
    .await;
    assert_eq!(rows_of(&server, &admin, device_id).await, 3);

    // Bad settings change nothing, not even the name given beside them.
    for bad in [
        json!({"retention_days": 0}),
        json!({"retention_days": 36_501}),
        json!({"name": "Renamed", "retention_days": -1}),
        json!({}),
    ] {
        let (code, body) = server.patch_json(&admin, &org_path, &bad).await.unwrap();
        assert_eq!(code, 400, "{bad}: {body}");
    }
    let (_, unchanged) = server.get_json(&admin, &org_path).await.unwrap();
    assert_ne!(unchanged["name"], "Renamed");

    // 20 days: the 40-day-old partition goes at once, the rest stays.
    let (code, body) = server
        .patch_json(&admin, &org_path, &json!({"retention_days": 20}))
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["retention_days"], 20);
    assert_eq!(wait_rows(&server, &admin, device_id, 2).await, 2);
    // 5 days: the 10-day-old one too; the last hour is kept.
    let (code, body) = server
        .patch_json(&admin, &org_path, &json!({"retention_days": 5}))
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(wait_rows(&server, &admin, device_id, 1).await, 1);
    let rows = server
        .sql(
            &admin,
            &format!("SELECT value FROM telemetry WHERE device_id = {device_id}"),
        )
        .await
        .unwrap();
    assert_eq!(rows, json!([{"value": 3.0}]));
    // Back to the server's default; renaming alone leaves the retention as it is.
    let (code, body) = server
        .patch_json(&admin, &org_path, &json!({"retention_days": null}))
        .await
        .unwrap();
    assert_eq!((code, &body["retention_days"]), (200, &Value::Null));
    let (code, body) = server
        .patch_json(&admin, &org_path, &json!({"name": "Renamed"}))
        .await
        .unwrap();
    assert_eq!((code, body["name"].as_str()), (200, Some("Renamed")));
    assert!(server.log_text().contains("telemetry retention applied"));
}

/// Parquet objects under `prefix/parquet/` in the bucket.
async fn parquet_objects(client: &object_store::aws::AmazonS3, prefix: &str) -> Vec<String> {
    use futures::TryStreamExt;
    let root = object_store::path::Path::from(format!("{prefix}/parquet"));
    object_store::ObjectStore::list(client, Some(&root))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_files_are_kept_in_an_s3_bucket_and_a_lost_disk_is_restored_from_it() {
    let bucket = "pinhouse-telemetry";
    let s3 = crate::server::S3Server::start(bucket).await.unwrap();
    let client = s3.client(bucket);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = [
        "--parquet-store",
        "s3://pinhouse-telemetry/prod",
        "--flush-interval-secs",
        "1",
    ];
    let server = Server::start_with_env(&data, &args, &s3.env())
        .await
        .unwrap();
    let admin = server.admin_token().await.unwrap();
    let (device, token) = server.create_device(&admin, "Bucketed").await.unwrap();
    let device_id = device["id"].as_u64().unwrap();
    let now = now_ms();
    let points = [
        (now - 3 * HOUR_MS, 1.25),
        (now - 2 * HOUR_MS, 2.5),
        (now - HOUR_MS, 3.75),
    ];
    import(&server, &token, &points).await;
    // One file per UTC day of the points, in the bucket within moments of the flush.
    let mut days: Vec<i64> = points.iter().map(|(t, _)| t / DAY_MS).collect();
    days.dedup();
    let uploaded = eventually(Duration::from_secs(30), || {
        let client = &client;
        let want = days.len();
        async move {
            let objects = parquet_objects(client, "prod").await;
            (objects.len() == want).then_some(objects)
        }
    })
    .await
    .expect("the flushed files in the bucket");
    assert!(
        uploaded.iter().all(|k| k.ends_with(".parquet")),
        "{uploaded:?}"
    );
    // Files go up before the catalog commit lists them, the catalog after it.
    let catalog = eventually(Duration::from_secs(30), || {
        let client = &client;
        let want = days.len();
        async move {
            let bytes = object_store::ObjectStoreExt::get(
                client,
                &object_store::path::Path::from("prod/catalog.json"),
            )
            .await
            .ok()?
            .bytes()
            .await
            .ok()?;
            let catalog: Value = serde_json::from_slice(&bytes).ok()?;
            (catalog["files"].as_array()?.len() == want).then_some(catalog)
        }
    })
    .await
    .expect("the catalog listing the files in the bucket");
    assert_eq!(catalog["files"].as_array().unwrap().len(), days.len());
    server.kill();

    // The telemetry disk is lost; the control-plane database survives.
    std::fs::remove_dir_all(data.join("telemetry")).unwrap();
    let server = Server::start_with_env(&data, &args, &s3.env())
        .await
        .unwrap();
    let admin = server.admin_token().await.unwrap();
    let rows = server
        .sql(
            &admin,
            &format!("SELECT value FROM telemetry WHERE device_id = {device_id} ORDER BY ts"),
        )
        .await
        .unwrap();
    assert_eq!(
        rows,
        json!([{"value": 1.25}, {"value": 2.5}, {"value": 3.75}]),
        "every value is back from the bucket"
    );
    let (code, body) = server.blynk_get(&token, "V1").await.unwrap();
    assert_eq!((code, body.as_str()), (200, "3.75"), "and the last value");
    let log = server.log_text();
    assert!(
        log.contains("restored the catalog from the bucket"),
        "{log}"
    );
}
