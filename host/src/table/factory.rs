//! Table creation: one DataFusion `TableProviderFactory` per engine name routes
//! `CREATE EXTERNAL TABLE … STORED AS <engine>` to the generation of that engine the table's
//! pin selects, with the dataset described as an `AccelerationSource`; the table it returns is
//! a [`ManagedTable`], which a newer generation can take over.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use accel_plugin_api::{
    AccelerationLayout, AccelerationSourceSpec, Mode, PartitionedBy, async_trait,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider, TableProviderFactory};
use datafusion::common::plan_err;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{CreateExternalTable, col};

use crate::engine::registry::{EngineRegistry, RegisteredEngine};
use crate::table::managed::ManagedTable;
use accel_plugin_api::embedded::canonical;

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

/// What the session's table factories share: the engines, the tables they created, and the
/// settings tables are created with.
#[derive(Debug)]
pub struct EngineTables {
    pub registry: Arc<EngineRegistry>,
    pub tables: Tables,
    pub data_dir: PathBuf,
    pub init_timeout: Duration,
    /// Held shared by every table creation and exclusively by a reload's hand-overs, so a
    /// table is never created on a generation its file's other tables are leaving.
    pub creation: tokio::sync::RwLock<()>,
}

impl EngineTables {
    pub fn new(registry: Arc<EngineRegistry>, data_dir: PathBuf, init_timeout: Duration) -> Self {
        Self {
            registry,
            tables: Tables::default(),
            data_dir,
            init_timeout,
            creation: tokio::sync::RwLock::new(()),
        }
    }
}

/// The tables created through engines (dropped tables disappear on their own).
#[derive(Debug, Default)]
pub struct Tables(Mutex<Vec<Weak<ManagedTable>>>);

impl Tables {
    fn register(&self, table: &Arc<ManagedTable>) {
        let mut tables = self.0.lock().unwrap_or_else(|e| e.into_inner());
        tables.retain(|t| t.strong_count() > 0);
        tables.push(Arc::downgrade(table));
    }

    /// Every table still in use.
    pub fn all(&self) -> Vec<Arc<ManagedTable>> {
        let tables = self.0.lock().unwrap_or_else(|e| e.into_inner());
        tables.iter().filter_map(Weak::upgrade).collect()
    }
}

/// The factory of `STORED AS <name>`.
pub fn factory(tables: &Arc<EngineTables>, name: &str) -> Arc<dyn TableProviderFactory> {
    Arc::new(EngineTableFactory {
        shared: Arc::clone(tables),
        name: name.to_owned(),
    })
}

/// Routes `CREATE EXTERNAL TABLE … STORED AS <engine>` to the generation of that engine the
/// table's `engine_version` pin selects (default: the highest).
#[derive(Debug)]
struct EngineTableFactory {
    shared: Arc<EngineTables>,
    name: String,
}

#[async_trait]
impl TableProviderFactory for EngineTableFactory {
    async fn create(
        &self,
        state: &dyn Session,
        cmd: &CreateExternalTable,
    ) -> Result<Arc<dyn TableProvider>> {
        let mut cmd = cmd.clone();
        cmd.options = unprefixed_options(&cmd.options);
        let pin = cmd
            .options
            .get("engine_version")
            .map(|requirement| parse_requirement(requirement))
            .transpose()?;
        let _creating = self.shared.creation.read().await;
        let source = acceleration_source(&cmd, &self.name, &self.shared.data_dir)?;
        let generation = self.choose(pin.as_ref())?;
        let generation = self.generation_of_its_file(generation, &source, pin.as_ref())?;
        let provider =
            create_on(&generation, &cmd, &source, state, self.shared.init_timeout).await?;
        let table = Arc::new(ManagedTable::new(cmd, source, pin, generation, provider));
        self.shared.tables.register(&table);
        Ok(table)
    }
}

