//! TCP listeners for Blynk devices: plain, TLS, and ports shared with HTTP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::metrics::Refusal;
use crate::transport::{Prefixed, Sniffed, sniff};
use crate::{Ingest, Result, Transport};

/// A connection handed to the HTTP server by a shared port.
pub type HttpConn<S> = (Prefixed<S>, SocketAddr);

/// HTTP connections recognised on the shared plain port.
pub type PlainHttp = mpsc::Sender<HttpConn<TcpStream>>;
/// HTTPS connections recognised on the shared TLS port.
pub type TlsHttp = mpsc::Sender<HttpConn<TlsStream<TcpStream>>>;

/// How the accept loop treats a new TCP connection.
enum Mode {
    /// Every connection is a device (the hardware port).
    Device,
    /// A port shared with HTTP(S).
    Shared(Arc<Shared>),
}

/// A port shared with HTTP(S): what decides between a device session and HTTP.
enum Shared {
    /// First bytes decide: devices to a session, the rest to HTTP.
    Plain(PlainHttp),
    /// TLS handshake, then the first bytes decide.
    Tls(TlsAcceptor, Option<TlsHttp>),
}

impl Ingest {
    /// Accept device connections on `listener` (plain TCP, devices only) until
    /// `shutdown` turns true.
    pub async fn serve_tcp(
        &self,
        listener: TcpListener,
        shutdown: watch::Receiver<bool>,
    ) -> Result<()> {
        self.accept_loop(listener, Mode::Device, shutdown).await
    }

    /// The HTTP port shared with devices: connections whose first byte is a
    /// Blynk command become device sessions, every other one is sent to
    /// `http` for the HTTP server (legacy servers took devices on 8080 too).
    pub async fn serve_shared(
        &self,
        listener: TcpListener,
        http: PlainHttp,
        shutdown: watch::Receiver<bool>,
    ) -> Result<()> {
        self.accept_loop(
            listener,
            Mode::Shared(Arc::new(Shared::Plain(http))),
            shutdown,
        )
        .await
    }

    /// The TLS port: TLS handshake, then devices become sessions and other
    /// clients (HTTPS) go to `https` when given (else they are closed).
    pub async fn serve_tls(
        &self,
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        https: Option<TlsHttp>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<()> {
        self.accept_loop(
            listener,
            Mode::Shared(Arc::new(Shared::Tls(TlsAcceptor::from(tls), https))),
            shutdown,
        )
        .await
    }

    async fn accept_loop(
        &self,
        listener: TcpListener,
        mode: Mode,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<()> {
        let kind = match &mode {
            Mode::Device => "Blynk TCP",
            Mode::Shared(shared) => match **shared {
                Shared::Plain(_) => "shared HTTP/Blynk",
                Shared::Tls(..) => "Blynk TLS",
            },
        };
        tracing::info!(addr = %listener.local_addr()?, "{kind} listener ready");
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(pair) => pair,
                        Err(err) => {
                            // EMFILE and friends: back off instead of spinning.
                            tracing::warn!(%err, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    // A task is as large as its future's largest state. Device connections
                    // (most of a fleet, mostly idle) get a task of their own kind, not one sized
                    // for a TLS handshake or a sniffed HTTP connection (see
                    // `Ingest::spawn_connection`).
                    match &mode {
                        Mode::Device => {
                            self.spawn_connection(stream, peer, Transport::Tcp);
                        }
                        Mode::Shared(shared) => {
                            let ingest = self.clone();
                            let shared = Arc::clone(shared);
                            tokio::spawn(async move {
                                ingest.dispatch(stream, peer, &shared).await
                            });
                        }
                    }
                }
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        tracing::info!("{kind} listener stopping");
                        return Ok(());
                    }
                }
            }
        }
    }

    /// A connection on a shared port: sniffed (after the TLS handshake on the TLS port).
    async fn dispatch(&self, stream: TcpStream, peer: SocketAddr, shared: &Shared) {
        let timeout = self.config().login_timeout;
        match shared {
            Shared::Plain(http) => {
                self.route(stream, peer, Transport::HttpPort, http).await;
            }
            Shared::Tls(acceptor, https) => {
                let tls = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(err)) => {
                        tracing::debug!(%peer, %err, "TLS handshake failed");
                        self.metrics().refused(Refusal::tls_handshake);
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        self.metrics().refused(Refusal::tls_handshake);
                        return;
                    }
                };
                // The session gets a task of its own size; this one (sized for the
                // handshake) ends here.
                match https.clone() {
                    Some(https) => {
                        let ingest = self.clone();
                        tokio::spawn(async move {
                            ingest.route(tls, peer, Transport::Tls, &https).await
                        });
                    }
                    None => self.spawn_connection(tls, peer, Transport::Tls),
                }
            }
        }
    }

    /// Sniff the first bytes: a device session, or a connection for HTTP.
    async fn route<S>(
        &self,
        stream: S,
        peer: SocketAddr,
        transport: Transport,
        http: &mpsc::Sender<HttpConn<S>>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        match sniff(stream, self.config().login_timeout).await {
            Ok(Some((Sniffed::Blynk, stream))) => {
                // A task of the session's own size, as on the hardware port.
                self.spawn_connection(stream, peer, transport);
            }
            Ok(Some((Sniffed::Http, stream))) => {
                if http.send((stream, peer)).await.is_err() {
                    tracing::debug!(%peer, "HTTP server gone; connection dropped");
                }
            }
            Ok(None) => {
                tracing::debug!(%peer, "connection closed or silent before its first byte");
                self.metrics().refused(Refusal::login_timeout);
            }
            Err(err) => tracing::debug!(%peer, %err, "connection failed before its first byte"),
        }
    }
}
