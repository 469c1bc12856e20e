//! The DataFusion session a host serves SQL on: information schema on, one table factory per
//! engine name (`STORED AS <engine>`), subplan pushdown installed with its session switch.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::federation::{self, FederationSwitch};
use crate::table::factory::{EngineTables, factory};

/// Builds a session with one table factory per engine name.
pub fn session_context(tables: &Arc<EngineTables>) -> SessionContext {
    let switch = Arc::new(FederationSwitch::default());
    let config = SessionConfig::new()
        .with_information_schema(true)
        .with_extension(Arc::clone(&switch));
    let mut builder = federation::install(
        SessionStateBuilder::new()
            .with_config(config)
            .with_default_features(),
        switch,
    );
    let factories = builder.table_factories().get_or_insert_with(HashMap::new);
    for name in tables.registry.names() {
        factories.insert(name.to_uppercase(), factory(tables, &name));
    }
    SessionContext::new_with_state(builder.build())
}
