//! HTTP on axum, with Spice's paths and formats: `POST /v1/sql` (JSON rows, CSV, a text
//! table or an Arrow IPC stream, by `Accept`), `GET /v1/datasets[?status=true]`,
//! `POST /v1/datasets/{name}/acceleration/refresh`, `GET /health`, `GET /v1/ready`, plus
//! `GET /v1/engines`, `POST /v1/engines/reload` and `GET /metrics`. Errors are
//! `{"message": …}` with the status that says whose fault it is.
//!
//! Rows stream: the response starts once the first batch is ready (an error before it is a
//! proper error response) and each batch is written as it comes; an error after that aborts
//! the response, so a client never takes a cut-short body for a whole one. Only `text/plain`
//! waits for every row, to size its columns.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{
    DataType, FieldRef, Float16Type, Float32Type, Float64Type, SchemaRef,
};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::json::writer::{
    Encoder as JsonEncoder, EncoderFactory, EncoderOptions, NullableEncoder,
};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::physical_plan::RecordBatchStream;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{ApiKey, unauthenticated_message};
use super::metrics::Protocol;
use super::query::{Queries, QueryError};
use crate::dataset::Datasets;
use crate::dataset::status::DatasetState;

/// What the handlers share.
pub struct HttpState {
    pub queries: Arc<Queries>,
    pub datasets: Arc<Datasets>,
    pub api_key: ApiKey,
}

/// The routes, behind the API key check (`/health` is exempt).
pub fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/v1/sql", post(sql))
        .route("/v1/ready", get(ready))
        .route("/v1/datasets", get(datasets))
        .route("/v1/datasets/{name}/acceleration/refresh", post(refresh))
        .route("/v1/engines", get(engines))
        .route("/v1/engines/reload", post(reload))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            require_key,
        ))
        .route("/health", get(health))
        .fallback(not_found)
        .with_state(state)
}

async fn require_key(
    State(state): State<Arc<HttpState>>,
    request: Request,
    next: Next,
) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if state.api_key.admits(authorization) {
        return next.run(request).await;
    }
    state.queries.metrics.unauthenticated(Protocol::Http);
    let mut response = error(StatusCode::UNAUTHORIZED, unauthenticated_message());
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "message": message.into() }))).into_response()
}

fn query_error(e: &QueryError) -> Response {
    let status = match e {
        QueryError::Refused(_) => StatusCode::FORBIDDEN,
        QueryError::Invalid(_) => StatusCode::BAD_REQUEST,
        QueryError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.message())
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such endpoint: POST /v1/sql, GET /v1/datasets, POST \
         /v1/datasets/{name}/acceleration/refresh, GET /v1/ready, GET /health, GET /v1/engines, \
         POST /v1/engines/reload, GET /metrics",
    )
}

async fn health() -> &'static str {
    "ok"
}

/// 200 once every dataset has been served once (loaded, or opened from its file).
async fn ready(State(state): State<Arc<HttpState>>) -> Response {
    let ready = state.datasets.all().iter().all(|d| {
        let status = d.status();
        status.loaded || status.state == DatasetState::Disabled
    });
    if ready {
        (StatusCode::OK, "Ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Not Ready").into_response()
    }
}

/// The formats `POST /v1/sql` answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
    Text,
    Arrow,
}

const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

impl Format {
    /// The first type in `Accept` that we produce; JSON when there is no header.
    fn negotiate(headers: &HeaderMap) -> Result<Self, String> {
        let Some(accept) = headers.get(header::ACCEPT) else {
            return Ok(Self::Json);
        };
        let accept = accept.to_str().unwrap_or_default();
        for item in accept.split(',') {
            let media = item.split(';').next().unwrap_or_default().trim();
            let format = match media.to_ascii_lowercase().as_str() {
                "application/json" | "application/*" | "*/*" => Self::Json,
                "text/csv" => Self::Csv,
                "text/plain" | "text/*" => Self::Text,
                ARROW_STREAM => Self::Arrow,
                _ => continue,
            };
            return Ok(format);
        }
        Err(format!(
            "cannot answer in `{accept}`: ask for application/json, text/csv, text/plain or \
             {ARROW_STREAM}"
        ))
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Csv => "text/csv; charset=utf-8",
            Self::Text => "text/plain; charset=utf-8",
            Self::Arrow => ARROW_STREAM,
        }
    }
}

/// Writes batches in one format, piece by piece.
struct Encoder {
    format: Format,
    schema: SchemaRef,
    batches_written: usize,
    rows_written: usize,
    ipc: Option<StreamWriter<Vec<u8>>>,
}

impl Encoder {
    fn new(format: Format, schema: SchemaRef) -> Result<Self, ArrowError> {
        let ipc = match format {
            Format::Arrow => Some(StreamWriter::try_new(Vec::new(), &schema)?),
            _ => None,
        };
        Ok(Self {
            format,
            schema,
            batches_written: 0,
            rows_written: 0,
            ipc,
        })
    }

    fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, ArrowError> {
        let mut out = Vec::new();
        match self.format {
            Format::Json => {
                if self.batches_written == 0 {
                    out.push(b'[');
                }
                let mut writer = datafusion::arrow::json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .with_encoder_factory(Arc::new(NonFiniteFloatsAsText))
                    .build::<_, datafusion::arrow::json::writer::LineDelimited>(Vec::new());
                writer.write(batch)?;
                writer.finish()?;
                // One object per line (newlines inside strings are escaped).
                for line in writer.into_inner().split(|b| *b == b'\n') {
                    if line.is_empty() {
                        continue;
                    }
                    if self.rows_written > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(line);
                    self.rows_written += 1;
                }
            }
            Format::Csv => {
                let mut writer = datafusion::arrow::csv::WriterBuilder::new()
                    .with_header(self.batches_written == 0)
                    .build(&mut out);
                writer.write(batch)?;
            }
            Format::Arrow => {
                let writer = self.ipc.as_mut().expect("made with the Arrow format");
                writer.write(batch)?;
                out = std::mem::take(writer.get_mut());
            }
            Format::Text => unreachable!("text tables are written whole"),
        }
        self.batches_written += 1;
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<u8>, ArrowError> {
        match self.format {
            Format::Json => Ok(if self.batches_written == 0 {
                b"[]".to_vec()
            } else {
                b"]".to_vec()
            }),
            // The header, when there was no row.
            Format::Csv if self.batches_written == 0 => {
                self.batch(&RecordBatch::new_empty(Arc::clone(&self.schema)))
            }
            Format::Csv => Ok(Vec::new()),
            Format::Arrow => {
                let writer = self.ipc.as_mut().expect("made with the Arrow format");
                writer.finish()?;
                Ok(std::mem::take(writer.get_mut()))
            }
            Format::Text => unreachable!("text tables are written whole"),
        }
    }
}

/// JSON has no NaN or infinity, and arrow's writer turns them into `null` — which reads as a
/// missing value. Floats are written here instead: finite ones as numbers (shortest form that
/// reads back exactly), NaN and ±infinity as the strings `"NaN"`, `"Infinity"`, `"-Infinity"`.
#[derive(Debug)]
struct NonFiniteFloatsAsText;

impl EncoderFactory for NonFiniteFloatsAsText {
    fn make_default_encoder<'a>(
        &self,
        _field: &'a FieldRef,
        array: &'a dyn Array,
        _options: &'a EncoderOptions,
    ) -> Result<Option<NullableEncoder<'a>>, ArrowError> {
        let text: Box<dyn Fn(usize) -> String + 'a> = match array.data_type() {
            DataType::Float64 => {
                let values = array.as_primitive::<Float64Type>();
                Box::new(move |i| float_json(values.value(i)))
            }
            DataType::Float32 => {
                let values = array.as_primitive::<Float32Type>();
                Box::new(move |i| float_json(values.value(i)))
            }
            DataType::Float16 => {
                let values = array.as_primitive::<Float16Type>();
                Box::new(move |i| float_json(values.value(i).to_f32()))
            }
            _ => return Ok(None),
        };
        Ok(Some(NullableEncoder::new(
            Box::new(FloatEncoder(text)),
            array.logical_nulls(),
        )))
    }
}

struct FloatEncoder<'a>(Box<dyn Fn(usize) -> String + 'a>);

impl JsonEncoder for FloatEncoder<'_> {
    fn encode(&mut self, index: usize, out: &mut Vec<u8>) {
        out.extend_from_slice((self.0)(index).as_bytes());
    }
}

/// A float as JSON: `{:?}` is Rust's shortest exact form (`1.5`, `-0.0`, `1e300`), valid JSON.
fn float_json<F: num_like::Float>(value: F) -> String {
    if value.is_nan() {
        "\"NaN\"".to_owned()
    } else if value.is_infinite() {
        if value.is_sign_negative() {
            "\"-Infinity\"".to_owned()
        } else {
            "\"Infinity\"".to_owned()
        }
    } else {
        format!("{value:?}")
    }
}

/// The float operations [`float_json`] needs, for `f32` and `f64`.
mod num_like {
    pub trait Float: std::fmt::Debug + Copy {
        fn is_nan(self) -> bool;
        fn is_infinite(self) -> bool;
        fn is_sign_negative(self) -> bool;
    }

