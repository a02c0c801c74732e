//! Receiving and replying, end to end against ilink-sim over loopback HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use common::*;
use ilink_client::{FileStore, MessageContext, SendErrorKind, SendOutcome, StateStore, Update};
use ilink_sim::{Endpoint, Fault, TypingState};

#[tokio::test]
async fn echo_bot_replies_with_every_hidden_field_and_official_headers() {
    let (sim, _client, account, bot) = setup().await;
    let alice = sim.user("alice@im.wechat");
    alice.send_text(&bot, "hi").unwrap();

    let acct = account.clone();
    let run = tokio::spawn(async move {
        acct.run(|ctx: MessageContext| async move {
            let text = ctx.text().unwrap_or_default().to_owned();
            ctx.reply(&format!("echo: {text}")).await.map(|_| ())
        })
        .await
    });
    let delivered = sim
        .wait_for_delivered("alice@im.wechat", 1, WAIT)
        .await
        .unwrap();
    assert_eq!(delivered[0].text(), Some("echo: hi"));
    let d = &delivered[0];
    assert!(
        d.client_id.starts_with("openclaw-weixin:"),
        "{}",
        d.client_id
    );
    assert!(d.run_id.as_deref().is_some_and(|r| r.len() == 36));
    assert!(sim.dropped().is_empty(), "{:?}", sim.dropped());

    // Headers and bodies as the official client sends them.
    let reqs = sim.requests();
    let send = reqs
        .iter()
        .find(|r| r.path.ends_with("ilink/bot/sendmessage"))
        .unwrap();
    assert!(send.problems.is_empty(), "{:?}", send.problems);
    assert_eq!(send.header("authorizationtype"), Some("ilink_bot_token"));
    assert_eq!(send.header("ilink-app-id"), Some("bot"));
    assert_eq!(send.header("ilink-app-clientversion"), Some("132105"));
    assert_eq!(
        send.header("authorization"),
        Some(format!("Bearer {}", bot.token).as_str())
    );
    let uin = send.header("x-wechat-uin").unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(uin)
        .unwrap();
    assert!(String::from_utf8(decoded).unwrap().parse::<u32>().is_ok());
    let raw = send.body.clone().unwrap();
    let body = send.json().unwrap();
    assert_eq!(
        body["base_info"],
        serde_json::json!({"channel_version":"2.4.9","bot_agent":"OpenClaw"})
    );
    // Keys in the official client's order.
    let order = [
        "\"from_user_id\"",
        "\"to_user_id\"",
        "\"client_id\"",
        "\"message_type\"",
        "\"message_state\"",
        "\"item_list\"",
        "\"context_token\"",
        "\"run_id\"",
        "\"base_info\"",
    ];
    let pos: Vec<usize> = order.iter().map(|k| raw.find(k).unwrap()).collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{raw}");
    assert_eq!(body["msg"].as_object().unwrap().len(), 8);
    assert_eq!(body["msg"]["from_user_id"], "");
    assert_eq!(body["msg"]["message_type"], 2);
    assert_eq!(body["msg"]["message_state"], 2);
    for r in &reqs {
        assert!(r.problems.is_empty(), "{} {:?}", r.path, r.problems);
    }
    // A fresh UIN per request.
    let uins: std::collections::HashSet<_> = reqs
        .iter()
        .filter_map(|r| r.header("x-wechat-uin"))
        .collect();
    assert!(uins.len() > 1);

    // notifystart before polling; graceful shutdown sends notifystop and ends run().
    account.shutdown();
    run.await.unwrap().unwrap();
    let status = sim.bot(&bot.bot_id).unwrap();
    assert_eq!(status.notify_started, 1);
    assert_eq!(status.notify_stopped, 1);
    let first_notify = reqs
        .iter()
        .position(|r| r.path.ends_with("notifystart"))
        .unwrap();
    let first_poll = reqs
        .iter()
        .position(|r| r.path.ends_with("getupdates"))
        .unwrap();
    assert!(first_notify < first_poll);
}

#[tokio::test]
async fn typing_wraps_the_handler_in_the_official_order() {
    let (sim, _client, account, bot) = setup().await;
    sim.user("bob@im.wechat").send_text(&bot, "slow").unwrap();
    let acct = account.clone();
    let run = tokio::spawn(async move {
        acct.run(|ctx: MessageContext| async move {
            // Longer than two keepalive intervals (200 ms in Delays::fast()).
            tokio::time::sleep(Duration::from_millis(500)).await;
            ctx.reply("done").await.map(|_| ())
        })
        .await
    });
    sim.wait_for_delivered("bob@im.wechat", 1, WAIT)
        .await
        .unwrap();
    // The cancel follows the reply.
    for _ in 0..100 {
        if sim.typing_state("bob@im.wechat") == Some(TypingState::Cancelled) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        sim.typing_state("bob@im.wechat"),
        Some(TypingState::Cancelled)
    );
    let events = sim.typing_events();
    let typing = events
        .iter()
        .filter(|e| e.state == TypingState::Typing)
        .count();
    assert!(typing >= 2, "keepalive refreshes typing: {events:?}");
    assert!(events.iter().all(|e| e.ticket_valid));
    let paths: Vec<String> = sim
        .requests()
        .iter()
        .map(|r| r.path.rsplit('/').next().unwrap().to_owned())
        .filter(|p| matches!(p.as_str(), "getconfig" | "sendtyping" | "sendmessage"))
        .collect();
    assert_eq!(paths.first().map(String::as_str), Some("getconfig"));
    assert_eq!(paths.get(1).map(String::as_str), Some("sendtyping"));
    assert_eq!(paths.last().map(String::as_str), Some("sendtyping"));
    account.shutdown();
    run.await.unwrap().unwrap();
}

