//! Streaming AES-128-ECB/PKCS#7: constant memory for inputs of any size.

use std::fmt;

use crate::cipher::{BLOCK_LEN, EcbCipher, Padding, padded_block, unpadded_len};
use crate::error::CryptoError;
use crate::key::MediaKey;

/// Appends the whole blocks of `input` to `out` and transforms them in place with `f`.
fn append_blocks(
    out: &mut Vec<u8>,
    input: &[u8],
    f: impl FnOnce(&mut [u8]) -> Result<(), CryptoError>,
) {
    let start = out.len();
    out.extend_from_slice(input);
    if let Some(new) = out.get_mut(start..) {
        // Cannot fail: callers pass whole blocks.
        let _ = f(new);
    }
}

/// Moves up to `16 - *len` bytes from the front of `input` into `pending`.
fn fill_pending<'a>(pending: &mut [u8; BLOCK_LEN], len: &mut usize, input: &'a [u8]) -> &'a [u8] {
    let take = (BLOCK_LEN - *len).min(input.len());
    let (head, rest) = input.split_at(take);
    if let Some(dst) = pending.get_mut(*len..*len + take) {
        dst.copy_from_slice(head);
    }
    *len += take;
    rest
}

/// Encrypts a stream of plaintext chunks of any size into AES-128-ECB/PKCS#7 ciphertext.
///
/// Holds back at most 15 bytes between calls, and writes into a caller-owned `Vec`, so a
/// loop that reuses its output buffer allocates nothing per chunk. The total output is the
/// same as [`crate::encrypt`] of the concatenated input.
///
/// ```
/// use ilink_crypto::{Encryptor, MediaKey, encrypt};
///
/// let key = MediaKey::from_bytes([7; 16]);
/// let mut enc = Encryptor::new(&key);
/// let mut out = Vec::new();
/// enc.update(b"hello, ", &mut out);
/// enc.update(b"world", &mut out);
/// enc.finish(&mut out);
/// assert_eq!(out, encrypt(&key, b"hello, world"));
/// ```
#[derive(Clone)]
pub struct Encryptor {
    cipher: EcbCipher,
    pending: [u8; BLOCK_LEN],
    pending_len: usize,
}

impl fmt::Debug for Encryptor {
    /// Shows no key material and none of the held-back plaintext.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encryptor")
            .field("pending_len", &self.pending_len)
            .finish_non_exhaustive()
    }
}

impl Drop for Encryptor {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.pending);
    }
}

impl Encryptor {
    /// A new encryptor for `key`.
    #[must_use]
    pub fn new(key: &MediaKey) -> Self {
        Self::with_cipher(EcbCipher::new(key))
    }

    /// A new encryptor using an already expanded cipher.
    #[must_use]
    pub fn with_cipher(cipher: EcbCipher) -> Self {
        Self {
            cipher,
            pending: [0; BLOCK_LEN],
            pending_len: 0,
        }
    }

    /// Encrypts as much of `input` as forms whole blocks (together with bytes held back from
    /// earlier calls) and appends the ciphertext to `out`. Keeps the remaining 0..=15 bytes.
    pub fn update(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let mut input = input;
        if self.pending_len > 0 {
            input = fill_pending(&mut self.pending, &mut self.pending_len, input);
            if self.pending_len < BLOCK_LEN {
                return;
            }
            let cipher = &self.cipher;
            append_blocks(out, &self.pending, |b| cipher.encrypt_blocks(b));
            self.pending_len = 0;
        }
        let whole = input.len() - input.len() % BLOCK_LEN;
        let (body, tail) = input.split_at(whole);
        if !body.is_empty() {
            let cipher = &self.cipher;
            append_blocks(out, body, |b| cipher.encrypt_blocks(b));
        }
        fill_pending(&mut self.pending, &mut self.pending_len, tail);
    }

    /// Pads the held-back bytes and appends the final block (always exactly 16 bytes) to `out`.
    pub fn finish(mut self, out: &mut Vec<u8>) {
        let tail = self.pending.get(..self.pending_len).unwrap_or_default();
        let mut block = padded_block(tail);
        let cipher = &self.cipher;
        append_blocks(out, &block, |b| cipher.encrypt_blocks(b));
        zeroize::Zeroize::zeroize(&mut block);
        self.pending_len = 0;
    }

    /// Number of plaintext bytes held back, waiting for a whole block (0..=15).
    #[must_use]
    pub fn pending_len(&self) -> usize {
        self.pending_len
    }
}

/// Decrypts a stream of AES-128-ECB/PKCS#7 ciphertext chunks of any size.
///
/// Holds back only the last 1..=16 bytes seen (the final block may be padding), and writes
/// into a caller-owned `Vec`. [`Decryptor::finish`] checks the length and the padding.
///
/// ```
/// use ilink_crypto::{Decryptor, MediaKey, encrypt};
///
/// let key = MediaKey::from_bytes([7; 16]);
/// let ciphertext = encrypt(&key, b"hello, world");
/// let mut dec = Decryptor::new(&key);
/// let mut out = Vec::new();
/// for chunk in ciphertext.chunks(5) {
///     dec.update(chunk, &mut out);
/// }
/// dec.finish(&mut out)?;
/// assert_eq!(out, b"hello, world");
/// # Ok::<(), ilink_crypto::CryptoError>(())
/// ```
#[derive(Clone)]
pub struct Decryptor {
    cipher: EcbCipher,
    padding: Padding,
    pending: [u8; BLOCK_LEN],
    pending_len: usize,
    total: u64,
}

