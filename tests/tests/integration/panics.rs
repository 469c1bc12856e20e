//! Misbehaving engine code (the chaos test engine): panics, failing streams, a hanging init and
//! a lying schema all become query errors naming the engine; the host never aborts and keeps
//! serving every engine, the misbehaving one included.

use std::time::Duration;

use accel_host::{Host, HostOptions};

use super::common::{chaos_library, install, plugin_dir_with_duckdb, rows, stderr, stdout};

fn chaos_host(dir: &std::path::Path, data: &std::path::Path) -> Host {
    Host::start(&HostOptions {
        plugin_dirs: vec![dir.to_owned()],
        use_plugin_path_var: false,
        data_dir: data.to_owned(),
        init_timeout: Duration::from_secs(1),
        ..HostOptions::default()
    })
}

async fn still_serving(host: &Host) {
    let duck = host.sql("SELECT count(*) AS n FROM healthy").await.unwrap();
    assert_eq!(rows(&duck), vec!["| 2 |"]);
    let chaos = host.sql("SELECT sum(a) AS s FROM calm").await.unwrap();
    assert_eq!(rows(&chaos), vec!["| 3 |"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_failures_are_query_errors_and_the_host_keeps_serving() {
    let plugins = plugin_dir_with_duckdb();
    install(&chaos_library(), plugins.path());
    let data = tempfile::tempdir().unwrap();
    let host = chaos_host(plugins.path(), data.path());
    assert!(
        host.report.problems.is_empty(),
        "{:?}",
        host.report.problems
    );
    host.sql(
        "CREATE EXTERNAL TABLE healthy (a INT) STORED AS duckdb LOCATION ':memory:';
         INSERT INTO healthy VALUES (1), (2);
         CREATE EXTERNAL TABLE calm (a INT) STORED AS chaos LOCATION ':memory:';
         INSERT INTO calm VALUES (1), (2)",
    )
    .await
    .unwrap();
    still_serving(&host).await;

    let cases = [
        (
            "'chaos_panic' 'create'",
            "",
            "engine `chaos` panicked in create_external_table",
        ),
        (
            "'chaos_panic' 'scan'",
            "SELECT * FROM t",
            "engine `chaos` panicked in scan: chaos: panic in scan",
        ),
        (
            "'chaos_panic' 'execute'",
            "SELECT * FROM t",
            "engine `chaos` panicked in execute",
        ),
        (
            "'chaos_panic' 'poll'",
            "SELECT * FROM t",
            "engine `chaos` panicked in stream poll",
        ),
        (
            "'chaos_fail' 'stream'",
            "SELECT * FROM t",
            "chaos: stream failed after the first batch",
        ),
        (
            "'chaos_fail' 'stream'",
            "SELECT * FROM t",
            "engine `chaos` 0.1.0, scan: ",
        ),
        (
            "'chaos_hang' 'init'",
            "",
            "engine `chaos`: init of table `t` did not finish within 1s",
        ),
        (
            "'chaos_schema' 'wrong'",
            "",
            "engine `chaos` returned table `t` with columns (a Int32, undeclared Int8), but the statement declares (a Int32)",
        ),
    ];
    for (index, (options, query, expected)) in cases.iter().enumerate() {
        let table = format!("t{index}");
        let create = format!(
            "CREATE EXTERNAL TABLE {table} (a INT) STORED AS chaos LOCATION ':memory:' OPTIONS ({options})"
        );
        let expected = expected.replace("`t`", &format!("`{table}`"));
        let outcome = if query.is_empty() {
            host.sql(&create).await.map(|_| ())
        } else {
            host.sql(&create).await.unwrap();
            host.sql(&format!("INSERT INTO {table} VALUES (1), (2)"))
                .await
                .unwrap();
            host.sql(&query.replace(" t", &format!(" {table}")))
                .await
                .map(|_| ())
        };
        let error = outcome.expect_err(options).to_string();
        assert!(
            error.contains(&expected),
            "{options}: expected {expected:?} in {error:?}"
        );
        still_serving(&host).await;
    }
}

#[test]
fn an_engine_that_panics_on_start_is_skipped_with_the_reason() {
    let plugins = plugin_dir_with_duckdb();
    install(&chaos_library(), plugins.path());
    let out = std::process::Command::new(super::common::accel_binary())
        .args(["--plugin-dir", plugins.path().to_str().unwrap(), "engines"])
        .env("ACCEL_CHAOS_PANIC_ON_START", "1")
        .env_remove("ACCEL_PLUGIN_PATH")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(
            "libaccel_engine_chaos.so: starting the engine: engine `chaos` panicked while starting"
        ),
        "{err}"
    );
    assert!(err.contains("chaos: asked to panic on start"), "{err}");
    assert!(stdout(&out).lines().any(|l| l.starts_with("duckdb ")));
    assert!(!stdout(&out).contains("chaos"));
}

/// An error from inside an engine names the engine, its version and the call — here an insert
/// DuckDB refuses (a duplicate key), which crossed the boundary as a bare
/// `FFI error: Execution error: …` before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_errors_name_the_engine_and_the_call() {
    let plugins = plugin_dir_with_duckdb();
    let data = tempfile::tempdir().unwrap();
    let host = super::common::host_with(plugins.path(), data.path());
    host.sql(
        "CREATE EXTERNAL TABLE k (id INT) STORED AS duckdb LOCATION ':memory:' \
         OPTIONS ('primary_key' 'id');
         INSERT INTO k VALUES (1)",
    )
    .await
    .unwrap();
    let error = host
        .sql("INSERT INTO k VALUES (1)")
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("engine `duckdb` 0.1.0, insert: "), "{error}");
}
