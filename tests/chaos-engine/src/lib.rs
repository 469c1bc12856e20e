//! Test fixture: an in-memory engine that misbehaves on demand, so the tests can check that the
//! host contains every kind of failure of plugin code.
//!
//! Table options choose the failure:
//! - `chaos_panic`: `create`, `scan`, `execute` or `poll` — panic there;
//! - `chaos_fail`: `stream` — the scan stream yields one batch, then an error;
//! - `chaos_hang`: `init` — `init` never returns (and `is_initialized` is false);
//! - `chaos_schema`: `wrong` — the table has an extra column not declared.
//!
//! With `ACCEL_CHAOS_PANIC_ON_START` set in the environment, constructing the engine panics.

use std::any::Any;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use accel_plugin_api::datafusion;
use accel_plugin_api::{
    AccelerationSource, BootstrapStatus, DataAccelerator, ParameterSpec, PartitionedBy,
    async_trait, export_accelerator,
};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::{MemTable, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{CreateExternalTable, Expr};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::Stream;

static PARAMETERS: [ParameterSpec; 4] = [
    ParameterSpec::new("panic", "panic in: create, scan, execute or poll"),
    ParameterSpec::new("fail", "fail in: stream"),
    ParameterSpec::new("hang", "never return from: init"),
    ParameterSpec::new(
        "schema",
        "`wrong`: return a table with an undeclared column",
    ),
];

pub struct ChaosEngine;

impl Default for ChaosEngine {
    fn default() -> Self {
        if std::env::var_os("ACCEL_CHAOS_PANIC_ON_START").is_some() {
            panic!("chaos: asked to panic on start");
        }
        Self
    }
}

export_accelerator!(ChaosEngine, "chaos");

fn option(source: Option<&dyn AccelerationSource>, key: &str) -> Option<String> {
    source.and_then(|s| s.params().get(key).cloned())
}

#[async_trait]
impl DataAccelerator for ChaosEngine {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn name(&self) -> &str {
        "chaos"
    }

    fn prefix(&self) -> &str {
        "chaos"
    }

    fn parameters(&self) -> &[ParameterSpec] {
        &PARAMETERS
    }

    async fn create_external_table(
        &self,
        cmd: CreateExternalTable,
        source: Option<&dyn AccelerationSource>,
        _partition_by: Vec<PartitionedBy>,
        _runtime_env: Arc<RuntimeEnv>,
    ) -> Result<Arc<dyn TableProvider>> {
        let panic_in = option(source, "chaos_panic").unwrap_or_default();
        if panic_in == "create" {
            panic!("chaos: panic in create_external_table");
        }
        let mut schema = cmd.schema.as_arrow().clone();
        if option(source, "chaos_schema").as_deref() == Some("wrong") {
            let mut fields: Vec<Field> =
                schema.fields().iter().map(|f| f.as_ref().clone()).collect();
            fields.push(Field::new("undeclared", DataType::Int8, true));
            schema = Schema::new(fields);
        }
        let schema = Arc::new(schema);
        let table = MemTable::try_new(Arc::clone(&schema), vec![vec![]])?;
        Ok(Arc::new(ChaosTable {
            table,
            schema,
            panic_in,
            fail_in: option(source, "chaos_fail").unwrap_or_default(),
        }))
    }

    async fn init(&self, source: &dyn AccelerationSource) -> Result<BootstrapStatus> {
        if option(Some(source), "chaos_hang").as_deref() == Some("init") {
            futures::future::pending::<()>().await;
        }
        Ok(BootstrapStatus::NotBootstrapped)
    }

    fn is_initialized(&self, source: &dyn AccelerationSource) -> bool {
        option(Some(source), "chaos_hang").as_deref() != Some("init")
    }
}

#[derive(Debug)]
struct ChaosTable {
    table: MemTable,
    schema: SchemaRef,
    panic_in: String,
    fail_in: String,
}

#[async_trait]
impl TableProvider for ChaosTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if self.panic_in == "scan" {
            panic!("chaos: panic in scan");
        }
        let inner = self.table.scan(state, projection, filters, limit).await?;
        Ok(Arc::new(ChaosExec {
            inner,
            panic_in: self.panic_in.clone(),
            fail_in: self.fail_in.clone(),
        }))
    }

    async fn insert_into(
        &self,
        state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.table.insert_into(state, input, insert_op).await
    }
}

#[derive(Debug)]
struct ChaosExec {
    inner: Arc<dyn ExecutionPlan>,
    panic_in: String,
    fail_in: String,
}

impl DisplayAs for ChaosExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "ChaosExec: ")?;
        self.inner.fmt_as(t, f)
    }
}

impl ExecutionPlan for ChaosExec {
    fn name(&self) -> &str {
        "ChaosExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.inner.properties()
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
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if self.panic_in == "execute" {
            panic!("chaos: panic in execute");
        }
        let inner = self.inner.execute(partition, context)?;
        Ok(Box::pin(ChaosStream {
            inner,
            panic_on_poll: self.panic_in == "poll",
            fail_after_first: self.fail_in == "stream",
            yielded: 0,
        }))
    }
}

struct ChaosStream {
    inner: SendableRecordBatchStream,
    panic_on_poll: bool,
    fail_after_first: bool,
    yielded: usize,
}

impl Stream for ChaosStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.panic_on_poll {
            panic!("chaos: panic while polling");
        }
        if self.fail_after_first && self.yielded >= 1 {
            return Poll::Ready(Some(Err(DataFusionError::Execution(
                "chaos: stream failed after the first batch".to_owned(),
            ))));
        }
        let polled = self.inner.as_mut().poll_next(cx);
        if let Poll::Ready(Some(Ok(_))) = &polled {
            self.yielded += 1;
        }
        polled
    }
}

impl RecordBatchStream for ChaosStream {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}
