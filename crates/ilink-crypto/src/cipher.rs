//! AES-128-ECB with PKCS#7 padding: one-shot and in-place.

use std::fmt;

use aes::Aes128;
use aes::cipher::array::Array;
use aes::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, InOutBuf, KeyInit};

use crate::error::CryptoError;
use crate::key::MediaKey;

/// The AES block size in bytes.
pub const BLOCK_LEN: usize = 16;

/// Size of the AES-128-ECB/PKCS#7 ciphertext of `plaintext_len` bytes:
/// `16 * (plaintext_len / 16 + 1)` (docs/protocol.md §12.4, the `filesize` of getuploadurl).
///
/// Padding is always added, so a whole number of blocks grows by one block:
/// 0 → 16, 15 → 16, 16 → 32, 100 → 112. Saturates at `u64::MAX` for lengths within 16 of
/// `u64::MAX`, which no real file reaches.
#[must_use]
pub const fn ciphertext_len(plaintext_len: u64) -> u64 {
    (plaintext_len | 15).saturating_add(1)
}

/// Whether decryption insists on valid PKCS#7 padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Padding {
    /// Reject bad padding with [`CryptoError::BadPadding`] (the default, and what the
    /// official client does).
    #[default]
    Strict,
    /// On bad padding, return the whole decrypted data unstripped instead of an error, as some
    /// SDKs do. Valid padding is still removed. Use only when you know you want this: with a
    /// wrong key it returns garbage instead of an error.
    Lenient,
}

/// Number of PKCS#7 padding bytes at the end of `last_block`, if the padding is valid.
fn pkcs7_pad_len(last_block: &[u8; BLOCK_LEN]) -> Option<usize> {
    let pad = last_block[BLOCK_LEN - 1];
    if pad == 0 || usize::from(pad) > BLOCK_LEN {
        return None;
    }
    let start = BLOCK_LEN - usize::from(pad);
    // Constant-time over the block: no early exit that depends on the plaintext.
    let bad = last_block[start..]
        .iter()
        .fold(0u8, |acc, &b| acc | (b ^ pad));
    (bad == 0).then_some(usize::from(pad))
}

/// How many plaintext bytes remain of decrypted `data` (a non-empty multiple of 16) after
/// removing the padding.
pub(crate) fn unpadded_len(data: &[u8], padding: Padding) -> Result<usize, CryptoError> {
    let last: Option<&[u8; BLOCK_LEN]> = data
        .len()
        .checked_sub(BLOCK_LEN)
        .and_then(|start| data.get(start..))
        .and_then(|tail| tail.try_into().ok());
    let Some(last) = last else {
        return Err(CryptoError::Empty);
    };
    match (pkcs7_pad_len(last), padding) {
        (Some(pad), _) => Ok(data.len() - pad),
        (None, Padding::Lenient) => Ok(data.len()),
        (None, Padding::Strict) => Err(CryptoError::BadPadding),
    }
}

fn check_ciphertext_len(len: usize) -> Result<(), CryptoError> {
    if len == 0 {
        Err(CryptoError::Empty)
    } else if !len.is_multiple_of(BLOCK_LEN) {
        Err(CryptoError::NotBlockAligned { len: len as u64 })
    } else {
        Ok(())
    }
}

/// An AES-128-ECB cipher with its key schedule expanded once, for encrypting or decrypting
/// many buffers with one key.
///
/// Uses the hardware AES instructions (AES-NI, VAES) when the CPU has them, detected at run
/// time, and always hands whole runs of blocks to the backend so it can work on many blocks in
/// parallel. The round keys are zeroized on drop; `Debug` shows no key material.
#[derive(Clone)]
pub struct EcbCipher {
    aes: Aes128,
}

impl fmt::Debug for EcbCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EcbCipher { .. }")
    }
}

impl EcbCipher {
    /// Expands `key` into an AES-128 key schedule.
    #[must_use]
    pub fn new(key: &MediaKey) -> Self {
        let key = Array::from(*key.as_bytes());
        Self {
            aes: Aes128::new(&key),
        }
    }

    /// Encrypts whole blocks in place, without padding (raw ECB).
    ///
    /// # Errors
    /// [`CryptoError::NotBlockAligned`] if `buf.len()` is not a multiple of 16; `buf` is then
    /// left unchanged. An empty `buf` is fine and does nothing.
    pub fn encrypt_blocks(&self, buf: &mut [u8]) -> Result<(), CryptoError> {
        let (blocks, rest) = Array::slice_as_chunks_mut(buf);
        if !rest.is_empty() {
            return Err(CryptoError::NotBlockAligned {
                len: buf.len() as u64,
            });
        }
        self.aes.encrypt_blocks(blocks);
        Ok(())
    }

