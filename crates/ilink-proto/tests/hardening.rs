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
    assert_eq!(err.raw(), &v);
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
