//! Start-up data: Stoke's admin claims and the superuser `sadmin` when no one holds `stk=S`.

use diesel::Connection as _;

use crate::authz::Letters;
use crate::crypto::password::{Hasher, PasswordError};
use crate::db::catalog::{ClaimRow, GroupRow};
use crate::db::users::{self as users_db, UserRow};
use crate::db::{DbConn, DbError, catalog, new_id};

/// The claim key of Stoke's admin console permissions.
pub const ADMIN_CLAIM: &str = "stk";
pub const SUPERUSER: &str = "sadmin";

/// Stoke's admin claims, created when `users.create_stoke_claims` is on (names and descriptions as Stoke's).
const STOKE_CLAIMS: [(&str, &str, &str); 8] = [
    ("Read Claims", "Grants read access to claims", "c"),
    ("Write Claims", "Grants read/write access to claims", "C"),
    ("Read Users", "Grants read access to users", "u"),
    ("Write Users", "Grants read/write access to users", "U"),
    ("Read Groups", "Grants read access to groups", "g"),
    ("Write Groups", "Grants read/write access to groups", "G"),
    ("Super Read", "Grants read access to all stoke admin", "s"),
    ("Monitoring Access", "Grants read access to stoke monitoring", "m"),
];

/// The names start-up gives the superuser's claim, group and person when it has to create them: Stoke's with
/// `users.create_stoke_claims` (a Stoke deployment's people and scripts look for those), Tessera's otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Names {
    /// The `stk=S` claim: name and description.
    pub claim: (&'static str, &'static str),
    /// The group holding it: name and description.
    pub group: (&'static str, &'static str),
    /// `sadmin`'s first and last name.
    pub person: (&'static str, &'static str),
}

pub const STOKE_NAMES: Names = Names {
    claim: (
        "Stoke Super User",
        "Grants superuser management access to the stoke server",
    ),
    group: ("Stoke Superusers", "Stoke server superusers"),
    person: ("Stoke", "Admin"),
};

pub const TESSERA_NAMES: Names = Names {
    claim: (
        "Superuser",
        "Grants every right in Tessera's admin API and console (stk=S)",
    ),
    group: ("Superusers", "Tessera's superusers"),
    person: ("Tessera", "Admin"),
};

impl Names {
    /// The names for `users.create_stoke_claims`.
    pub fn for_config(create_stoke_claims: bool) -> Names {
        if create_stoke_claims {
            STOKE_NAMES
        } else {
            TESSERA_NAMES
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Password(#[from] PasswordError),
}

impl From<diesel::result::Error> for BootstrapError {
    fn from(e: diesel::result::Error) -> Self {
        BootstrapError::Db(DbError::Query(e))
    }
}

/// Creates each missing `stk` admin claim. A name already taken by another claim is left alone.
pub fn ensure_stoke_claims(conn: &mut DbConn, now: i64) -> Result<(), BootstrapError> {
    for (name, description, value) in STOKE_CLAIMS {
        if catalog::claim_by_value(conn, ADMIN_CLAIM, value)?.is_none() && !catalog::claim_name_taken(conn, name)? {
            insert_claim(conn, name, description, value, now)?;
        }
    }
    Ok(())
}

/// Makes sure some user holds `stk=S`. When nobody does, creates (or reuses) `sadmin` with a new random
/// password, puts it in a superuser group, and returns that password so the caller can show it once.
pub fn ensure_superuser(
    conn: &mut DbConn,
    hasher: &Hasher,
    now: i64,
    names: Names,
) -> Result<Option<String>, BootstrapError> {
    conn.transaction(|conn| {
        // Read the way the token parser reads them: a group whose stk value is "S,C" makes superusers too.
        let super_groups: Vec<i64> = catalog::group_letters(conn)?
            .into_iter()
            .filter(|(_, value)| Letters::granted_by(value).is_superuser())
            .map(|(group, _)| group)
            .collect();
        if catalog::members_of_any(conn, &super_groups)? > 0 {
            return Ok(None);
        }
        let group_id = match super_groups.first() {
            Some(&id) => id,
            None => superuser_group(conn, now, names)?,
        };
        let password = random_password();
        let hash = hasher.hash(&password)?;
        let user_id = match users_db::find_by_username(conn, SUPERUSER)? {
            Some(user) => {
                users_db::set_password(conn, user.id, &hash, now)?;
                user.id
            }
            None => {
                let row = UserRow::new_local(SUPERUSER, None, names.person, (Some(&hash), None), now);
                users_db::insert(conn, &row)?;
                row.id
            }
        };
        catalog::add_user_group(conn, user_id, group_id)?;
        Ok(Some(password))
    })
}

/// The group that grants `stk=S`, created with its claim when neither exists.
fn superuser_group(conn: &mut DbConn, now: i64, names: Names) -> Result<i64, BootstrapError> {
    let claim_id = match catalog::claim_by_value(conn, ADMIN_CLAIM, "S")? {
        Some(claim) => claim.id,
        None => insert_claim(conn, names.claim.0, names.claim.1, "S", now)?,
    };
    let group_id = match catalog::group_by_name(conn, names.group.0)? {
        Some(group) => group.id,
        None => {
            let row = GroupRow {
                id: new_id(),
                name: names.group.0.into(),
                description: names.group.1.into(),
                created_at: now,
                credentials: None,
            };
            catalog::insert_group(conn, &row)?;
            row.id
        }
    };
    catalog::add_group_claim(conn, group_id, claim_id)?;
    Ok(group_id)
}

fn insert_claim(
    conn: &mut DbConn,
    name: &str,
    description: &str,
    value: &str,
    now: i64,
) -> Result<i64, BootstrapError> {
    let row = ClaimRow {
        id: new_id(),
        name: name.into(),
        short_name: ADMIN_CLAIM.into(),
        value: value.into(),
        description: description.into(),
        created_at: now,
    };
    catalog::insert_claim(conn, &row)?;
    Ok(row.id)
}

/// 24 random bytes as URL-safe base64: 32 characters, 192 bits.
fn random_password() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>())
}
