//! Spawning a confined tool, capturing its capped output and enforcing the wall clock.
#![allow(unsafe_code)] // pre_exec and kill(2) need it; each use says why it is sound

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use crate::confine::{self, ChildConfinement, PathGrants, kernel_support};
use crate::{Error, Result};

/// Resource limits applied to every tool process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceLimits {
    /// Maximum virtual address space in bytes (`RLIMIT_AS`).
    pub address_space: u64,
    /// Maximum CPU seconds (`RLIMIT_CPU`).
    pub cpu_seconds: u64,
    /// Maximum open file descriptors (`RLIMIT_NOFILE`).
    pub open_files: u64,
    /// Maximum size of any file the tool writes (`RLIMIT_FSIZE`).
    pub file_size: u64,
}

impl Default for ResourceLimits {
    fn default() -> Self {
        Self {
            address_space: 4 << 30,
            cpu_seconds: 120,
            open_files: 1024,
            file_size: 256 << 20,
        }
    }
}

/// How tools are confined; one policy serves many runs.
#[derive(Debug, Clone)]
pub struct SandboxPolicy {
    /// Extra read-only paths granted to every tool (beyond system libraries and the binary).
    pub extra_read_paths: Vec<PathBuf>,
    /// rlimits for the tool process.
    pub limits: ResourceLimits,
    /// Wall-clock limit for one run.
    pub timeout: Duration,
    /// Maximum bytes of stdout accepted before the tool is killed.
    pub max_stdout: u64,
    /// Maximum bytes of stderr kept for error messages (the rest is discarded).
    pub max_stderr: usize,
    /// Run tools unconfined when the kernel cannot confine them (logged at security=4).
    pub allow_unsandboxed: bool,
}

impl Default for SandboxPolicy {
    fn default() -> Self {
        Self {
            extra_read_paths: Vec::new(),
            limits: ResourceLimits::default(),
            timeout: Duration::from_secs(60),
            max_stdout: 64 << 20,
            max_stderr: 64 << 10,
            allow_unsandboxed: false,
        }
    }
}

/// One tool invocation.
#[derive(Debug, Clone)]
pub struct ToolCommand {
    /// Absolute path of the tool binary.
    pub program: PathBuf,
    /// Arguments, without the program name.
    pub args: Vec<OsString>,
    /// Working directory (must be inside a granted path).
    pub cwd: PathBuf,
    /// Directories the tool may read (the source tree).
    pub read_paths: Vec<PathBuf>,
    /// Per-run scratch directory: the only writable place; also `HOME` and `TMPDIR`.
    pub scratch: PathBuf,
    /// Extra environment variables (the environment is otherwise empty).
    pub env: Vec<(OsString, OsString)>,
    /// Bytes written to the tool's stdin (otherwise stdin is `/dev/null`).
    pub stdin: Option<Vec<u8>>,
}

/// What a finished tool produced.
#[derive(Debug)]
pub struct ToolOutput {
    /// Exit status.
    pub status: ExitStatus,
    /// Everything written to stdout (at most the policy's cap).
    pub stdout: Vec<u8>,
    /// The start of stderr, lossily decoded.
    pub stderr: String,
    /// Whether the tool ran confined.
    pub confined: bool,
}

impl ToolOutput {
    /// A one-line description of a non-zero exit, for error messages.
    pub fn failure_reason(&self) -> String {
        let how = match (self.status.code(), self.status.signal()) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(sig)) => format!("signal {sig}"),
            _ => "unknown status".to_owned(),
        };
        let stderr = self.stderr.trim();
        if stderr.is_empty() {
            how
        } else {
            format!("{how}: {stderr}")
        }
    }
}

/// Runs tools under a [`SandboxPolicy`].
#[derive(Debug, Clone)]
pub struct Sandbox {
    policy: SandboxPolicy,
}

impl Sandbox {
    /// A sandbox with the given policy.
    pub fn new(policy: SandboxPolicy) -> Self {
        Self { policy }
    }

    /// The policy in force.
    pub fn policy(&self) -> &SandboxPolicy {
        &self.policy
    }

    /// Runs `cmd` confined and waits for it, within the time and output limits.
    pub fn run(&self, cmd: &ToolCommand) -> Result<ToolOutput> {
        let tool = cmd
            .program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| cmd.program.display().to_string());
        let program = std::fs::canonicalize(&cmd.program).map_err(|_| Error::ToolNotFound {
            path: cmd.program.clone(),
        })?;
        let support = kernel_support();
        let confined = support.can_sandbox();
        if !confined {
            if !self.policy.allow_unsandboxed {
                tracing::error!(
                    security = 2,
                    tool = %tool,
                    "refused to run a tool without a sandbox: {}",
                    support.missing()
                );
                return Err(Error::Unsupported {
                    tool,
                    reason: support.missing(),
                });
            }
            tracing::warn!(
                security = 4,
                tool = %tool,
                "running a tool WITHOUT a sandbox (--allow-unsandboxed-tools): {}",
                support.missing()
            );
        }
        let mut confinement = ChildConfinement {
            ruleset: None,
            seccomp: None,
            rlimits: self.rlimits(),
        };
        if confined {
            let mut grants = PathGrants {
                read: confine::system_read_paths(),
                write: confine::system_write_paths(),
            };
            grants.read.push(program.clone());
            grants.read.extend(cmd.read_paths.iter().cloned());
            grants
                .read
                .extend(self.policy.extra_read_paths.iter().cloned());
            grants.write.push(cmd.scratch.clone());
            confinement.ruleset = Some(confine::landlock_ruleset(&grants)?);
            confinement.seccomp = Some(confine::no_network_filter()?);
        }

