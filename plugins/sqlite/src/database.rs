//! One open SQLite database and its connections.
//!
//! File mode: one [`Database`] per file, shared by the tables stored in it, in WAL journal mode
//! so readers never block the writer; writers of this process take turns on the database's
//! write lock, and `sqlite_busy_timeout` bounds the wait for another process's lock.
//! Memory mode: a private in-memory database (SQLite's `memdb` VFS under a unique name), so
//! several connections — concurrent scans, a scan joined with itself — see the same rows.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use accel_plugin_api::FileRelease;
use accel_plugin_api::embedded::{
    ConnectionPool, Connector, Interrupter, OpenFiles, Pooled, context_name,
};
use datafusion::error::{DataFusionError, Result};
use rusqlite::{Connection, OpenFlags};

/// Settings a database is opened with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOptions {
    /// How long a statement waits for a lock held by another connection.
    pub busy_timeout: Duration,
    /// Most connections open at once.
    pub pool_size: usize,
}

pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_millis(5000);
pub const DEFAULT_POOL_SIZE: usize = 8;

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            pool_size: DEFAULT_POOL_SIZE,
        }
    }
}

/// How long a query waits for a free connection before failing.
const CONNECTION_WAIT: Duration = Duration::from_secs(60);

pub fn sqlite_error(context: &str, e: rusqlite::Error) -> DataFusionError {
    let hint = match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            " (another connection held the lock longer than sqlite_busy_timeout; raise it)"
        }
        _ => "",
    };
    DataFusionError::External(format!("sqlite: {context}: {e}{hint}").into())
}

/// An open database: its connection pool and the lock writers take turns on.
pub struct Database {
    /// `None` in memory mode.
    path: Option<PathBuf>,
    /// Name of the database as a compute context (see `accel_plugin_api::embedded::Contexts`).
    context: String,
    pool: Arc<ConnectionPool<SqliteConnector>>,
    /// Held by a writer for its whole transaction, so writers of this process queue here
    /// instead of failing on SQLite's lock.
    write_lock: Mutex<()>,
    options: OpenOptions,
    /// Keeps an in-memory database alive while no query holds a connection.
    _keep_alive: Mutex<Option<Connection>>,
}

pub struct SqliteConnector {
    /// A file path or a `file:/…?vfs=memdb` URI.
    target: String,
    describe: String,
    options: OpenOptions,
}

impl Connector for SqliteConnector {
    type Connection = Connection;

    fn open(&self) -> Result<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = Connection::open_with_flags(&self.target, flags)
            .map_err(|e| sqlite_error(&format!("opening {}", self.describe), e))?;
        connection
            .busy_timeout(self.options.busy_timeout)
            .map_err(|e| sqlite_error("setting sqlite_busy_timeout", e))?;
        Ok(connection)
    }

    /// A connection left inside a transaction (a writer that failed to roll back) is rolled
    /// back or discarded, never handed out.
    fn recycle(&self, connection: &Connection) -> bool {
        (connection.is_autocommit() || connection.execute_batch("ROLLBACK").is_ok())
            && connection.is_autocommit()
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn interrupter(&self, connection: &Connection) -> Option<Interrupter> {
        let handle = connection.get_interrupt_handle();
        Some(Box::new(move || handle.interrupt()))
    }
}

pub type PooledConnection = Pooled<SqliteConnector>;

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("path", &self.path)
            .finish()
    }
}

impl Database {
    fn new(
        path: Option<PathBuf>,
        target: String,
        describe: String,
        options: &OpenOptions,
    ) -> Result<Arc<Self>> {
        let connector = SqliteConnector {
            target,
            describe,
            options: options.clone(),
        };
        let first = connector.open()?;
        let keep_alive = if path.is_some() {
            // WAL: readers see the last commit while a writer works; persistent in the file.
            first
                .pragma_update(None, "journal_mode", "WAL")
                .map_err(|e| sqlite_error("switching to WAL journal mode", e))?;
            None
        } else {
            Some(first)
        };
        Ok(Arc::new(Self {
            context: context_name(path.as_deref()),
            path,
            pool: ConnectionPool::new(
                connector,
                options.pool_size,
                CONNECTION_WAIT,
                "sqlite_connection_pool_size",
            ),
            write_lock: Mutex::new(()),
            options: options.clone(),
            _keep_alive: Mutex::new(keep_alive),
        }))
    }

