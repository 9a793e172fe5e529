//! Checks that need the whole configuration (or more than a type): each returns the key, what is wrong, and
//! whether it stops the start (`true`) or is only a warning.

use super::{Backend, Config};

type Finding = (String, String, bool);

pub(super) fn check(c: &Config) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    {
        let mut fail = |key: &str, msg: String| out.push((key.into(), msg, true));
        for section in [database_and_logs, telemetry, tokens, security, accounts, providers] {
            section(c, &mut fail);
        }
    }
    warnings(c, &mut |key: &str, msg: String| out.push((key.into(), msg, false)));
    out
}

/// The database and logging sections.
fn database_and_logs(c: &Config, fail: &mut impl FnMut(&str, String)) {
    if let Err(msg) = c.database.resolve() {
        fail(
            if c.database.url.is_empty() {
                "database.type"
            } else {
                "database.url"
            },
            msg,
        );
    }
    if c.database.max_connections == 0 {
        fail("database.max_connections", "must be at least 1".into());
    }
    if c.database.connect_timeout.as_duration().is_zero() {
        fail("database.connect_timeout", "must be more than 0".into());
    }
    if !["OFF", "NORMAL", "FULL", "EXTRA"].contains(&c.database.sqlite.synchronous.to_ascii_uppercase().as_str()) {
        fail(
            "database.sqlite.synchronous",
            format!(
                "{:?} is not one of OFF, NORMAL, FULL, EXTRA",
                c.database.sqlite.synchronous
            ),
        );
    }
    if !["trace", "debug", "info", "warn", "warning", "error", "fatal", "panic"]
        .contains(&c.logging.level.to_ascii_lowercase().as_str())
    {
        fail(
            "logging.level",
            format!("{:?} is not one of trace, debug, info, warn, error", c.logging.level),
        );
    }
}

/// The OTLP exports (the same reading the exporters are built from).
fn telemetry(c: &Config, fail: &mut impl FnMut(&str, String)) {
    for wrong in [c.telemetry.traces().err(), c.telemetry.metrics().err()]
        .into_iter()
        .flatten()
    {
        fail(wrong.0, wrong.1);
    }
}

/// Token lifetimes, algorithms, keys and their encryption.
fn tokens(c: &Config, fail: &mut impl FnMut(&str, String)) {
    match c.tokens.jws_algorithm() {
        Err(msg) => fail(
            if msg.contains("num_bits") {
                "tokens.num_bits"
            } else {
                "tokens.algorithm"
            },
            msg,
        ),
        Ok(_) => {
            if let Err(msg) = c.tokens.signing_algorithms() {
                fail("tokens.algorithms", msg);
            }
        }
    }
    if ![2048, 3072, 4096].contains(&c.tokens.rsa_key_bits) {
        fail(
            "tokens.rsa_key_bits",
            format!("{} is not one of 2048, 3072, 4096", c.tokens.rsa_key_bits),
        );
    }
    let (k, t) = (
        c.tokens.key_duration.as_duration(),
        c.tokens.token_duration.as_duration(),
    );
    if t.is_zero() {
        fail("tokens.token_duration", "must be more than 0".into());
    } else if k <= t * 2 {
        fail(
            "tokens.key_duration",
            format!(
                "must be more than twice tokens.token_duration ({} <= 2 x {}): a key is published 2T before it signs",
                c.tokens.key_duration, c.tokens.token_duration
            ),
        );
    }
    if !t.is_zero() && c.cluster.key_check_interval.as_duration() >= t {
        fail(
            "cluster.key_check_interval",
            format!(
                "must be shorter than tokens.token_duration ({}), so every replica sees a new key before it signs",
                c.tokens.token_duration
            ),
        );
    }
    // The files are read as `serve` would read them: a key that does not match is found before a start.
    if let Err(e) = crate::tls::check_pair(&c.server.tls_public_cert, &c.server.tls_private_key) {
        fail(e.key, e.message);
    }
    let t = &c.tokens;
    if !t.key_encryption_secret.is_empty() && !t.key_encryption_secret_file.is_empty() {
        fail(
            "tokens.key_encryption_secret_file",
            "set key_encryption_secret or key_encryption_secret_file, not both".into(),
        );
    }
    if !t.key_encryption_secret.is_empty() && t.key_encryption_secret.expose().len() < 16 {
        fail("tokens.key_encryption_secret", "must be at least 16 characters".into());
    }
}

