//! Host side of a plugin table: datafusion-ffi's table provider, scanned through the library's
//! own `scan_table` and `execute_scan` (ABI 1.3).
//!
//! Through datafusion-ffi's `scan` and `execute`, the library rebuilds the session's settings
//! and table options from text and a fresh runtime environment on every call; these two carry
//! the projection, the filters, the limit and settings each side keeps (see
//! [`crate::boundary::query_settings`]). Everything else — schema, pushdown answers, inserts,
//! plan properties, metrics — goes through datafusion-ffi as before.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use abi_stable::std_types::RResult;
use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{CatalogProviderList, Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DFSchema, Statistics};
use datafusion::config::{ConfigOptions, TableOptions};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::execution_props::ExecutionProps;
use datafusion::logical_expr::registry::ExtensionTypeRegistryRef;
use datafusion::logical_expr::{
    AggregateUDF, Expr, HigherOrderUDF, LogicalPlan, ScalarUDF, TableProviderFilterPushDown,
    WindowUDF,
};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::execution_plan::ReplaceChildrenOptions;
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::physical_plan::operator_statistics::StatisticsRegistry;
use datafusion::physical_plan::statistics::StatisticsArgs;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion::prelude::SessionConfig;
use datafusion_ffi::config::FFI_ConfigOptions;
use datafusion_ffi::execution_plan::{FFI_ExecutionPlan, ForeignExecutionPlan};
use datafusion_ffi::ffi_option::FFI_Option;
use datafusion_ffi::ffi_option::FFI_Result;
use datafusion_ffi::table_provider::ForeignTableProvider;
use datafusion_proto::logical_plan::DefaultLogicalExtensionCodec;
use datafusion_proto::logical_plan::to_proto::serialize_exprs;
use datafusion_proto::protobuf::LogicalExprList;
use prost::Message;

use super::consumer::{AppendedCalls, engine_error};
use crate::boundary::query_settings::settings_for;
use crate::boundary::types::{FfiExecutionPlan, FfiScanRequest, FfiTableProvider};

/// A table a plugin library created, as the host holds it.
#[derive(Debug)]
pub struct ForeignTable {
    provider: ForeignTableProvider,
    library: LibraryCalls,
}

/// The library's functions (`scan_table`, `execute_scan`), and the engine's name for their
/// errors.
#[derive(Clone)]
struct LibraryCalls {
    functions: AppendedCalls,
    engine: Arc<str>,
}

impl fmt::Debug for LibraryCalls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LibraryCalls")
            .field("engine", &self.engine)
            .finish()
    }
}

impl ForeignTable {
    pub(super) fn new(provider: ForeignTableProvider, calls: &AppendedCalls, engine: &str) -> Self {
        Self {
            provider,
            library: LibraryCalls {
                functions: *calls,
                engine: engine.into(),
            },
        }
    }

    /// datafusion-ffi's provider behind this table, to hand back to the library.
    pub fn ffi(&self) -> FfiTableProvider {
        FfiTableProvider(self.provider.0.clone())
    }
}

#[async_trait]
impl TableProvider for ForeignTable {
    fn schema(&self) -> SchemaRef {
        self.provider.schema()
    }

    fn table_type(&self) -> TableType {
        self.provider.table_type()
    }

    fn statistics(&self) -> Option<Statistics> {
        self.provider.statistics()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.provider.supports_filters_pushdown(filters)
    }

    /// The filters are ones the library accepted in `supports_filters_pushdown`; they are
    /// encoded without an extension codec, so a filter calling a function the host registered
    /// itself fails here (the host sends only filters calling DataFusion's own functions).
    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let filters = match filters.is_empty() {
            true => Vec::new(),
            false => LogicalExprList {
                expr: serialize_exprs(filters, &DefaultLogicalExtensionCodec {})?,
            }
            .encode_to_vec(),
        };
        let request = FfiScanRequest {
            projection: projection.map(|p| p.iter().copied().collect()).into(),
            filters: filters.into(),
            limit: limit.into(),
        };
        let settings = settings_for(state.config().options());
        match (self.library.functions.scan_table)(&self.ffi(), request, settings).await {
            RResult::ROk(plan) => Ok(Arc::new(ForeignScanExec::try_new(
                plan,
                self.library.clone(),
            )?)),
            RResult::RErr(e) => Err(engine_error(&self.library.engine, "scan", e)),
        }
    }

    async fn insert_into(
        &self,
        state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let state = LeanSession::new(state);
        self.provider.insert_into(&state, input, insert_op).await
    }
}

