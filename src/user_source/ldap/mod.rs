//! One LDAP provider (ldap3, TLS through the system OpenSSL): Stoke's semantics with its bugs fixed.
//!
//! A login costs, in the steady state, three round trips on already open connections: the user search and the
//! group search on the shared service-bound connection (ldap3 multiplexes concurrent operations on it), and the
//! user's bind on an idle connection from a small pool kept only for binds (a bind replaces the previous
//! identity of a connection, so the service connection never binds as a user).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry, ldap_escape};

use crate::config::Secret;
use crate::config::{Placeholder, ProviderConfig, Template};

mod tls;
use tls::tls_connector;

/// Idle bind connections kept per provider.
const BIND_POOL: usize = 4;
/// How long connecting may take when `search_timeout` is 0 (no limit on searches): a directory that does not
/// answer must not hold logins forever, since they fall back to local users.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longer names cannot be stored locally (and local users cannot have them either).
const MAX_USERNAME: usize = 255;

/// LDAP result codes this module tells apart (RFC 4511, appendix A).
const RC_NO_SUCH_OBJECT: u32 = 32;
const RC_INVALID_CREDENTIALS: u32 = 49;

/// What the directory said about a login.
pub enum Outcome {
    /// The directory vouches for the user.
    Authenticated(DirectoryUser),
    /// The directory knows the user and refused the password (or the name is ambiguous): 401, no fallback.
    Rejected,
    /// The directory has no such user: local users may answer.
    NotFound,
    /// The directory could not be asked: local users answer (logged once until it recovers).
    Unreachable,
}

/// A user as the directory describes it.
#[derive(Debug, Clone)]
pub struct DirectoryUser {
    pub dn: String,
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    /// The names (`ldap_group_name_field`) and DNs of the user's groups.
    pub groups: Vec<String>,
}

/// Why an exchange with the directory failed.
enum Failure {
    /// Connection, TLS, timeout or protocol trouble: the directory is unavailable.
    Down(String),
    /// The directory answered with a result code.
    Code(u32, String),
}

impl From<LdapError> for Failure {
    fn from(e: LdapError) -> Self {
        match e {
            // busy, unavailable: the server is there but cannot serve.
            LdapError::LdapResult { result } if matches!(result.rc, 51 | 52) => {
                Failure::Down(format!("result code {} {}", result.rc, result.text))
            }
            LdapError::LdapResult { result } => Failure::Code(result.rc, result.text),
            other => Failure::Down(other.to_string()),
        }
    }
}

impl Failure {
    fn describe(&self) -> String {
        match self {
            Failure::Down(cause) => cause.clone(),
            Failure::Code(rc, text) => format!("result code {rc} {text}"),
        }
    }
}

/// The filter of a template, with both values escaped per RFC 4515 so that neither can change its structure.
fn render(template: &Template, username: &str, user_dn: &str) -> String {
    template.render(|p| match p {
        Placeholder::Username => ldap_escape(username).into_owned(),
        Placeholder::UserDn => ldap_escape(user_dn).into_owned(),
    })
}

// No `Debug`: it holds the service password.
pub struct LdapProvider {
    name: String,
    url: String,
    bind_dn: String,
    bind_password: Secret,
    user_root: String,
    user_filter: Template,
    group_root: String,
    group_filter: Template,
    group_name_field: String,
    first_name_field: String,
    last_name_field: String,
    email_field: String,
    search_timeout: Option<Duration>,
    connect_timeout: Duration,
    connector: Option<native_tls::TlsConnector>,
    /// The shared service-bound connection (a clone of the handle per operation).
    service: tokio::sync::Mutex<ServiceSlot>,
    /// Idle connections for user binds.
    binders: Mutex<Vec<Ldap>>,
    /// Whether the directory was last found unreachable (so that is logged once, not per request).
    down: AtomicBool,
}

