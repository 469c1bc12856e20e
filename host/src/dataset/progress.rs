//! Progress of a running refresh: rows and bytes read from the source so far, counted by a
//! pass-through plan node on the refresh's input, and the rows expected when the source's
//! statistics know them exactly (parquet files do); read by the status table and the progress
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
    /// Rows the source will yield, when its statistics say so exactly (0: unknown).
    expected_rows: AtomicU64,
    started: Instant,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            rows: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            expected_rows: AtomicU64::new(0),
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
    /// Rows expected in all, when known.
    pub expected_rows: Option<u64>,
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
        write!(f, "{} rows", self.rows)?;
        if let Some(expected) = self.expected_rows.filter(|e| *e > 0) {
            write!(
                f,
                " of {expected} ({:.0}%)",
                100.0 * self.rows.min(expected) as f64 / expected as f64
            )?;
        }
        write!(
            f,
            ", {:.1} MiB in {:.1}s ({:.0} rows/s)",
            self.bytes as f64 / (1024.0 * 1024.0),
            self.seconds,
            self.rows_per_second()
        )
    }
}

impl Progress {
    /// Sets the rows the source will yield in all.
    pub fn expect_rows(&self, rows: u64) {
        self.expected_rows.store(rows, Ordering::Relaxed);
    }

    pub fn read(&self) -> ProgressReading {
        let expected = self.expected_rows.load(Ordering::Relaxed);
        ProgressReading {
            rows: self.rows.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            expected_rows: (expected > 0).then_some(expected),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_shows_the_share_done_when_the_total_is_known() {
        let progress = Progress::default();
        progress.rows.store(250, Ordering::Relaxed);
        progress.bytes.store(3 * 1024 * 1024, Ordering::Relaxed);
        let unknown = progress.read().to_string();
        assert!(unknown.starts_with("250 rows, 3.0 MiB in "), "{unknown}");
        progress.expect_rows(1000);
        let known = progress.read().to_string();
        assert!(
            known.starts_with("250 rows of 1000 (25%), 3.0 MiB in "),
            "{known}"
        );
        assert_eq!(progress.read().expected_rows, Some(1000));
    }
}
