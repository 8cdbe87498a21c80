//! The `query` scenario: dashboards and data teams against a large data set, in-process.
//!
//! 1. **Data set** (skipped with `--reuse` when the directory already holds one): the shared
//!    realistic fleet ([`crate::data`]) — `--devices` devices × 4 pins, `--values` values per
//!    series spread evenly over `--days` days ending at 2026-11-25T00:00Z — written into a
//!    store under `--dir` (fsync `never`), flushed, compacted, rolled up. 10,000 × 4 × 2,500 =
//!    100 M rows by default.
//! 2. **Dashboard reads**, each repeated `--runs` times with fixed-seed random devices and pins
//!    from `--concurrency` concurrent readers, latency percentiles from an HDR histogram and
//!    requests per second: the last 24 h of one pin at 1,440 points, one year at 1,000 points;
//!    and the last value of a pin.
//! 3. **SQL**, each run `--sql-runs` times (median reported): the fleet-wide hourly average per
//!    device over one day, and five data-team queries (written in [`SQL`]). With `--duckdb`, the
//!    same statements run in DuckDB (PyPI `duckdb`, `bench/peers/duckdb_sql.py`) over the same
//!    Parquet files in the same run, and the report gives pinhouse / DuckDB ratios.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use pinhouse_query::{HistoryRequest, OrgScope, QueryEngine};
use pinhouse_storage::{FsyncPolicy, Storage, StorageConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::output::OutputArgs;
use crate::storage::Fleet;

/// Flags of `pinhouse-bench query`.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// Directory of the data set (created if missing).
    #[arg(long)]
    dir: PathBuf,
    /// Use the data set already in `--dir` instead of writing a new one.
    #[arg(long)]
    reuse: bool,
    /// Devices of the data set.
    #[arg(long, default_value_t = 10_000)]
    devices: u32,
    /// Values per series (device × pin).
    #[arg(long, default_value_t = 2_500)]
    values: u32,
    /// Days the values spread over.
    #[arg(long, default_value_t = 365)]
    days: u32,
    /// Repetitions of each dashboard read.
    #[arg(long, default_value_t = 200)]
    runs: u32,
    /// Dashboard history reads in flight at once (the runs are shared among this many
    /// concurrent readers, each with its own fixed seed).
    #[arg(long, default_value_t = 1)]
    concurrency: u32,
    /// Repetitions of each SQL statement (the median is reported).
    #[arg(long, default_value_t = 3)]
    sql_runs: u32,
    /// Also run the SQL statements in DuckDB over the same Parquet files.
    #[arg(long)]
    duckdb: bool,
    /// Run only the SQL statements whose name starts with one of these (case-insensitive,
    /// e.g. `--only Q1 --only fleet`); all of them when not given.
    #[arg(long = "only", value_name = "NAME")]
    only: Vec<String>,
    #[command(flatten)]
    out: OutputArgs,
}

/// End of the data set: 2026-11-25T00:00:00Z, µs.
const END_US: i64 = 1_795_564_800_000_000;
const DAY_US: i64 = 86_400_000_000;
const ORG: u32 = 1;

/// The SQL statements, as written in `BENCHMARKS.md`. Plain SQL both engines read the same
/// way (`date_trunc`, timestamp literals); `{from}`/`{to}` are filled in per run.
pub const SQL: [(&str, &str); 6] = [
    (
        "fleet hourly average per device, one day",
        "SELECT device_id, date_trunc('hour', ts) AS hour, avg(value) AS avg FROM telemetry \
         WHERE pin = 0 AND ts >= TIMESTAMP '{day_from}' AND ts < TIMESTAMP '{to}' GROUP BY 1, 2",
    ),
    (
        "Q1 rows and average per pin, all data",
        "SELECT pin, count(*) AS n, avg(value) AS avg FROM telemetry GROUP BY pin ORDER BY pin",
    ),
    (
        "Q2 top 10 devices by maximum of pin 0, last 30 days",
        "SELECT device_id, max(value) AS peak FROM telemetry \
         WHERE pin = 0 AND ts >= TIMESTAMP '{month_from}' AND ts < TIMESTAMP '{to}' \
         GROUP BY device_id ORDER BY peak DESC, device_id LIMIT 10",
    ),
    (
        "Q3 daily min / max / average of pin 1 across the fleet, one year",
        "SELECT date_trunc('day', ts) AS day, min(value) AS lo, max(value) AS hi, avg(value) AS avg \
         FROM telemetry WHERE pin = 1 GROUP BY 1 ORDER BY 1",
    ),
    (
        "Q4 devices whose pin 2 averaged above 25 over the last 7 days",
        "SELECT device_id, avg(value) AS avg FROM telemetry \
         WHERE pin = 2 AND ts >= TIMESTAMP '{week_from}' AND ts < TIMESTAMP '{to}' \
         GROUP BY device_id HAVING avg(value) > 25 ORDER BY device_id",
    ),
    (
        "Q5 time share of each text state on pin 3",
        "SELECT text, count(*) AS n FROM telemetry WHERE pin = 3 GROUP BY text ORDER BY n DESC",
    ),
];

