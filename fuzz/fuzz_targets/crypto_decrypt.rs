//! AES-128-ECB/PKCS#7 decryption of untrusted CDN bytes, one-shot and streaming.
//!
//! Input: 16 key bytes, 1 byte that seeds the streaming chunk sizes, then the ciphertext.
//! Properties: no panic; the streaming `Decryptor`, fed in arbitrary chunks, returns exactly
//! what the one-shot `decrypt` returns (same plaintext, or an error for the same inputs);
//! lenient decryption agrees with strict decryption whenever the padding is valid; in-place
//! decryption agrees with the allocating one.
#![no_main]

use ilink_crypto::{Decryptor, EcbCipher, MediaKey, Padding, decrypt, decrypt_in_place, decrypt_lenient};
use libfuzzer_sys::fuzz_target;

fn streamed(key: &MediaKey, padding: Padding, ciphertext: &[u8], seed: u8) -> Option<Vec<u8>> {
    let mut dec = Decryptor::with_cipher(EcbCipher::new(key), padding);
    let mut out = Vec::new();
    let mut rest = ciphertext;
    let mut step = usize::from(seed % 37) + 1;
    while !rest.is_empty() {
        let n = step.min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        dec.update(chunk, &mut out);
        rest = tail;
        // Vary chunk sizes: 0-length updates included.
        step = (step * 7 + 3) % 41;
        if step == 0 {
            dec.update(&[], &mut out);
            step = 1;
        }
    }
    assert_eq!(dec.bytes_in(), ciphertext.len() as u64);
    dec.finish(&mut out).ok().map(|()| out)
}

fuzz_target!(|data: &[u8]| {
    let Some((key, rest)) = data.split_first_chunk::<16>() else {
        return;
    };
    let Some((&seed, ciphertext)) = rest.split_first() else {
        return;
    };
    let key = MediaKey::from_bytes(*key);

    let strict = decrypt(&key, ciphertext);
    let stream = streamed(&key, Padding::Strict, ciphertext, seed);
    assert_eq!(strict.as_ref().ok(), stream.as_ref(), "one-shot and streaming disagree");

    let lenient = decrypt_lenient(&key, ciphertext);
    let lenient_stream = streamed(&key, Padding::Lenient, ciphertext, seed);
    assert_eq!(lenient.as_ref().ok(), lenient_stream.as_ref());
    if let Ok(plain) = &strict {
        assert_eq!(lenient.as_ref().ok(), Some(plain));
        assert!(plain.len() < ciphertext.len() && ciphertext.len() - plain.len() <= 16);
    }
    if let Ok(plain) = &lenient {
        assert!(plain.len() <= ciphertext.len());
    }

    let mut buf = ciphertext.to_vec();
    let in_place = decrypt_in_place(&key, &mut buf).map(|()| buf);
    assert_eq!(in_place.ok(), strict.ok());
});
