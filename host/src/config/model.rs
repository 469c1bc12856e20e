//! The typed configuration: what `accel.yaml` may say, with Spice's spicepod names and
//! meanings. Every struct refuses keys it does not know, so a misspelt key is an error rather
//! than a setting silently ignored.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

/// The whole file, as read before each dataset is checked on its own.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    /// Spicepod header keys, accepted so a spicepod's dataset section can be pasted as is.
    #[serde(default)]
    #[allow(dead_code)]
    pub version: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    pub kind: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    pub name: Option<String>,
    /// Plugin directories, relative to the config file's directory.
    #[serde(default)]
    pub plugin_dirs: Vec<PathBuf>,
    /// Where file-mode datasets are stored when their params name no file, relative to the
    /// config file's directory.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    #[serde(default)]
    pub datasets: Vec<serde_yaml::Value>,
}

/// One `datasets:` entry. Serializes back to the same keys (the coordinator sends a sharded
/// dataset to its workers this way).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    /// Where the data lives: `file:PATH` or `postgres:[schema.]table`.
    pub from: SourceSpec,
    /// The table name queries use.
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Source parameters (file format, CSV options, connection settings). Values may say
    /// `${env:NAME}`, read from the environment when the source is opened.
    #[serde(default, deserialize_with = "scalar_map")]
    pub params: BTreeMap<String, String>,
    /// The column that orders rows in time: what append refreshes and data windows read.
    #[serde(default)]
    pub time_column: Option<String>,
    #[serde(default)]
    pub time_format: Option<TimeFormat>,
    #[serde(default)]
    pub acceleration: Option<AccelerationSpec>,
    /// Set on a worker only: the dataset is one shard of a sharded dataset, and `name` is
    /// the shard's table name.
    #[serde(skip)]
    pub shard: Option<ShardPart>,
}

impl DatasetSpec {
    /// The name the source is read under (by `refresh_sql`, in errors): the dataset's own
    /// name, also for one of its shards.
    pub fn source_name(&self) -> &str {
        match &self.shard {
            Some(part) => &part.dataset,
            None => &self.name,
        }
    }

    /// How the dataset is split over workers, when it is (one of its shards is not split).
    pub fn sharding(&self) -> Option<(u32, &ShardBy)> {
        if self.shard.is_some() {
            return None;
        }
        let acceleration = self.acceleration.as_ref().filter(|a| a.enabled)?;
        Some((acceleration.shards?, acceleration.shard_by.as_ref()?))
    }

    /// Shard `index` of this sharded dataset, as the worker holding it accelerates it: a
    /// table of its own name that reads only the shard's part of the source.
    pub fn shard(&self, index: u32) -> Option<DatasetSpec> {
        let (count, by) = self.sharding()?;
        let mut part = self.clone();
        part.name = shard_table_name(&self.name, index, count);
        part.shard = Some(ShardPart {
            dataset: self.name.clone(),
            index,
            count,
            by: by.clone(),
        });
        Some(part)
    }
}

/// The table name shard `index` of `count` of `dataset` has on the worker holding it.
pub fn shard_table_name(dataset: &str, index: u32, count: u32) -> String {
    format!("{dataset}__shard{index}of{count}")
}

/// Which part of a sharded dataset's source one shard holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPart {
    /// The sharded dataset's name.
    pub dataset: String,
    pub index: u32,
    pub count: u32,
    pub by: ShardBy,
}

/// How a sharded dataset's rows are split: `file` or `hash(column)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardBy {
    /// Whole source files: each file belongs to one shard, chosen by a hash of its path.
    File,
    /// Rows, by a hash of one column's value.
    Hash { column: String },
}

impl fmt::Display for ShardBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File => f.write_str("file"),
            Self::Hash { column } => write!(f, "hash({column})"),
        }
    }
}