fn iso(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The statements with their time range filled in.
pub fn statements() -> Vec<(String, String)> {
    SQL.iter()
        .map(|(name, sql)| {
            let sql = sql
                .replace("{to}", &iso(END_US))
                .replace("{day_from}", &iso(END_US - DAY_US))
                .replace("{week_from}", &iso(END_US - 7 * DAY_US))
                .replace("{month_from}", &iso(END_US - 30 * DAY_US));
            ((*name).to_owned(), sql)
        })
        .collect()
}

fn store_dir(dir: &Path) -> PathBuf {
    dir.join("store")
}

fn open(dir: &Path) -> Result<Storage> {
    let mut config = StorageConfig::new(store_dir(dir));
    config.fsync = FsyncPolicy::Never;
    Ok(Storage::open(config)?)
}

/// Writes the data set; returns (rows, seconds).
fn build(args: &QueryArgs) -> Result<(u64, f64)> {
    let store = store_dir(&args.dir);
    if store.exists() {
        std::fs::remove_dir_all(&store).with_context(|| format!("clearing {}", store.display()))?;
    }
    let storage = open(&args.dir)?;
    let interval_us = i64::from(args.days) * DAY_US / i64::from(args.values.max(1));
    let start_us = END_US - i64::from(args.values) * interval_us;
    let interval_s = u32::try_from(interval_us / 1_000_000).context("interval too long")?;
    let mut fleet = Fleet::new_at(0, args.devices, 42, interval_s, start_us);
    let started = Instant::now();
    let mut rows = 0u64;
    let (tx, rx) = crossbeam_channel::unbounded::<bool>();
    let mut queued = 0usize;
    let mut buf = Vec::with_capacity(args.devices as usize * 4);
    for step in 0..args.values {
        fleet.step(&mut buf);
        rows += buf.len() as u64;
        if queued == 8 {
            if !rx.recv().unwrap_or(false) {
                bail!("a write failed");
            }
            queued -= 1;
        }
        let tx = tx.clone();
        storage.write_with(
            std::mem::take(&mut buf),
            Box::new(move |r| {
                let _ = tx.send(r.is_ok());
            }),
        );
        queued += 1;
        if step % 250 == 249 {
            eprintln!(
                "  {:>5.1} M rows written ({:.0} s)",
                rows as f64 / 1e6,
                started.elapsed().as_secs_f64()
            );
        }
    }
    for _ in 0..queued {
        if !rx.recv().unwrap_or(false) {
            bail!("a write failed");
        }
    }
    storage.flush()?;
    eprintln!("  flushed; compacting…");
    storage.compact()?;
    let stored = storage.snapshot().file_rows();
    if stored != rows {
        bail!("{rows} rows written but {stored} stored");
    }
    storage.close()?;
    Ok((rows, started.elapsed().as_secs_f64()))
}

fn percentiles(h: &Histogram<u64>, requests_per_s: f64) -> serde_json::Value {
    json!({
        "requests_per_s": requests_per_s,
        "p50_us": h.value_at_quantile(0.5),
        "p90_us": h.value_at_quantile(0.9),
        "p99_us": h.value_at_quantile(0.99),
        "p999_us": h.value_at_quantile(0.999),
        "max_us": h.max(),
        "runs": h.len(),
    })
}

fn print_latency(name: &str, h: &Histogram<u64>, per_s: f64, target: &str) {
    println!(
        "{name:<44} p50 {:>8} µs  p90 {:>8} µs  p99 {:>8} µs  p99.9 {:>8} µs  max {:>8} µs  {per_s:>7.0}/s   (target {target})",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.9),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    );
}

