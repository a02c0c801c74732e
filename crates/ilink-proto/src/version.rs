//! The compatibility version, `base_info`, the `bot_agent` sanitizer and the UIN header.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::consts::BOT_AGENT_MAX_BYTES;

/// The `bot_agent` sent when none is configured or the configured one has no valid token.
pub const DEFAULT_BOT_AGENT: &str = "OpenClaw";

/// The version of Tencent's client whose wire behaviour we reproduce.
///
/// One value drives, together, the `base_info.channel_version` string
/// ([`channel_version`](Self::channel_version)), the `iLink-App-ClientVersion` header
/// ([`client_version_header`](Self::client_version_header)) and whether a `bot_agent`
/// is sent at all ([`default_bot_agent`](Self::default_bot_agent)).
///
/// ```
/// use ilink_proto::CompatVersion;
/// let v = CompatVersion::DEFAULT;
/// assert_eq!(v.to_string(), "2.4.9");
/// assert_eq!(v.client_version_header(), 132105);
/// assert_eq!(CompatVersion::parse("2.1.1").unwrap().client_version_header(), 131329);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CompatVersion {
    /// Major version.
    pub major: u8,
    /// Minor version.
    pub minor: u8,
    /// Patch version.
    pub patch: u8,
}

impl Default for CompatVersion {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why a version string is not `major.minor.patch` with parts 0-255.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid compat version {input:?}: expected `major.minor.patch` with each part a number from 0 to 255, like \"2.4.9\""
)]
pub struct ParseVersionError {
    input: String,
}

impl CompatVersion {
    /// 2.4.9, the client version this crate's wire shapes were captured from.
    pub const DEFAULT: CompatVersion = CompatVersion::new(2, 4, 9);
    /// 2.1.1: added `iLink-App-Id` / `iLink-App-ClientVersion`, fixed QR host,
    /// `scaned_but_redirect`, `upload_full_url` / `full_url`.
    pub const V2_1_1: CompatVersion = CompatVersion::new(2, 1, 1);
    /// 2.3.1: added `bot_agent`, `POST get_bot_qrcode`, notifystart/notifystop,
    /// verify codes and `binded_redirect`.
    pub const V2_3_1: CompatVersion = CompatVersion::new(2, 3, 1);
    /// 2.4.4: item types 11/12 (tool calls) and `run_id`.
    pub const V2_4_4: CompatVersion = CompatVersion::new(2, 4, 4);

    /// A version from its three parts.
    pub const fn new(major: u8, minor: u8, patch: u8) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// Parses `"major.minor.patch"` (each part 0-255; surrounding whitespace ignored).
    pub fn parse(s: &str) -> Result<Self, ParseVersionError> {
        let err = || ParseVersionError {
            input: s.to_owned(),
        };
        let mut parts = s.trim().split('.');
        let mut next = || -> Result<u8, ParseVersionError> {
            let p = parts.next().ok_or_else(err)?;
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            p.parse::<u8>().map_err(|_| err())
        };
        let v = Self::new(next()?, next()?, next()?);
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(v)
    }

    /// The `iLink-App-ClientVersion` value: `major<<16 | minor<<8 | patch`
    /// (2.4.9 -> 132105).
    pub const fn client_version_header(&self) -> u32 {
        ((self.major as u32) << 16) | ((self.minor as u32) << 8) | (self.patch as u32)
    }

    /// [`client_version_header`](Self::client_version_header) as the decimal string
    /// that goes on the wire.
    pub fn client_version_header_value(&self) -> String {
        self.client_version_header().to_string()
    }

    /// The `base_info.channel_version` string, e.g. `"2.4.9"`.
    pub fn channel_version(&self) -> String {
        self.to_string()
    }

    /// Whether this version sends `iLink-App-Id` and `iLink-App-ClientVersion` (2.1.1+).
    pub fn sends_app_headers(&self) -> bool {
        *self >= Self::V2_1_1
    }

    /// Whether this version sends `base_info.bot_agent` (2.3.1+).
    pub fn sends_bot_agent(&self) -> bool {
        *self >= Self::V2_3_1
    }

    /// Whether this version issues QR codes with `POST` and `local_token_list` (2.3.1+);
    /// older versions use `GET` with no body.
    pub fn posts_qrcode_request(&self) -> bool {
        *self >= Self::V2_3_1
    }

    /// Whether this version calls notifystart / notifystop (2.3.1+ in our model).
    pub fn sends_notify(&self) -> bool {
        *self >= Self::V2_3_1
    }

    /// The `bot_agent` this version sends when none is configured: `Some("OpenClaw")`
    /// from 2.3.1 on, `None` (field absent) before.
    pub fn default_bot_agent(&self) -> Option<&'static str> {
        self.sends_bot_agent().then_some(DEFAULT_BOT_AGENT)
    }
}

