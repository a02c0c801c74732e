//! [`Secret`]: a string that (de)serializes as itself but never shows in `Debug`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A secret string on the wire: bot tokens, context tokens, AES keys, typing tickets and
/// the `get_updates_buf` cursor (which embeds the bot token, §19).
///
/// It serializes and deserializes exactly as a JSON string, but its `Debug` output is
/// `Secret(<redacted, N bytes>)` so it cannot leak through logs. It has no `Display`;
/// call [`expose`](Self::expose) where the value is really needed.
///
/// ```
/// use ilink_proto::Secret;
/// let s = Secret::from("CTX-1");
/// assert_eq!(s.expose(), "CTX-1");
/// assert_eq!(format!("{s:?}"), "Secret(<redacted, 5 bytes>)");
/// assert_eq!(serde_json::to_string(&s).unwrap(), "\"CTX-1\"");
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Unwraps the secret value. Do not log it.
    pub fn into_inner(self) -> String {
        self.0
    }

    /// Whether the value is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Length of the value in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<redacted, {} bytes>)", self.0.len())
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl From<&String> for Secret {
    fn from(value: &String) -> Self {
        Self(value.clone())
    }
}

impl PartialEq<str> for Secret {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Secret {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_and_round_trips() {
        let s: Secret = serde_json::from_str("\"AARzJWAF\"").unwrap();
        assert_eq!(s, "AARzJWAF");
        let dbg = format!("{s:?} {:#?}", Some(&s));
        assert!(!dbg.contains("AARzJWAF"), "{dbg}");
        assert_eq!(serde_json::to_value(&s).unwrap(), "AARzJWAF");
        assert!(serde_json::from_str::<Secret>("12").is_err());
        assert!(Secret::default().is_empty());
        assert_eq!(Secret::new("abc").len(), 3);
        assert_eq!(Secret::new("abc").into_inner(), "abc");
    }
}
