//! Scanning a DuckDB table: one SQL query (projection, filters and limit pushed into it) whose
//! Arrow result streams out of a blocking task on the engine's runtime.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, UInt32Array};
use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::compute::{BatchCoalescer, CastOptions, cast_with_options, take};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result};

use accel_plugin_api::embedded::{BatchSender, BlockingScanExec};

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

/// The plan scanning one DuckDB query; EXPLAIN shows `DuckDbScanExec: <sql>`.
pub fn scan_exec(
    database: Arc<Database>,
    sql: String,
    output: ScanOutput,
    schema: SchemaRef,
) -> BlockingScanExec {
    let name = format!("DuckDbScanExec: {sql}");
    let columns = Arc::clone(&schema);
    BlockingScanExec::new(name, schema, move |tx, batch_size| {
        run_query(&database, &sql, &output, &columns, batch_size, tx)
    })
}

/// Runs the query, sending batches of the session's batch size as DuckDB fills them (DuckDB
/// produces 2048-row chunks; fewer, larger batches cost less across the plugin boundary and
/// downstream). Stops early when the consumer goes away.
fn run_query(
    database: &Database,
    sql: &str,
    output: &ScanOutput,
    schema: &SchemaRef,
    batch_size: usize,
    tx: &BatchSender,
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
            tx.send(RecordBatch::try_new_with_options(
                Arc::clone(schema),
                vec![],
                &options,
            )?);
        }
        ScanOutput::Columns => {
            let batches = statement
                .stream_arrow([])
                .map_err(|e| duck_error("scanning", e))?;
            let mut coalescer = BatchCoalescer::new(Arc::clone(schema), batch_size.max(1));
            for batch in batches {
                let batch = batch.map_err(|e| duck_error("scanning", e))?;
                coalescer.push_batch(conform(from_duckdb(batch)?, schema)?)?;
                while let Some(full) = coalescer.next_completed_batch() {
                    if !tx.send(full) {
                        return Ok(());
                    }
                }
            }
            coalescer.finish_buffered_batch()?;
            while let Some(rest) = coalescer.next_completed_batch() {
                if !tx.send(rest) {
                    return Ok(());
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

/// Casts that fail on a value the target type cannot hold (e.g. a HUGEINT sum beyond BIGINT)
/// instead of turning it into NULL.
const STRICT: CastOptions<'static> = CastOptions {
    safe: false,
    format_options: datafusion::arrow::util::display::FormatOptions::new(),
};

/// Casts DuckDB's output types (e.g. `Utf8` for VARCHAR, HUGEINT for a sum) to the types
/// expected and their names; a value that does not fit is an error.
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
                cast_with_options(&zero_null_slots(column)?, field.data_type(), &STRICT)
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}
