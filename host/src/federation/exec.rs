//! Planning and running an [`EngineQuery`]: the planner takes the read guards of every table
//! in it (in name order, as a hand-over locks them), writes the statement again against the
//! generation serving them now, and the plan runs it in that engine, holding the guards until
//! its rows are consumed — a hand-over waits for it, as for a scan. If the tables no longer
//! share a generation, the subplan is planned the ordinary way instead.
//!
//! A statement with decimal arithmetic in the engine's narrow form (which fails, never
//! differs, where a value passes 18 digits; only where a failure comes before the first row)
//! is held until its first row: if it fails first, the statement with exact decimal
//! arithmetic runs instead, counted as `exact_reruns` in EXPLAIN ANALYZE.
//!
//! Guards are taken per node: a query with two such nodes (or scans) over tables that a
//! hand-over locks at the same time can make the hand-over wait for it; the hand-over gives
//! up after `DRAIN_WAIT` and reports it, and the query goes on — as for two scans.

use std::fmt;
use std::sync::Arc;

use accel_plugin_api::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{LogicalPlan, UserDefinedLogicalNode};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr, PhysicalSortExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};
use futures::{StreamExt, TryStreamExt};

use super::node::{EngineQuery, KeptInDataFusion};
use super::statement::{Statement, managed_table};
use crate::engine::plugin_exec::{KeepAlive, keep_alive_stream};
use crate::engine::registry::RegisteredEngine;
use crate::table::managed::{ManagedTable, with_query_guards};

/// DataFusion's planner, which also plans [`EngineQuery`] nodes.
#[derive(Debug)]
pub struct AccelQueryPlanner;

#[async_trait]
impl QueryPlanner for AccelQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let planner =
            DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(EngineQueryPlanner)]);
        with_query_guards(planner.create_physical_plan(logical_plan, session)).await
    }
}

struct EngineQueryPlanner;

#[async_trait]
impl ExtensionPlanner for EngineQueryPlanner {
    async fn plan_extension(
        &self,
        planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn Session,
        _planning: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        if node.as_any().is::<KeptInDataFusion>() {
            // only shows reasons: its plan is its input's
            return Ok(physical_inputs.first().cloned());
        }
        let Some(query) = node.as_any().downcast_ref::<EngineQuery>() else {
            return Ok(None);
        };
        let mut tables = tables_of(&query.plan);
        tables.sort_by(|a, b| a.name.cmp(&b.name));
        let mut guards = Vec::with_capacity(tables.len());
        for table in &tables {
            guards.push(table.enter().await?);
        }
        let targets: Vec<_> = guards.iter().map(|g| g.sql_target()).collect();
        let lookup = |table: &Arc<ManagedTable>| {
            let at = tables.iter().position(|t| Arc::ptr_eq(t, table))?;
            targets[at].clone()
        };
        let written = Statement::write(&query.plan, &lookup, query.query_root).and_then(|s| {
            let exact_sql = match s.narrowed {
                true => Some(Statement::exact_sql(&query.plan, &lookup)?),
                false => None,
            };
            Ok((s, exact_sql))
        });
        let Ok((statement, exact_sql)) = written else {
            // A hand-over between optimisation and now moved the tables apart (or to an
            // engine without statements): plan the subplan the ordinary way, whose scans take
            // their own guards.
            drop(guards);
            return planner
                .create_physical_plan(&query.plan, session)
                .await
                .map(Some);
        };
        Ok(Some(Arc::new(EngineQueryExec::new(
            statement,
            exact_sql,
            query.plan.schema().inner().clone(),
            Arc::new(guards) as KeepAlive,
        )?)))
    }
}

/// The rows of `started` once it has returned its first row (or ended), or the error it
/// failed with before: the statement can then be run again, nothing of it having been seen.
async fn until_first_row(
    started: Result<SendableRecordBatchStream>,
) -> Result<SendableRecordBatchStream> {
    let mut rows = started?;
    let schema = rows.schema();
    let mut held = Vec::new();
    while let Some(batch) = rows.try_next().await? {
        let has_rows = batch.num_rows() > 0;
        held.push(Ok(batch));
        if has_rows {
            break;
        }
    }
    Ok(Box::pin(RecordBatchStreamAdapter::new(
        schema,
        futures::stream::iter(held).chain(rows),
    )))
}