/// Latencies and throughput (requests/s) of `args.runs` history requests of `span_us` at
/// `points` points for random devices and pins, from `args.concurrency` concurrent readers.
async fn history(
    engine: &QueryEngine,
    args: &QueryArgs,
    seed: u64,
    span_us: i64,
    points: u32,
) -> Result<(Histogram<u64>, f64)> {
    let readers = args.concurrency.max(1);
    let started = Instant::now();
    let tasks: Vec<_> = (0..readers)
        .map(|reader| {
            let engine = engine.clone();
            let runs = args.runs / readers + u32::from(reader < args.runs % readers);
            let devices = args.devices;
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(seed.wrapping_add(u64::from(reader)));
                let mut h = Histogram::<u64>::new(3)?;
                for _ in 0..runs {
                    let request = HistoryRequest {
                        org_id: ORG,
                        device_id: rng.random_range(0..devices),
                        pin: rng.random_range(0..3),
                        from_us: END_US - span_us,
                        to_us: END_US,
                        points,
                    };
                    let t = Instant::now();
                    let result = engine.history(&request).await?;
                    h.record(t.elapsed().as_micros() as u64)?;
                    std::hint::black_box(result);
                }
                Ok::<_, anyhow::Error>(h)
            })
        })
        .collect();
    let mut all = Histogram::<u64>::new(3)?;
    for task in tasks {
        all.add(task.await??)?;
    }
    let per_s = all.len() as f64 / started.elapsed().as_secs_f64().max(f64::MIN_POSITIVE);
    Ok((all, per_s))
}

/// The statements whose name starts with one of `only` (all when `only` is empty).
fn selected(statements: Vec<(String, String)>, only: &[String]) -> Result<Vec<(String, String)>> {
    if only.is_empty() {
        return Ok(statements);
    }
    let picked: Vec<_> = statements
        .into_iter()
        .filter(|(name, _)| {
            only.iter()
                .any(|o| name.to_lowercase().starts_with(&o.to_lowercase()))
        })
        .collect();
    if picked.is_empty() {
        bail!(
            "--only {} matches no SQL statement (names start with fleet, Q1 … Q5)",
            only.join(", ")
        );
    }
    Ok(picked)
}

/// Runs the scenario and prints the report.
pub async fn run(args: QueryArgs) -> Result<()> {
    std::fs::create_dir_all(&args.dir)?;
    let mut report = serde_json::Map::new();
    if !args.reuse || !store_dir(&args.dir).exists() {
        eprintln!(
            "writing {} devices × 4 pins × {} values over {} days…",
            args.devices, args.values, args.days
        );
        let (rows, seconds) = build(&args)?;
        println!(
            "data set: {rows} rows written, flushed and compacted in {seconds:.0} s ({:.2} M rows/s)",
            rows as f64 / seconds / 1e6
        );
        report.insert("build".into(), json!({"rows": rows, "seconds": seconds}));
    }
    let storage = open(&args.dir)?;
    let snapshot = storage.snapshot();
    let (rows, files, bytes) = (
        snapshot.file_rows(),
        snapshot.files.len(),
        snapshot.files.iter().map(|f| f.bytes).sum::<u64>(),
    );
    drop(snapshot);
    println!(
        "store: {rows} rows in {files} Parquet files, {:.1} MiB ({:.2} bytes/row)",
        bytes as f64 / (1 << 20) as f64,
        bytes as f64 / rows.max(1) as f64
    );
    report.insert(
        "store".into(),
        json!({"rows": rows, "files": files, "bytes": bytes}),
    );
    let engine = QueryEngine::with_rollup_dir(storage.clone(), args.dir.join("rollups"))?;
    let started = Instant::now();
    let pass = engine.refresh_rollups();
    println!(
        "rollups: {:?} in {:.1} s",
        pass,
        started.elapsed().as_secs_f64()
    );

    // Dashboard reads.
    let (day, day_rate) = history(&engine, &args, 7, DAY_US, 1440).await?;
    print_latency(
        "history, 24 h of one pin at 1440 points",
        &day,
        day_rate,
        "p50 ≤ 2 ms",
    );
    let (year, year_rate) = history(&engine, &args, 1007, 365 * DAY_US, 1000).await?;
    print_latency(
        "history, 1 year of one pin at 1000 points",
        &year,
        year_rate,
        "≤ 20 ms",
    );
    let mut last = Histogram::<u64>::new(3)?;
    let mut rng = StdRng::seed_from_u64(11);
    for _ in 0..args.runs.max(1) * 50 {
        let (device, pin) = (rng.random_range(0..args.devices), rng.random_range(0..4));
        let t = Instant::now();
        let v = storage.last_value(ORG, device, pin);
        // ns resolution: record in ns, report µs with 3 decimals below.
        last.record(t.elapsed().as_nanos() as u64)?;
        std::hint::black_box(v);
    }
    println!(
        "{:<44} p50 {:>8.3} µs  p99 {:>8.3} µs   (target ≤ 100 µs)",
        "last value of a pin",
        last.value_at_quantile(0.5) as f64 / 1000.0,
        last.value_at_quantile(0.99) as f64 / 1000.0
    );
    report.insert(
        "dashboard".into(),
        json!({
            "concurrency": args.concurrency.max(1),
            "history_24h_1440": percentiles(&day, day_rate),
            "history_1y_1000": percentiles(&year, year_rate),
            "last_value_ns": {
                "p50": last.value_at_quantile(0.5),
                "p90": last.value_at_quantile(0.9),
                "p99": last.value_at_quantile(0.99),
                "p999": last.value_at_quantile(0.999),
                "max": last.max(),
            },
        }),
    );

    // SQL.
    let scope = OrgScope::single(ORG);
    let mut sql_rows = Vec::new();
    let statements = selected(statements(), &args.only)?;
    let duck = if args.duckdb {
        Some(duckdb(&args.dir, &statements, args.sql_runs)?)
    } else {
        None
    };
    for (i, (name, sql)) in statements.iter().enumerate() {
        let mut times = Vec::new();
        let mut rows_out = 0;
        for _ in 0..args.sql_runs.max(1) {
            let t = Instant::now();
            let result = engine.sql(&scope, sql).await?;
            times.push(t.elapsed());
            rows_out = result.num_rows();
        }
        times.sort();
        let median = times[times.len() / 2];
        let duck_s = duck.as_ref().and_then(|d| d.get(i).copied());
        let ratio = duck_s.map(|d| median.as_secs_f64() / d);
        println!(
            "{name:<66} {:>9.3} s  {:>7} rows{}",
            median.as_secs_f64(),
            rows_out,
            match (duck_s, ratio) {
                (Some(d), Some(r)) => format!("   DuckDB {d:.3} s   pinhouse/DuckDB {r:.2}"),
                _ => String::new(),
            }
        );
        sql_rows.push(json!({
            "name": name, "sql": sql, "seconds": median.as_secs_f64(), "rows": rows_out,
            "duckdb_seconds": duck_s, "ratio_to_duckdb": ratio,
        }));
    }
    report.insert("sql".into(), sql_rows.into());
    storage.close()?;
    report.insert("scenario".into(), json!("query"));
    args.out.emit(&serde_json::Value::Object(report))?;
    Ok(())
}

