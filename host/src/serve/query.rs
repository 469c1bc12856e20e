//! One statement from the network, from text to a stream of batches: parsed, refused when it
//! would write and writes are not allowed, planned on the host's session, run, and observed
//! (count, outcome, latency) until its stream ends. Flight SQL and HTTP both call [`Queries`].

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ParamValues;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::RecordBatchStream;
use datafusion::sql::parser::DFParser;
use futures::Stream;

use super::metrics::{InFlight, Metrics, Outcome, Protocol};
use crate::Host;
use crate::dataset::plain_message;
use crate::federation::federation_setting;

/// Why a statement did not run.
#[derive(Debug)]
pub enum QueryError {
    /// The statement would write or change the catalog, and the server is read-only.
    Refused(String),
    /// The statement is not valid: syntax, unknown table or column, wrong parameters.
    Invalid(String),
    /// It was valid but failed while running.
    Failed(String),
}

impl QueryError {
    pub fn message(&self) -> &str {
        match self {
            Self::Refused(m) | Self::Invalid(m) | Self::Failed(m) => m,
        }
    }

    /// Sorts a DataFusion error: mistakes in the statement are `Invalid`, the rest `Failed`.
    pub fn from_datafusion(error: DataFusionError) -> Self {
        let message = match error.find_root() {
            // `sql parser error: Expected: …, found: … at Line: 1, Column: 1`.
            DataFusionError::SQL(parser, _) => parser.to_string(),
            _ => plain_message(&error),
        };
        match error.find_root() {
            DataFusionError::SQL(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(_)
            | DataFusionError::Configuration(_) => Self::Invalid(message),
            _ => Self::Failed(message),
        }
    }

    fn outcome(&self) -> Outcome {
        match self {
            Self::Refused(_) => Outcome::Refused,
            Self::Invalid(_) | Self::Failed(_) => Outcome::Error,
        }
    }
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// A statement planned and checked, ready to run (possibly with parameters).
#[derive(Debug, Clone)]
pub struct Planned {
    pub plan: LogicalPlan,
    /// `SET accel.federation = …`: not a DataFusion statement; applied when run.
    pub federation: Option<bool>,
}

impl Planned {
    /// The schema of the rows the statement returns.
    pub fn schema(&self) -> SchemaRef {
        Arc::new(self.plan.schema().as_arrow().clone())
    }

    /// The placeholders (`$1`, `$name`) with the types DataFusion inferred for them, in order.
    pub fn parameters(
        &self,
    ) -> Result<Vec<(String, Option<datafusion::arrow::datatypes::DataType>)>, QueryError> {
        let mut parameters: Vec<_> = self
            .plan
            .get_parameter_types()
            .map_err(QueryError::from_datafusion)?
            .into_iter()
            .collect();
        parameters.sort_by_key(|(id, _)| placeholder_order(id));
        Ok(parameters)
    }
}

/// `$2` before `$10`; named placeholders after the numbered ones, by name.
fn placeholder_order(id: &str) -> (u8, usize, String) {
    match id.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) {
        Some(n) => (0, n, String::new()),
        None => (1, 0, id.to_owned()),
    }
}

/// Runs network statements on a host.
pub struct Queries {
    host: Arc<Host>,
    allow_writes: bool,
    pub metrics: Arc<Metrics>,
}

impl Queries {
    pub fn new(host: Arc<Host>, allow_writes: bool, metrics: Arc<Metrics>) -> Self {
        Self {
            host,
            allow_writes,
            metrics,
        }
    }

    pub fn allow_writes(&self) -> bool {
        self.allow_writes
    }

    pub fn host(&self) -> &Arc<Host> {
        &self.host
    }

    /// Parses and plans one statement; refuses writes on a read-only server. Records a
    /// failure in the metrics (a success is recorded when its stream ends).
    pub async fn plan(&self, sql: &str, protocol: Protocol) -> Result<Planned, QueryError> {
        let planned = self.plan_unrecorded(sql).await;
        if let Err(e) = &planned {
            self.metrics.query_done(protocol, e.outcome(), None);
            tracing::debug!(%protocol, error = %e, "statement not run");
        }
        planned
    }

