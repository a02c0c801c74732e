//! Media end to end against ilink-sim: every kind round-trips byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use ilink_client::{
    ClientConfig, ErrorKind, MediaLimits, MediaProblem, MediaSource, MediaType, MessageContext,
    SendErrorKind, ThrottleReason, Update,
};
use ilink_sim::{Endpoint, Fault};

fn png(len: usize) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    v.extend((0..len).map(|i| (i * 7 % 251) as u8));
    v
}

fn mp4(len: usize) -> Vec<u8> {
    let mut v = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2".to_vec();
    v.extend((0..len).map(|i| (i * 13 % 251) as u8));
    v
}

/// Half a second of a 440 Hz tone as a 16 kHz mono 16-bit WAV file.
#[cfg_attr(not(feature = "voice"), allow(dead_code))]
fn wav() -> Vec<u8> {
    let rate: u32 = 16_000;
    let samples: Vec<i16> = (0..rate / 2)
        .map(|i| {
            ((i as f32 / rate as f32 * 2.0 * std::f32::consts::PI * 440.0).sin() * 8000.0) as i16
        })
        .collect();
    let data_len = (samples.len() * 2) as u32;
    let mut v = Vec::new();
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + data_len).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&(rate * 2).to_le_bytes());
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend_from_slice(&16u16.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        v.extend_from_slice(&s.to_le_bytes());
    }
    v
}

async fn ready() -> (
    ilink_sim::Sim,
    ilink_client::Client,
    ilink_client::Account,
    ilink_sim::BotAccount,
) {
    let (sim, client, account, bot) = setup().await;
    sim.user("pam@im.wechat").send_text(&bot, "hi").unwrap();
    let mut updates = account.updates().await.unwrap();
    assert!(matches!(updates.next().await, Some(Update::Message(_))));
    (sim, client, account, bot)
}

#[tokio::test]
async fn outbound_image_video_and_file_round_trip() {
    let (sim, _client, account, _bot) = ready().await;
    let image = png(5000);
    let video = mp4(70_000);
    let dir = tempfile::tempdir().unwrap();
    let doc_path = dir.path().join("report.pdf");
    let doc = [b"%PDF-1.4\n".as_slice(), &[42u8; 3000]].concat();
    std::fs::write(&doc_path, &doc).unwrap();

    account
        .send_image("pam@im.wechat", image.clone())
        .await
        .unwrap();
    account
        .send_video("pam@im.wechat", video.clone())
        .await
        .unwrap();
    account
        .send_file("pam@im.wechat", doc_path.as_path(), None)
        .await
        .unwrap();

    let d = sim.delivered_to("pam@im.wechat");
    assert_eq!(d.len(), 3, "{:?}", sim.dropped());
    assert_eq!(d[0].item_type(), Some(2));
    assert_eq!(d[1].item_type(), Some(5));
    assert_eq!(d[2].item_type(), Some(4));
    assert_eq!(sim.download(&d[0].item).unwrap(), image);
    assert_eq!(sim.download(&d[1].item).unwrap(), video);
    assert_eq!(sim.download(&d[2].item).unwrap(), doc);
    assert_eq!(d[2].item["file_item"]["file_name"], "report.pdf");
    assert_eq!(d[2].item["file_item"]["len"], doc.len().to_string());
    // aes_key is base64 of the 32 hex characters (44 characters), encrypt_type 1.
    let media = &d[0].item["image_item"]["media"];
    assert_eq!(media["aes_key"].as_str().unwrap().len(), 44);
    assert_eq!(media["encrypt_type"], 1);
    assert_eq!(d[0].item["image_item"]["mid_size"], 5008 / 16 * 16 + 16);
    assert!(sim.uploads().iter().all(|u| u.accepted()));
    assert!(sim.dropped().is_empty());
}

#[tokio::test]
async fn caption_goes_first_and_media_type_follows_the_content() {
    let (sim, _client, account, _bot) = ready().await;
    let out = account
        .send_media("pam@im.wechat", png(100), Some("look"))
        .await
        .unwrap();
    assert_eq!(out.len(), 2);
    let d = sim.delivered_to("pam@im.wechat");
    assert_eq!(d[0].text(), Some("look"));
    assert_eq!(d[1].item_type(), Some(2));
    assert_eq!(d[0].context_token, d[1].context_token);
    assert_ne!(d[0].client_id, d[1].client_id);
    // Unknown content goes as a file.
    account
        .send_media("pam@im.wechat", MediaSource::bytes(vec![1u8, 2, 3]), None)
        .await
        .unwrap();
    assert_eq!(sim.delivered_to("pam@im.wechat")[2].item_type(), Some(4));
}

