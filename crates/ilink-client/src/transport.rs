//! The wire layer: URLs, headers and bodies exactly as the official client sends them
//! (docs/protocol.md §1-§3), per-call timeouts (§4) and response judging (§5), on one typed
//! request path: an [`ApiCall`] names its endpoint, its timeout class and its response type,
//! and [`Transport::call`] sends any of them and judges the envelope once (teloxide's
//! `Payload`, twilight-http's `Route`). Callers never look at `ret` / `errcode`.

use std::time::Duration;

use ilink_http::{HttpClient, HttpConfig, Request};
use ilink_proto::{
    ApiError, ApiResponse, BaseInfo, DecodeError, Endpoint, Envelope, GetBotQrCodeRequest,
    GetBotQrCodeResponse, GetConfigRequest, GetConfigResponse, GetUpdatesRequest,
    GetUpdatesResponse, GetUploadUrlRequest, GetUploadUrlResponse, NotifyRequest, NotifyResponse,
    QrCodeStatusQuery, QrCodeStatusResponse, Secret, SendMessageRequest, SendMessageResponse,
    SendTypingRequest, SendTypingResponse, consts, uin_header_value,
};

use crate::config::{ClientConfig, Timeouts};
use crate::error::{Error, ErrorKind, Result};

/// Why a decoded answer is a failure.
pub(crate) enum Refusal {
    /// A non-zero `ret` / `errcode`.
    Api(ApiError),
    /// Success by its envelope, but without a field the call cannot do without.
    Missing(&'static str, Envelope),
}

/// One call of the bot API.
pub(crate) trait ApiCall: Sync {
    /// What the server answers.
    type Response: Send;

    /// The endpoint: path, method, and (through [`timeout_for`]) the timeout class.
    fn endpoint(&self) -> Endpoint;

    /// Query pairs, not yet encoded.
    fn query(&self) -> Vec<(&'static str, &str)> {
        Vec::new()
    }

    /// The JSON body; `None` sends a `GET` without one.
    fn body(&self) -> Option<serde_json::Result<Vec<u8>>>;

    /// Decodes the body (with the limits of `ilink_proto::decode`).
    fn decode(body: &[u8]) -> std::result::Result<Self::Response, DecodeError>;

