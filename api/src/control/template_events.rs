//! Events a template declares (Blynk "Events"): a code the device logs, a name, a severity,
//! notification settings and notification limits.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::error::{ControlError, Result};

/// Severities of an event.
pub const EVENT_SEVERITIES: [&str; 4] = ["info", "warning", "critical", "content"];

/// Longest event code and name (characters).
pub const MAX_EVENT_CODE_LEN: usize = 50;

/// Longest template-side event description (characters).
pub const MAX_EVENT_TEMPLATE_DESCRIPTION: usize = 250;

/// Most events a template may declare.
pub const MAX_EVENTS_PER_TEMPLATE: usize = 100;

/// Event codes the server logs itself; a template cannot declare them.
pub const SYSTEM_EVENT_CODES: [&str; 5] = ["online", "offline", "ota", "provisioned", "claimed"];

/// Which channels an event notifies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventNotifications {
    #[serde(default)]
    pub email: bool,
    #[serde(default)]
    pub push: bool,
    #[serde(default)]
    pub webhook: bool,
}

/// An event of a template.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TemplateEvent {
    pub code: String,
    pub name: String,
    pub severity: String,
    pub description: String,
    pub notifications: EventNotifications,
    /// Notify at most once per this many seconds.
    pub notify_period_secs: Option<u32>,
    /// Notify only every Nth occurrence.
    pub notify_every_nth: Option<u32>,
}

/// An event in a template request body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewTemplateEvent {
    pub code: String,
    /// Defaults to the code.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default = "default_severity")]
    pub severity: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub notifications: EventNotifications,
    #[serde(default)]
    pub notify_period_secs: Option<i64>,
    #[serde(default)]
    pub notify_every_nth: Option<i64>,
}

fn default_severity() -> String {
    "info".to_owned()
}

#[derive(sqlx::FromRow)]
pub(crate) struct TemplateEventRow {
    pub template_id: String,
    pub code: String,
    pub name: String,
    pub severity: String,
    pub description: String,
    pub notifications: String,
    #[sqlx(try_from = "crate::control::NullableInt")]
    pub notify_period_secs: Option<u32>,
    #[sqlx(try_from = "crate::control::NullableInt")]
    pub notify_every_nth: Option<u32>,
}

impl TemplateEventRow {
    pub(crate) fn into_event(self) -> TemplateEvent {
        TemplateEvent {
            code: self.code,
            name: self.name,
            severity: self.severity,
            description: self.description,
            // Written by this module only; a hand-edited bad value notifies nothing.
            notifications: serde_json::from_str(&self.notifications).unwrap_or_default(),
            notify_period_secs: self.notify_period_secs,
            notify_every_nth: self.notify_every_nth,
        }
    }
}

/// Event codes and names: letters, digits, spaces, underscores; 1–50 characters.
pub fn valid_event_code(code: &str) -> bool {
    let n = code.chars().count();
    (1..=MAX_EVENT_CODE_LEN).contains(&n)
        && code
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == ' ')
}

fn positive(value: Option<i64>, at: &str, field: &str) -> Result<Option<u32>> {
    match value {
        None => Ok(None),
        Some(v) => u32::try_from(v)
            .ok()
            .filter(|v| *v > 0)
            .map(Some)
            .ok_or_else(|| {
                ControlError::validation(format!("{at}.{field}: {v} must be a positive integer"))
            }),
    }
}

