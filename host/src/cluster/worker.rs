//! `accel worker`: a process that holds shards of sharded datasets in its engines and runs the
//! plan fragments a coordinator sends it.
//!
//! One gRPC address serves two services: datafusion-distributed's worker service (plan
//! fragments in, Arrow Flight data out; fragments decode with [`ShardScanCodec`] bound to this
//! worker's shards) and an Arrow Flight service whose `DoAction` calls are the control
//! protocol ([`super::protocol`]: describe, assign, refresh). Each assigned shard is an
//! ordinary dataset of this host ([`Datasets::start_specs`]): loaded, refreshed on its schedule
//! from its part of the source, stored in this worker's data directory in file mode, and served
//! again from that file after a restart.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
};
use datafusion::catalog::TableProvider;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionState;
use datafusion_distributed::{DistributedExt, Worker, WorkerQueryContext};
use futures::Stream;
use tokio::net::TcpListener;
use tonic::{Request, Response, Status, Streaming};

use super::protocol::{
    self, ASSIGN, DESCRIBE, EngineVersion, HeldShard, REFRESH, RefreshShard, ShardAssignment,
    WorkerDescription,
};
use super::shard_scan::{ShardPlacement, ShardScanCodec};
use crate::Host;
use crate::config::DatasetSpec;
use crate::dataset::record::definition_digest;
use crate::dataset::{DatasetStatus, Datasets, RefreshSummary};

/// The shards this worker holds, each a dataset of its own.
pub struct WorkerShards {
    host: Arc<Host>,
    held: tokio::sync::Mutex<BTreeMap<String, Held>>,
}

impl std::fmt::Debug for WorkerShards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerShards").finish_non_exhaustive()
    }
}

struct Held {
    spec: DatasetSpec,
    digest: String,
    datasets: Arc<Datasets>,
}

impl Held {
    /// The status of the shard's dataset (the only one its `Datasets` holds).
    fn status(&self) -> DatasetStatus {
        self.datasets
            .all()
            .first()
            .map(|d| d.status())
            .unwrap_or_default()
    }
}

impl WorkerShards {
    pub fn new(host: Arc<Host>) -> Arc<Self> {
        Arc::new(Self {
            host,
            held: tokio::sync::Mutex::default(),
        })
    }

    /// The table of `shard`, once it has been loaded here.
    pub async fn table(
        &self,
        dataset: &str,
        shard: &ShardPlacement,
    ) -> Result<Arc<dyn TableProvider>> {
        if let Ok(table) = self
            .host
            .context()
            .table_provider(shard.table.as_str())
            .await
        {
            return Ok(table);
        }
        let held = self.held.lock().await;
        let why = match held.get(&shard.table) {
            None => "it was not assigned here (the worker restarted and the coordinator has \
                     not assigned it again yet)"
                .to_owned(),
            Some(held) => {
                let status = held.status();
                match status.last_error {
                    Some(error) => format!("its load failed: {error}"),
                    None => format!("it is {}", status.state),
                }
            }
        };
        Err(DataFusionError::Execution(format!(
            "worker {} does not serve shard {} of dataset `{dataset}`: {why}",
            shard.worker.as_str().trim_end_matches('/'),
            shard.index
        )))
    }

    /// The session shard scans run in: this host's.
    pub fn session(&self) -> SessionState {
        self.host.context().state()
    }

