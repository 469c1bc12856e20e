//! Moves record batches between DataFusion's Arrow (the `datafusion::arrow` version) and the
//! duckdb crate's Arrow (another major) through the Arrow C data interface: zero copy, only the
//! buffer ownership changes hands.

use datafusion::arrow::array::{Array, RecordBatch, StructArray};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::ffi as df_ffi;
use duckdb::arrow::array::{
    Array as DuckArray, RecordBatch as DuckRecordBatch, StructArray as DuckStructArray,
};
use duckdb::arrow::ffi as duck_ffi;

/// A batch exported by DuckDB, as DataFusion's Arrow.
pub fn from_duckdb(batch: DuckRecordBatch) -> Result<RecordBatch, ArrowError> {
    let rows = batch.num_rows();
    let data = DuckStructArray::from(batch).into_data();
    let (array, schema) =
        duck_ffi::to_ffi(&data).map_err(|e| ArrowError::CDataInterface(e.to_string()))?;
    // SAFETY: both crates' `FFI_ArrowArray` / `FFI_ArrowSchema` are `#[repr(C)]` definitions of
    // the Arrow C data interface structs (same fields, same order, fixed by the Arrow spec);
    // `transmute` checks the sizes match. Ownership of the release callbacks moves with them.
    let (array, schema) = unsafe {
        (
            std::mem::transmute::<duck_ffi::FFI_ArrowArray, df_ffi::FFI_ArrowArray>(array),
            std::mem::transmute::<duck_ffi::FFI_ArrowSchema, df_ffi::FFI_ArrowSchema>(schema),
        )
    };
    // SAFETY: `array` and `schema` were produced together by `to_ffi` above and are valid.
    let data = unsafe { df_ffi::from_ffi(array, &schema)? };
    let structs = StructArray::from(data);
    debug_assert_eq!(structs.len(), rows);
    Ok(RecordBatch::from(structs))
}

/// A DataFusion batch as the duckdb crate's Arrow, for its appender.
pub fn to_duckdb(batch: RecordBatch) -> Result<DuckRecordBatch, ArrowError> {
    let data = StructArray::from(batch).into_data();
    let (array, schema) = df_ffi::to_ffi(&data)?;
    // SAFETY: as in `from_duckdb`, in the other direction.
    let (array, schema) = unsafe {
        (
            std::mem::transmute::<df_ffi::FFI_ArrowArray, duck_ffi::FFI_ArrowArray>(array),
            std::mem::transmute::<df_ffi::FFI_ArrowSchema, duck_ffi::FFI_ArrowSchema>(schema),
        )
    };
    // SAFETY: produced together by `to_ffi` above.
    let data = unsafe { duck_ffi::from_ffi(array, &schema) }
        .map_err(|e| ArrowError::CDataInterface(e.to_string()))?;
    Ok(DuckRecordBatch::from(DuckStructArray::from(data)))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int32Array, StringViewArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn round_trip_keeps_values_and_types() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("b", DataType::Utf8View, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(vec![Some(1), None, Some(3)])),
                Arc::new(StringViewArray::from(vec![
                    Some("x"),
                    Some("a longer string value"),
                    None,
                ])),
            ],
        )
        .unwrap();
        let back = from_duckdb(to_duckdb(batch.clone()).unwrap()).unwrap();
        assert_eq!(back, batch);
    }
}
