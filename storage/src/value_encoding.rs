//! How a data file stores the `value` column: scaled integers when that is exact.
//!
//! Sensor readings mostly carry a fixed number of decimals (`23.45`), and consecutive readings
//! of one series differ by a little. As `Float64` the column compresses poorly: a dictionary of
//! a page's distinct values plus ~11-bit indices, which zstd cannot shrink much because the
//! walk's neighbours share no bytes. As integers scaled by `10^s` (`2345`) the same column
//! delta-encodes into a few bits per value: the store reaches ≤ 1 byte per point this way
//! (measurements in docs/storage.md).
//!
//! A file stores `value` as `Decimal64(18, s)` (Parquet `INT64` with the `DECIMAL` logical
//! type, read as decimals by any Parquet reader) when one scale `s ≤ MAX_SCALE` turns every
//! numeric value of the file into an integer *and back to the same `f64`, bit for bit*, through
//! [`unscale`], the arithmetic of Arrow's decimal → `Float64` cast. Otherwise (`1/3`, `NaN`,
//! `-0.0`, a value beyond 10^18 / 10^s) the file keeps `Float64`. Readers see `Float64` either
//! way: [`decode_file_batch`] here, the query engine's scan adapter (which calls [`unscale`]).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Decimal64Array, Float64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Decimal64Type, Field, Float64Type, Schema};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use crate::error::Result;
use crate::schema::{COL_VALUE, columns, schema};

/// The largest scale tried: micro-units. A value needing more decimals is stored as `Float64`.
pub(crate) const MAX_SCALE: i8 = 6;

/// Decimal precision of the stored column (the most an `INT64` holds in full).
const PRECISION: u8 = 18;

/// Largest unscaled magnitude that precision 18 allows.
const MAX_UNSCALED: f64 = 999_999_999_999_999_999.0;

/// `10^s` for `s` in `0..=MAX_SCALE`, computed as the cast kernel computes it.
fn pow10(scale: i8) -> f64 {
    10_f64.powi(i32::from(scale))
}

/// Whether `v` is exactly `n / 10^scale` for the integer `n` nearest to `v * 10^scale`.
fn fits(v: f64, scale: i8) -> bool {
    let p = pow10(scale);
    let n = (v * p).round();
    n.abs() <= MAX_UNSCALED && ((n as i64) as f64 / p).to_bits() == v.to_bits()
}

/// The smallest scale at which every non-null value of `values` is a scaled integer, if one
/// `≤ MAX_SCALE` exists (checked value by value; [`encode`] verifies the result once more
/// through [`unscale`]).
pub(crate) fn common_scale(values: &Float64Array) -> Option<i8> {
    let mut scale = 0;
    let mut check = |v: f64| {
        while !fits(v, scale) {
            if scale == MAX_SCALE {
                return false;
            }
            scale += 1;
        }
        true
    };
    let all_fit = match values.nulls() {
        None => values.values().iter().all(|&v| check(v)),
        Some(nulls) => values
            .values()
            .iter()
            .zip(nulls.iter())
            .all(|(&v, valid)| !valid || check(v)),
    };
    all_fit.then_some(scale)
}

/// `batch` (the telemetry schema) with its `value` column as `Decimal64(18, s)`, when that
/// stores every value exactly; `None` when the file must keep `Float64`.
pub(crate) fn encode(batch: &RecordBatch) -> Result<Option<RecordBatch>> {
    let values = batch.column(COL_VALUE).as_primitive::<Float64Type>();
    match common_scale(values) {
        Some(scale) => encode_at(batch, scale),
        None => Ok(None),
    }
}

