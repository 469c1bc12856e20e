//! DataFusion expressions written in an engine's SQL with DataFusion's meaning — or kept in
//! DataFusion with the reason. The query is DataFusion SQL, so DataFusion's semantics are the
//! reference: an expression is written only where the engine computes exactly what DataFusion
//! would for every input (an engine error where DataFusion answers counts as a different
//! answer); anything else comes back as [`Kept`], naming the expression and why.
//!
//! What is written, and the semantics each relies on:
//! - columns and literals of the types the dialect spells; `AND`, `OR`, `NOT`, `IS [NOT]
//!   NULL`, `IS [NOT] TRUE/FALSE`, `IS [NOT] DISTINCT FROM`;
//! - comparisons, `BETWEEN` and `IN (…)` between expressions of one type the engine compares
//!   like DataFusion ([`SqlDialect::compares_like_datafusion`]: not floats, whose -0.0 and
//!   NaN order differently), and between floats that are never NaN nor -0.0 ([`PlainFloat`]:
//!   integers and decimals made floats, finite literals, and arithmetic on those whose bounds
//!   rule out overflow, division by zero and a zero of the wrong sign);
//! - integer `+ - *` and negation: written plainly where the operands' bounds prove the result
//!   fits DataFusion's type (DataFusion wraps around on overflow, engines fail or widen), else
//!   in the dialect's wrapping form ([`SqlDialect::wrapping`]) or kept; integer `/` (DataFusion
//!   truncates) and `%` only where the divisor's bounds exclude 0 and `MIN / -1` cannot occur;
//! - float `+ - * /` where the engine follows IEEE 754 as DataFusion does; decimal `+ - *`
//!   with DataFusion's result precision and scale (exact in 38 digits, or in the dialect's
//!   narrow form that fails rather than differs, [`DecimalForm::Narrow`]), and `/` with
//!   arrow's (scale `s1 + 4`, truncated) where the quotient cannot pass 38 digits; `||`;
//!   date ± a literal interval of months and days;
//! - `CASE`, casts the dialect writes with DataFusion's result ([`SqlDialect::cast`]), `LIKE`,
//!   and the scalar functions the dialect translates ([`SqlDialect::function`]).

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::ScalarValue;
use datafusion::execution::SessionStateDefaults;
use datafusion::logical_expr::expr::{Between, Case, InList, Like, ScalarFunction};
use datafusion::logical_expr::type_coercion::binary::BinaryTypeCoercer;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, ReturnFieldArgs, ScalarUDF};

use super::pushdown::{ColumnNames, SqlDialect, comparison, is_string, same_family, string_value};

/// An expression written in the engine's SQL.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub sql: String,
    /// DataFusion's type of the expression.
    pub data_type: DataType,
    /// For integers: the least and greatest value it can take, where known better than its
    /// type's range.
    pub bounds: Option<(i128, i128)>,
    /// The value, when the expression is a literal.
    pub literal: Option<ScalarValue>,
    /// For floats known never to be NaN nor -0.0 (the values where comparisons in the engines
    /// and in DataFusion, which orders floats by IEEE 754 totalOrder, could differ): what is
    /// known of their values.
    pub plain_float: Option<PlainFloat>,
}

/// What is known of a float expression that is never NaN, never -0.0 and never infinite:
/// integers and decimals cast to floats, finite literals other than -0.0, and the `+ - * /`
/// of those where the bounds prove that no step overflows, divides by zero or gives -0.0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlainFloat {
    /// The least magnitude of a value other than 0 (`inf` when it is always 0).
    pub smallest: f64,
    /// The greatest magnitude.
    pub largest: f64,
    pub never_negative: bool,
    pub never_zero: bool,
}

impl PlainFloat {
    /// Magnitudes kept well inside the finite normal range, so that no step overflows to
    /// infinity nor underflows to a zero whose sign differs from DataFusion's.
    const HUGE: f64 = 1e300;
    const TINY: f64 = 1e-300;

    /// A finite literal (not -0.0).
    pub fn literal(v: f64) -> Option<PlainFloat> {
        if !v.is_finite() || (v == 0.0 && v.is_sign_negative()) || v.abs() > Self::HUGE {
            return None;
        }
        Some(if v == 0.0 {
            PlainFloat {
                smallest: f64::INFINITY,
                largest: 0.0,
                never_negative: true,
                never_zero: false,
            }
        } else {
            PlainFloat {
                smallest: v.abs(),
                largest: v.abs(),
                never_negative: v > 0.0,
                never_zero: true,
            }
        })
    }

    /// An integer between `low` and `high` cast to a float.
    pub fn integer(low: i128, high: i128) -> PlainFloat {
        PlainFloat {
            smallest: 1.0,
            largest: (low.unsigned_abs().max(high.unsigned_abs()) as f64) * 1.001,
            never_negative: low >= 0,
            never_zero: low > 0 || high < 0,
        }
    }