#[cfg(feature = "voice")]
#[tokio::test]
async fn outbound_voice_is_real_silk_with_playtime() {
    let (sim, _client, account, _bot) = ready().await;
    account.send_voice("pam@im.wechat", wav()).await.unwrap();
    let d = sim.delivered_to("pam@im.wechat");
    assert_eq!(d[0].item_type(), Some(3));
    let v = &d[0].item["voice_item"];
    assert_eq!(v["encode_type"], 6);
    assert_eq!(v["sample_rate"], 24000);
    assert_eq!(v["playtime"], 500);
    let silk = sim.download(&d[0].item).unwrap();
    assert!(silk.starts_with(b"\x02#!SILK_V3"));
    assert!(!silk.starts_with(b"\x02\x02"));
    // Not audio: refused before anything is uploaded, as bad media (issue 21).
    let uploads = count_requests(&sim, "/getuploadurl");
    let err = account
        .send_voice("pam@im.wechat", vec![0u8; 100])
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        SendErrorKind::BadMedia(MediaProblem::WrongFormat),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("cannot make the media into a voice message: the audio could not be read"),
        "{err}"
    );
    assert_eq!(count_requests(&sim, "/getuploadurl"), uploads);
}

#[tokio::test]
async fn upload_retries_after_a_500_and_fails_after_three() {
    let (sim, _client, account, _bot) = ready().await;
    sim.inject_fault(Endpoint::CdnUpload, Fault::Status(500), 1);
    account.send_image("pam@im.wechat", png(10)).await.unwrap();
    assert_eq!(sim.delivered_to("pam@im.wechat").len(), 1);
    sim.inject_fault(Endpoint::CdnUpload, Fault::Status(500), 3);
    let err = account
        .send_image("pam@im.wechat", png(10))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), SendErrorKind::Upload);
    assert_eq!(sim.delivered_to("pam@im.wechat").len(), 1);
    // No context token: nothing is uploaded at all.
    let before = sim.uploads().len();
    let err = account
        .send_image("nobody@im.wechat", png(10))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), SendErrorKind::NoContextToken);
    assert_eq!(sim.uploads().len(), before);
}

