//! A hostile HTTP/1.1 server on `127.0.0.1`, written on raw TCP so that it can break the
//! protocol in ways a well-behaved server library would not: endless and huge bodies, slow
//! drips, redirects. Plus a [`Canary`] listener that counts the connections it gets, to prove
//! that a client never went somewhere.
//!
//! Everything here listens on loopback only.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// A request the hostile server received.
#[derive(Debug, Clone)]
pub struct RawRequest {
    /// `GET`, `POST`…
    pub method: String,
    /// The path with its query.
    pub path: String,
    /// The request body.
    pub body: Vec<u8>,
}

impl RawRequest {
    /// True if the path ends with `suffix` (before any query).
    pub fn is(&self, suffix: &str) -> bool {
        self.path
            .split('?')
            .next()
            .is_some_and(|p| p.ends_with(suffix))
    }
}

/// How the hostile server answers one request.
#[derive(Debug, Clone)]
pub enum RawReply {
    /// A complete response.
    Full {
        /// Status code.
        status: u16,
        /// Extra headers.
        headers: Vec<(String, String)>,
        /// The body (sent with its `Content-Length`).
        body: Vec<u8>,
    },
    /// `200` with a body of zeros that never ends (or declares `declared_len` and streams
    /// up to it), in chunks of 64 KiB, until the client goes away.
    Huge {
        /// A `Content-Length` to declare; `None` for a chunked body.
        declared_len: Option<u64>,
    },
    /// `200`, chunked, one JSON space every `every`, forever.
    Endless {
        /// Between chunks.
        every: Duration,
    },
    /// `200` with `body` sent one byte every `every`.
    Drip {
        /// The body.
        body: Vec<u8>,
        /// Between bytes.
        every: Duration,
    },
    /// Close the connection without answering.
    Close,
    /// Keep the connection open and never answer (for at most 10 minutes).
    Hang,
    /// Write these bytes as they are (anything but HTTP), then close.
    Raw(Vec<u8>),
}

impl RawReply {
    /// `200` with a JSON body.
    pub fn json(v: &serde_json::Value) -> Self {
        Self::Full {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: v.to_string().into_bytes(),
        }
    }

    /// A redirect to `location`.
    pub fn redirect(status: u16, location: &str) -> Self {
        Self::Full {
            status,
            headers: vec![("Location".into(), location.to_owned())],
            body: Vec::new(),
        }
    }
}

type Handler = Arc<dyn Fn(&RawRequest) -> RawReply + Send + Sync>;

/// Counters of what the hostile server did.
#[derive(Debug, Default)]
pub struct RawStats {
    /// Requests received.
    pub requests: AtomicUsize,
    /// Body bytes written in streamed replies (`Huge`, `Endless`, `Drip`).
    pub streamed_bytes: AtomicU64,
    /// Streamed replies that ended because the client closed the connection.
    pub abandoned_by_client: AtomicUsize,
    /// The largest number of body bytes written in one streamed reply.
    pub max_streamed_one: AtomicU64,
}

/// A hostile server running in a task until dropped.
#[derive(Debug)]
pub struct RawServer {
    addr: SocketAddr,
    stats: Arc<RawStats>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawServer {
    /// Starts a server on `127.0.0.1` answering with `handler`.
    pub async fn start(
        handler: impl Fn(&RawRequest) -> RawReply + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(RawStats::default());
        let handler: Handler = Arc::new(handler);
        let st = stats.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (h, st) = (handler.clone(), st.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, h, st).await;
                });
            }
        });
        Ok(Self { addr, stats, task })
    }

    /// `http://127.0.0.1:PORT/`.
    pub fn base_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The counters.
    pub fn stats(&self) -> &RawStats {
        &self.stats
    }
}

async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<RawRequest> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(chunk.get(..n)?);
    };
    let head = String::from_utf8_lossy(buf.get(..head_end)?).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let path = first.next()?.to_owned();
    let len: usize = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let mut chunk = [0u8; 65536];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(chunk.get(..n)?);
    }
    let body = buf.get(head_end..head_end + len)?.to_vec();
    buf.drain(..head_end + len);
    Some(RawRequest { method, path, body })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        _ => "Status",
    }
}

