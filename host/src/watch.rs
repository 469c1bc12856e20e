//! `--watch`: polls the plugin directories and reloads when a library was added, replaced or
//! removed. Debounced: a change is acted on once the directory has stayed the same for one
//! more interval, so a library being copied in is never loaded half-written.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::discover::{PLUGIN_PATH_VAR, discover, plugin_dirs};
use crate::host::Host;
use crate::reload::ReloadReport;

/// Polls every `interval` until the host is dropped elsewhere; `on_reload` gets each report.
pub fn watch(
    host: Arc<Host>,
    interval: Duration,
    on_reload: impl Fn(ReloadReport) + Send + Sync + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen = fingerprint(&host);
        let mut changed = false;
        loop {
            tokio::time::sleep(interval).await;
            if Arc::strong_count(&host) == 1 {
                return; // nobody else uses the host any more
            }
            let now = fingerprint(&host);
            if now != seen {
                seen = now;
                changed = true;
            } else if changed {
                changed = false;
                on_reload(host.reload().await);
            }
        }
    })
}

/// Every candidate library with its size and modification time.
fn fingerprint(host: &Host) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let options = host.options();
    let var = options
        .use_plugin_path_var
        .then(|| std::env::var(PLUGIN_PATH_VAR).ok())
        .flatten();
    let dirs = plugin_dirs(&options.plugin_dirs, var.as_deref());
    discover(&dirs)
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
