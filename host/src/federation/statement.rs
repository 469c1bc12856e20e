//! A logical subplan written as one SQL statement, with DataFusion's meaning, or `None`.
//!
//! Every `SELECT` written here names its output columns `c0`, `c1`, … in the order of the plan
//! node's schema, so a column reference resolves by position in the input's schema, whatever
//! qualifiers and names DataFusion uses; the engine returns the root's columns in that order,
//! cast to DataFusion's types.
//!
//! What is written (anything else leaves the subtree to DataFusion):
//! - scans of tables in one compute context of one engine generation, with their pushed
//!   filters and limit;
//! - filters, and the predicates of joins, through the filter translation every engine already
//!   uses ([`accel_plugin_api::pushdown`]): only comparisons whose meaning is the same;
//! - projections of columns, literals and such predicates;
//! - GROUP BY on columns the engine groups like DataFusion (no floats: -0.0 and NaN), with
//!   `count`, `sum`, `avg`, `min`, `max` (plain or DISTINCT) over columns — `min`, `max` and
//!   DISTINCT only over types the engine compares like DataFusion (not floats, for the same
//!   reason); integer `sum` as the dialect writes it to wrap around on overflow as
//!   DataFusion's does ([`SqlDialect::integer_sum`]), float `sum`/`avg` only where the
//!   engine's reach NaN and ±inf as DataFusion's do;
//! - inner, left, right and full joins on equal columns;
//! - ORDER BY columns (no floats) at the root (or under its limit), where the rows come back in
//!   that order; elsewhere only with a limit under an aggregate or a join, where it picks a set
//!   of rows (SQL does not keep a subquery's order, so a sort under a filter or projection
//!   stays in its own statement or in DataFusion);
//! - only over types the engine returns unchanged ([`SqlDialect::carries`]), at every node.
//!
//! A subtree with no aggregate, join or sort is left to the table scans, which push the same
//! filters, projections and limits.

use std::sync::Arc;

use accel_plugin_api::embedded::pushdown::{
    ColumnNames, SqlDialect, predicate_sql, quote_ident, same_family, to_sql,
};
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Column, DFSchema, NullEquality};
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::logical_plan::{
    Aggregate, Filter, Join, JoinType, Limit, Projection, Sort, SubqueryAlias, TableScan,
};
use datafusion::logical_expr::{Expr, FetchType, LogicalPlan, SkipType, SortExpr};

use crate::table::managed::{ManagedTable, SqlTarget};

/// Finds where a table lives for SQL now (at optimisation: without waiting; at physical
/// planning: under the read guards taken for the query).
pub type Lookup<'a> = dyn Fn(&Arc<ManagedTable>) -> Option<SqlTarget> + 'a;

/// A subplan as one statement of one engine.
#[derive(Debug)]
pub struct Statement {
    pub sql: String,
    /// Generation, dialect and context of every table in it (those of the first table).
    pub target: SqlTarget,
    /// The order the rows come back in (root column, direction), when the root sorts.
    pub ordering: Vec<(usize, SortOptions)>,
}

impl Statement {
    /// `plan` as one statement, if all of it can run in one engine context and it does work a
    /// scan would not (an aggregate, a join or a sort).
    pub fn write(plan: &LogicalPlan, lookup: &Lookup<'_>) -> Option<Statement> {
        if plan.schema().fields().is_empty() {
            return None;
        }
        let mut writer = Writer {
            lookup,
            target: None,
            pushes_work: false,
        };
        let sql = writer.plan(plan, Position::Root)?;
        if !writer.pushes_work {
            return None;
        }
        Some(Statement {
            sql,
            target: writer.target?,
            ordering: root_ordering(plan)?,
        })
    }
}

