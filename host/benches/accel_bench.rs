//! `scripts/bench`: accel's figures next to their baselines, measured in the same run, printed
//! as a Markdown table of ratios (accel / baseline, lower is better) with the absolute times.
//! Data is generated deterministically by SQL; `--rows N` sets the scale (default 10 M).
//! `--ffi-tax-only` stops after the FFI-tax figures; `--profile-loop d|b[,federated]` runs
//! the selective FFI-tax query in a loop on one side, for `perf record -p` (see
//! [`ProfileLoop`]).
//!
//! Needs the release build of the plugins (`cargo build --release --workspace`) and the host
//! feature `builtin-duckdb` (the DuckDB engine crate linked in as `duckdb_builtin`, the
//! baseline of the plugin boundary's cost).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use accel_engine_duckdb::arrow_bridge::to_duckdb;
use accel_host::library::check::check_as;
use accel_host::library::discover::discover;
use accel_host::library::fingerprint::Fingerprint;
use accel_host::library::load::{load, private_copy};
use accel_host::library::trust::{PermissionPolicy, check_trust};
use accel_host::{Host, HostOptions};
use datafusion::arrow::array::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

const RUNS: usize = 5;
/// How long each side of an interleaved figure runs at least, and its most runs.
const INTERLEAVED_BUDGET: Duration = Duration::from_secs(1);
const INTERLEAVED_MAX_RUNS: usize = 101;

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
    let profile_loop = std::env::args()
        .skip_while(|a| a != "--profile-loop")
        .nth(1)
        .map(|spec| ProfileLoop::parse(&spec));
    // `--ffi-tax-only`: stop after the FFI-tax figures (start-up, ingest and FFI tax)
    let ffi_tax_only = std::env::args().any(|a| a == "--ffi-tax-only");
    runtime.block_on(run(rows, profile_loop, ffi_tax_only));
}

/// `--profile-loop TABLE[,federated]`: after loading, run the selective FFI-tax query on
/// table `d` (the DuckDB plugin) or `b` (the same engine built in) for `PROFILE_LOOP_TIME`
/// and exit, with a line on stderr when the loop starts — a steady workload to attach
/// `perf record -p PID` to. No figures are printed.
struct ProfileLoop {
    table: String,
    federation: bool,
}

const PROFILE_LOOP_TIME: Duration = Duration::from_secs(20);

impl ProfileLoop {
    fn parse(spec: &str) -> Self {
        let (table, federation) = match spec.split_once(',') {
            Some((table, "federated")) => (table, true),
            None => (spec, false),
            Some((_, other)) => panic!("--profile-loop TABLE[,federated]: found `{other}`"),
        };
        assert!(
            ["d", "b"].contains(&table),
            "--profile-loop takes `d` (plugin) or `b` (built in), found `{table}`"
        );
        Self {
            table: table.to_owned(),
            federation,
        }
    }
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

/// Medians of runs of `a` and `b` taken in turns, `a b b a …` (after one warm-up run of
/// each), so drift on a shared machine and running second weigh on both alike: at least
/// `RUNS` each, more for short queries — until each side has run for `INTERLEAVED_BUDGET` or
/// `INTERLEAVED_MAX_RUNS` times — since a few milliseconds' figure moves with any noise.
async fn medians_interleaved<FA, FB, FutA, FutB, TA, TB>(
    mut a: FA,
    mut b: FB,
) -> (Duration, Duration)
where
    FA: FnMut() -> FutA,
    FB: FnMut() -> FutB,
    FutA: std::future::Future<Output = TA>,
    FutB: std::future::Future<Output = TB>,
{
    std::hint::black_box(a().await);
    std::hint::black_box(b().await);
    let (mut times_a, mut times_b): (Vec<Duration>, Vec<Duration>) = (Vec::new(), Vec::new());
    let enough = |times: &[Duration]| {
        times.len() >= INTERLEAVED_MAX_RUNS
            || (times.len() >= RUNS && times.iter().sum::<Duration>() >= INTERLEAVED_BUDGET)
    };
    while !(enough(&times_a) && enough(&times_b)) {
        let a_first = times_a.len() % 2 == 0;
        for take_a in [a_first, !a_first] {
            let start = Instant::now();
            if take_a {
                std::hint::black_box(a().await);
                times_a.push(start.elapsed());
            } else {
                std::hint::black_box(b().await);
                times_b.push(start.elapsed());
            }
        }
    }
    times_a.sort();
    times_b.sort();
    (times_a[times_a.len() / 2], times_b[times_b.len() / 2])
}

fn median_sync<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        std::hint::black_box(f());
        times.push(start.elapsed());
    }
    times.sort();
    times[runs / 2]
}

