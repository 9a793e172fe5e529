//! Kinds of credential, and the one rule of credential-scoped claim groups: a group limited to some kinds gives
//! its claims only to logins of those kinds (DESIGN 8). Every path that assembles claims for a token (login,
//! refresh, `client_credentials`) and the admin rights check ask [`Kind::admitted_by`]; nothing else reads a
//! group's `credentials`.

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

    /// Does a group whose `credentials` column is `limit` give its claims to a login of this kind? `None` (no
    /// limit) admits every kind; otherwise the kind must be listed. A limit that lists no known kind admits none.
    pub fn admitted_by(self, limit: Option<&str>) -> bool {
        match limit {
            None => true,
            Some(list) => list.split(',').map(str::trim).any(|k| k == self.as_str()),
        }
    }
}

/// [`Kind::admitted_by`] for a session whose stored kind may be unknown: such a session gets only unlimited
/// groups.
pub fn admits(session: Option<Kind>, limit: Option<&str>) -> bool {
    match session {
        Some(kind) => kind.admitted_by(limit),
        None => limit.is_none(),
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks and normalises a group's credential limit as an admin or a dbinit file gives it: known kinds, no
/// duplicates, in the order of [`Kind::ALL`]. `None`: no limit. An empty list is refused (it would admit no
/// login at all; delete the group instead).
pub fn normalise(kinds: Option<&[String]>) -> Result<Option<String>, String> {
    let Some(kinds) = kinds else { return Ok(None) };
    let mut parsed = Vec::new();
    for k in kinds {
        let kind = Kind::parse(k.trim()).ok_or_else(|| {
            let known: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
            format!("unknown credential kind {k:?}; known: {}", known.join(", "))
        })?;
        parsed.push(kind);
    }
    if parsed.is_empty() {
        return Err("a credential limit needs at least one kind (omit it, or send null, for no limit)".into());
    }
    let list: Vec<&str> = Kind::ALL
        .into_iter()
        .filter(|k| parsed.contains(k))
        .map(Kind::as_str)
        .collect();
    Ok(Some(list.join(",")))
}

/// A stored limit as the API shows it.
pub fn listed(limit: Option<&str>) -> Option<Vec<String>> {
    limit.map(|l| l.split(',').filter(|k| !k.is_empty()).map(str::to_string).collect())
}

/// Of claims read with their group's limit, those a session of `kind` gets.
pub fn admitted<T>(rows: impl IntoIterator<Item = (T, Option<String>)>, kind: Option<Kind>) -> Vec<T> {
    rows.into_iter()
        .filter(|(_, limit)| admits(kind, limit.as_deref()))
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
            let got = admitted(rows.clone(), Some(session));
            for (i, limit) in subsets.iter().enumerate() {
                let should = limit.as_ref().is_none_or(|ks| ks.contains(&session));
                assert_eq!(got.contains(&i), should, "{session} against {limit:?}");
            }
        }
    }
}
