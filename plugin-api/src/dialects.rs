//! The SQL dialects the host knows: how DuckDB and SQLite differ from DataFusion where pushed
//! filters and pushed subplans are concerned. Engines name theirs
//! ([`crate::SqlEngine::dialect`]); [`dialect_named`] finds it.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;

use crate::pushdown::{
    SqlDialect, date_value, integer_value, is_string, quote_string, string_value,
};

/// The dialect called `name`, if the host knows it.
pub fn dialect_named(name: &str) -> Option<&'static dyn SqlDialect> {
    match name {
        "duckdb" => Some(&DuckDbDialect),
        "sqlite" => Some(&SqliteDialect),
        _ => None,
    }
}

/// DuckDB: compares integers, booleans, strings (UTF-8 bytes) and dates exactly as DataFusion
/// does; its `LIKE` is case-sensitive like DataFusion's.
pub struct DuckDbDialect;

impl SqlDialect for DuckDbDialect {
    fn name(&self) -> &str {
        "duckdb"
    }

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

/// SQLite: compares integers and booleans (stored 0/1) as numbers, text with its BINARY
/// collation (UTF-8 bytes, as DataFusion does), and dates as their `YYYY-MM-DD` text, which
/// orders like the dates for the years SQLite dates hold. Its `LIKE` ignores ASCII case,
/// DataFusion's does not: `LIKE` is sent as the case-sensitive `GLOB` with the wildcards
/// translated.
pub struct SqliteDialect;

impl SqlDialect for SqliteDialect {
    fn name(&self) -> &str {
        "sqlite"
    }

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

    /// Values beyond `i64` would come back as REAL.
    fn carries(&self, data_type: &DataType) -> bool {
        (self.compares_like_datafusion(data_type) && *data_type != DataType::UInt64)
            || matches!(data_type, DataType::Float32 | DataType::Float64)
    }

    /// SQLite takes `OFFSET` only after a `LIMIT` (`-1`: no limit).
    fn limit(&self, fetch: Option<usize>, skip: usize) -> String {
        match (fetch, skip) {
            (None, 0) => String::new(),
            (Some(n), 0) => format!(" LIMIT {n}"),
            (Some(n), m) => format!(" LIMIT {n} OFFSET {m}"),
            (None, m) => format!(" LIMIT -1 OFFSET {m}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::logical_expr::{Expr, col, lit};

    use super::*;
    use crate::pushdown::to_sql;

    fn to_sql_in(dialect: &dyn SqlDialect, expr: &Expr, schema: &Schema) -> Option<String> {
        to_sql(expr, schema, dialect)
    }

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
            to_sql_in(&DuckDbDialect, &e, &schema).unwrap(),
            "((\"d\" >= DATE '2024-01-01') AND (\"b\" = TRUE))"
        );
        let before_year_one = col("d").lt(lit(ScalarValue::Date32(Some(-800_000))));
        assert!(to_sql_in(&DuckDbDialect, &before_year_one, &schema).is_none());
    }

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
            to_sql_in(&SqliteDialect, &e, &schema()).unwrap(),
            "(\"s\" GLOB 'a*?[*][?][[]x')"
        );
        let e = col("s").not_like(lit("O'%"));
        assert_eq!(
            to_sql_in(&SqliteDialect, &e, &schema()).unwrap(),
            "(\"s\" NOT GLOB 'O''*')"
        );
    }

    #[test]
    fn booleans_dates_and_big_unsigned_values() {
        let e = col("b")
            .eq(lit(true))
            .and(col("d").lt(lit(ScalarValue::Date32(Some(19_723)))));
        assert_eq!(
            to_sql_in(&SqliteDialect, &e, &schema()).unwrap(),
            "((\"b\" = 1) AND (\"d\" < '2024-01-01'))"
        );
        assert!(to_sql_in(&SqliteDialect, &col("u").gt(lit(u64::MAX)), &schema()).is_none());
        assert_eq!(
            to_sql_in(&SqliteDialect, &col("u").gt(lit(7u64)), &schema()).unwrap(),
            "(\"u\" > 7)"
        );
    }
}