#[tokio::test]
async fn inbound_media_of_every_kind_downloads_and_decrypts() {
    let (sim, _client, account, bot) = setup().await;
    let user = sim.user("quinn@im.wechat");
    let image = png(3000);
    let video = mp4(9000);
    let file = b"plain text file".to_vec();
    #[cfg(feature = "voice")]
    let (silk, playtime) = {
        let v = ilink_silk::audio_to_voice(&wav(), Default::default()).unwrap();
        (v.silk, v.meta.playtime_ms)
    };
    #[cfg(not(feature = "voice"))]
    let (silk, playtime) = (b"\x02#!SILK_V3\x00\x00".to_vec(), 20u64);
    user.send_image(&bot, &image).unwrap();
    user.send_video(&bot, &video).unwrap();
    user.send_file(&bot, "notes.txt", &file).unwrap();
    user.send_voice(&bot, &silk, playtime).unwrap();
    let mut updates = account.updates().await.unwrap();
    let mut got = Vec::new();
    while got.len() < 4 {
        let Some(Update::Message(m)) = updates.next().await else {
            panic!()
        };
        let item = m.media_item().expect("media").clone();
        got.push((item.item_type, account.download(&item).await.unwrap(), item));
    }
    assert_eq!(got[0].1, image);
    assert_eq!(got[1].1, video);
    assert_eq!(got[2].1, file);
    assert_eq!(got[3].1, silk);
    #[cfg(feature = "voice")]
    {
        let wav = account.download_voice_wav(&got[3].2).await.unwrap();
        assert!(wav.starts_with(b"RIFF"));
        assert_eq!(&wav[8..12], b"WAVE");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.mp4");
    let n = account.download_to_file(&got[1].2, &path).await.unwrap();
    assert_eq!(n, video.len() as u64);
    assert_eq!(std::fs::read(&path).unwrap(), video);
}

#[tokio::test]
async fn quoted_media_and_the_download_cap() {
    let sim = sim().await;
    let bot = sim.create_bot();
    let mut cfg = config(&sim);
    cfg.max_media_bytes = 1000;
    let client = ilink_client::Client::new(cfg, ilink_client::MemoryStore::new()).unwrap();
    let account = client.add_account(creds(&sim, &bot)).await.unwrap();
    let user = sim.user("rue@im.wechat");
    let small = png(100);
    let inbound = user.send_image(&bot, &small).unwrap();
    let image_item = inbound.message["item_list"][0].clone();
    sim.inject_raw(
        &bot.bot_id,
        serde_json::json!({
            "message_id": 99, "from_user_id": "rue@im.wechat", "context_token": inbound.context_token,
            "item_list": [{"type": 1, "text_item": {"text": "this one"},
                           "ref_msg": {"message_item": image_item, "title": "img"}}]
        }),
    )
    .unwrap();
    user.send_image(&bot, &png(5000)).unwrap();
    let mut updates = account.updates().await.unwrap();
    let acct = account.clone();
    let mut texts_and_media = Vec::new();
    for _ in 0..3 {
        let Some(Update::Message(m)) = updates.next().await else {
            panic!()
        };
        let ctx = MessageContext::new(acct.clone(), m);
        texts_and_media.push((ctx.text().map(str::to_owned), ctx.download_media().await));
    }
    assert_eq!(
        texts_and_media[0].1.as_ref().unwrap().as_deref(),
        Some(&small[..])
    );
    // The quote has no media of its own: the quoted image is downloaded.
    assert_eq!(texts_and_media[1].0.as_deref(), Some("this one"));
    assert_eq!(
        texts_and_media[1].1.as_ref().unwrap().as_deref(),
        Some(&small[..])
    );
    // Over the 1000-byte cap.
    let err = texts_and_media[2].1.as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Media);
}

#[tokio::test]
async fn a_full_url_to_a_foreign_host_is_refused() {
    let (sim, _client, account, bot) = setup().await;
    sim.inject_raw(
        &bot.bot_id,
        serde_json::json!({
            "message_id": 7, "from_user_id": "sly@im.wechat", "context_token": "t",
            "item_list": [{"type": 4, "file_item": {"file_name": "x", "len": "3",
                "media": {"full_url": "http://cdn.example.invalid/download?x=1",
                          "aes_key": "MDAxMTIyMzM0NDU1NjY3Nzg4OTlhYWJiY2NkZGVlZmY="}}}]
        }),
    )
    .unwrap();
    let mut updates = account.updates().await.unwrap();
    let Some(Update::Message(m)) = updates.next().await else {
        panic!()
    };
    let item = m.media_item().unwrap().clone();
    let err = account.download(&item).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Media);
    assert!(format!("{err:?}").contains("HostNotAllowed"), "{err:?}");
}

/// R4 (reliability findings): an `upload_full_url` on a host outside the CDN allowlist is
/// never contacted; without an `upload_param` to fall back on, the send fails with a typed
/// `HostNotAllowed` underneath.
#[tokio::test]
async fn upload_full_url_to_a_foreign_host_is_refused_before_connecting() {
    let (sim, _client, account, _bot) = ready().await;
    let canary = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
    let port = canary.local_addr().unwrap().port();
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = connections.clone();
    tokio::spawn(async move {
        while canary.accept().await.is_ok() {
            c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    sim.inject_fault(
        Endpoint::GetUploadUrl,
        Fault::Json(serde_json::json!({
            "upload_full_url": format!("http://127.0.0.2:{port}/upload?taskid=1")
        })),
        1,
    );
    let err = account
        .send_image("pam@im.wechat", png(100))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), SendErrorKind::Upload, "{err}");
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    let mut kind = None;
    while let Some(e) = source {
        if let Some(cdn) = e.downcast_ref::<ilink_client::cdn::CdnError>() {
            kind = Some(cdn.kind());
        }
        source = e.source();
    }
    assert_eq!(kind, Some(ilink_client::cdn::CdnErrorKind::HostNotAllowed));
    assert_eq!(count_requests(&sim, "/upload"), 0);
    assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 0);
    // With an upload_param as well, the URL built on the CDN base is used instead.
    sim.inject_fault(
        Endpoint::GetUploadUrl,
        Fault::Json(serde_json::json!({
            "upload_full_url": format!("http://127.0.0.2:{port}/upload?taskid=1"),
            "upload_param": "UP"
        })),
        1,
    );
    let _ = account.send_image("pam@im.wechat", png(100)).await;
    assert_eq!(count_requests(&sim, "/upload"), 1);
    assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 0);
}

