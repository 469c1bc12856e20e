//! The `accel` binary, driven as a user would.

use accel_plugin_api::boundary::metadata::{ABI_MAJOR, ABI_MINOR};

use super::common::{
    SQL_ENGINES, accel, duckdb_library, plugin_dir_with_both_engines, plugin_dir_with_duckdb,
    sqlite_library, stderr, stdout,
};

#[test]
fn sql_prints_the_last_result_as_csv() {
    let plugins = plugin_dir_with_duckdb();
    let dir = plugins.path().to_str().unwrap();
    let out = accel(&[
        "--plugin-dir",
        dir,
        "sql",
        "CREATE EXTERNAL TABLE t (a INT, b VARCHAR) STORED AS duckdb LOCATION ':memory:'; \
         INSERT INTO t VALUES (1,'x'),(2,'y'); SELECT sum(a) AS s FROM t",
        "--format",
        "csv",
    ]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), "s\n3\n");
}

#[test]
fn file_table_rows_survive_the_process() {
    let plugins = plugin_dir_with_duckdb();
    let dir = plugins.path().to_str().unwrap();
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("t.duckdb");
    let create = format!(
        "CREATE EXTERNAL TABLE t (a INT, b VARCHAR) STORED AS duckdb LOCATION '{}'",
        file.display()
    );
    let first = accel(&[
        "--plugin-dir",
        dir,
        "sql",
        &format!("{create}; INSERT INTO t VALUES (1,'x'),(2,'y')"),
    ]);
    assert!(first.status.success(), "stderr: {}", stderr(&first));
    let second = accel(&[
        "--plugin-dir",
        dir,
        "sql",
        &format!("{create}; SELECT b, a FROM t ORDER BY a"),
        "--format",
        "json",
    ]);
    assert!(second.status.success(), "stderr: {}", stderr(&second));
    assert_eq!(
        stdout(&second).trim(),
        r#"[{"b":"x","a":1},{"b":"y","a":2}]"#
    );
}

#[test]
fn engines_lists_builtin_and_plugin_with_path() {
    let plugins = plugin_dir_with_duckdb();
    let dir = plugins.path().to_str().unwrap();
    let out = accel(&["--plugin-dir", dir, "engines", "--verbose"]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    let arrow = text.lines().find(|l| l.starts_with("arrow ")).expect(&text);
    assert!(arrow.contains("built-in"), "{arrow}");
    let duckdb = text
        .lines()
        .find(|l| l.starts_with("duckdb "))
        .expect(&text);
    let library = plugins.path().join(duckdb_library().file_name().unwrap());
    assert!(duckdb.contains(&library.display().to_string()), "{duckdb}");
    assert!(
        duckdb.contains(&format!(" {ABI_MAJOR}.{ABI_MINOR} ")),
        "plugin-api version shown: {duckdb}"
    );
    assert!(
        text.contains("duckdb_memory_limit"),
        "parameters listed: {text}"
    );
}

#[test]
fn check_plugin_reads_metadata_without_loading() {
    for (engine, library) in [("duckdb", duckdb_library()), ("sqlite", sqlite_library())] {
        let out = accel(&["check-plugin", library.to_str().unwrap()]);
        assert!(out.status.success(), "{engine}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(
            text.contains(&format!("engine:           {engine} 0.1.0")),
            "{text}"
        );
        assert!(text.contains("datafusion-ffi:   55"), "{text}");
        assert!(text.contains("compatible:       yes"), "{text}");
    }
}

#[test]
fn errors_go_to_stderr_with_failure_status() {
    let out = accel(&["sql", "SELECT * FROM missing_table"]);
    assert!(!out.status.success());
    assert!(stdout(&out).is_empty());
    assert!(stderr(&out).contains("missing_table"), "{}", stderr(&out));
}

#[test]
fn ctrl_c_stops_the_statement_and_still_shuts_engines_down() {
    let plugins = plugin_dir_with_duckdb();
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("t.duckdb");
    let create = format!(
        "CREATE EXTERNAL TABLE t (a BIGINT) STORED AS duckdb LOCATION '{}'",
        file.display()
    );
    let setup = accel(&[
        "--plugin-dir",
        plugins.path().to_str().unwrap(),
        "sql",
        &format!("{create}; INSERT INTO t VALUES (1), (2)"),
    ]);
    assert!(setup.status.success(), "{}", stderr(&setup));
    // A statement that runs for minutes, interrupted after a moment.
    let child = std::process::Command::new(super::common::accel_binary())
        .args([
            "--plugin-dir",
            plugins.path().to_str().unwrap(),
            "sql",
            &format!("{create}; SELECT count(*) FROM generate_series(1, 100000000000) a"),
        ])
        .env_remove("ACCEL_PLUGIN_PATH")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("interrupted: shutting the engines down"),
        "{}",
        stderr(&out)
    );
    let after = accel(&[
        "--plugin-dir",
        plugins.path().to_str().unwrap(),
        "sql",
        &format!("{create}; SELECT sum(a) AS s FROM t"),
        "--format",
        "csv",
    ]);
    assert_eq!(stdout(&after), "s\n3\n", "{}", stderr(&after));
}

