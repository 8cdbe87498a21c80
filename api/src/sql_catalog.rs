//! The control plane as SQL tables next to `telemetry` (for `/api/v1/sql` and the PostgreSQL
//! wire protocol), so that data teams can join values with names, tags and metadata:
//!
//! | table | columns |
//! |---|---|
//! | `devices` | `org_id, device_id, name, template_id, owner_email, tags` (comma-separated), `online, firmware, last_seen_at, created_at` |
//! | `templates` | `org_id, template_id, name, description, created_at, updated_at` |
//! | `datastreams` | `org_id, template_id, pin` (as in `telemetry.pin`), `name, type, units, min, max` |
//! | `events` | `org_id, device_id, event_id, source, code, name, severity, description, created_at, resolved_at` |
//! | `metadata` | `org_id, device_id, name, value` (template fields with their defaults, and Hotspot Name / Time Zone) |
//!
//! Times are `TIMESTAMP` in UTC like `telemetry.ts`. Rows are read from the control-plane
//! database when a query names the table, for the query's organizations only. A table larger
//! than [`MAX_ROWS`] for the scope fails the query with a clear error rather than answering a
//! part of it.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    UInt16Array, UInt32Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use pinhouse_query::{CatalogSource, OrgScope};
use pinhouse_storage::{TS_TIMEZONE, ts_type};

use crate::control::ControlPlane;

/// Most rows one catalog table may give one query.
pub const MAX_ROWS: usize = 1_000_000;

const TABLES: [&str; 5] = ["devices", "templates", "datastreams", "events", "metadata"];

/// [`CatalogSource`] over the control-plane database.
#[derive(Debug, Clone)]
pub struct ControlCatalog {
    control: ControlPlane,
}

impl ControlCatalog {
    /// The catalog of `control`.
    pub fn new(control: ControlPlane) -> Self {
        Self { control }
    }
}

fn field(name: &str, ty: DataType, nullable: bool) -> Field {
    Field::new(name, ty, nullable)
}

fn schema_of(table: &str) -> SchemaRef {
    use DataType::{Boolean, Float64, UInt16, UInt32, Utf8};
    let fields = match table {
        "devices" => vec![
            field("org_id", UInt32, false),
            field("device_id", UInt32, false),
            field("name", Utf8, false),
            field("template_id", Utf8, false),
            field("owner_email", Utf8, true),
            field("tags", Utf8, true),
            field("online", Boolean, false),
            field("firmware", Utf8, true),
            field("last_seen_at", ts_type(), true),
            field("created_at", ts_type(), false),
        ],
        "templates" => vec![
            field("org_id", UInt32, false),
            field("template_id", Utf8, false),
            field("name", Utf8, false),
            field("description", Utf8, false),
            field("created_at", ts_type(), false),
            field("updated_at", ts_type(), false),
        ],
        "datastreams" => vec![
            field("org_id", UInt32, false),
            field("template_id", Utf8, false),
            field("pin", UInt16, false),
            field("name", Utf8, false),
            field("type", Utf8, false),
            field("units", Utf8, true),
            field("min", Float64, true),
            field("max", Float64, true),
        ],
        "events" => vec![
            field("org_id", UInt32, false),
            field("device_id", UInt32, false),
            field("event_id", UInt32, false),
            field("source", Utf8, false),
            field("code", Utf8, false),
            field("name", Utf8, false),
            field("severity", Utf8, false),
            field("description", Utf8, true),
            field("created_at", ts_type(), false),
            field("resolved_at", ts_type(), true),
        ],
        _ => vec![
            field("org_id", UInt32, false),
            field("device_id", UInt32, false),
            field("name", Utf8, false),
            field("value", Utf8, true),
        ],
    };
    Arc::new(Schema::new(fields))
}

fn ts(values: Vec<Option<i64>>) -> ArrayRef {
    // The control plane keeps Unix milliseconds; telemetry timestamps are microseconds.
    Arc::new(
        TimestampMicrosecondArray::from(
            values
                .into_iter()
                .map(|v| v.map(|ms| ms.saturating_mul(1000)))
                .collect::<Vec<_>>(),
        )
        .with_timezone(TS_TIMEZONE),
    )
}

fn text(values: Vec<Option<String>>) -> ArrayRef {
    Arc::new(StringArray::from(values))
}

