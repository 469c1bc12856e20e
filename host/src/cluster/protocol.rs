//! What the coordinator and a worker say to each other besides plan fragments: Arrow Flight
//! `DoAction` calls on the worker's address, with JSON bodies.
//!
//! - `accel.describe` → [`WorkerDescription`]: the worker's accel and plugin-api versions,
//!   its engines, and the shards it holds with their state.
//! - `accel.assign` with a list of [`ShardAssignment`] → [`WorkerDescription`]: the shards the
//!   worker must hold. A shard already held with the same definition is kept (a worker
//!   restarted on its data directory serves its file-mode shards from their files); a shard
//!   no longer assigned is dropped.
//! - `accel.refresh` with a [`RefreshShard`] → the shard's `RefreshSummary`: refreshes it now
//!   (after a refresh that is running).

use serde::{Deserialize, Serialize};

use crate::config::DatasetSpec;

pub const DESCRIBE: &str = "accel.describe";
pub const ASSIGN: &str = "accel.assign";
pub const REFRESH: &str = "accel.refresh";

/// Refresh one shard now (its table on the worker); the answer is the shard's
/// `RefreshSummary`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshShard {
    pub table: String,
}

/// One shard a worker must hold: shard `index` of the sharded dataset `dataset`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardAssignment {
    /// The sharded dataset as the coordinator read it (paths resolved).
    pub dataset: DatasetSpec,
    pub index: u32,
}

/// What a worker is and holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorkerDescription {
    /// The accel release (`CARGO_PKG_VERSION`).
    pub accel_version: String,
    /// The plugin ABI the worker's host loads (`major.minor`).
    pub plugin_abi: String,
    /// The newest active generation of each engine.
    pub engines: Vec<EngineVersion>,
    pub shards: Vec<HeldShard>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EngineVersion {
    pub name: String,
    pub version: String,
}

/// One shard on a worker.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HeldShard {
    pub dataset: String,
    pub index: u32,
    pub count: u32,
    /// The shard's table on the worker.
    pub table: String,
    /// `initializing`, `ready`, `refreshing`, `error`.
    pub state: String,
    /// Served at least once (its table is registered).
    pub loaded: bool,
    pub rows: Option<u64>,
    pub last_error: Option<String>,
}

/// This process's description, shards aside.
pub fn this_process(engines: Vec<EngineVersion>) -> WorkerDescription {
    WorkerDescription {
        accel_version: env!("CARGO_PKG_VERSION").to_owned(),
        plugin_abi: format!(
            "{}.{}",
            accel_plugin_api::boundary::metadata::ABI_MAJOR,
            accel_plugin_api::boundary::metadata::ABI_MINOR
        ),
        engines,
        shards: Vec::new(),
    }
}

/// Why a worker cannot serve the coordinator's shards, or `None` when it can: another accel
/// release or plugin ABI, or another version (or none) of an engine a sharded dataset uses.
pub fn mismatch(
    coordinator: &WorkerDescription,
    worker: &WorkerDescription,
    engines_used: &[String],
) -> Option<String> {
    if worker.accel_version != coordinator.accel_version {
        return Some(format!(
            "it runs accel {} but the coordinator runs accel {}; run the same accel release on \
             every machine",
            worker.accel_version, coordinator.accel_version
        ));
    }
    if worker.plugin_abi != coordinator.plugin_abi {
        return Some(format!(
            "its plugin-api ABI is {} but the coordinator's is {}; run the same accel release \
             on every machine",
            worker.plugin_abi, coordinator.plugin_abi
        ));
    }
    for engine in engines_used {
        let version = |d: &WorkerDescription| {
            d.engines
                .iter()
                .find(|e| e.name.eq_ignore_ascii_case(engine))
                .map(|e| e.version.clone())
        };
        match (version(coordinator), version(worker)) {
            (Some(ours), Some(theirs)) if ours != theirs => {
                return Some(format!(
                    "its engine `{engine}` is version {theirs} but the coordinator's is {ours}; \
                     put the same engine library in every machine's plugin directory"
                ));
            }
            (Some(ours), None) => {
                return Some(format!(
                    "it has no engine `{engine}` (the coordinator's is version {ours}); put the \
                     same engine library in its plugin directory"
                ));
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn described(accel: &str, engines: &[(&str, &str)]) -> WorkerDescription {
        let mut description = this_process(
            engines
                .iter()
                .map(|(name, version)| EngineVersion {
                    name: (*name).to_owned(),
                    version: (*version).to_owned(),
                })
                .collect(),
        );
        description.accel_version = accel.to_owned();
        description
    }

    #[test]
    fn a_worker_with_another_engine_version_is_named_with_both_versions() {
        let ours = described("0.1.0", &[("duckdb", "1.0.0"), ("sqlite", "0.1.0")]);
        let theirs = described("0.1.0", &[("duckdb", "1.1.0"), ("sqlite", "0.1.0")]);
        let used = vec!["duckdb".to_owned()];
        let why = mismatch(&ours, &theirs, &used).unwrap();
        assert!(why.contains("1.1.0") && why.contains("1.0.0"), "{why}");
        // An engine no sharded dataset uses may differ.
        assert_eq!(mismatch(&ours, &theirs, &["sqlite".to_owned()]), None);
        let missing = described("0.1.0", &[("sqlite", "0.1.0")]);
        assert!(
            mismatch(&ours, &missing, &used)
                .unwrap()
                .contains("no engine `duckdb`")
        );
        let other_release = described("0.2.0", &[("duckdb", "1.0.0")]);
        assert!(
            mismatch(&ours, &other_release, &used)
                .unwrap()
                .contains("accel 0.2.0")
        );
    }
}
