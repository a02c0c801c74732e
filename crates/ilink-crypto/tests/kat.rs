//! AES-128 known-answer tests from FIPS-197 and NIST SP 800-38A, read from `tests/data/`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ilink_crypto::{
    CryptoError, Decryptor, EcbCipher, Encryptor, MediaKey, Padding, decrypt, decrypt_in_place,
    decrypt_lenient, encrypt, encrypt_in_place,
};

struct Vector {
    key: MediaKey,
    plaintext: Vec<u8>,
    ciphertext: Vec<u8>,
}

fn vectors() -> Vec<Vector> {
    let text = include_str!("data/aes128-ecb-kat.txt");
    let mut out = Vec::new();
    let (mut key, mut pt) = (None, None);
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = line.split_once(" = ").expect("NAME = hex");
        let bytes = hex::decode(value).expect("hex value");
        match name {
            "KEY" => key = Some(MediaKey::from_slice(&bytes).unwrap()),
            "PLAINTEXT" => pt = Some(bytes),
            "CIPHERTEXT" => out.push(Vector {
                key: key.take().expect("KEY before CIPHERTEXT"),
                plaintext: pt.take().expect("PLAINTEXT before CIPHERTEXT"),
                ciphertext: bytes,
            }),
            other => panic!("unknown field {other}"),
        }
    }
    out
}

#[test]
fn raw_ecb_matches_known_answers() {
    let vectors = vectors();
    assert_eq!(vectors.len(), 3);
    for v in &vectors {
        let cipher = EcbCipher::new(&v.key);
        let mut buf = v.plaintext.clone();
        cipher.encrypt_blocks(&mut buf).unwrap();
        assert_eq!(hex::encode(&buf), hex::encode(&v.ciphertext));
        cipher.decrypt_blocks(&mut buf).unwrap();
        assert_eq!(buf, v.plaintext);
    }
}

#[test]
fn padded_ciphertext_is_kat_plus_padding_block() {
    for v in vectors() {
        let cipher = EcbCipher::new(&v.key);
        let ct = encrypt(&v.key, &v.plaintext);
        assert_eq!(ct.len(), v.plaintext.len() + 16);
        assert_eq!(ct[..v.ciphertext.len()], v.ciphertext[..]);
        let mut pad = [16u8; 16];
        cipher.encrypt_blocks(&mut pad).unwrap();
        assert_eq!(ct[v.ciphertext.len()..], pad);
        assert_eq!(decrypt(&v.key, &ct).unwrap(), v.plaintext);
    }
}

#[test]
fn many_blocks_match_block_by_block() {
    // More blocks than any backend processes in parallel, with an odd count, so the
    // parallel path and its tail are both checked against single-block encryption.
    let key = MediaKey::from_hex("000102030405060708090a0b0c0d0e0f").unwrap();
    let cipher = EcbCipher::new(&key);
    let data: Vec<u8> = (0..16 * 67).map(|i: u32| (i * 31 + 7) as u8).collect();
    let mut bulk = data.clone();
    cipher.encrypt_blocks(&mut bulk).unwrap();
    let mut single = data.clone();
    for block in single.chunks_mut(16) {
        cipher.encrypt_blocks(block).unwrap();
    }
    assert_eq!(bulk, single);
    cipher.decrypt_blocks(&mut bulk).unwrap();
    assert_eq!(bulk, data);
}

#[test]
fn pkcs7_edge_lengths() {
    let key = MediaKey::from_bytes(*b"0123456789abcdef");
    for (n, ct_len, pad) in [
        (0, 16, 16u8),
        (1, 16, 15),
        (15, 16, 1),
        (16, 32, 16),
        (17, 32, 15),
    ] {
        let pt: Vec<u8> = (0..n).map(|i| i as u8).collect();
        let ct = encrypt(&key, &pt);
        assert_eq!(ct.len(), ct_len, "n = {n}");
        assert_eq!(ct.len() as u64, ilink_crypto::ciphertext_len(n as u64));
        // The raw decryption ends in `pad` bytes of value `pad`.
        let mut raw = ct.clone();
        EcbCipher::new(&key).decrypt_blocks(&mut raw).unwrap();
        assert_eq!(&raw[..n], &pt[..]);
        assert!(raw[n..].iter().all(|&b| b == pad), "n = {n}");
        assert_eq!(raw.len() - n, usize::from(pad));
        // One-shot, in place and streaming agree.
        assert_eq!(decrypt(&key, &ct).unwrap(), pt);
        let mut buf = pt.clone();
        encrypt_in_place(&key, &mut buf);
        assert_eq!(buf, ct);
        decrypt_in_place(&key, &mut buf).unwrap();
        assert_eq!(buf, pt);
        let mut enc = Encryptor::new(&key);
        let mut out = Vec::new();
        enc.update(&pt, &mut out);
        enc.finish(&mut out);
        assert_eq!(out, ct);
    }
}

