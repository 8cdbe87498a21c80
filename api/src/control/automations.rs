//! Automations: a trigger and the actions it runs, per organization. This module keeps and
//! validates them; the engine that evaluates them on the ingest stream is `crate::automations`.
//!
//! Triggers (`"type"`):
//! - `datastream`: a device's virtual pin compared with a number (`>`, `>=`, `<`, `<=`, `==`,
//!   `!=`). Edge-triggered: fires when the condition becomes true (first value, or after a value
//!   for which it was false), not on every value while it stays true.
//! - `device_status`: a device (or any device of the organization) comes `online` / goes
//!   `offline`.
//! - `event`: a device (or any device of the organization) logs an event code.
//! - `schedule`: every day (or the listed ISO weekdays, 1 = Monday) at `HH:MM` in an IANA time
//!   zone (`Europe/Amsterdam`), daylight saving included.
//!
//! Actions (`"type"`, at most [`MAX_ACTIONS`]):
//! - `write`: a value to a virtual pin of a device or of every device with a tag (stored, sent
//!   to the device over the Blynk protocol, shown live);
//! - `notify`: an e-mail (to the listed addresses, default the organization's admins);
//! - `webhook`: a signed `POST` to one of the organization's webhooks.
//!
//! `cooldown_secs` is the least time between two firings (default 0).

use crate::control::Narrow;
use serde::{Deserialize, Serialize};

use super::error::{ControlError, Result};
use super::{ControlPlane, now_ms, rfc3339};

/// Most actions per automation.
pub const MAX_ACTIONS: usize = 10;

/// Most automations per organization.
pub const MAX_AUTOMATIONS_PER_ORG: i64 = 500;

/// Longest cooldown (one day).
pub const MAX_COOLDOWN_SECS: u32 = 86_400;

/// A comparison of a `datastream` trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Comparison {
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
}

impl Comparison {
    /// `value <op> threshold`.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Self::Gt => value > threshold,
            Self::Ge => value >= threshold,
            Self::Lt => value < threshold,
            Self::Le => value <= threshold,
            Self::Eq => value == threshold,
            Self::Ne => value != threshold,
        }
    }
}

/// A device status of a `device_status` trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusChange {
    Online,
    Offline,
}

/// What starts an automation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Trigger {
    /// A device's virtual pin crosses a threshold.
    Datastream {
        device_id: u32,
        /// `V0` … `V255`.
        pin: String,
        op: Comparison,
        value: f64,
    },
    /// A device (or any device of the organization when `device_id` is absent) changes status.
    DeviceStatus {
        #[serde(default)]
        device_id: Option<u32>,
        status: StatusChange,
    },
    /// A device (or any device of the organization) logs an event.
    Event {
        #[serde(default)]
        device_id: Option<u32>,
        code: String,
    },
    /// Every day, or on the listed ISO weekdays (1 = Monday … 7 = Sunday), at `at` (`HH:MM`)
    /// local time of `time_zone` (IANA name).
    Schedule {
        at: String,
        time_zone: String,
        #[serde(default)]
        days: Option<Vec<u8>>,
    },
}

/// What an automation does when it fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AutomationAction {
    /// Write `value` to virtual pin `pin` of a device or of every device with `tag`.
    Write {
        #[serde(default)]
        device_id: Option<u32>,
        #[serde(default)]
        tag: Option<String>,
        pin: String,
        value: String,
    },
    /// Send an e-mail to `to` (default: the organization's admins).
    Notify {
        #[serde(default)]
        to: Option<Vec<String>>,
        subject: String,
        #[serde(default)]
        message: String,
    },
    /// Send a signed `POST` to webhook `webhook_id` of the organization.
    Webhook { webhook_id: u32 },
}

/// An automation as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Automation {
    pub id: u32,
    pub org_id: u32,
    pub name: String,
    pub enabled: bool,
    pub trigger: Trigger,
    pub actions: Vec<AutomationAction>,
    pub cooldown_secs: u32,
    /// RFC 3339.
    pub created_at: String,
    pub updated_at: String,
    /// RFC 3339 of the last firing.
    pub last_fired_at: Option<String>,
    pub fire_count: u64,
    /// What went wrong in the last firing, if anything.
    pub last_error: Option<String>,
}

