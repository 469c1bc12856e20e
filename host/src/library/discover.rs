//! Step 1 of the library pipeline (see the folder's doc): find candidate engine libraries in the plugin directories.
//!
//! Search order: the directories given with `--plugin-dir`, in order, then the entries of
//! `ACCEL_PLUGIN_PATH` (colon-separated). Only regular files whose name ends in the platform's
//! shared-library suffix are candidates; every other entry is reported as skipped with the
//! reason, so a user who dropped the wrong file learns why it was not loaded. Relative
//! directories are used only when given explicitly (flag or variable); nothing is searched
//! implicitly relative to the working directory.

use std::fmt;
use std::path::{Path, PathBuf};

/// Environment variable holding extra plugin directories.
pub const PLUGIN_PATH_VAR: &str = "ACCEL_PLUGIN_PATH";

/// Suffix of shared libraries on this platform.
pub const LIBRARY_SUFFIX: &str = std::env::consts::DLL_SUFFIX;

/// What a search of the plugin directories found.
#[derive(Debug, Default)]
pub struct Discovery {
    /// Every directory searched, in order.
    pub searched: Vec<PathBuf>,
    /// Files that look like engine libraries, in search order.
    pub candidates: Vec<PathBuf>,
    /// Entries that were not considered, with the reason.
    pub skipped: Vec<Skipped>,
}

/// An entry of a plugin directory that is not a candidate.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: skipped: {}", self.path.display(), self.reason)
    }
}

/// The plugin directories to search: explicit ones first, then `ACCEL_PLUGIN_PATH`.
pub fn plugin_dirs(explicit: &[PathBuf], plugin_path_var: Option<&str>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = explicit.to_vec();
    if let Some(var) = plugin_path_var {
        dirs.extend(var.split(':').filter(|s| !s.is_empty()).map(PathBuf::from));
    }
    let mut seen = std::collections::HashSet::new();
    dirs.retain(|d| seen.insert(d.clone()));
    dirs
}

/// Lists the candidate libraries in `dirs`.
pub fn discover(dirs: &[PathBuf]) -> Discovery {
    let mut found = Discovery::default();
    for dir in dirs {
        found.searched.push(dir.clone());
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                found.skipped.push(Skipped {
                    path: dir.clone(),
                    reason: format!("cannot read plugin directory: {e}"),
                });
                continue;
            }
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            match classify(&path) {
                Ok(()) => found.candidates.push(path),
                Err(reason) => found.skipped.push(Skipped { path, reason }),
            }
        }
    }
    found
}

fn classify(path: &Path) -> Result<(), String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.starts_with('.') {
        return Err("hidden file".to_owned());
    }
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot stat: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".to_owned());
    }
    if !name.ends_with(LIBRARY_SUFFIX) {
        return Err(format!(
            "not a shared library: engine libraries end in `{LIBRARY_SUFFIX}`; move other files \
             out of the plugin directory"
        ));
    }
    Ok(())
}