    /// How the envelope is judged. The default of most calls: any non-zero `ret` or
    /// `errcode` is a refusal (the lenient §19 rule).
    fn judge(resp: &Self::Response) -> std::result::Result<(), Refusal>;
}

/// The timeout class of an endpoint (§4), from the configuration. getupdates gets the
/// first long-poll timeout here; later polls pass the server's value.
pub(crate) fn timeout_for(endpoint: Endpoint, t: &Timeouts) -> Duration {
    match endpoint {
        Endpoint::GetUpdates => t.long_poll + t.long_poll_margin,
        Endpoint::GetConfig => t.config,
        Endpoint::SendTyping => t.typing,
        Endpoint::NotifyStart | Endpoint::NotifyStop => t.notify,
        Endpoint::GetBotQrCode => t.qr_code,
        Endpoint::GetQrCodeStatus => t.qr_status,
        // sendmessage, getuploadurl, and any endpoint added later.
        _ => t.send,
    }
}

fn lenient<R: ApiResponse>(r: &R) -> std::result::Result<(), Refusal> {
    r.status().map_err(Refusal::Api)
}

fn unjudged<R>(_: &R) -> std::result::Result<(), Refusal> {
    Ok(())
}

macro_rules! post_call {
    ($req:ty => $resp:ty, $endpoint:expr, $decode:path, $judge:expr) => {
        impl ApiCall for $req {
            type Response = $resp;
            fn endpoint(&self) -> Endpoint {
                $endpoint
            }
            fn body(&self) -> Option<serde_json::Result<Vec<u8>>> {
                Some(serde_json::to_vec(self))
            }
            fn decode(body: &[u8]) -> std::result::Result<$resp, DecodeError> {
                $decode(body)
            }
            fn judge(resp: &$resp) -> std::result::Result<(), Refusal> {
                $judge(resp)
            }
        }
    };
}

// getupdates limits the depth of each message, not of the body: one deeply nested message
// becomes `Update::Undecodable` and the cursor still advances.
post_call!(GetUpdatesRequest => GetUpdatesResponse, Endpoint::GetUpdates,
    ilink_proto::decode_updates, lenient);
post_call!(SendMessageRequest => SendMessageResponse, Endpoint::SendMessage,
    ilink_proto::decode, lenient);
// getconfig needs an explicit `ret: 0`, as in the official client (§5).
post_call!(GetConfigRequest => GetConfigResponse, Endpoint::GetConfig, ilink_proto::decode,
    |r: &GetConfigResponse| r.envelope().status_requiring_ret().map_err(Refusal::Api));
// The official client never reads the response of sendtyping (§5); a non-zero code is a
// refusal here all the same, so that a refused typing cancel is retried.
post_call!(SendTypingRequest => SendTypingResponse, Endpoint::SendTyping,
    ilink_proto::decode, lenient);
// The official client does not check getuploadurl's `ret`; it fails only without an upload
// target (§12.1). A refusal with a code says so; success without a target is a refusal too.
post_call!(GetUploadUrlRequest => GetUploadUrlResponse, Endpoint::GetUploadUrl,
ilink_proto::decode, |r: &GetUploadUrlResponse| {
    if r.has_upload_target() {
        return Ok(());
    }
    match r.status() {
        Err(e) => Err(Refusal::Api(e)),
        Ok(()) => Err(Refusal::Missing("upload target", r.envelope())),
    }
});

/// notifystart / notifystop: one body, two endpoints.
pub(crate) struct NotifyCall {
    pub(crate) endpoint: Endpoint,
    pub(crate) body: NotifyRequest,
}

impl ApiCall for NotifyCall {
    type Response = NotifyResponse;
    fn endpoint(&self) -> Endpoint {
        self.endpoint
    }
    fn body(&self) -> Option<serde_json::Result<Vec<u8>>> {
        Some(serde_json::to_vec(&self.body))
    }
    fn decode(body: &[u8]) -> std::result::Result<NotifyResponse, DecodeError> {
        ilink_proto::decode(body)
    }
    fn judge(resp: &NotifyResponse) -> std::result::Result<(), Refusal> {
        lenient(resp)
    }
}

/// get_bot_qrcode: a `POST` with the local tokens (2.3.1+), or a `GET` without a body.
pub(crate) struct QrCodeCall(pub(crate) Option<GetBotQrCodeRequest>);

impl ApiCall for QrCodeCall {
    type Response = GetBotQrCodeResponse;
    fn endpoint(&self) -> Endpoint {
        Endpoint::GetBotQrCode
    }
    fn query(&self) -> Vec<(&'static str, &str)> {
        GetBotQrCodeRequest::query_pairs().to_vec()
    }
    fn body(&self) -> Option<serde_json::Result<Vec<u8>>> {
        self.0.as_ref().map(serde_json::to_vec)
    }
    fn decode(body: &[u8]) -> std::result::Result<GetBotQrCodeResponse, DecodeError> {
        ilink_proto::decode(body)
    }
    fn judge(resp: &GetBotQrCodeResponse) -> std::result::Result<(), Refusal> {
        unjudged(resp)
    }
}

impl ApiCall for QrCodeStatusQuery {
    type Response = QrCodeStatusResponse;
    fn endpoint(&self) -> Endpoint {
        Endpoint::GetQrCodeStatus
    }
    fn query(&self) -> Vec<(&'static str, &str)> {
        self.query_pairs()
    }
    fn body(&self) -> Option<serde_json::Result<Vec<u8>>> {
        None
    }
    fn decode(body: &[u8]) -> std::result::Result<QrCodeStatusResponse, DecodeError> {
        ilink_proto::decode(body)
    }
    fn judge(resp: &QrCodeStatusResponse) -> std::result::Result<(), Refusal> {
        unjudged(resp)
    }
}

/// Where a call goes: a base URL and the bot token (none for QR login).
#[derive(Clone, Copy)]
pub(crate) struct Target<'a> {
    pub(crate) base: &'a str,
    pub(crate) token: Option<&'a Secret>,
}

