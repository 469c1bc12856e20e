//! The scan of a sharded dataset: one plan node that the coordinator plans and workers run.
//!
//! On the coordinator a [`ShardScanExec`] names the dataset, where each shard lives (worker
//! URL and table) and what the scan asks for (projection, filters, limit); it never reads
//! anything there. It runs as one task per shard ([`ShardScanExec::tasks`]): task *i* is sent
//! to the worker holding shard *i* ([`super::planning`] routes it), and on that worker the
//! node — decoded by [`ShardScanCodec`] with the worker's shards attached — scans the shard's
//! table in the worker's engine with the same projection, filters and limit.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
};
use datafusion_distributed::DistributedTaskContext;
use datafusion_proto::logical_plan::DefaultLogicalExtensionCodec;
use datafusion_proto::logical_plan::from_proto::parse_exprs;
use datafusion_proto::logical_plan::to_proto::serialize_exprs;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use datafusion_proto::protobuf;
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use url::Url;

use super::worker::WorkerShards;
use crate::table::managed::with_query_guards;

/// Where one shard lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPlacement {
    pub index: u32,
    /// The worker holding it.
    pub worker: Url,
    /// Its table on that worker.
    pub table: String,
}

/// A logical plan over one shard's table, as it crosses to the worker (datafusion-proto bytes,
/// the table encoded by [`super::partial_aggregate::ShardTableCodec`]), with its text for
/// EXPLAIN.
#[derive(Debug, Clone)]
pub struct ShardQuery {
    pub plan: Arc<[u8]>,
    pub text: String,
}

/// The scan of a sharded dataset (see the module doc).
#[derive(Debug, Clone)]
pub struct ShardScanExec {
    dataset: String,
    shards: Arc<[ShardPlacement]>,
    projection: Option<Vec<usize>>,
    filters: Vec<Expr>,
    limit: Option<usize>,
    /// Instead of the shard's rows, the rows of this plan over the shard's table (a partial
    /// aggregate, see [`super::partial_aggregate`]); `projection` then picks its columns.
    query: Option<ShardQuery>,
    /// The projected schema.
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    /// The worker's shards, once decoded on a worker.
    held: Option<Arc<WorkerShards>>,
    /// Rows out and statements run by the engine (EXPLAIN ANALYZE shows the workers').
    metrics: ExecutionPlanMetricsSet,
}

