//! The `mixed` scenario: the realistic case of one running server doing everything at once.
//!
//! - **Ingest**: `--devices` device sessions (any transport) each stream `--rate` values per
//!   second (the `ingest` scenario's device code, [`crate::device`]).
//! - **Dashboards**: `--dashboards` concurrent viewers, each in a closed loop picking a random
//!   device (seeded by `--seed`) and reading its last values (`GET /api/v1/devices/{id}/values`)
//!   and the last `--history-minutes` of one pin at `--history-points` points
//!   (`GET /api/v1/devices/{id}/history`).
//! - **SQL**: `--sql` concurrent data-team clients running the statements of [`SQL`] in turn
//!   over recent data (`POST /api/v1/sql`).
//!
//! The first `--warmup` seconds are not measured; then for `--duration` seconds the report
//! counts values sent and records each request class's latency (HDR histogram). After the
//! run it waits until SQL sees every value sent, so dropped values fail the run.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::chart;
use crate::device::{self, Control, StreamPlan};
use crate::fleet::{self, FleetArgs};
use crate::ingest::{latency_json, series_json, visible_rows, wait_visible};
use crate::latency::{self, Latencies};
use crate::meter::Meter;
use crate::output::{ChartArgs, OutputArgs};
use crate::rest::Rest;
use crate::transport::ConnectArgs;

/// Flags of `pinhouse-bench mixed`.
#[derive(Debug, clap::Args)]
pub struct MixedArgs {
    #[command(flatten)]
    fleet: FleetArgs,
    #[command(flatten)]
    connect: ConnectArgs,
    /// Simulated devices (one session each).
    #[arg(long, default_value_t = 100)]
    devices: u32,
    /// Virtual pins written by each device (V0..).
    #[arg(long, default_value_t = 4)]
    pins: u8,
    /// Values per second per device (0 = as fast as possible).
    #[arg(long, default_value_t = 100)]
    rate: u32,
    /// `vw` frames per socket write.
    #[arg(long, default_value_t = 10)]
    frames_per_write: u32,
    /// End every device write with a ping and record the round trip as a fourth class.
    #[arg(long)]
    latency: bool,
    /// Concurrent dashboard viewers (last values + history, closed loop).
    #[arg(long, default_value_t = 4)]
    dashboards: u32,
    /// Minutes of history a dashboard chart shows.
    #[arg(long, default_value_t = 60)]
    history_minutes: u32,
    /// Points of a dashboard chart.
    #[arg(long, default_value_t = 360)]
    history_points: u32,
    /// Concurrent SQL clients (closed loop over the statements of the scenario).
    #[arg(long, default_value_t = 1)]
    sql: u32,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Seed of the dashboards' random choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// File caching device ids and tokens between runs (created or extended as needed).
    #[arg(long)]
    tokens_file: Option<std::path::PathBuf>,
    /// Seconds to wait, after the run, for every value sent to be visible in SQL.
    #[arg(long, default_value_t = 120)]
    commit_timeout: u64,
    #[command(flatten)]
    charts: ChartArgs,
    #[command(flatten)]
    out: OutputArgs,
}

/// The data-team statements of the scenario, run in turn by each SQL client: recent data
/// across the fleet, as an analyst's notebook or a Grafana panel asks for it.
pub const SQL: [&str; 3] = [
    "SELECT pin, count(*) AS n, avg(value) AS avg FROM telemetry \
     WHERE ts >= now() - INTERVAL '1 minute' GROUP BY pin ORDER BY pin",
    "SELECT device_id, max(value) AS peak FROM telemetry \
     WHERE pin = 0 AND ts >= now() - INTERVAL '5 minutes' \
     GROUP BY device_id ORDER BY peak DESC, device_id LIMIT 10",
    "SELECT date_trunc('minute', ts) AS minute, min(value) AS lo, max(value) AS hi \
     FROM telemetry WHERE pin = 1 AND ts >= now() - INTERVAL '15 minutes' GROUP BY 1 ORDER BY 1",
];

/// Counters of the meter, in order.
const SENT: usize = 0;
const HISTORY: usize = 1;
const LAST_VALUE: usize = 2;
const SQL_CLASS: usize = 3;

/// What one query worker measured.
struct Measured {
    latencies: Vec<(usize, Latencies)>,
    errors: u64,
    first_error: Option<String>,
}

impl Measured {
    fn new(classes: &[usize]) -> Result<Self> {
        Ok(Self {
            latencies: classes
                .iter()
                .map(|c| Ok((*c, Latencies::new()?)))
                .collect::<Result<_>>()?,
            errors: 0,
            first_error: None,
        })
    }

