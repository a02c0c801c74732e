//! Inbound that never jams and never lies (issue 14), through the client's public API against a
//! raw HTTP server that serves exact bytes: poisoned batches, unreadable bodies, redelivered
//! copies, media that contradicts its declaration.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ilink_client::cdn::CdnErrorKind;
use ilink_client::proto::{CdnMedia, MessageErrorKind, MessageItem};
use ilink_client::{
    Account, Client, Credentials, ErrorKind, MemoryStore, PollErrorKind, Secret, Update,
};
use ilink_reliability::raw_server::{RawReply, RawRequest, RawServer};
use serde_json::{Value, json};

const USER: &str = "poison-user@im.wechat";

fn good(id: u64, text: &str) -> String {
    json!({
        "seq": id, "message_id": 7_461_000_000_000_000_000u64 + id, "from_user_id": USER,
        "client_id": format!("cid-{id}"), "context_token": "CTX",
        "message_type": 1, "message_state": 2,
        "item_list": [{"type": 1, "text_item": {"text": text}}],
    })
    .to_string()
}

fn raw(status_body: Vec<u8>) -> RawReply {
    RawReply::Full {
        status: 200,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: status_body,
    }
}

/// A server whose n-th getupdates answer is `updates(n)`; records the cursor of every poll.
struct Script {
    server: RawServer,
    cursors: Arc<Mutex<Vec<String>>>,
}

