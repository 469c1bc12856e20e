//! SQLite's dialect for filter pushdown (the translation is shared:
//! `accel_plugin_api::pushdown`). SQLite compares integers and booleans (stored 0/1) as
//! numbers, text with its BINARY collation (UTF-8 bytes, as DataFusion does), and dates as
//! their `YYYY-MM-DD` text, which orders like the dates for the years SQLite dates hold.
//! SQLite's `LIKE` ignores ASCII case, DataFusion's does not: `LIKE` is sent as the
//! case-sensitive `GLOB` with the wildcards translated.

use accel_plugin_api::pushdown::{
    SqlDialect, date_value, integer_value, is_string, quote_string, string_value, to_sql,
};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Expr;

struct SqliteDialect;

impl SqlDialect for SqliteDialect {
    fn compares_like_datafusion(&self, ty: &DataType) -> bool {
        ty.is_integer() || is_string(ty) || matches!(ty, DataType::Boolean | DataType::Date32)
    }

    fn literal(&self, value: &ScalarValue) -> Option<String> {
        match value {
            ScalarValue::Boolean(Some(v)) => Some(if *v { "1" } else { "0" }.to_owned()),
            ScalarValue::Date32(_) => date_value(value).map(|d| quote_string(&d)),
            // Beyond i64 SQLite would compare as REAL: leave it to DataFusion.
            ScalarValue::UInt64(Some(v)) if i64::try_from(*v).is_err() => None,
            _ => integer_value(value).or_else(|| string_value(value).map(|s| quote_string(&s))),
        }
    }

    fn like(&self, column: &str, pattern: &str, negated: bool) -> Option<String> {
        let mut glob = String::with_capacity(pattern.len());
        for c in pattern.chars() {
            match c {
                '%' => glob.push('*'),
                '_' => glob.push('?'),
                '*' | '?' | '[' => {
                    glob.push('[');
                    glob.push(c);
                    glob.push(']');
                }
                c => glob.push(c),
            }
        }
        let not = if negated { "NOT " } else { "" };
        Some(format!("({column} {not}GLOB {})", quote_string(&glob)))
    }
}

/// SQLite SQL computing exactly `expr`, or `None`.
pub fn to_sqlite_sql(expr: &Expr, schema: &Schema) -> Option<String> {
    to_sql(expr, schema, &SqliteDialect)
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::Field;
    use datafusion::logical_expr::{col, lit};

    use super::*;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("b", DataType::Boolean, true),
            Field::new("d", DataType::Date32, true),
            Field::new("u", DataType::UInt64, true),
        ])
    }

    #[test]
    fn like_becomes_a_case_sensitive_glob_with_metacharacters_escaped() {
        let e = col("s").like(lit("a%_*?[x"));
        assert_eq!(
            to_sqlite_sql(&e, &schema()).unwrap(),
            "(\"s\" GLOB 'a*?[*][?][[]x')"
        );
        let e = col("s").not_like(lit("O'%"));
        assert_eq!(
            to_sqlite_sql(&e, &schema()).unwrap(),
            "(\"s\" NOT GLOB 'O''*')"
        );
    }

    #[test]
    fn booleans_dates_and_big_unsigned_values() {
        let e = col("b")
            .eq(lit(true))
            .and(col("d").lt(lit(ScalarValue::Date32(Some(19_723)))));
        assert_eq!(
            to_sqlite_sql(&e, &schema()).unwrap(),
            "((\"b\" = 1) AND (\"d\" < '2024-01-01'))"
        );
        assert!(to_sqlite_sql(&col("u").gt(lit(u64::MAX)), &schema()).is_none());
        assert_eq!(
            to_sqlite_sql(&col("u").gt(lit(7u64)), &schema()).unwrap(),
            "(\"u\" > 7)"
        );
    }
}
