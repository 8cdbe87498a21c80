//! The `storage` scenario: the storage engine in-process, without network or SQL.
//!
//! 1. Write throughput into WAL + memtable under each fsync policy: `--writers` threads, each
//!    keeping up to `--in-flight` batches of `--batch` points queued (`write_with`, as the
//!    ingest path does), until every write is acknowledged.
//! 2. Bytes per point on disk for the shared realistic data set ([`crate::data`]):
//!    `--devices` devices × 4 pins every `--interval-s` seconds for `--hours` hours; pins 0–2
//!    random walks with two decimals, pin 3 an enum-like text state. Measured after the
//!    flushes and again after compaction; then the store is closed and reopened, timing a
//!    restart (the last value of every series restored).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use pinhouse_storage::{FsyncPolicy, Point, Storage, StorageConfig};
use serde_json::json;

use crate::data::{Sample, SensorFleet};
use crate::output::OutputArgs;

/// Flags of `pinhouse-bench storage`.
#[derive(Debug, clap::Args)]
pub struct StorageArgs {
    /// Directory for the temporary stores (created if missing; default: the system temp
    /// dir). Use a real disk: fsync on tmpfs costs nothing.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// fsync policies to measure: any of `always`, `interval`, `never`.
    #[arg(long, value_delimiter = ',', default_value = "always,interval,never")]
    policies: Vec<String>,
    /// Interval of the `interval` policy, in milliseconds.
    #[arg(long, default_value_t = 10)]
    interval_ms: u64,
    /// Points written per policy in the throughput phase.
    #[arg(long, default_value_t = 10_000_000)]
    values: u64,
    /// Writer threads.
    #[arg(long, default_value_t = 4)]
    writers: usize,
    /// Points per write.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Writes each writer keeps queued.
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
    /// Devices of the realistic data set.
    #[arg(long, default_value_t = 10_000)]
    devices: u32,
    /// Seconds between two values of a pin.
    #[arg(long, default_value_t = 10)]
    interval_s: u32,
    /// Hours of data in the bytes-per-point phase.
    #[arg(long, default_value_t = 1)]
    hours: u32,
    /// Skip the throughput phase.
    #[arg(long)]
    no_throughput: bool,
    /// Skip the bytes-per-point phase.
    #[arg(long)]
    no_size: bool,
    #[command(flatten)]
    out: OutputArgs,
}

/// 2026-11-25T00:00:00Z
const START_US: i64 = 1_795_564_800_000_000;
const PINS: u8 = 4;

/// The shared realistic data set ([`crate::data`]) for devices `first..first + count`, as
/// storage points, one instant at a time.
pub(crate) struct Fleet {
    inner: SensorFleet,
    first: u32,
}

impl Fleet {
    fn new(first: u32, count: u32, seed: u64, interval_s: u32) -> Fleet {
        Self::new_at(first, count, seed, interval_s, START_US)
    }

    /// The data set starting at `start_us` (µs since the epoch).
    pub(crate) fn new_at(
        first: u32,
        count: u32,
        seed: u64,
        interval_s: u32,
        start_us: i64,
    ) -> Fleet {
        Fleet {
            inner: SensorFleet::new(
                seed,
                count,
                PINS,
                start_us,
                i64::from(interval_s) * 1_000_000,
            ),
            first,
        }
    }

    /// The next instant's value of every device and pin.
    pub(crate) fn step(&mut self, out: &mut Vec<Point>) {
        let (ts, values) = self.inner.tick();
        for (i, v) in values.iter().enumerate() {
            let device = self.first + (i / PINS as usize) as u32;
            let pin = (i % PINS as usize) as u16;
            out.push(match v {
                Sample::Number(x) => Point::number(1, device, pin, ts, *x),
                Sample::Text(t) => Point::from_text(1, device, pin, ts, t),
            });
        }
    }
}

fn policy(name: &str, interval_ms: u64) -> Result<FsyncPolicy> {
    Ok(match name {
        "always" => FsyncPolicy::Always,
        "interval" => FsyncPolicy::Interval(Duration::from_millis(interval_ms)),
        "never" => FsyncPolicy::Never,
        other => bail!("unknown fsync policy `{other}` (always, interval, never)"),
    })
}