/// Issue #7: media from a reader (here a pipe written by another task), for every kind.
#[tokio::test]
async fn media_from_a_reader_round_trips() {
    use tokio::io::AsyncWriteExt as _;
    let (sim, client, account, _bot) = ready().await;
    let image = png(200_000);
    let (mut tx, rx) = tokio::io::duplex(4096);
    let written = image.clone();
    tokio::spawn(async move {
        tx.write_all(&written).await.unwrap();
    });
    account
        .send_media_from_reader("pam@im.wechat", rx, ilink_client::MediaType::Image, None)
        .await
        .unwrap();
    let doc = b"%PDF-1.4\nreport".to_vec();
    account
        .send_media_from_reader(
            "pam@im.wechat",
            doc.as_slice(),
            ilink_client::MediaType::File,
            Some("r.pdf"),
        )
        .await
        .unwrap();
    // The source also works with every other send method.
    let video = mp4(1000);
    let source = account.media_from_reader(video.as_slice()).await.unwrap();
    account.send_video("pam@im.wechat", source).await.unwrap();
    let d = sim.delivered_to("pam@im.wechat");
    assert_eq!(d.len(), 3, "{:?}", sim.dropped());
    assert_eq!(d[0].item_type(), Some(2));
    assert_eq!(sim.download(&d[0].item).unwrap(), image);
    assert_eq!(d[1].item_type(), Some(4));
    assert_eq!(d[1].item["file_item"]["file_name"], "r.pdf");
    assert_eq!(sim.download(&d[1].item).unwrap(), doc);
    assert_eq!(d[2].item_type(), Some(5));
    assert_eq!(sim.download(&d[2].item).unwrap(), video);
    #[cfg(feature = "voice")]
    {
        let audio = wav();
        account
            .send_media_from_reader(
                "pam@im.wechat",
                audio.as_slice(),
                ilink_client::MediaType::Voice,
                None,
            )
            .await
            .unwrap();
        assert_eq!(sim.delivered_to("pam@im.wechat")[3].item_type(), Some(3));
    }

    // Past the media cap: a typed error, nothing uploaded or sent.
    let mut config = config(&sim);
    config.max_media_bytes = 1000;
    let small = ilink_client::Client::new(config, ilink_client::MemoryStore::new()).unwrap();
    let capped = small
        .add_account(account.credentials().unwrap())
        .await
        .unwrap();
    capped
        .set_context_token(
            "pam@im.wechat",
            account.context_token("pam@im.wechat").unwrap(),
        )
        .await
        .unwrap();
    let uploads = sim.uploads().len();
    let delivered = sim.delivered_to("pam@im.wechat").len();
    let err = capped
        .send_media_from_reader(
            "pam@im.wechat",
            png(2000).as_slice(),
            ilink_client::MediaType::Image,
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), SendErrorKind::Upload, "{err}");
    assert_eq!(sim.uploads().len(), uploads);
    assert_eq!(sim.delivered_to("pam@im.wechat").len(), delivered);
    // An unreachable user is refused before the reader is read.
    let err = account
        .send_media_from_reader(
            "nobody@im.wechat",
            tokio::io::empty(),
            ilink_client::MediaType::Image,
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), SendErrorKind::NoContextToken);
    drop(client);
}

