//! Partial aggregates inside each shard's engine.
//!
//! `SELECT k, count(*), sum(v) FROM events WHERE … GROUP BY k` over a sharded `events` is
//! rewritten on the coordinator into a partial aggregate that each worker runs over its
//! shard — planned by the worker's own session, so federation hands it whole to the engine
//! (DuckDB, SQLite) as one statement — and a final aggregate of the partial rows on the
//! coordinator: `count` becomes the sum of counts (0 where no shard has a row), `sum` the sum
//! of sums, `min`/`max` the min/max of mins/maxes, each cast back to the original type. Only
//! those four, without `DISTINCT`, `FILTER` or `ORDER BY`, over filters and projections of one
//! sharded table without subqueries; any other aggregate keeps DataFusion's own two phases
//! (the partial phase still runs on the workers, over the engine's scan).
//!
//! The partial plan crosses as datafusion-proto bytes; its table is encoded as the dataset's
//! name and decoded on the worker as the shard's table ([`ShardTableCodec`]).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, TableReference};
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::functions::core::expr_fn::coalesce;
use datafusion::functions_aggregate::expr_fn::{max, min, sum};
use datafusion::logical_expr::{
    Aggregate, Expr, Extension, LogicalPlan, LogicalPlanBuilder, Projection,
    TableProviderFilterPushDown, TableType, cast, lit,
};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::bytes::logical_plan_to_bytes_with_extension_codec;
use datafusion_proto::logical_plan::LogicalExtensionCodec;

use super::coordinator::ShardedTable;
use super::shard_scan::{ShardPlacement, ShardQuery, ShardScanExec};

/// The optimizer rule of the module doc.
#[derive(Debug, Default)]
pub struct ShardAggregateRule;

impl OptimizerRule for ShardAggregateRule {
    fn name(&self) -> &str {
        "accel_shard_partial_aggregates"
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        plan.transform_up(|node| match &node {
            LogicalPlan::Aggregate(aggregate) => match split(aggregate)? {
                Some(split) => Ok(Transformed::yes(split)),
                None => Ok(Transformed::no(node)),
            },
            _ => Ok(Transformed::no(node)),
        })
    }
}

/// The sharded table under filters and projections, when `plan` is one, with the filters
/// pushed into its scan.
fn sharded_input(plan: &LogicalPlan) -> Option<(Arc<ShardedTable>, Vec<Expr>)> {
    let row_wise = |expr: &Expr| {
        !expr
            .exists(|e| {
                Ok(matches!(
                    e,
                    Expr::ScalarSubquery(_)
                        | Expr::InSubquery(_)
                        | Expr::Exists(_)
                        | Expr::OuterReferenceColumn(..)
                        | Expr::Placeholder(_)
                ))
            })
            .unwrap_or(true)
    };
    match plan {
        LogicalPlan::TableScan(scan) => {
            let provider = source_as_provider(&scan.source).ok()?;
            let table = (provider as Arc<dyn std::any::Any + Send + Sync>)
                .downcast::<ShardedTable>()
                .ok()?;
            Some((table, scan.filters.clone()))
        }
        LogicalPlan::Filter(filter) if row_wise(&filter.predicate) => sharded_input(&filter.input),
        LogicalPlan::Projection(projection) if projection.expr.iter().all(row_wise) => {
            sharded_input(&projection.input)
        }
        _ => None,
    }
}

/// How the coordinator combines one aggregate's partial values.
enum Combine {
    Count,
    Sum,
    Min,
    Max,
}

