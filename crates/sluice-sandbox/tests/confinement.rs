//! The real sandbox on this kernel: every test runs a real binary under Landlock and seccomp.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sluice_sandbox::{Error, Sandbox, SandboxPolicy, ToolCommand, kernel_support};

fn command(program: &str, args: &[&str], tree: &Path, scratch: &Path) -> ToolCommand {
    ToolCommand {
        program: PathBuf::from(program),
        args: args.iter().map(Into::into).collect(),
        cwd: tree.to_path_buf(),
        read_paths: vec![tree.to_path_buf()],
        scratch: scratch.to_path_buf(),
        env: Vec::new(),
        stdin: None,
    }
}

struct Dirs {
    tree: tempfile::TempDir,
    scratch: tempfile::TempDir,
}

fn dirs() -> Dirs {
    let tree = tempfile::tempdir().expect("tree");
    std::fs::write(tree.path().join("input.yaml"), "kind: ConfigMap\n").expect("write");
    Dirs {
        tree,
        scratch: tempfile::tempdir().expect("scratch"),
    }
}

fn sandbox() -> Sandbox {
    assert!(
        kernel_support().can_sandbox(),
        "these tests need Landlock and seccomp; kernel offers {:?}",
        kernel_support()
    );
    Sandbox::new(SandboxPolicy::default())
}

#[test]
fn tool_reads_its_source_tree() {
    let d = dirs();
    let out = sandbox()
        .run(&command(
            "/bin/cat",
            &["input.yaml"],
            d.tree.path(),
            d.scratch.path(),
        ))
        .expect("run");
    assert!(out.status.success(), "{}", out.failure_reason());
    assert!(out.confined);
    assert_eq!(out.stdout, b"kind: ConfigMap\n");
}

#[test]
fn tool_cannot_read_etc_passwd() {
    let d = dirs();
    let out = sandbox()
        .run(&command(
            "/bin/cat",
            &["/etc/passwd"],
            d.tree.path(),
            d.scratch.path(),
        ))
        .expect("run");
    assert!(!out.status.success());
    assert!(
        out.stdout.is_empty(),
        "leaked: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.stderr.contains("Permission denied"), "{}", out.stderr);
}

#[test]
fn tool_cannot_open_a_tcp_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let d = dirs();
    let script = format!("exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected");
    let out = sandbox()
        .run(&command(
            "/bin/bash",
            &["-c", &script],
            d.tree.path(),
            d.scratch.path(),
        ))
        .expect("run");
    assert!(!out.status.success(), "connected from inside the sandbox");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("connected"));
    assert!(listener.accept().is_err(), "the listener saw a connection");
}

#[test]
fn tool_cannot_send_udp() {
    let d = dirs();
    let out = sandbox()
        .run(&command(
            "/bin/bash",
            &["-c", "exec 3<>/dev/udp/127.0.0.1/53 && echo opened"],
            d.tree.path(),
            d.scratch.path(),
        ))
        .expect("run");
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("opened"));
}

#[test]
fn tool_writes_only_to_scratch() {
    let d = dirs();
    let sb = sandbox();
    let tree = d.tree.path();
    let scratch = d.scratch.path();
    let into_tree = sb
        .run(&command(
            "/bin/bash",
            &["-c", "echo x > planted.yaml"],
            tree,
            scratch,
        ))
        .expect("run");
    assert!(!into_tree.status.success());
    assert!(!tree.join("planted.yaml").exists());
    let into_scratch = sb
        .run(&command(
            "/bin/bash",
            &["-c", "echo x > \"$HOME/ok\""],
            tree,
            scratch,
        ))
        .expect("run");
    assert!(
        into_scratch.status.success(),
        "{}",
        into_scratch.failure_reason()
    );
    assert!(scratch.join("ok").exists());
}

#[test]
fn environment_is_scrubbed() {
    let d = dirs();
    let out = sandbox()
        .run(&command(
            "/usr/bin/env",
            &[],
            d.tree.path(),
            d.scratch.path(),
        ))
        .expect("run");
    let env = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = env.lines().filter_map(|l| l.split('=').next()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ["HOME", "LANG", "PATH", "TMPDIR"], "{env}");
    assert!(env.contains(&format!("HOME={}", d.scratch.path().display())));
}

#[test]
fn rlimits_are_applied() {
    let d = dirs();
    let out = sandbox()
        .run(&command(
            "/bin/bash",
            &["-c", "ulimit -n; ulimit -c"],
            d.tree.path(),
            d.scratch.path(),
        ))
        .expect("run");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1024\n0\n");
}

#[test]
fn slow_tool_is_killed_at_the_timeout() {
    let d = dirs();
    let sb = Sandbox::new(SandboxPolicy {
        timeout: Duration::from_millis(300),
        ..SandboxPolicy::default()
    });
    let started = Instant::now();
    let err = sb
        .run(&command(
            "/bin/sleep",
            &["30"],
            d.tree.path(),
            d.scratch.path(),
        ))
        .expect_err("must time out");
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn endless_output_is_cut_off() {
    let d = dirs();
    let sb = Sandbox::new(SandboxPolicy {
        max_stdout: 1 << 20,
        ..SandboxPolicy::default()
    });
    let err = sb
        .run(&command(
            "/usr/bin/yes",
            &[],
            d.tree.path(),
            d.scratch.path(),
        ))
        .expect_err("must be cut");
    assert!(
        matches!(err, Error::OutputTooLarge { limit, .. } if limit == 1 << 20),
        "{err}"
    );
}

#[test]
fn missing_tool_is_a_clear_error() {
    let d = dirs();
    let err = sandbox()
        .run(&command(
            "/nonexistent/kustomize",
            &[],
            d.tree.path(),
            d.scratch.path(),
        ))
        .expect_err("missing");
    assert!(err.to_string().contains("/nonexistent/kustomize"), "{err}");
}

#[test]
fn stdin_reaches_the_tool() {
    let d = dirs();
    let mut cmd = command("/bin/cat", &[], d.tree.path(), d.scratch.path());
    cmd.stdin = Some(b"piped input".to_vec());
    let out = sandbox().run(&cmd).expect("run");
    assert_eq!(out.stdout, b"piped input");
}
