//! HTTP plumbing: accept loop, routing, request log, fault application.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt as _;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::fault::{Endpoint, Fault};
use crate::model::{DropReason, RequestRecord};
use crate::state::{Shared, stale_token_body};
use crate::{admin, api, page, wire};

/// A response before faults are applied to it.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Bytes,
}

impl Reply {
    pub(crate) fn json(shared: &Shared, v: &Value) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type", shared.config.json_content_type.clone())],
            body: Bytes::from(v.to_string()),
        }
    }

    /// JSON with `application/json` (admin API).
    pub(crate) fn admin_json(status: u16, v: &Value) -> Self {
        Self {
            status,
            headers: vec![("content-type", "application/json".to_owned())],
            body: Bytes::from(v.to_string()),
        }
    }

    pub(crate) fn text(status: u16, msg: &str) -> Self {
        Self {
            status,
            headers: vec![("content-type", "text/plain; charset=utf-8".to_owned())],
            body: Bytes::from(msg.to_owned()),
        }
    }

    /// A CDN-style error: the message in `x-error-message` and in the body.
    pub(crate) fn cdn_error(status: u16, msg: &str) -> Self {
        let mut r = Self::text(status, msg);
        r.headers.push(("x-error-message", msg.to_owned()));
        r
    }
}

/// The body type of every response: whole, cut short on purpose, or a stream of events.
pub(crate) enum SimBody {
    Full(Option<Bytes>),
    /// Server-sent events, fed by a task that ends when the client goes away.
    Events(tokio::sync::mpsc::Receiver<Bytes>),
    /// Yields the first part then fails, which makes hyper close the connection.
    Truncated(Option<Bytes>, bool),
}

/// The error a truncated body ends with.
#[derive(Debug)]
pub(crate) struct Truncated;

impl fmt::Display for Truncated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("response truncated by an injected fault")
    }
}

impl std::error::Error for Truncated {}

impl hyper::body::Body for SimBody {
    type Data = Bytes;
    type Error = Truncated;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Truncated>>> {
        match self.get_mut() {
            Self::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Self::Events(rx) => rx.poll_recv(_cx).map(|b| b.map(|b| Ok(Frame::data(b)))),
            Self::Truncated(part, failed) => {
                if let Some(p) = part.take() {
                    Poll::Ready(Some(Ok(Frame::data(p))))
                } else if !*failed {
                    *failed = true;
                    Poll::Ready(Some(Err(Truncated)))
                } else {
                    Poll::Ready(None)
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Self::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Self::Full(None) => SizeHint::with_exact(0),
            Self::Truncated(..) | Self::Events(_) => SizeHint::default(),
        }
    }
}

/// `GET /_sim/events`: a `change` event whenever the emulator's state changed (the page then
/// reads `/_sim/ui/state`), coalesced to at most one per 100 ms, and a comment every 15 s to
/// keep the connection open.
fn event_stream(shared: &Arc<Shared>) -> Response<SimBody> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let mut changes = shared.changes.subscribe();
    tokio::spawn(async move {
        if tx
            .send(Bytes::from_static(
                b"retry: 1000\n\nevent: change\ndata: 0\n\n",
            ))
            .await
            .is_err()
        {
            return;
        }
        loop {
            let msg =
                match tokio::time::timeout(std::time::Duration::from_secs(15), changes.changed())
                    .await
                {
                    Ok(Err(_)) => return, // the emulator stopped
                    Ok(Ok(())) => {
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        let n = *changes.borrow_and_update();
                        Bytes::from(format!("event: change\ndata: {n}\n\n"))
                    }
                    Err(_) => Bytes::from_static(b": keep-alive\n\n"),
                };
            if tx.send(msg).await.is_err() {
                return;
            }
        }
    });
    let mut resp = Response::new(SimBody::Events(rx));
    for (k, v) in [
        ("content-type", "text/event-stream"),
        ("cache-control", "no-store"),
    ] {
        resp.headers_mut()
            .insert(k, hyper::header::HeaderValue::from_static(v));
    }
    resp
}

/// Returned by the service to make hyper drop the connection without answering.
#[derive(Debug)]
pub(crate) struct ResetConnection;

impl fmt::Display for ResetConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection reset by an injected fault")
    }
}

impl std::error::Error for ResetConnection {}

/// Accepts connections until `shutdown` changes or its sender is dropped.
pub(crate) async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let shared = Arc::clone(&shared);
                    let mut stop = shutdown.clone();
                    tokio::spawn(async move {
                        let svc = service_fn(move |req| handle(Arc::clone(&shared), req));
                        let conn = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc);
                        tokio::select! {
                            res = conn => {
                                if let Err(e) = res {
                                    tracing::debug!(error = %e, "sim connection ended");
                                }
                            }
                            _ = stop.changed() => {}
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "sim accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
}

fn into_response(reply: Reply, truncate: bool) -> Response<SimBody> {
    let len = reply.body.len();
    let body = if truncate {
        SimBody::Truncated(Some(reply.body.slice(..len / 2)), false)
    } else {
        SimBody::Full(Some(reply.body))
    };
    let mut resp = Response::new(body);
    *resp.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in reply.headers {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&v) {
            resp.headers_mut().append(k, v);
        }
    }
    if truncate && let Ok(v) = hyper::header::HeaderValue::from_str(&len.to_string()) {
        resp.headers_mut().insert(hyper::header::CONTENT_LENGTH, v);
    }
    resp
}

