//! The reply budget, the durable outbound queue and the turn journal.
//!
//! The live server delivers a bot's messages to a user only inside a **window**: about 10
//! messages per message the user sends, until 24 h after the user's last message; beyond that
//! `sendmessage` answers `ret:-2` or the message is never shown (docs/protocol.md §14.4, §16,
//! \[obs\]). ilink-client keeps, per (account, user), a **budget**: the messages left in the
//! current window and when the window closes ([`Account::budget`](crate::Account::budget)).
//!
//! A text that needs more messages than the budget allows is handled by the
//! [`ReplyPolicy::overflow`] policy:
//! - [`Overflow::Queue`] (the default): send what fits, end the last allowed message with the
//!   [`ReplyPolicy::continuation_notice`] (more follows; any reply continues), and put the rest
//!   in a durable **outbound queue**. The user's next message flushes that queue first, in
//!   order, within the new budget, before the handler sees the message. A send outside the
//!   window is queued (for at most [`ReplyPolicy::queue_ttl`]) instead of failing. A `ret:-2`
//!   while the budget says messages are left is taken as a burst throttle first: the message
//!   stays queued and is retried with backoff; if that keeps failing the budget is corrected
//!   to 0 until the user writes.
//! - [`Overflow::AllOrNothing`]: fail with
//!   [`SendErrorKind::BudgetExceeded`] before sending
//!   anything.
//!
//! Every message goes through the queue's journal (in the [`StateStore`](crate::StateStore):
//! append-only with fsync in [`FileStore`](crate::FileStore)) with a stable `client_id` that a
//! retry reuses, so a crash while queueing or flushing loses nothing and, as the server keeps
//! only the first message of a `client_id`, shows the user no duplicate. Replies made while
//! handling a message are journaled by (message, reply number): when the same message is
//! delivered again after a crash, reply k of it is not sent again.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ilink_proto::{MessageItem, Secret};
use serde::{Deserialize, Serialize};

use crate::account::Account;
use crate::error::{Error, ErrorKind, Result};
use crate::handler::MessageContext;
use crate::send::{QueueReason, SendError, SendErrorKind, SendOutcome};

/// What to do with a text that needs more messages than the reply budget allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Overflow {
    /// Send what fits, queue the rest durably; the user's next message flushes it.
    Queue,
    /// Fail with `BudgetExceeded` before sending anything.
    AllOrNothing,
}

/// Where the budget reads the time (epoch milliseconds). The default is the system clock;
/// tests against ilink-sim pass the emulator's clock.
#[derive(Clone)]
pub struct ReplyClock(Arc<dyn Fn() -> u64 + Send + Sync>);

impl ReplyClock {
    /// A clock reading `f`.
    pub fn new(f: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// The system clock.
    pub fn system() -> Self {
        Self::new(crate::util::now_ms)
    }

    /// Now, in epoch milliseconds.
    pub fn now_ms(&self) -> u64 {
        (self.0)()
    }
}

impl fmt::Debug for ReplyClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReplyClock")
    }
}

impl Default for ReplyClock {
    fn default() -> Self {
        Self::system()
    }
}

/// The default [`ReplyPolicy::continuation_notice`], in Chinese and English.
pub const DEFAULT_CONTINUATION_NOTICE: &str =
    "（未完待续，回复任意内容继续）\n(More follows: reply anything to continue.)";

/// The reply window, the budget and the overflow policy. See the [module docs](self).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReplyPolicy {
    /// Messages a bot may send per message the user sends. Default 10 (\[obs\] §14.4, §16).
    pub per_inbound: u32,
    /// How long after the user's last message the bot may send. Default 24 h (\[obs\] §14.4).
    pub window: Duration,
    /// How long before a user's window closes [`Account::next_window_warning`](crate::Account::next_window_warning)
    /// reports it. Default 30 min.
    pub warn_before: Duration,
    /// What to do when a text needs more messages than are left. Default [`Overflow::Queue`].
    pub overflow: Overflow,
    /// Appended (after a blank line) to the last message a window allows when more is queued.
    /// Default [`DEFAULT_CONTINUATION_NOTICE`]; empty: no notice.
    pub continuation_notice: String,
    /// Flush a user's queue when their next message arrives, before the handler sees it
    /// ([`Account::begin_turn`](crate::Account::begin_turn)). Default true.
    pub flush_on_inbound: bool,
    /// How long a message queued because the window was closed (a proactive send) waits for
    /// the user to write before it is dropped (reported in the flush report and the log).
    /// `None`: forever. Default 72 h.
    pub queue_ttl: Option<Duration>,
    /// Most messages queued per user; a text that would go beyond is refused whole with
    /// [`SendErrorKind::QueueFull`]. Default 500.
    pub max_queued: usize,
    /// Retries of a message refused with `ret:-2` while the budget says messages are left
    /// (a burst throttle). Default 3.
    pub throttle_retries: u32,
    /// The first delay of those retries; it doubles each time, with ±25 % jitter. Default 2 s.
    pub throttle_backoff: Duration,
    /// Where the budget reads the time. Default the system clock.
    pub clock: ReplyClock,
}

impl Default for ReplyPolicy {
    fn default() -> Self {
        Self {
            per_inbound: 10,
            window: Duration::from_secs(24 * 3600),
            warn_before: Duration::from_secs(30 * 60),
            overflow: Overflow::Queue,
            continuation_notice: DEFAULT_CONTINUATION_NOTICE.to_owned(),
            flush_on_inbound: true,
            queue_ttl: Some(Duration::from_secs(72 * 3600)),
            max_queued: 500,
            throttle_retries: 3,
            throttle_backoff: Duration::from_secs(2),
            clock: ReplyClock::system(),
        }
    }
}

impl ReplyPolicy {
    /// The notice as appended to a message: a blank line, then the notice ("" when none).
    pub(crate) fn notice_suffix(&self) -> String {
        if self.continuation_notice.is_empty() {
            String::new()
        } else {
            format!("\n\n{}", self.continuation_notice)
        }
    }
}

/// The reply budget of one user, from [`Account::budget`](crate::Account::budget).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Budget {
    /// Messages that may still be sent in the current window (0 when it is closed).
    pub left: u32,
    /// When the window closes, in epoch milliseconds; `None` when no message from the user
    /// was seen by this bot (the window is then unknown and taken as open).
    pub window_closes_at_ms: Option<u64>,
    /// True when the server refused a send with `ret:-2` that the budget allowed and retries
    /// did not help: the budget is then 0 until the user writes.
    pub exhausted: bool,
    /// Messages waiting in the user's queue.
    pub queued: usize,
}

