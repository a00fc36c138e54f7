//! Keeping every path inside the source tree.

use std::path::{Component, Path, PathBuf};

use crate::{Error, Result};

/// `path` relative to `root` for messages (or `path` itself when it is not below `root`).
pub(crate) fn shown(root: &Path, path: &Path) -> PathBuf {
    path.strip_prefix(root)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| path.to_path_buf())
}

/// Lexically normalizes `path` (no filesystem access): removes `.` and folds `..`.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Resolves `reference` (written in a file in `base`) to a path inside `root`.
/// `file` is the referencing file, for the error message; `kind` says what is referenced.
pub(crate) fn resolve_within(
    root: &Path,
    base: &Path,
    reference: &str,
    file: &Path,
    kind: &str,
) -> Result<PathBuf> {
    let escape = |reason: String| {
        tracing::warn!(
            security = 3,
            CWE = 22,
            file = %shown(root, file).display(),
            reference,
            "path escape blocked: {reason}"
        );
        Error::PathEscape {
            path: shown(root, file),
            reason,
        }
    };
    if Path::new(reference).is_absolute() {
        return Err(escape(format!(
            "{kind} {reference:?} is an absolute path; use a path relative to the file"
        )));
    }
    let joined = normalize(&base.join(reference));
    if !joined.starts_with(root) {
        return Err(escape(format!(
            "{kind} {reference:?} resolves outside the source tree {} \
             (pass the repository root as SOURCE and the directory as --path)",
            root.display()
        )));
    }
    if let Ok(real) = joined.canonicalize()
        && !real.starts_with(root)
    {
        tracing::warn!(
            security = 3,
            CWE = 59,
            file = %shown(root, file).display(),
            reference,
            "symlink escape blocked"
        );
        return Err(Error::SymlinkEscape {
            path: shown(root, &joined),
        });
    }
    Ok(joined)
}

/// Fails on any symlink below `dir` that resolves (or would resolve) outside `root`.
pub(crate) fn check_symlinks(root: &Path, dir: &Path) -> Result<()> {
    for entry in walkdir::WalkDir::new(dir).follow_links(false) {
        let Ok(entry) = entry else { continue };
        if !entry.path_is_symlink() {
            continue;
        }
        let path = entry.path();
        let inside = match path.canonicalize() {
            Ok(real) => real.starts_with(root),
            Err(_) => match std::fs::read_link(path) {
                Ok(target) => {
                    let base = path.parent().unwrap_or(root);
                    !target.is_absolute() && normalize(&base.join(target)).starts_with(root)
                }
                Err(_) => false,
            },
        };
        if !inside {
            tracing::warn!(
                security = 3,
                CWE = 59,
                path = %shown(root, path).display(),
                "symlink out of the source tree blocked"
            );
            return Err(Error::SymlinkEscape {
                path: shown(root, path),
            });
        }
    }
    Ok(())
}

/// The render directory: `path` inside `root`, which must exist.
pub(crate) fn render_dir(root: &Path, path: &Path) -> Result<PathBuf> {
    let reference = path.to_string_lossy();
    let dir = if reference.is_empty() || reference == "." {
        root.to_path_buf()
    } else {
        resolve_within(root, root, &reference, Path::new("--path"), "--path")?
    };
    if !dir.is_dir() {
        return Err(Error::Io {
            path: shown(root, &dir),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "--path does not name a directory in the source",
            ),
        });
    }
    Ok(dir)
}
