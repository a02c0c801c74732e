//! Upload and download against a small HTTP server on 127.0.0.1: URL rules, retries, 4xx,
//! size caps, host allowlist, streaming from and to files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use ilink_cdn::{
    CdnClient, CdnConfig, CdnErrorKind, HostAllowlist, MediaFormat, MediaSource, PreparedUpload,
    Progress,
};
use ilink_crypto::{MediaKey, decrypt, encrypt, md5_hex};
use ilink_http::{HttpClient, HttpConfig};
use ilink_proto::{BaseInfo, CdnMedia, GetUploadUrlResponse, Secret, UploadMediaType};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    uri: String,
    headers: HeaderMap,
    body: Bytes,
}

type Handler = Arc<dyn Fn(&Seen, usize) -> Response<Full<Bytes>> + Send + Sync>;

struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    async fn start(
        handler: impl Fn(&Seen, usize) -> Response<Full<Bytes>> + Send + Sync + 'static,
    ) -> Self {
        let handler: Handler = Arc::new(handler);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let seen2 = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let handler = Arc::clone(&handler);
                let seen = Arc::clone(&seen2);
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let handler = Arc::clone(&handler);
                        let seen = Arc::clone(&seen);
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|c| c.to_bytes())
                                .unwrap_or_default();
                            let s = Seen {
                                method: parts.method,
                                uri: parts.uri.to_string(),
                                headers: parts.headers,
                                body,
                            };
                            let n = {
                                let mut v = seen.lock().unwrap();
                                v.push(s.clone());
                                v.len()
                            };
                            Ok::<_, Infallible>(handler(&s, n))
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self { addr, seen }
    }

    fn base(&self) -> String {
        format!("http://{}/c2c", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn respond(status: u16, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::builder().status(StatusCode::from_u16(status).unwrap());
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.body(Full::new(body.into())).unwrap()
}

fn client(base: &str) -> CdnClient {
    CdnClient::new(
        HttpClient::new(HttpConfig::default()).unwrap(),
        CdnConfig::default().with_base_url(base),
    )
}

fn plaintext(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3])
        .collect()
}

fn upload_response(param: &str) -> GetUploadUrlResponse {
    GetUploadUrlResponse {
        upload_param: Some(param.to_owned()),
        ..GetUploadUrlResponse::default()
    }
}

#[tokio::test]
async fn get_upload_url_request_has_every_official_field() {
    // The [wire] capture: a 100-byte image, filekey and key as the official client sent them.
    let key = MediaKey::from_hex("49009329a07bd051433b8a96781c72ef").unwrap();
    let data = plaintext(100);
    let prepared = PreparedUpload::prepare_with_key(
        MediaSource::bytes(data.clone()),
        UploadMediaType::Image,
        key,
        "b8cde5c4e26d499b948bbf5979b2451c".to_owned(),
    )
    .await
    .unwrap();
    let base_info = BaseInfo {
        channel_version: Some("2.4.9".into()),
        bot_agent: Some("OpenClaw".into()),
        ..BaseInfo::default()
    };
    let req = prepared.get_upload_url_request("o9abc@im.wechat", base_info);
    let json = serde_json::to_string(&req).unwrap();
    let md5 = md5_hex(&data);
    assert_eq!(
        json,
        format!(
            "{{\"filekey\":\"b8cde5c4e26d499b948bbf5979b2451c\",\"media_type\":1,\
             \"to_user_id\":\"o9abc@im.wechat\",\"rawsize\":100,\"rawfilemd5\":\"{md5}\",\
             \"filesize\":112,\"no_need_thumb\":true,\"aeskey\":\"49009329a07bd051433b8a96781c72ef\",\
             \"base_info\":{{\"channel_version\":\"2.4.9\",\"bot_agent\":\"OpenClaw\"}}}}"
        )
    );
    assert_eq!(prepared.format(), None);
}

#[tokio::test]
async fn source_from_reader_is_capped() {
    let data = plaintext(1000);
    let src = MediaSource::from_reader(&data[..], 1000).await.unwrap();
    let MediaSource::Bytes(b) = &src else {
        panic!("expected bytes")
    };
    assert_eq!(b.as_ref(), &data[..]);
    let err = MediaSource::from_reader(&data[..], 999).await.unwrap_err();
    assert_eq!(err.kind(), CdnErrorKind::TooLarge);
    // Large in-memory sources hash the same as small ones.
    let big = plaintext(2 * 1024 * 1024 + 3);
    let p = PreparedUpload::prepare(MediaSource::bytes(big.clone()), UploadMediaType::File)
        .await
        .unwrap();
    assert_eq!(p.rawfilemd5(), md5_hex(&big));
    assert_eq!(p.rawsize(), big.len() as u64);
}

