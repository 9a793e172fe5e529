//! `tessera import-stoke`: a Stoke database's users (their Stoke password hashes kept, verified and rehashed at
//! the next login, as dbinit's are), sources, claim groups, claims, links, memberships and unexpired signing keys
//! (verification-only, under the kids Stoke served) brought into Tessera's database in one transaction.
//!
//! [`plan`] decides; this module reads the source, and plans and writes inside one write transaction of the
//! target, so the plan is made against exactly what it is applied to. A second run finds everything in place
//! and writes nothing. With problems the import refuses whole, or with `skip_invalid` leaves out those rows
//! (and the edges that need them) and lists them.

pub mod plan;

use crate::db::import::{self as import_db, Target};
use crate::db::stoke::{self as stoke_db, StokeDump};
use crate::db::{DbConn, DbError, write_transaction};

pub use plan::{Options, Plan, rfc3339};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The source is not (all of) a Stoke database.
    #[error("{0}")]
    NotStoke(String),
    /// Rows Tessera cannot take, or that contradict what it holds; nothing was written.
    #[error("the import was refused, nothing was written ({} problem(s); --skip-invalid leaves those rows out):\n  - {}", .0.len(), .0.join("\n  - "))]
    Refused(Vec<String>),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Reads the Stoke database `from` names (a SQLite file, `postgres://…` or `mysql://…`).
pub fn read_source(from: &str) -> Result<StokeDump, ImportError> {
    let mut conn = stoke_db::open_source(from)?;
    let missing = stoke_db::missing_tables(&mut conn)?;
    if !missing.is_empty() {
        return Err(ImportError::NotStoke(format!(
            "{from} is not a Stoke database: it has no table {}",
            missing.join(", ")
        )));
    }
    Ok(stoke_db::read(&mut conn)?)
}

/// Plans against an empty catalog (a target not yet migrated); refuses as [`import`] would.
pub fn plan_fresh(dump: &StokeDump, opts: &Options, now: i64) -> Result<Plan, ImportError> {
    checked(plan::plan(dump, &Target::default(), opts, now), opts)
}

/// Plans against the catalog of `conn` and, unless `dry_run`, writes the plan, in one write transaction.
pub fn import(conn: &mut DbConn, dump: &StokeDump, opts: &Options, now: i64) -> Result<Plan, ImportError> {
    write_transaction(conn, |c| {
        let target = import_db::read_target(c)?;
        let plan = checked(plan::plan(dump, &target, opts, now), opts)?;
        if !opts.dry_run {
            import_db::apply(c, &plan.changes, now)?;
        }
        Ok(plan)
    })
}

fn checked(plan: Plan, opts: &Options) -> Result<Plan, ImportError> {
    if plan.problems.is_empty() || opts.skip_invalid {
        Ok(plan)
    } else {
        Err(ImportError::Refused(plan.problems))
    }
}

impl Plan {
    /// What the plan does, one line each, for the command's output.
    pub fn describe(&self) -> Vec<String> {
        let c = &self.changes;
        let mut out = Vec::new();
        out.extend(
            c.claims
                .iter()
                .map(|x| format!("claim {:?} ({}={})", x.name, x.short_name, x.value)),
        );
        out.extend(c.groups.iter().map(|x| format!("claim group {:?}", x.name)));
        out.extend(
            c.group_claims
                .iter()
                .map(|(g, cl)| format!("claim {cl:?} in group {g:?}")),
        );
        out.extend(c.links.iter().map(|(g, t, r)| format!("link {t} {r:?} to group {g:?}")));
        out.extend(c.users.iter().map(|u| {
            let password = match (&u.password_hash, &u.password_salt) {
                (None, _) => "no local password",
                (Some(_), Some(_)) => "Stoke password hash kept, rehashed at the next login",
                (Some(_), None) => "password hash kept",
            };
            format!("user {:?} (source {}, {password})", u.username, u.source)
        }));
        out.extend(c.members.iter().map(|(u, g)| format!("user {u:?} in group {g:?}")));
        out.extend(c.keys.iter().map(|k| {
            format!(
                "signing key {} ({}, verification only, until {})",
                k.kid,
                k.algorithm,
                rfc3339(k.expires_at)
            )
        }));
        out
    }

    /// The one-line summary.
    pub fn summary(&self, dry_run: bool) -> String {
        let c = &self.changes;
        if c.is_empty() {
            return format!(
                "nothing to change: everything ({} rows) is in Tessera already",
                self.unchanged
            );
        }
        format!(
            "{} {} users, {} claim groups, {} claims, {} links, {} group claims, {} memberships, {} signing keys ({} rows were there already)",
            if dry_run { "would import" } else { "imported" },
            c.users.len(),
            c.groups.len(),
            c.claims.len(),
            c.links.len(),
            c.group_claims.len(),
            c.members.len(),
            c.keys.len(),
            self.unchanged
        )
    }
}

#[cfg(test)]
mod tests;
