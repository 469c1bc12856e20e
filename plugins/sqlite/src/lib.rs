//! # accel-engine-sqlite
//!
//! The SQLite accelerator engine: tables stored in SQLite, in memory (`LOCATION ':memory:'`,
//! one private database per table) or in a file (`LOCATION 'path/t.sqlite'` or `.db`, one
//! database per file shared by its tables, WAL journal). Types are stored as [`storage`]
//! documents. An ordinary library: a host links it in as a built-in engine with one
//! `register_builtin!` line; `plugins/sqlite/plugin` exports it as a plugin library.

mod database;
mod scan;
mod sink;
mod statements;
pub mod storage;
mod table;

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use accel_plugin_api::embedded::Contexts;
use accel_plugin_api::embedded::file_mode::database_file;
use accel_plugin_api::embedded::keys::TableKeys;
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
use crate::table::SqliteTable;

/// Name of the engine, as written after `STORED AS`.
pub const ENGINE_NAME: &str = "sqlite";

const FILE_EXTENSIONS: [&str; 2] = ["sqlite", "db"];

static PARAMETERS: [ParameterSpec; 3] = [
    ParameterSpec::new(
        "file",
        "Database file of a file-mode table; takes precedence over LOCATION",
    ),
    ParameterSpec::with_default(
        "busy_timeout",
        "How long a statement waits for another connection's lock: '5000ms', '5s' or \
         milliseconds",
        "5000ms",
    ),
    ParameterSpec::with_default(
        "connection_pool_size",
        "Most connections open at once on this table's database (queries beyond it wait)",
        "8",
    ),
];

/// The SQLite engine.
#[derive(Default)]
pub struct SqliteAccelerator {
    databases: Databases,
    /// Open databases by compute context, for statements the host pushes down.
    contexts: Contexts<Database>,
}

/// A duration as `humantime` reads it (`5000ms`, `5s`, `1m 30s`), or a bare number of
/// milliseconds (`5000`).
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    match text.parse::<u64>() {
        Ok(ms) => Some(Duration::from_millis(ms)),
        Err(_) => humantime::parse_duration(text).ok(),
    }
}

impl SqliteAccelerator {
    fn open_options(&self, source: Option<&dyn AccelerationSource>) -> Result<OpenOptions> {
        let mut options = OpenOptions::default();
        let Some(source) = source else {
            return Ok(options);
        };
        let params = source.params();
        if let Some(timeout) = params.get("sqlite_busy_timeout") {
            options.busy_timeout = parse_duration(timeout).ok_or_else(|| {
                DataFusionError::Plan(format!(
                    "option sqlite_busy_timeout must be a duration like '5000ms' or '5s', \
                     found `{timeout}`"
                ))
            })?;
        }
        if let Some(size) = params.get("sqlite_connection_pool_size") {
            options.pool_size = size.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                DataFusionError::Plan(format!(
                    "option sqlite_connection_pool_size must be a positive integer, found \
                     `{size}`"
                ))
            })?;
        }
        Ok(options)
    }
}

#[async_trait]
impl DataAccelerator for SqliteAccelerator {
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
            return plan_err!("the sqlite engine does not partition tables; remove PARTITIONED BY");
        }
        let options = self.open_options(source)?;
        if let Some(source) = source
            && source.mode() == Mode::Memory
            && source.params().contains_key("sqlite_file")
        {
            return plan_err!(
                "option sqlite_file needs a file-mode table: LOCATION ':memory:' keeps table `{}` \
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
            SqliteTable::create_or_open(database, &name, schema, cmd.constraints, keys)
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
        database_file(source, "sqlite_file", "sqlite", &FILE_EXTENSIONS)
    }

    /// Checkpoints every open file so each is complete without its WAL.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_timeouts_in_every_spelling() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("750"), Some(Duration::from_millis(750)));
        assert_eq!(parse_duration("1m 30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("soon"), None);
    }
}
