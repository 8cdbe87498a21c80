//! Notifications: an organization's webhooks, and the outbox of deliveries.
//!
//! When a device logs an event whose template event has notifications on (`email`, `webhook`,
//! `push`), [`ControlPlane::log_device_event`] calls [`ControlPlane::enqueue_event_notifications`]:
//! after the event's own limits (`notify_every_nth`, `notify_period_secs`) and the rate limits
//! ([`NotifyLimits`]: per organization and per e-mail recipient, per hour), one row per
//! delivery goes into the `notifications` table, and the delivery worker (`crate::notifier`)
//! sends it with retries. Nothing is lost on restart: the outbox is the database.
//!
//! - E-mail goes to the device's owner, or to the admins of the device's organization when the
//!   device has no owner.
//! - Webhooks: every webhook of the device's organization that carries the channel (`webhook`
//!   for the `webhook` setting, `push` for `push`; push and SMS go to a gateway behind a
//!   webhook). The payload is JSON, signed with the webhook's secret (see `crate::notifier`).
//!
//! Rows over a rate limit are kept with status `rate_limited` (visible in the API), not sent.

use crate::control::Narrow;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Notify;

use super::device_events::DeviceEvent;
use super::error::{ControlError, Result};
use super::template_events::EventNotifications;
use super::{ControlPlane, now_ms, rfc3339};

/// Channels a webhook may carry.
pub const WEBHOOK_CHANNELS: [&str; 3] = ["webhook", "push", "sms"];

/// Most webhooks per organization.
pub const MAX_WEBHOOKS_PER_ORG: i64 = 20;

/// Most e-mail recipients of one notification (admins of a large organization).
const MAX_EMAIL_RECIPIENTS: i64 = 50;

/// Rate limits of notifications; rows over a limit are stored as `rate_limited`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifyLimits {
    /// Notifications of one organization per rolling hour (all channels).
    pub per_org_per_hour: u32,
    /// E-mails to one address per rolling hour.
    pub per_recipient_per_hour: u32,
}

impl Default for NotifyLimits {
    fn default() -> Self {
        Self {
            per_org_per_hour: 600,
            per_recipient_per_hour: 60,
        }
    }
}

/// Shared state of the outbox: limits and the worker's wake-up.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    limits: parking_lot::RwLock<NotifyLimits>,
    wake: Notify,
}

pub(crate) type SharedOutbox = Arc<Outbox>;

/// A webhook as the API shows it (the secret only at creation).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Webhook {
    pub id: u32,
    pub org_id: u32,
    pub name: String,
    pub url: String,
    /// Channels it carries: `webhook`, `push`, `sms`.
    pub channels: Vec<String>,
    /// RFC 3339.
    pub created_at: String,
    /// The HMAC-SHA256 key of `X-Pinhouse-Signature`; present only in the answer to creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// Body of `POST /api/v1/webhooks`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    pub name: String,
    /// `http://` or `https://` URL that receives `POST` requests.
    pub url: String,
    /// Default `["webhook"]`.
    #[serde(default)]
    pub channels: Option<Vec<String>>,
    /// Organization (default: the caller's); must be within the caller's reach.
    #[serde(default)]
    pub org_id: Option<u32>,
}

#[derive(sqlx::FromRow)]
struct WebhookRow {
    #[sqlx(try_from = "i64")]
    id: u32,
    #[sqlx(try_from = "i64")]
    org_id: u32,
    name: String,
    url: String,
    channels: String,
    created_at: i64,
}

impl From<WebhookRow> for Webhook {
    fn from(r: WebhookRow) -> Self {
        Self {
            id: r.id,
            org_id: r.org_id,
            name: r.name,
            url: r.url,
            channels: serde_json::from_str(&r.channels).unwrap_or_default(),
            created_at: rfc3339(r.created_at),
            secret: None,
        }
    }
}

