//! One simulated device over any transport ([`crate::transport`]): log in with its token,
//! announce itself (`info`), then stream `vw` frames — several per socket write, optionally
//! paced and optionally closed by a ping whose round trip is the write's latency. Over HTTP
//! the device instead imports its values in timestamped batches, one request per write.
//! Shared by the `ingest` and `mixed` scenarios.

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
use crate::transport::{Connector, DeviceStream, HttpTarget};

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
    link: Link,
}

enum Link {
    /// A Blynk protocol session over a byte stream (tcp, tls, ws, quic).
    Blynk(Session),
    /// A device speaking the Blynk device HTTP API.
    Http(HttpDevice),
}

struct Session {
    stream: Box<dyn DeviceStream>,
    client: Client,
    input: BytesMut,
    out: BytesMut,
}

struct HttpDevice {
    target: HttpTarget,
    token: String,
    /// Timestamp (ms) of the last point sent: each point is stamped with the wall clock, or
    /// one millisecond after the previous point when the clock has not moved on, so no two
    /// points of a device share a timestamp.
    last_ms: i64,
}

/// The value text of value number `seq` (20.00 ..= 29.99).
fn value_text(text: &mut String, seq: u32) {
    text.clear();
    let _ = write!(text, "{}.{:02}", 20 + (seq % 10), seq % 100);
}

