//! Step 4 of the library pipeline: read an engine library's metadata record from the file and decide
//! whether this host can load it — without executing any of the library's code.
//!
//! The file is parsed as an object file (ELF, Mach-O or PE): it must be a shared library for
//! this machine's architecture, carry the metadata section, and export the entry symbol. The
//! metadata is compared field by field with the host, and *every* mismatch is reported at once,
//! with the expected and found values and what to do about it.

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

use accel_plugin_api::boundary::ROOT_MODULE_SYMBOL;
use accel_plugin_api::boundary::metadata::{
    ABI_MAJOR, ABI_MINOR, ABI_STABLE_SERIES, BUILD_TARGET, DATAFUSION_FFI_MAJOR,
    MACHO_SECTION_NAME, MetadataError, PanicStrategy, PluginMetadata, SECTION_NAME,
};
use object::read::ReadCache;
use object::{Architecture, Object, ObjectKind, ObjectSection};

/// A library that passed every check.
#[derive(Debug, Clone)]
pub struct CheckedLibrary {
    pub path: PathBuf,
    pub metadata: PluginMetadata,
    pub version: semver::Version,
}

/// One field of the metadata that does not match the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub field: &'static str,
    pub expected: String,
    pub found: String,
    pub fix: &'static str,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: library has {}, host expects {} ({})",
            self.field, self.found, self.expected, self.fix
        )
    }
}

/// Why a library cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{path}: cannot read: {error}")]
    Unreadable {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: not a shared library ({detail}); remove it from the plugin directory")]
    NotALibrary { path: PathBuf, detail: String },
    #[error(
        "{path}: built for architecture {found}, this host runs on {expected}; \
         build the engine for this machine"
    )]
    WrongArchitecture {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error(
        "{path}: no `{SECTION_NAME}` metadata section: not an accel engine library, or built \
         without `accel_plugin_api::export_accelerator!`"
    )]
    NoMetadata { path: PathBuf },
    #[error("{path}: unreadable metadata: {error}; rebuild the engine against accel-plugin-api")]
    BadMetadata { path: PathBuf, error: MetadataError },
    #[error(
        "{path}: does not export the entry symbol `{ROOT_MODULE_SYMBOL}`; build the engine with \
         `accel_plugin_api::export_accelerator!` and crate-type `cdylib`"
    )]
    NoEntrySymbol { path: PathBuf },
    #[error("{path}: incompatible with this host:{}", list(.mismatches))]
    Incompatible {
        path: PathBuf,
        metadata: Box<PluginMetadata>,
        mismatches: Vec<Mismatch>,
    },
}

impl CheckError {
    /// What to do about it, alone.
    pub fn fix(&self) -> String {
        match self {
            CheckError::Unreadable { .. } => "make the file readable by the host's user".into(),
            CheckError::NotALibrary { .. } => "remove it from the plugin directory".into(),
            CheckError::WrongArchitecture { .. } => "build the engine for this machine".into(),
            CheckError::NoMetadata { .. } | CheckError::NoEntrySymbol { .. } => {
                "build the engine with `accel_plugin_api::export_accelerator!` and crate-type \
                 `cdylib`"
                    .into()
            }
            CheckError::BadMetadata { .. } => "rebuild the engine against accel-plugin-api".into(),
            CheckError::Incompatible { mismatches, .. } => mismatches
                .iter()
                .map(|m| m.fix)
                .collect::<Vec<_>>()
                .join("; "),
        }
    }

    /// The engine the library provides, when its metadata could be read.
    pub fn engine(&self) -> Option<String> {
        match self {
            CheckError::Incompatible { metadata, .. } => Some(metadata.engine_name.clone()),
            _ => None,
        }
    }
}

fn list(mismatches: &[Mismatch]) -> String {
    mismatches.iter().map(|m| format!("\n  - {m}")).collect()
}

/// Reads the metadata record of a library file, checking only that the file is a shared
/// library carrying a well-formed record.
pub fn read_metadata(path: &Path) -> Result<PluginMetadata, CheckError> {
    read_metadata_as(path, path)
}

