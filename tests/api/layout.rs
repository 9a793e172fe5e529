//! The one-way flow of the README's "Code layout", checked on the source: routes never reach the database,
//! services never know HTTP, and no two top-level modules import each other (directly or around a loop).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::helpers::repo_path;

/// Every `.rs` file under `dir`, with its text.
fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push((path.display().to_string(), std::fs::read_to_string(&path).unwrap()));
        }
    }
}

/// The files of one top-level module of `src/` (a folder or a file).
fn module(name: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let dir = repo_path(&format!("src/{name}"));
    if dir.is_dir() {
        sources(&dir, &mut out);
    }
    let file = repo_path(&format!("src/{name}.rs"));
    if file.is_file() {
        out.push((file.display().to_string(), std::fs::read_to_string(&file).unwrap()));
    }
    out
}

fn offenders(name: &str, needles: &[&str]) -> Vec<String> {
    module(name)
        .into_iter()
        .flat_map(|(file, text)| {
            text.lines()
                .enumerate()
                .filter(|(_, l)| needles.iter().any(|n| l.contains(n)))
                .map(|(i, l)| format!("{file}:{}: {}", i + 1, l.trim()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn routes_never_touch_the_database_and_services_never_know_http() {
    let found = offenders("routes", &["crate::db", "diesel::"]);
    assert!(found.is_empty(), "routes reach the database:\n{}", found.join("\n"));
    let found = offenders("services", &["actix_web", "crate::routes"]);
    assert!(found.is_empty(), "services know HTTP:\n{}", found.join("\n"));
}

#[test]
fn no_top_level_module_imports_itself_around_a_loop() {
    let mut tops: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(repo_path("src")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if !["lib", "main"].contains(&name.as_str()) && !tops.contains(&name) {
            tops.push(name);
        }
    }
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for top in &tops {
        for (_, text) in module(top) {
            for (i, _) in text.match_indices("crate::") {
                let rest = &text[i + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if tops.contains(&name) && name != *top {
                    uses.entry(top.clone()).or_default().insert(name);
                }
            }
        }
    }
    // Every module reachable from `top` through its imports; a loop is `top` reaching itself.
    for top in &tops {
        let (mut seen, mut todo) = (BTreeSet::new(), vec![top.clone()]);
        while let Some(m) = todo.pop() {
            for next in uses.get(&m).into_iter().flatten() {
                assert!(next != top, "{top} imports itself around a loop: {uses:#?}");
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
    }
}
