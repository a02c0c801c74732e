//! Downloads checked against the size and MD5 a message declares (issue 14, case 3), and
//! partial files removed on every failure, cancellation included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use ilink_cdn::{CdnClient, CdnConfig, CdnErrorKind, Expected};
use ilink_crypto::{MediaKey, decrypt, encrypt, md5_hex};
use ilink_http::{HttpClient, HttpConfig};
use ilink_proto::CdnMedia;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// How the test server answers every request.
#[derive(Clone)]
enum Serve {
    /// With a Content-Length.
    Sized(Vec<u8>),
    /// Chunked (no length announced).
    Chunked(Vec<u8>),
    /// Announce `len` bytes, send `body`, then hold the connection open.
    Stall { len: usize, body: Vec<u8> },
}

async fn server(serve: Serve) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let serve = serve.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = stream.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                match serve {
                    Serve::Sized(body) => {
                        let head =
                            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                        let _ = stream.write_all(head.as_bytes()).await;
                        let _ = stream.write_all(&body).await;
                    }
                    Serve::Chunked(body) => {
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                            .await;
                        for c in body.chunks(1000) {
                            let _ = stream
                                .write_all(format!("{:x}\r\n", c.len()).as_bytes())
                                .await;
                            let _ = stream.write_all(c).await;
                            let _ = stream.write_all(b"\r\n").await;
                        }
                        let _ = stream.write_all(b"0\r\n\r\n").await;
                    }
                    Serve::Stall { len, body } => {
                        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
                        let _ = stream.write_all(head.as_bytes()).await;
                        let _ = stream.write_all(&body).await;
                        let _ = stream.flush().await;
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

fn cdn(base: &str) -> CdnClient {
    CdnClient::new(
        HttpClient::new(HttpConfig::default()).unwrap(),
        CdnConfig::default().with_base_url(base),
    )
}

fn media() -> CdnMedia {
    CdnMedia {
        encrypt_query_param: Some("PARAM".into()),
        ..CdnMedia::default()
    }
}

fn plaintext() -> Vec<u8> {
    (0..9000u32).map(|i| (i * 7 % 251) as u8).collect()
}

/// A key other than `key` whose ciphertext of `plain` still decrypts under `key` with valid
/// PKCS#7 padding (about one key in 256 does).
fn colliding_ciphertext(key: &MediaKey, plain: &[u8]) -> Vec<u8> {
    for i in 0u32.. {
        let mut k = [0x5au8; 16];
        k[..4].copy_from_slice(&i.to_le_bytes());
        let ct = encrypt(&MediaKey::from_bytes(k), plain);
        if decrypt(key, &ct).is_ok() {
            return ct;
        }
    }
    unreachable!()
}

fn no_files(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test]
async fn a_wrong_key_that_passes_the_padding_check_is_refused() {
    let key = MediaKey::from_bytes([7u8; 16]);
    let plain = plaintext();
    let ct = colliding_ciphertext(&key, &plain);
    let base = server(Serve::Sized(ct.clone())).await;
    let cdn = cdn(&base);
    let expected = Expected::new()
        .with_len(9000)
        .with_md5_hex(&md5_hex(&plain));

    // Unchecked, the garbage passes (what `ilink download` saved before).
    let garbage = cdn.download(&media(), Some(&key)).await.unwrap();
    assert_ne!(garbage, plain);
    assert!(garbage.len() > 9000 - 16 && garbage.len() < 9016);

    let e = cdn
        .download_checked(&media(), Some(&key), expected)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), CdnErrorKind::Integrity, "{e}");

    // Only the MD5 declared: the same.
    let e = cdn
        .download_checked(
            &media(),
            Some(&key),
            Expected::new().with_md5_hex(&md5_hex(&plain)),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), CdnErrorKind::Integrity, "{e}");

    // To a file: nothing under the target name, no partial file.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.pdf");
    let e = cdn
        .download_to_file_checked(&media(), Some(&key), &out, None, expected)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), CdnErrorKind::Integrity);
    no_files(dir.path());

    // An existing file at the target is untouched.
    std::fs::write(&out, b"keep me").unwrap();
    cdn.download_to_file_checked(&media(), Some(&key), &out, None, expected)
        .await
        .unwrap_err();
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
}

#[tokio::test]
async fn the_right_media_passes_every_check() {
    let key = MediaKey::from_bytes([9u8; 16]);
    let plain = plaintext();
    let expected = Expected::new()
        .with_len(9000)
        .with_md5_hex(&md5_hex(&plain).to_uppercase());
    for serve in [
        Serve::Sized(encrypt(&key, &plain)),
        Serve::Chunked(encrypt(&key, &plain)),
    ] {
        let cdn = cdn(&server(serve).await);
        assert_eq!(
            cdn.download_checked(&media(), Some(&key), expected)
                .await
                .unwrap(),
            plain
        );
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("f.bin");
        let d = cdn
            .download_to_file_checked(&media(), Some(&key), &out, None, expected)
            .await
            .unwrap();
        assert_eq!(d.len, 9000);
        assert_eq!(std::fs::read(&out).unwrap(), plain);
    }
    // Plain (no key) media is checked against the same declaration.
    let cdn = cdn(&server(Serve::Sized(plain.clone())).await);
    assert_eq!(
        cdn.download_checked(&media(), None, expected)
            .await
            .unwrap(),
        plain
    );
}

#[tokio::test]
async fn a_size_that_contradicts_the_declaration_fails() {
    let key = MediaKey::from_bytes([3u8; 16]);
    let plain = plaintext();
    let declared = Expected::new().with_len(5000);
    // Announced length: refused before reading.
    let cdn1 = cdn(&server(Serve::Sized(encrypt(&key, &plain))).await);
    let e = cdn1
        .download_checked(&media(), Some(&key), declared)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), CdnErrorKind::Integrity);
    assert!(e.to_string().contains("5000"), "{e}");
    // No length announced: refused once more than declared arrived.
    let cdn2 = cdn(&server(Serve::Chunked(encrypt(&key, &plain))).await);
    let dir = tempfile::tempdir().unwrap();
    let e = cdn2
        .download_to_file_checked(&media(), Some(&key), &dir.path().join("x"), None, declared)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), CdnErrorKind::Integrity);
    no_files(dir.path());
    // Shorter than declared.
    let e = cdn2
        .download_checked(&media(), Some(&key), Expected::new().with_len(9001))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), CdnErrorKind::Integrity);
}

#[tokio::test]
async fn a_cancelled_download_leaves_no_partial_file() {
    let base = server(Serve::Stall {
        len: 4 * 1024 * 1024,
        body: vec![0u8; 256 * 1024],
    })
    .await;
    let cdn = cdn(&base);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("big.bin");
    let part = dir.path().join("big.bin.part");
    let m = media();
    let mut fut = Box::pin(cdn.download_to_file(&m, None, &out, None));
    // Drive the download until its partial file exists and some data came, then drop it (as
    // Ctrl-C does).
    let appeared = tokio::time::timeout(Duration::from_secs(30), async {
        let mut polls_after = 0;
        loop {
            tokio::select! {
                r = &mut fut => panic!("the stalled download finished: {r:?}"),
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
            if std::fs::metadata(&part).is_ok() {
                polls_after += 1;
                if polls_after > 10 {
                    return;
                }
            }
        }
    })
    .await;
    assert!(appeared.is_ok(), "the partial file never appeared");
    assert!(part.exists());
    drop(fut);
    no_files(dir.path());
}
