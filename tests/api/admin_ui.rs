//! `/admin/`: the embedded console is served with the right types, validators and CSP; app routes fall back to
//! index.html; missing files are 404; `server.disable_admin` turns it off; `server.base_path` prefixes it.
//! (Serving only: the console itself is tested in a real browser by tests/e2e.)

use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LOCATION};

use crate::helpers::{TestDb, spawn_app, spawn_app_with};

fn header(res: &reqwest::Response, name: reqwest::header::HeaderName) -> String {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn index_is_served_with_a_strict_csp() {
    let app = spawn_app(TestDb::Sqlite).await.unwrap();
    let res = app.get("/admin/").await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, CONTENT_TYPE), "text/html; charset=utf-8");
    assert_eq!(header(&res, CACHE_CONTROL), "no-cache");
    let csp = header(&res, CONTENT_SECURITY_POLICY);
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(header(&res, "x-content-type-options".parse().unwrap()), "nosniff");
    let body = res.text().await.unwrap();
    assert!(
        body.contains(r#"<script type="module" src="/admin/js/app.js">"#),
        "{body}"
    );
    // The CSP forbids inline code, so the page must not need any.
    assert!(
        !body.contains("<style") && !body.contains("style="),
        "inline style in index.html"
    );
    assert!(
        !body.contains("<script>") && !body.contains("onclick="),
        "inline script in index.html"
    );
}

#[tokio::test]
async fn history_routes_fall_back_to_index() {
    let app = spawn_app(TestDb::Sqlite).await.unwrap();
    let index = app.get("/admin/").await.text().await.unwrap();
    for path in [
        "/admin/users",
        "/admin/users/123",
        "/admin/groups/5",
        "/admin/login",
        "/admin/index.html",
    ] {
        let res = app.get(path).await;
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(header(&res, CONTENT_TYPE), "text/html; charset=utf-8", "{path}");
        assert_eq!(res.text().await.unwrap(), index, "{path}");
    }
}

#[tokio::test]
async fn assets_have_their_content_types() {
    let app = spawn_app(TestDb::Sqlite).await.unwrap();
    for (path, kind) in [
        ("/admin/js/app.js", "text/javascript; charset=utf-8"),
        ("/admin/js/pages/users.js", "text/javascript; charset=utf-8"),
        ("/admin/app.css", "text/css; charset=utf-8"),
        ("/admin/favicon.svg", "image/svg+xml"),
    ] {
        let res = app.get(path).await;
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(header(&res, CONTENT_TYPE), kind, "{path}");
        assert!(!header(&res, CONTENT_SECURITY_POLICY).is_empty(), "{path}");
        // The same bytes as the checkout (debug-embed: tests serve what a release build serves).
        let file = crate::helpers::repo_path(&format!("admin-ui/{}", path.trim_start_matches("/admin/")));
        assert_eq!(res.bytes().await.unwrap(), std::fs::read(file).unwrap(), "{path}");
    }
}

#[tokio::test]
async fn unknown_assets_are_404_not_the_app() {
    let app = spawn_app(TestDb::Sqlite).await.unwrap();
    // Missing files, and files of the folder that are not part of the app (its README).
    for path in [
        "/admin/missing.js",
        "/admin/js/nope.css",
        "/admin/logo.png",
        "/admin/README.md",
    ] {
        let res = app.get(path).await;
        assert_eq!(res.status(), 404, "{path}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"], "not_found", "{path}");
    }
}

#[tokio::test]
async fn etag_revalidation_answers_304() {
    let app = spawn_app(TestDb::Sqlite).await.unwrap();
    for path in ["/admin/js/app.js", "/admin/users"] {
        let res = app.get(path).await;
        let etag = header(&res, ETAG);
        // The content's SHA-256 (computed when the file was embedded), so a changed file has a new tag.
        let body = res.bytes().await.unwrap();
        assert_eq!(
            etag,
            format!("\"{}\"", &tessera::crypto::sha256_hex(&body)[..32]),
            "{path}"
        );
        let again = app
            .client
            .get(app.url(path))
            .header(IF_NONE_MATCH, &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert!(again.bytes().await.unwrap().is_empty());
        let stale = app
            .client
            .get(app.url(path))
            .header(IF_NONE_MATCH, "\"other\"")
            .send()
            .await
            .unwrap();
        assert_eq!(stale.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn admin_without_slash_redirects() {
    let app = spawn_app(TestDb::Sqlite).await.unwrap();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = client.get(app.url("/admin")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
    // Relative, so a proxy's path prefix is kept: /admin + admin/ = /admin/.
    assert_eq!(header(&res, LOCATION), "admin/");
    assert_eq!(app.get("/admin").await.url().path(), "/admin/");
}

#[tokio::test]
async fn disable_admin_turns_the_console_off() {
    let app = spawn_app_with(TestDb::Sqlite, |c| c.server.disable_admin = true, None)
        .await
        .unwrap();
    for path in ["/admin", "/admin/", "/admin/users", "/admin/js/app.js"] {
        let res = app.get(path).await;
        assert_eq!(res.status(), 404, "{path}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["message"], "the admin console is disabled", "{path}");
    }
}

#[tokio::test]
async fn base_path_prefixes_the_index_urls() {
    let app = spawn_app_with(TestDb::Sqlite, |c| c.server.base_path = "/auth/".into(), None)
        .await
        .unwrap();
    let body = app.get("/admin/users").await.text().await.unwrap();
    assert!(body.contains(r#"src="/auth/admin/js/app.js""#), "{body}");
    assert!(body.contains(r#"href="/auth/admin/app.css""#), "{body}");
    assert!(!body.contains(r#""/admin/"#), "{body}");
}
