//! The `ingest` scenario: creates a template and N devices through the REST API, logs N
//! device sessions in over one transport, streams `vw` frames from all of them (several
//! frames per write, optionally paced) — a number of values each, or for `--duration`
//! seconds, after an unmeasured `--warmup` — then waits until SQL sees every value. Reports
//! sent and committed values per second over the measured window, the per-second send rate
//! over time, with `--latency` the write→ping round trips and with `--live-probe` the
//! device → live subscriber latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::chart;
use crate::device::{self, Control, StreamPlan};
use crate::fleet::{self, FleetArgs};
use crate::latency::{self, Latencies};
use crate::meter::{Interval, Meter};
use crate::output::{ChartArgs, OutputArgs};
use crate::probe;
use crate::rest::Rest;
use crate::transport::ConnectArgs;

/// Flags of `pinhouse-bench ingest`.
#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    #[command(flatten)]
    fleet: FleetArgs,
    #[command(flatten)]
    connect: ConnectArgs,
    /// Values per second per device (0 = as fast as possible).
    #[arg(long, default_value_t = 0)]
    rate: u32,
    /// End every write with a ping and wait for its answer: the round trip is
    /// recorded as the latency of that write (closed loop).
    #[arg(long)]
    latency: bool,
    /// Simulated devices (one session each).
    #[arg(long, default_value_t = 100)]
    devices: u32,
    /// Virtual pins written by each device (V0..).
    #[arg(long, default_value_t = 4)]
    pins: u8,
    /// Values each device sends (ignored with `--duration`).
    #[arg(long, default_value_t = 10_000)]
    values: u32,
    /// Stream for this many seconds after the warm-up instead of a number of values.
    #[arg(long)]
    duration: Option<u64>,
    /// Seconds of streaming before the measured window: values sent then are committed and
    /// checked like the others, but not counted in the rates, and no latency is recorded.
    #[arg(long, default_value_t = 0)]
    warmup: u64,
    /// `vw` frames per socket write (pipelining).
    #[arg(long, default_value_t = 100)]
    frames_per_write: u32,
    /// Automations to create on the simulated devices before streaming: datastream rules on
    /// V0 with a threshold no value reaches, so the engine evaluates every value and never
    /// fires (its cost beside ingest, without side effects).
    #[arg(long, default_value_t = 0)]
    automations: u32,
    /// Also run the device → live subscriber probe (one extra device, see `probe.rs`) while
    /// the fleet streams: its latency is reported as `live_latency`. Pace the fleet with
    /// `--rate` to measure the live path at a chosen load.
    #[arg(long)]
    live_probe: bool,
    /// Seconds to wait for every value to be visible in SQL.
    #[arg(long, default_value_t = 120)]
    commit_timeout: u64,
    #[command(flatten)]
    charts: ChartArgs,
    #[command(flatten)]
    out: OutputArgs,
}

/// Rows of `devices` visible in SQL (ids between the lowest and highest).
pub async fn visible_rows(rest: &Rest, devices: &[fleet::Device]) -> Result<u64> {
    let min = devices.iter().map(|d| d.id).min().unwrap_or(0);
    let max = devices.iter().map(|d| d.id).max().unwrap_or(0);
    let rows = rest
        .sql(&format!(
            "SELECT count(*) AS n FROM telemetry WHERE device_id BETWEEN {min} AND {max}"
        ))
        .await?;
    rows[0]["n"].as_u64().context("count in SQL answer")
}

