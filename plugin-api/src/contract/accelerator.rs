//! The Rust-side engine contract: the `DataAccelerator` trait and the types it names.
//!
//! Built-in engines implement the trait directly; plugin engines implement it inside their own
//! library and export it with `export_accelerator!`; the host sees plugin engines through a
//! host-side implementation of the same trait. Nothing above the host's registry can tell the
//! two origins apart.

use std::any::Any;
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::error::Result;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::{CreateExternalTable, Expr};

/// An accelerator engine: stores data locally and serves it to DataFusion as a `TableProvider`.
#[async_trait]
pub trait DataAccelerator: Send + Sync + 'static {
    fn as_any(&self) -> &dyn Any;

    /// Engine name, as written after `STORED AS` (lower case).
    fn name(&self) -> &str;

    /// Prefix of this engine's parameters in `OPTIONS`, e.g. `duckdb` for `duckdb_memory_limit`.
    fn prefix(&self) -> &str;

    /// The parameters this engine accepts (without the prefix).
    fn parameters(&self) -> &[ParameterSpec];

    /// Creates (or opens) the table described by `cmd` and returns its provider.
    ///
    /// `source` describes the dataset being accelerated (mode, parameters, data directory);
    /// `partition_by` the partitioning expressions; `runtime_env` the runtime of the side that
    /// executes the engine's plans (for a plugin: the plugin's own, not the host's).
    async fn create_external_table(
        &self,
        cmd: CreateExternalTable,
        source: Option<&dyn AccelerationSource>,
        partition_by: Vec<PartitionedBy>,
        runtime_env: Arc<RuntimeEnv>,
    ) -> Result<Arc<dyn TableProvider>>;

    /// Where this engine keeps a dataset's data.
    fn acceleration_layout(&self, _source: &dyn AccelerationSource) -> AccelerationLayout {
        AccelerationLayout::None
    }

    /// Prepares storage for a dataset before its table is created (e.g. restores a snapshot).
    async fn init(&self, _source: &dyn AccelerationSource) -> Result<BootstrapStatus> {
        Ok(BootstrapStatus::NotBootstrapped)
    }

    /// Whether the dataset's storage exists already.
    fn is_initialized(&self, _source: &dyn AccelerationSource) -> bool {
        true
    }

    /// File extensions this engine accepts in file mode, without the dot.
    fn valid_file_extensions(&self) -> Vec<String> {
        Vec::new()
    }

    /// The file a file-mode dataset is stored in.
    fn file_path(&self, _source: &dyn AccelerationSource) -> Result<String, FilePathError> {
        Err(FilePathError::NotFileMode)
    }

    /// Flushes and closes everything the engine holds open. Called once before the host exits.
    async fn shutdown(&self) -> Result<()> {
        Ok(())
    }

    /// Called after the host dropped every table of `file` (a hand-over to a newer generation
    /// of the engine is about to open it): stop what still uses the file — scans and
    /// statements whose rows nobody reads any more — and close it, waiting up to `wait`.
    /// Default: [`FileRelease::NotTracked`], for engines that keep no file open beyond their
    /// tables.
    async fn release_file(
        &self,
        file: &std::path::Path,
        wait: std::time::Duration,
    ) -> Result<FileRelease> {
        let _ = (file, wait);
        Ok(FileRelease::NotTracked)
    }

    /// The engine's SQL capability, if it runs whole statements over its tables (see
    /// [`crate::contract::sql_engine`]). Default: none — only filters and projections are pushed down.
    fn sql_engine(&self) -> Option<&dyn crate::contract::sql_engine::SqlEngine> {
        None
    }
}

/// One parameter an engine accepts in `OPTIONS` (written with the engine prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterSpec {
    pub name: Cow<'static, str>,
    pub description: Cow<'static, str>,
    pub default: Option<Cow<'static, str>>,
    pub required: bool,
}

