//! Jsonnet, evaluated by jrsonnet with imports confined to the source tree and bounded stack
//! depth and wall-clock time.
//!
//! jrsonnet cannot be interrupted, so where the caller names the `sluice` binary
//! (`ToolPaths::jsonnet_evaluator`) the evaluation runs in a child process under the same
//! sandbox as kustomize and helm: killed at the time limit, memory-capped, and unable to read
//! outside the tree even if the evaluator had a bug. Without it (library use, or a kernel that
//! cannot sandbox) it runs on a thread in this process, which is abandoned on timeout.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::mpsc;

use jrsonnet_evaluator::error::{Error as JsonnetError, LocError};
use jrsonnet_evaluator::{EvaluationState, IStr, ImportResolver};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::request::Context;
use crate::{Error, Result, tree};

/// Native stack for the evaluator thread: deep enough that the Jsonnet stack limit, not the
/// thread's stack, is what stops runaway recursion.
const EVALUATOR_STACK_BYTES: usize = 256 << 20;

/// One evaluation, as sent to the child process on stdin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JsonnetJob {
    /// Source root: no import may leave it.
    pub root: PathBuf,
    /// Absolute path of the entrypoint (inside `root`).
    pub entrypoint: PathBuf,
    /// Top-level arguments `(name, value, is_code)`.
    pub tla: Vec<(String, String, bool)>,
    /// External variables `(name, value, is_code)`.
    pub ext_vars: Vec<(String, String, bool)>,
    /// Jsonnet stack limit.
    pub max_stack: usize,
    /// Per-file size limit for imports.
    pub max_file_bytes: u64,
}

/// An import the resolver refused, reported back so the parent can log it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BlockedImport {
    /// The importing file, relative to the root.
    pub from: PathBuf,
    /// The import as written.
    pub import: String,
    /// Why it was refused.
    pub reason: String,
    /// The matching CWE.
    pub cwe: u16,
}

/// The result of a job, as the child prints it on stdout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JsonnetOutcome {
    /// The evaluated value, on success.
    pub value: Option<Value>,
    /// The evaluator's message, on failure.
    pub error: Option<String>,
    /// Imports refused during the evaluation.
    pub blocked: Vec<BlockedImport>,
}

/// Resolves imports only to files inside the source tree.
struct ConfinedResolver {
    root: PathBuf,
    entrypoint: PathBuf,
    max_file_bytes: u64,
    blocked: Rc<RefCell<Vec<BlockedImport>>>,
}

impl ConfinedResolver {
    fn refuse(&self, from: &Path, path: &Path, reason: &str, cwe: u16) -> LocError {
        self.blocked.borrow_mut().push(BlockedImport {
            from: tree::shown(&self.root, from),
            import: path.display().to_string(),
            reason: reason.to_owned(),
            cwe,
        });
        LocError::new(JsonnetError::RuntimeError(
            format!("import {:?}: {reason}", path.display().to_string()).into(),
        ))
    }
}

impl ImportResolver for ConfinedResolver {
    fn resolve_file(
        &self,
        from: &Path,
        path: &Path,
    ) -> jrsonnet_evaluator::error::Result<Rc<Path>> {
        if path == self.entrypoint {
            return Ok(self.entrypoint.clone().into());
        }
        if path.is_absolute() {
            return Err(self.refuse(from, path, "absolute import paths are not allowed", 22));
        }
        let joined = tree::normalize(&from.join(path));
        if !joined.starts_with(&self.root) {
            return Err(self.refuse(from, path, "resolves outside the source tree", 22));
        }
        match joined.canonicalize() {
            Ok(real) if real.starts_with(&self.root) => Ok(real.into()),
            Ok(_) => Err(self.refuse(from, path, "symlink resolves outside the source tree", 59)),
            Err(_) => Err(LocError::new(JsonnetError::ImportFileNotFound(
                tree::shown(&self.root, from),
                path.to_path_buf(),
            ))),
        }
    }

