//! `sluice build`: render a source and print the manifests or a summary.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use sluice_manifest::YamlLimits;
use sluice_render::{
    Engine, EngineChoice, HelmOptions, JsonnetOptions, RenderLimits, RenderRequest, ToolPaths,
    render, summarize,
};
use sluice_sandbox::{ResourceLimits, SandboxPolicy};
use sluice_source::{
    ArchiveLimits, Credentials, FetchOptions, Secret, SourceSpec, read_flux_source,
};

use crate::cli::{BuildArgs, CredentialArgs, OutputFormat};
use crate::logging::LoggingArgs;

pub fn run(args: BuildArgs, logging: &LoggingArgs) -> anyhow::Result<()> {
    let request = request(&args, logging)?;
    let rendered = render(&request)?;
    tracing::info!(
        revision = %rendered.revision,
        engine = %rendered.engine,
        objects = rendered.objects.len(),
        cached = rendered.from_cache,
        "rendered"
    );
    for d in &rendered.diagnostics {
        tracing::warn!(file = %d.file.display(), "{}", d.message);
    }
    let output = match args.output {
        OutputFormat::Yaml => {
            let mut out = String::new();
            sluice_manifest::write_yaml_stream(&rendered.objects, &mut out);
            out
        }
        OutputFormat::Json => {
            let mut out = serde_json::to_string_pretty(&rendered.objects)?;
            out.push('\n');
            out
        }
    };
    let mut stdout = std::io::stdout().lock();
    if args.summary {
        let summary = summarize(&rendered.objects, &output);
        let report = serde_json::json!({
            "revision": rendered.revision,
            "engine": rendered.engine,
            "tool": rendered.tool,
            "objects": summary.objects,
            "kinds": summary.kinds,
            "bytes": summary.bytes,
            "sha256": summary.sha256,
        });
        match args.output {
            OutputFormat::Json => writeln!(stdout, "{}", serde_json::to_string_pretty(&report)?)?,
            OutputFormat::Yaml => write!(stdout, "{}", sluice_manifest::to_yaml_document(&report))?,
        }
    } else {
        stdout.write_all(output.as_bytes())?;
    }
    stdout.flush()?;
    // The process ends right after this: freeing thousands of small allocations one by one
    // would cost a measurable share of a large render (see docs/benchmarks.md).
    std::mem::forget(rendered);
    std::mem::forget(output);
    Ok(())
}

fn request(args: &BuildArgs, logging: &LoggingArgs) -> anyhow::Result<RenderRequest> {
    let source = source_spec(args)?;
    let cache_dir = match &args.cache_dir {
        Some(dir) => dir.clone(),
        None => default_cache_dir()?,
    };
    let mut request = RenderRequest::new(source, &cache_dir);
    request.path = args.path.clone();
    request.engine = match args.engine.as_str() {
        "auto" => EngineChoice::Auto,
        name => EngineChoice::Fixed(
            name.parse()
                .map_err(anyhow::Error::msg)
                .context("--engine")?,
        ),
    };
    request.enabled_engines = args
        .engines
        .iter()
        .map(|e| e.trim().parse::<Engine>())
        .collect::<Result<BTreeSet<_>, _>>()
        .map_err(anyhow::Error::msg)
        .context("--engines")?;
    request.helm = HelmOptions {
        release_name: args.helm.release_name.clone(),
        namespace: args.helm.namespace.clone(),
        values_files: args.helm.values.clone(),
    };
    let j = &args.jsonnet;
    let pairs =
        |items: &[String], code: bool, flag: &str| -> anyhow::Result<Vec<(String, String, bool)>> {
            items
                .iter()
                .map(|item| match item.split_once('=') {
                    Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned(), code)),
                    _ => bail!("{flag} {item:?}: expected NAME=VALUE"),
                })
                .collect()
        };
    let mut tla = pairs(&j.tla_str, false, "--tla-str")?;
    tla.extend(pairs(&j.tla_code, true, "--tla-code")?);
    let mut ext_vars = pairs(&j.ext_str, false, "--ext-str")?;
    ext_vars.extend(pairs(&j.ext_code, true, "--ext-code")?);
    request.jsonnet = JsonnetOptions {
        entrypoint: j.entrypoint.clone(),
        tla,
        ext_vars,
    };
    let l = &args.limits;
    request.limits = RenderLimits {
        max_manifest_bytes: l.max_manifest_bytes,
        max_file_bytes: l.max_file_bytes,
        max_objects: l.max_objects,
        yaml: YamlLimits {
            max_alias_nodes: l.max_yaml_alias_nodes,
            max_depth: l.max_yaml_depth,
        },
        jsonnet_max_stack: l.jsonnet_max_stack,
        jsonnet_timeout: Duration::from_secs(l.jsonnet_timeout),
    };
    request.tools = tool_paths(&args.tools);
    request.fetch = FetchOptions {
        credentials: credentials(&args.credentials)?,
        archive_limits: ArchiveLimits {
            max_entries: l.max_archive_entries,
            max_total_bytes: l.max_archive_bytes,
            max_ratio: l.max_archive_ratio,
            max_download_bytes: l.max_download_bytes,
        },
        http_timeout: Duration::from_secs(l.http_timeout),
        ca_file: args.credentials.ca_file.clone(),
        progress: crate::progress::for_terminal(logging.log_format),
        ..FetchOptions::new(&cache_dir)
    };
    request.sandbox = SandboxPolicy {
        max_stdout: l.max_manifest_bytes,
        ..sandbox_policy(&args.tools)
    };
    Ok(request)
}