struct Figure {
    name: String,
    accel: Duration,
    baseline_name: &'static str,
    baseline: Duration,
    goal: &'static str,
}

fn library(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let release = exe.parent().and_then(Path::parent).unwrap();
    let library = release.join(format!("libaccel_engine_{name}_plugin.so"));
    assert!(
        library.exists(),
        "{} missing: run `cargo build --release --workspace`",
        library.display()
    );
    library
}

/// Resident memory of this process, in bytes (Linux `/proc/self/statm`).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// discover + trust + check + load of every library in `dir`, as `Host::start` does it (the
/// registry, which would refuse copies of one engine, is left out: it is a map insert).
fn discover_check_load(dir: &Path) -> usize {
    let found = discover(&[dir.to_owned()]);
    let mut loaded = Vec::new();
    for path in found.candidates {
        let copy = private_copy(&path).unwrap();
        let _fingerprint = Fingerprint::start(&copy.path).unwrap(); // background, as at start-up
        check_trust(&path, &copy.path, PermissionPolicy::Strict).unwrap();
        let checked = check_as(&copy.path, &path).unwrap();
        loaded.push(load(&checked, &copy.path, copy.generation).unwrap());
    }
    loaded.len()
}

/// Size of `file` after `strip`, or `None` without a `strip` tool.
fn stripped_size(file: &Path, work: &Path) -> Option<u64> {
    let out = work.join("stripped.so");
    let status = std::process::Command::new("strip")
        .arg("-o")
        .arg(&out)
        .arg(file)
        .status()
        .ok()?;
    status
        .success()
        .then(|| std::fs::metadata(&out).ok())??
        .len()
        .into()
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

async fn run(rows: u64, profile_loop: Option<ProfileLoop>, ffi_tax_only: bool) {
    let work = tempfile::tempdir().unwrap();
    let plugins = work.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    for engine in ["duckdb", "sqlite"] {
        let from = library(engine);
        std::fs::copy(&from, plugins.join(from.file_name().unwrap())).unwrap();
    }
    let options = HostOptions {
        plugin_dirs: vec![plugins.clone()],
        use_plugin_path_var: false,
        data_dir: work.path().join("data"),
        ..HostOptions::default()
    };
    let mut figures = Vec::new();
    let mut notes = Vec::new();

    // Start-up: discover + check + load N engine libraries (copies of the DuckDB plugin).
    let bare = median_sync(RUNS, || {
        Host::start(&HostOptions {
            plugin_dirs: vec![],
            ..options.clone()
        })
    });
    for n in [1usize, 10, 20] {
        let dir = work.path().join(format!("startup-{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..n {
            std::fs::copy(library("duckdb"), dir.join(format!("libengine_{i}.so"))).unwrap();
        }
        let before = resident_bytes();
        let time = median_sync(3, || assert_eq!(discover_check_load(&dir), n));
        if n == 20 {
            let per_generation = (resident_bytes() - before) / (3 * n as u64);
            notes.push(format!(
                "resident memory added per loaded generation of the DuckDB plugin: {}",
                mb(per_generation)
            ));
        }
        figures.push(Figure {
            name: format!("start-up, discover+check+load {n} engine libraries"),
            accel: time,
            baseline_name: "host start without plugins",
            baseline: bare,
            goal: "<= 150 ms for 20",
        });
    }
    for engine in ["duckdb", "sqlite"] {
        let file = library(engine);
        let size = std::fs::metadata(&file).unwrap().len();
        let stripped = stripped_size(&file, work.path())
            .map(mb)
            .unwrap_or_else(|| "no strip tool".to_owned());
        notes.push(format!(
            "{engine} plugin library: {} as built, {stripped} stripped",
            mb(size)
        ));
    }

    let host = Arc::new(Host::start(&options));
    assert!(
        host.report.problems.is_empty(),
        "{:?}",
        host.report.problems
    );
    let generate = format!(
        "SELECT value AS i, CAST(value AS DOUBLE) * 0.5 AS f, \
         concat('s', CAST(value % 1000 AS VARCHAR)) AS s, \
         CAST(CAST(value % 20000 AS INT) AS DATE) AS day, value % 3 = 0 AS flag \
         FROM generate_series(1, {rows})"
    );
    let columns = "(i BIGINT, f DOUBLE, s VARCHAR, day DATE, flag BOOLEAN)";
    let parquet = work.path().join("input.parquet");
    host.sql(&format!(
        "CREATE EXTERNAL TABLE a {columns} STORED AS arrow LOCATION ':memory:';
         CREATE EXTERNAL TABLE d {columns} STORED AS duckdb LOCATION ':memory:';
         CREATE EXTERNAL TABLE b {columns} STORED AS duckdb_builtin LOCATION ':memory:';
         INSERT INTO a {generate};
         COPY (SELECT * FROM a) TO '{}' STORED AS PARQUET;
         CREATE EXTERNAL TABLE pq STORED AS PARQUET LOCATION '{}'",
        parquet.display(),
        parquet.display()
    ))
    .await
    .unwrap();

    // Ingest: INSERT from the parquet file into the DuckDB plugin, vs DuckDB's appender given
    // the same rows as Arrow (the bundled DuckDB has no parquet reader: extensions are off).
    let ingest_start = Instant::now();
    host.sql("INSERT INTO d SELECT * FROM pq").await.unwrap();
    let ingest = ingest_start.elapsed();
    host.sql("INSERT INTO b SELECT * FROM pq").await.unwrap();
    let parquet_batches: Vec<RecordBatch> = host.sql("SELECT * FROM pq").await.unwrap();
    let duck = duckdb::Connection::open_in_memory().unwrap();
    duck.execute_batch("CREATE TABLE d (i BIGINT, f DOUBLE, s VARCHAR, day DATE, flag BOOLEAN)")
        .unwrap();
    let native_ingest = {
        let start = Instant::now();
        duck.execute_batch("BEGIN TRANSACTION").unwrap();
        {
            let mut appender = duck.appender("d").unwrap();
            for batch in &parquet_batches {
                appender
                    .append_record_batch(to_duckdb(batch.clone()).unwrap())
                    .unwrap();
            }
            appender.flush().unwrap();
        }
        duck.execute_batch("COMMIT").unwrap();
        start.elapsed()
    };
    figures.push(Figure {
        name: "ingest: INSERT INTO DuckDB plugin FROM parquet".into(),
        accel: ingest,
        baseline_name: "DuckDB appender, same rows as Arrow",
        baseline: native_ingest,
        goal: "<= 1.5x",
    });

    let selective = format!(
        "SELECT s, count(*), sum(f) FROM {{t}} WHERE i < {} GROUP BY s",
        rows / 100
    );
    if let Some(profile) = profile_loop {
        host.federation_switch().set(profile.federation);
        let sql = selective.replace("{t}", &profile.table);
        eprintln!("profile loop starts: pid {}", std::process::id());
        tokio::time::sleep(Duration::from_secs(2)).await;
        let start = Instant::now();
        let mut runs = 0u32;
        while start.elapsed() < PROFILE_LOOP_TIME {
            std::hint::black_box(host.sql(&sql).await.unwrap());
            runs += 1;
        }
        eprintln!(
            "profile loop: {runs} runs, {:.2?} each",
            start.elapsed() / runs
        );
        return;
    }

    // FFI tax: the same engine crate behind the plugin boundary vs linked in.
    for (what, sql) in [
        (
            "full scan + aggregates",
            "SELECT sum(i), sum(f), count(s), max(day), count(flag) FROM {t}",
        ),
        ("selective filter + GROUP BY", &*selective),
    ] {
        // federation off: every row crosses the boundary; on: one statement's result does
        for federation in [false, true] {
            host.federation_switch().set(federation);
            let (plugin, builtin) = medians_interleaved(
                || async { host.sql(&sql.replace("{t}", "d")).await.unwrap() },
                || async { host.sql(&sql.replace("{t}", "b")).await.unwrap() },
            )
            .await;
            let path = if federation {
                "federated"
            } else {
                "rows through a scan"
            };
            figures.push(Figure {
                name: format!("FFI tax: {what}, DuckDB plugin, {path}"),
                accel: plugin,
                baseline_name: "same engine crate built in",
                baseline: builtin,
                goal: "<= 1.05x",
            });
        }
    }
    host.federation_switch().set(true);
    if ffi_tax_only {
        print_figures(rows, &figures, &notes);
        return;
    }

    // Scan through accel vs DuckDB's own Arrow export of the same query.
    let scan_sql = "SELECT i, f, s FROM d";
    let scan = median(|| async { host.sql(scan_sql).await.unwrap() }).await;
    let native_scan = median_sync(RUNS, || {
        let mut statement = duck.prepare(scan_sql).unwrap();
        statement
            .query_arrow([])
            .unwrap()
            .map(|b| b.num_rows())
            .sum::<usize>()
    });
    figures.push(Figure {
        name: "scan 3 columns, DuckDB plugin".into(),
        accel: scan,
        baseline_name: "DuckDB Arrow export (duckdb crate)",
        baseline: native_scan,
        goal: "<= 1.25x",
    });

    // Aggregates pushed into the engine as one statement, vs DuckDB executing the same SQL
    // itself, and vs the same query with federation off (rows out, DataFusion aggregates).
    for (what, sql) in [
        ("sum/sum/count", "SELECT sum(i), sum(f), count(s) FROM d"),
        (
            "GROUP BY s (1000 groups): count/sum/avg",
            "SELECT s, count(*), sum(i), avg(f) FROM d GROUP BY s",
        ),
    ] {
        let federated = median(|| async { host.sql(sql).await.unwrap() }).await;
        let native = median_sync(RUNS, || {
            let mut statement = duck.prepare(sql).unwrap();
            statement
                .query_arrow([])
                .unwrap()
                .map(|b| b.num_rows())
                .sum::<usize>()
        });
        host.federation_switch().set(false);
        let unfederated = median(|| async { host.sql(sql).await.unwrap() }).await;
        host.federation_switch().set(true);
        figures.push(Figure {
            name: format!("{what}, DuckDB plugin, federated"),
            accel: federated,
            baseline_name: "DuckDB executing the SQL itself",
            baseline: native,
            goal: "<= 1.5x (issue 9)",
        });
        figures.push(Figure {
            name: format!("{what}, DuckDB plugin, federation off"),
            accel: unfederated,
            baseline_name: "the same query federated",
            baseline: federated,
            goal: "(how much federation saves)",
        });
    }

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
        name: "filter + GROUP BY, arrow built-in".into(),
        accel: builtin,
        baseline_name: "DataFusion MemTable",
        baseline: memtable,
        goal: "<= 1.05x",
    });

    // The server: the same statements over Arrow Flight SQL (loopback) vs in this process.
    server_figures(&host, rows, &mut figures, &mut notes).await;

    // Hot swap: SQLite 0.1.0 -> 0.2.0 under four querying clients; from the library dropped in
    // the directory to the reload having moved the table.
    let (swap, failed, answered) = hot_swap(work.path(), rows.min(1_000_000)).await;
    notes.push(format!(
        "hot swap of a {}-row SQLite file table under 4 querying clients: {:.1} ms from the \
         library dropped in to the table served by 0.2.0; {failed} failed of {answered} queries",
        rows.min(1_000_000),
        swap.as_secs_f64() * 1e3
    ));

    // Datasets: a full refresh of the parquet file into a DuckDB file-mode dataset, vs DuckDB's
    // own CREATE TABLE … AS SELECT * FROM read_parquet(…) (python duckdb); an append of 1 %
    // new rows vs that full refresh.
    let refreshes = dataset_refreshes(work.path(), &parquet, rows).await;
    match python_duckdb_ctas(&parquet, work.path()) {
        Some((ctas, ctas_peak)) => {
            figures.push(Figure {
                name: "full refresh of the parquet file into a DuckDB file dataset".into(),
                accel: refreshes.full,
                baseline_name: "DuckDB CREATE TABLE AS read_parquet (python duckdb)",
                baseline: ctas,
                goal: "<= 1.5x",
            });
            notes.push(format!(
                "python duckdb's CREATE TABLE AS: peak RSS of its process {}",
                mb(ctas_peak)
            ));
        }
        None => notes.push(
            "no python3 with duckdb (pip install duckdb): the CREATE TABLE AS baseline was \
             skipped"
                .into(),
        ),
    }
    figures.push(Figure {
        name: format!("append refresh of {} new rows (1 %)", rows / 100),
        accel: refreshes.append,
        baseline_name: "full refresh of the same dataset",
        baseline: refreshes.full,
        goal: "<= 0.1x",
    });
    notes.push(format!(
        "peak RSS of this process during a full refresh: {} ({} above its resident size before); \
         during the append: {} ({} above); the source as Arrow is about {}",
        mb(refreshes.full_peak),
        mb(refreshes.full_peak.saturating_sub(refreshes.full_before)),
        mb(refreshes.append_peak),
        mb(refreshes
            .append_peak
            .saturating_sub(refreshes.append_before)),
        mb(refreshes.source_bytes)
    ));

    print_figures(rows, &figures, &notes);
}

