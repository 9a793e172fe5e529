//! The command line: `tessera [--config FILE] [--dbinit FILE] [serve|migrate|validate|hash-password|import-stoke]`.
//! Stoke's single-dash `-config`/`-dbinit` spellings are accepted too.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::clock::SystemClock;
use crate::config::{self, Config, LoadedConfig};
use crate::crypto::keys::Alg;
use crate::crypto::password::{self, Hasher};
use crate::services::stoke_import;
use crate::startup::{self, Application};

#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version,
    about = "A lightweight self-hosted token service (Stoke-compatible)"
)]
pub struct Cli {
    /// Configuration file. Default: $TESSERA_CONFIG, else the first of /etc/tessera/config.yaml,
    /// /etc/stoke/config.yaml, ./config.yaml that exists, else built-in defaults.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A dbinit file to apply at start-up, overriding users.user_init_file (serve, migrate and validate; it may
    /// also follow the command).
    #[arg(long, value_name = "FILE")]
    pub dbinit: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Migrate the database, apply dbinit, and serve (the default).
    Serve {
        #[command(flatten)]
        init: Init,
    },
    /// Migrate the database and apply dbinit, then exit.
    Migrate {
        #[command(flatten)]
        init: Init,
    },
    /// Check the configuration (and the dbinit files serve would apply) and print it with secrets redacted.
    Validate {
        /// Treat unknown keys as errors.
        #[arg(long)]
        strict: bool,
        #[command(flatten)]
        init: Init,
    },
    /// Import a Stoke database (users, groups, claims, links, memberships, unexpired keys) into the configured one.
    ImportStoke {
        /// Stoke's database: a SQLite file, postgres://… or mysql://…
        #[arg(long, value_name = "DATABASE")]
        from: String,
        /// Print what would change, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Leave out (and list) rows Tessera cannot take instead of refusing the whole import.
        #[arg(long)]
        skip_invalid: bool,
    },
    /// Read a password from stdin and print dbinit lines for it.
    HashPassword {
        /// Print Stoke's password_hash/password_salt pair instead of a PHC string.
        #[arg(long)]
        stoke: bool,
    },
}

/// `--dbinit` where it does something: the commands that apply (or check) dbinit files.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Init {
    /// A dbinit file to apply at start-up (overrides users.user_init_file).
    #[arg(long, value_name = "FILE")]
    pub dbinit: Option<PathBuf>,
}

impl Cli {
    /// The dbinit file given before or after the command.
    fn dbinit(&self) -> Option<&std::path::Path> {
        let after = match &self.command {
            Some(Command::Serve { init } | Command::Migrate { init } | Command::Validate { init, .. }) => init,
            _ => return self.dbinit.as_deref(),
        };
        after.dbinit.as_deref().or(self.dbinit.as_deref())
    }
}

/// Rewrites Stoke's `-config x` / `-dbinit=x` into the double-dash forms.
fn normalize_args(args: impl IntoIterator<Item = String>) -> Vec<String> {
    args.into_iter()
        .map(|a| {
            for flag in ["-config", "-dbinit"] {
                if a == flag || a.starts_with(&format!("{flag}=")) {
                    return format!("-{a}");
                }
            }
            a
        })
        .collect()
}

/// Runs the command line and returns the process exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse_from(normalize_args(std::env::args()));
    let serve_by_default = Command::Serve { init: Init::default() };
    let command = cli.command.as_ref().unwrap_or(&serve_by_default);
    if cli.dbinit.is_some() && matches!(command, Command::HashPassword { .. } | Command::ImportStoke { .. }) {
        eprintln!("error: --dbinit does nothing here: it is for serve, migrate and validate");
        return ExitCode::from(2);
    }
    match command {
        Command::Validate { strict, .. } => validate(&cli, *strict),
        Command::HashPassword { stoke } => hash_password(&cli, *stoke),
        Command::Migrate { .. } => with_config(&cli, |loaded| migrate(&cli, loaded)),
        Command::ImportStoke {
            from,
            dry_run,
            skip_invalid,
        } => with_config(&cli, |loaded| import_stoke(loaded, from, *dry_run, *skip_invalid)),
        Command::Serve { .. } => with_config(&cli, |loaded| serve(&cli, loaded)),
    }
}

