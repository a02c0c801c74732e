//! The transport against tiny servers on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::error::Error as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use ilink_http::{ErrorKind, HttpClient, HttpConfig, Proxy, Request, RequestBody};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Resp = hyper::Response<http_body_util::combinators::BoxBody<Bytes, Infallible>>;

fn full(b: impl Into<Bytes>) -> http_body_util::combinators::BoxBody<Bytes, Infallible> {
    Full::new(b.into()).boxed()
}

async fn handle(req: hyper::Request<Incoming>) -> Result<Resp, Infallible> {
    let path = req.uri().path().to_owned();
    let resp = match path.as_str() {
        "/hello" => hyper::Response::builder()
            .header("x-test", "yes")
            .body(full("hello world"))
            .unwrap(),
        "/echo" => {
            let cl = req
                .headers()
                .get("content-length")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_else(|| "none".into());
            let te = req
                .headers()
                .get("transfer-encoding")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_else(|| "none".into());
            let body = req.into_body().collect().await.unwrap().to_bytes();
            hyper::Response::builder()
                .header("x-cl", cl)
                .header("x-te", te)
                .body(full(body))
                .unwrap()
        }
        "/stall" => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        "/stall-body" => {
            let s = futures_util::stream::once(async {
                Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"first")))
            })
            .chain(futures_util::stream::pending());
            hyper::Response::builder()
                .body(BodyExt::boxed(StreamBody::new(s)))
                .unwrap()
        }
        "/big" => hyper::Response::builder()
            .body(full(vec![b'x'; 100_000]))
            .unwrap(),
        "/chunked-big" => {
            let s = futures_util::stream::iter(
                (0..100).map(|_| Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'y'; 1000])))),
            );
            hyper::Response::builder()
                .body(BodyExt::boxed(StreamBody::new(s)))
                .unwrap()
        }
        _ => hyper::Response::builder()
            .status(404)
            .body(full("nope"))
            .unwrap(),
    };
    Ok(resp)
}

/// A hyper server; returns its address and a counter of accepted connections.
async fn server() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let c = conns.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            c.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(handle))
                    .await;
            });
        }
    });
    (addr, conns)
}

/// A raw TCP server that answers every connection with `reply` and closes.
async fn raw_server(reply: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(reply).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

/// A minimal CONNECT proxy. Counts tunnels; demands `Proxy-Authorization` when `auth` is set.
async fn connect_proxy(auth: Option<&'static str>) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tunnels = Arc::new(AtomicUsize::new(0));
    let t = tunnels.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let t = t.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if s.read(&mut byte).await.unwrap() == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8(head).unwrap();
                let target = head
                    .strip_prefix("CONNECT ")
                    .and_then(|r| r.split(' ').next())
                    .unwrap()
                    .to_owned();
                if let Some(a) = auth {
                    let want = format!("proxy-authorization: {a}");
                    if !head
                        .to_ascii_lowercase()
                        .contains(&want.to_ascii_lowercase())
                    {
                        let _ = s
                            .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
                            .await;
                        return;
                    }
                }
                let mut up = TcpStream::connect(&target).await.unwrap();
                t.fetch_add(1, Ordering::SeqCst);
                s.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut s, &mut up).await;
            });
        }
    });
    (addr, tunnels)
}

fn client() -> HttpClient {
    HttpClient::new(HttpConfig::default()).unwrap()
}

#[tokio::test]
async fn get_returns_status_headers_and_body() {
    let (addr, _) = server().await;
    let resp = client()
        .request(Request::get(format!("http://{addr}/hello")))
        .await
        .unwrap();
    assert_eq!(resp.status.as_u16(), 200);
    assert_eq!(resp.header("x-test"), Some("yes"));
    assert_eq!(&resp.bytes().await.unwrap()[..], b"hello world");
}

#[tokio::test]
async fn non_2xx_is_a_response_not_an_error() {
    let (addr, _) = server().await;
    let resp = client()
        .request(Request::get(format!("http://{addr}/missing")))
        .await
        .unwrap();
    assert_eq!(resp.status.as_u16(), 404);
    assert_eq!(&resp.bytes().await.unwrap()[..], b"nope");
}

