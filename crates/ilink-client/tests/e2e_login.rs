//! QR login and session expiry, end to end against ilink-sim.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use ilink_client::{
    Client, ErrorKind, FileStore, LoginEvent, LoginOutcome, MemoryStore, MessageContext,
    SendErrorKind, StateStore, Update,
};
use ilink_sim::{Endpoint, Fault, QrStep};

#[tokio::test]
async fn login_with_verify_code_and_redirect_saves_private_credentials() {
    let sim = sim().await;
    sim.qr().script(vec![
        QrStep::Wait,
        QrStep::Scan,
        QrStep::NeedVerifyCode {
            code: "4321".into(),
        },
        QrStep::Redirect,
        QrStep::Confirm {
            user_id: "owner@im.wechat".into(),
        },
    ]);
    let dir = tempfile::tempdir().unwrap();
    let client = client_with_store(&sim, Arc::new(FileStore::new(dir.path())));
    let presenter = Recorder::default();
    presenter
        .codes
        .lock()
        .unwrap()
        .extend(["0000".to_owned(), "4321".to_owned()]);
    let outcome = client.login(&presenter).await.unwrap();
    let LoginOutcome::Confirmed(account) = outcome else {
        panic!("expected a confirmed login")
    };
    assert!(account.id().ends_with("@im.bot"));
    let creds = account.credentials().unwrap();
    assert_eq!(creds.user_id.as_deref(), Some("owner@im.wechat"));
    let base = sim.base_url();
    let base = base.trim_end_matches('/');
    assert_eq!(creds.base_url.as_deref(), Some(base));
    assert_eq!(account.base_url().unwrap(), base);
    // The wrong code was asked again with `wrong = true`.
    assert_eq!(*presenter.asked.lock().unwrap(), vec![false, true]);
    let events = presenter.events.lock().unwrap().clone();
    assert!(
        events.contains(&LoginEvent::VerifyCodeAccepted),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, LoginEvent::Redirected { host } if *host == sim.host()))
    );
    assert_eq!(presenter.qrs.lock().unwrap().len(), 1);
    assert!(!presenter.qrs.lock().unwrap()[0].content.is_empty());

    // Saved atomically with mode 0600, and reloaded by a new client.
    let store = FileStore::new(dir.path());
    let file = store.account_dir(account.id()).join("credentials.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(
        store.accounts().await.unwrap(),
        vec![account.id().to_owned()]
    );

    // The new token works: receive and reply.
    let bot_id = account.id().to_owned();
    sim.user("owner@im.wechat")
        .send_text(&bot_id, "hello")
        .unwrap();
    let acct = account.clone();
    let run = tokio::spawn(async move {
        acct.run(|ctx: MessageContext| async move { ctx.reply("hi").await.map(|_| ()) })
            .await
    });
    sim.wait_for_delivered("owner@im.wechat", 1, WAIT)
        .await
        .unwrap();
    account.shutdown();
    run.await.unwrap().unwrap();

    // Status polls are GETs with only the app headers; the QR request carries no token.
    let reqs = sim.requests();
    let status = reqs
        .iter()
        .find(|r| r.path.ends_with("get_qrcode_status"))
        .unwrap();
    assert_eq!(status.method, "GET");
    assert!(status.header("authorization").is_none());
    assert!(status.header("x-wechat-uin").is_none());
    assert_eq!(status.header("ilink-app-id"), Some("bot"));
    let qr = reqs
        .iter()
        .find(|r| r.path.ends_with("get_bot_qrcode"))
        .unwrap();
    assert_eq!(qr.method, "POST");
    assert!(qr.query.contains("bot_type=3"));
    assert!(qr.header("authorization").is_none());
    assert_eq!(
        qr.json().unwrap(),
        serde_json::json!({"local_token_list": []})
    );
    assert!(reqs.iter().any(|r| r.query.contains("verify_code=4321")));
}