#[tokio::test]
async fn prepare_generates_fresh_keys_and_hashes_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pic.png");
    let mut data = b"\x89PNG\r\n\x1a\n".to_vec();
    data.extend(plaintext(300_000));
    std::fs::write(&path, &data).unwrap();
    let a = PreparedUpload::prepare(MediaSource::file(&path), UploadMediaType::Image)
        .await
        .unwrap();
    let b = PreparedUpload::prepare(MediaSource::file(&path), UploadMediaType::Image)
        .await
        .unwrap();
    assert_eq!(a.rawsize(), data.len() as u64);
    assert_eq!(a.filesize(), (data.len() as u64 / 16 + 1) * 16);
    assert_eq!(a.rawfilemd5(), md5_hex(&data));
    assert_eq!(a.format(), Some(MediaFormat::Png));
    assert_eq!(
        MediaSource::file(&path).sniff().await,
        Some(MediaFormat::Png)
    );
    assert_eq!(
        MediaSource::bytes(data.clone()).sniff().await,
        Some(MediaFormat::Png)
    );
    assert_eq!(
        MediaSource::file(dir.path().join("none")).sniff().await,
        None
    );
    assert_eq!(a.source().file_name().as_deref(), Some("pic.png"));
    assert_ne!(a.key(), b.key());
    assert_ne!(a.filekey(), b.filekey());
    assert_eq!(a.filekey().len(), 32);
    let err = PreparedUpload::prepare(
        MediaSource::file(dir.path().join("missing")),
        UploadMediaType::File,
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), CdnErrorKind::Io);
    assert!(err.to_string().contains("missing"), "{err}");
}

#[tokio::test]
async fn upload_bytes_builds_the_url_and_posts_ciphertext() {
    let server =
        Server::start(|_, _| respond(200, &[("x-encrypted-param", "DLPARAM-abc")], "")).await;
    let cdn = client(&server.base());
    let data = plaintext(100);
    let prepared =
        PreparedUpload::prepare(MediaSource::bytes(data.clone()), UploadMediaType::Image)
            .await
            .unwrap();
    let uploaded = cdn
        .upload(&prepared, &upload_response("UPPARAM+/="), None)
        .await
        .unwrap();
    assert_eq!(uploaded.encrypt_query_param, "DLPARAM-abc");
    assert_eq!(uploaded.attempts, 1);
    assert_eq!(uploaded.rawsize, 100);
    assert_eq!(uploaded.filesize, 112);
    let media = uploaded.cdn_media();
    assert_eq!(media.encrypt_query_param.as_deref(), Some("DLPARAM-abc"));
    assert_eq!(media.encrypt_type, Some(1));
    let aes_key = media.aes_key.as_ref().unwrap().expose().to_owned();
    assert_eq!(aes_key, prepared.key().to_base64_of_hex());

    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    assert_eq!(req.method, Method::POST);
    assert_eq!(
        req.uri,
        format!(
            "/c2c/upload?encrypted_query_param=UPPARAM%2B%2F%3D&filekey={}",
            prepared.filekey()
        )
    );
    assert_eq!(req.headers["content-type"], "application/octet-stream");
    assert_eq!(req.headers["content-length"], "112");
    assert!(req.headers.get("authorization").is_none());
    assert_eq!(decrypt(prepared.key(), &req.body).unwrap(), data);
}

#[tokio::test]
async fn upload_full_url_takes_precedence() {
    let server = Server::start(|_, _| respond(200, &[("x-encrypted-param", "P")], "")).await;
    let cdn = client("http://127.0.0.1:9/unused");
    let prepared = PreparedUpload::prepare(MediaSource::bytes(vec![1u8; 5]), UploadMediaType::File)
        .await
        .unwrap();
    let resp = GetUploadUrlResponse {
        upload_full_url: Some(format!(" http://{}/upload?taskid=7&x=1 ", server.addr)),
        upload_param: Some("ignored".into()),
        ..GetUploadUrlResponse::default()
    };
    cdn.upload(&prepared, &resp, None).await.unwrap();
    assert_eq!(server.seen()[0].uri, "/upload?taskid=7&x=1");

    let err = cdn
        .upload(&prepared, &GetUploadUrlResponse::default(), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), CdnErrorKind::NoUploadTarget);
}