    /// Decrypts whole blocks in place, without touching padding (raw ECB).
    ///
    /// # Errors
    /// [`CryptoError::NotBlockAligned`] if `buf.len()` is not a multiple of 16; `buf` is then
    /// left unchanged. An empty `buf` is fine and does nothing.
    pub fn decrypt_blocks(&self, buf: &mut [u8]) -> Result<(), CryptoError> {
        let (blocks, rest) = Array::slice_as_chunks_mut(buf);
        if !rest.is_empty() {
            return Err(CryptoError::NotBlockAligned {
                len: buf.len() as u64,
            });
        }
        self.aes.decrypt_blocks(blocks);
        Ok(())
    }

    /// Encrypts the whole blocks of `input` into `out` (same length), in one pass.
    /// Both lengths must be equal multiples of 16 (checked by callers).
    fn encrypt_blocks_b2b(&self, input: &[u8], out: &mut [u8]) {
        let (in_blocks, _) = Array::slice_as_chunks(input);
        let (out_blocks, _) = Array::slice_as_chunks_mut(out);
        if let Ok(buf) = InOutBuf::new(in_blocks, out_blocks) {
            self.aes.encrypt_blocks_inout(buf);
        }
    }

    /// Decrypts the whole blocks of `input` into `out` (same length), in one pass.
    fn decrypt_blocks_b2b(&self, input: &[u8], out: &mut [u8]) {
        let (in_blocks, _) = Array::slice_as_chunks(input);
        let (out_blocks, _) = Array::slice_as_chunks_mut(out);
        if let Ok(buf) = InOutBuf::new(in_blocks, out_blocks) {
            self.aes.decrypt_blocks_inout(buf);
        }
    }

    /// Encrypts `plaintext` with PKCS#7 padding and appends the ciphertext
    /// (`ciphertext_len(plaintext.len())` bytes) to `out`.
    pub fn encrypt_into(&self, plaintext: &[u8], out: &mut Vec<u8>) {
        let whole = plaintext.len() - plaintext.len() % BLOCK_LEN;
        let (body, tail) = plaintext.split_at(whole);
        let start = out.len();
        out.reserve(whole + BLOCK_LEN);
        out.resize(start + whole, 0);
        if let Some(dst) = out.get_mut(start..) {
            self.encrypt_blocks_b2b(body, dst);
        }
        out.extend_from_slice(&padded_block(tail));
        let last_start = out.len() - BLOCK_LEN;
        if let Some(last) = out.get_mut(last_start..) {
            // Cannot fail: exactly one block.
            let _ = self.encrypt_blocks(last);
        }
    }

    /// Encrypts `plaintext` with PKCS#7 padding into a new vector.
    #[must_use]
    pub fn encrypt(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(plaintext.len() + BLOCK_LEN);
        self.encrypt_into(plaintext, &mut out);
        out
    }

    /// Pads `buf` with PKCS#7 and encrypts it in place. Grows `buf` by 1 to 16 bytes; reserve
    /// that room up front (`Vec::with_capacity(n + 16)`) to avoid a reallocation.
    pub fn encrypt_in_place(&self, buf: &mut Vec<u8>) {
        let pad = BLOCK_LEN - buf.len() % BLOCK_LEN;
        // `pad` is 1..=16, so the cast is lossless.
        buf.resize(buf.len() + pad, pad as u8);
        // Cannot fail: the length is now a multiple of 16.
        let _ = self.encrypt_blocks(buf);
    }

