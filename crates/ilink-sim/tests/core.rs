//! The core loop: provision a bot, inject a message, long-poll it, reply, read back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use ilink_sim::{Sim, SimConfig};
use serde_json::json;

#[tokio::test]
async fn urls_point_at_loopback() {
    let sim = Sim::start(config()).await.unwrap();
    let port = sim.addr().port();
    assert_ne!(port, 0);
    assert_eq!(sim.base_url(), format!("http://127.0.0.1:{port}/"));
    assert_eq!(sim.cdn_base_url(), format!("http://127.0.0.1:{port}/c2c"));
    assert_eq!(sim.host(), format!("127.0.0.1:{port}"));
    let bot = sim.create_bot();
    assert!(bot.bot_id.ends_with("@im.bot"));
    assert!(!bot.token.is_empty());
    assert!(!format!("{bot:?}").contains(&bot.token));
    sim.shutdown().await;
}

#[tokio::test]
async fn inbound_text_round_trip() {
    let sim = Sim::start(config()).await.unwrap();
    let bot = sim.create_bot();
    let alice = sim.user("alice@im.wechat");
    let sent = alice.send_text(&bot, "hi").unwrap();

    let resp = get_updates(sim.addr(), &bot.token, "").await;
    // Live shape: no ret, a sync_buf, a long cursor, the advertised hold.
    assert!(resp.get("ret").is_none());
    assert!(resp["sync_buf"].is_string());
    assert_eq!(resp["longpolling_timeout_ms"], 100);
    let msgs = resp["msgs"].as_array().unwrap();
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert_eq!(m["from_user_id"], "alice@im.wechat");
    assert_eq!(m["to_user_id"], bot.bot_id.as_str());
    assert_eq!(m["message_type"], 1);
    assert_eq!(m["message_state"], 2);
    assert_eq!(m["item_list"][0]["text_item"]["text"], "hi");
    assert_eq!(m["context_token"], sent.context_token.as_str());
    assert!(m["message_id"].is_u64(), "message_id is a bare number");
    assert!(m["message_id"].as_u64().unwrap() > 1 << 53);
    assert_eq!(m["message_id"].as_u64().unwrap(), sent.message_id);
    assert_eq!(m["root_id"], 0);
    assert!(m["item_list"][0]["button_item_list"].is_array());
    let cursor = resp["get_updates_buf"].as_str().unwrap().to_owned();
    assert!(cursor.len() > 60, "cursor is long and opaque: {cursor}");

    // Reply with the context token.
    let answer = send(
        sim.addr(),
        &bot.token,
        &text_reply("alice@im.wechat", Some(&sent.context_token), "c-1", "pong"),
    )
    .await;
    assert_eq!(answer["ret"], 0);
    let id = answer["message_id"]
        .as_u64()
        .expect("a bare numeric message_id");
    assert!(id > 1 << 53);
    let got = sim.delivered_to("alice@im.wechat");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].text(), Some("pong"));
    assert_eq!(got[0].message_id, id);
    assert_eq!(
        got[0]
            .parsed_item()
            .unwrap()
            .text_item
            .unwrap()
            .text
            .as_deref(),
        Some("pong")
    );
    let parsed = sent.parsed().unwrap();
    assert_eq!(parsed.body_text(), Some("hi"));
    assert_eq!(parsed.message_id.unwrap().as_u64(), Some(sent.message_id));
    assert_eq!(alice.delivered().len(), 1);
    assert!(sim.dropped().is_empty());

    // The request log saw both calls, with no deviations.
    let reqs = sim.requests();
    assert_eq!(reqs.len(), 2);
    assert!(reqs.iter().all(|r| r.problems.is_empty()), "{reqs:?}");
    assert_eq!(reqs[1].json().unwrap()["msg"]["client_id"], "c-1");
}

