//! The local copy of a directory user: profile fields, `source: LDAP`, and memberships of linked claim groups.
//!
//! A claim group is *managed* by a provider when it has a group link of type `LDAP:<provider>` or `LDAP:` (any
//! LDAP provider; Stoke's plain links). At each login the user's memberships of managed groups are made to follow
//! the directory; memberships of other groups (assigned locally by an admin) are kept, and so is the last
//! superuser's: a directory change never leaves nobody holding `stk=S`.
//!
//! A directory user is only ever stored in a row that is already a directory user's (`source: LDAP`) or a
//! placeholder without a local password (a dbinit entry that assigns groups to a directory user before its first
//! login), found by name in any case; a local account with a local password is never taken over, so a directory
//! entry named `sadmin` cannot become the bootstrap superuser.

use std::collections::HashSet;

use crate::db::users::{self as user_db, UserRow};
use crate::db::{DbConn, DbError, catalog};

use super::DirectoryUser;

/// The `source` of users a directory vouched for.
pub const SOURCE: &str = "LDAP";

/// What a directory login found in the local database.
pub enum Stored {
    /// The local copy of the directory user, created or updated.
    User(UserRow),
    /// A local account (not a directory user's row) has this name: it is left alone and the login refused.
    Conflict,
}

/// Creates or updates the user `username` from the directory's entry and syncs its linked groups; one transaction.
/// A directory user the local database knows under another case (`FRY` for `fry`) keeps its row and its name.
pub fn store(c: &mut DbConn, provider: &str, username: &str, d: &DirectoryUser, now: i64) -> Result<Stored, DbError> {
    let same_name = user_db::find_any_case(c, username)?;
    if same_name
        .iter()
        .any(|u| u.source != SOURCE && u.password_hash.is_some())
    {
        return Ok(Stored::Conflict);
    }
    let linked: Vec<&UserRow> = same_name.iter().filter(|u| mergeable(u)).collect();
    let existing = match linked.iter().find(|u| u.username == username).or(linked.first()) {
        Some(u) => Some((*u).clone()),
        None if same_name.is_empty() => None,
        None => return Ok(Stored::Conflict),
    };
    let username = existing.as_ref().map_or(username, |u| u.username.as_str()).to_string();
    let username = username.as_str();
    let mut d = d.clone();
    d.first_name = fit(&d.first_name);
    d.last_name = fit(&d.last_name);
    // The email column is unique: a directory address another user already has (or one too long) is not copied.
    let email = match d.email.as_ref().filter(|e| e.len() <= COLUMN) {
        Some(e) => {
            if user_db::email_taken_by_other(c, e, username)? {
                None
            } else {
                Some(e.clone())
            }
        }
        None => None,
    };
    let user = match existing {
        Some(mut u) => {
            if u.fname != d.first_name || u.lname != d.last_name || u.email != email || u.source != SOURCE {
                u.fname = d.first_name.clone();
                u.lname = d.last_name.clone();
                u.email = email;
                u.source = SOURCE.into();
                user_db::update_profile(c, &u, now)?;
            }
            u
        }
        None => {
            let mut u = UserRow::new_local(
                username,
                email.as_deref(),
                (&d.first_name, &d.last_name),
                (None, None),
                now,
            );
            u.source = SOURCE.into();
            user_db::insert(c, &u)?;
            u
        }
    };
    sync_groups(c, provider, user.id, &d.groups)?;
    Ok(Stored::User(user))
}

/// Whether a directory user may be stored in this row of its name: a directory user's row, or a placeholder that
/// has no local password.
fn mergeable(u: &UserRow) -> bool {
    u.source == SOURCE || u.password_hash.is_none()
}

/// The width of the users' text columns.
const COLUMN: usize = 255;

