//! The `ingest` scenario.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::BytesMut;
use pinhouse_protocol::body::DeviceInfo;
use pinhouse_protocol::client::{Client, Event};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::latency::Latencies;
use crate::rest::Rest;
use crate::transport::{Connector, Kind};

/// Flags of `pinhouse-bench ingest`.
#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// Base URL of the server's HTTP API.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    http: String,
    /// Address of the server's Blynk TCP listener.
    #[arg(long, default_value = "127.0.0.1:8442")]
    hardware: SocketAddr,
    /// Transport of the simulated devices.
    #[arg(long, value_enum, default_value_t = Kind::Tcp)]
    transport: Kind,
    /// Address of the server's TLS listener (`--transport tls`).
    #[arg(long, default_value = "127.0.0.1:9443")]
    tls: SocketAddr,
    /// Address of the server's QUIC listener (`--transport quic`).
    #[arg(long, default_value = "127.0.0.1:9443")]
    quic: SocketAddr,
    /// CA file the server's certificate chains to (tls, quic): the server's
    /// `<data dir>/tls/ca.pem` when it generated its own.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Loopback source addresses to spread connections over (127.0.0.1 ..
    /// 127.0.0.N; TCP-based transports).
    #[arg(long, default_value_t = 1)]
    sources: u8,
    /// Values per second per device (0 = as fast as possible).
    #[arg(long, default_value_t = 0)]
    rate: u32,
    /// End every write with a ping and wait for its answer: the round trip is
    /// recorded as the latency of that write (closed loop).
    #[arg(long)]
    latency: bool,
    /// Admin e-mail used to create the fleet.
    #[arg(long, env = "PINHOUSE_ADMIN_EMAIL")]
    email: String,
    /// Admin password.
    #[arg(long, env = "PINHOUSE_ADMIN_PASSWORD")]
    password: String,
    /// Simulated devices (one TCP session each).
    #[arg(long, default_value_t = 100)]
    devices: u32,
    /// Virtual pins written by each device (V0..).
    #[arg(long, default_value_t = 4)]
    pins: u8,
    /// Values each device sends.
    #[arg(long, default_value_t = 10_000)]
    values: u32,
    /// `vw` frames per socket write (pipelining).
    #[arg(long, default_value_t = 100)]
    frames_per_write: u32,
    /// Automations to create on the simulated devices before streaming: datastream rules on
    /// V0 with a threshold no value reaches, so the engine evaluates every value and never
    /// fires (its cost beside ingest, without side effects).
    #[arg(long, default_value_t = 0)]
    automations: u32,
    /// Seconds to wait for every value to be visible in SQL.
    #[arg(long, default_value_t = 120)]
    commit_timeout: u64,
    /// Also print the report as JSON.
    #[arg(long)]
    json: bool,
}

struct Session {
    token: String,
    source: u8,
    pins: u8,
    values: u32,
    per_write: u32,
    rate: u32,
    latency: bool,
}

async fn device_session(connector: Arc<Connector>, s: Session) -> Result<Option<Latencies>> {
    let mut stream = connector.connect(s.source).await?;
    let (pins, values, per_write) = (s.pins, s.values, s.per_write);
    let mut client = Client::new(s.token.into_bytes());
    let mut out = BytesMut::with_capacity(64 * 1024);
    let mut input = BytesMut::with_capacity(1024);
    client.login(&mut out);
    stream.write_all(&out).await?;
    stream.flush().await?;
    out.clear();
    loop {
        if stream.read_buf(&mut input).await? == 0 {
            bail!("server closed the connection during login");
        }
        match client.decode(&mut input, &mut out)? {
            Some(Event::LoggedIn { .. }) => break,
            Some(Event::LoginRejected { status }) => bail!("login rejected with status {status}"),
            _ => continue,
        }
    }
    let info = DeviceInfo {
        firmware: Some("0.1.0".into()),
        heartbeat_secs: Some(40),
        buff_in: Some(1024),
        board: Some("pinhouse-bench".into()),
        ..DeviceInfo::default()
    };
    client.info(&info, &mut out);
    let mut latencies = if s.latency {
        Some(Latencies::new()?)
    } else {
        None
    };
    let mut pacer = (s.rate > 0).then(|| {
        let period = Duration::from_secs_f64(f64::from(per_write) / f64::from(s.rate));
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });
    let mut sent = 0u32;
    let mut text = String::new();
    while sent < values {
        if let Some(pacer) = pacer.as_mut() {
            pacer.tick().await;
        }
        let n = per_write.min(values - sent);
        for i in 0..n {
            let seq = sent + i;
            let pin = (seq % u32::from(pins.max(1))) as u8;
            text.clear();
            use std::fmt::Write;
            let _ = write!(text, "{}.{:02}", 20 + (seq % 10), seq % 100);
            client.virtual_write(pin, &[text.as_bytes()], &mut out);
        }
        let ping = latencies.is_some().then(|| client.ping(&mut out));
        let started = Instant::now();
        stream.write_all(&out).await?;
        stream.flush().await?;
        out.clear();
        sent += n;
        if let (Some(ping), Some(latencies)) = (ping, latencies.as_mut()) {
            loop {
                match client.decode(&mut input, &mut out)? {
                    Some(Event::Response { msg_id, .. }) if msg_id == ping => break,
                    Some(_) => continue,
                    None => {
                        if stream.read_buf(&mut input).await? == 0 {
                            bail!("server closed the connection");
                        }
                    }
                }
            }
            latencies.record(started.elapsed())?;
        }
    }
    // Drain the info reply and anything else so the server is not blocked.
    let _ = tokio::time::timeout(Duration::from_millis(100), stream.read_buf(&mut input)).await;
    Ok(latencies)
}

