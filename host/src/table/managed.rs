//! A table as the session sees it: a stable `TableProvider` in front of the engine generation
//! that currently serves it, so a newer generation can take the table over while queries run.
//!
//! Each query's plan (and every stream it produces) holds a read guard on the table's current
//! provider. A hand-over takes the write guard: it waits (bounded) for the running queries to
//! finish on the old generation, queries that arrive meanwhile wait (bounded) for it, and
//! everything after sees the new generation (see [`super::hand_over`]).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use accel_plugin_api::embedded::dialects::dialect_named;
use accel_plugin_api::embedded::pushdown::SqlDialect;
use accel_plugin_api::{AccelerationLayout, AccelerationSourceSpec, Mode, SqlTable};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{Constraints, DFSchema};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{CreateExternalTable, Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::ProjectionExec;
use tokio::sync::{OwnedRwLockWriteGuard, RwLock};

use crate::engine::plugin_exec::{KeepAlive, PluginExec};
use crate::engine::registry::RegisteredEngine;

/// Longest a query waits for a hand-over in progress.
pub const HANDOVER_WAIT: Duration = Duration::from_secs(30);
/// Longest a hand-over waits for the queries running on the old generation.
pub const DRAIN_WAIT: Duration = Duration::from_secs(10);

/// A read guard of one table, shared by the reads of one query.
type QueryGuard = Arc<tokio::sync::OwnedRwLockReadGuard<Current>>;

tokio::task_local! {
    /// The guards the query being planned holds, by table. A query that reads a table twice (a
    /// self-join, `INSERT INTO t SELECT … FROM t`) must not take a second guard: behind a
    /// hand-over waiting for the first, the second would wait for the hand-over — each waiting
    /// for the other until the hand-over gives up.
    static QUERY_GUARDS: std::cell::RefCell<Vec<(usize, QueryGuard)>>;
}

/// Runs the planning of one query (`planning`) with its table guards shared: each table's
/// guard is taken once, however often the query reads it.
pub async fn with_query_guards<T>(planning: impl std::future::Future<Output = T>) -> T {
    QUERY_GUARDS
        .scope(std::cell::RefCell::new(Vec::new()), planning)
        .await
}

/// The generation serving a table, and its provider there.
pub struct Current {
    pub generation: Arc<RegisteredEngine>,
    /// `None` only inside a file-mode hand-over, between releasing the file and reopening it.
    pub(super) provider: Option<Arc<dyn TableProvider>>,
}

impl Current {
    pub(super) fn provider(&self) -> Result<&Arc<dyn TableProvider>> {
        self.provider.as_ref().ok_or_else(|| {
            DataFusionError::Execution(format!(
                "the table is not open: its hand-over to a new generation of engine {} failed \
                 and reopening it failed too (see the reload report); its data is untouched",
                self.generation.describe()
            ))
        })
    }
}

impl Current {
    /// Where the table lives for a whole SQL statement on this generation; `None` when the
    /// engine does not run statements (or speaks a dialect the host does not know).
    pub fn sql_target(&self) -> Option<SqlTarget> {
        let engine = self.generation.accelerator.sql_engine()?;
        let dialect = dialect_named(engine.dialect())?;
        let table = engine.sql_table(self.provider.as_ref()?.as_ref())?;
        Some(SqlTarget {
            generation: Arc::clone(&self.generation),
            dialect,
            table,
        })
    }
}

/// A table as one SQL statement reaches it: on which generation, in which dialect, and where.
#[derive(Clone)]
pub struct SqlTarget {
    pub generation: Arc<RegisteredEngine>,
    pub dialect: &'static dyn SqlDialect,
    pub table: SqlTable,
}

impl fmt::Debug for SqlTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlTarget")
            .field("generation", &self.generation.describe())
            .field("table", &self.table)
            .finish()
    }
}

impl SqlTarget {
    /// Whether one statement can combine the two tables: same generation, same context.
    pub fn same_context(&self, other: &SqlTarget) -> bool {
        Arc::ptr_eq(&self.generation, &other.generation)
            && self.table.context == other.table.context
    }
}

