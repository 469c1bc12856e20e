//! Step 3 of the library pipeline: whether a plugin file may be loaded at all, before its contents are
//! looked at.
//!
//! Policy, enforced here:
//! - **permissions** (like ssh's StrictModes): a library, and the directory holding it, must not
//!   be writable by group or others, and must be owned by the user running the host or by
//!   root — otherwise someone else could swap the code this process runs. An explicit override
//!   (`--allow-untrusted-plugins`) skips this check, never the allow-list;
//! - **allow-list**: when a plugin directory holds a lock file ([`LOCK_FILE`], written by
//!   `accel plugin lock DIR`), only the libraries it lists, with the SHA-256 it records, load;
//!   an unlisted or modified library is refused.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Name of the allow-list file inside a plugin directory.
pub const LOCK_FILE: &str = "accel-plugins.lock";

/// Why a plugin file is not trusted.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error(
        "{path}: refused: {what} is writable by {by} (mode {mode:o}); run `chmod go-w {path}`, \
         or start the host with --allow-untrusted-plugins"
    )]
    Writable {
        path: PathBuf,
        what: &'static str,
        by: &'static str,
        mode: u32,
    },
    #[error(
        "{path}: refused: {what} is owned by uid {owner}, not by this user (uid {user}) or root; \
         change its owner, or start the host with --allow-untrusted-plugins"
    )]
    Owner {
        path: PathBuf,
        what: &'static str,
        owner: u32,
        user: u32,
    },
    #[error(
        "{path}: refused: not listed in {lock}; run `accel plugin lock {dir}` to trust the \
         libraries now in the directory"
    )]
    Unlisted {
        path: PathBuf,
        lock: PathBuf,
        dir: PathBuf,
    },
    #[error(
        "{path}: refused: its SHA-256 is {found}, {lock} expects {expected}; the library changed \
         since the directory was locked — run `accel plugin lock {dir}` if the change is yours"
    )]
    Modified {
        path: PathBuf,
        lock: PathBuf,
        dir: PathBuf,
        expected: String,
        found: String,
    },
    #[error("{path}: cannot read: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: malformed lock file, line {line}: expected `<sha256>  <file name>`")]
    MalformedLock { path: PathBuf, line: usize },
}

impl TrustError {
    /// What to do about it, alone.
    pub fn fix(&self) -> String {
        match self {
            TrustError::Writable { path, .. } => format!(
                "run `chmod go-w {}`, or start the host with --allow-untrusted-plugins",
                path.display()
            ),
            TrustError::Owner { .. } => {
                "change its owner, or start the host with --allow-untrusted-plugins".into()
            }
            TrustError::Unlisted { dir, .. } | TrustError::Modified { dir, .. } => {
                format!("run `accel plugin lock {}`", dir.display())
            }
            TrustError::Io { .. } => "make the file readable by the host's user".into(),
            TrustError::MalformedLock { .. } => {
                "fix the line, or write the lock file again with `accel plugin lock DIR`".into()
            }
        }
    }
}

/// How strict the permission check is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PermissionPolicy {
    #[default]
    Strict,
    /// `--allow-untrusted-plugins`: skip the permission and owner checks.
    AllowUntrusted,
}

/// Checks one library (and its directory) against the policy and the directory's lock file.
/// `contents` is the file whose bytes will be loaded (the host's private copy of `library`):
/// the allow-list hash is taken from it, so what was checked is what runs.
pub fn check_trust(
    library: &Path,
    contents: &Path,
    policy: PermissionPolicy,
) -> Result<(), TrustError> {
    let dir = library
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if policy == PermissionPolicy::Strict {
        check_permissions(dir, "its directory")?;
        check_permissions(library, "the library")?;
        // A symlink is only as trustworthy as what it points to, and where that lives.
        let target = std::fs::canonicalize(library).map_err(|error| TrustError::Io {
            path: library.to_owned(),
            error,
        })?;
        if target != library {
            check_permissions(&target, "the library's symlink target")?;
            if let Some(target_dir) = target.parent() {
                check_permissions(target_dir, "the directory of the library's symlink target")?;
            }
        }
    }
    let lock = dir.join(LOCK_FILE);
    if !lock.exists() {
        return Ok(());
    }
    if policy == PermissionPolicy::Strict {
        check_permissions(&lock, "the lock file")?;
    }
    let entries = read_lock(&lock)?;
    let name = library
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some(expected) = entries.get(&name) else {
        return Err(TrustError::Unlisted {
            path: library.to_owned(),
            lock,
            dir: dir.to_owned(),
        });
    };
    let found = sha256_file(contents)?;
    if &found != expected {
        return Err(TrustError::Modified {
            path: library.to_owned(),
            lock,
            dir: dir.to_owned(),
            expected: expected.clone(),
            found,
        });
    }
    Ok(())
}

