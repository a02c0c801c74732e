//! State and processes that survive real use, through the public API against ilink-sim: a
//! confirmed login is never lost, one consumer per account, the shutdown handle, and `-14`
//! picking up a newer login saved by someone else.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use common::*;
use ilink_client::{
    Credentials, ErrorKind, FileStore, LoginOutcome, MessageContext, Secret, StateStore,
};
use ilink_sim::QrStep;

#[tokio::test]
async fn a_confirmed_login_the_store_refuses_is_returned_and_rescued() {
    let sim = sim().await;
    sim.qr().script(vec![QrStep::Confirm {
        user_id: "owner@im.wechat".into(),
    }]);
    let client = client_with_store(
        &sim,
        Arc::new(FaultyStore {
            refuse_credentials: AtomicBool::new(true),
            ..FaultyStore::default()
        }),
    );
    let outcome = client.login(&Recorder::default()).await.unwrap();
    let LoginOutcome::Unsaved {
        credentials,
        error,
        rescued_to,
    } = outcome
    else {
        panic!("expected an unsaved login, got {outcome:?}")
    };
    assert_eq!(error.kind(), ErrorKind::Store);
    assert!(sim.bot(&credentials.account_id).is_some());
    let path = rescued_to.expect("a copy was written");
    // The copy is a valid credentials file: a FileStore reads it where it belongs.
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path());
    let target = store.account_dir(&credentials.account_id);
    std::fs::create_dir_all(&target).unwrap();
    std::fs::copy(&path, target.join("credentials.json")).unwrap();
    assert_eq!(
        store
            .load_credentials(&credentials.account_id)
            .await
            .unwrap(),
        Some(credentials)
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    std::fs::remove_file(path).unwrap();
}

#[tokio::test]
async fn login_fails_before_the_qr_code_when_the_store_cannot_be_written() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, b"x").unwrap();
    let client = client_with_store(&sim, Arc::new(FileStore::new(file.join("state"))));
    let err = client.login(&Recorder::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Store);
    assert!(sim.qr().sessions().is_empty(), "no QR code was fetched");
}

#[tokio::test]
async fn one_consumer_per_account_across_clients() {
    let sim = sim().await;
    let bot = sim.create_bot();
    let dir = tempfile::tempdir().unwrap();
    let a = client_with_store(&sim, Arc::new(FileStore::new(dir.path())));
    let b = client_with_store(&sim, Arc::new(FileStore::new(dir.path())));
    let first = a.add_account(creds(&sim, &bot)).await.unwrap();
    let updates = first.updates().await.unwrap();
    let second = b.account(&bot.bot_id).await.unwrap();
    let err = second.updates().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AccountBusy);
    // The holder is named: `host:pid:random` by default.
    assert!(
        err.to_string()
            .contains(&format!(":{}:", std::process::id())),
        "{err}"
    );
    // Sending needs no claim.
    sim.user("u@im.wechat").send_text(&bot, "hi").unwrap();
    drop(updates);
    // Released with the stream.
    let mut again = second.updates().await.unwrap();
    let u = tokio::time::timeout(Duration::from_secs(10), again.next())
        .await
        .unwrap();
    assert!(matches!(u, Some(ilink_client::Update::Message(_))), "{u:?}");
    second.send_text("u@im.wechat", "back").await.unwrap();
}

#[tokio::test]
async fn the_shutdown_handle_stops_run_and_does_not_keep_the_client_alive() {
    let (sim, client, account, bot) = setup().await;
    let handle = client.shutdown_handle();
    let task = tokio::spawn({
        let account = account.clone();
        async move {
            account
                .run(|ctx: MessageContext| async move {
                    let _ = ctx.reply("ok").await;
                })
                .await
        }
    });
    sim.user("u@im.wechat").send_text(&bot, "hi").unwrap();
    sim.wait_for_delivered("u@im.wechat", 1, Duration::from_secs(10))
        .await
        .unwrap();
    handle.shutdown();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(account.is_shut_down());
    assert_eq!(count_requests(&sim, "msg/notifystop"), 1);
    drop((client, account));
    handle.shutdown(); // the client is gone: nothing happens
}

#[tokio::test]
async fn minus_14_picks_up_a_newer_login_saved_by_another_process() {
    let sim = sim().await;
    let bot = sim.create_bot();
    let dir = tempfile::tempdir().unwrap();
    let client = client_with_store(&sim, Arc::new(FileStore::new(dir.path())));
    let account = client.add_account(creds(&sim, &bot)).await.unwrap();
    let mut updates = account.updates().await.unwrap();
    // Another process logs in again: the sim's new token, saved for this account.
    let newer = sim.create_bot();
    FileStore::new(dir.path())
        .save_credentials(&Credentials {
            token: Secret::new(newer.token.clone()),
            ..creds(&sim, &bot)
        })
        .await
        .unwrap();
    assert!(sim.expire_token(&bot.bot_id));
    sim.user("u@im.wechat").send_text(&newer, "hi").unwrap();
    let u = tokio::time::timeout(Duration::from_secs(10), updates.next())
        .await
        .unwrap();
    assert!(
        matches!(&u, Some(ilink_client::Update::Message(m)) if m.text() == Some("hi")),
        "{u:?}"
    );
    assert!(!account.is_session_expired());
    assert_eq!(account.credentials().unwrap().token.expose(), newer.token);
    account.shutdown();
}
