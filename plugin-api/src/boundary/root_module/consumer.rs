//! The host-side consumer of an engine library's function table: an `impl DataAccelerator`
//! that calls across the boundary. The host wraps it with what keeps the library alive; this
//! type only speaks the ABI.

use std::any::Any;
use std::sync::Arc;

use abi_stable::std_types::{ROption, RResult, RString, RVec};
use async_ffi::FfiFuture;
use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{TableProvider, TableProviderFactory};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::TaskContextProvider;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::CreateExternalTable;
use datafusion::prelude::SessionContext;
use datafusion_ffi::arrow_wrappers::WrappedSchema;
use datafusion_ffi::proto::logical_extension_codec::FFI_LogicalExtensionCodec;
use datafusion_ffi::table_provider::ForeignTableProvider;
use datafusion_ffi::table_provider_factory::ForeignTableProviderFactory;
use datafusion_proto::logical_plan::DefaultLogicalExtensionCodec;
use datafusion_proto::logical_plan::to_proto::serialize_expr;
use prost::Message;

use super::AcceleratorModuleRef;
use super::foreign_table::ForeignTable;
use crate::boundary::metadata::{ABI_MAJOR, ABI_MINOR};
use crate::boundary::types::{
    FfiAccelerationSource, FfiExecutionPlan, FfiLogicalCodec, FfiPartitionedBy, FfiQuerySettings,
    FfiRecordBatchStream, FfiScanRequest, FfiSchema, FfiSqlTable, FfiTableProvider,
};
use crate::contract::accelerator::{
    AccelerationLayout, AccelerationSource, AccelerationSourceSpec, BootstrapStatus,
    DataAccelerator, FilePathError, FileRelease, ParameterSpec, PartitionedBy,
};
use crate::contract::sql_engine::{SqlEngine, SqlTable};

/// The functions ABI minors appended to the root module (1.1: SQL; 1.2: `release_file`,
/// `stop_runtime`; 1.3: scans), taken when the library is opened. A host loads libraries of its
/// own minor only (`metadata::ABI_MINOR`), so a library without one of them is refused then.
#[derive(Clone, Copy)]
pub(super) struct AppendedCalls {
    pub sql_dialect: extern "C" fn() -> ROption<RString>,
    pub sql_table: extern "C" fn(&FfiTableProvider) -> ROption<FfiSqlTable>,
    pub execute_sql: extern "C" fn(
        RString,
        RString,
        FfiSchema,
    ) -> FfiFuture<RResult<FfiRecordBatchStream, RString>>,
    pub release_file: extern "C" fn(RString, u64) -> FfiFuture<RResult<u8, RString>>,
    pub stop_runtime: extern "C" fn() -> bool,
    pub scan_table: extern "C" fn(
        &FfiTableProvider,
        FfiScanRequest,
        FfiQuerySettings,
    ) -> FfiFuture<RResult<FfiExecutionPlan, RString>>,
    pub execute_scan: extern "C" fn(
        &FfiExecutionPlan,
        usize,
        FfiQuerySettings,
    ) -> RResult<FfiRecordBatchStream, RString>,
}

impl AppendedCalls {
    fn of(module: AcceleratorModuleRef) -> Result<Self, String> {
        let missing = |name: &str| {
            format!(
                "the library has no `{name}` (plugin ABI {ABI_MAJOR}.{ABI_MINOR}): rebuild the \
                 engine against this host's accel-plugin-api"
            )
        };
        Ok(Self {
            sql_dialect: module.sql_dialect().ok_or_else(|| missing("sql_dialect"))?,
            sql_table: module.sql_table().ok_or_else(|| missing("sql_table"))?,
            execute_sql: module.execute_sql().ok_or_else(|| missing("execute_sql"))?,
            release_file: module
                .release_file()
                .ok_or_else(|| missing("release_file"))?,
            stop_runtime: module
                .stop_runtime()
                .ok_or_else(|| missing("stop_runtime"))?,
            scan_table: module.scan_table().ok_or_else(|| missing("scan_table"))?,
            execute_scan: module
                .execute_scan()
                .ok_or_else(|| missing("execute_scan"))?,
        })
    }
}

