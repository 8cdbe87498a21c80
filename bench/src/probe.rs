//! The device → live subscriber probe: one extra device writes a numbered value, a live
//! subscriber (`GET /api/v1/live` over a WebSocket, filtered to that device and pin) waits
//! for it, and the time between the device's write and the subscriber's receipt is one
//! observation. Closed loop (the next value goes out after the previous arrived, after a
//! pause), so the probe itself adds almost no load: it measures what the rest of the
//! scenario's load does to the live path.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::device::{Control, Device};
use crate::latency::Latencies;
use crate::rest::Rest;

/// Pause between two probe values.
const PAUSE: Duration = Duration::from_millis(20);
/// A value not seen by the subscriber within this time counts as lost.
const LOST_AFTER: Duration = Duration::from_secs(5);
/// The pin the probe writes.
const PIN: u8 = 0;

/// What the probe saw.
pub struct ProbeResult {
    /// Device write → subscriber receipt, for values sent while recording.
    pub latencies: Latencies,
    /// Values the subscriber never saw within [`LOST_AFTER`].
    pub lost: u64,
}

type LiveSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A probe device with its live subscription open.
pub struct Probe {
    device: Device,
    live: LiveSocket,
}

/// Subscribe to device `device_id`'s probe pin, which `device` (logged in as that device)
/// will write.
pub async fn subscribe(rest: &Rest, device: Device, device_id: u64) -> Result<Probe> {
    let url = format!(
        "{}/api/v1/live?device={device_id}&pin=V{PIN}",
        rest.base().replacen("http://", "ws://", 1)
    );
    let mut request = url.as_str().into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {}", rest.token()).parse()?);
    let (mut live, _) = tokio_tungstenite::connect_async(request)
        .await
        .context("live subscription")?;
    // The server may register the subscription a moment after the upgrade: write value 0
    // until the subscriber sees it, so that no probe value is sent before it listens.
    let mut device = device;
    let deadline = Instant::now() + LOST_AFTER;
    loop {
        device.write_value(PIN, "0").await?;
        let retry = (Instant::now() + Duration::from_millis(100)).min(deadline);
        if wait_for(&mut live, 0, retry).await? {
            return Ok(Probe { device, live });
        }
        if Instant::now() >= deadline {
            bail!("the live subscription never saw the probe device's values");
        }
    }
}

/// Read the subscription until value `seq` arrives (true) or `deadline` passes (false).
async fn wait_for(live: &mut LiveSocket, seq: u64, deadline: Instant) -> Result<bool> {
    loop {
        let Ok(message) = tokio::time::timeout_at(deadline.into(), live.next()).await else {
            return Ok(false);
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e).context("live subscription"),
            None => bail!("the server closed the live subscription"),
        };
        let value: Value = serde_json::from_str(&text)?;
        if value["value"].as_f64() == Some(seq as f64) {
            return Ok(true);
        }
    }
}

impl Probe {
    /// Probe until `control.stop` (at least once).
    pub async fn run(self, control: Arc<Control>) -> Result<ProbeResult> {
        let Probe {
            mut device,
            mut live,
        } = self;
        let mut latencies = Latencies::new()?;
        let mut lost = 0u64;
        let mut seq = 0u64;
        while seq == 0 || !control.stop.load(Ordering::Relaxed) {
            seq += 1;
            let recording = control.recording.load(Ordering::Relaxed);
            let sent = Instant::now();
            device.write_value(PIN, &seq.to_string()).await?;
            if !wait_for(&mut live, seq, sent + LOST_AFTER).await? {
                lost += 1;
            } else if recording {
                latencies.record(sent.elapsed())?;
            }
            device.poll_incoming().await?;
            tokio::time::sleep(PAUSE).await;
        }
        Ok(ProbeResult { latencies, lost })
    }
}
