//! What protects private keys at rest (signing keys, the key of encrypted forms): the key-encryption key
//! (KEK), where it comes from, and how a stored key is opened, upgraded and written.
//!
//! The KEK is, in this order:
//! 1. `tokens.key_encryption_secret` or `tokens.key_encryption_secret_file`, when set;
//! 2. for a SQLite database file, the KEK file beside it (`<database file>.kek`, e.g. `tessera.db.kek`): made
//!    on the first start (32 random bytes in base64, mode 0600, never replaced), read at every later start;
//! 3. none, for PostgreSQL and MariaDB without a secret: keys are stored in the clear, with a warning at start
//!    and in `tessera validate`. (An in-memory SQLite database needs none: nothing outlives the process.)
//!
//! Keys are opened with the KEK and re-written in the current form when they are not in it yet: stored in
//! the clear, in the v1 form, or under the KEK file when a secret has since been configured (the file then
//! opens, never wraps). A key that does not open, or an encrypted key with no KEK, stops the start: new keys
//! are never made over keys that cannot be read.
//!
//! Nothing here logs or returns a secret; messages name the key or file it came from.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::config::{Backend, Config, DatabaseConfig, NO_SECRET_WARNING, TokensConfig};
use crate::crypto::seal::{KeyEncryption, Opened, Row};
use crate::db::{DbConn, DbError};

