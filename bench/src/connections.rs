//! The `connections` scenario: hold many idle device sessions and measure what
//! each costs the server in user-space memory.
//!
//! Targets: pinhouse (Blynk protocol: login, info with a heartbeat, then a
//! ping per heartbeat) or an MQTT 3.1.1 broker (CONNECT with a keep-alive,
//! then PINGREQ per keep-alive), so that the same run measures a peer such as
//! Mosquitto. The server's RSS is read from `/proc/<pid>/status` before the
//! first connection and after the last one has settled; the difference over
//! the number of sessions is the per-session cost.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::BytesMut;
use pinhouse_protocol::body::DeviceInfo;
use pinhouse_protocol::client::{Client, Event};
use rumqttc::mqttbytes::v4::{Connect, Packet, PingReq};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;

use crate::fleet::{self, FleetArgs};
use crate::output::OutputArgs;

/// Which server the sessions talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// pinhouse over the Blynk hardware protocol.
    Pinhouse,
    /// An MQTT 3.1.1 broker (e.g. Mosquitto).
    Mqtt,
}

/// Flags of `pinhouse-bench connections`.
#[derive(Debug, clap::Args)]
pub struct ConnectionsArgs {
    /// Server type.
    #[arg(long, value_enum, default_value_t = Target::Pinhouse)]
    target: Target,
    #[command(flatten)]
    fleet: FleetArgs,
    /// Address of the server's device listener (Blynk TCP port or MQTT port).
    #[arg(long, default_value = "127.0.0.1:8442")]
    addr: SocketAddr,
    /// Sessions to open and hold.
    #[arg(long, default_value_t = 1000)]
    count: u32,
    /// Loopback source addresses to spread connections over (127.0.0.1 ..
    /// 127.0.0.N); each gives about 28k ephemeral ports, so more than 2 are
    /// needed past 50k sessions.
    #[arg(long, default_value_t = 1)]
    sources: u8,
    /// Heartbeat / keep-alive interval announced by each session, seconds.
    #[arg(long, default_value_t = 60)]
    heartbeat: u16,
    /// Seconds to hold every session open after the last one connected.
    #[arg(long, default_value_t = 10)]
    hold: u64,
    /// Connection attempts in flight at once.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// Pid of the server process, to read its RSS (required for the memory figure).
    #[arg(long)]
    server_pid: Option<u32>,
    /// File caching device tokens between runs (pinhouse only): reused when it holds
    /// enough tokens, extended otherwise.
    #[arg(long)]
    tokens_file: Option<PathBuf>,
    #[command(flatten)]
    out: OutputArgs,
}

/// Resident set size of a process in bytes, from `/proc/<pid>/status`.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS line")?;
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .context("malformed VmRSS line")?
        .parse()?;
    Ok(kb * 1024)
}