impl fmt::Display for CompatVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl FromStr for CompatVersion {
    type Err = ParseVersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The `base_info` object carried by every authenticated POST body (§2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseInfo {
    /// The client's package version, e.g. `"2.4.9"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_version: Option<String>,
    /// A sanitized User-Agent-style self-identification (2.3.1+), e.g. `"OpenClaw"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_agent: Option<String>,
    /// Fields this crate does not know, kept so re-encoding is lossless.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl BaseInfo {
    /// The `base_info` a client of `version` sends. `bot_agent` is the configured agent
    /// string, if any; it is [sanitized](sanitize_bot_agent). Versions before 2.3.1 send
    /// no `bot_agent` whatever is configured.
    ///
    /// ```
    /// use ilink_proto::{BaseInfo, CompatVersion};
    /// let b = BaseInfo::for_version(&CompatVersion::DEFAULT, None);
    /// assert_eq!(
    ///     serde_json::to_string(&b).unwrap(),
    ///     r#"{"channel_version":"2.4.9","bot_agent":"OpenClaw"}"#
    /// );
    /// ```
    pub fn for_version(version: &CompatVersion, bot_agent: Option<&str>) -> Self {
        let bot_agent = if version.sends_bot_agent() {
            Some(match bot_agent {
                Some(a) => sanitize_bot_agent(a),
                None => DEFAULT_BOT_AGENT.to_owned(),
            })
        } else {
            None
        };
        Self {
            channel_version: Some(version.channel_version()),
            bot_agent,
            extra: serde_json::Map::new(),
        }
    }
}

/// Sanitizes a configured `bot_agent` as the official client does (§2).
///
/// The input is a space-separated list of `Name/Version` tokens, each optionally followed
/// by ` (comment)`. A name is 1-32 characters of `[A-Za-z0-9_.-]`, a version 1-32 of
/// `[A-Za-z0-9_.+-]`, a comment 1-64 printable ASCII characters other than parentheses.
/// Invalid tokens (with their comment) are dropped, valid ones are joined with single
/// spaces, and trailing tokens are dropped until the result is at most 256 bytes. If
/// nothing valid remains the result is [`DEFAULT_BOT_AGENT`].
///
/// ```
/// use ilink_proto::sanitize_bot_agent;
/// assert_eq!(sanitize_bot_agent("MyBot/1.2 (linux) bad token/"), "MyBot/1.2 (linux)");
/// assert_eq!(sanitize_bot_agent("   "), "OpenClaw");
/// ```
pub fn sanitize_bot_agent(input: &str) -> String {
    let mut out = String::new();
    for token in split_agent_tokens(input) {
        let Some(rendered) = token.validate() else {
            continue;
        };
        let extra = if out.is_empty() { 0 } else { 1 };
        if out.len() + extra + rendered.len() > BOT_AGENT_MAX_BYTES {
            // Tokens are dropped from the end until the string fits.
            break;
        }
        if extra == 1 {
            out.push(' ');
        }
        out.push_str(&rendered);
    }
    if out.is_empty() {
        DEFAULT_BOT_AGENT.to_owned()
    } else {
        out
    }
}

/// One `product (comment)` unit of a bot agent string, before validation.
struct AgentToken<'a> {
    product: Option<&'a str>,
    /// `Some(inner)` if a parenthesised comment followed; `inner` is `None` when the
    /// closing parenthesis is missing.
    comment: Option<Option<&'a str>>,
}

impl AgentToken<'_> {
    fn validate(&self) -> Option<String> {
        let product = self.product?;
        let (name, version) = product.split_once('/')?;
        let name_ok = (1..=32).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        let version_ok = (1..=32).contains(&version.len())
            && version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'+' | b'-'));
        if !name_ok || !version_ok {
            return None;
        }
        match self.comment {
            None => Some(product.to_owned()),
            Some(None) => None,
            Some(Some(c)) => {
                let ok = (1..=64).contains(&c.len())
                    && c.bytes()
                        .all(|b| (0x20..=0x7e).contains(&b) && b != b'(' && b != b')');
                ok.then(|| format!("{product} ({c})"))
            }
        }
    }
}

/// Splits a bot agent string into product/comment units. Written by hand: it is a small
/// tokenizer specific to this field, and comments may contain spaces.
fn split_agent_tokens(input: &str) -> Vec<AgentToken<'_>> {
    let mut tokens = Vec::new();
    let mut rest = input.trim_start();
    while !rest.is_empty() {
        let (product, after) = if rest.starts_with('(') {
            (None, rest)
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let (p, a) = rest.split_at(end);
            (Some(p), a)
        };
        let after_ws = after.trim_start();
        let (comment, next) = if let Some(body) = after_ws.strip_prefix('(') {
            match body.find(')') {
                Some(close) => {
                    let (inner, tail) = body.split_at(close);
                    (Some(Some(inner)), tail.get(1..).unwrap_or(""))
                }
                None => (Some(None), ""),
            }
        } else {
            (None, after_ws)
        };
        tokens.push(AgentToken { product, comment });
        rest = next.trim_start();
    }
    tokens
}

