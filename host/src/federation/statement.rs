//! A logical subplan written as one SQL statement, with DataFusion's meaning — or why not.
//!
//! Every `SELECT` written here names its output columns `c0`, `c1`, … in the order of the plan
//! node's schema, so a column reference resolves by position in the input's schema, whatever
//! qualifiers and names DataFusion uses; the engine returns the root's columns in that order,
//! cast to DataFusion's types.
//!
//! What is written (anything else leaves the subtree to DataFusion, with the reason where an
//! expression is the cause — EXPLAIN shows it):
//! - scans of tables in one compute context of one engine generation, with their pushed
//!   filters and limit;
//! - expressions everywhere (filters, projections, join conditions, grouping keys, aggregate
//!   arguments, sort keys) through the translation every engine already uses for filters
//!   ([`accel_plugin_api::embedded::expression`]): only where the engine's meaning is
//!   DataFusion's;
//! - GROUP BY on values the engine groups like DataFusion (floats only where their bounds
//!   prove them never NaN nor -0.0, e.g. a decimal average times 0.2), with
//!   `count`, `sum`, `avg`, `min`, `max` (plain or DISTINCT) — `min`, `max` and DISTINCT only
//!   over types the engine compares like DataFusion; integer `sum` as the dialect writes it to
//!   wrap around on overflow as DataFusion's does ([`SqlDialect::integer_sum`]); float
//!   `sum`/`avg` only where the engine's reach NaN and ±inf as DataFusion's do; decimal `sum`
//!   where the engine sums decimals exactly;
//! - inner joins (a tree of them as one `FROM` list, an aggregate joined on a grouping column
//!   to a relation that keeps some rows aggregating only the keys it has), left, right, full
//!   and cross joins; semi and anti joins (`IN`, `EXISTS`) as
//!   `[NOT] EXISTS`, the null-aware anti join (`NOT IN`) as `NOT IN` with SQL's NULL rules,
//!   which are DataFusion's; scalar subqueries, which DataFusion turns into joins;
//! - `UNION ALL` (and `UNION`, which DataFusion plans as an aggregate over it), `DISTINCT`;
//! - window functions: `row_number`, `rank`, `dense_rank`, `lag`/`lead` with literal offset
//!   and default, and the aggregates above over `ROWS` frames with literal offsets or `RANGE`
//!   frames bounded by the partition or the current row's peers (no float sums: the engines
//!   add in other orders);
//! - ORDER BY (floats as for GROUP BY) at the root (or under its limit), where the rows come back in that
//!   order; elsewhere only with a limit under an aggregate, a join or a union, where it picks a
//!   set of rows (SQL does not keep a subquery's order, so a sort under a filter or projection
//!   stays in its own statement or in DataFusion);
//! - only over types the engine returns unchanged ([`SqlDialect::carries`]), at every node.
//!
//! A subtree that does no more than a scan would (filters, projections, a limit) is left to
//! the table scans, which push the same filters, projections and limits.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use accel_plugin_api::embedded::expression::{
    DecimalForm, Kept, PlainFloat, Written, expression_sql, is_decimal, kept, predicate_or_reason,
};
use accel_plugin_api::embedded::pushdown::{ColumnNames, SqlDialect, quote_ident, same_family};
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, NullEquality};
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::Subquery;
use datafusion::logical_expr::expr::{
    AggregateFunction, AggregateFunctionParams, WindowFunction, WindowFunctionParams,
};
use datafusion::logical_expr::logical_plan::{
    Aggregate, Distinct, Filter, Join, JoinType, Limit, Projection, Sort, SubqueryAlias, TableScan,
    Union, Window,
};
use datafusion::logical_expr::{
    Expr, FetchType, LogicalPlan, SkipType, SortExpr, WindowFrame, WindowFrameBound,
    WindowFrameUnits, WindowFunctionDefinition,
};

use crate::table::managed::{ManagedTable, SqlTarget};

/// Finds where a table lives for SQL now (at optimisation: without waiting; at physical
/// planning: under the read guards taken for the query).
pub type Lookup<'a> = dyn Fn(&Arc<ManagedTable>) -> Option<SqlTarget> + 'a;

/// A subplan as one statement of one engine.
#[derive(Debug)]
pub struct Statement {
    pub sql: String,
    /// Whether `sql` has decimal arithmetic in the engine's narrow form (which fails, before
    /// the first row, where a value passes its width): then [`Statement::exact_sql`] is the
    /// statement to run when `sql` fails.
    pub narrowed: bool,
    /// Generation, dialect and context of every table in it (those of the first table).
    pub target: SqlTarget,
    /// The order the rows come back in (root column, direction), when the root sorts.
    pub ordering: Vec<(usize, SortOptions)>,
}

/// Why a subplan is not one statement: an expression the engine would compute differently
/// (shown by EXPLAIN), or `None` for reasons of shape (tables of other engines, a plan node
/// with no translation, nothing a scan would not do).
#[derive(Debug)]
pub struct NotWritten(pub Option<Kept>);

impl From<Kept> for NotWritten {
    fn from(kept: Kept) -> Self {
        NotWritten(Some(kept))
    }
}

type Writing<T> = Result<T, NotWritten>;

fn shape<T>() -> Writing<T> {
    Err(NotWritten(None))
}

impl Statement {
    /// `plan` as one statement, if all of it can run in one engine context and it does work a
    /// scan would not (an aggregate, a join, a union, a distinct or a sort). `query_root`: the
    /// plan is the whole query, so rows sorted by expressions need not say their order to a
    /// parent.
    pub fn write(
        plan: &LogicalPlan,
        lookup: &Lookup<'_>,
        query_root: bool,
    ) -> Result<Statement, NotWritten> {
        if plan.schema().fields().is_empty() {
            return shape();
        }
        let (sql, writer) = write_sql(plan, lookup, last_to_finish(plan))?;
        let ordering = match root_ordering(plan) {
            Some(ordering) => ordering,
            None if query_root => vec![],
            None => return shape(),
        };
        let Some(target) = writer.target else {
            return shape();
        };
        Ok(Statement {
            sql,
            narrowed: writer.narrowed.get(),
            target,
            ordering,
        })
    }

    /// The statement of `plan` with every decimal `+ - *` exact: the one to run when a
    /// [`Statement::narrowed`] statement of it fails. Written only when the statement is
    /// planned to run, not each time the optimizer rule tries a subtree.
    pub fn exact_sql<'a>(plan: &LogicalPlan, lookup: &'a Lookup<'a>) -> Writing<String> {
        Ok(write_sql(plan, lookup, None)?.0)
    }
}

/// `plan` as the statement's SQL, with decimal arithmetic in the engine's narrow form in the
/// subtree of `narrow_below`; and the writer, which knows what the statement does.
fn write_sql<'a>(
    plan: &LogicalPlan,
    lookup: &'a Lookup<'a>,
    narrow_below: Option<&LogicalPlan>,
) -> Writing<(String, Writer<'a>)> {
    let narrow_below = narrow_below.map(|node| node as *const LogicalPlan);
    let mut writer = Writer::new(lookup, HashSet::new(), narrow_below);
    let mut sql = writer.plan(plan, Position::Root)?;
    if !writer.pushes_work {
        return shape();
    }
    let repeated = writer.common.repeated();
    if !repeated.is_empty() {
        writer = Writer::new(lookup, repeated, narrow_below);
        let body = writer.plan(plan, Position::Root)?;
        let common: Vec<String> = writer
            .common
            .named
            .iter()
            .enumerate()
            .map(|(i, sql)| format!("{} AS MATERIALIZED ({sql})", common_name(i)))
            .collect();
        sql = format!("WITH {} {body}", common.join(", "));
    }
    Ok((sql, writer))
}

