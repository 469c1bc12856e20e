//! The `TableProviderFactory` an engine library hands to the host for one dataset: datafusion-ffi
//! carries `CREATE EXTERNAL TABLE` to it, and it calls the engine's `create_external_table` on
//! the plugin runtime.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider, TableProviderFactory};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::CreateExternalTable;
use tokio::runtime::Handle;

use super::guard::GuardedTableProvider;
use super::panic_message;
use crate::contract::accelerator::{
    AccelerationSource, AccelerationSourceSpec, DataAccelerator, PartitionedBy,
};

pub struct EngineTableFactory {
    pub engine: Arc<dyn DataAccelerator>,
    pub source: Option<AccelerationSourceSpec>,
    pub partition_by: Vec<PartitionedBy>,
    pub runtime: Handle,
    pub runtime_env: Arc<RuntimeEnv>,
}

impl std::fmt::Debug for EngineTableFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineTableFactory")
            .field("engine", &self.engine.name())
            .field("source", &self.source)
            .finish()
    }
}

#[async_trait]
impl TableProviderFactory for EngineTableFactory {
    async fn create(
        &self,
        _session: &dyn Session,
        cmd: &CreateExternalTable,
    ) -> Result<Arc<dyn TableProvider>> {
        let engine = Arc::clone(&self.engine);
        let cmd = cmd.clone();
        let source = self.source.clone();
        let partition_by = self.partition_by.clone();
        let runtime_env = Arc::clone(&self.runtime_env);
        let task = self.runtime.spawn(async move {
            let source = source.as_ref().map(|s| s as &dyn AccelerationSource);
            engine
                .create_external_table(cmd, source, partition_by, runtime_env)
                .await
        });
        let provider = match task.await {
            Ok(result) => result?,
            Err(join) if join.is_panic() => {
                return Err(DataFusionError::Execution(format!(
                    "engine `{}` panicked in create_external_table: {}",
                    self.engine.name(),
                    panic_message(&*join.into_panic())
                )));
            }
            Err(e) => return Err(DataFusionError::External(Box::new(e))),
        };
        Ok(Arc::new(GuardedTableProvider::try_new(
            provider,
            self.engine.name(),
            self.runtime.clone(),
        )?))
    }
}