/// A table created through an engine, with what it takes to recreate it on another
/// generation.
pub struct ManagedTable {
    pub name: String,
    pub engine: String,
    /// The statement it was created with (options unprefixed).
    pub(super) cmd: CreateExternalTable,
    pub(super) source: AccelerationSourceSpec,
    /// `engine_version` requirement; `None` follows the highest generation.
    pub pin: Option<semver::VersionReq>,
    schema: SchemaRef,
    constraints: Constraints,
    current: Arc<RwLock<Current>>,
    /// Hand-overs so far.
    pub(super) handovers: AtomicU64,
}

impl fmt::Debug for ManagedTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagedTable")
            .field("name", &self.name)
            .field("engine", &self.engine)
            .finish()
    }
}

impl ManagedTable {
    pub fn new(
        cmd: CreateExternalTable,
        source: AccelerationSourceSpec,
        pin: Option<semver::VersionReq>,
        generation: Arc<RegisteredEngine>,
        provider: Arc<dyn TableProvider>,
    ) -> Self {
        Self {
            name: cmd.name.to_string(),
            engine: generation.name().to_owned(),
            schema: Arc::new(cmd.schema.as_arrow().clone()),
            constraints: cmd.constraints.clone(),
            cmd,
            source,
            pin,
            current: Arc::new(RwLock::new(Current {
                generation,
                provider: Some(provider),
            })),
            handovers: AtomicU64::new(0),
        }
    }

    /// Where the table lives for a whole SQL statement now; `None` during a hand-over, or when
    /// its engine does not run statements.
    pub fn sql_target(&self) -> Option<SqlTarget> {
        self.current.try_read().ok()?.sql_target()
    }

    /// The table's declared schema.
    pub fn schema_ref(&self) -> &SchemaRef {
        &self.schema
    }

    /// The generation serving the table now (waits for a hand-over in progress).
    pub async fn generation(&self) -> Arc<RegisteredEngine> {
        Arc::clone(&self.current.read().await.generation)
    }

    /// The generation serving the table now, without waiting: `None` during a hand-over.
    pub fn current_generation(&self) -> Option<Arc<RegisteredEngine>> {
        Some(Arc::clone(&self.current.try_read().ok()?.generation))
    }

    /// The file the table is stored in on `generation`, for file-mode tables.
    pub fn file_of(&self, generation: &RegisteredEngine) -> Option<std::path::PathBuf> {
        if self.source.mode != Mode::File {
            return None;
        }
        match generation.accelerator.acceleration_layout(&self.source) {
            AccelerationLayout::File(path) => Some(path),
            _ => None,
        }
    }

    /// The file the table is stored in, for file-mode tables (`None` during a hand-over).
    pub fn file(&self) -> Option<std::path::PathBuf> {
        self.file_of(&self.current.try_read().ok()?.generation)
    }

    pub fn is_file_mode(&self) -> bool {
        self.source.mode == Mode::File
    }

    /// A read guard for one query: the plan and its streams keep it until they are dropped.
    /// Within [`with_query_guards`] (the planning of one query) a table's guard is taken once
    /// and shared by every read of it in the query.
    pub(crate) async fn enter(&self) -> Result<QueryGuard> {
        let key = Arc::as_ptr(&self.current) as usize;
        let taken = QUERY_GUARDS
            .try_with(|guards| {
                guards
                    .borrow()
                    .iter()
                    .find(|(table, _)| *table == key)
                    .map(|(_, guard)| Arc::clone(guard))
            })
            .ok()
            .flatten();
        if let Some(guard) = taken {
            return Ok(guard);
        }
        let guard = tokio::time::timeout(HANDOVER_WAIT, Arc::clone(&self.current).read_owned())
            .await
            .map_err(|_| {
                DataFusionError::Execution(format!(
                    "table `{}` is being handed over to a new engine generation and did not \
                     become available within {HANDOVER_WAIT:?}; retry the query",
                    self.name
                ))
            })?;
        let guard = Arc::new(guard);
        let _ = QUERY_GUARDS.try_with(|guards| guards.borrow_mut().push((key, Arc::clone(&guard))));
        Ok(guard)
    }

