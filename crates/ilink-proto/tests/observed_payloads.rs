//! Every JSON payload users captured from the live server (or documented) decodes without
//! loss and re-encodes to an equal JSON value (docs/protocol.md §19).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use ilink_proto::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

const OBSERVED: &str = include_str!("data/observed-payloads.json");

fn payloads() -> Vec<Value> {
    serde_json::from_str::<Vec<Value>>(OBSERVED).unwrap()
}

fn by_id(id: &str) -> Value {
    payloads()
        .into_iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("no payload {id}"))["payload"]
        .clone()
}

/// Decodes from bytes (the path real traffic takes), re-encodes, compares.
fn lossless<T: Serialize + DeserializeOwned>(id: &str, payload: &Value) -> T {
    let bytes = serde_json::to_vec(payload).unwrap();
    let typed: T = decode(&bytes).unwrap_or_else(|e| panic!("{id}: {e}"));
    assert_eq!(&serde_json::to_value(&typed).unwrap(), payload, "{id}");
    typed
}

/// Fields the official client's types do not name but live traffic carries (§19).
const KNOWN_EXTRA_MESSAGE_KEYS: &[&str] = &["root_id", "parent_id"];
const KNOWN_EXTRA_ITEM_KEYS: &[&str] = &["button_item_list", "at_bot_username_list"];

fn check_message(id: &str, m: &WeixinMessage) {
    for k in m.extra.keys() {
        assert!(
            KNOWN_EXTRA_MESSAGE_KEYS.contains(&k.as_str()),
            "{id}: untyped key {k}"
        );
    }
    for item in m.items() {
        check_item(id, item);
    }
}

fn check_item(id: &str, item: &MessageItem) {
    for k in item.extra.keys() {
        assert!(
            KNOWN_EXTRA_ITEM_KEYS.contains(&k.as_str()),
            "{id}: untyped item key {k}"
        );
    }
    if let Some(r) = &item.ref_msg {
        assert!(r.extra.is_empty(), "{id}: untyped ref_msg keys");
        if let Some(q) = &r.message_item {
            check_item(id, q);
        }
    }
}

/// Which type an `inbound-message` payload is, by its shape: the fixture mixes whole
/// messages, single items, a `ref_msg` value and a `CDNMedia` value.
fn inbound_kind(payload: &Value) -> &'static str {
    let o = payload.as_object().unwrap();
    if o.contains_key("encrypt_query_param") {
        "cdn_media"
    } else if o.len() == 1 && o.contains_key("message_item") {
        "ref_msg"
    } else if o.contains_key("type") {
        "item"
    } else {
        "message"
    }
}

