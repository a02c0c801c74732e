//! Every fault kind, injected with a count, on the endpoints where it matters.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io;
use std::time::Duration;

use common::*;
use ilink_sim::{DropReason, Endpoint, Fault, Sim};
use serde_json::json;

fn updates_body(cursor: &str) -> serde_json::Value {
    json!({"get_updates_buf": cursor, "base_info": base_info()})
}

#[tokio::test]
async fn http_status_faults_are_counted() {
    let sim = Sim::start(config()).await.unwrap();
    let bot = sim.create_bot();
    sim.inject_fault(Endpoint::GetUpdates, Fault::Status(500), 2);
    sim.inject_fault(Endpoint::GetUpdates, Fault::gateway_timeout(), 1);
    let a = sim.addr();
    let t = Some(bot.token.as_str());
    let s1 = post(a, "getupdates", t, &updates_body("")).await.unwrap();
    let s2 = post(a, "getupdates", t, &updates_body("")).await.unwrap();
    let s3 = post(a, "getupdates", t, &updates_body("")).await.unwrap();
    let s4 = post(a, "getupdates", t, &updates_body("")).await.unwrap();
    assert_eq!(
        (s1.status, s2.status, s3.status, s4.status),
        (500, 500, 524, 200)
    );
    assert!(s3.text().contains("524"));
    assert!(s4.json()["get_updates_buf"].is_string());
    assert!(sim.pending_faults().is_empty());
    // Faults are per endpoint: other endpoints were not affected.
    sim.inject_fault(Endpoint::GetConfig, Fault::Status(502), 1);
    assert_eq!(
        post(a, "getupdates", t, &updates_body(""))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(sim.pending_faults().len(), 1);
}

#[tokio::test]
async fn stale_token_and_overloaded_bodies() {
    let sim = Sim::start(config()).await.unwrap();
    let bot = sim.create_bot();
    let ctx = sim
        .user("u@im.wechat")
        .send_text(&bot, "q")
        .unwrap()
        .context_token;
    sim.inject_fault(Endpoint::GetUpdates, Fault::StaleToken, 1);
    let r = get_updates(sim.addr(), &bot.token, "").await;
    assert_eq!(r, json!({"errcode": -14, "errmsg": "session timeout"}));
    // The token itself is still fine.
    assert_eq!(
        get_updates(sim.addr(), &bot.token, "").await["msgs"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    sim.inject_fault(Endpoint::SendMessage, Fault::Overloaded(None), 1);
    sim.inject_fault(
        Endpoint::SendMessage,
        Fault::Overloaded(Some("prepare failed".into())),
        1,
    );
    let b = text_reply("u@im.wechat", Some(&ctx), "c1", "x");
    assert_eq!(send(sim.addr(), &bot.token, &b).await, json!({"ret": -2}));
    assert_eq!(
        send(sim.addr(), &bot.token, &b).await,
        json!({"ret": -2, "errmsg": "prepare failed"})
    );
    // Neither was processed; both are on record.
    let d = sim.dropped();
    assert_eq!(d.len(), 2);
    assert!(d.iter().all(|d| d.reason == DropReason::InjectedFault));
    // A retry with the same client_id now goes through.
    assert!(send(sim.addr(), &bot.token, &b).await["message_id"].is_u64());
}

#[tokio::test]
async fn any_json_answer() {
    let sim = Sim::start(config()).await.unwrap();
    let bot = sim.create_bot();
    sim.inject_fault(Endpoint::GetUploadUrl, Fault::Json(json!({"ret": -1})), 1);
    let r = post(
        sim.addr(),
        "getuploadurl",
        Some(&bot.token),
        &json!({"base_info": base_info()}),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"ret": -1}));
}

#[tokio::test]
async fn latency_delays_then_answers() {
    let sim = Sim::start(config()).await.unwrap();
    let bot = sim.create_bot();
    sim.user("u@im.wechat").send_text(&bot, "q").unwrap();
    sim.inject_fault(
        Endpoint::GetUpdates,
        Fault::Latency(Duration::from_millis(30)),
        1,
    );
    let r = get_updates(sim.addr(), &bot.token, "").await;
    assert_eq!(r["msgs"].as_array().unwrap().len(), 1);
    assert!(sim.pending_faults().is_empty());
}

#[tokio::test]
async fn latency_composes_with_a_late_gateway_timeout() {
    let sim = Sim::start(config()).await.unwrap();
    let bot = sim.create_bot();
    sim.inject_fault(
        Endpoint::GetUpdates,
        Fault::Latency(Duration::from_millis(20)),
        2,
    );
    sim.inject_fault(Endpoint::GetUpdates, Fault::gateway_timeout(), 1);
    let a = sim.addr();
    let t = Some(bot.token.as_str());
    // First poll: one latency, then the 524 (not both latencies).
    assert_eq!(
        post(a, "getupdates", t, &updates_body(""))
            .await
            .unwrap()
            .status,
        524
    );
    // Second poll: the remaining latency, then a normal answer.
    assert_eq!(
        post(a, "getupdates", t, &updates_body(""))
            .await
            .unwrap()
            .status,
        200
    );
    assert!(sim.pending_faults().is_empty());
}

#[tokio::test]
async fn connection_reset_sends_no_response_but_the_message_was_delivered() {
    let sim = Sim::start(config()).await.unwrap();
    let bot = sim.create_bot();
    let ctx = sim
        .user("u@im.wechat")
        .send_text(&bot, "q")
        .unwrap()
        .context_token;
    sim.inject_fault(Endpoint::SendMessage, Fault::ConnectionReset, 1);
    let b = text_reply("u@im.wechat", Some(&ctx), "lost-answer", "x");
    let err = post(sim.addr(), "sendmessage", Some(&bot.token), &b)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
        ),
        "{err:?}"
    );
    // The response was lost, not the message: a retry with the same client_id is a duplicate.
    assert_eq!(sim.delivered().len(), 1);
    assert_eq!(send(sim.addr(), &bot.token, &b).await, json!({"ret": 0}));
    assert_eq!(sim.dropped()[0].reason, DropReason::DuplicateClientId);
}