/// An upload progress callback sees the whole ciphertext go, never going back, for a file
/// streamed from disk and for bytes in memory; the media arrives intact.
#[tokio::test]
async fn upload_progress_reaches_the_total_and_only_grows() {
    use ilink_client::cdn::Progress;
    use std::sync::{Arc, Mutex};
    let (sim, _client, account, _bot) = ready().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    let doc: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&path, &doc).unwrap();
    let image = png(20_000);
    // AES-128-ECB with PKCS#7: the ciphertext is the next multiple of 16 past the plaintext.
    let cipher_len = |n: usize| (n / 16 + 1) as u64 * 16;

    for (source, plain_len, streamed) in [
        (
            ilink_client::MediaSource::from(path.clone()),
            doc.len(),
            true,
        ),
        (
            ilink_client::MediaSource::from(image.clone()),
            image.len(),
            false,
        ),
    ] {
        let seen: Arc<Mutex<Vec<Progress>>> = Arc::default();
        let log = Arc::clone(&seen);
        let out = account
            .media("pam@im.wechat", source)
            .progress(Arc::new(move |p| log.lock().unwrap().push(p)))
            .send()
            .await
            .unwrap();
        assert_eq!(out.len(), 1);
        let seen = seen.lock().unwrap().clone();
        let total = cipher_len(plain_len);
        assert!(seen.iter().all(|p| p.total == Some(total)), "{seen:?}");
        assert_eq!(seen.last().unwrap().done, total, "{seen:?}");
        assert!(seen.windows(2).all(|w| w[0].done <= w[1].done), "{seen:?}");
        if streamed {
            // A 1 MB file is reported as it streams (in 256 KiB steps), not only at the end.
            assert!(seen.len() >= 4, "{seen:?}");
            assert!(seen.iter().all(|p| p.done > 0), "{seen:?}");
        } else {
            // Bytes in memory: 0 when the request starts, the total when it succeeded.
            let done: Vec<u64> = seen.iter().map(|p| p.done).collect();
            assert_eq!(done, [0, total]);
        }
    }
    let d = sim.delivered_to("pam@im.wechat");
    assert_eq!(d.len(), 2, "{:?}", sim.dropped());
    assert_eq!(d[0].item["file_item"]["file_name"], "big.bin");
    assert_eq!(sim.download(&d[0].item).unwrap(), doc);
    assert_eq!(d[1].item_type(), Some(2));
    assert_eq!(sim.download(&d[1].item).unwrap(), image);
}

/// `reply_file` names the file and keeps the turn (its `run_id`), as text replies do; the
/// builder on a context does too, with a caption first.
#[tokio::test]
async fn reply_file_keeps_the_name_and_the_run_id() {
    let (sim, _client, account, bot) = setup().await;
    sim.user("pam@im.wechat")
        .send_text(&bot, "send me the report")
        .unwrap();
    let mut updates = account.updates().await.unwrap();
    let Some(Update::Message(m)) = updates.next().await else {
        panic!("no message");
    };
    let ctx = MessageContext::new(account.clone(), m);
    let doc = b"%PDF-1.4\nquarterly".to_vec();
    ctx.reply_file(doc.clone(), "q3.pdf").await.unwrap();
    let out = ctx
        .media(b"plain notes".to_vec())
        .file_name("notes.txt")
        .caption("here you go")
        .send()
        .await
        .unwrap();
    assert_eq!(out.len(), 2);

    let d = sim.delivered_to("pam@im.wechat");
    assert_eq!(d.len(), 3, "{:?}", sim.dropped());
    assert_eq!(d[0].item_type(), Some(4));
    assert_eq!(d[0].item["file_item"]["file_name"], "q3.pdf");
    assert_eq!(sim.download(&d[0].item).unwrap(), doc);
    assert_eq!(d[1].item_type(), Some(1));
    assert_eq!(d[2].item["file_item"]["file_name"], "notes.txt");
    for r in &d {
        assert_eq!(r.run_id.as_deref(), Some(ctx.run_id()));
    }
}

/// The getuploadurl bodies the sim saw, as JSON, in order.
fn grant_requests(sim: &ilink_sim::Sim) -> Vec<serde_json::Value> {
    sim.requests()
        .iter()
        .filter(|r| r.path.ends_with("/getuploadurl"))
        .map(|r| serde_json::from_str(r.body.as_deref().unwrap()).unwrap())
        .collect()
}

/// An MP3 frame header followed by filler: sniffed as MP3, not a video.
fn mp3(len: usize) -> Vec<u8> {
    let mut v = b"ID3\x04\x00\x00\x00\x00\x00\x00".to_vec();
    v.extend((0..len).map(|i| (i % 7) as u8));
    v
}

