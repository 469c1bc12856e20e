//! The last successful refresh of a file-mode dataset, recorded beside its data
//! (`<file>.refresh.json`): when it ended, the rows held, the table's columns and a digest of
//! the dataset's definition. At start-up with `refresh_on_startup: auto`, a record whose
//! digest matches lets the dataset be served from its file at once; a changed definition
//! (another source, `refresh_sql`, window, engine params…) reloads it.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::DatasetSpec;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RefreshRecord {
    pub dataset: String,
    /// Digest of the definition the data was loaded with.
    pub definition: String,
    pub columns: Vec<RecordedColumn>,
    /// Milliseconds since 1970 when the refresh committed.
    pub refreshed_at_ms: u64,
    pub rows: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RecordedColumn {
    pub name: String,
    pub data_type: String,
    pub nullable: bool,
}

/// The record's path for a dataset stored in `file`.
pub fn path_for(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".refresh.json");
    PathBuf::from(name)
}

/// A digest of what decides a dataset's rows; secrets enter as written (`${env:…}`).
pub fn definition_digest(spec: &DatasetSpec) -> String {
    let acceleration = spec.acceleration.as_ref();
    let text = format!(
        "from={}\nparams={:?}\ntime_column={:?}\ntime_format={:?}\nengine={:?}\nmode={:?}\n\
         engine_params={:?}\nrefresh_mode={:?}\nrefresh_sql={:?}\nwindow={:?}\nkey={:?}\n\
         partition_by={:?}",
        spec.from,
        spec.params,
        spec.time_column,
        spec.time_format,
        acceleration.map(|a| &a.engine),
        acceleration.map(|a| a.mode),
        acceleration.map(|a| &a.params),
        acceleration.map(|a| a.refresh_mode),
        acceleration.and_then(|a| a.refresh_sql.as_ref()),
        acceleration.and_then(|a| a.refresh_data_window),
        acceleration.and_then(|a| a.primary_key.as_ref()),
        acceleration.map(|a| &a.partition_by),
    );
    // A shard's part of the source decides its rows too (absent for other datasets, whose
    // digests stay as they were).
    let text = match &spec.shard {
        Some(part) => format!("{text}\nshard={}/{} by {}", part.index, part.count, part.by),
        None => text,
    };
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl RefreshRecord {
    pub fn new(spec: &DatasetSpec, schema: &Schema, refreshed_at: SystemTime, rows: u64) -> Self {
        Self {
            dataset: spec.name.clone(),
            definition: definition_digest(spec),
            columns: schema
                .fields()
                .iter()
                .map(|f| RecordedColumn {
                    name: f.name().clone(),
                    data_type: f.data_type().to_string(),
                    nullable: f.is_nullable(),
                })
                .collect(),
            refreshed_at_ms: refreshed_at
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis() as u64,
            rows,
        }
    }

    /// Reads the record of `file`; `None` when there is none or it cannot be read (the dataset
    /// is then loaded again, which is always safe).
    pub fn read(file: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(path_for(file)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Writes the record through a temporary file and a rename, so a crash leaves the old
    /// record or the new one.
    pub fn write(&self, file: &Path) -> std::io::Result<()> {
        let path = path_for(file);
        let temporary = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&temporary, text)?;
        std::fs::rename(&temporary, &path)
    }

    /// Whether the record was written for this definition of the dataset.
    pub fn matches(&self, spec: &DatasetSpec) -> bool {
        self.dataset == spec.name && self.definition == definition_digest(spec)
    }

    /// The table's columns, as recorded.
    pub fn schema(&self) -> Option<SchemaRef> {
        let fields = self
            .columns
            .iter()
            .map(|c| {
                DataType::from_str(&c.data_type)
                    .ok()
                    .map(|t| Field::new(&c.name, t, c.nullable))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Arc::new(Schema::new(fields)))
    }

    pub fn refreshed_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.refreshed_at_ms)
    }
}
