//! How each Arrow type is stored in SQLite, both ways. SQLite has four storage classes
//! (INTEGER, REAL, TEXT, BLOB); a column's declared type only sets its affinity, so the
//! declared Arrow schema is what gives values back their type.
//!
//! | Arrow | declared as | stored |
//! |---|---|---|
//! | Boolean | `BOOLEAN` | INTEGER 0 / 1 |
//! | Int8 … Int64, UInt8 … UInt64 | `TINYINT` … `UBIGINT` | INTEGER (UInt64 above 2^63-1 refused) |
//! | Float32, Float64 | `FLOAT`, `DOUBLE` | REAL (NaN and -0.0 refused: SQLite would store NULL and 0.0) |
//! | Utf8, LargeUtf8, Utf8View | `TEXT` | TEXT |
//! | Binary, LargeBinary, BinaryView, FixedSizeBinary | `BLOB` | BLOB |
//! | Date32 | `DATE` | TEXT `YYYY-MM-DD`, years 0000–9999 (SQLite's date format; sorts as text) |
//! | Time32/64(unit) | `TIME_S` … `TIME_NS` | INTEGER units since midnight |
//! | Timestamp(unit, tz) | `TIMESTAMP_S` … `TIMESTAMP_NS` (`TIMESTAMPTZ_…`) | INTEGER units since 1970-01-01 UTC |
//! | Decimal128(p, s) | `DECIMAL_TEXT(p,s)` | TEXT, e.g. `12.50` (exact: REAL would round) |
//! | List, LargeList, FixedSizeList, Struct | `JSON_TEXT` | TEXT holding JSON |
//!
//! Other types (intervals, durations, maps, dictionaries, Float16, Date64, other decimals)
//! are refused when the table is created, naming the column.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, BinaryBuilder, Float64Array, Float64Builder, Int64Array,
    Int64Builder, RecordBatch, StringArray, StringBuilder,
};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, FieldRef, Schema, TimeUnit};
use arrow::json::writer::{EncoderOptions, make_encoder};
use datafusion::error::{DataFusionError, Result};
use rusqlite::types::ValueRef;

/// The storage class a column's values are kept in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StorageClass {
    Integer,
    Real,
    Text,
    Blob,
}

/// How one Arrow type is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stored {
    /// Stored as the storage class, converted by an Arrow cast both ways.
    Cast(StorageClass),
    /// Date32 as `YYYY-MM-DD`.
    Date,
    /// Time32 through Int32 (no direct Int64 cast).
    Time32,
    /// Nested values as JSON text.
    Json,
}

/// The declared SQLite type and the storage of `data_type`, or why it cannot be stored.
fn stored(data_type: &DataType) -> Result<(String, Stored), String> {
    use StorageClass::*;
    let unit = |u: &TimeUnit| match u {
        TimeUnit::Second => "S",
        TimeUnit::Millisecond => "MS",
        TimeUnit::Microsecond => "US",
        TimeUnit::Nanosecond => "NS",
    };
    Ok(match data_type {
        DataType::Boolean => ("BOOLEAN".into(), Stored::Cast(Integer)),
        DataType::Int8 => ("TINYINT".into(), Stored::Cast(Integer)),
        DataType::Int16 => ("SMALLINT".into(), Stored::Cast(Integer)),
        DataType::Int32 => ("INTEGER".into(), Stored::Cast(Integer)),
        DataType::Int64 => ("BIGINT".into(), Stored::Cast(Integer)),
        DataType::UInt8 => ("UTINYINT".into(), Stored::Cast(Integer)),
        DataType::UInt16 => ("USMALLINT".into(), Stored::Cast(Integer)),
        DataType::UInt32 => ("UINTEGER".into(), Stored::Cast(Integer)),
        DataType::UInt64 => ("UBIGINT".into(), Stored::Cast(Integer)),
        DataType::Float32 => ("FLOAT".into(), Stored::Cast(Real)),
        DataType::Float64 => ("DOUBLE".into(), Stored::Cast(Real)),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            ("TEXT".into(), Stored::Cast(Text))
        }
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => ("BLOB".into(), Stored::Cast(Blob)),
        DataType::Date32 => ("DATE".into(), Stored::Date),
        DataType::Time32(u) => (format!("TIME_{}", unit(u)), Stored::Time32),
        DataType::Time64(u) => (format!("TIME_{}", unit(u)), Stored::Cast(Integer)),
        DataType::Timestamp(u, None) => (format!("TIMESTAMP_{}", unit(u)), Stored::Cast(Integer)),
        DataType::Timestamp(u, Some(_)) => {
            (format!("TIMESTAMPTZ_{}", unit(u)), Stored::Cast(Integer))
        }
        DataType::Decimal128(p, s) => (format!("DECIMAL_TEXT({p},{s})"), Stored::Cast(Text)),
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::FixedSizeList(_, _)
        | DataType::Struct(_) => ("JSON_TEXT".into(), Stored::Json),
        other => {
            return Err(format!(
                "type {other} cannot be stored in SQLite by this engine; supported: booleans, \
                 integers, FLOAT/DOUBLE, strings, binary, DATE, TIME, TIMESTAMP, DECIMAL(p,s) \
                 up to 38 digits, lists and structs (as JSON)"
            ));
        }
    })
}