fn temp_dir(args: &StorageArgs) -> Result<tempfile::TempDir> {
    Ok(match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d)
                .with_context(|| format!("cannot create --dir {}", d.display()))?;
            tempfile::tempdir_in(d)
                .with_context(|| format!("cannot make a store below {}", d.display()))?
        }
        None => tempfile::tempdir()?,
    })
}

/// Pre-generated batches for one writer: its share of the fleet, time step by time step.
fn writer_batches(args: &StorageArgs, w: usize) -> Vec<Vec<Point>> {
    let per_writer = (args.values / args.writers as u64) as usize;
    let devices = (args.devices / args.writers as u32).max(1);
    let mut fleet = Fleet::new(w as u32 * devices, devices, 7 + w as u64, args.interval_s);
    let mut all = Vec::with_capacity(per_writer + 4 * devices as usize);
    while all.len() < per_writer {
        fleet.step(&mut all);
    }
    all.truncate(per_writer);
    let mut batches = Vec::with_capacity(per_writer / args.batch + 1);
    let mut it = all.into_iter();
    loop {
        let b: Vec<Point> = it.by_ref().take(args.batch).collect();
        if b.is_empty() {
            break;
        }
        batches.push(b);
    }
    batches
}

struct Throughput {
    policy: String,
    values: u64,
    seconds: f64,
    fsyncs: u64,
    groups: u64,
    /// Times writers waited for the flusher (memtable budget reached).
    stalls: u64,
    /// Rows rewritten by automatic compaction while the writers ran.
    merged_rows: u64,
}

