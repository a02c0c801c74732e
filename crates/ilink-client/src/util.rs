//! Small helpers: randomness, clocks, ids.

use std::time::{SystemTime, UNIX_EPOCH};

/// `n` random bytes as lowercase hex (`2n` characters).
pub(crate) fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    fill_random(&mut buf);
    hex::encode(buf)
}

/// A random u32.
pub(crate) fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    fill_random(&mut b);
    u32::from_be_bytes(b)
}

/// A random u64.
pub(crate) fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    fill_random(&mut b);
    u64::from_be_bytes(b)
}

fn fill_random(buf: &mut [u8]) {
    if getrandom::fill(buf).is_err() {
        // The OS RNG is unavailable: fall back to time-seeded xorshift. These values are
        // identifiers (client ids, UIN header), never keys.
        let mut x =
            now_ms() ^ u64::from(std::process::id()).rotate_left(32) ^ 0x9E37_79B9_7F4A_7C15;
        for b in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A new `client_id`: `<prefix>:<epoch-ms>-<8 lowercase hex>` (docs/protocol.md §9).
pub(crate) fn new_client_id(prefix: &str) -> String {
    format!("{prefix}:{}-{}", now_ms(), random_hex(4))
}

/// The `client_id` of one part of one reply of an inbound turn, the same every time it is made:
/// `<prefix>:<digits>-<8 lowercase hex>` like [`new_client_id`] (docs/protocol.md §9), where
/// the digits are the inbound message's `create_time_ms` (else a number taken from the hash) and
/// the hex is a hash of (account, the message's dedupe key, reply number, part number).
///
/// A process that takes an account over after a crash and handles the same message again
/// therefore sends its replies under the `client_id`s the crashed process used; a server that
/// keeps only the first message of a `client_id` (ilink-sim does, [sim assumption] for the live
/// server) then shows each reply once.
pub(crate) fn turn_client_id(
    prefix: &str,
    account: &str,
    turn: &str,
    reply: u32,
    part: usize,
    at_ms: Option<i64>,
) -> String {
    let h = fnv1a(&[
        b"ilink-reply",
        account.as_bytes(),
        turn.as_bytes(),
        &reply.to_be_bytes(),
        &(part as u64).to_be_bytes(),
    ]);
    let digits = match at_ms {
        Some(ms) if ms > 0 => ms.unsigned_abs(),
        // 13 digits, like an epoch-ms of today.
        _ => 1_000_000_000_000 + (h >> 32) % 9_000_000_000_000,
    };
    // Fold the 64-bit hash to 32 bits so that every bit of it counts.
    let low = (h ^ (h >> 32)) as u32;
    format!("{prefix}:{digits}-{low:08x}")
}

/// 64-bit FNV-1a, for content fingerprints (stable across runs and platforms, unlike
/// `DefaultHasher`).
pub(crate) fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// SIGINT and (on Unix) SIGTERM, listened to from creation on (none is missed between two
/// waits). [`ShutdownHandle::on_signals`](crate::ShutdownHandle::on_signals) uses it; a program
/// that stops in its own way can too.
pub struct StopSignals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl std::fmt::Debug for StopSignals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StopSignals").finish_non_exhaustive()
    }
}

impl StopSignals {
    /// Starts listening; `None` if the signals cannot be listened to. Must be called inside a
    /// Tokio runtime.
    pub fn new() -> Option<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Some(Self {
                term: signal(SignalKind::terminate()).ok()?,
                int: signal(SignalKind::interrupt()).ok()?,
            })
        }
        #[cfg(not(unix))]
        {
            Some(Self {})
        }
    }

    /// The next signal's number (2 or 15).
    pub async fn next(&mut self) -> Option<i32> {
        #[cfg(unix)]
        {
            tokio::select! {
                s = self.term.recv() => s.map(|()| 15),
                s = self.int.recv() => s.map(|()| 2),
            }
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c().await.ok().map(|()| 2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_id_shape() {
        let id = new_client_id("openclaw-weixin");
        let (prefix, rest) = id.split_once(':').unwrap();
        assert_eq!(prefix, "openclaw-weixin");
        let (ms, hex) = rest.split_once('-').unwrap();
        assert!(ms.parse::<u64>().unwrap() > 1_600_000_000_000);
        assert_eq!(hex.len(), 8);
        assert!(
            hex.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(new_client_id("p"), new_client_id("p"));
    }

    #[test]
    fn turn_client_ids_are_stable_distinct_and_well_formed() {
        let a = turn_client_id(
            "openclaw-weixin",
            "b@im.bot",
            "m:1",
            0,
            0,
            Some(1_795_301_219_633),
        );
        assert_eq!(
            a,
            turn_client_id(
                "openclaw-weixin",
                "b@im.bot",
                "m:1",
                0,
                0,
                Some(1_795_301_219_633)
            )
        );
        assert!(a.starts_with("openclaw-weixin:1795301219633-"), "{a}");
        let mut seen = std::collections::HashSet::new();
        for (acct, turn, reply, part) in [
            ("b@im.bot", "m:1", 0, 0),
            ("c@im.bot", "m:1", 0, 0),
            ("b@im.bot", "m:2", 0, 0),
            ("b@im.bot", "m:1", 1, 0),
            ("b@im.bot", "m:1", 0, 1),
        ] {
            assert!(seen.insert(turn_client_id("p", acct, turn, reply, part, Some(5))));
        }
        for at in [None, Some(0), Some(-3), Some(1_700_000_000_000)] {
            let id = turn_client_id("openclaw-weixin", "b@im.bot", "f:abc", 2, 3, at);
            let (prefix, rest) = id.split_once(':').unwrap();
            assert_eq!(prefix, "openclaw-weixin");
            let (digits, hex) = rest.split_once('-').unwrap();
            assert!(
                !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()),
                "{id}"
            );
            assert_eq!(hex.len(), 8);
            assert!(
                hex.chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
            );
        }
    }

    #[test]
    fn fnv_is_stable_and_separates_parts() {
        assert_eq!(fnv1a(&[b"a"]), fnv1a(&[b"a"]));
        assert_ne!(fnv1a(&[b"ab", b"c"]), fnv1a(&[b"a", b"bc"]));
        assert_ne!(random_u64(), random_u64());
        let _ = random_u32();
    }
}
