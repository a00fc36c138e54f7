//! Git over SSH against a real `sshd` on loopback, with keys and host keys made by the test.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use sluice_source::{Credentials, Error, FetchOptions, Secret, SourceSpec, fetch};

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn keygen(path: &Path) {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path));
}

struct Sshd {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sshd {
    fn start() -> Self {
        let sshd = Path::new("/usr/sbin/sshd");
        assert!(
            sshd.exists(),
            "openssh-server is required (scripts/test installs it)"
        );
        let dir = tempfile::tempdir().expect("dir");
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("client_key"));
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys"))
            .expect("authorized_keys");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        std::fs::write(
            d.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nAuthorizedKeysFile {keys}\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nPidFile {pid}\n",
                host = d.join("host_key").display(),
                keys = d.join("authorized_keys").display(),
                pid = d.join("sshd.pid").display(),
            ),
        )
        .expect("config");
        std::fs::create_dir_all("/run/sshd").expect("privilege separation dir");
        let child = Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stderr(std::fs::File::create(d.join("sshd.log")).expect("log"))
            .spawn()
            .expect("sshd");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "sshd did not start: {}",
                std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Sshd { child, port, dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A known_hosts file that trusts this server's host key.
    fn known_hosts(&self) -> PathBuf {
        let key = std::fs::read_to_string(self.path("host_key.pub")).expect("host key");
        let file = self.path("known_hosts");
        std::fs::write(&file, format!("[127.0.0.1]:{} {}", self.port, key)).expect("known_hosts");
        file
    }
}

fn repo(dir: &Path) -> String {
    std::fs::write(dir.join("cm.yaml"), "kind: ConfigMap\n").expect("write");
    sluice_testkit::commit_all(dir, "one")
}

fn user() -> String {
    run(Command::new("id").arg("-un"))
}

#[test]
fn git_over_ssh_with_a_key_and_known_hosts() {
    let sshd = Sshd::start();
    let work = tempfile::tempdir().expect("repo");
    let sha = repo(work.path());
    let url = format!(
        "ssh://{}@127.0.0.1:{}{}",
        user(),
        sshd.port,
        work.path().display()
    );
    let key = std::fs::read_to_string(sshd.path("client_key")).expect("key");
    let cache = tempfile::tempdir().expect("cache");
    let mut opts = FetchOptions::new(cache.path());
    opts.credentials = Credentials::SshKey {
        key: Secret::new(key.clone()),
        known_hosts: Some(sshd.known_hosts()),
    };
    let spec = SourceSpec::Git {
        url,
        reference: Some("main".into()),
    };
    let fetched = fetch(&spec, &opts).unwrap_or_else(|e| {
        panic!(
            "{e}\nsshd log:\n{}",
            std::fs::read_to_string(sshd.path("sshd.log")).unwrap_or_default()
        )
    });
    assert_eq!(fetched.revision, format!("main@sha1:{sha}"));
    assert_eq!(
        std::fs::read(fetched.root.join("cm.yaml")).expect("read"),
        b"kind: ConfigMap\n"
    );
}

#[test]
fn unknown_host_key_is_refused() {
    let sshd = Sshd::start();
    let work = tempfile::tempdir().expect("repo");
    repo(work.path());
    let url = format!(
        "ssh://{}@127.0.0.1:{}{}",
        user(),
        sshd.port,
        work.path().display()
    );
    let key = std::fs::read_to_string(sshd.path("client_key")).expect("key");
    // A known_hosts that trusts some other key for this address.
    keygen(&sshd.path("other_key"));
    let other = std::fs::read_to_string(sshd.path("other_key.pub")).expect("other");
    let known_hosts = sshd.path("wrong_known_hosts");
    std::fs::write(&known_hosts, format!("[127.0.0.1]:{} {}", sshd.port, other)).expect("write");
    let cache = tempfile::tempdir().expect("cache");
    let mut opts = FetchOptions::new(cache.path());
    opts.credentials = Credentials::SshKey {
        key: Secret::new(key.clone()),
        known_hosts: Some(known_hosts),
    };
    let err = fetch(
        &SourceSpec::Git {
            url,
            reference: Some("main".into()),
        },
        &opts,
    )
    .expect_err("host key");
    let text = err.to_string();
    assert!(matches!(err, Error::Git { .. }), "{text}");
    assert!(
        text.contains("Host key verification failed")
            || text.contains("REMOTE HOST IDENTIFICATION"),
        "{text}"
    );
    assert!(
        !text.contains(key.lines().nth(1).unwrap_or("-----")),
        "key material leaked: {text}"
    );
}

#[test]
fn missing_key_is_refused() {
    let sshd = Sshd::start();
    let work = tempfile::tempdir().expect("repo");
    repo(work.path());
    let url = format!(
        "ssh://{}@127.0.0.1:{}{}",
        user(),
        sshd.port,
        work.path().display()
    );
    let other = sshd.path("stranger");
    keygen(&other);
    let cache = tempfile::tempdir().expect("cache");
    let mut opts = FetchOptions::new(cache.path());
    opts.credentials = Credentials::SshKey {
        key: Secret::new(std::fs::read_to_string(&other).expect("key")),
        known_hosts: Some(sshd.known_hosts()),
    };
    let err = fetch(
        &SourceSpec::Git {
            url,
            reference: Some("main".into()),
        },
        &opts,
    )
    .expect_err("not authorized");
    assert!(err.to_string().contains("Permission denied"), "{err}");
}
