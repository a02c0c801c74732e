//! `--metrics ADDR` through the `ilink` binary: `ilink sim` and `ilink echo --metrics
//! 127.0.0.1:0` as processes, a message sent through the emulator's admin API, and the
//! counters scraped from `/metrics` over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStderr};

/// The user the emulator's phone logs in as (its default QR script).
const USER: &str = "o9sim_default_user@im.wechat";
const WAIT: Duration = Duration::from_secs(30);

async fn get(http: &ilink_http::HttpClient, url: &str) -> (u16, String) {
    let resp = http.request(ilink_http::Request::get(url)).await.unwrap();
    let status = resp.status.as_u16();
    (status, text(&resp.bytes().await.unwrap()))
}

async fn post(http: &ilink_http::HttpClient, url: &str, body: Value) -> Value {
    let req = ilink_http::Request::post(url)
        .header("content-type", "application/json")
        .body(body.to_string().into_bytes());
    let resp = http.request(req).await.unwrap();
    serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap()
}

/// The value of the sample `series` (`name` or `name{labels}`) in a Prometheus text page.
fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Reads stderr lines until one starts with `prefix`; returns the rest of it.
async fn line_after(lines: &mut Lines<BufReader<ChildStderr>>, prefix: &str) -> String {
    loop {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap_or_else(|| panic!("stderr ended before {prefix:?}"));
        if let Some(rest) = line.strip_prefix(prefix) {
            return rest.trim().to_owned();
        }
    }
}

/// `ilink sim --json` on a free port: the process and its URLs.
async fn start_sim() -> (Child, Value) {
    let mut sim = command()
        .args(["sim", "--port", "0", "--hold-ms", "300", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(sim.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(WAIT, out.next_line())
        .await
        .unwrap()
        .unwrap()
        .expect("ilink sim printed its URLs");
    let urls: Value = serde_json::from_str(&line).unwrap();
    (sim, urls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_serves_its_counters_to_prometheus() {
    let (mut sim, urls) = start_sim().await;
    let (base, cdn, admin) = (
        urls["base_url"].as_str().unwrap().to_owned(),
        urls["cdn_base_url"].as_str().unwrap().to_owned(),
        urls["admin_url"].as_str().unwrap().to_owned(),
    );
    let dir = tempfile::tempdir().unwrap();
    let ilink = |args: &[&str]| {
        let mut c = command();
        c.arg("--base-url")
            .arg(&base)
            .arg("--cdn-base-url")
            .arg(&cdn)
            .arg("--state-dir")
            .arg(dir.path())
            .args(args)
            .stdin(Stdio::null());
        c
    };
    // Log in through the emulator's QR flow (its phone scans and confirms).
    let o = ilink(&["login"]).output().await.unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let bot_id = text(&o.stdout)
        .split_whitespace()
        .find(|w| w.contains("@im.bot"))
        .unwrap()
        .trim_end_matches('.')
        .to_owned();

    let mut echo = ilink(&["echo", "--metrics", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kept open to the end: the bot's stderr stays writable.
    let mut stderr = BufReader::new(echo.stderr.take().unwrap()).lines();
    let url = line_after(&mut stderr, "Metrics:").await;
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(url.ends_with("/metrics"), "{url}");
    assert!(
        !url.contains("127.0.0.1:0/"),
        "the bound port is printed: {url}"
    );

    let http = ilink_http::HttpClient::new(ilink_http::HttpConfig::default()).unwrap();
    let sent = post(
        &http,
        &format!("{admin}users/{USER}/send"),
        serde_json::json!({"bot_id": bot_id, "kind": "text", "text": "hello"}),
    )
    .await;
    assert!(sent["message_id"].as_u64().is_some(), "{sent}");

    let delivered = r#"ilink_replies_total{outcome="delivered"}"#;
    let deadline = tokio::time::Instant::now() + WAIT;
    let page = loop {
        let (status, page) = get(&http, &url).await;
        assert_eq!(status, 200, "{page}");
        if sample(&page, delivered) == Some(1.0) {
            break page;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no delivered reply counted:\n{page}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let account = format!("{{account=\"{bot_id}\"}}");
    assert_eq!(
        sample(&page, &format!("ilink_messages_received_total{account}")),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, &format!("ilink_outbox_depth{account}")),
        Some(0.0),
        "{page}"
    );
    // Series of fixed labels exist from the start, at 0.
    assert_eq!(
        sample(&page, r#"ilink_replies_total{outcome="queued"}"#),
        Some(0.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, r#"ilink_replies_total{outcome="failed"}"#),
        Some(0.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, r#"ilink_poll_errors_total{kind="transport"}"#),
        Some(0.0),
        "{page}"
    );
    // Histograms with the buckets ilink_client::metrics suggests, described.
    assert!(
        page.contains("# TYPE ilink_poll_latency_seconds histogram"),
        "{page}"
    );
    assert!(page.contains("# HELP ilink_replies_total "), "{page}");
    assert!(
        sample(&page, r#"ilink_poll_latency_seconds_bucket{le="35"}"#).is_some(),
        "{page}"
    );
    assert!(
        sample(&page, "ilink_poll_latency_seconds_count").is_some_and(|n| n >= 1.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, "ilink_handler_duration_seconds_count"),
        Some(1.0),
        "{page}"
    );
    // The reply really went out.
    let (_, d) = get(&http, &format!("{admin}delivered?user={USER}")).await;
    assert!(d.contains("echo: hello"), "{d}");
    // Only /metrics is served.
    let other = url.replace("/metrics", "/other");
    assert_eq!(get(&http, &other).await.0, 404);

    echo.kill().await.unwrap();
    sim.kill().await.unwrap();
}

#[tokio::test]
async fn a_taken_or_malformed_address_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let o = command()
        .args(["echo", "--metrics", &addr, "--state-dir"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with(&format!("ilink: error: cannot serve metrics on {addr}")),
        "{err}"
    );
    assert!(err.contains("hint:") && err.contains("port 0"), "{err}");

    let o = command()
        .args(["tail", "--metrics", "localhost", "--state-dir"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("IP:PORT"), "{err}");
}
