//! The emulator's state and the server-side rules, independent of HTTP.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use ilink_crypto::MediaKey;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::bounded::Retention;
use crate::bounded::{Bounded, ListStats, json_size, str_size, sum_stats};
use crate::clock::Clock;
use crate::config::{BurstScope, FullUrlMode, SimConfig};
use crate::fault::FaultQueue;
use crate::model::{
    BotAccount, Delivered, DropReason, Dropped, Inbound, RequestRecord, TypingEvent, TypingState,
    UploadRecord,
};
use crate::qr::{QrSession, QrStep};
use crate::rng::Rng;
use crate::wire;

/// Everything the server tasks and the handles share.
pub(crate) struct Shared {
    pub(crate) config: SimConfig,
    pub(crate) clock: Clock,
    pub(crate) addr: SocketAddr,
    pub(crate) state: Mutex<State>,
    /// Woken when a bot's update stream grows.
    pub(crate) inbox_changed: Notify,
    /// Woken after every request and every delivery or drop.
    pub(crate) activity: Notify,
    /// Bumped after every change a watcher (the web page's event stream) may want to see.
    pub(crate) changes: tokio::sync::watch::Sender<u64>,
    /// The token the page and admin API require (set when not on loopback).
    pub(crate) access_token: Option<crate::config::AccessToken>,
}

impl std::fmt::Debug for Shared {
    // The state holds tokens and keys: show only where the server listens.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way
        // that matters for a test server; keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `host:port` clients can reach: loopback when listening on all interfaces.
    pub(crate) fn host(&self) -> String {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        addr.to_string()
    }

    pub(crate) fn base_url(&self) -> String {
        let prefix = self.config.path_prefix.trim_matches('/');
        if prefix.is_empty() {
            format!("http://{}/", self.host())
        } else {
            format!("http://{}/{prefix}/", self.host())
        }
    }

