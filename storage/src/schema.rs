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

/// The order of the rows of a store's data files: each file is sorted by it, merges rely on
/// it. A store keeps the order it was created with (the catalog records it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyOrder {
    /// `(org_id, device_id, pin, ts)`: stores of catalog format versions 1 and 2.
    DevicePin,
    /// `(org_id, pin, device_id, ts)`: new stores (catalog format version 3). Every series is
    /// still one run of rows, and the rows of one pin across the fleet are one run too: a
    /// query of a few pins (`WHERE pin = 3`, `GROUP BY pin`) reads long runs of one pin and of
    /// nulls, where the device-major order alternated pins every few rows
    /// (BENCHMARKS.md, "Files sorted pin first").
    PinDevice,
}

/// A row's position in a [`KeyOrder`]: compared as a tuple.
pub(crate) type SortKey = (u32, u32, u32, i64);

impl KeyOrder {
    /// The sort key of the row `(org, device, pin, ts)`.
    #[inline]
    pub(crate) fn key(self, org: u32, device: u32, pin: u16, ts: i64) -> SortKey {
        match self {
            KeyOrder::DevicePin => (org, device, u32::from(pin), ts),
            KeyOrder::PinDevice => (org, u32::from(pin), device, ts),
        }
    }

    /// The sort key of row `row` of a batch with the telemetry schema.
    pub(crate) fn key_at(self, batch: &RecordBatch, row: usize) -> SortKey {
        let (org, dev, pin, ts) = key_columns(batch);
        self.key(org[row], dev[row], pin[row], ts[row])
    }

    /// Whether the rows of `batch` (telemetry schema) are in this order, and come after
    /// `after` (the last key of a previous batch) when given.
    pub(crate) fn is_sorted(self, batch: &RecordBatch, after: Option<SortKey>) -> bool {
        let (org, dev, pin, ts) = key_columns(batch);
        let key = |i: usize| self.key(org[i], dev[i], pin[i], ts[i]);
        let n = ts.len();
        (n == 0 || after.is_none_or(|last| last <= key(0))) && (1..n).all(|i| key(i - 1) <= key(i))
    }

    /// The key columns in sort order (indices into the schema).
    pub(crate) fn columns(self) -> [usize; 4] {
        match self {
            KeyOrder::DevicePin => [COL_ORG, COL_DEVICE, COL_PIN, COL_TS],
            KeyOrder::PinDevice => [COL_ORG, COL_PIN, COL_DEVICE, COL_TS],
        }
    }

    /// The order's name in messages: `(org_id, pin, device_id, ts)`.
    pub(crate) fn describe(self) -> String {
        let names: Vec<&str> = self
            .columns()
            .iter()
            .map(|&c| match c {
                COL_ORG => columns::ORG_ID,
                COL_DEVICE => columns::DEVICE_ID,
                COL_PIN => columns::PIN,
                _ => columns::TS,
            })
            .collect();
        format!("({})", names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_orders_compare_rows_by_their_columns() {
        // Device 1 pin 2 against device 2 pin 1, same org and time.
        let (a, b) = ((7, 1, 2, 5), (7, 2, 1, 5));
        let key = |o: KeyOrder, (org, dev, pin, ts): (u32, u32, u16, i64)| o.key(org, dev, pin, ts);
        assert!(key(KeyOrder::DevicePin, a) < key(KeyOrder::DevicePin, b));
        assert!(key(KeyOrder::PinDevice, a) > key(KeyOrder::PinDevice, b));
        assert_eq!(
            KeyOrder::PinDevice.describe(),
            "(org_id, pin, device_id, ts)"
        );
        assert_eq!(
            KeyOrder::DevicePin.describe(),
            "(org_id, device_id, pin, ts)"
        );
    }

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