/// Validates the events of a template body: codes valid and unique, not a system code,
/// known severities, limits positive, at most [`MAX_EVENTS_PER_TEMPLATE`].
pub fn validate_events(events: &[NewTemplateEvent]) -> Result<Vec<TemplateEvent>> {
    if events.len() > MAX_EVENTS_PER_TEMPLATE {
        return Err(ControlError::validation(format!(
            "a template has at most {MAX_EVENTS_PER_TEMPLATE} events"
        )));
    }
    let mut codes = HashSet::new();
    let mut out = Vec::with_capacity(events.len());
    for (i, ev) in events.iter().enumerate() {
        let at = format!("events[{i}]");
        let code = ev.code.trim();
        if !valid_event_code(code) {
            return Err(ControlError::validation(format!(
                "{at}.code: {code:?} must be 1–{MAX_EVENT_CODE_LEN} letters, digits, spaces or underscores"
            )));
        }
        if SYSTEM_EVENT_CODES.contains(&code) {
            return Err(ControlError::validation(format!(
                "{at}.code: {code:?} is reserved for system events"
            )));
        }
        if !codes.insert(code.to_owned()) {
            return Err(ControlError::validation(format!(
                "{at}.code: {code:?} is used by more than one event"
            )));
        }
        let name = ev.name.as_deref().map(str::trim).unwrap_or(code);
        if !valid_event_code(name) {
            return Err(ControlError::validation(format!(
                "{at}.name: {name:?} must be 1–{MAX_EVENT_CODE_LEN} letters, digits, spaces or underscores"
            )));
        }
        let severity = ev.severity.trim().to_ascii_lowercase();
        if !EVENT_SEVERITIES.contains(&severity.as_str()) {
            return Err(ControlError::validation(format!(
                "{at}.severity: unknown severity {:?}, expected one of {}",
                ev.severity,
                EVENT_SEVERITIES.join(", ")
            )));
        }
        let description = ev.description.trim();
        if description.chars().count() > MAX_EVENT_TEMPLATE_DESCRIPTION {
            return Err(ControlError::validation(format!(
                "{at}.description: longer than {MAX_EVENT_TEMPLATE_DESCRIPTION} characters"
            )));
        }
        out.push(TemplateEvent {
            code: code.to_owned(),
            name: name.to_owned(),
            severity,
            description: description.to_owned(),
            notifications: ev.notifications,
            notify_period_secs: positive(ev.notify_period_secs, &at, "notify_period_secs")?,
            notify_every_nth: positive(ev.notify_every_nth, &at, "notify_every_nth")?,
        });
    }
    Ok(out)
}

/// Inserts the events of a new template inside its transaction.
pub(crate) async fn insert_events(
    tx: &mut sqlx::AnyConnection,
    template_id: &str,
    events: &[TemplateEvent],
) -> Result<()> {
    for ev in events {
        let notifications = serde_json::to_string(&ev.notifications)
            .map_err(|e| ControlError::internal(e.to_string()))?;
        sqlx::query(
            "INSERT INTO template_events (template_id, code, name, severity, description,
                 notifications, notify_period_secs, notify_every_nth)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(template_id)
        .bind(&ev.code)
        .bind(&ev.name)
        .bind(&ev.severity)
        .bind(&ev.description)
        .bind(notifications)
        .bind(ev.notify_period_secs.map(i64::from))
        .bind(ev.notify_every_nth.map(i64::from))
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(code: &str) -> NewTemplateEvent {
        NewTemplateEvent {
            code: code.to_owned(),
            name: None,
            severity: "info".to_owned(),
            description: String::new(),
            notifications: EventNotifications::default(),
            notify_period_secs: None,
            notify_every_nth: None,
        }
    }

    #[test]
    fn codes_follow_blynk_rules() {
        assert!(valid_event_code("temp_high"));
        assert!(valid_event_code("Door open 2"));
        assert!(!valid_event_code(""));
        assert!(!valid_event_code("a-b"));
        assert!(!valid_event_code(&"x".repeat(51)));
        assert!(valid_event_code(&"x".repeat(50)));
    }

    #[test]
    fn validates_events() {
        let mut crit = ev(" overheat ");
        crit.severity = "Critical".into();
        crit.notify_period_secs = Some(60);
        let out = validate_events(&[crit, ev("door")]).unwrap();
        assert_eq!(out[0].code, "overheat");
        assert_eq!(out[0].name, "overheat");
        assert_eq!(out[0].severity, "critical");
        assert_eq!(out[0].notify_period_secs, Some(60));

        let error = |events: &[NewTemplateEvent]| match validate_events(events) {
            Err(ControlError::Validation(m)) => m,
            other => panic!("expected a validation error, got {other:?}"),
        };
        assert!(error(&[ev("a"), ev("a")]).contains("more than one"));
        assert!(error(&[ev("online")]).contains("reserved"));
        assert!(error(&[ev("a/b")]).contains("letters"));
        let mut bad = ev("a");
        bad.severity = "fatal".into();
        assert!(error(&[bad]).contains("severity"));
        let mut bad = ev("a");
        bad.notify_every_nth = Some(0);
        assert!(error(&[bad]).contains("positive"));
        let many: Vec<_> = (0..=MAX_EVENTS_PER_TEMPLATE)
            .map(|i| ev(&format!("e{i}")))
            .collect();
        assert!(error(&many).contains("at most"));
    }
}