#[tokio::test]
async fn three_expired_codes_fail_the_login() {
    let sim = sim().await;
    for _ in 0..4 {
        sim.qr().script(vec![QrStep::Wait, QrStep::Expire]);
    }
    let client = Client::new(config(&sim), MemoryStore::new()).unwrap();
    let presenter = Recorder::default();
    let err = client.login(&presenter).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Login);
    assert!(err.to_string().contains("3 codes"), "{err}");
    let qrs = presenter.qrs.lock().unwrap();
    assert_eq!(qrs.len(), 3);
    assert_eq!(
        qrs.iter().map(|q| q.number).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(sim.qr().sessions().len(), 3);
}

#[tokio::test]
async fn blocked_verify_code_refreshes_and_binded_redirect_is_already_bound() {
    let sim = sim().await;
    sim.qr()
        .script(vec![QrStep::Scan, QrStep::VerifyCodeBlocked]);
    sim.qr().script(vec![QrStep::BindedRedirect]);
    let client = Client::new(config(&sim), MemoryStore::new()).unwrap();
    let presenter = Recorder::default();
    let outcome = client.login(&presenter).await.unwrap();
    assert!(matches!(outcome, LoginOutcome::AlreadyBound));
    assert_eq!(presenter.qrs.lock().unwrap().len(), 2);
    let events = presenter.events.lock().unwrap().clone();
    assert!(events.contains(&LoginEvent::VerifyCodeBlocked));
    assert!(events.contains(&LoginEvent::AlreadyBound));
}

#[tokio::test]
async fn cancelled_verify_code_fails_the_login() {
    let sim = sim().await;
    sim.qr()
        .script(vec![QrStep::NeedVerifyCode { code: "1".into() }]);
    let client = Client::new(config(&sim), MemoryStore::new()).unwrap();
    let err = client.login(&Recorder::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Login);
}

#[tokio::test]
async fn local_token_list_and_same_user_replacement() {
    let sim = sim().await;
    let old = sim.create_bot_for("same@im.wechat");
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let client = client_with_store(&sim, store.clone());
    client.add_account(creds(&sim, &old)).await.unwrap();
    // The stored token goes in local_token_list; the server sees this user's bot is already
    // bound here and answers binded_redirect.
    sim.qr().script(vec![QrStep::Confirm {
        user_id: "same@im.wechat".into(),
    }]);
    let outcome = client.login(&Recorder::default()).await.unwrap();
    assert!(matches!(outcome, LoginOutcome::AlreadyBound), "{outcome:?}");
    let qr = sim
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("get_bot_qrcode"))
        .unwrap();
    assert_eq!(
        qr.json().unwrap(),
        serde_json::json!({"local_token_list": [old.token]})
    );
    // Once that token is stale, the login binds a new bot and the older account bound to the
    // same user is forgotten.
    sim.expire_token(&old.bot_id);
    sim.qr().script(vec![QrStep::Confirm {
        user_id: "same@im.wechat".into(),
    }]);
    let LoginOutcome::Confirmed(new) = client.login(&Recorder::default()).await.unwrap() else {
        panic!("expected a confirmed login")
    };
    assert_ne!(new.id(), old.bot_id);
    assert_eq!(store.accounts().await.unwrap(), vec![new.id().to_owned()]);
}