    /// A `DECIMAL(precision, scale)` cast to a float.
    pub fn decimal(precision: u8, scale: i8) -> PlainFloat {
        PlainFloat {
            smallest: 10f64.powi(-i32::from(scale)) * 0.999,
            largest: 10f64.powi(i32::from(precision) - i32::from(scale)) * 1.001,
            never_negative: false,
            never_zero: false,
        }
    }

    /// `l op r`, when it is still plain; IEEE 754 gives -0.0 only for a zero or underflowed
    /// product or quotient of operands of different signs (a sum that is exactly zero is +0.0,
    /// and sums never underflow), NaN only from 0/0, ∞-∞ or 0·∞.
    pub fn arithmetic(l: PlainFloat, op: Operator, r: PlainFloat) -> Option<PlainFloat> {
        let result = match op {
            Operator::Plus | Operator::Minus => {
                let both_non_negative =
                    op == Operator::Plus && l.never_negative && r.never_negative;
                PlainFloat {
                    smallest: if both_non_negative {
                        l.smallest.min(r.smallest) * 0.5
                    } else {
                        f64::from_bits(1)
                    },
                    largest: (l.largest + r.largest) * 1.001,
                    never_negative: both_non_negative
                        || (op == Operator::Minus && l.never_negative && r.largest == 0.0),
                    never_zero: both_non_negative && (l.never_zero || r.never_zero),
                }
            }
            Operator::Multiply | Operator::Divide => {
                let (smallest, largest) = if op == Operator::Multiply {
                    (l.smallest * r.smallest, l.largest * r.largest)
                } else {
                    if !r.never_zero {
                        return None;
                    }
                    (l.smallest / r.largest, l.largest / r.smallest)
                };
                let same_sign = l.never_negative && r.never_negative;
                // an exact zero of different signs: +0.0 times (or over) a negative value
                let signed_zero = (!l.never_zero && !r.never_negative)
                    || (op == Operator::Multiply && !r.never_zero && !l.never_negative);
                let may_underflow = smallest < Self::TINY;
                if !same_sign && (signed_zero || may_underflow) {
                    return None;
                }
                PlainFloat {
                    smallest: (smallest * 0.5).max(f64::from_bits(1)),
                    largest: largest * 1.001,
                    never_negative: same_sign,
                    never_zero: l.never_zero
                        && (op == Operator::Divide || r.never_zero)
                        && !may_underflow,
                }
            }
            _ => return None,
        };
        (result.largest <= Self::HUGE).then_some(result)
    }

    /// `-value`, when it is still plain (-(+0.0) is -0.0).
    pub fn negated(self) -> Option<PlainFloat> {
        self.never_zero.then_some(PlainFloat {
            never_negative: false,
            ..self
        })
    }
}

impl Written {
    fn new(sql: String, data_type: DataType) -> Self {
        let bounds = integer_range(&data_type);
        Written {
            sql,
            data_type,
            bounds,
            literal: None,
            plain_float: None,
        }
    }
}

/// Why an expression stays in DataFusion: the expression and the reason, shown by EXPLAIN.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Kept {
    pub expr: String,
    pub reason: String,
}

impl fmt::Display for Kept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} — {}", self.expr, self.reason)
    }
}

/// `expr` kept for `reason`.
pub fn kept(expr: &Expr, reason: impl Into<String>) -> Kept {
    Kept {
        expr: expr.to_string(),
        reason: reason.into(),
    }
}

/// How decimal `+ - *` are written.
#[derive(Debug, Clone, Copy)]
pub enum DecimalForm<'a> {
    /// Exact for every value, as DataFusion computes them.
    Exact,
    /// In the dialect's narrow form where it has one ([`SqlDialect::narrow_decimal`]): exact
    /// or failing, never a different value. Only for a statement that fails, if it does,
    /// before returning a row, and that is run again in the exact form when it fails.
    /// `used` is set when an expression is written so.
    Narrow { used: &'a Cell<bool> },
}

/// `expr` in the dialect's SQL with DataFusion's meaning, columns spelled by `columns`.
pub fn expression_sql(
    expr: &Expr,
    columns: &dyn ColumnNames,
    dialect: &dyn SqlDialect,
    decimals: DecimalForm<'_>,
) -> Result<Written, Kept> {
    ExpressionWriter {
        columns,
        dialect,
        decimals,
    }
    .write(expr)
}

/// The predicate `expr` (a boolean expression) in the dialect's SQL.
pub fn predicate_or_reason(
    expr: &Expr,
    columns: &dyn ColumnNames,
    dialect: &dyn SqlDialect,
    decimals: DecimalForm<'_>,
) -> Result<String, Kept> {
    let written = expression_sql(expr, columns, dialect, decimals)?;
    if written.data_type != DataType::Boolean {
        return Err(kept(expr, "not a boolean predicate"));
    }
    Ok(written.sql)
}