/// The node below the root whose whole subtree the engine computes before the statement
/// returns its first row: the first sort, aggregate, `DISTINCT` or window function under the
/// root's projections, limits and filters. An error there (a narrow decimal passing its width)
/// comes before any row, so the statement can be run again.
fn last_to_finish(plan: &LogicalPlan) -> Option<&LogicalPlan> {
    match plan {
        LogicalPlan::SubqueryAlias(SubqueryAlias { input, .. })
        | LogicalPlan::Projection(Projection { input, .. })
        | LogicalPlan::Filter(Filter { input, .. })
        | LogicalPlan::Limit(Limit { input, .. }) => last_to_finish(input),
        LogicalPlan::Sort(_)
        | LogicalPlan::Aggregate(_)
        | LogicalPlan::Distinct(Distinct::All(_))
        | LogicalPlan::Window(_) => Some(plan),
        _ => None,
    }
}

/// The order of the root's rows: those of its sort (or of the sort under its limit, or under
/// a projection of the sort's columns), by column; `None` when it sorts by something else.
fn root_ordering(plan: &LogicalPlan) -> Option<Vec<(usize, SortOptions)>> {
    if let LogicalPlan::SubqueryAlias(SubqueryAlias { input, .. }) = plan {
        return root_ordering(input);
    }
    if let LogicalPlan::Projection(projection) = plan {
        if sorted(&projection.input).is_none() {
            return Some(vec![]);
        }
        let input = projection.input.schema();
        return root_ordering(&projection.input)?
            .into_iter()
            .map(|(index, options)| {
                let at = projection.expr.iter().position(|e| {
                    matches!(unalias(e), Expr::Column(c) if input.index_of_column(c).ok() == Some(index))
                })?;
                Some((at, options))
            })
            .collect();
    }
    let Some((sort, _, _)) = sorted(plan) else {
        return Some(vec![]);
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

/// A sort, or a limit of a sort: the sort, and the limit's fetch and skip.
fn sorted(plan: &LogicalPlan) -> Option<(&Sort, Option<usize>, usize)> {
    match plan {
        LogicalPlan::Sort(sort) => Some((sort, None, 0)),
        LogicalPlan::Limit(limit) => {
            let LogicalPlan::Sort(sort) = limit.input.as_ref() else {
                return None;
            };
            let Ok(SkipType::Literal(skip)) = limit.get_skip_type() else {
                return None;
            };
            let Ok(FetchType::Literal(fetch)) = limit.get_fetch_type() else {
                return None;
            };
            Some((sort, fetch, skip))
        }
        _ => None,
    }
}

/// Where a node sits in the statement, for what its rows' order means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// The statement itself: a sort here is the order the rows come back in.
    Root,
    /// Under filters, projections or limits below the root: the order of these rows is the
    /// order above, but SQL does not keep a subquery's order — no sort here.
    OrderMatters,
    /// Under an aggregate, a join or a union, which do not depend on order: a sort here only
    /// counts when it has a limit (it picks a set of rows).
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
    /// What is known of each output column of the nodes written so far that is a plain float
    /// (never NaN nor -0.0: comparable in the engine), by the node's address — the plan is
    /// borrowed for the whole run, so addresses are stable.
    floats: HashMap<*const LogicalPlan, Vec<Option<PlainFloat>>>,
    /// Those of the select list written last, for the projection node being written.
    select_floats: Option<Vec<Option<PlainFloat>>>,
    /// While an aggregate is written again for [`Writer::narrow_aggregates`]: that aggregate,
    /// the position of a grouping column among its group expressions, and the statement
    /// whose rows are the only keys to aggregate.
    key_filter: Option<(*const Aggregate, usize, String)>,
    common: CommonSubqueries,
    /// The node in whose subtree decimal arithmetic takes the engine's narrow form (see
    /// [`last_to_finish`]), whether the node being written is in it, and whether an
    /// expression took that form.
    narrow_below: Option<*const LogicalPlan>,
    in_narrow: bool,
    narrowed: Cell<bool>,
}

/// Aggregates and groups of joins that two nodes of a plan write alike (TPC-H q15: the
/// revenue view, joined and under `max`), computed once as `WITH sN AS MATERIALIZED (…)`.
/// The statement is written twice: the first time finds them, the second names them.
#[derive(Default)]
struct CommonSubqueries {
    /// First time: each statement written, with the nodes that wrote it.
    written: HashMap<String, HashSet<*const ()>>,
    /// Second time: the statements two nodes or more wrote…
    shared: HashSet<String>,
    /// … in the order they are named `s0`, `s1`, … (one may use those before it).
    named: Vec<String>,
}

impl CommonSubqueries {
    /// The statements written by two nodes or more, but not those inside another such
    /// statement (the outer one is shared instead).
    fn repeated(&self) -> HashSet<String> {
        let repeated: Vec<&String> = self
            .written
            .iter()
            .filter(|(_, nodes)| nodes.len() > 1)
            .map(|(sql, _)| sql)
            .collect();
        repeated
            .iter()
            .filter(|sql| {
                !repeated
                    .iter()
                    .any(|outer| outer.len() > sql.len() && outer.contains(sql.as_str()))
            })
            .map(|sql| (*sql).clone())
            .collect()
    }
}

/// The name of the `index`th common subquery.
fn common_name(index: usize) -> String {
    format!("s{index}")
}

/// Output column `index` of a written `SELECT`.
fn output(index: usize) -> String {
    format!("\"c{index}\"")
}

/// The columns of one input, by position.
struct Positional<'a> {
    schema: &'a DFSchema,
    floats: &'a [Option<PlainFloat>],
}

impl ColumnNames for Positional<'_> {
    fn column(&self, column: &Column) -> Option<(String, DataType)> {
        let index = self.schema.index_of_column(column).ok()?;
        Some((output(index), self.schema.field(index).data_type().clone()))
    }

    fn plain_float(&self, column: &Column) -> Option<PlainFloat> {
        let index = self.schema.index_of_column(column).ok()?;
        self.floats.get(index).copied().flatten()
    }
}

/// A scalar subquery written as SQL, with the type of its value and what is known of it.
type SubquerySql = (String, DataType, Option<PlainFloat>);

/// The column name standing for the `n`th scalar subquery of an expression.
const SUBQUERY_PLACEHOLDER: &str = "__accel_scalar_subquery_";

/// Columns, and the placeholders of scalar subqueries as their statements.
struct WithSubqueries<'a> {
    columns: &'a dyn ColumnNames,
    subqueries: &'a [SubquerySql],
}

impl ColumnNames for WithSubqueries<'_> {
    fn column(&self, column: &Column) -> Option<(String, DataType)> {
        if column.relation.is_none()
            && let Some(at) = column.name.strip_prefix(SUBQUERY_PLACEHOLDER)
        {
            let (sql, data_type, _) = self.subqueries.get(at.parse::<usize>().ok()?)?;
            return Some((sql.clone(), data_type.clone()));
        }
        self.columns.column(column)
    }

    fn plain_float(&self, column: &Column) -> Option<PlainFloat> {
        if column.relation.is_none()
            && let Some(at) = column.name.strip_prefix(SUBQUERY_PLACEHOLDER)
        {
            return self.subqueries.get(at.parse::<usize>().ok()?)?.2;
        }
        self.columns.plain_float(column)
    }
}

/// Whether `plan` returns at most one row: an aggregate without grouping, or a limit of 1.
fn at_most_one_row(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Projection(Projection { input, .. })
        | LogicalPlan::SubqueryAlias(SubqueryAlias { input, .. })
        | LogicalPlan::Filter(Filter { input, .. }) => at_most_one_row(input),
        LogicalPlan::Aggregate(aggregate) => aggregate.group_expr.is_empty(),
        LogicalPlan::Limit(limit) => {
            matches!(limit.get_fetch_type(), Ok(FetchType::Literal(Some(n))) if n <= 1)
        }
        _ => false,
    }
}

/// The columns of one input named `q`, by position: `q."c0"`.
struct Qualified<'a>(Positional<'a>);

