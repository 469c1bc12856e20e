//! The SQL dialects the host knows: how DuckDB and SQLite differ from DataFusion where pushed
//! filters and pushed subplans are concerned. Engines name theirs
//! ([`crate::SqlEngine::dialect`]); [`dialect_named`] finds it.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;

use crate::embedded::expression::{Written, decimal_text, integer_range, is_decimal};
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

/// DuckDB: compares integers, decimals, booleans, strings (UTF-8 bytes) and dates exactly as
/// DataFusion does; its `LIKE` is case-sensitive like DataFusion's; floats follow IEEE 754
/// (`1.0 / 0` is `inf`); integer arithmetic fails on overflow where DataFusion wraps around,
/// so overflowing forms are computed in `HUGEINT` and wrapped ([`DuckDbDialect::wrapping`]).
/// Checked against DuckDB 2.0 (the bundled library) by the unit tests below and the
/// differential tests of `tests/`.
pub struct DuckDbDialect;

/// 2^bits as a decimal literal.
fn power_of_two(bits: u32) -> String {
    (1u128 << bits).to_string()
}

impl DuckDbDialect {
    /// DuckDB's name of a type, where it holds DataFusion's values of it.
    pub fn type_name(data_type: &DataType) -> Option<String> {
        Some(match data_type {
            DataType::Boolean => "BOOLEAN".into(),
            DataType::Int8 => "TINYINT".into(),
            DataType::Int16 => "SMALLINT".into(),
            DataType::Int32 => "INTEGER".into(),
            DataType::Int64 => "BIGINT".into(),
            DataType::UInt8 => "UTINYINT".into(),
            DataType::UInt16 => "USMALLINT".into(),
            DataType::UInt32 => "UINTEGER".into(),
            DataType::UInt64 => "UBIGINT".into(),
            DataType::Float32 => "FLOAT".into(),
            DataType::Float64 => "DOUBLE".into(),
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => "VARCHAR".into(),
            DataType::Date32 => "DATE".into(),
            DataType::Decimal128(p, s) if *p <= 38 && *s >= 0 => format!("DECIMAL({p},{s})"),
            _ => return None,
        })
    }
}

impl SqlDialect for DuckDbDialect {
    fn name(&self) -> &str {
        "duckdb"
    }

    fn display_name(&self) -> &str {
        "DuckDB"
    }

    fn materializes_common_subqueries(&self) -> bool {
        true
    }

    fn compares_like_datafusion(&self, ty: &DataType) -> bool {
        ty.is_integer()
            || is_string(ty)
            || matches!(
                ty,
                DataType::Boolean | DataType::Date32 | DataType::Decimal128(_, _)
            )
    }

    fn literal(&self, value: &ScalarValue) -> Option<String> {
        match value {
            ScalarValue::Boolean(Some(v)) => Some(if *v { "TRUE" } else { "FALSE" }.to_owned()),
            ScalarValue::Date32(_) => date_value(value).map(|d| format!("DATE '{d}'")),
            // `{:?}` prints the shortest text that reads back as the same value (NaN, inf)
            ScalarValue::Float64(Some(v)) => Some(format!("CAST('{v:?}' AS DOUBLE)")),
            ScalarValue::Float32(Some(v)) => Some(format!("CAST('{v:?}' AS FLOAT)")),
            ScalarValue::Decimal128(Some(v), p, s) if *p <= 38 && *s >= 0 => Some(format!(
                "CAST('{}' AS DECIMAL({p},{s}))",
                decimal_text(*v, *s)
            )),
            _ => integer_value(value).or_else(|| string_value(value).map(|s| quote_string(&s))),
        }
    }

