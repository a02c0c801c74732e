//! Replies of a turn keep their `client_id`s when the turn is handled again by a process that
//! lost (or never had) the first one's journal: a takeover after a crash. ilink-sim keeps only
//! the first message of a `client_id`, so the user sees each reply once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use ilink_client::{Client, MemoryStore, MessageContext, Update};
use ilink_sim::{DropReason, Sim, SimConfig};
use std::time::Duration;

const USER: &str = "reader@im.wechat";

#[tokio::test]
async fn a_turn_handled_again_without_its_journal_is_shown_once() {
    let sim = Sim::start(SimConfig::for_tests(Duration::from_millis(300)))
        .await
        .unwrap();
    let bot = sim.create_bot();
    sim.user(USER).send_text(&bot, "hi").unwrap();

    // Two processes with stores of their own: the second knows nothing of what the first
    // sent (its journal entry "was not committed before the crash").
    let mut ids = Vec::new();
    for _ in 0..2 {
        let client = Client::new(config(&sim), MemoryStore::new()).unwrap();
        let account = client.add_account(creds(&sim, &bot)).await.unwrap();
        let mut updates = account.updates().await.unwrap();
        let Some(Update::Message(m)) = updates.next().await else {
            panic!("expected the message")
        };
        assert_eq!(m.text(), Some("hi"));
        let ctx = MessageContext::new(account.clone(), m);
        // A long reply: two chunks, each with its own id.
        let text = format!("{}{}", "a".repeat(3000), "b".repeat(10));
        let out = ctx.reply(&text).await.unwrap();
        let sent: Vec<String> = out.iter().map(|o| o.client_id().to_owned()).collect();
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert_ne!(sent[0], sent[1]);
        ids.push(sent);
    }
    assert_eq!(ids[0], ids[1], "the retry must reuse the client_ids");
    for id in &ids[0] {
        let (prefix, rest) = id.split_once(':').unwrap();
        assert_eq!(prefix, "openclaw-weixin");
        let (digits, hex) = rest.split_once('-').unwrap();
        assert!(digits.chars().all(|c| c.is_ascii_digit()));
        assert_eq!(hex.len(), 8);
    }
    let delivered = sim.delivered_to(USER);
    assert_eq!(delivered.len(), 2, "each chunk shown once");
    let dups = sim
        .dropped()
        .iter()
        .filter(|d| d.reason == DropReason::DuplicateClientId)
        .count();
    assert_eq!(
        dups, 2,
        "the second process's sends were recognised as repeats"
    );
}
