//! The DataFusion session a host serves SQL on: information schema on, one table factory per
//! engine name (`STORED AS <engine>`), subplan pushdown installed with its session switch, and
//! no cache of file listings (DataFusion's keeps a directory's listing forever by default, so
//! a file table would never see a file added after its first query).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::execution::SessionStateBuilder;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::federation::{self, FederationSwitch};
use crate::table::factory::{EngineTables, factory};

/// A change to the session a host builds, applied last (a coordinator of workers adds
/// distributed planning: `crate::cluster::planning`).
pub type SessionLayer = Box<dyn FnOnce(SessionStateBuilder) -> SessionStateBuilder + Send>;

/// Builds a session with one table factory per engine name, then `layer`.
pub fn session_context(tables: &Arc<EngineTables>, layer: Option<SessionLayer>) -> SessionContext {
    let switch = Arc::new(FederationSwitch::default());
    let config = SessionConfig::new()
        .with_information_schema(true)
        .with_extension(Arc::clone(&switch));
    let mut builder = federation::install(
        SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime_without_listing_cache())
            .with_default_features(),
        switch,
    );
    let factories = builder.table_factories().get_or_insert_with(HashMap::new);
    for name in tables.registry.names() {
        factories.insert(name.to_uppercase(), factory(tables, &name));
    }
    if let Some(layer) = layer {
        builder = layer(builder);
    }
    SessionContext::new_with_state(builder.build())
}

/// DataFusion's runtime defaults, without the file-listing cache.
pub fn runtime_without_listing_cache() -> Arc<RuntimeEnv> {
    RuntimeEnvBuilder::new()
        .with_cache_manager(CacheManagerConfig::default().with_list_files_cache_limit(0))
        .build_arc()
        .unwrap_or_default()
}
