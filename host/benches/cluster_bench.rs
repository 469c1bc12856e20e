//! `scripts/bench` (distribution part): the 22 TPC-H queries at scale factor `--scale S`
//! (default 1) on one node and on a coordinator with three workers, all in this process on
//! 127.0.0.1 (each worker a host of its own with its own copy of the DuckDB plugin, serving
//! over gRPC as `accel worker` does). These machines have 2 cores: the point is what
//! distribution costs, not a speed-up.
//!
//! One node holds the eight tables in DuckDB (memory) and is measured twice: as users run it
//! (subplans run whole in DuckDB) and with `accel.federation` off (DataFusion over engine
//! scans — the way the coordinator executes, so the ratio to it is the cost of distribution
//! alone). The cluster shards lineitem (by file), orders, customer, part and partsupp (by a
//! key's hash) three ways in DuckDB; nation, region and supplier stay on the coordinator.
//! Every answer is compared with the single node's. Medians of interleaved runs.
//!
//! Then the per-shard costs behind the scale-out estimate: a full scan-and-aggregate of
//! lineitem on the single node, through the coordinator, and on each worker's own shard.
//!
//! Needs the release build of the DuckDB plugin (`cargo build --release --workspace`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use accel_host::cluster::planning::coordinator_session;
use accel_host::cluster::{ClusterState, Coordinator, WorkerShards};
use accel_host::config::Config;
use accel_host::dataset::Datasets;
use accel_host::{Host, HostOptions};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::parquet::arrow::ArrowWriter;

const WORKERS: usize = 3;

