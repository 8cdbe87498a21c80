//! Every transport runs the same session: blynklib over plain TCP, the shared
//! HTTP port and TLS; the protocol crate's sans-IO client over TLS, WebSocket
//! and QUIC; HTTPS on the TLS port.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt, future};
use pinhouse_protocol::client::{Client, Event};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::io::{CopyToBytes, SinkWriter, StreamReader};

use crate::server::{Server, eventually, run_blynklib, run_blynklib_with};

fn roots(ca_file: &Path) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    roots
}

fn client_tls(ca_file: &Path, alpn: Option<&[u8]>) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(ca_file))
        .with_no_client_auth();
    if let Some(alpn) = alpn {
        config.alpn_protocols = vec![alpn.to_vec()];
    }
    config
}

async fn tls_connect(server: &Server) -> Result<impl AsyncRead + AsyncWrite + Unpin> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_tls(&server.ca_file, None)));
    let tcp = TcpStream::connect(server.tls).await?;
    Ok(connector
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?)
}

async fn ws_connect(server: &Server) -> Result<impl AsyncRead + AsyncWrite + Unpin> {
    let tcp = TcpStream::connect(server.http).await?;
    let url = format!("ws://{}/websocket", server.http);
    let (ws, _) = tokio_tungstenite::client_async(url, tcp).await?;
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
    Ok(tokio::io::join(
        reader,
        SinkWriter::new(CopyToBytes::new(sink)),
    ))
}

async fn quic_connect(
    server: &Server,
) -> Result<(quinn::Endpoint, impl AsyncRead + AsyncWrite + Unpin)> {
    let tls = client_tls(&server.ca_file, Some(b"blynk"));
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let connection = endpoint.connect(server.quic, "localhost")?.await?;
    let (send, recv) = connection.open_bi().await?;
    Ok((endpoint, tokio::io::join(recv, send)))
}

/// The sans-IO client over any byte stream.
struct Device<S> {
    stream: S,
    client: Client,
    inbuf: BytesMut,
    out: BytesMut,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Device<S> {
    fn new(stream: S, token: &str) -> Self {
        Self {
            stream,
            client: Client::new(Bytes::copy_from_slice(token.as_bytes())),
            inbuf: BytesMut::new(),
            out: BytesMut::new(),
        }
    }

    async fn flush(&mut self) -> Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.stream.flush().await?;
            self.out.clear();
        }
        Ok(())
    }

    async fn event(&mut self) -> Result<Event> {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(event) = self.client.decode(&mut self.inbuf, &mut self.out)? {
                    self.flush().await?;
                    return Ok(event);
                }
                if self.stream.read_buf(&mut self.inbuf).await? == 0 {
                    bail!("server closed the connection");
                }
            }
        })
        .await
        .context("no event from the server within 10 s")?
    }

    /// Log in, write V1 and sync it back in the same write (the sync must
    /// see the value), ping.
    async fn exercise(&mut self, value: &str) -> Result<()> {
        self.client.login(&mut self.out);
        self.flush().await?;
        match self.event().await? {
            Event::LoggedIn { status: 200 } => {}
            other => bail!("login: {other:?}"),
        }
        self.client
            .virtual_write(1, &[value.as_bytes()], &mut self.out);
        let sync_id = self.client.sync_virtual(&[1], &mut self.out);
        self.flush().await?;
        match self.event().await? {
            Event::VirtualWrite {
                msg_id,
                pin: 1,
                values,
            } if msg_id == sync_id && values == value.as_bytes() => {}
            other => bail!("sync V1: expected {value}, got {other:?}"),
        }
        let ping_id = self.client.ping(&mut self.out);
        self.flush().await?;
        match self.event().await? {
            Event::Response {
                msg_id,
                status: 200,
            } if msg_id == ping_id => Ok(()),
            other => bail!("ping: {other:?}"),
        }
    }
}

async fn stored_v1(server: &Server, token: &str, expected: &str) -> Option<()> {
    eventually(Duration::from_secs(5), || async {
        let (status, body) = server.blynk_get(token, "v1").await.ok()?;
        (status == 200 && body.contains(expected)).then_some(())
    })
    .await
}

