//! Fetching from real Git repositories (made by the test with the real `git`) and a real HTTP
//! server on loopback serving good, wrong, truncated, slow and hostile artifacts.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use sluice_source::{
    ArchiveLimits, Credentials, Digest, Error, FetchOptions, Secret, SourceSpec, fetch,
    read_flux_source,
};
use sluice_testkit::git;

fn repo_with_two_commits() -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().expect("dir");
    let p = dir.path();
    git(p, &["init", "-q"]);
    std::fs::write(p.join("cm.yaml"), "kind: ConfigMap\nv: 1\n").expect("write");
    git(p, &["add", "."]);
    git(p, &["commit", "-qm", "one"]);
    let first = git(p, &["rev-parse", "HEAD"]);
    git(p, &["tag", "-a", "v1", "-m", "v1"]);
    std::fs::write(p.join("cm.yaml"), "kind: ConfigMap\nv: 2\n").expect("write");
    git(p, &["commit", "-qam", "two"]);
    let second = git(p, &["rev-parse", "HEAD"]);
    (dir, first, second)
}

#[test]
fn git_branch_tag_and_commit_are_pinned() {
    let (repo, first, second) = repo_with_two_commits();
    let cache = tempfile::tempdir().expect("cache");
    let opts = FetchOptions::new(cache.path());
    let url = format!("file://{}", repo.path().display());
    let spec = |r: &str| SourceSpec::Git {
        url: url.clone(),
        reference: Some(r.into()),
    };

    let main = fetch(&spec("main"), &opts).expect("branch");
    assert_eq!(main.revision, format!("main@sha1:{second}"));
    assert!(!main.from_cache);
    assert_eq!(
        std::fs::read_to_string(main.root.join("cm.yaml")).expect("read"),
        "kind: ConfigMap\nv: 2\n"
    );

    let tag = fetch(&spec("v1"), &opts).expect("annotated tag resolves to its commit");
    assert_eq!(tag.revision, format!("v1@sha1:{first}"));
    assert_eq!(
        std::fs::read_to_string(tag.root.join("cm.yaml")).expect("read"),
        "kind: ConfigMap\nv: 1\n"
    );

    let pinned = fetch(&spec(&first), &opts).expect("sha");
    assert_eq!(pinned.revision, format!("sha1:{first}"));
    assert!(pinned.from_cache, "same commit as the tag: no second fetch");

    let again = fetch(&spec("main"), &opts).expect("again");
    assert!(again.from_cache);
}

#[test]
fn pinned_commit_from_cache_needs_no_remote() {
    let (repo, first, _) = repo_with_two_commits();
    let cache = tempfile::tempdir().expect("cache");
    let opts = FetchOptions::new(cache.path());
    let url = format!("file://{}", repo.path().display());
    let spec = SourceSpec::Git {
        url,
        reference: Some(first.clone()),
    };
    fetch(&spec, &opts).expect("first fetch");
    drop(repo); // the remote is gone
    let cached = fetch(&spec, &opts).expect("served from the cache");
    assert!(cached.from_cache);
}

#[test]
fn unknown_git_ref_is_a_clear_error() {
    let (repo, _, _) = repo_with_two_commits();
    let cache = tempfile::tempdir().expect("cache");
    let spec = SourceSpec::Git {
        url: repo.path().display().to_string(),
        reference: Some("no-such-branch".into()),
    };
    let err = fetch(&spec, &FetchOptions::new(cache.path())).expect_err("missing ref");
    assert!(matches!(err, Error::RefNotFound { .. }), "{err}");
    assert!(err.to_string().contains("no-such-branch"));
}

#[test]
fn git_credentials_never_reach_errors() {
    let cache = tempfile::tempdir().expect("cache");
    let mut opts = FetchOptions::new(cache.path());
    opts.credentials = Credentials::Basic {
        username: "bob".into(),
        password: Secret::new("s3cr3t-pw"),
    };
    // Nothing listens on port 9 of loopback: the fetch fails and its message must be clean.
    let spec = SourceSpec::Git {
        url: "http://alice:hunter22@127.0.0.1:9/repo.git".into(),
        reference: Some("main".into()),
    };
    let err = fetch(&spec, &opts).expect_err("unreachable");
    let text = format!("{err} {err:?}");
    assert!(
        !text.contains("hunter22") && !text.contains("s3cr3t-pw"),
        "{text}"
    );
    assert!(text.contains("***@127.0.0.1"), "{text}");
}

