//! Filter pushdown for SQL engines: DataFusion filters translated to an engine's SQL — only
//! where the engine computes exactly what DataFusion would. The query is DataFusion SQL, so
//! DataFusion's semantics are the reference; anything not provably identical is left to
//! DataFusion (the engine reports it `Unsupported`).
//!
//! The translation itself is [`crate::embedded::expression`]'s, shared with whole statements;
//! a [`SqlDialect`] says where one engine's SQL means what DataFusion's does: which types it
//! compares like DataFusion, how it spells literals, casts and functions, how (whether) it
//! matches `LIKE`, and how it wraps integers around on overflow.

use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::{Expr, Operator};

use super::expression::{DecimalForm, PlainFloat, Written, predicate_or_reason};

/// How one engine's SQL differs where filters are concerned.
pub trait SqlDialect: Send + Sync {
    /// The name engines give it ([`crate::SqlEngine::dialect`]).
    fn name(&self) -> &str;

    /// The engine's name as people write it, for the reasons EXPLAIN shows.
    fn display_name(&self) -> &str {
        self.name()
    }

    /// Whether the engine compares values of this column type exactly as DataFusion does.
    fn compares_like_datafusion(&self, data_type: &DataType) -> bool;

    /// A non-null literal of a supported type, or `None` when the engine cannot spell it.
    fn literal(&self, value: &ScalarValue) -> Option<String>;

    /// `column [NOT] LIKE pattern` (case-sensitive, `%` and `_` wildcards, no escape), or
    /// `None` when the engine cannot match it the same way.
    fn like(&self, column: &str, pattern: &str, negated: bool) -> Option<String>;

    /// Whether values of this type come back exactly as they went in when the engine computes
    /// over them (returns them, counts them, takes their minimum, sums numbers), so a whole
    /// statement over such columns can run in the engine.
    fn carries(&self, data_type: &DataType) -> bool {
        self.compares_like_datafusion(data_type)
            || matches!(data_type, DataType::Float32 | DataType::Float64)
    }

    /// `sum([DISTINCT] argument)` over integers of type `input`, written to give DataFusion's
    /// result: DataFusion sums signed integers as `BIGINT` and unsigned ones as `UBIGINT`,
    /// wrapping around on overflow (where an engine would widen, or fail). `None` leaves the
    /// sum to DataFusion.
    fn integer_sum(&self, argument: &str, distinct: bool, input: &DataType) -> Option<String> {
        let _ = (argument, distinct, input);
        None
    }

    /// `avg([DISTINCT] argument)` of decimals of type `input`, giving DataFusion's `output`:
    /// the sum scaled to the output's scale and divided by the count, truncated toward zero.
    /// `None` leaves it to DataFusion.
    fn decimal_avg(
        &self,
        argument: &str,
        distinct: bool,
        input: &DataType,
        output: &DataType,
    ) -> Option<String> {
        let _ = (argument, distinct, input, output);
        None
    }

    /// Whether the engine's `sum` and `avg` of floating-point values give DataFusion's answer
    /// for every input, non-finite ones included (`inf` plus `-inf` is NaN).
    fn sums_floats_like_datafusion(&self) -> bool {
        false
    }

    /// `value` cast to `to` with DataFusion's result (`value` is known to fit an integer
    /// `to`), or `None` where the engine's cast differs. The default writes only casts that
    /// change nothing.
    fn cast(&self, value: &Written, to: &DataType) -> Option<String> {
        (value.data_type == *to).then(|| value.sql.clone())
    }

    /// `left op right` (`+`, `-` or `*`) on integers of `data_type`, wrapping around on
    /// overflow as DataFusion does, or `None` to keep it in DataFusion.
    fn wrapping(&self, left: &str, op: &str, right: &str, data_type: &DataType) -> Option<String> {
        let _ = (left, op, right, data_type);
        None
    }

    /// `left / right` on integers, truncating toward zero (the divisor is never 0).
    fn integer_division(&self, left: &str, right: &str) -> String {
        format!("({left} / {right})")
    }

    /// Whether `+ - * /` on floats follow IEEE 754 as DataFusion's do (NaN and ±inf results).
    fn float_arithmetic_like_datafusion(&self) -> bool {
        false
    }

    /// Whether decimal `+ - *` on `DECIMAL(38, s)` operands are exact, so that cast to
    /// DataFusion's result type they give its answer; and `sum` of decimals likewise.
    fn decimal_arithmetic(&self) -> bool {
        false
    }

