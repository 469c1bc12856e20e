//! Wrappers around an engine's table provider, its plans and its streams, for the calls that
//! datafusion-ffi makes into them from `extern "C"` functions (where a panic would abort the
//! process). Each wrapper contains panics — they become a `DataFusionError` naming the engine —
//! and runs engine code inside the plugin runtime.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Statistics;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::config::ConfigOptions;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::{FutureExt, Stream, StreamExt};
use tokio::runtime::Handle;

use super::panic_message;

fn panic_error(engine: &str, call: &str, payload: Box<dyn Any + Send>) -> DataFusionError {
    DataFusionError::Execution(format!(
        "engine `{engine}` panicked in {call}: {}",
        panic_message(&*payload)
    ))
}

/// Polls a future with the plugin runtime entered, so that engine code may spawn tasks and
/// use timers and blocking pools of its own runtime, whichever thread polls it.
struct InRuntime<F> {
    runtime: Handle,
    future: Pin<Box<F>>,
}

impl<F: Future> Future for InRuntime<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let _entered = this.runtime.enter();
        this.future.as_mut().poll(cx)
    }
}

/// Runs an engine future in the plugin runtime, turning a panic into an error.
async fn contained<T>(
    engine: &str,
    call: &str,
    runtime: &Handle,
    future: impl Future<Output = Result<T>>,
) -> Result<T> {
    let future = AssertUnwindSafe(future).catch_unwind();
    match (InRuntime {
        runtime: runtime.clone(),
        future: Box::pin(future),
    })
    .await
    {
        Ok(result) => result,
        Err(payload) => Err(panic_error(engine, call, payload)),
    }
}

/// The engine's table provider as exported to the host.
#[derive(Debug)]
pub struct GuardedTableProvider {
    /// `None` only while the provider is being dropped.
    inner: Option<Arc<dyn TableProvider>>,
    engine: Arc<str>,
    runtime: Handle,
    schema: SchemaRef,
    table_type: TableType,
}

impl GuardedTableProvider {
    /// The engine's own provider.
    pub fn inner(&self) -> &Arc<dyn TableProvider> {
        self.inner
            .as_ref()
            .expect("a provider's inner provider is present until it is dropped")
    }

    /// Wraps a provider; its schema and table type are read once, here, so the host's calls
    /// for them never reach engine code.
    pub fn try_new(inner: Arc<dyn TableProvider>, engine: &str, runtime: Handle) -> Result<Self> {
        let (schema, table_type) =
            catch_unwind(AssertUnwindSafe(|| (inner.schema(), inner.table_type())))
                .map_err(|p| panic_error(engine, "schema", p))?;
        Ok(Self {
            inner: Some(inner),
            engine: engine.into(),
            runtime,
            schema,
            table_type,
        })
    }
}

#[async_trait]
impl TableProvider for GuardedTableProvider {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        self.table_type
    }

    fn statistics(&self) -> Option<Statistics> {
        catch_unwind(AssertUnwindSafe(|| self.inner().statistics()))
            .ok()
            .flatten()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        catch_unwind(AssertUnwindSafe(|| {
            self.inner().supports_filters_pushdown(filters)
        }))
        .map_err(|p| panic_error(&self.engine, "supports_filters_pushdown", p))?
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let scan = self.inner().scan(state, projection, filters, limit);
        let plan = contained(&self.engine, "scan", &self.runtime, scan).await?;
        GuardedExec::wrap(plan, &self.engine)
    }

    async fn insert_into(
        &self,
        state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let insert = self.inner().insert_into(state, input, insert_op);
        let plan = contained(&self.engine, "insert_into", &self.runtime, insert).await?;
        GuardedExec::wrap(plan, &self.engine)
    }
}

impl Drop for GuardedTableProvider {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            drop_guarded(inner);
        }
    }
}

/// An engine execution plan as exported to the host. What the host reads by reference (name,
/// properties, children) is read once, when the plan is wrapped, so those calls never reach
/// engine code; every other call of this plan, and dropping it (with what it caches), runs
/// under a panic guard. Its children are exported wrapped the same way (a child's `execute`
/// is engine code too); when the host hands children back (`replace_children`), wrapped ones
/// are unwrapped first, so the engine's plan gets its own plan types back.
#[derive(Debug)]
pub struct GuardedExec {
    /// `None` only while the plan is being dropped.
    inner: Option<Arc<dyn ExecutionPlan>>,
    engine: Arc<str>,
    name: String,
    /// Dropped in [`Drop`], under the guard: they may hold the last reference to engine code.
    properties: ManuallyDrop<Arc<PlanProperties>>,
    children: ManuallyDrop<Vec<Arc<dyn ExecutionPlan>>>,
}

