//! Filter pushdown for SQL engines: DataFusion filters translated to an engine's SQL — only
//! where the engine computes exactly what DataFusion would. The query is DataFusion SQL, so
//! DataFusion's semantics are the reference; anything not provably identical is left to
//! DataFusion (the engine reports it `Unsupported`).
//!
//! The shape is common to every engine: `AND`, `OR`, `NOT`; `=`, `<>`, `<`, `<=`, `>`, `>=`,
//! `BETWEEN`, `IN (…)` between a column and literals of the same type (or two columns of one
//! type); `IS [NOT] NULL`; `[NOT] LIKE`; a boolean column on its own. A [`SqlDialect`] says which column types an engine
//! compares like DataFusion, how it spells literals, and how (whether) it matches `LIKE`.
//! Left out everywhere: floating point (NaN and -0.0 ordering), casts (`CAST(2.7 AS INT)` is 2
//! in DataFusion, 3 in DuckDB), functions, `ILIKE` (case folding differs outside ASCII), and
//! `LIKE` patterns with a backslash (escape characters differ).

use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::expr::{Between, InList, Like};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};

/// How one engine's SQL differs where filters are concerned.
pub trait SqlDialect: Send + Sync {
    /// The name engines give it ([`crate::SqlEngine::dialect`]).
    fn name(&self) -> &str;

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

    /// Whether the engine's `sum` and `avg` of floating-point values give DataFusion's answer
    /// for every input, non-finite ones included (`inf` plus `-inf` is NaN).
    fn sums_floats_like_datafusion(&self) -> bool {
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
    let atoms = Atoms { columns, dialect };
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: op @ (Operator::And | Operator::Or),
            right,
        }) => {
            let l = predicate_sql(left, columns, dialect)?;
            let r = predicate_sql(right, columns, dialect)?;
            Some(format!(
                "({l} {} {r})",
                if *op == Operator::And { "AND" } else { "OR" }
            ))
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let op = comparison(*op)?;
            let (l, r) = atoms.same_typed(left, right)?;
            Some(format!("({l} {op} {r})"))
        }
        Expr::Column(_) => {
            let (column, data_type) = atoms.column(expr)?;
            (data_type == DataType::Boolean).then(|| format!("({column})"))
        }
        Expr::Not(inner) => Some(format!("(NOT {})", predicate_sql(inner, columns, dialect)?)),
        Expr::IsNull(inner) => Some(format!("({} IS NULL)", atoms.column(inner)?.0)),
        Expr::IsNotNull(inner) => Some(format!("({} IS NOT NULL)", atoms.column(inner)?.0)),
        Expr::Between(Between {
            expr,
            negated,
            low,
            high,
        }) => {
            let (col, ty) = atoms.column(expr)?;
            let low = atoms.literal_of(low, &ty)?;
            let high = atoms.literal_of(high, &ty)?;
            let not = if *negated { "NOT " } else { "" };
            Some(format!("({col} {not}BETWEEN {low} AND {high})"))
        }
        Expr::InList(InList {
            expr,
            list,
            negated,
        }) => {
            let (col, ty) = atoms.column(expr)?;
            if list.is_empty() {
                return None;
            }
            let items: Option<Vec<String>> =
                list.iter().map(|e| atoms.literal_of(e, &ty)).collect();
            let not = if *negated { "NOT " } else { "" };
            Some(format!("({col} {not}IN ({}))", items?.join(", ")))
        }
        Expr::Like(Like {
            negated,
            expr,
            pattern,
            escape_char: None,
            case_insensitive: false,
        }) => {
            let (col, ty) = atoms.column(expr)?;
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
            dialect.like(&col, &pattern, *negated)
        }
        _ => None,
    }
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

/// Columns and literals, checked against the dialect.
struct Atoms<'a> {
    columns: &'a dyn ColumnNames,
    dialect: &'a dyn SqlDialect,
}

impl Atoms<'_> {
    /// A column and a literal (either order) or two columns, all of one supported type.
    fn same_typed(&self, left: &Expr, right: &Expr) -> Option<(String, String)> {
        match (self.column(left), self.column(right)) {
            (Some((l, lt)), Some((r, rt))) => same_family(&lt, &rt).then_some((l, r)),
            (Some((l, ty)), None) => Some((l, self.literal_of(right, &ty)?)),
            (None, Some((r, ty))) => Some((self.literal_of(left, &ty)?, r)),
            (None, None) => None,
        }
    }

    /// A column of a supported type: its quoted name and type.
    fn column(&self, expr: &Expr) -> Option<(String, DataType)> {
        let Expr::Column(column) = expr else {
            return None;
        };
        let (sql, data_type) = self.columns.column(column)?;
        self.dialect
            .compares_like_datafusion(&data_type)
            .then_some((sql, data_type))
    }

    /// A non-null literal of the column's type.
    fn literal_of(&self, expr: &Expr, column_type: &DataType) -> Option<String> {
        let Expr::Literal(value, _) = expr else {
            return None;
        };
        if value.is_null() || !same_family(&value.data_type(), column_type) {
            return None;
        }
        self.dialect.literal(value)
    }
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
