//! A hostile server: huge, endless and dripping bodies, deep JSON, redirects to other hosts,
//! media URLs pointing at internal addresses. The client must stay within its memory and time
//! bounds and refuse what it must. Everything listens on 127.0.0.x; the internal addresses
//! (169.254.169.254, 10.x, ...) are only ever given to the URL check, which must refuse them
//! before any connection.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ilink_client::cdn::CdnErrorKind;
use ilink_client::proto::{CdnMedia, MessageItem};
use ilink_client::{Account, Client, Credentials, MemoryStore, Secret, SendErrorKind, Update};
use ilink_reliability::raw_server::{Canary, RawReply, RawRequest, RawServer};
use serde_json::{Value, json};

const USER: &str = "hostile-user@im.wechat";
const CAP: u64 = 1024 * 1024;

fn batch(texts: &[&str], cursor: &str) -> Value {
    let msgs: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({
                "message_id": 9_000_000 + i as u64 + cursor.len() as u64 * 100,
                "from_user_id": USER,
                "to_user_id": "bot@im.bot",
                "message_type": 1,
                "message_state": 2,
                "context_token": "CTX-HOSTILE",
                "item_list": [{"type": 1, "text_item": {"text": t}}],
            })
        })
        .collect();
    json!({"ret": 0, "msgs": msgs, "get_updates_buf": cursor, "longpolling_timeout_ms": 300})
}

fn empty_batch() -> Value {
    json!({"ret": 0, "msgs": [], "longpolling_timeout_ms": 300})
}

/// Answers the other endpoints like a well-behaved server; `getupdates` by `updates(n)`
/// for the n-th poll.
fn server_with(
    updates: impl Fn(usize) -> RawReply + Send + Sync + 'static,
    send: impl Fn(usize) -> RawReply + Send + Sync + 'static,
) -> impl Fn(&RawRequest) -> RawReply + Send + Sync + 'static {
    let polls = Arc::new(AtomicUsize::new(0));
    let sends = Arc::new(AtomicUsize::new(0));
    move |req: &RawRequest| {
        if req.is("/getupdates") {
            updates(polls.fetch_add(1, Ordering::SeqCst))
        } else if req.is("/sendmessage") {
            send(sends.fetch_add(1, Ordering::SeqCst))
        } else if req.is("/download") {
            // CDN downloads get the same answer as sends (a redirect in that test).
            send(usize::MAX)
        } else {
            RawReply::json(&json!({"ret": 0}))
        }
    }
}

async fn account_for(server: &RawServer) -> (Client, Account) {
    let base = server.base_url();
    let mut config = ilink_reliability::fast_config_for(&base, &format!("{base}c2c"));
    config.max_response_body = CAP;
    config.typing = false;
    let client = Client::new(config, MemoryStore::new()).unwrap();
    let account = client
        .add_account(Credentials {
            account_id: "bot@im.bot".into(),
            token: Secret::new("HOSTILE-BOT-TOKEN".to_owned()),
            base_url: Some(base),
            user_id: None,
            saved_at_ms: 1,
        })
        .await
        .unwrap();
    (client, account)
}

/// The texts of the next `n` messages of the stream (bounded wait).
async fn next_texts(account: &Account, n: usize) -> Vec<String> {
    let mut updates = account.updates().await.unwrap();
    let mut out = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(20), async {
        while out.len() < n {
            match updates.next().await {
                Some(Update::Message(m)) => out.push(m.text().unwrap_or("").to_owned()),
                Some(_) => {}
                None => break,
            }
        }
    })
    .await;
    assert!(r.is_ok(), "stream stalled after {out:?}");
    account.shutdown();
    out
}

