//! Model references: which binary a host should load now.
//!
//! A reference is a binary's path, or a **model directory**: one binary per
//! version, `<dir>/<version>.so`, and alias files (`champion`, `challenger`,
//! any name) each holding one version name. `DIR` means the alias
//! `champion`, `DIR@ALIAS` another alias (`docs/lifecycle.md`). Resolving
//! reads the alias, finds the version's binary and hashes it under the size
//! cap; the host then loads that path pinned to that SHA-256, so the loader's
//! checks (trust list, size cap, ELF, IR) apply to every resolved binary and
//! a file replaced between resolving and loading is refused, not run.
//! Resolution lives here so every host (Python, the JNI shim) reads the
//! layout the same way; MLflow URIs are resolved by MLflow's own client in
//! `streamml.mlflow`.

use std::path::{Path, PathBuf};

use crate::error::{LoadError, LoadErrorKind};

/// The alias a bare model directory means.
pub const DEFAULT_ALIAS: &str = "champion";

/// What a reference names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRef {
    /// A binary's path.
    File(PathBuf),
    /// A version of a model directory, by alias.
    Directory { dir: PathBuf, alias: String },
}

/// A resolved reference: the binary to load, its SHA-256, and the version
/// the directory calls it (`None` for a plain path: the binary's own info
/// names its version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub path: PathBuf,
    pub sha256: String,
    pub version: Option<String>,
}

/// Why a reference could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    /// The directory's layout does not give a binary.
    #[error("{0}")]
    Layout(String),
    /// The binary the reference names cannot be read.
    #[error(transparent)]
    Load(#[from] LoadError),
}

/// A version or alias name: letters, digits, `.`, `_`, `-`, not starting
/// with `.` (so it never names a hidden or parent entry), at most 128 bytes.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The file of a version in a model directory.
pub fn version_path(dir: &Path, version: &str) -> PathBuf {
    dir.join(format!("{version}{}", std::env::consts::DLL_SUFFIX))
}

impl ModelRef {
    /// Read a reference: an existing directory is a model directory (alias
    /// `champion`); `DIR@ALIAS` with an existing `DIR` names an alias;
    /// anything else is a binary's path (the loader says if it is missing).
    pub fn parse(reference: &str) -> Self {
        let path = Path::new(reference);
        if path.is_dir() {
            return Self::Directory {
                dir: path.to_path_buf(),
                alias: DEFAULT_ALIAS.to_string(),
            };
        }
        if !path.exists() {
            if let Some((dir, alias)) = reference.rsplit_once('@') {
                if Path::new(dir).is_dir() && !alias.contains('/') {
                    return Self::Directory {
                        dir: PathBuf::from(dir),
                        alias: alias.to_string(),
                    };
                }
            }
        }
        Self::File(path.to_path_buf())
    }

    /// The binary this reference names now, hashed; files over `max_bytes`
    /// (default: the loader's cap) are refused as the loader would.
    pub fn resolve(&self, max_bytes: Option<u64>) -> Result<Resolved, ReferenceError> {
        let (path, version) = match self {
            Self::File(path) => (path.clone(), None),
            Self::Directory { dir, alias } => {
                let version = read_alias(dir, alias)?;
                let path = version_path(dir, &version);
                if !path.exists() {
                    return Err(ReferenceError::Layout(format!(
                        "alias '{alias}' of model directory '{}' names version '{version}', but \
                         '{}' does not exist; add that binary or move the alias to a version the \
                         directory has",
                        dir.display(),
                        path.display()
                    )));
                }
                (path, Some(version))
            }
        };
        let fail = |kind: LoadErrorKind| LoadError::new(&path, kind);
        let cap = crate::vet::max_bytes(max_bytes).map_err(fail)?;
        let sha256 = hashes::sha256(&path, cap).map_err(fail)?;
        Ok(Resolved {
            sha256,
            path,
            version,
        })
    }
}

/// The SHA-256 of the binaries resolved before, by file identity: a host
/// re-resolves every few seconds, and hashing a large binary each time is
/// what such a check would cost. An entry is reused only while the file's
/// device, inode, size, mtime and ctime are unchanged; any write or rename
/// changes the ctime, which no user can set back. A stale hash could not
/// run a wrong binary anyway: the loader pins the SHA-256 it reads.
mod hashes {
    use std::collections::HashMap;
    use std::os::unix::fs::MetadataExt;
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    use crate::error::LoadErrorKind;

