//! A SQLite table as a DataFusion `TableProvider`: created from the declared schema (or checked
//! against it when it exists), with its primary key and indexes; scanned with projection,
//! filters and limit pushed into SQLite; written through [`SqliteSink`].

use std::fmt;
use std::sync::Arc;

use accel_plugin_api::embedded::keys::TableKeys;
use accel_plugin_api::embedded::pushdown::{quote_ident, scan_sql};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{Constraints, plan_err};
use datafusion::datasource::TableType;
use datafusion::datasource::sink::DataSinkExec;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

use crate::database::{Database, sqlite_error};
use crate::scan::{ScanOutput, scan_exec};
use crate::sink::SqliteSink;
use crate::storage::{column_definition, declared_type};
use accel_plugin_api::embedded::dialects::SqliteDialect;
use accel_plugin_api::embedded::pushdown::to_sql;

pub struct SqliteTable {
    database: Arc<Database>,
    name: String,
    schema: SchemaRef,
    constraints: Constraints,
    keys: TableKeys,
}

impl fmt::Debug for SqliteTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteTable")
            .field("name", &self.name)
            .field("db", &self.database)
            .finish()
    }
}

impl SqliteTable {
    /// The database the table is stored in.
    pub fn database(&self) -> &Arc<Database> {
        &self.database
    }

    /// The table's name in its database.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Creates table `name` with `schema` in `database`, or opens it when it exists with the
    /// same columns; creates the indexes the options ask for.
    pub fn create_or_open(
        database: Arc<Database>,
        name: &str,
        schema: SchemaRef,
        constraints: Constraints,
        keys: TableKeys,
    ) -> Result<Self> {
        let in_table = |e: String| DataFusionError::Plan(format!("table `{name}`: {e}"));
        let mut columns = schema
            .fields()
            .iter()
            .map(|f| column_definition(f))
            .collect::<Result<Vec<_>, _>>()
            .map_err(in_table)?;
        let declared = schema
            .fields()
            .iter()
            .map(|f| Ok((f.name().clone(), declared_type(f.data_type())?)))
            .collect::<Result<Vec<_>, String>>()
            .map_err(in_table)?;
        if !keys.primary_key.is_empty() {
            let key: Vec<String> = keys.primary_key.iter().map(|c| quote_ident(c)).collect();
            columns.push(format!("PRIMARY KEY ({})", key.join(", ")));
        }
        let _writer = database.write_lock();
        let conn = database.connect()?;
        let mut existing = table_columns(&conn, name)?;
        if existing.is_empty() {
            // IF NOT EXISTS: another process may create it between the look and the create;
            // then its table is the one to compare with.
            let ddl = format!(
                "CREATE TABLE IF NOT EXISTS {} ({})",
                quote_ident(name),
                columns.join(", ")
            );
            conn.execute_batch(&ddl)
                .map_err(|e| sqlite_error(&format!("creating table `{name}`"), e))?;
            existing = table_columns(&conn, name)?;
        }
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
        for index in &keys.indexes {
            conn.execute_batch(&index.create_sql(name))
                .map_err(|e| sqlite_error(&format!("creating index {}", index.name(name)), e))?;
        }
        Ok(Self {
            database: Arc::clone(&database),
            name: name.to_owned(),
            schema,
            constraints,
            keys,
        })
    }
}

/// `(name, declared type)` of each column of `table`, empty when it does not exist.
fn table_columns(conn: &rusqlite::Connection, table: &str) -> Result<Vec<(String, String)>> {
    let mut statement = conn
        .prepare("SELECT name, type FROM pragma_table_info(?) ORDER BY cid")
        .map_err(|e| sqlite_error("reading the catalog", e))?;
    let rows = statement
        .query_map([table], |row| Ok((row.get(0)?, row.get(1)?)))
        .map_err(|e| sqlite_error("reading the catalog", e))?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(|e| sqlite_error("reading the catalog", e))
}

fn show(columns: &[(String, String)]) -> String {
    let list: Vec<String> = columns.iter().map(|(n, t)| format!("{n} {t}")).collect();
    format!("({})", list.join(", "))
}

#[async_trait::async_trait]
impl TableProvider for SqliteTable {
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
            .map(|f| match to_sql(f, &self.schema, &SqliteDialect) {
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
        // Only filters reported Exact arrive translatable; DataFusion applies the others above
        // the scan (and then passes no limit).
        let conditions: Vec<String> = filters
            .iter()
            .filter_map(|f| to_sql(f, &self.schema, &SqliteDialect))
            .collect();
        let sql = scan_sql(&self.name, &schema, &conditions, limit);
        let (output, schema) = if schema.fields().is_empty() {
            (ScanOutput::RowCount, Arc::new(Schema::empty()))
        } else {
            (ScanOutput::Columns, schema)
        };
        Ok(Arc::new(scan_exec(
            Arc::clone(&self.database),
            self.name.clone(),
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
                    "INSERT OR REPLACE is not supported; create the table with \
                     OPTIONS ('on_conflict' '<key>:upsert') to replace rows by key"
                );
            }
        };
        let sink = SqliteSink {
            database: Arc::clone(&self.database),
            table: self.name.clone(),
            schema: self.schema(),
            overwrite,
            keys: self.keys.clone(),
        };
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }
}
