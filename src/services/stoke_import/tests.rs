use super::*;
use crate::crypto::keys::Alg;
use crate::db::stoke::{StokeClaim, StokeGroup, StokeKey, StokeLink, StokeUser};

const NOW: i64 = 1_800_000_000;
const KEY: &str = "MHcCAQEEIJl9TB22tVNuoM2TEVuVsVb7PJ07UqGi3SqELlNjtvhtoAoGCCqGSM49AwEHoUQDQgAEY-UV4t9orUi2_FEAiq0xYn0MqwmSlor6QR6CsZlUMlKPssEuA6XdxpvPAkrCGEBnXoVsF00Iaq-S-fGkBd4bPQ==";

fn opts() -> Options {
    Options {
        dry_run: false,
        skip_invalid: false,
        instance_id: String::new(),
        rsa_alg: Alg::PS256,
        providers: vec!["ldap".into()],
    }
}

fn user(id: i64, name: &str, source: &str, hash: Option<&str>) -> StokeUser {
    StokeUser {
        id,
        fname: "F".into(),
        lname: "L".into(),
        source: source.into(),
        email: format!("{name}@example.test"),
        username: name.into(),
        password: hash.map(str::to_string),
        salt: hash.map(|_| "H3UP6GzWV3UISU7HJN/sVT6YjTYcmOPdJwiFcdXMVyQ=".to_string()),
        created_at: Some(NOW - 100),
    }
}

/// Stoke's README rows, reduced: two claims, two groups (one linked), a local and a directory user, keys.
fn dump() -> StokeDump {
    let hash = "+OnrEsjkbdXdXugEKwDLGdqlDnMNV9+WyZ6T9wAtSMzp3jKYY+7pLYxoBlMlmWBOXlC9bviWtS9mw0fa4B6gkA==";
    StokeDump {
        users: vec![
            user(1, "tester", "LOCAL", Some(hash)),
            user(3, "fry", "LDAP:ldap", None),
        ],
        claims: vec![
            StokeClaim {
                id: 1,
                name: "Super".into(),
                short_name: "stk".into(),
                value: "S".into(),
                description: String::new(),
            },
            StokeClaim {
                id: 2,
                name: "Ship".into(),
                short_name: "ship".into(),
                value: "acc".into(),
                description: String::new(),
            },
        ],
        groups: vec![
            StokeGroup {
                id: 1,
                name: "Admins".into(),
                description: String::new(),
            },
            StokeGroup {
                id: 3,
                name: "Crew".into(),
                description: String::new(),
            },
        ],
        links: vec![StokeLink {
            id: 1,
            link_type: "LDAP:ldap".into(),
            resource_spec: "ship_crew".into(),
            group_id: Some(3),
        }],
        group_claims: vec![(1, 1), (2, 3)],
        members: vec![(1, 1), (3, 3)],
        keys: vec![
            StokeKey {
                id: 1,
                text: KEY.into(),
                expires: Some(NOW - 1),
            },
            StokeKey {
                id: 2,
                text: KEY.into(),
                expires: Some(NOW + 3600),
            },
        ],
    }
}

/// The catalog `changes` would leave on an empty Tessera (ids made up), for planning a second run.
fn applied(p: &Plan) -> Target {
    let c = &p.changes;
    let mut t = Target::default();
    for (i, x) in c.claims.iter().enumerate() {
        t.claims
            .push((i as i64, x.name.clone(), x.short_name.clone(), x.value.clone()));
    }
    for (i, x) in c.groups.iter().enumerate() {
        t.groups.push((100 + i as i64, x.name.clone()));
    }
    for (i, u) in c.users.iter().enumerate() {
        t.users.push((200 + i as i64, u.username.clone(), u.email.clone()));
    }
    let id = |list: &[(i64, String)], n: &str| list.iter().find(|x| x.1 == n).map(|x| x.0).unwrap_or(-1);
    let groups = t.groups.clone();
    let claims: Vec<(i64, String)> = t.claims.iter().map(|x| (x.0, x.1.clone())).collect();
    let users: Vec<(i64, String)> = t.users.iter().map(|x| (x.0, x.1.clone())).collect();
    for (g, cl) in &c.group_claims {
        t.group_claims.push((id(&groups, g), id(&claims, cl)));
    }
    for (g, ty, spec) in &c.links {
        t.links.push((Some(id(&groups, g)), ty.clone(), spec.clone()));
    }
    for (u, g) in &c.members {
        t.members.push((id(&users, u), id(&groups, g)));
    }
    for k in &c.keys {
        t.keys.push((k.kid.clone(), k.public_jwk.clone(), k.rotation_step));
    }
    t
}