#[tokio::test]
async fn cursor_advances_and_an_empty_poll_keeps_it() {
    let sim = Sim::start(config()).await.unwrap();
    let bot = sim.create_bot();
    let alice = sim.user("alice@im.wechat");
    alice.send_text(&bot, "one").unwrap();
    let r1 = get_updates(sim.addr(), &bot.token, "").await;
    let c1 = r1["get_updates_buf"].as_str().unwrap().to_owned();
    assert_eq!(r1["msgs"].as_array().unwrap().len(), 1);

    // Nothing new: the poll holds, then answers an empty batch with the same cursor.
    let r2 = get_updates(sim.addr(), &bot.token, &c1).await;
    assert_eq!(r2["msgs"].as_array().unwrap().len(), 0);
    assert_eq!(r2["get_updates_buf"], c1.as_str());

    alice.send_text(&bot, "two").unwrap();
    let r3 = get_updates(sim.addr(), &bot.token, &c1).await;
    let msgs = r3["msgs"].as_array().unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["item_list"][0]["text_item"]["text"], "two");
    assert_eq!(msgs[0]["seq"], 2);
    let c3 = r3["get_updates_buf"].as_str().unwrap();
    assert_ne!(c3, c1);

    // An old cursor replays from where it pointed (the server keeps no per-client state).
    let again = get_updates(sim.addr(), &bot.token, &c1).await;
    assert_eq!(again["msgs"].as_array().unwrap().len(), 1);
    // An empty cursor resumes after what the client confirmed (c1 was sent back).
    let fresh = get_updates(sim.addr(), &bot.token, "").await;
    assert_eq!(fresh["msgs"][0]["item_list"][0]["text_item"]["text"], "two");
}

#[tokio::test]
async fn long_poll_returns_when_a_message_arrives() {
    // A hold far longer than the test: the poll can only finish because of the message.
    let sim = Sim::start(SimConfig::for_tests(Duration::from_secs(60)))
        .await
        .unwrap();
    let bot = sim.create_bot();
    let addr = sim.addr();
    let token = bot.token.clone();
    let poll = tokio::spawn(async move { get_updates(addr, &token, "").await });
    // Wait until the poll reached the server before injecting.
    while sim.requests().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    sim.user("bob@im.wechat")
        .send_text(&bot, "wake up")
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(30), poll)
        .await
        .expect("the poll returned once the message arrived")
        .unwrap();
    assert_eq!(
        resp["msgs"][0]["item_list"][0]["text_item"]["text"],
        "wake up"
    );
    assert_eq!(resp["longpolling_timeout_ms"], 60_000);
}

#[tokio::test]
async fn getupdates_can_carry_ret() {
    let cfg = SimConfig {
        getupdates_ret: true,
        advertise_longpolling_timeout: false,
        ..config()
    };
    let sim = Sim::start(cfg).await.unwrap();
    let bot = sim.create_bot();
    sim.user("a@im.wechat").send_text(&bot, "x").unwrap();
    let r = get_updates(sim.addr(), &bot.token, "").await;
    assert_eq!(r["ret"], 0);
    assert!(r.get("longpolling_timeout_ms").is_none());
}

#[tokio::test]
async fn getconfig_typing_and_notify() {
    let sim = Sim::start(config()).await.unwrap();
    let bot = sim.create_bot();
    let a = sim.addr();
    let t = Some(bot.token.as_str());
    let cfg = post(
        a,
        "getconfig",
        t,
        &json!({"ilink_user_id": "u@im.wechat", "base_info": base_info()}),
    )
    .await
    .unwrap()
    .json();
    assert_eq!(cfg["ret"], 0);
    let ticket = cfg["typing_ticket"].as_str().unwrap().to_owned();
    assert!(!ticket.is_empty());
    let missing = post(a, "getconfig", t, &json!({"base_info": base_info()}))
        .await
        .unwrap()
        .json();
    assert_eq!(
        missing,
        json!({"ret": -2, "errmsg": "ilink_user_id required"})
    );

    let typing = |status: i64, ticket: &str| json!({"ilink_user_id": "u@im.wechat", "typing_ticket": ticket, "status": status, "base_info": base_info()});
    assert_eq!(
        post(a, "sendtyping", t, &typing(1, &ticket))
            .await
            .unwrap()
            .json()["ret"],
        0
    );
    assert_eq!(
        sim.typing_state("u@im.wechat"),
        Some(ilink_sim::TypingState::Typing)
    );
    post(a, "sendtyping", t, &typing(2, &ticket)).await.unwrap();
    assert_eq!(
        sim.typing_state("u@im.wechat"),
        Some(ilink_sim::TypingState::Cancelled)
    );
    // A ticket never issued does not change the state and is recorded as invalid.
    post(a, "sendtyping", t, &typing(1, "bogus")).await.unwrap();
    assert_eq!(
        sim.typing_state("u@im.wechat"),
        Some(ilink_sim::TypingState::Cancelled)
    );
    let ev = sim.typing_events();
    assert_eq!(ev.len(), 3);
    assert!(ev[0].ticket_valid && ev[1].ticket_valid && !ev[2].ticket_valid);

    let ns = post(a, "msg/notifystart", t, &json!({"base_info": base_info()}))
        .await
        .unwrap()
        .json();
    assert_eq!(ns, json!({"ret": 0, "errmsg": ""}));
    post(a, "msg/notifystop", t, &json!({"base_info": base_info()}))
        .await
        .unwrap();
    let st = sim.bot(&bot.bot_id).unwrap();
    assert_eq!((st.notify_started, st.notify_stopped), (1, 1));
}

