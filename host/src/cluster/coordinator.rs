//! The coordinator's side: which worker holds which shard, whether workers are up and of the
//! same versions, and the sharded datasets as tables of the coordinator's session.
//!
//! At start-up every worker is described and checked ([`protocol::mismatch`]: a worker of
//! another accel release, plugin ABI or engine version is refused, naming the difference);
//! shard *i* of a dataset goes to worker *i mod W*, in the order `--workers` lists them. A
//! watch task then describes each worker every second: it assigns again the shards a worker
//! lacks (a restarted worker; its file-mode shards are served from their files, not
//! reloaded), registers a sharded dataset once every shard has loaded, and keeps each
//! dataset's status (rows summed over shards; a failed shard or a worker that is down makes
//! it `error`, naming the worker). A refresh requested on the coordinator (HTTP, `accel
//! refresh`) refreshes every shard on its worker at once and adds up their summaries.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arrow_flight::{Action, FlightClient};
use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::TableReference;
use datafusion::error::Result;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType,
};
use datafusion::physical_plan::ExecutionPlan;
use futures::TryStreamExt;
use tokio::task::JoinHandle;
use url::Url;

use super::protocol::{
    self, ASSIGN, DESCRIBE, REFRESH, RefreshShard, ShardAssignment, WorkerDescription,
};
use super::shard_scan::{ShardPlacement, ShardScanExec};
use super::worker::engine_versions;
use crate::Host;
use crate::config::{DatasetSpec, ShardBy, shard_table_name};
use crate::dataset::refresh::accelerated_schema;
use crate::dataset::{Dataset, DatasetState, Datasets, RefreshSummary, plain_message};
use crate::source::shard::shard_of_value;

/// How often the coordinator describes each worker.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);
/// Longest a description may take before the worker counts as down.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The workers as the coordinator last saw them (shared with the query path for routing).
pub struct ClusterState {
    workers: Vec<WorkerEntry>,
}

struct WorkerEntry {
    url: Url,
    health: Mutex<Health>,
}

#[derive(Debug, Clone)]
enum Health {
    Unknown,
    Up(WorkerDescription),
    Down(String),
    Refused(String),
}

impl ClusterState {
    /// The workers at `addresses` (`host:port` or `http://host:port`), in that order.
    pub fn new(addresses: &[String]) -> std::result::Result<Arc<Self>, String> {
        if addresses.is_empty() {
            return Err("--workers names no worker; give ADDR,ADDR,… (host:port)".into());
        }
        let mut workers = Vec::new();
        for address in addresses {
            let address = address.trim();
            let text = if address.contains("://") {
                address.to_owned()
            } else {
                format!("http://{address}")
            };
            let url = Url::parse(&text).map_err(|e| {
                format!("--workers: `{address}` is not an address ({e}); expected host:port")
            })?;
            if url.port().is_none() {
                return Err(format!(
                    "--workers: `{address}` names no port; expected host:port"
                ));
            }
            if workers.iter().any(|w: &WorkerEntry| w.url == url) {
                return Err(format!("--workers lists `{address}` twice"));
            }
            workers.push(WorkerEntry {
                url,
                health: Mutex::new(Health::Unknown),
            });
        }
        Ok(Arc::new(Self { workers }))
    }

    pub fn urls(&self) -> Vec<Url> {
        self.workers.iter().map(|w| w.url.clone()).collect()
    }

    /// Why the worker at `url` was refused, when it was.
    pub fn refusal(&self, url: &Url) -> Option<String> {
        let worker = self.workers.iter().find(|w| &w.url == url)?;
        match &*worker.health.lock().unwrap_or_else(|e| e.into_inner()) {
            Health::Refused(why) => Some(why.clone()),
            _ => None,
        }
    }

    fn set_health(&self, index: usize, health: Health) {
        *self.workers[index]
            .health
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = health;
    }

