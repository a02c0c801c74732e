//! Guarded decoding of response and request bodies.

use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::GetUpdatesResponse;

/// Largest body [`decode`] accepts, 16 MiB. API bodies are small; a getupdates batch is
/// a few kilobytes to a few hundred.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Deepest JSON nesting [`decode`] accepts. Real bodies nest at most about 8 levels
/// (response, message list, message, item list, item, quote, quoted item, media).
///
/// serde_json alone stops at 128, but each nested quote (`ref_msg.message_item`) costs
/// about 64 KiB of stack in a debug build, so 128 levels could overflow a 2 MiB thread
/// stack (a tokio worker's default). At 32 levels decoding stays under 1 MiB.
pub const MAX_DEPTH: usize = 32;

/// Deepest JSON nesting [`decode_updates`] accepts for a whole getupdates body: 100, below
/// serde_json's own limit (it refuses 128 levels), so a refusal is always
/// [`DecodeError::TooDeep`].
///
/// At this stage the messages stay raw JSON values, which cost little stack per level (unlike
/// typed quotes), so 100 levels decode well within a 2 MiB thread stack even in a debug build.
/// Each message is then held to [`MAX_DEPTH`] on its own when it is decoded
/// ([`GetUpdatesResponse::messages`]): one deeply nested message becomes an error value with its
/// raw JSON, and the rest of the batch and the cursor are unaffected (design rule 5). Only a
/// body nested deeper than this is refused as a whole.
pub const MAX_BATCH_DEPTH: usize = 100;

/// Why a body could not be decoded.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The body is empty (or only whitespace). The server must send at least `{}` (§2).
    #[error(
        "the response body is empty: a compatible server must send at least `{{}}` (the official client fails the same way)"
    )]
    Empty,
    /// The body is larger than the limit.
    #[error("the body is {len} bytes, more than the {max}-byte limit: refusing to decode it")]
    TooLarge {
        /// Body length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The JSON nests deeper than the limit.
    #[error("the JSON nests deeper than {max} levels: refusing to decode it")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// The body is not valid JSON or does not have the expected shape.
    #[error("the body is not the expected JSON")]
    Json(#[from] serde_json::Error),
}

/// Decodes a JSON body into `T` with the default limits ([`MAX_BODY_BYTES`],
/// [`MAX_DEPTH`]). Never panics, whatever the input.
///
/// ```
/// use ilink_proto::{decode, DecodeError, GetUpdatesResponse};
/// let r: GetUpdatesResponse = decode(br#"{"msgs":[],"get_updates_buf":"B"}"#).unwrap();
/// assert_eq!(r.next_cursor().unwrap().expose(), "B");
/// assert!(matches!(decode::<GetUpdatesResponse>(b""), Err(DecodeError::Empty)));
/// ```
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    decode_with_limits(bytes, MAX_BODY_BYTES, MAX_DEPTH)
}

/// Decodes a getupdates body: like [`decode`], but the body may nest up to
/// [`MAX_BATCH_DEPTH`] levels, because its messages are only kept as raw values here; each is
/// held to [`MAX_DEPTH`] when [`GetUpdatesResponse::messages`] decodes it. So one message that
/// nests too deep (a long chain of quotes) fails alone, as an error value, and the cursor of
/// its batch can still advance. Never panics, whatever the input.
///
/// ```
/// use ilink_proto::{decode_updates, MAX_DEPTH};
/// let mut item = String::from(r#"{"type":1,"text_item":{"text":"bottom"}}"#);
/// for _ in 0..20 {
///     item = format!(r#"{{"type":1,"ref_msg":{{"message_item":{item}}}}}"#);
/// }
/// let body = format!(r#"{{"msgs":[{{"item_list":[{item}]}},{{"seq":2}}],"get_updates_buf":"B"}}"#);
/// let resp = decode_updates(body.as_bytes()).unwrap();
/// let msgs = resp.messages();
/// assert!(msgs[0].as_ref().unwrap_err().to_string().contains(&MAX_DEPTH.to_string()));
/// assert_eq!(msgs[1].as_ref().unwrap().seq, Some(2));
/// assert_eq!(resp.next_cursor().unwrap().expose(), "B");
/// ```
///
/// # Errors
/// As [`decode`], with [`DecodeError::TooDeep`] only past [`MAX_BATCH_DEPTH`].
pub fn decode_updates(bytes: &[u8]) -> Result<GetUpdatesResponse, DecodeError> {
    decode_with_limits(bytes, MAX_BODY_BYTES, MAX_BATCH_DEPTH)
}