impl ShardScanExec {
    pub fn new(
        dataset: String,
        shards: Arc<[ShardPlacement]>,
        projection: Option<Vec<usize>>,
        filters: Vec<Expr>,
        limit: Option<usize>,
        schema: SchemaRef,
    ) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Self {
            dataset,
            shards,
            projection,
            filters,
            limit,
            query: None,
            schema,
            properties,
            held: None,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// Runs `query` over each shard's table instead of scanning it.
    pub fn with_query(mut self, query: ShardQuery) -> Self {
        self.query = Some(query);
        self
    }

    /// How many tasks run it: one per shard, and at least two — a stage of one task would
    /// lose its network boundary and run on the coordinator, which holds no shard (the extra
    /// task returns no rows).
    pub fn tasks(&self) -> usize {
        self.shards.len().max(2)
    }

    /// The worker each task goes to.
    pub fn task_workers(&self, task_count: usize) -> Vec<Url> {
        (0..task_count)
            .map(|task| {
                self.shards
                    .get(task)
                    .unwrap_or(&self.shards[0])
                    .worker
                    .clone()
            })
            .collect()
    }

    pub fn shards(&self) -> &[ShardPlacement] {
        &self.shards
    }
}

impl DisplayAs for ShardScanExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShardScanExec: dataset={}, shards=[", self.dataset)?;
        for (i, shard) in self.shards.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(
                f,
                "{} on {}",
                shard.index,
                shard.worker.as_str().trim_end_matches('/')
            )?;
        }
        f.write_str("]")?;
        if let Some(query) = &self.query {
            write!(f, ", in each shard's engine: {}", query.text)?;
        }
        if self.projection.is_some() {
            // The projected schema's names: the columns read.
            let names: Vec<&str> = self
                .schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect();
            write!(f, ", projection=[{}]", names.join(", "))?;
        }
        if !self.filters.is_empty() {
            let filters: Vec<String> = self.filters.iter().map(ToString::to_string).collect();
            write!(f, ", filters=[{}]", filters.join(", "))?;
        }
        if let Some(limit) = self.limit {
            write!(f, ", limit={limit}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for ShardScanExec {
    fn name(&self) -> &str {
        "ShardScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match children.is_empty() {
            true => Ok(self),
            false => Err(DataFusionError::Internal(
                "ShardScanExec has no children".into(),
            )),
        }
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "ShardScanExec has one partition, asked for {partition}"
            )));
        }
        let Some(held) = self.held.clone() else {
            return Err(DataFusionError::Internal(format!(
                "the scan of sharded dataset `{}` ran outside a worker",
                self.dataset
            )));
        };
        let task = DistributedTaskContext::from_ctx(&context).task_index;
        let schema = Arc::clone(&self.schema);
        let Some(shard) = self.shards.get(task).cloned() else {
            // The task beyond the last shard: no rows.
            return Ok(Box::pin(RecordBatchStreamAdapter::new(
                schema,
                futures::stream::empty(),
            )));
        };
        let (dataset, projection, filters, limit, query) = (
            self.dataset.clone(),
            self.projection.clone(),
            self.filters.clone(),
            self.limit,
            self.query.clone(),
        );
        let expected = Arc::clone(&schema);
        let statements = MetricBuilder::new(&self.metrics).global_counter("engine_statements");
        let output_rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let rows = futures::stream::once(async move {
            let table = held.table(&dataset, &shard).await?;
            let session = held.session();
            let plan = match query {
                None => {
                    table
                        .scan(&session, projection.as_ref(), &filters, limit)
                        .await?
                }
                Some(query) => {
                    let codec = super::partial_aggregate::ShardTableCodec::decoding(table);
                    let logical =
                        datafusion_proto::bytes::logical_plan_from_bytes_with_extension_codec(
                            &query.plan,
                            session.task_ctx().as_ref(),
                            &codec,
                        )?;
                    let plan = with_query_guards(session.create_physical_plan(&logical)).await?;
                    match &projection {
                        Some(columns) => project(plan, columns)?,
                        None => plan,
                    }
                }
            };
            let found = plan.schema();
            let same = found.fields().len() == expected.fields().len()
                && found
                    .fields()
                    .iter()
                    .zip(expected.fields())
                    .all(|(f, e)| f.data_type() == e.data_type());
            if !same {
                return Err(DataFusionError::Execution(format!(
                    "shard {} of dataset `{dataset}` on {} has the columns {found} but the \
                     coordinator expects {expected}; run the same accel release and engines on \
                     every machine",
                    shard.index, shard.worker
                )));
            }
            plan.apply(|node| {
                if node.name() == "EngineQueryExec" {
                    statements.add(1);
                }
                Ok(TreeNodeRecursion::Continue)
            })?;
            let plan: Arc<dyn ExecutionPlan> = match plan.output_partitioning().partition_count() {
                1 => plan,
                _ => Arc::new(CoalescePartitionsExec::new(plan)),
            };
            plan.execute(0, session.task_ctx())
        })
        .try_flatten()
        .map(move |batch| {
            // The coordinator's field names (the engine may spell them otherwise).
            batch.and_then(|b| {
                output_rows.add(b.num_rows());
                let rows = RecordBatchOptions::new().with_row_count(Some(b.num_rows()));
                RecordBatch::try_new_with_options(Arc::clone(&schema), b.columns().to_vec(), &rows)
                    .map_err(Into::into)
            })
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            rows,
        )))
    }
}

/// `plan`'s columns at `columns`.
fn project(plan: Arc<dyn ExecutionPlan>, columns: &[usize]) -> Result<Arc<dyn ExecutionPlan>> {
    let schema = plan.schema();
    let exprs: Vec<(Arc<dyn PhysicalExpr>, String)> = columns
        .iter()
        .map(|i| {
            let field = schema.field(*i);
            (
                Arc::new(Column::new(field.name(), *i)) as Arc<dyn PhysicalExpr>,
                field.name().clone(),
            )
        })
        .collect();
    Ok(Arc::new(ProjectionExec::try_new(exprs, plan)?))
}

