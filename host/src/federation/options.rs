//! The session switch for subplan pushdown: `SET accel.federation = false` runs every query
//! the way it would without it (scans with filter and projection pushdown only); `= true`
//! turns it back on.
//!
//! Not a DataFusion config extension: datafusion-ffi 55 sends every session option, extension
//! options included, to the engine library, whose own `ConfigOptions` rejects a namespace it
//! does not know ("could not find config namespace for key"), failing every scan. So the
//! switch lives in the session's typed extensions, which stay in the host, and
//! [`crate::host::Host::sql`] handles the statement itself.

use std::sync::atomic::{AtomicBool, Ordering};

use datafusion::error::{DataFusionError, Result};

/// The setting's name, as written after `SET`.
pub const SETTING: &str = "accel.federation";

/// Whether subplan pushdown is on in one session (on by default).
#[derive(Debug)]
pub struct FederationSwitch(AtomicBool);

impl Default for FederationSwitch {
    fn default() -> Self {
        Self(AtomicBool::new(true))
    }
}

impl FederationSwitch {
    pub fn enabled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub fn set(&self, on: bool) {
        self.0.store(on, Ordering::Relaxed);
    }
}

/// `Some(value)` when `statement` (one SQL statement) is `SET accel.federation = <value>`
/// (`=` or `TO`; `true`/`false`/`on`/`off`, quoted or not); an unknown value is an error naming
/// the accepted ones.
pub fn federation_setting(statement: &str) -> Option<Result<bool>> {
    let text = statement.trim().trim_end_matches(';').trim();
    let rest = strip_word(text, "set")?;
    let rest = strip_word(rest.trim_start(), SETTING)?.trim_start();
    let value = rest
        .strip_prefix('=')
        .or_else(|| strip_word(rest, "to"))?
        .trim()
        .trim_matches(|c| c == '\'' || c == '"');
    Some(match value.to_ascii_lowercase().as_str() {
        "true" | "on" => Ok(true),
        "false" | "off" => Ok(false),
        other => Err(DataFusionError::Plan(format!(
            "{SETTING} is true or false (or on/off), found `{other}`"
        ))),
    })
}

/// `text` after a leading `word` (any case) followed by a space, `=` or the end.
fn strip_word<'a>(text: &'a str, word: &str) -> Option<&'a str> {
    let head = text.get(..word.len())?;
    let rest = &text[word.len()..];
    (head.eq_ignore_ascii_case(word)
        && (rest.is_empty() || rest.starts_with([' ', '=', '\t', '\n'])))
    .then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_is_recognised_in_its_spellings_and_nothing_else_is() {
        assert!(matches!(
            federation_setting("SET accel.federation = false"),
            Some(Ok(false))
        ));
        assert!(matches!(
            federation_setting("set ACCEL.FEDERATION to 'on';"),
            Some(Ok(true))
        ));
        assert!(matches!(
            federation_setting("SET accel.federation=true"),
            Some(Ok(true))
        ));
        assert!(
            federation_setting("SET accel.federation = maybe")
                .unwrap()
                .is_err()
        );
        assert!(federation_setting("SET datafusion.execution.batch_size = 10").is_none());
        assert!(federation_setting("SET accel.federations = false").is_none());
        assert!(federation_setting("SELECT 1").is_none());
    }
}
