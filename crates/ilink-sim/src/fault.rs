//! Fault injection: queued, counted faults per endpoint.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// An endpoint of the emulated server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `POST ilink/bot/getupdates`
    GetUpdates,
    /// `POST ilink/bot/sendmessage`
    SendMessage,
    /// `POST ilink/bot/getuploadurl`
    GetUploadUrl,
    /// `POST ilink/bot/getconfig`
    GetConfig,
    /// `POST ilink/bot/sendtyping`
    SendTyping,
    /// `POST ilink/bot/msg/notifystart`
    NotifyStart,
    /// `POST ilink/bot/msg/notifystop`
    NotifyStop,
    /// `POST`/`GET ilink/bot/get_bot_qrcode`
    GetBotQrcode,
    /// `GET ilink/bot/get_qrcode_status`
    GetQrcodeStatus,
    /// `POST …/c2c/upload`
    CdnUpload,
    /// `GET …/c2c/download`
    CdnDownload,
}

impl Endpoint {
    /// The endpoint a path (`…/ilink/bot/<name>`, `…/upload`, `…/download`) is routed to.
    /// Bot API paths come from [`ilink_proto::Endpoint`], the model the client uses too.
    pub fn from_path(path: &str) -> Option<Self> {
        let path = path.trim_end_matches('/');
        let ends_with = |suffix: &str| {
            path.strip_suffix(suffix)
                .is_some_and(|prefix| prefix.ends_with('/'))
        };
        if let Some(e) = ilink_proto::Endpoint::ALL
            .into_iter()
            .find(|e| ends_with(e.path()))
        {
            return Self::from_api(e);
        }
        [
            (ilink_proto::consts::CDN_UPLOAD, Self::CdnUpload),
            (ilink_proto::consts::CDN_DOWNLOAD, Self::CdnDownload),
        ]
        .into_iter()
        .find(|(suffix, _)| ends_with(suffix))
        .map(|(_, e)| e)
    }

    /// The emulated endpoint of a bot API endpoint.
    pub fn from_api(e: ilink_proto::Endpoint) -> Option<Self> {
        use ilink_proto::Endpoint as E;
        Some(match e {
            E::GetUpdates => Self::GetUpdates,
            E::SendMessage => Self::SendMessage,
            E::GetUploadUrl => Self::GetUploadUrl,
            E::GetConfig => Self::GetConfig,
            E::SendTyping => Self::SendTyping,
            E::NotifyStart => Self::NotifyStart,
            E::NotifyStop => Self::NotifyStop,
            E::GetBotQrCode => Self::GetBotQrcode,
            E::GetQrCodeStatus => Self::GetQrcodeStatus,
            _ => return None,
        })
    }

    /// The bot API endpoint this is (`None` for the CDN's upload and download).
    pub fn api(self) -> Option<ilink_proto::Endpoint> {
        use ilink_proto::Endpoint as E;
        Some(match self {
            Self::GetUpdates => E::GetUpdates,
            Self::SendMessage => E::SendMessage,
            Self::GetUploadUrl => E::GetUploadUrl,
            Self::GetConfig => E::GetConfig,
            Self::SendTyping => E::SendTyping,
            Self::NotifyStart => E::NotifyStart,
            Self::NotifyStop => E::NotifyStop,
            Self::GetBotQrcode => E::GetBotQrCode,
            Self::GetQrcodeStatus => E::GetQrCodeStatus,
            Self::CdnUpload | Self::CdnDownload => return None,
        })
    }

    /// Whether the endpoint needs the Bearer token.
    pub fn authenticated(self) -> bool {
        self.api()
            .is_some_and(ilink_proto::Endpoint::is_authenticated)
    }
}

/// A fault the emulator applies to the next matching request(s).
///
/// Faults that corrupt the *response* (`ConnectionReset`, `TruncatedBody`, `EmptyBody`)
/// are applied after the request was processed, as when a response is lost on the way:
/// a sendmessage hit by them **was delivered**. Faults that replace the answer
/// (`Status`, `StaleToken`, `Overloaded`) are applied before: nothing was processed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Fault {
    /// Answer with this HTTP status and a short text body (e.g. 500, 502, or 524 like the
    /// gateway timeout seen live).
    Status(u16),
    /// Wait this long, then answer normally, or with the next fault queued for the
    /// endpoint, which the same request then takes too: queue `Latency` then
    /// `Status(524)` for the live gateway timeout that comes mid-poll. At most one
    /// latency applies per request.
    Latency(#[serde(with = "duration_ms")] Duration),
    /// Close the connection without answering.
    ConnectionReset,
    /// Send the headers and half of the body, then close the connection.
    TruncatedBody,
    /// HTTP 200 with an empty body.
    EmptyBody,
    /// HTTP 200 `{"errcode":-14,"errmsg":"session timeout"}`.
    StaleToken,
    /// HTTP 200 `{"ret":-2}` plus `errmsg` when given.
    Overloaded(Option<String>),
    /// HTTP 200 with this JSON body, e.g. `{"ret":-1}` on getuploadurl.
    Json(serde_json::Value),
    /// getupdates only: serve the next non-empty batch but return the old cursor, so the
    /// next poll delivers the same messages again.
    DuplicateBatch,
    /// getupdates only: the next non-empty batch holds every message twice.
    DuplicateMessage,
    /// CDN upload only: HTTP 200 without the `x-encrypted-param` header.
    MissingEncryptedParam,
}

