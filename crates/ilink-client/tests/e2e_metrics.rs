//! The metrics of `ilink_client::metrics`, end to end against ilink-sim over loopback HTTP,
//! read from a recorder of the test's own (installed for the test's thread only, so tests
//! running in parallel do not see each other's counts).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use ilink_client::metrics as m;
use ilink_client::{Client, MediaType, MemoryStore, MessageContext, SendErrorKind};
use ilink_sim::{Endpoint, Fault, Sim, SimConfig};
use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};

const USER: &str = "metered@im.wechat";

// ---------------------------------------------------------------------- a test recorder

#[derive(Default)]
struct Samples(Mutex<Vec<f64>>);

impl HistogramFn for Samples {
    fn record(&self, value: f64) {
        self.0.lock().unwrap().push(value);
    }
}

/// Keeps every counter, gauge and histogram by `name{label="value",...}` (labels sorted),
/// and the units described.
#[derive(Default, Clone)]
struct TestRecorder {
    counters: Arc<Mutex<HashMap<String, Arc<AtomicU64>>>>,
    gauges: Arc<Mutex<HashMap<String, Arc<AtomicU64>>>>,
    histograms: Arc<Mutex<HashMap<String, Arc<Samples>>>>,
    units: Arc<Mutex<HashMap<String, Option<Unit>>>>,
}

fn series(key: &Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={:?}", l.key(), l.value()))
        .collect();
    labels.sort();
    if labels.is_empty() {
        key.name().to_owned()
    } else {
        format!("{}{{{}}}", key.name(), labels.join(","))
    }
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.units
            .lock()
            .unwrap()
            .insert(key.as_str().to_owned(), unit);
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.describe_counter(key, unit, SharedString::const_str(""));
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.describe_counter(key, unit, SharedString::const_str(""));
    }
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let c = self
            .counters
            .lock()
            .unwrap()
            .entry(series(key))
            .or_default()
            .clone();
        Counter::from_arc(c)
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let g = self
            .gauges
            .lock()
            .unwrap()
            .entry(series(key))
            .or_default()
            .clone();
        Gauge::from_arc(g)
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let h = self
            .histograms
            .lock()
            .unwrap()
            .entry(series(key))
            .or_default()
            .clone();
        Histogram::from_arc(h)
    }
}