/// Hashing, limits, proxies, the rights cache, and what user_info may map to.
fn security(c: &Config, fail: &mut impl FnMut(&str, String)) {
    let hash = &c.security.password_hash;
    if hash.iterations == 0 {
        fail("security.password_hash.iterations", "must be at least 1".into());
    }
    if hash.parallelism == 0 {
        fail("security.password_hash.parallelism", "must be at least 1".into());
    }
    if hash.memory_kib < 8 * hash.parallelism.max(1) {
        fail(
            "security.password_hash.memory_kib",
            "must be at least 8 x parallelism".into(),
        );
    }
    let limits = &c.security.rate_limits;
    for (name, limit) in [
        ("login_failures", limits.login_failures),
        ("register", limits.register),
        ("forgot_password", limits.forgot_password),
        ("anonymous", limits.anonymous),
        ("refresh", limits.refresh),
    ] {
        if limit.burst > 0 && limit.period.as_duration().as_millis() < u128::from(limit.burst) {
            fail(
                &format!("security.rate_limits.{name}.period"),
                "must be at least one millisecond per request of the burst".into(),
            );
        }
    }
    for proxy in &c.security.trusted_proxies {
        if super::parse_cidr(proxy).is_none() {
            fail(
                "security.trusted_proxies",
                format!("{proxy:?} is not an IP address or CIDR range"),
            );
        }
    }
    for letter in &c.security.mfa.require_for {
        if crate::authz::check_stk_value(letter).is_err() || letter.contains(',') {
            fail(
                "security.mfa.require_for",
                format!("{letter:?} is not one stk letter (S, s, u, U, g, G, c, C, m)"),
            );
        }
    }
    if c.security.max_password_bytes == 0 {
        fail("security.max_password_bytes", "must be at least 1".into());
    }
    if c.security.admin_rights_cache.as_duration() > std::time::Duration::from_secs(5) {
        fail(
            "security.admin_rights_cache",
            "must be at most 5s: a demoted or deleted admin keeps admin access that long".into(),
        );
    }
    let info = &c.tokens.user_info;
    for (field, key) in [
        ("username", &info.username),
        ("first_name", &info.first_name),
        ("last_name", &info.last_name),
        ("full_name", &info.full_name),
        ("email", &info.email),
    ] {
        if key == crate::authz::STK {
            fail(
                &format!("tokens.user_info.{field}"),
                "stk carries admin letters and only claim groups grant it; pick another claim name".into(),
            );
        }
    }
}

/// Email and registration.
fn accounts(c: &Config, fail: &mut impl FnMut(&str, String)) {
    if !["closed", "open", "confirm"].contains(&c.registration.mode.as_str()) {
        fail(
            "registration.mode",
            format!("{:?} is not one of closed, open, confirm", c.registration.mode),
        );
    }
    if !["none", "starttls", "tls"].contains(&c.email.smtp_security.as_str()) {
        fail(
            "email.smtp_security",
            format!("{:?} is not one of none, starttls, tls", c.email.smtp_security),
        );
    }
    for (key, msg) in accounts_findings(c) {
        fail(key, msg);
    }
}