/// [`read_metadata`] of `file`, with errors naming `shown` (the file in the plugin directory
/// when `file` is the host's private copy of it).
pub fn read_metadata_as(file: &Path, shown: &Path) -> Result<PluginMetadata, CheckError> {
    let path = shown;
    let file = File::open(file).map_err(|error| CheckError::Unreadable {
        path: path.to_owned(),
        error,
    })?;
    let cache = ReadCache::new(file);
    let object = object::File::parse(&cache).map_err(|e| CheckError::NotALibrary {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    if object.kind() != ObjectKind::Dynamic {
        return Err(CheckError::NotALibrary {
            path: path.to_owned(),
            detail: format!(
                "object kind is {:?}, expected a dynamic library",
                object.kind()
            ),
        });
    }
    if let Some(expected) = host_architecture()
        && object.architecture() != expected
    {
        return Err(CheckError::WrongArchitecture {
            path: path.to_owned(),
            expected: format!("{expected:?}"),
            found: format!("{:?}", object.architecture()),
        });
    }
    let section = object
        .section_by_name(SECTION_NAME)
        .or_else(|| object.section_by_name(MACHO_SECTION_NAME))
        .ok_or_else(|| CheckError::NoMetadata {
            path: path.to_owned(),
        })?;
    let data = section.data().map_err(|e| CheckError::NotALibrary {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    let metadata = PluginMetadata::from_bytes(data).map_err(|error| CheckError::BadMetadata {
        path: path.to_owned(),
        error,
    })?;
    let exports = object.exports().map_err(|e| CheckError::NotALibrary {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    let has_entry = exports.iter().any(|e| {
        let name = e.name();
        name == ROOT_MODULE_SYMBOL.as_bytes()
            || name.strip_prefix(b"_") == Some(ROOT_MODULE_SYMBOL.as_bytes())
    });
    if !has_entry {
        return Err(CheckError::NoEntrySymbol {
            path: path.to_owned(),
        });
    }
    Ok(metadata)
}

/// Compares a metadata record with this host; empty when compatible.
pub fn mismatches(metadata: &PluginMetadata) -> Vec<Mismatch> {
    let mut found = Vec::new();
    if metadata.abi_major != ABI_MAJOR {
        found.push(Mismatch {
            field: "plugin-api ABI major",
            expected: format!("{ABI_MAJOR}.x"),
            found: format!("{}.{}", metadata.abi_major, metadata.abi_minor),
            fix: "rebuild the engine against the accel-plugin-api version of this host",
        });
    } else if metadata.abi_minor > ABI_MINOR {
        found.push(Mismatch {
            field: "plugin-api ABI minor",
            expected: format!("{ABI_MAJOR}.{ABI_MINOR}"),
            found: format!("{}.{}", metadata.abi_major, metadata.abi_minor),
            fix: "the engine needs a newer host: upgrade accel, or build the engine against this host's accel-plugin-api",
        });
    } else if metadata.abi_minor < ABI_MINOR {
        // abi_stable's layout check refuses a root module with fewer functions than the
        // host's (measured: "too many fields, expected 14, found 12" for a 1.2 library on a
        // 1.3 host), so an older minor never loads; say so before opening the file.
        found.push(Mismatch {
            field: "plugin-api ABI minor",
            expected: format!("{ABI_MAJOR}.{ABI_MINOR}"),
            found: format!("{}.{}", metadata.abi_major, metadata.abi_minor),
            fix: "the engine was built for an older host: rebuild it against this host's accel-plugin-api",
        });
    }
    if metadata.datafusion_ffi_major != DATAFUSION_FFI_MAJOR {
        found.push(Mismatch {
            field: "datafusion-ffi major",
            expected: DATAFUSION_FFI_MAJOR.to_string(),
            found: metadata.datafusion_ffi_major.to_string(),
            fix: "rebuild the engine with the datafusion / datafusion-ffi major of this host",
        });
    }
    if metadata.panic_strategy == PanicStrategy::Abort {
        found.push(Mismatch {
            field: "panic strategy",
            expected: "unwind".to_owned(),
            found: "abort".to_owned(),
            fix: "build the engine with panic = \"unwind\" (a panic in it would abort the host)",
        });
    }
    if let Some(series) = &metadata.abi_stable_series
        && series != ABI_STABLE_SERIES
    {
        found.push(Mismatch {
            field: "abi_stable",
            expected: ABI_STABLE_SERIES.to_owned(),
            found: series.clone(),
            fix: "rebuild the engine against the accel-plugin-api version of this host",
        });
    }
    if metadata.target != BUILD_TARGET {
        found.push(Mismatch {
            field: "target triple",
            expected: BUILD_TARGET.to_owned(),
            found: metadata.target.clone(),
            fix: "build the engine for this host's target",
        });
    }
    if !valid_engine_name(&metadata.engine_name) {
        found.push(Mismatch {
            field: "engine name",
            expected: "lower-case letters, digits and `_`, starting with a letter".to_owned(),
            found: format!("{:?}", metadata.engine_name),
            fix: "rename the engine in export_accelerator!",
        });
    }
    if semver::Version::parse(&metadata.engine_version).is_err() {
        found.push(Mismatch {
            field: "engine version",
            expected: "a semantic version such as 1.2.3".to_owned(),
            found: format!("{:?}", metadata.engine_version),
            fix: "set a semver `version` in the engine's Cargo.toml",
        });
    }
    found
}

/// Whether `name` can be used after `STORED AS`.
pub fn valid_engine_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Reads and checks a library.
pub fn check(path: &Path) -> Result<CheckedLibrary, CheckError> {
    check_as(path, path)
}

/// [`check`] of `file`, reported as `shown` (see [`read_metadata_as`]).
pub fn check_as(file: &Path, shown: &Path) -> Result<CheckedLibrary, CheckError> {
    let path = shown;
    let metadata = read_metadata_as(file, shown)?;
    let mismatches = mismatches(&metadata);
    if !mismatches.is_empty() {
        return Err(CheckError::Incompatible {
            path: path.to_owned(),
            metadata: Box::new(metadata),
            mismatches,
        });
    }
    let version =
        semver::Version::parse(&metadata.engine_version).expect("checked by mismatches()");
    Ok(CheckedLibrary {
        path: path.to_owned(),
        metadata,
        version,
    })
}

fn host_architecture() -> Option<Architecture> {
    match std::env::consts::ARCH {
        "x86_64" => Some(Architecture::X86_64),
        "aarch64" => Some(Architecture::Aarch64),
        "x86" => Some(Architecture::I386),
        "arm" => Some(Architecture::Arm),
        "riscv64" => Some(Architecture::Riscv64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_metadata_is_compatible() {
        assert!(mismatches(&PluginMetadata::current("duckdb", "1.0.0")).is_empty());
    }

    #[test]
    fn every_mismatch_is_reported_at_once() {
        let mut m = PluginMetadata::current("Duck-DB", "one");
        m.abi_major = ABI_MAJOR + 1;
        m.datafusion_ffi_major = 54;
        m.target = "riscv64gc-unknown-none-elf".to_owned();
        let fields: Vec<_> = mismatches(&m).iter().map(|m| m.field).collect();
        assert_eq!(
            fields,
            [
                "plugin-api ABI major",
                "datafusion-ffi major",
                "target triple",
                "engine name",
                "engine version"
            ]
        );
        let text = list(&mismatches(&m));
        assert!(text.contains("library has 54, host expects 55"), "{text}");
    }

    /// Property: the file checker returns an error for arbitrary and corrupted object files,
    /// never panics.
    #[test]
    fn corrupted_object_files_never_panic_the_checker() {
        let original = ["/bin/true", "/usr/bin/true", "/bin/sh"]
            .iter()
            .find_map(|p| std::fs::read(p).ok())
            .unwrap_or_else(|| {
                let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
                exe[..exe.len().min(256 * 1024)].to_vec()
            });
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("libcorrupt.so");
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..300 {
            let mut bytes = original.clone();
            // corrupt mostly the headers, where the parser makes its decisions
            for _ in 0..(1 + next() % 16) {
                let span = if round % 3 == 0 {
                    bytes.len()
                } else {
                    4096.min(bytes.len())
                };
                let at = (next() as usize) % span;
                bytes[at] = next() as u8;
            }
            if round % 7 == 0 {
                bytes.truncate((next() as usize) % bytes.len());
            }
            std::fs::write(&path, &bytes).unwrap();
            // an executable (or garbage) is never a loadable engine library
            assert!(check(&path).is_err(), "round {round}");
        }
    }

    #[test]
    fn another_minor_is_refused_either_way() {
        for minor in [ABI_MINOR + 1, ABI_MINOR - 1] {
            let mut m = PluginMetadata::current("x", "1.0.0");
            m.abi_minor = minor;
            let found = mismatches(&m);
            assert_eq!(found[0].field, "plugin-api ABI minor");
            assert_eq!(found[0].expected, format!("{ABI_MAJOR}.{ABI_MINOR}"));
        }
        assert!(mismatches(&PluginMetadata::current("x", "1.0.0")).is_empty());
    }
}