impl ParameterSpec {
    /// An optional parameter without a default.
    pub const fn new(name: &'static str, description: &'static str) -> Self {
        Self {
            name: Cow::Borrowed(name),
            description: Cow::Borrowed(description),
            default: None,
            required: false,
        }
    }

    /// An optional parameter with a default value.
    pub const fn with_default(
        name: &'static str,
        description: &'static str,
        default: &'static str,
    ) -> Self {
        Self {
            name: Cow::Borrowed(name),
            description: Cow::Borrowed(description),
            default: Some(Cow::Borrowed(default)),
            required: false,
        }
    }

    /// A parameter that must be given.
    pub const fn required(name: &'static str, description: &'static str) -> Self {
        Self {
            name: Cow::Borrowed(name),
            description: Cow::Borrowed(description),
            default: None,
            required: true,
        }
    }
}

/// Whether a dataset lives in memory or in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Memory,
    File,
}

/// What an engine is told about the dataset it accelerates.
pub trait AccelerationSource: Send + Sync {
    /// Dataset (table) name.
    fn dataset_name(&self) -> &str;
    fn mode(&self) -> Mode;
    /// All options of the table, engine parameters included (with their prefix).
    fn params(&self) -> &HashMap<String, String>;
    /// Explicit location of the data (file mode), if the user gave one.
    fn location(&self) -> Option<&str>;
    /// Directory where engines keep files that were not given an explicit location.
    fn data_directory(&self) -> &Path;
}

/// A plain [`AccelerationSource`], as built by the host from `CREATE EXTERNAL TABLE` and as
/// received by a plugin across the boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccelerationSourceSpec {
    pub dataset_name: String,
    pub mode: Mode,
    pub params: HashMap<String, String>,
    pub location: Option<String>,
    pub data_directory: PathBuf,
}

impl AccelerationSource for AccelerationSourceSpec {
    fn dataset_name(&self) -> &str {
        &self.dataset_name
    }
    fn mode(&self) -> Mode {
        self.mode
    }
    fn params(&self) -> &HashMap<String, String> {
        &self.params
    }
    fn location(&self) -> Option<&str> {
        self.location.as_deref()
    }
    fn data_directory(&self) -> &Path {
        &self.data_directory
    }
}

impl AccelerationSourceSpec {
    /// Copies any source into a plain spec.
    pub fn from_source(source: &dyn AccelerationSource) -> Self {
        Self {
            dataset_name: source.dataset_name().to_owned(),
            mode: source.mode(),
            params: source.params().clone(),
            location: source.location().map(str::to_owned),
            data_directory: source.data_directory().to_path_buf(),
        }
    }
}

/// One partitioning expression (`PARTITIONED BY`), named.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionedBy {
    pub name: String,
    pub expression: Expr,
}

/// Where an engine keeps a dataset's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccelerationLayout {
    File(PathBuf),
    Directory(PathBuf),
    None,
}

/// Whether an engine has closed a file ([`DataAccelerator::release_file`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRelease {
    /// Nothing in the engine holds the file open any more.
    Released,
    /// Still open when the wait ran out: the file must not be opened by another engine copy.
    StillOpen,
    /// The engine does not track it (its tables were all it held open), or it was built
    /// before the call existed.
    NotTracked,
}

/// Outcome of [`DataAccelerator::init`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootstrapStatus {
    /// Storage was restored from the named snapshot.
    Bootstrapped { snapshot: String },
    /// Storage existed already and was left as it was.
    AlreadyInitialized,
    /// Nothing was restored; the table starts empty.
    NotBootstrapped,
}

/// Why [`DataAccelerator::file_path`] has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilePathError {
    #[error("the dataset is not in file mode")]
    NotFileMode,
    #[error("file `{path}` has extension `{found}`; this engine accepts {expected:?}")]
    InvalidExtension {
        path: String,
        found: String,
        expected: Vec<String>,
    },
    #[error("{0}")]
    Other(String),
}