/// Issue 20: with the live rule on (the sim's default), every kind goes out as a proactive
/// send and as a reply in a turn, each upload grant carrying the chat's context_token.
#[tokio::test]
async fn every_kind_goes_out_with_the_chats_context_token() {
    let (sim, client, account, bot) = setup().await;
    assert!(sim.config().upload_requires_context_token.is_some());
    assert!(client.config().upload_context_token);
    let user = "pam@im.wechat";
    sim.user(user).send_text(&bot, "first").unwrap();
    sim.user(user).send_text(&bot, "second").unwrap();
    let mut updates = account.updates().await.unwrap();
    let Some(Update::Message(first)) = updates.next().await else {
        panic!("no message");
    };
    let Some(Update::Message(second)) = updates.next().await else {
        panic!("no message");
    };
    let turn_token = first.context_token().unwrap().expose().to_owned();
    let stored = account.context_token(user).unwrap().expose().to_owned();
    assert_eq!(stored, second.context_token().unwrap().expose());
    assert_ne!(turn_token, stored);

    // Proactive sends: the stored token.
    let doc = [b"%PDF-1.4\n".as_slice(), &[7u8; 500]].concat();
    account.send_image(user, png(300)).await.unwrap();
    account.send_video(user, mp4(900)).await.unwrap();
    account
        .send_file(user, doc.clone(), Some("a.pdf"))
        .await
        .unwrap();
    #[cfg(feature = "voice")]
    account.send_voice(user, wav()).await.unwrap();

    // Replies in the turn of the first message: that message's token.
    let ctx = MessageContext::new(account.clone(), first);
    ctx.reply_media_as(png(301), MediaType::Image)
        .await
        .unwrap();
    ctx.reply_media_as(mp4(901), MediaType::Video)
        .await
        .unwrap();
    ctx.reply_file(doc.clone(), "b.pdf").await.unwrap();
    #[cfg(feature = "voice")]
    ctx.reply_media_as(wav(), MediaType::Voice).await.unwrap();

    let kinds: usize = if cfg!(feature = "voice") { 4 } else { 3 };
    let d = sim.delivered_to(user);
    assert_eq!(d.len(), 2 * kinds, "{:?}", sim.dropped());
    let mut want = vec![2, 5, 4];
    if cfg!(feature = "voice") {
        want.push(3);
    }
    let got: Vec<u64> = d.iter().map(|x| x.item_type().unwrap()).collect();
    assert_eq!(got, [want.clone(), want].concat());
    assert_eq!(sim.download(&d[0].item).unwrap(), png(300));
    assert_eq!(sim.download(&d[kinds].item).unwrap(), png(301));
    let grants = grant_requests(&sim);
    assert_eq!(grants.len(), 2 * kinds);
    for (i, g) in grants.iter().enumerate() {
        let want = if i < kinds { &stored } else { &turn_token };
        assert_eq!(
            g["context_token"].as_str(),
            Some(want.as_str()),
            "grant {i}: {g}"
        );
        // The official client's fields are all still there, the token just before base_info.
        for key in [
            "filekey",
            "media_type",
            "to_user_id",
            "rawsize",
            "rawfilemd5",
            "filesize",
        ] {
            assert!(g.get(key).is_some(), "{key}: {g}");
        }
    }
    for r in sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/getuploadurl"))
    {
        let body = r.body.as_deref().unwrap();
        let at = |k: &str| body.find(&format!("\"{k}\":")).unwrap();
        assert!(
            at("aeskey") < at("context_token") && at("context_token") < at("base_info"),
            "{body}"
        );
    }
    // No token for the chat: the typed error of text, for every kind, before any grant.
    let nobody = "nobody@im.wechat";
    let errs = [
        account.send_image(nobody, png(10)).await.unwrap_err(),
        account.send_video(nobody, mp4(10)).await.unwrap_err(),
        account
            .send_file(nobody, doc.clone(), None)
            .await
            .unwrap_err(),
        #[cfg(feature = "voice")]
        account.send_voice(nobody, wav()).await.unwrap_err(),
        account.send_text(nobody, "hi").await.unwrap_err(),
    ];
    for e in errs {
        assert_eq!(e.kind(), SendErrorKind::NoContextToken, "{e}");
    }
    assert_eq!(grant_requests(&sim).len(), 2 * kinds);
    // The sim finds nothing in the grants that the official client would not send.
    for r in sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/getuploadurl"))
    {
        assert!(r.problems.is_empty(), "{:?}", r.problems);
    }
}

