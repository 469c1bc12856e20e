//! A dataset's task: set up, first load, then refresh every `refresh_check_interval`
//! (± up to `refresh_jitter_max`) and on request, until the host stops it.
//!
//! A refresh requested while one runs waits for it and then runs once for every request made
//! meanwhile (requests are collected, never run twice). A failed refresh keeps the rows held,
//! sets the status to `error` with the cause, and is retried after 1, 1, 2, 3, 5, … seconds
//! (capped at a minute) up to `refresh_retry_max_attempts`, unless retries are disabled.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::error::{DataFusionError, Result};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::progress::Progress;
use super::record::RefreshRecord;
use super::refresh::{self, RefreshSummary, accelerated_schema, source_session};
use super::status::DatasetState;
use super::{Dataset, create_table, data_file, refresh_mode};
use crate::Host;
use crate::config::{DatasetSpec, RefreshOnStartup};
use crate::source;

/// Longest wait between two attempts of a failing refresh.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The task of one dataset (whose config was read).
pub async fn run(
    dataset: Arc<Dataset>,
    host: Arc<Host>,
    mut stop: watch::Receiver<bool>,
    mut wake: mpsc::Receiver<()>,
) {
    let Ok(spec) = dataset.spec.clone() else {
        return;
    };
    if dataset.accelerated().is_none() {
        serve_source_directly(&dataset, &host, &spec).await;
        return;
    }
    let interval = spec
        .acceleration
        .as_ref()
        .and_then(|a| a.refresh_check_interval);
    let mut table: Option<Arc<dyn TableProvider>> = None;
    // Due now, unless the dataset is served from its file as last refreshed.
    let mut due = Some(Instant::now());
    if let Some(record) = restorable(&host, &spec) {
        match restore(&host, &spec, &record).await {
            Ok(restored) => {
                table = Some(restored);
                let since = SystemTime::now()
                    .duration_since(record.refreshed_at())
                    .unwrap_or_default();
                due = interval.map(|i| Instant::now() + i.saturating_sub(since));
                dataset.update(|s| {
                    s.state = DatasetState::Ready;
                    s.loaded = true;
                    s.rows = Some(record.rows);
                    s.last_refresh_end = Some(record.refreshed_at());
                    s.next_refresh = interval.map(|i| record.refreshed_at() + i);
                });
                tracing::info!(
                    dataset = %spec.name,
                    rows = record.rows,
                    "served from its file as last refreshed (refresh_on_startup: auto)"
                );
            }
            Err(e) => tracing::warn!(
                dataset = %spec.name,
                "cannot serve the file as recorded ({e}); loading it again"
            ),
        }
    }
    loop {
        if *stop.borrow() {
            break;
        }
        let requested = match due {
            Some(at) => tokio::select! {
                _ = stop.changed() => break,
                _ = tokio::time::sleep_until(at) => false,
                _ = wake.recv() => true,
            },
            None => tokio::select! {
                _ = stop.changed() => break,
                _ = wake.recv() => true,
            },
        };
        if *stop.borrow() {
            break;
        }
        // This refresh answers every request made so far: their wake-ups are spent.
        while wake.try_recv().is_ok() {}
        let mut waiters = dataset.take_waiters();
        let outcome = with_retries(
            &dataset,
            &host,
            &spec,
            &mut table,
            &mut stop,
            &mut waiters,
            requested,
        )
        .await;
        for waiter in waiters {
            let _ = waiter.send(outcome.clone());
        }
        due = interval.map(|i| Instant::now() + i + jitter(&spec));
        let next = due.map(|at| SystemTime::now() + at.saturating_duration_since(Instant::now()));
        dataset.update(|s| s.next_refresh = next);
    }
    for waiter in dataset.take_waiters() {
        let _ = waiter.send(Err("accel is shutting down".to_owned()));
    }
}

/// A dataset with no enabled acceleration is its source, queried directly.
async fn serve_source_directly(dataset: &Dataset, host: &Host, spec: &DatasetSpec) {
    let session = source_session();
    let registered = match source::open(spec, &session.state()).await {
        Ok(provider) => host
            .context()
            .register_table(TableReference::bare(spec.name.as_str()), provider)
            .map(|_| ()),
        Err(e) => Err(e),
    };
    dataset.update(|s| match registered {
        Ok(()) => {
            s.state = DatasetState::Disabled;
            s.loaded = true;
        }
        Err(e) => {
            s.state = DatasetState::Error;
            s.last_error = Some(super::plain_message(&e));
        }
    });
}

/// The record that lets a file-mode dataset be served at once, if it applies.
fn restorable(host: &Host, spec: &DatasetSpec) -> Option<RefreshRecord> {
    let acceleration = spec.acceleration.as_ref()?;
    if acceleration.refresh_on_startup != RefreshOnStartup::Auto {
        return None;
    }
    let file = data_file(host, spec)?;
    if !file.exists() {
        return None;
    }
    let record = RefreshRecord::read(&file)?;
    if !record.matches(spec) {
        tracing::info!(
            dataset = %spec.name,
            "the dataset's definition changed since its last refresh: loading it again"
        );
        return None;
    }
    Some(record)
}

