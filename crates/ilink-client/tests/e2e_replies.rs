//! Long replies arrive whole: the text cap, the reply budget, the durable queue and the turn
//! journal, end to end against ilink-sim with its live limits on (text cap 2000, 10 replies
//! per inbound message, 24 h window, burst throttling) over loopback HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use ilink_client::outbox::{Overflow, ReplyClock, ReplyPolicy};
use ilink_client::{
    Account, Client, FileStore, MessageContext, SendErrorKind, SendOutcome, StateStore, Update,
    filter_markdown,
};
use ilink_sim::{BurstPolicy, Sim, SimConfig};

const USER: &str = "reader@im.wechat";

use ilink_sim::long_reply;

/// The text as delivered: every message in order, the continuation notice removed.
fn reassemble(sim: &Sim, user: &str) -> String {
    let suffix = format!("\n\n{}", ilink_client::outbox::DEFAULT_CONTINUATION_NOTICE);
    sim.delivered_to(user)
        .iter()
        .map(|d| {
            let t = d.text().unwrap_or_default();
            t.strip_suffix(&suffix).unwrap_or(t).to_owned()
        })
        .collect()
}

fn limited_sim_config() -> SimConfig {
    // The defaults: text cap 2000, 10 replies per inbound message, 24 h window, 30 sends per
    // 10 s per bot.
    SimConfig::for_tests(Duration::from_millis(300))
}

async fn wait_until(mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn run_long_reply_bot(account: &Account, reply: Arc<String>) -> tokio::task::JoinHandle<()> {
    let acct = account.clone();
    tokio::spawn(async move {
        acct.run(move |ctx: MessageContext| {
            let reply = reply.clone();
            async move {
                if ctx.text() == Some("start") {
                    ctx.reply(&reply).await.map(|_| ())
                } else {
                    Ok(())
                }
            }
        })
        .await
        .unwrap();
    })
}

#[tokio::test]
async fn a_30k_reply_reaches_the_user_whole_in_order_exactly_once() {
    let sim = Sim::start(limited_sim_config()).await.unwrap();
    let bot = sim.create_bot();
    let client = Client::new(config(&sim), ilink_client::MemoryStore::new()).unwrap();
    let account = client.add_account(creds(&sim, &bot)).await.unwrap();
    let text = long_reply(30_000);
    assert!(text.chars().count() >= 30_000);
    let expected = filter_markdown(&text);
    let run = run_long_reply_bot(&account, Arc::new(text));

    let user = sim.user(USER);
    user.send_text(&bot, "start").unwrap();
    // The first window: exactly 10 messages, the 10th says more follows.
    sim.wait_for_delivered(USER, 10, WAIT).await.unwrap();
    wait_until(|| account.budget(USER).left == 0).await;
    let first = sim.delivered_to(USER);
    assert_eq!(first.len(), 10);
    assert!(
        first[9]
            .text()
            .unwrap()
            .ends_with(ilink_client::outbox::DEFAULT_CONTINUATION_NOTICE)
    );
    assert!(account.budget(USER).queued > 0);
    assert_eq!(account.queued(USER)[0].position, 0);

    let mut continues = 0;
    while account.budget(USER).queued > 0 {
        continues += 1;
        assert!(continues < 10, "the queue does not drain");
        let before = sim.delivered_to(USER).len();
        user.send_text(&bot, "continue").unwrap();
        wait_until(|| sim.delivered_to(USER).len() > before).await;
        wait_until(|| {
            let b = account.budget(USER);
            b.queued == 0 || b.left == 0
        })
        .await;
    }
    let got = reassemble(&sim, USER);
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "the reply arrived changed");
    let delivered = sim.delivered_to(USER);
    assert!(
        delivered
            .iter()
            .all(|d| d.text().unwrap().encode_utf16().count() <= 2000)
    );
    let ids: std::collections::HashSet<_> = delivered.iter().map(|d| &d.client_id).collect();
    assert_eq!(ids.len(), delivered.len());
    assert!(
        sim.dropped().is_empty(),
        "nothing truncated or refused: {:?}",
        sim.dropped()
    );
    assert!(continues >= 1);
    client.shutdown();
    let _ = tokio::time::timeout(WAIT, run).await;
}

