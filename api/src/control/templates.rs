//! Templates (Blynk "products"): a template id like `TMPLa1B2c3D4`, a name, and datastreams —
//! the typed virtual pins V0–V255 that devices of the template write.

use crate::control::Narrow;
use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use super::ControlPlane;
use super::error::{ControlError, Result};
use super::metadata::{MetaField, NewMetaField, insert_meta_fields, validate_meta_fields};
use super::secrets;
use super::template_events::{
    NewTemplateEvent, TemplateEvent, TemplateEventRow, insert_events, validate_events,
};
use super::time::{now_ms, rfc3339};

/// Datastream types a template may declare.
pub const DATASTREAM_KINDS: [&str; 5] = ["integer", "double", "string", "enum", "location"];

/// Highest virtual pin (V255).
pub const MAX_PIN: i64 = 255;

/// Most decimals a datastream may display.
pub const MAX_DECIMALS: i64 = 10;

/// A typed virtual pin of a template.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Datastream {
    #[sqlx(try_from = "i64")]
    pub pin: u16,
    pub name: String,
    /// One of [`DATASTREAM_KINDS`]; `"type"` in JSON.
    #[serde(rename = "type")]
    pub kind: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub units: Option<String>,
    #[sqlx(try_from = "crate::control::NullableInt")]
    pub decimals: Option<u8>,
    /// Initial value, returned before anything was written.
    pub default_value: Option<String>,
    /// Whether the stream answers a device's sync after reconnect.
    #[sqlx(try_from = "crate::control::Flag")]
    pub sync_on_reconnect: bool,
}

/// Largest dashboard layout accepted (bytes of JSON).
pub const MAX_DASHBOARD_BYTES: usize = 256 * 1024;

/// Longest default value of a datastream (bytes).
pub const MAX_DEFAULT_VALUE: usize = 1024;

/// A template as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Template {
    /// `TMPL` + 8 alphanumerics.
    pub id: String,
    pub org_id: u32,
    pub name: String,
    pub description: String,
    pub datastreams: Vec<Datastream>,
    /// Events devices of this template may log.
    pub events: Vec<TemplateEvent>,
    /// Metadata fields every device of the template has a value for.
    pub metadata: Vec<MetaField>,
    /// Dashboard layout, `{"widgets": [...]}`.
    pub dashboard: serde_json::Value,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// Body of `POST /api/v1/templates`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewTemplate {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub datastreams: Vec<NewDatastream>,
    #[serde(default)]
    pub events: Vec<NewTemplateEvent>,
    /// Metadata fields (`{"name","type","default_value"?}`).
    #[serde(default)]
    pub metadata: Vec<NewMetaField>,
    /// Organization of the template: the caller's own (default) or one the caller manages.
    #[serde(default)]
    pub org_id: Option<u32>,
    /// Dashboard layout, `{"widgets": [...]}` (default: no widgets).
    #[serde(default)]
    pub dashboard: Option<serde_json::Value>,
}

/// A datastream in [`NewTemplate`]; numbers are wide here so that out-of-range values get a
/// clear validation message rather than a deserialization error.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewDatastream {
    pub pin: i64,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub units: Option<String>,
    pub decimals: Option<i64>,
    #[serde(default)]
    pub default_value: Option<String>,
    #[serde(default)]
    pub sync_on_reconnect: bool,
}

#[derive(sqlx::FromRow)]
struct TemplateRow {
    id: String,
    #[sqlx(try_from = "i64")]
    org_id: u32,
    name: String,
    description: String,
    created_at: i64,
    updated_at: i64,
    dashboard: String,
}

impl TemplateRow {
    fn into_template(
        self,
        datastreams: Vec<Datastream>,
        events: Vec<TemplateEvent>,
        metadata: Vec<MetaField>,
    ) -> Template {
        Template {
            id: self.id,
            org_id: self.org_id,
            name: self.name,
            description: self.description,
            datastreams,
            events,
            metadata,
            // Written by this module only, always an object.
            dashboard: serde_json::from_str(&self.dashboard).unwrap_or_default(),
            created_at: rfc3339(self.created_at),
            updated_at: rfc3339(self.updated_at),
        }
    }
}