impl GuardedExec {
    /// Wraps an engine plan; fails (instead of unwinding) if reading its name, properties or
    /// children panics.
    pub fn wrap(
        inner: Arc<dyn ExecutionPlan>,
        engine: &Arc<str>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let read = catch_unwind(AssertUnwindSafe(|| {
            (
                inner.name().to_owned(),
                Arc::clone(inner.properties()),
                inner.children().into_iter().cloned().collect::<Vec<_>>(),
            )
        }));
        let (name, properties, children) = match read {
            Ok(read) => read,
            Err(payload) => {
                drop_guarded(inner);
                return Err(panic_error(engine, "plan properties", payload));
            }
        };
        let children = children
            .into_iter()
            .map(|child| {
                if is_guarded(child.as_ref()) {
                    Ok(child)
                } else {
                    Self::wrap(child, engine)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(Self {
            inner: Some(inner),
            engine: Arc::clone(engine),
            name,
            properties: ManuallyDrop::new(properties),
            children: ManuallyDrop::new(children),
        }))
    }

    fn inner(&self) -> &Arc<dyn ExecutionPlan> {
        self.inner
            .as_ref()
            .expect("a plan's inner plan is present until it is dropped")
    }

    fn guard<T>(&self, call: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        catch_unwind(AssertUnwindSafe(f)).map_err(|p| panic_error(&self.engine, call, p))?
    }
}

/// Drops an engine object where a panic would otherwise unwind into datafusion-ffi's
/// `release` (an `extern "C"` function: the process would abort). A panicking destructor
/// leaks what it did not free, nothing more.
fn drop_guarded<T>(value: T) {
    let _ = catch_unwind(AssertUnwindSafe(move || drop(value)));
}

impl Drop for GuardedExec {
    fn drop(&mut self) {
        // SAFETY: this is the fields' only drop, and nothing reads them after it.
        let (properties, children) = unsafe {
            (
                ManuallyDrop::take(&mut self.properties),
                ManuallyDrop::take(&mut self.children),
            )
        };
        drop_guarded((self.inner.take(), children, properties));
    }
}

impl DisplayAs for GuardedExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        struct Described<'a>(&'a dyn ExecutionPlan, DisplayFormatType);
        impl fmt::Display for Described<'_> {
            fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
                self.0.fmt_as(self.1, f)
            }
        }
        match catch_unwind(AssertUnwindSafe(|| {
            use std::fmt::Write;
            let mut text = String::new();
            write!(text, "{}", Described(self.inner().as_ref(), t)).map(|()| text)
        })) {
            Ok(Ok(text)) => f.write_str(&text),
            Ok(Err(e)) => Err(e),
            Err(_) => write!(
                f,
                "{} (engine `{}` panicked describing it)",
                self.name, self.engine
            ),
        }
    }
}

/// Whether `plan` is itself a wrapper (`is::<GuardedExec>()` would look through it: its
/// downcast delegate is the engine's plan).
fn is_guarded(plan: &dyn ExecutionPlan) -> bool {
    (plan as &dyn Any).is::<GuardedExec>()
}

impl ExecutionPlan for GuardedExec {
    fn name(&self) -> &str {
        &self.name
    }

    fn downcast_delegate(&self) -> Option<&dyn ExecutionPlan> {
        Some(self.inner().as_ref())
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.children.iter().collect()
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        self.guard("apply_expressions", || self.inner().apply_expressions(f))
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let inner = Arc::clone(self.inner());
        // Children this wrapper exported come back wrapped: the engine gets its own plans.
        let children = children
            .into_iter()
            .map(
                |child| match (child.as_ref() as &dyn Any).downcast_ref::<GuardedExec>() {
                    Some(guarded) => Arc::clone(guarded.inner()),
                    None => child,
                },
            )
            .collect();
        let plan = self.guard("replace_children", || {
            inner.replace_children(children, options)
        })?;
        Self::wrap(plan, &self.engine)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let options = ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute);
        self.replace_children(children, options)
    }

    fn repartitioned(
        &self,
        target_partitions: usize,
        config: &ConfigOptions,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let plan = self.guard("repartitioned", || {
            self.inner().repartitioned(target_partitions, config)
        })?;
        plan.map(|p| Self::wrap(p, &self.engine)).transpose()
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let stream = self.guard("execute", || self.inner().execute(partition, context))?;
        Ok(guard_stream(stream, &self.engine))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        catch_unwind(AssertUnwindSafe(|| self.inner().metrics()))
            .ok()
            .flatten()
    }
}

