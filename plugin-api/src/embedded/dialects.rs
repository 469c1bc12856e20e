//! The SQL dialects the host knows: how DuckDB and SQLite differ from DataFusion where pushed
//! filters and pushed subplans are concerned. Engines name theirs
//! ([`crate::SqlEngine::dialect`]); [`dialect_named`] finds it.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;

use crate::embedded::pushdown::{
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

    /// DuckDB sums integers exactly (as HUGEINT); the exact sum, taken modulo 2^64 into the
    /// result type's range, is what DataFusion's wrapping additions give in any order.
    fn integer_sum(&self, argument: &str, distinct: bool, input: &DataType) -> Option<String> {
        let distinct = if distinct { "DISTINCT " } else { "" };
        let exact = format!("CAST(sum({distinct}{argument}) AS HUGEINT)");
        const TWO_64: &str = "18446744073709551616";
        const TWO_63: &str = "9223372036854775808";
        match input {
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => Some(format!(
                "CAST((({exact} + {TWO_63}) % {TWO_64} + {TWO_64}) % {TWO_64} - {TWO_63} AS BIGINT)"
            )),
            DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
                Some(format!("CAST({exact} % {TWO_64} AS UBIGINT)"))
            }
            _ => None,
        }
    }

    fn sums_floats_like_datafusion(&self) -> bool {
        true
    }
}

/// SQLite: compares integers and booleans (stored 0/1) as numbers, text with its BINARY
/// collation (UTF-8 bytes, as DataFusion does), and dates as their `YYYY-MM-DD` text, which
/// orders like the dates for the years SQLite dates hold. `LIKE` is not pushed (see
/// [`SqliteDialect::like`]).
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

    /// Not pushed: SQLite's `GLOB` (its case-sensitive `LIKE`) and `LIKE` stop at a NUL byte
    /// in the value, where DataFusion matches the whole string (`'ab\0cd' LIKE 'ab%d'` is true
    /// in DataFusion, false in SQLite), and SQLite's `LIKE` ignores ASCII case. DataFusion
    /// evaluates `LIKE` over the scanned rows instead.
    fn like(&self, _column: &str, _pattern: &str, _negated: bool) -> Option<String> {
        None
    }

    /// SQLite's `sum` fails on overflow ("integer overflow"): the sum is split into the high
    /// and low 32 bits of each value, whose sums cannot overflow (below 2^31 rows), and
    /// recombined with 64-bit shifts, which wrap like DataFusion's additions.
    fn integer_sum(&self, argument: &str, distinct: bool, input: &DataType) -> Option<String> {
        let fits = matches!(
            input,
            DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::UInt8
                | DataType::UInt16
                | DataType::UInt32
        );
        if distinct || !fits {
            return None; // the parts of distinct values are not the distinct parts
        }
        let high = format!("sum({argument} >> 32)");
        let low = format!("sum({argument} & 4294967295)");
        Some(format!(
            "((({high} + ({low} >> 32)) << 32) | ({low} & 4294967295))"
        ))
    }

    /// SQLite turns a NaN result (`inf` plus `-inf`) into NULL: float sums stay in DataFusion.
    fn sums_floats_like_datafusion(&self) -> bool {
        false
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
    use crate::embedded::pushdown::to_sql;

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
    fn like_is_not_pushed_to_sqlite_whose_matching_stops_at_nul() {
        for e in [col("s").like(lit("a%_")), col("s").not_like(lit("_"))] {
            assert!(to_sql_in(&SqliteDialect, &e, &schema()).is_none(), "{e}");
        }
        assert!(to_sql_in(&DuckDbDialect, &col("s").like(lit("a%")), &schema()).is_some());
    }

    #[test]
    fn integer_sums_wrap_like_datafusion_in_both_dialects() {
        let duck = DuckDbDialect
            .integer_sum("c", false, &DataType::Int64)
            .unwrap();
        assert!(duck.starts_with("CAST(((CAST(sum(c) AS HUGEINT) + 9223372036854775808)"));
        assert!(duck.ends_with("AS BIGINT)"), "{duck}");
        let lite = SqliteDialect
            .integer_sum("c", false, &DataType::Int64)
            .unwrap();
        assert_eq!(
            lite,
            "(((sum(c >> 32) + (sum(c & 4294967295) >> 32)) << 32) | (sum(c & 4294967295) & 4294967295))"
        );
        assert!(
            SqliteDialect
                .integer_sum("c", true, &DataType::Int64)
                .is_none()
        );
        assert!(
            SqliteDialect
                .integer_sum("c", false, &DataType::UInt64)
                .is_none()
        );
        assert!(!SqliteDialect.sums_floats_like_datafusion());
        assert!(DuckDbDialect.sums_floats_like_datafusion());
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