/// The `X-WECHAT-UIN` header value for a random `u32`: its decimal text, base64-encoded
/// (§3). Generate a fresh random value for every request.
///
/// ```
/// assert_eq!(ilink_proto::uin_header_value(2735920514), "MjczNTkyMDUxNA==");
/// ```
pub fn uin_header_value(random: u32) -> String {
    base64::engine::general_purpose::STANDARD.encode(random.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_packing() {
        assert_eq!(CompatVersion::DEFAULT.client_version_header(), 132105);
        assert_eq!(CompatVersion::V2_1_1.client_version_header(), 131329);
        assert_eq!(
            CompatVersion::parse("1.0.11")
                .unwrap()
                .client_version_header(),
            65547
        );
        assert_eq!(
            CompatVersion::DEFAULT.client_version_header_value(),
            "132105"
        );
        assert_eq!(CompatVersion::DEFAULT.channel_version(), "2.4.9");
        assert_eq!(CompatVersion::default(), CompatVersion::DEFAULT);
    }

    #[test]
    fn version_parse_rejects_garbage() {
        for bad in [
            "", "2", "2.4", "2.4.9.1", "2.4.x", "256.0.0", "-1.0.0", "2..9", "+2.4.9", "2.4.9 x",
        ] {
            let e = CompatVersion::parse(bad).unwrap_err();
            assert!(e.to_string().contains("major.minor.patch"), "{bad}");
        }
        assert_eq!(
            " 2.1.1 ".parse::<CompatVersion>().unwrap(),
            CompatVersion::V2_1_1
        );
    }

    #[test]
    fn version_feature_gates() {
        let old = CompatVersion::parse("1.0.2").unwrap();
        assert!(!old.sends_app_headers());
        assert!(!old.sends_bot_agent());
        assert_eq!(old.default_bot_agent(), None);
        assert_eq!(CompatVersion::DEFAULT.default_bot_agent(), Some("OpenClaw"));
        let b = BaseInfo::for_version(&old, Some("X/1"));
        assert_eq!(b.channel_version.as_deref(), Some("1.0.2"));
        assert_eq!(b.bot_agent, None);
        let b = BaseInfo::for_version(&CompatVersion::DEFAULT, Some("X/1 (y)"));
        assert_eq!(b.bot_agent.as_deref(), Some("X/1 (y)"));
    }

    #[test]
    fn uin() {
        assert_eq!(uin_header_value(2735920514), "MjczNTkyMDUxNA==");
        assert_eq!(uin_header_value(841455775), "ODQxNDU1Nzc1");
        assert_eq!(uin_header_value(0), "MA==");
    }

    #[test]
    fn bot_agent_table() {
        let long_name = "a".repeat(33);
        let long_comment = format!("A/1 ({})", "c".repeat(65));
        let cases: &[(&str, &str)] = &[
            ("", "OpenClaw"),
            ("OpenClaw", "OpenClaw"),
            ("MyBot/1.0", "MyBot/1.0"),
            ("MyBot/1.0 (linux; x86_64)", "MyBot/1.0 (linux; x86_64)"),
            ("  A/1   B/2  ", "A/1 B/2"),
            ("A/1   (spaced)", "A/1 (spaced)"),
            ("A/1 bad B/2", "A/1 B/2"),
            ("A/1 (unterminated", "OpenClaw"),
            ("A/1 () B/2", "B/2"),
            ("A/1 (x(y)) B/2", "B/2"),
            ("(orphan comment) A/1", "A/1"),
            ("A/ /1 A/1/2", "OpenClaw"),
            ("a_b.c-d/1.0+build_x-y", "a_b.c-d/1.0+build_x-y"),
            ("名字/1 A/1", "A/1"),
            ("A+/1", "OpenClaw"),
            ("A/1 (tab\there)", "OpenClaw"),
            (&long_name, "OpenClaw"),
            (&long_comment, "OpenClaw"),
        ];
        for (input, want) in cases {
            assert_eq!(sanitize_bot_agent(input), *want, "input {input:?}");
        }
    }

    #[test]
    fn bot_agent_length_cap() {
        // 10 tokens of 30 bytes = 309 bytes with separators: the tail is dropped.
        let tok = format!("{}/{}", "n".repeat(14), "v".repeat(15));
        assert_eq!(tok.len(), 30);
        let input = [tok.as_str(); 10].join(" ");
        let out = sanitize_bot_agent(&input);
        assert!(out.len() <= 256);
        assert_eq!(out.split(' ').count(), 8); // 8*30 + 7 = 247
        assert_eq!(out.len(), 247);
    }
}
