//! Libraries that are not loadable, built by the tests without DataFusion: a C file holding a
//! crafted metadata record (and, where wanted, the entry symbol), compiled with the system C
//! compiler. The host must refuse each with a reason and keep serving.

use std::path::{Path, PathBuf};
use std::process::Command;

use accel_plugin_api::boundary::ROOT_MODULE_SYMBOL;
use accel_plugin_api::boundary::metadata::{ABI_MAJOR, ABI_MINOR, PluginMetadata};

use super::common::{accel, host_with, plugin_dir_with_duckdb, stderr, stdout};

/// Compiles a shared library carrying `metadata` (when given) and a fake entry symbol.
pub fn fixture_library(dir: &Path, name: &str, metadata: Option<&PluginMetadata>) -> PathBuf {
    let mut c = String::new();
    if let Some(metadata) = metadata {
        let bytes: Vec<String> = metadata.to_bytes().iter().map(|b| b.to_string()).collect();
        c.push_str(&format!(
            "__attribute__((used, section(\".accel_plugin\"))) const unsigned char accel_metadata[] = {{{}}};\n",
            bytes.join(",")
        ));
    }
    c.push_str(&format!(
        "__attribute__((visibility(\"default\"))) const unsigned char {ROOT_MODULE_SYMBOL}[64] = {{0}};\n"
    ));
    let source = dir.join(format!("{name}.c"));
    std::fs::write(&source, c).unwrap();
    let library = dir.join(format!("lib{name}.so"));
    let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".to_owned()))
        .args(["-shared", "-fPIC", "-o"])
        .arg(&library)
        .arg(&source)
        .status()
        .expect("run the C compiler");
    assert!(status.success(), "compiling fixture {name}");
    std::fs::remove_file(source).unwrap();
    library
}

/// A table naming an engine whose library was refused gets the refusal in its error: the
/// record (stage, reason, fix) the pipeline left, not only the directories searched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_engine_error_carries_the_records_of_its_refused_libraries() {
    use accel_host::library::trace::Stage;
    let plugins = plugin_dir_with_duckdb();
    let mut metadata = PluginMetadata::current("oldengine", "1.0.0");
    metadata.datafusion_ffi_major = 54;
    fixture_library(plugins.path(), "oldengine", Some(&metadata));
    let data = tempfile::tempdir().unwrap();
    let host = host_with(plugins.path(), data.path());

    let record = host
        .report
        .problems
        .iter()
        .find(|r| r.path.ends_with("liboldengine.so"))
        .expect("a record for the refused library");
    assert_eq!(record.engine.as_deref(), Some("oldengine"));
    assert_eq!(record.stage, Stage::Check);
    assert!(
        record.fix.contains("datafusion-ffi"),
        "the fix is given apart: {record:?}"
    );

    let error = host
        .sql("CREATE EXTERNAL TABLE t (a INT) STORED AS oldengine LOCATION ':memory:'")
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("no engine named `oldengine`"), "{error}");
    assert!(
        error.contains("[check]")
            && error.contains("liboldengine.so")
            && error.contains("datafusion-ffi major: library has 54, host expects 55"),
        "{error}"
    );
    // A refusal about another engine is not attached.
    let error = host
        .sql("CREATE EXTERNAL TABLE t (a INT) STORED AS nosuch LOCATION ':memory:'")
        .await
        .unwrap_err()
        .to_string();
    assert!(!error.contains("liboldengine.so"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_datafusion_ffi_major_is_refused_by_field_and_host_keeps_serving() {
    let plugins = plugin_dir_with_duckdb();
    let mut metadata = PluginMetadata::current("oldengine", "1.0.0");
    metadata.datafusion_ffi_major = 54;
    let library = fixture_library(plugins.path(), "oldengine", Some(&metadata));
    let data = tempfile::tempdir().unwrap();
    let host = host_with(plugins.path(), data.path());

    let problem = host
        .report
        .problems
        .iter()
        .map(ToString::to_string)
        .find(|p| p.contains("liboldengine.so"))
        .unwrap_or_else(|| panic!("no problem reported: {:?}", host.report.problems));
    assert!(
        problem.contains("datafusion-ffi major: library has 54, host expects 55"),
        "{problem}"
    );
    assert!(host.registry.get("oldengine").is_none());
    // the good engine next to it still serves
    host.sql("CREATE EXTERNAL TABLE t (a INT) STORED AS duckdb LOCATION ':memory:'; INSERT INTO t VALUES (7)")
        .await
        .unwrap();
    assert_eq!(
        super::common::rows(&host.sql("SELECT a FROM t").await.unwrap()),
        vec!["| 7 |"]
    );

    // check-plugin says the same, without loading
    let out = accel(&["check-plugin", library.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stdout(&out).contains("compatible:       no"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("library has 54, host expects 55"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_libraries_and_libraries_without_metadata_are_skipped_with_reasons() {
    let plugins = plugin_dir_with_duckdb();
    std::fs::write(plugins.path().join("README.txt"), "notes").unwrap();
    std::fs::write(
        plugins.path().join("garbage.so"),
        b"\x00\x01 definitely not ELF",
    )
    .unwrap();
    fixture_library(plugins.path(), "nometa", None);
    let data = tempfile::tempdir().unwrap();
    let host = host_with(plugins.path(), data.path());
    let problems = host
        .report
        .problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");

    assert!(
        problems.contains("README.txt: skipped: not a shared library"),
        "{problems}"
    );
    assert!(
        problems.contains("garbage.so: not a shared library"),
        "{problems}"
    );
    assert!(
        problems.contains("libnometa.so: no `.accel_plugin` metadata section"),
        "{problems}"
    );
    assert_eq!(host.report.loaded.len(), 1, "only the DuckDB engine loads");
    assert!(host.registry.get("duckdb").is_some());
}

#[test]
fn metadata_problems_are_reported_on_stderr_by_the_binary() {
    let plugins = plugin_dir_with_duckdb();
    let mut metadata = PluginMetadata::current("future", "1.0.0");
    metadata.abi_major += 1;
    metadata.target = "aarch64-apple-darwin".to_owned();
    fixture_library(plugins.path(), "future", Some(&metadata));
    let out = accel(&["--plugin-dir", plugins.path().to_str().unwrap(), "engines"]);
    assert!(
        out.status.success(),
        "a bad library does not stop the host: {}",
        stderr(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains("libfuture.so: incompatible with this host"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "plugin-api ABI major: library has {}.{ABI_MINOR}, host expects {ABI_MAJOR}.x",
            ABI_MAJOR + 1
        )),
        "{err}"
    );
    assert!(
        err.contains("target triple: library has aarch64-apple-darwin"),
        "{err}"
    );
    assert!(
        stdout(&out).lines().any(|l| l.starts_with("duckdb ")),
        "{}",
        stdout(&out)
    );
}
