//! Paths of the built artifacts and helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use accel_host::{Host, HostOptions};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;

/// `target/<profile>`: the test binary lives in `target/<profile>/deps`.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>")
        .to_owned()
}

fn artifact(name: &str) -> PathBuf {
    let path = target_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (`cargo build --workspace`, as scripts/test does)",
        path.display()
    );
    path
}

/// The DuckDB engine library built by this workspace.
pub fn duckdb_library() -> PathBuf {
    artifact(&format!(
        "{}accel_engine_duckdb_plugin{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}

/// The SQLite engine library built by this workspace.
pub fn sqlite_library() -> PathBuf {
    artifact(&format!(
        "{}accel_engine_sqlite_plugin{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}

/// Version 0.2.0 of the SQLite engine library (the same crate, its version overridden at build
/// time), built by `scripts/test` for the hot-swap tests.
pub fn sqlite_v2_library() -> PathBuf {
    artifact("fixtures/libaccel_engine_sqlite_plugin-0.2.0.so")
}

/// The misbehaving test engine library built by this workspace.
pub fn chaos_library() -> PathBuf {
    artifact(&format!(
        "{}accel_engine_chaos{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}

/// Copies a library into a plugin directory.
pub fn install(library: &Path, dir: &Path) -> PathBuf {
    let target = dir.join(library.file_name().unwrap());
    std::fs::copy(library, &target).expect("copy plugin");
    target
}

/// The `accel` binary built by this workspace.
pub fn accel_binary() -> PathBuf {
    artifact(&format!("accel{}", std::env::consts::EXE_SUFFIX))
}

/// A fresh plugin directory holding a copy of the DuckDB engine library.
pub fn plugin_dir_with_duckdb() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let library = duckdb_library();
    std::fs::copy(&library, dir.path().join(library.file_name().unwrap())).expect("copy plugin");
    dir
}

/// A fresh plugin directory holding copies of the DuckDB and SQLite engine libraries.
pub fn plugin_dir_with_both_engines() -> tempfile::TempDir {
    let dir = plugin_dir_with_duckdb();
    install(&sqlite_library(), dir.path());
    dir
}

/// The SQL engines, each with a file extension it stores tables in.
pub const SQL_ENGINES: [(&str, &str); 2] = [("duckdb", "duckdb"), ("sqlite", "sqlite")];

/// A host whose only plugin directory is `dir` (ACCEL_PLUGIN_PATH ignored).
pub fn host_with(dir: &Path, data_dir: &Path) -> Host {
    Host::start(&HostOptions {
        plugin_dirs: vec![dir.to_owned()],
        use_plugin_path_var: false,
        data_dir: data_dir.to_owned(),
        ..HostOptions::default()
    })
}

/// Runs `accel` with the given arguments and no ACCEL_PLUGIN_PATH.
pub fn accel(args: &[&str]) -> Output {
    Command::new(accel_binary())
        .args(args)
        .env_remove("ACCEL_PLUGIN_PATH")
        .output()
        .expect("run accel")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Batches as a sorted list of pretty-printed rows (order-insensitive comparisons).
pub fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let text = pretty_format_batches(batches).expect("format").to_string();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with('|'))
        .skip(1)
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}
