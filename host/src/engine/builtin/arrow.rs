//! The built-in `arrow` engine: tables held as Arrow record batches in memory, optionally
//! partitioned by one column (`PARTITIONED BY (col)`, see [`super::partitions`]).
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
use datafusion::common::{Constraints, ScalarValue, plan_err};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::sink::{DataSink, DataSinkExec};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{CreateExternalTable, Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan};
use futures::TryStreamExt;

use super::partitions::{allowed_keys, may_match, split_by_key};

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
        partition_by: Vec<PartitionedBy>,
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
        if let Some(option) = source.and_then(|s| {
            ["primary_key", "on_conflict", "indexes", "snapshot"]
                .into_iter()
                .find(|o| s.params().contains_key(*o))
        }) {
            return plan_err!(
                "the arrow engine has no keys, indexes or snapshots: remove option `{option}` \
                 from table `{}`, or store it with an engine that has them (duckdb)",
                cmd.name
            );
        }
        let schema: SchemaRef = Arc::new(cmd.schema.as_arrow().clone());
        let partition_column = match partition_by.as_slice() {
            [] => None,
            [one] => {
                let Expr::Column(column) = &one.expression else {
                    return plan_err!(
                        "the arrow engine partitions by a column, not by `{}`",
                        one.expression
                    );
                };
                let index = schema.index_of(&column.name).map_err(|_| {
                    DataFusionError::Plan(format!(
                        "PARTITIONED BY ({}): table `{}` has no such column",
                        column.name, cmd.name
                    ))
                })?;
                Some((index, column.name.clone()))
            }
            _ => return plan_err!("the arrow engine partitions by one column"),
        };
        Ok(Arc::new(ArrowTable::new(
            schema,
            cmd.constraints,
            partition_column,
        )))
    }
}

/// A table of record batches, in one partition or one per value of its partition column.
pub struct ArrowTable {
    schema: SchemaRef,
    constraints: Constraints,
    /// `(index, name)` of the `PARTITIONED BY` column.
    partition_column: Option<(usize, String)>,
    parts: Arc<RwLock<Arc<Vec<Part>>>>,
}

/// The rows of one partition key (`None` when the table is not partitioned).
#[derive(Clone)]
struct Part {
    key: Option<ScalarValue>,
    batches: Vec<RecordBatch>,
}

impl fmt::Debug for ArrowTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArrowTable")
            .field("schema", &self.schema)
            .finish()
    }
}

impl ArrowTable {
    pub fn new(
        schema: SchemaRef,
        constraints: Constraints,
        partition_column: Option<(usize, String)>,
    ) -> Self {
        Self {
            schema,
            constraints,
            partition_column,
            parts: Arc::new(RwLock::new(Arc::new(Vec::new()))),
        }
    }

    fn snapshot(&self) -> Arc<Vec<Part>> {
        Arc::clone(&self.parts.read().unwrap_or_else(|e| e.into_inner()))
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

    /// Equality filters on the partition column prune partitions; DataFusion still applies
    /// them (Inexact), so any other rows are filtered as usual.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| match &self.partition_column {
                Some((_, column)) if allowed_keys(f, column).is_some() => {
                    TableProviderFilterPushDown::Inexact
                }
                _ => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let parts = self.snapshot();
        let partitions: Vec<Vec<RecordBatch>> = match &self.partition_column {
            Some((_, column)) => {
                let allowed: Vec<Vec<ScalarValue>> = filters
                    .iter()
                    .filter_map(|f| allowed_keys(f, column))
                    .collect();
                parts
                    .iter()
                    .filter(|p| p.key.as_ref().is_none_or(|k| may_match(k, &allowed)))
                    .map(|p| p.batches.clone())
                    .collect()
            }
            None => {
                let batches: Vec<RecordBatch> = parts
                    .iter()
                    .flat_map(|p| p.batches.iter().cloned())
                    .collect();
                let target = state.config().target_partitions().max(1);
                let per_partition = batches.len().div_ceil(target).max(1);
                batches
                    .chunks(per_partition)
                    .map(<[RecordBatch]>::to_vec)
                    .collect()
            }
        };
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
            partition_key: self.partition_column.as_ref().map(|(index, _)| *index),
            parts: Arc::clone(&self.parts),
            overwrite,
        };
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }
}

/// Writes one insert into an [`ArrowTable`].
struct ArrowSink {
    schema: SchemaRef,
    partition_key: Option<usize>,
    parts: Arc<RwLock<Arc<Vec<Part>>>>,
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
        // Split before taking the lock: readers are blocked only for the swap.
        let mut pieces: Vec<(Option<ScalarValue>, RecordBatch)> = Vec::new();
        for batch in incoming {
            match self.partition_key {
                Some(index) => pieces.extend(
                    split_by_key(&batch, index)?
                        .into_iter()
                        .map(|(key, part)| (Some(key), part)),
                ),
                None => pieces.push((None, batch)),
            }
        }
        let mut guard = self.parts.write().unwrap_or_else(|e| e.into_inner());
        let mut next: Vec<Part> = if self.overwrite {
            Vec::new()
        } else {
            guard.as_ref().clone()
        };
        for (key, batch) in pieces {
            match next.iter_mut().find(|p| p.key == key) {
                Some(part) => part.batches.push(batch),
                None => next.push(Part {
                    key,
                    batches: vec![batch],
                }),
            }
        }
        *guard = Arc::new(next);
        Ok(rows as u64)
    }
}
