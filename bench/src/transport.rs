//! Device connections over every transport the server offers: plain TCP,
//! TLS, Blynk-over-WebSocket and QUIC (ALPN `blynk`), and the Blynk device HTTP API
//! (no byte stream: see [`crate::device`]).

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures::{SinkExt, StreamExt, future};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::io::{CopyToBytes, SinkWriter, StreamReader};

use crate::connections::connect_from;

/// Which transport the simulated devices use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Plain TCP to the hardware port.
    Tcp,
    /// TLS to the TLS port.
    Tls,
    /// Binary WebSocket messages to `/websocket` on the HTTP port.
    Ws,
    /// One QUIC connection per device, one bidirectional stream.
    Quic,
    /// The Blynk device HTTP API on the HTTP port: each write is one
    /// `POST /external/api/batch/update?token=…&pin=V…` of `[[ts_ms, value], …]`.
    Http,
}

/// Flags saying how simulated devices reach the server.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    /// Address of the server's Blynk TCP listener.
    #[arg(long, default_value = "127.0.0.1:8442")]
    pub hardware: SocketAddr,
    /// Transport of the simulated devices.
    #[arg(long, value_enum, default_value_t = Kind::Tcp)]
    pub transport: Kind,
    /// Address of the server's TLS listener (`--transport tls`).
    #[arg(long, default_value = "127.0.0.1:9443")]
    pub tls: SocketAddr,
    /// Address of the server's QUIC listener (`--transport quic`).
    #[arg(long, default_value = "127.0.0.1:9443")]
    pub quic: SocketAddr,
    /// CA file the server's certificate chains to (tls, quic): the server's
    /// `<data dir>/tls/ca.pem` when it generated its own.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Loopback source addresses to spread connections over (127.0.0.1 ..
    /// 127.0.0.N; TCP-based transports).
    #[arg(long, default_value_t = 1)]
    pub sources: u8,
}

impl ConnectArgs {
    /// The connector these flags describe; `http` is the server's HTTP base URL (WebSocket).
    pub fn connector(&self, http: &str) -> Result<Connector> {
        let addr = match self.transport {
            Kind::Tcp | Kind::Ws | Kind::Http => self.hardware,
            Kind::Tls => self.tls,
            Kind::Quic => self.quic,
        };
        Connector::new(self.transport, addr, http, self.ca.as_ref())
    }

    /// The transport's name in reports and file names.
    pub fn name(&self) -> &'static str {
        self.transport.name()
    }
}

impl Kind {
    /// Lower-case name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Tcp => "tcp",
            Kind::Tls => "tls",
            Kind::Ws => "ws",
            Kind::Quic => "quic",
            Kind::Http => "http",
        }
    }
}

/// A device byte stream, whatever the transport.
pub trait DeviceStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> DeviceStream for T {}

/// Everything needed to open device connections.
#[derive(Debug, Clone)]
pub struct Connector {
    kind: Kind,
    addr: SocketAddr,
    ws_url: String,
    ws_addr: Option<SocketAddr>,
    tls: Option<Arc<rustls::ClientConfig>>,
    quic: Option<quinn::Endpoint>,
    http: Option<HttpTarget>,
}

/// Where `--transport http` devices send: the server's base URL and one shared
/// keep-alive connection pool.
#[derive(Debug, Clone)]
pub struct HttpTarget {
    /// Base URL without a trailing `/`.
    pub base: String,
    /// The pool every device uses.
    pub client: reqwest::Client,
}

fn client_config(ca: &Path, alpn: Option<&[u8]>) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        CertificateDer::pem_file_iter(ca).with_context(|| format!("reading {}", ca.display()))?
    {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    if let Some(alpn) = alpn {
        config.alpn_protocols = vec![alpn.to_vec()];
    }
    Ok(config)
}

