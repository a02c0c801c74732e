//! A scripted conversation of hundreds of messages between emulated WeChat users and an echo
//! bot running on `ilink-client`, with faults injected into `ilink-sim` while it runs, and a
//! reconciliation of what every side saw.
//!
//! The bot handles each message by recording its `message_id` and replying `re:<text>`; the
//! caller's outcome of every reply is recorded. At the end, the [`Report`] compares:
//! - the emulator's inbound messages with what the handler saw (lost, handled twice);
//! - every reply the handler attempted with what the emulator delivered to the user
//!   (delivered exactly once, or a typed error returned to the caller; never an `Ok` that was
//!   not delivered, never two deliveries).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ilink_client::{
    Account, Client, ClientConfig, Credentials, Delays, MemoryStore, MessageContext, Secret,
    SendErrorKind, StateStore,
};
use ilink_sim::{Endpoint, Fault, Sim, SimConfig};

/// The emulator's configuration for conversations: short long-polls (300 ms), a fixed seed,
/// and the per-conversation policies (reply limit, burst) off, since the bot answers every
/// message once and the suite injects throttles itself.
pub fn sim_config() -> SimConfig {
    let mut c = SimConfig::for_tests(Duration::from_millis(300));
    c.reply_limit = None;
    c.burst = None;
    c
}

/// A client configuration for the emulator with fast delays and short timeouts: the first
/// long-poll 300 ms, a margin of 200 ms (so a poll is cut after 500 ms), every other call
/// after 2 s (generous enough that a loaded CI machine does not time calls out by itself).
pub fn fast_config(sim: &Sim) -> ClientConfig {
    fast_config_for(&sim.base_url(), &sim.cdn_base_url())
}

/// [`fast_config`] for a server known by its URLs (for a bot in a child process).
pub fn fast_config_for(base_url: &str, cdn_base_url: &str) -> ClientConfig {
    let mut c = ClientConfig::for_server(base_url)
        .with_delays(Delays::fast())
        .with_cdn_base_url(cdn_base_url);
    c.timeouts.long_poll = Duration::from_millis(300);
    c.timeouts.long_poll_margin = Duration::from_millis(200);
    c.timeouts.send = Duration::from_secs(2);
    c.timeouts.config = Duration::from_secs(2);
    c.timeouts.typing = Duration::from_secs(2);
    c.timeouts.notify = Duration::from_secs(2);
    // Retries of a queued message (after -2 or a transient failure) come fast.
    c.replies.throttle_backoff = Duration::from_millis(50);
    c
}

/// A scripted conversation with faults.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// A name for the report.
    pub name: String,
    /// Inbound messages in the main part of the conversation.
    pub messages: usize,
    /// Distinct WeChat users writing to the bot.
    pub users: usize,
    /// The messages are sent in this many rounds; faults are injected at the start of the
    /// first two thirds of the rounds.
    pub rounds: usize,
    /// Faults to inject, spread over the rounds: `(endpoint, fault, times)`.
    pub faults: Vec<(Endpoint, Fault, u32)>,
    /// Show typing indicators while handling (more endpoints in play).
    pub typing: bool,
    /// The client's dedupe capacity (`None`: the default).
    pub dedupe_capacity: Option<usize>,
    /// How long to wait for the conversation to settle before giving up (a deadline against
    /// hangs, not a timing assertion).
    pub deadline: Duration,
    /// Wait until each round is handled before sending the next (small batches); otherwise
    /// the users write while the bot works and batches grow with its backlog.
    pub sequential: bool,
}

impl Scenario {
    /// A conversation of `messages` messages from 3 users in 30 rounds with `faults`.
    pub fn new(name: &str, messages: usize, faults: Vec<(Endpoint, Fault, u32)>) -> Self {
        Self {
            name: name.to_owned(),
            messages,
            users: 3,
            rounds: 30,
            faults,
            typing: true,
            dedupe_capacity: None,
            deadline: Duration::from_secs(60),
            sequential: false,
        }
    }

    /// How many fault occurrences the scenario injects.
    pub fn fault_count(&self) -> u32 {
        self.faults.iter().map(|(_, _, n)| n).sum()
    }

