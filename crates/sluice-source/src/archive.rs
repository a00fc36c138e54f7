//! Safe extraction of tar and tar.gz archives from untrusted publishers.

use std::cell::Cell;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use tar::EntryType;

use crate::{Error, Result};

/// Bounds on what one archive may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveLimits {
    /// Maximum number of entries.
    pub max_entries: u64,
    /// Maximum total bytes of extracted files.
    pub max_total_bytes: u64,
    /// Maximum ratio of uncompressed to compressed bytes (gzip bombs).
    pub max_ratio: u64,
    /// Maximum bytes downloaded for one artifact.
    pub max_download_bytes: u64,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            max_total_bytes: 256 << 20,
            max_ratio: 200,
            max_download_bytes: 64 << 20,
        }
    }
}

/// Ratios are only judged past this many uncompressed bytes: tiny archives compress oddly.
const RATIO_GRACE_BYTES: u64 = 1 << 20;

#[derive(Default)]
struct Counts {
    compressed: Cell<u64>,
    uncompressed: Cell<u64>,
    bomb: Cell<bool>,
}

struct CountCompressed<R> {
    inner: R,
    counts: Rc<Counts>,
}

impl<R: Read> Read for CountCompressed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counts
            .compressed
            .set(self.counts.compressed.get() + n as u64);
        Ok(n)
    }
}

struct RatioGuard<R> {
    inner: R,
    counts: Rc<Counts>,
    max_ratio: u64,
    max_total: u64,
}

impl<R: Read> Read for RatioGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let total = self.counts.uncompressed.get() + n as u64;
        self.counts.uncompressed.set(total);
        let compressed = self.counts.compressed.get().max(1);
        // The tar stream carries headers and padding on top of file data: allow 2x for them.
        if (total > RATIO_GRACE_BYTES && total / compressed > self.max_ratio)
            || total
                > self
                    .max_total
                    .saturating_mul(2)
                    .saturating_add(RATIO_GRACE_BYTES)
        {
            self.counts.bomb.set(true);
            return Err(io::Error::other("decompression limit"));
        }
        Ok(n)
    }
}

/// Extracts a gzip-compressed tar file into `dest` (which must exist and be empty).
pub(crate) fn extract_tar_gz(
    archive: &Path,
    label: &str,
    dest: &Path,
    limits: &ArchiveLimits,
) -> Result<()> {
    let file = File::open(archive).map_err(Error::io(archive))?;
    let counts = Rc::new(Counts::default());
    let decoder = flate2::read::GzDecoder::new(CountCompressed {
        inner: io::BufReader::new(file),
        counts: Rc::clone(&counts),
    });
    let guarded = RatioGuard {
        inner: decoder,
        counts: Rc::clone(&counts),
        max_ratio: limits.max_ratio,
        max_total: limits.max_total_bytes,
    };
    extract_tar(guarded, label, dest, limits).map_err(|e| {
        if counts.bomb.get() {
            tracing::warn!(
                security = 3,
                CWE = 409,
                archive = %label,
                "decompression bomb rejected"
            );
            Error::Limit {
                what: format!(
                    "archive {label} (decompresses at more than {}:1 or past the size limit)",
                    limits.max_ratio
                ),
                limit: limits.max_ratio,
                flag: "--max-archive-ratio / --max-archive-bytes",
            }
        } else {
            e
        }
    })
}