    fn health(&self, index: usize) -> Health {
        self.workers[index]
            .health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A sharded dataset, as the coordinator serves it.
struct Sharded {
    dataset: Arc<Dataset>,
    spec: DatasetSpec,
    shards: Arc<[ShardPlacement]>,
    schema: Option<SchemaRef>,
    registered: bool,
}

/// The coordinator of `accel serve --workers`.
pub struct Coordinator {
    watch: JoinHandle<()>,
}

impl Coordinator {
    /// Checks every worker (waiting up to `wait_for_workers` for each to answer), assigns the
    /// shards, and starts watching. Fails, naming the worker and the difference, when a worker
    /// is of another version, or does not answer in time.
    pub async fn start(
        host: Arc<Host>,
        datasets: &Datasets,
        cluster: Arc<ClusterState>,
        wait_for_workers: Duration,
    ) -> std::result::Result<Self, String> {
        let ours = protocol::this_process(engine_versions(&host));
        let mut sharded = Vec::new();
        for dataset in datasets.all() {
            let Ok(spec) = &dataset.spec else { continue };
            let Some((count, _)) = spec.sharding() else {
                continue;
            };
            let shards: Arc<[ShardPlacement]> = (0..count)
                .map(|index| {
                    let worker = &cluster.workers[index as usize % cluster.workers.len()];
                    ShardPlacement {
                        index,
                        worker: worker.url.clone(),
                        table: shard_table_name(&spec.name, index, count),
                    }
                })
                .collect();
            let refreshed = Arc::clone(&shards);
            dataset.refresh_remotely_with(Arc::new(move || {
                Box::pin(refresh_shards(Arc::clone(&refreshed)))
            }));
            sharded.push(Sharded {
                dataset: Arc::clone(dataset),
                spec: spec.clone(),
                shards,
                schema: None,
                registered: false,
            });
        }
        let engines_used: Vec<String> = sharded
            .iter()
            .filter_map(|s| s.spec.acceleration.as_ref().map(|a| a.engine.clone()))
            .collect();
        for (index, worker) in cluster.workers.iter().enumerate() {
            let deadline = tokio::time::Instant::now() + wait_for_workers;
            let description = loop {
                match describe(&worker.url).await {
                    Ok(description) => break description,
                    Err(e) if tokio::time::Instant::now() >= deadline => {
                        return Err(format!(
                            "worker {} did not answer within {}: {e}; start it with `accel \
                             worker --listen ADDR --plugin-dir DIR`",
                            shown(&worker.url),
                            humantime::format_duration(wait_for_workers)
                        ));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            };
            if let Some(why) = protocol::mismatch(&ours, &description, &engines_used) {
                return Err(format!("worker {} is refused: {why}", shown(&worker.url)));
            }
            cluster.set_health(index, Health::Up(description));
        }
        for dataset in &mut sharded {
            match accelerated_schema(&dataset.spec).await {
                Ok(schema) => dataset.schema = Some(schema),
                Err(e) => dataset.dataset.update(|s| {
                    s.state = DatasetState::Error;
                    s.last_error = Some(plain_message(&e));
                }),
            }
        }
        let watch = tokio::spawn(watch(host, cluster, ours, engines_used, sharded));
        Ok(Self { watch })
    }

    /// Stops watching the workers (they keep their shards).
    pub fn stop(&self) {
        self.watch.abort();
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        self.watch.abort();
    }
}

/// The watch task (see the module doc).
async fn watch(
    host: Arc<Host>,
    cluster: Arc<ClusterState>,
    ours: WorkerDescription,
    engines_used: Vec<String>,
    mut sharded: Vec<Sharded>,
) {
    loop {
        for (index, worker) in cluster.workers.iter().enumerate() {
            let assigned: Vec<ShardAssignment> = sharded
                .iter()
                .filter(|s| s.schema.is_some())
                .flat_map(|s| {
                    s.shards
                        .iter()
                        .filter(|p| p.worker == worker.url)
                        .map(|p| ShardAssignment {
                            dataset: s.spec.clone(),
                            index: p.index,
                        })
                })
                .collect();
            let health = match describe(&worker.url).await {
                Err(e) => Health::Down(e),
                Ok(description) => match protocol::mismatch(&ours, &description, &engines_used) {
                    Some(why) => Health::Refused(why),
                    None if holds_all(&description, &assigned) => Health::Up(description),
                    None => match assign(&worker.url, &assigned).await {
                        Ok(description) => Health::Up(description),
                        Err(e) => Health::Down(e),
                    },
                },
            };
            if let Health::Down(why) | Health::Refused(why) = &health
                && !matches!(cluster.health(index), Health::Down(_) | Health::Refused(_))
            {
                tracing::warn!(worker = %shown(&worker.url), "{why}");
            }
            cluster.set_health(index, health);
        }
        for dataset in &mut sharded {
            update_status(&host, &cluster, dataset);
        }
        tokio::time::sleep(WATCH_INTERVAL).await;
    }
}

/// Whether `description` holds every assigned shard (same dataset, index and count).
fn holds_all(description: &WorkerDescription, assigned: &[ShardAssignment]) -> bool {
    assigned.iter().all(|a| {
        description.shards.iter().any(|held| {
            held.dataset == a.dataset.name
                && held.index == a.index
                && Some(held.count) == a.dataset.sharding().map(|(count, _)| count)
        })
    }) && description.shards.len() == assigned.len()
}

/// A sharded dataset's status from its shards; registers its table once all have loaded.
fn update_status(host: &Host, cluster: &ClusterState, dataset: &mut Sharded) {
    let Some(schema) = dataset.schema.clone() else {
        return;
    };
    let mut rows = 0u64;
    let mut loaded = true;
    let mut problems = Vec::new();
    for placement in dataset.shards.iter() {
        let index = cluster
            .workers
            .iter()
            .position(|w| w.url == placement.worker)
            .expect("placed on a listed worker");
        match cluster.health(index) {
            Health::Up(description) => {
                match description
                    .shards
                    .iter()
                    .find(|h| h.table == placement.table)
                {
                    Some(held) => {
                        loaded &= held.loaded;
                        rows += held.rows.unwrap_or(0);
                        if let Some(error) = &held.last_error {
                            problems.push(format!(
                                "shard {} on {}: {error}",
                                placement.index,
                                shown(&placement.worker)
                            ));
                        }
                    }
                    None => loaded = false,
                }
            }
            Health::Down(why) => problems.push(format!(
                "shard {} is on worker {}, which is down: {why}",
                placement.index,
                shown(&placement.worker)
            )),
            Health::Refused(why) => problems.push(format!(
                "shard {} is on worker {}, which is refused: {why}",
                placement.index,
                shown(&placement.worker)
            )),
            Health::Unknown => loaded = false,
        }
    }
    if loaded && problems.is_empty() && !dataset.registered {
        let table = ShardedTable {
            dataset: dataset.spec.name.clone(),
            schema,
            shards: Arc::clone(&dataset.shards),
            hashed: match dataset.spec.sharding() {
                Some((_, ShardBy::Hash { column })) => Some(column.clone()),
                _ => None,
            },
        };
        match host.context().register_table(
            TableReference::bare(dataset.spec.name.as_str()),
            Arc::new(table),
        ) {
            Ok(_) => {
                dataset.registered = true;
                tracing::info!(
                    dataset = %dataset.spec.name,
                    shards = dataset.shards.len(),
                    rows,
                    "sharded dataset served"
                );
            }
            Err(e) => problems.push(plain_message(&e)),
        }
    }
    dataset.dataset.update(|s| {
        if !problems.is_empty() {
            s.state = DatasetState::Error;
            s.last_error = Some(problems.join("; "));
        } else if dataset.registered {
            if s.state != DatasetState::Ready {
                s.last_refresh_end = Some(SystemTime::now());
            }
            s.state = DatasetState::Ready;
            s.last_error = None;
        }
        s.loaded = dataset.registered;
        if loaded {
            s.rows = Some(rows);
        }
    });
}

fn shown(url: &Url) -> &str {
    url.as_str().trim_end_matches('/')
}

async fn client(url: &Url) -> std::result::Result<FlightClient, String> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .map_err(|e| e.to_string())?
        .connect_timeout(DESCRIBE_TIMEOUT)
        .connect()
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    Ok(FlightClient::new(channel))
}

async fn action<T: serde::de::DeserializeOwned>(
    url: &Url,
    kind: &str,
    body: Vec<u8>,
) -> std::result::Result<T, String> {
    let mut client = client(url).await?;
    let answers: Vec<_> = client
        .do_action(Action::new(kind, body))
        .await
        .map_err(|e| format!("{kind}: {e}"))?
        .try_collect()
        .await
        .map_err(|e| format!("{kind}: {e}"))?;
    let answer = answers
        .first()
        .ok_or_else(|| format!("{kind}: the worker answered nothing"))?;
    serde_json::from_slice(answer)
        .map_err(|e| format!("{kind}: unreadable answer ({e}); is it an accel worker?"))
}

/// Refreshes every shard now, each by its worker, and adds up what they did.
async fn refresh_shards(
    shards: Arc<[ShardPlacement]>,
) -> std::result::Result<RefreshSummary, String> {
    let refreshes = shards.iter().map(|shard| async move {
        let body = serde_json::to_vec(&RefreshShard {
            table: shard.table.clone(),
        })
        .map_err(|e| e.to_string())?;
        action::<RefreshSummary>(&shard.worker, REFRESH, body)
            .await
            .map_err(|e| {
                format!(
                    "shard {} on worker {}: {e}",
                    shard.index,
                    shown(&shard.worker)
                )
            })
    });
    let mut total: Option<RefreshSummary> = None;
    let mut failures = Vec::new();
    for outcome in futures::future::join_all(refreshes).await {
        match outcome {
            Ok(summary) => {
                let sum = total.get_or_insert(RefreshSummary {
                    mode: summary.mode,
                    rows_written: 0,
                    rows_held: 0,
                });
                sum.rows_written += summary.rows_written;
                sum.rows_held += summary.rows_held;
            }
            Err(e) => failures.push(e),
        }
    }
    match (failures.is_empty(), total) {
        (true, Some(total)) => Ok(total),
        _ => Err(failures.join("; ")),
    }
}

async fn describe(url: &Url) -> std::result::Result<WorkerDescription, String> {
    tokio::time::timeout(DESCRIBE_TIMEOUT, action(url, DESCRIBE, Vec::new()))
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {DESCRIBE_TIMEOUT:?}")))
}

async fn assign(
    url: &Url,
    assignments: &[ShardAssignment],
) -> std::result::Result<WorkerDescription, String> {
    let body = serde_json::to_vec(assignments).map_err(|e| e.to_string())?;
    action(url, ASSIGN, body).await
}

/// A sharded dataset as a table of the coordinator: its scans are [`ShardScanExec`]s.
#[derive(Debug)]
pub struct ShardedTable {
    dataset: String,
    schema: SchemaRef,
    shards: Arc<[ShardPlacement]>,
    /// The column of `shard_by: hash(column)`.
    hashed: Option<String>,
}

impl ShardedTable {
    pub fn dataset(&self) -> &str {
        &self.dataset
    }

    /// The shards a scan with `filters` (on this table's columns) must read: under
    /// `shard_by: hash(column)`, a `column = literal` filter needs only the literal's shard.
    /// Not for float columns, whose `=` holds between values hashed apart (0.0 and -0.0).
    pub fn shards_for(&self, filters: &[Expr]) -> Arc<[ShardPlacement]> {
        let all = Arc::clone(&self.shards);
        let Some(column) = &self.hashed else {
            return all;
        };
        let Ok(field) = self.schema.field_with_name(column) else {
            return all;
        };
        if field.data_type().is_floating() {
            return all;
        }
        for filter in filters {
            for conjunct in split_conjunction(filter) {
                let Expr::BinaryExpr(BinaryExpr {
                    left,
                    op: Operator::Eq,
                    right,
                }) = conjunct
                else {
                    continue;
                };
                let value = match (left.as_ref(), right.as_ref()) {
                    (Expr::Column(c), Expr::Literal(value, _))
                    | (Expr::Literal(value, _), Expr::Column(c))
                        if &c.name == column =>
                    {
                        value
                    }
                    _ => continue,
                };
                if value.is_null() || &value.data_type() != field.data_type() {
                    continue;
                }
                let count = self.shards.len() as u32;
                if let Ok(shard) = shard_of_value(value, count) {
                    return self
                        .shards
                        .iter()
                        .filter(|p| p.index == shard)
                        .cloned()
                        .collect();
                }
            }
        }
        all
    }
}

#[async_trait]
impl TableProvider for ShardedTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Filters go to each shard's engine, which may apply them only in part; DataFusion
    /// applies them again on the worker, so every answer is DataFusion's.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = match projection {
            Some(columns) => Arc::new(self.schema.project(columns)?),
            None => Arc::clone(&self.schema),
        };
        Ok(Arc::new(ShardScanExec::new(
            self.dataset.clone(),
            self.shards_for(filters),
            projection.cloned(),
            filters.to_vec(),
            limit,
            schema,
        )))
    }
}
