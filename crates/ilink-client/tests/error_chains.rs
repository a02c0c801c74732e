//! Errors read once (reqwest's and twilight's shape): an error's `Display` says only what
//! failed at its own layer, and the cause is in `source()`. A reporter that walks the chain
//! (anyhow's `{:#}`, eyre, tracing) must then print each fact once: this test walks the
//! `source()` chain of every public error of the workspace, produced through the public APIs
//! (over loopback HTTP against ilink-sim where the network is involved), and fails when a
//! layer repeats the text of a layer below it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::error::Error as StdError;

use common::*;
use ilink_client::{Client, ClientConfig, ErrorKind, MemoryStore, SendErrorKind};
use ilink_sim::{Endpoint, Fault};

/// Every layer's text, outermost first.
fn layers(e: &(dyn StdError + 'static)) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = Some(e);
    while let Some(x) = cur {
        out.push(x.to_string());
        cur = x.source();
    }
    out
}

/// Fails when a layer's text contains the text of any layer below it.
fn assert_reads_once(what: &str, e: &(dyn StdError + 'static)) -> Vec<String> {
    let l = layers(e);
    assert!(!l.is_empty());
    for (i, outer) in l.iter().enumerate() {
        assert!(
            !outer.trim().is_empty(),
            "{what}: layer {i} is empty: {l:#?}"
        );
        for (j, inner) in l.iter().enumerate().skip(i + 1) {
            assert!(
                !outer.contains(inner.as_str()),
                "{what}: layer {i} repeats layer {j}:\n  {outer:?}\n  {inner:?}\nchain: {l:#?}"
            );
        }
    }
    l
}

#[test]
fn leaf_crate_errors_read_once() {
    // ilink-proto: a body, a message of a batch, a version, the server's envelope.
    let e = ilink_proto::decode::<ilink_proto::Envelope>(b"{\"ret\": [").unwrap_err();
    let l = assert_reads_once("DecodeError::Json", &e);
    assert!(l.len() >= 2, "the JSON error is the source: {l:?}");
    assert_reads_once(
        "DecodeError::Empty",
        &ilink_proto::decode::<ilink_proto::Envelope>(b" ").unwrap_err(),
    );
    let batch = ilink_proto::decode_updates(br#"{"msgs":[{"seq":"x"}]}"#).unwrap();
    let bad = batch
        .into_messages()
        .into_iter()
        .next()
        .unwrap()
        .unwrap_err();
    let l = assert_reads_once("RawMessageError", &bad);
    assert!(l.len() >= 2, "{l:?}");
    assert_reads_once(
        "ParseVersionError",
        &"x.y".parse::<ilink_proto::CompatVersion>().unwrap_err(),
    );
    for e in [
        ilink_proto::ApiError::StaleToken { errmsg: None },
        ilink_proto::ApiError::Throttled {
            errmsg: Some("prepare failed".into()),
        },
    ] {
        assert_reads_once("ApiError", &e);
    }

    // ilink-crypto.
    let key = ilink_crypto::MediaKey::parse("zz").unwrap_err();
    assert_reads_once("KeyError", &key);
    let k = ilink_crypto::MediaKey::from_slice(&[7; 16]).unwrap();
    assert_reads_once(
        "CryptoError",
        &ilink_crypto::decrypt(&k, &[1, 2, 3]).unwrap_err(),
    );

    // ilink-cdn, with a crypto error underneath.
    let cdn = ilink_client::cdn::CdnError::from(key);
    let l = assert_reads_once("CdnError", &cdn);
    assert_eq!(l.len(), 2, "{l:?}");

    // ilink-http.
    let http = ilink_client::http::HttpError::new(
        ilink_client::http::ErrorKind::Timeout,
        Some("deadline of 5 s passed".into()),
    );
    let l = assert_reads_once("HttpError", &http);
    assert_eq!(l.len(), 2, "{l:?}");
    assert!(!http.hint().is_empty());

    // ilink-silk: not SILK, not a WAV file, no file at all.
    let not_silk =
        ilink_silk::decode_silk(b"definitely not silk", ilink_silk::DecodeOptions::default())
            .unwrap_err();
    assert_reads_once("SilkError (SILK)", &not_silk);
    let not_wav = ilink_silk::encode_wav(b"RIFF....WAVEjunk", ilink_silk::EncodeOptions::default())
        .unwrap_err();
    assert_reads_once("SilkError (WAV)", &not_wav);
    let no_file = ilink_silk::decode_audio_file(
        std::path::Path::new("/nonexistent/ilink/voice.mp3"),
        ilink_silk::DecodeOptions::default(),
    )
    .unwrap_err();
    let l = assert_reads_once("SilkError (I/O)", &no_file);
    assert!(l.len() >= 2, "the I/O error is the source: {l:?}");
}

#[tokio::test]
async fn sim_errors_read_once() {
    let sim = sim().await;
    // The port is taken: Bind, with the OS error as its source.
    let e = ilink_sim::Sim::start_on(ilink_sim::SimConfig::default(), sim.addr())
        .await
        .unwrap_err();
    let l = assert_reads_once("SimError::Bind", &e);
    assert_eq!(l.len(), 2, "{l:?}");
    assert_reads_once(
        "SimError::UnknownBot",
        &sim.user("x@im.wechat")
            .send_text("nobody@im.bot", "hi")
            .unwrap_err(),
    );
}

#[tokio::test]
async fn client_errors_read_once_on_every_failure_path() {
    let (sim, _client, account, bot) = setup().await;

    // Nothing listens: a transport error with the HTTP layer and the OS error below.
    let dead = Client::new(
        ClientConfig::for_server("http://127.0.0.1:9"),
        MemoryStore::new(),
    )
    .unwrap();
    let acct = dead
        .add_account(ilink_client::Credentials {
            base_url: Some("http://127.0.0.1:9".into()),
            ..creds(&sim, &bot)
        })
        .await
        .unwrap();
    let e = acct.notify_start().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transport);
    assert!(e.is_request_not_sent());
    let l = assert_reads_once("Error::Transport", &e);
    assert!(l.len() >= 3, "{l:?}");
    assert_eq!(l[0], "notifystart failed");

    // The server answers, but not with what the call needs.
    let cases = [
        (Fault::Status(502), ErrorKind::HttpStatus),
        (Fault::EmptyBody, ErrorKind::Decode),
        (Fault::Overloaded(Some("busy".into())), ErrorKind::Api),
        (Fault::StaleToken, ErrorKind::SessionExpired),
    ];
    for (fault, kind) in cases {
        sim.inject_fault(Endpoint::NotifyStart, fault.clone(), 1);
        let e = account.notify_start().await.unwrap_err();
        assert_eq!(e.kind(), kind, "{fault:?}");
        assert!(!e.hint().is_empty());
        let l = assert_reads_once(&format!("Error from {fault:?}"), &e);
        if matches!(kind, ErrorKind::Api | ErrorKind::SessionExpired) {
            // The server's error is the source, typed.
            assert!(e.api_error().is_some(), "{l:?}");
            assert_eq!(l[0], "notifystart refused");
        }
    }

    // Sends: a refusal typed by its code, and a failure with the runtime error below.
    let user = "err@im.wechat";
    sim.user(user).send_text(&bot, "hi").unwrap();
    let mut updates = account.updates().await.unwrap();
    while account.context_token(user).is_none() {
        updates.next().await;
    }
    // A text that meets ret -2 is queued and retried; one item sent on its own reports it.
    sim.inject_fault(Endpoint::SendMessage, Fault::Overloaded(None), 1);
    let e = account
        .send_item(user, ilink_client::proto::MessageItem::text("x"))
        .await
        .unwrap_err();
    assert!(e.is_throttled());
    assert_reads_once("SendError (refused)", &e);
    // A text that meets a 5xx stays queued (`SendOutcome::Queued` with the failure as its
    // reason); one item sent on its own reports the failure as an error.
    sim.inject_fault(Endpoint::SendMessage, Fault::Status(500), 1);
    let e = account
        .send_item(user, ilink_client::proto::MessageItem::text("x"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), SendErrorKind::Transport);
    let l = assert_reads_once("SendError (HTTP 500)", &e);
    assert!(l.len() >= 2, "{l:?}");
}
