//! Keys of a table, read the same way by every engine from its constraints and options: the
//! primary key (`PRIMARY KEY (…)` in the statement, or `'primary_key' 'id'` / `'(a,b)'`), what
//! an insert does with a row whose key exists (`'on_conflict' 'id:upsert'` or `'id:drop'`), and
//! extra indexes (`'indexes' 'city:enabled;(a,b):unique'`).

use std::collections::HashMap;

use datafusion::arrow::datatypes::Schema;
use datafusion::common::{Constraint, Constraints};
use datafusion::error::DataFusionError;

use crate::embedded::pushdown::quote_ident;

/// What an insert does with a row whose key is already in the table (or repeated in the
/// insert).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConflictAction {
    /// Keep the stored row, drop the new one (within one insert, the first occurrence wins).
    Drop,
    /// Replace the stored row with the new one (within one insert, the last occurrence wins).
    Upsert,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    pub columns: Vec<String>,
    pub unique: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableKeys {
    pub primary_key: Vec<String>,
    pub on_conflict: Option<ConflictAction>,
    pub indexes: Vec<Index>,
}

impl TableKeys {
    /// Reads the keys of a table; every malformed option is an error saying what is expected.
    pub fn from_options(
        options: &HashMap<String, String>,
        constraints: &Constraints,
        schema: &Schema,
    ) -> Result<Self, String> {
        let from_constraints: Option<Vec<String>> = constraints.iter().find_map(|c| match c {
            Constraint::PrimaryKey(indices) => Some(
                indices
                    .iter()
                    .map(|i| schema.field(*i).name().clone())
                    .collect(),
            ),
            Constraint::Unique(_) => None,
        });
        let from_option = options
            .get("primary_key")
            .map(|v| column_list(v, "primary_key", schema))
            .transpose()?;
        let mut primary_key = match (from_constraints, from_option) {
            (Some(a), Some(b)) if a != b => {
                return Err(format!(
                    "primary key given twice and differently: PRIMARY KEY ({}) and option \
                     primary_key '{}'",
                    a.join(", "),
                    b.join(",")
                ));
            }
            (Some(a), _) => a,
            (None, Some(b)) => b,
            (None, None) => Vec::new(),
        };
        let on_conflict = match options.get("on_conflict") {
            None => None,
            Some(value) => {
                let (columns, action) = value.rsplit_once(':').ok_or_else(|| {
                    format!(
                        "option on_conflict '{value}': expected `<columns>:upsert` or \
                         `<columns>:drop`, e.g. 'id:upsert' or '(a,b):drop'"
                    )
                })?;
                let columns = column_list(columns, "on_conflict", schema)?;
                let action = match action.trim() {
                    "upsert" => ConflictAction::Upsert,
                    "drop" => ConflictAction::Drop,
                    other => {
                        return Err(format!(
                            "option on_conflict '{value}': unknown action `{other}`; expected \
                             `upsert` or `drop`"
                        ));
                    }
                };
                if primary_key.is_empty() {
                    primary_key = columns;
                } else if primary_key != columns {
                    return Err(format!(
                        "option on_conflict names ({}) but the primary key is ({}); conflicts \
                         are detected on the primary key",
                        columns.join(", "),
                        primary_key.join(", ")
                    ));
                }
                Some(action)
            }
        };
        let mut indexes = Vec::new();
        if let Some(value) = options.get("indexes") {
            for spec in value.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                let (columns, kind) = spec.rsplit_once(':').unwrap_or((spec, "enabled"));
                let unique = match kind.trim() {
                    "enabled" => false,
                    "unique" => true,
                    other => {
                        return Err(format!(
                            "option indexes '{value}': unknown index kind `{other}` in `{spec}`; \
                             expected `enabled` or `unique`, e.g. 'city:enabled;(a,b):unique'"
                        ));
                    }
                };
                indexes.push(Index {
                    columns: column_list(columns, "indexes", schema)?,
                    unique,
                });
            }
        }
        Ok(Self {
            primary_key,
            on_conflict,
            indexes,
        })
    }
}