/// The order of the root's rows: those of its sort (or of the sort under its limit).
fn root_ordering(plan: &LogicalPlan) -> Option<Vec<(usize, SortOptions)>> {
    if let LogicalPlan::SubqueryAlias(SubqueryAlias { input, .. }) = plan {
        return root_ordering(input);
    }
    let sort = match plan {
        LogicalPlan::Sort(sort) => sort,
        LogicalPlan::Limit(Limit { input, .. }) => match input.as_ref() {
            LogicalPlan::Sort(sort) => sort,
            _ => return Some(vec![]),
        },
        _ => return Some(vec![]),
    };
    sort.expr
        .iter()
        .map(|key| {
            let Expr::Column(column) = &key.expr else {
                return None;
            };
            let index = sort.input.schema().index_of_column(column).ok()?;
            Some((
                index,
                SortOptions {
                    descending: !key.asc,
                    nulls_first: key.nulls_first,
                },
            ))
        })
        .collect()
}

/// Where a node sits in the statement, for what its rows' order means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// The statement itself: a sort here is the order the rows come back in.
    Root,
    /// Under filters, projections or limits below the root: the order of these rows is the
    /// order above, but SQL does not keep a subquery's order — no sort here.
    OrderMatters,
    /// Under an aggregate or a join, which do not depend on order: a sort here only counts
    /// when it has a limit (it picks a set of rows).
    OrderFree,
}

impl Position {
    /// The position of the input of a filter, projection or limit (which keep their input's
    /// order) at this position.
    fn below_row_by_row(self) -> Position {
        match self {
            Position::OrderFree => Position::OrderFree,
            Position::Root | Position::OrderMatters => Position::OrderMatters,
        }
    }
}

/// The accel table `scan` reads, if it is one.
pub fn managed_table(scan: &TableScan) -> Option<Arc<ManagedTable>> {
    let provider = source_as_provider(&scan.source).ok()?;
    (provider as Arc<dyn std::any::Any + Send + Sync>)
        .downcast::<ManagedTable>()
        .ok()
}

struct Writer<'a> {
    lookup: &'a Lookup<'a>,
    target: Option<SqlTarget>,
    pushes_work: bool,
}

/// Output column `index` of a written `SELECT`.
fn output(index: usize) -> String {
    format!("\"c{index}\"")
}

/// The columns of one input, by position.
struct Positional<'a>(&'a DFSchema);

impl ColumnNames for Positional<'_> {
    fn column(&self, column: &Column) -> Option<(String, DataType)> {
        let index = self.0.index_of_column(column).ok()?;
        Some((output(index), self.0.field(index).data_type().clone()))
    }
}

/// The columns of a join's two inputs, `l` and `r`.
struct JoinColumns<'a> {
    left: &'a DFSchema,
    right: &'a DFSchema,
}

impl ColumnNames for JoinColumns<'_> {
    fn column(&self, column: &Column) -> Option<(String, DataType)> {
        let (side, schema) = if self.left.has_column(column) {
            ("l", self.left)
        } else {
            ("r", self.right)
        };
        let index = schema.index_of_column(column).ok()?;
        Some((
            format!("{side}.{}", output(index)),
            schema.field(index).data_type().clone(),
        ))
    }
}

