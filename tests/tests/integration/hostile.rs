//! A plugin directory full of broken and hostile libraries: each one is refused with a message
//! naming the file, the cause and the fix, nothing aborts, and the good engine keeps serving.

use std::path::Path;

use accel_plugin_api::boundary::metadata::{
    ABI_MAJOR, ABI_MINOR, MIN_RECORD_SIZE, PanicStrategy, PluginMetadata,
};

use super::common::{
    accel, duckdb_library, host_with, install, plugin_dir_with_duckdb, rows, stderr,
};
use super::fixtures::fixture_library;

/// Bytes of a valid record with one edit applied.
fn record(edit: impl FnOnce(&mut PluginMetadata)) -> PluginMetadata {
    let mut m = PluginMetadata::current("broken", "1.0.0");
    edit(&mut m);
    m
}

/// A fixture whose metadata section holds raw bytes.
fn raw_metadata_library(dir: &Path, name: &str, bytes: &[u8]) {
    let list: Vec<String> = bytes.iter().map(|b| b.to_string()).collect();
    let c = format!(
        "__attribute__((used, section(\".accel_plugin\"))) const unsigned char m[] = {{{}}};\n",
        list.join(",")
    );
    let source = dir.join(format!("{name}.c"));
    std::fs::write(&source, c).unwrap();
    let status = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(dir.join(format!("lib{name}.so")))
        .arg(&source)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::remove_file(source).unwrap();
}