#[tokio::test]
async fn session_expiry_ladder_fails_sends_fast_and_recovers_with_new_credentials() {
    let (sim, _client, account, bot) = setup().await;
    sim.user("zed@im.wechat").send_text(&bot, "before").unwrap();
    let mut updates = account.updates().await.unwrap();
    assert!(matches!(updates.next().await, Some(Update::Message(_))));
    assert!(sim.expire_token(&bot.bot_id));

    let next = tokio::time::timeout(WAIT, updates.next()).await.unwrap();
    assert!(matches!(next, Some(Update::SessionExpired)), "{next:?}");
    assert!(account.is_session_expired());
    // The ladder tried notifystart again before telling us.
    assert_eq!(count_requests(&sim, "notifystart"), 2);
    // Sends fail fast, without touching the network.
    let before = count_requests(&sim, "sendmessage");
    let err = account.send_text("zed@im.wechat", "x").await.unwrap_err();
    assert_eq!(err.kind(), SendErrorKind::SessionExpired);
    assert_eq!(count_requests(&sim, "sendmessage"), before);

    // No polling storm: at most a probe per stale_probe_interval (200 ms in tests).
    let polls = count_requests(&sim, "getupdates");
    let waiting = tokio::spawn(async move {
        let u = updates.next().await;
        (u, updates)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let extra = count_requests(&sim, "getupdates") - polls;
    assert!(extra <= 4, "{extra} polls while stale");

    // New credentials (as a fresh login gives) wake the loop at once and restore it.
    let fresh = sim.create_bot();
    let mut c = creds(&sim, &fresh);
    c.account_id = bot.bot_id.clone();
    account.replace_credentials(c).await.unwrap();
    assert!(!account.is_session_expired());
    let (u, _updates) = tokio::time::timeout(WAIT, waiting).await.unwrap().unwrap();
    assert!(matches!(u, Some(Update::SessionRestored)), "{u:?}");
}

#[tokio::test]
async fn a_passing_stale_answer_is_revived_by_notifystart_and_a_probe() {
    let (sim, _client, account, bot) = setup().await;
    sim.inject_fault(Endpoint::GetUpdates, Fault::StaleToken, 1);
    sim.user("yan@im.wechat")
        .send_text(&bot, "still here")
        .unwrap();
    let mut updates = account.updates().await.unwrap();
    let u = tokio::time::timeout(WAIT, updates.next()).await.unwrap();
    match u {
        Some(Update::Message(m)) => assert_eq!(m.text(), Some("still here")),
        other => panic!("{other:?}"),
    }
    assert_eq!(count_requests(&sim, "notifystart"), 2);
    assert!(!account.is_session_expired());
}

#[tokio::test]
async fn stale_then_restored_by_a_later_probe() {
    let (sim, _client, account, bot) = setup().await;
    sim.inject_fault(Endpoint::GetUpdates, Fault::StaleToken, 2);
    sim.user("xia@im.wechat").send_text(&bot, "later").unwrap();
    let mut updates = account.updates().await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        match tokio::time::timeout(WAIT, updates.next()).await.unwrap() {
            Some(Update::SessionExpired) => seen.push("expired"),
            Some(Update::SessionRestored) => seen.push("restored"),
            Some(Update::Message(_)) => seen.push("message"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seen, ["expired", "restored", "message"]);
}

#[tokio::test]
async fn relogin_presenter_is_run_after_session_expiry() {
    let sim = sim().await;
    let bot = sim.create_bot();
    let presenter = Recorder::default();
    let client = Client::builder()
        .config(config(&sim))
        .in_memory()
        .relogin_presenter(presenter.clone())
        .build()
        .unwrap();
    let account = client.add_account(creds(&sim, &bot)).await.unwrap();
    sim.expire_token(&bot.bot_id);
    sim.qr().script(vec![QrStep::Confirm {
        user_id: "who@im.wechat".into(),
    }]);
    let mut updates = account.updates().await.unwrap();
    let first = tokio::time::timeout(WAIT, updates.next()).await.unwrap();
    assert!(matches!(first, Some(Update::SessionExpired)));
    // The next poll of the stream runs the QR login through the configured presenter.
    let waiter = tokio::spawn(async move { updates.next().await });
    for _ in 0..200 {
        if !presenter.qrs.lock().unwrap().is_empty() && client.accounts().await.unwrap().len() == 2
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(presenter.qrs.lock().unwrap().len(), 1);
    // The emulator confirmed a new bot (its ids are fresh per login): it is stored.
    assert_eq!(client.accounts().await.unwrap().len(), 2);
    account.shutdown();
    let _ = tokio::time::timeout(WAIT, waiter).await.unwrap();
}
