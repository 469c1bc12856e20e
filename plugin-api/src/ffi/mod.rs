//! The plugin boundary: every type that crosses between the host and an engine library.
//!
//! Every item here has the same shape: a `#[repr(C)]` [`abi_stable::StableAbi`] struct or enum
//! (`Ffi…`), with `From` conversions to and from its Rust counterpart in
//! [`crate::accelerator`]. DataFusion's own FFI structs (`datafusion_ffi`) do not implement
//! `StableAbi`; they cross inside `#[repr(transparent)]` opaque wrappers, and their layout is
//! guarded by the datafusion-ffi major in the metadata record, which the host checks before it
//! opens a library.
//!
//! - [`module`]: the root module (the one exported entry symbol) and its function table;
//! - [`types`]: the plain data that crosses it;
//! - [`foreign`]: the host-side consumer, an `impl DataAccelerator` that calls the table.

pub mod foreign;
pub mod module;
pub mod types;

pub use foreign::ForeignAccelerator;
pub use module::{AcceleratorModule, AcceleratorModuleRef, ROOT_MODULE_SYMBOL};
