//! Bounded lists: everything the emulator remembers has a cap in entries and in bytes, drops
//! its oldest entries first, and counts what it dropped (so a soak test runs in flat memory).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A cap on one list the emulator keeps: at most `count` entries and about `bytes` bytes
/// (estimated: the heap the entry's strings and JSON hold, not allocator overhead).
/// When a new entry would pass either, the oldest entries are dropped first; the newest
/// entry is always kept, even if it alone is larger than `bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cap {
    /// Most entries kept.
    pub count: usize,
    /// Most bytes kept (estimated).
    pub bytes: usize,
}

impl Cap {
    /// A cap of `count` entries and `bytes` bytes.
    pub const fn new(count: usize, bytes: usize) -> Self {
        Self { count, bytes }
    }

    /// No cap (for tests that want to keep everything; memory then grows with traffic).
    pub const UNBOUNDED: Self = Self {
        count: usize::MAX,
        bytes: usize::MAX,
    };
}

const MIB: usize = 1024 * 1024;

/// How much the emulator remembers: one [`Cap`] per list ([`SimConfig::retention`](crate::SimConfig::retention)).
///
/// Nothing here is a protocol fact: these bound the emulator's own memory. The defaults keep
/// more than any test reads (20,000 records of each kind, 20,000 messages per bot's update
/// stream) and cap the lists at about 400 MiB of records plus 1 GiB of CDN objects; a soak of a
/// million messages stays flat (BENCHMARKS.md). What was dropped is counted in
/// [`Sim::retention_stats`](crate::Sim::retention_stats) and `GET /_sim/memory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// [`Sim::inbound`](crate::Sim::inbound): messages scripted users sent.
    pub inbound: Cap,
    /// [`Sim::delivered`](crate::Sim::delivered): messages the emulator delivered.
    pub delivered: Cap,
    /// [`Sim::dropped`](crate::Sim::dropped): sendmessage requests answered but not delivered.
    pub dropped: Cap,
    /// [`Sim::typing_events`](crate::Sim::typing_events).
    pub typing_events: Cap,
    /// [`Sim::uploads`](crate::Sim::uploads): CDN upload attempts.
    pub uploads: Cap,
    /// Each bot's update stream (what `getupdates` serves). A client whose cursor points
    /// before the oldest kept message resumes at the oldest kept one.
    pub inbox: Cap,
    /// Objects on the emulated CDN (uploads and inbound media); a dropped object answers 404.
    pub cdn: Cap,
    /// Upload grants (`getuploadurl` answers not yet used or still retryable).
    pub upload_grants: Cap,
    /// `context_token`s issued; a dropped one answers like an unknown one (`"prepare failed"`).
    pub context_tokens: Cap,
    /// `client_id`s remembered to refuse duplicates ([`DropReason::DuplicateClientId`](crate::DropReason::DuplicateClientId)).
    pub client_ids: Cap,
    /// QR codes issued.
    pub qr_sessions: Cap,
}

impl Default for Retention {
    fn default() -> Self {
        let records = Cap::new(20_000, 64 * MIB);
        Self {
            inbound: records,
            delivered: records,
            dropped: records,
            typing_events: Cap::new(20_000, 8 * MIB),
            uploads: Cap::new(10_000, 8 * MIB),
            inbox: Cap::new(20_000, 64 * MIB),
            cdn: Cap::new(10_000, 1024 * MIB),
            upload_grants: Cap::new(10_000, 16 * MIB),
            context_tokens: Cap::new(50_000, 16 * MIB),
            client_ids: Cap::new(50_000, 8 * MIB),
            qr_sessions: Cap::new(1_000, 4 * MIB),
        }
    }
}

impl Retention {
    /// Every list unbounded (memory then grows with traffic, as before caps existed).
    pub const UNBOUNDED: Self = Self {
        inbound: Cap::UNBOUNDED,
        delivered: Cap::UNBOUNDED,
        dropped: Cap::UNBOUNDED,
        typing_events: Cap::UNBOUNDED,
        uploads: Cap::UNBOUNDED,
        inbox: Cap::UNBOUNDED,
        cdn: Cap::UNBOUNDED,
        upload_grants: Cap::UNBOUNDED,
        context_tokens: Cap::UNBOUNDED,
        client_ids: Cap::UNBOUNDED,
        qr_sessions: Cap::UNBOUNDED,
    };

