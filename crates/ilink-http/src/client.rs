//! The client, its configuration, requests and responses.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::body::{Body, HyperReqBody, RequestBody};
use crate::connector::Connector;
use crate::error::{ErrorKind, HttpError, classify};

/// An HTTP proxy, used through `CONNECT` tunnels.
#[derive(Clone)]
pub struct Proxy {
    uri: Uri,
    auth: Option<HeaderValue>,
    proxy_loopback: bool,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("uri", &self.uri.to_string())
            .field("auth", &self.auth.as_ref().map(|_| "<redacted>"))
            .field("proxy_loopback", &self.proxy_loopback)
            .finish()
    }
}

impl Proxy {
    /// An HTTP proxy at `url` (`http://host:port`). Credentials in the URL
    /// (`http://user:pass@host:port`) are sent as `Proxy-Authorization: Basic`.
    ///
    /// Every connection through the proxy is a `CONNECT` tunnel, for `https` and for plain
    /// `http` targets alike (the target port is always explicit in the `CONNECT` line).
    /// Loopback targets (`127.0.0.0/8`, `::1`, `localhost`) bypass the proxy unless
    /// [`Proxy::proxy_loopback`] is set.
    pub fn http(url: &str) -> Result<Self, HttpError> {
        let invalid = |why: &str| {
            HttpError::msg(
                ErrorKind::InvalidRequest,
                format!("invalid proxy URL: {why}"),
            )
        };
        let uri: Uri = url.parse().map_err(|_| invalid("not a URL"))?;
        if uri.scheme_str() != Some("http") {
            return Err(invalid("only http:// proxies are supported"));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| invalid("no host"))?
            .as_str()
            .to_owned();
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_owned()), h.to_owned()),
            None => (None, authority),
        };
        let clean: Uri = format!("http://{hostport}")
            .parse()
            .map_err(|_| invalid("bad host"))?;
        let mut proxy = Self {
            uri: clean,
            auth: None,
            proxy_loopback: false,
        };
        if let Some(userinfo) = userinfo {
            let (user, pass) = userinfo.split_once(':').unwrap_or((&userinfo, ""));
            proxy = proxy.basic_auth(user, pass);
        }
        Ok(proxy)
    }

    /// Send `Proxy-Authorization: Basic` with these credentials.
    pub fn basic_auth(mut self, user: &str, password: &str) -> Self {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        if let Ok(mut value) = HeaderValue::from_str(&format!("Basic {token}")) {
            value.set_sensitive(true);
            self.auth = Some(value);
        }
        self
    }

    /// Also send loopback traffic through the proxy (off by default).
    pub fn proxy_loopback(mut self, yes: bool) -> Self {
        self.proxy_loopback = yes;
        self
    }
}

/// Configuration of an [`HttpClient`]. Build with [`HttpConfig::default`] and the `with_*`
/// methods.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Timeout for opening a TCP connection. Default 10 s.
    pub connect_timeout: Duration,
    /// Deadline for a whole exchange (headers and body) when the request sets none.
    /// Default: none.
    pub default_timeout: Option<Duration>,
    /// Cap on every response body, in bytes, when the request sets none. Default 16 MiB.
    pub max_response_body: u64,
    /// How long an idle keep-alive connection stays in the pool. Default 90 s.
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per host. Default 8.
    pub pool_max_idle_per_host: usize,
    /// An HTTP proxy; `None` (the default) connects directly.
    pub proxy: Option<Proxy>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            default_timeout: None,
            max_response_body: 16 * 1024 * 1024,
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 8,
            proxy: None,
        }
    }
}

impl HttpConfig {
    /// Set [`HttpConfig::connect_timeout`].
    pub fn with_connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }
    /// Set [`HttpConfig::default_timeout`].
    pub fn with_default_timeout(mut self, t: Option<Duration>) -> Self {
        self.default_timeout = t;
        self
    }
    /// Set [`HttpConfig::max_response_body`].
    pub fn with_max_response_body(mut self, bytes: u64) -> Self {
        self.max_response_body = bytes;
        self
    }
    /// Set [`HttpConfig::pool_idle_timeout`].
    pub fn with_pool_idle_timeout(mut self, t: Duration) -> Self {
        self.pool_idle_timeout = t;
        self
    }
    /// Set [`HttpConfig::pool_max_idle_per_host`].
    pub fn with_pool_max_idle_per_host(mut self, n: usize) -> Self {
        self.pool_max_idle_per_host = n;
        self
    }
    /// Set [`HttpConfig::proxy`].
    pub fn with_proxy(mut self, proxy: Option<Proxy>) -> Self {
        self.proxy = proxy;
        self
    }
}

