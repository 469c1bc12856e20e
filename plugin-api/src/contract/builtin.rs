//! Registration of engines compiled into the host: a `linkme` distributed slice that every
//! built-in engine adds an entry to, wherever in the dependency graph it is linked.

use std::sync::Arc;

use crate::contract::accelerator::DataAccelerator;

/// One engine linked into this binary.
pub struct BuiltinEngine {
    /// The name tables write after `STORED AS`; `None` registers the engine under its own
    /// `name()`. A different name lets a host link an engine in next to a plugin of the same
    /// engine (the benchmark's `duckdb_builtin`).
    pub registered_as: Option<&'static str>,
    pub construct: fn() -> Arc<dyn DataAccelerator>,
}

/// Every engine linked into this binary.
#[linkme::distributed_slice]
pub static BUILTIN_ENGINES: [BuiltinEngine];

/// Registers an engine type (which must implement `Default`) as a built-in engine, under its
/// own name or under the name given.
///
/// ```text
/// accel_plugin_api::register_builtin!(ARROW_ENGINE, ArrowAccelerator);
/// accel_plugin_api::register_builtin!(DUCKDB_BUILTIN, accel_engine_duckdb::DuckDbAccelerator, "duckdb_builtin");
/// ```
#[macro_export]
macro_rules! register_builtin {
    ($static_name:ident, $engine:ty) => {
        $crate::register_builtin!(@entry $static_name, $engine, ::std::option::Option::None);
    };
    ($static_name:ident, $engine:ty, $name:literal) => {
        $crate::register_builtin!(@entry $static_name, $engine, ::std::option::Option::Some($name));
    };
    (@entry $static_name:ident, $engine:ty, $registered_as:expr) => {
        #[$crate::linkme::distributed_slice($crate::contract::builtin::BUILTIN_ENGINES)]
        #[linkme(crate = $crate::linkme)]
        static $static_name: $crate::contract::builtin::BuiltinEngine =
            $crate::contract::builtin::BuiltinEngine {
                registered_as: $registered_as,
                construct: || {
                    ::std::sync::Arc::new(<$engine as ::std::default::Default>::default())
                },
            };
    };
}
