//! `accel new-engine`: scaffolding for an engine crate built outside this repository — the
//! shortest path from nothing to `SELECT` on one's own engine.

use std::path::{Path, PathBuf};

use crate::library::check::valid_engine_name;

/// Where this binary's `plugin-api` crate was when it was built (used when the caller gives no
/// path).
pub fn default_plugin_api_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("plugin-api")
}

/// Writes a new engine crate named `accel-engine-<name>` into `dir` (which must not exist or be
/// empty); returns the files written.
pub fn write_engine_crate(
    name: &str,
    dir: &Path,
    plugin_api: &Path,
) -> Result<Vec<PathBuf>, String> {
    if !valid_engine_name(name) {
        return Err(format!(
            "`{name}` is not a valid engine name: use lower-case letters, digits and `_`, \
             starting with a letter"
        ));
    }
    if dir.exists()
        && dir
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(format!(
            "{} exists and is not empty; choose a new directory",
            dir.display()
        ));
    }
    let plugin_api = plugin_api.canonicalize().map_err(|e| {
        format!(
            "accel-plugin-api not found at {}: {e}; pass --plugin-api PATH (the plugin-api \
             directory of an accel checkout)",
            plugin_api.display()
        )
    })?;
    let crate_name = format!("accel-engine-{}", name.replace('_', "-"));
    let files = [
        (
            PathBuf::from("Cargo.toml"),
            cargo_toml(&crate_name, &plugin_api),
        ),
        (PathBuf::from("src/lib.rs"), lib_rs(name)),
        (PathBuf::from(".gitignore"), "/target\n".to_owned()),
    ];
    let mut written = Vec::new();
    for (relative, text) in files {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// File name of the library `cargo build` makes for an engine crate.
pub fn library_file_name(name: &str) -> String {
    format!(
        "{}accel_engine_{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

fn cargo_toml(crate_name: &str, plugin_api: &Path) -> String {
    format!(
        r#"[package]
name = "{crate_name}"
version = "0.1.0"
edition = "2024"

# An engine is a shared library the accel host loads at run time.
[lib]
crate-type = ["cdylib"]

[dependencies]
accel-plugin-api = {{ path = "{api}" }}

# The accel workspace's dev profile: cheaper debug builds of DataFusion.
[profile.dev]
debug = "line-tables-only"

[profile.dev.package."*"]
debug = false

# A standalone crate, not a member of any enclosing workspace.
[workspace]
"#,
        api = plugin_api.display().to_string().replace('\\', "/")
    )
}

fn lib_rs(name: &str) -> String {
    TEMPLATE_LIB_RS.replace("{{name}}", name)
}

const TEMPLATE_LIB_RS: &str = r#"//! The `{{name}}` accelerator engine: tables kept in memory as Arrow record batches.
//!
//! Replace `create_external_table` with your own storage; the rest of the crate is what every
//! engine needs. Build with `cargo build --release`, copy the library from `target/release`
//! into a plugin directory, and query it:
//!
//!     accel --plugin-dir DIR sql "CREATE EXTERNAL TABLE t (a INT) STORED AS {{name}} LOCATION ':memory:'; \
//!                                  INSERT INTO t VALUES (1), (2); SELECT sum(a) FROM t"

use std::any::Any;
use std::sync::Arc;

use accel_plugin_api::datafusion::catalog::TableProvider;
use accel_plugin_api::datafusion::common::plan_err;
use accel_plugin_api::datafusion::datasource::MemTable;
use accel_plugin_api::datafusion::error::Result;
use accel_plugin_api::datafusion::execution::runtime_env::RuntimeEnv;
use accel_plugin_api::datafusion::logical_expr::CreateExternalTable;
use accel_plugin_api::{
    AccelerationSource, DataAccelerator, Mode, ParameterSpec, PartitionedBy, async_trait,
    export_accelerator,
};

/// Parameters this engine accepts, written `{{name}}_<name>` in `OPTIONS (...)`.
static PARAMETERS: [ParameterSpec; 0] = [];

#[derive(Default)]
pub struct Engine;

// Embeds the metadata record and the entry symbol; the name is what follows `STORED AS`.
export_accelerator!(Engine, "{{name}}");

#[async_trait]
impl DataAccelerator for Engine {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn name(&self) -> &str {
        "{{name}}"
    }

    fn prefix(&self) -> &str {
        "{{name}}"
    }

    fn parameters(&self) -> &[ParameterSpec] {
        &PARAMETERS
    }

    async fn create_external_table(
        &self,
        cmd: CreateExternalTable,
        source: Option<&dyn AccelerationSource>,
        _partition_by: Vec<PartitionedBy>,
        _runtime_env: Arc<RuntimeEnv>,
    ) -> Result<Arc<dyn TableProvider>> {
        if source.is_some_and(|s| s.mode() == Mode::File) {
            return plan_err!("engine `{{name}}` keeps tables in memory: use LOCATION ':memory:'");
        }
        let schema = Arc::new(cmd.schema.as_arrow().clone());
        Ok(Arc::new(MemTable::try_new(schema, vec![vec![]])?))
    }
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_crate_and_refuses_bad_names_and_used_directories() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("engine");
        let written = write_engine_crate("my_store", &target, &default_plugin_api_path()).unwrap();
        assert_eq!(written.len(), 3);
        let manifest = std::fs::read_to_string(target.join("Cargo.toml")).unwrap();
        assert!(
            manifest.contains("name = \"accel-engine-my-store\""),
            "{manifest}"
        );
        let lib = std::fs::read_to_string(target.join("src/lib.rs")).unwrap();
        assert!(
            lib.contains("export_accelerator!(Engine, \"my_store\");"),
            "{lib}"
        );
        assert!(!lib.contains("{{name}}"));
        assert_eq!(library_file_name("my_store"), "libaccel_engine_my_store.so");

        let again = write_engine_crate("my_store", &target, &default_plugin_api_path());
        assert!(again.unwrap_err().contains("is not empty"));
        let bad = write_engine_crate(
            "My-Store",
            &dir.path().join("x"),
            &default_plugin_api_path(),
        );
        assert!(bad.unwrap_err().contains("not a valid engine name"));
    }
}
