//! What a dataset is doing and has done: the numbers `accel.datasets` and `accel datasets`
//! show.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::progress::Progress;

/// A dataset's state, as Spice names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetState {
    /// Its first load has not finished.
    Initializing,
    /// Serving; no refresh running.
    Ready,
    /// Serving the previous rows while a refresh runs.
    Refreshing,
    /// The last refresh (or the setup) failed: `last_error` says why; rows held before it are
    /// still served.
    Error,
    /// Not accelerated: queries read the source itself.
    Disabled,
}

impl fmt::Display for DatasetState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Initializing => "initializing",
            Self::Ready => "ready",
            Self::Refreshing => "refreshing",
            Self::Error => "error",
            Self::Disabled => "disabled",
        })
    }
}

/// A dataset's status.
#[derive(Debug, Clone)]
pub struct DatasetStatus {
    pub state: DatasetState,
    /// Rows held after the last successful refresh.
    pub rows: Option<u64>,
    pub last_refresh_start: Option<SystemTime>,
    pub last_refresh_end: Option<SystemTime>,
    pub last_refresh_duration: Option<Duration>,
    pub last_error: Option<String>,
    pub next_refresh: Option<SystemTime>,
    /// Successful refreshes since start-up.
    pub refreshes: u64,
    /// Failed refresh attempts since start-up.
    pub failures: u64,
    /// Whether the dataset has been served at least once (loaded, or opened from its file).
    pub loaded: bool,
    /// The running refresh's counters.
    pub progress: Option<Arc<Progress>>,
}

impl Default for DatasetStatus {
    fn default() -> Self {
        Self {
            state: DatasetState::Initializing,
            rows: None,
            last_refresh_start: None,
            last_refresh_end: None,
            last_refresh_duration: None,
            last_error: None,
            next_refresh: None,
            refreshes: 0,
            failures: 0,
            loaded: false,
            progress: None,
        }
    }
}
