//! The automation engine: evaluates the organizations' automations (`control::automations`)
//! and runs their actions.
//!
//! It listens beside ingest, never in its way: values come from the live hub's broadcast
//! channel (`Ingest::subscribe_live`), device status changes and events from the control
//! plane's activity channel, schedules from a clock tick. A slow engine misses values (it is
//! told how many and logs it); ingest never waits for it. Rules sit in memory, indexed by
//! (device, pin), and are reloaded when automations change (and every minute).
//!
//! Firing: the trigger's context (device, pin, value, …) goes to the actions, which run in a
//! task of their own, one after the other; at most [`MAX_IN_FLIGHT`] firings run at once
//! (beyond that a firing is skipped and logged). A datastream trigger is edge-triggered: it
//! fires when its condition becomes true and re-arms when a value makes it false. Writes of an
//! automation go through the same path as the HTTP API (stored, sent to the device, shown
//! live), so they can trigger other automations; edge triggering and `cooldown_secs` keep
//! such chains finite.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Datelike, Timelike, Utc};
use pinhouse_ingest::{LiveBatch, PinRef};
use pinhouse_storage::Value;
use serde_json::{Value as Json, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{Semaphore, watch};

use crate::control::{
    Activity, Automation, AutomationAction, ControlPlane, StatusChange, Trigger, now_ms, parse_at,
    rfc3339, virtual_pin,
};
use crate::state::AppState;

/// Firings whose actions may run at once.
pub const MAX_IN_FLIGHT: usize = 256;

/// How often rules are reloaded even without a change signal.
const RELOAD_EVERY: Duration = Duration::from_secs(60);

/// How often schedules are checked.
const SCHEDULE_TICK: Duration = Duration::from_secs(1);

/// A schedule trigger, parsed.
#[derive(Debug, Clone)]
struct Schedule {
    minute_of_day: u32,
    tz: chrono_tz::Tz,
    days: Option<Vec<u8>>,
}

impl Schedule {
    fn parse(trigger: &Trigger) -> Option<Self> {
        match trigger {
            Trigger::Schedule {
                at,
                time_zone,
                days,
            } => Some(Self {
                minute_of_day: parse_at(at)?,
                tz: time_zone.parse().ok()?,
                days: days.clone(),
            }),
            _ => None,
        }
    }

    /// The local day (days since the common era) on which the schedule is due at `now`, if it
    /// is due in the minute of `now`. At most once per local day, also when a daylight-saving
    /// change repeats the hour.
    fn due(&self, now: DateTime<Utc>) -> Option<i32> {
        let local = now.with_timezone(&self.tz);
        let minute = local.hour() * 60 + local.minute();
        let weekday = local.weekday().number_from_monday() as u8;
        let day_ok = self.days.as_ref().is_none_or(|d| d.contains(&weekday));
        (minute == self.minute_of_day && day_ok).then(|| local.date_naive().num_days_from_ce())
    }
}

/// One automation in memory, with its evaluation state.
#[derive(Debug)]
struct Rule {
    automation: Arc<Automation>,
    schedule: Option<Schedule>,
    /// Datastream trigger: fires on the next value that makes the condition true.
    armed: bool,
    last_fired_ms: Option<i64>,
    /// Schedule trigger: the local day it last fired on.
    last_day: Option<i32>,
}

/// What carries over a reload, per automation id.
type Carried = HashMap<u32, (Trigger, bool, Option<i64>, Option<i32>)>;

/// The rules and their indexes.
#[derive(Debug, Default)]
struct Rules {
    list: Vec<Rule>,
    /// (device id, pin column) → datastream rules.
    by_point: HashMap<(u32, u16), Vec<usize>>,
    activity: Vec<usize>,
    schedules: Vec<usize>,
}

impl Rules {
    fn build(automations: Vec<Automation>, carried: &Carried) -> Self {
        let mut rules = Rules::default();
        for automation in automations.into_iter().filter(|a| a.enabled) {
            let (armed, last_fired_ms, last_day) = carried
                .get(&automation.id)
                .filter(|(trigger, ..)| *trigger == automation.trigger)
                .map_or((true, None, None), |(_, a, f, d)| (*a, *f, *d));
            let idx = rules.list.len();
            match &automation.trigger {
                Trigger::Datastream { device_id, pin, .. } => {
                    // Virtual pins are columns 0–255.
                    let Some(pin) = virtual_pin(pin) else {
                        continue;
                    };
                    rules
                        .by_point
                        .entry((*device_id, u16::from(pin)))
                        .or_default()
                        .push(idx);
                }
                Trigger::DeviceStatus { .. } | Trigger::Event { .. } => rules.activity.push(idx),
                Trigger::Schedule { .. } => rules.schedules.push(idx),
            }
            let schedule = Schedule::parse(&automation.trigger);
            rules.list.push(Rule {
                automation: Arc::new(automation),
                schedule,
                armed,
                last_fired_ms,
                last_day,
            });
        }
        rules
    }

    fn carry(&self) -> Carried {
        self.list
            .iter()
            .map(|r| {
                (
                    r.automation.id,
                    (
                        r.automation.trigger.clone(),
                        r.armed,
                        r.last_fired_ms,
                        r.last_day,
                    ),
                )
            })
            .collect()
    }
}

/// The engine.
pub struct Engine {
    state: AppState,
    rules: Rules,
    in_flight: Arc<Semaphore>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("rules", &self.rules.list.len())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine over the server's state (control plane and ingest).
    pub fn new(state: AppState) -> Self {
        Self {
            state,
            rules: Rules::default(),
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        }
    }

    fn control(&self) -> &ControlPlane {
        &self.state.control
    }

    async fn reload(&mut self) {
        match self.control().automations(None).await {
            Ok(list) => {
                let carried = self.rules.carry();
                self.rules = Rules::build(list, &carried);
                tracing::debug!(rules = self.rules.list.len(), "automations loaded");
            }
            Err(err) => tracing::warn!(%err, "cannot load automations; keeping the old rules"),
        }
    }

    /// Evaluate until `shutdown` turns true.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        // Subscribe first, so nothing between loading and listening is missed.
        let mut live = self.state.ingest.subscribe_live();
        let mut activity = self.control().subscribe_activity();
        self.reload().await;
        tracing::info!(rules = self.rules.list.len(), "automation engine started");
        let mut reload = tokio::time::interval(RELOAD_EVERY);
        let mut tick = tokio::time::interval(SCHEDULE_TICK);
        let control = self.control().clone();
        loop {
            tokio::select! {
                batch = live.recv() => match batch {
                    Ok(batch) => self.on_values(&batch),
                    Err(RecvError::Lagged(skipped)) => {
                        tracing::warn!(skipped, "automation engine fell behind the live stream; value batches skipped");
                    }
                    Err(RecvError::Closed) => break,
                },
                signal = activity.recv() => match signal {
                    Ok(signal) => self.on_activity(&signal),
                    Err(RecvError::Lagged(skipped)) => {
                        tracing::warn!(skipped, "automation engine fell behind device activity; signals skipped");
                    }
                    Err(RecvError::Closed) => break,
                },
                () = control.automations_changed() => self.reload().await,
                _ = reload.tick() => self.reload().await,
                _ = tick.tick() => self.on_clock(Utc::now()),
                _ = shutdown.changed() => break,
            }
        }
        tracing::info!("automation engine stopped");
    }

    fn on_values(&mut self, batch: &LiveBatch) {
        if self.rules.by_point.is_empty() {
            return;
        }
        for p in batch.iter() {
            let Some(indexes) = self.rules.by_point.get(&(p.device_id, p.pin)) else {
                continue;
            };
            let number = match &p.value {
                Value::Number(n) => Some(*n),
                Value::Text(t) => t.trim().parse::<f64>().ok(),
            };
            let Some(number) = number.filter(|n| n.is_finite()) else {
                continue;
            };
            let mut fire = Vec::new();
            for &idx in indexes {
                let rule = &mut self.rules.list[idx];
                let Trigger::Datastream { op, value, .. } = &rule.automation.trigger else {
                    continue;
                };
                if rule.automation.org_id != p.org_id {
                    continue;
                }
                if op.holds(number, *value) {
                    if rule.armed {
                        rule.armed = false;
                        fire.push(idx);
                    }
                } else {
                    rule.armed = true;
                }
            }
            for idx in fire {
                let pin =
                    PinRef::from_column(p.pin).map_or_else(|| p.pin.to_string(), |r| r.to_string());
                let context = json!({
                    "trigger": "datastream", "device_id": p.device_id, "pin": pin,
                    "value": number, "ts": rfc3339(p.ts_us.div_euclid(1000)),
                });
                self.fire(idx, context);
            }
        }
    }

    fn on_activity(&mut self, signal: &Activity) {
        let mut fire = Vec::new();
        for &idx in &self.rules.activity {
            let automation = &self.rules.list[idx].automation;
            let matches = match (&automation.trigger, signal) {
                (
                    Trigger::DeviceStatus { device_id, status },
                    Activity::Online {
                        org_id,
                        device_id: d,
                    }
                    | Activity::Offline {
                        org_id,
                        device_id: d,
                    },
                ) => {
                    let online = matches!(signal, Activity::Online { .. });
                    *org_id == automation.org_id
                        && device_id.is_none_or(|id| id == *d)
                        && (*status == StatusChange::Online) == online
                }
                (
                    Trigger::Event { device_id, code },
                    Activity::Event {
                        org_id,
                        device_id: d,
                        code: c,
                        ..
                    },
                ) => {
                    *org_id == automation.org_id && device_id.is_none_or(|id| id == *d) && code == c
                }
                _ => false,
            };
            if matches {
                fire.push(idx);
            }
        }
        let context = match signal {
            Activity::Online { device_id, .. } => {
                json!({"trigger": "device_status", "device_id": device_id, "status": "online"})
            }
            Activity::Offline { device_id, .. } => {
                json!({"trigger": "device_status", "device_id": device_id, "status": "offline"})
            }
            Activity::Event {
                device_id,
                code,
                event_id,
                ..
            } => {
                json!({"trigger": "event", "device_id": device_id, "code": code, "event_id": event_id})
            }
        };
        for idx in fire {
            self.fire(idx, context.clone());
        }
    }

    fn on_clock(&mut self, now: DateTime<Utc>) {
        let mut fire = Vec::new();
        for &idx in &self.rules.schedules {
            let rule = &mut self.rules.list[idx];
            let Some(day) = rule.schedule.as_ref().and_then(|s| s.due(now)) else {
                continue;
            };
            if rule.last_day != Some(day) {
                rule.last_day = Some(day);
                fire.push(idx);
            }
        }
        for idx in fire {
            let context = match &self.rules.list[idx].automation.trigger {
                Trigger::Schedule { at, time_zone, .. } => {
                    json!({"trigger": "schedule", "at": at, "time_zone": time_zone})
                }
                _ => json!({"trigger": "schedule"}),
            };
            self.fire(idx, context);
        }
    }

    /// Runs the actions of rule `idx` in a task of their own (cooldown and the in-flight limit
    /// permitting).
    fn fire(&mut self, idx: usize, context: Json) {
        let now = now_ms();
        let rule = &mut self.rules.list[idx];
        let automation = rule.automation.clone();
        let cooldown_ms = i64::from(automation.cooldown_secs) * 1000;
        if rule.last_fired_ms.is_some_and(|at| now - at < cooldown_ms) {
            tracing::debug!(automation_id = automation.id, "automation in cooldown");
            return;
        }
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            tracing::warn!(
                automation_id = automation.id,
                "too many automations running; firing skipped"
            );
            return;
        };
        rule.last_fired_ms = Some(now);
        let state = self.state.clone();
        tokio::spawn(async move {
            let _permit = permit;
            tracing::info!(automation_id = automation.id, name = %automation.name, %context, "automation fired");
            let mut errors = Vec::new();
            for action in &automation.actions {
                if let Err(err) = run_action(&state, &automation, action, &context).await {
                    tracing::warn!(automation_id = automation.id, %err, "automation action failed");
                    errors.push(err);
                }
            }
            let error = (!errors.is_empty()).then(|| errors.join("; "));
            if let Err(err) = state
                .control
                .record_automation_fired(automation.id, now, error.as_deref())
                .await
            {
                tracing::warn!(automation_id = automation.id, %err, "cannot record an automation firing");
            }
        });
    }
}