impl fmt::Debug for Decryptor {
    /// Shows no key material and none of the held-back data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decryptor")
            .field("padding", &self.padding)
            .field("pending_len", &self.pending_len)
            .field("bytes_in", &self.total)
            .finish_non_exhaustive()
    }
}

impl Drop for Decryptor {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.pending);
    }
}

impl Decryptor {
    /// A new decryptor for `key` with strict padding checks.
    #[must_use]
    pub fn new(key: &MediaKey) -> Self {
        Self::with_cipher(EcbCipher::new(key), Padding::Strict)
    }

    /// A new decryptor using an already expanded cipher and the given padding mode.
    #[must_use]
    pub fn with_cipher(cipher: EcbCipher, padding: Padding) -> Self {
        Self {
            cipher,
            padding,
            pending: [0; BLOCK_LEN],
            pending_len: 0,
            total: 0,
        }
    }

    /// Decrypts all whole blocks of the stream so far except the last, appending plaintext
    /// to `out`.
    pub fn update(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if input.is_empty() {
            return;
        }
        self.total = self.total.saturating_add(input.len() as u64);
        let mut input = input;
        if self.pending_len > 0 {
            input = fill_pending(&mut self.pending, &mut self.pending_len, input);
            if input.is_empty() {
                // The held-back bytes may still be the final block.
                return;
            }
            // More input follows, so the full pending block is not the last one.
            let cipher = &self.cipher;
            append_blocks(out, &self.pending, |b| cipher.decrypt_blocks(b));
            self.pending_len = 0;
        }
        // Keep the last 1..=16 bytes back.
        let emit = (input.len() - 1) / BLOCK_LEN * BLOCK_LEN;
        let (body, tail) = input.split_at(emit);
        if !body.is_empty() {
            let cipher = &self.cipher;
            append_blocks(out, body, |b| cipher.decrypt_blocks(b));
        }
        fill_pending(&mut self.pending, &mut self.pending_len, tail);
    }

    /// Total number of ciphertext bytes passed to [`Decryptor::update`] so far.
    #[must_use]
    pub fn bytes_in(&self) -> u64 {
        self.total
    }

    /// Decrypts the final block, checks and strips its padding, and appends what remains.
    ///
    /// # Errors
    /// [`CryptoError::Empty`] if no input was given, [`CryptoError::NotBlockAligned`] if the
    /// total length is not a multiple of 16, and (in strict mode) [`CryptoError::BadPadding`].
    /// Output already appended by [`Decryptor::update`] stays in `out`: discard it on error.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), CryptoError> {
        if self.total == 0 {
            return Err(CryptoError::Empty);
        }
        if self.pending_len != BLOCK_LEN {
            return Err(CryptoError::NotBlockAligned { len: self.total });
        }
        self.cipher.decrypt_blocks(&mut self.pending)?;
        let n = unpadded_len(&self.pending, self.padding)?;
        out.extend_from_slice(self.pending.get(..n).unwrap_or_default());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decrypt, encrypt};

    #[test]
    fn encryptor_holds_back_partial_block() {
        let key = MediaKey::from_bytes([3; 16]);
        let mut enc = Encryptor::new(&key);
        let mut out = Vec::new();
        enc.update(&[1; 15], &mut out);
        assert!(out.is_empty());
        assert_eq!(enc.pending_len(), 15);
        enc.update(&[1; 2], &mut out);
        assert_eq!(out.len(), 16);
        assert_eq!(enc.pending_len(), 1);
        enc.finish(&mut out);
        assert_eq!(out, encrypt(&key, &[1; 17]));
    }

    #[test]
    fn decryptor_holds_back_last_block() {
        let key = MediaKey::from_bytes([4; 16]);
        let ct = encrypt(&key, &[9; 32]);
        assert_eq!(ct.len(), 48);
        let mut dec = Decryptor::new(&key);
        let mut out = Vec::new();
        dec.update(&ct[..32], &mut out);
        assert_eq!(out.len(), 16);
        dec.update(&ct[32..], &mut out);
        assert_eq!(out.len(), 32);
        dec.finish(&mut out).unwrap();
        assert_eq!(out, decrypt(&key, &ct).unwrap());
    }

    #[test]
    fn debug_shows_no_data() {
        let key = MediaKey::from_bytes([4; 16]);
        let mut enc = Encryptor::new(&key);
        enc.update(b"secret", &mut Vec::new());
        let dbg = format!("{enc:?}");
        assert_eq!(dbg, "Encryptor { pending_len: 6, .. }");
        let dec = Decryptor::new(&key);
        assert!(format!("{dec:?}").starts_with("Decryptor { padding: Strict"));
    }

    #[test]
    fn decryptor_errors() {
        let key = MediaKey::from_bytes([4; 16]);
        let mut out = Vec::new();
        assert_eq!(
            Decryptor::new(&key).finish(&mut out),
            Err(CryptoError::Empty)
        );
        let mut dec = Decryptor::new(&key);
        dec.update(&[0; 33], &mut out);
        assert_eq!(
            dec.finish(&mut out),
            Err(CryptoError::NotBlockAligned { len: 33 })
        );
        // Zeros decrypted with a key whose encryption of zeros we know: E(0) decrypts to 0.
        let cipher = EcbCipher::new(&key);
        let mut block = [0u8; 16];
        cipher.encrypt_blocks(&mut block).unwrap();
        let mut dec = Decryptor::new(&key);
        out.clear();
        dec.update(&block, &mut out);
        assert_eq!(dec.finish(&mut out), Err(CryptoError::BadPadding));
        let mut dec = Decryptor::with_cipher(cipher, Padding::Lenient);
        out.clear();
        dec.update(&block, &mut out);
        dec.finish(&mut out).unwrap();
        assert_eq!(out, [0; 16]);
    }
}
