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

/// Newest first.
pub fn list(c: &mut DbConn, offset: i64, limit: i64) -> Result<Vec<AuditRow>, DbError> {
    Ok(audit_log::table
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