/// The aggregate as a partial aggregate on each shard and a final one on the coordinator,
/// with the original schema; `None` when it is not one this module splits.
fn split(aggregate: &Aggregate) -> Result<Option<LogicalPlan>> {
    let Some((table, scan_filters)) = sharded_input(&aggregate.input) else {
        return Ok(None);
    };
    if aggregate
        .group_expr
        .iter()
        .any(|e| matches!(e, Expr::GroupingSet(_)))
    {
        return Ok(None);
    }
    let mut combines = Vec::new();
    for expr in &aggregate.aggr_expr {
        let Expr::AggregateFunction(function) = expr else {
            return Ok(None);
        };
        let params = &function.params;
        if params.distinct
            || params.filter.is_some()
            || !params.order_by.is_empty()
            || params.null_treatment.is_some()
        {
            return Ok(None);
        }
        combines.push(match function.func.name() {
            "count" => Combine::Count,
            "sum" => Combine::Sum,
            "min" => Combine::Min,
            "max" => Combine::Max,
            _ => return Ok(None),
        });
    }
    let groups = aggregate.group_expr.len();
    let partial = LogicalPlan::Aggregate(Aggregate::try_new(
        Arc::clone(&aggregate.input),
        aggregate
            .group_expr
            .iter()
            .enumerate()
            .map(|(i, e)| e.clone().alias(format!("g{i}")))
            .collect(),
        aggregate
            .aggr_expr
            .iter()
            .enumerate()
            .map(|(j, e)| e.clone().alias(format!("p{j}")))
            .collect(),
    )?);
    let bytes = logical_plan_to_bytes_with_extension_codec(&partial, &ShardTableCodec::encoding())?;
    let query = ShardQuery {
        plan: bytes.to_vec().into(),
        text: one_line(&partial),
    };
    let partials = Arc::new(ShardPartials {
        dataset: table.dataset().to_owned(),
        shards: table.shards_for(&scan_filters),
        schema: Arc::new(partial.schema().as_arrow().clone()),
        query,
    });
    let name = format!("__{}_partials", table.dataset());
    let column = |name: String| Expr::Column(Column::new_unqualified(name));
    let finals: Vec<Expr> = combines
        .iter()
        .enumerate()
        .map(|(j, combine)| {
            let partial = column(format!("p{j}"));
            match combine {
                Combine::Count => coalesce(vec![sum(partial), lit(0i64)]),
                Combine::Sum => sum(partial),
                Combine::Min => min(partial),
                Combine::Max => max(partial),
            }
            .alias(format!("f{j}"))
        })
        .collect();
    let combined = LogicalPlanBuilder::scan(name, provider_as_source(partials), None)?
        .aggregate(
            (0..groups)
                .map(|i| column(format!("g{i}")))
                .collect::<Vec<_>>(),
            finals,
        )?
        .build()?;
    // The original output: names, qualifiers and types.
    let restored = aggregate
        .schema
        .iter()
        .enumerate()
        .map(|(i, (qualifier, field))| {
            let name = match i < groups {
                true => format!("g{i}"),
                false => format!("f{}", i - groups),
            };
            let value = column(name);
            let value = match combined.schema().field(i).data_type() == field.data_type() {
                true => value,
                false => cast(value, field.data_type().clone()),
            };
            value.alias_qualified(qualifier.cloned(), field.name())
        })
        .collect();
    Ok(Some(LogicalPlan::Projection(Projection::try_new(
        restored,
        Arc::new(combined),
    )?)))
}

/// A plan's nodes on one line, top first, for EXPLAIN.
fn one_line(plan: &LogicalPlan) -> String {
    plan.display_indent()
        .to_string()
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" <- ")
}

/// The partial rows of every shard, as a table of the coordinator's plan.
#[derive(Debug)]
struct ShardPartials {
    dataset: String,
    shards: Arc<[ShardPlacement]>,
    schema: SchemaRef,
    query: ShardQuery,
}

#[async_trait]
impl TableProvider for ShardPartials {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![
            TableProviderFilterPushDown::Unsupported;
            filters.len()
        ])
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = match projection {
            Some(columns) => Arc::new(self.schema.project(columns)?),
            None => Arc::clone(&self.schema),
        };
        Ok(Arc::new(
            ShardScanExec::new(
                self.dataset.clone(),
                Arc::clone(&self.shards),
                projection.cloned(),
                Vec::new(),
                None,
                schema,
            )
            .with_query(self.query.clone()),
        ))
    }
}

/// Encodes a sharded table as its dataset's name; decodes it as one shard's table.
#[derive(Debug)]
pub struct ShardTableCodec {
    shard: Option<Arc<dyn TableProvider>>,
}

impl ShardTableCodec {
    fn encoding() -> Self {
        Self { shard: None }
    }

    /// On a worker: every table of the plan is `shard`.
    pub fn decoding(shard: Arc<dyn TableProvider>) -> Self {
        Self { shard: Some(shard) }
    }
}

impl LogicalExtensionCodec for ShardTableCodec {
    fn try_decode(
        &self,
        _buf: &[u8],
        _inputs: &[LogicalPlan],
        _ctx: &TaskContext,
    ) -> Result<Extension> {
        Err(DataFusionError::Internal(
            "a shard's partial plan has no extension nodes".into(),
        ))
    }

    fn try_encode(&self, node: &Extension, _buf: &mut Vec<u8>) -> Result<()> {
        Err(DataFusionError::Internal(format!(
            "{} cannot be sent to a shard",
            node.node.name()
        )))
    }

    fn try_decode_table_provider(
        &self,
        _buf: &[u8],
        _table_ref: &TableReference,
        _schema: SchemaRef,
        _ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        self.shard
            .clone()
            .ok_or_else(|| DataFusionError::Internal("no shard to read here".into()))
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        let sharded = (node as Arc<dyn std::any::Any + Send + Sync>)
            .downcast::<ShardedTable>()
            .map_err(|_| {
                DataFusionError::Internal(format!(
                    "{table_ref} is not a sharded dataset and cannot be read on a shard"
                ))
            })?;
        buf.extend_from_slice(sharded.dataset().as_bytes());
        Ok(())
    }
}
