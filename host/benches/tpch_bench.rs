//! `scripts/bench` (TPC-H part): the 22 TPC-H queries at scale factor `--scale S` (default 1)
//! through accel on DuckDB plugin tables — all in one database file, so joins can run in
//! DuckDB — next to DuckDB executing the same query text itself on the same rows (the
//! `duckdb` crate: the DuckDB the plugin bundles), medians of interleaved runs. Prints a
//! Markdown table: per query the two times, the ratio, and whether the query ran whole in
//! DuckDB (else the first reason EXPLAIN gives for what stayed in DataFusion); then the totals.
//! For the queries that run whole, a second table splits accel's time: planning in the host
//! (parse, optimise, write the statement, physical plan), DuckDB running accel's statement
//! itself, and what is left (the hop into the plugin and the rows crossing back) — so the
//! cost of the statement's form and the host's fixed cost per query show apart.
//!
//! Needs the release build of the DuckDB plugin (`cargo build --release --workspace`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use accel_engine_duckdb::arrow_bridge::to_duckdb;
use accel_host::{Host, HostOptions};
use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::datasource::MemTable;

/// `--scale S` (default 1), `--runs N` timed runs per query (default 3), `--query qNN` only
/// that query (e.g. many runs of one query under `perf record`).
struct Options {
    scale: f64,
    runs: usize,
    only: Option<String>,
}

fn main() {
    let argument = |name: &str| std::env::args().skip_while(|a| a != name).nth(1);
    let options = Options {
        scale: argument("--scale").map_or(1.0, |n| n.parse().expect("--scale S")),
        runs: argument("--runs").map_or(3, |n| n.parse().expect("--runs N")),
        only: argument("--query"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(options));
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

async fn run(options: Options) {
    let Options { scale, runs, only } = options;
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
    let mut splits = Vec::new();
    for (name, sql) in accel_tpch::QUERIES {
        if only.as_ref().is_some_and(|only| only != name) {
            continue;
        }
        let plan = host.sql(&format!("EXPLAIN {sql}")).await.unwrap();
        let statement = engine_statement(&plan);
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
        let statement = statement.filter(|_| runs_whole);
        let (mut accel_times, mut duck_times) = (Vec::new(), Vec::new());
        let (mut planning_times, mut statement_times) = (Vec::new(), Vec::new());
        // one warm-up run each, then interleaved
        for run in 0..=runs {
            let start = Instant::now();
            std::hint::black_box(host.sql(sql).await.unwrap());
            let accel = start.elapsed();
            let native = time_in_duckdb(&duck, sql);
            if let Some(statement) = &statement {
                let start = Instant::now();
                let frame = host.context().sql(sql).await.unwrap();
                std::hint::black_box(frame.create_physical_plan().await.unwrap());
                let planning = start.elapsed();
                let statement = time_in_duckdb(&duck, statement);
                if run > 0 {
                    planning_times.push(planning);
                    statement_times.push(statement);
                }
            }
            if run > 0 {
                accel_times.push(accel);
                duck_times.push(native);
            }
        }
        let (accel, native) = (median(accel_times), median(duck_times));
        if statement.is_some() {
            let (planning, statement) = (median(planning_times), median(statement_times));
            splits.push((name.to_string(), [accel, planning, statement, native]));
        }
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
    println!();
    println!(
        "| query (run whole) | accel | planning in the host | DuckDB on accel's statement | \
         rest (hop, rows back) | statement vs DuckDB's own plan |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let row = |name: &str, [accel, planning, statement, native]: [Duration; 4]| {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "| {name} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.2}x |",
            ms(accel),
            ms(planning),
            ms(statement),
            ms(accel.saturating_sub(planning + statement)),
            statement.as_secs_f64() / native.as_secs_f64()
        );
    };
    let mut sums = [Duration::ZERO; 4];
    for (name, times) in splits {
        for (sum, part) in sums.iter_mut().zip(times) {
            *sum += part;
        }
        row(&name, times);
    }
    row("total", sums);
    host.shutdown().await;
}

/// The time DuckDB takes to run `sql` and hand over every row as Arrow.
fn time_in_duckdb(duck: &duckdb::Connection, sql: &str) -> Duration {
    let start = Instant::now();
    let rows: usize = duck
        .prepare(sql)
        .unwrap()
        .query_arrow([])
        .unwrap()
        .map(|b| b.num_rows())
        .sum();
    std::hint::black_box(rows);
    start.elapsed()
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// The SQL of the first engine statement in an EXPLAIN result.
fn engine_statement(explain: &[RecordBatch]) -> Option<String> {
    explain.iter().find_map(|batch| {
        let plans = cast(batch.column(1), &DataType::Utf8).ok()?;
        let plans = plans.as_any().downcast_ref::<StringArray>()?;
        plans.iter().flatten().find_map(|plan| {
            plan.lines()
                .find_map(|line| line.split_once("EngineQueryExec: ")?.1.split_once(" sql="))
                .map(|(_, sql)| sql.to_owned())
        })
    })
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