    pub(crate) fn cdn_base_url(&self) -> String {
        format!("http://{}/c2c", self.host())
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Tells watchers (the web page's event stream) that something changed.
    pub(crate) fn touch(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }
}

pub(crate) struct Bot {
    pub(crate) account: BotAccount,
    pub(crate) created_ms: u64,
    pub(crate) stale: bool,
    /// The update stream; positions are absolute (`inbox.evicted()` + index).
    pub(crate) inbox: Bounded<Value>,
    /// The furthest position a client confirmed by sending its cursor back.
    pub(crate) acked: u64,
    pub(crate) notify_started: u32,
    pub(crate) notify_stopped: u32,
}

#[derive(Default)]
pub(crate) struct Conv {
    pub(crate) last_inbound_ms: u64,
    pub(crate) replies: u32,
}

pub(crate) struct PendingUpload {
    pub(crate) filekey: String,
    pub(crate) media_type: u64,
    pub(crate) to_user_id: String,
    pub(crate) rawsize: u64,
    pub(crate) filesize: u64,
    pub(crate) rawfilemd5: String,
    pub(crate) key: MediaKey,
}

pub(crate) struct CdnObject {
    pub(crate) ciphertext: Bytes,
}

/// Decrypts `ciphertext` a slice at a time, never holding the whole plaintext (objects can be
/// gigabytes), and returns the plaintext's length and, if `md5` is set, its MD5 in hex.
pub(crate) fn scan_plaintext(
    key: &MediaKey,
    ciphertext: &[u8],
    md5: bool,
) -> Result<(u64, Option<String>), ilink_crypto::CryptoError> {
    const SLICE: usize = 1 << 20;
    let mut dec = ilink_crypto::Decryptor::new(key);
    let mut hasher = md5.then(ilink_crypto::Md5Hasher::new);
    let mut out = Vec::with_capacity(SLICE + 16);
    let mut len = 0u64;
    let mut take = |out: &mut Vec<u8>| {
        len += out.len() as u64;
        if let Some(h) = hasher.as_mut() {
            h.update(out);
        }
        out.clear();
    };
    for slice in ciphertext.chunks(SLICE) {
        dec.update(slice, &mut out);
        take(&mut out);
    }
    dec.finish(&mut out)?;
    take(&mut out);
    Ok((len, hasher.map(ilink_crypto::Md5Hasher::finish_hex)))
}

/// Why a request's token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthError {
    Missing,
    Unknown,
    Stale,
}

pub(crate) struct State {
    pub(crate) rng: Rng,
    next_id: u64,
    retention: Retention,
    pub(crate) bots: BTreeMap<String, Bot>,
    tokens: HashMap<String, String>,
    pub(crate) convs: HashMap<(String, String), Conv>,
    /// context_token -> (bot, user, issued at ms)
    ctx_tokens: HashMap<String, (String, String, u64)>,
    ctx_token_order: Bounded<String>,
    typing_tickets: HashMap<String, (String, String)>,
    pub(crate) typing: HashMap<String, TypingState>,
    pub(crate) typing_events: Bounded<TypingEvent>,
    pub(crate) inbound: Bounded<Inbound>,
    pub(crate) delivered: Bounded<Delivered>,
    pub(crate) dropped: Bounded<Dropped>,
    client_ids: HashSet<(String, String)>,
    client_id_order: Bounded<(String, String)>,
    sends: HashMap<String, VecDeque<u64>>,
    pub(crate) uploads: Bounded<UploadRecord>,
    pub(crate) pending_uploads: HashMap<String, PendingUpload>,
    upload_grant_order: Bounded<String>,
    pub(crate) cdn: HashMap<String, CdnObject>,
    cdn_order: Bounded<String>,
    pub(crate) requests: Bounded<RequestRecord>,
    next_request_id: u64,
    pub(crate) faults: FaultQueue,
    pub(crate) qr_sessions: Vec<QrSession>,
    pub(crate) qr_evicted: u64,
    pub(crate) qr_scripts: VecDeque<Vec<QrStep>>,
    pub(crate) upload_url_calls: u64,
    inbound_media: u64,
}

/// A validated sendmessage that passed every check.
pub(crate) type SendOutcome = (Value, Result<Delivered, DropReason>);

fn ret2(errmsg: Option<&str>) -> Value {
    match errmsg {
        Some(m) => json!({"ret": -2, "errmsg": m}),
        None => json!({"ret": -2}),
    }
}

/// The body the live server answers a stale or missing token with.
pub(crate) fn stale_token_body() -> Value {
    json!({"errcode": -14, "errmsg": "session timeout"})
}

impl Bot {
    /// Messages ever queued in the stream (the position after the newest).
    pub(crate) fn stream_len(&self) -> u64 {
        self.inbox.evicted() + self.inbox.len() as u64
    }
}

impl State {
    pub(crate) fn new(config: &SimConfig) -> Self {
        let mut rng = Rng::new(config.seed);
        let next_id = 7_448_678_501_208_393_123 + rng.below(1_000_000_000_000);
        let r = config.retention;
        let requests = crate::bounded::Cap::new(
            config.max_logged_requests.max(1),
            config.max_logged_request_bytes,
        );
        Self {
            rng,
            next_id,
            retention: r,
            bots: BTreeMap::new(),
            tokens: HashMap::new(),
            convs: HashMap::new(),
            ctx_tokens: HashMap::new(),
            ctx_token_order: Bounded::new(r.context_tokens),
            typing_tickets: HashMap::new(),
            typing: HashMap::new(),
            typing_events: Bounded::new(r.typing_events),
            inbound: Bounded::new(r.inbound),
            delivered: Bounded::new(r.delivered),
            dropped: Bounded::new(r.dropped),
            client_ids: HashSet::new(),
            client_id_order: Bounded::new(r.client_ids),
            sends: HashMap::new(),
            uploads: Bounded::new(r.uploads),
            pending_uploads: HashMap::new(),
            upload_grant_order: Bounded::new(r.upload_grants),
            cdn: HashMap::new(),
            cdn_order: Bounded::new(r.cdn),
            requests: Bounded::new(requests),
            next_request_id: 0,
            faults: FaultQueue::default(),
            qr_sessions: Vec::new(),
            qr_evicted: 0,
            qr_scripts: VecDeque::new(),
            upload_url_calls: 0,
            inbound_media: 0,
        }
    }

    /// Logs a request (dropping the oldest past the caps) and returns its id.
    pub(crate) fn log_request(&mut self, mut record: RequestRecord) -> u64 {
        let id = self.next_request_id;
        self.next_request_id += 1;
        record.id = id;
        let size = record.weight();
        self.requests.push(record, size);
        id
    }

    /// Adds problems found while handling request `id`.
    pub(crate) fn add_problems(&mut self, id: u64, problems: Vec<String>) {
        let grew: usize = problems.iter().map(|p| str_size(p)).sum();
        let is_last = self.requests.iter().next_back().is_some_and(|r| r.id == id);
        let found = match self.requests.iter_mut().rev().find(|r| r.id == id) {
            Some(r) => {
                r.problems.extend(problems);
                true
            }
            None => false,
        };
        if found && is_last {
            self.requests.grow_last(grew);
        }
    }

