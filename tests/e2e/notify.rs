//! Notifications end to end: a device logs an event whose template event notifies by e-mail
//! and webhook → the e-mail arrives at a real SMTP server (Python `aiosmtpd`) and the webhook
//! at a local HTTP receiver with a valid HMAC signature, after a retry; over the rate limit,
//! deliveries are held back and shown as `rate_limited`.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::server::{ADMIN_EMAIL, Server, eventually, free_port};

/// A real SMTP server that prints every message it receives (aiosmtpd's Debugging handler).
struct SmtpServer {
    child: Child,
    port: u16,
    lines: mpsc::UnboundedReceiver<String>,
}

impl SmtpServer {
    async fn start() -> Result<SmtpServer> {
        let port = free_port();
        let mut child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .env("PYTHONUNBUFFERED", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("python3 -m aiosmtpd (pip install aiosmtpd)")?;
        let stdout = child.stdout.take().context("aiosmtpd stdout")?;
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Ready when it accepts connections.
        let ready = eventually(Duration::from_secs(20), || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        })
        .await;
        if ready.is_none() {
            bail!("aiosmtpd did not listen on {port}");
        }
        Ok(SmtpServer { child, port, lines })
    }

    /// Lines printed until one contains `needle` (the whole message so far).
    async fn wait_for(&mut self, needle: &str, within: Duration) -> Result<String> {
        let mut seen = String::new();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.recv())
                .await
                .with_context(|| format!("no {needle:?} from the SMTP server; got:\n{seen}"))?
                .context("aiosmtpd exited")?;
            seen.push_str(&line);
            seen.push('\n');
            if line.contains(needle) {
                return Ok(seen);
            }
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// One request the webhook receiver got.
#[derive(Debug)]
struct Received {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A local HTTP receiver: answers 500 to the first `failures` requests, 200 afterwards, and
/// hands every request to the test.
async fn webhook_receiver(failures: usize) -> Result<(String, mpsc::UnboundedReceiver<Received>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hooks/pinhouse", listener.local_addr()?);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut served = 0usize;
        while let Ok((stream, _)) = listener.accept().await {
            let mut reader = BufReader::new(stream);
            let mut headers = Vec::new();
            let mut line = String::new();
            if reader.read_line(&mut line).await.is_err() {
                continue;
            }
            loop {
                line.clear();
                if reader.read_line(&mut line).await.unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.trim_end().split_once(':') {
                    headers.push((k.trim().to_owned(), v.trim().to_owned()));
                }
            }
            let len: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            if reader.read_exact(&mut body).await.is_err() {
                continue;
            }
            let status = if served < failures {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            served += 1;
            let mut stream = reader.into_inner();
            let _ = stream
                .write_all(
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await;
            let _ = tx.send(Received { headers, body });
        }
    });
    Ok((url, rx))
}

async fn next_request(rx: &mut mpsc::UnboundedReceiver<Received>) -> Received {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("a webhook request within 20 s")
        .expect("receiver running")
}

fn verify(secret: &str, request: &Received) {
    let timestamp = request
        .header("x-pinhouse-timestamp")
        .expect("timestamp header");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(&request.body);
    let expected = format!("sha256={}", hex_lower(&mac.finalize().into_bytes()));
    assert_eq!(
        request.header("x-pinhouse-signature"),
        Some(expected.as_str()),
        "valid signature"
    );
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn get(server: &Server, bearer: &str, path: &str) -> Result<Value> {
    let resp = server
        .client
        .get(server.url(path))
        .bearer_auth(bearer)
        .send()
        .await?;
    let status = resp.status();
    let body: Value = resp.json().await?;
    if !status.is_success() {
        bail!("GET {path}: {status} {body}");
    }
    Ok(body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_notifications_reach_smtp_and_a_signed_webhook_with_retries_and_rate_limits() {
    let mut smtp = SmtpServer::start().await.unwrap();
    let (hook_url, mut hook_requests) = webhook_receiver(1).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let smtp_url = format!("smtp://127.0.0.1:{}", smtp.port);
    let server = Server::start_with(
        &dir.path().join("data"),
        &[
            "--smtp-url",
            &smtp_url,
            "--smtp-from",
            "pinhouse alerts <alerts@pinhouse.test>",
            "--notify-per-org-per-hour",
            "2",
        ],
    )
    .await
    .unwrap();
    let admin = server.admin_token().await.unwrap();

    let (status, template) = server
        .post_json(
            &admin,
            "/api/v1/templates",
            &json!({"name": "Boiler", "datastreams": [{"pin": 1, "name": "T", "type": "double"}],
                    "events": [{"code": "overheat", "name": "Overheat", "severity": "critical",
                                "notifications": {"email": true, "webhook": true}}]}),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{template}");
    let (status, device) = server
        .post_json(
            &admin,
            "/api/v1/devices",
            &json!({"name": "Boiler 7", "template_id": template["id"]}),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{device}");
    let token = device["token"].as_str().unwrap().to_owned();

    // A webhook; a user without notification.manage cannot create one.
    let (status, hook) = server
        .post_json(
            &admin,
            "/api/v1/webhooks",
            &json!({"name": "ops", "url": hook_url}),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 64);
    let listed = get(&server, &admin, "/api/v1/webhooks").await.unwrap();
    assert_eq!(listed[0]["url"], hook_url.as_str());
    assert!(
        listed[0].get("secret").is_none(),
        "secrets are never listed: {listed}"
    );
    let (status, body) = server
        .post_json(
            &admin,
            "/api/v1/webhooks",
            &json!({"name": "bad", "url": "ftp://x"}),
        )
        .await
        .unwrap();
    assert_eq!(status, 400, "{body}");

    // The device logs the event over the Blynk HTTP API.
    let (status, body) = server
        .get_text(&format!(
            "/external/api/logEvent?token={token}&code=overheat&description=97%20C"
        ))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");

    // The e-mail reaches the SMTP server, addressed to the admin (the device has no owner).
    let mail = smtp
        .wait_for(
            "Subject: [pinhouse] critical: Overheat on Boiler 7",
            Duration::from_secs(20),
        )
        .await
        .unwrap();
    let mail = mail + &smtp.wait_for("97 C", Duration::from_secs(5)).await.unwrap();
    assert!(mail.contains(ADMIN_EMAIL), "{mail}");
    assert!(mail.contains("alerts@pinhouse.test"), "{mail}");

    // The webhook: refused once with 500, delivered on the retry, signed both times.
    let first = next_request(&mut hook_requests).await;
    let second = next_request(&mut hook_requests).await;
    for request in [&first, &second] {
        verify(&secret, request);
        assert_eq!(request.header("x-pinhouse-channel"), Some("webhook"));
    }
    assert_eq!(first.body, second.body, "the retry sends the same payload");
    let payload: Value = serde_json::from_slice(&second.body).unwrap();
    assert_eq!(payload["type"], "device.event");
    assert_eq!(payload["event"]["code"], "overheat");
    assert_eq!(payload["event"]["description"], "97 C");
    assert_eq!(payload["device"]["name"], "Boiler 7");

    let delivered = eventually(Duration::from_secs(10), || async {
        let list = get(&server, &admin, "/api/v1/notifications?status=delivered")
            .await
            .ok()?;
        (list.as_array()?.len() == 2).then_some(list)
    })
    .await
    .expect("both deliveries recorded as delivered");
    let by_channel = |channel: &str| {
        delivered
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["channel"] == channel)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_channel("email")["attempts"], 1);
    assert_eq!(by_channel("email")["recipient"], ADMIN_EMAIL);
    assert_eq!(by_channel("webhook")["attempts"], 2, "{delivered}");

    // The organization's limit is 2 per hour: the next event's deliveries are held back.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = server
        .get_text(&format!(
            "/external/api/logEvent?token={token}&code=overheat"
        ))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let limited = eventually(Duration::from_secs(10), || async {
        let list = get(&server, &admin, "/api/v1/notifications?status=rate_limited")
            .await
            .ok()?;
        (list.as_array()?.len() == 2).then_some(list)
    })
    .await
    .expect("two rate-limited deliveries");
    assert!(
        limited
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["attempts"] == 0)
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), hook_requests.recv())
            .await
            .is_err(),
        "nothing sent over the limit"
    );
}