impl ColumnNames for Qualified<'_> {
    fn column(&self, column: &Column) -> Option<(String, DataType)> {
        let (sql, data_type) = self.0.column(column)?;
        Some((format!("q.{sql}"), data_type))
    }

    fn plain_float(&self, column: &Column) -> Option<PlainFloat> {
        self.0.plain_float(column)
    }
}

/// The columns of a join's two inputs, `l` and `r`.
struct JoinColumns<'a> {
    left: Positional<'a>,
    right: Positional<'a>,
}

impl JoinColumns<'_> {
    fn side(&self, column: &Column) -> (&'static str, &Positional<'_>) {
        if self.left.schema.has_column(column) {
            ("l", &self.left)
        } else {
            ("r", &self.right)
        }
    }
}

impl ColumnNames for JoinColumns<'_> {
    fn column(&self, column: &Column) -> Option<(String, DataType)> {
        let (side, columns) = self.side(column);
        let (sql, data_type) = columns.column(column)?;
        Some((format!("{side}.{sql}"), data_type))
    }

    fn plain_float(&self, column: &Column) -> Option<PlainFloat> {
        self.side(column).1.plain_float(column)
    }
}

/// Inner joins written as one `FROM` list: the relations (`(SELECT …) AS tN`), the join
/// conditions over their columns, and which of those are equalities of two columns.
#[derive(Default)]
struct JoinGroup<'p> {
    relations: Vec<Relation<'p>>,
    conditions: Vec<String>,
    equalities: Vec<(GroupColumn, GroupColumn)>,
}

/// One relation of a [`JoinGroup`]: the node and its statement.
struct Relation<'p> {
    plan: &'p LogicalPlan,
    sql: String,
}

impl Relation<'_> {
    fn alias(index: usize) -> String {
        format!("t{index}")
    }
}

/// A column of a [`JoinGroup`]: output `index` of relation `relation`, and what is known of it
/// if it is a plain float.
#[derive(Debug, Clone, Copy)]
struct GroupColumn {
    relation: usize,
    index: usize,
    float: Option<PlainFloat>,
}

impl GroupColumn {
    fn sql(&self) -> String {
        format!("{}.{}", Relation::alias(self.relation), output(self.index))
    }
}

/// The columns of a join's two inputs within a [`JoinGroup`].
struct GroupColumns<'a> {
    left: &'a DFSchema,
    right: &'a DFSchema,
    left_columns: &'a [GroupColumn],
    right_columns: &'a [GroupColumn],
}

impl GroupColumns<'_> {
    fn find(&self, column: &Column) -> Option<(GroupColumn, DataType)> {
        let (schema, columns) = if self.left.has_column(column) {
            (self.left, self.left_columns)
        } else {
            (self.right, self.right_columns)
        };
        let index = schema.index_of_column(column).ok()?;
        Some((
            *columns.get(index)?,
            schema.field(index).data_type().clone(),
        ))
    }
}

impl ColumnNames for GroupColumns<'_> {
    fn column(&self, column: &Column) -> Option<(String, DataType)> {
        self.find(column)
            .map(|(group_column, data_type)| (group_column.sql(), data_type))
    }

    fn plain_float(&self, column: &Column) -> Option<PlainFloat> {
        self.find(column)
            .and_then(|(group_column, _)| group_column.float)
    }
}

/// The aggregate that makes output column `index` of `plan` one of its grouping columns, as
/// it is (through aliases, filters and projections of columns), and that column's position
/// among the aggregate's group expressions.
fn grouping_column_of(plan: &LogicalPlan, index: usize) -> Option<(&Aggregate, usize)> {
    match plan {
        LogicalPlan::SubqueryAlias(SubqueryAlias { input, .. })
        | LogicalPlan::Filter(Filter { input, .. }) => grouping_column_of(input, index),
        LogicalPlan::Projection(projection) => match unalias(projection.expr.get(index)?) {
            Expr::Column(column) => grouping_column_of(
                &projection.input,
                projection.input.schema().index_of_column(column).ok()?,
            ),
            _ => None,
        },
        LogicalPlan::Aggregate(aggregate) => match unalias(aggregate.group_expr.get(index)?) {
            Expr::Column(_) => Some((aggregate, index)),
            _ => None,
        },
        _ => None,
    }
}

/// Whether `plan` keeps only some rows of its tables: a filter, a filtered or limited scan, a
/// semi or anti join, a limit somewhere in it.
fn narrows(plan: &LogicalPlan) -> bool {
    plan.exists(|node| {
        Ok(match node {
            LogicalPlan::Filter(_) | LogicalPlan::Limit(_) => true,
            LogicalPlan::TableScan(scan) => !scan.filters.is_empty() || scan.fetch.is_some(),
            LogicalPlan::Join(join) => matches!(
                join.join_type,
                JoinType::LeftSemi | JoinType::LeftAnti | JoinType::RightSemi | JoinType::RightAnti
            ),
            _ => false,
        })
    })
    .unwrap_or(false)
}

/// An inner join with SQL's NULL rules: one a [`JoinGroup`] can hold.
fn is_inner(join: &Join) -> bool {
    join.join_type == JoinType::Inner
        && !join.null_aware
        && join.null_equality == NullEquality::NullEqualsNothing
}

/// `SELECT <side>.c0 AS c0, …` for the `width` columns of one side of a join, numbered from
/// `first`.
fn side_columns(side: &str, width: usize, first: usize) -> Vec<String> {
    (0..width)
        .map(|i| format!("{side}.{} AS {}", output(i), output(first + i)))
        .collect()
}

/// A select list, or `1 AS c0` for none (e.g. a join under `count(*)`): SQL needs a column,
/// nothing reads it.
fn select_list_of(values: Vec<String>) -> String {
    if values.is_empty() {
        format!("1 AS {}", output(0))
    } else {
        values.join(", ")
    }
}

impl<'a> Writer<'a> {
    fn new(
        lookup: &'a Lookup<'a>,
        shared: HashSet<String>,
        narrow_below: Option<*const LogicalPlan>,
    ) -> Self {
        Writer {
            narrow_below,
            in_narrow: false,
            narrowed: Cell::new(false),
            lookup,
            target: None,
            pushes_work: false,
            floats: HashMap::new(),
            select_floats: None,
            key_filter: None,
            common: CommonSubqueries {
                shared,
                ..CommonSubqueries::default()
            },
        }
    }

    /// `sql`, written for the aggregate or join group at `node` — or, where the dialect can
    /// and other nodes write it too, a reference to it as a common subquery.
    fn common(&mut self, node: *const (), sql: String) -> Writing<String> {
        if !self.dialect()?.materializes_common_subqueries() {
            return Ok(sql);
        }
        if self.common.shared.contains(&sql) {
            let index = match self.common.named.iter().position(|named| *named == sql) {
                Some(index) => index,
                None => {
                    self.common.named.push(sql);
                    self.common.named.len() - 1
                }
            };
            return Ok(format!("SELECT * FROM {}", common_name(index)));
        }
        self.common
            .written
            .entry(sql.clone())
            .or_default()
            .insert(node);
        Ok(sql)
    }

    /// The output columns of the written node `plan`, by position.
    fn columns_of<'p>(&'p self, plan: &'p LogicalPlan) -> Positional<'p> {
        Positional {
            schema: plan.schema(),
            floats: self.floats_of(plan),
        }
    }

