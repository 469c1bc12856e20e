//! Connections from the coordinator to workers that name the worker in every error.
//! datafusion-distributed names the URL when it cannot connect, but a worker that dies on an
//! open connection, or mid-stream, surfaces as a bare transport error; a user must learn which
//! machine failed.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion_distributed::grpc::DefaultChannelResolver;
use datafusion_distributed::{
    ChannelResolver, CoordinatorToWorkerMsg, ExecuteTaskRequest, GetWorkerInfoRequest,
    GetWorkerInfoResponse, SetPlanRequest, WorkerChannel, WorkerToCoordinatorMsg,
};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use url::Url;

/// datafusion-distributed's resolver (one cached gRPC channel per worker), whose channels
/// name their worker in errors.
#[derive(Clone, Default)]
pub struct NamingChannelResolver {
    inner: DefaultChannelResolver,
}

#[async_trait]
impl ChannelResolver for NamingChannelResolver {
    async fn get_worker_client_for_url(&self, url: &Url) -> Result<Box<dyn WorkerChannel>> {
        let inner = self
            .inner
            .get_worker_client_for_url(url)
            .await
            .map_err(|e| naming(url, e))?;
        Ok(Box::new(NamingChannel {
            url: Arc::new(url.clone()),
            inner,
        }))
    }
}

struct NamingChannel {
    url: Arc<Url>,
    inner: Box<dyn WorkerChannel>,
}

/// `error` as raised talking to `worker`, unless it already names it.
pub fn naming(worker: &Url, error: DataFusionError) -> DataFusionError {
    let text = error.to_string();
    let shown = worker.as_str().trim_end_matches('/');
    if text.contains(shown) {
        return error;
    }
    DataFusionError::Execution(format!("worker {shown}: {text}"))
}

#[async_trait]
impl WorkerChannel for NamingChannel {
    async fn coordinator_channel(
        &mut self,
        headers: http::HeaderMap,
        set_plan_request: SetPlanRequest,
        c2w_stream: BoxStream<'static, CoordinatorToWorkerMsg>,
        metrics: ExecutionPlanMetricsSet,
        task_ctx: &Arc<TaskContext>,
    ) -> Result<BoxStream<'static, Result<WorkerToCoordinatorMsg>>> {
        let url = Arc::clone(&self.url);
        let stream = self
            .inner
            .coordinator_channel(headers, set_plan_request, c2w_stream, metrics, task_ctx)
            .await
            .map_err(|e| naming(&url, e))?;
        Ok(stream.map_err(move |e| naming(&url, e)).boxed())
    }

    async fn execute_task(
        &mut self,
        headers: http::HeaderMap,
        request: ExecuteTaskRequest,
        metrics: ExecutionPlanMetricsSet,
        task_ctx: &Arc<TaskContext>,
    ) -> Result<Vec<BoxStream<'static, Result<RecordBatch>>>> {
        let streams = self
            .inner
            .execute_task(headers, request, metrics, task_ctx)
            .await
            .map_err(|e| naming(&self.url, e))?;
        Ok(streams
            .into_iter()
            .map(|stream| {
                let url = Arc::clone(&self.url);
                stream.map_err(move |e| naming(&url, e)).boxed()
            })
            .collect())
    }

    async fn get_worker_info(
        &mut self,
        request: GetWorkerInfoRequest,
    ) -> Result<GetWorkerInfoResponse> {
        self.inner
            .get_worker_info(request)
            .await
            .map_err(|e| naming(&self.url, e))
    }
}
