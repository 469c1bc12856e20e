//! Step 6 of the pipeline, while serving: reload. Steps 1–4 run again for the libraries that
//! are new or changed (by content hash); each new generation then takes over the tables whose
//! `engine_version` pin allows it (see `managed_table` for how), and generations that no table
//! uses any more — and that are not the newest of their engine — are retired: `shutdown` is
//! called and their resident memory reported. Libraries are never unloaded (see `load`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::host::{Host, admit_libraries};
use crate::managed_table::{ManagedTable, hand_over};
use crate::plugin_accelerator::PluginAccelerator;
use crate::registry::{Origin, RegisteredEngine};
use crate::serve::factory;

/// What a reload did, line by line.
#[derive(Debug, Default)]
pub struct ReloadReport {
    /// New generations: `engine version (path)`.
    pub loaded: Vec<String>,
    /// Libraries skipped because the same content is loaded already.
    pub unchanged: usize,
    /// Tables moved to a new generation.
    pub moved: Vec<String>,
    /// Tables left where they were, with the reason (pin, or a failed hand-over).
    pub kept: Vec<String>,
    /// Generations retired.
    pub retired: Vec<String>,
    /// Libraries refused or failed, with the reason.
    pub problems: Vec<String>,
}

impl fmt::Display for ReloadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "reload: {} loaded, {} unchanged, {} tables moved, {} kept, {} retired, {} problems",
            self.loaded.len(),
            self.unchanged,
            self.moved.len(),
            self.kept.len(),
            self.retired.len(),
            self.problems.len()
        )?;
        let sections = [
            ("loaded", &self.loaded),
            ("moved", &self.moved),
            ("kept", &self.kept),
            ("retired", &self.retired),
            ("problem", &self.problems),
        ];
        for (label, lines) in sections {
            for line in lines {
                writeln!(f, "  {label}: {line}")?;
            }
        }
        Ok(())
    }
}

impl Host {
    /// Loads new or changed libraries from the plugin directories and moves tables to them.
    /// Queries keep running throughout; nothing here fails the host.
    pub async fn reload(&self) -> ReloadReport {
        let admitted = admit_libraries(&self.registry, self.options());
        // A reload finishes its reading: no descriptor of a new library stays open after it.
        for fingerprint in &admitted.fingerprints {
            fingerprint.wait();
        }
        let mut report = ReloadReport {
            unchanged: admitted.unchanged.len(),
            problems: admitted.problems,
            ..ReloadReport::default()
        };
        for generation in &admitted.generations {
            report.loaded.push(generation.describe());
            self.serve_engine_name(generation.name());
        }
        let mut generations = admitted.generations;
        generations.sort_by(|a, b| a.version.cmp(&b.version));
        for generation in &generations {
            self.take_over(generation, &mut report).await;
        }
        report.retired = self.retire_unused().await;
        let attention = report
            .kept
            .iter()
            .chain(&report.problems)
            .cloned()
            .collect();
        self.set_last_reload_attention(attention);
        report
    }

    /// A new engine name gets its `STORED AS` factory.
    fn serve_engine_name(&self, name: &str) {
        let key = name.to_uppercase();
        let state = self.context().state_ref();
        let mut state = state.write();
        if !state.table_factories().contains_key(&key) {
            state
                .table_factories_mut()
                .insert(key, factory(self.serving(), name));
        }
    }

    /// Hands `generation` the tables of its engine that want it: file-mode tables by file (all
    /// tables of one file move together), memory tables one by one.
    async fn take_over(&self, generation: &Arc<RegisteredEngine>, report: &mut ReloadReport) {
        let mut by_file: BTreeMap<PathBuf, Vec<Arc<ManagedTable>>> = BTreeMap::new();
        let mut in_memory = Vec::new();
        for table in self.tables() {
            if table.engine != generation.name() {
                continue;
            }
            if !table.wants(generation).await {
                let current = table.generation().await;
                if current.version < generation.version {
                    report.kept.push(format!(
                        "table `{}` stays on {}: pinned to engine_version '{}'",
                        table.name,
                        current.describe(),
                        table
                            .pin
                            .as_ref()
                            .map(ToString::to_string)
                            .unwrap_or_default()
                    ));
                }
                continue;
            }
            match table.file() {
                Some(file) if table.is_file_mode() => by_file.entry(file).or_default().push(table),
                _ => in_memory.push(vec![table]),
            }
        }
        let groups = by_file.into_values().chain(in_memory);
        for mut group in groups {
            group.sort_by(|a, b| a.name.cmp(&b.name));
            let from = group[0].generation().await;
            let outcome = hand_over(
                &group,
                generation,
                self.context(),
                self.serving().init_timeout,
            )
            .await;
            for table in &group {
                match &outcome {
                    Ok(()) => report.moved.push(format!(
                        "table `{}`: {} -> {}",
                        table.name,
                        from.describe(),
                        generation.describe()
                    )),
                    Err(reason) => report.kept.push(format!(
                        "table `{}` stays on {}: {reason}",
                        table.name,
                        from.describe()
                    )),
                }
            }
        }
    }

    /// Retires every plugin generation that serves no table and is not the newest active one
    /// of its engine.
    async fn retire_unused(&self) -> Vec<String> {
        let mut in_use = Vec::new();
        for table in self.tables() {
            in_use.push(table.generation().await);
        }
        let mut retired = Vec::new();
        for generation in self.registry.engines() {
            let Origin::Plugin { .. } = generation.origin else {
                continue;
            };
            let newest = self.registry.get(generation.name());
            let is_newest = newest.is_some_and(|n| Arc::ptr_eq(&n, &generation));
            if !generation.is_active()
                || is_newest
                || in_use.iter().any(|g| Arc::ptr_eq(g, &generation))
            {
                continue;
            }
            let shutdown = generation.accelerator.shutdown().await;
            let resident_kb = generation
                .accelerator
                .as_any()
                .downcast_ref::<PluginAccelerator>()
                .map_or(0, |p| p.library().resident_kb());
            generation.set_retired(resident_kb);
            retired.push(match shutdown {
                Ok(()) => format!("{}, {resident_kb} kB resident", generation.describe()),
                Err(e) => format!(
                    "{}, {resident_kb} kB resident (its shutdown failed: {e})",
                    generation.describe()
                ),
            });
        }
        retired
    }

    /// Every generation with its state and the tables it serves.
    pub async fn generations(&self) -> Vec<(Arc<RegisteredEngine>, Vec<String>)> {
        let mut tables = Vec::new();
        for table in self.tables() {
            tables.push((table.generation().await, table.name.clone()));
        }
        self.registry
            .engines()
            .into_iter()
            .map(|generation| {
                let mut names: Vec<String> = tables
                    .iter()
                    .filter(|(g, _)| Arc::ptr_eq(g, &generation))
                    .map(|(_, name)| name.clone())
                    .collect();
                names.sort();
                (generation, names)
            })
            .collect()
    }
}
