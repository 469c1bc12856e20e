//! The host: what runs the parts together. [`Host::start`] admits the libraries in the plugin
//! directories ([`admit`]: the library pipeline composed with the engine registry) and builds
//! the session ([`session`]); [`Host::sql`] serves statements on it; [`reload`] admits new or
//! changed libraries while serving, hands tables over and retires unused generations;
//! [`watch`] triggers reloads when the plugin directories change.
//!
//! Start-up never fails because of a bad library: each problem (unreadable file, incompatible
//! metadata, failed load, duplicate engine) is recorded in the [`StartupReport`] as a typed
//! record with the file, the stage, the cause and the fix; the library is skipped, and every
//! other engine is served.
//!
//! The top of the library: may depend on every other folder except [`crate::cli`]; nothing
//! but the CLI depends on it.

pub mod admit;
pub mod reload;
pub mod session;
pub mod watch;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::plan_err;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{DdlStatement, LogicalPlan};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::DFParser;

use crate::engine::registry::{EngineRegistry, Origin};
use crate::federation::{FederationSwitch, federation_setting};
use crate::library::discover::{PLUGIN_PATH_VAR, plugin_dirs};
use crate::library::trace::LibraryRecord;
use crate::library::trust::PermissionPolicy;
use crate::table::factory::EngineTables;
use crate::table::managed::ManagedTable;
use admit::admit_libraries;
use session::session_context;

/// How to start a host.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// Directories given explicitly, searched first.
    pub plugin_dirs: Vec<PathBuf>,
    /// Also search the directories in `ACCEL_PLUGIN_PATH`.
    pub use_plugin_path_var: bool,
    /// Where engines keep files of tables given no explicit location.
    pub data_dir: PathBuf,
    /// Permission checks on plugin files (the allow-list applies either way).
    pub permission_policy: PermissionPolicy,
    /// Longest an engine's `init` may take before table creation fails.
    pub init_timeout: Duration,
}

impl HostOptions {
    /// The plugin directories to search, in order: the explicit ones, then
    /// `ACCEL_PLUGIN_PATH`'s when it is used.
    pub fn search_dirs(&self) -> Vec<PathBuf> {
        let var = self
            .use_plugin_path_var
            .then(|| std::env::var(PLUGIN_PATH_VAR).ok())
            .flatten();
        plugin_dirs(&self.plugin_dirs, var.as_deref())
    }
}

impl Default for HostOptions {
    fn default() -> Self {
        Self {
            plugin_dirs: Vec::new(),
            use_plugin_path_var: true,
            data_dir: PathBuf::from("accel-data"),
            permission_policy: PermissionPolicy::Strict,
            init_timeout: Duration::from_secs(60),
        }
    }
}

/// What happened at start-up.
#[derive(Debug, Default)]
pub struct StartupReport {
    /// Every plugin directory searched, in order.
    pub searched: Vec<PathBuf>,
    /// Libraries loaded.
    pub loaded: Vec<PathBuf>,
    /// Every library or entry that was not loaded: stage, reason and fix.
    pub problems: Vec<LibraryRecord>,
}

/// A running host.
pub struct Host {
    pub registry: Arc<EngineRegistry>,
    pub report: StartupReport,
    tables: Arc<EngineTables>,
    context: SessionContext,
    options: HostOptions,
    /// Tables kept on an old generation and libraries refused at the last reload.
    last_reload_attention: std::sync::Mutex<Vec<String>>,
    /// Held by a reload from start to end: reloads never overlap. `true` once the host has
    /// shut down: no reload runs after that.
    reload_lock: tokio::sync::Mutex<bool>,
}

impl Host {
    /// Runs the pipeline and builds the session.
    pub fn start(options: &HostOptions) -> Self {
        Self::start_with_session(options, None)
    }

    /// As [`Self::start`], with `layer` applied to the session last.
    pub fn start_with_session(options: &HostOptions, layer: Option<session::SessionLayer>) -> Self {
        let registry = Arc::new(EngineRegistry::with_builtins());
        let admitted = admit_libraries(&registry, options);
        registry.set_refused(admitted.records.clone());
        let tables = Arc::new(EngineTables::new(
            Arc::clone(&registry),
            options.data_dir.clone(),
            options.init_timeout,
        ));
        let context = session_context(&tables, layer);
        let report = StartupReport {
            searched: admitted.searched,
            loaded: admitted
                .generations
                .iter()
                .filter_map(|g| match &g.origin {
                    Origin::Plugin { path, .. } => Some(path.clone()),
                    Origin::BuiltIn => None,
                })
                .collect(),
            problems: admitted.records,
        };
        Self {
            registry,
            report,
            tables,
            context,
            options: options.clone(),
            last_reload_attention: std::sync::Mutex::default(),
            reload_lock: tokio::sync::Mutex::default(),
        }
    }