/// `text` cut to the column width, on a character boundary.
pub(crate) fn fit(text: &str) -> String {
    let mut end = text.len().min(COLUMN);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// Whether a link of this type applies to `provider` of `kind` (`LDAP`, `OIDC`): `<kind>:<provider>`, `<kind>:`
/// or `<kind>` (case-insensitive kind).
pub fn link_applies(link_type: &str, kind: &str, provider: &str) -> bool {
    let (k, which) = link_type.split_once(':').unwrap_or((link_type, ""));
    k.trim().eq_ignore_ascii_case(kind) && (which.is_empty() || which == provider)
}

/// The claim groups `kind` links of `provider` manage, and those among them whose `resource_spec` `matches`.
pub fn linked_groups(
    c: &mut DbConn,
    kind: &str,
    provider: &str,
    matches: impl Fn(&str) -> bool,
) -> Result<(HashSet<i64>, HashSet<i64>), DbError> {
    let mut managed = HashSet::new();
    let mut wanted = HashSet::new();
    for (link_type, spec, group) in catalog::attached_links(c)? {
        if !link_applies(&link_type, kind, provider) {
            continue;
        }
        managed.insert(group);
        if matches(&spec) {
            wanted.insert(group);
        }
    }
    Ok((managed, wanted))
}

fn sync_groups(c: &mut DbConn, provider: &str, user_id: i64, directory_groups: &[String]) -> Result<(), DbError> {
    // LDAP names and DNs compare case-insensitively.
    let (managed, wanted) = linked_groups(c, "LDAP", provider, |spec| {
        directory_groups
            .iter()
            .any(|g| g.trim().eq_ignore_ascii_case(spec.trim()))
    })?;
    apply_links(c, provider, user_id, &managed, &wanted)
}

/// Makes the user's memberships of the `managed` groups be `wanted`, keeping the last superuser's: a provider's
/// change never leaves nobody holding `stk=S`.
pub fn apply_links(
    c: &mut DbConn,
    provider: &str,
    user_id: i64,
    managed: &HashSet<i64>,
    wanted: &HashSet<i64>,
) -> Result<(), DbError> {
    if managed.is_empty() {
        return Ok(());
    }
    let current: HashSet<i64> = catalog::user_group_ids(c, user_id)?.into_iter().collect();
    let mut gone: Vec<i64> = current
        .iter()
        .filter(|g| managed.contains(g) && !wanted.contains(g))
        .copied()
        .collect();
    if !gone.is_empty() || wanted.difference(&current).next().is_some() {
        // Serialised with admin writes, which check the same invariant.
        catalog::lock_letters(c)?;
    }
    if !gone.is_empty() {
        let holdings = catalog::holdings(c)?;
        let superusers = holdings.superusers();
        if superusers.len() == 1 && superusers.contains(&user_id) {
            // Whatever the provider says, the last superuser stays one: keep the groups that make it so.
            gone.retain(|g| !holdings.group(*g).is_superuser());
            tracing::warn!(
                user_id,
                provider,
                "the provider no longer puts the last superuser in its group; the membership is kept"
            );
        }
    }
    let added: Vec<i64> = wanted.difference(&current).copied().collect();
    catalog::change_user_groups(c, user_id, &gone, &added)
}

#[cfg(test)]
mod tests {
    use super::link_applies;

    #[test]
    fn long_names_are_cut_on_character_boundaries() {
        assert_eq!(super::fit("short"), "short");
        let long = "é".repeat(200);
        let cut = super::fit(&long);
        assert!(cut.len() <= 255 && cut.chars().all(|c| c == 'é'));
    }

    #[test]
    fn link_types_select_providers() {
        assert!(link_applies("LDAP:", "LDAP", "corp"));
        assert!(link_applies("LDAP", "LDAP", "corp"));
        assert!(link_applies("ldap:corp", "LDAP", "corp"));
        assert!(!link_applies("LDAP:other", "LDAP", "corp"));
        assert!(!link_applies("OIDC:", "LDAP", "corp"));
        assert!(link_applies("OIDC:google", "OIDC", "google"));
        assert!(!link_applies("LDAP:google", "OIDC", "google"));
    }
}
