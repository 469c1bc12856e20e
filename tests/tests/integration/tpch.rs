//! TPC-H at scale factor 0.01, generated in the test: the 22 queries answer identically on
//! DuckDB plugin tables, SQLite plugin tables and DataFusion over parquet files of the same
//! rows; the queries DuckDB runs whole (one statement, nothing left to DataFusion) are
//! pinned, so a translation that stops working shows.

use std::fs::File;

use datafusion::parquet::arrow::ArrowWriter;

use super::common::{SQL_ENGINES, host_with, plugin_dir_with_both_engines};
use super::expressions::whole_in_engine;
use super::federation::{explain, on_engine_tables, run};

/// Run whole by DuckDB at this scale: all but q08, whose decimal division stays in DataFusion
/// (EXPLAIN says so — the README's TPC-H section lists the reasons).
const WHOLE_IN_DUCKDB: &[&str] = &[
    "q01", "q02", "q03", "q04", "q05", "q06", "q07", "q09", "q10", "q11", "q12", "q13", "q14",
    "q15", "q16", "q17", "q18", "q19", "q20", "q21", "q22",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_queries_answer_alike_on_duckdb_sqlite_and_parquet() {
    let data = tempfile::tempdir().unwrap();
    let plugins = plugin_dir_with_both_engines();
    let host = host_with(plugins.path(), data.path());
    for table in accel_tpch::tables(0.01, 8192).unwrap() {
        let parquet = data.path().join(format!("{}.parquet", table.name));
        let file = File::create(&parquet).unwrap();
        let mut writer = ArrowWriter::try_new(file, table.schema.clone(), None).unwrap();
        for batch in &table.batches {
            writer.write(batch).unwrap();
        }
        writer.close().unwrap();
        let name = table.name;
        let mut sql = format!(
            "CREATE EXTERNAL TABLE {name} STORED AS PARQUET LOCATION '{}';",
            parquet.display()
        );
        for (engine, extension) in SQL_ENGINES {
            let database = data.path().join(format!("tpch.{extension}"));
            sql.push_str(&format!(
                "CREATE EXTERNAL TABLE {name}_{engine} {} STORED AS {engine} LOCATION '{}';
                 INSERT INTO {name}_{engine} SELECT * FROM {name};",
                table.column_definitions(),
                database.display()
            ));
        }
        host.sql(&sql).await.unwrap();
    }
    let mut problems = Vec::new();
    let mut whole = Vec::new();
    for (name, query) in accel_tpch::QUERIES {
        let ordered = query.contains("order by");
        let expected = run(&host, query, ordered).await;
        if let Err(error) = &expected {
            problems.push(format!("{name} on parquet: {error}"));
        }
        for (engine, _) in SQL_ENGINES {
            let theirs = on_engine_tables(query, engine, &accel_tpch::TABLES);
            let found = run(&host, &theirs, ordered).await;
            if found != expected {
                problems.push(format!(
                    "{name} on {engine}:\n  expected {expected:?}\n  found    {found:?}"
                ));
            }
            if engine == "duckdb" && whole_in_engine(&explain(&host, &theirs).await) {
                whole.push(name);
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    println!("run whole in DuckDB: {whole:?}");
    for name in WHOLE_IN_DUCKDB {
        assert!(
            whole.contains(name),
            "{name} no longer runs whole in DuckDB (whole: {whole:?})"
        );
    }
}
