//! Starting, killing and talking to a pinhouse server in a child process.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use md5::Digest as _;
use serde_json::{Value, json};

/// Environment variable carrying the server's arguments to the child.
pub const ARGS_ENV: &str = "PINHOUSE_E2E_ARGS";
pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

/// The variable naming a PostgreSQL server (an admin url) to run the servers' control planes on
/// (`scripts/postgres-for-tests` sets it); unset, they use SQLite in their data directory.
pub const TEST_POSTGRES_URL: &str = "PINHOUSE_TEST_POSTGRES_URL";

/// With [`TEST_POSTGRES_URL`] set, the url of the database of the server of `data_dir` on that
/// PostgreSQL server, created when missing (a restart on the same directory finds its data).
/// Uses `psql`, which the tests install anyway.
fn postgres_database_for(data_dir: &Path) -> Result<Option<String>> {
    let admin = match std::env::var(TEST_POSTGRES_URL) {
        Ok(url) if !url.is_empty() => url,
        _ => return Ok(None),
    };
    let digest = md5::Md5::digest(data_dir.display().to_string().as_bytes());
    let name: String = format!("pinhouse_e2e_{}", hex(&digest));
    let psql = |sql: &str| -> Result<String> {
        let out = Command::new("psql")
            .args([admin.as_str(), "-tAc", sql])
            .output()
            .context("running psql")?;
        if !out.status.success() {
            bail!("psql {sql:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    if psql(&format!(
        "SELECT 1 FROM pg_database WHERE datname = '{name}'"
    ))?
    .is_empty()
    {
        psql(&format!("CREATE DATABASE {name}"))?;
    }
    let (base, query) = admin.split_once('?').unwrap_or((admin.as_str(), ""));
    let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    Ok(Some(format!("{base}/{name}{query}")))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A free port on 127.0.0.1 (bound, then released for the server).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A free UDP port on 127.0.0.1 (for QUIC).
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running server process.
pub struct Server {
    child: Child,
    pub http: SocketAddr,
    pub hardware: SocketAddr,
    /// Blynk over TLS and HTTPS.
    pub tls: SocketAddr,
    /// Blynk over QUIC (UDP).
    pub quic: SocketAddr,
    /// The CA of the self-signed certificate generated on first run.
    pub ca_file: PathBuf,
    pub client: reqwest::Client,
    log: PathBuf,
}

impl Server {
    /// Start a server on fresh free ports.
    pub async fn start(data_dir: &Path) -> Result<Server> {
        Self::start_full_env(data_dir, None, &[], &[]).await
    }

    /// Start a server on fresh free ports with extra `serve` flags.
    pub async fn start_with(data_dir: &Path, extra: &[&str]) -> Result<Server> {
        Self::start_full_env(data_dir, None, extra, &[]).await
    }

    /// Start a server on fresh free ports with extra `serve` flags and environment variables.
    pub async fn start_with_env(
        data_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Server> {
        Self::start_full_env(data_dir, None, extra, env).await
    }

    /// Start a server on the given ports (a restart reuses them).
    pub async fn start_on(
        data_dir: &Path,
        http: SocketAddr,
        hardware: SocketAddr,
    ) -> Result<Server> {
        Self::start_full_env(data_dir, Some((http, hardware)), &[], &[]).await
    }

    /// Ports are found free by binding and releasing them, so another process may take one
    /// before the server binds it: a server that could not listen is started again on fresh
    /// ports (all of them, or all but the HTTP and hardware ports given).
    async fn start_full_env(
        data_dir: &Path,
        ports: Option<(SocketAddr, SocketAddr)>,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Server> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (http, hardware) = ports.unwrap_or_else(|| {
                (
                    SocketAddr::from(([127, 0, 0, 1], free_port())),
                    SocketAddr::from(([127, 0, 0, 1], free_port())),
                )
            });
            match Self::start_once(data_dir, http, hardware, extra, env).await {
                Err(err) if attempt < 3 && err.to_string().contains("Address already in use") => {
                    eprintln!("server start, attempt {attempt}: a port was taken; trying others");
                }
                result => return result,
            }
        }
    }

    async fn start_once(
        data_dir: &Path,
        http: SocketAddr,
        hardware: SocketAddr,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Server> {
        let tls = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let quic = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
        let mut args = vec![
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
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        if !extra.contains(&"--database-url")
            && let Some(url) = postgres_database_for(data_dir)?
        {
            args.extend(["--database-url".to_owned(), url]);
        }
        let args = args.join("\u{1f}");
        let log = data_dir.with_extension(format!("{}.log", http.port()));
        let log_file = std::fs::File::create(&log)?;
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
            .env("RUST_LOG", "info,pinhouse_ingest=debug")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .context("spawning the server process")?;
        let mut server = Server {
            child,
            http,
            hardware,
            tls,
            quic,
            ca_file: data_dir.join("tls/ca.pem"),
            client: reqwest::Client::new(),
            log,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(resp) = self.client.get(self.url("/healthz")).send().await
                && resp.status().is_success()
            {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                bail!(
                    "server exited ({status}) before it was ready; log:\n{}",
                    self.log_text()
                );
            }
            if Instant::now() > deadline {
                bail!("server did not become ready; log:\n{}", self.log_text());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Log in as the bootstrap admin and return the bearer token.
    pub async fn admin_token(&self) -> Result<String> {
        self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    /// An admin of a new sub-organization of `admin`'s organization, which
    /// sees nothing of its parent: (e-mail, password, bearer token).
    pub async fn other_org_admin(&self, admin: &str, email: &str) -> Result<(String, String)> {
        let password = format!("{email} password");
        let (status, org) = self
            .post_json(admin, "/api/v1/organizations", &json!({"name": email}))
            .await?;
        if status != 201 {
            bail!("creating an organization failed: {status} {org}");
        }
        let (status, user) = self
            .post_json(
                admin,
                "/api/v1/users",
                &json!({"email": email, "password": password, "role": "admin", "org_id": org["id"]}),
            )
            .await?;
        if status != 201 {
            bail!("creating a user failed: {status} {user}");
        }
        let token = self.login(email, &password).await?;
        Ok((password, token))
    }

    /// Log in as a user: its bearer token.
    pub async fn login(&self, email: &str, password: &str) -> Result<String> {
        let resp = self
            .client
            .post(self.url("/api/v1/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await?;
        if !status.is_success() {
            bail!("login failed: {status} {body}");
        }
        Ok(body["token"]
            .as_str()
            .context("token in login reply")?
            .to_owned())
    }

    /// `method path` as `bearer`, with a JSON body when given: (status, JSON body or null).
    async fn send_json(
        &self,
        method: reqwest::Method,
        bearer: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value)> {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(bearer);
        if let Some(body) = body {
            request = request.json(body);
        }
        let resp = request.send().await?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    }

    /// `POST path` with a JSON body as `bearer`: (status, JSON body or null).
    pub async fn post_json(&self, bearer: &str, path: &str, body: &Value) -> Result<(u16, Value)> {
        self.send_json(reqwest::Method::POST, bearer, path, Some(body))
            .await
    }

    /// `GET path` as `bearer`: (status, JSON body or null).
    pub async fn get_json(&self, bearer: &str, path: &str) -> Result<(u16, Value)> {
        self.send_json(reqwest::Method::GET, bearer, path, None)
            .await
    }

    /// `PUT path` with a JSON body as `bearer`: (status, JSON body or null).
    pub async fn put_json(&self, bearer: &str, path: &str, body: &Value) -> Result<(u16, Value)> {
        self.send_json(reqwest::Method::PUT, bearer, path, Some(body))
            .await
    }

    /// `PATCH path` with a JSON body as `bearer`: (status, JSON body or null).
    pub async fn patch_json(&self, bearer: &str, path: &str, body: &Value) -> Result<(u16, Value)> {
        self.send_json(reqwest::Method::PATCH, bearer, path, Some(body))
            .await
    }

    /// `DELETE path` as `bearer`: the status.
    pub async fn delete(&self, bearer: &str, path: &str) -> Result<u16> {
        let resp = self
            .client
            .delete(self.url(path))
            .bearer_auth(bearer)
            .send()
            .await?;
        Ok(resp.status().as_u16())
    }

    /// Run SQL as `bearer`, returning the JSON rows.
    pub async fn sql(&self, bearer: &str, sql: &str) -> Result<Value> {
        let resp = self
            .client
            .post(self.url("/api/v1/sql"))
            .bearer_auth(bearer)
            .body(sql.to_owned())
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await?;
        if !status.is_success() {
            bail!("sql failed: {status} {body}");
        }
        Ok(body)
    }

    /// `GET path`: (status, body text).
    pub async fn get_text(&self, path: &str) -> Result<(u16, String)> {
        let resp = self.client.get(self.url(path)).send().await?;
        Ok((resp.status().as_u16(), resp.text().await?))
    }

    /// `GET /external/api/get?token=T&<pin>`: (status, body text).
    pub async fn blynk_get(&self, token: &str, pin: &str) -> Result<(u16, String)> {
        let resp = self
            .client
            .get(self.url(&format!("/external/api/get?token={token}&{pin}")))
            .send()
            .await?;
        Ok((resp.status().as_u16(), resp.text().await?))
    }

    /// Create a template with V1 (double) and V2 (string) and a device of it;
    /// returns the device's auth token.
    pub async fn create_device(&self, bearer: &str, name: &str) -> Result<(Value, String)> {
        let (status, template) = self
            .post_json(
                bearer,
                "/api/v1/templates",
                &json!({"name": "Weather station", "datastreams": [
                    {"pin": 1, "name": "Temperature", "type": "double", "min": -40, "max": 85, "units": "°C", "decimals": 1},
                    {"pin": 2, "name": "Status", "type": "string"}
                ]}),
            )
            .await?;
        if status != 201 {
            bail!("template create: {status} {template}");
        }
        let template_id = template["id"].as_str().context("template id")?.to_owned();
        let (status, device) = self
            .post_json(
                bearer,
                "/api/v1/devices",
                &json!({"name": name, "template_id": template_id}),
            )
            .await?;
        if status != 201 {
            bail!("device create: {status} {device}");
        }
        let token = device["token"].as_str().context("device token")?.to_owned();
        Ok((device, token))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Unix time now, in ms.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Poll `check` until it returns Some or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Run the blynklib driver script; returns (exit ok, stdout+stderr).
pub fn run_blynklib(hardware: SocketAddr, token: &str, mode: &str) -> Result<(bool, String)> {
    run_blynklib_with(hardware, token, mode, None)
}

/// Run the blynklib driver script, over TLS trusting `ca_file` when given.
pub fn run_blynklib_with(
    addr: SocketAddr,
    token: &str,
    mode: &str,
    ca_file: Option<&Path>,
) -> Result<(bool, String)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/blynk_client.py");
    let mut command = Command::new("python3");
    command
        .arg(script)
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .arg(token)
        .arg(mode);
    if let Some(ca) = ca_file {
        command.arg(ca);
    }
    let out = command
        .output()
        .context("running python3 (is blynklib 0.2.6 installed? see .ci/run)")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text))
}

/// A real S3-compatible server (moto, from PyPI) on a loopback port, stopped on drop.
pub struct S3Server {
    child: std::process::Child,
    pub endpoint: String,
}

impl S3Server {
    pub async fn start(bucket: &str) -> Result<S3Server> {
        let port = free_port();
        let child = std::process::Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("starting moto_server (pip install 'moto[server]')")?;
        let server = S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        let bucket_url = format!("{}/{bucket}", server.endpoint);
        let created = eventually(Duration::from_secs(30), || async {
            let resp = client.put(&bucket_url).send().await.ok()?;
            resp.status().is_success().then_some(())
        })
        .await;
        if created.is_none() {
            bail!(
                "moto_server on {} did not create bucket {bucket}",
                server.endpoint
            );
        }
        Ok(server)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl S3Server {
    /// The AWS_* variables that point a pinhouse server at this S3 server.
    pub fn env(&self) -> [(&'static str, &str); 5] {
        [
            ("AWS_ENDPOINT", self.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
        ]
    }

    /// A client of `bucket` on this server.
    pub fn client(&self, bucket: &str) -> object_store::aws::AmazonS3 {
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .build()
            .unwrap()
    }
}
