//! HTTPS served by Tessera itself (`server.tls_public_cert` / `tls_private_key`): a client that verifies the
//! certificate against a test CA (curl), reload on SIGHUP and on a file change, a broken renewal that keeps the
//! current certificate, and a key that does not match refused at start and by `validate`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cli::tessera;

/// Runs openssl in `dir`; panics with its output on failure.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA (`ca.crt`) and server certificates `<name>.crt`/`<name>.key` for 127.0.0.1 and localhost, each with
/// its own key and `CN=<name>`.
fn make_certs(dir: &Path, names: &[&str]) {
    let ca = [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "2",
    ];
    openssl(
        dir,
        &[
            &ca[..],
            &[
                "-subj",
                "/CN=Tessera TLS test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    for name in names {
        let (key, csr, crt) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.crt"));
        let subj = format!("/CN={name}");
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                &subj,
                "-keyout",
                &key,
                "-out",
                &csr,
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                &crt,
            ],
        );
    }
}

/// Installs `<name>.crt`/`<name>.key` as the files the server reads.
fn install(dir: &Path, name: &str) {
    std::fs::copy(dir.join(format!("{name}.key")), dir.join("tls.key")).unwrap();
    std::fs::copy(dir.join(format!("{name}.crt")), dir.join("tls.crt")).unwrap();
}

fn write_config(dir: &Path, key: &str) {
    let config = format!(
        "server:\n  address: 127.0.0.1\n  port: 0\n  tls_public_cert: {}\n  tls_private_key: {}\n\
         logging:\n  pretty_stdout: false\nsecurity:\n  password_hash:\n    memory_kib: 256\n",
        dir.join("tls.crt").display(),
        dir.join(key).display()
    );
    std::fs::write(dir.join("config.yaml"), config).unwrap();
}

/// curl's verdict on `https://127.0.0.1:port/healthz` with the test CA: (body, the certificate's subject).
fn fetch(dir: &Path, port: u16) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "-v", "--max-time", "5", "--cacert"])
        .arg(dir.join("ca.crt"))
        .arg(format!("https://127.0.0.1:{port}/healthz"))
        .output()
        .unwrap();
    let verbose = String::from_utf8_lossy(&out.stderr).to_string();
    let subject = verbose
        .lines()
        .find_map(|l| l.split_once("subject: ").map(|(_, s)| s.trim().to_string()))
        .unwrap_or_default();
    assert!(out.status.success(), "curl failed: {verbose}");
    (String::from_utf8_lossy(&out.stdout).to_string(), subject)
}

fn start(dir: &Path) -> (Child, u16) {
    let mut child = tessera(dir)
        .args(["--config", "config.yaml", "serve"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    match crate::cli::listening_port(&mut child) {
        Some((port, _)) => (child, port),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("server did not start");
        }
    }
}

fn signal(child: &Child, name: &str) {
    Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
}

#[test]
fn serves_https_and_reloads_a_renewed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    make_certs(dir, &["first", "second"]);
    install(dir, "first");
    write_config(dir, "tls.key");
    let (mut child, port) = start(dir);

    let (body, subject) = fetch(dir, port);
    assert_eq!(body, "{\"status\":\"ok\"}");
    assert!(subject.contains("CN=first"), "{subject}");
    // A client that does not trust the test CA refuses the certificate; plain HTTP gets no answer.
    let untrusted = Command::new("curl")
        .args(["-sS", "--max-time", "5"])
        .arg(format!("https://127.0.0.1:{port}/healthz"))
        .output()
        .unwrap();
    assert_eq!(untrusted.status.code(), Some(60), "certificate problem");
    let plain = Command::new("curl")
        .args(["-sS", "--max-time", "5"])
        .arg(format!("http://127.0.0.1:{port}/healthz"))
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("ok"));

    // Renewed and signalled: the next connection gets the new certificate.
    install(dir, "second");
    signal(&child, "HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fetch(dir, port).1.contains("CN=second") {
        assert!(Instant::now() < deadline, "SIGHUP did not reload the certificate");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A broken renewal (half-written file) keeps the current certificate, even when signalled.
    std::fs::write(dir.join("tls.crt"), "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    signal(&child, "HUP");
    std::thread::sleep(Duration::from_millis(300));
    assert!(fetch(dir, port).1.contains("CN=second"));
    // Renewed without a signal: the file change is noticed.
    install(dir, "first");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !fetch(dir, port).1.contains("CN=first") {
        assert!(Instant::now() < deadline, "the changed files were not reloaded");
        std::thread::sleep(Duration::from_millis(250));
    }

    signal(&child, "TERM");
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn a_key_that_does_not_match_its_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    make_certs(dir, &["first", "second"]);
    install(dir, "first");
    write_config(dir, "second.key");
    for command in ["validate", "serve"] {
        let out = tessera(dir)
            .args(["--config", "config.yaml", command])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{command}: {stderr}");
        assert!(
            stderr.contains("server.tls_private_key") && stderr.contains("second.key"),
            "{command}: {stderr}"
        );
    }
    // One without the other is no HTTPS: refused, not served in the clear.
    let only_cert = format!("server:\n  tls_public_cert: {}\n", dir.join("tls.crt").display());
    std::fs::write(dir.join("half.yaml"), only_cert).unwrap();
    let out = tessera(dir)
        .args(["--config", "half.yaml", "validate"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("server.tls_private_key") && stderr.contains("needs both"),
        "{stderr}"
    );
    // An unreadable certificate file names its key too.
    std::fs::remove_file(dir.join("tls.crt")).unwrap();
    let out = tessera(dir)
        .args(["--config", "config.yaml", "validate"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("server.tls_public_cert"), "{stderr}");
}
