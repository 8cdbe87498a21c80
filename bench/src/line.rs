//! The `line` scenario: the data set of [`crate::data`] sent as InfluxDB line
//! protocol over HTTP, so that peers (VictoriaMetrics, InfluxDB 1.x) receive
//! the same logical data as pinhouse in the same run.
//!
//! Request bodies are built before the clock starts (generation is not
//! measured, for peers or for pinhouse); then `concurrency` connections POST
//! them as fast as the server accepts. Each line carries one device's pins at
//! one instant: `sensors,device=d17 v0=23.45,v1=19.2,v3="idle" <ns>`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use serde_json::json;

use crate::data::{Sample, SensorFleet};
use crate::latency::Latencies;

/// Flags of `pinhouse-bench line`.
#[derive(Debug, clap::Args)]
pub struct LineArgs {
    /// Write endpoint, e.g. `http://127.0.0.1:8428/write` (VictoriaMetrics) or
    /// `http://127.0.0.1:8086/write?db=bench` (InfluxDB 1.x).
    #[arg(long)]
    url: String,
    /// Name of the target in the report.
    #[arg(long, default_value = "peer")]
    name: String,
    /// Simulated devices.
    #[arg(long, default_value_t = 1000)]
    devices: u32,
    /// Pins per device (with 4 or more, the last is a text state).
    #[arg(long, default_value_t = 4)]
    pins: u8,
    /// Instants per device.
    #[arg(long, default_value_t = 360)]
    steps: u32,
    /// Seconds between instants.
    #[arg(long, default_value_t = 10)]
    interval_secs: u32,
    /// Unix time of the first instant (seconds).
    #[arg(long, default_value_t = 1_767_225_600)]
    start: i64,
    /// Lines per HTTP request.
    #[arg(long, default_value_t = 5000)]
    lines_per_request: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Random seed of the data set.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Largest amount of request bodies built in memory.
const MAX_BODY_BYTES: usize = 4 << 30;

/// Request bodies and counts of what they carry.
struct DataSet {
    bodies: Vec<Bytes>,
    values: u64,
    numeric: u64,
}

fn build_bodies(args: &LineArgs) -> Result<DataSet> {
    let mut fleet = SensorFleet::new(
        args.seed,
        args.devices,
        args.pins,
        args.start * 1_000_000,
        i64::from(args.interval_secs) * 1_000_000,
    );
    let pins = usize::from(fleet.pins());
    let per_request = args.lines_per_request.max(1);
    let mut bodies = Vec::new();
    let mut body = String::with_capacity(per_request * 64);
    let (mut lines, mut values, mut numeric, mut total_bytes) = (0usize, 0u64, 0u64, 0usize);
    for _ in 0..args.steps {
        let (ts_us, samples) = fleet.tick();
        for (device, row) in samples.chunks(pins).enumerate() {
            write!(body, "sensors,device=d{device} ")?;
            for (pin, sample) in row.iter().enumerate() {
                let sep = if pin == 0 { "" } else { "," };
                match sample {
                    Sample::Number(x) => {
                        numeric += 1;
                        write!(body, "{sep}v{pin}={x}")?
                    }
                    Sample::Text(s) => write!(body, "{sep}v{pin}=\"{s}\"")?,
                }
            }
            writeln!(body, " {}", ts_us * 1000)?;
            values += row.len() as u64;
            lines += 1;
            if lines == per_request {
                total_bytes += body.len();
                if total_bytes > MAX_BODY_BYTES {
                    bail!("data set too large to pre-build (> 4 GiB): lower --steps or --devices");
                }
                bodies.push(Bytes::from(std::mem::take(&mut body)));
                body.reserve(per_request * 64);
                lines = 0;
            }
        }
    }
    if !body.is_empty() {
        bodies.push(Bytes::from(body));
    }
    Ok(DataSet {
        bodies,
        values,
        numeric,
    })
}

/// Run the scenario.
pub async fn run(args: LineArgs) -> Result<()> {
    eprintln!("building the data set…");
    let DataSet {
        bodies,
        values,
        numeric,
    } = build_bodies(&args)?;
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    eprintln!(
        "sending {values} values in {} requests to {}…",
        bodies.len(),
        args.url
    );
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (bodies, next, http, url) =
            (bodies.clone(), next.clone(), http.clone(), args.url.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Latencies::new()?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let sent = Instant::now();
                let resp = http
                    .post(&url)
                    .body(body.clone())
                    .send()
                    .await
                    .with_context(|| format!("POST {url}"))?;
                let status = resp.status();
                if !status.is_success() {
                    let text = resp.text().await.unwrap_or_default();
                    bail!("POST {url}: {status} {text}");
                }
                latencies.record(sent.elapsed())?;
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut latencies = Latencies::new()?;
    for task in tasks {
        latencies.merge(&task.await??)?;
    }
    let secs = started.elapsed().as_secs_f64().max(f64::MIN_POSITIVE);
    let rate = values as f64 / secs;
    println!("scenario  target           values       seconds  values/s      p50 ms   p99 ms");
    println!(
        "line      {:<16} {values:<12} {secs:<8.2} {rate:<13.0} {:<8.2} {:.2}",
        args.name,
        ms(latencies.quantile(0.5)),
        ms(latencies.quantile(0.99)),
    );
    if args.json {
        let report = json!({
            "scenario": "line",
            "target": args.name,
            "url": args.url,
            "devices": args.devices,
            "pins": args.pins,
            "steps": args.steps,
            "interval_secs": args.interval_secs,
            "seed": args.seed,
            "values": values,
            "numeric_values": numeric,
            "requests": bodies.len(),
            "seconds": secs,
            "values_per_sec": rate,
            "request_latency": latencies.report(),
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