/// (file name, expected fragment of its problem).
fn build_corpus(dir: &Path) -> Vec<(&'static str, &'static str)> {
    let mut cases = Vec::new();

    std::fs::write(dir.join("libempty.so"), b"").unwrap();
    cases.push(("libempty.so", "not a shared library"));

    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(dir.join("librandom.so"), &noise).unwrap();
    cases.push(("librandom.so", "not a shared library"));

    let real = std::fs::read(duckdb_library()).unwrap();
    std::fs::write(dir.join("libtruncated.so"), &real[..64 * 1024]).unwrap();
    cases.push(("libtruncated.so", "not a shared library"));

    let arm = fixture_library(
        dir,
        "otherarch",
        Some(&record(|m| m.engine_name = "otherarch".into())),
    );
    let mut elf = std::fs::read(&arm).unwrap();
    elf[18..20].copy_from_slice(&183u16.to_le_bytes()); // e_machine = EM_AARCH64
    std::fs::write(&arm, elf).unwrap();
    cases.push((
        "libotherarch.so",
        "built for architecture Aarch64, this host runs on X86_64",
    ));

    raw_metadata_library(
        dir,
        "noentry",
        &record(|m| m.engine_name = "noentry".into()).to_bytes(),
    );
    cases.push(("libnoentry.so", "does not export the entry symbol"));

    fixture_library(dir, "nometadata", None);
    cases.push(("libnometadata.so", "no `.accel_plugin` metadata section"));

    let mut bad_magic = record(|_| {}).to_bytes();
    bad_magic[..8].copy_from_slice(b"NOTACCEL");
    raw_metadata_library(dir, "badmagic", &bad_magic);
    cases.push((
        "libbadmagic.so",
        "bad magic: expected \"ACCELPLG\", found \"NOTACCEL\"",
    ));

    let mut bad_size = record(|_| {}).to_bytes();
    bad_size[8..12].copy_from_slice(&10u32.to_le_bytes());
    raw_metadata_library(dir, "badsize", &bad_size);
    cases.push((
        "libbadsize.so",
        "record size is 10 bytes, expected at least 280",
    ));
    assert_eq!(MIN_RECORD_SIZE, 280);

    fixture_library(
        dir,
        "panicabort",
        Some(&record(|m| {
            m.engine_name = "panicabort".into();
            m.panic_strategy = PanicStrategy::Abort;
        })),
    );
    cases.push((
        "libpanicabort.so",
        "panic strategy: library has abort, host expects unwind",
    ));

    fixture_library(
        dir,
        "abistable",
        Some(&record(|m| {
            m.engine_name = "abistable".into();
            m.abi_stable_series = Some("0.12".into());
        })),
    );
    cases.push((
        "libabistable.so",
        "abi_stable: library has 0.12, host expects 0.11",
    ));

    // A record of the first layout (no panic strategy, no abi_stable field) passes the check:
    // this fake library then fails only where its missing code is looked for.
    fixture_library(
        dir,
        "firstlayout",
        Some(&record(|m| {
            m.engine_name = "firstlayout".into();
            m.record_size = MIN_RECORD_SIZE as u32;
            m.panic_strategy = PanicStrategy::Unknown;
            m.abi_stable_series = None;
        })),
    );
    cases.push((
        "libfirstlayout.so",
        "libfirstlayout.so: reading the entry symbol",
    ));

    fixture_library(dir, "abimajor", Some(&record(|m| m.abi_major += 1)));
    cases.push((
        "libabimajor.so",
        format!(
            "plugin-api ABI major: library has {}.{ABI_MINOR}, host expects {ABI_MAJOR}.x",
            ABI_MAJOR + 1
        )
        .leak(),
    ));

    fixture_library(dir, "abiminor", Some(&record(|m| m.abi_minor += 1)));
    cases.push((
        "libabiminor.so",
        format!(
            "plugin-api ABI minor: library has {ABI_MAJOR}.{}, host expects \
             {ABI_MAJOR}.{ABI_MINOR}",
            ABI_MINOR + 1
        )
        .leak(),
    ));

    fixture_library(dir, "abioldminor", Some(&record(|m| m.abi_minor -= 1)));
    cases.push((
        "libabioldminor.so",
        format!(
            "plugin-api ABI minor: library has {ABI_MAJOR}.{}, host expects \
             {ABI_MAJOR}.{ABI_MINOR} (the engine was built for an older host",
            ABI_MINOR - 1
        )
        .leak(),
    ));

    fixture_library(
        dir,
        "ffimajor",
        Some(&record(|m| m.datafusion_ffi_major = 56)),
    );
    cases.push((
        "libffimajor.so",
        "datafusion-ffi major: library has 56, host expects 55",
    ));

    fixture_library(
        dir,
        "triple",
        Some(&record(|m| m.target = "aarch64-apple-darwin".into())),
    );
    cases.push((
        "libtriple.so",
        "target triple: library has aarch64-apple-darwin",
    ));

    fixture_library(
        dir,
        "builtinname",
        Some(&record(|m| m.engine_name = "arrow".into())),
    );
    cases.push((
        "libbuiltinname.so",
        "engine `arrow` is built into this host",
    ));

    fixture_library(
        dir,
        "fakeentry",
        Some(&record(|m| m.engine_name = "fakeentry".into())),
    );
    cases.push((
        "libfakeentry.so",
        "libfakeentry.so: reading the entry symbol",
    ));

    // Sorted after the real library, so it is the second one declaring `duckdb`.
    std::fs::copy(
        duckdb_library(),
        dir.join("libaccel_engine_duckdb_plugin_copy.so"),
    )
    .unwrap();
    cases.push((
        "libaccel_engine_duckdb_plugin_copy.so",
        "engine `duckdb` 0.1.0 is already loaded from",
    ));

    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_broken_library_is_refused_by_name_and_the_good_engine_serves() {
    let plugins = plugin_dir_with_duckdb();
    let cases = build_corpus(plugins.path());
    let data = tempfile::tempdir().unwrap();
    let host = host_with(plugins.path(), data.path());

    let mut failures = Vec::new();
    for (file, expected) in &cases {
        let reported = host
            .report
            .problems
            .iter()
            .map(ToString::to_string)
            .find(|p| p.contains(&format!("/{file}")));
        match reported {
            Some(problem) if problem.contains(expected) => {}
            Some(problem) => failures.push(format!("{file}: expected {expected:?} in {problem:?}")),
            None => failures.push(format!("{file}: no problem reported")),
        }
    }
    assert!(
        failures.is_empty(),
        "{}\nall problems:\n{}",
        failures.join("\n"),
        host.report
            .problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(
        host.report.loaded,
        vec![plugins.path().join(duckdb_library().file_name().unwrap())]
    );
    assert_eq!(host.registry.names(), vec!["arrow", "duckdb"]);

    let served = host
        .sql("CREATE EXTERNAL TABLE t (a INT) STORED AS duckdb LOCATION ':memory:'; INSERT INTO t VALUES (5); SELECT a FROM t")
        .await
        .unwrap();
    assert_eq!(rows(&served), vec!["| 5 |"]);
}

#[cfg(unix)]
#[test]
fn permissions_and_allow_list_are_enforced_with_an_override_for_permissions_only() {
    use std::os::unix::fs::PermissionsExt;
    let plugins = tempfile::tempdir().unwrap();
    let dir = plugins.path().to_str().unwrap();
    let library = install(&duckdb_library(), plugins.path());

    std::fs::set_permissions(&library, std::fs::Permissions::from_mode(0o666)).unwrap();
    let refused = accel(&["--plugin-dir", dir, "engines"]);
    assert!(refused.status.success());
    assert!(
        stderr(&refused).contains("the library is writable by others (mode 666)"),
        "{}",
        stderr(&refused)
    );
    assert!(!super::common::stdout(&refused).contains("duckdb"));
    let allowed = accel(&["--plugin-dir", dir, "--allow-untrusted-plugins", "engines"]);
    assert!(
        super::common::stdout(&allowed).contains("duckdb"),
        "{}",
        stderr(&allowed)
    );
    std::fs::set_permissions(&library, std::fs::Permissions::from_mode(0o644)).unwrap();

    let locked = accel(&["plugin", "lock", dir]);
    assert!(locked.status.success(), "{}", stderr(&locked));
    assert!(super::common::stdout(&locked).contains("libaccel_engine_duckdb_plugin.so"));
    let newcomer = fixture_library(
        plugins.path(),
        "newcomer",
        Some(&PluginMetadata::current("newcomer", "1.0.0")),
    );
    let out = accel(&["--plugin-dir", dir, "--allow-untrusted-plugins", "engines"]);
    assert!(
        stderr(&out).contains("libnewcomer.so: refused: not listed in"),
        "{}",
        stderr(&out)
    );
    assert!(
        super::common::stdout(&out).contains("duckdb"),
        "locked library still loads"
    );
    std::fs::remove_file(newcomer).unwrap();

    let mut bytes = std::fs::read(&library).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&library, bytes).unwrap();
    let out = accel(&["--plugin-dir", dir, "engines"]);
    assert!(
        stderr(&out).contains("the library changed since the directory was locked"),
        "{}",
        stderr(&out)
    );
    assert!(!super::common::stdout(&out).contains("duckdb"));
}

/// `cp other.so plugins/loaded.so` rewrites the plugin file in place. The running generation
/// must not be running that file's pages: the host keeps serving, and a reload sees the new
/// content as a new library.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writing_over_a_loaded_library_in_place_does_not_bring_the_host_down() {
    use super::common::sqlite_library;
    let plugins = tempfile::tempdir().unwrap();
    let loaded = plugins.path().join("libaccel_engine_duckdb_plugin.so");
    std::fs::copy(duckdb_library(), &loaded).unwrap();
    let data = tempfile::tempdir().unwrap();
    let host = host_with(plugins.path(), data.path());
    host.sql(
        "CREATE EXTERNAL TABLE t (a INT) STORED AS duckdb LOCATION ':memory:';
         INSERT INTO t VALUES (1), (2), (3)",
    )
    .await
    .unwrap();
    // What `cp` does: open the existing file for writing, truncate, write.
    let mut target = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&loaded)
        .unwrap();
    std::io::copy(
        &mut std::fs::File::open(sqlite_library()).unwrap(),
        &mut target,
    )
    .unwrap();
    drop(target);
    for _ in 0..3 {
        assert_eq!(
            rows(&host.sql("SELECT sum(a) AS s FROM t").await.unwrap()),
            vec!["| 6 |"]
        );
    }
    let report = host.reload().await;
    assert_eq!(report.loaded.len(), 1, "{report}");
    assert!(report.loaded[0].contains("`sqlite`"), "{report}");
    assert_eq!(
        rows(&host.sql("SELECT count(*) AS n FROM t").await.unwrap()),
        vec!["| 3 |"]
    );
}

