//! Two fleet members on one store share its accounts, hand them over when one leaves, stop
//! serving an account whose lease they lost, and answer every message once — against ilink-sim
//! over loopback HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ilink_client::fleet::{Fleet, FleetConfig};
use ilink_client::store::Lease;
use ilink_client::{Client, MemoryStore, MessageContext, StateStore};
use ilink_sim::{BotAccount, Sim};

const TTL: Duration = Duration::from_millis(900);
const DEADLINE: Duration = Duration::from_secs(30);

fn member(sim: &Sim, store: &Arc<MemoryStore>, id: &str) -> Fleet {
    let shared: Arc<dyn StateStore> = store.clone();
    let client = Client::builder()
        .config(config(sim).with_holder_id(id).with_lease_ttl(TTL))
        .shared_store(shared)
        .build()
        .unwrap();
    Fleet::new(
        client,
        FleetConfig::new()
            .with_rebalance_interval(Duration::from_millis(100))
            .with_handover_timeout(Duration::from_secs(5))
            .with_retry_after(Duration::from_millis(500)),
    )
    .unwrap()
}

fn start(fleet: &Fleet) -> tokio::task::JoinHandle<ilink_client::Result<()>> {
    let f = fleet.clone();
    tokio::spawn(async move {
        f.run(|ctx: MessageContext| async move {
            let text = ctx.text().unwrap_or_default().to_owned();
            ctx.reply(&format!("echo: {text}")).await.map(|_| ())
        })
        .await
    })
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The echoes each user got, by text.
fn echoes(sim: &Sim) -> HashMap<(String, String), usize> {
    let mut m = HashMap::new();
    for d in sim.delivered() {
        *m.entry((
            d.to_user_id.clone(),
            d.text().unwrap_or_default().to_owned(),
        ))
        .or_default() += 1;
    }
    m
}

async fn setup(n: usize) -> (Sim, Arc<MemoryStore>, Vec<BotAccount>) {
    let sim = sim().await;
    let store = Arc::new(MemoryStore::new());
    let mut bots = Vec::new();
    for _ in 0..n {
        let bot = sim.create_bot();
        store.save_credentials(&creds(&sim, &bot)).await.unwrap();
        bots.push(bot);
    }
    (sim, store, bots)
}

fn user(i: usize) -> String {
    format!("user{i}@im.wechat")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_share_the_accounts_hand_them_over_and_answer_each_message_once() {
    let (sim, store, bots) = setup(6).await;
    let a = member(&sim, &store, "member-a");
    let b = member(&sim, &store, "member-b");
    let run_a = start(&a);
    until("a to serve every account alone", || a.served().len() == 6).await;
    let run_b = start(&b);
    // b joins: a gives up its surplus, b takes its share.
    until("a fair split", || {
        a.served().len() == 3 && b.served().len() == 3
    })
    .await;
    let leases = store.leases().await.unwrap();
    for bot in &bots {
        let l = leases.iter().find(|l| l.account == bot.bot_id).unwrap();
        assert!(l.holder == "member-a" || l.holder == "member-b", "{l:?}");
    }

    for (i, bot) in bots.iter().enumerate() {
        sim.user(&user(i)).send_text(bot, "one").unwrap();
    }
    until("every first message answered", || {
        (0..6).all(|i| echoes(&sim).contains_key(&(user(i), "echo: one".into())))
    })
    .await;

    // a leaves: its accounts are handed over to b.
    a.shutdown();
    run_a.await.unwrap().unwrap();
    until("b to serve every account", || b.served().len() == 6).await;
    for (i, bot) in bots.iter().enumerate() {
        sim.user(&user(i)).send_text(bot, "two").unwrap();
    }
    until("every second message answered", || {
        (0..6).all(|i| echoes(&sim).contains_key(&(user(i), "echo: two".into())))
    })
    .await;
    b.shutdown();
    run_b.await.unwrap().unwrap();
    let e = echoes(&sim);
    assert_eq!(e.len(), 12, "{e:?}");
    assert!(e.values().all(|&n| n == 1), "an echo was sent twice: {e:?}");
    // Both left: no member and no live lease remain.
    assert!(store.join_fleet("probe", TTL).await.unwrap() == vec!["probe".to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_stops_serving_an_account_whose_lease_it_lost() {
    let (sim, store, bots) = setup(1).await;
    let bot = &bots[0];
    let a = member(&sim, &store, "member-a");
    let run_a = start(&a);
    until("a to serve the account", || a.served().len() == 1).await;
    let token = a.served()[0].token;
    // Someone else takes the lease over (as after a stall of a past its ttl).
    store
        .release_lease(&Lease::new(bot.bot_id.clone(), "member-a", token, TTL))
        .await
        .unwrap();
    let intruder = store
        .acquire_lease(&bot.bot_id, "intruder", Duration::from_secs(60))
        .await
        .unwrap()
        .expect("the lease was free");
    assert!(intruder.token() > token);
    until("a to stop serving it", || a.served().is_empty()).await;
    sim.user(&user(0)).send_text(bot, "while lost").unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(sim.delivered().is_empty(), "a answered without the lease");
    assert!(a.served().is_empty());
    // The intruder gives it back: a takes it again and answers the waiting message once.
    store.release_lease(&intruder).await.unwrap();
    until("a to answer the waiting message", || {
        echoes(&sim).contains_key(&(user(0), "echo: while lost".into()))
    })
    .await;
    assert!(a.served()[0].token > intruder.token());
    a.shutdown();
    run_a.await.unwrap().unwrap();
    assert_eq!(sim.delivered().len(), 1);
}
