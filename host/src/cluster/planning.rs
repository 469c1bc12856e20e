//! How a coordinator's session plans queries over sharded datasets with datafusion-distributed.
//!
//! The plan is DataFusion's own, made on the coordinator (federation and managed tables
//! included). [`ShardBoundaryRule`] then cuts it above each [`ShardScanExec`] and the
//! operators that work row by row or partition by partition on its output (filters,
//! projections, partial aggregates, per-partition sorts and limits): that fragment runs on
//! the workers, one task per shard, and everything above it stays on the coordinator, which
//! merges the tasks' partitions (`NetworkCoalesceExec`) and finishes the query (final
//! aggregates, joins, sorts, limits). Placing the boundaries ourselves makes
//! datafusion-distributed distribute nothing else: a query without a sharded dataset runs
//! exactly as on a single node. [`route_shard_tasks`] sends task *i* to the worker holding
//! shard *i*.

use std::sync::Arc;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::config::ConfigOptions;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionStateBuilder;
use datafusion::physical_expr::{Distribution, Partitioning};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::limit::LocalLimitExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, ExecutionPlan, ExecutionPlanProperties, ReplaceChildrenOptions,
};
use datafusion_distributed::{
    DistributedExt, NetworkCoalesceExec, RouteTasksEvent, RouteTasksEventResponse,
    SessionStateBuilderExt,
};

use super::channel::NamingChannelResolver;
use super::coordinator::ClusterState;
use super::partial_aggregate::ShardAggregateRule;
use super::shard_scan::{ShardScanCodec, ShardScanExec};

/// Installs distributed planning for sharded datasets on a coordinator's session.
pub fn coordinator_session(
    builder: SessionStateBuilder,
    cluster: Arc<ClusterState>,
) -> SessionStateBuilder {
    let routing = Arc::clone(&cluster);
    let mut builder = builder
        .with_optimizer_rule(Arc::new(ShardAggregateRule))
        .with_physical_optimizer_rule(Arc::new(ShardBoundaryRule))
        .with_distributed_worker_resolver(WorkerList(Arc::clone(&cluster)))
        .with_distributed_channel_resolver(NamingChannelResolver::default())
        .with_distributed_user_codec(ShardScanCodec::coordinator())
        .with_distributed_route_tasks_handler(move |ev: RouteTasksEvent<'_>| {
            route_shard_tasks(&routing, ev)
        })
        .with_distributed_planner();
    // Only the boundaries [`ShardBoundaryRule`] places: with one task per stage, the
    // automatic distribution of other plans elides every boundary it would add.
    let config = builder.config().get_or_insert_default();
    config
        .options_mut()
        .set("distributed.max_tasks_per_stage", "1")
        .expect("datafusion-distributed registers its options with its planner");
    builder
}

/// The worker URLs, for datafusion-distributed's resolver (placement is decided by shard).
struct WorkerList(Arc<ClusterState>);

impl datafusion_distributed::WorkerResolver for WorkerList {
    fn get_urls(&self) -> Result<Vec<url::Url>, DataFusionError> {
        Ok(self.0.urls())
    }
}

/// Sends task *i* of a stage that scans a sharded dataset to the worker holding shard *i*;
/// refuses the query at once when that worker was refused (another version).
pub fn route_shard_tasks(
    cluster: &ClusterState,
    ev: RouteTasksEvent<'_>,
) -> Option<Result<RouteTasksEventResponse>> {
    let mut scan = None;
    let _ = ev.plan.apply(|node| {
        if let Some(found) = node.downcast_ref::<ShardScanExec>() {
            scan = Some(found.clone());
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    let scan = scan?;
    let urls = scan.task_workers(ev.task_count);
    for url in &urls {
        if let Some(why) = cluster.refusal(url) {
            return Some(Err(DataFusionError::Execution(format!(
                "worker {url} was refused by the coordinator: {why}"
            ))));
        }
    }
    Some(Ok(RouteTasksEventResponse::new(urls)))
}

/// Cuts the plan above each shard scan's worker fragment (see the module doc).
#[derive(Debug)]
pub struct ShardBoundaryRule;

impl PhysicalOptimizerRule for ShardBoundaryRule {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = place_boundaries(plan)?;
        // datafusion-distributed runs a plan it distributes as one partition.
        let distributed = plan.exists(|node| Ok(node.is::<NetworkCoalesceExec>()))?;
        if distributed && plan.output_partitioning().partition_count() > 1 {
            return Ok(merged(plan));
        }
        Ok(plan)
    }

    fn name(&self) -> &str {
        "accel_shard_boundaries"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

fn place_boundaries(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    if let Some(tasks) = worker_fragment_tasks(&plan) {
        return Ok(Arc::new(NetworkCoalesceExec::try_new(plan, tasks, 1)?));
    }
    if plan.children().is_empty() {
        return Ok(plan);
    }
    let required = plan.input_distribution_requirements();
    let children = plan
        .children()
        .into_iter()
        .enumerate()
        .map(|(index, child)| {
            let placed = place_boundaries(Arc::clone(child))?;
            let before = child.output_partitioning().partition_count();
            let after = placed.output_partitioning().partition_count();
            // The tasks' partitions side by side are more partitions than the parent was
            // planned for: one that needs a single partition (or one hash partition, which a
            // single partition was) gets them merged, in order where they are sorted.
            let any_partitions = matches!(
                required.child_distribution(index),
                None | Some(Distribution::UnspecifiedDistribution)
            );
            match after == before || any_partitions {
                true => Ok(placed),
                false => Ok(merged(placed)),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    plan.replace_children(
        children,
        ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
    )
}

/// `plan`'s partitions as one: merged in order when each is sorted, else concatenated.
fn merged(plan: Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
    match plan.output_ordering().cloned() {
        Some(ordering) => Arc::new(SortPreservingMergeExec::new(ordering, plan)),
        None => Arc::new(CoalescePartitionsExec::new(plan)),
    }
}

/// When `plan` is a shard scan with operators that can run on each shard's rows alone, the
/// number of tasks it runs as.
fn worker_fragment_tasks(plan: &Arc<dyn ExecutionPlan>) -> Option<usize> {
    if let Some(scan) = plan.downcast_ref::<ShardScanExec>() {
        return Some(scan.tasks());
    }
    let [child] = plan.children()[..] else {
        return None;
    };
    let per_partition = plan.is::<FilterExec>()
        || plan.is::<ProjectionExec>()
        || plan.is::<CooperativeExec>()
        || plan.is::<LocalLimitExec>()
        || plan
            .downcast_ref::<AggregateExec>()
            .is_some_and(|a| *a.mode() == AggregateMode::Partial)
        || plan
            .downcast_ref::<RepartitionExec>()
            .is_some_and(|r| matches!(r.partitioning(), Partitioning::RoundRobinBatch(_)))
        || plan
            .downcast_ref::<SortExec>()
            .is_some_and(SortExec::preserve_partitioning);
    per_partition
        .then(|| worker_fragment_tasks(child))
        .flatten()
}
