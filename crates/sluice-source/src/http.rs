//! HTTP(S) tarball artifacts, verified against their digest before extraction.

use std::io::{Read, Write};
use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use ureq::tls::{PemItem, RootCerts, TlsConfig};

use crate::archive::extract_tar_gz;
use crate::fetch::{FetchOptions, FetchedSource, install_tree};
use crate::secret::{redact_url, scrub};
use crate::spec::Digest;
use crate::{Error, Result};

/// Downloads, verifies and extracts the artifact at `url` (or reuses the cached tree).
pub(crate) fn fetch_artifact(
    url: &str,
    digest: &Digest,
    revision: Option<&str>,
    opts: &FetchOptions,
) -> Result<FetchedSource> {
    let shown = redact_url(url);
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        return Err(Error::UnsupportedUrl { url: shown });
    }
    let revision = revision.map_or_else(|| digest.to_string(), str::to_owned);
    let tree = opts
        .cache_dir
        .join("trees")
        .join("artifact")
        .join(digest.hex());
    if tree.is_dir() {
        tracing::debug!(url = %shown, %digest, "artifact cache hit");
        return Ok(FetchedSource {
            root: tree,
            revision,
            from_cache: true,
            links_vetted: true,
        });
    }
    if lower.starts_with("http://") && opts.credentials.authorization().is_some() {
        tracing::warn!(
            security = 2,
            CWE = 319,
            url = %shown,
            "sending credentials over plain HTTP"
        );
    }
    let tmp_dir = opts.cache_dir.join("tmp");
    std::fs::create_dir_all(&tmp_dir).map_err(Error::io(&tmp_dir))?;
    let mut download = tempfile::NamedTempFile::new_in(&tmp_dir).map_err(Error::io(&tmp_dir))?;
    let actual = download_to(url, &shown, download.as_file_mut(), opts)?;
    if &actual != digest {
        tracing::warn!(
            security = 3,
            CWE = 354,
            url = %shown,
            expected = %digest,
            actual = %actual,
            "artifact digest mismatch; nothing extracted"
        );
        return Err(Error::DigestMismatch {
            url: shown,
            expected: digest.to_string(),
            actual: actual.to_string(),
        });
    }
    let root = install_tree(&tree, |dir| {
        extract_tar_gz(download.path(), &shown, dir, &opts.archive_limits)
    })?;
    Ok(FetchedSource {
        root,
        revision,
        from_cache: false,
        links_vetted: true,
    })
}

fn agent(opts: &FetchOptions) -> Result<ureq::Agent> {
    let mut tls = TlsConfig::builder();
    if let Some(ca) = &opts.ca_file {
        let pem = std::fs::read(ca).map_err(Error::io(ca))?;
        let certs: Vec<_> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if certs.is_empty() {
            return Err(Error::Io {
                path: ca.clone(),
                source: std::io::Error::other("no PEM certificate in --ca-file"),
            });
        }
        tls = tls.root_certs(RootCerts::Specific(Arc::new(certs)));
    }
    Ok(ureq::Agent::config_builder()
        .tls_config(tls.build())
        .timeout_global(Some(opts.http_timeout))
        .http_status_as_error(false)
        .max_redirects(5)
        .build()
        .into())
}

/// Streams the body into `file`, hashing as it goes; returns the digest of what arrived.
fn download_to(
    url: &str,
    shown: &str,
    file: &mut std::fs::File,
    opts: &FetchOptions,
) -> Result<Digest> {
    let secrets = opts.credentials.secrets();
    let http_err = |e: ureq::Error| Error::Http {
        url: shown.to_owned(),
        message: scrub(&e.to_string(), &secrets),
    };
    let mut request = agent(opts)?.get(url);
    if let Some(auth) = opts.credentials.authorization() {
        request = request.header("Authorization", auth);
    }
    let response = request.call().map_err(http_err)?;
    let status = response.status().as_u16();
    if status != 200 {
        let hint = match status {
            401 | 403 => {
                " (check the token or credentials: --bearer-token-file / --bearer-token-env)"
            }
            404 => " (the artifact may have been garbage-collected; re-read the source's status)",
            _ => "",
        };
        return Err(Error::HttpStatus {
            url: shown.to_owned(),
            status,
            hint,
        });
    }
    let limit = opts.archive_limits.max_download_bytes;
    let too_big = || Error::Limit {
        what: format!("artifact {shown}"),
        limit,
        flag: "--max-download-bytes",
    };
    let announced = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit) {
        return Err(too_big());
    }
    if let Some(p) = &opts.progress {
        p.start(&format!("downloading {shown}"), announced);
    }
    let mut body = response.into_body().into_reader();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut total = 0u64;
    loop {
        let n = body.read(&mut buf).map_err(|e| Error::Http {
            url: shown.to_owned(),
            message: format!("reading the body: {}", scrub(&e.to_string(), &secrets)),
        })?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > limit {
            return Err(too_big());
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).map_err(Error::io("download"))?;
        if let Some(p) = &opts.progress {
            p.advance(n as u64);
        }
    }
    if let Some(p) = &opts.progress {
        p.finish();
    }
    if announced.is_some_and(|n| n != total) {
        return Err(Error::Http {
            url: shown.to_owned(),
            message: format!(
                "truncated body: {total} of {} bytes",
                announced.unwrap_or(0)
            ),
        });
    }
    file.flush().map_err(Error::io("download"))?;
    Ok(Digest::from_sha256(&hasher.finalize()))
}