/// The range of an integer type, or `None`.
pub fn integer_range(data_type: &DataType) -> Option<(i128, i128)> {
    Some(match data_type {
        DataType::Int8 => (i8::MIN.into(), i8::MAX.into()),
        DataType::Int16 => (i16::MIN.into(), i16::MAX.into()),
        DataType::Int32 => (i32::MIN.into(), i32::MAX.into()),
        DataType::Int64 => (i64::MIN.into(), i64::MAX.into()),
        DataType::UInt8 => (0, u8::MAX.into()),
        DataType::UInt16 => (0, u16::MAX.into()),
        DataType::UInt32 => (0, u32::MAX.into()),
        DataType::UInt64 => (0, u64::MAX.into()),
        _ => return None,
    })
}

/// An integer literal's value.
pub fn integer_literal(value: &ScalarValue) -> Option<i128> {
    Some(match value {
        ScalarValue::Int8(Some(v)) => (*v).into(),
        ScalarValue::Int16(Some(v)) => (*v).into(),
        ScalarValue::Int32(Some(v)) => (*v).into(),
        ScalarValue::Int64(Some(v)) => (*v).into(),
        ScalarValue::UInt8(Some(v)) => (*v).into(),
        ScalarValue::UInt16(Some(v)) => (*v).into(),
        ScalarValue::UInt32(Some(v)) => (*v).into(),
        ScalarValue::UInt64(Some(v)) => (*v).into(),
        _ => return None,
    })
}

pub fn is_decimal(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Decimal128(_, _))
}

/// `123.45` for the unscaled value 12345 at scale 2.
pub fn decimal_text(unscaled: i128, scale: i8) -> String {
    if scale <= 0 {
        let zeros = "0".repeat(scale.unsigned_abs().into());
        return format!("{unscaled}{zeros}");
    }
    let digits = unscaled.unsigned_abs().to_string();
    let scale = usize::from(scale.unsigned_abs());
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    let sign = if unscaled < 0 { "-" } else { "" };
    format!("{sign}{whole}.{fraction}")
}

struct ExpressionWriter<'a> {
    columns: &'a dyn ColumnNames,
    dialect: &'a dyn SqlDialect,
    decimals: DecimalForm<'a>,
}

