//! The typed record every refused or skipped library leaves, and the trace that carries them.
//!
//! Who records what: each stage of the pipeline that refuses a file returns one
//! [`LibraryRecord`] (path, engine if its metadata could be read, stage, reason, fix); the
//! pipeline collects them in order, and nothing else writes records. A later error that
//! mentions an engine which is not loaded (`STORED AS duckdb` with no `duckdb`) attaches the
//! records that concern that engine ([`records_about`]), the way a driver manager attaches its
//! search trace to "driver not found" — so the user learns *why* the library in the plugin
//! directory was refused, not only where the host looked.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where in the pipeline a library was refused or skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Listing the plugin directories: not a library file, or the directory is unreadable.
    Discover,
    /// Reading the file (its private copy, its content fingerprint).
    Read,
    /// Permissions, ownership and the directory's allow-list.
    Trust,
    /// The metadata record read from the file: ABI, datafusion-ffi major, target, name.
    Check,
    /// Another library already provides this engine name and version, or the name is built in.
    Register,
    /// `dlopen`, the entry symbol, the module layout, the engine's own start.
    Load,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Discover => "discover",
            Stage::Read => "read",
            Stage::Trust => "trust",
            Stage::Check => "check",
            Stage::Register => "register",
            Stage::Load => "load",
        })
    }
}

/// One library (or plugin directory entry) that was not loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibraryRecord {
    /// The file (or directory) in the plugin directory.
    pub path: PathBuf,
    /// The engine the library provides, when its metadata could be read.
    pub engine: Option<String>,
    pub stage: Stage,
    /// The whole story for a person: the file, what is wrong, and what to do.
    pub reason: String,
    /// What to do about it, alone (for programs that show it apart).
    pub fix: String,
}

impl fmt::Display for LibraryRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl LibraryRecord {
    pub fn new(
        path: &Path,
        engine: Option<String>,
        stage: Stage,
        reason: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            path: path.to_owned(),
            engine,
            stage,
            reason: reason.into(),
            fix: fix.into(),
        }
    }

    /// Whether this record may explain why engine `name` is missing: its metadata names the
    /// engine, or (metadata unread) its file name contains the engine's name.
    pub fn concerns(&self, name: &str) -> bool {
        match &self.engine {
            Some(engine) => engine == name,
            None => self
                .path
                .file_name()
                .is_some_and(|file| file.to_string_lossy().contains(name)),
        }
    }
}

/// The records among `records` that concern engine `name`, one per line, for an error message
/// (empty when there are none).
pub fn records_about(records: &[LibraryRecord], name: &str) -> String {
    records
        .iter()
        .filter(|r| r.concerns(name))
        .map(|r| format!("\n  - [{}] {r}", r.stage))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_concern_an_engine_by_metadata_or_by_file_name() {
        let by_metadata = LibraryRecord::new(
            Path::new("/p/libx.so"),
            Some("duckdb".to_owned()),
            Stage::Check,
            "/p/libx.so: incompatible",
            "rebuild",
        );
        let by_name = LibraryRecord::new(
            Path::new("/p/libaccel_engine_duckdb_plugin.so"),
            None,
            Stage::Trust,
            "refused: writable",
            "chmod go-w",
        );
        let other = LibraryRecord::new(
            Path::new("/p/libduckdb_tools.so"),
            Some("sqlite".to_owned()),
            Stage::Load,
            "dlopen failed",
            "",
        );
        let records = [by_metadata, by_name, other];
        let about = records_about(&records, "duckdb");
        assert!(
            about.contains("[check] /p/libx.so: incompatible"),
            "{about}"
        );
        assert!(about.contains("[trust] refused: writable"), "{about}");
        assert!(!about.contains("dlopen failed"), "{about}");
        assert_eq!(records_about(&records, "arrow"), "");
    }
}