#[test]
fn strict_errors_are_typed() {
    let key = MediaKey::from_bytes([1; 16]);
    assert_eq!(decrypt(&key, &[]), Err(CryptoError::Empty));
    assert_eq!(
        decrypt(&key, &[0; 15]),
        Err(CryptoError::NotBlockAligned { len: 15 })
    );
    assert_eq!(
        decrypt(&key, &[0; 17]),
        Err(CryptoError::NotBlockAligned { len: 17 })
    );
    // Encrypt a block whose last byte is 0x00: invalid PKCS#7.
    let mut bad = [0x41u8; 16];
    bad[15] = 0;
    EcbCipher::new(&key).encrypt_blocks(&mut bad).unwrap();
    assert_eq!(decrypt(&key, &bad), Err(CryptoError::BadPadding));
    // The lenient mode returns the raw plaintext instead, but still rejects bad lengths.
    let mut expected = vec![0x41u8; 16];
    expected[15] = 0;
    assert_eq!(decrypt_lenient(&key, &bad).unwrap(), expected);
    assert_eq!(
        decrypt_lenient(&key, &[0; 15]),
        Err(CryptoError::NotBlockAligned { len: 15 })
    );
    assert_eq!(decrypt_lenient(&key, &[]), Err(CryptoError::Empty));
    // Valid padding is stripped in lenient mode too.
    let ct = encrypt(&key, b"abc");
    assert_eq!(decrypt_lenient(&key, &ct).unwrap(), b"abc");
    // In place: padding error leaves raw decrypted bytes, length error leaves input.
    let mut buf = bad.to_vec();
    assert_eq!(
        decrypt_in_place(&key, &mut buf),
        Err(CryptoError::BadPadding)
    );
    let mut short = vec![9u8; 20];
    assert_eq!(
        EcbCipher::new(&key).decrypt_in_place(&mut short, Padding::Strict),
        Err(CryptoError::NotBlockAligned { len: 20 })
    );
    assert_eq!(short, vec![9u8; 20]);
}

#[test]
fn wrong_key_fails_padding_check() {
    // With a wrong key, the padding check fails unless the last decrypted byte happens to
    // form valid padding (about 1 in 256 for 0x01). Count over many keys rather than rely
    // on one key.
    let right = MediaKey::from_bytes([7; 16]);
    let ct = encrypt(&right, b"some media bytes that are not short");
    let mut failures = 0;
    for i in 0..200u8 {
        let wrong = MediaKey::from_bytes([i.wrapping_add(100); 16]);
        if decrypt(&wrong, &ct) == Err(CryptoError::BadPadding) {
            failures += 1;
        }
    }
    assert!(
        failures >= 190,
        "only {failures} of 200 wrong keys rejected"
    );
}

#[test]
fn errors_explain_themselves() {
    assert!(CryptoError::BadPadding.to_string().contains("key"));
    assert!(
        CryptoError::NotBlockAligned { len: 17 }
            .to_string()
            .contains("17")
    );
    assert!(CryptoError::Empty.to_string().contains("empty"));
}

#[test]
fn decryptor_matches_for_kat() {
    for v in vectors() {
        let ct = encrypt(&v.key, &v.plaintext);
        for chunk in [1, 3, 16, 17, 1000] {
            let mut dec = Decryptor::new(&v.key);
            let mut out = Vec::new();
            for c in ct.chunks(chunk) {
                dec.update(c, &mut out);
            }
            dec.finish(&mut out).unwrap();
            assert_eq!(out, v.plaintext, "chunk {chunk}");
        }
    }
}