impl ExpressionWriter<'_> {
    fn engine(&self) -> &str {
        self.dialect.display_name()
    }

    fn write(&self, expr: &Expr) -> Result<Written, Kept> {
        match expr {
            Expr::Alias(alias) => self.write(&alias.expr),
            Expr::Column(column) => {
                let (sql, data_type) = self
                    .columns
                    .column(column)
                    .ok_or_else(|| kept(expr, "not a column of the statement"))?;
                Ok(Written {
                    plain_float: self.columns.plain_float(column),
                    ..Written::new(sql, data_type)
                })
            }
            Expr::Literal(value, _) => self.literal(expr, value),
            Expr::BinaryExpr(binary) => self.binary(expr, binary),
            Expr::Not(inner) => {
                let inner = self.boolean(inner)?;
                Ok(Written::new(
                    format!("(NOT {})", inner.sql),
                    DataType::Boolean,
                ))
            }
            Expr::IsNull(inner) | Expr::IsNotNull(inner) => {
                let inner = self.write(inner)?;
                let not = if matches!(expr, Expr::IsNotNull(_)) {
                    "NOT "
                } else {
                    ""
                };
                Ok(Written::new(
                    format!("({} IS {not}NULL)", inner.sql),
                    DataType::Boolean,
                ))
            }
            Expr::IsTrue(inner)
            | Expr::IsFalse(inner)
            | Expr::IsNotTrue(inner)
            | Expr::IsNotFalse(inner) => {
                let inner = self.boolean(inner)?;
                let test = match expr {
                    Expr::IsTrue(_) => "IS TRUE",
                    Expr::IsFalse(_) => "IS FALSE",
                    Expr::IsNotTrue(_) => "IS NOT TRUE",
                    _ => "IS NOT FALSE",
                };
                Ok(Written::new(
                    format!("({} {test})", inner.sql),
                    DataType::Boolean,
                ))
            }
            Expr::Negative(inner) => {
                let value = self.write(inner)?;
                if value.bounds.is_some() {
                    let zero = Written {
                        literal: None,
                        bounds: Some((0, 0)),
                        ..Written::new("0".to_owned(), value.data_type.clone())
                    };
                    return self.integer_arithmetic(expr, &zero, Operator::Minus, &value);
                }
                if value.data_type.is_floating() && self.dialect.float_arithmetic_like_datafusion()
                {
                    let plain_float = value.plain_float.and_then(PlainFloat::negated);
                    return Ok(Written {
                        plain_float,
                        ..Written::new(format!("(- {})", value.sql), value.data_type)
                    });
                }
                if is_decimal(&value.data_type) && self.dialect.decimal_arithmetic() {
                    return Ok(Written::new(format!("(- {})", value.sql), value.data_type));
                }
                Err(kept(
                    expr,
                    format!("{} negates it differently", self.engine()),
                ))
            }
            Expr::Between(Between {
                expr: value,
                negated,
                low,
                high,
            }) => {
                let value = self.compared(value)?;
                let low = self.compared_with(low, &value.data_type)?;
                let high = self.compared_with(high, &value.data_type)?;
                let not = if *negated { "NOT " } else { "" };
                Ok(Written::new(
                    format!("({} {not}BETWEEN {} AND {})", value.sql, low.sql, high.sql),
                    DataType::Boolean,
                ))
            }
            Expr::InList(InList {
                expr: value,
                list,
                negated,
            }) => {
                if list.is_empty() {
                    return Err(kept(expr, "an empty IN list"));
                }
                let value = self.compared(value)?;
                let items = list
                    .iter()
                    .map(|item| Ok(self.compared_with(item, &value.data_type)?.sql))
                    .collect::<Result<Vec<_>, Kept>>()?;
                let not = if *negated { "NOT " } else { "" };
                Ok(Written::new(
                    format!("({} {not}IN ({}))", value.sql, items.join(", ")),
                    DataType::Boolean,
                ))
            }
            Expr::Like(like) => self.like(expr, like),
            Expr::Case(case) => self.case(expr, case),
            Expr::Cast(cast) => self.cast(expr, &cast.expr, cast.field.data_type(), false),
            Expr::TryCast(cast) => self.cast(expr, &cast.expr, cast.field.data_type(), true),
            Expr::ScalarFunction(function) => self.function(expr, function),
            _ => Err(kept(
                expr,
                format!("{} has no translation of it", self.engine()),
            )),
        }
    }

    fn literal(&self, expr: &Expr, value: &ScalarValue) -> Result<Written, Kept> {
        let data_type = value.data_type();
        let sql = if value.is_null() {
            Some("NULL".to_owned())
        } else {
            self.dialect.literal(value)
        };
        let sql = sql.ok_or_else(|| {
            kept(
                expr,
                format!("{} cannot spell this {data_type} literal", self.engine()),
            )
        })?;
        let bounds = integer_literal(value)
            .map(|v| (v, v))
            .or(integer_range(&data_type));
        let plain_float = match value {
            ScalarValue::Float64(Some(v)) => PlainFloat::literal(*v),
            ScalarValue::Float32(Some(v)) => PlainFloat::literal(f64::from(*v)),
            _ => None,
        };
        Ok(Written {
            sql,
            data_type,
            bounds,
            literal: (!value.is_null()).then(|| value.clone()),
            plain_float,
        })
    }

    /// A boolean expression.
    fn boolean(&self, expr: &Expr) -> Result<Written, Kept> {
        let written = self.write(expr)?;
        if written.data_type != DataType::Boolean {
            return Err(kept(expr, "not a boolean"));
        }
        Ok(written)
    }

    /// An expression of a type the engine compares (orders, groups) like DataFusion, or a
    /// float that is never NaN nor -0.0, which every engine compares as DataFusion does.
    fn compared(&self, expr: &Expr) -> Result<Written, Kept> {
        let written = self.write(expr)?;
        if !self.dialect.compares_like_datafusion(&written.data_type)
            && written.plain_float.is_none()
        {
            return Err(kept(
                expr,
                format!(
                    "{} compares {} differently",
                    self.engine(),
                    written.data_type
                ),
            ));
        }
        Ok(written)
    }

    /// An expression compared with one of `data_type`.
    fn compared_with(&self, expr: &Expr, data_type: &DataType) -> Result<Written, Kept> {
        let written = self.compared(expr)?;
        if !same_family(&written.data_type, data_type) {
            return Err(kept(
                expr,
                format!("compares {} with {data_type}", written.data_type),
            ));
        }
        Ok(written)
    }

    fn binary(&self, expr: &Expr, binary: &BinaryExpr) -> Result<Written, Kept> {
        let BinaryExpr { left, op, right } = binary;
        match op {
            Operator::And | Operator::Or => {
                let l = self.boolean(left)?;
                let r = self.boolean(right)?;
                let word = if *op == Operator::And { "AND" } else { "OR" };
                Ok(Written::new(
                    format!("({} {word} {})", l.sql, r.sql),
                    DataType::Boolean,
                ))
            }
            Operator::IsDistinctFrom | Operator::IsNotDistinctFrom => {
                let l = self.compared(left)?;
                let r = self.compared_with(right, &l.data_type)?;
                let negated = *op == Operator::IsNotDistinctFrom;
                Ok(Written::new(
                    self.dialect.distinct_from(&l.sql, &r.sql, negated),
                    DataType::Boolean,
                ))
            }
            Operator::StringConcat => {
                let l = self.write(left)?;
                let r = self.write(right)?;
                if !(is_string(&l.data_type) && is_string(&r.data_type)) {
                    return Err(kept(expr, "|| of values that are not strings"));
                }
                if !self.dialect.concatenates_like_datafusion() {
                    return Err(kept(
                        expr,
                        format!("{} concatenates differently", self.engine()),
                    ));
                }
                Ok(Written::new(
                    format!("({} || {})", l.sql, r.sql),
                    l.data_type,
                ))
            }
            Operator::Plus | Operator::Minus if matches!(right.as_ref(), Expr::Literal(v, _) if months_and_days(v).is_some()) =>
            {
                // date ± interval: the interval is spelled by the dialect's date arithmetic
                let l = self.write(left)?;
                let Expr::Literal(interval, _) = right.as_ref() else {
                    return Err(kept(expr, "not an interval literal"));
                };
                let (Some((months, days)), DataType::Date32) =
                    (months_and_days(interval), &l.data_type)
                else {
                    return Err(kept(
                        expr,
                        format!(
                            "{} has no translation of {} {op} an interval",
                            self.engine(),
                            l.data_type
                        ),
                    ));
                };
                let (months, days) = if *op == Operator::Minus {
                    (-months, -days)
                } else {
                    (months, days)
                };
                self.dialect
                    .date_plus(&l.sql, months, days)
                    .map(|sql| Written::new(sql, DataType::Date32))
                    .ok_or_else(|| {
                        kept(
                            expr,
                            format!("{} adds intervals to dates differently", self.engine()),
                        )
                    })
            }
            Operator::Plus
            | Operator::Minus
            | Operator::Multiply
            | Operator::Divide
            | Operator::Modulo => {
                let l = self.write(left)?;
                let r = self.write(right)?;
                self.arithmetic(expr, &l, *op, &r)
            }
            other => {
                let Some(symbol) = comparison(*other) else {
                    return Err(kept(
                        expr,
                        format!("{} has no translation of {other}", self.engine()),
                    ));
                };
                let l = self.compared(left)?;
                let r = self.compared_with(right, &l.data_type)?;
                Ok(Written::new(
                    format!("({} {symbol} {})", l.sql, r.sql),
                    DataType::Boolean,
                ))
            }
        }
    }

    fn arithmetic(
        &self,
        expr: &Expr,
        l: &Written,
        op: Operator,
        r: &Written,
    ) -> Result<Written, Kept> {
        let (lt, rt) = (&l.data_type, &r.data_type);
        if l.bounds.is_some() && r.bounds.is_some() {
            if lt != rt {
                return Err(kept(expr, format!("{op} of {lt} and {rt}")));
            }
            return self.integer_arithmetic(expr, l, op, r);
        }
        if lt.is_floating() && lt == rt && op != Operator::Modulo {
            if !self.dialect.float_arithmetic_like_datafusion() {
                return Err(kept(
                    expr,
                    format!(
                        "{} does not compute floating point as DataFusion does (NaN, ±inf)",
                        self.engine()
                    ),
                ));
            }
            // tracked for doubles only: a float's range is far narrower
            let plain_float = match (l.plain_float, r.plain_float, lt) {
                (Some(a), Some(b), DataType::Float64) => PlainFloat::arithmetic(a, op, b),
                _ => None,
            };
            return Ok(Written {
                plain_float,
                ..Written::new(format!("({} {op} {})", l.sql, r.sql), lt.clone())
            });
        }
        if is_decimal(lt) && is_decimal(rt) {
            return self.decimal_arithmetic(expr, l, op, r);
        }
        Err(kept(
            expr,
            format!(
                "{} has no translation of {op} on {lt} and {rt}",
                self.engine()
            ),
        ))
    }

    /// `l op r` on integers of one type, with DataFusion's result: wrapping around on
    /// overflow, truncating division.
    fn integer_arithmetic(
        &self,
        expr: &Expr,
        l: &Written,
        op: Operator,
        r: &Written,
    ) -> Result<Written, Kept> {
        let data_type = &l.data_type;
        let (Some((l_min, l_max)), Some((r_min, r_max)), Some((type_min, type_max))) =
            (l.bounds, r.bounds, integer_range(data_type))
        else {
            return Err(kept(expr, "not integers"));
        };
        if !self.dialect.carries(data_type) {
            return Err(kept(
                expr,
                format!("{} does not hold {data_type} values", self.engine()),
            ));
        }
        let symbol = match op {
            Operator::Plus => "+",
            Operator::Minus => "-",
            Operator::Multiply => "*",
            Operator::Divide | Operator::Modulo => {
                if r_min <= 0 && 0 <= r_max {
                    return Err(kept(expr, "the divisor may be 0"));
                }
                let min_over_minus_one = l_min == type_min && r_min <= -1 && -1 <= r_max;
                if min_over_minus_one && type_min < 0 {
                    return Err(kept(expr, "may divide the type's least value by -1"));
                }
                let largest = l_min.abs().max(l_max.abs());
                let (sql, bounds) = if op == Operator::Divide {
                    let bounds = if type_min < 0 {
                        (-largest, largest)
                    } else {
                        (0, largest)
                    };
                    (self.dialect.integer_division(&l.sql, &r.sql), bounds)
                } else {
                    let divisor = r_min.abs().max(r_max.abs()) - 1;
                    let bounds = if type_min < 0 {
                        (-divisor.min(largest), divisor.min(largest))
                    } else {
                        (0, divisor.min(largest))
                    };
                    (format!("({} % {})", l.sql, r.sql), bounds)
                };
                return Ok(Written {
                    bounds: Some(bounds),
                    ..Written::new(sql, data_type.clone())
                });
            }
            _ => return Err(kept(expr, format!("{op} of integers"))),
        };
        let exact = match op {
            Operator::Plus => l_min.checked_add(r_min).zip(l_max.checked_add(r_max)),
            Operator::Minus => l_min.checked_sub(r_max).zip(l_max.checked_sub(r_min)),
            _ => {
                let products = [
                    l_min.checked_mul(r_min),
                    l_min.checked_mul(r_max),
                    l_max.checked_mul(r_min),
                    l_max.checked_mul(r_max),
                ];
                products
                    .iter()
                    .copied()
                    .collect::<Option<Vec<i128>>>()
                    .map(|p| {
                        (
                            p.iter().copied().min().unwrap_or(0),
                            p.iter().copied().max().unwrap_or(0),
                        )
                    })
            }
        };
        match exact {
            Some((low, high)) if type_min <= low && high <= type_max => Ok(Written {
                bounds: Some((low, high)),
                ..Written::new(format!("({} {symbol} {})", l.sql, r.sql), data_type.clone())
            }),
            // may overflow: DataFusion wraps around
            Some(_) => self
                .dialect
                .wrapping(&l.sql, symbol, &r.sql, data_type)
                .map(|sql| Written::new(sql, data_type.clone()))
                .ok_or_else(|| {
                    kept(
                        expr,
                        format!(
                            "may overflow {data_type}, where DataFusion wraps around and {} does not",
                            self.engine()
                        ),
                    )
                }),
            None => Err(kept(expr, format!("may overflow {data_type}"))),
        }
    }

    /// `w` as an operand of the dialect's narrow decimal `+ - *`: a literal typed with only
    /// the digits its value has (DataFusion types the `1` of `1 - d` DECIMAL(20, 0), and an
    /// engine sizing its result by the operands' widths would leave 64 bits for it — in
    /// DuckDB, TPC-H q01's statement 62 → 43 ms), anything else as the dialect narrows it.
    fn narrow_operand(&self, w: &Written) -> Option<String> {
        if let Some(ScalarValue::Decimal128(Some(value), _, scale)) = &w.literal
            && let Ok(scale_digits) = u8::try_from(*scale)
        {
            let digits = value.unsigned_abs().checked_ilog10().map_or(1, |d| d + 1);
            let precision = u8::try_from(digits).ok()?.max(scale_digits).max(1);
            let narrow = ScalarValue::Decimal128(Some(*value), precision, *scale);
            let sql = self.dialect.literal(&narrow)?;
            return self
                .dialect
                .narrow_decimal(&sql, &DataType::Decimal128(precision, *scale));
        }
        self.dialect.narrow_decimal(&w.sql, &w.data_type)
    }

    /// Decimal `+ - *` with DataFusion's result type; values are exact in both.
    fn decimal_arithmetic(
        &self,
        expr: &Expr,
        l: &Written,
        op: Operator,
        r: &Written,
    ) -> Result<Written, Kept> {
        if !self.dialect.decimal_arithmetic() {
            return Err(kept(
                expr,
                format!("{} computes decimals differently", self.engine()),
            ));
        }
        if op == Operator::Divide {
            return self.decimal_division(expr, l, r);
        }
        if !matches!(op, Operator::Plus | Operator::Minus | Operator::Multiply) {
            return Err(kept(
                expr,
                format!("{op} of decimals: result scale and rounding differ"),
            ));
        }
        let result = BinaryTypeCoercer::new(&l.data_type, &op, &r.data_type)
            .get_result_type()
            .map_err(|e| kept(expr, e.to_string()))?;
        let (DataType::Decimal128(_, ls), DataType::Decimal128(_, rs), DataType::Decimal128(_, s)) =
            (&l.data_type, &r.data_type, &result)
        else {
            return Err(kept(expr, format!("{op} of decimals gives {result}")));
        };
        let exact_scale = if op == Operator::Multiply {
            ls + rs
        } else {
            *ls.max(rs)
        };
        if exact_scale != *s {
            return Err(kept(
                expr,
                format!("DataFusion rounds the result to scale {s}"),
            ));
        }
        if let DecimalForm::Narrow { used } = self.decimals
            && let (Some(left), Some(right)) = (self.narrow_operand(l), self.narrow_operand(r))
        {
            used.set(true);
            return Ok(Written::new(format!("({left} {op} {right})"), result));
        }
        // DuckDB's result is DECIMAL(38, s): the same value as DataFusion's, whose type the
        // statement's result is cast to. Narrower operands are faster (TPC-H q01 5x) but not
        // exact: DuckDB multiplies two DECIMAL(≤18) in 64 bits and fails past 18 digits
        // ("Overflow in multiplication of DECIMAL(18)"), where DataFusion answers.
        let wide = |w: &Written, scale: i8| format!("CAST({} AS DECIMAL(38,{scale}))", w.sql);
        let sql = format!("({} {op} {})", wide(l, *ls), wide(r, *rs));
        Ok(Written::new(sql, result))
    }

    /// Decimal `/` as arrow's kernel computes it for DataFusion: scale `s1 + 4`, the left
    /// unscaled value times `10^(s - s1 + s2)` divided by the right's, truncated toward zero,
    /// an error for a zero divisor. Written only where that product has at most 38 digits:
    /// then nothing overflows in either, and the quotient fits DataFusion's precision (past
    /// 38 digits arrow's quotient can exceed its type's precision, which no engine holds).
    fn decimal_division(&self, expr: &Expr, l: &Written, r: &Written) -> Result<Written, Kept> {
        let (DataType::Decimal128(p1, s1), DataType::Decimal128(p2, s2)) =
            (&l.data_type, &r.data_type)
        else {
            return Err(kept(expr, "not decimals"));
        };
        let (p1, s1, p2, s2) = (
            i16::from(*p1),
            i16::from(*s1),
            i16::from(*p2),
            i16::from(*s2),
        );
        let scale = (s1 + 4).min(38);
        let multiplier = scale - s1 + s2;
        let precision = p1 + multiplier;
        if s1 < 0 || s2 < 0 || multiplier < 0 || precision > 38 || p1 + s1 > 38 || p2 + s2 > 38 {
            return Err(kept(
                expr,
                "/ of decimals whose quotient may pass 38 digits",
            ));
        }
        let result = BinaryTypeCoercer::new(&l.data_type, &Operator::Divide, &r.data_type)
            .get_result_type()
            .map_err(|e| kept(expr, e.to_string()))?;
        let (Ok(p), Ok(s)) = (u8::try_from(precision), i8::try_from(scale)) else {
            return Err(kept(expr, "/ of decimals"));
        };
        if result != DataType::Decimal128(p, s) {
            return Err(kept(expr, format!("/ of decimals gives {result}")));
        }
        let scales = (s1 as i8, s2 as i8, multiplier as i8);
        self.dialect
            .decimal_division(&l.sql, &r.sql, scales, (p, s))
            .map(|sql| Written::new(sql, result))
            .ok_or_else(|| {
                kept(
                    expr,
                    format!("{} divides decimals differently", self.engine()),
                )
            })
    }

    fn like(&self, expr: &Expr, like: &Like) -> Result<Written, Kept> {
        let Like {
            negated,
            expr: value,
            pattern,
            escape_char,
            case_insensitive,
        } = like;
        if *case_insensitive {
            return Err(kept(expr, "case folding differs outside ASCII"));
        }
        if escape_char.is_some() {
            return Err(kept(expr, "escape characters differ"));
        }
        let value = self.write(value)?;
        if !is_string(&value.data_type) {
            return Err(kept(expr, "LIKE on a value that is not a string"));
        }
        let pattern = match pattern.as_ref() {
            Expr::Literal(value, _) => string_value(value),
            _ => None,
        }
        .ok_or_else(|| kept(expr, "the pattern is not a string literal"))?;
        if pattern.contains('\\') {
            return Err(kept(expr, "escape characters differ"));
        }
        self.dialect
            .like(&value.sql, &pattern, *negated)
            .map(|sql| Written::new(sql, DataType::Boolean))
            .ok_or_else(|| kept(expr, format!("{} matches LIKE differently", self.engine())))
    }

    fn case(&self, expr: &Expr, case: &Case) -> Result<Written, Kept> {
        let operand = case.expr.as_deref().map(|e| self.compared(e)).transpose()?;
        let mut sql = String::from("CASE");
        if let Some(operand) = &operand {
            sql.push_str(&format!(" {}", operand.sql));
        }
        let mut result_type: Option<DataType> = None;
        let mut result = |written: Written, sql: &mut String, word: &str| {
            if !self.dialect.carries(&written.data_type) {
                return Err(kept(
                    expr,
                    format!(
                        "{} does not return {} unchanged",
                        self.engine(),
                        written.data_type
                    ),
                ));
            }
            match &result_type {
                Some(t) if !same_family(t, &written.data_type) => {
                    return Err(kept(expr, "branches of different types"));
                }
                Some(_) => {}
                None => result_type = Some(written.data_type.clone()),
            }
            sql.push_str(&format!(" {word} {}", written.sql));
            Ok(())
        };
        for (when, then) in &case.when_then_expr {
            let when = match &operand {
                Some(operand) => self.compared_with(when, &operand.data_type)?,
                None => self.boolean(when)?,
            };
            sql.push_str(&format!(" WHEN {}", when.sql));
            result(self.write(then)?, &mut sql, "THEN")?;
        }
        if let Some(otherwise) = &case.else_expr {
            result(self.write(otherwise)?, &mut sql, "ELSE")?;
        }
        sql.push_str(" END");
        let data_type = result_type.ok_or_else(|| kept(expr, "a CASE without branches"))?;
        Ok(Written::new(format!("({sql})"), data_type))
    }

    /// `CAST` (`try_cast`: `TRY_CAST`, which gives NULL where a cast fails: only casts that
    /// cannot fail are written for it).
    fn cast(
        &self,
        expr: &Expr,
        inner: &Expr,
        to: &DataType,
        try_cast: bool,
    ) -> Result<Written, Kept> {
        let value = self.write(inner)?;
        if value.data_type == *to {
            return Ok(value);
        }
        let never_fails = value.data_type.is_integer() && (to.is_floating() || is_string(to));
        // integer to integer: the bounds check below rules out failing
        if try_cast && value.bounds.is_none() && !never_fails {
            return Err(kept(expr, "TRY_CAST that may fail"));
        }
        if let (Some((low, high)), Some((to_min, to_max))) = (value.bounds, integer_range(to)) {
            // DataFusion fails on a value that does not fit: only casts that always fit
            if low < to_min || high > to_max {
                return Err(kept(expr, format!("may not fit {to}")));
            }
            return self
                .dialect
                .cast(&value, to)
                .map(|sql| Written {
                    bounds: Some((low, high)),
                    ..Written::new(sql, to.clone())
                })
                .ok_or_else(|| kept(expr, format!("{} casts differently", self.engine())));
        }
        let plain_float = match (&value.data_type, value.bounds) {
            _ if !to.is_floating() => None,
            (_, Some((low, high))) => Some(PlainFloat::integer(low, high)),
            (DataType::Decimal128(p, s), _) => Some(PlainFloat::decimal(*p, *s)),
            // widening keeps every value; narrowing may overflow or underflow
            (DataType::Float32, _) => value.plain_float,
            _ => None,
        };
        self.dialect
            .cast(&value, to)
            .map(|sql| Written {
                plain_float,
                ..Written::new(sql, to.clone())
            })
            .ok_or_else(|| {
                kept(
                    expr,
                    format!(
                        "{} casts {} to {to} differently",
                        self.engine(),
                        value.data_type
                    ),
                )
            })
    }

    fn function(&self, expr: &Expr, function: &ScalarFunction) -> Result<Written, Kept> {
        let name = function.func.name();
        if !is_datafusion_function(&function.func) {
            return Err(kept(
                expr,
                format!("{name} is not DataFusion's own function (one registered in the session)"),
            ));
        }
        let args = function
            .args
            .iter()
            .map(|a| self.write(a))
            .collect::<Result<Vec<_>, Kept>>()?;
        let fields: Vec<FieldRef> = args
            .iter()
            .map(|a| std::sync::Arc::new(Field::new("a", a.data_type.clone(), true)))
            .collect();
        let literals: Vec<Option<&ScalarValue>> = args.iter().map(|a| a.literal.as_ref()).collect();
        let returned = function
            .func
            .return_field_from_args(ReturnFieldArgs {
                arg_fields: &fields,
                scalar_arguments: &literals,
            })
            .map_err(|e| kept(expr, e.to_string()))?;
        let data_type = returned.data_type().clone();
        if name == "abs"
            && let Some((low, _)) = args.first().and_then(|a| a.bounds)
            && integer_range(&args[0].data_type).is_some_and(|(min, _)| min < 0 && low == min)
        {
            return Err(kept(expr, "abs of the type's least value overflows"));
        }
        let sql = self
            .dialect
            .function(name, &args, &data_type)
            .map_err(|reason| kept(expr, reason))?;
        let bounds = match name {
            // |x| of a value whose bounds exclude the least one
            "abs" => args[0].bounds.map(|(l, h)| (0, l.abs().max(h.abs()))),
            _ => integer_range(&data_type),
        };
        Ok(Written {
            bounds,
            ..Written::new(sql, data_type)
        })
    }
}

