//! A configuration secret: readable by the code that needs it, redacted everywhere else.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A password or key from the configuration. `Debug` and `Serialize` print `[redacted]` (or an empty string
/// when unset, so `validate` still shows that nothing was configured); only [`Secret::expose`] reveals it.
///
/// Not the `secrecy` crate: its `Serialize` writes the value itself (behind an opt-in trait), where `validate`
/// and the effective-config dump need a redacted one, and the wiping on drop it adds would be theatre here, as
/// the exposed value is copied into connection strings and bind requests.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "[redacted]" })
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(if self.0.is_empty() { "" } else { "[redacted]" })
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}
