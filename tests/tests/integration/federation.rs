//! Subplan pushdown into the DuckDB and SQLite plugins: aggregates, GROUP BY, joins and
//! ORDER BY + LIMIT run inside the engine as one statement and answer exactly what DataFusion
//! answers over the same rows in the arrow engine (NULLs, strings, dates, booleans); what an
//! engine would compute differently stays in DataFusion; EXPLAIN shows the statement; a
//! session option turns it off.

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;

use super::common::{SQL_ENGINES, host_with, plugin_dir_with_both_engines, rows};
use super::expressions::whole_in_engine;

const T_COLUMNS: &str = "(k INT, g VARCHAR, i BIGINT, f DOUBLE, s VARCHAR, ok BOOLEAN, d DATE)";
const T_ROWS: &str = "(1, 'x', 10, 1.5, 'apple', true, DATE '2024-01-01'),
    (2, 'x', NULL, 0.25, '', false, DATE '1970-01-01'),
    (3, 'y', 30, NULL, 'it''s', NULL, NULL),
    (4, NULL, -5, 2.5, 'é', true, DATE '2000-02-29'),
    (5, 'y', 7, -1.75, 'Apple', false, DATE '1999-12-31'),
    (6, 'z', 0, 3.0, NULL, NULL, DATE '2024-06-30'),
    (7, 'x', 7, 8.5, 'apple', true, DATE '2024-01-02'),
    (NULL, 'z', 1, 0.5, 'a*[b]?', false, DATE '0999-03-01'),
    (9, NULL, NULL, NULL, 'zebra', true, DATE '2024-01-01'),
    (10, 'y', 42, 1.5, 'apple', true, DATE '2024-01-01')";
const U_COLUMNS: &str = "(k INT, name VARCHAR, w INT)";
const U_ROWS: &str = "(1, 'one', 5), (2, 'two', 1), (3, 'three', 9), (3, 'three again', 2),
    (7, 'seven', 7), (11, 'eleven', 0), (NULL, 'nobody', 3)";

/// Run entirely in the engine: EXPLAIN shows one engine statement and no DataFusion
/// aggregate, join or sort. `true`: the rows' order is part of the answer.
const PUSHED: &[(&str, bool)] = &[
    (
        "SELECT count(*), count(i), count(DISTINCT g), sum(i), min(s), max(s), min(d), max(d), \
         min(ok), max(ok), min(k), max(i) FROM t",
        false,
    ),
    (
        "SELECT g, count(*), sum(i), avg(i), min(i), max(i), sum(f), avg(f) FROM t GROUP BY g",
        false,
    ),
    ("SELECT d, count(*) FROM t WHERE i > 1 GROUP BY d", false),
    ("SELECT ok, count(*), max(k) FROM t GROUP BY ok", false),
    (
        "SELECT g, count(DISTINCT s), sum(DISTINCT i) FROM t GROUP BY g",
        false,
    ),
    (
        "SELECT s, count(*) FROM t WHERE s LIKE 'a%' GROUP BY s",
        false,
    ),
    (
        "SELECT count(*) FROM t WHERE d >= DATE '2000-01-01' AND ok",
        false,
    ),
    (
        "SELECT k, s FROM t ORDER BY s DESC NULLS LAST, k LIMIT 4",
        true,
    ),
    (
        "SELECT k, i FROM t ORDER BY i NULLS FIRST, k LIMIT 5 OFFSET 2",
        true,
    ),
    ("SELECT k, d FROM t ORDER BY d, k", true),
    (
        "SELECT g, count(*) AS n FROM t GROUP BY g ORDER BY n DESC, g NULLS FIRST LIMIT 2",
        true,
    ),
    (
        "SELECT t.k, u.name FROM t JOIN u ON t.k = u.k WHERE t.i > 0",
        false,
    ),
    (
        "SELECT t.g, u.name, count(*) FROM t LEFT JOIN u ON t.k = u.k GROUP BY t.g, u.name",
        false,
    ),
    (
        "SELECT u.name, sum(t.i), count(t.k) FROM t RIGHT JOIN u ON t.k = u.k GROUP BY u.name",
        false,
    ),
    (
        "SELECT t.k, u.k, u.w FROM t FULL JOIN u ON t.k = u.k",
        false,
    ),
    (
        "SELECT t.k, u.w FROM t JOIN u ON t.k = u.k AND u.w > t.k",
        false,
    ),
    (
        "SELECT a.k, b.k FROM t a JOIN t b ON a.g = b.g AND a.k < b.k",
        false,
    ),
    // DuckDB's `//` and SQLite's `/` truncate integers as DataFusion does (DuckDB's `/` gives
    // a DOUBLE)
    ("SELECT k / 2 AS h, count(*) FROM t GROUP BY k / 2", false),
    // DuckDB's own cast rounds; written as trunc then cast. SQLite keeps it (below).
    (
        "SELECT CAST(f AS INT) AS c, count(*) FROM t GROUP BY CAST(f AS INT)",
        false,
    ),
];

