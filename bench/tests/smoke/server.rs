//! The real pinhouse server in a child process: this test binary re-executed with
//! `PINHOUSE_BENCH_SERVER_ARGS` set runs `pinhouse serve` (see `server_process` in `main.rs`).

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Environment variable carrying the server's arguments (separated by U+001F) to the child.
const ARGS_ENV: &str = "PINHOUSE_BENCH_SERVER_ARGS";
pub const ADMIN_EMAIL: &str = "bench@example.com";
pub const ADMIN_PASSWORD: &str = "bench smoke password";

/// Runs the server if this process was spawned as one (never returns then).
pub fn serve_if_asked() {
    if let Ok(args) = std::env::var(ARGS_ENV) {
        let argv =
            std::iter::once("pinhouse".to_owned()).chain(args.split('\u{1f}').map(str::to_owned));
        if let Err(err) = pinhouse_api::cli::run(argv) {
            eprintln!("server failed: {err}");
            std::process::exit(1);
        }
    }
}

/// A free TCP port on 127.0.0.1 (bound to port 0, then released for the server).
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A free UDP port on 127.0.0.1 (QUIC).
fn free_udp_port() -> Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running server; killed on drop.
pub struct Server {
    child: Child,
    pub http: SocketAddr,
    pub hardware: SocketAddr,
    pub tls: SocketAddr,
    pub quic: SocketAddr,
    /// CA of the certificate the server generates on first start.
    pub ca_file: PathBuf,
    log: PathBuf,
}

impl Server {
    /// Starts a server with its data in `data_dir`, on free loopback ports, without the
    /// per-device message quota and the per-IP login limit (a whole fleet logs in from
    /// 127.0.0.1 and streams faster than a real device).
    pub async fn start(data_dir: &Path) -> Result<Server> {
        let addr = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let (http, hardware, tls, quic) = (
            addr(free_port()?),
            addr(free_port()?),
            addr(free_port()?),
            addr(free_udp_port()?),
        );
        std::fs::create_dir_all(data_dir)?;
        let args = [
            "serve".to_owned(),
            "--data-dir".to_owned(),
            data_dir.display().to_string(),
            "--http".to_owned(),
            http.to_string(),
            "--hardware".to_owned(),
            hardware.to_string(),
            "--tls".to_owned(),
            tls.to_string(),
            "--quic".to_owned(),
            quic.to_string(),
            "--message-rate".to_owned(),
            "0".to_owned(),
            "--login-rate-per-ip".to_owned(),
            "0".to_owned(),
        ]
        .join("\u{1f}");
        let log = data_dir.with_extension("log");
        let child = Command::new(std::env::current_exe()?)
            .args([
                "server_process",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ARGS_ENV, args)
            .env("PINHOUSE_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("PINHOUSE_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("spawning the server process")?;
        let server = Server {
            child,
            http,
            hardware,
            tls,
            quic,
            ca_file: data_dir.join("tls/ca.pem"),
            log,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&self) -> Result<()> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(resp) = client
                .get(format!("http://{}/healthz", self.http))
                .send()
                .await
                && resp.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "server did not become ready; log:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Process id of the server (for its memory in `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kill the server and wait for it.
    pub fn stop(self) {}
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
