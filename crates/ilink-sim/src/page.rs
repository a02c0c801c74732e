//! The web page that plays the phone (served at `/`), its live event stream
//! (`GET /_sim/events`, server-sent events) and the JSON it reads (`/_sim/ui/...`).

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::model::TypingState;
use crate::server::{Incoming2, Reply};
use crate::state::{Shared, media_of};

/// The page: plain HTML, CSS and JavaScript, no build step.
const INDEX_HTML: &str = include_str!("page/index.html");

/// Messages of one conversation the page shows (the newest).
const PAGE_MESSAGES: usize = 200;

pub(crate) fn index() -> Reply {
    Reply {
        status: 200,
        headers: vec![
            ("content-type", "text/html; charset=utf-8".to_owned()),
            ("cache-control", "no-store".to_owned()),
            // The page loads nothing from elsewhere.
            (
                "content-security-policy",
                "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: data:; \
                 style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'"
                    .to_owned(),
            ),
        ],
        body: Bytes::from_static(INDEX_HTML.as_bytes()),
    }
}

/// Whether a page or admin request may proceed. Other web sites open in the same browser must
/// not drive the emulator: the `Host` must be an IP address or `localhost` (no DNS rebinding),
/// and an `Origin`, if sent, must be this server's own. Then, on a loopback emulator without a
/// token, yes; otherwise the request must carry the token (`X-Sim-Token` header or `?token=`).
pub(crate) fn allowed(shared: &Shared, inc: &Incoming2) -> bool {
    let host = inc.header("host").unwrap_or("");
    if !host.is_empty() && !is_literal_host(host) {
        return false;
    }
    if let Some(origin) = inc.header("origin")
        && !host.is_empty()
        && origin != format!("http://{host}")
    {
        return false;
    }
    let Some(token) = shared.access_token.as_ref() else {
        return true;
    };
    let given = inc.header("x-sim-token").or_else(|| inc.query("token"));
    given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.expose().as_bytes()))
}

/// `127.0.0.1:8787`, `[::1]:8787`, `localhost:8787`: an address, not a name DNS could point here.
fn is_literal_host(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|c| c.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn item_kind(item: &Value) -> &'static str {
    match item.get("type").and_then(Value::as_u64) {
        Some(1) => "text",
        Some(2) => "image",
        Some(3) => "voice",
        Some(4) => "file",
        Some(5) => "video",
        _ => "other",
    }
}

/// What the page needs of one item: its kind, text, file name, duration, and whether it has
/// media to fetch from `/_sim/ui/media/{id}`.
fn item_view(item: &Value) -> Value {
    let text = item
        .get("text_item")
        .and_then(|t| t.get("text"))
        .or_else(|| item.get("voice_item").and_then(|v| v.get("text")))
        .and_then(Value::as_str);
    json!({
        "kind": item_kind(item),
        "text": text,
        "file_name": item.get("file_item").and_then(|f| f.get("file_name")).and_then(Value::as_str),
        "playtime_ms": item.get("voice_item").and_then(|v| v.get("playtime")).and_then(Value::as_u64),
        "has_media": media_of(item).is_some(),
    })
}

fn with(mut v: Value, extra: Value) -> Value {
    if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
    v
}

