//! Reading a configuration: the YAML file, `TESSERA__SECTION__KEY` environment overrides, YAML 1.1 booleans,
//! unknown-key warnings and a list of every problem found (not just the first).
//!
//! The schema used to check keys and coerce scalars is the default configuration itself, serialized: every
//! key that exists has a default, so the default tree names every known key and its type.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_yaml_ng::{Mapping, Value};

use super::tree::{apply_env, coerce, parse_yaml, rename_aliases, schema_of};
use super::{Config, ProviderConfig, Secret};

/// Environment variables with this prefix override the file: `TESSERA__TOKENS__KEY_DURATION=6h`.
pub const ENV_PREFIX: &str = "TESSERA__";

/// One thing wrong (or suspicious) in the configuration, with where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file (or environment variable) the value came from.
    pub source: String,
    /// The dotted key, e.g. `tokens.key_duration`; empty when the whole file is at fault.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.source, self.message)
        } else {
            write!(f, "{}: {}: {}", self.source, self.key, self.message)
        }
    }
}

/// A configuration that loaded, with the warnings found on the way.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: Config,
    pub warnings: Vec<Problem>,
    /// The file it was read from, if any.
    pub file: Option<PathBuf>,
    /// How that file was chosen: `--config`, `TESSERA_CONFIG`, `found` (a standard place), or `defaults`.
    pub chosen_by: &'static str,
}

/// Every problem that stops a configuration from loading, plus the warnings.
#[derive(Debug, Clone)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration ({} problem(s)):", self.problems.len())?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Names the configuration file when `--config` does not: `TESSERA_CONFIG=/path/config.yaml`.
pub const CONFIG_ENV: &str = "TESSERA_CONFIG";

/// Where a configuration is looked for without `--config` or `TESSERA_CONFIG`, in order: Tessera's place, the
/// place Stoke's image reads (so a Stoke deployment's mounted file is found), the working directory.
pub const CONFIG_PLACES: [&str; 3] = ["/etc/tessera/config.yaml", "/etc/stoke/config.yaml", "config.yaml"];

/// Which file to read, and why: `--config`, else `TESSERA_CONFIG`, else the first of `places` that exists;
/// `None` (the defaults) when none does. A file named by `--config` or `TESSERA_CONFIG` must exist (reading it
/// fails otherwise); a place is only taken when it is there.
pub fn locate(file: Option<&Path>, env_file: Option<&str>, places: &[&str]) -> Option<(PathBuf, &'static str)> {
    if let Some(path) = file {
        return Some((path.to_path_buf(), "--config"));
    }
    if let Some(path) = env_file.filter(|p| !p.is_empty()) {
        return Some((PathBuf::from(path), CONFIG_ENV));
    }
    places
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .map(|p| (p.to_path_buf(), "found"))
}

/// Loads the configuration from the file [`locate`] picks (or the defaults), applies the environment overrides
/// in `env`, and checks it. `strict` turns unknown keys into errors.
pub fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    strict: bool,
) -> Result<LoadedConfig, ConfigError> {
    let env: Vec<(String, String)> = env.into_iter().collect();
    let env_file = env.iter().find(|(k, _)| k == CONFIG_ENV).map(|(_, v)| v.as_str());
    let located = locate(file, env_file, &CONFIG_PLACES);
    let (text, path, chosen_by) = match located {
        Some((path, why)) => match std::fs::read_to_string(&path) {
            Ok(text) => (text, Some(path), why),
            Err(e) => {
                return Err(ConfigError {
                    problems: vec![Problem {
                        source: path.display().to_string(),
                        key: String::new(),
                        message: format!("cannot read config file (named by {why}): {e}"),
                    }],
                    warnings: Vec::new(),
                });
            }
        },
        None => (String::new(), None, "defaults"),
    };
    let source = path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "(defaults)".into());
    let mut loaded = load_from_str(&text, &source, env, strict)?;
    loaded.file = path;
    loaded.chosen_by = chosen_by;
    Ok(loaded)
}