/// Runs one action; the error says what failed, for the automation's `last_error`.
async fn run_action(
    state: &AppState,
    automation: &Automation,
    action: &AutomationAction,
    context: &Json,
) -> Result<(), String> {
    let control = &state.control;
    match action {
        AutomationAction::Write {
            device_id,
            tag,
            pin,
            value,
        } => {
            let pin_ref = PinRef::parse(pin).ok_or_else(|| format!("bad pin {pin:?}"))?;
            let targets = match (device_id, tag) {
                (Some(id), _) => vec![*id],
                (None, Some(tag)) => control
                    .device_ids_with_tag(automation.org_id, tag)
                    .await
                    .map_err(|e| e.to_string())?,
                (None, None) => Vec::new(),
            };
            for id in targets {
                let device = control
                    .device_by_id(id)
                    .await
                    .map_err(|e| e.to_string())?
                    .filter(|d| d.org_id == automation.org_id)
                    .ok_or_else(|| format!("device {id} is gone"))?;
                crate::blynk_http::write_device(state, &device, &[(pin_ref, vec![value.clone()])])
                    .await
                    .map_err(|e| format!("write {pin}={value} to device {id}: {e}"))?;
            }
            Ok(())
        }
        AutomationAction::Notify {
            to,
            subject,
            message,
        } => {
            let text = format!(
                "{message}\n\nAutomation {name} (id {id}) fired at {at}.\nTrigger: {context}\n",
                name = automation.name,
                id = automation.id,
                at = rfc3339(now_ms()),
            );
            control
                .enqueue_email(automation.org_id, to.as_deref(), subject, &text)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        }
        AutomationAction::Webhook { webhook_id } => {
            let payload = json!({
                "type": "automation.fired",
                "org_id": automation.org_id,
                "automation": {"id": automation.id, "name": automation.name},
                "trigger": context,
                "fired_at": rfc3339(now_ms()),
            })
            .to_string();
            let subject = format!("automation {}", automation.name);
            control
                .enqueue_webhook(automation.org_id, *webhook_id, &subject, &payload)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn schedule(at: &str, tz: &str, days: Option<Vec<u8>>) -> Schedule {
        Schedule::parse(&Trigger::Schedule {
            at: at.into(),
            time_zone: tz.into(),
            days,
        })
        .unwrap()
    }

    #[test]
    fn schedules_follow_the_local_time_zone() {
        // 07:30 in Amsterdam is 06:30 UTC in winter (CET) and 05:30 UTC in summer (CEST).
        let s = schedule("07:30", "Europe/Amsterdam", None);
        let winter = Utc.with_ymd_and_hms(2026, 1, 15, 6, 30, 20).unwrap();
        let summer = Utc.with_ymd_and_hms(2026, 7, 15, 5, 30, 0).unwrap();
        assert!(s.due(winter).is_some());
        assert!(s.due(summer).is_some());
        assert!(
            s.due(Utc.with_ymd_and_hms(2026, 7, 15, 6, 30, 0).unwrap())
                .is_none()
        );
        assert!(
            s.due(Utc.with_ymd_and_hms(2026, 1, 15, 6, 31, 0).unwrap())
                .is_none()
        );
    }

    #[test]
    fn schedules_respect_weekdays() {
        // 2026-11-23 is a Monday.
        let weekdays = schedule("12:00", "UTC", Some(vec![1, 2, 3, 4, 5]));
        let monday = Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap();
        let sunday = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
        assert!(weekdays.due(monday).is_some());
        assert!(weekdays.due(sunday).is_none());
        // The same local day gives the same key, so a repeated hour fires once.
        let a = weekdays.due(monday).unwrap();
        assert_eq!(
            weekdays.due(monday + chrono::Duration::seconds(30)),
            Some(a)
        );
    }

    #[test]
    fn datastream_rules_are_indexed_and_edge_triggered() {
        let automation = Automation {
            id: 1,
            org_id: 1,
            name: "hot".into(),
            enabled: true,
            trigger: Trigger::Datastream {
                device_id: 7,
                pin: "V1".into(),
                op: crate::control::Comparison::Gt,
                value: 30.0,
            },
            actions: vec![],
            cooldown_secs: 0,
            created_at: String::new(),
            updated_at: String::new(),
            last_fired_at: None,
            fire_count: 0,
            last_error: None,
        };
        let mut disabled = automation.clone();
        disabled.id = 2;
        disabled.enabled = false;
        let rules = Rules::build(vec![automation, disabled], &Carried::new());
        assert_eq!(
            rules.list.len(),
            1,
            "disabled automations are not evaluated"
        );
        assert_eq!(rules.by_point.get(&(7, 1)).map(Vec::len), Some(1));
        // Evaluation state survives a reload when the trigger did not change.
        let mut rules = rules;
        rules.list[0].armed = false;
        let carried = rules.carry();
        let list = vec![(*rules.list[0].automation).clone()];
        let reloaded = Rules::build(list, &carried);
        assert!(!reloaded.list[0].armed);
    }
}
