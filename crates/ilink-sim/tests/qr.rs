//! The QR login state machine with scripted outcomes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;

use common::*;
use ilink_sim::{QrStep, Sim};
use serde_json::{Value, json};

const APP_HEADERS: [(&str, &str); 2] = [
    ("ilink-app-id", "bot"),
    ("ilink-app-clientversion", "132105"),
];

async fn issue(addr: SocketAddr) -> Value {
    let r = request(
        addr,
        "POST",
        "/ilink/bot/get_bot_qrcode?bot_type=3",
        &[
            ("content-type", "application/json"),
            ("ilink-app-id", "bot"),
            ("ilink-app-clientversion", "132105"),
        ],
        br#"{"local_token_list":[]}"#,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    r.json()
}

async fn poll_at(addr: SocketAddr, qrcode: &str, code: Option<&str>) -> Value {
    let mut target = format!("/ilink/bot/get_qrcode_status?qrcode={}", urlenc(qrcode));
    if let Some(c) = code {
        target.push_str(&format!("&verify_code={}", urlenc(c)));
    }
    request(addr, "GET", &target, &APP_HEADERS, b"")
        .await
        .unwrap()
        .json()
}

fn status(v: &Value) -> &str {
    v["status"].as_str().unwrap()
}

#[tokio::test]
async fn default_script_confirms_and_provisions_a_bot() {
    let sim = Sim::start(config()).await.unwrap();
    let qr = issue(sim.addr()).await;
    let code = qr["qrcode"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 32);
    assert_eq!(qr["ret"], 0);
    assert_eq!(
        qr["qrcode_img_content"],
        format!("https://liteapp.weixin.qq.com/q/7GiQu1?qrcode={code}&bot_type=3")
    );
    let a = sim.addr();
    assert_eq!(status(&poll_at(a, &code, None).await), "wait");
    assert_eq!(status(&poll_at(a, &code, None).await), "scaned");
    let done = poll_at(a, &code, None).await;
    assert_eq!(status(&done), "confirmed");
    let bot_id = done["ilink_bot_id"].as_str().unwrap();
    assert!(bot_id.ends_with("@im.bot"));
    assert_eq!(done["baseurl"], sim.base_url().trim_end_matches('/'));
    assert_eq!(done["ilink_user_id"], "o9sim_default_user@im.wechat");
    // The token works.
    let token = done["bot_token"].as_str().unwrap();
    assert!(get_updates(a, token, "").await.get("errcode").is_none());
    assert_eq!(
        sim.bot(bot_id).unwrap().account.user_id.as_deref(),
        Some("o9sim_default_user@im.wechat")
    );
    // A confirmed code stays confirmed.
    assert_eq!(poll_at(a, &code, None).await, done);
    // The official poll carries no problems.
    assert!(
        sim.requests().iter().all(|r| r.problems.is_empty()),
        "{:?}",
        sim.requests()
    );
}

#[tokio::test]
async fn get_bot_qrcode_also_answers_get() {
    let sim = Sim::start(config()).await.unwrap();
    let r = request(
        sim.addr(),
        "GET",
        "/ilink/bot/get_bot_qrcode?bot_type=3",
        &[],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(r.json()["qrcode"].as_str().unwrap().len(), 32);
    assert_eq!(sim.qr().sessions().len(), 1);
}

#[tokio::test]
async fn verify_code_right_and_wrong() {
    let sim = Sim::start(config()).await.unwrap();
    sim.qr().script(vec![
        QrStep::Scan,
        QrStep::NeedVerifyCode {
            code: "482913".into(),
        },
        QrStep::Confirm {
            user_id: "v@im.wechat".into(),
        },
    ]);
    let a = sim.addr();
    let code = issue(a).await["qrcode"].as_str().unwrap().to_owned();
    assert_eq!(status(&poll_at(a, &code, None).await), "scaned");
    assert_eq!(status(&poll_at(a, &code, None).await), "need_verifycode");
    assert_eq!(status(&poll_at(a, &code, None).await), "need_verifycode");
    assert_eq!(
        status(&poll_at(a, &code, Some("000000")).await),
        "need_verifycode"
    );
    assert_eq!(status(&poll_at(a, &code, Some("482913")).await), "scaned");
    let done = poll_at(a, &code, None).await;
    assert_eq!(status(&done), "confirmed");
    assert_eq!(done["ilink_user_id"], "v@im.wechat");
}

#[tokio::test]
async fn too_many_wrong_codes_block() {
    let sim = Sim::start(config()).await.unwrap();
    sim.qr().script(vec![
        QrStep::NeedVerifyCode { code: "1".into() },
        QrStep::Confirm {
            user_id: "x@im.wechat".into(),
        },
    ]);
    let a = sim.addr();
    let code = issue(a).await["qrcode"].as_str().unwrap().to_owned();
    assert_eq!(status(&poll_at(a, &code, None).await), "need_verifycode");
    assert_eq!(
        status(&poll_at(a, &code, Some("2")).await),
        "need_verifycode"
    );
    assert_eq!(
        status(&poll_at(a, &code, Some("3")).await),
        "need_verifycode"
    );
    assert_eq!(
        status(&poll_at(a, &code, Some("4")).await),
        "verify_code_blocked"
    );
    // Final: even the right code cannot revive it.
    assert_eq!(
        status(&poll_at(a, &code, Some("1")).await),
        "verify_code_blocked"
    );
    assert!(sim.bots().is_empty());
}

#[tokio::test]
async fn final_outcomes() {
    let sim = Sim::start(config()).await.unwrap();
    let a = sim.addr();
    for (step, want) in [
        (QrStep::Expire, "expired"),
        (QrStep::VerifyCodeBlocked, "verify_code_blocked"),
        (QrStep::BindedRedirect, "binded_redirect"),
    ] {
        sim.qr().script(vec![QrStep::Wait, step]);
        let code = issue(a).await["qrcode"].as_str().unwrap().to_owned();
        assert_eq!(status(&poll_at(a, &code, None).await), "wait");
        let v = poll_at(a, &code, None).await;
        assert_eq!(v, json!({"status": want}));
        assert_eq!(poll_at(a, &code, None).await, v, "{want} is final");
    }
    assert!(sim.bots().is_empty());
    // A code the server never issued is expired.
    assert_eq!(status(&poll_at(a, "nope", None).await), "expired");
}

#[tokio::test]
async fn redirect_points_at_the_emulator_itself() {
    let sim = Sim::start(config()).await.unwrap();
    sim.qr().script(vec![
        QrStep::Redirect,
        QrStep::Confirm {
            user_id: "r@im.wechat".into(),
        },
    ]);
    let code = issue(sim.addr()).await["qrcode"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = poll_at(sim.addr(), &code, None).await;
    assert_eq!(r["status"], "scaned_but_redirect");
    assert_eq!(r["redirect_host"], sim.host());
    // Polling continues at http://<redirect_host>.
    let host: SocketAddr = r["redirect_host"].as_str().unwrap().parse().unwrap();
    assert_eq!(status(&poll_at(host, &code, None).await), "confirmed");
}

#[tokio::test]
async fn phone_actions_drive_a_live_code() {
    let sim = Sim::start(config()).await.unwrap();
    sim.qr().script(vec![]);
    let a = sim.addr();
    let code = issue(a).await["qrcode"].as_str().unwrap().to_owned();
    assert_eq!(status(&poll_at(a, &code, None).await), "wait");
    assert_eq!(status(&poll_at(a, &code, None).await), "wait");
    assert!(sim.qr().act(&code, QrStep::Scan));
    assert_eq!(status(&poll_at(a, &code, None).await), "scaned");
    assert_eq!(
        status(&poll_at(a, &code, None).await),
        "scaned",
        "the last status repeats"
    );
    assert!(sim.qr().act(
        &code,
        QrStep::Confirm {
            user_id: "p@im.wechat".into()
        }
    ));
    assert_eq!(status(&poll_at(a, &code, None).await), "confirmed");
    assert!(!sim.qr().act("unknown", QrStep::Scan));
    let s = &sim.qr().sessions()[0];
    assert_eq!(s.status, "confirmed");
    assert_eq!(s.polls, 5);
    assert!(s.bot_id.is_some());
}

#[tokio::test]
async fn a_second_login_of_the_same_user_stales_the_first_bot() {
    let sim = Sim::start(config()).await.unwrap();
    let a = sim.addr();
    let mut tokens = Vec::new();
    for _ in 0..2 {
        sim.qr().script(vec![QrStep::Confirm {
            user_id: "same@im.wechat".into(),
        }]);
        let code = issue(a).await["qrcode"].as_str().unwrap().to_owned();
        let done = poll_at(a, &code, None).await;
        tokens.push(done["bot_token"].as_str().unwrap().to_owned());
    }
    assert_eq!(get_updates(a, &tokens[0], "").await["errcode"], -14);
    assert!(
        get_updates(a, &tokens[1], "")
            .await
            .get("errcode")
            .is_none()
    );
}

async fn issue_with(addr: SocketAddr, tokens: &[&str]) -> String {
    let body = json!({"local_token_list": tokens}).to_string();
    let r = request(
        addr,
        "POST",
        "/ilink/bot/get_bot_qrcode?bot_type=3",
        &[
            ("content-type", "application/json"),
            ("ilink-app-id", "bot"),
            ("ilink-app-clientversion", "132105"),
        ],
        body.as_bytes(),
    )
    .await
    .unwrap();
    r.json()["qrcode"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_client_holding_the_users_token_gets_binded_redirect() {
    let sim = Sim::start(config()).await.unwrap();
    let a = sim.addr();
    let bound = sim.create_bot_for("me@im.wechat");
    let stranger = sim.create_bot_for("other@im.wechat");
    sim.qr().script(vec![QrStep::Confirm {
        user_id: "me@im.wechat".into(),
    }]);
    let code = issue_with(a, &[&stranger.token, &bound.token]).await;
    assert_eq!(
        poll_at(a, &code, None).await,
        json!({"status": "binded_redirect"})
    );
    // Nothing provisioned, the bound bot keeps working.
    assert_eq!(sim.bots().len(), 2);
    assert!(
        get_updates(a, &bound.token, "")
            .await
            .get("errcode")
            .is_none()
    );
    // Without the token in local_token_list, the same user gets a new bot.
    sim.qr().script(vec![QrStep::Confirm {
        user_id: "me@im.wechat".into(),
    }]);
    let code = issue_with(a, &[&stranger.token]).await;
    assert_eq!(poll_at(a, &code, None).await["status"], "confirmed");
    assert_eq!(sim.bots().len(), 3);
    assert_eq!(get_updates(a, &bound.token, "").await["errcode"], -14);
}
