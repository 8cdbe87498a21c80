//! `GET /api/v1/live`: every value as it arrives, over a WebSocket.
//!
//! Authenticated like every `/api/v1` route by a Bearer token in the
//! `Authorization` header or, for browsers (whose WebSocket API cannot set
//! headers), as a subprotocol: `new WebSocket(url, ["pinhouse.live",
//! "bearer." + token])`; the server then answers with the `pinhouse.live`
//! subprotocol. The token never appears in URLs (and so not in access logs).
//! Scoped to what the caller may read: its organization and, for roles whose
//! device reads cover the subtree, its sub-organizations as they were when the
//! socket opened. Query: `device=<id>` and `pin=<V1|D2|A0>`, both
//! optional (a pin without a device matches that pin on every device). Each
//! value is one text message:
//! `{"device_id":7,"pin":"V1","ts":1700000000000000,"value":23.5}` (`ts` in
//! µs; a value that is not a number comes as `"text":"…"`). A subscriber that
//! falls behind gets `{"lagged":N}` (N batches skipped) and goes on; ingest
//! never waits for it.

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};
use axum::response::Response;
use pinhouse_ingest::{LiveBatch, PinRef};
use pinhouse_storage::Value;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::control::{Action, ControlError, ControlPlane, ErrorBody, bearer_from_headers};
use crate::state::AppState;

/// The `/api/v1/live` route, with its OpenAPI description.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(live))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct LiveQuery {
    /// Only values of this device.
    device: Option<u32>,
    /// Only values of this pin (`V1`, `D2`, `A0`); without `device`, that pin on every device.
    pin: Option<String>,
}

/// The subprotocol a browser offers (and the server selects) next to `bearer.<token>`.
pub const LIVE_SUBPROTOCOL: &str = "pinhouse.live";

/// Prefix of the subprotocol that carries a bearer token.
const BEARER_SUBPROTOCOL_PREFIX: &str = "bearer.";

/// What one subscriber wants to see.
#[derive(Debug, Clone)]
struct Filter {
    /// Organizations the subscriber may read, sorted.
    org_ids: Vec<u32>,
    device_id: Option<u32>,
    pin: Option<u16>,
}

impl Filter {
    fn matches(&self, org_id: u32, device_id: u32, pin: u16) -> bool {
        self.device_id.is_none_or(|d| d == device_id)
            && self.pin.is_none_or(|p| p == pin)
            && self.org_ids.binary_search(&org_id).is_ok()
    }
}

/// The bearer token of a live request: the `Authorization` header, else a `bearer.<token>`
/// entry of `Sec-WebSocket-Protocol`.
fn live_token(headers: &HeaderMap) -> Result<&str, ControlError> {
    if headers.contains_key(AUTHORIZATION) {
        return bearer_from_headers(headers);
    }
    headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|protocol| protocol.trim().strip_prefix(BEARER_SUBPROTOCOL_PREFIX))
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            ControlError::unauthorized(
                "missing `Authorization: Bearer <token>` header or `bearer.<token>` WebSocket subprotocol",
            )
        })
}

/// Every value as it arrives, over a WebSocket.
///
/// This GET upgrades the connection to a WebSocket (101 Switching Protocols). Each value is one
/// text message,
/// `{"device_id":7,"pin":"V1","ts":1700000000000000,"value":23.5}` (`ts` in µs; a value that is
/// not a number comes as `"text":"…"`); a subscriber that falls behind gets `{"lagged":N}` and
/// goes on. Scoped to what the caller may read. Browsers, whose WebSocket API cannot set
/// headers, pass the bearer token as a subprotocol instead of the `Authorization` header:
/// `new WebSocket(url, ["pinhouse.live", "bearer." + token])`; the server then selects
/// `pinhouse.live`.
#[utoipa::path(
    get, path = "/api/v1/live", tag = "live",
    params(
        LiveQuery,
        ("sec-websocket-protocol" = Option<String>, Header, description = "`pinhouse.live, bearer.<token>` for clients that cannot send `Authorization`"),
    ),
    responses(
        (status = 101, description = "Switching Protocols: the connection is now a WebSocket carrying the values"),
        (status = 400, description = "Invalid `pin` or `device`, or not a WebSocket upgrade request", content(
            (ErrorBody = "application/json"),
            (String = "text/plain"),
        )),
        (status = 401, description = "No bearer token (header or subprotocol), or an invalid one", body = ErrorBody),
        (status = 404, description = "Device not found (also for devices out of the caller's reach)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn live(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LiveQuery>,
    ws: WebSocketUpgrade,
) -> Result<Response, ControlError> {
    let control: &ControlPlane = &state.control;
    let principal = control.authenticate(live_token(&headers)?).await?;
    let pin = match query.pin.as_deref() {
        None => None,
        Some(text) => Some(
            PinRef::parse(text)
                .ok_or_else(|| ControlError::bad_request(format!("invalid pin {text:?}")))?
                .column(),
        ),
    };
    let org_ids = match query.device {
        Some(device_id) => vec![
            control
                .authorized_device(&principal, device_id, Action::DeviceRead)
                .await?
                .org_id,
        ],
        None => {
            let mut orgs = control
                .orgs_in_scope(&principal, Action::DeviceRead)
                .await?;
            orgs.sort_unstable();
            orgs
        }
    };
    let filter = Filter {
        org_ids,
        device_id: query.device,
        pin,
    };
    // Subscribe before answering, so no value written after the upgrade is missed.
    let rx = state.ingest.subscribe_live();
    let stop = state.ingest.stopping();
    Ok(ws
        .protocols([LIVE_SUBPROTOCOL])
        .on_upgrade(move |socket| stream(socket, rx, filter, stop)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn token_from_header_or_subprotocol() {
        let mut headers = HeaderMap::new();
        assert!(live_token(&headers).is_err());
        headers.insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("pinhouse.live, bearer.abc123"),
        );
        assert_eq!(live_token(&headers).unwrap(), "abc123");
        headers.insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("pinhouse.live, bearer."),
        );
        assert!(live_token(&headers).is_err(), "empty token");
        // The Authorization header wins, and must itself be well-formed.
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer fromheader"));
        assert_eq!(live_token(&headers).unwrap(), "fromheader");
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic x"));
        assert!(live_token(&headers).is_err());
    }

    #[test]
    fn filter_matches_orgs_device_and_pin() {
        let filter = Filter {
            org_ids: vec![2, 5, 9],
            device_id: None,
            pin: Some(1),
        };
        assert!(filter.matches(5, 77, 1));
        assert!(!filter.matches(4, 77, 1), "org outside the scope");
        assert!(!filter.matches(5, 77, 2), "other pin");
        let one = Filter {
            device_id: Some(77),
            pin: None,
            ..filter
        };
        assert!(one.matches(9, 77, 3));
        assert!(!one.matches(9, 78, 3));
    }
}