fn main() {
    let argument = |name: &str| std::env::args().skip_while(|a| a != name).nth(1);
    let scale: f64 = argument("--scale").map_or(1.0, |n| n.parse().expect("--scale S"));
    let runs: usize = argument("--runs").map_or(3, |n| n.parse().expect("--runs N"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(scale, runs));
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

fn options(plugins: &Path, data: &Path) -> HostOptions {
    HostOptions {
        plugin_dirs: vec![plugins.to_owned()],
        use_plugin_path_var: false,
        data_dir: data.to_owned(),
        ..HostOptions::default()
    }
}

/// How the cluster holds each table.
fn cluster_acceleration(table: &str) -> &'static str {
    match table {
        "lineitem" => "{ engine: duckdb, shards: 3, shard_by: file }",
        "orders" => "{ engine: duckdb, shards: 3, shard_by: hash(o_orderkey) }",
        "customer" => "{ engine: duckdb, shards: 3, shard_by: hash(c_custkey) }",
        "part" => "{ engine: duckdb, shards: 3, shard_by: hash(p_partkey) }",
        "partsupp" => "{ engine: duckdb, shards: 3, shard_by: hash(ps_partkey) }",
        _ => "{ engine: duckdb }",
    }
}

fn config(dir: &Path, name: &str, acceleration: impl Fn(&str) -> &'static str) -> Config {
    let mut yaml = "datasets:\n".to_owned();
    for table in accel_tpch::TABLES {
        yaml.push_str(&format!(
            "  - from: file:{}/\n    name: {table}\n    params: {{ file_format: parquet }}\n    acceleration: {}\n",
            dir.join(table).display(),
            acceleration(table)
        ));
    }
    let path = dir.join(name);
    std::fs::write(&path, yaml).unwrap();
    Config::load(&path).unwrap()
}

async fn run(scale: f64, runs: usize) {
    let work = tempfile::tempdir().unwrap();
    let plugins = tempfile::tempdir().unwrap();
    let library = duckdb_plugin();
    std::fs::copy(&library, plugins.path().join(library.file_name().unwrap())).unwrap();

    let started = Instant::now();
    for table in accel_tpch::tables(scale, 8192).unwrap() {
        let folder = work.path().join(table.name);
        std::fs::create_dir_all(&folder).unwrap();
        let files = if table.name == "lineitem" { 6 } else { 1 };
        let per_file = table.batches.len().div_ceil(files).max(1);
        for (part, batches) in table.batches.chunks(per_file).enumerate() {
            let file = std::fs::File::create(folder.join(format!("{part}.parquet"))).unwrap();
            let mut writer = ArrowWriter::try_new(file, table.schema.clone(), None).unwrap();
            for batch in batches {
                writer.write(batch).unwrap();
            }
            writer.close().unwrap();
        }
    }
    eprintln!("TPC-H SF {scale} written in {:.1?}", started.elapsed());

    // One node.
    let single = Arc::new(Host::start(&options(
        plugins.path(),
        &work.path().join("single"),
    )));
    let single_config = config(work.path(), "single.yaml", |_| "{ engine: duckdb }");
    let single_datasets = Datasets::start(Arc::clone(&single), Some(&single_config)).unwrap();
    assert!(single_datasets.wait_loaded(Duration::from_secs(3600)).await);

    // Three workers and a coordinator.
    let mut addresses = Vec::new();
    let mut worker_shards = Vec::new();
    for i in 0..WORKERS {
        let host = Arc::new(Host::start(&options(
            plugins.path(),
            &work.path().join(format!("worker{i}")),
        )));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        addresses.push(listener.local_addr().unwrap().to_string());
        let shards = WorkerShards::new(Arc::clone(&host));
        worker_shards.push((host, Arc::clone(&shards)));
        tokio::spawn(accel_host::cluster::worker::serve(
            shards,
            listener,
            std::future::pending(),
        ));
    }
    let cluster = ClusterState::new(&addresses).unwrap();
    let planning = Arc::clone(&cluster);
    let coordinator_host = Arc::new(Host::start_with_session(
        &options(plugins.path(), &work.path().join("coordinator")),
        Some(Box::new(move |builder| {
            coordinator_session(builder, planning)
        })),
    ));
    let cluster_config = config(work.path(), "cluster.yaml", cluster_acceleration);
    let cluster_datasets =
        Datasets::start_coordinating(Arc::clone(&coordinator_host), Some(&cluster_config)).unwrap();
    let _coordinator = Coordinator::start(
        Arc::clone(&coordinator_host),
        &cluster_datasets,
        cluster,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert!(
        cluster_datasets
            .wait_loaded(Duration::from_secs(3600))
            .await
    );
    for dataset in cluster_datasets.all() {
        assert!(
            dataset.status().last_error.is_none(),
            "{}: {:?}",
            dataset.name,
            dataset.status().last_error
        );
    }
    eprintln!("loaded both in {:.1?}", started.elapsed());

    println!(
        "TPC-H SF {scale}, {runs} runs, medians (ms); workers: {WORKERS} in this process, 2 cores\n"
    );
    println!(
        "| query | 1 node, whole in DuckDB | 1 node, DataFusion over scans | coordinator + {WORKERS} workers | ratio to scans | ratio to whole |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let mut totals = [0.0f64; 3];
    for (name, query) in accel_tpch::QUERIES {
        let mut times = [Vec::new(), Vec::new(), Vec::new()];
        let mut answers: [Option<String>; 3] = [None, None, None];
        for _ in 0..runs {
            for (i, (host, federation)) in [
                (&single, "true"),
                (&single, "false"),
                (&coordinator_host, "true"),
            ]
            .into_iter()
            .enumerate()
            {
                host.sql(&format!("SET accel.federation = {federation}"))
                    .await
                    .unwrap();
                let start = Instant::now();
                let batches = host.sql(query).await.unwrap_or_else(|e| {
                    panic!("{name} ({}): {e}", ["whole", "scans", "cluster"][i])
                });
                times[i].push(start.elapsed().as_secs_f64() * 1000.0);
                answers[i].get_or_insert_with(|| sorted_text(&batches));
            }
            single.sql("SET accel.federation = true").await.unwrap();
        }
        assert_eq!(
            answers[0], answers[2],
            "{name}: the cluster answers otherwise"
        );
        let medians = times.map(|mut t| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        });
        for (total, median) in totals.iter_mut().zip(medians) {
            *total += median;
        }
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.2}x | {:.2}x |",
            medians[0],
            medians[1],
            medians[2],
            medians[2] / medians[1],
            medians[2] / medians[0]
        );
    }
    println!(
        "| total | {:.1} | {:.1} | {:.1} | {:.2}x | {:.2}x |\n",
        totals[0],
        totals[1],
        totals[2],
        totals[2] / totals[1],
        totals[2] / totals[0]
    );

    // Per-shard costs: one scan-and-aggregate of lineitem.
    let scan = "SELECT count(*), sum(l_extendedprice), max(l_shipdate) FROM {t}";
    let median_of = |mut t: Vec<f64>| {
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    };
    let mut single_times = Vec::new();
    let mut cluster_times = Vec::new();
    let mut shard_times = vec![Vec::new(); WORKERS];
    for _ in 0..runs.max(5) {
        single.sql("SET accel.federation = false").await.unwrap();
        let start = Instant::now();
        single.sql(&scan.replace("{t}", "lineitem")).await.unwrap();
        single_times.push(start.elapsed().as_secs_f64() * 1000.0);
        let start = Instant::now();
        coordinator_host
            .sql(&scan.replace("{t}", "lineitem"))
            .await
            .unwrap();
        cluster_times.push(start.elapsed().as_secs_f64() * 1000.0);
        for (i, (host, _)) in worker_shards.iter().enumerate() {
            host.sql("SET accel.federation = false").await.unwrap();
            let table = format!("lineitem__shard{i}of3");
            let start = Instant::now();
            host.sql(&scan.replace("{t}", &table)).await.unwrap();
            shard_times[i].push(start.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let shard_medians: Vec<f64> = shard_times.into_iter().map(median_of).collect();
    let (single_median, cluster_median) = (median_of(single_times), median_of(cluster_times));
    let slowest = shard_medians.iter().copied().fold(0.0, f64::max);
    println!("lineitem scan-and-aggregate (DataFusion over scans), medians (ms):\n");
    println!(
        "| single node | through the coordinator | each worker on its own shard | slowest shard + coordinator's own cost |"
    );
    println!("|---:|---:|---|---:|");
    println!(
        "| {single_median:.1} | {cluster_median:.1} | {} | {slowest:.1} + {:.1} |",
        shard_medians
            .iter()
            .map(|t| format!("{t:.1}"))
            .collect::<Vec<_>>()
            .join(" / "),
        cluster_median - slowest
    );
}

fn sorted_text(batches: &[RecordBatch]) -> String {
    let text = pretty_format_batches(batches).unwrap().to_string();
    let mut lines: Vec<&str> = text.lines().filter(|l| l.starts_with('|')).collect();
    lines.sort();
    lines.join("\n")
}