fn load(cli: &Cli, strict: bool) -> Result<LoadedConfig, config::ConfigError> {
    config::load(cli.config.as_deref(), std::env::vars(), strict)
}

fn print_warnings(loaded: &[config::Problem]) {
    for w in loaded {
        eprintln!("warning: {w}");
    }
}

fn with_config(cli: &Cli, f: impl FnOnce(LoadedConfig) -> ExitCode) -> ExitCode {
    match load(cli, false) {
        Ok(loaded) => {
            print_warnings(&loaded.warnings);
            f(loaded)
        }
        Err(e) => {
            print_warnings(&e.warnings);
            eprint!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Says which configuration file was read, and how it was chosen.
fn log_source(loaded: &LoadedConfig) {
    match &loaded.file {
        Some(file) => tracing::info!(file = %file.display(), chosen_by = loaded.chosen_by, "configuration read"),
        None => tracing::info!(
            "no configuration file (--config, TESSERA_CONFIG, /etc/tessera/config.yaml, /etc/stoke/config.yaml, \
             ./config.yaml): built-in defaults"
        ),
    }
}

fn validate(cli: &Cli, strict: bool) -> ExitCode {
    match load(cli, strict) {
        Ok(loaded) => {
            print_warnings(&loaded.warnings);
            // What `serve` reads besides the configuration, refused here for what `serve` would refuse it for: the
            // dbinit files; the provider files, CA and secret files were checked with the configuration.
            let mut bad = false;
            for file in startup::init_files(&loaded.config, cli.dbinit()) {
                if let Err(problems) = crate::services::dbinit::check_file(&file) {
                    bad = true;
                    for p in problems {
                        eprintln!("error: dbinit file {}: {p}", file.display());
                    }
                }
            }
            // The email templates (and the SMTP CA file), read and parsed as `serve` reads them.
            if let Err(e) = crate::services::mail::Mailer::new(&loaded.config.email) {
                bad = true;
                eprintln!("error: email: {e}");
            }
            if bad {
                return ExitCode::FAILURE;
            }
            match &loaded.file {
                Some(file) => eprintln!("configuration read from {} ({})", file.display(), loaded.chosen_by),
                None => eprintln!("no configuration file found: built-in defaults"),
            }
            match serde_yaml_ng::to_string(&loaded.config) {
                Ok(text) => println!("# effective configuration (secrets redacted)\n{text}"),
                Err(e) => eprintln!("error: cannot print the configuration: {e}"),
            }
            eprintln!("configuration is valid");
            ExitCode::SUCCESS
        }
        Err(e) => {
            print_warnings(&e.warnings);
            eprint!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn migrate(cli: &Cli, loaded: LoadedConfig) -> ExitCode {
    if let Err(e) = crate::telemetry::init(&loaded.config.logging) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    log_source(&loaded);
    match startup::prepare(&loaded.config, cli.dbinit(), &SystemClock) {
        Ok(prepared) => {
            announce_superuser(
                prepared.superuser_password.as_deref(),
                loaded.config.logging.json_stdout(),
            );
            // Every algorithm's key is made now, so `serve` starts with the whole ring.
            if let Err(e) = prepared.keys.refresh(crate::clock::Clock::now(&SystemClock)) {
                eprintln!("error: signing keys: {e}");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn import_stoke(loaded: LoadedConfig, from: &str, dry_run: bool, skip_invalid: bool) -> ExitCode {
    if let Err(e) = crate::telemetry::init(&loaded.config.logging) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    log_source(&loaded);
    let config = &loaded.config;
    let rsa_alg = match config.tokens.num_bits {
        384 => Alg::PS384,
        512 => Alg::PS512,
        _ => Alg::PS256,
    };
    let opts = stoke_import::Options {
        dry_run,
        skip_invalid,
        instance_id: config.cluster.instance_id.clone(),
        rsa_alg,
        providers: config.users.providers.iter().map(|p| p.name.clone()).collect(),
    };
    let plan = match startup::import_stoke(config, from, &opts, &SystemClock) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let lines = plan.describe();
    if !lines.is_empty() {
        println!(
            "{}",
            if dry_run {
                "would add (dry run, nothing written):"
            } else {
                "added:"
            }
        );
        for line in lines {
            println!("  {line}");
        }
    }
    if !plan.problems.is_empty() {
        println!("left out (--skip-invalid):");
        for p in &plan.problems {
            println!("  {p}");
        }
    }
    for note in &plan.notes {
        println!("note: {note}");
    }
    if !config.tokens.persist_keys && !plan.changes.keys.is_empty() {
        println!(
            "note: tokens.persist_keys is off, so Tessera reads no keys from its database: Stoke's keys are not published until it is on"
        );
    }
    println!("{}", plan.summary(dry_run));
    ExitCode::SUCCESS
}

fn serve(cli: &Cli, loaded: LoadedConfig) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The gRPC exporters' connections live on the server's runtime.
    let exporters = {
        let _runtime = runtime.enter();
        match crate::telemetry::init_with_export(&loaded.config.logging, &loaded.config.telemetry) {
            Ok(exporters) => exporters,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    log_source(&loaded);
    let config: Config = loaded.config;
    let about = Startup::of(&config, &loaded.file);
    let dbinit = cli.dbinit().map(std::path::Path::to_path_buf);
    let grace = config.server.shutdown_timeout.as_duration();
    let code = runtime.block_on(async {
        let app = match Application::build(config, dbinit).await {
            Ok(app) => app,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let state = app.state();
        exporters.observe(state.metrics.clone(), move || state.gauges());
        if let Err(e) = stop_on_signals(app.handle(), grace) {
            eprintln!("error: cannot listen for signals: {e}");
            return ExitCode::FAILURE;
        }
        if let Err(e) = reload_on_hangup(app.tls_certificate()) {
            eprintln!("error: cannot listen for signals: {e}");
            return ExitCode::FAILURE;
        }
        announce_superuser(app.superuser_password.as_deref(), about.json);
        about.announce(app.port());
        match app.run_until_stopped().await {
            Ok(()) => {
                tracing::info!("stopped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!(error = %e, "server failed");
                ExitCode::FAILURE
            }
        }
    });
    // What is still queued goes out while the runtime (and its gRPC connections) is alive.
    exporters.shutdown();
    code
}

/// SIGHUP re-reads the TLS certificate files (a renewal); without TLS it is logged and ignored.
fn reload_on_hangup(certificate: Option<std::sync::Arc<crate::tls::Certificate>>) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            match certificate.clone() {
                Some(c) => {
                    let _ = tokio::task::spawn_blocking(move || c.reload()).await;
                }
                None => tracing::info!("SIGHUP: nothing to reload (no TLS certificate configured)"),
            }
        }
    });
    Ok(())
}

/// SIGTERM or SIGINT stops the server gracefully: it stops listening, finishes the requests in flight for up
/// to `server.shutdown_timeout`, and returns. A second signal exits at once (code 1), dropping what is in flight.
/// Should the process still be running 5 s after the grace, it exits (code 1) rather than hang its supervisor;
/// that timer is a plain thread, so it fires even if the runtime no longer makes progress.
fn stop_on_signals(server: actix_web::dev::ServerHandle, grace: std::time::Duration) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let (mut term, mut int) = (signal(SignalKind::terminate())?, signal(SignalKind::interrupt())?);
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(
            signal = name,
            grace_s = grace.as_secs(),
            "stopping: finishing the requests in flight"
        );
        let _ = std::thread::Builder::new()
            .name("shutdown-watchdog".into())
            .spawn(move || {
                std::thread::sleep(grace + std::time::Duration::from_secs(5));
                tracing::error!(
                    grace_s = grace.as_secs(),
                    "still running after the shutdown grace; exiting"
                );
                std::process::exit(1);
            });
        tokio::spawn(server.stop(true));
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::warn!("second signal: exiting at once");
        std::process::exit(1);
    });
    Ok(())
}

/// Shows the generated superuser password once, on stdout only (never in the log file).
/// The bootstrap superuser's one-time password, on stdout only (never into `logging.log_file`): two plain lines,
/// or with JSON logs one JSON line shaped like the log's own.
fn announce_superuser(password: Option<&str>, json: bool) {
    let Some(pw) = password else { return };
    if json {
        let line = serde_json::json!({
            "timestamp": crate::api_types::rfc3339(crate::clock::Clock::now(&crate::clock::SystemClock)),
            "level": "WARN",
            "fields": {
                "message": "superuser created; its password is shown this once: sign in and change it",
                "username": "sadmin",
                "password": pw,
            },
            "target": "tessera::bootstrap",
        });
        println!("{line}");
    } else {
        println!("Created superuser 'sadmin' password={pw}");
        println!("(shown once: sign in and change it)");
    }
}

/// What the first lines of a start tell an operator: where the server is, its console, its version, and which
/// configuration file and database it runs on.
struct Startup {
    scheme: &'static str,
    host: String,
    console: bool,
    config: String,
    database: String,
    json: bool,
}

impl Startup {
    fn of(config: &Config, file: &Option<std::path::PathBuf>) -> Startup {
        let address = config.server.address.as_str();
        let host = match address {
            "" | "0.0.0.0" => "127.0.0.1".to_string(),
            "::" => "[::1]".to_string(),
            a if a.contains(':') => format!("[{a}]"),
            a => a.to_string(),
        };
        let database = match config.database.resolve() {
            Ok((backend, url)) => format!("{backend:?} {}", without_password(&url)).to_lowercase(),
            Err(e) => e,
        };
        Startup {
            scheme: if config.server.tls_private_key.is_empty() {
                "http"
            } else {
                "https"
            },
            host,
            console: !config.server.disable_admin,
            config: file
                .as_ref()
                .map_or_else(|| "none: defaults".to_string(), |f| f.display().to_string()),
            database,
            json: config.logging.json_stdout(),
        }
    }

    fn announce(&self, port: u16) {
        let url = format!("{}://{}:{port}/", self.scheme, self.host);
        let console = if self.console {
            format!("{url}admin/")
        } else {
            "off (server.disable_admin)".into()
        };
        tracing::info!(
            port,
            url = %url,
            console = %console,
            version = env!("CARGO_PKG_VERSION"),
            config = %self.config,
            database = %self.database,
            "tessera listening"
        );
    }
}

/// A database URL as it may be shown: without a password.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((user, host)) if user.contains(':') => {
            let user = user.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{path}")
        }
        _ => url.to_string(),
    }
}

fn hash_password(cli: &Cli, stoke: bool) -> ExitCode {
    let params = match cli.config.as_deref() {
        Some(_) => match load(cli, false) {
            Ok(loaded) => loaded.config.security.password_hash,
            Err(e) => {
                eprint!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => config::PasswordHashConfig::default(),
    };
    let password = match read_password() {
        Ok(pw) if pw.is_empty() => {
            eprintln!("error: empty password");
            return ExitCode::FAILURE;
        }
        Ok(pw) => pw,
        Err(e) => {
            eprintln!("error: could not read the password: {e}");
            return ExitCode::FAILURE;
        }
    };
    let lines = if stoke {
        password::stoke_pair(&password).map(|(hash, salt)| format!("password_hash: {hash}\npassword_salt: {salt}"))
    } else {
        Hasher::new(&params)
            .and_then(|h| h.hash(&password))
            .map(|phc| format!("password_hash: \"{phc}\""))
    };
    match lines {
        Ok(lines) => {
            println!("# Add to the user's entry in the dbinit file:");
            println!("{lines}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One password: prompted without echo on a terminal, else the first line of stdin.
fn read_password() -> std::io::Result<String> {
    if std::io::stdin().is_terminal() {
        let _ = std::io::stderr().flush();
        return rpassword::prompt_password("password: ");
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_urls_are_shown_without_their_password() {
        use super::without_password;
        assert_eq!(
            without_password("postgres://app:s3cret@db:5432/tessera"),
            "postgres://app:***@db:5432/tessera"
        );
        assert_eq!(
            without_password("mysql://root@127.0.0.1/test"),
            "mysql://root@127.0.0.1/test"
        );
        assert_eq!(without_password("postgres://a:b@c@h/x"), "postgres://a:***@h/x");
        assert_eq!(without_password("tessera.db"), "tessera.db");
    }

    use super::*;

    #[test]
    fn stoke_single_dash_flags() {
        let args = normalize_args(["tessera", "-config", "c.yaml", "-dbinit=d.yaml", "migrate"].map(String::from));
        let cli = Cli::try_parse_from(args).map_err(|e| e.to_string());
        let cli = cli.unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(cli.config, Some(PathBuf::from("c.yaml")));
        assert_eq!(cli.dbinit, Some(PathBuf::from("d.yaml")));
        assert!(matches!(cli.command, Some(Command::Migrate { .. })));
    }
}