/// A column definition for `CREATE TABLE`.
pub fn column_definition(field: &Field) -> Result<String, String> {
    let (declared, _) =
        stored(field.data_type()).map_err(|e| format!("column `{}`: {e}", field.name()))?;
    let not_null = if field.is_nullable() { "" } else { " NOT NULL" };
    Ok(format!(
        "{} {declared}{not_null}",
        accel_plugin_api::embedded::pushdown::quote_ident(field.name())
    ))
}

/// The declared SQLite type of `data_type` (as `PRAGMA table_info` reports it).
pub fn declared_type(data_type: &DataType) -> Result<String, String> {
    stored(data_type).map(|(declared, _)| declared)
}

/// Casts that fail on a value that does not fit instead of writing NULL.
const STRICT: CastOptions<'static> = CastOptions {
    safe: false,
    format_options: arrow::util::display::FormatOptions::new(),
};

/// Dates whose `YYYY-MM-DD` text SQLite and text ordering understand: 0000-01-01..=9999-12-31.
const DATE_DAYS: std::ops::RangeInclusive<i32> = -719_528..=2_932_896;

/// One column of a batch, ready to bind row by row.
pub enum Cells {
    Integer(Int64Array),
    Real(Float64Array),
    Text(StringArray),
    Blob(BinaryArray),
}

impl Cells {
    /// The value of `row` as an SQLite value.
    pub fn value(&self, row: usize) -> ValueRef<'_> {
        match self {
            Cells::Integer(a) if a.is_valid(row) => ValueRef::Integer(a.value(row)),
            Cells::Real(a) if a.is_valid(row) => ValueRef::Real(a.value(row)),
            Cells::Text(a) if a.is_valid(row) => ValueRef::Text(a.value(row).as_bytes()),
            Cells::Blob(a) if a.is_valid(row) => ValueRef::Blob(a.value(row)),
            _ => ValueRef::Null,
        }
    }
}

fn column_error(field: &Field, e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Execution(format!(
        "column `{}` ({}): {e}; nothing was written",
        field.name(),
        field.data_type()
    ))
}

/// Converts every column of `batch` to the values SQLite stores.
pub fn to_cells(batch: &RecordBatch) -> Result<Vec<Cells>> {
    batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(field, column)| column_cells(field, column))
        .collect()
}

