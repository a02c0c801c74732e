//! A minimal HTTP/1.1 client over a raw TcpStream (one request per connection), and
//! helpers that send what Tencent's official client sends.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request and reads the whole response. A connection closed before a
/// complete response is an error (`UnexpectedEof`).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Resp> {
    let mut s = TcpStream::connect(addr).await?;
    let mut head = format!("{method} {target} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if method != "GET" {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "no response head"))?;
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let body = buf[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let declared = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    if declared.is_some_and(|len| body.len() < len) {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "truncated body",
        ));
    }
    Ok(Resp {
        status,
        headers,
        body,
    })
}

pub const BASE_INFO: &str = r#"{"channel_version":"2.4.9","bot_agent":"OpenClaw"}"#;

pub fn base_info() -> Value {
    serde_json::from_str(BASE_INFO).unwrap()
}

/// POSTs `body` to `ilink/bot/<endpoint>` with the official client's headers.
pub async fn post(
    addr: SocketAddr,
    endpoint: &str,
    token: Option<&str>,
    body: &Value,
) -> io::Result<Resp> {
    post_at(addr, &format!("/ilink/bot/{endpoint}"), token, body).await
}

pub async fn post_at(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> io::Result<Resp> {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![
        ("content-type", "application/json"),
        ("authorizationtype", "ilink_bot_token"),
        ("x-wechat-uin", "MjczNTkyMDUxNA=="),
        ("ilink-app-id", "bot"),
        ("ilink-app-clientversion", "132105"),
    ];
    if let Some(b) = &bearer {
        headers.push(("authorization", b.as_str()));
    }
    request(addr, "POST", path, &headers, body.to_string().as_bytes()).await
}

pub async fn get_updates(addr: SocketAddr, token: &str, cursor: &str) -> Value {
    post(
        addr,
        "getupdates",
        Some(token),
        &json!({"get_updates_buf": cursor, "base_info": base_info()}),
    )
    .await
    .unwrap()
    .json()
}

/// A well-formed text reply, as the official client builds it.
pub fn text_reply(to: &str, ctx: Option<&str>, client_id: &str, text: &str) -> Value {
    let mut msg = json!({
        "from_user_id": "",
        "to_user_id": to,
        "client_id": client_id,
        "message_type": 2,
        "message_state": 2,
        "item_list": [{"type": 1, "text_item": {"text": text}}],
    });
    if let Some(c) = ctx {
        msg["context_token"] = json!(c);
    }
    json!({"msg": msg, "base_info": base_info()})
}

pub async fn send(addr: SocketAddr, token: &str, body: &Value) -> Value {
    post(addr, "sendmessage", Some(token), body)
        .await
        .unwrap()
        .json()
}

pub fn short() -> Duration {
    Duration::from_millis(100)
}

pub fn config() -> ilink_sim::SimConfig {
    ilink_sim::SimConfig::for_tests(short())
}

/// Percent-encodes like `encodeURIComponent` (for query values in tests).
pub fn urlenc(s: &str) -> String {
    s.bytes()
        .map(|c| {
            if c.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&c) {
                (c as char).to_string()
            } else {
                format!("%{c:02X}")
            }
        })
        .collect()
}

/// Splits an absolute `http://host:port/path?query` URL into its request target.
pub fn target_of(url: &str) -> String {
    let rest = url.strip_prefix("http://").expect("http URL");
    rest[rest.find('/').expect("a path")..].to_owned()
}