/// Body of `POST /api/v1/automations` and `PUT /api/v1/automations/{id}`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAutomation {
    pub name: String,
    #[serde(default = "enabled_default")]
    pub enabled: bool,
    pub trigger: Trigger,
    pub actions: Vec<AutomationAction>,
    #[serde(default)]
    pub cooldown_secs: u32,
    /// Organization (default: the caller's; creation only).
    #[serde(default)]
    pub org_id: Option<u32>,
}

fn enabled_default() -> bool {
    true
}

#[derive(sqlx::FromRow)]
struct AutomationRow {
    #[sqlx(try_from = "i64")]
    id: u32,
    #[sqlx(try_from = "i64")]
    org_id: u32,
    name: String,
    #[sqlx(try_from = "crate::control::Flag")]
    enabled: bool,
    trigger: String,
    actions: String,
    #[sqlx(try_from = "i64")]
    cooldown_secs: u32,
    created_at: i64,
    updated_at: i64,
    last_fired_at: Option<i64>,
    fire_count: i64,
    last_error: Option<String>,
}

const AUTOMATION_COLUMNS: &str = "id, org_id, name, enabled, trigger, actions, cooldown_secs, created_at, updated_at, last_fired_at, fire_count, last_error";

impl TryFrom<AutomationRow> for Automation {
    type Error = ControlError;

    fn try_from(r: AutomationRow) -> Result<Self> {
        let corrupt = |what: &str, e: serde_json::Error| {
            ControlError::internal(format!(
                "automation {}: stored {what} unreadable: {e}",
                r.id
            ))
        };
        Ok(Self {
            id: r.id,
            org_id: r.org_id,
            name: r.name.clone(),
            enabled: r.enabled,
            trigger: serde_json::from_str(&r.trigger).map_err(|e| corrupt("trigger", e))?,
            actions: serde_json::from_str(&r.actions).map_err(|e| corrupt("actions", e))?,
            cooldown_secs: r.cooldown_secs,
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
            last_fired_at: r.last_fired_at.map(rfc3339),
            fire_count: r.fire_count.max(0) as u64,
            last_error: r.last_error,
        })
    }
}

