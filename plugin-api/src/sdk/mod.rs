//! The engine-author SDK: what `export_accelerator!` expands to.
//!
//! - [`plugin`]: the per-library state (the engine, the library's own tokio runtime);
//! - [`exports`]: the `extern "C"` functions behind the root module, each of which contains
//!   panics and runs engine code on the plugin runtime;
//! - [`guard`]: wrappers around the engine's table provider, plans and streams that do the same
//!   for the calls datafusion-ffi makes into them;
//! - [`table_factory`]: the `TableProviderFactory` through which `CREATE EXTERNAL TABLE` reaches
//!   [`crate::DataAccelerator::create_external_table`].

pub mod exports;
pub mod guard;
pub mod plugin;
pub mod table_factory;

pub use plugin::{ExportedEngine, Plugin};

/// Text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

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

        impl $crate::sdk::ExportedEngine for __AccelExportedEngine {
            const NAME: &'static str = $name;
            const VERSION: &'static str =
                match ::std::option_env!(::std::concat!("ACCEL_ENGINE_VERSION_", $name)) {
                    Some(version) => version,
                    None => ::std::env!("CARGO_PKG_VERSION"),
                };
            fn construct() -> ::std::sync::Arc<dyn $crate::DataAccelerator> {
                ::std::sync::Arc::new(<$engine as ::std::default::Default>::default())
            }
            fn slot() -> &'static $crate::sdk::plugin::PluginSlot {
                static SLOT: $crate::sdk::plugin::PluginSlot =
                    $crate::sdk::plugin::PluginSlot::new();
                &SLOT
            }
        }

        /// The metadata record, read by the host from this section before it opens the file.
        #[doc(hidden)]
        #[used]
        #[cfg_attr(target_os = "macos", unsafe(link_section = "__DATA,__accel_plugin"))]
        #[cfg_attr(not(target_os = "macos"), unsafe(link_section = ".accel_plugin"))]
        pub static __ACCEL_PLUGIN_METADATA: [u8; $crate::metadata::RECORD_SIZE] =
            $crate::metadata::encode_record(
                $name,
                <__AccelExportedEngine as $crate::sdk::ExportedEngine>::VERSION,
            );

        /// The entry symbol: an `abi_stable` library header whose constructor builds the
        /// function table (and never unwinds: `abi_stable` turns a panic into an error).
        #[doc(hidden)]
        #[unsafe(export_name = "_1as_0lib_1header_0root_bmodule_bloader")]
        pub static __ACCEL_ROOT_MODULE: $crate::abi_stable::library::LibHeader = {
            extern "C" fn construct_root_module() -> $crate::abi_stable::library::RootModuleResult {
                $crate::abi_stable::library::__call_root_module_loader(
                    $crate::sdk::exports::root_module::<__AccelExportedEngine>,
                )
            }
            // SAFETY: the constructor returns the module type the header is declared with.
            unsafe {
                $crate::abi_stable::library::LibHeader::from_constructor::<
                    $crate::ffi::AcceleratorModuleRef,
                >(
                    construct_root_module,
                    $crate::abi_stable::library::CheckTypeLayout::Yes,
                )
            }
        };
    };
}