    fn floats_of(&self, plan: &LogicalPlan) -> &[Option<PlainFloat>] {
        self.floats
            .get(&(plan as *const LogicalPlan))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// What is known of the plain floats among `plan`'s output columns: from the select list
    /// just written for it (a projection, a group of inner joins), else from its inputs'.
    fn record_floats(&mut self, plan: &LogicalPlan) {
        let floats = match self.select_floats.take() {
            Some(floats) => floats,
            None => self.floats_from_inputs(plan),
        };
        self.floats.insert(plan as *const LogicalPlan, floats);
    }

    fn floats_from_inputs(&self, plan: &LogicalPlan) -> Vec<Option<PlainFloat>> {
        match plan {
            LogicalPlan::Projection(Projection { input, .. })
            | LogicalPlan::SubqueryAlias(SubqueryAlias { input, .. })
            | LogicalPlan::Filter(Filter { input, .. })
            | LogicalPlan::Sort(Sort { input, .. })
            | LogicalPlan::Limit(Limit { input, .. })
            | LogicalPlan::Distinct(Distinct::All(input))
            | LogicalPlan::Window(Window { input, .. }) => self.floats_of(input).to_vec(),
            LogicalPlan::Join(join) => {
                let padded = |side: &LogicalPlan| {
                    let mut floats = self.floats_of(side).to_vec();
                    floats.resize(side.schema().fields().len(), None);
                    floats
                };
                match join.join_type {
                    JoinType::LeftSemi | JoinType::LeftAnti => padded(&join.left),
                    JoinType::RightSemi | JoinType::RightAnti => padded(&join.right),
                    _ => {
                        let mut floats = padded(&join.left);
                        floats.extend(padded(&join.right));
                        floats
                    }
                }
            }
            LogicalPlan::Aggregate(aggregate) => {
                let input = self.columns_of(&aggregate.input);
                aggregate
                    .group_expr
                    .iter()
                    .map(|e| match unalias(e) {
                        Expr::Column(column) => input.plain_float(column),
                        _ => None,
                    })
                    .collect()
            }
            _ => vec![],
        }
    }

    fn dialect(&self) -> Writing<&'static dyn SqlDialect> {
        match &self.target {
            Some(target) => Ok(target.dialect),
            None => shape(),
        }
    }