/// Run the scenario.
pub async fn run(args: IngestArgs) -> Result<()> {
    let rest = Rest::login(&args.http, &args.email, &args.password).await?;
    let datastreams: Vec<_> = (0..args.pins)
        .map(|p| json!({"pin": p, "name": format!("Value {p}"), "type": "double"}))
        .collect();
    let template = rest
        .post(
            "/api/v1/templates",
            &json!({"name": "bench", "datastreams": datastreams}),
        )
        .await?;
    let template_id = template["id"].as_str().context("template id")?.to_owned();
    eprintln!("creating {} devices…", args.devices);
    let mut tokens = Vec::with_capacity(args.devices as usize);
    let mut ids = Vec::with_capacity(args.devices as usize);
    for i in 0..args.devices {
        let device = rest
            .post(
                "/api/v1/devices",
                &json!({"name": format!("bench-{i}"), "template_id": template_id}),
            )
            .await?;
        tokens.push(device["token"].as_str().context("token")?.to_owned());
        ids.push(device["id"].as_u64().context("id")?);
    }
    if args.automations > 0 {
        eprintln!("creating {} automations…", args.automations);
        for i in 0..args.automations {
            let device = ids[i as usize % ids.len()];
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
    let (min_id, max_id) = (
        ids.iter().min().copied().unwrap_or(0),
        ids.iter().max().copied().unwrap_or(0),
    );
    let count_sql = format!(
        "SELECT count(*) AS n FROM telemetry WHERE device_id BETWEEN {min_id} AND {max_id}"
    );

    let expected = u64::from(args.devices) * u64::from(args.values);
    eprintln!("streaming {expected} values from {} devices…", args.devices);
    let addr = match args.transport {
        Kind::Tcp => args.hardware,
        Kind::Tls => args.tls,
        Kind::Quic => args.quic,
        Kind::Ws => args.hardware,
    };
    let connector = Arc::new(Connector::new(
        args.transport,
        addr,
        &args.http,
        args.ca.as_ref(),
    )?);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(tokens.len());
    for (i, token) in tokens.into_iter().enumerate() {
        let session = Session {
            token,
            source: (i % usize::from(args.sources.max(1))) as u8,
            pins: args.pins,
            values: args.values,
            per_write: args.frames_per_write.max(1),
            rate: args.rate,
            latency: args.latency,
        };
        tasks.push(tokio::spawn(device_session(
            Arc::clone(&connector),
            session,
        )));
    }
    let mut latencies = Latencies::new()?;
    for task in tasks {
        if let Some(l) = task.await?? {
            latencies.merge(&l)?;
        }
    }
    let sent_secs = started.elapsed().as_secs_f64();

    let deadline = Instant::now() + Duration::from_secs(args.commit_timeout);
    let committed = loop {
        let rows = rest.sql(&count_sql).await?;
        let n = rows[0]["n"].as_u64().unwrap_or(0);
        if n >= expected {
            break n;
        }
        if Instant::now() > deadline {
            bail!(
                "only {n} of {expected} values visible after {}s",
                args.commit_timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let committed_secs = started.elapsed().as_secs_f64();

    let report = json!({
        "scenario": "ingest",
        "transport": args.transport,
        "automations": args.automations,
        "rate_per_device": args.rate,
        "write_latency": args.latency.then(|| latencies.report()),
        "devices": args.devices,
        "pins": args.pins,
        "values_per_device": args.values,
        "frames_per_write": args.frames_per_write,
        "values": expected,
        "committed": committed,
        "send_seconds": sent_secs,
        "commit_seconds": committed_secs,
        "sent_values_per_sec": expected as f64 / sent_secs,
        "committed_values_per_sec": expected as f64 / committed_secs,
    });
    println!("scenario  transport devices  values      sent/s        committed/s   commit s");
    println!(
        "ingest    {:<9} {:<8} {:<11} {:<13.0} {:<13.0} {:.2}",
        format!("{:?}", args.transport).to_lowercase(),
        args.devices,
        expected,
        expected as f64 / sent_secs,
        expected as f64 / committed_secs,
        committed_secs
    );
    if args.latency {
        let q = |p| latencies.quantile(p).as_secs_f64() * 1000.0;
        println!(
            "write→ping latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}",
            q(0.5),
            q(0.9),
            q(0.99),
            q(0.999)
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}