#[test]
fn ext_transport_is_refused() {
    let cache = tempfile::tempdir().expect("cache");
    let marker = cache.path().join("pwned");
    let spec = SourceSpec::Git {
        url: format!("ext::sh -c touch% {}", marker.display()),
        reference: Some("main".into()),
    };
    let err = fetch(&spec, &FetchOptions::new(cache.path())).expect_err("ext");
    assert!(matches!(err, Error::UnsupportedUrl { .. }), "{err}");
    assert!(!marker.exists());
}

// ---- HTTP artifacts ----

#[derive(Clone)]
enum Reply {
    Body(Vec<u8>),
    Truncated(Vec<u8>),
    Slow,
    Protected { token: String, body: Vec<u8> },
}

/// A real HTTP/1.1 server on loopback; it serves each path's reply and counts requests.
struct Server {
    base: String,
    hits: Arc<std::sync::atomic::AtomicUsize>,
}

fn serve(routes: HashMap<&'static str, Reply>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let routes = routes.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut line = String::new();
                reader.read_line(&mut line).expect("request line");
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let mut auth = String::new();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some(v) = h
                        .strip_prefix("authorization: ")
                        .or(h.strip_prefix("Authorization: "))
                    {
                        auth = v.trim().to_owned();
                    }
                }
                let send = |s: &mut std::net::TcpStream, status: &str, body: &[u8], len: usize| {
                    let _ = write!(
                        s,
                        "HTTP/1.1 {status}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
                    );
                    let _ = s.write_all(body);
                };
                match routes.get(path.as_str()) {
                    Some(Reply::Body(b)) => send(&mut stream, "200 OK", b, b.len()),
                    Some(Reply::Truncated(b)) => {
                        send(&mut stream, "200 OK", &b[..b.len() / 2], b.len())
                    }
                    Some(Reply::Slow) => std::thread::sleep(Duration::from_secs(5)),
                    Some(Reply::Protected { token, body }) if auth == format!("Bearer {token}") => {
                        send(&mut stream, "200 OK", body, body.len())
                    }
                    Some(Reply::Protected { .. }) => send(&mut stream, "401 Unauthorized", b"", 0),
                    None => send(&mut stream, "404 Not Found", b"", 0),
                }
            });
        }
    });
    Server { base, hits }
}

fn tarball(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    for (name, data) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        raw_name(&mut header, name);
        builder.append(&header, *data).expect("append");
    }
    builder.into_inner().expect("tar").finish().expect("gz")
}

/// Sets a header's name bytes directly, bypassing the tar crate's own safety checks, as an
/// attacker's tool would.
fn raw_name(header: &mut tar::Header, name: &str) {
    let field = &mut header.as_old_mut().name;
    field.fill(0);
    field[..name.len()].copy_from_slice(name.as_bytes());
    header.set_cksum();
}

fn link_tarball(kind: tar::EntryType, name: &str, target: &str) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    let mut header = tar::Header::new_gnu();
    header.set_size(0);
    header.set_entry_type(kind);
    raw_name(&mut header, name);
    let link = &mut header.as_old_mut().linkname;
    link[..target.len()].copy_from_slice(target.as_bytes());
    header.set_cksum();
    builder.append(&header, std::io::empty()).expect("append");
    builder.into_inner().expect("tar").finish().expect("gz")
}

fn digest_of(bytes: &[u8]) -> Digest {
    Digest::from_sha256(&Sha256::digest(bytes))
}

fn artifact(url: String, bytes: &[u8]) -> SourceSpec {
    SourceSpec::Artifact {
        url,
        digest: digest_of(bytes),
        revision: None,
    }
}

#[test]
fn artifact_is_verified_extracted_and_cached() {
    let good = tarball(&[("./deploy/cm.yaml", b"kind: ConfigMap\n")]);
    let server = serve(HashMap::from([("/good.tar.gz", Reply::Body(good.clone()))]));
    let cache = tempfile::tempdir().expect("cache");
    let opts = FetchOptions::new(cache.path());
    let spec = artifact(format!("{}/good.tar.gz", server.base), &good);
    let fetched = fetch(&spec, &opts).expect("fetch");
    assert_eq!(fetched.revision, digest_of(&good).to_string());
    assert_eq!(
        std::fs::read(fetched.root.join("deploy/cm.yaml")).expect("read"),
        b"kind: ConfigMap\n"
    );
    let again = fetch(&spec, &opts).expect("again");
    assert!(again.from_cache);
    assert_eq!(
        server.hits.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "second build must not download"
    );
}