#[derive(sqlx::FromRow)]
struct DatastreamRow {
    template_id: String,
    #[sqlx(flatten)]
    datastream: Datastream,
}

impl NewTemplate {
    /// Checks the template and returns its normalized datastreams, sorted by pin:
    /// non-empty names, pins 0–255 and unique, known types, min ≤ max, decimals 0–10.
    pub fn validate(&self) -> Result<(String, Vec<Datastream>)> {
        let name = self.name.trim();
        if name.is_empty() {
            return Err(ControlError::validation("template name must not be empty"));
        }
        let mut pins = HashSet::new();
        let mut datastreams = Vec::with_capacity(self.datastreams.len());
        for (i, ds) in self.datastreams.iter().enumerate() {
            let at = format!("datastreams[{i}]");
            let pin = u16::try_from(ds.pin)
                .ok()
                .filter(|p| i64::from(*p) <= MAX_PIN)
                .ok_or_else(|| {
                    ControlError::validation(format!(
                        "{at}.pin: {} is out of range, pins are 0–{MAX_PIN}",
                        ds.pin
                    ))
                })?;
            if !pins.insert(pin) {
                return Err(ControlError::validation(format!(
                    "{at}.pin: pin {pin} is used by more than one datastream"
                )));
            }
            let ds_name = ds.name.trim();
            if ds_name.is_empty() {
                return Err(ControlError::validation(format!(
                    "{at}.name must not be empty"
                )));
            }
            let kind = ds.kind.trim().to_ascii_lowercase();
            if !DATASTREAM_KINDS.contains(&kind.as_str()) {
                return Err(ControlError::validation(format!(
                    "{at}.type: unknown type {:?}, expected one of {}",
                    ds.kind,
                    DATASTREAM_KINDS.join(", ")
                )));
            }
            if let (Some(min), Some(max)) = (ds.min, ds.max)
                && min > max
            {
                return Err(ControlError::validation(format!(
                    "{at}: min ({min}) must not be greater than max ({max})"
                )));
            }
            let decimals = match ds.decimals {
                None => None,
                Some(d) => Some(
                    u8::try_from(d)
                        .ok()
                        .filter(|d| i64::from(*d) <= MAX_DECIMALS)
                        .ok_or_else(|| {
                            ControlError::validation(format!(
                                "{at}.decimals: {d} is out of range 0–{MAX_DECIMALS}"
                            ))
                        })?,
                ),
            };
            let units = ds
                .units
                .as_deref()
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_owned);
            let default_value = match ds.default_value.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(v) if v.len() > MAX_DEFAULT_VALUE => {
                    return Err(ControlError::validation(format!(
                        "{at}.default_value: longer than {MAX_DEFAULT_VALUE} bytes"
                    )));
                }
                Some(v) => {
                    let numeric = kind == "integer" || kind == "double";
                    match v.parse::<f64>() {
                        Ok(n)
                            if numeric
                                && n.is_finite()
                                && (kind == "double" || n.fract() == 0.0) => {}
                        _ if numeric => {
                            return Err(ControlError::validation(format!(
                                "{at}.default_value: {v:?} is not a valid {kind}"
                            )));
                        }
                        _ => {}
                    }
                    Some(v.to_owned())
                }
            };
            datastreams.push(Datastream {
                pin,
                name: ds_name.to_owned(),
                kind,
                min: ds.min,
                max: ds.max,
                units,
                decimals,
                default_value,
                sync_on_reconnect: ds.sync_on_reconnect,
            });
        }
        datastreams.sort_by_key(|ds| ds.pin);
        Ok((name.to_owned(), datastreams))
    }
}

