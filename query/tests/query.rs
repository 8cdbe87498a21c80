//! Integration tests of the query tier over a real storage engine.

use datafusion::arrow::array::{Array, Float64Array, UInt32Array};
use pinhouse_query::{OrgScope, QueryEngine, QueryError};
use pinhouse_storage::{Point, Storage, StorageConfig};

fn open(dir: &std::path::Path) -> Storage {
    Storage::open(StorageConfig::new(dir)).unwrap()
}

fn points(org_id: u32, device_id: u32, n: i64) -> Vec<Point> {
    (0..n)
        .map(|i| {
            Point::from_text(
                org_id,
                device_id,
                1,
                1_700_000_000_000_000 + i * 1_000_000,
                &format!("{i}.5"),
            )
        })
        .collect()
}

fn column_u32(result: &pinhouse_query::QueryResult, col: usize) -> Vec<u32> {
    result
        .batches
        .iter()
        .flat_map(|b| {
            let a = b
                .column(col)
                .as_any()
                .downcast_ref::<UInt32Array>()
                .unwrap()
                .clone();
            (0..a.len()).map(move |i| a.value(i)).collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn a_user_sees_only_its_organization_whatever_the_sql() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    storage.write(points(1, 10, 5)).unwrap();
    storage.write(points(2, 20, 7)).unwrap();
    // Half of it in Parquet, half in memory: scoping must hold for both.
    storage.flush().unwrap();
    storage.write(points(1, 11, 3)).unwrap();
    storage.write(points(2, 21, 4)).unwrap();
    let engine = QueryEngine::new(storage.clone());
    let org1 = OrgScope::single(1);

    let probes = [
        "SELECT org_id FROM telemetry",
        "SELECT org_id FROM telemetry WHERE org_id = 2 OR 1 = 1",
        "SELECT t.org_id FROM telemetry t JOIN telemetry u ON t.device_id = u.device_id",
        "SELECT org_id FROM (SELECT * FROM telemetry WHERE org_id <> 1) UNION ALL SELECT org_id FROM telemetry",
        "WITH x AS (SELECT * FROM telemetry) SELECT org_id FROM x",
        "SELECT org_id FROM telemetry WHERE device_id IN (SELECT device_id FROM telemetry WHERE org_id = 2)",
    ];
    for sql in probes {
        let result = engine.sql(&org1, sql).await.unwrap();
        let orgs = column_u32(&result, 0);
        assert!(orgs.iter().all(|o| *o == 1), "{sql}: {orgs:?}");
    }
    let all = engine
        .sql(&org1, "SELECT org_id FROM telemetry")
        .await
        .unwrap();
    assert_eq!(all.num_rows(), 8);
    let other = engine
        .sql(&OrgScope::single(2), "SELECT org_id FROM telemetry")
        .await
        .unwrap();
    assert_eq!(other.num_rows(), 11);
    let nobody = engine
        .sql(&OrgScope::single(3), "SELECT count(*) FROM telemetry")
        .await
        .unwrap();
    assert_eq!(nobody.num_rows(), 1);
}

#[tokio::test]
async fn statements_that_could_escape_the_scope_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let engine = QueryEngine::new(storage);
    let scope = OrgScope::single(1);
    let parquet_dir = dir.path().display().to_string();
    for sql in [
        format!("CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '{parquet_dir}'"),
        "CREATE TABLE y AS SELECT 1".to_owned(),
        "COPY (SELECT 1) TO '/tmp/pinhouse-escape.csv'".to_owned(),
        "INSERT INTO telemetry VALUES (2, 1, 1, now(), 1.0, NULL)".to_owned(),
        "SET datafusion.execution.batch_size = 1".to_owned(),
    ] {
        match engine.sql(&scope, &sql).await {
            Err(QueryError::NotAllowed(_)) => {}
            other => panic!("{sql}: expected NotAllowed, got {other:?}"),
        }
    }
    assert!(matches!(
        engine.sql(&scope, "SELEC 1").await,
        Err(QueryError::Invalid(_))
    ));
    assert!(matches!(
        engine.sql(&scope, "SELECT nope FROM telemetry").await,
        Err(QueryError::Invalid(_))
    ));
}

#[tokio::test]
async fn results_are_identical_before_and_after_flush_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let sql = "SELECT device_id, count(*) AS n, sum(value) AS s FROM telemetry GROUP BY device_id ORDER BY device_id";
    let scope = OrgScope::single(7);
    let summary = |r: pinhouse_query::QueryResult| {
        let ids = column_u32(&r, 0);
        let sums: Vec<f64> = r
            .batches
            .iter()
            .flat_map(|b| {
                let a = b
                    .column(2)
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .unwrap()
                    .clone();
                (0..a.len()).map(move |i| a.value(i)).collect::<Vec<_>>()
            })
            .collect();
        (ids, sums)
    };
    let before = {
        let storage = open(dir.path());
        storage.write(points(7, 1, 100)).unwrap();
        storage.write(points(7, 2, 50)).unwrap();
        let engine = QueryEngine::new(storage.clone());
        let in_memory = summary(engine.sql(&scope, sql).await.unwrap());
        storage.flush().unwrap();
        let flushed = summary(engine.sql(&scope, sql).await.unwrap());
        assert_eq!(in_memory, flushed);
        storage.write(points(7, 3, 10)).unwrap();
        let before = summary(engine.sql(&scope, sql).await.unwrap());
        storage.close().unwrap();
        before
    };
    let storage = open(dir.path());
    let after = summary(QueryEngine::new(storage).sql(&scope, sql).await.unwrap());
    assert_eq!(before, after);
    assert_eq!(after.0, vec![1, 2, 3]);
}
