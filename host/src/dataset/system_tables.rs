//! `accel.datasets` and `accel.engines`: status as tables any client can query. Each scan
//! reads the status at that moment.

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use datafusion::arrow::array::{ArrayRef, StringArray, TimestampMillisecondArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::memory::MemorySchemaProvider;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use futures::future::BoxFuture;

use super::Datasets;
use crate::Host;

/// The schema holding the system tables.
pub const SYSTEM_SCHEMA: &str = "accel";

/// Registers `accel.datasets` and `accel.engines` in `context`.
pub fn register(
    context: &SessionContext,
    datasets: &Arc<Datasets>,
    host: &Arc<Host>,
) -> Result<()> {
    let catalog = context
        .catalog(&context.state().config().options().catalog.default_catalog)
        .ok_or_else(|| DataFusionError::Internal("the session has no default catalog".into()))?;
    if catalog.schema(SYSTEM_SCHEMA).is_none() {
        catalog.register_schema(SYSTEM_SCHEMA, Arc::new(MemorySchemaProvider::new()))?;
    }
    let weak = Arc::downgrade(datasets);
    context.register_table(
        format!("{SYSTEM_SCHEMA}.datasets").as_str(),
        Arc::new(SystemTable {
            schema: datasets_schema(),
            fill: Box::new(move || {
                let weak: Weak<Datasets> = weak.clone();
                Box::pin(async move {
                    match weak.upgrade() {
                        Some(datasets) => datasets_batch(&datasets).await,
                        None => Ok(RecordBatch::new_empty(datasets_schema())),
                    }
                })
            }),
        }),
    )?;
    let weak = Arc::downgrade(host);
    context.register_table(
        format!("{SYSTEM_SCHEMA}.engines").as_str(),
        Arc::new(SystemTable {
            schema: engines_schema(),
            fill: Box::new(move || {
                let weak: Weak<Host> = weak.clone();
                Box::pin(async move {
                    match weak.upgrade() {
                        Some(host) => engines_batch(&host).await,
                        None => Ok(RecordBatch::new_empty(engines_schema())),
                    }
                })
            }),
        }),
    )?;
    Ok(())
}

/// A generation and the tables it serves.
type Generation = (Arc<crate::engine::registry::RegisteredEngine>, Vec<String>);

type Fill = Box<dyn Fn() -> BoxFuture<'static, Result<RecordBatch>> + Send + Sync>;

/// A table whose rows are computed at each scan.
struct SystemTable {
    schema: SchemaRef,
    fill: Fill,
}

impl fmt::Debug for SystemTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SystemTable")
            .field("schema", &self.schema)
            .finish()
    }
}

#[async_trait::async_trait]
impl TableProvider for SystemTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batch = (self.fill)().await?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema(),
            projection.cloned(),
        )?)
    }
}

fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn datasets_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("engine", DataType::Utf8, true),
        Field::new("engine_version", DataType::Utf8, true),
        Field::new("mode", DataType::Utf8, true),
        Field::new("refresh_mode", DataType::Utf8, true),
        Field::new("status", DataType::Utf8, false),
        Field::new("rows", DataType::UInt64, true),
        Field::new("last_refresh_start", timestamp(), true),
        Field::new("last_refresh_end", timestamp(), true),
        Field::new("last_refresh_duration_ms", DataType::UInt64, true),
        Field::new("last_error", DataType::Utf8, true),
        Field::new("next_refresh", timestamp(), true),
        Field::new("refreshes", DataType::UInt64, false),
        Field::new("failures", DataType::UInt64, false),
        Field::new("progress_rows", DataType::UInt64, true),
        Field::new("progress_bytes", DataType::UInt64, true),
        Field::new("progress_expected_rows", DataType::UInt64, true),
    ]))
}

fn millis(time: Option<SystemTime>) -> Option<i64> {
    time.map(|t| t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as i64)
}

async fn datasets_batch(datasets: &Datasets) -> Result<RecordBatch> {
    let rows = datasets.rows().await;
    let text = |f: &dyn Fn(&super::DatasetRow) -> Option<String>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<StringArray>())
    };
    let number = |f: &dyn Fn(&super::DatasetRow) -> Option<u64>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<UInt64Array>())
    };
    let time = |f: &dyn Fn(&super::DatasetRow) -> Option<SystemTime>| -> ArrayRef {
        Arc::new(
            rows.iter()
                .map(|r| millis(f(r)))
                .collect::<TimestampMillisecondArray>()
                .with_timezone("UTC"),
        )
    };
    let columns = vec![
        text(&|r| Some(r.name.clone())),
        text(&|r| Some(r.source.clone())),
        text(&|r| r.engine.clone()),
        text(&|r| r.engine_version.clone()),
        text(&|r| r.mode.clone()),
        text(&|r| r.refresh_mode.clone()),
        text(&|r| Some(r.status.state.to_string())),
        number(&|r| r.status.rows),
        time(&|r| r.status.last_refresh_start),
        time(&|r| r.status.last_refresh_end),
        number(&|r| r.status.last_refresh_duration.map(|d| d.as_millis() as u64)),
        text(&|r| r.status.last_error.clone()),
        time(&|r| r.status.next_refresh),
        number(&|r| Some(r.status.refreshes)),
        number(&|r| Some(r.status.failures)),
        number(&|r| r.status.progress.as_ref().map(|p| p.read().rows)),
        number(&|r| r.status.progress.as_ref().map(|p| p.read().bytes)),
        number(&|r| {
            r.status
                .progress
                .as_ref()
                .and_then(|p| p.read().expected_rows)
        }),
    ];
    Ok(RecordBatch::try_new(datasets_schema(), columns)?)
}

fn engines_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("engine", DataType::Utf8, false),
        Field::new("version", DataType::Utf8, false),
        Field::new("plugin_api", DataType::Utf8, false),
        Field::new("state", DataType::Utf8, false),
        Field::new("origin", DataType::Utf8, false),
        Field::new("tables", DataType::Utf8, false),
    ]))
}

async fn engines_batch(host: &Host) -> Result<RecordBatch> {
    let generations = host.generations().await;
    let column = |f: &dyn Fn(&Generation) -> String| -> ArrayRef {
        Arc::new(
            generations
                .iter()
                .map(|g| Some(f(g)))
                .collect::<StringArray>(),
        )
    };
    let columns = vec![
        column(&|(g, _)| g.name().to_owned()),
        column(&|(g, _)| g.version.to_string()),
        column(&|(g, _)| g.api_version.clone()),
        column(&|(g, _)| g.state().to_string()),
        column(&|(g, _)| g.origin.to_string()),
        column(&|(_, tables)| tables.join(", ")),
    ];
    Ok(RecordBatch::try_new(engines_schema(), columns)?)
}
