//! Engines compiled into the host. Each registers itself with one line through the `linkme`
//! slice `accel_plugin_api::BUILTIN_ENGINES`; nothing else in the host names them.
//!
//! - `arrow` ([`arrow`]): Arrow record batches in memory, the host's own engine;
//! - `duckdb_builtin` (cargo feature `builtin-duckdb`): the DuckDB engine crate linked in
//!   under another name, next to the DuckDB plugin, so `scripts/bench` can measure what the
//!   library boundary costs;
//! - `sqlite_builtin` (cargo feature `builtin-sqlite`): the same for the SQLite engine.

pub mod arrow;
pub mod partitions;

#[cfg(feature = "builtin-duckdb")]
accel_plugin_api::register_builtin!(
    DUCKDB_BUILTIN,
    accel_engine_duckdb::DuckDbAccelerator,
    "duckdb_builtin"
);

#[cfg(feature = "builtin-sqlite")]
accel_plugin_api::register_builtin!(
    SQLITE_BUILTIN,
    accel_engine_sqlite::SqliteAccelerator,
    "sqlite_builtin"
);
