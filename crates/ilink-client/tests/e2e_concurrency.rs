//! `Account::run` handles different users concurrently and each user's messages in order,
//! end to end against ilink-sim over loopback HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use ilink_client::{Account, Client, MemoryStore, MessageContext, StateStore};
use tokio::sync::Barrier;

/// Start `run` and wait until a first message is handled, so a cursor is committed and later
/// messages may come in batches of their own while earlier ones are still being handled.
async fn warm_up(sim: &ilink_sim::Sim, bot: &ilink_sim::BotAccount) {
    sim.user("warmup@im.wechat").send_text(bot, "warm").unwrap();
    sim.wait_for_delivered("warmup@im.wechat", 1, WAIT)
        .await
        .unwrap();
}

#[tokio::test]
async fn different_users_are_handled_at_the_same_time() {
    let (sim, _client, account, bot) = setup().await;
    const USERS: usize = 4;
    // Every handler waits at the barrier until all four run at once: handled one at a time,
    // none would get past it.
    let barrier = Arc::new(Barrier::new(USERS));
    let met = Arc::new(Mutex::new(Vec::new()));
    let (b, m) = (barrier.clone(), met.clone());
    let acct = account.clone();
    let run = tokio::spawn(async move {
        acct.run(move |ctx: MessageContext| {
            let (b, m) = (b.clone(), m.clone());
            async move {
                if ctx.from() != "warmup@im.wechat" {
                    let together = tokio::time::timeout(WAIT, b.wait()).await.is_ok();
                    m.lock().unwrap().push((ctx.from().to_owned(), together));
                }
                ctx.reply("done").await.map(|_| ())
            }
        })
        .await
    });
    warm_up(&sim, &bot).await;
    // One user at a time, while the bot is polling: they may come in separate batches.
    for i in 0..USERS {
        sim.user(&format!("u{i}@im.wechat"))
            .send_text(&bot, "hello")
            .unwrap();
    }
    for i in 0..USERS {
        sim.wait_for_delivered(&format!("u{i}@im.wechat"), 1, WAIT)
            .await
            .unwrap();
    }
    account.shutdown();
    run.await.unwrap().unwrap();
    let met = met.lock().unwrap().clone();
    assert_eq!(met.len(), USERS, "{met:?}");
    assert!(met.iter().all(|(_, together)| *together), "{met:?}");
}

/// Records, per user, the order of the texts handled and whether two of that user's handlers
/// ever ran at once; and the most handlers that ran at once overall.
#[derive(Default)]
struct Journal {
    order: HashMap<String, Vec<String>>,
    running: HashMap<String, usize>,
    overlap_within_user: bool,
    now: usize,
    peak: usize,
}

async fn run_script(concurrency: usize) -> Journal {
    let sim = sim().await;
    let bot = sim.create_bot();
    let client = Client::new(
        config(&sim).with_handler_concurrency(concurrency),
        MemoryStore::new(),
    )
    .unwrap();
    let account = client.add_account(creds(&sim, &bot)).await.unwrap();
    let journal = Arc::new(Mutex::new(Journal::default()));
    let j = journal.clone();
    let acct = account.clone();
    let run = tokio::spawn(async move {
        acct.run(move |ctx: MessageContext| {
            let j = j.clone();
            async move {
                let user = ctx.from().to_owned();
                {
                    let mut j = j.lock().unwrap();
                    let r = j.running.entry(user.clone()).or_default();
                    *r += 1;
                    if *r > 1 {
                        j.overlap_within_user = true;
                    }
                    j.now += 1;
                    j.peak = j.peak.max(j.now);
                    j.order
                        .entry(user.clone())
                        .or_default()
                        .push(ctx.text().unwrap_or_default().to_owned());
                }
                // Give other handlers a chance to start meanwhile.
                tokio::time::sleep(Duration::from_millis(30)).await;
                {
                    let mut j = j.lock().unwrap();
                    if let Some(r) = j.running.get_mut(&user) {
                        *r -= 1;
                    }
                    j.now -= 1;
                }
                ctx.reply("ok").await.map(|_| ())
            }
        })
        .await
    });
    // Interleaved: a1 b1 c1 a2 b2 c2 ...; all queued before the bot polls (one batch) and
    // more while it runs (later batches).
    let users = ["a@im.wechat", "b@im.wechat", "c@im.wechat"];
    for n in 1..=3 {
        for u in users {
            sim.user(u).send_text(&bot, &format!("{n}")).unwrap();
        }
    }
    sim.wait_for_delivered(users[0], 1, WAIT).await.unwrap();
    for n in 4..=6 {
        for u in users {
            sim.user(u).send_text(&bot, &format!("{n}")).unwrap();
        }
    }
    for u in users {
        sim.wait_for_delivered(u, 6, WAIT).await.unwrap();
    }
    account.shutdown();
    run.await.unwrap().unwrap();
    Arc::try_unwrap(journal).ok().unwrap().into_inner().unwrap()
}

#[tokio::test]
async fn each_users_messages_stay_in_order() {
    let j = run_script(8).await;
    let expected: Vec<String> = (1..=6).map(|n| n.to_string()).collect();
    assert_eq!(j.order.len(), 3);
    for (user, texts) in &j.order {
        assert_eq!(texts, &expected, "{user}");
    }
    assert!(!j.overlap_within_user);
    // Never more than one handler per user: at most three at once here.
    assert!(j.peak <= 3, "{}", j.peak);
}

