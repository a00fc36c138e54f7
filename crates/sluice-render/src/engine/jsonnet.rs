//! Jsonnet, evaluated in-process by jrsonnet, with imports confined to the source tree and
//! bounded stack depth and wall-clock time.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::mpsc;

use jrsonnet_evaluator::error::{Error as JsonnetError, LocError};
use jrsonnet_evaluator::{EvaluationState, IStr, ImportResolver};
use serde_json::Value;

use crate::request::Context;
use crate::{Error, Result, tree};

/// Native stack for the evaluator thread: deep enough that the Jsonnet stack limit, not the
/// thread's stack, is what stops runaway recursion.
const EVALUATOR_STACK_BYTES: usize = 256 << 20;

/// Resolves imports only to files inside the source tree.
struct ConfinedResolver {
    root: PathBuf,
    entrypoint: PathBuf,
    max_file_bytes: u64,
}

impl ConfinedResolver {
    fn refuse(&self, from: &Path, path: &Path, reason: &str, cwe: u16) -> LocError {
        tracing::warn!(
            security = 3,
            CWE = cwe,
            from = %tree::shown(&self.root, from).display(),
            import = %path.display(),
            "jsonnet import blocked: {reason}"
        );
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
    let resolver = ConfinedResolver {
        root: ctx.root.to_path_buf(),
        entrypoint: entry.clone(),
        max_file_bytes: limits.max_file_bytes,
    };
    let tla = options.tla.clone();
    let ext_vars = options.ext_vars.clone();
    let (tx, rx) = mpsc::channel();
    let worker_entry = entry.clone();
    std::thread::Builder::new()
        .name("jsonnet".into())
        .stack_size(EVALUATOR_STACK_BYTES)
        .spawn(move || {
            let _ = tx.send(evaluate(
                resolver,
                &worker_entry,
                &tla,
                &ext_vars,
                limits.jsonnet_max_stack,
            ));
        })
        .map_err(Error::io(&shown))?;
    // A timed-out evaluation cannot be interrupted inside jrsonnet; the thread is abandoned
    // and its result dropped. See docs/features.md.
    let value = match rx.recv_timeout(limits.jsonnet_timeout) {
        Ok(Ok(value)) => value,
        Ok(Err(message)) => {
            return Err(Error::Jsonnet {
                file: shown,
                message: message.replace(&ctx.root.display().to_string(), "<source>"),
            });
        }
        Err(_) => {
            tracing::warn!(security = 2, CWE = 400, file = %shown.display(), "jsonnet evaluation timed out");
            return Err(Error::JsonnetTimeout {
                file: shown,
                limit: limits.jsonnet_timeout,
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

fn evaluate(
    resolver: ConfinedResolver,
    entry: &Path,
    tla: &[(String, String, bool)],
    ext_vars: &[(String, String, bool)],
    max_stack: usize,
) -> std::result::Result<Value, String> {
    let state = EvaluationState::default();
    state.with_stdlib();
    state.set_max_stack(max_stack);
    state.set_import_resolver(Box::new(resolver));
    let fail = |state: &EvaluationState, e: LocError| state.stringify_err(&e);
    for (name, value, is_code) in ext_vars {
        if *is_code {
            state
                .add_ext_code(name.as_str().into(), value.as_str().into())
                .map_err(|e| fail(&state, e))?;
        } else {
            state.add_ext_str(name.as_str().into(), value.as_str().into());
        }
    }
    for (name, value, is_code) in tla {
        if *is_code {
            state
                .add_tla_code(name.as_str().into(), value.as_str().into())
                .map_err(|e| fail(&state, e))?;
        } else {
            state.add_tla_str(name.as_str().into(), value.as_str().into());
        }
    }
    let value = state
        .evaluate_file_raw_nocwd(entry)
        .and_then(|v| state.with_tla(v))
        .map_err(|e| fail(&state, e))?;
    let json = state
        .run_in_state(|| Value::try_from(&value))
        .map_err(|e| fail(&state, e))?;
    Ok(json)
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
