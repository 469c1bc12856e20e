//! Hot swap: version 0.2.0 of the SQLite engine takes tables over from 0.1.0 while eight clients
//! query and insert: no query fails, no row is lost, the content checksums are the same before
//! and after, a pinned table stays, the old generation is retired once unused, and a broken
//! new library leaves the old one serving.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use accel_host::Host;
use accel_host::engine::registry::State;

use super::common::{host_with, install, rows, sqlite_library, sqlite_v2_library};

/// Rows, a checksum of every row's content (order-independent) and the largest id.
fn checksum(table: &str) -> String {
    format!(
        "SELECT count(*) AS n, md5(string_agg(concat(CAST(id AS VARCHAR), ':', v), ',' \
         ORDER BY id)) AS content FROM {table}"
    )
}

async fn generation_of(host: &Host, table: &str) -> String {
    for t in host.tables() {
        if t.name == table {
            return t.generation().await.version.to_string();
        }
    }
    panic!("no table {table}")
}

/// Drops `library` into `dir` the way an operator would: copy to a hidden name, then rename.
fn drop_in(library: &std::path::Path, dir: &std::path::Path, name: &str) {
    let hidden = dir.join(format!(".{name}.partial"));
    std::fs::copy(library, &hidden).unwrap();
    std::fs::rename(&hidden, dir.join(name)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_version_takes_tables_over_under_load_with_no_failed_query_or_lost_row() {
    let plugins = tempfile::tempdir().unwrap();
    install(&sqlite_library(), plugins.path());
    let data = tempfile::tempdir().unwrap();
    let host = Arc::new(host_with(plugins.path(), data.path()));
    host.sql(&format!(
        "CREATE EXTERNAL TABLE f (id BIGINT, v VARCHAR) STORED AS sqlite LOCATION '{}' \
         OPTIONS ('primary_key' 'id');
         CREATE EXTERNAL TABLE w (id BIGINT, v VARCHAR) STORED AS sqlite LOCATION '{}';
         CREATE EXTERNAL TABLE m (id BIGINT, v VARCHAR) STORED AS sqlite LOCATION ':memory:';
         CREATE EXTERNAL TABLE p (id BIGINT, v VARCHAR) STORED AS sqlite LOCATION ':memory:' \
         OPTIONS ('engine_version' '<0.2');
         INSERT INTO f SELECT value AS id, concat('f', value) AS v FROM generate_series(1, 5000);
         INSERT INTO m SELECT value AS id, concat('m', value) AS v FROM generate_series(1, 5000);
         INSERT INTO p VALUES (1, 'pinned')",
        data.path().join("f.sqlite").display(),
        data.path().join("w.sqlite").display()
    ))
    .await
    .unwrap();
    let mut before = Vec::new();
    for table in ["f", "m", "p"] {
        before.push(rows(&host.sql(&checksum(table)).await.unwrap()));
    }

    // Eight clients: seven read every table, one inserts rows into `w`; each runs at least 150
    // statements, and 20 more once the swap is over.
    let done = Arc::new(AtomicUsize::new(0));
    let swapped = Arc::new(AtomicUsize::new(usize::MAX));
    let mut clients = Vec::new();
    for client in 0..8usize {
        let host = Arc::clone(&host);
        let done = Arc::clone(&done);
        let swapped = Arc::clone(&swapped);
        clients.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut inserted = 0usize;
            let mut after_swap = 0;
            for i in 0.. {
                if i >= 150 && after_swap >= 20 {
                    break;
                }
                if swapped.load(Ordering::SeqCst) != usize::MAX {
                    after_swap += 1;
                }
                let sql = match (client, i % 3) {
                    (0, _) => {
                        format!("INSERT INTO w VALUES ({}, 'w{i}')", i)
                    }
                    (_, 0) => format!("SELECT count(*) FROM f WHERE id > {}", i * 100),
                    (_, 1) => format!("SELECT sum(id) FROM m WHERE id % 10 = {}", i % 10),
                    _ => checksum(if i % 2 == 0 { "f" } else { "p" }),
                };
                match host.sql(&sql).await {
                    Ok(_) if client == 0 => inserted += 1,
                    Ok(_) => {}
                    Err(e) => failures.push(format!("{sql}: {e}")),
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
            (failures, inserted)
        }));
    }
    while done.load(Ordering::SeqCst) < 300 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    drop_in(
        &sqlite_v2_library(),
        plugins.path(),
        "libaccel_engine_sqlite_plugin-0.2.0.so",
    );
    let report = host.reload().await;
    let during = done.load(Ordering::SeqCst);
    swapped.store(during, Ordering::SeqCst);

    let mut failures = Vec::new();
    let mut inserted = 0;
    for client in clients {
        let (failed, rows) = client.await.unwrap();
        failures.extend(failed);
        inserted += rows;
    }
    assert!(
        failures.is_empty(),
        "failed queries:\n{}",
        failures.join("\n")
    );
    let total = done.load(Ordering::SeqCst);
    assert!(total >= 1200, "{total} statements");
    assert!(
        during >= 300 && during + 160 <= total,
        "the swap happened mid-run"
    );
    assert!(report.problems.is_empty(), "{report}");
    assert_eq!(report.loaded.len(), 1, "{report}");
    assert_eq!(report.moved.len(), 3, "f, w and m move: {report}");
    assert!(
        report
            .kept
            .iter()
            .any(|k| k.contains("table `p`") && k.contains("pinned")),
        "{report}"
    );

    for (table, expected) in ["f", "m", "p"].iter().zip(&before) {
        let after = rows(&host.sql(&checksum(table)).await.unwrap());
        assert_eq!(
            &after, expected,
            "table {table}: rows and content unchanged"
        );
    }
    let written = host.sql("SELECT count(*) FROM w").await.unwrap();
    assert_eq!(rows(&written), vec![format!("| {inserted:<8} |")]);
    assert!(inserted >= 150, "every insert succeeded: {inserted}");
    for (table, version) in [
        ("f", "0.2.0"),
        ("w", "0.2.0"),
        ("m", "0.2.0"),
        ("p", "0.1.0"),
    ] {
        assert_eq!(generation_of(&host, table).await, version, "table {table}");
    }

    // New tables get the newest generation; once the pinned table is gone, 0.1.0 retires.
    host.sql("CREATE EXTERNAL TABLE n (id BIGINT) STORED AS sqlite LOCATION ':memory:'")
        .await
        .unwrap();
    assert_eq!(generation_of(&host, "n").await, "0.2.0");
    host.sql("DROP TABLE p").await.unwrap();
    let report = host.reload().await;
    assert_eq!(report.unchanged, 2, "{report}");
    assert_eq!(report.retired.len(), 1, "{report}");
    let states: Vec<(String, State)> = host
        .registry
        .engines()
        .iter()
        .filter(|g| g.name() == "sqlite")
        .map(|g| (g.version.to_string(), g.state()))
        .collect();
    assert_eq!(states[1], ("0.2.0".to_owned(), State::Active));
    assert!(
        matches!(states[0], (ref v, State::Retired { resident_kb }) if v == "0.1.0" && resident_kb > 0),
        "{states:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_new_library_leaves_the_old_generation_serving() {
    let plugins = tempfile::tempdir().unwrap();
    install(&sqlite_library(), plugins.path());
    let data = tempfile::tempdir().unwrap();
    let host = host_with(plugins.path(), data.path());
    host.sql(&format!(
        "CREATE EXTERNAL TABLE f (id BIGINT, v VARCHAR) STORED AS sqlite LOCATION '{}';
         INSERT INTO f VALUES (1, 'a'), (2, 'b')",
        data.path().join("f.sqlite").display()
    ))
    .await
    .unwrap();

    // Version 0.2.0 built for another datafusion-ffi major: refused by the check.
    let mut bytes = std::fs::read(sqlite_v2_library()).unwrap();
    let record = bytes
        .windows(8)
        .position(|w| w == b"ACCELPLG")
        .expect("metadata record");
    bytes[record + 16..record + 20].copy_from_slice(&54u32.to_le_bytes());
    let broken = plugins
        .path()
        .join("libaccel_engine_sqlite_plugin-0.2.0.so");
    std::fs::write(&broken, &bytes).unwrap();

    let report = host.reload().await;
    assert!(report.moved.is_empty(), "{report}");
    assert!(
        report
            .problems
            .iter()
            .map(ToString::to_string)
            .any(|p| p.contains("libaccel_engine_sqlite_plugin-0.2.0.so")
                && p.contains("datafusion-ffi major: library has 54, host expects 55")),
        "{report}"
    );
    assert!(
        host.last_reload_attention()
            .iter()
            .any(|line| line.contains("datafusion-ffi major")),
        "`accel engines` shows why: {:?}",
        host.last_reload_attention()
    );
    assert_eq!(generation_of(&host, "f").await, "0.1.0");
    let count = host.sql("SELECT count(*) FROM f").await.unwrap();
    assert_eq!(rows(&count), vec!["| 2        |"]);
}

/// Open file descriptors once the libraries loaded at start-up have been fingerprinted (read
/// in the background, through a descriptor of their private copy, until done).
fn settled_descriptors() -> Vec<String> {
    for _ in 0..500 {
        let open = open_descriptors();
        // (the copies directory's `.owner` lock stays open for the process's lifetime)
        if !open
            .iter()
            .any(|t| t.contains("/accel-plugins-") && !t.ends_with("/.owner"))
        {
            return open;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!(
        "a library copy is still open 10 s after start-up: {:?}",
        open_descriptors()
    );
}

/// Threads of this process of one engine generation's runtime (named `engine version`).
fn engine_threads(generation: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == generation)
        .count()
}

/// Waits (10 s at most) for the threads of a retired generation to exit, and fails if they
/// do not.
async fn retired_threads_gone(generation: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while engine_threads(generation) > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        engine_threads(generation),
        0,
        "threads of the retired generation {generation}"
    );
}

/// Open file descriptors of this process, by what they point at.
fn open_descriptors() -> Vec<String> {
    let mut targets: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|t| t.display().to_string())
        .collect();
    targets.sort();
    targets
}

/// Distinct engine library copies mapped into this process (one per loaded generation).
fn mapped_generations() -> usize {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mut copies: Vec<&str> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|path| path.contains("-libaccel_engine_"))
        .collect();
    copies.sort();
    copies.dedup();
    copies.len()
}