/// Issue 20: a refused grant is reported like a refused sendmessage; nothing is uploaded.
#[tokio::test]
async fn a_refused_grant_gives_the_sendmessage_kinds() {
    let sim = sim().await;
    let bot = sim.create_bot();
    // A client that leaves the token out, against a server that requires it.
    let mut config = config(&sim);
    config.upload_context_token = false;
    let client = ilink_client::Client::new(config, ilink_client::MemoryStore::new()).unwrap();
    let account = client.add_account(creds(&sim, &bot)).await.unwrap();
    sim.user("pam@im.wechat").send_text(&bot, "hi").unwrap();
    let mut updates = account.updates().await.unwrap();
    assert!(matches!(updates.next().await, Some(Update::Message(_))));

    let err = account
        .send_image("pam@im.wechat", png(100))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        SendErrorKind::Throttled(ThrottleReason::Unknown),
        "{err}"
    );
    assert_eq!(err.ret(), Some(-2));
    assert!(
        err.to_string()
            .starts_with("getuploadurl refused the upload"),
        "{err}"
    );
    let grants = grant_requests(&sim);
    assert_eq!(grants.len(), 1);
    assert!(grants[0].get("context_token").is_none(), "{}", grants[0]);
    assert!(sim.uploads().is_empty());
    assert!(sim.delivered_to("pam@im.wechat").is_empty());

    // The other refusals, as sendmessage would give them.
    for (answer, kind, ret) in [
        (
            serde_json::json!({"errcode": -14, "errmsg": "session timeout"}),
            SendErrorKind::StaleToken,
            -14,
        ),
        (
            serde_json::json!({"ret": -2, "errmsg": "prepare failed"}),
            SendErrorKind::Throttled(ThrottleReason::PrepareFailed),
            -2,
        ),
        (serde_json::json!({"ret": -3}), SendErrorKind::BadTarget, -3),
        (serde_json::json!({"ret": -1}), SendErrorKind::Rejected, -1),
    ] {
        sim.inject_fault(Endpoint::GetUploadUrl, Fault::Json(answer.clone()), 1);
        let err = account
            .send_file("pam@im.wechat", b"notes".to_vec(), Some("n.txt"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), kind, "{answer}: {err}");
        assert_eq!(err.ret(), Some(ret), "{answer}");
    }
    // No code and no target stays an upload failure.
    sim.inject_fault(
        Endpoint::GetUploadUrl,
        Fault::Json(serde_json::json!({})),
        1,
    );
    let err = account
        .send_file("pam@im.wechat", b"notes".to_vec(), Some("n.txt"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), SendErrorKind::Upload, "{err}");
    assert!(sim.uploads().is_empty());
    assert!(sim.delivered_to("pam@im.wechat").is_empty());
}