    /// Holds exactly `assignments`: starts the shards not held (or held with another
    /// definition), drops the ones no longer assigned, keeps the rest as they are.
    pub async fn assign(&self, assignments: Vec<ShardAssignment>) -> Result<()> {
        let mut wanted = BTreeMap::new();
        for assignment in assignments {
            let name = assignment.dataset.name.clone();
            let spec = assignment.dataset.shard(assignment.index).ok_or_else(|| {
                DataFusionError::Plan(format!(
                    "dataset `{name}` was assigned to this worker as a shard but is not sharded"
                ))
            })?;
            wanted.insert(spec.name.clone(), spec);
        }
        let mut held = self.held.lock().await;
        let mut stopping = Vec::new();
        let names: Vec<String> = held.keys().cloned().collect();
        for table in names {
            let keep = wanted
                .get(&table)
                .is_some_and(|spec| held[&table].digest == definition_digest(spec));
            if !keep && let Some(old) = held.remove(&table) {
                stopping.push(old);
            }
        }
        for old in stopping {
            old.datasets.shutdown(Duration::from_secs(60)).await;
            let _ = self.host.context().deregister_table(old.spec.name.as_str());
            tracing::info!(shard = %old.spec.name, "shard dropped");
        }
        for (table, spec) in wanted {
            if held.contains_key(&table) {
                continue;
            }
            tracing::info!(shard = %table, "shard assigned");
            let datasets = Datasets::start_specs(Arc::clone(&self.host), vec![spec.clone()]);
            let digest = definition_digest(&spec);
            held.insert(
                table,
                Held {
                    spec,
                    digest,
                    datasets,
                },
            );
        }
        Ok(())
    }

    /// This worker: versions, engines, and the shards it holds.
    pub async fn describe(&self) -> WorkerDescription {
        let mut description = protocol::this_process(engine_versions(&self.host));
        for held in self.held.lock().await.values() {
            let Some(part) = &held.spec.shard else {
                continue;
            };
            let status = held.status();
            description.shards.push(HeldShard {
                dataset: part.dataset.clone(),
                index: part.index,
                count: part.count,
                table: held.spec.name.clone(),
                state: status.state.to_string(),
                loaded: status.loaded,
                rows: status.rows,
                last_error: status.last_error,
            });
        }
        description
    }

    /// Refreshes shard `table` now and waits for the outcome.
    pub async fn refresh(&self, table: &str) -> std::result::Result<RefreshSummary, String> {
        let datasets = match self.held.lock().await.get(table) {
            Some(held) => Arc::clone(&held.datasets),
            None => return Err(format!("this worker holds no shard `{table}`")),
        };
        datasets.refresh(table).await
    }

    /// Stops every shard's refreshes (a running one commits or rolls back first).
    pub async fn shutdown(&self, limit: Duration) {
        for held in self.held.lock().await.values() {
            held.datasets.shutdown(limit).await;
        }
    }
}

/// The newest active generation of each engine of `host`.
pub fn engine_versions(host: &Host) -> Vec<EngineVersion> {
    host.registry
        .names()
        .into_iter()
        .filter_map(|name| {
            let generation = host.registry.get(&name)?;
            Some(EngineVersion {
                name,
                version: generation.version.to_string(),
            })
        })
        .collect()
}

/// Serves plan fragments and the control protocol on `listener` until `shutdown` completes.
pub async fn serve(
    shards: Arc<WorkerShards>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::result::Result<(), String> {
    let codec_shards = Arc::clone(&shards);
    let worker = Worker::from_session_builder(move |ctx: WorkerQueryContext| {
        let codec = ShardScanCodec::worker(Arc::clone(&codec_shards));
        async move {
            let mut builder = ctx.builder;
            builder
                .config()
                .get_or_insert_default()
                .set_distributed_user_codec(codec);
            Ok(builder.build())
        }
    })
    .with_version(env!("CARGO_PKG_VERSION"));
    tonic::transport::Server::builder()
        .add_service(worker.into_worker_server())
        .add_service(FlightServiceServer::new(Control { shards }))
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            shutdown,
        )
        .await
        .map_err(|e| format!("the worker's gRPC server stopped: {e}"))
}

/// The control protocol, as Arrow Flight actions.
struct Control {
    shards: Arc<WorkerShards>,
}

type Boxed<T> = Pin<Box<dyn Stream<Item = std::result::Result<T, Status>> + Send>>;

fn only_actions<T>() -> std::result::Result<T, Status> {
    Err(Status::unimplemented(format!(
        "an accel worker answers the actions {DESCRIBE}, {ASSIGN} and {REFRESH} only; query \
         the coordinator (accel serve) instead"
    )))
}

