//! The response envelope (`ret`, `errcode`, `errmsg`), judged in one place (§5, §19).

use serde::{Deserialize, Serialize};

use crate::consts::{BAD_TARGET_ERRCODE, FAILED_ERRCODE, STALE_TOKEN_ERRCODE, THROTTLED_ERRCODE};

/// The status fields every response may carry.
///
/// Decode it from any body with [`decode`](crate::decode) (unknown fields are ignored),
/// or get it from a typed response with [`ApiResponse::envelope`](crate::ApiResponse::envelope).
///
/// ```
/// use ilink_proto::{ApiError, Envelope};
/// let env: Envelope = ilink_proto::decode(br#"{"errcode":-14,"errmsg":"session timeout"}"#).unwrap();
/// assert!(matches!(env.status(), Err(ApiError::StaleToken { .. })));
/// let ok: Envelope = ilink_proto::decode(b"{}").unwrap();
/// assert!(ok.status().is_ok());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// `0` means success; may be absent on success (§19).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret: Option<i64>,
    /// Optional error code; `-14` is a stale token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errcode: Option<i64>,
    /// Optional error text; the only way to tell `-2` cases apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errmsg: Option<String>,
}

impl Envelope {
    /// A success envelope with an explicit `ret: 0` (what the server sends on getconfig).
    pub fn ok() -> Self {
        Self {
            ret: Some(0),
            ..Self::default()
        }
    }

    /// An error envelope with `ret` and an optional `errmsg`.
    pub fn error(ret: i64, errmsg: Option<&str>) -> Self {
        Self {
            ret: Some(ret),
            errcode: None,
            errmsg: errmsg.map(str::to_owned),
        }
    }

    /// The status code by the lenient rule of §19: a non-zero value in `ret` or
    /// `errcode` is the status (`-14` in either wins, otherwise a non-zero `ret` is
    /// preferred); `None` means success, including when both are absent.
    pub fn code(&self) -> Option<i64> {
        let ret = self.ret.filter(|&c| c != 0);
        let errcode = self.errcode.filter(|&c| c != 0);
        if ret == Some(STALE_TOKEN_ERRCODE) || errcode == Some(STALE_TOKEN_ERRCODE) {
            return Some(STALE_TOKEN_ERRCODE);
        }
        ret.or(errcode)
    }

    /// Judges the envelope by the lenient rule of §19, which this project's client uses
    /// for every endpoint: absence of both fields is success; a non-zero value in either
    /// field is an error, classified into [`ApiError`].
    ///
    /// This differs from the official client per endpoint; see
    /// [`Endpoint::official_status`](crate::Endpoint::official_status).
    pub fn status(&self) -> Result<(), ApiError> {
        match self.code() {
            None => Ok(()),
            Some(code) => Err(self.classify(code)),
        }
    }

    /// Judges like getconfig in the official client (§5): success only with an explicit
    /// `ret: 0` (and no non-zero `errcode`). A missing `ret` is
    /// [`ApiError::MissingRet`].
    pub fn status_requiring_ret(&self) -> Result<(), ApiError> {
        self.status()?;
        if self.ret.is_none() {
            return Err(ApiError::MissingRet {
                errcode: self.errcode,
                errmsg: self.errmsg.clone(),
            });
        }
        Ok(())
    }

    /// Judges like sendmessage in the official client 2.4.6+ (§5): only a non-zero
    /// `ret` is an error; `errcode` is not looked at (`{"errcode":-14}` is a success).
    pub fn status_ret_only(&self) -> Result<(), ApiError> {
        match self.ret {
            None | Some(0) => Ok(()),
            Some(code) => Err(self.classify(code)),
        }
    }

    fn classify(&self, code: i64) -> ApiError {
        let errmsg = self.errmsg.clone();
        match code {
            STALE_TOKEN_ERRCODE => ApiError::StaleToken { errmsg },
            THROTTLED_ERRCODE => ApiError::Throttled { errmsg },
            BAD_TARGET_ERRCODE => ApiError::BadTarget { errmsg },
            FAILED_ERRCODE => ApiError::Failed { errmsg },
            _ => ApiError::Other {
                ret: self.ret,
                errcode: self.errcode,
                errmsg,
            },
        }
    }
}

