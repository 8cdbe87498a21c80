//! `date_trunc` for timestamps in UTC at the speed of naive ones.
//!
//! `telemetry.ts` is `Timestamp(µs, "UTC")`. DataFusion's `date_trunc` truncates a timestamp
//! that carries a time zone value by value through chrono's calendar (and formats an error
//! message per value), which made `date_trunc('day', ts)` the bulk of a fleet-wide daily query.
//! In UTC local time equals UTC, so truncating the same numbers as naive timestamps gives the
//! identical result; this wrapper does that and puts the zone back. Every other zone, and every
//! other argument type, goes to DataFusion's function unchanged. One difference remains: for
//! hour and day, DataFusion's zoned path converts to nanoseconds and fails outside the years
//! 1677–2262, where this one (like DataFusion's naive path) returns the truncated value.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, make_array};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature,
};

/// Time zone names whose local time is UTC at every instant, spelled exactly as arrow parses
/// them (a spelling it rejects must still fail as it does in DataFusion's function).
fn is_utc(tz: &str) -> bool {
    ["UTC", "Etc/UTC", "+00:00", "+0000", "+00", "GMT", "Etc/GMT"].contains(&tz)
}

/// `array` with its timestamp type's zone replaced by `tz` (same buffers, no copy).
fn with_zone(array: &ArrayRef, tz: Option<Arc<str>>) -> Result<ArrayRef> {
    let DataType::Timestamp(unit, _) = array.data_type() else {
        return Ok(Arc::clone(array));
    };
    let data = array
        .to_data()
        .into_builder()
        .data_type(DataType::Timestamp(*unit, tz))
        .build()?;
    Ok(make_array(data))
}

/// DataFusion's `date_trunc` with a fast path for arrays of UTC timestamps.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct UtcDateTrunc {
    inner: Arc<ScalarUDF>,
}

impl UtcDateTrunc {
    /// The function, to register in place of DataFusion's `date_trunc`.
    pub fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(Self {
            inner: datafusion::functions::datetime::date_trunc(),
        })
    }
}

impl ScalarUDFImpl for UtcDateTrunc {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let utc_zone = match args.args.get(1) {
            Some(ColumnarValue::Array(array)) => match array.data_type() {
                DataType::Timestamp(_, Some(tz)) if is_utc(tz) => Some(Arc::clone(tz)),
                _ => None,
            },
            _ => None,
        };
        let Some(tz) = utc_zone else {
            return self.inner.invoke_with_args(args);
        };
        if let ColumnarValue::Array(array) = &mut args.args[1] {
            *array = with_zone(array, None)?;
        }
        // DataFusion checks the result against the promised type: promise a naive one.
        let naive = |field: &FieldRef| match field.data_type() {
            DataType::Timestamp(unit, Some(_)) => Arc::new(
                field
                    .as_ref()
                    .clone()
                    .with_data_type(DataType::Timestamp(*unit, None)),
            ),
            _ => Arc::clone(field),
        };
        args.return_field = naive(&args.return_field);
        if let Some(field) = args.arg_fields.get_mut(1) {
            *field = naive(field);
        }
        match self.inner.invoke_with_args(args)? {
            ColumnarValue::Array(out) => Ok(ColumnarValue::Array(with_zone(&out, Some(tz))?)),
            scalar => Ok(scalar),
        }
    }

    fn output_ordering(
        &self,
        input: &[datafusion::logical_expr::sort_properties::ExprProperties],
    ) -> Result<datafusion::logical_expr::sort_properties::SortProperties> {
        self.inner.output_ordering(input)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, AsArray, TimestampMicrosecondArray};
    use datafusion::arrow::datatypes::{Field, TimeUnit, TimestampMicrosecondType};
    use datafusion::common::ScalarValue;
    use datafusion::config::ConfigOptions;

    fn trunc(udf: &ScalarUDF, unit: &str, array: ArrayRef) -> ArrayRef {
        let field = Arc::new(Field::new("ts", array.data_type().clone(), true));
        let args = ScalarFunctionArgs {
            args: vec![
                ColumnarValue::Scalar(ScalarValue::Utf8(Some(unit.into()))),
                ColumnarValue::Array(Arc::clone(&array)),
            ],
            arg_fields: vec![
                Arc::new(Field::new("u", DataType::Utf8, false)),
                Arc::clone(&field),
            ],
            number_rows: array.len(),
            return_field: field,
            config_options: Arc::new(ConfigOptions::default()),
        };
        match udf.invoke_with_args(args).expect("date_trunc") {
            ColumnarValue::Array(out) => out,
            ColumnarValue::Scalar(s) => s.to_array_of_size(array.len()).expect("array"),
        }
    }

    #[test]
    fn utc_timestamps_truncate_exactly_like_datafusion_and_keep_their_zone() {
        // A spread of instants over 250 years (what nanoseconds hold), around leap days and year ends, with a null.
        let mut values: Vec<Option<i64>> = (0..2_000)
            .map(|i| Some((i as i64 - 1_000) * 4_000_000_123_457 + i as i64 * 13))
            .collect();
        values.push(None);
        values.push(Some(951_782_400_000_000)); // 2000-02-29T00:00Z
        let ours = UtcDateTrunc::udf();
        let theirs = datafusion::functions::datetime::date_trunc();
        for zone in ["UTC", "+00:00"] {
            let array: ArrayRef = Arc::new(
                TimestampMicrosecondArray::from(values.clone()).with_timezone(zone.to_owned()),
            );
            for unit in [
                "microsecond",
                "millisecond",
                "second",
                "minute",
                "hour",
                "day",
                "week",
                "month",
                "quarter",
                "year",
            ] {
                let fast = trunc(&ours, unit, Arc::clone(&array));
                let slow = trunc(&theirs, unit, Arc::clone(&array));
                assert_eq!(
                    fast.data_type(),
                    &DataType::Timestamp(TimeUnit::Microsecond, Some(zone.into())),
                    "{unit} in {zone}"
                );
                assert_eq!(
                    fast.as_primitive::<TimestampMicrosecondType>(),
                    slow.as_primitive::<TimestampMicrosecondType>(),
                    "{unit} in {zone}"
                );
            }
        }
    }

    #[test]
    fn other_zones_are_left_to_datafusion() {
        let array: ArrayRef = Arc::new(
            TimestampMicrosecondArray::from(vec![Some(1_795_564_800_000_000 + 3_600_000_000)])
                .with_timezone("Europe/Berlin".to_owned()),
        );
        let ours = trunc(&UtcDateTrunc::udf(), "day", Arc::clone(&array));
        let theirs = trunc(&datafusion::functions::datetime::date_trunc(), "day", array);
        assert_eq!(ours.as_ref(), theirs.as_ref());
        // Midnight in Berlin is 23:00 UTC the day before.
        assert_eq!(
            ours.as_primitive::<TimestampMicrosecondType>().value(0),
            1_795_564_800_000_000 - 3_600_000_000
        );
    }
}
