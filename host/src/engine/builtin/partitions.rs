//! Partitioning of the built-in arrow engine's tables (`PARTITIONED BY (col)`): rows split by
//! the value of one column, one partition per value, and equality filters on that column
//! choosing the partitions a scan reads.

use std::collections::HashMap;

use datafusion::arrow::array::{RecordBatch, UInt32Array};
use datafusion::arrow::compute::take_record_batch;
use datafusion::common::{Column, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::expr::{Cast, InList};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};

/// The rows of `batch` grouped by the value of column `key_index`, in first-seen order.
pub fn split_by_key(
    batch: &RecordBatch,
    key_index: usize,
) -> Result<Vec<(ScalarValue, RecordBatch)>> {
    let keys = batch.column(key_index);
    let mut order: Vec<ScalarValue> = Vec::new();
    let mut rows: HashMap<ScalarValue, Vec<u32>> = HashMap::new();
    for row in 0..batch.num_rows() {
        let key = ScalarValue::try_from_array(keys, row)?;
        rows.entry(key.clone())
            .or_insert_with(|| {
                order.push(key);
                Vec::new()
            })
            .push(row as u32);
    }
    order
        .into_iter()
        .map(|key| {
            let indices = UInt32Array::from(rows.remove(&key).unwrap_or_default());
            Ok((key, take_record_batch(batch, &indices)?))
        })
        .collect()
}

/// The key values `filter` allows, when it is `col = literal`, `literal = col`,
/// `col IN (literals)` or an `OR` of those on the partition column; `None` when it does not
/// restrict the key.
pub fn allowed_keys(filter: &Expr, column: &str) -> Option<Vec<ScalarValue>> {
    let is_key = |e: &Expr| matches!(e, Expr::Column(Column { name, .. }) if name == column);
    let literal = literal_value;
    match filter {
        // DataFusion rewrites short IN lists as ORs of equalities
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            let mut keys = allowed_keys(left, column)?;
            keys.extend(allowed_keys(right, column)?);
            Some(keys)
        }
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => {
            if is_key(left) {
                literal(right).map(|v| vec![v])
            } else if is_key(right) {
                literal(left).map(|v| vec![v])
            } else {
                None
            }
        }
        Expr::InList(InList {
            expr,
            list,
            negated: false,
        }) if is_key(expr) => list.iter().map(literal).collect(),
        _ => None,
    }
}

/// A literal, or a cast of one (filters reach the provider before constant folding).
fn literal_value(expr: &Expr) -> Option<ScalarValue> {
    match expr {
        Expr::Literal(value, _) => Some(value.clone()),
        Expr::Cast(Cast { expr, field }) => literal_value(expr)?.cast_to(field.data_type()).ok(),
        _ => None,
    }
}

/// Whether a partition with `key` may hold rows passing every restriction in `allowed`.
pub fn may_match(key: &ScalarValue, allowed: &[Vec<ScalarValue>]) -> bool {
    allowed.iter().all(|values| {
        values
            .iter()
            .any(|value| match value.cast_to(&key.data_type()) {
                Ok(value) => !value.is_null() && &value == key,
                // a literal that cannot be the key's type: keep the partition, DataFusion decides
                Err(_) => true,
            })
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int32Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::logical_expr::{col, lit};

    use super::*;

    #[test]
    fn rows_split_by_key_and_filters_choose_partitions() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("v", DataType::Int32, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![
                    Some("b"),
                    Some("a"),
                    None,
                    Some("b"),
                ])),
                Arc::new(Int32Array::from(vec![1, 2, 3, 4])),
            ],
        )
        .unwrap();
        let parts = split_by_key(&batch, 0).unwrap();
        let sizes: Vec<(String, usize)> = parts
            .iter()
            .map(|(k, b)| (k.to_string(), b.num_rows()))
            .collect();
        assert_eq!(
            sizes,
            [("b".into(), 2), ("a".into(), 1), ("NULL".into(), 1)]
        );

        let eq = allowed_keys(&col("k").eq(lit("a")), "k").unwrap();
        let any = allowed_keys(&col("k").in_list(vec![lit("a"), lit("b")], false), "k").unwrap();
        assert!(allowed_keys(&col("v").eq(lit(1)), "k").is_none());
        assert!(allowed_keys(&col("k").not_eq(lit("a")), "k").is_none());
        let or = col("k").eq(lit("a")).or(col("k").eq(lit("c")));
        assert_eq!(allowed_keys(&or, "k").unwrap().len(), 2);
        assert!(allowed_keys(&col("k").eq(lit("a")).or(col("v").eq(lit(1))), "k").is_none());
        let key_a = ScalarValue::Utf8(Some("a".into()));
        let key_b = ScalarValue::Utf8(Some("b".into()));
        let key_null = ScalarValue::Utf8(None);
        assert!(may_match(&key_a, std::slice::from_ref(&eq)));
        assert!(!may_match(&key_b, std::slice::from_ref(&eq)));
        assert!(!may_match(&key_null, std::slice::from_ref(&any)));
        assert!(!may_match(&key_b, &[eq, any]), "restrictions intersect");
    }
}