/// One message waiting in a user's queue, from [`Account::queued`](crate::Account::queued).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueuedMessage {
    /// Messages ahead of this one (0: the next to go).
    pub position: usize,
    /// The `client_id` it will be sent with (the same on every attempt).
    pub client_id: String,
    /// The text.
    pub text: String,
    /// When it was queued, epoch ms.
    pub queued_at_ms: u64,
    /// When it is dropped unsent, epoch ms (`None`: never).
    pub expires_at_ms: Option<u64>,
}

/// What a flush did, from [`Account::flush_queue`](crate::Account::flush_queue) and
/// [`Account::begin_turn`](crate::Account::begin_turn).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlushReport {
    /// Outcomes of the messages sent, in order.
    pub sent: Vec<crate::SendOutcome>,
    /// Messages still queued afterwards.
    pub still_queued: usize,
    /// `client_id`s of messages dropped because their time to live passed.
    pub expired: Vec<String>,
    /// `client_id`s of messages the server refused for good (not `-2`, not a transport error);
    /// they were removed from the queue.
    pub refused: Vec<String>,
}

/// A user's window closes soon, from
/// [`Account::next_window_warning`](crate::Account::next_window_warning).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WindowWarning {
    /// The user.
    pub user: String,
    /// When the window closes, epoch ms.
    pub closes_at_ms: u64,
    /// Messages waiting in the user's queue.
    pub queued: usize,
}

// ---------------------------------------------------------------------- journal records

/// One record of the journal. Stored as one line of JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub(crate) enum Record {
    /// A message from `user` arrived (opens a new window, resets the count).
    Inbound {
        user: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        at_ms: u64,
    },
    /// Messages queued for `user`, in order; `turn`/`reply` when made as reply `reply` to the
    /// inbound message whose dedupe key is `turn`.
    Queued {
        user: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        turn: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply: Option<u32>,
        parts: Vec<Part>,
        at_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at_ms: Option<u64>,
    },
    /// A queued message was accepted by the server.
    Sent {
        user: String,
        client_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message_id: Option<String>,
        at_ms: u64,
    },
    /// A queued message was removed unsent.
    Removed { client_id: String, reason: String },
    /// The server refused a send the budget allowed: no more until the user writes.
    Exhausted { user: String, at_ms: u64 },
    /// Compaction: the budget of `user` as it stood.
    Window {
        user: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_inbound_ms: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_key: Option<String>,
        used: u32,
        exhausted: bool,
    },
    /// Compaction: reply `reply` of turn `turn` was made of these messages.
    Turn {
        turn: String,
        reply: u32,
        client_ids: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Part {
    pub(crate) client_id: String,
    pub(crate) text: String,
}

/// Largest journal record accepted when loading, in bytes (a text part is at most a few KiB).
pub(crate) const MAX_RECORD_BYTES: usize = 4 * 1024 * 1024;
/// Largest journal loaded, in bytes.
pub(crate) const MAX_JOURNAL_BYTES: u64 = 256 * 1024 * 1024;
/// Turns whose replies are remembered (a redelivered message older than this is handled anew).
const TURNS_KEPT: usize = 1024;

// ---------------------------------------------------------------------- state

#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub(crate) client_id: String,
    pub(crate) text: String,
    pub(crate) queued_at_ms: u64,
    pub(crate) expires_at_ms: Option<u64>,
}

#[derive(Debug, Default)]
struct UserState {
    last_inbound_ms: Option<u64>,
    last_key: Option<String>,
    used: u32,
    exhausted: bool,
    queue: VecDeque<Pending>,
    warned_for: Option<u64>,
}

/// The outcome journaled for one `client_id`.
#[derive(Debug, Clone)]
pub(crate) enum PartState {
    Sent(Option<String>),
    Removed,
}

/// The state rebuilt from the journal.
#[derive(Debug, Default)]
pub(crate) struct OutboxState {
    users: HashMap<String, UserState>,
    turns: HashMap<(String, u32), Vec<String>>,
    turn_order: VecDeque<(String, u32)>,
    /// Outcomes of the parts of remembered turns.
    parts: HashMap<String, PartState>,
    records: usize,
    /// False when the store keeps no journal (memory only).
    pub(crate) durable: bool,
}

impl OutboxState {
    /// Rebuild from journal lines; undecodable lines are skipped with a warning.
    pub(crate) fn from_lines(lines: &[String]) -> Self {
        let mut s = Self {
            durable: true,
            ..Self::default()
        };
        for line in lines {
            if line.len() > MAX_RECORD_BYTES {
                tracing::warn!(bytes = line.len(), "skipping an oversized outbox record");
                continue;
            }
            match serde_json::from_str::<Record>(line) {
                Ok(r) => s.apply(&r),
                Err(e) => tracing::warn!(error = %e, "skipping an undecodable outbox record"),
            }
        }
        s
    }

    pub(crate) fn apply(&mut self, r: &Record) {
        self.records += 1;
        match r {
            Record::Inbound { user, key, at_ms } => {
                let u = self.users.entry(user.clone()).or_default();
                if key.is_some() && *key == u.last_key {
                    return;
                }
                u.last_inbound_ms = Some(*at_ms);
                u.last_key.clone_from(key);
                u.used = 0;
                u.exhausted = false;
            }
            Record::Queued {
                user,
                turn,
                reply,
                parts,
                at_ms,
                expires_at_ms,
            } => {
                let u = self.users.entry(user.clone()).or_default();
                for p in parts {
                    u.queue.push_back(Pending {
                        client_id: p.client_id.clone(),
                        text: p.text.clone(),
                        queued_at_ms: *at_ms,
                        expires_at_ms: *expires_at_ms,
                    });
                }
                if let (Some(t), Some(k)) = (turn, reply) {
                    let ids = parts.iter().map(|p| p.client_id.clone()).collect();
                    self.remember_turn(t.clone(), *k, ids);
                }
            }
            Record::Sent {
                user,
                client_id,
                message_id,
                ..
            } => {
                // Compacted history carries no user: it counts for the turn journal only.
                if !user.is_empty() {
                    let u = self.users.entry(user.clone()).or_default();
                    u.queue.retain(|p| &p.client_id != client_id);
                    u.used = u.used.saturating_add(1);
                }
                self.parts
                    .insert(client_id.clone(), PartState::Sent(message_id.clone()));
            }
            Record::Removed { client_id, .. } => {
                for u in self.users.values_mut() {
                    u.queue.retain(|p| &p.client_id != client_id);
                }
                self.parts.insert(client_id.clone(), PartState::Removed);
            }
            Record::Exhausted { user, .. } => {
                self.users.entry(user.clone()).or_default().exhausted = true;
            }
            Record::Window {
                user,
                last_inbound_ms,
                last_key,
                used,
                exhausted,
            } => {
                let u = self.users.entry(user.clone()).or_default();
                u.last_inbound_ms = *last_inbound_ms;
                u.last_key.clone_from(last_key);
                u.used = *used;
                u.exhausted = *exhausted;
            }
            Record::Turn {
                turn,
                reply,
                client_ids,
            } => self.remember_turn(turn.clone(), *reply, client_ids.clone()),
        }
    }

