//! Growth: the maintenance sweep deletes sessions, link tokens, throttle rows and audit rows that can do
//! nothing any more, in bounded batches, while live sessions keep refreshing.

use std::sync::Arc;

use diesel::prelude::*;
use serde_json::Value;
use tessera::clock::{Clock, ManualClock};
use tessera::config::{Config, GoDuration};
use tessera::db::accounts::{self as accounts_db, TokenKind};
use tessera::db::schema::{
    account_tokens, audit_log, login_failures, refresh_families, refresh_tokens, throttle_buckets,
};
use tessera::services::maintenance::{self, BATCH, Swept};

use crate::db_test;
use crate::helpers::{TestApp, repo_path, spawn_app_full};

const MIN: i64 = 60;
const HOUR: i64 = 3600;

fn lifetimes(c: &mut Config) {
    c.tokens.token_duration = GoDuration::from_secs(5 * MIN as u64);
    c.tokens.refresh_idle_timeout = GoDuration::from_secs(HOUR as u64);
    c.tokens.refresh_max_age = GoDuration::from_secs(4 * HOUR as u64);
    c.security.audit_retention = GoDuration::from_secs(2 * HOUR as u64);
    // Keys that outlive the test, and a maintenance task that does not wake during it: the test sweeps.
    c.tokens.key_duration = GoDuration::from_secs(1000 * HOUR as u64);
    c.cluster.key_check_interval = GoDuration::from_secs(20 * MIN as u64);
}

async fn sweep(app: &TestApp, clock: &ManualClock) -> Swept {
    maintenance::sweep(&app.state, clock.now()).await.unwrap()
}

/// How many rows `query` (a table, maybe filtered) has.
macro_rules! count {
    ($app:expr, $query:expr) => {
        $query
            .count()
            .get_result::<i64>(&mut *$app.state.db.get().unwrap())
            .unwrap()
    };
}

/// The session a refresh token names, if its row exists.
fn family_of(app: &TestApp, refresh: &str) -> Option<String> {
    let id = refresh.split('.').next()?;
    refresh_families::table
        .find(id)
        .select(refresh_families::id)
        .get_result(&mut *app.state.db.get().unwrap())
        .optional()
        .unwrap()
}

/// A session's generation, and whether it still keeps a grace (the pair sealed for tokens just used).
fn generation_of(app: &TestApp, family: &str) -> Option<(i64, bool)> {
    refresh_families::table
        .find(family)
        .select((refresh_families::refresh_count, refresh_families::grace.is_not_null()))
        .get_result(&mut *app.state.db.get().unwrap())
        .optional()
        .unwrap()
}

fn has_family(app: &TestApp, family: &str) -> bool {
    count!(app, refresh_families::table.filter(refresh_families::id.eq(family))) == 1
}

async fn refreshed(app: &TestApp, refresh: &str) -> String {
    let resp = app.refresh(refresh).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    body["refresh"].as_str().unwrap().to_string()
}

/// A link token of `kind`, stored as `name` (its hash column), valid for `lifetime`.
fn link(app: &TestApp, name: &str, lifetime: i64, now: i64) {
    let mut conn = app.state.db.get().unwrap();
    accounts_db::insert_token(
        &mut conn,
        name.into(),
        TokenKind::Reset,
        None,
        String::new(),
        now,
        lifetime,
    )
    .unwrap();
}

fn links(app: &TestApp) -> Vec<String> {
    account_tokens::table
        .select(account_tokens::token_hash)
        .order(account_tokens::token_hash)
        .load(&mut *app.state.db.get().unwrap())
        .unwrap()
}

