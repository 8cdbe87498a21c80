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
    // A file of organization 1 alone (read without a row filter), then a file shared by
    // both organizations (filtered on org_id, read for that even when the query does not).
    storage.write(points(1, 12, 2)).unwrap();
    storage.flush().unwrap();
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
    assert_eq!(all.num_rows(), 10);
    // Queries that do not read org_id are scoped the same way.
    let devices = engine
        .sql(
            &org1,
            "SELECT DISTINCT device_id FROM telemetry ORDER BY device_id",
        )
        .await
        .unwrap();
    assert_eq!(column_u32(&devices, 0), vec![10, 11, 12]);
    for (sql, want) in [
        ("SELECT CAST(count(*) AS INT UNSIGNED) FROM telemetry", 10),
        (
            "SELECT CAST(count(*) AS INT UNSIGNED) FROM telemetry WHERE device_id >= 20",
            0,
        ),
        (
            "SELECT CAST(count(value) AS INT UNSIGNED) FROM (SELECT value FROM telemetry)",
            10,
        ),
    ] {
        let result = engine.sql(&org1, sql).await.unwrap();
        assert_eq!(column_u32(&result, 0), vec![want], "{sql}");
    }
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
async fn results_are_identical_before_and_after_flush_compaction_and_restart() {
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
        storage.flush().unwrap();
        storage.write(points(7, 4, 5)).unwrap();
        storage.flush().unwrap();
        let before = summary(engine.sql(&scope, sql).await.unwrap());
        // Compaction merges the flushed files; the answer stays the same.
        let files_before = storage.snapshot().files.len();
        storage.compact().unwrap();
        let compacted = summary(engine.sql(&scope, sql).await.unwrap());
        assert_eq!(before, compacted);
        assert!(
            storage.snapshot().files.len() < files_before,
            "compaction merged files ({files_before} before)"
        );
        storage.close().unwrap();
        before
    };
    let storage = open(dir.path());
    let after = summary(QueryEngine::new(storage).sql(&scope, sql).await.unwrap());
    assert_eq!(before, after);
    assert_eq!(after.0, vec![1, 2, 3, 4]);
}