#[test]
fn every_observed_payload_round_trips() {
    let mut handled: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut skipped = Vec::new();
    for p in payloads() {
        let id = p["id"].as_str().unwrap();
        let endpoint = p["endpoint"].as_str().unwrap();
        let direction = p["direction"].as_str().unwrap();
        let payload = &p["payload"];
        if direction == "headers" {
            // HTTP headers / transport meta, not a JSON body (content type, CDN headers).
            skipped.push((id.to_owned(), "headers, not a body"));
            continue;
        }
        if payload.is_string() {
            // A client log line quoting the status (ret=-2 errcode=0 ...), not JSON; the
            // statuses they describe are in `log_line_statuses_classify`.
            skipped.push((id.to_owned(), "log text, not JSON"));
            continue;
        }
        let path = endpoint
            .split_whitespace()
            .nth(1)
            .unwrap()
            .split('?')
            .next()
            .unwrap();
        let ep = Endpoint::from_path(path).unwrap_or_else(|| panic!("{id}: {path}"));
        let kind: &'static str = match (ep, direction) {
            (Endpoint::GetUpdates, "response") => {
                let r: GetUpdatesResponse = lossless(id, payload);
                for m in r.messages() {
                    check_message(id, &m.unwrap());
                }
                "getupdates response"
            }
            (Endpoint::GetUpdates, "inbound-message") => match inbound_kind(payload) {
                "cdn_media" => {
                    let m: CdnMedia = lossless(id, payload);
                    assert!(m.extra.is_empty());
                    "cdn media"
                }
                "ref_msg" => {
                    let r: RefMessage = lossless(id, payload);
                    check_item(id, r.message_item.as_ref().unwrap());
                    "ref_msg"
                }
                "item" => {
                    let item: MessageItem = lossless(id, payload);
                    check_item(id, &item);
                    "item"
                }
                _ => {
                    let m: WeixinMessage = lossless(id, payload);
                    check_message(id, &m);
                    "message"
                }
            },
            (Endpoint::SendMessage, "request") => {
                let r: SendMessageRequest = lossless(id, payload);
                check_message(id, r.msg.as_ref().unwrap());
                "sendmessage request"
            }
            (Endpoint::SendMessage, "response") => {
                let _: SendMessageResponse = lossless(id, payload);
                "sendmessage response"
            }
            (Endpoint::GetUploadUrl, "request") => {
                let r: GetUploadUrlRequest = lossless(id, payload);
                assert!(r.extra.is_empty());
                "getuploadurl request"
            }
            (Endpoint::GetUploadUrl, "response") => {
                let r: GetUploadUrlResponse = lossless(id, payload);
                assert!(r.extra.is_empty());
                "getuploadurl response"
            }
            (Endpoint::GetConfig, "request") => {
                let _: GetConfigRequest = lossless(id, payload);
                "getconfig request"
            }
            (Endpoint::GetConfig, "response") => {
                let r: GetConfigResponse = lossless(id, payload);
                assert!(r.extra.is_empty());
                "getconfig response"
            }
            (Endpoint::SendTyping, "request") => {
                let _: SendTypingRequest = lossless(id, payload);
                "sendtyping request"
            }
            (Endpoint::NotifyStart | Endpoint::NotifyStop, "response") => {
                let _: NotifyResponse = lossless(id, payload);
                "notify response"
            }
            (Endpoint::GetBotQrCode, "request") => {
                let _: GetBotQrCodeRequest = lossless(id, payload);
                "get_bot_qrcode request"
            }
            (Endpoint::GetBotQrCode, "response") => {
                let r: GetBotQrCodeResponse = lossless(id, payload);
                assert!(r.extra.is_empty());
                "get_bot_qrcode response"
            }
            (Endpoint::GetQrCodeStatus, "response") => {
                let r: QrCodeStatusResponse = lossless(id, payload);
                assert!(r.extra.is_empty());
                "get_qrcode_status response"
            }
            other => panic!("{id}: no type for {other:?}"),
        };
        *handled.entry(kind).or_default() += 1;
    }
    let total: usize = handled.values().sum();
    assert_eq!(total + skipped.len(), payloads().len());
    assert_eq!(skipped.len(), 8, "{skipped:?}");
    assert_eq!(total, 35, "{handled:?}");
}

#[test]
fn live_getupdates_without_ret_is_success_and_keeps_big_ids() {
    let r: GetUpdatesResponse = lossless("x", &by_id("getupdates-text-python-log-comment"));
    assert_eq!(r.ret, None);
    assert!(r.status().is_ok());
    assert_eq!(r.long_poll_timeout(), None);
    assert!(r.sync_buf.is_some());
    assert_eq!(r.next_cursor().unwrap().expose(), "REDACTED");
    let m = r.into_messages().remove(0).unwrap();
    let id = m.message_id.as_ref().unwrap();
    assert!(id.is_number());
    assert_eq!(id.as_u64(), Some(7441725234877553672));
    assert!(m.client_id.as_ref().unwrap().len() > 100);
    assert_eq!(m.delete_time_ms, Some(0));
    assert_eq!(m.body_text(), Some("ai"));
    let dbg = format!("{m:?}");
    assert!(!dbg.contains("AARzJWAF"), "context token leaked into Debug");
}

#[test]
fn observed_quote_shape() {
    let m: WeixinMessage = lossless("q", &by_id("ref-msg-observed-quote-shape"));
    let item = &m.items()[0];
    let own = item.msg_id.as_ref().unwrap();
    assert_eq!(own.as_str(), "v1:3763981292873992349");
    assert_eq!(own.as_u64(), None);
    let quoted = item
        .ref_msg
        .as_ref()
        .unwrap()
        .message_item
        .as_ref()
        .unwrap();
    assert!(quoted.type_absent);
    let qid = quoted.msg_id.as_ref().unwrap();
    assert!(qid.is_number());
    assert_eq!(qid.as_u64(), Some(7504586663532869128));
    assert_eq!(
        m.message_id.as_ref().unwrap().as_u64(),
        Some(7504586783419756808)
    );
}

