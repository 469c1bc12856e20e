//! Step 3 of the pipeline: open a checked library and obtain its engine.
//!
//! Policy, enforced here:
//! - a library is opened under a **unique private name** (one per load, a "generation"; a hard
//!   link to the file when possible, else a copy, see [`private_copy`]): glibc deduplicates
//!   `dlopen` by path, so loading a second version needs a new name; the plugin directory's
//!   name is never opened, so the file can be replaced there (by rename) at any time;
//! - `RTLD_NOW | RTLD_LOCAL`: an unresolved symbol fails here, not at first call, and a
//!   library's symbols never satisfy another's;
//! - a library is **never unloaded** (`dlclose`): Rust libraries leave thread-local destructors,
//!   runtime threads and objects whose `release` functions point into their code. Every object
//!   that came from a library keeps an `Arc<LoadedLibrary>`, so the host always knows what a
//!   generation still serves, and retiring one is a matter of dropping those.

use std::fs::{File, OpenOptions};
use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use accel_plugin_api::abi_stable::library::lib_header_from_path;
use accel_plugin_api::ffi::{AcceleratorModuleRef, ForeignAccelerator};
use accel_plugin_api::metadata::PluginMetadata;

use crate::check::CheckedLibrary;

/// A library mapped into this process. Dropping it does not unload the code (see module docs).
#[derive(Debug)]
pub struct LoadedLibrary {
    /// The file in the plugin directory.
    pub path: PathBuf,
    pub metadata: PluginMetadata,
    pub version: semver::Version,
    /// Process-wide load counter: each load of any library is a new generation.
    pub generation: u64,
    /// The private copy that was mapped (unlinked once opened).
    pub copy: PathBuf,
    _handle: ManuallyDrop<libloading::Library>,
}

impl LoadedLibrary {
    /// Resident memory of this generation's library mappings, in kB (Linux; 0 elsewhere): what
    /// the code and static data of a never-unloaded generation keep occupying.
    pub fn resident_kb(&self) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
        let copy = self.copy.to_string_lossy();
        let mut in_library = false;
        let mut total = 0;
        for line in smaps.lines() {
            let first = line.split_whitespace().next().unwrap_or("");
            if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
                in_library = line.contains(copy.as_ref());
            } else if in_library && let Some(kb) = line.strip_prefix("Rss:") {
                total += kb
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .unwrap_or(0);
            }
        }
        total
    }
}

/// Why a checked library could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {stage}: {detail}")]
pub struct LoadError {
    pub path: PathBuf,
    pub stage: &'static str,
    pub detail: String,
}

static GENERATIONS: AtomicU64 = AtomicU64::new(1);

/// This process's directory for per-generation copies: created once, with a random name and
/// mode 0700, so no other user can place or swap files in it.
fn copies_dir() -> std::io::Result<&'static Path> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("accel-plugins-")
            .tempdir()
            .map(tempfile::TempDir::keep)
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map(PathBuf::as_path)
    .map_err(|e| std::io::Error::other(e.clone()))
}

/// Removes the private copies directory if it is empty (every copy is deleted once mapped).
/// For the end of a process: later loads in this process would fail.
pub fn remove_copies_dir() {
    if let Ok(dir) = copies_dir() {
        let _ = std::fs::remove_dir(dir);
    }
}

/// A library copied into the private directory under a new generation's name.
pub struct PrivateCopy {
    pub path: PathBuf,
    pub generation: u64,
}

/// Puts a library into the private directory under a new generation's name. Everything after
/// this — the fingerprint, the allow-list hash, the metadata check, `dlopen` — reads the
/// private name, so renaming or replacing the file in the plugin directory cannot change what
/// was checked.
///
/// On the same filesystem the private name is a hard link: it pins the file's inode and costs
/// nothing, where a copy of a 200 MB engine library costs a disk write per load (the measured
/// start-up bottleneck). A link does not protect against the file being rewritten in place,
/// which only its owner (the host's user, by the trust policy) or root can do: install
/// libraries by copy and rename, as `scripts/install-plugins` does. Elsewhere, a copy.
pub fn private_copy(path: &Path) -> std::io::Result<PrivateCopy> {
    let generation = GENERATIONS.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let copy = copies_dir()?.join(format!("g{generation}-{name}"));
    if std::fs::hard_link(path, &copy).is_err() {
        let mut source = File::open(path)?;
        let mut target = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&copy)?;
        std::io::copy(&mut source, &mut target)?;
    }
    Ok(PrivateCopy {
        path: copy,
        generation,
    })
}

/// Loads a checked library from its private copy (see [`private_copy`]) and builds its engine.
/// The copy is removed once opened (the mapping stays valid).
pub fn load(
    checked: &CheckedLibrary,
    copy: &Path,
    generation: u64,
) -> Result<(LoadedLibrary, ForeignAccelerator), LoadError> {
    let fail = |stage: &'static str, detail: String| LoadError {
        path: checked.path.clone(),
        stage,
        detail,
    };
    let copy = copy.to_owned();
    let opened = open_now_local(&copy);
    let result = opened
        .map_err(|e| fail("dlopen", e.to_string()))
        .and_then(|handle| {
            let header = lib_header_from_path(&copy)
                .map_err(|e| fail("reading the entry symbol", e.to_string()))?;
            let module = header
                .init_root_module::<AcceleratorModuleRef>()
                .map_err(|e| fail("checking the module layout", e.to_string()))?;
            Ok((handle, module))
        });
    // The mapping stays valid after the copy is unlinked.
    let _ = std::fs::remove_file(&copy);
    let (handle, module) = result?;
    let engine = ForeignAccelerator::new(module).map_err(|e| fail("starting the engine", e))?;
    use accel_plugin_api::DataAccelerator;
    if engine.name() != checked.metadata.engine_name {
        return Err(fail(
            "starting the engine",
            format!(
                "metadata names engine `{}` but the library's engine calls itself `{}`",
                checked.metadata.engine_name,
                engine.name()
            ),
        ));
    }
    let library = LoadedLibrary {
        path: checked.path.clone(),
        metadata: checked.metadata.clone(),
        version: checked.version.clone(),
        generation,
        copy: copy.clone(),
        _handle: ManuallyDrop::new(handle),
    };
    Ok((library, engine))
}

#[cfg(unix)]
fn open_now_local(path: &Path) -> Result<libloading::Library, libloading::Error> {
    use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
    // SAFETY: opening runs the library's initialisers. The file passed `check` (an engine
    // library built with export_accelerator! for this host's ABI, datafusion-ffi major and
    // target); initialisers of such a library only set up Rust statics.
    unsafe { Library::open(Some(path), RTLD_NOW | RTLD_LOCAL) }.map(Into::into)
}

#[cfg(not(unix))]
fn open_now_local(path: &Path) -> Result<libloading::Library, libloading::Error> {
    // SAFETY: as above; Windows resolves imports at load time.
    unsafe { libloading::Library::new(path) }
}