/// Runs in a process of its own (descriptor counts are per process and the other tests run in
/// parallel threads): 100 reloads while four clients query — each reload meets a new broken
/// library, the 50th also a new engine version that takes the tables over.
#[test]
fn a_hundred_reloads_under_load_crash_nothing_and_leak_no_descriptor() {
    const CHILD: &str = "ACCEL_RELOAD_CYCLES_CHILD";
    if std::env::var_os(CHILD).is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "integration::hot_swap::a_hundred_reloads_under_load_crash_nothing_and_leak_no_descriptor",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("1 passed"), "the child ran the test: {text}");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let plugins = tempfile::tempdir().unwrap();
        install(&sqlite_library(), plugins.path());
        let data = tempfile::tempdir().unwrap();
        let host = Arc::new(host_with(plugins.path(), data.path()));
        host.sql(&format!(
            "CREATE EXTERNAL TABLE f (id BIGINT, v VARCHAR) STORED AS sqlite LOCATION '{}' \
             OPTIONS ('sqlite_connection_pool_size' '1');
             CREATE EXTERNAL TABLE m (id BIGINT, v VARCHAR) STORED AS sqlite LOCATION ':memory:';
             INSERT INTO f SELECT value AS id, 'f' AS v FROM generate_series(1, 1000);
             INSERT INTO m SELECT value AS id, 'm' AS v FROM generate_series(1, 1000);
             SELECT count(*) FROM f JOIN m ON f.id = m.id",
            data.path().join("f.sqlite").display()
        ))
        .await
        .unwrap();
        let descriptors_before = settled_descriptors();
        let mut descriptors_with_two_generations = Vec::new();
        assert_eq!(mapped_generations(), 1);
        assert!(
            engine_threads("sqlite 0.1.0") > 0,
            "the SQLite engine's runtime runs"
        );

        let stop = Arc::new(AtomicUsize::new(0));
        let answered = Arc::new(AtomicUsize::new(0));
        let mut clients = Vec::new();
        for client in 0..4 {
            let host = Arc::clone(&host);
            let stop = Arc::clone(&stop);
            let answered = Arc::clone(&answered);
            clients.push(tokio::spawn(async move {
                let mut failures = Vec::new();
                let mut queries = 0;
                while stop.load(Ordering::SeqCst) == 0 {
                    let table = if client % 2 == 0 { "f" } else { "m" };
                    let sql = format!("SELECT count(*), sum(id) FROM {table}");
                    match host.sql(&sql).await {
                        Ok(batches) if rows(&batches) == ["| 1000     | 500500    |"] => {}
                        Ok(batches) => failures.push(format!("{sql}: {:?}", rows(&batches))),
                        Err(e) => failures.push(format!("{sql}: {e}")),
                    }
                    queries += 1;
                    answered.fetch_add(1, Ordering::SeqCst);
                }
                (failures, queries)
            }));
        }
        for cycle in 0..100u32 {
            // Under load: at least two more queries answered between two reloads.
            let target = answered.load(Ordering::SeqCst) + 2;
            while answered.load(Ordering::SeqCst) < target {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            let junk = plugins.path().join(format!("libjunk_{cycle}.so"));
            let bytes: Vec<u8> = (0..4096u32).map(|i| (i * 31 + cycle) as u8).collect();
            std::fs::write(&junk, bytes).unwrap();
            if cycle == 50 {
                drop_in(
                    &sqlite_v2_library(),
                    plugins.path(),
                    "libaccel_engine_sqlite_plugin-0.2.0.so",
                );
            }
            let report = host.reload().await;
            assert_eq!(report.problems.len(), 1, "cycle {cycle}: {report}");
            assert!(
                report.problems[0]
                    .reason
                    .contains(&format!("libjunk_{cycle}.so")),
                "{report}"
            );
            if cycle == 50 {
                assert_eq!(report.moved.len(), 2, "{report}");
            }
            if cycle == 51 {
                // once the retired generation's runtime has stopped (its threads exit on their
                // own after the signal)
                retired_threads_gone("sqlite 0.1.0").await;
                descriptors_with_two_generations = open_descriptors();
            }
            std::fs::remove_file(&junk).unwrap();
        }
        stop.store(1, Ordering::SeqCst);
        let mut failures = Vec::new();
        let mut queries = 0;
        for client in clients {
            let (failed, count) = client.await.unwrap();
            failures.extend(failed);
            queries += count;
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        assert!(queries >= 200, "{queries} queries ran during the reloads");
        assert_eq!(generation_of(&host, "f").await, "0.2.0");
        assert_eq!(mapped_generations(), 2, "one mapping per generation");
        // The retired generation's runtime threads are gone; the serving generation's run.
        retired_threads_gone("sqlite 0.1.0").await;
        assert!(
            engine_threads("sqlite 0.2.0") > 0,
            "the serving generation's threads"
        );
        // Files: `f` has one connection per generation at most, and its database, WAL and SHM
        // are open once (the old generation closed them); other descriptors: only what the new
        // generation's runtime holds, and nothing more after 49 more reloads.
        let descriptors_after = open_descriptors();
        let files = |d: &[String]| -> Vec<String> {
            d.iter().filter(|t| t.starts_with('/')).cloned().collect()
        };
        assert_eq!(files(&descriptors_after), files(&descriptors_before));
        assert_eq!(
            descriptors_after.len(),
            descriptors_with_two_generations.len(),
            "descriptors after the swap:\n{}\nafter 49 more reloads:\n{}",
            descriptors_with_two_generations.join("\n"),
            descriptors_after.join("\n")
        );
    });
}