fn print_figures(rows: u64, figures: &[Figure], notes: &[String]) {
    println!(
        "\nrows: {rows}; median of {RUNS} runs (start-up: 3, ingest: 1, full refresh: 3, \
         append: 1); {} cores\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| figure | accel | baseline | ratio | goal |");
    println!("|---|---:|---|---:|---|");
    for f in figures {
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
    println!();
    for note in notes {
        println!("- {note}");
    }
}

/// Swaps a SQLite file table from 0.1.0 to 0.2.0 while four clients query it: the time from the
/// library dropped into the directory to the reload done, failed queries, queries answered.
async fn hot_swap(work: &Path, rows: u64) -> (Duration, usize, usize) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let plugins = work.join("swap-plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(
        library("sqlite"),
        plugins.join("libaccel_engine_sqlite_plugin.so"),
    )
    .unwrap();
    let host = Arc::new(Host::start(&HostOptions {
        plugin_dirs: vec![plugins.clone()],
        use_plugin_path_var: false,
        data_dir: work.join("swap-data"),
        ..HostOptions::default()
    }));
    host.sql(&format!(
        "CREATE EXTERNAL TABLE s (id BIGINT, v VARCHAR) STORED AS sqlite LOCATION '{}';
         INSERT INTO s SELECT value AS id, concat('v', CAST(value AS VARCHAR)) AS v \
         FROM generate_series(1, {rows})",
        work.join("swap-data/s.sqlite").display()
    ))
    .await
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (host, stop) = (Arc::clone(&host), Arc::clone(&stop));
        let (failed, answered) = (Arc::clone(&failed), Arc::clone(&answered));
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                match host.sql("SELECT count(*) FROM s WHERE id > 1000").await {
                    Ok(_) => answered.fetch_add(1, Ordering::SeqCst),
                    Err(_) => failed.fetch_add(1, Ordering::SeqCst),
                };
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let next = library("sqlite")
        .parent()
        .unwrap()
        .join("fixtures/libaccel_engine_sqlite_plugin-0.2.0.so");
    let start = Instant::now();
    std::fs::copy(&next, plugins.join(".incoming")).unwrap();
    std::fs::rename(
        plugins.join(".incoming"),
        plugins.join("libaccel_engine_sqlite_plugin-0.2.0.so"),
    )
    .unwrap();
    let report = host.reload().await;
    let swap = start.elapsed();
    assert_eq!(report.moved.len(), 1, "{report}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }
    (
        swap,
        failed.load(Ordering::SeqCst),
        answered.load(Ordering::SeqCst),
    )
}

/// Timings and peak memory of dataset refreshes.
struct Refreshes {
    full: Duration,
    full_before: u64,
    full_peak: u64,
    append: Duration,
    append_before: u64,
    append_peak: u64,
    source_bytes: u64,
}

/// Resets the process's peak resident size to its current one (Linux: `clear_refs` 5).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident size since the last reset (`VmHWM`), in bytes.
fn peak_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

async fn dataset_refreshes(work: &Path, parquet: &Path, rows: u64) -> Refreshes {
    use accel_host::config::Config;
    use accel_host::dataset::Datasets;
    let dir = work.join("datasets");
    let sources = dir.join("sources");
    std::fs::create_dir_all(&sources).unwrap();
    std::fs::copy(parquet, sources.join("part-0.parquet")).unwrap();
    let yaml = "datasets:\n  - from: file:sources/*.parquet\n    name: full\n    acceleration:\n      engine: duckdb\n      mode: file\n  - from: file:sources/*.parquet\n    name: appended\n    time_column: i\n    acceleration:\n      engine: duckdb\n      mode: file\n      refresh_mode: append\n";
    std::fs::write(dir.join("accel.yaml"), yaml).unwrap();
    let config = Config::load(&dir.join("accel.yaml")).unwrap();
    let plugins = work.join("plugins");
    let host = Arc::new(Host::start(&HostOptions {
        plugin_dirs: vec![plugins],
        use_plugin_path_var: false,
        data_dir: dir.join("data"),
        ..HostOptions::default()
    }));
    let datasets = Datasets::start(Arc::clone(&host), Some(&config)).unwrap();
    assert!(datasets.wait_loaded(Duration::from_secs(3600)).await);
    let source_bytes: u64 = host
        .sql("SELECT * FROM full LIMIT 100000")
        .await
        .unwrap()
        .iter()
        .map(|b| b.get_array_memory_size() as u64)
        .sum::<u64>()
        * rows.div_ceil(100_000);
    let full_before = resident_bytes();
    reset_peak();
    let mut times = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        datasets.refresh("full").await.unwrap();
        times.push(start.elapsed());
    }
    let full_peak = peak_bytes();
    times.sort();
    // 1 % new rows in a new file: the append reads the rows past the newest held.
    // Reads the file by its path in FROM.
    let ctx = SessionContext::new().enable_url_table();
    ctx.sql(&format!(
        "COPY (SELECT i + {rows} AS i, f, s, day, flag FROM '{}' WHERE i <= {}) TO '{}' \
         STORED AS PARQUET",
        parquet.display(),
        rows / 100,
        sources.join("part-1.parquet").display()
    ))
    .await
    .unwrap()
    .collect()
    .await
    .unwrap();
    let append_before = resident_bytes();
    reset_peak();
    let start = Instant::now();
    let appended = datasets.refresh("appended").await.unwrap();
    let append = start.elapsed();
    let append_peak = peak_bytes();
    assert_eq!(appended.rows_written, rows / 100);
    datasets.shutdown(Duration::from_secs(600)).await;
    host.shutdown().await;
    Refreshes {
        full: times[1],
        full_before,
        full_peak,
        append,
        append_before,
        append_peak,
        source_bytes,
    }
}

