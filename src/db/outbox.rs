//! The email outbox: every message is stored here, in the transaction of the change that causes it, before any
//! SMTP traffic. A sender owns a row while `claimed_until` lies in the future: claiming is one conditional
//! UPDATE whose affected-row count says who won, so replicas never send one message at the same time.

use diesel::prelude::*;

use super::schema::email_outbox;
use super::{DbConn, DbError, new_id};

// No `Debug`: bodies carry single-use links.
#[derive(Clone, Queryable, Selectable)]
#[diesel(table_name = email_outbox)]
pub struct OutboxRow {
    pub id: i64,
    pub recipient: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: String,
    pub created_at: i64,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub claimed_until: i64,
    pub failed_at: Option<i64>,
    pub last_error: Option<String>,
}

/// Queues a message, due now. Returns its id.
pub fn enqueue(
    c: &mut DbConn,
    recipient: &str,
    subject: &str,
    text: &str,
    html: &str,
    now: i64,
) -> Result<i64, DbError> {
    let id = new_id();
    diesel::insert_into(email_outbox::table)
        .values((
            email_outbox::id.eq(id),
            email_outbox::recipient.eq(recipient),
            email_outbox::subject.eq(subject),
            email_outbox::body_text.eq(text),
            email_outbox::body_html.eq(html),
            email_outbox::created_at.eq(now),
            email_outbox::attempts.eq(0),
            email_outbox::next_attempt_at.eq(now),
            email_outbox::claimed_until.eq(0),
        ))
        .execute(c)?;
    Ok(id)
}

/// Ids of messages due at `now` that nobody owns, oldest first.
pub fn due(c: &mut DbConn, now: i64, limit: i64) -> Result<Vec<i64>, DbError> {
    Ok(email_outbox::table
        .filter(email_outbox::failed_at.is_null())
        .filter(email_outbox::next_attempt_at.le(now))
        .filter(email_outbox::claimed_until.le(now))
        .order(email_outbox::next_attempt_at.asc())
        .limit(limit)
        .select(email_outbox::id)
        .load(c)?)
}

/// Takes a message for sending until `until`, if it is still due and unowned; `None` when another sender won.
pub fn claim(c: &mut DbConn, id: i64, now: i64, until: i64) -> Result<Option<OutboxRow>, DbError> {
    let n = diesel::update(
        email_outbox::table
            .find(id)
            .filter(email_outbox::failed_at.is_null())
            .filter(email_outbox::next_attempt_at.le(now))
            .filter(email_outbox::claimed_until.le(now)),
    )
    .set(email_outbox::claimed_until.eq(until))
    .execute(c)?;
    if n != 1 {
        return Ok(None);
    }
    Ok(email_outbox::table
        .find(id)
        .select(OutboxRow::as_select())
        .get_result(c)
        .optional()?)
}

/// The SMTP server accepted the message: forget it (its body holds a link that must not linger).
pub fn sent(c: &mut DbConn, id: i64) -> Result<(), DbError> {
    diesel::delete(email_outbox::table.find(id)).execute(c)?;
    Ok(())
}

/// A send failed: retry at `next_attempt_at`, or (with `give_up`) keep only the error.
pub fn failed(c: &mut DbConn, id: i64, next_attempt_at: i64, error: &str, give_up: Option<i64>) -> Result<(), DbError> {
    let error: String = error.chars().take(2000).collect();
    let row = email_outbox::table.find(id);
    if let Some(now) = give_up {
        diesel::update(row)
            .set((
                email_outbox::attempts.eq(email_outbox::attempts + 1),
                email_outbox::failed_at.eq(Some(now)),
                email_outbox::claimed_until.eq(0),
                email_outbox::body_text.eq(""),
                email_outbox::body_html.eq(""),
                email_outbox::last_error.eq(Some(error)),
            ))
            .execute(c)?;
    } else {
        diesel::update(row)
            .set((
                email_outbox::attempts.eq(email_outbox::attempts + 1),
                email_outbox::next_attempt_at.eq(next_attempt_at),
                email_outbox::claimed_until.eq(0),
                email_outbox::last_error.eq(Some(error)),
            ))
            .execute(c)?;
    }
    Ok(())
}

/// Messages still waiting to be sent (for tests and `/metrics`-style checks).
pub fn pending(c: &mut DbConn) -> Result<i64, DbError> {
    Ok(email_outbox::table
        .filter(email_outbox::failed_at.is_null())
        .count()
        .get_result(c)?)
}
