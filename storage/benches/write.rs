//! Write throughput into WAL + memtable, batches of 1000 points, under each fsync policy,
//! with one writer and with four concurrent writers (group commit).

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pinhouse_storage::{FsyncPolicy, Point, Storage, StorageConfig};

const BATCH: usize = 1000;
const WRITERS: usize = 4;

fn batch(device: u32, seq: &mut i64) -> Vec<Point> {
    let pts = (0..BATCH)
        .map(|i| {
            Point::number(
                1,
                device * 100 + (i % 100) as u32,
                (i / 100) as u16,
                *seq,
                (*seq % 1000) as f64 * 0.1,
            )
        })
        .collect();
    *seq += 1;
    pts
}

fn policies() -> [(&'static str, FsyncPolicy); 3] {
    [
        ("always", FsyncPolicy::Always),
        (
            "interval_10ms",
            FsyncPolicy::Interval(Duration::from_millis(10)),
        ),
        ("never", FsyncPolicy::Never),
    ]
}

fn open(policy: FsyncPolicy) -> (tempfile::TempDir, Storage) {
    open_with(policy, 1_000_000)
}

fn open_with(policy: FsyncPolicy, memtable_max_rows: usize) -> (tempfile::TempDir, Storage) {
    let dir = tempfile::tempdir_in(
        std::env::var_os("PINHOUSE_BENCH_DIR").unwrap_or_else(|| std::env::temp_dir().into()),
    )
    .unwrap();
    let mut config = StorageConfig::new(dir.path());
    config.fsync = policy;
    config.memtable_max_rows = memtable_max_rows;
    let storage = Storage::open(config).unwrap();
    (dir, storage)
}

fn single_writer(c: &mut Criterion) {
    let mut g = c.benchmark_group("write_1000_points");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.measurement_time(Duration::from_secs(5));
    for (name, policy) in policies() {
        let (_dir, storage) = open(policy);
        let mut seq = 0;
        g.bench_function(name, |b| {
            b.iter(|| storage.write(batch(0, &mut seq)).unwrap())
        });
        storage.close().unwrap();
    }
    g.finish();
}

fn concurrent_writers(c: &mut Criterion) {
    let mut g = c.benchmark_group("write_1000_points_4_writers");
    g.throughput(Throughput::Elements((BATCH * WRITERS) as u64));
    g.measurement_time(Duration::from_secs(5));
    for (name, policy) in policies() {
        let (_dir, storage) = open(policy);
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                std::thread::scope(|s| {
                    for w in 0..WRITERS {
                        let storage = &storage;
                        s.spawn(move || {
                            let mut seq = 0;
                            for _ in 0..iters {
                                storage.write(batch(w as u32 + 1, &mut seq)).unwrap();
                            }
                        });
                    }
                });
                start.elapsed()
            })
        });
        storage.close().unwrap();
    }
    g.finish();
}

/// Flushing a 1M-row memtable (4,000 devices × 4 pins, interleaved as they arrive): sort, zstd
/// Parquet, fsyncs, catalog. Writing the rows is not timed.
fn flush_memtable(c: &mut Criterion) {
    const ROWS: usize = 1_000_000;
    let mut g = c.benchmark_group("flush");
    g.throughput(Throughput::Elements(ROWS as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    // Above the row count so that only the timed `flush()` writes Parquet.
    let (_dir, storage) = open_with(FsyncPolicy::Never, 2 * ROWS);
    let mut round = 0i64;
    g.bench_function("1m_rows", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let base = round * 1_000_000_000;
                round += 1;
                for chunk in 0..(ROWS / BATCH) {
                    let pts = (0..BATCH)
                        .map(|i| {
                            let n = chunk * BATCH + i;
                            let series = (n % 16_000) as u32;
                            let ts = base + (n / 16_000) as i64 * 10_000_000;
                            Point::number(
                                1,
                                series / 4,
                                (series % 4) as u16,
                                ts,
                                (n % 977) as f64 * 0.1,
                            )
                        })
                        .collect();
                    storage.write(pts).unwrap();
                }
                let start = Instant::now();
                storage.flush().unwrap();
                total += start.elapsed();
            }
            total
        })
    });
    storage.close().unwrap();
    g.finish();
}

criterion_group!(benches, single_writer, concurrent_writers, flush_memtable);
criterion_main!(benches);