/// Connect to `addr` from loopback source address number `source` (0-based:
/// 127.0.0.1, 127.0.0.2, …) so that many sources multiply the ephemeral ports.
pub async fn connect_from(addr: SocketAddr, source: u8) -> Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if source > 0 {
        let ip = Ipv4Addr::new(127, 0, 0, source.saturating_add(1));
        socket.bind(SocketAddr::new(IpAddr::V4(ip), 0))?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Counters shared by every session task.
#[derive(Default)]
struct Counters {
    connected: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    pings: AtomicU64,
}

/// Read from `stream` until `done` says a full reply is buffered.
async fn read_until(
    stream: &mut TcpStream,
    input: &mut BytesMut,
    mut done: impl FnMut(&mut BytesMut) -> Result<bool>,
) -> Result<()> {
    loop {
        if done(input)? {
            return Ok(());
        }
        if stream.read_buf(input).await? == 0 {
            bail!("server closed the connection");
        }
    }
}

async fn blynk_login(stream: &mut TcpStream, token: &str, heartbeat: u16) -> Result<Client> {
    let mut client = Client::new(token.as_bytes().to_vec());
    let mut out = BytesMut::with_capacity(128);
    let mut input = BytesMut::with_capacity(64);
    client.login(&mut out);
    stream.write_all(&out).await?;
    out.clear();
    read_until(stream, &mut input, |buf| {
        match client.decode(buf, &mut out)? {
            Some(Event::LoggedIn { .. }) => Ok(true),
            Some(Event::LoginRejected { status }) => bail!("login rejected with status {status}"),
            _ => Ok(false),
        }
    })
    .await?;
    let info = DeviceInfo {
        heartbeat_secs: Some(heartbeat.into()),
        buff_in: Some(256),
        board: Some("pinhouse-bench".into()),
        ..DeviceInfo::default()
    };
    client.info(&info, &mut out);
    stream.write_all(&out).await?;
    Ok(client)
}

/// Hold one Blynk session: a ping per heartbeat, answers drained.
async fn blynk_hold(
    mut stream: TcpStream,
    mut client: Client,
    heartbeat: Duration,
    until: Arc<tokio::sync::Notify>,
    counters: Arc<Counters>,
) -> Result<()> {
    let mut out = BytesMut::with_capacity(16);
    let mut input = BytesMut::with_capacity(64);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    loop {
        tokio::select! {
            () = until.notified() => return Ok(()),
            _ = tick.tick() => {
                client.ping(&mut out);
                stream.write_all(&out).await?;
                out.clear();
                counters.pings.fetch_add(1, Ordering::Relaxed);
            }
            n = stream.read_buf(&mut input) => {
                if n? == 0 {
                    bail!("server closed an idle session");
                }
                while client.decode(&mut input, &mut out)?.is_some() {}
                if !out.is_empty() {
                    stream.write_all(&out).await?;
                    out.clear();
                }
            }
        }
    }
}

async fn mqtt_connect(stream: &mut TcpStream, id: u32, keep_alive: u16) -> Result<()> {
    let mut connect = Connect::new(format!("pinhouse-bench-{id}"));
    connect.keep_alive = keep_alive;
    let mut out = BytesMut::with_capacity(64);
    connect
        .write(&mut out)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    stream.write_all(&out).await?;
    let mut input = BytesMut::with_capacity(16);
    read_until(stream, &mut input, |buf| match Packet::read(buf, 1024) {
        Ok(Packet::ConnAck(ack))
            if ack.code == rumqttc::mqttbytes::v4::ConnectReturnCode::Success =>
        {
            Ok(true)
        }
        Ok(Packet::ConnAck(ack)) => bail!("broker refused the connection: {:?}", ack.code),
        Ok(other) => bail!("unexpected packet before CONNACK: {other:?}"),
        Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => Ok(false),
        Err(e) => bail!("bad CONNACK: {e:?}"),
    })
    .await
}

/// Hold one MQTT session: a PINGREQ per keep-alive, PINGRESPs drained.
async fn mqtt_hold(
    mut stream: TcpStream,
    keep_alive: Duration,
    until: Arc<tokio::sync::Notify>,
    counters: Arc<Counters>,
) -> Result<()> {
    let mut ping = BytesMut::with_capacity(2);
    PingReq
        .write(&mut ping)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let mut input = BytesMut::with_capacity(16);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + keep_alive, keep_alive);
    loop {
        tokio::select! {
            () = until.notified() => return Ok(()),
            _ = tick.tick() => {
                stream.write_all(&ping).await?;
                counters.pings.fetch_add(1, Ordering::Relaxed);
            }
            n = stream.read_buf(&mut input) => {
                if n? == 0 {
                    bail!("broker closed an idle session");
                }
                input.clear();
            }
        }
    }
}