impl Writer<'_> {
    fn dialect(&self) -> Option<&'static dyn SqlDialect> {
        self.target.as_ref().map(|t| t.dialect)
    }

    /// `plan` as a `SELECT` with columns `c0…`, at `position` in the statement.
    fn plan(&mut self, plan: &LogicalPlan, position: Position) -> Option<String> {
        let sql = match plan {
            LogicalPlan::TableScan(scan) => self.scan(scan)?,
            LogicalPlan::SubqueryAlias(SubqueryAlias { input, .. }) => {
                self.plan(input, position)?
            }
            LogicalPlan::Filter(filter) => self.filter(filter, position.below_row_by_row())?,
            LogicalPlan::Projection(projection) => {
                self.projection(projection, position.below_row_by_row())?
            }
            LogicalPlan::Aggregate(aggregate) => self.aggregate(aggregate)?,
            LogicalPlan::Join(join) => self.join(join)?,
            LogicalPlan::Sort(sort) => self.sort(sort, position, None, 0)?,
            LogicalPlan::Limit(limit) => self.limit(limit, position)?,
            _ => return None,
        };
        let dialect = self.dialect()?;
        plan.schema()
            .fields()
            .iter()
            .all(|f| dialect.carries(f.data_type()))
            .then_some(sql)
    }

    fn scan(&mut self, scan: &TableScan) -> Option<String> {
        let table = managed_table(scan)?;
        let target = (self.lookup)(&table)?;
        match &self.target {
            None => self.target = Some(target.clone()),
            Some(first) if first.same_context(&target) => {}
            Some(_) => return None,
        }
        let dialect = target.dialect;
        let schema = table.schema_ref();
        let indices: Vec<usize> = match &scan.projection {
            Some(p) => p.clone(),
            None => (0..schema.fields().len()).collect(),
        };
        let mut columns: Vec<String> = indices
            .iter()
            .enumerate()
            .map(|(position, index)| {
                format!(
                    "{} AS {}",
                    quote_ident(schema.field(*index).name()),
                    output(position)
                )
            })
            .collect();
        if columns.is_empty() {
            columns.push(format!("1 AS {}", output(0)));
        }
        let conditions = scan
            .filters
            .iter()
            .map(|f| to_sql(f, schema, dialect))
            .collect::<Option<Vec<_>>>()?;
        let mut sql = format!(
            "SELECT {} FROM {}",
            columns.join(", "),
            quote_ident(&target.table.table)
        );
        if !conditions.is_empty() {
            sql.push_str(&format!(" WHERE {}", conditions.join(" AND ")));
        }
        sql.push_str(&dialect.limit(scan.fetch, 0));
        Some(sql)
    }

    fn filter(&mut self, filter: &Filter, below: Position) -> Option<String> {
        let input = self.plan(&filter.input, below)?;
        let predicate = predicate_sql(
            &filter.predicate,
            &Positional(filter.input.schema()),
            self.dialect()?,
        )?;
        Some(format!("SELECT * FROM ({input}) AS q WHERE {predicate}"))
    }

    fn projection(&mut self, projection: &Projection, below: Position) -> Option<String> {
        let input = self.plan(&projection.input, below)?;
        let columns = Positional(projection.input.schema());
        if is_renaming(projection) {
            return Some(input);
        }
        let mut values = projection
            .expr
            .iter()
            .enumerate()
            .map(|(i, e)| Some(format!("{} AS {}", self.value(e, &columns)?, output(i))))
            .collect::<Option<Vec<_>>>()?;
        if values.is_empty() {
            // no columns (e.g. under `count(*)`): SQL needs one, nothing reads it
            values.push(format!("1 AS {}", output(0)));
        }
        Some(format!("SELECT {} FROM ({input}) AS q", values.join(", ")))
    }

    fn aggregate(&mut self, aggregate: &Aggregate) -> Option<String> {
        let input = self.plan(&aggregate.input, Position::OrderFree)?;
        let dialect = self.dialect()?;
        let columns = Positional(aggregate.input.schema());
        let groups = aggregate
            .group_expr
            .iter()
            .map(|e| {
                let Expr::Column(column) = e else {
                    return None;
                };
                let (sql, data_type) = columns.column(column)?;
                dialect.compares_like_datafusion(&data_type).then_some(sql)
            })
            .collect::<Option<Vec<_>>>()?;
        let aggregates = aggregate
            .aggr_expr
            .iter()
            .map(|e| self.aggregate_call(e, &columns))
            .collect::<Option<Vec<_>>>()?;
        let values: Vec<String> = groups
            .iter()
            .chain(&aggregates)
            .enumerate()
            .map(|(i, v)| format!("{v} AS {}", output(i)))
            .collect();
        let mut sql = format!("SELECT {} FROM ({input}) AS q", values.join(", "));
        if !groups.is_empty() {
            sql.push_str(&format!(" GROUP BY {}", groups.join(", ")));
        }
        self.pushes_work = true;
        Some(sql)
    }

    /// `count`, `sum`, `avg`, `min`, `max` of a column (or `count(*)`), plain or DISTINCT,
    /// with no FILTER or ORDER BY.
    fn aggregate_call(&self, expr: &Expr, columns: &dyn ColumnNames) -> Option<String> {
        let dialect = self.dialect()?;
        let Expr::AggregateFunction(AggregateFunction { func, params }) = unalias(expr) else {
            return None;
        };
        if params.filter.is_some()
            || !params.order_by.is_empty()
            || params.null_treatment.is_some()
            || params.args.len() != 1
        {
            return None;
        }
        let name = func.name();
        let distinct = if params.distinct { "DISTINCT " } else { "" };
        let argument = &params.args[0];
        if name == "count"
            && !params.distinct
            && matches!(argument, Expr::Literal(value, _) if !value.is_null())
        {
            return Some("count(*)".to_owned());
        }
        // `avg` of integers: DataFusion averages them as DOUBLE (and says so with a cast)
        let (argument, as_double) = match argument {
            Expr::Cast(cast) if cast.field.data_type() == &DataType::Float64 => {
                (cast.expr.as_ref(), true)
            }
            other => (other, false),
        };
        let Expr::Column(column) = argument else {
            return None;
        };
        let (column, data_type) = columns.column(column)?;
        if as_double && !(data_type.is_integer() && dialect.carries(&data_type)) {
            return None;
        }
        let column = if as_double {
            format!("CAST({column} AS DOUBLE)")
        } else {
            column
        };
        // -0.0 and 0.0 are one value to the engines, two to DataFusion
        let compared = dialect.compares_like_datafusion(&data_type);
        if params.distinct && !compared {
            return None;
        }
        // Sums with DataFusion's meaning: integers wrap around on overflow (the dialect writes
        // that), floats reach NaN and ±inf (only where the engine's sums do too).
        if name == "sum" && data_type.is_integer() && !as_double {
            if !dialect.carries(&data_type) {
                return None;
            }
            return dialect.integer_sum(&column, params.distinct, &data_type);
        }
        let allowed = match name {
            "count" => dialect.carries(&data_type),
            "min" | "max" => compared,
            "sum" | "avg" => {
                dialect.carries(&data_type)
                    && (data_type.is_integer()
                        || (data_type.is_floating() && dialect.sums_floats_like_datafusion()))
            }
            _ => false,
        };
        allowed.then(|| format!("{name}({distinct}{column})"))
    }

    fn join(&mut self, join: &Join) -> Option<String> {
        let kind = match join.join_type {
            JoinType::Inner => "INNER",
            JoinType::Left => "LEFT",
            JoinType::Right => "RIGHT",
            JoinType::Full => "FULL",
            _ => return None,
        };
        if join.on.is_empty()
            || join.null_aware
            || join.null_equality != NullEquality::NullEqualsNothing
        {
            return None;
        }
        let left = self.plan(&join.left, Position::OrderFree)?;
        let right = self.plan(&join.right, Position::OrderFree)?;
        let dialect = self.dialect()?;
        let columns = JoinColumns {
            left: join.left.schema(),
            right: join.right.schema(),
        };
        let mut conditions = join
            .on
            .iter()
            .map(|(l, r)| {
                let (Expr::Column(l), Expr::Column(r)) = (l, r) else {
                    return None;
                };
                let (l, lt) = columns.column(l)?;
                let (r, rt) = columns.column(r)?;
                (dialect.compares_like_datafusion(&lt) && same_family(&lt, &rt))
                    .then(|| format!("{l} = {r}"))
            })
            .collect::<Option<Vec<_>>>()?;
        if let Some(filter) = &join.filter {
            conditions.push(predicate_sql(filter, &columns, dialect)?);
        }
        let left_width = join.left.schema().fields().len();
        let values: Vec<String> = (0..left_width)
            .map(|i| format!("l.{} AS {}", output(i), output(i)))
            .chain(
                (0..join.right.schema().fields().len())
                    .map(|i| format!("r.{} AS {}", output(i), output(left_width + i))),
            )
            .collect();
        self.pushes_work = true;
        Some(format!(
            "SELECT {} FROM ({left}) AS l {kind} JOIN ({right}) AS r ON {}",
            values.join(", "),
            conditions.join(" AND ")
        ))
    }

    /// A sort, with the window of a limit above it (`limit`, `skip`) folded in: a limit over
    /// a subquery would not keep the subquery's order.
    fn sort(
        &mut self,
        sort: &Sort,
        position: Position,
        limit: Option<usize>,
        skip: usize,
    ) -> Option<String> {
        let fetch = match (sort.fetch, limit) {
            (Some(f), Some(n)) => Some(f.saturating_sub(skip).min(n)),
            (Some(f), None) => Some(f.saturating_sub(skip)),
            (None, n) => n,
        };
        match position {
            Position::Root => {}
            Position::OrderMatters => return None,
            Position::OrderFree if fetch.is_none() => return None,
            Position::OrderFree => {}
        }
        let input = self.plan(&sort.input, Position::OrderFree)?;
        let dialect = self.dialect()?;
        let columns = Positional(sort.input.schema());
        let keys = sort
            .expr
            .iter()
            .map(
                |SortExpr {
                     expr,
                     asc,
                     nulls_first,
                 }| {
                    let Expr::Column(column) = expr else {
                        return None;
                    };
                    let (sql, data_type) = columns.column(column)?;
                    dialect.compares_like_datafusion(&data_type).then(|| {
                        format!(
                            "{sql} {} NULLS {}",
                            if *asc { "ASC" } else { "DESC" },
                            if *nulls_first { "FIRST" } else { "LAST" }
                        )
                    })
                },
            )
            .collect::<Option<Vec<_>>>()?;
        self.pushes_work = true;
        Some(format!(
            "SELECT * FROM ({input}) AS q ORDER BY {}{}",
            keys.join(", "),
            dialect.limit(fetch, skip)
        ))
    }

    fn limit(&mut self, limit: &Limit, position: Position) -> Option<String> {
        let SkipType::Literal(skip) = limit.get_skip_type().ok()? else {
            return None;
        };
        let fetch = match limit.get_fetch_type().ok()? {
            FetchType::Literal(fetch) => fetch,
            FetchType::UnsupportedExpr => return None,
        };
        if let LogicalPlan::Sort(sort) = limit.input.as_ref() {
            return self.sort(sort, position, fetch, skip);
        }
        let input = self.plan(&limit.input, position.below_row_by_row())?;
        Some(format!(
            "SELECT * FROM ({input}) AS q{}",
            self.dialect()?.limit(fetch, skip)
        ))
    }

    /// A column, a literal, or a predicate.
    fn value(&self, expr: &Expr, columns: &dyn ColumnNames) -> Option<String> {
        let dialect = self.dialect()?;
        match unalias(expr) {
            Expr::Column(column) => {
                let (sql, data_type) = columns.column(column)?;
                dialect.carries(&data_type).then_some(sql)
            }
            Expr::Literal(value, _) if !value.is_null() => dialect.literal(value),
            other => predicate_sql(other, columns, dialect),
        }
    }
}

/// A projection of its input's columns, all and in order (only their names change): the
/// positional names make it a no-op.
fn is_renaming(projection: &Projection) -> bool {
    let input = projection.input.schema();
    projection.expr.len() == input.fields().len()
        && projection.expr.iter().enumerate().all(|(i, e)| {
            matches!(unalias(e), Expr::Column(c) if input.index_of_column(c).ok() == Some(i))
        })
}

fn unalias(expr: &Expr) -> &Expr {
    match expr {
        Expr::Alias(alias) => unalias(&alias.expr),
        other => other,
    }
}
