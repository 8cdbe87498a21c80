//! The device timeline: events logged by devices (`logEvent` over the protocol or HTTP), system
//! events (online, offline, OTA) and their resolution.
//!
//! Device-logged events follow Blynk's limits: the code must be declared by the device's
//! template, at most [`MAX_EVENTS_PER_DAY`] per device per UTC day, at least
//! [`MIN_EVENT_INTERVAL_MS`] between two events of the same code, descriptions of at most
//! [`MAX_EVENT_DESCRIPTION`] characters (longer ones are refused, as Blynk discards them).

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::ControlPlane;
use super::error::{ControlError, Result};
use super::time::{now_ms, rfc3339};

/// Device-logged events per device per UTC day.
pub const MAX_EVENTS_PER_DAY: i64 = 100;

/// Least time between two device-logged events of the same code.
pub const MIN_EVENT_INTERVAL_MS: i64 = 1_000;

/// Longest description a device may send (characters).
pub const MAX_EVENT_DESCRIPTION: usize = 300;

/// Most events one timeline request returns.
pub const MAX_TIMELINE_PAGE: u32 = 1_000;

const DAY_MS: i64 = 86_400_000;

/// An entry of the device timeline.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct DeviceEvent {
    #[sqlx(try_from = "i64")]
    pub id: u32,
    #[sqlx(try_from = "i64")]
    pub device_id: u32,
    /// `"device"` (logged by the device) or `"system"` (online, offline, OTA).
    pub source: String,
    pub code: String,
    pub name: String,
    pub severity: String,
    pub description: Option<String>,
    /// RFC 3339.
    #[sqlx(skip)]
    pub created_at: String,
    /// RFC 3339; `null` while open.
    #[sqlx(skip)]
    pub resolved_at: Option<String>,
    /// The user who resolved it; `null` if open or resolved by the device.
    #[sqlx(try_from = "crate::control::NullableInt")]
    pub resolved_by_user_id: Option<u32>,
}

#[derive(sqlx::FromRow)]
struct EventRow {
    #[sqlx(flatten)]
    event: DeviceEvent,
    created_at: i64,
    resolved_at: Option<i64>,
}

impl From<EventRow> for DeviceEvent {
    fn from(row: EventRow) -> Self {
        DeviceEvent {
            created_at: rfc3339(row.created_at),
            resolved_at: row.resolved_at.map(rfc3339),
            ..row.event
        }
    }
}

/// Filter of a timeline request (`GET /api/v1/devices/{id}/events?from=&to=&open=&limit=`).
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimelineQuery {
    /// Unix ms, inclusive.
    pub from: Option<i64>,
    /// Unix ms, exclusive.
    pub to: Option<i64>,
    /// Only unresolved events.
    #[serde(default)]
    pub open: bool,
    /// Page size, default and maximum [`MAX_TIMELINE_PAGE`] (1000).
    pub limit: Option<u32>,
}

const EVENT_COLUMNS: &str = "id, device_id, source, code, name, severity, description, created_at, \
     resolved_at, resolved_by_user_id";

fn event_error(status: StatusCode, code: &'static str, message: &str) -> ControlError {
    ControlError::http(status, code, message)
}

/// A server-side event on a device timeline (online, offline, OTA steps).
#[derive(Debug, Clone, Copy)]
pub struct SystemEvent<'a> {
    pub code: &'a str,
    pub name: &'a str,
    /// `info`, `warning` or `critical`.
    pub severity: &'a str,
    pub description: Option<&'a str>,
}

/// Writes a system event inside the caller's transaction (or on a pool connection).
pub(crate) async fn insert_system_event(
    conn: &mut sqlx::AnyConnection,
    device_id: u32,
    event: SystemEvent<'_>,
    at_ms: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO device_events (device_id, source, code, name, severity, description, created_at)
         VALUES ($1, 'system', $2, $3, $4, $5, $6)",
    )
    .bind(i64::from(device_id))
    .bind(event.code)
    .bind(event.name)
    .bind(event.severity)
    .bind(event.description)
    .bind(at_ms)
    .execute(conn)
    .await?;
    Ok(())
}

impl ControlPlane {
    /// Records a server-side event on a device's timeline, now.
    pub async fn log_system_event(&self, device_id: u32, event: SystemEvent<'_>) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        insert_system_event(&mut conn, device_id, event, now_ms()).await
    }