async fn eventually(what: &str, f: impl Fn() -> bool) {
    for _ in 0..400 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("never: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_bodies_stop_at_the_cap() {
    let rss_before = ilink_reliability::rss_kib();
    let server = RawServer::start(server_with(
        |n| match n {
            0 => RawReply::Huge {
                declared_len: Some(1 << 30),
            },
            1 => RawReply::Huge { declared_len: None },
            2 => RawReply::json(&batch(&["after-huge"], "c1")),
            _ => RawReply::json(&empty_batch()),
        },
        |_| RawReply::json(&json!({"ret": 0, "message_id": "1"})),
    ))
    .await
    .unwrap();
    let (_client, account) = account_for(&server).await;
    assert_eq!(next_texts(&account, 1).await, vec!["after-huge"]);
    let s = server.stats();
    eventually("both huge bodies abandoned", || {
        s.abandoned_by_client.load(Ordering::SeqCst) >= 2
    })
    .await;
    let most = s.max_streamed_one.load(Ordering::SeqCst);
    // 1 GiB offered each time; the client read its 1 MiB cap (plus what socket buffers hold).
    assert!(
        most < 64 * CAP,
        "the server pushed {most} bytes into one response"
    );
    if let (Some(a), Some(b)) = (rss_before, ilink_reliability::rss_kib()) {
        assert!(b.saturating_sub(a) < 128 * 1024, "RSS grew {} KiB", b - a);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_json_body_is_refused_without_a_crash() {
    let depth = 100_000;
    let deep_body = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let server = RawServer::start(server_with(
        move |n| match n {
            0 | 1 => RawReply::Full {
                status: 200,
                headers: vec![],
                body: deep_body.clone().into_bytes(),
            },
            2 => RawReply::json(&batch(&["after-deep"], "c1")),
            _ => RawReply::json(&empty_batch()),
        },
        |_| RawReply::json(&json!({"ret": 0})),
    ))
    .await
    .unwrap();
    let (_client, account) = account_for(&server).await;
    assert_eq!(next_texts(&account, 1).await, vec!["after-deep"]);
}

/// A batch whose first message quotes a quote of a quote... 20 deep, then a normal message.
/// DESIGN.md §5: "a long-poll batch survives one bad message: each message decodes on its own".
/// Regression test of finding R3: the body used to be refused whole (its depth passed the
/// decoder's cap of 32), the cursor could not move, and the account was stuck for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_deep_message_does_not_block_the_batch() {
    let deep_item = {
        let mut s = String::from(r#"{"type":1,"text_item":{"text":"bottom"}}"#);
        for _ in 0..20 {
            s = format!(
                r#"{{"type":1,"text_item":{{"text":"q"}},"ref_msg":{{"message_item":{s}}}}}"#
            );
        }
        s
    };
    let good = batch(&["after-deep"], "c2");
    let mixed = format!(
        r#"{{"ret":0,"get_updates_buf":"c1","msgs":[{{"message_id":1,"from_user_id":"{USER}","context_token":"C","item_list":[{deep_item}]}},{}]}}"#,
        good["msgs"][0]
    );
    // Like the real server, the batch is served again until the client's cursor moves.
    let server = RawServer::start(move |req: &RawRequest| {
        if !req.is("/getupdates") {
            return RawReply::json(&json!({"ret": 0}));
        }
        let cursor = serde_json::from_slice::<Value>(&req.body)
            .ok()
            .and_then(|v| v["get_updates_buf"].as_str().map(str::to_owned))
            .unwrap_or_default();
        if cursor.is_empty() {
            RawReply::Full {
                status: 200,
                headers: vec![],
                body: mixed.clone().into_bytes(),
            }
        } else {
            RawReply::json(&empty_batch())
        }
    })
    .await
    .unwrap();
    let (_client, account) = account_for(&server).await;
    let mut updates = account.updates().await.unwrap();
    let mut seen = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(u) = updates.next().await {
            match u {
                Update::Message(m) => {
                    seen.push(m.text().unwrap_or("").to_owned());
                    break;
                }
                Update::Undecodable(_) => seen.push("undecodable".to_owned()),
                _ => {}
            }
        }
    })
    .await;
    account.shutdown();
    assert_eq!(seen, vec!["undecodable", "after-deep"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_long_poll_and_slow_drip_are_cut_by_the_deadline() {
    let dripped = batch(&["dripped"], "c1").to_string().into_bytes();
    let server = RawServer::start(server_with(
        move |n| match n {
            0 => RawReply::Endless {
                every: Duration::from_millis(50),
            },
            1 => RawReply::Drip {
                body: dripped.clone(),
                every: Duration::from_millis(100),
            },
            2 => RawReply::json(&batch(&["after-endless"], "c2")),
            _ => RawReply::json(&empty_batch()),
        },
        |n| match n {
            0 => RawReply::Drip {
                body: br#"{"ret":0,"message_id":"77"}"#.to_vec(),
                every: Duration::from_millis(200),
            },
            _ => RawReply::json(&json!({"ret": 0, "message_id": "78"})),
        },
    ))
    .await
    .unwrap();
    let (_client, account) = account_for(&server).await;
    // The poll deadline (500 ms) ends both; the dripped batch never completes, so its message
    // is not seen; the next poll's is.
    assert_eq!(next_texts(&account, 1).await, vec!["after-endless"]);
    let s = server.stats();
    eventually("endless and drip abandoned", || {
        s.abandoned_by_client.load(Ordering::SeqCst) >= 2
    })
    .await;
    // A dripping sendmessage answer: the send deadline (2 s) ends it with a typed outcome:
    // the message stays in the durable queue (it may or may not have been delivered; a retry
    // reuses its client_id).
    let fresh = {
        let (_c, a) = account_for(&server).await;
        a.set_context_token(USER, Secret::new("CTX".to_owned()))
            .await
            .unwrap();
        a
    };
    let out = tokio::time::timeout(Duration::from_secs(10), fresh.send_text(USER, "hi"))
        .await
        .expect("the send did not end")
        .unwrap();
    assert!(
        out.iter().all(ilink_client::SendOutcome::is_queued),
        "{out:?}"
    );
    let ok = fresh.send_text(USER, "again").await.unwrap();
    assert_eq!(ok.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_to_other_hosts_are_not_followed() {
    let canary = Canary::start().await.unwrap();
    let target = format!("http://{}/ilink/bot/getupdates", canary.host_port());
    let t2 = target.clone();
    let server = RawServer::start(server_with(
        move |n| match n {
            0 => RawReply::redirect(302, &target),
            1 => RawReply::redirect(307, &target),
            2 => RawReply::redirect(308, &target),
            3 => RawReply::json(&batch(&["after-redirects"], "c1")),
            _ => RawReply::json(&empty_batch()),
        },
        move |_| RawReply::redirect(307, &t2),
    ))
    .await
    .unwrap();
    let (_client, account) = account_for(&server).await;
    assert_eq!(next_texts(&account, 1).await, vec!["after-redirects"]);
    let (_c, a) = account_for(&server).await;
    a.set_context_token(USER, Secret::new("CTX".to_owned()))
        .await
        .unwrap();
    // The redirect is not followed: the send does not go through and stays queued.
    let out = a.send_text(USER, "hi").await.unwrap();
    assert!(
        out.iter().all(ilink_client::SendOutcome::is_queued),
        "{out:?}"
    );
    // A CDN download answered with a redirect fails too.
    let media = CdnMedia {
        encrypt_query_param: Some("P".into()),
        ..CdnMedia::default()
    };
    assert!(a.cdn().download(&media, None).await.is_err());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(canary.connections(), 0, "a redirect was followed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_url_to_internal_addresses_is_refused_before_connecting() {
    let canary = Canary::start().await.unwrap();
    let server = RawServer::start(server_with(
        |_| RawReply::json(&empty_batch()),
        |_| RawReply::json(&json!({"ret": 0})),
    ))
    .await
    .unwrap();
    let (_client, account) = account_for(&server).await;
    let cdn = account.cdn();
    let internal = [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/".to_owned(),
        "http://10.0.0.1/c2c/download?x=1".to_owned(),
        "http://10.255.255.254:8080/".to_owned(),
        "http://192.168.1.1/".to_owned(),
        "http://172.16.0.1/".to_owned(),
        "http://[fd00::1]/".to_owned(),
        "http://[::ffff:169.254.169.254]/".to_owned(),
        "http://2852039166/".to_owned(), // 169.254.169.254 as one decimal number
        "http://0xA9FEA9FE/".to_owned(),
        "http://metadata.google.internal/".to_owned(),
        "http://novac2c.cdn.weixin.qq.com@169.254.169.254/".to_owned(),
        "http://169.254.169.254#.weixin.qq.com/".to_owned(),
        "file:///etc/passwd".to_owned(),
        format!("http://{}/canary", canary.host_port()),
    ];
    for url in &internal {
        // Without a fallback: refused, no URL at all.
        let media = CdnMedia {
            full_url: Some(url.clone()),
            ..CdnMedia::default()
        };
        let err = cdn.download_url(&media).unwrap_err();
        assert!(
            matches!(
                err.kind(),
                CdnErrorKind::HostNotAllowed | CdnErrorKind::InvalidUrl
            ),
            "{url}: {err:?}"
        );
        // With encrypt_query_param: the URL built on the configured CDN base is used instead.
        let media = CdnMedia {
            full_url: Some(url.clone()),
            encrypt_query_param: Some("EQP".into()),
            ..CdnMedia::default()
        };
        let chosen = cdn.download_url(&media).unwrap();
        assert!(
            chosen.starts_with(&format!("{}c2c/download?", server.base_url())),
            "{url} -> {chosen}"
        );
    }
    // End to end, only towards the loopback canary: an inbound image whose full_url points
    // elsewhere is refused and nothing connects.
    let item: MessageItem = serde_json::from_value(json!({
        "type": 2,
        "image_item": {"media": {"full_url": format!("http://{}/x", canary.host_port()),
                                 "aes_key": "MDEyMzQ1Njc4OWFiY2RlZg=="}}
    }))
    .unwrap();
    let err = account.download(&item).await.unwrap_err();
    assert_eq!(err.kind(), ilink_client::ErrorKind::Media, "{err}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(canary.connections(), 0);
}

/// `upload_full_url` from getuploadurl must obey the CDN host allowlist like a download's
/// `full_url`, or a hostile or compromised API server could make the bot POST to any host
/// (here a loopback canary standing in for an internal address). Regression test of R4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_full_url_to_another_host_is_refused_before_connecting() {
    let canary = Canary::start().await.unwrap();
    let target = format!(
        "http://{}/upload?encrypted_query_param=x&taskid=1",
        canary.host_port()
    );
    let server = RawServer::start(move |req: &RawRequest| {
        if req.is("/getuploadurl") {
            RawReply::json(&json!({"upload_full_url": target}))
        } else if req.is("/getupdates") {
            RawReply::json(&empty_batch())
        } else {
            RawReply::json(&json!({"ret": 0, "message_id": "5"}))
        }
    })
    .await
    .unwrap();
    let (_client, account) = account_for(&server).await;
    account
        .set_context_token(USER, Secret::new("CTX".to_owned()))
        .await
        .unwrap();
    let png = b"\x89PNG\r\n\x1a\n0000000000000000".to_vec();
    let err = tokio::time::timeout(Duration::from_secs(20), account.send_image(USER, png))
        .await
        .expect("the upload did not end")
        .unwrap_err();
    assert_eq!(err.kind(), SendErrorKind::Upload, "{err}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        canary.connections(),
        0,
        "the bot uploaded to a host the API server chose"
    );
}

/// The server's `longpolling_timeout_ms` becomes the client's poll deadline (plus a margin)
/// with no upper bound: one answer advertising an hour, then a poll the server (or a
/// middlebox) holds without answering, and the bot hears nothing for an hour.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advertised_long_poll_timeout_is_capped() {
    let server = RawServer::start(server_with(
        |n| match n {
            0 => {
                RawReply::json(&json!({"ret": 0, "msgs": [], "longpolling_timeout_ms": 3_600_000}))
            }
            1 => RawReply::Hang,
            2 => RawReply::json(&batch(&["after-hang"], "c1")),
            _ => RawReply::json(&empty_batch()),
        },
        |_| RawReply::json(&json!({"ret": 0})),
    ))
    .await
    .unwrap();
    let (_client, account) = account_for(&server).await;
    // The configured long-poll is 300 ms; 20 s is generous for any sane cap of it.
    assert_eq!(next_texts(&account, 1).await, vec!["after-hang"]);
}

/// A CDN that streams an endless body for a media download: reading stops at the media cap
/// (`max_media_bytes`) with a typed error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_media_downloads_stop_at_the_media_cap() {
    let server = RawServer::start(|req: &RawRequest| {
        if req.is("/download") {
            RawReply::Huge { declared_len: None }
        } else if req.is("/getupdates") {
            RawReply::json(&empty_batch())
        } else {
            RawReply::json(&json!({"ret": 0}))
        }
    })
    .await
    .unwrap();
    let base = server.base_url();
    let mut config = ilink_reliability::fast_config_for(&base, &format!("{base}c2c"));
    config.max_media_bytes = CAP;
    let client = Client::new(config, MemoryStore::new()).unwrap();
    let account = client
        .add_account(Credentials {
            account_id: "bot@im.bot".into(),
            token: Secret::new("HOSTILE-BOT-TOKEN".to_owned()),
            base_url: Some(base),
            user_id: None,
            saved_at_ms: 1,
        })
        .await
        .unwrap();
    let item: MessageItem = serde_json::from_value(json!({
        "type": 4,
        "file_item": {"file_name": "x.bin", "len": "1",
                      "media": {"encrypt_query_param": "EQP",
                                "aes_key": "MDEyMzQ1Njc4OWFiY2RlZg=="}}
    }))
    .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(20), account.download(&item))
        .await
        .expect("the download did not end")
        .unwrap_err();
    assert_eq!(err.kind(), ilink_client::ErrorKind::Media, "{err}");
    let s = server.stats();
    eventually("the endless download abandoned", || {
        s.abandoned_by_client.load(Ordering::SeqCst) >= 1
    })
    .await;
    let most = s.max_streamed_one.load(Ordering::SeqCst);
    assert!(most < 64 * CAP, "the CDN pushed {most} bytes");
}

/// Answers that are not HTTP, or break it: each poll fails and is retried; the bot goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_responses_are_survived() {
    let huge_header = format!(
        "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 2\r\n\r\n{{}}",
        "a".repeat(512 * 1024)
    );
    let garbage: Vec<Vec<u8>> = vec![
        b"NOT HTTP AT ALL\r\n\r\n".to_vec(),
        b"HTTP/1.1 999 Nope\r\nContent-Length: 2\r\n\r\n{}".to_vec(),
        (0..4096u32).map(|i| (i * 7 + 3) as u8).collect(),
        b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n{}".to_vec(),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n".to_vec(),
        b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n\xff\xfe\x00{\"ret\":0".to_vec(),
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 9\r\n\r\n{}".to_vec(),
        huge_header.into_bytes(),
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnull".to_vec(),
        b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n{\"msgs\":42}".to_vec(),
    ];
    let n_garbage = garbage.len();
    let server = RawServer::start(server_with(
        move |n| match garbage.get(n) {
            Some(g) => RawReply::Raw(g.clone()),
            None if n == n_garbage => RawReply::json(&batch(&["after-garbage"], "c1")),
            None => RawReply::json(&empty_batch()),
        },
        |_| RawReply::json(&json!({"ret": 0})),
    ))
    .await
    .unwrap();
    let (_client, account) = account_for(&server).await;
    assert_eq!(next_texts(&account, 1).await, vec!["after-garbage"]);
    assert!(server.stats().requests.load(Ordering::SeqCst) > n_garbage);
}