impl std::str::FromStr for ShardBy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        if trimmed == "file" {
            return Ok(Self::File);
        }
        let column = trimmed
            .strip_prefix("hash(")
            .and_then(|rest| rest.strip_suffix(')'))
            .map(str::trim)
            .filter(|c| !c.is_empty());
        match column {
            Some(column) => Ok(Self::Hash {
                column: column.to_owned(),
            }),
            None => Err(format!(
                "`{text}` is not a way to shard; expected `file` or `hash(column)`"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for ShardBy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(de::Error::custom)
    }
}

impl Serialize for ShardBy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The `acceleration:` block of a dataset.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccelerationSpec {
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// Any loaded engine, built-in or plugin.
    #[serde(default = "arrow_engine")]
    pub engine: String,
    #[serde(default)]
    pub mode: AccelerationMode,
    /// Engine options (`duckdb_file`, `sqlite_file`, …), as `OPTIONS` of a table.
    #[serde(default, deserialize_with = "scalar_map")]
    pub params: BTreeMap<String, String>,
    /// Semver range of engine versions the dataset accepts, e.g. `^1.2`.
    #[serde(default)]
    pub engine_version: Option<String>,
    #[serde(default)]
    pub refresh_mode: RefreshMode,
    #[serde(
        default,
        deserialize_with = "duration",
        serialize_with = "duration_text"
    )]
    pub refresh_check_interval: Option<Duration>,
    /// A `SELECT … FROM <dataset name> …` run on the source to fill the acceleration.
    #[serde(default)]
    pub refresh_sql: Option<String>,
    /// Only rows whose time column is within this long before now are loaded.
    #[serde(
        default,
        deserialize_with = "duration",
        serialize_with = "duration_text"
    )]
    pub refresh_data_window: Option<Duration>,
    /// Append refreshes re-read this long before the newest row held, dropping rows already held.
    #[serde(
        default,
        deserialize_with = "duration",
        serialize_with = "duration_text"
    )]
    pub refresh_append_overlap: Option<Duration>,
    #[serde(default = "enabled_by_default")]
    pub refresh_retry_enabled: bool,
    #[serde(default)]
    pub refresh_retry_max_attempts: Option<u32>,
    #[serde(
        default,
        deserialize_with = "duration",
        serialize_with = "duration_text"
    )]
    pub refresh_jitter_max: Option<Duration>,
    #[serde(default)]
    pub refresh_on_startup: RefreshOnStartup,
    /// `id` or `(a, b)`.
    #[serde(default)]
    pub primary_key: Option<KeyColumns>,
    /// `{ id: upsert }` or `{ id: drop }`.
    #[serde(default, deserialize_with = "scalar_map")]
    pub on_conflict: BTreeMap<String, String>,
    /// `{ city: enabled, "(a, b)": unique }`.
    #[serde(default, deserialize_with = "scalar_map")]
    pub indexes: BTreeMap<String, String>,
    /// Columns the engine partitions the table by.
    #[serde(default)]
    pub partition_by: Vec<String>,
    /// Split the dataset into this many shards, each accelerated by one worker of
    /// `accel serve --workers` (needs `shard_by`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<u32>,
    /// How rows are split between shards: `file` or `hash(column)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_by: Option<ShardBy>,
}

fn enabled_by_default() -> bool {
    true
}

fn arrow_engine() -> String {
    "arrow".to_owned()
}

/// Where a dataset's rows come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// A file, a directory or a glob of parquet, CSV or JSON files.
    File { path: String },
    /// A PostgreSQL table.
    Postgres {
        schema: Option<String>,
        table: String,
    },
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File { path } => write!(f, "file:{path}"),
            Self::Postgres {
                schema: Some(schema),
                table,
            } => write!(f, "postgres:{schema}.{table}"),
            Self::Postgres {
                schema: None,
                table,
            } => write!(f, "postgres:{table}"),
        }
    }
}

impl std::str::FromStr for SourceSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let Some((connector, path)) = text.split_once(':') else {
            return Err(format!(
                "`{text}` names no connector; expected `file:PATH` or `postgres:schema.table`"
            ));
        };
        if path.trim().is_empty() {
            return Err(format!("`{text}` names no {connector} path or table"));
        }
        match connector {
            "file" => Ok(Self::File {
                path: path.to_owned(),
            }),
            "postgres" => match path.split_once('.') {
                Some((schema, table)) if !schema.is_empty() && !table.is_empty() => {
                    Ok(Self::Postgres {
                        schema: Some(schema.to_owned()),
                        table: table.to_owned(),
                    })
                }
                Some(_) => Err(format!("`{text}`: expected `postgres:schema.table`")),
                None => Ok(Self::Postgres {
                    schema: None,
                    table: path.to_owned(),
                }),
            },
            other => Err(format!(
                "unknown connector `{other}` in `{text}`; supported: file, postgres"
            )),
        }
    }
}

