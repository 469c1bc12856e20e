//! The DuckDB engine ([`accel_engine_duckdb`]) exported as a plugin library: the metadata record and
//! the entry symbol, nothing else. Drop the built `libaccel_engine_duckdb_plugin.so` into a
//! plugin directory; to link the engine into a binary instead, depend on `accel-engine-duckdb`.

accel_plugin_api::export_accelerator!(accel_engine_duckdb::DuckDbAccelerator, "duckdb");