    fn engine(&self) -> Writing<&'static str> {
        Ok(self.dialect()?.display_name())
    }

    /// How decimal arithmetic is written where the writer is now.
    fn decimals(&self) -> DecimalForm<'_> {
        if self.in_narrow {
            DecimalForm::Narrow {
                used: &self.narrowed,
            }
        } else {
            DecimalForm::Exact
        }
    }

    /// `expr` in the engine's SQL.
    fn expression(&self, expr: &Expr, columns: &dyn ColumnNames) -> Writing<Written> {
        Ok(expression_sql(
            expr,
            columns,
            self.dialect()?,
            self.decimals(),
        )?)
    }

    /// An expression whose values the engine compares (groups, orders, joins on) like
    /// DataFusion.
    fn compared(&self, expr: &Expr, columns: &dyn ColumnNames) -> Writing<Written> {
        let written = self.expression(expr, columns)?;
        if !self.dialect()?.compares_like_datafusion(&written.data_type)
            && written.plain_float.is_none()
        {
            return Err(kept(
                expr,
                format!(
                    "{} compares {} differently (-0.0, NaN)",
                    self.engine()?,
                    written.data_type
                ),
            )
            .into());
        }
        Ok(written)
    }

    /// A value the statement returns: of a type the engine returns unchanged.
    fn value(&self, expr: &Expr, columns: &dyn ColumnNames) -> Writing<Written> {
        let written = self.expression(expr, columns)?;
        if !self.dialect()?.carries(&written.data_type) {
            return Err(kept(
                expr,
                format!(
                    "{} does not return {} unchanged",
                    self.engine()?,
                    written.data_type
                ),
            )
            .into());
        }
        Ok(written)
    }

    /// A predicate over `columns`.
    fn predicate(&self, expr: &Expr, columns: &dyn ColumnNames) -> Writing<String> {
        Ok(predicate_or_reason(
            expr,
            columns,
            self.dialect()?,
            self.decimals(),
        )?)
    }

    /// `plan` as a `SELECT` with columns `c0…`, at `position` in the statement.
    fn plan(&mut self, plan: &LogicalPlan, position: Position) -> Writing<String> {
        if self.narrow_below == Some(plan as *const LogicalPlan) {
            self.in_narrow = true;
            let written = self.plan_node(plan, position);
            self.in_narrow = false;
            return written;
        }
        self.plan_node(plan, position)
    }

    fn plan_node(&mut self, plan: &LogicalPlan, position: Position) -> Writing<String> {
        let sql = match plan {
            LogicalPlan::TableScan(scan) => self.scan(scan)?,
            LogicalPlan::SubqueryAlias(SubqueryAlias { input, .. }) => {
                self.plan(input, position)?
            }
            LogicalPlan::Filter(filter) => self.filter(filter, position.below_row_by_row())?,
            LogicalPlan::Projection(projection) => self.projection(projection, position)?,
            LogicalPlan::Aggregate(aggregate) => self.aggregate(aggregate)?,
            LogicalPlan::Join(join) => self.join(join)?,
            LogicalPlan::Sort(sort) => self.sort(sort, position, None, 0, None)?,
            LogicalPlan::Limit(limit) => self.limit(limit, position)?,
            LogicalPlan::Union(union) => self.union(union)?,
            LogicalPlan::Distinct(Distinct::All(input)) => self.distinct(input)?,
            LogicalPlan::Window(window) => self.window(window)?,
            _ => return shape(),
        };
        self.record_floats(plan);
        let dialect = self.dialect()?;
        if let Some(field) = plan
            .schema()
            .fields()
            .iter()
            .find(|f| !dialect.carries(f.data_type()))
        {
            return Err(NotWritten(Some(Kept {
                expr: field.name().clone(),
                reason: format!(
                    "{} does not return {} unchanged",
                    dialect.display_name(),
                    field.data_type()
                ),
            })));
        }
        Ok(sql)
    }

    fn scan(&mut self, scan: &TableScan) -> Writing<String> {
        let Some(table) = managed_table(scan) else {
            return shape();
        };
        let Some(target) = (self.lookup)(&table) else {
            return shape();
        };
        match &self.target {
            None => self.target = Some(target.clone()),
            Some(first) if first.same_context(&target) => {}
            Some(_) => return shape(),
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
        let table_columns = accel_plugin_api::embedded::pushdown::TableColumns(schema);
        let conditions = scan
            .filters
            .iter()
            .map(|f| self.predicate(f, &table_columns))
            .collect::<Writing<Vec<_>>>()?;
        let mut sql = format!(
            "SELECT {} FROM {}",
            columns.join(", "),
            quote_ident(&target.table.table)
        );
        if !conditions.is_empty() {
            sql.push_str(&format!(" WHERE {}", conditions.join(" AND ")));
        }
        sql.push_str(&dialect.limit(scan.fetch, 0));
        Ok(sql)
    }

    fn filter(&mut self, filter: &Filter, below: Position) -> Writing<String> {
        let input = self.plan(&filter.input, below)?;
        let (predicate, subqueries) = self.with_subqueries(vec![filter.predicate.clone()])?;
        let columns = WithSubqueries {
            columns: &self.columns_of(&filter.input),
            subqueries: &subqueries,
        };
        let predicate = self.predicate(&predicate[0], &columns)?;
        Ok(format!("SELECT * FROM ({input}) AS q WHERE {predicate}"))
    }

    /// `exprs` with each uncorrelated scalar subquery in them (which DataFusion keeps as an
    /// expression) written as a statement of this context and replaced by a placeholder
    /// column that [`WithSubqueries`] spells as that statement. Only subqueries that return
    /// at most one row: engines differ where more come back (SQLite takes the first).
    fn with_subqueries(&mut self, exprs: Vec<Expr>) -> Writing<(Vec<Expr>, Vec<SubquerySql>)> {
        let mut found: Vec<Subquery> = Vec::new();
        for expr in &exprs {
            let _ = expr.apply(|node| {
                if let Expr::ScalarSubquery(subquery) = node
                    && !found.contains(subquery)
                {
                    found.push(subquery.clone());
                }
                Ok(TreeNodeRecursion::Continue)
            });
        }
        if found.is_empty() {
            return Ok((exprs, vec![]));
        }
        let mut written = Vec::with_capacity(found.len());
        for subquery in &found {
            if !subquery.outer_ref_columns.is_empty() {
                return shape();
            }
            if !at_most_one_row(&subquery.subquery) {
                return Err(kept(
                    &Expr::ScalarSubquery(subquery.clone()),
                    "a scalar subquery that may return more than one row",
                )
                .into());
            }
            let sql = self.plan(&subquery.subquery, Position::OrderFree)?;
            let Some(field) = subquery.subquery.schema().fields().first() else {
                return shape();
            };
            written.push((
                format!("(SELECT {} FROM ({sql}) AS s)", output(0)),
                field.data_type().clone(),
                self.floats_of(&subquery.subquery)
                    .first()
                    .copied()
                    .flatten(),
            ));
        }
        let exprs = exprs
            .into_iter()
            .map(|expr| {
                expr.transform(|node| match &node {
                    Expr::ScalarSubquery(subquery) => {
                        let at = found.iter().position(|s| s == subquery).unwrap_or(0);
                        Ok(Transformed::yes(Expr::Column(Column::new_unqualified(
                            format!("{SUBQUERY_PLACEHOLDER}{at}"),
                        ))))
                    }
                    _ => Ok(Transformed::no(node)),
                })
                .map(|t| t.data)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| NotWritten(None))?;
        Ok((exprs, written))
    }

    fn projection(&mut self, projection: &Projection, position: Position) -> Writing<String> {
        // a projection of sorted rows (e.g. ORDER BY a value not selected) at the root: one
        // SELECT that sorts, so the order holds
        if is_renaming(projection) {
            return self.plan(&projection.input, position);
        }
        if position == Position::Root
            && let Some((sort, fetch, skip)) = sorted(&projection.input)
        {
            return self.sort(sort, position, fetch, skip, Some(projection));
        }
        let input = self.plan(&projection.input, position.below_row_by_row())?;
        let values = self.select_list(projection)?;
        Ok(format!("SELECT {values} FROM ({input}) AS q"))
    }

    /// The values of a projection, named `c0…`.
    fn select_list(&mut self, projection: &Projection) -> Writing<String> {
        let (exprs, subqueries) = self.with_subqueries(projection.expr.clone())?;
        let columns = WithSubqueries {
            columns: &self.columns_of(&projection.input),
            subqueries: &subqueries,
        };
        let written = exprs
            .iter()
            .map(|e| self.value(e, &columns))
            .collect::<Writing<Vec<_>>>()?;
        let mut values: Vec<String> = written
            .iter()
            .enumerate()
            .map(|(i, w)| format!("{} AS {}", w.sql, output(i)))
            .collect();
        self.select_floats = Some(written.iter().map(|w| w.plain_float).collect());
        if values.is_empty() {
            // no columns (e.g. under `count(*)`): SQL needs one, nothing reads it
            values.push(format!("1 AS {}", output(0)));
        }
        Ok(values.join(", "))
    }

    fn aggregate(&mut self, aggregate: &Aggregate) -> Writing<String> {
        let input = self.plan(&aggregate.input, Position::OrderFree)?;
        let columns = self.columns_of(&aggregate.input);
        let groups = aggregate
            .group_expr
            .iter()
            .map(|e| {
                if matches!(e, Expr::GroupingSet(_)) {
                    return shape();
                }
                Ok(self.compared(e, &columns)?.sql)
            })
            .collect::<Writing<Vec<_>>>()?;
        let aggregates = aggregate
            .aggr_expr
            .iter()
            .map(|e| self.aggregate_call(e, &columns))
            .collect::<Writing<Vec<_>>>()?;
        let values: Vec<String> = groups
            .iter()
            .chain(&aggregates)
            .enumerate()
            .map(|(i, v)| format!("{v} AS {}", output(i)))
            .collect();
        let mut sql = format!("SELECT {} FROM ({input}) AS q", values.join(", "));
        if let Some((narrowed, position, keys)) = &self.key_filter
            && std::ptr::eq(*narrowed, aggregate)
        {
            sql.push_str(&format!(" WHERE {} IN ({keys})", groups[*position]));
        }
        if !groups.is_empty() {
            sql.push_str(&format!(" GROUP BY {}", groups.join(", ")));
        }
        self.pushes_work = true;
        self.common(aggregate as *const Aggregate as *const (), sql)
    }

    /// `count`, `sum`, `avg`, `min`, `max` of a value (or `count(*)`), plain or DISTINCT,
    /// with no FILTER or ORDER BY.
    fn aggregate_call(&self, expr: &Expr, columns: &dyn ColumnNames) -> Writing<String> {
        self.aggregate_over(expr, columns, None)
    }

    /// An aggregate call, or with `over` (a window's `OVER (…)`) the same aggregate over each
    /// row's window frame: every aggregate call the dialect writes gets the clause.
    fn aggregate_over(
        &self,
        expr: &Expr,
        columns: &dyn ColumnNames,
        over: Option<&str>,
    ) -> Writing<String> {
        let dialect = self.dialect()?;
        let engine = dialect.display_name();
        let Expr::AggregateFunction(AggregateFunction { func, params }) = unalias(expr) else {
            return shape();
        };
        if params.filter.is_some() || !params.order_by.is_empty() {
            return Err(kept(
                expr,
                "aggregates with FILTER or ORDER BY stay in DataFusion",
            )
            .into());
        }
        if params.null_treatment.is_some() || params.args.len() != 1 {
            return shape();
        }
        let name = func.name();
        let distinct = if params.distinct { "DISTINCT " } else { "" };
        let argument = &params.args[0];
        // the aggregate calls in `sql` get `over`, if any
        let windowed = |sql: String| match over {
            None => sql,
            Some(over) => with_over(&sql, over),
        };
        if name == "count"
            && !params.distinct
            && matches!(argument, Expr::Literal(value, _) if !value.is_null())
        {
            return Ok(windowed("count(*)".to_owned()));
        }
        // `avg` of integers: DataFusion averages them as DOUBLE (and says so with a cast)
        let (argument, as_double) = match argument {
            Expr::Cast(cast) if name == "avg" && cast.field.data_type() == &DataType::Float64 => {
                (cast.expr.as_ref(), true)
            }
            other => (other, false),
        };
        let written = self.expression(argument, columns)?;
        let data_type = &written.data_type;
        if as_double && !(data_type.is_integer() && dialect.carries(data_type)) {
            return Err(kept(expr, format!("avg of {data_type}")).into());
        }
        let value = if as_double {
            format!("CAST({} AS DOUBLE)", written.sql)
        } else {
            written.sql.clone()
        };
        let refused = |why: String| Err(NotWritten(Some(kept(expr, why))));
        // -0.0 and 0.0 are one value to the engines, two to DataFusion
        let compared = dialect.compares_like_datafusion(data_type);
        if params.distinct && !compared {
            return refused(format!(
                "{engine} tells {data_type} values apart differently"
            ));
        }
        if !dialect.carries(data_type) {
            return refused(format!("{engine} does not return {data_type} unchanged"));
        }
        // Sums with DataFusion's meaning: integers wrap around on overflow (the dialect writes
        // that), floats reach NaN and ±inf (only where the engine's sums do too), decimals are
        // exact.
        if name == "sum" && data_type.is_integer() {
            return match dialect.integer_sum(&value, params.distinct, data_type) {
                Some(sql) => Ok(windowed(sql)),
                None => refused(format!(
                    "{engine} cannot sum {distinct}{data_type} wrapping around as DataFusion does"
                )),
            };
        }
        let allowed = match name {
            "count" => true,
            "min" | "max" => compared,
            "sum" if is_decimal(data_type) => dialect.decimal_arithmetic(),
            "avg" if is_decimal(data_type) => {
                let output = func.return_type(std::slice::from_ref(data_type)).ok();
                return match output.and_then(|output| {
                    dialect.decimal_avg(&value, params.distinct, data_type, &output)
                }) {
                    Some(sql) => Ok(windowed(sql)),
                    None => refused(format!(
                        "avg of decimals: {engine} does not truncate to DataFusion's scale"
                    )),
                };
            }
            "sum" | "avg" => {
                data_type.is_integer()
                    || (data_type.is_floating() && dialect.sums_floats_like_datafusion())
            }
            _ => {
                return refused(format!(
                    "{engine} has no translation of the aggregate {name}"
                ));
            }
        };
        if !allowed {
            return refused(format!(
                "{engine} computes {name} of {data_type} differently"
            ));
        }
        Ok(windowed(format!("{name}({distinct}{value})")))
    }

    /// Window functions, each as `f(…) OVER (PARTITION BY … ORDER BY … frame)`, after the
    /// input's columns.
    fn window(&mut self, window: &Window) -> Writing<String> {
        let input = self.plan(&window.input, Position::OrderFree)?;
        let columns = self.columns_of(&window.input);
        let width = window.input.schema().fields().len();
        let mut values: Vec<String> = (0..width)
            .map(|i| format!("q.{} AS {}", output(i), output(i)))
            .collect();
        for (i, expr) in window.window_expr.iter().enumerate() {
            let call = self.window_call(expr, &columns)?;
            values.push(format!("{call} AS {}", output(width + i)));
        }
        self.pushes_work = true;
        Ok(format!("SELECT {} FROM ({input}) AS q", values.join(", ")))
    }

    /// One window function. Ranking (`row_number`, `rank`, `dense_rank`) and `lag`/`lead`
    /// with a literal offset and default ignore the frame, as in every engine; aggregates are
    /// written as [`Self::aggregate_over`] writes them, over a frame of `ROWS` with literal
    /// offsets or of `RANGE` from the partition's start or the current row's peers to its end
    /// or the current row's peers (a `RANGE` offset would be arithmetic on the sort key).
    /// Floats are never summed in a window: the engines add in other orders. Rows tied in the
    /// window's order come in no defined order, in DataFusion as in the engine: `row_number`,
    /// `lag`, `lead` and `ROWS` frames over ties are as arbitrary as DataFusion's own.
    fn window_call(&self, expr: &Expr, columns: &dyn ColumnNames) -> Writing<String> {
        let Expr::WindowFunction(function) = unalias(expr) else {
            return shape();
        };
        let WindowFunction { fun, params } = function.as_ref();
        let WindowFunctionParams {
            args,
            partition_by,
            order_by,
            window_frame,
            filter,
            null_treatment,
            distinct,
        } = params;
        if filter.is_some() || null_treatment.is_some() || *distinct {
            return Err(kept(
                expr,
                "window functions with FILTER, DISTINCT or IGNORE NULLS stay in DataFusion",
            )
            .into());
        }
        let mut over = Vec::new();
        if !partition_by.is_empty() {
            let keys = partition_by
                .iter()
                .map(|e| Ok(self.compared(e, columns)?.sql))
                .collect::<Writing<Vec<_>>>()?;
            over.push(format!("PARTITION BY {}", keys.join(", ")));
        }
        if !order_by.is_empty() {
            let keys = order_by
                .iter()
                .map(|key| self.sort_key(key, columns))
                .collect::<Writing<Vec<_>>>()?;
            over.push(format!("ORDER BY {}", keys.join(", ")));
        }
        let engine = self.engine()?;
        match fun {
            WindowFunctionDefinition::WindowUDF(udwf) => {
                let name = udwf.name();
                let call = match (name, args.len()) {
                    ("row_number" | "rank" | "dense_rank", 0) => format!("{name}()"),
                    ("lag" | "lead", 1..=3) => {
                        let value = self.value(&args[0], columns)?;
                        let mut call = vec![value.sql.clone()];
                        if let Some(offset) = args.get(1) {
                            let offset = match offset {
                                Expr::Literal(literal, _) => {
                                    accel_plugin_api::embedded::expression::integer_literal(literal)
                                }
                                _ => None,
                            }
                            .ok_or_else(|| {
                                kept(expr, "an offset that is not an integer literal")
                            })?;
                            call.push(offset.to_string());
                        }
                        if let Some(default) = args.get(2) {
                            let written = self.value(default, columns)?;
                            if !matches!(default, Expr::Literal(..))
                                || written.data_type != value.data_type
                            {
                                return Err(kept(
                                    expr,
                                    "a default that is not a literal of the value's type",
                                )
                                .into());
                            }
                            call.push(written.sql);
                        }
                        format!("{name}({})", call.join(", "))
                    }
                    _ => {
                        return Err(kept(
                            expr,
                            format!("{engine} has no translation of the window function {name}"),
                        )
                        .into());
                    }
                };
                Ok(format!("{call} OVER ({})", over.join(" ")))
            }
            WindowFunctionDefinition::AggregateUDF(udaf) => {
                over.push(self.frame(expr, window_frame)?);
                let aggregate = Expr::AggregateFunction(AggregateFunction {
                    func: Arc::clone(udaf),
                    params: AggregateFunctionParams {
                        args: args.clone(),
                        distinct: false,
                        filter: None,
                        order_by: vec![],
                        null_treatment: None,
                    },
                });
                if matches!(udaf.name(), "sum" | "avg") {
                    for arg in args {
                        if self.expression(arg, columns)?.data_type.is_floating() {
                            return Err(kept(
                                expr,
                                format!("{engine} adds floats in a window in another order"),
                            )
                            .into());
                        }
                    }
                }
                let over = format!("OVER ({})", over.join(" "));
                self.aggregate_over(&aggregate, columns, Some(&over))
            }
        }
    }

    /// A window frame with DataFusion's bounds (see [`Self::window_call`]).
    fn frame(&self, expr: &Expr, frame: &WindowFrame) -> Writing<String> {
        let bound = |bound: &WindowFrameBound| -> Option<String> {
            let (value, side) = match bound {
                WindowFrameBound::CurrentRow => return Some("CURRENT ROW".to_owned()),
                WindowFrameBound::Preceding(value) => (value, "PRECEDING"),
                WindowFrameBound::Following(value) => (value, "FOLLOWING"),
            };
            if value.is_null() {
                return Some(format!("UNBOUNDED {side}"));
            }
            if frame.units != WindowFrameUnits::Rows {
                return None;
            }
            let rows = accel_plugin_api::embedded::expression::integer_literal(value)?;
            (rows >= 0).then(|| format!("{rows} {side}"))
        };
        let units = match frame.units {
            WindowFrameUnits::Rows => "ROWS",
            WindowFrameUnits::Range => "RANGE",
            WindowFrameUnits::Groups => "GROUPS",
        };
        match (
            frame.units != WindowFrameUnits::Groups,
            bound(&frame.start_bound),
            bound(&frame.end_bound),
        ) {
            (true, Some(start), Some(end)) => Ok(format!("{units} BETWEEN {start} AND {end}")),
            _ => Err(kept(
                expr,
                format!("the window frame {frame} stays in DataFusion"),
            )
            .into()),
        }
    }

    fn join(&mut self, join: &Join) -> Writing<String> {
        if join.null_equality != NullEquality::NullEqualsNothing {
            return shape();
        }
        if is_inner(join) {
            return self.inner_joins(join);
        }
        let left = self.plan(&join.left, Position::OrderFree)?;
        let right = self.plan(&join.right, Position::OrderFree)?;
        let columns = JoinColumns {
            left: self.columns_of(&join.left),
            right: self.columns_of(&join.right),
        };
        let keys = join
            .on
            .iter()
            .map(|(l, r)| {
                let l = self.compared(l, &columns)?;
                let r = self.compared(r, &columns)?;
                if !same_family(&l.data_type, &r.data_type) {
                    return shape();
                }
                Ok((l.sql, r.sql))
            })
            .collect::<Writing<Vec<_>>>()?;
        let mut conditions: Vec<String> = keys.iter().map(|(l, r)| format!("{l} = {r}")).collect();
        if let Some(filter) = &join.filter {
            conditions.push(self.predicate(filter, &columns)?);
        }
        let condition = if conditions.is_empty() {
            "TRUE".to_owned()
        } else {
            conditions.join(" AND ")
        };
        let left_width = join.left.schema().fields().len();
        let right_width = join.right.schema().fields().len();
        self.pushes_work = true;
        let kind = match join.join_type {
            JoinType::Inner => "INNER",
            JoinType::Left => "LEFT",
            JoinType::Right => "RIGHT",
            JoinType::Full => "FULL",
            JoinType::LeftSemi | JoinType::LeftAnti | JoinType::RightSemi | JoinType::RightAnti => {
                return self.semi_join(join, &left, &right, &keys, &condition);
            }
            JoinType::LeftMark | JoinType::RightMark => return shape(),
        };
        if join.null_aware {
            return shape();
        }
        let mut values = side_columns("l", left_width, 0);
        values.extend(side_columns("r", right_width, left_width));
        Ok(format!(
            "SELECT {} FROM ({left}) AS l {kind} JOIN ({right}) AS r ON {condition}",
            select_list_of(values)
        ))
    }

    /// A tree of inner joins (through aliases and projections of columns) as one `FROM` list
    /// with every join condition in `WHERE`, so the engine orders the joins itself: DuckDB
    /// does not reorder joins nested in subqueries, and a cross product DataFusion planned
    /// first (TPC-H q02: 747 parts × 10 000 suppliers) would run as one.
    fn inner_joins(&mut self, join: &Join) -> Writing<String> {
        let mut group = JoinGroup::default();
        let columns = self.gather_join(join, &mut group)?;
        self.narrow_aggregates(&mut group)?;
        let values = columns
            .iter()
            .enumerate()
            .map(|(i, column)| format!("{} AS {}", column.sql(), output(i)))
            .collect();
        self.select_floats = Some(columns.iter().map(|column| column.float).collect());
        self.pushes_work = true;
        let relations: Vec<String> = group
            .relations
            .iter()
            .enumerate()
            .map(|(i, relation)| format!("({}) AS {}", relation.sql, Relation::alias(i)))
            .collect();
        let mut sql = format!(
            "SELECT {} FROM {}",
            select_list_of(values),
            relations.join(", ")
        );
        if !group.conditions.is_empty() {
            sql.push_str(&format!(" WHERE {}", group.conditions.join(" AND ")));
        }
        self.common(join as *const Join as *const (), sql)
    }

    /// An aggregate joined on one of its grouping columns to a relation that keeps only some
    /// rows (TPC-H q17: the average quantity of every part, joined to the few parts of one
    /// brand and container) aggregates only the rows whose key that relation has: `WHERE key
    /// IN (SELECT …)` under its `GROUP BY`. The groups it drops are those the join drops, so
    /// the answer is the same; DataFusion's decorrelation of a subquery plans the aggregate
    /// over all rows, and DuckDB does not push the join below it (q17: 9x its own plan).
    fn narrow_aggregates(&mut self, group: &mut JoinGroup<'_>) -> Writing<()> {
        for target in 0..group.relations.len() {
            let filter = group.equalities.iter().find_map(|&(a, b)| {
                let (source, key) = match (a.relation == target, b.relation == target) {
                    (true, false) => (b, a),
                    (false, true) => (a, b),
                    _ => return None,
                };
                let (aggregate, position) =
                    grouping_column_of(group.relations[target].plan, key.index)?;
                let source_relation = &group.relations[source.relation];
                if !narrows(source_relation.plan) {
                    return None;
                }
                Some((
                    aggregate as *const Aggregate,
                    position,
                    format!(
                        "SELECT k.{} FROM ({}) AS k",
                        output(source.index),
                        source_relation.sql
                    ),
                ))
            });
            let Some((aggregate, position, keys)) = filter else {
                continue;
            };
            // an enclosing group's filter waits while this one's relation is written again:
            // the aggregate it narrows may be above this group
            let enclosing = self.key_filter.replace((aggregate, position, keys));
            let narrowed = self.plan(group.relations[target].plan, Position::OrderFree);
            self.key_filter = enclosing;
            group.relations[target].sql = narrowed?;
        }
        Ok(())
    }

    /// The relations and conditions of an inner join into `group`; its output columns.
    fn gather_join<'p>(
        &mut self,
        join: &'p Join,
        group: &mut JoinGroup<'p>,
    ) -> Writing<Vec<GroupColumn>> {
        let left = self.gather(&join.left, group)?;
        let right = self.gather(&join.right, group)?;
        let columns = GroupColumns {
            left: join.left.schema(),
            right: join.right.schema(),
            left_columns: &left,
            right_columns: &right,
        };
        for (l, r) in &join.on {
            let l_written = self.compared(l, &columns)?;
            let r_written = self.compared(r, &columns)?;
            if !same_family(&l_written.data_type, &r_written.data_type) {
                return shape();
            }
            group
                .conditions
                .push(format!("({} = {})", l_written.sql, r_written.sql));
            if let (Expr::Column(l), Expr::Column(r)) = (unalias(l), unalias(r))
                && let (Some((l, l_type)), Some((r, r_type))) = (columns.find(l), columns.find(r))
                && l_type == r_type
            {
                group.equalities.push((l, r));
            }
        }
        if let Some(filter) = &join.filter {
            group.conditions.push(self.predicate(filter, &columns)?);
        }
        Ok(left.into_iter().chain(right).collect())
    }

    /// `plan`'s output columns as columns of `group`'s relations: inner joins, aliases and
    /// projections of columns are looked through, anything else is one relation.
    fn gather<'p>(
        &mut self,
        plan: &'p LogicalPlan,
        group: &mut JoinGroup<'p>,
    ) -> Writing<Vec<GroupColumn>> {
        match plan {
            LogicalPlan::Join(join) if is_inner(join) => self.gather_join(join, group),
            LogicalPlan::SubqueryAlias(SubqueryAlias { input, .. }) => self.gather(input, group),
            LogicalPlan::Projection(projection)
                if projection
                    .expr
                    .iter()
                    .all(|e| matches!(unalias(e), Expr::Column(_))) =>
            {
                let input = self.gather(&projection.input, group)?;
                let schema = projection.input.schema();
                projection
                    .expr
                    .iter()
                    .map(|e| match unalias(e) {
                        Expr::Column(column) => schema
                            .index_of_column(column)
                            .ok()
                            .and_then(|i| input.get(i).copied())
                            .ok_or(NotWritten(None)),
                        _ => shape(),
                    })
                    .collect()
            }
            _ => {
                let sql = self.plan(plan, Position::OrderFree)?;
                let relation = group.relations.len();
                let floats = self.floats_of(plan);
                let columns = (0..plan.schema().fields().len())
                    .map(|index| GroupColumn {
                        relation,
                        index,
                        float: floats.get(index).copied().flatten(),
                    })
                    .collect();
                group.relations.push(Relation { plan, sql });
                Ok(columns)
            }
        }
    }

    /// Semi and anti joins keep the rows of one side that have (have no) match on the other:
    /// `[NOT] EXISTS`; the null-aware anti join of `x NOT IN (subquery)` is SQL's `NOT IN`,
    /// NULL rules included.
    fn semi_join(
        &self,
        join: &Join,
        left: &str,
        right: &str,
        keys: &[(String, String)],
        condition: &str,
    ) -> Writing<String> {
        let keep_left = matches!(join.join_type, JoinType::LeftSemi | JoinType::LeftAnti);
        let anti = matches!(join.join_type, JoinType::LeftAnti | JoinType::RightAnti);
        let (kept_sql, kept_side, other_sql, other_side, width) = if keep_left {
            (left, "l", right, "r", join.left.schema().fields().len())
        } else {
            (right, "r", left, "l", join.right.schema().fields().len())
        };
        let values = select_list_of(side_columns(kept_side, width, 0));
        let head = format!("SELECT {values} FROM ({kept_sql}) AS {kept_side}");
        if join.null_aware {
            let ([(l, r)], true, true) = (keys, anti, keep_left) else {
                return shape();
            };
            let filter = match &join.filter {
                Some(filter) => format!(
                    " WHERE {}",
                    self.predicate(
                        filter,
                        &JoinColumns {
                            left: self.columns_of(&join.left),
                            right: self.columns_of(&join.right),
                        }
                    )?
                ),
                None => String::new(),
            };
            return Ok(format!(
                "{head} WHERE {l} NOT IN (SELECT {r} FROM ({other_sql}) AS {other_side}{filter})"
            ));
        }
        // one key and nothing else: `IN`, which the engine joins without correlating
        // (DuckDB: TPC-H q18 2.3x faster than EXISTS); a NULL key is no match either way
        if let ([(l, r)], false, None) = (keys, anti, &join.filter) {
            let (kept_key, other_key) = if keep_left { (l, r) } else { (r, l) };
            return Ok(format!(
                "{head} WHERE {kept_key} IN (SELECT {other_key} FROM ({other_sql}) AS {other_side})"
            ));
        }
        let not = if anti { "NOT " } else { "" };
        Ok(format!(
            "{head} WHERE {not}EXISTS (SELECT 1 FROM ({other_sql}) AS {other_side} WHERE {condition})"
        ))
    }

    fn union(&mut self, union: &Union) -> Writing<String> {
        let parts = union
            .inputs
            .iter()
            .map(|input| {
                Ok(format!(
                    "SELECT * FROM ({}) AS q",
                    self.plan(input, Position::OrderFree)?
                ))
            })
            .collect::<Writing<Vec<_>>>()?;
        self.pushes_work = true;
        Ok(parts.join(" UNION ALL "))
    }

    fn distinct(&mut self, input: &LogicalPlan) -> Writing<String> {
        let sql = self.plan(input, Position::OrderFree)?;
        let dialect = self.dialect()?;
        if let Some(field) = input
            .schema()
            .fields()
            .iter()
            .find(|f| !dialect.compares_like_datafusion(f.data_type()))
        {
            return Err(NotWritten(Some(Kept {
                expr: format!("DISTINCT {}", field.name()),
                reason: format!(
                    "{} tells {} values apart differently",
                    dialect.display_name(),
                    field.data_type()
                ),
            })));
        }
        self.pushes_work = true;
        Ok(format!("SELECT DISTINCT * FROM ({sql}) AS q"))
    }

    /// A sort, with the window of a limit above it (`limit`, `skip`) folded in (a limit over
    /// a subquery would not keep the subquery's order), and the projection above both
    /// (`select`) at the root. Keys name the input's columns as `q.…`, apart from the
    /// projection's output names.
    fn sort(
        &mut self,
        sort: &Sort,
        position: Position,
        limit: Option<usize>,
        skip: usize,
        select: Option<&Projection>,
    ) -> Writing<String> {
        let fetch = match (sort.fetch, limit) {
            (Some(f), Some(n)) => Some(f.saturating_sub(skip).min(n)),
            (Some(f), None) => Some(f.saturating_sub(skip)),
            (None, n) => n,
        };
        match position {
            Position::Root => {}
            Position::OrderMatters => return shape(),
            Position::OrderFree if fetch.is_none() => return shape(),
            Position::OrderFree => {}
        }
        let input = self.plan(&sort.input, Position::OrderFree)?;
        let dialect = self.dialect()?;
        let columns = Qualified(self.columns_of(&sort.input));
        let keys = sort
            .expr
            .iter()
            .map(|key| self.sort_key(key, &columns))
            .collect::<Writing<Vec<_>>>()?;
        let values = match select {
            Some(projection) => self.select_list(projection)?,
            None => "*".to_owned(),
        };
        self.pushes_work = true;
        Ok(format!(
            "SELECT {values} FROM ({input}) AS q ORDER BY {}{}",
            keys.join(", "),
            dialect.limit(fetch, skip)
        ))
    }

    /// `key ASC|DESC NULLS FIRST|LAST`, over values the engine orders like DataFusion.
    fn sort_key(&self, key: &SortExpr, columns: &dyn ColumnNames) -> Writing<String> {
        let written = self.compared(&key.expr, columns)?;
        Ok(format!(
            "{} {} NULLS {}",
            written.sql,
            if key.asc { "ASC" } else { "DESC" },
            if key.nulls_first { "FIRST" } else { "LAST" }
        ))
    }

    fn limit(&mut self, limit: &Limit, position: Position) -> Writing<String> {
        let Ok(SkipType::Literal(skip)) = limit.get_skip_type() else {
            return shape();
        };
        let fetch = match limit.get_fetch_type() {
            Ok(FetchType::Literal(fetch)) => fetch,
            _ => return shape(),
        };
        if let LogicalPlan::Sort(sort) = limit.input.as_ref() {
            return self.sort(sort, position, fetch, skip, None);
        }
        let input = self.plan(&limit.input, position.below_row_by_row())?;
        Ok(format!(
            "SELECT * FROM ({input}) AS q{}",
            self.dialect()?.limit(fetch, skip)
        ))
    }
}

