//! A plan that came from a plugin library, as the host's planner and optimizer see it.
//!
//! Two jobs:
//! - **keep-alive**: the plan and each stream it produces hold what must outlive them — the
//!   library's `Arc`, and for a managed table the read guard that makes a hand-over wait for
//!   running queries (see `table::managed`);
//! - **input requirements**: datafusion-ffi does not carry a plan's required input distribution
//!   across the boundary, so the host's optimizer would treat a plugin's insert plan (a
//!   `DataSinkExec`, which reads input partition 0 only) as accepting any partitioning — and
//!   split its input into several partitions, silently dropping all but one. This wrapper
//!   declares that every child must be a single partition, which is always correct.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::distribution_requirements::InputDistributionRequirements;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, PlanProperties,
};
use futures::StreamExt;

/// Something a plan and its streams keep alive.
pub type KeepAlive = Arc<dyn Any + Send + Sync>;

/// `stream`, holding `keep_alive` until it is dropped.
pub fn keep_alive_stream(
    stream: SendableRecordBatchStream,
    keep_alive: KeepAlive,
) -> SendableRecordBatchStream {
    let schema = stream.schema();
    let kept_alive = stream.map(move |batch| {
        let _kept = &keep_alive;
        batch
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, kept_alive))
}

pub struct PluginExec {
    inner: Arc<dyn ExecutionPlan>,
    keep_alive: KeepAlive,
    /// `engine `x` 1.2.0, insert` — prefixed to errors of the plan and its streams, which
    /// otherwise cross the boundary as bare text.
    label: Option<Arc<str>>,
}

/// `error` with `label` (the engine and the call) in front, once.
pub fn labelled(label: &str, error: DataFusionError) -> DataFusionError {
    let text = error.to_string();
    if text.starts_with(label) {
        return error;
    }
    DataFusionError::Execution(format!(
        "{label}: {}",
        text.trim_start_matches("FFI error: ")
    ))
}

/// `stream` with every error labelled with `label` (see [`labelled`]).
pub fn labelled_stream(
    stream: SendableRecordBatchStream,
    label: Arc<str>,
) -> SendableRecordBatchStream {
    let schema = stream.schema();
    let stream = stream.map(move |batch| batch.map_err(|e| labelled(&label, e)));
    Box::pin(RecordBatchStreamAdapter::new(schema, stream))
}

impl fmt::Debug for PluginExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginExec")
            .field("inner", &self.inner)
            .finish()
    }
}

impl PluginExec {
    pub fn wrap(inner: Arc<dyn ExecutionPlan>, keep_alive: &KeepAlive) -> Arc<dyn ExecutionPlan> {
        Arc::new(Self {
            inner,
            keep_alive: Arc::clone(keep_alive),
            label: None,
        })
    }

    /// [`Self::wrap`], with errors of the plan and its streams labelled with `label`.
    pub fn wrap_labelled(
        inner: Arc<dyn ExecutionPlan>,
        keep_alive: &KeepAlive,
        label: Arc<str>,
    ) -> Arc<dyn ExecutionPlan> {
        Arc::new(Self {
            inner,
            keep_alive: Arc::clone(keep_alive),
            label: Some(label),
        })
    }
}

impl DisplayAs for PluginExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        self.inner.fmt_as(t, f)
    }
}

impl ExecutionPlan for PluginExec {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.inner.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.inner.children()
    }

    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        InputDistributionRequirements::new(vec![
            Distribution::SinglePartition;
            self.inner.children().len()
        ])
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false; self.inner.children().len()]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        self.inner.apply_expressions(f)
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let inner = Arc::clone(&self.inner).replace_children(children, options)?;
        Ok(Arc::new(Self {
            inner,
            keep_alive: Arc::clone(&self.keep_alive),
            label: self.label.clone(),
        }))
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let options = ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute);
        self.replace_children(children, options)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let Some(label) = &self.label else {
            let stream = self.inner.execute(partition, context)?;
            return Ok(keep_alive_stream(stream, Arc::clone(&self.keep_alive)));
        };
        let stream = self
            .inner
            .execute(partition, context)
            .map_err(|e| labelled(label, e))?;
        Ok(keep_alive_stream(
            labelled_stream(stream, Arc::clone(label)),
            Arc::clone(&self.keep_alive),
        ))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        self.inner.metrics()
    }
}
