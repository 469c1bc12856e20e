//! Building blocks for engines backed by an embedded database whose client library blocks
//! (DuckDB, SQLite): a bounded connection pool, one open database per file shared by the
//! tables stored in it, and Arrow batches streamed out of (scans) and into (inserts) blocking
//! threads without losing a row or committing a cancelled insert; the compute contexts of an
//! engine that runs whole statements.

mod contexts;
mod files;
mod pool;
mod scan;
mod stream;

pub use contexts::{Contexts, context_name};
pub use files::{OpenFiles, canonical};
pub use pool::{ConnectionPool, Connector, Pooled};
pub use scan::{BlockingScanExec, RunScan};
pub use stream::{
    BatchReceiver, BatchSender, InsertCancelled, stream_from_blocking, write_from_stream,
};
