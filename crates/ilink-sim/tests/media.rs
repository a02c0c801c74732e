//! Media: getuploadurl, CDN upload checks, media in sent messages, inbound media with
//! the live key encodings, downloads.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::*;
use ilink_crypto::MediaKey;
use ilink_sim::{BurstPolicy, Cap, DropReason, Retention, Sim, SimConfig, UploadUrlMode};
use serde_json::{Value, json};

const FILEKEY: &str = "b8cde5c4e26d499b948bbf5979b2451c";

/// Most tests here check the upload rules with raw requests outside any conversation, so
/// the context-token rule of the grant is off; `the_upload_grant_needs_the_chats_context_token`
/// tests it.
fn config() -> SimConfig {
    SimConfig {
        upload_requires_context_token: None,
        ..common::config()
    }
}

fn upload_req(plain: &[u8], key: &MediaKey, media_type: u64) -> Value {
    json!({
        "filekey": FILEKEY, "media_type": media_type, "to_user_id": "u@im.wechat",
        "rawsize": plain.len(), "rawfilemd5": ilink_crypto::md5_hex(plain),
        "filesize": ilink_crypto::ciphertext_len(plain.len() as u64), "no_need_thumb": true,
        "aeskey": key.to_hex(), "base_info": base_info()
    })
}

async fn get_upload_url(sim: &Sim, token: &str, body: &Value) -> Value {
    post(sim.addr(), "getuploadurl", Some(token), body)
        .await
        .unwrap()
        .json()
}

/// The upload target the official client would use for a getuploadurl answer.
fn upload_target(answer: &Value, filekey: &str) -> String {
    match answer.get("upload_full_url").and_then(Value::as_str) {
        Some(full) if !full.trim().is_empty() => target_of(full),
        _ => format!(
            "/c2c/upload?encrypted_query_param={}&filekey={}",
            urlenc(answer["upload_param"].as_str().unwrap()),
            urlenc(filekey)
        ),
    }
}

async fn upload(sim: &Sim, target: &str, body: &[u8]) -> Resp {
    request(
        sim.addr(),
        "POST",
        target,
        &[("content-type", "application/octet-stream")],
        body,
    )
    .await
    .unwrap()
}

