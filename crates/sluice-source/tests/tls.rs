//! Artifacts over real TLS: a rustls server on loopback with a certificate made by the test.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use sluice_source::{Digest, Error, FetchOptions, SourceSpec, fetch};

fn tarball() -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    let data = b"kind: ConfigMap\n";
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_path("cm.yaml").expect("path");
    header.set_cksum();
    builder.append(&header, &data[..]).expect("append");
    builder.into_inner().expect("tar").finish().expect("gz")
}

/// Serves `body` over HTTPS on 127.0.0.1; returns the base URL and the CA certificate (PEM).
fn https_server(body: Vec<u8>) -> (String, String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).expect("cert");
    let pem = certified.cert.pem();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![certified.cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into()),
        )
        .expect("server config");
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("https://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let config = Arc::clone(&config);
            let body = body.clone();
            std::thread::spawn(move || {
                let Ok(conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut tls = rustls::StreamOwned::new(conn, stream);
                let mut reader = BufReader::new(&mut tls);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                let _ = write!(
                    tls,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tls.write_all(&body);
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    (base, pem)
}

#[test]
fn https_artifact_is_fetched_with_a_private_ca_and_refused_without_it() {
    let body = tarball();
    let digest = Digest::from_sha256(&Sha256::digest(&body));
    let (base, ca_pem) = https_server(body);
    let spec = SourceSpec::Artifact {
        url: format!("{base}/a.tar.gz"),
        digest,
        revision: None,
    };

    let cache = tempfile::tempdir().expect("cache");
    let err = fetch(&spec, &FetchOptions::new(cache.path())).expect_err("untrusted certificate");
    assert!(matches!(err, Error::Http { .. }), "{err}");

    let ca = cache.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).expect("write ca");
    let mut opts = FetchOptions::new(cache.path());
    opts.ca_file = Some(ca);
    let fetched = fetch(&spec, &opts).expect("trusted with --ca-file");
    assert_eq!(
        std::fs::read(fetched.root.join("cm.yaml")).expect("read"),
        b"kind: ConfigMap\n"
    );
}
