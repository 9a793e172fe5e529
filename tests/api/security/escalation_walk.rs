//! The property behind `escalation`: random sequences of admin API calls (create, patch and delete claims,
//! groups, links and users; password sets), made by a caller holding one set of letters without `S` (each
//! single letter, `s,U` and combinations of U, G and C in turn), never end with a new `S` holder, a changed
//! superuser account, the caller holding a letter it did not start with, or anybody holding a letter that
//! neither they nor the caller held. Seeds are fixed (and one is drawn per run, printed); a failure names its
//! seed and the calls that led there. `TESSERA_WALK_SEED=n` replays one.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{Value, json};
use tessera::authz::Letters;
use tessera::db::catalog;

use super::superusers;
use crate::admin::{PASSWORD, admin_app, call, id_of, token};
use crate::helpers::{TestApp, TestDb};

/// Callers: the single-letter admins of the admin dbinit, `user_sU`, and combinations made at the start.
const SINGLES: [&str; 8] = [
    "user_c", "user_C", "user_u", "user_U", "user_g", "user_G", "user_s", "user_m",
];
const COMBOS: [&[&str]; 4] = [
    &["L_U", "L_G"],
    &["L_G", "L_C"],
    &["L_U", "L_C"],
    &["L_U", "L_G", "L_C"],
];
const VALUES: [&str; 10] = ["S", "C", "U", "G", "c", "S,C", "U,G", "g,G", " S", "m"];
const STEPS: usize = 40;

struct Walk<'a> {
    app: &'a TestApp,
    rng: StdRng,
    superuser: String,
    /// The caller's name and token.
    caller: (String, String),
    log: Vec<String>,
}

