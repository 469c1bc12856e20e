//! The SQLite engine ([`accel_engine_sqlite`]) exported as a plugin library: the metadata record and
//! the entry symbol, nothing else. Drop the built `libaccel_engine_sqlite_plugin.so` into a
//! plugin directory; to link the engine into a binary instead, depend on `accel-engine-sqlite`.

accel_plugin_api::export_accelerator!(accel_engine_sqlite::SqliteAccelerator, "sqlite");
