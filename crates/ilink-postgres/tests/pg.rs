//! PostgreSQL-specific behaviour of `PgStore` against a real server (a throwaway cluster, or
//! `$ILINK_TEST_PG`): migrations, fencing under concurrency, typed errors, reconnecting,
//! round trips. Each test gets a database of its own. Without PostgreSQL they print
//! `skipped: no PostgreSQL` and pass, except with `$CI` set, where they fail.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ilink_client::store::{Credentials, Fence, StateStore};
use ilink_client::{ErrorKind, Secret};
use ilink_postgres::testing::{TestCluster, TestDatabase, fresh_store};
use ilink_postgres::{PgConfig, PgErrorKind, PgStore, SCHEMA_VERSION, pg_error_kind};

const A: &str = "a@im.bot";

async fn fresh() -> Option<(TestDatabase, PgStore)> {
    fresh_store().await.unwrap()
}

/// A plain superuser connection to `url`, for poking at the database behind the store's back.
async fn raw(url: &str) -> tokio_postgres::Client {
    let config: tokio_postgres::Config = url.parse().unwrap();
    let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

fn creds(account: &str) -> Credentials {
    Credentials {
        account_id: account.to_owned(),
        token: Secret::from("TOKEN".to_owned()),
        base_url: Some("https://ilinkai.weixin.qq.com".into()),
        user_id: Some("u@im.wechat".into()),
        saved_at_ms: 1,
    }
}

#[tokio::test]
async fn every_operation_is_one_round_trip() {
    let Some((_db, store)) = fresh().await else {
        return;
    };
    let lease = store
        .acquire_lease(A, "h1", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let fence = lease.fence();
    let f = Some(&fence);
    let tokens: HashMap<String, Secret> = (0..20)
        .map(|i| (format!("u{i}@im.wechat"), Secret::from(format!("ctx{i}"))))
        .collect();
    let keys: Vec<String> = (0..50).map(|i| format!("m:{i}")).collect();
    let mut table = Vec::new();
    macro_rules! measure {
        ($name:literal, $e:expr) => {{
            let before = store.round_trips();
            let out = $e.await.unwrap();
            table.push(($name, store.round_trips() - before));
            out
        }};
    }
    measure!("save_credentials", store.save_credentials(&creds(A)));
    measure!("load_credentials", store.load_credentials(A));
    measure!("accounts", store.accounts());
    measure!(
        "save_cursor (fenced)",
        store.save_cursor(A, &Secret::from("C".to_owned()), f)
    );
    measure!("load_cursor", store.load_cursor(A));
    measure!(
        "save_context_tokens (20, fenced)",
        store.save_context_tokens(A, &tokens, f)
    );
    measure!("load_context_tokens", store.load_context_tokens(A));
    measure!(
        "append_tombstones (1, fenced)",
        store.append_tombstones(A, &keys[..1], f)
    );
    measure!(
        "append_tombstones (50, fenced)",
        store.append_tombstones(A, &keys, f)
    );
    measure!(
        "save_tombstones (50, fenced)",
        store.save_tombstones(A, &keys, f)
    );
    measure!("load_tombstones", store.load_tombstones(A));
    measure!(
        "append_outbox (fenced)",
        store.append_outbox(A, "{\"r\":1}", f)
    );
    measure!("replace_outbox (fenced)", store.replace_outbox(A, &keys, f));
    measure!("load_outbox", store.load_outbox(A));
    measure!(
        "acquire_lease (renew)",
        store.acquire_lease(A, "h1", Duration::from_secs(30))
    );
    measure!(
        "renew_lease",
        store.renew_lease(&lease, Duration::from_secs(30))
    );
    measure!("leases", store.leases());
    measure!(
        "join_fleet",
        store.join_fleet("m1", Duration::from_secs(30))
    );
    measure!("leave_fleet", store.leave_fleet("m1"));
    measure!("check_writable", store.check_writable());
    measure!("release_lease", store.release_lease(&lease));
    measure!("remove_account", store.remove_account(A));
    for (name, trips) in &table {
        eprintln!("round trips: {name}: {trips}");
        assert_eq!(*trips, 1, "{name}");
    }
    // A stale fence is refused in the same single round trip.
    let before = store.round_trips();
    let stale = Fence {
        account: A.into(),
        token: fence.token + 100,
    };
    let e = store
        .save_cursor(A, &Secret::from("X".to_owned()), Some(&stale))
        .await
        .unwrap_err();
    assert!(e.is_lease_lost(), "{e}");
    assert_eq!(store.round_trips() - before, 1);
    // Connecting to a database whose schema is current: 2 statements.
    let again = PgStore::connect(_db.url()).await.unwrap();
    eprintln!(
        "round trips: connect (schema current): {}",
        again.round_trips()
    );
    assert_eq!(again.round_trips(), 2);
    // To a new database: 6 + 2 per migration.
    let empty = TestCluster::shared().unwrap().database().await.unwrap();
    let created = PgStore::connect(empty.url()).await.unwrap();
    eprintln!(
        "round trips: connect (new database): {}",
        created.round_trips()
    );
    assert_eq!(created.round_trips(), 6 + 2 * SCHEMA_VERSION as u64);
}

#[tokio::test]
async fn migrations_run_once_when_three_processes_start_at_once() {
    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    let db = cluster.database().await.unwrap();
    let url = db.url().to_owned();
    let connects: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PgStore::connect(&url).await })
        })
        .collect();
    let mut stores = Vec::new();
    for c in connects {
        stores.push(c.await.unwrap().unwrap());
    }
    for s in &stores {
        assert_eq!(s.schema_version().await.unwrap(), SCHEMA_VERSION);
    }
    let client = raw(&url).await;
    let rows = client
        .query(
            "SELECT version FROM ilink_schema_version ORDER BY version",
            &[],
        )
        .await
        .unwrap();
    let versions: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
    // The stores work together on the one schema.
    stores[0].save_credentials(&creds(A)).await.unwrap();
    assert_eq!(stores[2].accounts().await.unwrap(), vec![A.to_owned()]);
    // Idempotent: connecting again changes nothing.
    let again = PgStore::connect(&url).await.unwrap();
    assert_eq!(again.accounts().await.unwrap(), vec![A.to_owned()]);
    let n: i64 = client
        .query_one("SELECT count(*) FROM ilink_schema_version", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, i64::from(SCHEMA_VERSION));
}