/// How many random bytes a KEK file holds (before base64).
const FILE_KEY_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum AtRestError {
    /// A configuration key is unusable (`key` names it).
    #[error("{key}: {message}")]
    Config { key: &'static str, message: String },
    /// The KEK file cannot be read, made, or is damaged.
    #[error("key-encryption key file {}: {message}", path.display())]
    File { path: PathBuf, message: String },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The KEK of this process, and a description of where it came from for messages (never the secret).
#[derive(Clone, Debug)]
pub struct Kek {
    encryption: Option<Arc<KeyEncryption>>,
    source: String,
}

impl Kek {
    /// No KEK: keys are stored in the clear (PostgreSQL or MariaDB without a secret, in-memory SQLite).
    pub fn none() -> Self {
        Kek {
            encryption: None,
            source: String::new(),
        }
    }

    /// A KEK from `secret`, described as `source` in messages.
    pub fn new(encryption: KeyEncryption, source: impl Into<String>) -> Self {
        Kek {
            encryption: Some(Arc::new(encryption)),
            source: source.into(),
        }
    }

    pub fn is_set(&self) -> bool {
        self.encryption.is_some()
    }

    /// The stored form of a private key (PKCS#8 DER): encrypted when there is a KEK, else base64.
    pub fn store(&self, row: Row<'_>, der: &[u8]) -> Result<String, String> {
        match &self.encryption {
            Some(enc) => enc.wrap(row, der).ok_or_else(|| "encryption failed".to_string()),
            None => Ok(STANDARD.encode(der)),
        }
    }

    /// The DER of a stored private key, and what to store instead when it is not in the current form (in the
    /// clear while a KEK exists, v1, or under an older KEK). `Err` says why it cannot be read.
    pub fn open(&self, row: Row<'_>, stored: &str) -> Result<(Vec<u8>, Option<String>), String> {
        let Some(enc) = &self.encryption else {
            if crate::crypto::seal::is_wrapped(stored) {
                return Err("is encrypted at rest, but no key-encryption key is available: set \
                            tokens.key_encryption_secret (or _file) to the secret it was stored with"
                    .into());
            }
            return Ok((STANDARD.decode(stored).map_err(|e| e.to_string())?, None));
        };
        let (der, stale) = match enc.open(row, stored) {
            Opened::Current(der) => return Ok((der, None)),
            Opened::Stale(der) => (der, true),
            Opened::Plain => (STANDARD.decode(stored).map_err(|e| e.to_string())?, false),
            Opened::Sealed => {
                return Err(format!(
                    "does not decrypt with {}: it was stored under another key-encryption key, or altered",
                    self.source
                ));
            }
        };
        let rewrapped = enc.wrap(row, &der).ok_or_else(|| "encryption failed".to_string())?;
        tracing::debug!(stale, "private key to be re-written in the current form");
        Ok((der, Some(rewrapped)))
    }
}

/// Works out the KEK for this configuration (making the KEK file on a SQLite file database's first start).
/// `conn` is read to refuse making a new KEK file over keys that are already encrypted.
pub fn resolve(config: &Config, conn: &mut DbConn) -> Result<Kek, AtRestError> {
    let configured = configured_secret(&config.tokens)?;
    let file = kek_file_path(&config.database);
    if let Some((secret, source)) = configured {
        let mut enc = KeyEncryption::new(&secret).ok_or_else(|| AtRestError::Config {
            key: "tokens.key_encryption_secret",
            message: "unusable".into(),
        })?;
        // Keys stored under the KEK file before a secret was configured still open, and move to the secret.
        if let Some(path) = &file
            && let Some(old) = read_kek_file(path)?
        {
            enc = enc.also_opening(&old).ok_or_else(|| AtRestError::File {
                path: path.clone(),
                message: "unusable".into(),
            })?;
        }
        return Ok(Kek::new(enc, source));
    }
    let Some(path) = file else {
        if config.database.resolve().is_ok_and(|(b, _)| b != Backend::Sqlite) {
            tracing::warn!(
                keys = "tokens.key_encryption_secret, tokens.key_encryption_secret_file",
                "{}",
                NO_SECRET_WARNING
            );
        }
        return Ok(Kek::none());
    };
    let secret = match read_kek_file(&path)? {
        Some(secret) => secret,
        None => {
            if let Some(what) = encrypted_key_in(conn)? {
                return Err(AtRestError::File {
                    path,
                    message: format!(
                        "missing, but the database holds encrypted private keys ({what}): restore the file \
                         that was made with this database, or set tokens.key_encryption_secret (or _file) to \
                         the secret they were stored with; no new key is made over them"
                    ),
                });
            }
            let secret = create_kek_file(&path)?;
            tracing::info!(file = %path.display(), "key-encryption key file ready (keep it out of database backups)");
            secret
        }
    };
    let enc = KeyEncryption::new(&secret).ok_or_else(|| AtRestError::File {
        path: path.clone(),
        message: "unusable".into(),
    })?;
    Ok(Kek::new(enc, format!("the key-encryption key file {}", path.display())))
}

/// The configured secret, inline or from its file, and the key that names it.
fn configured_secret(t: &TokensConfig) -> Result<Option<(String, String)>, AtRestError> {
    let (secret, source) = if t.key_encryption_secret_file.is_empty() {
        (
            t.key_encryption_secret.expose().to_string(),
            "tokens.key_encryption_secret".to_string(),
        )
    } else {
        let text = std::fs::read_to_string(&t.key_encryption_secret_file).map_err(|e| AtRestError::Config {
            key: "tokens.key_encryption_secret_file",
            message: format!("cannot read {}: {e}", t.key_encryption_secret_file),
        })?;
        (
            text.trim_end_matches(['\r', '\n']).to_string(),
            format!("tokens.key_encryption_secret_file ({})", t.key_encryption_secret_file),
        )
    };
    if secret.is_empty() {
        return Ok(None);
    }
    if secret.len() < 16 {
        return Err(AtRestError::Config {
            key: "tokens.key_encryption_secret",
            message: "must be at least 16 characters".into(),
        });
    }
    Ok(Some((secret, source)))
}

/// Where the KEK file of a SQLite database file lives (`<file>.kek`); `None` for other backends and for an
/// in-memory database.
pub fn kek_file_path(db: &DatabaseConfig) -> Option<PathBuf> {
    let (backend, target) = db.resolve().ok()?;
    if backend != Backend::Sqlite {
        return None;
    }
    let (path, params) = match target.strip_prefix("file:") {
        Some(uri) => {
            let (path, params) = uri.split_once('?').unwrap_or((uri, ""));
            let path = percent_encoding::percent_decode_str(path)
                .decode_utf8()
                .ok()?
                .into_owned();
            (path, params.to_string())
        }
        None => (target, String::new()),
    };
    if path.is_empty() || path == ":memory:" || params.split('&').any(|p| p == "mode=memory") {
        return None;
    }
    Some(PathBuf::from(format!("{path}.kek")))
}

/// The secret of an existing KEK file; `None` when there is no file.
fn read_kek_file(path: &Path) -> Result<Option<String>, AtRestError> {
    let fail = |message: String| AtRestError::File {
        path: path.to_path_buf(),
        message,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(format!("cannot read: {e}"))),
    };
    let secret = text.trim();
    let damaged = |what: &str| {
        fail(format!(
            "{what}: it must hold {FILE_KEY_BYTES} random bytes in base64, as Tessera wrote it; restore it from \
             its backup (a new one would not open the keys stored under it)"
        ))
    };
    if secret.is_empty() {
        return Err(damaged("is empty"));
    }
    match STANDARD.decode(secret) {
        Ok(bytes) if bytes.len() == FILE_KEY_BYTES => {}
        _ => return Err(damaged("is damaged or truncated")),
    }
    warn_if_shared(path);
    Ok(Some(secret.to_string()))
}

/// Warns when others could read the KEK file, or when another user than the database's owns it (someone
/// who planted a key of their own before the first start, in a directory others can write to).
#[cfg(unix)]
fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(file = %path.display(), "the key-encryption key file is readable by other users: chmod 600 it");
    }
    let database = path.with_extension("");
    if let Ok(db) = std::fs::metadata(&database)
        && db.uid() != meta.uid()
    {
        tracing::warn!(
            file = %path.display(),
            "the key-encryption key file is owned by another user than the database file"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_path: &Path) {}

/// Makes the KEK file, all at once: the key is written to a private temporary file beside it, which is then
/// hard-linked to the final name. A link never replaces a file, so of two first starts racing exactly one
/// key wins, and a reader never sees a half-written file. Returns the key in the file (the loser's too).
fn create_kek_file(path: &Path) -> Result<String, AtRestError> {
    let fail = |message: String| AtRestError::File {
        path: path.to_path_buf(),
        message,
    };
    let mut bytes = [0u8; FILE_KEY_BYTES];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| fail("no random bytes".into()))?;
    let secret = STANDARD.encode(bytes);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
    write_private(&temp, &secret).map_err(|e| fail(format!("cannot write {}: {e}", temp.display())))?;
    let linked = std::fs::hard_link(&temp, path);
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        // A file system without hard links: create the file itself, never over another.
        Err(_) => match write_private(path, &secret) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(fail(format!("cannot create: {e}"))),
        },
    }
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    // Whoever won, everyone uses the key in the file.
    read_kek_file(path)?.ok_or_else(|| fail("vanished just after it was made".into()))
}