/// Median of 3 `CREATE OR REPLACE TABLE t AS SELECT * FROM read_parquet(…)` in python duckdb
/// on a file database, and the peak RSS of that process; `None` without python duckdb. The
/// peak is the child's own `VmHWM`: its `ru_maxrss` would include this process's high-water
/// mark, inherited through fork.
fn python_duckdb_ctas(parquet: &Path, work: &Path) -> Option<(Duration, u64)> {
    let database = work.join("ctas.duckdb");
    let script = format!(
        "import duckdb, time\n\
         con = duckdb.connect('{}')\n\
         times = []\n\
         for _ in range(3):\n    \
             t = time.perf_counter()\n    \
             con.execute(\"CREATE OR REPLACE TABLE t AS SELECT * FROM read_parquet('{}')\")\n    \
             times.append(time.perf_counter() - t)\n\
         times.sort()\n\
         hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n\
         print(times[1], hwm.split()[1])\n",
        database.display(),
        parquet.display()
    );
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut words = text.split_whitespace();
    let seconds: f64 = words.next()?.parse().ok()?;
    let peak_kb: u64 = words.next()?.parse().ok()?;
    Some((Duration::from_secs_f64(seconds), peak_kb * 1024))
}

/// Latencies of `total` statements run by `clients` concurrent clients, and the wall time.
struct Load {
    latencies: Vec<Duration>,
    wall: Duration,
}