#[tokio::test]
async fn long_text_is_chunked_in_order_and_markdown_filtered() {
    let (sim, _client, account, bot) = setup().await;
    sim.user("carol@im.wechat")
        .send_text(&bot, "hello")
        .unwrap();
    let mut updates = account.updates().await.unwrap();
    let Some(Update::Message(m)) = updates.next().await else {
        panic!("expected a message")
    };
    assert_eq!(m.text(), Some("hello"));
    let para = "word ".repeat(600); // 3000 chars
    let text = format!("{para}\n\n{para}\n\n{para}\n\n*斜体* ![x](http://x/y.png)");
    let outcomes = account.send_text("carol@im.wechat", &text).await.unwrap();
    // 3000 characters do not fit the server's cap of about 2000: two messages per paragraph.
    assert_eq!(outcomes.len(), 6);
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, SendOutcome::Delivered { .. }))
    );
    let d = sim.delivered_to("carol@im.wechat");
    assert_eq!(d.len(), 6);
    // Nothing lost at the cuts, the blank lines between paragraphs included.
    let joined: String = d.iter().map(|x| x.text().unwrap()).collect();
    assert_eq!(joined, ilink_client::filter_markdown(&text));
    let last = d[5].text().unwrap();
    assert!(last.trim_end().ends_with("\n\n斜体"), "{last:?}");
    assert!(
        d.iter()
            .all(|x| x.text().unwrap().encode_utf16().count() <= 1800)
    );
    assert!(sim.dropped().is_empty(), "{:?}", sim.dropped());
    let ids: std::collections::HashSet<_> = d.iter().map(|x| x.client_id.clone()).collect();
    assert_eq!(ids.len(), 6, "a unique client_id per request");
    assert_eq!(
        outcomes[0].message_id().unwrap().as_u64(),
        Some(d[0].message_id)
    );
}

#[tokio::test]
async fn send_without_context_token_is_a_typed_error() {
    let (sim, _client, account, _bot) = setup().await;
    let err = account
        .send_text("nobody@im.wechat", "hi")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), SendErrorKind::NoContextToken);
    assert_eq!(count_requests(&sim, "sendmessage"), 0);
    let err = account
        .send_text("nobody@im.wechat", "   ")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), SendErrorKind::Invalid);
}

