//! Server policies: reply window, reply limit, burst throttling, token staleness and
//! one user bound to one bot. Time-based ones run on the emulated clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use ilink_sim::{BurstPolicy, BurstScope, DropReason, Sim, SimConfig};
use serde_json::json;

#[tokio::test]
async fn about_ten_replies_per_inbound_message() {
    let sim = Sim::start(config()).await.unwrap();
    let bot = sim.create_bot();
    let u = sim.user("u@im.wechat");
    let ctx = u.send_text(&bot, "go").unwrap().context_token;
    for i in 0..10 {
        let r = send(
            sim.addr(),
            &bot.token,
            &text_reply("u@im.wechat", Some(&ctx), &format!("c{i}"), "x"),
        )
        .await;
        assert!(r["message_id"].is_u64(), "reply {i} delivered: {r}");
    }
    let r = send(
        sim.addr(),
        &bot.token,
        &text_reply("u@im.wechat", Some(&ctx), "c10", "x"),
    )
    .await;
    assert_eq!(r, json!({"ret": -2}));
    assert_eq!(sim.dropped()[0].reason, DropReason::ReplyLimitReached);
    // The user writes again: the counter resets (the old token still works).
    u.send_text(&bot, "more").unwrap();
    let r = send(
        sim.addr(),
        &bot.token,
        &text_reply("u@im.wechat", Some(&ctx), "c11", "x"),
    )
    .await;
    assert!(r["message_id"].is_u64());
    assert_eq!(sim.delivered_to("u@im.wechat").len(), 11);
}

#[tokio::test]
async fn reply_limit_is_configurable() {
    let cfg = SimConfig {
        reply_limit: Some(2),
        ..config()
    };
    let sim = Sim::start(cfg).await.unwrap();
    let bot = sim.create_bot();
    let ctx = sim
        .user("u@im.wechat")
        .send_text(&bot, "go")
        .unwrap()
        .context_token;
    let mut answers = Vec::new();
    for i in 0..3 {
        answers.push(
            send(
                sim.addr(),
                &bot.token,
                &text_reply("u@im.wechat", Some(&ctx), &format!("c{i}"), "x"),
            )
            .await,
        );
    }
    assert!(answers[1]["message_id"].is_u64());
    assert_eq!(answers[2]["ret"], -2);
}

#[tokio::test]
async fn replies_expire_24_hours_after_the_users_last_message() {
    let sim = Sim::start(config()).await.unwrap();
    let bot = sim.create_bot();
    let ctx = sim
        .user("u@im.wechat")
        .send_text(&bot, "go")
        .unwrap()
        .context_token;
    sim.advance_clock(Duration::from_secs(23 * 3600));
    let r = send(
        sim.addr(),
        &bot.token,
        &text_reply("u@im.wechat", Some(&ctx), "a", "x"),
    )
    .await;
    assert!(r["message_id"].is_u64(), "within 24 h: {r}");
    sim.advance_clock(Duration::from_secs(2 * 3600));
    let r = send(
        sim.addr(),
        &bot.token,
        &text_reply("u@im.wechat", Some(&ctx), "b", "x"),
    )
    .await;
    assert_eq!(r, json!({"ret": -2}));
    assert_eq!(sim.dropped()[0].reason, DropReason::ReplyWindowExpired);
}

#[tokio::test]
async fn bursts_of_text_are_not_throttled_by_default() {
    // docs/protocol.md §16 reports throttling of media bursts only.
    let cfg = SimConfig {
        burst: Some(BurstPolicy {
            max_sends: 2,
            window: Duration::from_secs(10),
        }),
        ..config()
    };
    assert_eq!(cfg.burst_scope, BurstScope::MediaOnly);
    let sim = Sim::start(cfg).await.unwrap();
    let bot = sim.create_bot();
    let ctx = sim
        .user("u@im.wechat")
        .send_text(&bot, "go")
        .unwrap()
        .context_token;
    for i in 0..5 {
        let r = send(
            sim.addr(),
            &bot.token,
            &text_reply("u@im.wechat", Some(&ctx), &format!("c{i}"), "x"),
        )
        .await;
        assert!(r["message_id"].is_u64(), "text {i} delivered: {r}");
    }
    assert!(sim.dropped().is_empty());
}

