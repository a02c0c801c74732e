//! Media key decoding (docs/protocol.md §12.4): every text form a key arrives in from the
//! server (`image_item.aeskey` hex, `CDNMedia.aes_key` base64 of raw bytes or of hex).
//!
//! Properties: no panic on any input; whatever decodes re-encodes to a form that decodes
//! back to the same key.
#![no_main]

use ilink_crypto::MediaKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();

    if let Ok(key) = MediaKey::from_hex(text) {
        assert_eq!(key.to_hex(), text.trim().to_ascii_lowercase());
    }
    if let Ok(key) = MediaKey::from_cdn_aes_key(text) {
        assert_eq!(MediaKey::from_cdn_aes_key(&key.to_base64()).ok(), Some(key.clone()));
        assert_eq!(MediaKey::from_cdn_aes_key(&key.to_base64_of_hex()).ok(), Some(key));
    }
    let parsed = MediaKey::parse(text);
    if let Ok(key) = &parsed {
        assert_eq!(MediaKey::parse(&key.to_hex()).ok().as_ref(), Some(key));
    }
    assert_eq!(text.parse::<MediaKey>().ok(), parsed.ok());

    // The two inbound image fields, split at the first '|'.
    let (hex, media) = text.split_once('|').unwrap_or((text, ""));
    let chosen = MediaKey::from_image_item(Some(hex), Some(media));
    if let Ok(hex_key) = MediaKey::from_hex(hex) {
        // A valid `image_item.aeskey` always wins.
        assert_eq!(chosen.ok().flatten(), Some(hex_key));
    }
    let _ = MediaKey::from_image_item(None, Some(media));
    let _ = MediaKey::from_slice(data);
});
