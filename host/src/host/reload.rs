//! Reload, while serving: admission runs again for the libraries that are new or changed (by
//! content hash); then every table moves to the generation its `engine_version` pin chooses
//! now, when that is newer (see `table::hand_over` for how), and generations that no table
//! uses any more — and that are not the newest of their engine — are retired: `shutdown` is
//! called, their runtime threads stopped and their resident memory reported. Libraries are
//! never unloaded (see `library::load`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use accel_plugin_api::embedded::canonical;

use crate::engine::plugin::PluginAccelerator;
use crate::engine::registry::{Origin, RegisteredEngine};
use crate::host::Host;
use crate::host::admit::admit_libraries;
use crate::library::trace::LibraryRecord;
use crate::table::factory::factory;
use crate::table::hand_over::hand_over;
use crate::table::managed::ManagedTable;

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
    /// Libraries refused or failed: stage, reason and fix.
    pub problems: Vec<LibraryRecord>,
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
        let problems: Vec<String> = self.problems.iter().map(ToString::to_string).collect();
        let sections = [
            ("loaded", &self.loaded),
            ("moved", &self.moved),
            ("kept", &self.kept),
            ("retired", &self.retired),
            ("problem", &problems),
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
        // One reload at a time (`--watch` and `\reload` together would admit one file twice).
        let shut_down = self.reload_lock.lock().await;
        if *shut_down {
            return ReloadReport::default();
        }
        let admitted = admit_libraries(&self.registry, self.options());
        self.registry.set_refused(admitted.records.clone());
        // A reload finishes its reading: no descriptor of a new library stays open after it.
        for fingerprint in &admitted.fingerprints {
            fingerprint.wait();
        }
        let mut report = ReloadReport {
            unchanged: admitted.unchanged.len(),
            problems: admitted.records,
            ..ReloadReport::default()
        };
        for generation in &admitted.generations {
            report.loaded.push(generation.describe());
            self.serve_engine_name(generation.name());
        }
        {
            // No table is created while tables move (it could join a generation its file is
            // leaving) or while generations retire (it could pin one being retired).
            let _no_creation = self.engine_tables().creation.write().await;
            self.hand_over_tables(&admitted.generations, &mut report)
                .await;
            report.retired = self.retire_unused().await;
        }
        let attention = report
            .kept
            .iter()
            .cloned()
            .chain(report.problems.iter().map(ToString::to_string))
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
                .insert(key, factory(self.engine_tables(), name));
        }
    }

    /// Hands every table to the generation its pin chooses now, when that is newer than the
    /// one serving it — so a hand-over that failed at an earlier reload is tried again. Memory
    /// tables move one by one; the tables of one file move together (whatever the spelling of
    /// their paths), and only when all of them choose the same generation: two engine copies
    /// must never hold one file. Tables that a generation loaded now would have taken but for
    /// their pin are reported as kept.
    async fn hand_over_tables(
        &self,
        admitted: &[Arc<RegisteredEngine>],
        report: &mut ReloadReport,
    ) {
        struct Move {
            table: Arc<ManagedTable>,
            from: Arc<RegisteredEngine>,
            /// The generation the table's pin chooses now.
            to: Option<Arc<RegisteredEngine>>,
        }
        impl Move {
            fn moves(&self) -> bool {
                self.to
                    .as_ref()
                    .is_some_and(|to| !Arc::ptr_eq(to, &self.from))
            }
        }
        let mut by_file: BTreeMap<(String, PathBuf), Vec<Move>> = BTreeMap::new();
        let mut groups: Vec<Vec<Move>> = Vec::new();
        for table in self.tables() {
            let from = table.generation().await;
            let to = self.registry.choose(&table.engine, table.pin.as_ref());
            let upgrade = to.as_ref().is_some_and(|to| to.version > from.version);
            if !upgrade
                && let Some(pinned_out) = admitted
                    .iter()
                    .filter(|g| g.name() == table.engine && g.version > from.version)
                    .max_by(|a, b| a.version.cmp(&b.version))
            {
                report.kept.push(format!(
                    "table `{}` stays on {}: pinned to engine_version '{}' ({} is loaded)",
                    table.name,
                    from.describe(),
                    table
                        .pin
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    pinned_out.version
                ));
            }
            let key = if table.is_file_mode() {
                match table.file() {
                    Some(file) => Some(canonical(&file)),
                    None => {
                        if upgrade {
                            report.kept.push(format!(
                                "table `{}` stays on {}: its file is not known now; the next \
                                 reload tries again",
                                table.name,
                                from.describe()
                            ));
                        }
                        continue;
                    }
                }
            } else {
                None
            };
            let entry = Move { table, from, to };
            match key {
                Some(file) => by_file
                    .entry((entry.table.engine.clone(), file))
                    .or_default()
                    .push(entry),
                None if upgrade => groups.push(vec![entry]),
                None => {}
            }
        }
        for ((_, file), group) in by_file {
            // The file moves when any of its tables would, and all of them choose the same
            // generation (which also rejoins a file whose tables ended up apart).
            if !group.iter().any(Move::moves) {
                continue;
            }
            let agreed = group
                .windows(2)
                .all(|pair| match (&pair[0].to, &pair[1].to) {
                    (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                    _ => false,
                })
                && group[0].to.is_some();
            if agreed {
                groups.push(group);
                continue;
            }
            for m in &group {
                report.kept.push(format!(
                    "table `{}` stays on {}: the tables of {} do not all choose the same engine \
                     version (their engine_version pins differ), and one file cannot be open in \
                     two generations",
                    m.table.name,
                    m.from.describe(),
                    file.display()
                ));
            }
        }
        for mut group in groups {
            group.sort_by(|a, b| a.table.name.cmp(&b.table.name));
            let Some(to) = group[0].to.clone() else {
                continue;
            };
            let tables: Vec<Arc<ManagedTable>> =
                group.iter().map(|m| Arc::clone(&m.table)).collect();
            let outcome = hand_over(
                &tables,
                &to,
                self.context(),
                self.engine_tables().init_timeout,
            )
            .await;
            for m in &group {
                match &outcome {
                    Ok(()) => report.moved.push(format!(
                        "table `{}`: {} -> {}",
                        m.table.name,
                        m.from.describe(),
                        to.describe()
                    )),
                    Err(reason) => report.kept.push(format!(
                        "table `{}` stays on {}: {reason}; the next reload tries again",
                        m.table.name,
                        m.from.describe()
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
            let plugin = generation
                .accelerator
                .as_any()
                .downcast_ref::<PluginAccelerator>();
            // Its threads go; its code stays mapped (never unloaded).
            let stopped = plugin.is_some_and(PluginAccelerator::stop_runtime);
            let threads = if stopped {
                ", its runtime threads stopped"
            } else {
                ""
            };
            let resident_kb = plugin.map_or(0, |p| p.library().resident_kb());
            generation.set_retired(resident_kb);
            retired.push(match shutdown {
                Ok(()) => format!(
                    "{}, {resident_kb} kB resident{threads}",
                    generation.describe()
                ),
                Err(e) => format!(
                    "{}, {resident_kb} kB resident{threads} (its shutdown failed: {e})",
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
