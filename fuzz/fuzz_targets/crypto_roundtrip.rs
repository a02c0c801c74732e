//! AES-128-ECB/PKCS#7 encryption round trip, one-shot and streaming.
//!
//! Input: 16 key bytes, 1 byte that seeds the streaming chunk sizes, then the plaintext.
//! Properties: the ciphertext has `ciphertext_len(plaintext)` bytes; the streaming
//! `Encryptor` produces the same bytes as `encrypt`; decryption (one-shot and streaming)
//! gives the plaintext back.
#![no_main]

use ilink_crypto::{Decryptor, Encryptor, MediaKey, ciphertext_len, decrypt, encrypt};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((key, rest)) = data.split_first_chunk::<16>() else {
        return;
    };
    let Some((&seed, plaintext)) = rest.split_first() else {
        return;
    };
    let key = MediaKey::from_bytes(*key);

    let ciphertext = encrypt(&key, plaintext);
    assert_eq!(ciphertext.len() as u64, ciphertext_len(plaintext.len() as u64));

    let step = usize::from(seed) + 1;
    let mut enc = Encryptor::new(&key);
    let mut streamed = Vec::new();
    for chunk in plaintext.chunks(step) {
        enc.update(chunk, &mut streamed);
    }
    enc.finish(&mut streamed);
    assert_eq!(streamed, ciphertext, "streaming and one-shot encryption disagree");

    assert_eq!(decrypt(&key, &ciphertext).ok().as_deref(), Some(plaintext));
    let mut dec = Decryptor::new(&key);
    let mut out = Vec::new();
    for chunk in ciphertext.chunks(step.saturating_mul(3) % 50 + 1) {
        dec.update(chunk, &mut out);
    }
    assert!(dec.finish(&mut out).is_ok());
    assert_eq!(out, plaintext);
});