/// `sql` with `over` after each aggregate call in it (`sum(…)`, `count(…)`, `min(…)`,
/// `max(…)`, `avg(…)`, outside quotes): a dialect's aggregate formula, made a window function.
/// An aggregate's arguments hold no aggregate, so calls do not nest.
fn with_over(sql: &str, over: &str) -> String {
    const CALLS: [&str; 5] = ["sum(", "count(", "min(", "max(", "avg("];
    let bytes = sql.as_bytes();
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut out = String::with_capacity(sql.len() + over.len() * 2);
    let (mut copied, mut i) = (0, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'\'' | b'"' => i = past_quoted(bytes, i),
            _ if (i == 0 || !is_word(bytes[i - 1]))
                && CALLS
                    .iter()
                    .any(|call| bytes[i..].starts_with(call.as_bytes())) =>
            {
                let mut depth = 0usize;
                let mut j = i;
                while j < bytes.len() {
                    match bytes[j] {
                        b'\'' | b'"' => {
                            j = past_quoted(bytes, j);
                            continue;
                        }
                        b'(' => depth += 1,
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                let end = (j + 1).min(bytes.len());
                out.push_str(&sql[copied..end]);
                out.push(' ');
                out.push_str(over);
                (copied, i) = (end, end);
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[copied..]);
    out
}

/// The index just past the quoted text (`'…'` or `"…"`) that starts at `at`; a doubled quote
/// inside reads as two quoted texts side by side, which is the same span.
fn past_quoted(bytes: &[u8], at: usize) -> usize {
    let quote = bytes[at];
    bytes[at + 1..]
        .iter()
        .position(|b| *b == quote)
        .map_or(bytes.len(), |offset| at + offset + 2)
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

#[cfg(test)]
mod tests {
    use super::with_over;

    #[test]
    fn every_aggregate_call_of_a_formula_gets_the_window_and_quoted_text_is_left_alone() {
        let over = "OVER (ORDER BY \"c0\")";
        assert_eq!(
            with_over(
                "(((sum((\"c1\" >> 32)) + (sum(\"c1\") >> 32)) << 32))",
                over
            ),
            "(((sum((\"c1\" >> 32)) OVER (ORDER BY \"c0\") + (sum(\"c1\") OVER (ORDER BY \"c0\") >> 32)) << 32))"
        );
        assert_eq!(
            with_over("count(*)", over),
            "count(*) OVER (ORDER BY \"c0\")"
        );
        // `max(` inside a string or a quoted name, and names ending in an aggregate's name
        assert_eq!(
            with_over("min(('max(' || \"sum(\")) + argmax(x)", over),
            "min(('max(' || \"sum(\")) OVER (ORDER BY \"c0\") + argmax(x)"
        );
    }
}
