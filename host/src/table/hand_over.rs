//! Hand-over: moving tables from one engine generation to a newer one while queries run.
//!
//! - **file mode**: the old generation's providers of every table in the file are dropped first
//!   (the engine closes the file when its last table goes: two engine copies must never hold one
//!   file open), then the new generation opens them; if it cannot, the old one reopens them.
//! - **memory mode**: the new generation's table is created and the rows copied across before
//!   the switch; on any failure the table stays where it was.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use datafusion::catalog::TableProvider;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::physical_plan::collect;
use datafusion::prelude::SessionContext;
use tokio::sync::OwnedRwLockWriteGuard;

use accel_plugin_api::FileRelease;

use crate::engine::registry::RegisteredEngine;
use crate::table::factory::create_on;
use crate::table::managed::{Current, DRAIN_WAIT, ManagedTable};

/// Moves `tables` — one memory table, or every table stored in one file — to `generation`.
/// All or nothing: on failure every table is left on (or reopened on) the generation it was on,
/// and the error says why.
pub async fn hand_over(
    tables: &[Arc<ManagedTable>],
    generation: &Arc<RegisteredEngine>,
    context: &SessionContext,
    init_timeout: Duration,
) -> Result<(), String> {
    // Locked in name order, the order a query over several tables takes its read guards in
    // (`federation::exec`), so neither waits for the other forever.
    let mut tables = tables.to_vec();
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    let tables = tables.as_slice();
    let mut guards = Vec::with_capacity(tables.len());
    for table in tables {
        guards.push(table.lock().await?);
    }
    let file_mode = tables.iter().all(|t| t.is_file_mode());
    for table in tables {
        // Before the switch: a query planned from now on re-checks its filters (see `scan`).
        table.handovers.fetch_add(1, Ordering::SeqCst);
    }
    let outcome = if file_mode {
        reopen_files(tables, &mut guards, generation, context, init_timeout).await
    } else {
        copy_rows(tables, &mut guards, generation, context, init_timeout).await
    };
    drop(guards);
    outcome
}

/// Memory mode: new tables filled with the old tables' rows, then switched to.
async fn copy_rows(
    tables: &[Arc<ManagedTable>],
    guards: &mut [OwnedRwLockWriteGuard<Current>],
    generation: &Arc<RegisteredEngine>,
    context: &SessionContext,
    init_timeout: Duration,
) -> Result<(), String> {
    let state = context.state();
    let mut created = Vec::with_capacity(tables.len());
    for (table, guard) in tables.iter().zip(guards.iter()) {
        let fail = |what: &str, e: DataFusionError| format!("table `{}`: {what}: {e}", table.name);
        let old = guard.provider().map_err(|e| fail("reading", e))?;
        let plan = old
            .scan(&state, None, &[], None)
            .await
            .map_err(|e| fail("reading the rows", e))?;
        let batches = collect(plan, context.task_ctx())
            .await
            .map_err(|e| fail("reading the rows", e))?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let new = create_on(generation, &table.cmd, &table.source, &state, init_timeout)
            .await
            .map_err(|e| fail("creating it on the new generation", e))?;
        let input = MemorySourceConfig::try_new_exec(&[batches], table.schema(), None)
            .map_err(|e| fail("copying the rows", e))?;
        let insert = new
            .insert_into(&state, input, InsertOp::Append)
            .await
            .map_err(|e| fail("copying the rows", e))?;
        let written = collect(insert, context.task_ctx())
            .await
            .map_err(|e| fail("copying the rows", e))?;
        let count = written
            .first()
            .and_then(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::UInt64Array>()
            })
            .map(|c| c.value(0) as usize);
        if count != Some(rows) {
            return Err(format!(
                "table `{}`: the new generation stored {count:?} rows of {rows}; kept the old",
                table.name
            ));
        }
        created.push(new);
    }
    for (guard, new) in guards.iter_mut().zip(created) {
        guard.provider = Some(new);
        guard.generation = Arc::clone(generation);
    }
    Ok(())
}

/// File mode: the old generation lets go of the file, the new one opens it; if it cannot, the
/// old one opens it again.
async fn reopen_files(
    tables: &[Arc<ManagedTable>],
    guards: &mut [OwnedRwLockWriteGuard<Current>],
    generation: &Arc<RegisteredEngine>,
    context: &SessionContext,
    init_timeout: Duration,
) -> Result<(), String> {
    let state = context.state();
    let old_generations: Vec<Arc<RegisteredEngine>> =
        guards.iter().map(|g| Arc::clone(&g.generation)).collect();
    for guard in guards.iter_mut() {
        guard.provider = None; // the engine closes the file with its last table…
    }
    // …once what still uses it has stopped: a scan or statement whose consumer is gone may
    // still run in a blocking thread. The new generation opens the file only after the old
    // one says it has let go (engines that track nothing else say "not tracked").
    let mut failure = None;
    for (table, old) in tables.iter().zip(&old_generations) {
        let Some(file) = table.file_of(old) else {
            continue;
        };
        match old.accelerator.release_file(&file, DRAIN_WAIT).await {
            Ok(FileRelease::Released | FileRelease::NotTracked) => {}
            Ok(FileRelease::StillOpen) => {
                failure = Some(format!(
                    "{} is still open in {} after {DRAIN_WAIT:?} (a statement that does not \
                     stop); the new generation did not open it",
                    file.display(),
                    old.describe()
                ));
                break;
            }
            Err(e) => {
                failure = Some(format!("{}: releasing it failed: {e}", file.display()));
                break;
            }
        }
    }
    let mut opened = Vec::with_capacity(tables.len());
    for table in tables
        .iter()
        .take(if failure.is_some() { 0 } else { tables.len() })
    {
        match create_on(generation, &table.cmd, &table.source, &state, init_timeout).await {
            Ok(provider) => opened.push(provider),
            Err(e) => {
                failure = Some(format!(
                    "table `{}`: the new generation could not open it: {e}",
                    table.name
                ));
                break;
            }
        }
    }
    let Some(failure) = failure else {
        for (guard, provider) in guards.iter_mut().zip(opened) {
            guard.provider = Some(provider);
            guard.generation = Arc::clone(generation);
        }
        return Ok(());
    };
    drop(opened);
    let mut report = failure;
    for ((table, guard), old) in tables.iter().zip(guards.iter_mut()).zip(old_generations) {
        match create_on(&old, &table.cmd, &table.source, &state, init_timeout).await {
            Ok(provider) => guard.provider = Some(provider),
            Err(e) => report.push_str(&format!(
                "; reopening `{}` on {} failed too: {e}",
                table.name,
                old.describe()
            )),
        }
    }
    Err(report)
}

#[cfg(test)]
mod tests {
    use accel_plugin_api::embedded::canonical;

    #[test]
    fn spellings_of_one_file_share_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.duckdb");
        std::fs::write(&file, b"").unwrap();
        let dotted = dir.path().join(".").join("x.duckdb");
        let link = dir.path().join("link.duckdb");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let key = canonical(&file);
        assert_eq!(canonical(&dotted), key);
        assert_eq!(canonical(&link), key);
        let missing = dir.path().join("sub/../y.duckdb");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        assert_eq!(canonical(&missing), canonical(&dir.path().join("y.duckdb")));
    }
}
