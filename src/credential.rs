//! Kinds of credential, and the one rule of credential-scoped claim groups: a group limited to some kinds gives
//! its claims only to logins of those kinds, and a group whose limit lists [`SECOND_FACTOR`] only to logins that
//! had a second factor (DESIGN 8). Every path that assembles claims for a token (login, refresh,
//! `client_credentials`) and the admin rights check ask [`admits`]; nothing else reads a group's `credentials`.

use std::fmt;

/// How a session was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A local password (or a directory user's kept local password while the directory is down).
    Password,
    /// An API key (`tsk_…`).
    ApiKey,
    /// A password the directory (LDAP) checked.
    Ldap,
    /// An upstream OpenID provider.
    Oidc,
    /// `POST /api/anonymous`.
    Anonymous,
    /// An OAuth client's own credentials (`client_credentials`).
    Client,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Password,
        Kind::ApiKey,
        Kind::Ldap,
        Kind::Oidc,
        Kind::Anonymous,
        Kind::Client,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Password => "password",
            Kind::ApiKey => "api_key",
            Kind::Ldap => "ldap",
            Kind::Oidc => "oidc",
            Kind::Anonymous => "anonymous",
            Kind::Client => "client",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The `amr` values (RFC 8176 where one exists) of a token of a session of this kind.
    pub fn amr(self) -> &'static [&'static str] {
        match self {
            Kind::Password | Kind::Ldap => &["pwd"],
            Kind::ApiKey => &["api_key"],
            Kind::Oidc => &["ext"],
            Kind::Anonymous | Kind::Client => &[],
        }
    }

    /// Does a group whose `credentials` column is `limit` give its claims to a login of this kind (second
    /// factor aside)? `None` (no limit) admits every kind; a limit that lists kinds admits those; a limit that
    /// lists only [`SECOND_FACTOR`] admits every kind.
    pub fn admitted_by(self, limit: Option<&str>) -> bool {
        let Some(list) = limit else { return true };
        let mut kinds = list
            .split(',')
            .map(str::trim)
            .filter(|k| *k != SECOND_FACTOR)
            .peekable();
        kinds.peek().is_none() || kinds.any(|k| k == self.as_str())
    }
}

/// The entry of a group's limit that asks for a login with a second factor (TOTP or a recovery code).
pub const SECOND_FACTOR: &str = "mfa";

/// How a session was started: its kind of credential, and whether the login had a second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Login {
    pub kind: Kind,
    pub second_factor: bool,
}

impl Login {
    pub fn new(kind: Kind, second_factor: bool) -> Self {
        Login { kind, second_factor }
    }
}