        let mut command = Command::new(&program);
        command
            .args(&cmd.args)
            .current_dir(&cmd.cwd)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &cmd.scratch)
            .env("TMPDIR", &cmd.scratch)
            .env("LANG", "C.UTF-8")
            .envs(cmd.env.iter().map(|(k, v)| (k, v)))
            .stdin(if cmd.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // SAFETY: the closure only issues syscalls (setrlimit, prctl, landlock_restrict_self,
        // seccomp) on data built before the fork; it does not allocate or take locks.
        unsafe {
            command.pre_exec(move || confinement.apply());
        }
        let spawn_error = |source| Error::Spawn {
            tool: tool.clone(),
            source,
        };
        let mut child = command.spawn().map_err(spawn_error)?;
        let pid = child.id() as libc::pid_t;
        if let (Some(mut pipe), Some(input)) = (child.stdin.take(), cmd.stdin.clone()) {
            // A thread, so a tool that does not read its input cannot block us.
            std::thread::spawn(move || {
                use std::io::Write;
                let _ = pipe.write_all(&input);
            });
        }
        let killed_for_output = Arc::new(AtomicBool::new(false));

        let stdout = child.stdout.take().map(|pipe| {
            let cap = self.policy.max_stdout;
            let flag = Arc::clone(&killed_for_output);
            std::thread::spawn(move || read_capped(pipe, cap, Some((pid, flag))))
        });
        let stderr = child.stderr.take().map(|pipe| {
            let cap = self.policy.max_stderr as u64;
            std::thread::spawn(move || read_capped(pipe, cap, None))
        });

        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let status = match rx.recv_timeout(self.policy.timeout) {
            Ok(status) => status.map_err(|source| Error::Io {
                tool: tool.clone(),
                source,
            })?,
            Err(_) => {
                kill_group(pid);
                tracing::warn!(
                    security = 2,
                    CWE = 400,
                    tool = %tool,
                    "tool killed at the wall-clock limit"
                );
                return Err(Error::Timeout {
                    tool,
                    limit: self.policy.timeout,
                });
            }
        };
        // The group may have children that still hold the pipes open.
        kill_group(pid);
        let stdout = join_reader(stdout);
        let stderr = join_reader(stderr);
        if killed_for_output.load(Ordering::SeqCst) {
            tracing::warn!(security = 2, CWE = 400, tool = %tool, "tool output over the limit");
            return Err(Error::OutputTooLarge {
                tool,
                limit: self.policy.max_stdout,
            });
        }
        Ok(ToolOutput {
            status,
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            confined,
        })
    }

    fn rlimits(&self) -> Vec<(libc::__rlimit_resource_t, u64)> {
        let l = &self.policy.limits;
        vec![
            (libc::RLIMIT_AS, l.address_space),
            (libc::RLIMIT_CPU, l.cpu_seconds),
            (libc::RLIMIT_NOFILE, l.open_files),
            (libc::RLIMIT_FSIZE, l.file_size),
            (libc::RLIMIT_CORE, 0),
        ]
    }
}

/// Reads a pipe to the end, keeping at most `cap` bytes. With `kill_on_overflow`, a pipe that
/// exceeds the cap kills the tool's process group and raises the flag; otherwise the excess is
/// drained and dropped (stderr).
fn read_capped(
    mut pipe: impl Read,
    cap: u64,
    kill_on_overflow: Option<(libc::pid_t, Arc<AtomicBool>)>,
) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match pipe.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let room = cap.saturating_sub(kept.len() as u64) as usize;
        if n > room {
            kept.extend_from_slice(&buf[..room]);
            if let Some((pid, flag)) = &kill_on_overflow {
                flag.store(true, Ordering::SeqCst);
                kill_group(*pid);
                break;
            }
        } else {
            kept.extend_from_slice(&buf[..n]);
        }
    }
    kept
}

fn join_reader(handle: Option<std::thread::JoinHandle<Vec<u8>>>) -> Vec<u8> {
    handle.and_then(|h| h.join().ok()).unwrap_or_default()
}

fn kill_group(pid: libc::pid_t) {
    // SAFETY: kill(2) with a negative pid signals the process group we created for the tool
    // (process_group(0) makes the child its leader); it touches no memory.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}
