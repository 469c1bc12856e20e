//! One open DuckDB database (a file, or one in-memory instance) and its connections.
//!
//! DuckDB must never have the same file open twice in one process: every table stored in a
//! file shares that file's single [`Database`], found through [`Databases`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use datafusion::error::{DataFusionError, Result};
use duckdb::{Config, Connection};

/// Settings a database is opened with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenOptions {
    pub memory_limit: Option<String>,
    pub threads: Option<i64>,
    /// Most connections open at once; `None` for the default.
    pub pool_size: Option<usize>,
}

/// Connections per database unless `duckdb_connection_pool_size` says otherwise.
pub const DEFAULT_POOL_SIZE: usize = 32;

/// An open database: a root connection and idle clones of it.
pub struct Database {
    /// `None` for an in-memory database.
    path: Option<PathBuf>,
    root: Mutex<Connection>,
    pool: Mutex<Pool>,
    /// Signalled when a connection is returned.
    returned: Condvar,
    /// Most connections open at once (`duckdb_connection_pool_size`).
    max_connections: usize,
    /// Settings the database was opened with.
    options: OpenOptions,
}

/// Connections not in use, and how many exist.
#[derive(Default)]
struct Pool {
    idle: Vec<Connection>,
    open: usize,
}

/// How long a query waits for a free connection before failing.
const CONNECTION_WAIT: Duration = Duration::from_secs(60);

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("path", &self.path)
            .finish()
    }
}

pub fn duck_error(context: &str, e: duckdb::Error) -> DataFusionError {
    DataFusionError::External(format!("duckdb: {context}: {e}").into())
}

fn config(options: &OpenOptions) -> Result<Config> {
    // Never download extensions at query time: the bundled DuckDB is all there is.
    let mut config = Config::default()
        .enable_autoload_extension(false)
        .and_then(|c| c.with("autoinstall_known_extensions", "false"))
        .map_err(|e| duck_error("configuring", e))?;
    if let Some(limit) = &options.memory_limit {
        config = config
            .max_memory(limit)
            .map_err(|e| duck_error("duckdb_memory_limit", e))?;
    }
    if let Some(threads) = options.threads {
        config = config
            .threads(threads)
            .map_err(|e| duck_error("duckdb_threads", e))?;
    }
    Ok(config)
}

impl Database {
    /// Opens a new in-memory database.
    pub fn in_memory(options: &OpenOptions) -> Result<Arc<Self>> {
        let root = Connection::open_in_memory_with_flags(config(options)?)
            .map_err(|e| duck_error("opening an in-memory database", e))?;
        Ok(Arc::new(Self {
            path: None,
            root: Mutex::new(root),
            pool: Mutex::new(Pool::default()),
            returned: Condvar::new(),
            max_connections: options.pool_size.unwrap_or(DEFAULT_POOL_SIZE).max(1),
            options: options.clone(),
        }))
    }