/// Like [`load`], from text already read; `source` names it in messages.
pub fn load_from_str(
    text: &str,
    source: &str,
    env: impl IntoIterator<Item = (String, String)>,
    strict: bool,
) -> Result<LoadedConfig, ConfigError> {
    let mut report = Report::default();
    let mut tree = match parse_yaml(text) {
        Ok(tree) => tree,
        Err(message) => {
            return Err(ConfigError {
                problems: vec![Problem {
                    source: source.into(),
                    key: String::new(),
                    message,
                }],
                warnings: Vec::new(),
            });
        }
    };
    rename_aliases(&mut tree);
    let env_keys = apply_env(&mut tree, env);
    // Where a finding about `key` comes from: the variable that set it, one under it (an unknown section set only
    // from the environment), or one above it; else the file.
    let origin = |key: &str| -> String {
        let within = |inner: &str, outer: &str| inner == outer || inner.starts_with(&format!("{outer}."));
        env_keys
            .iter()
            .find(|(path, _)| within(key, path) || within(path, key))
            .map(|(_, var)| format!("environment variable {var}"))
            .unwrap_or_else(|| source.to_string())
    };

    let schema = schema_of(&Config::default());
    let provider_schema = schema_of(&ProviderConfig::default());
    let mut unknown = Vec::new();
    coerce(&mut tree, &schema, "", &provider_schema, &mut unknown);
    for (key, message) in unknown {
        report.unknown(
            strict,
            Problem {
                source: origin(&key),
                key,
                message,
            },
        );
    }

    let mut sections = match tree {
        Value::Mapping(m) => m,
        _ => Mapping::new(),
    };
    let mut take = |name: &str| sections.remove(name).unwrap_or(Value::Null);
    let mut errors = Vec::new();
    let mut config = Config {
        server: section("server", take("server"), &mut errors),
        database: section("database", take("database"), &mut errors),
        logging: section("logging", take("logging"), &mut errors),
        tokens: section("tokens", take("tokens"), &mut errors),
        telemetry: section("telemetry", take("telemetry"), &mut errors),
        users: section("users", take("users"), &mut errors),
        cluster: section("cluster", take("cluster"), &mut errors),
        security: section("security", take("security"), &mut errors),
        email: section("email", take("email"), &mut errors),
        registration: section("registration", take("registration"), &mut errors),
        oauth: section("oauth", take("oauth"), &mut errors),
    };
    for (key, message) in errors {
        report.problems.push(Problem {
            source: origin(&key),
            key,
            message,
        });
    }

    load_provider_dir(&mut config, &provider_schema, strict, &mut report);
    for (key, message) in read_secret_files(&mut config) {
        report.problems.push(Problem {
            source: origin(&key),
            key,
            message,
        });
    }
    if config.users.enable_ldap && !config.users.providers.iter().any(|p| p.name == "ldap") {
        config.users.providers.push(ProviderConfig {
            name: "ldap".into(),
            kind: "ldap".into(),
            ldap: config.users.ldap.clone(),
            oidc: Default::default(),
        });
    }

    for (key, message, fatal) in super::validate::check(&config) {
        let problem = Problem {
            source: origin(&key),
            key,
            message,
        };
        if fatal {
            report.problems.push(problem);
        } else {
            report.warnings.push(problem);
        }
    }

    if report.problems.is_empty() {
        Ok(LoadedConfig {
            config,
            warnings: report.warnings,
            file: None,
            chosen_by: "defaults",
        })
    } else {
        Err(ConfigError {
            problems: report.problems,
            warnings: report.warnings,
        })
    }
}

#[derive(Default)]
struct Report {
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
}

impl Report {
    fn unknown(&mut self, strict: bool, problem: Problem) {
        if strict {
            self.problems.push(problem)
        } else {
            self.warnings.push(problem)
        }
    }
}

/// Deserializes one section. On an error it records it, drops the offending value (so the default applies)
/// and tries again, so that every bad key is reported, not only the first.
fn section<T: DeserializeOwned + Default>(name: &str, mut value: Value, errors: &mut Vec<(String, String)>) -> T {
    if value.is_null() {
        return T::default();
    }
    for _ in 0..100 {
        match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(parsed) => return parsed,
            Err(e) => {
                let segments: Vec<serde_path_to_error::Segment> = e.path().iter().cloned().collect();
                let key = dotted(name, &segments);
                let message = in_operator_words(&e.into_inner().to_string(), &key);
                errors.push((key, message));
                if segments.is_empty() || !remove_at(&mut value, &segments) {
                    return T::default();
                }
            }
        }
    }
    T::default()
}

/// serde's "invalid type: string \"lots\", expected u16" as an operator reads it: `"lots" is not a port number
/// (0–65535)`. Messages of another shape (durations, unknown variants, …) are already worded and stay.
fn in_operator_words(message: &str, key: &str) -> String {
    let Some((found, expected)) = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        .and_then(|rest| rest.split_once(", expected "))
    else {
        return message.to_string();
    };
    let found = match found.split_once(' ') {
        Some(("string", text)) => text.to_string(),
        Some(("integer" | "floating", value)) => value.trim_start_matches("point ").trim_matches('`').to_string(),
        _ if found == "map" => "a section of keys".into(),
        _ if found == "sequence" => "a list".into(),
        _ if found.starts_with("boolean") => found.trim_start_matches("boolean ").trim_matches('`').to_string(),
        _ => found.to_string(),
    };
    let whole = |range: &str| format!("a whole number from {range}");
    let expected = match expected {
        "u16" if key.ends_with("port") => "a port number (0–65535)".into(),
        "u8" => whole("0 to 255"),
        "u16" => whole("0 to 65535"),
        "u32" => whole("0 to 4294967295"),
        "u64" | "usize" => "a whole number, 0 or more".into(),
        "i32" | "i64" => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        "a boolean" => "true or false (yes/no, on/off)".into(),
        "a sequence" => "a list".into(),
        "a string" => "text".into(),
        other if other.starts_with("struct ") || other == "a map" => "a section of keys".into(),
        other => other.to_string(),
    };
    format!("{found} is not {expected}")
}

