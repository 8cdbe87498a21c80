//! The telemetry table schema (see DESIGN.md, "Telemetry data model").

use std::sync::{Arc, OnceLock};

use arrow::array::AsArray;
use arrow::datatypes::{
    DataType, Field, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType, UInt16Type, UInt32Type,
};
use arrow::record_batch::RecordBatch;

/// Column names, in schema order.
pub mod columns {
    /// Tenant id, `UInt32`.
    pub const ORG_ID: &str = "org_id";
    /// Control-plane device id, `UInt32`.
    pub const DEVICE_ID: &str = "device_id";
    /// Virtual pin number, `UInt16`.
    pub const PIN: &str = "pin";
    /// Timestamp, `Timestamp(Microsecond, "UTC")`.
    pub const TS: &str = "ts";
    /// Numeric value, `Float64`, nullable.
    pub const VALUE: &str = "value";
    /// Raw text when the value is not a single number, `Utf8`, nullable.
    pub const TEXT: &str = "text";
}

/// Column indices, in schema order.
pub(crate) const COL_ORG: usize = 0;
pub(crate) const COL_DEVICE: usize = 1;
pub(crate) const COL_PIN: usize = 2;
pub(crate) const COL_TS: usize = 3;
pub(crate) const COL_VALUE: usize = 4;
pub(crate) const COL_TEXT: usize = 5;

/// Time zone attached to the `ts` column.
pub const TS_TIMEZONE: &str = "UTC";

/// The Arrow type of the `ts` column.
pub fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(TS_TIMEZONE.into()))
}

/// The telemetry schema: `org_id, device_id, pin, ts, value, text`.
///
/// The same `Arc` is returned on every call.
pub fn schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new(columns::ORG_ID, DataType::UInt32, false),
                Field::new(columns::DEVICE_ID, DataType::UInt32, false),
                Field::new(columns::PIN, DataType::UInt16, false),
                Field::new(columns::TS, ts_type(), false),
                Field::new(columns::VALUE, DataType::Float64, true),
                Field::new(columns::TEXT, DataType::Utf8, true),
            ]))
        })
        .clone()
}

/// The key columns of a batch with the telemetry schema: `org_id`, `device_id`, `pin`, `ts`.
pub(crate) fn key_columns(batch: &RecordBatch) -> (&[u32], &[u32], &[u16], &[i64]) {
    (
        batch.column(COL_ORG).as_primitive::<UInt32Type>().values(),
        batch
            .column(COL_DEVICE)
            .as_primitive::<UInt32Type>()
            .values(),
        batch.column(COL_PIN).as_primitive::<UInt16Type>().values(),
        batch
            .column(COL_TS)
            .as_primitive::<TimestampMicrosecondType>()
            .values(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_order_and_types() {
        let s = schema();
        let names: Vec<_> = s.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["org_id", "device_id", "pin", "ts", "value", "text"]);
        assert_eq!(s.field(COL_ORG).data_type(), &DataType::UInt32);
        assert_eq!(s.field(COL_DEVICE).data_type(), &DataType::UInt32);
        assert_eq!(s.field(COL_PIN).data_type(), &DataType::UInt16);
        assert_eq!(s.field(COL_TS).data_type(), &ts_type());
        assert!(s.field(COL_VALUE).is_nullable());
        assert!(s.field(COL_TEXT).is_nullable());
        assert!(!s.field(COL_TS).is_nullable());
        assert!(Arc::ptr_eq(&s, &schema()));
    }
}
