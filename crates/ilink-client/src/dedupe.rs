//! Inbound dedupe: a bounded set of keys of messages already handled.

use std::collections::{HashSet, VecDeque};

use ilink_proto::WeixinMessage;

/// The dedupe key of an inbound message: its `message_id`, else its `client_id`, else its
/// sender and `seq`, else a fingerprint of sender, time and content.
pub(crate) fn message_key(msg: &WeixinMessage) -> String {
    if let Some(id) = &msg.message_id
        && !id.as_str().is_empty()
        && id.as_str() != "0"
    {
        return format!("m:{}", id.as_str());
    }
    if let Some(c) = msg.client_id.as_deref().filter(|c| !c.is_empty()) {
        return format!("c:{c}");
    }
    let from = msg.from_user_id.as_deref().unwrap_or("");
    if let Some(seq) = msg.seq.filter(|&s| s != 0) {
        return format!("s:{from}:{seq}");
    }
    let items = serde_json::to_vec(&msg.item_list).unwrap_or_default();
    let time = msg.create_time_ms.unwrap_or(0).to_string();
    let h = crate::util::fnv1a(&[from.as_bytes(), time.as_bytes(), &items]);
    format!("f:{h:016x}")
}

/// A bounded FIFO set of keys.
///
/// It keeps at least `cap` keys, and never fewer than `floor`: the caller raises the floor so
/// that the keys of every message that can still come again (the batch in progress and the
/// one before it, which a lost response or a restart replays) are never forgotten, however
/// large a batch is. Evicting one of those keys would let a replayed batch through again
/// (and each re-handled key would evict the next one).
#[derive(Debug)]
pub(crate) struct Dedupe {
    set: HashSet<String>,
    order: VecDeque<String>,
    cap: usize,
    floor: usize,
}

impl Dedupe {
    /// A set holding `keys` (the persisted tombstones, oldest first). All of them are kept
    /// until [`Dedupe::set_floor`] is called: they were saved under an earlier floor.
    pub(crate) fn new(cap: usize, keys: Vec<String>) -> Self {
        let mut d = Self {
            set: HashSet::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
            floor: keys.len(),
        };
        for k in keys {
            d.insert(k);
        }
        d
    }

    /// Keep at least `floor` keys (the most recent ones) from now on, and trim to the new
    /// bound.
    pub(crate) fn set_floor(&mut self, floor: usize) {
        self.floor = floor;
        self.trim();
    }

    fn trim(&mut self) {
        let keep = self.cap.max(self.floor);
        while self.order.len() > keep {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }

    pub(crate) fn contains(&self, key: &str) -> bool {
        self.set.contains(key)
    }

    /// Remember a key; the oldest is forgotten past the capacity. Returns false if known.
    pub(crate) fn insert(&mut self, key: String) -> bool {
        if self.set.contains(&key) {
            return false;
        }
        self.set.insert(key.clone());
        self.order.push_back(key);
        self.trim();
        true
    }

    pub(crate) fn keys(&self) -> Vec<String> {
        self.order.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ilink_proto::{MessageItem, WireId};

    #[test]
    fn key_precedence() {
        let mut m = WeixinMessage {
            from_user_id: Some("u@im.wechat".into()),
            item_list: Some(vec![MessageItem::text("hi")]),
            create_time_ms: Some(5),
            ..Default::default()
        };
        let f = message_key(&m);
        assert!(f.starts_with("f:"), "{f}");
        assert_eq!(f, message_key(&m.clone()));
        m.seq = Some(7);
        assert_eq!(message_key(&m), "s:u@im.wechat:7");
        m.client_id = Some("cid".into());
        assert_eq!(message_key(&m), "c:cid");
        m.message_id = Some(WireId::from_u64(7448678501208393123));
        assert_eq!(message_key(&m), "m:7448678501208393123");
    }

    #[test]
    fn fingerprint_differs_by_content() {
        let a = WeixinMessage {
            item_list: Some(vec![MessageItem::text("a")]),
            ..Default::default()
        };
        let b = WeixinMessage {
            item_list: Some(vec![MessageItem::text("b")]),
            ..Default::default()
        };
        assert_ne!(message_key(&a), message_key(&b));
    }

    #[test]
    fn the_floor_keeps_a_large_batch() {
        // Loaded keys are all kept, even beyond the capacity.
        let mut d = Dedupe::new(2, (0..5).map(|i| format!("k{i}")).collect());
        assert!((0..5).all(|i| d.contains(&format!("k{i}"))));
        // A batch of 4 after one of 0: keep at least 4.
        d.set_floor(4);
        assert_eq!(d.keys(), vec!["k1", "k2", "k3", "k4"]);
        for i in 5..9 {
            d.insert(format!("k{i}"));
        }
        assert_eq!(d.keys(), vec!["k5", "k6", "k7", "k8"]);
        // Back to small batches: down to the capacity.
        d.set_floor(1);
        assert_eq!(d.keys(), vec!["k7", "k8"]);
    }

    #[test]
    fn bounded() {
        let mut d = Dedupe::new(2, vec![]);
        d.insert("a".into());
        assert!(d.contains("a"));
        assert!(!d.insert("a".into()));
        assert!(d.insert("b".into()));
        assert!(d.insert("c".into()));
        assert!(!d.contains("a"));
        assert_eq!(d.keys(), vec!["b".to_owned(), "c".to_owned()]);
    }
}
