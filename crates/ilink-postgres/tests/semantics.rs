//! The store's semantics as PostgreSQL implements them (server-clock expiry, tokens,
//! membership, ordering, isolation); the shared conformance suite runs in `conformance.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::time::Duration;

use ilink_client::Secret;
use ilink_client::store::{Credentials, Fence, StateStore};
use ilink_postgres::PgStore;
use ilink_postgres::testing::{TestDatabase, fresh_store};

const A: &str = "a@im.bot";
const B: &str = "b@im.bot";

async fn fresh() -> Option<(TestDatabase, PgStore)> {
    fresh_store().await.unwrap()
}

fn creds(account: &str, saved_at_ms: u64) -> Credentials {
    Credentials {
        account_id: account.to_owned(),
        token: Secret::from(format!("token-of-{account}")),
        base_url: None,
        user_id: None,
        saved_at_ms,
    }
}

#[tokio::test]
async fn leases_exclude_others_until_expiry_or_release() {
    let Some((_db, store)) = fresh().await else {
        return;
    };
    let short = Duration::from_millis(400);
    let h1 = store.acquire_lease(A, "h1", short).await.unwrap().unwrap();
    // Another holder is refused while it is live; another account is free.
    assert!(store.acquire_lease(A, "h2", short).await.unwrap().is_none());
    assert!(store.acquire_lease(B, "h2", short).await.unwrap().is_some());
    // The same holder renews and keeps its token.
    let again = store.acquire_lease(A, "h1", short).await.unwrap().unwrap();
    assert_eq!(again.token(), h1.token());
    assert!(store.renew_lease(&h1, short).await.unwrap());
    // After expiry (the server's clock) another holder takes it with a larger token.
    let h2 = loop {
        if let Some(l) = store.acquire_lease(A, "h2", short).await.unwrap() {
            break l;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(h2.token() > h1.token());
    assert!(!store.renew_lease(&h1, short).await.unwrap());
    // The old holder's release is a no-op; the new holder's frees it at once.
    store.release_lease(&h1).await.unwrap();
    assert!(store.acquire_lease(A, "h3", short).await.unwrap().is_none());
    store.release_lease(&h2).await.unwrap();
    assert!(!store.renew_lease(&h2, short).await.unwrap());
    let h3 = store
        .acquire_lease(A, "h3", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert!(h3.token() > h2.token());
    // Re-acquiring by the same holder after release is a new acquisition too.
    store.release_lease(&h3).await.unwrap();
    let h3b = store
        .acquire_lease(A, "h3", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert!(h3b.token() > h3.token());
    let leases = store.leases().await.unwrap();
    let a = leases.iter().find(|l| l.account == A).unwrap();
    assert_eq!((a.holder.as_str(), a.token), ("h3", h3b.token()));
}

#[tokio::test]
async fn fenced_writes_need_the_current_token_and_write_nothing_otherwise() {
    let Some((_db, store)) = fresh().await else {
        return;
    };
    let old = store
        .acquire_lease(A, "h1", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let of = old.fence();
    store
        .save_cursor(A, &Secret::from("c1".to_owned()), Some(&of))
        .await
        .unwrap();
    store.release_lease(&old).await.unwrap();
    // Released but not yet superseded: still the current token.
    store
        .append_tombstones(A, &["k1".to_owned()], Some(&of))
        .await
        .unwrap();
    let new = store
        .acquire_lease(A, "h2", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let tokens: HashMap<String, Secret> = [("u".to_owned(), Secret::from("t".to_owned()))].into();
    let stale: [(&str, Result<(), ilink_client::Error>); 6] = [
        (
            "save_cursor",
            store
                .save_cursor(A, &Secret::from("stale".to_owned()), Some(&of))
                .await,
        ),
        (
            "save_context_tokens",
            store.save_context_tokens(A, &tokens, Some(&of)).await,
        ),
        (
            "append_tombstones",
            store
                .append_tombstones(A, &["x".to_owned()], Some(&of))
                .await,
        ),
        (
            "save_tombstones",
            store.save_tombstones(A, &[], Some(&of)).await,
        ),
        (
            "append_outbox",
            store.append_outbox(A, "x", Some(&of)).await,
        ),
        (
            "replace_outbox",
            store.replace_outbox(A, &[], Some(&of)).await,
        ),
    ];
    for (name, r) in stale {
        assert!(r.unwrap_err().is_lease_lost(), "{name}");
    }
    assert_eq!(
        store.load_cursor(A).await.unwrap(),
        Some(Secret::from("c1".to_owned()))
    );
    assert!(store.load_context_tokens(A).await.unwrap().is_empty());
    assert_eq!(
        store.load_tombstones(A).await.unwrap(),
        vec!["k1".to_owned()]
    );
    assert!(store.load_outbox(A).await.unwrap().is_empty());
    // A fence of another account, or a token never granted, proves nothing.
    let other = Fence {
        account: B.into(),
        token: new.token(),
    };
    assert!(
        store
            .append_outbox(A, "x", Some(&other))
            .await
            .unwrap_err()
            .is_lease_lost()
    );
    let future = Fence {
        account: A.into(),
        token: new.token() + 1,
    };
    assert!(
        store
            .append_outbox(A, "x", Some(&future))
            .await
            .unwrap_err()
            .is_lease_lost()
    );
    // The current holder and unfenced writers are accepted.
    store
        .append_outbox(A, "new", Some(&new.fence()))
        .await
        .unwrap();
    store.append_outbox(A, "tool", None).await.unwrap();
    assert_eq!(
        store.load_outbox(A).await.unwrap(),
        vec!["new".to_owned(), "tool".to_owned()]
    );
}

#[tokio::test]
async fn fleet_members_are_live_sorted_and_leave() {
    let Some((_db, store)) = fresh().await else {
        return;
    };
    let long = Duration::from_secs(30);
    assert_eq!(store.join_fleet("m2", long).await.unwrap(), vec!["m2"]);
    assert_eq!(
        store.join_fleet("m1", long).await.unwrap(),
        vec!["m1", "m2"]
    );
    // A short heartbeat runs out on the server's clock.
    store
        .join_fleet("m0", Duration::from_millis(200))
        .await
        .unwrap();
    loop {
        let live = store.join_fleet("m1", long).await.unwrap();
        if live == vec!["m1", "m2"] {
            break;
        }
        assert_eq!(live, vec!["m0", "m1", "m2"]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    store.leave_fleet("m2").await.unwrap();
    store.leave_fleet("unknown").await.unwrap();
    assert_eq!(store.join_fleet("m1", long).await.unwrap(), vec!["m1"]);
}

#[tokio::test]
async fn journals_keep_order_and_compaction_replaces() {
    let Some((_db, store)) = fresh().await else {
        return;
    };
    let k = |s: &str| s.to_owned();
    store
        .append_tombstones(A, &[k("1"), k("2")], None)
        .await
        .unwrap();
    store.append_tombstones(A, &[], None).await.unwrap();
    store.append_tombstones(A, &[k("3")], None).await.unwrap();
    assert_eq!(store.load_tombstones(A).await.unwrap(), vec!["1", "2", "3"]);
    store
        .save_tombstones(A, &[k("3"), k("4")], None)
        .await
        .unwrap();
    store.append_tombstones(A, &[k("5")], None).await.unwrap();
    assert_eq!(store.load_tombstones(A).await.unwrap(), vec!["3", "4", "5"]);
    store.save_tombstones(A, &[], None).await.unwrap();
    assert!(store.load_tombstones(A).await.unwrap().is_empty());

    for i in 0..20 {
        store
            .append_outbox(A, &format!("r{i}"), None)
            .await
            .unwrap();
    }
    let want: Vec<String> = (0..20).map(|i| format!("r{i}")).collect();
    assert_eq!(store.load_outbox(A).await.unwrap(), want);
    store.replace_outbox(A, &want[15..], None).await.unwrap();
    store.append_outbox(A, "after", None).await.unwrap();
    assert_eq!(
        store.load_outbox(A).await.unwrap(),
        vec!["r15", "r16", "r17", "r18", "r19", "after"]
    );
    // Appends from many tasks at once are all kept.
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let s = store.clone();
            tokio::spawn(async move { s.append_outbox(B, &format!("t{i}"), None).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let mut got = store.load_outbox(B).await.unwrap();
    got.sort();
    let mut want: Vec<String> = (0..16).map(|i| format!("t{i}")).collect();
    want.sort();
    assert_eq!(got, want);
}

#[tokio::test]
async fn accounts_are_isolated_ordered_and_removed_whole() {
    let Some((_db, store)) = fresh().await else {
        return;
    };
    store.save_credentials(&creds(B, 10)).await.unwrap();
    store.save_credentials(&creds(A, 20)).await.unwrap();
    assert_eq!(store.accounts().await.unwrap(), vec![B, A]);
    // State without credentials is not an account.
    store
        .save_cursor("c@im.bot", &Secret::from("x".to_owned()), None)
        .await
        .unwrap();
    assert_eq!(store.accounts().await.unwrap(), vec![B, A]);
    for acct in [A, B] {
        store
            .save_cursor(acct, &Secret::from(format!("cur-{acct}")), None)
            .await
            .unwrap();
        store
            .append_tombstones(acct, &[format!("k-{acct}")], None)
            .await
            .unwrap();
        store
            .append_outbox(acct, &format!("o-{acct}"), None)
            .await
            .unwrap();
        let t: HashMap<String, Secret> =
            [(format!("u-{acct}"), Secret::from(format!("t-{acct}")))].into();
        store.save_context_tokens(acct, &t, None).await.unwrap();
    }
    store.remove_account(A).await.unwrap();
    store.remove_account("never@im.bot").await.unwrap();
    assert_eq!(store.accounts().await.unwrap(), vec![B]);
    assert_eq!(store.load_credentials(A).await.unwrap(), None);
    assert_eq!(store.load_cursor(A).await.unwrap(), None);
    assert!(store.load_tombstones(A).await.unwrap().is_empty());
    assert!(store.load_outbox(A).await.unwrap().is_empty());
    assert!(store.load_context_tokens(A).await.unwrap().is_empty());
    // B is untouched.
    assert_eq!(store.load_credentials(B).await.unwrap(), Some(creds(B, 10)));
    assert_eq!(
        store.load_cursor(B).await.unwrap(),
        Some(Secret::from(format!("cur-{B}")))
    );
    assert_eq!(
        store.load_tombstones(B).await.unwrap(),
        vec![format!("k-{B}")]
    );
    assert_eq!(store.load_outbox(B).await.unwrap(), vec![format!("o-{B}")]);
    assert_eq!(store.load_context_tokens(B).await.unwrap().len(), 1);
    // Saving the context tokens replaces the whole map.
    let t: HashMap<String, Secret> = [
        ("x".to_owned(), Secret::from("1".to_owned())),
        ("y".to_owned(), Secret::from("2".to_owned())),
    ]
    .into();
    store.save_context_tokens(B, &t, None).await.unwrap();
    assert_eq!(store.load_context_tokens(B).await.unwrap(), t);
    // A new login moves the account to the end.
    store.save_credentials(&creds(A, 30)).await.unwrap();
    assert_eq!(store.accounts().await.unwrap(), vec![B, A]);
    store.save_credentials(&creds(B, 40)).await.unwrap();
    assert_eq!(store.accounts().await.unwrap(), vec![A, B]);
    store.check_writable().await.unwrap();
}
