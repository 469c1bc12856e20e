//! Admission: the library pipeline ([`crate::library`]) composed with the engine registry —
//! every library in the plugin directories that is not loaded yet (by content) is prepared
//! (pinned, trusted, checked, fingerprinted), compared with what is registered, loaded and
//! registered as a new generation. Run at start-up and by every reload.
//!
//! Each stage is one function returning the record that explains a refusal; nothing here
//! fails the host.

use std::path::PathBuf;
use std::sync::Arc;

use crate::engine::plugin::PluginAccelerator;
use crate::engine::registry::{EngineRegistry, Origin, RegisteredEngine};
use crate::host::HostOptions;
use crate::library::discover::discover;
use crate::library::fingerprint::{FileIdentity, Fingerprint};
use crate::library::load::load;
use crate::library::trace::{LibraryRecord, Stage};
use crate::library::{Prepared, prepare};

/// Libraries a pass of the pipeline loaded, and the ones it refused.
#[derive(Debug, Default)]
pub struct Admitted {
    pub searched: Vec<PathBuf>,
    pub generations: Vec<Arc<RegisteredEngine>>,
    /// Files skipped because a library with the same content is loaded already.
    pub unchanged: Vec<PathBuf>,
    /// Every entry refused or skipped, in search order.
    pub records: Vec<LibraryRecord>,
    /// Fingerprints started, still being computed in the background perhaps.
    pub fingerprints: Vec<Fingerprint>,
}

/// What became of one candidate library.
enum Outcome {
    Registered(Arc<RegisteredEngine>),
    Unchanged,
    Refused(LibraryRecord),
}

/// Every library in the plugin directories that is not loaded yet, through the pipeline.
pub fn admit_libraries(registry: &EngineRegistry, options: &HostOptions) -> Admitted {
    let found = discover(&options.search_dirs());
    let mut admitted = Admitted {
        searched: found.searched,
        records: found
            .skipped
            .iter()
            .map(|skipped| {
                LibraryRecord::new(
                    &skipped.path,
                    None,
                    Stage::Discover,
                    skipped.to_string(),
                    "move files that are not engine libraries out of the plugin directory",
                )
            })
            .collect(),
        ..Admitted::default()
    };
    for path in found.candidates {
        match admit_one(registry, options, &path, &mut admitted.fingerprints) {
            Outcome::Registered(generation) => admitted.generations.push(generation),
            Outcome::Unchanged => admitted.unchanged.push(path),
            Outcome::Refused(record) => admitted.records.push(record),
        }
    }
    admitted
}

fn admit_one(
    registry: &EngineRegistry,
    options: &HostOptions,
    path: &std::path::Path,
    fingerprints: &mut Vec<Fingerprint>,
) -> Outcome {
    if let Some(identity) = FileIdentity::of(path) {
        if registry.is_known_file(&identity) {
            return Outcome::Unchanged;
        }
        if let Some(refused) = registry.failed_load(&identity) {
            return Outcome::Refused(refused);
        }
    }
    let prepared = match prepare(path, options.permission_policy) {
        Ok(prepared) => prepared,
        Err(record) => return Outcome::Refused(record),
    };
    fingerprints.push(prepared.fingerprint.clone());
    if let Some(outcome) = already_loaded(registry, &prepared) {
        prepared.discard();
        return outcome;
    }
    if let Err(record) = name_free(registry, &prepared) {
        prepared.discard();
        return Outcome::Refused(record);
    }
    load_and_register(registry, prepared)
}

/// The same content as a loaded generation: unchanged (the same file seen again), or refused
/// (a second copy of one engine version elsewhere in the plugin directories).
fn already_loaded(registry: &EngineRegistry, prepared: &Prepared) -> Option<Outcome> {
    let metadata = &prepared.checked.metadata;
    let loaded = registry.same_content(
        &metadata.engine_name,
        &prepared.checked.version,
        &prepared.fingerprint,
    )?;
    Some(match &loaded.origin {
        Origin::Plugin { path: from, .. } if from != &prepared.path => {
            Outcome::Refused(LibraryRecord::new(
                &prepared.path,
                Some(metadata.engine_name.clone()),
                Stage::Register,
                format!(
                    "{}: refused: engine `{}` {} is already loaded from {} (the same library); \
                     keep one copy of each engine version in the plugin directories",
                    prepared.path.display(),
                    loaded.name(),
                    loaded.version,
                    from.display()
                ),
                "keep one copy of each engine version in the plugin directories",
            ))
        }
        _ => {
            registry.remember_file_opt(prepared.identity.clone());
            Outcome::Unchanged
        }
    })
}

/// A plugin may not take a built-in engine's name or a loaded version of its engine.
fn name_free(registry: &EngineRegistry, prepared: &Prepared) -> Result<(), LibraryRecord> {
    let engine = &prepared.checked.metadata.engine_name;
    registry
        .check_name_free(engine, &prepared.checked.version, &prepared.path)
        .map_err(|reason| register_refusal(prepared, reason))
}

fn register_refusal(prepared: &Prepared, reason: String) -> LibraryRecord {
    LibraryRecord::new(
        &prepared.path,
        Some(prepared.checked.metadata.engine_name.clone()),
        Stage::Register,
        reason,
        "rename the plugin's engine, or build it with a new version (bump the crate version)",
    )
}

fn load_and_register(registry: &EngineRegistry, prepared: Prepared) -> Outcome {
    let (library, engine) = match load(&prepared.checked, &prepared.copy, prepared.generation) {
        Ok(loaded) => loaded,
        Err(e) => {
            let record = LibraryRecord::new(
                &prepared.path,
                Some(prepared.checked.metadata.engine_name.clone()),
                Stage::Load,
                e.to_string(),
                "rebuild the engine against this host's accel-plugin-api; if it fails while \
                 starting, see the engine's own message",
            );
            // Not opened again until the file changes (see `EngineRegistry::failed_loads`).
            registry.remember_failed_load(prepared.identity.clone(), &record);
            return Outcome::Refused(record);
        }
    };
    let engine = PluginAccelerator::new(engine, Arc::new(library));
    match registry.register_plugin(engine, prepared.fingerprint.clone()) {
        Ok(registered) => {
            registry.remember_file_opt(prepared.identity.clone());
            Outcome::Registered(registered)
        }
        Err(reason) => Outcome::Refused(register_refusal(&prepared, reason)),
    }
}
