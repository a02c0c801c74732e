//! The wire layer: URLs, headers and bodies exactly as the official client sends them
//! (PROTOCOL.md §1-§3), per-call timeouts (§4) and response decoding (§5).

use std::time::Duration;

use ilink_http::{HttpClient, HttpConfig, Request};
use ilink_proto::{BaseInfo, Secret, consts, uin_header_value};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::ClientConfig;
use crate::error::{Error, ErrorKind, Result};

/// Decodes a response body (with the limits of `ilink_proto::decode` or a variant of it).
pub(crate) type BodyDecoder<T> = fn(&[u8]) -> std::result::Result<T, ilink_proto::DecodeError>;

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

/// Percent-encode a query value (everything but RFC 3986 unreserved characters), as
/// `encodeURIComponent` does for the values this protocol uses.
pub(crate) fn encode_query_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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

    /// POST a JSON body to `base`/`path` and decode the JSON answer. Application errors
    /// (`ret`/`errcode`) are left to the caller, since each endpoint judges them differently.
    pub(crate) async fn post<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        base: &str,
        path: &str,
        token: Option<&Secret>,
        body: &Req,
        timeout: Duration,
        long_poll: bool,
    ) -> Result<Resp> {
        self.post_with(
            base,
            path,
            token,
            body,
            timeout,
            long_poll,
            ilink_proto::decode::<Resp>,
        )
        .await
    }

    /// [`post`](Self::post) with a body decoder of its own (getupdates uses
    /// [`ilink_proto::decode_updates`], whose depth limit is per message, not per body).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn post_with<Req: Serialize, Resp>(
        &self,
        base: &str,
        path: &str,
        token: Option<&Secret>,
        body: &Req,
        timeout: Duration,
        long_poll: bool,
        decode: BodyDecoder<Resp>,
    ) -> Result<Resp> {
        let label = endpoint_label(path);
        let bytes = serde_json::to_vec(body).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("{label}: encoding the request"),
            )
            .with_source(e)
        })?;
        let url = join_url(base, path);
        let req = self
            .post_headers(Request::post(url), token)
            .body(bytes)
            .timeout(timeout);
        let client = if long_poll { &self.poll } else { &self.api };
        self.exchange(client, req, label, decode).await
    }

    /// GET `base`/`path?query` with only the app headers (§3: QR status polling).
    pub(crate) async fn get<Resp: DeserializeOwned>(
        &self,
        base: &str,
        path_and_query: &str,
        timeout: Duration,
    ) -> Result<Resp> {
        let label = endpoint_label(path_and_query);
        let req = self
            .app_headers(Request::get(join_url(base, path_and_query)))
            .timeout(timeout);
        self.exchange(&self.poll, req, label, ilink_proto::decode::<Resp>)
            .await
    }

    async fn exchange<Resp>(
        &self,
        client: &HttpClient,
        req: Request,
        label: &str,
        decode: BodyDecoder<Resp>,
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
            let text = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
            tracing::debug!(endpoint = label, status = status.as_u16(), "non-2xx answer");
            return Err(Error::new(
                ErrorKind::HttpStatus,
                format!("{label} {}: {text}", status.as_u16()),
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

fn endpoint_label(path: &str) -> &str {
    let p = path.split('?').next().unwrap_or(path);
    p.rsplit('/').next().unwrap_or(p)
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
    fn encodes_query_values() {
        assert_eq!(encode_query_value("QR+/= 1"), "QR%2B%2F%3D%201");
        assert_eq!(encode_query_value("abc-_.~"), "abc-_.~");
        assert_eq!(encode_query_value("中"), "%E4%B8%AD");
    }

    #[test]
    fn labels() {
        assert_eq!(endpoint_label("ilink/bot/msg/notifystart"), "notifystart");
        assert_eq!(
            endpoint_label("ilink/bot/get_qrcode_status?qrcode=x"),
            "get_qrcode_status"
        );
    }
}
