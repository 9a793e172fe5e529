//! Stoke's LDAP filter templates: text with `{{ .Username }}` and `{{ .UserDN }}` placeholders (Go template
//! syntax). Parsed here, where the configuration is checked; filled in by the LDAP provider, which escapes the
//! values.

/// A value a template asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    Username,
    UserDn,
}

/// A filter template with `{{ .Username }}` and `{{ .UserDN }}` placeholders (Go template syntax).
#[derive(Debug, Clone)]
pub struct Template(Vec<Piece>);

#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Value(Placeholder),
}

impl Template {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("unclosed {{{{ in template {text:?}"))?;
            pieces.push(match after[..end].trim() {
                ".Username" => Piece::Value(Placeholder::Username),
                ".UserDN" => Piece::Value(Placeholder::UserDn),
                other => {
                    return Err(format!(
                        "unknown placeholder {{{{ {other} }}}} (only {{{{ .Username }}}} and {{{{ .UserDN }}}})"
                    ));
                }
            });
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Template(pieces))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The text with each placeholder replaced by what `fill` gives for it.
    pub fn render(&self, fill: impl Fn(Placeholder) -> String) -> String {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Value(p) => out.push_str(&fill(*p)),
            }
        }
        out
    }
}