/// An HTTP/1.1 client with a keep-alive connection pool, `https` through rustls (ring, webpki
/// roots) and plain `http`. Cheap to clone: clones share the pool.
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<HttpsConnector<Connector>, HyperReqBody>,
    config: Arc<HttpConfig>,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client with this configuration. Must be called inside a Tokio runtime only when the
    /// first request is made (building does no I/O).
    pub fn new(config: HttpConfig) -> Result<Self, HttpError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| HttpError::new(ErrorKind::Tls, Some(Box::new(e))))?
            .with_root_certificates(roots)
            .with_no_client_auth();

        let mut direct = HttpConnector::new();
        direct.enforce_http(false);
        direct.set_nodelay(true);
        direct.set_connect_timeout(Some(config.connect_timeout));
        direct.set_keepalive(Some(Duration::from_secs(60)));

        let tunnel = config.proxy.as_ref().map(|p| {
            let mut proxy_conn = direct.clone();
            proxy_conn.enforce_http(true);
            let t = Tunnel::new(p.uri.clone(), proxy_conn);
            match &p.auth {
                Some(a) => t.with_auth(a.clone()),
                None => t,
            }
        });
        let proxy_loopback = config.proxy.as_ref().is_some_and(|p| p.proxy_loopback);
        let connector = Connector::new(direct, tunnel, proxy_loopback);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let inner = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .build(https);
        Ok(Self {
            inner,
            config: Arc::new(config),
        })
    }

    /// The configuration of this client.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// Send a request and wait for the response headers. The request's deadline (its own
    /// timeout, else [`HttpConfig::default_timeout`]) also covers reading the body.
    pub async fn request(&self, req: Request) -> Result<Response, HttpError> {
        let Request {
            method,
            url,
            headers,
            body,
            timeout,
            max_body,
            error,
        } = req;
        let context = format!("{method} {}", redact_url(&url));
        if let Some(e) = error {
            return Err(e.with_context(context));
        }
        let uri: Uri = url.parse().map_err(|e: http::uri::InvalidUri| {
            HttpError::new(ErrorKind::InvalidRequest, Some(Box::new(e))).with_context(&context)
        })?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(HttpError::msg(
                ErrorKind::InvalidRequest,
                "the URL must be absolute, http:// or https://",
            )
            .with_context(context));
        }
        let mut builder = http::Request::builder().method(method.clone()).uri(uri);
        if let Some(h) = builder.headers_mut() {
            *h = headers;
        }
        let hreq = builder.body(HyperReqBody(body)).map_err(|e| {
            HttpError::new(ErrorKind::InvalidRequest, Some(Box::new(e))).with_context(&context)
        })?;

        let timeout = timeout.or(self.config.default_timeout);
        let deadline = timeout.map(|t| Instant::now() + t);
        let limit = max_body.unwrap_or(self.config.max_response_body);
        let span = tracing::debug_span!("http", method = %method, url = %redact_url(&url));
        let fut = self.inner.request(hreq);
        let result = async {
            match deadline {
                Some(d) => match tokio::time::timeout_at(d, fut).await {
                    Ok(r) => r.map_err(Some),
                    Err(_) => Err(None),
                },
                None => fut.await.map_err(Some),
            }
        }
        .instrument(span)
        .await;
        let resp = match result {
            Ok(r) => r,
            Err(None) => {
                let msg = match timeout {
                    Some(t) => format!("no response within {} ms", t.as_millis()),
                    None => "no response in time".to_owned(),
                };
                return Err(HttpError::msg(ErrorKind::Timeout, msg).with_context(context));
            }
            Err(Some(e)) => {
                let is_connect = e.is_connect();
                return Err(classify(Box::new(e), is_connect).with_context(context));
            }
        };
        let (parts, incoming) = resp.into_parts();
        tracing::debug!(status = parts.status.as_u16(), "http response");
        let sleep = deadline.map(|d| Box::pin(tokio::time::sleep_until(d)));
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body: Body::new(incoming, sleep, limit, context),
        })
    }
}

/// The URL without its query string (which may carry secrets such as CDN parameters).
pub(crate) fn redact_url(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// An HTTP request. Build with [`Request::get`], [`Request::post`] or [`Request::new`]; header
/// errors are reported when the request is sent.
pub struct Request {
    method: Method,
    url: String,
    headers: HeaderMap,
    body: RequestBody,
    timeout: Option<Duration>,
    max_body: Option<u64>,
    error: Option<HttpError>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &redact_url(&self.url))
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("body", &self.body)
            .field("timeout", &self.timeout)
            .field("max_body", &self.max_body)
            .finish()
    }
}

impl Request {
    /// A request with this method to this absolute `http://` or `https://` URL.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            headers: HeaderMap::new(),
            body: RequestBody::empty(),
            timeout: None,
            max_body: None,
            error: None,
        }
    }

    /// A `GET` request.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::GET, url)
    }

    /// A `POST` request.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new(Method::POST, url)
    }

    /// Add a header (appended; a repeated name sends the header several times).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(v)) => {
                self.headers.append(n, v);
            }
            _ => {
                if self.error.is_none() {
                    self.error = Some(HttpError::msg(
                        ErrorKind::InvalidRequest,
                        format!("invalid header {name:?}"),
                    ));
                }
            }
        }
        self
    }

    /// Add a header whose value is a secret: it is marked sensitive (never logged by hyper) and
    /// its value is not echoed in errors.
    pub fn sensitive_header(mut self, name: &str, value: &str) -> Self {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(mut v)) => {
                v.set_sensitive(true);
                self.headers.append(n, v);
            }
            _ => {
                if self.error.is_none() {
                    self.error = Some(HttpError::msg(
                        ErrorKind::InvalidRequest,
                        format!("invalid value for header {name:?}"),
                    ));
                }
            }
        }
        self
    }

    /// Set the body.
    pub fn body(mut self, body: impl Into<RequestBody>) -> Self {
        self.body = body.into();
        self
    }

    /// Set a deadline for the whole exchange: connecting, sending, response headers and body.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }

    /// Cap the response body at this many bytes (instead of [`HttpConfig::max_response_body`]).
    pub fn max_body(mut self, bytes: u64) -> Self {
        self.max_body = Some(bytes);
        self
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The headers set so far.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }
}

/// A response: status and headers, and a body still to be read.
#[derive(Debug)]
#[non_exhaustive]
pub struct Response {
    /// The HTTP status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body, read on demand.
    pub body: Body,
}

impl Response {
    /// Read the whole body into memory, up to the body cap.
    pub async fn bytes(self) -> Result<bytes::Bytes, HttpError> {
        self.body.collect().await
    }

    /// A response header as text, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}
