//! Deterministic pseudo-random numbers for ids, keys and tokens.
//!
//! A seeded SplitMix64 written by hand: the emulator only needs reproducible,
//! well-spread values (not cryptographic ones), and no allowed dependency offers a
//! seedable generator.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: Option<u64>) -> Self {
        let seed = seed.unwrap_or_else(|| {
            let mut b = [0u8; 8];
            // If the OS has no randomness, fall back to the clock: values only need to differ.
            if getrandom::fill(&mut b).is_err() {
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                return u64::try_from(t & u128::from(u64::MAX)).unwrap_or(0);
            }
            u64::from_le_bytes(b)
        });
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(n);
        out
    }

    pub(crate) fn key16(&mut self) -> [u8; 16] {
        let mut k = [0u8; 16];
        k[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        k[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        k
    }

    pub(crate) fn hex(&mut self, bytes: usize) -> String {
        hex::encode(self.bytes(bytes))
    }

    /// Standard base64 (with `+`, `/` and `=`), like the live server's opaque parameters.
    pub(crate) fn b64(&mut self, bytes: usize) -> String {
        STANDARD.encode(self.bytes(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_is_reproducible_and_spread() {
        let mut a = Rng::new(Some(7));
        let mut b = Rng::new(Some(7));
        let xs: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..4).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs[0], xs[1]);
        assert_eq!(a.hex(16).len(), 32);
        assert!(a.below(10) < 10);
    }
}
