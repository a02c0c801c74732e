//! Accounts served under leases, through the public API against ilink-sim: a run holds the
//! account's lease and fences its writes with it, stops with a typed `LeaseLost` when another
//! holder takes over, and never sends once its lease may have expired.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use ilink_client::store::{Fence, Lease};
use ilink_client::{
    Account, Client, ErrorKind, MemoryStore, MessageContext, Secret, SendErrorKind, StateStore,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

fn client(sim: &ilink_sim::Sim, store: Arc<dyn StateStore>, holder: &str, ttl: Duration) -> Client {
    let config = config(sim).with_holder_id(holder).with_lease_ttl(ttl);
    Client::builder()
        .config(config)
        .shared_store(store)
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_run_holds_the_lease_fences_its_writes_and_releases_it() {
    let sim = sim().await;
    let bot = sim.create_bot();
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let a = client(&sim, store.clone(), "holder-a", Duration::from_secs(30));
    let account = a.add_account(creds(&sim, &bot)).await.unwrap();
    let acct = account.clone();
    let run = tokio::spawn(async move {
        acct.run(|ctx: MessageContext| async move { ctx.reply("pong").await.map(|_| ()) })
            .await
    });
    sim.user("u@im.wechat").send_text(&bot, "ping").unwrap();
    sim.wait_for_delivered("u@im.wechat", 1, WAIT)
        .await
        .unwrap();
    // The run holds the lease: another holder cannot take the account.
    let leases = store.leases().await.unwrap();
    let held = leases.iter().find(|l| l.account == bot.bot_id).unwrap();
    assert_eq!(held.holder, "holder-a");
    assert!(
        store
            .acquire_lease(&bot.bot_id, "holder-b", Duration::from_secs(30))
            .await
            .unwrap()
            .is_none()
    );
    let b = client(&sim, store.clone(), "holder-b", Duration::from_secs(30));
    let other = b.account(&bot.bot_id).await.unwrap();
    let err = other
        .run(|_ctx: MessageContext| async {})
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AccountBusy);
    assert!(err.to_string().contains("holder-a"), "{err}");
    // Its writes carried the lease's fence: a write with an older token is refused.
    let stale = Fence {
        account: bot.bot_id.clone(),
        token: held.token - 1,
    };
    let e = store
        .save_cursor(&bot.bot_id, &Secret::from("X"), Some(&stale))
        .await
        .unwrap_err();
    assert!(e.is_lease_lost());
    account.shutdown();
    run.await.unwrap().unwrap();
    // Released at the end: the other holder takes it at once, with a larger token.
    let next = store
        .acquire_lease(&bot.bot_id, "holder-b", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert!(next.token() > held.token);
}

#[tokio::test]
async fn a_takeover_stops_the_run_with_lease_lost_and_nothing_more_is_sent() {
    let sim = sim().await;
    let bot = sim.create_bot();
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    // Short ttl: renewals every 100 ms notice the takeover soon.
    let ttl = Duration::from_millis(300);
    let a = client(&sim, store.clone(), "holder-a", ttl);
    let account = a.add_account(creds(&sim, &bot)).await.unwrap();
    let lease = store
        .acquire_lease(&bot.bot_id, "holder-a", ttl)
        .await
        .unwrap()
        .unwrap();
    let acct = account.clone();
    let held = lease.clone();
    let run = tokio::spawn(async move {
        acct.run_with_lease(
            held,
            |ctx: MessageContext| async move { ctx.reply("pong").await.map(|_| ()) },
            std::future::pending(),
        )
        .await
    });
    sim.user("u@im.wechat").send_text(&bot, "ping").unwrap();
    sim.wait_for_delivered("u@im.wechat", 1, WAIT)
        .await
        .unwrap();
    // Another process takes the account over (the old lease is gone).
    store.release_lease(&lease).await.unwrap();
    let theirs = store
        .acquire_lease(&bot.bot_id, "holder-b", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let err = tokio::time::timeout(WAIT, run)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LeaseLost, "{err}");
    assert!(err.is_lease_lost());
    // The stopped run sends nothing more: a message now is not answered by it.
    sim.user("u@im.wechat").send_text(&bot, "anyone?").unwrap();
    let e = account.send_text("u@im.wechat", "late").await.unwrap_err();
    assert_eq!(e.kind(), SendErrorKind::LeaseLost, "{e}");
    assert_eq!(sim.delivered_to("u@im.wechat").len(), 1);
    // The new holder's lease is untouched.
    assert!(
        store
            .renew_lease(&theirs, Duration::from_secs(30))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn no_reply_goes_out_once_the_lease_may_have_expired() {
    let sim = sim().await;
    let bot = sim.create_bot();
    // A memory store whose lease renewals fail (the database is unreachable) once switched on.
    let store = Arc::new(FaultyStore::default());
    let ttl = Duration::from_millis(300);
    let a = client(&sim, store.clone(), "holder-a", ttl);
    let account = a.add_account(creds(&sim, &bot)).await.unwrap();
    let (outcome_tx, mut outcome_rx) = tokio::sync::mpsc::unbounded_channel();
    let acct = account.clone();
    let run = tokio::spawn(async move {
        acct.run(move |ctx: MessageContext| {
            let tx = outcome_tx.clone();
            async move {
                if ctx.text() == Some("slow") {
                    // Longer than the lease lasts without a renewal.
                    tokio::time::sleep(Duration::from_millis(900)).await;
                }
                let r = ctx.reply("pong").await;
                let _ = tx.send(r.map(|_| ()).map_err(|e| e.kind()));
            }
        })
        .await
    });
    sim.user("u@im.wechat").send_text(&bot, "fast").unwrap();
    assert_eq!(outcome_rx.recv().await.unwrap(), Ok(()));
    // The store becomes unreachable: renewals fail, the lease runs out.
    store.renewals_down.store(true, Ordering::SeqCst);
    sim.user("u@im.wechat").send_text(&bot, "slow").unwrap();
    let r = tokio::time::timeout(WAIT, outcome_rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r, Err(SendErrorKind::LeaseLost));
    let err = tokio::time::timeout(WAIT, run)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(err.is_lease_lost(), "{err}");
    // Only the first reply went out.
    let delivered = sim.delivered_to("u@im.wechat");
    assert_eq!(delivered.len(), 1, "{delivered:?}");
}

/// Serves `account` under `lease`, answering "pong", until the returned sender fires.
fn serve_until_stopped(
    account: &Account,
    lease: &Lease,
) -> (oneshot::Sender<()>, JoinHandle<ilink_client::Result<()>>) {
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let acct = account.clone();
    let held = lease.clone();
    let run = tokio::spawn(async move {
        acct.run_with_lease(
            held,
            |ctx: MessageContext| async move { ctx.reply("pong").await.map(|_| ()) },
            async {
                let _ = stop_rx.await;
            },
        )
        .await
    });
    (stop_tx, run)
}

#[tokio::test]
async fn run_with_lease_stops_on_its_stop_signal_and_leaves_the_lease_to_the_caller() {
    let sim = sim().await;
    let bot = sim.create_bot();
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let ttl = Duration::from_secs(30);
    let a = client(&sim, store.clone(), "fleet-member-1", ttl);
    let account = a.add_account(creds(&sim, &bot)).await.unwrap();
    let lease = store
        .acquire_lease(&bot.bot_id, "fleet-member-1", ttl)
        .await
        .unwrap()
        .unwrap();
    // A lease of another account is refused.
    let other = store
        .acquire_lease("other@im.bot", "fleet-member-1", ttl)
        .await
        .unwrap()
        .unwrap();
    let e = account
        .run_with_lease(
            other,
            |_ctx: MessageContext| async {},
            std::future::pending(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let (stop_tx, run) = serve_until_stopped(&account, &lease);
    sim.user("u@im.wechat").send_text(&bot, "ping").unwrap();
    sim.wait_for_delivered("u@im.wechat", 1, WAIT)
        .await
        .unwrap();
    let stops = || {
        sim.requests()
            .iter()
            .filter(|r| r.path.ends_with("notifystop"))
            .count()
    };
    let before = stops();
    stop_tx.send(()).unwrap();
    tokio::time::timeout(WAIT, run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(stops(), before + 1, "a stopped run sends notifystop");
    // The account itself was not shut down, and the lease is still the caller's.
    assert!(!account.is_shut_down());
    assert!(store.renew_lease(&lease, ttl).await.unwrap());
    assert!(
        store
            .acquire_lease(&bot.bot_id, "fleet-member-2", ttl)
            .await
            .unwrap()
            .is_none()
    );
    // Served again under the same lease: the message handled before does not come again.
    let (stop_tx, run) = serve_until_stopped(&account, &lease);
    sim.user("u@im.wechat").send_text(&bot, "again").unwrap();
    sim.wait_for_delivered("u@im.wechat", 2, WAIT)
        .await
        .unwrap();
    stop_tx.send(()).unwrap();
    tokio::time::timeout(WAIT, run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(sim.delivered_to("u@im.wechat").len(), 2);
}
