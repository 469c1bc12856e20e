//! A shard's part of a source: which files (`shard_by: file`) or which rows
//! (`shard_by: hash(column)`) belong to shard *i* of *n*. The same function decides on every
//! machine, so each row of the source is held by exactly one shard.
//!
//! Both choices hash with xxh3 (64 bits, seed 0), which is fixed by its specification: a
//! file by its path as listed, a row by its value in Arrow's row format (the canonical
//! byte encoding of `arrow::row`, the same for equal values of one type). The coordinator
//! refuses workers of another accel version, so both sides encode values alike.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, UInt32Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, col, lit,
};
use datafusion::prelude::DataFrame;
use xxhash_rust::xxh3::xxh3_64;

use crate::config::{ShardBy, ShardPart};

/// The shard (of `count`) a source file belongs to, by its path as listed.
pub fn shard_of_file(path: &str, count: u32) -> u32 {
    (xxh3_64(path.as_bytes()) % u64::from(count.max(1))) as u32
}

/// The shard (of `count`) holding the rows whose hashed column equals `value` (of that
/// column's type) under `shard_by: hash(column)`.
pub fn shard_of_value(value: &ScalarValue, count: u32) -> Result<u32> {
    let shards = shards_of(&value.to_array()?, count.max(1))?;
    let shards = shards
        .as_any()
        .downcast_ref::<UInt32Array>()
        .ok_or_else(|| DataFusionError::Internal("shards are UInt32".into()))?;
    Ok(shards.value(0))
}

/// Keeps the rows of `rows` that belong to `part` (for `shard_by: hash(column)`; a
/// `shard_by: file` part is chosen when the source is listed).
pub fn keep_shard_rows(rows: DataFrame, part: &ShardPart) -> Result<DataFrame> {
    let ShardBy::Hash { column } = &part.by else {
        return Ok(rows);
    };
    if rows.schema().field_with_unqualified_name(column).is_err() {
        let columns: Vec<String> = rows
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        return Err(DataFusionError::Plan(format!(
            "dataset `{}`: shard_by: hash({column}) names no column of the source (columns: \
             {}); fix acceleration.shard_by",
            part.dataset,
            columns.join(", ")
        )));
    }
    let shard_of = ScalarUDF::new_from_impl(ShardOfValue::new(part.count));
    rows.filter(
        shard_of
            .call(vec![col(column.as_str())])
            .eq(lit(part.index)),
    )
}

/// `accel_shard_of(value)`: the shard (of `count`) a value belongs to.
#[derive(Debug)]
struct ShardOfValue {
    count: u32,
    signature: Signature,
}

impl ShardOfValue {
    fn new(count: u32) -> Self {
        Self {
            count: count.max(1),
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl PartialEq for ShardOfValue {
    fn eq(&self, other: &Self) -> bool {
        self.count == other.count
    }
}

impl Eq for ShardOfValue {}

impl Hash for ShardOfValue {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.count.hash(state);
    }
}

impl ScalarUDFImpl for ShardOfValue {
    fn name(&self) -> &str {
        "accel_shard_of"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::UInt32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let values = match &args.args[..] {
            [value] => value.to_array(args.number_rows)?,
            _ => {
                return Err(DataFusionError::Internal(
                    "accel_shard_of takes one argument".into(),
                ));
            }
        };
        Ok(ColumnarValue::Array(shards_of(&values, self.count)?))
    }
}

/// The shard of each value of `values`.
fn shards_of(values: &ArrayRef, count: u32) -> Result<ArrayRef> {
    let converter = RowConverter::new(vec![SortField::new(values.data_type().clone())])?;
    let rows = converter.convert_columns(std::slice::from_ref(values))?;
    let shards: UInt32Array = rows
        .iter()
        .map(|row| Some((xxh3_64(row.as_ref()) % u64::from(count)) as u32))
        .collect();
    Ok(Arc::new(shards))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, Int64Array, StringArray};

    #[test]
    fn equal_values_share_a_shard_and_every_shard_is_used() {
        let values: ArrayRef = Arc::new(Int64Array::from_iter_values(
            (0..1000).chain(0..1000).map(|v| v * 7919),
        ));
        let shards = shards_of(&values, 3).unwrap();
        let shards = shards.as_any().downcast_ref::<UInt32Array>().unwrap();
        for i in 0..1000 {
            assert_eq!(shards.value(i), shards.value(i + 1000));
        }
        let mut used = [0usize; 3];
        for shard in shards.values() {
            used[*shard as usize] += 1;
        }
        assert!(used.iter().all(|n| *n > 400), "{used:?}");
    }

    #[test]
    fn nulls_nan_and_text_have_a_shard() {
        let floats: ArrayRef = Arc::new(Float64Array::from(vec![
            Some(f64::NAN),
            None,
            Some(-0.0),
            Some(f64::INFINITY),
        ]));
        assert_eq!(shards_of(&floats, 4).unwrap().len(), 4);
        let text: ArrayRef = Arc::new(StringArray::from(vec![Some("a\0b"), None, Some("Ä")]));
        let shards = shards_of(&text, 2).unwrap();
        assert_eq!(shards.null_count(), 0);
    }

    #[test]
    fn a_value_is_found_on_the_shard_its_rows_were_put_on() {
        let values: ArrayRef = Arc::new(StringArray::from(vec!["a\0b", "Straße", "", "x"]));
        let shards = shards_of(&values, 5).unwrap();
        let shards = shards.as_any().downcast_ref::<UInt32Array>().unwrap();
        for (i, text) in ["a\0b", "Straße", "", "x"].iter().enumerate() {
            let value = ScalarValue::Utf8(Some((*text).to_owned()));
            assert_eq!(shard_of_value(&value, 5).unwrap(), shards.value(i));
        }
        let numbers: ArrayRef = Arc::new(Int64Array::from(vec![i64::MIN, 0, 7, i64::MAX]));
        let shards = shards_of(&numbers, 3).unwrap();
        let shards = shards.as_any().downcast_ref::<UInt32Array>().unwrap();
        for (i, n) in [i64::MIN, 0, 7, i64::MAX].iter().enumerate() {
            let value = ScalarValue::Int64(Some(*n));
            assert_eq!(shard_of_value(&value, 3).unwrap(), shards.value(i));
        }
    }

    #[test]
    fn a_file_belongs_to_one_shard_whatever_the_others() {
        let shard = shard_of_file("data/part-7.parquet", 5);
        assert!(shard < 5);
        assert_eq!(shard, shard_of_file("data/part-7.parquet", 5));
        assert_eq!(shard_of_file("anything", 1), 0);
    }
}