    pub(super) async fn lock(&self) -> Result<OwnedRwLockWriteGuard<Current>, String> {
        tokio::time::timeout(DRAIN_WAIT, Arc::clone(&self.current).write_owned())
            .await
            .map_err(|_| {
                format!(
                    "table `{}`: queries still running on the old generation after {DRAIN_WAIT:?}",
                    self.name
                )
            })
    }
}

#[async_trait::async_trait]
impl TableProvider for ManagedTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn constraints(&self) -> Option<&Constraints> {
        Some(&self.constraints)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Asks the serving generation; during a hand-over every filter is `Inexact` (DataFusion
    /// keeps it above the scan, which is right whatever the engine does with it).
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        match self.current.try_read() {
            Ok(current) => current.provider()?.supports_filters_pushdown(filters),
            Err(_) => Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()]),
        }
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let guard = self.enter().await?;
        let provider = guard.provider()?;
        // DataFusion dropped the filters it was told are evaluated exactly. After a hand-over,
        // that answer may have come from the previous generation: filters the serving one does
        // not evaluate exactly are applied here too.
        let unsure = if self.handovers.load(Ordering::SeqCst) == 0 {
            None
        } else {
            let refs: Vec<&Expr> = filters.iter().collect();
            let verdicts = provider.supports_filters_pushdown(&refs)?;
            conjunction(
                filters
                    .iter()
                    .zip(verdicts)
                    .filter(|(_, v)| *v != TableProviderFilterPushDown::Exact)
                    .map(|(f, _)| f.clone()),
            )
        };
        let plan = match unsure {
            None => provider.scan(state, projection, filters, limit).await?,
            Some(predicate) => {
                filtered_scan(
                    provider,
                    state,
                    &self.schema,
                    projection,
                    filters,
                    predicate,
                )
                .await?
            }
        };
        Ok(PluginExec::wrap(plan, &(guard as KeepAlive)))
    }

    async fn insert_into(
        &self,
        state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let guard = self.enter().await?;
        let plan = guard
            .provider()?
            .insert_into(state, input, insert_op)
            .await?;
        Ok(PluginExec::wrap(plan, &(guard as KeepAlive)))
    }
}