    /// Every record list (inbound, delivered, dropped, typing events, uploads) capped at
    /// `count` entries, keeping the byte caps. (The request log has its own caps:
    /// [`SimConfig::max_logged_requests`](crate::SimConfig::max_logged_requests) and
    /// [`SimConfig::max_logged_request_bytes`](crate::SimConfig::max_logged_request_bytes).)
    #[must_use]
    pub fn with_record_count(mut self, count: usize) -> Self {
        for cap in [
            &mut self.inbound,
            &mut self.delivered,
            &mut self.dropped,
            &mut self.typing_events,
            &mut self.uploads,
        ] {
            cap.count = count;
        }
        self
    }
}

/// What one bounded list holds and has dropped ([`Sim::retention_stats`](crate::Sim::retention_stats)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListStats {
    /// The list: `"inbound"`, `"delivered"`, `"dropped"`, `"typing_events"`, `"uploads"`,
    /// `"requests"`, `"inbox"` (all bots together), `"cdn"`, `"upload_grants"`,
    /// `"context_tokens"`, `"client_ids"`, `"qr_sessions"`.
    pub name: String,
    /// Entries kept now.
    pub len: u64,
    /// Bytes kept now (estimated).
    pub bytes: u64,
    /// The cap in entries (per bot for `"inbox"`).
    pub cap_count: u64,
    /// The cap in bytes (per bot for `"inbox"`).
    pub cap_bytes: u64,
    /// Entries dropped to stay under the cap, since the start.
    pub evicted: u64,
    /// Bytes dropped to stay under the cap, since the start.
    pub evicted_bytes: u64,
}

/// A FIFO list with a [`Cap`].
pub(crate) struct Bounded<T> {
    items: VecDeque<(T, usize)>,
    bytes: usize,
    cap: Cap,
    evicted: u64,
    evicted_bytes: u64,
}

impl<T> Bounded<T> {
    pub(crate) fn new(cap: Cap) -> Self {
        Self {
            items: VecDeque::new(),
            bytes: 0,
            cap,
            evicted: 0,
            evicted_bytes: 0,
        }
    }

    /// Appends `item` of `size` bytes and returns what had to be dropped, oldest first.
    pub(crate) fn push(&mut self, item: T, size: usize) -> Vec<T> {
        let mut out = Vec::new();
        let count = self.cap.count.max(1);
        while !self.items.is_empty()
            && (self.items.len() >= count || self.bytes.saturating_add(size) > self.cap.bytes)
        {
            if let Some(old) = self.pop_front() {
                out.push(old);
            }
        }
        self.bytes = self.bytes.saturating_add(size);
        self.items.push_back((item, size));
        out
    }

