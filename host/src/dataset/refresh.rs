//! One refresh of an accelerated dataset: the source read through a session of its own and
//! streamed into the engine's table through `insert_into`, the same path for every engine.
//!
//! - **full**: the source (or `refresh_sql` over it, within `refresh_data_window`) replaces
//!   the table's rows as one overwrite — each engine commits it as one transaction or one swap,
//!   so readers see the old rows or the new ones, never a mix and never an empty table, and
//!   the rows stream in batches (nothing collects the source whole on the way).
//! - **append**: the newest time value held is read from the table; the source is read from
//!   that value (minus `refresh_append_overlap`) on, with the bound pushed to the source as a
//!   filter; rows already held in that window are dropped — by `primary_key` when there is one,
//!   else by whole-row equality counted with multiplicity — and the rest appended. The bound is
//!   inclusive (`>=`): rows sharing the boundary timestamp that arrived after the last refresh
//!   are read, and those already held are dropped, so none is lost or doubled.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::common::stats::Precision;
use datafusion::common::{JoinType, ScalarValue, TableReference};
use datafusion::error::{DataFusionError, Result};
use datafusion::functions::datetime::expr_fn::{now, to_timestamp};
use datafusion::functions_aggregate::expr_fn::max;
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{ExprFunctionExt, col, lit};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::statistics::{StatisticsArgs, StatisticsContext};
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties, collect};
use datafusion::prelude::{DataFrame, Expr, SessionConfig, SessionContext};
use datafusion::scalar::ScalarValue as Scalar;

use super::progress::{CountingExec, Progress};
use crate::config::{DatasetSpec, RefreshMode, TimeFormat};
use crate::host::session::runtime_without_listing_cache;
use crate::source;
use crate::table::managed::with_query_guards;

/// What a refresh did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RefreshSummary {
    pub mode: RefreshMode,
    /// Rows written by this refresh.
    pub rows_written: u64,
    /// Rows in the table after it.
    pub rows_held: u64,
}

/// Name under which the accelerated table is read inside a refresh's own session.
const HELD: &str = "__accel_held";
/// Row numbers that make duplicates distinct for the whole-row comparison.
const OCCURRENCE: &str = "__accel_occurrence";

/// A session for reading a dataset's source: DataFusion defaults, except that parquet strings
/// are read as `Utf8` (engines store plain strings, not view types) and file listings are
/// never cached (each refresh sees the files there now).
pub fn source_session() -> SessionContext {
    let mut config = SessionConfig::new();
    config
        .options_mut()
        .execution
        .parquet
        .schema_force_view_types = false;
    SessionContext::new_with_config_rt(config, runtime_without_listing_cache())
}

/// The rows a refresh reads from the source: the source (or `refresh_sql` over it) within the
/// data window. The source is registered in `session` under the dataset's name.
pub async fn source_rows(spec: &DatasetSpec, session: &SessionContext) -> Result<DataFrame> {
    let provider = source::open(spec, &session.state()).await?;
    let source_name = spec.source_name();
    session.register_table(TableReference::bare(source_name), provider)?;
    let acceleration = spec.acceleration.as_ref();
    let mut rows = match acceleration.and_then(|a| a.refresh_sql.as_deref()) {
        Some(sql) => session.sql(sql).await.map_err(|e| {
            DataFusionError::Plan(format!("dataset `{source_name}`: refresh_sql: {e}"))
        })?,
        None => session.table(TableReference::bare(source_name)).await?,
    };
    if let Some(part) = &spec.shard {
        rows = source::shard::keep_shard_rows(rows, part)?;
    }
    if let (Some(window), Some(column)) = (
        acceleration.and_then(|a| a.refresh_data_window),
        spec.time_column.as_deref(),
    ) {
        let time = TimeColumn::of(spec, column, rows.schema().as_arrow())?;
        rows = rows.filter(time.not_before(time.now(), window))?;
    }
    Ok(rows)
}

/// The Arrow schema an accelerated table of `spec` gets: the source rows' schema.
pub async fn accelerated_schema(spec: &DatasetSpec) -> Result<SchemaRef> {
    let session = source_session();
    let rows = source_rows(spec, &session).await?;
    Ok(Arc::new(rows.schema().as_arrow().clone()))
}

