//! Content fingerprints (XXH3-128) of engine libraries, computed off the start-up path.
//!
//! A fingerprint tells a reload whether a file that looks new (another path, a new mtime)
//! holds content that is loaded already (identity, not trust: the allow-list uses SHA-256).
//! Reading a 200 MB library for it took most of a library's start-up time, and start-up never
//! needs it: only a file whose engine name and version are already loaded can have loaded
//! content. So each fingerprint is computed by one background thread, from a descriptor
//! opened when the library is admitted (the private name may be gone by then), and whoever
//! needs it waits for it.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex, OnceLock};

/// The fingerprint of one library file, ready now or soon.
#[derive(Debug, Clone)]
pub struct Fingerprint(Arc<OnceLock<String>>);

impl Fingerprint {
    /// Starts fingerprinting the file at `path` (opened now) in the background.
    pub fn start(path: &Path) -> std::io::Result<Fingerprint> {
        let file = File::open(path)?;
        let slot = Arc::new(OnceLock::new());
        let job = (file, Arc::clone(&slot));
        if let Err(returned) = worker().lock().unwrap_or_else(|e| e.into_inner()).send(job) {
            // the worker is gone (it cannot panic, but be safe): do it here
            let (file, slot) = returned.0;
            let _ = slot.set(digest(file));
        }
        Ok(Fingerprint(slot))
    }

    /// The fingerprint, hex (waits for the background thread if it is not done yet).
    pub fn get(&self) -> &str {
        self.0.wait()
    }

    /// Waits until the file has been read (its descriptor is closed then).
    pub fn wait(&self) {
        self.get();
    }
}

type Job = (File, Arc<OnceLock<String>>);

/// The one fingerprinting thread, started on first use.
fn worker() -> &'static Mutex<Sender<Job>> {
    static WORKER: OnceLock<Mutex<Sender<Job>>> = OnceLock::new();
    WORKER.get_or_init(|| {
        let (sender, jobs) = channel::<Job>();
        std::thread::Builder::new()
            .name("accel-fingerprint".to_owned())
            .spawn(move || {
                for (file, slot) in jobs {
                    let _ = slot.set(digest(file));
                }
            })
            .expect("start the fingerprint thread");
        Mutex::new(sender)
    })
}

/// XXH3-128 of the file's content, hex; a read error gives a value no content has.
fn digest(mut file: File) -> String {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => return format!("{:032x}", hasher.digest128()),
            Ok(read) => hasher.update(&buffer[..read]),
            Err(e) => return format!("unreadable: {e}"),
        }
    }
}

/// A file as `stat` sees it: path, device, inode, size and modification time. Replacing or
/// rewriting the file changes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    path: PathBuf,
    device: u64,
    inode: u64,
    len: u64,
    modified_ns: i128,
}

impl FileIdentity {
    pub fn of(path: &std::path::Path) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        let metadata = std::fs::metadata(path).ok()?;
        Some(Self {
            path: path.to_owned(),
            device: metadata.dev(),
            inode: metadata.ino(),
            len: metadata.len(),
            modified_ns: i128::from(metadata.mtime()) * 1_000_000_000
                + i128::from(metadata.mtime_nsec()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_content_equal_fingerprint_even_after_the_name_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("c"),
        );
        std::fs::write(&a, vec![7u8; 3 << 20]).unwrap();
        std::fs::write(&b, vec![7u8; 3 << 20]).unwrap();
        std::fs::write(&c, vec![8u8; 3 << 20]).unwrap();
        let fa = Fingerprint::start(&a).unwrap();
        std::fs::remove_file(&a).unwrap();
        let fb = Fingerprint::start(&b).unwrap();
        let fc = Fingerprint::start(&c).unwrap();
        assert_eq!(fa.get(), fb.get());
        assert_ne!(fa.get(), fc.get());
        assert_eq!(fa.get().len(), 32);
    }
}