    fn open_file(path: &Path, options: &OpenOptions) -> Result<Arc<Self>> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                DataFusionError::External(
                    format!("duckdb: cannot create directory {}: {e}", parent.display()).into(),
                )
            })?;
        }
        let root = Connection::open_with_flags(path, config(options)?)
            .map_err(|e| duck_error(&format!("opening {}", path.display()), e))?;
        Ok(Arc::new(Self {
            path: Some(path.to_owned()),
            root: Mutex::new(root),
            pool: Mutex::new(Pool::default()),
            returned: Condvar::new(),
            max_connections: options.pool_size.unwrap_or(DEFAULT_POOL_SIZE).max(1),
            options: options.clone(),
        }))
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// A connection to this database, returned to the pool when dropped.
    /// Blocks (up to a minute) while all `max_connections` are in use.
    pub fn connect(self: &Arc<Self>) -> Result<PooledConnection> {
        let deadline = Instant::now() + CONNECTION_WAIT;
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        let conn = loop {
            if let Some(conn) = pool.idle.pop() {
                break conn;
            }
            if pool.open < self.max_connections {
                pool.open += 1;
                drop(pool);
                let cloned = self
                    .root
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .try_clone();
                match cloned {
                    Ok(conn) => break conn,
                    Err(e) => {
                        self.pool.lock().unwrap_or_else(|e| e.into_inner()).open -= 1;
                        self.returned.notify_one();
                        return Err(duck_error("opening a connection", e));
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(DataFusionError::Execution(format!(
                    "duckdb: all {} connections of {} stayed busy for {:?}; raise \
                     duckdb_connection_pool_size",
                    self.max_connections,
                    self.describe(),
                    CONNECTION_WAIT
                )));
            }
            pool = self
                .returned
                .wait_timeout(pool, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        };
        Ok(PooledConnection {
            conn: Some(conn),
            database: Arc::clone(self),
        })
    }

    fn describe(&self) -> String {
        match &self.path {
            Some(path) => path.display().to_string(),
            None => "an in-memory database".to_owned(),
        }
    }

    /// Connections open now (idle or in use).
    #[cfg(test)]
    fn open_connections(&self) -> usize {
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).open
    }

    /// Writes everything to the file (no-op in memory).
    pub fn checkpoint(&self) -> Result<()> {
        if self.path.is_some() {
            self.root
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .execute_batch("CHECKPOINT")
                .map_err(|e| duck_error("checkpoint", e))?;
        }
        Ok(())
    }
}

/// A connection borrowed from a [`Database`].
pub struct PooledConnection {
    conn: Option<Connection>,
    database: Arc<Database>,
}

impl std::ops::Deref for PooledConnection {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("present until drop")
    }
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Never hand out a connection with a transaction still open (a panic or a failed
            // ROLLBACK between BEGIN and COMMIT): later users would fail or read old data.
            let clean = !std::thread::panicking()
                && (conn.is_autocommit() || conn.execute_batch("ROLLBACK").is_ok())
                && conn.is_autocommit();
            let mut pool = self.database.pool.lock().unwrap_or_else(|e| e.into_inner());
            if clean {
                pool.idle.push(conn);
            } else {
                pool.open -= 1;
                drop(conn);
            }
            self.database.returned.notify_one();
        }
    }
}

/// The file databases open in this engine, by canonical path.
#[derive(Default)]
pub struct Databases {
    files: Mutex<HashMap<PathBuf, Weak<Database>>>,
}

impl Databases {
    /// The database of `path`, opened once for all tables stored in it.
    pub fn file(&self, path: &Path, options: &OpenOptions) -> Result<Arc<Database>> {
        let key = canonical(path);
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(db) = files.get(&key).and_then(Weak::upgrade) {
            if &db.options != options {
                return Err(DataFusionError::Plan(format!(
                    "{} is already open with other settings ({:?}); tables in one DuckDB file \
                     share its database: give them the same duckdb_* options ({:?} here)",
                    path.display(),
                    db.options,
                    options
                )));
            }
            return Ok(db);
        }
        let db = Database::open_file(path, options)?;
        files.insert(key, Arc::downgrade(&db));
        Ok(db)
    }

    /// Every file database still open.
    pub fn open_files(&self) -> Vec<Arc<Database>> {
        let files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        files.values().filter_map(Weak::upgrade).collect()
    }
}

/// `path` made absolute and free of `..` as far as it exists, so two spellings of one file
/// share a database.
fn canonical(path: &Path) -> PathBuf {
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
    fn the_pool_never_opens_more_than_its_size_and_reuses_connections() {
        let options = OpenOptions {
            pool_size: Some(2),
            ..OpenOptions::default()
        };
        let db = Database::in_memory(&options).unwrap();
        let a = db.connect().unwrap();
        let b = db.connect().unwrap();
        assert_eq!(db.open_connections(), 2);
        let waiter = {
            let db = Arc::clone(&db);
            std::thread::spawn(move || {
                let c = db.connect().unwrap();
                c.execute_batch("SELECT 1").unwrap();
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            !waiter.is_finished(),
            "a third connection waits for a free one"
        );
        drop(a);
        waiter.join().unwrap();
        drop(b);
        assert_eq!(db.open_connections(), 2);
    }
}
