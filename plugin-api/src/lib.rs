//! # accel-plugin-api
//!
//! Everything an accelerator engine needs, and the only place the plugin ABI lives. One
//! dependency for an engine author, grouped by who reads it:
//!
//! - [`contract`] — what an engine implements: [`DataAccelerator`] and its types, the optional
//!   [`SqlEngine`] capability (whole statements pushed down by the host), and
//!   [`register_builtin!`] for engines compiled into a host. Re-exported at the root.
//! - [`boundary`] — the ABI and both sides of it: the [`boundary::metadata`] record the host
//!   reads from the file before any code runs, the types that cross, the root module's producer
//!   (what [`export_accelerator!`] expands to: panic containment and the plugin's own runtime)
//!   and its consumer (the host's view of a loaded library). Engine authors only write the
//!   macro.
//! - [`embedded`] — an optional kit for engines built on an embedded database (DuckDB,
//!   SQLite): pools, per-file databases, blocking-thread Arrow streams, filter pushdown
//!   dialects, keys, snapshots.
//!
//! Dependencies point one way: `boundary` and `embedded` build on `contract`, never on each
//! other.
//!
//! Writing an engine (a library crate, plus a few-line `cdylib` crate to ship it as a plugin):
//! ```text
//! #[derive(Default)]
//! pub struct MyEngine;
//! #[async_trait::async_trait]
//! impl accel_plugin_api::DataAccelerator for MyEngine { /* … */ }
//!
//! // in the plugin crate (crate-type = ["cdylib"]):
//! accel_plugin_api::export_accelerator!(my_engine::MyEngine, "my_engine");
//! ```

pub mod boundary;
pub mod contract;
pub mod embedded;
pub mod panics;

pub use contract::{
    AccelerationLayout, AccelerationSource, AccelerationSourceSpec, BUILTIN_ENGINES,
    BootstrapStatus, BuiltinEngine, DataAccelerator, FilePathError, FileRelease, Mode,
    ParameterSpec, PartitionedBy, SqlEngine, SqlTable,
};

// Engine crates use these through the SDK so they always match the host's versions.
pub use abi_stable;
pub use async_trait::async_trait;
pub use datafusion;
pub use datafusion_ffi;
pub use linkme;