    /// Integers to integers they fit (the caller knows they do), to floats and text; floats
    /// to integers truncated (DuckDB's own cast rounds); decimals to decimals of no smaller
    /// scale; wide decimals to doubles and floats to decimals in DataFusion's arithmetic
    /// (below); floats widened. Nothing else: text to numbers or dates parses differently,
    /// decimals to integers round.
    fn cast(&self, value: &Written, to: &DataType) -> Option<String> {
        let from = &value.data_type;
        let sql = &value.sql;
        if from == to || (is_string(from) && is_string(to)) {
            return Some(sql.clone());
        }
        let name = Self::type_name(to)?;
        let ok = match (from, to) {
            (f, t) if f.is_integer() && (t.is_integer() || t.is_floating() || is_string(t)) => true,
            (f, DataType::Decimal128(_, _)) if f.is_integer() => true,
            (DataType::Float32, DataType::Float64) => true,
            // both divide the unscaled value, as a double, by 10^scale
            (DataType::Decimal128(p, s), t) if t == &DataType::Float64 && *p <= 15 && *s >= 0 => {
                true
            }
            (DataType::Decimal128(_, s), t) if t == &DataType::Float64 && (0..=22).contains(s) => {
                return Some(wide_decimal_to_double(sql, *s));
            }
            (DataType::Float32 | DataType::Float64, DataType::Decimal128(p, s))
                if *p <= 38 && (0..=22).contains(s) =>
            {
                return Some(double_to_decimal(sql, *p, *s));
            }
            (f, t) if f.is_floating() && t.is_integer() => {
                return Some(format!("CAST(trunc({sql}) AS {name})"));
            }
            // to no smaller scale: exact; a value that does not fit the precision fails in
            // both
            (DataType::Decimal128(_, fs), DataType::Decimal128(_, ts)) => ts >= fs,
            _ => false,
        };
        ok.then(|| format!("CAST({sql} AS {name})"))
    }

    /// Computed exactly in `HUGEINT` (products of two 64-bit values fit), then reduced modulo
    /// 2^bits into the type's range: DataFusion's wrapping result.
    fn wrapping(&self, left: &str, op: &str, right: &str, data_type: &DataType) -> Option<String> {
        let (min, _) = integer_range(data_type)?;
        let name = Self::type_name(data_type)?;
        let bits = match data_type {
            DataType::Int8 | DataType::UInt8 => 8,
            DataType::Int16 | DataType::UInt16 => 16,
            DataType::Int32 | DataType::UInt32 => 32,
            _ => 64,
        };
        let exact = format!("(CAST({left} AS HUGEINT) {op} CAST({right} AS HUGEINT))");
        let modulus = power_of_two(bits);
        Some(if min < 0 {
            let half = power_of_two(bits - 1);
            format!(
                "CAST(((({exact} + {half}) % {modulus} + {modulus}) % {modulus} - {half}) AS {name})"
            )
        } else {
            format!("CAST((({exact} % {modulus} + {modulus}) % {modulus}) AS {name})")
        })
    }

    /// `//`: DuckDB's `/` on integers gives a DOUBLE; `//` truncates toward zero.
    fn integer_division(&self, left: &str, right: &str) -> String {
        format!("({left} // {right})")
    }

    fn float_arithmetic_like_datafusion(&self) -> bool {
        true
    }

    fn decimal_arithmetic(&self) -> bool {
        true
    }

    fn concatenates_like_datafusion(&self) -> bool {
        true
    }

    /// DuckDB computes `+ - *` of two decimals of at most 18 digits in 64 bits and fails
    /// ("Overflow in multiplication of DECIMAL(18)") when the result passes 18 digits, as its
    /// cast to `DECIMAL(18, s)` fails for a value that does not fit: wider operands are cast
    /// so. Where the operands' digits prove the result fits, its plans drop the check.
    fn narrow_decimal(&self, sql: &str, data_type: &DataType) -> Option<String> {
        match data_type {
            DataType::Decimal128(p, _) if *p <= 18 => Some(sql.to_owned()),
            DataType::Decimal128(_, s) if (0..=18).contains(s) => {
                Some(format!("CAST({sql} AS DECIMAL(18,{s}))"))
            }
            _ => None,
        }
    }

