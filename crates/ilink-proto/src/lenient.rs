//! Tolerant decoding of a getupdates body (docs/protocol.md §7, §19; design rule 5).
//!
//! A getupdates body is split into its top-level fields and its messages by a small structural
//! scanner that only needs the brackets, quotes and commas to be in place. Each envelope field is
//! then read on its own, leniently, and each message is parsed on its own: a message whose bytes
//! are not JSON that serde_json accepts (invalid UTF-8 inside a string, a number such as `1e400`
//! that no `f64` holds) becomes an [`UnparsedMessage`] with its exact bytes, instead of failing
//! the whole body. Only a body whose structure cannot be followed, or whose cursor is present but
//! not a JSON scalar, is refused: then no cursor can be read, and advancing past the batch is
//! impossible.

use std::fmt;

use serde::Deserialize as _;
use serde_json::Value;

use crate::api::GetUpdatesResponse;
use crate::decode::DecodeError;
use crate::secret::Secret;

/// Largest `longpolling_timeout_ms` kept, in ms (one day). Larger values (up to `1e400`) are
/// clamped to it; the client caps it further ([`GetUpdatesResponse::long_poll_timeout`]).
pub const MAX_LONG_POLL_TIMEOUT_MS: i64 = 86_400_000;

/// Why a message of a getupdates batch did not decode.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageErrorKind {
    /// Valid JSON, but not the shape of a message (e.g. `"message_type":"oops"`, or a
    /// `message_id` of 2^64).
    Shape,
    /// Nests deeper than [`MAX_DEPTH`](crate::MAX_DEPTH).
    TooDeep,
    /// A string holds bytes that are not UTF-8.
    InvalidUtf8,
    /// A number is out of the range JSON decoders hold (`1e400`).
    NumberOutOfRange,
    /// The bytes are not JSON at all (a bare word, a broken escape).
    Syntax,
}

impl MessageErrorKind {
    fn describe(self) -> &'static str {
        match self {
            Self::Shape => "it is JSON but not a message",
            Self::TooDeep => "it nests too deep",
            Self::InvalidUtf8 => "it holds bytes that are not UTF-8",
            Self::NumberOutOfRange => "it holds a number out of range",
            Self::Syntax => "it is not valid JSON",
        }
    }
}

impl fmt::Display for MessageErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// An entry of a getupdates `msgs` array that is not JSON on its own (see
/// [`MessageErrorKind`]), kept with its exact bytes and its position in `msgs`.
///
/// Only [`decode_updates`](crate::decode_updates) makes these; they are never serialized.
/// `Debug` does not show the bytes (they may hold a `context_token`).
#[derive(Clone, PartialEq, Eq)]
pub struct UnparsedMessage {
    pub(crate) index: usize,
    pub(crate) bytes: Vec<u8>,
    pub(crate) kind: MessageErrorKind,
    pub(crate) detail: String,
}

impl UnparsedMessage {
    /// Position in `msgs`.
    pub fn index(&self) -> usize {
        self.index
    }
    /// The bytes exactly as received.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// Why they did not parse.
    pub fn kind(&self) -> MessageErrorKind {
        self.kind
    }
    /// The parser's own words (with the position inside the message).
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl fmt::Debug for UnparsedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnparsedMessage")
            .field("index", &self.index)
            .field("kind", &self.kind)
            .field("detail", &self.detail)
            .field("bytes", &format_args!("<{} bytes>", self.bytes.len()))
            .finish()
    }
}

/// What a serde_json error on a message's bytes means.
pub(crate) fn classify(bytes: &[u8], e: &serde_json::Error) -> MessageErrorKind {
    let text = e.to_string();
    if text.contains("number out of range") {
        MessageErrorKind::NumberOutOfRange
    } else if std::str::from_utf8(bytes).is_err() {
        MessageErrorKind::InvalidUtf8
    } else {
        MessageErrorKind::Syntax
    }
}

// ------------------------------------------------------------------------------------------
// Lenient scalars
// ------------------------------------------------------------------------------------------

/// A status code (`ret`, `errcode`) from a JSON value: an integer, an integral float (`0.0`)
/// or a numeric string (`"0"`, `" -14 "`). Anything else is unreadable (`None`).
pub(crate) fn code_from_text(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(i) = s.parse::<i64>() {
        return Some(i);
    }
    let f = s.parse::<f64>().ok()?;
    // Integral and inside i64 (2^63 itself is not).
    (f.is_finite() && f.fract() == 0.0 && f.abs() < 9_223_372_036_854_775_808.0).then_some(f as i64)
}

