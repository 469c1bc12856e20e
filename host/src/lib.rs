//! # accel-host
//!
//! Hosts DataFusion accelerator engines, built in or loaded from shared libraries. The host
//! reads as a pipeline, one module per step:
//!
//! 1. [`discover`] — find candidate libraries in the plugin directories;
//! 2. [`trust`] and [`check`] — refuse files the user may not trust, then read each one's
//!    metadata from the file and compare it with the host;
//! 3. [`load`] — open a unique copy and obtain its engine ([`fingerprint`]: its content,
//!    in the background, for reloads);
//! 4. [`registry`] — built-in and plugin engines behind one interface;
//! 5. [`serve`] — a DataFusion session whose table factories are the engines; every table is
//!    a [`managed_table`], which a newer engine generation can take over; [`federation`] runs
//!    whole subplans inside engines that execute SQL;
//! 6. [`reload`] — while serving: load new or changed libraries, hand tables over, retire
//!    unused generations ([`watch`] triggers it when the plugin directories change).
//!
//! [`host`] runs the pipeline; [`engines`] holds the built-in engines; [`output`] formats
//! results for the CLI; [`template`] writes new out-of-tree engine crates.

pub mod check;
pub mod discover;
pub mod engines;
pub mod federation;
pub mod fingerprint;
pub mod host;
pub mod load;
pub mod managed_table;
pub mod output;
pub mod plugin_accelerator;
pub mod plugin_exec;
pub mod registry;
pub mod reload;
pub mod serve;
pub mod template;
pub mod trust;
pub mod watch;

pub use host::{Host, HostOptions, StartupReport};
