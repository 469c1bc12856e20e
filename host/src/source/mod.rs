//! Sources: where a dataset's rows come from, opened as a DataFusion `TableProvider` the
//! refresh reads through — files with DataFusion's own listing tables ([`file`]), PostgreSQL
//! tables over the wire protocol ([`postgres`]).
//!
//! Owns turning a dataset's `from` and `params` into a table provider, with secrets resolved
//! only here. Depends on [`crate::config`]; must not depend on engines, tables, the host or
//! the CLI: a source knows nothing about where its rows go.

pub mod file;
pub mod postgres;
pub mod shard;

use std::sync::Arc;

use datafusion::catalog::{Session, TableProvider};
use datafusion::error::Result;

use crate::config::{DatasetSpec, ShardBy, SourceSpec};

/// Opens the source of `spec` for one read (a refresh, or a query of a dataset that is not
/// accelerated). Files are listed again at each call, so new files matching a directory or
/// a glob are picked up. A shard split by files lists only its own files.
pub async fn open(spec: &DatasetSpec, state: &dyn Session) -> Result<Arc<dyn TableProvider>> {
    let files_of_shard = spec
        .shard
        .as_ref()
        .filter(|part| part.by == ShardBy::File)
        .map(|part| (part.index, part.count));
    match &spec.from {
        SourceSpec::File { path } => file::open(path, &spec.params, state, files_of_shard).await,
        SourceSpec::Postgres { schema, table } => {
            postgres::open(schema.as_deref(), table, &spec.params).await
        }
    }
}
