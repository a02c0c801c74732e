//! Property tests: messages with arbitrary items, unknown enum values and huge ids round
//! trip exactly; decoding arbitrary bytes or arbitrary JSON never panics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine as _;
use ilink_proto::*;
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use serde_json::{Map, Value};

fn wire_id() -> impl Strategy<Value = WireId> {
    prop_oneof![
        any::<u64>().prop_map(WireId::from_u64),
        (1u64 << 53..=u64::MAX).prop_map(WireId::from_u64),
        Just(WireId::from_u64(u64::MAX)),
        any::<i64>().prop_map(WireId::from_i64),
        any::<u64>().prop_map(|n| WireId::from_string(n.to_string())),
        any::<u64>().prop_map(|n| WireId::from_string(format!("v1:{n}"))),
        ".{0,12}".prop_map(WireId::from_string),
    ]
}

/// JSON leaves without floats (float text round trips are not exact in serde_json
/// without its `float_roundtrip` feature, and the wire has no floats).
fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        ".{0,8}".prop_map(Value::String),
    ]
}

fn json_tree() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map("[a-z_]{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Unknown fields: keys that no wire struct names (prefix `x_`).
fn extra() -> impl Strategy<Value = Extra> {
    btree_map("x_[a-z]{1,6}", json_tree(), 0..3).prop_map(|m| m.into_iter().collect::<Map<_, _>>())
}

fn opt_str() -> impl Strategy<Value = Option<String>> {
    option::of(".{0,10}")
}

fn secret() -> impl Strategy<Value = Option<Secret>> {
    option::of("[A-Za-z0-9+/=]{0,24}".prop_map(Secret::from))
}

fn media() -> impl Strategy<Value = Option<CdnMedia>> {
    option::of(
        (
            opt_str(),
            secret(),
            option::of(any::<i64>()),
            opt_str(),
            extra(),
        )
            .prop_map(
                |(encrypt_query_param, aes_key, encrypt_type, full_url, extra)| CdnMedia {
                    encrypt_query_param,
                    aes_key,
                    encrypt_type,
                    full_url,
                    extra,
                },
            ),
    )
}

/// An item with arbitrary type (known or not), ids and any mix of contents.
fn item_without_quote() -> impl Strategy<Value = MessageItem> {
    (
        (
            any::<i64>(),
            any::<bool>(),
            option::of(any::<i64>()),
            option::of(any::<bool>()),
        ),
        option::of(wire_id()),
        option::of((opt_str(), extra()).prop_map(|(text, extra)| TextItem { text, extra })),
        option::of(
            (
                media(),
                media(),
                secret(),
                option::of(any::<u64>()),
                extra(),
            )
                .prop_map(|(media, thumb_media, aeskey, mid_size, extra)| ImageItem {
                    media,
                    thumb_media,
                    aeskey,
                    mid_size,
                    hd_size: mid_size,
                    extra,
                    ..Default::default()
                }),
        ),
        option::of(
            (
                media(),
                option::of(any::<i64>()),
                option::of(any::<u32>()),
                opt_str(),
                extra(),
            )
                .prop_map(|(media, enc, rate, text, extra)| VoiceItem {
                    media,
                    encode_type: enc.map(VoiceEncodeType::from_raw),
                    sample_rate: rate,
                    text,
                    extra,
                    ..Default::default()
                }),
        ),
        option::of((media(), opt_str(), opt_str(), extra()).prop_map(
            |(media, file_name, len, extra)| FileItem {
                media,
                file_name,
                len,
                extra,
                ..Default::default()
            },
        )),
        option::of((media(), option::of(any::<u64>()), extra()).prop_map(
            |(media, video_size, extra)| VideoItem {
                media,
                video_size,
                extra,
                ..Default::default()
            },
        )),
        option::of(
            (opt_str(), opt_str(), extra()).prop_map(|(tool_name, tool_call_id, extra)| {
                ToolCallStartItem {
                    tool_name,
                    tool_call_id,
                    extra,
                }
            }),
        ),
        option::of((opt_str(), opt_str(), opt_str(), extra()).prop_map(
            |(tool_name, tool_call_id, status, extra)| ToolCallResultItem {
                tool_name,
                tool_call_id,
                status,
                extra,
            },
        )),
        extra(),
    )
        .prop_map(
            |(
                (raw_type, type_absent, create_time_ms, is_completed),
                msg_id,
                text_item,
                image_item,
                voice_item,
                file_item,
                video_item,
                tool_call_start_item,
                tool_call_result_item,
                extra,
            )| MessageItem {
                // An absent `type` decodes as NONE, so only NONE can be "absent".
                item_type: if type_absent {
                    ItemType::None
                } else {
                    ItemType::from_raw(raw_type)
                },
                type_absent,
                create_time_ms,
                is_completed,
                msg_id,
                text_item,
                image_item,
                voice_item,
                file_item,
                video_item,
                tool_call_start_item,
                tool_call_result_item,
                extra,
                ..Default::default()
            },
        )
}

fn item() -> impl Strategy<Value = MessageItem> {
    (
        item_without_quote(),
        option::of((
            option::of(item_without_quote()),
            opt_str(),
            option::of(wire_id()),
            option::of((opt_str(), option::of(any::<i64>()), extra())),
            extra(),
        )),
    )
        .prop_map(|(mut item, quote)| {
            item.ref_msg = quote.map(|(quoted, title, svr_id, partial, extra)| RefMessage {
                message_item: quoted.map(Box::new),
                title,
                svr_id,
                partial_text: partial.map(|(start, endindex, extra)| PartialText {
                    start,
                    endindex,
                    extra,
                    ..Default::default()
                }),
                extra,
            });
            item
        })
}

fn message() -> impl Strategy<Value = WeixinMessage> {
    (
        (opt_str(), opt_str(), opt_str()),
        (option::of(any::<i64>()), option::of(any::<i64>())),
        option::of(vec(item(), 0..4)),
        secret(),
        opt_str(),
        option::of(any::<u64>()),
        option::of(wire_id()),
        option::of(any::<i64>()),
        extra(),
    )
        .prop_map(
            |(
                (from_user_id, to_user_id, client_id),
                (mt, ms),
                item_list,
                context_token,
                run_id,
                seq,
                message_id,
                create_time_ms,
                extra,
            )| WeixinMessage {
                from_user_id,
                to_user_id,
                client_id,
                message_type: mt.map(MessageType::from_raw),
                message_state: ms.map(MessageState::from_raw),
                item_list,
                context_token,
                run_id,
                seq,
                message_id,
                create_time_ms,
                extra,
                ..Default::default()
            },
        )
}

/// Runs a property on a thread with a large stack: proptest's value trees for these
/// deeply nested strategies are big, and debug builds keep them on the stack.
fn run_property<S, F>(cases: u32, strategy: fn() -> S, test: F)
where
    S: Strategy + 'static,
    S::Value: std::fmt::Debug,
    F: Fn(S::Value) -> Result<(), TestCaseError> + Send + 'static,
{
    std::thread::Builder::new()
        .stack_size(64 * 1024 * 1024)
        .spawn(move || {
            let config = ProptestConfig {
                cases,
                ..ProptestConfig::default()
            };
            let mut runner = proptest::test_runner::TestRunner::new(config);
            if let Err(e) = runner.run(&strategy(), test) {
                panic!("{e}");
            }
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn messages_round_trip() {
    run_property(64, message, |msg| {
        let text = serde_json::to_string(&msg).unwrap();
        let back: WeixinMessage = decode(text.as_bytes()).unwrap();
        prop_assert_eq!(&back, &msg);
        let value = serde_json::to_value(&msg).unwrap();
        let again: WeixinMessage = serde_json::from_value(value.clone()).unwrap();
        prop_assert_eq!(serde_json::to_value(&again).unwrap(), value);
        Ok(())
    });
}

fn batch() -> impl Strategy<Value = (Vec<WeixinMessage>, Vec<Value>, String)> {
    (
        vec(message(), 0..4),
        vec(json_tree(), 0..3),
        "[A-Za-z0-9=]{0,12}",
    )
}

#[test]
fn batches_decode_per_message() {
    run_property(32, batch, |(msgs, junk, cursor)| {
        let mut raw: Vec<Value> = msgs
            .iter()
            .map(|m| serde_json::to_value(m).unwrap())
            .collect();
        raw.extend(junk.iter().cloned());
        let resp = GetUpdatesResponse {
            msgs: Some(raw),
            get_updates_buf: Some(Secret::from(cursor.clone())),
            ..Default::default()
        };
        let body = serde_json::to_vec(&resp).unwrap();
        let decoded: GetUpdatesResponse = decode(&body).unwrap();
        let out = decoded.messages();
        prop_assert_eq!(out.len(), msgs.len() + junk.len());
        for (got, want) in out.iter().zip(&msgs) {
            prop_assert_eq!(got.as_ref().unwrap(), want);
        }
        for (i, got) in out.iter().enumerate().skip(msgs.len()) {
            if let Err(e) = got {
                prop_assert_eq!(e.index(), i);
                prop_assert_eq!(e.raw(), Some(&junk[i - msgs.len()]));
            }
        }
        prop_assert_eq!(
            decoded.get_updates_buf.as_ref().map(Secret::expose),
            Some(cursor.as_str())
        );
        Ok(())
    });
}

fn message_and_agent() -> impl Strategy<Value = (WeixinMessage, String)> {
    (message(), ".{0,40}")
}

#[test]
fn send_message_round_trips() {
    run_property(32, message_and_agent, |(msg, agent)| {
        let req = SendMessageRequest::new(
            msg,
            BaseInfo::for_version(&CompatVersion::DEFAULT, Some(&agent)),
        );
        let text = serde_json::to_vec(&req).unwrap();
        prop_assert_eq!(decode::<SendMessageRequest>(&text).unwrap(), req);
        Ok(())
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn ids_round_trip_exactly(id in wire_id()) {
        let text = serde_json::to_string(&id).unwrap();
        let back: WireId = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(serde_json::to_string(&back).unwrap(), text);
        prop_assert_eq!(&back, &id);
    }

    #[test]
    fn huge_numeric_ids_survive_inside_messages(n in (1u64 << 53)..=u64::MAX) {
        let body = format!(r#"{{"msgs":[{{"message_id":{n},"item_list":[{{"type":1,"msg_id":{n},"ref_msg":{{"svr_id":{n}}}}}]}}]}}"#);
        let r: GetUpdatesResponse = decode(body.as_bytes()).unwrap();
        let m = r.messages().remove(0).unwrap();
        prop_assert_eq!(m.message_id.as_ref().unwrap().as_u64(), Some(n));
        let item = &m.items()[0];
        prop_assert_eq!(item.msg_id.as_ref().unwrap().as_u64(), Some(n));
        prop_assert_eq!(item.ref_msg.as_ref().unwrap().svr_id.as_ref().unwrap().as_u64(), Some(n));
        let out = serde_json::to_string(&r).unwrap();
        prop_assert_eq!(out.matches(&n.to_string()).count(), 3);
    }

    #[test]
    fn unknown_enum_values_round_trip(raw in any::<i64>(), status in "[a-z_]{0,12}") {
        let item = format!(r#"{{"type":{raw},"unknown_item":{{"k":[{raw}]}}}}"#);
        let v: Value = serde_json::from_str(&item).unwrap();
        let typed: MessageItem = decode(item.as_bytes()).unwrap();
        prop_assert_eq!(typed.item_type.raw(), raw);
        prop_assert_eq!(serde_json::to_value(&typed).unwrap(), v);
        let qr = format!(r#"{{"status":"{status}"}}"#);
        let typed: QrCodeStatusResponse = decode(qr.as_bytes()).unwrap();
        prop_assert_eq!(typed.status.as_str(), status.as_str());
        prop_assert_eq!(serde_json::to_string(&typed).unwrap(), qr);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..256)) {
        let _ = decode::<GetUpdatesResponse>(&bytes);
        let _ = decode::<WeixinMessage>(&bytes);
        let _ = decode::<SendMessageRequest>(&bytes);
        let _ = decode::<QrCodeStatusResponse>(&bytes);
        let _ = decode::<Envelope>(&bytes);
        let _ = decode::<Value>(&bytes);
    }

    #[test]
    fn arbitrary_json_never_panics(v in json_tree(), floats in vec(any::<f64>(), 0..3)) {
        let mut v = v;
        let copy = v.clone();
        if let Value::Object(o) = &mut v {
            o.insert("msgs".into(), Value::Array(vec![copy]));
            for (i, f) in floats.iter().enumerate() {
                if let Some(n) = serde_json::Number::from_f64(*f) {
                    o.insert(["message_id", "type", "item_list"][i].into(), Value::Number(n));
                }
            }
        }
        let bytes = serde_json::to_vec(&v).unwrap();
        if let Ok(r) = decode::<GetUpdatesResponse>(&bytes) {
            let _ = r.messages();
            let _ = r.status();
        }
        let _ = decode::<WeixinMessage>(&bytes);
        let _ = decode::<MessageItem>(&bytes);
        let _ = decode::<SendMessageRequest>(&bytes);
        let _ = decode::<GetUploadUrlResponse>(&bytes);
        let _ = decode::<QrCodeStatusResponse>(&bytes);
        if let Ok(env) = decode::<Envelope>(&bytes) {
            let _ = env.status();
        }
    }

    #[test]
    fn compat_version_round_trips(major: u8, minor: u8, patch: u8, r: u32) {
        let v = CompatVersion::new(major, minor, patch);
        prop_assert_eq!(CompatVersion::parse(&v.to_string()).unwrap(), v);
        prop_assert_eq!(v.client_version_header(), (u32::from(major) << 16) | (u32::from(minor) << 8) | u32::from(patch));
        let uin = uin_header_value(r);
        let decoded = base64::engine::general_purpose::STANDARD.decode(&uin).unwrap();
        prop_assert_eq!(String::from_utf8(decoded).unwrap(), r.to_string());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn bot_agent_is_bounded_and_idempotent(input in ".{0,300}", tokens in vec("[A-Za-z0-9_.-]{1,40}/[A-Za-z0-9_.+-]{1,40}( \\([ -'*-~]{0,70}\\))?", 0..12)) {
        for s in [input, tokens.join(" ")] {
            let out = sanitize_bot_agent(&s);
            prop_assert!(!out.is_empty());
            prop_assert!(out.len() <= BOT_AGENT_MAX_BYTES);
            prop_assert!(out.is_ascii());
            prop_assert_eq!(sanitize_bot_agent(&out), out.clone());
        }
    }
}
