//! Arrow types as DuckDB column types, for `CREATE TABLE` from a declared schema.

pub use accel_plugin_api::embedded::pushdown::quote_ident;
use datafusion::arrow::datatypes::{DataType, Field, TimeUnit};

/// The DuckDB column type storing `data_type` without loss, or why there is none.
pub fn duckdb_type(data_type: &DataType) -> Result<String, String> {
    Ok(match data_type {
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INTEGER".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::UInt8 => "UTINYINT".into(),
        DataType::UInt16 => "USMALLINT".into(),
        DataType::UInt32 => "UINTEGER".into(),
        DataType::UInt64 => "UBIGINT".into(),
        DataType::Float16 | DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "VARCHAR".into(),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "BLOB".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Time32(_) | DataType::Time64(_) => "TIME".into(),
        DataType::Timestamp(unit, None) => match unit {
            TimeUnit::Second => "TIMESTAMP_S".into(),
            TimeUnit::Millisecond => "TIMESTAMP_MS".into(),
            TimeUnit::Microsecond => "TIMESTAMP".into(),
            TimeUnit::Nanosecond => "TIMESTAMP_NS".into(),
        },
        DataType::Timestamp(_, Some(_)) => "TIMESTAMPTZ".into(),
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s)
            if *p <= 38 =>
        {
            format!("DECIMAL({p},{s})")
        }
        DataType::Interval(_) => "INTERVAL".into(),
        DataType::List(item) | DataType::LargeList(item) | DataType::ListView(item) => {
            format!("{}[]", duckdb_type(item.data_type())?)
        }
        DataType::FixedSizeList(item, n) => format!("{}[{n}]", duckdb_type(item.data_type())?),
        DataType::Struct(fields) => {
            let members: Result<Vec<String>, String> = fields
                .iter()
                .map(|f| {
                    Ok(format!(
                        "{} {}",
                        quote_ident(f.name()),
                        duckdb_type(f.data_type())?
                    ))
                })
                .collect();
            format!("STRUCT({})", members?.join(", "))
        }
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => format!(
                "MAP({}, {})",
                duckdb_type(kv[0].data_type())?,
                duckdb_type(kv[1].data_type())?
            ),
            other => return Err(format!("map entries of type {other}")),
        },
        other => return Err(format!("no DuckDB column type stores Arrow type {other}")),
    })
}

/// A column definition for `CREATE TABLE`.
pub fn column_definition(field: &Field) -> Result<String, String> {
    let not_null = if field.is_nullable() { "" } else { " NOT NULL" };
    let ty =
        duckdb_type(field.data_type()).map_err(|e| format!("column `{}`: {e}", field.name()))?;
    Ok(format!("{} {ty}{not_null}", quote_ident(field.name())))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn nested_types_map_recursively() {
        let list = DataType::List(Arc::new(Field::new("item", DataType::Int64, true)));
        assert_eq!(duckdb_type(&list).unwrap(), "BIGINT[]");
        let st = DataType::Struct(
            vec![
                Field::new("a b", DataType::Utf8View, true),
                Field::new("c", list, true),
            ]
            .into(),
        );
        assert_eq!(
            duckdb_type(&st).unwrap(),
            "STRUCT(\"a b\" VARCHAR, \"c\" BIGINT[])"
        );
        assert_eq!(
            duckdb_type(&DataType::Decimal128(10, 2)).unwrap(),
            "DECIMAL(10,2)"
        );
        assert!(duckdb_type(&DataType::Null).is_err());
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }
}