#[tokio::test]
async fn bursts_are_throttled() {
    let cfg = SimConfig {
        burst: Some(BurstPolicy {
            max_sends: 3,
            window: Duration::from_secs(10),
        }),
        burst_scope: BurstScope::AllMessages,
        ..config()
    };
    let sim = Sim::start(cfg).await.unwrap();
    let bot = sim.create_bot();
    let ctx = sim
        .user("u@im.wechat")
        .send_text(&bot, "go")
        .unwrap()
        .context_token;
    for i in 0..3 {
        let r = send(
            sim.addr(),
            &bot.token,
            &text_reply("u@im.wechat", Some(&ctx), &format!("c{i}"), "x"),
        )
        .await;
        assert!(r["message_id"].is_u64());
    }
    let r = send(
        sim.addr(),
        &bot.token,
        &text_reply("u@im.wechat", Some(&ctx), "c3", "x"),
    )
    .await;
    assert_eq!(r, json!({"ret": -2}));
    assert_eq!(sim.dropped()[0].reason, DropReason::Throttled);
    // After the window, sending works again.
    sim.advance_clock(Duration::from_secs(11));
    let r = send(
        sim.addr(),
        &bot.token,
        &text_reply("u@im.wechat", Some(&ctx), "c4", "x"),
    )
    .await;
    assert!(r["message_id"].is_u64());
}

#[tokio::test]
async fn tokens_go_stale_with_age_and_on_demand() {
    let cfg = SimConfig {
        token_lifetime: Some(Duration::from_secs(3600)),
        ..config()
    };
    let sim = Sim::start(cfg).await.unwrap();
    let old = sim.create_bot();
    let fresh_poll = get_updates(sim.addr(), &old.token, "").await;
    assert!(fresh_poll.get("errcode").is_none());
    sim.advance_clock(Duration::from_secs(3601));
    let r = get_updates(sim.addr(), &old.token, "").await;
    assert_eq!(r, json!({"errcode": -14, "errmsg": "session timeout"}));

    let b = sim.create_bot();
    assert!(
        get_updates(sim.addr(), &b.token, "")
            .await
            .get("errcode")
            .is_none()
    );
    assert!(sim.expire_token(&b.bot_id));
    assert_eq!(get_updates(sim.addr(), &b.token, "").await["errcode"], -14);
    assert!(sim.bot(&b.bot_id).unwrap().stale);
    assert!(!sim.expire_token("nobody@im.bot"));
}

#[tokio::test]
async fn one_user_is_bound_to_one_bot() {
    let sim = Sim::start(config()).await.unwrap();
    let first = sim.create_bot_for("owner@im.wechat");
    let other = sim.create_bot_for("someone-else@im.wechat");
    assert!(
        get_updates(sim.addr(), &first.token, "")
            .await
            .get("errcode")
            .is_none()
    );
    // The same user logs in again: the older bot's token goes stale.
    let second = sim.create_bot_for("owner@im.wechat");
    assert_eq!(
        get_updates(sim.addr(), &first.token, "").await["errcode"],
        -14
    );
    assert!(
        get_updates(sim.addr(), &second.token, "")
            .await
            .get("errcode")
            .is_none()
    );
    assert!(
        get_updates(sim.addr(), &other.token, "")
            .await
            .get("errcode")
            .is_none()
    );
}

#[tokio::test]
async fn the_binding_rule_can_be_switched_off() {
    let cfg = SimConfig {
        one_bot_per_user: false,
        ..config()
    };
    let sim = Sim::start(cfg).await.unwrap();
    let first = sim.create_bot_for("owner@im.wechat");
    let _second = sim.create_bot_for("owner@im.wechat");
    assert!(
        get_updates(sim.addr(), &first.token, "")
            .await
            .get("errcode")
            .is_none()
    );
}

#[tokio::test]
async fn context_tokens_can_be_given_a_lifetime() {
    let cfg = SimConfig {
        context_token_lifetime: Some(Duration::from_secs(120)),
        ..config()
    };
    let sim = Sim::start(cfg).await.unwrap();
    let bot = sim.create_bot();
    let ctx = sim
        .user("u@im.wechat")
        .send_text(&bot, "go")
        .unwrap()
        .context_token;
    sim.advance_clock(Duration::from_secs(60));
    let r = send(
        sim.addr(),
        &bot.token,
        &text_reply("u@im.wechat", Some(&ctx), "a", "x"),
    )
    .await;
    assert!(r["message_id"].is_u64());
    sim.advance_clock(Duration::from_secs(61));
    let r = send(
        sim.addr(),
        &bot.token,
        &text_reply("u@im.wechat", Some(&ctx), "b", "x"),
    )
    .await;
    assert_eq!(r, json!({"ret": -2, "errmsg": "prepare failed"}));
    assert_eq!(sim.dropped()[0].reason, DropReason::StaleContextToken);
    // A fresh inbound message brings a fresh token.
    let ctx2 = sim
        .user("u@im.wechat")
        .send_text(&bot, "again")
        .unwrap()
        .context_token;
    let r = send(
        sim.addr(),
        &bot.token,
        &text_reply("u@im.wechat", Some(&ctx2), "c", "x"),
    )
    .await;
    assert!(r["message_id"].is_u64());
}

