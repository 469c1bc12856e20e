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
    /// Whether the subplan is the whole query (see [`super::statement::Statement::write`]).
    pub query_root: bool,
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

/// The root of a query of which parts stay in DataFusion because an engine would compute
/// them differently: EXPLAIN shows each expression with the reason
/// (`KeptInDataFusion: upper(t.s) — DuckDB folds case differently …`). Planned as its
/// input; it computes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct KeptInDataFusion {
    pub input: LogicalPlan,
    /// `expression — reason`, each once.
    pub reasons: Vec<String>,
}

impl UserDefinedLogicalNodeCore for KeptInDataFusion {
    fn name(&self) -> &str {
        "KeptInDataFusion"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        self.input.schema()
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "KeptInDataFusion: {}", self.reasons.join(" · "))
    }

    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> Result<Self> {
        if inputs.len() != 1 {
            return Err(datafusion::error::DataFusionError::Internal(format!(
                "KeptInDataFusion has one input, given {}",
                inputs.len()
            )));
        }
        Ok(Self {
            input: inputs.swap_remove(0),
            reasons: self.reasons.clone(),
        })
    }

    /// Passes every column through: what the root needs, its input must give.
    fn necessary_children_exprs(&self, output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        Some(vec![output_columns.to_vec()])
    }
}
