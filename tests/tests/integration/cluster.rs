//! Several machines on one: three `accel worker` processes (the real binary and the real
//! plugin libraries, on 127.0.0.1 ports they pick) hold shards of sharded datasets, and a
//! coordinator — in this process, built as `accel serve --workers` builds it, or the binary
//! itself — plans queries over them with datafusion-distributed. Every answer is compared with
//! DataFusion reading the same source files in this process.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use accel_host::cluster::planning::coordinator_session;
use accel_host::cluster::{ClusterState, Coordinator};
use accel_host::config::Config;
use accel_host::dataset::Datasets;
use accel_host::{Host, HostOptions};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::{ParquetReadOptions, SessionContext};

use super::common::{
    accel_binary, install, plugin_dir_with_both_engines, sqlite_library, sqlite_v2_library,
};
use super::datasets::{edge_rows, write_parquet};
use super::federation::{rows_as_text, run};
use super::serve::{Server, wait_ready};

/// A running `accel worker`, killed when dropped.
struct WorkerProcess {
    child: Child,
    address: String,
    log: Arc<Mutex<String>>,
}

impl WorkerProcess {
    /// Starts `accel worker --listen LISTEN` and waits until it says where it listens.
    fn start(plugins: &Path, data: &Path, listen: &str) -> Self {
        let mut child = Command::new(accel_binary())
            .args(["--plugin-dir", &plugins.display().to_string()])
            .args(["--data-dir", &data.display().to_string()])
            .args(["worker", "--listen", listen])
            .env_remove("ACCEL_PLUGIN_PATH")
            .env_remove("ACCEL_CONFIG")
            .env("ACCEL_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start accel worker");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (found, address) = std::sync::mpsc::channel();
        {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(address) = line
                        .split_whitespace()
                        .find_map(|w| w.strip_prefix("grpc://"))
                    {
                        let _ = found.send(address.to_owned());
                    }
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let Ok(address) = address.recv_timeout(Duration::from_secs(240)) else {
            let _ = child.kill();
            panic!(
                "accel worker did not listen within 4 minutes; its log:\n{}",
                log.lock().unwrap()
            );
        };
        Self {
            child,
            address,
            log,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGKILL: the worker dies as a crashed machine's would.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A coordinator in this process, as `accel serve --workers` starts one.
struct Coordinating {
    host: Arc<Host>,
    datasets: Arc<Datasets>,
    _coordinator: Coordinator,
}

impl Coordinating {
    async fn start(plugins: &Path, dir: &Path, yaml: &str, workers: &[&WorkerProcess]) -> Self {
        let path = dir.join("accel.yaml");
        std::fs::write(&path, yaml).unwrap();
        let config = Config::load(&path).expect("config reads");
        let addresses: Vec<String> = workers.iter().map(|w| w.address.clone()).collect();
        let cluster = ClusterState::new(&addresses).unwrap();
        let planning = Arc::clone(&cluster);
        let host = Arc::new(Host::start_with_session(
            &HostOptions {
                plugin_dirs: vec![plugins.to_owned()],
                use_plugin_path_var: false,
                data_dir: dir.join("coordinator-data"),
                ..HostOptions::default()
            },
            Some(Box::new(move |builder| {
                coordinator_session(builder, planning)
            })),
        ));
        let datasets = Datasets::start_coordinating(Arc::clone(&host), Some(&config)).unwrap();
        let coordinator = Coordinator::start(
            Arc::clone(&host),
            &datasets,
            cluster,
            Duration::from_secs(60),
        )
        .await
        .expect("every worker answers and matches");
        let loaded = datasets.wait_loaded(Duration::from_secs(240)).await;
        let statuses: Vec<String> = datasets
            .all()
            .iter()
            .map(|d| format!("{}: {:?}", d.name, d.status().last_error))
            .collect();
        assert!(loaded, "datasets loaded within 4 minutes: {statuses:?}");
        for dataset in datasets.all() {
            assert!(
                dataset.status().last_error.is_none(),
                "{}: {:?}; worker logs:\n{}",
                dataset.name,
                dataset.status().last_error,
                workers
                    .iter()
                    .map(|w| w.log())
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        Self {
            host,
            datasets,
            _coordinator: coordinator,
        }
    }

    async fn stop(self) {
        self.datasets.shutdown(Duration::from_secs(60)).await;
        assert!(self.host.shutdown().await.is_empty());
    }
}

/// `n` fresh workers sharing `plugins`, each with its own data directory under `dir`.
fn workers(plugins: &Path, dir: &Path, n: usize) -> Vec<WorkerProcess> {
    (0..n)
        .map(|i| {
            let data = dir.join(format!("worker{i}"));
            WorkerProcess::start(plugins, &data, "127.0.0.1:0")
        })
        .collect()
}

/// The edge rows of `edges` in four files (edge values, NaN and -0.0 included unless
/// `nan` is false) plus 3000 ordinary rows in a fifth.
async fn write_edges(dir: &Path, nan: bool) {
    std::fs::create_dir_all(dir).unwrap();
    for part in 0..4i64 {
        let select = format!(
            "SELECT id + {} AS id, v, f, s, ts FROM ({})",
            part * 10,
            edge_rows(part, nan)
        );
        write_parquet(&dir.join(format!("part-{part}.parquet")), &select).await;
    }
    write_parquet(
        &dir.join("part-bulk.parquet"),
        "SELECT value + 100 AS id, value % 7 AS v, CAST(value AS DOUBLE) / 8 AS f, \
         arrow_cast(concat('s', CAST(value % 13 AS VARCHAR)), 'Utf8') AS s, \
         to_timestamp_micros(value * 1000000000) AS ts FROM generate_series(1, 3000)",
    )
    .await;
}

/// The differential corpus over a table of edge rows: `{t}` is the table.
const EDGE_QUERIES: &[&str] = &[
    "SELECT id, v, f, s, ts FROM {t}",
    "SELECT count(*), count(v), count(f), count(s), count(ts) FROM {t}",
    "SELECT sum(v), min(v), max(v), min(f), max(f), min(s), max(s), min(ts), max(ts) FROM {t}",
    "SELECT sum(f), count(DISTINCT s), count(DISTINCT v) FROM {t}",
    "SELECT avg(id), avg(v) FROM {t} WHERE id > 100",
    "SELECT id FROM {t} WHERE f > 0",
    "SELECT id FROM {t} WHERE f = 0",
    "SELECT id FROM {t} WHERE f IS NULL OR f <> f",
    "SELECT id FROM {t} WHERE s = 'Straße' OR s = 'a\u{0}b' OR upper(s) = 'ÉCOLE'",
    "SELECT id, s FROM {t} WHERE s LIKE '%b' OR s = ''",
    "SELECT id FROM {t} WHERE v = -9223372036854775808 OR v = 9223372036854775807",
    "SELECT id FROM {t} WHERE ts < TIMESTAMP '0100-01-01 00:00:00' OR ts > TIMESTAMP '9000-01-01 00:00:00'",
    "SELECT s, count(*), min(f), max(v), sum(id) FROM {t} GROUP BY s",
    "SELECT v, count(*), max(s) FROM {t} GROUP BY v HAVING count(*) > 1",
    "SELECT s, count(*), count(f), sum(v), min(ts), max(id) FROM {t} WHERE id > 3 GROUP BY s",
    "SELECT count(*), count(s), sum(v), min(s), max(f) FROM {t} WHERE id < 0",
    "SELECT s, count(*) FROM {t} WHERE id < 0 GROUP BY s",
    "SELECT v % 3 AS m, sum(id), min(v) FROM {t} WHERE id > 3 GROUP BY v % 3",
    "SELECT id, f FROM {t} ORDER BY f DESC NULLS LAST, id LIMIT 7",
    "SELECT id, s FROM {t} ORDER BY s NULLS FIRST, id LIMIT 5",
    "SELECT id FROM {t} WHERE id BETWEEN 95 AND 120 ORDER BY id LIMIT 4",
    "SELECT a.id, b.s FROM {t} a JOIN {t} b ON a.id = b.id + 1 WHERE a.id < 60",
    "SELECT count(*) FROM {t} a JOIN edges_local b ON a.id = b.id WHERE b.v > 3",
    "SELECT s FROM {t} WHERE id IN (SELECT id FROM edges_local WHERE v = 0)",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_datasets_on_three_workers_answer_as_datafusion_on_the_same_files() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = plugin_dir_with_both_engines();
    write_edges(&dir.path().join("edges"), true).await;
    // SQLite refuses NaN and -0.0.
    write_edges(&dir.path().join("plain"), false).await;
    let workers = workers(plugins.path(), dir.path(), 3);
    let yaml = r#"datasets:
  - from: file:edges/
    name: edges_duckdb
    params: { file_format: parquet }
    acceleration: { engine: duckdb, mode: file, shards: 3, shard_by: file }
  - from: file:edges/
    name: edges_arrow
    params: { file_format: parquet }
    acceleration: { engine: arrow, shards: 3, shard_by: hash(s) }
  - from: file:plain/
    name: plain_sqlite
    params: { file_format: parquet }
    acceleration: { engine: sqlite, shards: 2, shard_by: hash(id) }
  - from: file:edges/
    name: edges_local
    params: { file_format: parquet }
    acceleration: { engine: duckdb }
"#;
    let refs: Vec<&WorkerProcess> = workers.iter().collect();
    let coordinator = Coordinating::start(plugins.path(), dir.path(), yaml, &refs).await;
    // DataFusion on the files themselves.
    let reference = SessionContext::new();
    for (name, files) in [
        ("edges_duckdb", "edges"),
        ("edges_arrow", "edges"),
        ("plain_sqlite", "plain"),
        ("edges_local", "edges"),
    ] {
        reference
            .register_parquet(
                name,
                dir.path().join(files).display().to_string(),
                ParquetReadOptions::default(),
            )
            .await
            .unwrap();
    }
    let mut problems = Vec::new();
    for table in ["edges_duckdb", "edges_arrow", "plain_sqlite"] {
        for query in EDGE_QUERIES {
            let sql = query.replace("{t}", table);
            let ordered = sql.contains("ORDER BY");
            let expected = reference_rows(&reference, &sql, ordered).await;
            let found = run(&coordinator.host, &sql, ordered).await;
            if found != expected {
                problems.push(format!(
                    "{sql}\n  expected {expected:?}\n  found    {found:?}"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));

    // Every shard holds its part and no row twice: the rows add up per dataset, and the
    // shards of a file-sharded dataset are the files' rows.
    let total = run(
        &coordinator.host,
        "SELECT count(*) FROM edges_duckdb",
        false,
    )
    .await;
    assert_eq!(total, Ok(vec!["|3020|".to_owned()]));

    // EXPLAIN names the worker of every shard, and the fragment each runs.
    let plan = super::federation::explain(
        &coordinator.host,
        "SELECT s, count(*) FROM edges_duckdb WHERE v > 1 GROUP BY s",
    )
    .await;
    for worker in &workers {
        assert!(plan.contains(&worker.url()), "{}\n{plan}", worker.url());
    }
    assert!(
        plan.contains("NetworkCoalesceExec") && plan.contains("mode=Partial"),
        "partial aggregates run on the workers:\n{plan}"
    );
    // Aggregates that split into partial and final ones run their partial part inside each
    // shard's engine: one DuckDB statement per shard (the workers' metrics come back).
    let query = "SELECT v, count(*), sum(id), max(s) FROM edges_duckdb WHERE id > 3 GROUP BY v";
    let plan = super::federation::explain(&coordinator.host, query).await;
    assert!(plan.contains("in each shard's engine: Aggregate"), "{plan}");
    let analyzed = super::common::rows(
        &coordinator
            .host
            .sql(&format!("EXPLAIN ANALYZE {query}"))
            .await
            .unwrap(),
    )
    .join("\n");
    assert!(analyzed.contains("engine_statements=3"), "{analyzed}");
    // A query without a sharded dataset is not distributed.
    let local =
        super::federation::explain(&coordinator.host, "SELECT count(*) FROM edges_local").await;
    assert!(!local.contains("Network"), "{local}");

    // A refresh asked of the coordinator refreshes every shard on its worker.
    write_parquet(
        &dir.path().join("plain/part-bulk.parquet"),
        "SELECT value + 100 AS id, value AS v, 0.25 AS f, arrow_cast('again', 'Utf8') AS s, \
         to_timestamp_micros(0) AS ts FROM generate_series(1, 10)",
    )
    .await;
    let refreshed = coordinator.datasets.refresh("plain_sqlite").await.unwrap();
    assert_eq!((refreshed.rows_written, refreshed.rows_held), (30, 30));
    let sql = "SELECT id, v, f, s, ts FROM plain_sqlite";
    let now = SessionContext::new();
    now.register_parquet(
        "plain_sqlite",
        dir.path().join("plain").display().to_string(),
        ParquetReadOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        run(&coordinator.host, sql, false).await,
        reference_rows(&now, sql, false).await
    );
    coordinator.stop().await;
}

async fn reference_rows(
    ctx: &SessionContext,
    sql: &str,
    ordered: bool,
) -> Result<Vec<String>, String> {
    let batches = ctx
        .sql(sql)
        .await
        .map_err(|e| e.to_string())?
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    rows_as_text(&batches, ordered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_queries_over_sharded_tables_answer_as_datafusion() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = plugin_dir_with_both_engines();
    let reference = SessionContext::new();
    for table in accel_tpch::tables(0.01, 2048).unwrap() {
        // lineitem in four files (sharded by file), the others in one.
        let folder = dir.path().join(table.name);
        std::fs::create_dir_all(&folder).unwrap();
        let parts = if table.name == "lineitem" { 4 } else { 1 };
        let per_part = table.batches.len().div_ceil(parts);
        for (part, batches) in table.batches.chunks(per_part.max(1)).enumerate() {
            let file = std::fs::File::create(folder.join(format!("{part}.parquet"))).unwrap();
            let mut writer = ArrowWriter::try_new(file, table.schema.clone(), None).unwrap();
            for batch in batches {
                writer.write(batch).unwrap();
            }
            writer.close().unwrap();
        }
        reference
            .register_parquet(
                table.name,
                folder.display().to_string(),
                ParquetReadOptions::default(),
            )
            .await
            .unwrap();
    }
    let acceleration = |name: &str| match name {
        "lineitem" => "{ engine: duckdb, mode: file, shards: 3, shard_by: file }",
        "orders" => "{ engine: sqlite, shards: 3, shard_by: hash(o_orderkey) }",
        "customer" => "{ engine: arrow, shards: 2, shard_by: hash(c_custkey) }",
        "partsupp" => "{ engine: duckdb, shards: 3, shard_by: hash(ps_partkey) }",
        _ => "{ engine: duckdb }",
    };
    let mut yaml = "datasets:\n".to_owned();
    for name in accel_tpch::TABLES {
        yaml.push_str(&format!(
            "  - from: file:{name}/\n    name: {name}\n    params: {{ file_format: parquet }}\n    acceleration: {}\n",
            acceleration(name)
        ));
    }
    let workers = workers(plugins.path(), dir.path(), 3);
    let refs: Vec<&WorkerProcess> = workers.iter().collect();
    let coordinator = Coordinating::start(plugins.path(), dir.path(), &yaml, &refs).await;
    let mut problems = Vec::new();
    for (name, query) in accel_tpch::QUERIES {
        let ordered = query.contains("order by");
        let expected = reference_rows(&reference, query, ordered).await;
        if let Err(error) = &expected {
            problems.push(format!("{name} in DataFusion: {error}"));
        }
        let found = run(&coordinator.host, query, ordered).await;
        if found != expected {
            problems.push(format!(
                "{name}:\n  expected {expected:?}\n  found    {found:?}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_worker_fails_only_its_shards_and_after_a_restart_serves_its_files_unreloaded() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = plugin_dir_with_both_engines();
    write_edges(&dir.path().join("edges"), false).await;
    let mut workers = workers(plugins.path(), dir.path(), 3);
    // `wide` has a shard on every worker (one on the third); `narrow` only on the first two.
    let yaml = r#"datasets:
  - from: file:edges/
    name: wide
    params: { file_format: parquet }
    acceleration: { engine: duckdb, mode: file, shards: 3, shard_by: hash(id) }
  - from: file:edges/
    name: narrow
    params: { file_format: parquet }
    acceleration: { engine: sqlite, mode: file, shards: 2, shard_by: file }
  - from: file:edges/
    name: edges_local
    params: { file_format: parquet }
    acceleration: { engine: duckdb }
"#;
    let refs: Vec<&WorkerProcess> = workers.iter().collect();
    let coordinator = Coordinating::start(plugins.path(), dir.path(), yaml, &refs).await;
    let summary = "SELECT count(*), sum(id), min(s), max(v) FROM {t}";
    let before = |t: &str| summary.replace("{t}", t);
    let wide = run(&coordinator.host, &before("wide"), false)
        .await
        .unwrap();
    let narrow = run(&coordinator.host, &before("narrow"), false)
        .await
        .unwrap();
    let local = run(&coordinator.host, &before("edges_local"), false)
        .await
        .unwrap();
    assert_eq!(wide, local);
    assert_eq!(narrow, local);

    let third = workers[2].url();
    let third_address = workers[2].address.clone();
    workers[2].kill();
    let failed = coordinator
        .host
        .sql(&before("wide"))
        .await
        .expect_err("a query reading a shard of the dead worker fails");
    assert!(
        failed.to_string().contains(&third),
        "the error names the dead worker {third}: {failed}"
    );
    // The others keep serving.
    assert_eq!(
        run(&coordinator.host, &before("narrow"), false).await,
        Ok(narrow.clone())
    );
    assert_eq!(
        run(&coordinator.host, &before("edges_local"), false).await,
        Ok(local.clone())
    );
    // A point query on the hashed column reads only its value's shard: one on a live worker
    // still answers, as a plain scan and as an aggregate.
    let live = (101..200i64)
        .find(|id| {
            accel_host::source::shard::shard_of_value(
                &datafusion::common::ScalarValue::Int64(Some(*id)),
                3,
            )
            .unwrap()
                != 2
        })
        .unwrap();
    for query in [
        format!("SELECT id, v, s FROM {{t}} WHERE id = {live}"),
        format!("SELECT count(*), max(s) FROM {{t}} WHERE id = {live}"),
    ] {
        let plan =
            super::federation::explain(&coordinator.host, &query.replace("{t}", "wide")).await;
        assert_eq!(
            plan.matches(" on http://").count(),
            1,
            "one shard read:\n{plan}"
        );
        assert_eq!(
            run(&coordinator.host, &query.replace("{t}", "wide"), false).await,
            run(
                &coordinator.host,
                &query.replace("{t}", "edges_local"),
                false
            )
            .await,
            "{query}"
        );
    }
    // The coordinator's status says which worker is down.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = coordinator.datasets.get("wide").unwrap().status();
        if status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains(&third))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "status names the worker: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // New source rows: a shard loaded again would show them.
    write_parquet(
        &dir.path().join("edges/part-bulk.parquet"),
        "SELECT value + 100 AS id, 99 AS v, 0.5 AS f, arrow_cast('new', 'Utf8') AS s, \
         to_timestamp_micros(0) AS ts FROM generate_series(1, 3000)",
    )
    .await;
    let restarted =
        WorkerProcess::start(plugins.path(), &dir.path().join("worker2"), &third_address);
    let deadline = Instant::now() + Duration::from_secs(120);
    let answer = loop {
        match run(&coordinator.host, &before("wide"), false).await {
            Ok(answer) => break answer,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "the restarted worker serves again within 2 minutes: {e}\n{}",
                    restarted.log()
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    assert_eq!(
        answer, wide,
        "its file-mode shard is served as it was, not reloaded"
    );
    assert!(
        restarted
            .log()
            .contains("served from its file as last refreshed"),
        "{}",
        restarted.log()
    );
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_another_engine_version_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let ours = tempfile::tempdir().unwrap();
    install(&sqlite_library(), ours.path());
    let theirs = tempfile::tempdir().unwrap();
    install(&sqlite_v2_library(), theirs.path());
    write_edges(&dir.path().join("edges"), false).await;
    let worker = WorkerProcess::start(theirs.path(), &dir.path().join("worker"), "127.0.0.1:0");
    std::fs::write(
        dir.path().join("accel.yaml"),
        "datasets:\n  - from: file:edges/\n    name: edges\n    params: { file_format: parquet }\n    \
         acceleration: { engine: sqlite, shards: 2, shard_by: hash(id) }\n",
    )
    .unwrap();
    let output = Command::new(accel_binary())
        .args(["--plugin-dir", &ours.path().display().to_string()])
        .args([
            "--config",
            &dir.path().join("accel.yaml").display().to_string(),
        ])
        .args(["serve", "--flight", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(["--workers", &worker.address, "--worker-wait", "60"])
        .env_remove("ACCEL_PLUGIN_PATH")
        .output()
        .expect("run accel serve");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "refused: {stderr}");
    assert!(
        stderr.contains(&format!("worker {} is refused", worker.url()))
            && stderr.contains("`sqlite` is version 0.2.0 but the coordinator's is 0.1.0"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accel_serve_with_workers_answers_http_clients_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = plugin_dir_with_both_engines();
    write_edges(&dir.path().join("edges"), true).await;
    let workers = workers(plugins.path(), dir.path(), 2);
    std::fs::write(
        dir.path().join("accel.yaml"),
        r#"datasets:
  - from: file:edges/
    name: edges
    params: { file_format: parquet }
    acceleration: { engine: duckdb, shards: 3, shard_by: file }
"#,
    )
    .unwrap();
    let addresses: Vec<String> = workers.iter().map(|w| w.address.clone()).collect();
    let plugin_dir = plugins.path().display().to_string();
    let config = dir.path().join("accel.yaml").display().to_string();
    let data_dir = dir.path().join("coordinator").display().to_string();
    let mut server = Server::start(
        &[
            "--plugin-dir",
            &plugin_dir,
            "--config",
            &config,
            "--data-dir",
            &data_dir,
        ],
        &["--workers", &addresses.join(",")],
    );
    wait_ready(&server).await;
    let client = reqwest::Client::new();
    let answer: serde_json::Value = client
        .post(server.url("/v1/sql"))
        .body("SELECT count(*) AS n, sum(id) AS ids, count(DISTINCT s) AS texts FROM edges")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reference = SessionContext::new();
    reference
        .register_parquet(
            "edges",
            dir.path().join("edges").display().to_string(),
            ParquetReadOptions::default(),
        )
        .await
        .unwrap();
    let expected = reference_rows(
        &reference,
        "SELECT count(*) AS n, sum(id) AS ids, count(DISTINCT s) AS texts FROM edges",
        false,
    )
    .await
    .unwrap();
    let row = &answer[0];
    assert_eq!(
        vec![format!("|{}|{}|{}|", row["n"], row["ids"], row["texts"])],
        expected,
        "{answer}"
    );
    // The status of a sharded dataset: its shards' rows summed, the engine they run.
    let datasets: serde_json::Value = client
        .get(server.url("/v1/datasets?status=true"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let edges = &datasets[0];
    assert_eq!(
        (
            edges["rows"].as_u64(),
            edges["status"].as_str(),
            edges["engine_version"].as_str()
        ),
        (Some(3020), Some("ready"), Some("0.1.0")),
        "{datasets}"
    );
    server.terminate();
    let status = server.wait(Duration::from_secs(60));
    assert!(status.success(), "{status:?}; log:\n{}", server.log());
}
