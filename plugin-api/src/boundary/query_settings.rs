//! The query's DataFusion settings on both sides of a scan (ABI 1.3): the host turns a
//! session's `ConfigOptions` into text once per distinct configuration, and a library turns
//! that text back into a session and a task context once per distinct text.
//!
//! datafusion-ffi carries the settings as a fresh key/value map on every `scan` and every
//! `execute` and parses them back inside the library each time — a few thousand allocations a
//! query, the largest part of what a selective query through a plugin cost over the same
//! engine linked in. Here both sides keep what they made: the host hands over the same
//! reference-counted text for the same settings, and the library recognises it by address.

use std::sync::{Arc, Mutex, Weak};

use abi_stable::std_types::{RArc, RString, RVec, Tuple2};
use datafusion::config::ConfigOptions;
use datafusion::execution::TaskContext;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::prelude::SessionConfig;

use super::types::FfiQuerySettings;

/// How many distinct configurations each side remembers (a server's sessions usually share
/// one; `SET` makes another).
const REMEMBERED: usize = 16;

/// Host side: the settings text for `options`, made once per configuration. Sessions cloned
/// from one another share their `Arc<ConfigOptions>` until one of them changes a setting, so
/// the address identifies the configuration; equal text made for another address is reused, so
/// that the library's cache keyed by address hits as well.
pub fn settings_for(options: &Arc<ConfigOptions>) -> FfiQuerySettings {
    static MADE: Mutex<Vec<(Weak<ConfigOptions>, FfiQuerySettings)>> = Mutex::new(Vec::new());
    let mut made = MADE.lock().unwrap_or_else(|e| e.into_inner());
    // A `Weak` keeps its allocation, so no live configuration can share the address of one
    // that was dropped: equal addresses mean the same configuration.
    if let Some((_, settings)) = made
        .iter()
        .find(|(weak, _)| std::ptr::eq(weak.as_ptr(), Arc::as_ptr(options)))
    {
        return settings.clone();
    }
    let text: RVec<Tuple2<RString, RString>> = options
        .entries()
        .into_iter()
        .filter_map(|entry| Some(Tuple2(entry.key.into(), entry.value?.into())))
        .collect();
    let settings = made
        .iter()
        .find(|(_, settings)| *settings.0 == text)
        .map(|(_, settings)| settings.clone())
        .unwrap_or_else(|| FfiQuerySettings(RArc::new(text)));
    made.retain(|(weak, _)| weak.strong_count() > 0);
    if made.len() >= REMEMBERED {
        made.remove(0);
    }
    made.push((Arc::downgrade(options), settings.clone()));
    settings
}

impl FfiQuerySettings {
    /// Whether both are the one allocation (not merely equal text).
    pub fn same_text(&self, other: &Self) -> bool {
        std::ptr::eq(&*self.0, &*other.0)
    }
}

/// Library side: the session a scan plans with and the task context its plan executes with,
/// made from the host's settings on the library's own runtime environment.
pub struct QueryContexts {
    runtime_env: Arc<RuntimeEnv>,
    made: Mutex<Vec<MadeContexts>>,
}

struct MadeContexts {
    /// Held, so that its address is not reused while it is remembered.
    settings: FfiQuerySettings,
    session: Arc<SessionState>,
    task: Arc<TaskContext>,
}

impl QueryContexts {
    pub fn new(runtime_env: Arc<RuntimeEnv>) -> Self {
        Self {
            runtime_env,
            made: Mutex::new(Vec::new()),
        }
    }

    /// The session for `settings`: the library's DataFusion defaults with each of the host's
    /// settings this DataFusion knows applied, and no functions registered (a table's scan
    /// gets its filters with their functions bound).
    pub fn session(&self, settings: &FfiQuerySettings) -> Arc<SessionState> {
        self.find_or_make(settings, |made| Arc::clone(&made.session))
    }

    /// The task context for `settings`, without function lists (a scan's plan bound its
    /// expressions when it was planned).
    pub fn task(&self, settings: &FfiQuerySettings) -> Arc<TaskContext> {
        self.find_or_make(settings, |made| Arc::clone(&made.task))
    }

    fn find_or_make<T>(&self, settings: &FfiQuerySettings, pick: impl Fn(&MadeContexts) -> T) -> T {
        let mut made = self.made.lock().unwrap_or_else(|e| e.into_inner());
        let found = made
            .iter()
            .find(|m| m.settings.same_text(settings))
            .or_else(|| made.iter().find(|m| *m.settings.0 == *settings.0));
        if let Some(found) = found {
            return pick(found);
        }
        let contexts = self.make(settings);
        let picked = pick(&contexts);
        if made.len() >= REMEMBERED {
            made.remove(0);
        }
        made.push(contexts);
        picked
    }

    fn make(&self, settings: &FfiQuerySettings) -> MadeContexts {
        let mut options = ConfigOptions::default();
        for Tuple2(key, value) in settings.0.iter() {
            // A key this DataFusion does not know cannot change what it computes; a value the
            // host's DataFusion accepted parses here too (same major).
            let _ = options.set(key, value);
        }
        let config = SessionConfig::from(options);
        let session = SessionStateBuilder::new()
            .with_config(config.clone())
            .with_runtime_env(Arc::clone(&self.runtime_env))
            .build();
        let task = TaskContext::new(
            None,
            session.session_id().to_owned(),
            config,
            Default::default(),
            Default::default(),
            Default::default(),
            Default::default(),
            Arc::clone(&self.runtime_env),
        );
        MadeContexts {
            settings: FfiQuerySettings(RArc::clone(&settings.0)),
            session: Arc::new(session),
            task: Arc::new(task),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_configuration_gives_one_text_and_a_changed_one_another() {
        let options = Arc::new(ConfigOptions::default());
        let first = settings_for(&options);
        assert!(first.same_text(&settings_for(&options)));
        // another allocation with the same settings: the same text
        let twin = Arc::new(ConfigOptions::default());
        assert!(first.same_text(&settings_for(&twin)));

        let mut changed = ConfigOptions::default();
        changed
            .set("datafusion.execution.batch_size", "77")
            .unwrap();
        let changed = settings_for(&Arc::new(changed));
        assert!(!first.same_text(&changed));
        assert!(changed.0.iter().any(|Tuple2(k, v)| k.as_str()
            == "datafusion.execution.batch_size"
            && v.as_str() == "77"));
    }

    #[test]
    fn the_library_applies_the_hosts_settings_once_per_text() {
        let mut options = ConfigOptions::default();
        options
            .set("datafusion.execution.batch_size", "123")
            .unwrap();
        options
            .set("datafusion.execution.target_partitions", "3")
            .unwrap();
        options
            .set("datafusion.execution.time_zone", "+05:00")
            .unwrap();
        let settings = settings_for(&Arc::new(options));

        let contexts = QueryContexts::new(Arc::new(RuntimeEnv::default()));
        let task = contexts.task(&settings);
        assert_eq!(task.session_config().batch_size(), 123);
        assert_eq!(task.session_config().target_partitions(), 3);
        assert_eq!(
            task.session_config()
                .options()
                .execution
                .time_zone
                .as_deref(),
            Some("+05:00")
        );
        let session = contexts.session(&settings);
        assert_eq!(session.config().batch_size(), 123);
        assert!(Arc::ptr_eq(&task, &contexts.task(&settings)));
        assert!(Arc::ptr_eq(&session, &contexts.session(&settings)));
    }
}