    /// Pads the first `msg_len` bytes of `buf` with PKCS#7 and encrypts them in place, for
    /// callers that own a fixed buffer. Returns the ciphertext, a prefix of `buf` of
    /// `ciphertext_len(msg_len)` bytes.
    ///
    /// # Errors
    /// [`CryptoError::BufferTooSmall`] if `buf` has no room for the padding (or `msg_len`
    /// exceeds `buf.len()`); `buf` is then left unchanged.
    pub fn encrypt_padded_in_place<'a>(
        &self,
        buf: &'a mut [u8],
        msg_len: usize,
    ) -> Result<&'a mut [u8], CryptoError> {
        let needed = (msg_len | 15).saturating_add(1);
        let got = buf.len();
        let Some(ct) = buf.get_mut(..needed) else {
            return Err(CryptoError::BufferTooSmall { needed, got });
        };
        let pad = needed - msg_len;
        if let Some(padding) = ct.get_mut(msg_len..) {
            // `pad` is 1..=16, so the cast is lossless.
            padding.fill(pad as u8);
        }
        self.encrypt_blocks(ct)?;
        Ok(ct)
    }

    /// Decrypts `ciphertext` and checks its padding, appending the plaintext to `out`.
    /// On error, `out` is left as it was.
    ///
    /// # Errors
    /// [`CryptoError::Empty`], [`CryptoError::NotBlockAligned`], or (with
    /// [`Padding::Strict`]) [`CryptoError::BadPadding`].
    pub fn decrypt_into(
        &self,
        ciphertext: &[u8],
        out: &mut Vec<u8>,
        padding: Padding,
    ) -> Result<(), CryptoError> {
        check_ciphertext_len(ciphertext.len())?;
        let start = out.len();
        out.resize(start + ciphertext.len(), 0);
        let plain_len = match out.get_mut(start..) {
            Some(dst) => {
                self.decrypt_blocks_b2b(ciphertext, dst);
                unpadded_len(dst, padding)
            }
            None => Err(CryptoError::Empty),
        };
        match plain_len {
            Ok(n) => {
                out.truncate(start + n);
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }

    /// Decrypts `ciphertext` into a new vector, checking the padding strictly.
    ///
    /// # Errors
    /// [`CryptoError::Empty`], [`CryptoError::NotBlockAligned`] or [`CryptoError::BadPadding`].
    pub fn decrypt(&self, ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.decrypt_with(ciphertext, Padding::Strict)
    }

    /// Decrypts `ciphertext` into a new vector with the given padding mode.
    ///
    /// # Errors
    /// [`CryptoError::Empty`], [`CryptoError::NotBlockAligned`], or (with
    /// [`Padding::Strict`]) [`CryptoError::BadPadding`].
    pub fn decrypt_with(
        &self,
        ciphertext: &[u8],
        padding: Padding,
    ) -> Result<Vec<u8>, CryptoError> {
        let mut out = Vec::with_capacity(ciphertext.len());
        self.decrypt_into(ciphertext, &mut out, padding)?;
        Ok(out)
    }

    /// Decrypts `buf` in place and strips the padding (truncating `buf`).
    ///
    /// # Errors
    /// [`CryptoError::Empty`], [`CryptoError::NotBlockAligned`], or (with
    /// [`Padding::Strict`]) [`CryptoError::BadPadding`]. On a length error `buf` is unchanged;
    /// on a padding error it holds the raw decrypted bytes.
    pub fn decrypt_in_place(&self, buf: &mut Vec<u8>, padding: Padding) -> Result<(), CryptoError> {
        let n = self.decrypt_padded_in_place(buf, padding)?.len();
        buf.truncate(n);
        Ok(())
    }

    /// Decrypts `buf` in place and returns the plaintext: a prefix of `buf` without the
    /// padding.
    ///
    /// # Errors
    /// As [`EcbCipher::decrypt_in_place`].
    pub fn decrypt_padded_in_place<'a>(
        &self,
        buf: &'a mut [u8],
        padding: Padding,
    ) -> Result<&'a mut [u8], CryptoError> {
        check_ciphertext_len(buf.len())?;
        self.decrypt_blocks(buf)?;
        let n = unpadded_len(buf, padding)?;
        Ok(buf.get_mut(..n).unwrap_or_default())
    }
}

/// The final PKCS#7 block for a `tail` of 0..=15 bytes.
pub(crate) fn padded_block(tail: &[u8]) -> [u8; BLOCK_LEN] {
    let pad = BLOCK_LEN - tail.len().min(BLOCK_LEN - 1);
    // `pad` is 1..=16, so the cast is lossless.
    let mut block = [pad as u8; BLOCK_LEN];
    if let Some(dst) = block.get_mut(..tail.len()) {
        dst.copy_from_slice(tail);
    }
    block
}

/// Encrypts `plaintext` with AES-128-ECB and PKCS#7 padding.
///
/// For many buffers with one key, build an [`EcbCipher`] once instead.
#[must_use]
pub fn encrypt(key: &MediaKey, plaintext: &[u8]) -> Vec<u8> {
    EcbCipher::new(key).encrypt(plaintext)
}

/// Decrypts AES-128-ECB ciphertext and removes its PKCS#7 padding, checked strictly.
///
/// # Errors
/// [`CryptoError::Empty`], [`CryptoError::NotBlockAligned`] or [`CryptoError::BadPadding`]
/// (usually a wrong key).
pub fn decrypt(key: &MediaKey, ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    EcbCipher::new(key).decrypt(ciphertext)
}

/// Like [`decrypt`], but on bad padding returns the raw decrypted bytes instead of an error
/// ([`Padding::Lenient`]). Length errors are still errors.
///
/// # Errors
/// [`CryptoError::Empty`] or [`CryptoError::NotBlockAligned`].
pub fn decrypt_lenient(key: &MediaKey, ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    EcbCipher::new(key).decrypt_with(ciphertext, Padding::Lenient)
}

