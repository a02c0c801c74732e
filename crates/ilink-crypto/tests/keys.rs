//! Media key decoding: every inbound form, the image rule, and typed errors (docs/protocol.md §12.4).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ilink_crypto::{KeyError, MediaKey};

const HEX: &str = "00112233445566778899aabbccddeeff";
const BYTES: [u8; 16] = [
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
];

#[test]
fn wire_example_from_protocol() {
    // §12.4 [wire]: the key sent to getuploadurl and the aes_key of the sendmessage that followed.
    let key = MediaKey::from_hex("49009329a07bd051433b8a96781c72ef").unwrap();
    assert_eq!(key.to_hex(), "49009329a07bd051433b8a96781c72ef");
    assert_eq!(
        key.to_base64_of_hex(),
        "NDkwMDkzMjlhMDdiZDA1MTQzM2I4YTk2NzgxYzcyZWY="
    );
    assert_eq!(key.to_base64_of_hex().len(), 44);
    let inbound =
        MediaKey::from_cdn_aes_key("NDkwMDkzMjlhMDdiZDA1MTQzM2I4YTk2NzgxYzcyZWY=").unwrap();
    assert_eq!(inbound, key);
}

#[test]
fn cdn_aes_key_forms() {
    // (input, what it is)
    let table: &[(&str, &str)] = &[
        // base64 of the 16 raw bytes (24 chars), seen on images
        ("ABEiM0RVZneImaq7zN3u/w==", "raw, standard, padded"),
        ("ABEiM0RVZneImaq7zN3u/w", "raw, standard, unpadded"),
        ("ABEiM0RVZneImaq7zN3u_w==", "raw, url-safe, padded"),
        ("ABEiM0RVZneImaq7zN3u_w", "raw, url-safe, unpadded"),
        (
            "  ABEiM0RVZneImaq7zN3u/w==\n",
            "raw, surrounding whitespace",
        ),
        // base64 of the 32 hex characters (44 chars), seen on file, voice, video
        (
            "MDAxMTIyMzM0NDU1NjY3Nzg4OTlhYWJiY2NkZGVlZmY=",
            "hex, padded",
        ),
        (
            "MDAxMTIyMzM0NDU1NjY3Nzg4OTlhYWJiY2NkZGVlZmY",
            "hex, unpadded",
        ),
        // upper-case hex inside the base64
        (
            "MDAxMTIyMzM0NDU1NjY3Nzg4OTlBQUJCQ0NEREVFRkY=",
            "upper-case hex",
        ),
    ];
    for (input, what) in table {
        let key = MediaKey::from_cdn_aes_key(input).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(key.as_bytes(), &BYTES, "{what}");
        assert_eq!(MediaKey::parse(input).unwrap(), key, "{what}");
    }
    assert_eq!(
        MediaKey::from_bytes(BYTES).to_base64(),
        "ABEiM0RVZneImaq7zN3u/w=="
    );
}

#[test]
fn url_safe_only_characters_decode() {
    // A key whose raw base64 needs '+' and '/' in the standard alphabet.
    let key = MediaKey::from_bytes([0xfb; 16]);
    let standard = key.to_base64();
    assert!(standard.contains('+') || standard.contains('/'));
    let url_safe = standard.replace('+', "-").replace('/', "_");
    assert_eq!(MediaKey::from_cdn_aes_key(&url_safe).unwrap(), key);
    assert_eq!(
        MediaKey::from_cdn_aes_key(url_safe.trim_end_matches('=')).unwrap(),
        key
    );
}

#[test]
fn hex_forms() {
    assert_eq!(MediaKey::from_hex(HEX).unwrap().as_bytes(), &BYTES);
    assert_eq!(
        MediaKey::from_hex(&HEX.to_uppercase()).unwrap().as_bytes(),
        &BYTES
    );
    assert_eq!(MediaKey::parse(HEX).unwrap().as_bytes(), &BYTES);
    assert_eq!(MediaKey::from_bytes(BYTES).to_hex(), HEX);
    assert_eq!(HEX.parse::<MediaKey>().unwrap().as_bytes(), &BYTES);
}