    /// `sql`, a decimal of DataFusion's type `data_type`, as an operand of the engine's fast
    /// decimal `+ - *`, on which they give DataFusion's exact value or fail — never another
    /// value — so that a statement written so and failing can be run again in the exact
    /// form; `None` where the engine has no such form.
    fn narrow_decimal(&self, sql: &str, data_type: &DataType) -> Option<String> {
        let _ = (sql, data_type);
        None
    }

    /// `left / right` on decimals of scales `(left, right, multiplier)`, exactly as arrow:
    /// `trunc(unscaled(left) · 10^multiplier / unscaled(right))` as `DECIMAL(p, s)` of
    /// `output`, an error for a zero divisor (the caller has checked nothing overflows).
    fn decimal_division(
        &self,
        left: &str,
        right: &str,
        scales: (i8, i8, i8),
        output: (u8, i8),
    ) -> Option<String> {
        let _ = (left, right, scales, output);
        None
    }

    /// Whether `a || b` on strings is DataFusion's (NULL if either is).
    fn concatenates_like_datafusion(&self) -> bool {
        false
    }

    /// `date` plus `months` months and `days` days as a date, month ends clamped, months
    /// first (DataFusion's order), or `None`.
    fn date_plus(&self, date: &str, months: i32, days: i32) -> Option<String> {
        let _ = (date, months, days);
        None
    }

    /// `left IS [NOT] DISTINCT FROM right`.
    fn distinct_from(&self, left: &str, right: &str, negated: bool) -> String {
        let not = if negated { "NOT " } else { "" };
        format!("({left} IS {not}DISTINCT FROM {right})")
    }

    /// The scalar function `name` over `args` with DataFusion's result (of type `returns`),
    /// or why not.
    fn function(&self, name: &str, args: &[Written], returns: &DataType) -> Result<String, String> {
        let _ = (args, returns);
        Err(format!(
            "{} has no translation of {name}",
            self.display_name()
        ))
    }

    /// Whether the engine takes `WITH name AS MATERIALIZED (…)`: a subquery a statement uses
    /// twice is then computed once (otherwise it is written, and computed, twice).
    fn materializes_common_subqueries(&self) -> bool {
        false
    }

    /// ` LIMIT n OFFSET m`, as much of it as is needed.
    fn limit(&self, fetch: Option<usize>, skip: usize) -> String {
        let mut sql = fetch.map(|n| format!(" LIMIT {n}")).unwrap_or_default();
        if skip > 0 {
            sql.push_str(&format!(" OFFSET {skip}"));
        }
        sql
    }
}

/// How column references are spelled in the SQL being written.
pub trait ColumnNames {
    /// The SQL naming `column`, and its type; `None` for a column it does not know.
    fn column(&self, column: &Column) -> Option<(String, DataType)>;

    /// What is known of `column`'s values when it is a float computed by the statement
    /// (see [`PlainFloat`]); `None`: nothing.
    fn plain_float(&self, column: &Column) -> Option<PlainFloat> {
        let _ = column;
        None
    }
}

/// The columns of one table, by their quoted names.
pub struct TableColumns<'a>(pub &'a Schema);

impl ColumnNames for TableColumns<'_> {
    fn column(&self, column: &Column) -> Option<(String, DataType)> {
        let field = self.0.field_with_name(&column.name).ok()?;
        Some((quote_ident(&column.name), field.data_type().clone()))
    }
}

/// SQL computing exactly `expr` (a filter over one table's columns) in the dialect's engine, or
/// `None`.
pub fn to_sql(expr: &Expr, schema: &Schema, dialect: &dyn SqlDialect) -> Option<String> {
    predicate_sql(expr, &TableColumns(schema), dialect)
}

/// SQL computing exactly the predicate `expr` in the dialect's engine, with columns spelled by
/// `columns`, or `None`.
pub fn predicate_sql(
    expr: &Expr,
    columns: &dyn ColumnNames,
    dialect: &dyn SqlDialect,
) -> Option<String> {
    predicate_or_reason(expr, columns, dialect, DecimalForm::Exact).ok()
}

/// The query of a scan of `table`: `SELECT <columns> FROM <table> [WHERE <conditions, ANDed>]
/// [LIMIT n]`; with no columns (e.g. for `count(*)`), `SELECT count(*) FROM (SELECT 1 FROM …)`,
/// which returns one integer.
pub fn scan_sql(
    table: &str,
    columns: &Schema,
    conditions: &[String],
    limit: Option<usize>,
) -> String {
    let mut from = quote_ident(table);
    if !conditions.is_empty() {
        from = format!("{from} WHERE {}", conditions.join(" AND "));
    }
    let limit = limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default();
    if columns.fields().is_empty() {
        return format!("SELECT count(*) FROM (SELECT 1 FROM {from}{limit})");
    }
    let names: Vec<String> = columns
        .fields()
        .iter()
        .map(|f| quote_ident(f.name()))
        .collect();
    format!("SELECT {} FROM {from}{limit}", names.join(", "))
}

