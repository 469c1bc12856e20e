//! Keys of DuckDB and SQLite plugin tables: a duplicate key is refused with nothing written,
//! `on_conflict` merges rows the way a reference computed here says, and `indexes` exist in the
//! file as an independent client of each database sees it.

use std::collections::BTreeMap;

use super::common::{
    SQL_ENGINES, accel, host_with, plugin_dir_with_both_engines, plugin_dir_with_duckdb, rows,
    stderr,
};

/// Rows `(id, v)` as the table should hold them after applying `batches` with the given
/// policy: `upsert` keeps the last row of each key, `drop` the first.
fn reference(batches: &[Vec<(i64, &str)>], upsert: bool) -> Vec<String> {
    let mut table: BTreeMap<i64, String> = BTreeMap::new();
    for batch in batches {
        for (id, v) in batch {
            if upsert || !table.contains_key(id) {
                table.insert(*id, v.to_string());
            }
        }
    }
    let mut rendered: Vec<String> = table.iter().map(|(id, v)| format!("{id}|{v}")).collect();
    rendered.sort();
    rendered
}

fn values(batch: &[(i64, &str)]) -> String {
    batch
        .iter()
        .map(|(id, v)| format!("({id}, '{v}')"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn table_rows(host: &accel_host::Host, table: &str) -> Vec<String> {
    let batches = host
        .sql(&format!(
            "SELECT concat(CAST(id AS VARCHAR), '|', v) AS r FROM {table}"
        ))
        .await
        .unwrap();
    let mut found: Vec<String> = rows(&batches)
        .iter()
        .map(|l| l.trim_matches(|c| c == '|' || c == ' ').to_owned())
        .collect();
    found.sort();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_conflict_upsert_and_drop_match_the_reference() {
    let plugins = plugin_dir_with_both_engines();
    let data = tempfile::tempdir().unwrap();
    let host = host_with(plugins.path(), data.path());
    for (engine, _) in SQL_ENGINES {
        merges_match_the_reference(&host, engine).await;
    }
}

async fn merges_match_the_reference(host: &accel_host::Host, engine: &str) {
    let batches: Vec<Vec<(i64, &str)>> = vec![
        vec![(1, "a"), (2, "b"), (3, "c")],
        vec![(2, "B"), (4, "d"), (4, "D"), (1, "A")],
        vec![(5, "e"), (3, "C"), (5, "E")],
    ];
    for (policy, upsert) in [("upsert", true), ("drop", false)] {
        let table = format!("k_{engine}_{policy}");
        host.sql(&format!(
            "CREATE EXTERNAL TABLE {table} (id BIGINT, v VARCHAR) STORED AS {engine} \
             LOCATION ':memory:' OPTIONS ('on_conflict' 'id:{policy}')"
        ))
        .await
        .unwrap();
        for batch in &batches {
            host.sql(&format!("INSERT INTO {table} VALUES {}", values(batch)))
                .await
                .unwrap();
        }
        assert_eq!(
            table_rows(host, &table).await,
            reference(&batches, upsert),
            "{engine} {policy}"
        );
    }
    // many batches through the staging table
    host.sql(&format!(
        "CREATE EXTERNAL TABLE big_{engine} (id BIGINT, v VARCHAR) STORED AS {engine} \
         LOCATION ':memory:' OPTIONS ('on_conflict' 'id:upsert');
         INSERT INTO big_{engine} SELECT value % 1000, CAST(value AS VARCHAR) \
         FROM generate_series(1, 100000)"
    ))
    .await
    .unwrap();
    // Rows of an INSERT … SELECT have no order (DataFusion may run the SELECT in parallel),
    // so which duplicate wins is not defined here: one row per key, from that key's rows.
    let wrong = host
        .sql(&format!(
            "SELECT count(*) FROM big_{engine} WHERE CAST(v AS BIGINT) % 1000 <> id"
        ))
        .await
        .unwrap();
    assert_eq!(rows(&wrong), vec!["| 0        |"], "{engine}");
    let total = host
        .sql(&format!("SELECT count(*) FROM big_{engine}"))
        .await
        .unwrap();
    assert_eq!(rows(&total), vec!["| 1000     |"], "{engine}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_key_without_on_conflict_writes_nothing_and_says_what_to_do() {
    let plugins = plugin_dir_with_both_engines();
    let data = tempfile::tempdir().unwrap();
    let host = host_with(plugins.path(), data.path());
    for (engine, _) in SQL_ENGINES {
        duplicates_are_refused(&host, engine).await;
    }
}

async fn duplicates_are_refused(host: &accel_host::Host, engine: &str) {
    let k = format!("k_{engine}");
    host.sql(&format!(
        "CREATE EXTERNAL TABLE {k} (id BIGINT, v VARCHAR) STORED AS {engine} \
         LOCATION ':memory:' OPTIONS ('primary_key' 'id');
         INSERT INTO {k} VALUES (1, 'a'), (2, 'b')"
    ))
    .await
    .unwrap();
    for insert in [
        format!("INSERT INTO {k} VALUES (3, 'c'), (1, 'again')"),
        format!("INSERT INTO {k} VALUES (4, 'd'), (4, 'e')"),
    ] {
        let error = host.sql(&insert).await.unwrap_err().to_string();
        assert!(
            error.contains("rejected, nothing was written"),
            "{engine}: {error}"
        );
        assert!(
            error.contains("('on_conflict' 'id:upsert')"),
            "{engine}: {error}"
        );
    }
    assert_eq!(table_rows(host, &k).await, vec!["1|a", "2|b"], "{engine}");

    let bad = host
        .sql(&format!(
            "CREATE EXTERNAL TABLE bad_{engine} (id BIGINT) STORED AS {engine} \
             LOCATION ':memory:' OPTIONS ('on_conflict' 'id:merge')"
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        bad.contains("unknown action `merge`; expected `upsert` or `drop`"),
        "{engine}: {bad}"
    );
}

#[test]
fn indexes_and_keys_are_in_the_file_for_an_independent_client() {
    let plugins = plugin_dir_with_duckdb();
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("shop.duckdb");
    let out = accel(&[
        "--plugin-dir",
        plugins.path().to_str().unwrap(),
        "sql",
        &format!(
            "CREATE EXTERNAL TABLE shop (id BIGINT, city VARCHAR, code VARCHAR) STORED AS duckdb \
             LOCATION '{}' OPTIONS ('primary_key' 'id', 'indexes' 'city:enabled;(code):unique'); \
             INSERT INTO shop VALUES (1, 'paris', 'p1'), (2, 'oslo', 'o1')",
            file.display()
        ),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    let conn = duckdb::Connection::open(&file).unwrap();
    let mut statement = conn
        .prepare("SELECT index_name, is_unique FROM duckdb_indexes() WHERE table_name = 'shop' ORDER BY index_name")
        .unwrap();
    let indexes: Vec<(String, bool)> = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        indexes,
        vec![
            ("shop_city_idx".to_owned(), false),
            ("shop_code_unique".to_owned(), true)
        ]
    );
    let duplicate = conn.execute("INSERT INTO shop VALUES (1, 'rome', 'r1')", []);
    assert!(
        duplicate.is_err(),
        "the primary key is enforced in the file"
    );
    let count: i64 = conn
        .query_row("SELECT count(*) FROM shop", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 2);
}

#[test]
fn sqlite_indexes_and_keys_are_in_the_file_for_an_independent_client() {
    let plugins = plugin_dir_with_both_engines();
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("shop.sqlite");
    let out = accel(&[
        "--plugin-dir",
        plugins.path().to_str().unwrap(),
        "sql",
        &format!(
            "CREATE EXTERNAL TABLE shop (id BIGINT, city VARCHAR, code VARCHAR) STORED AS sqlite \
             LOCATION '{}' OPTIONS ('primary_key' 'id', 'indexes' 'city:enabled;(code):unique'); \
             INSERT INTO shop VALUES (1, 'paris', 'p1'), (2, 'oslo', 'o1')",
            file.display()
        ),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    let conn = rusqlite::Connection::open(&file).unwrap();
    let mut statement = conn
        .prepare(
            "SELECT name, \"unique\" FROM pragma_index_list('shop') WHERE origin = 'c' \
             ORDER BY name",
        )
        .unwrap();
    let indexes: Vec<(String, bool)> = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        indexes,
        vec![
            ("shop_city_idx".to_owned(), false),
            ("shop_code_unique".to_owned(), true)
        ]
    );
    let key: String = conn
        .query_row(
            "SELECT group_concat(name) FROM pragma_table_info('shop') WHERE pk > 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(key, "id");
    let duplicate = conn.execute("INSERT INTO shop VALUES (1, 'rome', 'r1')", []);
    assert!(
        duplicate.is_err(),
        "the primary key is enforced in the file"
    );
    let count: i64 = conn
        .query_row("SELECT count(*) FROM shop", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 2);
}
