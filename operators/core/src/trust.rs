//! Trust lists: the SHA-256s of the model binaries a host may load. Loading
//! a binary runs its native code; with a trust list, any other file is
//! refused before it is opened as a library.
//!
//! A list comes from a host's parameter or from the file named by
//! `$STREAMML_TRUSTED_MODELS`: one lowercase or uppercase hex digest per
//! line, `#` starts a comment, blank lines are ignored.

use std::collections::BTreeSet;
use std::path::Path;

/// The environment variable naming a trust file for every host.
pub const TRUSTED_MODELS_ENV: &str = "STREAMML_TRUSTED_MODELS";

/// A set of allowed SHA-256s and where it came from (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustList {
    digests: BTreeSet<String>,
    source: String,
}

fn digest(text: &str) -> Option<String> {
    (text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| text.to_ascii_lowercase())
}

impl TrustList {
    /// The given digests; `source` names them in messages (e.g. `trusted_sha256`).
    pub fn from_digests<I, S>(digests: I, source: impl Into<String>) -> Result<Self, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let source = source.into();
        let digests = digests
            .into_iter()
            .map(|d| {
                let d = d.as_ref().trim();
                digest(d).ok_or_else(|| format!("{source}: '{d}' is not a SHA-256 (64 hex digits)"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { digests, source })
    }

    /// Parse a trust file's text; `source` names the file in messages.
    pub fn parse(text: &str, source: impl Into<String>) -> Result<Self, String> {
        let source = source.into();
        let mut digests = BTreeSet::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let d = digest(line).ok_or_else(|| {
                format!(
                    "{source} line {}: '{line}' is not a SHA-256 (64 hex digits)",
                    i + 1
                )
            })?;
            digests.insert(d);
        }
        Ok(Self { digests, source })
    }

    /// Read a trust file.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let source = format!("trust file '{}'", path.display());
        let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {source}: {e}"))?;
        if !meta.is_file() || meta.len() > 16 << 20 {
            return Err(format!("{source} is not a regular file of at most 16 MiB"));
        }
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {source}: {e}"))?;
        Self::parse(&text, source)
    }

    /// The list `$STREAMML_TRUSTED_MODELS` names, if it is set.
    pub fn from_env() -> Result<Option<Self>, String> {
        match std::env::var_os(TRUSTED_MODELS_ENV) {
            Some(p) if !p.is_empty() => Self::from_file(Path::new(&p)).map(Some),
            _ => Ok(None),
        }
    }

    /// Whether a file of this SHA-256 (hex) may be loaded.
    pub fn allows(&self, sha256: &str) -> bool {
        self.digests.contains(&sha256.to_ascii_lowercase())
    }

    /// Where the list came from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// How many digests it holds.
    pub fn len(&self) -> usize {
        self.digests.len()
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn a_trust_file_takes_comments_blank_lines_and_any_case() {
        let text = format!("# models we ship\n\n{}  # r1 v3\n", A.to_uppercase());
        let list = TrustList::parse(&text, "trust file 't'").unwrap();
        assert!(list.allows(A));
        assert!(!list.allows(&"0".repeat(64)));
        assert_eq!(list.len(), 1);
    }

    #[test]
    fn a_line_that_is_not_a_digest_is_refused_by_its_number() {
        let e = TrustList::parse(&format!("{A}\nabc\n"), "trust file 't'").unwrap_err();
        assert_eq!(
            e,
            "trust file 't' line 2: 'abc' is not a SHA-256 (64 hex digits)"
        );
        let e = TrustList::from_digests(["xyz"], "trusted_sha256").unwrap_err();
        assert_eq!(e, "trusted_sha256: 'xyz' is not a SHA-256 (64 hex digits)");
    }
}