/// `--watch` reloads by itself when a library is dropped in: through filesystem events where
/// the directories have them, by polling where one cannot be watched (here: a plugin directory
/// that does not exist yet). Either way the table moves to the new version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reloads_on_filesystem_events_and_falls_back_to_polling() {
    use accel_host::HostOptions;
    use accel_host::host::watch::{WatchMode, watch};

    for events in [true, false] {
        let plugins = tempfile::tempdir().unwrap();
        install(&sqlite_library(), plugins.path());
        let data = tempfile::tempdir().unwrap();
        let mut plugin_dirs = vec![plugins.path().to_owned()];
        if !events {
            plugin_dirs.push(plugins.path().join("not-there-yet"));
        }
        let host = Arc::new(Host::start(&HostOptions {
            plugin_dirs,
            use_plugin_path_var: false,
            data_dir: data.path().to_owned(),
            ..HostOptions::default()
        }));
        host.sql(
            "CREATE EXTERNAL TABLE t (id BIGINT) STORED AS sqlite LOCATION ':memory:';
             INSERT INTO t VALUES (1), (2)",
        )
        .await
        .unwrap();
        let (reports, mut received) = tokio::sync::mpsc::unbounded_channel();
        let watcher = watch(
            Arc::clone(&host),
            std::time::Duration::from_millis(200),
            move |report| {
                let _ = reports.send(report.to_string());
            },
        );
        assert_eq!(
            matches!(watcher.mode, WatchMode::Events),
            events,
            "{:?}",
            watcher.mode
        );

        drop_in(
            &sqlite_v2_library(),
            plugins.path(),
            "libaccel_engine_sqlite_plugin-0.2.0.so",
        );
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        while generation_of(&host, "t").await != "0.2.0" {
            match tokio::time::timeout_at(deadline, received.recv()).await {
                Ok(Some(report)) => seen.push(report),
                _ => panic!(
                    "no reload moved the table within 60 s (events: {events}); reports: {seen:?}"
                ),
            }
        }
        assert!(
            seen.iter().any(|r| r.contains("1 loaded")),
            "the watch's own reload loaded 0.2.0: {seen:?}"
        );
        assert_eq!(
            rows(&host.sql("SELECT count(*) AS n FROM t").await.unwrap()),
            vec!["| 2 |"]
        );
        watcher.task.abort();
    }
}