/// The virtual pin number of `V0` … `V255`.
pub fn virtual_pin(text: &str) -> Option<u8> {
    let digits = text.strip_prefix(['V', 'v'])?;
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `HH:MM` → minutes after midnight.
pub fn parse_at(text: &str) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

impl ControlPlane {
    /// Checks an automation against its organization: devices, webhooks and tags must be
    /// there, pins virtual, times and zones valid.
    async fn validate_automation(&self, org_id: u32, new: &NewAutomation) -> Result<()> {
        let name = new.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(ControlError::validation("name must be 1 to 100 characters"));
        }
        if new.cooldown_secs > MAX_COOLDOWN_SECS {
            return Err(ControlError::validation(format!(
                "cooldown_secs must be at most {MAX_COOLDOWN_SECS}"
            )));
        }
        let device_in_org = |device_id: u32| async move {
            let org: Option<u32> =
                sqlx::query_scalar::<_, i64>("SELECT org_id FROM devices WHERE id = $1")
                    .bind(i64::from(device_id))
                    .fetch_optional(&self.pool)
                    .await?
                    .narrow()?;
            if org == Some(org_id) {
                Ok(())
            } else {
                Err(ControlError::validation(format!(
                    "device {device_id} is not a device of organization {org_id}"
                )))
            }
        };
        let pin = |text: &str| {
            virtual_pin(text).ok_or_else(|| {
                ControlError::validation(format!("pin {text:?} is not a virtual pin V0…V255"))
            })
        };
        match &new.trigger {
            Trigger::Datastream {
                device_id,
                pin: p,
                value,
                ..
            } => {
                device_in_org(*device_id).await?;
                pin(p)?;
                if !value.is_finite() {
                    return Err(ControlError::validation("value must be a finite number"));
                }
            }
            Trigger::DeviceStatus { device_id, .. } => {
                if let Some(id) = device_id {
                    device_in_org(*id).await?;
                }
            }
            Trigger::Event { device_id, code } => {
                if let Some(id) = device_id {
                    device_in_org(*id).await?;
                }
                if code.trim().is_empty() || code.len() > 50 {
                    return Err(ControlError::validation("code must be 1 to 50 characters"));
                }
            }
            Trigger::Schedule {
                at,
                time_zone,
                days,
            } => {
                parse_at(at).ok_or_else(|| {
                    ControlError::validation(format!("at {at:?} is not a time HH:MM"))
                })?;
                time_zone.parse::<chrono_tz::Tz>().map_err(|_| {
                    ControlError::validation(format!(
                        "time_zone {time_zone:?} is not an IANA time zone (e.g. Europe/Amsterdam)"
                    ))
                })?;
                if let Some(days) = days
                    && (days.is_empty() || days.iter().any(|d| !(1..=7).contains(d)))
                {
                    return Err(ControlError::validation(
                        "days must list ISO weekdays 1 (Monday) … 7 (Sunday)",
                    ));
                }
            }
        }
        if new.actions.is_empty() || new.actions.len() > MAX_ACTIONS {
            return Err(ControlError::validation(format!(
                "actions must list 1 to {MAX_ACTIONS} actions"
            )));
        }
        for action in &new.actions {
            match action {
                AutomationAction::Write {
                    device_id,
                    tag,
                    pin: p,
                    value,
                } => {
                    match (device_id, tag) {
                        (Some(id), None) => device_in_org(*id).await?,
                        (None, Some(tag)) if !tag.trim().is_empty() && tag.len() <= 64 => {}
                        _ => {
                            return Err(ControlError::validation(
                                "a write action takes exactly one of device_id, tag",
                            ));
                        }
                    }
                    pin(p)?;
                    if value.len() > 1024 {
                        return Err(ControlError::validation(
                            "a written value is at most 1024 bytes",
                        ));
                    }
                }
                AutomationAction::Notify {
                    to,
                    subject,
                    message,
                } => {
                    if subject.trim().is_empty() || subject.len() > 200 || message.len() > 4000 {
                        return Err(ControlError::validation(
                            "a notify action takes a subject of 1 to 200 bytes and a message of at most 4000",
                        ));
                    }
                    if let Some(to) = to
                        && (to.is_empty()
                            || to.len() > 20
                            || to.iter().any(|a| !a.contains('@') || a.len() > 254))
                    {
                        return Err(ControlError::validation(
                            "to must list 1 to 20 e-mail addresses",
                        ));
                    }
                }
                AutomationAction::Webhook { webhook_id } => {
                    let org: Option<u32> =
                        sqlx::query_scalar::<_, i64>("SELECT org_id FROM webhooks WHERE id = $1")
                            .bind(i64::from(*webhook_id))
                            .fetch_optional(&self.pool)
                            .await?
                            .narrow()?;
                    if org != Some(org_id) {
                        return Err(ControlError::validation(format!(
                            "webhook {webhook_id} is not a webhook of organization {org_id}"
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Creates an automation in `org_id` (already authorized).
    pub async fn create_automation(
        &self,
        org_id: u32,
        created_by: u32,
        new: &NewAutomation,
    ) -> Result<Automation> {
        self.validate_automation(org_id, new).await?;
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM automations WHERE org_id = $1")
            .bind(i64::from(org_id))
            .fetch_one(&self.pool)
            .await?;
        if count >= MAX_AUTOMATIONS_PER_ORG {
            return Err(ControlError::validation(format!(
                "an organization has at most {MAX_AUTOMATIONS_PER_ORG} automations"
            )));
        }
        let now = now_ms();
        let row: AutomationRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO automations (org_id, name, enabled, trigger, actions, cooldown_secs, created_by, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {AUTOMATION_COLUMNS}"
        )))
        .bind(i64::from(org_id))
        .bind(new.name.trim())
        .bind(i64::from(new.enabled))
        .bind(json(&new.trigger)?)
        .bind(json(&new.actions)?)
        .bind(i64::from(new.cooldown_secs))
        .bind(i64::from(created_by))
        .bind(now)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        self.signals.automations_changed.notify_one();
        row.try_into()
    }

    /// Replaces an automation's definition (its organization stays).
    pub async fn update_automation(&self, id: u32, new: &NewAutomation) -> Result<Automation> {
        let current = self
            .automation(id)
            .await?
            .ok_or_else(|| ControlError::not_found(format!("automation {id} not found")))?;
        self.validate_automation(current.org_id, new).await?;
        let row: AutomationRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE automations SET name = $1, enabled = $2, trigger = $3, actions = $4, cooldown_secs = $5, updated_at = $6
             WHERE id = $7 RETURNING {AUTOMATION_COLUMNS}"
        )))
        .bind(new.name.trim())
        .bind(i64::from(new.enabled))
        .bind(json(&new.trigger)?)
        .bind(json(&new.actions)?)
        .bind(i64::from(new.cooldown_secs))
        .bind(now_ms())
        .bind(i64::from(id))
        .fetch_one(&self.pool)
        .await?;
        self.signals.automations_changed.notify_one();
        row.try_into()
    }

    /// Deletes an automation.
    pub async fn delete_automation(&self, id: u32) -> Result<()> {
        sqlx::query("DELETE FROM automations WHERE id = $1")
            .bind(i64::from(id))
            .execute(&self.pool)
            .await?;
        self.signals.automations_changed.notify_one();
        Ok(())
    }

    /// One automation by id (authorization is the caller's business).
    pub async fn automation(&self, id: u32) -> Result<Option<Automation>> {
        let row: Option<AutomationRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {AUTOMATION_COLUMNS} FROM automations WHERE id = $1"
        )))
        .bind(i64::from(id))
        .fetch_optional(&self.pool)
        .await?;
        row.map(Automation::try_from).transpose()
    }

    /// Automations of these organizations by id, or of every organization when `None` (the
    /// engine).
    pub async fn automations(&self, org_ids: Option<&[u32]>) -> Result<Vec<Automation>> {
        let rows: Vec<AutomationRow> = match org_ids {
            None => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {AUTOMATION_COLUMNS} FROM automations ORDER BY id"
                )))
                .fetch_all(&self.pool)
                .await?
            }
            Some(orgs) => {
                let mut out = Vec::new();
                for org in orgs {
                    let rows: Vec<AutomationRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "SELECT {AUTOMATION_COLUMNS} FROM automations WHERE org_id = $1 ORDER BY id"
                    )))
                    .bind(i64::from(*org))
                    .fetch_all(&self.pool)
                    .await?;
                    out.extend(rows);
                }
                out
            }
        };
        rows.into_iter().map(Automation::try_from).collect()
    }

    /// Records a firing: when, and what went wrong (`None`: every action ran).
    pub async fn record_automation_fired(
        &self,
        id: u32,
        at_ms: i64,
        error: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE automations SET last_fired_at = $1, fire_count = fire_count + 1, last_error = $2
             WHERE id = $3",
        )
        .bind(at_ms)
        .bind(error)
        .bind(i64::from(id))
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