db_test!(
    the_sweep_forgets_what_can_do_nothing_and_keeps_live_sessions,
    async |db| {
        let clock = ManualClock::new();
        let app = spawn_app_full(
            db,
            lifetimes,
            Some(repo_path("tests/fixtures/stoke-dbinit.yaml")),
            Some(Arc::new(clock.clone())),
        )
        .await
        .unwrap();
        let t0 = clock.now();
        // Three sessions: one kept alive, one left idle, one that will outlive its absolute age.
        let (_, mut live) = app.login_ok("tester", "tester").await;
        let (_, idle) = app.login_ok("tester", "tester").await;
        let live_family = family_of(&app, &live).unwrap();
        let idle_family = family_of(&app, &idle).unwrap();
        // A failed login leaves throttle rows (a bucket of the address, failures of the name) and an audit row.
        assert_eq!(app.login("tester", "wrong").await.status(), 401);
        assert!(count!(app, throttle_buckets::table) > 0 && count!(app, login_failures::table) == 1);
        // Link tokens: one used, one expired, one live.
        link(&app, "used", 10 * HOUR, t0);
        let mut conn = app.state.db.get().unwrap();
        assert!(
            accounts_db::take_token(&mut conn, "used", &[TokenKind::Reset], t0)
                .unwrap()
                .is_some()
        );
        drop(conn);
        link(&app, "expired", MIN, t0);
        link(&app, "live", 10 * HOUR, t0);
        let old_audit = count!(app, audit_log::table.filter(audit_log::at.le(t0)));
        assert!(old_audit >= 3, "logins and the failure are audited");

        clock.advance(50 * MIN);
        live = refreshed(&app, &live).await;
        assert_eq!(generation_of(&app, &live_family), Some((1, true)));
        let swept = sweep(&app, &clock).await;
        assert_eq!((swept.refresh_families, swept.refresh_tokens), (0, 0), "{swept:?}");
        assert_eq!(
            generation_of(&app, &live_family),
            Some((1, true)),
            "the grace (10 s) has not passed: kept"
        );
        assert_eq!(
            links(&app),
            vec!["live".to_string()],
            "used and expired links go at once"
        );
        assert_eq!(swept.account_tokens, 2);
        // Throttle rows that no longer limit anything (the window of failures is 15 min) are gone.
        assert_eq!(count!(app, throttle_buckets::table), 0, "{swept:?}");
        assert_eq!(count!(app, login_failures::table), 0);
        assert!(swept.throttle_rows >= 2, "{swept:?}");

        // Past the idle session's deadline (1 h), the lifetime of its last access token (5 min: the admin API
        // checks its session) and the sweep's minute of margin.
        clock.advance(17 * MIN);
        let swept = sweep(&app, &clock).await;
        assert!(!has_family(&app, &idle_family), "{swept:?}");
        // A session is one row, whatever its refreshes: no token rows to delete with it.
        assert_eq!((swept.refresh_families, swept.refresh_tokens), (1, 0), "{swept:?}");
        assert_eq!(app.refresh(&idle).await.status(), 401);
        // The live session stays, at its generation (which is how a replayed token is recognised); its grace
        // ended long ago, and with it the sealed pair.
        assert!(has_family(&app, &live_family));
        assert_eq!(generation_of(&app, &live_family), Some((1, false)), "{swept:?}");
        assert!(swept.sealed_successors >= 1, "{swept:?}");
        // Audit rows are younger than the 2 h retention: all kept.
        assert_eq!(count!(app, audit_log::table.filter(audit_log::at.le(t0))), old_audit);
        assert_eq!(links(&app), vec!["live".to_string()]);

        // The live session keeps refreshing; a recent login's audit row stays when older ones go.
        clock.advance(40 * MIN);
        live = refreshed(&app, &live).await;
        clock.advance(40 * MIN);
        live = refreshed(&app, &live).await;
        let (_, recent) = app.login_ok("tester", "tester").await;
        let recent_family = family_of(&app, &recent).unwrap();
        let recent_at = clock.now();
        clock.advance(10 * MIN);
        let swept = sweep(&app, &clock).await;
        assert_eq!(
            count!(app, audit_log::table.filter(audit_log::at.le(t0))),
            0,
            "{swept:?}"
        );
        assert!(swept.audit_rows as i64 >= old_audit);
        assert!(count!(app, audit_log::table.filter(audit_log::at.eq(recent_at))) >= 1);
        assert!(has_family(&app, &live_family) && has_family(&app, &recent_family));
        live = refreshed(&app, &live).await;

        // Refreshed every 45 min until past its absolute age (4 h): refused, then swept with all its tokens.
        while clock.now() + 45 * MIN < t0 + 4 * HOUR {
            clock.advance(45 * MIN);
            live = refreshed(&app, &live).await;
        }
        clock.advance(t0 + 4 * HOUR + 7 * MIN - clock.now());
        assert_eq!(app.refresh(&live).await.status(), 401);
        assert!(has_family(&app, &live_family), "refused, not yet swept");
        let swept = sweep(&app, &clock).await;
        assert!(!has_family(&app, &live_family), "{swept:?}");
        assert!(!has_family(&app, &recent_family), "idle for more than an hour");
        assert_eq!(count!(app, refresh_families::table), 0);
        assert_eq!(count!(app, refresh_tokens::table), 0);
    }
);

db_test!(each_sweep_deletes_a_bounded_batch_per_table, async |db| {
    let clock = ManualClock::new();
    let app = spawn_app_full(db, lifetimes, None, Some(Arc::new(clock.clone())))
        .await
        .unwrap();
    let now = clock.now();
    let extra = 100;
    for i in 0..BATCH + extra {
        link(&app, &format!("dead-{i:04}"), -MIN, now);
    }
    let first = sweep(&app, &clock).await;
    assert_eq!(first.account_tokens, BATCH as usize);
    assert_eq!(count!(app, account_tokens::table), extra);
    let second = sweep(&app, &clock).await;
    assert_eq!(second.account_tokens, extra as usize);
    assert_eq!(count!(app, account_tokens::table), 0);
});

db_test!(an_audit_retention_of_zero_keeps_every_row, async |db| {
    let clock = ManualClock::new();
    let app = spawn_app_full(
        db,
        |c| {
            lifetimes(c);
            c.security.audit_retention = GoDuration::from_secs(0);
        },
        Some(repo_path("tests/fixtures/stoke-dbinit.yaml")),
        Some(Arc::new(clock.clone())),
    )
    .await
    .unwrap();
    app.login_ok("tester", "tester").await;
    let rows = count!(app, audit_log::table);
    assert!(rows > 0);
    clock.advance(3 * 365 * 24 * HOUR);
    let swept = sweep(&app, &clock).await;
    assert_eq!(swept.audit_rows, 0);
    assert_eq!(count!(app, audit_log::table), rows);
});
