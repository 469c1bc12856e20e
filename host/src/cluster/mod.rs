//! Running on several machines: sharded datasets held by `accel worker` processes and queried
//! through a coordinator (`accel serve --workers`), on datafusion-distributed.
//!
//! - [`protocol`] — the control calls between coordinator and workers (describe, assign,
//!   refresh) and the version check that refuses a mismatched worker;
//! - [`worker`] — the worker process: its shards (each a dataset of its host) and its gRPC
//!   services (plan fragments, control);
//! - [`coordinator`] — placement of shards on workers, the watch over workers, the sharded
//!   datasets as tables of the coordinator's session;
//! - [`shard_scan`] — the plan node that scans a sharded dataset (or runs a plan over each
//!   shard), and its codec;
//! - [`partial_aggregate`] — aggregates split into a partial one inside each shard's engine
//!   and a final one on the coordinator;
//! - [`planning`] — the coordinator session's distributed planning: where plans are cut,
//!   where tasks go;
//! - [`channel`] — connections to workers whose errors name the worker.
//!
//! Builds on the host, datasets, sources and config; nothing but the CLI depends on it. Must
//! not reach into engines or libraries: shards are datasets of a worker's host like any other,
//! read through its session.

pub mod channel;
pub mod coordinator;
pub mod partial_aggregate;
pub mod planning;
pub mod protocol;
pub mod shard_scan;
pub mod worker;

pub use coordinator::{ClusterState, Coordinator};
pub use worker::WorkerShards;
