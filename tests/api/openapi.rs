//! The OpenAPI document: served, committed, current, and covering every route.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::{TestDb, repo_path, spawn_app};

/// The committed document must equal what the code generates; `TESSERA_UPDATE_OPENAPI=1` rewrites it.
#[test]
fn committed_document_is_current() {
    let generated = tessera::routes::openapi::document();
    let path = repo_path("openapi/openapi.json");
    if std::env::var("TESSERA_UPDATE_OPENAPI").is_ok() {
        std::fs::write(&path, format!("{generated}\n")).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
    assert!(
        parse(&committed) == parse(&generated),
        "openapi/openapi.json is stale: run `TESSERA_UPDATE_OPENAPI=1 cargo test --all-features committed_document_is_current`"
    );
}

#[tokio::test]
async fn served_document_and_swagger_ui() {
    let app = spawn_app(TestDb::Sqlite).await.unwrap();
    let served: Value = app.get("/api/openapi.json").await.json().await.unwrap();
    let generated: Value = serde_json::from_str(&tessera::routes::openapi::document()).unwrap();
    assert_eq!(served, generated);
    let ui = app.get("/docs/").await;
    assert_eq!(ui.status(), 200);
    assert!(ui.text().await.unwrap().contains("Swagger UI"));
}

/// `(method, path)` of every `.route(...)` in the route modules (the admin scope's prefix applied).
fn routed() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (file, prefix) in [
        ("src/routes/mod.rs", ""),
        ("src/routes/admin.rs", "/api/admin"),
        ("src/routes/accounts.rs", ""),
        ("src/routes/oauth.rs", ""),
        ("src/routes/clients.rs", ""),
        ("src/routes/api_keys.rs", ""),
        ("src/routes/mfa.rs", ""),
        ("src/routes/oidc.rs", ""),
    ] {
        let text = std::fs::read_to_string(repo_path(file)).unwrap();
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        for part in text.split(".route(").skip(1) {
            let path = part.trim_start().trim_start_matches('"').split('"').next().unwrap();
            let method = part.split("web::").nth(1).unwrap().split('(').next().unwrap();
            // The Swagger UI and the document itself are not API; HEAD is GET without the body.
            if path != "/docs" && path != "/api/openapi.json" && method != "head" {
                out.insert((method.to_string(), format!("{prefix}{path}")));
            }
        }
    }
    out
}

#[test]
fn every_route_is_documented() {
    let doc: Value = serde_json::from_str(&tessera::routes::openapi::document()).unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.clone(), path.clone()));
        }
    }
    let routed = routed();
    assert!(routed.len() > 40, "found only {} routes", routed.len());
    let missing: Vec<_> = routed.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes missing from the OpenAPI document: {missing:?}"
    );
    let extra: Vec<_> = documented.difference(&routed).collect();
    assert!(extra.is_empty(), "documented but not routed: {extra:?}");
}

/// utoipa names a schema by its type's name alone: two `ToSchema` types of one name would silently share one
/// schema (the second replaces the first, and the document describes one with the other's fields).
#[test]
fn schema_names_are_unique() {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&repo_path("src"), &mut files);
    let mut seen: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if !(line.contains("derive(") && (line.contains("ToSchema") || line.contains("IntoResponses"))) {
                continue;
            }
            let Some(decl) = lines[i + 1..]
                .iter()
                .find(|l| l.trim_start().starts_with("pub struct ") || l.trim_start().starts_with("pub enum "))
            else {
                continue;
            };
            let name = decl
                .split_whitespace()
                .nth(2)
                .unwrap()
                .split(['<', '{', '('])
                .next()
                .unwrap()
                .to_string();
            let here = file.display().to_string();
            if let Some(other) = seen.insert(name.clone(), here.clone()) {
                panic!("two schema types named {name}: {other} and {here}");
            }
        }
    }
}
