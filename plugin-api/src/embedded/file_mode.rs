//! Where a file-mode table of a single-file database engine lives: the engine's `<prefix>_file`
//! option, else the table's `LOCATION`, else `<data dir>/<table>.<default extension>` — and
//! the extension must be one the engine accepts.

use std::path::PathBuf;

use crate::{AccelerationSource, FilePathError, Mode};

/// The database file of `source`, for an engine whose file option is `file_option` (e.g.
/// `duckdb_file`), whose files end in one of `extensions`, `default_extension` when the table
/// names no file.
pub fn database_file(
    source: &dyn AccelerationSource,
    file_option: &str,
    default_extension: &str,
    extensions: &[&str],
) -> Result<String, FilePathError> {
    if source.mode() != Mode::File {
        return Err(FilePathError::NotFileMode);
    }
    let path = match (source.params().get(file_option), source.location()) {
        (Some(file), _) => PathBuf::from(file),
        (None, Some(location)) => PathBuf::from(location),
        (None, None) => source
            .data_directory()
            .join(format!("{}.{default_extension}", source.dataset_name())),
    };
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !extensions.contains(&extension.as_str()) {
        return Err(FilePathError::InvalidExtension {
            path: path.display().to_string(),
            found: extension,
            expected: extensions.iter().map(|e| (*e).to_owned()).collect(),
        });
    }
    Ok(path.display().to_string())
}
