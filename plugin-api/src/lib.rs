//! # accel-plugin-api
//!
//! Everything an accelerator engine needs, and the only place the plugin ABI lives.
//!
//! - [`DataAccelerator`] and its types ([`accelerator`]): the engine contract, the same for
//!   built-in and plugin engines;
//! - [`metadata`]: the record every engine library embeds so the host can check it before
//!   opening it;
//! - [`ffi`]: the function table that crosses the library boundary, and its host-side consumer;
//! - [`sdk`]: what `export_accelerator!` expands to — the plugin's runtime, panic containment and
//!   the table behind the entry symbol, so an engine author never writes `extern "C"`;
//! - [`builtin`]: the `linkme` slice through which engines compiled into the host register;
//! - [`embedded`]: connection pool, per-file database sharing and blocking-thread Arrow streams
//!   for engines built on an embedded database (DuckDB, SQLite);
//! - [`sql_engine`]: the optional capability of running whole SQL statements, through which
//!   the host pushes entire subplans (aggregates, joins, sorts) into an engine;
//! - [`pushdown`]: filters translated to an engine's SQL where its semantics match DataFusion's;
//!   [`dialects`]: how DuckDB's and SQLite's SQL differ from DataFusion's;
//! - [`file_mode`]: where a single-file database engine keeps a file-mode table;
//! - [`keys`] and [`snapshot`]: table options every engine reads the same way (primary key,
//!   `on_conflict`, `indexes`; restoring a `snapshot` in `init`).
//!
//! Writing an engine:
//! ```text
//! #[derive(Default)]
//! pub struct MyEngine;
//! #[async_trait::async_trait]
//! impl accel_plugin_api::DataAccelerator for MyEngine { /* … */ }
//! accel_plugin_api::export_accelerator!(MyEngine, "my_engine");
//! ```

pub mod accelerator;
pub mod builtin;
pub mod dialects;
pub mod embedded;
pub mod ffi;
pub mod file_mode;
pub mod keys;
pub mod metadata;
pub mod pushdown;
pub mod sdk;
pub mod snapshot;
pub mod sql_engine;

pub use accelerator::{
    AccelerationLayout, AccelerationSource, AccelerationSourceSpec, BootstrapStatus,
    DataAccelerator, FilePathError, Mode, ParameterSpec, PartitionedBy,
};
pub use builtin::BUILTIN_ENGINES;
pub use sql_engine::{SqlEngine, SqlTable};

// Engine crates use these through the SDK so they always match the host's versions.
pub use abi_stable;
pub use async_trait::async_trait;
pub use datafusion;
pub use datafusion_ffi;
pub use linkme;
