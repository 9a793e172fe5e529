//! The three migration folders must stay in step: same migration names, each with up.sql and down.sql.

use std::collections::BTreeSet;

fn names(backend: &str) -> BTreeSet<String> {
    let dir = crate::helpers::repo_path(&format!("migrations/{backend}"));
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.unwrap().path();
            for f in ["up.sql", "down.sql"] {
                assert!(path.join(f).is_file(), "{} lacks {f}", path.display());
            }
            path.file_name().unwrap().to_string_lossy().into_owned()
        })
        .collect()
}

#[test]
fn migration_folders_have_identical_names() {
    let sqlite = names("sqlite");
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, names("postgres"), "postgres migrations differ from sqlite");
    assert_eq!(sqlite, names("mysql"), "mysql migrations differ from sqlite");
}
