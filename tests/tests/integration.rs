//! Integration tests: they load the real plugin libraries (built by `cargo build --workspace`,
//! which `scripts/test` runs first) through the real loader, as a library and through the
//! `accel` binary.

mod integration {
    mod cli;
    mod cluster;
    pub mod common;
    mod datasets;
    mod duckdb_writes;
    mod edge_values;
    mod expressions;
    mod federation;
    mod fixtures;
    mod host_library;
    mod hostile;
    mod hot_swap;
    mod keys;
    mod out_of_tree;
    mod panics;
    mod postgres_source;
    mod pushdown;
    mod serve;
    mod sqlite;
    mod tpch;
}