impl Walk<'_> {
    async fn ids(&self, list: &str) -> Vec<i64> {
        let all: Vec<Value> = call(
            self.app,
            Some(&self.superuser),
            Method::GET,
            &format!("/api/admin/{list}?itemsPerPage=255"),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
        all.iter().filter_map(|e| e["id"].as_i64()).collect()
    }

    fn pick(&mut self, ids: &[i64]) -> i64 {
        if ids.is_empty() {
            return 1;
        }
        ids[self.rng.random_range(0..ids.len())]
    }

    /// A small random subset, often empty.
    fn some(&mut self, ids: &[i64]) -> Vec<i64> {
        if self.rng.random_bool(0.3) {
            return Vec::new();
        }
        ids.iter().copied().filter(|_| self.rng.random_bool(0.12)).collect()
    }

    /// Which call to make: mostly one of the caller's own area (claims for C, groups and links for G, users
    /// for U), sometimes any, to try the denials too.
    fn kind(&mut self, held: Letters) -> u32 {
        let mut own: Vec<u32> = Vec::new();
        for (letter, kinds) in [("C", 0..4), ("G", 4..11), ("U", 11..15)] {
            if held.covers(Letters::granted_by(letter)) {
                own.extend(kinds);
            }
        }
        if own.is_empty() || self.rng.random_bool(0.2) {
            return self.rng.random_range(0..15);
        }
        own[self.rng.random_range(0..own.len())]
    }

    fn value(&mut self) -> &'static str {
        VALUES[self.rng.random_range(0..VALUES.len())]
    }

    /// One random call by the caller, which acts with `held`.
    async fn step(&mut self, n: usize, held: Letters) {
        let (claims, groups, users, links) = (
            self.ids("claims").await,
            self.ids("claim-groups").await,
            self.ids("users").await,
            self.ids("group-links").await,
        );
        let (who, token) = self.caller.clone();
        let name = format!("w{n}");
        let short = if self.rng.random_bool(0.8) { "stk" } else { "other" };
        let (method, path, body) = match self.kind(held) {
            0 => (
                Method::POST,
                "/api/admin/claims".to_string(),
                json!({"name": name, "short_name": short, "value": self.value(), "claim_groups": self.some(&groups)}),
            ),
            1 => (
                Method::PATCH,
                format!("/api/admin/claims/{}", self.pick(&claims)),
                json!({"value": self.value(), "short_name": short}),
            ),
            2 => (
                Method::PATCH,
                format!("/api/admin/claims/{}", self.pick(&claims)),
                json!({"claim_groups": self.some(&groups)}),
            ),
            3 => (
                Method::DELETE,
                format!("/api/admin/claims/{}", self.pick(&claims)),
                Value::Null,
            ),
            4 => (
                Method::POST,
                "/api/admin/claim-groups".to_string(),
                json!({"name": name, "claims": self.some(&claims), "users": self.some(&users), "group_links": self.some(&links)}),
            ),
            5 => (
                Method::PATCH,
                format!("/api/admin/claim-groups/{}", self.pick(&groups)),
                json!({"claims": self.some(&claims)}),
            ),
            6 => (
                Method::PATCH,
                format!("/api/admin/claim-groups/{}", self.pick(&groups)),
                json!({"users": self.some(&users), "group_links": self.some(&links)}),
            ),
            7 => (
                Method::DELETE,
                format!("/api/admin/claim-groups/{}", self.pick(&groups)),
                Value::Null,
            ),
            8 => (
                Method::POST,
                "/api/admin/group-links".to_string(),
                json!({"type": "LDAP:", "resource_spec": name, "claim_group": self.pick(&groups)}),
            ),
            9 => (
                Method::PATCH,
                format!("/api/admin/group-links/{}", self.pick(&links)),
                json!({"claim_group": self.pick(&groups), "resource_spec": name}),
            ),
            10 => (
                Method::DELETE,
                format!("/api/admin/group-links/{}", self.pick(&links)),
                Value::Null,
            ),
            11 => (
                Method::PATCH,
                format!("/api/admin/users/{}", self.pick(&users)),
                json!({"claim_groups": self.some(&groups)}),
            ),
            12 => (
                Method::PATCH,
                format!("/api/admin/users/{}", self.pick(&users)),
                json!({"email": format!("{name}@example.com"), "username": name}),
            ),
            13 => {
                let all: Vec<Value> = call(
                    self.app,
                    Some(&self.superuser),
                    Method::GET,
                    "/api/admin/users?itemsPerPage=255",
                    None,
                )
                .await
                .json()
                .await
                .unwrap();
                let target = all[self.rng.random_range(0..all.len())]["username"].clone();
                (
                    Method::PATCH,
                    "/api/admin/localuser".to_string(),
                    json!({"username": target, "newPassword": "walked-in-1", "force": true}),
                )
            }
            _ => (
                Method::DELETE,
                format!("/api/admin/users/{}", self.pick(&users)),
                Value::Null,
            ),
        };
        let body = (!body.is_null()).then_some(body);
        let text = format!(
            "{who}: {method} {path} {}",
            body.as_ref().map(Value::to_string).unwrap_or_default()
        );
        let resp = call(self.app, Some(&token), method, &path, body).await;
        let status = resp.status().as_u16();
        self.log.push(format!("{text} -> {status}"));
        assert!(status < 500, "a 5xx:\n{}", self.log.join("\n"));
    }
}

type Account = (String, Option<String>, Option<String>, String);

/// The letters each of `ids` holds (renamed or deleted, still by id), and the superusers' accounts as they stand.
fn state(app: &TestApp, ids: &[(String, i64)]) -> (BTreeMap<String, Letters>, Vec<Account>) {
    let mut conn = app.state.db.get().unwrap();
    let mut letters = BTreeMap::new();
    for (name, id) in ids {
        letters.insert(name.clone(), catalog::letters_of_user(&mut conn, *id).unwrap());
    }
    let holdings = catalog::holdings(&mut conn).unwrap();
    let supers = holdings
        .superusers()
        .into_iter()
        .map(|id| {
            let u = tessera::db::users::find(&mut conn, id).unwrap().unwrap();
            (u.username, u.email, u.password_hash, u.source)
        })
        .collect();
    (letters, supers)
}