    macro_rules! float {
        ($t:ty) => {
            impl Float for $t {
                fn is_nan(self) -> bool {
                    <$t>::is_nan(self)
                }
                fn is_infinite(self) -> bool {
                    <$t>::is_infinite(self)
                }
                fn is_sign_negative(self) -> bool {
                    <$t>::is_sign_negative(self)
                }
            }
        };
    }
    float!(f32);
    float!(f64);
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn sql(State(state): State<Arc<HttpState>>, headers: HeaderMap, body: String) -> Response {
    let format = match Format::negotiate(&headers) {
        Ok(format) => format,
        Err(message) => return error(StatusCode::NOT_ACCEPTABLE, message),
    };
    let mut stream = match state.queries.plan_and_run(&body, Protocol::Http).await {
        Ok(stream) => stream,
        Err(e) => return query_error(&e),
    };
    let schema = stream.schema();
    if format == Format::Text {
        let mut batches = Vec::new();
        while let Some(batch) = stream.next().await {
            match batch {
                Ok(batch) => batches.push(batch),
                Err(e) => return query_error(&QueryError::from_datafusion(e)),
            }
        }
        let table = match datafusion::arrow::util::pretty::pretty_format_batches(&batches) {
            Ok(table) => format!("{table}\n"),
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
        return ([(header::CONTENT_TYPE, format.content_type())], table).into_response();
    }
    // The first batch before the response starts: most failures happen by then.
    let first = match stream.next().await {
        Some(Err(e)) => return query_error(&QueryError::from_datafusion(e)),
        Some(Ok(batch)) => Some(batch),
        None => None,
    };
    let encoder = match Encoder::new(format, schema) {
        Ok(encoder) => encoder,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let chunks = futures::stream::unfold(Some((stream, encoder, first)), |state| async move {
        let (mut stream, mut encoder, first) = state?;
        let next = match first {
            Some(batch) => Some(Ok(batch)),
            None => stream.next().await,
        };
        Some(match next {
            Some(Ok(batch)) => (
                encoder
                    .batch(&batch)
                    .map(Bytes::from)
                    .map_err(BoxError::from),
                Some((stream, encoder, None)),
            ),
            Some(Err(e)) => {
                tracing::warn!("a query failed after its response started: {e}");
                (Err(BoxError::from(e)), None)
            }
            None => (
                encoder.finish().map(Bytes::from).map_err(BoxError::from),
                None,
            ),
        })
    });
    (
        [(header::CONTENT_TYPE, format.content_type())],
        Body::from_stream(chunks),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
struct DatasetsQuery {
    #[serde(default)]
    status: bool,
}

async fn datasets(
    State(state): State<Arc<HttpState>>,
    Query(query): Query<DatasetsQuery>,
) -> Response {
    let mut list = Vec::new();
    for row in state.datasets.rows().await {
        let mut entry = json!({
            "name": row.name,
            "from": row.source,
            "acceleration_enabled": row.engine.is_some(),
            "engine": row.engine,
            "engine_version": row.engine_version,
            "mode": row.mode,
            "refresh_mode": row.refresh_mode,
        });
        if query.status {
            let s = &row.status;
            let time = |t: Option<std::time::SystemTime>| {
                t.map(|t| humantime::format_rfc3339_millis(t).to_string())
            };
            entry["status"] = json!(s.state.to_string());
            entry["loaded"] = json!(s.loaded);
            entry["rows"] = json!(s.rows);
            entry["last_refresh_start"] = json!(time(s.last_refresh_start));
            entry["last_refresh_end"] = json!(time(s.last_refresh_end));
            entry["last_refresh_duration_ms"] =
                json!(s.last_refresh_duration.map(|d| d.as_millis() as u64));
            entry["next_refresh"] = json!(time(s.next_refresh));
            entry["refreshes"] = json!(s.refreshes);
            entry["failures"] = json!(s.failures);
            entry["last_error"] = json!(s.last_error);
        }
        list.push(entry);
    }
    axum::Json(Value::Array(list)).into_response()
}

/// Queues a refresh and answers at once (201); the dataset's status shows its progress.
async fn refresh(State(state): State<Arc<HttpState>>, Path(name): Path<String>) -> Response {
    let Some(dataset) = state.datasets.get(&name) else {
        return error(StatusCode::NOT_FOUND, state.datasets.unknown(&name));
    };
    match dataset.request_refresh() {
        Ok(outcome) => {
            let name = dataset.name.clone();
            tokio::spawn(async move {
                if let Ok(Err(e)) = outcome.await {
                    tracing::warn!(dataset = %name, "requested refresh failed: {e}");
                }
            });
            (
                StatusCode::CREATED,
                axum::Json(json!({
                    "message": format!("Dataset refresh triggered for {}.", dataset.name)
                })),
            )
                .into_response()
        }
        Err(message) => error(StatusCode::BAD_REQUEST, message),
    }
}

async fn engines(State(state): State<Arc<HttpState>>) -> Response {
    let host = state.queries.host();
    let list: Vec<Value> = host
        .generations()
        .await
        .into_iter()
        .map(|(engine, tables)| {
            json!({
                "name": engine.name(),
                "version": engine.version.to_string(),
                "plugin_api": engine.api_version,
                "state": engine.state().to_string(),
                "origin": engine.origin.to_string(),
                "tables": tables,
            })
        })
        .collect();
    axum::Json(Value::Array(list)).into_response()
}

/// Loads new or changed engine libraries and moves tables to them while queries run.
async fn reload(State(state): State<Arc<HttpState>>) -> Response {
    let report = state.queries.host().reload().await;
    tracing::info!("reload: {}", report.to_string().trim_end());
    axum::Json(json!({
        "loaded": report.loaded,
        "unchanged": report.unchanged,
        "moved": report.moved,
        "kept": report.kept,
        "retired": report.retired,
        "problems": report.problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
    }))
    .into_response()
}

async fn metrics(State(state): State<Arc<HttpState>>) -> Response {
    let text = state
        .queries
        .metrics
        .render(state.queries.host(), &state.datasets)
        .await;
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
