//! SQL and history reads over rows still in the memtable (the newest data, which dashboards
//! ask for most): one million rows of 2,500 devices × 4 pins, none flushed yet.
//!
//! `cargo bench -p pinhouse-query --bench memtable`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pinhouse_query::{HistoryRequest, OrgScope, QueryEngine};
use pinhouse_storage::{Point, Storage, StorageConfig};

const DEVICES: u32 = 2_500;
const TICKS: i64 = 100;
const T0: i64 = 1_764_000_000_000_000;
const STEP: i64 = 10_000_000;

fn store(dir: &std::path::Path) -> Storage {
    let mut config = StorageConfig::new(dir);
    config.memtable_max_rows = 4_000_000;
    config.memtable_budget_rows = 8_000_000;
    config.memtable_max_age = std::time::Duration::from_secs(3600);
    let storage = Storage::open(config).unwrap();
    const STATES: [&str; 3] = ["on", "off", "idle"];
    for tick in 0..TICKS {
        let ts = T0 + tick * STEP;
        let batch: Vec<Point> = (0..DEVICES)
            .flat_map(|d| {
                let x = f64::from(d % 100) + tick as f64 / 100.0;
                [
                    Point::number(1, d, 0, ts, x),
                    Point::number(1, d, 1, ts, x * 2.0),
                    Point::number(1, d, 2, ts, x / 2.0),
                    Point::from_text(1, d, 3, ts, STATES[(d as usize + tick as usize) % 3]),
                ]
            })
            .collect();
        storage.write(batch).unwrap();
    }
    storage
}

fn memtable_sql(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let storage = store(dir.path());
    let engine = QueryEngine::new(storage);
    let scope = OrgScope::single(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let last_minute = T0 + (TICKS - 6) * STEP;
    let queries = [
        (
            "rows_and_average_per_pin",
            "SELECT pin, count(*), avg(value) FROM telemetry GROUP BY pin".to_owned(),
        ),
        (
            "text_states",
            "SELECT text, count(*) FROM telemetry WHERE pin = 3 GROUP BY text".to_owned(),
        ),
        (
            "one_device_last_minute",
            format!(
                "SELECT avg(value) FROM telemetry WHERE device_id = 7 AND pin = 0 \
                 AND ts >= to_timestamp_micros({last_minute})"
            ),
        ),
    ];
    let mut g = c.benchmark_group("memtable_sql_1m_rows");
    g.throughput(Throughput::Elements(u64::from(DEVICES) * 4 * TICKS as u64));
    g.sample_size(20);
    for (name, sql) in &queries {
        let rows = rt.block_on(engine.sql(&scope, sql)).unwrap().num_rows();
        assert!(rows > 0, "{name} answered nothing");
        g.bench_function(*name, |b| {
            b.iter(|| rt.block_on(engine.sql(&scope, sql)).unwrap())
        });
    }
    // A dashboard's chart of one pin over the memtable's whole span, read directly (not
    // through SQL) as `GET /devices/{id}/history` does.
    let chart = HistoryRequest {
        org_id: 1,
        device_id: 7,
        pin: 0,
        from_us: T0,
        to_us: T0 + TICKS * STEP,
        points: 100,
    };
    assert!(!engine.history_now(&chart).unwrap().points.is_empty());
    g.bench_function("history_one_pin", |b| {
        b.iter(|| engine.history_now(&chart).unwrap())
    });
    g.finish();
}

criterion_group!(benches, memtable_sql);
criterion_main!(benches);
