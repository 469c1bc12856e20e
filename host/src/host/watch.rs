//! `--watch`: reloads the host when a library in its plugin directories was added, replaced or
//! removed.
//!
//! Filesystem events (inotify and its kin, through `notify`), debounced: a change is acted on
//! once the directories have been quiet for `quiet`, so a library being copied in is never
//! loaded half-written. Where events cannot be had — a plugin directory that does not exist
//! yet, a filesystem that sends none (some network and FUSE mounts), the inotify watch limit
//! reached — the directories are polled every `quiet` instead, with the same rule: a change is
//! acted on once a poll finds nothing new. [`Watcher::mode`] says which is in use and why.
//! With events, the directories' listing (names, sizes, modification times, through symlinks)
//! is still compared every `quiet`, for what sends no event: a plugin directory deleted and
//! created again, a symlink's target replaced.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{DebounceEventResult, DebouncedEventKind, Debouncer, new_debouncer};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::host::Host;
use crate::host::reload::ReloadReport;
use crate::library::discover::discover;

/// How a watcher learns of changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchMode {
    /// Filesystem events.
    Events,
    /// Polling, because events could not be had (the reason).
    Polling(String),
}

/// A running watch: it stops by itself once nothing else holds the host.
pub struct Watcher {
    pub task: JoinHandle<()>,
    pub mode: WatchMode,
}

/// Watches the host's plugin directories; `on_reload` gets each reload's report.
pub fn watch(
    host: Arc<Host>,
    quiet: Duration,
    on_reload: impl Fn(ReloadReport) + Send + Sync + 'static,
) -> Watcher {
    let dirs = watched_dirs(&host);
    let (changes, received) = mpsc::unbounded_channel();
    match event_source(&dirs, quiet, changes) {
        Ok(source) => Watcher {
            task: tokio::spawn(on_events(host, quiet, source, received, on_reload)),
            mode: WatchMode::Events,
        },
        Err(reason) => Watcher {
            task: tokio::spawn(poll(host, quiet, on_reload)),
            mode: WatchMode::Polling(reason),
        },
    }
}

/// A debounced watcher of `dirs` sending one message per quiet period that saw changes to
/// anything but hidden files (the temporary names of a copy-then-rename install).
fn event_source(
    dirs: &[PathBuf],
    quiet: Duration,
    changes: mpsc::UnboundedSender<()>,
) -> Result<Debouncer<RecommendedWatcher>, String> {
    let handler = move |result: DebounceEventResult| {
        let relevant = match result {
            // `AnyContinuous` comes while writes go on: wait for the quiet period's `Any`.
            Ok(events) => events.iter().any(|event| {
                event.kind == DebouncedEventKind::Any
                    && !event
                        .path
                        .file_name()
                        .is_some_and(|name| name.to_string_lossy().starts_with('.'))
            }),
            Err(_) => true, // events were lost: look at the directories anyway
        };
        if relevant {
            let _ = changes.send(());
        }
    };
    let mut debouncer =
        new_debouncer(quiet, handler).map_err(|e| format!("no filesystem events: {e}"))?;
    for dir in dirs {
        debouncer
            .watcher()
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    }
    Ok(debouncer)
}

async fn on_events(
    host: Arc<Host>,
    quiet: Duration,
    source: Debouncer<RecommendedWatcher>,
    mut changes: mpsc::UnboundedReceiver<()>,
    on_reload: impl Fn(ReloadReport) + Send + Sync + 'static,
) {
    let _source = source; // events stop when it is dropped
    // The listing is also compared every quiet period: some changes send no event to the
    // watched directories — a directory deleted and created again (its watch went with it),
    // a symlinked library whose target was replaced.
    let mut listing = ListingWatch::new(&host);
    loop {
        tokio::select! {
            change = changes.recv() => {
                if change.is_none() || Arc::strong_count(&host) == 1 {
                    return;
                }
                // One reload covers every change announced before it starts.
                while changes.try_recv().is_ok() {}
                on_reload(host.reload().await);
                listing.reset(&host);
            }
            () = tokio::time::sleep(quiet) => {
                if Arc::strong_count(&host) == 1 {
                    return; // nobody else uses the host any more
                }
                if listing.tick(&host) {
                    on_reload(host.reload().await);
                }
            }
        }
    }
}

async fn poll(
    host: Arc<Host>,
    interval: Duration,
    on_reload: impl Fn(ReloadReport) + Send + Sync + 'static,
) {
    let mut listing = ListingWatch::new(&host);
    loop {
        tokio::time::sleep(interval).await;
        if Arc::strong_count(&host) == 1 {
            return; // nobody else uses the host any more
        }
        if listing.tick(&host) {
            on_reload(host.reload().await);
        }
    }
}

/// The plugin directories' listing, compared at each tick: a change is acted on once a whole
/// tick has passed without another (so a library being copied in is not loaded half-written).
struct ListingWatch {
    seen: Vec<(PathBuf, u64, Option<SystemTime>)>,
    changed: bool,
}

impl ListingWatch {
    fn new(host: &Host) -> Self {
        Self {
            seen: listing(host),
            changed: false,
        }
    }

    /// Reads the listing; `true` when a change seen before has been quiet for this tick.
    fn tick(&mut self, host: &Host) -> bool {
        let now = listing(host);
        if now != self.seen {
            self.seen = now;
            self.changed = true;
            false
        } else {
            std::mem::take(&mut self.changed)
        }
    }

    /// After a reload something else prompted: what is there now counts as seen.
    fn reset(&mut self, host: &Host) {
        *self = Self::new(host);
    }
}

fn watched_dirs(host: &Host) -> Vec<PathBuf> {
    host.options().search_dirs()
}

/// Every candidate library with its size and modification time.
fn listing(host: &Host) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    discover(&watched_dirs(host))
        .candidates
        .into_iter()
        .map(|path| {
            let metadata = std::fs::metadata(&path).ok();
            let len = metadata.as_ref().map_or(0, |m| m.len());
            let modified = metadata.and_then(|m| m.modified().ok());
            (path, len, modified)
        })
        .collect()
}