impl Serialize for SourceSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SourceSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// How a time column's values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeFormat {
    /// A timestamp or date column.
    Timestamp,
    Timestamptz,
    Date,
    /// Whole seconds since 1970 in an integer column.
    UnixSeconds,
    /// Milliseconds since 1970 in an integer column.
    UnixMillis,
    /// RFC 3339 text, e.g. `2026-12-01T10:00:00Z`.
    #[serde(rename = "ISO8601", alias = "iso8601")]
    Iso8601,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccelerationMode {
    #[default]
    Memory,
    File,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshMode {
    /// Each refresh replaces every row with the source's rows.
    #[default]
    Full,
    /// Each refresh adds the source's rows newer than the newest held.
    Append,
}

impl fmt::Display for RefreshMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Full => "full",
            Self::Append => "append",
        })
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshOnStartup {
    /// A file-mode dataset whose last refresh was recorded (with the same definition) is
    /// served from its file at once, not reloaded.
    #[default]
    Auto,
    /// Every start loads the dataset again.
    Always,
}

/// Primary key columns: `id`, `(a, b)` or a YAML list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyColumns(pub Vec<String>);

impl KeyColumns {
    /// As the table option reads it: `id` or `(a,b)`.
    pub fn as_option(&self) -> String {
        match self.0.as_slice() {
            [one] => one.clone(),
            many => format!("({})", many.join(",")),
        }
    }
}

impl Serialize for KeyColumns {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for KeyColumns {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            One(String),
            Many(Vec<String>),
        }
        let columns = match Written::deserialize(deserializer).map_err(|_| {
            de::Error::custom("expected a column name, `(a, b)` or a list of column names")
        })? {
            Written::One(text) => text
                .trim()
                .trim_start_matches('(')
                .trim_end_matches(')')
                .split(',')
                .map(|c| c.trim().to_owned())
                .collect::<Vec<_>>(),
            Written::Many(list) => list,
        };
        if columns.is_empty() || columns.iter().any(String::is_empty) {
            return Err(de::Error::custom("a primary key names at least one column"));
        }
        Ok(Self(columns))
    }
}

/// A duration written as humans do (`30s`, `5m`, `1h 30m`), which must not be zero.
fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    let Some(text) = Option::<String>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let parsed = humantime::parse_duration(text.trim()).map_err(|e| {
        de::Error::custom(format!(
            "invalid duration `{text}` ({e}); expected a number and a unit, e.g. 30s, 5m, 1h"
        ))
    })?;
    if parsed.is_zero() {
        return Err(de::Error::custom(format!(
            "duration `{text}` is zero; give a positive duration, e.g. 30s"
        )));
    }
    Ok(Some(parsed))
}

/// A duration as [`duration`] reads it back.
fn duration_text<S: Serializer>(
    value: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(duration) => serializer.collect_str(&humantime::format_duration(*duration)),
        None => serializer.serialize_none(),
    }
}

/// A map whose values may be written as strings, numbers or booleans, read as text.
fn scalar_map<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let raw = Option::<BTreeMap<String, serde_yaml::Value>>::deserialize(deserializer)?;
    let mut map = BTreeMap::new();
    for (key, value) in raw.unwrap_or_default() {
        let text = match value {
            serde_yaml::Value::String(s) => s,
            serde_yaml::Value::Number(n) => n.to_string(),
            serde_yaml::Value::Bool(b) => b.to_string(),
            serde_yaml::Value::Null => String::new(),
            _ => {
                return Err(de::Error::custom(format!(
                    "`{key}` must be a string, number or boolean"
                )));
            }
        };
        map.insert(key, text);
    }
    Ok(map)
}
