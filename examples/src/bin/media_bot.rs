//! Media bot: sends images, videos and files back, says what it received, and draws a
//! picture when asked.
//!
//! Offline, with an emulated WeChat user:  cargo run -p ilink-examples --bin media_bot -- --sim
//! Real WeChat (scan the QR code once):     cargo run -p ilink-examples --bin media_bot
#![forbid(unsafe_code)]

use std::process::ExitCode;

use ilink_client::{Content, MediaType, MessageContext};
use ilink_examples::{BoxError, ensure, replies, sim_client, sim_login, start_sim};

/// A 32×32 24-bit BMP with a diagonal gradient.
fn picture() -> Vec<u8> {
    let (w, h) = (32u32, 32u32);
    let data = w * 3 * h;
    let mut v = Vec::new();
    v.extend_from_slice(b"BM");
    v.extend_from_slice(&(54 + data).to_le_bytes());
    v.extend_from_slice(&[0, 0, 0, 0, 54, 0, 0, 0, 40, 0, 0, 0]);
    v.extend_from_slice(&w.to_le_bytes());
    v.extend_from_slice(&h.to_le_bytes());
    v.extend_from_slice(&[1, 0, 24, 0, 0, 0, 0, 0]);
    v.extend_from_slice(&data.to_le_bytes());
    v.extend_from_slice(&[0; 16]);
    for y in 0..h {
        for x in 0..w {
            v.extend_from_slice(&[(x * 8) as u8, (y * 8) as u8, ((x + y) * 4) as u8]);
        }
    }
    v
}

/// The bot.
async fn media(ctx: MessageContext) -> Result<(), BoxError> {
    let Some(item) = ctx.message().media_item().cloned() else {
        if ctx.text().is_some_and(|t| t.trim() == "picture") {
            ctx.reply_media_as(picture(), MediaType::Image).await?;
        } else {
            ctx.reply("Send me an image, a video or a file, or write \"picture\".")
                .await?;
        }
        return Ok(());
    };
    // Download and decrypt what the user sent (the key comes with the message).
    let bytes = ctx.account().download(&item).await?;
    match Content::of(&item) {
        Content::File { name, .. } => {
            let name = name.unwrap_or("file").to_owned();
            ctx.reply(&format!(
                "Got {name}: {} bytes. Here it is back.",
                bytes.len()
            ))
            .await?;
            // In the same turn as the text (its run_id), with the name kept.
            ctx.reply_file(bytes, &name).await?;
        }
        _ => {
            // Images and videos: back with a caption; the type follows the content.
            ctx.reply_media(bytes, Some("Here is what you sent."))
                .await?;
        }
    }
    Ok(())
}

async fn offline() -> Result<(), BoxError> {
    let sim = start_sim().await?;
    let client = sim_client(&sim)?;
    let user = "mia@im.wechat";
    let account = sim_login(&client, &sim, user).await?;
    let bot = account.clone();
    let running = tokio::spawn(async move { bot.run(media).await });
    let mia = sim.user(user);

    mia.send_text(account.id(), "picture")?;
    let got = replies(&sim, user, 1).await?;
    ensure(
        mia.download(&got[0].item)? == picture(),
        "the picture arrived intact",
    )?;

    let photo = [b"\x89PNG\r\n\x1a\n".as_slice(), &[42u8; 4000]].concat();
    mia.send_image(account.id(), &photo)?;
    let got = replies(&sim, user, 3).await?;
    ensure(
        got[1].text() == Some("Here is what you sent."),
        "caption first",
    )?;
    ensure(got[2].item_type() == Some(2), "then an image")?;
    ensure(
        mia.download(&got[2].item)? == photo,
        "the photo came back intact",
    )?;

    let doc: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
    mia.send_file(account.id(), "report.bin", &doc)?;
    let got = replies(&sim, user, 5).await?;
    println!("bot -> mia: {:?}", got[3].text().unwrap_or_default());
    ensure(
        got[4].item["file_item"]["file_name"] == "report.bin",
        "file name kept",
    )?;
    ensure(
        got[4].run_id.is_some() && got[4].run_id == got[3].run_id,
        "the file came back in the same turn as the text",
    )?;
    ensure(
        mia.download(&got[4].item)? == doc,
        "the file came back intact",
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
        "media bot {} running; Ctrl-C or SIGTERM stops it",
        account.id()
    );
    account.run(media).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    ilink_examples::run_example("media_bot", offline(), online()).await
}