/// Runs one refresh of `spec` into `table` (the accelerated table as the host session serves
/// it), counting rows into `progress`.
pub async fn refresh(
    spec: &DatasetSpec,
    table: Arc<dyn TableProvider>,
    mode: RefreshMode,
    progress: &Arc<Progress>,
) -> Result<RefreshSummary> {
    let session = source_session();
    session.register_table(HELD, Arc::clone(&table))?;
    let incoming = source_rows(spec, &session).await?;
    let held_schema = table.schema();
    let incoming = conform(incoming, &held_schema, &spec.name)?;
    let newest = match (mode, spec.time_column.as_deref()) {
        (RefreshMode::Append, Some(column)) => newest_held(&session, column).await?,
        _ => None,
    };
    let (rows, op) = match (mode, newest) {
        (RefreshMode::Append, Some(newest)) => {
            let column = spec.time_column.as_deref().unwrap_or_default();
            let time = TimeColumn::of(spec, column, &held_schema)?;
            let overlap = spec
                .acceleration
                .as_ref()
                .and_then(|a| a.refresh_append_overlap)
                .unwrap_or_default();
            let bound = time.not_before(lit(newest), overlap);
            let incoming = incoming.filter(bound.clone())?;
            let held = session.table(HELD).await?;
            (not_held(spec, incoming, held, bound)?, InsertOp::Append)
        }
        // Nothing held yet, or a full refresh: every source row, replacing what is held.
        _ => (incoming, InsertOp::Overwrite),
    };
    let state = session.state();
    let written = with_query_guards(async {
        let mut plan = rows.create_physical_plan().await?;
        // An insert writes its input's partition 0 only: merge the partitions first.
        if plan.output_partitioning().partition_count() > 1 {
            plan = Arc::new(CoalescePartitionsExec::new(plan));
        }
        if let Some(rows) = exact_rows(plan.as_ref()) {
            progress.expect_rows(rows);
        }
        let counted: Arc<dyn ExecutionPlan> = Arc::new(CountingExec::new(plan, progress));
        let insert = table.insert_into(&state, counted, op).await?;
        let batches = collect(insert, session.task_ctx()).await?;
        Ok::<u64, DataFusionError>(count_written(&batches))
    })
    .await?;
    let rows_held = session.table(HELD).await?.count().await? as u64;
    Ok(RefreshSummary {
        mode,
        rows_written: written,
        rows_held,
    })
}

/// The rows `plan` yields, when its statistics know them exactly (parquet files do).
fn exact_rows(plan: &dyn ExecutionPlan) -> Option<u64> {
    let statistics = StatisticsContext::new()
        .compute(plan, &StatisticsArgs::new())
        .ok()?;
    match statistics.num_rows {
        Precision::Exact(rows) => Some(rows as u64),
        _ => None,
    }
}

/// The source rows cast to the accelerated table's column types (a source whose columns
/// changed is an error naming them).
fn conform(rows: DataFrame, held: &SchemaRef, dataset: &str) -> Result<DataFrame> {
    let found = rows.schema().as_arrow().clone();
    let names_match = found.fields().len() == held.fields().len()
        && found
            .fields()
            .iter()
            .zip(held.fields())
            .all(|(f, h)| f.name() == h.name());
    if !names_match {
        let list = |fields: &datafusion::arrow::datatypes::Fields| {
            fields
                .iter()
                .map(|f| format!("{} {}", f.name(), f.data_type()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(DataFusionError::Plan(format!(
            "dataset `{dataset}`: the source now has columns ({}) but the accelerated table has \
             ({}); remove the table's file (or restart, for memory mode) to accelerate the new \
             shape",
            list(found.fields()),
            list(held.fields())
        )));
    }
    if found
        .fields()
        .iter()
        .zip(held.fields())
        .all(|(f, h)| f.data_type() == h.data_type())
    {
        return Ok(rows);
    }
    let casts = held
        .fields()
        .iter()
        .map(|h| {
            datafusion::logical_expr::cast(col(h.name().as_str()), h.data_type().clone())
                .alias(h.name())
        })
        .collect::<Vec<_>>();
    rows.select(casts)
}

/// The newest time value the table holds (`None` when it holds no row).
async fn newest_held(session: &SessionContext, column: &str) -> Result<Option<Scalar>> {
    let batches = session
        .table(HELD)
        .await?
        .aggregate(vec![], vec![max(col(column)).alias("newest")])?
        .collect()
        .await?;
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(None);
    };
    let newest = ScalarValue::try_from_array(batch.column(0), 0)?;
    Ok((!newest.is_null()).then_some(newest))
}

/// The incoming rows the table does not already have: by key against every row held (a key
/// is held once, wherever its time), else by whole rows against the held rows in the window.
fn not_held(
    spec: &DatasetSpec,
    incoming: DataFrame,
    held: DataFrame,
    window: Expr,
) -> Result<DataFrame> {
    let acceleration = spec.acceleration.as_ref();
    if acceleration.is_some_and(|a| !a.on_conflict.is_empty()) {
        // The engine resolves rows whose key it holds, as on_conflict says.
        return Ok(incoming);
    }
    if let Some(key) = acceleration.and_then(|a| a.primary_key.as_ref()) {
        let key: Vec<&str> = key.0.iter().map(String::as_str).collect();
        let held_keys = held.select_columns(&key)?;
        return incoming.join(held_keys, JoinType::LeftAnti, &key, &key, None);
    }
    let held = held.filter(window)?;
    // Whole rows, with multiplicity: the n-th copy of a row is new only if the window holds
    // fewer than n copies of it.
    let columns: Vec<String> = incoming
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let numbered = |rows: DataFrame| -> Result<DataFrame> {
        let partition: Vec<Expr> = columns.iter().map(|c| col(c.as_str())).collect();
        rows.window(vec![
            row_number()
                .partition_by(partition)
                .build()?
                .alias(OCCURRENCE),
        ])
    };
    let fresh = numbered(incoming)?.except(numbered(held)?)?;
    let keep: Vec<&str> = columns.iter().map(String::as_str).collect();
    fresh.select_columns(&keep)
}

/// Rows written, as the insert plan reports them (one `count` column).
fn count_written(batches: &[datafusion::arrow::record_batch::RecordBatch]) -> u64 {
    batches
        .iter()
        .filter(|b| b.num_columns() > 0)
        .filter_map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<datafusion::arrow::array::UInt64Array>()
        })
        .map(|counts| counts.iter().flatten().sum::<u64>())
        .sum()
}