/// Shared HTTP clients: one pool for long-polls, one for everything else, so a held long-poll
/// never blocks an API call.
#[derive(Debug, Clone)]
pub(crate) struct Transport {
    api: HttpClient,
    poll: HttpClient,
    config: std::sync::Arc<ClientConfig>,
    base_info: BaseInfo,
}

/// Join a base URL and a relative endpoint the way WHATWG URL resolution does for a base that
/// ends in `/`: a path prefix in the base is kept.
pub(crate) fn join_url(base: &str, path: &str) -> String {
    let base = base.trim();
    if base.ends_with('/') {
        format!("{base}{path}")
    } else {
        format!("{base}/{path}")
    }
}

impl Transport {
    pub(crate) fn new(config: std::sync::Arc<ClientConfig>) -> Result<Self> {
        let http = HttpConfig::default()
            .with_proxy(config.proxy.clone())
            .with_max_response_body(config.max_response_body);
        let api = HttpClient::new(http.clone())
            .map_err(|e| Error::transport("building the HTTP client", e))?;
        let poll = HttpClient::new(http.with_pool_max_idle_per_host(2))
            .map_err(|e| Error::transport("building the HTTP client", e))?;
        let base_info = BaseInfo::for_version(&config.compat_version, config.bot_agent.as_deref());
        Ok(Self {
            api,
            poll,
            config,
            base_info,
        })
    }

    pub(crate) fn config(&self) -> &ClientConfig {
        &self.config
    }

    pub(crate) fn base_info(&self) -> BaseInfo {
        self.base_info.clone()
    }

    /// The HTTP client for API calls (shared with media transfers).
    pub(crate) fn http(&self) -> &HttpClient {
        &self.api
    }

    fn app_headers(&self, mut req: Request) -> Request {
        let v = &self.config.compat_version;
        if v.sends_app_headers() {
            req = req.header(consts::HEADER_APP_ID, consts::APP_ID).header(
                consts::HEADER_APP_CLIENT_VERSION,
                &v.client_version_header_value(),
            );
        }
        if let Some(tag) = &self.config.route_tag {
            req = req.header(consts::HEADER_ROUTE_TAG, tag);
        }
        req
    }

    /// The headers of a POST to `ilink/bot/*` (§3), in the official client's order.
    fn post_headers(&self, mut req: Request, token: Option<&Secret>) -> Request {
        req = req
            .header("Content-Type", consts::CONTENT_TYPE_JSON)
            .header(
                consts::HEADER_AUTHORIZATION_TYPE,
                consts::AUTHORIZATION_TYPE_VALUE,
            )
            .header(
                consts::HEADER_WECHAT_UIN,
                &uin_header_value(crate::util::random_u32()),
            );
        req = self.app_headers(req);
        if let Some(token) = token {
            let t = token.expose().trim();
            if !t.is_empty() {
                req = req.sensitive_header(
                    consts::HEADER_AUTHORIZATION,
                    &format!("{}{t}", consts::BEARER_PREFIX),
                );
            }
        }
        req
    }

    /// Send `call` to `to` with its endpoint's timeout, decode the answer and judge its
    /// envelope: a refusal is [`ErrorKind::Api`] (or [`ErrorKind::SessionExpired`] for
    /// `-14`) with the server's [`ApiError`] as its source.
    pub(crate) async fn call<C: ApiCall>(&self, to: Target<'_>, call: &C) -> Result<C::Response> {
        let timeout = timeout_for(call.endpoint(), &self.config.timeouts);
        self.call_with_timeout(to, call, timeout).await
    }