/// An engine that lives in a loaded library, seen through its function table.
pub struct ForeignAccelerator {
    module: AcceleratorModuleRef,
    calls: AppendedCalls,
    name: String,
    prefix: String,
    parameters: Vec<ParameterSpec>,
    valid_file_extensions: Vec<String>,
    /// The SQL dialect, for engines with the SQL capability.
    sql_dialect: Option<String>,
    /// Task context and session the engine's tables are created with: the logical codec that
    /// decodes pushed-down filters holds only a weak reference to it, so it lives as long as
    /// this accelerator (and every table keeps the accelerator alive).
    context: Arc<SessionContext>,
}

impl std::fmt::Debug for ForeignAccelerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForeignAccelerator")
            .field("name", &self.name)
            .finish()
    }
}

pub(super) fn engine_error(engine: &str, call: &str, message: RString) -> DataFusionError {
    DataFusionError::Execution(format!("engine `{engine}` ({call}): {message}"))
}

impl ForeignAccelerator {
    /// Stops the library's runtime threads (a retired generation); `true` when they were
    /// running.
    pub fn stop_runtime(&self) -> bool {
        (self.calls.stop_runtime)()
    }

    /// Asks the library to describe its engine.
    pub fn new(module: AcceleratorModuleRef) -> Result<Self, String> {
        let calls = AppendedCalls::of(module)?;
        let description = match (module.describe())() {
            RResult::ROk(d) => d,
            RResult::RErr(e) => return Err(e.into()),
        };
        Ok(Self {
            module,
            calls,
            name: description.name.into(),
            prefix: description.prefix.into(),
            parameters: description
                .parameters
                .iter()
                .map(ParameterSpec::from)
                .collect(),
            valid_file_extensions: description
                .valid_file_extensions
                .into_iter()
                .map(String::from)
                .collect(),
            sql_dialect: (calls.sql_dialect)().into_option().map(String::from),
            context: Arc::new(SessionContext::new()),
        })
    }

    fn encode_partitions(&self, partition_by: &[PartitionedBy]) -> Result<RVec<FfiPartitionedBy>> {
        partition_by
            .iter()
            .map(|p| {
                let node = serialize_expr(&p.expression, &DefaultLogicalExtensionCodec {})?;
                Ok(FfiPartitionedBy {
                    name: p.name.as_str().into(),
                    expression_proto: node.encode_to_vec().into(),
                })
            })
            .collect()
    }
}

fn ffi_source(source: &dyn AccelerationSource) -> FfiAccelerationSource {
    FfiAccelerationSource::from(&AccelerationSourceSpec::from_source(source))
}

#[async_trait]
impl DataAccelerator for ForeignAccelerator {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn prefix(&self) -> &str {
        &self.prefix
    }

    fn parameters(&self) -> &[ParameterSpec] {
        &self.parameters
    }

    /// `runtime_env` is not used: plans of a plugin engine execute inside the plugin, with the
    /// plugin's own runtime environment.
    async fn create_external_table(
        &self,
        cmd: CreateExternalTable,
        source: Option<&dyn AccelerationSource>,
        partition_by: Vec<PartitionedBy>,
        _runtime_env: Arc<RuntimeEnv>,
    ) -> Result<Arc<dyn TableProvider>> {
        let codec = {
            let task_ctx_provider: Arc<dyn TaskContextProvider> = Arc::clone(&self.context) as _;
            FFI_LogicalExtensionCodec::new_default(&task_ctx_provider)
        };
        let factory = (self.module.create_table_factory())(
            source.map(ffi_source).into(),
            self.encode_partitions(&partition_by)?,
            FfiLogicalCodec(codec),
        );
        let factory = match factory {
            RResult::ROk(f) => ForeignTableProviderFactory(f.0),
            RResult::RErr(e) => return Err(engine_error(&self.name, "create_external_table", e)),
        };
        let state = self.context.state();
        let created = factory.create(&state, &cmd).await?;
        match created.downcast_ref::<ForeignTableProvider>() {
            Some(provider) => Ok(Arc::new(ForeignTable::new(
                ForeignTableProvider(provider.0.clone()),
                &self.calls,
                &self.name,
            ))),
            None => Ok(created),
        }
    }