/// R4 (reliability findings): a server-supplied `upload_full_url` obeys the same host
/// allowlist as a download's `full_url`, before anything connects.
#[tokio::test]
async fn upload_full_url_obeys_the_allowlist() {
    let canary = Server::start(|_, _| respond(200, &[("x-encrypted-param", "BAD")], "")).await;
    let cdn_server = Server::start(|_, _| respond(200, &[("x-encrypted-param", "P")], "")).await;
    let prepared = PreparedUpload::prepare(MediaSource::bytes(vec![1u8; 5]), UploadMediaType::File)
        .await
        .unwrap();
    // The canary listens on 127.0.0.1 too; a URL on 127.0.0.2 stands for "another host".
    let foreign = format!("http://127.0.0.2:{}/upload?taskid=7", canary.addr.port());
    let only_full = GetUploadUrlResponse {
        upload_full_url: Some(foreign.clone()),
        ..GetUploadUrlResponse::default()
    };
    let cdn = client(&cdn_server.base());
    // Without upload_param: refused, before connecting.
    let err = cdn.upload(&prepared, &only_full, None).await.unwrap_err();
    assert_eq!(err.kind(), CdnErrorKind::HostNotAllowed);
    assert!(err.to_string().contains("127.0.0.2"), "{err}");
    assert!(err.to_string().contains("upload"), "{err}");
    // With upload_param: the URL built on the configured CDN base is used instead.
    let both = GetUploadUrlResponse {
        upload_full_url: Some(foreign.clone()),
        upload_param: Some("UP".into()),
        ..GetUploadUrlResponse::default()
    };
    assert_eq!(
        cdn.upload_url(&prepared, &both).unwrap(),
        format!(
            "{}/upload?encrypted_query_param=UP&filekey={}",
            cdn_server.base(),
            prepared.filekey()
        )
    );
    let up = cdn.upload(&prepared, &both, None).await.unwrap();
    assert_eq!(up.encrypt_query_param, "P");
    assert_eq!(cdn_server.seen().len(), 1);
    // Malformed or disguised URLs are refused the same way.
    for bad in [
        "file:///etc/passwd".to_owned(),
        format!(
            "http://{}@127.0.0.2:{}/upload",
            cdn_server.addr,
            canary.addr.port()
        ),
    ] {
        let resp = GetUploadUrlResponse {
            upload_full_url: Some(bad.clone()),
            ..GetUploadUrlResponse::default()
        };
        let err = cdn.upload_url(&prepared, &resp).unwrap_err();
        assert!(
            matches!(
                err.kind(),
                CdnErrorKind::HostNotAllowed | CdnErrorKind::InvalidUrl
            ),
            "{bad}: {err}"
        );
    }
    // An allowed host is used as given.
    let allowed = CdnClient::new(
        HttpClient::new(HttpConfig::default()).unwrap(),
        CdnConfig::default()
            .with_base_url("https://novac2c.cdn.weixin.qq.com/c2c")
            .allow_host("127.0.0.2"),
    );
    assert_eq!(allowed.upload_url(&prepared, &only_full).unwrap(), foreign);
    assert!(canary.seen().is_empty(), "a refused host was contacted");
}

#[tokio::test]
async fn upload_streams_a_file_with_progress() {
    let server = Server::start(|_, _| respond(200, &[("x-encrypted-param", "EQP")], "")).await;
    let cdn = client(&server.base());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    // Several read chunks and a ragged end.
    let data = plaintext(3 * 256 * 1024 + 1000);
    std::fs::write(&path, &data).unwrap();
    let prepared = PreparedUpload::prepare(MediaSource::file(&path), UploadMediaType::File)
        .await
        .unwrap();
    let last = Arc::new(Mutex::new(None::<Progress>));
    let calls = Arc::new(AtomicUsize::new(0));
    let (last2, calls2) = (Arc::clone(&last), Arc::clone(&calls));
    let progress: ilink_cdn::ProgressFn = Arc::new(move |p| {
        calls2.fetch_add(1, Ordering::SeqCst);
        *last2.lock().unwrap() = Some(p);
    });
    let uploaded = cdn
        .upload(&prepared, &upload_response("UP"), Some(progress))
        .await
        .unwrap();
    let seen = server.seen();
    assert_eq!(seen[0].body.len() as u64, uploaded.filesize);
    assert_eq!(
        seen[0].headers["content-length"],
        uploaded.filesize.to_string().as_str()
    );
    assert_eq!(decrypt(&uploaded.key, &seen[0].body).unwrap(), data);
    let last = last.lock().unwrap().unwrap();
    assert_eq!(last.done, uploaded.filesize);
    assert_eq!(last.total, Some(uploaded.filesize));
    assert!(calls.load(Ordering::SeqCst) >= 4);
}