    pub(crate) fn push_typing_event(&mut self, event: TypingEvent) {
        let size = str_size(&event.bot_id) + str_size(&event.user_id) + 32;
        self.typing_events.push(event, size);
    }

    pub(crate) fn push_upload(&mut self, record: UploadRecord) {
        let size = str_size(&record.filekey)
            + str_size(&record.to_user_id)
            + record.download_param.as_deref().map_or(0, str_size)
            + record.error.as_deref().map_or(0, str_size)
            + 64;
        self.uploads.push(record, size);
    }

    /// Stores an upload grant (`getuploadurl`), dropping the oldest past the cap.
    pub(crate) fn insert_upload_grant(&mut self, param: String, grant: PendingUpload) {
        let size = str_size(&param) * 2
            + str_size(&grant.filekey)
            + str_size(&grant.to_user_id)
            + str_size(&grant.rawfilemd5)
            + 64;
        for old in self.upload_grant_order.push(param.clone(), size) {
            self.pending_uploads.remove(&old);
        }
        self.pending_uploads.insert(param, grant);
    }

    /// Stores an object on the emulated CDN, dropping the oldest past the cap.
    pub(crate) fn insert_cdn_object(&mut self, param: String, ciphertext: Bytes) {
        let size = ciphertext.len() + str_size(&param) * 2;
        for old in self.cdn_order.push(param.clone(), size) {
            self.cdn.remove(&old);
        }
        self.cdn.insert(param, CdnObject { ciphertext });
    }

    /// What every bounded list holds and has dropped.
    pub(crate) fn retention_stats(&self) -> Vec<ListStats> {
        let inbox: Vec<ListStats> = self.bots.values().map(|b| b.inbox.stats("inbox")).collect();
        let mut inbox_total = sum_stats("inbox", inbox.iter());
        inbox_total.cap_count = self.retention.inbox.count as u64;
        inbox_total.cap_bytes = self.retention.inbox.bytes as u64;
        let qr_cap = self.retention.qr_sessions;
        vec![
            self.inbound.stats("inbound"),
            self.delivered.stats("delivered"),
            self.dropped.stats("dropped"),
            self.typing_events.stats("typing_events"),
            self.uploads.stats("uploads"),
            self.requests.stats("requests"),
            inbox_total,
            self.cdn_order.stats("cdn"),
            self.upload_grant_order.stats("upload_grants"),
            self.ctx_token_order.stats("context_tokens"),
            self.client_id_order.stats("client_ids"),
            ListStats {
                name: "qr_sessions".to_owned(),
                len: self.qr_sessions.len() as u64,
                bytes: (self.qr_sessions.len() * 256) as u64,
                cap_count: qr_cap.count as u64,
                cap_bytes: qr_cap.bytes as u64,
                evicted: self.qr_evicted,
                evicted_bytes: self.qr_evicted * 256,
            },
        ]
    }

    /// A fresh server message id above 2^53.
    pub(crate) fn next_message_id(&mut self) -> u64 {
        self.next_id = self.next_id.saturating_add(1 + self.rng.below(4096));
        self.next_id
    }

    // ---- accounts -------------------------------------------------------------------

    /// Creates a bot account. With `user_id` and the one-bot-per-user rule, older bots of
    /// that user go stale.
    pub(crate) fn provision_bot(
        &mut self,
        config: &SimConfig,
        user_id: Option<&str>,
        now: u64,
    ) -> BotAccount {
        let bot_id = format!("{}@im.bot", self.rng.hex(6));
        let token = format!(
            "{}@im.bot:{}",
            bot_id.trim_end_matches("@im.bot"),
            self.rng.hex(24)
        );
        if let (Some(user), true) = (user_id, config.one_bot_per_user) {
            for bot in self.bots.values_mut() {
                if bot.account.user_id.as_deref() == Some(user) {
                    bot.stale = true;
                }
            }
        }
        let account = BotAccount {
            bot_id: bot_id.clone(),
            token: token.clone(),
            user_id: user_id.map(str::to_owned),
        };
        self.tokens.insert(token, bot_id.clone());
        self.bots.insert(
            bot_id,
            Bot {
                account: account.clone(),
                created_ms: now,
                stale: false,
                inbox: Bounded::new(self.retention.inbox),
                acked: 0,
                notify_started: 0,
                notify_stopped: 0,
            },
        );
        account
    }

