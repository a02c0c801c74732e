//! TLS end to end: a cluster with `ssl=on` and a certificate from a throwaway CA (made with the
//! `openssl` command). The store connects with the CA as `sslrootcert`, and refuses the server
//! without it (the certificate does not chain to the web roots).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use ilink_client::store::StateStore;
use ilink_client::{ErrorKind, Secret};
use ilink_postgres::testing::TestCluster;
use ilink_postgres::{PgConfig, PgErrorKind, PgStore, TlsMode, pg_error_kind};

fn openssl(dir: &Path, args: &[&str]) -> bool {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A CA and a server certificate for 127.0.0.1 and localhost signed by it, in `dir`.
fn make_certs(dir: &Path) -> bool {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=ilink test CA",
    ]);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         extendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(dir, &ca)
        && openssl(dir, &csr)
        && openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
            ],
        )
}

#[tokio::test]
async fn tls_with_a_private_ca_verifies_and_without_it_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    if !make_certs(dir.path()) {
        eprintln!("skipped: the openssl command could not make test certificates");
        return;
    }
    let cert = std::fs::read(dir.path().join("server.crt")).unwrap();
    let key = std::fs::read(dir.path().join("server.key")).unwrap();
    let Some(cluster) = TestCluster::start_private_tls(&cert, &key) else {
        return;
    };
    let db = cluster.database().await.unwrap();
    let ca = dir.path().join("ca.pem");
    let verified = format!(
        "{}&sslrootcert={}",
        db.url().replace("sslmode=disable", "sslmode=verify-full"),
        ca.display()
    );
    assert_eq!(
        PgConfig::from_url(&verified).unwrap().tls(),
        TlsMode::Require
    );
    let store = PgStore::connect(&verified).await.unwrap();
    store
        .save_cursor("a@im.bot", &Secret::from("over TLS".to_owned()), None)
        .await
        .unwrap();
    assert_eq!(
        store.load_cursor("a@im.bot").await.unwrap(),
        Some(Secret::from("over TLS".to_owned()))
    );

    // The store's connections are encrypted (asked over a plain superuser connection).
    let config: tokio_postgres::Config = db.url().parse().unwrap();
    let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let row = client
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_ssl s \
             JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'ilink'",
            &[],
        )
        .await
        .unwrap();
    let (all, encrypted): (i64, i64) = (row.get(0), row.get(1));
    assert!(all >= 1, "the store has no connection open");
    assert_eq!(all, encrypted);

    // Without the CA the certificate does not verify: a TLS error, not a plain fallback.
    for mode in ["require", "prefer"] {
        let url = db
            .url()
            .replace("sslmode=disable", &format!("sslmode={mode}"));
        let e = PgStore::connect(&url).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Store);
        assert_eq!(pg_error_kind(&e), Some(PgErrorKind::Tls), "{mode}: {e:?}");
    }
    // A CA that did not sign it is refused too.
    let other = tempfile::tempdir().unwrap();
    assert!(make_certs(other.path()));
    let wrong = format!(
        "{}&sslrootcert={}",
        db.url().replace("sslmode=disable", "sslmode=require"),
        other.path().join("ca.pem").display()
    );
    let e = PgStore::connect(&wrong).await.unwrap_err();
    assert_eq!(pg_error_kind(&e), Some(PgErrorKind::Tls), "{e:?}");
    drop(store);
    drop(db);
}
