//! Blynk devices over WebSocket: binary messages carry the same frames as TCP
//! (the legacy server's `/websocket…` endpoint on the HTTP and HTTPS ports).

use std::io;
use std::net::SocketAddr;

use axum::Extension;
use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use axum::routing::any;
use bytes::Bytes;
use futures::{SinkExt, StreamExt, future};
use pinhouse_ingest::Transport;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::io::{CopyToBytes, SinkWriter, StreamReader};

use crate::state::AppState;

/// Largest WebSocket message accepted from a device (a frame is at most
/// 5 + 32 KiB; several may share one message).
const MAX_WS_MESSAGE: usize = 64 * 1024;

/// `/websocket` and `/websockets` (the legacy paths; any path starting with
/// `/websocket` was accepted there).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/websocket", any(upgrade))
        .route("/websockets", any(upgrade))
        .route("/websocket/{*rest}", any(upgrade))
        .route("/websockets/{*rest}", any(upgrade))
}

async fn upgrade(
    State(state): State<AppState>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    ws: WebSocketUpgrade,
) -> Response {
    // The server always provides the peer address; a router served without
    // connect info (tests) gets the unspecified address.
    let peer = connect.map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.0.0);
    ws.max_message_size(MAX_WS_MESSAGE)
        .max_frame_size(MAX_WS_MESSAGE)
        .on_upgrade(move |socket| async move {
            let session =
                state
                    .ingest
                    .serve_connection(byte_stream(socket), peer, Transport::WebSocket);
            if let Some(session) = session {
                session.await;
            }
        })
}

/// The WebSocket as a byte stream: binary messages in, one binary message per
/// write out. Text, ping and pong messages are not device data and are skipped.
pub fn byte_stream(socket: WebSocket) -> impl AsyncRead + AsyncWrite + Unpin + Send {
    let (sink, stream) = socket.split();
    let reader = StreamReader::new(stream.filter_map(|msg| {
        future::ready(match msg {
            Ok(Message::Binary(bytes)) => Some(Ok::<Bytes, io::Error>(bytes)),
            Ok(_) => None,
            Err(err) => Some(Err(io::Error::other(err))),
        })
    }));
    let sink = sink
        .sink_map_err(io::Error::other)
        .with(|bytes: Bytes| future::ready(Ok::<_, io::Error>(Message::Binary(bytes))));
    let writer = SinkWriter::new(CopyToBytes::new(sink));
    tokio::io::join(reader, writer)
}
