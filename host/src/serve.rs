//! Step 5 of the pipeline: serve SQL. One DataFusion `TableProviderFactory` per registered
//! engine routes `CREATE EXTERNAL TABLE … STORED AS <engine>` to that engine's
//! `create_external_table`, with the dataset described as an `AccelerationSource`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use accel_plugin_api::{AccelerationSourceSpec, Mode, PartitionedBy, async_trait};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider, TableProviderFactory};
use datafusion::common::plan_err;
use datafusion::error::{DataFusionError, Result};
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
pub fn session_context(
    registry: &EngineRegistry,
    data_dir: PathBuf,
    init_timeout: Duration,
) -> SessionContext {
    let mut builder = SessionStateBuilder::new()
        .with_config(SessionConfig::new().with_information_schema(true))
        .with_default_features();
    let factories = builder.table_factories().get_or_insert_with(HashMap::new);
    for engine in registry.engines() {
        let factory = EngineTableFactory {
            engine: engine.clone(),
            data_dir: data_dir.clone(),
            init_timeout,
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
    init_timeout: Duration,
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
        if let Some(requirement) = cmd.options.get("engine_version") {
            check_engine_version(&self.engine, requirement)?;
        }
        let source = acceleration_source(&cmd, engine.name(), &self.data_dir)?;
        if !engine.is_initialized(&source) {
            let init = tokio::time::timeout(self.init_timeout, engine.init(&source));
            let Ok(status) = init.await else {
                return plan_err!(
                    "engine `{}`: init of table `{}` did not finish within {:?}; the table was \
                     not created (the engine may be stuck restoring its data)",
                    engine.name(),
                    cmd.name,
                    self.init_timeout
                );
            };
            status?;
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
        let declared = Arc::new(cmd.schema.as_arrow().clone());
        let name = cmd.name.to_string();
        let table = engine
            .create_external_table(cmd, Some(&source), partition_by, runtime_env)
            .await?;
        check_schema(engine.name(), &name, &declared, &table.schema())?;
        Ok(table)
    }
}

/// An engine's table must have the declared columns: names and types, in order.
fn check_schema(engine: &str, table: &str, declared: &SchemaRef, actual: &SchemaRef) -> Result<()> {
    let describe = |schema: &SchemaRef| {
        let columns: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| format!("{} {}", f.name(), f.data_type()))
            .collect();
        format!("({})", columns.join(", "))
    };
    let same = declared.fields().len() == actual.fields().len()
        && declared
            .fields()
            .iter()
            .zip(actual.fields())
            .all(|(d, a)| d.name() == a.name() && d.data_type() == a.data_type());
    if same {
        return Ok(());
    }
    plan_err!(
        "engine `{engine}` returned table `{table}` with columns {}, but the statement declares \
         {}; this is a bug in the engine",
        describe(actual),
        describe(declared)
    )
}

/// `OPTIONS ('engine_version' '^1.2')`: the table needs an engine version in that range.
fn check_engine_version(engine: &RegisteredEngine, requirement: &str) -> Result<()> {
    let name = engine.accelerator.name();
    let range = semver::VersionReq::parse(requirement).map_err(|e| {
        DataFusionError::Plan(format!(
            "option engine_version '{requirement}' is not a semver requirement ({e}); e.g. '^1.2'"
        ))
    })?;
    if range.matches(&engine.version) {
        return Ok(());
    }
    plan_err!(
        "the table needs engine `{name}` {requirement}, but the loaded `{name}` is {} ({}); \
         install a matching engine library or change engine_version",
        engine.version,
        engine.origin
    )
}

/// The dataset a `CREATE EXTERNAL TABLE` describes, as engines see it (options already
/// unprefixed): memory mode for `LOCATION ':memory:'`, file mode otherwise.
pub fn acceleration_source(
    cmd: &CreateExternalTable,
    engine: &str,
    data_dir: &Path,
) -> Result<AccelerationSourceSpec> {
    let location = match cmd.locations.as_slice() {
        [one] => one.clone(),
        other => {
            return plan_err!(
                "table `{}`: engine `{engine}` takes exactly one LOCATION (a file, or ':memory:'), \
                 found {}",
                cmd.name,
                other.len()
            );
        }
    };
    let (mode, location) = if location == MEMORY_LOCATION {
        (Mode::Memory, None)
    } else {
        (Mode::File, Some(location))
    };
    Ok(AccelerationSourceSpec {
        dataset_name: cmd.name.table().to_owned(),
        mode,
        params: cmd.options.clone(),
        location,
        data_directory: data_dir.to_owned(),
    })
}

/// DataFusion files `OPTIONS` keys without a namespace under `format.`; engines see them as
/// written.
pub fn unprefixed_options(options: &HashMap<String, String>) -> HashMap<String, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Property: the options check answers any key/value text with Ok or an error listing the
    /// valid options, never a panic.
    #[test]
    fn arbitrary_option_keys_never_panic() {
        let registry = EngineRegistry::with_builtins();
        let engine = registry.get("arrow").unwrap();
        let samples = [
            "",
            "format.",
            "ARROW_X",
            "arrow_",
            "engine_version",
            "\u{0}",
            "ü_ß",
            "a.b.c",
            "=",
            "'",
        ];
        for key in samples {
            for value in samples {
                let options = HashMap::from([(key.to_owned(), value.to_owned())]);
                let unprefixed = unprefixed_options(&options);
                match check_options(engine, &unprefixed) {
                    Ok(()) => {}
                    Err(e) => assert!(e.to_string().contains("valid options"), "{e}"),
                }
            }
        }
        let unknown = HashMap::from([("format.bogus".to_owned(), "1".to_owned())]);
        let error = check_options(engine, &unprefixed_options(&unknown))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("engine `arrow` has no option `bogus`"),
            "{error}"
        );
    }
}