impl TestRecorder {
    fn counter(&self, series: &str) -> u64 {
        self.counters
            .lock()
            .unwrap()
            .get(series)
            .map_or(0, |c| c.load(Ordering::SeqCst))
    }
    fn gauge(&self, series: &str) -> Option<f64> {
        self.gauges
            .lock()
            .unwrap()
            .get(series)
            .map(|g| f64::from_bits(g.load(Ordering::SeqCst)))
    }
    fn samples(&self, series: &str) -> Vec<f64> {
        self.histograms
            .lock()
            .unwrap()
            .get(series)
            .map(|h| h.0.lock().unwrap().clone())
            .unwrap_or_default()
    }
    fn replies(&self, outcome: &str) -> u64 {
        self.counter(&format!("{}{{outcome={outcome:?}}}", m::REPLIES))
    }
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A bot that answers `start` with a text of many messages, media with the same media,
/// `hello` with an echo, and nothing else.
async fn bot(ctx: MessageContext) -> Result<(), ilink_client::SendError> {
    if let Some(item) = ctx.message().media_item().cloned() {
        let bytes = ctx.account().download(&item).await.unwrap();
        ctx.reply_media_as(bytes, MediaType::Image).await?;
    } else if ctx.text() == Some("start") {
        ctx.reply(&ilink_sim::long_reply(30_000)).await?;
    } else if ctx.text() == Some("hello") {
        ctx.reply("echo: hello").await?;
    }
    Ok(())
}

// The test runs on one thread (`#[tokio::test]`'s default), and every task of the client and
// of the sim with it, so the thread's recorder sees everything.
#[tokio::test]
async fn counters_follow_an_exchange_with_the_emulator() {
    let rec = TestRecorder::default();
    let _guard = metrics::set_default_local_recorder(&rec);
    m::describe();

    // The live limits: 10 replies per inbound message, text cap 2000.
    let sim = Sim::start(SimConfig::for_tests(Duration::from_millis(300)))
        .await
        .unwrap();
    let bot_acct = sim.create_bot();
    let client = Client::new(config(&sim), MemoryStore::new()).unwrap();
    let account = client.add_account(creds(&sim, &bot_acct)).await.unwrap();
    let id = account.id().to_owned();
    let received = format!("{}{{account={id:?}}}", m::MESSAGES_RECEIVED);
    let depth = format!("{}{{account={id:?}}}", m::OUTBOX_DEPTH);
    // The account opened with an empty queue.
    assert_eq!(rec.gauge(&depth), Some(0.0));

    let run = {
        let account = account.clone();
        tokio::spawn(async move { account.run(bot).await })
    };
    let user = sim.user(USER);
    let delivered = || sim.delivered_to(USER).len() as u64;

    // 1. A text and its echo.
    user.send_text(&bot_acct.bot_id, "hello").unwrap();
    wait_until("the echo", || delivered() == 1).await;
    wait_until("the echo counted", || {
        rec.replies(m::OUTCOME_DELIVERED) == 1
    })
    .await;
    assert_eq!(rec.counter(&received), 1);
    let polls = rec.samples(m::POLL_LATENCY);
    assert!(!polls.is_empty(), "no poll latency recorded");
    assert!(
        polls.iter().all(|s| s.is_finite() && *s >= 0.0),
        "{polls:?}"
    );

    // 2. An image comes back as an image: media counts like text.
    let png = [b"\x89PNG\r\n\x1a\n".as_slice(), &[3u8; 2000]].concat();
    user.send_image(&bot_acct.bot_id, &png).unwrap();
    wait_until("the image", || delivered() == 2).await;
    wait_until("the image counted", || {
        rec.replies(m::OUTCOME_DELIVERED) == 2
    })
    .await;
    assert_eq!(rec.counter(&received), 2);

    // 3. A reply longer than the window allows: 10 messages go, the rest is queued.
    user.send_text(&bot_acct.bot_id, "start").unwrap();
    wait_until("the first window", || delivered() == 12).await;
    wait_until("the rest queued", || account.budget(USER).queued > 0).await;
    wait_until("the handler done", || {
        rec.samples(m::HANDLER_DURATION).len() == 3
    })
    .await;
    let queued = account.budget(USER).queued as u64;
    assert_eq!(rec.counter(&received), 3);
    assert_eq!(rec.replies(m::OUTCOME_DELIVERED), 12);
    assert_eq!(rec.replies(m::OUTCOME_QUEUED), queued);
    assert_eq!(rec.gauge(&depth), Some(queued as f64));
    assert_eq!(rec.replies(m::OUTCOME_FAILED), 0);

    // 4. The user writes again: the queue is flushed first (up to 10); no new reply.
    user.send_text(&bot_acct.bot_id, "more").unwrap();
    let flushed = queued.min(10);
    wait_until("the flush", || delivered() >= 12 + flushed).await;
    wait_until("the handler done", || {
        rec.samples(m::HANDLER_DURATION).len() == 4
    })
    .await;
    let left = account.budget(USER).queued as u64;
    assert_eq!(left, queued - flushed);
    // Every message the server took counts once as delivered, queued ones when they go.
    assert_eq!(rec.replies(m::OUTCOME_DELIVERED), delivered());
    assert_eq!(rec.gauge(&depth), Some(left as f64));
    assert_eq!(rec.counter(&received), 4);

    // 5. A send that cannot go: failed, once.
    let e = account
        .send_text("stranger@im.wechat", "hi")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), SendErrorKind::NoContextToken);
    assert_eq!(rec.replies(m::OUTCOME_FAILED), 1);

    // 6. A poll answered with HTTP 500.
    sim.inject_fault(Endpoint::GetUpdates, Fault::Status(500), 1);
    let http_status = format!("{}{{kind=\"http_status\"}}", m::POLL_ERRORS);
    wait_until("the poll error", || rec.counter(&http_status) == 1).await;

    // 7. The session expires for good.
    let expired = format!("{}{{account={id:?}}}", m::SESSION_EXPIRED);
    assert!(sim.expire_token(&bot_acct.bot_id));
    wait_until("the expiry", || rec.counter(&expired) == 1).await;

    account.shutdown();
    run.await.unwrap().unwrap();
    assert_eq!(rec.samples(m::HANDLER_DURATION).len(), 4);
    assert_eq!(rec.counter(&received), 4);
    // Every metric has its unit once `describe` ran.
    let units = rec.units.lock().unwrap().clone();
    for name in m::ALL {
        assert!(units.contains_key(*name), "{name} not described");
    }
    assert_eq!(units[m::POLL_LATENCY], Some(Unit::Seconds));
}
