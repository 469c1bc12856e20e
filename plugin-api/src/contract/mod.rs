//! The contract an engine author implements: [`DataAccelerator`] and the types it names, the
//! optional [`SqlEngine`] capability, and [`register_builtin!`](crate::register_builtin) for
//! engines compiled into a host. The same contract serves built-in and plugin engines.
//!
//! This module is plain Rust and DataFusion: it must not depend on [`crate::boundary`] (the
//! ABI is derived from the contract, never the other way round) nor on [`crate::embedded`].

pub mod accelerator;
pub mod builtin;
pub mod sql_engine;

pub use accelerator::{
    AccelerationLayout, AccelerationSource, AccelerationSourceSpec, BootstrapStatus,
    DataAccelerator, FilePathError, FileRelease, Mode, ParameterSpec, PartitionedBy,
};
pub use builtin::{BUILTIN_ENGINES, BuiltinEngine};
pub use sql_engine::{SqlEngine, SqlTable};
