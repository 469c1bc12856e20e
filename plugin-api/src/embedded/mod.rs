//! The embedded-engine kit: building blocks for engines backed by an embedded database whose
//! client library blocks (DuckDB, SQLite). Optional — an engine may use none of it.
//!
//! - a bounded connection pool ([`ConnectionPool`]), one open database per file shared by the
//!   tables stored in it ([`OpenFiles`]), the compute contexts of an engine that runs whole
//!   statements ([`Contexts`]);
//! - Arrow batches streamed out of (scans) and into (inserts) blocking threads without losing
//!   a row or committing a cancelled insert ([`stream_from_blocking`], [`write_from_stream`],
//!   [`BlockingScanExec`]);
//! - [`pushdown`]: filters translated to an engine's SQL where its semantics match
//!   DataFusion's; [`dialects`]: how DuckDB's and SQLite's SQL differ from DataFusion's;
//! - [`file_mode`]: where a single-file database engine keeps a file-mode table;
//! - [`keys`] and [`snapshot`]: table options such engines read the same way (primary key,
//!   `on_conflict`, `indexes`; restoring a `snapshot` in `init`).
//!
//! The kit builds on [`crate::contract`] only: it must not depend on [`crate::boundary`], so
//! an engine written with it works the same built in and as a plugin.

pub mod dialects;
pub mod expression;
pub mod file_mode;
pub mod keys;
pub mod pushdown;
pub mod snapshot;

mod contexts;
mod files;
mod pool;
mod scan;
mod stream;

pub use contexts::{Contexts, context_name};
pub use files::{OpenFiles, canonical};
pub use pool::{ConnectionPool, Connector, Interrupter, Pooled};
pub use scan::{BlockingScanExec, RunScan};
pub use stream::{
    BatchReceiver, BatchSender, InsertCancelled, stream_from_blocking, write_from_stream,
};