/// [`decode`] with explicit limits. A `max_depth` of 128 or more does not help: serde_json
/// refuses such input itself (as [`DecodeError::Json`]). Large limits are stack-safe only for types that do
/// not recurse deeply while decoding (such as `serde_json::Value`).
///
pub fn decode_with_limits<T: DeserializeOwned>(
    bytes: &[u8],
    max_bytes: usize,
    max_depth: usize,
) -> Result<T, DecodeError> {
    if bytes.len() > max_bytes {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: max_bytes,
        });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(DecodeError::Empty);
    }
    if json_depth_exceeds(bytes, max_depth) {
        return Err(DecodeError::TooDeep { max: max_depth });
    }
    Ok(serde_json::from_slice(bytes)?)
}

/// Whether the bracket nesting of `bytes` goes beyond `max`, ignoring brackets inside
/// strings. Written by hand because serde_json's own limit (128) is fixed and deep
/// structures are costly for serde's flattened-field buffering; this is one linear pass.
/// For invalid JSON the answer may be off, but then serde_json rejects the input anyway.
fn json_depth_exceeds(bytes: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Nesting depth of a JSON value (a scalar is 0). Iterative, so it cannot overflow the
/// stack on a value built by hand.
pub(crate) fn value_depth(value: &Value) -> usize {
    let mut max = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, d)) = stack.pop() {
        match v {
            Value::Array(a) => {
                max = max.max(d + 1);
                stack.extend(a.iter().map(|x| (x, d + 1)));
            }
            Value::Object(o) => {
                max = max.max(d + 1);
                stack.extend(o.values().map(|x| (x, d + 1)));
            }
            _ => {}
        }
    }
    max
}

/// A message of a getupdates batch that did not decode. The rest of the batch and the
/// cursor are unaffected (design rule 5).
///
/// `Debug` and `Display` do not print the raw JSON (it holds a `context_token`); use
/// [`raw`](Self::raw) to inspect it.
pub struct RawMessageError {
    pub(crate) index: usize,
    pub(crate) raw: Value,
    pub(crate) error: RawMessageErrorKind,
}

#[derive(Debug)]
pub(crate) enum RawMessageErrorKind {
    Json(serde_json::Error),
    TooDeep(usize),
}

impl RawMessageError {
    /// Position of the message in `msgs`.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The message's raw JSON, exactly as received.
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// Takes the raw JSON.
    pub fn into_raw(self) -> Value {
        self.raw
    }

    /// The serde error, if the message had the wrong shape (rather than nesting too deep).
    pub fn json_error(&self) -> Option<&serde_json::Error> {
        match &self.error {
            RawMessageErrorKind::Json(e) => Some(e),
            RawMessageErrorKind::TooDeep(_) => None,
        }
    }
}

impl fmt::Display for RawMessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "message #{} of the getupdates batch could not be decoded (",
            self.index
        )?;
        match &self.error {
            // The JSON error itself is the source.
            RawMessageErrorKind::Json(_) => f.write_str("not the expected JSON")?,
            RawMessageErrorKind::TooDeep(max) => write!(f, "nests deeper than {max} levels")?,
        }
        f.write_str("); the other messages and the cursor are unaffected, and its raw JSON is kept")
    }
}

impl fmt::Debug for RawMessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawMessageError")
            .field("index", &self.index)
            .field("error", &self.error)
            .field("raw", &"<redacted>")
            .finish()
    }
}

impl std::error::Error for RawMessageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.error {
            RawMessageErrorKind::Json(e) => Some(e),
            RawMessageErrorKind::TooDeep(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_whitespace() {
        assert!(matches!(decode::<Value>(b""), Err(DecodeError::Empty)));
        assert!(matches!(decode::<Value>(b" \n\t"), Err(DecodeError::Empty)));
        assert!(decode::<Value>(b"{}").is_ok());
    }

    #[test]
    fn limits() {
        let deep = format!("{}{}", "[".repeat(33), "]".repeat(33));
        assert!(matches!(
            decode::<Value>(deep.as_bytes()),
            Err(DecodeError::TooDeep { max: 32 })
        ));
        let ok = format!("{}{}", "[".repeat(32), "]".repeat(32));
        assert!(decode::<Value>(ok.as_bytes()).is_ok());
        // Brackets inside strings do not count.
        let s = format!("\"{}\\\"{}\"", "[".repeat(100), "{".repeat(100));
        assert!(decode::<Value>(s.as_bytes()).is_ok());
        assert!(matches!(
            decode_with_limits::<Value>(b"{}", 1, 64),
            Err(DecodeError::TooLarge { len: 2, max: 1 })
        ));
        assert!(matches!(
            decode::<Value>(b"{\"a\":"),
            Err(DecodeError::Json(_))
        ));
    }

    #[test]
    fn depth_of_values() {
        assert_eq!(value_depth(&serde_json::json!(1)), 0);
        assert_eq!(value_depth(&serde_json::json!({"a": [1, {"b": []}]})), 4);
    }
}