/// The rule: does a group whose `credentials` column is `limit` give its claims to `session`? A session of a
/// kind this version does not know (`None`) gets only unlimited groups.
pub fn admits(session: Option<Login>, limit: Option<&str>) -> bool {
    match (session, limit) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(login), Some(list)) => {
            let needs_factor = list.split(',').any(|k| k.trim() == SECOND_FACTOR);
            login.kind.admitted_by(limit) && (login.second_factor || !needs_factor)
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks and normalises a group's credential limit as an admin or a dbinit file gives it: known kinds (and
/// [`SECOND_FACTOR`]), no duplicates, in the order of [`Kind::ALL`], `mfa` last. `None`: no limit. An empty
/// list is refused (it would admit no login at all; delete the group instead).
pub fn normalise(kinds: Option<&[String]>) -> Result<Option<String>, String> {
    let Some(kinds) = kinds else { return Ok(None) };
    let mut parsed = Vec::new();
    let mut factor = false;
    for k in kinds {
        if k.trim() == SECOND_FACTOR {
            factor = true;
            continue;
        }
        let kind = Kind::parse(k.trim()).ok_or_else(|| {
            let known: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
            format!(
                "unknown credential kind {k:?}; known: {}, and {SECOND_FACTOR}",
                known.join(", ")
            )
        })?;
        parsed.push(kind);
    }
    if parsed.is_empty() && !factor {
        return Err("a credential limit needs at least one kind (omit it, or send null, for no limit)".into());
    }
    let list: Vec<&str> = Kind::ALL
        .into_iter()
        .filter(|k| parsed.contains(k))
        .map(Kind::as_str)
        .chain(factor.then_some(SECOND_FACTOR))
        .collect();
    Ok(Some(list.join(",")))
}

/// A stored limit as the API shows it.
pub fn listed(limit: Option<&str>) -> Option<Vec<String>> {
    limit.map(|l| l.split(',').filter(|k| !k.is_empty()).map(str::to_string).collect())
}

/// Of claims read with their group's limit, those `session` gets.
pub fn admitted<T>(rows: impl IntoIterator<Item = (T, Option<String>)>, session: Option<Login>) -> Vec<T> {
    rows.into_iter()
        .filter(|(_, limit)| admits(session, limit.as_deref()))
        .map(|(claim, _)| claim)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_limit_admits_every_kind() {
        for k in Kind::ALL {
            assert!(k.admitted_by(None));
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
    }

    #[test]
    fn a_name_that_merely_contains_a_kind_is_not_it() {
        assert!(!Kind::ApiKey.admitted_by(Some("api_keys,password_x")));
        assert!(!Kind::Password.admitted_by(Some("")));
        assert!(Kind::Password.admitted_by(Some("ldap, password")));
        assert!(!admits(None, Some("password")));
        assert!(admits(None, None));
    }

    #[test]
    fn mfa_in_a_limit_asks_for_a_second_factor() {
        let (plain, strong) = (Login::new(Kind::Password, false), Login::new(Kind::Password, true));
        assert!(!admits(Some(plain), Some("password,mfa")) && admits(Some(strong), Some("password,mfa")));
        assert!(admits(Some(strong), Some("mfa")) && !admits(Some(plain), Some("mfa")));
        assert!(!admits(Some(Login::new(Kind::ApiKey, true)), Some("password,mfa")));
        assert!(admits(Some(plain), Some("password")));
        let given = |v: &[&str]| normalise(Some(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()));
        assert_eq!(given(&["mfa", "password"]), Ok(Some("password,mfa".into())));
        assert_eq!(given(&["mfa"]), Ok(Some("mfa".into())));
    }

    #[test]
    fn normalise_orders_dedups_and_refuses() {
        let given = |v: &[&str]| normalise(Some(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()));
        assert_eq!(
            given(&["api_key", "password", "api_key"]),
            Ok(Some("password,api_key".into()))
        );
        assert!(given(&[]).is_err());
        assert!(given(&["pasword"]).is_err());
        assert_eq!(normalise(None), Ok(None));
    }

    /// Every limit (each subset of the kinds, and none) against every kind, as groups of one user: a session gets
    /// exactly the claims of the groups that admit its kind, never one of a group limited to other kinds.
    #[test]
    fn a_session_gets_only_claims_of_groups_admitting_its_kind() {
        let subsets: Vec<Option<Vec<Kind>>> = std::iter::once(None)
            .chain((1u32..64).map(|bits| Some((0..6).filter(|i| bits & (1 << i) != 0).map(|i| Kind::ALL[i]).collect())))
            .collect();
        let rows: Vec<(usize, Option<String>)> = subsets
            .iter()
            .enumerate()
            .map(|(i, limit)| {
                let names: Option<Vec<String>> = limit
                    .as_ref()
                    .map(|ks| ks.iter().rev().map(|k| k.as_str().to_string()).collect());
                (i, normalise(names.as_deref()).unwrap_or(Some(String::new())))
            })
            .collect();
        for session in Kind::ALL {
            let got = admitted(rows.clone(), Some(Login::new(session, false)));
            for (i, limit) in subsets.iter().enumerate() {
                let should = limit.as_ref().is_none_or(|ks| ks.contains(&session));
                assert_eq!(got.contains(&i), should, "{session} against {limit:?}");
            }
        }
    }
}
