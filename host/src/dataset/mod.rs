//! Datasets: the sources a config declares, accelerated in engines and kept fresh. Each
//! dataset gets one task ([`schedule`]) that creates its table, loads it, and refreshes it
//! every `refresh_check_interval` (± jitter) or when asked ([`Datasets::refresh`]), retrying
//! failures with backoff while the previous rows stay served; [`refresh`] is one refresh,
//! [`record`] what a file-mode dataset remembers across restarts, [`status`] and
//! [`system_tables`] what users see (`accel.datasets`, `accel.engines`), [`progress`] the
//! counters of a running load.
//!
//! Builds on the host (its session, engines and tables) and on [`crate::source`] and
//! [`crate::config`]; nothing below it depends on datasets. Must not reach into engines or
//! libraries directly: tables are created and written through the session, like any client's.

pub mod progress;
pub mod record;
pub mod refresh;
pub mod schedule;
pub mod status;
pub mod system_tables;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::{DFSchema, TableReference};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::CreateExternalTable;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::Host;
use crate::config::{AccelerationMode, Config, ConfigProblem, DatasetSpec, RefreshMode};
use crate::table::factory::MEMORY_LOCATION;
pub use refresh::RefreshSummary;
pub use status::{DatasetState, DatasetStatus};

/// What a refresh request waits for: the summary, or the error as text.
pub(crate) type RefreshWaiter = oneshot::Sender<std::result::Result<RefreshSummary, String>>;

/// How a dataset held elsewhere is refreshed (a coordinator's sharded dataset: by the workers
/// holding its shards).
pub type RemoteRefresh = Arc<
    dyn Fn() -> futures::future::BoxFuture<'static, std::result::Result<RefreshSummary, String>>
        + Send
        + Sync,
>;

/// One declared dataset.
pub struct Dataset {
    pub name: String,
    /// `from`, as written.
    pub source: String,
    /// The dataset, or why the config refused it.
    pub spec: std::result::Result<DatasetSpec, ConfigProblem>,
    status: Mutex<DatasetStatus>,
    /// Requests waiting for the next refresh to finish.
    waiters: Mutex<Vec<RefreshWaiter>>,
    /// Wakes the dataset's task for a requested refresh (capacity 1: requests made while one
    /// is queued join it).
    wake: mpsc::Sender<()>,
    wake_receiver: Mutex<Option<mpsc::Receiver<()>>>,
    /// Set when the dataset is held elsewhere: a refresh asks there.
    remote_refresh: std::sync::OnceLock<RemoteRefresh>,
}

impl Dataset {
    fn new(name: String, spec: std::result::Result<DatasetSpec, ConfigProblem>) -> Self {
        let (wake, wake_receiver) = mpsc::channel(1);
        let source = match &spec {
            Ok(spec) => spec.from.to_string(),
            Err(_) => String::new(),
        };
        let mut status = DatasetStatus::default();
        if let Err(problem) = &spec {
            status.state = DatasetState::Error;
            status.last_error = Some(problem.to_string());
        }
        Self {
            name,
            source,
            spec,
            status: Mutex::new(status),
            waiters: Mutex::default(),
            wake,
            wake_receiver: Mutex::new(Some(wake_receiver)),
            remote_refresh: std::sync::OnceLock::new(),
        }
    }

