//! Step 5 of the pipeline: serve SQL. One DataFusion `TableProviderFactory` per registered
//! engine routes `CREATE EXTERNAL TABLE … STORED AS <engine>` to that engine's
//! `create_external_table`, with the dataset described as an `AccelerationSource`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use accel_plugin_api::{AccelerationSourceSpec, Mode, PartitionedBy, async_trait};
use datafusion::catalog::{Session, TableProvider, TableProviderFactory};
use datafusion::common::plan_err;
use datafusion::error::Result;
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::{CreateExternalTable, col};
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::registry::{EngineRegistry, RegisteredEngine};

/// `LOCATION` value that selects memory mode.
pub const MEMORY_LOCATION: &str = ":memory:";

/// Options understood by the host for every engine (not prefixed).
pub const COMMON_OPTIONS: &[&str] = &[
    "engine_version",
    "on_conflict",
    "indexes",
    "primary_key",
    "snapshot",
];

/// Builds a session whose table factories are the registry's engines.
pub fn session_context(registry: &EngineRegistry, data_dir: PathBuf) -> SessionContext {
    let mut builder = SessionStateBuilder::new()
        .with_config(SessionConfig::new().with_information_schema(true))
        .with_default_features();
    let factories = builder.table_factories().get_or_insert_with(HashMap::new);
    for engine in registry.engines() {
        let factory = EngineTableFactory {
            engine: engine.clone(),
            data_dir: data_dir.clone(),
        };
        factories.insert(engine.accelerator.name().to_uppercase(), Arc::new(factory));
    }
    SessionContext::new_with_state(builder.build())
}

/// Routes `CREATE EXTERNAL TABLE … STORED AS <engine>` to one engine.
#[derive(Debug)]
struct EngineTableFactory {
    engine: RegisteredEngine,
    data_dir: PathBuf,
}

#[async_trait]
impl TableProviderFactory for EngineTableFactory {
    async fn create(
        &self,
        state: &dyn Session,
        cmd: &CreateExternalTable,
    ) -> Result<Arc<dyn TableProvider>> {
        let engine = &self.engine.accelerator;
        let mut cmd = cmd.clone();
        cmd.options = unprefixed_options(&cmd.options);
        check_options(&self.engine, &cmd.options)?;
        let location = match cmd.locations.as_slice() {
            [one] => one.clone(),
            other => {
                return plan_err!(
                    "table `{}`: engine `{}` takes exactly one LOCATION (a file, or ':memory:'), \
                     found {}",
                    cmd.name,
                    engine.name(),
                    other.len()
                );
            }
        };
        let (mode, location) = if location == MEMORY_LOCATION {
            (Mode::Memory, None)
        } else {
            (Mode::File, Some(location))
        };
        let source = AccelerationSourceSpec {
            dataset_name: cmd.name.table().to_owned(),
            mode,
            params: cmd.options.clone(),
            location,
            data_directory: self.data_dir.clone(),
        };
        if !engine.is_initialized(&source) {
            engine.init(&source).await?;
        }
        let partition_by = cmd
            .table_partition_cols
            .iter()
            .map(|c| PartitionedBy {
                name: c.clone(),
                expression: col(c.as_str()),
            })
            .collect();
        let runtime_env = Arc::clone(state.runtime_env());
        engine
            .create_external_table(cmd, Some(&source), partition_by, runtime_env)
            .await
    }
}

/// DataFusion files `OPTIONS` keys without a namespace under `format.`; engines see them as
/// written.
fn unprefixed_options(options: &HashMap<String, String>) -> HashMap<String, String> {
    options
        .iter()
        .map(|(k, v)| (k.strip_prefix("format.").unwrap_or(k).to_owned(), v.clone()))
        .collect()
}

/// Rejects options an engine does not know, listing the ones it does.
fn check_options(engine: &RegisteredEngine, options: &HashMap<String, String>) -> Result<()> {
    let accelerator = &engine.accelerator;
    let prefix = format!("{}_", accelerator.prefix());
    let known: Vec<String> = accelerator
        .parameters()
        .iter()
        .map(|p| format!("{prefix}{}", p.name))
        .collect();
    for key in options.keys() {
        let key = key.to_lowercase();
        if COMMON_OPTIONS.contains(&key.as_str()) || known.contains(&key) || key.contains('.') {
            continue;
        }
        let mut valid: Vec<&str> = known.iter().map(String::as_str).collect();
        valid.extend(COMMON_OPTIONS);
        return plan_err!(
            "engine `{}` has no option `{key}`; valid options: {}",
            accelerator.name(),
            valid.join(", ")
        );
    }
    for param in accelerator.parameters().iter().filter(|p| p.required) {
        let key = format!("{prefix}{}", param.name);
        if !options.contains_key(&key) {
            return plan_err!(
                "engine `{}` needs option `{key}`: {}",
                accelerator.name(),
                param.description
            );
        }
    }
    Ok(())
}
