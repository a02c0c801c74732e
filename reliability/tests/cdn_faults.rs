//! CDN faults: users send images, the bot downloads each one and answers with an image of its
//! own, while the emulated CDN and getuploadurl fail. Every inbound message is handled once;
//! every download gives the exact bytes or a typed error; every media reply reaches the user
//! once with the exact bytes, or its caller gets a typed error and the user gets nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ilink_client::{
    Client, Credentials, MediaType, MemoryStore, MessageContext, Secret, SendErrorKind,
};
use ilink_sim::{Endpoint, Fault, Sim};

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";

fn image(label: &str) -> Vec<u8> {
    let mut v = PNG.to_vec();
    v.extend_from_slice(label.as_bytes());
    // Some bulk, so bodies span more than one AES block and TCP write.
    v.extend(std::iter::repeat_n(b'.', 3000));
    v
}

#[derive(Default)]
struct Seen {
    handled: HashMap<String, u32>,
    /// Per inbound message id: the downloaded bytes, or the error kind.
    downloads: HashMap<String, Result<Vec<u8>, String>>,
    /// Per reply label: the caller's outcome.
    replies: HashMap<String, Result<(), SendErrorKind>>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_under_cdn_faults_is_delivered_or_reported() {
    const MESSAGES: usize = 120;
    let sim = Sim::start(ilink_reliability::sim_config()).await.unwrap();
    let bot = sim.create_bot();
    let mut config = ilink_reliability::fast_config(&sim);
    config.typing = false;
    let client = Client::new(config, MemoryStore::new()).unwrap();
    let account = client
        .add_account(Credentials {
            account_id: bot.bot_id.clone(),
            token: Secret::new(bot.token.clone()),
            base_url: Some(sim.base_url()),
            user_id: None,
            saved_at_ms: 1,
        })
        .await
        .unwrap();
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let s = seen.clone();
    let acct = account.clone();
    let task = tokio::spawn(async move {
        acct.run(move |ctx: MessageContext| {
            let s = s.clone();
            async move {
                let id = ctx.message().message_id().unwrap().as_str().to_owned();
                *s.lock().unwrap().handled.entry(id.clone()).or_default() += 1;
                let download = ctx.download_media().await;
                let label = format!("reply-{id}");
                let outcome = ctx
                    .reply_media_as(image(&label), MediaType::Image)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.kind());
                let mut g = s.lock().unwrap();
                g.downloads.insert(
                    id,
                    match download {
                        Ok(Some(bytes)) => Ok(bytes),
                        Ok(None) => Err("no media item".to_owned()),
                        Err(e) => Err(format!("{:?}", e.kind())),
                    },
                );
                g.replies.insert(label, outcome);
            }
        })
        .await
        .unwrap();
    });

    let faults = vec![
        (Endpoint::CdnUpload, Fault::Status(500), 2),
        (Endpoint::CdnDownload, Fault::Status(500), 2),
        (Endpoint::CdnUpload, Fault::MissingEncryptedParam, 2),
        (Endpoint::CdnDownload, Fault::ConnectionReset, 1),
        (Endpoint::CdnUpload, Fault::ConnectionReset, 2),
        (Endpoint::GetUploadUrl, Fault::Status(502), 1),
        (Endpoint::CdnDownload, Fault::TruncatedBody, 1),
        // Three attempts in a row fail: the upload gives up with a typed error.
        (Endpoint::CdnUpload, Fault::Status(503), 3),
        (Endpoint::CdnDownload, Fault::EmptyBody, 1),
        // A 4xx is final.
        (Endpoint::CdnUpload, Fault::Status(400), 1),
        (Endpoint::GetUploadUrl, Fault::Overloaded(None), 1),
    ];
    let injected: u32 = faults.iter().map(|(_, _, n)| n).sum();
    let user = sim.user("media-user@im.wechat");
    let mut expected: HashMap<String, Vec<u8>> = HashMap::new();
    for (i, (ep, f, n)) in faults.iter().enumerate() {
        sim.inject_fault(*ep, f.clone(), *n);
        for j in 0..MESSAGES / faults.len() {
            let data = image(&format!("in-{i}-{j}"));
            let m = user.send_image(&bot, &data).unwrap();
            expected.insert(m.message_id.to_string(), data);
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    // Settle: everything handled and every fault fired (more messages if some still wait).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut extra = 0;
    loop {
        let done = {
            let g = seen.lock().unwrap();
            sim.inbound()
                .iter()
                .all(|m| g.replies.contains_key(&format!("reply-{}", m.message_id)))
        };
        if done && sim.pending_faults().is_empty() || tokio::time::Instant::now() > deadline {
            break;
        }
        if done && extra < 50 {
            let data = image(&format!("extra-{extra}"));
            let m = user.send_image(&bot, &data).unwrap();
            expected.insert(m.message_id.to_string(), data);
            extra += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    account.shutdown();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();

    let g = std::mem::take(&mut *seen.lock().unwrap());
    assert!(
        sim.pending_faults().is_empty(),
        "{:?}",
        sim.pending_faults()
    );
    // Inbound: exactly once, and the bytes are exact or the error is typed.
    for m in sim.inbound() {
        let id = m.message_id.to_string();
        assert_eq!(g.handled.get(&id), Some(&1), "message {id}");
    }
    let mut download_errors: HashMap<String, usize> = HashMap::new();
    for (id, d) in &g.downloads {
        match d {
            Ok(bytes) => assert!(
                expected.get(id) == Some(bytes),
                "{id}: the download gave other bytes than the user sent"
            ),
            Err(kind) => *download_errors.entry(kind.clone()).or_default() += 1,
        }
    }
    // Every injected download fault failed exactly one download (no retries on downloads),
    // and each failure was reported as a media error.
    assert_eq!(
        download_errors,
        HashMap::from([("Media".to_owned(), 5)]),
        "{download_errors:?}"
    );
    // Outbound: match what the user received by its decrypted bytes.
    let mut received: HashMap<String, usize> = HashMap::new();
    for d in sim.delivered() {
        let bytes = sim.download(&d.item).unwrap();
        let label = String::from_utf8_lossy(&bytes[PNG.len()..])
            .trim_end_matches('.')
            .to_owned();
        *received.entry(label).or_default() += 1;
    }
    let mut errors: HashMap<String, usize> = HashMap::new();
    for (label, outcome) in &g.replies {
        let n = received.get(label).copied().unwrap_or(0);
        match outcome {
            Ok(()) => assert_eq!(n, 1, "{label}: Ok but received {n} times"),
            Err(kind) => {
                *errors.entry(format!("{kind:?}")).or_default() += 1;
                assert_eq!(n, 0, "{label}: {kind:?} but received {n} times");
            }
        }
    }
    assert!(
        received.keys().all(|l| g.replies.contains_key(l)),
        "{received:?}"
    );
    // Failed uploads: the 3-in-a-row 503, the final 400 and getuploadurl's 502; the grant
    // refused with ret -2 is reported like a refused sendmessage (issue 20).
    assert_eq!(
        errors,
        HashMap::from([
            ("Upload".to_owned(), 3),
            ("Throttled(Unknown)".to_owned(), 1)
        ]),
        "{errors:?}"
    );
    assert!(sim.dropped().is_empty(), "{:?}", sim.dropped());
    println!(
        "cdn: messages={} faults={injected} lost=0 duplicates=0 download_errors={download_errors:?} \
         reply_errors={errors:?} media_delivered={}",
        sim.inbound().len(),
        received.len()
    );
    sim.shutdown().await;
}