/// `"name"` with embedded quotes doubled: the identifier quoting of standard SQL.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'` with embedded quotes doubled.
pub fn quote_string(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The text of a non-null string literal free of NUL (which SQL engines' strings cannot hold).
pub fn string_value(value: &ScalarValue) -> Option<String> {
    match value {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::Utf8View(Some(s))
        | ScalarValue::LargeUtf8(Some(s)) => (!s.contains('\0')).then(|| s.clone()),
        _ => None,
    }
}

/// An integer literal's decimal digits.
pub fn integer_value(value: &ScalarValue) -> Option<String> {
    Some(match value {
        ScalarValue::Int8(Some(v)) => v.to_string(),
        ScalarValue::Int16(Some(v)) => v.to_string(),
        ScalarValue::Int32(Some(v)) => v.to_string(),
        ScalarValue::Int64(Some(v)) => v.to_string(),
        ScalarValue::UInt8(Some(v)) => v.to_string(),
        ScalarValue::UInt16(Some(v)) => v.to_string(),
        ScalarValue::UInt32(Some(v)) => v.to_string(),
        ScalarValue::UInt64(Some(v)) => v.to_string(),
        _ => return None,
    })
}

/// `YYYY-MM-DD` of a date literal in years 1 to 9999 (the range every engine's DATE spells
/// the same way).
pub fn date_value(value: &ScalarValue) -> Option<String> {
    let ScalarValue::Date32(Some(days)) = value else {
        return None;
    };
    let date = datafusion::arrow::temporal_conversions::date32_to_datetime(*days)?.date();
    let year = date.format("%Y").to_string().parse::<i32>().ok()?;
    (1..=9999)
        .contains(&year)
        .then(|| date.format("%Y-%m-%d").to_string())
}

pub fn is_string(ty: &DataType) -> bool {
    matches!(
        ty,
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
    )
}

pub fn comparison(op: Operator) -> Option<&'static str> {
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

pub fn same_family(a: &DataType, b: &DataType) -> bool {
    a == b || (is_string(a) && is_string(b))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::Field;
    use datafusion::logical_expr::{cast, col, lit};

    use super::*;

    /// Integers and strings, `LIKE` as is: enough to pin the shared shape.
    struct Plain;

    impl SqlDialect for Plain {
        fn name(&self) -> &str {
            "plain"
        }
        fn compares_like_datafusion(&self, ty: &DataType) -> bool {
            ty.is_integer() || is_string(ty)
        }
        fn literal(&self, value: &ScalarValue) -> Option<String> {
            integer_value(value).or_else(|| string_value(value).map(|s| quote_string(&s)))
        }
        fn like(&self, column: &str, pattern: &str, negated: bool) -> Option<String> {
            let not = if negated { "NOT " } else { "" };
            Some(format!("({column} {not}LIKE {})", quote_string(pattern)))
        }
    }

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
            to_sql(&e, &s, &Plain).unwrap(),
            "((\"i\" > 3) AND (\"s\" = 'it''s'))"
        );
        let e = col("i")
            .in_list(vec![lit(1i32), lit(2i32)], true)
            .or(col("s").is_null());
        assert_eq!(
            to_sql(&e, &s, &Plain).unwrap(),
            "((\"i\" NOT IN (1, 2)) OR (\"s\" IS NULL))"
        );
        let e = col("s").like(lit("a%_"));
        assert_eq!(to_sql(&e, &s, &Plain).unwrap(), "(\"s\" LIKE 'a%_')");
    }

    #[test]
    fn semantics_that_differ_are_left_to_datafusion() {
        let s = schema();
        // DuckDB rounds, DataFusion truncates
        let casted = cast(col("f"), DataType::Int32).eq(lit(2i32));
        assert!(to_sql(&casted, &s, &Plain).is_none());
        assert!(to_sql(&col("f").gt(lit(1.5f64)), &s, &Plain).is_none());
        assert!(
            to_sql(&col("i").gt(lit(3i64)), &s, &Plain).is_none(),
            "type mismatch"
        );
        assert!(to_sql(&col("s").like(lit("a\\%")), &s, &Plain).is_none());
        assert!(to_sql(&col("s").ilike(lit("a%")), &s, &Plain).is_none());
        assert!(to_sql(&col("s").eq(lit("nul\0byte")), &s, &Plain).is_none());
        assert!(to_sql(&col("missing").eq(lit(1i32)), &s, &Plain).is_none());
    }
}
