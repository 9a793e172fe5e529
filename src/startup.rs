//! Building the application: database, migrations, dbinit, bootstrap, then the HTTP server on a bound
//! listener (port 0 works, so tests get a free port).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::crypto::keys::Alg;
use crate::crypto::password::Hasher;
use crate::db::{Db, DbError, migrations};
use crate::routes;
use crate::services::AppState;
use crate::services::at_rest::{self, Kek};
use crate::services::keyring::{KeyRing, RingSettings};
use crate::services::passwords::Passwords;
use crate::services::tokens::TokenSettings;
use crate::services::{bootstrap, dbinit, maintenance, stoke_import};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("database ({key}): {source}")]
    Database { key: &'static str, source: DbError },
    #[error("dbinit {0}")]
    DbInit(#[from] dbinit::DbInitError),
    #[error("{0}")]
    Bootstrap(#[from] bootstrap::BootstrapError),
    #[error("{0}")]
    Config(String),
    #[error("signing keys: {0}")]
    Keys(#[from] crate::services::keyring::RingError),
    #[error("keys at rest: {0}")]
    AtRest(#[from] crate::services::at_rest::AtRestError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("{0}")]
    Tls(String),
    #[error("import-stoke: {0}")]
    Import(#[from] stoke_import::ImportError),
}

/// What start-up prepared, for `serve` and for `migrate`.
pub struct Prepared {
    pub db: Db,
    pub hasher: Hasher,
    pub keys: KeyRing,
    /// The key-encryption key of private keys at rest.
    pub kek: Kek,
    /// The superuser password when `sadmin` was (re)created; shown once.
    pub superuser_password: Option<String>,
}

/// Connects, migrates, applies dbinit files (`--dbinit`, `users.user_init_file`, `users.user_init_dir`), and
/// makes sure a superuser exists. Blocking; call it from a blocking context.
pub fn prepare(config: &Config, dbinit_file: Option<&Path>, clock: &dyn Clock) -> Result<Prepared, StartupError> {
    let db_key = if config.database.url.is_empty() {
        "database.type"
    } else {
        "database.url"
    };
    let db = Db::connect(&config.database).map_err(|source| StartupError::Database { key: db_key, source })?;
    let hasher = Hasher::new(&config.security.password_hash).map_err(|e| StartupError::Config(e.to_string()))?;
    let mut conn = db
        .get()
        .map_err(|source| StartupError::Database { key: db_key, source })?;
    let superuser_password = migrations::exclusively(&mut conn, |conn| {
        let applied = migrations::run(conn).map_err(|source| StartupError::Database { key: db_key, source })?;
        if applied > 0 {
            tracing::info!(applied, backend = db.backend().name(), "database migrated");
        }
        for file in init_files(config, dbinit_file) {
            let outcome = dbinit::apply_file(conn, &file, clock.now())?;
            tracing::info!(file = %file.display(), ?outcome, "dbinit");
        }
        if config.users.create_stoke_claims {
            bootstrap::ensure_stoke_claims(conn, clock.now())?;
        }
        let names = bootstrap::Names::for_config(config.users.create_stoke_claims);
        Ok::<_, StartupError>(bootstrap::ensure_superuser(conn, &hasher, clock.now(), names)?)
    })?;
    let kek = at_rest::resolve(config, &mut conn)?;
    crate::services::accounts::forms::protect_stored(&mut conn, &kek)
        .map_err(|e| StartupError::Config(e.to_string()))?;
    drop(conn);
    let keys = KeyRing::load(ring_settings(config, kek.clone())?, db.clone(), clock.now())?;
    Ok(Prepared {
        db,
        hasher,
        keys,
        kek,
        superuser_password,
    })
}

/// `tessera import-stoke`: reads the Stoke database `from`, plans the import against the configured database and,
/// unless `opts.dry_run`, migrates that database, makes sure Tessera's own key ring has a key (so Stoke's
/// verification-only keys are never the newest of the ring, which decides rotation), and writes the import in
/// one transaction. A refused import writes nothing, migrations included, when the problems can be seen before
/// migrating. Blocking.
pub fn import_stoke(
    config: &Config,
    from: &str,
    opts: &stoke_import::Options,
    clock: &dyn Clock,
) -> Result<stoke_import::Plan, StartupError> {
    let dump = stoke_import::read_source(from)?;
    if opts.dry_run && sqlite_file_missing(config) {
        // Connecting would create the file: a dry run plans against nothing instead.
        return Ok(stoke_import::plan_fresh(&dump, opts, clock.now())?);
    }
    let db = Db::connect(&config.database).map_err(|source| StartupError::Database {
        key: "database.url",
        source,
    })?;
    let mut conn = db.get()?;
    if crate::db::stoke::holds_stoke_tables(&mut conn)? {
        return Err(StartupError::Config(
            "the configured database holds Stoke's tables: import-stoke writes into a Tessera database; point \
             database.url at a new, empty database and pass Stoke's as --from"
                .into(),
        ));
    }
    let migrated = crate::db::stoke::table_exists(&mut conn, "signing_keys")?;
    if !migrated {
        // Nothing to compare with: see the problems before creating anything.
        let plan = stoke_import::plan_fresh(&dump, opts, clock.now())?;
        if opts.dry_run {
            return Ok(plan);
        }
    }
    if !opts.dry_run {
        migrations::exclusively(&mut conn, migrations::run)?;
        let kek = at_rest::resolve(config, &mut conn)?;
        KeyRing::load(ring_settings(config, kek)?, db.clone(), clock.now())?;
    }
    Ok(stoke_import::import(&mut conn, &dump, opts, clock.now())?)
}

/// Whether the configured database is a SQLite file that does not exist yet.
fn sqlite_file_missing(config: &Config) -> bool {
    match config.database.resolve() {
        Ok((crate::config::Backend::Sqlite, url)) if !url.contains("mode=memory") => {
            let path = url.strip_prefix("file:").unwrap_or(&url);
            let path = path.split('?').next().unwrap_or(path);
            let path = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
            !Path::new(path.as_ref()).exists()
        }
        _ => false,
    }
}

fn ring_settings(config: &Config, kek: Kek) -> Result<RingSettings, StartupError> {
    let t = &config.tokens;
    let name = t.jws_algorithm().map_err(StartupError::Config)?;
    let alg = Alg::parse(name).ok_or_else(|| StartupError::Config(format!("tokens.algorithm: {name} unsupported")))?;
    let names = t
        .signing_algorithms()
        .map_err(|e| StartupError::Config(format!("tokens.algorithms: {e}")))?;
    let extra = names
        .iter()
        .filter_map(|n| Alg::parse(n))
        .filter(|a| *a != alg)
        .collect();
    Ok(RingSettings {
        alg,
        extra,
        rsa_bits: t.rsa_key_bits,
        key_duration: t.key_duration.as_secs() as i64,
        token_duration: t.token_duration.as_secs() as i64,
        persist: t.persist_keys,
        kek,
    })
}

/// The certificate of `server.tls_public_cert` and `server.tls_private_key`, when either is set.
fn tls_certificate(config: &Config) -> Result<Option<Arc<crate::tls::Certificate>>, StartupError> {
    let s = &config.server;
    let tls_error = |e: crate::tls::TlsError| StartupError::Tls(e.to_string());
    if !crate::tls::configured(&s.tls_public_cert, &s.tls_private_key).map_err(tls_error)? {
        return Ok(None);
    }
    let certificate = crate::tls::Certificate::open(Path::new(&s.tls_public_cert), Path::new(&s.tls_private_key))
        .map_err(tls_error)?;
    Ok(Some(Arc::new(certificate)))
}

/// Reloads the certificate when its files change (a renewal by certbot, a mounted secret updated).
fn watch_certificate(certificate: Arc<crate::tls::Certificate>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(crate::tls::WATCH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let c = certificate.clone();
            let _ = tokio::task::spawn_blocking(move || c.reload_if_changed()).await;
        }
    });
}

/// The dbinit files to apply, in order: `--dbinit` (or `users.user_init_file`), then `users.user_init_dir`.
pub fn init_files(config: &Config, cli: Option<&Path>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    match cli {
        Some(path) => files.push(path.to_path_buf()),
        None if !config.users.user_init_file.is_empty() => files.push(PathBuf::from(&config.users.user_init_file)),
        None => {}
    }
    if !config.users.user_init_dir.is_empty() {
        match crate::config::yaml_files_in(Path::new(&config.users.user_init_dir)) {
            Ok(found) => files.extend(found),
            Err(message) => tracing::warn!(key = "users.user_init_dir", "{message}"),
        }
    }
    files
}

/// Reads (or, on the first replica, creates) the key of encrypted login/register bodies.
async fn form_key(db: Db, now: i64, kek: Kek) -> Result<crate::services::accounts::FormKey, StartupError> {
    tokio::task::spawn_blocking(move || {
        db.write_blocking(move |c| crate::services::accounts::FormKey::load_or_create(c, now, &kek))
            .map_err(|e| StartupError::Config(e.to_string()))
    })
    .await
    .map_err(|e| StartupError::Config(format!("start-up task failed: {e}")))?
}

/// A built, listening server.
pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    /// The certificate when serving HTTPS (`server.tls_*`), for a reload on SIGHUP.
    tls: Option<Arc<crate::tls::Certificate>>,
    /// The superuser password when start-up created `sadmin`.
    pub superuser_password: Option<String>,
}

impl Application {
    /// Prepares the database and binds `server.address:server.port`.
    pub async fn build(config: Config, dbinit_file: Option<PathBuf>) -> Result<Self, StartupError> {
        Self::build_with_clock(config, dbinit_file, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(
        config: Config,
        dbinit_file: Option<PathBuf>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        let config = Arc::new(config);
        let prepared = {
            let (config, clock) = (config.clone(), clock.clone());
            tokio::task::spawn_blocking(move || prepare(&config, dbinit_file.as_deref(), clock.as_ref()))
                .await
                .map_err(|e| StartupError::Config(format!("start-up task failed: {e}")))??
        };
        let address = match config.server.address.as_str() {
            "" => "0.0.0.0",
            a => a,
        };
        let addr = format!("{address}:{}", config.server.port);
        let tls = tls_certificate(&config)?;
        let listener = TcpListener::bind(&addr).map_err(|source| StartupError::Bind {
            addr: addr.clone(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind { addr, source })?
            .port();

        let passwords =
            Passwords::new(prepared.hasher, &config.security).map_err(|e| StartupError::Config(e.to_string()))?;
        let providers = crate::user_source::Providers::from_config(&config).map_err(StartupError::Config)?;
        let form_key = match config.registration.rsa_encryption {
            true => Some(Arc::new(
                form_key(prepared.db.clone(), clock.now(), prepared.kek.clone()).await?,
            )),
            false => None,
        };
        let state = web::Data::new(AppState {
            config: config.clone(),
            db: prepared.db,
            clock,
            passwords,
            keys: Arc::new(prepared.keys),
            tokens: Arc::new(TokenSettings::from_config(&config.tokens)),
            metrics: Arc::new(crate::metrics::Metrics::default()),
            throttle: Arc::new(crate::services::throttle::Throttle::new(&config.security)),
            client_failures: Arc::new(crate::services::oauth::ClientFailures::new(&config.oauth)),
            rights: Arc::new(crate::services::rights::Rights::new(
                config.security.admin_rights_cache.as_duration(),
            )),
            providers: Arc::new(providers),
            form_key,
            kek: prepared.kek.clone(),
            mail: Arc::new(
                crate::services::mail::Mailer::new(&config.email).map_err(|e| StartupError::Config(e.to_string()))?,
            ),
        });
        maintenance::start(state.clone().into_inner());
        let max_body = config.server.max_body_bytes;
        let timeout = Some(config.server.timeout.0).filter(|t| !t.is_zero());
        let server_state = state.clone();
        let encrypted_forms = state.form_key.is_some();
        let access_log = config.logging.access_log;
        let mut server = HttpServer::new(move || {
            let metrics = server_state.metrics.clone();
            App::new()
                .app_data(server_state.clone())
                // Only when encrypted forms are on: every other request skips it.
                .wrap(actix_web::middleware::Condition::new(
                    encrypted_forms,
                    actix_web::middleware::from_fn(routes::middleware::decrypt_forms),
                ))
                .wrap_fn(move |req, srv| routes::middleware::envelope(req, srv, metrics.clone(), timeout, access_log))
                .configure(routes::configure(max_body))
        })
        // Signals are the binary's business (`cli::serve`), not the library's: tests and embedders stop the
        // server through its handle.
        .disable_signals()
        .shutdown_timeout(config.server.shutdown_timeout.as_secs().max(1))
        .client_request_timeout(config.server.timeout.0);
        if config.server.workers > 0 {
            server = server.workers(config.server.workers);
        }
        let bind_error = |source| StartupError::Bind {
            addr: format!("{address}:{port}"),
            source,
        };
        let server = match &tls {
            Some(certificate) => {
                let rustls = certificate.server_config().map_err(StartupError::Tls)?;
                watch_certificate(certificate.clone());
                server.listen_rustls_0_23(listener, rustls).map_err(bind_error)?
            }
            None => server.listen(listener).map_err(bind_error)?,
        }
        .run();
        Ok(Application {
            port,
            server,
            state,
            tls,
            superuser_password: prepared.superuser_password,
        })
    }

    /// The TLS certificate when serving HTTPS, to reload on SIGHUP.
    pub fn tls_certificate(&self) -> Option<Arc<crate::tls::Certificate>> {
        self.tls.clone()
    }

    /// Stops the server from elsewhere (tests, embedding).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The shared state, for tests that look behind the API.
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until stopped through [`Application::handle`], then returns (after finishing the requests in
    /// flight, for a graceful stop).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