/// A plan `scan_table` returned: read through datafusion-ffi like any foreign plan, executed
/// through the library's `execute_scan`.
pub struct ForeignScanExec {
    /// The library's plan, handed back to it to execute.
    ffi: FfiExecutionPlan,
    /// The same plan as datafusion-ffi reads it: name, properties, metrics, statistics.
    read: ForeignExecutionPlan,
    library: LibraryCalls,
}

// SAFETY: `FFI_ExecutionPlan` is a handle to an `Arc<dyn ExecutionPlan>` (which is Send +
// Sync) in the library, with thread-safe `clone` and `release`; datafusion-ffi declares its
// own `ForeignExecutionPlan`, which holds one, Send and Sync on the same grounds.
unsafe impl Send for ForeignScanExec {}
// SAFETY: as for Send.
unsafe impl Sync for ForeignScanExec {}

impl ForeignScanExec {
    fn try_new(plan: FfiExecutionPlan, library: LibraryCalls) -> Result<Self> {
        let read = ForeignExecutionPlan::try_from(plan.0.clone())?;
        if !read.children().is_empty() {
            return Err(DataFusionError::Execution(format!(
                "engine `{}` (scan): its scan plan `{}` has inputs; a scan must be a leaf",
                library.engine,
                read.name()
            )));
        }
        Ok(Self {
            ffi: plan,
            read,
            library,
        })
    }
}

impl fmt::Debug for ForeignScanExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForeignScanExec")
            .field("plan", &self.read.name())
            .field("engine", &self.library.engine)
            .finish()
    }
}

impl DisplayAs for ForeignScanExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        self.read.fmt_as(t, f)
    }
}

impl ExecutionPlan for ForeignScanExec {
    fn name(&self) -> &str {
        self.read.name()
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.read.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match children.is_empty() {
            true => Ok(self),
            false => Err(DataFusionError::Internal(format!(
                "{} is a scan: it takes no inputs",
                self.name()
            ))),
        }
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let options = ReplaceChildrenOptions::new(
            datafusion::physical_plan::execution_plan::ChildrenPropertiesMode::Keep,
        );
        self.replace_children(children, options)
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        self.read.apply_expressions(f)
    }

    fn dynamic_expressions_produced(&self) -> Vec<Arc<dyn PhysicalExpr>> {
        self.read.dynamic_expressions_produced()
    }

    /// The library's own answer, kept as a scan of this kind (datafusion-ffi's foreign plan
    /// would answer with a plan executed its way).
    fn repartitioned(
        &self,
        target_partitions: usize,
        config: &ConfigOptions,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let plan = &self.ffi.0;
        // SAFETY: `repartitioned` is the library's own function for its own plan, called with
        // that plan and a config handle made on this side, as datafusion-ffi calls it.
        let answer: FFI_Result<FFI_Option<FFI_ExecutionPlan>> = unsafe {
            (plan.repartitioned)(plan, target_partitions, FFI_ConfigOptions::from(config))
        };
        let answer = answer.into_result().map_err(|e| {
            engine_error(&self.library.engine, "repartitioned", e.to_string().into())
        })?;
        match answer.into_option() {
            None => Ok(None),
            Some(plan) => Ok(Some(Arc::new(Self::try_new(
                FfiExecutionPlan(plan),
                self.library.clone(),
            )?))),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let settings = settings_for(context.session_config().options());
        match (self.library.functions.execute_scan)(&self.ffi, partition, settings) {
            RResult::ROk(stream) => Ok(Box::pin(stream.0)),
            RResult::RErr(e) => Err(engine_error(&self.library.engine, "execute", e)),
        }
    }

    fn metrics(&self) -> Option<MetricsSet> {
        self.read.metrics()
    }

    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        self.read.statistics_from_inputs(input_stats, args)
    }
}