    async fn plan_unrecorded(&self, sql: &str) -> Result<Planned, QueryError> {
        let mut statements = DFParser::parse_sql(sql).map_err(QueryError::from_datafusion)?;
        let statement = match (statements.pop_front(), statements.is_empty()) {
            (Some(statement), true) => statement,
            (None, _) => return Err(QueryError::Invalid("no SQL statement given".to_owned())),
            (Some(_), false) => {
                return Err(QueryError::Invalid(format!(
                    "one statement per request, found {}: send them one at a time",
                    statements.len() + 1
                )));
            }
        };
        if let Some(setting) = federation_setting(&statement.to_string()) {
            let on = setting.map_err(QueryError::from_datafusion)?;
            if !self.allow_writes {
                return Err(refused("SET"));
            }
            let plan = LogicalPlan::EmptyRelation(datafusion::logical_expr::EmptyRelation {
                produce_one_row: false,
                schema: Arc::new(datafusion::common::DFSchema::empty()),
            });
            return Ok(Planned {
                plan,
                federation: Some(on),
            });
        }
        let state = self.host.context().state();
        let plan = state
            .statement_to_plan(statement)
            .await
            .map_err(QueryError::from_datafusion)?;
        if !self.allow_writes {
            let read_only = SQLOptions::new()
                .with_allow_ddl(false)
                .with_allow_dml(false)
                .with_allow_statements(false);
            if read_only.verify_plan(&plan).is_err() {
                return Err(refused(statement_kind(&plan)));
            }
        }
        Ok(Planned {
            plan,
            federation: None,
        })
    }

    /// Runs a planned statement with `parameters` bound (when it has placeholders) and returns
    /// its rows as a stream that records the outcome in the metrics when it ends.
    pub async fn run(
        &self,
        planned: Planned,
        parameters: Option<ParamValues>,
        protocol: Protocol,
    ) -> Result<ObservedStream, QueryError> {
        let started = Instant::now();
        let in_flight = self.metrics.in_flight(protocol);
        let stream = self.run_unrecorded(planned, parameters).await;
        match stream {
            Ok(stream) => Ok(ObservedStream {
                inner: stream,
                metrics: Arc::clone(&self.metrics),
                protocol,
                started,
                finished: false,
                _in_flight: in_flight,
            }),
            Err(e) => {
                self.metrics
                    .query_done(protocol, e.outcome(), Some(started.elapsed()));
                Err(e)
            }
        }
    }

    async fn run_unrecorded(
        &self,
        planned: Planned,
        parameters: Option<ParamValues>,
    ) -> Result<SendableRecordBatchStream, QueryError> {
        if let Some(on) = planned.federation {
            self.host.federation_switch().set(on);
        }
        let plan = match parameters {
            Some(values) => planned
                .plan
                .with_param_values(values)
                .map_err(QueryError::from_datafusion)?,
            None => planned.plan,
        };
        let frame = self
            .host
            .context()
            .execute_logical_plan(plan)
            .await
            .map_err(QueryError::from_datafusion)?;
        frame
            .execute_stream()
            .await
            .map_err(QueryError::from_datafusion)
    }

    /// Plans and runs one statement without parameters.
    pub async fn plan_and_run(
        &self,
        sql: &str,
        protocol: Protocol,
    ) -> Result<ObservedStream, QueryError> {
        let planned = self.plan(sql, protocol).await?;
        self.run(planned, None, protocol).await
    }
}

fn refused(kind: &str) -> QueryError {
    QueryError::Refused(format!(
        "{kind} statements are refused: this server is read-only (start `accel serve` with \
         --allow-writes to accept statements that write or change the catalog)"
    ))
}

/// A short name of what a refused statement does.
fn statement_kind(plan: &LogicalPlan) -> &'static str {
    match plan {
        LogicalPlan::Ddl(_) => "DDL (CREATE/DROP)",
        LogicalPlan::Dml(_) | LogicalPlan::Copy(_) => "DML (INSERT/UPDATE/DELETE/COPY)",
        LogicalPlan::Statement(_) => "SET/PREPARE/transaction",
        LogicalPlan::Explain(_) | LogicalPlan::Analyze(_) => "EXPLAIN of a writing",
        _ => "writing",
    }
}

/// A query's rows; records the outcome and the latency when the stream ends, fails or is
/// dropped early (cancelled), and counts as in flight until then.
pub struct ObservedStream {
    inner: SendableRecordBatchStream,
    metrics: Arc<Metrics>,
    protocol: Protocol,
    started: Instant,
    finished: bool,
    _in_flight: InFlight,
}

impl ObservedStream {
    fn finish(&mut self, outcome: Outcome) {
        if !self.finished {
            self.finished = true;
            self.metrics
                .query_done(self.protocol, outcome, Some(self.started.elapsed()));
        }
    }
}

impl Stream for ObservedStream {
    type Item = Result<RecordBatch, DataFusionError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(None) => self.finish(Outcome::Ok),
            Poll::Ready(Some(Err(_))) => self.finish(Outcome::Error),
            _ => {}
        }
        polled
    }
}

impl RecordBatchStream for ObservedStream {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

impl Drop for ObservedStream {
    fn drop(&mut self) {
        self.finish(Outcome::Cancelled);
    }
}
