//! The notification delivery worker: sends what the control plane queued in its outbox
//! (`notifications` table) — e-mail over SMTP (lettre), webhooks over HTTP (reqwest) — and
//! records each attempt.
//!
//! - **Retries:** a failed attempt that may succeed later (connection refused, timeout, HTTP
//!   5xx/408/429, SMTP 4xx) is retried after 1 s, 2 s, 4 s, … (at most 5 min) with ±20 %
//!   jitter, up to [`MAX_ATTEMPTS`] attempts; a permanent failure (HTTP 4xx, SMTP 5xx, a bad
//!   address, no SMTP server configured) fails the delivery at once. Attempts, the last error
//!   and the final status are in `GET /api/v1/notifications`.
//! - **Webhook requests:** `POST <url>` with the JSON payload and
//!   `X-Pinhouse-Delivery: <id>`, `X-Pinhouse-Channel: webhook|push|sms`,
//!   `X-Pinhouse-Timestamp: <unix seconds>`,
//!   `X-Pinhouse-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`. A
//!   receiver recomputes the signature with the webhook's secret and rejects stale timestamps.
//!   Redirects are not followed; each request has a 10 s time limit.
//! - The worker wakes when something is queued and polls every second for retries; the outbox
//!   is the database, so nothing is lost across restarts.

use std::time::Duration;

use futures::StreamExt;
use hmac::{Hmac, Mac};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rand::Rng;
use sha2::Sha256;
use tokio::sync::watch;

use crate::control::{ControlPlane, DeliveryOutcome, DueDelivery, now_ms};

/// Attempts before a delivery is marked failed.
pub const MAX_ATTEMPTS: u32 = 8;

/// Deliveries taken per round.
const BATCH: u32 = 64;

/// Deliveries in flight at once.
const CONCURRENCY: usize = 16;

/// Longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Time limit of one webhook request.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// Time limit of one SMTP conversation.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings of the worker.
#[derive(Debug, Clone, Default)]
pub struct NotifierConfig {
    /// `smtp://host:port`, `smtp://user:pass@host:587?tls=required`, `smtps://host:465`;
    /// `None`: e-mail notifications fail with a clear error.
    pub smtp_url: Option<String>,
    /// The `From` of e-mails, e.g. `pinhouse <alerts@example.com>`.
    pub from: Option<String>,
}

/// Why the worker cannot start.
#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    /// The SMTP URL does not parse.
    #[error("invalid SMTP URL (--smtp-url): {0}")]
    SmtpUrl(String),
    /// The sender address does not parse.
    #[error("invalid sender address (--smtp-from) {0:?}: {1}")]
    From(String, String),
    /// The HTTP client cannot be built.
    #[error("HTTP client: {0}")]
    Http(String),
}

/// The delivery worker.
pub struct Notifier {
    control: ControlPlane,
    http: reqwest::Client,
    mailer: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("smtp", &self.mailer.is_some())
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

/// One attempt's failure.
enum AttemptError {
    /// May succeed later.
    Transient(String),
    /// Will not succeed.
    Permanent(String),
}

/// The `X-Pinhouse-Signature` value of `body` sent at `timestamp` (unix seconds).
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Wait before attempt `attempt + 1` (after `attempt` failed attempts): 1 s · 2^(attempt-1),
/// at most [`MAX_BACKOFF`], ±20 % jitter.
fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_secs(1u64 << attempt.saturating_sub(1).min(16)).min(MAX_BACKOFF);
    base.mul_f64(rand::rng().random_range(0.8..1.2))
}

impl Notifier {
    /// The worker over `control`'s outbox.
    pub fn new(control: ControlPlane, config: &NotifierConfig) -> Result<Self, NotifierError> {
        let mailer = match config
            .smtp_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
        {
            Some(url) => Some(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| NotifierError::SmtpUrl(e.to_string()))?
                    .timeout(Some(SMTP_TIMEOUT))
                    .build(),
            ),
            None => None,
        };
        let from_text = config
            .from
            .clone()
            .unwrap_or_else(|| "pinhouse <pinhouse@localhost>".to_owned());
        let from = from_text
            .parse()
            .map_err(|e: lettre::address::AddressError| {
                NotifierError::From(from_text.clone(), e.to_string())
            })?;
        let http = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("pinhouse/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| NotifierError::Http(e.to_string()))?;
        Ok(Self {
            control,
            http,
            mailer,
            from,
        })
    }

