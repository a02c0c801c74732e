//! `--store URL` / `ILINK_STORE` and `ilink fleet status`, through the binary: the forms of the
//! URL, honest errors (a bad URL is a usage error, an unreachable database exit 1 with the URL
//! but never its password), and the status table and JSON of a file store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Output;
use std::time::Duration;

use common::*;
use ilink_client::{Credentials, FileStore, Secret, StateStore};
use serde_json::Value;

async fn ilink(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = command();
    for (k, v) in env {
        c.env(k, v);
    }
    c.args(args);
    tokio::time::timeout(Duration::from_secs(60), c.output())
        .await
        .expect("ilink did not finish")
        .unwrap()
}

async fn seed(dir: &std::path::Path, id: &str) {
    FileStore::new(dir)
        .save_credentials(&Credentials {
            account_id: id.to_owned(),
            token: Secret::new("TOKEN".to_owned()),
            base_url: Some("http://127.0.0.1:1/".to_owned()),
            user_id: None,
            saved_at_ms: 1,
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn an_unknown_store_url_is_a_usage_error() {
    let o = ilink(&["accounts", "--store", "redis://u:hunter2@h/0"], &[]).await;
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.starts_with("ilink: usage error: "), "{err}");
    assert!(err.contains("unknown store"), "{err}");
    assert!(!err.contains("hunter2"), "the password leaked: {err}");
    let o = ilink(&["fleet", "status"], &[("ILINK_STORE", "file:")]).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
}

/// A mistyped URL must not become a directory named after it (password included), and a URL
/// the driver cannot parse is a usage error, not "is the database up?".
#[tokio::test]
async fn a_mistyped_or_invalid_url_is_a_usage_error_and_makes_no_directory() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        "postgres//ilink:hunter2@h/db",
        "postgres:/ilink:hunter2@h/db",
        "host=127.0.0.1 port=5432 user=ilink password=hunter2 dbname=ilink",
        "postgres://ilink:hunter2@127.0.0.1:99999/ilink",
    ] {
        let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_ilink"))
            .args(["fleet", "status", "--store", url])
            .current_dir(dir.path())
            .env_remove("ILINK_STORE")
            .output()
            .await
            .unwrap();
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{url}: {err}");
        assert!(err.starts_with("ilink: usage error: "), "{url}: {err}");
        assert!(!err.contains("hunter2"), "the password leaked: {err}");
        let made: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(made.is_empty(), "{url}: made {made:?}");
    }
}

#[tokio::test]
async fn an_unreachable_database_is_exit_1_without_the_password() {
    // Nothing listens on port 1.
    let url = "postgres://ilink:hunter2@127.0.0.1:1/ilink?connect_timeout=5";
    for args in [
        &["accounts"][..],
        &["fleet", "status"],
        &["echo", "--fleet"],
    ] {
        let o = ilink(args, &[("ILINK_STORE", url)]).await;
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.starts_with("ilink: error: cannot open the PostgreSQL store postgres://ilink:***@127.0.0.1:1/ilink"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "the password leaked: {err}");
        assert!(err.contains("hint: "), "{err}");
    }
}

#[tokio::test]
async fn a_memory_store_starts_empty() {
    let o = ilink(&["accounts", "--store", "memory:"], &[]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("No bot account is logged in (store memory:)"),
        "{}",
        text(&o.stderr)
    );
}

#[tokio::test]
async fn fleet_status_lists_every_account_of_a_file_store() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), "a1@im.bot").await;
    seed(dir.path(), "b2@im.bot").await;
    // A lease held by another holder, shown with its token.
    let store = FileStore::new(dir.path());
    let lease = store
        .acquire_lease("b2@im.bot", "elsewhere:42:abcd", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let url = format!("file:{}", dir.path().display());
    let o = ilink(&["fleet", "status", "--store", &url], &[]).await;
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(out.contains("2 account(s)"), "{out}");
    assert!(out.contains("ACCOUNT"), "{out}");
    assert!(out.contains("a1@im.bot"), "{out}");
    assert!(out.contains("never leased"), "{out}");
    assert!(out.contains("elsewhere:42:abcd"), "{out}");

    // The same as JSON, through the environment and a plain path.
    let o = ilink(
        &["fleet", "status", "--json"],
        &[("ILINK_STORE", &dir.path().display().to_string())],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let accounts = v["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 2);
    assert_eq!(accounts[0]["account"], "a1@im.bot");
    assert_eq!(accounts[0]["holder"], Value::Null);
    assert_eq!(accounts[1]["holder"], "elsewhere:42:abcd");
    assert_eq!(accounts[1]["token"], lease.token());
    assert!(accounts[1]["since_ms"].as_u64().is_some());
    assert!(accounts[1]["expires_in_ms"].as_i64().is_some());
    drop(lease);
}
