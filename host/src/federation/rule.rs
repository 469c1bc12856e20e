//! The optimizer rule: top down, the first subtree (the largest) that [`Statement::write`]
//! accepts becomes an [`EngineQuery`]; otherwise the rule looks at the children. Runs after
//! DataFusion's own rules, so projections, filters and limits are already pushed into scans.
//! Where an expression kept a subtree out of an engine, the query's root becomes a
//! [`KeptInDataFusion`] node naming it and why, for EXPLAIN.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::logical_expr::{Extension, LogicalPlan};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

use super::node::{EngineQuery, KeptInDataFusion};
use super::options::FederationSwitch;
use super::statement::{NotWritten, Statement};
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
        // the optimizer runs its rules more than once: the reasons found before stay
        let (plan, mut reasons) = match plan {
            LogicalPlan::Extension(Extension { node }) if node.name() == "KeptInDataFusion" => {
                match node.as_any().downcast_ref::<KeptInDataFusion>() {
                    Some(kept) => (kept.input.clone(), kept.reasons.clone()),
                    None => (LogicalPlan::Extension(Extension { node }), vec![]),
                }
            }
            other => (other, vec![]),
        };
        let before = reasons.len();
        let federated = federate(plan, true, &mut reasons)?;
        if reasons.is_empty() || !shows_reasons(&federated.data) {
            return Ok(federated);
        }
        let changed = federated.transformed || reasons.len() != before;
        let node = KeptInDataFusion {
            input: federated.data,
            reasons,
        };
        let plan = LogicalPlan::Extension(Extension {
            node: Arc::new(node),
        });
        Ok(if changed || before == 0 {
            Transformed::yes(plan)
        } else {
            Transformed::no(plan)
        })
    }
}

/// Whether `plan` is a query whose root can carry the reasons (not a statement DataFusion
/// runs by itself, such as DDL).
fn shows_reasons(plan: &LogicalPlan) -> bool {
    !matches!(
        plan,
        LogicalPlan::Ddl(_)
            | LogicalPlan::Dml(_)
            | LogicalPlan::Copy(_)
            | LogicalPlan::Statement(_)
            | LogicalPlan::DescribeTable(_)
            | LogicalPlan::Explain(_)
            | LogicalPlan::Analyze(_)
    )
}

/// Replaces the largest subtrees one engine can run with [`EngineQuery`] nodes, collecting
/// the reasons expressions stopped larger ones.
fn federate(
    plan: LogicalPlan,
    query_root: bool,
    reasons: &mut Vec<String>,
) -> Result<Transformed<LogicalPlan>> {
    let now = |table: &Arc<ManagedTable>| table.sql_target();
    let statement = match Statement::write(&plan, &now, query_root) {
        Ok(statement) => Some(statement),
        Err(NotWritten(Some(kept))) => {
            let reason = kept.to_string();
            if !reasons.contains(&reason) {
                reasons.push(reason);
            }
            None
        }
        Err(NotWritten(None)) => None,
    };
    if let Some(statement) = statement {
        let node = EngineQuery {
            engine: format!(
                "{} {}",
                statement.target.generation.name(),
                statement.target.generation.version
            ),
            context: statement.target.table.context.clone(),
            sql: statement.sql,
            query_root,
            plan,
        };
        return Ok(Transformed::yes(LogicalPlan::Extension(Extension {
            node: Arc::new(node),
        })));
    }
    plan.map_children(|child| federate(child, false, reasons))
}
