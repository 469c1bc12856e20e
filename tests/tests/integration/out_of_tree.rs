//! The out-of-tree workflow, as a newcomer follows it: `accel new-engine` writes a crate in a
//! directory outside the workspace, `cargo build` builds it against the plugin-api path
//! dependency, the library goes into a plugin directory, and `accel` answers SQL on it.

use std::process::Command;

use super::common::{accel, stderr, stdout, target_dir};

#[test]
fn an_engine_built_outside_the_workspace_loads_and_answers_sql() {
    let outside = tempfile::tempdir().unwrap();
    let crate_dir = outside.path().join("my-engine");
    let created = accel(&["new-engine", "tiny", crate_dir.to_str().unwrap()]);
    assert!(created.status.success(), "{}", stderr(&created));
    assert!(
        stdout(&created).contains("cargo build --release"),
        "{}",
        stdout(&created)
    );

    // Same dependency versions as the workspace, and the shared target directory (in its own
    // subdirectory: the outer `cargo test` may hold the workspace's build lock), so repeated
    // runs reuse the compiled dependencies.
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::copy(workspace.join("Cargo.lock"), crate_dir.join("Cargo.lock")).unwrap();
    let build_dir = target_dir().join("..").join("out-of-tree");
    let build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .args(["build", "--offline"])
        .current_dir(&crate_dir)
        .env("CARGO_TARGET_DIR", &build_dir)
        .output()
        .expect("run cargo");
    assert!(
        build.status.success(),
        "cargo build failed:\n{}",
        stderr(&build)
    );
    let library = build_dir.join("debug").join("libaccel_engine_tiny.so");
    assert!(library.exists(), "{}", library.display());

    let plugins = tempfile::tempdir().unwrap();
    std::fs::copy(&library, plugins.path().join("libaccel_engine_tiny.so")).unwrap();
    let check = accel(&[
        "check-plugin",
        plugins
            .path()
            .join("libaccel_engine_tiny.so")
            .to_str()
            .unwrap(),
    ]);
    assert!(
        stdout(&check).contains("engine:           tiny 0.1.0"),
        "{}",
        stdout(&check)
    );
    assert!(
        stdout(&check).contains("compatible:       yes"),
        "{}",
        stdout(&check)
    );

    let out = accel(&[
        "--plugin-dir",
        plugins.path().to_str().unwrap(),
        "sql",
        "CREATE EXTERNAL TABLE t (a INT, b VARCHAR) STORED AS tiny LOCATION ':memory:'; \
         INSERT INTO t VALUES (1, 'one'), (2, 'two'), (39, 'many'); \
         SELECT sum(a) AS total, max(b) AS last FROM t",
        "--format",
        "csv",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "total,last\n42,two\n");
}