    fn remember_turn(&mut self, turn: String, reply: u32, ids: Vec<String>) {
        let key = (turn, reply);
        if self.turns.insert(key.clone(), ids).is_none() {
            self.turn_order.push_back(key);
        }
        while self.turn_order.len() > TURNS_KEPT {
            if let Some(old) = self.turn_order.pop_front()
                && let Some(ids) = self.turns.remove(&old)
            {
                for id in ids {
                    self.parts.remove(&id);
                }
            }
        }
    }

    /// The `client_id`s of reply `reply` of `turn`, if journaled.
    pub(crate) fn turn(&self, turn: &str, reply: u32) -> Option<Vec<String>> {
        self.turns.get(&(turn.to_owned(), reply)).cloned()
    }

    pub(crate) fn part_state(&self, client_id: &str) -> Option<PartState> {
        self.parts.get(client_id).cloned()
    }

    pub(crate) fn position(&self, user: &str, client_id: &str) -> Option<usize> {
        self.users
            .get(user)?
            .queue
            .iter()
            .position(|p| p.client_id == client_id)
    }

    pub(crate) fn budget(&self, user: &str, policy: &ReplyPolicy, now: u64) -> Budget {
        let window_ms = u64::try_from(policy.window.as_millis()).unwrap_or(u64::MAX);
        let Some(u) = self.users.get(user) else {
            return Budget {
                left: policy.per_inbound,
                window_closes_at_ms: None,
                exhausted: false,
                queued: 0,
            };
        };
        let closes = u.last_inbound_ms.map(|t| t.saturating_add(window_ms));
        let open = closes.is_none_or(|c| now < c);
        let left = if open && !u.exhausted {
            policy.per_inbound.saturating_sub(u.used)
        } else {
            0
        };
        Budget {
            left,
            window_closes_at_ms: closes,
            exhausted: u.exhausted,
            queued: u.queue.len(),
        }
    }

    pub(crate) fn queue(&self, user: &str) -> Vec<Pending> {
        self.users
            .get(user)
            .map(|u| u.queue.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn front(&self, user: &str) -> Option<Pending> {
        self.users.get(user)?.queue.front().cloned()
    }

    pub(crate) fn queued_users(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .users
            .iter()
            .filter(|(_, u)| !u.queue.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        v.sort();
        v
    }

    /// Whether the journal is worth compacting: many records, few of them live.
    pub(crate) fn wants_compaction(&self) -> bool {
        let live: usize = self
            .users
            .values()
            .map(|u| u.queue.len() + 1)
            .sum::<usize>()
            + self.turns.len() * 2;
        self.records > 4096 && self.records > live * 4
    }

    /// The records that rebuild this state (for compaction). History first, so the
    /// `Window` records at the end set each budget as it stands.
    pub(crate) fn snapshot(&self) -> Vec<Record> {
        let mut out = Vec::new();
        let users: HashMap<&String, &UserState> = self.users.iter().collect();
        for key in &self.turn_order {
            if let Some(ids) = self.turns.get(key) {
                for id in ids {
                    match self.parts.get(id) {
                        Some(PartState::Sent(mid)) => out.push(Record::Sent {
                            user: String::new(),
                            client_id: id.clone(),
                            message_id: mid.clone(),
                            at_ms: 0,
                        }),
                        Some(PartState::Removed) => out.push(Record::Removed {
                            client_id: id.clone(),
                            reason: "compacted".to_owned(),
                        }),
                        None => {}
                    }
                }
                out.push(Record::Turn {
                    turn: key.0.clone(),
                    reply: key.1,
                    client_ids: ids.clone(),
                });
            }
        }
        let mut names: Vec<&&String> = users.keys().collect();
        names.sort();
        for name in names {
            let Some(u) = users.get(*name) else { continue };
            for p in &u.queue {
                out.push(Record::Queued {
                    user: (*name).clone(),
                    turn: None,
                    reply: None,
                    parts: vec![Part {
                        client_id: p.client_id.clone(),
                        text: p.text.clone(),
                    }],
                    at_ms: p.queued_at_ms,
                    expires_at_ms: p.expires_at_ms,
                });
            }
            out.push(Record::Window {
                user: (*name).clone(),
                last_inbound_ms: u.last_inbound_ms,
                last_key: u.last_key.clone(),
                used: u.used,
                exhausted: u.exhausted,
            });
        }
        out
    }

    pub(crate) fn reset_records(&mut self, n: usize) {
        self.records = n;
    }

    /// The next user whose window closes within `warn_before` and who was not warned for
    /// this window yet: marks them warned.
    pub(crate) fn take_warning(&mut self, policy: &ReplyPolicy, now: u64) -> Option<WindowWarning> {
        let window_ms = u64::try_from(policy.window.as_millis()).unwrap_or(u64::MAX);
        let warn_ms = u64::try_from(policy.warn_before.as_millis()).unwrap_or(u64::MAX);
        let mut best: Option<(&String, u64)> = None;
        for (name, u) in &self.users {
            let Some(last) = u.last_inbound_ms else {
                continue;
            };
            if u.warned_for == Some(last) {
                continue;
            }
            let closes = last.saturating_add(window_ms);
            if now < closes
                && now >= closes.saturating_sub(warn_ms)
                && best.is_none_or(|(_, c)| closes < c)
            {
                best = Some((name, closes));
            }
        }
        let (name, closes) = best?;
        let name = name.clone();
        let u = self.users.get_mut(&name)?;
        u.warned_for = u.last_inbound_ms;
        Some(WindowWarning {
            user: name,
            closes_at_ms: closes,
            queued: u.queue.len(),
        })
    }

    /// When the next warning is due (epoch ms), if any window is still open.
    pub(crate) fn next_warning_at(&self, policy: &ReplyPolicy) -> Option<u64> {
        let window_ms = u64::try_from(policy.window.as_millis()).unwrap_or(u64::MAX);
        let warn_ms = u64::try_from(policy.warn_before.as_millis()).unwrap_or(u64::MAX);
        self.users
            .values()
            .filter_map(|u| {
                let last = u.last_inbound_ms?;
                (u.warned_for != Some(last))
                    .then(|| last.saturating_add(window_ms).saturating_sub(warn_ms))
            })
            .min()
    }
}

// ---------------------------------------------------------------------- storage

/// The journal's file name in an account directory of [`FileStore`](crate::FileStore).
pub(crate) const JOURNAL_FILE: &str = "outbox.jsonl";

/// Read the journal file in `dir`: complete lines only. A torn last line (a crash during an
/// append) is cut off the file, so the next append starts on a fresh line.
pub(crate) fn file_load(dir: &std::path::Path) -> Result<Vec<String>> {
    use std::io::Read as _;
    let path = dir.join(JOURNAL_FILE);
    let f = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::store(format!("opening {}", path.display()), e)),
    };
    let mut bytes = Vec::new();
    f.take(MAX_JOURNAL_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::store(format!("reading {}", path.display()), e))?;
    if bytes.len() as u64 > MAX_JOURNAL_BYTES {
        return Err(Error::new(
            ErrorKind::Store,
            format!(
                "{} is larger than {MAX_JOURNAL_BYTES} bytes; move it away to start afresh",
                path.display()
            ),
        ));
    }
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if complete < bytes.len() {
        tracing::warn!(path = %path.display(), "cutting a torn record off the outbox journal");
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| Error::store(format!("opening {}", path.display()), e))?;
        f.set_len(complete as u64)
            .and_then(|()| f.sync_all())
            .map_err(|e| Error::store(format!("truncating {}", path.display()), e))?;
    }
    let text = String::from_utf8_lossy(bytes.get(..complete).unwrap_or_default());
    Ok(text
        .split('\n')
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect())
}

