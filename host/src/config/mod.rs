//! `accel.yaml`: the datasets to accelerate and where engines come from, read into typed
//! structs ([`model`]) with Spice's spicepod names and meanings.
//!
//! A file that is not YAML, or whose top level is wrong, is one error. Past that, each
//! dataset is read and checked on its own: a bad one becomes a [`ConfigProblem`] naming the
//! file, line, key and fix, and the others still load. Relative paths (plugin directories,
//! the data directory, `file:` sources, engine `*_file` params) are read from the config
//! file's directory. Secrets stay as written (`${env:NAME}`) until a source is opened
//! ([`secrets`]), so nothing printed from here contains them.
//!
//! Owns reading the config; depends on no other folder of the host (the engine check that
//! needs the registry happens where datasets are created).

pub mod locate;
pub mod model;
pub mod secrets;

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;

pub use locate::{Locations, Position};
pub use model::{
    AccelerationMode, AccelerationSpec, DatasetSpec, KeyColumns, RefreshMode, RefreshOnStartup,
    ShardBy, ShardPart, SourceSpec, TimeFormat, shard_table_name,
};

/// The environment variable naming the config file when `--config` is not given.
pub const CONFIG_VAR: &str = "ACCEL_CONFIG";

/// A config file, read.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub plugin_dirs: Vec<PathBuf>,
    pub data_dir: Option<PathBuf>,
    /// Every `datasets:` entry in order, read or refused.
    pub datasets: Vec<DatasetEntry>,
    locations: Locations,
}

/// One `datasets:` entry: its name (when it has one) and the dataset or why it was refused.
#[derive(Debug, Clone)]
pub struct DatasetEntry {
    pub index: usize,
    pub name: String,
    pub spec: Result<DatasetSpec, ConfigProblem>,
}

/// Something wrong in a config file: where, which key, what and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub file: PathBuf,
    pub position: Option<Position>,
    /// The key's path, e.g. `datasets[1].acceleration.engine`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(at) = self.position {
            write!(f, ":{}:{}", at.line, at.column)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigProblem {}

impl Config {
    /// Reads `path`. Errors only when nothing in it can be used: unreadable, not YAML, or a
    /// wrong top level; a bad dataset is recorded in its entry instead.
    pub fn load(path: &Path) -> Result<Self, ConfigProblem> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigProblem {
            file: path.to_owned(),
            position: None,
            key: String::new(),
            message: format!("cannot read the config file: {e}"),
        })?;
        Self::parse(path, &text)
    }

    /// Reads config `text` as if it were the file `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigProblem> {
        let locations = Locations::of(text);
        let raw: model::RawConfig = if text.trim().is_empty() {
            serde_yaml::from_str("{}")
        } else {
            serde_yaml::from_str(text)
        }
        .map_err(|e| {
            let position = e.location().map(|l| Position {
                line: l.line(),
                column: l.column(),
            });
            ConfigProblem {
                file: path.to_owned(),
                position,
                key: String::new(),
                message: strip_location(&e.to_string()),
            }
        })?;
        let base = path.parent().unwrap_or(Path::new("")).to_owned();
        let mut config = Self {
            path: path.to_owned(),
            plugin_dirs: raw.plugin_dirs.iter().map(|d| base.join(d)).collect(),
            data_dir: raw.data_dir.as_ref().map(|d| base.join(d)),
            datasets: Vec::new(),
            locations,
        };
        let mut names = HashSet::new();
        for (index, value) in raw.datasets.into_iter().enumerate() {
            let name = value
                .get("name")
                .and_then(serde_yaml::Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("datasets[{index}]"));
            let spec = config.read_dataset(index, value, &base, &mut names);
            config.datasets.push(DatasetEntry { index, name, spec });
        }
        Ok(config)
    }

    /// The problem at `key` (relative to dataset `index`), located in the file.
    pub fn problem(&self, index: usize, key: &str, message: impl Into<String>) -> ConfigProblem {
        let path = if key.is_empty() {
            format!("datasets[{index}]")
        } else {
            format!("datasets[{index}].{key}")
        };
        ConfigProblem {
            file: self.path.clone(),
            position: self.locations.find(&path),
            key: path,
            message: message.into(),
        }
    }

    fn read_dataset(
        &self,
        index: usize,
        value: serde_yaml::Value,
        base: &Path,
        names: &mut HashSet<String>,
    ) -> Result<DatasetSpec, ConfigProblem> {
        let mut spec: DatasetSpec = serde_path_to_error::deserialize(value).map_err(|e| {
            let key = e.path().to_string();
            let key = if key == "." { String::new() } else { key };
            let message = e.into_inner().to_string();
            // An unknown key is reported at the key itself (the path may or may not end in it).
            let at = match unknown_field(&message) {
                Some(field) if !key.ends_with(field) => join_key(&key, field),
                _ => key,
            };
            self.problem(index, &at, message)
        })?;
        self.check(index, &spec, names)?;
        if let SourceSpec::File { path } = &mut spec.from {
            *path = base.join(&*path).display().to_string();
        }
        if let Some(acceleration) = &mut spec.acceleration {
            for (key, value) in acceleration.params.iter_mut() {
                if key.ends_with("_file") && !value.is_empty() && value != ":memory:" {
                    *value = base.join(&*value).display().to_string();
                }
            }
        }
        Ok(spec)
    }

    /// What a dataset's keys mean together: settings that would silently never apply are
    /// refused.
    fn check(
        &self,
        index: usize,
        spec: &DatasetSpec,
        names: &mut HashSet<String>,
    ) -> Result<(), ConfigProblem> {
        let problem = |key: &str, message: String| Err(self.problem(index, key, message));
        if !valid_name(&spec.name) {
            return problem(
                "name",
                format!(
                    "`{}` is not a table name: use letters, digits and `_`, starting with a \
                     letter or `_`",
                    spec.name
                ),
            );
        }
        if !names.insert(spec.name.to_lowercase()) {
            return problem(
                "name",
                format!(
                    "a dataset named `{}` is declared earlier in the file",
                    spec.name
                ),
            );
        }
        let Some(acceleration) = &spec.acceleration else {
            return Ok(());
        };
        if acceleration.refresh_mode == RefreshMode::Append && spec.time_column.is_none() {
            return problem(
                "acceleration.refresh_mode",
                "refresh_mode `append` needs the dataset's `time_column` (the column that says \
                 which rows are new)"
                    .to_owned(),
            );
        }
        if acceleration.refresh_data_window.is_some() && spec.time_column.is_none() {
            return problem(
                "acceleration.refresh_data_window",
                "refresh_data_window needs the dataset's `time_column`".to_owned(),
            );
        }
        if acceleration.refresh_append_overlap.is_some()
            && acceleration.refresh_mode != RefreshMode::Append
        {
            return problem(
                "acceleration.refresh_append_overlap",
                "refresh_append_overlap applies to refresh_mode `append` only; remove it or set \
                 refresh_mode: append"
                    .to_owned(),
            );
        }
        if acceleration.refresh_retry_max_attempts.is_some() && !acceleration.refresh_retry_enabled
        {
            return problem(
                "acceleration.refresh_retry_max_attempts",
                "refresh_retry_max_attempts is set but refresh_retry_enabled is false".to_owned(),
            );
        }
        if acceleration.refresh_jitter_max.is_some()
            && acceleration.refresh_check_interval.is_none()
        {
            return problem(
                "acceleration.refresh_jitter_max",
                "refresh_jitter_max applies to scheduled refreshes: set refresh_check_interval"
                    .to_owned(),
            );
        }
        if let (Some(jitter), Some(interval)) = (
            acceleration.refresh_jitter_max,
            acceleration.refresh_check_interval,
        ) && jitter >= interval
        {
            return problem(
                "acceleration.refresh_jitter_max",
                format!(
                    "refresh_jitter_max ({}) must be shorter than refresh_check_interval ({})",
                    humantime::format_duration(jitter),
                    humantime::format_duration(interval)
                ),
            );
        }
        if let Some(sql) = &acceleration.refresh_sql
            && let Err(message) = check_refresh_sql(sql, &spec.name)
        {
            return problem("acceleration.refresh_sql", message);
        }
        if let Some(message) = sharding_problem(spec, acceleration) {
            return problem(message.0, message.1);
        }
        if let Some(version) = &acceleration.engine_version
            && let Err(e) = semver::VersionReq::parse(version)
        {
            return problem(
                "acceleration.engine_version",
                format!("`{version}` is not a semver requirement ({e}); e.g. '^1.2'"),
            );
        }
        Ok(())
    }
}

