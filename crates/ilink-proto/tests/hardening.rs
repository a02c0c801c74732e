//! Decoding hostile input: deep nesting, empty and oversized bodies, wrong shapes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ilink_proto::*;
use serde_json::{Value, json};

/// A getupdates body whose single message quotes itself `quotes` times.
fn quoted_chain(quotes: usize) -> Vec<u8> {
    let mut item = json!({"type": 1, "text_item": {"text": "innermost"}});
    for i in 0..quotes {
        item = json!({"type": 1, "msg_id": i, "text_item": {"text": "q"},
                      "ref_msg": {"title": "t", "message_item": item}});
    }
    serde_json::to_vec(&json!({"msgs": [{"item_list": [item]}], "get_updates_buf": "C"})).unwrap()
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

#[test]
fn deepest_accepted_quote_chain_decodes_on_a_small_stack() {
    // Find the longest chain within MAX_DEPTH.
    let mut quotes = 0;
    while depth(&serde_json::from_slice(&quoted_chain(quotes + 1)).unwrap()) <= MAX_DEPTH {
        quotes += 1;
    }
    assert!(
        quotes >= 10,
        "real quotes nest once; {quotes} levels must fit"
    );
    let ok = quoted_chain(quotes);
    let too_deep = quoted_chain(quotes + 1);
    // 2 MiB is a tokio worker's default stack; debug builds are the worst case.
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || {
            let r: GetUpdatesResponse = decode(&ok).unwrap();
            let m = r.messages().remove(0).unwrap();
            let mut item = &m.items()[0];
            let mut seen = 0;
            while let Some(q) = item
                .ref_msg
                .as_ref()
                .and_then(|r| r.message_item.as_deref())
            {
                item = q;
                seen += 1;
            }
            assert_eq!(seen, quotes);
            assert_eq!(
                item.text_item.as_ref().unwrap().text.as_deref(),
                Some("innermost")
            );
            assert_eq!(
                serde_json::to_value(&r).unwrap(),
                serde_json::from_slice::<Value>(&ok).unwrap()
            );
            assert!(matches!(
                decode::<GetUpdatesResponse>(&too_deep),
                Err(DecodeError::TooDeep { .. })
            ));
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn hand_built_deep_message_is_an_error_value_not_a_crash() {
    let mut v = json!("leaf");
    for _ in 0..200 {
        v = json!({"x": v});
    }
    let resp = GetUpdatesResponse {
        msgs: Some(vec![v.clone(), json!({"seq": 1})]),
        ..Default::default()
    };
    let out = resp.messages();
    let err = out[0].as_ref().unwrap_err();
    assert_eq!(err.raw(), Some(&v));
    assert!(err.json_error().is_none());
    assert!(err.to_string().contains("deeper than"), "{err}");
    assert_eq!(out[1].as_ref().unwrap().seq, Some(1));
}

#[test]
fn empty_and_non_object_bodies() {
    assert!(matches!(
        decode::<SendMessageResponse>(b""),
        Err(DecodeError::Empty)
    ));
    assert!(matches!(
        decode::<GetUpdatesResponse>(b"\r\n"),
        Err(DecodeError::Empty)
    ));
    for body in [
        &b"null"[..],
        b"[]",
        b"42",
        b"\"s\"",
        b"{",
        b"{\"ret\":}",
        b"\xff\xfe",
    ] {
        let e = decode::<GetUpdatesResponse>(body).unwrap_err();
        assert!(matches!(e, DecodeError::Json(_)), "{body:?}: {e}");
        assert!(e.to_string().contains("not the expected JSON"));
    }
    let e = DecodeError::Empty.to_string();
    assert!(e.contains("{}"), "{e}");
}

#[test]
fn oversized_body_is_refused_before_parsing() {
    let big = vec![b' '; MAX_BODY_BYTES + 1];
    assert!(matches!(
        decode::<Envelope>(&big),
        Err(DecodeError::TooLarge { .. })
    ));
}

#[test]
fn wrong_field_types_fail_only_their_message() {
    let body = br#"{"ret":0,"msgs":[
        {"item_list":[{"type":"1"}]},
        {"item_list":[{"type":1.5}]},
        {"message_id":1.0},
        {"item_list":[{"file_item":{"len":542188}}]},
        {"context_token":5},
        {"item_list":[{"type":1,"text_item":{"text":"fine"}}]}
    ],"get_updates_buf":"NEXT"}"#;
    let r: GetUpdatesResponse = decode(body).unwrap();
    let out = r.messages();
    assert_eq!(out.len(), 6);
    assert!(out[..5].iter().all(Result::is_err));
    assert_eq!(out[5].as_ref().unwrap().body_text(), Some("fine"));
    assert_eq!(r.next_cursor().unwrap().expose(), "NEXT");
    assert!(r.status().is_ok());
}

#[test]
fn a_non_array_msgs_fails_the_body_but_the_envelope_still_reads() {
    let body = br#"{"errcode":-14,"msgs":{"oops":1}}"#;
    assert!(decode::<GetUpdatesResponse>(body).is_err());
    let env: Envelope = decode(body).unwrap();
    assert!(env.status().unwrap_err().is_stale_token());
}

/// A getupdates body `depth` levels deep in total: one message holding nested arrays (no
/// quotes), then a normal message.
fn deep_batch(depth: usize) -> Vec<u8> {
    // Body object (1), msgs (2), message object (3), `x` arrays from there on.
    let inner = depth - 3;
    format!(
        r#"{{"msgs":[{{"message_id":1,"x":{}{}}},{{"seq":2}}],"get_updates_buf":"NEXT"}}"#,
        "[".repeat(inner),
        "]".repeat(inner)
    )
    .into_bytes()
}

#[test]
fn one_deep_message_fails_alone_and_the_cursor_survives() {
    // R3: a message quoting quotes 20 levels deep (far beyond MAX_DEPTH for the message) must
    // not make the whole body undecodable.
    let deep = quoted_chain(20);
    assert!(depth(&serde_json::from_slice(&deep).unwrap()) > MAX_DEPTH);
    assert!(matches!(
        decode::<GetUpdatesResponse>(&deep),
        Err(DecodeError::TooDeep { .. })
    ));
    let mut body: Value = serde_json::from_slice(&deep).unwrap();
    body["msgs"]
        .as_array_mut()
        .unwrap()
        .push(json!({"seq": 7, "item_list": [{"type": 1, "text_item": {"text": "after"}}]}));
    let bytes = serde_json::to_vec(&body).unwrap();
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || {
            let r = decode_updates(&bytes).unwrap();
            assert_eq!(r.next_cursor().unwrap().expose(), "C");
            let out = r.into_messages();
            assert_eq!(out.len(), 2);
            let err = out[0].as_ref().unwrap_err();
            assert_eq!(err.index(), 0);
            assert!(err.json_error().is_none(), "{err}");
            assert!(err.to_string().contains("deeper than 32"), "{err}");
            assert_eq!(err.raw(), Some(&body["msgs"][0]));
            assert_eq!(out[1].as_ref().unwrap().body_text(), Some("after"));
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn batch_depth_limit_is_stack_safe_and_exact() {
    // 2 MiB is a tokio worker's default stack; debug builds are the worst case.
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(|| {
            let ok = deep_batch(MAX_BATCH_DEPTH);
            assert_eq!(
                depth(&serde_json::from_slice::<Value>(&ok).unwrap()),
                MAX_BATCH_DEPTH
            );
            let r = decode_updates(&ok).unwrap();
            assert_eq!(r.message_count(), 2);
            let out = r.messages();
            assert!(out[0].as_ref().unwrap_err().to_string().contains("deeper"));
            assert_eq!(out[1].as_ref().unwrap().seq, Some(2));
            assert!(matches!(
                decode_updates(&deep_batch(MAX_BATCH_DEPTH + 1)),
                Err(DecodeError::TooDeep {
                    max: MAX_BATCH_DEPTH
                })
            ));
            // Far deeper input is refused by the linear pre-scan, without recursion.
            let huge = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
            assert!(matches!(
                decode_updates(huge.as_bytes()),
                Err(DecodeError::TooDeep { .. })
            ));
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn decode_updates_keeps_the_other_guarantees() {
    assert!(matches!(decode_updates(b" "), Err(DecodeError::Empty)));
    let big = vec![b' '; MAX_BODY_BYTES + 1];
    assert!(matches!(
        decode_updates(&big),
        Err(DecodeError::TooLarge { .. })
    ));
    let r = decode_updates(br#"{"errcode":-14}"#).unwrap();
    assert!(r.status().unwrap_err().is_stale_token());
}
