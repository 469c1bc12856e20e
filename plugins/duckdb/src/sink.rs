//! Writing into a DuckDB table: the input streams as Arrow batches into DuckDB's appender,
//! inside one transaction (through a staging table merged on the primary key when the table
//! has `on_conflict`), so an insert is all or nothing and readers see the table before or
//! after it.
//!
//! An overwrite fills a new table and swaps it in (drop, rename, indexes again) in that
//! transaction. Deleting every row and appending in one transaction is not enough: DuckDB (seen
//! with 1.2.0 and 1.4.2) lets a concurrent reader see the deleted rows and the new ones at
//! once, e.g. twice the rows, until the commit.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::datasource::sink::DataSink;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};

use accel_plugin_api::embedded::{BatchReceiver, write_from_stream};

use crate::arrow_bridge::to_duckdb;
use crate::database::{Database, duck_error};
use crate::table::table_ddl;
use crate::types::quote_ident;
use accel_plugin_api::embedded::keys::{ConflictAction, TableKeys};

pub struct DuckDbSink {
    pub database: Arc<Database>,
    pub table: String,
    pub schema: SchemaRef,
    pub overwrite: bool,
    pub keys: TableKeys,
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
        data: SendableRecordBatchStream,
        _context: &Arc<TaskContext>,
    ) -> Result<u64> {
        let database = Arc::clone(&self.database);
        let table = self.table.clone();
        let overwrite = self.overwrite;
        let keys = self.keys.clone();
        // The table's columns, as declared and checked against DuckDB's catalog on open.
        let columns: Vec<String> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let schema = Arc::clone(&self.schema);
        write_from_stream(data, move |input| {
            if overwrite {
                replace(&database, &table, &schema, &columns, &keys, input)
            } else {
                write(&database, &table, &columns, &keys, input)
            }
        })
        .await
    }
}

/// One transaction: the input appended (or merged on the key), committed only if the whole
/// input arrived.
fn write(
    database: &Database,
    table: &str,
    columns: &[String],
    keys: &TableKeys,
    input: &mut BatchReceiver,
) -> Result<u64> {
    in_transaction(database, table, keys, |conn| {
        insert(conn, table, columns, keys, input)
    })
}

/// One transaction: the input written into a new table like `table`, which then replaces it.
fn replace(
    database: &Database,
    table: &str,
    schema: &SchemaRef,
    columns: &[String],
    keys: &TableKeys,
    input: &mut BatchReceiver,
) -> Result<u64> {
    static REPLACEMENTS: AtomicU64 = AtomicU64::new(0);
    let next = format!(
        "__accel_next_{}",
        REPLACEMENTS.fetch_add(1, Ordering::Relaxed)
    );
    let rows = in_transaction(database, table, keys, |conn| {
        conn.execute_batch(&table_ddl(&next, schema, keys)?)
            .map_err(|e| duck_error("creating the replacement table", e))?;
        let rows = insert(conn, &next, columns, keys, input)?;
        conn.execute_batch(&format!(
            "DROP TABLE {0}; ALTER TABLE {1} RENAME TO {0}",
            quote_ident(table),
            quote_ident(&next)
        ))
        .map_err(|e| duck_error("swapping in the new rows", e))?;
        for index in &keys.indexes {
            conn.execute_batch(&index.create_sql(table))
                .map_err(|e| duck_error(&format!("creating index {}", index.name(table)), e))?;
        }
        Ok(rows)
    })?;
    // The replaced table's blocks become reusable only at a checkpoint, while the new rows were
    // written to fresh blocks: without one, every overwrite grows the file by the table's size.
    // Best effort: DuckDB refuses while another transaction writes, and checkpoints later.
    if database.path().is_some()
        && let Ok(conn) = database.connect()
    {
        let _ = conn.execute_batch("CHECKPOINT");
    }
    Ok(rows)
}

/// The input appended to `table`, or merged on its key.
fn insert(
    conn: &duckdb::Connection,
    table: &str,
    columns: &[String],
    keys: &TableKeys,
    input: &mut BatchReceiver,
) -> Result<u64> {
    match &keys.on_conflict {
        None => append(conn, table, input)
            .map_err(|e| keys.explain_duplicate(e, table, is_key_violation)),
        Some(action) => merge(conn, table, columns, keys, action, input),
    }
}

