//! A plugin engine as the rest of the host sees it: an `impl DataAccelerator` over the
//! library's function table, plus the keep-alive rule — the engine and every table it creates
//! hold an `Arc` of the library they came from.

use std::any::Any;
use std::sync::Arc;

use accel_plugin_api::boundary::ForeignAccelerator;
use accel_plugin_api::embedded::expression::is_datafusion_function;
use accel_plugin_api::{
    AccelerationLayout, AccelerationSource, BootstrapStatus, DataAccelerator, FilePathError,
    FileRelease, ParameterSpec, PartitionedBy, SqlEngine, SqlTable, async_trait,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Statistics;
use datafusion::common::tree_node::TreeNode;
use datafusion::datasource::TableType;
use datafusion::error::Result;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{CreateExternalTable, Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

use crate::engine::plugin_exec::{
    KeepAlive, PluginExec, keep_alive_stream, labelled, labelled_stream,
};
use crate::library::load::LoadedLibrary;

/// An engine served by a loaded library.
pub struct PluginAccelerator {
    engine: ForeignAccelerator,
    library: Arc<LoadedLibrary>,
}

impl PluginAccelerator {
    pub fn new(engine: ForeignAccelerator, library: Arc<LoadedLibrary>) -> Self {
        Self { engine, library }
    }

    pub fn library(&self) -> &Arc<LoadedLibrary> {
        &self.library
    }

    /// Stops the library's runtime threads, for a retired generation; `true` when they were
    /// running.
    pub fn stop_runtime(&self) -> bool {
        self.engine.stop_runtime()
    }
}

#[async_trait]
impl DataAccelerator for PluginAccelerator {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn name(&self) -> &str {
        self.engine.name()
    }

    fn prefix(&self) -> &str {
        self.engine.prefix()
    }

    fn parameters(&self) -> &[ParameterSpec] {
        self.engine.parameters()
    }

    async fn create_external_table(
        &self,
        cmd: CreateExternalTable,
        source: Option<&dyn AccelerationSource>,
        partition_by: Vec<PartitionedBy>,
        runtime_env: Arc<RuntimeEnv>,
    ) -> Result<Arc<dyn TableProvider>> {
        let table = self
            .engine
            .create_external_table(cmd, source, partition_by, runtime_env)
            .await?;
        Ok(Arc::new(PluginTable {
            table,
            library: Arc::clone(&self.library),
        }))
    }

    fn acceleration_layout(&self, source: &dyn AccelerationSource) -> AccelerationLayout {
        self.engine.acceleration_layout(source)
    }

    async fn init(&self, source: &dyn AccelerationSource) -> Result<BootstrapStatus> {
        self.engine.init(source).await
    }

    fn is_initialized(&self, source: &dyn AccelerationSource) -> bool {
        self.engine.is_initialized(source)
    }

    fn valid_file_extensions(&self) -> Vec<String> {
        self.engine.valid_file_extensions()
    }

    fn file_path(&self, source: &dyn AccelerationSource) -> Result<String, FilePathError> {
        self.engine.file_path(source)
    }

    async fn shutdown(&self) -> Result<()> {
        self.engine.shutdown().await
    }

    async fn release_file(
        &self,
        file: &std::path::Path,
        wait: std::time::Duration,
    ) -> Result<FileRelease> {
        self.engine.release_file(file, wait).await
    }

    fn sql_engine(&self) -> Option<&dyn SqlEngine> {
        self.engine.sql_engine().map(|_| self as &dyn SqlEngine)
    }
}

/// The engine's SQL capability, for the plugin's own tables; the rows keep the library alive.
#[async_trait]
impl SqlEngine for PluginAccelerator {
    fn dialect(&self) -> &str {
        self.engine.sql_engine().map_or("", |sql| sql.dialect())
    }

    fn sql_table(&self, table: &dyn TableProvider) -> Option<SqlTable> {
        let table = table.downcast_ref::<PluginTable>()?;
        self.engine.sql_engine()?.sql_table(table.table.as_ref())
    }

    async fn execute_sql(
        &self,
        context: &str,
        sql: &str,
        schema: SchemaRef,
    ) -> Result<SendableRecordBatchStream> {
        let Some(engine) = self.engine.sql_engine() else {
            return datafusion::common::plan_err!(
                "engine `{}` does not run SQL statements",
                self.engine.name()
            );
        };
        let label = call_label(&self.library, "statement");
        let stream = engine
            .execute_sql(context, sql, schema)
            .await
            .map_err(|e| labelled(&label, e))?;
        Ok(keep_alive_stream(
            labelled_stream(stream, label),
            Arc::clone(&self.library) as KeepAlive,
        ))
    }
}

/// A table of a plugin engine; keeps its library's generation alive.
#[derive(Debug)]
pub struct PluginTable {
    table: Arc<dyn TableProvider>,
    library: Arc<LoadedLibrary>,
}

impl PluginTable {
    pub fn library(&self) -> &Arc<LoadedLibrary> {
        &self.library
    }

    fn keep_alive(&self) -> KeepAlive {
        Arc::clone(&self.library) as KeepAlive
    }

    fn label(&self, call: &str) -> Arc<str> {
        call_label(&self.library, call)
    }
}

#[async_trait]
impl TableProvider for PluginTable {
    fn schema(&self) -> SchemaRef {
        self.table.schema()
    }

    fn table_type(&self) -> TableType {
        self.table.table_type()
    }

    fn statistics(&self) -> Option<Statistics> {
        self.table.statistics()
    }

    /// The library decodes filters with its own DataFusion's functions (datafusion-ffi would
    /// otherwise rebuild the host's every function inside it on each call), so a filter calling
    /// any other function — one the host registered, even under a built-in's name — stays in
    /// DataFusion without being sent; so does a filter the library cannot decode.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        let mut answers = vec![TableProviderFilterPushDown::Unsupported; filters.len()];
        let (positions, sendable): (Vec<usize>, Vec<&Expr>) = filters
            .iter()
            .enumerate()
            .filter(|(_, filter)| calls_only_builtin_functions(filter))
            .map(|(at, filter)| (at, *filter))
            .unzip();
        if sendable.is_empty() {
            return Ok(answers);
        }
        match self.table.supports_filters_pushdown(&sendable) {
            Ok(answered) if answered.len() == sendable.len() => {
                for (at, answer) in positions.into_iter().zip(answered) {
                    answers[at] = answer;
                }
            }
            // one at a time, so that one filter the library cannot decode keeps only itself
            // in DataFusion
            _ => {
                for (at, filter) in positions.into_iter().zip(sendable) {
                    match self.table.supports_filters_pushdown(&[filter]) {
                        Ok(answer) if answer.len() == 1 => answers[at] = answer[0].clone(),
                        Ok(_) => {}
                        Err(e) => tracing::debug!(
                            "{}: filter {filter} stays in DataFusion: {e}",
                            self.label("filter pushdown")
                        ),
                    }
                }
            }
        }
        Ok(answers)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let label = self.label("scan");
        let plan = self
            .table
            .scan(state, projection, filters, limit)
            .await
            .map_err(|e| labelled(&label, e))?;
        Ok(PluginExec::wrap_labelled(plan, &self.keep_alive(), label))
    }

    async fn insert_into(
        &self,
        state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let label = self.label("insert");
        let plan = self
            .table
            .insert_into(state, input, insert_op)
            .await
            .map_err(|e| labelled(&label, e))?;
        Ok(PluginExec::wrap_labelled(plan, &self.keep_alive(), label))
    }
}

/// Whether every function `filter` calls is one of DataFusion's own (not one the host
/// registered, even under a built-in's name).
fn calls_only_builtin_functions(filter: &Expr) -> bool {
    !filter
        .exists(|e| {
            Ok(match e {
                Expr::ScalarFunction(call) => !is_datafusion_function(&call.func),
                Expr::HigherOrderFunction(_)
                | Expr::AggregateFunction(_)
                | Expr::WindowFunction(_) => true,
                _ => false,
            })
        })
        .unwrap_or(true)
}

/// `engine `name` version, call`: what errors of a call into `library` are labelled with.
fn call_label(library: &LoadedLibrary, call: &str) -> Arc<str> {
    format!(
        "engine `{}` {}, {call}",
        library.metadata.engine_name, library.version
    )
    .into()
}
