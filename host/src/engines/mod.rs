//! Engines compiled into the host. Each registers itself through the `linkme` slice
//! `accel_plugin_api::BUILTIN_ENGINES`; nothing else in the host names them.

pub mod arrow;
#[cfg(feature = "builtin-duckdb")]
pub mod duckdb_builtin;
pub mod partitions;