#[tokio::test]
async fn throttle_waits_in_the_queue_and_is_retried_with_the_same_client_id() {
    let sim = sim().await;
    let bot = sim.create_bot();
    let mut cfg = config(&sim);
    cfg.replies.throttle_backoff = Duration::from_millis(10);
    cfg.replies.throttle_retries = 2;
    let client = ilink_client::Client::new(cfg, ilink_client::MemoryStore::new()).unwrap();
    let account = client.add_account(creds(&sim, &bot)).await.unwrap();
    sim.user("dan@im.wechat").send_text(&bot, "x").unwrap();
    let mut updates = account.updates().await.unwrap();
    assert!(matches!(updates.next().await, Some(Update::Message(_))));
    // One -2: retried, delivered once.
    sim.inject_fault(Endpoint::SendMessage, Fault::Overloaded(None), 1);
    let ok = account.send_text("dan@im.wechat", "a").await.unwrap();
    assert!(matches!(&ok[..], [SendOutcome::Delivered { .. }]), "{ok:?}");
    assert_eq!(count_requests(&sim, "sendmessage"), 2);
    let bodies: Vec<String> = sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("sendmessage"))
        .map(|r| {
            let v: serde_json::Value = serde_json::from_str(r.body.as_deref().unwrap()).unwrap();
            v["msg"]["client_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(bodies[0], bodies[1], "the retry reuses the client_id");
    // A -2 that persists: the message stays queued and the budget is corrected to 0.
    sim.inject_fault(
        Endpoint::SendMessage,
        Fault::Overloaded(Some("prepare failed".into())),
        3,
    );
    let out = account.send_text("dan@im.wechat", "b").await.unwrap();
    assert!(
        matches!(&out[..], [SendOutcome::Queued { position: 0, .. }]),
        "{out:?}"
    );
    assert!(account.budget("dan@im.wechat").exhausted);
    assert_eq!(account.budget("dan@im.wechat").left, 0);
    // The user writes: the queue goes first.
    sim.user("dan@im.wechat").send_text(&bot, "y").unwrap();
    let Some(Update::Message(m)) = updates.next().await else {
        panic!("expected a message")
    };
    let report = account
        .begin_turn(&MessageContext::new(account.clone(), m))
        .await;
    assert_eq!(report.sent.len(), 1);
    let texts: Vec<_> = sim
        .delivered_to("dan@im.wechat")
        .iter()
        .map(|d| d.text().unwrap().to_owned())
        .collect();
    assert_eq!(texts, vec!["a", "b"]);
}

#[tokio::test]
async fn duplicates_are_invisible_to_the_handler() {
    let (sim, _client, account, bot) = setup().await;
    sim.inject_fault(Endpoint::GetUpdates, Fault::DuplicateMessage, 1);
    sim.inject_fault(Endpoint::GetUpdates, Fault::DuplicateBatch, 1);
    let eve = sim.user("eve@im.wechat");
    eve.send_text(&bot, "one").unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let acct = account.clone();
    let run = tokio::spawn(async move {
        acct.run(move |ctx: MessageContext| {
            let s = s.clone();
            async move {
                s.lock()
                    .unwrap()
                    .push(ctx.text().unwrap_or_default().to_owned());
                ctx.reply("ok").await.map(|_| ())
            }
        })
        .await
    });
    sim.wait_for_delivered("eve@im.wechat", 1, WAIT)
        .await
        .unwrap();
    eve.send_text(&bot, "two").unwrap();
    sim.wait_for_delivered("eve@im.wechat", 2, WAIT)
        .await
        .unwrap();
    // Let a few more polls pass (duplicate batches would show up here).
    tokio::time::sleep(Duration::from_millis(400)).await;
    account.shutdown();
    run.await.unwrap().unwrap();
    assert_eq!(*seen.lock().unwrap(), vec!["one", "two"]);
    assert!(
        sim.pending_faults().is_empty(),
        "{:?}",
        sim.pending_faults()
    );
}

#[tokio::test]
async fn at_least_once_across_a_crash_with_persisted_state() {
    let sim = sim().await;
    let bot = sim.create_bot();
    let dir = tempfile::tempdir().unwrap();
    let user = sim.user("fay@im.wechat");
    user.send_text(&bot, "m1").unwrap();
    user.send_text(&bot, "m2").unwrap();
    {
        let client = client_with_store(&sim, Arc::new(FileStore::new(dir.path())));
        let account = client.add_account(creds(&sim, &bot)).await.unwrap();
        let mut updates = account.updates().await.unwrap();
        let mut texts = Vec::new();
        while texts.len() < 2 {
            if let Some(Update::Message(m)) = updates.next().await {
                texts.push(m.text().unwrap().to_owned());
            }
        }
        assert_eq!(texts, ["m1", "m2"]);
        // "Crash" while handling m2: the stream is dropped without asking for more.
    }
    user.send_text(&bot, "m3").unwrap();
    let client = client_with_store(&sim, Arc::new(FileStore::new(dir.path())));
    let account = client.account(&bot.bot_id).await.unwrap();
    // The context token was persisted: a proactive send works right away.
    assert!(account.context_token("fay@im.wechat").is_some());
    let mut updates = account.updates().await.unwrap();
    let mut texts = Vec::new();
    while texts.len() < 2 {
        if let Some(Update::Message(m)) = updates.next().await {
            texts.push(m.text().unwrap().to_owned());
        }
    }
    // m1 was handled (tombstoned); m2 was not finished, so it comes again; then m3.
    assert_eq!(texts, ["m2", "m3"]);
}

/// R1 (reliability findings): `run` persists the tombstone as soon as the handler returns, not
/// after the typing cancel. A slow sendtyping holds the cancel open; the tombstone must be on
/// disk before the cancel reaches the server, and a "crash" then (the loop is aborted) does
/// not deliver the message again.
#[tokio::test]
async fn run_persists_the_tombstone_before_the_typing_cancel() {
    let sim = sim().await;
    let bot = sim.create_bot();
    let dir = tempfile::tempdir().unwrap();
    let user = sim.user("hal@im.wechat");
    // Typing start and cancel each take 1.5 s at the server.
    sim.inject_fault(
        Endpoint::SendTyping,
        Fault::Latency(Duration::from_millis(1500)),
        2,
    );
    user.send_text(&bot, "once").unwrap();
    let client = client_with_store(&sim, Arc::new(FileStore::new(dir.path())));
    let account = client.add_account(creds(&sim, &bot)).await.unwrap();
    let keys = Arc::new(Mutex::new(Vec::new()));
    let acct = account.clone();
    let k = keys.clone();
    let run = tokio::spawn(async move {
        acct.run(move |ctx: MessageContext| {
            let k = k.clone();
            async move {
                k.lock()
                    .unwrap()
                    .push(ctx.message().dedupe_key().to_owned());
                ctx.reply("re:once").await.map(|_| ())
            }
        })
        .await
    });
    sim.wait_for_delivered("hal@im.wechat", 1, WAIT)
        .await
        .unwrap();
    let key = keys.lock().unwrap()[0].clone();
    let store = FileStore::new(dir.path());
    let mut persisted = false;
    for _ in 0..500 {
        if store
            .load_tombstones(&bot.bot_id)
            .await
            .unwrap()
            .contains(&key)
        {
            persisted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(persisted, "the tombstone of {key} was never persisted");
    // Persisted while the typing cancel was still on its way.
    assert_ne!(
        sim.typing_state("hal@im.wechat"),
        Some(TypingState::Cancelled)
    );
    // Crash now: the loop dies before it asks for the next update.
    run.abort();
    let _ = run.await;
    drop(account);
    drop(client);
    user.send_text(&bot, "after").unwrap();
    let client = client_with_store(&sim, Arc::new(FileStore::new(dir.path())));
    let account = client.account(&bot.bot_id).await.unwrap();
    let mut updates = account.updates().await.unwrap();
    let first = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(Update::Message(m)) = updates.next().await {
                return m.text().unwrap().to_owned();
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(first, "after", "the handled message came again");
    assert_eq!(keys.lock().unwrap().len(), 1);
}

/// `Updates::ack` queues the tombstone (durable when `flush` returns) and, after the last
/// message of a batch, commits the cursor, before the next update is asked for.
#[tokio::test]
async fn ack_persists_the_tombstone_and_the_finished_batch_cursor() {
    let sim = sim().await;
    let bot = sim.create_bot();
    let store = Arc::new(ilink_client::MemoryStore::new());
    let client = client_with_store(&sim, store.clone());
    let account = client.add_account(creds(&sim, &bot)).await.unwrap();
    let user = sim.user("lea@im.wechat");
    user.send_text(&bot, "one").unwrap();
    user.send_text(&bot, "two").unwrap();
    let mut updates = account.updates().await.unwrap();
    let mut keys = Vec::new();
    while keys.len() < 2 {
        if let Some(Update::Message(m)) = updates.next().await {
            let before = store.load_cursor(&bot.bot_id).await.unwrap();
            keys.push(m.dedupe_key().to_owned());
            assert!(
                !store
                    .load_tombstones(&bot.bot_id)
                    .await
                    .unwrap()
                    .contains(&keys[keys.len() - 1])
            );
            updates.ack();
            updates.flush().await;
            let stored = store.load_tombstones(&bot.bot_id).await.unwrap();
            assert!(keys.iter().all(|k| stored.contains(k)), "{stored:?}");
            // Every strong key of the message is stored (message_id, client_id, seq).
            assert_eq!(stored.len(), 3 * keys.len(), "{stored:?}");
            // A second ack has nothing left to do.
            updates.ack();
            updates.flush().await;
            assert_eq!(store.load_tombstones(&bot.bot_id).await.unwrap(), stored);
            if keys.len() == 2 {
                // Both messages came in one batch: its cursor is committed by the last ack.
                assert_ne!(store.load_cursor(&bot.bot_id).await.unwrap(), before);
            }
        }
    }
}

#[tokio::test]
async fn a_bad_message_does_not_stop_the_batch() {
    let (sim, _client, account, bot) = setup().await;
    sim.inject_raw(
        &bot.bot_id,
        serde_json::json!({"message_id": 5, "from_user_id": "gus@im.wechat", "item_list": "oops"}),
    )
    .unwrap();
    sim.user("gus@im.wechat").send_text(&bot, "fine").unwrap();
    let mut updates = account.updates().await.unwrap();
    match updates.next().await {
        Some(Update::Undecodable(u)) => {
            assert_eq!(u.raw().unwrap()["item_list"], "oops");
            assert_eq!(u.kind(), ilink_client::proto::MessageErrorKind::Shape);
        }
        other => panic!("expected an undecodable message, got {other:?}"),
    }
    match updates.next().await {
        Some(Update::Message(m)) => assert_eq!(m.text(), Some("fine")),
        other => panic!("expected a message, got {other:?}"),
    }
}

/// R3 (reliability findings): a message quoting quotes 20 levels deep (its JSON nests deeper
/// than `ilink_proto::MAX_DEPTH`) is undecodable on its own; the rest of the batch is handled
/// and the cursor moves past it.
#[tokio::test]
async fn one_deeply_nested_message_does_not_block_the_account() {
    let (sim, _client, account, bot) = setup().await;
    let mut item = serde_json::json!({"type": 1, "text_item": {"text": "bottom"}});
    for _ in 0..20 {
        item = serde_json::json!({"type": 1, "text_item": {"text": "q"},
                                  "ref_msg": {"message_item": item}});
    }
    sim.inject_raw(
        &bot.bot_id,
        serde_json::json!({"message_id": 6, "from_user_id": "ida@im.wechat", "item_list": [item]}),
    )
    .unwrap();
    sim.user("ida@im.wechat").send_text(&bot, "next").unwrap();
    let mut updates = account.updates().await.unwrap();
    match updates.next().await {
        Some(Update::Undecodable(u)) => {
            assert_eq!(u.raw().unwrap()["message_id"], 6);
            assert_eq!(u.kind(), ilink_client::proto::MessageErrorKind::TooDeep);
            assert!(u.to_string().contains("deeper than"), "{u}");
        }
        other => panic!("expected an undecodable message, got {other:?}"),
    }
    match updates.next().await {
        Some(Update::Message(m)) => assert_eq!(m.text(), Some("next")),
        other => panic!("expected a message, got {other:?}"),
    }
    // The cursor moved on: the next message is new, not the deep one again.
    sim.user("ida@im.wechat").send_text(&bot, "later").unwrap();
    match updates.next().await {
        Some(Update::Message(m)) => assert_eq!(m.text(), Some("later")),
        other => panic!("expected a message, got {other:?}"),
    }
}

/// R6 (reliability findings): a server-advertised `longpolling_timeout_ms` of an hour is
/// capped (here at 4 x the configured 500 ms), so a poll the server then never answers is cut
/// by the client and the next message arrives.
#[tokio::test]
async fn an_advertised_long_poll_timeout_is_capped() {
    let sim = sim().await;
    let bot = sim.create_bot();
    let mut config = config(&sim);
    config.timeouts.long_poll = Duration::from_millis(500);
    assert_eq!(config.timeouts.long_poll_cap(), Duration::from_secs(2));
    let client = ilink_client::Client::new(config, ilink_client::MemoryStore::new()).unwrap();
    let account = client.add_account(creds(&sim, &bot)).await.unwrap();
    sim.inject_fault(
        Endpoint::GetUpdates,
        Fault::Json(serde_json::json!({"ret": 0, "msgs": [], "longpolling_timeout_ms": 3_600_000})),
        1,
    );
    // The next poll is held for a minute: only a capped client timeout ends it in time.
    sim.inject_fault(
        Endpoint::GetUpdates,
        Fault::Latency(Duration::from_secs(60)),
        1,
    );
    sim.user("jo@im.wechat")
        .send_text(&bot, "after-hang")
        .unwrap();
    let mut updates = account.updates().await.unwrap();
    let text = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(Update::Message(m)) = updates.next().await {
                return m.text().unwrap().to_owned();
            }
        }
    })
    .await
    .expect("the held poll was not cut by the capped timeout");
    assert_eq!(text, "after-hang");
    let mut t = ilink_client::Timeouts::default();
    assert_eq!(t.long_poll_cap(), Duration::from_secs(140));
    t.long_poll_max = Some(Duration::from_secs(60));
    assert_eq!(t.long_poll_cap(), Duration::from_secs(60));
}

/// R5 (reliability findings): a replayed batch larger than `dedupe_capacity` is still hidden
/// whole: the keys of the batch in progress and the one before it are never evicted.
#[tokio::test]
async fn a_replayed_batch_larger_than_the_dedupe_window_is_hidden() {
    let sim = sim().await;
    let bot = sim.create_bot();
    let mut config = config(&sim);
    config.dedupe_capacity = 8;
    let client = ilink_client::Client::new(config, ilink_client::MemoryStore::new()).unwrap();
    let account = client.add_account(creds(&sim, &bot)).await.unwrap();
    let user = sim.user("kim@im.wechat");
    for i in 0..20 {
        user.send_text(&bot, &format!("b{i}")).unwrap();
    }
    sim.inject_fault(Endpoint::GetUpdates, Fault::DuplicateBatch, 1);
    let mut updates = account.updates().await.unwrap();
    let mut seen = Vec::new();
    tokio::time::timeout(WAIT, async {
        while let Some(u) = updates.next().await {
            if let Update::Message(m) = u {
                let t = m.text().unwrap().to_owned();
                if t == "end" {
                    break;
                }
                seen.push(t);
                if seen.len() == 20 {
                    user.send_text(&bot, "end").unwrap();
                }
            }
        }
    })
    .await
    .unwrap();
    let expected: Vec<String> = (0..20).map(|i| format!("b{i}")).collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn transport_failures_back_off_and_recover() {
    let (sim, _client, account, bot) = setup().await;
    sim.inject_fault(Endpoint::GetUpdates, Fault::Status(500), 1);
    sim.inject_fault(Endpoint::GetUpdates, Fault::gateway_timeout(), 2);
    sim.inject_fault(Endpoint::GetUpdates, Fault::ConnectionReset, 1);
    sim.inject_fault(Endpoint::GetUpdates, Fault::EmptyBody, 1);
    sim.user("hal@im.wechat")
        .send_text(&bot, "after faults")
        .unwrap();
    let mut updates = account.updates().await.unwrap();
    let mut failures = Vec::new();
    loop {
        match tokio::time::timeout(WAIT, updates.next()).await.unwrap() {
            Some(Update::Message(m)) => {
                assert_eq!(m.text(), Some("after faults"));
                break;
            }
            Some(Update::PollFailed {
                consecutive,
                retry_in,
                error,
            }) => failures.push((consecutive, retry_in, error)),
            other => panic!("{other:?}"),
        }
    }
    assert!(sim.pending_faults().is_empty());
    // 2 s (here 20 ms) after each failure, 30 s (here 100 ms) after the third in a row.
    let fast = ilink_client::Delays::fast();
    let pattern: Vec<(u32, Duration)> = failures.iter().map(|f| (f.0, f.1)).collect();
    assert_eq!(
        pattern,
        vec![
            (1, fast.retry),
            (2, fast.retry),
            (3, fast.backoff),
            (1, fast.retry),
            (2, fast.retry)
        ]
    );
    let first = &failures[0].2;
    assert_eq!(first.kind(), ilink_client::PollErrorKind::HttpStatus);
    assert!(first.cause().to_string().contains("500"), "{first:?}");
}

#[tokio::test]
async fn client_side_poll_timeout_is_an_empty_batch_not_a_failure() {
    let mut cfg = ilink_sim::SimConfig::for_tests(Duration::from_secs(3));
    cfg.advertise_longpolling_timeout = false;
    let sim = ilink_sim::Sim::start(cfg).await.unwrap();
    let bot = sim.create_bot();
    let mut config = config(&sim);
    config.timeouts.long_poll = Duration::from_millis(100);
    config.timeouts.long_poll_margin = Duration::ZERO;
    // If a timeout counted as a failure, the next poll would wait a minute.
    config.delays.retry = Duration::from_secs(60);
    config.delays.backoff = Duration::from_secs(60);
    let client = ilink_client::Client::new(config, ilink_client::MemoryStore::new()).unwrap();
    let account = client.add_account(creds(&sim, &bot)).await.unwrap();
    let mut updates = account.updates().await.unwrap();
    let sim_user = sim.user("ivy@im.wechat");
    let sender = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(450)).await;
        sim_user.send_text(&bot, "late").unwrap();
    });
    let got = tokio::time::timeout(WAIT, updates.next()).await.unwrap();
    assert!(matches!(got, Some(Update::Message(_))));
    sender.await.unwrap();
    assert!(count_requests(&sim, "getupdates") >= 3);
}