/// Ids (read as `i64`, the integer of the database driver) as an `UInt32` column.
fn u32s(values: Vec<i64>) -> Result<ArrayRef, String> {
    let values: Result<Vec<u32>, _> = values.into_iter().map(u32::try_from).collect();
    Ok(Arc::new(UInt32Array::from(values.map_err(|_| {
        "control-plane database: id out of range".to_string()
    })?)))
}

/// `org_id IN (…)` for the scope (never empty: an empty scope reads no rows).
fn org_filter(column: &str, scope: &OrgScope) -> String {
    if scope.org_ids().is_empty() {
        return "0".into();
    }
    let list: Vec<String> = scope.org_ids().iter().map(u32::to_string).collect();
    format!("{column} IN ({})", list.join(", "))
}

type DeviceRow = (
    i64,
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    i64,
);

impl ControlCatalog {
    async fn rows<T>(&self, sql: String) -> Result<Vec<T>, String>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
    {
        // The filter is built from numbers only, so formatting it into the statement is safe.
        let rows: Vec<T> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{sql} LIMIT {}", MAX_ROWS + 1)))
                .fetch_all(self.control.pool())
                .await
                .map_err(|e| format!("control-plane database: {e}"))?;
        if rows.len() > MAX_ROWS {
            return Err(format!(
                "more than {MAX_ROWS} rows for your organizations; filter through the REST API instead"
            ));
        }
        Ok(rows)
    }