/// What arrived, in the form the handlers use.
pub(crate) struct Incoming2 {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Bytes,
}

impl Incoming2 {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn query(&self, key: &str) -> Option<&str> {
        wire::query_get(&self.query, key)
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<SimBody>, ResetConnection> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let raw_query = parts.uri.query().unwrap_or("").to_owned();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let limit = if Endpoint::from_path(&path) == Some(Endpoint::CdnUpload) {
        shared.config.max_upload_bytes
    } else {
        shared.config.max_body_bytes
    };
    let content_length = parts
        .headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let Some(body) = read_body(body, content_length, limit).await else {
        return Ok(into_response(
            Reply::text(413, "request body too large"),
            false,
        ));
    };
    let inc = Incoming2 {
        method: parts.method,
        path,
        query: wire::parse_query(&raw_query),
        headers,
        body,
    };
    let is_page = inc.method == Method::GET && (inc.path == "/" || inc.path == "/index.html");
    let is_admin = inc.path.starts_with("/_sim/") || inc.path == "/_sim";
    if (is_page || is_admin) && !page::allowed(&shared, &inc) {
        return Ok(into_response(
            Reply::admin_json(
                401,
                &serde_json::json!({"error": "refused: the emulator's page and admin API need its access token (?token=… or X-Sim-Token) off loopback, and answer only requests for an IP or localhost from their own origin"}),
            ),
            false,
        ));
    }
    if is_page {
        return Ok(into_response(page::index(), false));
    }
    if inc.method == Method::GET && inc.path == "/_sim/events" {
        return Ok(event_stream(&shared));
    }
    if is_admin {
        let reply = admin::handle(&shared, &inc).await;
        if inc.method != Method::GET {
            shared.touch();
        }
        return Ok(into_response(reply, false));
    }
    let endpoint = Endpoint::from_path(&inc.path);
    let problems = endpoint
        .map(|e| header_problems(e, &inc))
        .unwrap_or_default();
    let now = shared.now_ms();
    let is_cdn = matches!(endpoint, Some(Endpoint::CdnUpload | Endpoint::CdnDownload));
    let record_id = {
        let record = RequestRecord {
            id: 0,
            method: inc.method.to_string(),
            path: inc.path.clone(),
            query: raw_query,
            headers: inc.headers.clone(),
            body: if is_cdn {
                None
            } else {
                std::str::from_utf8(&inc.body).ok().map(str::to_owned)
            },
            body_len: inc.body.len() as u64,
            endpoint,
            problems,
            at_ms: now,
        };
        shared.lock().log_request(record)
    };
    let Some(endpoint) = endpoint else {
        return Ok(into_response(Reply::text(404, "not found"), false));
    };
    if !method_allowed(endpoint, &inc.method) {
        return Ok(into_response(Reply::text(405, "method not allowed"), false));
    }

    // Faults that answer first.
    let mut post_fault = None;
    let mut delayed = false;
    loop {
        // At most one latency per request; it composes with the next queued fault
        // (latency then 524 is the live gateway timeout).
        let fault = shared.lock().faults.take(endpoint, |f| {
            let repeat_latency = delayed && matches!(f, Fault::Latency(_));
            !f.is_duplicate() && !repeat_latency
        });
        let Some(fault) = fault else { break };
        let pre = match fault {
            Fault::Latency(d) => {
                delayed = true;
                tokio::time::sleep(d).await;
                continue;
            }
            Fault::Status(code) => Some(Reply::text(code, &format!("error code: {code}"))),
            Fault::StaleToken => Some(Reply::json(&shared, &stale_token_body())),
            Fault::Json(ref v) => Some(Reply::json(&shared, v)),
            Fault::Overloaded(ref m) => Some(Reply::json(
                &shared,
                &match m {
                    Some(m) => serde_json::json!({"ret": -2, "errmsg": m}),
                    None => serde_json::json!({"ret": -2}),
                },
            )),
            other => {
                post_fault = Some(other);
                None
            }
        };
        if let Some(reply) = pre {
            if endpoint == Endpoint::SendMessage {
                let answered = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
                let raw = inc.json();
                let token = inc
                    .header("authorization")
                    .and_then(|a| a.strip_prefix("Bearer "));
                let mut st = shared.lock();
                let bot = st.bot_of_token(token);
                st.record_unprocessed_send(
                    DropReason::InjectedFault,
                    bot.as_deref(),
                    &raw,
                    answered,
                    now,
                );
                shared.activity.notify_waiters();
            }
            return Ok(into_response(reply, false));
        }
        break;
    }