#[tokio::test]
async fn path_prefix_is_served() {
    let cfg = SimConfig {
        path_prefix: "/prefix".into(),
        ..config()
    };
    let sim = Sim::start(cfg).await.unwrap();
    assert!(sim.base_url().ends_with("/prefix/"));
    let bot = sim.create_bot();
    sim.user("u@im.wechat").send_text(&bot, "p").unwrap();
    let r = post_at(
        sim.addr(),
        "/prefix/ilink/bot/getupdates",
        Some(&bot.token),
        &json!({"get_updates_buf": "", "base_info": base_info()}),
    )
    .await
    .unwrap()
    .json();
    assert_eq!(r["msgs"].as_array().unwrap().len(), 1);
    // Unknown paths are 404.
    let r = request(sim.addr(), "GET", "/nothing", &[], b"")
        .await
        .unwrap();
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn wait_for_delivered_sees_a_reply() {
    let sim = Sim::start(config()).await.unwrap();
    let bot = sim.create_bot();
    let inbound = sim.user("w@im.wechat").send_text(&bot, "q").unwrap();
    let addr = sim.addr();
    let token = bot.token.clone();
    let ctx = inbound.context_token.clone();
    tokio::spawn(async move {
        send(
            addr,
            &token,
            &text_reply("w@im.wechat", Some(&ctx), "cid", "a"),
        )
        .await;
    });
    let d = sim
        .wait_for_delivered("w@im.wechat", 1, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(d[0].text(), Some("a"));
    let none = sim
        .wait_for_delivered("nobody@im.wechat", 1, Duration::from_millis(20))
        .await;
    assert!(matches!(none, Err(ilink_sim::SimError::Timeout(..))));
}

#[tokio::test]
async fn wait_for_rechecks_after_each_request() {
    let sim = Sim::start(config()).await.unwrap();
    let bot = sim.create_bot();
    let addr = sim.addr();
    let token = bot.token.clone();
    tokio::spawn(async move {
        let t = Some(token.as_str());
        let cfg = post(
            addr,
            "getconfig",
            t,
            &json!({"ilink_user_id": "t@im.wechat", "base_info": base_info()}),
        )
        .await
        .unwrap()
        .json();
        let body = json!({"ilink_user_id": "t@im.wechat", "typing_ticket": cfg["typing_ticket"], "status": 1, "base_info": base_info()});
        post(addr, "sendtyping", t, &body).await.unwrap();
    });
    let state = sim
        .wait_for(Duration::from_secs(10), |s| s.typing_state("t@im.wechat"))
        .await
        .unwrap();
    assert_eq!(state, ilink_sim::TypingState::Typing);
    let never = sim
        .wait_for(Duration::from_millis(10), |s| s.typing_state("x@im.wechat"))
        .await;
    assert!(never.is_err());
}

#[tokio::test]
async fn a_taken_port_is_a_bind_error() {
    let sim = Sim::start(config()).await.unwrap();
    let err = Sim::start_on(config(), sim.addr()).await.unwrap_err();
    assert!(matches!(err, ilink_sim::SimError::Bind { addr, .. } if addr == sim.addr()));
    assert!(err.to_string().contains("cannot listen"));
}
