//! The optional capability of running whole SQL statements. An engine that has it lets the host
//! push entire subplans — filters, projections, aggregates, GROUP BY, ORDER BY + LIMIT, joins
//! between tables it can combine — into one statement the engine runs itself, instead of
//! streaming every row across the boundary for DataFusion to aggregate.
//!
//! The host writes the SQL (in the dialect the engine names, with DataFusion's meaning: see
//! [`crate::embedded::pushdown`]); the engine only says where each of its tables lives and runs what it
//! is given. Engines without it keep working with filter and projection pushdown.

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::error::Result;
use datafusion::execution::SendableRecordBatchStream;

/// Where a table lives, as one SQL statement can reach it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SqlTable {
    /// The compute context: tables with the same context can be combined in one statement
    /// (e.g. one database file). Opaque to the host; given back to
    /// [`SqlEngine::execute_sql`].
    pub context: String,
    /// The table's name inside that context, unquoted.
    pub table: String,
}

/// An engine that runs SQL statements over its own tables.
#[async_trait]
pub trait SqlEngine: Send + Sync {
    /// The dialect the engine speaks; the host knows `duckdb` and `sqlite`
    /// ([`crate::embedded::pushdown::dialect_named`]) and leaves engines of other dialects alone.
    fn dialect(&self) -> &str;

    /// Where `table` lives, for a table this engine created; `None` when it cannot be reached
    /// with SQL (the host then scans it as usual).
    fn sql_table(&self, table: &dyn TableProvider) -> Option<SqlTable>;

    /// Runs one `SELECT` statement in `context` and streams its rows as `schema`: the columns
    /// in order, each cast to the type given — a value that does not fit is an error, never
    /// a silent NULL.
    async fn execute_sql(
        &self,
        context: &str,
        sql: &str,
        schema: SchemaRef,
    ) -> Result<SendableRecordBatchStream>;
}
