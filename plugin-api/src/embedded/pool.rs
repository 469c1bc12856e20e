//! A bounded pool of connections to one database: at most `max` open at once, idle ones reused,
//! callers beyond `max` wait (bounded) for one to be returned.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use datafusion::error::{DataFusionError, Result};

/// How a pool opens and recycles the connections of one database.
pub trait Connector: Send + Sync + 'static {
    type Connection: Send + 'static;

    /// Opens one more connection.
    fn open(&self) -> Result<Self::Connection>;

    /// Makes a returned connection fit for the next user (e.g. rolls back a transaction left
    /// open by a failed writer); `false` discards it.
    fn recycle(&self, connection: &Self::Connection) -> bool;

    /// The database, for messages: a path or "an in-memory database".
    fn describe(&self) -> String;

    /// Something that stops the statement `connection` runs, callable from another thread
    /// (the statement then fails); `None` when the client library cannot.
    fn interrupter(&self, connection: &Self::Connection) -> Option<Interrupter> {
        let _ = connection;
        None
    }

    /// Whether the database must be opened again before the next connection: a fatal error
    /// (seen by [`Self::recycle`]) made every connection of it unusable.
    fn needs_reopen(&self) -> bool {
        false
    }

    /// Opens the database again. Called only with no connection of the old one open (idle
    /// ones discarded, the ones in use returned), so the file is never open twice.
    fn reopen(&self) -> Result<()> {
        Ok(())
    }
}

/// Stops the statement of one connection from another thread.
pub type Interrupter = Box<dyn Fn() + Send + Sync>;

/// Connections of one database.
pub struct ConnectionPool<C: Connector> {
    connector: C,
    state: Mutex<State<C::Connection>>,
    /// Signalled when a connection is returned or discarded.
    returned: Condvar,
    max: usize,
    wait: Duration,
    /// The option that raises `max`, named in the error of a caller that waited too long.
    size_option: &'static str,
}

struct State<T> {
    idle: Vec<T>,
    open: usize,
    /// Connections in use, by lease number, with what interrupts each.
    in_use: Vec<(u64, Option<Interrupter>)>,
    next_lease: u64,
}