/// What is wrong with a dataset's `shards` / `shard_by`, as (key, message).
fn sharding_problem(
    spec: &DatasetSpec,
    acceleration: &AccelerationSpec,
) -> Option<(&'static str, String)> {
    let Some(shards) = acceleration.shards else {
        return acceleration.shard_by.as_ref().map(|_| {
            (
                "acceleration.shard_by",
                "shard_by applies to a sharded dataset: set `shards` (how many) too".to_owned(),
            )
        });
    };
    if shards == 0 {
        return Some((
            "acceleration.shards",
            "shards must be at least 1 (the number of parts the dataset is split into)".into(),
        ));
    }
    let Some(by) = &acceleration.shard_by else {
        return Some((
            "acceleration.shard_by",
            "a sharded dataset needs `shard_by: file` (whole source files per shard) or              `shard_by: hash(column)` (rows by a column's hash)"
                .into(),
        ));
    };
    if *by == ShardBy::File {
        if !matches!(spec.from, SourceSpec::File { .. }) {
            return Some((
                "acceleration.shard_by",
                format!(
                    "shard_by: file splits a `file:` source by its files, but `{}` is not one;                      use shard_by: hash(column)",
                    spec.from
                ),
            ));
        }
        if acceleration.refresh_sql.is_some() {
            return Some((
                "acceleration.refresh_sql",
                "refresh_sql over a part of the files can compute something else than over                  all of them (aggregates, limits); with refresh_sql use shard_by: hash(column)"
                    .into(),
            ));
        }
    }
    let engine = acceleration.engine.to_lowercase();
    if let Some(key) = acceleration
        .params
        .keys()
        .find(|k| k.ends_with("_file") && k.starts_with(&engine))
    {
        return Some((
            "acceleration.params",
            format!(
                "`{key}` names one file, but each shard is stored by its worker (under the                  worker's --data-dir); remove it"
            ),
        ));
    }
    None
}

/// A refresh statement is one `SELECT` (it reads the source under the dataset's name).
fn check_refresh_sql(sql: &str, name: &str) -> Result<(), String> {
    let statements = DFParser::parse_sql(sql).map_err(|e| format!("not valid SQL: {e}"))?;
    let mut statements = statements.into_iter();
    match (statements.next(), statements.next()) {
        (Some(Statement::Statement(statement)), None)
            if matches!(*statement, SqlStatement::Query(_)) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "expected one SELECT over the source, e.g. `SELECT * FROM {name} WHERE …`"
        )),
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// serde's "unknown field `x`, expected …" names the key; its path is the parent's.
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// serde_yaml appends " at line L column C"; the location is printed in front instead.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests;
