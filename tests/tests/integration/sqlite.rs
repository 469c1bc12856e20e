//! The SQLite plugin: every documented type round-trips (compared with the arrow engine holding
//! the same rows) and is stored as documented (read back by an independent SQLite client), WAL
//! in file mode, `sqlite_busy_timeout` bounding the wait for another process's lock, values
//! SQLite cannot hold refused with nothing written, and one query joining tables of three
//! engines.

use super::common::{host_with, plugin_dir_with_both_engines, rows};

const COLUMNS: &str = "(id INT NOT NULL, b BOOLEAN, i8 TINYINT, i16 SMALLINT, i64 BIGINT, \
    u8 TINYINT UNSIGNED, u64 BIGINT UNSIGNED, r FLOAT, f DOUBLE, s VARCHAR, bin BYTEA, \
    d DATE, t TIME, ts TIMESTAMP, dec DECIMAL(20,4), l INT[], st STRUCT<a INT, b VARCHAR>)";

const ROWS: &str = "(1, true, -128, 32767, -9223372036854775808, 255, 9223372036854775807, \
      1.5, 2.5e-300, 'it''s é', CAST('ab' AS BYTEA), DATE '2024-01-05', TIME '13:45:07.123456', \
      TIMESTAMP '2024-01-05 13:45:07.123456789', CAST('1234567890123.4567' AS DECIMAL(20,4)), [1, NULL, 3], \
      named_struct('a', 1, 'b', 'x')),
    (2, false, 0, 0, 0, 0, 0, CAST('Infinity' AS FLOAT), 1e300, '', CAST('' AS BYTEA), \
      DATE '0001-01-01', TIME '00:00:00', TIMESTAMP '1900-02-28 00:00:00', -0.0001, [], \
      named_struct('a', NULL, 'b', NULL)),
    (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
      NULL, NULL)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_type_round_trips_and_is_stored_as_documented() {
    let plugins = plugin_dir_with_both_engines();
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("types.sqlite");
    let host = host_with(plugins.path(), data.path());
    host.sql(&format!(
        "CREATE EXTERNAL TABLE reference {COLUMNS} STORED AS arrow LOCATION ':memory:';
         CREATE EXTERNAL TABLE in_memory {COLUMNS} STORED AS sqlite LOCATION ':memory:';
         CREATE EXTERNAL TABLE in_file {COLUMNS} STORED AS sqlite LOCATION '{}';
         INSERT INTO reference VALUES {ROWS};
         INSERT INTO in_memory VALUES {ROWS};
         INSERT INTO in_file VALUES {ROWS}",
        file.display()
    ))
    .await
    .unwrap();
    let expected = rows(&host.sql("SELECT * FROM reference").await.unwrap());
    assert_eq!(expected.len(), 3);
    for table in ["in_memory", "in_file"] {
        let found = rows(&host.sql(&format!("SELECT * FROM {table}")).await.unwrap());
        assert_eq!(found, expected, "{table}");
    }

    // What an independent SQLite client finds in the file, once the host has closed it: two
    // copies of SQLite in one process do not see each other's locks.
    assert!(host.shutdown().await.is_empty());
    drop(host);
    let conn = rusqlite::Connection::open(&file).unwrap();
    let journal: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
    let stored: (String, String, String, String, String, i64, i64) = conn
        .query_row(
            "SELECT d, typeof(d), dec, typeof(dec), l, b, ts FROM in_file WHERE id = 1",
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            },
        )
        .unwrap();
    assert_eq!(
        stored,
        (
            "2024-01-05".to_owned(),
            "text".to_owned(),
            "1234567890123.4567".to_owned(),
            "text".to_owned(),
            "[1,null,3]".to_owned(),
            1,
            1_704_462_307_123_456_789
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_sqlite_cannot_hold_are_refused_and_nothing_is_written() {
    let plugins = plugin_dir_with_both_engines();
    let data = tempfile::tempdir().unwrap();
    let host = host_with(plugins.path(), data.path());
    host.sql(
        "CREATE EXTERNAL TABLE v (id INT, f DOUBLE, u BIGINT UNSIGNED, d DATE) STORED AS sqlite \
         LOCATION ':memory:';
         INSERT INTO v VALUES (1, 1.0, 1, DATE '2024-01-01')",
    )
    .await
    .unwrap();
    for (insert, reason) in [
        (
            "INSERT INTO v VALUES (2, 2.0, 2, NULL), (3, CAST('NaN' AS DOUBLE), 3, NULL)",
            "column `f` (Float64): row 1 is NaN",
        ),
        (
            "INSERT INTO v VALUES (6, -0.0, 6, NULL)",
            "column `f` (Float64): row 0 is -0.0, which SQLite cannot store",
        ),
        (
            "INSERT INTO v VALUES (4, 4.0, 18446744073709551615, NULL)",
            "column `u` (UInt64)",
        ),
        (
            "INSERT INTO v VALUES (5, 5.0, 5, CAST(CAST(3000000 AS INT) AS DATE))",
            "outside the years 0000-9999",
        ),
    ] {
        let error = host.sql(insert).await.unwrap_err().to_string();
        assert!(
            error.contains(reason) && error.contains("nothing was written"),
            "{insert}: {error}"
        );
    }
    let unsupported = host
        .sql("CREATE EXTERNAL TABLE w (i INTERVAL) STORED AS sqlite LOCATION ':memory:'")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        unsupported.contains("column `i`: type Interval(MonthDayNano) cannot be stored"),
        "{unsupported}"
    );
    let count = host.sql("SELECT count(*) FROM v").await.unwrap();
    assert_eq!(rows(&count), vec!["| 1        |"]);
}

/// Another process holding the write lock of a SQLite file (`BEGIN IMMEDIATE`) until released.
/// A process, not a connection in this one: POSIX locks do not conflict within one process, so
/// a second copy of SQLite here would not see the plugin's locks (nor the plugin its).
struct LockHolder(std::process::Child);

impl LockHolder {
    fn start(file: &std::path::Path) -> Self {
        use std::io::BufRead;
        let script = "import sqlite3, sys\n\
            c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
            c.execute('BEGIN IMMEDIATE')\n\
            print('locked', flush=True)\n\
            sys.stdin.read()\n\
            c.execute('ROLLBACK')\n";
        let mut child = std::process::Command::new("python3")
            .args(["-c", script])
            .arg(file)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 (with its sqlite3 module) holds the lock");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "locked");
        Self(child)
    }

    fn release(mut self) {
        drop(self.0.stdin.take());
        assert!(self.0.wait().unwrap().success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_timeout_bounds_the_wait_for_another_process_lock() {
    let plugins = plugin_dir_with_both_engines();
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("busy.sqlite");
    let host = host_with(plugins.path(), data.path());
    host.sql(&format!(
        "CREATE EXTERNAL TABLE busy (id INT) STORED AS sqlite LOCATION '{}' \
         OPTIONS ('sqlite_busy_timeout' '300ms');
         INSERT INTO busy VALUES (1)",
        file.display()
    ))
    .await
    .unwrap();

    let holder = LockHolder::start(&file);
    let started = std::time::Instant::now();
    let error = host
        .sql("INSERT INTO busy VALUES (2)")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("raise it") && error.contains("sqlite_busy_timeout"),
        "{error}"
    );
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(300),
        "waited the timeout before giving up"
    );
    // Readers are not blocked by the other writer (WAL).
    let count = host.sql("SELECT count(*) FROM busy").await.unwrap();
    assert_eq!(rows(&count), vec!["| 1        |"]);
    holder.release();
    host.sql("INSERT INTO busy VALUES (2)").await.unwrap();
    let count = host.sql("SELECT count(*) FROM busy").await.unwrap();
    assert_eq!(rows(&count), vec!["| 2        |"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overwrite_replaces_and_a_memory_table_joins_with_itself() {
    let plugins = plugin_dir_with_both_engines();
    let data = tempfile::tempdir().unwrap();
    let host = host_with(plugins.path(), data.path());
    host.sql(
        "CREATE EXTERNAL TABLE m (id BIGINT, parent BIGINT) STORED AS sqlite LOCATION ':memory:' \
         OPTIONS ('sqlite_connection_pool_size' '2');
         INSERT INTO m SELECT value, value / 2 FROM generate_series(1, 20000)",
    )
    .await
    .unwrap();
    let joined = host
        .sql("SELECT count(*) FROM m child JOIN m parent ON child.parent = parent.id")
        .await
        .unwrap();
    assert_eq!(rows(&joined), vec!["| 19999    |"]);
    host.sql("INSERT OVERWRITE m VALUES (1, 0), (2, 1)")
        .await
        .unwrap();
    let after = host.sql("SELECT id, parent FROM m").await.unwrap();
    assert_eq!(rows(&after), vec!["| 1  | 0      |", "| 2  | 1      |"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_query_joins_duckdb_sqlite_and_arrow_tables() {
    let plugins = plugin_dir_with_both_engines();
    let data = tempfile::tempdir().unwrap();
    let host = host_with(plugins.path(), data.path());
    host.sql(&format!(
        "CREATE EXTERNAL TABLE orders (id BIGINT, customer BIGINT, amount BIGINT) STORED AS duckdb \
         LOCATION '{}';
         CREATE EXTERNAL TABLE customers (id BIGINT, country VARCHAR) STORED AS sqlite \
         LOCATION '{}';
         CREATE EXTERNAL TABLE countries (code VARCHAR, region VARCHAR) STORED AS arrow \
         LOCATION ':memory:';
         INSERT INTO orders SELECT value AS id, value % 100 AS customer, value AS amount \
         FROM generate_series(1, 10000);
         INSERT INTO customers SELECT value AS id, \
         CASE WHEN value % 2 = 0 THEN 'no' ELSE 'fr' END AS country FROM generate_series(0, 99);
         INSERT INTO countries VALUES ('no', 'north'), ('fr', 'west')",
        data.path().join("orders.duckdb").display(),
        data.path().join("customers.sqlite").display()
    ))
    .await
    .unwrap();
    let totals = host
        .sql(
            "SELECT k.region, count(*) AS orders, sum(o.amount) AS total \
             FROM orders o JOIN customers c ON o.customer = c.id \
             JOIN countries k ON c.country = k.code GROUP BY k.region",
        )
        .await
        .unwrap();
    // Reference: customer = id % 100 is even for even ids, so 'north' holds the even ids.
    let even: i64 = (1..=10000i64).filter(|v| v % 2 == 0).sum();
    let odd: i64 = (1..=10000i64).filter(|v| v % 2 == 1).sum();
    let expected_rows = vec![
        format!("| north  | 5000   | {even:<8} |"),
        format!("| west   | 5000   | {odd:<8} |"),
    ];
    assert_eq!(rows(&totals), expected_rows);
}