impl<C: Connector> ConnectionPool<C> {
    /// A pool of at most `max` (at least 1) connections; a caller waits up to `wait` for one.
    pub fn new(connector: C, max: usize, wait: Duration, size_option: &'static str) -> Arc<Self> {
        Arc::new(Self {
            connector,
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
                in_use: Vec::new(),
                next_lease: 0,
            }),
            returned: Condvar::new(),
            max: max.max(1),
            wait,
            size_option,
        })
    }

    pub fn connector(&self) -> &C {
        &self.connector
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State<C::Connection>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection, returned to the pool when dropped. Blocks while all `max` are in use.
    pub fn get(self: &Arc<Self>) -> Result<Pooled<C>> {
        let deadline = Instant::now() + self.wait;
        let mut state = self.state();
        let connection = loop {
            if self.connector.needs_reopen() {
                state = self.reopen(state, deadline)?;
                continue;
            }
            if let Some(connection) = state.idle.pop() {
                drop(state);
                break connection;
            }
            if state.open < self.max {
                state.open += 1;
                drop(state);
                match self.connector.open() {
                    Ok(connection) => break connection,
                    Err(e) => {
                        self.state().open -= 1;
                        self.returned.notify_one();
                        return Err(e);
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(DataFusionError::Execution(format!(
                    "all {} connections of {} stayed busy for {:?}; raise {}",
                    self.max,
                    self.connector.describe(),
                    self.wait,
                    self.size_option
                )));
            }
            state = self
                .returned
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        };
        let interrupter = self.connector.interrupter(&connection);
        let mut state = self.state();
        let lease = state.next_lease;
        state.next_lease += 1;
        state.in_use.push((lease, interrupter));
        drop(state);
        Ok(Pooled {
            connection: Some(connection),
            pool: Arc::clone(self),
            lease,
        })
    }

    /// Closes every connection of a database a fatal error invalidated — the idle ones at
    /// once, the ones in use once their users return them (their statements are interrupted)
    /// — then has the connector open it again. Waits until `deadline`.
    fn reopen<'a>(
        &'a self,
        mut state: std::sync::MutexGuard<'a, State<C::Connection>>,
        deadline: Instant,
    ) -> Result<std::sync::MutexGuard<'a, State<C::Connection>>> {
        loop {
            // Connections returned meanwhile went back to the idle list: close them too.
            let idle = std::mem::take(&mut state.idle);
            state.open -= idle.len();
            drop(idle);
            if state.open == 0 {
                break;
            }
            for (_, interrupter) in &state.in_use {
                if let Some(interrupt) = interrupter {
                    interrupt();
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(DataFusionError::Execution(format!(
                    "{} must be reopened after a fatal error, and {} of its connections are still in \
                     use after {:?}; try again",
                    self.connector.describe(),
                    state.open,
                    self.wait
                )));
            }
            state = self
                .returned
                .wait_timeout(state, (deadline - now).min(Duration::from_millis(100)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        // Still needed: another caller may have reopened it meanwhile.
        if self.connector.needs_reopen() {
            self.connector.reopen()?;
        }
        Ok(state)
    }

    /// Interrupts the statement of every connection in use (each then fails and returns its
    /// connection); returns how many there were.
    pub fn interrupt_all(&self) -> usize {
        let state = self.state();
        for (_, interrupter) in &state.in_use {
            if let Some(interrupt) = interrupter {
                interrupt();
            }
        }
        state.in_use.len()
    }

    /// Connections in use now.
    pub fn in_use(&self) -> usize {
        self.state().in_use.len()
    }

    /// Connections open now, idle or in use.
    pub fn open_connections(&self) -> usize {
        self.state().open
    }
}

/// A connection borrowed from a [`ConnectionPool`].
pub struct Pooled<C: Connector> {
    connection: Option<C::Connection>,
    pool: Arc<ConnectionPool<C>>,
    lease: u64,
}

impl<C: Connector> std::ops::Deref for Pooled<C> {
    type Target = C::Connection;
    fn deref(&self) -> &C::Connection {
        self.connection.as_ref().expect("present until drop")
    }
}

impl<C: Connector> std::ops::DerefMut for Pooled<C> {
    fn deref_mut(&mut self) -> &mut C::Connection {
        self.connection.as_mut().expect("present until drop")
    }
}

impl<C: Connector> Drop for Pooled<C> {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            // A connection dropped by a panicking thread may be mid-transaction: discard it.
            let reusable = !std::thread::panicking() && self.pool.connector.recycle(&connection);
            let mut state = self.pool.state();
            state.in_use.retain(|(lease, _)| *lease != self.lease);
            if reusable {
                state.idle.push(connection);
            } else {
                state.open -= 1;
                drop(state);
                drop(connection);
            }
            self.pool.returned.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[derive(Default)]
    struct Counting {
        opened: AtomicUsize,
    }

    impl Connector for Counting {
        type Connection = usize;
        fn open(&self) -> Result<usize> {
            Ok(self.opened.fetch_add(1, Ordering::SeqCst))
        }
        fn recycle(&self, connection: &usize) -> bool {
            *connection != 1 // connection 1 is "broken"
        }
        fn describe(&self) -> String {
            "test database".into()
        }
    }

    #[test]
    fn never_opens_more_than_max_reuses_idle_and_discards_broken() {
        let pool = ConnectionPool::new(Counting::default(), 2, Duration::from_secs(5), "size");
        let a = pool.get().unwrap();
        let b = pool.get().unwrap();
        assert_eq!((*a, *b, pool.open_connections()), (0, 1, 2));
        let waiter = {
            let pool = Arc::clone(&pool);
            std::thread::spawn(move || *pool.get().unwrap())
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(!waiter.is_finished(), "a third caller waits");
        drop(a);
        assert_eq!(waiter.join().unwrap(), 0, "the idle connection is reused");
        drop(b); // broken: discarded
        assert_eq!(pool.open_connections(), 1);
        assert_eq!(*pool.get().unwrap(), 0);
    }

    /// Connections whose statements can be stopped from another thread.
    #[derive(Default)]
    struct Interruptible {
        interrupted: Arc<AtomicUsize>,
    }

    impl Connector for Interruptible {
        type Connection = ();
        fn open(&self) -> Result<()> {
            Ok(())
        }
        fn recycle(&self, _connection: &()) -> bool {
            true
        }
        fn describe(&self) -> String {
            "test database".into()
        }
        fn interrupter(&self, _connection: &()) -> Option<Interrupter> {
            let interrupted = Arc::clone(&self.interrupted);
            Some(Box::new(move || {
                interrupted.fetch_add(1, Ordering::SeqCst);
            }))
        }
    }

    #[test]
    fn connections_in_use_are_counted_and_interrupted_idle_ones_are_not() {
        let interrupted = Arc::new(AtomicUsize::new(0));
        let connector = Interruptible {
            interrupted: Arc::clone(&interrupted),
        };
        let pool = ConnectionPool::new(connector, 3, Duration::from_secs(5), "size");
        let a = pool.get().unwrap();
        let b = pool.get().unwrap();
        drop(pool.get().unwrap()); // returned: idle
        assert_eq!(pool.in_use(), 2);
        assert_eq!(pool.interrupt_all(), 2);
        assert_eq!(interrupted.load(Ordering::SeqCst), 2, "only those in use");
        drop(a);
        assert_eq!(pool.in_use(), 1);
        let reused = pool.get().unwrap(); // an idle one, without deadlock
        assert_eq!((pool.in_use(), pool.open_connections()), (2, 3));
        drop((b, reused));
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn a_caller_that_waits_too_long_is_told_which_option_to_raise() {
        let pool = ConnectionPool::new(
            Counting::default(),
            1,
            Duration::from_millis(50),
            "engine_connection_pool_size",
        );
        let _held = pool.get().unwrap();
        let error = pool.get().err().unwrap().to_string();
        assert!(
            error.contains("all 1 connections of test database")
                && error.contains("raise engine_connection_pool_size"),
            "{error}"
        );
    }

    /// A database that needs reopening after its second connection comes back.
    #[derive(Default)]
    struct Reopening {
        opened: AtomicUsize,
        generation: AtomicUsize,
        poisoned: std::sync::atomic::AtomicBool,
        reopened: AtomicUsize,
    }

    impl Connector for Reopening {
        /// (generation, number)
        type Connection = (usize, usize);
        fn open(&self) -> Result<(usize, usize)> {
            Ok((
                self.generation.load(Ordering::SeqCst),
                self.opened.fetch_add(1, Ordering::SeqCst),
            ))
        }
        fn recycle(&self, connection: &(usize, usize)) -> bool {
            if connection.1 == 1 {
                self.poisoned.store(true, Ordering::SeqCst);
                return false;
            }
            true
        }
        fn describe(&self) -> String {
            "test database".into()
        }
        fn needs_reopen(&self) -> bool {
            self.poisoned.load(Ordering::SeqCst)
        }
        fn reopen(&self) -> Result<()> {
            self.reopened.fetch_add(1, Ordering::SeqCst);
            self.generation.fetch_add(1, Ordering::SeqCst);
            self.poisoned.store(false, Ordering::SeqCst);
            Ok(())
        }
    }

    #[test]
    fn a_poisoned_database_is_reopened_once_every_old_connection_is_closed() {
        let pool = ConnectionPool::new(Reopening::default(), 4, Duration::from_secs(5), "size");
        let first = pool.get().unwrap();
        let second = pool.get().unwrap();
        let third = pool.get().unwrap();
        drop(first); // idle, old generation
        drop(second); // poisons the database
        let waiter = {
            let pool = Arc::clone(&pool);
            std::thread::spawn(move || *pool.get().unwrap())
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            !waiter.is_finished(),
            "no connection before the old one in use comes back"
        );
        drop(third);
        let (generation, _) = waiter.join().unwrap();
        assert_eq!(generation, 1, "a connection of the reopened database");
        assert_eq!(pool.connector().reopened.load(Ordering::SeqCst), 1);
        assert_eq!(
            pool.open_connections(),
            1,
            "the old idle connection was closed"
        );
    }
}
