//! The differential corpus at the edges: integer extremes whose sums overflow, ±inf whose sum
//! is NaN, NUL bytes and non-ASCII case in strings, the first and last dates SQLite holds,
//! decimals at the largest precision. Every query answers on the DuckDB and SQLite engines,
//! with subplan pushdown on and off, exactly what DataFusion answers over the same rows in the
//! arrow engine — an engine error where DataFusion answers counts as a different answer.

use super::common::{SQL_ENGINES, host_with, plugin_dir_with_both_engines};

const COLUMNS: &str = "(k INT, i BIGINT, f DOUBLE, s VARCHAR, d DATE, m DECIMAL(38, 10))";

/// Rows every engine stores as they are. (SQLite refuses NaN and reads -0.0 back as 0.0: the
/// DuckDB-only rows below carry those.)
const ROWS: &str = "
    (1, 9223372036854775807, CAST('inf' AS DOUBLE), concat('ab', arrow_cast(X'00', 'Utf8'), 'cd'),
        DATE '0001-01-01', CAST('9999999999999999999999999999.9999999999' AS DECIMAL(38, 10))),
    (1, 1, CAST('-inf' AS DOUBLE), arrow_cast(X'00', 'Utf8'), DATE '9999-12-31',
        CAST('-9999999999999999999999999999.9999999999' AS DECIMAL(38, 10))),
    (2, -9223372036854775808, 0.0, 'ß', DATE '1970-01-01', CAST('0' AS DECIMAL(38, 10))),
    (2, -1, -1.5, 'Straße', NULL, CAST('0.0000000001' AS DECIMAL(38, 10))),
    (3, NULL, 1e308, 'ÉCOLE', DATE '2000-02-29', NULL),
    (3, 5, 1e308, 'école', DATE '1969-12-31', CAST('1' AS DECIMAL(38, 10))),
    (4, 9223372036854775807, 2.5, concat(arrow_cast(X'00', 'Utf8'), 'ß'), DATE '2024-01-01',
        CAST('-0.0000000001' AS DECIMAL(38, 10))),
    (4, 9223372036854775807, 1.0, 'x', DATE '2024-01-01', NULL),
    (NULL, 0, NULL, NULL, NULL, NULL)";

/// DuckDB stores these too.
const DUCKDB_ROWS: &str = "
    (5, 3, CAST('NaN' AS DOUBLE), 'nan', DATE '2024-02-29', NULL),
    (5, 4, -0.0, 'negative zero', DATE '2024-02-29', NULL)";

/// `true`: the order of the rows is part of the answer.
const QUERIES: &[(&str, bool)] = &[
    // integer sums that overflow BIGINT wrap around in DataFusion
    ("SELECT k, sum(i) FROM e GROUP BY k", false),
    (
        "SELECT k FROM e GROUP BY k HAVING sum(i) > 0 ORDER BY k",
        true,
    ),
    (
        "SELECT k, sum(i) AS s FROM e GROUP BY k ORDER BY s, k LIMIT 2",
        true,
    ),
    (
        "SELECT sum(i), count(*), count(i), min(i), max(i) FROM e",
        false,
    ),
    ("SELECT sum(DISTINCT i) FROM e", false),
    ("SELECT k, avg(i) FROM e GROUP BY k", false),
    // inf + -inf is NaN, 1e308 + 1e308 is inf
    ("SELECT k, sum(f), avg(f) FROM e GROUP BY k", false),
    ("SELECT count(*) FROM e WHERE f > 1e300", false),
    ("SELECT k, f FROM e WHERE f < 0", false),
    // NUL bytes inside strings
    ("SELECT count(*) FROM e WHERE s LIKE 'ab%d'", false),
    ("SELECT count(*) FROM e WHERE s NOT LIKE '_'", false),
    ("SELECT count(*) FROM e WHERE s LIKE '_ß'", false),
    (
        "SELECT k, count(*) FROM e WHERE s LIKE '%' GROUP BY k",
        false,
    ),
    ("SELECT k, length(s) FROM e WHERE s > 'a'", false),
    // non-ASCII case
    ("SELECT count(*) FROM e WHERE s ILIKE 'é%'", false),
    ("SELECT upper(s), lower(s) FROM e WHERE k IN (2, 3)", false),
    (
        "SELECT s, count(*) FROM e WHERE s = 'ß' OR s = 'École' GROUP BY s",
        false,
    ),
    ("SELECT min(s), max(s) FROM e", false),
    // the first and last dates
    ("SELECT min(d), max(d), count(DISTINCT d) FROM e", false),
    ("SELECT d, count(*) FROM e GROUP BY d", false),
    (
        "SELECT k FROM e WHERE d < DATE '1000-01-01' OR d > DATE '9000-01-01'",
        false,
    ),
    // decimals at precision 38
    ("SELECT k, m FROM e WHERE k < 5", false),
    (
        "SELECT k, m FROM e WHERE m > CAST('0' AS DECIMAL(38, 10))",
        false,
    ),
];