/// Opens the dataset's table from its file with the recorded columns, and serves it.
async fn restore(
    host: &Host,
    spec: &DatasetSpec,
    record: &RefreshRecord,
) -> Result<Arc<dyn TableProvider>> {
    let schema = record.schema().ok_or_else(|| {
        DataFusionError::Plan("the record's column types cannot be read".to_owned())
    })?;
    let table = create_table(host, spec, schema).await?;
    serve(host, spec, &table)?;
    Ok(table)
}

/// Makes the table queryable under the dataset's name (replacing nothing the user made: the
/// name is the dataset's).
fn serve(host: &Host, spec: &DatasetSpec, table: &Arc<dyn TableProvider>) -> Result<()> {
    host.context()
        .register_table(TableReference::bare(spec.name.as_str()), Arc::clone(table))?;
    Ok(())
}

/// Refreshes until it succeeds, retries run out, or the host stops. Requests waiting are
/// answered with the first failure (and those arriving during retries with the next), so a
/// client never waits on a source that is down.
async fn with_retries(
    dataset: &Dataset,
    host: &Host,
    spec: &DatasetSpec,
    table: &mut Option<Arc<dyn TableProvider>>,
    stop: &mut watch::Receiver<bool>,
    waiters: &mut Vec<super::RefreshWaiter>,
    requested: bool,
) -> std::result::Result<RefreshSummary, String> {
    let acceleration = spec.acceleration.as_ref();
    let retry = acceleration.is_none_or(|a| a.refresh_retry_enabled);
    let max_attempts = acceleration.and_then(|a| a.refresh_retry_max_attempts);
    let (mut backoff, mut next_backoff) = (Duration::from_secs(1), Duration::from_secs(1));
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match refresh_once(dataset, host, spec, table).await {
            Ok(summary) => {
                tracing::info!(
                    dataset = %spec.name,
                    mode = %summary.mode,
                    written = summary.rows_written,
                    held = summary.rows_held,
                    requested,
                    "refreshed"
                );
                return Ok(summary);
            }
            Err(e) => {
                let message = super::plain_message(&e);
                tracing::warn!(dataset = %spec.name, attempt, "refresh failed: {message}");
                dataset.update(|s| {
                    s.state = DatasetState::Error;
                    s.last_error = Some(message.clone());
                    s.failures += 1;
                    s.progress = None;
                });
                waiters.extend(dataset.take_waiters());
                for waiter in waiters.drain(..) {
                    let _ = waiter.send(Err(message.clone()));
                }
                let exhausted = !retry || max_attempts.is_some_and(|m| attempt >= m);
                if exhausted {
                    return Err(message);
                }
                tokio::select! {
                    _ = stop.changed() => return Err(message),
                    _ = tokio::time::sleep(backoff) => {}
                }
                (backoff, next_backoff) = (next_backoff, (backoff + next_backoff).min(MAX_BACKOFF));
            }
        }
    }
}

/// One attempt: the table created if it is not yet, then one refresh.
async fn refresh_once(
    dataset: &Dataset,
    host: &Host,
    spec: &DatasetSpec,
    table: &mut Option<Arc<dyn TableProvider>>,
) -> Result<RefreshSummary> {
    let started = SystemTime::now();
    let progress = Arc::new(Progress::default());
    dataset.update(|s| {
        if s.loaded {
            s.state = DatasetState::Refreshing;
        }
        s.last_refresh_start = Some(started);
        s.progress = Some(Arc::clone(&progress));
    });
    let accelerated = match table {
        Some(existing) => Arc::clone(existing),
        None => {
            let schema = accelerated_schema(spec).await?;
            let created = create_table(host, spec, schema).await?;
            *table = Some(Arc::clone(&created));
            created
        }
    };
    let schema = accelerated.schema();
    let summary = refresh::refresh(
        spec,
        Arc::clone(&accelerated),
        refresh_mode(spec),
        &progress,
    )
    .await?;
    // Served from its first successful load on (a load that failed left it unregistered).
    if !host
        .context()
        .table_exist(TableReference::bare(spec.name.as_str()))?
    {
        serve(host, spec, &accelerated)?;
    }
    let ended = SystemTime::now();
    if let Some(file) = data_file(host, spec) {
        let record = RefreshRecord::new(spec, &schema, ended, summary.rows_held);
        if let Err(e) = record.write(&file) {
            tracing::warn!(
                dataset = %spec.name,
                "cannot record the refresh beside {} ({e}); the next start loads it again",
                file.display()
            );
        }
    }
    dataset.update(|s| {
        s.state = DatasetState::Ready;
        s.loaded = true;
        s.rows = Some(summary.rows_held);
        s.last_refresh_end = Some(ended);
        s.last_refresh_duration = ended.duration_since(started).ok();
        s.last_error = None;
        s.refreshes += 1;
        s.progress = None;
    });
    Ok(summary)
}

/// A random delay up to `refresh_jitter_max`.
fn jitter(spec: &DatasetSpec) -> Duration {
    let Some(max) = spec
        .acceleration
        .as_ref()
        .and_then(|a| a.refresh_jitter_max)
    else {
        return Duration::ZERO;
    };
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(random % nanos.max(1))
}