    /// [`call`](Self::call) with another timeout (a server-advertised long-poll timeout, the
    /// rest of the QR login).
    pub(crate) async fn call_with_timeout<C: ApiCall>(
        &self,
        to: Target<'_>,
        call: &C,
        timeout: Duration,
    ) -> Result<C::Response> {
        let endpoint = call.endpoint();
        let label = endpoint.name();
        let url = join_url(
            to.base,
            &ilink_proto::with_query(endpoint.path(), &call.query()),
        );
        let req = match call.body() {
            Some(body) => {
                let bytes = body.map_err(|e| {
                    Error::new(
                        ErrorKind::InvalidInput,
                        format!("{label}: encoding the request"),
                    )
                    .with_source(e)
                })?;
                self.post_headers(Request::post(url), to.token).body(bytes)
            }
            None => self.app_headers(Request::get(url)),
        }
        .timeout(timeout);
        let client = if endpoint.is_long_poll() {
            &self.poll
        } else {
            &self.api
        };
        let resp = self.exchange(client, req, label, C::decode).await?;
        C::judge(&resp).map_err(|r| refused(label, r))?;
        Ok(resp)
    }

    async fn exchange<Resp>(
        &self,
        client: &HttpClient,
        req: Request,
        label: &str,
        decode: fn(&[u8]) -> std::result::Result<Resp, DecodeError>,
    ) -> Result<Resp> {
        use tracing::Instrument as _;
        let span = tracing::debug_span!("ilink_call", endpoint = label);
        let resp = client
            .request(req)
            .instrument(span)
            .await
            .map_err(|e| Error::transport(label, e))?;
        let status = resp.status;
        let body = resp.bytes().await.map_err(|e| Error::transport(label, e))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(body.get(..body.len().min(512)).unwrap_or(&[]))
                .into_owned();
            tracing::debug!(endpoint = label, status = status.as_u16(), "non-2xx answer");
            return Err(Error::new(
                ErrorKind::HttpStatus,
                format!("{label} answered HTTP {}: {text}", status.as_u16()),
            )
            .with_code(i64::from(status.as_u16())));
        }
        decode(&body).map_err(|e| {
            Error::new(
                ErrorKind::Decode,
                format!("{label}: the answer is not the expected JSON"),
            )
            .with_source(e)
        })
    }
}

/// The error of a refused call: this layer says which call; the server's error is the source.
fn refused(label: &str, r: Refusal) -> Error {
    match r {
        Refusal::Api(e) => {
            let kind = if e.is_stale_token() {
                ErrorKind::SessionExpired
            } else {
                ErrorKind::Api
            };
            let mut err = Error::new(kind, format!("{label} refused"));
            if let Some(code) = e.code() {
                err = err.with_code(code);
            }
            err.with_source(e)
        }
        Refusal::Missing(what, env) => {
            let mut err = Error::new(
                ErrorKind::Api,
                format!(
                    "{label} gave no {what}{}",
                    env.errmsg
                        .as_deref()
                        .filter(|m| !m.is_empty())
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default()
                ),
            );
            if let Some(code) = env.code() {
                err = err.with_code(code);
            }
            err
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_like_whatwg_with_trailing_slash() {
        assert_eq!(
            join_url("http://127.0.0.1:8080/prefix", "ilink/bot/getupdates"),
            "http://127.0.0.1:8080/prefix/ilink/bot/getupdates"
        );
        assert_eq!(
            join_url("https://ilinkai.weixin.qq.com/", "ilink/bot/x"),
            "https://ilinkai.weixin.qq.com/ilink/bot/x"
        );
    }

    #[test]
    fn every_endpoint_has_a_timeout_class() {
        let t = Timeouts::default();
        for e in Endpoint::ALL {
            assert!(timeout_for(e, &t) > Duration::ZERO, "{e}");
        }
        assert_eq!(timeout_for(Endpoint::SendTyping, &t), t.typing);
        assert_eq!(
            timeout_for(Endpoint::GetUpdates, &t),
            t.long_poll + t.long_poll_margin
        );
    }

    #[test]
    fn refusals_keep_the_server_error_as_source() {
        let e = refused(
            "getupdates",
            Refusal::Api(ApiError::StaleToken { errmsg: None }),
        );
        assert_eq!(e.kind(), ErrorKind::SessionExpired);
        assert_eq!(e.to_string(), "getupdates refused");
        assert!(e.api_error().is_some());
        let env = Envelope {
            ret: Some(0),
            errcode: None,
            errmsg: Some("busy".into()),
        };
        let e = refused("getuploadurl", Refusal::Missing("upload target", env));
        assert_eq!(e.to_string(), "getuploadurl gave no upload target (busy)");
    }
}
