//! Registration of engines compiled into the host: a `linkme` distributed slice that every
//! built-in engine adds a constructor to, wherever in the dependency graph it is linked.

use std::sync::Arc;

use crate::accelerator::DataAccelerator;

/// Constructors of all engines linked into this binary.
#[linkme::distributed_slice]
pub static BUILTIN_ENGINES: [fn() -> Arc<dyn DataAccelerator>];

/// Registers an engine type (which must implement `Default`) as a built-in engine.
///
/// ```text
/// accel_plugin_api::register_builtin!(ARROW_ENGINE, ArrowAccelerator);
/// ```
#[macro_export]
macro_rules! register_builtin {
    ($static_name:ident, $engine:ty) => {
        #[$crate::linkme::distributed_slice($crate::builtin::BUILTIN_ENGINES)]
        #[linkme(crate = $crate::linkme)]
        static $static_name: fn() -> ::std::sync::Arc<dyn $crate::DataAccelerator> =
            || ::std::sync::Arc::new(<$engine as ::std::default::Default>::default());
    };
}