#[tokio::test]
async fn upload_of_empty_file_sends_one_padding_block() {
    let server = Server::start(|_, _| respond(200, &[("x-encrypted-param", "E")], "")).await;
    let cdn = client(&server.base());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty");
    std::fs::write(&path, b"").unwrap();
    let prepared = PreparedUpload::prepare(MediaSource::file(&path), UploadMediaType::File)
        .await
        .unwrap();
    let uploaded = cdn
        .upload(&prepared, &upload_response("UP"), None)
        .await
        .unwrap();
    assert_eq!(uploaded.filesize, 16);
    let body = &server.seen()[0].body;
    assert_eq!(body.as_ref(), encrypt(&uploaded.key, b"").as_slice());
}

#[tokio::test]
async fn upload_retries_after_500_and_missing_header() {
    // 500, then 200 without x-encrypted-param, then success: 3 attempts.
    let server = Server::start(|_, n| match n {
        1 => respond(500, &[], "oops"),
        2 => respond(200, &[], ""),
        _ => respond(200, &[("x-encrypted-param", "OK")], ""),
    })
    .await;
    let cdn = client(&server.base());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let data = plaintext(70_000);
    std::fs::write(&path, &data).unwrap();
    let prepared = PreparedUpload::prepare(MediaSource::file(&path), UploadMediaType::File)
        .await
        .unwrap();
    let uploaded = cdn
        .upload(&prepared, &upload_response("UP"), None)
        .await
        .unwrap();
    assert_eq!(uploaded.attempts, 3);
    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    // The file is re-read and re-encrypted identically for every attempt.
    for s in &seen {
        assert_eq!(decrypt(&uploaded.key, &s.body).unwrap(), data);
    }
}

#[tokio::test]
async fn upload_gives_up_after_three_attempts() {
    let server = Server::start(|_, _| respond(502, &[], "bad gateway")).await;
    let cdn = client(&server.base());
    let prepared =
        PreparedUpload::prepare(MediaSource::bytes(vec![7u8; 40]), UploadMediaType::Video)
            .await
            .unwrap();
    let err = cdn
        .upload(&prepared, &upload_response("UP"), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), CdnErrorKind::UploadFailed);
    assert!(err.to_string().contains("3 attempts"), "{err}");
    assert!(err.to_string().contains("502"), "{err}");
    assert_eq!(server.seen().len(), 3);

    // A configured attempt count is honoured.
    let cdn1 = CdnClient::new(
        HttpClient::new(HttpConfig::default()).unwrap(),
        CdnConfig::default()
            .with_base_url(server.base())
            .with_upload_attempts(1),
    );
    cdn1.upload(&prepared, &upload_response("UP"), None)
        .await
        .unwrap_err();
    assert_eq!(server.seen().len(), 4);
}

#[tokio::test]
async fn upload_4xx_is_final_with_the_cdn_message() {
    let server = Server::start(|_, n| match n {
        1 => respond(
            403,
            &[("x-error-message", "filekey expired")],
            "ignored body",
        ),
        _ => respond(400, &[], "bad request body text"),
    })
    .await;
    let cdn = client(&server.base());
    let prepared =
        PreparedUpload::prepare(MediaSource::bytes(vec![7u8; 40]), UploadMediaType::File)
            .await
            .unwrap();
    let err = cdn
        .upload(&prepared, &upload_response("UP"), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), CdnErrorKind::UploadRejected);
    assert_eq!(err.status(), Some(403));
    assert!(err.to_string().contains("filekey expired"), "{err}");
    assert_eq!(server.seen().len(), 1);

    let err = cdn
        .upload(&prepared, &upload_response("UP"), None)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert!(err.to_string().contains("bad request body text"), "{err}");
    assert_eq!(server.seen().len(), 2);
}

