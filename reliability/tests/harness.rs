//! The reconciliation itself can fail: fed a lost message, a duplicate, a silent loss and an
//! unexplained delivery, it reports each of them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ilink_client::{Client, Credentials, MemoryStore, Secret, SendErrorKind};
use ilink_reliability::{Outcome, ReplyRecord, Report};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_reports_every_kind_of_broken_promise() {
    let sim = ilink_sim::Sim::start(ilink_reliability::sim_config())
        .await
        .unwrap();
    let bot = sim.create_bot();
    let user = sim.user("judge@im.wechat");
    let a = user.send_text(&bot, "a").unwrap().message_id.to_string();
    let b = user.send_text(&bot, "b").unwrap().message_id.to_string();
    let c = user.send_text(&bot, "c").unwrap().message_id.to_string();
    // The bot sends one message that no handler attempted, and one that it reports as failed
    // although it went out.
    let client = Client::new(ilink_reliability::fast_config(&sim), MemoryStore::new()).unwrap();
    let account = client
        .add_account(Credentials {
            account_id: bot.bot_id.clone(),
            token: Secret::new(bot.token.clone()),
            base_url: Some(sim.base_url()),
            user_id: None,
            saved_at_ms: 1,
        })
        .await
        .unwrap();
    let token = Secret::new(sim.inbound()[0].context_token.clone());
    account
        .set_context_token("judge@im.wechat", token)
        .await
        .unwrap();
    account
        .send_text("judge@im.wechat", "surprise")
        .await
        .unwrap();
    account.send_text("judge@im.wechat", "re:c").await.unwrap();

    let handled = Arc::new(Mutex::new(HashMap::from([
        (a.clone(), 2u32),
        (c.clone(), 1),
        ("999".to_owned(), 1),
    ])));
    let replies = Arc::new(Mutex::new(vec![
        ReplyRecord {
            text: "re:a".into(),
            outcome: Outcome::Sent(vec!["never-delivered".into()]),
        },
        ReplyRecord {
            text: "re:a".into(),
            outcome: Outcome::Failed(SendErrorKind::Transport),
        },
        ReplyRecord {
            text: "re:c".into(),
            outcome: Outcome::Failed(SendErrorKind::Throttled(
                ilink_client::ThrottleReason::Unknown,
            )),
        },
    ]));
    let r = Report::reconcile("judge", &sim, &bot.bot_id, &handled, &replies);
    assert_eq!(r.inbound, 3);
    assert_eq!(r.lost, vec![b]);
    assert_eq!(r.duplicates, vec![(a, 2)]);
    assert_eq!(r.phantom, vec!["999".to_owned()]);
    assert_eq!(r.silently_lost, vec!["re:a".to_owned()]);
    assert_eq!(
        r.delivered_despite_error,
        vec![("re:c".to_owned(), "Throttled(Unknown)".to_owned())]
    );
    assert_eq!(r.unexplained_deliveries, vec!["surprise".to_owned()]);
    let v = r.violations();
    for what in [
        "inbound lost",
        "handled twice",
        "phantom",
        "never delivered",
        "definite error",
        "unexplained",
    ] {
        assert!(v.iter().any(|x| x.contains(what)), "{what} not in {v:#?}");
    }
    sim.shutdown().await;
}