/// User providers (LDAP directories and upstream OpenID providers).
fn providers(c: &Config, fail: &mut impl FnMut(&str, String)) {
    let mut names = std::collections::HashSet::new();
    for (i, p) in c.users.providers.iter().enumerate() {
        let key = format!("users.providers[{i}]");
        if p.name.is_empty() {
            fail(&format!("{key}.name"), "a provider needs a name".into());
        } else if !names.insert(p.name.clone()) {
            fail(
                &format!("{key}.name"),
                format!("provider name {:?} is used twice", p.name),
            );
        }
        if p.is_oidc() {
            for (field, msg) in oidc_findings(c, p) {
                fail(&format!("{key}.{field}"), msg);
            }
            continue;
        }
        if !p.kind.eq_ignore_ascii_case("ldap") {
            fail(
                &format!("{key}.type"),
                format!("provider type {:?} is not supported (ldap or oidc)", p.kind),
            );
        }
        let url = p.ldap.server_url.as_str();
        if !(url.starts_with("ldap://") || url.starts_with("ldaps://") || url.starts_with("ldapi://")) {
            fail(
                &format!("{key}.server_url"),
                format!("{url:?} must begin with ldap://, ldaps:// or ldapi://"),
            );
        }
        // LDAP filter templates and the CA file (user_source/ldap.rs reads them the same way at start-up).
        for (field, text) in [
            ("user_filter_template", &p.ldap.user_filter_template),
            ("group_filter_template", &p.ldap.group_filter_template),
        ] {
            if let Err(e) = super::Template::parse(text) {
                fail(&format!("{key}.{field}"), e);
            }
        }
        let ca = p.ldap.ldap_ca_cert.as_str();
        if !ca.is_empty() && !std::path::Path::new(ca).is_file() {
            fail(&format!("{key}.ldap_ca_cert"), format!("{ca:?} is not a readable file"));
        }
    }
}