    /// In HUGEINT: each side's unscaled value (its DECIMAL(38, scale) times 10^scale, which
    /// the caller's precision check keeps within 38 digits), `//` truncating toward zero,
    /// `error()` where arrow fails on a zero divisor (`//` would give NULL).
    fn decimal_division(
        &self,
        left: &str,
        right: &str,
        (left_scale, right_scale, multiplier): (i8, i8, i8),
        (p, s): (u8, i8),
    ) -> Option<String> {
        let unscaled = |sql: &str, scale: i8| {
            format!(
                "CAST(CAST({sql} AS DECIMAL(38,{scale})) * {} AS HUGEINT)",
                power_of_ten(scale)
            )
        };
        let divisor = unscaled(right, right_scale);
        let quotient = format!(
            "(({} * {}) // {divisor})",
            unscaled(left, left_scale),
            power_of_ten(multiplier)
        );
        Some(format!(
            "(CASE WHEN {divisor} = 0 THEN error('Divide by zero error') ELSE {} END)",
            decimal_from_unscaled(&quotient, p, s)
        ))
    }

    /// DuckDB adds months clamping to the month's end (Jan 31 + 1 month = Feb 29), as
    /// DataFusion does; a date plus an interval is a TIMESTAMP, so it is cast back.
    fn date_plus(&self, date: &str, months: i32, days: i32) -> Option<String> {
        Some(format!(
            "CAST(({date} + to_months({months}) + to_days({days})) AS DATE)"
        ))
    }

