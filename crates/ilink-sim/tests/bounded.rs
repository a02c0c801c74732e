//! Bounded memory: every list the emulator keeps has a cap in entries and bytes, drops its
//! oldest entries first, and counts what it dropped (`Sim::retention_stats`, `/_sim/memory`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use ilink_sim::{Cap, ListStats, Retention, Sim, SimConfig};
use serde_json::Value;

fn stats(sim: &Sim, name: &str) -> ListStats {
    sim.retention_stats()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap()
}

fn small() -> SimConfig {
    SimConfig {
        retention: Retention::default().with_record_count(5),
        max_logged_requests: 5,
        ..config().without_limits()
    }
}

#[tokio::test]
async fn record_lists_keep_the_newest_and_count_the_rest() {
    let sim = Sim::start(small()).await.unwrap();
    let bot = sim.create_bot();
    let u = sim.user("u@im.wechat");
    let mut ctx = String::new();
    for i in 0..12 {
        ctx = u.send_text(&bot, &format!("in {i}")).unwrap().context_token;
    }
    for i in 0..12 {
        let r = send(
            sim.addr(),
            &bot.token,
            &text_reply(
                "u@im.wechat",
                Some(&ctx),
                &format!("c{i}"),
                &format!("out {i}"),
            ),
        )
        .await;
        assert!(r["message_id"].is_u64(), "{r}");
    }
    let inbound: Vec<String> = sim
        .inbound()
        .iter()
        .map(|i| {
            i.message["item_list"][0]["text_item"]["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(inbound, ["in 7", "in 8", "in 9", "in 10", "in 11"]);
    let delivered: Vec<String> = sim
        .delivered()
        .iter()
        .map(|d| d.text().unwrap().to_owned())
        .collect();
    assert_eq!(delivered, ["out 7", "out 8", "out 9", "out 10", "out 11"]);
    let s = stats(&sim, "delivered");
    assert_eq!((s.len, s.evicted, s.cap_count), (5, 7, 5));
    assert!(s.bytes > 0 && s.evicted_bytes > 0);
    // The request log keeps 5 too (its own setting).
    assert_eq!(sim.requests().len(), 5);
    // Over HTTP as well.
    let r = request(sim.addr(), "GET", "/_sim/memory", &[], b"")
        .await
        .unwrap();
    let list: Vec<Value> = serde_json::from_slice(&r.body).unwrap();
    let inbound = list.iter().find(|s| s["name"] == "inbound").unwrap();
    assert_eq!(inbound["evicted"], 7);
    assert_eq!(inbound["len"], 5);
}

#[tokio::test]
async fn the_byte_cap_applies_as_well_as_the_count() {
    let sim = Sim::start(SimConfig {
        retention: Retention {
            inbound: Cap::new(1000, 20_000),
            ..Retention::default()
        },
        ..config()
    })
    .await
    .unwrap();
    let bot = sim.create_bot();
    let u = sim.user("u@im.wechat");
    for i in 0..20 {
        u.send_text(&bot, &format!("{i:04}{}", "x".repeat(1000)))
            .unwrap();
    }
    let s = stats(&sim, "inbound");
    assert!(s.bytes <= 20_000, "{s:?}");
    assert!(s.len > 1 && s.len < 20, "{s:?}");
    assert_eq!(s.len + s.evicted, 20);
    let newest = sim.inbound().pop().unwrap();
    assert!(
        newest.message["item_list"][0]["text_item"]["text"]
            .as_str()
            .unwrap()
            .starts_with("0019")
    );
}

#[tokio::test]
async fn a_capped_update_stream_keeps_positions_and_serves_the_newest() {
    let sim = Sim::start(SimConfig {
        retention: Retention {
            inbox: Cap::new(3, usize::MAX),
            ..Retention::default()
        },
        ..config()
    })
    .await
    .unwrap();
    let bot = sim.create_bot();
    let u = sim.user("u@im.wechat");
    for i in 0..5 {
        u.send_text(&bot, &format!("m{i}")).unwrap();
    }
    // A fresh client sees only what is kept: the oldest two are gone.
    let r = get_updates(sim.addr(), &bot.token, "").await;
    let texts: Vec<&str> = r["msgs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["item_list"][0]["text_item"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["m2", "m3", "m4"]);
    let seqs: Vec<u64> = r["msgs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [3, 4, 5], "seq stays the absolute position");
    // The cursor resumes after them even though the stream was trimmed.
    let cursor = r["get_updates_buf"].as_str().unwrap().to_owned();
    u.send_text(&bot, "m5").unwrap();
    let r = get_updates(sim.addr(), &bot.token, &cursor).await;
    assert_eq!(r["msgs"].as_array().unwrap().len(), 1);
    assert_eq!(r["msgs"][0]["item_list"][0]["text_item"]["text"], "m5");
    assert_eq!(sim.bot(&bot.bot_id).unwrap().inbox_len, 6);
    let s = stats(&sim, "inbox");
    assert_eq!((s.len, s.evicted), (3, 3));
}

#[tokio::test]
async fn dropped_context_tokens_answer_like_unknown_ones() {
    let sim = Sim::start(SimConfig {
        retention: Retention {
            context_tokens: Cap::new(2, usize::MAX),
            ..Retention::default()
        },
        ..config().without_limits()
    })
    .await
    .unwrap();
    let bot = sim.create_bot();
    let u = sim.user("u@im.wechat");
    let old = u.send_text(&bot, "a").unwrap().context_token;
    u.send_text(&bot, "b").unwrap();
    let new = u.send_text(&bot, "c").unwrap().context_token;
    let r = send(
        sim.addr(),
        &bot.token,
        &text_reply("u@im.wechat", Some(&old), "x1", "hi"),
    )
    .await;
    assert_eq!(r["errmsg"], "prepare failed");
    let r = send(
        sim.addr(),
        &bot.token,
        &text_reply("u@im.wechat", Some(&new), "x2", "hi"),
    )
    .await;
    assert!(r["message_id"].is_u64(), "{r}");
    assert_eq!(stats(&sim, "context_tokens").evicted, 1);
}

#[tokio::test]
async fn remembered_client_ids_are_capped() {
    let sim = Sim::start(SimConfig {
        retention: Retention {
            client_ids: Cap::new(2, usize::MAX),
            ..Retention::default()
        },
        ..config().without_limits()
    })
    .await
    .unwrap();
    let bot = sim.create_bot();
    let ctx = sim
        .user("u@im.wechat")
        .send_text(&bot, "go")
        .unwrap()
        .context_token;
    for cid in ["a", "b", "a", "c"] {
        send(
            sim.addr(),
            &bot.token,
            &text_reply("u@im.wechat", Some(&ctx), cid, "x"),
        )
        .await;
    }
    // "a" was refused as a duplicate while remembered...
    assert_eq!(sim.dropped().len(), 1);
    // ...and after "c" pushed it out, it is accepted again.
    let r = send(
        sim.addr(),
        &bot.token,
        &text_reply("u@im.wechat", Some(&ctx), "a", "x"),
    )
    .await;
    assert!(r["message_id"].is_u64(), "{r}");
    assert_eq!(stats(&sim, "client_ids").evicted, 2);
}

#[test]
fn every_list_has_a_cap_by_default() {
    let r = Retention::default();
    for cap in [
        r.inbound,
        r.delivered,
        r.dropped,
        r.typing_events,
        r.uploads,
        r.inbox,
        r.cdn,
        r.upload_grants,
        r.context_tokens,
        r.client_ids,
        r.qr_sessions,
    ] {
        assert!(cap.count < usize::MAX && cap.bytes < usize::MAX, "{cap:?}");
    }
}