/// A library installed as a symlink whose target is replaced (no event reaches the plugin
/// directory): the watch still notices, and the table moves to the new version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_notices_a_symlinked_library_whose_target_was_replaced() {
    use accel_host::HostOptions;
    use accel_host::host::watch::{WatchMode, watch};

    let parent = tempfile::tempdir().unwrap();
    let (plugins, releases) = (
        parent.path().join("plugins"),
        parent.path().join("releases"),
    );
    std::fs::create_dir(&plugins).unwrap();
    std::fs::create_dir(&releases).unwrap();
    let target = releases.join("sqlite-engine.so");
    std::fs::copy(sqlite_library(), &target).unwrap();
    std::os::unix::fs::symlink(&target, plugins.join("libaccel_engine_sqlite_plugin.so")).unwrap();
    let data = tempfile::tempdir().unwrap();
    let host = Arc::new(Host::start(&HostOptions {
        plugin_dirs: vec![plugins.clone()],
        use_plugin_path_var: false,
        data_dir: data.path().to_owned(),
        ..HostOptions::default()
    }));
    host.sql("CREATE EXTERNAL TABLE t (id BIGINT) STORED AS sqlite LOCATION ':memory:'")
        .await
        .unwrap();
    assert_eq!(generation_of(&host, "t").await, "0.1.0");
    let (reports, mut received) = tokio::sync::mpsc::unbounded_channel();
    let watcher = watch(
        Arc::clone(&host),
        std::time::Duration::from_millis(200),
        move |report| {
            let _ = reports.send(report.to_string());
        },
    );
    assert_eq!(watcher.mode, WatchMode::Events);
    // A release replaces the symlink's target (copy, then rename over it).
    drop_in(&sqlite_v2_library(), &releases, "sqlite-engine.so");
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while generation_of(&host, "t").await != "0.2.0" {
        match tokio::time::timeout_at(deadline, received.recv()).await {
            Ok(Some(report)) => seen.push(report),
            _ => panic!("no reload moved the table within 60 s; reports: {seen:?}"),
        }
    }
    watcher.task.abort();
}