    fn function(&self, name: &str, args: &[Written], returns: &DataType) -> Result<String, String> {
        duckdb_function(self, name, args, returns)
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

    /// DuckDB's own `avg` of decimals is a DOUBLE: the sum's unscaled value (a HUGEINT) is
    /// scaled to the output's scale and divided with `//`, which truncates toward zero as
    /// DataFusion's decimal average does, then made a decimal again.
    fn decimal_avg(
        &self,
        argument: &str,
        distinct: bool,
        input: &DataType,
        output: &DataType,
    ) -> Option<String> {
        let (DataType::Decimal128(_, scale), DataType::Decimal128(p, s)) = (input, output) else {
            return None;
        };
        if *scale < 0 || s < scale || *p > 38 {
            return None;
        }
        let distinct = if distinct { "DISTINCT " } else { "" };
        let unscaled = format!(
            "CAST(sum({distinct}{argument}) * {} AS HUGEINT)",
            power_of_ten(*scale)
        );
        let quotient = format!(
            "(({unscaled} * {}) // count({distinct}{argument}))",
            power_of_ten(s - scale)
        );
        Some(decimal_from_unscaled(&quotient, *p, *s))
    }
}

/// A decimal of more than 15 digits and scale `scale` (at most 22) as DataFusion makes it a
/// double: its unscaled integer rounded to the nearest double, divided by 10^scale (exact up to
/// 10^22). DuckDB's own cast does the same while the unscaled value is below 2^53; above, it
/// rounds a HUGEINT in two steps and may land one unit off (measured on DuckDB 1.2: 228 of
/// 8 940 values). There the unscaled digits are read back as a double instead — DuckDB parses
/// numbers correctly rounded — from the decimal's text, which always has `scale` digits after
/// the point.
fn wide_decimal_to_double(sql: &str, scale: i8) -> String {
    let exact_below = decimal_text(1i128 << 53, scale);
    let divisor = 10f64.powi(i32::from(scale));
    // the text of a DECIMAL(38, scale) has exactly `scale` digits after the point
    let sql = format!("CAST({sql} AS DECIMAL(38,{scale}))");
    format!(
        "(CASE WHEN abs({sql}) < CAST('{exact_below}' AS DECIMAL(38,{scale})) THEN CAST({sql} AS DOUBLE) \
         ELSE CAST(replace(CAST({sql} AS VARCHAR), '.', '') AS DOUBLE) / CAST('{divisor:?}' AS DOUBLE) END)"
    )
}

/// A float as DataFusion makes it a `DECIMAL(precision, scale)`: the float times 10^scale (a
/// double, exact up to 10^22), rounded half away from zero — DuckDB's `round` of a double is
/// C's, the same — as the unscaled integer, an error where it does not fit the precision
/// (DataFusion's too; NaN and ±inf fail to become a HUGEINT as they fail in DataFusion).
/// DuckDB's own cast rounds the decimal digits of the float instead.
fn double_to_decimal(sql: &str, precision: u8, scale: i8) -> String {
    let multiplier = 10f64.powi(i32::from(scale));
    let unscaled =
        format!("CAST(round(CAST({sql} AS DOUBLE) * CAST('{multiplier:?}' AS DOUBLE)) AS HUGEINT)");
    decimal_from_unscaled(&unscaled, precision, scale)
}

/// `10^n` (`n` ≥ 0) as an integer literal.
fn power_of_ten(n: i8) -> String {
    format!("1{}", "0".repeat(usize::from(n.unsigned_abs())))
}

/// The HUGEINT `unscaled` as the `DECIMAL(precision, scale)` whose unscaled value it is.
fn decimal_from_unscaled(unscaled: &str, precision: u8, scale: i8) -> String {
    let unit = format!(
        "CAST('{}' AS DECIMAL({},{scale}))",
        decimal_text(1, scale),
        scale + 1
    );
    format!("CAST(CAST({unscaled} AS DECIMAL(38,0)) * {unit} AS DECIMAL({precision},{scale}))")
}

/// The scalar functions DuckDB computes as DataFusion does, each checked against both.
fn duckdb_function(
    dialect: &DuckDbDialect,
    name: &str,
    args: &[Written],
    returns: &DataType,
) -> Result<String, String> {
    let sql: Vec<&str> = args.iter().map(|a| a.sql.as_str()).collect();
    let all_strings = args.iter().all(|a| is_string(&a.data_type));
    let int_literal = |i: usize| {
        args.get(i)
            .and_then(|a| a.literal.as_ref())
            .and_then(crate::embedded::expression::integer_literal)
    };
    match (name, args.len()) {
        ("abs", 1)
            if args[0].data_type.is_integer()
                || args[0].data_type.is_floating()
                || is_decimal(&args[0].data_type) =>
        {
            Ok(format!("abs({})", sql[0]))
        }
        ("coalesce", n) if n > 0 => Ok(format!("coalesce({})", sql.join(", "))),
        ("nullif", 2) if dialect.compares_like_datafusion(&args[0].data_type) => {
            Ok(format!("nullif({}, {})", sql[0], sql[1]))
        }
        ("character_length" | "length" | "char_length", 1) if all_strings => {
            Ok(format!("length({})", sql[0]))
        }
        // DataFusion counts a start below 1 as positions before the string; DuckDB counts
        // it from the end: only starts from 1 and lengths from 0
        ("substr" | "substring", 2 | 3) if is_string(&args[0].data_type) => {
            let start_ok = int_literal(1).is_some_and(|s| s >= 1);
            let length_ok = args.len() == 2 || int_literal(2).is_some_and(|n| n >= 0);
            if start_ok && length_ok {
                Ok(format!("substr({})", sql.join(", ")))
            } else {
                Err("substr with a start below 1 or a negative length counts from the end in DuckDB".into())
            }
        }
        // one argument: both trim spaces only
        ("btrim" | "trim" | "ltrim" | "rtrim", 1) if all_strings => {
            let function = if name == "btrim" { "trim" } else { name };
            Ok(format!("{function}({})", sql[0]))
        }
        ("concat", n) if n > 0 && all_strings => Ok(format!("concat({})", sql.join(", "))),
        ("starts_with" | "ends_with", 2) if all_strings => {
            Ok(format!("{name}({}, {})", sql[0], sql[1]))
        }
        ("date_part" | "datepart", 2) if args[1].data_type == DataType::Date32 => {
            let field = args[0]
                .literal
                .as_ref()
                .and_then(string_value)
                .map(|f| f.to_ascii_lowercase());
            match field.as_deref() {
                Some(field @ ("year" | "month" | "day" | "quarter" | "dow" | "doy" | "week"))
                    if returns.is_integer() =>
                {
                    Ok(format!("date_part('{field}', {})", sql[1]))
                }
                _ => Err("date_part of this field differs in DuckDB".into()),
            }
        }
        ("upper" | "lower", _) => Err(format!(
            "DuckDB folds case differently from DataFusion outside ASCII ('ß', 'ǅ'): {name} stays in DataFusion"
        )),
        _ => Err(format!("DuckDB has no translation of {name} here")),
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

    fn display_name(&self) -> &str {
        "SQLite"
    }

    /// SQLite's integers are all 64-bit: a value that fits the target type is itself.
    fn cast(&self, value: &Written, to: &DataType) -> Option<String> {
        let from = &value.data_type;
        let same = from == to
            || (is_string(from) && is_string(to))
            || (from.is_integer() && to.is_integer() && *to != DataType::UInt64);
        same.then(|| value.sql.clone())
    }

    fn distinct_from(&self, left: &str, right: &str, negated: bool) -> String {
        let is = if negated { "IS" } else { "IS NOT" };
        format!("({left} {is} {right})")
    }

    /// SQLite's text functions stop at a NUL byte, and its `abs` of the least integer fails
    /// (excluded by the caller): only these.
    fn function(
        &self,
        name: &str,
        args: &[Written],
        _returns: &DataType,
    ) -> Result<String, String> {
        let sql: Vec<&str> = args.iter().map(|a| a.sql.as_str()).collect();
        match (name, args.len()) {
            ("abs", 1) if args[0].data_type.is_integer() => Ok(format!("abs({})", sql[0])),
            ("coalesce", n) if n > 0 => Ok(format!("coalesce({})", sql.join(", "))),
            ("nullif", 2) if self.compares_like_datafusion(&args[0].data_type) => {
                Ok(format!("nullif({}, {})", sql[0], sql[1]))
            }
            ("upper" | "lower", _) => Err(format!(
                "SQLite folds case of ASCII letters only, DataFusion of all: {name} stays in DataFusion"
            )),
            _ => Err(format!(
                "SQLite has no translation of {name} with DataFusion's meaning"
            )),
        }
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

    /// Since SQLite 3.35 (the bundled library is newer).
    fn materializes_common_subqueries(&self) -> bool {
        true
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

    fn numbers() -> Schema {
        Schema::new(vec![
            Field::new("k", DataType::Int32, true),
            Field::new("a", DataType::Int64, true),
            Field::new("f", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("m", DataType::Decimal128(15, 2), true),
        ])
    }

    /// `expr` in DuckDB's SQL with decimals in the narrow form, and whether that form was used.
    fn narrow_written(expr: &Expr) -> (crate::embedded::expression::Written, bool) {
        use crate::embedded::expression::{DecimalForm, expression_sql};
        use crate::embedded::pushdown::TableColumns;
        let (schema, used) = (numbers(), std::cell::Cell::new(false));
        let narrow = DecimalForm::Narrow { used: &used };
        let written = expression_sql(expr, &TableColumns(&schema), &DuckDbDialect, narrow).unwrap();
        (written, used.get())
    }

    fn written(dialect: &dyn SqlDialect, expr: &Expr) -> Result<String, String> {
        use crate::embedded::expression::{DecimalForm, expression_sql};
        use crate::embedded::pushdown::TableColumns;
        let schema = numbers();
        expression_sql(expr, &TableColumns(&schema), dialect, DecimalForm::Exact)
            .map(|w| w.sql)
            .map_err(|kept| kept.to_string())
    }

    #[test]
    fn arithmetic_that_cannot_overflow_is_written_plainly() {
        use datafusion::logical_expr::cast;
        // `k + 1` on INT is `CAST(k AS BIGINT) + 1` in DataFusion: it cannot overflow
        let plus_one = cast(col("k"), DataType::Int64) + lit(1i64);
        assert_eq!(
            written(&DuckDbDialect, &plus_one).unwrap(),
            "(CAST(\"k\" AS BIGINT) + 1)"
        );
        assert_eq!(written(&SqliteDialect, &plus_one).unwrap(), "(\"k\" + 1)");
        let remainder = (col("a") % lit(3i64)).eq(lit(0i64));
        assert_eq!(
            written(&SqliteDialect, &remainder).unwrap(),
            "((\"a\" % 3) = 0)"
        );
    }

    #[test]
    fn arithmetic_that_may_overflow_wraps_around_like_datafusion_or_stays() {
        let sum = col("a") + col("a");
        let duck = written(&DuckDbDialect, &sum).unwrap();
        assert_eq!(
            duck,
            "CAST(((((CAST(\"a\" AS HUGEINT) + CAST(\"a\" AS HUGEINT)) + 9223372036854775808) \
             % 18446744073709551616 + 18446744073709551616) % 18446744073709551616 \
             - 9223372036854775808) AS BIGINT)"
        );
        let lite = written(&SqliteDialect, &sum).unwrap_err();
        assert!(lite.contains("wraps around and SQLite does not"), "{lite}");
        let square = col("k") * col("k");
        assert!(
            written(&DuckDbDialect, &square)
                .unwrap()
                .ends_with("% 4294967296 - 2147483648) AS INTEGER)")
        );
    }

    #[test]
    fn division_only_where_the_divisor_cannot_be_zero_or_minus_one() {
        let halves = col("a") / lit(2i64);
        assert_eq!(written(&DuckDbDialect, &halves).unwrap(), "(\"a\" // 2)");
        assert_eq!(written(&SqliteDialect, &halves).unwrap(), "(\"a\" / 2)");
        let by_column = col("a") / col("a");
        assert!(
            written(&DuckDbDialect, &by_column)
                .unwrap_err()
                .contains("divisor may be 0")
        );
        let by_minus_one = col("a") % lit(-1i64);
        assert!(
            written(&DuckDbDialect, &by_minus_one)
                .unwrap_err()
                .contains("by -1")
        );
    }

    #[test]
    fn casts_floats_decimals_and_functions() {
        use datafusion::functions::expr_fn::{substr, upper};
        use datafusion::logical_expr::cast;
        let truncated = cast(col("f"), DataType::Int32);
        assert_eq!(
            written(&DuckDbDialect, &truncated).unwrap(),
            "CAST(trunc(\"f\") AS INTEGER)"
        );
        assert!(written(&SqliteDialect, &truncated).is_err());
        assert_eq!(
            written(&DuckDbDialect, &lit(f64::NAN)).unwrap(),
            "CAST('NaN' AS DOUBLE)"
        );
        assert_eq!(
            written(
                &DuckDbDialect,
                &lit(ScalarValue::Decimal128(Some(-5), 15, 2))
            )
            .unwrap(),
            "CAST('-0.05' AS DECIMAL(15,2))"
        );
        let product = col("m") * col("m");
        assert_eq!(
            written(&DuckDbDialect, &product).unwrap(),
            "(CAST(\"m\" AS DECIMAL(38,2)) * CAST(\"m\" AS DECIMAL(38,2)))"
        );
        // narrow: DECIMAL(≤18) operands as they are, wider ones cast to DECIMAL(18, s); the
        // DECIMAL(31,4) product `m * m` is such an operand of the next `*`
        let (narrow, used) = narrow_written(&(col("m") * col("m") * col("m")));
        assert_eq!(
            narrow.sql,
            "(CAST((\"m\" * \"m\") AS DECIMAL(18,4)) * \"m\")"
        );
        assert_eq!(narrow.data_type, DataType::Decimal128(38, 6));
        assert!(used);
        // a literal with the digits of its value: `1` typed DECIMAL(20, 0) would make DuckDB
        // compute `1 - m` in 128 bits
        let one = lit(ScalarValue::Decimal128(Some(1), 20, 0));
        let (discounted, used) = narrow_written(&(col("m") * (one - col("m"))));
        assert!(used);
        assert_eq!(
            discounted.sql,
            "(\"m\" * CAST((CAST('1' AS DECIMAL(1,0)) - \"m\") AS DECIMAL(18,2)))"
        );
        let quotient = written(&DuckDbDialect, &(col("m") / col("m"))).unwrap();
        assert!(
            quotient.contains("//") && quotient.contains("error('Divide by zero error')"),
            "{quotient}"
        );
        let wide = cast(col("m"), DataType::Decimal128(38, 2)) / col("m");
        assert!(written(&DuckDbDialect, &wide).is_err());
        let folded = written(&DuckDbDialect, &upper(col("s"))).unwrap_err();
        assert!(folded.contains("folds case"), "{folded}");
        let from_end = substr(col("s"), lit(-1i64));
        assert!(written(&DuckDbDialect, &from_end).is_err());
        assert_eq!(
            written(&DuckDbDialect, &substr(col("s"), lit(2i64))).unwrap(),
            "substr(\"s\", 2)"
        );
    }
}
