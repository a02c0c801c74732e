//! Guarded decoding of response and request bodies.

use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::GetUpdatesResponse;
use crate::lenient::MessageErrorKind;

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
    /// A getupdates body whose structure cannot be followed (not an object, a bracket or
    /// quote missing), so neither its cursor nor its messages can be read
    /// ([`decode_updates`]).
    #[error("the getupdates body is not a readable JSON object ({what}, at byte {at})")]
    Malformed {
        /// Byte offset where reading stopped.
        at: usize,
        /// What was wrong there.
        what: &'static str,
    },
    /// A getupdates body whose `get_updates_buf` is present but not a JSON scalar (an
    /// object, an array, a string that is not UTF-8): the batch cannot be acknowledged.
    #[error("the getupdates cursor (get_updates_buf) is present but unreadable")]
    UnreadableCursor,
}

impl DecodeError {
    /// Whether the body was refused before parsing (empty, too large, too deep) or could not
    /// be followed at all, as opposed to a body of the wrong shape for a typed decode.
    pub fn is_unreadable(&self) -> bool {
        !matches!(self, Self::Json(_))
    }
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

/// Decodes a getupdates body tolerantly: what one message or one envelope field holds never
/// fails the batch (design rule 5; docs/protocol.md §7, §19).
///
/// * The body may nest up to [`MAX_BATCH_DEPTH`] levels; each message is held to
///   [`MAX_DEPTH`] when [`GetUpdatesResponse::messages`] decodes it.
/// * Each message is parsed on its own: bytes that are not JSON on their own (invalid UTF-8 in
///   a string, a number such as `1e400`) become an error value carrying the exact bytes
///   ([`RawMessageError::raw_bytes`]), and the other messages and the cursor are unaffected.
/// * `ret` and `errcode` are read from an integer, an integral float (`0.0`) or a numeric
///   string (`"0"`); any other value is unreadable and counts as absent.
/// * `longpolling_timeout_ms` is read from any non-negative number or numeric string, rounded
///   up to whole ms and clamped to [`MAX_LONG_POLL_TIMEOUT_MS`](crate::MAX_LONG_POLL_TIMEOUT_MS).
/// * `get_updates_buf` in any JSON scalar is kept as its text (`12` and `"12"` are the same
///   cursor); `null` is absent.
/// * Repeated keys: the last wins. Unknown fields go to `extra`.
///
/// Never panics, whatever the input.
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
/// [`DecodeError::Empty`], [`DecodeError::TooLarge`], [`DecodeError::TooDeep`] (past
/// [`MAX_BATCH_DEPTH`]), [`DecodeError::Malformed`] when the body's structure cannot be
/// followed, [`DecodeError::UnreadableCursor`] when `get_updates_buf` is an object or array.
/// In each case no cursor can be read: the caller retries the old one.
pub fn decode_updates(bytes: &[u8]) -> Result<GetUpdatesResponse, DecodeError> {
    check_limits(bytes, MAX_BODY_BYTES, MAX_BATCH_DEPTH)?;
    crate::lenient::decode_body(bytes)
}

fn check_limits(bytes: &[u8], max_bytes: usize, max_depth: usize) -> Result<(), DecodeError> {
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
    Ok(())
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
    check_limits(bytes, max_bytes, max_depth)?;
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
/// `Debug` and `Display` do not print the raw message (it holds a `context_token`); use
/// [`raw`](Self::raw) or [`raw_bytes`](Self::raw_bytes) to inspect it.
pub struct RawMessageError {
    pub(crate) index: usize,
    pub(crate) raw: RawPayload,
    pub(crate) error: RawMessageErrorKind,
}

#[derive(Debug)]
pub(crate) enum RawMessageErrorKind {
    Json(serde_json::Error),
    TooDeep(usize),
    Unparsed(MessageErrorKind, String),
}

/// The message as received: parsed JSON, or bytes that did not parse.
#[derive(Clone)]
pub(crate) enum RawPayload {
    Json(Value),
    Bytes(Vec<u8>),
}

impl RawMessageError {
    /// Position of the message in `msgs`.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Why it did not decode.
    pub fn kind(&self) -> MessageErrorKind {
        match &self.error {
            RawMessageErrorKind::Json(_) => MessageErrorKind::Shape,
            RawMessageErrorKind::TooDeep(_) => MessageErrorKind::TooDeep,
            RawMessageErrorKind::Unparsed(k, _) => *k,
        }
    }

    /// The message's raw JSON, exactly as received; `None` when its bytes are not JSON on
    /// their own (see [`raw_bytes`](Self::raw_bytes)).
    pub fn raw(&self) -> Option<&Value> {
        match &self.raw {
            RawPayload::Json(v) => Some(v),
            RawPayload::Bytes(_) => None,
        }
    }

    /// The message's bytes: exactly as received when they did not parse, else its JSON
    /// re-encoded.
    pub fn raw_bytes(&self) -> std::borrow::Cow<'_, [u8]> {
        match &self.raw {
            RawPayload::Json(v) => {
                std::borrow::Cow::Owned(serde_json::to_vec(v).unwrap_or_default())
            }
            RawPayload::Bytes(b) => std::borrow::Cow::Borrowed(b),
        }
    }

    /// Takes the raw JSON (`None` when the bytes did not parse).
    pub fn into_raw(self) -> Option<Value> {
        match self.raw {
            RawPayload::Json(v) => Some(v),
            RawPayload::Bytes(_) => None,
        }
    }

    /// The serde error, if the message had the wrong shape (rather than nesting too deep or
    /// not parsing at all).
    pub fn json_error(&self) -> Option<&serde_json::Error> {
        match &self.error {
            RawMessageErrorKind::Json(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for RawMessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "message #{} of the getupdates batch could not be decoded: ",
            self.index
        )?;
        match &self.error {
            RawMessageErrorKind::Json(_) => f.write_str("it is JSON but not a message"),
            RawMessageErrorKind::TooDeep(max) => write!(f, "it nests deeper than {max} levels"),
            RawMessageErrorKind::Unparsed(kind, detail) => write!(f, "{kind} ({detail})"),
        }
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
            _ => None,
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
