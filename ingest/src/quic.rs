//! QUIC listener: each bidirectional stream of a connection is one Blynk
//! device session (ALPN [`crate::QUIC_ALPN`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::metrics::Refusal;
use crate::{Ingest, IngestError, Result, Transport};

/// Device sessions one QUIC connection may run at once.
const MAX_STREAMS_PER_CONNECTION: u32 = 4;

impl Ingest {
    /// A QUIC endpoint on `addr` with the given server crypto; the transport
    /// keeps connections alive as long as the device heartbeat allows.
    pub fn quic_endpoint(
        &self,
        addr: SocketAddr,
        mut server: quinn::ServerConfig,
    ) -> Result<quinn::Endpoint> {
        let mut transport = quinn::TransportConfig::default();
        transport.max_concurrent_bidi_streams(MAX_STREAMS_PER_CONNECTION.into());
        transport.max_concurrent_uni_streams(0u8.into());
        // The session enforces the Blynk heartbeat; the QUIC idle timeout only
        // reaps connections whose peer vanished (the longest heartbeat × factor).
        let idle = self.config().idle_timeout(Duration::from_secs(3600));
        transport.max_idle_timeout(Some(
            quinn::IdleTimeout::try_from(idle).map_err(|e| IngestError::Tls(e.to_string()))?,
        ));
        server.transport_config(Arc::new(transport));
        Ok(quinn::Endpoint::server(server, addr)?)
    }

    /// Accept QUIC connections on `endpoint` until `shutdown` turns true.
    pub async fn serve_quic(
        &self,
        endpoint: quinn::Endpoint,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<()> {
        tracing::info!(addr = %endpoint.local_addr()?, "Blynk QUIC listener ready");
        loop {
            tokio::select! {
                incoming = endpoint.accept() => {
                    let Some(incoming) = incoming else { return Ok(()) };
                    let ingest = self.clone();
                    tokio::spawn(async move { ingest.quic_connection(incoming).await });
                }
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        tracing::info!("Blynk QUIC listener stopping");
                        endpoint.close(0u8.into(), b"shutdown");
                        return Ok(());
                    }
                }
            }
        }
    }

    async fn quic_connection(&self, incoming: quinn::Incoming) {
        let peer = incoming.remote_address();
        let connecting = match incoming.accept() {
            Ok(connecting) => connecting,
            Err(err) => {
                tracing::debug!(%peer, %err, "QUIC connection refused");
                return;
            }
        };
        let connection = match tokio::time::timeout(self.config().login_timeout, connecting).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(err)) => {
                tracing::debug!(%peer, %err, "QUIC handshake failed");
                self.metrics().refused(Refusal::tls_handshake);
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "QUIC handshake timed out");
                self.metrics().refused(Refusal::tls_handshake);
                return;
            }
        };
        loop {
            let (send, recv) = match connection.accept_bi().await {
                Ok(pair) => pair,
                Err(err) => {
                    tracing::debug!(%peer, %err, "QUIC connection ended");
                    return;
                }
            };
            let stream = tokio::io::join(recv, send);
            self.spawn_connection(stream, peer, Transport::Quic);
        }
    }
}