fn json<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| ControlError::internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_and_actions_parse_from_json() {
        let t: Trigger = serde_json::from_str(
            r#"{"type":"datastream","device_id":3,"pin":"V1","op":">=","value":30}"#,
        )
        .unwrap();
        assert_eq!(
            t,
            Trigger::Datastream {
                device_id: 3,
                pin: "V1".into(),
                op: Comparison::Ge,
                value: 30.0
            }
        );
        let t: Trigger = serde_json::from_str(
            r#"{"type":"schedule","at":"07:30","time_zone":"Europe/Amsterdam","days":[1,5]}"#,
        )
        .unwrap();
        assert!(matches!(t, Trigger::Schedule { .. }));
        assert!(serde_json::from_str::<Trigger>(r#"{"type":"datastream","device_id":3}"#).is_err());
        assert!(serde_json::from_str::<Trigger>(r#"{"type":"nope"}"#).is_err());
        let a: AutomationAction =
            serde_json::from_str(r#"{"type":"write","tag":"pumps","pin":"V2","value":"1"}"#)
                .unwrap();
        assert!(matches!(a, AutomationAction::Write { tag: Some(_), .. }));
    }

    #[test]
    fn comparisons_pins_and_times() {
        assert!(Comparison::Gt.holds(31.0, 30.0));
        assert!(!Comparison::Gt.holds(30.0, 30.0));
        assert!(Comparison::Le.holds(30.0, 30.0));
        assert!(Comparison::Ne.holds(1.0, 2.0));
        assert_eq!(virtual_pin("V0"), Some(0));
        assert_eq!(virtual_pin("v255"), Some(255));
        for bad in ["V256", "D1", "V", "V-1", "V1x", "V0001"] {
            assert_eq!(virtual_pin(bad), None, "{bad}");
        }
        assert_eq!(parse_at("07:30"), Some(450));
        assert_eq!(parse_at("23:59"), Some(1439));
        for bad in ["7:30", "24:00", "12:60", "1230", "ab:cd"] {
            assert_eq!(parse_at(bad), None, "{bad}");
        }
    }
}