/// Append one record line to the journal in `dir` and fsync it (mode 0600 on creation).
pub(crate) fn file_append(dir: &std::path::Path, record: &str) -> Result<()> {
    use std::io::Write as _;
    if record.contains('\n') {
        return Err(Error::new(
            ErrorKind::Store,
            "an outbox record must be one line",
        ));
    }
    let path = dir.join(JOURNAL_FILE);
    let mut opts = std::fs::OpenOptions::new();
    opts.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(&path)
        .map_err(|e| Error::store(format!("opening {}", path.display()), e))?;
    let mut line = Vec::with_capacity(record.len() + 1);
    line.extend_from_slice(record.as_bytes());
    line.push(b'\n');
    f.write_all(&line)
        .and_then(|()| f.sync_data())
        .map_err(|e| Error::store(format!("appending to {}", path.display()), e))
}

pub(crate) fn encode(r: &Record) -> Result<String> {
    serde_json::to_string(r)
        .map_err(|e| Error::new(ErrorKind::Store, "encoding an outbox record").with_source(e))
}

/// Delay of throttle retry `attempt` (0-based): `base` doubled per attempt, ±25 % jitter.
pub(crate) fn backoff(base: Duration, attempt: u32) -> Duration {
    let d = base.saturating_mul(1u32 << attempt.min(16));
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let quarter = ms / 4;
    if quarter == 0 {
        return d;
    }
    let jitter = crate::util::random_u64() % (2 * quarter + 1);
    Duration::from_millis(ms - quarter + jitter)
}

// ---------------------------------------------------------------------- the account side

