//! Per-library state of a plugin: its engine and its own tokio runtime.
//!
//! Each engine library has its own copy of tokio; a handle from the host means nothing inside
//! it. The SDK starts one multi-threaded runtime per library on first use and runs every piece
//! of engine code on it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, OnceLock};

use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::{TaskContext, TaskContextProvider};
use datafusion::prelude::SessionContext;
use tokio::runtime::{Handle, Runtime};

use super::panic_message;
use super::query_settings::QueryContexts;
use crate::contract::accelerator::DataAccelerator;

/// Implemented by `export_accelerator!` for the exported engine.
pub trait ExportedEngine: 'static {
    const NAME: &'static str;
    const VERSION: &'static str;
    fn construct() -> Arc<dyn DataAccelerator>;
    fn slot() -> &'static PluginSlot;
}

/// The lazily started state of a plugin library.
pub struct PluginSlot(OnceLock<Result<Plugin, String>>);

impl PluginSlot {
    pub const fn new() -> Self {
        Self(OnceLock::new())
    }

    /// The plugin, if it has started.
    pub fn started(&self) -> Option<&Plugin> {
        self.0.get().and_then(|started| started.as_ref().ok())
    }
}

impl Default for PluginSlot {
    fn default() -> Self {
        Self::new()
    }
}

/// A started plugin.
pub struct Plugin {
    pub engine: Arc<dyn DataAccelerator>,
    /// The library's runtime; `None` once the generation was retired ([`Plugin::stop`]).
    runtime: Mutex<Option<Runtime>>,
    /// Where engine code runs. After [`Plugin::stop`], tasks spawned on it are cancelled at
    /// once (callers see "cancelled" errors, never a hang).
    pub handle: Handle,
    /// Runtime environment of plans executed inside the plugin (host memory limits do not
    /// reach it; engines take explicit limits as parameters).
    pub runtime_env: Arc<RuntimeEnv>,
    /// The library's own task context, whose functions decode the expressions the host sends:
    /// partition expressions here, and — handed to datafusion-ffi with each table's codec —
    /// the filters of `supports_filters_pushdown` and `scan`. With the host's context there,
    /// datafusion-ffi rebuilt it inside the library on every call: its config from strings
    /// and each of its hundreds of functions as a foreign function.
    pub task_ctx: Arc<dyn TaskContextProvider + Send + Sync>,
    /// Sessions and task contexts made from the host's settings, for scans (ABI 1.3).
    pub query_contexts: QueryContexts,
}

/// The plugin's own task context, for the codecs of its tables.
struct PluginTaskContext(Arc<TaskContext>);

impl TaskContextProvider for PluginTaskContext {
    fn task_ctx(&self) -> Arc<TaskContext> {
        Arc::clone(&self.0)
    }
}

impl Plugin {
    /// Stops the library's runtime threads (a retired generation: no table uses it any more).
    /// Returns whether they were running.
    pub fn stop(&self) -> bool {
        let runtime = self
            .runtime
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        runtime.map(Runtime::shutdown_background).is_some()
    }
}

/// The plugin of engine `E`, started on first call.
pub fn plugin<E: ExportedEngine>() -> Result<&'static Plugin, String> {
    E::slot()
        .0
        .get_or_init(start::<E>)
        .as_ref()
        .map_err(Clone::clone)
}

fn start<E: ExportedEngine>() -> Result<Plugin, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        // `sqlite 0.2.0`: which generation a thread belongs to, in `top -H`, gdb and
        // /proc/PID/task/*/comm (cut at 15 bytes there)
        .thread_name(format!("{} {}", E::NAME, E::VERSION))
        .enable_all()
        .build()
        .map_err(|e| format!("engine `{}`: cannot start its runtime: {e}", E::NAME))?;
    let engine = catch_unwind(AssertUnwindSafe(E::construct)).map_err(|payload| {
        format!(
            "engine `{}` panicked while starting: {}",
            E::NAME,
            panic_message(&*payload)
        )
    })?;
    if engine.name() != E::NAME {
        return Err(format!(
            "engine exported as `{}` calls itself `{}`: make `DataAccelerator::name` return the \
             name given to export_accelerator!",
            E::NAME,
            engine.name()
        ));
    }
    let context = SessionContext::new();
    Ok(Plugin {
        engine,
        handle: runtime.handle().clone(),
        runtime: Mutex::new(Some(runtime)),
        runtime_env: context.runtime_env(),
        query_contexts: QueryContexts::new(context.runtime_env()),
        task_ctx: Arc::new(PluginTaskContext(context.task_ctx())),
    })
}