    /// Runs the conversation against a fresh emulator and returns the reconciliation.
    pub async fn run(&self) -> Report {
        let sim = match Sim::start(sim_config()).await {
            Ok(s) => s,
            Err(e) => return Report::failed(&self.name, format!("sim did not start: {e}")),
        };
        let report = self.run_on(&sim).await;
        sim.shutdown().await;
        report
    }

    /// Runs the conversation against `sim` (whose policies the caller chose).
    pub async fn run_on(&self, sim: &Sim) -> Report {
        let rss_before = crate::rss_kib();
        let started = std::time::Instant::now();
        let bot = sim.create_bot();
        let mut config = fast_config(sim);
        config.typing = self.typing;
        if let Some(cap) = self.dedupe_capacity {
            config.dedupe_capacity = cap;
        }
        let store = Arc::new(MemoryStore::new());
        let client = match Client::builder()
            .config(config.clone())
            .shared_store(store.clone())
            .build()
        {
            Ok(c) => c,
            Err(e) => return Report::failed(&self.name, format!("client: {e}")),
        };
        let creds = Credentials {
            account_id: bot.bot_id.clone(),
            token: Secret::new(bot.token.clone()),
            base_url: Some(sim.base_url()),
            user_id: None,
            saved_at_ms: 1,
        };
        let account = match client.add_account(creds).await {
            Ok(a) => a,
            Err(e) => return Report::failed(&self.name, format!("account: {e}")),
        };
        let bot_run = EchoBot::start(&account);

        let users: Vec<String> = (0..self.users.max(1))
            .map(|u| format!("rel-user{u}@im.wechat"))
            .collect();
        let rounds = self.rounds.max(1);
        let fault_rounds = (rounds * 2 / 3).max(1);
        let mut injected = 0u32;
        let mut next_fault = 0usize;
        let mut sent = 0usize;
        for round in 0..rounds {
            // Spread the faults evenly over the first two thirds of the rounds.
            let due = if round + 1 >= fault_rounds {
                self.faults.len()
            } else {
                self.faults.len() * (round + 1) / fault_rounds
            };
            while next_fault < due {
                if let Some((ep, f, n)) = self.faults.get(next_fault) {
                    sim.inject_fault(*ep, f.clone(), *n);
                    injected += n;
                }
                next_fault += 1;
            }
            let upto = self.messages * (round + 1) / rounds;
            while sent < upto {
                let user = users.get(sent % users.len()).cloned().unwrap_or_default();
                if let Err(e) = sim.user(&user).send_text(&bot, &format!("m{sent}")) {
                    return Report::failed(&self.name, format!("sending m{sent}: {e}"));
                }
                sent += 1;
            }
            // Let the bot work between rounds so batches vary in size.
            tokio::time::sleep(Duration::from_millis(10)).await;
            if self.sequential {
                let until = tokio::time::Instant::now() + self.deadline;
                while !bot_run.handled_all(sim) && tokio::time::Instant::now() < until {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }

        let deadline = tokio::time::Instant::now() + self.deadline;
        // Wait for everything to be handled; while injected faults are still queued (they
        // need traffic to fire), keep the conversation going with extra messages.
        let mut extra = 0usize;
        loop {
            let all_handled = bot_run.handled_all(sim);
            let pending = sim.pending_faults();
            if all_handled && pending.is_empty() {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            if all_handled && !pending.is_empty() {
                if extra >= 100 {
                    break;
                }
                // A new user each time, so that per-user calls (getconfig) happen too.
                let user = format!("rel-extra{extra}@im.wechat");
                let _ = sim.user(&user).send_text(&bot, &format!("x{extra}"));
                extra += 1;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The fault has ended: the bot must recover by itself. A last round after the faults
        // proves it still receives and replies.
        let tail_start = sim.inbound().len();
        for i in 0..10 {
            let user = users.get(i % users.len()).cloned().unwrap_or_default();
            let _ = sim.user(&user).send_text(&bot, &format!("tail{i}"));
        }
        while !bot_run.handled_all(sim) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let timed_out = tokio::time::Instant::now() >= deadline;
        let recovered = sim.inbound().get(tail_start..).is_some_and(|tail| {
            let h = bot_run
                .handled
                .lock()
                .map(|h| h.clone())
                .unwrap_or_default();
            tail.iter()
                .all(|m| h.contains_key(&m.message_id.to_string()))
        });

        account.shutdown();
        let stopped = tokio::time::timeout(Duration::from_secs(10), bot_run.task)
            .await
            .is_ok();
        let tombstones = store
            .load_tombstones(account.id())
            .await
            .map_or(0, |t| t.len());
        let mut report = Report::reconcile(
            &self.name,
            sim,
            &bot.bot_id,
            &bot_run.handled,
            &bot_run.replies,
        );
        report.faults_injected = injected;
        report.faults_left = sim.pending_faults().len();
        report.recovered = recovered;
        report.timed_out = timed_out;
        report.elapsed = started.elapsed();
        report.stopped = stopped;
        report.tombstones = tombstones;
        report.dedupe_capacity = config.dedupe_capacity;
        report.rss_growth_kib = match (rss_before, crate::rss_kib()) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
        report
    }
}

/// What the caller of one reply got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `Ok`, with the `client_id`s of the messages sent.
    Sent(Vec<String>),
    /// A typed error.
    Failed(SendErrorKind),
}

/// One reply the handler attempted.
#[derive(Debug, Clone)]
pub struct ReplyRecord {
    /// The reply text (unique per inbound message).
    pub text: String,
    /// What the caller got.
    pub outcome: Outcome,
}

type Handled = Arc<Mutex<HashMap<String, u32>>>;
type Replies = Arc<Mutex<Vec<ReplyRecord>>>;

/// The echo bot of a conversation, running `account.run` in a task.
struct EchoBot {
    handled: Handled,
    replies: Replies,
    task: tokio::task::JoinHandle<()>,
}

impl EchoBot {
    fn start(account: &Account) -> Self {
        let handled: Handled = Arc::default();
        let replies: Replies = Arc::default();
        let (h, r) = (handled.clone(), replies.clone());
        let acct = account.clone();
        let task = tokio::spawn(async move {
            let _ = acct
                .run(move |ctx: MessageContext| {
                    let (h, r) = (h.clone(), r.clone());
                    async move { handle(ctx, &h, &r).await }
                })
                .await;
        });
        Self {
            handled,
            replies,
            task,
        }
    }

    fn handled_all(&self, sim: &Sim) -> bool {
        let h = self.handled.lock().map(|h| h.clone()).unwrap_or_default();
        sim.inbound()
            .iter()
            .all(|m| h.contains_key(&m.message_id.to_string()))
    }
}

async fn handle(ctx: MessageContext, handled: &Handled, replies: &Replies) {
    let id = ctx
        .message()
        .message_id()
        .map(|i| i.as_str().to_owned())
        .unwrap_or_default();
    if let Ok(mut h) = handled.lock() {
        *h.entry(id).or_default() += 1;
    }
    let text = format!("re:{}", ctx.text().unwrap_or(""));
    let outcome = match ctx.reply(&text).await {
        Ok(sent) => Outcome::Sent(sent.iter().map(|o| o.client_id().to_owned()).collect()),
        Err(e) => Outcome::Failed(e.kind()),
    };
    if let Ok(mut r) = replies.lock() {
        r.push(ReplyRecord { text, outcome });
    }
}

/// The reconciliation of one conversation.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The scenario.
    pub name: String,
    /// Why the run itself failed (setup), if it did.
    pub setup_error: Option<String>,
    /// Inbound messages the users sent.
    pub inbound: usize,
    /// Inbound messages the handler never saw (`message_id`s).
    pub lost: Vec<String>,
    /// Inbound messages the handler saw more than once, with the count.
    pub duplicates: Vec<(String, u32)>,
    /// Messages the handler saw that no user sent.
    pub phantom: Vec<String>,
    /// Replies attempted.
    pub replies: usize,
    /// Replies whose caller got `Ok` and that were delivered exactly once.
    pub replies_delivered: usize,
    /// Replies whose caller got a typed error, by kind.
    pub reply_errors: BTreeMap<String, usize>,
    /// Replies with a transport error that the server had delivered all the same (the
    /// answer was lost on the way: ambiguous by nature, and reported as such).
    pub ambiguous_delivered: usize,
    /// Replies whose caller got `Ok` but that the user never received: silent losses.
    pub silently_lost: Vec<String>,
    /// Replies the user received more than once.
    pub delivered_twice: Vec<String>,
    /// Replies delivered with an error other than `Transport` returned (the caller was told
    /// it failed, but it went out).
    pub delivered_despite_error: Vec<(String, String)>,
    /// Messages the user received that the bot never attempted.
    pub unexplained_deliveries: Vec<String>,
    /// Replies with `Ok` whose `client_id` does not match the delivered one.
    pub client_id_mismatch: Vec<String>,
    /// sendmessage requests the emulator refused for a reason other than an injected fault
    /// (a malformed or unauthorised send from the client).
    pub unexpected_drops: Vec<String>,
    /// Fault occurrences injected.
    pub faults_injected: u32,
    /// Faults still queued at the end (each should have fired).
    pub faults_left: usize,
    /// The bot handled the messages sent after the faults ended.
    pub recovered: bool,
    /// The bot stopped on shutdown.
    pub stopped: bool,
    /// The deadline passed before the conversation settled.
    pub timed_out: bool,
    /// How long the run took (reported, never asserted).
    pub elapsed: Duration,
    /// Dedupe tombstones stored at the end.
    pub tombstones: usize,
    /// The configured dedupe capacity.
    pub dedupe_capacity: usize,
    /// Growth of this process's RSS during the run, in KiB (the whole test process).
    pub rss_growth_kib: Option<u64>,
}

impl Report {
    fn failed(name: &str, why: String) -> Self {
        Self {
            name: name.to_owned(),
            setup_error: Some(why),
            ..Self::default()
        }
    }

    /// Compares what the emulator saw with what the handler and the callers saw.
    pub fn reconcile(
        name: &str,
        sim: &Sim,
        bot_id: &str,
        handled: &Arc<Mutex<HashMap<String, u32>>>,
        replies: &Arc<Mutex<Vec<ReplyRecord>>>,
    ) -> Self {
        let mut r = Self {
            name: name.to_owned(),
            ..Self::default()
        };
        let handled = handled.lock().map(|h| h.clone()).unwrap_or_default();
        let inbound: Vec<String> = sim
            .inbound()
            .iter()
            .filter(|m| m.bot_id == bot_id)
            .map(|m| m.message_id.to_string())
            .collect();
        r.inbound = inbound.len();
        for id in &inbound {
            match handled.get(id).copied().unwrap_or(0) {
                0 => r.lost.push(id.clone()),
                1 => {}
                n => r.duplicates.push((id.clone(), n)),
            }
        }
        for id in handled.keys() {
            if !inbound.contains(id) {
                r.phantom.push(id.clone());
            }
        }

        let mut delivered: HashMap<String, Vec<String>> = HashMap::new();
        for d in sim.delivered().iter().filter(|d| d.bot_id == bot_id) {
            let text = d.text().unwrap_or("<non-text>").to_owned();
            delivered.entry(text).or_default().push(d.client_id.clone());
        }
        let replies = replies.lock().map(|r| r.clone()).unwrap_or_default();
        r.replies = replies.len();
        let mut attempted = std::collections::HashSet::new();
        for rec in &replies {
            attempted.insert(rec.text.clone());
            let got = delivered.get(&rec.text).cloned().unwrap_or_default();
            if got.len() > 1 {
                r.delivered_twice.push(rec.text.clone());
            }
            match &rec.outcome {
                Outcome::Sent(ids) => {
                    if got.is_empty() {
                        r.silently_lost.push(rec.text.clone());
                    } else if got.len() == 1 {
                        r.replies_delivered += 1;
                        if ids.first() != got.first() {
                            r.client_id_mismatch.push(rec.text.clone());
                        }
                    }
                }
                Outcome::Failed(kind) => {
                    *r.reply_errors.entry(format!("{kind:?}")).or_default() += 1;
                    if !got.is_empty() {
                        if *kind == SendErrorKind::Transport {
                            r.ambiguous_delivered += 1;
                        } else {
                            r.delivered_despite_error
                                .push((rec.text.clone(), format!("{kind:?}")));
                        }
                    }
                }
            }
        }
        for text in delivered.keys() {
            if !attempted.contains(text) {
                r.unexplained_deliveries.push(text.clone());
            }
        }
        for d in sim.dropped() {
            // A queued message retried after an answer was lost reuses its client_id; the
            // server keeps the first copy and drops the retry: expected, not a refusal.
            if d.reason != ilink_sim::DropReason::InjectedFault
                && d.reason != ilink_sim::DropReason::DuplicateClientId
            {
                r.unexpected_drops.push(format!("{:?}", d.reason));
            }
        }
        r
    }

    /// Every property the suite promises, as a list of violations (empty: all kept).
    pub fn violations(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(e) = &self.setup_error {
            v.push(format!("setup failed: {e}"));
            return v;
        }
        let mut check = |bad: bool, what: String| {
            if bad {
                v.push(what);
            }
        };
        check(self.inbound == 0, "no inbound messages".to_owned());
        check(
            !self.lost.is_empty(),
            format!("{} inbound lost: {:?}", self.lost.len(), self.lost),
        );
        check(
            !self.duplicates.is_empty(),
            format!("handled twice: {:?}", self.duplicates),
        );
        check(
            !self.phantom.is_empty(),
            format!("phantom: {:?}", self.phantom),
        );
        check(
            self.replies != self.inbound - self.lost.len() + dup_extra(&self.duplicates),
            format!(
                "{} replies for {} handled messages",
                self.replies,
                self.inbound - self.lost.len()
            ),
        );
        check(
            !self.silently_lost.is_empty(),
            format!("Ok but never delivered: {:?}", self.silently_lost),
        );
        check(
            !self.delivered_twice.is_empty(),
            format!("delivered twice: {:?}", self.delivered_twice),
        );
        check(
            !self.delivered_despite_error.is_empty(),
            format!(
                "delivered although a definite error was returned: {:?}",
                self.delivered_despite_error
            ),
        );
        check(
            !self.unexplained_deliveries.is_empty(),
            format!("unexplained: {:?}", self.unexplained_deliveries),
        );
        check(
            !self.client_id_mismatch.is_empty(),
            format!("client_id mismatch: {:?}", self.client_id_mismatch),
        );
        check(
            !self.unexpected_drops.is_empty(),
            format!("emulator refused sends: {:?}", self.unexpected_drops),
        );
        check(
            self.faults_left != 0,
            format!("{} injected faults never fired", self.faults_left),
        );
        check(
            !self.recovered,
            "did not recover after the faults".to_owned(),
        );
        check(
            self.timed_out,
            "the conversation did not settle in time".to_owned(),
        );
        check(!self.stopped, "did not stop on shutdown".to_owned());
        // Each message is stored under up to 3 keys (message_id, client_id, seq); a clean stop
        // compacts the journal to what is held.
        check(
            self.tombstones > 3 * self.dedupe_capacity,
            format!(
                "{} tombstones over the cap {}",
                self.tombstones, self.dedupe_capacity
            ),
        );
        v
    }

    /// Panics with every violation (for tests).
    #[allow(clippy::panic)]
    pub fn assert_kept(&self) {
        let v = self.violations();
        assert!(
            v.is_empty(),
            "scenario {}: promise broken:\n  {}\n{self:#?}",
            self.name,
            v.join("\n  ")
        );
    }

    /// One line of figures for the test output.
    pub fn summary(&self) -> String {
        format!(
            "[{}] inbound={} lost={} duplicates={} replies={} delivered={} errors={:?} \
             ambiguous_delivered={} faults={} tombstones={}/{} rss_growth_kib={:?} elapsed={:?}",
            self.name,
            self.inbound,
            self.lost.len(),
            self.duplicates.len(),
            self.replies,
            self.replies_delivered,
            self.reply_errors,
            self.ambiguous_delivered,
            self.faults_injected,
            self.tombstones,
            self.dedupe_capacity,
            self.rss_growth_kib,
            self.elapsed
        )
    }
}

fn dup_extra(d: &[(String, u32)]) -> usize {
    d.iter().map(|(_, n)| (*n as usize).saturating_sub(1)).sum()
}
