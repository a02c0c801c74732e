//! `ilink demo`: the whole protocol offline, against an in-process ilink-sim.
//!
//! A real QR login (the emulated phone scans and confirms), then an emulated WeChat user
//! sends text, an image, a file and a voice message; a bot written with the public
//! `ilink-client` API answers each; the user downloads and decrypts every reply, and the
//! summary checks that each arrived intact.

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ilink_client::proto::ItemType;
use ilink_client::{
    Client, ClientConfig, Delays, LoginEvent, LoginOutcome, LoginPresenter, MediaType,
    MessageContext, QrCode, render_qr_unicode,
};
use ilink_sim::{Delivered, QrStep, Sim, SimConfig};

use crate::error::{CliError, CliResult};
use crate::net::human_size;

const USER: &str = "demo-user@im.wechat";
const WAIT: Duration = Duration::from_secs(15);

fn say(line: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", line.as_ref());
    let _ = out.flush();
}

/// Shows the QR login in the transcript.
struct DemoPresenter;

impl LoginPresenter for DemoPresenter {
    fn show_qr(&self, qr: &QrCode) {
        say(format!(
            "  The bot asks for a QR code ({}/{}); in real life you scan it with WeChat:",
            qr.number, qr.max
        ));
        match render_qr_unicode(&qr.content) {
            Ok(art) => {
                for line in art.lines() {
                    say(format!("    {line}"));
                }
            }
            Err(e) => say(format!("    (cannot draw the QR code: {e})")),
        }
        say(format!("    {}", qr.content));
    }

    fn event(&self, event: &LoginEvent) {
        match event {
            LoginEvent::Scanned => say("  phone: scanned the code; confirming on the phone..."),
            LoginEvent::Confirmed { account_id } => say(format!(
                "  phone: confirmed; the bot is logged in as {account_id}"
            )),
            other => say(format!("  login: {other:?}")),
        }
    }
}

/// What the bot sent for a message whose bytes the demo cannot know in advance (the voice
/// it encoded), plus anything that went wrong inside the bot.
#[derive(Default)]
struct BotLog {
    voice_reply: Option<Vec<u8>>,
    voice_in_ms: Option<u64>,
    errors: Vec<String>,
}

/// The demo bot: plain public `ilink-client` API.
async fn handle(ctx: MessageContext, log: Arc<Mutex<BotLog>>) {
    if let Err(e) = answer(&ctx, &log).await {
        say(format!("  bot: failed: {e}"));
        if let Ok(mut l) = log.lock() {
            l.errors.push(e);
        }
    }
}