    fn load_file_contents(&self, resolved: &Path) -> jrsonnet_evaluator::error::Result<IStr> {
        let too_big = std::fs::metadata(resolved)
            .map(|m| m.len() > self.max_file_bytes)
            .unwrap_or(false);
        if too_big {
            return Err(LocError::new(JsonnetError::RuntimeError(
                format!(
                    "{} exceeds --max-file-bytes",
                    tree::shown(&self.root, resolved).display()
                )
                .into(),
            )));
        }
        std::fs::read_to_string(resolved)
            .map(Into::into)
            .map_err(|_| LocError::new(JsonnetError::ResolvedFileNotFound(resolved.to_path_buf())))
    }

    #[allow(unsafe_code)] // the trait declares it unsafe; this implementation is trivially sound
    unsafe fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

pub(super) fn render(ctx: &mut Context<'_>) -> Result<Vec<Value>> {
    let options = &ctx.request.jsonnet;
    let limits = ctx.request.limits;
    let entry_file = Path::new(&options.entrypoint);
    let entry = tree::resolve_within(
        ctx.root,
        ctx.dir,
        &options.entrypoint,
        entry_file,
        "--entrypoint",
    )?;
    let shown = tree::shown(ctx.root, &entry);
    let job = JsonnetJob {
        root: ctx.root.to_path_buf(),
        entrypoint: entry,
        tla: options.tla.clone(),
        ext_vars: options.ext_vars.clone(),
        max_stack: limits.jsonnet_max_stack,
        max_file_bytes: limits.max_file_bytes,
    };
    let timeout = || {
        tracing::warn!(security = 2, CWE = 400, file = %shown.display(), "jsonnet evaluation timed out");
        Error::JsonnetTimeout {
            file: shown.clone(),
            limit: limits.jsonnet_timeout,
        }
    };
    let evaluator = ctx.request.tools.jsonnet_evaluator.as_deref();
    let outcome = match evaluator {
        Some(binary) if sluice_sandbox::kernel_support().can_sandbox() => {
            evaluate_in_child(ctx, binary, &job).map_err(|e| match e {
                Error::Sandbox(sluice_sandbox::Error::Timeout { .. }) => timeout(),
                other => other,
            })?
        }
        _ => evaluate_on_thread(job, limits.jsonnet_timeout, &shown)?.ok_or_else(timeout)?,
    };
    for b in &outcome.blocked {
        tracing::warn!(
            security = 3,
            CWE = b.cwe,
            from = %b.from.display(),
            import = %b.import,
            "jsonnet import blocked: {}",
            b.reason
        );
    }
    let value = match (outcome.value, outcome.error) {
        (Some(value), _) => value,
        (None, message) => {
            return Err(Error::Jsonnet {
                file: shown,
                message: message
                    .unwrap_or_else(|| "no result".into())
                    .replace(&ctx.root.display().to_string(), "<source>"),
            });
        }
    };
    let size = serde_json::to_vec(&value)
        .map(|v| v.len() as u64)
        .unwrap_or(0);
    if size > limits.max_manifest_bytes {
        return Err(Error::TooLarge {
            limit: limits.max_manifest_bytes,
            detail: format!(" ({} output)", shown.display()),
        });
    }
    let mut objects = Vec::new();
    crate::objects::collect(flatten(value), &shown, &limits, &mut objects)?;
    Ok(objects)
}

/// Runs the job in `binary __eval-jsonnet` under the sandbox; the wall clock is the Jsonnet
/// time limit.
fn evaluate_in_child(ctx: &Context<'_>, binary: &Path, job: &JsonnetJob) -> Result<JsonnetOutcome> {
    let mut policy = ctx.sandbox.policy().clone();
    policy.timeout = ctx.request.limits.jsonnet_timeout;
    let scratch = tempfile::tempdir().map_err(Error::io(std::env::temp_dir()))?;
    let input = serde_json::to_vec(job).map_err(|e| Error::InvalidOption(e.to_string()))?;
    let output = sluice_sandbox::Sandbox::new(policy).run(&sluice_sandbox::ToolCommand {
        program: binary.to_path_buf(),
        args: vec![EVAL_SUBCOMMAND.into()],
        cwd: ctx.root.to_path_buf(),
        read_paths: vec![ctx.root.to_path_buf()],
        scratch: scratch.path().to_path_buf(),
        env: Vec::new(),
        stdin: Some(input),
    })?;
    serde_json::from_slice(&output.stdout).map_err(|_| Error::Jsonnet {
        file: tree::shown(ctx.root, &job.entrypoint),
        message: if output.stderr.contains("memory allocation of") {
            "evaluation ran out of memory (--tool-memory-mib)".to_owned()
        } else {
            format!("evaluator process failed: {}", output.failure_reason())
        },
    })
}

/// Runs the job on a thread; `None` when it ran past `timeout` (the thread is abandoned).
fn evaluate_on_thread(
    job: JsonnetJob,
    timeout: std::time::Duration,
    shown: &Path,
) -> Result<Option<JsonnetOutcome>> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("jsonnet".into())
        .stack_size(EVALUATOR_STACK_BYTES)
        .spawn(move || {
            let _ = tx.send(evaluate(&job));
        })
        .map_err(Error::io(shown))?;
    Ok(rx.recv_timeout(timeout).ok())
}

