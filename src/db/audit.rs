//! The audit trail: one row per admin write or security event.

use diesel::prelude::*;

use super::schema::audit_log;
use super::{DbConn, DbError, new_id};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = audit_log)]
pub struct AuditRow {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

/// Records an event. Long fields are cut to their column sizes.
pub fn record(c: &mut DbConn, at: i64, actor: &str, action: &str, target: &str, detail: &str) -> Result<(), DbError> {
    let cut = |s: &str, n: usize| s.chars().take(n).collect::<String>();
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::id.eq(new_id()),
            audit_log::at.eq(at),
            audit_log::actor.eq(cut(actor, 255)),
            audit_log::action.eq(cut(action, 64)),
            audit_log::target.eq(cut(target, 255)),
            audit_log::detail.eq(cut(detail, 4000)),
        ))
        .execute(c)?;
    Ok(())
}

/// Which entries a listing shows; a `None` does not narrow it. Text matches ignore case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Exactly this actor.
    pub actor: Option<String>,
    /// Actions that start with this (`login.`, or a whole action name).
    pub action: Option<String>,
    /// Exactly this target.
    pub target: Option<String>,
    /// Recorded at or after (Unix seconds).
    pub since: Option<i64>,
    /// Recorded before (Unix seconds).
    pub until: Option<i64>,
}

/// `value` as a `LIKE` pattern that matches only itself (lower-cased; the column is lower-cased too).
fn literal(value: &str) -> String {
    value
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// The entries `filter` selects, newest first (ties by id, so pages never overlap or skip).
pub fn list(c: &mut DbConn, filter: &Filter, offset: i64, limit: i64) -> Result<Vec<AuditRow>, DbError> {
    use super::users::lower;
    let exact = |v: &Option<String>| v.as_deref().map_or_else(|| "%".to_string(), literal);
    let prefix = filter
        .action
        .as_deref()
        .map_or_else(|| "%".to_string(), |a| format!("{}%", literal(a)));
    Ok(audit_log::table
        .filter(lower(audit_log::actor).like(exact(&filter.actor)).escape('\\'))
        .filter(lower(audit_log::action).like(prefix).escape('\\'))
        .filter(lower(audit_log::target).like(exact(&filter.target)).escape('\\'))
        .filter(audit_log::at.ge(filter.since.unwrap_or(i64::MIN)))
        .filter(audit_log::at.lt(filter.until.unwrap_or(i64::MAX)))
        .order((audit_log::at.desc(), audit_log::id.desc()))
        .offset(offset)
        .limit(limit)
        .select(AuditRow::as_select())
        .load(c)?)
}

/// Ids of up to `limit` rows recorded before `before`, oldest first.
pub fn older_than(c: &mut DbConn, before: i64, limit: i64) -> Result<Vec<i64>, DbError> {
    Ok(audit_log::table
        .filter(audit_log::at.lt(before))
        .order(audit_log::at.asc())
        .select(audit_log::id)
        .limit(limit)
        .load(c)?)
}

/// Deletes the rows of `ids` recorded before `before`.
pub fn delete_older(c: &mut DbConn, ids: &[i64], before: i64) -> Result<usize, DbError> {
    if ids.is_empty() {
        return Ok(0);
    }
    Ok(diesel::delete(
        audit_log::table
            .filter(audit_log::id.eq_any(ids))
            .filter(audit_log::at.lt(before)),
    )
    .execute(c)?)
}
