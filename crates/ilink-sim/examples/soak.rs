//! Soak: pushes N messages (default 1,000,000) through one emulator and prints its resident
//! memory (RSS) along the way, to show that memory stays flat once the caps
//! (`SimConfig::retention`) are reached.
//!
//! Each message is one inbound text from a scripted user, queued through the in-process API
//! (`ScriptedUser::send_text`: an HTTP call per inbound message would only measure the admin
//! API), and one reply that the "bot" sends as a real `sendmessage` over loopback HTTP on a
//! keep-alive connection, with the official client's headers and body. Every 100 messages the
//! bot long-polls `getupdates` with its cursor, so the update stream is read too. Users
//! rotate over 1,000 ids, so conversations stay few while messages grow.
//!
//! ```text
//! cargo run --release -p ilink-sim --example soak -- [MESSAGES] [unbounded]
//! ```
//!
//! `unbounded` lifts every cap (`Retention::UNBOUNDED`), to see the growth the caps prevent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io;
use std::time::{Duration, Instant};

use ilink_sim::{Sim, SimConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Resident set size of this process in KiB (Linux), or 0 if unknown.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

struct Conn {
    r: BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
    host: String,
    token: String,
}

impl Conn {
    async fn post(&mut self, endpoint: &str, body: &Value) -> io::Result<Value> {
        let body = serde_json::to_vec(body)?;
        let head = format!(
            "POST /ilink/bot/{endpoint} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
             authorizationtype: ilink_bot_token\r\nauthorization: Bearer {}\r\n\
             x-wechat-uin: MTIzNDU2Nzg5\r\nilink-app-id: bot\r\nilink-app-clientversion: 132105\r\n\
             content-length: {}\r\n\r\n",
            self.host,
            self.token,
            body.len()
        );
        self.w.write_all(head.as_bytes()).await?;
        self.w.write_all(&body).await?;
        let mut len = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            if self.r.read_line(&mut line).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut buf = vec![0; len];
        self.r.read_exact(&mut buf).await?;
        Ok(serde_json::from_slice(&buf)?)
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> io::Result<()> {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.replace('_', "").parse().ok())
        .unwrap_or(1_000_000);
    let unbounded = std::env::args().nth(2).as_deref() == Some("unbounded");
    let mut config = SimConfig {
        longpolling_timeout: Duration::from_millis(50),
        longpoll_margin: Duration::from_millis(10),
        seed: Some(7),
        ..SimConfig::default().without_limits()
    };
    if unbounded {
        config.retention = ilink_sim::Retention::UNBOUNDED;
        config.max_logged_requests = usize::MAX;
        config.max_logged_request_bytes = usize::MAX;
    }
    let caps = config.retention;
    let sim = Sim::start(config).await.map_err(io::Error::other)?;
    let bot = sim.create_bot();
    let stream = TcpStream::connect(sim.addr()).await?;
    stream.set_nodelay(true)?;
    let (r, w) = stream.into_split();
    let mut conn = Conn {
        r: BufReader::new(r),
        w,
        host: sim.addr().to_string(),
        token: bot.token.clone(),
    };
    let users: Vec<_> = (0..1000)
        .map(|i| sim.user(&format!("o9soak_user_{i:04}@im.wechat")))
        .collect();
    println!("caps: {caps:?}");
    println!("messages, rss_mib, msgs_per_s");
    let base = json!({"channel_version": "2.4.9", "bot_agent": "OpenClaw"});
    let mut cursor = String::new();
    let start = Instant::now();
    let mut last = Instant::now();
    let mut rss_at_warmup = 0;
    let mut samples = Vec::new();
    for i in 0..n {
        let user = &users[(i % 1000) as usize];
        let inbound = user
            .send_text(&bot, &format!("soak message {i} with some text in it"))
            .map_err(io::Error::other)?;
        let reply = json!({
            "msg": {
                "from_user_id": "", "to_user_id": user.id(), "client_id": format!("soak-{i}"),
                "message_type": 2, "message_state": 2,
                "item_list": [{"type": 1, "text_item": {"text": format!("echo: soak message {i}")}}],
                "context_token": inbound.context_token,
            },
            "base_info": base,
        });
        let answer = conn.post("sendmessage", &reply).await?;
        if !answer["message_id"].is_u64() {
            return Err(io::Error::other(format!(
                "message {i} not delivered: {answer}"
            )));
        }
        if i % 100 == 99 {
            let r = conn
                .post(
                    "getupdates",
                    &json!({"get_updates_buf": cursor, "base_info": base}),
                )
                .await?;
            cursor = r["get_updates_buf"].as_str().unwrap_or_default().to_owned();
        }
        if (i + 1) % 100_000 == 0 || i + 1 == n {
            let rss = rss_kib() / 1024;
            let rate = 100_000.0 / last.elapsed().as_secs_f64();
            last = Instant::now();
            println!("{}, {rss}, {rate:.0}", i + 1);
            samples.push(rss);
            if i + 1 == 300_000.min(n) {
                rss_at_warmup = rss;
            }
        }
    }
    let end = rss_kib() / 1024;
    println!(
        "done: {n} messages in {:.1} s; RSS after warm-up (300k) {rss_at_warmup} MiB, at the end {end} MiB, max {} MiB",
        start.elapsed().as_secs_f64(),
        samples.iter().max().copied().unwrap_or(0)
    );
    for s in sim.retention_stats() {
        println!(
            "  {:<15} kept {:>7} ({:>4} MiB), dropped {:>8}",
            s.name,
            s.len,
            s.bytes >> 20,
            s.evicted
        );
    }
    sim.shutdown().await;
    Ok(())
}