/// Extracts a tar stream into `dest`, refusing anything that would escape it.
pub(crate) fn extract_tar(
    reader: impl Read,
    label: &str,
    dest: &Path,
    limits: &ArchiveLimits,
) -> Result<()> {
    let bad = |e: io::Error| Error::BadArchive {
        url: label.to_owned(),
        message: e.to_string(),
    };
    let mut archive = tar::Archive::new(reader);
    let mut entries_seen = 0u64;
    let mut bytes_written = 0u64;
    let mut symlinks: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut hardlinks: Vec<(PathBuf, PathBuf)> = Vec::new();
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        entries_seen += 1;
        if entries_seen > limits.max_entries {
            tracing::warn!(security = 3, CWE = 400, archive = %label, "too many archive entries");
            return Err(Error::Limit {
                what: format!("archive {label} entry count"),
                limit: limits.max_entries,
                flag: "--max-archive-entries",
            });
        }
        let raw = entry.path().map_err(bad)?.into_owned();
        let name = raw.display().to_string();
        let Some(relative) = confined_relative(&raw) else {
            return Err(unsafe_entry(&name, "absolute path or `..` component", 22));
        };
        if relative.as_os_str().is_empty() {
            continue;
        }
        let target = dest.join(&relative);
        match entry.header().entry_type() {
            EntryType::Directory => {
                ensure_no_symlink_parents(dest, &relative, &name)?;
                fs::create_dir_all(&target).map_err(Error::io(&target))?;
            }
            EntryType::Regular | EntryType::Continuous => {
                ensure_no_symlink_parents(dest, &relative, &name)?;
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(Error::io(parent))?;
                }
                let mut out = File::create(&target).map_err(Error::io(&target))?;
                let budget = limits.max_total_bytes - bytes_written;
                let copied = io::copy(&mut (&mut entry).take(budget + 1), &mut out).map_err(bad)?;
                bytes_written += copied;
                if copied > budget {
                    tracing::warn!(security = 3, CWE = 400, archive = %label, "archive too large");
                    return Err(Error::Limit {
                        what: format!("archive {label} uncompressed size"),
                        limit: limits.max_total_bytes,
                        flag: "--max-archive-bytes",
                    });
                }
                let executable = entry
                    .header()
                    .mode()
                    .map(|m| m & 0o111 != 0)
                    .unwrap_or(false);
                set_mode(&target, if executable { 0o755 } else { 0o644 })?;
            }
            EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .map_err(bad)?
                    .ok_or_else(|| unsafe_entry(&name, "symlink without a target", 59))?
                    .into_owned();
                if !symlink_stays_inside(&relative, &link) {
                    return Err(unsafe_entry(
                        &name,
                        &format!("symlink to {} points outside the archive", link.display()),
                        59,
                    ));
                }
                symlinks.push((relative, link));
            }
            EntryType::Link => {
                let link = entry
                    .link_name()
                    .map_err(bad)?
                    .ok_or_else(|| unsafe_entry(&name, "hard link without a target", 59))?
                    .into_owned();
                let Some(source) = confined_relative(&link) else {
                    return Err(unsafe_entry(
                        &name,
                        &format!("hard link to {} points outside the archive", link.display()),
                        59,
                    ));
                };
                hardlinks.push((relative, source));
            }
            EntryType::XGlobalHeader | EntryType::XHeader => {}
            other => {
                return Err(unsafe_entry(
                    &name,
                    &format!(
                        "entry type {other:?} (devices, FIFOs and sparse files are not allowed)"
                    ),
                    22,
                ));
            }
        }
    }
    // Hard links become copies of files extracted above: never links to anything else.
    for (path, source) in hardlinks {
        let from = dest.join(&source);
        let to = dest.join(&path);
        let meta = fs::symlink_metadata(&from).map_err(|_| {
            unsafe_entry(
                &path.display().to_string(),
                "hard link to a file that is not in the archive",
                59,
            )
        })?;
        if !meta.is_file() {
            return Err(unsafe_entry(
                &path.display().to_string(),
                "hard link to something other than a regular file",
                59,
            ));
        }
        ensure_no_symlink_parents(dest, &path, &path.display().to_string())?;
        bytes_written += meta.len();
        if bytes_written > limits.max_total_bytes {
            return Err(Error::Limit {
                what: format!("archive {label} uncompressed size"),
                limit: limits.max_total_bytes,
                flag: "--max-archive-bytes",
            });
        }
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).map_err(Error::io(parent))?;
        }
        fs::copy(&from, &to).map_err(Error::io(&to))?;
    }
    // Symlinks last, so that no file above was written through one.
    for (path, link) in symlinks {
        let at = dest.join(&path);
        ensure_no_symlink_parents(dest, &path, &path.display().to_string())?;
        if let Some(parent) = at.parent() {
            fs::create_dir_all(parent).map_err(Error::io(parent))?;
        }
        std::os::unix::fs::symlink(&link, &at).map_err(Error::io(&at))?;
    }
    Ok(())
}

fn unsafe_entry(entry: &str, reason: &str, cwe: u16) -> Error {
    tracing::warn!(security = 3, CWE = cwe, entry = %entry, "unsafe archive entry rejected: {reason}");
    Error::UnsafeEntry {
        entry: entry.to_owned(),
        reason: reason.to_owned(),
        cwe,
    }
}

/// The entry path with `.` removed, or `None` if it is absolute or contains `..`.
fn confined_relative(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// A relative target whose leading `..` steps stay within the archive root, followed only by
/// plain names (a `..` after a name could climb out through another symlink).
fn symlink_stays_inside(entry: &Path, target: &Path) -> bool {
    let mut depth = entry.components().count() as i64 - 1;
    let mut seen_name = false;
    for component in target.components() {
        match component {
            Component::ParentDir if !seen_name => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::Normal(_) => seen_name = true,
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// Refuses to create anything below a path component that is a symlink.
fn ensure_no_symlink_parents(dest: &Path, relative: &Path, name: &str) -> Result<()> {
    let mut at = dest.to_path_buf();
    for component in relative.components() {
        at.push(component);
        if fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(unsafe_entry(name, "written through a symlink", 59));
        }
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(Error::io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlink_targets() {
        assert!(symlink_stays_inside(Path::new("a/b"), Path::new("../c")));
        assert!(symlink_stays_inside(Path::new("a/b"), Path::new("c/d")));
        assert!(!symlink_stays_inside(Path::new("a"), Path::new("../c")));
        assert!(!symlink_stays_inside(
            Path::new("a/b"),
            Path::new("/etc/passwd")
        ));
        assert!(!symlink_stays_inside(
            Path::new("a/b"),
            Path::new("x/../../..")
        ));
        assert!(!symlink_stays_inside(
            Path::new("l"),
            Path::new("l2/../etc")
        ));
    }

    #[test]
    fn entry_paths() {
        assert_eq!(
            confined_relative(Path::new("./a/b")),
            Some(PathBuf::from("a/b"))
        );
        assert_eq!(confined_relative(Path::new("a/../../b")), None);
        assert_eq!(confined_relative(Path::new("/etc/x")), None);
    }
}