/// The rows of `sql`'s answer as text, sorted unless their order is part of the answer; an
/// error is an answer too.
async fn answer(host: &accel_host::Host, sql: &str, ordered: bool) -> Result<Vec<String>, String> {
    let batches = host.sql(sql).await.map_err(|e| e.to_string())?;
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .map_err(|e| e.to_string())?
        .to_string();
    let mut rows: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with('|'))
        .skip(1)
        .map(|l| l.split('|').map(str::trim).collect::<Vec<_>>().join("|"))
        .collect();
    if !ordered {
        rows.sort();
    }
    Ok(rows)
}

/// `sql` (which reads `FROM e`) over `table` instead.
fn on(sql: &str, table: &str) -> String {
    sql.replace("FROM e", &format!("FROM {table}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_values_answer_what_datafusion_answers_federated_or_not() {
    let plugins = plugin_dir_with_both_engines();
    let data = tempfile::tempdir().unwrap();
    let host = host_with(plugins.path(), data.path());
    host.sql(&format!(
        "CREATE EXTERNAL TABLE e {COLUMNS} STORED AS arrow LOCATION ':memory:';
         INSERT INTO e VALUES {ROWS};
         CREATE EXTERNAL TABLE e_all {COLUMNS} STORED AS arrow LOCATION ':memory:';
         INSERT INTO e_all VALUES {ROWS}, {DUCKDB_ROWS}"
    ))
    .await
    .unwrap();
    let mut tables = Vec::new();
    for (engine, extension) in SQL_ENGINES {
        for mode in ["memory", "file"] {
            let location = match mode {
                "memory" => ":memory:".to_owned(),
                _ => data
                    .path()
                    .join(format!("edge.{extension}"))
                    .display()
                    .to_string(),
            };
            let table = format!("e_{engine}_{mode}");
            let rows = if engine == "duckdb" {
                format!("{ROWS}, {DUCKDB_ROWS}")
            } else {
                ROWS.to_owned()
            };
            host.sql(&format!(
                "CREATE EXTERNAL TABLE {table} {COLUMNS} STORED AS {engine} LOCATION '{location}';
                 INSERT INTO {table} VALUES {rows}"
            ))
            .await
            .unwrap_or_else(|e| panic!("{table}: {e}"));
            let reference = if engine == "duckdb" { "e_all" } else { "e" };
            tables.push((table, reference));
        }
    }

    let mut differences = Vec::new();
    let mut compared = 0;
    for federation in [true, false] {
        host.sql(&format!("SET accel.federation = {federation}"))
            .await
            .unwrap();
        for (table, reference) in &tables {
            for (query, ordered) in QUERIES {
                let expected = answer(&host, &on(query, reference), *ordered).await;
                let found = answer(&host, &on(query, table), *ordered).await;
                compared += 1;
                if expected.is_err() || expected != found {
                    differences.push(format!(
                        "{} (federation {federation})\n  datafusion: {expected:?}\n  {table}: \
                         {found:?}",
                        on(query, table)
                    ));
                }
            }
        }
    }
    assert_eq!(compared, 2 * tables.len() * QUERIES.len());
    assert!(
        differences.is_empty(),
        "{} of {compared} answers differ:\n\n{}",
        differences.len(),
        differences.join("\n\n")
    );
}

/// The queries that overflowed inside the engines before run there whole now (wrapped sums),
/// rather than by falling back to DataFusion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrapping_sums_still_run_inside_the_engine() {
    let plugins = plugin_dir_with_both_engines();
    let data = tempfile::tempdir().unwrap();
    let host = host_with(plugins.path(), data.path());
    for (engine, _) in SQL_ENGINES {
        host.sql(&format!(
            "CREATE EXTERNAL TABLE w_{engine} (k INT, v BIGINT) STORED AS {engine} LOCATION ':memory:';
             INSERT INTO w_{engine} VALUES (1, 9223372036854775807), (1, 1), (2, 5)"
        ))
        .await
        .unwrap();
        let sql = format!("SELECT k FROM w_{engine} GROUP BY k HAVING sum(v) > 0 ORDER BY k");
        let plan =
            super::common::rows(&host.sql(&format!("EXPLAIN {sql}")).await.unwrap()).join("\n");
        assert!(plan.contains("EngineQueryExec"), "{engine}: {plan}");
        assert!(!plan.contains("AggregateExec"), "{engine}: {plan}");
        assert_eq!(
            answer(&host, &sql, true).await.unwrap(),
            vec!["|2|"],
            "{engine}: the wrapped sum of group 1 is negative"
        );
    }
}
