//! The web page's routes: the page itself, its state and media reads, the event stream, the
//! browser-audio path through a voice codec, and the access token off loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::*;
use ilink_sim::{AccessToken, Sim, SimConfig, VoiceCodec, VoiceCodecRef};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(sim: &Sim, target: &str, headers: &[(&str, &str)]) -> Resp {
    request(sim.addr(), "GET", target, headers, b"")
        .await
        .unwrap()
}

async fn admin_post(sim: &Sim, path: &str, body: &Value) -> Resp {
    request(
        sim.addr(),
        "POST",
        path,
        &[("content-type", "application/json")],
        body.to_string().as_bytes(),
    )
    .await
    .unwrap()
}

/// A stand-in codec: "encodes" by prefixing, "decodes" into a WAV header plus the payload.
struct FakeCodec;

impl VoiceCodec for FakeCodec {
    fn encode(&self, audio: &[u8]) -> Result<(Vec<u8>, u64), String> {
        if audio.is_empty() {
            return Err("no audio".into());
        }
        Ok(([b"SILK:".as_slice(), audio].concat(), 1500))
    }

    fn decode_to_wav(&self, silk: &[u8]) -> Result<Vec<u8>, String> {
        Ok([b"RIFF\0\0\0\0WAVE".as_slice(), silk].concat())
    }
}

#[tokio::test]
async fn the_page_and_its_state_show_every_kind_of_message() {
    let sim = Sim::start(config()).await.unwrap();
    let page = get(&sim, "/", &[]).await;
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().contains("id=\"messages\""));
    assert_eq!(sim.page_url(), format!("http://{}/", sim.addr()));
    assert!(sim.access_token().is_none(), "loopback needs no token");

    let bot = sim.create_bot();
    let u = sim.user("u@im.wechat");
    let image = b"\x89PNG\r\n\x1a\nimage bytes".to_vec();
    let inbound = u.send_image(&bot, &image).unwrap();
    let ctx = inbound.context_token.clone();
    send(
        sim.addr(),
        &bot.token,
        &text_reply("u@im.wechat", Some(&ctx), "c1", "hi back"),
    )
    .await;
    send(
        sim.addr(),
        &bot.token,
        &text_reply("u@im.wechat", None, "c2", "no token"),
    )
    .await;

    let state = get(&sim, "/_sim/ui/state", &[]).await.json();
    let conv = &state["conversations"][0];
    assert_eq!(conv["user_id"], "u@im.wechat");
    assert_eq!(conv["replies_left"], 9);
    let msgs = conv["messages"].as_array().unwrap();
    let dirs: Vec<&str> = msgs.iter().map(|m| m["dir"].as_str().unwrap()).collect();
    assert_eq!(dirs, ["in", "out", "refused"]);
    assert_eq!(msgs[0]["kind"], "image");
    assert_eq!(msgs[1]["text"], "hi back");
    assert_eq!(msgs[2]["reason_code"], "missing_context_token");
    assert_eq!(msgs[2]["answered"], json!({"ret": -2}));
    assert_eq!(state["policies"]["burst_scope"], "media_only");

    // The inbound image, decrypted, with its type.
    let media = get(&sim, &format!("/_sim/ui/media/{}", inbound.message_id), &[]).await;
    assert_eq!(media.status, 200);
    assert_eq!(media.header("content-type"), Some("image/png"));
    assert_eq!(media.body, image);
    assert_eq!(get(&sim, "/_sim/ui/media/123", &[]).await.status, 404);
    assert_eq!(get(&sim, "/_sim/ui/media/x", &[]).await.status, 400);
}