#[test]
fn wrong_digest_is_rejected_before_extraction() {
    let good = tarball(&[("cm.yaml", b"kind: ConfigMap\n")]);
    let server = serve(HashMap::from([("/a.tar.gz", Reply::Body(good))]));
    let cache = tempfile::tempdir().expect("cache");
    let spec = artifact(format!("{}/a.tar.gz", server.base), b"something else");
    let err = fetch(&spec, &FetchOptions::new(cache.path())).expect_err("mismatch");
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    let trees = cache.path().join("trees/artifact");
    let extracted = std::fs::read_dir(&trees).map(|d| d.count()).unwrap_or(0);
    assert_eq!(extracted, 0, "nothing may be extracted");
}

#[test]
fn truncated_download_fails() {
    let good = tarball(&[("cm.yaml", b"kind: ConfigMap\n")]);
    let server = serve(HashMap::from([(
        "/t.tar.gz",
        Reply::Truncated(good.clone()),
    )]));
    let cache = tempfile::tempdir().expect("cache");
    let err = fetch(
        &artifact(format!("{}/t.tar.gz", server.base), &good),
        &FetchOptions::new(cache.path()),
    )
    .expect_err("truncated");
    assert!(
        matches!(err, Error::Http { .. } | Error::DigestMismatch { .. }),
        "{err}"
    );
}