#[tokio::test]
async fn multiple_accounts_run_side_by_side() {
    let sim = sim().await;
    let bot1 = sim.create_bot();
    let bot2 = sim.create_bot();
    let client = ilink_client::Client::new(config(&sim), ilink_client::MemoryStore::new()).unwrap();
    let a1 = client.add_account(creds(&sim, &bot1)).await.unwrap();
    let a2 = client.add_account(creds(&sim, &bot2)).await.unwrap();
    sim.user("u1@im.wechat").send_text(&bot1, "to one").unwrap();
    sim.user("u2@im.wechat").send_text(&bot2, "to two").unwrap();
    let mut runs = Vec::new();
    for acct in [a1.clone(), a2.clone()] {
        runs.push(tokio::spawn(async move {
            acct.run(|ctx: MessageContext| async move {
                let who = ctx.account().id().to_owned();
                ctx.reply(&who).await.map(|_| ())
            })
            .await
        }));
    }
    let d1 = sim
        .wait_for_delivered("u1@im.wechat", 1, WAIT)
        .await
        .unwrap();
    let d2 = sim
        .wait_for_delivered("u2@im.wechat", 1, WAIT)
        .await
        .unwrap();
    assert_eq!(d1[0].text(), Some(bot1.bot_id.as_str()));
    assert_eq!(d2[0].text(), Some(bot2.bot_id.as_str()));
    // A send naming no account goes through the one holding the user's token.
    let out = client.send_text("u2@im.wechat", "routed").await.unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(sim.delivered_to("u2@im.wechat")[1].bot_id, bot2.bot_id);
    client.shutdown();
    for r in runs {
        r.await.unwrap().unwrap();
    }
    assert_eq!(sim.bot(&bot1.bot_id).unwrap().notify_stopped, 1);
    assert_eq!(sim.bot(&bot2.bot_id).unwrap().notify_stopped, 1);
}

