//! The optimizer rule: top down, the first subtree (the largest) that [`Statement::write`]
//! accepts becomes an [`EngineQuery`]; otherwise the rule looks at the children. Runs after
//! DataFusion's own rules, so projections, filters and limits are already pushed into scans.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::logical_expr::{Extension, LogicalPlan};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

use super::node::EngineQuery;
use super::options::FederationSwitch;
use super::statement::Statement;
use crate::table::managed::ManagedTable;

#[derive(Debug)]
pub struct FederationRule {
    switch: Arc<FederationSwitch>,
}

impl FederationRule {
    pub fn new(switch: Arc<FederationSwitch>) -> Self {
        Self { switch }
    }
}

impl OptimizerRule for FederationRule {
    fn name(&self) -> &str {
        "accel_federation"
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        if !self.switch.enabled() {
            return Ok(Transformed::no(plan));
        }
        federate(plan)
    }
}

fn federate(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let now = |table: &Arc<ManagedTable>| table.sql_target();
    if let Some(statement) = Statement::write(&plan, &now) {
        let node = EngineQuery {
            engine: format!(
                "{} {}",
                statement.target.generation.name(),
                statement.target.generation.version
            ),
            context: statement.target.table.context.clone(),
            sql: statement.sql,
            plan,
        };
        return Ok(Transformed::yes(LogicalPlan::Extension(Extension {
            node: Arc::new(node),
        })));
    }
    plan.map_children(federate)
}