#[test]
fn snapshot_writes_a_consistent_copy_that_init_restores() {
    let plugins = plugin_dir_with_both_engines();
    for (engine, extension) in SQL_ENGINES {
        snapshot_round_trip(plugins.path(), engine, extension);
    }
}

fn snapshot_round_trip(plugins: &std::path::Path, engine: &str, extension: &str) {
    let dir = plugins.to_str().unwrap();
    let data = tempfile::tempdir().unwrap();
    let table = |file: &std::path::Path, options: &str| {
        format!(
            "CREATE EXTERNAL TABLE t (a BIGINT, b VARCHAR) STORED AS {engine} LOCATION '{}'{options}",
            file.display()
        )
    };
    let original = data.path().join(format!("orig.{extension}"));
    let filled = accel(&[
        "--plugin-dir",
        dir,
        "sql",
        &format!(
            "{}; INSERT INTO t SELECT value, concat('v', value) FROM generate_series(1, 5000)",
            table(&original, "")
        ),
    ]);
    assert!(filled.status.success(), "{}", stderr(&filled));

    let snap = data.path().join("snaps").join(format!("t-1.{extension}"));
    std::fs::create_dir_all(snap.parent().unwrap()).unwrap();
    let taken = accel(&[
        "--plugin-dir",
        dir,
        "snapshot",
        &table(&original, ""),
        snap.to_str().unwrap(),
    ]);
    assert!(taken.status.success(), "{}", stderr(&taken));
    assert!(
        stdout(&taken).contains("a snapshot of"),
        "{}",
        stdout(&taken)
    );

    for (name, spec) in [
        ("from-path", snap.display().to_string()),
        ("from-url", format!("file://{}", snap.display())),
    ] {
        let restored = data
            .path()
            .join("restored")
            .join(format!("{name}.{extension}"));
        let options = format!(" OPTIONS ('snapshot' '{spec}')");
        let out = accel(&[
            "--plugin-dir",
            dir,
            "sql",
            &format!(
                "{}; SELECT count(*) AS n, sum(a) AS s, max(b) AS m FROM t",
                table(&restored, &options)
            ),
            "--format",
            "csv",
        ]);
        assert_eq!(
            stdout(&out),
            "n,s,m\n5000,12502500,v999\n",
            "{engine} {spec}: {}",
            stderr(&out)
        );
    }

    let missing = accel(&[
        "--plugin-dir",
        dir,
        "sql",
        &table(
            &data.path().join(format!("never.{extension}")),
            &format!(" OPTIONS ('snapshot' '/nonexistent/snap.{extension}')"),
        ),
    ]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains(&format!("/nonexistent/snap.{extension} does not exist")),
        "{}",
        stderr(&missing)
    );

    let memory = accel(&[
        "--plugin-dir",
        dir,
        "snapshot",
        &format!("CREATE EXTERNAL TABLE m (a INT) STORED AS {engine} LOCATION ':memory:'"),
        data.path().join(format!("m.{extension}")).to_str().unwrap(),
    ]);
    assert!(
        stderr(&memory).contains("only file-mode tables can be snapshotted"),
        "{}",
        stderr(&memory)
    );
}

/// Two processes creating the same new file table at the same moment both end with a clear
/// result: each opens the table (SQLite: the loser's `CREATE` finds the winner's table) or
/// gets the engine's lock conflict (DuckDB: one process per file) — never "not a valid DuckDB
/// database file" from a file caught half-created, nor "table already exists".
#[test]
fn two_processes_racing_to_create_one_file_table_both_end_clearly() {
    let plugins = plugin_dir_with_both_engines();
    let dir = plugins.path().to_str().unwrap().to_owned();
    for (engine, extension) in SQL_ENGINES {
        for round in 0..5 {
            let data = tempfile::tempdir().unwrap();
            let file = data.path().join(format!("race{round}.{extension}"));
            let sql = format!(
                "CREATE EXTERNAL TABLE r (a INT) STORED AS {engine} LOCATION '{}'; \
                 INSERT INTO r VALUES (1); SELECT count(*) AS n FROM r",
                file.display()
            );
            let racers: Vec<std::process::Child> = (0..2)
                .map(|_| {
                    std::process::Command::new(super::common::accel_binary())
                        .args(["--plugin-dir", &dir, "sql", &sql])
                        .env_remove("ACCEL_PLUGIN_PATH")
                        .stdout(std::process::Stdio::piped())
                        .stderr(std::process::Stdio::piped())
                        .spawn()
                        .unwrap()
                })
                .collect();
            let outcomes: Vec<std::process::Output> = racers
                .into_iter()
                .map(|racer| racer.wait_with_output().unwrap())
                .collect();
            let mut opened = 0;
            for out in &outcomes {
                let err = stderr(out);
                if out.status.success() {
                    opened += 1;
                    continue;
                }
                assert!(
                    !err.contains("not a valid DuckDB database file")
                        && !err.contains("already exists"),
                    "{engine} round {round}: {err}"
                );
                assert!(
                    err.to_lowercase().contains("lock"),
                    "{engine} round {round}: the loser names the lock conflict: {err}"
                );
            }
            assert!(opened >= 1, "{engine} round {round}: one process opens it");
            if engine == "sqlite" {
                assert_eq!(opened, 2, "SQLite files are shared between processes");
            }
        }
    }
}
