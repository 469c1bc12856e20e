//! `accel serve` as its clients see it: the real binary with the real plugin libraries, on
//! 127.0.0.1 ports it picks itself, queried over real sockets by ADBC's Flight SQL driver
//! (Python, as applications use it), arrow-flight's Rust client and an HTTP client. Every
//! answer is compared with DataFusion reading the same source file in this process.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_flight::sql::SqlInfo;
use arrow_flight::sql::client::FlightSqlServiceClient;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use tonic::transport::Channel;

use super::common::{accel_binary, install, plugin_dir_with_both_engines, rows, sqlite_v2_library};
use super::datasets::{edge_rows, write_parquet};

/// A running `accel serve`, killed if the test ends without stopping it.
pub(super) struct Server {
    child: Child,
    flight: String,
    http: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `accel <global> serve --flight 127.0.0.1:0 --http 127.0.0.1:0 <serve>` and waits
    /// until it says where it listens.
    pub(super) fn start(global: &[&str], serve: &[&str]) -> Self {
        let mut child = Command::new(accel_binary())
            .args(global)
            .arg("serve")
            .args(["--flight", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(serve)
            .env_remove("ACCEL_PLUGIN_PATH")
            .env_remove("ACCEL_API_KEY")
            .env_remove("ACCEL_CONFIG")
            .env("ACCEL_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start accel serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (found, addresses) = std::sync::mpsc::channel();
        {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(pair) = listening_on(&line) {
                        let _ = found.send(pair);
                    }
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        match addresses.recv_timeout(Duration::from_secs(240)) {
            Ok((flight, http)) => Self {
                child,
                flight,
                http,
                log,
            },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "accel serve did not listen within 4 minutes; its log:\n{}",
                    log.lock().unwrap()
                );
            }
        }
    }

    pub(super) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// Sends SIGTERM.
    pub(super) fn terminate(&self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "SIGTERM sent");
    }

    /// Waits at most `limit` for the process to exit.
    pub(super) fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for accel") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "accel serve still running {limit:?} after SIGTERM; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The two addresses of the `Flight SQL on grpc://A · HTTP on http://B` line.
fn listening_on(line: &str) -> Option<(String, String)> {
    let flight = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("grpc://"))?;
    let http = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://"))?;
    Some((flight.to_owned(), http.to_owned()))
}

/// A plugin directory with both engines and a temporary directory with `edges.parquet` (edge
/// values: integer extremes, NaN, ±inf, -0.0, NUL bytes, non-ASCII text, far timestamps) and
/// `accel.yaml` declaring it accelerated in DuckDB (file), in arrow, and not accelerated.
struct EdgeDatasets {
    plugins: tempfile::TempDir,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl EdgeDatasets {
    async fn new() -> Self {
        let plugins = plugin_dir_with_both_engines();
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("edges.parquet");
        write_parquet(&source, &edge_rows(7, true)).await;
        let config = dir.path().join("accel.yaml");
        std::fs::write(
            &config,
            format!(
                "data_dir: {data}\ndatasets:\n\
                 \x20 - from: file:{source}\n    name: edges_duckdb\n    acceleration:\n      engine: duckdb\n      mode: file\n\
                 \x20 - from: file:{source}\n    name: edges_arrow\n    acceleration:\n      engine: arrow\n\
                 \x20 - from: file:{source}\n    name: edges_source\n",
                data = dir.path().join("data").display(),
                source = source.display()
            ),
        )
        .unwrap();
        Self {
            plugins,
            dir,
            config,
        }
    }

    fn source(&self) -> PathBuf {
        self.dir.path().join("edges.parquet")
    }

    /// `accel serve` of these datasets with `serve` arguments, once every dataset loaded.
    async fn serve(&self, serve: &[&str]) -> Server {
        let server = Server::start(
            &[
                "--plugin-dir",
                self.plugins.path().to_str().unwrap(),
                "--config",
                self.config.to_str().unwrap(),
            ],
            serve,
        );
        wait_ready(&server).await;
        server
    }
}

/// DataFusion's own answer: `sql` with `{t}` read straight from the parquet file.
async fn datafusion_answer(source: &Path, sql: &str) -> Vec<RecordBatch> {
    let ctx = SessionContext::new();
    ctx.register_parquet("edges", source.to_str().unwrap(), Default::default())
        .await
        .unwrap();
    ctx.sql(&sql.replace("{t}", "edges"))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap()
}

async fn flight_client(addr: &str, key: Option<&str>) -> FlightSqlServiceClient<Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connect to Flight SQL");
    let mut client = FlightSqlServiceClient::new(channel);
    if let Some(key) = key {
        client.set_token(key.to_owned());
    }
    client
}

/// Runs a statement over Flight SQL (GetFlightInfo, then DoGet on each endpoint).
async fn flight_query(
    client: &mut FlightSqlServiceClient<Channel>,
    sql: &str,
) -> Result<Vec<RecordBatch>, String> {
    let info = client
        .execute(sql.to_owned(), None)
        .await
        .map_err(|e| e.to_string())?;
    fetch(client, info).await
}

async fn fetch(
    client: &mut FlightSqlServiceClient<Channel>,
    info: arrow_flight::FlightInfo,
) -> Result<Vec<RecordBatch>, String> {
    let mut batches = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.ok_or("an endpoint without a ticket")?;
        let stream = client.do_get(ticket).await.map_err(|e| e.to_string())?;
        batches.extend(
            stream
                .try_collect::<Vec<_>>()
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    Ok(batches)
}

/// The batches of an Arrow IPC stream (the body of an `application/vnd.apache.arrow.stream`
/// answer).
fn arrow_stream(bytes: impl AsRef<[u8]>) -> Result<Vec<RecordBatch>, String> {
    datafusion::arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
        .and_then(|reader| reader.collect::<Result<Vec<_>, _>>())
        .map_err(|e| e.to_string())
}

fn read_arrow_file(path: &Path) -> Vec<RecordBatch> {
    let file = std::fs::File::open(path).unwrap();
    datafusion::arrow::ipc::reader::FileReader::try_new(file, None)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Runs the ADBC client script with `spec` and returns what it wrote.
fn adbc(spec: serde_json::Value) -> serde_json::Value {
    let python = python_env();
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec;
    let output = dir.path().join("output.json");
    spec["output"] = output.to_str().unwrap().into();
    let spec_file = dir.path().join("spec.json");
    std::fs::write(&spec_file, spec.to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/flight_client.py");
    let run = Command::new(python)
        .arg(script)
        .arg(&spec_file)
        .output()
        .expect("run the ADBC client");
    assert!(
        run.status.success(),
        "the ADBC client crashed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(output).unwrap()).unwrap()
}

/// The interpreter of the virtualenv with ADBC and pyarrow (`scripts/python-env` makes it).
fn python_env() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/python-env");
    let out = Command::new(script)
        .output()
        .expect("run scripts/python-env");
    assert!(
        out.status.success(),
        "scripts/python-env failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

const ALL_ROWS: &str = "SELECT id, v, f, s, ts FROM {t} ORDER BY id";
const BY_ID: &str = "SELECT s, f FROM {t} WHERE id = $1";
const ABOVE: &str = "SELECT count(*) AS n, min(v) AS lo, max(v) AS hi FROM {t} WHERE id > $1";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flight_sql_serves_stock_clients_datafusions_answers() {
    let edges = EdgeDatasets::new().await;
    let (dir, source) = (&edges.dir, edges.source());
    let server = edges.serve(&[]).await;

    // ADBC, as an application uses it: get_objects, statements, prepared statements.
    let mut queries = Vec::new();
    let mut expected = Vec::new();
    for table in ["edges_duckdb", "edges_arrow", "edges_source"] {
        for (sql, parameters, literal) in [
            (ALL_ROWS, None, ALL_ROWS.to_owned()),
            (
                BY_ID,
                Some(serde_json::json!([2])),
                BY_ID.replace("$1", "2"),
            ),
            (
                ABOVE,
                Some(serde_json::json!([1])),
                ABOVE.replace("$1", "1"),
            ),
        ] {
            let file = dir.path().join(format!("result-{}.arrow", queries.len()));
            queries.push(serde_json::json!({
                "sql": sql.replace("{t}", table),
                "parameters": parameters,
                "file": file.to_str().unwrap(),
            }));
            expected.push((file, literal));
        }
    }
    let result = adbc(serde_json::json!({
        "uri": format!("grpc://{}", server.flight),
        "api_key": null,
        "queries": queries,
    }));
    assert!(result.get("error").is_none(), "ADBC failed: {result}");
    let objects: Vec<&str> = result["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap())
        .collect();
    for table in [
        "datafusion.public.edges_duckdb",
        "datafusion.public.edges_arrow",
        "datafusion.public.edges_source",
        "datafusion.accel.datasets",
    ] {
        assert!(
            objects.contains(&table),
            "get_objects without a catalog filter lists {table}: {objects:?}"
        );
    }
    assert_eq!(result["vendor_name"], "accel", "GetSqlInfo: {result}");
    assert_eq!(result["vendor_version"], env!("CARGO_PKG_VERSION"));
    assert!(
        result["table_types"]
            .as_array()
            .unwrap()
            .contains(&"TABLE".into())
    );
    for (file, literal) in expected {
        let served = read_arrow_file(&file);
        let direct = datafusion_answer(&source, &literal).await;
        assert_eq!(
            rows(&served),
            rows(&direct),
            "{literal} over ADBC equals DataFusion's answer"
        );
        assert!(!rows(&direct).is_empty());
    }

    // arrow-flight's Rust client: prepared statement with a parameter, GetSqlInfo, a large
    // result streamed in many messages.
    let mut client = flight_client(&server.flight, None).await;
    let mut prepared = client
        .prepare(BY_ID.replace("{t}", "edges_duckdb"), None)
        .await
        .expect("prepare");
    let parameter_schema = prepared.parameter_schema().unwrap().clone();
    assert_eq!(parameter_schema.fields().len(), 1);
    assert_eq!(parameter_schema.field(0).name(), "$1");
    for id in [1_i64, 3, 4] {
        let parameters = RecordBatch::try_new(
            Arc::new(datafusion::arrow::datatypes::Schema::new(vec![
                datafusion::arrow::datatypes::Field::new(
                    "$1",
                    datafusion::arrow::datatypes::DataType::Int64,
                    true,
                ),
            ])),
            vec![Arc::new(datafusion::arrow::array::Int64Array::from(vec![
                id,
            ]))],
        )
        .unwrap();
        prepared.set_parameters(parameters).unwrap();
        let info = prepared.execute().await.expect("execute prepared");
        let served = fetch(&mut client, info).await.expect("fetch prepared");
        let direct = datafusion_answer(&source, &BY_ID.replace("$1", &id.to_string())).await;
        assert_eq!(rows(&served), rows(&direct), "prepared with $1 = {id}");
    }
    prepared.close().await.expect("close");

    let info = client
        .get_sql_info(vec![
            SqlInfo::FlightSqlServerName,
            SqlInfo::FlightSqlServerReadOnly,
        ])
        .await
        .expect("GetSqlInfo");
    let info = fetch(&mut client, info).await.expect("fetch sql info");
    let text = pretty_format_batches(&info).unwrap().to_string();
    assert!(text.contains("accel"), "server name in GetSqlInfo: {text}");
    assert!(text.contains("true"), "read-only in GetSqlInfo: {text}");

    let big = flight_query(&mut client, "SELECT value FROM generate_series(1, 1000000)")
        .await
        .expect("large result");
    let total: usize = big.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(total, 1_000_000);
    assert!(
        big.len() >= 10,
        "a large result arrives as many batches, not one buffered message: {}",
        big.len()
    );
}

/// Polls `/v1/ready` until 200 (at most four minutes: first loads in a debug build).
pub(super) async fn wait_ready(server: &Server) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let response = http.get(server.url("/v1/ready")).send().await.unwrap();
        if response.status() == 200 {
            assert_eq!(response.text().await.unwrap(), "Ready");
            return;
        }
        assert_eq!(response.status(), 503);
        assert_eq!(response.text().await.unwrap(), "Not Ready");
        assert!(
            Instant::now() < deadline,
            "datasets not loaded; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET path` answered with JSON.
async fn get_json(http: &reqwest::Client, server: &Server, path: &str) -> serde_json::Value {
    http.get(server.url(path))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn post_sql(
    http: &reqwest::Client,
    server: &Server,
    accept: &str,
    sql: &str,
) -> reqwest::Response {
    http.post(server.url("/v1/sql"))
        .header("accept", accept)
        .body(sql.to_owned())
        .send()
        .await
        .unwrap()
}

fn json_rows(batches: &[RecordBatch]) -> serde_json::Value {
    let mut writer = datafusion::arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, datafusion::arrow::json::writer::JsonArray>(Vec::new());
    for batch in batches {
        writer.write(batch).unwrap();
    }
    writer.finish().unwrap();
    let bytes = writer.into_inner();
    if bytes.is_empty() {
        return serde_json::json!([]);
    }
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_serves_every_endpoint_and_format() {
    let edges = EdgeDatasets::new().await;
    let source = edges.source();
    let server = edges.serve(&[]).await;
    let http = reqwest::Client::new();

    // Formats. JSON and CSV without the NaN row (JSON has no NaN); Arrow with every row.
    let finite = "SELECT id, v, s, ts FROM {t} ORDER BY id";
    for table in ["edges_duckdb", "edges_arrow", "edges_source"] {
        let sql = finite.replace("{t}", table);
        let direct = datafusion_answer(&source, finite).await;

        let response = post_sql(&http, &server, "application/json", &sql).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/json");
        let served: serde_json::Value = response.json().await.unwrap();
        assert_eq!(served, json_rows(&direct), "JSON rows of {table}");

        let response = post_sql(&http, &server, "text/csv", &sql).await;
        assert_eq!(response.status(), 200);
        let mut csv = Vec::new();
        {
            let mut writer = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut csv);
            for batch in &direct {
                writer.write(batch).unwrap();
            }
        }
        assert_eq!(
            response.text().await.unwrap(),
            String::from_utf8(csv).unwrap()
        );

        let response = post_sql(&http, &server, "text/plain", &sql).await;
        assert_eq!(
            response.text().await.unwrap(),
            format!("{}\n", pretty_format_batches(&direct).unwrap())
        );

        let every = ALL_ROWS.replace("{t}", table);
        let response = post_sql(
            &http,
            &server,
            "application/vnd.apache.arrow.stream",
            &every,
        )
        .await;
        assert_eq!(response.status(), 200);
        let bytes = response.bytes().await.unwrap();
        let served = arrow_stream(bytes).unwrap();
        assert_eq!(
            rows(&served),
            rows(&datafusion_answer(&source, ALL_ROWS).await),
            "Arrow IPC rows of {table}"
        );
    }
    // JSON has no NaN or infinity: they are written as strings, never as a null.
    for table in ["edges_duckdb", "edges_arrow"] {
        let response = post_sql(
            &http,
            &server,
            "application/json",
            &format!("SELECT f FROM {table} ORDER BY id"),
        )
        .await;
        let served: serde_json::Value = response.json().await.unwrap();
        assert_eq!(
            served,
            serde_json::json!([
                {"f": "NaN"}, {"f": "Infinity"}, {"f": "-Infinity"}, {"f": -0.0}, {"f": null}
            ]),
            "{table}"
        );
    }
    // No Accept header: JSON; an empty result is an empty array.
    let response = http
        .post(server.url("/v1/sql"))
        .body("SELECT id FROM edges_duckdb WHERE id > 100")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!([])
    );

    // Errors: JSON with a message and the status that says whose fault it is.
    for (accept, sql, status, needle) in [
        ("application/json", "SELEC 1", 400, "SELEC"),
        (
            "application/json",
            "SELECT * FROM no_such_table",
            400,
            "no_such_table",
        ),
        (
            "application/json",
            "INSERT INTO edges_duckdb SELECT * FROM edges_duckdb",
            403,
            "--allow-writes",
        ),
        (
            "application/json",
            "SELECT 1; SELECT 2",
            400,
            "one statement",
        ),
        ("application/xml", "SELECT 1", 406, "text/csv"),
    ] {
        let response = post_sql(&http, &server, accept, sql).await;
        assert_eq!(response.status(), status, "{sql} as {accept}");
        let body: serde_json::Value = response.json().await.unwrap();
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(needle), "{sql}: {message}");
    }
    let response = http.get(server.url("/v1/nothing")).send().await.unwrap();
    assert_eq!(response.status(), 404);

    // Datasets, status, refresh.
    let list: serde_json::Value = get_json(&http, &server, "/v1/datasets").await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["edges_duckdb", "edges_arrow", "edges_source"]);
    assert_eq!(list[0]["acceleration_enabled"], true);
    assert_eq!(list[2]["acceleration_enabled"], false);
    assert!(list[0].get("status").is_none());
    let status = dataset_status(&http, &server, "edges_duckdb").await;
    assert_eq!(status["status"], "ready");
    assert_eq!(status["rows"], 5);
    let refreshes = status["refreshes"].as_u64().unwrap();

    let response = http
        .post(server.url("/v1/datasets/edges_duckdb/acceleration/refresh"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("edges_duckdb"));
    wait_refreshes(&http, &server, "edges_duckdb", refreshes + 1).await;
    for (name, status) in [("nope", 404), ("edges_source", 400)] {
        let response = http
            .post(server.url(&format!("/v1/datasets/{name}/acceleration/refresh")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "refresh {name}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(body["message"].as_str().unwrap().contains(name));
    }

    // Health, engines, reload.
    let response = http.get(server.url("/health")).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "ok");
    let engines: serde_json::Value = get_json(&http, &server, "/v1/engines").await;
    let duckdb = engines
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "duckdb")
        .expect("duckdb listed");
    assert_eq!(duckdb["tables"], serde_json::json!(["edges_duckdb"]));
    assert_eq!(duckdb["state"], "active");
    let reload: serde_json::Value = http
        .post(server.url("/v1/engines/reload"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reload["unchanged"], 2, "nothing new to load: {reload}");
    assert_eq!(reload["loaded"], serde_json::json!([]));

    // Metrics, in Prometheus' text format.
    let metrics = http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "accel_dataset_rows{dataset=\"edges_duckdb\"} 5",
        "accel_dataset_loaded{dataset=\"edges_arrow\"} 1",
        "accel_dataset_state{dataset=\"edges_duckdb\",state=\"ready\"} 1",
        "accel_queries_total{protocol=\"http\",outcome=\"refused\"} 1",
        "accel_requests_in_flight{protocol=\"http\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    let refreshed = metrics
        .lines()
        .find(|l| l.starts_with("accel_dataset_refreshes_total{dataset=\"edges_duckdb\"}"))
        .expect("refresh count");
    assert_eq!(
        refreshed
            .rsplit(' ')
            .next()
            .unwrap()
            .parse::<u64>()
            .unwrap(),
        refreshes + 1
    );
    assert!(metrics.contains("accel_query_duration_seconds_count{protocol=\"http\"}"));
    assert!(metrics.contains("accel_engine_generation_tables{engine=\"duckdb\""));
}

async fn dataset_status(http: &reqwest::Client, server: &Server, name: &str) -> serde_json::Value {
    let list: serde_json::Value = get_json(http, server, "/v1/datasets?status=true").await;
    list.as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .cloned()
        .expect("dataset listed")
}

/// Waits (at most two minutes) until `name` has refreshed `count` times.
async fn wait_refreshes(http: &reqwest::Client, server: &Server, name: &str, count: u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status = dataset_status(http, server, name).await;
        if status["refreshes"].as_u64().unwrap() >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} did not refresh: {status}; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_api_key_guards_both_protocols() {
    let plugins = plugin_dir_with_both_engines();
    let server = Server::start(
        &["--plugin-dir", plugins.path().to_str().unwrap()],
        &["--api-key", "s3cret"],
    );
    let http = reqwest::Client::new();
    // /health is exempt.
    let response = http.get(server.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    for (authorization, status) in [
        (None, 401),
        (Some("Bearer wrong"), 401),
        (Some("s3cret"), 401),
        (Some("Bearer s3cret"), 200),
    ] {
        for (method, path) in [
            ("POST", "/v1/sql"),
            ("GET", "/metrics"),
            ("GET", "/v1/datasets"),
        ] {
            let mut request = match method {
                "POST" => http.post(server.url(path)).body("SELECT 1 AS one"),
                _ => http.get(server.url(path)),
            };
            if let Some(value) = authorization {
                request = request.header("authorization", value);
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status(),
                status,
                "{method} {path} with {authorization:?}"
            );
            if status == 401 {
                let body: serde_json::Value = response.json().await.unwrap();
                assert!(body["message"].as_str().unwrap().contains("API key"));
            }
        }
    }

    // Flight SQL: Unauthenticated without the key, and nothing ran.
    let mut client = flight_client(&server.flight, None).await;
    let refused = flight_query(&mut client, "SELECT 1 AS one")
        .await
        .unwrap_err();
    assert!(
        refused.contains("valid authentication credentials"),
        "{refused}"
    );
    assert!(refused.contains("API key"), "{refused}");
    let mut client = flight_client(&server.flight, Some("wrong")).await;
    let refused = flight_query(&mut client, "SELECT 1 AS one")
        .await
        .unwrap_err();
    assert!(
        refused.contains("valid authentication credentials"),
        "{refused}"
    );
    let mut client = flight_client(&server.flight, Some("s3cret")).await;
    let answer = flight_query(&mut client, "SELECT 1 AS one").await.unwrap();
    assert_eq!(rows(&answer), ["| 1   |"]);

    // ADBC: a wrong key is refused, the right one works.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("one.arrow");
    let query = serde_json::json!([{"sql": "SELECT 1 AS one", "parameters": null, "file": file.to_str().unwrap()}]);
    let refused = adbc(serde_json::json!({
        "uri": format!("grpc://{}", server.flight), "api_key": "wrong", "queries": query,
    }));
    let error = refused["error"].as_str().expect("refused");
    assert!(error.contains("UNAUTHENTICATED"), "{error}");
    let admitted = adbc(serde_json::json!({
        "uri": format!("grpc://{}", server.flight), "api_key": "s3cret", "queries": query,
    }));
    assert!(admitted.get("error").is_none(), "{admitted}");
    assert_eq!(rows(&read_arrow_file(&file)), ["| 1   |"]);

    let metrics = http
        .get(server.url("/metrics"))
        .header("authorization", "Bearer s3cret")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for protocol in ["http", "flight"] {
        let line = metrics
            .lines()
            .find(|l| {
                l.starts_with(&format!(
                    "accel_unauthenticated_requests_total{{protocol=\"{protocol}\"}}"
                ))
            })
            .unwrap_or_else(|| panic!("{protocol} refusals counted:\n{metrics}"));
        assert!(
            line.rsplit(' ').next().unwrap().parse::<u64>().unwrap() >= 2,
            "{line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_are_refused_over_the_network_unless_allowed() {
    let plugins = plugin_dir_with_both_engines();
    let data = tempfile::tempdir().unwrap();
    let global = [
        "--plugin-dir",
        plugins.path().to_str().unwrap(),
        "--data-dir",
        data.path().to_str().unwrap(),
    ];
    let create = "CREATE EXTERNAL TABLE w (k BIGINT) STORED AS duckdb LOCATION ':memory:'";
    let read_only = Server::start(&global, &[]);
    let mut client = flight_client(&read_only.flight, None).await;
    for statement in [
        create,
        "CREATE TABLE m AS SELECT 1 AS k",
        "INSERT INTO accel.datasets SELECT * FROM accel.datasets",
        "DROP TABLE accel.datasets",
        "SET datafusion.execution.batch_size = 10",
        "SET accel.federation = false",
        "COPY (SELECT 1) TO '/tmp/accel-refused.csv'",
        "CREATE VIEW v AS SELECT 1",
        "EXPLAIN ANALYZE CREATE TABLE m AS SELECT 1 AS k",
    ] {
        let refused = flight_query(&mut client, statement).await.unwrap_err();
        assert!(refused.contains("--allow-writes"), "{statement}: {refused}");
        let refused = client
            .execute_update(statement.to_owned(), None)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("--allow-writes"),
            "{statement} as an update: {refused}"
        );
    }
    // Nothing ran.
    let missing = flight_query(&mut client, "SELECT * FROM w")
        .await
        .unwrap_err();
    assert!(missing.contains("w"), "{missing}");
    assert!(!Path::new("/tmp/accel-refused.csv").exists());
    let tables = flight_query(
        &mut client,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .await
    .unwrap();
    assert!(rows(&tables).is_empty(), "{:?}", rows(&tables));
    drop(read_only);

    let writable = Server::start(&global, &["--allow-writes"]);
    let mut client = flight_client(&writable.flight, None).await;
    client
        .execute_update(create.to_owned(), None)
        .await
        .expect("CREATE");
    let inserted = client
        .execute_update("INSERT INTO w VALUES (1), (2), (3)".to_owned(), None)
        .await
        .expect("INSERT");
    assert_eq!(inserted, 3);
    let answer = flight_query(&mut client, "SELECT sum(k) AS total FROM w")
        .await
        .unwrap();
    assert_eq!(rows(&answer), ["| 6     |"]);
    flight_query(&mut client, "SET accel.federation = false")
        .await
        .expect("SET");
    let http = reqwest::Client::new();
    let response = post_sql(
        &http,
        &writable,
        "application/json",
        "INSERT INTO w VALUES (4)",
    )
    .await;
    assert_eq!(response.status(), 200);
    let answer = flight_query(&mut client, "SELECT sum(k) AS total FROM w")
        .await
        .unwrap();
    assert_eq!(rows(&answer), ["| 10    |"]);
}

const SWAP_SQL: &str = "SELECT count(*) AS n, sum(x) AS total FROM {t}";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn engines_swap_and_datasets_refresh_under_live_clients_with_no_failed_query() {
    let plugins = plugin_dir_with_both_engines();
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("numbers.parquet");
    write_parquet(&source, "SELECT value AS x FROM generate_series(1, 20000)").await;
    let config = dir.path().join("accel.yaml");
    let mut yaml = format!(
        "data_dir: {}\ndatasets:\n",
        dir.path().join("data").display()
    );
    for engine in ["sqlite", "duckdb"] {
        yaml.push_str(&format!(
            "  - from: file:{}\n    name: numbers_{engine}\n    acceleration:\n      engine: {engine}\n      mode: file\n      refresh_check_interval: 1s\n",
            source.display()
        ));
    }
    std::fs::write(&config, yaml).unwrap();
    let server = Server::start(
        &[
            "--plugin-dir",
            plugins.path().to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
        &[],
    );
    wait_ready(&server).await;
    let expected = rows(&datafusion_answer(&source, &SWAP_SQL.replace("{t}", "edges")).await);

    // The load: Flight SQL and HTTP clients querying both datasets until told to stop
    // (at most 2000 queries each), every answer checked.
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut clients = Vec::new();
    for (i, table) in [
        "numbers_sqlite",
        "numbers_duckdb",
        "numbers_sqlite",
        "numbers_duckdb",
    ]
    .into_iter()
    .enumerate()
    {
        let (stop, answered, failures, expected) = (
            Arc::clone(&stop),
            Arc::clone(&answered),
            Arc::clone(&failures),
            expected.clone(),
        );
        let sql = SWAP_SQL.replace("{t}", table);
        let flight = server.flight.clone();
        let url = server.url("/v1/sql");
        clients.push(tokio::spawn(async move {
            let mut client = flight_client(&flight, None).await;
            let http = reqwest::Client::new();
            for _ in 0..2000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let answer = if i % 2 == 0 {
                    flight_query(&mut client, &sql).await
                } else {
                    match http
                        .post(&url)
                        .header("accept", "application/vnd.apache.arrow.stream")
                        .body(sql.clone())
                        .send()
                        .await
                    {
                        Ok(response) if response.status() == 200 => match response.bytes().await {
                            Ok(bytes) => arrow_stream(bytes),
                            Err(e) => Err(e.to_string()),
                        },
                        Ok(response) => Err(format!(
                            "{}: {}",
                            response.status(),
                            response.text().await.unwrap_or_default()
                        )),
                        Err(e) => Err(e.to_string()),
                    }
                };
                match answer {
                    Ok(batches) if rows(&batches) == expected => {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(batches) => failures
                        .lock()
                        .unwrap()
                        .push(format!("{sql}: wrong answer {:?}", rows(&batches))),
                    Err(e) => failures.lock().unwrap().push(format!("{sql}: {e}")),
                }
            }
        }));
    }

    let http = reqwest::Client::new();
    let wait_answers = |at_least: usize| {
        let answered = Arc::clone(&answered);
        async move {
            let deadline = Instant::now() + Duration::from_secs(120);
            while answered.load(Ordering::Relaxed) < at_least && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_answers(20).await;
    // Version 0.2.0 of the SQLite engine dropped in, reloaded over HTTP while queries run.
    install(&sqlite_v2_library(), plugins.path());
    let reload: serde_json::Value = http
        .post(server.url("/v1/engines/reload"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        reload["moved"].as_array().map(Vec::len),
        Some(1),
        "the table moved: {reload}"
    );
    let before = dataset_status(&http, &server, "numbers_sqlite").await["refreshes"]
        .as_u64()
        .unwrap();
    let response = http
        .post(server.url("/v1/datasets/numbers_sqlite/acceleration/refresh"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let after_swap = answered.load(Ordering::Relaxed);
    wait_answers(after_swap + 40).await;
    wait_refreshes(&http, &server, "numbers_sqlite", before + 1).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }

    let failures = failures.lock().unwrap().clone();
    let answered = answered.load(Ordering::Relaxed);
    println!(
        "{answered} queries answered, {} failed, over Flight SQL and HTTP during the swap",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} failed queries: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(answered > after_swap, "queries answered after the swap");
    let engines: serde_json::Value = get_json(&http, &server, "/v1/engines").await;
    let serving: Vec<&serde_json::Value> = engines
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == "sqlite" && e["tables"] == serde_json::json!(["numbers_sqlite"]))
        .collect();
    assert_eq!(serving.len(), 1);
    assert_eq!(serving[0]["version"], "0.2.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_lets_running_queries_finish_then_the_next_start_serves_files_at_once() {
    let edges = EdgeDatasets::new().await;
    let source = edges.source();
    let mut server = edges.serve(&[]).await;

    // A long result, read slowly: the first chunk, then SIGTERM, then the rest.
    let http = reqwest::Client::new();
    let rows_wanted = 2_000_000;
    let mut response = post_sql(
        &http,
        &server,
        "text/csv",
        &format!("SELECT value FROM generate_series(1, {rows_wanted})"),
    )
    .await;
    assert_eq!(response.status(), 200);
    let mut body = response
        .chunk()
        .await
        .unwrap()
        .expect("a first chunk")
        .to_vec();
    server.terminate();
    // No new connection is accepted once stopping (bounded wait for the listener to close).
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&server.http).is_ok() {
        assert!(
            Instant::now() < deadline,
            "still accepting connections after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    while let Some(chunk) = response.chunk().await.expect("the running query finishes") {
        body.extend_from_slice(&chunk);
    }
    let lines = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    assert_eq!(
        lines,
        rows_wanted + 1,
        "header and every row of the running query"
    );
    let status = server.wait(Duration::from_secs(120));
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        server.log()
    );
    assert!(server.log().contains("stopping"), "{}", server.log());

    // The next start serves the file-mode dataset from its file, without reloading it.
    let server = edges.serve(&["--shutdown-timeout", "2"]).await;
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("accel_dataset_loaded{dataset=\"edges_duckdb\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("accel_dataset_refreshes_total{dataset=\"edges_duckdb\"} 0"),
        "{metrics}"
    );
    let served = post_sql(
        &http,
        &server,
        "application/vnd.apache.arrow.stream",
        &ALL_ROWS.replace("{t}", "edges_duckdb"),
    )
    .await;
    let bytes = served.bytes().await.unwrap();
    let served = arrow_stream(bytes).unwrap();
    assert_eq!(
        rows(&served),
        rows(&datafusion_answer(&source, ALL_ROWS).await)
    );

    // A client that stops reading does not hold the shutdown past --shutdown-timeout.
    let mut server = server;
    let stalled = post_sql(
        &http,
        &server,
        "text/csv",
        "SELECT value FROM generate_series(1, 20000000)",
    )
    .await;
    assert_eq!(stalled.status(), 200);
    server.terminate();
    let status = server.wait(Duration::from_secs(60));
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        server.log()
    );
    assert!(
        server.log().contains("cutting them off"),
        "{}",
        server.log()
    );
    drop(stalled);
}

/// Inserts over HTTP into a DuckDB and a SQLite file table, and `kill -9` while they run: after
/// a restart every insert that was answered 200 is in the file, and of the one cut off either
/// all rows or none.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_loses_no_committed_insert() {
    let plugins = plugin_dir_with_both_engines();
    let data = tempfile::tempdir().unwrap();
    let global = [
        "--plugin-dir",
        plugins.path().to_str().unwrap(),
        "--data-dir",
        data.path().to_str().unwrap(),
    ];
    let creates: Vec<String> = ["duckdb", "sqlite"]
        .iter()
        .map(|engine| {
            format!(
                "CREATE EXTERNAL TABLE k_{engine} (i BIGINT) STORED AS {engine} LOCATION '{}'",
                data.path().join(format!("k.{engine}")).display()
            )
        })
        .collect();
    let http = reqwest::Client::new();
    let mut server = Server::start(&global, &["--allow-writes"]);
    for create in &creates {
        assert_eq!(
            post_sql(&http, &server, "application/json", create)
                .await
                .status(),
            200
        );
    }
    let batch = 1000_i64;
    let mut committed = [0_i64; 2];
    let started = Instant::now();
    let mut round = 0_i64;
    loop {
        let engine = ["duckdb", "sqlite"][(round % 2) as usize];
        let insert = format!(
            "INSERT INTO k_{engine} SELECT value + {} FROM generate_series(1, {batch})",
            round * batch
        );
        if started.elapsed() > Duration::from_millis(1500) {
            // The next insert is cut off by SIGKILL while it runs.
            let pending = http.post(server.url("/v1/sql")).body(insert).send();
            let kill = async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                server.child.kill().unwrap();
            };
            let (answer, ()) = tokio::join!(pending, kill);
            if let Ok(response) = answer
                && response.status() == 200
                && response.text().await.is_ok()
            {
                committed[(round % 2) as usize] += batch;
            }
            break;
        }
        let response = post_sql(&http, &server, "application/json", &insert).await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        committed[(round % 2) as usize] += batch;
        round += 1;
        assert!(round < 100_000);
    }
    let _ = server.child.wait();
    let cut_off = (round % 2) as usize;

    let server = Server::start(&global, &["--allow-writes"]);
    for (i, create) in creates.iter().enumerate() {
        assert_eq!(
            post_sql(&http, &server, "application/json", create)
                .await
                .status(),
            200
        );
        let engine = ["duckdb", "sqlite"][i];
        let response = post_sql(
            &http,
            &server,
            "application/json",
            &format!("SELECT count(*) AS n, count(DISTINCT i) AS d FROM k_{engine}"),
        )
        .await;
        let answer: serde_json::Value = response.json().await.unwrap();
        let (n, distinct) = (
            answer[0]["n"].as_i64().unwrap(),
            answer[0]["d"].as_i64().unwrap(),
        );
        assert_eq!(n, distinct, "{engine}: no row twice");
        if i == cut_off {
            assert!(
                n == committed[i] || n == committed[i] + batch,
                "{engine}: {n} rows after kill -9; {} were committed, the cut-off insert all or \
                 nothing",
                committed[i]
            );
        } else {
            assert_eq!(n, committed[i], "{engine}: every committed insert");
        }
        assert!(committed[i] > 0);
    }
}
