//! The root module every engine library exports, producer and consumer side by side: the
//! function table ([`AcceleratorModule`], an `abi_stable` prefix type: each ABI minor appends
//! functions), the `extern "C"` functions an engine library fills it with ([`producer`]), the
//! host-side `impl DataAccelerator` that calls it ([`consumer`]), and the host side of a plugin
//! table ([`foreign_table`]).

pub mod consumer;
pub mod foreign_table;
pub mod producer;

pub use consumer::ForeignAccelerator;

use abi_stable::StableAbi;
use abi_stable::library::RootModule;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{ROption, RResult, RString, RVec};
use async_ffi::FfiFuture;

use super::types::{
    FfiAccelerationLayout, FfiAccelerationSource, FfiBootstrapStatus, FfiEngineDescription,
    FfiExecutionPlan, FfiFilePathError, FfiLogicalCodec, FfiPartitionedBy, FfiQuerySettings,
    FfiRecordBatchStream, FfiScanRequest, FfiSchema, FfiSqlTable, FfiTableFactory,
    FfiTableProvider,
};

/// Name of the one entry symbol (an `abi_stable` `LibHeader` static) in every engine library.
/// Equal to `abi_stable::library::ROOT_MODULE_LOADER_NAME`, spelled out because
/// `export_accelerator!` needs it as a literal (checked by a test).
pub const ROOT_MODULE_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

/// The function table of an engine library. Every function is safe to call from any thread,
/// never unwinds (the SDK turns panics into `RErr`), and reports errors as text that already
/// names the engine.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = AcceleratorModuleRef)))]
#[sabi(missing_field(panic))]
pub struct AcceleratorModule {
    /// Name, parameter prefix, parameters and file extensions of the engine.
    pub describe: extern "C" fn() -> RResult<FfiEngineDescription, RString>,

    /// A table factory bound to one dataset: the host calls its `create` with the
    /// `CREATE EXTERNAL TABLE` command and a session of its own.
    pub create_table_factory: extern "C" fn(
        source: ROption<FfiAccelerationSource>,
        partition_by: RVec<FfiPartitionedBy>,
        codec: FfiLogicalCodec,
    ) -> RResult<FfiTableFactory, RString>,

    pub acceleration_layout:
        extern "C" fn(source: &FfiAccelerationSource) -> RResult<FfiAccelerationLayout, RString>,

    pub init: extern "C" fn(
        source: FfiAccelerationSource,
    ) -> FfiFuture<RResult<FfiBootstrapStatus, RString>>,

    pub is_initialized: extern "C" fn(source: &FfiAccelerationSource) -> RResult<bool, RString>,

    pub file_path:
        extern "C" fn(source: &FfiAccelerationSource) -> RResult<RString, FfiFilePathError>,

    /// Flushes and closes everything the engine holds open.
    #[sabi(last_prefix_field)]
    pub shutdown: extern "C" fn() -> FfiFuture<RResult<(), RString>>,

    // Appended by later minors. The host loads libraries of its own minor only and takes
    // these when it opens one (`consumer::AppendedCalls`), so it never finds one missing.

    // ABI 1.1: the optional SQL capability (`crate::SqlEngine`), answering `None` for engines
    // without it.
    /// The SQL dialect of the engine, or `None` when it does not run statements.
    #[sabi(missing_field(option))]
    pub sql_dialect: extern "C" fn() -> ROption<RString>,

    /// Where a table created by this library lives for SQL, or `None`.
    #[sabi(missing_field(option))]
    pub sql_table: extern "C" fn(table: &FfiTableProvider) -> ROption<FfiSqlTable>,

    /// Runs one statement in a compute context; the rows stream as `schema`.
    #[sabi(missing_field(option))]
    pub execute_sql: extern "C" fn(
        context: RString,
        sql: RString,
        schema: FfiSchema,
    ) -> FfiFuture<RResult<FfiRecordBatchStream, RString>>,

    // ABI 1.2: closing a file whose tables the host dropped, before a newer generation opens
    // it.
    /// `DataAccelerator::release_file`: 0 released, 1 still open, 2 not tracked.
    #[sabi(missing_field(option))]
    pub release_file: extern "C" fn(file: RString, wait_ms: u64) -> FfiFuture<RResult<u8, RString>>,

    /// Stops the library's runtime threads, once the host retired the generation (no table
    /// uses it, its `shutdown` ran); `true` when they were running.
    #[sabi(missing_field(option))]
    pub stop_runtime: extern "C" fn() -> bool,

    // ABI 1.3: scans that carry only what a scan needs. Through datafusion-ffi's own `scan`
    // and `execute`, the session's settings, its table options and a runtime environment are
    // rebuilt inside the library on every call.
    /// Plans a scan of `table` (one this library created) with the query's `settings`.
    #[sabi(missing_field(option))]
    pub scan_table: extern "C" fn(
        table: &FfiTableProvider,
        request: FfiScanRequest,
        settings: FfiQuerySettings,
    ) -> FfiFuture<RResult<FfiExecutionPlan, RString>>,

    /// Executes one partition of a plan `scan_table` returned, with the query's `settings`.
    #[sabi(missing_field(option))]
    pub execute_scan: extern "C" fn(
        plan: &FfiExecutionPlan,
        partition: usize,
        settings: FfiQuerySettings,
    ) -> RResult<FfiRecordBatchStream, RString>,
}

impl RootModule for AcceleratorModuleRef {
    abi_stable::declare_root_module_statics! {AcceleratorModuleRef}
    const BASE_NAME: &'static str = "accel_engine";
    const NAME: &'static str = "accel_engine";
    /// The plugin ABI major (`metadata::ABI_MAJOR`), not the crate version. The minor is
    /// checked from the metadata record, before the library is opened: it must equal the
    /// host's, because `abi_stable`'s layout check refuses a root module with fewer functions
    /// than the host's (and the host refuses one with more).
    const VERSION_STRINGS: VersionStrings = VersionStrings::new("1.0.0");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boundary::metadata::ABI_MAJOR;

    #[test]
    fn entry_symbol_literal_matches_abi_stable() {
        assert_eq!(
            ROOT_MODULE_SYMBOL,
            abi_stable::library::ROOT_MODULE_LOADER_NAME
        );
    }

    #[test]
    fn module_version_carries_the_abi_major_only() {
        let v = AcceleratorModuleRef::VERSION_STRINGS;
        assert_eq!(v.version, format!("{ABI_MAJOR}.0.0"));
    }
}
