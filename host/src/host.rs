//! The host: runs the pipeline discover → check → load → register once at start-up, then
//! serves SQL on a session whose table factories are the registered engines.
//!
//! Start-up never fails because of a bad library: each problem (unreadable file, incompatible
//! metadata, failed load, duplicate engine) is recorded in the [`StartupReport`] with the file,
//! the cause and the fix, the library is skipped, and every other engine is served.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::plan_err;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{DdlStatement, LogicalPlan};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::DFParser;

use crate::check::{CheckedLibrary, check_as};
use crate::discover::{PLUGIN_PATH_VAR, discover, plugin_dirs};
use crate::federation::{FederationSwitch, federation_setting};
use crate::fingerprint::Fingerprint;
use crate::load::{load, private_copy};
use crate::managed_table::ManagedTable;
use crate::plugin_accelerator::PluginAccelerator;
use crate::registry::{EngineRegistry, FileIdentity, Origin, RegisteredEngine};
use crate::serve::{Serving, Tables, session_context};
use crate::trust::{PermissionPolicy, check_trust};

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
    /// Every library or entry that was not loaded, with the reason.
    pub problems: Vec<String>,
}

/// A running host.
pub struct Host {
    pub registry: Arc<EngineRegistry>,
    pub report: StartupReport,
    serving: Arc<Serving>,
    context: SessionContext,
    options: HostOptions,
    /// Tables kept on an old generation and libraries refused at the last reload.
    last_reload_attention: std::sync::Mutex<Vec<String>>,
}

/// Libraries a pass of the pipeline loaded, and the ones it refused.
#[derive(Debug, Default)]
pub struct Admitted {
    pub searched: Vec<PathBuf>,
    pub generations: Vec<Arc<RegisteredEngine>>,
    /// Files skipped because a library with the same content is loaded already.
    pub unchanged: Vec<PathBuf>,
    pub problems: Vec<String>,
    /// Fingerprints started, still being computed in the background perhaps.
    pub fingerprints: Vec<Fingerprint>,
}

impl Host {
    /// Runs the pipeline and builds the session.
    pub fn start(options: &HostOptions) -> Self {
        let registry = Arc::new(EngineRegistry::with_builtins());
        let admitted = admit_libraries(&registry, options);
        let serving = Arc::new(Serving {
            registry: Arc::clone(&registry),
            tables: Tables::default(),
            data_dir: options.data_dir.clone(),
            init_timeout: options.init_timeout,
        });
        let context = session_context(&serving);
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
            problems: admitted.problems,
        };
        Self {
            registry,
            report,
            serving,
            context,
            options: options.clone(),
            last_reload_attention: std::sync::Mutex::default(),
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
        self.serving.tables.all()
    }

    pub(crate) fn serving(&self) -> &Arc<Serving> {
        &self.serving
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
        Err(DataFusionError::Plan(format!(
            "no engine named `{}`: engines loaded: {}; plugin directories searched: {searched}",
            cmd.file_type.to_lowercase(),
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

    /// Shuts every engine down; returns the failures.
    pub async fn shutdown(&self) -> Vec<String> {
        self.registry.shutdown().await
    }
}

/// Steps 1–4 for every library in the plugin directories that is not loaded yet (by content):
/// discover, trust and check its private copy, load it, register it as a new generation.
pub fn admit_libraries(registry: &EngineRegistry, options: &HostOptions) -> Admitted {
    let var = options
        .use_plugin_path_var
        .then(|| std::env::var(PLUGIN_PATH_VAR).ok())
        .flatten();
    let dirs = plugin_dirs(&options.plugin_dirs, var.as_deref());
    let found = discover(&dirs);
    let mut admitted = Admitted {
        searched: found.searched,
        problems: found.skipped.iter().map(ToString::to_string).collect(),
        ..Admitted::default()
    };
    for path in found.candidates {
        let identity = FileIdentity::of(&path);
        if identity.as_ref().is_some_and(|i| registry.is_known_file(i)) {
            admitted.unchanged.push(path);
            continue;
        }
        let (copy, generation) = match private_copy(&path) {
            Ok(copy) => (copy.path, copy.generation),
            Err(e) => {
                admitted
                    .problems
                    .push(format!("{}: cannot read: {e}", path.display()));
                continue;
            }
        };
        let checked = match check(&path, &copy, options.permission_policy) {
            Ok(checked) => checked,
            Err(problem) => {
                let _ = std::fs::remove_file(&copy);
                admitted.problems.push(problem);
                continue;
            }
        };
        let fingerprint = match Fingerprint::start(&copy) {
            Ok(fingerprint) => {
                admitted.fingerprints.push(fingerprint.clone());
                fingerprint
            }
            Err(e) => {
                let _ = std::fs::remove_file(&copy);
                admitted
                    .problems
                    .push(format!("{}: cannot read: {e}", path.display()));
                continue;
            }
        };
        if let Some(loaded) = registry.same_content(
            &checked.metadata.engine_name,
            &checked.version,
            &fingerprint,
        ) {
            let _ = std::fs::remove_file(&copy);
            match &loaded.origin {
                Origin::Plugin { path: from, .. } if from != &path => {
                    admitted.problems.push(format!(
                        "{}: refused: engine `{}` {} is already loaded from {} (the same \
                         library); keep one copy of each engine version in the plugin \
                         directories",
                        path.display(),
                        loaded.name(),
                        loaded.version,
                        from.display()
                    ));
                }
                _ => {
                    registry.remember_file_opt(identity);
                    admitted.unchanged.push(path);
                }
            }
            continue;
        }
        if let Err(problem) =
            registry.check_name_free(&checked.metadata.engine_name, &checked.version, &path)
        {
            let _ = std::fs::remove_file(&copy);
            admitted.problems.push(problem);
            continue;
        }
        let (library, engine) = match load(&checked, &copy, generation) {
            Ok(loaded) => loaded,
            Err(e) => {
                admitted.problems.push(e.to_string());
                continue;
            }
        };
        let engine = PluginAccelerator::new(engine, Arc::new(library));
        match registry.register_plugin(engine, fingerprint) {
            Ok(registered) => {
                registry.remember_file_opt(identity);
                admitted.generations.push(registered);
            }
            Err(e) => admitted.problems.push(e),
        }
    }
    admitted
}

/// Trust, check and name checks of one library, reading its private copy.
/// Trust and metadata checks of a library, on its private copy.
fn check(
    path: &Path,
    copy: &Path,
    policy: PermissionPolicy,
) -> std::result::Result<CheckedLibrary, String> {
    check_trust(path, copy, policy).map_err(|e| e.to_string())?;
    check_as(copy, path).map_err(|e| e.to_string())
}