/// Checks a dashboard layout — an object whose `widgets` is an array, at most
/// [`MAX_DASHBOARD_BYTES`] — and returns it as stored JSON text.
fn validate_dashboard(dashboard: Option<&serde_json::Value>) -> Result<String> {
    let Some(dashboard) = dashboard else {
        return Ok(r#"{"widgets":[]}"#.to_owned());
    };
    if !dashboard
        .get("widgets")
        .is_some_and(serde_json::Value::is_array)
    {
        return Err(ControlError::validation(
            r#"dashboard must be an object with a "widgets" array"#,
        ));
    }
    let text = dashboard.to_string();
    if text.len() > MAX_DASHBOARD_BYTES {
        return Err(ControlError::validation(format!(
            "dashboard is larger than {MAX_DASHBOARD_BYTES} bytes"
        )));
    }
    Ok(text)
}

/// Writes the datastreams, events and metadata fields of a template inside a transaction.
async fn insert_parts(
    conn: &mut sqlx::AnyConnection,
    template_id: &str,
    datastreams: &[Datastream],
    events: &[TemplateEvent],
    metadata: &[MetaField],
) -> Result<()> {
    for ds in datastreams {
        sqlx::query(
            "INSERT INTO datastreams (template_id, pin, name, kind, min, max, units, decimals,
                 default_value, sync_on_reconnect)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(template_id)
        .bind(i64::from(ds.pin))
        .bind(&ds.name)
        .bind(&ds.kind)
        .bind(ds.min)
        .bind(ds.max)
        .bind(&ds.units)
        .bind(ds.decimals.map(i64::from))
        .bind(&ds.default_value)
        .bind(i64::from(ds.sync_on_reconnect))
        // Not a cached prepared statement: sqlx 0.9's `Any` driver sends a NULL `f64` as a
        // PostgreSQL `float4`, and a statement prepared with a NULL `min` would then reject
        // the 8 bytes of a later non-NULL one ("incorrect binary data format").
        .persistent(false)
        .execute(&mut *conn)
        .await?;
    }
    insert_events(&mut *conn, template_id, events).await?;
    insert_meta_fields(&mut *conn, template_id, metadata).await?;
    Ok(())
}

impl ControlPlane {
    /// Replaces a template's name, description, datastreams, events, metadata fields and (when
    /// given) dashboard in one transaction. Devices read their template when they use it, so
    /// they follow at once; values stored for removed pins or metadata fields stay stored but
    /// are no longer offered.
    pub async fn update_template(&self, template_id: &str, new: &NewTemplate) -> Result<Template> {
        let (name, datastreams) = new.validate()?;
        let mut events = validate_events(&new.events)?;
        events.sort_by(|a, b| a.code.cmp(&b.code));
        let metadata = validate_meta_fields(&new.metadata)?;
        let dashboard = match &new.dashboard {
            Some(d) => Some(validate_dashboard(Some(d))?),
            None => None,
        };
        let mut tx = self.begin_write().await?;
        let row: TemplateRow = sqlx::query_as(
            "UPDATE templates SET name = $1, description = $2, dashboard = COALESCE($3, dashboard),
                 updated_at = $4 WHERE id = $5 RETURNING *",
        )
        .bind(&name)
        .bind(new.description.trim())
        .bind(dashboard)
        .bind(now_ms())
        .bind(template_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ControlError::not_found(format!("template {template_id:?} not found")))?;
        for table in ["datastreams", "template_events", "template_metadata"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE template_id = $1"
            )))
            .bind(template_id)
            .execute(&mut *tx)
            .await?;
        }
        insert_parts(&mut tx, template_id, &datastreams, &events, &metadata).await?;
        tx.commit().await?;
        tracing::info!(
            template_id,
            datastreams = datastreams.len(),
            "template changed"
        );
        Ok(row.into_template(datastreams, events, metadata))
    }

    /// Creates a template in `org_id` with a fresh template id.
    pub async fn create_template(&self, org_id: u32, new: &NewTemplate) -> Result<Template> {
        let (name, datastreams) = new.validate()?;
        let mut events = validate_events(&new.events)?;
        // The order every read returns them in.
        events.sort_by(|a, b| a.code.cmp(&b.code));
        let dashboard = validate_dashboard(new.dashboard.as_ref())?;
        let metadata = validate_meta_fields(&new.metadata)?;
        let description = new.description.trim();
        let now = now_ms();
        let mut attempt = 0;
        let row = loop {
            attempt += 1;
            let mut tx = self.begin_write().await?;
            let inserted: std::result::Result<TemplateRow, sqlx::Error> = sqlx::query_as(
                "INSERT INTO templates (id, org_id, name, description, created_at, updated_at, dashboard)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *",
            )
            .bind(secrets::template_id())
            .bind(i64::from(org_id))
            .bind(&name)
            .bind(description)
            .bind(now)
            .bind(now)
            .bind(&dashboard)
            .fetch_one(&mut *tx)
            .await;
            let row = match inserted {
                Ok(row) => row,
                // A template id collision (62^8 ids): draw again.
                Err(sqlx::Error::Database(db)) if db.is_unique_violation() && attempt < 5 => {
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            insert_parts(&mut tx, &row.id, &datastreams, &events, &metadata).await?;
            tx.commit().await?;
            break row;
        };
        tracing::info!(
            template_id = %row.id,
            org_id,
            datastreams = datastreams.len(),
            "template created"
        );
        Ok(row.into_template(datastreams, events, metadata))
    }

    /// The templates of `org_id`, oldest first.
    pub async fn templates(&self, org_id: u32) -> Result<Vec<Template>> {
        let rows: Vec<TemplateRow> =
            sqlx::query_as("SELECT * FROM templates WHERE org_id = $1 ORDER BY created_at, id")
                .bind(i64::from(org_id))
                .fetch_all(&self.pool)
                .await?;
        let ds_rows: Vec<DatastreamRow> = sqlx::query_as(
            "SELECT d.template_id, d.pin, d.name, d.kind, d.min, d.max, d.units, d.decimals,
                 d.default_value, d.sync_on_reconnect
             FROM datastreams d JOIN templates t ON t.id = d.template_id
             WHERE t.org_id = $1 ORDER BY d.template_id, d.pin",
        )
        .bind(i64::from(org_id))
        .fetch_all(&self.pool)
        .await?;
        let mut by_template: BTreeMap<String, Vec<Datastream>> = BTreeMap::new();
        for row in ds_rows {
            by_template
                .entry(row.template_id)
                .or_default()
                .push(row.datastream);
        }
        let ev_rows: Vec<TemplateEventRow> = sqlx::query_as(
            "SELECT e.* FROM template_events e JOIN templates t ON t.id = e.template_id
             WHERE t.org_id = $1 ORDER BY e.template_id, e.code",
        )
        .bind(i64::from(org_id))
        .fetch_all(&self.pool)
        .await?;
        let mut events_by_template: BTreeMap<String, Vec<TemplateEvent>> = BTreeMap::new();
        for row in ev_rows {
            events_by_template
                .entry(row.template_id.clone())
                .or_default()
                .push(row.into_event());
        }
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let datastreams = by_template.remove(&row.id).unwrap_or_default();
            let events = events_by_template.remove(&row.id).unwrap_or_default();
            let metadata = self.meta_fields(&row.id).await?;
            out.push(row.into_template(datastreams, events, metadata));
        }
        Ok(out)
    }

    /// The template `template_id` if it belongs to `org_id`.
    pub async fn template(&self, org_id: u32, template_id: &str) -> Result<Option<Template>> {
        let row: Option<TemplateRow> =
            sqlx::query_as("SELECT * FROM templates WHERE id = $1 AND org_id = $2")
                .bind(template_id)
                .bind(i64::from(org_id))
                .fetch_optional(&self.pool)
                .await?;
        match row {
            Some(row) => {
                let datastreams = self.datastreams(&row.id).await?;
                let events = self.template_events(&row.id).await?;
                let metadata = self.meta_fields(&row.id).await?;
                Ok(Some(row.into_template(datastreams, events, metadata)))
            }
            None => Ok(None),
        }
    }

    /// The datastreams of a template, by pin (empty for an unknown template). Not scoped by
    /// organization: for the device side, which knows the template through the device.
    pub async fn datastreams(&self, template_id: &str) -> Result<Vec<Datastream>> {
        Ok(sqlx::query_as(
            "SELECT pin, name, kind, min, max, units, decimals, default_value, sync_on_reconnect
             FROM datastreams WHERE template_id = $1 ORDER BY pin",
        )
        .bind(template_id)
        .fetch_all(&self.pool)
        .await?)
    }
}

