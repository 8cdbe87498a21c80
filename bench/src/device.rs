//! One simulated device over any transport ([`crate::transport`]): log in with its token,
//! announce itself (`info`), then stream `vw` frames — several per socket write, optionally
//! paced and optionally closed by a ping whose round trip is the write's latency. Shared by
//! the `ingest` and `mixed` scenarios.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use bytes::BytesMut;
use pinhouse_protocol::body::DeviceInfo;
use pinhouse_protocol::client::{Client, Event};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::latency::Latencies;
use crate::meter::Meter;
use crate::transport::{Connector, DeviceStream};

/// What a device sends.
#[derive(Debug, Clone)]
pub struct StreamPlan {
    /// Virtual pins written in turn (V0..).
    pub pins: u8,
    /// `vw` frames per socket write.
    pub per_write: u32,
    /// Values per second (0 = as fast as the socket takes them).
    pub rate: u32,
    /// End every write with a ping and record its round trip.
    pub latency: bool,
    /// Values to send; `None` streams until [`Control::stop`].
    pub values: Option<u32>,
}

/// Switches shared by every device of a run.
#[derive(Debug, Default)]
pub struct Control {
    /// Devices stop after their current write.
    pub stop: AtomicBool,
    /// Latencies are recorded (false during a warm-up).
    pub recording: AtomicBool,
}

/// A logged-in device session.
pub struct Device {
    stream: Box<dyn DeviceStream>,
    client: Client,
    input: BytesMut,
    out: BytesMut,
}

impl Device {
    /// Connect from loopback source `source` and log in with `token`.
    pub async fn login(connector: &Connector, source: u8, token: &str) -> Result<Self> {
        let stream = connector.connect(source).await?;
        let mut device = Self {
            stream,
            client: Client::new(token.as_bytes().to_vec()),
            input: BytesMut::with_capacity(1024),
            out: BytesMut::with_capacity(64 * 1024),
        };
        device.client.login(&mut device.out);
        device.send().await?;
        loop {
            if device.stream.read_buf(&mut device.input).await? == 0 {
                bail!("server closed the connection during login");
            }
            match device.client.decode(&mut device.input, &mut device.out)? {
                Some(Event::LoggedIn { .. }) => break,
                Some(Event::LoginRejected { status }) => {
                    bail!("login rejected with status {status}")
                }
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
        device.client.info(&info, &mut device.out);
        Ok(device)
    }

    async fn send(&mut self) -> Result<()> {
        self.stream.write_all(&self.out).await?;
        self.stream.flush().await?;
        self.out.clear();
        Ok(())
    }

    /// Stream values as `plan` says, counting each value sent in counter `counter` of `meter`.
    /// Returns the write latencies when `plan.latency` is set.
    pub async fn stream(
        mut self,
        plan: &StreamPlan,
        control: &Control,
        meter: &Meter,
        counter: usize,
    ) -> Result<Option<Latencies>> {
        let per_write = plan.per_write.max(1);
        let mut latencies = if plan.latency {
            Some(Latencies::new()?)
        } else {
            None
        };
        let mut pacer = (plan.rate > 0).then(|| {
            let period = Duration::from_secs_f64(f64::from(per_write) / f64::from(plan.rate));
            let mut interval = tokio::time::interval(period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });
        let limit = plan.values.unwrap_or(u32::MAX);
        let mut sent = 0u32;
        let mut text = String::new();
        while sent < limit && !control.stop.load(Ordering::Relaxed) {
            if let Some(pacer) = pacer.as_mut() {
                pacer.tick().await;
            }
            let n = per_write.min(limit - sent);
            for i in 0..n {
                let seq = sent.wrapping_add(i);
                let pin = (seq % u32::from(plan.pins.max(1))) as u8;
                text.clear();
                let _ = write!(text, "{}.{:02}", 20 + (seq % 10), seq % 100);
                self.client
                    .virtual_write(pin, &[text.as_bytes()], &mut self.out);
            }
            let ping = latencies.is_some().then(|| self.client.ping(&mut self.out));
            let started = Instant::now();
            self.send().await?;
            sent += n;
            meter.add(counter, u64::from(n));
            if let (Some(ping), Some(latencies)) = (ping, latencies.as_mut()) {
                self.wait_response(ping).await?;
                if control.recording.load(Ordering::Relaxed) {
                    latencies.record(started.elapsed())?;
                }
            }
        }
        // Drain the info reply and anything else so the server is not blocked.
        let _ = tokio::time::timeout(
            Duration::from_millis(100),
            self.stream.read_buf(&mut self.input),
        )
        .await;
        Ok(latencies)
    }

    async fn wait_response(&mut self, msg: u16) -> Result<()> {
        loop {
            match self.client.decode(&mut self.input, &mut self.out)? {
                Some(Event::Response { msg_id, .. }) if msg_id == msg => return Ok(()),
                Some(_) => continue,
                None => {
                    if self.stream.read_buf(&mut self.input).await? == 0 {
                        bail!("server closed the connection");
                    }
                }
            }
        }
    }
}

/// Log one device in per token (spread over `sources` loopback addresses), all at once.
pub async fn login_all(
    connector: &Arc<Connector>,
    tokens: Vec<String>,
    sources: u8,
) -> Result<Vec<Device>> {
    let logins: Vec<_> = tokens
        .into_iter()
        .enumerate()
        .map(|(i, token)| {
            let connector = Arc::clone(connector);
            let source = (i % usize::from(sources.max(1))) as u8;
            tokio::spawn(async move { Device::login(&connector, source, &token).await })
        })
        .collect();
    let mut devices = Vec::with_capacity(logins.len());
    for login in logins {
        devices.push(login.await??);
    }
    Ok(devices)
}

/// Stream from every device at once until each is done; the merged write latencies.
pub async fn stream_all(
    devices: Vec<Device>,
    plan: StreamPlan,
    control: Arc<Control>,
    meter: Arc<Meter>,
    counter: usize,
) -> Result<Latencies> {
    let plan = Arc::new(plan);
    let tasks: Vec<_> = devices
        .into_iter()
        .map(|device| {
            let (plan, control, meter) = (plan.clone(), control.clone(), meter.clone());
            tokio::spawn(async move { device.stream(&plan, &control, &meter, counter).await })
        })
        .collect();
    let mut latencies = Latencies::new()?;
    for task in tasks {
        if let Some(l) = task.await?? {
            latencies.merge(&l)?;
        }
    }
    Ok(latencies)
}