/// Creates `path` (never over an existing file), readable by its owner only, holding `secret` and synced.
fn write_private(path: &Path, secret: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(format!("{secret}\n").as_bytes())?;
    file.sync_all()
}

/// The first encrypted private key in the database, named for a message (`None`: none is encrypted).
fn encrypted_key_in(conn: &mut DbConn) -> Result<Option<String>, DbError> {
    if let Some(kid) = crate::db::keys::first_encrypted(conn)? {
        return Ok(Some(format!("signing key {kid}")));
    }
    Ok(crate::db::accounts::form_key_encrypted(conn)?.then(|| "the encrypted-forms key".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(url: &str, flags: &str) -> DatabaseConfig {
        let mut db = DatabaseConfig {
            url: crate::config::Secret::new(url),
            ..Default::default()
        };
        db.sqlite.flags = flags.into();
        db
    }

    #[test]
    fn the_kek_file_sits_beside_a_sqlite_file() {
        let path = |url: &str, flags: &str| kek_file_path(&sqlite(url, flags));
        assert_eq!(
            path("sqlite://data/tessera.db", ""),
            Some(PathBuf::from("data/tessera.db.kek"))
        );
        assert_eq!(
            path("sqlite:///var/lib/t.db", "mode=rwc"),
            Some(PathBuf::from("/var/lib/t.db.kek"))
        );
        assert_eq!(path("sqlite://a b.db", "mode=rwc"), Some(PathBuf::from("a b.db.kek")));
        assert_eq!(path("sqlite://t.db", "mode=memory&cache=shared"), None);
        assert_eq!(path("sqlite://:memory:", ""), None);
        assert_eq!(path("postgres://u@h/db", ""), None);
    }

    #[test]
    fn a_kek_file_is_made_once_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let path = dir.path().join("t.db.kek");
        let made = create_kek_file(&path).unwrap_or_else(|e| unreachable!("{e}"));
        // A second first start reads the first one's key instead of writing its own.
        let again = create_kek_file(&path).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(made, again);
        assert_eq!(read_kek_file(&path).ok().flatten(), Some(made));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777);
            assert_eq!(mode.ok(), Some(0o600));
        }
        let leftovers = std::fs::read_dir(dir.path()).map(|d| d.count()).unwrap_or(0);
        assert_eq!(leftovers, 1, "no temporary file is left behind");
    }

    /// Two first starts at once: every one ends up with the same key, and nothing is left half-written.
    #[test]
    fn racing_first_starts_agree_on_one_key() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let path = dir.path().join("t.db.kek");
        let barrier = std::sync::Barrier::new(8);
        let keys: Vec<String> = std::thread::scope(|s| {
            let racers: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        create_kek_file(&path).unwrap_or_else(|e| unreachable!("{e}"))
                    })
                })
                .collect();
            racers.into_iter().filter_map(|r| r.join().ok()).collect()
        });
        assert_eq!(keys.len(), 8);
        assert!(keys.iter().all(|k| k == &keys[0]), "{} different keys", keys.len());
        let names = std::fs::read_dir(dir.path()).map(|d| d.count()).unwrap_or(0);
        assert_eq!(names, 1);
    }

    #[test]
    fn empty_or_truncated_kek_files_are_errors() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let path = dir.path().join("t.db.kek");
        for (content, expected) in [("", "is empty"), ("\n", "is empty"), ("c2hvcnQ=\n", "truncated")] {
            std::fs::write(&path, content).unwrap_or_else(|e| unreachable!("{e}"));
            let err = read_kek_file(&path).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains(expected) && err.contains("t.db.kek"), "{err}");
        }
    }
}