/// The tables of one file (reached by two spellings of its path) move together or not at all:
/// while their pins disagree both stay, and once the pinned one is dropped the next reload —
/// with no new library — moves the other (a hand-over that could not happen is retried).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_file_moves_whole_and_a_later_reload_retries_what_could_not_move() {
    let plugins = tempfile::tempdir().unwrap();
    install(&sqlite_library(), plugins.path());
    let data = tempfile::tempdir().unwrap();
    let host = host_with(plugins.path(), data.path());
    let file = data.path().join("one.sqlite");
    let respelled = data.path().join(".").join("one.sqlite");
    host.sql(&format!(
        "CREATE EXTERNAL TABLE a (id BIGINT) STORED AS sqlite LOCATION '{}' \
         OPTIONS ('engine_version' '<0.2');
         CREATE EXTERNAL TABLE b (id BIGINT) STORED AS sqlite LOCATION '{}';
         INSERT INTO a VALUES (1), (2);
         INSERT INTO b VALUES (3), (4), (5)",
        file.display(),
        respelled.display()
    ))
    .await
    .unwrap();

    drop_in(
        &sqlite_v2_library(),
        plugins.path(),
        "libaccel_engine_sqlite_plugin-0.2.0.so",
    );
    let report = host.reload().await;
    assert_eq!(report.loaded.len(), 1, "{report}");
    assert!(
        report.moved.is_empty(),
        "neither table moves alone: {report}"
    );
    for table in ["a", "b"] {
        assert_eq!(generation_of(&host, table).await, "0.1.0");
        assert!(
            report
                .kept
                .iter()
                .any(|k| k.contains(&format!("table `{table}`"))
                    && k.contains("do not all choose the same engine version")),
            "{report}"
        );
    }

    host.sql("DROP TABLE a").await.unwrap();
    let report = host.reload().await;
    assert!(report.loaded.is_empty(), "no new library: {report}");
    assert_eq!(report.moved.len(), 1, "{report}");
    assert_eq!(generation_of(&host, "b").await, "0.2.0");
    assert_eq!(
        rows(&host.sql("SELECT count(*) AS n FROM b").await.unwrap()),
        vec!["| 3 |"]
    );
}