#[tokio::test]
async fn a_5xx_on_sendmessage_is_not_repeated_at_once_but_stays_queued() {
    let (sim, _client, account, bot) = setup().await;
    sim.user("kim@im.wechat").send_text(&bot, "x").unwrap();
    let mut updates = account.updates().await.unwrap();
    assert!(matches!(updates.next().await, Some(Update::Message(_))));
    sim.inject_fault(Endpoint::SendMessage, Fault::Status(502), 1);
    let out = account.send_text("kim@im.wechat", "once").await.unwrap();
    assert!(
        matches!(&out[..], [SendOutcome::Queued { position: 0, .. }]),
        "{out:?}"
    );
    // The request may have been processed: it is not repeated in a loop.
    assert_eq!(count_requests(&sim, "sendmessage"), 1);
    assert!(sim.delivered_to("kim@im.wechat").is_empty());
    // A flush sends it again with the same client_id, so the server could drop a copy.
    let report = account.flush_queue("kim@im.wechat").await.unwrap();
    assert_eq!(report.sent.len(), 1);
    assert_eq!(report.sent[0].client_id(), out[0].client_id());
    assert_eq!(sim.delivered_to("kim@im.wechat").len(), 1);
}

#[tokio::test]
async fn typing_ticket_is_cached_and_failures_back_off() {
    let (sim, _client, account, bot) = setup().await;
    sim.user("lea@im.wechat").send_text(&bot, "x").unwrap();
    let mut updates = account.updates().await.unwrap();
    assert!(matches!(updates.next().await, Some(Update::Message(_))));
    sim.inject_fault(Endpoint::GetConfig, Fault::Status(500), 1);
    assert!(account.typing_ticket("lea@im.wechat", None).await.is_none());
    assert_eq!(count_requests(&sim, "getconfig"), 1);
    // Within the retry delay (20 ms in Delays::fast()) no new getconfig is made.
    assert!(account.typing_ticket("lea@im.wechat", None).await.is_none());
    assert_eq!(count_requests(&sim, "getconfig"), 1);
    tokio::time::sleep(Duration::from_millis(30)).await;
    let ticket = account.typing_ticket("lea@im.wechat", None).await;
    assert!(ticket.is_some());
    assert_eq!(count_requests(&sim, "getconfig"), 2);
    // A success is cached (refresh within 24 h in production; 1 h in Delays::fast()).
    assert_eq!(account.typing_ticket("lea@im.wechat", None).await, ticket);
    assert_eq!(count_requests(&sim, "getconfig"), 2);
    assert!(
        account
            .send_typing("lea@im.wechat", ilink_client::TypingStatus::Typing)
            .await
            .unwrap()
    );
    assert_eq!(sim.typing_state("lea@im.wechat"), Some(TypingState::Typing));
    // The ticket is a secret.
    assert!(!format!("{ticket:?}").contains(ticket.unwrap().expose()));
}