/// Rows of a SQL answer as `(device_id, ts, value bits)`.
fn value_rows(result: &pinhouse_query::QueryResult) -> Vec<(u32, i64, u64)> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{Float64Type, TimestampMicrosecondType, UInt32Type};
    result
        .batches
        .iter()
        .flat_map(|b| {
            let d = b.column(0).as_primitive::<UInt32Type>().clone();
            let t = b
                .column(1)
                .as_primitive::<TimestampMicrosecondType>()
                .clone();
            let v = b.column(2).as_primitive::<Float64Type>().clone();
            (0..b.num_rows())
                .map(move |i| (d.value(i), t.value(i), v.value(i).to_bits()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Files store values as scaled integers when every value of the file allows it and as
/// `Float64` otherwise: SQL (with a filter on `value`, pushed into the scan) and history read
/// the same bits from memory, from either kind of file, and from a compacted mix.
#[tokio::test]
async fn values_read_the_same_from_memory_and_from_files_of_either_encoding() {
    use pinhouse_query::HistoryRequest;
    const T: i64 = 1_700_006_400 * 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    // Device 1: two decimals (a scaled file); device 2: thirds (a Float64 file).
    let cents: Vec<Point> = (0..300)
        .map(|i| {
            Point::number(
                4,
                1,
                0,
                T + i * 1_000_000,
                ((i * 37) % 2000 - 700) as f64 / 100.0,
            )
        })
        .collect();
    let thirds: Vec<Point> = (0..300)
        .map(|i| Point::number(4, 2, 0, T + i * 1_000_000, i as f64 / 3.0))
        .collect();
    type Answers = (Vec<(u32, i64, u64)>, Vec<HistoryPoint>, Vec<HistoryPoint>);
    type HistoryPoint = (i64, pinhouse_query::history::BucketStats);
    async fn snapshot(engine: &QueryEngine) -> Answers {
        let sql =
            "SELECT device_id, ts, value FROM telemetry WHERE value > 2.25 ORDER BY device_id, ts";
        let history = |device_id| HistoryRequest {
            org_id: 4,
            device_id,
            pin: 0,
            from_us: T,
            to_us: T + 300_000_000,
            points: 300,
        };
        let rows = value_rows(&engine.sql(&OrgScope::single(4), sql).await.unwrap());
        let h1 = engine.history_raw(&history(1)).await.unwrap().points;
        let h2 = engine.history_raw(&history(2)).await.unwrap().points;
        (rows, h1, h2)
    }
    // The reference: everything in memory.
    let memory_dir = tempfile::tempdir().unwrap();
    let memory = open(memory_dir.path());
    memory.write(cents.clone()).unwrap();
    memory.write(thirds.clone()).unwrap();
    let in_memory = snapshot(&QueryEngine::new(memory)).await;
    assert!(in_memory.0.len() > 100 && in_memory.1.len() == 300);

    let engine = QueryEngine::new(storage.clone());
    storage.write(cents).unwrap();
    storage.flush().unwrap();
    storage.write(thirds).unwrap();
    storage.flush().unwrap();
    let value_types: Vec<String> = storage
        .snapshot()
        .files
        .iter()
        .map(|f| {
            let file = std::fs::File::open(&f.path).unwrap();
            let reader =
                datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                    file,
                )
                .unwrap();
            reader.schema().field(4).data_type().to_string()
        })
        .collect();
    assert_eq!(value_types, ["Decimal64(18, 2)", "Float64"]);
    assert_eq!(snapshot(&engine).await, in_memory, "one file of each kind");
    // One compacted file holding both kinds of values (so stored as Float64).
    storage.compact().unwrap();
    assert_eq!(storage.snapshot().files.len(), 1);
    assert_eq!(snapshot(&engine).await, in_memory, "after the compaction");
}

/// A device's text states on pin 3 next to numbers on pin 0, `n` seconds of them.
fn text_rows(device_id: u32, n: i64) -> Vec<Point> {
    const T: i64 = 1_700_006_400 * 1_000_000;
    let states = ["on", "off", "idle", "error: E42", "on ", "ön"];
    (0..n)
        .flat_map(|i| {
            let ts = T + i * 1_000_000;
            let state = states[(i as usize * 7 + device_id as usize) % states.len()];
            [
                Point::from_text(8, device_id, 3, ts, state),
                Point::number(8, device_id, 0, ts, (i % 13) as f64 / 4.0),
            ]
        })
        .collect()
}

/// Each statement with its answer, printed.
async fn printed_answers(engine: &QueryEngine, sqls: &[&str]) -> Vec<String> {
    use datafusion::arrow::util::pretty::pretty_format_batches;
    let mut out = Vec::new();
    for sql in sqls {
        let result = engine.sql(&OrgScope::single(8), sql).await.unwrap();
        let printed = pretty_format_batches(&result.batches).unwrap();
        out.push(format!("{sql}\n{printed}"));
    }
    out
}

/// `text` reads as `Dictionary(Int32, Utf8)` from memory and from files, and the usual text
/// SQL (filters, functions, `DISTINCT`, joins, `GROUP BY` alone and with other keys, ordering)
/// answers the same from memory, from files, and after a compaction and a restart.
#[tokio::test]
async fn text_reads_as_a_dictionary_and_answers_the_same_from_memory_and_files() {
    use datafusion::arrow::util::pretty::pretty_format_batches;
    let sqls = [
        "SELECT text, count(*) AS n FROM telemetry GROUP BY text ORDER BY text NULLS FIRST",
        "SELECT text, count(*) AS n, count(value) AS v FROM telemetry WHERE pin = 3 GROUP BY text ORDER BY n DESC, text",
        "SELECT min(text), max(text), count(DISTINCT text), count(text) FROM telemetry",
        "SELECT device_id, ts, text FROM telemetry WHERE text = 'on' ORDER BY device_id, ts",
        "SELECT upper(text) AS u, length(text) AS l, count(*) FROM telemetry WHERE text LIKE '%o%' GROUP BY 1, 2 ORDER BY 1, 2",
        "SELECT text || '!' AS t FROM telemetry WHERE text IS NOT NULL ORDER BY 1, device_id LIMIT 7",
        "SELECT DISTINCT text FROM telemetry ORDER BY 1",
        "SELECT device_id, text, count(*) FROM telemetry GROUP BY device_id, text ORDER BY 1, 2",
        "SELECT CASE WHEN text IN ('on', 'off') THEN text ELSE 'other' END AS s, count(*) FROM telemetry WHERE pin = 3 GROUP BY 1 ORDER BY 1",
        "SELECT t.text, count(*) FROM telemetry t JOIN telemetry u ON t.text = u.text AND t.device_id = u.device_id AND t.ts = u.ts GROUP BY t.text ORDER BY 1",
        "SELECT text FROM telemetry WHERE text > 'i' AND text < 'p' ORDER BY text, device_id LIMIT 5",
        "SELECT avg(value), text FROM telemetry GROUP BY text HAVING count(*) > 10 ORDER BY 2",
    ];
    // The reference: everything in memory.
    let memory_dir = tempfile::tempdir().unwrap();
    let memory = open(memory_dir.path());
    for (device, n) in [(1, 40), (2, 30), (3, 20)] {
        memory.write(text_rows(device, n)).unwrap();
    }
    let reference = printed_answers(&QueryEngine::new(memory), &sqls).await;
    assert!(reference[0].contains("| error: E42 |"), "{}", reference[0]);
    assert!(reference[6].contains("| ön "), "{}", reference[6]);

    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let engine = QueryEngine::new(storage.clone());
    storage.write(text_rows(1, 40)).unwrap();
    storage.write(text_rows(2, 30)).unwrap();
    storage.flush().unwrap();
    storage.write(text_rows(3, 20)).unwrap();
    assert_eq!(
        printed_answers(&engine, &sqls).await,
        reference,
        "a file and memory"
    );
    storage.flush().unwrap();
    assert_eq!(
        printed_answers(&engine, &sqls).await,
        reference,
        "two files"
    );
    storage.compact().unwrap();
    assert_eq!(
        printed_answers(&engine, &sqls).await,
        reference,
        "compacted"
    );
    storage.close().unwrap();
    let engine = QueryEngine::new(open(dir.path()));
    assert_eq!(
        printed_answers(&engine, &sqls).await,
        reference,
        "restarted"
    );

    // The column's type, and `GROUP BY text` on the dictionary keys.
    let typed = engine
        .sql(&OrgScope::single(8), "SELECT text FROM telemetry LIMIT 1")
        .await
        .unwrap();
    assert_eq!(
        typed.batches[0].schema().field(0).data_type().to_string(),
        "Dictionary(Int32, Utf8)"
    );
    let plan = engine
        .sql(
            &OrgScope::single(8),
            "EXPLAIN SELECT text, count(*) FROM telemetry WHERE pin = 3 GROUP BY text",
        )
        .await
        .unwrap();
    let plan = pretty_format_batches(&plan.batches).unwrap().to_string();
    assert!(plan.contains("DenseAggregateExec"), "{plan}");
}

/// Filters on `ts` alone are applied by the scan (pushed down as exact) and skipped for files
/// whose time range lies inside them: every shape of time filter gives the rows a filter over
/// all rows gives, from memory, from files inside, across and outside the range, and from files
/// shared with another organization.
#[tokio::test]
async fn time_filters_select_the_same_rows_from_memory_and_files() {
    use datafusion::arrow::util::pretty::pretty_format_batches;
    const T0: i64 = 1_700_006_400; // 2023-11-15T00:00:00Z, seconds
    const HOUR: i64 = 3_600;
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    // One value per hour for four days; each of the first three days flushed to its own
    // file (org 2 writes into the second day's file too), the fourth day in memory.
    let hour = |org: u32, h: i64| Point::number(org, 1, 0, (T0 + h * HOUR) * 1_000_000, h as f64);
    for day in 0..4 {
        storage
            .write((day * 24..day * 24 + 24).map(|h| hour(1, h)).collect())
            .unwrap();
        if day == 1 {
            storage
                .write((30..40).map(|h| hour(2, h)).collect())
                .unwrap();
        }
        if day < 3 {
            storage.flush().unwrap();
        }
    }
    assert_eq!(storage.snapshot().files.len(), 3);
    let engine = QueryEngine::new(storage.clone());
    let at = |h: i64| {
        let secs = T0 + h * HOUR;
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        // 2023-11-15 is day 19,676; the test stays within November.
        format!(
            "TIMESTAMP '2023-11-{:02}T{:02}:{:02}:00Z'",
            15 + days - 19_676,
            rem / 3_600,
            rem % 3_600 / 60
        )
    };
    /// A filter and which hours (since `T0`) of org 1 pass it.
    type Case = (String, Box<dyn Fn(i64) -> bool>);
    let cases: Vec<Case> = vec![
        (
            format!("ts >= {} AND ts < {}", at(24), at(72)),
            Box::new(|h| (24..72).contains(&h)),
        ),
        (
            format!("ts > {} AND ts <= {}", at(29), at(74)),
            Box::new(|h| (30..=74).contains(&h)),
        ),
        (
            format!("ts BETWEEN {} AND {}", at(47), at(49)),
            Box::new(|h| (47..=49).contains(&h)),
        ),
        (
            format!("{} <= ts AND {} > ts", at(70), at(80)),
            Box::new(|h| (70..80).contains(&h)),
        ),
        (format!("ts >= {}", at(0)), Box::new(|_| true)),
        (format!("ts < {}", at(0)), Box::new(|_| false)),
        (format!("NOT (ts < {})", at(90)), Box::new(|h| h >= 90)),
        (
            "ts >= TIMESTAMP '2023-11-16T02:00:00+01:00' AND ts < TIMESTAMP '2023-11-17T00:00:00'"
                .into(),
            Box::new(|h| (25..48).contains(&h)),
        ),
        (
            format!("date_trunc('day', ts) = {}", at(48)),
            Box::new(|h| (48..72).contains(&h)),
        ),
        (
            format!("ts IN ({}, {}, {})", at(1), at(50), at(80)),
            Box::new(|h| [1, 50, 80].contains(&h)),
        ),
        (
            format!("(ts < {} OR ts >= {})", at(10), at(86)),
            Box::new(|h| !(10..86).contains(&h)),
        ),
        (
            format!("ts >= {} AND ts < {} AND value >= 40", at(24), at(72)),
            Box::new(|h| (40..72).contains(&h)),
        ),
        (
            format!("ts > {} AND device_id = 1 AND pin = 0", at(60)),
            Box::new(|h| h > 60),
        ),
    ];
    for (filter, wanted) in &cases {
        let expected: Vec<i64> = (0..96).filter(|h| wanted(*h)).collect();
        for sql in [
            format!("SELECT value FROM telemetry WHERE {filter} ORDER BY value"),
            format!("SELECT ts, value FROM telemetry WHERE {filter} ORDER BY ts"),
        ] {
            let result = engine.sql(&OrgScope::single(1), &sql).await.unwrap();
            let values: Vec<i64> = result
                .batches
                .iter()
                .flat_map(|b| {
                    let column = b.schema().index_of("value").unwrap();
                    b.column(column)
                        .as_any()
                        .downcast_ref::<Float64Array>()
                        .unwrap()
                        .values()
                        .iter()
                        .map(|v| *v as i64)
                        .collect::<Vec<_>>()
                })
                .collect();
            assert_eq!(values, expected, "{sql}");
        }
        let sql = format!("SELECT count(*) AS n FROM telemetry WHERE {filter}");
        let result = engine.sql(&OrgScope::single(1), &sql).await.unwrap();
        let printed = pretty_format_batches(&result.batches).unwrap().to_string();
        assert!(
            printed.contains(&format!("| {} ", expected.len())),
            "{sql}\n{printed}"
        );
    }
    // With only time filters, DataFusion may hand the scan the query's limit as well: the
    // answer still has the limit's rows, all of them inside the range.
    let sql = format!(
        "SELECT value FROM telemetry WHERE ts >= {} AND ts < {} LIMIT 5",
        at(30),
        at(80)
    );
    let result = engine.sql(&OrgScope::single(1), &sql).await.unwrap();
    assert_eq!(result.num_rows(), 5, "{sql}");
    for batch in &result.batches {
        let values = batch
            .column(0)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        assert!(
            values.values().iter().all(|v| (30.0..80.0).contains(v)),
            "{sql}"
        );
    }
    // The other organization's rows of the shared file, through the same filters.
    let sql = format!(
        "SELECT count(*) AS n FROM telemetry WHERE ts >= {} AND ts < {}",
        at(24),
        at(35)
    );
    let result = engine.sql(&OrgScope::single(2), &sql).await.unwrap();
    let printed = pretty_format_batches(&result.batches).unwrap().to_string();
    assert!(printed.contains("| 5 "), "{printed}");

    // A range holding whole files reads them without `ts` (no time filter per row); files
    // wholly outside it are not read at all.
    let sql = format!(
        "EXPLAIN SELECT value FROM telemetry WHERE ts >= {} AND ts < {}",
        at(48),
        at(72)
    );
    let plan = engine.sql(&OrgScope::single(1), &sql).await.unwrap();
    let plan = pretty_format_batches(&plan.batches).unwrap().to_string();
    let scans: Vec<&str> = plan
        .lines()
        .filter(|l| l.contains("DataSourceExec"))
        .collect();
    assert_eq!(scans.len(), 1, "{plan}");
    assert!(scans[0].contains("date=2023-11-17"), "{plan}");
    assert!(scans[0].contains("projection=[value]"), "{plan}");
    assert!(!plan.contains("FilterExec"), "{plan}");
}

/// Writes land whole or not at all in a query's view: a writer writes batches of `BATCH` points
/// (one device per batch) while another thread flushes and compacts and the test queries
/// continuously; every device a query sees has exactly `BATCH` rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_racing_ingest_never_sees_a_half_batch() {
    const BATCH: i64 = 500;
    const BATCHES: u32 = 120;
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let engine = QueryEngine::new(storage.clone());
    let scope = OrgScope::single(9);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (storage, done) = (storage.clone(), done.clone());
        std::thread::spawn(move || {
            for device in 1..=BATCHES {
                storage.write(points(9, device, BATCH)).unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        })
    };
    let maintainer = {
        let (storage, done) = (storage.clone(), done.clone());
        std::thread::spawn(move || {
            let mut rounds = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                storage.flush().unwrap();
                if rounds % 3 == 2 {
                    storage.compact().unwrap();
                }
                rounds += 1;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            rounds
        })
    };
    let sql = "SELECT device_id, count(*) AS n FROM telemetry GROUP BY device_id";
    let mut queries = 0;
    let mut seen_partial_progress = false;
    loop {
        let finished = done.load(std::sync::atomic::Ordering::SeqCst);
        let result = engine.sql(&scope, sql).await.unwrap();
        let devices = column_u32(&result, 0);
        let counts: Vec<i64> = result
            .batches
            .iter()
            .flat_map(|b| {
                let a = b
                    .column(1)
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::Int64Array>()
                    .unwrap()
                    .clone();
                (0..a.len()).map(move |i| a.value(i)).collect::<Vec<_>>()
            })
            .collect();
        for (device, n) in devices.iter().zip(&counts) {
            assert_eq!(*n, BATCH, "device {device} seen with {n} of {BATCH} rows");
        }
        seen_partial_progress |= !devices.is_empty() && devices.len() < BATCHES as usize;
        queries += 1;
        if finished {
            assert_eq!(
                devices.len(),
                BATCHES as usize,
                "every batch visible at the end"
            );
            break;
        }
    }
    writer.join().unwrap();
    let rounds = maintainer.join().unwrap();
    assert!(
        queries > 1 && rounds > 0,
        "{queries} queries, {rounds} flush rounds"
    );
    // Not asserted (timing), but worth knowing when the test is read: whether a query ran
    // while the writer was half-way.
    println!(
        "{queries} queries, {rounds} flush rounds, mid-way view seen: {seen_partial_progress}"
    );
}

mod history {
    use pinhouse_query::history::{DAY_US, HOUR_US, MINUTE_US};
    use pinhouse_query::{Agg, HistoryRequest, OrgScope, QueryEngine, Tier};
    use pinhouse_storage::{Point, Storage, StorageConfig};

    /// Midnight UTC, 2023-11-15.
    const T0: i64 = 1_700_006_400 * 1_000_000;

    /// `n` values of (org, device, pin) every `every` µs from T0, exact in binary
    /// (halves), so sums do not depend on the order they are added in.
    fn series(org: u32, device: u32, pin: u16, n: i64, every: i64) -> Vec<Point> {
        (0..n)
            .map(|i| {
                Point::number(
                    org,
                    device,
                    pin,
                    T0 + i * every,
                    ((i * 7) % 23) as f64 / 2.0,
                )
            })
            .collect()
    }

    fn req(from_us: i64, to_us: i64, points: u32) -> HistoryRequest {
        HistoryRequest {
            org_id: 1,
            device_id: 5,
            pin: 2,
            from_us,
            to_us,
            points,
        }
    }

    #[tokio::test]
    async fn buckets_aggregate_the_raw_rows() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(StorageConfig::new(dir.path())).unwrap();
        // 10 values one second apart, plus noise on other series and text values.
        storage.write(series(1, 5, 2, 10, 1_000_000)).unwrap();
        storage.write(series(1, 5, 3, 10, 1_000_000)).unwrap();
        storage.write(series(2, 5, 2, 10, 1_000_000)).unwrap();
        storage
            .write(vec![Point::from_text(1, 5, 2, T0 + 500_000, "on")])
            .unwrap();
        let engine = QueryEngine::new(storage.clone());
        // 2 buckets of 5 s.
        let h = engine.history(&req(T0, T0 + 10_000_000, 2)).await.unwrap();
        assert_eq!(h.buckets.step_us, 5_000_000);
        assert_eq!(h.tier, Tier::Raw);
        let values: Vec<f64> = (0..10).map(|i| ((i * 7) % 23) as f64 / 2.0).collect();
        let (a, b) = values.split_at(5);
        assert_eq!(h.points.len(), 2);
        let s0 = &h.points[0].1;
        assert_eq!(h.points[0].0, T0);
        assert_eq!(s0.count, 5);
        assert_eq!(s0.sum, a.iter().sum::<f64>());
        assert_eq!(s0.first, a[0]);
        assert_eq!(s0.last, a[4]);
        assert_eq!(s0.min, a.iter().cloned().fold(f64::MAX, f64::min));
        assert_eq!(
            h.points[1].1.max,
            b.iter().cloned().fold(f64::MIN, f64::max)
        );
        assert_eq!(h.points[1].1.value(Agg::Avg), b.iter().sum::<f64>() / 5.0);
        // Outside the range: nothing.
        let empty = engine
            .history(&req(T0 + DAY_US, T0 + 2 * DAY_US, 10))
            .await
            .unwrap();
        assert!(empty.points.is_empty());
        // SQL agrees on the count.
        let n = engine
            .sql(
                &OrgScope::single(1),
                "SELECT count(value) FROM telemetry WHERE device_id = 5 AND pin = 2",
            )
            .await
            .unwrap();
        assert_eq!(n.num_rows(), 1);
    }

    /// A fleet sampled every three hours keeps no hour tier (it would hold a row per value):
    /// a range of days asked in hour buckets is answered in day buckets from the day tier
    /// (equal to the raw aggregation in day buckets), within a day hour buckets come from raw
    /// rows; both across a restart with sidecars.
    #[tokio::test]
    async fn sparse_files_answer_ranges_of_days_from_the_day_tier() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("telemetry");
        let rollup_dir = dir.path().join("rollups");
        let sparse = series(1, 5, 2, 30 * 8, 3 * HOUR_US);
        // (from, to, points, tier answering, points of the equivalent raw request)
        let ranges = [
            (T0, T0 + 7 * DAY_US, 168, Tier::Day, 7),
            (T0, T0 + 30 * DAY_US, 30, Tier::Day, 30),
            (T0 + DAY_US, T0 + DAY_US + 12 * HOUR_US, 12, Tier::Hour, 12),
        ];
        for restart in [false, true] {
            let storage = Storage::open(StorageConfig::new(&data)).unwrap();
            if !restart {
                storage.write(sparse.clone()).unwrap();
                storage.flush().unwrap();
            }
            let engine = QueryEngine::with_rollup_dir(storage.clone(), rollup_dir.clone()).unwrap();
            engine.refresh_rollups();
            for (from, to, points, tier, raw_points) in ranges {
                let r = req(from, to, points);
                let fast = engine.history(&r).await.unwrap();
                let raw = engine
                    .history_raw(&req(from, to, raw_points))
                    .await
                    .unwrap();
                assert_eq!(fast.tier, tier);
                assert_eq!(fast.buckets, raw.buckets);
                assert_eq!(
                    fast.points, raw.points,
                    "{from}..{to} @ {points}, restart {restart}"
                );
                assert!(!fast.points.is_empty());
            }
            storage.close().unwrap();
        }
    }

    /// A fleet sampled every two days keeps no rollup at all (a day bucket per value would
    /// cost more memory than the data): every range is answered from raw rows, equal to the
    /// raw aggregation, across a restart with sidecars; a denser series keeps its tiers.
    #[tokio::test]
    async fn files_sparser_than_a_value_a_day_keep_no_rollup() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("telemetry");
        let rollup_dir = dir.path().join("rollups");
        let sparse = series(1, 5, 2, 40, 2 * DAY_US);
        // (from, to, points, points of the equivalent raw request: hour buckets over days of
        // a file without an hour tier are answered in day buckets)
        let ranges = [
            (T0, T0 + 80 * DAY_US, 20, 20),
            (T0, T0 + 30 * DAY_US, 30, 30),
            (T0 + 3 * DAY_US, T0 + 9 * DAY_US, 144, 6),
        ];
        for restart in [false, true] {
            let storage = Storage::open(StorageConfig::new(&data)).unwrap();
            if !restart {
                storage.write(sparse.clone()).unwrap();
                storage.flush().unwrap();
            }
            let engine = QueryEngine::with_rollup_dir(storage.clone(), rollup_dir.clone()).unwrap();
            let pass = engine.refresh_rollups();
            // One file per day holding a value.
            assert_eq!(pass.computed + pass.loaded, 40, "{pass:?}");
            assert_eq!(pass.bucket_rows, 0, "{pass:?}");
            for (from, to, points, raw_points) in ranges {
                let fast = engine.history(&req(from, to, points)).await.unwrap();
                let raw = engine
                    .history_raw(&req(from, to, raw_points))
                    .await
                    .unwrap();
                assert_eq!(fast.buckets, raw.buckets);
                assert_eq!(fast.points, raw.points, "{from}..{to} @ {points}");
                assert!(!fast.points.is_empty());
            }
            storage.close().unwrap();
        }
        // Ten values a day: both tiers are kept.
        let dense_dir = dir.path().join("dense");
        let storage = Storage::open(StorageConfig::new(&dense_dir)).unwrap();
        storage.write(series(1, 5, 2, 200, DAY_US / 10)).unwrap();
        storage.flush().unwrap();
        let engine = QueryEngine::new(storage.clone());
        let pass = engine.refresh_rollups();
        // 20 days: 20 day rows, and the hour tier (one value per 2.4 h) is dropped.
        assert_eq!(pass.bucket_rows, 20, "{pass:?}");
        storage.close().unwrap();
    }

    #[tokio::test]
    async fn rollup_tiers_equal_raw_aggregation_across_flush_and_restart() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("telemetry");
        let rollup_dir = dir.path().join("rollups");
        // 20 days of one value every 10 minutes, in three files and the memtable.
        let all = series(1, 5, 2, 20 * 144, 10 * MINUTE_US);
        let other = series(1, 6, 2, 20 * 144, 10 * MINUTE_US);
        let ranges = [
            (T0, T0 + 20 * DAY_US, 100),
            (T0 + 3 * HOUR_US + 7, T0 + 17 * DAY_US + 11, 300),
            (T0 + 2 * DAY_US, T0 + 4 * DAY_US, 48),
            (T0 - 5 * DAY_US, T0 + 40 * DAY_US, 10),
            (T0 + DAY_US, T0 + DAY_US + 6 * HOUR_US, 360),
        ];
        let check = |engine: QueryEngine, expect_tiers: bool| async move {
            let mut answers = Vec::new();
            for (from, to, points) in ranges {
                let r = req(from, to, points);
                let fast = engine.history(&r).await.unwrap();
                let raw = engine.history_raw(&r).await.unwrap();
                assert_eq!(fast.points, raw.points, "{from}..{to} @ {points}");
                assert!(!fast.points.is_empty());
                if expect_tiers && points <= 100 {
                    assert_ne!(fast.tier, Tier::Raw, "{from}..{to} @ {points}");
                }
                answers.push(fast.points);
            }
            answers
        };
        let before = {
            let storage = Storage::open(StorageConfig::new(&data)).unwrap();
            let engine = QueryEngine::with_rollup_dir(storage.clone(), rollup_dir.clone()).unwrap();
            for (i, chunk) in all.chunks(1000).enumerate() {
                storage.write(chunk.to_vec()).unwrap();
                storage
                    .write(other[i * 1000..(i * 1000 + chunk.len())].to_vec())
                    .unwrap();
                if i < 2 {
                    storage.flush().unwrap();
                }
            }
            let in_memory = check(engine.clone(), false).await;
            engine.refresh_rollups();
            let rolled_up = check(engine.clone(), true).await;
            assert_eq!(in_memory, rolled_up);
            storage.flush().unwrap();
            let pass = engine.refresh_rollups();
            assert!(pass.computed >= 1, "{pass:?}");
            let flushed = check(engine.clone(), true).await;
            assert_eq!(rolled_up, flushed);
            // Compaction replaces files: rollups follow, answers stay the same.
            storage.compact().unwrap();
            let compacted_raw = check(engine.clone(), false).await;
            engine.refresh_rollups();
            let compacted = check(engine, true).await;
            assert_eq!(flushed, compacted_raw);
            assert_eq!(flushed, compacted);
            storage.close().unwrap();
            flushed
        };
        assert!(std::fs::read_dir(&rollup_dir).unwrap().count() >= 3);
        let storage = Storage::open(StorageConfig::new(&data)).unwrap();
        let engine = QueryEngine::new(storage.clone());
        let engine_dir = QueryEngine::with_rollup_dir(storage, rollup_dir).unwrap();
        let pass = engine_dir.refresh_rollups();
        assert_eq!(
            pass.computed, 0,
            "sidecars are reloaded, not recomputed: {pass:?}"
        );
        assert!(pass.loaded >= 3, "{pass:?}");
        assert_eq!(check(engine_dir, true).await, before);
        // Without rollups at all, the same answer from raw rows.
        assert_eq!(check(engine, false).await, before);
    }

    /// History reads raw rows without DataFusion (footer and page index cached, only the pages
    /// that can hold the series decoded): it must agree with the DataFusion plan on a file of
    /// many pages, for series at the edges of pages and of the file, absent series, and rows
    /// still in the memtable.
    #[tokio::test]
    async fn direct_series_reads_equal_the_datafusion_plan_across_pages() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(StorageConfig::new(dir.path())).unwrap();
        // 300 devices × 3 pins × 240 values a minute apart = 216,000 rows in one file: about
        // eleven pages of 20,000 rows per column.
        let mut batch = Vec::new();
        for device in 0..300 {
            for pin in 0..3 {
                batch.extend(series(1, device, pin, 240, MINUTE_US));
            }
        }
        for chunk in batch.chunks(50_000) {
            storage.write(chunk.to_vec()).unwrap();
        }
        storage.flush().unwrap();
        // Newer rows of a few series stay in the memtable.
        for device in [0, 150, 299] {
            let later: Vec<Point> = series(1, device, 2, 30, MINUTE_US)
                .into_iter()
                .map(|mut p| {
                    p.ts_us += 4 * HOUR_US;
                    p
                })
                .collect();
            storage.write(later).unwrap();
        }
        let engine = QueryEngine::new(storage.clone());
        let ranges = [
            (T0, T0 + 5 * HOUR_US, 300),
            (T0 + 37 * MINUTE_US + 5, T0 + 2 * HOUR_US, 1000),
            (T0 - DAY_US, T0 + DAY_US, 1440),
            (T0 + 10 * HOUR_US, T0 + 11 * HOUR_US, 60),
        ];
        let mut non_empty = 0;
        for device in [0, 1, 149, 150, 151, 298, 299, 300, 100_000] {
            for pin in [0, 2, 7] {
                for (from_us, to_us, points) in ranges {
                    let r = HistoryRequest {
                        org_id: 1,
                        device_id: device,
                        pin,
                        from_us,
                        to_us,
                        points,
                    };
                    let fast = engine.history(&r).await.unwrap();
                    let raw = engine.history_raw(&r).await.unwrap();
                    assert_eq!(fast.tier, Tier::Raw);
                    assert_eq!(fast.points, raw.points, "{r:?}");
                    non_empty += usize::from(!fast.points.is_empty());
                }
            }
        }
        // 7 stored devices × 2 stored pins × the 3 ranges holding data.
        assert_eq!(non_empty, 7 * 2 * 3);
        // Another organization's request finds nothing, whatever the device.
        let other = HistoryRequest {
            org_id: 2,
            device_id: 150,
            pin: 2,
            from_us: T0,
            to_us: T0 + 5 * HOUR_US,
            points: 300,
        };
        assert!(engine.history(&other).await.unwrap().points.is_empty());
        storage.close().unwrap();
    }
}