/// Issue 21: media is checked before anything is uploaded or sent (the caption included).
#[tokio::test]
async fn media_is_checked_before_upload() {
    let sim = sim().await;
    let bot = sim.create_bot();
    let mut config = config(&sim);
    config.media_limits = MediaLimits::all(4096);
    let client = ilink_client::Client::new(config, ilink_client::MemoryStore::new()).unwrap();
    let account = client.add_account(creds(&sim, &bot)).await.unwrap();
    sim.user("pam@im.wechat").send_text(&bot, "hi").unwrap();
    let mut updates = account.updates().await.unwrap();
    assert!(matches!(updates.next().await, Some(Update::Message(_))));
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let empty = path("empty.bin", b"");
    let report = path("report.txt", b"quarterly report\n");
    let song = path("hello.mp3", &mp3(200));
    let big = path("big.bin", &[1u8; 5000]);
    let tiff = path("scan.tif", b"II*\x00\x08\x00\x00\x00rest of a tiff");

    let cases: Vec<(std::path::PathBuf, MediaType, MediaProblem, String)> = vec![
        (
            empty.clone(),
            MediaType::Image,
            MediaProblem::Empty,
            format!("{} is empty (0 bytes)", empty.display()),
        ),
        (
            empty.clone(),
            MediaType::File,
            MediaProblem::Empty,
            format!("{} is empty (0 bytes)", empty.display()),
        ),
        (
            report.clone(),
            MediaType::Image,
            MediaProblem::WrongFormat,
            format!("{} is not an image WeChat shows", report.display()),
        ),
        (
            tiff.clone(),
            MediaType::Image,
            MediaProblem::WrongFormat,
            format!("{} is not an image WeChat shows", tiff.display()),
        ),
        (
            song.clone(),
            MediaType::Video,
            MediaProblem::WrongFormat,
            format!(
                "{} is not a video WeChat plays (MP4 or MOV): its content is MP3",
                song.display()
            ),
        ),
        (
            big.clone(),
            MediaType::File,
            MediaProblem::TooLarge,
            format!(
                "{} is 5000 bytes, more than the 4096 bytes allowed for a file; nothing was uploaded",
                big.display()
            ),
        ),
        (
            dir.path().join("missing.png"),
            MediaType::Image,
            MediaProblem::Unreadable,
            "cannot read".to_owned(),
        ),
        (
            dir.path().to_path_buf(),
            MediaType::File,
            MediaProblem::Unreadable,
            "is not a regular file".to_owned(),
        ),
    ];
    for (p, kind, problem, message) in cases {
        let err = account
            .media("pam@im.wechat", p.as_path())
            .media_type(kind)
            .caption("look at this")
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), SendErrorKind::BadMedia(problem), "{p:?}: {err}");
        assert!(err.to_string().contains(&message), "{p:?}: {err}");
        assert!(err.sent().is_empty());
        // The check is offered on its own too.
        let checked = account
            .check_media(&MediaSource::file(p.clone()), Some(kind))
            .await
            .unwrap_err();
        assert_eq!(checked.kind(), SendErrorKind::BadMedia(problem));
    }
    #[cfg(feature = "voice")]
    {
        let err = account
            .send_voice("pam@im.wechat", report.as_path())
            .await
            .unwrap_err();
        assert_eq!(
            err.kind(),
            SendErrorKind::BadMedia(MediaProblem::WrongFormat)
        );
        assert!(
            err.to_string().starts_with(&format!(
                "cannot make {} into a voice message: the audio could not be read",
                report.display()
            )),
            "{err}"
        );
        // Looks like audio but does not decode: unreadable, still before any upload.
        let err = account
            .send_voice("pam@im.wechat", song.as_path())
            .await
            .unwrap_err();
        assert_eq!(
            err.kind(),
            SendErrorKind::BadMedia(MediaProblem::Unreadable),
            "{err}"
        );
    }
    // Bytes are checked the same way; unknown content without a declared type is a file.
    let err = account
        .send_image("pam@im.wechat", Vec::<u8>::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), SendErrorKind::BadMedia(MediaProblem::Empty));
    let ok = account
        .check_media(&MediaSource::file(report.clone()), None)
        .await
        .unwrap();
    assert_eq!(ok.media_type, MediaType::File);
    assert_eq!(ok.len, 17);
    let ok = account
        .check_media(&MediaSource::bytes(png(10)), None)
        .await
        .unwrap();
    assert_eq!(ok.media_type, MediaType::Image);
    // A TIFF sent without a declared type goes as a file, as WeChat would not show it.
    let ok = account
        .check_media(&MediaSource::file(tiff.clone()), None)
        .await
        .unwrap();
    assert_eq!(ok.media_type, MediaType::File);

    // Nothing of the above reached the server: no grant, no upload, no caption.
    assert_eq!(count_requests(&sim, "/getuploadurl"), 0);
    assert!(sim.uploads().is_empty());
    assert!(sim.delivered_to("pam@im.wechat").is_empty());
    // The default limits: 100 MiB for every kind.
    let d = MediaLimits::default();
    assert_eq!(
        (d.image, d.video, d.file, d.voice),
        (100 << 20, 100 << 20, 100 << 20, 100 << 20)
    );
    assert_eq!(ClientConfig::default().media_limits, d);
}