    /// The bot a Bearer token belongs to, if the token is live.
    pub(crate) fn authenticate(
        &self,
        config: &SimConfig,
        token: Option<&str>,
        now: u64,
    ) -> Result<String, AuthError> {
        let token = token
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        let bot_id = self.tokens.get(token).ok_or(AuthError::Unknown)?;
        let bot = self.bots.get(bot_id).ok_or(AuthError::Unknown)?;
        let too_old = config.token_lifetime.is_some_and(|life| {
            now.saturating_sub(bot.created_ms)
                >= u64::try_from(life.as_millis()).unwrap_or(u64::MAX)
        });
        if bot.stale || too_old {
            return Err(AuthError::Stale);
        }
        Ok(bot_id.clone())
    }

    /// The bot a token was issued to, live or stale (for records of refused requests).
    pub(crate) fn bot_of_token(&self, token: Option<&str>) -> Option<String> {
        self.tokens.get(token?.trim()).cloned()
    }

    pub(crate) fn expire_token(&mut self, bot_id: &str) -> bool {
        match self.bots.get_mut(bot_id) {
            Some(bot) => {
                bot.stale = true;
                true
            }
            None => false,
        }
    }

    // ---- inbound --------------------------------------------------------------------

    fn new_context_token(&mut self) -> String {
        // Shaped like the live tokens: a fixed binary header then random bytes, base64.
        let mut raw = vec![0x00, 0x04, 0x73, 0x25, 0x60, 0x05, 0x00, 0x00, 0x01, 0x00];
        raw.extend(self.rng.bytes(86));
        STANDARD.encode(raw)
    }

    /// Queues an inbound message from `user_id` to `bot_id` with the given items.
    pub(crate) fn push_inbound(
        &mut self,
        bot_id: &str,
        user_id: &str,
        items: Vec<Value>,
        now: u64,
    ) -> Option<Inbound> {
        if !self.bots.contains_key(bot_id) {
            return None;
        }
        let message_id = self.next_message_id();
        let context_token = self.new_context_token();
        let client_id = format!(
            "mmassistant_bypmsg_inbox_{}mm{}@weclaw_2_{}",
            self.rng.hex(16),
            user_id.trim_end_matches("@im.wechat"),
            now / 1000
        );
        let items: Vec<Value> = items
            .into_iter()
            .map(|mut item| {
                if let Some(obj) = item.as_object_mut() {
                    let msg_id = format!("v1:{}", self.rng.next_u64() >> 1);
                    obj.entry("create_time_ms").or_insert(json!(now));
                    obj.entry("update_time_ms").or_insert(json!(now));
                    obj.entry("is_completed").or_insert(json!(true));
                    obj.entry("msg_id").or_insert(json!(msg_id));
                    obj.entry("button_item_list").or_insert(json!([]));
                    obj.entry("at_bot_username_list").or_insert(json!([]));
                }
                item
            })
            .collect();
        let bot = self.bots.get_mut(bot_id)?;
        let seq = bot.stream_len() + 1;
        let message = json!({
            "seq": seq,
            "message_id": message_id,
            "from_user_id": user_id,
            "to_user_id": bot_id,
            "client_id": client_id,
            "create_time_ms": now,
            "update_time_ms": now,
            "delete_time_ms": 0,
            "session_id": "",
            "group_id": "",
            "message_type": 1,
            "message_state": 2,
            "item_list": items,
            "context_token": context_token,
            "root_id": 0,
            "parent_id": 0,
        });
        bot.inbox.push(message.clone(), json_size(&message));
        let conv = self
            .convs
            .entry((bot_id.to_owned(), user_id.to_owned()))
            .or_default();
        conv.last_inbound_ms = now;
        conv.replies = 0;
        let size = str_size(&context_token) * 2 + str_size(bot_id) + str_size(user_id) + 32;
        for old in self.ctx_token_order.push(context_token.clone(), size) {
            self.ctx_tokens.remove(&old);
        }
        self.ctx_tokens.insert(
            context_token.clone(),
            (bot_id.to_owned(), user_id.to_owned(), now),
        );
        let inbound = Inbound {
            message_id,
            seq,
            from_user_id: user_id.to_owned(),
            bot_id: bot_id.to_owned(),
            context_token,
            message,
        };
        let size = json_size(&inbound.message) + str_size(&inbound.context_token) + 128;
        self.inbound.push(inbound.clone(), size);
        Some(inbound)
    }

    /// Queues a message exactly as given (for payloads the emulator would not make).
    pub(crate) fn push_raw(&mut self, bot_id: &str, message: Value) -> Option<u64> {
        let bot = self.bots.get_mut(bot_id)?;
        let size = json_size(&message);
        bot.inbox.push(message, size);
        Some(bot.stream_len())
    }