#[tokio::test]
async fn a_concurrency_of_one_handles_one_message_at_a_time() {
    let j = run_script(1).await;
    assert_eq!(j.peak, 1);
    assert!(!j.overlap_within_user);
    for texts in j.order.values() {
        assert_eq!(texts.len(), 6);
    }
}

/// Runs `account` with a handler that records each text in `seen` and answers; a message
/// with the text `hang_on` is never finished.
fn spawn_recording(
    account: &Account,
    seen: Arc<Mutex<Vec<String>>>,
    hang_on: Option<&'static str>,
) -> tokio::task::JoinHandle<ilink_client::Result<()>> {
    let acct = account.clone();
    tokio::spawn(async move {
        acct.run(move |ctx: MessageContext| {
            let seen = seen.clone();
            async move {
                let text = ctx.text().unwrap_or_default().to_owned();
                seen.lock().unwrap().push(text.clone());
                if Some(text.as_str()) == hang_on {
                    std::future::pending::<()>().await;
                }
                ctx.reply("ok").await.map(|_| ())
            }
        })
        .await
    })
}

#[tokio::test]
async fn a_batch_is_committed_only_once_all_of_it_is_handled() {
    let sim = sim().await;
    let bot = sim.create_bot();
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let client = client_with_store(&sim, store.clone());
    let account = client.add_account(creds(&sim, &bot)).await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    // "slow" never finishes: the process "crashes" while handling it.
    let run = spawn_recording(&account, seen.clone(), Some("slow"));
    warm_up(&sim, &bot).await;
    let st = store.clone();
    let id = bot.bot_id.clone();
    let committed = sim
        .wait_for(WAIT, move |_| {
            // The memory store answers at once.
            futures_util::FutureExt::now_or_never(st.load_cursor(&id))
                .unwrap()
                .unwrap()
        })
        .await
        .unwrap();
    sim.user("slowpoke@im.wechat")
        .send_text(&bot, "slow")
        .unwrap();
    // The sim's typing keepalive traffic wakes this check while the slow handler runs.
    sim.wait_for(WAIT, |_| {
        seen.lock()
            .unwrap()
            .contains(&"slow".to_owned())
            .then_some(())
    })
    .await
    .unwrap();
    sim.user("quick@im.wechat").send_text(&bot, "fast").unwrap();
    let st = store.clone();
    let id = bot.bot_id.clone();
    // Tombstones of the warm-up and the fast message: both handled (a message leaves one
    // tombstone per strong key; its message_id is one of them).
    sim.wait_for(WAIT, move |_| {
        let tombstones = futures_util::FutureExt::now_or_never(st.load_tombstones(&id))
            .unwrap()
            .unwrap();
        (tombstones.iter().filter(|k| k.starts_with("m:")).count() == 2).then_some(())
    })
    .await
    .unwrap();
    // The fast message of a later batch is done, but the slow one of an earlier batch is not:
    // the cursor stays where it was.
    assert_eq!(
        store.load_cursor(&bot.bot_id).await.unwrap(),
        Some(committed.clone())
    );
    run.abort();
    assert!(run.await.unwrap_err().is_cancelled());
    drop(account);
    drop(client);

    // A new process with the same state gets the slow message again, and only it.
    seen.lock().unwrap().clear();
    let client = client_with_store(&sim, store.clone());
    let account = client.account(&bot.bot_id).await.unwrap();
    let run = spawn_recording(&account, seen.clone(), None);
    sim.wait_for_delivered("slowpoke@im.wechat", 1, WAIT)
        .await
        .unwrap();
    account.shutdown();
    run.await.unwrap().unwrap();
    assert_eq!(*seen.lock().unwrap(), vec!["slow".to_owned()]);
    assert_ne!(
        store.load_cursor(&bot.bot_id).await.unwrap(),
        Some(committed)
    );
}

#[tokio::test]
async fn shutdown_lets_running_handlers_finish_before_notifystop() {
    let (sim, _client, account, bot) = setup().await;
    for u in ["first@im.wechat", "second@im.wechat"] {
        sim.user(u).send_text(&bot, "hi").unwrap();
    }
    let barrier = Arc::new(Barrier::new(2));
    let acct = account.clone();
    let b = barrier.clone();
    let run = tokio::spawn(async move {
        acct.run(move |ctx: MessageContext| {
            let b = b.clone();
            async move {
                // Both handlers run when the shutdown comes.
                tokio::time::timeout(WAIT, b.wait()).await.unwrap();
                if ctx.from() == "first@im.wechat" {
                    ctx.account().shutdown();
                }
                ctx.reply("bye").await.map(|_| ())
            }
        })
        .await
    });
    run.await.unwrap().unwrap();
    assert_eq!(sim.delivered_to("first@im.wechat").len(), 1);
    assert_eq!(sim.delivered_to("second@im.wechat").len(), 1);
    let reqs = sim.requests();
    let stop = reqs
        .iter()
        .position(|r| r.path.ends_with("notifystop"))
        .unwrap();
    let last_send = reqs
        .iter()
        .rposition(|r| r.path.ends_with("sendmessage"))
        .unwrap();
    assert!(last_send < stop, "notifystop came before a reply");
    assert_eq!(sim.bot(&bot.bot_id).unwrap().notify_stopped, 1);
}