fn column_cells(field: &FieldRef, column: &ArrayRef) -> Result<Cells> {
    let (_, how) = stored(field.data_type()).map_err(|e| column_error(field, e))?;
    let to = |ty: &DataType, column: &ArrayRef| {
        cast_with_options(column, ty, &STRICT).map_err(|e| column_error(field, e))
    };
    Ok(match how {
        Stored::Cast(StorageClass::Integer) => {
            Cells::Integer(downcast::<Int64Array>(to(&DataType::Int64, column)?))
        }
        Stored::Time32 => {
            let int32 = to(&DataType::Int32, column)?;
            Cells::Integer(downcast(to(&DataType::Int64, &int32)?))
        }
        Stored::Cast(StorageClass::Real) => {
            let values: Float64Array = downcast(to(&DataType::Float64, column)?);
            let unstorable = |v: f64| {
                if v.is_nan() {
                    Some("NaN, which SQLite cannot store (it would keep NULL)")
                } else if v == 0.0 && v.is_sign_negative() {
                    Some("-0.0, which SQLite cannot store (it would read back as 0.0)")
                } else {
                    None
                }
            };
            if let Some((row, what)) = (0..values.len())
                .filter(|&i| values.is_valid(i))
                .find_map(|i| unstorable(values.value(i)).map(|what| (i, what)))
            {
                return Err(column_error(field, format!("row {row} is {what}")));
            }
            Cells::Real(values)
        }
        Stored::Cast(StorageClass::Text) => Cells::Text(downcast(to(&DataType::Utf8, column)?)),
        Stored::Cast(StorageClass::Blob) => Cells::Blob(downcast(to(&DataType::Binary, column)?)),
        Stored::Date => {
            let days = to(&DataType::Int32, column)?;
            let days: &arrow::array::Int32Array = days.as_any().downcast_ref().expect("Int32");
            if let Some(row) =
                (0..days.len()).find(|&i| days.is_valid(i) && !DATE_DAYS.contains(&days.value(i)))
            {
                return Err(column_error(
                    field,
                    format!("row {row} is outside the years 0000-9999 that SQLite dates hold"),
                ));
            }
            Cells::Text(downcast(to(&DataType::Utf8, column)?))
        }
        Stored::Json => {
            let options = EncoderOptions::default();
            let mut encoder = make_encoder(field, column.as_ref(), &options)
                .map_err(|e| column_error(field, e))?;
            let mut text = StringBuilder::new();
            let mut buffer = Vec::new();
            for row in 0..column.len() {
                if column.is_null(row) {
                    text.append_null();
                } else {
                    buffer.clear();
                    encoder.encode(row, &mut buffer);
                    text.append_value(String::from_utf8_lossy(&buffer));
                }
            }
            Cells::Text(text.finish())
        }
    })
}

fn downcast<T: Array + Clone + 'static>(array: ArrayRef) -> T {
    array
        .as_any()
        .downcast_ref::<T>()
        .expect("cast returns the requested type")
        .clone()
}

/// Collects one column's SQLite values, then converts them to the declared Arrow type.
pub enum ColumnBuilder {
    Integer(Int64Builder),
    Real(Float64Builder),
    Text(StringBuilder),
    Blob(BinaryBuilder),
}

impl ColumnBuilder {
    pub fn for_type(data_type: &DataType) -> Result<Self> {
        let (_, how) = stored(data_type).map_err(DataFusionError::Plan)?;
        Ok(match how {
            Stored::Cast(StorageClass::Integer) | Stored::Time32 => {
                ColumnBuilder::Integer(Int64Builder::new())
            }
            Stored::Cast(StorageClass::Real) => ColumnBuilder::Real(Float64Builder::new()),
            Stored::Cast(StorageClass::Text) | Stored::Date | Stored::Json => {
                ColumnBuilder::Text(StringBuilder::new())
            }
            Stored::Cast(StorageClass::Blob) => ColumnBuilder::Blob(BinaryBuilder::new()),
        })
    }

