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