#[cfg(unix)]
fn check_permissions(path: &Path, what: &'static str) -> Result<(), TrustError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|error| TrustError::Io {
        path: path.to_owned(),
        error,
    })?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        let by = if mode & 0o002 != 0 {
            "others"
        } else {
            "its group"
        };
        return Err(TrustError::Writable {
            path: path.to_owned(),
            what,
            by,
            mode,
        });
    }
    if let Some(user) = current_uid()
        && meta.uid() != user
        && meta.uid() != 0
    {
        return Err(TrustError::Owner {
            path: path.to_owned(),
            what,
            owner: meta.uid(),
            user,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_path: &Path, _what: &'static str) -> Result<(), TrustError> {
    Ok(())
}

/// Effective uid of this process: the owner of `/proc/self` (Linux), without `unsafe`.
#[cfg(unix)]
pub fn current_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// `file name → sha256` from a lock file.
fn read_lock(lock: &Path) -> Result<BTreeMap<String, String>, TrustError> {
    let text = std::fs::read_to_string(lock).map_err(|error| TrustError::Io {
        path: lock.to_owned(),
        error,
    })?;
    let mut entries = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.splitn(2, char::is_whitespace);
        let (Some(hash), Some(name)) = (parts.next(), parts.next()) else {
            return Err(TrustError::MalformedLock {
                path: lock.to_owned(),
                line: index + 1,
            });
        };
        let name = name.trim();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) || name.is_empty() {
            return Err(TrustError::MalformedLock {
                path: lock.to_owned(),
                line: index + 1,
            });
        }
        entries.insert(name.to_owned(), hash.to_ascii_lowercase());
    }
    Ok(entries)
}

/// Lower-case hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> Result<String, TrustError> {
    let io = |error| TrustError::Io {
        path: path.to_owned(),
        error,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    let mut hex = String::with_capacity(64);
    for byte in hasher.finalize() {
        let _ = write!(hex, "{byte:02x}");
    }
    Ok(hex)
}

/// Writes the lock file of `dir`, listing every library in it; returns the libraries listed.
pub fn write_lock(dir: &Path, libraries: &[PathBuf]) -> Result<Vec<(String, String)>, TrustError> {
    let mut listed = Vec::new();
    let mut text = String::from(
        "# accel plugin allow-list: only these libraries, with these SHA-256, load from this\n\
         # directory. Regenerate with `accel plugin lock DIR`.\n",
    );
    for library in libraries {
        let name = library
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let hash = sha256_file(library)?;
        let _ = writeln!(text, "{hash}  {name}");
        listed.push((name, hash));
    }
    let lock = dir.join(LOCK_FILE);
    let temporary = dir.join(format!(".{LOCK_FILE}.tmp"));
    std::fs::write(&temporary, text)
        .and_then(|()| std::fs::rename(&temporary, &lock))
        .map_err(|error| TrustError::Io { path: lock, error })?;
    Ok(listed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_lock_lines_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join(LOCK_FILE);
        for text in [
            "zz  a.so",
            "abc",
            &"a".repeat(64),
            "\u{fffd}\u{0}  x",
            &format!("{}  ", "0".repeat(64)),
        ] {
            std::fs::write(&lock, text).unwrap();
            assert!(
                matches!(
                    read_lock(&lock),
                    Err(TrustError::MalformedLock { line: 1, .. })
                ),
                "{text:?}"
            );
        }
        std::fs::write(
            &lock,
            format!("# comment\n\n{}  lib x.so\n", "AB".repeat(32)),
        )
        .unwrap();
        let entries = read_lock(&lock).unwrap();
        assert_eq!(entries.get("lib x.so").unwrap(), &"ab".repeat(32));
    }

    #[cfg(unix)]
    #[test]
    fn group_or_world_writable_libraries_are_refused_unless_allowed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let library = dir.path().join("libx.so");
        std::fs::write(&library, b"x").unwrap();
        std::fs::set_permissions(&library, std::fs::Permissions::from_mode(0o666)).unwrap();
        let error = check_trust(&library, &library, PermissionPolicy::Strict)
            .unwrap_err()
            .to_string();
        assert!(error.contains("writable by others (mode 666)"), "{error}");
        assert!(error.contains("chmod go-w"), "{error}");
        assert!(check_trust(&library, &library, PermissionPolicy::AllowUntrusted).is_ok());
        std::fs::set_permissions(&library, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o770)).unwrap();
        let error = check_trust(&library, &library, PermissionPolicy::Strict)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("its directory is writable by its group"),
            "{error}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_into_a_writable_directory_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let plugins = tempfile::tempdir().unwrap();
        let open = tempfile::tempdir().unwrap();
        std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let real = open.path().join("libx.so");
        std::fs::write(&real, b"x").unwrap();
        let link = plugins.path().join("libx.so");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let error = check_trust(&link, &link, PermissionPolicy::Strict)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("the directory of the library's symlink target is writable by others"),
            "{error}"
        );
    }

    #[test]
    fn lock_file_admits_only_listed_unchanged_libraries() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("liba.so");
        let b = dir.path().join("libb.so");
        std::fs::write(&a, b"version 1").unwrap();
        write_lock(dir.path(), std::slice::from_ref(&a)).unwrap();
        assert!(check_trust(&a, &a, PermissionPolicy::Strict).is_ok());
        std::fs::write(&b, b"new").unwrap();
        let unlisted = check_trust(&b, &b, PermissionPolicy::Strict)
            .unwrap_err()
            .to_string();
        assert!(unlisted.contains("not listed in"), "{unlisted}");
        std::fs::write(&a, b"version 2").unwrap();
        let modified = check_trust(&a, &a, PermissionPolicy::AllowUntrusted)
            .unwrap_err()
            .to_string();
        assert!(
            modified.contains("the library changed since the directory was locked"),
            "{modified}"
        );
    }
}
