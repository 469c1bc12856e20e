//! Subplan pushdown ("federation"): a query's largest subtrees that touch only tables of one
//! compute context of one engine generation (e.g. the tables of one DuckDB file) run inside
//! the engine as one SQL statement — expressions, filters, projections, aggregates, GROUP BY,
//! HAVING, ORDER BY + LIMIT/OFFSET, joins (semi and anti joins of `IN`/`EXISTS` subqueries
//! too), UNION and DISTINCT — instead of streaming every row out for DataFusion.
//!
//! - [`statement`]: a logical subplan written as SQL with DataFusion's meaning, or why not;
//! - [`rule`]: the optimizer rule replacing such subtrees with an [`node::EngineQuery`] node,
//!   and marking the root with [`node::KeptInDataFusion`] where an expression stayed out;
//! - [`exec`]: planning that node (under the tables' read guards, so a hand-over waits) and
//!   running its statement in the engine;
//! - [`options`]: the session switch (`SET accel.federation = false` turns it off).
//!
//! Written here rather than with `datafusion-federation`: that crate federates every subtree
//! whose scans share a provider and writes the SQL with DataFusion's unparser, with no way to
//! leave an expression the engine would compute differently to DataFusion (its SQL for
//! `CAST(f AS INT)` rounds in DuckDB, `LIKE` ignores case in SQLite), and it would have
//! needed a second path around the hand-over guards of [`crate::table::managed`].
//!
//! Depends on [`crate::table`] (which tables a subtree reads, and their guards) and
//! [`crate::engine`]; must not depend on the host or the CLI.

pub mod exec;
pub mod node;
pub mod options;
pub mod rule;
pub mod statement;

use std::sync::Arc;

use datafusion::execution::SessionStateBuilder;

pub use options::{FederationSwitch, federation_setting};

/// Adds federation, controlled by `switch`, to a session being built.
pub fn install(builder: SessionStateBuilder, switch: Arc<FederationSwitch>) -> SessionStateBuilder {
    builder
        .with_optimizer_rule(Arc::new(rule::FederationRule::new(switch)))
        .with_query_planner(Arc::new(exec::AccelQueryPlanner))
}
