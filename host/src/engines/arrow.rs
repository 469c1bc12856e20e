//! The built-in `arrow` engine: tables held as Arrow record batches in memory.
//!
//! Inserts are all-or-nothing: the input is read completely before the table changes, and the
//! swap (append or overwrite) happens under one write lock, so a reader sees the rows before
//! or after an insert, never part of one.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, RwLock};

use accel_plugin_api::{
    AccelerationSource, DataAccelerator, Mode, ParameterSpec, PartitionedBy, async_trait,
    register_builtin,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{Constraints, plan_err};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::sink::{DataSink, DataSinkExec};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{CreateExternalTable, Expr};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan};
use futures::TryStreamExt;

/// Name of the engine, as written after `STORED AS`.
pub const ENGINE_NAME: &str = "arrow";

#[derive(Debug, Default)]
pub struct ArrowAccelerator;

register_builtin!(ARROW_ENGINE, ArrowAccelerator);

#[async_trait]
impl DataAccelerator for ArrowAccelerator {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn name(&self) -> &str {
        ENGINE_NAME
    }

    fn prefix(&self) -> &str {
        ENGINE_NAME
    }

    fn parameters(&self) -> &[ParameterSpec] {
        &[]
    }

    async fn create_external_table(
        &self,
        cmd: CreateExternalTable,
        source: Option<&dyn AccelerationSource>,
        _partition_by: Vec<PartitionedBy>,
        _runtime_env: Arc<RuntimeEnv>,
    ) -> Result<Arc<dyn TableProvider>> {
        if source.is_some_and(|s| s.mode() == Mode::File) {
            return plan_err!(
                "the arrow engine keeps tables in memory only: table `{}` has LOCATION {:?}; \
                 use LOCATION ':memory:'",
                cmd.name,
                cmd.locations
            );
        }
        let schema: SchemaRef = Arc::new(cmd.schema.as_arrow().clone());
        Ok(Arc::new(ArrowTable::new(schema, cmd.constraints)))
    }
}

/// A table of record batches.
pub struct ArrowTable {
    schema: SchemaRef,
    constraints: Constraints,
    batches: Arc<RwLock<Arc<Vec<RecordBatch>>>>,
}

impl fmt::Debug for ArrowTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArrowTable")
            .field("schema", &self.schema)
            .finish()
    }
}

impl ArrowTable {
    pub fn new(schema: SchemaRef, constraints: Constraints) -> Self {
        Self {
            schema,
            constraints,
            batches: Arc::new(RwLock::new(Arc::new(Vec::new()))),
        }
    }

    fn snapshot(&self) -> Arc<Vec<RecordBatch>> {
        Arc::clone(&self.batches.read().unwrap_or_else(|e| e.into_inner()))
    }
}

#[async_trait]
impl TableProvider for ArrowTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn constraints(&self) -> Option<&Constraints> {
        Some(&self.constraints)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batches = self.snapshot();
        let target = state.config().target_partitions().max(1);
        let per_partition = batches.len().div_ceil(target).max(1);
        let partitions: Vec<Vec<RecordBatch>> = batches
            .chunks(per_partition)
            .map(<[RecordBatch]>::to_vec)
            .collect();
        let partitions = if partitions.is_empty() {
            vec![vec![]]
        } else {
            partitions
        };
        let source = MemorySourceConfig::try_new(&partitions, self.schema(), projection.cloned())?
            .with_limit(limit);
        Ok(DataSourceExec::from_data_source(source))
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
                    "the arrow engine has no keys: INSERT OR REPLACE is not supported"
                );
            }
        };
        let sink = ArrowSink {
            schema: self.schema(),
            batches: Arc::clone(&self.batches),
            overwrite,
        };
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }
}

/// Writes one insert into an [`ArrowTable`].
struct ArrowSink {
    schema: SchemaRef,
    batches: Arc<RwLock<Arc<Vec<RecordBatch>>>>,
    overwrite: bool,
}

impl fmt::Debug for ArrowSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArrowSink")
            .field("overwrite", &self.overwrite)
            .finish()
    }
}

impl DisplayAs for ArrowSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "ArrowSink: {}",
            if self.overwrite {
                "overwrite"
            } else {
                "append"
            }
        )
    }
}

#[async_trait]
impl DataSink for ArrowSink {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(
        &self,
        data: SendableRecordBatchStream,
        _context: &Arc<TaskContext>,
    ) -> Result<u64> {
        let incoming: Vec<RecordBatch> = data
            .map_ok(|batch| {
                RecordBatch::try_new(Arc::clone(&self.schema), batch.columns().to_vec())
            })
            .try_collect::<Vec<_>>()
            .await?
            .into_iter()
            .collect::<Result<_, _>>()
            .map_err(|e| DataFusionError::ArrowError(Box::new(e), None))?;
        let rows: usize = incoming.iter().map(RecordBatch::num_rows).sum();
        let incoming: Vec<RecordBatch> =
            incoming.into_iter().filter(|b| b.num_rows() > 0).collect();
        let mut guard = self.batches.write().unwrap_or_else(|e| e.into_inner());
        let next = if self.overwrite {
            incoming
        } else {
            let mut all = Vec::with_capacity(guard.len() + incoming.len());
            all.extend(guard.iter().cloned());
            all.extend(incoming);
            all
        };
        *guard = Arc::new(next);
        Ok(rows as u64)
    }
}