/// An application error reported in a response body.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// `-14` in `ret` or `errcode`: the bot token is stale or the session expired.
    #[error(
        "the bot session expired or the token is stale (code -14{}): log in again with a QR code; the official client pauses the account for 1 h",
        fmt_msg(.errmsg)
    )]
    StaleToken {
        /// `errmsg`, if any (e.g. `"session timeout"`).
        errmsg: Option<String>,
    },
    /// `-2`: throttled, reply window or `context_token` used up, or invalid arguments.
    /// Only `errmsg` tells these apart; see [`ApiError::throttle_reason`].
    #[error(
        "the server rejected the request (code -2{}): the reply window or context_token may be used up (wait for the user to write again), the arguments may be invalid, or sends are too fast",
        fmt_msg(.errmsg)
    )]
    Throttled {
        /// `errmsg`, if any; often absent.
        errmsg: Option<String>,
    },
    /// `-3`: the target is invalid.
    #[error(
        "the server rejected the target (code -3{}): check the recipient id",
        fmt_msg(.errmsg)
    )]
    BadTarget {
        /// `errmsg`, if any.
        errmsg: Option<String>,
    },
    /// `-1`: the request failed (e.g. getuploadurl with an invalid `to_user_id`).
    #[error(
        "the server failed the request (code -1{}): check the request fields, then retry",
        fmt_msg(.errmsg)
    )]
    Failed {
        /// `errmsg`, if any.
        errmsg: Option<String>,
    },
    /// No `ret` where the endpoint requires an explicit `ret: 0` (getconfig, officially).
    #[error(
        "the response has no `ret`; this endpoint needs an explicit ret:0 to count as success (errcode {errcode:?}{})",
        fmt_msg(.errmsg)
    )]
    MissingRet {
        /// `errcode`, if any.
        errcode: Option<i64>,
        /// `errmsg`, if any.
        errmsg: Option<String>,
    },
    /// Any other non-zero code, with the raw values.
    #[error(
        "the server returned an error: ret {ret:?}, errcode {errcode:?}{}",
        fmt_msg(.errmsg)
    )]
    Other {
        /// Raw `ret`.
        ret: Option<i64>,
        /// Raw `errcode`.
        errcode: Option<i64>,
        /// Raw `errmsg`.
        errmsg: Option<String>,
    },
}

fn fmt_msg(errmsg: &Option<String>) -> String {
    match errmsg.as_deref() {
        Some(m) if !m.is_empty() => format!(", errmsg {m:?}"),
        _ => String::new(),
    }
}

impl ApiError {
    /// The error code (`-14`, `-2`, …); `None` for [`ApiError::MissingRet`].
    pub fn code(&self) -> Option<i64> {
        match self {
            Self::StaleToken { .. } => Some(STALE_TOKEN_ERRCODE),
            Self::Throttled { .. } => Some(THROTTLED_ERRCODE),
            Self::BadTarget { .. } => Some(BAD_TARGET_ERRCODE),
            Self::Failed { .. } => Some(FAILED_ERRCODE),
            Self::MissingRet { .. } => None,
            Self::Other { ret, errcode, .. } => ret.filter(|&c| c != 0).or(*errcode),
        }
    }

    /// The server's `errmsg`, if any.
    pub fn errmsg(&self) -> Option<&str> {
        match self {
            Self::StaleToken { errmsg }
            | Self::Throttled { errmsg }
            | Self::BadTarget { errmsg }
            | Self::Failed { errmsg }
            | Self::MissingRet { errmsg, .. }
            | Self::Other { errmsg, .. } => errmsg.as_deref(),
        }
    }

    /// Whether this is the stale-token / expired-session error (`-14`).
    pub fn is_stale_token(&self) -> bool {
        matches!(self, Self::StaleToken { .. })
    }

