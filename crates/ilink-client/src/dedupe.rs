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
#[derive(Debug)]
pub(crate) struct Dedupe {
    set: HashSet<String>,
    order: VecDeque<String>,
    cap: usize,
}

impl Dedupe {
    pub(crate) fn new(cap: usize, keys: Vec<String>) -> Self {
        let mut d = Self {
            set: HashSet::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
        };
        for k in keys {
            d.insert(k);
        }
        d
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
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
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
    fn bounded() {
        let mut d = Dedupe::new(2, vec!["a".into()]);
        assert!(d.contains("a"));
        assert!(!d.insert("a".into()));
        assert!(d.insert("b".into()));
        assert!(d.insert("c".into()));
        assert!(!d.contains("a"));
        assert_eq!(d.keys(), vec!["b".to_owned(), "c".to_owned()]);
    }
}
