//! DuckDB's dialect for filter pushdown (the translation itself is shared:
//! `accel_plugin_api::pushdown`). DuckDB compares integers, booleans, strings (UTF-8 bytes) and
//! dates exactly as DataFusion does, and its `LIKE` is case-sensitive like DataFusion's.

use accel_plugin_api::pushdown::{
    SqlDialect, date_value, integer_value, is_string, quote_string, string_value, to_sql,
};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Expr;

struct DuckDbDialect;

impl SqlDialect for DuckDbDialect {
    fn compares_like_datafusion(&self, ty: &DataType) -> bool {
        ty.is_integer() || is_string(ty) || matches!(ty, DataType::Boolean | DataType::Date32)
    }

    fn literal(&self, value: &ScalarValue) -> Option<String> {
        match value {
            ScalarValue::Boolean(Some(v)) => Some(if *v { "TRUE" } else { "FALSE" }.to_owned()),
            ScalarValue::Date32(_) => date_value(value).map(|d| format!("DATE '{d}'")),
            _ => integer_value(value).or_else(|| string_value(value).map(|s| quote_string(&s))),
        }
    }

    fn like(&self, column: &str, pattern: &str, negated: bool) -> Option<String> {
        let not = if negated { "NOT " } else { "" };
        Some(format!("({column} {not}LIKE {})", quote_string(pattern)))
    }
}

/// DuckDB SQL computing exactly `expr`, or `None`.
pub fn to_duckdb_sql(expr: &Expr, schema: &Schema) -> Option<String> {
    to_sql(expr, schema, &DuckDbDialect)
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::Field;
    use datafusion::logical_expr::{col, lit};

    use super::*;

    #[test]
    fn dates_and_booleans_are_spelled_the_duckdb_way() {
        let schema = Schema::new(vec![
            Field::new("d", DataType::Date32, true),
            Field::new("b", DataType::Boolean, true),
        ]);
        let e = col("d")
            .gt_eq(lit(ScalarValue::Date32(Some(19_723))))
            .and(col("b").eq(lit(true)));
        assert_eq!(
            to_duckdb_sql(&e, &schema).unwrap(),
            "((\"d\" >= DATE '2024-01-01') AND (\"b\" = TRUE))"
        );
        let before_year_one = col("d").lt(lit(ScalarValue::Date32(Some(-800_000))));
        assert!(to_duckdb_sql(&before_year_one, &schema).is_none());
    }
}