/// One delivery in the outbox, as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Notification {
    #[sqlx(try_from = "i64")]
    pub id: u32,
    #[sqlx(try_from = "i64")]
    pub org_id: u32,
    #[sqlx(try_from = "crate::control::NullableInt")]
    pub device_id: Option<u32>,
    #[sqlx(try_from = "crate::control::NullableInt")]
    pub event_id: Option<u32>,
    /// `email`, `webhook`, `push` or `sms`.
    pub channel: String,
    /// E-mail address (e-mail channel).
    pub recipient: Option<String>,
    #[sqlx(try_from = "crate::control::NullableInt")]
    pub webhook_id: Option<u32>,
    pub subject: String,
    /// `pending`, `delivered`, `failed` or `rate_limited`.
    pub status: String,
    #[sqlx(try_from = "i64")]
    pub attempts: u32,
    pub last_error: Option<String>,
    /// RFC 3339.
    #[sqlx(skip)]
    pub created_at: String,
    /// RFC 3339, once delivered.
    #[sqlx(skip)]
    pub delivered_at: Option<String>,
    #[serde(skip)]
    created_ms: i64,
    #[serde(skip)]
    delivered_ms: Option<i64>,
}

const NOTIFICATION_COLUMNS: &str = "id, org_id, device_id, event_id, channel, recipient, webhook_id, subject, status, attempts, last_error, created_at AS created_ms, delivered_at AS delivered_ms";

impl Notification {
    fn finish(mut self) -> Self {
        self.created_at = rfc3339(self.created_ms);
        self.delivered_at = self.delivered_ms.map(rfc3339);
        self
    }
}

/// A delivery due now, with what the worker needs to send it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueDelivery {
    #[sqlx(try_from = "i64")]
    pub id: u32,
    pub channel: String,
    pub recipient: Option<String>,
    pub subject: String,
    pub body: String,
    #[sqlx(try_from = "i64")]
    pub attempts: u32,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
}

/// What the worker reports about one attempt.
#[derive(Debug, Clone)]
pub enum DeliveryOutcome {
    Delivered,
    /// Try again at `retry_at_ms`.
    Retry {
        error: String,
        retry_at_ms: i64,
    },
    /// Give up.
    Failed {
        error: String,
    },
}

/// Checks a webhook URL: absolute http(s) with a host, no credentials, no fragment.
fn validate_url(url: &str) -> Result<()> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| ControlError::validation("url must start with http:// or https://"))?;
    let host = rest.split(['/', '?']).next().unwrap_or("");
    if host.is_empty()
        || host.contains('@')
        || url.contains('#')
        || url.chars().any(char::is_whitespace)
    {
        return Err(ControlError::validation(
            "url must name a host, without user info, fragment or spaces",
        ));
    }
    if url.len() > 2000 {
        return Err(ControlError::validation("url is longer than 2000 bytes"));
    }
    Ok(())
}

impl ControlPlane {
    /// Sets the notification rate limits.
    pub fn set_notify_limits(&self, limits: NotifyLimits) {
        *self.outbox.limits.write() = limits;
    }

    /// Waits until a notification is queued (the delivery worker's wake-up).
    pub async fn notification_queued(&self) {
        self.outbox.wake.notified().await;
    }