async fn script(updates: impl Fn(usize) -> RawReply + Send + Sync + 'static) -> Script {
    let polls = Arc::new(AtomicUsize::new(0));
    let cursors: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = cursors.clone();
    let server = RawServer::start(move |req: &RawRequest| {
        if req.is("/getupdates") {
            let body: Value = serde_json::from_slice(&req.body).unwrap_or_default();
            seen.lock().unwrap().push(
                body["get_updates_buf"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
            updates(polls.fetch_add(1, Ordering::SeqCst))
        } else {
            RawReply::json(&json!({"ret": 0}))
        }
    })
    .await
    .unwrap();
    Script { server, cursors }
}

fn empty() -> RawReply {
    RawReply::json(&json!({"ret": 0, "msgs": [], "longpolling_timeout_ms": 300}))
}

async fn account_for(server: &RawServer) -> (Client, Account) {
    let base = server.base_url();
    let mut config = ilink_reliability::fast_config_for(&base, &format!("{base}c2c"));
    config.typing = false;
    let client = Client::new(config, MemoryStore::new()).unwrap();
    let account = client
        .add_account(Credentials {
            account_id: "bot@im.bot".into(),
            token: Secret::new("POISON-BOT-TOKEN".to_owned()),
            base_url: Some(base),
            user_id: None,
            saved_at_ms: 1,
        })
        .await
        .unwrap();
    (client, account)
}

/// Updates until `n` messages came (bounded wait): (texts, undecodable kinds, poll failures).
async fn collect(
    account: &Account,
    n: usize,
) -> (Vec<String>, Vec<MessageErrorKind>, Vec<PollErrorKind>) {
    let mut updates = account.updates().await.unwrap();
    let (mut texts, mut bad, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    let r = tokio::time::timeout(Duration::from_secs(20), async {
        while texts.len() < n {
            match updates.next().await {
                Some(Update::Message(m)) => texts.push(m.text().unwrap_or("").to_owned()),
                Some(Update::Undecodable(u)) => bad.push(u.kind()),
                Some(Update::PollFailed { error, .. }) => failed.push(error.kind()),
                Some(_) => {}
                None => break,
            }
        }
    })
    .await;
    assert!(
        r.is_ok(),
        "stream stalled after {texts:?}, undecodable {bad:?}, failures {failed:?}"
    );
    account.shutdown();
    (texts, bad, failed)
}

/// Each quoted input of the issue: one odd value and one good message in a batch. The good
/// message arrives, the odd message (if it is one) is one undecodable update, and the next poll
/// carries the batch's cursor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poisoned_batches_deliver_the_good_message_and_advance() {
    let cases: Vec<(&str, Vec<u8>, Option<MessageErrorKind>)> = vec![
        (
            "message_id 1e400",
            format!(r#"{{"ret":0,"msgs":[{{"seq":1,"message_id":1e400,"from_user_id":"{USER}"}},{}],"get_updates_buf":"C1"}}"#, good(2, "good")).into_bytes(),
            Some(MessageErrorKind::NumberOutOfRange),
        ),
        (
            "invalid UTF-8",
            {
                let mut b = br#"{"ret":0,"msgs":[{"seq":1,"item_list":[{"type":1,"text_item":{"text":"caf"#.to_vec();
                b.push(0xe9);
                b.extend_from_slice(format!(r#""}}}}]}},{}],"get_updates_buf":"C1"}}"#, good(2, "good")).as_bytes());
                b
            },
            Some(MessageErrorKind::InvalidUtf8),
        ),
        (
            "ret \"0\"",
            format!(r#"{{"ret":"0","msgs":[{}],"get_updates_buf":"C1"}}"#, good(2, "good")).into_bytes(),
            None,
        ),
        (
            "ret 0.0",
            format!(r#"{{"ret":0.0,"msgs":[{}],"get_updates_buf":"C1"}}"#, good(2, "good")).into_bytes(),
            None,
        ),
        (
            "longpolling_timeout_ms 3.5",
            format!(r#"{{"ret":0,"msgs":[{}],"get_updates_buf":"C1","longpolling_timeout_ms":3.5}}"#, good(2, "good")).into_bytes(),
            None,
        ),
    ];
    for (name, body, bad_kind) in cases {
        let s = script(move |n| if n == 0 { raw(body.clone()) } else { empty() }).await;
        let (_client, account) = account_for(&s.server).await;
        let mut updates = account.updates().await.unwrap();
        let seen: Arc<Mutex<(Vec<String>, Vec<MessageErrorKind>)>> = Arc::default();
        let sink = seen.clone();
        let reader = tokio::spawn(async move {
            while let Some(u) = updates.next().await {
                match u {
                    Update::Message(m) => sink
                        .lock()
                        .unwrap()
                        .0
                        .push(m.text().unwrap_or("").to_owned()),
                    Update::Undecodable(u) => sink.lock().unwrap().1.push(u.kind()),
                    Update::PollFailed { error, .. } => panic!("{error:?}"),
                    _ => {}
                }
            }
        });
        // Wait until the server saw a poll with the batch's cursor.
        let mut advanced = false;
        for _ in 0..1000 {
            if s.cursors.lock().unwrap().iter().any(|c| c == "C1") {
                advanced = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        account.shutdown();
        reader.await.unwrap();
        let (texts, bad) = seen.lock().unwrap().clone();
        assert!(
            advanced,
            "{name}: the cursor never advanced; got {texts:?} {bad:?}"
        );
        assert_eq!(texts, vec!["good"], "{name}");
        assert_eq!(bad, bad_kind.into_iter().collect::<Vec<_>>(), "{name}");
    }
}

/// A body with no readable cursor is retried with backoff and reported on every attempt as a
/// typed failure, never a silent loop; when the server recovers, messages flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_body_is_reported_and_retried() {
    let s = script(|n| match n {
        0..=3 => raw(b"<html>502 Bad Gateway</html>".to_vec()),
        4 => raw(br#"{"msgs":[],"get_updates_buf":{"not":"a cursor"}}"#.to_vec()),
        5 => {
            raw(format!(r#"{{"msgs":[{}],"get_updates_buf":"C9"}}"#, good(9, "back")).into_bytes())
        }
        _ => empty(),
    })
    .await;
    let (_client, account) = account_for(&s.server).await;
    let mut updates = account.updates().await.unwrap();
    let mut failures = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match updates.next().await {
                Some(Update::PollFailed {
                    error,
                    consecutive,
                    retry_in,
                }) => {
                    assert!(error.is_unreadable_body(), "{error:?}");
                    assert!(error.to_string().contains("could not be read"), "{error}");
                    assert!(std::error::Error::source(&error).is_some());
                    failures.push((consecutive, retry_in));
                }
                Some(Update::Message(m)) => return m.text().map(str::to_owned),
                other => panic!("{other:?}"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(r.as_deref(), Some("back"));
    let fast = ilink_client::Delays::fast();
    assert_eq!(
        failures,
        vec![
            (1, fast.retry),
            (2, fast.retry),
            (3, fast.backoff),
            (1, fast.retry),
            (2, fast.retry),
        ]
    );
}

/// Issue 14, case 2: the same text redelivered 3 s later with only a new `message_id`, then
/// "END". The handler sees the text once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_with_a_new_message_id_is_delivered_once() {
    let msg = |id: u64| {
        json!({
            "seq": 41, "message_id": id, "client_id": "srv-cid-41", "from_user_id": USER,
            "context_token": "ctx-b1", "message_type": 1, "message_state": 2,
            "create_time_ms": 1_780_000_000_000u64,
            "item_list": [{"type": 1, "text_item": {"text": "hello"}}],
        })
    };
    let s = script(move |n| match n {
        0 => RawReply::json(
            &json!({"ret": 0, "msgs": [msg(7_461_000_000_000_000_041)], "get_updates_buf": "B1"}),
        ),
        1 => RawReply::json(
            &json!({"ret": 0, "msgs": [msg(7_461_000_000_000_000_042)], "get_updates_buf": "B2"}),
        ),
        2 => raw(format!(
            r#"{{"ret":0,"msgs":[{}],"get_updates_buf":"B3"}}"#,
            good(50, "END")
        )
        .into_bytes()),
        _ => empty(),
    })
    .await;
    let (_client, account) = account_for(&s.server).await;
    let (texts, _, _) = collect(&account, 2).await;
    assert_eq!(texts, vec!["hello", "END"]);
}

/// A real repeat by the user (the same text later, new ids) still arrives; a copy without any
/// id inside the content window does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_repeat_arrives_and_an_id_less_copy_does_not() {
    let idless = json!({"from_user_id": USER, "context_token": "C", "message_type": 1,
        "item_list": [{"type": 1, "text_item": {"text": "no ids"}, "msg_id": "v1:1"}]});
    let mut idless_copy = idless.clone();
    idless_copy["item_list"][0]["msg_id"] = json!("v1:2");
    idless_copy["create_time_ms"] = json!(5);
    let s = script(move |n| match n {
        0 => {
            raw(format!(r#"{{"msgs":[{}],"get_updates_buf":"A"}}"#, good(1, "again")).into_bytes())
        }
        1 => {
            raw(format!(r#"{{"msgs":[{}],"get_updates_buf":"B"}}"#, good(2, "again")).into_bytes())
        }
        2 => RawReply::json(&json!({"msgs": [idless], "get_updates_buf": "C"})),
        3 => RawReply::json(&json!({"msgs": [idless_copy], "get_updates_buf": "D"})),
        4 => raw(format!(r#"{{"msgs":[{}],"get_updates_buf":"E"}}"#, good(3, "END")).into_bytes()),
        _ => empty(),
    })
    .await;
    let (_client, account) = account_for(&s.server).await;
    let (texts, _, _) = collect(&account, 4).await;
    assert_eq!(texts, vec!["again", "again", "no ids", "END"]);
}

/// Issue 14, case 3, through `Account::download`: a FILE item declaring `len` "9000" and its
/// real MD5, served encrypted with another key whose padding passes under the message's key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_that_contradicts_its_declaration_is_refused() {
    use ilink_crypto::{MediaKey, decrypt, encrypt, md5_hex};
    let key = MediaKey::from_bytes([7u8; 16]);
    let plain: Vec<u8> = (0..9000u32).map(|i| (i * 7 % 251) as u8).collect();
    let served = (0u32..)
        .map(|i| {
            let mut k = [0x5au8; 16];
            k[..4].copy_from_slice(&i.to_le_bytes());
            encrypt(&MediaKey::from_bytes(k), &plain)
        })
        .find(|ct| decrypt(&key, ct).is_ok())
        .unwrap();
    let server = RawServer::start(move |req: &RawRequest| {
        if req.is("/download") {
            raw(served.clone())
        } else {
            RawReply::json(&json!({"ret": 0}))
        }
    })
    .await
    .unwrap();
    let (_client, account) = account_for(&server).await;
    let media = CdnMedia {
        encrypt_query_param: Some("P".into()),
        aes_key: Some(Secret::new(key.to_base64_of_hex())),
        ..CdnMedia::default()
    };
    let mut item = MessageItem::file(media, "report.pdf", 9000);
    if let Some(f) = item.file_item.as_mut() {
        f.md5 = Some(md5_hex(&plain));
    }
    let e = account.download(&item).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Media);
    let cdn = std::error::Error::source(&e)
        .and_then(|s| s.downcast_ref::<ilink_client::cdn::CdnError>())
        .expect("a CDN error underneath");
    assert_eq!(cdn.kind(), CdnErrorKind::Integrity);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.pdf");
    account.download_to_file(&item, &out).await.unwrap_err();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