/// Whether `function` is DataFusion's own scalar function of that name, as DataFusion
/// defines it by default — not one registered in a session under a built-in's name (dialects
/// translate functions by name), nor a built-in set up from a session's config (`now` or
/// `to_timestamp` with a time zone).
pub fn is_datafusion_function(function: &ScalarUDF) -> bool {
    static BUILTINS: OnceLock<HashMap<String, Arc<ScalarUDF>>> = OnceLock::new();
    let builtins = BUILTINS.get_or_init(|| {
        let mut builtins = HashMap::new();
        for builtin in SessionStateDefaults::default_scalar_functions() {
            for name in
                std::iter::once(builtin.name()).chain(builtin.aliases().iter().map(String::as_str))
            {
                builtins.insert(name.to_owned(), Arc::clone(&builtin));
            }
        }
        builtins
    });
    builtins
        .get(function.name())
        .is_some_and(|builtin| **builtin == *function)
}

/// The months and days of an interval literal with no smaller part.
fn months_and_days(value: &ScalarValue) -> Option<(i32, i32)> {
    match value {
        ScalarValue::IntervalYearMonth(Some(months)) => Some((*months, 0)),
        ScalarValue::IntervalDayTime(Some(v)) if v.milliseconds == 0 => Some((0, v.days)),
        ScalarValue::IntervalMonthDayNano(Some(v)) if v.nanoseconds == 0 => {
            Some((v.months, v.days))
        }
        _ => None,
    }
}
