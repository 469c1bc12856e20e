//! Engine libraries on disk, from a plugin directory entry to a mapped library: every step
//! that touches a file, each turning a refusal into a typed [`trace::LibraryRecord`].
//!
//! 1. [`discover`] — list the plugin directories (`--plugin-dir`, `ACCEL_PLUGIN_PATH`);
//! 2. [`load::private_copy`] — pin the file under a private per-generation name: every later
//!    step reads that name, so replacing the file in the plugin directory cannot change what
//!    was checked;
//! 3. [`trust`] — permissions, ownership and the directory's allow-list;
//! 4. [`check`] — the metadata record read from the file (ABI, datafusion-ffi major, target,
//!    engine name and version) before any of its code runs;
//! 5. [`fingerprint`] — its content, in the background, so a reload can skip content that is
//!    loaded already;
//! 6. [`load`] — `dlopen` the private copy and obtain the engine's function table.
//!
//! [`prepare`] runs steps 2–5 for one file. Policy stated where it is enforced: no relative
//! search paths beyond what the user gives (`discover`), never `dlclose` (`load`).
//!
//! Owns files and mappings; knows nothing of registries, tables or sessions (it must not
//! depend on any other folder of the host): [`crate::host`] composes these steps with the
//! engine registry.

pub mod check;
pub mod discover;
pub mod fingerprint;
pub mod load;
pub mod trace;
pub mod trust;

use std::path::{Path, PathBuf};

use check::{CheckedLibrary, check_as, read_metadata};
use fingerprint::{FileIdentity, Fingerprint};
use load::private_copy;
use trace::{LibraryRecord, Stage};
use trust::{PermissionPolicy, check_trust};

/// A library that passed steps 2–5: pinned, trusted, checked, being fingerprinted.
#[derive(Debug)]
pub struct Prepared {
    /// The file in the plugin directory.
    pub path: PathBuf,
    /// The file as it was on disk when it was pinned (`None`: it could not be stat'ed).
    pub identity: Option<FileIdentity>,
    /// The private name the library is read and opened under.
    pub copy: PathBuf,
    pub generation: u64,
    pub checked: CheckedLibrary,
    pub fingerprint: Fingerprint,
}

impl Prepared {
    /// Gives the library up before loading it: its private name is removed.
    pub fn discard(self) {
        let _ = std::fs::remove_file(&self.copy);
    }
}

/// Steps 2–5 for one candidate file: its private copy, trust, metadata check, fingerprint.
pub fn prepare(path: &Path, policy: PermissionPolicy) -> Result<Prepared, LibraryRecord> {
    let identity = FileIdentity::of(path);
    let copy = private_copy(path).map_err(|e| {
        LibraryRecord::new(
            path,
            None,
            Stage::Read,
            format!("{}: cannot read: {e}", path.display()),
            "make the file readable by the host's user",
        )
    })?;
    let discard = |record: LibraryRecord| {
        let _ = std::fs::remove_file(&copy.path);
        record
    };
    check_trust(path, &copy.path, policy).map_err(|e| {
        // Reading the record runs none of the library's code: it names the engine in the
        // record even for a file that is not trusted to be loaded.
        let engine = read_metadata(&copy.path).ok().map(|m| m.engine_name);
        discard(LibraryRecord::new(
            path,
            engine,
            Stage::Trust,
            e.to_string(),
            e.fix(),
        ))
    })?;
    let checked = check_as(&copy.path, path).map_err(|e| {
        discard(LibraryRecord::new(
            path,
            e.engine(),
            Stage::Check,
            e.to_string(),
            e.fix(),
        ))
    })?;
    let fingerprint = Fingerprint::start(&copy.path).map_err(|e| {
        discard(LibraryRecord::new(
            path,
            Some(checked.metadata.engine_name.clone()),
            Stage::Read,
            format!("{}: cannot read: {e}", path.display()),
            "make the file readable by the host's user",
        ))
    })?;
    Ok(Prepared {
        path: path.to_owned(),
        identity,
        copy: copy.path,
        generation: copy.generation,
        checked,
        fingerprint,
    })
}
