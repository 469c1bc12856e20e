//! Datasets declared in a config, accelerated through the real engines (arrow built in, DuckDB
//! and SQLite loaded from their plugin libraries) and refreshed from file sources. Every
//! answer is compared with DataFusion reading the same source files directly (a dataset with
//! no acceleration in the same config).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use accel_host::Host;
use accel_host::config::Config;
use accel_host::dataset::{DatasetState, Datasets};
use datafusion::prelude::SessionContext;

use super::common::{accel, host_with, plugin_dir_with_both_engines, rows, stderr, stdout};

/// Every engine, as `acceleration:` lines (arrow in memory, the SQL engines in file mode).
const ENGINES: [(&str, &str); 3] = [
    ("arrow", "engine: arrow"),
    ("duckdb", "engine: duckdb\n      mode: file"),
    ("sqlite", "engine: sqlite\n      mode: file"),
];

struct Running {
    host: Arc<Host>,
    datasets: Arc<Datasets>,
}

impl Running {
    async fn start(plugins: &Path, dir: &Path, yaml: &str) -> Self {
        let path = dir.join("accel.yaml");
        std::fs::write(&path, yaml).unwrap();
        let config = Config::load(&path).expect("config reads");
        let host = Arc::new(host_with(plugins, &dir.join("data")));
        let datasets = Datasets::start(Arc::clone(&host), Some(&config)).expect("datasets start");
        assert!(
            datasets.wait_loaded(Duration::from_secs(120)).await,
            "datasets loaded within two minutes"
        );
        Self { host, datasets }
    }

    async fn query(&self, sql: &str) -> Vec<String> {
        match self.host.sql(sql).await {
            Ok(batches) => rows(&batches),
            Err(e) => {
                let errors: Vec<String> = self
                    .datasets
                    .all()
                    .iter()
                    .filter_map(|d| d.status().last_error.map(|e| format!("{}: {e}", d.name)))
                    .collect();
                panic!("{sql}: {e}; dataset errors: {errors:?}")
            }
        }
    }

    async fn stop(self) {
        self.datasets.shutdown(Duration::from_secs(60)).await;
        assert!(self.host.shutdown().await.is_empty());
    }
}