async fn answer(ctx: &MessageContext, log: &Arc<Mutex<BotLog>>) -> Result<(), String> {
    let account = ctx.account();
    let Some(item) = ctx.message().media_item().cloned() else {
        let text = ctx.text().unwrap_or_default();
        ctx.reply(&format!("echo: {text}"))
            .await
            .map_err(|e| e.to_string())?;
        return Ok(());
    };
    match item.item_type {
        ItemType::Voice => {
            // Inbound voice, decrypted and decoded from SILK to a 24 kHz WAV file.
            let wav = account
                .download_voice_wav(&item)
                .await
                .map_err(|e| e.to_string())?;
            let ms = wav.len().saturating_sub(44) as u64 * 1000 / (2 * 24_000);
            say(format!(
                "  bot: decrypted the voice message and decoded it: {ms} ms of 24 kHz audio ({} WAV)",
                human_size(wav.len() as u64)
            ));
            // Answer voice with voice: the audio it heard, encoded again as SILK.
            let voice = tokio::task::spawn_blocking(move || {
                ilink_silk::audio_to_voice(&wav, ilink_silk::EncodeOptions::default())
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
            if let Ok(mut l) = log.lock() {
                l.voice_reply = Some(voice.silk.clone());
                l.voice_in_ms = Some(ms);
            }
            ctx.reply_media_as(voice.silk, MediaType::Voice)
                .await
                .map_err(|e| e.to_string())?;
        }
        ItemType::File => {
            let bytes = account.download(&item).await.map_err(|e| e.to_string())?;
            let name = item
                .file_item
                .as_ref()
                .and_then(|f| f.file_name.clone())
                .unwrap_or_else(|| "file".to_owned());
            say(format!(
                "  bot: downloaded and decrypted {name} ({})",
                human_size(bytes.len() as u64)
            ));
            ctx.reply_file(bytes, &name)
                .await
                .map_err(|e| e.to_string())?;
        }
        kind => {
            let bytes = account.download(&item).await.map_err(|e| e.to_string())?;
            say(format!(
                "  bot: downloaded and decrypted the {} ({})",
                if kind == ItemType::Video {
                    "video"
                } else {
                    "image"
                },
                human_size(bytes.len() as u64)
            ));
            let as_type = if kind == ItemType::Video {
                MediaType::Video
            } else {
                MediaType::Image
            };
            ctx.reply_media_as(bytes, as_type)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// A 96×64 24-bit BMP image with a gradient and a grid.
pub fn demo_image() -> Vec<u8> {
    let (w, h) = (96u32, 64u32);
    let row = w * 3;
    let data_len = row * h;
    let mut v = Vec::with_capacity(54 + data_len as usize);
    v.extend_from_slice(b"BM");
    v.extend_from_slice(&(54 + data_len).to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&54u32.to_le_bytes());
    v.extend_from_slice(&40u32.to_le_bytes());
    v.extend_from_slice(&w.to_le_bytes());
    v.extend_from_slice(&h.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&24u16.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&data_len.to_le_bytes());
    v.extend_from_slice(&2835u32.to_le_bytes());
    v.extend_from_slice(&2835u32.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    for y in 0..h {
        for x in 0..w {
            let grid = x % 16 == 0 || y % 16 == 0;
            let (b, g, r) = if grid {
                (255, 255, 255)
            } else {
                ((x * 255 / w) as u8, (y * 255 / h) as u8, 160u8)
            };
            v.extend_from_slice(&[b, g, r]);
        }
    }
    v
}

/// A small text document.
pub fn demo_file() -> Vec<u8> {
    let mut s = String::from("ilink demo notes\n================\n\n");
    for i in 1..=60 {
        s.push_str(&format!(
            "{i:02}. Every reply is checked byte for byte after AES-128-ECB on the CDN. 你好\n"
        ));
    }
    s.into_bytes()
}

/// About 1.5 s of speech-like audio at 24 kHz: three voiced "syllables" (a, i, u) with a
/// gliding pitch, made of harmonics shaped by vowel formants, with pauses between them.
pub fn speech_like_pcm() -> Vec<i16> {
    const RATE: f32 = 24_000.0;
    // (F1, F2) of the vowels a, i, u, in Hz.
    let vowels = [(800.0f32, 1200.0f32), (300.0, 2300.0), (350.0, 800.0)];
    let syllable = 0.38f32;
    let pause = 0.12f32;
    let total = vowels.len() as f32 * (syllable + pause);
    let n = (total * RATE) as usize;
    let mut out = Vec::with_capacity(n);
    let mut phase = 0.0f32;
    for i in 0..n {
        let t = i as f32 / RATE;
        let slot = (t / (syllable + pause)) as usize;
        let local = t - slot as f32 * (syllable + pause);
        let Some(&(f1, f2)) = vowels.get(slot) else {
            out.push(0);
            continue;
        };
        if local >= syllable {
            out.push(0);
            continue;
        }
        // Pitch glides from 120 to 170 Hz within a syllable.
        let f0 = 120.0 + 50.0 * (local / syllable);
        phase += 2.0 * std::f32::consts::PI * f0 / RATE;
        let envelope = (std::f32::consts::PI * local / syllable).sin().powi(2);
        let mut s = 0.0f32;
        for k in 1..=28 {
            let f = k as f32 * f0;
            if f > 4000.0 {
                break;
            }
            let res = |fc: f32, bw: f32| 1.0 / (1.0 + ((f - fc) / bw).powi(2));
            let amp = res(f1, 90.0) + 0.6 * res(f2, 120.0) + 0.05;
            s += amp * (k as f32 * phase).sin() / (k as f32).sqrt();
        }
        out.push((s * envelope * 4200.0).clamp(-32_000.0, 32_000.0) as i16);
    }
    out
}

/// One thing the emulated user does.
type UserAction<'a> = Box<dyn Fn() -> Result<(), ilink_sim::SimError> + 'a>;

struct Check {
    what: String,
    ok: bool,
    detail: String,
}

fn check(checks: &mut Vec<Check>, what: &str, ok: bool, detail: impl Into<String>) {
    let detail = detail.into();
    say(format!(
        "  {} {what}: {detail}",
        if ok { "ok  " } else { "FAIL" }
    ));
    checks.push(Check {
        what: what.to_owned(),
        ok,
        detail,
    });
}

fn describe(d: &Delivered) -> String {
    match d.item_type() {
        Some(1) => format!("text {:?}", d.text().unwrap_or_default()),
        Some(2) => "an image".to_owned(),
        Some(3) => format!(
            "a voice message ({} ms)",
            d.item["voice_item"]["playtime"].as_u64().unwrap_or(0)
        ),
        Some(4) => format!(
            "file {}",
            d.item["file_item"]["file_name"].as_str().unwrap_or("?")
        ),
        Some(5) => "a video".to_owned(),
        other => format!("an item of type {other:?}"),
    }
}

fn sim_err(e: ilink_sim::SimError) -> CliError {
    CliError::failure(format!("the emulator failed: {}", crate::error::chain(&e)))
}

/// `ilink demo`.
pub async fn run() -> CliResult {
    let started = Instant::now();
    let sim = Sim::start(SimConfig::for_tests(Duration::from_millis(500)))
        .await
        .map_err(sim_err)?;
    let result = run_with(&sim, started).await;
    sim.shutdown().await;
    result
}

async fn run_with(sim: &Sim, started: Instant) -> CliResult {
    say(format!(
        "ilink demo: a bot and an emulated WeChat user, offline, against ilink-sim at {}",
        sim.base_url()
    ));
    say("");
    say("1. Log in with a QR code");
    // The emulated phone: the code is shown, then scanned, then confirmed by the user.
    sim.qr().script(vec![
        QrStep::Wait,
        QrStep::Scan,
        QrStep::Confirm {
            user_id: USER.to_owned(),
        },
    ]);
    let config = ClientConfig::for_server(&sim.base_url())
        .with_cdn_base_url(sim.cdn_base_url())
        .with_delays(Delays::fast());
    let client = Client::builder().config(config).in_memory().build()?;
    let account = match client.login(&DemoPresenter).await? {
        LoginOutcome::Confirmed(a) => a,
        _ => {
            return Err(CliError::failure(
                "the demo login did not confirm an account",
            ));
        }
    };
    let bot_id = account.id().to_owned();

    say("");
    say("2. Run the bot (echo text, send media back, answer voice with voice)");
    let log = Arc::new(Mutex::new(BotLog::default()));
    let bot = account.clone();
    let bot_log = log.clone();
    let bot_task = tokio::spawn(async move {
        bot.run(move |ctx: MessageContext| handle(ctx, bot_log.clone()))
            .await
    });

    let user = sim.user(USER);
    let text = "Hello, bot! 你好 👋";
    let image = demo_image();
    let file = demo_file();
    let pcm = speech_like_pcm();
    let voice = tokio::task::spawn_blocking(move || {
        ilink_silk::encode_pcm(&pcm, 24_000, ilink_silk::EncodeOptions::default())
    })
    .await
    .map_err(|e| CliError::failure(format!("the voice encoder failed: {e}")))?
    .map_err(|e| CliError::failure(format!("cannot encode the demo voice: {e}")))?;

    let mut replies: Vec<Delivered> = Vec::new();
    let steps: Vec<(String, UserAction<'_>)> = vec![
        (
            format!("text {text:?}"),
            Box::new(|| user.send_text(&bot_id, text).map(|_| ())),
        ),
        (
            format!("an image (BMP 96x64, {})", human_size(image.len() as u64)),
            Box::new(|| user.send_image(&bot_id, &image).map(|_| ())),
        ),
        (
            format!("file notes.txt ({})", human_size(file.len() as u64)),
            Box::new(|| user.send_file(&bot_id, "notes.txt", &file).map(|_| ())),
        ),
        (
            format!(
                "a voice message ({} ms of speech-like audio as SILK, {})",
                voice.meta.playtime_ms,
                human_size(voice.silk.len() as u64)
            ),
            Box::new(|| {
                user.send_voice(&bot_id, &voice.silk, voice.meta.playtime_ms)
                    .map(|_| ())
            }),
        ),
    ];
    for (i, (label, send)) in steps.iter().enumerate() {
        say(format!("  user -> bot: {label}"));
        send().map_err(sim_err)?;
        match sim.wait_for_delivered(USER, i + 1, WAIT).await {
            Ok(d) => {
                if let Some(last) = d.get(i) {
                    say(format!("  bot -> user: {}", describe(last)));
                }
                replies = d;
            }
            Err(_) => {
                say(format!(
                    "  bot -> user: no reply within {} s",
                    WAIT.as_secs()
                ));
                break;
            }
        }
    }

    account.shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(5), bot_task).await;

    say("");
    say("3. Check every reply (the user downloads and decrypts each one)");
    let mut checks = Vec::new();
    let reply = |i: usize| replies.get(i);
    let expected_text = format!("echo: {text}");
    match reply(0) {
        Some(d) => check(
            &mut checks,
            "text",
            d.text() == Some(expected_text.as_str()),
            format!("{:?}", d.text().unwrap_or_default()),
        ),
        None => check(&mut checks, "text", false, "no reply"),
    }
    let media_check =
        |checks: &mut Vec<Check>, what: &str, i: usize, ty: u64, want: &[u8]| match reply(i) {
            Some(d) if d.item_type() == Some(ty) => match user.download(&d.item) {
                Ok(got) => check(
                    checks,
                    what,
                    got == want,
                    format!(
                        "{} back, {} (md5 {})",
                        human_size(got.len() as u64),
                        if got == want {
                            "identical"
                        } else {
                            "DIFFERENT"
                        },
                        ilink_crypto::md5_hex(&got)
                    ),
                ),
                Err(e) => check(
                    checks,
                    what,
                    false,
                    format!("cannot download: {}", crate::error::chain(&e)),
                ),
            },
            Some(d) => check(checks, what, false, format!("got {}", describe(d))),
            None => check(checks, what, false, "no reply"),
        };
    media_check(&mut checks, "image", 1, 2, &image);
    media_check(&mut checks, "file", 2, 4, &file);
    if let Some(d) = reply(2) {
        let name = d.item["file_item"]["file_name"].as_str().unwrap_or("");
        check(
            &mut checks,
            "file name",
            name == "notes.txt",
            format!("{name:?}"),
        );
        // A reply in the turn carries the turn's run_id (compat 2.4.4+).
        check(
            &mut checks,
            "file in turn",
            d.run_id.as_deref().is_some_and(|r| !r.is_empty()),
            format!("run_id {:?}", d.run_id.as_deref().unwrap_or("none")),
        );
    }
    let (voice_reply, voice_in_ms, bot_errors) = match log.lock() {
        Ok(l) => (l.voice_reply.clone(), l.voice_in_ms, l.errors.clone()),
        Err(_) => (None, None, vec!["the bot log is poisoned".to_owned()]),
    };
    let sent_ms = voice.meta.playtime_ms;
    match voice_in_ms {
        Some(ms) => check(
            &mut checks,
            "voice in",
            ms.abs_diff(sent_ms) <= 40,
            format!("the bot decoded {ms} ms of the {sent_ms} ms the user sent"),
        ),
        None => check(
            &mut checks,
            "voice in",
            false,
            "the bot did not decode the voice",
        ),
    }
    match voice_reply {
        Some(want) => {
            media_check(&mut checks, "voice reply", 3, 3, &want);
            if let Some(got) = reply(3).and_then(|d| user.download(&d.item).ok()) {
                let decoded = ilink_silk::decode_silk(&got, ilink_silk::DecodeOptions::default());
                match decoded {
                    Ok(pcm) => {
                        let ms = pcm.duration().as_millis() as u64;
                        check(
                            &mut checks,
                            "voice reply plays",
                            ms.abs_diff(sent_ms) <= 40 && got.starts_with(b"\x02#!SILK_V3"),
                            format!("Tencent SILK, decodes to {ms} ms"),
                        );
                    }
                    Err(e) => check(&mut checks, "voice reply plays", false, e.to_string()),
                }
            }
        }
        None => check(&mut checks, "voice reply", false, "the bot sent no voice"),
    }
    let dropped = sim.dropped();
    check(
        &mut checks,
        "nothing dropped",
        dropped.is_empty(),
        format!(
            "{} sendmessage request(s) dropped by the server",
            dropped.len()
        ),
    );
    let uploads = sim.uploads();
    check(
        &mut checks,
        "CDN uploads",
        !uploads.is_empty() && uploads.iter().all(|u| u.accepted()),
        format!(
            "{} of {} accepted",
            uploads.iter().filter(|u| u.accepted()).count(),
            uploads.len()
        ),
    );
    check(
        &mut checks,
        "bot errors",
        bot_errors.is_empty(),
        if bot_errors.is_empty() {
            "none".to_owned()
        } else {
            bot_errors.join("; ")
        },
    );

    let failed: Vec<&Check> = checks.iter().filter(|c| !c.ok).collect();
    let secs = started.elapsed().as_secs_f64();
    say("");
    if failed.is_empty() {
        say(format!(
            "demo passed: {} replies arrived intact, {} checks ok, in {secs:.1} s",
            replies.len(),
            checks.len()
        ));
        Ok(())
    } else {
        let names: Vec<String> = failed
            .iter()
            .map(|c| format!("{}: {}", c.what, c.detail))
            .collect();
        Err(CliError::failure(format!(
            "demo FAILED: {} of {} checks failed ({})",
            failed.len(),
            checks.len(),
            names.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_is_a_valid_bmp() {
        let img = demo_image();
        assert_eq!(&img[..2], b"BM");
        assert_eq!(
            u32::from_le_bytes(img[2..6].try_into().unwrap()) as usize,
            img.len()
        );
        assert_eq!(img.len(), 54 + 96 * 3 * 64);
    }

    #[test]
    fn the_speech_encodes_as_voice() {
        let pcm = speech_like_pcm();
        assert_eq!(pcm.len(), 36_000);
        assert!(pcm.iter().any(|&s| s.unsigned_abs() > 1000));
        let v = ilink_silk::encode_pcm(&pcm, 24_000, ilink_silk::EncodeOptions::default()).unwrap();
        assert_eq!(v.meta.playtime_ms, 1500);
        assert!(v.silk.starts_with(b"\x02#!SILK_V3"));
    }
}
