//! Plain-TCP listener for Blynk devices.

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::{Ingest, Result, session};

impl Ingest {
    /// Accept device connections on `listener` until `shutdown` turns true.
    pub async fn serve_tcp(
        &self,
        listener: TcpListener,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<()> {
        tracing::info!(addr = %listener.local_addr()?, "Blynk TCP listener ready");
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(pair) => pair,
                        Err(err) => {
                            // EMFILE and friends: back off instead of spinning.
                            tracing::warn!(%err, "accept failed");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let Ok(permit) = std::sync::Arc::clone(self.connections()).try_acquire_owned() else {
                        tracing::warn!(%peer, limit = self.config().max_connections, "connection refused: too many connections");
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let ingest = self.clone();
                    let shutdown = shutdown.clone();
                    tokio::spawn(async move {
                        session::run(ingest, stream, peer, shutdown).await;
                        drop(permit);
                    });
                }
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        tracing::info!("Blynk TCP listener stopping");
                        return Ok(());
                    }
                }
            }
        }
    }
}
