//! The emulator answers malformed requests as the live server does, and records why
//! a message was not delivered.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use ilink_sim::{DropReason, Sim, SimConfig};
use serde_json::{Value, json};

struct Fx {
    sim: Sim,
    token: String,
    ctx: String,
}

async fn fx(cfg: SimConfig) -> Fx {
    let sim = Sim::start(cfg).await.unwrap();
    let bot = sim.create_bot();
    let ctx = sim
        .user("u@im.wechat")
        .send_text(&bot, "hello")
        .unwrap()
        .context_token;
    Fx {
        sim,
        token: bot.token,
        ctx,
    }
}

fn good(ctx: &str, cid: &str) -> Value {
    text_reply("u@im.wechat", Some(ctx), cid, "reply")
}

/// Sends `body`, asserts the answer and that exactly one drop with `reason` was recorded.
async fn expect_drop(f: &Fx, body: Value, answer: Value, reason: DropReason) {
    let before = f.sim.dropped().len();
    let got = send(f.sim.addr(), &f.token, &body).await;
    assert_eq!(got, answer, "answer for {reason:?}");
    let dropped = f.sim.dropped();
    assert_eq!(dropped.len(), before + 1, "one drop for {reason:?}");
    let d = dropped.last().unwrap();
    assert_eq!(d.reason, reason);
    assert_eq!(d.answered, answer);
    assert!(
        f.sim.delivered().is_empty(),
        "{reason:?} must not be delivered"
    );
}

#[tokio::test]
async fn malformed_sendmessage_is_answered_like_the_server_and_recorded() {
    let f = fx(config()).await;
    let ok0 = json!({"ret": 0});
    let invalid = json!({"ret": -2, "errmsg": "invalid arguments"});

    let mut b = good(&f.ctx, "c1");
    b.as_object_mut().unwrap().remove("base_info");
    expect_drop(&f, b, ok0.clone(), DropReason::MissingBaseInfo).await;

    let mut b = good(&f.ctx, "c2");
    b["msg"]["from_user_id"] = json!("bot@im.bot");
    expect_drop(&f, b, ok0.clone(), DropReason::FromUserIdNotEmpty).await;

    let mut b = good(&f.ctx, "c3");
    b["msg"].as_object_mut().unwrap().remove("from_user_id");
    expect_drop(&f, b, ok0.clone(), DropReason::FromUserIdNotEmpty).await;

    let mut b = good(&f.ctx, "c4");
    b["msg"].as_object_mut().unwrap().remove("client_id");
    expect_drop(&f, b, ok0.clone(), DropReason::MissingClientId).await;

    let mut b = good(&f.ctx, "c5");
    b["msg"]["message_type"] = json!(1);
    expect_drop(&f, b, ok0.clone(), DropReason::WrongMessageType).await;

    let mut b = good(&f.ctx, "c6");
    b["msg"]["message_state"] = json!(1);
    expect_drop(&f, b, ok0.clone(), DropReason::WrongMessageState).await;

    let mut b = good(&f.ctx, "c7");
    b["msg"]["to_user_id"] = json!("");
    expect_drop(&f, b, invalid.clone(), DropReason::MissingRecipient).await;

    let mut b = good(&f.ctx, "c8");
    b["msg"].as_object_mut().unwrap().remove("item_list");
    expect_drop(&f, b, ok0.clone(), DropReason::NoItems).await;

    let mut b = good(&f.ctx, "c9");
    b["msg"]["item_list"] = json!([
        {"type": 1, "text_item": {"text": "a"}},
        {"type": 1, "text_item": {"text": "b"}}
    ]);
    expect_drop(&f, b, invalid.clone(), DropReason::MultipleItems).await;

    let mut b = good(&f.ctx, "c10");
    b["msg"]["item_list"] = json!([{"type": 2, "text_item": {"text": "a"}}]);
    expect_drop(&f, b, invalid.clone(), DropReason::InvalidItem).await;

    let mut b = good(&f.ctx, "c11");
    b["msg"].as_object_mut().unwrap().remove("context_token");
    expect_drop(&f, b, json!({"ret": -2}), DropReason::MissingContextToken).await;

    let b = good("AARzJWAFAAABAAAAnotissued", "c12");
    expect_drop(
        &f,
        b,
        json!({"ret": -2, "errmsg": "prepare failed"}),
        DropReason::InvalidContextToken,
    )
    .await;

    expect_drop(
        &f,
        json!({"base_info": base_info()}),
        invalid.clone(),
        DropReason::MissingMsg,
    )
    .await;

    // Not JSON at all.
    let r = post_raw(&f, b"{not json").await;
    assert_eq!(r, invalid);
    assert_eq!(
        f.sim.dropped().last().unwrap().reason,
        DropReason::MalformedJson
    );

    // Every drop kept the raw request for inspection.
    let dropped = f.sim.dropped();
    assert_eq!(dropped.len(), 14);
    assert!(dropped[..12].iter().all(|d| d.raw["msg"].is_object()));
    assert!(dropped[..12].iter().all(|d| d.to_user_id.is_some()));
    assert_eq!(dropped[13].raw, Value::Null);
}