impl LdapProvider {
    pub fn new(p: &ProviderConfig) -> Result<Self, String> {
        let s = &p.ldap;
        let user_filter = Template::parse(&s.user_filter_template).map_err(|e| format!("user_filter_template: {e}"))?;
        let group_filter =
            Template::parse(&s.group_filter_template).map_err(|e| format!("group_filter_template: {e}"))?;
        let search_timeout = Some(s.search_timeout.as_duration()).filter(|d| !d.is_zero());
        Ok(LdapProvider {
            name: p.name.clone(),
            url: s.server_url.clone(),
            bind_dn: s.bind_user_dn.clone(),
            bind_password: s.bind_user_password.clone(),
            user_root: s.user_search_root.clone(),
            user_filter,
            group_root: s.group_search_root.clone(),
            group_filter,
            group_name_field: s.ldap_group_name_field.clone(),
            first_name_field: s.ldap_first_name_field.clone(),
            last_name_field: s.ldap_last_name_field.clone(),
            email_field: s.ldap_email_field.clone(),
            search_timeout,
            connect_timeout: search_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            connector: tls_connector(&s.ldap_ca_cert, s.skip_certificate_verify)?,
            service: tokio::sync::Mutex::new(ServiceSlot::default()),
            binders: Mutex::new(Vec::new()),
            down: AtomicBool::new(false),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Asks the directory about `username` and `password` (a span of its own in an exported trace).
    pub async fn authenticate(&self, username: &str, password: &str) -> Outcome {
        use tracing::Instrument as _;
        let span = tracing::trace_span!(target: crate::telemetry::otlp::TARGET, "directory",
            otel.name = "ldap authenticate", tessera.provider = %self.name);
        self.ask(username, password).instrument(span).await
    }

    async fn ask(&self, username: &str, password: &str) -> Outcome {
        // Without a user filter (configuration loading warns) the directory finds nobody.
        if username.is_empty() || username.len() > MAX_USERNAME || self.user_filter.is_empty() {
            return Outcome::NotFound;
        }
        let user = match self.find_user(username).await {
            Ok(Some(user)) => user,
            Ok(None) => return self.up(Outcome::NotFound),
            Err(Found::Several) => {
                tracing::warn!(provider = %self.name, "user_filter_template matches several entries for one login; refused");
                return self.up(Outcome::Rejected);
            }
            Err(Found::Failed(f)) => return self.unreachable("user search", &f),
        };
        // An empty password would be an unauthenticated bind, which some servers accept (RFC 4513 §5.1.2).
        if password.is_empty() {
            return Outcome::Rejected;
        }
        match self.bind_as(&user.dn, password).await {
            Ok(()) => {}
            Err(Failure::Code(rc, _)) => {
                if rc != RC_INVALID_CREDENTIALS {
                    tracing::info!(provider = %self.name, rc, "directory refused a user bind");
                }
                return self.up(Outcome::Rejected);
            }
            Err(f) => return self.unreachable("user bind", &f),
        }
        let groups = match self.groups_of(username, &user.dn).await {
            Ok(groups) => groups,
            Err(f) => return self.unreachable("group search", &f),
        };
        self.up(Outcome::Authenticated(DirectoryUser { groups, ..user }))
    }

    fn up(&self, outcome: Outcome) -> Outcome {
        if self.down.swap(false, Ordering::Relaxed) {
            tracing::info!(provider = %self.name, "LDAP directory reachable again");
        }
        outcome
    }

    fn unreachable(&self, during: &str, f: &Failure) -> Outcome {
        let cause = f.describe();
        if !self.down.swap(true, Ordering::Relaxed) {
            tracing::warn!(provider = %self.name, during, %cause,
                "LDAP directory unreachable; logins fall back to local users until it recovers");
        } else {
            tracing::debug!(provider = %self.name, during, %cause, "LDAP directory still unreachable");
        }
        Outcome::Unreachable
    }

    async fn find_user(&self, username: &str) -> Result<Option<DirectoryUser>, Found> {
        let filter = render(&self.user_filter, username, "");
        let attrs = [
            self.first_name_field.as_str(),
            self.last_name_field.as_str(),
            self.email_field.as_str(),
        ];
        let entries = match self.service_search(&self.user_root, &filter, &attrs).await {
            Ok(entries) => entries,
            Err(Failure::Code(RC_NO_SUCH_OBJECT, _)) => {
                tracing::warn!(provider = %self.name, root = %self.user_root, "user_search_root does not exist");
                return Ok(None);
            }
            Err(f) => return Err(Found::Failed(f)),
        };
        match entries.as_slice() {
            [] => Ok(None),
            [entry] => Ok(Some(DirectoryUser {
                dn: entry.dn.clone(),
                first_name: first_value(entry, &self.first_name_field).unwrap_or_default(),
                last_name: first_value(entry, &self.last_name_field).unwrap_or_default(),
                email: first_value(entry, &self.email_field).filter(|e| !e.is_empty()),
                groups: Vec::new(),
            })),
            _ => Err(Found::Several),
        }
    }

    async fn groups_of(&self, username: &str, dn: &str) -> Result<Vec<String>, Failure> {
        if self.group_filter.is_empty() {
            return Ok(Vec::new());
        }
        let filter = render(&self.group_filter, username, dn);
        let entries = match self
            .service_search(&self.group_root, &filter, &[self.group_name_field.as_str()])
            .await
        {
            Ok(entries) => entries,
            Err(Failure::Code(RC_NO_SUCH_OBJECT, _)) => {
                tracing::warn!(provider = %self.name, root = %self.group_root, "group_search_root does not exist");
                return Ok(Vec::new());
            }
            Err(f) => return Err(f),
        };
        let mut groups = Vec::new();
        for entry in entries {
            groups.extend(all_values(&entry, &self.group_name_field));
            groups.push(entry.dn);
        }
        Ok(groups)
    }

    /// A search on the service connection; a stale pooled connection is replaced and the search retried once.
    async fn service_search(&self, base: &str, filter: &str, attrs: &[&str]) -> Result<Vec<SearchEntry>, Failure> {
        loop {
            let (mut ldap, fresh) = self.service_connection().await?;
            let result = self.timed(&mut ldap).search(base, Scope::Subtree, filter, attrs).await;
            let result = result.map_err(Failure::from).and_then(|r| {
                let (entries, _) = r.success().map_err(Failure::from)?;
                Ok(entries.into_iter().map(SearchEntry::construct).collect())
            });
            match result {
                Err(Failure::Down(cause)) => {
                    let mut slot = self.service.lock().await;
                    slot.ldap = None;
                    if fresh {
                        slot.failed_at = Some(crate::clock::monotonic());
                        return Err(Failure::Down(cause));
                    }
                }
                other => return other,
            }
        }
    }

    /// The shared service-bound connection, opened (and bound) when missing or closed; `true` when new.
    ///
    /// Logins that queued behind a failed attempt fail at once instead of each waiting out its own timeout.
    async fn service_connection(&self) -> Result<(Ldap, bool), Failure> {
        let asked = crate::clock::monotonic();
        let mut slot = self.service.lock().await;
        if let Some(ldap) = slot.ldap.as_mut()
            && !ldap.is_closed()
        {
            return Ok((ldap.clone(), false));
        }
        slot.ldap = None;
        if slot.failed_at.is_some_and(|t| t >= asked) {
            return Err(Failure::Down("the directory just failed for another login".into()));
        }
        match self.open_service_connection().await {
            Ok(ldap) => {
                slot.ldap = Some(ldap.clone());
                slot.failed_at = None;
                Ok((ldap, true))
            }
            Err(f) => {
                slot.failed_at = Some(crate::clock::monotonic());
                Err(f)
            }
        }
    }

    async fn open_service_connection(&self) -> Result<Ldap, Failure> {
        let mut ldap = self.connect().await?;
        if !self.bind_dn.is_empty() {
            self.timed(&mut ldap)
                .simple_bind(&self.bind_dn, self.bind_password.expose())
                .await?
                .success()
                .map_err(|e| Failure::Down(format!("service bind failed: {}", Failure::from(e).describe())))?;
        }
        Ok(ldap)
    }

    /// Binds as `dn` on a pooled bind connection (a fresh one when none is idle or the idle one went stale).
    async fn bind_as(&self, dn: &str, password: &str) -> Result<(), Failure> {
        let mut retried = false;
        loop {
            let (mut ldap, fresh) = match self.binders.lock().ok().and_then(|mut idle| idle.pop()) {
                Some(mut ldap) => match ldap.is_closed() {
                    false => (ldap, false),
                    true => (self.connect().await?, true),
                },
                None => (self.connect().await?, true),
            };
            let result = self.timed(&mut ldap).simple_bind(dn, password).await;
            let result = result
                .map_err(Failure::from)
                .and_then(|r| r.success().map_err(Failure::from));
            match result {
                Err(Failure::Down(cause)) => {
                    if fresh || retried {
                        return Err(Failure::Down(cause));
                    }
                    retried = true;
                }
                other => {
                    if let Ok(mut idle) = self.binders.lock()
                        && idle.len() < BIND_POOL
                    {
                        idle.push(ldap);
                    }
                    return other.map(|_| ());
                }
            }
        }
    }

    async fn connect(&self) -> Result<Ldap, Failure> {
        let mut settings = LdapConnSettings::new().set_conn_timeout(self.connect_timeout);
        if let Some(connector) = &self.connector {
            settings = settings.set_connector(connector.clone());
        }
        let (conn, ldap) =
            tokio::time::timeout(self.connect_timeout, LdapConnAsync::with_settings(settings, &self.url))
                .await
                .map_err(|_| Failure::Down("connection timed out".into()))??;
        let name = self.name.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(provider = %name, error = %e, "LDAP connection closed");
            }
        });
        Ok(ldap)
    }