fn ms(d: Option<std::time::Duration>) -> Value {
    d.map_or(Value::Null, |d| {
        json!(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    })
}

/// `GET /_sim/ui/state`: everything the page shows, in one read.
pub(crate) fn state(shared: &Arc<Shared>) -> Value {
    let cfg = &shared.config;
    let now = shared.now_ms();
    let st = shared.lock();
    let mut convs: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
    for i in st.inbound.iter() {
        let item = i
            .message
            .get("item_list")
            .and_then(|l| l.get(0))
            .cloned()
            .unwrap_or(Value::Null);
        convs
            .entry((i.bot_id.clone(), i.from_user_id.clone()))
            .or_default()
            .push(with(
                item_view(&item),
                json!({"id": i.message_id.to_string(), "dir": "in",
                       "at_ms": i.message.get("create_time_ms")}),
            ));
    }
    for d in st.delivered.iter() {
        convs
            .entry((d.bot_id.clone(), d.to_user_id.clone()))
            .or_default()
            .push(with(
                item_view(&d.item),
                json!({"id": d.message_id.to_string(), "dir": "out", "at_ms": d.at_ms}),
            ));
    }
    for (n, d) in st.dropped.iter().enumerate() {
        let (Some(bot), Some(user)) = (&d.bot_id, &d.to_user_id) else {
            continue;
        };
        let item = d
            .raw
            .get("msg")
            .and_then(|m| m.get("item_list"))
            .and_then(|l| l.get(0))
            .cloned()
            .unwrap_or(Value::Null);
        let mut view = item_view(&item);
        if let Some(o) = view.as_object_mut() {
            o.insert("has_media".into(), json!(false));
        }
        convs
            .entry((bot.clone(), user.clone()))
            .or_default()
            .push(with(
                view,
                json!({"id": format!("dropped-{n}"), "dir": "refused", "at_ms": d.at_ms,
                       "reason": d.reason.to_string(), "reason_code": d.reason,
                       "answered": d.answered}),
            ));
    }
    let conversations: Vec<Value> = convs
        .into_iter()
        .map(|((bot, user), mut msgs)| {
            msgs.sort_by_key(|m| m.get("at_ms").and_then(Value::as_u64).unwrap_or(0));
            let skip = msgs.len().saturating_sub(PAGE_MESSAGES);
            let msgs: Vec<Value> = msgs.into_iter().skip(skip).collect();
            let conv = st.convs.get(&(bot.clone(), user.clone()));
            let replies = conv.map_or(0, |c| c.replies);
            let window_left = cfg.reply_window.map(|w| {
                let w = u64::try_from(w.as_millis()).unwrap_or(u64::MAX);
                conv.map_or(0, |c| {
                    c.last_inbound_ms.saturating_add(w).saturating_sub(now)
                })
            });
            let typing = st.typing.get(&user).map(|t| match t {
                TypingState::Typing => "typing",
                TypingState::Cancelled => "cancelled",
            });
            json!({
                "bot_id": bot,
                "user_id": user,
                "replies": replies,
                "replies_left": cfg.reply_limit.map(|l| l.saturating_sub(replies)),
                "window_left_ms": window_left,
                "typing": typing,
                "messages": msgs,
            })
        })
        .collect();
    let bots: Vec<Value> = st
        .bots
        .values()
        .map(|b| {
            json!({
                "bot_id": b.account.bot_id,
                "user_id": b.account.user_id,
                "stale": b.stale,
                "inbox_len": b.stream_len(),
                "acked": b.acked,
                "notify_started": b.notify_started,
                "notify_stopped": b.notify_stopped,
            })
        })
        .collect();
    let qr: Vec<Value> = st
        .qr_sessions
        .iter()
        .map(|s| serde_json::to_value(s.info()).unwrap_or(Value::Null))
        .collect();
    let faults: Vec<Value> = st
        .faults
        .pending()
        .into_iter()
        .map(|(e, f, n)| json!({"endpoint": e, "fault": f, "times": n}))
        .collect();
    json!({
        "now_ms": now,
        "base_url": shared.base_url(),
        "cdn_base_url": shared.cdn_base_url(),
        "voice_codec": cfg.voice_codec.is_some(),
        "policies": {
            "reply_limit": cfg.reply_limit,
            "reply_window_ms": ms(cfg.reply_window),
            "burst": cfg.burst.map(|b| json!({"max_sends": b.max_sends, "window_ms": ms(Some(b.window))})),
            "burst_scope": cfg.burst_scope,
            "token_lifetime_ms": ms(cfg.token_lifetime),
            "context_token_lifetime_ms": ms(cfg.context_token_lifetime),
            "require_context_token": cfg.require_context_token,
            "upload_checks": cfg.upload_checks,
            "max_upload_bytes": cfg.max_upload_bytes,
        },
        "bots": bots,
        "qr_sessions": qr,
        "faults": faults,
        "conversations": conversations,
        "memory": st.retention_stats(),
    })
}

fn sniff(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(b"\x89PNG") {
        "image/png"
    } else if bytes.starts_with(b"\xFF\xD8\xFF") {
        "image/jpeg"
    } else if bytes.starts_with(b"GIF8") {
        "image/gif"
    } else if bytes.get(..4) == Some(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        "image/webp"
    } else if bytes.get(..4) == Some(b"RIFF") && bytes.get(8..12) == Some(b"WAVE") {
        "audio/wav"
    } else {
        "application/octet-stream"
    }
}

/// A header-safe file name: ASCII letters, digits, `.`, `-`, `_` (others become `_`).
fn safe_file_name(name: &str) -> String {
    let s: String = name
        .chars()
        .take(120)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "file.bin".to_owned()
    } else {
        s
    }
}

