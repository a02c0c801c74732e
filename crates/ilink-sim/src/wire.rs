//! Small wire helpers: the opaque `get_updates_buf` cursor, query strings and
//! `X-WECHAT-UIN`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Appends a protobuf varint.
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn put_len(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, (field << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// The `sync_buf` part: `{1: position, 2: ts_ms, 3: ts_ms}`.
fn sync_part(position: u64, ts_ms: u64) -> Vec<u8> {
    let mut inner = Vec::new();
    put_varint(&mut inner, 1 << 3);
    put_varint(&mut inner, position);
    put_varint(&mut inner, 2 << 3);
    put_varint(&mut inner, ts_ms);
    put_varint(&mut inner, 3 << 3);
    put_varint(&mut inner, ts_ms);
    inner
}

/// The deprecated `sync_buf` the live server still sends: base64 of the position record.
pub(crate) fn sync_buf(position: u64, ts_ms: u64) -> String {
    STANDARD.encode(sync_part(position, ts_ms))
}

/// Encodes a cursor like the live one: base64 of a protobuf
/// `{1: {1: position, 2: ts_ms, 3: ts_ms}, 2: "<bot_id>:<token>"}`. It embeds the token,
/// so it is a secret.
pub(crate) fn encode_cursor(bot_id: &str, token: &str, position: u64, ts_ms: u64) -> String {
    let mut out = Vec::new();
    put_len(&mut out, 1, &sync_part(position, ts_ms));
    put_len(&mut out, 2, format!("{bot_id}:{token}").as_bytes());
    STANDARD.encode(out)
}

/// Decodes a cursor made by [`encode_cursor`]: `(position, "<bot_id>:<token>")`.
pub(crate) fn decode_cursor(cursor: &str) -> Option<(u64, String)> {
    let bytes = STANDARD.decode(cursor).ok()?;
    let mut pos = 0;
    let mut position = None;
    let mut owner = None;
    while pos < bytes.len() {
        let tag = get_varint(&bytes, &mut pos)?;
        if tag & 7 != 2 {
            return None;
        }
        let len = usize::try_from(get_varint(&bytes, &mut pos)?).ok()?;
        let body = bytes.get(pos..pos.checked_add(len)?)?;
        pos += len;
        match tag >> 3 {
            1 => {
                let mut p = 0;
                while p < body.len() {
                    let t = get_varint(body, &mut p)?;
                    let v = get_varint(body, &mut p)?;
                    if t >> 3 == 1 {
                        position = Some(v);
                    }
                }
            }
            2 => owner = Some(String::from_utf8(body.to_vec()).ok()?),
            _ => {}
        }
    }
    Some((position?, owner?))
}

/// Percent-decodes a query component (`+` is a space, as in form encoding).
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b.get(i) {
            Some(b'%') => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            Some(b'+') => {
                out.push(b' ');
                i += 1;
            }
            Some(&c) => {
                out.push(c);
                i += 1;
            }
            None => break,
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes like JavaScript's `encodeURIComponent` (`ilink-proto`'s encoder).
pub(crate) fn percent_encode(s: &str) -> String {
    ilink_proto::encode_uri_component(s)
}

/// Parses a raw query string into decoded pairs (undecodable pairs are skipped).
pub(crate) fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((percent_decode(k)?, percent_decode(v)?))
        })
        .collect()
}

/// The first value of `key` in a parsed query.
pub(crate) fn query_get<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Whether `X-WECHAT-UIN` is what the official client sends: base64 of the decimal
/// text of a uint32.
pub(crate) fn valid_uin(v: &str) -> bool {
    let Ok(raw) = STANDARD.decode(v) else {
        return false;
    };
    let Ok(text) = std::str::from_utf8(&raw) else {
        return false;
    };
    !text.is_empty()
        && text.bytes().all(|c| c.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'))
        && text.parse::<u32>().is_ok()
}

/// Whether `id` looks like a WeChat user id: `<local>@im.wechat`, with a non-empty local part
/// of printable ASCII without spaces, at most 256 bytes (live ids are about 40).
pub(crate) fn is_wechat_user_id(id: &str) -> bool {
    id.len() <= 256
        && id.strip_suffix("@im.wechat").is_some_and(|local| {
            !local.is_empty() && local.bytes().all(|c| c.is_ascii_graphic() && c != b'@')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_embeds_token() {
        let c = encode_cursor("b0f5@im.bot", "TOKEN", 42, 1_774_245_556_513);
        assert!(c.len() > 40);
        let (p, owner) = decode_cursor(&c).unwrap();
        assert_eq!(p, 42);
        assert_eq!(owner, "b0f5@im.bot:TOKEN");
        assert!(decode_cursor("BUF-1").is_none());
        assert!(decode_cursor("").is_none());
    }

    #[test]
    fn percent_coding() {
        assert_eq!(percent_encode("UP+/="), "UP%2B%2F%3D");
        assert_eq!(percent_decode("UP%2B%2F%3D").unwrap(), "UP+/=");
        assert_eq!(percent_decode("a+b").unwrap(), "a b");
        let q = parse_query("encrypted_query_param=UP%2B%2F%3D&filekey=ab");
        assert_eq!(query_get(&q, "encrypted_query_param"), Some("UP+/="));
        assert_eq!(query_get(&q, "filekey"), Some("ab"));
    }

    #[test]
    fn uin_validation() {
        assert!(valid_uin("MjczNTkyMDUxNA=="));
        assert!(valid_uin("ODQxNDU1Nzc1"));
        assert!(!valid_uin("NOT-BASE64!"));
        assert!(!valid_uin("OTk5OTk5OTk5OTk=")); // 99999999999 > u32
    }
}