impl Load {
    fn percentile(&self, p: usize) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
    }

    fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.wall.as_secs_f64()
    }
}

/// Runs `total` statements split over `clients` tasks; `run` answers one statement with its
/// row count.
async fn concurrent_load<F, Fut>(clients: usize, total: usize, run: F) -> Load
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = usize> + Send,
{
    let run = Arc::new(run);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..clients {
        let run = Arc::clone(&run);
        let share = total / clients + usize::from(client < total % clients);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(share);
            for _ in 0..share {
                let started = Instant::now();
                assert!(run(client).await > 0);
                latencies.push(started.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    Load {
        latencies,
        wall: start.elapsed(),
    }
}

async fn flight_rows(
    client: &mut arrow_flight::sql::client::FlightSqlServiceClient<tonic::transport::Channel>,
    sql: &str,
) -> usize {
    use futures::TryStreamExt;
    let info = client.execute(sql.to_owned(), None).await.unwrap();
    let mut rows = 0;
    for endpoint in info.endpoint {
        let mut stream = client.do_get(endpoint.ticket.unwrap()).await.unwrap();
        while let Some(batch) = stream.try_next().await.unwrap() {
            rows += batch.num_rows();
        }
    }
    rows
}

async fn local_rows(host: &Host, sql: &str) -> usize {
    use futures::TryStreamExt;
    let frame = host.context().sql(sql).await.unwrap();
    let mut stream = frame.execute_stream().await.unwrap();
    let mut rows = 0;
    while let Some(batch) = stream.try_next().await.unwrap() {
        rows += batch.num_rows();
    }
    rows
}

/// `accel serve`'s Flight SQL in this process on a loopback port: a point query and a
/// federated aggregate with 1, 8 and 32 clients, and a whole-table result streamed, each next
/// to the same statement run in process.
async fn server_figures(
    host: &Arc<Host>,
    rows: u64,
    figures: &mut Vec<Figure>,
    notes: &mut Vec<String>,
) {
    let datasets = accel_host::dataset::Datasets::start(Arc::clone(host), None).unwrap();
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(accel_host::serve::serve(
        Arc::clone(host),
        datasets,
        accel_host::serve::ServeOptions {
            flight: "127.0.0.1:0".parse().unwrap(),
            http: "127.0.0.1:0".parse().unwrap(),
            api_key: accel_host::serve::auth::ApiKey::new(None),
            allow_writes: false,
            shutdown_timeout: Duration::from_secs(10),
        },
        move |bound| {
            let _ = bound_tx.send(bound);
        },
        async move {
            let _ = stop_rx.await;
        },
    ));
    let bound = bound_rx.await.unwrap();
    let endpoint = format!("http://{}", bound.flight);
    let connect = move || {
        let endpoint = endpoint.clone();
        async move {
            let channel = tonic::transport::Endpoint::from_shared(endpoint)
                .unwrap()
                .connect()
                .await
                .unwrap();
            arrow_flight::sql::client::FlightSqlServiceClient::new(channel)
        }
    };

    let point = format!("SELECT s, f FROM d WHERE i = {}", rows / 2);
    let aggregate = "SELECT flag, count(*) AS n, sum(f) AS total FROM d GROUP BY flag".to_owned();
    for (label, sql, total) in [
        ("point query", point, 96),
        ("federated aggregate", aggregate, 32),
    ] {
        for clients in [1usize, 8, 32] {
            let total = total.max(clients);
            let mut pool = Vec::new();
            for _ in 0..clients {
                pool.push(tokio::sync::Mutex::new(connect().await));
            }
            let pool = Arc::new(pool);
            let over_flight = {
                let (pool, sql) = (Arc::clone(&pool), sql.clone());
                concurrent_load(clients, total, move |client| {
                    let (pool, sql) = (Arc::clone(&pool), sql.clone());
                    async move { flight_rows(&mut *pool[client].lock().await, &sql).await }
                })
                .await
            };
            let in_process = {
                let (host, sql) = (Arc::clone(host), sql.clone());
                concurrent_load(clients, total, move |_| {
                    let (host, sql) = (Arc::clone(&host), sql.clone());
                    async move { local_rows(&host, &sql).await }
                })
                .await
            };
            figures.push(Figure {
                name: format!("{label} over Flight SQL, {clients} client(s), p50"),
                accel: over_flight.percentile(50),
                baseline_name: "the same in process",
                baseline: in_process.percentile(50),
                goal: "protocol cost",
            });
            notes.push(format!(
                "{label}, {clients} client(s), {total} statements: Flight SQL {:.0}/s, p50 {:.2} \
                 ms, p99 {:.2} ms; in process {:.0}/s, p50 {:.2} ms, p99 {:.2} ms",
                over_flight.per_second(),
                over_flight.percentile(50).as_secs_f64() * 1e3,
                over_flight.percentile(99).as_secs_f64() * 1e3,
                in_process.per_second(),
                in_process.percentile(50).as_secs_f64() * 1e3,
                in_process.percentile(99).as_secs_f64() * 1e3,
            ));
        }
    }

    let everything = "SELECT i, f FROM d";
    let client = Arc::new(tokio::sync::Mutex::new(connect().await));
    let streamed = median(|| {
        let client = Arc::clone(&client);
        async move {
            let rows_streamed = flight_rows(&mut *client.lock().await, everything).await;
            assert_eq!(rows_streamed as u64, rows)
        }
    })
    .await;
    let local =
        median(|| async { assert_eq!(local_rows(host, everything).await as u64, rows) }).await;
    figures.push(Figure {
        name: format!("{rows} rows (i, f) streamed over Flight SQL"),
        accel: streamed,
        baseline_name: "streamed in process",
        baseline: local,
        goal: "protocol cost",
    });
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}