    let mut extra_problems = Vec::new();
    let mut reply = api::dispatch(&shared, endpoint, &inc, &mut extra_problems).await;
    shared.activity.notify_waiters();
    shared.touch();
    // The path only: queries carry CDN parameters and bodies carry tokens.
    tracing::debug!(
        method = %inc.method,
        path = %inc.path,
        status = reply.status,
        problems = extra_problems.len(),
        "sim request"
    );
    if !extra_problems.is_empty() {
        shared.lock().add_problems(record_id, extra_problems);
    }
    match post_fault {
        Some(Fault::ConnectionReset) => Err(ResetConnection),
        Some(Fault::TruncatedBody) => Ok(into_response(reply, true)),
        Some(Fault::EmptyBody) => {
            reply.body = Bytes::new();
            Ok(into_response(reply, false))
        }
        Some(Fault::MissingEncryptedParam) => {
            reply.headers.retain(|(k, _)| *k != "x-encrypted-param");
            Ok(into_response(reply, false))
        }
        _ => Ok(into_response(reply, false)),
    }
}

/// Reads a request body of at most `limit` bytes into one buffer. With a `Content-Length`
/// the buffer is allocated once at its final size, so a large upload is held once (collecting
/// frames and then joining them would hold it twice). `None` if the body is over `limit` or
/// fails to arrive.
async fn read_body(mut body: Incoming, content_length: Option<u64>, limit: usize) -> Option<Bytes> {
    let declared = content_length.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    if declared.is_some_and(|n| n > limit) {
        return None;
    }
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0));
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.ok()?.into_data() else {
            continue; // trailers
        };
        if buf.len().saturating_add(data.len()) > limit {
            return None;
        }
        buf.extend_from_slice(&data);
    }
    Some(buf.freeze())
}

fn method_allowed(endpoint: Endpoint, method: &Method) -> bool {
    match endpoint {
        Endpoint::GetQrcodeStatus | Endpoint::CdnDownload => method == Method::GET,
        Endpoint::GetBotQrcode => method == Method::GET || method == Method::POST,
        _ => method == Method::POST,
    }
}

/// Everything in a request that differs from what the official client sends (§3).
fn header_problems(endpoint: Endpoint, inc: &Incoming2) -> Vec<String> {
    let mut p = Vec::new();
    let h = |n: &str| inc.header(n);
    match endpoint {
        Endpoint::CdnUpload => {
            if h("content-type") != Some("application/octet-stream") {
                p.push("CDN upload without Content-Type: application/octet-stream".to_owned());
            }
        }
        Endpoint::CdnDownload => {}
        Endpoint::GetQrcodeStatus => {
            if h("ilink-app-id").is_none() {
                p.push("missing iLink-App-Id".to_owned());
            }
            if h("ilink-app-clientversion").is_none() {
                p.push("missing iLink-App-ClientVersion".to_owned());
            }
            if h("authorization").is_some() {
                p.push("QR status poll carries Authorization".to_owned());
            }
            if inc.query("qrcode").is_none() {
                p.push("missing qrcode query parameter".to_owned());
            }
        }
        Endpoint::GetBotQrcode => {
            if inc.query("bot_type") != Some("3") {
                p.push("bot_type is not 3".to_owned());
            }
            if h("authorization").is_some() {
                p.push("get_bot_qrcode carries Authorization".to_owned());
            }
            if inc.method == Method::POST
                && !inc
                    .json()
                    .get("local_token_list")
                    .is_some_and(Value::is_array)
            {
                p.push("POST get_bot_qrcode without local_token_list".to_owned());
            }
        }
        _ => {
            if !h("content-type").is_some_and(|c| c.starts_with("application/json")) {
                p.push("missing Content-Type: application/json".to_owned());
            }
            if h("authorizationtype") != Some("ilink_bot_token") {
                p.push("AuthorizationType is not ilink_bot_token".to_owned());
            }
            if !h("authorization").is_some_and(|a| a.starts_with("Bearer ")) {
                p.push("missing Authorization: Bearer".to_owned());
            }
            match h("x-wechat-uin") {
                None => p.push("missing X-WECHAT-UIN".to_owned()),
                Some(v) if !wire::valid_uin(v) => {
                    p.push("X-WECHAT-UIN is not base64 of a decimal uint32".to_owned());
                }
                Some(_) => {}
            }
            if h("ilink-app-id").is_none() {
                p.push("missing iLink-App-Id".to_owned());
            }
            if !h("ilink-app-clientversion")
                .is_some_and(|v| !v.is_empty() && v.bytes().all(|c| c.is_ascii_digit()))
            {
                p.push("iLink-App-ClientVersion missing or not a decimal number".to_owned());
            }
            if let Some(len) = h("content-length").and_then(|v| v.parse::<usize>().ok())
                && len != inc.body.len()
            {
                p.push("Content-Length does not match the body".to_owned());
            }
            match serde_json::from_slice::<Value>(&inc.body) {
                Err(_) => p.push("body is not JSON".to_owned()),
                Ok(v) => {
                    if !v.get("base_info").is_some_and(Value::is_object) {
                        p.push("body without base_info".to_owned());
                    }
                }
            }
        }
    }
    p
}