#[test]
fn drift_fields_are_kept() {
    let m: WeixinMessage = lossless("d", &by_id("doc-drift-known-fields"));
    assert_eq!(m.extra["root_id"], 0);
    let img = &m.items()[0];
    assert_eq!(img.item_type, ItemType::Image);
    assert_eq!(img.extra["button_item_list"], Value::Array(vec![]));
    let media = img.media().unwrap();
    assert_eq!(media.full_url.as_deref(), Some("u"));
    assert_eq!(media.encrypt_type, None);
    assert_eq!(img.image_item.as_ref().unwrap().hd_size, Some(0));
    let r = m.items()[1].ref_msg.as_ref().unwrap();
    assert_eq!(r.svr_id.as_ref().unwrap().as_str(), "9");
}

#[test]
fn media_items_decode_typed() {
    let v: MessageItem = lossless("v", &by_id("doc-voice-item"));
    let voice = v.voice_item.as_ref().unwrap();
    assert_eq!(voice.encode_type, Some(VoiceEncodeType::Silk));
    assert_eq!(voice.sample_rate, Some(24000));
    assert_eq!(voice.text.as_deref(), Some("我下午三点到。"));
    let f: MessageItem = lossless("f", &by_id("doc-file-item"));
    let file = f.file_item.as_ref().unwrap();
    assert_eq!(file.len.as_deref(), Some("542188"));
    assert_eq!(file.len_bytes(), Some(542188));
    let i: MessageItem = lossless("i", &by_id("doc-image-item"));
    let image = i.image_item.as_ref().unwrap();
    assert_eq!(image.aeskey.as_ref().unwrap().len(), 32);
    assert!(image.thumb_media.is_some());
    let vid: MessageItem = lossless("vid", &by_id("doc-video-item"));
    assert_eq!(vid.video_item.as_ref().unwrap().video_size, Some(10485776));
    assert!(vid.media().unwrap().is_downloadable());
}

#[test]
fn observed_statuses_classify() {
    let cases: &[(&str, Option<i64>)] = &[
        ("sendmessage-ret-2-reply-limit", Some(-2)),
        ("sendmessage-ret-2-invalid-arguments", Some(-2)),
        ("sendmessage-ret0-no-message-id", None),
        ("sendmessage-empty-object-early", None),
        ("getuploadurl-ret-minus1", Some(-1)),
        ("getuploadurl-ret-minus2", Some(-2)),
        ("getconfig-ilink-user-id-required", Some(-2)),
        ("doc-getupdates-error-14", Some(-14)),
        ("doc-getconfig-response", None),
    ];
    for (id, code) in cases {
        let env: Envelope = decode(&serde_json::to_vec(&by_id(id)).unwrap()).unwrap();
        assert_eq!(env.status().err().and_then(|e| e.code()), *code, "{id}");
    }
    let e: Envelope =
        decode(&serde_json::to_vec(&by_id("getconfig-ilink-user-id-required")).unwrap()).unwrap();
    assert_eq!(
        e.status().unwrap_err().throttle_reason(),
        Some(ThrottleReason::InvalidArguments)
    );
    let r: SendMessageResponse = lossless("s", &by_id("sendmessage-ret0-no-message-id"));
    assert!(r.status().is_ok());
    assert!(r.message_id.is_none(), "accepted but never delivered (§19)");
    let u: GetUploadUrlResponse = lossless("u", &by_id("getuploadurl-ret-minus1"));
    assert!(!u.has_upload_target());
    assert!(matches!(u.status(), Err(ApiError::Failed { .. })));
}

#[test]
fn log_line_statuses_classify() {
    // The log lines quote these envelopes; reconstructed as the JSON they describe.
    let zero_errcode: Envelope = decode(br#"{"ret":-2,"errcode":0,"errmsg":""}"#).unwrap();
    let e = zero_errcode.status().unwrap_err();
    assert!(matches!(e, ApiError::Throttled { .. }));
    assert_eq!(e.throttle_reason(), Some(ThrottleReason::Unknown));
    let prepare: Envelope = decode(br#"{"ret":-2,"errmsg":"prepare failed"}"#).unwrap();
    assert_eq!(
        prepare.status().unwrap_err().throttle_reason(),
        Some(ThrottleReason::PrepareFailed)
    );
    // The log text mentions what the body said.
    let line = by_id("sendmessage-prepare-failed-log");
    assert!(line.as_str().unwrap().contains("prepare failed"));
}
