//! Shared setup for end-to-end tests against ilink-sim.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ilink_client::{
    Account, BoxFuture, Client, ClientConfig, Credentials, Delays, LoginEvent, LoginPresenter,
    MemoryStore, QrCode, Secret, StateStore,
};
use ilink_sim::{BotAccount, Sim, SimConfig};

mod faulty_store;
// Not every test binary uses it.
#[allow(unused_imports)]
pub use faulty_store::FaultyStore;

pub const WAIT: Duration = Duration::from_secs(10);

pub async fn sim() -> Sim {
    Sim::start(SimConfig::for_tests(Duration::from_millis(300)))
        .await
        .unwrap()
}

pub fn config(sim: &Sim) -> ClientConfig {
    let mut c = ClientConfig::for_server(&sim.base_url())
        .with_delays(Delays::fast())
        .with_cdn_base_url(sim.cdn_base_url());
    c.timeouts.long_poll_margin = Duration::from_millis(500);
    // The sim serves `upload_full_url` and `full_url` on loopback: allow it explicitly (it is
    // also the CDN base host, which is always allowed).
    c.cdn_allowed_hosts.push("127.0.0.1".to_owned());
    c
}

pub fn creds(sim: &Sim, bot: &BotAccount) -> Credentials {
    Credentials {
        account_id: bot.bot_id.clone(),
        token: Secret::new(bot.token.clone()),
        base_url: Some(sim.base_url()),
        user_id: bot.user_id.clone(),
        saved_at_ms: 1,
    }
}

/// A client with an in-memory store and one account for a fresh bot.
pub async fn setup() -> (Sim, Client, Account, BotAccount) {
    let sim = sim().await;
    let bot = sim.create_bot();
    let client = Client::new(config(&sim), MemoryStore::new()).unwrap();
    let account = client.add_account(creds(&sim, &bot)).await.unwrap();
    (sim, client, account, bot)
}

pub fn client_with_store(sim: &Sim, store: Arc<dyn StateStore>) -> Client {
    Client::builder()
        .config(config(sim))
        .shared_store(store)
        .build()
        .unwrap()
}

/// A presenter that records what it was shown and answers verify codes from a list.
#[derive(Default, Clone)]
pub struct Recorder {
    pub qrs: Arc<Mutex<Vec<QrCode>>>,
    pub events: Arc<Mutex<Vec<LoginEvent>>>,
    pub codes: Arc<Mutex<Vec<String>>>,
    pub asked: Arc<Mutex<Vec<bool>>>,
}

impl LoginPresenter for Recorder {
    fn show_qr(&self, qr: &QrCode) {
        self.qrs.lock().unwrap().push(qr.clone());
    }
    fn event(&self, event: &LoginEvent) {
        self.events.lock().unwrap().push(event.clone());
    }
    fn verify_code(&self, wrong: bool) -> BoxFuture<'_, Option<String>> {
        self.asked.lock().unwrap().push(wrong);
        let next = {
            let mut c = self.codes.lock().unwrap();
            if c.is_empty() {
                None
            } else {
                Some(c.remove(0))
            }
        };
        Box::pin(async move { next })
    }
}

/// Count requests the sim saw to an endpoint path suffix.
pub fn count_requests(sim: &Sim, suffix: &str) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.path.ends_with(suffix))
        .count()
}
