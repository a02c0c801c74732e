//! CDN URL rules (docs/protocol.md §12.2, §12.3) fed with server-supplied strings: the
//! `upload_param` / `encrypt_query_param` / `upload_full_url` of getuploadurl and messages,
//! the full-URL host allowlist, and media sniffing of downloaded bytes.
//!
//! Input: a selector byte, then fields separated by `\n`. Properties: no panic;
//! `encode_uri_component` output is only unreserved characters and `%XX`, and percent-decodes
//! back to the input; a parameter can never move a built URL off the CDN host or path
//! (checked with the same `http::Uri` parser the CDN client uses); `*.suffix` allowlist
//! entries never match the bare suffix.
#![no_main]

use ilink_cdn::{HostAllowlist, SNIFF_LEN, built_download_url, encode_uri_component, sniff, upload_url};
use libfuzzer_sys::fuzz_target;

const BASE: &str = "https://novac2c.cdn.weixin.qq.com/c2c";

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).expect("ASCII");
            out.push(u8::from_str_radix(hex, 16).expect("two hex digits after %"));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fn check_on_cdn(url: &str, path: &str) {
    let uri: http::Uri = url.parse().expect("a built CDN URL parses");
    assert_eq!(uri.host(), Some("novac2c.cdn.weixin.qq.com"), "{url}");
    assert_eq!(uri.path(), path, "{url}");
    assert!(uri.query().is_some_and(|q| !q.contains('#')));
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let mut fields = text.split('\n');
    let a = fields.next().unwrap_or("");
    let b = fields.next().unwrap_or("");
    match selector % 4 {
        0 => {
            let enc = encode_uri_component(a);
            assert!(enc.bytes().all(|c| c.is_ascii_alphanumeric() || b"-_.!~*'()%".contains(&c)));
            assert_eq!(percent_decode(&enc), a.as_bytes());
            check_on_cdn(&built_download_url(BASE, a), "/c2c/download");
        }
        1 => {
            // upload_param and filekey from the server / our own generator
            match upload_url(BASE, None, Some(a), b) {
                Ok(url) => check_on_cdn(&url, "/c2c/upload"),
                Err(_) => assert!(a.is_empty()),
            }
            // a full URL wins whenever it is non-blank
            if let Ok(url) = upload_url(BASE, Some(a), Some("P"), b) {
                if !a.trim().is_empty() {
                    assert_eq!(url, a.trim());
                }
            }
        }
        2 => {
            let list = HostAllowlist::new(a.split(',').filter(|s| !s.is_empty()));
            let allowed = list.allows_host(b);
            for entry in list.entries() {
                if let Some(suffix) = entry.strip_prefix("*.") {
                    let bare = HostAllowlist::new([entry.as_str()]);
                    assert!(!bare.allows_host(suffix), "*.{suffix} matched {suffix}");
                }
            }
            let _ = allowed;
            let _ = HostAllowlist::default().allows_host(b);
        }
        _ => {
            let whole = sniff(rest);
            let head = sniff(&rest[..rest.len().min(SNIFF_LEN)]);
            assert_eq!(whole, head, "sniff looked beyond SNIFF_LEN");
            if let Some(format) = whole {
                let _ = (format.kind(), format.mime(), format.extension());
            }
        }
    }
});
