//! Writing into a DuckDB table: the input streams as Arrow batches into DuckDB's appender,
//! inside one transaction (with the old rows deleted first for an overwrite), so an insert is
//! all or nothing and readers see the table before or after it.

use std::fmt;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::datasource::sink::DataSink;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};
use futures::StreamExt;

use crate::arrow_bridge::to_duckdb;
use crate::database::{Database, duck_error};
use crate::types::quote_ident;

/// Messages to the writing thread. The transaction commits only on `Commit`: if the input
/// fails, or the query is cancelled and the sender dropped, it rolls back.
enum Write {
    Batch(RecordBatch),
    Commit,
}

pub struct DuckDbSink {
    pub database: Arc<Database>,
    pub table: String,
    pub schema: SchemaRef,
    pub overwrite: bool,
}

impl fmt::Debug for DuckDbSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DuckDbSink")
            .field("table", &self.table)
            .finish()
    }
}

impl DisplayAs for DuckDbSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let mode = if self.overwrite {
            "overwrite"
        } else {
            "append"
        };
        write!(f, "DuckDbSink: table={} mode={mode}", self.table)
    }
}

#[async_trait::async_trait]
impl DataSink for DuckDbSink {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(
        &self,
        mut data: SendableRecordBatchStream,
        _context: &Arc<TaskContext>,
    ) -> Result<u64> {
        let (tx, rx) = sync_channel::<Write>(2);
        let database = Arc::clone(&self.database);
        let table = self.table.clone();
        let overwrite = self.overwrite;
        let writer = tokio::task::spawn_blocking(move || write(&database, &table, overwrite, rx));
        let mut input_error = None;
        while let Some(batch) = data.next().await {
            match batch {
                Ok(batch) => {
                    if tx.send(Write::Batch(batch)).is_err() {
                        break; // the writer failed; its error is reported below
                    }
                }
                Err(e) => {
                    input_error = Some(e);
                    break;
                }
            }
        }
        if input_error.is_none() {
            let _ = tx.send(Write::Commit);
        }
        drop(tx);
        let written = writer
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        match input_error {
            Some(e) => Err(e),
            None => written,
        }
    }
}

fn write(
    database: &Arc<Database>,
    table: &str,
    overwrite: bool,
    rx: Receiver<Write>,
) -> Result<u64> {
    let conn = database.connect()?;
    conn.execute_batch("BEGIN TRANSACTION")
        .map_err(|e| duck_error("starting an insert", e))?;
    let appended = (|| -> Result<Option<u64>> {
        if overwrite {
            conn.execute_batch(&format!("DELETE FROM {}", quote_ident(table)))
                .map_err(|e| duck_error("overwriting", e))?;
        }
        let mut appender = conn
            .appender(table)
            .map_err(|e| duck_error("opening the appender", e))?;
        let mut rows = 0u64;
        for message in rx {
            match message {
                Write::Batch(batch) => {
                    rows += batch.num_rows() as u64;
                    appender
                        .append_record_batch(to_duckdb(batch)?)
                        .map_err(|e| duck_error("appending", e))?;
                }
                Write::Commit => {
                    appender.flush().map_err(|e| duck_error("appending", e))?;
                    return Ok(Some(rows));
                }
            }
        }
        Ok(None)
    })();
    match appended {
        Ok(Some(rows)) => {
            conn.execute_batch("COMMIT")
                .map_err(|e| duck_error("committing an insert", e))?;
            Ok(rows)
        }
        Ok(None) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(DataFusionError::Execution(
                "insert cancelled; nothing was written".to_owned(),
            ))
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}