fn dotted(section: &str, segments: &[serde_path_to_error::Segment]) -> String {
    use serde_path_to_error::Segment;
    let mut key = section.to_string();
    for segment in segments {
        match segment {
            Segment::Map { key: k } => {
                key.push('.');
                key.push_str(k);
            }
            Segment::Seq { index } => key.push_str(&format!("[{index}]")),
            Segment::Enum { variant } => {
                key.push('.');
                key.push_str(variant);
            }
            Segment::Unknown => {}
        }
    }
    key
}

fn remove_at(value: &mut Value, segments: &[serde_path_to_error::Segment]) -> bool {
    use serde_path_to_error::Segment;
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut node = value;
    for segment in parents {
        node = match (segment, node) {
            (Segment::Map { key }, Value::Mapping(m)) => match m.get_mut(key.as_str()) {
                Some(v) => v,
                None => return false,
            },
            (Segment::Seq { index }, Value::Sequence(s)) => match s.get_mut(*index) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, node) {
        (Segment::Map { key }, Value::Mapping(m)) => m.remove(key.as_str()).is_some(),
        (Segment::Seq { index }, Value::Sequence(s)) if *index < s.len() => {
            s.remove(*index);
            true
        }
        _ => false,
    }
}

/// Reads every secret's `<key>_file` into the secret (a trailing newline dropped), so the rest of the program sees
/// one value; both forms at once, or an unreadable file, is a problem naming the `_file` key.
fn read_secret_files(config: &mut Config) -> Vec<(String, String)> {
    fn from_file(key: &str, secret: &mut Secret, file: &str, out: &mut Vec<(String, String)>) {
        if file.is_empty() {
            return;
        }
        let file_key = format!("{key}_file");
        if !secret.is_empty() {
            let name = key.rsplit('.').next().unwrap_or(key);
            out.push((file_key, format!("set {name} or {name}_file, not both")));
            return;
        }
        match std::fs::read_to_string(file) {
            Ok(text) => *secret = Secret::new(text.trim_end_matches(['\r', '\n'])),
            Err(e) => out.push((file_key, format!("{file:?} is not a readable file: {e}"))),
        }
    }
    let mut out = Vec::new();
    let db = &mut config.database;
    from_file("database.url", &mut db.url, &db.url_file.clone(), &mut out);
    from_file(
        "database.postgres.password",
        &mut db.postgres.password,
        &db.postgres.password_file.clone(),
        &mut out,
    );
    from_file(
        "database.mysql.password",
        &mut db.mysql.password,
        &db.mysql.password_file.clone(),
        &mut out,
    );
    let e = &mut config.email;
    from_file(
        "email.smtp_password",
        &mut e.smtp_password,
        &e.smtp_password_file.clone(),
        &mut out,
    );
    let l = &mut config.users.ldap;
    from_file(
        "users.bind_user_password",
        &mut l.bind_user_password,
        &l.bind_user_password_file.clone(),
        &mut out,
    );
    for (i, p) in config.users.providers.iter_mut().enumerate() {
        let key = format!("users.providers[{i}]");
        let file = p.ldap.bind_user_password_file.clone();
        from_file(
            &format!("{key}.bind_user_password"),
            &mut p.ldap.bind_user_password,
            &file,
            &mut out,
        );
        let file = p.oidc.client_secret_file.clone();
        from_file(
            &format!("{key}.client_secret"),
            &mut p.oidc.client_secret,
            &file,
            &mut out,
        );
    }
    out
}

/// Adds one provider per `*.yaml` file of `users.provider_config_dir` (a missing directory is a warning).
fn load_provider_dir(config: &mut Config, provider_schema: &Value, strict: bool, report: &mut Report) {
    let dir = config.users.provider_config_dir.clone();
    if dir.is_empty() {
        return;
    }
    let files = match yaml_files_in(Path::new(&dir)) {
        Ok(files) => files,
        Err(message) => {
            report.warnings.push(Problem {
                source: dir,
                key: "users.provider_config_dir".into(),
                message,
            });
            return;
        }
    };
    for file in files {
        let source = file.display().to_string();
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) => {
                report.problems.push(Problem {
                    source,
                    key: String::new(),
                    message: format!("cannot read: {e}"),
                });
                continue;
            }
        };
        let mut tree = match parse_yaml(&text) {
            Ok(tree) => tree,
            Err(message) => {
                report.problems.push(Problem {
                    source,
                    key: String::new(),
                    message,
                });
                continue;
            }
        };
        let mut unknown = Vec::new();
        coerce(&mut tree, provider_schema, "", provider_schema, &mut unknown);
        for (key, message) in unknown {
            report.unknown(
                strict,
                Problem {
                    source: source.clone(),
                    key,
                    message,
                },
            );
        }
        let mut errors = Vec::new();
        let mut provider: ProviderConfig = section("provider", tree, &mut errors);
        for (key, message) in errors {
            report.problems.push(Problem {
                source: source.clone(),
                key,
                message,
            });
        }
        if provider.name.is_empty() {
            provider.name = file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
        }
        config.users.providers.push(provider);
    }
}

/// The `*.yaml` and `*.yml` files directly in `dir`, sorted by name.
pub(crate) fn yaml_files_in(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("directory {} cannot be read ({e}); skipped", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    Ok(files)
}
