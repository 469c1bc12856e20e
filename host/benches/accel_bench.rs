//! `scripts/bench`: accel's figures next to their baselines, measured in the same run, printed
//! as ratios (accel / baseline, lower is better) with the absolute times for context. Data is
//! generated deterministically by SQL (`generate_series`), `--rows N` sets the scale.
//!
//! Needs the release build of the DuckDB plugin (`cargo build --release --workspace`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use accel_host::{Host, HostOptions};
use datafusion::arrow::array::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

const RUNS: usize = 5;

fn main() {
    let rows = std::env::args()
        .skip_while(|a| a != "--rows")
        .nth(1)
        .map(|n| n.parse::<u64>().expect("--rows N"))
        .unwrap_or(10_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(rows));
}

/// Median of `RUNS` timed runs of `f`.
async fn median<F, Fut, T>(mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let start = Instant::now();
        std::hint::black_box(f().await);
        times.push(start.elapsed());
    }
    times.sort();
    times[RUNS / 2]
}

fn median_sync<T>(mut f: impl FnMut() -> T) -> Duration {
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let start = Instant::now();
        std::hint::black_box(f());
        times.push(start.elapsed());
    }
    times.sort();
    times[RUNS / 2]
}

struct Figure {
    name: &'static str,
    accel: Duration,
    baseline_name: &'static str,
    baseline: Duration,
    goal: &'static str,
}

fn plugin_library() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let release = exe.parent().and_then(Path::parent).unwrap();
    let library = release.join("libaccel_engine_duckdb.so");
    assert!(
        library.exists(),
        "{} missing: run `cargo build --release --workspace`",
        library.display()
    );
    library
}

async fn run(rows: u64) {
    let work = tempfile::tempdir().unwrap();
    let plugins = work.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(plugin_library(), plugins.join("libaccel_engine_duckdb.so")).unwrap();
    let options = HostOptions {
        plugin_dirs: vec![plugins.clone()],
        use_plugin_path_var: false,
        data_dir: work.path().join("data"),
        ..HostOptions::default()
    };
    let mut figures = Vec::new();

    // Start-up: discover + check + load one engine library, vs starting with no plugin dir.
    let startup = median_sync(|| Host::start(&options));
    let bare = median_sync(|| {
        Host::start(&HostOptions {
            plugin_dirs: vec![],
            ..options.clone()
        })
    });
    figures.push(Figure {
        name: "start-up, 1 engine library",
        accel: startup,
        baseline_name: "host without plugins",
        baseline: bare,
        goal: "<= 150 ms for 20",
    });

    let host = Host::start(&options);
    assert!(
        host.report.problems.is_empty(),
        "{:?}",
        host.report.problems
    );
    let generate = format!(
        "SELECT value AS i, CAST(value AS DOUBLE) * 0.5 AS f, concat('s', CAST(value % 1000 AS VARCHAR)) AS s \
         FROM generate_series(1, {rows})"
    );
    let columns = "(i BIGINT, f DOUBLE, s VARCHAR)";
    host.sql(&format!(
        "CREATE EXTERNAL TABLE a {columns} STORED AS arrow LOCATION ':memory:';
         CREATE EXTERNAL TABLE d {columns} STORED AS duckdb LOCATION ':memory:'"
    ))
    .await
    .unwrap();

    // Ingest into the DuckDB plugin vs DuckDB's own INSERT … SELECT of the same rows.
    let ingest_start = Instant::now();
    host.sql(&format!("INSERT INTO d {generate}"))
        .await
        .unwrap();
    let ingest = ingest_start.elapsed();
    host.sql(&format!("INSERT INTO a {generate}"))
        .await
        .unwrap();
    let duck = duckdb::Connection::open_in_memory().unwrap();
    let native_ingest_start = Instant::now();
    duck.execute_batch(&format!(
        "CREATE TABLE d (i BIGINT, f DOUBLE, s VARCHAR);
         INSERT INTO d SELECT range, range * 0.5, concat('s', range % 1000) FROM range(1, {})",
        rows + 1
    ))
    .unwrap();
    let native_ingest = native_ingest_start.elapsed();
    figures.push(Figure {
        name: "ingest into DuckDB plugin (INSERT … SELECT)",
        accel: ingest,
        baseline_name: "DuckDB's own INSERT … SELECT",
        baseline: native_ingest,
        goal: "<= 1.5x",
    });

    // Full scan of three columns through accel vs DuckDB's own Arrow export.
    let scan = median(|| async { host.sql("SELECT i, f, s FROM d").await.unwrap() }).await;
    let native_scan = median_sync(|| {
        let mut statement = duck.prepare("SELECT i, f, s FROM d").unwrap();
        statement
            .query_arrow([])
            .unwrap()
            .map(|b| b.num_rows())
            .sum::<usize>()
    });
    figures.push(Figure {
        name: "scan 3 columns, DuckDB plugin",
        accel: scan,
        baseline_name: "DuckDB Arrow export (duckdb crate)",
        baseline: native_scan,
        goal: "<= 1.25x",
    });

    // Aggregates: accel pulls rows out and DataFusion aggregates; DuckDB aggregates itself.
    let aggregate_sql = "SELECT sum(i), sum(f), count(s) FROM d";
    let aggregate = median(|| async { host.sql(aggregate_sql).await.unwrap() }).await;
    let native_aggregate = median_sync(|| {
        duck.query_row(aggregate_sql, [], |r| r.get::<_, i64>(2))
            .unwrap()
    });
    figures.push(Figure {
        name: "sum/sum/count, DuckDB plugin",
        accel: aggregate,
        baseline_name: "DuckDB executing the SQL itself",
        baseline: native_aggregate,
        goal: "<= 1.5x (issue 9)",
    });

    // The arrow built-in vs a plain DataFusion MemTable with the same batches.
    let batches: Vec<RecordBatch> = host.sql("SELECT * FROM a").await.unwrap();
    let plain = SessionContext::new();
    let table = MemTable::try_new(batches[0].schema(), vec![batches]).unwrap();
    plain.register_table("m", Arc::new(table)).unwrap();
    let group_sql = "SELECT s, sum(i), avg(f) FROM {} WHERE i % 7 = 0 GROUP BY s";
    let builtin = median(|| async { host.sql(&group_sql.replace("{}", "a")).await.unwrap() }).await;
    let memtable = median(|| async {
        plain
            .sql(&group_sql.replace("{}", "m"))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap()
    })
    .await;
    figures.push(Figure {
        name: "filter + GROUP BY, arrow built-in",
        accel: builtin,
        baseline_name: "DataFusion MemTable",
        baseline: memtable,
        goal: "<= 1.05x",
    });

    println!("\nrows: {rows}, median of {RUNS} runs (ingest: 1 run)\n");
    println!("| figure | accel | baseline | ratio | goal |");
    println!("|---|---:|---|---:|---|");
    for f in &figures {
        println!(
            "| {} | {:.1} ms | {}: {:.1} ms | {:.2}x | {} |",
            f.name,
            f.accel.as_secs_f64() * 1e3,
            f.baseline_name,
            f.baseline.as_secs_f64() * 1e3,
            f.accel.as_secs_f64() / f.baseline.as_secs_f64(),
            f.goal
        );
    }
}
