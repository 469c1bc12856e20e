//! One open DuckDB database (a file, or one in-memory instance) and its connections.
//!
//! DuckDB must never have the same file open twice in one process: every table stored in a
//! file shares that file's single [`Database`], found through [`Databases`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use accel_plugin_api::FileRelease;
use accel_plugin_api::embedded::{
    ConnectionPool, Connector, Interrupter, OpenFiles, Pooled, context_name,
};
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

/// How long a query waits for a free connection before failing.
const CONNECTION_WAIT: Duration = Duration::from_secs(60);

/// An open database and the pool of its connections.
pub struct Database {
    /// `None` for an in-memory database.
    path: Option<PathBuf>,
    /// Name of the database as a compute context (see `accel_plugin_api::embedded::Contexts`).
    context: String,
    pool: Arc<ConnectionPool<DuckDbConnector>>,
    /// Settings the database was opened with.
    options: OpenOptions,
}

/// Opens connections as clones of the database's root connection; after a fatal error
/// ("database has been invalidated") it opens the file again.
pub struct DuckDbConnector {
    root: Mutex<Connection>,
    describe: String,
    /// The file and settings, to open it again; `None` in memory (nothing to reopen: the
    /// rows are gone with the instance).
    reopen_with: Option<(PathBuf, OpenOptions)>,
    /// Set when a returned connection reports the database invalidated.
    invalidated: AtomicBool,
}

/// DuckDB's words for a database instance that refuses every statement after a fatal error
/// (e.g. a WAL write that failed on a full disk).
fn invalidated(message: &str) -> bool {
    message.contains("database has been invalidated")
}

impl Connector for DuckDbConnector {
    type Connection = Connection;

    fn open(&self) -> Result<Connection> {
        self.root
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .try_clone()
            .map_err(|e| duck_error("opening a connection", e))
    }

    /// Never hand out a connection with a transaction still open (a failed ROLLBACK between
    /// BEGIN and COMMIT): later users would fail or read old data. The duckdb crate's
    /// `is_autocommit` always says `true`, so ask DuckDB itself: a ROLLBACK either ends a
    /// forgotten transaction or reports that none is active.
    fn recycle(&self, connection: &Connection) -> bool {
        match connection.execute_batch("ROLLBACK") {
            Ok(()) => true,
            Err(e) => {
                let message = e.to_string();
                if invalidated(&message) && self.reopen_with.is_some() {
                    self.invalidated.store(true, Ordering::SeqCst);
                }
                message.contains("no transaction is active")
            }
        }
    }

    fn needs_reopen(&self) -> bool {
        self.invalidated.load(Ordering::SeqCst)
    }

    /// Every connection of the invalidated instance is closed by now; the root is the last
    /// handle, replaced by a fresh open of the file (DuckDB replays its WAL: every commit that
    /// returned is there).
    fn reopen(&self) -> Result<()> {
        let Some((path, options)) = &self.reopen_with else {
            return Ok(());
        };
        let mut root = self.root.lock().unwrap_or_else(|e| e.into_inner());
        // Close the old instance before opening the file again: it must never be open twice.
        let closed = std::mem::replace(
            &mut *root,
            Connection::open_in_memory().map_err(|e| duck_error("reopening", e))?,
        );
        drop(closed);
        *root = Connection::open_with_flags(path, config(options)?).map_err(|e| {
            duck_error(
                &format!("reopening {} after a fatal error", path.display()),
                e,
            )
        })?;
        self.invalidated.store(false, Ordering::SeqCst);
        eprintln!(
            "duckdb: {} was invalidated by a fatal error and has been reopened",
            path.display()
        );
        Ok(())
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn interrupter(&self, connection: &Connection) -> Option<Interrupter> {
        let handle = connection.interrupt_handle();
        Some(Box::new(move || handle.interrupt()))
    }
}

/// A connection borrowed from a [`Database`].
pub type PooledConnection = Pooled<DuckDbConnector>;

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

/// How often a file that is being created by another process is tried again (50 ms apart).
const CREATION_RETRIES: u32 = 40;

/// Whether `path` was modified within the last few seconds (a file being created).
fn recently_created(path: &Path) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|modified| modified.elapsed().ok())
        .is_some_and(|age| age < std::time::Duration::from_secs(5))
}

impl Database {
    fn new(path: Option<PathBuf>, root: Connection, options: &OpenOptions) -> Arc<Self> {
        let describe = match &path {
            Some(path) => path.display().to_string(),
            None => "an in-memory database".to_owned(),
        };
        let connector = DuckDbConnector {
            root: Mutex::new(root),
            describe,
            reopen_with: path.clone().map(|p| (p, options.clone())),
            invalidated: AtomicBool::new(false),
        };
        Arc::new(Self {
            context: context_name(path.as_deref()),
            path,
            pool: ConnectionPool::new(
                connector,
                options.pool_size.unwrap_or(DEFAULT_POOL_SIZE),
                CONNECTION_WAIT,
                "duckdb_connection_pool_size",
            ),
            options: options.clone(),
        })
    }