#[tokio::test]
async fn browser_audio_needs_a_codec_and_goes_through_it_both_ways() {
    let sim = Sim::start(config()).await.unwrap();
    let bot = sim.create_bot();
    let body =
        json!({"bot_id": bot.bot_id, "kind": "audio", "data_base64": STANDARD.encode(b"pcm")});
    let r = admin_post(&sim, "/_sim/users/u@im.wechat/send", &body).await;
    assert_eq!(r.status, 501, "{}", r.text());

    let sim = Sim::start(SimConfig {
        voice_codec: Some(VoiceCodecRef::new(FakeCodec)),
        ..config()
    })
    .await
    .unwrap();
    let bot = sim.create_bot();
    let body =
        json!({"bot_id": bot.bot_id, "kind": "audio", "data_base64": STANDARD.encode(b"pcm")});
    let r = admin_post(&sim, "/_sim/users/u@im.wechat/send", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let inbound = sim.inbound().pop().unwrap();
    let item = &inbound.message["item_list"][0];
    assert_eq!(item["voice_item"]["playtime"], 1500);
    assert_eq!(sim.download(item).unwrap(), b"SILK:pcm");
    let wav = get(
        &sim,
        &format!("/_sim/ui/media/{}?as=wav", inbound.message_id),
        &[],
    )
    .await;
    assert_eq!(wav.header("content-type"), Some("audio/wav"));
    assert!(wav.body.ends_with(b"SILK:pcm"));
    let empty = json!({"bot_id": bot.bot_id, "kind": "audio", "data_base64": ""});
    let r = admin_post(&sim, "/_sim/users/u@im.wechat/send", &empty).await;
    assert_eq!(r.status, 422, "{}", r.text());
}

#[tokio::test]
async fn the_event_stream_says_when_something_changed() {
    let sim = Sim::start(config()).await.unwrap();
    let bot = sim.create_bot();
    let mut s = tokio::net::TcpStream::connect(sim.addr()).await.unwrap();
    s.write_all(format!("GET /_sim/events HTTP/1.1\r\nhost: {}\r\n\r\n", sim.addr()).as_bytes())
        .await
        .unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    // The first event comes at once; the next one after a change.
    while !seen.contains("data: 0") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no first event: {seen}"))
            .unwrap();
        assert!(n > 0);
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("text/event-stream"), "{seen}");
    sim.user("u@im.wechat").send_text(&bot, "hi").unwrap();
    let mut more = String::new();
    while !more.contains("event: change") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        more.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

#[tokio::test]
async fn off_loopback_the_page_and_admin_api_need_the_token() {
    let sim = Sim::start_on(config(), SocketAddr::from(([0, 0, 0, 0], 0)))
        .await
        .unwrap();
    let token = sim
        .access_token()
        .expect("a token is made")
        .expose()
        .to_owned();
    assert!(token.len() >= 32);
    assert!(sim.page_url().ends_with(&format!("/?token={token}")));
    assert!(
        !format!("{:?}", sim.access_token()).contains(&token),
        "redacted in Debug"
    );
    assert_eq!(get(&sim, "/", &[]).await.status, 401);
    assert_eq!(get(&sim, "/_sim/bots", &[]).await.status, 401);
    assert_eq!(get(&sim, "/_sim/bots?token=wrong", &[]).await.status, 401);
    assert_eq!(
        get(&sim, &format!("/?token={token}"), &[]).await.status,
        200
    );
    assert_eq!(
        get(&sim, "/_sim/bots", &[("x-sim-token", &token)])
            .await
            .status,
        200
    );
    // The bot API itself is unaffected (it has its bot tokens).
    let r = post(
        sim.addr(),
        "getconfig",
        Some("nope"),
        &json!({"base_info": base_info()}),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);

    // A configured token applies on loopback too.
    let sim = Sim::start(SimConfig {
        access_token: Some(AccessToken::new("s3cret")),
        ..config()
    })
    .await
    .unwrap();
    assert_eq!(get(&sim, "/_sim/info", &[]).await.status, 401);
    assert_eq!(get(&sim, "/_sim/info?token=s3cret", &[]).await.status, 200);
}

#[tokio::test]
async fn other_sites_cannot_drive_the_emulator() {
    let sim = Sim::start(config()).await.unwrap();
    let own = format!("http://{}", sim.addr());
    // DNS rebinding: a name that resolves here is not enough.
    let mut s = tokio::net::TcpStream::connect(sim.addr()).await.unwrap();
    s.write_all(b"GET /_sim/bots HTTP/1.1\r\nhost: evil.example:80\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 401"), "{out}");
    // A page from another origin posting into the admin API.
    let r = admin_post_with(&sim, &[("origin", "http://evil.example")]).await;
    assert_eq!(r.status, 401);
    let r = admin_post_with(&sim, &[("origin", &own)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(sim.bots().len(), 1);
}

async fn admin_post_with(sim: &Sim, headers: &[(&str, &str)]) -> Resp {
    let mut h = vec![("content-type", "application/json")];
    h.extend_from_slice(headers);
    request(sim.addr(), "POST", "/_sim/bots", &h, b"{}")
        .await
        .unwrap()
}
