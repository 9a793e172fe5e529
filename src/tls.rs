//! HTTPS served by Tessera itself (`server.tls_private_key` and `server.tls_public_cert`, PEM files as in
//! Stoke), on rustls with the aws-lc-rs provider. The certificate is re-read on SIGHUP and when either file
//! changes (checked every few seconds), so a renewed certificate needs no restart; a renewal that does not load
//! (a half-written file, a key that does not match) keeps the current certificate and is logged.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// How often the files are looked at for a change.
pub const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// A file that does not load: the config key naming it, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError {
    pub key: &'static str,
    pub message: String,
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

const CERT_KEY: &str = "server.tls_public_cert";
const KEY_KEY: &str = "server.tls_private_key";

/// Reads the certificate chain and its private key, and checks that they belong together.
pub fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let fail = |k: &'static str, message: String| TlsError { key: k, message };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| fail(CERT_KEY, format!("{}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(fail(CERT_KEY, format!("{}: no PEM certificate in it", cert.display())));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| fail(KEY_KEY, format!("{}: {e}", key.display())))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    CertifiedKey::from_der(chain, private, &provider).map_err(|e| {
        fail(
            KEY_KEY,
            format!("{}: {e} (is it the key of {}?)", key.display(), cert.display()),
        )
    })
}

/// `server.tls_public_cert` and `server.tls_private_key` go together, and load (`validate`).
pub fn check_pair(cert: &str, key: &str) -> Result<(), TlsError> {
    match configured(cert, key)? {
        true => load(Path::new(cert), Path::new(key)).map(drop),
        false => Ok(()),
    }
}

/// Whether HTTPS is configured: both files named (true), neither (false), or only one (an error).
pub fn configured(cert: &str, key: &str) -> Result<bool, TlsError> {
    match (cert.is_empty(), key.is_empty()) {
        (true, true) => Ok(false),
        (false, true) => Err(TlsError {
            key: KEY_KEY,
            message: "empty while server.tls_public_cert is set: HTTPS needs both".into(),
        }),
        (true, false) => Err(TlsError {
            key: CERT_KEY,
            message: "empty while server.tls_private_key is set: HTTPS needs both".into(),
        }),
        (false, false) => Ok(true),
    }
}

/// The server's certificate, replaced in place by [`Certificate::reload`].
#[derive(Debug)]
pub struct Certificate {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<(Arc<CertifiedKey>, Option<SystemTime>)>,
}

impl Certificate {
    pub fn open(cert: &Path, key: &Path) -> Result<Certificate, TlsError> {
        let loaded = load(cert, key)?;
        Ok(Certificate {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new((Arc::new(loaded), modified(cert, key))),
        })
    }

    /// Re-reads the files; on failure the current certificate stays. True when a new one was installed.
    pub fn reload(&self) -> bool {
        let stamp = modified(&self.cert, &self.key);
        match load(&self.cert, &self.key) {
            Ok(loaded) => {
                let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
                *current = (Arc::new(loaded), stamp);
                tracing::info!(cert = %self.cert.display(), "TLS certificate loaded");
                true
            }
            Err(e) => {
                tracing::warn!("TLS certificate not reloaded, the current one stays: {e}");
                false
            }
        }
    }

    /// Reloads when either file changed since the last load.
    pub fn reload_if_changed(&self) -> bool {
        let stamp = modified(&self.cert, &self.key);
        let last = self.current.read().unwrap_or_else(|p| p.into_inner()).1;
        stamp != last && self.reload()
    }

    /// The rustls configuration serving this certificate (HTTP/1.1; TLS 1.2 and 1.3).
    pub fn server_config(self: &Arc<Self>) -> Result<rustls::ServerConfig, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|p| p.into_inner()).0.clone())
    }
}

/// The later modification time of the two files (`None` when one cannot be read).
fn modified(cert: &Path, key: &Path) -> Option<SystemTime> {
    let time = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some(time(cert)?.max(time(key)?))
}