/// `batch` with its `value` column as `Decimal64(18, scale)`, when that stores every value
/// exactly; `None` otherwise.
pub(crate) fn encode_at(batch: &RecordBatch, scale: i8) -> Result<Option<RecordBatch>> {
    let values = batch.column(COL_VALUE).as_primitive::<Float64Type>();
    if !(0..=MAX_SCALE).contains(&scale) {
        return Ok(None);
    }
    let p = pow10(scale);
    let unscaled: Decimal64Array = values
        .unary::<_, Decimal64Type>(|v| (v * p).round() as i64)
        .with_precision_and_scale(PRECISION, scale)?;
    // The guarantee, checked with the readers' own arithmetic.
    let back = unscale(&unscaled);
    let exact = back.nulls() == values.nulls()
        && back
            .values()
            .iter()
            .zip(values.values().iter())
            .zip(0..)
            .all(|((b, v), i)| values.is_null(i) || b.to_bits() == v.to_bits());
    if !exact {
        return Ok(None);
    }
    let mut fields: Vec<Arc<Field>> = batch.schema().fields().iter().cloned().collect();
    fields[COL_VALUE] = Arc::new(Field::new(
        columns::VALUE,
        DataType::Decimal64(PRECISION, scale),
        true,
    ));
    let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
    cols[COL_VALUE] = Arc::new(unscaled);
    Ok(Some(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        cols,
    )?))
}

/// The scale of a file's `value` column of type `stored`: `Some(s)` for scaled integers,
/// `None` for `Float64`.
pub(crate) fn stored_scale(stored: &DataType) -> Option<i8> {
    match stored {
        DataType::Decimal32(_, s) | DataType::Decimal64(_, s) | DataType::Decimal128(_, s) => {
            Some(*s)
        }
        _ => None,
    }
}

/// The `Float64` values of a scaled column: `n as f64 / 10^scale`, the arithmetic of Arrow's
/// decimal → `Float64` cast (which external readers and DataFusion's default schema adapter
/// use) with the power of ten computed once instead of once per value (powers of ten up to
/// 10^22 are exact in `f64`, so the results are the same bits).
///
/// When every stored integer is in `[-2^51, 2^51)` (all real readings), each is turned
/// into a float by [`small_to_f64`], the same exact value as `n as f64` but in instructions that
/// work on several values at once, so that the loop vectorizes on any x86-64 (its plain
/// integer conversion does not).
pub fn unscale(values: &Decimal64Array) -> Float64Array {
    let p = pow10(values.scale());
    // `n + 2^51` is in `[0, 2^52)` exactly when `n` is in `[-2^51, 2^51)`: the bits above of
    // all values, or-ed together (comparing 64-bit integers does not vectorize on x86-64's
    // baseline instructions; adding and or-ing do).
    let above = values
        .values()
        .iter()
        .fold(0u64, |above, &n| above | n.wrapping_add(SMALL_BIAS) as u64);
    let small = above >> 52 == 0;
    // The closures take `p` by value: captured by reference, it was loaded again for every
    // value (the compiler could not tell that the output does not overwrite it), which kept
    // the loop scalar.
    if small {
        values.unary::<_, Float64Type>(move |n| small_to_f64(n) / p)
    } else {
        values.unary::<_, Float64Type>(move |n| n as f64 / p)
    }
}

/// Integers in `[-2^51, 2^51)` are converted by [`small_to_f64`].
const SMALL_BIAS: i64 = 1 << 51;

/// `n as f64` for `n` in `[-2^51, 2^51)`: `2^52 + 2^51 + n` lies in `[2^52, 2^53)`, where doubles are
/// exactly the integers, so its bits are those of the double `1.5 · 2^52` plus `n`; taking
/// `1.5 · 2^52` off again is exact.
fn small_to_f64(n: i64) -> f64 {
    const MAGIC: f64 = 6_755_399_441_055_744.0; // 2^52 + 2^51
    f64::from_bits(MAGIC.to_bits().wrapping_add(n as u64)) - MAGIC
}