    fn acceleration_layout(&self, source: &dyn AccelerationSource) -> AccelerationLayout {
        match (self.module.acceleration_layout())(&ffi_source(source)) {
            RResult::ROk(layout) => layout.into(),
            RResult::RErr(_) => AccelerationLayout::None,
        }
    }

    async fn init(&self, source: &dyn AccelerationSource) -> Result<BootstrapStatus> {
        match (self.module.init())(ffi_source(source)).await {
            RResult::ROk(status) => Ok(status.into()),
            RResult::RErr(e) => Err(engine_error(&self.name, "init", e)),
        }
    }

    fn is_initialized(&self, source: &dyn AccelerationSource) -> bool {
        matches!(
            (self.module.is_initialized())(&ffi_source(source)),
            RResult::ROk(true)
        )
    }

    fn valid_file_extensions(&self) -> Vec<String> {
        self.valid_file_extensions.clone()
    }

    fn file_path(&self, source: &dyn AccelerationSource) -> Result<String, FilePathError> {
        match (self.module.file_path())(&ffi_source(source)) {
            RResult::ROk(path) => Ok(path.into()),
            RResult::RErr(e) => Err(e.into()),
        }
    }

    async fn shutdown(&self) -> Result<()> {
        match (self.module.shutdown())().await {
            RResult::ROk(()) => Ok(()),
            RResult::RErr(e) => Err(engine_error(&self.name, "shutdown", e)),
        }
    }

    async fn release_file(
        &self,
        file: &std::path::Path,
        wait: std::time::Duration,
    ) -> Result<FileRelease> {
        let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        match (self.calls.release_file)(file.display().to_string().into(), wait_ms).await {
            RResult::ROk(0) => Ok(FileRelease::Released),
            RResult::ROk(1) => Ok(FileRelease::StillOpen),
            RResult::ROk(_) => Ok(FileRelease::NotTracked),
            RResult::RErr(e) => Err(engine_error(&self.name, "release_file", e)),
        }
    }

    fn sql_engine(&self) -> Option<&dyn SqlEngine> {
        self.sql_dialect.as_ref().map(|_| self as &dyn SqlEngine)
    }
}

#[async_trait]
impl SqlEngine for ForeignAccelerator {
    fn dialect(&self) -> &str {
        self.sql_dialect.as_deref().unwrap_or_default()
    }

    /// Only for tables this library created (datafusion-ffi providers of another library, or
    /// of none, are `None`).
    fn sql_table(&self, table: &dyn TableProvider) -> Option<SqlTable> {
        let table = table.downcast_ref::<ForeignTable>()?;
        let found = (self.calls.sql_table)(&table.ffi());
        found.into_option().map(|t| SqlTable {
            context: t.context.into(),
            table: t.table.into(),
        })
    }

    async fn execute_sql(
        &self,
        context: &str,
        sql: &str,
        schema: SchemaRef,
    ) -> Result<SendableRecordBatchStream> {
        match (self.calls.execute_sql)(
            context.into(),
            sql.into(),
            FfiSchema(WrappedSchema::from(schema)),
        )
        .await
        {
            RResult::ROk(stream) => Ok(Box::pin(stream.0)),
            RResult::RErr(e) => Err(engine_error(&self.name, "execute_sql", e)),
        }
    }
}