    /// What the last reload could not do: tables kept on an old generation (and why) and
    /// libraries refused.
    pub fn last_reload_attention(&self) -> Vec<String> {
        self.last_reload_attention
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_last_reload_attention(&self, lines: Vec<String>) {
        *self
            .last_reload_attention
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = lines;
    }

    /// The tables created through engines.
    pub fn tables(&self) -> Vec<Arc<ManagedTable>> {
        self.tables.tables.all()
    }

    pub(crate) fn engine_tables(&self) -> &Arc<EngineTables> {
        &self.tables
    }

    pub(crate) fn options(&self) -> &HostOptions {
        &self.options
    }

    pub fn context(&self) -> &SessionContext {
        &self.context
    }

    /// Runs `;`-separated statements in order and returns the result of the last one.
    pub async fn sql(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let statements = DFParser::parse_sql(sql)?;
        if statements.is_empty() {
            return Err(DataFusionError::Plan("no SQL statement given".to_owned()));
        }
        let mut last = Vec::new();
        for statement in statements {
            if let Some(on) = federation_setting(&statement.to_string()) {
                self.federation_switch().set(on?);
                last = Vec::new();
                continue;
            }
            let plan = self.context.state().statement_to_plan(statement).await?;
            self.check_engine_exists(&plan)?;
            last = self
                .context
                .execute_logical_plan(plan)
                .await?
                .collect()
                .await?;
        }
        Ok(last)
    }

    /// The session's subplan-pushdown switch (`SET accel.federation = …`).
    pub fn federation_switch(&self) -> Arc<FederationSwitch> {
        self.context
            .state()
            .config()
            .get_extension::<FederationSwitch>()
            .unwrap_or_default()
    }

    /// A `CREATE EXTERNAL TABLE` naming an unknown engine fails with the list of engines and
    /// of directories searched, instead of DataFusion's bare "Unable to find factory".
    fn check_engine_exists(&self, plan: &LogicalPlan) -> Result<()> {
        let LogicalPlan::Ddl(DdlStatement::CreateExternalTable(cmd)) = plan else {
            return Ok(());
        };
        let state = self.context.state();
        if state
            .table_factories()
            .contains_key(&cmd.file_type.to_uppercase())
        {
            return Ok(());
        }
        let searched = if self.report.searched.is_empty() {
            "no plugin directory (use --plugin-dir DIR or ACCEL_PLUGIN_PATH)".to_owned()
        } else {
            self.report
                .searched
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let name = cmd.file_type.to_lowercase();
        let refused = self.registry.refused_about(&name);
        Err(DataFusionError::Plan(format!(
            "no engine named `{name}`: engines loaded: {}; plugin directories searched: \
             {searched}{refused}",
            self.registry.names().join(", "),
        )))
    }

    /// Writes a consistent copy of a file-mode table's storage to `dest`: opens the table with
    /// `create` (its `CREATE EXTERNAL TABLE` statement), has the engine flush it (shutdown
    /// checkpoints), and copies the file through a temporary name. Returns the file copied.
    /// Restore it with `OPTIONS ('snapshot' 'DEST')` on a table whose file does not exist.
    pub async fn snapshot(&self, create: &str, dest: &Path) -> Result<PathBuf> {
        let mut statements = DFParser::parse_sql(create)?;
        let (Some(statement), true) = (statements.pop_front(), statements.is_empty()) else {
            return plan_err!("snapshot takes one CREATE EXTERNAL TABLE statement");
        };
        let plan = self.context.state().statement_to_plan(statement).await?;
        let LogicalPlan::Ddl(DdlStatement::CreateExternalTable(cmd)) = &plan else {
            return plan_err!(
                "snapshot takes a CREATE EXTERNAL TABLE statement, found {}",
                plan.display()
            );
        };
        let table_name = cmd.name.to_string();
        let name = cmd.file_type.to_lowercase();
        self.check_engine_exists(&plan)?;
        self.context
            .execute_logical_plan(plan.clone())
            .await?
            .collect()
            .await?;
        let Some(table) = self.tables().into_iter().find(|t| t.name == table_name) else {
            return plan_err!("table `{table_name}` was not created by an engine");
        };
        let Some(file) = table.file() else {
            return plan_err!(
                "table `{table_name}` of engine `{name}` is not stored in one file; only \
                 file-mode tables can be snapshotted"
            );
        };
        table.generation().await.accelerator.shutdown().await?;
        let temporary = dest.with_extension("snapshotting");
        let copied =
            std::fs::copy(&file, &temporary).and_then(|_| std::fs::rename(&temporary, dest));
        copied.map_err(|e| {
            DataFusionError::Execution(format!(
                "copying {} to {}: {e}",
                file.display(),
                dest.display()
            ))
        })?;
        Ok(file)
    }

    /// Shuts every engine down; returns the failures. Waits for a reload in progress, and no
    /// reload starts after it.
    pub async fn shutdown(&self) -> Vec<String> {
        let mut reloads = self.reload_lock.lock().await;
        *reloads = true;
        self.registry.shutdown().await
    }
}