#[tokio::test]
async fn a_proactive_send_25_hours_later_is_queued_then_delivered_when_the_user_writes() {
    let sim = Sim::start(limited_sim_config()).await.unwrap();
    let bot = sim.create_bot();
    // The client's budget reads the emulator's clock: system time plus the same offset.
    let offset = Arc::new(AtomicU64::new(0));
    let mut cfg = config(&sim);
    let off = offset.clone();
    cfg.replies.clock = ReplyClock::new(move || {
        ilink_client::outbox::ReplyClock::system().now_ms() + off.load(Ordering::SeqCst)
    });
    let client = Client::new(cfg, ilink_client::MemoryStore::new()).unwrap();
    let account = client.add_account(creds(&sim, &bot)).await.unwrap();
    let acct = account.clone();
    let run = tokio::spawn(async move {
        acct.run(|ctx: MessageContext| async move {
            let t = ctx.text().unwrap_or_default().to_owned();
            ctx.reply(&format!("echo: {t}")).await.map(|_| ())
        })
        .await
    });
    let user = sim.user(USER);
    user.send_text(&bot, "hi").unwrap();
    sim.wait_for_delivered(USER, 1, WAIT).await.unwrap();
    wait_until(|| account.budget(USER).left == 9).await;
    let b = account.budget(USER);
    assert!(b.window_closes_at_ms.is_some());

    let day = Duration::from_secs(25 * 3600);
    sim.advance_clock(day);
    offset.fetch_add(day.as_millis() as u64, Ordering::SeqCst);
    assert_eq!(account.budget(USER).left, 0);
    let out = account.send_text(USER, "news from the bot").await.unwrap();
    assert!(
        matches!(&out[..], [SendOutcome::Queued { position: 0, .. }]),
        "{out:?}"
    );
    assert_eq!(sim.delivered_to(USER).len(), 1);
    assert!(
        sim.dropped().is_empty(),
        "nothing was even tried: {:?}",
        sim.dropped()
    );

    user.send_text(&bot, "back").unwrap();
    let d = sim.wait_for_delivered(USER, 3, WAIT).await.unwrap();
    assert_eq!(
        d[1].text(),
        Some("news from the bot"),
        "the queue goes first"
    );
    assert_eq!(d[2].text(), Some("echo: back"));
    wait_until(|| account.budget(USER).queued == 0).await;
    assert!(sim.dropped().is_empty());
    client.shutdown();
    let _ = tokio::time::timeout(WAIT, run).await;
}

#[tokio::test]
async fn all_or_nothing_fails_before_sending_anything() {
    let sim = Sim::start(limited_sim_config()).await.unwrap();
    let bot = sim.create_bot();
    let mut cfg = config(&sim);
    cfg.replies.overflow = Overflow::AllOrNothing;
    let client = Client::new(cfg, ilink_client::MemoryStore::new()).unwrap();
    let account = client.add_account(creds(&sim, &bot)).await.unwrap();
    sim.user(USER).send_text(&bot, "hi").unwrap();
    let mut updates = account.updates().await.unwrap();
    let Some(Update::Message(_)) = updates.next().await else {
        panic!("expected a message")
    };
    let err = account
        .send_text(USER, &"word ".repeat(5000))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), SendErrorKind::BudgetExceeded);
    assert!(err.sent().is_empty());
    assert!(sim.delivered().is_empty());
    assert_eq!(account.budget(USER).queued, 0);
    // What fits goes out.
    let ok = account
        .send_text(USER, &"word ".repeat(1000))
        .await
        .unwrap();
    assert_eq!(ok.len(), 3);
    assert_eq!(account.budget(USER).left, 7);
}

#[tokio::test]
async fn a_full_queue_is_a_typed_error_and_nothing_is_lost() {
    let sim = Sim::start(limited_sim_config()).await.unwrap();
    let bot = sim.create_bot();
    let mut cfg = config(&sim);
    cfg.replies.max_queued = 5;
    let client = Client::new(cfg, ilink_client::MemoryStore::new()).unwrap();
    let account = client.add_account(creds(&sim, &bot)).await.unwrap();
    sim.user(USER).send_text(&bot, "hi").unwrap();
    let mut updates = account.updates().await.unwrap();
    let Some(Update::Message(_)) = updates.next().await else {
        panic!("expected a message")
    };
    let err = account
        .send_text(USER, &"word ".repeat(3000))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), SendErrorKind::QueueFull);
    assert!(sim.delivered().is_empty());
    assert!(account.queued(USER).is_empty());
}

