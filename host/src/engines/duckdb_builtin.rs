//! The DuckDB engine crate compiled into the host as the built-in engine `duckdb_builtin`
//! (cargo feature `builtin-duckdb`): the same engine code as the DuckDB plugin, without the
//! library boundary, so `scripts/bench` can measure what the boundary costs. Its options keep
//! the `duckdb_` prefix.

use std::any::Any;
use std::sync::Arc;

use accel_engine_duckdb::DuckDbAccelerator;
use accel_plugin_api::{
    AccelerationLayout, AccelerationSource, BootstrapStatus, DataAccelerator, FilePathError,
    ParameterSpec, PartitionedBy, SqlEngine, async_trait, register_builtin,
};
use datafusion::catalog::TableProvider;
use datafusion::error::Result;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::CreateExternalTable;

/// Name of the engine, as written after `STORED AS`.
pub const ENGINE_NAME: &str = "duckdb_builtin";

#[derive(Default)]
pub struct BuiltinDuckDb(DuckDbAccelerator);

register_builtin!(DUCKDB_BUILTIN_ENGINE, BuiltinDuckDb);

#[async_trait]
impl DataAccelerator for BuiltinDuckDb {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn name(&self) -> &str {
        ENGINE_NAME
    }

    fn prefix(&self) -> &str {
        self.0.prefix()
    }

    fn parameters(&self) -> &[ParameterSpec] {
        self.0.parameters()
    }

    async fn create_external_table(
        &self,
        cmd: CreateExternalTable,
        source: Option<&dyn AccelerationSource>,
        partition_by: Vec<PartitionedBy>,
        runtime_env: Arc<RuntimeEnv>,
    ) -> Result<Arc<dyn TableProvider>> {
        self.0
            .create_external_table(cmd, source, partition_by, runtime_env)
            .await
    }

    fn acceleration_layout(&self, source: &dyn AccelerationSource) -> AccelerationLayout {
        self.0.acceleration_layout(source)
    }

    async fn init(&self, source: &dyn AccelerationSource) -> Result<BootstrapStatus> {
        self.0.init(source).await
    }

    fn is_initialized(&self, source: &dyn AccelerationSource) -> bool {
        self.0.is_initialized(source)
    }

    fn valid_file_extensions(&self) -> Vec<String> {
        self.0.valid_file_extensions()
    }

    fn file_path(&self, source: &dyn AccelerationSource) -> Result<String, FilePathError> {
        self.0.file_path(source)
    }

    async fn shutdown(&self) -> Result<()> {
        self.0.shutdown().await
    }

    fn sql_engine(&self) -> Option<&dyn SqlEngine> {
        self.0.sql_engine()
    }
}