/// Pads and encrypts `buf` in place (see [`EcbCipher::encrypt_in_place`]).
pub fn encrypt_in_place(key: &MediaKey, buf: &mut Vec<u8>) {
    EcbCipher::new(key).encrypt_in_place(buf);
}

/// Decrypts `buf` in place and strips its padding, checked strictly
/// (see [`EcbCipher::decrypt_in_place`]).
///
/// # Errors
/// [`CryptoError::Empty`], [`CryptoError::NotBlockAligned`] or [`CryptoError::BadPadding`].
pub fn decrypt_in_place(key: &MediaKey, buf: &mut Vec<u8>) -> Result<(), CryptoError> {
    EcbCipher::new(key).decrypt_in_place(buf, Padding::Strict)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ciphertext_len_matches_protocol_table() {
        for (n, want) in [(0, 16), (1, 16), (15, 16), (16, 32), (17, 32), (100, 112)] {
            assert_eq!(ciphertext_len(n), want, "n = {n}");
        }
        assert_eq!(ciphertext_len(u64::MAX), u64::MAX);
    }

    #[test]
    fn pkcs7_checks() {
        let mut b = [0u8; 16];
        assert_eq!(pkcs7_pad_len(&b), None);
        b[15] = 17;
        assert_eq!(pkcs7_pad_len(&b), None);
        b[15] = 1;
        assert_eq!(pkcs7_pad_len(&b), Some(1));
        b[14] = 2;
        b[15] = 2;
        assert_eq!(pkcs7_pad_len(&b), Some(2));
        b[14] = 3;
        assert_eq!(pkcs7_pad_len(&b), None);
        assert_eq!(pkcs7_pad_len(&[16; 16]), Some(16));
        let mut c = [16u8; 16];
        c[0] = 15;
        assert_eq!(pkcs7_pad_len(&c), None);
    }

    #[test]
    fn padded_block_shapes() {
        assert_eq!(padded_block(&[]), [16; 16]);
        let b = padded_block(&[7; 15]);
        assert_eq!(b[..15], [7; 15]);
        assert_eq!(b[15], 1);
    }

    #[test]
    fn slice_in_place_round_trip_and_too_small() {
        let cipher = EcbCipher::new(&MediaKey::from_bytes([9; 16]));
        let mut buf = [0u8; 48];
        buf[..20].copy_from_slice(&[5; 20]);
        let ct = cipher
            .encrypt_padded_in_place(&mut buf, 20)
            .unwrap()
            .to_vec();
        assert_eq!(ct.len(), 32);
        assert_eq!(ct, cipher.encrypt(&[5; 20]));
        let mut ct2 = ct.clone();
        let pt = cipher
            .decrypt_padded_in_place(&mut ct2, Padding::Strict)
            .unwrap();
        assert_eq!(pt, &[5; 20]);
        let mut small = [0u8; 16];
        assert_eq!(
            cipher.encrypt_padded_in_place(&mut small, 16),
            Err(CryptoError::BufferTooSmall {
                needed: 32,
                got: 16
            })
        );
        assert_eq!(small, [0; 16]);
    }

    #[test]
    fn raw_blocks_reject_partial() {
        let cipher = EcbCipher::new(&MediaKey::from_bytes([1; 16]));
        let mut buf = [3u8; 17];
        assert_eq!(
            cipher.encrypt_blocks(&mut buf),
            Err(CryptoError::NotBlockAligned { len: 17 })
        );
        assert_eq!(buf, [3; 17]);
        assert_eq!(
            cipher.decrypt_blocks(&mut buf),
            Err(CryptoError::NotBlockAligned { len: 17 })
        );
    }

    #[test]
    fn decrypt_into_keeps_out_on_error() {
        let cipher = EcbCipher::new(&MediaKey::from_bytes([1; 16]));
        let mut out = vec![1, 2, 3];
        // The first block of the ciphertext of 16 zero bytes decrypts to zeros: bad padding.
        let mut bad = cipher.encrypt(&[0; 16]);
        bad.truncate(16);
        assert_eq!(
            cipher.decrypt_into(&bad, &mut out, Padding::Strict),
            Err(CryptoError::BadPadding)
        );
        assert_eq!(out, [1, 2, 3]);
        cipher
            .decrypt_into(&bad, &mut out, Padding::Lenient)
            .unwrap();
        assert_eq!(out.len(), 3 + 16);
        assert_eq!(&out[3..], &[0; 16]);
    }
}
