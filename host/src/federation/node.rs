//! The logical node standing for a subplan an engine runs as one statement. It keeps the
//! subplan itself: the statement is written again at physical planning, against the engine
//! generation that serves the tables then (a hand-over may have happened in between).

use std::fmt;

use datafusion::common::DFSchemaRef;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, LogicalPlan, UserDefinedLogicalNodeCore};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct EngineQuery {
    /// The subplan the statement computes.
    pub plan: LogicalPlan,
    /// The statement, as written at optimisation (for EXPLAIN).
    pub sql: String,
    /// Engine name and version, e.g. `duckdb 0.1.0`.
    pub engine: String,
    /// The compute context the statement runs in.
    pub context: String,
}

impl UserDefinedLogicalNodeCore for EngineQuery {
    fn name(&self) -> &str {
        "EngineQuery"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![]
    }

    fn schema(&self) -> &DFSchemaRef {
        self.plan.schema()
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "EngineQuery: engine={} context={} sql={}",
            self.engine, self.context, self.sql
        )
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, _inputs: Vec<LogicalPlan>) -> Result<Self> {
        Ok(self.clone())
    }
}