/// A batch read from a data file (all columns or a projection), with a scaled `value` column
/// turned back into `Float64`, bit for bit what was written. Batches of `Float64` files pass
/// through untouched.
pub fn decode_file_batch(batch: RecordBatch) -> std::result::Result<RecordBatch, ArrowError> {
    let batch_schema = batch.schema();
    let Some((idx, _)) = batch_schema
        .column_with_name(columns::VALUE)
        .filter(|(_, f)| f.data_type() != &DataType::Float64)
    else {
        return Ok(batch);
    };
    let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
    cols[idx] = match cols[idx].as_primitive_opt::<Decimal64Type>() {
        Some(scaled) => Arc::new(unscale(scaled)),
        None => cast(&cols[idx], &DataType::Float64)?,
    };
    let mut fields: Vec<Arc<Field>> = batch_schema.fields().iter().cloned().collect();
    fields[idx] = Arc::new(Field::new(columns::VALUE, DataType::Float64, true));
    let table = schema();
    let decoded = if fields.as_slice() == table.fields().as_ref() {
        table
    } else {
        Arc::new(Schema::new(fields))
    };
    RecordBatch::try_new(decoded, cols)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memtable::Memtable;
    use crate::point::Point;
    use std::time::Instant;

    fn batch_of(values: &[f64]) -> RecordBatch {
        let points: Vec<Point> = values
            .iter()
            .enumerate()
            .map(|(i, &v)| Point::number(1, 1, 0, i as i64, v))
            .chain(std::iter::once(Point::from_text(1, 1, 1, 0, "on")))
            .collect();
        let mut m = Memtable::new();
        m.append(1, &points, Instant::now());
        let frozen = m.freeze().unwrap().batches;
        arrow::compute::concat_batches(&schema(), &frozen).unwrap()
    }

    fn scale_of(values: &[f64]) -> Option<i8> {
        let batch = encode(&batch_of(values)).unwrap()?;
        match batch.schema().field(COL_VALUE).data_type() {
            DataType::Decimal64(18, s) => Some(*s),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn picks_the_smallest_exact_scale() {
        assert_eq!(scale_of(&[1.0, -7.0, 0.0]), Some(0));
        assert_eq!(scale_of(&[23.45, 23.5, -40.0]), Some(2));
        assert_eq!(scale_of(&[0.1, 0.001]), Some(3));
        assert_eq!(scale_of(&[1e15, 0.5]), Some(1));
        assert_eq!(scale_of(&[0.000_001]), Some(6));
    }

    #[test]
    fn keeps_floats_that_no_scale_holds() {
        for v in [
            1.0 / 3.0,
            0.1 + 0.2,
            f64::NAN,
            f64::INFINITY,
            -0.0,
            1e-7,
            1e18,
            f64::MAX,
        ] {
            assert_eq!(scale_of(&[1.5, v]), None, "{v}");
        }
    }

    #[test]
    fn small_integers_convert_exactly() {
        let edge = (1i64 << 51) - 1;
        for n in [
            0,
            1,
            -1,
            7,
            -12_345,
            edge,
            -edge,
            -edge - 1,
            1 << 50,
            -(1 << 50),
        ] {
            assert_eq!(small_to_f64(n).to_bits(), (n as f64).to_bits(), "{n}");
        }
        // Arrays with one value outside the range are converted as before.
        for outside in [
            (1i64 << 51) + 1,
            1i64 << 51,
            -(1 << 51) - 1,
            i64::MAX,
            i64::MIN + 1,
            999_999_999_999_999_999,
        ] {
            let scaled = Decimal64Array::from(vec![3, outside, -7])
                .with_precision_and_scale(PRECISION, 0)
                .unwrap();
            let unscaled = unscale(&scaled);
            assert_eq!(
                unscaled.value(1).to_bits(),
                (outside as f64).to_bits(),
                "{outside}"
            );
            assert_eq!(unscaled.value(2), -7.0);
        }
        // Zero comes back as +0.0, as `0 as f64` does.
        assert!(small_to_f64(0).is_sign_positive());
    }

    proptest::proptest! {
        /// Whatever the values, encoding then decoding gives the batch back bit for bit.
        #[test]
        fn round_trips_bit_for_bit(
            cents in proptest::collection::vec(-10_000_000i64..10_000_000, 1..50),
            decimals in 0i32..9,
            raw in proptest::option::of(proptest::num::f64::ANY),
        ) {
            let mut values: Vec<f64> =
                cents.iter().map(|&c| c as f64 / 10f64.powi(decimals)).collect();
            values.extend(raw);
            let batch = batch_of(&values);
            if let Some(encoded) = encode(&batch).unwrap() {
                let decoded = decode_file_batch(encoded).unwrap();
                proptest::prop_assert!(Arc::ptr_eq(&decoded.schema(), &schema()));
                let a = decoded.column(COL_VALUE).as_primitive::<Float64Type>();
                let b = batch.column(COL_VALUE).as_primitive::<Float64Type>();
                proptest::prop_assert_eq!(a.nulls(), b.nulls());
                for i in 0..a.len() {
                    if b.is_valid(i) {
                        proptest::prop_assert_eq!(a.value(i).to_bits(), b.value(i).to_bits());
                    }
                }
                proptest::prop_assert_eq!(decoded.column(5), batch.column(5));
            } else {
                // Only values with more than six decimals, or not finite, stay floats.
                proptest::prop_assert!(decimals > 6 || raw.is_some());
            }
        }
    }

    proptest::proptest! {
        /// `unscale` gives the bits of Arrow's cast kernel, for every scale used.
        #[test]
        fn unscale_is_the_cast_kernel(
            n in proptest::collection::vec(-999_999_999_999_999_999i64..=999_999_999_999_999_999, 1..64),
            scale in 0i8..=MAX_SCALE,
        ) {
            let scaled = Decimal64Array::from(n).with_precision_and_scale(PRECISION, scale).unwrap();
            let ours = unscale(&scaled);
            let theirs = cast(&scaled, &DataType::Float64).unwrap();
            let theirs = theirs.as_primitive::<Float64Type>();
            for (a, b) in ours.values().iter().zip(theirs.values().iter()) {
                proptest::prop_assert_eq!(a.to_bits(), b.to_bits());
            }
        }

        /// The same for integers all below 2^51 (the vectorized conversion), with nulls.
        #[test]
        fn unscale_of_small_integers_is_the_cast_kernel(
            n in proptest::collection::vec(
                proptest::option::of(-(1i64 << 51)..(1i64 << 51)), 1..64),
            scale in 0i8..=MAX_SCALE,
        ) {
            let scaled = Decimal64Array::from(n).with_precision_and_scale(PRECISION, scale).unwrap();
            let ours = unscale(&scaled);
            let theirs = cast(&scaled, &DataType::Float64).unwrap();
            proptest::prop_assert_eq!(ours.nulls(), theirs.nulls());
            let theirs = theirs.as_primitive::<Float64Type>();
            for i in (0..ours.len()).filter(|&i| ours.is_valid(i)) {
                proptest::prop_assert_eq!(ours.value(i).to_bits(), theirs.value(i).to_bits());
            }
        }
    }

    #[test]
    fn decode_leaves_float_batches_and_other_projections_alone() {
        let batch = batch_of(&[1.0 / 3.0]);
        let same = decode_file_batch(batch.clone()).unwrap();
        assert_eq!(same, batch);
        let encoded = encode(&batch_of(&[2.5])).unwrap().unwrap();
        let projected = encoded.project(&[3, 4]).unwrap();
        let decoded = decode_file_batch(projected).unwrap();
        assert_eq!(decoded.schema().field(1).data_type(), &DataType::Float64);
        assert_eq!(
            decoded.column(1).as_primitive::<Float64Type>().value(0),
            2.5
        );
    }
}
