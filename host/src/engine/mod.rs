//! Engines as the rest of the host sees them: one `Arc<dyn DataAccelerator>` per engine
//! generation, whatever its origin.
//!
//! - [`registry`]: every generation of every engine by name and version, its origin (built in
//!   or the library it was loaded from) and state (active, retired); tables choose among
//!   generations here;
//! - [`plugin`]: a loaded library's engine as an `impl DataAccelerator` that keeps its library
//!   alive; [`plugin_exec`]: the same keep-alive for every plan and stream that came from a
//!   library, and the input requirements datafusion-ffi does not carry;
//! - [`builtin`]: the engines compiled into the host.
//!
//! Depends on [`crate::library`] (a plugin generation holds its loaded library); must not
//! depend on tables, the session, federation, the host or the CLI.

pub mod builtin;
pub mod plugin;
pub mod plugin_exec;
pub mod registry;

pub use registry::{EngineRegistry, Origin, RegisteredEngine};
