//! The rollout engine: once per tick, for every running or paused shipment,
//! judges the devices already signalled, signals the pending devices of the
//! open cohorts that are online, and applies the health gate.

use crate::control::Narrow;
use bytes::BytesMut;
use pinhouse_protocol::{command, encode_fields};
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::rollout::{Gate, Tally, gate, in_window, local_minute};
use super::shipments::{SHIPMENT_SELECT, ShipmentRow};
use super::{Ota, now_ms};
use crate::control::{Result, SystemEvent};

/// Message id of the `INTERNAL ota` signal (the legacy server's choice).
const OTA_MSG_ID: u16 = 7777;

/// Devices signalled per shipment per tick, so one huge cohort cannot stall the loop.
const SIGNALS_PER_TICK: i64 = 500;

pub(super) async fn run(ota: Ota, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(ota.inner.config.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(err) = ota.step().await {
                    tracing::warn!(%err, "OTA engine step failed; retrying next tick");
                }
            }
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
        }
    }
}

/// A signalled device with what it reported since.
#[derive(sqlx::FromRow)]
struct InFlight {
    #[sqlx(try_from = "i64")]
    device_id: u32,
    #[sqlx(try_from = "i64")]
    org_id: u32,
    #[sqlx(try_from = "i64")]
    attempts: u32,
    sent_at: Option<i64>,
    reported_at: Option<i64>,
    build: Option<String>,
    connected_at: Option<i64>,
    info_at: Option<i64>,
}

