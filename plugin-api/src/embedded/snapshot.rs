//! Restoring a file-mode table from a snapshot: when the table's file does not exist yet and
//! its `snapshot` option names a file (a path or a `file://` URL), `init` copies the snapshot
//! into place first. Every file-based engine restores the same way; `accel snapshot` writes
//! the snapshot files.

use std::path::Path;

use datafusion::common::plan_err;
use datafusion::error::{DataFusionError, Result};

use crate::{AccelerationSource, BootstrapStatus};

/// The `init` of a file-mode table stored in `path`: `AlreadyInitialized` when the file exists,
/// `Bootstrapped` after restoring the table's `snapshot` option, `NotBootstrapped` without one.
pub async fn restore_if_missing(
    source: &dyn AccelerationSource,
    path: &Path,
) -> Result<BootstrapStatus> {
    if path.exists() {
        return Ok(BootstrapStatus::AlreadyInitialized);
    }
    let Some(snapshot) = source.params().get("snapshot").cloned() else {
        return Ok(BootstrapStatus::NotBootstrapped);
    };
    if snapshot.contains("://") && !snapshot.starts_with("file://") {
        return plan_err!(
            "option snapshot '{snapshot}': only local paths and file:// URLs are supported"
        );
    }
    let from = Path::new(snapshot.strip_prefix("file://").unwrap_or(&snapshot)).to_owned();
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || copy_into_place(&from, &path))
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))??;
    Ok(BootstrapStatus::Bootstrapped { snapshot })
}

/// Copies `from` to `path` through a temporary file, so a failed copy leaves no half-written
/// database behind.
fn copy_into_place(from: &Path, path: &Path) -> Result<()> {
    let fail = |what: &str, e: std::io::Error| {
        DataFusionError::Execution(format!(
            "restoring snapshot {} to {}: {what}: {e}",
            from.display(),
            path.display()
        ))
    };
    if !from.is_file() {
        return plan_err!(
            "option snapshot: {} does not exist or is not a file",
            from.display()
        );
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| fail("creating the directory", e))?;
    }
    let temporary = path.with_extension("restoring");
    std::fs::copy(from, &temporary).map_err(|e| fail("copying", e))?;
    std::fs::rename(&temporary, path).map_err(|e| fail("moving into place", e))
}
