//! Steps 2 and 6 of the library pipeline: pin a file under a private name, and open a
//! checked library and obtain its engine.
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

use accel_plugin_api::abi_stable::library::{AbiHeaderRef, ROOT_MODULE_LOADER_NAME_WITH_NUL};
use accel_plugin_api::boundary::metadata::PluginMetadata;
use accel_plugin_api::boundary::{AcceleratorModuleRef, ForeignAccelerator};

use crate::library::check::CheckedLibrary;

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

/// Prefix of the private copies directories in the temporary directory; the process id
/// follows, so a later process can tell the directories of dead ones.
const COPIES_PREFIX: &str = "accel-plugins-";

/// Name of the file in a copies directory that its process keeps locked while it runs.
const OWNER_LOCK: &str = ".owner";

/// This process's directory for per-generation copies: created once, with a random name and
/// mode 0700 whatever the umask, so no other user can place or swap files in it. Creating it
/// first removes the directories that killed processes left behind (hundreds of MB each).
/// The process holds a lock on the directory's `.owner` file for its lifetime: that lock, not
/// the process id (another PID namespace may share the temporary directory), tells a later
/// process whether the directory is still in use.
fn copies_dir() -> std::io::Result<&'static Path> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    static OWNER: OnceLock<File> = OnceLock::new();
    DIR.get_or_init(|| {
        remove_stale_copies(&std::env::temp_dir());
        let dir = tempfile::Builder::new()
            .prefix(&format!("{COPIES_PREFIX}{}-", std::process::id()))
            .tempdir()
            .map(tempfile::TempDir::keep)
            .map_err(|e| e.to_string())?;
        let owned = || -> std::io::Result<File> {
            set_private(&dir)?;
            let owner = File::create(dir.join(OWNER_LOCK))?;
            owner.lock()?;
            Ok(owner)
        };
        let owner = owned().map_err(|e| format!("{}: {e}", dir.display()))?;
        let _ = OWNER.set(owner); // held, and so locked, until the process ends
        Ok(dir)
    })
    .as_ref()
    .map(PathBuf::as_path)
    .map_err(|e| std::io::Error::other(e.clone()))
}

#[cfg(unix)]
fn set_private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