#[tokio::test]
async fn truncated_and_empty_bodies() {
    let sim = Sim::start(config()).await.unwrap();
    let bot = sim.create_bot();
    sim.user("u@im.wechat").send_text(&bot, "q").unwrap();
    sim.inject_fault(Endpoint::GetUpdates, Fault::TruncatedBody, 1);
    sim.inject_fault(Endpoint::GetUpdates, Fault::EmptyBody, 1);
    let a = sim.addr();
    let t = Some(bot.token.as_str());
    let err = post(a, "getupdates", t, &updates_body(""))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err:?}");
    let empty = post(a, "getupdates", t, &updates_body("")).await.unwrap();
    assert_eq!(empty.status, 200);
    assert!(empty.body.is_empty());
    // The client never got a cursor, so the next poll delivers the message again.
    let r = get_updates(a, &bot.token, "").await;
    assert_eq!(r["msgs"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn duplicate_batch_and_duplicate_message() {
    let sim = Sim::start(config()).await.unwrap();
    let bot = sim.create_bot();
    let u = sim.user("u@im.wechat");
    // Queued before any message: waits for a non-empty batch.
    sim.inject_fault(Endpoint::GetUpdates, Fault::DuplicateBatch, 1);
    let empty = get_updates(sim.addr(), &bot.token, "").await;
    assert_eq!(empty["msgs"].as_array().unwrap().len(), 0);
    assert_eq!(sim.pending_faults().len(), 1);
    let c0 = empty["get_updates_buf"].as_str().unwrap().to_owned();

    let sent = u.send_text(&bot, "once").unwrap();
    let r1 = get_updates(sim.addr(), &bot.token, &c0).await;
    assert_eq!(r1["msgs"][0]["message_id"].as_u64(), Some(sent.message_id));
    // The cursor did not advance, so the same message comes again.
    assert_eq!(r1["get_updates_buf"], c0.as_str());
    let r2 = get_updates(
        sim.addr(),
        &bot.token,
        r1["get_updates_buf"].as_str().unwrap(),
    )
    .await;
    assert_eq!(r2["msgs"][0]["message_id"].as_u64(), Some(sent.message_id));
    let c2 = r2["get_updates_buf"].as_str().unwrap().to_owned();
    assert_ne!(c2, c0);

    sim.inject_fault(Endpoint::GetUpdates, Fault::DuplicateMessage, 1);
    let sent = u.send_text(&bot, "twice").unwrap();
    let r3 = get_updates(sim.addr(), &bot.token, &c2).await;
    let msgs = r3["msgs"].as_array().unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0]["message_id"].as_u64(), Some(sent.message_id));
    assert_eq!(msgs[0], msgs[1]);
}

#[tokio::test]
async fn cdn_upload_without_encrypted_param_then_success() {
    // A raw grant outside any conversation: the context-token rule is not under test here.
    let cfg = ilink_sim::SimConfig {
        upload_requires_context_token: None,
        ..config()
    };
    let sim = Sim::start(cfg).await.unwrap();
    let bot = sim.create_bot();
    let plain = b"0123456789abcdef-media".to_vec();
    let key = ilink_crypto::MediaKey::from_bytes([7; 16]);
    let ct = ilink_crypto::encrypt(&key, &plain);
    let up = post(
        sim.addr(),
        "getuploadurl",
        Some(&bot.token),
        &json!({
            "filekey": "b8cde5c4e26d499b948bbf5979b2451c", "media_type": 3, "to_user_id": "u@im.wechat",
            "rawsize": plain.len(), "rawfilemd5": ilink_crypto::md5_hex(&plain),
            "filesize": ct.len(), "no_need_thumb": true, "aeskey": key.to_hex(), "base_info": base_info()
        }),
    )
    .await
    .unwrap()
    .json();
    let param = up["upload_param"].as_str().unwrap().to_owned();
    let target = format!(
        "/c2c/upload?encrypted_query_param={}&filekey=b8cde5c4e26d499b948bbf5979b2451c",
        urlenc(&param)
    );
    sim.inject_fault(Endpoint::CdnUpload, Fault::MissingEncryptedParam, 1);
    sim.inject_fault(Endpoint::CdnUpload, Fault::Status(500), 1);
    let h = [("content-type", "application/octet-stream")];
    let r1 = request(sim.addr(), "POST", &target, &h, &ct).await.unwrap();
    assert_eq!(r1.status, 200);
    assert!(r1.header("x-encrypted-param").is_none());
    let r2 = request(sim.addr(), "POST", &target, &h, &ct).await.unwrap();
    assert_eq!(r2.status, 500);
    let r3 = request(sim.addr(), "POST", &target, &h, &ct).await.unwrap();
    assert_eq!(r3.status, 200);
    assert!(r3.header("x-encrypted-param").is_some());
}