#[tokio::test]
async fn keep_alive_reuses_one_connection() {
    let (addr, conns) = server().await;
    let c = client();
    for _ in 0..5 {
        let r = c
            .request(Request::get(format!("http://{addr}/hello")))
            .await
            .unwrap();
        r.bytes().await.unwrap();
    }
    assert_eq!(conns.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn bytes_body_sends_content_length() {
    let (addr, _) = server().await;
    let resp = client()
        .request(
            Request::post(format!("http://{addr}/echo"))
                .header("content-type", "application/json")
                .body(r#"{"a":1}"#),
        )
        .await
        .unwrap();
    assert_eq!(resp.header("x-cl"), Some("7"));
    assert_eq!(&resp.bytes().await.unwrap()[..], br#"{"a":1}"#);
}

#[tokio::test]
async fn reader_body_streams_with_and_without_length() {
    let (addr, _) = server().await;
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let c = client();

    let resp = c
        .request(
            Request::post(format!("http://{addr}/echo")).body(RequestBody::reader(
                std::io::Cursor::new(data.clone()),
                Some(data.len() as u64),
                1000,
            )),
        )
        .await
        .unwrap();
    assert_eq!(resp.header("x-cl"), Some("200000"));
    assert_eq!(resp.header("x-te"), Some("none"));
    assert_eq!(resp.bytes().await.unwrap().as_ref(), data.as_slice());

    let resp = c
        .request(
            Request::post(format!("http://{addr}/echo")).body(RequestBody::reader(
                std::io::Cursor::new(data.clone()),
                None,
                0,
            )),
        )
        .await
        .unwrap();
    assert_eq!(resp.header("x-cl"), Some("none"));
    assert_eq!(resp.header("x-te"), Some("chunked"));
    assert_eq!(resp.bytes().await.unwrap().as_ref(), data.as_slice());
}

#[tokio::test]
async fn failing_request_stream_is_a_request_body_error() {
    let (addr, _) = server().await;
    let s = futures_util::stream::iter(vec![
        Ok(Bytes::from_static(b"abc")),
        Err(std::io::Error::other("disk on fire")),
    ]);
    let err = client()
        .request(Request::post(format!("http://{addr}/echo")).body(RequestBody::stream(s, None)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RequestBody, "{err}");
}

#[tokio::test]
async fn timeout_waiting_for_headers() {
    let (addr, _) = server().await;
    let err = client()
        .request(Request::get(format!("http://{addr}/stall")).timeout(Duration::from_millis(50)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(err.is_timeout());
    // Display is this layer only; the detail is the source.
    assert!(
        err.source()
            .is_some_and(|s| s.to_string().contains("no response within 50 ms")),
        "{err:?}"
    );
}

#[tokio::test]
async fn default_timeout_applies_when_request_sets_none() {
    let (addr, _) = server().await;
    let c = HttpClient::new(
        HttpConfig::default().with_default_timeout(Some(Duration::from_millis(50))),
    )
    .unwrap();
    let err = c
        .request(Request::get(format!("http://{addr}/stall")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
}

#[tokio::test]
async fn deadline_covers_the_body() {
    let (addr, _) = server().await;
    let mut resp = client()
        .request(
            Request::get(format!("http://{addr}/stall-body")).timeout(Duration::from_millis(200)),
        )
        .await
        .unwrap();
    assert_eq!(&resp.body.chunk().await.unwrap().unwrap()[..], b"first");
    let err = resp.body.chunk().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
}

#[tokio::test]
async fn body_cap_by_content_length_and_by_stream() {
    let (addr, _) = server().await;
    let c = client();
    let resp = c
        .request(Request::get(format!("http://{addr}/big")).max_body(1000))
        .await
        .unwrap();
    let err = resp.bytes().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BodyTooLarge);
    assert!(
        err.source()
            .is_some_and(|s| s.to_string().contains("1000 bytes")),
        "{err:?}"
    );

    let resp = c
        .request(Request::get(format!("http://{addr}/chunked-big")))
        .await
        .unwrap();
    let err = resp.body.collect_capped(5_500).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BodyTooLarge);

    // Under the cap: fine, and the client-wide cap applies by default.
    let resp = c
        .request(Request::get(format!("http://{addr}/chunked-big")))
        .await
        .unwrap();
    assert_eq!(
        resp.body.collect_capped(100_000).await.unwrap().len(),
        100_000
    );
    let small = HttpClient::new(HttpConfig::default().with_max_response_body(10)).unwrap();
    let resp = small
        .request(Request::get(format!("http://{addr}/hello")))
        .await
        .unwrap();
    assert_eq!(
        resp.bytes().await.unwrap_err().kind(),
        ErrorKind::BodyTooLarge
    );
}

#[tokio::test]
async fn body_is_a_stream_of_chunks() {
    let (addr, _) = server().await;
    let resp = client()
        .request(Request::get(format!("http://{addr}/chunked-big")))
        .await
        .unwrap();
    let mut body = resp.body;
    let mut total = 0;
    let mut chunks = 0;
    while let Some(chunk) = body.next().await {
        total += chunk.unwrap().len();
        chunks += 1;
    }
    assert_eq!(total, 100_000);
    assert!(chunks > 1);
    assert_eq!(body.bytes_read(), 100_000);
}

#[tokio::test]
async fn refused_connection_is_connect_error() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let err = client()
        .request(Request::get(format!("http://{addr}/")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect, "{err:?}");
    assert!(err.is_request_not_sent());
}

#[tokio::test]
async fn garbage_response_is_protocol_error() {
    let addr = raw_server(b"SPEAK FRIEND\r\n\r\n").await;
    let err = client()
        .request(Request::get(format!("http://{addr}/")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err:?}");
}

#[tokio::test]
async fn truncated_body_is_protocol_error() {
    let addr = raw_server(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort").await;
    let resp = client()
        .request(Request::get(format!("http://{addr}/")))
        .await
        .unwrap();
    let err = resp.bytes().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err:?}");
}

#[tokio::test]
async fn tls_to_a_non_tls_server_is_tls_error() {
    let addr = raw_server(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
    let err = client()
        .request(Request::get(format!("https://localhost:{}/", addr.port())))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err:?}");
    assert!(err.is_request_not_sent());
}

#[tokio::test]
async fn invalid_requests_are_reported_before_sending() {
    let c = client();
    let err = c.request(Request::get("not a url")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    let err = c
        .request(Request::get("ftp://127.0.0.1/x"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    let err = c
        .request(Request::get("http://127.0.0.1:1/").header("bad header", "x"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
}

#[tokio::test]
async fn errors_never_show_the_query_string() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let err = client()
        .request(Request::get(format!(
            "http://{addr}/download?encrypted_query_param=SECRET"
        )))
        .await
        .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains("SECRET"), "{text}");
    assert!(text.contains("/download"), "{text}");
}

#[tokio::test]
async fn proxy_tunnels_with_connect() {
    let (target, _) = server().await;
    let (proxy, tunnels) = connect_proxy(None).await;
    let p = Proxy::http(&format!("http://{proxy}"))
        .unwrap()
        .proxy_loopback(true);
    let c = HttpClient::new(HttpConfig::default().with_proxy(Some(p))).unwrap();
    let resp = c
        .request(Request::get(format!("http://{target}/hello")))
        .await
        .unwrap();
    assert_eq!(&resp.bytes().await.unwrap()[..], b"hello world");
    assert_eq!(tunnels.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn proxy_with_credentials_and_a_refusal() {
    let (target, _) = server().await;
    // "user:pw" in base64.
    let (proxy, tunnels) = connect_proxy(Some("Basic dXNlcjpwdw==")).await;
    let ok = Proxy::http(&format!("http://user:pw@{proxy}"))
        .unwrap()
        .proxy_loopback(true);
    let c = HttpClient::new(HttpConfig::default().with_proxy(Some(ok))).unwrap();
    let resp = c
        .request(Request::get(format!("http://{target}/hello")))
        .await
        .unwrap();
    assert_eq!(resp.status.as_u16(), 200);
    assert_eq!(tunnels.load(Ordering::SeqCst), 1);
    assert!(!format!("{:?}", c.config()).contains("pw@"));

    let bad = Proxy::http(&format!("http://{proxy}"))
        .unwrap()
        .proxy_loopback(true);
    let c = HttpClient::new(HttpConfig::default().with_proxy(Some(bad))).unwrap();
    let err = c
        .request(Request::get(format!("http://{target}/hello")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Proxy, "{err:?}");
}

#[tokio::test]
async fn loopback_bypasses_the_proxy_by_default() {
    let (target, _) = server().await;
    let (proxy, tunnels) = connect_proxy(None).await;
    let p = Proxy::http(&format!("http://{proxy}")).unwrap();
    let c = HttpClient::new(HttpConfig::default().with_proxy(Some(p))).unwrap();
    let resp = c
        .request(Request::get(format!("http://{target}/hello")))
        .await
        .unwrap();
    assert_eq!(resp.status.as_u16(), 200);
    assert_eq!(tunnels.load(Ordering::SeqCst), 0);
}

#[test]
fn proxy_url_must_be_http() {
    assert_eq!(
        Proxy::http("socks5://127.0.0.1:1080").unwrap_err().kind(),
        ErrorKind::InvalidRequest
    );
    assert!(Proxy::http("http://127.0.0.1:3128").is_ok());
}
