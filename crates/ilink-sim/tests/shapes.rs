//! What the emulator sends looks like what users captured from the live server
//! (`data/observed-payloads.json`, docs/protocol.md §19), and every public type is usable
//! across threads.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;

use common::*;
use ilink_sim::{QrStep, Sim, SimConfig};
use serde_json::Value;

fn observed(id: &str) -> Value {
    let all: Value = serde_json::from_str(include_str!("data/observed-payloads.json")).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id)
        .unwrap_or_else(|| panic!("no observed payload {id}"))["payload"]
        .clone()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[tokio::test]
async fn getupdates_matches_the_live_capture() {
    let cfg = SimConfig {
        advertise_longpolling_timeout: false,
        ..config()
    };
    let sim = Sim::start(cfg).await.unwrap();
    let bot = sim.create_bot();
    sim.user("o9cq805o_B3ZYI_XRrQaWSHwlCDk@im.wechat")
        .send_text(&bot, "ai")
        .unwrap();
    let ours = get_updates(sim.addr(), &bot.token, "").await;
    let live = observed("getupdates-text-python-log-comment");
    // Same top-level keys: no ret, sync_buf present.
    assert_eq!(keys(&ours), keys(&live));
    // Every key of the live message and item is there, with the same JSON type.
    let (om, lm) = (&ours["msgs"][0], &live["msgs"][0]);
    for k in keys(lm) {
        assert_eq!(
            std::mem::discriminant(&om[&k]),
            std::mem::discriminant(&lm[&k]),
            "message key {k}: ours {} live {}",
            om[&k],
            lm[&k]
        );
    }
    let (oi, li) = (&om["item_list"][0], &lm["item_list"][0]);
    for k in keys(li) {
        assert_eq!(
            std::mem::discriminant(&oi[&k]),
            std::mem::discriminant(&li[&k]),
            "item key {k}"
        );
    }
    // Fields seen live beyond the official types.
    let drift = observed("doc-drift-known-fields");
    for k in ["root_id", "parent_id"] {
        assert!(om.get(k).is_some() && drift.get(k).is_some(), "{k}");
    }
    for k in ["button_item_list", "at_bot_username_list", "msg_id"] {
        assert!(oi.get(k).is_some(), "{k}");
    }
    assert!(oi["msg_id"].as_str().unwrap().starts_with("v1:"));
    // message_id is a bare number above 2^53, like the capture's.
    assert!(lm["message_id"].as_u64().unwrap() > 1 << 53);
    assert!(om["message_id"].as_u64().unwrap() > 1 << 53);
    // The context token is long base64, like the capture's.
    assert!(om["context_token"].as_str().unwrap().len() >= 100);
    // A long server-made client_id.
    assert!(
        om["client_id"]
            .as_str()
            .unwrap()
            .starts_with("mmassistant_bypmsg_inbox_")
    );
}

#[tokio::test]
async fn other_answers_match_the_live_captures() {
    let sim = Sim::start(config()).await.unwrap();
    let qr = request(
        sim.addr(),
        "GET",
        "/ilink/bot/get_bot_qrcode?bot_type=3",
        &[],
        b"",
    )
    .await
    .unwrap()
    .json();
    assert_eq!(keys(&qr), keys(&observed("get-bot-qrcode-curl")));
    let live_link = observed("get-bot-qrcode-curl")["qrcode_img_content"]
        .as_str()
        .unwrap()
        .to_owned();
    let ours_link = qr["qrcode_img_content"].as_str().unwrap();
    assert_eq!(ours_link.split('?').next(), live_link.split('?').next());

    sim.qr().script(vec![QrStep::Confirm {
        user_id: "u@im.wechat".into(),
    }]);
    let code = request(
        sim.addr(),
        "GET",
        "/ilink/bot/get_bot_qrcode?bot_type=3",
        &[],
        b"",
    )
    .await
    .unwrap()
    .json()["qrcode"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = request(
        sim.addr(),
        "GET",
        &format!("/ilink/bot/get_qrcode_status?qrcode={code}"),
        &[],
        b"",
    )
    .await
    .unwrap()
    .json();
    assert_eq!(keys(&done), keys(&observed("doc-qrcode-status-confirmed")));

    let bot = sim.create_bot();
    let r = post(
        sim.addr(),
        "getconfig",
        Some(&bot.token),
        &serde_json::json!({"base_info": base_info()}),
    )
    .await
    .unwrap();
    assert_eq!(r.json(), observed("getconfig-ilink-user-id-required"));
    // JSON served as application/octet-stream, as the live server has done.
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    let stale = post(
        sim.addr(),
        "getupdates",
        None,
        &serde_json::json!({"get_updates_buf": ""}),
    )
    .await
    .unwrap()
    .json();
    // The observed -14 body: errcode without ret.
    assert_eq!(stale["errcode"], -14);
    assert!(stale.get("ret").is_none());
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<ilink_sim::Sim>();
    check::<ilink_sim::ScriptedUser>();
    check::<ilink_sim::SimConfig>();
    check::<ilink_sim::Delivered>();
    check::<ilink_sim::Dropped>();
    check::<ilink_sim::Inbound>();
    check::<ilink_sim::RequestRecord>();
    check::<ilink_sim::UploadRecord>();
    check::<ilink_sim::SimError>();
    check::<ilink_sim::Fault>();
    check::<ilink_sim::QrControl<'static>>();
}

#[tokio::test]
async fn the_request_log_is_bounded() {
    let cfg = SimConfig {
        max_logged_requests: 3,
        ..config()
    };
    let sim = Sim::start(cfg).await.unwrap();
    for _ in 0..5 {
        request(
            sim.addr(),
            "GET",
            "/ilink/bot/get_bot_qrcode?bot_type=3",
            &[],
            b"",
        )
        .await
        .unwrap();
    }
    let log = sim.requests();
    let ids: Vec<u64> = log.iter().map(|r| r.id).collect();
    assert_eq!(ids, [2, 3, 4]);
}
