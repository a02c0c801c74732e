//! Inbound dedupe: a bounded set of the keys of messages already handled (docs/protocol.md §16,
//! redelivery).
//!
//! A message is a copy of one already handled when **any** of its strong keys was seen: the
//! same `message_id`, the same `client_id`, or the same sender and `seq`. A redelivered copy
//! that differs only in `message_id` (reported live: the same text twice, seconds apart, with a
//! new `message_id`) is recognised by its `client_id` or `seq`. A message that carries none of
//! these is a copy when the same sender sent the same content within [`CONTENT_WINDOW_MS`].
//! A real repeat by the user (the same text later, with new ids) is not a copy.

use std::collections::{HashMap, HashSet, VecDeque};

use ilink_proto::WeixinMessage;
use serde_json::Value;

/// How long a message without strong keys counts as a copy of one with the same sender and
/// content: 60 s, in ms. Copies were reported seconds apart.
pub(crate) const CONTENT_WINDOW_MS: i64 = 60_000;

/// Journal entries one message can add (its strong keys, or one content entry).
pub(crate) const KEYS_PER_MESSAGE: usize = 3;

/// The dedupe keys of one inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MessageKeys {
    /// `m:<message_id>`, `c:<client_id>`, `s:<from>:<seq>`, those present.
    pub(crate) strong: Vec<String>,
    /// `f:<hash of sender and content>`; used only when `strong` is empty.
    pub(crate) content: String,
}

impl MessageKeys {
    /// The key that names the message: its first strong key, else its content key.
    pub(crate) fn primary(&self) -> &str {
        self.strong
            .first()
            .map_or(self.content.as_str(), String::as_str)
    }
}

/// The keys of `msg`.
pub(crate) fn message_keys(msg: &WeixinMessage) -> MessageKeys {
    let mut strong = Vec::new();
    if let Some(id) = &msg.message_id
        && !id.as_str().is_empty()
        && id.as_str() != "0"
    {
        strong.push(format!("m:{}", id.as_str()));
    }
    if let Some(c) = msg.client_id.as_deref().filter(|c| !c.is_empty()) {
        strong.push(format!("c:{c}"));
    }
    let from = msg.from_user_id.as_deref().unwrap_or("");
    if let Some(seq) = msg.seq.filter(|&s| s != 0) {
        strong.push(format!("s:{from}:{seq}"));
    }
    MessageKeys {
        strong,
        content: content_key(msg),
    }
}

/// Sender and content, without the per-copy fields (ids and times of items).
fn content_key(msg: &WeixinMessage) -> String {
    let from = msg.from_user_id.as_deref().unwrap_or("");
    let mut items = serde_json::to_value(&msg.item_list).unwrap_or(Value::Null);
    strip_copy_fields(&mut items);
    let items = serde_json::to_vec(&items).unwrap_or_default();
    let h = crate::util::fnv1a(&[from.as_bytes(), &items]);
    format!("f:{h:016x}")
}

fn strip_copy_fields(v: &mut Value) {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(o) => {
                for k in ["msg_id", "create_time_ms", "update_time_ms", "svr_id"] {
                    o.remove(k);
                }
                stack.extend(o.values_mut());
            }
            Value::Array(a) => stack.extend(a.iter_mut()),
            _ => {}
        }
    }
}

/// A bounded FIFO set of journal entries: strong keys, and content entries
/// `f:<hash>@<epoch ms>`.
///
/// It keeps at least `cap` entries, and never fewer than `floor`: the caller raises the floor
/// so that the keys of every message that can still come again (the batch in progress and the
/// one before it, which a lost response or a restart replays) are never forgotten, however
/// large a batch is.
#[derive(Debug)]
pub(crate) struct Dedupe {
    strong: HashSet<String>,
    content: HashMap<String, i64>,
    order: VecDeque<String>,
    cap: usize,
    floor: usize,
}

impl Dedupe {
    /// A set of `cap` messages holding `entries` (the persisted journal, oldest first). All of
    /// them are kept until [`Dedupe::set_floor`] is called: they were saved under an earlier
    /// floor.
    pub(crate) fn new(cap: usize, entries: Vec<String>) -> Self {
        let mut d = Self {
            strong: HashSet::new(),
            content: HashMap::new(),
            order: VecDeque::new(),
            cap: cap.max(1).saturating_mul(KEYS_PER_MESSAGE),
            floor: entries.len(),
        };
        for e in entries {
            d.push(e);
        }
        d
    }

    /// Keep the entries of at least `messages` messages (the most recent ones) from now on,
    /// and trim to the new bound.
    pub(crate) fn set_floor(&mut self, messages: usize) {
        self.floor = messages.saturating_mul(KEYS_PER_MESSAGE);
        self.trim();
    }

    fn trim(&mut self) {
        let keep = self.cap.max(self.floor);
        while self.order.len() > keep {
            if let Some(old) = self.order.pop_front() {
                match parse_content(&old) {
                    Some((hash, ms)) => {
                        if self.content.get(hash) == Some(&ms) {
                            self.content.remove(hash);
                        }
                    }
                    None => {
                        self.strong.remove(&old);
                    }
                }
            }
        }
    }

    /// Whether a message with `keys`, arriving at `now_ms`, is a copy of one handled.
    pub(crate) fn is_copy(&self, keys: &MessageKeys, now_ms: i64) -> bool {
        if keys.strong.is_empty() {
            return self
                .content
                .get(&keys.content)
                .is_some_and(|&seen| now_ms.saturating_sub(seen) <= CONTENT_WINDOW_MS);
        }
        keys.strong.iter().any(|k| self.strong.contains(k))
    }

