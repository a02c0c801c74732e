//! The admin API over HTTP (what `ilink sim` and child-process tests use).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::*;
use ilink_sim::Sim;
use serde_json::{Value, json};

async fn admin(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let b = body.map(|b| b.to_string()).unwrap_or_default();
    let r = request(
        addr,
        method,
        path,
        &[("content-type", "application/json")],
        b.as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(r.header("content-type"), Some("application/json"));
    (r.status, r.json())
}

#[tokio::test]
async fn scripting_and_reading_over_http() {
    let sim = Sim::start(config()).await.unwrap();
    let a = sim.addr();

    let (s, info) = admin(a, "GET", "/_sim/info", None).await;
    assert_eq!(s, 200);
    assert_eq!(info["base_url"], sim.base_url());
    assert_eq!(info["cdn_base_url"], sim.cdn_base_url());

    let (_, bot) = admin(
        a,
        "POST",
        "/_sim/bots",
        Some(json!({"user_id": "owner@im.wechat"})),
    )
    .await;
    let bot_id = bot["bot_id"].as_str().unwrap().to_owned();
    let token = bot["token"].as_str().unwrap().to_owned();
    let (_, bots) = admin(a, "GET", "/_sim/bots", None).await;
    assert_eq!(bots[0]["bot_id"], bot_id.as_str());
    assert_eq!(bots[0]["stale"], false);

    // A user sends text and an image.
    let (s, inbound) = admin(
        a,
        "POST",
        "/_sim/users/alice%40im.wechat/send",
        Some(json!({"bot_id": bot_id, "kind": "text", "text": "hi"})),
    )
    .await;
    assert_eq!(s, 200, "{inbound}");
    let ctx = inbound["context_token"].as_str().unwrap().to_owned();
    let (s, img) = admin(
        a,
        "POST",
        "/_sim/users/alice@im.wechat/send",
        Some(json!({"bot_id": bot_id, "kind": "image", "data_base64": STANDARD.encode(b"pixels")})),
    )
    .await;
    assert_eq!(s, 200);
    let item = img["message"]["item_list"][0].clone();
    let (_, dl) = admin(a, "POST", "/_sim/download", Some(item)).await;
    assert_eq!(
        STANDARD
            .decode(dl["data_base64"].as_str().unwrap())
            .unwrap(),
        b"pixels"
    );
    let (_, raw) = admin(
        a,
        "POST",
        "/_sim/inject_raw",
        Some(json!({"bot_id": bot_id, "message": {"item_list": [{"type": 0}]}})),
    )
    .await;
    assert_eq!(raw["seq"], 3);
    let polled = get_updates(a, &token, "").await;
    assert_eq!(polled["msgs"].as_array().unwrap().len(), 3);
    assert_eq!(
        admin(a, "GET", "/_sim/inbound", None)
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // The bot replies once well and once badly.
    send(
        a,
        &token,
        &text_reply("alice@im.wechat", Some(&ctx), "c1", "hello"),
    )
    .await;
    send(
        a,
        &token,
        &text_reply("alice@im.wechat", None, "c2", "lost"),
    )
    .await;
    let (_, delivered) = admin(a, "GET", "/_sim/delivered?user=alice%40im.wechat", None).await;
    assert_eq!(delivered.as_array().unwrap().len(), 1);
    assert_eq!(delivered[0]["item"]["text_item"]["text"], "hello");
    assert!(delivered[0]["message_id"].as_u64().unwrap() > 1 << 53);
    let (_, none) = admin(a, "GET", "/_sim/delivered?user=bob%40im.wechat", None).await;
    assert!(none.as_array().unwrap().is_empty());
    let (_, dropped) = admin(a, "GET", "/_sim/dropped", None).await;
    assert_eq!(dropped[0]["reason"], "missing_context_token");
    let (_, reqs) = admin(a, "GET", "/_sim/requests", None).await;
    assert_eq!(reqs.as_array().unwrap().len(), 3);
    admin(a, "DELETE", "/_sim/requests", None).await;
    assert!(sim.requests().is_empty());
    assert!(
        admin(a, "GET", "/_sim/uploads", None)
            .await
            .1
            .as_array()
            .unwrap()
            .is_empty()
    );
    let (_, typing) = admin(a, "GET", "/_sim/typing?user=alice%40im.wechat", None).await;
    assert_eq!(typing, json!({"state": null, "events": []}));

    // Faults.
    let (s, _) = admin(
        a,
        "POST",
        "/_sim/faults",
        Some(json!({"endpoint": "get_updates", "fault": {"kind": "status", "value": 524}, "times": 2})),
    )
    .await;
    assert_eq!(s, 200);
    let (_, pending) = admin(a, "GET", "/_sim/faults", None).await;
    assert_eq!(
        pending,
        json!([{"endpoint": "get_updates", "fault": {"kind": "status", "value": 524}, "times": 2}])
    );
    let r = post(
        a,
        "getupdates",
        Some(&token),
        &json!({"get_updates_buf": "", "base_info": base_info()}),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 524);
    admin(a, "DELETE", "/_sim/faults", None).await;
    assert!(sim.pending_faults().is_empty());

    // Clock and tokens.
    let before = sim.now_ms();
    let (_, now) = admin(
        a,
        "POST",
        "/_sim/clock/advance",
        Some(json!({"ms": 86_400_000u64 * 2})),
    )
    .await;
    assert!(now["now_ms"].as_u64().unwrap() >= before + 172_800_000);
    let r = send(
        a,
        &token,
        &text_reply("alice@im.wechat", Some(&ctx), "c3", "late"),
    )
    .await;
    assert_eq!(r, json!({"ret": -2}));
    let (s, _) = admin(
        a,
        "POST",
        &format!("/_sim/bots/{bot_id}/expire_token"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(get_updates(a, &token, "").await["errcode"], -14);
    let (s, _) = admin(a, "POST", "/_sim/bots/nobody/expire_token", None).await;
    assert_eq!(s, 404);

    // QR scripting.
    admin(
        a,
        "POST",
        "/_sim/qr/script",
        Some(json!({"steps": [{"step": "scan"}, {"step": "confirm", "user_id": "q@im.wechat"}]})),
    )
    .await;
    let qr = request(a, "GET", "/ilink/bot/get_bot_qrcode?bot_type=3", &[], b"")
        .await
        .unwrap()
        .json();
    let code = qr["qrcode"].as_str().unwrap();
    let (_, sessions) = admin(a, "GET", "/_sim/qr/sessions", None).await;
    assert_eq!(sessions[0]["remaining"].as_array().unwrap().len(), 2);
    let (s, _) = admin(
        a,
        "POST",
        &format!("/_sim/qr/sessions/{code}"),
        Some(json!({"step": {"step": "wait"}})),
    )
    .await;
    assert_eq!(s, 200);
    let (_, sessions) = admin(a, "GET", "/_sim/qr/sessions", None).await;
    assert_eq!(sessions[0]["remaining"][2], json!({"step": "wait"}));

    // Errors are JSON too.
    let (s, e) = admin(a, "POST", "/_sim/faults", Some(json!({"nope": 1}))).await;
    assert_eq!(s, 400);
    assert!(e["error"].as_str().unwrap().contains("bad request body"));
    let (s, _) = admin(a, "GET", "/_sim/nothing", None).await;
    assert_eq!(s, 404);
    let (s, e) = admin(
        a,
        "POST",
        "/_sim/users/x@im.wechat/send",
        Some(json!({"bot_id": "ghost@im.bot", "kind": "text", "text": "?"})),
    )
    .await;
    assert_eq!(s, 404);
    assert!(e["error"].as_str().unwrap().contains("unknown bot"));
}
