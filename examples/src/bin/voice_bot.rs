//! Voice bot: listens to voice messages (SILK decoded to WAV), says how long they were, and
//! answers with a voice message of its own: one beep per second it heard.
//!
//! Offline, with an emulated WeChat user:  cargo run -p ilink-examples --bin voice_bot -- --sim
//! Real WeChat (scan the QR code once):     cargo run -p ilink-examples --bin voice_bot
#![forbid(unsafe_code)]

use std::process::ExitCode;

use ilink_client::{Content, MediaType, MessageContext};
use ilink_examples::{BoxError, ensure, replies, sim_client, sim_login, start_sim, tone};

/// Beeps (880 Hz, 150 ms, with 150 ms pauses), one per started second, as a WAV file.
fn beeps(seconds: u64) -> Result<Vec<u8>, BoxError> {
    let mut samples = Vec::new();
    for _ in 0..seconds.clamp(1, 10) {
        samples.extend(tone(880.0, 150));
        samples.extend(std::iter::repeat_n(0i16, 24 * 150));
    }
    let pcm = ilink_silk::Pcm {
        samples,
        sample_rate: 24_000,
    };
    Ok(pcm.to_wav()?)
}

/// The bot.
async fn voice(ctx: MessageContext) -> Result<(), BoxError> {
    let Some(Content::Voice {
        duration,
        transcript,
        item,
        ..
    }) = ctx.message().contents().find(|c| c.kind() == "voice")
    else {
        ctx.reply("Send me a voice message.").await?;
        return Ok(());
    };
    if let Some(transcript) = transcript {
        ctx.reply(&format!("WeChat heard: {transcript}")).await?;
    }
    // The voice, decrypted and decoded from SILK: a 24 kHz mono WAV file.
    let wav = ctx.account().download_voice_wav(item).await?;
    println!("downloaded {} bytes of WAV", wav.len());
    // How long it is: as the message says (`playtime`), or, when a message comes without it
    // (live captures did, docs/protocol.md §19), as the SILK stream itself says.
    let ms = match duration {
        Some(d) => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
        None => ilink_silk::playtime_ms(&ctx.account().download(item).await?)?,
    };
    ctx.reply(&format!("I heard {ms} ms of audio.")).await?;
    // Any audio file becomes a voice message (converted to SILK by the client).
    ctx.reply_media_as(beeps(ms.div_ceil(1000))?, MediaType::Voice)
        .await?;
    Ok(())
}

async fn offline() -> Result<(), BoxError> {
    let sim = start_sim().await?;
    let client = sim_client(&sim)?;
    let user = "vic@im.wechat";
    let account = sim_login(&client, &sim, user).await?;
    let bot = account.clone();
    let running = tokio::spawn(async move { bot.run(voice).await });
    let vic = sim.user(user);

    // 2.2 s of voice, encoded as WeChat does (Tencent SILK, 24 kHz).
    let mut said = tone(220.0, 1200);
    said.extend(tone(330.0, 1000));
    let silk = ilink_silk::encode_pcm(&said, 24_000, ilink_silk::EncodeOptions::default())?;
    vic.send_voice(account.id(), &silk.silk, silk.meta.playtime_ms)?;
    let got = replies(&sim, user, 2).await?;
    println!("bot -> vic: {:?}", got[0].text().unwrap_or_default());
    ensure(
        got[0].text() == Some("I heard 2200 ms of audio."),
        "the bot decoded the voice",
    )?;
    ensure(got[1].item_type() == Some(3), "the bot answered with voice")?;
    let answer = vic.download(&got[1].item)?;
    let pcm = ilink_silk::decode_silk(&answer, ilink_silk::DecodeOptions::default())?;
    println!(
        "bot -> vic: a voice message of {} ms",
        pcm.duration().as_millis()
    );
    ensure(pcm.duration().as_millis() == 900, "three beeps for 2.2 s")?;
    ensure(
        got[1].item["voice_item"]["playtime"] == 900,
        "the voice item carries its playtime",
    )?;
    ensure(sim.dropped().is_empty(), "nothing dropped")?;
    account.shutdown();
    running.await??;
    sim.shutdown().await;
    Ok(())
}

async fn online() -> Result<(), BoxError> {
    let client = ilink_examples::real_client()?;
    let account = ilink_examples::stored_or_login(&client).await?;
    // Ctrl-C or SIGTERM (`docker stop`, `systemctl stop`): the message in hand finishes, its
    // progress is committed, notifystop is sent, and `run` returns. A second one exits at once.
    client.shutdown_handle().on_signals();
    println!(
        "voice bot {} running; Ctrl-C or SIGTERM stops it",
        account.id()
    );
    account.run(voice).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    ilink_examples::run_example("voice_bot", offline(), online()).await
}