async fn walk(seed: u64) {
    let app = admin_app(TestDb::Sqlite, |_| {}).await.unwrap();
    let superuser = token(&app, "user_S").await;
    let mut names: Vec<String> = SINGLES
        .iter()
        .map(|s| s.to_string())
        .chain(["user_sU".to_string()])
        .collect();
    for (i, groups) in COMBOS.iter().enumerate() {
        let name = format!("combo{i}");
        let mut ids = Vec::new();
        for g in *groups {
            ids.push(id_of(&app, &superuser, "claim-groups", "name", g).await);
        }
        let body = json!({"fname": "", "lname": "", "username": name, "email": format!("{name}@example.com"), "password": PASSWORD});
        let created: Value = call(&app, Some(&superuser), Method::POST, "/api/admin/localuser", Some(body))
            .await
            .json()
            .await
            .unwrap();
        let path = format!("/api/admin/users/{}", created["id"]);
        let resp = call(
            &app,
            Some(&superuser),
            Method::PATCH,
            &path,
            Some(json!({"claim_groups": ids})),
        )
        .await;
        assert_eq!(resp.status(), 200);
        names.push(name);
    }
    let mut everyone = Vec::new();
    for name in names.iter().chain(["user_none".to_string()].iter()) {
        everyone.push((name.clone(), id_of(&app, &superuser, "users", "username", name).await));
    }
    // Signed in before any walk: a later caller may legitimately change an earlier one's password.
    let mut tokens = std::collections::HashMap::new();
    for name in &names {
        tokens.insert(name.clone(), token(&app, name).await);
    }
    let (start_letters, start_supers) = state(&app, &everyone);
    let start_super_ids = superusers(&app);
    assert!(start_letters.values().all(|l| !l.is_superuser()));
    // One caller per letter set (the combinations first, while they hold all their letters), each on the world
    // the ones before it left.
    let mut rng = StdRng::seed_from_u64(seed);
    for name in names.iter().rev() {
        let caller = (name.clone(), tokens[name].clone());
        let (before, _) = state(&app, &everyone);
        // What the caller acts with: its token's letters that it still holds (earlier callers may have given it
        // more, which its token does not carry, or taken some).
        let held = start_letters[name].intersection(before[name]);
        let mut w = Walk {
            app: &app,
            rng: StdRng::seed_from_u64(rng.random()),
            superuser: superuser.clone(),
            caller,
            log: Vec::new(),
        };
        for n in 0..STEPS {
            w.step(n, held).await;
            let (letters, supers) = state(&app, &everyone);
            let context = || format!("seed {seed}, caller {name} ({held}), after:\n{}", w.log.join("\n"));
            assert!(
                superusers(&app).is_subset(&start_super_ids),
                "a new superuser; {}",
                context()
            );
            assert_eq!(supers, start_supers, "a superuser account changed; {}", context());
            let own = before[name];
            assert!(
                own.covers(letters[name]),
                "the caller went from {own} to {}; {}",
                letters[name],
                context()
            );
            for (who, now) in &letters {
                let allowed = before[who].union(held);
                assert!(
                    allowed.covers(*now),
                    "{who} went from {} to {now}; {}",
                    before[who],
                    context()
                );
            }
        }
        let done = w
            .log
            .iter()
            .filter(|l| l.ends_with("-> 200") || l.ends_with("-> 204"))
            .count();
        eprintln!("seed {seed}: {name} ({held}) made {done} of {STEPS} calls succeed");
    }
}

#[tokio::test]
async fn random_admin_calls_never_escalate() {
    if let Some(seed) = std::env::var("TESSERA_WALK_SEED").ok().and_then(|s| s.parse().ok()) {
        return walk(seed).await;
    }
    let drawn = rand::random::<u64>() % 1_000_000;
    eprintln!("walk seeds: 1, {drawn}");
    for seed in [1, drawn] {
        walk(seed).await;
    }
}
