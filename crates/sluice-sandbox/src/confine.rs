//! The confinement steps: what the kernel offers, and building and applying the policy.
#![allow(unsafe_code)] // raw syscalls that the kernel exposes no safe wrapper for

use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, AccessNet, Ruleset, RulesetAttr, RulesetCreated, RulesetCreatedAttr,
    RulesetStatus, Scope, path_beneath_rules,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use crate::{Error, Result};

/// The Landlock ABI whose rights we ask for; older kernels get the subset they know.
const LANDLOCK_ABI: ABI = ABI::V6;

/// What this kernel offers for confining tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelSupport {
    /// Landlock ABI version, or `None` when Landlock is absent or disabled.
    pub landlock_abi: Option<i32>,
    /// Whether seccomp filters can be installed.
    pub seccomp: bool,
}

impl KernelSupport {
    /// Whether the filesystem and network confinement the renderer relies on is available.
    pub fn can_sandbox(&self) -> bool {
        self.landlock_abi.is_some_and(|abi| abi >= 1) && self.seccomp
    }

    /// A short human description of what is missing, for error messages.
    pub fn missing(&self) -> String {
        let mut missing = Vec::new();
        if self.landlock_abi.is_none() {
            missing.push("no Landlock");
        }
        if !self.seccomp {
            missing.push("no seccomp");
        }
        missing.join(", ")
    }
}

/// Asks the kernel which confinement features it offers.
pub fn kernel_support() -> KernelSupport {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_ulong = 1;
    // SAFETY: with a null attribute pointer, size 0 and the VERSION flag this syscall only
    // returns the ABI number; it reads no memory of ours.
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    let seccomp = std::fs::read_to_string("/proc/self/status")
        .map(|status| status.lines().any(|l| l.starts_with("Seccomp:")))
        .unwrap_or(false);
    KernelSupport {
        landlock_abi: (abi > 0).then_some(abi as i32),
        seccomp,
    }
}

/// Paths a confined tool may touch, by kind of access.
#[derive(Debug, Default, Clone)]
pub(crate) struct PathGrants {
    /// Read and execute only.
    pub read: Vec<PathBuf>,
    /// Full access (the per-run scratch directory).
    pub write: Vec<PathBuf>,
}

/// Builds the Landlock ruleset in the parent: opening the path descriptors allocates.
pub(crate) fn landlock_ruleset(grants: &PathGrants) -> Result<RulesetCreated> {
    let policy = |e: landlock::RulesetError| Error::Policy(e.to_string());
    let existing = |paths: &[PathBuf]| -> Vec<PathBuf> {
        paths.iter().filter(|p| p.exists()).cloned().collect()
    };
    Ruleset::default()
        .handle_access(AccessFs::from_all(LANDLOCK_ABI))
        .map_err(policy)?
        .handle_access(AccessNet::from_all(LANDLOCK_ABI))
        .map_err(policy)?
        .scope(Scope::from_all(LANDLOCK_ABI))
        .map_err(policy)?
        .create()
        .map_err(policy)?
        .add_rules(path_beneath_rules(
            existing(&grants.read),
            AccessFs::from_read(LANDLOCK_ABI),
        ))
        .map_err(policy)?
        .add_rules(path_beneath_rules(
            existing(&grants.write),
            AccessFs::from_all(LANDLOCK_ABI),
        ))
        .map_err(policy)
}

/// A seccomp program that makes `socket(2)` fail with EACCES for every family but AF_UNIX, so
/// no protocol (TCP, UDP, raw, netlink) can reach a network even where Landlock's network
/// rules (TCP only) do not apply.
pub(crate) fn no_network_filter() -> Result<BpfProgram> {
    let arch = target_arch()?;
    let policy = |e: seccompiler::BackendError| Error::Policy(e.to_string());
    let not_unix = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::Ne,
        libc::AF_UNIX as u64,
    )
    .map_err(policy)?;
    let rules = [(
        libc::SYS_socket,
        vec![SeccompRule::new(vec![not_unix]).map_err(policy)?],
    )]
    .into_iter()
    .collect();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EACCES as u32),
        arch,
    )
    .map_err(policy)?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| Error::Policy(e.to_string()))
}

fn target_arch() -> Result<TargetArch> {
    TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| Error::Policy(format!("seccomp on {}: {e}", std::env::consts::ARCH)))
}

/// Everything applied in the child between fork and exec. Only async-signal-safe work:
/// syscalls on data prepared by the parent.
pub(crate) struct ChildConfinement {
    pub ruleset: Option<RulesetCreated>,
    pub seccomp: Option<BpfProgram>,
    pub rlimits: Vec<(libc::__rlimit_resource_t, u64)>,
}

impl ChildConfinement {
    /// Applies rlimits, then Landlock (which also sets no_new_privs), then seccomp.
    pub fn apply(&mut self) -> std::io::Result<()> {
        for (resource, value) in &self.rlimits {
            let limit = libc::rlimit {
                rlim_cur: *value,
                rlim_max: *value,
            };
            // SAFETY: setrlimit reads the struct on our stack and nothing else.
            if unsafe { libc::setrlimit(*resource, &limit) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        if let Some(ruleset) = self.ruleset.take() {
            let status = ruleset
                .restrict_self()
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::PermissionDenied, e))?;
            if status.ruleset == RulesetStatus::NotEnforced {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    "Landlock ruleset not enforced",
                ));
            }
        }
        if let Some(program) = &self.seccomp
            && !program.is_empty()
        {
            seccompiler::apply_filter(program).map_err(std::io::Error::other)?;
        }
        Ok(())
    }
}

/// The system paths a dynamically linked tool needs to start, read-only.
pub(crate) fn system_read_paths() -> Vec<PathBuf> {
    [
        "/usr/lib",
        "/usr/lib64",
        "/lib",
        "/lib64",
        "/etc/ld.so.cache",
        "/dev/urandom",
        "/sys/kernel/mm/transparent_hugepage",
    ]
    .iter()
    .map(PathBuf::from)
    .collect()
}

/// Files the tool may read and write without that being a leak (`/dev/null`).
pub(crate) fn system_write_paths() -> Vec<PathBuf> {
    vec![Path::new("/dev/null").to_path_buf()]
}
