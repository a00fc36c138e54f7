//! Running the real `sluice server` / `sluice repo-server` binaries on loopback with real
//! certificates, and talking to them over HTTPS with a rustls client.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use serde_json::Value;

pub fn sluice_bin() -> &'static str {
    env!("CARGO_BIN_EXE_sluice")
}

/// A private CA with a server certificate for localhost and a client certificate.
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).expect("write");
    path.to_path_buf()
}

/// Makes a CA and certificates under `dir` (file names prefixed with `prefix`).
pub fn pki(dir: &Path, prefix: &str) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{prefix} test CA"));
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("ca");
    let server_key = KeyPair::generate().expect("key");
    let mut server_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("params");
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server = server_params
        .signed_by(&server_key, &ca)
        .expect("server cert");
    let client_key = KeyPair::generate().expect("key");
    let mut client_params = CertificateParams::new(vec!["sluice-server".to_owned()]).expect("p");
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client = client_params
        .signed_by(&client_key, &ca)
        .expect("client cert");
    Pki {
        ca: write(&dir.join(format!("{prefix}-ca.pem")), &ca.pem()),
        server_cert: write(&dir.join(format!("{prefix}-server.pem")), &server.pem()),
        server_key: write(
            &dir.join(format!("{prefix}-server-key.pem")),
            &server_key.serialize_pem(),
        ),
        client_cert: write(&dir.join(format!("{prefix}-client.pem")), &client.pem()),
        client_key: write(
            &dir.join(format!("{prefix}-client-key.pem")),
            &client_key.serialize_pem(),
        ),
    }
}