impl TableKeys {
    /// A key violation said in the user's terms: what happened and the options that merge
    /// instead. `error` is returned unchanged unless the table has a primary key and
    /// `is_violation` recognises the engine's message.
    pub fn explain_duplicate(
        &self,
        error: DataFusionError,
        table: &str,
        is_violation: impl Fn(&str) -> bool,
    ) -> DataFusionError {
        let message = error.to_string();
        if self.primary_key.is_empty() || !is_violation(&message) {
            return error;
        }
        let key = if self.primary_key.len() == 1 {
            self.primary_key[0].clone()
        } else {
            format!("({})", self.primary_key.join(","))
        };
        DataFusionError::Execution(format!(
            "insert into `{table}` rejected, nothing was written: {message}. To merge rows with \
             an existing key instead, create the table with OPTIONS ('on_conflict' \
             '{key}:upsert') or '{key}:drop'"
        ))
    }
}

impl Index {
    /// The index's name on `table`: `<table>_<columns>_idx` or `…_unique`.
    pub fn name(&self, table: &str) -> String {
        format!(
            "{table}_{}_{}",
            self.columns.join("_"),
            if self.unique { "unique" } else { "idx" }
        )
    }

    /// `CREATE [UNIQUE] INDEX IF NOT EXISTS …` of this index on `table` (standard SQL, which
    /// DuckDB and SQLite both accept).
    pub fn create_sql(&self, table: &str) -> String {
        let columns: Vec<String> = self.columns.iter().map(|c| quote_ident(c)).collect();
        format!(
            "CREATE {}INDEX IF NOT EXISTS {} ON {} ({})",
            if self.unique { "UNIQUE " } else { "" },
            quote_ident(&self.name(table)),
            quote_ident(table),
            columns.join(", ")
        )
    }
}

/// `id` or `(a, b)`: columns that must exist in `schema`.
fn column_list(text: &str, option: &str, schema: &Schema) -> Result<Vec<String>, String> {
    let trimmed = text.trim();
    let inner = match (trimmed.strip_prefix('('), trimmed.strip_suffix(')')) {
        (Some(_), Some(_)) => &trimmed[1..trimmed.len() - 1],
        (None, None) => trimmed,
        _ => return Err(format!("option {option} '{text}': unbalanced parentheses")),
    };
    let columns: Vec<String> = inner.split(',').map(|c| c.trim().to_owned()).collect();
    if columns.iter().any(String::is_empty) {
        return Err(format!("option {option} '{text}': empty column name"));
    }
    for column in &columns {
        if schema.field_with_name(column).is_err() {
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            return Err(format!(
                "option {option} '{text}': no column `{column}`; columns are {}",
                names.join(", ")
            ));
        }
    }
    Ok(columns)
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{DataType, Field};

    use super::*;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("a", DataType::Utf8, true),
            Field::new("b", DataType::Utf8, true),
        ])
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<TableKeys, String> {
        let options = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TableKeys::from_options(&options, &Constraints::default(), &schema())
    }

    #[test]
    fn parses_keys_conflicts_and_indexes() {
        let keys = parse(&[
            ("on_conflict", "id:upsert"),
            ("indexes", "a:enabled; (a, b):unique"),
        ])
        .unwrap();
        assert_eq!(keys.primary_key, ["id"]);
        assert_eq!(keys.on_conflict, Some(ConflictAction::Upsert));
        assert_eq!(
            keys.indexes,
            [
                Index {
                    columns: vec!["a".into()],
                    unique: false
                },
                Index {
                    columns: vec!["a".into(), "b".into()],
                    unique: true
                }
            ]
        );
        assert_eq!(
            parse(&[("primary_key", "(a,b)")]).unwrap().primary_key,
            ["a", "b"]
        );
    }

    #[test]
    fn malformed_options_say_what_is_expected() {
        let cases = [
            (("on_conflict", "id"), "expected `<columns>:upsert`"),
            (("on_conflict", "id:merge"), "unknown action `merge`"),
            (
                ("on_conflict", "nope:drop"),
                "no column `nope`; columns are id, a, b",
            ),
            (("indexes", "a:fast"), "unknown index kind `fast`"),
            (("primary_key", "(a,"), "unbalanced parentheses"),
            (("primary_key", "a,,b"), "empty column name"),
        ];
        for ((key, value), expected) in cases {
            let error = parse(&[(key, value)]).unwrap_err();
            assert!(error.contains(expected), "{key}={value}: {error}");
        }
        let error = parse(&[("primary_key", "a"), ("on_conflict", "id:drop")]).unwrap_err();
        assert!(
            error.contains("conflicts are detected on the primary key"),
            "{error}"
        );
    }
}
