//! Write throughput into WAL + memtable, batches of 1000 points, under each fsync policy,
//! with one writer and with four concurrent writers (group commit); flushing a memtable;
//! merging flushed files (compaction); and a device re-sending points the memtable already
//! holds (late duplicates).

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
    open_configured(policy, memtable_max_rows, Duration::from_secs(60))
}

fn open_configured(
    policy: FsyncPolicy,
    memtable_max_rows: usize,
    memtable_max_age: Duration,
) -> (tempfile::TempDir, Storage) {
    let dir = tempfile::tempdir_in(
        std::env::var_os("PINHOUSE_BENCH_DIR").unwrap_or_else(|| std::env::temp_dir().into()),
    )
    .unwrap();
    let mut config = StorageConfig::new(dir.path());
    config.fsync = policy;
    config.memtable_max_rows = memtable_max_rows;
    config.memtable_max_age = memtable_max_age;
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

/// Merging 8 flushed files of 250,000 rows each (4,000 devices × 4 pins, the same day) into
/// one: `Storage::compact`, a streaming k-way merge (read, merge, encode, fsync, catalog).
/// Writing and flushing the files is not timed; automatic compaction is off.
fn compact_files(c: &mut Criterion) {
    const FILES: usize = 8;
    const ROWS: usize = 250_000;
    let mut g = c.benchmark_group("compact");
    g.throughput(Throughput::Elements((FILES * ROWS) as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.bench_function("8_files_of_250k_rows", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir_in(
                    std::env::var_os("PINHOUSE_BENCH_DIR")
                        .unwrap_or_else(|| std::env::temp_dir().into()),
                )
                .unwrap();
                let mut config = StorageConfig::new(dir.path());
                config.fsync = FsyncPolicy::Never;
                config.memtable_max_rows = 2 * ROWS;
                config.compact_min_files = 0;
                let storage = Storage::open(config).unwrap();
                for file in 0..FILES {
                    let pts: Vec<Point> = (0..ROWS)
                        .map(|n| {
                            let series = (n % 16_000) as u32;
                            let step = (file * ROWS + n) / 16_000;
                            Point::number(
                                1,
                                series / 4,
                                (series % 4) as u16,
                                step as i64 * 10_000_000,
                                (n % 977) as f64 * 0.1,
                            )
                        })
                        .collect();
                    for chunk in pts.chunks(BATCH) {
                        storage.write(chunk.to_vec()).unwrap();
                    }
                    storage.flush().unwrap();
                }
                let start = Instant::now();
                let report = storage.compact().unwrap();
                total += start.elapsed();
                assert_eq!(report.files_removed, FILES);
                storage.close().unwrap();
            }
            total
        })
    });
    g.finish();
}

/// A device re-sends 100 points the memtables already hold (an offline buffer whose upload was
/// cut) into a memtable of 880,000 rows (10,000 devices × 4 pins × 22 values, 10 s apart; no
/// flush during the run). Every point of the batch is older than the device's newest value, so
/// each must be looked up; all are dropped, so the memtable does not grow between iterations.
fn late_duplicates(c: &mut Criterion) {
    const DEVICES: u32 = 10_000;
    const STEPS: i64 = 22;
    let mut g = c.benchmark_group("late_duplicates");
    g.throughput(Throughput::Elements(100));
    g.measurement_time(Duration::from_secs(5));
    let (_dir, storage) =
        open_configured(FsyncPolicy::Never, 10_000_000, Duration::from_secs(3600));
    let value = |d: u32, p: u16, step: i64| f64::from(d % 100) + f64::from(p) + step as f64 * 0.25;
    for step in 0..STEPS {
        let pts: Vec<Point> = (0..DEVICES)
            .flat_map(|d| (0..4u16).map(move |p| (d, p)))
            .map(|(d, p)| Point::number(1, d, p, step * 10_000_000, value(d, p, step)))
            .collect();
        storage.write(pts).unwrap();
    }
    let mut device = 0u32;
    g.bench_function("resend_100_points_into_900k_rows", |b| {
        b.iter(|| {
            device = (device + 1) % DEVICES;
            let pts: Vec<Point> = (0..100i64)
                .map(|i| {
                    let (p, step) = ((i % 4) as u16, i / 4 % (STEPS - 1));
                    Point::number(1, device, p, step * 10_000_000, value(device, p, step))
                })
                .collect();
            storage.write(pts).unwrap();
        })
    });
    let stats = storage.stats();
    assert_eq!(stats.flushes, 0, "the memtable was flushed during the run");
    // (Nothing was re-sent when a filter on the command line skipped this benchmark.)
    assert!(device == 0 || stats.duplicates_dropped >= 100);
    storage.close().unwrap();
    g.finish();
}

criterion_group!(
    benches,
    single_writer,
    concurrent_writers,
    flush_memtable,
    compact_files,
    late_duplicates
);
criterion_main!(benches);
