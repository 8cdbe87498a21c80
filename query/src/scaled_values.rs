//! Reading the `value` column of files that store it as scaled integers.
//!
//! The storage engine writes `value` as `Decimal64(18, s)` when that is exact (see
//! `storage/src/value_encoding.rs`); the table's type is `Float64`. DataFusion's default scan
//! adapter bridges the two with a cast whose kernel computes `10^s` once per value. This
//! adapter runs the default one, then replaces that cast with [`UnscaleExpr`], which calls
//! [`pinhouse_storage::unscale`]: the same bits, with the power computed once per batch.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Decimal64Type, FieldRef, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::ColumnarValue;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{CastExpr, Column};
use datafusion::physical_expr_adapter::{
    DefaultPhysicalExprAdapterFactory, PhysicalExprAdapter, PhysicalExprAdapterFactory,
};
use pinhouse_storage::columns;

/// Scan adapter factory for telemetry files: DataFusion's default, with scaled `value`
/// columns decoded by [`UnscaleExpr`].
#[derive(Debug)]
pub(crate) struct ScaledValueAdapterFactory;

impl PhysicalExprAdapterFactory for ScaledValueAdapterFactory {
    fn create(
        &self,
        logical_file_schema: SchemaRef,
        physical_file_schema: SchemaRef,
    ) -> DfResult<Arc<dyn PhysicalExprAdapter>> {
        let scaled = matches!(
            physical_file_schema
                .field_with_name(columns::VALUE)
                .map(|f| f.data_type()),
            Ok(DataType::Decimal64(_, _))
        );
        let inner =
            DefaultPhysicalExprAdapterFactory.create(logical_file_schema, physical_file_schema)?;
        Ok(Arc::new(ScaledValueAdapter { inner, scaled }))
    }
}

#[derive(Debug)]
struct ScaledValueAdapter {
    inner: Arc<dyn PhysicalExprAdapter>,
    /// Whether this file stores `value` as `Decimal64`.
    scaled: bool,
}

impl PhysicalExprAdapter for ScaledValueAdapter {
    fn rewrite(&self, expr: Arc<dyn PhysicalExpr>) -> DfResult<Arc<dyn PhysicalExpr>> {
        let expr = self.inner.rewrite(expr)?;
        if !self.scaled {
            return Ok(expr);
        }
        expr.transform_up(|e| {
            let Some(cast) = e.downcast_ref::<CastExpr>() else {
                return Ok(Transformed::no(e));
            };
            let reads_value = cast
                .expr()
                .downcast_ref::<Column>()
                .is_some_and(|c| c.name() == columns::VALUE);
            if reads_value && cast.cast_type() == &DataType::Float64 {
                let unscale = UnscaleExpr {
                    input: Arc::clone(cast.expr()),
                    field: Arc::clone(cast.target_field()),
                };
                return Ok(Transformed::yes(Arc::new(unscale) as Arc<dyn PhysicalExpr>));
            }
            Ok(Transformed::no(e))
        })
        .data()
    }
}

/// `Decimal64` column → `Float64`, by [`pinhouse_storage::unscale`].
#[derive(Debug, Eq)]
pub(crate) struct UnscaleExpr {
    input: Arc<dyn PhysicalExpr>,
    /// The table's `value` field.
    field: FieldRef,
}

// By hand: the derives do not see through `Arc<dyn PhysicalExpr>`.
impl PartialEq for UnscaleExpr {
    fn eq(&self, other: &Self) -> bool {
        self.input.as_ref() == other.input.as_ref() && self.field == other.field
    }
}

impl Hash for UnscaleExpr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.input.as_ref().hash(state);
        self.field.hash(state);
    }
}

impl fmt::Display for UnscaleExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unscale({})", self.input)
    }
}

impl PhysicalExpr for UnscaleExpr {
    fn return_field(&self, _input_schema: &Schema) -> DfResult<FieldRef> {
        Ok(Arc::clone(&self.field))
    }

    fn evaluate(&self, batch: &RecordBatch) -> DfResult<ColumnarValue> {
        let input = self.input.evaluate(batch)?.into_array(batch.num_rows())?;
        let scaled = input.as_primitive_opt::<Decimal64Type>().ok_or_else(|| {
            DataFusionError::Internal(format!(
                "unscale: expected Decimal64, got {}",
                input.data_type()
            ))
        })?;
        Ok(ColumnarValue::Array(Arc::new(pinhouse_storage::unscale(
            scaled,
        ))))
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![&self.input]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> DfResult<Arc<dyn PhysicalExpr>> {
        let input = children
            .pop()
            .filter(|_| children.is_empty())
            .ok_or_else(|| DataFusionError::Internal("unscale takes one input".into()))?;
        Ok(Arc::new(UnscaleExpr {
            input,
            field: Arc::clone(&self.field),
        }))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CAST(")?;
        self.input.fmt_sql(f)?;
        write!(f, " AS DOUBLE)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Decimal64Array, Float64Array};
    use datafusion::arrow::datatypes::Field;

    fn schemas(value: DataType) -> (SchemaRef, SchemaRef) {
        let logical = pinhouse_storage::schema();
        let mut fields = logical.fields().to_vec();
        let idx = logical.index_of(columns::VALUE).unwrap();
        fields[idx] = Arc::new(Field::new(columns::VALUE, value, true));
        (logical, Arc::new(Schema::new(fields)))
    }

    #[test]
    fn scaled_files_read_value_through_unscale() {
        let (logical, physical) = schemas(DataType::Decimal64(18, 2));
        let adapter = ScaledValueAdapterFactory
            .create(Arc::clone(&logical), Arc::clone(&physical))
            .unwrap();
        let idx = logical.index_of(columns::VALUE).unwrap();
        let expr = adapter
            .rewrite(Arc::new(Column::new(columns::VALUE, idx)))
            .unwrap();
        assert!(expr.downcast_ref::<UnscaleExpr>().is_some(), "{expr}");
        // Evaluated on a one-column batch of the file's type.
        let values = Decimal64Array::from(vec![Some(2345), None, Some(-1)])
            .with_precision_and_scale(18, 2)
            .unwrap();
        let cols = (0..physical.fields().len())
            .map(|i| {
                let field = physical.field(i);
                if i == idx {
                    Arc::new(values.clone()) as _
                } else if field.is_nullable() {
                    datafusion::arrow::array::new_null_array(field.data_type(), 3)
                } else {
                    datafusion::common::ScalarValue::new_zero(field.data_type())
                        .and_then(|z| z.to_array_of_size(3))
                        .unwrap()
                }
            })
            .collect();
        let batch = RecordBatch::try_new(Arc::clone(&physical), cols).unwrap();
        let out = expr.evaluate(&batch).unwrap().into_array(3).unwrap();
        let out = out.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        assert_eq!(
            out,
            &Float64Array::from(vec![Some(23.45), None, Some(-0.01)])
        );
    }

    #[test]
    fn float_files_are_left_to_the_default_adapter() {
        let (logical, physical) = schemas(DataType::Float64);
        let adapter = ScaledValueAdapterFactory
            .create(Arc::clone(&logical), physical)
            .unwrap();
        let idx = logical.index_of(columns::VALUE).unwrap();
        let expr = adapter
            .rewrite(Arc::new(Column::new(columns::VALUE, idx)))
            .unwrap();
        assert!(expr.downcast_ref::<Column>().is_some(), "{expr}");
    }
}