/// A timeout in ms from number text: any non-negative number, rounded up, clamped to
/// [`MAX_LONG_POLL_TIMEOUT_MS`]. Negative, NaN or non-numeric is `None`.
pub(crate) fn timeout_from_text(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(i) = s.parse::<i64>() {
        return (i >= 0).then_some(i.min(MAX_LONG_POLL_TIMEOUT_MS));
    }
    let f = s.parse::<f64>().ok()?;
    if f.is_nan() || f < 0.0 {
        return None;
    }
    let f = f.ceil().min(MAX_LONG_POLL_TIMEOUT_MS as f64);
    Some(f as i64)
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `deserialize_with` for `ret` / `errcode`: see [`code_from_text`].
pub(crate) fn de_code<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    Ok(v.as_ref()
        .and_then(scalar_text)
        .and_then(|s| code_from_text(&s)))
}

/// `deserialize_with` for `longpolling_timeout_ms`: see [`timeout_from_text`].
pub(crate) fn de_timeout<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    Ok(v.as_ref()
        .and_then(scalar_text)
        .and_then(|s| timeout_from_text(&s)))
}

/// `deserialize_with` for the cursor: a string, an integer or a boolean, kept as text. A float
/// is refused here because its exact text is lost; [`decode_updates`](crate::decode_updates)
/// keeps it.
pub(crate) fn de_cursor<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Secret>, D::Error> {
    use serde::de::Error as _;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(Secret::from(s))),
        Some(Value::Bool(b)) => Ok(Some(Secret::from(b.to_string()))),
        Some(Value::Number(n)) if !n.is_f64() => Ok(Some(Secret::from(n.to_string()))),
        Some(_) => Err(D::Error::custom(
            "get_updates_buf is not a string or an integer",
        )),
    }
}

// ------------------------------------------------------------------------------------------
// The structural scanner
// ------------------------------------------------------------------------------------------

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

type Span = (usize, usize);

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn err(&self, what: &'static str) -> DecodeError {
        DecodeError::Malformed { at: self.i, what }
    }

    fn expect(&mut self, c: u8, what: &'static str) -> Result<(), DecodeError> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(what))
        }
    }

    /// A string starting at the current `"`; any bytes inside, `\` escapes one byte.
    fn string(&mut self) -> Result<Span, DecodeError> {
        let start = self.i;
        self.expect(b'"', "expected a string")?;
        loop {
            match self.peek() {
                None => return Err(self.err("a string is not closed")),
                Some(b'\\') => self.i += 2,
                Some(b'"') => {
                    self.i += 1;
                    return Ok((start, self.i));
                }
                Some(_) => self.i += 1,
            }
        }
    }

    /// One value of any kind; containers are skipped by bracket counting (strings aware).
    fn value(&mut self) -> Result<Span, DecodeError> {
        let start = self.i;
        match self.peek() {
            None => Err(self.err("a value is missing")),
            Some(b'"') => self.string(),
            Some(b'{' | b'[') => {
                let mut depth = 0usize;
                loop {
                    match self.peek() {
                        None => return Err(self.err("an object or array is not closed")),
                        Some(b'"') => {
                            self.string()?;
                            continue;
                        }
                        Some(b'{' | b'[') => depth += 1,
                        Some(b'}' | b']') => {
                            depth = depth.saturating_sub(1);
                            if depth == 0 {
                                self.i += 1;
                                return Ok((start, self.i));
                            }
                        }
                        Some(_) => {}
                    }
                    self.i += 1;
                }
            }
            Some(b',' | b'}' | b']' | b':') => Err(self.err("a value is missing")),
            Some(_) => {
                while self.peek().is_some_and(|c| {
                    !matches!(c, b',' | b'}' | b']' | b':') && !c.is_ascii_whitespace()
                }) {
                    self.i += 1;
                }
                Ok((start, self.i))
            }
        }
    }

    /// The members of the object at the current `{`: (key span, value span).
    fn object(&mut self) -> Result<Vec<(Span, Span)>, DecodeError> {
        self.expect(b'{', "the body is not a JSON object")?;
        let mut out = Vec::new();
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(out);
        }
        loop {
            self.ws();
            let key = self.string()?;
            self.ws();
            self.expect(b':', "expected `:` after a key")?;
            self.ws();
            let value = self.value()?;
            out.push((key, value));
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(out);
                }
                _ => return Err(self.err("expected `,` or `}` in an object")),
            }
        }
    }

    /// The elements of the array at the current `[`.
    fn array(&mut self) -> Result<Vec<Span>, DecodeError> {
        self.expect(b'[', "expected an array")?;
        let mut out = Vec::new();
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(out);
        }
        loop {
            self.ws();
            out.push(self.value()?);
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(out);
                }
                _ => return Err(self.err("expected `,` or `]` in an array")),
            }
        }
    }
}

fn slice(b: &[u8], (s, e): Span) -> &[u8] {
    b.get(s..e).unwrap_or_default()
}

