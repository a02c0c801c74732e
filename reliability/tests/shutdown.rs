//! Graceful shutdown in the middle of a handler: `Account::run` promises that "the message
//! being handled finishes, the progress is committed". The reply that handler sends must then
//! either reach the user, or the message must come again after the restart; a reply refused
//! while the message is committed as handled would be a question the user never gets an
//! answer to, and that nobody can retry.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ilink_client::{Client, Credentials, MemoryStore, MessageContext, Secret, StateStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_a_handler_loses_no_reply() {
    let sim = ilink_sim::Sim::start(ilink_reliability::sim_config())
        .await
        .unwrap();
    let bot = sim.create_bot();
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let creds = Credentials {
        account_id: bot.bot_id.clone(),
        token: Secret::new(bot.token.clone()),
        base_url: Some(sim.base_url()),
        user_id: None,
        saved_at_ms: 1,
    };
    let start = async |handled: Arc<Mutex<Vec<String>>>| {
        let client = Client::builder()
            .config(ilink_reliability::fast_config(&sim))
            .shared_store(store.clone())
            .build()
            .unwrap();
        let account = client.add_account(creds.clone()).await.unwrap();
        let (started_tx, started_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let acct = account.clone();
        let task = tokio::spawn(async move {
            acct.run(move |ctx: MessageContext| {
                let (h, tx) = (handled.clone(), started_tx.clone());
                async move {
                    let _ = tx.send(());
                    // Some work before the reply (an LLM call, say).
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let r = ctx.reply(&format!("re:{}", ctx.text().unwrap_or(""))).await;
                    h.lock().unwrap().push(format!(
                        "{}: {:?}",
                        ctx.text().unwrap_or(""),
                        r.map(|_| ()).map_err(|e| e.kind())
                    ));
                }
            })
            .await
            .unwrap();
        });
        (client, account, task, started_rx)
    };

    let handled: Arc<Mutex<Vec<String>>> = Arc::default();
    let (_c, account, task, mut started) = start(handled.clone()).await;
    sim.user("u@im.wechat").send_text(&bot, "question").unwrap();
    started.recv().await.unwrap();
    // Ctrl-C while the handler works.
    account.shutdown();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
    let first_run = handled.lock().unwrap().clone();

    // Restart with the same state: if the reply did not go out, the message must come again.
    let (_c2, account2, task2, _started2) = start(handled.clone()).await;
    let answered = sim
        .wait_for_delivered("u@im.wechat", 1, Duration::from_secs(3))
        .await
        .is_ok();
    account2.shutdown();
    tokio::time::timeout(Duration::from_secs(10), task2)
        .await
        .unwrap()
        .unwrap();
    assert!(
        answered,
        "the user never got an answer: first run {first_run:?}, all runs {:?}",
        handled.lock().unwrap()
    );
}