    /// Deliver until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(smtp = self.mailer.is_some(), "notification worker started");
        loop {
            if *shutdown.borrow() {
                break;
            }
            match self.control.due_deliveries(BATCH).await {
                Ok(due) => {
                    let full = due.len() == BATCH as usize;
                    futures::stream::iter(due)
                        .for_each_concurrent(CONCURRENCY, |d| self.deliver(d))
                        .await;
                    if full {
                        continue;
                    }
                }
                Err(err) => tracing::warn!(%err, "cannot read the notification outbox"),
            }
            tokio::select! {
                () = self.control.notification_queued() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    async fn deliver(&self, d: DueDelivery) {
        let result = match d.channel.as_str() {
            "email" => self.send_email(&d).await,
            _ => self.send_webhook(&d).await,
        };
        let attempt = d.attempts + 1;
        let outcome = match result {
            Ok(()) => {
                tracing::info!(notification_id = d.id, channel = %d.channel, attempt, "notification delivered");
                DeliveryOutcome::Delivered
            }
            Err(AttemptError::Transient(error)) if attempt < MAX_ATTEMPTS => {
                let wait = backoff(attempt);
                tracing::warn!(notification_id = d.id, channel = %d.channel, attempt, %error, retry_in_ms = wait.as_millis() as u64, "notification attempt failed; will retry");
                DeliveryOutcome::Retry {
                    error,
                    retry_at_ms: now_ms() + wait.as_millis() as i64,
                }
            }
            Err(AttemptError::Transient(error) | AttemptError::Permanent(error)) => {
                tracing::warn!(notification_id = d.id, channel = %d.channel, attempt, %error, "notification failed");
                DeliveryOutcome::Failed { error }
            }
        };
        if let Err(err) = self.control.record_delivery(d.id, &outcome).await {
            tracing::error!(notification_id = d.id, %err, "cannot record a notification attempt");
        }
    }

    async fn send_email(&self, d: &DueDelivery) -> Result<(), AttemptError> {
        let Some(mailer) = &self.mailer else {
            return Err(AttemptError::Permanent(
                "e-mail is not configured: start the server with --smtp-url".into(),
            ));
        };
        let to: Mailbox = d
            .recipient
            .as_deref()
            .unwrap_or_default()
            .parse()
            .map_err(|e| AttemptError::Permanent(format!("bad recipient address: {e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(d.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(d.body.clone())
            .map_err(|e| AttemptError::Permanent(format!("cannot build the e-mail: {e}")))?;
        match mailer.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(AttemptError::Permanent(format!("SMTP: {e}"))),
            Err(e) => Err(AttemptError::Transient(format!("SMTP: {e}"))),
        }
    }

    async fn send_webhook(&self, d: &DueDelivery) -> Result<(), AttemptError> {
        let (Some(url), Some(secret)) = (&d.webhook_url, &d.webhook_secret) else {
            return Err(AttemptError::Permanent("the webhook was deleted".into()));
        };
        let timestamp = now_ms() / 1000;
        let response = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("x-pinhouse-delivery", d.id.to_string())
            .header("x-pinhouse-channel", &d.channel)
            .header("x-pinhouse-timestamp", timestamp.to_string())
            .header(
                "x-pinhouse-signature",
                signature(secret, timestamp, d.body.as_bytes()),
            )
            .body(d.body.clone())
            .send()
            .await
            .map_err(|e| AttemptError::Transient(format!("POST {url}: {e}")))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let error = format!("POST {url}: HTTP {status}");
        if status.is_server_error()
            || status == reqwest::StatusCode::REQUEST_TIMEOUT
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
        {
            Err(AttemptError::Transient(error))
        } else {
            Err(AttemptError::Permanent(error))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac secret
        assert_eq!(
            signature("secret", 1_700_000_000, br#"{"a":1}"#),
            "sha256=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
        );
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        for (attempt, secs) in [(1, 1.0), (2, 2.0), (3, 4.0), (10, 300.0), (40, 300.0)] {
            let wait = backoff(attempt).as_secs_f64();
            assert!(
                wait >= secs * 0.8 && wait <= secs * 1.2,
                "attempt {attempt}: {wait}"
            );
        }
    }
}