#[tonic::async_trait]
impl FlightService for Control {
    type HandshakeStream = Boxed<HandshakeResponse>;
    type ListFlightsStream = Boxed<FlightInfo>;
    type DoGetStream = Boxed<FlightData>;
    type DoPutStream = Boxed<PutResult>;
    type DoActionStream = Boxed<arrow_flight::Result>;
    type ListActionsStream = Boxed<ActionType>;
    type DoExchangeStream = Boxed<FlightData>;

    async fn handshake(
        &self,
        _: Request<Streaming<HandshakeRequest>>,
    ) -> std::result::Result<Response<Self::HandshakeStream>, Status> {
        only_actions()
    }

    async fn list_flights(
        &self,
        _: Request<Criteria>,
    ) -> std::result::Result<Response<Self::ListFlightsStream>, Status> {
        only_actions()
    }

    async fn get_flight_info(
        &self,
        _: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        only_actions()
    }

    async fn poll_flight_info(
        &self,
        _: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<PollInfo>, Status> {
        only_actions()
    }

    async fn get_schema(
        &self,
        _: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<SchemaResult>, Status> {
        only_actions()
    }

    async fn do_get(
        &self,
        _: Request<Ticket>,
    ) -> std::result::Result<Response<Self::DoGetStream>, Status> {
        only_actions()
    }

    async fn do_put(
        &self,
        _: Request<Streaming<FlightData>>,
    ) -> std::result::Result<Response<Self::DoPutStream>, Status> {
        only_actions()
    }

    async fn do_exchange(
        &self,
        _: Request<Streaming<FlightData>>,
    ) -> std::result::Result<Response<Self::DoExchangeStream>, Status> {
        only_actions()
    }

    async fn list_actions(
        &self,
        _: Request<Empty>,
    ) -> std::result::Result<Response<Self::ListActionsStream>, Status> {
        let actions = [
            (DESCRIBE, "the worker's versions, engines and shards (JSON)"),
            (
                ASSIGN,
                "hold exactly these shards (JSON list of assignments)",
            ),
        ]
        .map(|(kind, description)| {
            Ok(ActionType {
                r#type: kind.to_owned(),
                description: description.to_owned(),
            })
        });
        Ok(Response::new(Box::pin(futures::stream::iter(actions))))
    }

    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> std::result::Result<Response<Self::DoActionStream>, Status> {
        let action = request.into_inner();
        match action.r#type.as_str() {
            REFRESH => {
                let request: RefreshShard = serde_json::from_slice(&action.body).map_err(|e| {
                    Status::invalid_argument(format!("{REFRESH}: unreadable request: {e}"))
                })?;
                let summary = self
                    .shards
                    .refresh(&request.table)
                    .await
                    .map_err(|e| Status::failed_precondition(format!("{REFRESH}: {e}")))?;
                let body =
                    serde_json::to_vec(&summary).map_err(|e| Status::internal(e.to_string()))?;
                let answer = arrow_flight::Result { body: body.into() };
                return Ok(Response::new(Box::pin(futures::stream::iter([Ok(answer)]))));
            }
            DESCRIBE => {}
            ASSIGN => {
                let assignments: Vec<ShardAssignment> = serde_json::from_slice(&action.body)
                    .map_err(|e| {
                        Status::invalid_argument(format!("{ASSIGN}: unreadable assignments: {e}"))
                    })?;
                self.shards
                    .assign(assignments)
                    .await
                    .map_err(|e| Status::invalid_argument(format!("{ASSIGN}: {e}")))?;
            }
            other => {
                return Err(Status::invalid_argument(format!(
                    "unknown action `{other}`; an accel worker answers {DESCRIBE}, {ASSIGN} and \
                     {REFRESH}"
                )));
            }
        }
        let description = serde_json::to_vec(&self.shards.describe().await)
            .map_err(|e| Status::internal(e.to_string()))?;
        let answer = arrow_flight::Result {
            body: description.into(),
        };
        Ok(Response::new(Box::pin(futures::stream::iter([Ok(answer)]))))
    }
}
