//! Whole statements the host pushes down ([`SqlEngine`]): a table's compute context is its
//! database (one file, or one in-memory database per table), and a statement runs like a scan,
//! its columns converted to the types the host expects.

use std::sync::Arc;

use accel_plugin_api::{SqlEngine, SqlTable, async_trait};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::ExecutionPlan;

use crate::scan::{ScanOutput, scan_exec};
use crate::table::DuckDbTable;
use crate::{DuckDbAccelerator, ENGINE_NAME};

#[async_trait]
impl SqlEngine for DuckDbAccelerator {
    fn dialect(&self) -> &str {
        ENGINE_NAME
    }

    fn sql_table(&self, table: &dyn TableProvider) -> Option<SqlTable> {
        let table = table.downcast_ref::<DuckDbTable>()?;
        let context = table.database().context();
        self.contexts.remember(context, table.database());
        Some(SqlTable {
            context: context.to_owned(),
            table: table.name().to_owned(),
        })
    }

    async fn execute_sql(
        &self,
        context: &str,
        sql: &str,
        schema: SchemaRef,
    ) -> Result<SendableRecordBatchStream> {
        let database = self.contexts.find(context, ENGINE_NAME)?;
        scan_exec(database, sql.to_owned(), ScanOutput::Columns, schema)
            .execute(0, Arc::new(TaskContext::default()))
    }
}