#[tokio::test]
async fn compat_version_2_1_1_speaks_the_older_wire() {
    let sim = sim().await;
    let bot = sim.create_bot();
    let cfg = config(&sim).with_compat_version(ilink_client::CompatVersion::V2_1_1);
    let client = ilink_client::Client::new(cfg, ilink_client::MemoryStore::new()).unwrap();
    let account = client.add_account(creds(&sim, &bot)).await.unwrap();
    sim.user("max@im.wechat").send_text(&bot, "x").unwrap();
    let mut updates = account.updates().await.unwrap();
    assert!(matches!(updates.next().await, Some(Update::Message(_))));
    let reqs = sim.requests();
    // notify* arrived in 2.1.10 / 2.3.1.
    assert!(!reqs.iter().any(|r| r.path.contains("notify")));
    let poll = reqs
        .iter()
        .find(|r| r.path.ends_with("getupdates"))
        .unwrap();
    assert_eq!(poll.header("ilink-app-clientversion"), Some("131329"));
    assert_eq!(
        poll.json().unwrap()["base_info"],
        serde_json::json!({"channel_version": "2.1.1"})
    );
}

#[tokio::test]
async fn secrets_never_show_in_debug_output() {
    let (sim, _client, account, bot) = setup().await;
    sim.user("ned@im.wechat").send_text(&bot, "x").unwrap();
    let mut updates = account.updates().await.unwrap();
    let Some(Update::Message(m)) = updates.next().await else {
        panic!()
    };
    let token = m.context_token().unwrap().expose().to_owned();
    let dump = format!(
        "{m:?} {:?} {account:?} {:?}",
        account.credentials().unwrap(),
        account.context_token("ned@im.wechat")
    );
    assert!(!dump.contains(&token), "{dump}");
    assert!(!dump.contains(&bot.token), "{dump}");
}