    /// Encrypts `plain` with a fresh key, stores it on the CDN and builds the `CDNMedia`
    /// object. Returns `(media, key)`.
    pub(crate) fn store_inbound_media(
        &mut self,
        config: &SimConfig,
        cdn_base: &str,
        plain: &[u8],
        aes_key_of_hex: bool,
    ) -> (Value, MediaKey) {
        let key = MediaKey::from_bytes(self.rng.key16());
        let ciphertext = ilink_crypto::encrypt(&key, plain);
        let param = self.rng.b64(48);
        self.insert_cdn_object(param.clone(), Bytes::from(ciphertext));
        let aes_key = if aes_key_of_hex {
            key.to_base64_of_hex()
        } else {
            key.to_base64()
        };
        let mut media = json!({
            "encrypt_query_param": param,
            "aes_key": aes_key,
            "encrypt_type": 1,
        });
        let n = self.inbound_media;
        self.inbound_media += 1;
        let full = match config.inbound_full_url {
            FullUrlMode::Never => false,
            FullUrlMode::Always => true,
            FullUrlMode::Alternate => n % 2 == 1,
            FullUrlMode::Random => self.rng.below(2) == 0,
        };
        if full && let Some(obj) = media.as_object_mut() {
            obj.insert(
                "full_url".into(),
                json!(format!(
                    "{cdn_base}/download?encrypted_query_param={}",
                    wire::percent_encode(&param)
                )),
            );
        }
        (media, key)
    }

    // ---- getupdates -----------------------------------------------------------------

    /// Where a poll with `cursor` starts, for `bot_id`.
    pub(crate) fn cursor_position(&mut self, bot_id: &str, cursor: &str) -> u64 {
        let Some(bot) = self.bots.get_mut(bot_id) else {
            return 0;
        };
        let len = bot.stream_len();
        match wire::decode_cursor(cursor) {
            Some((pos, owner)) if owner.split(':').next() == Some(bot_id) => {
                let pos = pos.min(len);
                bot.acked = bot.acked.max(pos);
                pos
            }
            // "" or a cursor this server did not make: resume after what was confirmed.
            _ => bot.acked.min(len),
        }
    }

    pub(crate) fn messages_from(&self, bot_id: &str, position: u64) -> (Vec<Value>, u64) {
        match self.bots.get(bot_id) {
            Some(bot) => {
                // Messages dropped by the cap are gone: resume at the oldest kept.
                let start = position.saturating_sub(bot.inbox.evicted());
                let start = usize::try_from(start).unwrap_or(usize::MAX);
                let msgs = bot.inbox.iter_from(start).cloned().collect();
                (msgs, bot.stream_len())
            }
            None => (Vec::new(), position),
        }
    }

    pub(crate) fn cursor_for(&self, bot_id: &str, position: u64, now: u64) -> String {
        let token = self
            .bots
            .get(bot_id)
            .map(|b| b.account.token.as_str())
            .unwrap_or_default();
        wire::encode_cursor(bot_id, token, position, now)
    }

    // ---- sendmessage ----------------------------------------------------------------

