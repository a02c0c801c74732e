//! [`WireId`]: 64-bit ids that arrive as JSON numbers or strings and must not lose precision.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An opaque server id (`message_id`, `msg_id`, `svr_id`) that round-trips exactly.
///
/// The live server sends these as JSON numbers above 2^53, as decimal strings, and as
/// strings like `"v1:3763981292873992349"` (§2, §19). A `WireId` keeps the value as text
/// together with the JSON form it came in, and serializes back in that same form: a
/// number stays a number (even `u64::MAX`), a string stays a string. Numbers are never
/// routed through `f64`.
///
/// Equality compares form and text: the number `5` and the string `"5"` are different
/// ids; compare [`as_str`](Self::as_str) to ignore the form.
///
/// ```
/// use ilink_proto::WireId;
/// let n: WireId = serde_json::from_str("7448678501208393123").unwrap();
/// assert_eq!(n.as_u64(), Some(7448678501208393123));
/// assert_eq!(serde_json::to_string(&n).unwrap(), "7448678501208393123");
/// let s: WireId = serde_json::from_str("\"v1:123\"").unwrap();
/// assert_eq!(s.as_str(), "v1:123");
/// assert_eq!(s.as_u64(), None);
/// assert_eq!(serde_json::to_string(&s).unwrap(), "\"v1:123\"");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WireId {
    text: String,
    is_number: bool,
}

impl WireId {
    /// An id sent as a JSON number.
    pub fn from_u64(value: u64) -> Self {
        Self {
            text: value.to_string(),
            is_number: true,
        }
    }

    /// An id sent as a (negative) JSON number. Not seen on the wire; kept so any
    /// integer the server sends survives.
    pub fn from_i64(value: i64) -> Self {
        Self {
            text: value.to_string(),
            is_number: true,
        }
    }

    /// An id sent as a JSON string.
    pub fn from_string(value: impl Into<String>) -> Self {
        Self {
            text: value.into(),
            is_number: false,
        }
    }

    /// The id as text: the decimal digits of a number, or the string as sent.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The numeric value, if the id is a non-negative integer (a JSON number, or a string
    /// of decimal digits that fits a `u64`). `"v1:…"` ids have no numeric view.
    pub fn as_u64(&self) -> Option<u64> {
        if self.text.is_empty() || !self.text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        self.text.parse().ok()
    }

    /// Whether the id arrived (and will be sent) as a JSON number.
    pub fn is_number(&self) -> bool {
        self.is_number
    }

    /// The same id in JSON string form (what the official client does to every numeric
    /// id since 2.4.9).
    pub fn to_string_form(&self) -> Self {
        Self::from_string(self.text.clone())
    }
}

impl fmt::Display for WireId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for WireId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_number {
            write!(f, "WireId({})", self.text)
        } else {
            write!(f, "WireId({:?})", self.text)
        }
    }
}

impl From<u64> for WireId {
    fn from(value: u64) -> Self {
        Self::from_u64(value)
    }
}

impl From<String> for WireId {
    fn from(value: String) -> Self {
        Self::from_string(value)
    }
}

impl From<&str> for WireId {
    fn from(value: &str) -> Self {
        Self::from_string(value)
    }
}

impl Serialize for WireId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.is_number {
            if let Ok(v) = self.text.parse::<u64>() {
                return serializer.serialize_u64(v);
            }
            if let Ok(v) = self.text.parse::<i64>() {
                return serializer.serialize_i64(v);
            }
        }
        serializer.serialize_str(&self.text)
    }
}

struct WireIdVisitor;

impl Visitor<'_> for WireIdVisitor {
    type Value = WireId;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an id as a JSON integer or string")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<WireId, E> {
        Ok(WireId::from_u64(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<WireId, E> {
        Ok(WireId::from_i64(v))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<WireId, E> {
        Ok(WireId {
            text: v.to_string(),
            is_number: true,
        })
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<WireId, E> {
        Ok(WireId {
            text: v.to_string(),
            is_number: true,
        })
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<WireId, E> {
        Err(E::custom(format_args!(
            "id {v} is not an integer: ids are integers or strings (a number beyond u64 loses precision)"
        )))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<WireId, E> {
        Ok(WireId::from_string(v))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<WireId, E> {
        Ok(WireId::from_string(v))
    }
}

impl<'de> Deserialize<'de> for WireId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(WireIdVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_stay_numbers() {
        for raw in ["0", "9007199254740993", "18446744073709551615", "-5"] {
            let id: WireId = serde_json::from_str(raw).unwrap();
            assert!(id.is_number());
            assert_eq!(serde_json::to_string(&id).unwrap(), raw);
        }
        let id: WireId = serde_json::from_str("18446744073709551615").unwrap();
        assert_eq!(id.as_u64(), Some(u64::MAX));
        let neg: WireId = serde_json::from_str("-5").unwrap();
        assert_eq!(neg.as_u64(), None);
        assert_eq!(neg.as_str(), "-5");
    }

    #[test]
    fn strings_stay_strings() {
        for raw in [r#""7448678501208393123""#, r#""v1:1""#, r#""""#] {
            let id: WireId = serde_json::from_str(raw).unwrap();
            assert!(!id.is_number());
            assert_eq!(serde_json::to_string(&id).unwrap(), raw);
        }
        let id = WireId::from("7448678501208393123");
        assert_eq!(id.as_u64(), Some(7448678501208393123));
        assert_eq!(WireId::from("").as_u64(), None);
        assert_eq!(WireId::from("+1").as_u64(), None);
        assert_ne!(WireId::from_u64(5), WireId::from("5"));
        assert_eq!(WireId::from_u64(5).to_string_form(), WireId::from("5"));
        assert_eq!(WireId::from_u64(5).to_string(), "5");
    }

    #[test]
    fn rejects_floats_and_others() {
        for raw in ["1.5", "1e3", "true", "null", "[]", "{}"] {
            assert!(serde_json::from_str::<WireId>(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn through_value() {
        let v = json!(18446744073709551615u64);
        let id: WireId = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(&id).unwrap(), v);
    }
}
