//! Writing into a SQLite table: the input's rows are inserted through one prepared statement
//! inside one `BEGIN IMMEDIATE` transaction (old rows deleted first for an overwrite), with
//! `ON CONFLICT` on the primary key when the table has `on_conflict`; committed only when the
//! whole input arrived, so an insert is all or nothing.

use std::fmt;
use std::sync::Arc;

use accel_plugin_api::embedded::keys::{ConflictAction, TableKeys};
use accel_plugin_api::embedded::pushdown::quote_ident;
use accel_plugin_api::embedded::{BatchReceiver, write_from_stream};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::datasource::sink::DataSink;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};

use rusqlite::types::ToSqlOutput;

use crate::database::{Database, sqlite_error};
use crate::storage::to_cells;

pub struct SqliteSink {
    pub database: Arc<Database>,
    pub table: String,
    pub schema: SchemaRef,
    pub overwrite: bool,
    pub keys: TableKeys,
}

impl fmt::Debug for SqliteSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteSink")
            .field("table", &self.table)
            .finish()
    }
}

impl DisplayAs for SqliteSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let mode = if self.overwrite {
            "overwrite"
        } else {
            "append"
        };
        write!(f, "SqliteSink: table={} mode={mode}", self.table)
    }
}

#[async_trait::async_trait]
impl DataSink for SqliteSink {
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
        let insert = insert_statement(&self.table, &self.schema, &self.keys);
        write_from_stream(data, move |input| {
            write(&database, &table, &insert, overwrite, input)
                .map_err(|e| keys.explain_duplicate(e, &table, is_key_violation))
        })
        .await
    }
}

/// `INSERT INTO t (…) VALUES (?, …)`, with the `ON CONFLICT` clause of the table's keys.
fn insert_statement(table: &str, schema: &SchemaRef, keys: &TableKeys) -> String {
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| quote_ident(f.name()))
        .collect();
    let placeholders = vec!["?"; columns.len()].join(", ");
    let key: Vec<String> = keys.primary_key.iter().map(|c| quote_ident(c)).collect();
    let on_conflict = match &keys.on_conflict {
        None => String::new(),
        Some(ConflictAction::Drop) => format!(" ON CONFLICT ({}) DO NOTHING", key.join(", ")),
        Some(ConflictAction::Upsert) => {
            let updates: Vec<String> = columns
                .iter()
                .filter(|c| !key.contains(c))
                .map(|c| format!("{c} = excluded.{c}"))
                .collect();
            if updates.is_empty() {
                format!(" ON CONFLICT ({}) DO NOTHING", key.join(", "))
            } else {
                format!(
                    " ON CONFLICT ({}) DO UPDATE SET {}",
                    key.join(", "),
                    updates.join(", ")
                )
            }
        }
    };
    format!(
        "INSERT INTO {} ({}) VALUES ({placeholders}){on_conflict}",
        quote_ident(table),
        columns.join(", ")
    )
}

/// One transaction holding the database's write lock. Rows repeated within one insert follow
/// the same rule as rows already stored: `drop` keeps the first, `upsert` the last.
fn write(
    database: &Database,
    table: &str,
    insert: &str,
    overwrite: bool,
    input: &mut BatchReceiver,
) -> Result<u64> {
    let _writer = database.write_lock();
    let conn = database.connect()?;
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| sqlite_error("starting an insert", e))?;
    let written = (|| -> Result<u64> {
        if overwrite {
            conn.execute_batch(&format!("DELETE FROM {}", quote_ident(table)))
                .map_err(|e| sqlite_error("overwriting", e))?;
        }
        let mut statement = conn
            .prepare(insert)
            .map_err(|e| sqlite_error("preparing the insert", e))?;
        let mut rows = 0u64;
        while let Some(batch) = input.next_batch()? {
            let cells = to_cells(&batch)?;
            for row in 0..batch.num_rows() {
                for (i, column) in cells.iter().enumerate() {
                    statement
                        .raw_bind_parameter(i + 1, ToSqlOutput::Borrowed(column.value(row)))
                        .map_err(|e| sqlite_error("binding a value", e))?;
                }
                rows += statement
                    .raw_execute()
                    .map_err(|e| sqlite_error("inserting", e))? as u64;
            }
        }
        Ok(rows)
    })();
    match written {
        Ok(rows) => {
            conn.execute_batch("COMMIT")
                .map_err(|e| sqlite_error("committing an insert", e))?;
            Ok(rows)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// SQLite's words for a key violation.
fn is_key_violation(message: &str) -> bool {
    message.contains("UNIQUE constraint failed")
}