/// The session a library sees in datafusion-ffi's `insert_into`: the query's own, listing no
/// functions. datafusion-ffi hands the library the session's every scalar, aggregate and window
/// function as a foreign function on each call — hundreds — which an insert does not need (its
/// input plan carries its functions).
struct LeanSession<'a> {
    inner: &'a dyn Session,
    table_options: TableOptions,
    no_scalar_functions: HashMap<String, Arc<ScalarUDF>>,
    no_higher_order_functions: HashMap<String, Arc<HigherOrderUDF>>,
    no_aggregate_functions: HashMap<String, Arc<AggregateUDF>>,
    no_window_functions: HashMap<String, Arc<WindowUDF>>,
}

impl<'a> LeanSession<'a> {
    fn new(inner: &'a dyn Session) -> Self {
        Self {
            inner,
            table_options: inner.table_options().clone(),
            no_scalar_functions: HashMap::new(),
            no_higher_order_functions: HashMap::new(),
            no_aggregate_functions: HashMap::new(),
            no_window_functions: HashMap::new(),
        }
    }
}

#[async_trait]
impl Session for LeanSession<'_> {
    fn session_id(&self) -> &str {
        self.inner.session_id()
    }

    fn config(&self) -> &SessionConfig {
        self.inner.config()
    }

    fn catalog_list(&self) -> Arc<dyn CatalogProviderList> {
        self.inner.catalog_list()
    }

    fn config_options(&self) -> &ConfigOptions {
        self.inner.config_options()
    }

    fn query_planner(&self) -> Arc<dyn QueryPlanner + Send + Sync> {
        self.inner.query_planner()
    }

    fn optimize(&self, plan: &LogicalPlan) -> Result<LogicalPlan> {
        self.inner.optimize(plan)
    }

    fn physical_optimizers(&self) -> &[Arc<dyn PhysicalOptimizerRule + Send + Sync>] {
        self.inner.physical_optimizers()
    }

    fn statistics_registry(&self) -> Option<&StatisticsRegistry> {
        self.inner.statistics_registry()
    }

    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.inner.create_physical_plan(logical_plan).await
    }

    fn create_physical_expr(
        &self,
        expr: Expr,
        df_schema: &DFSchema,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        self.inner.create_physical_expr(expr, df_schema)
    }

    fn scalar_functions(&self) -> &HashMap<String, Arc<ScalarUDF>> {
        &self.no_scalar_functions
    }

    fn higher_order_functions(&self) -> &HashMap<String, Arc<HigherOrderUDF>> {
        &self.no_higher_order_functions
    }

    fn aggregate_functions(&self) -> &HashMap<String, Arc<AggregateUDF>> {
        &self.no_aggregate_functions
    }

    fn window_functions(&self) -> &HashMap<String, Arc<WindowUDF>> {
        &self.no_window_functions
    }

    fn extension_type_registry(&self) -> &ExtensionTypeRegistryRef {
        self.inner.extension_type_registry()
    }

    fn runtime_env(&self) -> &Arc<RuntimeEnv> {
        self.inner.runtime_env()
    }

    fn execution_props(&self) -> &ExecutionProps {
        self.inner.execution_props()
    }

    /// The query's session, so that a table downcasting to it finds it.
    fn as_any(&self) -> &dyn Any {
        self.inner.as_any()
    }

    fn table_options(&self) -> &TableOptions {
        &self.table_options
    }

    fn default_table_options(&self) -> TableOptions {
        self.inner.default_table_options()
    }

    fn table_options_mut(&mut self) -> &mut TableOptions {
        &mut self.table_options
    }

    fn task_ctx(&self) -> Arc<TaskContext> {
        self.inner.task_ctx()
    }
}
