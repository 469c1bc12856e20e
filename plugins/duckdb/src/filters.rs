//! Filter pushdown: DataFusion filters translated to DuckDB SQL — only where DuckDB computes
//! exactly what DataFusion would. The query is DataFusion SQL, so DataFusion's semantics are
//! the reference; anything not provably identical is left to DataFusion (reported
//! `Unsupported`).
//!
//! Translated: `AND`, `OR`, `NOT`; `=`, `<>`, `<`, `<=`, `>`, `>=`, `BETWEEN`, `IN (…)` between a
//! column and literals of the same type; `IS [NOT] NULL`; `[NOT] LIKE` with a pattern free of
//! backslashes (the two engines' default escape characters differ); not `ILIKE` (case folding
//! differs outside ASCII). Types: integers of
//! every width, booleans, strings (both compare UTF-8 bytes), dates. Floating point is left out
//! (NaN and -0.0 ordering), as are casts (`CAST(2.7 AS INT)` is 2 in DataFusion, 3 in DuckDB)
//! and functions.

use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::expr::{Between, InList, Like};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};

use crate::types::quote_ident;

/// DuckDB SQL computing exactly `expr`, or `None`.
pub fn to_duckdb_sql(expr: &Expr, schema: &Schema) -> Option<String> {
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: op @ (Operator::And | Operator::Or),
            right,
        }) => {
            let l = to_duckdb_sql(left, schema)?;
            let r = to_duckdb_sql(right, schema)?;
            Some(format!(
                "({l} {} {r})",
                if *op == Operator::And { "AND" } else { "OR" }
            ))
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let op = comparison(*op)?;
            let (l, r) = same_typed_atoms(left, right, schema)?;
            Some(format!("({l} {op} {r})"))
        }
        Expr::Not(inner) => Some(format!("(NOT {})", to_duckdb_sql(inner, schema)?)),
        Expr::IsNull(inner) => Some(format!("({} IS NULL)", column(inner, schema)?.0)),
        Expr::IsNotNull(inner) => Some(format!("({} IS NOT NULL)", column(inner, schema)?.0)),
        Expr::Between(Between {
            expr,
            negated,
            low,
            high,
        }) => {
            let (col, ty) = column(expr, schema)?;
            let low = literal_of(low, &ty)?;
            let high = literal_of(high, &ty)?;
            let not = if *negated { "NOT " } else { "" };
            Some(format!("({col} {not}BETWEEN {low} AND {high})"))
        }
        Expr::InList(InList {
            expr,
            list,
            negated,
        }) => {
            let (col, ty) = column(expr, schema)?;
            if list.is_empty() {
                return None;
            }
            let items: Option<Vec<String>> = list.iter().map(|e| literal_of(e, &ty)).collect();
            let not = if *negated { "NOT " } else { "" };
            Some(format!("({col} {not}IN ({}))", items?.join(", ")))
        }
        // ILIKE is not pushed: DataFusion folds case by Unicode rules ('ſ' ILIKE 's' is true),
        // DuckDB compares lower() of both sides.
        Expr::Like(Like {
            negated,
            expr,
            pattern,
            escape_char: None,
            case_insensitive: false,
        }) => {
            let (col, ty) = column(expr, schema)?;
            if !is_string(&ty) {
                return None;
            }
            let pattern = match pattern.as_ref() {
                Expr::Literal(value, _) => string_value(value)?,
                _ => return None,
            };
            if pattern.contains('\\') {
                return None;
            }
            let not = if *negated { "NOT " } else { "" };
            Some(format!("({col} {not}LIKE {})", quote_string(&pattern)))
        }
        _ => None,
    }
}

fn comparison(op: Operator) -> Option<&'static str> {
    Some(match op {
        Operator::Eq => "=",
        Operator::NotEq => "<>",
        Operator::Lt => "<",
        Operator::LtEq => "<=",
        Operator::Gt => ">",
        Operator::GtEq => ">=",
        _ => return None,
    })
}

/// A column and a literal (either order) or two columns, all of one supported type.
fn same_typed_atoms(left: &Expr, right: &Expr, schema: &Schema) -> Option<(String, String)> {
    match (column(left, schema), column(right, schema)) {
        (Some((l, lt)), Some((r, rt))) => same_family(&lt, &rt).then_some((l, r)),
        (Some((l, ty)), None) => Some((l, literal_of(right, &ty)?)),
        (None, Some((r, ty))) => Some((literal_of(left, &ty)?, r)),
        (None, None) => None,
    }
}

