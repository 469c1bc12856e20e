//! A DuckDB table as a DataFusion `TableProvider`: created from the declared schema (or checked
//! against it when it exists), scanned with projection and limit pushed into DuckDB, written
//! through the appender.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{Constraints, plan_err};
use datafusion::datasource::TableType;
use datafusion::datasource::sink::DataSinkExec;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

use crate::database::{Database, duck_error};
use crate::scan::{ScanOutput, scan_exec};
use crate::sink::DuckDbSink;
use accel_plugin_api::embedded::dialects::DuckDbDialect;
use accel_plugin_api::embedded::pushdown::scan_sql;
use accel_plugin_api::embedded::pushdown::to_sql;

use crate::types::{column_definition, quote_ident};
use accel_plugin_api::embedded::keys::TableKeys;

pub struct DuckDbTable {
    database: Arc<Database>,
    name: String,
    schema: SchemaRef,
    constraints: Constraints,
    keys: TableKeys,
}

impl fmt::Debug for DuckDbTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DuckDbTable")
            .field("name", &self.name)
            .field("db", &self.database)
            .finish()
    }
}

impl DuckDbTable {
    /// The database the table is stored in.
    pub fn database(&self) -> &Arc<Database> {
        &self.database
    }

    /// The table's name in its database.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Creates table `name` with `schema` in `database`, or opens it when it exists with the
    /// same columns.
    pub fn create_or_open(
        database: Arc<Database>,
        name: &str,
        schema: SchemaRef,
        constraints: Constraints,
        keys: TableKeys,
    ) -> Result<Self> {
        let ddl = table_ddl(name, &schema, &keys)?;
        let conn = database.connect()?;
        let existing = table_columns(&conn, name)?;
        if existing.is_empty() {
            // IF NOT EXISTS: another connection may have created it since the look.
            let create = ddl.replacen("CREATE TABLE ", "CREATE TABLE IF NOT EXISTS ", 1);
            conn.execute_batch(&create)
                .map_err(|e| duck_error(&format!("creating table `{name}`"), e))?;
        } else {
            let declared = declared_columns(&ddl, name)?;
            if existing != declared {
                let location = database
                    .path()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| ":memory:".to_owned());
                return plan_err!(
                    "table `{name}` in {location} has columns {} but the statement declares {}; \
                     declare the stored columns or use another file",
                    show(&existing),
                    show(&declared)
                );
            }
        }
        for index in &keys.indexes {
            conn.execute_batch(&index.create_sql(name))
                .map_err(|e| duck_error(&format!("creating index {}", index.name(name)), e))?;
        }
        drop(conn);
        Ok(Self {
            database,
            name: name.to_owned(),
            schema,
            constraints,
            keys,
        })
    }
}

/// `CREATE TABLE name (…)` with `schema`'s columns and the primary key of `keys`.
pub fn table_ddl(name: &str, schema: &Schema, keys: &TableKeys) -> Result<String> {
    let mut columns = schema
        .fields()
        .iter()
        .map(|f| column_definition(f))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| DataFusionError::Plan(format!("table `{name}`: {e}")))?;
    if !keys.primary_key.is_empty() {
        let key: Vec<String> = keys.primary_key.iter().map(|c| quote_ident(c)).collect();
        columns.push(format!("PRIMARY KEY ({})", key.join(", ")));
    }
    Ok(format!(
        "CREATE TABLE {} ({})",
        quote_ident(name),
        columns.join(", ")
    ))
}

/// `(name, DuckDB type)` of each column of `table`, empty when it does not exist.
fn table_columns(conn: &duckdb::Connection, table: &str) -> Result<Vec<(String, String)>> {
    let mut statement = conn
        .prepare(
            "SELECT column_name, data_type FROM information_schema.columns \
             WHERE table_name = ? AND table_schema = current_schema() ORDER BY ordinal_position",
        )
        .map_err(|e| duck_error("reading the catalog", e))?;
    let rows = statement
        .query_map([table], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })
        .map_err(|e| duck_error("reading the catalog", e))?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(|e| duck_error("reading the catalog", e))
}

/// The columns `ddl` would create, spelled the way DuckDB's catalog spells them.
fn declared_columns(ddl: &str, table: &str) -> Result<Vec<(String, String)>> {
    let scratch =
        duckdb::Connection::open_in_memory().map_err(|e| duck_error("scratch database", e))?;
    scratch
        .execute_batch(ddl)
        .map_err(|e| duck_error("checking the declared schema", e))?;
    table_columns(&scratch, table)
}

fn show(columns: &[(String, String)]) -> String {
    let list: Vec<String> = columns.iter().map(|(n, t)| format!("{n} {t}")).collect();
    format!("({})", list.join(", "))
}

#[async_trait::async_trait]
impl TableProvider for DuckDbTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn constraints(&self) -> Option<&Constraints> {
        Some(&self.constraints)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| match to_sql(f, &self.schema, &DuckDbDialect) {
                Some(_) => TableProviderFilterPushDown::Exact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = match projection {
            Some(indices) => Arc::new(self.schema.project(indices)?),
            None => Arc::clone(&self.schema),
        };
        // Only filters reported Exact reach here translated; DataFusion applies the others
        // above the scan (and then passes no limit).
        let conditions: Vec<String> = filters
            .iter()
            .filter_map(|f| to_sql(f, &self.schema, &DuckDbDialect))
            .collect();
        let sql = scan_sql(&self.name, &schema, &conditions, limit);
        let (output, schema) = if schema.fields().is_empty() {
            (ScanOutput::RowCount, Arc::new(Schema::empty()))
        } else {
            (ScanOutput::Columns, schema)
        };
        Ok(Arc::new(scan_exec(
            Arc::clone(&self.database),
            sql,
            output,
            schema,
        )))
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let overwrite = match insert_op {
            InsertOp::Append => false,
            InsertOp::Overwrite => true,
            InsertOp::Replace => {
                return plan_err!(
                    "INSERT OR REPLACE into a DuckDB table needs a primary key and on_conflict, not yet supported"
                );
            }
        };
        let sink = DuckDbSink {
            database: Arc::clone(&self.database),
            table: self.name.clone(),
            schema: self.schema(),
            overwrite,
            keys: self.keys.clone(),
        };
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }
}