async fn serve(mut stream: TcpStream, handler: Handler, stats: Arc<RawStats>) -> Option<()> {
    let mut buf = Vec::new();
    loop {
        let req = read_request(&mut stream, &mut buf).await?;
        stats.requests.fetch_add(1, Ordering::SeqCst);
        match handler(&req) {
            RawReply::Full {
                status,
                headers,
                body,
            } => {
                let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
                stream.write_all(head.as_bytes()).await.ok()?;
                stream.write_all(&body).await.ok()?;
            }
            RawReply::Close => return None,
            RawReply::Raw(bytes) => {
                let _ = stream.write_all(&bytes).await;
                return None;
            }
            RawReply::Hang => {
                // Bounded: the test's client is expected to give up long before.
                let mut byte = [0u8; 1];
                let _ =
                    tokio::time::timeout(Duration::from_secs(600), stream.read(&mut byte)).await;
                return None;
            }
            streamed => {
                stream_reply(&mut stream, streamed, &stats).await;
                return None;
            }
        }
    }
}

async fn stream_reply(stream: &mut TcpStream, reply: RawReply, stats: &RawStats) {
    let mut written: u64 = 0;
    let result: std::io::Result<()> = async {
        match reply {
            RawReply::Huge { declared_len } => {
                let head = match declared_len {
                    Some(n) => format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n"),
                    None => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_owned(),
                };
                stream.write_all(head.as_bytes()).await?;
                let chunk = vec![b' '; 64 * 1024];
                loop {
                    if declared_len.is_some_and(|n| written >= n) {
                        return Ok(());
                    }
                    if declared_len.is_none() {
                        stream
                            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                            .await?;
                    }
                    stream.write_all(&chunk).await?;
                    if declared_len.is_none() {
                        stream.write_all(b"\r\n").await?;
                    }
                    written += chunk.len() as u64;
                    // A bound against a client that reads forever: 1 GiB.
                    if written > 1 << 30 {
                        return Ok(());
                    }
                }
            }
            RawReply::Endless { every } => {
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                    .await?;
                // A bound in time: 10 minutes of drip at most.
                for _ in 0..(600_000 / every.as_millis().max(1)) {
                    stream.write_all(b"1\r\n \r\n").await?;
                    stream.flush().await?;
                    written += 1;
                    tokio::time::sleep(every).await;
                }
                Ok(())
            }
            RawReply::Drip { body, every } => {
                stream
                    .write_all(
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len())
                            .as_bytes(),
                    )
                    .await?;
                for b in body {
                    stream.write_all(&[b]).await?;
                    stream.flush().await?;
                    written += 1;
                    tokio::time::sleep(every).await;
                }
                Ok(())
            }
            RawReply::Full { .. } | RawReply::Close | RawReply::Hang | RawReply::Raw(_) => Ok(()),
        }
    }
    .await;
    stats.streamed_bytes.fetch_add(written, Ordering::SeqCst);
    stats.max_streamed_one.fetch_max(written, Ordering::SeqCst);
    if result.is_err() {
        stats.abandoned_by_client.fetch_add(1, Ordering::SeqCst);
    }
}

/// A listener that only counts connections: point a URL at it to prove nobody connects.
/// It binds `127.0.0.2` (another loopback address, so that host allowlists that admit
/// `127.0.0.1` do not admit it), or `127.0.0.1` where that is not possible.
#[derive(Debug)]
pub struct Canary {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Canary {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Canary {
    /// Starts the canary.
    pub async fn start() -> std::io::Result<Self> {
        let listener = match TcpListener::bind((Ipv4Addr::new(127, 0, 0, 2), 0)).await {
            Ok(l) => l,
            Err(_) => TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?,
        };
        let addr = listener.local_addr()?;
        let connections = Arc::new(AtomicUsize::new(0));
        let c = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((_s, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
            }
        });
        Ok(Self {
            addr,
            connections,
            task,
        })
    }

    /// `host:port` of the canary.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}