    pub fn status(&self) -> DatasetStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn update(&self, change: impl FnOnce(&mut DatasetStatus)) {
        change(&mut self.status.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// The acceleration, when the dataset is read and accelerated.
    pub fn accelerated(&self) -> Option<&DatasetSpec> {
        self.spec
            .as_ref()
            .ok()
            .filter(|s| s.acceleration.as_ref().is_some_and(|a| a.enabled))
    }

    /// Asks for a refresh; the receiver gets the outcome of the next refresh that starts after
    /// this call. A request made while one is already queued shares that refresh.
    pub fn request_refresh(
        &self,
    ) -> std::result::Result<oneshot::Receiver<std::result::Result<RefreshSummary, String>>, String>
    {
        if let Err(problem) = &self.spec {
            return Err(format!("dataset `{}` was not loaded: {problem}", self.name));
        }
        if self.accelerated().is_none() {
            return Err(format!(
                "dataset `{}` is not accelerated (no enabled acceleration block): its queries \
                 read the source directly, there is nothing to refresh",
                self.name
            ));
        }
        if let Some(remote) = self.remote_refresh.get() {
            let (sender, receiver) = oneshot::channel();
            let refresh = remote();
            tokio::spawn(async move {
                let _ = sender.send(refresh.await);
            });
            return Ok(receiver);
        }
        if let Ok(spec) = &self.spec
            && let Some((shards, _)) = spec.sharding()
        {
            return Err(format!(
                "dataset `{}` is split into {shards} shards held by workers, and no coordinator \
                 serves it here (start `accel serve --workers ADDR,…`)",
                self.name
            ));
        }
        let (sender, receiver) = oneshot::channel();
        self.waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(sender);
        // Full: a wake-up is already queued, and it will serve this request too. Closed: the
        // task has ended (shutdown), nothing will answer the requests left.
        if let Err(mpsc::error::TrySendError::Closed(())) = self.wake.try_send(()) {
            for waiter in self.take_waiters() {
                let _ = waiter.send(Err("accel is shutting down".to_owned()));
            }
        }
        Ok(receiver)
    }

    /// Makes refresh requests ask `refresh` (the dataset is held elsewhere).
    pub fn refresh_remotely_with(&self, refresh: RemoteRefresh) {
        let _ = self.remote_refresh.set(refresh);
    }

    fn take_waiters(&self) -> Vec<RefreshWaiter> {
        std::mem::take(&mut self.waiters.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A dataset's row in `accel.datasets` and `accel datasets`.
#[derive(Debug, Clone)]
pub struct DatasetRow {
    pub name: String,
    pub source: String,
    pub engine: Option<String>,
    pub engine_version: Option<String>,
    pub mode: Option<String>,
    pub refresh_mode: Option<String>,
    pub status: DatasetStatus,
}

/// Every dataset of a config, with its task.
pub struct Datasets {
    host: Arc<Host>,
    all: Vec<Arc<Dataset>>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Datasets {
    /// Registers the system tables, checks each dataset's engine, and starts one task per
    /// dataset (which loads it). Returns at once: [`Self::wait_loaded`] waits for the loads.
    /// A sharded dataset is refused here: only a coordinator ([`Self::start_coordinating`])
    /// serves one.
    pub fn start(host: Arc<Host>, config: Option<&Config>) -> Result<Arc<Self>> {
        Self::start_from_config(host, config, false)
    }

    /// As [`Self::start`], for a coordinator of workers: sharded datasets get no task here
    /// (their shards are loaded by the workers); they stay `initializing` until the
    /// coordinator updates their status.
    pub fn start_coordinating(host: Arc<Host>, config: Option<&Config>) -> Result<Arc<Self>> {
        Self::start_from_config(host, config, true)
    }

    fn start_from_config(
        host: Arc<Host>,
        config: Option<&Config>,
        coordinating: bool,
    ) -> Result<Arc<Self>> {
        let mut all = Vec::new();
        for entry in config.map(|c| c.datasets.as_slice()).unwrap_or_default() {
            let config = config.expect("entries come from it");
            let spec = entry.spec.clone().and_then(|spec| {
                let spec = check_engine(&host, config, entry.index, spec)?;
                match spec.sharding() {
                    Some((shards, _)) if !coordinating => Err(config.problem(
                        entry.index,
                        "acceleration.shards",
                        format!(
                            "dataset `{}` is split into {shards} shards, which workers hold: \
                             serve it with `accel serve --workers ADDR,…` (see `accel worker`), \
                             or remove `shards` and `shard_by`",
                            spec.name
                        ),
                    )),
                    _ => Ok(spec),
                }
            });
            all.push(Arc::new(Dataset::new(entry.name.clone(), spec)));
        }
        let datasets = Self::start_tasks(&host, all, |spec| spec.sharding().is_none());
        system_tables::register(host.context(), &datasets, &host)?;
        Ok(datasets)
    }

    /// Starts datasets given directly (a worker's shards, each a dataset of its own): no
    /// system tables, no config file.
    pub fn start_specs(host: Arc<Host>, specs: Vec<DatasetSpec>) -> Arc<Self> {
        let all = specs
            .into_iter()
            .map(|spec| Arc::new(Dataset::new(spec.name.clone(), Ok(spec))))
            .collect();
        Self::start_tasks(&host, all, |_| true)
    }

    /// One task for each dataset that was read and that `runs_here` accepts.
    fn start_tasks(
        host: &Arc<Host>,
        all: Vec<Arc<Dataset>>,
        runs_here: impl Fn(&DatasetSpec) -> bool,
    ) -> Arc<Self> {
        let (stop, _) = watch::channel(false);
        let datasets = Arc::new(Self {
            host: Arc::clone(host),
            all,
            stop,
            tasks: Mutex::default(),
        });
        let mut tasks = Vec::new();
        for dataset in &datasets.all {
            if !dataset.spec.as_ref().is_ok_and(&runs_here) {
                continue;
            }
            let wake = dataset
                .wake_receiver
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            let Some(wake) = wake else { continue };
            tasks.push(tokio::spawn(schedule::run(
                Arc::clone(dataset),
                Arc::clone(host),
                datasets.stop.subscribe(),
                wake,
            )));
        }
        *datasets.tasks.lock().unwrap_or_else(|e| e.into_inner()) = tasks;
        datasets
    }

    pub fn all(&self) -> &[Arc<Dataset>] {
        &self.all
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Dataset>> {
        self.all
            .iter()
            .find(|d| d.name == name)
            .or_else(|| self.all.iter().find(|d| d.name.eq_ignore_ascii_case(name)))
    }

    /// Waits until every dataset has been served once or has failed (its error is in its
    /// status), at most `limit`.
    pub async fn wait_loaded(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let settled = self.all.iter().all(|d| {
                let status = d.status();
                status.loaded
                    || matches!(status.state, DatasetState::Error | DatasetState::Disabled)
            });
            if settled {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The error for a dataset name that is not in the config, listing the ones that are.
    pub fn unknown(&self, name: &str) -> String {
        let names: Vec<&str> = self.all.iter().map(|d| d.name.as_str()).collect();
        format!(
            "no dataset named `{name}`; datasets: {}",
            if names.is_empty() {
                "none (give a config with --config FILE or ACCEL_CONFIG)".to_owned()
            } else {
                names.join(", ")
            }
        )
    }

    /// Refreshes `name` now (after the refresh running, if one is) and waits for the outcome.
    pub async fn refresh(&self, name: &str) -> std::result::Result<RefreshSummary, String> {
        let Some(dataset) = self.get(name) else {
            return Err(self.unknown(name));
        };
        let outcome = dataset.request_refresh()?;
        outcome
            .await
            .unwrap_or_else(|_| Err("the dataset's task stopped (accel is shutting down)".into()))
    }

    /// Every dataset's row, as the status table shows it.
    pub async fn rows(&self) -> Vec<DatasetRow> {
        let mut rows = Vec::new();
        let tables = self.host.tables();
        for dataset in &self.all {
            let acceleration = dataset
                .spec
                .as_ref()
                .ok()
                .and_then(|s| s.acceleration.as_ref())
                .filter(|a| a.enabled);
            let sharded = dataset.spec.as_ref().is_ok_and(|s| s.sharding().is_some());
            let engine_version = match tables.iter().find(|t| t.name == dataset.name) {
                Some(table) => Some(table.generation().await.version.to_string()),
                // Its shards are held by workers of this engine version (they are checked).
                None if sharded => acceleration
                    .and_then(|a| self.host.registry.get(&a.engine.to_lowercase()))
                    .map(|g| g.version.to_string()),
                None => None,
            };
            rows.push(DatasetRow {
                name: dataset.name.clone(),
                source: dataset.source.clone(),
                engine: acceleration.map(|a| a.engine.clone()),
                engine_version,
                mode: acceleration.map(|a| match a.mode {
                    AccelerationMode::Memory => "memory".to_owned(),
                    AccelerationMode::File => "file".to_owned(),
                }),
                refresh_mode: acceleration.map(|a| a.refresh_mode.to_string()),
                status: dataset.status(),
            });
        }
        rows
    }

    /// Stops scheduling; a running refresh commits or rolls back before its task ends (each
    /// task is waited for at most `limit`).
    pub async fn shutdown(&self, limit: Duration) {
        let _ = self.stop.send(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            if tokio::time::timeout(limit, task).await.is_err() {
                tracing::warn!("a dataset task did not stop within {limit:?}");
            }
        }
    }
}

/// The dataset's engine must be loaded; an error names the config line of `engine`.
fn check_engine(
    host: &Host,
    config: &Config,
    index: usize,
    spec: DatasetSpec,
) -> std::result::Result<DatasetSpec, ConfigProblem> {
    let Some(acceleration) = spec.acceleration.as_ref().filter(|a| a.enabled) else {
        return Ok(spec);
    };
    let engine = acceleration.engine.to_lowercase();
    let names = host.registry.names();
    if names.contains(&engine) {
        return Ok(spec);
    }
    let refused = host.registry.refused_about(&engine);
    Err(config.problem(
        index,
        "acceleration.engine",
        format!(
            "no engine named `{engine}` is loaded (engines loaded: {}); add its library to a \
             plugin directory (plugin_dirs, --plugin-dir or ACCEL_PLUGIN_PATH){refused}",
            names.join(", ")
        ),
    ))
}

/// Where a file-mode dataset is stored: its engine's `<engine>_file` param, else
/// `<data dir>/<name>.<engine>` (or the engine's first file extension).
pub(crate) fn data_file(host: &Host, spec: &DatasetSpec) -> Option<PathBuf> {
    let acceleration = spec.acceleration.as_ref()?;
    if acceleration.mode != AccelerationMode::File {
        return None;
    }
    let engine = acceleration.engine.to_lowercase();
    if let Some(file) = acceleration.params.get(&format!("{engine}_file")) {
        return Some(PathBuf::from(file));
    }
    let generation = host.registry.choose(&engine, None)?;
    let extensions = generation.accelerator.valid_file_extensions();
    let extension = if extensions.is_empty() || extensions.contains(&engine) {
        engine
    } else {
        extensions[0].clone()
    };
    Some(
        host.options()
            .data_dir
            .join(format!("{}.{extension}", spec.name)),
    )
}

/// Creates the accelerated table of `spec` with `schema` through the engine's table factory,
/// as `CREATE EXTERNAL TABLE <name> (…) STORED AS <engine> LOCATION … OPTIONS (…)` would, but
/// without registering it: the dataset's task registers it once it holds its first load, so no
/// query ever reads a dataset that is still loading as an empty table.
pub(crate) async fn create_table(
    host: &Host,
    spec: &DatasetSpec,
    schema: SchemaRef,
) -> Result<Arc<dyn TableProvider>> {
    let Some(acceleration) = spec.acceleration.as_ref() else {
        return Err(DataFusionError::Internal(format!(
            "dataset `{}` is not accelerated",
            spec.name
        )));
    };
    let mut options: HashMap<String, String> = acceleration
        .params
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(version) = &acceleration.engine_version {
        options.insert("engine_version".into(), version.clone());
    }
    if let Some(key) = &acceleration.primary_key {
        options.insert("primary_key".into(), key.as_option());
    }
    let pairs = |map: &std::collections::BTreeMap<String, String>| {
        map.iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect::<Vec<_>>()
            .join(";")
    };
    if !acceleration.on_conflict.is_empty() {
        options.insert("on_conflict".into(), pairs(&acceleration.on_conflict));
    }
    if !acceleration.indexes.is_empty() {
        options.insert("indexes".into(), pairs(&acceleration.indexes));
    }
    let location = match data_file(host, spec) {
        Some(file) => {
            if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| {
                    DataFusionError::Execution(format!(
                        "dataset `{}`: cannot create {}: {e}",
                        spec.name,
                        parent.display()
                    ))
                })?;
            }
            file.display().to_string()
        }
        None => MEMORY_LOCATION.to_owned(),
    };
    let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
    let cmd = CreateExternalTable::builder(
        TableReference::bare(spec.name.as_str()),
        location,
        acceleration.engine.to_lowercase(),
        Arc::new(df_schema),
    )
    .with_options(options)
    .with_partition_cols(acceleration.partition_by.clone())
    .build();
    let state = host.context().state();
    let factory = state
        .table_factories()
        .get(&cmd.file_type.to_uppercase())
        .cloned()
        .ok_or_else(|| {
            DataFusionError::Plan(format!(
                "dataset `{}`: no engine named `{}` is loaded",
                spec.name, cmd.file_type
            ))
        })?;
    factory.create(&state, &cmd).await
}

/// How one dataset is refreshed: its refresh mode, except that a first load is full.
pub(crate) fn refresh_mode(spec: &DatasetSpec) -> RefreshMode {
    spec.acceleration
        .as_ref()
        .map(|a| a.refresh_mode)
        .unwrap_or_default()
}

/// An error as a user reads it: DataFusion's category prefixes ("Error during planning: ")
/// dropped, the message itself kept whole.
pub fn plain_message(error: &DataFusionError) -> String {
    const PREFIXES: [&str; 3] = [
        "Error during planning: ",
        "Execution error: ",
        "External error: ",
    ];
    let mut text = error.to_string();
    for prefix in PREFIXES {
        text = text.replace(prefix, "");
    }
    text
}