/// The managed tables a subplan scans.
fn tables_of(plan: &LogicalPlan) -> Vec<Arc<ManagedTable>> {
    let mut tables: Vec<Arc<ManagedTable>> = Vec::new();
    // scalar subqueries in expressions are part of the statement too
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Some(table) = managed_table(scan)
            && !tables.iter().any(|t| Arc::ptr_eq(t, &table))
        {
            tables.push(table);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    tables
}

/// One statement run by an engine; EXPLAIN shows the engine and the SQL.
pub struct EngineQueryExec {
    sql: String,
    /// The statement with exact decimal arithmetic, run when `sql` (narrow) fails before its
    /// first row.
    exact_sql: Option<String>,
    context: String,
    generation: Arc<RegisteredEngine>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    /// The tables' read guards.
    guards: KeepAlive,
    /// `exact_reruns`: how often `exact_sql` ran (EXPLAIN ANALYZE shows it).
    metrics: ExecutionPlanMetricsSet,
}

impl EngineQueryExec {
    fn new(
        statement: Statement,
        exact_sql: Option<String>,
        schema: SchemaRef,
        guards: KeepAlive,
    ) -> Result<Self> {
        let mut equivalences = EquivalenceProperties::new(Arc::clone(&schema));
        let ordering: Vec<PhysicalSortExpr> = statement
            .ordering
            .iter()
            .map(|(index, options)| {
                let column: Arc<dyn PhysicalExpr> =
                    Arc::new(Column::new(schema.field(*index).name(), *index));
                PhysicalSortExpr::new(column, *options)
            })
            .collect();
        if !ordering.is_empty() {
            equivalences.add_orderings([ordering]);
        }
        let properties = Arc::new(PlanProperties::new(
            equivalences,
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(Self {
            sql: statement.sql,
            exact_sql,
            context: statement.target.table.context.clone(),
            generation: statement.target.generation,
            schema,
            properties,
            guards,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }
}

impl fmt::Debug for EngineQueryExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineQueryExec")
            .field("sql", &self.sql)
            .finish()
    }
}

impl DisplayAs for EngineQueryExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let decimals = if self.exact_sql.is_some() {
            " decimals=narrow (run again exact if one passes 18 digits)"
        } else {
            ""
        };
        write!(
            f,
            "EngineQueryExec: engine={} {}{decimals} sql={}",
            self.generation.name(),
            self.generation.version,
            self.sql
        )
    }
}

impl ExecutionPlan for EngineQueryExec {
    fn name(&self) -> &str {
        "EngineQueryExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal(
                "EngineQueryExec has no children".to_owned(),
            ))
        }
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "EngineQueryExec has one partition, asked for {partition}"
            )));
        }
        let generation = Arc::clone(&self.generation);
        let (context, sql, exact_sql, schema) = (
            self.context.clone(),
            self.sql.clone(),
            self.exact_sql.clone(),
            Arc::clone(&self.schema),
        );
        let exact_reruns = MetricBuilder::new(&self.metrics).counter("exact_reruns", partition);
        let rows = futures::stream::once(async move {
            let engine = generation.accelerator.sql_engine().ok_or_else(|| {
                DataFusionError::Execution(format!(
                    "engine {} no longer runs SQL statements",
                    generation.describe()
                ))
            })?;
            let run = |sql: String| {
                let (context, schema) = (&context, Arc::clone(&schema));
                async move { engine.execute_sql(context, &sql, schema).await }
            };
            let Some(exact_sql) = exact_sql else {
                return run(sql).await;
            };
            match until_first_row(run(sql.clone()).await).await {
                Ok(rows) => Ok(rows),
                Err(narrow_error) => {
                    tracing::debug!(
                        "statement with narrow decimals failed ({narrow_error}); running it \
                         with exact decimals"
                    );
                    exact_reruns.add(1);
                    run(exact_sql).await
                }
            }
        })
        .try_flatten();
        let stream = Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            rows,
        ));
        Ok(keep_alive_stream(stream, Arc::clone(&self.guards)))
    }
}
