//! Scanning a DuckDB table: one SQL query (projection and limit pushed into it) whose Arrow
//! result streams out of a blocking task on the engine's runtime.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, UInt32Array};
use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::stream;
use tokio::sync::mpsc;

use crate::arrow_bridge::from_duckdb;
use crate::database::{Database, duck_error};

/// What a scan returns.
#[derive(Debug, Clone)]
pub enum ScanOutput {
    /// Rows of the projected columns.
    Columns,
    /// Only a row count (empty projection, e.g. `count(*)`): `sql` returns one BIGINT.
    RowCount,
}

/// A scan of one DuckDB query.
pub struct DuckDbScanExec {
    database: Arc<Database>,
    sql: String,
    /// `DuckDbScanExec: <sql>`: datafusion-ffi shows a foreign plan by its name only, so the
    /// name carries the SQL into the host's EXPLAIN.
    name: String,
    output: ScanOutput,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl fmt::Debug for DuckDbScanExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DuckDbScanExec")
            .field("sql", &self.sql)
            .finish()
    }
}

impl DuckDbScanExec {
    pub fn new(
        database: Arc<Database>,
        sql: String,
        output: ScanOutput,
        schema: SchemaRef,
    ) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        let name = format!("DuckDbScanExec: {sql}");
        Self {
            database,
            sql,
            name,
            output,
            schema,
            properties,
        }
    }
}

impl DisplayAs for DuckDbScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "DuckDbScanExec: sql={}", self.sql)
    }
}

impl ExecutionPlan for DuckDbScanExec {
    fn name(&self) -> &str {
        &self.name
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal(
                "DuckDbScanExec has no children".to_owned(),
            ))
        }
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "DuckDbScanExec has one partition, asked for {partition}"
            )));
        }
        let (tx, rx) = mpsc::channel::<Result<RecordBatch>>(2);
        let database = Arc::clone(&self.database);
        let sql = self.sql.clone();
        let output = self.output.clone();
        let schema = Arc::clone(&self.schema);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = run_query(&database, &sql, &output, &schema, &tx) {
                let _ = tx.blocking_send(Err(e));
            }
        });
        let batches = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            batches,
        )))
    }
}

/// Runs the query, sending each batch as soon as DuckDB produces it. Stops early when the
/// consumer goes away.
fn run_query(
    database: &Arc<Database>,
    sql: &str,
    output: &ScanOutput,
    schema: &SchemaRef,
    tx: &mpsc::Sender<Result<RecordBatch>>,
) -> Result<()> {
    let conn = database.connect()?;
    let mut statement = conn
        .prepare(sql)
        .map_err(|e| duck_error("preparing a scan", e))?;
    match output {
        ScanOutput::RowCount => {
            let rows: i64 = statement
                .query_row([], |row| row.get(0))
                .map_err(|e| duck_error("counting rows", e))?;
            let options = RecordBatchOptions::new().with_row_count(Some(rows as usize));
            let batch = RecordBatch::try_new_with_options(Arc::clone(schema), vec![], &options)?;
            let _ = tx.blocking_send(Ok(batch));
        }
        ScanOutput::Columns => {
            let batches = statement
                .stream_arrow([])
                .map_err(|e| duck_error("scanning", e))?;
            for batch in batches {
                let batch = batch.map_err(|e| duck_error("scanning", e))?;
                let batch = conform(from_duckdb(batch)?, schema)?;
                if tx.blocking_send(Ok(batch)).is_err() {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// The same array with default values under its nulls. DuckDB leaves arbitrary bytes under
/// nulls; a unit-changing cast (e.g. TIME in microseconds to nanoseconds) multiplies them too,
/// and can overflow.
fn zero_null_slots(column: &ArrayRef) -> Result<ArrayRef> {
    if column.null_count() == 0 {
        return Ok(Arc::clone(column));
    }
    let indices: UInt32Array = (0..column.len() as u32)
        .map(|i| column.is_valid(i as usize).then_some(i))
        .collect();
    Ok(take(column.as_ref(), &indices, None)?)
}

/// Casts DuckDB's output types (e.g. `Utf8` for VARCHAR) to the table's declared types and
/// names.
fn conform(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if batch.num_columns() != schema.fields().len() {
        return Err(DataFusionError::Internal(format!(
            "duckdb returned {} columns, expected {}",
            batch.num_columns(),
            schema.fields().len()
        )));
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| {
            if column.data_type() == field.data_type() {
                Ok(Arc::clone(column))
            } else {
                cast(&zero_null_slots(column)?, field.data_type())
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}