    /// A device logged event `code` (Blynk `logEvent`), with an optional description.
    ///
    /// Errors (status, code, message as the Blynk HTTP API words it):
    /// 400 `event_code_missing` "Event code is not provided.",
    /// 400 `unknown_event` "Can't find Event with this code in Product template",
    /// 400 `description_too_long`, 429 `event_limit` (per day), 429 `event_too_frequent`
    /// (same code within 1 s), 404 for an unknown device.
    pub async fn log_device_event(
        &self,
        device_id: u32,
        code: &str,
        description: Option<&str>,
    ) -> Result<DeviceEvent> {
        let code = code.trim();
        if code.is_empty() {
            return Err(event_error(
                StatusCode::BAD_REQUEST,
                "event_code_missing",
                "Event code is not provided.",
            ));
        }
        let description = description.map(str::trim).filter(|d| !d.is_empty());
        if description.is_some_and(|d| d.chars().count() > MAX_EVENT_DESCRIPTION) {
            return Err(event_error(
                StatusCode::BAD_REQUEST,
                "description_too_long",
                "Event description is longer than 300 characters.",
            ));
        }
        let template_id: Option<String> =
            sqlx::query_scalar("SELECT template_id FROM devices WHERE id = $1")
                .bind(i64::from(device_id))
                .fetch_optional(&self.pool)
                .await?;
        let Some(template_id) = template_id else {
            return Err(ControlError::not_found(format!(
                "device {device_id} not found"
            )));
        };
        let declared: Option<(String, String)> = sqlx::query_as(
            "SELECT name, severity FROM template_events WHERE template_id = $1 AND code = $2",
        )
        .bind(&template_id)
        .bind(code)
        .fetch_optional(&self.pool)
        .await?;
        let Some((name, severity)) = declared else {
            return Err(event_error(
                StatusCode::BAD_REQUEST,
                "unknown_event",
                "Can't find Event with this code in Product template",
            ));
        };
        let now = now_ms();
        let day_start = now - now.rem_euclid(DAY_MS);
        let (today, last_same): (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), MAX(CASE WHEN code = $3 THEN created_at END) FROM device_events
             WHERE device_id = $1 AND source = 'device' AND created_at >= $2",
        )
        .bind(i64::from(device_id))
        .bind(day_start.min(now - MIN_EVENT_INTERVAL_MS))
        .bind(code)
        .fetch_one(&self.pool)
        .await?;
        // `today` may include events of the previous day's last second; count exactly only
        // when close to the limit.
        if today >= MAX_EVENTS_PER_DAY {
            let exact: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM device_events
                 WHERE device_id = $1 AND source = 'device' AND created_at >= $2",
            )
            .bind(i64::from(device_id))
            .bind(day_start)
            .fetch_one(&self.pool)
            .await?;
            if exact >= MAX_EVENTS_PER_DAY {
                return Err(event_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "event_limit",
                    "Event limit of 100 events per device per day reached.",
                ));
            }
        }
        if last_same.is_some_and(|at| now - at < MIN_EVENT_INTERVAL_MS) {
            return Err(event_error(
                StatusCode::TOO_MANY_REQUESTS,
                "event_too_frequent",
                "Events with the same code must be at least 1 second apart.",
            ));
        }
        let row: EventRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO device_events (device_id, source, code, name, severity, description, created_at)
             VALUES ($1, 'device', $2, $3, $4, $5, $6) RETURNING {EVENT_COLUMNS}"
        )))
        .bind(i64::from(device_id))
        .bind(code)
        .bind(name)
        .bind(severity)
        .bind(description)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        tracing::debug!(device_id, code, "device event logged");
        let event: DeviceEvent = row.into();
        // The event is recorded; a failure to queue its notifications is logged, not returned.
        if let Err(err) = self.enqueue_event_notifications(&template_id, &event).await {
            tracing::warn!(device_id, code, %err, "cannot queue the event's notifications");
        }
        if self.has_listeners() {
            let org_id = self.device_org(device_id).await?;
            self.signal(super::activity::Activity::Event {
                org_id,
                device_id,
                code: event.code.clone(),
                event_id: event.id,
            });
        }
        Ok(event)
    }

    /// A device resolved event `code` (Blynk `resolveEvent`): the most recent open one, or all
    /// open ones of that code when `all`. Returns how many were resolved.
    pub async fn resolve_device_event(&self, device_id: u32, code: &str, all: bool) -> Result<u64> {
        let code = code.trim();
        let now = now_ms();
        let sql = if all {
            "UPDATE device_events SET resolved_at = $3
             WHERE device_id = $1 AND code = $2 AND source = 'device' AND resolved_at IS NULL"
        } else {
            "UPDATE device_events SET resolved_at = $3 WHERE id = (
                 SELECT id FROM device_events
                 WHERE device_id = $1 AND code = $2 AND source = 'device' AND resolved_at IS NULL
                 ORDER BY created_at DESC, id DESC LIMIT 1)"
        };
        let resolved = sqlx::query(sql)
            .bind(i64::from(device_id))
            .bind(code)
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(resolved)
    }

    /// A user resolves one event of a device's timeline. `Ok(None)` if the device has no such
    /// event; already resolved events are returned unchanged.
    pub async fn resolve_event_by_user(
        &self,
        device_id: u32,
        event_id: u32,
        user_id: u32,
    ) -> Result<Option<DeviceEvent>> {
        sqlx::query(
            "UPDATE device_events SET resolved_at = $1, resolved_by_user_id = $2
             WHERE id = $3 AND device_id = $4 AND resolved_at IS NULL",
        )
        .bind(now_ms())
        .bind(i64::from(user_id))
        .bind(i64::from(event_id))
        .bind(i64::from(device_id))
        .execute(&self.pool)
        .await?;
        let row: Option<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM device_events WHERE id = $1 AND device_id = $2"
        )))
        .bind(i64::from(event_id))
        .bind(i64::from(device_id))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(DeviceEvent::from))
    }

    /// The timeline of a device, newest first. Not scoped by organization: callers check that
    /// the device is visible first.
    pub async fn device_events(
        &self,
        device_id: u32,
        query: &TimelineQuery,
    ) -> Result<Vec<DeviceEvent>> {
        let limit = query
            .limit
            .unwrap_or(MAX_TIMELINE_PAGE)
            .clamp(1, MAX_TIMELINE_PAGE);
        let rows: Vec<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM device_events
             WHERE device_id = $1 AND created_at >= $2 AND created_at < $3
               AND ($4 = 0 OR resolved_at IS NULL)
             ORDER BY created_at DESC, id DESC LIMIT $5"
        )))
        .bind(i64::from(device_id))
        .bind(query.from.unwrap_or(i64::MIN))
        .bind(query.to.unwrap_or(i64::MAX))
        .bind(i64::from(query.open))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(DeviceEvent::from).collect())
    }
}