/// Run the scenario.
pub async fn run(args: ConnectionsArgs) -> Result<()> {
    if args.count == 0 {
        bail!("--count must be at least 1");
    }
    let tokens = match args.target {
        Target::Pinhouse => {
            fleet::device_tokens(&args.fleet, args.count, 1, args.tokens_file.as_deref()).await?
        }
        Target::Mqtt => Vec::new(),
    };
    let rss_before = args.server_pid.map(rss_bytes).transpose()?;
    let counters = Arc::new(Counters::default());
    let until = Arc::new(tokio::sync::Notify::new());
    let permits = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let heartbeat = Duration::from_secs(u64::from(args.heartbeat.max(1)));
    let sources = args.sources.max(1);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(args.count as usize);
    for i in 0..args.count {
        let permit = permits.clone().acquire_owned().await?;
        let task_counters = counters.clone();
        let until = until.clone();
        let token = tokens.get(i as usize).cloned();
        let (addr, target, hb) = (args.addr, args.target, args.heartbeat);
        let source = (i % u32::from(sources)) as u8;
        tasks.push(tokio::spawn(async move {
            let opened = async {
                let mut stream = connect_from(addr, source).await?;
                match target {
                    Target::Pinhouse => {
                        let token = token.context("no token for session")?;
                        let client = blynk_login(&mut stream, &token, hb).await?;
                        Ok::<_, anyhow::Error>((stream, Some(client)))
                    }
                    Target::Mqtt => {
                        mqtt_connect(&mut stream, i, hb).await?;
                        Ok((stream, None))
                    }
                }
            }
            .await;
            drop(permit);
            let (stream, client) = match opened {
                Ok(s) => s,
                Err(e) => {
                    task_counters.failed.fetch_add(1, Ordering::Relaxed);
                    return Err(e);
                }
            };
            task_counters.connected.fetch_add(1, Ordering::Relaxed);
            let held = match client {
                Some(client) => {
                    blynk_hold(stream, client, heartbeat, until, task_counters.clone()).await
                }
                None => mqtt_hold(stream, heartbeat, until, task_counters.clone()).await,
            };
            if held.is_err() {
                task_counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
            held
        }));
        if i % 1000 == 999 {
            progress(&counters, args.count, started);
        }
    }
    // Wait for every attempt to finish connecting (or fail).
    loop {
        let c = &counters;
        let settled = c.connected.load(Ordering::Relaxed) + c.failed.load(Ordering::Relaxed);
        if settled >= u64::from(args.count) {
            break;
        }
        progress(c, args.count, started);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let connect_secs = started.elapsed().as_secs_f64();
    eprintln!();
    // Let the server finish per-session set-up (info handling, buffers) before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = args.server_pid.map(rss_bytes).transpose()?;
    eprintln!("holding for {} s…", args.hold);
    tokio::time::sleep(Duration::from_secs(args.hold)).await;
    let rss_held = args.server_pid.map(rss_bytes).transpose()?;
    until.notify_waiters();
    let mut first_error = None;
    for task in tasks {
        if let Err(e) = task.await? {
            first_error.get_or_insert(e);
        }
    }
    let connected = counters.connected.load(Ordering::Relaxed);
    let failed = counters.failed.load(Ordering::Relaxed);
    let dropped = counters.dropped.load(Ordering::Relaxed);
    let per_session = match (rss_before, rss_held) {
        // RSS that fell while sessions were held (the server released memory an earlier
        // load left behind) measures nothing: no figure rather than a false zero.
        (Some(b), Some(a)) if connected > 0 && a > b => Some((a - b) as f64 / connected as f64),
        _ => None,
    };
    let target = match args.target {
        Target::Pinhouse => "pinhouse",
        Target::Mqtt => "mqtt",
    };
    println!(
        "scenario     target    sessions  failed  dropped  connect s  RSS before  RSS after  bytes/session"
    );
    println!(
        "connections  {target:<9} {connected:<9} {failed:<7} {dropped:<8} {connect_secs:<10.1} {:<11} {:<10} {}",
        rss_before.map_or("-".into(), mib),
        rss_held.map_or("-".into(), mib),
        per_session.map_or("-".into(), |b| format!("{b:.0}")),
    );
    if let Some(e) = &first_error {
        eprintln!("first session error: {e:#}");
    }
    let report = json!({
        "scenario": "connections",
        "target": target,
        "sessions": connected,
        "failed": failed,
        "dropped": dropped,
        "heartbeat_secs": args.heartbeat,
        "pings_sent": counters.pings.load(Ordering::Relaxed),
        "connect_seconds": connect_secs,
        "server_rss_before": rss_before,
        "server_rss_connected": rss_after,
        "server_rss_held": rss_held,
        "bytes_per_session": per_session,
    });
    args.out.emit(&report)?;
    if connected == 0 {
        bail!("no session could be opened");
    }
    Ok(())
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn progress(c: &Counters, total: u32, started: Instant) {
    eprint!(
        "\rconnected {}/{total}  failed {}  {:.1} s",
        c.connected.load(Ordering::Relaxed),
        c.failed.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
}
