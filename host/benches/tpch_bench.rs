//! `scripts/bench` (TPC-H part): the 22 TPC-H queries at scale factor `--scale S` (default 1)
//! through accel on DuckDB plugin tables — all in one database file, so joins can run in
//! DuckDB — next to DuckDB executing the same query text itself on the same rows (the
//! `duckdb` crate: the DuckDB the plugin bundles), medians of interleaved runs. Prints a
//! Markdown table: per query the two times, the ratio, and whether the query ran whole in
//! DuckDB (else the first reason EXPLAIN gives for what stayed in DataFusion); then the totals.
//!
//! Needs the release build of the DuckDB plugin (`cargo build --release --workspace`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use accel_engine_duckdb::arrow_bridge::to_duckdb;
use accel_host::{Host, HostOptions};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::datasource::MemTable;

const RUNS: usize = 3;

fn main() {
    let scale = std::env::args()
        .skip_while(|a| a != "--scale")
        .nth(1)
        .map(|n| n.parse::<f64>().expect("--scale S"))
        .unwrap_or(1.0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(scale));
}

fn duckdb_plugin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let release = exe.parent().and_then(Path::parent).unwrap();
    let library = release.join("libaccel_engine_duckdb_plugin.so");
    assert!(
        library.exists(),
        "{} missing: run `cargo build --release --workspace`",
        library.display()
    );
    library
}

async fn run(scale: f64) {
    let work = tempfile::tempdir().unwrap();
    let plugins = tempfile::tempdir().unwrap();
    let library = duckdb_plugin();
    std::fs::copy(&library, plugins.path().join(library.file_name().unwrap())).unwrap();
    let host = Host::start(&HostOptions {
        plugin_dirs: vec![plugins.path().to_owned()],
        use_plugin_path_var: false,
        data_dir: work.path().to_owned(),
        ..HostOptions::default()
    });
    let database = work.path().join("tpch.duckdb");
    let duck = duckdb::Connection::open(work.path().join("baseline.duckdb")).unwrap();

    let generate = Instant::now();
    let tables = accel_tpch::tables(scale, 8192).unwrap();
    eprintln!(
        "generated TPC-H SF {scale} in {:.1?} ({} lineitems)",
        generate.elapsed(),
        tables.last().map(|t| t.rows()).unwrap_or(0)
    );
    for table in tables {
        let name = table.name;
        let columns = table.column_definitions();
        let load = Instant::now();
        let staged = format!("{name}_staged");
        let memory =
            MemTable::try_new(Arc::clone(&table.schema), vec![table.batches.clone()]).unwrap();
        host.context()
            .register_table(staged.as_str(), Arc::new(memory))
            .unwrap();
        host.sql(&format!(
            "CREATE EXTERNAL TABLE {name} {columns} STORED AS duckdb LOCATION '{}';
             INSERT INTO {name} SELECT * FROM {staged}",
            database.display()
        ))
        .await
        .unwrap();
        host.context().deregister_table(staged.as_str()).unwrap();
        let accel_load = load.elapsed();
        let load = Instant::now();
        // the column definitions are DataFusion's SQL; DuckDB spells these types the same
        duck.execute_batch(&format!("CREATE TABLE {name} {columns}"))
            .unwrap();
        duck.execute_batch("BEGIN TRANSACTION").unwrap();
        {
            let mut appender = duck.appender(name).unwrap();
            for batch in &table.batches {
                appender
                    .append_record_batch(to_duckdb(batch.clone()).unwrap())
                    .unwrap();
            }
            appender.flush().unwrap();
        }
        duck.execute_batch("COMMIT").unwrap();
        eprintln!(
            "loaded {name} ({} rows): accel {accel_load:.1?}, DuckDB {:.1?}",
            table.rows(),
            load.elapsed()
        );
    }

    println!("| query | accel (DuckDB plugin) | DuckDB itself | ratio | run whole in DuckDB |");
    println!("|---|---:|---:|---:|---|");
    let (mut accel_total, mut duck_total) = (Duration::ZERO, Duration::ZERO);
    let mut whole = 0;
    for (name, sql) in accel_tpch::QUERIES {
        let plan = host.sql(&format!("EXPLAIN {sql}")).await.unwrap();
        let plan = pretty_format_batches(&plan).unwrap().to_string();
        let statements = plan.matches("EngineQueryExec:").count();
        let kept = plan
            .lines()
            .find_map(|l| l.split_once("KeptInDataFusion: ").map(|(_, r)| r))
            .map(|r| r.trim_end_matches(['|', ' ']).to_owned());
        let runs_whole = statements == 1 && kept.is_none() && !has_datafusion_work(&plan);
        let how = if runs_whole {
            whole += 1;
            "yes".to_owned()
        } else {
            let reason = kept.unwrap_or_else(|| "plan shape".to_owned());
            format!("no ({statements} statements): {}", truncate(&reason, 90))
        };
        let (mut accel_times, mut duck_times) = (Vec::new(), Vec::new());
        // one warm-up run each, then interleaved
        for run in 0..=RUNS {
            let start = Instant::now();
            std::hint::black_box(host.sql(sql).await.unwrap());
            let accel = start.elapsed();
            let start = Instant::now();
            let rows: usize = duck
                .prepare(sql)
                .unwrap()
                .query_arrow([])
                .unwrap()
                .map(|b| b.num_rows())
                .sum();
            std::hint::black_box(rows);
            let native = start.elapsed();
            if run > 0 {
                accel_times.push(accel);
                duck_times.push(native);
            }
        }
        accel_times.sort();
        duck_times.sort();
        let (accel, native) = (accel_times[RUNS / 2], duck_times[RUNS / 2]);
        accel_total += accel;
        duck_total += native;
        println!(
            "| {name} | {:.1} ms | {:.1} ms | {:.2}x | {how} |",
            accel.as_secs_f64() * 1e3,
            native.as_secs_f64() * 1e3,
            accel.as_secs_f64() / native.as_secs_f64()
        );
    }
    println!(
        "| total | {:.1} ms | {:.1} ms | {:.2}x | {whole} of 22 whole |",
        accel_total.as_secs_f64() * 1e3,
        duck_total.as_secs_f64() * 1e3,
        accel_total.as_secs_f64() / duck_total.as_secs_f64()
    );
    host.shutdown().await;
}

fn has_datafusion_work(plan: &str) -> bool {
    [
        "AggregateExec",
        "HashJoinExec",
        "NestedLoopJoinExec",
        "SortMergeJoin",
        "SortExec",
        "UnionExec",
        "FilterExec",
    ]
    .iter()
    .any(|operator| plan.contains(operator))
}

fn truncate(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}