#[test]
fn slow_server_times_out() {
    let server = serve(HashMap::from([("/slow.tar.gz", Reply::Slow)]));
    let cache = tempfile::tempdir().expect("cache");
    let mut opts = FetchOptions::new(cache.path());
    opts.http_timeout = Duration::from_millis(500);
    let started = std::time::Instant::now();
    let err = fetch(
        &artifact(format!("{}/slow.tar.gz", server.base), b"x"),
        &opts,
    )
    .expect_err("slow");
    assert!(matches!(err, Error::Http { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[test]
fn bearer_token_is_sent_and_never_shown() {
    let good = tarball(&[("cm.yaml", b"kind: ConfigMap\n")]);
    let server = serve(HashMap::from([(
        "/p.tar.gz",
        Reply::Protected {
            token: "tok-123456".into(),
            body: good.clone(),
        },
    )]));
    let cache = tempfile::tempdir().expect("cache");
    let spec = artifact(format!("{}/p.tar.gz", server.base), &good);
    let err = fetch(&spec, &FetchOptions::new(cache.path())).expect_err("no token");
    assert!(
        matches!(err, Error::HttpStatus { status: 401, .. }),
        "{err}"
    );
    let mut opts = FetchOptions::new(cache.path());
    opts.credentials = Credentials::Bearer(Secret::new("tok-123456"));
    fetch(&spec, &opts).expect("with token");
    assert!(!format!("{opts:?}").contains("tok-123456"));
}

fn fetch_hostile(bytes: Vec<u8>, limits: ArchiveLimits) -> Error {
    let server = serve(HashMap::from([("/h.tar.gz", Reply::Body(bytes.clone()))]));
    let cache = tempfile::tempdir().expect("cache");
    let mut opts = FetchOptions::new(cache.path());
    opts.archive_limits = limits;
    let err = fetch(
        &artifact(format!("{}/h.tar.gz", server.base), &bytes),
        &opts,
    )
    .expect_err("hostile");
    assert!(
        !cache
            .path()
            .join("trees/artifact")
            .join(digest_of(&bytes).hex())
            .exists()
    );
    err
}

#[test]
fn tarball_path_traversal_is_rejected() {
    let err = fetch_hostile(
        tarball(&[("../../escape.yaml", b"x")]),
        ArchiveLimits::default(),
    );
    assert!(matches!(err, Error::UnsafeEntry { cwe: 22, .. }), "{err}");
    let err = fetch_hostile(
        tarball(&[("/etc/cron.d/x", b"x")]),
        ArchiveLimits::default(),
    );
    assert!(matches!(err, Error::UnsafeEntry { cwe: 22, .. }), "{err}");
}

#[test]
fn tarball_links_out_of_tree_are_rejected() {
    let err = fetch_hostile(
        link_tarball(tar::EntryType::Symlink, "passwd", "/etc/passwd"),
        ArchiveLimits::default(),
    );
    assert!(matches!(err, Error::UnsafeEntry { cwe: 59, .. }), "{err}");
    let err = fetch_hostile(
        link_tarball(tar::EntryType::Symlink, "a/up", "../../x"),
        ArchiveLimits::default(),
    );
    assert!(matches!(err, Error::UnsafeEntry { cwe: 59, .. }), "{err}");
    let err = fetch_hostile(
        link_tarball(tar::EntryType::Link, "h", "../../etc/shadow"),
        ArchiveLimits::default(),
    );
    assert!(matches!(err, Error::UnsafeEntry { cwe: 59, .. }), "{err}");
}

#[test]
fn tarball_device_files_are_rejected() {
    let err = fetch_hostile(
        link_tarball(tar::EntryType::Char, "null", ""),
        ArchiveLimits::default(),
    );
    assert!(matches!(err, Error::UnsafeEntry { .. }), "{err}");
}

#[test]
fn gzip_bomb_is_stopped() {
    let zeros = vec![0u8; 64 << 20];
    let bomb = tarball(&[("zeros.yaml", &zeros)]);
    assert!(
        bomb.len() < 1 << 20,
        "the bomb compresses well: {}",
        bomb.len()
    );
    let err = fetch_hostile(bomb, ArchiveLimits::default());
    assert!(matches!(err, Error::Limit { .. }), "{err}");
}

#[test]
fn too_many_entries_are_stopped() {
    let names: Vec<String> = (0..50).map(|i| format!("f{i}.yaml")).collect();
    let entries: Vec<(&str, &[u8])> = names
        .iter()
        .map(|n| (n.as_str(), b"x".as_slice()))
        .collect();
    let limits = ArchiveLimits {
        max_entries: 10,
        ..ArchiveLimits::default()
    };
    let err = fetch_hostile(tarball(&entries), limits);
    assert!(matches!(err, Error::Limit { limit: 10, .. }), "{err}");
}

#[test]
fn flux_source_object_names_the_artifact() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("gitrepo.yaml");
    let digest = format!("sha256:{}", "ab".repeat(32));
    std::fs::write(&path, format!(
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata: {{name: app}}\nstatus:\n  artifact:\n    url: http://source-controller/a.tar.gz\n    digest: {digest}\n    revision: main@sha1:0123\n"
    )).expect("write");
    let spec = read_flux_source(&path).expect("flux");
    assert_eq!(
        spec,
        SourceSpec::Artifact {
            url: "http://source-controller/a.tar.gz".into(),
            digest: digest.parse().expect("digest"),
            revision: Some("main@sha1:0123".into()),
        }
    );
    std::fs::write(
        &path,
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata: {name: app}\n",
    )
    .expect("write");
    let err = read_flux_source(&path).expect_err("no artifact");
    assert!(err.to_string().contains("no status.artifact"), "{err}");
    std::fs::write(&path, "apiVersion: v1\nkind: ConfigMap\n").expect("write");
    assert!(read_flux_source(&path).is_err());
}

#[test]
fn bad_digest_strings_are_refused() {
    assert!("sha256:xyz".parse::<Digest>().is_err());
    assert!("md5:abcd".parse::<Digest>().is_err());
}

#[test]
fn git_tree_with_a_symlink_out_of_the_repository_is_refused() {
    let (repo, _, _) = repo_with_two_commits();
    std::os::unix::fs::symlink("/etc/passwd", repo.path().join("passwd.yaml")).expect("symlink");
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-qm", "evil"]);
    let cache = tempfile::tempdir().expect("cache");
    let spec = SourceSpec::Git {
        url: repo.path().display().to_string(),
        reference: Some("main".into()),
    };
    let err = fetch(&spec, &FetchOptions::new(cache.path())).expect_err("escaping link");
    assert!(matches!(err, Error::UnsafeEntry { cwe: 59, .. }), "{err}");
}
