//! Step 4 of the pipeline: the engine registry. Built-in engines (from the `linkme` slice) and
//! loaded plugins, behind one `Arc<dyn DataAccelerator>` each, with their origin and version.
//! Nothing above the registry knows where an engine came from.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use accel_plugin_api::metadata::{ABI_MAJOR, ABI_MINOR};
use accel_plugin_api::{BUILTIN_ENGINES, DataAccelerator};

use crate::plugin_accelerator::PluginAccelerator;

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

/// One registered engine.
#[derive(Clone)]
pub struct RegisteredEngine {
    pub accelerator: Arc<dyn DataAccelerator>,
    pub origin: Origin,
    pub version: semver::Version,
    /// Plugin-api ABI version the engine was built for (`major.minor`).
    pub api_version: String,
}

impl fmt::Debug for RegisteredEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisteredEngine")
            .field("name", &self.accelerator.name())
            .field("origin", &self.origin)
            .field("version", &self.version)
            .finish()
    }
}

/// All engines of this host, by name.
#[derive(Debug, Default)]
pub struct EngineRegistry {
    engines: BTreeMap<String, RegisteredEngine>,
}

impl EngineRegistry {
    /// A registry holding the engines linked into this binary.
    pub fn with_builtins() -> Self {
        let mut registry = Self::default();
        let version = semver::Version::parse(env!("CARGO_PKG_VERSION")).expect("crate version");
        for construct in BUILTIN_ENGINES {
            let accelerator = construct();
            registry.engines.insert(
                accelerator.name().to_owned(),
                RegisteredEngine {
                    accelerator,
                    origin: Origin::BuiltIn,
                    version: version.clone(),
                    api_version: format!("{ABI_MAJOR}.{ABI_MINOR}"),
                },
            );
        }
        registry
    }

    /// Adds a loaded plugin engine. Refused (with the reason) when its name is taken.
    pub fn register_plugin(
        &mut self,
        engine: PluginAccelerator,
    ) -> Result<&RegisteredEngine, String> {
        let library = Arc::clone(engine.library());
        let name = engine.name().to_owned();
        self.check_name_free(&name, &library.version, &library.path)?;
        let registered = RegisteredEngine {
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
        };
        Ok(self.engines.entry(name).or_insert(registered))
    }

    /// Refuses a plugin engine whose name is already taken (by a built-in engine or an
    /// already loaded library). Called with the library's metadata before it is loaded, and
    /// again when it registers.
    pub fn check_name_free(
        &self,
        name: &str,
        version: &semver::Version,
        path: &std::path::Path,
    ) -> Result<(), String> {
        let Some(existing) = self.engines.get(name) else {
            return Ok(());
        };
        Err(match &existing.origin {
            Origin::BuiltIn => format!(
                "{}: refused: engine `{name}` is built into this host; rename the plugin's engine",
                path.display()
            ),
            Origin::Plugin { path: loaded, .. } => format!(
                "{}: refused: engine `{name}` {version} is already loaded from {} (version {}); \
                 keep one library per engine in the plugin directories",
                path.display(),
                loaded.display(),
                existing.version
            ),
        })
    }

    pub fn get(&self, name: &str) -> Option<&RegisteredEngine> {
        self.engines.get(name)
    }

    pub fn engines(&self) -> impl Iterator<Item = &RegisteredEngine> {
        self.engines.values()
    }

    pub fn names(&self) -> Vec<&str> {
        self.engines.keys().map(String::as_str).collect()
    }

    /// Shuts every engine down (flushes files, closes pools); reports failures.
    pub async fn shutdown(&self) -> Vec<String> {
        let mut failures = Vec::new();
        for engine in self.engines.values() {
            if let Err(e) = engine.accelerator.shutdown().await {
                failures.push(format!(
                    "engine `{}`: shutdown failed: {e}",
                    engine.accelerator.name()
                ));
            }
        }
        failures
    }
}