impl EngineTableFactory {
    /// A file-mode table joins the generation that already holds its file (two engine copies
    /// must never hold one file), if its pin allows; `chosen` otherwise.
    fn generation_of_its_file(
        &self,
        chosen: Arc<RegisteredEngine>,
        source: &AccelerationSourceSpec,
        pin: Option<&semver::VersionReq>,
    ) -> Result<Arc<RegisteredEngine>> {
        if source.mode != Mode::File {
            return Ok(chosen);
        }
        let AccelerationLayout::File(file) = chosen.accelerator.acceleration_layout(source) else {
            return Ok(chosen);
        };
        let key = canonical(&file);
        for table in self.shared.tables.all() {
            if table.engine != self.name || !table.is_file_mode() {
                continue;
            }
            let Some(theirs) = table.file() else {
                continue;
            };
            if canonical(&theirs) != key {
                continue;
            }
            let Some(holder) = table.current_generation() else {
                continue;
            };
            if Arc::ptr_eq(&holder, &chosen) {
                return Ok(chosen);
            }
            if pin.is_none_or(|pin| pin.matches(&holder.version)) {
                return Ok(holder);
            }
            return plan_err!(
                "{} is open in engine {} (table `{}`), which this table's engine_version '{}' \
                 does not allow; one file cannot be open in two engine generations: pin the \
                 table to {} or store it in another file",
                file.display(),
                holder.describe(),
                table.name,
                pin.map(ToString::to_string).unwrap_or_default(),
                holder.version
            );
        }
        Ok(chosen)
    }

    fn choose(&self, pin: Option<&semver::VersionReq>) -> Result<Arc<RegisteredEngine>> {
        if let Some(generation) = self.shared.registry.choose(&self.name, pin) {
            return Ok(generation);
        }
        let loaded: Vec<String> = self
            .shared
            .registry
            .engines()
            .iter()
            .filter(|g| g.name() == self.name)
            .map(|g| format!("{} ({}, {})", g.version, g.state(), g.origin))
            .collect();
        let name = &self.name;
        let refused = self.shared.registry.refused_about(name);
        plan_err!(
            "the table needs engine `{name}` {}, but the loaded generations are: {}; install a \
             matching engine library or change engine_version{refused}",
            pin.map(ToString::to_string).unwrap_or_default(),
            loaded.join(", ")
        )
    }
}

/// Creates (or opens) the table `cmd` describes on one engine generation: options checked,
/// storage initialised (bounded by `init_timeout`), the provider's schema checked against the
/// declared one.
pub async fn create_on(
    engine: &RegisteredEngine,
    cmd: &CreateExternalTable,
    source: &AccelerationSourceSpec,
    state: &dyn Session,
    init_timeout: Duration,
) -> Result<Arc<dyn TableProvider>> {
    let accelerator = &engine.accelerator;
    check_options(engine, &cmd.options)?;
    if !accelerator.is_initialized(source) {
        let init = tokio::time::timeout(init_timeout, accelerator.init(source));
        let Ok(status) = init.await else {
            return plan_err!(
                "engine `{}`: init of table `{}` did not finish within {:?}; the table was \
                 not created (the engine may be stuck restoring its data)",
                engine.name(),
                cmd.name,
                init_timeout
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
    let table = accelerator
        .create_external_table(cmd.clone(), Some(source), partition_by, runtime_env)
        .await?;
    check_schema(
        engine.name(),
        &cmd.name.to_string(),
        &declared,
        &table.schema(),
    )?;
    Ok(table)
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

/// `OPTIONS ('engine_version' '^1.2')`: the semver range of engine versions a table accepts.
fn parse_requirement(requirement: &str) -> Result<semver::VersionReq> {
    semver::VersionReq::parse(requirement).map_err(|e| {
        DataFusionError::Plan(format!(
            "option engine_version '{requirement}' is not a semver requirement ({e}); e.g. '^1.2'"
        ))
    })
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
            engine.name(),
            valid.join(", ")
        );
    }
    for param in accelerator.parameters().iter().filter(|p| p.required) {
        let key = format!("{prefix}{}", param.name);
        if !options.contains_key(&key) {
            return plan_err!(
                "engine `{}` needs option `{key}`: {}",
                engine.name(),
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
        let engine = &registry.get("arrow").unwrap();
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