    /// Opens a new in-memory database.
    pub fn in_memory(options: &OpenOptions) -> Result<Arc<Self>> {
        let root = Connection::open_in_memory_with_flags(config(options)?)
            .map_err(|e| duck_error("opening an in-memory database", e))?;
        Ok(Self::new(None, root, options))
    }

    fn open_file(path: &Path, options: &OpenOptions) -> Result<Arc<Self>> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                DataFusionError::External(
                    format!("duckdb: cannot create directory {}: {e}", parent.display()).into(),
                )
            })?;
        }
        // A file another process is creating this instant reads as "not a valid DuckDB
        // database file" until its header is written: give it a moment, after which this
        // process opens it or gets DuckDB's lock conflict — a clear answer either way.
        let mut attempts = 0;
        let root = loop {
            match Connection::open_with_flags(path, config(options)?) {
                Ok(root) => break root,
                Err(e)
                    if attempts < CREATION_RETRIES
                        && e.to_string().contains("not a valid DuckDB database file")
                        && recently_created(path) =>
                {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => return Err(duck_error(&format!("opening {}", path.display()), e)),
            }
        };
        Ok(Self::new(Some(path.to_owned()), root, options))
    }

    /// The database's name as a compute context: its file, or `memory #n`.
    pub fn context(&self) -> &str {
        &self.context
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// A connection to this database, returned to the pool when dropped.
    /// Blocks (up to a minute) while all pooled connections are in use.
    pub fn connect(&self) -> Result<PooledConnection> {
        self.pool.get()
    }

    /// Writes everything to the file (no-op in memory).
    pub fn checkpoint(&self) -> Result<()> {
        if self.path.is_some() {
            self.connect()?
                .execute_batch("CHECKPOINT")
                .map_err(|e| duck_error("checkpoint", e))?;
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
                "{} is already open with other settings ({:?}); tables in one DuckDB file \
                 share its database: give them the same duckdb_* options ({:?} here)",
                path.display(),
                database.options,
                options
            )));
        }
        Ok(database)
    }

    /// Every file database still open.
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

    #[test]
    fn a_connection_returned_inside_a_transaction_is_rolled_back_before_reuse() {
        let options = OpenOptions {
            pool_size: Some(1),
            ..OpenOptions::default()
        };
        let db = Database::in_memory(&options).unwrap();
        db.connect()
            .unwrap()
            .execute_batch("CREATE TABLE t (i INTEGER)")
            .unwrap();
        db.connect()
            .unwrap()
            .execute_batch("BEGIN TRANSACTION; INSERT INTO t VALUES (1)")
            .unwrap(); // returned to the pool mid-transaction
        let conn = db.connect().unwrap();
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 0, "the abandoned insert was rolled back");
        assert_eq!(db.pool.open_connections(), 1);
    }

    /// Unmounts a test's tmpfs however the test ends.
    struct Unmount(PathBuf);

    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }

    /// A checkpoint that fails on a full disk is a FATAL error: DuckDB invalidates the
    /// database, and every statement on it fails from then on. The next connection taken
    /// after that opens the file again (its WAL replayed: every committed row is there).
    /// Needs root to mount a tmpfs; says so and passes otherwise.
    #[test]
    fn a_database_invalidated_by_a_failed_checkpoint_is_reopened_with_every_committed_row() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small");
        std::fs::create_dir(&small).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
            .arg(&small)
            .output();
        if !matches!(&mounted, Ok(out) if out.status.success()) {
            println!("SKIPPED: cannot mount a tmpfs here (needs root): {mounted:?}");
            return;
        }
        let _unmount = Unmount(small.clone());
        std::fs::write(small.join("ballast"), vec![1u8; 2 << 20]).unwrap();
        let db = Database::open_file(&small.join("t.duckdb"), &OpenOptions::default()).unwrap();
        db.connect()
            .unwrap()
            .execute_batch("CREATE TABLE t (k BIGINT, pad VARCHAR)")
            .unwrap();
        let mut committed = 0_i64;
        for round in 0..400_i64 {
            let insert = format!(
                "INSERT INTO t SELECT i + {0}, md5(CAST(i + {0} AS VARCHAR)) FROM range(1000) r(i)",
                round * 1000
            );
            match db.connect().unwrap().execute_batch(&insert) {
                Ok(()) => committed += 1000,
                Err(_) => break,
            }
        }
        assert!(committed > 0);
        let failed = db
            .checkpoint()
            .expect_err("no space to checkpoint")
            .to_string();
        assert!(failed.contains("No space left"), "{failed}");
        let invalidated = db.connect().unwrap().execute_batch("SELECT 1");
        if let Err(e) = &invalidated {
            assert!(invalidated_message(&e.to_string()), "{e}");
        }
        std::fs::remove_file(small.join("ballast")).unwrap();
        let conn = db.connect().expect("reopened once space is back");
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("the reopened database answers");
        assert_eq!(rows, committed, "every committed row, from the WAL");
        conn.execute_batch("INSERT INTO t VALUES (-1, 'after')")
            .expect("and takes writes");
        drop(conn);
        db.checkpoint().expect("checkpoints with space back");
    }

    fn invalidated_message(message: &str) -> bool {
        invalidated(message)
    }
}