#[tokio::test]
async fn limits_can_all_be_switched_off() {
    let sim = Sim::start(config().without_limits()).await.unwrap();
    let bot = sim.create_bot();
    let ctx = sim
        .user("u@im.wechat")
        .send_text(&bot, "go")
        .unwrap()
        .context_token;
    sim.advance_clock(Duration::from_secs(40 * 24 * 3600));
    for i in 0..40 {
        let r = send(
            sim.addr(),
            &bot.token,
            &text_reply("u@im.wechat", Some(&ctx), &format!("c{i}"), "x"),
        )
        .await;
        assert!(r["message_id"].is_u64(), "{i}: {r}");
    }
    // What a message must contain is still checked.
    let r = send(
        sim.addr(),
        &bot.token,
        &text_reply("u@im.wechat", None, "none", "x"),
    )
    .await;
    assert_eq!(r, json!({"ret": -2}));
}

#[tokio::test]
async fn long_texts_are_delivered_cut_with_success_and_recorded() {
    let sim = Sim::start(config()).await.unwrap();
    assert_eq!(sim.config().text_cap, Some(ilink_sim::DEFAULT_TEXT_CAP));
    let bot = sim.create_bot();
    let u = sim.user("u@im.wechat");
    let ctx = u.send_text(&bot, "go").unwrap().context_token;
    // 1999 ASCII units + one emoji (2 units) = 2001 units: the emoji is cut whole, never half.
    let text = format!("{}😀tail", "a".repeat(1999));
    let r = send(
        sim.addr(),
        &bot.token,
        &text_reply("u@im.wechat", Some(&ctx), "c-long", &text),
    )
    .await;
    assert!(r["message_id"].is_u64(), "success is answered: {r}");
    let delivered = sim.delivered_to("u@im.wechat");
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].text(), Some("a".repeat(1999).as_str()));
    let dropped = sim.dropped();
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0].reason, DropReason::Truncated);
    assert_eq!(dropped[0].original_len, Some(2005));
    assert_eq!(dropped[0].delivered_len, Some(1999));
    let v = serde_json::to_value(&dropped[0]).unwrap();
    assert_eq!(v["reason"], "truncated");
    assert_eq!(v["original_len"], 2005);
    // Exactly the cap passes untouched, counted in UTF-16 units (1000 emoji = 2000 units).
    let exact = "😀".repeat(1000);
    send(
        sim.addr(),
        &bot.token,
        &text_reply("u@im.wechat", Some(&ctx), "c-exact", &exact),
    )
    .await;
    assert_eq!(
        sim.delivered_to("u@im.wechat")[1].text(),
        Some(exact.as_str())
    );
    assert_eq!(sim.dropped().len(), 1);
}

#[tokio::test]
async fn the_text_cap_is_configurable() {
    let sim = Sim::start(SimConfig {
        text_cap: Some(5),
        ..config()
    })
    .await
    .unwrap();
    let bot = sim.create_bot();
    let u = sim.user("u@im.wechat");
    let ctx = u.send_text(&bot, "go").unwrap().context_token;
    send(
        sim.addr(),
        &bot.token,
        &text_reply("u@im.wechat", Some(&ctx), "c1", "你好世界再见"),
    )
    .await;
    assert_eq!(
        sim.delivered_to("u@im.wechat")[0].text(),
        Some("你好世界再")
    );
    let sim2 = Sim::start(SimConfig {
        text_cap: None,
        ..config()
    })
    .await
    .unwrap();
    let bot = sim2.create_bot();
    let ctx = sim2
        .user("u@im.wechat")
        .send_text(&bot, "go")
        .unwrap()
        .context_token;
    let long = "b".repeat(5000);
    send(
        sim2.addr(),
        &bot.token,
        &text_reply("u@im.wechat", Some(&ctx), "c1", &long),
    )
    .await;
    assert_eq!(
        sim2.delivered_to("u@im.wechat")[0].text(),
        Some(long.as_str())
    );
    assert!(sim2.dropped().is_empty());
}