    /// Remember a handled message; returns the new journal entries (empty if all were known).
    pub(crate) fn record(&mut self, keys: &MessageKeys, now_ms: i64) -> Vec<String> {
        let entries: Vec<String> = if keys.strong.is_empty() {
            vec![format!("{}@{now_ms}", keys.content)]
        } else {
            keys.strong
                .iter()
                .filter(|k| !self.strong.contains(*k))
                .cloned()
                .collect()
        };
        for e in &entries {
            self.push(e.clone());
        }
        self.trim();
        entries
    }

    fn push(&mut self, entry: String) {
        match parse_content(&entry) {
            Some((hash, ms)) => {
                let seen = self.content.entry(hash.to_owned()).or_insert(ms);
                *seen = (*seen).max(ms);
            }
            None => {
                if !self.strong.insert(entry.clone()) {
                    return;
                }
            }
        }
        self.order.push_back(entry);
    }

    /// The entries, oldest first (what a compacted journal holds).
    pub(crate) fn entries(&self) -> Vec<String> {
        self.order.iter().cloned().collect()
    }

    /// Number of entries held.
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }
}

/// `f:<hash>@<ms>` → (`f:<hash>`, ms).
fn parse_content(entry: &str) -> Option<(&str, i64)> {
    if !entry.starts_with("f:") {
        return None;
    }
    let (hash, ms) = entry.rsplit_once('@')?;
    Some((hash, ms.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ilink_proto::{MessageItem, WireId};

    fn text(from: &str, t: &str) -> WeixinMessage {
        WeixinMessage {
            from_user_id: Some(from.into()),
            item_list: Some(vec![MessageItem::text(t)]),
            create_time_ms: Some(5),
            ..Default::default()
        }
    }

    #[test]
    fn keys_of_a_message() {
        let mut m = text("u@im.wechat", "hi");
        let k = message_keys(&m);
        assert!(k.strong.is_empty());
        assert!(k.primary().starts_with("f:"));
        m.seq = Some(7);
        m.client_id = Some("cid".into());
        m.message_id = Some(WireId::from_u64(7448678501208393123));
        let k = message_keys(&m);
        assert_eq!(
            k.strong,
            vec!["m:7448678501208393123", "c:cid", "s:u@im.wechat:7"]
        );
        assert_eq!(k.primary(), "m:7448678501208393123");
    }

    #[test]
    fn a_copy_is_recognised_by_any_strong_key() {
        let mut d = Dedupe::new(16, vec![]);
        let mut first = text("u@im.wechat", "hi");
        first.seq = Some(41);
        first.message_id = Some(WireId::from_u64(7461000000000000041));
        first.client_id = Some("srv-cid-41".into());
        d.record(&message_keys(&first), 0);
        // Only the message_id changed: a copy (by client_id and seq).
        let mut copy = first.clone();
        copy.message_id = Some(WireId::from_u64(7461000000000000042));
        assert!(d.is_copy(&message_keys(&copy), 3_000));
        // Only the seq kept: still a copy.
        copy.client_id = None;
        assert!(d.is_copy(&message_keys(&copy), 3_000));
        // Every id new: a real repeat, not a copy, whatever the content.
        let mut again = first.clone();
        again.seq = Some(42);
        again.message_id = Some(WireId::from_u64(7461000000000000043));
        again.client_id = Some("srv-cid-43".into());
        assert!(!d.is_copy(&message_keys(&again), 3_000));
    }

    #[test]
    fn without_ids_the_content_counts_within_the_window() {
        let mut d = Dedupe::new(16, vec![]);
        let m = text("u@im.wechat", "hi");
        let mut moved = m.clone();
        moved.create_time_ms = Some(9_999);
        d.record(&message_keys(&m), 1_000);
        assert!(d.is_copy(&message_keys(&moved), 1_000 + CONTENT_WINDOW_MS));
        assert!(!d.is_copy(&message_keys(&moved), 1_001 + CONTENT_WINDOW_MS));
        assert!(!d.is_copy(&message_keys(&text("u@im.wechat", "other")), 1_000));
        assert!(!d.is_copy(&message_keys(&text("v@im.wechat", "hi")), 1_000));
        // Persisted entries load back with their time.
        let d2 = Dedupe::new(16, d.entries());
        assert!(d2.is_copy(&message_keys(&m), 2_000));
    }

    #[test]
    fn the_floor_keeps_a_large_batch() {
        // Loaded entries are all kept, even beyond the capacity (1 message = 3 entries).
        let mut d = Dedupe::new(1, (0..5).map(|i| format!("k{i}")).collect());
        assert!((0..5).all(|i| d.strong.contains(&format!("k{i}"))));
        d.set_floor(1);
        assert_eq!(d.entries(), vec!["k2", "k3", "k4"]);
        d.set_floor(0);
        assert_eq!(d.len(), 3);
    }

    #[test]
    fn bounded() {
        let mut d = Dedupe::new(1, vec![]);
        let keys = |i: u64| MessageKeys {
            strong: vec![format!("m:{i}")],
            content: String::new(),
        };
        for i in 0..5 {
            assert_eq!(d.record(&keys(i), 0), vec![format!("m:{i}")]);
        }
        assert!(d.record(&keys(4), 0).is_empty());
        assert_eq!(d.entries(), vec!["m:2", "m:3", "m:4"]);
        assert!(!d.is_copy(&keys(1), 0));
        assert!(d.is_copy(&keys(2), 0));
    }
}
