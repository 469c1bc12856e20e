//! The engine registry. Built-in engines (from the `linkme` slice) and
//! loaded plugins, behind one `Arc<dyn DataAccelerator>` each, with their origin and version.
//! Nothing above the registry knows where an engine came from.
//!
//! A plugin engine may be loaded in several versions at once, each a **generation** (its own
//! copy of its library): tables choose among them by their `engine_version` pin (default: the
//! highest), a reload adds generations while the host serves, and a generation that no table
//! uses any more is retired (its `shutdown` called; its code stays mapped, see
//! `library::load`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use accel_plugin_api::boundary::metadata::{ABI_MAJOR, ABI_MINOR};
use accel_plugin_api::{BUILTIN_ENGINES, DataAccelerator};

use crate::engine::plugin::PluginAccelerator;
use crate::library::fingerprint::{FileIdentity, Fingerprint};
use crate::library::trace::{LibraryRecord, records_about};

/// Where an engine came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    BuiltIn,
    Plugin { path: PathBuf, generation: u64 },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::BuiltIn => f.write_str("built-in"),
            Origin::Plugin { path, .. } => write!(f, "{}", path.display()),
        }
    }
}

/// Whether a generation serves new tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Active,
    /// No table uses it any more; its `shutdown` was called. `resident_kb`: memory its library
    /// mappings still occupied when it was retired.
    Retired {
        resident_kb: u64,
    },
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::Active => f.write_str("active"),
            State::Retired { resident_kb } => write!(f, "retired ({resident_kb} kB resident)"),
        }
    }
}

/// One registered engine: a built-in engine, or one generation of a plugin engine.
pub struct RegisteredEngine {
    /// The name tables write after `STORED AS`: the engine's own, unless a built-in engine was
    /// registered under another one.
    name: String,
    pub accelerator: Arc<dyn DataAccelerator>,
    pub origin: Origin,
    pub version: semver::Version,
    /// Plugin-api ABI version the engine was built for (`major.minor`).
    pub api_version: String,
    /// Content fingerprint of the library file, for plugins (a reload skips content already
    /// loaded).
    pub fingerprint: Option<Fingerprint>,
    state: Mutex<State>,
}

impl fmt::Debug for RegisteredEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisteredEngine")
            .field("name", &self.name)
            .field("origin", &self.origin)
            .field("version", &self.version)
            .finish()
    }
}

impl RegisteredEngine {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn state(&self) -> State {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn is_active(&self) -> bool {
        self.state() == State::Active
    }

    /// `name version (origin)`, for messages.
    pub fn describe(&self) -> String {
        format!("`{}` {} ({})", self.name(), self.version, self.origin)
    }

    pub(crate) fn set_retired(&self, resident_kb: u64) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = State::Retired { resident_kb };
    }
}

/// All engines of this host: every generation, by engine name, in ascending version order.
/// Shared by the session's table factories and by reloads, hence the lock inside.
#[derive(Debug, Default)]
pub struct EngineRegistry {
    engines: RwLock<BTreeMap<String, Vec<Arc<RegisteredEngine>>>>,
    /// Plugin files whose content is loaded, as they were on disk: a reload skips them without
    /// reading them again.
    known_files: Mutex<HashSet<FileIdentity>>,
    /// Plugin files refused after they were opened, as they were on disk, with the refusal: a
    /// reload reports it again without opening the file — an opened library stays mapped (it
    /// is never closed), so each attempt would keep another copy of it on disk and in memory.
    failed_loads: Mutex<HashMap<FileIdentity, LibraryRecord>>,
    /// The libraries the last pass of the pipeline refused or skipped, to explain a missing
    /// engine.
    refused: Mutex<Vec<LibraryRecord>>,
}

