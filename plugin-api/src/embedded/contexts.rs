//! The compute contexts of an engine that runs whole statements ([`crate::SqlEngine`]): every
//! open database has a name (its file, or `memory #n`) under which the host groups the tables
//! stored in it, and which comes back with each statement to run there.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use datafusion::error::{DataFusionError, Result};

/// The context name of a database: its file, or a name unique in this process for an
/// in-memory one.
pub fn context_name(file: Option<&std::path::Path>) -> String {
    static NEXT_MEMORY: AtomicU64 = AtomicU64::new(1);
    match file {
        Some(path) => path.display().to_string(),
        None => format!("memory #{}", NEXT_MEMORY.fetch_add(1, Ordering::Relaxed)),
    }
}

/// The open databases of one engine, by context name. Holds them weakly: a database closes
/// with its last table, whatever the host still remembers.
pub struct Contexts<D> {
    open: Mutex<HashMap<String, Weak<D>>>,
}

impl<D> Default for Contexts<D> {
    fn default() -> Self {
        Self {
            open: Mutex::new(HashMap::new()),
        }
    }
}

impl<D> Contexts<D> {
    /// Records that `database` answers to `name`.
    pub fn remember(&self, name: &str, database: &Arc<D>) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|_, d| d.strong_count() > 0);
        open.insert(name.to_owned(), Arc::downgrade(database));
    }

    /// The database called `name`, while it is open.
    pub fn find(&self, name: &str, engine: &str) -> Result<Arc<D>> {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(name).and_then(Weak::upgrade).ok_or_else(|| {
            DataFusionError::Execution(format!(
                "engine `{engine}`: no open database `{name}` (its tables were dropped or moved \
                 to another engine generation); run the query again"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_context_is_found_while_its_database_is_open_only() {
        let contexts = Contexts::default();
        let database = Arc::new(7u8);
        let name = context_name(None);
        assert_ne!(name, context_name(None), "memory names are unique");
        contexts.remember(&name, &database);
        assert_eq!(*contexts.find(&name, "e").unwrap(), 7);
        drop(database);
        let error = contexts.find(&name, "e").unwrap_err().to_string();
        assert!(
            error.contains(&name) && error.contains("run the query again"),
            "{error}"
        );
    }
}
