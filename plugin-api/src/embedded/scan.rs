//! A one-partition scan whose rows come from a blocking database call: the engine supplies the
//! function that runs its query and sends batches; this plan does the DataFusion plumbing.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};

use super::stream::{BatchSender, stream_from_blocking};

/// Runs a scan on a blocking thread: sends batches of about `batch_size` rows until done or
/// until `send` returns `false`.
pub type RunScan = dyn Fn(&BatchSender, usize) -> Result<()> + Send + Sync;

/// A scan of one query of an embedded database.
pub struct BlockingScanExec {
    /// e.g. `SqliteScanExec: SELECT …`: datafusion-ffi shows a plugin's plan by its name only,
    /// so the name carries the query into the host's EXPLAIN.
    name: String,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    run: Arc<RunScan>,
}

impl BlockingScanExec {
    pub fn new(
        name: String,
        schema: SchemaRef,
        run: impl Fn(&BatchSender, usize) -> Result<()> + Send + Sync + 'static,
    ) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Self {
            name,
            schema,
            properties,
            run: Arc::new(run),
        }
    }
}

impl fmt::Debug for BlockingScanExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl DisplayAs for BlockingScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl ExecutionPlan for BlockingScanExec {
    fn name(&self) -> &str {
        &self.name
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
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
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal(format!(
                "{} has no children",
                self.name
            )))
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "{} has one partition, asked for {partition}",
                self.name
            )));
        }
        let run = Arc::clone(&self.run);
        let batch_size = context.session_config().batch_size();
        Ok(stream_from_blocking(Arc::clone(&self.schema), move |tx| {
            run(tx, batch_size)
        }))
    }
}
