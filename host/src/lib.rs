//! # accel-host
//!
//! Hosts DataFusion accelerator engines, built in or loaded from shared libraries. One folder
//! per part, each depending only on the ones above it in this list:
//!
//! 1. [`library`] — engine libraries on disk: discover, pin, trust, check, fingerprint, load;
//!    every refusal a typed record;
//! 2. [`engine`] — the registry of engine generations (built in or loaded), the plugin
//!    engine's keep-alive wrappers, the built-in engines;
//! 3. [`table`] — table factories (`STORED AS <engine>`), managed tables that a newer
//!    generation can take over, the hand-over;
//! 4. [`federation`] — whole subplans run inside engines that execute SQL;
//! 5. [`host`] — admission (library pipeline + registry), the session, reload, watch: the
//!    parts run together as a [`Host`];
//! 6. [`config`] — `accel.yaml` read into typed datasets (depends on nothing above);
//!    [`source`] — a dataset's source as a table provider (depends on `config` only);
//! 7. [`dataset`] — datasets accelerated in engines and kept fresh, status tables;
//! 8. [`serve`] — the network front of `accel serve`: Flight SQL, HTTP, API key, metrics;
//! 9. [`cluster`] — several machines: sharded datasets held by `accel worker` processes,
//!    queried through a coordinator on datafusion-distributed;
//! 10. [`cli`] — the `accel` command line.
//!
//! See `ARCHITECTURE.md` at the repository root for the path of a query and the boundary's
//! rules.

pub mod cli;
pub mod cluster;
pub mod config;
pub mod dataset;
pub mod engine;
pub mod federation;
pub mod host;
pub mod library;
pub mod serve;
pub mod source;
pub mod table;

pub use host::{Host, HostOptions, StartupReport};
