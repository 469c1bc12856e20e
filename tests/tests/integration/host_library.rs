//! The host used as a library, with the real DuckDB plugin loaded from a plugin directory.

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Int64Type, UInt64Type};

use super::common::{host_with, plugin_dir_with_duckdb, rows};

fn single_i64(batches: &[RecordBatch]) -> i64 {
    assert_eq!(
        batches.iter().map(RecordBatch::num_rows).sum::<usize>(),
        1,
        "{batches:?}"
    );
    let batch = batches.iter().find(|b| b.num_rows() == 1).unwrap();
    batch.column(0).as_primitive::<Int64Type>().value(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckdb_plugin_memory_table_round_trips_rows() {
    let plugins = plugin_dir_with_duckdb();
    let data = tempfile::tempdir().unwrap();
    let host = host_with(plugins.path(), data.path());
    assert!(
        host.report.problems.is_empty(),
        "{:?}",
        host.report.problems
    );
    assert!(
        host.registry.get("duckdb").is_some(),
        "duckdb plugin not registered"
    );

    host.sql("CREATE EXTERNAL TABLE t (a INT, b VARCHAR) STORED AS duckdb LOCATION ':memory:'")
        .await
        .unwrap();
    let inserted = host
        .sql("INSERT INTO t VALUES (1, 'x'), (2, 'y'), (3, NULL)")
        .await
        .unwrap();
    assert_eq!(
        inserted[0].column(0).as_primitive::<UInt64Type>().value(0),
        3,
        "rows written"
    );
    let sum = host.sql("SELECT sum(a) FROM t").await.unwrap();
    assert_eq!(single_i64(&sum), 6);
    let all = host.sql("SELECT a, b FROM t").await.unwrap();
    assert_eq!(
        rows(&all),
        ["| 1 | x |", "| 2 | y |", "| 3 |   |"]
            .map(str::to_owned)
            .to_vec()
    );
    let count = host.sql("SELECT count(*) FROM t").await.unwrap();
    assert_eq!(
        single_i64(&count),
        3,
        "empty projection returns the row count"
    );
    let limited = host.sql("SELECT b FROM t LIMIT 2").await.unwrap();
    assert_eq!(limited.iter().map(RecordBatch::num_rows).sum::<usize>(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_select_appends_many_batches() {
    let plugins = plugin_dir_with_duckdb();
    let data = tempfile::tempdir().unwrap();
    let host = host_with(plugins.path(), data.path());
    host.sql(
        "CREATE EXTERNAL TABLE big (i BIGINT, s VARCHAR) STORED AS duckdb LOCATION ':memory:';
         INSERT INTO big SELECT value, concat('row', value) FROM generate_series(1, 300000);
         INSERT INTO big SELECT value, 'again' FROM generate_series(1, 1000)",
    )
    .await
    .unwrap();
    let totals = host.sql("SELECT count(*), sum(i) FROM big").await.unwrap();
    let batch = &totals[0];
    assert_eq!(
        batch.column(0).as_primitive::<Int64Type>().value(0),
        301_000
    );
    let expected_sum: i64 = (1..=300_000i64).sum::<i64>() + (1..=1000i64).sum::<i64>();
    assert_eq!(
        batch.column(1).as_primitive::<Int64Type>().value(0),
        expected_sum
    );
    let sample = host
        .sql("SELECT s FROM big WHERE i = 123456 AND s <> 'again'")
        .await
        .unwrap();
    assert_eq!(rows(&sample), vec!["| row123456 |".to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckdb_and_arrow_tables_join_in_one_query() {
    let plugins = plugin_dir_with_duckdb();
    let data = tempfile::tempdir().unwrap();
    let host = host_with(plugins.path(), data.path());
    let joined = host
        .sql(
            "CREATE EXTERNAL TABLE people (id INT, name VARCHAR) STORED AS duckdb LOCATION ':memory:';
             CREATE EXTERNAL TABLE cities (id INT, city VARCHAR) STORED AS arrow LOCATION ':memory:';
             INSERT INTO people VALUES (1, 'ada'), (2, 'linus'), (3, 'grace');
             INSERT INTO cities VALUES (1, 'london'), (3, 'arlington');
             SELECT p.name, c.city FROM people p JOIN cities c ON p.id = c.id",
        )
        .await
        .unwrap();
    assert_eq!(
        rows(&joined),
        ["| ada   | london    |", "| grace | arlington |"]
            .map(str::to_owned)
            .to_vec()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckdb_file_table_keeps_rows_across_hosts() {
    let plugins = plugin_dir_with_duckdb();
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("sub").join("t.duckdb");
    let create = format!(
        "CREATE EXTERNAL TABLE t (a BIGINT, b VARCHAR) STORED AS duckdb LOCATION '{}'",
        file.display()
    );
    {
        let host = host_with(plugins.path(), data.path());
        host.sql(&create).await.unwrap();
        host.sql("INSERT INTO t VALUES (10, 'ten'), (20, 'twenty')")
            .await
            .unwrap();
        assert!(host.shutdown().await.is_empty());
    }
    assert!(file.exists(), "file mode writes {}", file.display());

    // duckdb_file takes precedence over LOCATION
    let chosen = data.path().join("chosen.ddb");
    let host = host_with(plugins.path(), data.path());
    host.sql(&format!(
        "CREATE EXTERNAL TABLE f (a INT) STORED AS duckdb LOCATION '{}' OPTIONS ('duckdb_file' '{}');
         INSERT INTO f VALUES (1)",
        data.path().join("unused.duckdb").display(),
        chosen.display()
    ))
    .await
    .unwrap();
    assert!(host.shutdown().await.is_empty());
    drop(host);
    assert!(chosen.exists() && !data.path().join("unused.duckdb").exists());
    let host = host_with(plugins.path(), data.path());
    host.sql(&create).await.unwrap();
    let total = host.sql("SELECT sum(a) FROM t").await.unwrap();
    assert_eq!(single_i64(&total), 30);
    drop(host);
    let host = host_with(plugins.path(), data.path());

    // Reopening with other columns is refused, naming both schemas.
    let other = host
        .sql(&format!(
            "CREATE EXTERNAL TABLE t2 (a INT) STORED AS duckdb LOCATION '{}'",
            file.display()
        ))
        .await;
    assert!(
        other.is_ok(),
        "a second table in the same file is a new table: {other:?}"
    );
    let mismatch = host
        .sql(&format!(
            "CREATE EXTERNAL TABLE t (x DOUBLE) STORED AS duckdb LOCATION '{}'",
            file.display()
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        mismatch.contains("has columns (a BIGINT, b VARCHAR)"),
        "{mismatch}"
    );
    assert!(mismatch.contains("declares (x DOUBLE)"), "{mismatch}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrow_engine_appends_and_overwrites() {
    let data = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let host = host_with(empty.path(), data.path());
    host.sql(
        "CREATE EXTERNAL TABLE a (x INT) STORED AS arrow LOCATION ':memory:';
         INSERT INTO a VALUES (1), (2);
         INSERT INTO a VALUES (3)",
    )
    .await
    .unwrap();
    assert_eq!(
        single_i64(&host.sql("SELECT sum(x) FROM a").await.unwrap()),
        6
    );
    host.sql("INSERT OVERWRITE a VALUES (40), (2)")
        .await
        .unwrap();
    assert_eq!(
        single_i64(&host.sql("SELECT sum(x) FROM a").await.unwrap()),
        42
    );
    let file_mode = host
        .sql("CREATE EXTERNAL TABLE f (x INT) STORED AS arrow LOCATION 'x.arrow'")
        .await
        .unwrap_err()
        .to_string();
    assert!(file_mode.contains("use LOCATION ':memory:'"), "{file_mode}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_engine_and_option_errors_say_what_exists() {
    let plugins = plugin_dir_with_duckdb();
    let data = tempfile::tempdir().unwrap();
    let host = host_with(plugins.path(), data.path());
    let unknown = host
        .sql("CREATE EXTERNAL TABLE t (a INT) STORED AS sqlite LOCATION ':memory:'")
        .await
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("no engine named `sqlite`"), "{unknown}");
    assert!(unknown.contains("arrow, duckdb"), "{unknown}");
    assert!(
        unknown.contains(&plugins.path().display().to_string()),
        "{unknown}"
    );

    let option = host
        .sql("CREATE EXTERNAL TABLE t (a INT) STORED AS duckdb LOCATION ':memory:' OPTIONS ('duckdb_memroy_limit' '1GB')")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        option.contains("no option `duckdb_memroy_limit`"),
        "{option}"
    );
    assert!(option.contains("duckdb_memory_limit"), "{option}");

    let memory_file = host
        .sql("CREATE EXTERNAL TABLE t (a INT) STORED AS duckdb LOCATION ':memory:' OPTIONS ('duckdb_file' 'x.duckdb')")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        memory_file.contains("duckdb_file needs a file-mode table"),
        "{memory_file}"
    );

    let pool = host
        .sql("CREATE EXTERNAL TABLE t (a INT) STORED AS duckdb LOCATION ':memory:' OPTIONS ('duckdb_connection_pool_size' 'many')")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        pool.contains("duckdb_connection_pool_size must be a positive integer, found `many`"),
        "{pool}"
    );

    let extension = host
        .sql("CREATE EXTERNAL TABLE t (a INT) STORED AS duckdb LOCATION 'data.csv'")
        .await
        .unwrap_err()
        .to_string();
    assert!(extension.contains("extension `csv`"), "{extension}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrow_partitions_by_key_and_equality_filters_prune_them() {
    let data = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let host = host_with(empty.path(), data.path());
    let rows_sql = "('a', 1), ('b', 2), ('c', 3), ('b', 4), (NULL, 5), ('a', 6)";
    host.sql(&format!(
        "CREATE EXTERNAL TABLE p (k VARCHAR, v INT) STORED AS arrow LOCATION ':memory:' PARTITIONED BY (k);
         CREATE EXTERNAL TABLE flat (k VARCHAR, v INT) STORED AS arrow LOCATION ':memory:';
         INSERT INTO p VALUES {rows_sql};
         INSERT INTO flat VALUES {rows_sql}"
    ))
    .await
    .unwrap();
    let plan = |sql: String| {
        let host = &host;
        async move { rows(&host.sql(&format!("EXPLAIN {sql}")).await.unwrap()).join("\n") }
    };
    for (predicate, partitions) in [
        ("k = 'b'", "partitions=1"),
        ("k IN ('a', 'c')", "partitions=2"),
        ("k = 'zzz'", "partitions=1, partition_sizes=[0]"),
        ("v > 1", "partitions=4"),
        ("k = 'b' OR v = 5", "partitions=4"),
    ] {
        let query = format!("SELECT k, v FROM p WHERE {predicate}");
        let explained = plan(query.clone()).await;
        assert!(explained.contains(partitions), "{predicate}: {explained}");
        let expected = rows(&host.sql(&query.replace(" p ", " flat ")).await.unwrap());
        assert_eq!(
            rows(&host.sql(&query).await.unwrap()),
            expected,
            "{predicate}"
        );
    }
    host.sql("INSERT OVERWRITE p VALUES ('z', 26)")
        .await
        .unwrap();
    assert_eq!(
        rows(&host.sql("SELECT k, v FROM p").await.unwrap()),
        vec!["| z | 26 |"]
    );
    let missing = host
        .sql("CREATE EXTERNAL TABLE q (v INT) STORED AS arrow LOCATION ':memory:' PARTITIONED BY (nope)")
        .await
        .unwrap_err()
        .to_string();
    assert!(missing.contains("nope"), "{missing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_version_pins_and_unsupported_options_are_refused() {
    let plugins = plugin_dir_with_duckdb();
    let data = tempfile::tempdir().unwrap();
    let host = host_with(plugins.path(), data.path());
    host.sql("CREATE EXTERNAL TABLE ok (a INT) STORED AS duckdb LOCATION ':memory:' OPTIONS ('engine_version' '^0.1')")
        .await
        .unwrap();
    let pinned = host
        .sql("CREATE EXTERNAL TABLE future (a INT) STORED AS duckdb LOCATION ':memory:' OPTIONS ('engine_version' '>=2')")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        pinned.contains("needs engine `duckdb` >=2, but the loaded generations are: 0.1.0 (active"),
        "{pinned}"
    );
    let bad = host
        .sql("CREATE EXTERNAL TABLE b (a INT) STORED AS duckdb LOCATION ':memory:' OPTIONS ('engine_version' 'latest')")
        .await
        .unwrap_err()
        .to_string();
    assert!(bad.contains("is not a semver requirement"), "{bad}");
    let keys = host
        .sql("CREATE EXTERNAL TABLE k (a INT) STORED AS arrow LOCATION ':memory:' OPTIONS ('on_conflict' 'a:upsert')")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        keys.contains(
            "arrow engine has no keys, indexes or snapshots: remove option `on_conflict`"
        ),
        "{keys}"
    );
}