impl EngineRegistry {
    /// A registry holding the engines linked into this binary.
    pub fn with_builtins() -> Self {
        let registry = Self::default();
        let version = semver::Version::parse(env!("CARGO_PKG_VERSION")).expect("crate version");
        {
            let mut engines = registry.write();
            for builtin in BUILTIN_ENGINES {
                let accelerator = (builtin.construct)();
                let name = builtin
                    .registered_as
                    .map_or_else(|| accelerator.name().to_owned(), str::to_owned);
                engines.insert(
                    name.clone(),
                    vec![Arc::new(RegisteredEngine {
                        name,
                        accelerator,
                        origin: Origin::BuiltIn,
                        version: version.clone(),
                        api_version: format!("{ABI_MAJOR}.{ABI_MINOR}"),
                        fingerprint: None,
                        state: Mutex::new(State::Active),
                    })],
                );
            }
        }
        registry
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Vec<Arc<RegisteredEngine>>>> {
        self.engines.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Vec<Arc<RegisteredEngine>>>> {
        self.engines.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a loaded plugin engine as a new generation. Refused (with the reason) when its name
    /// belongs to a built-in engine or its version is already loaded.
    pub fn register_plugin(
        &self,
        engine: PluginAccelerator,
        fingerprint: Fingerprint,
    ) -> Result<Arc<RegisteredEngine>, String> {
        let library = Arc::clone(engine.library());
        let name = engine.name().to_owned();
        let mut engines = self.write();
        check_name_free(&engines, &name, &library.version, &library.path)?;
        let registered = Arc::new(RegisteredEngine {
            name: name.clone(),
            accelerator: Arc::new(engine),
            origin: Origin::Plugin {
                path: library.path.clone(),
                generation: library.generation,
            },
            version: library.version.clone(),
            api_version: format!(
                "{}.{}",
                library.metadata.abi_major, library.metadata.abi_minor
            ),
            fingerprint: Some(fingerprint),
            state: Mutex::new(State::Active),
        });
        let generations = engines.entry(name).or_default();
        generations.push(Arc::clone(&registered));
        generations.sort_by(|a, b| a.version.cmp(&b.version));
        Ok(registered)
    }

    /// Refuses a plugin engine named like a built-in engine, or whose version is already
    /// loaded. Called with the library's metadata before it is loaded, and again when it
    /// registers.
    pub fn check_name_free(
        &self,
        name: &str,
        version: &semver::Version,
        path: &std::path::Path,
    ) -> Result<(), String> {
        check_name_free(&self.read(), name, version, path)
    }

    /// The generation a table pinned to `requirement` (or unpinned: `None`) uses: the highest
    /// active one that matches.
    pub fn choose(
        &self,
        name: &str,
        requirement: Option<&semver::VersionReq>,
    ) -> Option<Arc<RegisteredEngine>> {
        self.read().get(name).and_then(|generations| {
            generations
                .iter()
                .rev()
                .filter(|g| g.is_active())
                .find(|g| requirement.is_none_or(|r| r.matches(&g.version)))
                .cloned()
        })
    }

    /// The highest active generation of `name`.
    pub fn get(&self, name: &str) -> Option<Arc<RegisteredEngine>> {
        self.choose(name, None)
    }

    /// Every generation of every engine, by name then version.
    pub fn engines(&self) -> Vec<Arc<RegisteredEngine>> {
        self.read().values().flatten().cloned().collect()
    }

    /// The generation of engine `name` at `version` (in any state) loaded from a library with
    /// the content fingerprinted by `fingerprint`. Identical content has identical metadata, so
    /// only those generations are compared, and fingerprints are awaited only when one exists
    /// (never at start-up).
    pub fn same_content(
        &self,
        name: &str,
        version: &semver::Version,
        fingerprint: &Fingerprint,
    ) -> Option<Arc<RegisteredEngine>> {
        let candidates: Vec<Arc<RegisteredEngine>> = self
            .read()
            .get(name)?
            .iter()
            .filter(|g| &g.version == version)
            .cloned()
            .collect();
        candidates.into_iter().find(|g| {
            g.fingerprint
                .as_ref()
                .is_some_and(|loaded| loaded.get() == fingerprint.get())
        })
    }

    /// Whether this file, unchanged on disk, was already found to hold loaded content.
    pub fn is_known_file(&self, identity: &FileIdentity) -> bool {
        self.known_files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(identity)
    }

    /// The refusal of this file, unchanged on disk since it was opened and refused.
    pub fn failed_load(&self, identity: &FileIdentity) -> Option<LibraryRecord> {
        self.failed_loads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(identity)
            .cloned()
    }

    /// Remembers that this file (when it could be read) was opened and refused.
    pub fn remember_failed_load(&self, identity: Option<FileIdentity>, record: &LibraryRecord) {
        if let Some(identity) = identity {
            self.failed_loads
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(identity, record.clone());
        }
    }

    /// Remembers that this file (when it could be read) holds loaded content.
    pub fn remember_file_opt(&self, identity: Option<FileIdentity>) {
        if let Some(identity) = identity {
            self.known_files
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(identity);
        }
    }

    /// Replaces the records of refused libraries with those of the latest pass.
    pub fn set_refused(&self, records: Vec<LibraryRecord>) {
        *self.refused.lock().unwrap_or_else(|e| e.into_inner()) = records;
    }

    /// For an error about a missing engine `name`: `; libraries of `name` that were not
    /// loaded:` and their records, one per line — empty when no record concerns it.
    pub fn refused_about(&self, name: &str) -> String {
        let records = records_about(
            &self.refused.lock().unwrap_or_else(|e| e.into_inner()),
            name,
        );
        if records.is_empty() {
            return records;
        }
        format!("; libraries of `{name}` that were not loaded:{records}")
    }

    pub fn names(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// Shuts every active generation down (flushes files, closes pools); reports failures.
    pub async fn shutdown(&self) -> Vec<String> {
        let mut failures = Vec::new();
        for engine in self.engines().into_iter().filter(|g| g.is_active()) {
            if let Err(e) = engine.accelerator.shutdown().await {
                failures.push(format!(
                    "engine {}: shutdown failed: {e}",
                    engine.describe()
                ));
            }
        }
        failures
    }
}

fn check_name_free(
    engines: &BTreeMap<String, Vec<Arc<RegisteredEngine>>>,
    name: &str,
    version: &semver::Version,
    path: &std::path::Path,
) -> Result<(), String> {
    let Some(generations) = engines.get(name) else {
        return Ok(());
    };
    for existing in generations {
        match &existing.origin {
            Origin::BuiltIn => {
                return Err(format!(
                    "{}: refused: engine `{name}` is built into this host; rename the plugin's \
                     engine",
                    path.display()
                ));
            }
            Origin::Plugin { path: loaded, .. } if &existing.version == version => {
                return Err(format!(
                    "{}: refused: engine `{name}` {version} is already loaded from {}; a new \
                     build of an engine needs a new version (bump the crate version) to be \
                     loaded next to it",
                    path.display(),
                    loaded.display(),
                ));
            }
            Origin::Plugin { .. } => {}
        }
    }
    Ok(())
}
