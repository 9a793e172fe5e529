//! The security invariants of issue #15, a file per family: privilege escalation (`escalation`, with the
//! property test in `escalation_walk`), admin rights that end when the user's do (`live_rights`), limits that
//! parallel requests cannot bypass (`parallel`), data at rest (`at_rest`) and growth (`retention`), and
//! self-registered usernames (`usernames`).

mod at_rest;
mod escalation;
mod escalation_walk;
mod live_rights;
mod parallel;
mod retention;
mod usernames;

use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::TestApp;

/// Checks a response's status and, when `code` is not empty, its error code; returns the body.
pub async fn expect(resp: reqwest::Response, status: u16, code: &str) -> Value {
    let got = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "{body}");
    if !code.is_empty() {
        assert_eq!(body["error"], code, "{body}");
    }
    body
}

/// One admin request (see `crate::admin::call`), checked like [`expect`]; returns the body.
pub async fn expect_call(
    app: &TestApp,
    token: Option<&str>,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
    status: u16,
    code: &str,
) -> Value {
    expect(crate::admin::call(app, token, method, path, body).await, status, code).await
}

/// The users holding `S` now, read from the database the way tokens read it.
pub fn superusers(app: &TestApp) -> BTreeSet<i64> {
    tessera::db::catalog::holdings(&mut app.state.db.get().unwrap())
        .unwrap()
        .superusers()
}

/// A counter or gauge of `/metrics` without labels.
pub async fn counter(app: &TestApp, name: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}