/// A [`ShardScanExec`] as it crosses to a worker.
#[derive(Clone, PartialEq, Message)]
struct ShardScanProto {
    #[prost(string, tag = "1")]
    dataset: String,
    #[prost(message, repeated, tag = "2")]
    shards: Vec<ShardPlacementProto>,
    #[prost(bool, tag = "3")]
    projected: bool,
    #[prost(uint64, repeated, tag = "4")]
    projection: Vec<u64>,
    #[prost(message, optional, tag = "5")]
    filters: Option<protobuf::LogicalExprList>,
    #[prost(uint64, optional, tag = "6")]
    limit: Option<u64>,
    #[prost(message, optional, tag = "7")]
    schema: Option<protobuf::Schema>,
    #[prost(bytes = "vec", optional, tag = "8")]
    query: Option<Vec<u8>>,
    #[prost(string, tag = "9")]
    query_text: String,
}

#[derive(Clone, PartialEq, Message)]
struct ShardPlacementProto {
    #[prost(uint32, tag = "1")]
    index: u32,
    #[prost(string, tag = "2")]
    worker: String,
    #[prost(string, tag = "3")]
    table: String,
}

/// Encodes [`ShardScanExec`] on the coordinator; decodes it on a worker with the worker's
/// shards attached (`held`), so that it scans them there.
#[derive(Debug, Clone)]
pub struct ShardScanCodec {
    held: Option<Arc<WorkerShards>>,
}

impl ShardScanCodec {
    /// The coordinator's: encodes only.
    pub fn coordinator() -> Self {
        Self { held: None }
    }

    /// A worker's.
    pub fn worker(held: Arc<WorkerShards>) -> Self {
        Self { held: Some(held) }
    }
}

impl PhysicalExtensionCodec for ShardScanCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !inputs.is_empty() {
            return Err(DataFusionError::Internal(
                "a shard scan has no inputs".into(),
            ));
        }
        let Some(held) = &self.held else {
            return Err(DataFusionError::Internal(
                "a shard scan is decoded on workers only".into(),
            ));
        };
        let proto = ShardScanProto::decode(buf)
            .map_err(|e| DataFusionError::Internal(format!("undecodable shard scan: {e}")))?;
        let schema: SchemaRef = Arc::new(
            proto
                .schema
                .as_ref()
                .ok_or_else(|| DataFusionError::Internal("shard scan without a schema".into()))?
                .try_into()?,
        );
        let filters = match &proto.filters {
            Some(list) => parse_exprs(&list.expr, ctx, &DefaultLogicalExtensionCodec {})?,
            None => Vec::new(),
        };
        let shards = proto
            .shards
            .iter()
            .map(|s| {
                Ok(ShardPlacement {
                    index: s.index,
                    worker: Url::parse(&s.worker)
                        .map_err(|e| DataFusionError::Internal(format!("worker URL: {e}")))?,
                    table: s.table.clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut scan = ShardScanExec::new(
            proto.dataset,
            shards.into(),
            proto
                .projected
                .then(|| proto.projection.iter().map(|i| *i as usize).collect()),
            filters,
            proto.limit.map(|l| l as usize),
            schema,
        );
        if let Some(plan) = proto.query {
            scan.query = Some(ShardQuery {
                plan: plan.into(),
                text: proto.query_text,
            });
        }
        scan.held = Some(Arc::clone(held));
        Ok(Arc::new(scan))
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        let Some(scan) = node.downcast_ref::<ShardScanExec>() else {
            return Err(DataFusionError::Internal(format!(
                "{} cannot be sent to a worker: only scans of sharded datasets run there",
                node.name()
            )));
        };
        let proto = ShardScanProto {
            dataset: scan.dataset.clone(),
            shards: scan
                .shards
                .iter()
                .map(|s| ShardPlacementProto {
                    index: s.index,
                    worker: s.worker.to_string(),
                    table: s.table.clone(),
                })
                .collect(),
            projected: scan.projection.is_some(),
            projection: scan
                .projection
                .iter()
                .flatten()
                .map(|i| *i as u64)
                .collect(),
            filters: (!scan.filters.is_empty())
                .then(|| {
                    serialize_exprs(&scan.filters, &DefaultLogicalExtensionCodec {})
                        .map(|expr| protobuf::LogicalExprList { expr })
                })
                .transpose()?,
            limit: scan.limit.map(|l| l as u64),
            schema: Some(scan.schema.as_ref().try_into()?),
            query: scan.query.as_ref().map(|q| q.plan.to_vec()),
            query_text: scan
                .query
                .as_ref()
                .map(|q| q.text.clone())
                .unwrap_or_default(),
        };
        proto
            .encode(buf)
            .map_err(|e| DataFusionError::Internal(format!("encoding a shard scan: {e}")))
    }
}