#[tokio::test]
async fn a_text_that_filters_to_nothing_is_a_typed_error_and_never_sent() {
    let (sim, _client, account, bot) = setup().await;
    sim.user(USER).send_text(&bot, "hi").unwrap();
    let mut updates = account.updates().await.unwrap();
    let Some(Update::Message(_)) = updates.next().await else {
        panic!("expected a message")
    };
    sim.clear_requests();
    for text in ["![only an image](http://x/y.png)", "  \n ", ""] {
        let err = account.send_text(USER, text).await.unwrap_err();
        assert_eq!(err.kind(), SendErrorKind::Invalid, "{text:?}");
    }
    assert!(
        !sim.requests()
            .iter()
            .any(|r| r.path.ends_with("sendmessage")),
        "no sendmessage without items"
    );
}

#[tokio::test]
async fn a_burst_throttle_waits_in_the_queue_and_is_retried_with_backoff() {
    let sim = Sim::start(SimConfig {
        burst: Some(BurstPolicy {
            max_sends: 2,
            window: Duration::from_millis(300),
        }),
        // The default throttles media bursts only (what users reported); this test throttles
        // text too.
        burst_scope: ilink_sim::BurstScope::AllMessages,
        ..limited_sim_config()
    })
    .await
    .unwrap();
    let bot = sim.create_bot();
    let mut cfg = config(&sim);
    cfg.replies.throttle_backoff = Duration::from_millis(200);
    cfg.replies.throttle_retries = 5;
    let client = Client::new(cfg, ilink_client::MemoryStore::new()).unwrap();
    let account = client.add_account(creds(&sim, &bot)).await.unwrap();
    sim.user(USER).send_text(&bot, "hi").unwrap();
    let mut updates = account.updates().await.unwrap();
    let Some(Update::Message(_)) = updates.next().await else {
        panic!("expected a message")
    };
    let text = "第一段。\n\n".repeat(800); // several chunks
    let out = account.send_text(USER, &text).await.unwrap();
    assert!(out.len() >= 3);
    assert!(out.iter().all(|o| o.message_id().is_some()), "{out:?}");
    assert_eq!(reassemble(&sim, USER), text);
    assert!(
        sim.dropped()
            .iter()
            .all(|d| d.reason == ilink_sim::DropReason::Throttled)
    );
    assert!(!sim.dropped().is_empty(), "the sim did throttle");
}

#[tokio::test]
async fn a_refusal_the_budget_did_not_expect_corrects_it_and_queues_the_rest() {
    // The server allows only 3 replies per inbound message; the client believes 10.
    let sim = Sim::start(SimConfig {
        reply_limit: Some(3),
        ..limited_sim_config()
    })
    .await
    .unwrap();
    let bot = sim.create_bot();
    let mut cfg = config(&sim);
    cfg.replies.throttle_retries = 1;
    cfg.replies.throttle_backoff = Duration::from_millis(10);
    let client = Client::new(cfg, ilink_client::MemoryStore::new()).unwrap();
    let account = client.add_account(creds(&sim, &bot)).await.unwrap();
    let text = long_reply(6000);
    let run = run_long_reply_bot(&account, Arc::new(text.clone()));
    let user = sim.user(USER);
    user.send_text(&bot, "start").unwrap();
    sim.wait_for_delivered(USER, 3, WAIT).await.unwrap();
    wait_until(|| account.budget(USER).exhausted).await;
    assert_eq!(account.budget(USER).left, 0);
    assert!(account.budget(USER).queued > 0);
    let mut n = 0;
    while account.budget(USER).queued > 0 {
        n += 1;
        assert!(n < 10);
        let before = sim.delivered_to(USER).len();
        user.send_text(&bot, "continue").unwrap();
        wait_until(|| sim.delivered_to(USER).len() > before).await;
        wait_until(|| {
            let b = account.budget(USER);
            b.queued == 0 || b.left == 0
        })
        .await;
    }
    assert_eq!(reassemble(&sim, USER), filter_markdown(&text));
    client.shutdown();
    let _ = tokio::time::timeout(WAIT, run).await;
}