/// Descriptors of this process open on `file` itself (not its WAL or shared memory).
fn descriptors_on(file: &std::path::Path) -> usize {
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    open_descriptors()
        .iter()
        .filter(|target| target.ends_with(&format!("/{name}")))
        .count()
}

/// A statement whose client gave up still runs in the old generation's blocking thread when a
/// hand-over comes. The old generation interrupts it and closes the file before the new one
/// opens it: the file is never open in two engine copies (which corrupts it).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hand_over_waits_until_the_old_generation_has_let_go_of_the_file() {
    let plugins = tempfile::tempdir().unwrap();
    install(&sqlite_library(), plugins.path());
    let data = tempfile::tempdir().unwrap();
    let host = host_with(plugins.path(), data.path());
    let file = data.path().join("big.sqlite");
    host.sql(&format!(
        "CREATE EXTERNAL TABLE big (k BIGINT, v BIGINT) STORED AS sqlite LOCATION '{}' \
         OPTIONS ('sqlite_connection_pool_size' '1');
         INSERT INTO big SELECT value % 2 AS k, value AS v FROM generate_series(1, 40000)",
        file.display()
    ))
    .await
    .unwrap();
    // 800 million pairs: runs in SQLite (pushed whole) far longer than its client waits.
    let slow = "SELECT count(*) FROM big a JOIN big b ON a.k = b.k";
    let plan = rows(&host.sql(&format!("EXPLAIN {slow}")).await.unwrap()).join("\n");
    assert!(plan.contains("EngineQueryExec"), "{plan}");
    let abandoned =
        tokio::time::timeout(std::time::Duration::from_millis(500), host.sql(slow)).await;
    assert!(abandoned.is_err(), "the statement was still running");
    assert_eq!(
        descriptors_on(&file),
        1,
        "the abandoned statement's connection"
    );

    drop_in(
        &sqlite_v2_library(),
        plugins.path(),
        "libaccel_engine_sqlite_plugin-0.2.0.so",
    );
    let report = host.reload().await;
    assert_eq!(report.moved.len(), 1, "{report}");
    assert_eq!(generation_of(&host, "big").await, "0.2.0");
    assert_eq!(
        rows(&host.sql("SELECT count(*) AS n FROM big").await.unwrap()),
        vec!["| 40000 |"]
    );
    assert_eq!(
        descriptors_on(&file),
        1,
        "only the new generation's connection: the old one stopped the abandoned statement \
         and closed the file"
    );
}
