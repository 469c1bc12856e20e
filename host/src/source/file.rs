//! `from: file:PATH` — one file, a directory or a glob of parquet, CSV or (newline-delimited)
//! JSON files, read by DataFusion's listing table. The format is `params.file_format`, else
//! the path's extension.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::{DataFusionError, Result};
use futures::TryStreamExt;

use super::shard::shard_of_file;

/// The params a file source understands.
pub const PARAMS: &[&str] = &[
    "file_format",
    "csv_has_header",
    "csv_delimiter",
    "csv_quote",
    "csv_escape",
    "csv_schema_infer_max_records",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Parquet,
    Csv,
    Json,
}

impl Format {
    fn named(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "parquet" => Some(Self::Parquet),
            "csv" => Some(Self::Csv),
            "json" | "jsonl" | "ndjson" => Some(Self::Json),
            _ => None,
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Self::Parquet => ".parquet",
            Self::Csv => ".csv",
            Self::Json => ".json",
        }
    }
}

/// A listing table over `path`; with `shard` = (index, count), over only the files of that
/// shard (`shard_by: file`), with the schema of all of them.
pub async fn open(
    path: &str,
    params: &BTreeMap<String, String>,
    state: &dyn Session,
    shard: Option<(u32, u32)>,
) -> Result<Arc<dyn TableProvider>> {
    for key in params.keys() {
        if !PARAMS.contains(&key.as_str()) {
            return Err(plan(format!(
                "file source `{path}`: unknown param `{key}`; valid params: {}",
                PARAMS.join(", ")
            )));
        }
    }
    let format = match params.get("file_format") {
        Some(name) => Format::named(name).ok_or_else(|| {
            plan(format!(
                "file source `{path}`: file_format `{name}` is not one of parquet, csv, json"
            ))
        })?,
        None => extension_format(path).ok_or_else(|| {
            plan(format!(
                "file source `{path}`: cannot tell the file format from the path; set \
                 params.file_format to parquet, csv or json"
            ))
        })?,
    };
    let file_format: Arc<dyn FileFormat> = match format {
        Format::Parquet => Arc::new(ParquetFormat::default()),
        Format::Json => Arc::new(JsonFormat::default()),
        Format::Csv => Arc::new(csv_format(path, params)?),
    };
    let url = ListingTableUrl::parse(path)?;
    // A named file is read whatever its extension; a directory or glob lists the format's.
    let extension = if url.is_collection() || path.contains(['*', '?', '[']) {
        format.extension()
    } else {
        ""
    };
    let options = ListingOptions::new(file_format).with_file_extension(extension);
    let schema = options.infer_schema(state, &url).await.map_err(|e| {
        plan(format!(
            "file source `{path}`: cannot read a schema from its files: {e}"
        ))
    })?;
    let config = match shard {
        None => ListingTableConfig::new(url),
        Some((index, count)) => {
            let files = files_of_shard(&url, extension, state, index, count).await?;
            if files.is_empty() {
                return Ok(Arc::new(MemTable::try_new(schema, vec![vec![]])?));
            }
            ListingTableConfig::new_with_multi_paths(files)
        }
    };
    let config = config.with_listing_options(options).with_schema(schema);
    Ok(Arc::new(ListingTable::try_new(config)?))
}

/// The files under `url` that belong to shard `index` of `count`, by their listed paths.
async fn files_of_shard(
    url: &ListingTableUrl,
    extension: &str,
    state: &dyn Session,
    index: u32,
    count: u32,
) -> Result<Vec<ListingTableUrl>> {
    let store = state.runtime_env().object_store(url)?;
    let listed: Vec<_> = url
        .list_all_files(state, store.as_ref(), extension)
        .await?
        .try_collect()
        .await?;
    let base = url.object_store();
    let mut files = Vec::new();
    for file in listed {
        if shard_of_file(file.location.as_ref(), count) == index {
            files.push(ListingTableUrl::parse(format!(
                "{}{}",
                base.as_str(),
                file.location
            ))?);
        }
    }
    Ok(files)
}

fn extension_format(path: &str) -> Option<Format> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let extension = name.rsplit_once('.')?.1;
    Format::named(extension)
}

fn csv_format(path: &str, params: &BTreeMap<String, String>) -> Result<CsvFormat> {
    let byte = |key: &str| -> Result<Option<u8>> {
        let Some(value) = params.get(key) else {
            return Ok(None);
        };
        match value.as_bytes() {
            [one] => Ok(Some(*one)),
            _ => Err(plan(format!(
                "file source `{path}`: {key} must be one ASCII character, found `{value}`"
            ))),
        }
    };
    let mut format = CsvFormat::default().with_has_header(true);
    if let Some(value) = params.get("csv_has_header") {
        let has_header = value.parse::<bool>().map_err(|_| {
            plan(format!(
                "file source `{path}`: csv_has_header must be true or false, found `{value}`"
            ))
        })?;
        format = format.with_has_header(has_header);
    }
    if let Some(delimiter) = byte("csv_delimiter")? {
        format = format.with_delimiter(delimiter);
    }
    if let Some(quote) = byte("csv_quote")? {
        format = format.with_quote(quote);
    }
    if let Some(escape) = byte("csv_escape")? {
        format = format.with_escape(Some(escape));
    }
    if let Some(value) = params.get("csv_schema_infer_max_records") {
        let records = value.parse::<usize>().map_err(|_| {
            plan(format!(
                "file source `{path}`: csv_schema_infer_max_records must be a whole number, \
                 found `{value}`"
            ))
        })?;
        format = format.with_schema_infer_max_rec(records);
    }
    Ok(format)
}

fn plan(message: String) -> DataFusionError {
    DataFusionError::Plan(message)
}