#[tokio::test]
async fn a_redelivered_message_does_not_send_its_replies_again() {
    let sim = Sim::start(limited_sim_config()).await.unwrap();
    let bot = sim.create_bot();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn StateStore> = Arc::new(FileStore::new(dir.path()));
    sim.user(USER).send_text(&bot, "hi").unwrap();
    let first = {
        let client = client_with_store(&sim, store.clone());
        let account = client.add_account(creds(&sim, &bot)).await.unwrap();
        let mut updates = account.updates().await.unwrap();
        let Some(Update::Message(m)) = updates.next().await else {
            panic!("expected a message")
        };
        let ctx = MessageContext::new(account.clone(), m);
        let out = ctx.reply("reply one").await.unwrap();
        // The bot "dies" here: the message is never acknowledged.
        out
    };
    let client = client_with_store(&sim, store.clone());
    let account = client.add_account(creds(&sim, &bot)).await.unwrap();
    let mut updates = account.updates().await.unwrap();
    let Some(Update::Message(m)) = updates.next().await else {
        panic!("expected the same message again")
    };
    assert_eq!(m.text(), Some("hi"));
    let ctx = MessageContext::new(account.clone(), m);
    // A non-deterministic handler says something else this time: reply 0 is not sent again.
    let again = ctx.reply("reply one, worded differently").await.unwrap();
    assert_eq!(again[0].client_id(), first[0].client_id());
    assert_eq!(
        again[0].message_id().map(|m| m.as_str().to_owned()),
        first[0].message_id().map(|m| m.as_str().to_owned())
    );
    // A further reply of the turn is new.
    ctx.reply("reply two").await.unwrap();
    let texts: Vec<_> = sim
        .delivered_to(USER)
        .iter()
        .map(|d| d.text().unwrap().to_owned())
        .collect();
    assert_eq!(texts, vec!["reply one", "reply two"]);
    // The budget survived the restart: 2 of 10 used.
    assert_eq!(account.budget(USER).left, 8);
}

#[tokio::test]
async fn the_queue_survives_a_restart_and_can_be_inspected_flushed_and_cleared() {
    let sim = Sim::start(limited_sim_config()).await.unwrap();
    let bot = sim.create_bot();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn StateStore> = Arc::new(FileStore::new(dir.path()));
    let user = sim.user(USER);
    user.send_text(&bot, "hi").unwrap();
    {
        let client = client_with_store(&sim, store.clone());
        let account = client.add_account(creds(&sim, &bot)).await.unwrap();
        let mut updates = account.updates().await.unwrap();
        let Some(Update::Message(_)) = updates.next().await else {
            panic!()
        };
        updates.ack();
        let out = account
            .send_text(USER, &"word ".repeat(5000))
            .await
            .unwrap();
        assert_eq!(out.iter().filter(|o| o.is_queued()).count(), out.len() - 10);
    }
    let client = client_with_store(&sim, store.clone());
    let account = client.add_account(creds(&sim, &bot)).await.unwrap();
    let queued = account.queued(USER);
    assert!(!queued.is_empty());
    assert_eq!(account.queued_users(), vec![USER.to_owned()]);
    // Flushing without a new window sends nothing.
    let r = account.flush_queue(USER).await.unwrap();
    assert!(r.sent.is_empty());
    assert_eq!(r.still_queued, queued.len());
    assert_eq!(account.clear_queue(USER).await.unwrap(), queued.len());
    assert!(account.queued(USER).is_empty());
    assert_eq!(sim.delivered_to(USER).len(), 10);
}

#[tokio::test]
async fn a_warning_comes_before_a_window_closes() {
    let sim = Sim::start(limited_sim_config()).await.unwrap();
    let bot = sim.create_bot();
    let offset = Arc::new(AtomicU64::new(0));
    let mut cfg = config(&sim);
    let off = offset.clone();
    cfg.replies = ReplyPolicy::default();
    cfg.replies.clock =
        ReplyClock::new(move || ReplyClock::system().now_ms() + off.load(Ordering::SeqCst));
    let client = Client::new(cfg, ilink_client::MemoryStore::new()).unwrap();
    let account = client.add_account(creds(&sim, &bot)).await.unwrap();
    sim.user(USER).send_text(&bot, "hi").unwrap();
    let mut updates = account.updates().await.unwrap();
    let Some(Update::Message(_)) = updates.next().await else {
        panic!()
    };
    let closes = account.budget(USER).window_closes_at_ms.unwrap();
    let none =
        tokio::time::timeout(Duration::from_millis(1500), account.next_window_warning()).await;
    assert!(none.is_err(), "no warning a day ahead");
    offset.fetch_add(23 * 3600 * 1000 + 45 * 60 * 1000, Ordering::SeqCst);
    let w = tokio::time::timeout(WAIT, account.next_window_warning())
        .await
        .unwrap();
    assert_eq!(w.user, USER);
    assert_eq!(w.closes_at_ms, closes);
}