/// Queries of [`PUSHED`] that SQLite would answer differently in part: that part stays in
/// DataFusion there (the marker must not reach SQLite), the answers are still DataFusion's.
const SQLITE_KEEPS: &[(&str, &str)] = &[
    // SQLite turns a NaN sum (inf plus -inf) into NULL
    (
        "SELECT g, count(*), sum(i), avg(i), min(i), max(i), sum(f), avg(f) FROM t GROUP BY g",
        "avg(",
    ),
    // the high and low halves of distinct values are not the halves of the distinct values
    (
        "SELECT g, count(DISTINCT s), sum(DISTINCT i) FROM t GROUP BY g",
        "sum(DISTINCT",
    ),
    // SQLite's LIKE and GLOB stop at a NUL byte
    (
        "SELECT s, count(*) FROM t WHERE s LIKE 'a%' GROUP BY s",
        "LIKE",
    ),
    // SQLite's CAST(real AS INTEGER) saturates where DataFusion fails
    (
        "SELECT CAST(f AS INT) AS c, count(*) FROM t GROUP BY CAST(f AS INT)",
        "CAST",
    ),
];

/// An engine would compute part of these differently: that part stays in DataFusion (its
/// marker must not appear in any engine statement) and the answers are still DataFusion's.
const KEPT: &[(&str, &str)] = &[
    // -0.0 and NaN group differently
    ("SELECT f, count(*) FROM t GROUP BY f", "GROUP BY \"c3\""),
    // case folding differs outside ASCII
    (
        "SELECT s, count(*) FROM t WHERE s ILIKE 'A%' GROUP BY s",
        "ILIKE",
    ),
    (
        "SELECT upper(s), count(*) FROM t GROUP BY upper(s)",
        "upper",
    ),
    (
        "SELECT g, sum(i) FILTER (WHERE ok) FROM t GROUP BY g",
        "FILTER",
    ),
    (
        "SELECT k, f FROM t ORDER BY f DESC, k LIMIT 3",
        "ORDER BY \"c1\"",
    ),
    // min/max and DISTINCT over floats: -0.0 and 0.0 are one value to the engines
    ("SELECT g, min(f), max(f) FROM t GROUP BY g", "min("),
    (
        "SELECT count(DISTINCT f), avg(DISTINCT f), count(DISTINCT k) FROM t",
        "DISTINCT",
    ),
    // SQL does not keep a subquery's order: the outer LIMIT must see DataFusion's order
    (
        "SELECT * FROM (SELECT k, i FROM t ORDER BY k LIMIT 6) s WHERE i > 0 LIMIT 3 OFFSET 1",
        "OFFSET",
    ),
];

/// The rows of `sql`'s answer, each as its trimmed cells (column headers differ with the table
/// names); sorted unless the order is part of the answer.
pub(super) async fn run(
    host: &accel_host::Host,
    sql: &str,
    ordered: bool,
) -> Result<Vec<String>, String> {
    let batches = host.sql(sql).await.map_err(|e| e.to_string())?;
    rows_as_text(&batches, ordered)
}