#[test]
fn malformed_keys_are_typed_errors() {
    let table: &[(&str, KeyError)] = &[
        ("", KeyError::Empty),
        ("   ", KeyError::Empty),
        // observed-payloads.json carries these malformed keys
        ("k", KeyError::InvalidBase64 { len: 1 }),
        // 12 decoded bytes
        ("AAAAAAAAAAAAAAAA", KeyError::WrongDecodedLength { len: 12 }),
        // 32 bytes that are not hex: base64 of 32 'z'
        (
            "enp6enp6enp6enp6enp6enp6enp6enp6enp6enp6eno=",
            KeyError::WrongDecodedLength { len: 32 },
        ),
        ("not base64 at all!", KeyError::InvalidBase64 { len: 18 }),
        (
            "ABEiM0RVZneImaq7zN3u+_w=",
            KeyError::InvalidBase64 { len: 24 },
        ),
        // Raw hex is not the CDN form: it base64-decodes to 24 bytes.
        (HEX, KeyError::WrongDecodedLength { len: 24 }),
    ];
    for (input, want) in table {
        assert_eq!(
            MediaKey::from_cdn_aes_key(input).unwrap_err(),
            *want,
            "input {input:?}"
        );
    }
    let long = "A".repeat(200);
    assert_eq!(
        MediaKey::from_cdn_aes_key(&long).unwrap_err(),
        KeyError::InvalidBase64 { len: 200 }
    );

    for (input, want) in [
        ("00", KeyError::InvalidHex { len: 2 }),
        ("", KeyError::Empty),
        (
            "00112233445566778899aabbccddeefg",
            KeyError::InvalidHex { len: 32 },
        ),
        (
            "00112233445566778899aabbccddeeff00",
            KeyError::InvalidHex { len: 34 },
        ),
        ("ключ", KeyError::InvalidHex { len: 4 }),
    ] {
        assert_eq!(MediaKey::from_hex(input).unwrap_err(), want, "{input:?}");
    }
}

#[test]
fn error_messages_never_contain_the_key() {
    let secretish = "00112233445566778899aabbccddeefg";
    let msg = MediaKey::from_hex(secretish).unwrap_err().to_string();
    assert!(!msg.contains("001122"), "{msg}");
    let msg = MediaKey::from_cdn_aes_key("AAAAAAAAAAAAAAAA")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("12 bytes"), "{msg}");
}

#[test]
fn image_rule_prefers_aeskey() {
    let other = MediaKey::from_bytes([0x42; 16]);
    // Both present: image_item.aeskey wins.
    let key = MediaKey::from_image_item(Some(HEX), Some(&other.to_base64_of_hex()))
        .unwrap()
        .unwrap();
    assert_eq!(key.as_bytes(), &BYTES);
    // Only media.aes_key (either form).
    let key = MediaKey::from_image_item(None, Some(&other.to_base64()))
        .unwrap()
        .unwrap();
    assert_eq!(key, other);
    let key = MediaKey::from_image_item(Some(""), Some(&other.to_base64_of_hex()))
        .unwrap()
        .unwrap();
    assert_eq!(key, other);
    // Neither: a plain (unencrypted) image.
    assert!(MediaKey::from_image_item(None, None).unwrap().is_none());
    assert!(
        MediaKey::from_image_item(Some(" "), Some(""))
            .unwrap()
            .is_none()
    );
    // Malformed aeskey ("00" was captured live) falls back to a valid media.aes_key ...
    let key = MediaKey::from_image_item(Some("00"), Some("ABEiM0RVZneImaq7zN3u/w=="))
        .unwrap()
        .unwrap();
    assert_eq!(key.as_bytes(), &BYTES);
    // ... and without one, its own error is reported.
    assert_eq!(
        MediaKey::from_image_item(Some("00"), None).unwrap_err(),
        KeyError::InvalidHex { len: 2 }
    );
    assert_eq!(
        MediaKey::from_image_item(Some("00"), Some("k")).unwrap_err(),
        KeyError::InvalidHex { len: 2 }
    );
    assert_eq!(
        MediaKey::from_image_item(None, Some("k")).unwrap_err(),
        KeyError::InvalidBase64 { len: 1 }
    );
}
