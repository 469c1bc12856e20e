//! Tables: what `CREATE EXTERNAL TABLE … STORED AS <engine>` creates and the session reads.
//!
//! - [`factory`]: the `TableProviderFactory` per engine name — options checked, the
//!   generation chosen by the table's `engine_version` pin, the dataset described as an
//!   `AccelerationSource`, storage initialised, the returned schema checked;
//! - [`managed`]: [`ManagedTable`], the stable `TableProvider` in front of whichever generation
//!   serves the table now, with the per-query guard that keeps that generation in place;
//! - [`hand_over`]: moving a table (or every table of one file) to a newer generation while
//!   queries run.
//!
//! Owns table lifecycles. Depends on [`crate::engine`] (generations to create tables on); must
//! not depend on the session, the federation rule, the host or the CLI — they build on tables.

pub mod factory;
pub mod hand_over;
pub mod managed;

pub use managed::ManagedTable;