/// Text of a scalar token: a JSON string unescaped, else the literal (number, bool) as is.
fn token_text(tok: &[u8]) -> Option<String> {
    if tok.first() == Some(&b'"') {
        serde_json::from_slice::<String>(tok).ok()
    } else {
        std::str::from_utf8(tok).ok().map(str::to_owned)
    }
}

/// Decodes a getupdates body that is structurally sound; see the module docs.
pub(crate) fn decode_body(bytes: &[u8]) -> Result<GetUpdatesResponse, DecodeError> {
    let mut sc = Scanner { b: bytes, i: 0 };
    sc.ws();
    let members = sc.object()?;
    sc.ws();
    if sc.i < bytes.len() {
        return Err(sc.err("bytes follow the JSON object"));
    }
    let mut resp = GetUpdatesResponse::default();
    for (key, value) in members {
        let key = token_text(slice(bytes, key))
            .unwrap_or_else(|| String::from_utf8_lossy(slice(bytes, key)).into_owned());
        let tok = slice(bytes, value);
        let is_null = tok == b"null";
        match key.as_str() {
            "ret" => resp.ret = token_text(tok).and_then(|s| code_from_text(&s)),
            "errcode" => resp.errcode = token_text(tok).and_then(|s| code_from_text(&s)),
            "errmsg" => {
                resp.errmsg = match tok.first() {
                    Some(b'"') => Some(token_text(tok).unwrap_or_else(|| {
                        let inner = tok.get(1..tok.len().saturating_sub(1)).unwrap_or_default();
                        String::from_utf8_lossy(inner).into_owned()
                    })),
                    _ if is_null => None,
                    _ => Some(String::from_utf8_lossy(tok).into_owned()),
                }
            }
            "longpolling_timeout_ms" => {
                resp.longpolling_timeout_ms = token_text(tok).and_then(|s| timeout_from_text(&s))
            }
            "get_updates_buf" => {
                resp.get_updates_buf = match tok.first() {
                    _ if is_null => None,
                    Some(b'{' | b'[') => return Err(DecodeError::UnreadableCursor),
                    _ => Some(Secret::from(
                        token_text(tok).ok_or(DecodeError::UnreadableCursor)?,
                    )),
                }
            }
            "sync_buf" => resp.sync_buf = token_text(tok).map(Secret::from),
            "msgs" => {
                if is_null {
                    resp.msgs = None;
                    resp.unparsed_msgs.clear();
                    continue;
                }
                let spans = if tok.first() == Some(&b'[') {
                    let mut inner = Scanner {
                        b: bytes,
                        i: value.0,
                    };
                    inner.array()?
                } else {
                    // Not an array: one entry that is not a message, visible rather than lost.
                    vec![value]
                };
                let mut msgs = Vec::with_capacity(spans.len());
                let mut unparsed = Vec::new();
                for (index, span) in spans.into_iter().enumerate() {
                    let raw = slice(bytes, span);
                    match serde_json::from_slice::<Value>(raw) {
                        Ok(v) => msgs.push(v),
                        Err(e) => unparsed.push(UnparsedMessage {
                            index,
                            bytes: raw.to_vec(),
                            kind: classify(raw, &e),
                            detail: e.to_string(),
                        }),
                    }
                }
                resp.msgs = Some(msgs);
                resp.unparsed_msgs = unparsed;
            }
            _ => {
                if let Ok(v) = serde_json::from_slice::<Value>(tok) {
                    resp.extra.insert(key, v);
                } else {
                    resp.extra.insert(
                        key,
                        Value::String(String::from_utf8_lossy(tok).into_owned()),
                    );
                }
            }
        }
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        for (s, want) in [
            ("0", Some(0)),
            ("-14", Some(-14)),
            (" -2 ", Some(-2)),
            ("0.0", Some(0)),
            ("-2.0", Some(-2)),
            ("1e2", Some(100)),
            ("1.5", None),
            ("1e400", None),
            ("x", None),
            ("9223372036854775808", None),
        ] {
            assert_eq!(code_from_text(s), want, "{s}");
        }
    }

    #[test]
    fn timeouts() {
        for (s, want) in [
            ("35000", Some(35_000)),
            ("3.5", Some(4)),
            ("-1", None),
            ("1e400", Some(MAX_LONG_POLL_TIMEOUT_MS)),
            ("99999999999999", Some(MAX_LONG_POLL_TIMEOUT_MS)),
            ("NaN", None),
            ("abc", None),
        ] {
            assert_eq!(timeout_from_text(s), want, "{s}");
        }
    }

    #[test]
    fn scanner_refuses_broken_structure() {
        for body in [
            &b"[]"[..],
            b"{",
            b"{\"a\":}",
            b"{\"a\":1,}",
            b"{\"a\" 1}",
            b"{\"msgs\":[1,}",
            b"{\"a\":\"unterminated}",
            b"{} x",
        ] {
            assert!(
                matches!(decode_body(body), Err(DecodeError::Malformed { .. })),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
