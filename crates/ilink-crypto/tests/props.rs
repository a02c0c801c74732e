//! Property tests: streaming agrees with one-shot for every chunking; decryption never panics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ilink_crypto::{
    Decryptor, EcbCipher, Encryptor, MediaKey, Padding, ciphertext_len, decrypt, decrypt_lenient,
    encrypt, encrypt_in_place,
};
use proptest::prelude::*;

fn key() -> impl Strategy<Value = MediaKey> {
    any::<[u8; 16]>().prop_map(MediaKey::from_bytes)
}

/// Splits `data` at the given cut points (taken modulo the length, sorted).
fn chunks<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    points.push(0);
    points.push(data.len());
    points.sort_unstable();
    points.windows(2).map(|w| &data[w[0]..w[1]]).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn round_trip(key in key(), data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let ct = encrypt(&key, &data);
        prop_assert_eq!(ct.len() as u64, ciphertext_len(data.len() as u64));
        prop_assert_eq!(decrypt(&key, &ct).unwrap(), data.clone());
        let mut buf = data.clone();
        encrypt_in_place(&key, &mut buf);
        prop_assert_eq!(&buf, &ct);
    }

    #[test]
    fn streaming_encrypt_equals_one_shot(
        key in key(),
        data in proptest::collection::vec(any::<u8>(), 0..600),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut enc = Encryptor::new(&key);
        let mut out = Vec::new();
        for c in chunks(&data, &cuts) {
            enc.update(c, &mut out);
            // Never holds back a whole block.
            prop_assert!(enc.pending_len() < 16);
        }
        enc.finish(&mut out);
        prop_assert_eq!(out, encrypt(&key, &data));
    }

    #[test]
    fn streaming_decrypt_equals_one_shot(
        key in key(),
        data in proptest::collection::vec(any::<u8>(), 0..600),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let ct = encrypt(&key, &data);
        let mut dec = Decryptor::new(&key);
        let mut out = Vec::new();
        for c in chunks(&ct, &cuts) {
            dec.update(c, &mut out);
            // Holds back at most one block of what it was given.
            prop_assert!(dec.bytes_in() - out.len() as u64 <= 16);
        }
        dec.finish(&mut out).unwrap();
        prop_assert_eq!(out, data);
    }

    #[test]
    fn streaming_decrypt_of_garbage_agrees_with_one_shot(
        key in key(),
        data in proptest::collection::vec(any::<u8>(), 0..100),
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
        lenient in any::<bool>(),
    ) {
        let padding = if lenient { Padding::Lenient } else { Padding::Strict };
        let cipher = EcbCipher::new(&key);
        let one_shot = cipher.decrypt_with(&data, padding);
        let mut dec = Decryptor::with_cipher(cipher, padding);
        let mut out = Vec::new();
        for c in chunks(&data, &cuts) {
            dec.update(c, &mut out);
        }
        match (dec.finish(&mut out), one_shot) {
            (Ok(()), Ok(expected)) => prop_assert_eq!(out, expected),
            (Err(a), Err(b)) => prop_assert_eq!(a, b),
            (a, b) => prop_assert!(false, "streaming {a:?} vs one-shot {b:?}"),
        }
    }

    #[test]
    fn decrypting_arbitrary_bytes_never_panics(
        key in any::<[u8; 16]>(),
        data in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let key = MediaKey::from_bytes(key);
        let strict = decrypt(&key, &data);
        let lenient = decrypt_lenient(&key, &data);
        if data.is_empty() || data.len() % 16 != 0 {
            prop_assert!(strict.is_err() && lenient.is_err());
        } else {
            // Lenient never fails on aligned input, and never returns more than it was given.
            let lenient = lenient.unwrap();
            prop_assert!(lenient.len() <= data.len() && lenient.len() + 16 >= data.len());
            if let Ok(strict) = strict {
                prop_assert_eq!(strict, lenient);
            }
        }
    }

    #[test]
    fn key_text_decoding_never_panics(text in ".{0,80}") {
        let _ = MediaKey::parse(&text);
        let _ = MediaKey::from_hex(&text);
        let _ = MediaKey::from_cdn_aes_key(&text);
        let _ = MediaKey::from_image_item(Some(&text), Some(&text));
    }

    #[test]
    fn key_encodings_round_trip(bytes in any::<[u8; 16]>()) {
        let key = MediaKey::from_bytes(bytes);
        prop_assert_eq!(MediaKey::from_hex(&key.to_hex()).unwrap(), key.clone());
        prop_assert_eq!(MediaKey::from_cdn_aes_key(&key.to_base64_of_hex()).unwrap(), key.clone());
        prop_assert_eq!(MediaKey::from_cdn_aes_key(&key.to_base64()).unwrap(), key.clone());
        prop_assert_eq!(MediaKey::parse(&key.to_hex()).unwrap(), key.clone());
        prop_assert_eq!(MediaKey::parse(&key.to_base64()).unwrap(), key);
    }
}