impl Account {
    fn outbox(&self) -> Result<std::sync::MutexGuard<'_, OutboxState>> {
        self.inner
            .outbox
            .lock()
            .map_err(|_| Error::new(ErrorKind::Store, "the outbox lock was poisoned"))
    }

    fn policy(&self) -> &ReplyPolicy {
        &self.shared().config.replies
    }

    fn now_ms(&self) -> u64 {
        self.policy().clock.now_ms()
    }

    /// Persist `r` (when the store keeps a journal), then apply it; compact now and then.
    /// Journal writes are serialized per account (records keep their order) and carry the
    /// account's lease fence while a leased run serves it.
    async fn journal(&self, r: Record) -> Result<()> {
        let line = encode(&r)?;
        let _serial = self.inner.journal_lock.lock().await;
        let durable = self.outbox()?.durable;
        let fence = self.fence();
        let store = &self.shared().store;
        if durable {
            store
                .append_outbox(self.id(), &line, fence.as_ref())
                .await
                .inspect_err(|e| self.note_store_error(e))?;
        }
        let compact = {
            let mut st = self.outbox()?;
            st.apply(&r);
            crate::metrics::outbox_depth(self.id(), st.depth());
            (st.durable && st.wants_compaction()).then(|| {
                st.snapshot()
                    .iter()
                    .filter_map(|r| encode(r).ok())
                    .collect::<Vec<String>>()
            })
        };
        if let Some(lines) = compact {
            match store
                .replace_outbox(self.id(), &lines, fence.as_ref())
                .await
            {
                Ok(()) => self.outbox()?.reset_records(lines.len()),
                Err(e) => {
                    self.note_store_error(&e);
                    tracing::warn!(error = %e, "could not compact the outbox journal");
                }
            }
        }
        Ok(())
    }

    fn user_lock(&self, user: &str) -> Arc<tokio::sync::Mutex<()>> {
        match self.inner.flush_locks.lock() {
            Ok(mut m) => m.entry(user.to_owned()).or_default().clone(),
            Err(_) => Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Record that `user` wrote (the inbound message with dedupe key `key`): a new window
    /// opens with a full budget. A message seen before (a redelivery) changes nothing.
    pub(crate) async fn note_inbound(&self, user: &str, key: &str) {
        let known = self
            .outbox()
            .map(|st| {
                st.users
                    .get(user)
                    .is_some_and(|u| u.last_key.as_deref() == Some(key))
            })
            .unwrap_or(false);
        if known {
            return;
        }
        let r = Record::Inbound {
            user: user.to_owned(),
            key: Some(key.to_owned()),
            at_ms: self.now_ms(),
        };
        if let Err(e) = self.journal(r).await {
            tracing::warn!(error = %e, "could not journal an inbound message");
        }
    }

    /// Count a message sent outside the queue (media) against the budget.
    pub(crate) async fn note_sent(&self, user: &str, outcome: &SendOutcome) {
        let r = Record::Sent {
            user: user.to_owned(),
            client_id: outcome.client_id().to_owned(),
            message_id: outcome.message_id().map(|m| m.as_str().to_owned()),
            at_ms: self.now_ms(),
        };
        if let Err(e) = self.journal(r).await {
            tracing::warn!(error = %e, "could not journal a sent message");
        }
    }

    /// The reply budget of `user`: messages left in the current window, when it closes, and
    /// how many messages wait in the queue. See [`crate::outbox`].
    pub fn budget(&self, user: &str) -> Budget {
        let now = self.now_ms();
        self.outbox()
            .map(|st| st.budget(user, self.policy(), now))
            .unwrap_or(Budget {
                left: 0,
                window_closes_at_ms: None,
                exhausted: false,
                queued: 0,
            })
    }

    /// The messages waiting in `user`'s queue, in the order they will be sent.
    pub fn queued(&self, user: &str) -> Vec<QueuedMessage> {
        self.outbox()
            .map(|st| st.queue(user))
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(position, p)| QueuedMessage {
                position,
                client_id: p.client_id,
                text: p.text,
                queued_at_ms: p.queued_at_ms,
                expires_at_ms: p.expires_at_ms,
            })
            .collect()
    }

    /// The users with messages waiting in their queue.
    pub fn queued_users(&self) -> Vec<String> {
        self.outbox()
            .map(|st| st.queued_users())
            .unwrap_or_default()
    }

    /// Remove every message waiting in `user`'s queue, unsent. Returns how many there were.
    pub async fn clear_queue(&self, user: &str) -> Result<usize> {
        let lock = self.user_lock(user);
        let _g = lock.lock().await;
        let ids: Vec<String> = self
            .outbox()?
            .queue(user)
            .into_iter()
            .map(|p| p.client_id)
            .collect();
        for id in &ids {
            self.journal(Record::Removed {
                client_id: id.clone(),
                reason: "cleared".to_owned(),
            })
            .await?;
        }
        Ok(ids.len())
    }

    /// Send what `user`'s queue holds, in order, as far as the budget allows, with the user's
    /// stored context token. Messages that cannot go now stay queued.
    pub async fn flush_queue(&self, user: &str) -> Result<FlushReport, SendError> {
        let token = self.precheck(user, None)?;
        let (report, err) = self.flush_user(user, Some(token), None).await;
        match err {
            Some(e) if report.sent.is_empty() => Err(e),
            _ => Ok(report),
        }
    }

    /// Called for every inbound message before its handler runs ([`Account::run`] does it):
    /// opens the user's new window and, if [`ReplyPolicy::flush_on_inbound`], sends what
    /// their queue holds first, in order, within the new budget. Users of
    /// [`Account::updates`] call it themselves to get the same order.
    pub async fn begin_turn(&self, ctx: &MessageContext) -> FlushReport {
        let msg = ctx.message();
        self.note_inbound(msg.from(), msg.dedupe_key()).await;
        if !self.policy().flush_on_inbound
            || self
                .outbox()
                .map(|st| st.queue(msg.from()).is_empty())
                .unwrap_or(true)
        {
            return FlushReport::default();
        }
        let token = msg.context_token().cloned();
        let (report, err) = self.flush_user(msg.from(), token, Some(ctx.run_id())).await;
        if let Some(e) = err {
            tracing::warn!(account = %self.id(), error = %e, "flushing the queue failed; it stays queued");
        }
        report
    }

    /// Wait until a user's window closes within [`ReplyPolicy::warn_before`] and report it
    /// (once per window), so the application can ask the user to write.
    pub async fn next_window_warning(&self) -> WindowWarning {
        loop {
            let now = self.now_ms();
            let next = match self.outbox() {
                Ok(mut st) => {
                    if let Some(w) = st.take_warning(self.policy(), now) {
                        return w;
                    }
                    st.next_warning_at(self.policy())
                }
                Err(_) => None,
            };
            // Re-check at least every second: the clock may jump (an emulated one does) and
            // new windows open as users write.
            let wait = next.map_or(1000, |at| at.saturating_sub(now).clamp(1, 1000));
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }

    /// Send text through the budget and the queue. `turn` is (dedupe key of the inbound
    /// message, reply number) for replies made while handling a message.
    pub(crate) async fn send_text_queued(
        &self,
        user: &str,
        text: &str,
        context_token: Option<Secret>,
        run_id: Option<&str>,
        turn: Option<(&str, u32, Option<i64>)>,
    ) -> Result<Vec<SendOutcome>, SendError> {
        let cfg = &self.shared().config;
        let policy = &cfg.replies;
        let filtered;
        let text = if cfg.markdown_filter {
            filtered = crate::markdown::filter_markdown(text);
            filtered.as_str()
        } else {
            text
        };
        if text.trim().is_empty() {
            return Err(SendError::new(
                SendErrorKind::Invalid,
                "the text is empty (after the Markdown filter, which removes images); nothing to send",
            ));
        }
        let lock = self.user_lock(user);
        let guard = lock.lock().await;
        if let Some((t, k, _)) = turn {
            let ids = self.outbox().map_err(SendError::from_error)?.turn(t, k);
            if let Some(ids) = ids {
                tracing::debug!(
                    turn = t,
                    reply = k,
                    "reply already journaled; not sending it again"
                );
                drop(guard);
                return self.replay_turn(user, &ids, context_token, run_id).await;
            }
        }
        let token = self.precheck(user, context_token)?;
        let limit = cfg.chunk_limit.max(1);
        let budget = self.budget(user);
        let mut parts = crate::chunk::chunk_text(text, limit);
        if budget.queued + parts.len() > budget.left as usize {
            match policy.overflow {
                Overflow::AllOrNothing => {
                    return Err(SendError::new(
                        SendErrorKind::BudgetExceeded,
                        format!(
                            "the text needs {} message(s) and {} are left in {user}'s window ({} queued); nothing was sent",
                            parts.len(),
                            budget.left,
                            budget.queued
                        ),
                    ));
                }
                Overflow::Queue => {
                    // Leave room for the notice in every part: any of them may end a window.
                    let notice = crate::chunk::utf16_len(&policy.notice_suffix());
                    if notice > 0 {
                        parts = crate::chunk::chunk_text(
                            text,
                            limit.saturating_sub(notice).max(limit / 2).max(1),
                        );
                    }
                }
            }
        }
        if budget.queued + parts.len() > policy.max_queued.max(1) {
            return Err(SendError::new(
                SendErrorKind::QueueFull,
                format!(
                    "the text needs {} message(s) and {user}'s queue already holds {} of at most {}; nothing was queued or sent",
                    parts.len(),
                    budget.queued,
                    policy.max_queued
                ),
            ));
        }
        let now = self.now_ms();
        let expires = policy
            .queue_ttl
            .map(|t| now.saturating_add(u64::try_from(t.as_millis()).unwrap_or(u64::MAX)));
        let parts: Vec<Part> = parts
            .into_iter()
            .enumerate()
            .map(|(i, text)| Part {
                // A reply of a turn gets the same ids every time (a takeover that handles the
                // message again reuses them); other sends get fresh ones.
                client_id: match turn {
                    Some((t, k, at)) => {
                        crate::util::turn_client_id(&cfg.client_id_prefix, self.id(), t, k, i, at)
                    }
                    None => crate::util::new_client_id(&cfg.client_id_prefix),
                },
                text,
            })
            .collect();
        let ids: Vec<String> = parts.iter().map(|p| p.client_id.clone()).collect();
        self.journal(Record::Queued {
            user: user.to_owned(),
            turn: turn.map(|t| t.0.to_owned()),
            reply: turn.map(|t| t.1),
            parts,
            at_ms: now,
            expires_at_ms: expires,
        })
        .await
        .map_err(SendError::from_error)?;
        let (report, err) = self.flush_locked(user, Some(token), run_id).await;
        drop(guard);
        self.outcomes(user, &ids, &report, err)
    }

    /// The outcomes of the messages `ids` after a flush.
    fn outcomes(
        &self,
        user: &str,
        ids: &[String],
        report: &FlushReport,
        err: Option<SendError>,
    ) -> Result<Vec<SendOutcome>, SendError> {
        let st = self.outbox().map_err(SendError::from_error)?;
        let mut out = Vec::with_capacity(ids.len());
        let mut refused = false;
        let reason = err
            .as_ref()
            .map_or(QueueReason::Window, |e| QueueReason::Failed(e.kind()));
        for id in ids {
            if let Some(o) = report.sent.iter().find(|o| o.client_id() == id) {
                out.push(o.clone());
            } else if let Some(position) = st.position(user, id) {
                out.push(SendOutcome::Queued {
                    client_id: id.clone(),
                    position,
                    reason,
                });
            } else {
                match st.part_state(id) {
                    Some(PartState::Sent(mid)) => out.push(sent_outcome(id, mid)),
                    _ => refused = true,
                }
            }
        }
        drop(st);
        let err = match err {
            // This process no longer serves the account: not a queued reply it will send.
            Some(e) if e.kind() == SendErrorKind::LeaseLost => return Err(e.with_sent(out)),
            other => other,
        };
        if refused {
            let e = err.unwrap_or_else(|| {
                SendError::new(
                    SendErrorKind::Rejected,
                    "the server refused part of the text; it was removed from the queue",
                )
            });
            return Err(e.with_sent(out));
        }
        if let Some(e) = err {
            // The caller sees it in each queued outcome's reason.
            tracing::debug!(account = %self.id(), error = %e, "sending stopped; the rest stays queued");
        }
        Ok(out)
    }

    /// A reply journaled before (the inbound message came again after a crash): send what
    /// is still queued of it, and report the rest as it went.
    async fn replay_turn(
        &self,
        user: &str,
        ids: &[String],
        context_token: Option<Secret>,
        run_id: Option<&str>,
    ) -> Result<Vec<SendOutcome>, SendError> {
        let pending = {
            let st = self.outbox().map_err(SendError::from_error)?;
            ids.iter().any(|id| st.position(user, id).is_some())
        };
        let (report, err) = if pending {
            let token = self.precheck(user, context_token)?;
            self.flush_user(user, Some(token), run_id).await
        } else {
            (FlushReport::default(), None)
        };
        self.outcomes(user, ids, &report, err)
    }

    async fn flush_user(
        &self,
        user: &str,
        token: Option<Secret>,
        run_id: Option<&str>,
    ) -> (FlushReport, Option<SendError>) {
        let lock = self.user_lock(user);
        let _g = lock.lock().await;
        self.flush_locked(user, token, run_id).await
    }

    /// Send the queue's messages in order while the budget allows; the caller holds the
    /// user's flush lock.
    async fn flush_locked(
        &self,
        user: &str,
        token: Option<Secret>,
        run_id: Option<&str>,
    ) -> (FlushReport, Option<SendError>) {
        self.flush_locked_with(user, token, run_id, true).await
    }

    /// [`Account::flush_locked`]; `retry` schedules a background retry after a transient
    /// failure (a background retry passes false and schedules the next one itself).
    async fn flush_locked_with(
        &self,
        user: &str,
        token: Option<Secret>,
        run_id: Option<&str>,
        retry: bool,
    ) -> (FlushReport, Option<SendError>) {
        let policy = self.policy().clone();
        let limit = self.shared().config.chunk_limit.max(1);
        let suffix = policy.notice_suffix();
        let mut report = FlushReport::default();
        let mut error = None;
        loop {
            let now = self.now_ms();
            let (front, budget, queued) = match self.outbox() {
                Ok(st) => (
                    st.front(user),
                    st.budget(user, &policy, now),
                    st.queue(user).len(),
                ),
                Err(e) => {
                    error = Some(SendError::from_error(e));
                    break;
                }
            };
            let Some(p) = front else { break };
            if p.expires_at_ms.is_some_and(|e| now >= e) {
                tracing::warn!(account = %self.id(), user, client_id = %p.client_id,
                    "a queued message expired unsent (queue_ttl)");
                if let Err(e) = self
                    .journal(Record::Removed {
                        client_id: p.client_id.clone(),
                        reason: "expired".to_owned(),
                    })
                    .await
                {
                    error = Some(SendError::from_error(e));
                    break;
                }
                report.expired.push(p.client_id);
                continue;
            }
            if budget.left == 0 {
                break;
            }
            let mut text = p.text.clone();
            if budget.left == 1
                && queued > 1
                && !suffix.is_empty()
                && !text.ends_with(&suffix)
                && crate::chunk::utf16_len(&text) + crate::chunk::utf16_len(&suffix) <= limit
            {
                text.push_str(&suffix);
            }
            let mut attempt = 0;
            let result = loop {
                let r = self
                    .send_item_with_id(
                        user,
                        MessageItem::text(text.clone()),
                        token.clone(),
                        run_id,
                        p.client_id.clone(),
                    )
                    .await;
                match r {
                    Err(e) if e.is_throttled() && attempt < policy.throttle_retries => {
                        let wait = backoff(policy.throttle_backoff, attempt);
                        tracing::debug!(
                            attempt,
                            wait_ms = wait.as_millis() as u64,
                            "sendmessage throttled (ret -2); retrying the queued message"
                        );
                        attempt += 1;
                        tokio::time::sleep(wait).await;
                    }
                    other => break other,
                }
            };
            match result {
                Ok(o) => {
                    let r = Record::Sent {
                        user: user.to_owned(),
                        client_id: p.client_id.clone(),
                        message_id: o.message_id().map(|m| m.as_str().to_owned()),
                        at_ms: self.now_ms(),
                    };
                    if let Err(e) = self.journal(r).await {
                        error = Some(SendError::from_error(e));
                        report.sent.push(o);
                        break;
                    }
                    report.sent.push(o);
                }
                Err(e) if e.is_throttled() => {
                    // Retries did not help: the window's real limit was reached.
                    tracing::info!(account = %self.id(), user,
                        "ret -2 persists; no more messages until the user writes");
                    let _ = self
                        .journal(Record::Exhausted {
                            user: user.to_owned(),
                            at_ms: self.now_ms(),
                        })
                        .await;
                    break;
                }
                Err(e) => match e.kind() {
                    SendErrorKind::BadTarget | SendErrorKind::Rejected | SendErrorKind::Invalid => {
                        tracing::warn!(account = %self.id(), user, error = %e,
                            "the server refused a queued message; removing it");
                        let _ = self
                            .journal(Record::Removed {
                                client_id: p.client_id.clone(),
                                reason: "refused".to_owned(),
                            })
                            .await;
                        report.refused.push(p.client_id);
                        error = Some(e);
                    }
                    _ => {
                        // Transport, -14, session expired: the message stays queued (a retry
                        // reuses its client_id, so one the server did take is not shown
                        // twice) and is tried again in the background.
                        if retry {
                            self.schedule_retry(user, 0);
                        }
                        error = Some(e);
                        break;
                    }
                },
            }
        }
        report.still_queued = self.outbox().map(|st| st.queue(user).len()).unwrap_or(0);
        (report, error)
    }
}

/// Background retries of a queue that stopped on a transient failure.
const TRANSIENT_RETRIES: u32 = 5;

impl Account {
    /// Flush `user`'s queue again after a backoff (up to [`TRANSIENT_RETRIES`] times in a
    /// row), so a message that met a transient failure does not wait for the user's next
    /// message. Needs a Tokio runtime; without one the queue waits for the next flush.
    fn schedule_retry(&self, user: &str, attempt: u32) {
        if attempt >= TRANSIENT_RETRIES || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let acct = self.clone();
        let user = user.to_owned();
        let wait = backoff(self.policy().throttle_backoff, attempt);
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let token = match acct.precheck(&user, None) {
                Ok(t) => t,
                // Still expired: try again later (the user's next message flushes it too).
                Err(e) if e.kind() == SendErrorKind::SessionExpired => {
                    acct.schedule_retry(&user, attempt + 1);
                    return;
                }
                Err(_) => return,
            };
            let lock = acct.user_lock(&user);
            let _g = lock.lock().await;
            let (report, err) = acct.flush_locked_once(&user, Some(token)).await;
            if err.is_some() && report.still_queued > 0 {
                acct.schedule_retry(&user, attempt + 1);
            }
        });
    }

    /// One flush without scheduling further retries (the caller does).
    async fn flush_locked_once(
        &self,
        user: &str,
        token: Option<Secret>,
    ) -> (FlushReport, Option<SendError>) {
        Box::pin(self.flush_locked_with(user, token, None, false)).await
    }
}