/// Median seconds of each statement in DuckDB over the store's Parquet files.
fn duckdb(dir: &Path, statements: &[(String, String)], runs: u32) -> Result<Vec<f64>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/duckdb_sql.py");
    let glob = store_dir(dir).join("parquet/**/*.parquet");
    let input = serde_json::to_string(
        &statements
            .iter()
            .map(|(_, sql)| sql.clone())
            .collect::<Vec<_>>(),
    )?;
    let started = Instant::now();
    let out = Command::new("python3")
        .arg(&script)
        .arg(glob)
        .arg(runs.max(1).to_string())
        .arg(input)
        .output()
        .context("running python3 bench/peers/duckdb_sql.py (pip install duckdb)")?;
    if !out.status.success() {
        bail!(
            "DuckDB run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let times: Vec<f64> = serde_json::from_slice(&out.stdout)?;
    eprintln!(
        "DuckDB ran {} statements in {:.1} s",
        times.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(times)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(iso(END_US), "2026-11-25 00:00:00");
        assert_eq!(iso(0), "1970-01-01 00:00:00");
        assert_eq!(iso(END_US - DAY_US + 3_723_000_000), "2026-11-24 01:02:03");
    }

    #[test]
    fn only_picks_statements_by_name() {
        let q = |only: &[&str]| {
            let only: Vec<String> = only.iter().map(|s| (*s).to_owned()).collect();
            selected(statements(), &only).map(|s| s.into_iter().map(|(n, _)| n).collect::<Vec<_>>())
        };
        assert_eq!(q(&[]).unwrap().len(), SQL.len());
        let picked = q(&["q1", "Fleet"]).unwrap();
        assert_eq!(picked.len(), 2);
        assert!(picked[0].starts_with("fleet") && picked[1].starts_with("Q1"));
        assert!(q(&["Q9"]).is_err());
    }

    #[test]
    fn statements_are_filled_in() {
        for (_, sql) in statements() {
            assert!(!sql.contains('{'), "{sql}");
        }
    }
}