    fn timed<'a>(&self, ldap: &'a mut Ldap) -> &'a mut Ldap {
        match self.search_timeout {
            Some(t) => ldap.with_timeout(t),
            None => ldap,
        }
    }
}

enum Found {
    Several,
    Failed(Failure),
}

#[derive(Default)]
struct ServiceSlot {
    ldap: Option<Ldap>,
    /// When opening it last failed.
    failed_at: Option<Instant>,
}

/// Attribute names are case-insensitive; servers answer in their own spelling.
fn all_values(entry: &SearchEntry, attr: &str) -> Vec<String> {
    entry
        .attrs
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(attr))
        .flat_map(|(_, v)| v.iter().cloned())
        .collect()
}

fn first_value(entry: &SearchEntry, attr: &str) -> Option<String> {
    all_values(entry, attr).into_iter().next()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn templates_escape_both_values() {
        let t = Template::parse("(&(objectClass=inetOrgPerson)(uid={{ .Username }}))").unwrap();
        assert_eq!(render(&t, "fry", ""), "(&(objectClass=inetOrgPerson)(uid=fry))");
        assert_eq!(
            render(&t, "*)(uid=*", ""),
            "(&(objectClass=inetOrgPerson)(uid=\\2a\\29\\28uid=\\2a))"
        );
        let g =
            Template::parse("(&(objectClass=groupOfNames)(|(member={{.UserDN}})(memberUid={{ .Username }})))").unwrap();
        assert_eq!(
            render(&g, "zoidberg", "cn=John Zoidberg (Doctor),ou=people"),
            "(&(objectClass=groupOfNames)(|(member=cn=John Zoidberg \\28Doctor\\29,ou=people)(memberUid=zoidberg)))"
        );
        assert_eq!(
            render(&t, "a\\b\0", ""),
            "(&(objectClass=inetOrgPerson)(uid=a\\5cb\\00))"
        );
    }

    #[test]
    fn templates_refuse_unknown_placeholders() {
        assert!(Template::parse("(uid={{ .Name }})").is_err());
        assert!(Template::parse("(uid={{ .Username )").is_err());
        assert!(Template::parse("").unwrap().is_empty());
    }

    /// Collects log output written on this thread.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn an_outage_is_logged_once_until_recovery() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .finish();
        let provider = LdapProvider::new(&ProviderConfig::default()).unwrap();
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..3 {
                provider.unreachable("user search", &Failure::Down("refused".into()));
            }
            provider.up(Outcome::NotFound);
            provider.up(Outcome::NotFound);
            provider.unreachable("user search", &Failure::Down("refused".into()));
        });
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert_eq!(log.matches("unreachable").count(), 2, "{log}");
        assert_eq!(log.matches("reachable again").count(), 1, "{log}");
    }
}