    async fn batch(&self, table: &str, scope: &OrgScope) -> Result<RecordBatch, String> {
        let schema = schema_of(table);
        let columns: Vec<ArrayRef> = match table {
            "devices" => {
                let rows: Vec<DeviceRow> = self
                    .rows(format!(
                        "SELECT d.org_id, d.id, d.name, d.template_id, u.email,
                            (SELECT {} FROM device_tags t WHERE t.device_id = d.id),
                            s.online, s.firmware, s.last_seen_at, d.created_at
                         FROM devices d
                         LEFT JOIN users u ON u.id = d.owner_user_id
                         LEFT JOIN device_status s ON s.device_id = d.id
                         WHERE {} ORDER BY d.id",
                        self.control.backend().string_agg_sorted("tag", ","),
                        org_filter("d.org_id", scope)
                    ))
                    .await?;
                let mut c = (
                    vec![],
                    vec![],
                    vec![],
                    vec![],
                    vec![],
                    vec![],
                    vec![],
                    vec![],
                    vec![],
                    vec![],
                );
                for r in rows {
                    c.0.push(r.0);
                    c.1.push(r.1);
                    c.2.push(Some(r.2));
                    c.3.push(Some(r.3));
                    c.4.push(r.4);
                    c.5.push(r.5);
                    c.6.push(r.6.unwrap_or(0) != 0);
                    c.7.push(r.7);
                    c.8.push(r.8);
                    c.9.push(Some(r.9));
                }
                vec![
                    u32s(c.0)?,
                    u32s(c.1)?,
                    text(c.2),
                    text(c.3),
                    text(c.4),
                    text(c.5),
                    Arc::new(BooleanArray::from(c.6)),
                    text(c.7),
                    ts(c.8),
                    ts(c.9),
                ]
            }
            "templates" => {
                let rows: Vec<(i64, String, String, String, i64, i64)> = self
                    .rows(format!(
                        "SELECT org_id, id, name, description, created_at, updated_at FROM templates
                         WHERE {} ORDER BY org_id, id",
                        org_filter("org_id", scope)
                    ))
                    .await?;
                let (mut org, mut id, mut name, mut desc, mut created, mut updated) =
                    (vec![], vec![], vec![], vec![], vec![], vec![]);
                for r in rows {
                    org.push(r.0);
                    id.push(Some(r.1));
                    name.push(Some(r.2));
                    desc.push(Some(r.3));
                    created.push(Some(r.4));
                    updated.push(Some(r.5));
                }
                vec![
                    u32s(org)?,
                    text(id),
                    text(name),
                    text(desc),
                    ts(created),
                    ts(updated),
                ]
            }
            "datastreams" => {
                type Row = (
                    i64,
                    String,
                    i64,
                    String,
                    String,
                    Option<String>,
                    Option<f64>,
                    Option<f64>,
                );
                let rows: Vec<Row> = self
                    .rows(format!(
                        "SELECT t.org_id, d.template_id, d.pin, d.name, d.kind, d.units, d.min, d.max
                         FROM datastreams d JOIN templates t ON t.id = d.template_id
                         WHERE {} ORDER BY t.org_id, d.template_id, d.pin",
                        org_filter("t.org_id", scope)
                    ))
                    .await?;
                let mut c = (
                    vec![],
                    vec![],
                    vec![],
                    vec![],
                    vec![],
                    vec![],
                    vec![],
                    vec![],
                );
                for r in rows {
                    c.0.push(r.0);
                    c.1.push(Some(r.1));
                    c.2.push(r.2);
                    c.3.push(Some(r.3));
                    c.4.push(Some(r.4));
                    c.5.push(r.5);
                    c.6.push(r.6);
                    c.7.push(r.7);
                }
                vec![
                    u32s(c.0)?,
                    text(c.1),
                    Arc::new(UInt16Array::from(
                        c.2.into_iter()
                            .map(u16::try_from)
                            .collect::<Result<Vec<u16>, _>>()
                            .map_err(|_| "control-plane database: pin out of range".to_string())?,
                    )),
                    text(c.3),
                    text(c.4),
                    text(c.5),
                    Arc::new(Float64Array::from(c.6)),
                    Arc::new(Float64Array::from(c.7)),
                ]
            }
            "events" => {
                type Row = (
                    i64,
                    i64,
                    i64,
                    String,
                    String,
                    String,
                    String,
                    Option<String>,
                    i64,
                    Option<i64>,
                );
                let rows: Vec<Row> = self
                    .rows(format!(
                        "SELECT d.org_id, e.device_id, e.id, e.source, e.code, e.name, e.severity,
                            e.description, e.created_at, e.resolved_at
                         FROM device_events e JOIN devices d ON d.id = e.device_id
                         WHERE {} ORDER BY e.id",
                        org_filter("d.org_id", scope)
                    ))
                    .await?;
                let mut c = (
                    vec![],
                    vec![],
                    vec![],
                    vec![],
                    vec![],
                    vec![],
                    vec![],
                    vec![],
                    vec![],
                    vec![],
                );
                for r in rows {
                    c.0.push(r.0);
                    c.1.push(r.1);
                    c.2.push(r.2);
                    c.3.push(Some(r.3));
                    c.4.push(Some(r.4));
                    c.5.push(Some(r.5));
                    c.6.push(Some(r.6));
                    c.7.push(r.7);
                    c.8.push(Some(r.8));
                    c.9.push(r.9);
                }
                vec![
                    u32s(c.0)?,
                    u32s(c.1)?,
                    u32s(c.2)?,
                    text(c.3),
                    text(c.4),
                    text(c.5),
                    text(c.6),
                    text(c.7),
                    ts(c.8),
                    ts(c.9),
                ]
            }
            _ => {
                let filter = org_filter("d.org_id", scope);
                let rows: Vec<(i64, i64, String, Option<String>)> = self
                    .rows(format!(
                        "SELECT d.org_id, d.id, f.name, COALESCE(m.value, f.default_value)
                         FROM devices d
                         JOIN template_metadata f ON f.template_id = d.template_id
                         LEFT JOIN device_metadata m ON m.device_id = d.id AND m.name = f.name
                         WHERE {filter}
                         UNION ALL
                         SELECT d.org_id, d.id, m.name, m.value
                         FROM devices d JOIN device_metadata m ON m.device_id = d.id
                         WHERE {filter} AND m.name IN ('Hotspot Name', 'Time Zone')
                         ORDER BY 2, 3"
                    ))
                    .await?;
                let (mut org, mut device, mut name, mut value) = (vec![], vec![], vec![], vec![]);
                for r in rows {
                    org.push(r.0);
                    device.push(r.1);
                    name.push(Some(r.2));
                    value.push(r.3);
                }
                vec![u32s(org)?, u32s(device)?, text(name), text(value)]
            }
        };
        RecordBatch::try_new(schema, columns).map_err(|e| e.to_string())
    }
}

#[async_trait]
impl CatalogSource for ControlCatalog {
    fn tables(&self) -> Vec<(&'static str, SchemaRef)> {
        TABLES.iter().map(|t| (*t, schema_of(t))).collect()
    }

    async fn load(&self, table: &str, scope: &OrgScope) -> Result<RecordBatch, String> {
        self.batch(table, scope).await
    }
}