    fn drop_msg(
        &mut self,
        reason: DropReason,
        bot_id: Option<&str>,
        raw: &Value,
        answered: Value,
        now: u64,
    ) -> SendOutcome {
        let to_user_id = raw
            .get("msg")
            .and_then(|m| m.get("to_user_id"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let dropped = Dropped {
            reason: reason.clone(),
            bot_id: bot_id.map(str::to_owned),
            to_user_id,
            answered: answered.clone(),
            raw: raw.clone(),
            at_ms: now,
            original_len: None,
            delivered_len: None,
        };
        let size = json_size(&dropped.raw) + json_size(&dropped.answered) + 96;
        self.dropped.push(dropped, size);
        (answered, Err(reason))
    }

    /// Records a sendmessage that never reached the checks (bad token, injected fault).
    pub(crate) fn record_unprocessed_send(
        &mut self,
        reason: DropReason,
        bot_id: Option<&str>,
        raw: &Value,
        answered: Value,
        now: u64,
    ) {
        let _ = self.drop_msg(reason, bot_id, raw, answered, now);
    }

    /// Whether `token` is a context token issued to `bot_id` for `user` (any age).
    pub(crate) fn context_token_issued(&self, token: &str, bot_id: &str, user: &str) -> bool {
        self.ctx_tokens
            .get(token)
            .is_some_and(|(b, u, _)| b == bot_id && u == user)
    }

    /// Applies every rule of the live server to a sendmessage body from `bot_id`.
    pub(crate) fn send_message(
        &mut self,
        config: &SimConfig,
        bot_id: &str,
        raw: &Value,
        now: u64,
        problems: &mut Vec<String>,
    ) -> SendOutcome {
        let ok_no_id = json!({"ret": 0});
        let invalid = ret2(Some("invalid arguments"));
        let bot = Some(bot_id);
        if raw.is_null() {
            return self.drop_msg(DropReason::MalformedJson, bot, raw, invalid, now);
        }
        let Some(msg) = raw.get("msg").filter(|m| m.is_object()) else {
            return self.drop_msg(DropReason::MissingMsg, bot, raw, invalid, now);
        };
        if !raw.get("base_info").is_some_and(Value::is_object) {
            return self.drop_msg(DropReason::MissingBaseInfo, bot, raw, ok_no_id, now);
        }
        if msg.get("from_user_id").and_then(Value::as_str) != Some("") {
            return self.drop_msg(DropReason::FromUserIdNotEmpty, bot, raw, ok_no_id, now);
        }
        let client_id = match msg.get("client_id").and_then(Value::as_str) {
            Some(c) if !c.is_empty() => c.to_owned(),
            _ => return self.drop_msg(DropReason::MissingClientId, bot, raw, ok_no_id, now),
        };
        if msg.get("message_type").and_then(Value::as_i64) != Some(2) {
            return self.drop_msg(DropReason::WrongMessageType, bot, raw, ok_no_id, now);
        }
        if msg.get("message_state").and_then(Value::as_i64) != Some(2) {
            return self.drop_msg(DropReason::WrongMessageState, bot, raw, ok_no_id, now);
        }
        let to_user = match msg.get("to_user_id").and_then(Value::as_str) {
            Some(u) if !u.is_empty() => u.to_owned(),
            _ => return self.drop_msg(DropReason::MissingRecipient, bot, raw, invalid, now),
        };
        let item = match msg.get("item_list").and_then(Value::as_array) {
            None => return self.drop_msg(DropReason::NoItems, bot, raw, ok_no_id, now),
            Some(list) if list.is_empty() => {
                return self.drop_msg(DropReason::NoItems, bot, raw, ok_no_id, now);
            }
            Some(list) if list.len() > 1 => {
                return self.drop_msg(DropReason::MultipleItems, bot, raw, invalid, now);
            }
            Some(list) => list.first().cloned().unwrap_or(Value::Null),
        };
        if !item_is_valid(&item) {
            return self.drop_msg(DropReason::InvalidItem, bot, raw, invalid, now);
        }
        let context_token = msg
            .get("context_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        match &context_token {
            None if config.require_context_token => {
                return self.drop_msg(DropReason::MissingContextToken, bot, raw, ret2(None), now);
            }
            None => {}
            Some(tok) => {
                let issued = self
                    .ctx_tokens
                    .get(tok)
                    .filter(|(b, u, _)| b == bot_id && *u == to_user)
                    .map(|(_, _, at)| *at);
                let Some(issued) = issued else {
                    return self.drop_msg(
                        DropReason::InvalidContextToken,
                        bot,
                        raw,
                        ret2(Some("prepare failed")),
                        now,
                    );
                };
                let too_old = config.context_token_lifetime.is_some_and(|life| {
                    now.saturating_sub(issued) > u64::try_from(life.as_millis()).unwrap_or(u64::MAX)
                });
                if too_old {
                    return self.drop_msg(
                        DropReason::StaleContextToken,
                        bot,
                        raw,
                        ret2(Some("prepare failed")),
                        now,
                    );
                }
            }
        }
        if self
            .client_ids
            .contains(&(bot_id.to_owned(), client_id.clone()))
        {
            return self.drop_msg(DropReason::DuplicateClientId, bot, raw, ok_no_id, now);
        }
        let conv_key = (bot_id.to_owned(), to_user.clone());
        let (last_inbound, replies) = self
            .convs
            .get(&conv_key)
            .map(|c| (Some(c.last_inbound_ms), c.replies))
            .unwrap_or((None, 0));
        if let Some(window) = config.reply_window {
            let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
            // No conversation at all: the user never started one, so nothing may be sent.
            let expired = last_inbound.is_none_or(|t| now.saturating_sub(t) > window_ms);
            if expired {
                return self.drop_msg(DropReason::ReplyWindowExpired, bot, raw, ret2(None), now);
            }
        }
        if config.reply_limit.is_some_and(|limit| replies >= limit) {
            return self.drop_msg(DropReason::ReplyLimitReached, bot, raw, ret2(None), now);
        }
        let burst_counts = config.burst.is_some()
            && (config.burst_scope == BurstScope::AllMessages || media_of(&item).is_some());
        if let Some(burst) = config.burst.filter(|_| burst_counts) {
            let window_ms = u64::try_from(burst.window.as_millis()).unwrap_or(u64::MAX);
            let sends = self.sends.entry(bot_id.to_owned()).or_default();
            while sends
                .front()
                .is_some_and(|t| now.saturating_sub(*t) >= window_ms)
            {
                sends.pop_front();
            }
            if sends.len() >= usize::try_from(burst.max_sends).unwrap_or(usize::MAX) {
                return self.drop_msg(DropReason::Throttled, bot, raw, ret2(None), now);
            }
        }
        if let Err(reason) = self.check_media(&item, problems) {
            return self.drop_msg(reason, bot, raw, ok_no_id, now);
        }
        // The text cap: delivered cut, success answered, recorded (docs/protocol.md §16).
        let mut item = item;
        if let Some(cap) = config.text_cap
            && let Some((original, delivered)) = truncate_text_item(&mut item, cap)
        {
            let to_user_id = Some(to_user.clone());
            let dropped = Dropped {
                reason: DropReason::Truncated,
                bot_id: Some(bot_id.to_owned()),
                to_user_id,
                answered: json!({"ret": 0}),
                raw: raw.clone(),
                at_ms: now,
                original_len: Some(original),
                delivered_len: Some(delivered),
            };
            let size = json_size(&dropped.raw) + json_size(&dropped.answered) + 96;
            self.dropped.push(dropped, size);
        }
        // Delivered.
        let message_id = self.next_message_id();
        let key = (bot_id.to_owned(), client_id.clone());
        let size = str_size(&key.0) + str_size(&key.1) + 32;
        for old in self.client_id_order.push(key.clone(), size) {
            self.client_ids.remove(&old);
        }
        self.client_ids.insert(key);
        if burst_counts {
            self.sends
                .entry(bot_id.to_owned())
                .or_default()
                .push_back(now);
        }
        self.convs.entry(conv_key).or_default().replies += 1;
        let delivered = Delivered {
            message_id,
            bot_id: bot_id.to_owned(),
            to_user_id: to_user,
            client_id,
            context_token,
            run_id: msg.get("run_id").and_then(Value::as_str).map(str::to_owned),
            item,
            raw: raw.clone(),
            at_ms: now,
        };
        let size = json_size(&delivered.raw)
            + json_size(&delivered.item)
            + str_size(&delivered.client_id)
            + delivered.context_token.as_deref().map_or(0, str_size)
            + 96;
        self.delivered.push(delivered.clone(), size);
        (json!({"ret": 0, "message_id": message_id}), Ok(delivered))
    }

    /// Media in an outbound item must be on the CDN and decrypt with the item's key.
    fn check_media(&self, item: &Value, problems: &mut Vec<String>) -> Result<(), DropReason> {
        let Some(media) = media_of(item) else {
            return Ok(());
        };
        if media.get("encrypt_type").and_then(Value::as_i64) != Some(1) {
            problems.push(
                "media without encrypt_type: 1 (the official client always sends 1)".to_owned(),
            );
        }
        let param = media
            .get("encrypt_query_param")
            .and_then(Value::as_str)
            .ok_or(DropReason::MediaNotFound)?;
        let object = self.cdn.get(param).ok_or(DropReason::MediaNotFound)?;
        let key = media
            .get("aes_key")
            .and_then(Value::as_str)
            .ok_or(DropReason::MediaKeyInvalid)
            .and_then(|k| MediaKey::from_cdn_aes_key(k).map_err(|_| DropReason::MediaKeyInvalid))?;
        let (plain_len, _) = scan_plaintext(&key, &object.ciphertext, false)
            .map_err(|_| DropReason::MediaUndecryptable)?;
        // Sizes the official client declares; a mismatch is reported, not dropped (the
        // live server's reaction is unknown).
        let ct_len = object.ciphertext.len() as u64;
        let declared = |outer: &str, field: &str| item.get(outer).and_then(|o| o.get(field));
        for (outer, field) in [("image_item", "mid_size"), ("video_item", "video_size")] {
            if let Some(v) = declared(outer, field)
                && v.as_u64() != Some(ct_len)
            {
                problems.push(format!(
                    "{outer}.{field} {v} is not the ciphertext size {ct_len}"
                ));
            }
        }
        if item.get("file_item").is_some() {
            match declared("file_item", "len") {
                Some(Value::String(s)) if s.parse::<u64>().ok() == Some(plain_len) => {}
                Some(Value::String(s)) => problems.push(format!(
                    "file_item.len {s:?} is not the plaintext size {plain_len}"
                )),
                Some(v) => {
                    problems.push(format!("file_item.len must be a decimal string, got {v}"))
                }
                None => problems.push("file_item without len".to_owned()),
            }
            if !declared("file_item", "file_name").is_some_and(Value::is_string) {
                problems.push("file_item without file_name".to_owned());
            }
        }
        Ok(())
    }

    // ---- getconfig / sendtyping -----------------------------------------------------

    pub(crate) fn typing_ticket(&mut self, bot_id: &str, user_id: &str) -> String {
        let existing = self
            .typing_tickets
            .iter()
            .find(|(_, (b, u))| b == bot_id && u == user_id)
            .map(|(t, _)| t.clone());
        if let Some(t) = existing {
            return t;
        }
        let ticket = self.rng.b64(33);
        self.typing_tickets
            .insert(ticket.clone(), (bot_id.to_owned(), user_id.to_owned()));
        ticket
    }

    pub(crate) fn ticket_valid(&self, ticket: &str, bot_id: &str, user_id: &str) -> bool {
        self.typing_tickets
            .get(ticket)
            .is_some_and(|(b, u)| b == bot_id && u == user_id)
    }
}

/// The `CDNMedia` of an image, voice, file or video item.
pub(crate) fn media_of(item: &Value) -> Option<&Value> {
    ["image_item", "voice_item", "file_item", "video_item"]
        .iter()
        .find_map(|k| item.get(*k))
        .and_then(|m| m.get("media"))
}

/// An item must carry the content its `type` names, and only that.
/// Cuts the text of a text item to at most `cap` UTF-16 code units (at a character boundary,
/// so a surrogate pair is never split). Returns the original and delivered lengths when it cut.
fn truncate_text_item(item: &mut Value, cap: usize) -> Option<(u64, u64)> {
    let text = item.get_mut("text_item")?.get_mut("text")?;
    let s = text.as_str()?;
    let original = s.encode_utf16().count();
    if original <= cap {
        return None;
    }
    let mut units = 0usize;
    let mut end = 0usize;
    for (i, c) in s.char_indices() {
        if units + c.len_utf16() > cap {
            break;
        }
        units += c.len_utf16();
        end = i + c.len_utf8();
    }
    let cut = s.get(..end).unwrap_or_default().to_owned();
    *text = Value::String(cut);
    Some((original as u64, units as u64))
}

fn item_is_valid(item: &Value) -> bool {
    let kinds = [
        (1, "text_item"),
        (2, "image_item"),
        (3, "voice_item"),
        (4, "file_item"),
        (5, "video_item"),
        (11, "tool_call_start_item"),
        (12, "tool_call_result_item"),
    ];
    let Some(ty) = item.get("type").and_then(Value::as_u64) else {
        return false;
    };
    let present: Vec<u64> = kinds
        .iter()
        .filter(|(_, k)| item.get(*k).is_some_and(Value::is_object))
        .map(|(t, _)| *t)
        .collect();
    if present != [ty] {
        return false;
    }
    match ty {
        1 => item
            .get("text_item")
            .and_then(|t| t.get("text"))
            .and_then(Value::as_str)
            .is_some_and(|t| !t.is_empty()),
        2..=5 => media_of(item).is_some_and(Value::is_object),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_validation() {
        assert!(item_is_valid(&json!({"type":1,"text_item":{"text":"hi"}})));
        assert!(!item_is_valid(&json!({"type":1,"text_item":{"text":""}})));
        assert!(!item_is_valid(&json!({"type":2,"text_item":{"text":"hi"}})));
        assert!(!item_is_valid(
            &json!({"type":1,"text_item":{"text":"hi"},"image_item":{"media":{}}})
        ));
        assert!(item_is_valid(
            &json!({"type":2,"image_item":{"media":{"encrypt_query_param":"x"}}})
        ));
    }

    #[test]
    fn message_ids_exceed_2_pow_53() {
        let mut s = State::new(&SimConfig::default());
        let a = s.next_message_id();
        let b = s.next_message_id();
        assert!(a > 1 << 53);
        assert!(b > a);
    }
}
