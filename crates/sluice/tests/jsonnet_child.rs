//! The Jsonnet evaluator runs as a sandboxed child of the `sluice` binary, so a runaway
//! evaluation is killed at its time limit instead of burning a core in the caller.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sluice_render::{Error, RenderRequest, render};
use sluice_source::SourceSpec;

/// Child processes of this test process that are running the evaluator (zombies excluded).
fn live_evaluators() -> usize {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| {
            let dir = e.path();
            let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
            let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains("__eval-jsonnet")
                && status
                    .lines()
                    .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["PPid:", &me])
                && !status
                    .lines()
                    .any(|l| l.starts_with("State:") && l.contains('Z'))
        })
        .count()
}

#[test]
fn runaway_jsonnet_child_is_killed_at_the_time_limit() {
    let tree = tempfile::tempdir().expect("tree");
    std::fs::write(
        tree.path().join("main.jsonnet"),
        "std.foldl(function(a, b) a + b, std.range(1, 50000000), 0)",
    )
    .expect("write");
    let cache = tempfile::tempdir().expect("cache");
    let mut request =
        RenderRequest::new(SourceSpec::Local(tree.path().to_path_buf()), cache.path());
    request.tools.jsonnet_evaluator = Some(PathBuf::from(env!("CARGO_BIN_EXE_sluice")));
    request.limits.jsonnet_timeout = Duration::from_secs(2);

    let worker = std::thread::spawn(move || {
        let started = Instant::now();
        (render(&request), started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        live_evaluators(),
        1,
        "the evaluation must run in a child process"
    );
    let (result, elapsed) = worker.join().expect("join");
    assert!(
        matches!(result, Err(Error::JsonnetTimeout { .. })),
        "{result:?}"
    );
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        live_evaluators(),
        0,
        "the child must be gone after the timeout"
    );
}

#[test]
fn child_evaluator_cannot_read_outside_the_tree() {
    let tree = tempfile::tempdir().expect("tree");
    // The resolver refuses this import; the sandbox would refuse the read as well.
    std::fs::write(
        tree.path().join("main.jsonnet"),
        "importstr '/etc/hostname'",
    )
    .expect("write");
    let cache = tempfile::tempdir().expect("cache");
    let mut request =
        RenderRequest::new(SourceSpec::Local(tree.path().to_path_buf()), cache.path());
    request.tools.jsonnet_evaluator = Some(PathBuf::from(env!("CARGO_BIN_EXE_sluice")));
    let err = render(&request).expect_err("refused");
    assert!(
        err.to_string()
            .contains("absolute import paths are not allowed"),
        "{err}"
    );
}

#[test]
fn child_evaluator_memory_is_capped() {
    let tree = tempfile::tempdir().expect("tree");
    std::fs::write(
        tree.path().join("main.jsonnet"),
        "std.length(std.makeArray(500000000, function(i) i))",
    )
    .expect("write");
    let cache = tempfile::tempdir().expect("cache");
    let mut request =
        RenderRequest::new(SourceSpec::Local(tree.path().to_path_buf()), cache.path());
    request.tools.jsonnet_evaluator = Some(PathBuf::from(env!("CARGO_BIN_EXE_sluice")));
    request.sandbox.limits.address_space = 1 << 30;
    let err = render(&request).expect_err("out of memory");
    assert!(
        err.to_string()
            .contains("ran out of memory (--tool-memory-mib)"),
        "{err}"
    );
}