#[tokio::test]
async fn sans_io_client_over_tls_websocket_and_quic() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await.unwrap();
    let bearer = server.admin_token().await.unwrap();
    let (_, token) = server
        .create_device(&bearer, "any-transport")
        .await
        .unwrap();

    let mut tls = Device::new(tls_connect(&server).await.unwrap(), &token);
    tls.exercise("11.5").await.unwrap();
    assert!(stored_v1(&server, &token, "11.5").await.is_some());

    let mut ws = Device::new(ws_connect(&server).await.unwrap(), &token);
    ws.exercise("12.5").await.unwrap();
    assert!(stored_v1(&server, &token, "12.5").await.is_some());

    let (_endpoint, quic) = quic_connect(&server).await.unwrap();
    let mut quic = Device::new(quic, &token);
    quic.exercise("13.5").await.unwrap();
    assert!(stored_v1(&server, &token, "13.5").await.is_some());

    // All three sessions are live at once, on one device.
    let (status, body) = server
        .get_text(&format!("/external/api/isHardwareConnected?token={token}"))
        .await
        .unwrap();
    assert_eq!((status, body.as_str()), (200, "true"));

    // Each transport is counted on /metrics.
    let (status, metrics) = server.get_text("/metrics").await.unwrap();
    assert_eq!(status, 200);
    for transport in ["tls", "websocket", "quic"] {
        let line = format!("pinhouse_ingest_connections_total{{transport=\"{transport}\"}} 1");
        assert!(metrics.contains(&line), "{line} missing in\n{metrics}");
    }
}

#[tokio::test]
async fn blynklib_over_the_http_port_and_tls_and_https_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await.unwrap();
    let bearer = server.admin_token().await.unwrap();
    let (_, token) = server.create_device(&bearer, "legacy-port").await.unwrap();

    // A device configured for a legacy server's 8080: the HTTP port.
    let (ok, log) = run_blynklib(server.http, &token, "write").unwrap();
    assert!(ok, "blynklib over the HTTP port failed:\n{log}");
    // The same port still serves HTTP.
    assert_eq!(server.get_text("/healthz").await.unwrap().0, 200);

    // blynklib's TLS mode, trusting the generated CA.
    let (ok, log) = run_blynklib_with(server.tls, &token, "write", Some(&server.ca_file)).unwrap();
    assert!(ok, "blynklib over TLS failed:\n{log}");

    // HTTPS on the TLS port.
    let mut https = tls_connect(&server).await.unwrap();
    https
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    https.read_to_end(&mut reply).await.unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with("ok"), "{reply}");
}

/// Runs the official Python library's driver (`blynk_lib_client.py`): (exit ok, "step:" lines).
fn run_blynk_library_python(
    hardware: std::net::SocketAddr,
    token: &str,
    mode: &str,
) -> (bool, Vec<String>, String) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/blynk_lib_client.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(hardware.ip().to_string())
        .arg(hardware.port().to_string())
        .arg(token)
        .arg(mode)
        .output()
        .expect("python3 with blynk-library-python (scripts/test installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let steps = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("step: "))
        .map(str::to_owned)
        .collect();
    (
        out.status.success(),
        steps,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blynk_library_python_login_sync_property_reconnect_and_heartbeat_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await.unwrap();
    let admin = server.admin_token().await.unwrap();
    let (device, token) = server.create_device(&admin, "BlynkLib").await.unwrap();
    let hardware = server.hardware;
    let (ok, steps, log) = {
        let token = token.clone();
        tokio::task::spawn_blocking(move || run_blynk_library_python(hardware, &token, "full"))
            .await
            .unwrap()
    };
    assert!(
        ok,
        "steps {steps:?}\nclient log:\n{log}\nserver log:\n{}",
        server.log_text()
    );
    assert_eq!(
        steps[..4],
        [
            "logged in",
            "synced ['23.5']",
            "reconnected",
            steps[3].as_str()
        ]
    );
    // The heartbeat the library announced (2 s) sets the timeout: closed well before 20 s.
    assert!(
        steps[3].starts_with("server closed the silent session"),
        "{steps:?}"
    );

    // What the library sent is on the server: the property and the value written after the
    // reconnect.
    let id = device["id"].as_u64().unwrap();
    let resp = server
        .client
        .get(server.url(&format!("/api/v1/devices/{id}/properties")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let properties: serde_json::Value = resp.json().await.unwrap();
    assert!(
        properties
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["property"] == "label" && p["values"] == serde_json::json!(["Boiler"])),
        "{properties}"
    );
    let (code, body) = server.blynk_get(&token, "V1").await.unwrap();
    assert_eq!((code, body.as_str()), (200, "24.5"));

    // A wrong token is refused the way the library understands.
    let (ok, steps, log) = tokio::task::spawn_blocking(move || {
        run_blynk_library_python(hardware, "0123456789abcdef0123456789abcdef", "badtoken")
    })
    .await
    .unwrap();
    assert!(ok, "{steps:?}\n{log}");
    assert_eq!(steps, ["refused"]);
}