impl OutboxState {
    /// Messages queued for every user (the `ilink_outbox_depth` gauge).
    pub(crate) fn depth(&self) -> usize {
        self.users.values().map(|u| u.queue.len()).sum()
    }
}

fn sent_outcome(client_id: &str, message_id: Option<String>) -> SendOutcome {
    match message_id.filter(|m| !m.is_empty()) {
        Some(m) => SendOutcome::Delivered {
            message_id: ilink_proto::WireId::from(m),
            client_id: client_id.to_owned(),
        },
        None => SendOutcome::Accepted {
            client_id: client_id.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ReplyPolicy {
        ReplyPolicy::default()
    }

    fn queued(user: &str, ids: &[&str], turn: Option<(&str, u32)>) -> Record {
        Record::Queued {
            user: user.into(),
            turn: turn.map(|t| t.0.to_owned()),
            reply: turn.map(|t| t.1),
            parts: ids
                .iter()
                .map(|i| Part {
                    client_id: (*i).into(),
                    text: format!("text {i}"),
                })
                .collect(),
            at_ms: 5,
            expires_at_ms: None,
        }
    }

    #[test]
    fn budget_counts_sends_since_the_last_inbound() {
        let mut s = OutboxState::default();
        let p = policy();
        assert_eq!(s.budget("u", &p, 0).left, 10);
        s.apply(&Record::Inbound {
            user: "u".into(),
            key: Some("m:1".into()),
            at_ms: 1000,
        });
        s.apply(&queued("u", &["a", "b"], Some(("m:1", 0))));
        s.apply(&Record::Sent {
            user: "u".into(),
            client_id: "a".into(),
            message_id: Some("9".into()),
            at_ms: 1001,
        });
        let b = s.budget("u", &p, 2000);
        assert_eq!(b.left, 9);
        assert_eq!(b.queued, 1);
        assert_eq!(b.window_closes_at_ms, Some(1000 + 86_400_000));
        // After the window: nothing left.
        assert_eq!(s.budget("u", &p, 1000 + 86_400_000).left, 0);
        // The same inbound message again (a redelivery) does not reset the count.
        s.apply(&Record::Inbound {
            user: "u".into(),
            key: Some("m:1".into()),
            at_ms: 3000,
        });
        assert_eq!(s.budget("u", &p, 3000).left, 9);
        // Evidence from the server.
        s.apply(&Record::Exhausted {
            user: "u".into(),
            at_ms: 3001,
        });
        assert_eq!(s.budget("u", &p, 3002).left, 0);
        s.apply(&Record::Inbound {
            user: "u".into(),
            key: Some("m:2".into()),
            at_ms: 4000,
        });
        assert_eq!(s.budget("u", &p, 4001).left, 10);
        assert_eq!(s.turn("m:1", 0), Some(vec!["a".to_owned(), "b".to_owned()]));
    }

    #[test]
    fn snapshot_rebuilds_the_same_state() {
        let mut s = OutboxState::default();
        s.apply(&Record::Inbound {
            user: "u".into(),
            key: None,
            at_ms: 1000,
        });
        s.apply(&queued("u", &["a", "b", "c"], Some(("m:1", 0))));
        for id in ["a", "b"] {
            s.apply(&Record::Sent {
                user: "u".into(),
                client_id: id.into(),
                message_id: None,
                at_ms: 1001,
            });
        }
        let lines: Vec<String> = s.snapshot().iter().map(|r| encode(r).unwrap()).collect();
        let t = OutboxState::from_lines(&lines);
        let p = policy();
        assert_eq!(t.budget("u", &p, 1002), s.budget("u", &p, 1002));
        assert_eq!(t.budget("u", &p, 1002).left, 8);
        assert_eq!(t.queue("u").len(), 1);
        assert!(matches!(t.part_state("a"), Some(PartState::Sent(None))));
        assert_eq!(t.turn("m:1", 0).unwrap().len(), 3);
    }

    #[test]
    fn bad_lines_are_skipped() {
        let lines = vec![
            "{not json".to_owned(),
            encode(&queued("u", &["a"], None)).unwrap(),
        ];
        let s = OutboxState::from_lines(&lines);
        assert_eq!(s.queue("u").len(), 1);
    }

    #[test]
    fn warnings_come_once_per_window() {
        let mut s = OutboxState::default();
        let p = policy();
        s.apply(&Record::Inbound {
            user: "u".into(),
            key: None,
            at_ms: 0,
        });
        let closes = 86_400_000;
        assert_eq!(s.next_warning_at(&p), Some(closes - 1_800_000));
        assert!(s.take_warning(&p, 1000).is_none());
        let w = s.take_warning(&p, closes - 60_000).unwrap();
        assert_eq!(w.user, "u");
        assert_eq!(w.closes_at_ms, closes);
        assert!(s.take_warning(&p, closes - 50_000).is_none());
    }

    #[test]
    fn backoff_doubles_with_jitter() {
        for attempt in 0..4 {
            let d = backoff(Duration::from_millis(1000), attempt).as_millis();
            let base = 1000u128 << attempt;
            assert!(d >= base * 3 / 4 && d <= base * 5 / 4, "{d}");
        }
    }

    #[tokio::test]
    async fn the_file_journal_appends_privately_and_cuts_a_torn_record() {
        use crate::{FileStore, StateStore};
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path());
        assert!(store.load_outbox("a@im.bot").await.unwrap().is_empty());
        store
            .append_outbox(
                "a@im.bot",
                "{\"t\":\"exhausted\",\"user\":\"u\",\"at_ms\":1}",
                None,
            )
            .await
            .unwrap();
        store
            .append_outbox(
                "a@im.bot",
                "{\"t\":\"exhausted\",\"user\":\"v\",\"at_ms\":2}",
                None,
            )
            .await
            .unwrap();
        assert!(
            store
                .append_outbox("a@im.bot", "two\nlines", None)
                .await
                .is_err()
        );
        let path = store.account_dir("a@im.bot").join(JOURNAL_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A crash in the middle of an append leaves a torn last line.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(b"{\"t\":\"exhau");
        std::fs::write(&path, &bytes).unwrap();
        let lines = store.load_outbox("a@im.bot").await.unwrap();
        assert_eq!(lines.len(), 2);
        // It was cut off: the next append starts on its own line.
        store
            .append_outbox(
                "a@im.bot",
                "{\"t\":\"exhausted\",\"user\":\"w\",\"at_ms\":3}",
                None,
            )
            .await
            .unwrap();
        let lines = store.load_outbox("a@im.bot").await.unwrap();
        assert_eq!(lines.len(), 3);
        let st = OutboxState::from_lines(&lines);
        assert!(st.budget("w", &policy(), 4).exhausted);
        // Compaction replaces it whole.
        store
            .replace_outbox("a@im.bot", &lines[..1], None)
            .await
            .unwrap();
        assert_eq!(store.load_outbox("a@im.bot").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn the_memory_journal_keeps_order() {
        use crate::{MemoryStore, StateStore};
        let store = MemoryStore::new();
        store.append_outbox("a", "1", None).await.unwrap();
        store.append_outbox("a", "2", None).await.unwrap();
        assert_eq!(store.load_outbox("a").await.unwrap(), vec!["1", "2"]);
        store
            .replace_outbox("a", &["3".to_owned()], None)
            .await
            .unwrap();
        assert_eq!(store.load_outbox("a").await.unwrap(), vec!["3"]);
    }

    #[test]
    fn compaction_keeps_pending_messages_and_budgets() {
        let mut s = OutboxState::default();
        s.apply(&Record::Inbound {
            user: "u".into(),
            key: Some("m:1".into()),
            at_ms: 10,
        });
        for i in 0..5000u32 {
            let id = format!("c{i}");
            s.apply(&queued("u", &[id.as_str()], None));
            s.apply(&Record::Sent {
                user: "u".into(),
                client_id: id,
                message_id: None,
                at_ms: 11,
            });
        }
        s.apply(&queued("u", &["last"], None));
        assert!(s.wants_compaction());
        let lines: Vec<String> = s.snapshot().iter().map(|r| encode(r).unwrap()).collect();
        assert!(lines.len() < 10, "{}", lines.len());
        let t = OutboxState::from_lines(&lines);
        assert_eq!(t.queue("u").len(), 1);
        assert_eq!(t.budget("u", &policy(), 12), s.budget("u", &policy(), 12));
    }
}
