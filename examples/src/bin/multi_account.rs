//! Multi-account bot: several bot accounts in one process, each with its own long-poll loop,
//! and proactive sends routed to the account that can reach the user.
//!
//! Offline, with two emulated users and two bots:  cargo run -p ilink-examples --bin multi_account -- --sim
//! Real WeChat (every account stored in the state directory; logs in one if there is none):
//!   cargo run -p ilink-examples --bin multi_account
#![forbid(unsafe_code)]

use std::process::ExitCode;

use ilink_client::{Account, MessageContext};
use ilink_examples::{BoxError, ensure, replies, sim_client, sim_login, start_sim};

/// Every account runs this handler; it says which bot answered.
async fn answer(ctx: MessageContext) -> Result<(), ilink_client::SendError> {
    let me = ctx.account().id().to_owned();
    let text = match ctx.content() {
        Some(c) => c
            .text()
            .map_or_else(|| format!("({})", c.kind()), str::to_owned),
        None => "(nothing)".to_owned(),
    };
    ctx.reply(&format!("{me} got: {text}")).await.map(|_| ())
}

fn run_all(accounts: &[Account]) -> Vec<tokio::task::JoinHandle<ilink_client::Result<()>>> {
    accounts
        .iter()
        .cloned()
        .map(|a| tokio::spawn(async move { a.run(answer).await }))
        .collect()
}

async fn offline() -> Result<(), BoxError> {
    let sim = start_sim().await?;
    let client = sim_client(&sim)?;
    // Two logins, scanned by two different WeChat users.
    let a = sim_login(&client, &sim, "ann@im.wechat").await?;
    let b = sim_login(&client, &sim, "ben@im.wechat").await?;
    let tasks = run_all(&[a.clone(), b.clone()]);

    sim.user("ann@im.wechat").send_text(a.id(), "hi A")?;
    sim.user("ben@im.wechat").send_text(b.id(), "hi B")?;
    let to_ann = replies(&sim, "ann@im.wechat", 1).await?;
    let to_ben = replies(&sim, "ben@im.wechat", 1).await?;
    println!("to ann: {:?}", to_ann[0].text().unwrap_or_default());
    println!("to ben: {:?}", to_ben[0].text().unwrap_or_default());
    ensure(to_ann[0].bot_id == a.id(), "bot A answered ann")?;
    ensure(to_ben[0].bot_id == b.id(), "bot B answered ben")?;

    // A proactive send names no account: the client picks the one that can reach ben.
    client.send_text("ben@im.wechat", "a reminder").await?;
    let to_ben = replies(&sim, "ben@im.wechat", 2).await?;
    ensure(
        to_ben[1].bot_id == b.id() && to_ben[1].text() == Some("a reminder"),
        "the proactive send went through bot B",
    )?;
    ensure(sim.dropped().is_empty(), "nothing dropped")?;
    client.shutdown();
    for t in tasks {
        t.await??;
    }
    sim.shutdown().await;
    Ok(())
}

async fn online() -> Result<(), BoxError> {
    let client = ilink_examples::real_client()?;
    let mut accounts = client.accounts().await?;
    if accounts.is_empty() {
        accounts.push(ilink_examples::stored_or_login(&client).await?);
    }
    // Ctrl-C or SIGTERM stops every account gracefully; a second one exits at once.
    client.shutdown_handle().on_signals();
    println!(
        "{} account(s) running; Ctrl-C or SIGTERM stops them",
        accounts.len()
    );
    for t in run_all(&accounts) {
        t.await??;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    ilink_examples::run_example("multi_account", offline(), online()).await
}
