//! Git over HTTP with credentials against a real smart-HTTP server: `git http-backend` behind a
//! small CGI bridge on loopback that demands an `Authorization` header.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use sluice_source::{Credentials, Error, FetchOptions, Secret, SourceSpec, fetch};

/// Serves the repositories under `root` over smart HTTP to requests carrying `expected_auth`.
fn serve(root: PathBuf, expected_auth: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let root = Arc::new(root);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let root = Arc::clone(&root);
            let expected = expected_auth.clone();
            std::thread::spawn(move || handle(stream, &root, &expected));
        }
    });
    base
}

fn handle(mut stream: TcpStream, root: &Path, expected_auth: &str) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut request_line = String::new();
    reader.read_line(&mut request_line).expect("request line");
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("GET").to_owned();
    let target = parts.next().unwrap_or("/").to_owned();
    let mut headers = std::collections::HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    if headers.get("authorization").map(String::as_str) != Some(expected_auth) {
        let _ = stream.write_all(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).expect("body");
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut cgi = Command::new("git")
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("REQUEST_METHOD", &method)
        .env(
            "CONTENT_TYPE",
            headers.get("content-type").cloned().unwrap_or_default(),
        )
        .env("CONTENT_LENGTH", length.to_string())
        .env(
            "GIT_PROTOCOL",
            headers.get("git-protocol").cloned().unwrap_or_default(),
        )
        .env("REMOTE_USER", "tester")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("http-backend");
    cgi.stdin
        .take()
        .expect("stdin")
        .write_all(&body)
        .expect("cgi stdin");
    let out = cgi.wait_with_output().expect("cgi");
    let split = out
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| {
            out.stdout
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, 2))
        });
    let Some((end, sep)) = split else { return };
    let head = String::from_utf8_lossy(&out.stdout[..end]).into_owned();
    let payload = &out.stdout[end + sep..];
    let mut status = "200 OK".to_owned();
    let mut response = String::new();
    for line in head.lines() {
        match line.split_once(':') {
            Some((k, v)) if k.eq_ignore_ascii_case("status") => status = v.trim().to_owned(),
            Some(_) => response.push_str(&format!("{}\r\n", line.trim_end())),
            None => {}
        }
    }
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\n{response}Content-Length: {}\r\nConnection: close\r\n\r\n",
        payload.len()
    );
    let _ = stream.write_all(payload);
}

fn served_repo() -> (tempfile::TempDir, String) {
    let root = tempfile::tempdir().expect("root");
    let work = root.path().join("app");
    std::fs::create_dir_all(&work).expect("mkdir");
    std::fs::write(work.join("cm.yaml"), "kind: ConfigMap\n").expect("write");
    let sha = sluice_testkit::commit_all(&work, "one");
    (root, sha)
}

#[test]
fn git_over_http_with_basic_auth() {
    let (root, sha) = served_repo();
    // "bob:s3cret-pw" in base64
    let base = serve(
        root.path().to_path_buf(),
        "Basic Ym9iOnMzY3JldC1wdw==".into(),
    );
    let cache = tempfile::tempdir().expect("cache");
    let mut opts = FetchOptions::new(cache.path());
    opts.credentials = Credentials::Basic {
        username: "bob".into(),
        password: Secret::new("s3cret-pw"),
    };
    let spec = SourceSpec::Git {
        url: format!("{base}/app/.git"),
        reference: Some("main".into()),
    };
    let fetched = fetch(&spec, &opts).expect("authenticated fetch");
    assert_eq!(fetched.revision, format!("main@sha1:{sha}"));
    assert!(fetched.root.join("cm.yaml").is_file());
}

#[test]
fn git_over_http_with_a_bearer_token() {
    let (root, _) = served_repo();
    let base = serve(root.path().to_path_buf(), "Bearer tok-abcdef".into());
    let cache = tempfile::tempdir().expect("cache");
    let mut opts = FetchOptions::new(cache.path());
    opts.credentials = Credentials::Bearer(Secret::new("tok-abcdef"));
    let spec = SourceSpec::Git {
        url: format!("{base}/app/.git"),
        reference: Some("main".into()),
    };
    fetch(&spec, &opts).expect("token fetch");
}

#[test]
fn wrong_git_credentials_fail_without_leaking_them() {
    let (root, _) = served_repo();
    let base = serve(root.path().to_path_buf(), "Bearer the-right-one".into());
    let cache = tempfile::tempdir().expect("cache");
    let mut opts = FetchOptions::new(cache.path());
    opts.credentials = Credentials::Bearer(Secret::new("a-wrong-token"));
    let spec = SourceSpec::Git {
        url: format!("{base}/app/.git"),
        reference: Some("main".into()),
    };
    let err = fetch(&spec, &opts).expect_err("rejected");
    let text = format!("{err} {err:?}");
    assert!(
        matches!(
            err,
            Error::Git {
                action: "ls-remote",
                ..
            }
        ),
        "{text}"
    );
    assert!(!text.contains("a-wrong-token"), "{text}");
}