#[cfg(not(unix))]
fn set_private(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Removes the copies directories in `temp` of this user's processes that are no longer
/// running: those whose `.owner` file nobody holds locked. A directory without one (being
/// created this instant, or left by an older accel) is judged by its process id instead, and
/// left alone while a process of that id runs.
pub fn remove_stale_copies(temp: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(temp) else {
        return removed;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(COPIES_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !owned_by_this_user(&entry.path()) {
            continue;
        }
        let in_use = match File::open(entry.path().join(OWNER_LOCK)) {
            Ok(owner) => owner.try_lock().is_err(),
            Err(_) => process_alive(pid),
        };
        if !in_use && std::fs::remove_dir_all(entry.path()).is_ok() {
            removed.push(entry.path());
        }
    }
    removed
}

#[cfg(target_os = "linux")]
fn process_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

#[cfg(not(target_os = "linux"))]
fn process_alive(_pid: u32) -> bool {
    true // no cheap way to tell here: never remove another process's directory
}

#[cfg(unix)]
fn owned_by_this_user(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let user = crate::library::trust::current_uid();
    std::fs::symlink_metadata(path).is_ok_and(|m| Some(m.uid()) == user && m.is_dir())
}

#[cfg(not(unix))]
fn owned_by_this_user(_path: &Path) -> bool {
    false
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
/// The private name is a copy, except for a file nobody can write (no write bit, and the host
/// is not root, who may write anything): then it is a hard link, which pins the inode and
/// costs nothing where a copy of a 200 MB engine library costs a read and a write per load.
/// A link to a writable file would share the inode the running generation has mapped, and a
/// `cp new.so plugins/x.so` — what people type — would rewrite that code under the running
/// host (measured: SIGSEGV on the next query). `scripts/install-plugins` installs libraries
/// read-only to get the link.
pub fn private_copy(path: &Path) -> std::io::Result<PrivateCopy> {
    let generation = GENERATIONS.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let copy = copies_dir()?.join(format!("g{generation}-{name}"));
    // The file itself, not a symlink to it (a link to a symlink would follow its target later).
    let file = std::fs::canonicalize(path)?;
    let linked = nobody_can_write(&file)
        && std::fs::hard_link(&file, &copy).is_ok()
        && (nobody_can_write(&copy) || {
            // made writable between the check and the link: copy after all
            let _ = std::fs::remove_file(&copy);
            false
        });
    if !linked {
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

/// Whether no process can write `path` in place: it has no write bit and this host is not
/// root (root writes whatever the mode says).
#[cfg(unix)]
pub fn nobody_can_write(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let read_only = std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o222 == 0);
    read_only && crate::library::trust::current_uid().is_some_and(|uid| uid != 0)
}

#[cfg(not(unix))]
pub fn nobody_can_write(_path: &Path) -> bool {
    false
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
    let handle = match opened {
        // The library's initialisers have run: from here on it is never closed, whatever
        // fails next (its code may have registered thread-locals, threads or atexit hooks).
        Ok(handle) => ManuallyDrop::new(handle),
        Err(e) => {
            let _ = std::fs::remove_file(&copy);
            return Err(fail("dlopen", e.to_string()));
        }
    };
    let module = root_module(&handle);
    // The mapping stays valid after the copy is unlinked.
    let _ = std::fs::remove_file(&copy);
    let module = module.map_err(|(stage, e)| fail(stage, e))?;
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
        _handle: handle,
    };
    Ok((library, engine))
}

/// The root module behind the entry symbol of an opened library, with `abi_stable`'s version
/// and layout checks — read through the host's own handle, so a library is opened once.
fn root_module(
    handle: &libloading::Library,
) -> Result<AcceleratorModuleRef, (&'static str, String)> {
    // SAFETY: the file passed `check`, so its entry symbol is the `LibHeader` static that
    // `export_accelerator!` declares, which starts with an `AbiHeader`; the reference is
    // `'static` because the library is never unloaded (see the module docs).
    let header: AbiHeaderRef =
        unsafe { handle.get::<AbiHeaderRef>(ROOT_MODULE_LOADER_NAME_WITH_NUL.as_bytes()) }
            .map(|symbol| *symbol)
            .map_err(|e| ("reading the entry symbol", e.to_string()))?;
    let header = header
        .upgrade()
        .map_err(|e| ("reading the entry symbol", e.to_string()))?;
    header
        .init_root_module::<AcceleratorModuleRef>()
        .map_err(|e| ("checking the module layout", e.to_string()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_copies_of_dead_processes_are_removed_and_others_kept() {
        let temp = tempfile::tempdir().unwrap();
        // Beyond any pid_max: no such process.
        let dead = temp.path().join(format!("{COPIES_PREFIX}4294967294-abc"));
        let alive = temp
            .path()
            .join(format!("{COPIES_PREFIX}{}-xyz", std::process::id()));
        let unrelated = temp.path().join("accel-plugins-notapid");
        for dir in [&dead, &alive, &unrelated] {
            std::fs::create_dir(dir).unwrap();
            std::fs::write(dir.join("g1-libx.so"), b"copy").unwrap();
        }
        // A directory whose owner holds its lock stays, whatever its process id says.
        let locked = temp.path().join(format!("{COPIES_PREFIX}4294967293-def"));
        std::fs::create_dir(&locked).unwrap();
        let owner = File::create(locked.join(OWNER_LOCK)).unwrap();
        owner.lock().unwrap();
        // One with an owner file nobody holds is stale, whatever its process id says.
        let released = temp
            .path()
            .join(format!("{COPIES_PREFIX}{}-ghi", std::process::id()));
        std::fs::create_dir(&released).unwrap();
        File::create(released.join(OWNER_LOCK)).unwrap();
        let mut removed = remove_stale_copies(temp.path());
        removed.sort();
        let mut expected = vec![dead.clone(), released.clone()];
        expected.sort();
        assert_eq!(removed, expected);
        assert!(locked.exists(), "a held lock keeps the directory");
        drop(owner);
        assert!(!dead.exists());
        assert!(
            alive.join("g1-libx.so").exists(),
            "this process's copies stay"
        );
        assert!(unrelated.exists(), "a name without a pid is not ours");
    }

    #[cfg(unix)]
    #[test]
    fn the_private_directory_is_0700_and_writable_files_are_copied_not_linked() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = copies_dir().unwrap();
        let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", dir.display());

        let plugins = tempfile::tempdir().unwrap();
        let library = plugins.path().join("libx.so");
        std::fs::write(&library, b"library bytes").unwrap();
        std::fs::set_permissions(&library, std::fs::Permissions::from_mode(0o644)).unwrap();
        let copy = private_copy(&library).unwrap();
        let inode = |p: &Path| std::fs::metadata(p).unwrap().ino();
        assert_ne!(
            inode(&copy.path),
            inode(&library),
            "a writable file is copied"
        );
        // Rewriting the plugin file in place (what `cp` does) leaves the private copy alone.
        std::fs::write(&library, b"other bytes!!").unwrap();
        assert_eq!(std::fs::read(&copy.path).unwrap(), b"library bytes");
        std::fs::remove_file(&copy.path).unwrap();

        std::fs::set_permissions(&library, std::fs::Permissions::from_mode(0o444)).unwrap();
        let copy = private_copy(&library).unwrap();
        let linked = inode(&copy.path) == inode(&library);
        assert_eq!(
            linked,
            nobody_can_write(&library),
            "a read-only file is linked unless the host is root"
        );
        std::fs::remove_file(&copy.path).unwrap();
    }
}