/// `stream` as exported to the host: a panic while polling it ends it with an error.
pub fn guard_stream(
    stream: SendableRecordBatchStream,
    engine: &Arc<str>,
) -> SendableRecordBatchStream {
    let schema = stream.schema();
    Box::pin(GuardedStream {
        inner: Some(stream),
        schema,
        engine: Arc::clone(engine),
    })
}

/// An engine record batch stream as exported to the host: a panic while polling ends the
/// stream with an error.
struct GuardedStream {
    inner: Option<SendableRecordBatchStream>,
    schema: SchemaRef,
    engine: Arc<str>,
}

impl Stream for GuardedStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match catch_unwind(AssertUnwindSafe(|| inner.poll_next_unpin(cx))) {
            Ok(poll) => poll,
            Err(payload) => {
                // The engine stream may be in any state after a panic: never poll it again.
                self.inner = None;
                Poll::Ready(Some(Err(panic_error(&self.engine, "stream poll", payload))))
            }
        }
    }
}

impl Drop for GuardedStream {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            drop_guarded(inner);
        }
    }
}

impl RecordBatchStream for GuardedStream {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::Schema;
    use datafusion::physical_expr::{EquivalenceProperties, Partitioning};
    use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};

    use super::*;

    /// A plan of the engine: `panics` in `execute`; a parent checks it gets its own child
    /// type back.
    #[derive(Debug)]
    struct EnginePlan {
        children: Vec<Arc<dyn ExecutionPlan>>,
        properties: Arc<PlanProperties>,
    }

    impl EnginePlan {
        fn plan(children: Vec<Arc<dyn ExecutionPlan>>) -> Arc<dyn ExecutionPlan> {
            Arc::new(Self {
                children,
                properties: Arc::new(PlanProperties::new(
                    EquivalenceProperties::new(Arc::new(Schema::empty())),
                    Partitioning::UnknownPartitioning(1),
                    EmissionType::Incremental,
                    Boundedness::Bounded,
                )),
            })
        }
    }

    impl DisplayAs for EnginePlan {
        fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("EnginePlan")
        }
    }

    impl ExecutionPlan for EnginePlan {
        fn name(&self) -> &str {
            "EnginePlan"
        }
        fn properties(&self) -> &Arc<PlanProperties> {
            &self.properties
        }
        fn apply_expressions(
            &self,
            _: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
        ) -> Result<TreeNodeRecursion> {
            Ok(TreeNodeRecursion::Continue)
        }
        fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
            self.children.iter().collect()
        }
        fn with_new_children(
            self: Arc<Self>,
            children: Vec<Arc<dyn ExecutionPlan>>,
        ) -> Result<Arc<dyn ExecutionPlan>> {
            assert!(
                children
                    .iter()
                    .all(|c| !is_guarded(c.as_ref()) && c.is::<EnginePlan>()),
                "the engine gets its own plans back, not the wrappers"
            );
            Ok(EnginePlan::plan(children))
        }
        fn execute(&self, _: usize, _: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
            panic!("engine bug in execute");
        }
    }

    #[test]
    fn children_are_exported_guarded_and_given_back_unwrapped() {
        let engine: Arc<str> = Arc::from("test");
        let plan =
            GuardedExec::wrap(EnginePlan::plan(vec![EnginePlan::plan(vec![])]), &engine).unwrap();
        let child = Arc::clone(plan.children()[0]);
        assert!(is_guarded(child.as_ref()), "the child is wrapped");
        let failed = child
            .execute(0, Arc::new(TaskContext::default()))
            .err()
            .expect("a panic in a child's execute is an error");
        assert!(
            failed
                .to_string()
                .contains("engine `test` panicked in execute"),
            "{failed}"
        );
        let rebuilt = Arc::clone(&plan)
            .replace_children(
                vec![child],
                ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
            )
            .unwrap();
        assert!(is_guarded(rebuilt.as_ref()));
        assert!(is_guarded(rebuilt.children()[0].as_ref()));
    }
}
