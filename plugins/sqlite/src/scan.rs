//! Scanning a SQLite table: one query (projection, filters and limit pushed into it) whose rows
//! are collected into Arrow batches on a blocking thread and streamed out as each fills.

use std::sync::Arc;

use accel_plugin_api::embedded::{BatchSender, BlockingScanExec};
use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result};

use crate::database::{Database, sqlite_error};
use crate::storage::ColumnBuilder;

/// What a scan returns.
#[derive(Debug, Clone)]
pub enum ScanOutput {
    /// Rows of the projected columns.
    Columns,
    /// Only a row count (empty projection, e.g. `count(*)`): the query returns one integer.
    RowCount,
}

/// The plan scanning one SQLite query; EXPLAIN shows `SqliteScanExec: <sql>`.
pub fn scan_exec(
    database: Arc<Database>,
    table: String,
    sql: String,
    output: ScanOutput,
    schema: SchemaRef,
) -> BlockingScanExec {
    let name = format!("SqliteScanExec: {sql}");
    let columns = Arc::clone(&schema);
    BlockingScanExec::new(name, schema, move |tx, batch_size| {
        run_query(&database, &table, &sql, &output, &columns, batch_size, tx)
    })
}

fn run_query(
    database: &Database,
    table: &str,
    sql: &str,
    output: &ScanOutput,
    schema: &SchemaRef,
    batch_size: usize,
    tx: &BatchSender,
) -> Result<()> {
    let conn = database.connect()?;
    let mut statement = conn
        .prepare(sql)
        .map_err(|e| sqlite_error("preparing a scan", e))?;
    if let ScanOutput::RowCount = output {
        let rows: i64 = statement
            .query_row([], |row| row.get(0))
            .map_err(|e| sqlite_error("counting rows", e))?;
        let options = RecordBatchOptions::new().with_row_count(Some(rows as usize));
        tx.send(RecordBatch::try_new_with_options(
            Arc::clone(schema),
            vec![],
            &options,
        )?);
        return Ok(());
    }
    let mut builders = schema
        .fields()
        .iter()
        .map(|f| ColumnBuilder::for_type(f.data_type()))
        .collect::<Result<Vec<_>>>()?;
    let mut rows = statement
        .query([])
        .map_err(|e| sqlite_error("scanning", e))?;
    let mut buffered = 0;
    let mut row_number = 0u64;
    while let Some(row) = rows.next().map_err(|e| sqlite_error("scanning", e))? {
        for (i, builder) in builders.iter_mut().enumerate() {
            let value = row.get_ref(i).map_err(|e| sqlite_error("scanning", e))?;
            builder.append(value).map_err(|e| {
                DataFusionError::Execution(format!(
                    "sqlite table `{table}`, column `{}`, row {row_number}: {e}",
                    schema.field(i).name()
                ))
            })?;
        }
        buffered += 1;
        row_number += 1;
        if buffered == batch_size {
            if !tx.send(finish(&mut builders, schema)?) {
                return Ok(());
            }
            buffered = 0;
        }
    }
    if buffered > 0 {
        tx.send(finish(&mut builders, schema)?);
    }
    Ok(())
}

fn finish(builders: &mut [ColumnBuilder], schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = builders
        .iter_mut()
        .zip(schema.fields())
        .map(|(builder, field)| builder.finish(field))
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}