/// `provider`'s scan with `predicate` applied on top: the columns it needs are scanned too and
/// projected away afterwards; no limit is passed down (DataFusion applies its own above).
async fn filtered_scan(
    provider: &Arc<dyn TableProvider>,
    state: &dyn Session,
    schema: &SchemaRef,
    projection: Option<&Vec<usize>>,
    filters: &[Expr],
    predicate: Expr,
) -> Result<Arc<dyn ExecutionPlan>> {
    let wanted: Vec<usize> = projection
        .cloned()
        .unwrap_or_else(|| (0..schema.fields().len()).collect());
    let mut scanned = wanted.clone();
    for column in predicate.column_refs() {
        let index = schema.index_of(&column.name)?;
        if !scanned.contains(&index) {
            scanned.push(index);
        }
    }
    let plan = provider.scan(state, Some(&scanned), filters, None).await?;
    let scanned_schema = DFSchema::try_from(schema.project(&scanned)?)?;
    let predicate = state.create_physical_expr(predicate, &scanned_schema)?;
    let filtered: Arc<dyn ExecutionPlan> = Arc::new(FilterExec::try_new(predicate, plan)?);
    if scanned.len() == wanted.len() {
        return Ok(filtered);
    }
    let columns: Vec<(Arc<dyn PhysicalExpr>, String)> = wanted
        .iter()
        .enumerate()
        .map(|(position, index)| {
            let name = schema.field(*index).name().clone();
            (
                Arc::new(Column::new(&name, position)) as Arc<dyn PhysicalExpr>,
                name,
            )
        })
        .collect();
    Ok(Arc::new(ProjectionExec::try_new(columns, filtered)?))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, Int32Array};
    use datafusion::logical_expr::{col, lit};

    use datafusion::physical_plan::collect;
    use datafusion::prelude::SessionContext;

    use super::*;
    use crate::engine::registry::EngineRegistry;
    use crate::table::factory::{EngineTables, factory};
    use crate::table::hand_over::hand_over;

    /// Values of column `v` a direct scan of `table` returns with `filters` pushed.
    async fn scanned(table: &ManagedTable, context: &SessionContext, filters: &[Expr]) -> Vec<i32> {
        let state = context.state();
        let plan = table
            .scan(&state, Some(&vec![1]), filters, None)
            .await
            .unwrap();
        let mut values = Vec::new();
        for batch in collect(plan, context.task_ctx()).await.unwrap() {
            assert_eq!(batch.num_columns(), 1, "only the projected column");
            let column = batch
                .column(0)
                .as_any()
                .downcast_ref::<Int32Array>()
                .unwrap();
            values.extend((0..column.len()).map(|i| column.value(i)));
        }
        values.sort();
        values
    }

    /// A session whose only table factory is the built-in `arrow` engine's, with what it
    /// creates tables through.
    fn arrow_session() -> (
        tempfile::TempDir,
        Arc<EngineRegistry>,
        Arc<EngineTables>,
        SessionContext,
    ) {
        let data = tempfile::tempdir().unwrap();
        let registry = Arc::new(EngineRegistry::with_builtins());
        let tables = Arc::new(EngineTables::new(
            Arc::clone(&registry),
            data.path().to_owned(),
            Duration::from_secs(60),
        ));
        let mut state = datafusion::execution::SessionStateBuilder::new()
            .with_default_features()
            .build();
        state
            .table_factories_mut()
            .insert("ARROW".to_owned(), factory(&tables, "arrow"));
        (
            data,
            registry,
            tables,
            SessionContext::new_with_state(state),
        )
    }

    /// A query that reads a table twice takes its guard once: the second read does not queue
    /// behind a hand-over that waits for the first.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_query_reads_a_table_twice_under_one_guard_even_behind_a_waiting_hand_over() {
        let (_data, _registry, tables, context) = arrow_session();
        context
            .sql("CREATE EXTERNAL TABLE t (v INT) STORED AS arrow LOCATION ':memory:'")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let table = tables.tables.all().pop().unwrap();

        let (hand_over, second_read_waited) = with_query_guards(async {
            let first = table.enter().await.unwrap();
            let waiting = Arc::clone(&table);
            let hand_over = tokio::spawn(async move { waiting.lock().await.map(drop) });
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert!(
                !hand_over.is_finished(),
                "the hand-over waits for the query"
            );
            let second = tokio::time::timeout(Duration::from_secs(5), table.enter()).await;
            let waited = second.is_err();
            if let Ok(second) = second {
                assert!(Arc::ptr_eq(&first, &second.unwrap()), "one guard, shared");
            }
            (hand_over, waited)
        })
        .await;
        assert!(
            !second_read_waited,
            "the second read queued behind the hand-over"
        );
        hand_over
            .await
            .unwrap()
            .expect("the hand-over proceeds once the query is done");
    }

    #[tokio::test]
    async fn after_a_hand_over_filters_the_serving_generation_does_not_evaluate_are_applied() {
        let (_data, registry, tables, context) = arrow_session();
        for sql in [
            "CREATE EXTERNAL TABLE t (k VARCHAR, v INT) STORED AS arrow LOCATION ':memory:'",
            "INSERT INTO t VALUES ('a', 1), ('b', 2), ('b', 3)",
        ] {
            context.sql(sql).await.unwrap().collect().await.unwrap();
        }
        let table = tables.tables.all().pop().unwrap();
        // The arrow engine does not evaluate `v > 2` (Unsupported): before any hand-over the
        // planner's contract holds and the scan passes it through untouched…
        let filter = [col("v").gt(lit(2))];
        assert_eq!(scanned(&table, &context, &filter).await, [1, 2, 3]);
        // …after one, the table applies it itself (the planner may have asked another
        // generation), scanning the filter's columns and projecting them away.
        let arrow = registry.get("arrow").unwrap();
        hand_over(
            &[Arc::clone(&table)],
            &arrow,
            &context,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        assert_eq!(scanned(&table, &context, &filter).await, [3]);
        let all = context
            .sql("SELECT count(*) FROM t")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(all[0].num_rows(), 1, "the rows were copied across");
    }
}
