//! `GET /api/v1/live`: every value as it arrives, over a WebSocket.
//!
//! Authenticated like every `/api/v1` route (Bearer token) and scoped to the
//! caller's organization. Query: `device=<id>` and `pin=<V1|D2|A0>`, both
//! optional (a pin without a device matches that pin on every device). Each
//! value is one text message:
//! `{"device_id":7,"pin":"V1","ts":1700000000000000,"value":23.5}` (`ts` in
//! µs; a value that is not a number comes as `"text":"…"`). A subscriber that
//! falls behind gets `{"lagged":N}` (N batches skipped) and goes on; ingest
//! never waits for it.

use axum::Router;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use pinhouse_ingest::{LiveBatch, PinRef};
use pinhouse_storage::Value;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::control::{ControlError, ControlPlane, Principal};
use crate::state::AppState;

/// The `/api/v1/live` route.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/live", get(live))
}

#[derive(Debug, Deserialize)]
struct LiveQuery {
    device: Option<u32>,
    pin: Option<String>,
}

/// What one subscriber wants to see.
#[derive(Debug, Clone, Copy)]
struct Filter {
    org_id: u32,
    device_id: Option<u32>,
    pin: Option<u16>,
}

impl Filter {
    fn matches(&self, org_id: u32, device_id: u32, pin: u16) -> bool {
        org_id == self.org_id
            && self.device_id.is_none_or(|d| d == device_id)
            && self.pin.is_none_or(|p| p == pin)
    }
}

async fn live(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<LiveQuery>,
    ws: WebSocketUpgrade,
) -> Result<Response, ControlError> {
    let pin = match query.pin.as_deref() {
        None => None,
        Some(text) => Some(
            PinRef::parse(text)
                .ok_or_else(|| ControlError::bad_request(format!("invalid pin {text:?}")))?
                .column(),
        ),
    };
    if let Some(device_id) = query.device {
        let control: &ControlPlane = &state.control;
        if control.device(principal.org_id, device_id).await?.is_none() {
            return Err(ControlError::not_found(format!(
                "device {device_id} not found"
            )));
        }
    }
    let filter = Filter {
        org_id: principal.org_id,
        device_id: query.device,
        pin,
    };
    // Subscribe before answering, so no value written after the upgrade is missed.
    let rx = state.ingest.subscribe_live();
    let stop = state.ingest.stopping();
    Ok(ws.on_upgrade(move |socket| stream(socket, rx, filter, stop)))
}

async fn stream(
    mut socket: WebSocket,
    mut rx: tokio::sync::broadcast::Receiver<LiveBatch>,
    filter: Filter,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            batch = rx.recv() => match batch {
                Ok(batch) => {
                    for p in batch.iter().filter(|p| filter.matches(p.org_id, p.device_id, p.pin)) {
                        let pin = PinRef::from_column(p.pin).map_or_else(|| p.pin.to_string(), |r| r.to_string());
                        let msg = match &p.value {
                            Value::Number(n) => json!({"device_id": p.device_id, "pin": pin, "ts": p.ts_us, "value": n}),
                            Value::Text(t) => json!({"device_id": p.device_id, "pin": pin, "ts": p.ts_us, "text": t}),
                        };
                        if socket.send(Message::Text(Utf8Bytes::from(msg.to_string()))).await.is_err() {
                            return;
                        }
                    }
                }
                Err(RecvError::Lagged(skipped)) => {
                    tracing::debug!(skipped, "live subscriber lagging");
                    let msg = json!({"lagged": skipped}).to_string();
                    if socket.send(Message::Text(Utf8Bytes::from(msg))).await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                // The client closed or went away; other messages are ignored.
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
            _ = stop.changed() => {
                let _ = socket.send(Message::Close(None)).await;
                return;
            }
        }
    }
}
