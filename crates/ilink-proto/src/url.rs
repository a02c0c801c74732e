//! Query-string encoding, shared by the client (QR status query), the CDN URLs and the
//! emulator: one percent-encoder for the whole workspace.

/// Percent-encodes `s` exactly as JavaScript's `encodeURIComponent` does (the official
/// client builds its query strings with it, docs/protocol.md §6.1, §12.2): everything but
/// `A-Z a-z 0-9 - _ . ! ~ * ' ( )` becomes `%XX` (upper-case hex) of its UTF-8 bytes.
///
/// ```
/// assert_eq!(ilink_proto::encode_uri_component("QR+/= 1"), "QR%2B%2F%3D%201");
/// assert_eq!(ilink_proto::encode_uri_component("a-_.!~*'()"), "a-_.!~*'()");
/// assert_eq!(ilink_proto::encode_uri_component("中"), "%E4%B8%AD");
/// ```
#[must_use]
pub fn encode_uri_component(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

/// `path?k1=v1&k2=v2` with every key and value encoded by [`encode_uri_component`]; `path`
/// alone when `query` is empty.
#[must_use]
pub fn with_query(path: &str, query: &[(&str, &str)]) -> String {
    let mut out = path.to_owned();
    for (i, (k, v)) in query.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(&encode_uri_component(k));
        out.push('=');
        out.push_str(&encode_uri_component(v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_outside_the_unreserved_set_is_escaped() {
        for b in 0u8..=127 {
            let s = char::from(b).to_string();
            let e = encode_uri_component(&s);
            if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
                assert_eq!(e, s);
            } else {
                assert_eq!(e, format!("%{b:02X}"));
            }
        }
    }

    #[test]
    fn queries() {
        assert_eq!(with_query("a/b", &[]), "a/b");
        assert_eq!(
            with_query("a", &[("qrcode", "x y"), ("verify_code", "1&2")]),
            "a?qrcode=x%20y&verify_code=1%262"
        );
    }
}
