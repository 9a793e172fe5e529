//! Where a Stoke deployment's configuration is found, and what `validate` says of Stoke's `cluster` keys.

use crate::cli::tessera;

#[test]
fn tessera_config_names_the_file_and_the_log_says_which_was_read() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("elsewhere.yaml");
    let db = dir.path().join("t.db");
    std::fs::write(
        &file,
        format!(
            "server:\n  port: 18099\ndatabase:\n  url: sqlite://{}\nlogging:\n  pretty_stdout: false\n",
            db.display()
        ),
    )
    .unwrap();
    let out = tessera(dir.path())
        .arg("validate")
        .env("TESSERA_CONFIG", &file)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("configuration read from {} (TESSERA_CONFIG)", file.display())),
        "{stderr}"
    );
    assert!(stdout.contains("port: 18099"), "{stdout}");
    // --config wins over the environment; the log of a real command names the file and how it was chosen.
    let out = tessera(dir.path())
        .arg("--config")
        .arg(&file)
        .arg("migrate")
        .env("TESSERA_CONFIG", "/nowhere.yaml")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let line = stdout
        .lines()
        .find(|l| l.contains("configuration read"))
        .expect("no log line");
    assert!(
        line.contains(&file.display().to_string()) && line.contains("--config"),
        "{line}"
    );
    // A file the environment names must exist.
    let out = tessera(dir.path())
        .arg("validate")
        .env("TESSERA_CONFIG", "/nowhere.yaml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("/nowhere.yaml: cannot read config file (named by TESSERA_CONFIG)")
    );
}

#[test]
fn validate_explains_stokes_cluster_keys() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.yaml");
    let cluster = "cluster:\n  enabled: true\n  discovery: static\n  static_peers: [\"https://stoke-1:8080\", \"https://stoke-2:8080\"]\n  refresh_sec: 15\n  instance_id: stoke1\n";
    std::fs::write(&file, cluster).unwrap();
    let out = tessera(dir.path())
        .arg("validate")
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for (key, says) in [
        ("cluster.enabled", "share one key ring"),
        ("cluster.static_peers", "2 peer(s) ignored"),
        ("cluster.discovery", "refresh_sec are ignored"),
        ("cluster.instance_id", "\"stoke1\"-p-0"),
    ] {
        assert!(
            stderr.lines().any(|l| l.contains(key) && l.contains(says)),
            "{key}: {stderr}"
        );
    }
}