impl ControlPlane {
    /// Replaces the dashboard layout of a template (the caller checked access).
    pub async fn set_template_dashboard(
        &self,
        template_id: &str,
        dashboard: &serde_json::Value,
    ) -> Result<()> {
        let dashboard = validate_dashboard(Some(dashboard))?;
        sqlx::query("UPDATE templates SET dashboard = $1, updated_at = $2 WHERE id = $3")
            .bind(dashboard)
            .bind(now_ms())
            .bind(template_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The organization owning template `template_id`.
    pub async fn template_org(&self, template_id: &str) -> Result<Option<u32>> {
        sqlx::query_scalar::<_, i64>("SELECT org_id FROM templates WHERE id = $1")
            .bind(template_id)
            .fetch_optional(&self.pool)
            .await?
            .narrow()
    }

    /// The events a template declares, by code (empty for an unknown template). Not scoped by
    /// organization: for the device side.
    pub async fn template_events(&self, template_id: &str) -> Result<Vec<TemplateEvent>> {
        let rows: Vec<TemplateEventRow> =
            sqlx::query_as("SELECT * FROM template_events WHERE template_id = $1 ORDER BY code")
                .bind(template_id)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(TemplateEventRow::into_event).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds(pin: i64, kind: &str) -> NewDatastream {
        NewDatastream {
            pin,
            name: format!("pin {pin}"),
            kind: kind.to_owned(),
            min: None,
            max: None,
            units: None,
            decimals: None,
            default_value: None,
            sync_on_reconnect: false,
        }
    }

    fn template(datastreams: Vec<NewDatastream>) -> NewTemplate {
        NewTemplate {
            name: "Weather".to_owned(),
            description: String::new(),
            datastreams,
            events: Vec::new(),
            metadata: Vec::new(),
            org_id: None,
            dashboard: None,
        }
    }

    fn error_of(t: NewTemplate) -> String {
        match t.validate() {
            Err(ControlError::Validation(m)) => m,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn accepts_and_normalizes() {
        let mut temp = ds(7, " Double ");
        temp.min = Some(-40.0);
        temp.max = Some(85.0);
        temp.units = Some("°C".to_owned());
        temp.decimals = Some(1);
        let mut blank_units = ds(0, "integer");
        blank_units.units = Some("  ".to_owned());
        let (name, streams) = template(vec![temp, blank_units, ds(255, "location")])
            .validate()
            .unwrap();
        assert_eq!(name, "Weather");
        assert_eq!(
            streams.iter().map(|d| d.pin).collect::<Vec<_>>(),
            [0, 7, 255]
        );
        assert_eq!(streams[1].kind, "double");
        assert_eq!(streams[1].decimals, Some(1));
        assert_eq!(streams[0].units, None);
    }

    #[test]
    fn rejects_bad_templates() {
        let mut t = template(vec![]);
        t.name = "  ".to_owned();
        assert!(error_of(t).contains("name"));
        assert!(error_of(template(vec![ds(256, "integer")])).contains("out of range"));
        assert!(error_of(template(vec![ds(-1, "integer")])).contains("out of range"));
        assert!(
            error_of(template(vec![ds(1, "integer"), ds(1, "double")])).contains("more than one")
        );
        assert!(error_of(template(vec![ds(1, "float")])).contains("unknown type"));
        let mut unnamed = ds(1, "string");
        unnamed.name = String::new();
        assert!(error_of(template(vec![unnamed])).contains("name must not be empty"));
        let mut inverted = ds(1, "integer");
        inverted.min = Some(10.0);
        inverted.max = Some(0.0);
        assert!(error_of(template(vec![inverted])).contains("min"));
        let mut decimals = ds(1, "double");
        decimals.decimals = Some(11);
        assert!(error_of(template(vec![decimals])).contains("decimals"));
    }

    #[test]
    fn datastream_json_uses_type() {
        let ds = Datastream {
            pin: 3,
            name: "Temp".to_owned(),
            kind: "double".to_owned(),
            min: Some(0.0),
            max: None,
            units: None,
            decimals: Some(2),
            default_value: None,
            sync_on_reconnect: false,
        };
        let json = serde_json::to_value(&ds).unwrap();
        assert_eq!(json["type"], "double");
        assert_eq!(json["pin"], 3);
        assert!(json.get("kind").is_none());
    }
}