#[tokio::test]
async fn a_schema_newer_than_this_build_is_refused_and_left_alone() {
    let Some((db, store)) = fresh().await else {
        return;
    };
    store.save_credentials(&creds(A)).await.unwrap();
    let client = raw(db.url()).await;
    client
        .execute(
            "INSERT INTO ilink_schema_version (version, description) VALUES ($1, 'future')",
            &[&(SCHEMA_VERSION + 1)],
        )
        .await
        .unwrap();
    let e = PgStore::connect(db.url()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Store);
    assert_eq!(pg_error_kind(&e), Some(PgErrorKind::SchemaTooNew));
    assert!(e.to_string().contains("newer"), "{e}");
    // Untouched: the data is still there.
    assert_eq!(store.accounts().await.unwrap(), vec![A.to_owned()]);
}

/// The lease row is being taken over (a transaction holds it, about to give it the next
/// token) while the old holder writes: the write must wait for the takeover and then write
/// nothing. Without the `FOR SHARE` recheck the write would see the old token and commit.
#[tokio::test]
async fn a_write_racing_a_takeover_waits_for_it_and_writes_nothing() {
    let Some((db, store)) = fresh().await else {
        return;
    };
    let old = store
        .acquire_lease(A, "old", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    store
        .save_cursor(A, &Secret::from("before".to_owned()), Some(&old.fence()))
        .await
        .unwrap();
    let mut taker = raw(db.url()).await;
    let tx = taker.transaction().await.unwrap();
    tx.execute(
        "UPDATE ilink_leases SET token = token + 1, holder = 'new' WHERE account = $1",
        &[&A],
    )
    .await
    .unwrap();
    // The old holder writes while the takeover is in flight (on its own connection).
    let writer = {
        let store = store.clone();
        let fence = old.fence();
        tokio::spawn(async move {
            store
                .save_cursor(A, &Secret::from("stale".to_owned()), Some(&fence))
                .await
        })
    };
    // Wait until the write is blocked on the lease row's lock (seen from a third connection).
    let watcher = raw(db.url()).await;
    let mut waited = 0;
    loop {
        let blocked: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if blocked > 0 {
            break;
        }
        assert!(
            !writer.is_finished(),
            "the write did not wait for the takeover"
        );
        waited += 1;
        assert!(waited < 1000, "the write never reached the lock");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tx.commit().await.unwrap();
    let e = writer.await.unwrap().unwrap_err();
    assert!(e.is_lease_lost(), "{e}");
    assert_eq!(
        store.load_cursor(A).await.unwrap(),
        Some(Secret::from("before".to_owned()))
    );
}

/// Two stores (two pools, real connections) race: the old holder keeps writing while the new
/// one takes over after expiry. Once the new holder has written, nothing of the old one lands.
#[tokio::test]
async fn two_holders_race_and_the_old_one_never_overwrites_the_new() {
    let Some((db, first)) = fresh().await else {
        return;
    };
    let second = db.store().await.unwrap();
    for round in 0..5 {
        let account = format!("race{round}@im.bot");
        let old = first
            .acquire_lease(&account, "old", Duration::from_millis(300))
            .await
            .unwrap()
            .unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (store, fence, account, stop) =
                (first.clone(), old.fence(), account.clone(), stop.clone());
            tokio::spawn(async move {
                let mut lost_at = None;
                for i in 0..10_000u32 {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) && lost_at.is_some() {
                        break;
                    }
                    let r = store
                        .append_outbox(&account, &format!("old-{i}"), Some(&fence))
                        .await;
                    match (r, lost_at) {
                        (Ok(()), None) => {}
                        (Ok(()), Some(at)) => panic!("write {i} landed after {at} was refused"),
                        (Err(e), _) if e.is_lease_lost() => lost_at = lost_at.or(Some(i)),
                        (Err(e), _) => panic!("{e}"),
                    }
                }
                lost_at
            })
        };
        let new = loop {
            if let Some(l) = second
                .acquire_lease(&account, "new", Duration::from_secs(30))
                .await
                .unwrap()
            {
                break l;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(new.token() > old.token());
        second
            .append_outbox(&account, "new-0", Some(&new.fence()))
            .await
            .unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(
            writer.await.unwrap().is_some(),
            "the old holder was never refused"
        );
        let records = second.load_outbox(&account).await.unwrap();
        assert_eq!(
            records.last().map(String::as_str),
            Some("new-0"),
            "{records:?}"
        );
        assert!(
            records[..records.len() - 1]
                .iter()
                .all(|r| r.starts_with("old-"))
        );
        // The old holder can neither renew nor release the new holder's lease.
        assert!(
            !first
                .renew_lease(&old, Duration::from_secs(1))
                .await
                .unwrap()
        );
        first.release_lease(&old).await.unwrap();
        assert!(
            second
                .renew_lease(&new, Duration::from_secs(30))
                .await
                .unwrap()
        );
    }
}

#[tokio::test]
async fn tokens_survive_release_remove_and_a_new_connection() {
    let Some((db, store)) = fresh().await else {
        return;
    };
    let l1 = store
        .acquire_lease(A, "h1", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    store.release_lease(&l1).await.unwrap();
    store.remove_account(A).await.unwrap();
    drop(store);
    let store = db.store().await.unwrap();
    let l2 = store
        .acquire_lease(A, "h1", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert!(l2.token() > l1.token());
    let info = store.leases().await.unwrap();
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].holder, "h1");
    assert_eq!(info[0].token, l2.token());
    assert!(info[0].expires > info[0].since);
}

#[tokio::test]
async fn values_are_stored_exactly() {
    let Some((_db, store)) = fresh().await else {
        return;
    };
    let odd = "nul\0 tab\t emoji 🦀 quote' \"dq\" backslash\\ {json}".to_owned();
    let big = "x".repeat(2 * 1024 * 1024);
    store
        .save_cursor(A, &Secret::from(odd.clone()), None)
        .await
        .unwrap();
    assert_eq!(
        store.load_cursor(A).await.unwrap(),
        Some(Secret::from(odd.clone()))
    );
    let tokens: HashMap<String, Secret> = [
        (odd.clone(), Secret::from(big.clone())),
        (String::new(), Secret::from(String::new())),
    ]
    .into_iter()
    .collect();
    store.save_context_tokens(A, &tokens, None).await.unwrap();
    assert_eq!(store.load_context_tokens(A).await.unwrap(), tokens);
    let keys = vec![odd.clone(), String::new(), big.clone()];
    store.append_tombstones(A, &keys, None).await.unwrap();
    assert_eq!(store.load_tombstones(A).await.unwrap(), keys);
    store.append_outbox(A, &odd, None).await.unwrap();
    assert_eq!(store.load_outbox(A).await.unwrap(), vec![odd.clone()]);
    let mut c = creds(A);
    c.token = Secret::from(odd.clone());
    store.save_credentials(&c).await.unwrap();
    assert_eq!(store.load_credentials(A).await.unwrap(), Some(c));
    // A record with a newline is refused; a NUL in an account id too (text column).
    let e = store
        .append_outbox(A, "two\nlines", None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let e = store
        .save_cursor("a\0b", &Secret::from("c".to_owned()), None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

#[tokio::test]
async fn connection_failures_are_typed_and_never_show_the_password() {
    // Nothing listens on a port we just freed.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = PgStore::connect(&format!(
        "postgres://bot:hunter2-secret@127.0.0.1:{port}/ilink?sslmode=disable&connect_timeout=5"
    ))
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Store);
    assert_eq!(pg_error_kind(&e), Some(PgErrorKind::Connect), "{e:?}");
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    assert!(!format!("{e:?} {e}").contains("hunter2"));

    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    let db = cluster.database().await.unwrap();
    // A wrong password (only meaningful when the cluster checks passwords: ours do).
    if PgConfig::from_url(db.url()).unwrap().has_password() {
        let url = url_with_password(db.url(), "wrong-password-xyz");
        let e = PgStore::connect(&url).await.unwrap_err();
        assert_eq!(pg_error_kind(&e), Some(PgErrorKind::Auth), "{e:?}");
        assert!(!format!("{e:?} {e}").contains("wrong-password-xyz"));
    }
    // A database that does not exist.
    let missing = ilink_postgres::testing::with_dbname(db.url(), "ilink_no_such_db");
    let e = PgStore::connect(&missing).await.unwrap_err();
    assert_eq!(pg_error_kind(&e), Some(PgErrorKind::NoDatabase), "{e:?}");
    // TLS required from a server without it (the test clusters have none).
    if !db.url().contains("sslmode=disable") {
        return;
    }
    let tls = db.url().replace("sslmode=disable", "sslmode=require");
    let e = PgStore::connect(&tls).await.unwrap_err();
    assert_eq!(pg_error_kind(&e), Some(PgErrorKind::Tls), "{e:?}");
}

/// `postgres://user:OLD@host/...` with another password.
fn url_with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (auth, host) = rest.split_once('@').unwrap();
    let user = auth.split(':').next().unwrap();
    format!("{scheme}://{user}:{password}@{host}")
}

#[tokio::test]
async fn debug_output_redacts_the_password() {
    let Some((db, store)) = fresh().await else {
        return;
    };
    let config = PgConfig::from_url(db.url()).unwrap();
    assert!(config.has_password());
    let password = db
        .url()
        .split_once("://")
        .and_then(|(_, r)| r.split_once('@'))
        .and_then(|(auth, _)| auth.split_once(':'))
        .map(|(_, pw)| pw.to_owned());
    for text in [format!("{store:?}"), format!("{config:?}")] {
        assert!(text.contains("<redacted>"), "{text}");
        if let Some(pw) = &password {
            assert!(!text.contains(pw.as_str()), "{text}");
        }
    }
}

#[tokio::test]
async fn a_role_without_create_uses_a_set_up_database_and_one_without_rights_is_told_why() {
    let Some((db, _store)) = fresh().await else {
        return;
    };
    let client = raw(db.url()).await;
    let role = format!("ilink_bot_{}", db.name().trim_start_matches("ilink_test_"));
    client
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'botpw'; \
             GRANT USAGE ON SCHEMA public TO {role}; \
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}; \
             GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role};"
        ))
        .await
        .unwrap();
    let as_role = |url: &str| {
        let (scheme, rest) = url.split_once("://").unwrap();
        let (_, host) = rest.split_once('@').unwrap();
        format!("{scheme}://{role}:botpw@{host}")
    };
    let bot = PgStore::connect(&as_role(db.url())).await.unwrap();
    bot.check_writable().await.unwrap();
    bot.save_credentials(&creds(A)).await.unwrap();
    bot.save_cursor(A, &Secret::from("c".to_owned()), None)
        .await
        .unwrap();
    assert_eq!(bot.accounts().await.unwrap(), vec![A.to_owned()]);
    // On a fresh database the same role cannot create the tables: a Permission error.
    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    let empty = cluster.database().await.unwrap();
    let e = PgStore::connect(&as_role(empty.url())).await.unwrap_err();
    assert_eq!(pg_error_kind(&e), Some(PgErrorKind::Permission), "{e:?}");
    drop(empty);
    drop(bot);
    client
        .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .await
        .ok();
}

#[tokio::test]
async fn the_store_reconnects_after_the_server_restarts() {
    let Some(cluster) = TestCluster::start_private() else {
        return;
    };
    let db = cluster.database().await.unwrap();
    let store = db.store().await.unwrap();
    store
        .save_cursor(A, &Secret::from("c1".to_owned()), None)
        .await
        .unwrap();
    cluster.stop().unwrap();
    let e = store.load_cursor(A).await.unwrap_err();
    assert!(
        matches!(
            pg_error_kind(&e),
            Some(PgErrorKind::Connect | PgErrorKind::ConnectionLost)
        ),
        "{e:?}"
    );
    cluster.start().unwrap();
    // The pooled connection died with the server; the store opens a new one.
    assert_eq!(
        store.load_cursor(A).await.unwrap(),
        Some(Secret::from("c1".to_owned()))
    );
    store
        .save_cursor(A, &Secret::from("c2".to_owned()), None)
        .await
        .unwrap();
    cluster.restart().unwrap();
    assert_eq!(
        store.load_cursor(A).await.unwrap(),
        Some(Secret::from("c2".to_owned()))
    );
    drop(db);
}