async fn post_raw(f: &Fx, body: &[u8]) -> Value {
    let bearer = format!("Bearer {}", f.token);
    request(
        f.sim.addr(),
        "POST",
        "/ilink/bot/sendmessage",
        &[
            ("content-type", "application/json"),
            ("authorizationtype", "ilink_bot_token"),
            ("authorization", &bearer),
            ("x-wechat-uin", "MjczNTkyMDUxNA=="),
            ("ilink-app-id", "bot"),
            ("ilink-app-clientversion", "132105"),
        ],
        body,
    )
    .await
    .unwrap()
    .json()
}

#[tokio::test]
async fn context_token_of_another_user_is_rejected() {
    let f = fx(config()).await;
    let bot2 = f.sim.bots()[0].account.clone();
    let other = f
        .sim
        .user("v@im.wechat")
        .send_text(&bot2, "x")
        .unwrap()
        .context_token;
    // u's reply carrying v's token.
    let b = text_reply("u@im.wechat", Some(&other), "cx", "r");
    let got = send(f.sim.addr(), &f.token, &b).await;
    assert_eq!(got["ret"], -2);
    assert_eq!(f.sim.dropped()[0].reason, DropReason::InvalidContextToken);
}

#[tokio::test]
async fn duplicate_client_id_is_delivered_once() {
    let f = fx(config()).await;
    let first = send(f.sim.addr(), &f.token, &good(&f.ctx, "same")).await;
    assert!(first["message_id"].is_u64());
    let second = send(f.sim.addr(), &f.token, &good(&f.ctx, "same")).await;
    assert_eq!(second, json!({"ret": 0}));
    assert_eq!(f.sim.delivered().len(), 1);
    assert_eq!(f.sim.dropped()[0].reason, DropReason::DuplicateClientId);
}

#[tokio::test]
async fn missing_or_bad_token_answers_minus_14() {
    let f = fx(config()).await;
    let a = f.sim.addr();
    let stale = json!({"errcode": -14, "errmsg": "session timeout"});
    // No token.
    let r = post(
        a,
        "getupdates",
        None,
        &json!({"get_updates_buf": "", "base_info": base_info()}),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), stale);
    // Unknown token.
    let r = post(
        a,
        "getupdates",
        Some("nope"),
        &json!({"get_updates_buf": "", "base_info": base_info()}),
    )
    .await
    .unwrap();
    assert_eq!(r.json(), stale);
    // Right token, wrong AuthorizationType.
    let bearer = format!("Bearer {}", f.token);
    let r = request(
        a,
        "POST",
        "/ilink/bot/getconfig",
        &[
            ("content-type", "application/json"),
            ("authorization", &bearer),
        ],
        json!({"ilink_user_id": "u@im.wechat", "base_info": base_info()})
            .to_string()
            .as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(r.json(), stale);
    // A sendmessage with a bad token looks fine to the official client (errcode is not
    // checked there), so it is recorded as dropped.
    let got = send(a, "nope", &good(&f.ctx, "z")).await;
    assert_eq!(got, stale);
    assert_eq!(
        f.sim.dropped().last().unwrap().reason,
        DropReason::StaleToken
    );
    // The request log names the problems.
    let reqs = f.sim.requests();
    assert!(reqs[0].problems.iter().any(|p| p.contains("no bot token")));
    assert!(
        reqs[2]
            .problems
            .iter()
            .any(|p| p.contains("AuthorizationType"))
    );
    assert!(reqs[2].problems.iter().any(|p| p.contains("X-WECHAT-UIN")));
}

#[tokio::test]
async fn sending_without_context_token_can_be_allowed() {
    let cfg = SimConfig {
        require_context_token: false,
        ..config()
    };
    let f = fx(cfg).await;
    let got = send(
        f.sim.addr(),
        &f.token,
        &text_reply("u@im.wechat", None, "n1", "hi"),
    )
    .await;
    assert!(got["message_id"].is_u64());
    // But a user who never wrote still cannot be reached (no conversation).
    let got = send(
        f.sim.addr(),
        &f.token,
        &text_reply("stranger@im.wechat", None, "n2", "hi"),
    )
    .await;
    assert_eq!(got, json!({"ret": -2}));
    assert_eq!(f.sim.dropped()[0].reason, DropReason::ReplyWindowExpired);
}

#[tokio::test]
async fn header_deviations_are_listed() {
    let f = fx(config()).await;
    let bearer = format!("Bearer {}", f.token);
    let body = json!({"get_updates_buf": "", "base_info": base_info()}).to_string();
    request(
        f.sim.addr(),
        "POST",
        "/ilink/bot/getupdates",
        &[
            ("content-type", "application/json"),
            ("authorizationtype", "ilink_bot_token"),
            ("authorization", &bearer),
            ("x-wechat-uin", "not base64!"),
        ],
        body.as_bytes(),
    )
    .await
    .unwrap();
    let p = &f.sim.requests()[0].problems;
    assert!(
        p.iter().any(|x| x.contains("X-WECHAT-UIN is not base64")),
        "{p:?}"
    );
    assert!(p.iter().any(|x| x.contains("iLink-App-Id")), "{p:?}");
    assert!(
        p.iter().any(|x| x.contains("iLink-App-ClientVersion")),
        "{p:?}"
    );
    // A GET on a POST endpoint is refused.
    let r = request(f.sim.addr(), "GET", "/ilink/bot/sendmessage", &[], b"")
        .await
        .unwrap();
    assert_eq!(r.status, 405);
}