/// What is wrong with an OpenID provider's settings, by key.
fn oidc_findings(c: &Config, p: &super::ProviderConfig) -> Vec<(&'static str, String)> {
    let o = &p.oidc;
    let mut out = Vec::new();
    if !p.name.is_empty() && !super::oidc_name_ok(&p.name) {
        out.push((
            "name",
            format!(
                "{:?} cannot be part of the path /oidc/<name>: use 1-64 letters, digits, '-' or '_'",
                p.name
            ),
        ));
    }
    match o.auth_flow_type.to_ascii_lowercase().as_str() {
        "code" => {}
        "implicit" | "hybrid" => out.push((
            "auth_flow_type",
            format!(
                "{:?} is refused: it hands tokens to the browser in the URL, where history, logs and referrers \
                 leak them, with no PKCE to bind them to this server (RFC 9700 2.1.2); use `code`, which Tessera runs with PKCE",
                o.auth_flow_type
            ),
        )),
        other => out.push(("auth_flow_type", format!("{other:?} is not a flow: use `code`"))),
    }
    if super::ClaimsSource::parse(&o.claims_source).is_none() {
        out.push((
            "claims_source",
            format!(
                "{:?} is not a source: `token` (the id_token) or `endpoint` (UserInfo)",
                o.claims_source
            ),
        ));
    }
    if o.client_id.is_empty() {
        out.push((
            "client_id",
            "the client ID the provider gave this server is needed".into(),
        ));
    }
    let endpoints: [(&'static str, &str); 6] = [
        ("discovery_url", &o.discovery_url),
        ("auth_url", &o.auth_url),
        ("token_url", &o.token_url),
        ("user_info_url", &o.user_info_url),
        ("jwks_url", &o.jwks_url),
        ("issuer", &o.issuer),
    ];
    for (field, url) in endpoints {
        if !url.is_empty() && !super::provider_url_ok(url) {
            out.push((
                field,
                format!("{url:?} must be an https URL (plain http only on a loopback address)"),
            ));
        }
    }
    if o.discovery_url.is_empty() {
        for (field, url) in [
            ("auth_url", &o.auth_url),
            ("token_url", &o.token_url),
            ("issuer", &o.issuer),
            ("jwks_url", &o.jwks_url),
        ] {
            if url.is_empty() {
                out.push((field, "needed when there is no discovery_url".into()));
            }
        }
        if super::ClaimsSource::parse(&o.claims_source) == Some(super::ClaimsSource::Endpoint)
            && o.user_info_url.is_empty()
        {
            out.push((
                "user_info_url",
                "needed for claims_source endpoint when there is no discovery_url".into(),
            ));
        }
    }
    let redirect = super::oidc_redirect_uri(c, p);
    if redirect.is_empty() {
        out.push((
            "redirect_uri",
            format!(
                "needed (this server's /oidc/{}, as registered with the provider), or set server.public_url",
                p.name
            ),
        ));
    } else if !redirect.ends_with(&format!("/oidc/{}", p.name)) {
        out.push((
            "redirect_uri",
            format!(
                "{redirect:?} must be this server's /oidc/{} (the provider returns there)",
                p.name
            ),
        ));
    }
    if o.request_timeout.as_duration().is_zero() {
        out.push(("request_timeout", "must be more than 0".into()));
    }
    out
}

/// What does not stop a start but is worth a word.
fn warnings(c: &Config, warn: &mut impl FnMut(&str, String)) {
    for (i, p) in c.users.providers.iter().enumerate() {
        if p.is_oidc() {
            if !p.oidc.state_secret.is_empty() {
                warn(
                    &format!("users.providers[{i}].state_secret"),
                    "unused: Tessera keeps each sign-in's state in the database, so replicas need no shared secret"
                        .into(),
                );
            }
            continue;
        }
        if p.ldap.user_filter_template.trim().is_empty() {
            warn(
                &format!("users.providers[{i}].user_filter_template"),
                "empty: this provider finds no users (only local users can log in), e.g. (uid={{ .Username }})".into(),
            );
        }
    }
    cluster(c, warn);
    let loopback = ["127.0.0.1", "localhost", "::1", "[::1]"].contains(&c.server.address.as_str());
    if !loopback && !c.tokens.issuer.starts_with("https://") {
        warn(
            "tokens.issuer",
            format!(
                "{:?} is not an https URL: OpenID and OAuth clients that check the issuer refuse it (set it to server.public_url)",
                c.tokens.issuer
            ),
        );
    }
    if c.tokens.signing_algorithms().is_ok_and(|a| !a.contains(&"RS256")) {
        warn(
            "tokens.algorithms",
            "RS256 is not among them: OpenID Discovery requires it, and many resource-server libraries know only RS256"
                .into(),
        );
    }
    if c.database.resolve().is_ok_and(|(b, _)| b != Backend::Sqlite)
        && c.tokens.key_encryption_secret.is_empty()
        && c.tokens.key_encryption_secret_file.is_empty()
    {
        warn("tokens.key_encryption_secret", super::NO_SECRET_WARNING.into());
    }
    if c.database.resolve().map(|(b, _)| b == Backend::Sqlite).unwrap_or(false)
        && c.database.sqlite.flags.split('&').any(|f| f == "cache=shared")
        && !c.database.sqlite.flags.split('&').any(|f| f == "mode=memory")
    {
        warn(
            "database.sqlite.flags",
            "cache=shared is ignored for a file database (with WAL it only adds lock errors)".into(),
        );
    }
}

/// Stoke's `cluster` keys: accepted, and what becomes of each said, since Tessera replicas need none of them.
fn cluster(c: &Config, warn: &mut impl FnMut(&str, String)) {
    let k = &c.cluster;
    if k.enabled {
        warn(
            "cluster.enabled",
            "not needed: Tessera replicas that share a database share one key ring (rotation is decided in the \
             database, every replica re-reads it each cluster.key_check_interval), so every replica's JWKS and \
             /api/pkeys list every key; unlike Stoke, keys stay persisted (tokens.persist_keys)"
                .into(),
        );
    }
    if !k.static_peers.is_empty() {
        warn(
            "cluster.static_peers",
            format!(
                "{} peer(s) ignored: replicas never call each other, so static peers are unnecessary (point them all \
                 at one database instead)",
                k.static_peers.len()
            ),
        );
    }
    if k.enabled && (k.discovery != "static" || k.refresh_sec != 30) {
        warn(
            "cluster.discovery",
            "discovery and refresh_sec are ignored: there is no peer federation to discover or refresh".into(),
        );
    }
    if !k.instance_id.is_empty() {
        warn(
            "cluster.instance_id",
            format!(
                "only names Stoke's imported keys ({0:?}-p-0, {0:?}-p-1, … as Stoke served them); Tessera's own kids \
                 are key thumbprints, the same on every replica",
                k.instance_id
            ),
        );
    }
}

/// Email and registration: what self-service accounts need to work safely.
fn accounts_findings(c: &Config) -> Vec<(&'static str, String)> {
    let (e, r) = (&c.email, &c.registration);
    let mut out = Vec::new();
    if !e.smtp_host.is_empty() {
        if !(e.public_url.starts_with("https://") || e.public_url.starts_with("http://")) {
            out.push((
                "email.public_url",
                "must be an http(s) URL when email.smtp_host is set: every link in a message is built from it".into(),
            ));
        }
        if !e.from.contains('@') || e.from.contains(['\r', '\n']) {
            out.push(("email.from", "must be an address when email.smtp_host is set".into()));
        }
    }
    if r.mode == "confirm" && e.smtp_host.is_empty() {
        out.push((
            "registration.mode",
            "confirm needs email: set email.smtp_host, email.from and email.public_url".into(),
        ));
    }
    if r.require_anonymous_token && !r.anonymous_tokens {
        out.push((
            "registration.require_anonymous_token",
            "needs registration.anonymous_tokens: true (nobody could get one)".into(),
        ));
    }
    const RESERVED: [&str; 10] = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "stk", "anon", ""];
    for name in r.anonymous_claims.keys() {
        if RESERVED.contains(&name.as_str()) {
            out.push((
                "registration.anonymous_claims",
                format!("{name:?} cannot be set on anonymous tokens"),
            ));
        }
    }
    if e.send_lease.as_duration() <= e.smtp_timeout.as_duration() * 2 {
        out.push((
            "email.send_lease",
            "must be more than twice email.smtp_timeout, or a slow send could be sent again by another replica".into(),
        ));
    }
    if !e.templates_dir.is_empty() && !std::path::Path::new(&e.templates_dir).is_dir() {
        out.push((
            "email.templates_dir",
            format!("{:?} is not a directory", e.templates_dir),
        ));
    }
    if e.outbox_poll_interval.as_duration().is_zero() {
        out.push(("email.outbox_poll_interval", "must be more than 0".into()));
    }
    if e.confirm_link_duration.as_secs() == 0 || e.reset_link_duration.as_secs() == 0 {
        out.push(("email.reset_link_duration", "link lifetimes must be at least 1s".into()));
    }
    if r.anonymous_token_duration.as_secs() == 0 {
        out.push(("registration.anonymous_token_duration", "must be at least 1s".into()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_duration_must_exceed_twice_token_duration() {
        let mut c = Config::default();
        c.tokens.key_duration = crate::config::GoDuration::from_secs(60);
        c.tokens.token_duration = crate::config::GoDuration::from_secs(30);
        let keys: Vec<String> = check(&c).into_iter().filter(|f| f.2).map(|f| f.0).collect();
        assert_eq!(keys, vec!["tokens.key_duration"]);
    }

    #[test]
    fn a_shared_database_without_a_secret_is_a_warning() {
        let mut c = Config::default();
        c.database.url = crate::config::Secret::new("postgres://u@h/db");
        let found: Vec<(String, bool)> = check(&c)
            .into_iter()
            .filter(|f| f.0.starts_with("tokens.key_encryption"))
            .map(|f| (f.0, f.2))
            .collect();
        assert_eq!(found, vec![("tokens.key_encryption_secret".to_string(), false)]);
        c.tokens.key_encryption_secret = crate::config::Secret::new("a secret of some length");
        assert!(!check(&c).iter().any(|f| f.0.starts_with("tokens.key_encryption")));
        // SQLite files get a KEK file of their own.
        c = Config::default();
        assert!(!check(&c).iter().any(|f| f.0.starts_with("tokens.key_encryption")));
    }
}