/// A rustls HTTPS client trusting `ca`, optionally presenting a client certificate.
pub fn agent(ca: Option<&Path>, client: Option<(&Path, &Path)>) -> ureq::Agent {
    use ureq::tls::{ClientCert, PemItem, RootCerts, TlsConfig};
    let certs = |path: &Path| -> Vec<ureq::tls::Certificate<'static>> {
        ureq::tls::parse_pem(&std::fs::read(path).expect("pem"))
            .filter_map(|i| match i {
                Ok(PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect()
    };
    let mut tls = TlsConfig::builder();
    if let Some(ca) = ca {
        tls = tls.root_certs(RootCerts::Specific(Arc::new(certs(ca))));
    }
    if let Some((cert, key)) = client {
        let key = ureq::tls::parse_pem(&std::fs::read(key).expect("key"))
            .find_map(|i| match i {
                Ok(PemItem::PrivateKey(k)) => Some(k),
                _ => None,
            })
            .expect("private key");
        tls = tls.client_cert(Some(ClientCert::new_with_certs(&certs(cert), key)));
    }
    ureq::Agent::config_builder()
        .tls_config(tls.build())
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// A running sluice process whose stderr (JSON logs) is captured.
pub struct Process {
    child: Child,
    pub addr: SocketAddr,
    logs: Arc<Mutex<String>>,
}

impl Process {
    /// Starts `sluice ARGS --listen 127.0.0.1:0 --log-format json` and waits for `ready`.
    pub fn start(args: &[&str], ready: &str) -> Self {
        Self::start_env(args, &[], ready)
    }

    /// As [`Process::start`], with extra environment variables.
    pub fn start_env(args: &[&str], env: &[(&str, &str)], ready: &str) -> Self {
        let mut child = Command::new(sluice_bin())
            .args(args)
            .envs(env.iter().copied())
            .env_remove("KUBERNETES_SERVICE_HOST")
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sluice");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&logs);
        let ready = ready.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && v["message"].as_str().is_some_and(|m| m.contains(&ready))
                    && let Some(addr) = v["address"].as_str()
                {
                    let _ = tx.send(addr.to_owned());
                }
                let mut all = sink.lock().expect("logs");
                all.push_str(&line);
                all.push('\n');
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => addr.parse().expect("address"),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(200));
                panic!("sluice did not start:\n{}", logs.lock().expect("logs"));
            }
        };
        Self { child, addr, logs }
    }

    /// Everything logged so far.
    pub fn logs(&self) -> String {
        // The reader thread may lag behind the last response by a moment.
        std::thread::sleep(Duration::from_millis(100));
        self.logs.lock().expect("logs").clone()
    }

    /// Whether a JSON log line has `security` and `CWE` and contains `text`.
    pub fn logged(&self, security: u64, cwe: Option<u64>, text: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let found = self.logs().lines().any(|l| {
                serde_json::from_str::<Value>(l).is_ok_and(|v| {
                    v["security"] == security
                        && cwe.is_none_or(|c| v["CWE"] == c)
                        && l.contains(text)
                })
            });
            if found || Instant::now() > deadline {
                return found;
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `sluice repo-server` with mutual TLS from `pki`, caching in `cache`, with `sources`
/// as its stand-in sources if given.
pub fn repo_server(pki: &Pki, sources: Option<&Path>, cache: &Path) -> Process {
    let mut args = vec![
        "repo-server",
        "--tls-cert",
        pki.server_cert.to_str().expect("utf-8"),
        "--tls-key",
        pki.server_key.to_str().expect("utf-8"),
        "--client-ca",
        pki.ca.to_str().expect("utf-8"),
        "--cache-dir",
        cache.to_str().expect("utf-8"),
    ];
    if let Some(sources) = sources {
        args.extend_from_slice(&["--sources", sources.to_str().expect("utf-8")]);
    }
    Process::start(&args, "sluice repo-server listening")
}

/// A response: status and JSON body (Null when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

/// The API server under test.
pub struct Api {
    pub process: Process,
    /// The CA that signed the server's certificate.
    pub ca: PathBuf,
    pub agent: ureq::Agent,
    pub base: String,
    pub dir: PathBuf,
}

impl Api {
    /// Starts `sluice server --local dir` over TLS with `pki`'s server certificate.
    pub fn start(dir: &Path, pki: &Pki, extra: &[&str]) -> Self {
        let mode = ["--local", dir.to_str().expect("utf-8")];
        Self::launch(&mode, &[], pki, extra, dir)
    }

    /// Starts `sluice server` in cluster mode against the API server in `kubeconfig`.
    pub fn start_cluster(kubeconfig: &Path, pki: &Pki, extra: &[&str]) -> Self {
        let env = [("KUBECONFIG", kubeconfig.to_str().expect("utf-8"))];
        Self::launch(
            &["--namespace", "sluice-system"],
            &env,
            pki,
            extra,
            Path::new(""),
        )
    }

    fn launch(mode: &[&str], env: &[(&str, &str)], pki: &Pki, extra: &[&str], dir: &Path) -> Self {
        let mut args = vec!["server"];
        args.extend_from_slice(mode);
        args.extend_from_slice(&[
            "--bcrypt-cost",
            "4",
            "--tls-cert",
            pki.server_cert.to_str().expect("utf-8"),
            "--tls-key",
            pki.server_key.to_str().expect("utf-8"),
        ]);
        args.extend_from_slice(extra);
        let process = Process::start_env(&args, env, "sluice server listening");
        let base = format!("https://localhost:{}", process.addr.port());
        Self {
            process,
            agent: agent(Some(&pki.ca), None),
            ca: pki.ca.clone(),
            base,
            dir: dir.to_path_buf(),
        }
    }

    /// Sends a request with optional bearer token, extra headers and body.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        if !body.is_empty() {
            request = request.header("Content-Type", "application/json");
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let request = request.body(body.to_vec()).expect("request");
        let request = self
            .agent
            .configure_request(request)
            .allow_non_standard_methods(true)
            .build();
        let mut response = self.agent.run(request).expect("HTTP exchange");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, body, text }
    }

    /// Sends only a request head over TLS and reads the answer: for limits that must be
    /// enforced before the body is read (a client still writing a refused body would see its
    /// connection reset instead of the answer).
    pub fn head_only(&self, ca: &Path, head: &str) -> String {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        use std::io::{Read, Write};
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).expect("ca") {
            roots.add(cert.expect("cert")).expect("add");
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let conn =
            rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().expect("name"))
                .expect("tls");
        let sock = std::net::TcpStream::connect(self.process.addr).expect("connect");
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut tls = rustls::StreamOwned::new(conn, sock);
        tls.write_all(head.as_bytes()).expect("write head");
        tls.flush().expect("flush");
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        // Read until the server closes or the JSON body is complete.
        loop {
            match tls.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&answer);
                    if let Some((_, body)) = text.split_once("\r\n\r\n")
                        && serde_json::from_str::<Value>(body).is_ok()
                    {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        String::from_utf8_lossy(&answer).into_owned()
    }

    pub fn get(&self, path: &str, token: &str) -> Reply {
        self.send("GET", path, Some(token), &[], b"")
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        self.send("POST", path, token, &[], body.to_string().as_bytes())
    }

    /// Logs in; panics unless it succeeds.
    pub fn login(&self, username: &str, password: &str) -> String {
        let r = self.post(
            "/api/v1/session",
            None,
            &serde_json::json!({"username": username, "password": password}),
        );
        assert_eq!(r.status, 200, "login {username}: {}", r.text);
        r.body["token"].as_str().expect("token").to_owned()
    }

    /// The initial admin password.
    pub fn initial_password(&self) -> String {
        std::fs::read_to_string(self.dir.join("initial-admin-password"))
            .expect("initial-admin-password")
            .trim()
            .to_owned()
    }

    /// A session token of `admin`.
    pub fn admin(&self) -> String {
        self.login("admin", &self.initial_password())
    }

    /// An account's current generation, from the state file.
    pub fn generation(&self, account: &str) -> u64 {
        let state: Value = serde_json::from_slice(
            &std::fs::read(self.dir.join("sluice-server-state.json")).expect("state"),
        )
        .expect("state json");
        state["accounts"][account]["generation"]
            .as_u64()
            .expect("generation")
    }

    /// The server's signing key from its state file (to forge tokens the way an attacker who
    /// guessed nothing cannot, e.g. already-expired ones).
    pub fn signing_key(&self) -> Vec<u8> {
        let state: Value = serde_json::from_slice(
            &std::fs::read(self.dir.join("sluice-server-state.json")).expect("state"),
        )
        .expect("state json");
        hex::decode(state["signingKey"].as_str().expect("key")).expect("hex")
    }
}

/// Writes the fixture: Projects, StageSets, Flux sources and a stand-in source tree.
pub fn fixture(dir: &Path) {
    std::fs::create_dir_all(dir).expect("dir");
    std::fs::write(
        dir.join("projects.yaml"),
        r#"apiVersion: sluice.dev/v1alpha1
kind: Project
metadata: {name: shop}
spec:
  sourceUrls: ["https://github.com/acme/*"]
  destinationNamespaces: ["shop", "shop-*"]
  roles:
    - name: ci
      policies:
        - p, proj:shop:ci, stagesets, reconcile, shop/*, allow
        - p, proj:shop:ci, stagesets, get, shop/*, allow
      groups: [shop-ci]
    - name: sneaky
      policies:
        - p, proj:shop:sneaky, stagesets, get, *, allow
---
apiVersion: sluice.dev/v1alpha1
kind: Project
metadata: {name: bank}
spec:
  sourceUrls: ["*"]
  destinationNamespaces: ["bank"]
"#,
    )
    .expect("write");
    let mut stagesets = String::new();
    for (ns, name, project) in [
        ("shop", "web", "shop"),
        ("shop", "api", "shop"),
        ("shop-prod", "web", "shop"),
        ("bank", "ledger", "bank"),
    ] {
        stagesets.push_str(&format!(
            r#"---
apiVersion: sluice.dev/v1alpha1
kind: StageSet
metadata: {{name: {name}, namespace: {ns}}}
spec:
  project: {project}
  serviceAccountName: deployer
  targetNamespace: {ns}
  stages:
    - name: app
      sourceRef: {{kind: GitRepository, name: app, namespace: flux-system}}
      engine: plain
    - name: extra
      source:
        git: {{url: "https://ci-bot:planted-url-token@127.0.0.1:1/acme/extra.git", ref: main}}
"#
        ));
    }
    std::fs::write(dir.join("stagesets.yaml"), stagesets).expect("write");
    let sources = dir.join("sources");
    std::fs::create_dir_all(&sources).expect("dir");
    std::fs::write(
        sources.join("app.yaml"),
        r#"apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: app, namespace: flux-system}
spec:
  url: https://github.com/acme/app.git
  ref: {branch: main}
"#,
    )
    .expect("write");
    let tree = sources.join("gitrepository/flux-system/app");
    std::fs::create_dir_all(&tree).expect("dir");
    std::fs::write(
        tree.join("app.yaml"),
        format!(
            r#"apiVersion: v1
kind: ConfigMap
metadata: {{name: settings}}
data: {{color: blue}}
---
apiVersion: v1
kind: Secret
metadata:
  name: db
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '{{"stringData":{{"password":"{PLANTED}"}}}}'
type: Opaque
stringData: {{password: {PLANTED}}}
data: {{token: {PLANTED_B64}}}
"#
        ),
    )
    .expect("write");
    let live = dir.join("live");
    std::fs::create_dir_all(&live).expect("dir");
    std::fs::write(
        live.join("secret.yaml"),
        format!(
            r#"apiVersion: v1
kind: Secret
metadata: {{name: db, namespace: shop}}
type: Opaque
data: {{token: {LIVE_B64}}}
"#
        ),
    )
    .expect("write");
}

/// A secret value planted in the fixture; it must never come back.
pub const PLANTED: &str = "planted-secret-value-7f3a";
/// base64 of "planted-binary-value-91c2".
pub const PLANTED_B64: &str = "cGxhbnRlZC1iaW5hcnktdmFsdWUtOTFjMg==";
/// base64 of "live-secret-value-0d1e".
pub const LIVE_B64: &str = "bGl2ZS1zZWNyZXQtdmFsdWUtMGQxZQ==";