/// Hex SHA-256 of a download token (what the database keeps).
pub(super) fn link_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Ota {
    /// One pass over every active shipment.
    pub(super) async fn step(&self) -> Result<()> {
        let rows: Vec<ShipmentRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{SHIPMENT_SELECT} WHERE s.status IN ('running', 'paused') ORDER BY s.id"
        )))
        .fetch_all(self.pool())
        .await?;
        for shipment in rows {
            let now = now_ms();
            self.judge_in_flight(&shipment, now).await?;
            if shipment.status == "running" {
                self.signal_pending(&shipment, now).await?;
            }
            self.apply_gate(&shipment, now).await?;
        }
        Ok(())
    }

    async fn judge_in_flight(&self, s: &ShipmentRow, now: i64) -> Result<()> {
        let rows: Vec<InFlight> = sqlx::query_as(
            "SELECT d.device_id, dev.org_id, d.attempts, d.sent_at, d.reported_at,
                    st.build, st.connected_at, st.info_at
             FROM ota_shipment_devices d
             JOIN devices dev ON dev.id = d.device_id
             LEFT JOIN device_status st ON st.device_id = d.device_id
             WHERE d.shipment_id = $1 AND d.status IN ('sent', 'downloading')",
        )
        .bind(i64::from(s.id))
        .fetch_all(self.pool())
        .await?;
        for d in rows {
            let sent_at = d.sent_at.unwrap_or(0);
            // A new session after the signal whose info message has arrived.
            let came_back = d.connected_at.is_some_and(|c| c > sent_at)
                && d.info_at.zip(d.connected_at).is_some_and(|(i, c)| i >= c);
            let build = d.build.as_deref().unwrap_or("");
            if came_back && build == s.build {
                let reported = d.reported_at.unwrap_or_else(|| d.info_at.unwrap_or(now));
                if d.reported_at.is_none() {
                    sqlx::query(
                        "UPDATE ota_shipment_devices SET reported_at = $1, updated_at = $2
                         WHERE shipment_id = $3 AND device_id = $4",
                    )
                    .bind(reported)
                    .bind(now)
                    .bind(i64::from(s.id))
                    .bind(i64::from(d.device_id))
                    .execute(self.pool())
                    .await?;
                    self.timeline(
                        d.device_id,
                        "ota_installed",
                        "info",
                        &format!(
                            "firmware {} ({}) reported after the update",
                            s.version, s.build
                        ),
                    )
                    .await;
                }
                let online = self.inner.ingest.is_online(d.device_id);
                let healthy =
                    s.health_grace_ms == 0 || self.sent_data_since(d.org_id, d.device_id, reported);
                if online && healthy {
                    self.finish(s, d.device_id, "success", None, now).await?;
                } else if now > reported + s.health_grace_ms {
                    let why = if online {
                        format!(
                            "updated to build {:?} but sent no data within {} s",
                            s.build,
                            s.health_grace_ms / 1000
                        )
                    } else {
                        format!("updated to build {:?} but went offline", s.build)
                    };
                    self.finish(s, d.device_id, "failed", Some(why), now)
                        .await?;
                }
            } else if came_back {
                if d.attempts < s.attempts_limit {
                    let why = format!(
                        "came back with build {build:?} instead of {:?} (attempt {} of {}); signalling again",
                        s.build, d.attempts, s.attempts_limit
                    );
                    sqlx::query(
                        "UPDATE ota_shipment_devices SET status = 'pending', reason = $1, link_hash = NULL,
                             link_expires_at = NULL, updated_at = $2
                         WHERE shipment_id = $3 AND device_id = $4",
                    )
                    .bind(&why)
                    .bind(now)
                    .bind(i64::from(s.id))
                    .bind(i64::from(d.device_id))
                    .execute(self.pool())
                    .await?;
                    tracing::warn!(
                        shipment_id = s.id,
                        device_id = d.device_id,
                        "OTA attempt failed: {why}"
                    );
                    self.timeline(d.device_id, "ota_retry", "warning", &why)
                        .await;
                } else {
                    let why = format!(
                        "still on build {build:?} after {} attempts (attempts limit reached)",
                        d.attempts
                    );
                    self.finish(s, d.device_id, "failed", Some(why), now)
                        .await?;
                }
            } else if now > sent_at + s.device_timeout_ms {
                let why = format!(
                    "did not come back with the new firmware within {} s of the signal",
                    s.device_timeout_ms / 1000
                );
                self.finish(s, d.device_id, "timed_out", Some(why), now)
                    .await?;
            }
        }
        Ok(())
    }

    /// Whether the device stored any value at or after `since_ms`.
    fn sent_data_since(&self, org_id: u32, device_id: u32, since_ms: i64) -> bool {
        self.inner
            .ingest
            .storage()
            .last_values(org_id, device_id)
            .iter()
            .any(|(_, v)| v.ts_us / 1000 >= since_ms)
    }

    async fn finish(
        &self,
        s: &ShipmentRow,
        device_id: u32,
        status: &str,
        reason: Option<String>,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE ota_shipment_devices SET status = $1, reason = $2, finished_at = $3, updated_at = $4,
                 link_hash = NULL, link_expires_at = NULL
             WHERE shipment_id = $5 AND device_id = $6",
        )
        .bind(status)
        .bind(&reason)
        .bind(now)
        .bind(now)
        .bind(i64::from(s.id))
        .bind(i64::from(device_id))
        .execute(self.pool())
        .await?;
        let text = match &reason {
            Some(why) => format!("firmware {} ({}): {status}: {why}", s.version, s.build),
            None => format!("firmware {} ({}) installed and healthy", s.version, s.build),
        };
        if status == "success" {
            tracing::info!(shipment_id = s.id, device_id, "OTA update succeeded");
            self.timeline(device_id, "ota_success", "info", &text).await;
        } else {
            tracing::warn!(
                shipment_id = s.id,
                device_id,
                status,
                "OTA update failed: {text}"
            );
            self.timeline(device_id, "ota_failed", "warning", &text)
                .await;
        }
        Ok(())
    }

    async fn signal_pending(&self, s: &ShipmentRow, now: i64) -> Result<()> {
        let window = s.window();
        // Online devices of open cohorts whose info for the current session has arrived (so the
        // old info of this very session is never mistaken for the device coming back).
        // With the device's Time Zone metadata: the window is in the device's local time.
        let pending: Vec<(i64, Option<String>)> = sqlx::query_as(
            "SELECT d.device_id, tz.value FROM ota_shipment_devices d
             JOIN device_status st ON st.device_id = d.device_id
             LEFT JOIN device_metadata tz ON tz.device_id = d.device_id AND tz.name = 'Time Zone'
             WHERE d.shipment_id = $1 AND d.status = 'pending' AND d.cohort <= $2
               AND st.online = 1 AND st.info_at >= st.connected_at
             ORDER BY d.cohort, d.device_id LIMIT $3",
        )
        .bind(i64::from(s.id))
        .bind(i64::from(s.current_cohort))
        .bind(SIGNALS_PER_TICK)
        .fetch_all(self.pool())
        .await?;
        for (device_id, time_zone) in pending {
            let device_id: u32 = device_id.narrow()?;
            if !in_window(local_minute(now, time_zone.as_deref()), window) {
                continue;
            }
            if !self.inner.ingest.is_online(device_id) {
                continue;
            }
            let mut raw = [0u8; 24];
            rand::rng().fill_bytes(&mut raw);
            let token = hex::encode(raw);
            let url = format!("{}/ota/download/{token}", self.inner.config.public_url);
            let expires = now + self.inner.config.link_ttl.as_millis() as i64;
            sqlx::query(
                "UPDATE ota_shipment_devices SET status = 'sent', attempts = attempts + 1, link_hash = $1,
                     link_expires_at = $2, sent_at = $3, updated_at = $4
                 WHERE shipment_id = $5 AND device_id = $6 AND status = 'pending'",
            )
            .bind(link_hash(&token))
            .bind(expires)
            .bind(now)
            .bind(now)
            .bind(i64::from(s.id))
            .bind(i64::from(device_id))
            .execute(self.pool())
            .await?;
            let mut frame = BytesMut::new();
            encode_fields(
                command::INTERNAL,
                OTA_MSG_ID,
                &[b"ota", url.as_bytes()],
                &mut frame,
            );
            if self.inner.ingest.push_frame(device_id, frame.freeze()) == 0 {
                // The session went away (or its queue is full): back to pending, attempt not used.
                sqlx::query(
                    "UPDATE ota_shipment_devices SET status = 'pending', attempts = attempts - 1,
                         link_hash = NULL, link_expires_at = NULL, sent_at = NULL, updated_at = $1
                     WHERE shipment_id = $2 AND device_id = $3",
                )
                .bind(now)
                .bind(i64::from(s.id))
                .bind(i64::from(device_id))
                .execute(self.pool())
                .await?;
                continue;
            }
            tracing::info!(shipment_id = s.id, device_id, "OTA signal sent");
            self.timeline(
                device_id,
                "ota_sent",
                "info",
                &format!("firmware {} ({}) offered to the device", s.version, s.build),
            )
            .await;
        }
        Ok(())
    }

    async fn apply_gate(&self, s: &ShipmentRow, now: i64) -> Result<()> {
        let counts: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, count(*) FROM ota_shipment_devices
             WHERE shipment_id = $1 AND cohort = $2 GROUP BY status",
        )
        .bind(i64::from(s.id))
        .bind(i64::from(s.current_cohort))
        .fetch_all(self.pool())
        .await?;
        let mut tally = Tally::default();
        for (status, n) in counts {
            let n = n as u64;
            match status.as_str() {
                "pending" => tally.pending += n,
                "sent" | "downloading" => tally.in_flight += n,
                "success" => tally.success += n,
                _ => tally.failed += n,
            }
        }
        let count = s.cohorts().len();
        let index = s.current_cohort as usize;
        match gate(tally, s.failure_threshold, index, count) {
            Gate::Wait => {}
            Gate::Advance => {
                sqlx::query(
                    "UPDATE ota_shipments SET current_cohort = current_cohort + 1, updated_at = $1
                     WHERE id = $2 AND current_cohort = $3",
                )
                .bind(now)
                .bind(i64::from(s.id))
                .bind(i64::from(s.current_cohort))
                .execute(self.pool())
                .await?;
                tracing::info!(shipment_id = s.id, cohort = index + 2, "OTA cohort opened");
            }
            Gate::Complete => {
                self.set_final(s, "completed", None, now).await?;
                tracing::info!(shipment_id = s.id, "OTA shipment completed");
            }
            Gate::Halt(reason) => {
                tracing::warn!(shipment_id = s.id, %reason, "OTA shipment halted");
                self.set_final(s, "halted", Some(reason), now).await?;
            }
        }
        Ok(())
    }

    async fn set_final(
        &self,
        s: &ShipmentRow,
        status: &str,
        reason: Option<String>,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE ota_shipments SET status = $1, status_reason = $2, updated_at = $3
             WHERE id = $4 AND status IN ('running', 'paused')",
        )
        .bind(status)
        .bind(reason)
        .bind(now)
        .bind(i64::from(s.id))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Record an OTA step on the device's event timeline (best effort: a
    /// failure is logged, the rollout goes on).
    pub(super) async fn timeline(&self, device_id: u32, code: &str, severity: &str, text: &str) {
        let name = match code {
            "ota_sent" => "OTA update offered",
            "ota_download" => "OTA download",
            "ota_installed" => "OTA firmware reported",
            "ota_success" => "OTA update succeeded",
            "ota_retry" => "OTA update retried",
            _ => "OTA update failed",
        };
        let event = SystemEvent {
            code,
            name,
            severity,
            description: Some(text),
        };
        let res = self.inner.control.log_system_event(device_id, event).await;
        if let Err(err) = res {
            tracing::warn!(%err, device_id, code, "cannot record OTA event on the device timeline");
        }
    }
}
