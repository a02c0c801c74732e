//! Property tests: sniffing and URL encoding never panic and behave on arbitrary input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ilink_cdn::{HostAllowlist, encode_uri_component, sniff};
use proptest::prelude::*;

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

proptest! {
    #[test]
    fn sniff_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Some(f) = sniff(&data) {
            prop_assert!(!f.mime().is_empty());
            prop_assert!(!f.extension().is_empty());
        }
    }

    #[test]
    fn encoding_is_safe_and_reversible(s in ".{0,40}") {
        let enc = encode_uri_component(&s);
        prop_assert!(enc.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()%".contains(&b)));
        prop_assert_eq!(percent_decode(&enc), s.as_bytes().to_vec());
    }

    #[test]
    fn allowlist_never_panics(host in ".{0,40}") {
        let list = HostAllowlist::default().with("127.0.0.1");
        let _ = list.allows_host(&host);
    }
}
