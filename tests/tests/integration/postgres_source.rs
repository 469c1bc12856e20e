//! PostgreSQL as a dataset source: a real server (Debian's package, started by
//! `scripts/postgres` as an unprivileged user on a free port of 127.0.0.1) read into every
//! engine, fully and by append, compared with DataFusion reading the same table directly.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use accel_host::Host;
use accel_host::config::Config;
use accel_host::dataset::Datasets;
use tokio_postgres::NoTls;

use super::common::{host_with, plugin_dir_with_both_engines, rows};

/// A PostgreSQL cluster of this test, stopped when dropped.
struct Server {
    dir: PathBuf,
    port: u16,
}

impl Server {
    fn start() -> Self {
        // Under /tmp itself: the server's user must be able to reach the directory.
        static SERVERS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = PathBuf::from(format!(
            "/tmp/accel-pg-{}-{}",
            std::process::id(),
            SERVERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/postgres");
        let output = Command::new(&script)
            .arg("start")
            .arg(&dir)
            .output()
            .expect("run scripts/postgres");
        assert!(
            output.status.success(),
            "scripts/postgres start failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let port = String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .expect("the script prints the port");
        Self { dir, port }
    }

    async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(
            &format!("host=127.0.0.1 port={} user=accel dbname=accel", self.port),
            NoTls,
        )
        .await
        .expect("connect to the test server");
        tokio::spawn(connection);
        client
    }

    fn params(&self) -> String {
        format!(
            "params:\n      pg_host: 127.0.0.1\n      pg_port: {}\n      pg_db: accel\n      pg_user: accel\n      pg_pass: ${{env:HOME}}\n      pg_sslmode: disable",
            self.port
        )
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/postgres");
        let _ = Command::new(script).arg("stop").arg(&self.dir).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const TABLE: &str = "CREATE TABLE public.events (
    id int8 PRIMARY KEY, small int2, ts timestamp NOT NULL, tz timestamptz, d date,
    amount numeric(38, 4), f float8, name text, flag bool, b bytea)";

/// Rows with edge values (all of which every engine stores: NaN and -0.0 go to the float test).
const FIRST_ROWS: &str = "INSERT INTO public.events VALUES
    (1, 32767, '2026-11-30 10:00:00', '2026-11-30 10:00:00+00', '0001-01-01',
     9999999999999999999999999999999999.9999, 'infinity', 'Straße', true, '\\x00ff'),
    (2, -32768, '2026-11-30 10:00:05', '1900-01-01 00:00:00+00', '9999-12-31',
     -0.0001, '-infinity', 'ÉCOLE', false, ''),
    (9223372036854775807, NULL, '2026-11-30 10:00:10', NULL, NULL, NULL, NULL, NULL, NULL, NULL),
    (-9223372036854775808, 0, '2026-11-30 10:00:10', '2262-04-12 00:00:00+00', '1970-01-01',
     0, 1.5, '', NULL, NULL)";

/// A new row at the boundary second, one late within the overlap, newer ones.
const MORE_ROWS: &str = "INSERT INTO public.events VALUES
    (3, 1, '2026-11-30 10:00:10', NULL, NULL, 1.25, 2.5, 'boundary', true, NULL),
    (4, 2, '2026-11-30 10:00:08', NULL, NULL, 2.5, 3.5, 'late', true, NULL),
    (5, 3, '2026-11-30 10:00:20', NULL, NULL, 3.75, 4.5, 'newer', false, NULL)";

const ALL: &str = "SELECT id, small, ts, tz, d, amount, f, name, flag, b FROM {t} ORDER BY id";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_table_is_accelerated_in_every_engine_fully_and_by_append() {
    let server = Server::start();
    let client = server.client().await;
    client.batch_execute(TABLE).await.unwrap();
    client.batch_execute(FIRST_ROWS).await.unwrap();
    client
        .batch_execute("ALTER SYSTEM SET log_statement = 'all'")
        .await
        .unwrap();
    client
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
    let plugins = plugin_dir_with_both_engines();
    let dir = tempfile::tempdir().unwrap();
    let params = server.params();
    let mut yaml =
        format!("datasets:\n  - from: postgres:public.events\n    name: direct\n    {params}\n");
    let engines = [
        ("arrow", "engine: arrow"),
        ("duckdb", "engine: duckdb\n      mode: file"),
        ("sqlite", "engine: sqlite\n      mode: file"),
    ];
    for (engine, acceleration) in engines {
        yaml.push_str(&format!(
            "  - from: postgres:public.events\n    name: full_{engine}\n    {params}\n    acceleration:\n      {acceleration}\n"
        ));
        yaml.push_str(&format!(
            "  - from: postgres:public.events\n    name: append_{engine}\n    time_column: ts\n    {params}\n    acceleration:\n      {acceleration}\n      refresh_mode: append\n      refresh_append_overlap: 5s\n"
        ));
    }
    let path = dir.path().join("accel.yaml");
    std::fs::write(&path, &yaml).unwrap();
    // The password comes from the environment, as a secret does (trust auth ignores it).
    let config = Config::load(&path).unwrap();
    let host = Arc::new(host_with(plugins.path(), &dir.path().join("data")));
    let datasets = Datasets::start(Arc::clone(&host), Some(&config)).unwrap();
    assert!(datasets.wait_loaded(Duration::from_secs(120)).await);
    let query = |table: String| {
        let host = Arc::clone(&host);
        async move {
            rows(
                &host
                    .sql(&ALL.replace("{t}", &table))
                    .await
                    .unwrap_or_else(|e| panic!("{table}: {e}")),
            )
        }
    };
    let direct = query("direct".into()).await;
    assert_eq!(direct.len(), 4, "{direct:?}");
    assert!(
        direct
            .iter()
            .any(|r| r.contains("9999999999999999999999999999999999.9999"))
    );
    for (engine, _) in engines {
        for kind in ["full", "append"] {
            let status = datasets.get(&format!("{kind}_{engine}")).unwrap().status();
            assert_eq!(status.last_error, None, "{kind}_{engine}");
            assert_eq!(
                query(format!("{kind}_{engine}")).await,
                direct,
                "{kind}_{engine}"
            );
        }
    }
    client.batch_execute(MORE_ROWS).await.unwrap();
    let direct = query("direct".into()).await;
    assert_eq!(direct.len(), 7);
    for (engine, _) in engines {
        let full = datasets.refresh(&format!("full_{engine}")).await.unwrap();
        assert_eq!(full.rows_held, 7, "{engine}");
        let append = datasets.refresh(&format!("append_{engine}")).await.unwrap();
        assert_eq!((append.rows_written, append.rows_held), (3, 7), "{engine}");
        for kind in ["full", "append"] {
            assert_eq!(
                query(format!("{kind}_{engine}")).await,
                direct,
                "{kind}_{engine}"
            );
        }
    }
    // The append's time bound reached PostgreSQL as a WHERE clause.
    let log = server.log();
    assert!(
        log.contains("WHERE \"ts\" >= '2026-11-30 10:00:05.000000'::timestamp"),
        "the time filter was not sent to PostgreSQL: {}",
        log.lines()
            .filter(|l| l.contains("statement: SELECT"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Text order is DataFusion's (bytes: 'ÉCOLE' > 'z'), whatever the server's collation.
    for filter in [
        "name > 'z'",
        "name = 'late' OR name > 'z'",
        "ts >= '2026-11-30 10:00:10'",
    ] {
        let sql = format!("SELECT id FROM {{t}} WHERE {filter} ORDER BY id");
        let direct = rows(&host.sql(&sql.replace("{t}", "direct")).await.unwrap());
        let arrow = rows(&host.sql(&sql.replace("{t}", "full_arrow")).await.unwrap());
        assert_eq!(direct, arrow, "{filter}");
        assert!(!direct.is_empty(), "{filter}");
    }
    datasets.shutdown(Duration::from_secs(30)).await;
    assert!(host.shutdown().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floats_and_bad_settings_read_as_postgres_holds_them() {
    let server = Server::start();
    let client = server.client().await;
    client
        .batch_execute(
            "CREATE TABLE public.floats (id int4, f float8, r float4);
             INSERT INTO public.floats VALUES (1, 'NaN', 'NaN'), (2, '-0', '-0'), (3, 1e308, 3.4e38),
             (4, NULL, NULL);
             CREATE TABLE public.odd (id int4, n numeric, j jsonb)",
        )
        .await
        .unwrap();
    let plugins = plugin_dir_with_both_engines();
    let dir = tempfile::tempdir().unwrap();
    let params = server.params();
    let yaml = format!(
        "datasets:\n  - from: postgres:public.floats\n    name: floats\n    {params}\n    acceleration:\n      engine: duckdb\n  - from: postgres:public.odd\n    name: odd\n    {params}\n    acceleration:\n      engine: duckdb\n      refresh_retry_enabled: false\n  - from: postgres:public.missing\n    name: missing\n    {params}\n    acceleration:\n      refresh_retry_enabled: false\n"
    );
    let path = dir.path().join("accel.yaml");
    std::fs::write(&path, &yaml).unwrap();
    let config = Config::load(&path).unwrap();
    let host: Arc<Host> = Arc::new(host_with(plugins.path(), &dir.path().join("data")));
    let datasets = Datasets::start(Arc::clone(&host), Some(&config)).unwrap();
    assert!(datasets.wait_loaded(Duration::from_secs(60)).await);
    let answer = rows(
        &host
            .sql("SELECT id, f, r, f = 0.0 AS zero FROM floats ORDER BY id")
            .await
            .unwrap(),
    );
    let joined = answer.join("\n");
    assert!(joined.contains("| 1  | NaN "), "{joined}");
    assert!(joined.contains("| 2  | -0.0 "), "{joined}");
    assert!(joined.contains("1e308"), "{joined}");
    let odd = datasets.get("odd").unwrap().status().last_error.unwrap();
    assert!(
        odd.contains("column `n` has type numeric without a precision"),
        "{odd}"
    );
    let missing = datasets
        .get("missing")
        .unwrap()
        .status()
        .last_error
        .unwrap();
    assert!(missing.contains("no table public.missing"), "{missing}");
    datasets.shutdown(Duration::from_secs(30)).await;
    assert!(host.shutdown().await.is_empty());
}