/// Runs `work` in one transaction, committed if it succeeds and rolled back otherwise.
fn in_transaction(
    database: &Database,
    table: &str,
    keys: &TableKeys,
    work: impl FnOnce(&duckdb::Connection) -> Result<u64>,
) -> Result<u64> {
    let conn = database.connect()?;
    conn.execute_batch("BEGIN TRANSACTION")
        .map_err(|e| duck_error("starting an insert", e))?;
    let written = work(&conn);
    match written {
        Ok(rows) => match conn.execute_batch("COMMIT") {
            Ok(()) => Ok(rows),
            // Durable: reporting it as a failure would make a client write the rows twice.
            // The database is unusable until it is reopened; the next statement says so.
            Err(e) if committed_despite(&e.to_string()) => {
                eprintln!(
                    "warning: duckdb: an insert into `{table}` was committed, but DuckDB's \
                     automatic checkpoint after it failed: {e}"
                );
                Ok(rows)
            }
            Err(e) => Err(keys.explain_duplicate(
                duck_error("committing an insert", e),
                table,
                is_key_violation,
            )),
        },
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// The duckdb crate's appender writes NULL intervals and durations as zero (it drops their
/// null mask): refuse them rather than store wrong data.
fn refuse_lossy_values(batch: &RecordBatch) -> Result<()> {
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let interval = matches!(
            field.data_type(),
            DataType::Interval(_) | DataType::Duration(_)
        );
        if interval && column.null_count() > 0 {
            return Err(DataFusionError::NotImplemented(format!(
                "column `{}`: NULL {} values cannot be written to DuckDB yet (the appender would \
                 store them as zero); nothing was written",
                field.name(),
                field.data_type()
            )));
        }
    }
    Ok(())
}

/// Appends every batch of the input to `table`.
fn append(conn: &duckdb::Connection, table: &str, input: &mut BatchReceiver) -> Result<u64> {
    let mut appender = conn
        .appender(table)
        .map_err(|e| duck_error("opening the appender", e))?;
    let mut rows = 0u64;
    while let Some(batch) = input.next_batch()? {
        refuse_lossy_values(&batch)?;
        rows += batch.num_rows() as u64;
        appender
            .append_record_batch(to_duckdb(batch)?)
            .map_err(|e| duck_error("appending", e))?;
    }
    appender.flush().map_err(|e| duck_error("appending", e))?;
    Ok(rows)
}

/// Appends the input to a staging table, then merges it into `table` on the primary key: one
/// row per key (the first for `drop`, the last for `upsert`), existing rows kept (`drop`) or
/// replaced (`upsert`). Returns the rows inserted or updated.
fn merge(
    conn: &duckdb::Connection,
    table: &str,
    columns: &[String],
    keys: &TableKeys,
    action: &ConflictAction,
    input: &mut BatchReceiver,
) -> Result<u64> {
    static STAGES: AtomicU64 = AtomicU64::new(0);
    let stage = format!("__accel_stage_{}", STAGES.fetch_add(1, Ordering::Relaxed));
    let (target, staged) = (quote_ident(table), quote_ident(&stage));
    conn.execute_batch(&format!(
        "CREATE TABLE {staged} AS SELECT * FROM {target} LIMIT 0"
    ))
    .map_err(|e| duck_error("creating the staging table", e))?;
    append(conn, &stage, input)?;
    let key_list: Vec<String> = keys.primary_key.iter().map(|c| quote_ident(c)).collect();
    let key_list = key_list.join(", ");
    let (order, on_conflict) = match action {
        ConflictAction::Drop => ("ASC", "DO NOTHING".to_owned()),
        ConflictAction::Upsert => {
            let updates: Vec<String> = columns
                .iter()
                .filter(|c| !keys.primary_key.contains(c))
                .map(|c| format!("{0} = EXCLUDED.{0}", quote_ident(c)))
                .collect();
            let action = if updates.is_empty() {
                "DO NOTHING".to_owned()
            } else {
                format!("DO UPDATE SET {}", updates.join(", "))
            };
            ("DESC", action)
        }
    };
    let sql = format!(
        "INSERT INTO {target} SELECT * EXCLUDE (__accel_occurrence) FROM (\
         SELECT *, row_number() OVER (PARTITION BY {key_list} ORDER BY rowid {order}) \
         AS __accel_occurrence FROM {staged}) WHERE __accel_occurrence = 1 \
         ON CONFLICT ({key_list}) {on_conflict}"
    );
    let rows = conn
        .execute(&sql, [])
        .map_err(|e| duck_error("merging on the primary key", e))?;
    conn.execute_batch(&format!("DROP TABLE {staged}"))
        .map_err(|e| duck_error("dropping the staging table", e))?;
    Ok(rows as u64)
}

/// DuckDB's words for a key violation.
/// A COMMIT error that DuckDB raises after the transaction became durable (its WAL written):
/// the automatic checkpoint that follows failed, e.g. on a full disk.
fn committed_despite(message: &str) -> bool {
    message.contains("COMMIT succeeded and is durable")
}

fn is_key_violation(message: &str) -> bool {
    message.to_lowercase().contains("duplicate key")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The messages of DuckDB's transaction manager (bundled source,
    /// `duck_transaction_manager.cpp`): a durable commit whose checkpoint failed counts as
    /// committed; a commit that could not write its WAL does not.
    #[test]
    fn a_failed_autocheckpoint_after_a_durable_commit_is_a_commit() {
        assert!(committed_despite(
            "TransactionContext Error: Transaction COMMIT succeeded and is durable, but the \
             autocheckpoint failed. Reopen the database instance to recover. Could not write \
             file \"x.duckdb\": No space left on device"
        ));
        assert!(!committed_despite(
            "TransactionContext Error: Failed to commit: Could not write file \"x.duckdb.wal\": \
             No space left on device"
        ));
    }
}