/// getuploadurl + CDN upload; returns the download param.
async fn upload_ok(sim: &Sim, token: &str, plain: &[u8], key: &MediaKey) -> String {
    let ans = get_upload_url(sim, token, &upload_req(plain, key, 1)).await;
    let r = upload(
        sim,
        &upload_target(&ans, FILEKEY),
        &ilink_crypto::encrypt(key, plain),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.header("x-encrypted-param").unwrap().to_owned()
}

#[tokio::test]
async fn getuploadurl_alternates_between_param_and_full_url() {
    let sim = Sim::start(config()).await.unwrap();
    let bot = sim.create_bot();
    let key = MediaKey::from_bytes([1; 16]);
    let plain = vec![42u8; 100];
    let a1 = get_upload_url(&sim, &bot.token, &upload_req(&plain, &key, 1)).await;
    let a2 = get_upload_url(&sim, &bot.token, &upload_req(&plain, &key, 1)).await;
    assert!(
        a1["upload_param"].is_string() && a1.get("upload_full_url").is_none(),
        "{a1}"
    );
    assert_eq!(a1["thumb_upload_param"], "");
    let full = a2["upload_full_url"].as_str().unwrap();
    assert!(a2.get("upload_param").is_none());
    assert!(full.starts_with(&format!(
        "{}/upload?encrypted_query_param=",
        sim.cdn_base_url()
    )));
    assert!(full.contains("&taskid="));
    // Both targets accept the upload.
    for a in [&a1, &a2] {
        let r = upload(
            &sim,
            &upload_target(a, FILEKEY),
            &ilink_crypto::encrypt(&key, &plain),
        )
        .await;
        assert_eq!(r.status, 200);
        assert!(r.header("x-encrypted-param").is_some());
    }
    let ups = sim.uploads();
    assert_eq!(ups.len(), 2);
    assert!(
        ups.iter()
            .all(|u| u.accepted() && u.filesize == 112 && u.rawsize == 100)
    );
    assert_eq!((ups[0].via_full_url, ups[1].via_full_url), (false, true));
}

#[tokio::test]
async fn getuploadurl_modes_are_configurable() {
    for (mode, param, full) in [
        (UploadUrlMode::FullUrl, false, true),
        (UploadUrlMode::ParamOnly, true, false),
        (UploadUrlMode::Both, true, true),
    ] {
        let cfg = SimConfig {
            upload_url_mode: mode,
            ..config()
        };
        let sim = Sim::start(cfg).await.unwrap();
        let bot = sim.create_bot();
        let key = MediaKey::from_bytes([1; 16]);
        for _ in 0..2 {
            let a = get_upload_url(&sim, &bot.token, &upload_req(b"abc", &key, 3)).await;
            assert_eq!(a.get("upload_param").is_some(), param, "{mode:?}: {a}");
            assert_eq!(a.get("upload_full_url").is_some(), full, "{mode:?}: {a}");
        }
    }
}

#[tokio::test]
async fn random_modes_offer_both_shapes() {
    let cfg = SimConfig {
        upload_url_mode: UploadUrlMode::Random,
        inbound_full_url: ilink_sim::FullUrlMode::Random,
        ..config()
    };
    let sim = Sim::start(cfg).await.unwrap();
    let bot = sim.create_bot();
    let key = MediaKey::from_bytes([1; 16]);
    let mut shapes = std::collections::BTreeSet::new();
    for _ in 0..32 {
        let a = get_upload_url(&sim, &bot.token, &upload_req(b"abc", &key, 3)).await;
        assert!(
            a.get("upload_param").is_some() != a.get("upload_full_url").is_some(),
            "{a}"
        );
        shapes.insert(a.get("upload_full_url").is_some());
    }
    assert_eq!(shapes.len(), 2, "both shapes within 32 draws");
    let mut full = std::collections::BTreeSet::new();
    for _ in 0..32 {
        let m = sim.user("u@im.wechat").send_file(&bot, "f", b"x").unwrap();
        full.insert(
            m.message["item_list"][0]["file_item"]["media"]
                .get("full_url")
                .is_some(),
        );
    }
    assert_eq!(full.len(), 2);
}

#[tokio::test]
async fn getuploadurl_validates_its_request() {
    let sim = Sim::start(config()).await.unwrap();
    let bot = sim.create_bot();
    let key = MediaKey::from_bytes([1; 16]);
    let invalid = json!({"ret": -2, "errmsg": "invalid arguments"});
    let mut b = upload_req(b"hello", &key, 1);
    b["filesize"] = json!(5);
    assert_eq!(get_upload_url(&sim, &bot.token, &b).await, invalid);
    let mut b = upload_req(b"hello", &key, 1);
    b["aeskey"] = json!(key.to_base64_of_hex());
    assert_eq!(get_upload_url(&sim, &bot.token, &b).await, invalid);
    let mut b = upload_req(b"hello", &key, 1);
    b["media_type"] = json!(9);
    assert_eq!(get_upload_url(&sim, &bot.token, &b).await, invalid);
    let mut b = upload_req(b"hello", &key, 1);
    b.as_object_mut().unwrap().remove("to_user_id");
    assert_eq!(
        get_upload_url(&sim, &bot.token, &b).await,
        json!({"ret": -1})
    );
    assert!(sim.requests().iter().all(|r| !r.problems.is_empty()));
}

#[tokio::test]
async fn cdn_upload_is_checked_against_what_was_declared() {
    let sim = Sim::start(config()).await.unwrap();
    let bot = sim.create_bot();
    let key = MediaKey::from_bytes([3; 16]);
    let plain: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let good_ct = ilink_crypto::encrypt(&key, &plain);

    let ans = get_upload_url(&sim, &bot.token, &upload_req(&plain, &key, 3)).await;
    let target = upload_target(&ans, FILEKEY);
    // Wrong size.
    let r = upload(&sim, &target, &good_ct[..good_ct.len() - 16]).await;
    assert_eq!(r.status, 400);
    assert!(r.header("x-error-message").unwrap().contains("filesize"));
    // Encrypted with another key.
    let other = ilink_crypto::encrypt(&MediaKey::from_bytes([4; 16]), &plain);
    let r = upload(&sim, &target, &other).await;
    assert_eq!(r.status, 400, "{}", r.text());
    // Right key, other content of the same size: MD5 mismatch.
    let mut changed = plain.clone();
    changed[0] ^= 1;
    let r = upload(&sim, &target, &ilink_crypto::encrypt(&key, &changed)).await;
    assert_eq!(r.status, 400);
    assert!(r.header("x-error-message").unwrap().contains("MD5"));
    // Wrong filekey.
    let wrong_fk = target.replace(FILEKEY, "00000000000000000000000000000000");
    let r = upload(&sim, &wrong_fk, &good_ct).await;
    assert_eq!(r.status, 400);
    // Unknown parameter.
    let r = upload(
        &sim,
        "/c2c/upload?encrypted_query_param=nope&filekey=x",
        &good_ct,
    )
    .await;
    assert_eq!(r.status, 400);
    // Finally the right bytes.
    let r = upload(&sim, &target, &good_ct).await;
    assert_eq!(r.status, 200);
    let ups = sim.uploads();
    assert_eq!(
        ups.len(),
        5,
        "the unknown parameter is not an upload of a declared file"
    );
    assert_eq!(ups.iter().filter(|u| u.accepted()).count(), 1);
    assert!(ups[3].error.as_deref().unwrap().contains("filekey"));
    // The uploaded ciphertext is served back.
    let dl = format!(
        "/c2c/download?encrypted_query_param={}",
        urlenc(r.header("x-encrypted-param").unwrap())
    );
    let got = request(sim.addr(), "GET", &dl, &[], b"").await.unwrap();
    assert_eq!(got.status, 200);
    assert_eq!(got.body, good_ct);
    let missing = request(
        sim.addr(),
        "GET",
        "/c2c/download?encrypted_query_param=zz",
        &[],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(missing.status, 404);
}

fn image_msg(ctx: &str, cid: &str, param: &str, aes_key: &str, mid_size: usize) -> Value {
    json!({"msg": {
        "from_user_id": "", "to_user_id": "u@im.wechat", "client_id": cid,
        "message_type": 2, "message_state": 2,
        "item_list": [{"type": 2, "image_item": {"media": {
            "encrypt_query_param": param, "aes_key": aes_key, "encrypt_type": 1}, "mid_size": mid_size}}],
        "context_token": ctx}, "base_info": base_info()})
}

#[tokio::test]
async fn media_in_a_message_must_decrypt_with_its_key() {
    let sim = Sim::start(config()).await.unwrap();
    let bot = sim.create_bot();
    let u = sim.user("u@im.wechat");
    let ctx = u
        .send_text(&bot, "send me a picture")
        .unwrap()
        .context_token;
    let key = MediaKey::from_bytes([9; 16]);
    let plain = b"\x89PNG fake image bytes".to_vec();
    let param = upload_ok(&sim, &bot.token, &plain, &key).await;
    let mid = ilink_crypto::ciphertext_len(plain.len() as u64) as usize;

    // Wrong key (valid encoding): dropped, answered as a success.
    let wrong = MediaKey::from_bytes([8; 16]).to_base64_of_hex();
    let r = send(
        sim.addr(),
        &bot.token,
        &image_msg(&ctx, "m1", &param, &wrong, mid),
    )
    .await;
    assert_eq!(r, json!({"ret": 0}));
    // Not a key at all.
    send(
        sim.addr(),
        &bot.token,
        &image_msg(&ctx, "m2", &param, "bm90IGEga2V5", mid),
    )
    .await;
    // Not on the CDN.
    send(
        sim.addr(),
        &bot.token,
        &image_msg(&ctx, "m3", "missing", &key.to_base64_of_hex(), mid),
    )
    .await;
    let reasons: Vec<DropReason> = sim.dropped().into_iter().map(|d| d.reason).collect();
    assert_eq!(
        reasons,
        [
            DropReason::MediaUndecryptable,
            DropReason::MediaKeyInvalid,
            DropReason::MediaNotFound
        ]
    );

    // The official encoding (base64 of the hex key) is delivered, and the user can open it.
    let r = send(
        sim.addr(),
        &bot.token,
        &image_msg(&ctx, "m4", &param, &key.to_base64_of_hex(), mid),
    )
    .await;
    assert!(r["message_id"].is_u64(), "{r}");
    let d = u.delivered();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].item_type(), Some(2));
    assert_eq!(u.download(&d[0].item).unwrap(), plain);
    assert_eq!(sim.download(&d[0].item).unwrap(), plain);
}

