//! Finding external tools and learning their versions (cached per binary).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use sluice_sandbox::{Sandbox, ToolCommand};

/// Finds the first of `names` on `PATH`, unless `configured` names the binary.
pub(crate) fn find(configured: Option<&Path>, names: &[&str]) -> Result<PathBuf, String> {
    if let Some(path) = configured {
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(format!("{} does not exist", path.display()))
        };
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        for dir in std::env::split_paths(&path_var) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(format!("looked for {} on PATH", names.join(", ")))
}

/// The tool's version string, from `args`, cached under `cache_dir` by binary identity.
/// The probe runs in the sandbox like any other tool run: a binary is never trusted just
/// because an operator named it.
pub(crate) fn version(tool: &Path, args: &[&str], cache_dir: &Path, sandbox: &Sandbox) -> String {
    let identity = std::fs::metadata(tool)
        .map(|m| {
            format!(
                "{}:{}:{}:{}",
                tool.display(),
                m.len(),
                m.mtime(),
                m.mtime_nsec()
            )
        })
        .unwrap_or_else(|_| tool.display().to_string());
    let key = hex::encode(&Sha256::digest(format!("{identity}:{}", args.join(" ")))[..16]);
    let cached = cache_dir.join("tools").join(key);
    if let Ok(v) = std::fs::read_to_string(&cached) {
        return v;
    }
    let Ok(scratch) = tempfile::tempdir() else {
        return "unknown".to_owned();
    };
    let output = sandbox.run(&ToolCommand {
        program: tool.to_path_buf(),
        args: args.iter().map(Into::into).collect(),
        cwd: scratch.path().to_path_buf(),
        read_paths: Vec::new(),
        scratch: scratch.path().to_path_buf(),
        env: Vec::new(),
        stdin: None,
    });
    let version = match output {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; "),
        _ => return "unknown".to_owned(),
    };
    if let Some(parent) = cached.parent()
        && std::fs::create_dir_all(parent).is_ok()
    {
        let _ = std::fs::write(&cached, &version);
    }
    version
}
