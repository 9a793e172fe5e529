//! Real JWT libraries of other ecosystems verify Tessera's tokens of every algorithm: Python PyJWT (through
//! `/.well-known/jwks.json`, and as Stoke's clients do through the padded `/api/pkeys`), node `jose` (through
//! the JWKS), and Rust's jsonwebtoken where it supports the algorithm.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::db_test;
use crate::helpers::{TestApp, repo_path, spawn_app_with};

/// (algorithm, num_bits, rsa_key_bits) for every algorithm and every RSA size.
const CASES: [(&str, u32, u32); 10] = [
    ("ECDSA", 256, 2048),
    ("ECDSA", 384, 2048),
    ("ECDSA", 512, 2048),
    ("EdDSA", 256, 2048),
    ("RSA", 256, 2048),
    ("RSA", 384, 3072),
    ("RSA", 512, 4096),
    ("PS256", 256, 2048),
    ("RS256", 256, 2048),
    ("ES384", 256, 2048),
];

fn run(program: &str, args: &[&str], input: &Value) -> (bool, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program} (the test script installs it): {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

async fn case(app: &TestApp) -> Value {
    let (token, _) = app.login_ok("sadmin", app.superuser_password.as_deref().unwrap()).await;
    let alg = crate::helpers::header_of(&token)["alg"].as_str().unwrap().to_string();
    json!({
        "jwks": app.url("/.well-known/jwks.json"),
        "pkeys": app.url("/api/pkeys"),
        "token": token,
        "alg": alg,
        "issuer": "tessera",
    })
}

db_test!(every_algorithm_verifies_in_pyjwt_and_jose, async |db| {
    let mut apps = Vec::new();
    for (alg, bits, rsa_bits) in CASES {
        let app = spawn_app_with(
            db,
            |c| {
                c.tokens.algorithm = alg.into();
                c.tokens.num_bits = bits;
                c.tokens.rsa_key_bits = rsa_bits;
            },
            None,
        )
        .await
        .unwrap();
        apps.push(app);
    }
    let mut cases = Vec::new();
    for app in &apps {
        cases.push(case(app).await);
    }
    let algs: Vec<&str> = cases.iter().map(|c| c["alg"].as_str().unwrap()).collect();
    assert_eq!(
        algs,
        [
            "ES256", "ES384", "ES512", "EdDSA", "PS256", "PS384", "PS512", "PS256", "RS256", "ES384"
        ]
    );
    let input = Value::Array(cases.clone());

    let script = repo_path("tests/interop/verify_pyjwt.py");
    let (ok, out) = tokio::task::spawn_blocking({
        let input = input.clone();
        move || run("/usr/bin/python3", &[script.to_str().unwrap()], &input)
    })
    .await
    .unwrap();
    assert!(ok, "PyJWT:\n{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("ok ")).count(),
        2 * CASES.len(),
        "{out}"
    );

    let script = repo_path("tests/interop/verify_jose.mjs");
    let (ok, out) = tokio::task::spawn_blocking(move || run("node", &[script.to_str().unwrap()], &input))
        .await
        .unwrap();
    assert!(ok, "jose:\n{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("ok ")).count(),
        CASES.len(),
        "{out}"
    );

    // Rust's jsonwebtoken too (it has no ES512).
    for (app, case) in apps.iter().zip(&cases) {
        if case["alg"] == "ES512" {
            continue;
        }
        let jwks: jsonwebtoken::jwk::JwkSet = app.get("/.well-known/jwks.json").await.json().await.unwrap();
        let token = case["token"].as_str().unwrap();
        let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
        let key = jsonwebtoken::DecodingKey::from_jwk(jwks.find(&kid).unwrap()).unwrap();
        let alg: jsonwebtoken::Algorithm = case["alg"].as_str().unwrap().parse().unwrap();
        let mut validation = jsonwebtoken::Validation::new(alg);
        validation.set_issuer(&["tessera"]);
        jsonwebtoken::decode::<Value>(token, &key, &validation).unwrap_or_else(|e| panic!("{alg:?}: {e}"));
    }
});

/// The fenced block of `lang` that first follows `marker` in the README.
fn readme_snippet(readme: &str, marker: &str, lang: &str) -> String {
    let from = readme
        .find(marker)
        .unwrap_or_else(|| panic!("README has no {marker:?}"));
    let fence = format!("```{lang}\n");
    let start = readme[from..].find(&fence).unwrap() + from + fence.len();
    let end = readme[start..].find("```").unwrap() + start;
    readme[start..end].to_string()
}

/// The README's "Verify Tessera tokens in your service" programs, extracted and run exactly as printed: PyJWT and
/// node `jose` verify a token through the JWKS and split its comma-joined claim; a token with a changed payload
/// is refused by both.
#[tokio::test]
async fn readme_snippets_verify_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = crate::helpers::test_config("sqlite://unused");
    let phc = tessera::crypto::password::Hasher::new(&cfg.security.password_hash)
        .unwrap()
        .hash("password1")
        .unwrap();
    let dbinit = dir.path().join("roles.yaml");
    std::fs::write(
        &dbinit,
        format!(
            "claims:\n  - claim: \"Reader,,role,reader\"\n  - claim: \"Writer,,role,writer\"\n\
             groups:\n  - {{ name: Staff, claims: [Reader, Writer] }}\n\
             users:\n  - {{ username: rita, password_hash: \"{phc}\", groups: [Staff] }}\n"
        ),
    )
    .unwrap();
    let app = spawn_app_with(crate::helpers::TestDb::Sqlite, |_| {}, Some(dbinit))
        .await
        .unwrap();
    let (token, _) = app.login_ok("rita", "password1").await;
    let sub = crate::helpers::claims_of(&token)["sub"].as_str().unwrap().to_string();
    let (head, rest) = token.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: Value = serde_json::from_slice(&b64.decode(payload).unwrap()).unwrap();
    claims["role"] = json!("reader,writer,admin");
    let forged = format!("{head}.{}.{signature}", b64.encode(claims.to_string()));

    let readme = std::fs::read_to_string(repo_path("README.md")).unwrap();
    let python = readme_snippet(&readme, "**Python** (PyJWT", "python");
    let node = readme_snippet(&readme, "**Node** (`jose`)", "js");
    let py_file = dir.path().join("verify_tessera.py");
    std::fs::write(&py_file, python).unwrap();
    // Beside the interop packages, so that `import 'jose'` resolves as in a project that installed it.
    let js_file = repo_path(&format!("tests/interop/.readme-{:016x}.mjs", rand::random::<u64>()));
    std::fs::write(&js_file, node).unwrap();
    let jwks = app.url("/.well-known/jwks.json");
    let venv = crate::helpers::venv_python();
    let run = |program: String, file: std::path::PathBuf, token: String| {
        let jwks = jwks.clone();
        tokio::task::spawn_blocking(move || {
            let out = Command::new(program)
                .arg(&file)
                .args(["tessera", &jwks, &token])
                .output()
                .unwrap();
            (
                out.status.success(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            )
        })
    };
    let results = [
        run(venv.clone(), py_file.clone(), token.clone()).await.unwrap(),
        run("node".into(), js_file.clone(), token.clone()).await.unwrap(),
        run(venv, py_file, forged.clone()).await.unwrap(),
        run("node".into(), js_file.clone(), forged).await.unwrap(),
    ];
    std::fs::remove_file(&js_file).unwrap();
    let (py, js, py_forged, js_forged) = (&results[0], &results[1], &results[2], &results[3]);
    assert!(
        py.0 && py.1.contains(&format!("verified {sub} ['reader', 'writer']")),
        "PyJWT: {}",
        py.1
    );
    assert!(
        js.0 && js.1.contains(&format!("verified {sub} [ 'reader', 'writer' ]")),
        "jose: {}",
        js.1
    );
    assert!(!py_forged.0, "PyJWT accepted a changed token: {}", py_forged.1);
    assert!(!js_forged.0, "jose accepted a changed token: {}", js_forged.1);
}
