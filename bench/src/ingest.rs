//! The `ingest` scenario.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::BytesMut;
use pinhouse_protocol::body::DeviceInfo;
use pinhouse_protocol::client::{Client, Event};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::rest::Rest;

/// Flags of `pinhouse-bench ingest`.
#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// Base URL of the server's HTTP API.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    http: String,
    /// Address of the server's Blynk TCP listener.
    #[arg(long, default_value = "127.0.0.1:8442")]
    hardware: SocketAddr,
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
    /// Seconds to wait for every value to be visible in SQL.
    #[arg(long, default_value_t = 120)]
    commit_timeout: u64,
    /// Also print the report as JSON.
    #[arg(long)]
    json: bool,
}

async fn device_session(
    addr: SocketAddr,
    token: String,
    pins: u8,
    values: u32,
    per_write: u32,
) -> Result<()> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut client = Client::new(token.into_bytes());
    let mut out = BytesMut::with_capacity(64 * 1024);
    let mut input = BytesMut::with_capacity(1024);
    client.login(&mut out);
    stream.write_all(&out).await?;
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
    let mut sent = 0u32;
    let mut text = String::new();
    while sent < values {
        let n = per_write.min(values - sent);
        for i in 0..n {
            let seq = sent + i;
            let pin = (seq % u32::from(pins.max(1))) as u8;
            text.clear();
            use std::fmt::Write;
            let _ = write!(text, "{}.{:02}", 20 + (seq % 10), seq % 100);
            client.virtual_write(pin, &[text.as_bytes()], &mut out);
        }
        stream.write_all(&out).await?;
        out.clear();
        sent += n;
    }
    // Drain the info reply and anything else so the server is not blocked.
    let _ = tokio::time::timeout(Duration::from_millis(100), stream.read_buf(&mut input)).await;
    Ok(())
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
    let (min_id, max_id) = (
        ids.iter().min().copied().unwrap_or(0),
        ids.iter().max().copied().unwrap_or(0),
    );
    let count_sql = format!(
        "SELECT count(*) AS n FROM telemetry WHERE device_id BETWEEN {min_id} AND {max_id}"
    );

    let expected = u64::from(args.devices) * u64::from(args.values);
    eprintln!("streaming {expected} values from {} devices…", args.devices);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(tokens.len());
    for token in tokens {
        tasks.push(tokio::spawn(device_session(
            args.hardware,
            token,
            args.pins,
            args.values,
            args.frames_per_write.max(1),
        )));
    }
    for task in tasks {
        task.await??;
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
        "transport": "tcp",
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
    println!("scenario  devices  values      sent/s        committed/s   commit s");
    println!(
        "ingest    {:<8} {:<11} {:<13.0} {:<13.0} {:.2}",
        args.devices,
        expected,
        expected as f64 / sent_secs,
        expected as f64 / committed_secs,
        committed_secs
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}
