//! # accel-engine-duckdb
//!
//! The DuckDB accelerator engine: tables stored in a DuckDB database, in memory
//! (`LOCATION ':memory:'`, one database per table) or in a file (`LOCATION 'path/t.duckdb'`,
//! one database per file, shared by its tables). An ordinary library: a host links it in as a
//! built-in engine with one `register_builtin!` line; `plugins/duckdb/plugin` exports it as a
//! plugin library.

pub mod arrow_bridge;
mod database;
mod scan;
mod sink;
mod statements;
mod table;
mod types;

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use accel_plugin_api::embedded::Contexts;
use accel_plugin_api::embedded::file_mode::database_file;
use accel_plugin_api::{
    AccelerationLayout, AccelerationSource, BootstrapStatus, DataAccelerator, FilePathError,
    FileRelease, Mode, ParameterSpec, PartitionedBy, SqlEngine, async_trait,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::plan_err;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::CreateExternalTable;

use crate::database::{Database, Databases, OpenOptions};
use crate::table::DuckDbTable;
use accel_plugin_api::embedded::keys::TableKeys;

/// Name of the engine, as written after `STORED AS`.
pub const ENGINE_NAME: &str = "duckdb";

const FILE_EXTENSIONS: [&str; 3] = ["db", "ddb", "duckdb"];

static PARAMETERS: [ParameterSpec; 4] = [
    ParameterSpec::new(
        "file",
        "Database file of a file-mode table; takes precedence over LOCATION",
    ),
    ParameterSpec::new(
        "memory_limit",
        "DuckDB memory limit, e.g. '2GB' (DuckDB's max_memory)",
    ),
    ParameterSpec::new(
        "threads",
        "Number of DuckDB worker threads for this database",
    ),
    ParameterSpec::with_default(
        "connection_pool_size",
        "Most connections open at once on this table's database (queries beyond it wait)",
        "32",
    ),
];

/// The DuckDB engine.
#[derive(Default)]
pub struct DuckDbAccelerator {
    databases: Databases,
    /// Open databases by compute context, for statements the host pushes down.
    contexts: Contexts<Database>,
}

impl DuckDbAccelerator {
    fn open_options(&self, source: Option<&dyn AccelerationSource>) -> Result<OpenOptions> {
        let mut options = OpenOptions::default();
        let Some(source) = source else {
            return Ok(options);
        };
        let params = source.params();
        options.memory_limit = params.get("duckdb_memory_limit").cloned();
        if let Some(size) = params.get("duckdb_connection_pool_size") {
            options.pool_size = Some(size.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                DataFusionError::Plan(format!(
                    "option duckdb_connection_pool_size must be a positive integer, found `{size}`"
                ))
            })?);
        }
        if let Some(threads) = params.get("duckdb_threads") {
            options.threads = Some(threads.parse().map_err(|_| {
                DataFusionError::Plan(format!(
                    "option duckdb_threads must be a positive integer, found `{threads}`"
                ))
            })?);
        }
        Ok(options)
    }
}

#[async_trait]
impl DataAccelerator for DuckDbAccelerator {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn name(&self) -> &str {
        ENGINE_NAME
    }

    fn prefix(&self) -> &str {
        ENGINE_NAME
    }

    fn parameters(&self) -> &[ParameterSpec] {
        &PARAMETERS
    }

    async fn create_external_table(
        &self,
        cmd: CreateExternalTable,
        source: Option<&dyn AccelerationSource>,
        partition_by: Vec<PartitionedBy>,
        _runtime_env: Arc<RuntimeEnv>,
    ) -> Result<Arc<dyn TableProvider>> {
        if !partition_by.is_empty() {
            return plan_err!("the duckdb engine does not partition tables; remove PARTITIONED BY");
        }
        let options = self.open_options(source)?;
        if let Some(source) = source
            && source.mode() == Mode::Memory
            && source.params().contains_key("duckdb_file")
        {
            return plan_err!(
                "option duckdb_file needs a file-mode table: LOCATION ':memory:' keeps table `{}` \
                 in memory; drop one of the two",
                cmd.name
            );
        }
        let database = match source.filter(|s| s.mode() == Mode::File) {
            Some(source) => {
                let path = self
                    .file_path(source)
                    .map_err(|e| DataFusionError::Plan(e.to_string()))?;
                self.databases.file(Path::new(&path), &options)?
            }
            None => Database::in_memory(&options)?,
        };
        let schema: SchemaRef = Arc::new(cmd.schema.as_arrow().clone());
        let name = cmd.name.table().to_owned();
        let keys = TableKeys::from_options(&cmd.options, &cmd.constraints, &schema)
            .map_err(|e| DataFusionError::Plan(format!("table `{name}`: {e}")))?;
        let table = tokio::task::spawn_blocking(move || {
            DuckDbTable::create_or_open(database, &name, schema, cmd.constraints, keys)
        })
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))??;
        Ok(Arc::new(table))
    }

    fn acceleration_layout(&self, source: &dyn AccelerationSource) -> AccelerationLayout {
        match self.file_path(source) {
            Ok(path) => AccelerationLayout::File(PathBuf::from(path)),
            Err(_) => AccelerationLayout::None,
        }
    }

    /// File mode: restores the table's `snapshot` option when its file does not exist yet.
    async fn init(&self, source: &dyn AccelerationSource) -> Result<BootstrapStatus> {
        if source.mode() != Mode::File {
            return Ok(BootstrapStatus::NotBootstrapped);
        }
        let path = self
            .file_path(source)
            .map_err(|e| DataFusionError::Plan(e.to_string()))?;
        accel_plugin_api::embedded::snapshot::restore_if_missing(source, Path::new(&path)).await
    }

    fn is_initialized(&self, source: &dyn AccelerationSource) -> bool {
        match source.mode() {
            Mode::Memory => true,
            Mode::File => self.file_path(source).is_ok_and(|p| Path::new(&p).exists()),
        }
    }

    fn valid_file_extensions(&self) -> Vec<String> {
        FILE_EXTENSIONS.iter().map(|e| (*e).to_owned()).collect()
    }

    fn file_path(&self, source: &dyn AccelerationSource) -> Result<String, FilePathError> {
        database_file(source, "duckdb_file", "duckdb", &FILE_EXTENSIONS)
    }

    async fn shutdown(&self) -> Result<()> {
        let databases = self.databases.open_files();
        tokio::task::spawn_blocking(move || databases.iter().try_for_each(|db| db.checkpoint()))
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?
    }

    async fn release_file(&self, file: &Path, wait: Duration) -> Result<FileRelease> {
        Ok(self.databases.release(file, wait).await)
    }

    fn sql_engine(&self) -> Option<&dyn SqlEngine> {
        Some(self)
    }
}