impl Device {
    /// Connect from loopback source `source` and log in with `token`.
    pub async fn login(connector: &Connector, source: u8, token: &str) -> Result<Self> {
        if let Some(target) = connector.http() {
            return Ok(Self {
                link: Link::Http(HttpDevice::login(target, token).await?),
            });
        }
        let stream = connector.connect(source).await?;
        let mut session = Session {
            stream,
            client: Client::new(token.as_bytes().to_vec()),
            input: BytesMut::with_capacity(1024),
            out: BytesMut::with_capacity(64 * 1024),
        };
        session.client.login(&mut session.out);
        session.send().await?;
        loop {
            if session.stream.read_buf(&mut session.input).await? == 0 {
                bail!("server closed the connection during login");
            }
            match session
                .client
                .decode(&mut session.input, &mut session.out)?
            {
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
        session.client.info(&info, &mut session.out);
        Ok(Self {
            link: Link::Blynk(session),
        })
    }

    /// Stream values as `plan` says, counting each value sent in counter `counter` of `meter`.
    /// Returns the write latencies when `plan.latency` is set (over HTTP: each request's round
    /// trip). A Blynk session ends with a ping and waits for its answer, so every value it sent
    /// was read by the server before the connection closes.
    pub async fn stream(
        mut self,
        plan: &StreamPlan,
        control: &Control,
        meter: &Meter,
        counter: usize,
    ) -> Result<Option<Latencies>> {
        let per_write = plan.per_write.max(1);
        let pins = u32::from(plan.pins.max(1));
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
        let mut writes = 0u32;
        let mut text = String::new();
        while sent < limit && !control.stop.load(Ordering::Relaxed) {
            if let Some(pacer) = pacer.as_mut() {
                pacer.tick().await;
            }
            let n = per_write.min(limit - sent);
            let started = Instant::now();
            let timed = match &mut self.link {
                Link::Blynk(session) => {
                    for i in 0..n {
                        let seq = sent.wrapping_add(i);
                        value_text(&mut text, seq);
                        session.client.virtual_write(
                            (seq % pins) as u8,
                            &[text.as_bytes()],
                            &mut session.out,
                        );
                    }
                    let ping = latencies
                        .is_some()
                        .then(|| session.client.ping(&mut session.out));
                    session.send().await?;
                    if let Some(ping) = ping {
                        session.wait_response(ping).await?;
                    }
                    ping.is_some()
                }
                Link::Http(device) => {
                    device
                        .post((writes % pins) as u8, sent, n, &mut text)
                        .await?;
                    true
                }
            };
            sent += n;
            writes = writes.wrapping_add(1);
            meter.add(counter, u64::from(n));
            if let Some(latencies) = latencies.as_mut()
                && timed
                && control.recording.load(Ordering::Relaxed)
            {
                latencies.record(started.elapsed())?;
            }
        }
        if let Link::Blynk(session) = &mut self.link {
            // Frames are handled in order: once the ping is answered, the server has read
            // every value, and closing cannot reset the connection under unread data.
            let ping = session.client.ping(&mut session.out);
            session.send().await?;
            session.wait_response(ping).await?;
            let _ = session.stream.shutdown().await;
        }
        Ok(latencies)
    }
}

impl Device {
    /// Write one value to virtual pin `pin` (a Blynk session: the frame is sent at once).
    pub async fn write_value(&mut self, pin: u8, text: &str) -> Result<()> {
        match &mut self.link {
            Link::Blynk(session) => {
                session
                    .client
                    .virtual_write(pin, &[text.as_bytes()], &mut session.out);
                session.send().await
            }
            Link::Http(_) => bail!("single writes need a Blynk transport (tcp, tls, ws, quic)"),
        }
    }

    /// Read and handle whatever the server sent, without waiting (answers pings, keeps
    /// the receive buffer from filling).
    pub async fn poll_incoming(&mut self) -> Result<()> {
        if let Link::Blynk(session) = &mut self.link {
            while tokio::time::timeout(Duration::ZERO, session.stream.read_buf(&mut session.input))
                .await
                .is_ok_and(|r| r.is_ok_and(|n| n > 0))
            {
                while session
                    .client
                    .decode(&mut session.input, &mut session.out)?
                    .is_some()
                {}
            }
            if !session.out.is_empty() {
                session.send().await?;
            }
        }
        Ok(())
    }
}

impl Session {
    async fn send(&mut self) -> Result<()> {
        self.stream.write_all(&self.out).await?;
        self.stream.flush().await?;
        self.out.clear();
        Ok(())
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

impl HttpDevice {
    /// Check the token the way an HTTP-only device would (`isHardwareConnected` answers 200
    /// for a valid token, 400 otherwise).
    async fn login(target: &HttpTarget, token: &str) -> Result<Self> {
        let resp = target
            .client
            .get(format!("{}/external/api/isHardwareConnected", target.base))
            .query(&[("token", token)])
            .send()
            .await?;
        expect_success(resp, "token rejected").await?;
        Ok(Self {
            target: target.clone(),
            token: token.to_owned(),
            last_ms: 0,
        })
    }

    /// Import values `first .. first + n` on pin `pin` in one request.
    async fn post(&mut self, pin: u8, first: u32, n: u32, text: &mut String) -> Result<()> {
        let now_ms = i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis(),
        )?;
        // Each request owns its body (reqwest takes it), so it is built fresh rather than in a
        // kept buffer that would be copied.
        let mut body = String::with_capacity(n as usize * 24 + 2);
        body.push('[');
        for i in 0..n {
            let seq = first.wrapping_add(i);
            value_text(text, seq);
            if i > 0 {
                body.push(',');
            }
            self.last_ms = now_ms.max(self.last_ms + 1);
            let _ = write!(body, "[{},{text}]", self.last_ms);
        }
        body.push(']');
        let pin = format!("V{pin}");
        let resp = self
            .target
            .client
            .post(format!("{}/external/api/batch/update", self.target.base))
            .query(&[("token", self.token.as_str()), ("pin", pin.as_str())])
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await?;
        expect_success(resp, "import failed").await
    }
}

/// An error saying `what`, the status and the body, unless `resp` is a success.
async fn expect_success(resp: reqwest::Response, what: &str) -> Result<()> {
    let status = resp.status();
    if !status.is_success() {
        bail!("{what}: {status} {}", resp.text().await.unwrap_or_default());
    }
    Ok(())
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