    /// A new private in-memory database.
    pub fn in_memory(options: &OpenOptions) -> Result<Arc<Self>> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "file:/accel-sqlite-{}-{}?vfs=memdb",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        Self::new(None, name, "an in-memory database".to_owned(), options)
    }

    fn open_file(path: &Path, options: &OpenOptions) -> Result<Arc<Self>> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                DataFusionError::External(
                    format!("sqlite: cannot create directory {}: {e}", parent.display()).into(),
                )
            })?;
        }
        let target = path
            .to_str()
            .ok_or_else(|| {
                DataFusionError::Plan(format!("sqlite: path {} is not UTF-8", path.display()))
            })?
            .to_owned();
        if target.starts_with("file:") {
            return Err(DataFusionError::Plan(format!(
                "sqlite: {target} would be read as a URI; give a plain path"
            )));
        }
        Self::new(
            Some(path.to_owned()),
            target,
            path.display().to_string(),
            options,
        )
    }

    /// The database's name as a compute context: its file, or `memory #n`.
    pub fn context(&self) -> &str {
        &self.context
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// A connection, returned to the pool when dropped.
    pub fn connect(&self) -> Result<PooledConnection> {
        self.pool.get()
    }

    /// Waits for this process's other writers; hold it for the whole write transaction.
    pub fn write_lock(&self) -> MutexGuard<'_, ()> {
        self.write_lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves the WAL into the database file and truncates it, so the file alone is the whole
    /// database (a snapshot copies only the file). No-op in memory.
    pub fn checkpoint(&self) -> Result<()> {
        if self.path.is_some() {
            let _writer = self.write_lock();
            self.connect()?
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .map_err(|e| sqlite_error("checkpointing the WAL", e))?;
        }
        Ok(())
    }
}

/// The file databases open in this engine.
#[derive(Default)]
pub struct Databases {
    files: OpenFiles<Database>,
}

impl Databases {
    /// The database of `path`, opened once for all tables stored in it.
    pub fn file(&self, path: &Path, options: &OpenOptions) -> Result<Arc<Database>> {
        let database = self
            .files
            .get_or_open(path, || Database::open_file(path, options))?;
        if &database.options != options {
            return Err(DataFusionError::Plan(format!(
                "{} is already open with other settings ({:?}); tables in one SQLite file \
                 share its connections: give them the same sqlite_* options ({:?} here)",
                path.display(),
                database.options,
                options
            )));
        }
        Ok(database)
    }

    pub fn open_files(&self) -> Vec<Arc<Database>> {
        self.files.open()
    }

    /// Closes the database of `file` once its tables are gone: statements still running on
    /// it (scans whose consumers left) are interrupted, and this waits up to `wait` for them.
    pub async fn release(&self, file: &Path, wait: Duration) -> FileRelease {
        self.files
            .release(file, wait, |database| {
                database.pool.interrupt_all();
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(connection: &Connection) -> i64 {
        connection
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn memory_databases_are_shared_by_their_connections_and_private_to_each_table() {
        let options = OpenOptions::default();
        let a = Database::in_memory(&options).unwrap();
        let b = Database::in_memory(&options).unwrap();
        a.connect()
            .unwrap()
            .execute_batch("CREATE TABLE t (i INTEGER); INSERT INTO t VALUES (1), (2)")
            .unwrap();
        let first = a.connect().unwrap();
        let second = a.connect().unwrap();
        assert_eq!((count(&first), count(&second)), (2, 2));
        let missing = b.connect().unwrap().execute_batch("SELECT * FROM t");
        assert!(
            missing.is_err(),
            "another table's memory database is separate"
        );
    }

    #[test]
    fn file_databases_use_wal_and_hand_out_no_connection_inside_a_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let options = OpenOptions {
            pool_size: 1,
            ..OpenOptions::default()
        };
        let db = Databases::default()
            .file(&dir.path().join("t.sqlite"), &options)
            .unwrap();
        let conn = db.connect().unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        conn.execute_batch("CREATE TABLE t (i INTEGER); BEGIN; INSERT INTO t VALUES (1)")
            .unwrap();
        drop(conn); // returned mid-transaction
        let conn = db.connect().unwrap();
        assert!(conn.is_autocommit());
        assert_eq!(count(&conn), 0, "the abandoned insert was rolled back");
    }
}