/// Writes a parquet file from a query (DataFusion's own writer), in place at once: written
/// elsewhere under a `.parquet` name (so DataFusion writes one file, not a directory) and
/// renamed over the file.
pub(super) async fn write_parquet(path: &Path, select: &str) {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let ctx = SessionContext::new();
    let temporary = std::env::temp_dir().join(format!(
        "accel-test-{}-{}.parquet",
        std::process::id(),
        WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    ctx.sql(&format!(
        "COPY ({select}) TO '{}' STORED AS PARQUET",
        temporary.display()
    ))
    .await
    .unwrap()
    .collect()
    .await
    .unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

/// Rows with edge values: integer extremes, ±inf, NULLs, NUL bytes and non-ASCII text, far
/// dates; with `nan`, also NaN and -0.0 (which SQLite cannot store: it refuses them).
pub(super) fn edge_rows(version: i64, nan: bool) -> String {
    let (nan, negative_zero) = if nan {
        ("'NaN'::double", "-0.0::double")
    } else {
        ("1.5::double", "0.0::double")
    };
    format!(
        "SELECT column1 AS id, column2 AS v, column3 AS f, column4 AS s, \
         to_timestamp_micros(column5) AS ts FROM (VALUES \
         (1, 9223372036854775807, {nan}, 'a\u{0}b', 0), \
         (2, -9223372036854775808, 'inf'::double, 'Straße', 1000000), \
         (3, {version}, '-inf'::double, 'ÉCOLE', -62135596800000000), \
         (4, NULL, {negative_zero}, NULL, 253402300799000000), \
         (5, 0, NULL, '', NULL))"
    )
}

const SUMMARY: &str = "SELECT id, v, f, s, ts FROM {t} ORDER BY id";

fn summary(table: &str) -> String {
    SUMMARY.replace("{t}", table)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_refresh_loads_and_replaces_the_source_on_every_engine() {
    let plugins = plugin_dir_with_both_engines();
    for (engine, acceleration) in ENGINES {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("edges.parquet");
        let nan = engine != "sqlite";
        write_parquet(&source, &edge_rows(7, nan)).await;
        let yaml = format!(
            "datasets:\n  - from: file:edges.parquet\n    name: accelerated\n    acceleration:\n      {acceleration}\n  - from: file:edges.parquet\n    name: direct\n"
        );
        let running = Running::start(plugins.path(), dir.path(), &yaml).await;
        let direct = running.query(&summary("direct")).await;
        assert_eq!(direct.len(), 5);
        assert_eq!(
            running.query(&summary("accelerated")).await,
            direct,
            "{engine}"
        );
        // A new version of the source replaces every row.
        write_parquet(&source, &edge_rows(8, nan)).await;
        let refreshed = running.datasets.refresh("accelerated").await.unwrap();
        assert_eq!(
            (refreshed.rows_written, refreshed.rows_held),
            (5, 5),
            "{engine}"
        );
        let direct = running.query(&summary("direct")).await;
        assert!(direct.iter().any(|r| r.contains("| 8 ")), "{direct:?}");
        assert_eq!(
            running.query(&summary("accelerated")).await,
            direct,
            "{engine}"
        );
        let status = running.datasets.get("accelerated").unwrap().status();
        assert_eq!(status.state, DatasetState::Ready);
        assert_eq!(status.rows, Some(5));
        assert_eq!(status.refreshes, 2, "{engine}: the load and the refresh");
        running.stop().await;
    }
}

/// A source value an engine cannot store fails the load with the engine's reason; the dataset
/// is not served as an empty table meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_value_the_engine_refuses_fails_the_load_and_nothing_half_loaded_is_served() {
    let plugins = plugin_dir_with_both_engines();
    let dir = tempfile::tempdir().unwrap();
    write_parquet(&dir.path().join("edges.parquet"), &edge_rows(7, true)).await;
    let yaml = "datasets:\n  - from: file:edges.parquet\n    name: edges\n    acceleration:\n      engine: sqlite\n      refresh_retry_enabled: false\n";
    let running = Running::start(plugins.path(), dir.path(), yaml).await;
    let status = running.datasets.get("edges").unwrap().status();
    assert_eq!(status.state, DatasetState::Error);
    let error = status.last_error.unwrap();
    assert!(error.contains("sqlite") && error.contains("NaN"), "{error}");
    let query = running.host.sql("SELECT count(*) FROM edges").await;
    assert!(
        query.is_err(),
        "a dataset that never loaded is not served as empty"
    );
    // The table exists in the engine (its first insert failed); once the source has values
    // SQLite stores, the next refresh loads it and it is served.
    write_parquet(&dir.path().join("edges.parquet"), &edge_rows(7, false)).await;
    running.datasets.refresh("edges").await.unwrap();
    assert_eq!(
        running.query("SELECT count(*) FROM edges").await,
        vec!["| 5        |"]
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_during_a_full_refresh_see_the_old_rows_or_the_new_never_a_mix_or_none() {
    let plugins = plugin_dir_with_both_engines();
    const ROWS: i64 = 200_000;
    let engines = ENGINES.iter().copied().chain([
        ("duckdb in memory", "engine: duckdb"),
        ("sqlite in memory", "engine: sqlite"),
    ]);
    for (engine, acceleration) in engines {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("big.parquet");
        let version =
            |v: i64| format!("SELECT value AS id, {v} AS version FROM generate_series(1, {ROWS})");
        write_parquet(&source, &version(1)).await;
        let yaml = format!(
            "datasets:\n  - from: file:big.parquet\n    name: big\n    acceleration:\n      {acceleration}\n"
        );
        let running = Arc::new(Running::start(plugins.path(), dir.path(), &yaml).await);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let running = Arc::clone(&running);
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let mut seen = Vec::new();
                for _ in 0..10_000 {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let batches = running
                        .host
                        .sql("SELECT count(*), min(version), max(version) FROM big")
                        .await
                        .unwrap();
                    seen.push(rows(&batches).join(""));
                }
                seen
            })
        };
        for v in [2, 3, 4] {
            write_parquet(&source, &version(v)).await;
            running.datasets.refresh("big").await.unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let seen = reader.await.unwrap();
        assert!(!seen.is_empty());
        for answer in &seen {
            let cells: Vec<&str> = answer
                .split('|')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect();
            assert_eq!(cells.len(), 3, "{answer}");
            assert_eq!(
                cells[0],
                ROWS.to_string(),
                "{engine}: a reader saw {answer}"
            );
            assert_eq!(cells[1], cells[2], "{engine}: a reader saw a mix: {answer}");
        }
        let running = Arc::into_inner(running).expect("reader finished");
        running.stop().await;
    }
}

/// Append: rows at the boundary timestamp that arrive later, rows arriving late within the
/// overlap, and rows re-delivered are neither lost nor doubled; a late row older than the
/// overlap is (by definition of the overlap) not read.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn append_refresh_reads_the_boundary_and_the_overlap_exactly_once() {
    let plugins = plugin_dir_with_both_engines();
    let stamp =
        |seconds: i64| format!("to_timestamp_micros({} * 1000000)", 1_790_000_000 + seconds);
    let batch = |rows: &[(i64, i64, &str)]| {
        let values: Vec<String> = rows
            .iter()
            .map(|(id, at, name)| {
                format!("SELECT {id} AS id, {} AS ts, '{name}' AS name", stamp(*at))
            })
            .collect();
        values.join(" UNION ALL ")
    };
    for key in ["", "\n      primary_key: id"] {
        for (engine, acceleration) in ENGINES {
            if engine == "arrow" && !key.is_empty() {
                continue; // the arrow engine has no keys (it refuses the option, and says so)
            }
            let dir = tempfile::tempdir().unwrap();
            let events = dir.path().join("events");
            std::fs::create_dir(&events).unwrap();
            write_parquet(
                &events.join("a.parquet"),
                &batch(&[(1, 1, "a"), (2, 5, "b"), (3, 10, "c"), (4, 10, "d")]),
            )
            .await;
            let yaml = format!(
                "datasets:\n  - from: file:events/*.parquet\n    name: events\n    time_column: ts\n    acceleration:\n      {acceleration}\n      refresh_mode: append\n      refresh_append_overlap: 3s{key}\n  - from: file:events/*.parquet\n    name: direct\n"
            );
            let running = Running::start(plugins.path(), dir.path(), &yaml).await;
            let all = "SELECT id, ts, name FROM {t} ORDER BY id";
            assert_eq!(
                running.query(&all.replace("{t}", "events")).await,
                running.query(&all.replace("{t}", "direct")).await
            );
            // A new file: another row at the boundary second (10), a late row within the
            // overlap (8), a re-delivered row (3, 10, 'c'), newer rows, and a late row older than
            // the overlap (2).
            write_parquet(
                &events.join("b.parquet"),
                &batch(&[
                    (5, 10, "e"),
                    (6, 8, "f"),
                    (3, 10, "c"),
                    (7, 11, "g"),
                    (8, 12, "h"),
                    (9, 2, "late"),
                ]),
            )
            .await;
            let refreshed = running.datasets.refresh("events").await.unwrap();
            // By whole rows, the table holds what the source holds, copies included (the
            // re-delivered row is in the source twice now, as a full refresh would load it);
            // by primary key, a key already held is not written again.
            let (written, distinct) = if key.is_empty() {
                (5, "")
            } else {
                (4, "DISTINCT")
            };
            assert_eq!(refreshed.rows_written, written, "{engine}{key}");
            let held = running.query(&all.replace("{t}", "events")).await;
            let expected = running
                .query(&format!(
                    "SELECT id, ts, name FROM (SELECT {distinct} id, ts, name FROM direct) \
                     WHERE name <> 'late' ORDER BY id"
                ))
                .await;
            assert_eq!(held, expected, "{engine}{key}");
            // Nothing new: nothing written.
            let again = running.datasets.refresh("events").await.unwrap();
            assert_eq!(again.rows_written, 0, "{engine}{key}");
            running.stop().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_source_keeps_the_rows_held_and_the_next_refresh_recovers() {
    let plugins = plugin_dir_with_both_engines();
    for (engine, acceleration) in ENGINES {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("items.csv");
        std::fs::write(&source, "id,name\n1,one\n2,two\n").unwrap();
        let yaml = format!(
            "datasets:\n  - from: file:items.csv\n    name: items\n    acceleration:\n      {acceleration}\n      refresh_retry_max_attempts: 2\n"
        );
        let running = Running::start(plugins.path(), dir.path(), &yaml).await;
        let before = running
            .query("SELECT id, name FROM items ORDER BY id")
            .await;
        assert_eq!(before.len(), 2);
        std::fs::remove_file(&source).unwrap();
        // The request is answered by the first failure; the retry goes on behind it.
        let error = running.datasets.refresh("items").await.unwrap_err();
        assert!(error.contains("items.csv"), "{engine}: {error}");
        let dataset = running.datasets.get("items").unwrap();
        for _ in 0..100 {
            if dataset.status().failures >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let status = dataset.status();
        assert_eq!(status.state, DatasetState::Error);
        assert_eq!(status.failures, 2, "{engine}: tried twice, then no more");
        assert!(status.last_error.unwrap().contains("items.csv"));
        assert_eq!(
            running
                .query("SELECT id, name FROM items ORDER BY id")
                .await,
            before,
            "{engine}: the rows held are still served"
        );
        let shown = running
            .query("SELECT status || ' ' || CAST(last_error IS NOT NULL AS VARCHAR) AS s FROM accel.datasets WHERE name = 'items'")
            .await;
        assert_eq!(shown.len(), 1);
        assert!(shown[0].contains("error true"), "{engine}: {shown:?}");
        std::fs::write(&source, "id,name\n1,one\n2,two\n3,three\n").unwrap();
        running.datasets.refresh("items").await.unwrap();
        assert_eq!(
            running.query("SELECT count(*) FROM items").await,
            vec!["| 3        |"]
        );
        let status = running.datasets.get("items").unwrap().status();
        assert_eq!(
            (status.state, status.last_error),
            (DatasetState::Ready, None)
        );
        running.stop().await;
    }
}

/// A dataset whose source is missing at start-up is not served; a request while the source is
/// down answers with the error at once (retries go on unlimited); once the source is back,
/// the next refresh loads it and serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dataset_whose_first_load_failed_is_served_after_a_later_refresh_succeeds() {
    let plugins = plugin_dir_with_both_engines();
    for (engine, acceleration) in ENGINES {
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!(
            "datasets:\n  - from: file:later.csv\n    name: later\n    acceleration:\n      {acceleration}\n"
        );
        let running = Running::start(plugins.path(), dir.path(), &yaml).await;
        assert!(running.host.sql("SELECT * FROM later").await.is_err());
        let request =
            tokio::time::timeout(Duration::from_secs(30), running.datasets.refresh("later"))
                .await
                .expect("a request is answered while the source is down");
        assert!(request.unwrap_err().contains("later.csv"), "{engine}");
        std::fs::write(dir.path().join("later.csv"), "id\n1\n2\n").unwrap();
        running.datasets.refresh("later").await.unwrap();
        assert_eq!(
            running.query("SELECT count(*) FROM later").await,
            vec!["| 2        |"],
            "{engine}"
        );
        running.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_file_dataset_is_served_from_its_file_after_a_restart_until_its_definition_changes() {
    let plugins = plugin_dir_with_both_engines();
    for (engine, acceleration) in &ENGINES[1..] {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("items.csv");
        std::fs::write(&source, "id,name\n1,one\n2,two\n").unwrap();
        let yaml = |sql: &str| {
            format!(
                "datasets:\n  - from: file:items.csv\n    name: items\n    acceleration:\n      {acceleration}\n      refresh_sql: {sql}\n"
            )
        };
        let first = Running::start(plugins.path(), dir.path(), &yaml("SELECT * FROM items")).await;
        assert_eq!(
            first.query("SELECT count(*) FROM items").await,
            vec!["| 2        |"]
        );
        first.stop().await;
        // The source changes while accel is down; the next start serves the file as it was.
        std::fs::write(&source, "id,name\n1,one\n2,two\n3,three\n").unwrap();
        let second = Running::start(plugins.path(), dir.path(), &yaml("SELECT * FROM items")).await;
        let status = second.datasets.get("items").unwrap().status();
        assert_eq!(status.refreshes, 0, "{engine}: not reloaded at start-up");
        assert_eq!((status.state, status.rows), (DatasetState::Ready, Some(2)));
        assert_eq!(
            second.query("SELECT count(*) FROM items").await,
            vec!["| 2        |"]
        );
        second.stop().await;
        // A changed refresh_sql is applied at the next start.
        let third = Running::start(
            plugins.path(),
            dir.path(),
            &yaml("SELECT * FROM items WHERE id > 1"),
        )
        .await;
        assert_eq!(third.datasets.get("items").unwrap().status().refreshes, 1);
        assert_eq!(
            third.query("SELECT id FROM items ORDER BY id").await,
            vec!["| 2  |", "| 3  |"],
            "{engine}"
        );
        third.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scheduled_and_requested_refreshes_run_once_per_request_batch() {
    let plugins = plugin_dir_with_both_engines();
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("items.csv");
    std::fs::write(&source, "id\n1\n").unwrap();
    let yaml = "datasets:\n  - from: file:items.csv\n    name: items\n    acceleration:\n      engine: duckdb\n      refresh_check_interval: 1s\n";
    let running = Running::start(plugins.path(), dir.path(), yaml).await;
    // The schedule picks up a changed source by itself.
    std::fs::write(&source, "id\n1\n2\n").unwrap();
    let mut picked_up = false;
    for _ in 0..100 {
        if running.query("SELECT count(*) FROM items").await == vec!["| 2        |"] {
            picked_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(picked_up, "a 1s schedule refreshed within 10s");
    // Eight requests at once: each is answered, by at most two refreshes (the one that may be
    // running when they arrive and one queued for all of them), scheduled ones aside.
    let dataset = Arc::clone(running.datasets.get("items").unwrap());
    let before = dataset.status().refreshes;
    let requests: Vec<_> = (0..8).map(|_| dataset.request_refresh().unwrap()).collect();
    for request in requests {
        request.await.unwrap().unwrap();
    }
    let after = dataset.status().refreshes;
    assert!(after > before, "the requests ran a refresh");
    assert!(
        after - before <= 3,
        "8 requests ran {} refreshes",
        after - before
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dataset_on_an_engine_not_loaded_is_an_error_naming_its_line_and_the_others_load() {
    let plugins = plugin_dir_with_both_engines();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("items.csv"), "id\n1\n").unwrap();
    let yaml = "datasets:\n  - from: file:items.csv\n    name: good\n    acceleration:\n      engine: sqlite\n  - from: file:items.csv\n    name: bad\n    acceleration:\n      engine: postgresql\n";
    let running = Running::start(plugins.path(), dir.path(), yaml).await;
    let bad = running.datasets.get("bad").unwrap().status();
    let error = bad.last_error.unwrap();
    assert!(error.contains("accel.yaml:9:7"), "{error}");
    assert!(error.contains("no engine named `postgresql`"), "{error}");
    assert!(
        error.contains("arrow, duckdb, sqlite") || error.contains("engines loaded"),
        "{error}"
    );
    assert_eq!(
        running.query("SELECT count(*) FROM good").await,
        vec!["| 1        |"]
    );
    running.stop().await;
}

fn config_dir(yaml: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("items.csv"), "id,name\n1,one\n2,two\n").unwrap();
    let path = dir.path().join("accel.yaml");
    std::fs::write(&path, yaml).unwrap();
    (dir, path)
}

#[test]
fn the_cli_queries_lists_and_refreshes_the_config_datasets() {
    let plugins = plugin_dir_with_both_engines();
    let yaml = format!(
        "plugin_dirs: [{}]\ndatasets:\n  - from: file:items.csv\n    name: items\n    acceleration:\n      engine: duckdb\n      mode: file\n",
        plugins.path().display()
    );
    let (dir, config) = config_dir(&yaml);
    let config = config.to_str().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let output = accel(&[
        "--config",
        config,
        "--data-dir",
        data,
        "sql",
        "SELECT sum(id) AS s FROM items",
        "--format",
        "csv",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "s\n3\n");
    let output = accel(&[
        "--config",
        config,
        "--data-dir",
        data,
        "datasets",
        "--format",
        "csv",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let listed = stdout(&output);
    assert!(listed.contains("items,file:"), "{listed}");
    assert!(
        listed.contains(",duckdb,0.1.0,file,full,ready,2,"),
        "{listed}"
    );
    std::fs::write(
        dir.path().join("items.csv"),
        "id,name\n1,one\n2,two\n3,three\n",
    )
    .unwrap();
    let output = accel(&["--config", config, "--data-dir", data, "refresh", "items"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("refreshed `items` (full refresh): 3 rows written, 3 rows held"),
        "{}",
        stdout(&output)
    );
    let output = accel(&["--config", config, "--data-dir", data, "refresh", "nope"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("no dataset named `nope`; datasets: items"),
        "{}",
        stderr(&output)
    );
    // A config that is not valid stops with its line.
    std::fs::write(
        dir.path().join("bad.yaml"),
        "datasets:\n  - from: file:items.csv\n    nam: x\n",
    )
    .unwrap();
    let bad = dir.path().join("bad.yaml");
    let output = accel(&["--config", bad.to_str().unwrap(), "sql", "SELECT 1"]);
    let message = stderr(&output);
    assert!(
        message.contains("bad.yaml:3:5: datasets[0].nam: unknown field `nam`"),
        "{message}"
    );
}

#[test]
fn serve_keeps_refreshing_until_sigterm_then_exits_cleanly() {
    let plugins = plugin_dir_with_both_engines();
    let yaml = format!(
        "plugin_dirs: [{}]\ndatasets:\n  - from: file:items.csv\n    name: items\n    acceleration:\n      engine: sqlite\n      mode: file\n      refresh_check_interval: 1s\n",
        plugins.path().display()
    );
    let (dir, config) = config_dir(&yaml);
    let data = dir.path().join("data");
    let child = std::process::Command::new(super::common::accel_binary())
        .args([
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "serve",
            "--flight",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
        ])
        .env_remove("ACCEL_PLUGIN_PATH")
        .env("ACCEL_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Two scheduled refreshes recorded beside the file show it serving.
    let record = data.join("items.sqlite.refresh.json");
    let mut refreshed_twice = false;
    let mut first_seen: Option<String> = None;
    for _ in 0..300 {
        if let Ok(text) = std::fs::read_to_string(&record) {
            match &first_seen {
                None => first_seen = Some(text),
                Some(first) if *first != text => {
                    refreshed_twice = true;
                    break;
                }
                Some(_) => {}
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(refreshed_twice, "serve refreshed on its schedule: {log}");
    assert!(output.status.success(), "exit 0 after SIGTERM: {log}");
    assert!(log.contains("SIGTERM"), "{log}");
    assert!(log.contains("stopping the refreshes"), "{log}");
}

/// Repeated full refreshes of a DuckDB file keep it bounded: each overwrite replaces a table,
/// and the space of the dropped one is reused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_full_refreshes_keep_a_duckdb_file_bounded() {
    let plugins = plugin_dir_with_both_engines();
    let dir = tempfile::tempdir().unwrap();
    write_parquet(
        &dir.path().join("rows.parquet"),
        "SELECT value AS id, value * 2 AS twice, 'row ' || value AS label FROM generate_series(1, 300000)",
    )
    .await;
    let yaml = "datasets:\n  - from: file:rows.parquet\n    name: rows\n    acceleration:\n      engine: duckdb\n      mode: file\n";
    let running = Running::start(plugins.path(), dir.path(), yaml).await;
    let file = dir.path().join("data").join("rows.duckdb");
    let size = || {
        let wal = std::fs::metadata(file.with_extension("duckdb.wal")).map_or(0, |m| m.len());
        std::fs::metadata(&file).unwrap().len() + wal
    };
    let after_first = size();
    let mut sizes = Vec::new();
    for _ in 0..20 {
        running.datasets.refresh("rows").await.unwrap();
        sizes.push(size());
    }
    assert_eq!(
        running.query("SELECT count(*) FROM rows").await,
        vec!["| 300000   |"]
    );
    running.stop().await;
    let after_all = std::fs::metadata(&file).unwrap().len();
    eprintln!(
        "duckdb file + wal after the first load: {after_first} bytes; after each of 20 full refreshes: {sizes:?}; after shutdown: {after_all}"
    );
    let largest = sizes.iter().copied().max().unwrap();
    assert!(
        largest <= 3 * after_first.max(1 << 20),
        "file grew from {after_first} to {largest} bytes over 20 refreshes: {sizes:?}"
    );
}
