//! The boundary: everything that crosses between the host and an engine library, and the
//! code on each side of it. An engine author never touches this module directly:
//! `export_accelerator!` (below) expands to it, and the host reaches engines through
//! [`root_module::ForeignAccelerator`].
//!
//! Every type that crosses has one shape: a `#[repr(C)]` [`abi_stable::StableAbi`] struct or
//! enum (`Ffi…`) with `From` conversions to and from its Rust counterpart in
//! [`crate::contract`]. DataFusion's own FFI structs (`datafusion_ffi`) do not implement
//! `StableAbi`; they cross inside `#[repr(transparent)]` opaque wrappers, and their layout is
//! guarded by the datafusion-ffi major in the metadata record, which the host checks before it
//! opens a library.
//!
//! - [`metadata`]: the fixed-layout record every engine library embeds in a link section, read
//!   from the file before any of the library's code runs;
//! - [`types`]: the plain data that crosses;
//! - [`root_module`]: the one exported entry symbol's function table, with its producer (the
//!   `extern "C"` functions, each of which contains panics and runs engine code on the plugin
//!   runtime) and its consumer (the host-side `impl DataAccelerator`) side by side;
//! - [`plugin`]: the per-library state (the engine, the library's own tokio runtime);
//! - [`query_settings`]: the query's DataFusion settings as each side keeps them for scans;
//! - [`guard`]: wrappers around the engine's table provider, plans and streams that contain
//!   panics for the calls datafusion-ffi makes into them;
//! - [`table_factory`]: the `TableProviderFactory` through which `CREATE EXTERNAL TABLE` reaches
//!   [`crate::DataAccelerator::create_external_table`].
//!
//! This module may depend on [`crate::contract`]; it must not depend on [`crate::embedded`]
//! (the kit is one way to write an engine, the boundary serves every engine).

pub mod guard;
pub mod metadata;
pub mod plugin;
pub mod query_settings;
pub mod root_module;
pub mod table_factory;
pub mod types;

pub use plugin::{ExportedEngine, Plugin};
pub use root_module::{
    AcceleratorModule, AcceleratorModuleRef, ForeignAccelerator, ROOT_MODULE_SYMBOL,
};

pub use crate::panics::panic_message;

/// Exports an engine type as this library's accelerator: embeds the metadata record and the
/// entry symbol. The engine type must implement [`crate::DataAccelerator`] and `Default`, and
/// its `name()` must equal the name given here.
///
/// The engine version is the crate's `CARGO_PKG_VERSION`, or `ACCEL_ENGINE_VERSION_<name>`
/// (e.g. `ACCEL_ENGINE_VERSION_sqlite`) when that variable is set at build time: a second
/// version of one engine crate, rebuilding only that crate (the hot-swap tests use it).
///
/// ```text
/// accel_plugin_api::export_accelerator!(DuckDbAccelerator, "duckdb");
/// ```
#[macro_export]
macro_rules! export_accelerator {
    ($engine:ty, $name:literal) => {
        #[doc(hidden)]
        pub struct __AccelExportedEngine;

        impl $crate::boundary::ExportedEngine for __AccelExportedEngine {
            const NAME: &'static str = $name;
            const VERSION: &'static str =
                match ::std::option_env!(::std::concat!("ACCEL_ENGINE_VERSION_", $name)) {
                    Some(version) => version,
                    None => ::std::env!("CARGO_PKG_VERSION"),
                };
            fn construct() -> ::std::sync::Arc<dyn $crate::DataAccelerator> {
                ::std::sync::Arc::new(<$engine as ::std::default::Default>::default())
            }
            fn slot() -> &'static $crate::boundary::plugin::PluginSlot {
                static SLOT: $crate::boundary::plugin::PluginSlot =
                    $crate::boundary::plugin::PluginSlot::new();
                &SLOT
            }
        }

        /// The metadata record, read by the host from this section before it opens the file.
        #[doc(hidden)]
        #[used]
        #[cfg_attr(target_os = "macos", unsafe(link_section = "__DATA,__accel_plugin"))]
        #[cfg_attr(not(target_os = "macos"), unsafe(link_section = ".accel_plugin"))]
        pub static __ACCEL_PLUGIN_METADATA: [u8; $crate::boundary::metadata::RECORD_SIZE] =
            $crate::boundary::metadata::encode_record(
                $name,
                <__AccelExportedEngine as $crate::boundary::ExportedEngine>::VERSION,
                ::std::cfg!(panic = "unwind"),
            );

        /// The entry symbol: an `abi_stable` library header whose constructor builds the
        /// function table (and never unwinds: `abi_stable` turns a panic into an error).
        #[doc(hidden)]
        #[unsafe(export_name = "_1as_0lib_1header_0root_bmodule_bloader")]
        pub static __ACCEL_ROOT_MODULE: $crate::abi_stable::library::LibHeader = {
            extern "C" fn construct_root_module() -> $crate::abi_stable::library::RootModuleResult {
                $crate::abi_stable::library::__call_root_module_loader(
                    $crate::boundary::root_module::producer::root_module::<__AccelExportedEngine>,
                )
            }
            // SAFETY: the constructor returns the module type the header is declared with.
            unsafe {
                $crate::abi_stable::library::LibHeader::from_constructor::<
                    $crate::boundary::AcceleratorModuleRef,
                >(
                    construct_root_module,
                    $crate::abi_stable::library::CheckTypeLayout::Yes,
                )
            }
        };
    };
}