#[tokio::test]
async fn inbound_media_uses_the_live_key_encodings() {
    let sim = Sim::start(config()).await.unwrap();
    let bot = sim.create_bot();
    let u = sim.user("u@im.wechat");
    let img = b"jpeg-bytes-0123456789".to_vec();
    let file = b"%PDF-1.7 file".to_vec();
    let silk = b"#!SILK_V3 fake voice".to_vec();
    let video = vec![5u8; 4000];
    u.send_image(&bot, &img).unwrap();
    u.send_file(&bot, "report.pdf", &file).unwrap();
    u.send_voice(&bot, &silk, 2300).unwrap();
    u.send_video(&bot, &video).unwrap();
    let r = get_updates(sim.addr(), &bot.token, "").await;
    let msgs = r["msgs"].as_array().unwrap();
    assert_eq!(msgs.len(), 4);
    let item = |i: usize| msgs[i]["item_list"][0].clone();

    // Image: aeskey hex + media.aes_key = base64 of the 16 raw bytes.
    let image = item(0);
    assert_eq!(image["type"], 2);
    let hexkey = image["image_item"]["aeskey"].as_str().unwrap();
    assert_eq!(hexkey.len(), 32);
    let b64 = image["image_item"]["media"]["aes_key"].as_str().unwrap();
    assert_eq!(STANDARD.decode(b64).unwrap(), hex::decode(hexkey).unwrap());
    // File, voice, video: media.aes_key = base64 of the 32 hex characters.
    for i in 1..4 {
        let it = item(i);
        let media = ["file_item", "voice_item", "video_item"]
            .iter()
            .find_map(|k| it.get(*k))
            .unwrap()["media"]
            .clone();
        let decoded = STANDARD.decode(media["aes_key"].as_str().unwrap()).unwrap();
        assert_eq!(decoded.len(), 32, "base64 of hex");
        assert!(decoded.iter().all(u8::is_ascii_hexdigit));
    }
    assert_eq!(item(1)["file_item"]["file_name"], "report.pdf");
    assert_eq!(item(1)["file_item"]["len"], file.len().to_string());
    assert_eq!(item(1)["file_item"]["md5"], ilink_crypto::md5_hex(&file));
    assert_eq!(item(2)["voice_item"]["encode_type"], 6);
    assert_eq!(item(2)["voice_item"]["playtime"], 2300);
    assert_eq!(item(2)["voice_item"]["sample_rate"], 24000);

    // Every other media item carries full_url (alternating by default).
    assert!(image["image_item"]["media"].get("full_url").is_none());
    let full = item(1)["file_item"]["media"]["full_url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(full.starts_with(&sim.cdn_base_url()));

    // A bot downloads over HTTP and decrypts with the key the item carries.
    let plain_of = |it: &Value, ct: &[u8]| {
        let key = if let Some(img) = it.get("image_item") {
            MediaKey::from_image_item(img["aeskey"].as_str(), img["media"]["aes_key"].as_str())
                .unwrap()
                .unwrap()
        } else {
            let m = ilink_sim_media(it);
            MediaKey::from_cdn_aes_key(m["aes_key"].as_str().unwrap()).unwrap()
        };
        ilink_crypto::decrypt(&key, ct).unwrap()
    };
    let eqp = image["image_item"]["media"]["encrypt_query_param"]
        .as_str()
        .unwrap();
    let got = request(
        sim.addr(),
        "GET",
        &format!("/c2c/download?encrypted_query_param={}", urlenc(eqp)),
        &[],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(plain_of(&image, &got.body), img);
    let got = request(sim.addr(), "GET", &target_of(&full), &[], b"")
        .await
        .unwrap();
    assert_eq!(plain_of(&item(1), &got.body), file);
    // The admin download path agrees for every item.
    for (i, want) in [&img, &file, &silk, &video].into_iter().enumerate() {
        assert_eq!(&sim.download(&item(i)).unwrap(), want);
    }
    // And every message decodes with the protocol crate.
    for m in msgs {
        let parsed: ilink_proto::WeixinMessage = serde_json::from_value(m.clone()).unwrap();
        assert!(parsed.context_token.is_some());
        assert!(
            parsed.items()[0]
                .media()
                .is_some_and(|m| m.is_downloadable())
        );
    }
}

fn ilink_sim_media(item: &Value) -> Value {
    ["image_item", "voice_item", "file_item", "video_item"]
        .iter()
        .find_map(|k| item.get(*k))
        .unwrap()["media"]
        .clone()
}

#[tokio::test]
async fn voice_with_transcript_and_quotes() {
    let sim = Sim::start(config()).await.unwrap();
    let bot = sim.create_bot();
    let u = sim.user("u@im.wechat");
    let inbound = u
        .send_voice_with_text(&bot, b"silk", 900, "我下午三点到。")
        .unwrap();
    assert_eq!(
        inbound.message["item_list"][0]["voice_item"]["text"],
        "我下午三点到。"
    );

    // The user quotes a message the bot delivered.
    let r = send(
        sim.addr(),
        &bot.token,
        &text_reply(
            "u@im.wechat",
            Some(&inbound.context_token),
            "q1",
            "会议纪要",
        ),
    )
    .await;
    let quoted_id = r["message_id"].as_u64().unwrap();
    let q = u.quote(&bot, quoted_id, "请继续").unwrap();
    let item = &q.message["item_list"][0];
    assert_eq!(item["text_item"]["text"], "请继续");
    assert_eq!(
        item["ref_msg"]["message_item"]["msg_id"].as_u64(),
        Some(quoted_id)
    );
    assert_eq!(
        item["ref_msg"]["message_item"]["text_item"]["text"],
        "会议纪要"
    );
    assert_eq!(item["ref_msg"]["title"], "会议纪要");
    assert_eq!(item["ref_msg"]["svr_id"], quoted_id.to_string());
    // Quoting an unknown id keeps only the id, like newer WeChat clients.
    let q = u.quote(&bot, 1234, "?").unwrap();
    assert_eq!(
        q.message["item_list"][0]["ref_msg"]["message_item"],
        json!({"msg_id": 1234})
    );
    let parsed: ilink_proto::WeixinMessage = serde_json::from_value(q.message).unwrap();
    assert!(parsed.items()[0].ref_msg.is_some());
}

#[tokio::test]
async fn declared_media_sizes_are_checked() {
    let sim = Sim::start(config()).await.unwrap();
    let bot = sim.create_bot();
    let ctx = sim
        .user("u@im.wechat")
        .send_text(&bot, "file please")
        .unwrap()
        .context_token;
    let key = MediaKey::from_bytes([2; 16]);
    let plain = b"a file of some length".to_vec();
    let param = upload_ok(&sim, &bot.token, &plain, &key).await;
    let file_msg = |cid: &str, len: Value| {
        json!({"msg": {
            "from_user_id": "", "to_user_id": "u@im.wechat", "client_id": cid,
            "message_type": 2, "message_state": 2,
            "item_list": [{"type": 4, "file_item": {"media": {
                "encrypt_query_param": param, "aes_key": key.to_base64_of_hex(), "encrypt_type": 1},
                "file_name": "a.txt", "len": len}}],
            "context_token": ctx}, "base_info": base_info()})
    };
    sim.clear_requests();
    let ok = send(
        sim.addr(),
        &bot.token,
        &file_msg("f1", json!(plain.len().to_string())),
    )
    .await;
    assert!(ok["message_id"].is_u64());
    assert!(
        sim.requests()[0].problems.is_empty(),
        "{:?}",
        sim.requests()[0].problems
    );
    // len as a number: delivered (the server's reaction is unknown) but reported.
    let r = send(sim.addr(), &bot.token, &file_msg("f2", json!(plain.len()))).await;
    assert!(r["message_id"].is_u64());
    assert!(
        sim.requests()[1]
            .problems
            .iter()
            .any(|p| p.contains("decimal string"))
    );
    let r = send(sim.addr(), &bot.token, &file_msg("f3", json!("7"))).await;
    assert!(r["message_id"].is_u64());
    assert!(
        sim.requests()[2]
            .problems
            .iter()
            .any(|p| p.contains("plaintext size"))
    );
    // A wrong mid_size on an image is reported too.
    let r = send(
        sim.addr(),
        &bot.token,
        &image_msg(&ctx, "i1", &param, &key.to_base64_of_hex(), 5),
    )
    .await;
    assert!(r["message_id"].is_u64());
    assert!(
        sim.requests()[3]
            .problems
            .iter()
            .any(|p| p.contains("mid_size"))
    );
    assert_eq!(
        sim.user("u@im.wechat")
            .download(&sim.delivered()[3].item)
            .unwrap(),
        plain
    );
}

#[tokio::test]
async fn download_errors_say_what_failed() {
    let sim = Sim::start(config()).await.unwrap();
    let bot = sim.create_bot();
    let u = sim.user("u@im.wechat");
    let item = u.send_file(&bot, "a.bin", b"content").unwrap().message["item_list"][0].clone();
    assert_eq!(u.download(&item).unwrap(), b"content");
    use ilink_sim::SimError;
    let text = json!({"type": 1, "text_item": {"text": "x"}});
    assert!(matches!(u.download(&text), Err(SimError::NoMedia)));
    let mut gone = item.clone();
    gone["file_item"]["media"]["encrypt_query_param"] = json!("nope");
    assert!(matches!(u.download(&gone), Err(SimError::MediaNotFound)));
    let mut bad_key = item.clone();
    bad_key["file_item"]["media"]["aes_key"] = json!("!!");
    assert!(matches!(u.download(&bad_key), Err(SimError::MediaKey(_))));
    let mut wrong_key = item.clone();
    wrong_key["file_item"]["media"]["aes_key"] = json!(MediaKey::from_bytes([0; 16]).to_base64());
    assert!(matches!(
        u.download(&wrong_key),
        Err(SimError::Undecryptable)
    ));
    // Via full_url only.
    let mut by_url = item.clone();
    let param = item["file_item"]["media"]["encrypt_query_param"]
        .as_str()
        .unwrap()
        .to_owned();
    by_url["file_item"]["media"] = json!({
        "full_url": format!("{}/download?encrypted_query_param={}", sim.cdn_base_url(), urlenc(&param)),
        "aes_key": item["file_item"]["media"]["aes_key"],
    });
    assert_eq!(u.download(&by_url).unwrap(), b"content");
    assert!(SimError::NoMedia.to_string().contains("no media"));
    assert!(matches!(
        u.send_text("ghost@im.bot", "x"),
        Err(SimError::UnknownBot(b)) if b == "ghost@im.bot"
    ));
}

#[tokio::test]
async fn cdn_uploads_have_their_own_size_cap() {
    // API bodies may be 4 KiB, uploads 2 KiB: the upload cap is separate.
    let mut cfg = config().with_max_upload_bytes(2048);
    cfg.max_body_bytes = 4096;
    let sim = Sim::start(cfg).await.unwrap();
    let bot = sim.create_bot();
    let key = MediaKey::from_bytes([5; 16]);

    let small: Vec<u8> = (0..=255u8).cycle().take(2000).collect();
    upload_ok(&sim, &bot.token, &small, &key).await;

    let big: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    let ans = get_upload_url(&sim, &bot.token, &upload_req(&big, &key, 3)).await;
    let r = upload(
        &sim,
        &upload_target(&ans, FILEKEY),
        &ilink_crypto::encrypt(&key, &big),
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(sim.uploads().len(), 1, "the refused body was never checked");
    assert_eq!(sim.uploads().iter().filter(|u| u.accepted()).count(), 1);
}

/// docs/protocol.md §12.1 [obs]: since about July 2026 the live getuploadurl refuses a grant
/// without the chat's context_token; the emulator does so by default.
#[tokio::test]
async fn the_upload_grant_needs_the_chats_context_token() {
    let sim = Sim::start(common::config()).await.unwrap();
    assert_eq!(
        sim.config().upload_requires_context_token,
        Some(ilink_sim::UploadGrantRefusal::Ret2),
        "on by default"
    );
    let bot = sim.create_bot();
    let key = MediaKey::from_bytes([9; 16]);
    let ctx_u = sim
        .user("u@im.wechat")
        .send_text(&bot.bot_id, "hi")
        .unwrap()
        .context_token;
    let ctx_v = sim
        .user("v@im.wechat")
        .send_text(&bot.bot_id, "hi")
        .unwrap()
        .context_token;
    let with = |token: Option<&str>| {
        let mut b = upload_req(b"abc", &key, 1);
        if let Some(t) = token {
            b["context_token"] = json!(t);
        }
        b
    };
    // No token, an empty one, another chat's, an unknown one: refused, no target.
    for body in [
        with(None),
        with(Some("")),
        with(Some(&ctx_v)),
        with(Some("nope")),
    ] {
        let a = get_upload_url(&sim, &bot.token, &body).await;
        assert_eq!(a, json!({"ret": -2}), "{body}");
    }
    // The chat's token: granted, and the upload goes through.
    let a = get_upload_url(&sim, &bot.token, &with(Some(&ctx_u))).await;
    assert!(a.get("ret").is_none(), "{a}");
    let r = upload(
        &sim,
        &upload_target(&a, FILEKEY),
        &ilink_crypto::encrypt(&key, b"abc"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Another bot's token for the same user is not this chat's.
    let other = sim.create_bot();
    let a = get_upload_url(&sim, &other.token, &with(Some(&ctx_u))).await;
    assert_eq!(a, json!({"ret": -2}));

    // The other reported answer: -14 "session timeout" although the session is valid.
    let sim = Sim::start(SimConfig {
        upload_requires_context_token: Some(ilink_sim::UploadGrantRefusal::SessionTimeout),
        ..common::config()
    })
    .await
    .unwrap();
    let bot = sim.create_bot();
    let a = get_upload_url(&sim, &bot.token, &with(None)).await;
    assert_eq!(a, json!({"errcode": -14, "errmsg": "session timeout"}));

    // Switched off: the 2.4.9 request without the field is granted.
    let sim = Sim::start(config()).await.unwrap();
    let bot = sim.create_bot();
    let a = get_upload_url(&sim, &bot.token, &with(None)).await;
    assert!(
        a.get("upload_param").is_some() || a.get("upload_full_url").is_some(),
        "{a}"
    );
}

#[tokio::test]
async fn getuploadurl_for_a_malformed_recipient_answers_ret_minus_1() {
    // The fixture getuploadurl-ret-minus1 (Tencent/openclaw-weixin#213): a bare {"ret":-1},
    // attributed to a to_user_id that is not a WeChat user id.
    let sim = Sim::start(config()).await.unwrap();
    let bot = sim.create_bot();
    let key = MediaKey::from_bytes([1; 16]);
    for bad in [
        "alice",
        "alice@im.bot",
        "@im.wechat",
        "al ice@im.wechat",
        "a@b@im.wechat",
        "u@im.wechat.evil",
        &format!("{}@im.wechat", "x".repeat(300)),
    ] {
        let mut b = upload_req(b"hello", &key, 1);
        b["to_user_id"] = json!(bad);
        assert_eq!(
            get_upload_url(&sim, &bot.token, &b).await,
            json!({"ret": -1}),
            "to_user_id {bad:?}"
        );
    }
    assert!(sim.requests().iter().all(|r| {
        r.problems
            .iter()
            .any(|p| p.contains("not a WeChat user id"))
    }));
    // A well-formed id gets a grant; the rule can be switched off.
    let ok = get_upload_url(&sim, &bot.token, &upload_req(b"hello", &key, 1)).await;
    assert!(ok.get("upload_param").is_some() || ok.get("upload_full_url").is_some());
    let lax = Sim::start(SimConfig {
        check_upload_recipient: false,
        ..config()
    })
    .await
    .unwrap();
    let bot = lax.create_bot();
    let mut b = upload_req(b"hello", &key, 1);
    b["to_user_id"] = json!("alice");
    let ans = get_upload_url(&lax, &bot.token, &b).await;
    assert!(ans.get("ret").is_none(), "{ans}");
}

#[tokio::test]
async fn media_bursts_are_throttled_and_text_is_not() {
    let sim = Sim::start(SimConfig {
        burst: Some(BurstPolicy {
            max_sends: 1,
            window: std::time::Duration::from_secs(10),
        }),
        ..config()
    })
    .await
    .unwrap();
    let bot = sim.create_bot();
    let ctx = sim
        .user("u@im.wechat")
        .send_text(&bot, "pictures please")
        .unwrap()
        .context_token;
    let key = MediaKey::from_bytes([9; 16]);
    let plain = b"\x89PNG fake".to_vec();
    let param = upload_ok(&sim, &bot.token, &plain, &key).await;
    let mid = ilink_crypto::ciphertext_len(plain.len() as u64) as usize;
    let aes = key.to_base64_of_hex();
    let r = send(
        sim.addr(),
        &bot.token,
        &image_msg(&ctx, "i1", &param, &aes, mid),
    )
    .await;
    assert!(r["message_id"].is_u64(), "{r}");
    let r = send(
        sim.addr(),
        &bot.token,
        &text_reply("u@im.wechat", Some(&ctx), "t1", "x"),
    )
    .await;
    assert!(r["message_id"].is_u64(), "text is not throttled: {r}");
    let r = send(
        sim.addr(),
        &bot.token,
        &image_msg(&ctx, "i2", &param, &aes, mid),
    )
    .await;
    assert_eq!(r, json!({"ret": -2}));
    assert_eq!(sim.dropped()[0].reason, DropReason::Throttled);
}

#[tokio::test]
async fn upload_checks_can_be_switched_off() {
    let sim = Sim::start(SimConfig {
        upload_checks: false,
        ..config()
    })
    .await
    .unwrap();
    let bot = sim.create_bot();
    let key = MediaKey::from_bytes([3; 16]);
    let ans = get_upload_url(&sim, &bot.token, &upload_req(b"hello", &key, 1)).await;
    // Garbage of the wrong size: accepted when checks are off.
    let r = upload(&sim, &upload_target(&ans, FILEKEY), b"not the ciphertext").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("x-encrypted-param").is_some());
}

#[tokio::test]
async fn the_cdn_keeps_at_most_its_cap_and_drops_the_oldest_object() {
    let sim = Sim::start(SimConfig {
        retention: Retention {
            cdn: Cap::new(2, usize::MAX),
            ..Retention::default()
        },
        ..config()
    })
    .await
    .unwrap();
    let bot = sim.create_bot();
    let u = sim.user("u@im.wechat");
    let first = u.send_image(&bot, b"one").unwrap();
    u.send_image(&bot, b"two").unwrap();
    let third = u.send_image(&bot, b"three").unwrap();
    let item = |i: &ilink_sim::Inbound| i.message["item_list"][0].clone();
    assert_eq!(sim.download(&item(&third)).unwrap(), b"three");
    assert!(matches!(
        sim.download(&item(&first)),
        Err(ilink_sim::SimError::MediaNotFound)
    ));
    let cdn = sim
        .retention_stats()
        .into_iter()
        .find(|s| s.name == "cdn")
        .unwrap();
    assert_eq!((cdn.len, cdn.evicted), (2, 1));
}
