//! DuckDB plugin writes: an overwrite is atomic for concurrent readers, a failing insert leaves
//! the table as it was, and values of every supported type come back as they went in.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;

use super::common::{host_with, plugin_dir_with_duckdb, rows};

const ROWS: i64 = 50_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overwrite_is_atomic_for_sixteen_concurrent_readers_sharing_four_connections() {
    let plugins = plugin_dir_with_duckdb();
    let data = tempfile::tempdir().unwrap();
    let host = Arc::new(host_with(plugins.path(), data.path()));
    host.sql(&format!(
        "CREATE EXTERNAL TABLE t (i BIGINT) STORED AS duckdb LOCATION ':memory:'
           OPTIONS ('duckdb_connection_pool_size' '4');
         INSERT INTO t SELECT value FROM generate_series(1, {ROWS})"
    ))
    .await
    .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..16 {
        let (host, done) = (Arc::clone(&host), Arc::clone(&done));
        readers.push(tokio::spawn(async move {
            let mut reads = 0;
            while !done.load(Ordering::Acquire) || reads == 0 {
                let batches = host.sql("SELECT count(*), sum(i) FROM t").await.unwrap();
                let count = batches[0].column(0).as_primitive::<Int64Type>().value(0);
                let sum = batches[0].column(1).as_primitive::<Int64Type>().value(0);
                assert_eq!(count, ROWS, "a reader saw a partial table");
                let base = ROWS * (ROWS + 1) / 2;
                assert_eq!((sum - base) % ROWS, 0, "a reader saw rows of two versions");
                reads += 1;
            }
            reads
        }));
    }
    for round in 1..=8 {
        host.sql(&format!(
            "INSERT OVERWRITE t SELECT value + {round} FROM generate_series(1, {ROWS})"
        ))
        .await
        .unwrap();
    }
    done.store(true, Ordering::Release);
    for reader in readers {
        assert!(reader.await.unwrap() > 0);
    }
    let last = host.sql("SELECT min(i), max(i) FROM t").await.unwrap();
    let min = last[0].column(0).as_primitive::<Int64Type>().value(0);
    let max = last[0].column(1).as_primitive::<Int64Type>().value(0);
    assert_eq!((min, max), (9, ROWS + 8), "the last overwrite won");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_insert_leaves_the_table_as_it_was() {
    let plugins = plugin_dir_with_duckdb();
    let data = tempfile::tempdir().unwrap();
    let host = host_with(plugins.path(), data.path());
    host.sql(
        "CREATE EXTERNAL TABLE t (i BIGINT) STORED AS duckdb LOCATION ':memory:';
         INSERT INTO t VALUES (1), (2), (3)",
    )
    .await
    .unwrap();
    // Fails on row 60000, after several batches were already appended.
    let failed = host
        .sql(
            "INSERT INTO t SELECT CASE WHEN value < 60000 THEN value \
             ELSE CAST(concat('x', value) AS BIGINT) END FROM generate_series(1, 100000)",
        )
        .await;
    assert!(failed.is_err());
    let failed = host
        .sql("INSERT OVERWRITE t SELECT CAST(concat('x', value) AS BIGINT) FROM generate_series(1, 10)")
        .await;
    assert!(failed.is_err());
    let kept = host
        .sql("SELECT count(*) AS n, sum(i) AS s FROM t")
        .await
        .unwrap();
    assert_eq!(rows(&kept), vec!["| 3 | 6 |"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_of_every_supported_type_round_trip() {
    let plugins = plugin_dir_with_duckdb();
    let data = tempfile::tempdir().unwrap();
    let host = host_with(plugins.path(), data.path());
    let columns = "(t TINYINT, sm SMALLINT, i INT, b BIGINT, ut TINYINT UNSIGNED, ui INT UNSIGNED, \
         ub BIGINT UNSIGNED, r REAL, d DOUBLE, dec DECIMAL(12, 3), ok BOOLEAN, s VARCHAR, \
         bin BYTEA, day DATE, tm TIME, ts TIMESTAMP, l INT[], st STRUCT<a INT, b VARCHAR>)";
    let values = "(-128, -32768, -2147483647, -9223372036854775807, 255, 4294967295, \
         18446744073709551615, 1.5, -2.25, 123456789.123, true, 'héllo ''q''', X'00ff10', \
         DATE '1969-07-20', TIME '23:59:59.123456', TIMESTAMP '2024-02-29 12:34:56.789012', \
         [1, NULL, 3], named_struct('a', 7, 'b', 'x')), \
         (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
         NULL, NULL, NULL, NULL)";
    host.sql(&format!(
        "CREATE EXTERNAL TABLE dt {columns} STORED AS duckdb LOCATION ':memory:';
         CREATE EXTERNAL TABLE at {columns} STORED AS arrow LOCATION ':memory:';
         INSERT INTO dt VALUES {values};
         INSERT INTO at VALUES {values}"
    ))
    .await
    .unwrap();
    let from_duckdb = host.sql("SELECT * FROM dt").await.unwrap();
    let reference = host.sql("SELECT * FROM at").await.unwrap();
    assert_eq!(from_duckdb[0].schema(), reference[0].schema());
    assert_eq!(rows(&from_duckdb), rows(&reference));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intervals_round_trip_and_null_intervals_are_refused_not_zeroed() {
    let plugins = plugin_dir_with_duckdb();
    let data = tempfile::tempdir().unwrap();
    let host = host_with(plugins.path(), data.path());
    host.sql(
        "CREATE EXTERNAL TABLE iv (i INTERVAL) STORED AS duckdb LOCATION ':memory:';
         INSERT INTO iv VALUES (INTERVAL '1 month 2 days 3 hours'), (INTERVAL '-5 minutes')",
    )
    .await
    .unwrap();
    let stored = host
        .sql("SELECT CAST(i AS VARCHAR) AS i FROM iv")
        .await
        .unwrap();
    let mut found = rows(&stored);
    found.sort();
    assert_eq!(
        found,
        vec!["| -5 mins               |", "| 1 mons 2 days 3 hours |"]
    );
    let refused = host
        .sql("INSERT INTO iv VALUES (INTERVAL '1 day'), (NULL)")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("NULL Interval(MonthDayNano) values cannot be written"),
        "{refused}"
    );
    assert_eq!(
        rows(&host.sql("SELECT count(*) FROM iv").await.unwrap()),
        vec!["| 2        |"]
    );
}

/// Unmounts a test's tmpfs when the test ends, however it ends.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

async fn count(host: &accel_host::Host) -> Result<i64, String> {
    let batches = host
        .sql("SELECT count(*) AS n FROM t")
        .await
        .map_err(|e| e.to_string())?;
    Ok(batches[0].column(0).as_primitive::<Int64Type>().value(0))
}

/// A DuckDB file on a 6 MB tmpfs (4 MB of it ballast) filled by inserts: every insert that returned is in the table
/// (and after a restart), the failing one is not (its error names the engine), and once space
/// is back the same host answers and writes again without a restart. (A failed *checkpoint*
/// invalidates DuckDB's database instead; the engine's reopening of it is pinned by the DuckDB
/// crate's own test.) Needs root to mount the tmpfs; says so and passes otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_loses_no_committed_row_and_writes_resume_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=6m", "tmpfs"])
        .arg(&small)
        .output();
    match &mounted {
        Ok(out) if out.status.success() => {}
        other => {
            println!(
                "SKIPPED: cannot mount a 6 MB tmpfs here (needs root): {:?}",
                other
                    .as_ref()
                    .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
            );
            return;
        }
    }
    let _unmount = Unmount(small.clone());
    // Ballast, deleted later to give space back (enough to checkpoint what the WAL holds).
    std::fs::write(small.join("ballast"), vec![1u8; 4 << 20]).unwrap();

    let plugins = plugin_dir_with_duckdb();
    let file = small.join("t.duckdb");
    let create = format!(
        "CREATE EXTERNAL TABLE t (k BIGINT, pad VARCHAR) STORED AS duckdb LOCATION '{}'",
        file.display()
    );
    let host = host_with(plugins.path(), &dir.path().join("data"));
    host.sql(&create).await.unwrap();
    let mut committed = 0_i64;
    let mut failure = None;
    for round in 0..400_i64 {
        let insert = format!(
            "INSERT INTO t SELECT value + {}, md5(CAST(value + {} AS VARCHAR)) \
             FROM generate_series(1, 1000)",
            round * 1000,
            round * 1000
        );
        match host.sql(&insert).await {
            Ok(_) => committed += 1000,
            Err(e) => {
                failure = Some(e.to_string());
                break;
            }
        }
    }
    let failure = failure.expect("the disk fills up within 400 inserts");
    assert!(failure.contains("duckdb"), "the engine is named: {failure}");
    println!("{committed} rows committed before the disk filled: {failure}");

    std::fs::remove_file(small.join("ballast")).unwrap();
    assert_eq!(
        count(&host)
            .await
            .expect("answers once space is back, no restart"),
        committed,
        "every committed row, nothing of the failed insert"
    );
    host.sql("INSERT INTO t VALUES (-1, 'after')")
        .await
        .expect("writes again");
    committed += 1;
    assert_eq!(count(&host).await.unwrap(), committed);
    let failures = host.shutdown().await;
    assert!(failures.is_empty(), "{failures:?}");

    let host = host_with(plugins.path(), &dir.path().join("data"));
    host.sql(&create).await.unwrap();
    assert_eq!(count(&host).await.unwrap(), committed, "after a restart");
    assert!(host.shutdown().await.is_empty());
}