/// A column of a supported type: its quoted name and type.
fn column(expr: &Expr, schema: &Schema) -> Option<(String, DataType)> {
    let Expr::Column(Column { name, .. }) = expr else {
        return None;
    };
    let field = schema.field_with_name(name).ok()?;
    supported(field.data_type()).then(|| (quote_ident(name), field.data_type().clone()))
}

fn supported(ty: &DataType) -> bool {
    ty.is_integer() || is_string(ty) || matches!(ty, DataType::Boolean | DataType::Date32)
}

fn is_string(ty: &DataType) -> bool {
    matches!(
        ty,
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
    )
}

fn same_family(a: &DataType, b: &DataType) -> bool {
    a == b || (is_string(a) && is_string(b))
}

/// A non-null literal of the column's type, as DuckDB SQL.
fn literal_of(expr: &Expr, column_type: &DataType) -> Option<String> {
    let Expr::Literal(value, _) = expr else {
        return None;
    };
    if value.is_null() || !same_family(&value.data_type(), column_type) {
        return None;
    }
    match value {
        ScalarValue::Int8(Some(v)) => Some(v.to_string()),
        ScalarValue::Int16(Some(v)) => Some(v.to_string()),
        ScalarValue::Int32(Some(v)) => Some(v.to_string()),
        ScalarValue::Int64(Some(v)) => Some(v.to_string()),
        ScalarValue::UInt8(Some(v)) => Some(v.to_string()),
        ScalarValue::UInt16(Some(v)) => Some(v.to_string()),
        ScalarValue::UInt32(Some(v)) => Some(v.to_string()),
        ScalarValue::UInt64(Some(v)) => Some(v.to_string()),
        ScalarValue::Boolean(Some(v)) => Some(if *v { "TRUE" } else { "FALSE" }.to_owned()),
        ScalarValue::Date32(Some(days)) => {
            let date = chrono_date(*days)?;
            Some(format!("DATE '{date}'"))
        }
        other => string_value(other).map(|s| quote_string(&s)),
    }
}

fn string_value(value: &ScalarValue) -> Option<String> {
    match value {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::Utf8View(Some(s))
        | ScalarValue::LargeUtf8(Some(s)) => {
            // DuckDB strings cannot hold NUL; DataFusion's can: leave such filters to DataFusion.
            (!s.contains('\0')).then(|| s.clone())
        }
        _ => None,
    }
}

fn quote_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `YYYY-MM-DD` of days since the epoch, for years DuckDB's DATE literal accepts.
fn chrono_date(days: i32) -> Option<String> {
    let date = datafusion::arrow::temporal_conversions::date32_to_datetime(days)?.date();
    let year = date.format("%Y").to_string().parse::<i32>().ok()?;
    (1..=9999)
        .contains(&year)
        .then(|| date.format("%Y-%m-%d").to_string())
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::Field;
    use datafusion::logical_expr::{cast, col, lit};

    use super::*;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("i", DataType::Int32, true),
            Field::new("s", DataType::Utf8View, true),
            Field::new("f", DataType::Float64, true),
        ])
    }

    #[test]
    fn exact_translations() {
        let s = schema();
        let e = col("i").gt(lit(3i32)).and(col("s").eq(lit("it's")));
        assert_eq!(
            to_duckdb_sql(&e, &s).unwrap(),
            "((\"i\" > 3) AND (\"s\" = 'it''s'))"
        );
        let e = col("i")
            .in_list(vec![lit(1i32), lit(2i32)], true)
            .or(col("s").is_null());
        assert_eq!(
            to_duckdb_sql(&e, &s).unwrap(),
            "((\"i\" NOT IN (1, 2)) OR (\"s\" IS NULL))"
        );
        let e = col("s").like(lit("a%_"));
        assert_eq!(to_duckdb_sql(&e, &s).unwrap(), "(\"s\" LIKE 'a%_')");
    }

    #[test]
    fn semantics_that_differ_are_left_to_datafusion() {
        let s = schema();
        // DuckDB rounds, DataFusion truncates
        assert!(to_duckdb_sql(&cast(col("f"), DataType::Int32).eq(lit(2i32)), &s).is_none());
        assert!(to_duckdb_sql(&col("f").gt(lit(1.5f64)), &s).is_none());
        assert!(
            to_duckdb_sql(&col("i").gt(lit(3i64)), &s).is_none(),
            "type mismatch"
        );
        assert!(to_duckdb_sql(&col("s").like(lit("a\\%")), &s).is_none());
        assert!(to_duckdb_sql(&col("s").ilike(lit("a%")), &s).is_none());
        assert!(to_duckdb_sql(&col("s").eq(lit("nul\0byte")), &s).is_none());
        assert!(to_duckdb_sql(&col("missing").eq(lit(1i32)), &s).is_none());
    }
}
