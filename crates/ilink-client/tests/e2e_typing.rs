//! Typing indicators end to end against ilink-sim: the cancel is retried, bounded, and the
//! keepalive never outlives its guard (issue 20).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use ilink_client::{Client, MemoryStore, MessageContext, TypingStatus};
use ilink_sim::{Endpoint, Fault, RequestRecord, Sim, TypingState};

/// The `status` of every sendtyping request the sim saw, in order.
fn typing_statuses(sim: &Sim) -> Vec<i64> {
    sim.requests()
        .iter()
        .filter(|r| r.path.ends_with("/sendtyping"))
        .filter_map(|r: &RequestRecord| {
            let body: serde_json::Value = serde_json::from_str(r.body.as_deref()?).ok()?;
            body["status"].as_i64()
        })
        .collect()
}

/// A client whose keepalive never fires within a test, so that every sendtyping after the
/// first is a cancel.
async fn quiet_keepalive() -> (
    Arc<Sim>,
    Client,
    ilink_client::Account,
    ilink_sim::BotAccount,
) {
    let sim = sim().await;
    let bot = sim.create_bot();
    let mut config = config(&sim);
    config.delays.typing_keepalive = Duration::from_secs(600);
    let client = Client::new(config, MemoryStore::new()).unwrap();
    let account = client.add_account(creds(&sim, &bot)).await.unwrap();
    (Arc::new(sim), client, account, bot)
}

#[tokio::test]
async fn a_failed_cancel_is_retried_until_it_succeeds() {
    let (sim, _client, account, bot) = quiet_keepalive().await;
    sim.user("pam@im.wechat").send_text(&bot, "hi").unwrap();
    let acct = account.clone();
    let s = Arc::clone(&sim);
    let run = tokio::spawn(async move {
        acct.run(move |ctx: MessageContext| {
            let sim = Arc::clone(&s);
            async move {
                // The typing indicator is on; the two sendtyping calls after it (the
                // cancel) fail: once with HTTP 500, once with ret -1.
                sim.inject_fault(Endpoint::SendTyping, Fault::Status(500), 1);
                sim.inject_fault(
                    Endpoint::SendTyping,
                    Fault::Json(serde_json::json!({"ret": -1})),
                    1,
                );
                ctx.reply("done").await.map(|_| ())
            }
        })
        .await
    });
    sim.wait_for_delivered("pam@im.wechat", 1, WAIT)
        .await
        .unwrap();
    sim.wait_for(WAIT, |s| {
        (s.typing_state("pam@im.wechat") == Some(TypingState::Cancelled)).then_some(())
    })
    .await
    .unwrap();
    account.shutdown();
    run.await.unwrap().unwrap();
    assert_eq!(typing_statuses(&sim), vec![1, 2, 2, 2]);
    assert_eq!(sim.delivered_to("pam@im.wechat").len(), 1);
    assert!(sim.pending_faults().is_empty());
}

#[tokio::test]
async fn the_cancel_gives_up_after_its_attempts_and_the_keepalive_stops() {
    let (sim, client, account, bot) = quiet_keepalive().await;
    let attempts = client.config().delays.typing_cancel_attempts;
    assert_eq!(attempts, 3);
    sim.user("pam@im.wechat").send_text(&bot, "hi").unwrap();
    let mut updates = account.updates().await.unwrap();
    assert!(updates.next().await.is_some());

    let guard = account.start_typing("pam@im.wechat", None).await;
    sim.inject_fault(Endpoint::SendTyping, Fault::Status(503), 10);
    // Waits for the last attempt; a final failure is only a warning.
    guard.stop().await;
    assert_eq!(typing_statuses(&sim), vec![1, 2, 2, 2]);
    let left = sim.pending_faults();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].2, 10 - attempts);
    sim.clear_faults();

    // A guard that is dropped (not stopped) still cancels, and nothing is sent after it.
    let mut config = config(&sim);
    config.delays.typing_keepalive = Duration::from_millis(20);
    let fast = Client::new(config, MemoryStore::new()).unwrap();
    let acct = fast.add_account(creds(&sim, &bot)).await.unwrap();
    acct.set_context_token(
        "pam@im.wechat",
        account.context_token("pam@im.wechat").unwrap(),
    )
    .await
    .unwrap();
    sim.clear_requests();
    let guard = acct.start_typing("pam@im.wechat", None).await;
    sim.wait_for(WAIT, |s| (typing_statuses(s).len() >= 3).then_some(()))
        .await
        .unwrap();
    drop(guard);
    sim.wait_for(WAIT, |s| {
        typing_statuses(s)
            .last()
            .is_some_and(|&st| st == 2)
            .then_some(())
    })
    .await
    .unwrap();
    let seen = typing_statuses(&sim).len();
    // Several keepalive periods later, nothing more was sent.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        tokio::task::yield_now().await;
    }
    let after = typing_statuses(&sim);
    assert_eq!(after.len(), seen, "{after:?}");
    assert_eq!(after.iter().filter(|&&s| s == 2).count(), 1, "{after:?}");
    assert!(after[..after.len() - 1].iter().all(|&s| s == 1));
    assert_eq!(
        sim.typing_state("pam@im.wechat"),
        Some(TypingState::Cancelled)
    );
    // send_typing reports a refused call as an error now (the official client ignores it).
    sim.inject_fault(
        Endpoint::SendTyping,
        Fault::Json(serde_json::json!({"ret": -1})),
        1,
    );
    assert!(
        acct.send_typing("pam@im.wechat", TypingStatus::Typing)
            .await
            .is_err()
    );
}
