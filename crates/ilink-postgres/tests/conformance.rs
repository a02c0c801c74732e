//! The shared `StateStore` conformance suite (`ilink_client::store::conformance`) against
//! `PgStore`: every check, each on a fresh database of the test cluster, four at a time.
//! Without PostgreSQL this prints `skipped: no PostgreSQL` and passes, except with `$CI` set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ilink_client::store::conformance::{CHECKS, Capabilities, Subject, run_one};
use ilink_postgres::testing::TestCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_store_meets_the_state_store_contract() {
    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    assert!(!CHECKS.is_empty());
    // A few at a time: each has a database and a pool of its own, and the machine may be small.
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(4));
    let tasks: Vec<_> = CHECKS
        .iter()
        .map(|name| {
            let slots = slots.clone();
            tokio::spawn(async move {
                let _slot = slots
                    .acquire_owned()
                    .await
                    .map_err(|e| format!("{name}: {e}"))?;
                let db = cluster
                    .database()
                    .await
                    .map_err(|e| format!("{name}: creating its database: {e}"))?;
                let store = db
                    .store()
                    .await
                    .map_err(|e| format!("{name}: connecting: {e}"))?;
                // Server-clock lease expiry and membership expiry: everything applies.
                let subject = Subject::new(store).keeping(db);
                run_one(name, &subject, Capabilities::all())
                    .await
                    .map_err(|f| f.to_string())
            })
        })
        .collect();
    let mut failures = Vec::new();
    for t in tasks {
        if let Err(e) = t.await.unwrap() {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} checks failed:\n{}",
        failures.len(),
        CHECKS.len(),
        failures.join("\n")
    );
}
