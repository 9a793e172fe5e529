//! The configuration as a YAML tree before it is typed: aliases, environment overrides, and scalars coerced
//! to the types the default configuration has (YAML 1.1 booleans, numbers as text), with unknown keys noted.

use std::collections::BTreeMap;

use serde_yaml_ng::{Mapping, Value};

use super::load::ENV_PREFIX;

/// Keys spelt differently by Stoke's code and its README, renamed to the one Tessera documents.
const ALIASES: &[(&[&str], &str, &str)] = &[(&["database", "mysql"], "flag", "flags")];

pub(super) fn rename_aliases(tree: &mut Value) {
    for (parents, from, to) in ALIASES {
        let mut node = Some(&mut *tree);
        for p in *parents {
            node = node.and_then(|n| n.get_mut(*p));
        }
        if let Some(Value::Mapping(map)) = node
            && !map.contains_key(*to)
            && let Some(v) = map.remove(*from)
        {
            map.insert(Value::String((*to).into()), v);
        }
    }
}

pub(super) fn parse_yaml(text: &str) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Ok(Value::Mapping(Mapping::new()));
    }
    match serde_yaml_ng::from_str::<Value>(text) {
        Ok(Value::Null) => Ok(Value::Mapping(Mapping::new())),
        Ok(v @ Value::Mapping(_)) => Ok(v),
        Ok(_) => Err("the file must be a YAML mapping of sections (server:, database:, …)".into()),
        Err(e) => Err(format!("not valid YAML: {e}")),
    }
}

pub(super) fn schema_of<T: serde::Serialize>(value: &T) -> Value {
    serde_yaml_ng::to_value(value).unwrap_or(Value::Null)
}

/// Writes each `TESSERA__A__B=v` into the tree at `a.b` (as a string; [`coerce`] types it). Returns the
/// dotted keys set, with the variable that set each.
pub(super) fn apply_env(tree: &mut Value, env: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in env {
        if let Some(rest) = name.strip_prefix(ENV_PREFIX)
            && !rest.is_empty()
        {
            vars.insert(name.clone(), value);
        }
    }
    let mut set = Vec::new();
    for (name, value) in vars {
        let path: Vec<String> = name[ENV_PREFIX.len()..]
            .split("__")
            .map(|s| s.to_ascii_lowercase())
            .collect();
        if path.iter().any(|p| p.is_empty()) {
            continue;
        }
        let mut node = &mut *tree;
        for segment in &path {
            if !matches!(node, Value::Mapping(_)) {
                *node = Value::Mapping(Mapping::new());
            }
            let Value::Mapping(map) = node else { break };
            node = map.entry(Value::String(segment.clone())).or_insert(Value::Null);
        }
        *node = Value::String(value);
        set.push((path.join("."), name));
    }
    set
}

/// Walks `tree` beside `schema`: types scalars the way the schema expects (YAML 1.1 booleans such as `yes`
/// and `off`, numbers and lists from environment strings, numbers where text is expected) and lists keys the
/// schema does not know, each with the closest known key.
pub(super) fn coerce(
    tree: &mut Value,
    schema: &Value,
    path: &str,
    provider_schema: &Value,
    unknown: &mut Vec<(String, String)>,
) {
    match (schema, &mut *tree) {
        (Value::Mapping(known), Value::Mapping(given)) if !known.is_empty() => {
            for (key, value) in given.iter_mut() {
                let Some(name) = key.as_str() else {
                    unknown.push((path.to_string(), format!("key {key:?} is not a string")));
                    continue;
                };
                let child = if path.is_empty() {
                    name.to_string()
                } else {
                    format!("{path}.{name}")
                };
                match known.get(name) {
                    Some(sub) => coerce(value, sub, &child, provider_schema, unknown),
                    None => unknown.push((child, unknown_key_message(name, known))),
                }
            }
        }
        (Value::Bool(_), Value::String(s)) => {
            if let Some(b) = yaml11_bool(s) {
                *tree = Value::Bool(b);
            }
        }
        (Value::Number(_), Value::String(s)) => {
            if let Ok(n) = serde_yaml_ng::from_str::<Value>(s.trim())
                && n.is_number()
            {
                *tree = n;
            }
        }
        (Value::String(_), Value::Number(n)) => *tree = Value::String(n.to_string()),
        (Value::String(_), Value::Bool(b)) => *tree = Value::String(b.to_string()),
        (Value::Sequence(_), Value::String(s)) => {
            // From the environment: a comma-separated list.
            let items = s.split(',').map(str::trim).filter(|s| !s.is_empty());
            *tree = Value::Sequence(items.map(|s| Value::String(s.into())).collect());
        }
        (Value::Sequence(_), Value::Sequence(items)) if path == "users.providers" => {
            for (i, item) in items.iter_mut().enumerate() {
                coerce(item, provider_schema, &format!("{path}[{i}]"), provider_schema, unknown);
            }
        }
        _ => {}
    }
}

fn unknown_key_message(name: &str, known: &Mapping) -> String {
    let closest = known
        .keys()
        .filter_map(Value::as_str)
        .map(|k| (strsim::jaro_winkler(name, k), k))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match closest {
        Some((score, k)) if score > 0.7 => format!("unknown key (ignored); did you mean `{k}`?"),
        _ => "unknown key (ignored)".into(),
    }
}

/// YAML 1.1 booleans, which Stoke's Go YAML library accepts: yes/no, on/off, y/n, true/false.
fn yaml11_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "yes" | "y" | "on" | "true" | "1" => Some(true),
        "no" | "n" | "off" | "false" | "0" => Some(false),
        _ => None,
    }
}