    fn pop_front(&mut self) -> Option<T> {
        let (old, size) = self.items.pop_front()?;
        self.bytes = self.bytes.saturating_sub(size);
        self.evicted += 1;
        self.evicted_bytes = self.evicted_bytes.saturating_add(size as u64);
        Some(old)
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// Entries dropped since the start (for the update stream: the position of the oldest
    /// entry kept).
    pub(crate) fn evicted(&self) -> u64 {
        self.evicted
    }

    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + ExactSizeIterator {
        self.items.iter().map(|(t, _)| t)
    }

    pub(crate) fn iter_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut T> {
        self.items.iter_mut().map(|(t, _)| t)
    }

    /// The entries from index `start` on.
    pub(crate) fn iter_from(&self, start: usize) -> impl Iterator<Item = &T> {
        self.items.iter().skip(start).map(|(t, _)| t)
    }

    pub(crate) fn to_vec(&self) -> Vec<T>
    where
        T: Clone,
    {
        self.iter().cloned().collect()
    }

    /// Forgets every entry (not counted as evicted: the caller asked for it).
    pub(crate) fn clear(&mut self) {
        self.items.clear();
        self.bytes = 0;
    }

    /// Adds to the size of the newest entry (an entry that grew after it was pushed).
    pub(crate) fn grow_last(&mut self, by: usize) {
        if let Some((_, size)) = self.items.back_mut() {
            *size = size.saturating_add(by);
            self.bytes = self.bytes.saturating_add(by);
        }
    }

    pub(crate) fn stats(&self, name: &str) -> ListStats {
        ListStats {
            name: name.to_owned(),
            len: self.items.len() as u64,
            bytes: self.bytes as u64,
            cap_count: self.cap.count as u64,
            cap_bytes: self.cap.bytes as u64,
            evicted: self.evicted,
            evicted_bytes: self.evicted_bytes,
        }
    }
}

impl<T: Serialize> Serialize for Bounded<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

/// Sums the stats of several lists of the same kind (every bot's update stream).
pub(crate) fn sum_stats<'a>(name: &str, lists: impl Iterator<Item = &'a ListStats>) -> ListStats {
    let mut total = ListStats {
        name: name.to_owned(),
        len: 0,
        bytes: 0,
        cap_count: 0,
        cap_bytes: 0,
        evicted: 0,
        evicted_bytes: 0,
    };
    for s in lists {
        total.len += s.len;
        total.bytes = total.bytes.saturating_add(s.bytes);
        total.cap_count = s.cap_count;
        total.cap_bytes = s.cap_bytes;
        total.evicted += s.evicted;
        total.evicted_bytes = total.evicted_bytes.saturating_add(s.evicted_bytes);
    }
    total
}

/// Heap bytes a string holds, plus its header.
pub(crate) fn str_size(s: &str) -> usize {
    s.len() + 24
}

/// Bytes a JSON value holds, estimated from serde_json's layout: a `Value` is 32 bytes inline,
/// strings and arrays own a heap buffer, and a map (a `BTreeMap`) holds its entries in nodes of
/// 11 slots of about 600 bytes each.
pub(crate) fn json_size(v: &Value) -> usize {
    32 + json_heap(v)
}

fn json_heap(v: &Value) -> usize {
    const NODE: usize = 640;
    match v {
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        Value::String(s) => s.len(),
        Value::Array(a) => a.len() * 32 + a.iter().map(json_heap).sum::<usize>(),
        Value::Object(o) => {
            o.len().div_ceil(11).max(1) * NODE
                + o.iter().map(|(k, v)| k.len() + json_heap(v)).sum::<usize>()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_oldest_first_by_count_and_by_bytes() {
        let mut b = Bounded::new(Cap::new(3, 100));
        for i in 0..5 {
            b.push(i, 10);
        }
        assert_eq!(b.to_vec(), vec![2, 3, 4]);
        assert_eq!(b.evicted(), 2);
        // 60 bytes more: 30 + 60 = 90 fits after dropping nothing? count cap drops one.
        let out = b.push(5, 60);
        assert_eq!(out, vec![2]);
        // Another 60: only the newest fits, oldest go first.
        let out = b.push(6, 60);
        assert_eq!(out, vec![3, 4, 5]);
        assert_eq!(b.to_vec(), vec![6]);
        assert_eq!(b.stats("x").evicted, 6);
        assert_eq!(b.stats("x").bytes, 60);
    }

    #[test]
    fn an_entry_larger_than_the_byte_cap_is_still_kept() {
        let mut b = Bounded::new(Cap::new(10, 5));
        b.push("a", 3);
        let out = b.push("big", 50);
        assert_eq!(out, vec!["a"]);
        assert_eq!(b.to_vec(), vec!["big"]);
    }

    #[test]
    fn json_size_grows_with_content() {
        let small = json_size(&serde_json::json!({"a": "x"}));
        let big = json_size(&serde_json::json!({"a": "x".repeat(1000)}));
        assert!(big >= small + 999);
    }
}