impl Connector {
    /// `addr` is the hardware, TLS or QUIC address; `http` the HTTP base URL
    /// (for WebSocket); `ca` the CA file the server's certificate chains to.
    pub fn new(kind: Kind, addr: SocketAddr, http: &str, ca: Option<&PathBuf>) -> Result<Self> {
        let ca =
            || ca.context("--ca is needed for tls and quic (the server's <data dir>/tls/ca.pem)");
        let tls = match kind {
            Kind::Tls => Some(Arc::new(client_config(ca()?, None)?)),
            _ => None,
        };
        let quic = match kind {
            Kind::Quic => {
                let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(client_config(
                    ca()?,
                    Some(b"blynk"),
                )?)?;
                let mut endpoint = quinn::Endpoint::client(SocketAddr::from(([0, 0, 0, 0], 0)))?;
                endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
                Some(endpoint)
            }
            _ => None,
        };
        let ws_url = format!(
            "{}/websocket",
            http.trim_end_matches('/').replacen("http://", "ws://", 1)
        );
        let ws_addr = match kind {
            Kind::Ws => Some(
                http.trim_start_matches("http://")
                    .split('/')
                    .next()
                    .unwrap_or_default()
                    .parse()
                    .context("--http must be http://IP:PORT for the ws transport")?,
            ),
            _ => None,
        };
        let http = (kind == Kind::Http).then(|| HttpTarget {
            base: http.trim_end_matches('/').to_owned(),
            client: reqwest::Client::new(),
        });
        Ok(Self {
            kind,
            addr,
            ws_url,
            ws_addr,
            tls,
            quic,
            http,
        })
    }

    /// The HTTP target when the transport is `http` (which has no byte stream).
    pub fn http(&self) -> Option<&HttpTarget> {
        self.http.as_ref()
    }

    /// A new device connection from loopback source address number `source`
    /// (TCP-based transports; several get past 64k connections).
    pub async fn connect(&self, source: u8) -> Result<Box<dyn DeviceStream>> {
        match self.kind {
            Kind::Tcp => Ok(Box::new(connect_from(self.addr, source).await?)),
            Kind::Tls => {
                let config = self.tls.clone().context("tls config")?;
                let stream = connect_from(self.addr, source).await?;
                let tls = tokio_rustls::TlsConnector::from(config)
                    .connect(ServerName::try_from("localhost")?, stream)
                    .await?;
                Ok(Box::new(tls))
            }
            Kind::Ws => {
                let stream = connect_from(self.ws_addr.context("ws address")?, source).await?;
                let (ws, _) = tokio_tungstenite::client_async(self.ws_url.as_str(), stream).await?;
                let (sink, stream) = ws.split();
                let reader = StreamReader::new(stream.filter_map(|msg| {
                    future::ready(match msg {
                        Ok(Message::Binary(b)) => Some(Ok::<Bytes, io::Error>(b)),
                        Ok(_) => None,
                        Err(e) => Some(Err(io::Error::other(e))),
                    })
                }));
                let sink = sink
                    .sink_map_err(io::Error::other)
                    .with(|b: Bytes| future::ready(Ok::<_, io::Error>(Message::Binary(b))));
                Ok(Box::new(tokio::io::join(
                    reader,
                    SinkWriter::new(CopyToBytes::new(sink)),
                )))
            }
            Kind::Quic => {
                let endpoint = self.quic.as_ref().context("quic endpoint")?;
                let connection = endpoint.connect(self.addr, "localhost")?.await?;
                let (send, recv) = connection.open_bi().await?;
                Ok(Box::new(QuicStream {
                    _connection: connection,
                    io: tokio::io::join(recv, send),
                }))
            }
            Kind::Http => bail!("the http transport has no byte stream"),
        }
    }
}

/// Keeps the QUIC connection alive as long as its stream.
struct QuicStream {
    _connection: quinn::Connection,
    io: tokio::io::Join<quinn::RecvStream, quinn::SendStream>,
}

impl AsyncRead for QuicStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for QuicStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
