//! The local account of an upstream sign-in, in one transaction: found by its identity (provider, `iss`,
//! `sub`), else joined by verified email when allowed, else created (`source: OIDC:<provider>`, named by its
//! email, as in Stoke); its memberships of the groups `OIDC:<provider>` links manage made to follow the claims;
//! and the exchange pair `/api/login` redeems. Nothing is written when the sign-in is refused.

use crate::db::users::{self as user_db, UserRow};
use crate::db::{DbConn, DbError, catalog, oidc as oidc_db};
use crate::user_source::sync::{self, fit};

use super::Profile;
use super::claims::SignIn;

/// The `source` of the users a provider vouched for: `OIDC:<provider>`.
pub fn source_of(provider: &str) -> String {
    format!("OIDC:{provider}")
}

/// What the operator allows a sign-in to do.
pub struct Policy {
    pub require_group_link: bool,
    pub link_by_verified_email: bool,
}

/// The outcome of storing a sign-in.
pub enum Stored {
    /// The account, created or updated, and the exchange pair stored.
    User(UserRow),
    /// Refused, nothing written: a stable code and the reason, for the error page.
    Refused(&'static str, String),
}

/// The exchange pair to store with the sign-in: its digest and when it expires.
pub struct Exchange<'a> {
    pub digest: &'a [u8],
    pub expires_at: i64,
}

pub fn store(
    c: &mut DbConn,
    provider: &str,
    sign_in: &SignIn,
    profile: &Profile,
    policy: &Policy,
    exchange: &Exchange<'_>,
    now: i64,
) -> Result<Stored, DbError> {
    let (managed, wanted) = sync::linked_groups(c, "OIDC", provider, |spec| sign_in.matches(spec))?;
    if policy.require_group_link && wanted.is_empty() {
        return Ok(Stored::Refused(
            "oidc_no_group_link",
            format!("no group link of OIDC:{provider} matches this user's claims, so it may not sign in here"),
        ));
    }
    let identity = (provider, profile.issuer.as_str(), profile.subject.as_str());
    let user = match linked_user(c, identity)? {
        Some(user) => returning(c, identity, user, profile, now)?,
        None => match first_sign_in(c, provider, profile, policy, now)? {
            Ok(user) => {
                oidc_db::link_identity(c, identity, user.id, now)?;
                user
            }
            // A parallel first sign-in of this same identity may have committed between the lookup above and the
            // email check (PostgreSQL and MariaDB read what is committed at each statement): the account the
            // check found is then this identity's own, not another's.
            Err(refused) => match linked_user(c, identity)? {
                Some(user) => returning(c, identity, user, profile, now)?,
                None => return Ok(refused),
            },
        },
    };
    sync::apply_links(c, provider, user.id, &managed, &wanted)?;
    oidc_db::insert_exchange(c, exchange.digest, provider, user.id, exchange.expires_at)?;
    Ok(Stored::User(user))
}

/// The account linked to `identity`, if any.
fn linked_user(c: &mut DbConn, identity: (&str, &str, &str)) -> Result<Option<UserRow>, DbError> {
    match oidc_db::identity_user(c, identity.0, identity.1, identity.2)? {
        Some(id) => user_db::find(c, id),
        None => Ok(None),
    }
}

/// A returning identity: its last sign-in noted, its profile refreshed.
fn returning(
    c: &mut DbConn,
    identity: (&str, &str, &str),
    user: UserRow,
    profile: &Profile,
    now: i64,
) -> Result<UserRow, DbError> {
    oidc_db::touch_identity(c, identity, now)?;
    refresh_profile(c, user, profile, now)
}

/// The account of an identity seen for the first time: joined by verified email when allowed, else created.
fn first_sign_in(
    c: &mut DbConn,
    provider: &str,
    profile: &Profile,
    policy: &Policy,
    now: i64,
) -> Result<Result<UserRow, Stored>, DbError> {
    let Some(email) = profile.email.as_deref().filter(|e| e.len() <= 255) else {
        return Ok(Err(Stored::Refused(
            "oidc_no_email",
            "the provider gave no usable email (email_claim), which names the account".into(),
        )));
    };
    if let Some(existing) = user_db::find_for_login(c, email)? {
        return join_by_email(c, provider, existing, profile, policy);
    }
    if !user_db::find_any_case(c, email)?.is_empty() || user_db::email_taken_by_other(c, email, email)? {
        return Ok(Err(taken(email)));
    }
    let mut user = UserRow::new_local(
        &fit(email),
        Some(email),
        (&fit(&profile.first_name), &fit(&profile.last_name)),
        (None, None),
        now,
    );
    user.source = source_of(provider);
    user_db::insert(c, &user)?;
    Ok(Ok(user))
}

/// A first sign-in whose email names an existing account: joined only when the provider verified the email, the
/// operator allows it (or the account is this provider's already: a user Stoke created, imported without the
/// identity Stoke never kept), the account has no identity at this provider yet and does not hold `stk=S`.
fn join_by_email(
    c: &mut DbConn,
    provider: &str,
    existing: UserRow,
    profile: &Profile,
    policy: &Policy,
) -> Result<Result<UserRow, Stored>, DbError> {
    let email = profile.email.as_deref().unwrap_or_default();
    let allowed = policy.link_by_verified_email || existing.source == source_of(provider);
    if !(allowed && profile.email_verified)
        || existing.email.as_deref() != Some(email)
        || oidc_db::has_identity_at(c, provider, existing.id)?
    {
        return Ok(Err(taken(email)));
    }
    if catalog::letters_of_user(c, existing.id)?.is_superuser() {
        return Ok(Err(Stored::Refused(
            "oidc_link_refused",
            "the account with this email holds stk=S, which no upstream sign-in may take over".into(),
        )));
    }
    Ok(Ok(existing))
}

fn taken(email: &str) -> Stored {
    Stored::Refused(
        "oidc_account_exists",
        format!("an account named {email:?} or with that email exists and is not linked to this provider"),
    )
}

/// The provider's current names and email on an account it is linked to (an email another account has is not
/// copied: the column is unique).
fn refresh_profile(c: &mut DbConn, mut user: UserRow, profile: &Profile, now: i64) -> Result<UserRow, DbError> {
    let (first, last) = (fit(&profile.first_name), fit(&profile.last_name));
    let email = match profile.email.as_deref().filter(|e| e.len() <= 255) {
        Some(e) if user.email.as_deref() != Some(e) && !user_db::email_taken_by_other(c, e, &user.username)? => {
            Some(e.to_string())
        }
        _ => user.email.clone(),
    };
    if user.fname != first || user.lname != last || user.email != email {
        user.fname = first;
        user.lname = last;
        user.email = email;
        user_db::update_profile(c, &user, now)?;
    }
    Ok(user)
}