impl Fault {
    /// The gateway timeout seen on getupdates (HTTP 524).
    pub fn gateway_timeout() -> Self {
        Self::Status(524)
    }

    pub(crate) fn is_duplicate(&self) -> bool {
        matches!(self, Self::DuplicateBatch | Self::DuplicateMessage)
    }
}

mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// Faults waiting per endpoint, each with a remaining count.
#[derive(Debug, Default)]
pub(crate) struct FaultQueue {
    queues: HashMap<Endpoint, VecDeque<(Fault, u32)>>,
}

impl FaultQueue {
    pub(crate) fn push(&mut self, endpoint: Endpoint, fault: Fault, times: u32) {
        if times > 0 {
            self.queues
                .entry(endpoint)
                .or_default()
                .push_back((fault, times));
        }
    }

    pub(crate) fn clear(&mut self) {
        self.queues.clear();
    }

    pub(crate) fn pending(&self) -> Vec<(Endpoint, Fault, u32)> {
        self.queues
            .iter()
            .flat_map(|(e, q)| q.iter().map(|(f, n)| (*e, f.clone(), *n)))
            .collect()
    }

    /// Takes one occurrence of the first queued fault for `endpoint` that `accept` admits.
    pub(crate) fn take(
        &mut self,
        endpoint: Endpoint,
        accept: impl Fn(&Fault) -> bool,
    ) -> Option<Fault> {
        let q = self.queues.get_mut(&endpoint)?;
        let idx = q.iter().position(|(f, _)| accept(f))?;
        let entry = q.get_mut(idx)?;
        let fault = entry.0.clone();
        entry.1 = entry.1.saturating_sub(1);
        if entry.1 == 0 {
            q.remove(idx);
        }
        Some(fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_paths_with_and_without_prefix() {
        assert_eq!(
            Endpoint::from_path("/ilink/bot/getupdates"),
            Some(Endpoint::GetUpdates)
        );
        assert_eq!(
            Endpoint::from_path("/prefix/ilink/bot/msg/notifystart"),
            Some(Endpoint::NotifyStart)
        );
        assert_eq!(
            Endpoint::from_path("/c2c/upload"),
            Some(Endpoint::CdnUpload)
        );
        assert_eq!(Endpoint::from_path("/ilink/bot/nope"), None);
        assert_eq!(Endpoint::from_path("/xilink/bot/getupdates"), None);
        assert_eq!(
            Endpoint::from_path("/c2c/download"),
            Some(Endpoint::CdnDownload)
        );
    }

    #[test]
    fn faults_are_counted() {
        let mut q = FaultQueue::default();
        q.push(Endpoint::GetUpdates, Fault::Status(500), 2);
        q.push(Endpoint::GetUpdates, Fault::DuplicateBatch, 1);
        assert_eq!(
            q.take(Endpoint::GetUpdates, |f| !f.is_duplicate()),
            Some(Fault::Status(500))
        );
        assert_eq!(
            q.take(Endpoint::GetUpdates, |f| !f.is_duplicate()),
            Some(Fault::Status(500))
        );
        assert_eq!(q.take(Endpoint::GetUpdates, |f| !f.is_duplicate()), None);
        assert_eq!(
            q.take(Endpoint::GetUpdates, Fault::is_duplicate),
            Some(Fault::DuplicateBatch)
        );
        assert!(q.pending().is_empty());
    }

    #[test]
    fn fault_json_shape() {
        let v = serde_json::to_value(Fault::Latency(Duration::from_millis(250))).unwrap();
        assert_eq!(v, serde_json::json!({"kind":"latency","value":250}));
        let f: Fault =
            serde_json::from_value(serde_json::json!({"kind":"status","value":524})).unwrap();
        assert_eq!(f, Fault::gateway_timeout());
        let f: Fault =
            serde_json::from_value(serde_json::json!({"kind":"connection_reset"})).unwrap();
        assert_eq!(f, Fault::ConnectionReset);
        let f: Fault =
            serde_json::from_value(serde_json::json!({"kind":"json","value":{"ret":-1}})).unwrap();
        assert_eq!(f, Fault::Json(serde_json::json!({"ret": -1})));
    }
}