/// Private copies of the library `lib{name}.so` mapped into this process.
fn mapped_copies(name: &str) -> usize {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let suffix = format!("-lib{name}.so");
    let mut paths: Vec<&str> = maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .filter(|path| path.ends_with(&suffix))
        .collect();
    paths.sort_unstable();
    paths.dedup();
    paths.len()
}

/// A library refused after it was opened (its entry symbol is not a root module) is never
/// closed; a reload reports the same refusal without opening the unchanged file again — each
/// opening kept another private copy mapped — and tries it again once the file is replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_library_refused_after_opening_is_opened_again_only_once_replaced() {
    let plugins = plugin_dir_with_duckdb();
    let name = format!("refusedopen{}", std::process::id());
    let build = || {
        fixture_library(
            plugins.path(),
            &name,
            Some(&record(|m| m.engine_name = name.clone())),
        )
    };
    let library = build();
    let data = tempfile::tempdir().unwrap();
    let host = host_with(plugins.path(), data.path());
    let refusal = format!("lib{name}.so: reading the entry symbol");
    assert!(
        host.report
            .problems
            .iter()
            .any(|p| p.to_string().contains(&refusal)),
        "{:?}",
        host.report.problems
    );
    assert_eq!(mapped_copies(&name), 1);
    for round in 0..3 {
        let report = host.reload().await;
        assert!(
            report.to_string().contains(&refusal),
            "round {round}: {report}"
        );
    }
    assert_eq!(
        mapped_copies(&name),
        1,
        "an unchanged refused library was opened again"
    );

    std::fs::remove_file(&library).unwrap();
    build();
    let report = host.reload().await;
    assert!(report.to_string().contains(&refusal), "{report}");
    assert_eq!(
        mapped_copies(&name),
        2,
        "the replaced library was not tried again"
    );
}