    /// Creates a webhook in `org_id` (already authorized) with a fresh secret.
    pub async fn create_webhook(
        &self,
        org_id: u32,
        created_by: u32,
        new: &NewWebhook,
    ) -> Result<Webhook> {
        let name = new.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(ControlError::validation("name must be 1 to 100 characters"));
        }
        validate_url(new.url.trim())?;
        let mut channels = new
            .channels
            .clone()
            .unwrap_or_else(|| vec!["webhook".to_owned()]);
        channels.sort();
        channels.dedup();
        if channels.is_empty()
            || channels
                .iter()
                .any(|c| !WEBHOOK_CHANNELS.contains(&c.as_str()))
        {
            return Err(ControlError::validation(format!(
                "channels must be a non-empty list of {WEBHOOK_CHANNELS:?}"
            )));
        }
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhooks WHERE org_id = $1")
            .bind(i64::from(org_id))
            .fetch_one(&self.pool)
            .await?;
        if count >= MAX_WEBHOOKS_PER_ORG {
            return Err(ControlError::validation(format!(
                "an organization has at most {MAX_WEBHOOKS_PER_ORG} webhooks"
            )));
        }
        let secret = super::secrets::bearer_token();
        let row: WebhookRow = sqlx::query_as(
            "INSERT INTO webhooks (org_id, name, url, secret, channels, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             RETURNING id, org_id, name, url, channels, created_at",
        )
        .bind(i64::from(org_id))
        .bind(name)
        .bind(new.url.trim())
        .bind(&secret)
        .bind(serde_json::to_string(&channels).unwrap_or_else(|_| "[]".into()))
        .bind(i64::from(created_by))
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await?;
        let mut hook = Webhook::from(row);
        hook.secret = Some(secret);
        Ok(hook)
    }

    /// Webhooks of these organizations.
    pub async fn webhooks(&self, org_ids: &[u32]) -> Result<Vec<Webhook>> {
        let mut out = Vec::new();
        for org_id in org_ids {
            let rows: Vec<WebhookRow> = sqlx::query_as(
                "SELECT id, org_id, name, url, channels, created_at FROM webhooks
                 WHERE org_id = $1 ORDER BY id",
            )
            .bind(i64::from(*org_id))
            .fetch_all(&self.pool)
            .await?;
            out.extend(rows.into_iter().map(Webhook::from));
        }
        Ok(out)
    }

    /// One webhook, by id (authorization is the caller's business).
    pub async fn webhook(&self, id: u32) -> Result<Option<Webhook>> {
        let row: Option<WebhookRow> = sqlx::query_as(
            "SELECT id, org_id, name, url, channels, created_at FROM webhooks WHERE id = $1",
        )
        .bind(i64::from(id))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(Webhook::from))
    }

    /// Deletes a webhook (its pending deliveries go with it).
    pub async fn delete_webhook(&self, id: u32) -> Result<()> {
        sqlx::query("DELETE FROM webhooks WHERE id = $1")
            .bind(i64::from(id))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Queues a test delivery to a webhook (`type: "ping"`).
    pub async fn ping_webhook(&self, hook: &Webhook) -> Result<Notification> {
        let payload = json!({
            "type": "ping",
            "org_id": hook.org_id,
            "webhook_id": hook.id,
            "sent_at": rfc3339(now_ms()),
        });
        let id = self
            .insert_notification(
                hook.org_id,
                None,
                None,
                "webhook",
                None,
                Some(hook.id),
                "ping",
                &payload.to_string(),
                "pending",
            )
            .await?;
        self.outbox.wake.notify_one();
        self.notification(id)
            .await?
            .ok_or_else(|| ControlError::internal("queued notification vanished"))
    }

    /// Deliveries of these organizations, newest first.
    pub async fn notifications(
        &self,
        org_ids: &[u32],
        status: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Notification>> {
        if org_ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids =
            serde_json::to_string(org_ids).map_err(|e| ControlError::internal(e.to_string()))?;
        let sql = format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications
             WHERE org_id IN ({}) AND ($2 IS NULL OR status = $2)
             ORDER BY id DESC LIMIT $3",
            self.backend.json_ids("$1")
        );
        let rows = sqlx::query_as::<_, Notification>(sqlx::AssertSqlSafe(sql))
            .bind(ids)
            .bind(status)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(Notification::finish).collect())
    }

    async fn notification(&self, id: u32) -> Result<Option<Notification>> {
        let row: Option<Notification> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE id = $1"
        )))
        .bind(i64::from(id))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(Notification::finish))
    }

    #[allow(clippy::too_many_arguments)]
    async fn insert_notification(
        &self,
        org_id: u32,
        device_id: Option<u32>,
        event_id: Option<u32>,
        channel: &str,
        recipient: Option<&str>,
        webhook_id: Option<u32>,
        subject: &str,
        body: &str,
        status: &str,
    ) -> Result<u32> {
        let now = now_ms();
        sqlx::query_scalar::<_, i64>(
            "INSERT INTO notifications (org_id, device_id, event_id, channel, recipient, webhook_id,
                 subject, body, status, next_attempt_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        )
        .bind(i64::from(org_id))
        .bind(device_id.map(i64::from))
        .bind(event_id.map(i64::from))
        .bind(channel)
        .bind(recipient)
        .bind(webhook_id.map(i64::from))
        .bind(subject)
        .bind(body)
        .bind(status)
        .bind(now)
        .bind(now)
        .fetch_one(&self.pool)
        .await?
        .narrow()
    }

    /// Status for a new delivery under the rate limits: `pending` or `rate_limited`.
    async fn rate_status(&self, org_id: u32, recipient: Option<&str>) -> Result<&'static str> {
        let limits = *self.outbox.limits.read();
        let hour_ago = now_ms() - 3_600_000;
        let org_count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM notifications
             WHERE org_id = $1 AND created_at >= $2 AND status != 'rate_limited'",
        )
        .bind(i64::from(org_id))
        .bind(hour_ago)
        .fetch_one(&self.pool)
        .await?;
        if org_count >= i64::from(limits.per_org_per_hour) {
            return Ok("rate_limited");
        }
        if let Some(to) = recipient {
            let to_count: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM notifications
                 WHERE recipient = $1 AND created_at >= $2 AND status != 'rate_limited'",
            )
            .bind(to)
            .bind(hour_ago)
            .fetch_one(&self.pool)
            .await?;
            if to_count >= i64::from(limits.per_recipient_per_hour) {
                return Ok("rate_limited");
            }
        }
        Ok("pending")
    }

    /// Queues one delivery under the rate limits: `true` if pending, `false` if rate-limited
    /// (kept as `rate_limited`, logged).
    #[allow(clippy::too_many_arguments)]
    async fn queue(
        &self,
        org_id: u32,
        device_id: Option<u32>,
        event_id: Option<u32>,
        channel: &str,
        recipient: Option<&str>,
        webhook_id: Option<u32>,
        subject: &str,
        body: &str,
    ) -> Result<bool> {
        let status = self.rate_status(org_id, recipient).await?;
        self.insert_notification(
            org_id, device_id, event_id, channel, recipient, webhook_id, subject, body, status,
        )
        .await?;
        if status == "pending" {
            return Ok(true);
        }
        tracing::warn!(
            org_id,
            channel,
            recipient,
            webhook_id,
            subject,
            "notification rate-limited"
        );
        Ok(false)
    }

    /// The addresses of the enabled admins of an organization (at most 50).
    async fn admin_emails(&self, org_id: u32) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT email FROM users WHERE org_id = $1 AND role = 'admin' AND disabled = 0 ORDER BY id LIMIT $2",
        )
        .bind(i64::from(org_id))
        .bind(MAX_EMAIL_RECIPIENTS)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Queues an e-mail from an automation to `to` (default: the organization's admins).
    /// Returns how many were queued (rate-limited ones not counted).
    pub async fn enqueue_email(
        &self,
        org_id: u32,
        to: Option<&[String]>,
        subject: &str,
        text: &str,
    ) -> Result<usize> {
        let recipients = match to {
            Some(list) => list.to_vec(),
            None => self.admin_emails(org_id).await?,
        };
        let mut queued = 0;
        for address in &recipients {
            queued += usize::from(
                self.queue(
                    org_id,
                    None,
                    None,
                    "email",
                    Some(address),
                    None,
                    subject,
                    text,
                )
                .await?,
            );
        }
        if queued > 0 {
            self.outbox.wake.notify_one();
        }
        Ok(queued)
    }

    /// Queues a `POST` of `payload` (JSON) to webhook `webhook_id` of `org_id`. Returns whether
    /// it was queued (not rate-limited); 404 when the webhook is not the organization's.
    pub async fn enqueue_webhook(
        &self,
        org_id: u32,
        webhook_id: u32,
        subject: &str,
        payload: &str,
    ) -> Result<bool> {
        let owner: Option<u32> =
            sqlx::query_scalar::<_, i64>("SELECT org_id FROM webhooks WHERE id = $1")
                .bind(i64::from(webhook_id))
                .fetch_optional(&self.pool)
                .await?
                .narrow()?;
        if owner != Some(org_id) {
            return Err(ControlError::not_found(format!(
                "webhook {webhook_id} not found"
            )));
        }
        let queued = self
            .queue(
                org_id,
                None,
                None,
                "webhook",
                None,
                Some(webhook_id),
                subject,
                payload,
            )
            .await?;
        if queued {
            self.outbox.wake.notify_one();
        }
        Ok(queued)
    }

    /// Queues the notifications of a device event per its template event's settings and
    /// limits. Returns how many deliveries were queued (rate-limited rows not counted).
    pub async fn enqueue_event_notifications(
        &self,
        template_id: &str,
        event: &DeviceEvent,
    ) -> Result<usize> {
        let settings: Option<(String, Option<i64>, Option<i64>)> = sqlx::query_as(
            "SELECT notifications, notify_period_secs, notify_every_nth FROM template_events
             WHERE template_id = $1 AND code = $2",
        )
        .bind(template_id)
        .bind(&event.code)
        .fetch_optional(&self.pool)
        .await?;
        let Some((channels, period_secs, every_nth)) = settings else {
            return Ok(0);
        };
        let channels: EventNotifications = serde_json::from_str(&channels).unwrap_or_default();
        if !(channels.email || channels.webhook || channels.push) {
            return Ok(0);
        }
        // The event's own limits: every Nth occurrence, at most once per period.
        let now = now_ms();
        let (occurrences, last): (i64, Option<i64>) = sqlx::query_as(
            "INSERT INTO event_notify_state (device_id, code, occurrences) VALUES ($1, $2, 1)
             ON CONFLICT (device_id, code) DO UPDATE SET occurrences = event_notify_state.occurrences + 1
             RETURNING occurrences, last_notified_at",
        )
        .bind(i64::from(event.device_id))
        .bind(&event.code)
        .fetch_one(&self.pool)
        .await?;
        let nth = every_nth.unwrap_or(1).max(1);
        let period_ms = period_secs.unwrap_or(0).saturating_mul(1000);
        if occurrences % nth != 0 || last.is_some_and(|at| now - at < period_ms) {
            tracing::debug!(device_id = event.device_id, code = %event.code, occurrences, "event notification skipped by its limits");
            return Ok(0);
        }
        sqlx::query(
            "UPDATE event_notify_state SET last_notified_at = $1 WHERE device_id = $2 AND code = $3",
        )
        .bind(now)
        .bind(i64::from(event.device_id))
        .bind(&event.code)
        .execute(&self.pool)
        .await?;

        let (org_id, device_name, owner): (i64, String, Option<i64>) =
            sqlx::query_as("SELECT org_id, name, owner_user_id FROM devices WHERE id = $1")
                .bind(i64::from(event.device_id))
                .fetch_one(&self.pool)
                .await?;
        let (org_id, owner): (u32, Option<u32>) = (org_id.narrow()?, owner.narrow()?);
        let subject = format!(
            "[pinhouse] {}: {} on {device_name}",
            event.severity, event.name
        );
        let mut queued = 0;
        if channels.email {
            let recipients: Vec<String> = match owner {
                Some(user) => {
                    sqlx::query_scalar("SELECT email FROM users WHERE id = $1 AND disabled = 0")
                        .bind(i64::from(user))
                        .fetch_all(&self.pool)
                        .await?
                }
                None => self.admin_emails(org_id).await?,
            };
            let text = format!(
                "{name} ({severity}) on device {device_name} (id {device_id}) at {at}.\n{description}\n\nEvent code: {code}\n",
                name = event.name,
                severity = event.severity,
                device_id = event.device_id,
                at = event.created_at,
                description = event.description.as_deref().unwrap_or(""),
                code = event.code,
            );
            for to in &recipients {
                queued += usize::from(
                    self.queue(
                        org_id,
                        Some(event.device_id),
                        Some(event.id),
                        "email",
                        Some(to),
                        None,
                        &subject,
                        &text,
                    )
                    .await?,
                );
            }
        }
        for (wanted, channel) in [(channels.webhook, "webhook"), (channels.push, "push")] {
            if !wanted {
                continue;
            }
            let hooks: Vec<u32> = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!(
                "SELECT w.id FROM webhooks w
                     WHERE w.org_id = $1 AND $2 IN ({}) ORDER BY w.id",
                self.backend.json_strings("w.channels")
            )))
            .bind(i64::from(org_id))
            .bind(channel)
            .fetch_all(&self.pool)
            .await?
            .narrow()?;
            let payload = json!({
                "type": "device.event",
                "channel": channel,
                "org_id": org_id,
                "device": {"id": event.device_id, "name": device_name},
                "event": {
                    "id": event.id, "code": event.code, "name": event.name,
                    "severity": event.severity, "description": event.description,
                    "created_at": event.created_at,
                },
                "subject": subject,
            })
            .to_string();
            for hook in hooks {
                queued += usize::from(
                    self.queue(
                        org_id,
                        Some(event.device_id),
                        Some(event.id),
                        channel,
                        None,
                        Some(hook),
                        &subject,
                        &payload,
                    )
                    .await?,
                );
            }
        }
        if queued > 0 {
            self.outbox.wake.notify_one();
        }
        Ok(queued)
    }

    /// Deliveries due now (pending, next attempt passed), oldest first.
    pub async fn due_deliveries(&self, limit: u32) -> Result<Vec<DueDelivery>> {
        Ok(sqlx::query_as(
            "SELECT n.id, n.channel, n.recipient, n.subject, n.body, n.attempts,
                    w.url AS webhook_url, w.secret AS webhook_secret
             FROM notifications n LEFT JOIN webhooks w ON w.id = n.webhook_id
             WHERE n.status = 'pending' AND n.next_attempt_at <= $1
             ORDER BY n.next_attempt_at LIMIT $2",
        )
        .bind(now_ms())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records the outcome of one delivery attempt.
    pub async fn record_delivery(&self, id: u32, outcome: &DeliveryOutcome) -> Result<()> {
        let now = now_ms();
        let query = match outcome {
            DeliveryOutcome::Delivered => sqlx::query(
                "UPDATE notifications SET status = 'delivered', attempts = attempts + 1,
                     delivered_at = $1, last_error = NULL WHERE id = $2",
            )
            .bind(now)
            .bind(i64::from(id)),
            DeliveryOutcome::Retry { error, retry_at_ms } => sqlx::query(
                "UPDATE notifications SET attempts = attempts + 1, next_attempt_at = $1, last_error = $2
                 WHERE id = $3",
            )
            .bind(retry_at_ms)
            .bind(error)
            .bind(i64::from(id)),
            DeliveryOutcome::Failed { error } => sqlx::query(
                "UPDATE notifications SET status = 'failed', attempts = attempts + 1, last_error = $1
                 WHERE id = $2",
            )
            .bind(error)
            .bind(i64::from(id)),
        };
        query.execute(&self.pool).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls() {
        for ok in [
            "http://127.0.0.1:9000/hook",
            "https://example.com",
            "https://h.example/x?y=1",
        ] {
            assert!(validate_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ftp://x",
            "http://",
            "https://user:pw@host/",
            "http://h/#x",
            "http://h/ a",
            "example.com",
        ] {
            assert!(validate_url(bad).is_err(), "{bad}");
        }
    }
}
