//! Progress of a running refresh: rows and bytes read from the source so far, counted by a
//! pass-through plan node on the refresh's input, read by the status table and the progress
//! reporter (a bar on a terminal, periodic log lines otherwise).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::StreamExt;

/// Counters of one refresh.
#[derive(Debug)]
pub struct Progress {
    rows: AtomicU64,
    bytes: AtomicU64,
    started: Instant,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            rows: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            started: Instant::now(),
        }
    }
}

/// What the counters say now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProgressReading {
    pub rows: u64,
    /// Arrow bytes read (in memory, not on disk).
    pub bytes: u64,
    pub seconds: f64,
}

impl ProgressReading {
    pub fn rows_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.rows as f64 / self.seconds
        } else {
            0.0
        }
    }
}

impl fmt::Display for ProgressReading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} rows, {:.1} MiB in {:.1}s ({:.0} rows/s)",
            self.rows,
            self.bytes as f64 / (1024.0 * 1024.0),
            self.seconds,
            self.rows_per_second()
        )
    }
}

impl Progress {
    pub fn read(&self) -> ProgressReading {
        ProgressReading {
            rows: self.rows.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            seconds: self.started.elapsed().as_secs_f64(),
        }
    }
}

/// Passes its input through, counting rows and bytes into a [`Progress`].
#[derive(Debug)]
pub struct CountingExec {
    input: Arc<dyn ExecutionPlan>,
    progress: Arc<Progress>,
}

impl CountingExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, progress: &Arc<Progress>) -> Self {
        Self {
            input,
            progress: Arc::clone(progress),
        }
    }
}

impl DisplayAs for CountingExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CountingExec")
    }
}

impl ExecutionPlan for CountingExec {
    fn name(&self) -> &str {
        "CountingExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn apply_expressions(
        &self,
        _: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = children.pop().unwrap_or_else(|| Arc::clone(&self.input));
        Ok(Arc::new(Self::new(input, &self.progress)))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let stream = self.input.execute(partition, context)?;
        let schema = stream.schema();
        let progress = Arc::clone(&self.progress);
        let counted = stream.map(move |batch| {
            if let Ok(batch) = &batch {
                progress
                    .rows
                    .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
                progress
                    .bytes
                    .fetch_add(batch.get_array_memory_size() as u64, Ordering::Relaxed);
            }
            batch
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, counted)))
    }
}