/// Poll SQL until `target` rows of `devices` are visible or `timeout` passes; the count seen.
pub async fn wait_visible(
    rest: &Rest,
    devices: &[fleet::Device],
    target: u64,
    timeout: Duration,
) -> Result<u64> {
    let deadline = Instant::now() + timeout;
    loop {
        let n = visible_rows(rest, devices).await?;
        if n >= target {
            return Ok(n);
        }
        if Instant::now() > deadline {
            bail!(
                "only {n} of {target} values visible in SQL after {} s",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A rate series as JSON: `[[seconds, rate], …]` for counter `i`.
pub fn series_json(series: &[Interval], i: usize) -> Value {
    series
        .iter()
        .map(|s| json!([s.at_secs, s.rates[i]]))
        .collect::<Vec<_>>()
        .into()
}

/// Run the scenario.
pub async fn run(args: IngestArgs) -> Result<()> {
    let rest = Rest::login(&args.fleet.http, &args.fleet.email, &args.fleet.password).await?;
    let mut devices = fleet::devices(
        &args.fleet,
        args.devices + u32::from(args.live_probe),
        args.pins,
        None,
    )
    .await?;
    let probe_device = if args.live_probe { devices.pop() } else { None };
    if args.automations > 0 {
        eprintln!("creating {} automations…", args.automations);
        for i in 0..args.automations {
            let device = devices[i as usize % devices.len()].id;
            rest.post(
                "/api/v1/automations",
                &json!({
                    "name": format!("bench-{i}"),
                    "trigger": {"type": "datastream", "device_id": device, "pin": "V0", "op": ">", "value": 1e12},
                    "actions": [{"type": "write", "device_id": device, "pin": "V0", "value": "0"}],
                }),
            )
            .await?;
        }
    }
    let planned = args
        .duration
        .is_none()
        .then(|| u64::from(args.devices) * u64::from(args.values));
    let connector = Arc::new(args.connect.connector(&args.fleet.http)?);
    eprintln!(
        "logging {} devices in over {}…",
        args.devices,
        args.connect.name()
    );
    let tokens = devices.iter().map(|d| d.token.clone()).collect();
    let sessions = device::login_all(&connector, tokens, args.connect.sources).await?;
    match (planned, args.duration) {
        (Some(n), _) => eprintln!("streaming {n} values ({} s warm-up)…", args.warmup),
        (None, Some(secs)) => eprintln!("streaming for {secs} s after {} s warm-up…", args.warmup),
        (None, None) => unreachable!("values are planned unless a duration is given"),
    }
    let plan = StreamPlan {
        pins: args.pins,
        per_write: args.frames_per_write.max(1),
        rate: args.rate,
        latency: args.latency,
        values: planned.map(|_| args.values),
    };
    let control = Arc::new(Control::default());
    control
        .recording
        .store(args.warmup == 0, std::sync::atomic::Ordering::Relaxed);
    let probe = match probe_device {
        Some(d) => {
            let session = device::Device::login(&connector, 0, &d.token).await?;
            let probe = probe::subscribe(&rest, session, d.id).await?;
            Some(tokio::spawn(probe.run(Arc::clone(&control))))
        }
        None => None,
    };
    let meter = Meter::new(&["sent"]);
    let started = Instant::now();
    let sampler = meter.spawn();
    let streaming = tokio::spawn(device::stream_all(
        sessions,
        plan,
        Arc::clone(&control),
        Arc::clone(&meter),
        0,
    ));
    // The measured window: from the end of the warm-up (what was sent and what SQL saw by
    // then are subtracted) to the end of the stream, and to the last value visible in SQL.
    let (sent_before, visible_before, window_start) = if args.warmup > 0 {
        tokio::time::sleep(Duration::from_secs(args.warmup)).await;
        if streaming.is_finished() {
            bail!(
                "the stream ended during the {} s warm-up: send more --values, or use --duration",
                args.warmup
            );
        }
        let sent = meter.total(0);
        let visible = visible_rows(&rest, &devices).await?;
        control
            .recording
            .store(true, std::sync::atomic::Ordering::Relaxed);
        (sent, visible, Instant::now())
    } else {
        (0, 0, started)
    };
    if let Some(secs) = args.duration {
        tokio::time::sleep(Duration::from_secs(secs)).await;
        control
            .stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let latencies = streaming.await??;
    let sent_secs = window_start.elapsed().as_secs_f64();
    let series = meter.finish(sampler).await;
    control
        .stop
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let probe = match probe {
        Some(task) => Some(task.await??),
        None => None,
    };
    let expected = meter.total(0);
    let committed = wait_visible(
        &rest,
        &devices,
        expected,
        Duration::from_secs(args.commit_timeout),
    )
    .await?;
    let committed_secs = window_start.elapsed().as_secs_f64();
    let sent_in_window = expected - sent_before;
    let committed_in_window = expected.saturating_sub(visible_before);

    let transport = args.connect.name();
    let report = json!({
        "scenario": "ingest",
        "transport": transport,
        "automations": args.automations,
        "rate_per_device": args.rate,
        "write_latency": args.latency.then(|| latencies.report()),
        "live_latency": probe.as_ref().map(|p| latency_json(&p.latencies)),
        "live_lost": probe.as_ref().map(|p| p.lost),
        "devices": args.devices,
        "pins": args.pins,
        "values_per_device": planned.map(|_| args.values),
        "warmup_seconds": args.warmup,
        "duration_seconds": args.duration,
        "frames_per_write": args.frames_per_write,
        "values": expected,
        "committed": committed,
        "send_seconds": sent_secs,
        "commit_seconds": committed_secs,
        "sent_values_per_sec": sent_in_window as f64 / sent_secs,
        "committed_values_per_sec": committed_in_window as f64 / committed_secs,
        "sent_per_second": series_json(&series, 0),
    });
    println!("scenario  transport devices  values      sent/s        committed/s   commit s");
    println!(
        "ingest    {transport:<9} {:<8} {:<11} {:<13.0} {:<13.0} {:.2}",
        args.devices,
        expected,
        sent_in_window as f64 / sent_secs,
        committed_in_window as f64 / committed_secs,
        committed_secs
    );
    let mut classes = Vec::new();
    if args.latency {
        classes.push(("write → ping", &latencies));
    }
    if let Some(p) = &probe {
        classes.push(("device → live", &p.latencies));
        if p.lost > 0 {
            eprintln!(
                "warning: {} probe values never reached the live subscriber",
                p.lost
            );
        }
    }
    if !classes.is_empty() {
        latency::print_table(&classes, sent_secs);
    }
    if let Some(dir) = args.charts.charts()? {
        let prefix = format!("ingest-{transport}");
        chart::throughput(
            &dir.join(format!("{prefix}-throughput.png")),
            &format!(
                "ingest over {transport}: values sent per second ({} devices)",
                args.devices
            ),
            "values/s",
            &[("sent", chart::column(&series, 0))],
        )?;
        if !classes.is_empty() {
            chart::latency(
                &dir.join(format!("{prefix}-latency.png")),
                &format!("ingest over {transport}: latency"),
                &classes,
            )?;
        }
    }
    args.out.emit(&report)?;
    Ok(())
}

/// The latencies of a class as JSON, `null` when nothing was recorded.
pub fn latency_json(l: &Latencies) -> Value {
    if l.count() == 0 {
        Value::Null
    } else {
        l.report()
    }
}
