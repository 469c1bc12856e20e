//! One open database per file: tables stored in the same file share it, found by the file's
//! canonical path (an embedded database must not open one file twice in a process).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use datafusion::error::Result;

use crate::contract::accelerator::FileRelease;

/// The databases open in an engine, by canonical file path; a database closes when its last
/// table is dropped.
pub struct OpenFiles<D> {
    files: Mutex<HashMap<PathBuf, Weak<D>>>,
}

impl<D> Default for OpenFiles<D> {
    fn default() -> Self {
        Self {
            files: Mutex::new(HashMap::new()),
        }
    }
}

impl<D> OpenFiles<D> {
    /// The database of `path`: the one already open, or the one `open` opens.
    pub fn get_or_open(
        &self,
        path: &Path,
        open: impl FnOnce() -> Result<Arc<D>>,
    ) -> Result<Arc<D>> {
        let key = canonical(path);
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(database) = files.get(&key).and_then(Weak::upgrade) {
            return Ok(database);
        }
        let database = open()?;
        files.retain(|_, d| d.strong_count() > 0);
        files.insert(key, Arc::downgrade(&database));
        Ok(database)
    }

    /// Every database still open.
    pub fn open(&self) -> Vec<Arc<D>> {
        let files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        files.values().filter_map(Weak::upgrade).collect()
    }

    /// Closes the database of `path` once nothing else holds it: `stop` interrupts what still
    /// uses it (scans and statements whose consumers are gone), then this waits — up to `wait`
    /// — for the last holder to let go. Called when every table of the file was dropped.
    pub async fn release(&self, path: &Path, wait: Duration, stop: impl Fn(&D)) -> FileRelease {
        let key = canonical(path);
        let Some(database) = self
            .files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .and_then(Weak::upgrade)
        else {
            return FileRelease::Released;
        };
        let deadline = Instant::now() + wait;
        loop {
            stop(&database);
            if Arc::strong_count(&database) == 1 {
                drop(database); // the last holder: the database closes its file here
                return FileRelease::Released;
            }
            if Instant::now() >= deadline {
                return FileRelease::StillOpen;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// `path` made absolute and free of `..` as far as it exists, so two spellings of one file
/// name one database.
pub fn canonical(path: &Path) -> PathBuf {
    if let Ok(p) = path.canonicalize() {
        return p;
    }
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) if !parent.as_os_str().is_empty() => parent
            .canonicalize()
            .map(|p| p.join(name))
            .unwrap_or_else(|_| path.to_owned()),
        _ => std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_spellings_of_one_file_share_a_database_until_it_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let files = OpenFiles::<String>::default();
        let a = files
            .get_or_open(&dir.path().join("t.db"), || Ok(Arc::new("first".into())))
            .unwrap();
        let b = files
            .get_or_open(&dir.path().join("sub/../t.db"), || {
                Ok(Arc::new("second".into()))
            })
            .unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(files.open().len(), 1);
        drop((a, b));
        assert!(files.open().is_empty());
        let c = files
            .get_or_open(&dir.path().join("t.db"), || Ok(Arc::new("third".into())))
            .unwrap();
        assert_eq!(c.as_str(), "third");
    }
}