/// `GET /_sim/ui/media/{message_id}[?as=wav|download]`: the decrypted media of a message the
/// bot delivered or a user sent; voice as WAV (with a codec), files as a download.
pub(crate) fn media(shared: &Arc<Shared>, id: &str, inc: &Incoming2) -> Reply {
    let Ok(id) = id.parse::<u64>() else {
        return Reply::admin_json(400, &json!({"error": "message id must be a number"}));
    };
    let item = {
        let st = shared.lock();
        st.delivered
            .iter()
            .rev()
            .find(|d| d.message_id == id)
            .map(|d| d.item.clone())
            .or_else(|| {
                st.inbound
                    .iter()
                    .rev()
                    .find(|i| i.message_id == id)
                    .and_then(|i| i.message.get("item_list")?.get(0).cloned())
            })
    };
    let Some(item) = item else {
        return Reply::admin_json(
            404,
            &json!({"error": "no such message (or dropped by the cap)"}),
        );
    };
    let bytes = match crate::user::download(shared, &item) {
        Ok(b) => b,
        Err(e) => return Reply::admin_json(404, &json!({"error": e.to_string()})),
    };
    let mut headers = vec![("cache-control", "no-store".to_owned())];
    let (bytes, ctype) = match (inc.query("as"), item_kind(&item)) {
        (Some("wav"), "voice") => match &shared.config.voice_codec {
            Some(codec) => match codec.0.decode_to_wav(&bytes) {
                Ok(wav) => (wav, "audio/wav"),
                Err(e) => {
                    return Reply::admin_json(
                        422,
                        &json!({"error": format!("cannot decode the voice: {e}")}),
                    );
                }
            },
            None => {
                return Reply::admin_json(
                    501,
                    &json!({"error": "no voice codec: run the emulator with `ilink sim`"}),
                );
            }
        },
        (_, "voice") => (bytes, "audio/silk"),
        (_, "video") => (bytes, "video/mp4"),
        _ => {
            let t = sniff(&bytes);
            (bytes, t)
        }
    };
    if inc.query("as") == Some("download") || item_kind(&item) == "file" {
        let name = item
            .get("file_item")
            .and_then(|f| f.get("file_name"))
            .and_then(Value::as_str)
            .unwrap_or("media.bin");
        headers.push((
            "content-disposition",
            format!("attachment; filename=\"{}\"", safe_file_name(name)),
        ));
    }
    headers.push(("content-type", ctype.to_owned()));
    Reply {
        status: 200,
        headers,
        body: Bytes::from(bytes),
    }
}

/// Encodes browser audio (WAV, or anything the codec reads) to SILK with the configured codec.
pub(crate) fn encode_voice(shared: &Shared, audio_base64: &str) -> Result<(Vec<u8>, u64), Reply> {
    let audio = STANDARD
        .decode(audio_base64)
        .map_err(|e| Reply::admin_json(400, &json!({"error": format!("data_base64: {e}")})))?;
    let Some(codec) = &shared.config.voice_codec else {
        return Err(Reply::admin_json(
            501,
            &json!({"error": "no voice codec: run the emulator with `ilink sim`, or send SILK"}),
        ));
    };
    codec.0.encode(&audio).map_err(|e| {
        Reply::admin_json(
            422,
            &json!({"error": format!("cannot encode the audio: {e}")}),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_header_safe() {
        assert_eq!(safe_file_name("a b\"c\r\n.txt"), "a_b_c__.txt");
        assert_eq!(safe_file_name(""), "file.bin");
        assert_eq!(safe_file_name(&"x".repeat(500)).len(), 120);
    }

    #[test]
    fn sniffs_common_formats() {
        assert_eq!(sniff(b"\x89PNG\r\n"), "image/png");
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0"), "image/jpeg");
        assert_eq!(sniff(b"RIFF\0\0\0\0WAVEfmt "), "audio/wav");
        assert_eq!(sniff(b"hello"), "application/octet-stream");
    }

    #[test]
    fn only_literal_hosts() {
        for ok in [
            "127.0.0.1:80",
            "localhost:8787",
            "[::1]:9",
            "10.0.0.5",
            "::1",
        ] {
            assert!(is_literal_host(ok), "{ok}");
        }
        for bad in [
            "evil.example:8787",
            "127.0.0.1.nip.io",
            "localhost.evil.example:1",
        ] {
            assert!(!is_literal_host(bad), "{bad}");
        }
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