#[tokio::test]
async fn upload_connection_refused_is_retried_then_fails() {
    // Bind and drop a listener to get a port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cdn = client(&format!("http://127.0.0.1:{port}/c2c"));
    let prepared = PreparedUpload::prepare(MediaSource::bytes(vec![1u8; 3]), UploadMediaType::File)
        .await
        .unwrap();
    let err = cdn
        .upload(&prepared, &upload_response("UP"), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), CdnErrorKind::UploadFailed);
}

#[tokio::test]
async fn upload_detects_a_file_changed_after_hashing() {
    let server = Server::start(|_, _| respond(200, &[("x-encrypted-param", "E")], "")).await;
    let cdn = client(&server.base());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("growing");
    std::fs::write(&path, plaintext(1000)).unwrap();
    let prepared = PreparedUpload::prepare(MediaSource::file(&path), UploadMediaType::File)
        .await
        .unwrap();
    std::fs::write(&path, plaintext(2000)).unwrap();
    let err = cdn
        .upload(&prepared, &upload_response("UP"), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), CdnErrorKind::SourceChanged);
    std::fs::write(&path, plaintext(10)).unwrap();
    let err = cdn
        .upload(&prepared, &upload_response("UP"), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), CdnErrorKind::SourceChanged);
    // Nothing was accepted as a successful upload.
    assert!(server.seen().iter().all(|s| s.body.len() != 1008));
}

fn media(param: &str) -> CdnMedia {
    CdnMedia {
        encrypt_query_param: Some(param.to_owned()),
        ..CdnMedia::default()
    }
}

#[tokio::test]
async fn download_decrypts_from_the_built_url() {
    let key = MediaKey::from_bytes([5; 16]);
    let mut data = b"%PDF-1.7\n".to_vec();
    data.extend(plaintext(200_000));
    let ct = Bytes::from(encrypt(&key, &data));
    let ct2 = ct.clone();
    let server = Server::start(move |_, _| respond(200, &[], ct2.clone())).await;
    let cdn = client(&server.base());
    let got = cdn.download(&media("EQP/+="), Some(&key)).await.unwrap();
    assert_eq!(got, data);
    let seen = server.seen();
    assert_eq!(seen[0].method, Method::GET);
    assert_eq!(
        seen[0].uri,
        "/c2c/download?encrypted_query_param=EQP%2F%2B%3D"
    );
    assert!(seen[0].headers.get("content-type").is_none());

    // Into a file, with the format sniffed.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.pdf");
    let done = cdn
        .download_to_file(&media("EQP"), Some(&key), &path, None)
        .await
        .unwrap();
    assert_eq!(done.len, data.len() as u64);
    assert_eq!(done.format, Some(MediaFormat::Pdf));
    assert_eq!(std::fs::read(&path).unwrap(), data);

    // Into a writer, with progress over the ciphertext.
    let mut out = Vec::new();
    let seen_bytes = Arc::new(AtomicU64::new(0));
    let sb = Arc::clone(&seen_bytes);
    let progress: ilink_cdn::ProgressFn = Arc::new(move |p| sb.store(p.done, Ordering::SeqCst));
    let done = cdn
        .download_to_writer(&media("EQP"), Some(&key), &mut out, Some(progress))
        .await
        .unwrap();
    assert_eq!(out, data);
    assert_eq!(done.format, Some(MediaFormat::Pdf));
    assert_eq!(seen_bytes.load(Ordering::SeqCst), ct.len() as u64);
}

#[tokio::test]
async fn download_without_key_is_plain() {
    let server = Server::start(|_, _| respond(200, &[], "\u{ff}plain")).await;
    let cdn = client(&server.base());
    assert_eq!(
        cdn.download(&media("x"), None).await.unwrap(),
        "\u{ff}plain".as_bytes()
    );
}

#[tokio::test]
async fn download_with_wrong_key_fails_and_removes_the_file() {
    let ct = Bytes::from(encrypt(&MediaKey::from_bytes([1; 16]), &plaintext(5000)));
    let server = Server::start(move |_, _| respond(200, &[], ct.clone())).await;
    let cdn = client(&server.base());
    let wrong = MediaKey::from_bytes([2; 16]);
    let err = cdn.download(&media("x"), Some(&wrong)).await.unwrap_err();
    assert_eq!(err.kind(), CdnErrorKind::Decrypt);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out");
    let err = cdn
        .download_to_file(&media("x"), Some(&wrong), &path, None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), CdnErrorKind::Decrypt);
    assert!(!path.exists());
}