/// A dataset's time column and how its values count time.
struct TimeColumn {
    name: String,
    kind: TimeKind,
}

enum TimeKind {
    /// A timestamp column: compared with timestamps and intervals.
    Temporal,
    /// A date column: compared with dates and whole days.
    Date,
    /// Seconds (1) or milliseconds (1000) since 1970 in an integer column.
    Epoch { per_second: i64 },
    /// RFC 3339 text, compared as timestamps.
    Text,
}

impl TimeColumn {
    fn of(
        spec: &DatasetSpec,
        name: &str,
        schema: &datafusion::arrow::datatypes::Schema,
    ) -> Result<Self> {
        let field = schema.field_with_name(name).map_err(|_| {
            DataFusionError::Plan(format!(
                "dataset `{}`: time_column `{name}` is not a column of the source (columns: {})",
                spec.name,
                schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        let kind = match (field.data_type(), spec.time_format) {
            (DataType::Timestamp(..), _) => TimeKind::Temporal,
            (DataType::Date32 | DataType::Date64, _) => TimeKind::Date,
            (t, Some(TimeFormat::UnixMillis)) if t.is_integer() => {
                TimeKind::Epoch { per_second: 1000 }
            }
            (t, None | Some(TimeFormat::UnixSeconds)) if t.is_integer() => {
                TimeKind::Epoch { per_second: 1 }
            }
            (
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View,
                None | Some(TimeFormat::Iso8601),
            ) => TimeKind::Text,
            (other, format) => {
                return Err(DataFusionError::Plan(format!(
                    "dataset `{}`: time_column `{name}` is {other}{}; expected a timestamp or \
                     date column, an integer column (time_format unix_seconds or unix_millis) \
                     or RFC 3339 text (time_format ISO8601)",
                    spec.name,
                    format
                        .map(|f| format!(" with time_format {f:?}"))
                        .unwrap_or_default()
                )));
            }
        };
        Ok(Self {
            name: name.to_owned(),
            kind,
        })
    }

    /// "Now" in the column's own terms.
    fn now(&self) -> Expr {
        match self.kind {
            TimeKind::Temporal | TimeKind::Text => now(),
            TimeKind::Date => datafusion::logical_expr::cast(now(), DataType::Date32),
            TimeKind::Epoch { per_second } => {
                let elapsed = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                let value = if per_second == 1 {
                    elapsed.as_secs() as i64
                } else {
                    elapsed.as_millis() as i64
                };
                lit(value)
            }
        }
    }

    /// `column >= base - back`, in the column's terms (inclusive: see the module doc).
    fn not_before(&self, base: Expr, back: Duration) -> Expr {
        let column = col(self.name.as_str());
        match self.kind {
            _ if back.is_zero() && !matches!(self.kind, TimeKind::Text) => column.gt_eq(base),
            TimeKind::Temporal => column.gt_eq(base - interval(back)),
            TimeKind::Date => {
                let days = back.as_secs().div_ceil(86_400);
                let days = i32::try_from(days).unwrap_or(i32::MAX);
                column.gt_eq(base - lit(ScalarValue::new_interval_mdn(0, days, 0)))
            }
            TimeKind::Epoch { per_second } => {
                let back = if per_second == 1 {
                    back.as_secs() as i64
                } else {
                    back.as_millis() as i64
                };
                column.gt_eq(base - lit(back))
            }
            TimeKind::Text => {
                to_timestamp(vec![column]).gt_eq(to_timestamp(vec![base]) - interval(back))
            }
        }
    }
}

fn interval(length: Duration) -> Expr {
    lit(ScalarValue::new_interval_mdn(
        0,
        0,
        i64::try_from(length.as_nanos()).unwrap_or(i64::MAX),
    ))
}
