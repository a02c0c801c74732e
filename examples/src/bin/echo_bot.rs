//! Echo bot: answers every text with the same text.
//!
//! Offline, with an emulated WeChat user:  cargo run -p ilink-examples --bin echo_bot -- --sim
//! Real WeChat (scan the QR code once):     cargo run -p ilink-examples --bin echo_bot
//! Against `ilink sim`:  ILINK_BASE_URL=… ILINK_CDN_BASE_URL=… cargo run -p ilink-examples --bin echo_bot
#![forbid(unsafe_code)]

use std::process::ExitCode;

use ilink_client::{Content, MessageContext};
use ilink_examples::{BoxError, ensure, replies, sim_client, sim_login, start_sim};

/// The bot: this is all there is to it.
async fn echo(ctx: MessageContext) -> Result<(), ilink_client::SendError> {
    let answer = match ctx.content() {
        Some(Content::Text { text, .. } | Content::Quote { text, .. }) => format!("echo: {text}"),
        _ => "I can only echo text.".to_owned(),
    };
    ctx.reply(&answer).await.map(|_| ())
}

async fn offline() -> Result<(), BoxError> {
    let sim = start_sim().await?;
    let client = sim_client(&sim)?;
    let user = "alice@im.wechat";
    let account = sim_login(&client, &sim, user).await?;
    let bot = account.clone();
    let running = tokio::spawn(async move { bot.run(echo).await });

    let alice = sim.user(user);
    alice.send_text(account.id(), "hello")?;
    alice.send_text(account.id(), "你好，机器人")?;
    alice.send_image(account.id(), b"\x89PNG\r\n\x1a\n....")?;
    let got = replies(&sim, user, 3).await?;
    for d in &got {
        println!("bot -> alice: {:?}", d.text().unwrap_or_default());
    }
    ensure(got[0].text() == Some("echo: hello"), "text echoed")?;
    ensure(got[1].text() == Some("echo: 你好，机器人"), "CJK echoed")?;
    ensure(
        got[2].text() == Some("I can only echo text."),
        "media answered",
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
        "echo bot {} running; Ctrl-C or SIGTERM stops it",
        account.id()
    );
    account.run(echo).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    ilink_examples::run_example("echo_bot", offline(), online()).await
}