#[tokio::test]
async fn download_non_2xx_fails_with_status() {
    let server = Server::start(|_, _| respond(404, &[], "no such media")).await;
    let cdn = client(&server.base());
    let err = cdn.download(&media("x"), None).await.unwrap_err();
    assert_eq!(err.kind(), CdnErrorKind::DownloadFailed);
    assert_eq!(err.status(), Some(404));
    assert!(err.to_string().contains("no such media"), "{err}");
    assert_eq!(server.seen().len(), 1, "downloads are not retried");
}

#[tokio::test]
async fn download_full_url_obeys_the_allowlist() {
    let key = MediaKey::from_bytes([3; 16]);
    let ct = Bytes::from(encrypt(&key, b"full-url media"));
    let server = Server::start(move |_, _| respond(200, &[], ct.clone())).await;
    let full = CdnMedia {
        full_url: Some(format!("http://{}/direct/file?id=1", server.addr)),
        ..CdnMedia::default()
    };
    // The CDN base is elsewhere, so 127.0.0.1 is only allowed when added.
    let strict = client("https://novac2c.cdn.weixin.qq.com/c2c");
    let err = strict.download(&full, Some(&key)).await.unwrap_err();
    assert_eq!(err.kind(), CdnErrorKind::HostNotAllowed);
    assert!(
        server.seen().is_empty(),
        "a refused host is never contacted"
    );

    let allowed = CdnClient::new(
        HttpClient::new(HttpConfig::default()).unwrap(),
        CdnConfig::default()
            .with_base_url("https://novac2c.cdn.weixin.qq.com/c2c")
            .allow_host("127.0.0.1"),
    );
    assert_eq!(
        allowed.download(&full, Some(&key)).await.unwrap(),
        b"full-url media"
    );
    assert_eq!(server.seen()[0].uri, "/direct/file?id=1");

    // A foreign full_url next to an encrypt_query_param: the built URL is used instead.
    let both = CdnMedia {
        full_url: Some("https://attacker.example/x".into()),
        encrypt_query_param: Some("EQP".into()),
        ..CdnMedia::default()
    };
    let cdn = client(&server.base());
    assert_eq!(
        cdn.download_url(&both).unwrap(),
        format!("{}/download?encrypted_query_param=EQP", server.base())
    );
    assert_eq!(
        cdn.download(&both, Some(&key)).await.unwrap(),
        b"full-url media"
    );
    assert_eq!(
        client(&server.base())
            .download_url(&CdnMedia::default())
            .unwrap_err()
            .kind(),
        CdnErrorKind::InvalidUrl
    );
    let _ = HostAllowlist::default();
}

#[tokio::test]
async fn download_over_the_cap_with_content_length_fails_at_once() {
    let ct = Bytes::from(vec![0u8; 64 * 1024]);
    let server = Server::start(move |_, _| respond(200, &[], ct.clone())).await;
    let cdn = CdnClient::new(
        HttpClient::new(HttpConfig::default()).unwrap(),
        CdnConfig::default()
            .with_base_url(server.base())
            .with_max_download_bytes(10_000),
    );
    let err = cdn.download(&media("x"), None).await.unwrap_err();
    assert_eq!(err.kind(), CdnErrorKind::TooLarge);
    assert!(err.to_string().contains("10000"), "{err}");
    // Exactly at the cap is fine, for encrypted media too.
    let key = MediaKey::from_bytes([9; 16]);
    let data = plaintext(10_000);
    let ct = Bytes::from(encrypt(&key, &data));
    let server = Server::start(move |_, _| respond(200, &[], ct.clone())).await;
    let cdn = CdnClient::new(
        HttpClient::new(HttpConfig::default()).unwrap(),
        CdnConfig::default()
            .with_base_url(server.base())
            .with_max_download_bytes(10_000),
    );
    assert_eq!(cdn.download(&media("x"), Some(&key)).await.unwrap(), data);
}