    /// Time `request`, count it in `meter` and record it when `recording`.
    async fn time<F: Future<Output = Result<usize>>>(
        &mut self,
        class: usize,
        control: &Control,
        meter: &Meter,
        request: F,
    ) -> Result<()> {
        let started = Instant::now();
        let result = request.await;
        let elapsed = started.elapsed();
        meter.add(class, 1);
        if !control.recording.load(Ordering::Relaxed) {
            return Ok(());
        }
        match result {
            Ok(_) => {
                let (_, l) = self
                    .latencies
                    .iter_mut()
                    .find(|(c, _)| *c == class)
                    .context("unknown class")?;
                l.record(elapsed)?;
            }
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
        Ok(())
    }
}

async fn dashboard(
    rest: Rest,
    ids: Arc<Vec<u64>>,
    args: Arc<(u8, u32, u32)>,
    seed: u64,
    control: Arc<Control>,
    meter: Arc<Meter>,
) -> Result<Measured> {
    let (pins, minutes, points) = *args;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut measured = Measured::new(&[HISTORY, LAST_VALUE])?;
    while !control.stop.load(Ordering::Relaxed) {
        let id = ids[rng.random_range(0..ids.len())];
        let pin = rng.random_range(0..pins.max(1));
        measured
            .time(
                LAST_VALUE,
                &control,
                &meter,
                rest.get_len(&format!("/api/v1/devices/{id}/values")),
            )
            .await?;
        let to = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as i64;
        let from = to - i64::from(minutes) * 60_000;
        measured
            .time(
                HISTORY,
                &control,
                &meter,
                rest.get_len(&format!(
                    "/api/v1/devices/{id}/history?pin=V{pin}&from={from}&to={to}&points={points}"
                )),
            )
            .await?;
    }
    Ok(measured)
}

async fn sql_client(
    rest: Rest,
    first: usize,
    control: Arc<Control>,
    meter: Arc<Meter>,
) -> Result<Measured> {
    let mut measured = Measured::new(&[SQL_CLASS])?;
    let mut i = first;
    while !control.stop.load(Ordering::Relaxed) {
        let sql = SQL[i % SQL.len()];
        measured
            .time(SQL_CLASS, &control, &meter, rest.sql_len(sql))
            .await?;
        i += 1;
    }
    Ok(measured)
}

/// Run the scenario.
pub async fn run(args: MixedArgs) -> Result<()> {
    if args.devices == 0 {
        bail!("--devices must be at least 1");
    }
    let rest = Rest::login(&args.fleet.http, &args.fleet.email, &args.fleet.password).await?;
    let devices = fleet::devices(
        &args.fleet,
        args.devices,
        args.pins,
        args.tokens_file.as_deref(),
    )
    .await?;
    let before = visible_rows(&rest, &devices).await?;
    let connector = Arc::new(args.connect.connector(&args.fleet.http)?);
    let transport = args.connect.name();
    eprintln!("logging {} devices in over {transport}…", args.devices);
    let tokens = devices.iter().map(|d| d.token.clone()).collect();
    let sessions = device::login_all(&connector, tokens, args.connect.sources).await?;

    let control = Arc::new(Control::default());
    let meter = Meter::new(&["sent", "history", "last value", "sql"]);
    eprintln!(
        "mixed load: {} devices × {} values/s, {} dashboards, {} SQL clients; {} s warm-up, {} s measured",
        args.devices, args.rate, args.dashboards, args.sql, args.warmup, args.duration
    );
    let sampler = meter.spawn();
    let plan = StreamPlan {
        pins: args.pins,
        per_write: args.frames_per_write.max(1),
        rate: args.rate,
        latency: args.latency,
        values: None,
    };
    let ingest = tokio::spawn(device::stream_all(
        sessions,
        plan,
        control.clone(),
        meter.clone(),
        SENT,
    ));
    let ids = Arc::new(devices.iter().map(|d| d.id).collect::<Vec<_>>());
    let view = Arc::new((args.pins, args.history_minutes.max(1), args.history_points));
    let mut workers = Vec::new();
    for i in 0..args.dashboards {
        workers.push(tokio::spawn(dashboard(
            rest.clone(),
            ids.clone(),
            view.clone(),
            args.seed.wrapping_add(u64::from(i)),
            control.clone(),
            meter.clone(),
        )));
    }
    for i in 0..args.sql {
        workers.push(tokio::spawn(sql_client(
            rest.clone(),
            i as usize,
            control.clone(),
            meter.clone(),
        )));
    }

    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    let sent_at_start = meter.total(SENT);
    control.recording.store(true, Ordering::Relaxed);
    let measured_from = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    let sent_in_window = meter.total(SENT) - sent_at_start;
    let seconds = measured_from.elapsed().as_secs_f64();
    control.stop.store(true, Ordering::Relaxed);
    let write_latency = ingest.await??;
    let mut classes = [
        (HISTORY, Latencies::new()?),
        (LAST_VALUE, Latencies::new()?),
        (SQL_CLASS, Latencies::new()?),
    ];
    let (mut errors, mut first_error) = (0u64, None);
    for worker in workers {
        let m = worker.await??;
        for (class, l) in &m.latencies {
            if let Some((_, all)) = classes.iter_mut().find(|(c, _)| c == class) {
                all.merge(l)?;
            }
        }
        errors += m.errors;
        if first_error.is_none() {
            first_error = m.first_error;
        }
    }
    let series = meter.finish(sampler).await;
    let sent_total = meter.total(SENT);
    let stopped = Instant::now();
    let visible = wait_visible(
        &rest,
        &devices,
        before + sent_total,
        Duration::from_secs(args.commit_timeout),
    )
    .await?;
    let commit_lag = stopped.elapsed().as_secs_f64();
    let ingest_rate = sent_in_window as f64 / seconds;

    let [(_, history), (_, last_value), (_, sql)] = &classes;
    println!(
        "scenario  transport devices  rate/dev  dashboards  sql  seconds  values/s      values sent  commit lag s  errors"
    );
    println!(
        "mixed     {transport:<9} {:<8} {:<9} {:<11} {:<4} {seconds:<8.1} {ingest_rate:<13.0} {sent_total:<12} {commit_lag:<13.2} {errors}",
        args.devices, args.rate, args.dashboards, args.sql,
    );
    let mut rows: Vec<(&str, &Latencies)> = vec![
        ("history", history),
        ("last value", last_value),
        ("sql", sql),
    ];
    if args.latency {
        rows.push(("device write → ping", &write_latency));
    }
    latency::print_table(&rows, seconds);
    if let Some(e) = &first_error {
        eprintln!("first request error: {e}");
    }
    if let Some(dir) = args.charts.charts()? {
        chart::throughput(
            &dir.join("mixed-ingest-throughput.png"),
            &format!(
                "mixed: values sent per second ({} devices, first {} s warm-up)",
                args.devices, args.warmup
            ),
            "values/s",
            &[("sent", chart::column(&series, SENT))],
        )?;
        chart::throughput(
            &dir.join("mixed-query-throughput.png"),
            &format!(
                "mixed: requests per second ({} dashboards, {} SQL clients)",
                args.dashboards, args.sql
            ),
            "requests/s",
            &[
                ("history", chart::column(&series, HISTORY)),
                ("last value", chart::column(&series, LAST_VALUE)),
                ("sql", chart::column(&series, SQL_CLASS)),
            ],
        )?;
        chart::latency(
            &dir.join("mixed-latency.png"),
            "mixed: latency of each request class under ingest",
            &rows,
        )?;
    }
    let report = json!({
        "scenario": "mixed",
        "transport": transport,
        "devices": args.devices,
        "pins": args.pins,
        "rate_per_device": args.rate,
        "frames_per_write": args.frames_per_write,
        "dashboards": args.dashboards,
        "history_minutes": args.history_minutes,
        "history_points": args.history_points,
        "sql_clients": args.sql,
        "sql": SQL,
        "seed": args.seed,
        "warmup_seconds": args.warmup,
        "seconds": seconds,
        "values_sent_measured": sent_in_window,
        "values_sent_total": sent_total,
        "ingest_values_per_sec": ingest_rate,
        "visible_after_run": visible - before,
        "commit_lag_seconds": commit_lag,
        "errors": errors,
        "first_error": first_error,
        "latency": {
            "history": latency_json(history),
            "last_value": latency_json(last_value),
            "sql": latency_json(sql),
            "write": if args.latency { latency_json(&write_latency) } else { serde_json::Value::Null },
        },
        "per_second": {
            "sent": series_json(&series, SENT),
            "history": series_json(&series, HISTORY),
            "last_value": series_json(&series, LAST_VALUE),
            "sql": series_json(&series, SQL_CLASS),
        },
    });
    args.out.emit(&report)?;
    if history.count() + last_value.count() + sql.count() == 0 && args.dashboards + args.sql > 0 {
        bail!("no query was answered in the measured window");
    }
    Ok(())
}