    /// A file's identity and last change, as `stat` gives them.
    type Stamp = (u64, u64, u64, i64, i64, i64, i64);

    /// More paths than a host resolves; past it the table starts over.
    const MAX_ENTRIES: usize = 1024;

    static TABLE: Mutex<Option<HashMap<PathBuf, (Stamp, String)>>> = Mutex::new(None);

    #[cfg(test)]
    thread_local! {
        /// Files this thread read and hashed (not served from the table).
        pub static READS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    fn stamp(path: &Path, cap: u64) -> Result<Stamp, LoadErrorKind> {
        let m = std::fs::metadata(path)?;
        if !m.file_type().is_file() {
            // The read below refuses it with the loader's message.
            return Ok((0, 0, u64::MAX, 0, 0, 0, 0));
        }
        if m.len() > cap {
            return Err(LoadErrorKind::TooLarge { size: m.len(), cap });
        }
        Ok((
            m.dev(),
            m.ino(),
            m.len(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
        ))
    }

    fn with_table<R>(f: impl FnOnce(&mut HashMap<PathBuf, (Stamp, String)>) -> R) -> R {
        f(TABLE
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(HashMap::new))
    }

    /// The file's SHA-256 (lowercase hex), read under `cap` unless its stamp
    /// is the one it was last hashed with.
    pub fn sha256(path: &Path, cap: u64) -> Result<String, LoadErrorKind> {
        let before = stamp(path, cap)?;
        let known = with_table(|t| {
            t.get(path)
                .filter(|(s, _)| *s == before)
                .map(|(_, h)| h.clone())
        });
        if let Some(hash) = known {
            return Ok(hash);
        }
        #[cfg(test)]
        READS.with(|n| n.set(n.get() + 1));
        let hash = crate::loader::sha256_hex(&crate::vet::read_regular(path, cap)?);
        // Kept only if nothing changed the file while it was read.
        if before.2 != u64::MAX && stamp(path, cap).ok() == Some(before) {
            with_table(|t| {
                if t.len() >= MAX_ENTRIES {
                    t.clear();
                }
                t.insert(path.to_path_buf(), (before, hash.clone()));
            });
        }
        Ok(hash)
    }
}

/// The version an alias file of a model directory names.
pub fn read_alias(dir: &Path, alias: &str) -> Result<String, ReferenceError> {
    let layout = |m: String| ReferenceError::Layout(m);
    if !valid_name(alias) {
        return Err(layout(format!(
            "'{alias}' is not an alias name of model directory '{}'; expected letters, digits, \
             '.', '_' or '-' (e.g. champion)",
            dir.display()
        )));
    }
    let file = dir.join(alias);
    let text = match std::fs::metadata(&file) {
        Ok(meta) if meta.is_file() && meta.len() <= 1024 => std::fs::read_to_string(&file)
            .map_err(|e| layout(format!("cannot read alias file '{}': {e}", file.display())))?,
        Ok(_) => {
            return Err(layout(format!(
                "alias file '{}' is not a regular file of at most 1024 bytes; it must hold one \
                 version name",
                file.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(layout(format!(
                "model directory '{}' has no alias '{alias}': expected a file '{}' holding a \
                 version name; write one (streamml.lifecycle.set_alias) or name another alias \
                 as DIR@ALIAS",
                dir.display(),
                file.display()
            )))
        }
        Err(e) => {
            return Err(layout(format!(
                "cannot read alias file '{}': {e}",
                file.display()
            )))
        }
    };
    let version = text.trim();
    if !valid_name(version) {
        return Err(layout(format!(
            "alias file '{}' holds '{}', expected one version name (letters, digits, '.', '_', \
             '-'), e.g. 3",
            file.display(),
            version.escape_debug()
        )));
    }
    Ok(version.to_string())
}

/// Point an alias of a model directory at a version, atomically (a
/// temporary file renamed over the alias): a host re-resolving at the same
/// moment reads the old version or the new one, never a partial file. The
/// version's binary must exist.
pub fn set_alias(dir: &Path, alias: &str, version: &str) -> Result<(), ReferenceError> {
    for (what, name) in [("alias", alias), ("version", version)] {
        if !valid_name(name) {
            return Err(ReferenceError::Layout(format!(
                "'{name}' is not a valid {what} name; expected letters, digits, '.', '_' or '-', \
                 not starting with '.'"
            )));
        }
    }
    let binary = version_path(dir, version);
    if !binary.is_file() {
        return Err(ReferenceError::Layout(format!(
            "model directory '{}' has no version '{version}' ('{}' does not exist); copy the \
             binary there first",
            dir.display(),
            binary.display()
        )));
    }
    let tmp = dir.join(format!(".{alias}.{}.tmp", std::process::id()));
    let io = |e: std::io::Error| {
        ReferenceError::Layout(format!(
            "cannot write alias '{alias}' of model directory '{}': {e}",
            dir.display()
        ))
    };
    std::fs::write(&tmp, format!("{version}\n")).map_err(io)?;
    std::fs::rename(&tmp, dir.join(alias)).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("streamml-ref-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_directory_resolves_its_alias_to_a_hashed_version() {
        let dir = tmpdir("alias");
        std::fs::write(version_path(&dir, "1"), b"one").unwrap();
        std::fs::write(version_path(&dir, "2"), b"two").unwrap();
        set_alias(&dir, "champion", "1").unwrap();
        set_alias(&dir, "challenger", "2").unwrap();
        let champion = ModelRef::parse(dir.to_str().unwrap()).resolve(None).unwrap();
        assert_eq!(champion.version.as_deref(), Some("1"));
        assert_eq!(champion.sha256, crate::loader::sha256_hex(b"one"));
        let at = format!("{}@challenger", dir.display());
        let challenger = ModelRef::parse(&at).resolve(None).unwrap();
        assert_eq!(challenger.path, version_path(&dir, "2"));
        set_alias(&dir, "champion", "2").unwrap();
        let moved = ModelRef::parse(dir.to_str().unwrap()).resolve(None).unwrap();
        assert_eq!(moved.version.as_deref(), Some("2"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn layout_faults_name_the_alias_and_the_file() {
        let dir = tmpdir("faults");
        let d = dir.display();
        let e = ModelRef::parse(dir.to_str().unwrap()).resolve(None).unwrap_err();
        assert!(e.to_string().starts_with(&format!("model directory '{d}' has no alias 'champion'")));
        std::fs::write(dir.join("champion"), "../etc\n").unwrap();
        let e = ModelRef::parse(dir.to_str().unwrap()).resolve(None).unwrap_err();
        assert!(e.to_string().contains("holds '../etc', expected one version name"), "{e}");
        std::fs::write(dir.join("champion"), "7\n").unwrap();
        let e = ModelRef::parse(dir.to_str().unwrap()).resolve(None).unwrap_err();
        assert!(e.to_string().contains("names version '7', but"), "{e}");
        assert!(set_alias(&dir, "champion", "8").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_binary_is_hashed_again_only_when_it_changed() {
        let dir = tmpdir("hashes");
        let path = version_path(&dir, "1");
        std::fs::write(&path, b"one").unwrap();
        let r = ModelRef::File(path.clone());
        let reads = hashes::READS.with(|n| n.get());
        assert_eq!(
            r.resolve(None).unwrap().sha256,
            crate::loader::sha256_hex(b"one")
        );
        assert_eq!(
            r.resolve(None).unwrap().sha256,
            crate::loader::sha256_hex(b"one")
        );
        assert_eq!(
            hashes::READS.with(|n| n.get()) - reads,
            1,
            "the second resolution reuses the hash"
        );
        // Same size, mtime set back: the ctime still tells the change.
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::fs::write(&path, b"two").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        assert_eq!(
            r.resolve(None).unwrap().sha256,
            crate::loader::sha256_hex(b"two")
        );
        // Over the cap: refused, whether hashed before or not.
        let e = r.resolve(Some(2)).unwrap_err();
        assert!(e.to_string().contains("3 bytes"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_path_that_is_no_directory_is_a_binary() {
        assert_eq!(
            ModelRef::parse("/nonexistent/m@x.so"),
            ModelRef::File(PathBuf::from("/nonexistent/m@x.so"))
        );
    }
}