#[tokio::test]
async fn download_over_the_cap_without_length_stops_early() {
    // A raw server that streams chunked data without end, until the client hangs up.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let sent2 = Arc::clone(&sent);
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut req = [0u8; 4096];
        let _ = s.read(&mut req).await;
        let head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        if s.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = vec![0x41u8; 64 * 1024];
        // Bounded: at most 256 MiB, far past the cap.
        for _ in 0..4096 {
            let frame = format!("{:x}\r\n", chunk.len());
            if s.write_all(frame.as_bytes()).await.is_err()
                || s.write_all(&chunk).await.is_err()
                || s.write_all(b"\r\n").await.is_err()
            {
                return;
            }
            sent2.fetch_add(chunk.len() as u64, Ordering::SeqCst);
        }
    });
    let cdn = CdnClient::new(
        HttpClient::new(HttpConfig::default()).unwrap(),
        CdnConfig::default()
            .with_base_url(format!("http://{addr}/c2c"))
            .with_max_download_bytes(1024 * 1024),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("capped");
    let err = cdn
        .download_to_file(&media("x"), None, &path, None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), CdnErrorKind::TooLarge);
    assert!(!path.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // Give the server a moment to notice the closed connection, then check it stopped
    // far short of its 256 MiB.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(
        sent.load(Ordering::SeqCst) < 64 * 1024 * 1024,
        "sent {}",
        sent.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn keys_from_inbound_media_decrypt_downloads() {
    // The inbound key forms of §12.4 feed straight into a download.
    let key = MediaKey::generate().unwrap();
    let ct = Bytes::from(encrypt(&key, b"voice"));
    let server = Server::start(move |_, _| respond(200, &[], ct.clone())).await;
    let cdn = client(&server.base());
    for form in [key.to_base64(), key.to_base64_of_hex()] {
        let m = CdnMedia {
            encrypt_query_param: Some("v".into()),
            aes_key: Some(Secret::new(form)),
            ..CdnMedia::default()
        };
        let k = MediaKey::from_cdn_aes_key(m.aes_key.as_ref().unwrap().expose()).unwrap();
        assert_eq!(cdn.download(&m, Some(&k)).await.unwrap(), b"voice");
    }
}

/// Issue 21: upload retries wait for the configured backoff (the official client retries at
/// once). With an hour-long backoff the second attempt has not come long after the first.
#[tokio::test]
async fn upload_retries_wait_for_the_backoff() {
    assert_eq!(
        CdnConfig::default().upload_backoff,
        ilink_cdn::Backoff::default()
    );
    assert!(!CdnConfig::default().upload_backoff.base().is_zero());
    let server = Server::start(|_, _| respond(500, &[], "oops")).await;
    let cdn = CdnClient::new(
        HttpClient::new(HttpConfig::default()).unwrap(),
        CdnConfig::default()
            .with_base_url(server.base())
            .with_upload_backoff(ilink_cdn::Backoff::new(
                std::time::Duration::from_secs(3600),
                std::time::Duration::from_secs(3600),
            )),
    );
    let prepared = PreparedUpload::prepare(MediaSource::bytes(vec![1u8; 3]), UploadMediaType::File)
        .await
        .unwrap();
    let grant = upload_response("UP");
    let upload = cdn.upload(&prepared, &grant, None);
    tokio::pin!(upload);
    // Drive the upload until the first attempt has been answered...
    while server.seen().is_empty() {
        tokio::select! {
            _ = &mut upload => panic!("the upload ended after one attempt"),
            _ = tokio::time::sleep(std::time::Duration::from_millis(5)) => {}
        }
    }
    // ...then a while longer: the retry is still waiting.
    let waited = tokio::time::timeout(std::time::Duration::from_millis(300), &mut upload).await;
    assert!(waited.is_err(), "the upload finished without waiting");
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn probe_reads_size_and_format_without_hashing() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("a.png");
    std::fs::write(&png, b"\x89PNG\r\n\x1a\n-rest").unwrap();
    let p = MediaSource::file(&png).probe().await.unwrap();
    assert_eq!((p.len, p.format), (13, Some(MediaFormat::Png)));
    // A large sparse file: the size comes from the metadata.
    let big = dir.path().join("big.bin");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let p = MediaSource::file(&big).probe().await.unwrap();
    assert_eq!((p.len, p.format), (1 << 30, None));
    let p = MediaSource::bytes(Vec::new()).probe().await.unwrap();
    assert_eq!((p.len, p.format), (0, None));
    let err = MediaSource::file(dir.path()).probe().await.unwrap_err();
    assert_eq!(err.kind(), CdnErrorKind::Io);
    assert!(err.to_string().contains("is not a regular file"), "{err}");
    let err = MediaSource::file(dir.path().join("missing"))
        .probe()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), CdnErrorKind::Io);
}
