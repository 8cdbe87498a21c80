//! `POST /api/v1/sql` output formats (JSON, CSV, Arrow IPC stream, Parquet, by
//! `?format=` or `Accept`), the per-query time limit, and organization scoping.

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::json;

use crate::server::Server;

async fn post_sql(
    server: &Server,
    bearer: &str,
    query: &str,
    sql: &str,
    accept: Option<&str>,
) -> (u16, String, bytes::Bytes) {
    let mut request = server
        .client
        .post(server.url(&format!("/api/v1/sql{query}")))
        .bearer_auth(bearer)
        .body(sql.to_owned());
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let resp = request.send().await.unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, resp.bytes().await.unwrap())
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formats_time_limit_and_scope() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        &["--sql-time-limit-secs", "2", "--sql-memory-limit-mb", "16"],
    )
    .await
    .unwrap();
    let admin = server.admin_token().await.unwrap();
    let (_, token) = server.create_device(&admin, "Meter").await.unwrap();
    for value in 1..=5 {
        let (status, body) = server
            .get_text(&format!("/external/api/update?token={token}&V1={value}"))
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
    }
    for state in ["on", "off", "on"] {
        let (status, body) = server
            .get_text(&format!("/external/api/update?token={token}&V2={state}"))
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let sql = "SELECT pin, value FROM telemetry WHERE pin = 1 ORDER BY ts";

    let rows_json = server.sql(&admin, sql).await.unwrap();
    assert_eq!(rows_json.as_array().unwrap().len(), 5, "{rows_json}");
    assert_eq!(rows_json[4], json!({"pin": 1, "value": 5.0}));
    let (status, _, empty) = post_sql(
        &server,
        &admin,
        "",
        "SELECT pin FROM telemetry WHERE pin = 99",
        None,
    )
    .await;
    assert_eq!((status, &empty[..]), (200, &b"[]"[..]));

    let (status, content_type, csv) = post_sql(&server, &admin, "?format=csv", sql, None).await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    let csv = String::from_utf8(csv.to_vec()).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines,
        ["pin,value", "1,1.0", "1,2.0", "1,3.0", "1,4.0", "1,5.0"]
    );

    let arrow_type = "application/vnd.apache.arrow.stream";
    let (status, content_type, ipc) = post_sql(&server, &admin, "", sql, Some(arrow_type)).await;
    assert_eq!((status, content_type.as_str()), (200, arrow_type));
    let reader = StreamReader::try_new(std::io::Cursor::new(ipc.to_vec()), None).unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    assert_eq!(rows(&batches), 5);
    assert_eq!(batches[0].schema().field(1).name(), "value");

    let (status, content_type, parquet) =
        post_sql(&server, &admin, "?format=parquet", sql, None).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/vnd.apache.parquet");
    let reader = ParquetRecordBatchReaderBuilder::try_new(parquet)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    assert_eq!(rows(&batches), 5);

    // Text states (a dictionary column inside) in every format.
    let states =
        "SELECT text, count(*) AS n FROM telemetry WHERE pin = 2 GROUP BY text ORDER BY text";
    assert_eq!(
        server.sql(&admin, states).await.unwrap(),
        json!([{"text": "off", "n": 1}, {"text": "on", "n": 2}])
    );
    let (status, _, csv) = post_sql(&server, &admin, "?format=csv", states, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        String::from_utf8(csv.to_vec()).unwrap(),
        "text,n\noff,1\non,2\n"
    );
    let text_of = |batches: &[RecordBatch]| -> Vec<String> {
        batches
            .iter()
            .flat_map(|b| {
                let text = datafusion::arrow::compute::cast(
                    b.column(0),
                    &datafusion::arrow::datatypes::DataType::Utf8,
                )
                .unwrap();
                text.as_string::<i32>()
                    .iter()
                    .map(|t| t.unwrap_or_default().to_owned())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let (status, _, ipc) = post_sql(&server, &admin, "", states, Some(arrow_type)).await;
    assert_eq!(status, 200);
    let reader = StreamReader::try_new(std::io::Cursor::new(ipc.to_vec()), None).unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    assert_eq!(text_of(&batches), ["off", "on"]);
    let (status, _, parquet) = post_sql(&server, &admin, "?format=parquet", states, None).await;
    assert_eq!(status, 200);
    let batches: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(parquet)
        .unwrap()
        .build()
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(text_of(&batches), ["off", "on"]);

    let (status, _, body) = post_sql(&server, &admin, "?format=xml", sql, None).await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));

    // A query that would run for minutes is stopped at the time limit with a
    // clear error, and the server goes on answering.
    let started = std::time::Instant::now();
    let (status, _, body) = post_sql(
        &server,
        &admin,
        "",
        "SELECT count(*) FROM range(100000000000) a WHERE a.value % 7 = 3",
        None,
    )
    .await;
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 408, "{body}");
    assert!(body.contains("time limit"), "{body}");
    assert!(
        started.elapsed().as_secs() < 10,
        "stopped late: {:?}",
        started.elapsed()
    );
    assert_eq!(
        server
            .sql(&admin, sql)
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        5
    );

    // Another organization's admin sees none of these rows.
    let (_, other) = server
        .other_org_admin(&admin, "other@example.com")
        .await
        .unwrap();
    let seen = server.sql(&other, sql).await.unwrap();
    assert_eq!(seen, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_tables_join_names_with_values_and_stay_in_scope() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await.unwrap();
    let root = server.admin_token().await.unwrap();
    let (alpha, alpha_token) = server.create_device(&root, "Alpha").await.unwrap();
    let (_, child) = server
        .other_org_admin(&root, "catalog-child@example.com")
        .await
        .unwrap();
    let (_, beta_token) = server.create_device(&child, "Beta").await.unwrap();
    for (token, value) in [(&alpha_token, "21.5"), (&beta_token, "7")] {
        let (code, body) = server
            .get_text(&format!("/external/api/update?token={token}&V1={value}"))
            .await
            .unwrap();
        assert_eq!(code, 200, "{body}");
    }
    let alpha_id = alpha["id"].as_u64().unwrap();
    let resp = server
        .client
        .put(server.url(&format!("/api/v1/devices/{alpha_id}/tags")))
        .bearer_auth(&root)
        .json(&json!(["north", "boiler"]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = server
        .client
        .put(server.url(&format!("/api/v1/devices/{alpha_id}/metadata")))
        .bearer_auth(&root)
        .json(&json!({"Time Zone": "Europe/Amsterdam"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Values joined with device names, tags and datastream names (the root admin sees its
    // sub-organization too).
    let rows = server
        .sql(
            &root,
            "SELECT d.name AS device, d.tags, s.name AS stream, t.value
             FROM telemetry t
             JOIN devices d ON d.device_id = t.device_id
             JOIN datastreams s ON s.template_id = d.template_id AND s.pin = t.pin
             ORDER BY d.name",
        )
        .await
        .unwrap();
    assert_eq!(
        rows,
        json!([
            {"device": "Alpha", "tags": "boiler,north", "stream": "Temperature", "value": 21.5},
            // The JSON format leaves out null columns.
            {"device": "Beta", "stream": "Temperature", "value": 7.0},
        ])
    );
    let rows = server
        .sql(
            &root,
            "SELECT value FROM metadata WHERE device_id = (SELECT device_id FROM devices WHERE name = 'Alpha') AND name = 'Time Zone'",
        )
        .await
        .unwrap();
    assert_eq!(rows, json!([{"value": "Europe/Amsterdam"}]));

    // The child organization sees only its own rows, however the SQL is written.
    for sql in [
        "SELECT name FROM devices",
        "WITH x AS (SELECT * FROM devices) SELECT name FROM x",
        "SELECT name FROM devices WHERE device_id IN (SELECT device_id FROM telemetry)",
        "SELECT d.name FROM devices d JOIN templates t ON t.template_id = d.template_id",
        "SELECT name FROM devices UNION SELECT name FROM templates WHERE false",
    ] {
        let rows = server.sql(&child, sql).await.unwrap();
        assert_eq!(rows, json!([{"name": "Beta"}]), "{sql}");
    }
    let rows = server
        .sql(&child, "SELECT count(*) AS n FROM templates")
        .await
        .unwrap();
    assert_eq!(rows, json!([{"n": 1}]));
    let rows = server
        .sql(&child, "SELECT count(*) AS n FROM metadata")
        .await
        .unwrap();
    assert_eq!(
        rows,
        json!([{"n": 0}]),
        "the root device's metadata stays hidden"
    );

    // information_schema lists table names, the same for everyone, and no rows.
    let tables = |bearer: String| {
        let server = &server;
        async move {
            server
                .sql(
                    &bearer,
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
                )
                .await
                .unwrap()
        }
    };
    let expected = json!([
        {"table_name": "datastreams"}, {"table_name": "devices"}, {"table_name": "events"},
        {"table_name": "metadata"}, {"table_name": "telemetry"}, {"table_name": "templates"},
    ]);
    assert_eq!(tables(root.clone()).await, expected);
    assert_eq!(tables(child.clone()).await, expected);
}