/// The hidden subcommand the child runs.
pub const EVAL_SUBCOMMAND: &str = "__eval-jsonnet";

/// Body of the child process: reads a [`JsonnetJob`] (JSON) on stdin, prints a
/// [`JsonnetOutcome`] (JSON) on stdout. Returns the exit code.
pub fn eval_child_main() -> i32 {
    let mut input = Vec::new();
    if std::io::Read::read_to_end(&mut std::io::stdin(), &mut input).is_err() {
        return 2;
    }
    let Ok(job) = serde_json::from_slice::<JsonnetJob>(&input) else {
        eprintln!("invalid jsonnet job on stdin");
        return 2;
    };
    let outcome = std::thread::Builder::new()
        .stack_size(EVALUATOR_STACK_BYTES)
        .spawn(move || evaluate(&job))
        .ok()
        .and_then(|handle| handle.join().ok());
    let Some(outcome) = outcome else {
        eprintln!("jsonnet evaluator crashed");
        return 1;
    };
    match serde_json::to_writer(std::io::stdout().lock(), &outcome) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

fn evaluate(job: &JsonnetJob) -> JsonnetOutcome {
    let blocked = Rc::new(RefCell::new(Vec::new()));
    let resolver = ConfinedResolver {
        root: job.root.clone(),
        entrypoint: job.entrypoint.clone(),
        max_file_bytes: job.max_file_bytes,
        blocked: Rc::clone(&blocked),
    };
    let result = evaluate_with(resolver, job);
    let blocked = blocked.borrow().clone();
    match result {
        Ok(value) => JsonnetOutcome {
            value: Some(value),
            error: None,
            blocked,
        },
        Err(message) => JsonnetOutcome {
            value: None,
            error: Some(message),
            blocked,
        },
    }
}

fn evaluate_with(
    resolver: ConfinedResolver,
    job: &JsonnetJob,
) -> std::result::Result<Value, String> {
    let state = EvaluationState::default();
    state.with_stdlib();
    state.set_max_stack(job.max_stack);
    state.set_import_resolver(Box::new(resolver));
    let fail = |state: &EvaluationState, e: LocError| state.stringify_err(&e);
    for (name, value, is_code) in &job.ext_vars {
        if *is_code {
            state
                .add_ext_code(name.as_str().into(), value.as_str().into())
                .map_err(|e| fail(&state, e))?;
        } else {
            state.add_ext_str(name.as_str().into(), value.as_str().into());
        }
    }
    for (name, value, is_code) in &job.tla {
        if *is_code {
            state
                .add_tla_code(name.as_str().into(), value.as_str().into())
                .map_err(|e| fail(&state, e))?;
        } else {
            state.add_tla_str(name.as_str().into(), value.as_str().into());
        }
    }
    let value = state
        .evaluate_file_raw_nocwd(&job.entrypoint)
        .and_then(|v| state.with_tla(v))
        .map_err(|e| fail(&state, e))?;
    state
        .run_in_state(|| Value::try_from(&value))
        .map_err(|e| fail(&state, e))
}

/// A Jsonnet program may return one object, a list, or an object of named objects.
fn flatten(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.into_iter().flat_map(flatten).collect(),
        Value::Object(map) if map.contains_key("apiVersion") || map.contains_key("kind") => {
            vec![Value::Object(map)]
        }
        Value::Object(map) => map.into_iter().flat_map(|(_, v)| flatten(v)).collect(),
        other => vec![other],
    }
}