/// Where the external tools are; Jsonnet runs in a sandboxed child of this same binary, so it
/// can be killed.
pub(crate) fn tool_paths(t: &crate::cli::ToolArgs) -> ToolPaths {
    ToolPaths {
        kustomize: t.kustomize_tool.clone(),
        helm: t.helm_tool.clone(),
        jsonnet_evaluator: std::env::current_exe().ok(),
    }
}

/// How external tools are confined, from the shared tool flags.
pub(crate) fn sandbox_policy(t: &crate::cli::ToolArgs) -> SandboxPolicy {
    SandboxPolicy {
        extra_read_paths: t.sandbox_read_paths.clone(),
        limits: ResourceLimits {
            address_space: t.tool_memory_mib << 20,
            cpu_seconds: t.tool_cpu_seconds,
            ..ResourceLimits::default()
        },
        timeout: Duration::from_secs(t.tool_timeout),
        allow_unsandboxed: t.allow_unsandboxed_tools,
        ..SandboxPolicy::default()
    }
}

/// Decides what kind of source the argument names.
fn source_spec(args: &BuildArgs) -> anyhow::Result<SourceSpec> {
    let source = args.source.as_str();
    let lower = source.to_ascii_lowercase();
    let is_http = lower.starts_with("http://") || lower.starts_with("https://");
    let looks_like_artifact = lower.ends_with(".tar.gz") || lower.ends_with(".tgz");
    if let Some(digest) = &args.digest {
        if !is_http {
            bail!(
                "--digest applies to http(s) artifacts; {} is not one",
                sluice_source::redact_url(source)
            );
        }
        if args.reference.is_some() {
            bail!(
                "--ref and --digest cannot be combined: --ref is for Git, --digest for artifacts"
            );
        }
        return Ok(SourceSpec::Artifact {
            url: source.to_owned(),
            digest: digest.parse().context("--digest")?,
            revision: None,
        });
    }
    if is_http && looks_like_artifact && args.reference.is_none() {
        bail!(
            "{} looks like an artifact: pass --digest sha256:<hex> (it is verified before extraction)",
            sluice_source::redact_url(source)
        );
    }
    let path = Path::new(source);
    let git_url = is_http
        || lower.starts_with("ssh://")
        || lower.starts_with("file://")
        || (source.contains('@') && source.contains(':') && !path.exists());
    if git_url {
        return Ok(SourceSpec::Git {
            url: source.to_owned(),
            reference: args.reference.clone(),
        });
    }
    if path.is_file() {
        if args.reference.is_some() {
            bail!("--ref applies to Git sources; {source} is a file (a Flux source object?)");
        }
        return Ok(read_flux_source(path)?);
    }
    if path.is_dir() {
        return Ok(match &args.reference {
            Some(reference) => SourceSpec::Git {
                url: source.to_owned(),
                reference: Some(reference.clone()),
            },
            None => SourceSpec::Local(path.to_path_buf()),
        });
    }
    bail!("source {source:?} is not a directory, a file, a Git URL or an http(s) artifact URL")
}

fn credentials(args: &CredentialArgs) -> anyhow::Result<Credentials> {
    let read = |file: &Option<PathBuf>,
                env: &Option<String>,
                what: &str|
     -> anyhow::Result<Option<Secret>> {
        if let Some(file) = file {
            let value = std::fs::read_to_string(file)
                .with_context(|| format!("reading {what} from {}", file.display()))?;
            return Ok(Some(Secret::new(value)));
        }
        if let Some(var) = env {
            let value = std::env::var(var)
                .with_context(|| format!("{what}: environment variable {var} is not set"))?;
            return Ok(Some(Secret::new(value)));
        }
        Ok(None)
    };
    if let Some(token) = read(
        &args.bearer_token_file,
        &args.bearer_token_env,
        "bearer token",
    )? {
        return Ok(Credentials::Bearer(token));
    }
    if let Some(username) = &args.username {
        let password = read(&args.password_file, &args.password_env, "password")?
            .context("--username needs --password-file or --password-env")?;
        return Ok(Credentials::Basic {
            username: username.clone(),
            password,
        });
    }
    if let Some(key) = read(&args.ssh_key_file, &args.ssh_key_env, "SSH key")? {
        return Ok(Credentials::SshKey {
            key,
            known_hosts: args.known_hosts.clone(),
        });
    }
    Ok(Credentials::None)
}

pub(crate) fn default_cache_dir() -> anyhow::Result<PathBuf> {
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(xdg).join("sluice"));
    }
    let home =
        std::env::var_os("HOME").context("cannot find a cache directory: set --cache-dir")?;
    Ok(PathBuf::from(home).join(".cache").join("sluice"))
}