    /// For [`ApiError::Throttled`], what `errmsg` says the `-2` means.
    pub fn throttle_reason(&self) -> Option<ThrottleReason> {
        match self {
            Self::Throttled { errmsg } => Some(ThrottleReason::classify(errmsg.as_deref())),
            _ => None,
        }
    }
}

/// What a `-2` rejection means, as far as `errmsg` tells (§16, §19).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThrottleReason {
    /// A validation error: `"invalid arguments"` (e.g. text and media mixed in one
    /// `item_list`) or `"<field> required"` (e.g. `"ilink_user_id required"`). Do not
    /// retry unchanged.
    InvalidArguments,
    /// `"prepare failed"`: the `context_token` is stale or missing; wait for the user
    /// to write again.
    PrepareFailed,
    /// The errmsg names a limit or frequency: the per-inbound reply limit or a burst.
    ReplyLimit,
    /// No or unrecognized errmsg. Bare `{"ret":-2}` is the common case and covers the
    /// reply window, the reply limit, an expired token and bursts alike.
    Unknown,
}

impl ThrottleReason {
    /// Classifies an `errmsg` (case-insensitive substring match).
    pub fn classify(errmsg: Option<&str>) -> Self {
        let Some(msg) = errmsg else {
            return Self::Unknown;
        };
        let m = msg.trim().to_ascii_lowercase();
        if m.contains("invalid argument") || m.ends_with(" required") || m == "required" {
            Self::InvalidArguments
        } else if m.contains("prepare failed") {
            Self::PrepareFailed
        } else if m.contains("limit") || m.contains("freq") || m.contains("too many") {
            Self::ReplyLimit
        } else {
            Self::Unknown
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(json: &str) -> Envelope {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn code_rule() {
        assert_eq!(env("{}").code(), None);
        assert_eq!(env(r#"{"ret":0}"#).code(), None);
        assert_eq!(env(r#"{"ret":0,"errcode":-14}"#).code(), Some(-14));
        assert_eq!(env(r#"{"ret":-2,"errcode":0}"#).code(), Some(-2));
        assert_eq!(env(r#"{"ret":-2,"errcode":-14}"#).code(), Some(-14));
        assert_eq!(env(r#"{"ret":-7,"errcode":-9}"#).code(), Some(-7));
    }

    #[test]
    fn variants_differ_in_official_modes() {
        let e = env(r#"{"errcode":-14}"#);
        assert!(e.status().is_err());
        assert!(e.status_ret_only().is_ok());
        assert!(matches!(
            e.status_requiring_ret(),
            Err(ApiError::StaleToken { .. })
        ));
        let none = env("{}");
        assert!(none.status().is_ok());
        assert!(matches!(
            none.status_requiring_ret(),
            Err(ApiError::MissingRet { .. })
        ));
        assert!(Envelope::ok().status_requiring_ret().is_ok());
    }

    #[test]
    fn throttle_reasons() {
        use ThrottleReason::*;
        for (msg, want) in [
            (None, Unknown),
            (Some(""), Unknown),
            (Some("invalid arguments"), InvalidArguments),
            (Some("Invalid Argument"), InvalidArguments),
            (Some("ilink_user_id required"), InvalidArguments),
            (Some("prepare failed"), PrepareFailed),
            (Some("reply limit reached"), ReplyLimit),
            (Some("freq control"), ReplyLimit),
            (Some("something"), Unknown),
        ] {
            assert_eq!(ThrottleReason::classify(msg), want, "{msg:?}");
        }
        let e = Envelope::error(-2, Some("prepare failed"))
            .status()
            .unwrap_err();
        assert_eq!(e.throttle_reason(), Some(PrepareFailed));
        assert_eq!(e.code(), Some(-2));
        assert_eq!(e.errmsg(), Some("prepare failed"));
        assert!(e.to_string().contains("\"prepare failed\""), "{e}");
    }
}