    /// Appends a value read from SQLite; a value of another storage class (written by another
    /// program) is an error naming what was expected.
    pub fn append(&mut self, value: ValueRef<'_>) -> Result<(), String> {
        match (self, value) {
            (ColumnBuilder::Integer(b), ValueRef::Null) => b.append_null(),
            (ColumnBuilder::Real(b), ValueRef::Null) => b.append_null(),
            (ColumnBuilder::Text(b), ValueRef::Null) => b.append_null(),
            (ColumnBuilder::Blob(b), ValueRef::Null) => b.append_null(),
            (ColumnBuilder::Integer(b), ValueRef::Integer(v)) => b.append_value(v),
            (ColumnBuilder::Real(b), ValueRef::Real(v)) => b.append_value(v),
            (ColumnBuilder::Real(b), ValueRef::Integer(v)) => b.append_value(v as f64),
            (ColumnBuilder::Text(b), ValueRef::Text(v)) => b.append_value(
                std::str::from_utf8(v).map_err(|e| format!("stored text is not UTF-8: {e}"))?,
            ),
            (ColumnBuilder::Blob(b), ValueRef::Blob(v)) => b.append_value(v),
            (builder, value) => {
                let expected = match builder {
                    ColumnBuilder::Integer(_) => "INTEGER",
                    ColumnBuilder::Real(_) => "REAL",
                    ColumnBuilder::Text(_) => "TEXT",
                    ColumnBuilder::Blob(_) => "BLOB",
                };
                return Err(format!(
                    "expected a value stored as {expected}, found {:?}",
                    value.data_type()
                ));
            }
        }
        Ok(())
    }

    /// The collected values as an array of `field`'s type.
    pub fn finish(&mut self, field: &FieldRef) -> Result<ArrayRef> {
        let fail = |e: &dyn std::fmt::Display| {
            DataFusionError::Execution(format!(
                "reading column `{}` as {}: {e}",
                field.name(),
                field.data_type()
            ))
        };
        let collected: ArrayRef = match self {
            ColumnBuilder::Integer(b) => Arc::new(b.finish()),
            ColumnBuilder::Real(b) => Arc::new(b.finish()),
            ColumnBuilder::Text(b) => Arc::new(b.finish()),
            ColumnBuilder::Blob(b) => Arc::new(b.finish()),
        };
        let (_, how) = stored(field.data_type()).map_err(|e| fail(&e))?;
        match how {
            Stored::Json => from_json(field, &collected).map_err(|e| fail(&e)),
            Stored::Time32 => {
                let int32 = cast_with_options(&collected, &DataType::Int32, &STRICT)
                    .map_err(|e| fail(&e))?;
                cast_with_options(&int32, field.data_type(), &STRICT).map_err(|e| fail(&e))
            }
            _ => cast_with_options(&collected, field.data_type(), &STRICT).map_err(|e| fail(&e)),
        }
    }
}

/// Decodes a column of JSON texts into `field`'s nested type.
fn from_json(field: &FieldRef, texts: &ArrayRef) -> Result<ArrayRef, String> {
    let texts = texts
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or("JSON column collected as text")?;
    let wrapper = Arc::new(Schema::new(vec![Field::new(
        "v",
        field.data_type().clone(),
        true,
    )]));
    let mut decoder = arrow::json::ReaderBuilder::new(Arc::clone(&wrapper))
        .with_batch_size(texts.len().max(1))
        .build_decoder()
        .map_err(|e| e.to_string())?;
    let mut lines = String::new();
    for row in 0..texts.len() {
        lines.push_str("{\"v\":");
        lines.push_str(if texts.is_null(row) {
            "null"
        } else {
            texts.value(row)
        });
        lines.push_str("}\n");
    }
    decoder
        .decode(lines.as_bytes())
        .map_err(|e| e.to_string())?;
    let batch = decoder
        .flush()
        .map_err(|e| e.to_string())?
        .ok_or("no rows decoded")?;
    if batch.num_rows() != texts.len() {
        return Err(format!(
            "decoded {} JSON values from {} rows",
            batch.num_rows(),
            texts.len()
        ));
    }
    Ok(Arc::clone(batch.column(0)))
}