#[tokio::test]
async fn shutdown_mid_batch_loses_nothing() {
    let sim = sim().await;
    let bot = sim.create_bot();
    let dir = tempfile::tempdir().unwrap();
    let user = sim.user("olga@im.wechat");
    for t in ["a", "b", "c"] {
        user.send_text(&bot, t).unwrap();
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    {
        let client = client_with_store(&sim, Arc::new(FileStore::new(dir.path())));
        let account = client.add_account(creds(&sim, &bot)).await.unwrap();
        let s = seen.clone();
        // The handler asks for shutdown while handling the first message of the batch.
        account
            .run(move |ctx: MessageContext| {
                let s = s.clone();
                async move {
                    s.lock().unwrap().push(ctx.text().unwrap().to_owned());
                    ctx.account().shutdown();
                    ctx.reply("ack").await.map(|_| ())
                }
            })
            .await
            .unwrap();
    }
    assert_eq!(*seen.lock().unwrap(), vec!["a"]);
    assert_eq!(sim.bot(&bot.bot_id).unwrap().notify_stopped, 1);
    // A new process picks up exactly the unhandled rest.
    let client = client_with_store(&sim, Arc::new(FileStore::new(dir.path())));
    let account = client.account(&bot.bot_id).await.unwrap();
    let s = seen.clone();
    let acct = account.clone();
    let run = tokio::spawn(async move {
        acct.run(move |ctx: MessageContext| {
            let s = s.clone();
            async move {
                s.lock().unwrap().push(ctx.text().unwrap().to_owned());
                ctx.reply("ack").await.map(|_| ())
            }
        })
        .await
    });
    sim.wait_for_delivered("olga@im.wechat", 3, WAIT)
        .await
        .unwrap();
    account.shutdown();
    run.await.unwrap().unwrap();
    assert_eq!(*seen.lock().unwrap(), vec!["a", "b", "c"]);
}

#[tokio::test]
async fn client_run_serves_every_account_and_route_tag_is_sent() {
    let sim = sim().await;
    let bot1 = sim.create_bot();
    let bot2 = sim.create_bot();
    let mut cfg = config(&sim);
    cfg.route_tag = Some("route-7".into());
    let client = ilink_client::Client::new(cfg, ilink_client::MemoryStore::new()).unwrap();
    client.add_account(creds(&sim, &bot1)).await.unwrap();
    client.add_account(creds(&sim, &bot2)).await.unwrap();
    sim.user("p1@im.wechat").send_text(&bot1, "1").unwrap();
    sim.user("p2@im.wechat").send_text(&bot2, "2").unwrap();
    let c = client.clone();
    let run = tokio::spawn(async move {
        c.run(|ctx: MessageContext| async move { ctx.reply("pong").await.map(|_| ()) })
            .await
    });
    sim.wait_for_delivered("p1@im.wechat", 1, WAIT)
        .await
        .unwrap();
    sim.wait_for_delivered("p2@im.wechat", 1, WAIT)
        .await
        .unwrap();
    client.shutdown();
    run.await.unwrap().unwrap();
    let reqs = sim.requests();
    assert!(
        reqs.iter()
            .filter(|r| r.path.contains("ilink/bot/"))
            .all(|r| r.header("skroutetag") == Some("route-7"))
    );
}

#[tokio::test]
async fn a_hanging_getconfig_does_not_hold_up_the_reply() {
    let sim = sim().await;
    let bot = sim.create_bot();
    let mut cfg = config(&sim);
    cfg.timeouts.config = Duration::from_secs(60);
    let client = ilink_client::Client::new(cfg, ilink_client::MemoryStore::new()).unwrap();
    let account = client.add_account(creds(&sim, &bot)).await.unwrap();
    sim.inject_fault(
        Endpoint::GetConfig,
        Fault::Latency(Duration::from_secs(120)),
        1,
    );
    sim.user("rex@im.wechat").send_text(&bot, "quick").unwrap();
    let acct = account.clone();
    let run = tokio::spawn(async move {
        acct.run(|ctx: MessageContext| async move { ctx.reply("here").await.map(|_| ()) })
            .await
    });
    // Well before getconfig could answer, the reply is out (with no typing indicator).
    let d = sim
        .wait_for_delivered("rex@im.wechat", 1, WAIT)
        .await
        .unwrap();
    assert_eq!(d[0].text(), Some("here"));
    assert!(sim.typing_events().is_empty());
    account.shutdown();
    tokio::time::timeout(WAIT, run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// R2 (reliability findings): temporary files of atomic writes that a crash interrupted are
/// removed when a client opens the account; the state itself is untouched.
#[tokio::test]
async fn opening_an_account_removes_temp_files_of_interrupted_writes() {
    let sim = sim().await;
    let bot = sim.create_bot();
    let dir = tempfile::tempdir().unwrap();
    {
        let client = client_with_store(&sim, Arc::new(FileStore::new(dir.path())));
        client.add_account(creds(&sim, &bot)).await.unwrap();
    }
    let store = FileStore::new(dir.path());
    store
        .save_cursor(&bot.bot_id, &ilink_client::Secret::from("CUR"), None)
        .await
        .unwrap();
    let acct_dir = store.account_dir(&bot.bot_id);
    // What a SIGKILL between the temp file's creation and its rename leaves behind.
    for i in 0..5 {
        std::fs::write(
            acct_dir.join(format!(".cursor.json.{i:016x}.tmp")),
            b"{\"get_updates_buf\":",
        )
        .unwrap();
    }
    let count_temps = || {
        std::fs::read_dir(&acct_dir)
            .unwrap()
            .filter(|e| {
                let e = e.as_ref().unwrap();
                e.file_name().to_string_lossy().ends_with(".tmp")
            })
            .count()
    };
    assert_eq!(count_temps(), 5);
    let client = client_with_store(&sim, Arc::new(FileStore::new(dir.path())));
    let account = client.account(&bot.bot_id).await.unwrap();
    assert_eq!(count_temps(), 0);
    assert_eq!(
        store.load_cursor(account.id()).await.unwrap(),
        Some(ilink_client::Secret::from("CUR"))
    );
}

/// Issue 14, case 2, against the emulator: a copy that differs only in `message_id` (same
/// `seq`, `client_id`, `context_token`) is hidden; a real repeat (the same text with new ids)
/// still arrives.
#[tokio::test]
async fn a_redelivered_copy_is_hidden_and_a_real_repeat_arrives() {
    let (sim, _client, account, bot) = setup().await;
    let copy = |id: u64| {
        serde_json::json!({"seq": 41, "message_id": id, "client_id": "srv-cid-41",
            "from_user_id": "ivy@im.wechat", "context_token": "ctx-b1", "message_type": 1,
            "item_list": [{"type": 1, "text_item": {"text": "hello"}}]})
    };
    sim.inject_raw(&bot.bot_id, copy(7461000000000000041))
        .unwrap();
    sim.inject_raw(&bot.bot_id, copy(7461000000000000042))
        .unwrap();
    // The same text typed again: new ids.
    sim.user("ivy@im.wechat").send_text(&bot, "hello").unwrap();
    sim.user("ivy@im.wechat").send_text(&bot, "END").unwrap();
    let mut updates = account.updates().await.unwrap();
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("END") {
        match tokio::time::timeout(WAIT, updates.next()).await.unwrap() {
            Some(Update::Message(m)) => seen.push(m.text().unwrap().to_owned()),
            Some(_) => {}
            None => break,
        }
    }
    assert_eq!(seen, vec!["hello", "hello", "END"]);
}
