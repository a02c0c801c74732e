//! Every `ilink` subcommand run as a process against ilink-sim on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use assert_cmd::Command as AssertCommand;
use common::*;
use ilink_client::{FileStore, StateStore};
use ilink_sim::{BotAccount, Endpoint, Fault, QrStep, Sim};
use serde_json::Value;
use tokio::io::AsyncBufReadExt as _;

const USER: &str = "pat@im.wechat";

/// A bot whose state holds a context token for USER (USER wrote, `ilink tail` saw it).
async fn seeded_with_token(sim: &Sim, dir: &Path) -> BotAccount {
    let bot = seed(sim, dir).await;
    sim.user(USER).send_text(&bot.bot_id, "hi").unwrap();
    let o = ilink(sim, dir, &["tail", "--max", "1"], None).await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("pat@im.wechat: \"hi\""),
        "{}",
        text(&o.stdout)
    );
    bot
}

fn wav(ms: u32) -> Vec<u8> {
    let samples: Vec<i16> = (0..24 * ms)
        .map(|i| ((i as f32 * 0.05).sin() * 6000.0) as i16)
        .collect();
    ilink_silk::Pcm {
        samples,
        sample_rate: 24_000,
    }
    .to_wav()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_passes_and_checks_every_reply() {
    let o = command().arg("demo").output().await.unwrap();
    let out = text(&o.stdout);
    assert_eq!(code(&o), 0, "{out}\n{}", text(&o.stderr));
    assert!(
        out.contains("demo passed: 4 replies arrived intact"),
        "{out}"
    );
    assert!(out.contains("phone: confirmed"), "{out}");
    assert!(out.contains("ok   voice reply: "), "{out}");
    assert!(!out.contains("FAIL"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_asks_for_the_verify_code_and_saves_private_credentials() {
    let sim = sim().await;
    sim.qr().script(vec![
        QrStep::Scan,
        QrStep::NeedVerifyCode {
            code: "2468".into(),
        },
        QrStep::Confirm {
            user_id: USER.into(),
        },
    ]);
    let dir = tempfile::tempdir().unwrap();
    let o = ilink(&sim, dir.path(), &["login"], Some("2468\n")).await;
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(code(&o), 0, "{out}\n{err}");
    assert!(err.contains("Scan with WeChat"), "{err}");
    assert!(
        err.contains('█') || err.contains('▀'),
        "a QR code is drawn: {err}"
    );
    assert!(err.contains("Enter the number shown in WeChat"), "{err}");
    assert!(out.contains("Logged in as "), "{out}");
    assert!(out.contains("WeChat user pat@im.wechat"), "{out}");
    let store = FileStore::new(dir.path());
    let accounts = store.accounts().await.unwrap();
    assert_eq!(accounts.len(), 1);
    let creds = store.load_credentials(&accounts[0]).await.unwrap().unwrap();
    assert_eq!(creds.user_id.as_deref(), Some(USER));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let file = store.account_dir(&accounts[0]).join("credentials.json");
        let mode = std::fs::metadata(file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_login_and_a_missing_account_exit_3() {
    let sim = sim().await;
    sim.qr()
        .script(vec![QrStep::NeedVerifyCode { code: "1".into() }]);
    let dir = tempfile::tempdir().unwrap();
    let o = ilink(&sim, dir.path(), &["login"], None).await;
    assert_eq!(code(&o), 3, "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("cancelled"), "{}", text(&o.stderr));

    for args in [
        &["tail"][..],
        &["echo"],
        &["doctor"],
        &["send", "--to", USER, "--text", "x"],
    ] {
        let o = ilink(&sim, dir.path(), args, None).await;
        assert_eq!(code(&o), 3, "{args:?}: {}", text(&o.stderr));
        assert!(
            text(&o.stderr).contains("ilink login"),
            "{}",
            text(&o.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_answers_text_image_voice_and_file_then_stops() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let bot = seed(&sim, dir.path()).await;
    let user = sim.user(USER);
    let image = [b"\x89PNG\r\n\x1a\n".as_slice(), &[7u8; 3000]].concat();
    let silk = ilink_silk::audio_to_voice(&wav(400), ilink_silk::EncodeOptions::default())
        .unwrap()
        .silk;
    user.send_text(&bot.bot_id, "ping").unwrap();
    user.send_image(&bot.bot_id, &image).unwrap();
    user.send_voice(&bot.bot_id, &silk, 400).unwrap();
    user.send_file(&bot.bot_id, "notes.txt", b"some notes")
        .unwrap();
    let o = ilink(&sim, dir.path(), &["echo", "--max", "4"], None).await;
    let out = text(&o.stdout);
    assert_eq!(code(&o), 0, "{out}\n{}", text(&o.stderr));
    assert!(out.contains("pat@im.wechat -> bot: \"ping\""), "{out}");
    assert!(
        out.contains("bot -> pat@im.wechat: \"echo: ping\""),
        "{out}"
    );
    let d = sim.delivered_to(USER);
    assert_eq!(d.len(), 4, "{:?}", sim.dropped());
    assert_eq!(d[0].text(), Some("echo: ping"));
    assert_eq!(d[1].item_type(), Some(2));
    assert_eq!(user.download(&d[1].item).unwrap(), image);
    assert_eq!(d[2].item_type(), Some(3));
    assert_eq!(user.download(&d[2].item).unwrap(), silk);
    assert_eq!(d[3].item_type(), Some(4));
    assert_eq!(d[3].item["file_item"]["file_name"], "notes.txt");
    assert_eq!(user.download(&d[3].item).unwrap(), b"some notes");
    // The file goes back in the message's turn, like the text reply.
    assert!(d[3].run_id.as_deref().is_some_and(|r| !r.is_empty()));
    assert!(sim.dropped().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_and_tail_stop_with_exit_3_when_the_session_expires() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let bot = seed(&sim, dir.path()).await;
    assert!(sim.expire_token(&bot.bot_id));
    for cmd in ["echo", "tail"] {
        let o = ilink(&sim, dir.path(), &[cmd], None).await;
        assert_eq!(code(&o), 3, "{cmd}: {}", text(&o.stderr));
        assert!(
            text(&o.stderr).contains("session expired"),
            "{}",
            text(&o.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_accounts_send_from_the_one_holding_the_token() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let first = seed(&sim, dir.path()).await;
    let second = seed(&sim, dir.path()).await;
    // Nobody wrote to either bot: not deliverable, whatever the account.
    let o = ilink(
        &sim,
        dir.path(),
        &["send", "--to", USER, "--text", "x"],
        None,
    )
    .await;
    assert_eq!(code(&o), 4, "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).starts_with("ilink: not delivered: no logged-in bot account can send to"),
        "{}",
        text(&o.stderr)
    );
    // Without --account, `tail` reads every account and says which one a message came to.
    sim.user(USER)
        .send_text(&first.bot_id, "to the first")
        .unwrap();
    let o = ilink(&sim, dir.path(), &["tail", "--max", "1"], None).await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let line = out.lines().next().unwrap_or_default();
    assert!(
        line.starts_with(&format!("[to {}] ", first.bot_id)),
        "{out}"
    );
    assert!(
        line.ends_with(&format!("{USER}: \"to the first\"")),
        "{out}"
    );
    // Only the first bot holds USER's token: `send` picks it without --account.
    let o = ilink(
        &sim,
        dir.path(),
        &["send", "--to", USER, "--text", "back"],
        None,
    )
    .await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let d = sim.delivered_to(USER);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].bot_id, first.bot_id);
    // Both hold one: ambiguous, --account asked for (usage, exit 2).
    sim.user(USER)
        .send_text(&second.bot_id, "to the second")
        .unwrap();
    let o = ilink(
        &sim,
        dir.path(),
        &["--account", &second.bot_id, "tail", "--max", "1"],
        None,
    )
    .await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    // One account read: its lines carry no `[to …]` prefix.
    let out = text(&o.stdout);
    assert!(
        out.lines().next().is_some_and(
            |l| !l.starts_with("[to ") && l.ends_with(&format!("{USER}: \"to the second\""))
        ),
        "{out}"
    );
    let o = ilink(
        &sim,
        dir.path(),
        &["send", "--to", USER, "--text", "which"],
        None,
    )
    .await;
    assert_eq!(code(&o), 2, "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).starts_with("ilink: usage error: several bot accounts can send to"),
        "{}",
        text(&o.stderr)
    );
    assert!(text(&o.stderr).contains("--account"), "{}", text(&o.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_json_feeds_download_and_decrypt() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let bot = seed(&sim, dir.path()).await;
    let doc: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    sim.user(USER)
        .send_file(&bot.bot_id, "data.bin", &doc)
        .unwrap();
    let o = ilink(&sim, dir.path(), &["tail", "--json", "--max", "1"], None).await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let line = text(&o.stdout);
    let msg: Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(msg["from"], USER);
    assert_eq!(msg["account"], bot.bot_id.as_str());
    assert_eq!(msg["items"][0]["file_item"]["file_name"], "data.bin");

    // The whole line, from an argument and from stdin.
    let out = dir.path().join("a.bin");
    let o = ilink(
        &sim,
        dir.path(),
        &["download", line.trim(), "-o", out.to_str().unwrap()],
        None,
    )
    .await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert_eq!(std::fs::read(&out).unwrap(), doc);
    let out2 = dir.path().join("b.bin");
    let o = ilink(
        &sim,
        dir.path(),
        &["download", "-", "-o", out2.to_str().unwrap()],
        Some(&line),
    )
    .await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert_eq!(std::fs::read(&out2).unwrap(), doc);

    // By parameter and key, and the raw ciphertext decrypted with `ilink decrypt`.
    let media = &msg["items"][0]["file_item"]["media"];
    let param = media["encrypt_query_param"].as_str().unwrap();
    let key = media["aes_key"].as_str().unwrap();
    let out3 = dir.path().join("c.bin");
    let o = ilink(
        &sim,
        dir.path(),
        &[
            "download",
            "--param",
            param,
            "--key",
            key,
            "-o",
            out3.to_str().unwrap(),
        ],
        None,
    )
    .await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert_eq!(std::fs::read(&out3).unwrap(), doc);
    let raw = dir.path().join("raw.enc");
    let o = ilink(
        &sim,
        dir.path(),
        &[
            "download",
            "--param",
            param,
            "--raw",
            "-o",
            raw.to_str().unwrap(),
        ],
        None,
    )
    .await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("not decrypted"),
        "{}",
        text(&o.stdout)
    );
    let plain = dir.path().join("plain.bin");
    let o = ilink(
        &sim,
        dir.path(),
        &[
            "decrypt",
            "--key",
            key,
            raw.to_str().unwrap(),
            plain.to_str().unwrap(),
        ],
        None,
    )
    .await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert_eq!(std::fs::read(&plain).unwrap(), doc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voice_downloads_as_wav() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let bot = seed(&sim, dir.path()).await;
    let voice =
        ilink_silk::audio_to_voice(&wav(600), ilink_silk::EncodeOptions::default()).unwrap();
    sim.user(USER)
        .send_voice(&bot.bot_id, &voice.silk, voice.meta.playtime_ms)
        .unwrap();
    let o = ilink(&sim, dir.path(), &["tail", "--json", "--max", "1"], None).await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let line = text(&o.stdout);
    let out = dir.path().join("v.wav");
    let o = ilink(
        &sim,
        dir.path(),
        &[
            "download",
            line.trim(),
            "--wav",
            "-o",
            out.to_str().unwrap(),
        ],
        None,
    )
    .await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let wav = std::fs::read(&out).unwrap();
    assert_eq!(&wav[..4], b"RIFF");
    // 600 ms of 24 kHz 16-bit mono after the 44-byte header.
    assert_eq!(wav.len() - 44, 600 * 24 * 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_text_and_every_media_kind() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    seeded_with_token(&sim, dir.path()).await;
    let p = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let image = [b"\x89PNG\r\n\x1a\n".as_slice(), &[1u8; 2000]].concat();
    let video = [
        b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2".as_slice(),
        &[2u8; 4000],
    ]
    .concat();
    let doc = b"%PDF-1.4\nhello".to_vec();
    let (ip, vp, fp, ap) = (
        p("a.png", &image),
        p("b.mp4", &video),
        p("c.pdf", &doc),
        p("d.wav", &wav(500)),
    );
    let runs: [&[&str]; 5] = [
        &["send", "--to", USER, "--text", "hello there"],
        &["send", "--to", USER, "--image", &ip, "--caption", "look"],
        &["send", "--to", USER, "--video", &vp],
        &["send", "--to", USER, "--file", &fp],
        &["send", "--to", USER, "--voice", &ap],
    ];
    for args in runs {
        let o = ilink(&sim, dir.path(), args, None).await;
        assert_eq!(code(&o), 0, "{args:?}: {}", text(&o.stderr));
        assert!(text(&o.stdout).contains("delivered"), "{}", text(&o.stdout));
    }
    let d = sim.delivered_to(USER);
    assert_eq!(d.len(), 6, "{:?}", sim.dropped());
    assert_eq!(d[0].text(), Some("hello there"));
    assert_eq!(d[1].text(), Some("look"));
    let user = sim.user(USER);
    assert_eq!(d[2].item_type(), Some(2));
    assert_eq!(user.download(&d[2].item).unwrap(), image);
    assert_eq!(d[3].item_type(), Some(5));
    assert_eq!(user.download(&d[3].item).unwrap(), video);
    assert_eq!(d[4].item_type(), Some(4));
    assert_eq!(d[4].item["file_item"]["file_name"], "c.pdf");
    assert_eq!(user.download(&d[4].item).unwrap(), doc);
    assert_eq!(d[5].item_type(), Some(3));
    assert_eq!(d[5].item["voice_item"]["playtime"], 500);
    assert!(
        user.download(&d[5].item)
            .unwrap()
            .starts_with(b"\x02#!SILK_V3")
    );

    // Past the progress bar's threshold: the bar goes to stderr only when it is a terminal,
    // so piped output stays clean and the file arrives intact.
    let big: Vec<u8> = (0..1_200_000u32).map(|i| (i % 251) as u8).collect();
    let bp = p("big.bin", &big);
    let o = ilink(
        &sim,
        dir.path(),
        &["send", "--to", USER, "--file", &bp],
        None,
    )
    .await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("delivered"), "{}", text(&o.stdout));
    assert!(
        !text(&o.stderr).contains("uploading"),
        "{}",
        text(&o.stderr)
    );
    let d = sim.delivered_to(USER);
    assert_eq!(d.len(), 7, "{:?}", sim.dropped());
    assert_eq!(d[6].item["file_item"]["file_name"], "big.bin");
    assert_eq!(user.download(&d[6].item).unwrap(), big);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undelivered_sends_exit_4() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    seed(&sim, dir.path()).await;
    // Nobody wrote: no context token.
    let o = ilink(
        &sim,
        dir.path(),
        &["send", "--to", USER, "--text", "x"],
        None,
    )
    .await;
    assert_eq!(code(&o), 4, "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("write to the bot first"),
        "{}",
        text(&o.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    seeded_with_token(&sim, dir.path()).await;
    // A throttled send (ret -2) is not lost: with no retries left it waits in the queue
    // (exit 6) until the user writes again.
    sim.inject_fault(Endpoint::SendMessage, Fault::Overloaded(None), 1);
    let o = ilink(
        &sim,
        dir.path(),
        &[
            "send",
            "--to",
            USER,
            "--text",
            "x",
            "--throttle-retries",
            "0",
        ],
        None,
    )
    .await;
    assert_eq!(code(&o), 6, "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("queued text"),
        "{}",
        text(&o.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_then_reports_a_stale_token() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let bot = seed(&sim, dir.path()).await;
    let o = ilink(&sim, dir.path(), &["doctor"], None).await;
    let out = text(&o.stdout);
    assert_eq!(code(&o), 0, "{out}\n{}", text(&o.stderr));
    for want in [
        "ok    token",
        "ok    server",
        "ok    clock",
        "ok    credentials file",
        "iLink-App-ClientVersion: 132105",
        "all checks passed",
    ] {
        assert!(out.contains(want), "{want}: {out}");
    }
    assert!(sim.expire_token(&bot.bot_id));
    let o = ilink(&sim, dir.path(), &["doctor"], None).await;
    assert_eq!(code(&o), 3, "{}", text(&o.stdout));
    assert!(
        text(&o.stdout).contains("FAIL  token"),
        "{}",
        text(&o.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_command_serves_a_whole_session_scripted_over_http() {
    let mut child = command()
        .args(["sim", "--port", "0", "--hold-ms", "300"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut base, mut cdn, mut admin) = (String::new(), String::new(), String::new());
    while admin.is_empty() {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .expect("ilink sim printed its URLs");
        if let Some(v) = line.strip_prefix("base URL:") {
            base = v.trim().to_owned();
        } else if let Some(v) = line.strip_prefix("CDN URL:") {
            cdn = v.trim().to_owned();
        } else if let Some(v) = line.strip_prefix("admin API:") {
            admin = v.trim().to_owned();
        }
    }
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    assert!(cdn.ends_with("/c2c"), "{cdn}");
    let http = ilink_http::HttpClient::new(ilink_http::HttpConfig::default()).unwrap();
    let call = |method: &str, path: &str, body: Option<Value>| {
        let url = format!("{admin}{path}");
        let mut req = if method == "GET" {
            ilink_http::Request::get(url)
        } else {
            ilink_http::Request::post(url)
        };
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string().into_bytes());
        }
        let http = http.clone();
        async move {
            let resp = http.request(req).await.unwrap();
            let bytes = resp.bytes().await.unwrap();
            serde_json::from_slice::<Value>(&bytes).unwrap()
        }
    };
    let info = call("GET", "info", None).await;
    assert_eq!(info["base_url"].as_str().unwrap(), base, "{info}");

    // Log in through the emulator's QR flow, as a person would.
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_str().unwrap().to_owned();
    let run = |args: Vec<String>| {
        let mut c = command();
        c.args([
            "--base-url",
            &base,
            "--cdn-base-url",
            &cdn,
            "--state-dir",
            &state,
        ])
        .args(args)
        .stdin(Stdio::null());
        async move { c.output().await.unwrap() }
    };
    let o = run(vec!["login".into()]).await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let bot_id = out
        .split_whitespace()
        .find(|w| w.contains("@im.bot"))
        .unwrap()
        .trim_end_matches('.')
        .to_owned();
    let user = "o9sim_default_user@im.wechat";
    let sent = call(
        "POST",
        &format!("users/{user}/send"),
        Some(serde_json::json!({"bot_id": bot_id, "kind": "text", "text": "over http"})),
    )
    .await;
    assert!(sent["message_id"].as_u64().is_some(), "{sent}");
    let o = run(vec!["tail".into(), "--max".into(), "1".into()]).await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("\"over http\""));
    let o = run(vec![
        "send".into(),
        "--to".into(),
        user.into(),
        "--text".into(),
        "back".into(),
    ])
    .await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let delivered = call("GET", &format!("delivered?user={user}"), None).await;
    assert_eq!(
        delivered[0]["item"]["text_item"]["text"], "back",
        "{delivered}"
    );
    child.kill().await.unwrap();
}

#[test]
fn decrypt_accepts_every_key_form_and_rejects_a_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = ilink_crypto::MediaKey::generate().unwrap();
    let plain: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let enc = dir.path().join("x.enc");
    std::fs::write(&enc, ilink_crypto::encrypt(&key, &plain)).unwrap();
    for (i, k) in [key.to_hex(), key.to_base64(), key.to_base64_of_hex()]
        .iter()
        .enumerate()
    {
        let out = dir.path().join(format!("x{i}.bin"));
        AssertCommand::new(BIN)
            .args(["decrypt", "--key", k])
            .arg(&enc)
            .arg(&out)
            .assert()
            .success();
        assert_eq!(std::fs::read(&out).unwrap(), plain);
    }
    let wrong = ilink_crypto::MediaKey::generate().unwrap().to_hex();
    let out = dir.path().join("bad.bin");
    let a = AssertCommand::new(BIN)
        .args(["decrypt", "--key", &wrong])
        .arg(&enc)
        .arg(&out)
        .assert()
        .code(1);
    assert!(text(&a.get_output().stderr).contains("does not decrypt"));
    assert!(!out.exists(), "no partial output is left");
    AssertCommand::new(BIN)
        .args(["decrypt", "--key", "nope"])
        .arg(&enc)
        .arg(&out)
        .assert()
        .code(2);
}

#[test]
fn silk_encode_then_decode() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wav");
    std::fs::write(&input, wav(700)).unwrap();
    let silk = dir.path().join("v.silk");
    let a = AssertCommand::new(BIN)
        .args(["silk", "encode"])
        .arg(&input)
        .arg(&silk)
        .assert()
        .success();
    assert!(text(&a.get_output().stdout).contains("encoded 700 ms"));
    assert!(std::fs::read(&silk).unwrap().starts_with(b"\x02#!SILK_V3"));
    let out = dir.path().join("out.wav");
    AssertCommand::new(BIN)
        .args(["silk", "decode", "--rate", "16000"])
        .arg(&silk)
        .arg(&out)
        .assert()
        .success();
    let wav = std::fs::read(&out).unwrap();
    assert_eq!(&wav[..4], b"RIFF");
    assert_eq!(wav.len() - 44, 700 * 16 * 2);
    AssertCommand::new(BIN)
        .args(["silk", "decode"])
        .arg(&input)
        .arg(&out)
        .assert()
        .code(1);
    // A missing input says why (the OS error), a WAV that says 0 Hz is a clear error and no
    // parser panic reaches stderr.
    let a = AssertCommand::new(BIN)
        .args(["silk", "encode"])
        .arg(dir.path().join("missing.wav"))
        .arg(&silk)
        .assert()
        .code(1);
    let err = text(&a.get_output().stderr);
    assert!(err.contains("could not read the audio file: "), "{err}");
    let mut zero = self::wav(100);
    zero[24..28].copy_from_slice(&0u32.to_le_bytes());
    let zero_path = dir.path().join("zero.wav");
    std::fs::write(&zero_path, zero).unwrap();
    let a = AssertCommand::new(BIN)
        .args(["silk", "encode"])
        .arg(&zero_path)
        .arg(&silk)
        .env("RUST_BACKTRACE", "0")
        .assert()
        .code(1);
    let err = text(&a.get_output().stderr);
    assert!(err.contains("unsupported sample rate 0 Hz"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn usage_errors_exit_2_and_help_lists_exit_codes() {
    AssertCommand::new(BIN)
        .args(["send", "--to", USER])
        .assert()
        .code(2);
    AssertCommand::new(BIN).arg("nonsense").assert().code(2);
    let a = AssertCommand::new(BIN).arg("--help").assert().success();
    let help = text(&a.get_output().stdout);
    assert!(help.contains("Exit codes"), "{help}");
    for cmd in [
        "demo", "login", "echo", "tail", "send", "download", "decrypt", "silk", "sim", "doctor",
    ] {
        assert!(help.contains(cmd), "{cmd}: {help}");
    }
}

/// The first line `ilink` wrote to stderr.
fn first_line(o: &Output) -> String {
    text(&o.stderr).lines().next().unwrap_or("").to_owned()
}

/// Issue 21: media is checked before anything is uploaded; each refusal says what is wrong
/// with the file, exits 1 (bad data), and nothing reaches the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_is_checked_before_upload() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    seeded_with_token(&sim, dir.path()).await;
    let files = tempfile::tempdir().unwrap();
    let p = |name: &str, bytes: &[u8]| {
        let path = files.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let empty = p("empty.bin", b"");
    let report = p("report.txt", b"Quarterly report\nAll good.\n");
    let song = p(
        "hello.mp3",
        &[b"ID3\x04\x00\x00\x00\x00\x00\x00".as_slice(), &[0u8; 300]].concat(),
    );
    // 120 MB, sparse: its size is known from the metadata, nothing is read.
    let big = files.path().join("big.bin");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(120_000_000)
        .unwrap();
    let big = big.to_str().unwrap().to_owned();
    let before = sim.requests().len();
    let cases: [(&str, &str, String); 5] = [
        (
            "--image",
            &empty,
            format!("ilink: error: not sent: {empty} is empty (0 bytes): there is nothing to send"),
        ),
        (
            "--image",
            &report,
            format!(
                "ilink: error: not sent: {report} is not an image WeChat shows (JPEG, PNG, GIF, WebP or \
                 BMP): its content is not a recognised media format"
            ),
        ),
        (
            "--video",
            &song,
            format!(
                "ilink: error: not sent: {song} is not a video WeChat plays (MP4 or MOV): its content \
                 is MP3 (audio/mpeg)"
            ),
        ),
        (
            "--file",
            &big,
            format!(
                "ilink: error: not sent: {big} is 114.4 MiB (120000000 bytes), more than the 100.0 MiB \
                 (104857600 bytes) allowed for a file; nothing was uploaded"
            ),
        ),
        (
            "--voice",
            &report,
            format!(
                "ilink: error: not sent: cannot make {report} into a voice message: the audio could \
                 not be read (WAV, MP3, Ogg, FLAC, AAC/M4A or SILK expected; its content is not \
                 a recognised media format)"
            ),
        ),
    ];
    for (flag, path, first) in &cases {
        let o = ilink(&sim, dir.path(), &["send", "--to", USER, flag, path], None).await;
        assert_eq!(code(&o), 1, "{flag} {path}: {}", text(&o.stderr));
        assert_eq!(&first_line(&o), first, "{}", text(&o.stderr));
        assert!(text(&o.stderr).contains("hint: "), "{}", text(&o.stderr));
        assert!(text(&o.stdout).is_empty(), "{}", text(&o.stdout));
    }
    // Audio that is not what it claims: said to be unreadable, nothing sent, exit 1.
    let o = ilink(
        &sim,
        dir.path(),
        &["send", "--to", USER, "--voice", &song],
        None,
    )
    .await;
    assert_eq!(code(&o), 1, "{}", text(&o.stderr));
    assert!(
        first_line(&o).starts_with(&format!(
            "ilink: error: not sent: cannot make {song} into a voice message: the audio could not be read"
        )),
        "{}",
        text(&o.stderr)
    );
    assert!(
        !text(&o.stderr).contains("sendmessage"),
        "{}",
        text(&o.stderr)
    );
    // A caption is not sent either when the media is refused.
    let o = ilink(
        &sim,
        dir.path(),
        &[
            "send",
            "--to",
            USER,
            "--image",
            &report,
            "--caption",
            "look",
        ],
        None,
    )
    .await;
    assert_eq!(code(&o), 1, "{}", text(&o.stderr));
    // Nothing reached the server: no grant, no upload, no message.
    let after: Vec<_> = sim.requests().into_iter().skip(before).collect();
    assert!(
        after.iter().all(|r| !r.path.ends_with("/getuploadurl")
            && !r.path.ends_with("/upload")
            && !r.path.ends_with("/sendmessage")),
        "{:?}",
        after.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    assert!(sim.delivered_to(USER).is_empty());

    // Asked for: a mismatch goes as a file, with a notice.
    let o = ilink(
        &sim,
        dir.path(),
        &["send", "--to", USER, "--image", &report, "--or-file"],
        None,
    )
    .await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(
        first_line(&o).starts_with(&format!(
            "ilink: notice: {report} is not an image WeChat shows"
        )),
        "{}",
        text(&o.stderr)
    );
    assert!(
        text(&o.stdout).contains("delivered file"),
        "{}",
        text(&o.stdout)
    );
    let d = sim.delivered_to(USER);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].item_type(), Some(4));
    assert_eq!(d[0].item["file_item"]["file_name"], "report.txt");
    // Never an empty file, even as a file.
    let o = ilink(
        &sim,
        dir.path(),
        &["send", "--to", USER, "--image", &empty, "--or-file"],
        None,
    )
    .await;
    assert_eq!(code(&o), 1, "{}", text(&o.stderr));
}

/// Issue 20: a refused upload grant exits like a refused sendmessage: 4 for ret -2, 3 for
/// -14, with the same hints; and the grant carries the chat's context_token (the sim
/// refuses it otherwise, as the live server does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_upload_grant_exits_like_a_refused_send() {
    let sim = sim().await;
    assert!(sim.config().upload_requires_context_token.is_some());
    let dir = tempfile::tempdir().unwrap();
    seeded_with_token(&sim, dir.path()).await;
    let image = dir.path().join("a.png");
    std::fs::write(
        &image,
        [b"\x89PNG\r\n\x1a\n".as_slice(), &[3u8; 200]].concat(),
    )
    .unwrap();
    let image = image.to_str().unwrap();

    sim.inject_fault(Endpoint::GetUploadUrl, Fault::Overloaded(None), 1);
    let o = ilink(
        &sim,
        dir.path(),
        &["send", "--to", USER, "--image", image],
        None,
    )
    .await;
    assert_eq!(code(&o), 4, "{}", text(&o.stderr));
    let first = first_line(&o);
    assert!(
        first.starts_with("ilink: not delivered: getuploadurl refused the upload: "),
        "{first}"
    );
    // The server's code is named as everywhere in the workspace: `(code -2)`.
    assert!(first.contains("(code -2)"), "{first}");
    assert!(
        text(&o.stderr).contains("hint: the server refused the message (code -2)"),
        "{}",
        text(&o.stderr)
    );

    sim.inject_fault(Endpoint::GetUploadUrl, Fault::StaleToken, 1);
    let o = ilink(
        &sim,
        dir.path(),
        &["send", "--to", USER, "--file", image],
        None,
    )
    .await;
    assert_eq!(code(&o), 3, "{}", text(&o.stderr));
    assert!(
        first_line(&o).starts_with("ilink: login needed: getuploadurl refused the upload: "),
        "{}",
        text(&o.stderr)
    );
    assert!(
        text(&o.stderr).contains("run `ilink login` again"),
        "{}",
        text(&o.stderr)
    );
    assert!(sim.uploads().is_empty());
    assert!(sim.delivered_to(USER).is_empty());

    // Without a fault the same send goes through: the grant carried the token.
    let o = ilink(
        &sim,
        dir.path(),
        &["send", "--to", USER, "--image", image],
        None,
    )
    .await;
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let grant = sim
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path.ends_with("/getuploadurl"))
        .unwrap();
    let body: Value = serde_json::from_str(grant.body.as_deref().unwrap()).unwrap();
    assert_eq!(
        body["context_token"].as_str(),
        sim.inbound().last().map(|m| m.context_token.as_str())
    );
    assert_eq!(sim.delivered_to(USER).len(), 1);
}