#[test]
fn a_fresh_import_takes_everything_and_a_second_finds_nothing() {
    let p = plan::plan(&dump(), &Target::default(), &opts(), NOW);
    assert_eq!(p.problems, Vec::<String>::new());
    let c = &p.changes;
    assert_eq!((c.claims.len(), c.groups.len(), c.users.len()), (2, 2, 2));
    assert_eq!((c.group_claims.len(), c.links.len(), c.members.len()), (2, 1, 2));
    assert_eq!(c.users[1].source, "LDAP");
    assert_eq!(c.users[0].created_at, NOW - 100);
    // Key 1 expired: key 2 is the first unexpired one, so Stoke served it as p-0.
    assert_eq!(c.keys.len(), 1);
    let k = &c.keys[0];
    assert_eq!(
        (k.kid.as_str(), k.algorithm.as_str(), k.private_key.as_str()),
        ("p-0", "ES256", "")
    );
    assert_eq!((k.sign_from, k.expires_at), (NOW + 3600, NOW + 3600));
    assert!(k.rotation_step < 0);

    let again = plan::plan(&dump(), &applied(&p), &opts(), NOW);
    assert!(again.changes.is_empty(), "{:?}", again.describe());
    assert!(again.problems.is_empty());
    assert_eq!(again.summary(false).split(':').next(), Some("nothing to change"));
}

#[test]
fn instance_ids_prefix_the_kids() {
    let mut o = opts();
    o.instance_id = "stoke1".into();
    let p = plan::plan(&dump(), &Target::default(), &o, NOW);
    assert_eq!(p.changes.keys[0].kid, "stoke1-p-0");
}

#[test]
fn bad_rows_are_problems_and_skipping_leaves_their_edges_out() {
    let mut d = dump();
    d.users[0].password = Some("not base64!".into());
    d.users[1].source = "KERBEROS".into();
    d.keys[1].text = "garbage".into();
    d.claims[0].value = "S,S".into();
    let p = plan::plan(&d, &Target::default(), &opts(), NOW);
    assert_eq!(p.problems.len(), 4, "{:?}", p.problems);
    for needle in ["malformed password hash", "unknown source", "does not parse", "twice"] {
        assert!(
            p.problems.iter().any(|x| x.contains(needle)),
            "{needle}: {:?}",
            p.problems
        );
    }
    assert!(p.changes.users.is_empty() && p.changes.members.is_empty() && p.changes.keys.is_empty());
    assert_eq!(p.changes.group_claims.len(), 1, "only the edge of the usable claim");
}

#[test]
fn conflicts_with_tessera_are_problems() {
    let mut t = Target::default();
    t.users.push((9, "someone".into(), Some("tester@example.test".into())));
    t.users.push((10, "fry".into(), Some("other@example.test".into())));
    t.claims.push((11, "Super".into(), "stk".into(), "s".into()));
    t.claims.push((12, "Ship access".into(), "ship".into(), "acc".into()));
    let p = plan::plan(&dump(), &t, &opts(), NOW);
    assert_eq!(p.problems.len(), 3, "{:?}", p.problems);
    assert!(
        p.problems
            .iter()
            .any(|x| x.contains("belongs to the Tessera user \"someone\""))
    );
    assert!(
        p.problems
            .iter()
            .any(|x| x.contains("claim \"Super\": Tessera has a claim of this name"))
    );
    // Tessera's claim of the same pair stands for Stoke's, under Tessera's name.
    assert!(p.changes.claims.is_empty());
    let edge = ("Crew".to_string(), "Ship access".to_string());
    assert!(p.changes.group_claims.contains(&edge), "{:?}", p.changes.group_claims);
}