/// Each row as `|a|b|…|` (cells trimmed), sorted unless `ordered`.
pub(super) fn rows_as_text(batches: &[RecordBatch], ordered: bool) -> Result<Vec<String>, String> {
    let text = pretty_format_batches(batches).map_err(|e| e.to_string())?;
    let mut rows: Vec<String> = text
        .to_string()
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

pub(super) async fn explain(host: &accel_host::Host, sql: &str) -> String {
    rows(&host.sql(&format!("EXPLAIN {sql}")).await.unwrap()).join("\n")
}

/// The SQL of every engine statement in a plan.
pub(super) fn engine_statements(plan: &str) -> Vec<&str> {
    plan.lines()
        .filter_map(|l| l.split_once("EngineQueryExec: ").map(|(_, rest)| rest))
        .collect()
}

/// A host with `t` and `u` in the arrow engine (the reference) and in one file of each SQL
/// engine (`t_<engine>`, `u_<engine>`): one compute context, so joins push too.
async fn host_with_tables(data: &std::path::Path) -> (tempfile::TempDir, accel_host::Host) {
    host_with_reference_tables(
        data,
        "fed",
        &[("t", T_COLUMNS, T_ROWS), ("u", U_COLUMNS, U_ROWS)],
    )
    .await
}

/// A host with each `(name, columns, rows)` table in the arrow engine (the reference) and,
/// as `<name>_<engine>`, in one `<file_stem>` database of each SQL engine (one compute
/// context per engine, so joins push too).
pub(super) async fn host_with_reference_tables(
    data: &std::path::Path,
    file_stem: &str,
    tables: &[(&str, &str, &str)],
) -> (tempfile::TempDir, accel_host::Host) {
    let plugins = plugin_dir_with_both_engines();
    let host = host_with(plugins.path(), data);
    for (name, columns, values) in tables {
        host.sql(&format!(
            "CREATE EXTERNAL TABLE {name} {columns} STORED AS arrow LOCATION ':memory:';
             INSERT INTO {name} VALUES {values}"
        ))
        .await
        .unwrap();
        for (engine, extension) in SQL_ENGINES {
            let file = data.join(format!("{file_stem}.{extension}"));
            let file = file.display();
            host.sql(&format!(
                "CREATE EXTERNAL TABLE {name}_{engine} {columns} STORED AS {engine} LOCATION '{file}';
                 INSERT INTO {name}_{engine} VALUES {values}"
            ))
            .await
            .unwrap();
        }
    }
    (plugins, host)
}

/// `sql` over the engine's tables instead of the reference ones: the words `t` and `u`
/// become `t_<engine>` and `u_<engine>`.
fn on_engine(sql: &str, engine: &str) -> String {
    on_engine_tables(sql, engine, &["t", "u"])
}

/// `sql` with each word of `tables` (outside quotes) suffixed with `_<engine>`.
pub(super) fn on_engine_tables(sql: &str, engine: &str, tables: &[&str]) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if tables.contains(&word.as_str()) {
            out.push_str(&format!("{word}_{engine}"));
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    let mut quoted = false;
    for c in sql.chars() {
        if !quoted && (c.is_ascii_alphanumeric() || c == '_') {
            word.push(c);
            continue;
        }
        flush(&mut word, &mut out);
        if c == '\'' {
            quoted = !quoted;
        }
        out.push(c);
    }
    flush(&mut word, &mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_subplans_answer_what_datafusion_answers_and_run_in_the_engine() {
    let data = tempfile::tempdir().unwrap();
    let (_plugins, host) = host_with_tables(data.path()).await;
    let mut problems = Vec::new();
    for (engine, _) in SQL_ENGINES {
        for (query, ordered) in PUSHED {
            let theirs = on_engine(query, engine);
            let expected = run(&host, query, *ordered).await;
            let found = run(&host, &theirs, *ordered).await;
            if expected.is_err() || expected != found {
                problems.push(format!(
                    "{theirs}\n  datafusion: {expected:?}\n  {engine}: {found:?}"
                ));
            }
            let plan = explain(&host, &theirs).await;
            let statements = engine_statements(&plan);
            if engine == "sqlite"
                && let Some((_, marker)) = SQLITE_KEEPS.iter().find(|(q, _)| q == query)
            {
                if statements
                    .iter()
                    .any(|s| s.contains(marker) || s.contains("GLOB"))
                {
                    problems.push(format!("{theirs}: `{marker}` reached SQLite:\n{plan}"));
                }
                continue;
            }
            if !whole_in_engine(&plan) {
                problems.push(format!("{theirs}: not pushed whole:\n{plan}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_an_engine_computes_differently_stays_in_datafusion() {
    let data = tempfile::tempdir().unwrap();
    let (_plugins, host) = host_with_tables(data.path()).await;
    let mut problems = Vec::new();
    for (engine, _) in SQL_ENGINES {
        for (query, marker) in KEPT {
            let theirs = on_engine(query, engine);
            let ordered = query.contains("ORDER BY");
            let expected = run(&host, query, ordered).await;
            let found = run(&host, &theirs, ordered).await;
            if expected.is_err() || expected != found {
                problems.push(format!(
                    "{theirs}\n  datafusion: {expected:?}\n  {engine}: {found:?}"
                ));
            }
            let plan = explain(&host, &theirs).await;
            if engine_statements(&plan).iter().any(|s| s.contains(marker)) {
                problems.push(format!("{theirs}: `{marker}` reached the engine:\n{plan}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_shows_the_statement_and_a_session_option_turns_federation_off() {
    let data = tempfile::tempdir().unwrap();
    let (_plugins, host) = host_with_tables(data.path()).await;
    let query = "SELECT g, count(*) FROM t_duckdb WHERE k > 1 GROUP BY g";
    let plan = explain(&host, query).await;
    assert!(
        plan.contains("EngineQuery: engine=duckdb 0.1.0 context="),
        "the logical plan names the engine and context:\n{plan}"
    );
    assert!(
        plan.contains(
            r#"EngineQueryExec: engine=duckdb 0.1.0 sql=SELECT "c0" AS "c0", count(*) AS "c1" FROM (SELECT "g" AS "c0" FROM "t_duckdb" WHERE ("k" > 1)) AS q GROUP BY "c0""#
        ),
        "{plan}"
    );
    let federated = run(&host, query, false).await.unwrap();

    host.sql("SET accel.federation = false").await.unwrap();
    let plan = explain(&host, query).await;
    assert!(engine_statements(&plan).is_empty(), "{plan}");
    assert!(plan.contains("AggregateExec"), "{plan}");
    assert!(plan.contains("DuckDbScanExec"), "{plan}");
    assert_eq!(run(&host, query, false).await.unwrap(), federated);

    host.sql("SET accel.federation = true").await.unwrap();
    assert_eq!(engine_statements(&explain(&host, query).await).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_query_pushes_the_largest_single_engine_subtrees() {
    let data = tempfile::tempdir().unwrap();
    let (_plugins, host) = host_with_tables(data.path()).await;
    // arrow ⋈ (duckdb aggregate) ⋈ (sqlite aggregate): each engine gets its own subtree
    let query = |d: &str, s: &str| {
        format!(
            "SELECT t.k, dx.n, sx.m FROM t \
             JOIN (SELECT k, count(*) AS n FROM {d} GROUP BY k) dx ON t.k = dx.k \
             JOIN (SELECT k, max(w) AS m FROM {s} GROUP BY k) sx ON t.k = sx.k"
        )
    };
    let mixed = query("t_duckdb", "u_sqlite");
    let plan = explain(&host, &mixed).await;
    let statements = engine_statements(&plan);
    assert_eq!(statements.len(), 2, "{plan}");
    assert!(
        statements
            .iter()
            .any(|s| s.starts_with("engine=duckdb") && s.contains("GROUP BY"))
    );
    assert!(
        statements
            .iter()
            .any(|s| s.starts_with("engine=sqlite") && s.contains("max("))
    );
    assert!(
        plan.contains("HashJoinExec"),
        "the joins across engines stay: {plan}"
    );
    assert_eq!(
        run(&host, &mixed, false).await.unwrap(),
        run(&host, &query("t", "u"), false).await.unwrap()
    );

    // tables of two DuckDB databases are two contexts: the join stays in DataFusion
    host.sql(&format!(
        "CREATE EXTERNAL TABLE other_u {U_COLUMNS} STORED AS duckdb LOCATION ':memory:';
         INSERT INTO other_u VALUES {U_ROWS}"
    ))
    .await
    .unwrap();
    let across =
        "SELECT t_duckdb.k, other_u.name FROM t_duckdb JOIN other_u ON t_duckdb.k = other_u.k";
    let plan = explain(&host, across).await;
    assert!(engine_statements(&plan).is_empty(), "{plan}");
    assert!(plan.contains("HashJoinExec"), "{plan}");
}
