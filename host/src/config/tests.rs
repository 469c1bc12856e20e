use std::path::Path;

use super::*;

fn parse(text: &str) -> Config {
    Config::parse(Path::new("conf/accel.yaml"), text).expect("the file is read")
}

fn problem(text: &str) -> ConfigProblem {
    let config = parse(text);
    let bad: Vec<&ConfigProblem> = config
        .datasets
        .iter()
        .filter_map(|d| d.spec.as_ref().err())
        .collect();
    assert_eq!(bad.len(), 1, "one refused dataset in {text}");
    bad[0].clone()
}

const GOOD: &str = "\
version: v1
plugin_dirs: [plugins]
data_dir: data
datasets:
  - from: file:trips/*.parquet
    name: trips
    time_column: ts
    params:
      file_format: parquet
    acceleration:
      engine: duckdb
      mode: file
      params:
        duckdb_file: trips.duckdb
      refresh_mode: append
      refresh_check_interval: 10s
      refresh_append_overlap: 1m
      refresh_jitter_max: 2s
      primary_key: (id, ts)
      on_conflict:
        (id, ts): upsert
      indexes:
        city: enabled
  - from: postgres:public.orders
    name: orders
    params:
      pg_pass: ${env:PG_PASS}
      pg_port: 5432
";

#[test]
fn a_spicepod_style_file_reads_into_typed_datasets() {
    let config = parse(GOOD);
    assert_eq!(config.plugin_dirs, vec![Path::new("conf/plugins")]);
    assert_eq!(config.data_dir.as_deref(), Some(Path::new("conf/data")));
    let trips = config.datasets[0].spec.as_ref().unwrap();
    assert_eq!(
        trips.from,
        SourceSpec::File {
            path: "conf/trips/*.parquet".to_owned()
        }
    );
    let acceleration = trips.acceleration.as_ref().unwrap();
    assert_eq!(acceleration.engine, "duckdb");
    assert_eq!(acceleration.mode, AccelerationMode::File);
    assert_eq!(acceleration.refresh_mode, RefreshMode::Append);
    assert_eq!(
        acceleration.refresh_check_interval,
        Some(std::time::Duration::from_secs(10))
    );
    assert_eq!(acceleration.params["duckdb_file"], "conf/trips.duckdb");
    assert_eq!(
        acceleration.primary_key.as_ref().unwrap().as_option(),
        "(id,ts)"
    );
    assert_eq!(acceleration.on_conflict["(id, ts)"], "upsert");
    let orders = config.datasets[1].spec.as_ref().unwrap();
    assert_eq!(
        orders.from,
        SourceSpec::Postgres {
            schema: Some("public".to_owned()),
            table: "orders".to_owned()
        }
    );
    // Numbers are read as text; secrets stay as written.
    assert_eq!(orders.params["pg_port"], "5432");
    assert_eq!(orders.params["pg_pass"], "${env:PG_PASS}");
    assert!(orders.acceleration.is_none());
}

#[test]
fn an_unknown_key_names_its_line_and_the_valid_keys() {
    let p = problem(
        "datasets:\n  - from: file:a.csv\n    name: a\n    acceleration:\n      engine: arrow\n      refresh_intervl: 10s\n",
    );
    assert_eq!(p.position.map(|p| p.line), Some(6), "{p}");
    assert_eq!(p.key, "datasets[0].acceleration.refresh_intervl");
    assert!(p.message.contains("unknown field `refresh_intervl`"), "{p}");
    assert!(p.message.contains("refresh_check_interval"), "{p}");
    assert!(p.to_string().starts_with("conf/accel.yaml:6:"), "{p}");
}

#[test]
fn a_wrong_type_names_the_key() {
    let p = problem(
        "datasets:\n  - from: file:a.csv\n    name: a\n    acceleration:\n      enabled: maybe\n",
    );
    assert_eq!(p.key, "datasets[0].acceleration.enabled");
    assert_eq!(p.position.map(|p| p.line), Some(5), "{p}");
    assert!(p.message.contains("invalid"), "{p}");
}

#[test]
fn a_bad_interval_says_what_a_duration_looks_like() {
    let p = problem(
        "datasets:\n  - from: file:a.csv\n    name: a\n    acceleration:\n      refresh_check_interval: 10 parsecs\n",
    );
    assert_eq!(p.key, "datasets[0].acceleration.refresh_check_interval");
    assert!(p.message.contains("invalid duration `10 parsecs`"), "{p}");
    assert!(p.message.contains("30s"), "{p}");
    let zero = problem(
        "datasets:\n  - from: file:a.csv\n    name: a\n    acceleration:\n      refresh_check_interval: 0s\n",
    );
    assert!(zero.message.contains("is zero"), "{zero}");
}

#[test]
fn settings_that_would_never_apply_are_refused() {
    let cases = [
        ("refresh_mode: append", "needs the dataset's `time_column`"),
        (
            "refresh_append_overlap: 1m",
            "applies to refresh_mode `append` only",
        ),
        ("refresh_jitter_max: 1s", "set refresh_check_interval"),
        (
            "refresh_check_interval: 1s\n      refresh_jitter_max: 2s",
            "must be shorter",
        ),
        ("refresh_sql: DELETE FROM a", "expected one SELECT"),
        ("engine_version: banana", "not a semver requirement"),
    ];
    for (setting, expected) in cases {
        let text = format!(
            "datasets:\n  - from: file:a.csv\n    name: a\n    acceleration:\n      {setting}\n"
        );
        let p = problem(&text);
        assert!(p.message.contains(expected), "{setting}: {p}");
        // The line of the setting's last key (the one that does not fit).
        let line = 5 + setting.matches('\n').count();
        assert_eq!(p.position.map(|p| p.line), Some(line), "{setting}: {p}");
    }
}

#[test]
fn a_bad_dataset_does_not_stop_the_others() {
    let config = parse(
        "datasets:\n  - from: ftp:a\n    name: a\n  - from: file:b.csv\n    name: b\n  - from: file:c.csv\n    name: b\n",
    );
    let a = config.datasets[0].spec.as_ref().unwrap_err();
    assert!(a.message.contains("unknown connector `ftp`"), "{a}");
    assert_eq!(a.position.map(|p| p.line), Some(2));
    assert!(config.datasets[1].spec.is_ok());
    let again = config.datasets[2].spec.as_ref().unwrap_err();
    assert!(again.message.contains("declared earlier"), "{again}");
    assert_eq!(again.position.map(|p| p.line), Some(7));
}

#[test]
fn a_file_that_is_not_yaml_or_has_a_bad_top_level_is_one_error() {
    let error = Config::parse(Path::new("x.yaml"), "datasets: [\n").unwrap_err();
    assert!(error.position.is_some(), "{error}");
    let error = Config::parse(Path::new("x.yaml"), "dataset:\n  - name: a\n").unwrap_err();
    assert!(error.message.contains("unknown field `dataset`"), "{error}");
    assert_eq!(error.position.map(|p| p.line), Some(1), "{error}");
    assert!(
        Config::parse(Path::new("x.yaml"), "")
            .unwrap()
            .datasets
            .is_empty()
    );
}

#[test]
fn a_sharded_dataset_reads_and_crosses_to_a_worker_unchanged() {
    let config = parse(
        "datasets:
  - from: file:events/
    name: events
    time_column: ts
    acceleration:
      engine: duckdb
      mode: file
      shards: 3
      shard_by: hash(user_id)
      refresh_check_interval: 90s
      refresh_mode: append
      primary_key: (id, ts)
",
    );
    let spec = config.datasets[0].spec.clone().unwrap();
    let (count, by) = spec.sharding().unwrap();
    assert_eq!(
        (count, by),
        (
            3,
            &ShardBy::Hash {
                column: "user_id".into()
            }
        )
    );
    // What the coordinator sends is what the worker reads back.
    let sent = serde_json::to_string(&spec).unwrap();
    let received: DatasetSpec = serde_json::from_str(&sent).unwrap();
    assert_eq!(format!("{received:?}"), format!("{spec:?}"));
    // Shard 2 reads its part of the source under the dataset's name, into its own table.
    let shard = spec.shard(2).unwrap();
    assert_eq!(shard.name, "events__shard2of3");
    assert_eq!(shard.source_name(), "events");
    assert_eq!(
        shard.shard.as_ref().map(|p| (p.index, p.count)),
        Some((2, 3))
    );
}

#[test]
fn sharding_settings_that_cannot_work_are_refused_at_their_key() {
    let with = |acceleration: &str, from: &str| {
        format!("datasets:\n  - from: {from}\n    name: t\n    acceleration:\n{acceleration}")
    };
    let cases = [
        (
            with("      shards: 2\n", "file:t/"),
            "datasets[0].acceleration.shard_by",
            "shard_by: file",
        ),
        (
            with("      shard_by: file\n", "file:t/"),
            "datasets[0].acceleration.shard_by",
            "set `shards`",
        ),
        (
            with("      shards: 0\n      shard_by: file\n", "file:t/"),
            "datasets[0].acceleration.shards",
            "at least 1",
        ),
        (
            with(
                "      shards: 2\n      shard_by: file\n",
                "postgres:public.t",
            ),
            "datasets[0].acceleration.shard_by",
            "use shard_by: hash(column)",
        ),
        (
            with(
                "      shards: 2\n      shard_by: file\n      refresh_sql: SELECT * FROM t LIMIT 5\n",
                "file:t/",
            ),
            "datasets[0].acceleration.refresh_sql",
            "over a part of the files",
        ),
        (
            with(
                "      engine: duckdb\n      shards: 2\n      shard_by: hash(id)\n      params:\n        duckdb_file: one.duckdb\n",
                "file:t/",
            ),
            "datasets[0].acceleration.params",
            "--data-dir",
        ),
        (
            with("      shards: 2\n      shard_by: hash()\n", "file:t/"),
            "datasets[0].acceleration.shard_by",
            "expected `file` or `hash(column)`",
        ),
    ];
    for (text, key, message) in cases {
        let problem = problem(&text);
        assert_eq!(problem.key, key, "{text}");
        assert!(problem.message.contains(message), "{text}: {problem}");
        assert!(problem.position.is_some(), "{text}: located in the file");
    }
}
