//! Per-library state of a plugin: its engine and its own tokio runtime.
//!
//! Each engine library has its own copy of tokio; a handle from the host means nothing inside
//! it. The SDK starts one multi-threaded runtime per library on first use and runs every piece
//! of engine code on it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, OnceLock};

use datafusion::execution::TaskContext;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::SessionContext;
use tokio::runtime::Runtime;

use super::panic_message;
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
}

impl Default for PluginSlot {
    fn default() -> Self {
        Self::new()
    }
}

/// A started plugin.
pub struct Plugin {
    pub engine: Arc<dyn DataAccelerator>,
    pub runtime: Runtime,
    /// Runtime environment of plans executed inside the plugin (host memory limits do not
    /// reach it; engines take explicit limits as parameters).
    pub runtime_env: Arc<RuntimeEnv>,
    /// Function registry used to decode expressions the host sends.
    pub task_ctx: Arc<TaskContext>,
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
        .thread_name(format!("accel-{}", E::NAME))
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
        runtime,
        runtime_env: context.runtime_env(),
        task_ctx: context.task_ctx(),
    })
}