fn throughput(args: &StorageArgs, name: &str) -> Result<Throughput> {
    let dir = temp_dir(args)?;
    let mut config = StorageConfig::new(dir.path());
    config.fsync = policy(name, args.interval_ms)?;
    let storage = Storage::open(config)?;
    let inputs: Vec<Vec<Vec<Point>>> = (0..args.writers).map(|w| writer_batches(args, w)).collect();
    let total: u64 = inputs.iter().flatten().map(|b| b.len() as u64).sum();
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    std::thread::scope(|scope| {
        for batches in inputs {
            let storage = storage.clone();
            let failed = failed.clone();
            let in_flight = args.in_flight;
            scope.spawn(move || {
                let (tx, rx) = crossbeam_channel::unbounded::<bool>();
                let mut queued = 0usize;
                for b in batches {
                    if queued == in_flight {
                        if !rx.recv().unwrap_or(false) {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                        queued -= 1;
                    }
                    let tx = tx.clone();
                    storage.write_with(
                        b,
                        Box::new(move |r| {
                            let _ = tx.send(r.is_ok());
                        }),
                    );
                    queued += 1;
                }
                for _ in 0..queued {
                    if !rx.recv().unwrap_or(false) {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    let stats = storage.stats();
    storage.close()?;
    if failed.load(Ordering::Relaxed) > 0 {
        bail!("{} writes failed", failed.load(Ordering::Relaxed));
    }
    Ok(Throughput {
        policy: name.to_owned(),
        values: total,
        seconds,
        fsyncs: stats.wal_fsyncs,
        groups: stats.wal_groups,
        stalls: stats.backpressure_waits,
        merged_rows: stats.rewritten_rows,
    })
}

struct Size {
    points: u64,
    flushed_files: usize,
    flushed_bytes: u64,
    compacted_files: usize,
    compacted_bytes: u64,
    write_seconds: f64,
    compact_seconds: f64,
    reopen_seconds: f64,
    series: usize,
}

fn size(args: &StorageArgs) -> Result<Size> {
    let dir = temp_dir(args)?;
    let mut config = StorageConfig::new(dir.path());
    config.fsync = FsyncPolicy::Never;
    config.compact_min_files = 0;
    let storage = Storage::open(config.clone())?;
    let mut fleet = Fleet::new(0, args.devices, 42, args.interval_s);
    let steps = u64::from(args.hours) * 3600 / u64::from(args.interval_s.max(1));
    let started = Instant::now();
    let mut points = 0u64;
    let mut buf = Vec::new();
    for _ in 0..steps {
        fleet.step(&mut buf);
        if buf.len() >= 100_000 {
            points += buf.len() as u64;
            storage.write(std::mem::take(&mut buf))?;
        }
    }
    points += buf.len() as u64;
    storage.write(buf)?;
    storage.flush()?;
    let write_seconds = started.elapsed().as_secs_f64();
    let snap = storage.snapshot();
    let flushed_files = snap.files.len();
    let flushed_bytes = snap.files.iter().map(|f| f.bytes).sum();
    drop(snap);
    let started = Instant::now();
    storage.compact()?;
    let compact_seconds = started.elapsed().as_secs_f64();
    let snap = storage.snapshot();
    let rows: u64 = snap.file_rows();
    if rows != points {
        bail!("{points} points written but {rows} rows stored");
    }
    let compacted_files = snap.files.len();
    let compacted_bytes = snap.files.iter().map(|f| f.bytes).sum();
    drop(snap);
    storage.close()?;
    drop(storage);
    let started = Instant::now();
    let reopened = Storage::open(config)?;
    let reopen_seconds = started.elapsed().as_secs_f64();
    let series = reopened.recovery().series;
    reopened.close()?;
    Ok(Size {
        points,
        flushed_files,
        flushed_bytes,
        compacted_files,
        compacted_bytes,
        write_seconds,
        compact_seconds,
        reopen_seconds,
        series,
    })
}

/// Runs the scenario and prints the report.
pub fn run(args: StorageArgs) -> Result<()> {
    let mut report = serde_json::Map::new();
    if !args.no_throughput {
        let mut rows = Vec::new();
        for name in &args.policies {
            let t = throughput(&args, name).with_context(|| format!("policy {name}"))?;
            println!(
                "{:>8}: {:>12.0} values/s ({} values, {} writers × {} in flight × {} points, {:.2} s, {} groups, {} fsyncs, {} budget waits, {} rows merged)",
                t.policy,
                t.values as f64 / t.seconds,
                t.values,
                args.writers,
                args.in_flight,
                args.batch,
                t.seconds,
                t.groups,
                t.fsyncs,
                t.stalls,
                t.merged_rows
            );
            rows.push(json!({
                "policy": t.policy,
                "values": t.values,
                "seconds": t.seconds,
                "values_per_s": t.values as f64 / t.seconds,
                "wal_groups": t.groups,
                "wal_fsyncs": t.fsyncs,
                "budget_waits": t.stalls,
                "merged_rows": t.merged_rows,
            }));
        }
        report.insert("throughput".into(), rows.into());
    }
    if !args.no_size {
        let s = size(&args)?;
        let per = |b: u64| b as f64 / s.points as f64;
        println!(
            "size: {} points ({} devices × 4 pins every {} s for {} h), written + flushed in {:.1} s",
            s.points, args.devices, args.interval_s, args.hours, s.write_seconds
        );
        println!(
            "      after flushes:    {:>4} files {:>12} bytes  {:.3} bytes/point",
            s.flushed_files,
            s.flushed_bytes,
            per(s.flushed_bytes)
        );
        println!(
            "      after compaction: {:>4} files {:>12} bytes  {:.3} bytes/point ({:.1} s)",
            s.compacted_files,
            s.compacted_bytes,
            per(s.compacted_bytes),
            s.compact_seconds
        );
        println!(
            "      reopened in {:.2} s ({} series' last values restored)",
            s.reopen_seconds, s.series
        );
        report.insert(
            "size".into(),
            json!({
                "points": s.points,
                "flushed_files": s.flushed_files,
                "flushed_bytes": s.flushed_bytes,
                "flushed_bytes_per_point": per(s.flushed_bytes),
                "compacted_files": s.compacted_files,
                "compacted_bytes": s.compacted_bytes,
                "compacted_bytes_per_point": per(s.compacted_bytes),
                "reopen_seconds": s.reopen_seconds,
                "series": s.series,
            }),
        );
    }
    report.insert("scenario".into(), json!("storage"));
    report.insert("devices".into(), json!(args.devices));
    args.out.emit(&serde_json::Value::Object(report))?;
    Ok(())
}
